//! The `docker://` transport against real registries (Debian's
//! docker-registry, distribution 2.8) with skopeo as the independent
//! checker: scanning straight from a registry, authentication (htpasswd
//! over TLS; `--creds`, Docker's config.json), TLS verification, clear
//! errors; and, on the real stale bookworm image, patching from one tag to
//! another (only new blobs uploaded), to another repository (base layers
//! mounted) and in place inside a multi-platform index. The patch test
//! needs root, runc and Debian's archive.

mod common;

use std::process::{Command, Output};

use common::*;
use serde_json::{json, Value};

/// A small image against the hermetic repository: one pending update.
fn small_image() -> String {
    let r = repo();
    let root = Rootfs::new(DEBIAN_OS);
    root.with_sources(&format!("deb {u} stable main\ndeb {u} stable-security main\n", u = r.url));
    root.write("var/lib/dpkg/status", &(stanza("hello", "1.0-1") + &stanza("libfoo", "1:1.9-1")));
    pack(&[(&root.dir, "debootstrap")], &tempdir().join("oci"), "app")
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

#[test]
fn scan_from_a_registry_with_tls_and_auth() {
    let reg = Registry::secure();
    let cache = tempdir();
    let _cleanup = Cleanup(vec![cache.clone()]);
    let original = small_image();
    let (user, pass) = REGISTRY_USER;
    let creds = format!("{user}:{pass}");
    reg.skopeo(&["copy", "-q", "--dest-tls-verify=false", "--dest-creds", &creds, &original, &reg.image("app:1")]);
    let ca = reg.ca.as_ref().unwrap().to_str().unwrap().to_string();

    let (code, want) = scan_json(&original, &[], &cache);
    assert_eq!(code, 3, "the original has pending updates: {want}");
    assert!(!updates(&want).is_empty());
    // --creds and --ca-file.
    let (code, got) = scan_json(&reg.image("app:1"), &["--creds", &creds, "--ca-file", &ca], &cache);
    assert_eq!((code, updates(&got)), (3, updates(&want)), "{got}");
    // --tls-verify=false without the CA.
    let (code, got) = scan_json(&reg.image("app:1"), &["--creds", &creds, "--tls-verify=false"], &cache);
    assert_eq!((code, updates(&got)), (3, updates(&want)));
    // Credentials from Docker's config.json (DOCKER_CONFIG).
    let docker_config = tempdir();
    let _cleanup2 = Cleanup(vec![docker_config.clone()]);
    let auth = Command::new("sh").arg("-c").arg(format!("printf %s '{creds}' | base64")).output().unwrap();
    let auth = String::from_utf8_lossy(&auth.stdout).trim().to_string();
    std::fs::write(docker_config.join("config.json"), json!({"auths": {reg.addr.clone(): {"auth": auth}}}).to_string()).unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_freshen"))
        .args(["scan", &reg.image("app:1"), "--format", "json", "--ca-file", &ca])
        .env("FRESHEN_CACHE", &cache)
        .env("DOCKER_CONFIG", &docker_config)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(3), "{}", stderr(&out));
    let got: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(updates(&got), updates(&want));

    // A wrong password, no credentials at all: one line on authentication.
    let out = freshen(&["scan", &reg.image("app:1"), "--creds", &format!("{user}:wrong"), "--ca-file", &ca], &cache);
    assert_error(&out, &["authentication failed (401)", &reg.addr]);
    assert!(!stderr(&out).contains("wrong"), "a secret leaked: {}", stderr(&out));
    let out = Command::new(env!("CARGO_BIN_EXE_freshen"))
        .args(["scan", &reg.image("app:1"), "--ca-file", &ca])
        .env("FRESHEN_CACHE", &cache)
        .env("DOCKER_CONFIG", tempdir())
        .output()
        .unwrap();
    assert_error(&out, &["authentication failed", "--creds"]);
    // The certificate is checked unless told otherwise.
    let out = freshen(&["scan", &reg.image("app:1"), "--creds", &creds], &cache);
    assert_error(&out, &["certificate", &reg.addr, "--ca-file"]);
}

