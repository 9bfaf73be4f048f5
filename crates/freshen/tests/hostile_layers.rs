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
