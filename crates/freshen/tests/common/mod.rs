//! Shared test harness: a hermetic signed apt repository (built by
//! `fixtures/make-repo.sh` with dpkg-deb, apt-ftparchive and gpg) served on
//! 127.0.0.1 by a small HTTP server that honours If-Modified-Since and
//! counts requests; images built from root filesystem directories with
//! freshen's own layer and layout writers; and a runner for the binary.
#![allow(dead_code)]

use std::io::{BufRead, BufReader, Write};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock};

pub struct Repo {
    pub dir: PathBuf,
    pub url: String,
    pub requests: Arc<AtomicUsize>,
}

static REPO: OnceLock<Repo> = OnceLock::new();

/// The shared hermetic repository, built and served once per test binary.
pub fn repo() -> &'static Repo {
    REPO.get_or_init(|| {
        let dir = tempfile::Builder::new().prefix("freshen-repo-").tempdir().unwrap().keep();
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/make-repo.sh");
        let out = Command::new("bash").arg(&script).arg(&dir).output().expect("run make-repo.sh");
        assert!(out.status.success(), "make-repo.sh failed: {}", String::from_utf8_lossy(&out.stderr));
        let (url, requests) = serve(dir.join("repo"));
        Repo { dir, url, requests }
    })
}

/// Serves `root` over HTTP on 127.0.0.1 (GET only, Last-Modified and 304).
pub fn serve(root: PathBuf) -> (String, Arc<AtomicUsize>) {
    serve_hooked(root, Arc::new(|_: &str| {}))
}

/// [`serve`], calling `after` with each request's path once it is answered.
pub fn serve_hooked(root: PathBuf, after: Arc<dyn Fn(&str) + Send + Sync>) -> (String, Arc<AtomicUsize>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let count = Arc::new(AtomicUsize::new(0));
    let c = count.clone();
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { continue };
            let root = root.clone();
            let c = c.clone();
            let after = after.clone();
            std::thread::spawn(move || {
                let mut reader = BufReader::new(stream.try_clone().unwrap());
                loop {
                    let mut line = String::new();
                    if reader.read_line(&mut line).unwrap_or(0) == 0 {
                        return;
                    }
                    let path = line.split_whitespace().nth(1).unwrap_or("/").to_string();
                    let mut ims = None;
                    loop {
                        let mut h = String::new();
                        if reader.read_line(&mut h).unwrap_or(0) == 0 || h.trim().is_empty() {
                            break;
                        }
                        if let Some((k, v)) = h.split_once(':') {
                            if k.eq_ignore_ascii_case("if-modified-since") {
                                ims = Some(v.trim().to_string());
                            }
                        }
                    }
                    c.fetch_add(1, Ordering::SeqCst);
                    let rel = percent_decode(path.trim_start_matches('/'));
                    let file = root.join(&rel);
                    let resp = if rel.split('/').any(|p| p == "..") || !file.is_file() {
                        b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n".to_vec()
                    } else {
                        let mtime = std::fs::metadata(&file).unwrap().modified().unwrap();
                        let lm = chrono::DateTime::<chrono::Utc>::from(mtime).format("%a, %d %b %Y %H:%M:%S GMT").to_string();
                        if ims.as_deref() == Some(lm.as_str()) {
                            format!("HTTP/1.1 304 Not Modified\r\nLast-Modified: {lm}\r\nContent-Length: 0\r\n\r\n").into_bytes()
                        } else {
                            let body = std::fs::read(&file).unwrap();
                            let mut r = format!("HTTP/1.1 200 OK\r\nLast-Modified: {lm}\r\nContent-Length: {}\r\n\r\n", body.len()).into_bytes();
                            r.extend(body);
                            r
                        }
                    };
                    if stream.write_all(&resp).is_err() {
                        return;
                    }
                    after(&path);
                }
            });
        }
    });
    (format!("http://{addr}"), count)
}

/// A dpkg status stanza.
pub fn stanza(name: &str, version: &str) -> String {
    format!("Package: {name}\nStatus: install ok installed\nPriority: optional\nArchitecture: amd64\nVersion: {version}\nDescription: test\n\n")
}

/// A root filesystem for an image under test.
pub struct Rootfs {
    pub dir: PathBuf,
}

impl Rootfs {
    pub fn new(os_release: &str) -> Rootfs {
        let dir = tempfile::Builder::new().prefix("freshen-rootfs-").tempdir().unwrap().keep();
        let r = Rootfs { dir };
        std::fs::create_dir_all(r.dir.join("etc")).unwrap();
        r.write("usr/lib/os-release", os_release);
        std::os::unix::fs::symlink("../usr/lib/os-release", r.dir.join("etc/os-release")).ok();
        r
    }

