//! Image transports and formats: OCI layouts with gzip, zstd and plain
//! layers, both docker-archive forms, indexes and platforms, whiteouts, and
//! the errors for broken or unsupported images.

mod common;

use std::io::{Read, Write};
use std::path::{Path, PathBuf};

use common::*;
use freshen_image::{Digest, LayerBlob};
use serde_json::{json, Value};

fn read_json(p: &Path) -> Value {
    serde_json::from_slice(&std::fs::read(p).unwrap()).unwrap()
}

fn blob(layout: &Path, digest: &str) -> PathBuf {
    layout.join("blobs/sha256").join(digest.trim_start_matches("sha256:"))
}

/// (manifest, config) of the only image in a layout.
fn manifest_of(layout: &Path) -> (Value, Value) {
    let index = read_json(&layout.join("index.json"));
    let m = read_json(&blob(layout, index["manifests"][0]["digest"].as_str().unwrap()));
    let c = read_json(&blob(layout, m["config"]["digest"].as_str().unwrap()));
    (m, c)
}

fn simple_image() -> (Rootfs, PathBuf, String) {
    let root = Rootfs::new(DEBIAN_OS);
    root.with_sources(&format!("deb {} stable main\n", repo().url));
    root.write("var/lib/dpkg/status", &(stanza("hello", "1.0-1") + &stanza("tilde", "0.9")));
    let layout = tempdir().join("oci");
    let img = pack(&[(&root.dir, "base")], &layout, "app");
    (root, layout, img)
}

fn expected() -> Vec<(String, String, bool, bool)> {
    vec![("hello".to_string(), "1.0-2".to_string(), false, false), ("tilde".into(), "1.0".into(), false, false)]
}

/// Uncompressed layer tars of a layout, bottom first.
fn layer_tars(layout: &Path) -> Vec<Vec<u8>> {
    let (m, _) = manifest_of(layout);
    m["layers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| {
            let data = std::fs::read(blob(layout, l["digest"].as_str().unwrap())).unwrap();
            let mut out = Vec::new();
            flate2::read::GzDecoder::new(&data[..]).read_to_end(&mut out).unwrap();
            out
        })
        .collect()
}

/// Rewrites a layout's layers with another compression.
fn recompress(layout: &Path, kind: &str) -> String {
    let out = tempdir().join("oci");
    std::fs::create_dir_all(out.join("blobs/sha256")).unwrap();
    let (_, config) = manifest_of(layout);
    let blobs: Vec<LayerBlob> = layer_tars(layout)
        .into_iter()
        .zip(config["history"].as_array().unwrap())
        .map(|(tar, h)| {
            let (data, media) = match kind {
                "zstd" => (zstd::encode_all(&tar[..], 3).unwrap(), "application/vnd.oci.image.layer.v1.tar+zstd"),
                _ => (tar.clone(), "application/vnd.oci.image.layer.v1.tar"),
            };
            let digest = Digest::of(&data);
            std::fs::write(blob(&out, &digest.to_string()), &data).unwrap();
            LayerBlob { digest, diff_id: Digest::of(&tar), size: data.len() as u64, media_type: media.into(), created_by: h["created_by"].as_str().unwrap().into() }
        })
        .collect();
    freshen_image::write_oci_layout(&out, &freshen_image::LayoutImage { tag: "app", os: "linux", architecture: "amd64", layers: &blobs }).unwrap();
    format!("oci:{}:app", out.display())
}

fn tar_append(b: &mut tar::Builder<std::fs::File>, name: &str, data: &[u8]) {
    let mut h = tar::Header::new_ustar();
    h.set_size(data.len() as u64);
    h.set_mode(0o644);
    h.set_cksum();
    b.append_data(&mut h, name, data).unwrap();
}

