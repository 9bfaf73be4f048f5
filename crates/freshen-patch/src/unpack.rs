//! Unpacking one layer tar into a directory in overlayfs's own format, so
//! that the unpacked layers of an image can be stacked directly as overlay
//! lower directories: OCI whiteouts `dir/.wh.NAME` become character devices
//! 0:0 at `dir/NAME`, opaque markers `dir/.wh..wh..opq` become the xattr
//! `trusted.overlay.opaque=y` on `dir`.
//!
//! # Safety model
//!
//! Layer archives are untrusted. As in umoci, every name taken from the
//! archive is called `unsafe_path` and is only ever resolved by one scoped
//! routine, `Unpacker::resolve_dir`: the name is cleaned lexically
//! (`clean`: `..` components and absolute names are refused, `.` and empty
//! components dropped), then walked component by component from a file
//! descriptor of the destination with `openat(O_DIRECTORY | O_NOFOLLOW)`, so
//! a symlink anywhere on the way is refused instead of followed. Everything
//! else is an `*at` call (`mkdirat`, `mknodat`, `symlinkat`, `linkat`,
//! `unlinkat`, `fchownat`, `utimensat`, ...) on a single, checked final
//! component relative to that directory descriptor, with
//! `AT_SYMLINK_NOFOLLOW` wherever the call would otherwise follow a link.
//! No path is ever joined and handed to a path-based call that follows
//! symlinks. Symlink targets are stored verbatim and never followed.
//!
//! The privileged calls (device nodes, ownership, xattrs, unlinking) go
//! through a [`Syscall`], so the unpacker is tested without root.

use std::collections::BTreeMap;
use std::ffi::OsStr;
use std::fs::File;
use std::io::{self, Read, Write};
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::rc::Rc;

use rustix::fs::{
    chmodat, fchmod, futimens, linkat, makedev, mkdirat, openat, symlinkat, utimensat, AtFlags, Dir, FileType, Mode,
    OFlags, Timespec, Timestamps, CWD,
};
use rustix::io::Errno;

use crate::error::{Error, Result};
use crate::syscall::{Linux, Syscall};

/// What [`unpack_layer`] wrote.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct UnpackStats {
    /// Archive entries processed (files, directories, links, whiteouts, ...).
    pub entries: u64,
    /// Bytes of regular file content written.
    pub bytes: u64,
}

const WHITEOUT_PREFIX: &[u8] = b".wh.";
/// Names starting with this are aufs metadata, except the opaque marker.
const WHITEOUT_META_PREFIX: &[u8] = b".wh..wh.";
const OPAQUE_WHITEOUT: &[u8] = b".wh..wh..opq";
const OPAQUE_XATTR: &str = "trusted.overlay.opaque";
/// Xattrs overlayfs interprets itself: never taken from an archive.
const OVERLAY_XATTR_PREFIX: &str = "trusted.overlay.";
const PAX_XATTR_PREFIX: &str = "SCHILY.xattr.";
/// Longest name accepted (Linux's PATH_MAX); also bounds directory depth.
const MAX_PATH: usize = 4096;

const DIR_FLAGS: OFlags = OFlags::RDONLY.union(OFlags::DIRECTORY).union(OFlags::NOFOLLOW).union(OFlags::CLOEXEC);

/// Unpacks the (already decompressed) tar stream `tar` into the existing
/// empty directory `dest`. `label` names the layer in errors (its digest).
///
/// Entries that would write or link outside `dest` (`..` components,
/// absolute names, parents that are symlinks, hardlinks to anything but an
/// existing non-directory of this layer reached without symlinks) are
/// refused with [`Error::Unsafe`] before anything is written for them.
pub fn unpack_layer(tar: impl Read, dest: &Path, label: &str) -> Result<UnpackStats> {
    unpack_layer_with(&Linux, tar, dest, label)
}