/// Pushes with `freshen copy` (which writes through the same sink as
/// `patch -o`) to a TLS registry with basic authentication.
#[test]
fn push_with_auth_over_tls() {
    let reg = Registry::secure();
    let cache = tempdir();
    let _cleanup = Cleanup(vec![cache.clone()]);
    let original = small_image();
    let ca = reg.ca.as_ref().unwrap().to_str().unwrap().to_string();
    let (user, pass) = REGISTRY_USER;
    let creds = format!("{user}:{pass}");
    // Wrong credentials: nothing is written.
    let out = freshen(&["copy", &original, &reg.image("app:1"), "--creds", &format!("{user}:nope"), "--ca-file", &ca, "-q"], &cache);
    assert_error(&out, &["authentication failed (401)", "app:1"]);
    assert!(created(reg.requests("PUT", "/v2/app/")).is_empty(), "nothing may be uploaded");
    let out = freshen(&["copy", &original, &reg.image("app:1"), "--creds", &creds, "--ca-file", &ca, "-q"], &cache);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let printed = String::from_utf8_lossy(&out.stdout).to_string();
    let inspect = |image: &str| -> Value {
        serde_json::from_str(&reg.skopeo(&["inspect", "--tls-verify=false", "--creds", &creds, &reg.image(image)])).unwrap()
    };
    let digest = inspect("app:1")["Digest"].as_str().unwrap().to_string();
    assert!(printed.contains(&digest), "freshen returned the manifest digest: {printed} vs {digest}");
    let (code, want) = scan_json(&original, &[], &cache);
    let (code2, got) = scan_json(&reg.image("app:1"), &["--creds", &creds, "--ca-file", &ca], &cache);
    assert_eq!((code2, updates(&got)), (code, updates(&want)));
    // Again, to another tag: every blob is there already.
    let uploads = created(reg.requests("PUT", "/v2/app/blobs/uploads/")).len();
    assert_eq!(uploads, 2, "one layer and the config");
    let out = freshen(&["copy", &reg.image("app:1"), &reg.image("app:2"), "--creds", &creds, "--ca-file", &ca, "-q"], &cache);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert_eq!(created(reg.requests("PUT", "/v2/app/blobs/uploads/")).len(), uploads, "nothing uploaded twice");
    assert_eq!(inspect("app:2")["Digest"].as_str(), Some(digest.as_str()));
}

/// Bearer tokens from a token server (the Docker Hub flow): push and
/// pull with one token per process and scope, wrong credentials refused.
#[test]
fn bearer_tokens() {
    let reg = Registry::token();
    let cache = tempdir();
    let _cleanup = Cleanup(vec![cache.clone()]);
    let original = small_image();
    let (user, pass) = REGISTRY_USER;
    let creds = format!("{user}:{pass}");
    let out = freshen(&["copy", &original, &reg.image("app:1"), "--creds", &creds, "-q"], &cache);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let after_push = reg.token_requests.load(std::sync::atomic::Ordering::SeqCst);
    assert_eq!(after_push, 1, "one token for the push, cached for every blob");
    let (code, want) = scan_json(&original, &[], &cache);
    let (code2, got) = scan_json(&reg.image("app:1"), &["--creds", &creds], &cache);
    assert_eq!((code2, updates(&got)), (code, updates(&want)));
    assert_eq!(reg.token_requests.load(std::sync::atomic::Ordering::SeqCst), after_push + 1);
    // The token was scoped to pull and push app: skopeo (another client) can read it.
    let raw = reg.skopeo(&["inspect", "--raw", "--tls-verify=false", "--creds", &creds, &reg.image("app:1")]);
    assert!(raw.contains("layers"));
    let out = freshen(&["scan", &reg.image("app:1"), "--creds", &format!("{user}:bad")], &cache);
    assert_error(&out, &["token request", "authentication failed (401)", "incorrect username or password"]);
    assert!(!stderr(&out).contains(":bad"), "a secret leaked: {}", stderr(&out));
    // A user allowed to pull but not to push: refused in one line, no tag written.
    let reader = format!("{}:{}", REGISTRY_READER.0, REGISTRY_READER.1);
    let out = freshen(&["copy", &original, &reg.image("app:ro"), "--creds", &reader, "-q"], &cache);
    assert_error(&out, &["app:ro", "denied"]);
    let out = freshen(&["scan", &reg.image("app:ro"), "--creds", &creds], &cache);
    assert_error(&out, &["app:ro", "404"]);
}

