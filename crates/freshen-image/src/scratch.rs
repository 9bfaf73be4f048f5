//! Scratch files: uniquely named per process (`freshen-WHAT-OWNER-N.tar`,
//! OWNER being [`owner`]) and removed when dropped. A process holds a lock
//! on `.owner-OWNER` in the scratch directory for its whole life
//! ([`hold_owner_lock`]), so a later run can tell a dead process's
//! leftovers by the lock, not by a PID another namespace may reuse.

use std::fs::{self, File, OpenOptions};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use crate::error::{io_err, Result};

/// This process's mark in scratch names: `PID.NANOS`, unique also among
/// processes of other PID namespaces sharing the directory.
pub fn owner() -> &'static str {
    static OWNER: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    OWNER.get_or_init(|| {
        let n = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_nanos()).unwrap_or(0);
        format!("{}.{n}", std::process::id())
    })
}

/// The lock file that marks `owner` alive in `dir`.
fn owner_lock(dir: &Path, owner: &str) -> PathBuf {
    dir.join(format!(".owner-{owner}"))
}

/// Takes (once per process) the lock that marks this process's scratch
/// files in `dir` as alive; held until the process exits. The file gets
/// its name only once locked, so a reaper never takes a fresh one.
pub fn hold_owner_lock(dir: &Path) -> Result<()> {
    static HELD: std::sync::Mutex<Vec<(PathBuf, File)>> = std::sync::Mutex::new(Vec::new());
    let mut held = HELD.lock().unwrap_or_else(|e| e.into_inner());
    if held.iter().any(|(d, _)| d == dir) {
        return Ok(());
    }
    let path = owner_lock(dir, owner());
    let tmp = dir.join(format!(".owner-{}.new", owner()));
    let file = OpenOptions::new().write(true).create(true).truncate(false).open(&tmp).map_err(io_err(&tmp))?;
    rustix::fs::flock(&file, rustix::fs::FlockOperation::LockExclusive).map_err(|e| io_err(&tmp)(e.into()))?;
    fs::rename(&tmp, &path).map_err(io_err(&path))?;
    held.push((dir.to_path_buf(), file));
    Ok(())
}

/// Whether the process that named its scratch files with `owner` is gone:
/// nobody holds its lock. Names from before the lock (a bare PID) are
/// judged by `/proc`.
pub fn owner_gone(dir: &Path, owner: &str) -> bool {
    if !owner.contains('.') {
        return !Path::new(&format!("/proc/{owner}")).exists();
    }
    match File::open(owner_lock(dir, owner)) {
        Ok(f) => rustix::fs::flock(&f, rustix::fs::FlockOperation::NonBlockingLockExclusive).is_ok(),
        Err(_) => true,
    }
}

/// A file in the scratch directory, removed when dropped.
pub(crate) struct TempFile {
    pub path: PathBuf,
}

impl TempFile {
    /// A fresh name in `dir`; the file is created by whoever writes it.
    pub fn reserve(dir: &Path, what: &str) -> TempFile {
        static SEQ: AtomicU64 = AtomicU64::new(0);
        let n = SEQ.fetch_add(1, Ordering::Relaxed);
        TempFile { path: dir.join(format!("freshen-{what}-{}-{n}.tar", owner())) }
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
