//! The loop on a Docker host: a security archive on 127.0.0.1 publishes a
//! fix (fixtures/live-repo.sh), `freshen run` patches what runs in place in
//! Debian's dockerd and redeploys it, with health checks and rollback, and
//! remembers what it did. The base image is the stale bookworm minbase
//! (Debian's archive) whose only apt source is that archive.
//! Needs root, docker.io, runc, mmdebstrap and Debian's archive.

mod common;

use std::path::Path;
use std::process::Output;

use common::live::{LiveRepo, PACKAGE};
use common::*;
use serde_json::Value;

fn expect(args: &[&str], cache: &Path, code: i32) -> Output {
    let out = freshen(args, cache);
    assert_eq!(out.status.code(), Some(code), "freshen {args:?}: {}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    out
}

fn status(state: &Path) -> Value {
    let out = expect(&["status", "--state", state.to_str().unwrap(), "--format", "json"], Path::new("/nonexistent"), 0);
    serde_json::from_slice(&out.stdout).unwrap()
}

fn target<'a>(status: &'a Value, name: &str) -> &'a Value {
    status["targets"].as_array().unwrap().iter().find(|t| t["name"] == name).unwrap_or_else(|| panic!("no target {name}: {status:#}"))
}

/// The version of websrv in `image` (from the file the package ships).
fn websrv_in(d: &Dockerd, image: &str) -> String {
    d.ok(&["run", "--rm", "--entrypoint", "cat", image, &format!("/usr/share/{PACKAGE}/version")]).trim().to_string()
}

#[test]
fn a_configured_image_is_patched_in_place_when_the_archive_publishes() {
    let d = Dockerd::start();
    let live = LiveRepo::start("1.0");
    let work = tempdir();
    let cache = work.join("cache");
    let state = work.join("state");
    let base = live.base_image(&work, "1.0");
    expect(&["copy", &base, "docker-daemon:base:1", "--docker-host", &d.host], &cache, 0);
    let old_id = d.ok(&["image", "inspect", "-f", "{{.Id}}", "base:1"]).trim().to_string();
    let config = work.join("freshen.toml");
    std::fs::write(&config, "images = [\"docker-daemon:base:1\"]\n").unwrap();
    let run = |code| expect(&["run", "--config", config.to_str().unwrap(), "--state", state.to_str().unwrap(), "--docker-host", &d.host], &cache, code);

    run(0);
    assert_eq!(target(&status(&state), "docker-daemon:base:1")["last_action"], "unchanged");

    live.publish("1.1", false);
    let out = run(0);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("patched"), "{text}");
    let new_id = d.ok(&["image", "inspect", "-f", "{{.Id}}", "base:1"]).trim().to_string();
    assert_ne!(new_id, old_id);
    assert_eq!(websrv_in(&d, "base:1"), "websrv 1.1");
    assert_eq!(d.ok(&["image", "inspect", "-f", "{{.Id}}", "base:freshen-rollback-1"]).trim(), old_id, "the previous image is kept for a rollback");
    let st = status(&state);
    let t = target(&st, "docker-daemon:base:1");
    assert_eq!((t["last_action"].as_str(), t["pending_security"].as_u64(), t["image_id"].as_str()), (Some("patched"), Some(0), Some(new_id.as_str())), "{st:#}");

    // Nothing new: the next pass changes nothing.
    run(0);
    assert_eq!(d.ok(&["image", "inspect", "-f", "{{.Id}}", "base:1"]).trim(), new_id);
    assert_eq!(target(&status(&state), "docker-daemon:base:1")["last_action"], "unchanged");
}