/// As [`unpack_layer`], with the privileged calls made through `sys`.
pub fn unpack_layer_with(sys: &dyn Syscall, tar: impl Read, dest: &Path, label: &str) -> Result<UnpackStats> {
    // `dest` itself is trusted (the caller made it); only archive names are not.
    let root = openat(CWD, dest, OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC, Mode::empty())
        .map_err(|e| Error::Io { path: dest.to_path_buf(), source: e.into() })?;
    let mut u = Unpacker {
        sys,
        root: Rc::new(root),
        dest,
        label,
        dir_times: BTreeMap::new(),
        parent_cache: None,
        stats: UnpackStats::default(),
        buf: vec![0u8; 256 << 10],
    };
    let mut archive = tar::Archive::new(freshen_image::targuard::TarGuard::new(tar));
    let entries = archive.entries().map_err(|e| u.read_err(e))?;
    for entry in entries {
        let mut entry = entry.map_err(|e| u.read_err(e))?;
        u.stats.entries += 1;
        u.entry(&mut entry)?;
    }
    u.restore_dir_times()?;
    Ok(u.stats)
}

/// Metadata of one entry, from its header and PAX records.
struct Meta {
    uid: u32,
    gid: u32,
    mode: u32,
    mtime: Timespec,
    xattrs: Vec<(String, Vec<u8>)>,
}

/// Why a directory could not be resolved.
enum ResolveError {
    /// A component is missing (only when not creating).
    NotFound(String),
    /// A component is a symlink or not a directory.
    Refused(String),
    Io(PathBuf, io::Error),
}

/// What was at an entry's name before it was written.
#[derive(PartialEq, Eq)]
enum Previous {
    Nothing,
    /// A directory, kept because the entry is a directory too.
    KeptDir,
    /// Something removed; `whiteout` when it was a character device 0:0.
    Removed { whiteout: bool },
}

struct Unpacker<'a> {
    sys: &'a dyn Syscall,
    root: Rc<OwnedFd>,
    dest: &'a Path,
    label: &'a str,
    /// Directory mtimes to set at the end, by cleaned path.
    dir_times: BTreeMap<Vec<u8>, Timespec>,
    /// The last resolved parent directory: consecutive entries usually share it.
    parent_cache: Option<(Vec<u8>, Rc<OwnedFd>)>,
    stats: UnpackStats,
    buf: Vec<u8>,
}

/// Splits an untrusted archive name into its normal components. `..`
/// anywhere, absolute names and NUL bytes are refused; `.` and empty
/// components (`./a//b/`) are dropped. An empty result names the root.
///
/// Absolute names are refused rather than stripped: no layer tool writes
/// them, and refusing keeps one simple rule (nothing names anything above
/// the root).
fn clean(unsafe_path: &[u8]) -> Result<Vec<&[u8]>, String> {
    if unsafe_path.is_empty() {
        return Err("empty name".into());
    }
    if unsafe_path.contains(&0) {
        return Err("NUL byte in name".into());
    }
    if unsafe_path.starts_with(b"/") {
        return Err("absolute name".into());
    }
    let mut comps = Vec::new();
    for c in unsafe_path.split(|b| *b == b'/') {
        match c {
            b"" | b"." => {}
            b".." => return Err("`..` component".into()),
            c => comps.push(c),
        }
    }
    if comps.iter().map(|c| c.len() + 1).sum::<usize>() > MAX_PATH {
        return Err(format!("name longer than {MAX_PATH} bytes"));
    }
    Ok(comps)
}

fn show(comps: &[&[u8]]) -> String {
    String::from_utf8_lossy(&comps.join(&b'/')).into_owned()
}

fn to_io(e: Errno) -> io::Error {
    e.into()
}

