//! The test implementation: what only root may write is kept in memory,
//! by inode, over unprivileged stand-ins in the directory (an empty
//! regular file for a device node), and read back by `statat` and
//! `xattrs`, so the unpacker and the differ run as any user.

use std::collections::{BTreeMap, HashMap};
use std::io;
use std::os::fd::BorrowedFd;
use std::path::Path;
use std::sync::Mutex;

use rustix::fs::{AtFlags, Dev, FileType, Mode, OFlags, CWD};
use rustix::io::Errno;

use super::{stat_flags, Stat, Syscall};

/// The privileged state of one inode.
#[derive(Clone, Debug, Default)]
pub(super) struct Record {
    owner: Option<(u32, u32)>,
    /// A device node's type and number (its stand-in is a regular file).
    device: Option<(FileType, Dev)>,
    xattrs: BTreeMap<String, Vec<u8>>,
}

/// Emulates the privileged operations; see the module documentation.
#[derive(Debug, Default)]
pub struct Emulated {
    pub(super) inodes: Mutex<HashMap<(u64, u64), Record>>,
}

impl Emulated {
    pub fn new() -> Emulated {
        Emulated::default()
    }

    fn update(&self, st: &rustix::fs::Stat, f: impl FnOnce(&mut Record)) {
        f(self.inodes.lock().unwrap().entry((st.st_dev, st.st_ino)).or_default());
    }

    fn overlay(&self, st: &rustix::fs::Stat) -> Stat {
        let mut out = Stat::from_raw(st);
        if let Some(r) = self.inodes.lock().unwrap().get(&(st.st_dev, st.st_ino)) {
            if let Some((uid, gid)) = r.owner {
                (out.uid, out.gid) = (uid, gid);
            }
            if let Some((kind, rdev)) = r.device {
                (out.kind, out.rdev) = (kind, rdev);
            }
        }
        out
    }
}

impl Syscall for Emulated {
    fn mknodat(&self, dir: BorrowedFd<'_>, name: &[u8], kind: FileType, mode: Mode, dev: Dev) -> Result<(), Errno> {
        if kind == FileType::Fifo {
            return rustix::fs::mknodat(dir, name, kind, mode, dev);
        }
        let fd = rustix::fs::openat(dir, name, OFlags::WRONLY | OFlags::CREATE | OFlags::EXCL | OFlags::NOFOLLOW | OFlags::CLOEXEC, mode)?;
        let st = rustix::fs::fstat(&fd)?;
        self.update(&st, |r| r.device = Some((kind, dev)));
        Ok(())
    }

    fn unlinkat(&self, dir: BorrowedFd<'_>, name: &[u8], flags: AtFlags) -> Result<(), Errno> {
        let st = rustix::fs::statat(dir, name, AtFlags::SYMLINK_NOFOLLOW)?;
        rustix::fs::unlinkat(dir, name, flags)?;
        // The inode number may be reused once its last link is gone.
        if st.st_nlink <= 1 || FileType::from_raw_mode(st.st_mode) == FileType::Directory {
            self.inodes.lock().unwrap().remove(&(st.st_dev, st.st_ino));
        }
        Ok(())
    }

    fn fchown(&self, fd: BorrowedFd<'_>, uid: u32, gid: u32) -> Result<(), Errno> {
        self.update(&rustix::fs::fstat(fd)?, |r| r.owner = Some((uid, gid)));
        Ok(())
    }

    fn chownat(&self, dir: BorrowedFd<'_>, name: &[u8], uid: u32, gid: u32) -> Result<(), Errno> {
        self.update(&rustix::fs::statat(dir, name, AtFlags::SYMLINK_NOFOLLOW)?, |r| r.owner = Some((uid, gid)));
        Ok(())
    }

    fn fsetxattr(&self, fd: BorrowedFd<'_>, xname: &str, value: &[u8]) -> Result<(), Errno> {
        self.update(&rustix::fs::fstat(fd)?, |r| {
            r.xattrs.insert(xname.to_string(), value.to_vec());
        });
        Ok(())
    }

    fn setxattrat(&self, dir: BorrowedFd<'_>, name: &[u8], xname: &str, value: &[u8]) -> Result<(), Errno> {
        self.update(&rustix::fs::statat(dir, name, AtFlags::SYMLINK_NOFOLLOW)?, |r| {
            r.xattrs.insert(xname.to_string(), value.to_vec());
        });
        Ok(())
    }

    fn statat(&self, dir: BorrowedFd<'_>, name: &[u8]) -> Result<Stat, Errno> {
        Ok(self.overlay(&rustix::fs::statat(dir, name, stat_flags(name))?))
    }

    fn xattrs(&self, path: &Path, follow: bool) -> io::Result<BTreeMap<String, Vec<u8>>> {
        let flags = if follow { AtFlags::empty() } else { AtFlags::SYMLINK_NOFOLLOW };
        let st = rustix::fs::statat(CWD, path, flags)?;
        Ok(self.inodes.lock().unwrap().get(&(st.st_dev, st.st_ino)).map(|r| r.xattrs.clone()).unwrap_or_default())
    }
}
