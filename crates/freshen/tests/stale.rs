//! The real thing: a stale Debian bookworm minbase built from the `bookworm`
//! main suite only (mmdebstrap, Debian's archive), whose sources also name
//! bookworm-updates and bookworm-security, packed as an OCI image by
//! freshen's own writer. The oracle is apt in a chroot of the same rootfs.
//! Needs root (mmdebstrap, chroot) and Debian's archive.

mod common;

use std::path::Path;
use std::process::Command;

use common::*;

/// apt in a chroot: (package, candidate, security) of `apt list --upgradable`
/// and the packages `apt-get -s upgrade` keeps back.
fn apt_in_chroot(rootfs: &Path) -> (Vec<(String, String, bool)>, Vec<String>) {
    let tmp = tempdir();
    let _cleanup = Cleanup(vec![tmp.clone()]);
    let root = tmp.join("chroot");
    assert!(Command::new("cp").arg("-a").arg(rootfs).arg(&root).status().unwrap().success());
    std::fs::copy("/etc/resolv.conf", root.join("etc/resolv.conf")).unwrap();
    let run = |args: &[&str]| {
        let out = Command::new("chroot").arg(&root).args(args).env("LC_ALL", "C").output().unwrap();
        assert!(out.status.success(), "{args:?}: {}", String::from_utf8_lossy(&out.stderr));
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    run(&["apt-get", "-q", "update"]);
    let mut up: Vec<(String, String, bool)> = run(&["apt", "list", "--upgradable"])
        .lines()
        .filter(|l| l.contains("[upgradable from"))
        .map(|l| {
            let (name, rest) = l.split_once('/').unwrap();
            let suites = rest.split_whitespace().next().unwrap();
            let version = rest.split_whitespace().nth(1).unwrap();
            (name.to_string(), version.to_string(), suites.split(',').any(|s| s.ends_with("-security")))
        })
        .collect();
    up.sort();
    (up, kept_back(&run(&["apt-get", "-s", "upgrade"])))
}

#[test]
fn stale_bookworm_agrees_with_apt() {
    let rootfs = stale_rootfs();
    let layout = tempdir().join("oci");
    let mut cleanup = Cleanup(vec![layout.parent().unwrap().to_path_buf()]);
    let image = pack(&[(&rootfs, "mmdebstrap --variant=minbase bookworm")], &layout, "stale");
    let cache = tempdir();
    cleanup.0.push(cache.clone());
    let (code, v) = scan_json(&image, &[], &cache);
    let ours: Vec<(String, String, bool)> = updates(&v).into_iter().map(|u| (u.0, u.1, u.2)).collect();
    let ours_kept: Vec<String> = updates(&v).into_iter().filter(|u| u.3).map(|u| u.0).collect();
    let (apt, apt_kept) = apt_in_chroot(&rootfs);
    eprintln!("apt: {} upgradable, kept back {:?}; freshen: {}", apt.len(), apt_kept, v["summary"]["text"]);
    assert_eq!(ours, apt, "freshen and apt disagree");
    assert_eq!(ours_kept, apt_kept);
    assert!(!apt.is_empty(), "nothing pending: the test image is not stale");
    assert_eq!(code, 3);
    assert_eq!(v["os"]["id"], "debian");
    assert_eq!(v["os"]["codename"], "bookworm");
    assert_eq!(v["os"]["version_id"], "12");
    // Every update is blamed on the one layer, with its history entry.
    for u in v["updates"].as_array().unwrap() {
        assert_eq!(u["layer"]["index"], 0);
        assert_eq!(u["layer"]["created_by"], "mmdebstrap --variant=minbase bookworm");
    }
    // Changelogs: every security update names at least one CVE and a date.
    let (_, c) = scan_json(&image, &["--changelogs", "--only", "security"], &cache);
    for u in c["updates"].as_array().unwrap() {
        assert!(u["fixed_on"].is_string(), "{u}");
    }
    assert!(c["updates"].as_array().unwrap().iter().any(|u| !u["cves"].as_array().unwrap().is_empty()), "{c}");
    // A warm second scan is one conditional request per source.
    let (_, again) = scan_json(&image, &[], &cache);
    assert_eq!(again["http_requests"], 3);
}
