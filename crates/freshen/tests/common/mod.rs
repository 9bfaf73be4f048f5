//! Shared test harness: a hermetic signed apt repository (built by
//! `fixtures/make-repo.sh` with dpkg-deb, apt-ftparchive and gpg) served on
//! 127.0.0.1 by a small HTTP server that honours If-Modified-Since and
//! counts requests; images built from root filesystem directories with
//! freshen's own layer and layout writers; and a runner for the binary.
#![allow(dead_code)]

pub mod apt;
#[allow(unused_imports)]
pub use apt::{apt_oracle, apt_oracle_with, AptRun};

use std::io::{BufRead, BufReader, Write};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock};

mod debian;
pub use debian::*;
pub mod dokku;
pub mod host;
pub mod live;

pub struct Repo {
    pub dir: PathBuf,
    pub url: String,
    pub requests: Arc<AtomicUsize>,
}

static REPO: OnceLock<Repo> = OnceLock::new();

/// The shared hermetic repository, built and served once per test binary.
pub fn repo() -> &'static Repo {
    REPO.get_or_init(|| {
        let dir = kept_tempdir("freshen-repo-");
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
    serve_with(root, after, None)
}

/// [`serve`], answering 401 to requests without HTTP basic authentication
/// as `(user, password)`.
pub fn serve_private(root: PathBuf, user: &str, password: &str) -> (String, Arc<AtomicUsize>) {
    let expected = format!("Basic {}", base64(format!("{user}:{password}").as_bytes(), false));
    serve_with(root, Arc::new(|_: &str| {}), Some(expected))
}

/// One HTTP/1.1 request head, as the test servers here read it: the
/// request line and the header lines.
pub struct RequestHead {
    pub line: String,
    pub headers: Vec<(String, String)>,
}

impl RequestHead {
    /// Reads a request head; `None` at the end of the stream.
    pub fn read(reader: &mut impl BufRead) -> Option<RequestHead> {
        let mut line = String::new();
        if reader.read_line(&mut line).unwrap_or(0) == 0 {
            return None;
        }
        let mut headers = Vec::new();
        loop {
            let mut h = String::new();
            if reader.read_line(&mut h).unwrap_or(0) == 0 || h.trim().is_empty() {
                break;
            }
            if let Some((k, v)) = h.split_once(':') {
                headers.push((k.trim().to_string(), v.trim().to_string()));
            }
        }
        Some(RequestHead { line, headers })
    }

    pub fn method(&self) -> &str {
        self.line.split_whitespace().next().unwrap_or("")
    }

    pub fn path(&self) -> &str {
        self.line.split_whitespace().nth(1).unwrap_or("")
    }

    /// The first header of this name (ASCII case ignored).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(k, _)| k.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str())
    }

    /// Content-Length, 0 when absent or unreadable.
    pub fn length(&self) -> usize {
        self.header("content-length").and_then(|v| v.parse().ok()).unwrap_or(0)
    }
}

