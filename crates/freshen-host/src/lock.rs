//! One pass at a time: an exclusive, non-blocking `flock` on a file in
//! the state directory, holding the pid of the pass that took it so a
//! second one can say who holds it. The kernel releases the lock when the
//! holder exits, however it exits.

use std::fs::{File, OpenOptions};
use std::io::{Read, Seek, Write};
use std::path::{Path, PathBuf};

use rustix::fs::{flock, FlockOperation};

use crate::error::{io_err, Error, Result};

/// The lock file's name in the state directory.
pub const FILE: &str = "pass.lock";

/// Held while a pass runs; released when dropped.
pub struct PassLock {
    _file: File,
    pub path: PathBuf,
}

impl PassLock {
    /// Takes the lock in `state_dir` (created if missing), or fails at
    /// once naming the pid that holds it.
    pub fn acquire(state_dir: &Path) -> Result<PassLock> {
        std::fs::create_dir_all(state_dir).map_err(io_err(state_dir))?;
        let path = state_dir.join(FILE);
        let mut file = OpenOptions::new().read(true).write(true).create(true).truncate(false).open(&path).map_err(io_err(&path))?;
        match flock(&file, FlockOperation::NonBlockingLockExclusive) {
            Ok(()) => {}
            Err(rustix::io::Errno::WOULDBLOCK) => {
                let mut pid = String::new();
                let _ = file.read_to_string(&mut pid);
                let pid = pid.trim();
                return Err(Error::Locked { path, pid: if pid.is_empty() { "unknown".into() } else { pid.to_string() } });
            }
            Err(e) => return Err(Error::Io { path, source: e.into() }),
        }
        let written = file.set_len(0).and_then(|_| file.rewind()).and_then(|_| writeln!(file, "{}", std::process::id()));
        written.map_err(io_err(&path))?;
        Ok(PassLock { _file: file, path })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_second_holder_is_refused_with_the_first_pid() {
        let dir = tempfile::tempdir().unwrap();
        let first = PassLock::acquire(dir.path()).unwrap();
        // flock locks belong to the open file description: a second open
        // in this process conflicts as another process would.
        let err = PassLock::acquire(dir.path()).err().unwrap().to_string();
        assert!(err.contains(&format!("(pid {})", std::process::id())), "{err}");
        drop(first);
        PassLock::acquire(dir.path()).unwrap();
    }
}
