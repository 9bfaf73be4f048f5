//! The OCI image layout format (`index.json`, `oci-layout`,
//! `blobs/sha256/`), in a directory or inside a docker-archive tar: reading
//! one image from it, and writing images into a directory layout. Files are
//! put in place whole ([`write_atomic`]); `index.json` is updated in one
//! place ([`upsert_index`]).

use std::fs::{self, File};
use std::io;
use std::path::Path;

use oci_spec::image::{ImageConfiguration, ImageIndex, ImageManifest};

use crate::atomic::{rename_synced, tmp_name, write_atomic};
use crate::digest::Digest;
use crate::error::{io_err, Error, Result};
use crate::manifest::{choose_platform, layers_of, parse_digest, JSON_LIMIT};
use crate::platform::Platform;
use crate::source::{parse_json, Image, Layer, NewImage};
use crate::store::{Store, StoreSource};
#[cfg(feature = "testing")]
use crate::write::LayerBlob;

const REF_NAME: &str = "org.opencontainers.image.ref.name";
pub(crate) const OCI_LAYOUT: &[u8] = br#"{"imageLayoutVersion":"1.0.0"}"#;

pub(crate) fn blob_path(d: &Digest) -> String {
    format!("blobs/sha256/{}", d.hex())
}

fn read_blob(store: &dyn Store, d: &Digest) -> Result<Vec<u8>> {
    store
        .read_all(&blob_path(d), JSON_LIMIT)?
        .ok_or_else(|| Error::MissingBlob { digest: d.to_string(), location: store.location() })
}

/// Reads the image tagged `tag` (or the only one) from the layout in
/// `store`; `display` names it in messages.
pub(crate) fn open(store: Box<dyn Store>, tag: Option<&str>, platform: &Platform, display: String) -> Result<StoreSource> {
    let index_bytes = store
        .read_all("index.json", JSON_LIMIT)?
        .ok_or_else(|| Error::Invalid(format!("{}: no index.json", store.location())))?;
    crate::jsonsize::check(&index_bytes).map_err(|e| Error::Invalid(format!("{}/index.json: {e}", store.location())))?;
    let index: ImageIndex = serde_json::from_slice(&index_bytes)
        .map_err(|e| Error::Invalid(format!("{}/index.json: invalid JSON: {e}", store.location())))?;
    let candidates: Vec<_> = match tag {
        Some(t) => index
            .manifests()
            .iter()
            .filter(|d| d.annotations().as_ref().and_then(|a| a.get(REF_NAME)).map(String::as_str) == Some(t))
            .collect(),
        None => index.manifests().iter().collect(),
    };
    let desc = match candidates.as_slice() {
        [one] => *one,
        [] if tag.is_some() => {
            return Err(Error::Invalid(format!("{display}: no image tagged `{}` (tags: {})", tag.unwrap_or(""), tags(&index))))
        }
        [] => return Err(Error::Invalid(format!("{display}: the layout's index.json lists no image"))),
        _ => {
            return Err(Error::Invalid(format!(
                "{display}: the layout holds several images; name one with oci:DIR:TAG (tags: {})",
                tags(&index)
            )))
        }
    };
    let mut digest = parse_digest(desc.digest().as_ref())?;
    let mut bytes = read_blob(store.as_ref(), &digest)?;
    // Follow nested indexes (depth-limited) down to a manifest for the platform.
    for _ in 0..4 {
        let value: serde_json::Value = parse_json("manifest", &digest, &bytes)?;
        if value.get("manifests").is_none() {
            break;
        }
        let index: ImageIndex = serde_json::from_value(value)
            .map_err(|e| Error::Json { what: "index", digest: digest.to_string(), reason: e.to_string() })?;
        let (_, chosen) = choose_platform(&index, platform, &display)?;
        digest = parse_digest(chosen.digest().as_ref())?;
        bytes = read_blob(store.as_ref(), &digest)?;
    }
    let manifest: ImageManifest = parse_json("manifest", &digest, &bytes)?;
    let config_digest = parse_digest(manifest.config().digest().as_ref())?;
    let config_raw = read_blob(store.as_ref(), &config_digest)?;
    let config: ImageConfiguration = parse_json("config", &config_digest, &config_raw)?;
    let layers = layers_of(&manifest, &config, &display)?;
    let layer_paths = layers.iter().map(|l| blob_path(&l.digest)).collect();
    Ok(StoreSource {
        store,
        image: Image { reference: display, manifest_digest: Some(digest), config_digest, config, config_raw, manifest_raw: Some(bytes), layers, index: None },
        layer_paths,
    })
}

fn tags(index: &ImageIndex) -> String {
    let t: Vec<_> = index
        .manifests()
        .iter()
        .filter_map(|d| d.annotations().as_ref().and_then(|a| a.get(REF_NAME)).cloned())
        .collect();
    if t.is_empty() {
        "none".into()
    } else {
        t.join(", ")
    }
}

