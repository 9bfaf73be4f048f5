//! [`freshen_fs`]'s whole-file writes with this crate's errors.

use std::path::Path;

pub(crate) use freshen_fs::tmp_name;

use crate::error::{io_err, Result};

/// Writes `data` to `path` whole: a synced temporary renamed into place,
/// the directory synced.
pub fn write_atomic(path: &Path, data: &[u8]) -> Result<()> {
    freshen_fs::write_atomic(path, data).map_err(io_err(path))
}

/// Renames the synced file `tmp` to `dest` and syncs the directory.
pub(crate) fn rename_synced(tmp: &Path, dest: &Path) -> Result<()> {
    freshen_fs::rename_synced(tmp, dest).map_err(io_err(dest))
}
