//! A failing dpkg in the sandbox (a maintainer script that exits 1, from
//! the hermetic repository) is an error that shows apt's last lines, and
//! nothing is written. Needs root, runc and Debian's archive.

mod common;

use common::*;

#[test]
fn failing_maintainer_script_is_reported_and_nothing_is_written() {
    let stale = StaleImage::new("base");
    let r = repo();
    // An app layer that installed `breakme` 1.0 from the test repository.
    let app = Rootfs { dir: tempdir() };
    let _cleanup = Cleanup(vec![app.dir.clone()]);
    app.write("etc/apt/sources.list.d/test.list", &format!("deb {} broken main\n", r.url));
    app.write_bytes("etc/apt/trusted.gpg.d/test.gpg", &std::fs::read(r.dir.join("keys/test.gpg")).unwrap());
    let status = std::fs::read_to_string(stale_rootfs().join("var/lib/dpkg/status")).unwrap();
    app.write("var/lib/dpkg/status", &format!("{}\n\n{}", status.trim_end(), stanza("breakme", "1.0")));
    let layout = stale.work.join("app");
    let image = pack(&[(&stale_rootfs(), "base"), (&app.dir, "install breakme")], &layout, "app");
    let index_before = std::fs::read(layout.join("index.json")).unwrap();
    let out = freshen(&["patch", &image, "-o", &format!("oci:{}:patched", layout.display()), "--all"], &stale.cache);
    assert_error(&out, &["apt failed in the sandbox", "breakme"]);
    eprintln!("{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(std::fs::read(layout.join("index.json")).unwrap(), index_before, "nothing may be written");
    assert!(std::fs::read_dir(stale.cache.join("work")).map(|mut d| d.next().is_none()).unwrap_or(true), "work directory left behind");
}
