//! `freshen host install` and `uninstall` on a scratch root (`--root`):
//! what is written (the unit, checked by systemd's own `systemd-analyze
//! verify`; the configuration; private state and cache directories;
//! Dokku's plugin placed and enabled as plugn does), that a second install
//! writes nothing, and that uninstall removes exactly what install wrote:
//! nothing a user changed, nothing a package owns, the state only with
//! `--purge`. Needs systemd (systemd-analyze).

mod common;

use std::collections::BTreeMap;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use common::tempdir;

fn host(args: &[&str], root: &Path) -> Output {
    let out = Command::new(env!("CARGO_BIN_EXE_freshen")).arg("host").args(args).arg("--root").arg(root).output().unwrap();
    assert!(out.status.success(), "freshen host {args:?}: {}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    out
}

fn stdout(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Every path under `root` with its mode and content (or link target).
fn tree(root: &Path) -> BTreeMap<String, (u32, String)> {
    let mut out = BTreeMap::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(dir) = stack.pop() {
        for e in std::fs::read_dir(&dir).unwrap() {
            let p = e.unwrap().path();
            let meta = p.symlink_metadata().unwrap();
            let what = if meta.file_type().is_symlink() {
                format!("-> {}", std::fs::read_link(&p).unwrap().display())
            } else if meta.is_dir() {
                stack.push(p.clone());
                String::new()
            } else {
                String::from_utf8_lossy(&std::fs::read(&p).unwrap()).into_owned()
            };
            out.insert(p.strip_prefix(root).unwrap().display().to_string(), (meta.permissions().mode() & 0o7777, what));
        }
    }
    out
}

/// A scratch root where Dokku is installed (its plugin directories).
fn scratch_root() -> PathBuf {
    let root = tempdir().join("root");
    std::fs::create_dir_all(root.join("var/lib/dokku/plugins/available")).unwrap();
    std::fs::create_dir_all(root.join("etc/systemd/system")).unwrap();
    root
}

#[test]
fn install_is_idempotent_and_uninstall_removes_exactly_what_it_wrote() {
    let root = scratch_root();
    let before = tree(&root);
    let first = stdout(&host(&["install", "--dokku", "--listen", "127.0.0.1:9555"], &root));
    assert!(first.contains(&format!("wrote {}", root.join("etc/systemd/system/freshen.service").display())), "{first}");

    // The unit runs this binary, and systemd accepts it.
    let unit = root.join("etc/systemd/system/freshen.service");
    let text = std::fs::read_to_string(&unit).unwrap();
    let exe = std::fs::canonicalize(env!("CARGO_BIN_EXE_freshen")).unwrap();
    assert!(text.contains(&format!("\nExecStart={} watch --config /etc/freshen/freshen.toml\n", exe.display())), "{text}");
    let verify = |unit: &Path| Command::new("systemd-analyze").args(["verify", "--man=no"]).arg(unit).output().expect("systemd-analyze");
    let out = verify(&unit);
    assert!(out.status.success() && out.stderr.is_empty(), "systemd-analyze verify: {}", String::from_utf8_lossy(&out.stderr));
    // The check is real: a misspelt key and a missing binary are reported.
    let broken = root.parent().unwrap().join("broken.service");
    std::fs::write(&broken, text.replace("NoNewPrivileges=", "NoNewPrivilege=").replace(&exe.display().to_string(), "/nonexistent/freshen")).unwrap();
    let out = verify(&broken);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success() && err.contains("Unknown key 'NoNewPrivilege'") && err.contains("/nonexistent/freshen"), "{err}");

    // Enabled as `systemctl enable` would; private directories; the
    // configuration reads back with the address given.
    let t = tree(&root);
    assert_eq!(t["etc/systemd/system/multi-user.target.wants/freshen.service"].1, "-> /etc/systemd/system/freshen.service");
    assert_eq!((t["var/lib/freshen"].0, t["var/cache/freshen"].0, t["etc/freshen/freshen.toml"].0), (0o700, 0o700, 0o600));
    let config = root.join("etc/freshen/freshen.toml");
    let out = Command::new(env!("CARGO_BIN_EXE_freshen")).args(["run", "--print-config", "--config"]).arg(&config).output().unwrap();
    let printed = stdout(&out);
    assert!(out.status.success() && printed.contains("listen = \"127.0.0.1:9555\"") && printed.contains("cache_dir = \"/var/cache/freshen\""), "{printed}");
    // The plugin: every file of dokku-plugin/ with its mode, enabled by a
    // link as plugn's `enable` makes it.
    let plugin_src = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../dokku-plugin");
    let mut files = 0;
    for (rel, (mode, content)) in tree(&plugin_src).into_iter().filter(|(_, (_, c))| !c.is_empty()) {
        assert_eq!(t[&format!("var/lib/dokku/plugins/available/freshen/{rel}")], (mode, content), "{rel}");
        files += 1;
    }
    assert!(files >= 7, "{files} plugin files");
    assert_eq!(t["var/lib/dokku/plugins/enabled/freshen"].1, "-> /var/lib/dokku/plugins/available/freshen");

    // Again: nothing written, and it says so.
    let again = stdout(&host(&["install", "--dokku", "--listen", "127.0.0.1:9555"], &root));
    assert_eq!(again.trim(), "nothing to do: freshen is installed as before");
    assert_eq!(tree(&root), t);

    // The user edits the configuration and a pass leaves state: uninstall
    // keeps both and removes the rest.
    std::fs::write(&config, std::fs::read_to_string(&config).unwrap() + "pending_after = \"2h\"\n").unwrap();
    std::fs::write(root.join("var/lib/freshen/state.db"), "state").unwrap();
    let out = stdout(&host(&["uninstall"], &root));
    assert!(out.contains("kept") && out.contains("freshen.toml: changed since it was installed"), "{out}");
    let mut left = tree(&root);
    for kept in ["etc/freshen", "etc/freshen/freshen.toml", "var/cache", "var/cache/freshen", "var/lib/freshen", "var/lib/freshen/state.db"] {
        assert!(left.remove(kept).is_some(), "{kept} was removed: {out}");
    }
    assert_eq!(left, before, "uninstall left or removed something else: {out}");
    assert!(stdout(&host(&["uninstall"], &root)).starts_with("nothing to uninstall"));

    // --purge takes the state and the cache too; the configuration the
    // user wrote stays.
    host(&["install"], &root);
    let out = stdout(&host(&["uninstall", "--purge"], &root));
    let mut left = tree(&root);
    // (var/cache held the cache when the first install was removed.)
    for kept in ["etc/freshen", "etc/freshen/freshen.toml", "var/cache"] {
        assert!(left.remove(kept).is_some(), "{kept}: {out}");
    }
    assert_eq!(left, before, "{out}");
}

#[test]
fn the_packaged_unit_is_enabled_not_copied() {
    let root = scratch_root();
    let packaged = root.join("lib/systemd/system/freshen.service");
    std::fs::create_dir_all(packaged.parent().unwrap()).unwrap();
    std::fs::write(&packaged, "[Unit]\nDescription=as the package ships it\n").unwrap();
    let out = stdout(&host(&["install"], &root));
    assert!(out.contains("using the packaged unit"), "{out}");
    assert!(!root.join("etc/systemd/system/freshen.service").exists());
    assert_eq!(std::fs::read_link(root.join("etc/systemd/system/multi-user.target.wants/freshen.service")).unwrap(), Path::new("/lib/systemd/system/freshen.service"));
    host(&["uninstall", "--purge"], &root);
    assert_eq!(std::fs::read_to_string(&packaged).unwrap(), "[Unit]\nDescription=as the package ships it\n", "the package's unit is the package's");
    assert!(!root.join("etc/systemd/system/multi-user.target.wants").exists());

    // --dokku where Dokku is not: a one-line error, nothing half done.
    let bare = tempdir().join("bare");
    std::fs::create_dir_all(&bare).unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_freshen")).args(["host", "install", "--dokku", "--root"]).arg(&bare).output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(err.starts_with("error: --dokku: Dokku is not installed here: no ") && err.lines().count() == 1, "{err}");
    assert_eq!(std::fs::read_dir(&bare).unwrap().count(), 0, "written before the error");
}
