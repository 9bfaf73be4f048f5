/// Errors from reading Debian metadata and talking to archives. Each names
/// the file and line, the source or URL, or the key ids that were tried.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("{file}:{line}: {message}")]
    Parse { file: String, line: usize, message: String },
    #[error("{0}")]
    Invalid(String),
    /// The image is not Debian or Ubuntu based (no dpkg database).
    #[error("{0}")]
    Unsupported(String),
    #[error("{source_name}: {message}")]
    Source { source_name: String, message: String },
    /// `url` is shown without credentials.
    #[error("cannot reach {}: {message}", freshen_http::strip_userinfo(url))]
    Unreachable { url: String, message: String },
    #[error("{path}: {source}")]
    Io {
        path: String,
        #[source]
        source: std::io::Error,
    },
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

pub(crate) fn io_err(path: impl std::fmt::Display) -> impl FnOnce(std::io::Error) -> Error {
    let path = path.to_string();
    move |source| Error::Io { path, source }
}
