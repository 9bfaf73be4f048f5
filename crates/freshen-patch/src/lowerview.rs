//! The lower layers' view, every path in it resolved inside it, as the
//! image itself would resolve it: `openat2` with `RESOLVE_IN_ROOT` (as
//! umoci's securejoin does), so an absolute symlink (or `..`) in a lower
//! layer on the path of a changed file leads to the image's root, never
//! to the host's files. What is found is held as an `O_PATH` descriptor
//! and reached again through `/proc/self/fd`, so nothing is resolved twice.
//! Its metadata is read through the [`Syscall`] the differ runs with.

use std::fs::File;
use std::io;
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::path::{Path, PathBuf};

use rustix::fs::{openat2, Mode, OFlags, ResolveFlags, CWD};

use crate::syscall::{Stat, Syscall};

pub(crate) struct LowerView<'a> {
    sys: &'a dyn Syscall,
    root: OwnedFd,
}

/// An entry of the lower view, not followed if it is a symlink.
pub(crate) struct Found {
    file: File,
    pub meta: Stat,
}

impl Found {
    /// A path that reaches this very entry (for reading a file's content,
    /// listing a directory, or reading xattrs with the following calls).
    pub fn path(&self) -> PathBuf {
        PathBuf::from(format!("/proc/self/fd/{}", self.file.as_raw_fd()))
    }

    /// The target of a symlink.
    pub fn read_link(&self) -> io::Result<PathBuf> {
        use std::os::unix::ffi::OsStringExt;
        let target = rustix::fs::readlinkat(&self.file, "", Vec::new())?;
        Ok(PathBuf::from(std::ffi::OsString::from_vec(target.into_bytes())))
    }
}

impl<'a> LowerView<'a> {
    pub fn open(sys: &'a dyn Syscall, dir: &Path) -> io::Result<LowerView<'a>> {
        let root = openat2(CWD, dir, OFlags::PATH | OFlags::DIRECTORY | OFlags::CLOEXEC, Mode::empty(), ResolveFlags::empty())?;
        Ok(LowerView { sys, root })
    }

    /// `rel` (`""` for the root) as the lower layers show it; `None` when
    /// nothing is there.
    pub fn find(&self, rel: &str) -> io::Result<Option<Found>> {
        let rel = if rel.is_empty() { "." } else { rel };
        let how = ResolveFlags::IN_ROOT | ResolveFlags::NO_MAGICLINKS;
        match openat2(&self.root, rel, OFlags::PATH | OFlags::NOFOLLOW | OFlags::CLOEXEC, Mode::empty(), how) {
            Ok(fd) => {
                let file = File::from(fd);
                let meta = self.sys.statat(file.as_fd(), b"")?;
                Ok(Some(Found { file, meta }))
            }
            Err(rustix::io::Errno::NOENT | rustix::io::Errno::NOTDIR | rustix::io::Errno::LOOP) => Ok(None),
            Err(e) => Err(e.into()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::fs;

    #[test]
    fn absolute_symlinks_stay_inside() {
        let t = tempfile::tempdir().unwrap();
        let (root, host) = (t.path().join("root"), t.path().join("host"));
        fs::create_dir_all(root.join("etc")).unwrap();
        fs::create_dir_all(&host).unwrap();
        fs::write(host.join("x"), "host").unwrap();
        fs::write(root.join("etc/x"), "image").unwrap();
        std::os::unix::fs::symlink(&host, root.join("to-host")).unwrap();
        std::os::unix::fs::symlink("/etc", root.join("to-etc")).unwrap();
        std::os::unix::fs::symlink("../../..", root.join("up")).unwrap();
        let v = LowerView::open(&crate::syscall::Linux, &root).unwrap();
        assert!(v.find("to-host/x").unwrap().is_none(), "resolved outside the root");
        assert_eq!(fs::read_to_string(v.find("to-etc/x").unwrap().unwrap().path()).unwrap(), "image");
        assert_eq!(fs::read_to_string(v.find("up/etc/x").unwrap().unwrap().path()).unwrap(), "image");
        let link = v.find("to-etc").unwrap().unwrap();
        assert_eq!(link.meta.kind, rustix::fs::FileType::Symlink);
        assert_eq!(link.read_link().unwrap(), Path::new("/etc"));
        assert!(v.find("").unwrap().unwrap().meta.is_dir());
    }
}
