//! The one error type of freshen-host: each names the file, key, line,
//! image or target a user needs to act on.

use std::path::PathBuf;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A configuration file that cannot be used.
    #[error("{file}:{line}: {key}: {message}")]
    Config { file: PathBuf, line: usize, key: String, message: String },
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// The state database.
    #[error("state database {path}: {message}")]
    State { path: PathBuf, message: String },
    /// Another pass holds the state directory's lock.
    #[error("another freshen pass (pid {pid}) holds the lock {path}; try again when it has finished")]
    Locked { path: PathBuf, pid: String },
    /// The address `watch` serves its status page on.
    #[error("listen {addr}: {message}")]
    Listen { addr: std::net::SocketAddr, message: String },
    /// Dokku's command or its files.
    #[error("dokku: {0}")]
    Dokku(String),
    #[error(transparent)]
    Image(#[from] freshen_image::Error),
    #[error(transparent)]
    Apt(#[from] freshen_apt::Error),
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

pub(crate) fn io_err(path: impl Into<PathBuf>) -> impl FnOnce(std::io::Error) -> Error {
    let path = path.into();
    move |source| Error::Io { path, source }
}

/// Wraps SQLite errors with the database's path.
pub(crate) fn db_err(path: &std::path::Path) -> impl Fn(rusqlite::Error) -> Error + '_ {
    move |e| Error::State { path: path.to_path_buf(), message: e.to_string() }
}
