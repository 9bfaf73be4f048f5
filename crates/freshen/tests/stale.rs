//! The real thing: a stale Debian bookworm minbase built from the `bookworm`
//! main suite only (mmdebstrap, Debian's archive), whose sources also name
//! bookworm-updates and bookworm-security, packed as an OCI image by
//! freshen's own writer. The oracle is apt in a chroot of the same rootfs.
//! Needs root (mmdebstrap, chroot) and Debian's archive.

mod common;

use common::*;

#[test]
fn stale_bookworm_agrees_with_apt() {
    let rootfs = stale_rootfs();
    let layout = tempdir().join("oci");
    let mut cleanup = Cleanup(vec![layout.parent().unwrap().to_path_buf()]);
    let image = pack(&[(&rootfs, "mmdebstrap --variant=minbase bookworm")], &layout, "stale");
    let cache = tempdir();
    cleanup.0.push(cache.clone());
    let (code, v) = scan_json(&image, &[], &cache);
    let apt = apt_pending(&Chroot::copy_of(&rootfs));
    eprintln!("apt: {apt:#?}; freshen: {}", v["summary"]["text"]);
    assert_eq!(pending(&v), apt, "freshen and apt disagree");
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