/// `docker save` output in the legacy form: `<id>/layer.tar`, `<hex>.json`, manifest.json.
fn docker_archive_legacy(layout: &Path) -> PathBuf {
    let (m, _) = manifest_of(layout);
    let cfg_digest = m["config"]["digest"].as_str().unwrap();
    let path = tempdir().join("legacy.tar");
    let mut b = tar::Builder::new(std::fs::File::create(&path).unwrap());
    let config_name = format!("{}.json", cfg_digest.trim_start_matches("sha256:"));
    tar_append(&mut b, &config_name, &std::fs::read(blob(layout, cfg_digest)).unwrap());
    let mut layers = Vec::new();
    for (i, tar) in layer_tars(layout).into_iter().enumerate() {
        let name = format!("{i:064}/layer.tar");
        tar_append(&mut b, &name, &tar);
        layers.push(name);
    }
    let manifest = json!([{"Config": config_name, "RepoTags": ["app:1"], "Layers": layers}]);
    tar_append(&mut b, "manifest.json", &serde_json::to_vec(&manifest).unwrap());
    b.finish().unwrap();
    path
}

/// The Docker 25+ form: an OCI layout inside the tar (index.json and blobs/).
fn docker_archive_oci(layout: &Path) -> PathBuf {
    let path = tempdir().join("oci.tar");
    let mut b = tar::Builder::new(std::fs::File::create(&path).unwrap());
    b.append_dir_all(".", layout).unwrap();
    b.finish().unwrap();
    path
}

#[test]
fn all_transports_and_compressions_agree() {
    let (_root, layout, img) = simple_image();
    let cache = tempdir();
    let (code, v) = scan_json(&img, &[], &cache);
    assert_eq!(code, 3);
    assert_eq!(updates(&v), expected());
    for other in [
        recompress(&layout, "zstd"),
        recompress(&layout, "plain"),
        format!("docker-archive:{}", docker_archive_legacy(&layout).display()),
        format!("docker-archive:{}:app:1", docker_archive_legacy(&layout).display()),
        format!("docker-archive:{}", docker_archive_oci(&layout).display()),
    ] {
        let (code, v) = scan_json(&other, &[], &cache);
        assert_eq!(code, 3, "{other}: {v}");
        assert_eq!(updates(&v), expected(), "{other}");
    }
    let out = freshen(&["scan", &format!("docker-archive:{}:nope:1", docker_archive_legacy(&layout).display())], &cache);
    assert_error(&out, &["no image tagged `nope:1`", "app:1"]);
}

#[test]
fn whiteouts_hide_lower_files() {
    let root = Rootfs::new(DEBIAN_OS);
    root.with_sources(&format!("deb {} stable main\n", repo().url));
    // A source nobody can reach, deleted again by the upper layer.
    root.write("etc/apt/sources.list.d/gone.list", "deb http://127.0.0.1:9/nothing stable main\n");
    root.write("etc/apt/sources.list.d/old/x", "");
    root.write("var/lib/dpkg/status", &stanza("hello", "1.0-1"));
    let upper = Rootfs { dir: tempdir() };
    upper.write("etc/apt/sources.list.d/.wh.gone.list", "");
    let layout = tempdir().join("oci");
    let img = pack(&[(&root.dir, "base"), (&upper.dir, "rm gone.list")], &layout, "w");
    let (code, v) = scan_json(&img, &[], &tempdir());
    assert_eq!(code, 3, "{v}");
    // Without the whiteout layer the unreachable source is read.
    let img = pack(&[(&root.dir, "base")], &tempdir().join("oci"), "w");
    assert_error(&freshen(&["scan", &img], &tempdir()), &["cannot reach http://127.0.0.1:9/nothing"]);
    // An opaque directory hides everything below it.
    let upper = Rootfs { dir: tempdir() };
    upper.write("etc/apt/sources.list.d/.wh..wh..opq", "");
    let img = pack(&[(&root.dir, "base"), (&upper.dir, "opaque")], &tempdir().join("oci"), "w");
    assert_eq!(scan_json(&img, &[], &tempdir()).0, 3);
}

fn corrupt_layer(f: impl Fn(&Path)) -> std::process::Output {
    let (_root, layout, img) = simple_image();
    let (m, _) = manifest_of(&layout);
    f(&blob(&layout, m["layers"][0]["digest"].as_str().unwrap()));
    freshen(&["scan", &img], &tempdir())
}

