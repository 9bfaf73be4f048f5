//! Layers shaped by an attacker, generated here (no checked-in blobs):
//! a compressed layer that inflates without bound, and tars built to make
//! freshen hold more than it should in memory. Each fails with one line.

mod common;

use std::path::PathBuf;
use std::time::{Duration, Instant};

use common::*;
use freshen_image::{Digest, LayerBlob};

/// An OCI layout `oci:DIR:app` whose layers are the given blobs (data,
/// media type, diff id).
fn layout_of(layers: &[(Vec<u8>, &str, Digest)]) -> (PathBuf, String) {
    let out = tempdir().join("oci");
    std::fs::create_dir_all(out.join("blobs/sha256")).unwrap();
    let blobs: Vec<LayerBlob> = layers
        .iter()
        .map(|(data, media, diff_id)| {
            let digest = Digest::of(data);
            std::fs::write(out.join("blobs/sha256").join(digest.hex()), data).unwrap();
            LayerBlob { digest, diff_id: diff_id.clone(), size: data.len() as u64, media_type: media.to_string(), created_by: "crafted".into() }
        })
        .collect();
    freshen_image::write_oci_layout(&out, &freshen_image::LayoutImage { tag: "app", os: "linux", architecture: "amd64", layers: &blobs }).unwrap();
    let image = format!("oci:{}:app", out.display());
    (out, image)
}

fn scan(image: &str, env: &[(&str, &str)]) -> (std::process::Output, Duration) {
    let start = Instant::now();
    let out = freshen_env(&["scan", image], &tempdir(), env);
    (out, start.elapsed())
}

/// A zstd layer of a few hundred KB that inflates to 5 GiB of zeros (one
/// 64 MiB frame, repeated): refused once past the bound (64 times its size,
/// at least 4 GiB), and by a lower bound set with FRESHEN_MAX_LAYER_SIZE.
#[test]
fn decompression_bomb_is_bounded() {
    let frame = zstd::encode_all(&vec![0u8; 64 << 20][..], 3).unwrap();
    let bomb: Vec<u8> = frame.iter().copied().cycle().take(frame.len() * 80).collect();
    assert!(bomb.len() < 1 << 20, "the bomb is small: {}", bomb.len());
    let (_dir, image) = layout_of(&[(bomb, "application/vnd.oci.image.layer.v1.tar+zstd", Digest::of(b"five GiB of zeros"))]);
    let (out, took) = scan(&image, &[]);
    assert_error(&out, &["layer 0", "inflates to more than 4.0 GiB", "FRESHEN_MAX_LAYER_SIZE"]);
    assert!(took < Duration::from_secs(120), "took {took:?}");
    let (out, _) = scan(&image, &[("FRESHEN_MAX_LAYER_SIZE", "100M")]);
    assert_error(&out, &["layer 0", "inflates to more than 100.0 MiB"]);
}

fn gzip(data: &[u8]) -> Vec<u8> {
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    std::io::Write::write_all(&mut gz, data).unwrap();
    gz.finish().unwrap()
}

/// A tar of one regular file `path` of `size` zero bytes, streamed.
fn zero_file_tar(path: &str, size: u64) -> Vec<u8> {
    let mut h = tar::Header::new_gnu();
    h.set_path(path).unwrap();
    h.set_size(size);
    h.set_mode(0o644);
    h.set_entry_type(tar::EntryType::Regular);
    h.set_cksum();
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    std::io::Write::write_all(&mut gz, h.as_bytes()).unwrap();
    std::io::copy(&mut std::io::repeat(0).take(size + 1024 + (512 - size % 512) % 512), &mut gz).unwrap();
    gz.finish().unwrap()
}

use std::io::Read as _;

/// One small gzip layer holding a 200 MiB dpkg status, listed three times
/// in the manifest: each layer's copy is kept, and the total read into
/// memory passes the 1 GiB bound on the third.
#[test]
fn files_kept_in_memory_are_bounded_in_total() {
    let blob = zero_file_tar("var/lib/dpkg/status", 200 << 20);
    assert!(blob.len() < 8 << 20, "{}", blob.len());
    let mut hasher = <sha2::Sha256 as sha2::Digest>::new();
    std::io::copy(&mut flate2::read::GzDecoder::new(&blob[..]), &mut hasher).unwrap();
    let diff = Digest::from_sha256(hasher);
    let layer = (blob, "application/vnd.oci.image.layer.v1.tar+gzip", diff);
    let (_dir, image) = layout_of(&[layer.clone(), layer.clone(), layer]);
    let (out, _) = scan(&image, &[]);
    assert_error(&out, &["layer 2", "pass 1024 MiB in all", "var/lib/dpkg/status"]);
}

/// A tar opening with a GNU long-name (or PAX) header that claims 2 GiB,
/// in a blob of a few KB: refused before it is read.
#[test]
fn tar_extension_headers_are_bounded() {
    for (kind, what) in [(b'L', "GNU long name"), (b'x', "PAX header")] {
        let mut h = tar::Header::new_gnu();
        h.as_mut_bytes()[..13].copy_from_slice(b"././@LongLink");
        h.set_size(2 << 30);
        h.set_entry_type(tar::EntryType::new(kind));
        h.set_cksum();
        let mut tar = h.as_bytes().to_vec();
        tar.extend(vec![b'a'; 2 << 20]);
        let (_dir, image) = layout_of(&[(gzip(&tar), "application/vnd.oci.image.layer.v1.tar+gzip", Digest::of(&tar))]);
        let (out, _) = scan(&image, &[]);
        assert_error(&out, &["layer 0", &format!("a tar {what} of 2147483648 bytes (more than 4 MiB)")]);
    }
}

/// A 16 MiB config of millions of empty history entries is refused before
/// it is built into typed values (over a gigabyte).
#[test]
fn config_amplification_is_bounded() {
    let dir = tempdir().join("oci");
    let blobs = dir.join("blobs/sha256");
    std::fs::create_dir_all(&blobs).unwrap();
    let history = "{},".repeat(5_000_000);
    let config = format!("{{\"architecture\":\"amd64\",\"os\":\"linux\",\"rootfs\":{{\"type\":\"layers\",\"diff_ids\":[]}},\"history\":[{history}{{}}]}}");
    assert!(config.len() < 16 << 20);
    let put = |data: &[u8]| -> (String, usize) {
        let d = Digest::of(data);
        std::fs::write(blobs.join(d.hex()), data).unwrap();
        (d.to_string(), data.len())
    };
    let (config_digest, config_size) = put(config.as_bytes());
    let manifest = serde_json::json!({"schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": config_digest, "size": config_size}, "layers": []});
    let (manifest_digest, manifest_size) = put(&serde_json::to_vec(&manifest).unwrap());
    let index = serde_json::json!({"schemaVersion": 2, "manifests": [{"mediaType": "application/vnd.oci.image.manifest.v1+json",
        "digest": manifest_digest, "size": manifest_size, "annotations": {"org.opencontainers.image.ref.name": "app"}}]});
    std::fs::write(dir.join("index.json"), serde_json::to_vec(&index).unwrap()).unwrap();
    std::fs::write(dir.join("oci-layout"), r#"{"imageLayoutVersion":"1.0.0"}"#).unwrap();
    let (out, took) = scan(&format!("oci:{}:app", dir.display()), &[]);
    assert_error(&out, &["config", "more than 200000 JSON values"]);
    assert!(took < Duration::from_secs(30), "took {took:?}");
}
