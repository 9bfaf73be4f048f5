//! The patched image's config and manifest, and the way back: a patched
//! config records what freshen changed, so patching a patched image starts
//! again from the original layers and replaces the patch layer.

use serde_json::{json, Value};

use crate::error::{Error, Result};

/// Label: how many layers the original image had.
pub const BASE_LAYERS: &str = "org.freshen.patch.base-layers";
/// Label: the original image's manifest digest.
pub const ORIGINAL_MANIFEST: &str = "org.freshen.patch.original-manifest";
/// Label: the original config's `created` (empty when it had none).
pub const ORIGINAL_CREATED: &str = "org.freshen.patch.original-created";
/// Label: whether the original config had labels (`object`, `null`, `absent`).
pub const ORIGINAL_LABELS: &str = "org.freshen.patch.original-labels";
/// Label: set to `absent` when the original config had no history.
pub const ORIGINAL_HISTORY: &str = "org.freshen.patch.original-history";
/// Label: the upgraded packages, `name=version` separated by spaces.
pub const PACKAGES: &str = "org.freshen.patch.packages";

fn bad(e: impl std::fmt::Display) -> Error {
    Error::Invalid(format!("image config: {e}"))
}

/// If `config` is a freshen-patched config, returns the original config and
/// its number of layers.
pub fn unpatch(config: &Value) -> Result<Option<(Value, usize)>> {
    let labels = &config["config"]["Labels"];
    let Some(n) = labels[BASE_LAYERS].as_str() else { return Ok(None) };
    let n: usize = n.parse().map_err(|_| bad(format!("malformed {BASE_LAYERS} `{n}`")))?;
    let mut c = config.clone();
    let diff_ids = c["rootfs"]["diff_ids"].as_array_mut().ok_or_else(|| bad("no rootfs.diff_ids"))?;
    if diff_ids.len() != n + 1 {
        return Err(bad(format!("patched image has {} layers, its label says {} + 1", diff_ids.len(), n)));
    }
    diff_ids.pop();
    if labels[ORIGINAL_HISTORY].as_str() == Some("absent") {
        c.as_object_mut().map(|o| o.remove("history"));
    } else if let Some(h) = c["history"].as_array_mut() {
        if let Some(i) = h.iter().rposition(|e| !e["empty_layer"].as_bool().unwrap_or(false)) {
            h.remove(i);
        }
    }
    match labels[ORIGINAL_CREATED].as_str() {
        Some("") | None => {
            c.as_object_mut().map(|o| o.remove("created"));
        }
        Some(t) => c["created"] = json!(t),
    }
    let state = labels[ORIGINAL_LABELS].as_str().unwrap_or("object").to_string();
    let inner = c["config"].as_object_mut().ok_or_else(|| bad("no config object"))?;
    match state.as_str() {
        "absent" => {
            inner.remove("Labels");
        }
        "null" => {
            inner.insert("Labels".into(), Value::Null);
        }
        _ => {
            if let Some(l) = inner.get_mut("Labels").and_then(Value::as_object_mut) {
                l.retain(|k, _| !k.starts_with("org.freshen.patch."));
            }
        }
    }
    Ok(Some((c, n)))
}

/// The patched config's `created`: the mtime clamp (reproducible), but
/// never older than the original's `created`, so that the patched image does
/// not look older than the one it replaces.
pub fn patch_created(original: &Value, clamp: u64) -> String {
    let clamp = chrono::DateTime::<chrono::Utc>::from_timestamp(clamp as i64, 0).unwrap_or_default();
    let original = original["created"].as_str().and_then(|t| chrono::DateTime::parse_from_rfc3339(t).ok()).map(|t| t.with_timezone(&chrono::Utc));
    let t = original.map_or(clamp, |o| o.max(clamp));
    t.to_rfc3339_opts(chrono::SecondsFormat::AutoSi, true)
}

/// What the patch adds to a config.
pub struct PatchRecord<'a> {
    pub diff_id: String,
    pub base_layers: usize,
    pub original_manifest: Option<String>,
    /// RFC 3339, the patch's (clamped) time.
    pub created: String,
    pub created_by: String,
    pub packages: &'a [(String, String)],
}