#[test]
fn corrupt_truncated_and_missing_blobs_are_named() {
    let out = corrupt_layer(|p| {
        let mut d = std::fs::read(p).unwrap();
        let n = d.len();
        d[n / 2] ^= 0xff;
        std::fs::write(p, d).unwrap();
    });
    assert_error(&out, &["layer 0 (sha256:"]);
    let out = corrupt_layer(|p| {
        let d = std::fs::read(p).unwrap();
        std::fs::write(p, &d[..d.len() - 100]).unwrap();
    });
    assert_error(&out, &["layer 0 (sha256:"]);
    let out = corrupt_layer(|p| {
        // Same size, different content: only the digest can tell.
        let d = std::fs::read(p).unwrap();
        let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
        let mut tar = Vec::new();
        flate2::read::GzDecoder::new(&d[..]).read_to_end(&mut tar).unwrap();
        e.write_all(&tar).unwrap();
        let mut z = e.finish().unwrap();
        z.resize(d.len(), 0);
        std::fs::write(p, z).unwrap();
    });
    assert_error(&out, &["layer 0 (sha256:"]);
    let out = corrupt_layer(|p| std::fs::remove_file(p).unwrap());
    assert_error(&out, &["blob sha256:", "is missing"]);
}

#[test]
fn index_platform_selection() {
    let (_root, layout, _) = simple_image();
    let index = read_json(&layout.join("index.json"));
    let mut desc = index["manifests"][0].clone();
    desc.as_object_mut().unwrap().remove("annotations");
    desc["platform"] = json!({"os": "linux", "architecture": "amd64"});
    let inner = serde_json::to_vec(&json!({"schemaVersion": 2, "mediaType": "application/vnd.oci.image.index.v1+json", "manifests": [desc]})).unwrap();
    let d = Digest::of(&inner);
    std::fs::write(blob(&layout, &d.to_string()), &inner).unwrap();
    let top = json!({"schemaVersion": 2, "manifests": [{"mediaType": "application/vnd.oci.image.index.v1+json", "digest": d.to_string(), "size": inner.len(), "annotations": {"org.opencontainers.image.ref.name": "multi"}}]});
    std::fs::write(layout.join("index.json"), serde_json::to_vec(&top).unwrap()).unwrap();
    let img = format!("oci:{}:multi", layout.display());
    let (code, v) = scan_json(&img, &["--platform", "linux/amd64"], &tempdir());
    assert_eq!(code, 3);
    assert_eq!(updates(&v), expected());
    assert_error(&freshen(&["scan", &img, "--platform", "linux/arm64"], &tempdir()), &["no manifest for platform linux/arm64", "available: linux/amd64"]);
    assert_error(&freshen(&["scan", &format!("oci:{}:nope", layout.display())], &tempdir()), &["no image tagged `nope`", "multi"]);
}

#[test]
fn images_without_dpkg_are_explained() {
    let alpine = Rootfs::new("NAME=\"Alpine Linux\"\nID=alpine\nVERSION_ID=3.20.0\nPRETTY_NAME=\"Alpine Linux v3.20\"\n");
    alpine.write("lib/apk/db/installed", "P:musl\nV:1.2.5-r0\n");
    let img = pack(&[(&alpine.dir, "alpine")], &tempdir().join("oci"), "a");
    assert_error(&freshen(&["scan", &img], &tempdir()), &["no dpkg database", "Alpine Linux v3.20 (ID=alpine)"]);
    let scratch = Rootfs { dir: tempdir() };
    scratch.write("app", "binary");
    let img = pack(&[(&scratch.dir, "scratch")], &tempdir().join("oci"), "s");
    assert_error(&freshen(&["scan", &img], &tempdir()), &["no dpkg database and no /etc/os-release"]);
}

#[test]
fn malformed_status_names_file_and_line() {
    let root = Rootfs::new(DEBIAN_OS);
    root.with_sources(&format!("deb {} stable main\n", repo().url));
    root.write("var/lib/dpkg/status", "Package: hello\nStatus: install ok installed\nthis is not a field\n");
    let img = pack(&[(&root.dir, "base")], &tempdir().join("oci"), "m");
    assert_error(&freshen(&["scan", &img], &tempdir()), &["/var/lib/dpkg/status:3:"]);
    root.write("var/lib/dpkg/status", "Package: hello\nStatus: install ok installed\nVersion: 1.0 beta\n");
    let img = pack(&[(&root.dir, "base")], &tempdir().join("oci"), "m");
    assert_error(&freshen(&["scan", &img], &tempdir()), &["/var/lib/dpkg/status:3: invalid version `1.0 beta`"]);
    root.write("var/lib/dpkg/status", &stanza("hello", "1.0-1"));
    root.write("etc/apt/sources.list", "deb http://x\n");
    let img = pack(&[(&root.dir, "base")], &tempdir().join("oci"), "m");
    assert_error(&freshen(&["scan", &img], &tempdir()), &["/etc/apt/sources.list:1:"]);
}

