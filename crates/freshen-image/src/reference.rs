//! Image references in the transport syntax skopeo uses.

use std::fmt;
use std::path::PathBuf;

use crate::error::{Error, Result};

/// Where an image is, and which one.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ImageRef {
    /// `oci:DIR[:TAG]`: an OCI image layout directory, optionally a tag
    /// (`org.opencontainers.image.ref.name`) in its index.
    Oci { dir: PathBuf, tag: Option<String> },
    /// `docker-archive:FILE[:NAME:TAG]`: the output of `docker save`.
    DockerArchive { path: PathBuf, reference: Option<String> },
    /// `dir:PATH`: a root filesystem directory (the host is `dir:/`).
    Dir { path: PathBuf },
    /// `docker://[REGISTRY/]REPO[:TAG][@DIGEST]`: a registry, through the
    /// OCI distribution API. Docker Hub names are normalized as Docker does
    /// (`ubuntu` is `docker.io/library/ubuntu:latest`).
    Docker(RegistryRef),
    /// `docker-daemon:NAME[:TAG]` or `docker-daemon:sha256:ID`: an image in
    /// the Docker Engine.
    DockerDaemon { name: String },
}

/// A name in a registry.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RegistryRef {
    /// `host[:port]` as written; `docker.io` for Docker Hub.
    pub registry: String,
    /// The repository path (`library/ubuntu`).
    pub repository: String,
    pub tag: Option<String>,
    pub digest: Option<String>,
}

impl RegistryRef {
    /// Parses `[REGISTRY/]REPO[:TAG][@DIGEST]`.
    pub fn parse(s: &str) -> std::result::Result<RegistryRef, String> {
        let (name, digest) = match s.split_once('@') {
            Some((n, d)) => {
                crate::Digest::parse(d)?;
                (n, Some(d.to_string()))
            }
            None => (s, None),
        };
        let (name, tag) = match name.rfind(':') {
            Some(i) if !name[i + 1..].contains('/') => (&name[..i], Some(name[i + 1..].to_string())),
            _ => (name, None),
        };
        if let Some(t) = &tag {
            let ok = !t.is_empty() && t.len() <= 128 && t.chars().all(|c| c.is_ascii_alphanumeric() || "_.-".contains(c)) && !t.starts_with(['.', '-']);
            if !ok {
                return Err(format!("invalid tag `{t}`"));
            }
        }
        let (registry, repository) = match name.split_once('/') {
            Some((first, rest)) if first.contains(['.', ':']) || first == "localhost" => (first.to_string(), rest.to_string()),
            _ => ("docker.io".to_string(), name.to_string()),
        };
        if registry.is_empty() || repository.is_empty() {
            return Err("expected [REGISTRY/]REPOSITORY[:TAG][@DIGEST]".into());
        }
        let repository = if registry == "docker.io" && !repository.contains('/') { format!("library/{repository}") } else { repository };
        let component_ok = |c: &str| {
            !c.is_empty()
                && c.chars().all(|ch| ch.is_ascii_lowercase() || ch.is_ascii_digit() || "._-".contains(ch))
                && c.starts_with(|ch: char| ch.is_ascii_alphanumeric())
                && c.ends_with(|ch: char| ch.is_ascii_alphanumeric())
        };
        if !repository.split('/').all(component_ok) {
            return Err(format!("invalid repository name `{repository}` (lowercase letters, digits, `.`, `_`, `-`, separated by `/`)"));
        }
        let tag = if tag.is_none() && digest.is_none() { Some("latest".to_string()) } else { tag };
        Ok(RegistryRef { registry, repository, tag, digest })
    }

    /// What to ask the registry for: the digest if there is one, else the tag.
    pub fn reference(&self) -> &str {
        self.digest.as_deref().or(self.tag.as_deref()).unwrap_or("latest")
    }
}

impl fmt::Display for RegistryRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.registry, self.repository)?;
        if let Some(t) = &self.tag {
            write!(f, ":{t}")?;
        }
        if let Some(d) = &self.digest {
            write!(f, "@{d}")?;
        }
        Ok(())
    }
}

