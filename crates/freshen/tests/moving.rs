//! An archive that publishes while `freshen patch` runs (the old version
//! leaves the repository, as Debian's security archive does) changes
//! nothing: apt in the sandbox installs exactly the planned version from
//! the snapshot freshen verified, and the next scan sees the new one.
//! Needs root, runc and Debian's archive (the stale base image).

mod common;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use common::*;
use serde_json::Value;

#[test]
fn archive_publishing_during_a_patch_changes_nothing() {
    let stale = StaleImage::new("base");
    let r = repo();
    // A private copy of the flat repository, `moving` pointing at state 1.
    let root = tempdir();
    let _cleanup = Cleanup(vec![root.clone()]);
    for state in ["moving.1", "moving.2"] {
        let st = std::process::Command::new("cp").arg("-a").arg(r.dir.join("repo").join(state)).arg(&root).status().unwrap();
        assert!(st.success());
    }
    std::os::unix::fs::symlink("moving.1", root.join("moving")).unwrap();
    // Published later than state 1 (the server answers If-Modified-Since).
    let later = std::time::SystemTime::now() + std::time::Duration::from_secs(60);
    std::fs::File::options().write(true).open(root.join("moving.2/InRelease")).unwrap().set_modified(later).unwrap();
    // Once freshen has what it needs of state 1, the archive moves on.
    let published = Arc::new(AtomicBool::new(false));
    let (p, dir) = (published.clone(), root.clone());
    let (url, _) = serve_hooked(
        root.clone(),
        Arc::new(move |path: &str| {
            if path.ends_with("/mover_1.1_amd64.deb") && !p.swap(true, Ordering::SeqCst) {
                let tmp = dir.join("moving.new");
                std::os::unix::fs::symlink("moving.2", &tmp).unwrap();
                std::fs::rename(&tmp, dir.join("moving")).unwrap();
            }
        }),
    );

    let app = Rootfs { dir: tempdir() };
    let _cleanup_app = Cleanup(vec![app.dir.clone()]);
    app.write("etc/apt/sources.list.d/moving.list", &format!("deb {url}/moving ./\n"));
    app.write_bytes("etc/apt/trusted.gpg.d/test.gpg", &std::fs::read(r.dir.join("keys/test.gpg")).unwrap());
    let status = std::fs::read_to_string(stale_rootfs().join("var/lib/dpkg/status")).unwrap();
    app.write("var/lib/dpkg/status", &format!("{}\n\n{}", status.trim_end(), stanza("mover", "1.0")));
    let layout = stale.work.join("app");
    let image = pack(&[(&stale_rootfs(), "base"), (&app.dir, "install mover")], &layout, "app");

    let report = stale.work.join("report.json");
    let out = freshen(&["patch", &image, "-o", &format!("oci:{}:patched", layout.display()), "--all", "--report", report.to_str().unwrap()], &stale.cache);
    assert!(published.load(Ordering::SeqCst), "the archive did not move during the run; the test proves nothing");
    assert_eq!(out.status.code(), Some(0), "{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    let r: Value = serde_json::from_slice(&std::fs::read(&report).unwrap()).unwrap();
    let mover = r["upgraded"].as_array().unwrap().iter().find(|u| u["package"] == "mover").expect("mover upgraded").clone();
    assert_eq!(mover["to"], "1.1", "the planned version, not the one published meanwhile");

    // A new run sees the archive as it is now.
    let (code, after) = scan_json(&format!("oci:{}:patched", layout.display()), &[], &stale.cache);
    assert_eq!(code, 3, "{after}");
    assert!(updates(&after).iter().any(|u| u.0 == "mover" && u.1 == "1.2"), "{after}");
}