/// The patched config: the original plus one layer, a history entry and labels.
pub fn patch_config(original: &Value, rec: &PatchRecord) -> Result<Value> {
    let mut c = original.clone();
    let obj = c.as_object_mut().ok_or_else(|| bad("not a JSON object"))?;
    let original_created = obj.get("created").and_then(Value::as_str).unwrap_or("").to_string();
    obj.insert("created".into(), json!(rec.created));
    let diff_ids = c["rootfs"]["diff_ids"].as_array_mut().ok_or_else(|| bad("no rootfs.diff_ids"))?;
    diff_ids.push(json!(rec.diff_id));
    let entry = json!({"created": rec.created, "created_by": rec.created_by, "comment": "freshen patch"});
    let history_absent = match c.get_mut("history").and_then(Value::as_array_mut) {
        Some(h) => {
            h.push(entry);
            false
        }
        None => {
            c["history"] = json!([entry]);
            true
        }
    };
    if !c["config"].is_object() {
        c["config"] = json!({});
    }
    let labels_state = match c["config"].get("Labels") {
        None => "absent",
        Some(Value::Null) => "null",
        Some(_) => "object",
    };
    if !c["config"]["Labels"].is_object() {
        c["config"]["Labels"] = json!({});
    }
    let labels = &mut c["config"]["Labels"];
    labels[BASE_LAYERS] = json!(rec.base_layers.to_string());
    if let Some(m) = &rec.original_manifest {
        labels[ORIGINAL_MANIFEST] = json!(m);
    }
    labels[ORIGINAL_CREATED] = json!(original_created);
    labels[ORIGINAL_LABELS] = json!(labels_state);
    if history_absent {
        labels[ORIGINAL_HISTORY] = json!("absent");
    }
    labels[PACKAGES] = json!(rec.packages.iter().map(|(n, v)| format!("{n}={v}")).collect::<Vec<_>>().join(" "));
    Ok(c)
}

/// The patched manifest: the original's layers (first `base_layers`) plus the new one,
/// in the original's media type family.
pub fn patch_manifest(original: &Value, base_layers: usize, config: &[u8], layer: &freshen_image::LayerBlob) -> Result<(Value, String)> {
    let mut m = original.clone();
    let media = m["mediaType"].as_str().unwrap_or("application/vnd.oci.image.manifest.v1+json").to_string();
    let docker = media.contains("docker");
    let layers = m["layers"].as_array_mut().ok_or_else(|| bad("manifest without layers"))?;
    layers.truncate(base_layers);
    layers.push(json!({"mediaType": layer.media_type, "digest": layer.digest.to_string(), "size": layer.size}));
    m["config"]["digest"] = json!(freshen_image::Digest::of(config).to_string());
    m["config"]["size"] = json!(config.len());
    if m["config"]["mediaType"].is_null() {
        m["config"]["mediaType"] = json!(if docker { "application/vnd.docker.container.image.v1+json" } else { "application/vnd.oci.image.config.v1+json" });
    }
    Ok((m, media))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unpatch_inverts_patch() {
        for original in [
            json!({"architecture": "amd64", "os": "linux", "created": "2024-01-01T00:00:00Z", "config": {"Env": ["A=1"], "Labels": {"x": "y"}}, "rootfs": {"type": "layers", "diff_ids": ["sha256:a"]}, "history": [{"created_by": "base"}, {"empty_layer": true}]}),
            json!({"architecture": "amd64", "os": "linux", "config": {"Labels": null}, "rootfs": {"type": "layers", "diff_ids": ["sha256:a", "sha256:b"]}}),
            json!({"architecture": "amd64", "os": "linux", "config": {}, "rootfs": {"type": "layers", "diff_ids": ["sha256:a"]}, "history": [{"created_by": "x"}]}),
        ] {
            let n = original["rootfs"]["diff_ids"].as_array().unwrap().len();
            let rec = PatchRecord { diff_id: "sha256:p".into(), base_layers: n, original_manifest: Some("sha256:m".into()), created: "2026-11-01T00:00:00Z".into(), created_by: "freshen".into(), packages: &[("a".into(), "1".into())] };
            let patched = patch_config(&original, &rec).unwrap();
            assert_eq!(patched["rootfs"]["diff_ids"].as_array().unwrap().len(), n + 1);
            let (back, layers) = unpatch(&patched).unwrap().unwrap();
            assert_eq!(layers, n);
            assert_eq!(back, original);
        }
        assert!(unpatch(&json!({"config": {}})).unwrap().is_none());
    }

    #[test]
    fn created_is_never_older_than_the_original() {
        let clamp = 1_760_000_000; // 2025-10-09T08:53:20Z
        assert_eq!(patch_created(&json!({"created": "2026-11-28T10:00:00.123456789Z"}), clamp), "2026-11-28T10:00:00.123456789Z");
        assert_eq!(patch_created(&json!({"created": "2020-01-01T00:00:00+01:00"}), clamp), "2025-10-09T08:53:20Z");
        assert_eq!(patch_created(&json!({}), clamp), "2025-10-09T08:53:20Z");
        assert_eq!(patch_created(&json!({"created": "not a time"}), clamp), "2025-10-09T08:53:20Z");
    }
}
