//! Discovery: what runs on the host (the Engine's running containers,
//! grouped into Dokku apps where Dokku's labels say so) and the images the
//! configuration names, as [`Target`]s. [`targets`] is a pure function of
//! the container list and the configuration.

use std::collections::BTreeMap;

use freshen_image::engine::ContainerSummary;

use crate::config::{Config, Containers, Pinned};
use crate::model::{Kind, Target};

/// The label that opts a container in (`true`) or out (`false`).
pub const ENABLE_LABEL: &str = "org.freshen.enable";
/// The label Dokku puts on an app's containers.
pub const DOKKU_APP_LABEL: &str = "com.dokku.app-name";

/// The targets of a pass: containers (those of one Dokku app as one
/// `dokku-app` target), then the configured images. `resolve` gives the
/// Engine's id of a `docker-daemon:` image, so that an image a container
/// runs and the configuration names is scanned once.
pub fn targets(containers: &[ContainerSummary], config: &Config, resolve: &dyn Fn(&str) -> Option<String>) -> Vec<Target> {
    let mut out = Vec::new();
    let mut apps: BTreeMap<String, Target> = BTreeMap::new();
    for c in containers {
        let enabled = c.labels.get(ENABLE_LABEL).map(|v| v.trim().to_ascii_lowercase());
        let wanted = match config.containers {
            Containers::All => enabled.as_deref() != Some("false"),
            Containers::Labelled => enabled.as_deref() == Some("true"),
        };
        // A container freshen parked while replacing it (or left behind
        // by a crash, for the repair): not a target of its own.
        if !wanted || c.name().ends_with(crate::recreate::OLD_SUFFIX) {
            continue;
        }
        let target = container_target(c, config.pinned);
        match c.labels.get(DOKKU_APP_LABEL).filter(|a| !a.is_empty()) {
            Some(app) => {
                // One target per app: its containers run one image, except
                // mid-deploy, when the first listed (the newest) wins.
                apps.entry(app.clone()).or_insert(Target { kind: Kind::DokkuApp, name: app.clone(), ..target });
            }
            None => out.push(target),
        }
    }
    out.extend(apps.into_values());
    for image in &config.images {
        let id = image.strip_prefix("docker-daemon:").and_then(resolve);
        let source = Some(id.as_ref().map(|id| format!("docker-daemon:{id}")).unwrap_or_else(|| image.clone()));
        out.push(Target { kind: Kind::Image, name: image.clone(), image: image.clone(), image_id: id, source, skip: None });
    }
    out
}

fn container_target(c: &ContainerSummary, pinned: Pinned) -> Target {
    let skip = by_id_or_digest(&c.image, &c.image_id).map(|r| format!("{r} (config `pinned = \"patch\"` patches it under a name of freshen's)")).filter(|_| pinned == Pinned::Skip);
    let source = skip.is_none().then(|| format!("docker-daemon:{}", c.image_id));
    Target { kind: Kind::Container, name: c.name(), image: c.image.clone(), image_id: Some(c.image_id.clone()), source, skip }
}

/// The name a patch of the image a pinned container runs is written under
/// (`pinned = "patch"`), when the container names its image by id or
/// digest.
pub fn pinned_name(image: &str, image_id: &str) -> Option<String> {
    by_id_or_digest(image, image_id)?;
    let hex = image_id.trim_start_matches("sha256:");
    Some(format!("freshen/pinned:{}", &hex[..hex.len().min(12)]))
}

/// Why a container whose image is named by digest or bare id is left
/// alone: patching in place moves a name, and there is none to move.
fn by_id_or_digest(image: &str, image_id: &str) -> Option<String> {
    let hex = image.strip_prefix("sha256:").unwrap_or(image);
    let bare_id = !hex.is_empty() && hex.len() >= 12 && hex.chars().all(|c| c.is_ascii_hexdigit()) && image_id.trim_start_matches("sha256:").starts_with(hex);
    if image.starts_with("sha256:") || bare_id {
        Some(format!("the container names its image by id ({image}), not by a name freshen could patch in place"))
    } else if image.contains('@') {
        Some(format!("the container names its image by digest ({image}), which patching cannot change"))
    } else {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn container(name: &str, image: &str, id: &str, labels: &[(&str, &str)]) -> ContainerSummary {
        serde_json::from_value(serde_json::json!({
            "Id": format!("{name}-id"), "Names": [format!("/{name}")], "Image": image, "ImageID": id,
            "Labels": labels.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect::<BTreeMap<_, _>>(),
        }))
        .unwrap()
    }

    #[test]
    fn labels_choose_containers_and_dokku_apps_group() {
        let id = format!("sha256:{}", "ab".repeat(32));
        let cs = [
            container("web", "app:1", &id, &[]),
            container("off", "app:1", &id, &[(ENABLE_LABEL, "false")]),
            container("on", "app:1", &id, &[(ENABLE_LABEL, "true")]),
            container("shop.web.1", "dokku/shop:latest", &id, &[(DOKKU_APP_LABEL, "shop")]),
            container("shop.worker.1", "dokku/shop:latest", &id, &[(DOKKU_APP_LABEL, "shop")]),
            container("pinned", &id[7..19], &id, &[]),
            container("digest", "app@sha256:00", &id, &[]),
            container("web.freshen-old", "app:1", &id, &[]),
        ];
        let mut config = Config { images: vec!["docker-daemon:app:1".into(), "oci:/x:y".into()], ..Config::default() };
        let resolve = |n: &str| (n == "app:1").then(|| id.clone());
        let names = |ts: &[Target]| ts.iter().map(|t| format!("{}:{}", t.kind.as_str(), t.name)).collect::<Vec<_>>();
        let ts = targets(&cs, &config, &resolve);
        assert_eq!(names(&ts), ["container:web", "container:on", "container:pinned", "container:digest", "dokku-app:shop", "image:docker-daemon:app:1", "image:oci:/x:y"]);
        let daemon = format!("docker-daemon:{id}");
        assert_eq!(ts[0].source.as_deref(), Some(daemon.as_str()));
        assert_eq!(ts[5].source.as_deref(), Some(daemon.as_str()), "a configured image the Engine holds is scanned as what containers run");
        assert_eq!(ts[6].source.as_deref(), Some("oci:/x:y"));
        assert!(ts[2].skip.as_deref().unwrap().contains("by id"), "{:?}", ts[2]);
        assert!(ts[3].skip.as_deref().unwrap().contains("by digest"), "{:?}", ts[3]);
        config.pinned = Pinned::Patch;
        let ts = targets(&cs, &config, &resolve);
        assert!(ts[2].skip.is_none() && ts[3].skip.is_none(), "{ts:?}");
        assert_eq!(pinned_name(&ts[2].image, &id).as_deref(), Some("freshen/pinned:abababababab"));
        assert_eq!(pinned_name("app:1", &id), None);
        config.containers = Containers::Labelled;
        config.images.clear();
        assert_eq!(names(&targets(&cs, &config, &resolve)), ["container:on"]);
    }
}