/// Writes `img` into the layout directory `dir` (created if missing),
/// replacing any image tagged `tag`; returns the manifest digest.
pub(crate) fn write(dir: &Path, tag: Option<&str>, img: &NewImage) -> Result<Digest> {
    let blobs = dir.join("blobs/sha256");
    fs::create_dir_all(&blobs).map_err(io_err(&blobs))?;
    for l in img.source_layers {
        copy_blob(img, &blobs, l)?;
    }
    for (d, path) in &img.new_blobs {
        let dest = blobs.join(d.hex());
        if !dest.is_file() {
            freshen_fs::copy_atomic(path, &dest).map_err(io_err(&dest))?;
        }
    }
    put_blob(&blobs, &img.config)?;
    let manifest_digest = put_blob(&blobs, &img.manifest)?;
    upsert_index(dir, index_entry(&img.manifest_media_type, &manifest_digest, img.manifest.len(), tag), tag)?;
    Ok(manifest_digest)
}

fn copy_blob(img: &NewImage, blobs: &Path, layer: &Layer) -> Result<()> {
    let dest = blobs.join(layer.digest.hex());
    if dest.is_file() {
        return Ok(());
    }
    let tmp = tmp_name(blobs, "blob");
    let mut r = img.source.open_layer(layer)?;
    let res = File::create(&tmp).and_then(|mut f| io::copy(&mut r, &mut f).and_then(|_| f.sync_all()));
    if let Err(e) = res {
        let _ = fs::remove_file(&tmp);
        return Err(Error::Layer { index: layer.index, digest: layer.digest.to_string(), reason: e.to_string() });
    }
    rename_synced(&tmp, &dest)
}

/// Stores `data` as a blob in `blobs` (a layout's `blobs/sha256`).
fn put_blob(blobs: &Path, data: &[u8]) -> Result<Digest> {
    let d = Digest::of(data);
    write_atomic(&blobs.join(d.hex()), data)?;
    Ok(d)
}

/// An index entry for a manifest, tagged `tag`.
pub(crate) fn index_entry(media_type: &str, digest: &Digest, size: usize, tag: Option<&str>) -> serde_json::Value {
    let mut entry = serde_json::json!({"mediaType": media_type, "digest": digest.to_string(), "size": size});
    if let Some(t) = tag {
        entry["annotations"] = serde_json::json!({REF_NAME: t});
    }
    entry
}

/// A fresh `index.json` listing `manifests`.
pub(crate) fn new_index(manifests: Vec<serde_json::Value>) -> serde_json::Value {
    serde_json::json!({"schemaVersion": 2, "mediaType": "application/vnd.oci.image.index.v1+json", "manifests": manifests})
}

/// Puts `entry` into the layout `dir`'s `index.json` (created if missing) in
/// place of any entry tagged `tag`, and writes `oci-layout`.
fn upsert_index(dir: &Path, entry: serde_json::Value, tag: Option<&str>) -> Result<()> {
    let index_path = dir.join("index.json");
    let mut index: serde_json::Value = match fs::read(&index_path) {
        Ok(b) => serde_json::from_slice(&b).map_err(|e| Error::Invalid(format!("{}: {e}", index_path.display())))?,
        Err(_) => new_index(Vec::new()),
    };
    let manifests = index["manifests"].as_array_mut().ok_or_else(|| Error::Invalid(format!("{}: no manifests array", index_path.display())))?;
    manifests.retain(|m| m["annotations"][REF_NAME].as_str() != tag);
    manifests.push(entry);
    write_atomic(&dir.join("oci-layout"), OCI_LAYOUT)?;
    write_atomic(&index_path, &serde_json::to_vec(&index).map_err(|e| Error::Invalid(e.to_string()))?)
}

/// An image to put into a layout.
#[cfg(feature = "testing")]
pub struct LayoutImage<'a> {
    pub tag: &'a str,
    pub os: &'a str,
    pub architecture: &'a str,
    pub layers: &'a [LayerBlob],
}

/// Writes config, manifest and index entry for `image` into the OCI layout at
/// `layout` (created if missing), replacing any image with the same tag.
/// Returns the manifest digest.
#[cfg(feature = "testing")]
pub fn write_oci_layout(layout: &Path, image: &LayoutImage) -> Result<Digest> {
    let blobs = layout.join("blobs/sha256");
    fs::create_dir_all(&blobs).map_err(io_err(&blobs))?;
    let history: Vec<_> = image.layers.iter().map(|l| serde_json::json!({"created_by": l.created_by})).collect();
    let config = serde_json::json!({
        "architecture": image.architecture,
        "os": image.os,
        "config": {},
        "rootfs": {"type": "layers", "diff_ids": image.layers.iter().map(|l| l.diff_id.to_string()).collect::<Vec<_>>()},
        "history": history,
    });
    let config_bytes = serde_json::to_vec(&config).map_err(|e| Error::Invalid(e.to_string()))?;
    let config_digest = put_blob(&blobs, &config_bytes)?;
    let manifest = serde_json::json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": config_digest.to_string(), "size": config_bytes.len()},
        "layers": image.layers.iter().map(|l| serde_json::json!({"mediaType": l.media_type, "digest": l.digest.to_string(), "size": l.size})).collect::<Vec<_>>(),
    });
    let manifest_bytes = serde_json::to_vec(&manifest).map_err(|e| Error::Invalid(e.to_string()))?;
    let manifest_digest = put_blob(&blobs, &manifest_bytes)?;
    upsert_index(layout, index_entry("application/vnd.oci.image.manifest.v1+json", &manifest_digest, manifest_bytes.len(), Some(image.tag)), Some(image.tag))?;
    Ok(manifest_digest)
}
