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
}

impl ImageRef {
    pub fn parse(s: &str) -> Result<ImageRef> {
        let bad = |reason: &str| Error::Reference { reference: s.to_string(), reason: reason.to_string() };
        let (transport, rest) = s
            .split_once(':')
            .ok_or_else(|| bad("expected TRANSPORT:PATH, one of oci:, docker-archive:, dir:"))?;
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
            "docker" | "docker-daemon" => Err(bad("registries and the Docker Engine are not supported yet")),
            _ => Err(bad("unknown transport (expected oci:, docker-archive: or dir:)")),
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
    }
}