impl Unpacker<'_> {
    fn refuse(&self, entry: &str, reason: impl Into<String>) -> Error {
        Error::Unsafe { digest: self.label.to_string(), entry: entry.to_string(), reason: reason.into() }
    }

    fn read_err(&self, e: io::Error) -> Error {
        Error::Invalid(format!("layer {}: reading the archive: {}", self.label, freshen_image::tar_error(&e)))
    }

    /// An I/O error on the cleaned path `comps` (the path is for messages only).
    fn io_err(&self, comps: &[&[u8]], e: impl Into<io::Error>) -> Error {
        Error::Io { path: self.path_of(comps), source: e.into() }
    }

    fn resolve_err(&self, entry: &str, e: ResolveError) -> Error {
        match e {
            ResolveError::NotFound(p) => self.refuse(entry, format!("`{p}` does not exist")),
            ResolveError::Refused(r) => self.refuse(entry, r),
            ResolveError::Io(path, source) => Error::Io { path, source },
        }
    }

    /// The one routine that resolves an untrusted (cleaned) directory path:
    /// component by component beneath the root, never following a symlink.
    /// Missing directories are created (0755) when `create`; a whiteout in
    /// the way is then replaced by an opaque directory (the whiteout's
    /// meaning: nothing of the lower layers shows below it).
    fn resolve_dir(&self, comps: &[&[u8]], create: bool) -> Result<OwnedFd, ResolveError> {
        let io_at = |i: usize, e: Errno| ResolveError::Io(self.path_of(&comps[..=i]), to_io(e));
        let mut cur = openat(&*self.root, ".", DIR_FLAGS, Mode::empty()).map_err(|e| ResolveError::Io(self.dest.to_path_buf(), to_io(e)))?;
        for (i, comp) in comps.iter().enumerate() {
            let next = match openat(&cur, *comp, DIR_FLAGS, Mode::empty()) {
                Ok(fd) => fd,
                Err(Errno::NOENT) if create => self.make_dir(&cur, comp, Mode::from_bits_truncate(0o755), false).map_err(|e| io_at(i, e))?,
                Err(Errno::NOENT) => return Err(ResolveError::NotFound(show(&comps[..=i]))),
                Err(Errno::LOOP) | Err(Errno::NOTDIR) => {
                    let st = self.sys.statat(cur.as_fd(), comp).map_err(|e| io_at(i, e))?;
                    if st.kind == FileType::Symlink {
                        return Err(ResolveError::Refused(format!("`{}` is a symlink (not followed)", show(&comps[..=i]))));
                    }
                    if create && st.is_whiteout() {
                        self.sys.unlinkat(cur.as_fd(), comp, AtFlags::empty()).map_err(|e| io_at(i, e))?;
                        self.make_dir(&cur, comp, Mode::from_bits_truncate(0o755), true).map_err(|e| io_at(i, e))?
                    } else {
                        return Err(ResolveError::Refused(format!("`{}` is not a directory", show(&comps[..=i]))));
                    }
                }
                Err(e) => return Err(io_at(i, e)),
            };
            cur = next;
        }
        Ok(cur)
    }

    /// Creates directory `name` in `dir` with exactly `mode` and opens it.
    fn make_dir(&self, dir: &OwnedFd, name: &[u8], mode: Mode, opaque: bool) -> Result<OwnedFd, Errno> {
        match mkdirat(dir, name, Mode::from_bits_truncate(0o700)) {
            Ok(()) | Err(Errno::EXIST) => {}
            Err(e) => return Err(e),
        }
        let fd = openat(dir, name, DIR_FLAGS, Mode::empty())?;
        fchmod(&fd, mode)?;
        if opaque {
            self.sys.fsetxattr(fd.as_fd(), OPAQUE_XATTR, b"y")?;
        }
        Ok(fd)
    }

    fn path_of(&self, comps: &[&[u8]]) -> PathBuf {
        let mut path = self.dest.to_path_buf();
        if !comps.is_empty() {
            path.push(OsStr::from_bytes(&comps.join(&b'/')));
        }
        path
    }

    /// The directory `comps`, created if missing, through the one-entry cache.
    fn parent(&mut self, comps: &[&[u8]], entry: &str) -> Result<Rc<OwnedFd>> {
        if comps.is_empty() {
            return Ok(self.root.clone());
        }
        let key = comps.join(&b'/');
        if let Some((k, fd)) = &self.parent_cache {
            if *k == key {
                return Ok(fd.clone());
            }
        }
        let fd = Rc::new(self.resolve_dir(comps, true).map_err(|e| self.resolve_err(entry, e))?);
        self.parent_cache = Some((key, fd.clone()));
        Ok(fd)
    }

    fn entry<R: Read>(&mut self, entry: &mut tar::Entry<'_, R>) -> Result<()> {
        use tar::EntryType as T;
        let unsafe_path = entry.path_bytes().into_owned();
        let shown = String::from_utf8_lossy(&unsafe_path).into_owned();
        let kind = entry.header().entry_type();
        if matches!(kind, T::XGlobalHeader | T::XHeader | T::GNULongName | T::GNULongLink) {
            return Ok(());
        }
        let comps = clean(&unsafe_path).map_err(|r| self.refuse(&shown, r))?;
        let meta = self.meta(entry, &shown)?;

        let Some((&name, parent)) = comps.split_last() else {
            // The root itself (`./`): only its metadata applies.
            if kind != T::Directory {
                return Err(self.refuse(&shown, "the root of a layer must be a directory"));
            }
            let root = self.root.clone();
            self.apply_fd(root.as_fd(), &meta, true, &comps)?;
            self.dir_times.insert(Vec::new(), meta.mtime);
            return Ok(());
        };

        // Whiteouts.
        if name == OPAQUE_WHITEOUT {
            let dir = self.parent(parent, &shown)?;
            return self.sys.fsetxattr(dir.as_fd(), OPAQUE_XATTR, b"y").map_err(|e| self.io_err(parent, e));
        }
        if name.starts_with(WHITEOUT_META_PREFIX) {
            return Ok(()); // aufs bookkeeping, meaningless here
        }
        if let Some(hidden) = name.strip_prefix(WHITEOUT_PREFIX) {
            if hidden.is_empty() || hidden == b"." || hidden == b".." {
                return Err(self.refuse(&shown, "malformed whiteout name"));
            }
            let dir = self.parent(parent, &shown)?;
            let mut target = parent.to_vec();
            target.push(hidden);
            return match self.sys.statat(dir.as_fd(), hidden) {
                // Something of this very layer is there: a whiteout only hides lower layers.
                Ok(_) => Ok(()),
                Err(Errno::NOENT) => self.sys.mknodat(dir.as_fd(), hidden, FileType::CharacterDevice, Mode::empty(), makedev(0, 0))
                    .map_err(|e| self.io_err(&target, e)),
                Err(e) => Err(self.io_err(&target, e)),
            };
        }

        let dir = self.parent(parent, &shown)?;
        match kind {
            T::Regular | T::Continuous | T::GNUSparse => {
                self.prepare(&dir, &comps, false)?;
                let fd = openat(
                    &*dir,
                    name,
                    OFlags::WRONLY | OFlags::CREATE | OFlags::EXCL | OFlags::NOFOLLOW | OFlags::CLOEXEC,
                    Mode::from_bits_truncate(0o600),
                )
                .map_err(|e| self.io_err(&comps, e))?;
                let mut file = File::from(fd);
                loop {
                    let n = match entry.read(&mut self.buf) {
                        Ok(0) => break,
                        Ok(n) => n,
                        Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                        Err(e) => return Err(self.read_err(e)),
                    };
                    file.write_all(&self.buf[..n]).map_err(|e| self.io_err(&comps, e))?;
                    self.stats.bytes += n as u64;
                }
                self.apply_fd(file.as_fd(), &meta, false, &comps)
            }
            T::Directory => {
                let previous = self.prepare(&dir, &comps, true)?;
                let fd = if previous == Previous::KeptDir {
                    openat(&*dir, name, DIR_FLAGS, Mode::empty())
                } else {
                    // A directory replacing a whiteout of this layer hides the lower one's contents.
                    self.make_dir(&dir, name, Mode::from_bits_truncate(0o700), previous == (Previous::Removed { whiteout: true }))
                }
                .map_err(|e| self.io_err(&comps, e))?;
                self.apply_fd(fd.as_fd(), &meta, true, &comps)?;
                self.dir_times.insert(comps.join(&b'/'), meta.mtime);
                Ok(())
            }
            T::Symlink => {
                let target = entry.link_name_bytes().map(|t| t.into_owned()).unwrap_or_default();
                if target.is_empty() {
                    return Err(self.refuse(&shown, "symlink without a target"));
                }
                if target.contains(&0) {
                    return Err(self.refuse(&shown, "NUL byte in symlink target"));
                }
                self.prepare(&dir, &comps, false)?;
                // The target is stored verbatim; it is never followed here.
                symlinkat(target.as_slice(), &*dir, name).map_err(|e| self.io_err(&comps, e))?;
                self.apply_at(&dir, name, &meta, false, &comps)
            }
            T::Link => {
                let unsafe_target = entry.link_name_bytes().map(|t| t.into_owned()).unwrap_or_default();
                let shown_target = String::from_utf8_lossy(&unsafe_target).into_owned();
                let tcomps = clean(&unsafe_target).map_err(|r| self.refuse(&shown, format!("hardlink target `{shown_target}`: {r}")))?;
                let Some((&tname, tparent)) = tcomps.split_last() else {
                    return Err(self.refuse(&shown, "hardlink to the root"));
                };
                let tdir = self.resolve_dir(tparent, false).map_err(|e| match e {
                    ResolveError::NotFound(_) => {
                        self.refuse(&shown, format!("hardlink target `{shown_target}` does not exist in this layer"))
                    }
                    ResolveError::Refused(r) => self.refuse(&shown, format!("hardlink target `{shown_target}`: {r}")),
                    ResolveError::Io(path, source) => Error::Io { path, source },
                })?;
                match self.sys.statat(tdir.as_fd(), tname) {
                    Ok(st) if st.is_dir() => {
                        return Err(self.refuse(&shown, format!("hardlink target `{shown_target}` is a directory")));
                    }
                    Ok(_) => {}
                    Err(Errno::NOENT) => {
                        return Err(self.refuse(&shown, format!("hardlink target `{shown_target}` does not exist in this layer")));
                    }
                    Err(e) => return Err(self.io_err(&tcomps, e)),
                }
                if tcomps == comps {
                    return Ok(()); // a link to itself
                }
                self.prepare(&dir, &comps, false)?;
                // Without AT_SYMLINK_FOLLOW, a symlink target is linked itself, not followed.
                linkat(&tdir, tname, &*dir, name, AtFlags::empty()).map_err(|e| self.io_err(&comps, e))
            }
            T::Char | T::Block | T::Fifo => {
                let (ft, dev) = match kind {
                    T::Fifo => (FileType::Fifo, 0),
                    _ => {
                        let major = entry.header().device_major().map_err(|e| self.refuse(&shown, format!("bad device number: {e}")))?;
                        let minor = entry.header().device_minor().map_err(|e| self.refuse(&shown, format!("bad device number: {e}")))?;
                        let ft = if kind == T::Char { FileType::CharacterDevice } else { FileType::BlockDevice };
                        (ft, makedev(major.unwrap_or(0), minor.unwrap_or(0)))
                    }
                };
                self.prepare(&dir, &comps, false)?;
                self.sys.mknodat(dir.as_fd(), name, ft, Mode::from_bits_truncate(0o600), dev).map_err(|e| self.io_err(&comps, e))?;
                self.apply_at(&dir, name, &meta, true, &comps)
            }
            // Unknown or unsupported types (sockets cannot be archived by tar; volume
            // labels, multi-volume continuations, ...) are skipped.
            _ => Ok(()),
        }
    }

    fn meta<R: Read>(&self, entry: &mut tar::Entry<'_, R>, shown: &str) -> Result<Meta> {
        let h = entry.header();
        let bad = |what: &str, e: &dyn std::fmt::Display| self.refuse(shown, format!("bad {what}: {e}"));
        let id = |v: u64, what: &str| -> Result<u32> {
            u32::try_from(v).ok().filter(|v| *v != u32::MAX).ok_or_else(|| bad(what, &format!("{v} is out of range")))
        };
        let uid = id(h.uid().map_err(|e| bad("uid", &e))?, "uid")?;
        let gid = id(h.gid().map_err(|e| bad("gid", &e))?, "gid")?;
        let mode = h.mode().map_err(|e| bad("mode", &e))? & 0o7777;
        let secs = h.mtime().map_err(|e| bad("mtime", &e))?;
        let secs = i64::try_from(secs).map_err(|_| bad("mtime", &format!("{secs} is out of range")))?;
        let mut mtime = Timespec { tv_sec: secs, tv_nsec: 0 };
        let mut xattrs = Vec::new();
        if let Some(pax) = entry.pax_extensions().map_err(|e| self.read_err(e))? {
            for rec in pax {
                let rec = rec.map_err(|e| bad("PAX header", &e))?;
                let Ok(key) = rec.key() else { continue };
                if let Some(name) = key.strip_prefix(PAX_XATTR_PREFIX) {
                    if name.is_empty() || name.contains('\0') {
                        return Err(bad("xattr name", &format!("`{name}`")));
                    }
                    if !name.starts_with(OVERLAY_XATTR_PREFIX) {
                        xattrs.push((name.to_string(), rec.value_bytes().to_vec()));
                    }
                } else if key == "mtime" {
                    if let Some(t) = rec.value().ok().and_then(parse_pax_time) {
                        mtime = t;
                    }
                }
            }
        }
        Ok(Meta { uid, gid, mode, mtime, xattrs })
    }

    /// Makes room for a new entry at `comps` (its last component in `dir`):
    /// a directory over a directory keeps it, anything else is removed.
    fn prepare(&mut self, dir: &OwnedFd, comps: &[&[u8]], is_dir: bool) -> Result<Previous> {
        let name = comps[comps.len() - 1];
        let st = match self.sys.statat(dir.as_fd(), name) {
            Ok(st) => st,
            Err(Errno::NOENT) => return Ok(Previous::Nothing),
            Err(e) => return Err(self.io_err(comps, e)),
        };
        if st.is_dir() && is_dir {
            return Ok(Previous::KeptDir);
        }
        let whiteout = st.is_whiteout();
        if st.is_dir() {
            // The cached parent might lie below what goes away.
            self.parent_cache = None;
            let key = comps.join(&b'/');
            let mut below = key.clone();
            below.push(b'/');
            self.dir_times.retain(|k, _| *k != key && !k.starts_with(&below));
            remove_tree(self.sys, dir, name).map_err(|e| self.io_err(comps, e))?;
        } else {
            self.sys.unlinkat(dir.as_fd(), name, AtFlags::empty()).map_err(|e| self.io_err(comps, e))?;
        }
        Ok(Previous::Removed { whiteout })
    }

    /// Owner, mode, xattrs and (unless `is_dir`: directory times are set at
    /// the very end) times of an open file or directory.
    fn apply_fd(&self, fd: BorrowedFd<'_>, meta: &Meta, is_dir: bool, comps: &[&[u8]]) -> Result<()> {
        let err = |e: Errno| self.io_err(comps, e);
        // chown first: it clears setuid/setgid bits and file capabilities.
        self.sys.fchown(fd, meta.uid, meta.gid).map_err(err)?;
        fchmod(fd, Mode::from_bits_truncate(meta.mode)).map_err(err)?;
        for (name, value) in &meta.xattrs {
            match self.sys.fsetxattr(fd, name.as_str(), value) {
                Ok(()) => {}
                Err(e) => self.xattr_failed(comps, name, e)?,
            }
        }
        if !is_dir {
            futimens(fd, &Timestamps { last_access: meta.mtime, last_modification: meta.mtime }).map_err(err)?;
        }
        Ok(())
    }

    /// As [`Self::apply_fd`], for `name` in `dir`, never following it; the
    /// mode is not set on symlinks (`chmod` false).
    fn apply_at(&self, dir: &OwnedFd, name: &[u8], meta: &Meta, chmod: bool, comps: &[&[u8]]) -> Result<()> {
        let err = |e: Errno| self.io_err(comps, e);
        self.sys.chownat(dir.as_fd(), name, meta.uid, meta.gid).map_err(err)?;
        if chmod {
            // Not a symlink (a device or fifo just created here), so nothing is followed.
            chmodat(dir, name, Mode::from_bits_truncate(meta.mode), AtFlags::empty()).map_err(err)?;
        }
        for (xname, value) in &meta.xattrs {
            match self.sys.setxattrat(dir.as_fd(), name, xname.as_str(), value) {
                Ok(()) => {}
                Err(e) => self.xattr_failed(comps, xname, e)?,
            }
        }
        utimensat(dir, name, &Timestamps { last_access: meta.mtime, last_modification: meta.mtime }, AtFlags::SYMLINK_NOFOLLOW)
            .map_err(err)
    }

    /// Xattrs the file system cannot hold (a namespace it does not support,
    /// `user.*` on a symlink or device) are dropped; other failures are errors.
    fn xattr_failed(&self, comps: &[&[u8]], name: &str, e: Errno) -> Result<()> {
        if e == Errno::OPNOTSUPP || (e == Errno::PERM && name.starts_with("user.")) {
            return Ok(());
        }
        Err(self.io_err(comps, io::Error::new(to_io(e).kind(), format!("setting xattr {name}: {e}"))))
    }

    /// Sets the recorded directory mtimes, deepest first (creating children changed them).
    fn restore_dir_times(&mut self) -> Result<()> {
        self.parent_cache = None;
        let mut dirs: Vec<(Vec<u8>, Timespec)> = std::mem::take(&mut self.dir_times).into_iter().collect();
        dirs.sort_by_key(|(k, _)| std::cmp::Reverse(if k.is_empty() { 0 } else { k.iter().filter(|b| **b == b'/').count() + 1 }));
        for (key, t) in dirs {
            let times = Timestamps { last_access: t, last_modification: t };
            let comps: Vec<&[u8]> = if key.is_empty() { Vec::new() } else { key.split(|b| *b == b'/').collect() };
            match comps.split_last() {
                None => futimens(&*self.root, &times).map_err(|e| self.io_err(&comps, e))?,
                Some((name, parent)) => {
                    let dir = match self.resolve_dir(parent, false) {
                        Ok(d) => d,
                        Err(ResolveError::Io(path, source)) => return Err(Error::Io { path, source }),
                        Err(_) => continue, // replaced since; nothing to restore
                    };
                    utimensat(&dir, *name, &times, AtFlags::SYMLINK_NOFOLLOW).map_err(|e| self.io_err(&comps, e))?;
                }
            }
        }
        Ok(())
    }
}

