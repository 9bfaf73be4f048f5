//! How freshen reaches images that live elsewhere: registry credentials and
//! TLS, the Docker Engine's socket, scratch space and progress.

use std::path::PathBuf;
use std::sync::Arc;

use crate::progress::Progress;

/// Options for `docker://` and `docker-daemon:` references (the others
/// ignore them but for progress).
#[derive(Clone)]
pub struct Transport {
    /// `--creds USER:PASS`: used for every registry instead of
    /// `~/.docker/config.json`.
    pub creds: Option<(String, String)>,
    /// `--tls-verify=false` turns off certificate checks (and allows
    /// plain HTTP) for registries.
    pub tls_verify: bool,
    /// `--ca-file`: PEM certificates trusted for registries besides the
    /// system's.
    pub ca_file: Option<PathBuf>,
    /// The Docker Engine's address (`unix:///var/run/docker.sock`); `None`
    /// means `$DOCKER_HOST`, else the default socket.
    pub docker_host: Option<String>,
    /// Scratch space for large temporary files (an export from the
    /// Docker Engine), removed when done.
    pub tmp_dir: PathBuf,
    /// Where layers pulled from a registry are kept once verified, so a
    /// second read (a patch reads the OS layers twice) is local. `None`:
    /// every read streams from the registry. The caller removes it.
    pub spool: Option<PathBuf>,
    pub progress: Arc<dyn Progress>,
}

impl Default for Transport {
    fn default() -> Transport {
        Transport { creds: None, tls_verify: true, ca_file: None, docker_host: None, tmp_dir: std::env::temp_dir(), spool: None, progress: crate::progress::silent() }
    }
}