#[test]
fn registry_errors_are_one_line() {
    let reg = Registry::plain();
    let cache = tempdir();
    let _cleanup = Cleanup(vec![cache.clone()]);
    reg.skopeo(&["copy", "-q", "--dest-tls-verify=false", &small_image(), &reg.image("app:1")]);
    let out = freshen(&["scan", &reg.image("app:nope")], &cache);
    assert_error(&out, &["app:nope", "manifest `nope`", "not found (404)", "manifest unknown"]);
    let out = freshen(&["scan", &reg.image("missing:1")], &cache);
    assert_error(&out, &["missing:1", "404"]);
    let digest = format!("sha256:{}", "0".repeat(64));
    let out = freshen(&["scan", &reg.image(&format!("app@{digest}"))], &cache);
    assert_error(&out, &[&digest, "404"]);
    // A registry that is down.
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().to_string();
    let out = freshen(&["scan", &format!("docker://{closed}/app:1")], &cache);
    assert_error(&out, &["cannot reach registry", &closed]);
    // A TLS-only host is not silently downgraded: verification failures
    // are reported, not retried over plain HTTP.
    let tls = Registry::tls();
    reg.skopeo(&["copy", "-q", "--src-tls-verify=false", "--dest-tls-verify=false", &reg.image("app:1"), &tls.image("app:1")]);
    let out = freshen(&["scan", &tls.image("app:1")], &cache);
    assert_error(&out, &["certificate", &tls.addr]);
    let (code, _) = scan_json(&tls.image("app:1"), &["--ca-file", tls.ca.as_ref().unwrap().to_str().unwrap()], &cache);
    assert_eq!(code, 3);
}

/// `freshen patch SRC -o DEST`, asserting success.
fn patch(src: &str, dest: &str, cache: &std::path::Path) {
    let started = std::time::Instant::now();
    let out = freshen(&["patch", src, "-o", dest], cache);
    assert_eq!(out.status.code(), Some(0), "patch {src} -o {dest}: {}{}", String::from_utf8_lossy(&out.stdout), stderr(&out));
    eprintln!("patch {src} -o {dest}: {:.1?}", started.elapsed());
}

/// The raw manifest (or index) skopeo reads for `image`.
fn raw(reg: &Registry, image: &str) -> Value {
    serde_json::from_str(&reg.skopeo(&["inspect", "--raw", "--tls-verify=false", &reg.image(image)])).unwrap()
}

/// PUTs a manifest or index with curl (a client freshen did not write).
fn put_manifest(reg: &Registry, repo: &str, reference: &str, body: &[u8], media_type: &str) {
    let file = tempdir().join("manifest.json");
    std::fs::write(&file, body).unwrap();
    let out = Command::new("curl")
        .args(["-sS", "-f", "-X", "PUT", "-H", &format!("Content-Type: {media_type}"), "--data-binary"])
        .arg(format!("@{}", file.display()))
        .arg(format!("http://{}/v2/{repo}/manifests/{reference}", reg.addr))
        .output()
        .expect("curl");
    assert!(out.status.success(), "PUT {repo}:{reference}: {}", stderr(&out));
    let _ = std::fs::remove_dir_all(file.parent().unwrap());
}

