use std::path::PathBuf;

/// Errors of the layer cache, the sandbox and patch-layer writing.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// A layer archive tried to write or link outside its directory, or is malformed.
    #[error("layer {digest}: entry `{entry}`: {reason}")]
    Unsafe { digest: String, entry: String, reason: String },
    #[error(transparent)]
    Image(#[from] freshen_image::Error),
    #[error(transparent)]
    Apt(#[from] freshen_apt::Error),
    #[error("{0}")]
    Invalid(String),
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

pub(crate) fn io_err(path: impl Into<PathBuf>) -> impl FnOnce(std::io::Error) -> Error {
    let path = path.into();
    move |source| Error::Io { path, source }
}
