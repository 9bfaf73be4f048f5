//! The privileged file-system operations of the layer unpacker and the
//! layer differ behind one small interface, as youki's `Syscall` trait
//! puts a container runtime's: device nodes (whiteouts are character
//! devices 0:0), ownership, extended attributes (`trusted.overlay.*`
//! needs `CAP_SYS_ADMIN`), the `unlinkat` that may drop the last link to
//! an inode, and the `stat` calls that read that state back.
//!
//! [`Linux`] makes the real calls (production); [`Emulated`] keeps what
//! only root may write in memory, by inode, over unprivileged stand-ins
//! in the directory, so that the unpacker and the differ are tested
//! without root. Everything else (`openat`, `mkdirat`, `write`,
//! `fchmod`, `utimensat`, ...) needs no privilege and stays a direct call.

use std::collections::BTreeMap;
use std::io;
use std::os::fd::BorrowedFd;
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

use rustix::fs::{AtFlags, Dev, FileType, Mode, CWD};
use rustix::io::Errno;

#[cfg(any(test, feature = "testing"))]
mod emulated;
mod linux;

#[cfg(any(test, feature = "testing"))]
pub use emulated::Emulated;
pub use linux::Linux;

#[cfg(test)]
mod tests;

/// What the unpacker and the differ read of an inode.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Stat {
    pub kind: FileType,
    /// Permission bits with setuid, setgid and sticky (`0o7777`).
    pub mode: u32,
    pub uid: u32,
    pub gid: u32,
    pub rdev: Dev,
    pub size: u64,
    pub nlink: u64,
    pub dev: u64,
    pub ino: u64,
    pub mtime: i64,
}

impl Stat {
    pub fn from_raw(st: &rustix::fs::Stat) -> Stat {
        Stat {
            kind: FileType::from_raw_mode(st.st_mode),
            mode: st.st_mode & 0o7777,
            uid: st.st_uid,
            gid: st.st_gid,
            rdev: st.st_rdev,
            size: st.st_size.max(0) as u64,
            nlink: st.st_nlink,
            dev: st.st_dev,
            ino: st.st_ino,
            mtime: st.st_mtime,
        }
    }

    pub fn is_dir(&self) -> bool {
        self.kind == FileType::Directory
    }

    /// An overlayfs whiteout: a character device 0:0.
    pub fn is_whiteout(&self) -> bool {
        self.kind == FileType::CharacterDevice && self.rdev == 0
    }
}

/// The privileged operations. Every `name` is one checked component
/// relative to `dir`; none of the `*at` calls follows a final symlink.
pub trait Syscall {
    /// Creates a device node or fifo `name` in `dir`.
    fn mknodat(&self, dir: BorrowedFd<'_>, name: &[u8], kind: FileType, mode: Mode, dev: Dev) -> Result<(), Errno>;
    /// Removes `name` in `dir` (`AtFlags::REMOVEDIR` for a directory).
    fn unlinkat(&self, dir: BorrowedFd<'_>, name: &[u8], flags: AtFlags) -> Result<(), Errno>;
    fn fchown(&self, fd: BorrowedFd<'_>, uid: u32, gid: u32) -> Result<(), Errno>;
    fn chownat(&self, dir: BorrowedFd<'_>, name: &[u8], uid: u32, gid: u32) -> Result<(), Errno>;
    fn fsetxattr(&self, fd: BorrowedFd<'_>, xname: &str, value: &[u8]) -> Result<(), Errno>;
    fn setxattrat(&self, dir: BorrowedFd<'_>, name: &[u8], xname: &str, value: &[u8]) -> Result<(), Errno>;
    /// `name` in `dir`, not followed; an empty `name` is `dir` itself.
    fn statat(&self, dir: BorrowedFd<'_>, name: &[u8]) -> Result<Stat, Errno>;
    /// Every xattr of `path` (of what it leads to when `follow`).
    fn xattrs(&self, path: &Path, follow: bool) -> io::Result<BTreeMap<String, Vec<u8>>>;

    /// `path`, not followed.
    fn lstat(&self, path: &Path) -> io::Result<Stat> {
        Ok(self.statat(CWD, path.as_os_str().as_bytes())?)
    }
}

/// The `statat` flags: `name` not followed, empty for `dir` itself.
fn stat_flags(name: &[u8]) -> AtFlags {
    if name.is_empty() {
        AtFlags::SYMLINK_NOFOLLOW | AtFlags::EMPTY_PATH
    } else {
        AtFlags::SYMLINK_NOFOLLOW
    }
}