/// Access-log lines that answered 201.
fn created(lines: Vec<String>) -> Vec<String> {
    lines.into_iter().filter(|l| l.contains("\" 201 ")).collect()
}

#[test]
fn patch_through_a_registry() {
    let stale = StaleImage::new("mmdebstrap --variant=minbase bookworm");
    let cache = stale.cache.clone();
    let reg = Registry::plain();
    reg.skopeo(&["copy", "-q", "--dest-tls-verify=false", &stale.image, &reg.image("app:1")]);
    let base = raw(&reg, "app:1")["layers"][0]["digest"].as_str().unwrap().to_string();
    let base_hex = base.trim_start_matches("sha256:").to_string();

    // Scanning straight from the registry finds what the original has.
    let (_, want) = scan_json(&stale.image, &["--only", "security"], &cache);
    let (code, got) = scan_json(&reg.image("app:1"), &["--only", "security"], &cache);
    assert!(!updates(&want).is_empty());
    assert_eq!((code, updates(&got)), (3, updates(&want)));

    // To another repository of the same registry: the base layer is
    // mounted from app, never uploaded; the patch layer and config are.
    // The layer is pulled once (scanned, then unpacked from the spool).
    let pulls = || reg.requests("GET", &format!("/v2/app/blobs/{base}")).len();
    let pulls_before = pulls();
    patch(&reg.image("app:1"), &reg.image("other:1"), &cache);
    assert_eq!(pulls() - pulls_before, 1, "the base layer is pulled once per patch");
    let mounts = created(reg.requests("POST", "/v2/other/blobs/uploads/?mount="));
    assert_eq!(mounts.len(), 1, "{mounts:?}");
    assert!(mounts[0].contains(&base_hex), "{mounts:?}");
    let uploads = created(reg.requests("PUT", "/v2/other/blobs/uploads/"));
    assert_eq!(uploads.len(), 2, "the patch layer and the config: {uploads:?}");
    assert!(!uploads.iter().any(|l| l.contains(&base_hex)), "the base layer was uploaded: {uploads:?}");
    let other = raw(&reg, "other:1");
    assert_eq!(other["layers"].as_array().unwrap().len(), 2);
    assert_eq!(other["layers"][0]["digest"], base.as_str());

    // Another tag of the same repository: the base layer is there already.
    let before = created(reg.requests("PUT", "/v2/app/blobs/uploads/")).len();
    patch(&reg.image("app:1"), &reg.image("app:1-patched"), &cache);
    let uploads = created(reg.requests("PUT", "/v2/app/blobs/uploads/")).split_off(before);
    assert_eq!(uploads.len(), 2, "only the patch layer and the config: {uploads:?}");
    assert!(!uploads.iter().any(|l| l.contains(&base_hex)), "the base layer was uploaded again: {uploads:?}");
    let patched = raw(&reg, "app:1-patched");
    assert_eq!(patched["layers"].as_array().unwrap().len(), 2);
    assert_eq!(patched["layers"][0]["digest"], base.as_str());
    assert_eq!(raw(&reg, "app:1")["layers"].as_array().unwrap().len(), 1, "the source tag is untouched");
    // skopeo copies the result out (verifying every blob); nothing is
    // pending in it.
    let out = stale.work.join("out");
    reg.skopeo(&["copy", "-q", "--src-tls-verify=false", &reg.image("app:1-patched"), &format!("oci:{}:patched", out.display())]);
    let (code, after) = scan_json(&format!("oci:{}:patched", out.display()), &["--only", "security"], &cache);
    assert_eq!(code, 0, "{after}");

    // In place inside a two-platform index: the amd64 entry is replaced,
    // the arm64 entry and the annotations stay.
    reg.skopeo(&["copy", "-q", "--src-tls-verify=false", "--dest-tls-verify=false", &reg.image("app:1"), &reg.image("multi:amd64")]);
    let amd64_raw = reg.skopeo(&["inspect", "--raw", "--tls-verify=false", &reg.image("multi:amd64")]).into_bytes();
    let mut fake: Value = serde_json::from_slice(&amd64_raw).unwrap();
    let media_type = fake["mediaType"].as_str().unwrap_or("application/vnd.oci.image.manifest.v1+json").to_string();
    fake["annotations"] = json!({"test.fake": "arm64"});
    let fake_raw = serde_json::to_vec(&fake).unwrap();
    let fake_digest = freshen_image::Digest::of(&fake_raw).to_string();
    put_manifest(&reg, "multi", &fake_digest, &fake_raw, &media_type);
    let amd64_digest = freshen_image::Digest::of(&amd64_raw).to_string();
    let index = json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.index.v1+json",
        "annotations": {"org.example.keep": "yes"},
        "manifests": [
            {"mediaType": media_type, "digest": fake_digest, "size": fake_raw.len(), "platform": {"os": "linux", "architecture": "arm64", "variant": "v8"}, "annotations": {"x": "y"}},
            {"mediaType": media_type, "digest": amd64_digest, "size": amd64_raw.len(), "platform": {"os": "linux", "architecture": "amd64"}, "annotations": {"z": "w"}},
        ],
    });
    put_manifest(&reg, "multi", "1", &serde_json::to_vec(&index).unwrap(), "application/vnd.oci.image.index.v1+json");
    patch(&reg.image("multi:1"), &reg.image("multi:1"), &cache);
    let new_index = raw(&reg, "multi:1");
    assert_eq!(new_index["mediaType"], index["mediaType"]);
    assert_eq!(new_index["annotations"], index["annotations"]);
    assert_eq!(new_index["manifests"][0], index["manifests"][0], "the arm64 entry is untouched");
    let entry = &new_index["manifests"][1];
    assert_eq!((&entry["platform"], &entry["annotations"]), (&index["manifests"][1]["platform"], &index["manifests"][1]["annotations"]));
    let new_digest = entry["digest"].as_str().unwrap();
    assert_ne!(new_digest, amd64_digest);
    let new_manifest = reg.skopeo(&["inspect", "--raw", "--tls-verify=false", &reg.image(&format!("multi@{new_digest}"))]);
    assert_eq!(entry["size"].as_u64(), Some(new_manifest.len() as u64));
    let new_manifest: Value = serde_json::from_str(&new_manifest).unwrap();
    assert_eq!(new_manifest["layers"].as_array().unwrap().len(), 2);
    assert_eq!(new_manifest["layers"][0]["digest"], base.as_str());
    assert_eq!(entry["mediaType"], new_manifest["mediaType"]);
}