    pub fn write(&self, rel: &str, content: &str) -> &Self {
        self.write_bytes(rel, content.as_bytes())
    }

    pub fn write_bytes(&self, rel: &str, content: &[u8]) -> &Self {
        let p = self.dir.join(rel);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        if p.is_symlink() || p.exists() {
            std::fs::remove_file(&p).unwrap();
        }
        std::fs::write(p, content).unwrap();
        self
    }

    /// Trusts the test key and names `sources` (one-line format).
    pub fn with_sources(&self, sources: &str) -> &Self {
        let key = std::fs::read(repo().dir.join("keys/test.gpg")).unwrap();
        self.write_bytes("etc/apt/trusted.gpg.d/test.gpg", &key);
        self.write("etc/apt/sources.list", sources)
    }
}

pub const DEBIAN_OS: &str = "PRETTY_NAME=\"Test GNU/Linux 13\"\nID=debian\nVERSION_ID=\"13\"\nVERSION_CODENAME=calm\n";

/// Packs directories as the layers of an OCI layout at `layout:tag`.
pub fn pack(layers: &[(&Path, &str)], layout: &Path, tag: &str) -> String {
    let blobs: Vec<_> = layers
        .iter()
        .map(|(dir, created_by)| freshen_image::write_layer_from_dir(dir, layout, Some(1_700_000_000), created_by).unwrap())
        .collect();
    freshen_image::write_oci_layout(layout, &freshen_image::LayoutImage { tag, os: "linux", architecture: "amd64", layers: &blobs }).unwrap();
    format!("oci:{}:{tag}", layout.display())
}

/// Removes its directories when dropped (also when a test fails).
pub struct Cleanup(pub Vec<PathBuf>);

impl Drop for Cleanup {
    fn drop(&mut self) {
        for d in &self.0 {
            let _ = std::fs::remove_dir_all(d);
        }
    }
}

pub fn tempdir() -> PathBuf {
    tempfile::Builder::new().prefix("freshen-test-").tempdir().unwrap().keep()
}

/// Runs freshen with its own cache directory.
pub fn freshen(args: &[&str], cache: &Path) -> Output {
    Command::new(env!("CARGO_BIN_EXE_freshen")).args(args).env("FRESHEN_CACHE", cache).output().unwrap()
}

/// Runs `freshen scan ... --format json` and returns (exit code, JSON).
pub fn scan_json(image: &str, extra: &[&str], cache: &Path) -> (i32, serde_json::Value) {
    let mut args = vec!["scan", image, "--format", "json"];
    args.extend_from_slice(extra);
    let out = freshen(&args, cache);
    let code = out.status.code().unwrap_or(-1);
    let v = serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!("no JSON ({e}); exit {code}; stderr: {}", String::from_utf8_lossy(&out.stderr))
    });
    (code, v)
}

/// Asserts a failing run: exit 1, exactly one line on stderr containing all of `needles`.
pub fn assert_error(out: &Output, needles: &[&str]) {
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "expected exit 1, stderr: {err}");
    assert_eq!(err.trim_end().lines().count(), 1, "expected one line: {err}");
    assert!(err.starts_with("error: "), "{err}");
    for n in needles {
        assert!(err.contains(n), "stderr lacks `{n}`: {err}");
    }
    assert!(!err.contains("panicked"), "{err}");
}

/// The packages `apt-get -s upgrade` output says it keeps back, sorted.
pub fn kept_back(apt_output: &str) -> Vec<String> {
    let mut kept = Vec::new();
    let mut in_kept = false;
    for l in apt_output.lines() {
        if l.starts_with("The following packages have been kept back") {
            in_kept = true;
        } else if in_kept && l.starts_with(' ') {
            kept.extend(l.split_whitespace().map(str::to_string));
        } else {
            in_kept = false;
        }
    }
    kept.sort();
    kept
}

/// The updates of a scan as (package, candidate, security, held_back).
pub fn updates(v: &serde_json::Value) -> Vec<(String, String, bool, bool)> {
    let mut out: Vec<_> = v["updates"]
        .as_array()
        .unwrap()
        .iter()
        .map(|u| {
            (
                u["package"].as_str().unwrap().to_string(),
                u["candidate"].as_str().unwrap().to_string(),
                u["security"].as_bool().unwrap(),
                u["held_back"].as_bool().unwrap(),
            )
        })
        .collect();
    out.sort();
    out
}