impl ImageRef {
    pub fn parse(s: &str) -> Result<ImageRef> {
        let bad = |reason: &str| Error::Reference { reference: s.to_string(), reason: reason.to_string() };
        let (transport, rest) = s
            .split_once(':')
            .ok_or_else(|| bad("expected TRANSPORT:NAME, one of docker://, docker-daemon:, oci:, docker-archive:, dir:"))?;
        if rest.is_empty() {
            return Err(bad("the path is empty"));
        }
        let split = |rest: &str| match rest.split_once(':') {
            Some((p, r)) if !r.is_empty() => (PathBuf::from(p), Some(r.to_string())),
            Some((p, _)) => (PathBuf::from(p), None),
            None => (PathBuf::from(rest), None),
        };
        match transport {
            "oci" => {
                let (dir, tag) = split(rest);
                Ok(ImageRef::Oci { dir, tag })
            }
            "docker-archive" => {
                let (path, reference) = split(rest);
                Ok(ImageRef::DockerArchive { path, reference })
            }
            "dir" => Ok(ImageRef::Dir { path: PathBuf::from(rest) }),
            "docker" => {
                let name = rest.strip_prefix("//").ok_or_else(|| bad("expected docker://[REGISTRY/]REPOSITORY[:TAG][@DIGEST]"))?;
                RegistryRef::parse(name).map(ImageRef::Docker).map_err(|e| bad(&e))
            }
            "docker-daemon" => {
                // An image id, or a name that gets `:latest` when it has no tag.
                let name = if rest.starts_with("sha256:") {
                    crate::Digest::parse(rest).map_err(|e| bad(&e))?;
                    rest.to_string()
                } else {
                    let r = RegistryRef::parse(rest).map_err(|e| bad(&e))?;
                    if r.digest.is_some() {
                        return Err(bad("docker-daemon: takes NAME:TAG or an image id, not a digest"));
                    }
                    match rest.rfind(':') {
                        Some(i) if !rest[i + 1..].contains('/') => rest.to_string(),
                        _ => format!("{rest}:latest"),
                    }
                };
                Ok(ImageRef::DockerDaemon { name })
            }
            _ => Err(bad("unknown transport (expected docker://, docker-daemon:, oci:, docker-archive: or dir:)")),
        }
    }
}

impl fmt::Display for ImageRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ImageRef::Oci { dir, tag: Some(t) } => write!(f, "oci:{}:{t}", dir.display()),
            ImageRef::Oci { dir, tag: None } => write!(f, "oci:{}", dir.display()),
            ImageRef::DockerArchive { path, reference: Some(r) } => write!(f, "docker-archive:{}:{r}", path.display()),
            ImageRef::DockerArchive { path, reference: None } => write!(f, "docker-archive:{}", path.display()),
            ImageRef::Dir { path } => write!(f, "dir:{}", path.display()),
            ImageRef::Docker(r) => write!(f, "docker://{r}"),
            ImageRef::DockerDaemon { name } => write!(f, "docker-daemon:{name}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses() {
        assert_eq!(
            ImageRef::parse("oci:./images:app").unwrap(),
            ImageRef::Oci { dir: "./images".into(), tag: Some("app".into()) }
        );
        assert_eq!(ImageRef::parse("oci:x").unwrap(), ImageRef::Oci { dir: "x".into(), tag: None });
        assert_eq!(
            ImageRef::parse("docker-archive:a.tar:app:1").unwrap(),
            ImageRef::DockerArchive { path: "a.tar".into(), reference: Some("app:1".into()) }
        );
        assert_eq!(ImageRef::parse("dir:/").unwrap(), ImageRef::Dir { path: "/".into() });
        assert!(ImageRef::parse("foo").is_err());
        assert!(ImageRef::parse("oci:").is_err());
        assert!(ImageRef::parse("nope:x").is_err());
        let d = |s: &str| match ImageRef::parse(s).unwrap() {
            ImageRef::Docker(r) => r,
            other => panic!("{other:?}"),
        };
        let r = d("docker://ubuntu");
        assert_eq!((r.registry.as_str(), r.repository.as_str(), r.tag.as_deref()), ("docker.io", "library/ubuntu", Some("latest")));
        let r = d("docker://127.0.0.1:5000/app/web:1.2");
        assert_eq!((r.registry.as_str(), r.repository.as_str(), r.tag.as_deref()), ("127.0.0.1:5000", "app/web", Some("1.2")));
        assert_eq!(r.to_string(), "127.0.0.1:5000/app/web:1.2");
        let digest = format!("sha256:{}", "a".repeat(64));
        let r = d(&format!("docker://localhost/app@{digest}"));
        assert_eq!((r.tag.as_deref(), r.digest.as_deref(), r.reference()), (None, Some(digest.as_str()), digest.as_str()));
        assert!(ImageRef::parse("docker://Upper/Case").is_err());
        assert!(ImageRef::parse("docker:app").is_err());
        assert!(ImageRef::parse("docker://reg.io/app@sha256:short").is_err());
        assert_eq!(ImageRef::parse("docker-daemon:dokku/app").unwrap(), ImageRef::DockerDaemon { name: "dokku/app:latest".into() });
        assert_eq!(ImageRef::parse("docker-daemon:localhost:5000/app:2").unwrap(), ImageRef::DockerDaemon { name: "localhost:5000/app:2".into() });
    }
}