fn serve_with(root: PathBuf, after: Arc<dyn Fn(&str) + Send + Sync>, authorization: Option<String>) -> (String, Arc<AtomicUsize>) {
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
            let authorization = authorization.clone();
            std::thread::spawn(move || {
                let mut reader = BufReader::new(stream.try_clone().unwrap());
                while let Some(head) = RequestHead::read(&mut reader) {
                    let path = match head.path() {
                        "" => "/".to_string(),
                        p => p.to_string(),
                    };
                    let ims = head.header("if-modified-since").map(str::to_string);
                    let authorized = authorization.is_none() || head.headers.iter().any(|(k, v)| k.eq_ignore_ascii_case("authorization") && Some(v.as_str()) == authorization.as_deref());
                    c.fetch_add(1, Ordering::SeqCst);
                    let rel = freshen_http::percent_decode(path.trim_start_matches('/'));
                    let file = root.join(&rel);
                    let resp = if !authorized {
                        b"HTTP/1.1 401 Unauthorized\r\nWWW-Authenticate: Basic realm=\"repo\"\r\nContent-Length: 0\r\n\r\n".to_vec()
                    } else if rel.split('/').any(|p| p == "..") || !file.is_file() {
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

/// An HTTP "server" that accepts and answers nothing for a few seconds.
pub fn silent_server() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    std::thread::spawn(move || {
        for s in listener.incoming().flatten() {
            std::thread::spawn(move || {
                std::thread::sleep(std::time::Duration::from_secs(4));
                drop(s);
            });
        }
    });
    port
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
        let dir = kept_tempdir("freshen-rootfs-");
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
    kept_tempdir("freshen-test-")
}

/// Directories made by this test binary, removed when it exits (also
/// after a failure) unless `FRESHEN_KEEP_TEST_DIRS` is set.
static TEMP_DIRS: std::sync::Mutex<Vec<PathBuf>> = std::sync::Mutex::new(Vec::new());

extern "C" {
    fn atexit(callback: extern "C" fn()) -> std::os::raw::c_int;
}

extern "C" fn remove_temp_dirs() {
    if std::env::var_os("FRESHEN_KEEP_TEST_DIRS").is_some() {
        return;
    }
    let dirs = std::mem::take(&mut *TEMP_DIRS.lock().unwrap_or_else(|e| e.into_inner()));
    for d in dirs {
        let _ = std::fs::remove_dir_all(d);
    }
}

fn kept_tempdir(prefix: &str) -> PathBuf {
    let dir = tempfile::Builder::new().prefix(prefix).tempdir().unwrap().keep();
    let mut dirs = TEMP_DIRS.lock().unwrap_or_else(|e| e.into_inner());
    if dirs.is_empty() {
        // SAFETY: registers a plain function with the C library; it only
        // removes directories this process made.
        unsafe {
            atexit(remove_temp_dirs);
        }
    }
    dirs.push(dir.clone());
    dir
}

/// Runs freshen with its own cache directory.
pub fn freshen(args: &[&str], cache: &Path) -> Output {
    freshen_env(args, cache, &[])
}

/// The proxy and trust-store variables [`freshen_env`] clears unless given.
const HTTP_ENV: &[&str] = &["http_proxy", "https_proxy", "HTTPS_PROXY", "all_proxy", "ALL_PROXY", "no_proxy", "NO_PROXY", "SSL_CERT_FILE", "SSL_CERT_DIR"];

/// [`freshen`] with environment variables set; the proxy and trust-store
/// variables of the test's own environment are not passed on.
pub fn freshen_env(args: &[&str], cache: &Path, env: &[(&str, &str)]) -> Output {
    let mut cmd = freshen_command(args, cache);
    cmd.envs(env.iter().copied());
    cmd.output().unwrap()
}

/// The command [`freshen`] runs, to spawn it as a child.
pub fn freshen_command(args: &[&str], cache: &Path) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_freshen"));
    cmd.args(args).env("FRESHEN_CACHE", cache);
    for v in HTTP_ENV {
        cmd.env_remove(v);
    }
    cmd
}

/// The hermetic repository served over HTTPS by `openssl s_server -WWW`
/// with a certificate for 127.0.0.1 from a test CA; stopped when dropped.
pub struct HttpsRepo {
    pub url: String,
    /// The test CA's certificate (PEM).
    pub ca: PathBuf,
    child: std::process::Child,
}

impl HttpsRepo {
    pub fn start() -> HttpsRepo {
        let certs = tempdir();
        make_certs(&certs);
        let port = TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let child = Command::new("openssl")
            .args(["s_server", "-quiet", "-WWW", "-accept", &format!("127.0.0.1:{port}")])
            .arg("-cert")
            .arg(certs.join("server.pem"))
            .arg("-key")
            .arg(certs.join("server.key"))
            .current_dir(repo().dir.join("repo"))
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("openssl s_server");
        for _ in 0..100 {
            if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
                break;
            }
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
        HttpsRepo { url: format!("https://127.0.0.1:{port}"), ca: certs.join("ca.pem"), child }
    }
}

impl Drop for HttpsRepo {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A forward HTTP proxy on 127.0.0.1: plain `http://` requests in
/// absolute-URI form (`GET http://host:port/path HTTP/1.1`) and `CONNECT`
/// tunnels for `https://`, as apt and curl use them; counts the requests
/// and tunnels it relays.
pub struct ForwardProxy {
    pub url: String,
    pub requests: Arc<AtomicUsize>,
}

impl ForwardProxy {
    pub fn start() -> ForwardProxy {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let requests = Arc::new(AtomicUsize::new(0));
        let count = requests.clone();
        std::thread::spawn(move || {
            for client in listener.incoming() {
                let Ok(mut client) = client else { continue };
                let count = count.clone();
                std::thread::spawn(move || {
                    let mut reader = BufReader::new(client.try_clone().unwrap());
                    let mut line = String::new();
                    let _ = reader.read_line(&mut line);
                    let mut parts = line.split_whitespace();
                    let (method, target) = (parts.next().unwrap_or(""), parts.next().unwrap_or(""));
                    if method == "CONNECT" {
                        // An https:// request: a tunnel to the target.
                        loop {
                            let mut h = String::new();
                            if reader.read_line(&mut h).unwrap_or(0) == 0 || h.trim().is_empty() {
                                break;
                            }
                        }
                        count.fetch_add(1, Ordering::SeqCst);
                        let Ok(upstream) = std::net::TcpStream::connect(target) else {
                            let _ = client.write_all(b"HTTP/1.1 502 Bad Gateway\r\n\r\n");
                            return;
                        };
                        let _ = client.write_all(b"HTTP/1.1 200 Connection established\r\n\r\n");
                        let (mut up_r, mut cl_w) = (upstream.try_clone().unwrap(), client.try_clone().unwrap());
                        std::thread::spawn(move || {
                            let _ = std::io::copy(&mut up_r, &mut cl_w);
                            let _ = cl_w.shutdown(std::net::Shutdown::Write);
                        });
                        let mut up_w = upstream;
                        let _ = std::io::copy(&mut client, &mut up_w);
                        let _ = up_w.shutdown(std::net::Shutdown::Write);
                        return;
                    }
                    let Some(rest) = target.strip_prefix("http://") else {
                        let _ = client.write_all(b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\r\n");
                        return;
                    };
                    count.fetch_add(1, Ordering::SeqCst);
                    let (host, path) = rest.split_once('/').map_or((rest, "/".to_string()), |(h, p)| (h, format!("/{p}")));
                    let mut upstream = std::net::TcpStream::connect(host).unwrap();
                    let mut head = format!("{method} {path} HTTP/1.1\r\n");
                    loop {
                        let mut h = String::new();
                        if reader.read_line(&mut h).unwrap_or(0) == 0 || h.trim().is_empty() {
                            break;
                        }
                        if !h.to_ascii_lowercase().starts_with("proxy-") {
                            head.push_str(&h);
                        }
                    }
                    head.push_str("\r\n");
                    upstream.write_all(head.as_bytes()).unwrap();
                    // One request per connection: the server answers, then sees EOF and closes.
                    let _ = upstream.shutdown(std::net::Shutdown::Write);
                    let _ = std::io::copy(&mut upstream, &mut client);
                });
            }
        });
        ForwardProxy { url, requests }
    }
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

/// Asserts a failing run: exit 1, and stderr ends with exactly one error
/// line containing all of `needles` (progress lines of finished steps may
/// come before it).
pub fn assert_error(out: &Output, needles: &[&str]) {
    let all = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "expected exit 1, stderr: {all}");
    assert!(!all.contains("panicked"), "{all}");
    let lines: Vec<&str> = all.trim_end().lines().collect();
    assert_eq!(lines.iter().filter(|l| l.starts_with("error")).count(), 1, "expected one error line: {all}");
    let err = lines.last().copied().unwrap_or_default();
    assert!(err.starts_with("error: "), "the error is not the last line: {all}");
    for n in needles {
        assert!(err.contains(n), "the error lacks `{n}`: {all}");
    }
}

/// The packages `apt-get -s upgrade` output says it keeps back, sorted.
pub fn kept_back(apt_output: &str) -> Vec<String> {
    apt_list_after(apt_output, "The following packages have been kept back")
}

/// The package names apt lists (indented lines) under the line starting
/// with `header`, sorted.
pub fn apt_list_after(apt_output: &str, header: &str) -> Vec<String> {
    let mut names = Vec::new();
    let mut inside = false;
    for l in apt_output.lines() {
        if l.starts_with(header) {
            inside = true;
        } else if inside && l.starts_with(' ') {
            names.extend(l.split_whitespace().map(str::to_string));
        } else {
            inside = false;
        }
    }
    names.sort();
    names
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

/// Unpacks `layout:tag` with umoci (an unpacker freshen did not write);
/// returns the root filesystem.
pub fn umoci_unpack(layout: &Path, tag: &str, dest: &Path) -> PathBuf {
    let out = Command::new("umoci").args(["unpack", "--image", &format!("{}:{tag}", layout.display())]).arg(dest).output().expect("umoci");
    assert!(out.status.success(), "umoci unpack: {}", String::from_utf8_lossy(&out.stderr));
    dest.join("rootfs")
}

/// The names in the gzip-compressed layer `digest` of an OCI layout.
pub fn layer_names(layout: &Path, digest: &str) -> Vec<String> {
    let blob = layout.join("blobs/sha256").join(digest.trim_start_matches("sha256:"));
    let mut archive = tar::Archive::new(flate2::read::MultiGzDecoder::new(std::fs::File::open(&blob).unwrap()));
    archive.entries().unwrap().map(|e| e.unwrap().path().unwrap().to_string_lossy().into_owned()).collect()
}

/// The manifest digest tagged `tag` in an OCI layout's index.
pub fn tagged_digest(layout: &Path, tag: &str) -> String {
    let index: serde_json::Value = serde_json::from_slice(&std::fs::read(layout.join("index.json")).unwrap()).unwrap();
    index["manifests"].as_array().unwrap().iter().find(|m| m["annotations"]["org.opencontainers.image.ref.name"] == tag).unwrap()["digest"].as_str().unwrap().to_string()
}

/// A blob of an OCI layout, parsed as JSON.
pub fn layout_json(layout: &Path, digest: &str) -> serde_json::Value {
    serde_json::from_slice(&std::fs::read(layout.join("blobs/sha256").join(digest.trim_start_matches("sha256:"))).unwrap()).unwrap()
}

/// `apt-mark showauto` in the root filesystem `root` (a chroot).
pub fn showauto(root: &Path) -> String {
    let out = Command::new("chroot").arg(root).args(["apt-mark", "showauto"]).output().expect("chroot");
    assert!(out.status.success(), "apt-mark showauto: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout).into_owned()
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
        StaleImage::of(&stale_rootfs(), created_by)
    }

    /// `rootfs` packed as a one-layer image.
    pub fn of(rootfs: &Path, created_by: &str) -> StaleImage {
        let work = tempdir();
        let layout = work.join("oci");
        let image = pack(&[(rootfs, created_by)], &layout, "stale");
        StaleImage { cache: work.join("cache"), layout, image, _cleanup: Cleanup(vec![work.clone()]), work }
    }
}

/// The user and password of [`Registry::secure`].
pub const REGISTRY_USER: (&str, &str) = ("alice", "s3cret");
/// A user the token server grants only `pull`.
pub const REGISTRY_READER: (&str, &str) = ("bob", "r3ader");

/// Debian's `docker-registry` (distribution 2.8) on a free port of
/// 127.0.0.1, storing into its own directory and logging requests to
/// `registry.log`; stopped when dropped.
pub struct Registry {
    /// `127.0.0.1:PORT`
    pub addr: String,
    pub dir: PathBuf,
    /// The CA that signed the server's certificate (TLS registries).
    pub ca: Option<PathBuf>,
    /// Requests answered by the token server ([`Registry::token`]).
    pub token_requests: Arc<AtomicUsize>,
    child: std::process::Child,
}

impl Registry {
    /// Plain HTTP, no authentication.
    pub fn plain() -> Registry {
        Registry::start(tempdir(), false, None, Arc::default())
    }

    /// TLS (a certificate for IP 127.0.0.1 from a test CA), no authentication.
    pub fn tls() -> Registry {
        Registry::start(tempdir(), true, None, Arc::default())
    }

    /// TLS and htpasswd basic authentication as [`REGISTRY_USER`].
    pub fn secure() -> Registry {
        let dir = tempdir();
        let out = Command::new("htpasswd").args(["-Bbn", REGISTRY_USER.0, REGISTRY_USER.1]).output().expect("htpasswd (apt-get install apache2-utils)");
        assert!(out.status.success());
        std::fs::write(dir.join("htpasswd"), &out.stdout).unwrap();
        let auth = format!("auth:\n  htpasswd:\n    realm: freshen-test\n    path: {}\n", dir.join("htpasswd").display());
        Registry::start(dir, true, Some(auth), Arc::default())
    }

    /// Plain HTTP with bearer tokens, as Docker Hub and most public
    /// registries do: a token server on another port grants
    /// [`REGISTRY_USER`] whatever scope it asks for (RS256 JWTs signed
    /// with openssl, trusted through their `x5c` certificate).
    pub fn token() -> Registry {
        let dir = tempdir();
        let (realm, count) = token_server(&dir);
        let auth = format!(
            "auth:\n  token:\n    realm: {realm}\n    service: freshen-test\n    issuer: freshen-test-issuer\n    rootcertbundle: {}\n",
            dir.join("token.pem").display()
        );
        Registry::start(dir, false, Some(auth), count)
    }

    fn start(dir: PathBuf, tls: bool, auth: Option<String>, token_requests: Arc<AtomicUsize>) -> Registry {
        let port = TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let addr = format!("127.0.0.1:{port}");
        let mut config = format!(
            "version: 0.1\nlog:\n  level: info\n  accesslog:\n    disabled: false\nstorage:\n  filesystem:\n    rootdirectory: {}\n  delete:\n    enabled: true\nhttp:\n  addr: {addr}\n",
            dir.join("data").display()
        );
        let ca = tls.then(|| {
            make_certs(&dir);
            config += &format!("  tls:\n    certificate: {}\n    key: {}\n", dir.join("server.pem").display(), dir.join("server.key").display());
            dir.join("ca.pem")
        });
        config += auth.as_deref().unwrap_or("");
        std::fs::write(dir.join("config.yml"), config).unwrap();
        let log = std::fs::File::create(dir.join("registry.log")).unwrap();
        let child = Command::new("docker-registry")
            .arg("serve")
            .arg(dir.join("config.yml"))
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .expect("docker-registry (apt-get install docker-registry)");
        let r = Registry { addr, dir, ca, token_requests, child };
        for _ in 0..100 {
            if std::net::TcpStream::connect(&r.addr).is_ok() {
                return r;
            }
            std::thread::sleep(std::time::Duration::from_millis(100));
        }
        panic!("docker-registry did not start: {}", r.log());
    }

    /// `docker://ADDR/NAME`
    pub fn image(&self, name: &str) -> String {
        format!("docker://{}/{name}", self.addr)
    }

    /// Everything the registry logged.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.join("registry.log")).unwrap_or_default()
    }

    /// The access-log lines of requests `METHOD PATH…` (path prefix), e.g.
    /// `("PUT", "/v2/app/blobs/uploads/")`, with their status.
    pub fn requests(&self, method: &str, path_prefix: &str) -> Vec<String> {
        let needle = format!("\"{method} {path_prefix}");
        self.log().lines().filter(|l| l.contains(&needle)).map(str::to_string).collect()
    }

    /// Runs skopeo with `args`, asserting success; returns stdout.
    pub fn skopeo(&self, args: &[&str]) -> String {
        let out = Command::new("skopeo").args(args).output().expect("skopeo");
        assert!(out.status.success(), "skopeo {args:?}: {}", String::from_utf8_lossy(&out.stderr));
        String::from_utf8_lossy(&out.stdout).into_owned()
    }
}

/// A test CA (`ca.pem`) and a server certificate for IP 127.0.0.1 it
/// signed (`server.pem`, `server.key`), in `dir`.
pub fn make_certs(dir: &Path) {
    let script = "set -e\n\
        openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -keyout ca.key -out ca.pem -days 2 -subj /CN=freshen-test-ca 2>/dev/null\n\
        openssl req -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -keyout server.key -out server.csr -subj /CN=127.0.0.1 2>/dev/null\n\
        printf 'subjectAltName=IP:127.0.0.1\\nbasicConstraints=CA:FALSE\\nextendedKeyUsage=serverAuth\\n' > ext.cnf\n\
        openssl x509 -req -in server.csr -CA ca.pem -CAkey ca.key -CAcreateserial -out server.pem -days 2 -extfile ext.cnf 2>/dev/null\n";
    let out = Command::new("sh").arg("-c").arg(script).current_dir(dir).output().expect("openssl");
    assert!(out.status.success(), "openssl: {}", String::from_utf8_lossy(&out.stderr));
}

impl Drop for Registry {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// Standard (`+/`, padded) or URL-safe unpadded base64.
pub fn base64(data: &[u8], url: bool) -> String {
    use base64::Engine as _;
    if url {
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(data)
    } else {
        base64::engine::general_purpose::STANDARD.encode(data)
    }
}

/// A token server on 127.0.0.1 for [`Registry::token`]: returns its realm
/// URL and a count of the requests it answered.
fn token_server(dir: &Path) -> (String, Arc<AtomicUsize>) {
    let out = Command::new("openssl")
        .args(["req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", "token.key", "-out", "token.pem", "-days", "2", "-subj", "/CN=freshen-token"])
        .current_dir(dir)
        .output()
        .expect("openssl");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let der = Command::new("openssl").args(["x509", "-in", "token.pem", "-outform", "DER"]).current_dir(dir).output().unwrap().stdout;
    let header = serde_json::json!({"alg": "RS256", "typ": "JWT", "x5c": [base64(&der, false)]}).to_string();
    let key = dir.join("token.key");
    let basic = |(u, p): (&str, &str)| format!("Basic {}", base64(format!("{u}:{p}").as_bytes(), false));
    let (writer, ro) = (basic(REGISTRY_USER), basic(REGISTRY_READER));
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let realm = format!("http://{}/token", listener.local_addr().unwrap());
    let count = Arc::new(AtomicUsize::new(0));
    let c = count.clone();
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { continue };
            let mut reader = BufReader::new(stream.try_clone().unwrap());
            let head = RequestHead::read(&mut reader).unwrap_or(RequestHead { line: String::new(), headers: Vec::new() });
            // (authorized, may push): the last Authorization header decides.
            let (authorized, may_push) = head.headers.iter().rfind(|(k, _)| k.eq_ignore_ascii_case("authorization")).map_or((false, false), |(_, v)| (*v == writer || *v == ro, *v == writer));
            c.fetch_add(1, Ordering::SeqCst);
            let query = head.path().split_once('?').map(|q| q.1.to_string()).unwrap_or_default();
            let access: Vec<serde_json::Value> = query
                .split('&')
                .filter_map(|kv| kv.strip_prefix("scope="))
                .map(freshen_http::percent_decode)
                .filter_map(|scope| {
                    let (rest, actions) = scope.rsplit_once(':')?;
                    let (kind, name) = rest.split_once(':')?;
                    let actions: Vec<&str> = actions.split(',').filter(|a| may_push || *a != "push").collect();
                    Some(serde_json::json!({"type": kind, "name": name, "actions": actions}))
                })
                .collect();
            let (status, body) = if authorized {
                let now = chrono::Utc::now().timestamp();
                let claims = serde_json::json!({"iss": "freshen-test-issuer", "sub": REGISTRY_USER.0, "aud": "freshen-test", "exp": now + 600, "nbf": now - 10, "iat": now - 10, "jti": format!("t{now}"), "access": access});
                let signing_input = format!("{}.{}", base64(header.as_bytes(), true), base64(claims.to_string().as_bytes(), true));
                let mut sign = Command::new("openssl").arg("dgst").arg("-sha256").arg("-sign").arg(&key).stdin(std::process::Stdio::piped()).stdout(std::process::Stdio::piped()).spawn().unwrap();
                sign.stdin.take().unwrap().write_all(signing_input.as_bytes()).unwrap();
                let sig = sign.wait_with_output().unwrap().stdout;
                ("200 OK", serde_json::json!({"token": format!("{signing_input}.{}", base64(&sig, true))}).to_string())
            } else {
                ("401 Unauthorized", r#"{"details":"incorrect username or password"}"#.to_string())
            };
            let _ = write!(stream, "HTTP/1.1 {status}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}", body.len());
        }
    });
    (realm, count)
}
