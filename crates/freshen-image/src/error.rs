use std::path::PathBuf;

/// Errors from reading or writing images. Messages are lowercase, one line,
/// and name the file, blob or reference the user needs to act on.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("invalid image reference `{reference}`: {reason}")]
    Reference { reference: String, reason: String },
    #[error("blob {digest} is missing from {location}")]
    MissingBlob { digest: String, location: String },
    #[error("blob {digest}: {reason}")]
    Blob { digest: String, reason: String },
    #[error("{what} {digest}: invalid JSON: {reason}")]
    Json {
        what: &'static str,
        digest: String,
        reason: String,
    },
    #[error("{0}")]
    Invalid(String),
    #[error("no manifest for platform {platform} in {reference} (available: {available})")]
    NoPlatform {
        platform: String,
        reference: String,
        available: String,
    },
    #[error("layer {index} ({digest}): {reason}")]
    Layer {
        index: usize,
        digest: String,
        reason: String,
    },
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

pub(crate) fn io_err(path: impl Into<PathBuf>) -> impl FnOnce(std::io::Error) -> Error {
    let path = path.into();
    move |source| Error::Io { path, source }
}
