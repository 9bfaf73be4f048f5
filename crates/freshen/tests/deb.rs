//! The Debian package: `packaging/deb.sh` packs the test's own binary, and
//! the .deb is installed with `dpkg -i` into a clean bookworm root built by
//! mmdebstrap (with man-db, systemd and runc), where the binary, its man
//! pages, completions and systemd unit are used as an operator would; then
//! `dpkg -r` must leave nothing of the package but its state, and
//! `dpkg -P` remove the state too. Needs root (mmdebstrap, chroot, unshare)
//! and Debian's archive.

mod common;

use std::collections::BTreeSet;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use common::*;

/// A clean bookworm minbase with what the package's test uses: man to read
/// the pages, systemd for `systemd-analyze` and `systemctl`, runc to satisfy
/// the package's Depends.
const ROOT: RootfsSpec = RootfsSpec { include: &["man-db", "systemd", "runc"], ..STALE };

/// Where dpkg and the programs its triggers run keep their own records,
/// which installing and removing a package rightly changes, and `run` (a
/// tmpfs on a booted system, where systemd-analyze leaves its runtime files).
const BOOKKEEPING: &[&str] = &["var/lib/dpkg", "var/log", "var/cache/man", "var/cache/ldconfig", "var/cache/debconf", "run"];

/// The state `freshen host install` and the host automation write, which
/// `dpkg -r` keeps and `dpkg -P` removes.
const STATE: &[&str] = &["var/lib/freshen", "var/cache/freshen", "etc/freshen"];

#[test]
fn deb_installs_works_and_removes_cleanly() {
    let dir = tempdir();
    let _cleanup = Cleanup(vec![dir.clone()]);
    let deb = build_deb(&dir);
    let version = format!("{}-1", env!("CARGO_PKG_VERSION"));
    let arch = String::from_utf8(Command::new("dpkg").arg("--print-architecture").output().unwrap().stdout).unwrap();
    assert_eq!(deb.file_name().unwrap().to_str().unwrap(), format!("freshen_{version}_{}.deb", arch.trim()));

    // The same inputs give the same bytes.
    let again = build_deb(&dir.join("again"));
    assert!(std::fs::read(&deb).unwrap() == std::fs::read(&again).unwrap(), "two builds of the package differ");

    let control = run_ok(Command::new("dpkg-deb").arg("--field").arg(&deb));
    let depends = control.lines().find_map(|l| l.strip_prefix("Depends: ")).expect("Depends");
    assert!(depends.contains("libc6 (>= ") && depends.contains("runc | crun"), "Depends: {depends}");

    let chroot = Chroot::copy_of(&rootfs(&ROOT));
    std::fs::copy(&deb, chroot.root.join("tmp/freshen.deb")).unwrap();
    let before = files(&chroot.root);

    chroot.run(&["dpkg", "-i", "/tmp/freshen.deb"]);
    // Every installed file matches the package's md5sums.
    assert_eq!(chroot.run(&["dpkg", "--verify", "freshen"]), "");
    assert_eq!(chroot.run(&["freshen", "--version"]), format!("freshen {}\n", env!("CARGO_PKG_VERSION")));

    // The man pages: the main one carries the clap about; nested commands have their own.
    let man = chroot.run(&["env", "MANPAGER=cat", "MANWIDTH=80", "man", "freshen"]);
    assert!(man.contains("Find and fix stale OS packages in container images"), "man freshen:\n{man}");
    assert!(man.contains("freshen-scan(1)"), "man freshen names no subcommand pages:\n{man}");
    let prune = chroot.run(&["env", "MANPAGER=cat", "man", "freshen-cache-prune"]);
    assert!(prune.contains("--max-size"), "man freshen-cache-prune:\n{prune}");
    // The hidden packaging command has no page.
    assert!(!in_chroot(&chroot.root, &["man", "-w", "freshen-manpages"]).status.success());

    // Completions: the packaged bash file is what the command prints.
    let bash = chroot.run(&["freshen", "completions", "bash"]);
    assert!(bash.contains("complete -F _freshen"), "freshen completions bash:\n{bash}");
    assert_eq!(std::fs::read_to_string(chroot.root.join("usr/share/bash-completion/completions/freshen")).unwrap(), bash);
    for f in ["usr/share/zsh/vendor-completions/_freshen", "usr/share/fish/vendor_completions.d/freshen.fish"] {
        assert!(std::fs::metadata(chroot.root.join(f)).unwrap().len() > 0, "{f} empty");
    }

    // The unit as shipped passes systemd's own check, and is not enabled.
    let unit = "/lib/systemd/system/freshen.service";
    let repo = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    assert_eq!(std::fs::read(chroot.root.join(&unit[1..])).unwrap(), std::fs::read(repo.join("dist/freshen.service")).unwrap());
    let verify = in_chroot(&chroot.root, &["systemd-analyze", "verify", unit]);
    assert!(verify.status.success() && verify.stderr.is_empty(), "systemd-analyze verify: {}", String::from_utf8_lossy(&verify.stderr));
    let enabled = in_chroot(&chroot.root, &["systemctl", "is-enabled", "freshen.service"]);
    assert_eq!(String::from_utf8_lossy(&enabled.stdout).trim(), "disabled");

    // The Dokku plugin with its modes.
    let plugin = chroot.root.join("usr/share/freshen/dokku-plugin");
    for f in tree(&repo.join("dokku-plugin")) {
        let (want, got) = (mode(&repo.join("dokku-plugin").join(&f)), mode(&plugin.join(&f)));
        assert_eq!(got & 0o111 != 0, want & 0o111 != 0, "{f}: mode {got:o}, in the repository {want:o}");
    }

    // What `freshen host install` and a pass leave: state, cache,
    // configuration, the unit enabled.
    chroot.run(&["mkdir", "-p", "/var/lib/freshen", "/var/cache/freshen/layers", "/etc/freshen"]);
    chroot.run(&["sh", "-c", "echo 'state_dir = \"/var/lib/freshen\"' > /etc/freshen/freshen.toml; touch /var/lib/freshen/state.db"]);
    chroot.run(&["systemctl", "enable", "freshen.service"]);
    assert_eq!(chroot.run(&["systemctl", "is-enabled", "freshen.service"]).trim(), "enabled");

    chroot.run(&["dpkg", "-r", "freshen"]);
    let removed = files(&chroot.root);
    let state: BTreeSet<String> = removed.difference(&before).cloned().collect();
    assert!(state.iter().all(|f| STATE.iter().any(|s| f.starts_with(s))), "dpkg -r left: {state:#?}");
    assert!(state.iter().any(|f| f.starts_with("var/lib/freshen/state.db")), "dpkg -r removed the state: {state:#?}");
    let gone: Vec<_> = before.difference(&removed).collect();
    assert!(gone.is_empty(), "dpkg -r removed what was there before: {gone:#?}");

    chroot.run(&["dpkg", "-P", "freshen"]);
    assert_eq!(files(&chroot.root), before, "dpkg -P left the state or took more");
    let status = in_chroot(&chroot.root, &["dpkg", "-s", "freshen"]);
    assert!(!status.status.success(), "dpkg still knows freshen after purge");
}

