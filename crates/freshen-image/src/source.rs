//! The image source interface: every transport resolves a reference to an
//! [`Image`] and streams its layer blobs, verified against their digests.

use std::io::Read;
use std::path::PathBuf;

use oci_spec::image::ImageConfiguration;

use crate::digest::Digest;
use crate::error::Result;

/// One layer of an image, bottom first.
#[derive(Clone, Debug)]
pub struct Layer {
    /// Position in the image, 0 = bottom.
    pub index: usize,
    /// Digest of the blob as stored (compressed or not).
    pub digest: Digest,
    /// Digest of the uncompressed tar, from the config's `rootfs.diff_ids`.
    pub diff_id: Option<Digest>,
    pub media_type: String,
    /// Size of the blob, when the manifest records it.
    pub size: Option<u64>,
    /// `created_by` of the history entry that made this layer.
    pub created_by: Option<String>,
}

impl Layer {
    /// What identifies the layer's content across images: its diff id, else
    /// (no config entry) its blob digest.
    pub fn content_id(&self) -> Digest {
        self.diff_id.clone().unwrap_or_else(|| self.digest.clone())
    }
}

/// A resolved image: one manifest, its config and its layers.
#[derive(Clone, Debug)]
pub struct Image {
    /// The reference as the user wrote it.
    pub reference: String,
    /// Digest of the manifest, when the transport has one.
    pub manifest_digest: Option<Digest>,
    pub config_digest: Digest,
    pub config: ImageConfiguration,
    /// The config exactly as stored (its digest is `config_digest`).
    pub config_raw: Vec<u8>,
    /// The manifest exactly as stored, when the transport has one.
    pub manifest_raw: Option<Vec<u8>>,
    pub layers: Vec<Layer>,
    /// The image index the manifest was chosen from, when the transport
    /// resolved one (registries): lets a patched image replace its entry.
    pub index: Option<ParentIndex>,
}

impl Image {
    /// The manifest as stored, or for an image stored without one (a
    /// legacy docker-archive) the Docker v2 manifest its config and layers
    /// imply.
    pub fn manifest(&self) -> Result<serde_json::Value> {
        if let Some(raw) = &self.manifest_raw {
            return serde_json::from_slice(raw).map_err(|e| crate::Error::Invalid(format!("{}: manifest: {e}", self.reference)));
        }
        Ok(serde_json::json!({
            "schemaVersion": 2,
            "mediaType": "application/vnd.docker.distribution.manifest.v2+json",
            "config": {"mediaType": "application/vnd.docker.container.image.v1+json", "digest": self.config_digest.to_string(), "size": self.config_raw.len()},
            "layers": self.layers.iter().map(|l| serde_json::json!({"mediaType": l.media_type, "digest": l.digest.to_string(), "size": l.size.unwrap_or(0)})).collect::<Vec<_>>(),
        }))
    }
}

/// An image index and which of its entries an [`Image`] came from.
#[derive(Clone, Debug)]
pub struct ParentIndex {
    /// The index exactly as stored.
    pub raw: Vec<u8>,
    pub media_type: String,
    pub digest: Digest,
    /// Position of the chosen manifest in `manifests`.
    pub entry: usize,
}

/// A transport that can produce an image and stream its blobs.
pub trait ImageSource {
    fn image(&self) -> &Image;
    /// Opens a layer blob. The stream fails with `InvalidData` at its end
    /// when size or digest do not match the descriptor.
    fn open_layer(&self, layer: &Layer) -> Result<Box<dyn Read + Send + '_>>;
    /// The registry repository the image was read from, if any: a push to
    /// the same registry mounts its blobs instead of uploading them.
    fn registry_origin(&self) -> Option<&crate::RegistryRef> {
        None
    }
    /// The registry repository one layer can be mounted from (images made
    /// of several sources answer per layer).
    fn layer_origin(&self, layer: &Layer) -> Option<&crate::RegistryRef> {
        let _ = layer;
        self.registry_origin()
    }
}

/// Fills `created_by` for each layer from the config's history, skipping
/// entries marked `empty_layer`.
pub(crate) fn attach_history(config: &ImageConfiguration, layers: &mut [Layer]) {
    let Some(history) = config.history() else { return };
    let mut it = layers.iter_mut();
    for h in history {
        if h.empty_layer().unwrap_or(false) {
            continue;
        }
        match it.next() {
            Some(layer) => layer.created_by = h.created_by().clone().or_else(|| h.comment().clone()),
            None => break,
        }
    }
}

/// The config's diff ids, parsed.
pub(crate) fn diff_ids(config: &ImageConfiguration, reference: &str) -> crate::Result<Vec<Option<Digest>>> {
    config
        .rootfs()
        .diff_ids()
        .iter()
        .enumerate()
        .map(|(i, d)| {
            Digest::parse(d)
                .map(Some)
                .map_err(|_| crate::Error::Invalid(format!("{reference}: the config's diff id {i} `{}` is not a sha256 digest", crate::text::one_line(d))))
        })
        .collect()
}

/// Reads a small JSON document fully, verifying its digest, and parses it.
pub(crate) fn parse_json<T: serde::de::DeserializeOwned>(
    what: &'static str,
    digest: &Digest,
    bytes: &[u8],
) -> Result<T> {
    let got = Digest::of(bytes);
    if &got != digest {
        return Err(crate::Error::Blob {
            digest: digest.to_string(),
            reason: format!("digest mismatch: content hashes to {got}"),
        });
    }
    crate::jsonsize::check(bytes).map_err(|reason| crate::Error::Json { what, digest: digest.to_string(), reason })?;
    serde_json::from_slice(bytes).map_err(|e| crate::Error::Json { what, digest: digest.to_string(), reason: e.to_string() })
}

/// A new image: some layers of `source`, then new blobs already on disk.
pub struct NewImage<'a> {
    pub source: &'a dyn ImageSource,
    /// Layers copied from the source, bottom first.
    pub source_layers: &'a [Layer],
    /// New blobs: (digest, file holding it).
    pub new_blobs: Vec<(Digest, PathBuf)>,
    pub config: Vec<u8>,
    pub manifest: Vec<u8>,
    pub manifest_media_type: String,
}
