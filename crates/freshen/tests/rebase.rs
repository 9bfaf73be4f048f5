//! `freshen rebase`: an image's own layers move from its old base onto a
//! new one. Hermetic cases use images packed here and umoci as the
//! independent reader; the end-to-end case builds an app with Debian's
//! Docker Engine on the stale bookworm base, patches the base and rebases
//! the app with no flags (needs root, docker.io, runc, skopeo, umoci and
//! Debian's archive).

mod common;

use std::path::Path;
use std::process::Command;

use common::*;
use serde_json::Value;

fn manifest(layout: &Path, tag: &str) -> Value {
    let out = Command::new("skopeo").args(["inspect", "--raw", &format!("oci:{}:{tag}", layout.display())]).output().expect("skopeo");
    assert!(out.status.success(), "skopeo inspect: {}", String::from_utf8_lossy(&out.stderr));
    serde_json::from_slice(&out.stdout).unwrap()
}

fn ok(out: &std::process::Output) -> String {
    assert_eq!(out.status.code(), Some(0), "{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[test]
fn rebase_moves_own_layers_and_checks_the_base() {
    let work = tempdir();
    let _cleanup = Cleanup(vec![work.clone()]);
    let cache = work.join("cache");
    let layout = work.join("oci");
    let old_root = Rootfs::new(DEBIAN_OS);
    old_root.write("etc/base-version", "old\n").write("var/lib/dpkg/status", &stanza("libfoo", "1.0"));
    let new_root = Rootfs::new(DEBIAN_OS);
    new_root.write("etc/base-version", "new\n").write("var/lib/dpkg/status", &stanza("libfoo", "1:1.8"));
    new_root.with_sources(&format!("deb {} stable main\n", repo().url));
    let app_dir = Rootfs { dir: work.join("app-layer") };
    app_dir.write("app/hello", "hello\n");
    let dpkg_dir = Rootfs { dir: work.join("dpkg-layer") };
    dpkg_dir.write("var/lib/dpkg/status", &format!("{}{}", stanza("libfoo", "1.0"), stanza("appdep", "2.0")));
    let _c = Cleanup(vec![old_root.dir.clone(), new_root.dir.clone()]);

    let old = pack(&[(&old_root.dir, "old base")], &layout, "old");
    let new = pack(&[(&new_root.dir, "new base")], &layout, "new");
    let app = pack(&[(&old_root.dir, "old base"), (&app_dir.dir, "COPY app")], &layout, "app");
    let installs = pack(&[(&old_root.dir, "old base"), (&dpkg_dir.dir, "apt-get install appdep\x1b]0;owned\x07")], &layout, "installs");
    let dest = |t: &str| format!("oci:{}:{t}", layout.display());

    // Nothing tells which layers are the base: a clear error.
    let out = freshen(&["rebase", &app, "--onto", &new, "-o", &dest("x")], &cache);
    assert_error(&out, &["cannot tell which layers", "--old-base"]);
    // A wrong old base: the first differing layer is named.
    let out = freshen(&["rebase", &app, "--onto", &new, "--old-base", &new, "-o", &dest("x")], &cache);
    assert_error(&out, &["is not the base of", "layer 0 differs"]);

    ok(&freshen(&["rebase", &app, "--onto", &new, "--old-base", &old, "-o", &dest("rebased")], &cache));
    let m = manifest(&layout, "rebased");
    let new_m = manifest(&layout, "new");
    let app_m = manifest(&layout, "app");
    assert_eq!(m["layers"][0], new_m["layers"][0], "the new base's layer");
    assert_eq!(m["layers"][1], app_m["layers"][1], "the app's own layer, unchanged");
    assert_eq!(m["layers"].as_array().unwrap().len(), 2);
    assert_eq!(m["annotations"]["org.opencontainers.image.base.name"], dest("new"));
    let new_digest = std::fs::read_to_string(layout.join("index.json")).unwrap();
    let index: Value = serde_json::from_str(&new_digest).unwrap();
    let digest_of = |tag: &str| index["manifests"].as_array().unwrap().iter().find(|e| e["annotations"]["org.opencontainers.image.ref.name"] == tag).unwrap()["digest"].clone();
    assert_eq!(m["annotations"]["org.opencontainers.image.base.digest"], digest_of("new"));
    let root = umoci_unpack(&layout, "rebased", &work.join("u1"));
    assert_eq!(std::fs::read_to_string(root.join("etc/base-version")).unwrap(), "new\n");
    assert_eq!(std::fs::read_to_string(root.join("app/hello")).unwrap(), "hello\n");
    // The scan sees the new base's dpkg database.
    let (_, v) = scan_json(&dest("rebased"), &[], &cache);
    let libfoo = v["updates"].as_array().unwrap().iter().find(|u| u["package"] == "libfoo").expect("libfoo pending").clone();
    assert_eq!(libfoo["installed"], "1:1.8", "{v}");

    // Rebasing the result again needs no flags: it records its base.
    let newer_root = Rootfs::new(DEBIAN_OS);
    newer_root.write("etc/base-version", "newer\n");
    let _c2 = Cleanup(vec![newer_root.dir.clone()]);
    let newer = pack(&[(&newer_root.dir, "newer base")], &layout, "newer");
    ok(&freshen(&["rebase", &dest("rebased"), "--onto", &newer, "-o", &dest("again")], &cache));
    let root = umoci_unpack(&layout, "again", &work.join("u2"));
    assert_eq!(std::fs::read_to_string(root.join("etc/base-version")).unwrap(), "newer\n");
    assert_eq!(std::fs::read_to_string(root.join("app/hello")).unwrap(), "hello\n");

    // An upper layer that rewrote the dpkg database: refused, then forced.
    let index_before = std::fs::read(layout.join("index.json")).unwrap();
    let out = freshen(&["rebase", &installs, "--onto", &new, "--old-base", &old, "-o", &dest("forced")], &cache);
    assert_error(&out, &["rewrote /var/lib/dpkg/status", "--force"]);
    assert_eq!(std::fs::read(layout.join("index.json")).unwrap(), index_before, "nothing may be written");
    let out = freshen(&["rebase", &installs, "--onto", &new, "--old-base", &old, "-o", &dest("forced"), "--force"], &cache);
    ok(&out);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("warning: layer 1"), "{stderr}");
    assert!(stderr.contains("appdep\\x1b]0;owned\\x07") && !stderr.contains('\u{1b}'), "the layer's history reached the terminal raw: {stderr}");
}

#[test]
fn app_built_by_docker_rebases_onto_its_patched_base_with_no_flags() {
    let stale = StaleImage::new("mmdebstrap --variant=minbase bookworm");
    let (work, cache) = (stale.work.clone(), stale.cache.clone());
    let d = Dockerd::start();
    let host = ["--docker-host", d.host.as_str()];
    let stale_tar = work.join("stale.tar");
    let st = Command::new("skopeo").args(["copy", &stale.image, &format!("docker-archive:{}:stale:latest", stale_tar.display())]).output().unwrap();
    assert!(st.status.success(), "skopeo copy: {}", String::from_utf8_lossy(&st.stderr));
    d.ok(&["load", "-i", stale_tar.to_str().unwrap()]);
    // The app, built by the engine on the stale base, as Dokku does.
    let ctx = work.join("ctx");
    std::fs::create_dir_all(&ctx).unwrap();
    std::fs::write(ctx.join("Dockerfile"), "FROM stale:latest\nRUN mkdir /app && echo hello > /app/hello\nCMD [\"cat\", \"/app/hello\"]\n").unwrap();
    d.ok(&["build", "-t", "app:1", ctx.to_str().unwrap()]);
    let app_before = d.ok(&["image", "inspect", "-f", "{{.Id}}", "app:1"]);

    // Patch the base in place in the engine, then rebase the app with no flags.
    let report = work.join("report.json");
    let mut args = vec!["patch", "docker-daemon:stale:latest", "-o", "docker-daemon:stale:latest", "--report", report.to_str().unwrap()];
    args.extend(host);
    let out = freshen(&args, &cache);
    ok(&out);
    // Not a terminal: one line per finished step on stderr.
    let steps = String::from_utf8_lossy(&out.stderr).into_owned();
    for step in ["export stale:latest", "unpack layer 0", "apt: upgrade", "write and compress the patch layer", "load stale:latest"] {
        assert!(steps.lines().any(|l| l.starts_with(step)), "no `{step}` line in:\n{steps}");
    }
    let r: Value = serde_json::from_slice(&std::fs::read(&report).unwrap()).unwrap();
    let upgraded = r["upgraded"].as_array().unwrap();
    assert!(!upgraded.is_empty());
    let mut args = vec!["rebase", "docker-daemon:app:1", "--onto", "docker-daemon:stale:latest", "-o", "docker-daemon:app:1"];
    args.extend(host);
    let out = ok(&freshen(&args, &cache));
    assert!(out.contains("without its freshen patch"), "{out}");

    // The app's files and the base's updates are both there, and it runs.
    assert_eq!(d.ok(&["run", "--rm", "app:1"]).trim(), "hello");
    for u in upgraded {
        let p = u["package"].as_str().unwrap();
        let v = d.ok(&["run", "--rm", "app:1", "dpkg-query", "-W", "-f", "${Version}", p]);
        assert_eq!(v.trim(), u["to"].as_str().unwrap(), "{p} in the rebased app");
    }
    let mut args = vec!["scan", "docker-daemon:app:1", "--only", "security", "--quiet"];
    args.extend(host);
    let out = freshen(&args, &cache);
    assert_eq!(out.status.code(), Some(0), "{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert_eq!(String::from_utf8_lossy(&out.stderr), "", "--quiet prints no progress");
    // The app as it was stays reachable for a rollback.
    assert_eq!(d.ok(&["image", "inspect", "-f", "{{.Id}}", "app:freshen-rollback-1"]), app_before);
}
