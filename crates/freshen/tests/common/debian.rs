//! Real Debian root filesystems built with mmdebstrap from Debian's archive
//! (cached once per day in the target directory, keyed by what they are
//! built from), and apt run in a chroot of such a root as the oracle for
//! what freshen reports. Needs root and Debian's archive.

use std::path::{Path, PathBuf};
use std::collections::BTreeMap;
use std::process::Command;
use std::sync::{Arc, Mutex};

use sha2::{Digest, Sha256};

use super::{kept_back, tempdir, Cleanup};

/// What mmdebstrap builds: one suite of Debian's archive, whose apt
/// sources are then replaced by `sources` (written to `sources_path`, every
/// other sources file removed), then `customize` runs on the host as
/// `sh -c CUSTOMIZE sh ROOT`, like mmdebstrap's own hooks.
pub struct RootfsSpec {
    /// The only suite the root is built from, e.g. `bookworm`.
    pub suite: &'static str,
    /// mmdebstrap's `--variant`, e.g. `minbase`.
    pub variant: &'static str,
    /// Extra packages (`--include`), `name` or `name:arch`.
    pub include: &'static [&'static str],
    /// `--architectures`; empty for the host's.
    pub architectures: &'static [&'static str],
    /// Relative to the root: `etc/apt/sources.list` or a `.sources` file.
    pub sources_path: &'static str,
    pub sources: &'static str,
    pub customize: &'static str,
}

/// One-line sources for a Debian release, its -updates and its -security suites.
macro_rules! debian_sources {
    ($suite:literal) => {
        concat!(
            "deb http://deb.debian.org/debian ", $suite, " main\n",
            "deb http://deb.debian.org/debian ", $suite, "-updates main\n",
            "deb http://deb.debian.org/debian-security ", $suite, "-security main\n"
        )
    };
}
#[allow(unused_imports)]
pub(crate) use debian_sources;

/// The stale bookworm minbase: built from the `bookworm` main suite only
/// (so the security suite has fixes it lacks), with sources naming
/// bookworm, bookworm-updates and bookworm-security.
pub const STALE: RootfsSpec = RootfsSpec {
    suite: "bookworm",
    variant: "minbase",
    include: &[],
    architectures: &[],
    sources_path: "etc/apt/sources.list",
    sources: debian_sources!("bookworm"),
    customize: "",
};

/// [`STALE`], built once per day and shared by the test binaries;
/// FRESHEN_STALE_ROOTFS names a prebuilt one.
pub fn stale_rootfs() -> PathBuf {
    if let Some(p) = std::env::var_os("FRESHEN_STALE_ROOTFS") {
        return PathBuf::from(p);
    }
    rootfs(&STALE)
}

/// A realistic stale bookworm server image: [`STALE`] with nginx,
/// openssh-server, python3, ca-certificates, locales, tzdata and man-db,
/// then edited as images are: a line appended to nginx's conffile, to the
/// ucf-managed `sshd_config` and to openssh-client's `ssh_config`, the host
/// keys removed (each container makes its own), a user `app` and an `/app`
/// directory.
pub const SERVER: RootfsSpec = RootfsSpec {
    include: &["nginx", "openssh-server", "python3", "ca-certificates", "locales", "tzdata", "man-db"],
    customize: "set -e; printf '\\n# site: larger uploads\\n# client_max_body_size 20m;\\n' >> \"$1/etc/nginx/nginx.conf\"; \
        printf '\\n# site\\nPermitRootLogin no\\n' >> \"$1/etc/ssh/sshd_config\"; \
        printf '\\n# site\\n' >> \"$1/etc/ssh/ssh_config\"; \
        rm -f \"$1\"/etc/ssh/ssh_host_*; \
        chroot \"$1\" useradd -m -s /bin/bash app; \
        mkdir -p \"$1/app\"; echo 'print(\"hello\")' > \"$1/app/main.py\"",
    ..STALE
};

/// [`SERVER`], built once per day.
pub fn realistic_rootfs() -> PathBuf {
    rootfs(&SERVER)
}

/// The root filesystem `spec` describes, built today or now.
pub fn rootfs(spec: &RootfsSpec) -> PathBuf {
    let key = format!(
        "{}\0{}\0{:?}\0{:?}\0{}\0{}\0{}",
        spec.suite, spec.variant, spec.include, spec.architectures, spec.sources_path, spec.sources, spec.customize
    );
    cached(&format!("{}-{}", spec.suite, spec.variant), &key, |tmp| {
        let mut cmd = Command::new("mmdebstrap");
        cmd.args(["--quiet", "--mode=root"]).arg(format!("--variant={}", spec.variant));
        if !spec.include.is_empty() {
            cmd.arg(format!("--include={}", spec.include.join(",")));
        }
        if !spec.architectures.is_empty() {
            cmd.arg(format!("--architectures={}", spec.architectures.join(",")));
        }
        let out = cmd.arg(spec.suite).arg(tmp).arg("http://deb.debian.org/debian").output().expect("mmdebstrap (apt-get install mmdebstrap)");
        assert!(out.status.success(), "mmdebstrap {}: {}", spec.suite, String::from_utf8_lossy(&out.stderr));
        let _ = std::fs::remove_file(tmp.join("etc/apt/sources.list"));
        for f in std::fs::read_dir(tmp.join("etc/apt/sources.list.d")).unwrap() {
            std::fs::remove_file(f.unwrap().path()).unwrap();
        }
        std::fs::write(tmp.join(spec.sources_path), spec.sources).unwrap();
        run_hook(spec.customize, tmp);
    })
}

