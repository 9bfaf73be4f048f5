//! The real calls.

use std::collections::BTreeMap;
use std::ffi::OsString;
use std::io;
use std::os::fd::{AsRawFd, BorrowedFd};
use std::os::unix::ffi::OsStringExt;
use std::path::{Path, PathBuf};

use rustix::fs::{AtFlags, Dev, FileType, Gid, Mode, Uid, XattrFlags};
use rustix::io::Errno;

use super::{stat_flags, Stat, Syscall};

/// The production implementation: each method is the system call it names.
#[derive(Clone, Copy, Debug, Default)]
pub struct Linux;

impl Syscall for Linux {
    fn mknodat(&self, dir: BorrowedFd<'_>, name: &[u8], kind: FileType, mode: Mode, dev: Dev) -> Result<(), Errno> {
        rustix::fs::mknodat(dir, name, kind, mode, dev)
    }

    fn unlinkat(&self, dir: BorrowedFd<'_>, name: &[u8], flags: AtFlags) -> Result<(), Errno> {
        rustix::fs::unlinkat(dir, name, flags)
    }

    fn fchown(&self, fd: BorrowedFd<'_>, uid: u32, gid: u32) -> Result<(), Errno> {
        rustix::fs::fchown(fd, Some(Uid::from_raw_unchecked(uid)), Some(Gid::from_raw_unchecked(gid)))
    }

    fn chownat(&self, dir: BorrowedFd<'_>, name: &[u8], uid: u32, gid: u32) -> Result<(), Errno> {
        let (uid, gid) = (Some(Uid::from_raw_unchecked(uid)), Some(Gid::from_raw_unchecked(gid)));
        rustix::fs::chownat(dir, name, uid, gid, AtFlags::SYMLINK_NOFOLLOW)
    }

    fn fsetxattr(&self, fd: BorrowedFd<'_>, xname: &str, value: &[u8]) -> Result<(), Errno> {
        rustix::fs::fsetxattr(fd, xname, value, XattrFlags::empty())
    }

    fn setxattrat(&self, dir: BorrowedFd<'_>, name: &[u8], xname: &str, value: &[u8]) -> Result<(), Errno> {
        // There is no `lsetxattrat`: go through the directory's descriptor;
        // `name` is one checked component and the last one is not followed.
        let mut path = format!("/proc/self/fd/{}/", dir.as_raw_fd()).into_bytes();
        path.extend_from_slice(name);
        rustix::fs::lsetxattr(PathBuf::from(OsString::from_vec(path)), xname, value, XattrFlags::empty())
    }

    fn statat(&self, dir: BorrowedFd<'_>, name: &[u8]) -> Result<Stat, Errno> {
        rustix::fs::statat(dir, name, stat_flags(name)).map(|st| Stat::from_raw(&st))
    }

    fn xattrs(&self, path: &Path, follow: bool) -> io::Result<BTreeMap<String, Vec<u8>>> {
        let mut names = vec![0u8; 4096];
        let listed = if follow { rustix::fs::listxattr(path, &mut names) } else { rustix::fs::llistxattr(path, &mut names) };
        let n = match listed {
            Ok(n) => n,
            Err(Errno::NOTSUP) => return Ok(BTreeMap::new()),
            Err(e) => return Err(e.into()),
        };
        let mut out = BTreeMap::new();
        for name in names[..n].split(|&b| b == 0).filter(|n| !n.is_empty()) {
            let name = String::from_utf8_lossy(name).into_owned();
            let mut value = vec![0u8; 65536];
            let len = if follow {
                rustix::fs::getxattr(path, name.as_str(), &mut value)?
            } else {
                rustix::fs::lgetxattr(path, name.as_str(), &mut value)?
            };
            value.truncate(len);
            out.insert(name, value);
        }
        Ok(out)
    }
}
