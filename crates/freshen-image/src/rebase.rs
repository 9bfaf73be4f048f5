//! Rebasing, as `crane rebase` and `pack rebase` do: an image whose lower
//! layers are an old base gets a new base's layers in their place; the
//! layers above, the config and the history follow.

use std::io::Read;

use serde_json::{json, Value};

use crate::digest::Digest;
use crate::error::{Error, Result};
use crate::source::{Image, ImageSource, Layer};

/// Annotation (and label) naming the base an image was built on.
pub const BASE_NAME: &str = "org.opencontainers.image.base.name";
/// Annotation (and label) with the base's manifest digest.
pub const BASE_DIGEST: &str = "org.opencontainers.image.base.digest";

/// The base an image is expected to sit on.
#[derive(Clone, Debug)]
pub struct OldBase {
    /// For messages: where this base came from.
    pub name: String,
    /// Its layers' diff ids, bottom first.
    pub diff_ids: Vec<Digest>,
    /// How many history entries of the image belong to it (empty-layer
    /// entries included).
    pub history_len: usize,
}

impl OldBase {
    /// The base an [`Image`] is, read off its config.
    pub fn of(image: &Image, name: &str) -> OldBase {
        let diff_ids = image.layers.iter().map(Layer::content_id).collect();
        let history_len = image.config.history().as_ref().map_or(0, Vec::len);
        OldBase { name: name.to_string(), diff_ids, history_len }
    }
}

/// Checks that `old` is a prefix of `image`'s layers.
pub fn check_prefix(image: &Image, old: &OldBase) -> Result<()> {
    if old.diff_ids.len() > image.layers.len() {
        return Err(Error::Invalid(format!(
            "{} has {} layers, more than the {} of {}: it cannot be its base",
            old.name,
            old.diff_ids.len(),
            image.layers.len(),
            image.reference
        )));
    }
    for (i, (want, layer)) in old.diff_ids.iter().zip(&image.layers).enumerate() {
        let got = layer.content_id();
        if &got != want {
            return Err(Error::Invalid(format!(
                "{} is not the base of {}: layer {i} differs (image {got}, base {want})",
                old.name, image.reference
            )));
        }
    }
    Ok(())
}

/// The layers of several sources as one image.
pub struct Stacked<'a> {
    image: Image,
    parts: Vec<(&'a dyn ImageSource, Layer)>,
}

impl ImageSource for Stacked<'_> {
    fn image(&self) -> &Image {
        &self.image
    }

    fn open_layer(&self, layer: &Layer) -> Result<Box<dyn Read + Send + '_>> {
        let (source, original) = self.parts.get(layer.index).ok_or_else(|| Error::Invalid(format!("no layer {} in the rebased image", layer.index)))?;
        source.open_layer(original)
    }

    fn layer_origin(&self, layer: &Layer) -> Option<&crate::RegistryRef> {
        self.parts.get(layer.index).and_then(|(source, original)| source.layer_origin(original))
    }
}

/// A rebased image, ready for [`crate::write_image`].
pub struct Rebased<'a> {
    pub source: Stacked<'a>,
    pub config: Vec<u8>,
    pub manifest: Vec<u8>,
    pub media_type: String,
    /// How many of the image's own layers sit on the new base.
    pub upper_layers: usize,
}

const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
const DOCKER_MANIFEST: &str = "application/vnd.docker.distribution.manifest.v2+json";

/// A layer media type in the other family, when there is one.
fn layer_type_for(media_type: &str, docker: bool) -> Option<String> {
    let pairs = [
        ("application/vnd.docker.image.rootfs.diff.tar.gzip", "application/vnd.oci.image.layer.v1.tar+gzip"),
        ("application/vnd.docker.image.rootfs.diff.tar", "application/vnd.oci.image.layer.v1.tar"),
    ];
    if media_type.contains("docker") == docker {
        return Some(media_type.to_string());
    }
    pairs.iter().find_map(|(d, o)| if docker { (*o == media_type).then(|| d.to_string()) } else { (*d == media_type).then(|| o.to_string()) })
}

/// The descriptors of an image's layers (annotations kept).
fn descriptors(manifest: &Value) -> Vec<Value> {
    manifest["layers"].as_array().cloned().unwrap_or_default()
}

