//! The docker-archive format: a tar holding Docker's legacy
//! `manifest.json` and, from Docker 25 on, an OCI layout. Read through
//! either (the legacy manifest first); written with both, so every
//! `docker load` and every OCI tool reads it.

use std::collections::HashSet;
use std::fs::{self, File};
use std::io::{self, Write};
use std::path::Path;

use oci_spec::image::ImageConfiguration;
use serde::Deserialize;

use crate::atomic::rename_synced;
use crate::digest::Digest;
use crate::error::{io_err, Error, Result};
use crate::layout::{blob_path, index_entry, new_index, OCI_LAYOUT};
use crate::manifest::JSON_LIMIT;
use crate::platform::Platform;
use crate::source::{attach_history, diff_ids, parse_json, Image, Layer, NewImage};
use crate::store::{Store, StoreSource, TarStore};

/// Opens a docker-archive file (its legacy `manifest.json`, else its OCI
/// layout); `display` names the image in messages.
pub(crate) fn open(path: &Path, reference: Option<&str>, platform: &Platform, display: String) -> Result<StoreSource> {
    let store = TarStore::open(path)?;
    if store.open("manifest.json")?.is_some() {
        from_docker_manifest(Box::new(store), reference, path, display)
    } else if store.open("index.json")?.is_some() {
        crate::layout::open(Box::new(store), reference, platform, display)
    } else {
        Err(Error::Invalid(format!("{}: neither manifest.json nor index.json found: not a docker-archive", path.display())))
    }
}

#[derive(Deserialize)]
struct LegacyEntry {
    #[serde(rename = "Config")]
    config: String,
    #[serde(rename = "RepoTags", default)]
    repo_tags: Option<Vec<String>>,
    #[serde(rename = "Layers")]
    layers: Vec<String>,
}

/// The digest a docker-archive path encodes: `<hex>.json` or `blobs/sha256/<hex>`.
fn digest_from_path(path: &str) -> Option<Digest> {
    let name = path.rsplit('/').next()?;
    let hex = name.strip_suffix(".json").unwrap_or(name);
    Digest::parse(&format!("sha256:{hex}")).ok()
}

fn from_docker_manifest(store: Box<dyn Store>, reference: Option<&str>, path: &Path, display: String) -> Result<StoreSource> {
    let bytes = store.read_all("manifest.json", JSON_LIMIT)?.unwrap_or_default();
    crate::jsonsize::check(&bytes).map_err(|e| Error::Invalid(format!("{}: manifest.json: {e}", path.display())))?;
    let entries: Vec<LegacyEntry> = serde_json::from_slice(&bytes)
        .map_err(|e| Error::Invalid(format!("{}: manifest.json: invalid JSON: {e}", path.display())))?;
    let all_tags = || {
        entries.iter().flat_map(|e| e.repo_tags.clone().unwrap_or_default()).collect::<Vec<_>>().join(", ")
    };
    let entry = match reference {
        Some(r) => {
            let want = if r.contains(':') { r.to_string() } else { format!("{r}:latest") };
            let found = entries.iter().find(|e| {
                e.repo_tags.as_deref().unwrap_or_default().iter().any(|t| t == &want || t == &format!("docker.io/{want}"))
            });
            found.ok_or_else(|| Error::Invalid(format!("{display}: no image tagged `{r}` (tags: {})", all_tags())))?
        }
        None => match entries.as_slice() {
            [one] => one,
            [] => return Err(Error::Invalid(format!("{display}: manifest.json lists no image"))),
            _ => {
                return Err(Error::Invalid(format!(
                    "{display}: the archive holds several images; name one with docker-archive:FILE:NAME:TAG (tags: {})",
                    all_tags()
                )))
            }
        },
    };
    let config_digest = digest_from_path(&entry.config)
        .ok_or_else(|| Error::Invalid(format!("{display}: config path `{}` does not name a digest", entry.config)))?;
    let config_bytes = store
        .read_all(&entry.config, JSON_LIMIT)?
        .ok_or_else(|| Error::MissingBlob { digest: config_digest.to_string(), location: store.location() })?;
    let config: ImageConfiguration = parse_json("config", &config_digest, &config_bytes)?;
    let diff_ids = diff_ids(&config, &display.to_string())?;
    if diff_ids.len() != entry.layers.len() {
        return Err(Error::Invalid(format!(
            "{display}: manifest.json has {} layers but the config lists {} diff ids",
            entry.layers.len(),
            diff_ids.len()
        )));
    }
    let mut layers = Vec::new();
    for (i, lp) in entry.layers.iter().enumerate() {
        // Docker 25+ names layers by blob digest; older `<id>/layer.tar` files
        // are uncompressed, so their digest is the diff id.
        let digest = if lp.starts_with("blobs/") { digest_from_path(lp) } else { diff_ids[i].clone() };
        let digest = digest.ok_or_else(|| Error::Invalid(format!("{display}: layer {i} (`{lp}`) has no digest")))?;
        layers.push(Layer {
            index: i,
            digest,
            diff_id: diff_ids[i].clone(),
            media_type: "application/vnd.docker.image.rootfs.diff.tar".into(),
            // manifest.json records no sizes: the archive member's.
            size: store.open(lp)?.map(|(_, size)| size),
            created_by: None,
        });
    }
    attach_history(&config, &mut layers);
    Ok(StoreSource {
        store,
        image: Image { reference: display, manifest_digest: None, config_digest, config, config_raw: config_bytes, manifest_raw: None, layers, index: None },
        layer_paths: entry.layers.clone(),
    })
}

