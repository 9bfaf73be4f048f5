//! Image names in the Engine: tagging an image under another name
//! (`POST /images/{name}/tag`) and listing the images it holds
//! (`GET /images/json`).

use serde::Deserialize;

use super::{null_as_empty, repository, Engine};
use crate::error::{Error, Result};
use crate::transport::Transport;

/// An image as the Engine lists it.
#[derive(Clone, Debug, Deserialize)]
pub struct ImageSummary {
    #[serde(rename = "Id")]
    pub id: String,
    /// `NAME:TAG` names; none for an untagged image (older Engines list
    /// `<none>:<none>` then, which [`list_images`] drops).
    #[serde(rename = "RepoTags", default, deserialize_with = "null_as_empty_vec")]
    pub repo_tags: Vec<String>,
    #[serde(rename = "Labels", default, deserialize_with = "null_as_empty")]
    pub labels: std::collections::BTreeMap<String, String>,
}

fn null_as_empty_vec<'de, D: serde::Deserializer<'de>>(d: D) -> std::result::Result<Vec<String>, D::Error> {
    Ok(Option::deserialize(d)?.unwrap_or_default())
}

/// Names image `source` (`NAME:TAG` or an id) also `target` (`REPO:TAG`),
/// moving `target` off whatever image it named before.
pub fn tag_image(source: &str, target: &str, t: &Transport) -> Result<()> {
    let repo = repository(target);
    let tag = target.get(repo.len() + 1..).filter(|t| !t.is_empty()).ok_or_else(|| Error::Invalid(format!("docker-daemon:{target}: name the new tag as REPO:TAG")))?;
    Engine::new(t)?.tag(source, &format!("{repo}:{tag}"))
}

/// The images the Engine holds (not the intermediate ones of builds).
pub fn list_images(t: &Transport) -> Result<Vec<ImageSummary>> {
    let engine = Engine::new(t)?;
    let resp = engine.call("GET", "/images/json", None)?;
    let resp = engine.check(resp, "listing images")?;
    let bytes = engine.read_small(resp.body, "listing images")?;
    let mut images: Vec<ImageSummary> =
        serde_json::from_slice(&bytes).map_err(|e| Error::Invalid(format!("the Docker Engine at {} sent an unreadable image list: {e}", engine.url)))?;
    for image in &mut images {
        image.repo_tags.retain(|n| n != "<none>:<none>");
    }
    Ok(images)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn untagged_and_unlabelled_images_read() {
        let list = r#"[{"Id":"sha256:1","RepoTags":null,"Labels":null},{"Id":"sha256:2","RepoTags":["heroku/builder:24"],"Labels":{"a":"b"}}]"#;
        let images: Vec<ImageSummary> = serde_json::from_str(list).unwrap();
        assert!(images[0].repo_tags.is_empty() && images[0].labels.is_empty());
        assert_eq!(images[1].repo_tags, ["heroku/builder:24"]);
    }

    #[test]
    fn a_target_needs_a_tag() {
        let t = Transport { docker_host: Some("unix:///nonexistent/freshen.sock".into()), ..Transport::default() };
        let err = tag_image("a:1", "localhost:5000/app", &t).unwrap_err().to_string();
        assert_eq!(err, "docker-daemon:localhost:5000/app: name the new tag as REPO:TAG");
    }
}