/// Puts `image`'s layers above `old` onto `new_base`.
pub fn rebase<'a>(image: &'a dyn ImageSource, old: &OldBase, new_base: &'a dyn ImageSource, new_base_name: &str) -> Result<Rebased<'a>> {
    let img = image.image();
    let base = new_base.image();
    check_prefix(img, old)?;
    let n_old = old.diff_ids.len();
    let bad = |what: &str| Error::Invalid(format!("{}: {what}", img.reference));

    // Config: the image's, with the new base's diff ids and history below its own.
    let mut config: Value = serde_json::from_slice(&img.config_raw).map_err(|e| bad(&format!("config: {e}")))?;
    let base_config: Value = serde_json::from_slice(&base.config_raw).map_err(|e| Error::Invalid(format!("{}: config: {e}", base.reference)))?;
    let mut diff_ids: Vec<Value> = base.layers.iter().map(|l| json!(l.content_id().to_string())).collect();
    diff_ids.extend(img.layers[n_old..].iter().map(|l| json!(l.content_id().to_string())));
    config["rootfs"] = json!({"type": "layers", "diff_ids": diff_ids});
    if let Some(history) = config["history"].as_array() {
        let own: Vec<Value> = history.iter().skip(old.history_len).cloned().collect();
        let mut merged = base_config["history"].as_array().cloned().unwrap_or_default();
        merged.extend(own);
        config["history"] = json!(merged);
    }
    if !config["config"].is_object() {
        config["config"] = json!({});
    }
    if !config["config"]["Labels"].is_object() {
        config["config"]["Labels"] = json!({});
    }
    let base_digest = base.manifest_digest.as_ref().map(Digest::to_string);
    config["config"]["Labels"][BASE_NAME] = json!(new_base_name);
    if let Some(d) = &base_digest {
        config["config"]["Labels"][BASE_DIGEST] = json!(d);
    }
    let config = serde_json::to_vec(&config).map_err(|e| bad(&e.to_string()))?;

    // Manifest: the image's, in its media type family when every layer has
    // a type in it, else OCI.
    let mut manifest = img.manifest()?;
    let mut layers = descriptors(&base.manifest()?);
    layers.extend(descriptors(&manifest).into_iter().skip(n_old));
    let mut docker = manifest["mediaType"].as_str().unwrap_or(OCI_MANIFEST).contains("docker");
    if docker && layers.iter().any(|l| layer_type_for(l["mediaType"].as_str().unwrap_or(""), true).is_none()) {
        docker = false;
    }
    for l in &mut layers {
        if let Some(t) = layer_type_for(l["mediaType"].as_str().unwrap_or(""), docker) {
            l["mediaType"] = json!(t);
        }
    }
    let media_type = if docker { DOCKER_MANIFEST } else { OCI_MANIFEST }.to_string();
    manifest["mediaType"] = json!(media_type);
    manifest["config"] = json!({
        "mediaType": if docker { "application/vnd.docker.container.image.v1+json" } else { "application/vnd.oci.image.config.v1+json" },
        "digest": Digest::of(&config).to_string(),
        "size": config.len(),
    });
    manifest["layers"] = json!(layers);
    if docker {
        manifest.as_object_mut().map(|o| o.remove("annotations"));
    } else {
        if !manifest["annotations"].is_object() {
            manifest["annotations"] = json!({});
        }
        manifest["annotations"][BASE_NAME] = json!(new_base_name);
        if let Some(d) = &base_digest {
            manifest["annotations"][BASE_DIGEST] = json!(d);
        }
    }
    let manifest = serde_json::to_vec(&manifest).map_err(|e| bad(&e.to_string()))?;

    // The combined source: the new base's layers, then the image's own.
    let mut parts: Vec<(&dyn ImageSource, Layer)> = base.layers.iter().map(|l| (new_base, l.clone())).collect();
    parts.extend(img.layers[n_old..].iter().map(|l| (image, l.clone())));
    let stacked_layers: Vec<Layer> = parts.iter().enumerate().map(|(i, (_, l))| Layer { index: i, ..l.clone() }).collect();
    let parsed = serde_json::from_slice(&config).map_err(|e| bad(&format!("config: {e}")))?;
    let stacked = Image {
        reference: img.reference.clone(),
        manifest_digest: Some(Digest::of(&manifest)),
        config_digest: Digest::of(&config),
        config: parsed,
        config_raw: config.clone(),
        manifest_raw: Some(manifest.clone()),
        layers: stacked_layers,
        index: None,
    };
    Ok(Rebased { source: Stacked { image: stacked, parts }, config, manifest, media_type, upper_layers: img.layers.len() - n_old })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn layer_types_convert_between_families() {
        assert_eq!(layer_type_for("application/vnd.oci.image.layer.v1.tar+gzip", true).as_deref(), Some("application/vnd.docker.image.rootfs.diff.tar.gzip"));
        assert_eq!(layer_type_for("application/vnd.docker.image.rootfs.diff.tar.gzip", false).as_deref(), Some("application/vnd.oci.image.layer.v1.tar+gzip"));
        assert_eq!(layer_type_for("application/vnd.oci.image.layer.v1.tar+zstd", true), None);
        assert_eq!(layer_type_for("application/vnd.oci.image.layer.v1.tar+zstd", false).as_deref(), Some("application/vnd.oci.image.layer.v1.tar+zstd"));
    }
}