/// A copy of `base` changed by `customize` (`sh -c CUSTOMIZE sh ROOT` on
/// the host), cached like [`rootfs`].
pub fn derived_rootfs(base: &Path, customize: &str) -> PathBuf {
    cached("derived", &format!("{}\0{customize}", base.display()), |tmp| {
        assert!(Command::new("cp").arg("-a").arg(base).arg(tmp).status().unwrap().success());
        run_hook(customize, tmp);
    })
}

fn run_hook(customize: &str, root: &Path) {
    if customize.is_empty() {
        return;
    }
    let out = Command::new("sh").args(["-ec", customize, "sh"]).arg(root).output().unwrap();
    assert!(out.status.success(), "customize `{customize}`: {}", String::from_utf8_lossy(&out.stderr));
}

/// `TARGET_TMPDIR/rootfs-NAME-HASH-DAY`, made by `build` into a temporary
/// directory (removed if the build fails) and renamed into place, unless it
/// is there already.
fn cached(name: &str, key: &str, build: impl FnOnce(&Path)) -> PathBuf {
    let day = chrono::Utc::now().format("%Y%m%d");
    let hash = hex(&Sha256::digest(key.as_bytes())[..6]);
    let base = Path::new(env!("CARGO_TARGET_TMPDIR"));
    let dir = base.join(format!("rootfs-{name}-{hash}-{day}"));
    // Tests of one binary that need the same root wait for one build.
    static BUILDING: Mutex<BTreeMap<String, Arc<Mutex<()>>>> = Mutex::new(BTreeMap::new());
    let lock = BUILDING.lock().unwrap_or_else(|e| e.into_inner()).entry(hash.clone()).or_default().clone();
    let _building = lock.lock().unwrap_or_else(|e| e.into_inner());
    if dir.join("etc/debian_version").is_file() {
        return dir;
    }
    // Earlier days' builds of the same root go.
    let prefix = format!("rootfs-{name}-{hash}-");
    for old in std::fs::read_dir(base).unwrap().flatten() {
        if old.file_name().to_string_lossy().starts_with(&prefix) {
            let _ = std::fs::remove_dir_all(old.path());
        }
    }
    let tmp = base.join(format!(".rootfs-{hash}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&tmp);
    let _failed = Cleanup(vec![tmp.clone()]);
    build(&tmp);
    let _ = std::fs::rename(&tmp, &dir);
    dir
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// A copy of a root filesystem to run commands in with chroot (its own
/// `resolv.conf` replaced by the host's), removed on drop.
pub struct Chroot {
    pub root: PathBuf,
    _cleanup: Cleanup,
}

impl Chroot {
    pub fn copy_of(rootfs: &Path) -> Chroot {
        let tmp = tempdir();
        let root = tmp.join("chroot");
        assert!(Command::new("cp").arg("-a").arg(rootfs).arg(&root).status().unwrap().success());
        Chroot { _cleanup: Cleanup(vec![tmp]), ..Chroot::at(root) }
    }

    /// Runs in `root` itself (which the commands may change), e.g. an
    /// unpacked image.
    pub fn at(root: PathBuf) -> Chroot {
        let resolv = root.join("etc/resolv.conf");
        let _ = std::fs::remove_file(&resolv);
        std::fs::copy("/etc/resolv.conf", &resolv).unwrap();
        Chroot { root, _cleanup: Cleanup(Vec::new()) }
    }

    /// Runs `args` in the chroot (C locale), asserts success, returns stdout.
    pub fn run(&self, args: &[&str]) -> String {
        let out = Command::new("chroot").arg(&self.root).args(args).env("LC_ALL", "C").output().unwrap();
        assert!(out.status.success(), "{args:?}: {}", String::from_utf8_lossy(&out.stderr));
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// Sorted lines of `args`' output.
    pub fn lines(&self, args: &[&str]) -> Vec<String> {
        let mut l: Vec<String> = self.run(args).lines().map(str::to_string).collect();
        l.sort();
        l
    }
}

/// One pending update, as freshen or apt sees it.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Pending {
    pub package: String,
    pub arch: String,
    pub installed: String,
    pub candidate: String,
    pub security: bool,
    pub held_back: bool,
}

/// `name:arch installed -> candidate [security] [held back]`
impl std::fmt::Display for Pending {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}:{} {} -> {}", self.package, self.arch, self.installed, self.candidate)?;
        f.write_str(if self.security { " security" } else { "" })?;
        f.write_str(if self.held_back { " held-back" } else { "" })
    }
}

/// The updates of a freshen scan (`--format json`), sorted.
pub fn pending(v: &serde_json::Value) -> Vec<Pending> {
    let s = |u: &serde_json::Value, k: &str| u[k].as_str().unwrap_or_else(|| panic!("no {k} in {u}")).to_string();
    let mut out: Vec<Pending> = v["updates"]
        .as_array()
        .unwrap()
        .iter()
        .map(|u| Pending {
            package: s(u, "package"),
            arch: s(u, "arch"),
            installed: s(u, "installed"),
            candidate: s(u, "candidate"),
            security: u["security"].as_bool().unwrap(),
            held_back: u["held_back"].as_bool().unwrap(),
        })
        .collect();
    out.sort();
    out
}

/// apt's view of `chroot` after `apt-get update`: `apt list --upgradable`
/// for the package, architecture, installed version and candidate;
/// `apt-get -s upgrade` for what is kept back; and the security flag as
/// apt's IsSecurityUpdate decides it, from `apt-cache policy`: the
/// candidate or a version between installed and candidate is offered by a
/// suite ending in `-security`. Sorted.
pub fn apt_pending(chroot: &Chroot) -> Vec<Pending> {
    chroot.run(&["apt-get", "-q", "update"]);
    let native = chroot.run(&["dpkg", "--print-architecture"]).trim().to_string();
    // apt names a foreign-architecture package `name:arch`.
    let qualified = |name: &str, arch: &str| if arch == native || arch == "all" { name.to_string() } else { format!("{name}:{arch}") };
    let kept = kept_back(&chroot.run(&["apt-get", "-s", "upgrade"]));
    let mut out: Vec<Pending> = chroot
        .run(&["apt", "list", "--upgradable"])
        .lines()
        .filter_map(|l| {
            let (name, rest) = l.split_once('/')?;
            let installed = rest.split_once("[upgradable from: ")?.1.trim_end_matches(']');
            let f: Vec<&str> = rest.split_whitespace().collect();
            Some(Pending {
                package: name.to_string(),
                arch: f[2].to_string(),
                installed: installed.to_string(),
                candidate: f[1].to_string(),
                security: false,
                held_back: kept.contains(&qualified(name, f[2])),
            })
        })
        .collect();
    if out.is_empty() {
        return out;
    }
    let names: Vec<String> = out.iter().map(|p| qualified(&p.package, &p.arch)).collect();
    let mut args = vec!["apt-cache", "policy"];
    args.extend(names.iter().map(String::as_str));
    let policy = version_suites(&chroot.run(&args));
    for (p, name) in out.iter_mut().zip(&names) {
        let versions = policy.get(name).unwrap_or_else(|| panic!("`apt-cache policy` did not show {name}"));
        p.security = versions.iter().any(|(v, suites)| {
            suites.iter().any(|s| s.ends_with("-security")) && dpkg_lt(&p.installed, v) && !dpkg_lt(&p.candidate, v)
        });
    }
    out.sort();
    out
}

/// `apt-cache policy` output: for each package (`name`, `name:arch` for a
/// foreign architecture), the versions of its
/// version table with the suites offering each.
fn version_suites(policy: &str) -> std::collections::HashMap<String, Vec<(String, Vec<String>)>> {
    let mut out: std::collections::HashMap<String, Vec<(String, Vec<String>)>> = Default::default();
    let mut current: Option<String> = None;
    for l in policy.lines() {
        let indent = l.len() - l.trim_start().len();
        let f: Vec<&str> = l.split_whitespace().collect();
        if indent == 0 && l.ends_with(':') {
            current = Some(l.trim_end_matches(':').to_string());
            out.entry(l.trim_end_matches(':').to_string()).or_default();
        } else if l.trim_start().starts_with("***") || (indent == 5 && f.len() == 2) {
            let v = if f[0] == "***" { f[1] } else { f[0] };
            out.get_mut(current.as_ref().unwrap()).unwrap().push((v.to_string(), Vec::new()));
        } else if indent == 8 && f.len() >= 3 {
            let suite = f[2].split('/').next().unwrap().to_string();
            out.get_mut(current.as_ref().unwrap()).unwrap().last_mut().unwrap().1.push(suite);
        }
    }
    out
}

/// `a < b` in dpkg's version order, as dpkg itself decides.
pub fn dpkg_lt(a: &str, b: &str) -> bool {
    Command::new("dpkg").args(["--compare-versions", a, "lt", b]).status().unwrap().success()
}
