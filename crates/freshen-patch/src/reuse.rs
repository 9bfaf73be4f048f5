//! Reusing a patch layer across images that share a base.
//!
//! apt runs on the OS part of an image: its layers up to the last one that
//! wrote the dpkg database. The layers above it (an app's files) are then
//! checked to touch none of the paths the patch layer writes or deletes
//! (including the dpkg database, and no deletion or replacement of a
//! directory the patch writes into). When that holds, the patch layer is
//! valid on top of the whole image, and it is recorded under the base's
//! layers and the exact set of updates, so every other image on the same
//! base with the same pending updates gets it without running apt again.
//! When it does not hold, apt runs on the whole image.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use freshen_image::{ImageSource, Layer, LayerBlob};
use serde::{Deserialize, Serialize};
use sha2::{Digest as _, Sha256};

use crate::error::{io_err, Error, Result};
use crate::layer::LayerStats;

/// A recorded patch layer.
#[derive(Serialize, Deserialize, Clone, Debug)]
pub struct Record {
    pub digest: String,
    pub diff_id: String,
    pub size: u64,
    pub media_type: String,
    pub created_by: String,
    pub stats: LayerStats,
    /// (package, installed version after the patch)
    pub packages: Vec<(String, String)>,
}

/// The record key: base layers (diff ids), the exact updates, and the options
/// that change the layer's bytes.
pub fn key(base: &[Layer], updates: &[String], options: &str) -> Option<String> {
    let mut h = Sha256::new();
    for l in base {
        h.update(l.diff_id.as_ref()?.to_string().as_bytes());
        h.update(b"\n");
    }
    let mut u = updates.to_vec();
    u.sort();
    h.update(u.join("\n").as_bytes());
    h.update(b"\n--\n");
    h.update(options.as_bytes());
    Some(freshen_image::hex_encode(&h.finalize()))
}

fn dir(cache: &Path) -> PathBuf {
    cache.join("patches")
}

/// Looks a record up; returns it with the path of its blob.
pub fn find(cache: &Path, key: &str) -> Option<(Record, PathBuf)> {
    let rec: Record = serde_json::from_slice(&std::fs::read(dir(cache).join(format!("{key}.json"))).ok()?).ok()?;
    let blob = dir(cache).join("blobs").join(rec.digest.trim_start_matches("sha256:"));
    // The blob is checked against its digest before it is reused.
    let data = std::fs::read(&blob).ok()?;
    if freshen_image::Digest::of(&data).to_string() != rec.digest {
        return None;
    }
    crate::prune::touch(&dir(cache).join(format!("{key}.json")));
    Some((rec, blob))
}

/// Records a patch layer.
pub fn store(cache: &Path, key: &str, layer: &LayerBlob, blob: &Path, stats: &LayerStats, packages: &[(String, String)]) -> Result<()> {
    let blobs = dir(cache).join("blobs");
    std::fs::create_dir_all(&blobs).map_err(io_err(&blobs))?;
    let dest = blobs.join(layer.digest.hex());
    if !dest.is_file() {
        freshen_fs::copy_atomic(blob, &dest).map_err(io_err(&dest))?;
    }
    let rec = Record {
        digest: layer.digest.to_string(),
        diff_id: layer.diff_id.to_string(),
        size: layer.size,
        media_type: layer.media_type.clone(),
        created_by: layer.created_by.clone(),
        stats: stats.clone(),
        packages: packages.to_vec(),
    };
    let path = dir(cache).join(format!("{key}.json"));
    Ok(freshen_image::write_atomic(&path, &serde_json::to_vec(&rec).map_err(|e| Error::Invalid(e.to_string()))?)?)
}

/// One entry of an upper layer, as far as disjointness is concerned.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kind {
    Dir,
    Other,
    /// `.wh.NAME`: NAME is deleted.
    Whiteout,
    /// `.wh..wh..opq`: the directory's lower contents are hidden.
    Opaque,
}

fn layer_entries(source: &dyn ImageSource, layer: &Layer) -> Result<Vec<(String, Kind)>> {
    let raw = source.open_layer(layer)?;
    let lerr = |e: std::io::Error| Error::Invalid(format!("layer {} ({}): {e}", layer.index, layer.digest));
    let mut stream = freshen_image::decompress(raw, layer.size).map_err(lerr)?;
    let mut out = Vec::new();
    {
        let mut archive = tar::Archive::new(freshen_image::targuard::TarGuard::new(&mut stream));
        for e in archive.entries().map_err(lerr)? {
            let e = e.map_err(lerr)?;
            let p = e.path().map_err(lerr)?.to_string_lossy().trim_start_matches("./").trim_start_matches('/').trim_end_matches('/').to_string();
            let (parent, name) = p.rsplit_once('/').map_or(("", p.as_str()), |(a, b)| (a, b));
            let join = |n: &str| if parent.is_empty() { n.to_string() } else { format!("{parent}/{n}") };
            if name == ".wh..wh..opq" {
                out.push((parent.to_string(), Kind::Opaque));
            } else if let Some(hidden) = name.strip_prefix(".wh.") {
                out.push((join(hidden), Kind::Whiteout));
            } else if e.header().entry_type() == tar::EntryType::Directory {
                out.push((p, Kind::Dir));
            } else {
                out.push((p, Kind::Other));
            }
        }
    }
    std::io::copy(&mut stream, &mut std::io::sink()).map_err(lerr)?;
    Ok(out)
}

/// The first conflict between the patch layer's paths and the entries of
/// `upper` layers, if any.
pub fn conflict(source: &dyn ImageSource, upper: &[Layer], patch: &[(String, bool)]) -> Result<Option<String>> {
    let patch: HashMap<&str, bool> = patch.iter().map(|(p, d)| (p.as_str(), *d)).collect();
    let ancestors = |p: &str| -> Vec<String> {
        let mut v = Vec::new();
        let mut cur = p;
        while let Some((a, _)) = cur.rsplit_once('/') {
            v.push(a.to_string());
            cur = a;
        }
        v
    };
    // Directories the patch writes into (so they must stay directories).
    let mut patch_dirs: HashMap<String, ()> = HashMap::new();
    for p in patch.keys() {
        for a in ancestors(p) {
            patch_dirs.insert(a, ());
        }
    }
    for layer in upper {
        for (path, kind) in layer_entries(source, layer)? {
            let clash = match (patch.get(path.as_str()), kind) {
                // Both only ensure a directory exists.
                (Some(true), Kind::Dir) => false,
                (Some(_), _) => true,
                (None, Kind::Dir) => false,
                (None, Kind::Other) => patch_dirs.contains_key(&path),
                (None, Kind::Whiteout) | (None, Kind::Opaque) => patch_dirs.contains_key(&path),
            };
            // Anything below a non-directory path of the patch.
            let below = ancestors(&path).iter().any(|a| patch.get(a.as_str()) == Some(&false));
            if clash || below {
                return Ok(Some(format!("layer {} writes `{path}`, which the patch layer also changes", layer.index)));
            }
        }
    }
    Ok(None)
}