/// A rebase inside one registry uploads nothing of either base: the new
/// base's layer is mounted from its repository, the app's own layer is
/// already there; only the new config goes up.
#[test]
fn rebase_in_a_registry_mounts_the_new_base() {
    let reg = Registry::plain();
    let cache = tempdir();
    let _cleanup = Cleanup(vec![cache.clone()]);
    let layout = tempdir().join("oci");
    let (old_root, new_root, app_root) = (Rootfs::new(DEBIAN_OS), Rootfs::new(DEBIAN_OS), Rootfs { dir: tempdir() });
    old_root.write("etc/base", "old\n");
    new_root.write("etc/base", "new\n");
    app_root.write("app/hello", "hello\n");
    let images = [
        ("base:1", pack(&[(&old_root.dir, "old base")], &layout, "old")),
        ("base:2", pack(&[(&new_root.dir, "new base")], &layout, "new")),
        ("app:1", pack(&[(&old_root.dir, "old base"), (&app_root.dir, "COPY app")], &layout, "app")),
    ];
    for (name, image) in &images {
        let out = freshen(&["copy", image, &reg.image(name), "-q"], &cache);
        assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    }
    let uploads = || created(reg.requests("PUT", "/v2/app/blobs/uploads/")).len();
    let before = uploads();
    let out = freshen(&["rebase", &reg.image("app:1"), "--onto", &reg.image("base:2"), "--old-base", &reg.image("base:1"), "-o", &reg.image("app:2")], &cache);
    assert_eq!(out.status.code(), Some(0), "{}{}", String::from_utf8_lossy(&out.stdout), stderr(&out));
    assert_eq!(uploads() - before, 1, "only the config is uploaded");
    let new_layer = raw(&reg, "base:2")["layers"][0]["digest"].as_str().unwrap().to_string();
    let mounts = created(reg.requests("POST", "/v2/app/blobs/uploads/?mount="));
    assert!(mounts.iter().any(|l| l.contains(&new_layer.replace(':', "%3A"))), "the new base's layer is mounted: {mounts:?}");
    let m = raw(&reg, "app:2");
    let app = raw(&reg, "app:1");
    assert_eq!(m["layers"][0]["digest"], new_layer.as_str());
    assert_eq!(m["layers"][1], app["layers"][1], "the app's own layer, unchanged");
    assert_eq!(m["annotations"]["org.opencontainers.image.base.name"], format!("{}/base:2", reg.addr));
    // skopeo reads the result whole (every blob is in the repository).
    let copy = tempdir();
    reg.skopeo(&["copy", "-q", "--src-tls-verify=false", &reg.image("app:2"), &format!("oci:{}:x", copy.join("oci").display())]);
    let _ = std::fs::remove_dir_all(&copy);
}

