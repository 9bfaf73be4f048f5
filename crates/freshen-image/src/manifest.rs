//! The OCI manifest and index rules every transport shares: the size
//! bound on JSON documents, digests, the platform choice in an index, and a
//! manifest's layers with their diff ids and history from the config.

use oci_spec::image::{Descriptor, ImageConfiguration, ImageIndex, ImageManifest};

use crate::digest::Digest;
use crate::error::{Error, Result};
use crate::platform::Platform;
use crate::source::{attach_history, diff_ids, Layer};

/// The largest manifest, index or config freshen reads.
pub(crate) const JSON_LIMIT: u64 = 16 << 20;

pub(crate) fn parse_digest(s: &str) -> Result<Digest> {
    Digest::parse(s).map_err(Error::Invalid)
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