#[test]
fn bad_references_and_paths() {
    let cache = tempdir();
    assert_error(&freshen(&["scan", "nonsense"], &cache), &["invalid image reference `nonsense`"]);
    assert_error(&freshen(&["scan", "oci:/nonexistent/layout"], &cache), &["not an OCI image layout"]);
    assert_error(&freshen(&["scan", "docker-archive:/nonexistent.tar"], &cache), &["/nonexistent.tar"]);
    let junk = tempdir().join("junk.tar");
    std::fs::write(&junk, b"this is not a tar archive at all").unwrap();
    assert_error(&freshen(&["scan", &format!("docker-archive:{}", junk.display())], &cache), &["junk.tar"]);
    // The OS error is said once, not once per error in the chain.
    let out = freshen(&["scan", "dir:/nonexistent/root"], &cache);
    assert_error(&out, &["/nonexistent/root"]);
    assert_eq!(String::from_utf8_lossy(&out.stderr).matches("No such file or directory").count(), 1, "{}", String::from_utf8_lossy(&out.stderr));
    assert_error(&freshen(&["scan", "docker://Registry/App"], &cache), &["invalid repository name"]);
    assert_error(&freshen(&["scan", "docker-daemon:app@sha256:00"], &cache), &["invalid image reference"]);
}

/// The error of `out` with no control character and none of `quoted`.
fn assert_clean_error(out: &std::process::Output, needles: &[&str], quoted: &[&str]) {
    assert_error(out, needles);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!err.trim_end().chars().any(char::is_control), "control characters printed: {err:?}");
    for q in quoted {
        assert!(!err.contains(q), "file content `{q}` quoted: {err:?}");
    }
}

#[test]
fn errors_quote_no_file_content_and_escape_image_text() {
    let cache = tempdir();
    let dir = tempdir();
    // Not a tar archive: the header's numeric fields are terminal escapes.
    let random = dir.join("random");
    std::fs::write(&random, b"\x1b]0;owned\x07\x1b[2J\r\xff".repeat(100)).unwrap();
    let out = freshen(&["scan", &format!("docker-archive:{}", random.display())], &cache);
    assert_clean_error(&out, &["random: not a readable tar archive: bad tar header"], &["owned", "[2J"]);
    // A readable archive whose names carry escapes: shown escaped.
    let hostile = dir.join("hostile.tar");
    let mut b = tar::Builder::new(std::fs::File::create(&hostile).unwrap());
    tar_append(&mut b, "manifest.json", br#"[{"Config":"c\u001b]0;owned\u0007.json","RepoTags":["app:v1\u001b[2J"],"Layers":[]}]"#);
    b.finish().unwrap();
    drop(b);
    let out = freshen(&["scan", &format!("docker-archive:{}:other:tag", hostile.display())], &cache);
    assert_clean_error(&out, &["no image tagged `other:tag`", "app:v1\\x1b[2J"], &[]);
    let out = freshen(&["scan", &format!("docker-archive:{}", hostile.display())], &cache);
    assert_clean_error(&out, &["c\\x1b]0;owned\\x07.json"], &[]);
}

#[test]
fn text_output_escapes_image_text() {
    // The OS name and the layer's command come from the image.
    let root = Rootfs::new("PRETTY_NAME=\"Evil\x1b]0;owned\x07 OS\"\nID=debian\nVERSION_ID=\"13\"\n");
    root.with_sources(&format!("deb {} stable main\n", repo().url));
    root.write("var/lib/dpkg/status", &stanza("hello", "1.0-1"));
    let img = pack(&[(&root.dir, "RUN echo \x1b[2J\rdone")], &tempdir().join("oci"), "evil");
    let out = freshen(&["scan", &img], &tempdir());
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(3), "{text}{}", String::from_utf8_lossy(&out.stderr));
    assert!(!text.replace('\n', "").chars().any(char::is_control), "control characters printed: {text:?}");
    assert!(text.contains("Evil\\x1b]0;owned\\x07 OS") && text.contains("RUN echo \\x1b[2J\\rdone"), "{text}");
}

