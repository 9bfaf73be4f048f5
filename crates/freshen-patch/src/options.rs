//! What a patch run is asked to do.

use std::path::PathBuf;

use chrono::{DateTime, Utc};

use crate::layer::Compression;

/// Options of a patch run.
pub struct PatchOptions {
    /// freshen's cache directory (layers, apt state, debs, indexes).
    pub cache: PathBuf,
    /// The OCI runtime (`None`: runc or crun from PATH).
    pub runtime: Option<PathBuf>,
    /// Everything `apt-get upgrade` would install, not only security updates.
    pub all: bool,
    pub compression: Compression,
    /// Clamp for file mtimes; default: the newest changelog date of the updates.
    pub source_date_epoch: Option<u64>,
    /// A smoke test run (with `sh -c`) in the patched image before it is accepted.
    pub test: Option<String>,
    /// The sandbox's memory and process limits.
    pub limits: crate::sandbox::Limits,
    pub now: DateTime<Utc>,
    /// Where progress goes (unpacking, apt, the layer).
    pub progress: std::sync::Arc<dyn freshen_image::Progress>,
}