fn append<W: Write>(b: &mut tar::Builder<W>, name: &str, data: &mut dyn io::Read, size: u64) -> io::Result<()> {
    let mut h = tar::Header::new_gnu();
    h.set_size(size);
    h.set_mode(0o644);
    h.set_mtime(0);
    h.set_entry_type(if name.ends_with('/') { tar::EntryType::Directory } else { tar::EntryType::Regular });
    b.append_data(&mut h, name, data)
}

/// A docker-archive holding both forms: `manifest.json` (read by every
/// `docker load`) and an OCI layout (`index.json`, `blobs/`). Written in
/// one pass, each blob streamed from its source into the tar, under a
/// temporary name renamed into place.
pub(crate) fn write(path: &Path, reference: Option<&str>, img: &NewImage) -> Result<Digest> {
    let parent = path.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(Path::new("."));
    let name = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    let tmp = parent.join(format!(".{name}.tmp-{}", std::process::id()));
    let config_digest = Digest::of(&img.config);
    let manifest_digest = Digest::of(&img.manifest);
    let json = |v: &serde_json::Value| serde_json::to_vec(v).map_err(|e| Error::Invalid(e.to_string()));
    let index = json(&new_index(vec![index_entry(&img.manifest_media_type, &manifest_digest, img.manifest.len(), reference)]))?;
    let mut layers: Vec<String> = img.source_layers.iter().map(|l| blob_path(&l.digest)).collect();
    layers.extend(img.new_blobs.iter().map(|(d, _)| blob_path(d)));
    let tags: Vec<String> = reference.map(|r| vec![if r.contains(':') { r.to_string() } else { format!("{r}:latest") }]).unwrap_or_default();
    let legacy = json(&serde_json::json!([{"Config": blob_path(&config_digest), "RepoTags": tags, "Layers": layers}]))?;

    let build = || -> Result<()> {
        let file = File::create(&tmp).map_err(io_err(&tmp))?;
        let mut b = tar::Builder::new(io::BufWriter::with_capacity(1 << 20, file));
        let io = |e: io::Error| io_err(path)(e);
        append(&mut b, "blobs/", &mut io::empty(), 0).map_err(io)?;
        append(&mut b, "blobs/sha256/", &mut io::empty(), 0).map_err(io)?;
        let mut seen = HashSet::new();
        for l in img.source_layers {
            if !seen.insert(l.digest.clone()) {
                continue;
            }
            let size = l.size.ok_or_else(|| Error::Invalid(format!("layer {} ({}) has no recorded size", l.index, l.digest)))?;
            let mut r = img.source.open_layer(l)?;
            append(&mut b, &blob_path(&l.digest), &mut r, size)
                .map_err(|e| Error::Layer { index: l.index, digest: l.digest.to_string(), reason: e.to_string() })?;
        }
        for (d, p) in &img.new_blobs {
            if seen.insert(d.clone()) {
                let mut f = File::open(p).map_err(io_err(p))?;
                let size = f.metadata().map_err(io_err(p))?.len();
                append(&mut b, &blob_path(d), &mut f, size).map_err(io)?;
            }
        }
        for (d, data) in [(&config_digest, &img.config), (&manifest_digest, &img.manifest)] {
            if seen.insert(d.clone()) {
                append(&mut b, &blob_path(d), &mut &data[..], data.len() as u64).map_err(io)?;
            }
        }
        for (entry, data) in [("index.json", &index[..]), ("oci-layout", OCI_LAYOUT), ("manifest.json", &legacy[..])] {
            append(&mut b, entry, &mut &data[..], data.len() as u64).map_err(io)?;
        }
        let f = b.into_inner().map_err(io)?.into_inner().map_err(|e| io(e.into_error()))?;
        f.sync_all().map_err(io)
    };
    if let Err(e) = build() {
        let _ = fs::remove_file(&tmp);
        return Err(e);
    }
    rename_synced(&tmp, path)?;
    Ok(manifest_digest)
}