/// `docker save` output keeps its layers uncompressed; pushed to a
/// registry they go up gzipped (as skopeo does), and the image still reads
/// the same.
#[test]
fn uncompressed_layers_are_gzipped_for_the_registry() {
    let reg = Registry::plain();
    let cache = tempdir();
    let _cleanup = Cleanup(vec![cache.clone()]);
    let original = small_image();
    let archive = cache.join("saved.tar");
    reg.skopeo(&["copy", "-q", &original, &format!("docker-archive:{}:app:1", archive.display())]);
    let out = freshen(&["copy", &format!("docker-archive:{}", archive.display()), &reg.image("plain:1"), "-q"], &cache);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let m = raw(&reg, "plain:1");
    let layer = &m["layers"][0];
    assert_eq!(layer["mediaType"], "application/vnd.docker.image.rootfs.diff.tar.gzip", "{m}");
    let config: Value = serde_json::from_str(&reg.skopeo(&["inspect", "--config", "--tls-verify=false", &reg.image("plain:1")])).unwrap();
    // The blob, as skopeo copies it out, is one gzip of exactly the tar the diff id names.
    let out_dir = cache.join("out");
    reg.skopeo(&["copy", "-q", "--src-tls-verify=false", &reg.image("plain:1"), &format!("oci:{}:x", out_dir.display())]);
    let blob = std::fs::read(out_dir.join("blobs/sha256").join(layer["digest"].as_str().unwrap().trim_start_matches("sha256:"))).unwrap();
    let mut tar = Vec::new();
    std::io::Read::read_to_end(&mut flate2::read::MultiGzDecoder::new(&blob[..]), &mut tar).unwrap();
    assert!(blob.len() < tar.len());
    assert_eq!(freshen_image::Digest::of(&tar).to_string(), config["rootfs"]["diff_ids"][0].as_str().unwrap());
    let (code, want) = scan_json(&original, &[], &cache);
    let (code2, got) = scan_json(&reg.image("plain:1"), &[], &cache);
    assert_eq!((code2, updates(&got)), (code, updates(&want)));
    // Deterministic: pushing again finds every blob there.
    let before = created(reg.requests("PUT", "/v2/plain/blobs/uploads/")).len();
    let out = freshen(&["copy", &format!("docker-archive:{}", archive.display()), &reg.image("plain:2"), "-q"], &cache);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert_eq!(created(reg.requests("PUT", "/v2/plain/blobs/uploads/")).len(), before, "nothing uploaded twice");
    assert_eq!(raw(&reg, "plain:2"), m);
}