/// Removes `name` in `dir` and, if it is a directory, everything below it,
/// never following symlinks.
fn remove_tree(sys: &dyn Syscall, dir: &OwnedFd, name: &[u8]) -> Result<(), Errno> {
    match sys.unlinkat(dir.as_fd(), name, AtFlags::empty()) {
        Ok(()) => return Ok(()),
        Err(Errno::ISDIR) | Err(Errno::PERM) => {}
        Err(e) => return Err(e),
    }
    let sub = openat(dir, name, DIR_FLAGS, Mode::empty())?;
    let mut names = Vec::new();
    let mut d = Dir::read_from(&sub)?;
    while let Some(e) = d.read() {
        let e = e?;
        let n = e.file_name().to_bytes();
        if n != b"." && n != b".." {
            names.push(n.to_vec());
        }
    }
    for n in names {
        remove_tree(sys, &sub, &n)?;
    }
    sys.unlinkat(dir.as_fd(), name, AtFlags::REMOVEDIR)
}

/// Parses a PAX time (`SECONDS[.FRACTION]`).
fn parse_pax_time(s: &str) -> Option<Timespec> {
    let (secs, frac) = s.split_once('.').unwrap_or((s, ""));
    let tv_sec: i64 = secs.parse().ok()?;
    if !frac.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let mut digits: String = frac.chars().take(9).collect();
    while digits.len() < 9 {
        digits.push('0');
    }
    let mut tv_nsec: i64 = digits.parse().ok()?;
    if secs.starts_with('-') && tv_nsec != 0 {
        // -1.5 is 1.5 s before the epoch: -2 s + 0.5 s.
        return Some(Timespec { tv_sec: tv_sec.checked_sub(1)?, tv_nsec: 1_000_000_000 - tv_nsec });
    }
    if tv_nsec >= 1_000_000_000 {
        tv_nsec = 0;
    }
    Some(Timespec { tv_sec, tv_nsec })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cleaning() {
        assert_eq!(clean(b"./a//b/").unwrap(), vec![&b"a"[..], b"b"]);
        assert!(clean(b".").unwrap().is_empty());
        assert!(clean(b"a/../b").is_err());
        assert!(clean(b"..").is_err());
        assert!(clean(b"/etc/passwd").is_err());
        assert!(clean(b"a\0b").is_err());
        assert!(clean(b"").is_err());
    }

    #[test]
    fn pax_times() {
        assert_eq!(parse_pax_time("12.5").map(|t| (t.tv_sec, t.tv_nsec)), Some((12, 500_000_000)));
        assert_eq!(parse_pax_time("12").map(|t| (t.tv_sec, t.tv_nsec)), Some((12, 0)));
        assert_eq!(parse_pax_time("-1.5").map(|t| (t.tv_sec, t.tv_nsec)), Some((-2, 500_000_000)));
        assert!(parse_pax_time("x").is_none());
        assert!(parse_pax_time("-9223372036854775808.5").is_none());
        assert!(parse_pax_time("1.-5").is_none());
    }
}
