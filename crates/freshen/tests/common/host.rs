//! Running `freshen` on a host and reading `status --format json`.

use std::path::Path;
use std::process::Output;

use serde_json::Value;

use super::{freshen, pack, repo, stanza, tempdir, Rootfs, DEBIAN_OS};

/// `freshen ARGS` with `cache`, asserting the exit code.
pub fn expect(args: &[&str], cache: &Path, code: i32) -> Output {
    let out = freshen(args, cache);
    assert_eq!(out.status.code(), Some(code), "freshen {args:?}: {}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    out
}

/// `freshen status --format json` of a state directory.
pub fn status(state: &Path) -> Value {
    let out = expect(&["status", "--state", state.to_str().unwrap(), "--format", "json"], Path::new("/nonexistent"), 0);
    serde_json::from_slice(&out.stdout).unwrap()
}

/// The target named `name` in a status.
pub fn target<'a>(status: &'a Value, name: &str) -> &'a Value {
    status["targets"].as_array().unwrap().iter().find(|t| t["name"] == name).unwrap_or_else(|| panic!("no target {name}: {status:#}"))
}

/// A hermetic Debian image with a pending security fix of libfoo (CVEs
/// and a fix date in its changelog) from the test repository.
pub fn hermetic_image() -> String {
    let root = Rootfs::new(DEBIAN_OS);
    root.with_sources(&format!("deb {u} stable main\ndeb {u} stable-security main\n", u = repo().url));
    root.write("var/lib/dpkg/status", &(stanza("libfoo", "1:1.9-1") + &stanza("hello", "1.0-1")));
    pack(&[(&root.dir, "debootstrap")], &tempdir().join("oci"), "app")
}
