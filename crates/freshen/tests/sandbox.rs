//! The sandbox holds against a maintainer script that tries to leave it:
//! `hostile`'s postinst (tests/fixtures/make-repo.sh) tries to reach a TCP
//! listener on the host's 127.0.0.1 and an abstract unix socket of the
//! host, to write to a host path through `/proc/self/root`, `/proc/1/root`
//! and `..`, to mount, to unshare, to write `/proc/sys` and `/sys`, and to
//! fork 4000 processes and allocate 512 MiB. The patch succeeds under
//! `--memory 256M --pids 1024`; none of it happened.
//! Needs root, runc and Debian's archive (the stale base image); x86_64
//! (the script calls mount(2) and unshare(2) by number).

mod common;

use std::os::linux::net::SocketAddrExt;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use common::*;

/// Counts connections to `accept`; returns the counter.
fn count_connections<L: Send + 'static>(listener: L, accept: fn(&L) -> bool) -> Arc<AtomicUsize> {
    let n = Arc::new(AtomicUsize::new(0));
    let seen = n.clone();
    std::thread::spawn(move || {
        while accept(&listener) {
            seen.fetch_add(1, Ordering::SeqCst);
        }
    });
    n
}

#[test]
fn a_hostile_maintainer_script_stays_inside() {
    let stale = StaleImage::new("base");
    let r = repo();
    let base = stale_rootfs();
    let tcp = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = tcp.local_addr().unwrap().port();
    let tcp_hits = count_connections(tcp, |l| l.accept().is_ok());
    let name = format!("freshen-hostile-{}", std::process::id());
    let abstract_listener = std::os::unix::net::UnixListener::bind_addr(&std::os::unix::net::SocketAddr::from_abstract_name(name.as_bytes()).unwrap()).unwrap();
    let unix_hits = count_connections(abstract_listener, |l| l.accept().is_ok());
    let marker = stale.work.join("escaped");

    let app = Rootfs { dir: tempdir() };
    let _cleanup = Cleanup(vec![app.dir.clone()]);
    app.write("etc/apt/sources.list", &format!("deb {} scripts-security main\n", r.url));
    app.write_bytes("etc/apt/trusted.gpg.d/test.gpg", &std::fs::read(r.dir.join("keys/test.gpg")).unwrap());
    app.write("etc/hostile.conf", &format!("PORT={port}\nABSTRACT={name}\nMARKER={}\n", marker.display()));
    let status = std::fs::read_to_string(base.join("var/lib/dpkg/status")).unwrap();
    app.write("var/lib/dpkg/status", &format!("{}\n\n{}", status.trim_end(), stanza("hostile", "1.0")));
    let layout = stale.work.join("app");
    let image = pack(&[(&base, "base"), (&app.dir, "install hostile")], &layout, "app");

    let out = freshen(&["patch", &image, "-o", &format!("oci:{}:patched", layout.display()), "--memory", "256M", "--pids", "1024"], &stale.cache);
    assert_eq!(out.status.code(), Some(0), "{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    let root = umoci_unpack(&layout, "patched", &stale.work.join("u"));
    let results = std::fs::read_to_string(root.join("var/lib/hostile/results")).expect("the postinst ran and recorded its attempts");
    let said = |what: &str| results.lines().find_map(|l| l.strip_prefix(&format!("{what}: "))).unwrap_or_else(|| panic!("no {what} in {results}")).to_string();
    for (what, expected) in [("memory", "killed"), ("tcp", "refused"), ("abstract", "refused"), ("mount", "refused"), ("unshare", "refused"), ("procsys", "refused"), ("sys", "refused")] {
        assert_eq!(said(what), expected, "{what}: {results}");
    }
    let forks: usize = said("forks").parse().unwrap();
    assert!(forks > 100 && forks < 1024, "the pids limit did not hold: {forks} processes forked");
    std::thread::sleep(std::time::Duration::from_millis(200));
    assert_eq!(tcp_hits.load(Ordering::SeqCst), 0, "the script reached the host's 127.0.0.1");
    assert_eq!(unix_hits.load(Ordering::SeqCst), 0, "the script reached the host's abstract socket");
    for n in 1..=3 {
        let p = format!("{}.{n}", marker.display());
        assert!(!std::path::Path::new(&p).exists(), "{p} was written on the host");
    }
}

/// The cache (layers unpacked as root, setuid files and device nodes
/// included) is private: created 0700, closed to other users, and one that
/// another user could change is refused.
#[test]
fn the_cache_is_private() {
    let work = tempdir();
    let root = Rootfs::new(DEBIAN_OS);
    root.with_sources(&format!("deb {} stable main\n", repo().url));
    root.write("var/lib/dpkg/status", &stanza("hello", "1.0-1"));
    let image = pack(&[(&root.dir, "base")], &work.join("oci"), "c");
    let cache = work.join("deep/cache");
    // The test's own directories must let `nobody` reach the cache, so
    // that only the cache's mode stops it.
    std::process::Command::new("chmod").args(["0755"]).arg(&work).arg(work.join("deep")).status().ok();
    let out = freshen(&["scan", &image], &cache);
    assert_eq!(out.status.code(), Some(3), "{}", String::from_utf8_lossy(&out.stderr));
    use std::os::unix::fs::PermissionsExt;
    assert_eq!(std::fs::metadata(&cache).unwrap().permissions().mode() & 0o7777, 0o700);
    let nobody = std::process::Command::new("runuser").args(["-u", "nobody", "--", "ls"]).arg(cache.join("tmp")).output().unwrap();
    assert!(!nobody.status.success(), "another user can list the cache");
    // Too open: made private when only readable, refused when writable.
    std::fs::set_permissions(&cache, std::fs::Permissions::from_mode(0o755)).unwrap();
    assert_eq!(freshen(&["scan", &image], &cache).status.code(), Some(3));
    assert_eq!(std::fs::metadata(&cache).unwrap().permissions().mode() & 0o7777, 0o700);
    std::fs::set_permissions(&cache, std::fs::Permissions::from_mode(0o777)).unwrap();
    assert_error(&freshen(&["scan", &image], &cache), &["cache directory", "writable by group or others"]);
    std::fs::set_permissions(&cache, std::fs::Permissions::from_mode(0o700)).unwrap();
    std::process::Command::new("chown").arg("nobody").arg(&cache).status().unwrap();
    assert_error(&freshen(&["scan", &image], &cache), &["cache directory", "owned by uid"]);
    let link = work.join("link");
    std::os::unix::fs::symlink(work.join("elsewhere"), &link).unwrap();
    assert_error(&freshen(&["scan", &image], &link), &["cache directory", "not a directory"]);
}