fn percent_decode(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' && i + 2 < b.len() {
            if let Ok(v) = u8::from_str_radix(&s[i + 1..i + 3], 16) {
                out.push(v);
                i += 3;
                continue;
            }
        }
        out.push(b[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

const STALE_SOURCES: &str = "deb http://deb.debian.org/debian bookworm main\n\
deb http://deb.debian.org/debian bookworm-updates main\n\
deb http://deb.debian.org/debian-security bookworm-security main\n";

/// A stale Debian bookworm minbase root filesystem: built with mmdebstrap
/// from the `bookworm` main suite only (so the security suite has fixes it
/// lacks), with sources naming bookworm, bookworm-updates and
/// bookworm-security. Built once per day into the target directory and
/// shared by the test binaries; FRESHEN_STALE_ROOTFS names a prebuilt one.
/// Needs root and Debian's archive.
pub fn stale_rootfs() -> PathBuf {
    if let Some(p) = std::env::var_os("FRESHEN_STALE_ROOTFS") {
        return PathBuf::from(p);
    }
    let day = chrono::Utc::now().format("%Y%m%d");
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("stale-bookworm-{day}"));
    if dir.join("etc/debian_version").is_file() {
        return dir;
    }
    let tmp = Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!(".stale-bookworm-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&tmp);
    let hook = format!("printf '{}' > \"$1/etc/apt/sources.list\"; rm -f \"$1\"/etc/apt/sources.list.d/*", STALE_SOURCES.replace('\n', "\\n"));
    let out = Command::new("mmdebstrap")
        .args(["--quiet", "--variant=minbase", "--mode=root", "--customize-hook"])
        .arg(&hook)
        .arg("bookworm")
        .arg(&tmp)
        .arg("http://deb.debian.org/debian")
        .output()
        .expect("mmdebstrap (apt-get install mmdebstrap)");
    assert!(out.status.success(), "mmdebstrap failed: {}", String::from_utf8_lossy(&out.stderr));
    if std::fs::rename(&tmp, &dir).is_err() {
        let _ = std::fs::remove_dir_all(&tmp);
    }
    dir
}

/// Debian's Docker Engine, started by the test on its own socket and data
/// root (overlay2, no iptables, no bridge), stopped when dropped.
pub struct Dockerd {
    pub dir: PathBuf,
    pub host: String,
    child: std::process::Child,
}

impl Dockerd {
    pub fn start() -> Dockerd {
        let dir = tempdir();
        let sock = dir.join("docker.sock");
        let host = format!("unix://{}", sock.display());
        let log = std::fs::File::create(dir.join("dockerd.log")).unwrap();
        let child = Command::new("dockerd")
            .arg("--host")
            .arg(&host)
            .arg("--data-root")
            .arg(dir.join("data"))
            .arg("--exec-root")
            .arg(dir.join("exec"))
            .arg("--pidfile")
            .arg(dir.join("docker.pid"))
            .args(["--storage-driver=overlay2", "--iptables=false", "--ip6tables=false", "--bridge=none"])
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .expect("dockerd (apt-get install docker.io)");
        let d = Dockerd { dir, host, child };
        for _ in 0..300 {
            if d.docker(&["version"]).status.success() {
                return d;
            }
            std::thread::sleep(std::time::Duration::from_millis(200));
        }
        panic!("dockerd did not start: {}", std::fs::read_to_string(d.dir.join("dockerd.log")).unwrap_or_default());
    }

    pub fn docker(&self, args: &[&str]) -> Output {
        Command::new("docker").arg("--host").arg(&self.host).args(args).output().expect("docker")
    }

    /// Runs docker and asserts success; returns stdout.
    pub fn ok(&self, args: &[&str]) -> String {
        let out = self.docker(args);
        assert!(out.status.success(), "docker {args:?}: {}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
        String::from_utf8_lossy(&out.stdout).into_owned()
    }
}

impl Drop for Dockerd {
    fn drop(&mut self) {
        let _ = Command::new("kill").arg(self.child.id().to_string()).status();
        let _ = self.child.wait();
        for m in ["exec", "data"] {
            // Unmount whatever the engine left mounted below its roots.
            let _ = Command::new("sh").arg("-c").arg(format!("grep -o ' {}/[^ ]*' /proc/mounts | sort -r | xargs -r -n1 umount -l", self.dir.join(m).display())).status();
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// The stale bookworm image packed into a fresh work directory (removed on
/// drop), with a cache directory of its own.
pub struct StaleImage {
    pub work: PathBuf,
    pub layout: PathBuf,
    /// `oci:LAYOUT:stale`
    pub image: String,
    pub cache: PathBuf,
    _cleanup: Cleanup,
}

impl StaleImage {
    pub fn new(created_by: &str) -> StaleImage {
        let rootfs = stale_rootfs();
        let work = tempdir();
        let layout = work.join("oci");
        let image = pack(&[(&rootfs, created_by)], &layout, "stale");
        StaleImage { cache: work.join("cache"), layout, image, _cleanup: Cleanup(vec![work.clone()]), work }
    }
}
