//! `docker-daemon:` against Debian's real Docker Engine: scanning an image
//! straight from the Engine, patching it in place (the old image kept as
//! `:freshen-previous`), and the errors: a missing image, a missing socket,
//! a load the Engine refuses (which must leave every tag as it was).
//! Needs root, docker.io, runc, skopeo and Debian's archive.

mod common;

use std::path::Path;
use std::process::Command;

use common::*;
use freshen_image::{ImageRef, ImageSource, NewImage, Platform, Transport};

/// The id of `name` in the Engine, or `None` when it has no such image.
fn image_id(d: &Dockerd, name: &str) -> Option<String> {
    let out = d.docker(&["image", "inspect", "-f", "{{.Id}}", name]);
    out.status.success().then(|| String::from_utf8_lossy(&out.stdout).trim().to_string())
}

/// Leftovers of exports and loads in the cache's scratch directory (not
/// the `.owner-` locks that mark processes alive).
fn scratch_files(cache: &Path) -> Vec<String> {
    match std::fs::read_dir(cache.join("tmp")) {
        Ok(entries) => entries.map(|e| e.unwrap().file_name().to_string_lossy().into_owned()).filter(|n| !n.starts_with(".owner-")).collect(),
        Err(_) => Vec::new(),
    }
}

/// Loads the stale image into the Engine as `stale:latest` (skopeo as an
/// independent converter).
fn load_stale(d: &Dockerd, stale: &StaleImage) {
    let tar = stale.work.join("stale.tar");
    let out = Command::new("skopeo").args(["copy", &stale.image, &format!("docker-archive:{}:stale:latest", tar.display())]).output().unwrap();
    assert!(out.status.success(), "skopeo copy: {}", String::from_utf8_lossy(&out.stderr));
    d.ok(&["load", "-i", tar.to_str().unwrap()]);
    std::fs::remove_file(tar).unwrap();
}

/// Writes the stale image to the Engine with a config whose first diff id
/// does not match its layer, through the library's `docker-daemon:` sink.
fn load_corrupt(stale: &StaleImage, host: &str, name: &str) -> String {
    let source = freshen_image::open_local(&ImageRef::parse(&stale.image).unwrap(), &Platform::host()).unwrap();
    let image = source.image();
    let mut config: serde_json::Value = serde_json::from_slice(&image.config_raw).unwrap();
    config["rootfs"]["diff_ids"][0] = format!("sha256:{}", "0".repeat(64)).into();
    let config = serde_json::to_vec(&config).unwrap();
    let mut manifest: serde_json::Value = serde_json::from_slice(image.manifest_raw.as_ref().unwrap()).unwrap();
    manifest["config"]["digest"] = freshen_image::Digest::of(&config).to_string().into();
    manifest["config"]["size"] = config.len().into();
    let img = NewImage {
        source: &source,
        source_layers: &image.layers,
        new_blobs: Vec::new(),
        config,
        manifest: serde_json::to_vec(&manifest).unwrap(),
        manifest_media_type: "application/vnd.oci.image.manifest.v1+json".into(),
    };
    let scratch = stale.work.join("scratch");
    std::fs::create_dir_all(&scratch).unwrap();
    let t = Transport { docker_host: Some(host.into()), tmp_dir: scratch.clone(), ..Transport::default() };
    let dest = ImageRef::parse(&format!("docker-daemon:{name}")).unwrap();
    let err = freshen_image::write_image(&dest, &img, &t).expect_err("the Engine accepted a config whose diff id lies");
    assert_eq!(std::fs::read_dir(&scratch).unwrap().count(), 0, "the temporary archive was left behind");
    err.to_string()
}

#[test]
fn scans_and_patches_images_in_the_engine() {
    let stale = StaleImage::new("mmdebstrap --variant=minbase bookworm");
    let d = Dockerd::start();
    let host = d.host.as_str();
    load_stale(&d, &stale);
    let old_id = image_id(&d, "stale:latest").unwrap();

    // Scanning from the Engine, by name and by id, finds what the original shows.
    let (code, original) = scan_json(&stale.image, &[], &stale.cache);
    let (daemon_code, from_daemon) = scan_json("docker-daemon:stale:latest", &["--docker-host", host], &stale.cache);
    let want = updates(&original);
    assert!(want.iter().any(|u| u.2), "the stale image has no security update: {original}");
    assert_eq!((daemon_code, updates(&from_daemon)), (code, want.clone()));
    let (_, by_id) = scan_json(&format!("docker-daemon:{old_id}"), &["--docker-host", host], &stale.cache);
    assert_eq!(updates(&by_id), want);
    assert_eq!(scratch_files(&stale.cache), Vec::<String>::new(), "exports were left behind");

    // Errors: one line naming what to fix.
    let out = freshen(&["scan", "docker-daemon:nope", "--docker-host", host], &stale.cache);
    assert_error(&out, &["docker-daemon:nope:latest", "no such image", host]);
    let out = freshen(&["scan", "docker-daemon:stale", "--docker-host", "unix:///nonexistent.sock"], &stale.cache);
    assert_error(&out, &["unix:///nonexistent.sock", "no such file"]);

    // A load the Engine refuses tags nothing: a new name stays absent, an
    // existing one keeps its image.
    let err = load_corrupt(&stale, host, "broken:1");
    assert!(err.contains("docker-daemon:broken:1") && err.contains("diff"), "{err}");
    assert_eq!(image_id(&d, "broken:1"), None, "a refused load left a tag");
    let err = load_corrupt(&stale, host, "stale:latest");
    assert!(err.contains("docker-daemon:stale:latest"), "{err}");
    assert_eq!(image_id(&d, "stale:latest").as_deref(), Some(old_id.as_str()), "a refused load moved the tag");

    // Patching in place: the new image runs with the upgrades, the old one
    // is kept for a rollback, and nothing security-related is pending.
    let out = freshen(&["patch", "docker-daemon:stale:latest", "-o", "docker-daemon:stale:latest", "--docker-host", host], &stale.cache);
    assert_eq!(out.status.code(), Some(0), "{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    let new_id = image_id(&d, "stale:latest").unwrap();
    assert_ne!(new_id, old_id, "the patched image was not loaded");
    assert_eq!(image_id(&d, "stale:freshen-rollback-latest").as_deref(), Some(old_id.as_str()), "the old image was not kept");
    let (package, candidate, _, _) = want.iter().find(|u| u.2).unwrap();
    let installed = d.ok(&["run", "--rm", "stale:latest", "dpkg-query", "-W", "-f", "${Version}", package]);
    assert_eq!(&installed, candidate, "{package} in the patched image");
    // DOCKER_HOST is honoured too.
    let out = Command::new(env!("CARGO_BIN_EXE_freshen"))
        .args(["scan", "docker-daemon:stale:latest", "--only", "security"])
        .env("FRESHEN_CACHE", &stale.cache)
        .env("DOCKER_HOST", host)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert_eq!(scratch_files(&stale.cache), Vec::<String>::new(), "temporary archives were left behind");
}
