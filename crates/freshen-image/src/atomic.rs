//! Files put in place whole: written under a temporary name beside their
//! destination, synced, renamed, and the directory synced, so a crash
//! leaves either the old file or the new one.

use std::fs::{self, File};
use std::io::Write;
use std::path::{Path, PathBuf};

use crate::error::{io_err, Result};

/// A temporary name in `dir`, unique to this process and thread.
pub(crate) fn tmp_name(dir: &Path, what: &str) -> PathBuf {
    dir.join(format!(".tmp-{what}-{}-{:?}", std::process::id(), std::thread::current().id()).replace(['(', ')'], ""))
}

/// Writes `data` to a temporary name next to `path`, syncs it, renames it
/// into place and syncs the directory.
pub fn write_atomic(path: &Path, data: &[u8]) -> Result<()> {
    let dir = parent(path);
    let tmp = tmp_name(dir, "write");
    let res = (|| {
        let mut f = File::create(&tmp)?;
        f.write_all(data)?;
        f.sync_all()
    })();
    if let Err(e) = res {
        let _ = fs::remove_file(&tmp);
        return Err(io_err(path)(e));
    }
    rename_synced(&tmp, path)
}

/// Renames the synced file `tmp` to `dest` and syncs `dest`'s directory;
/// `tmp` is removed when the rename fails.
pub(crate) fn rename_synced(tmp: &Path, dest: &Path) -> Result<()> {
    if let Err(e) = fs::rename(tmp, dest) {
        let _ = fs::remove_file(tmp);
        return Err(io_err(dest)(e));
    }
    let dir = parent(dest);
    File::open(dir).and_then(|d| d.sync_all()).map_err(io_err(dir))
}

fn parent(path: &Path) -> &Path {
    path.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(Path::new("."))
}