/// The uncompressed layers must hash to the config's diff ids, and a diff
/// id must be a digest: `scan` checks both, as `patch` does.
#[test]
fn diff_ids_are_checked() {
    let (_root, layout, _) = simple_image();
    let tars = layer_tars(&layout);
    let (_, config) = manifest_of(&layout);
    // A layout whose config names another diff id for the (intact) layer.
    let out = tempdir().join("oci");
    std::fs::create_dir_all(out.join("blobs/sha256")).unwrap();
    let blobs: Vec<LayerBlob> = tars
        .iter()
        .zip(config["history"].as_array().unwrap())
        .map(|(tar, h)| {
            let digest = Digest::of(tar);
            std::fs::write(blob(&out, &digest.to_string()), tar).unwrap();
            LayerBlob { digest, diff_id: Digest::of(b"another layer"), size: tar.len() as u64, media_type: "application/vnd.oci.image.layer.v1.tar".into(), created_by: h["created_by"].as_str().unwrap().into() }
        })
        .collect();
    freshen_image::write_oci_layout(&out, &freshen_image::LayoutImage { tag: "app", os: "linux", architecture: "amd64", layers: &blobs }).unwrap();
    assert_error(&freshen(&["scan", &format!("oci:{}:app", out.display())], &tempdir()), &["layer 0", "does not match the config's diff id"]);

    // A diff id that is not a digest (config, manifest and index rewritten
    // so that only that is wrong).
    let (mut m, mut c) = manifest_of(&layout);
    c["rootfs"]["diff_ids"][0] = json!("sha256:not-a-digest\u{1b}[2J");
    let config_bytes = serde_json::to_vec(&c).unwrap();
    let config_digest = Digest::of(&config_bytes).to_string();
    std::fs::write(blob(&layout, &config_digest), &config_bytes).unwrap();
    m["config"]["digest"] = json!(config_digest);
    m["config"]["size"] = json!(config_bytes.len());
    let manifest_bytes = serde_json::to_vec(&m).unwrap();
    let manifest_digest = Digest::of(&manifest_bytes).to_string();
    std::fs::write(blob(&layout, &manifest_digest), &manifest_bytes).unwrap();
    let mut index = read_json(&layout.join("index.json"));
    index["manifests"][0]["digest"] = json!(manifest_digest);
    index["manifests"][0]["size"] = json!(manifest_bytes.len());
    std::fs::write(layout.join("index.json"), serde_json::to_vec(&index).unwrap()).unwrap();
    let out = freshen(&["scan", &format!("oci:{}:app", layout.display())], &tempdir());
    assert_error(&out, &["diff id 0", "is not a sha256 digest"]);
    assert!(!String::from_utf8_lossy(&out.stderr).contains('\u{1b}'), "an escape from the image reached the terminal");
}

/// A layout's blob that is a symlink to a host file (its size declared to
/// match) is refused without reading it; a FIFO does not block.
#[test]
fn layout_blobs_are_regular_files_inside_the_layout() {
    let secret = tempdir().join("secret");
    std::fs::write(&secret, "root:$y$j9T$host-password-hash:19000:0:99999:7:::\n").unwrap();
    let out = corrupt_layer(|p| {
        std::fs::remove_file(p).unwrap();
        std::os::unix::fs::symlink(&secret, p).unwrap();
    });
    assert_error(&out, &["is a symlink or leaves", "regular files inside it"]);
    assert!(!String::from_utf8_lossy(&out.stderr).contains("host-password"), "host file content in the error");
    let started = std::time::Instant::now();
    let out = corrupt_layer(|p| {
        std::fs::remove_file(p).unwrap();
        assert!(std::process::Command::new("mkfifo").arg(p).status().unwrap().success());
    });
    assert_error(&out, &["is not a regular file"]);
    assert!(started.elapsed() < std::time::Duration::from_secs(20), "a FIFO blob blocked the scan");
    // index.json too.
    let (_root, layout, img) = simple_image();
    let real = layout.join("index.json");
    std::fs::rename(&real, layout.join("index.real")).unwrap();
    std::os::unix::fs::symlink("index.real", &real).unwrap();
    assert_error(&freshen(&["scan", &img], &tempdir()), &["index.json", "symlink"]);
}