/// `packaging/deb.sh` run on the test's binary, writing into `out`.
fn build_deb(out: &Path) -> PathBuf {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../packaging/deb.sh");
    let path = run_ok(Command::new("bash").arg(script).arg("--binary").arg(env!("CARGO_BIN_EXE_freshen")).arg("--out").arg(out));
    PathBuf::from(path.trim())
}

fn run_ok(cmd: &mut Command) -> String {
    let out = cmd.output().unwrap();
    assert!(out.status.success(), "{cmd:?}: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8(out.stdout).unwrap()
}

/// `args` in the root with its own /proc (a private mount and PID
/// namespace, gone with the process), whatever the exit status.
fn in_chroot(root: &Path, args: &[&str]) -> Output {
    Command::new("unshare")
        .args(["--mount", "--pid", "--fork"])
        .arg(format!("--mount-proc={}", root.join("proc").display()))
        .arg("chroot")
        .arg(root)
        .args(args)
        .env("LC_ALL", "C")
        .env("SYSTEMD_COLORS", "0")
        .output()
        .unwrap()
}

/// Every path under `root` with its type and mode (symlinks with their
/// target), dpkg's and its triggers' bookkeeping left out.
fn files(root: &Path) -> BTreeSet<String> {
    tree(root)
        .into_iter()
        .filter(|f| !BOOKKEEPING.iter().any(|b| f == b || f.starts_with(&format!("{b}/"))))
        .map(|f| {
            let p = root.join(&f);
            match std::fs::read_link(&p) {
                Ok(target) => format!("{f} -> {}", target.display()),
                Err(_) => format!("{f} {:o}", mode(&p)),
            }
        })
        .collect()
}

/// The relative paths under `dir`, depth first, symlinks not followed.
fn tree(dir: &Path) -> Vec<String> {
    let mut out = Vec::new();
    let mut stack = vec![PathBuf::new()];
    while let Some(rel) = stack.pop() {
        for e in std::fs::read_dir(dir.join(&rel)).unwrap() {
            let e = e.unwrap();
            let rel = rel.join(e.file_name());
            if e.file_type().unwrap().is_dir() {
                stack.push(rel.clone());
            }
            out.push(rel.to_string_lossy().into_owned());
        }
    }
    out
}

fn mode(p: &Path) -> u32 {
    std::fs::symlink_metadata(p).unwrap().permissions().mode()
}
