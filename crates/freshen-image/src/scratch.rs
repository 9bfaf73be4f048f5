//! Scratch files: uniquely named per process (`freshen-WHAT-PID-N.tar`,
//! so a later run can tell a dead process's leftovers) and removed when
//! dropped.

use std::fs::{self, File, OpenOptions};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use crate::error::{io_err, Result};

/// A file in the scratch directory, removed when dropped.
pub(crate) struct TempFile {
    pub path: PathBuf,
}

impl TempFile {
    /// A fresh name in `dir`; the file is created by whoever writes it.
    pub fn reserve(dir: &Path, what: &str) -> TempFile {
        static SEQ: AtomicU64 = AtomicU64::new(0);
        let n = SEQ.fetch_add(1, Ordering::Relaxed);
        TempFile { path: dir.join(format!("freshen-{what}-{}-{n}.tar", std::process::id())) }
    }

    /// [`TempFile::reserve`], creating the file.
    pub fn create(dir: &Path, what: &str) -> Result<(TempFile, File)> {
        let tmp = TempFile::reserve(dir, what);
        let file = OpenOptions::new().write(true).create_new(true).open(&tmp.path).map_err(io_err(&tmp.path))?;
        Ok((tmp, file))
    }
}

impl Drop for TempFile {
    fn drop(&mut self) {
        let _ = fs::remove_file(&self.path);
    }
}
