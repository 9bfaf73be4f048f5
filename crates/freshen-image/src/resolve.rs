//! Resolving a reference to one image: OCI layouts (in a directory or inside
//! a docker-archive tar) and docker-archive's legacy `manifest.json`.

use std::io::Read;
use std::path::Path;

use oci_spec::image::{Descriptor, ImageConfiguration, ImageIndex, ImageManifest};
use serde::Deserialize;

use crate::digest::{Digest, VerifyingReader};
use crate::error::{Error, Result};
use crate::platform::Platform;
use crate::reference::ImageRef;
use crate::source::{attach_history, diff_ids, parse_json, Image, ImageSource, Layer};
use crate::store::{DirStore, Store, TarStore};
use crate::transport::Transport;

/// The largest manifest, index or config freshen reads.
pub(crate) const JSON_LIMIT: u64 = 16 << 20;
const REF_NAME: &str = "org.opencontainers.image.ref.name";

/// An image read from a directory or an archive.
pub struct StoreSource {
    store: Box<dyn Store>,
    image: Image,
    layer_paths: Vec<String>,
}

impl ImageSource for StoreSource {
    fn image(&self) -> &Image {
        &self.image
    }

    fn open_layer(&self, layer: &Layer) -> Result<Box<dyn Read + Send + '_>> {
        let path = &self.layer_paths[layer.index];
        let (r, size) = self.store.open(path)?.ok_or_else(|| Error::MissingBlob {
            digest: layer.digest.to_string(),
            location: self.store.location(),
        })?;
        Ok(Box::new(VerifyingReader::new(r, layer.digest.clone(), Some(layer.size.unwrap_or(size)))))
    }
}

/// Opens any image reference: a registry, the Docker Engine, an OCI layout
/// or a docker-archive. `dir:` is not an image with layers; see
/// [`crate::read_dir_files`].
pub fn open(reference: &ImageRef, platform: &Platform, transport: &Transport) -> Result<Box<dyn ImageSource>> {
    match reference {
        ImageRef::Docker(r) => crate::registry::open(r, platform, transport),
        ImageRef::DockerDaemon { name } => crate::daemon::open(name, platform, transport),
        _ => Ok(Box::new(open_local(reference, platform)?)),
    }
}

/// Opens an `oci:` or `docker-archive:` reference.
pub fn open_local(reference: &ImageRef, platform: &Platform) -> Result<StoreSource> {
    let display = reference.to_string();
    match reference {
        ImageRef::Oci { dir, tag } => {
            if !dir.join("index.json").is_file() {
                return Err(Error::Invalid(format!(
                    "{}: not an OCI image layout (no index.json)",
                    dir.display()
                )));
            }
            let store = DirStore { root: dir.clone() };
            from_layout(Box::new(store), tag.as_deref(), platform, display)
        }
        ImageRef::DockerArchive { path, reference } => open_archive(path, reference.as_deref(), platform, display),
        ImageRef::Dir { .. } => Err(Error::Invalid(format!("{display} is a directory, not an image"))),
        ImageRef::Docker(_) | ImageRef::DockerDaemon { .. } => Err(Error::Invalid(format!("{display} is not a local image"))),
    }
}

/// Opens a docker-archive file (its legacy `manifest.json`, else its OCI
/// layout); `display` names the image in messages.
pub(crate) fn open_archive(path: &Path, reference: Option<&str>, platform: &Platform, display: String) -> Result<StoreSource> {
    let store = TarStore::open(path)?;
    if store.open("manifest.json")?.is_some() {
        from_docker_manifest(Box::new(store), reference, path, display)
    } else if store.open("index.json")?.is_some() {
        from_layout(Box::new(store), reference, platform, display)
    } else {
        Err(Error::Invalid(format!("{}: neither manifest.json nor index.json found: not a docker-archive", path.display())))
    }
}

fn blob_path(d: &Digest) -> String {
    format!("blobs/sha256/{}", d.hex())
}

fn read_blob(store: &dyn Store, d: &Digest) -> Result<Vec<u8>> {
    store
        .read_all(&blob_path(d), JSON_LIMIT)?
        .ok_or_else(|| Error::MissingBlob { digest: d.to_string(), location: store.location() })
}

pub(crate) fn parse_digest(s: &str) -> Result<Digest> {
    Digest::parse(s).map_err(Error::Invalid)
}

fn from_layout(store: Box<dyn Store>, tag: Option<&str>, platform: &Platform, display: String) -> Result<StoreSource> {
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

/// Picks the entry of `index` that serves `platform`: its position and
/// descriptor. The error names the platforms the index offers.
pub(crate) fn choose_platform<'i>(index: &'i ImageIndex, platform: &Platform, reference: &str) -> Result<(usize, &'i Descriptor)> {
    let mut available = Vec::new();
    let chosen = index.manifests().iter().enumerate().find(|(_, d)| match d.platform() {
        Some(p) => {
            let (os, arch, var) = (p.os().to_string(), p.architecture().to_string(), p.variant().as_deref());
            available.push(format!("{os}/{arch}{}", var.map(|v| format!("/{v}")).unwrap_or_default()));
            platform.matches(&os, &arch, var)
        }
        None => false,
    });
    chosen.ok_or_else(|| Error::NoPlatform { platform: platform.to_string(), reference: reference.to_string(), available: available.join(", ") })
}

/// The layers a manifest lists, with diff ids and history from its config
/// (which must list as many diff ids as the manifest has layers).
pub(crate) fn layers_of(manifest: &ImageManifest, config: &ImageConfiguration, reference: &str) -> Result<Vec<Layer>> {
    let diff_ids = diff_ids(config, reference)?;
    if diff_ids.len() != manifest.layers().len() {
        return Err(Error::Invalid(format!(
            "{reference}: the manifest has {} layers but the config lists {} diff ids",
            manifest.layers().len(),
            diff_ids.len()
        )));
    }
    let mut layers = Vec::new();
    for (i, d) in manifest.layers().iter().enumerate() {
        layers.push(Layer {
            index: i,
            digest: parse_digest(d.digest().as_ref())?,
            diff_id: diff_ids[i].clone(),
            media_type: d.media_type().to_string(),
            size: Some(d.size()),
            created_by: None,
        });
    }
    attach_history(config, &mut layers);
    Ok(layers)
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
