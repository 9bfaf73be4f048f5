//! The patch layer: generated from an overlay's upper directory, the reverse
//! of unpacking. Overlay whiteouts become OCI whiteouts, files equal to the
//! lower layers' are dropped, apt and dpkg noise and per-instance secrets
//! stay out, a directory a maintainer script recreated is written as its
//! differences (whiteouts, never an opaque marker), and the tar is
//! deterministic (sorted, numeric owners, clamped mtimes, no atime/ctime).
//! Metadata and xattrs are read through a [`Syscall`], so the differ is
//! tested without root.

use std::collections::{BTreeMap, HashMap};
use std::fs::{self, File};
use std::io::{self, BufWriter, Read, Write};
use std::path::{Path, PathBuf};

use freshen_image::{Digest, HashingWriter, LayerBlob};
use rustix::fs::FileType;

use crate::error::{io_err, Error, Result};
use crate::lowerview::{Found, LowerView};
use crate::syscall::{Linux, Stat, Syscall};

const OPAQUE_XATTR: &str = "trusted.overlay.opaque";

/// Paths that never enter a patch layer (apt's caches and logs, backups).
/// Entries are root-relative; a trailing `/` excludes the directory's contents.
pub const NOISE: &[&str] = &[
    "var/cache/apt/",
    "var/lib/apt/lists/",
    "var/log/apt/",
    "var/log/dpkg.log",
    "var/log/alternatives.log",
    "var/cache/ldconfig/aux-cache",
    "var/cache/debconf/config.dat-old",
    "var/cache/debconf/templates.dat-old",
    "tmp/",
    "var/tmp/",
    "run/",
    "dev/",
    "proc/",
    "sys/",
];

/// Whether `rel` stays out of a patch layer as apt or dpkg noise (or one of
/// the `extra` paths).
pub fn is_noise(rel: &str, extra: &[String]) -> bool {
    if rel.ends_with("-old") && (rel.starts_with("var/lib/dpkg/") || rel.starts_with("var/cache/debconf/")) {
        return true;
    }
    NOISE.iter().any(|n| if let Some(d) = n.strip_suffix('/') { rel.starts_with(n) || rel == d } else { rel == *n })
        || extra.iter().any(|e| e == rel)
}

/// Compression of the patch layer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Compression {
    Gzip,
    Zstd,
}

/// Options for [`write_patch_layer`].
pub struct LayerOptions {
    /// Newer mtimes are clamped to this (seconds since the epoch).
    pub clamp_mtime: u64,
    pub compression: Compression,
    /// `true` for Docker media types, `false` for OCI ones.
    pub docker_media_types: bool,
    /// Further root-relative paths to leave out (sandbox mount points).
    pub exclude: Vec<String>,
    pub created_by: String,
}

/// What went into a layer.
#[derive(Clone, Debug, Default, serde::Serialize, serde::Deserialize)]
pub struct LayerStats {
    pub entries: u64,
    pub files: u64,
    pub whiteouts: u64,
    /// Files in the upper directory that equalled the lower ones and were dropped.
    pub unchanged_dropped: u64,
    pub uncompressed_bytes: u64,
    /// Every path the layer writes or deletes, with whether it is a directory.
    pub paths: Vec<(String, bool)>,
    /// Per-instance secrets apt's run created or changed that were left out
    /// (see [`crate::secrets::SECRETS`]).
    #[serde(default)]
    pub secrets_left_out: Vec<String>,
}

fn xattrs(sys: &dyn Syscall, path: &Path) -> io::Result<BTreeMap<String, Vec<u8>>> {
    xattrs_of(sys, path, false)
}

/// The xattrs of `path`, of what it leads to when `follow` (a lower
/// entry reached through `/proc/self/fd`), else of `path` itself;
/// overlayfs's own are left out.
fn xattrs_of(sys: &dyn Syscall, path: &Path, follow: bool) -> io::Result<BTreeMap<String, Vec<u8>>> {
    let mut all = sys.xattrs(path, follow)?;
    all.retain(|name, _| !name.starts_with("trusted.overlay."));
    Ok(all)
}

fn is_opaque(sys: &dyn Syscall, path: &Path) -> bool {
    matches!(sys.xattrs(path, false), Ok(x) if x.get(OPAQUE_XATTR).is_some_and(|v| v == b"y"))
}

fn same_content(a: &Path, b: &Path) -> io::Result<bool> {
    let (mut fa, mut fb) = (File::open(a)?, File::open(b)?);
    let (mut ba, mut bb) = (vec![0u8; 1 << 16], vec![0u8; 1 << 16]);
    loop {
        let na = read_full(&mut fa, &mut ba)?;
        let nb = read_full(&mut fb, &mut bb)?;
        if na != nb || ba[..na] != bb[..nb] {
            return Ok(false);
        }
        if na == 0 {
            return Ok(true);
        }
    }
}

fn read_full(f: &mut File, buf: &mut [u8]) -> io::Result<usize> {
    let mut n = 0;
    while n < buf.len() {
        match f.read(&mut buf[n..])? {
            0 => break,
            k => n += k,
        }
    }
    Ok(n)
}

/// Whether the upper entry equals what the lower layers show at that path.
fn same_as_lower(sys: &dyn Syscall, upper: &Path, um: &Stat, lower: Option<&Found>) -> io::Result<bool> {
    let Some(lower) = lower else { return Ok(false) };
    let lm = &lower.meta;
    if um.kind != lm.kind || um.mode != lm.mode || um.uid != lm.uid || um.gid != lm.gid {
        return Ok(false);
    }
    let same = match um.kind {
        FileType::Symlink => fs::read_link(upper)? == lower.read_link()?,
        FileType::RegularFile => um.size == lm.size && same_content(upper, &lower.path())?,
        FileType::CharacterDevice | FileType::BlockDevice => um.rdev == lm.rdev,
        _ => true,
    };
    Ok(same && (um.kind == FileType::Symlink || xattrs(sys, upper)? == xattrs_of(sys, &lower.path(), true)?))
}

/// One planned tar entry.
enum Item {
    Entry { rel: String, full: PathBuf, meta: Stat },
    Whiteout { rel: String },
}

struct Planner<'a> {
    sys: &'a dyn Syscall,
    upper: &'a Path,
    lower: LowerView<'a>,
    lower_dir: &'a Path,
    opts: &'a LayerOptions,
    stats: LayerStats,
}

fn names_in(dir: &Path) -> Result<Vec<String>> {
    fs::read_dir(dir)
        .map_err(io_err(dir))?
        .map(|e| e.map(|e| e.file_name().to_string_lossy().into_owned()))
        .collect::<io::Result<_>>()
        .map_err(io_err(dir))
}

impl Planner<'_> {
    /// What the lower layers show at `rel`, resolved inside their root.
    fn find_lower(&self, rel: &str) -> Result<Option<Found>> {
        self.lower.find(rel).map_err(io_err(self.lower_path(rel)))
    }

    /// `rel` in the lower view, for messages.
    fn lower_path(&self, rel: &str) -> PathBuf {
        self.lower_dir.join(rel)
    }

    /// Plans the entries below `rel`, returning them in tar order.
    ///
    /// `hide_lower`: the directory is opaque in the upper directory (a
    /// maintainer script deleted and recreated it), or below one. The layer
    /// never carries an opaque marker: it writes what differs from the lower
    /// layers and a whiteout for each lower entry that is gone, so that an
    /// entry dropped as unchanged keeps showing through from below.
    fn dir(&mut self, rel: &str, hide_lower: bool) -> Result<Vec<Item>> {
        let dir = if rel.is_empty() { self.upper.to_path_buf() } else { self.upper.join(rel) };
        let mut names = names_in(&dir)?;
        // Lower entries the recreated directory no longer has.
        let mut gone = Vec::new();
        let lower_dir = if hide_lower { self.find_lower(rel)?.filter(|l| l.meta.is_dir()) } else { None };
        if let Some(lower_dir) = lower_dir {
            for name in names_in(&lower_dir.path())? {
                if fs::symlink_metadata(dir.join(&name)).is_err() {
                    gone.push(name.clone());
                    names.push(name);
                }
            }
        }
        names.sort();
        let mut out = Vec::new();
        for name in names {
            let child = if rel.is_empty() { name.clone() } else { format!("{rel}/{name}") };
            if is_noise(&child, &self.opts.exclude) {
                continue;
            }
            if gone.contains(&name) {
                self.stats.whiteouts += 1;
                out.push(Item::Whiteout { rel: child });
                continue;
            }
            let full = self.upper.join(&child);
            let meta = self.sys.lstat(&full).map_err(io_err(&full))?;
            let lower = self.find_lower(&child)?;
            if meta.is_whiteout() {
                if lower.is_some() {
                    self.stats.whiteouts += 1;
                    out.push(Item::Whiteout { rel: child });
                }
                continue;
            }
            if crate::secrets::is_secret(&child) {
                self.stats.secrets_left_out.push(child);
                continue;
            }
            if meta.is_dir() {
                let children = self.dir(&child, hide_lower || is_opaque(self.sys, &full))?;
                let changed = match &lower {
                    Some(l) => {
                        let lm = &l.meta;
                        !lm.is_dir()
                            || lm.mode != meta.mode
                            || lm.uid != meta.uid
                            || lm.gid != meta.gid
                            || xattrs(self.sys, &full).map_err(io_err(&full))?
                                != xattrs_of(self.sys, &l.path(), true).map_err(io_err(self.lower_path(&child)))?
                    }
                    None => true,
                };
                if changed || !children.is_empty() {
                    out.push(Item::Entry { rel: child, full, meta });
                    out.extend(children);
                }
                continue;
            }
            if meta.kind == FileType::Socket {
                continue;
            }
            if same_as_lower(self.sys, &full, &meta, lower.as_ref()).map_err(io_err(&full))? {
                self.stats.unchanged_dropped += 1;
                continue;
            }
            out.push(Item::Entry { rel: child, full, meta });
        }
        Ok(out)
    }
}

/// A compressing writer that must be finished to flush its end.
trait Encoder<W>: Write {
    fn finish_stream(self) -> io::Result<W>;
}

impl<W: Write> Encoder<W> for freshen_image::ParallelGz<W> {
    fn finish_stream(self) -> io::Result<W> {
        self.finish()
    }
}

impl<W: Write> Encoder<W> for zstd::stream::write::Encoder<'static, W> {
    fn finish_stream(self) -> io::Result<W> {
        self.finish()
    }
}

/// Writes the planned entries as a tar through `enc`; returns (blob digest,
/// diff id, compressed size, uncompressed size).
fn write_tar<W: Write, E: Encoder<HashingWriter<W>>>(sys: &dyn Syscall, enc: E, items: &[Item], clamp: u64, stats: &mut LayerStats) -> io::Result<(Digest, Digest, u64, u64)> {
    let mut b = tar::Builder::new(HashingWriter::new(enc));
    write_items(sys, &mut b, items, clamp, stats)?;
    let (enc, diff_id, raw) = b.into_inner()?.finish();
    let (mut out, digest, size) = enc.finish_stream()?.finish();
    out.flush()?;
    Ok((digest, diff_id, size, raw))
}

fn header_for(meta: &Stat, clamp: u64) -> tar::Header {
    let mut h = tar::Header::new_gnu();
    h.set_mode(meta.mode);
    h.set_uid(meta.uid as u64);
    h.set_gid(meta.gid as u64);
    h.set_mtime((meta.mtime.max(0) as u64).min(clamp));
    h.set_size(0);
    h
}

fn write_items<W: Write>(sys: &dyn Syscall, b: &mut tar::Builder<W>, items: &[Item], clamp: u64, stats: &mut LayerStats) -> io::Result<()> {
    let mut links: HashMap<(u64, u64), String> = HashMap::new();
    for item in items {
        stats.entries += 1;
        match item {
            Item::Whiteout { rel } => {
                stats.paths.push((rel.clone(), false));
                let (parent, name) = rel.rsplit_once('/').map_or(("", rel.as_str()), |(p, n)| (p, n));
                let path = if parent.is_empty() { format!(".wh.{name}") } else { format!("{parent}/.wh.{name}") };
                let mut h = tar::Header::new_gnu();
                h.set_mode(0o644);
                // Unset numeric fields are refused by strict readers (this crate's unpacker too).
                h.set_uid(0);
                h.set_gid(0);
                h.set_mtime(clamp);
                h.set_size(0);
                h.set_entry_type(tar::EntryType::Regular);
                b.append_data(&mut h, path, io::empty())?;
            }
            Item::Entry { rel, full, meta } => {
                stats.paths.push((rel.clone(), meta.is_dir()));
                let ft = meta.kind;
                let xa = if ft == FileType::Symlink { BTreeMap::new() } else { xattrs(sys, full)? };
                if !xa.is_empty() {
                    let pax: Vec<(String, Vec<u8>)> = xa.iter().map(|(k, v)| (format!("SCHILY.xattr.{k}"), v.clone())).collect();
                    b.append_pax_extensions(pax.iter().map(|(k, v)| (k.as_str(), v.as_slice())))?;
                }
                let mut h = header_for(meta, clamp);
                match ft {
                    FileType::Directory => {
                        h.set_entry_type(tar::EntryType::Directory);
                        b.append_data(&mut h, format!("{rel}/"), io::empty())?;
                    }
                    FileType::Symlink => {
                        h.set_entry_type(tar::EntryType::Symlink);
                        b.append_link(&mut h, rel, fs::read_link(full)?)?;
                    }
                    FileType::RegularFile => {
                        stats.files += 1;
                        if meta.nlink > 1 {
                            if let Some(first) = links.get(&(meta.dev, meta.ino)) {
                                h.set_entry_type(tar::EntryType::Link);
                                b.append_link(&mut h, rel, first)?;
                                continue;
                            }
                            links.insert((meta.dev, meta.ino), rel.clone());
                        }
                        h.set_entry_type(tar::EntryType::Regular);
                        h.set_size(meta.size);
                        b.append_data(&mut h, rel, File::open(full)?)?;
                    }
                    _ => {
                        let kind = match ft {
                            FileType::CharacterDevice => tar::EntryType::Char,
                            FileType::BlockDevice => tar::EntryType::Block,
                            _ => tar::EntryType::Fifo,
                        };
                        freshen_image::set_device(&mut h, kind, meta.rdev)?;
                        b.append_data(&mut h, rel, io::empty())?;
                    }
                }
            }
        }
    }
    Ok(())
}

/// Writes the patch layer for `upper` over the merged lower view `lower`
/// into `blobs` (a `blobs/sha256` directory).
pub fn write_patch_layer(upper: &Path, lower: &Path, blobs: &Path, opts: &LayerOptions) -> Result<(LayerBlob, LayerStats)> {
    write_patch_layer_with(&Linux, upper, lower, blobs, opts)
}

/// As [`write_patch_layer`], with metadata and xattrs read through `sys`.
pub fn write_patch_layer_with(sys: &dyn Syscall, upper: &Path, lower: &Path, blobs: &Path, opts: &LayerOptions) -> Result<(LayerBlob, LayerStats)> {
    let view = LowerView::open(sys, lower).map_err(io_err(lower))?;
    let mut planner = Planner { sys, upper, lower: view, lower_dir: lower, opts, stats: LayerStats::default() };
    let items = planner.dir("", false)?;
    let mut stats = planner.stats;
    fs::create_dir_all(blobs).map_err(io_err(blobs))?;
    let tmp = blobs.join(format!(".tmp-layer-{}", std::process::id()));
    let out = File::create(&tmp).map_err(io_err(&tmp))?;
    let outer = HashingWriter::new(BufWriter::new(out));
    let result = match opts.compression {
        Compression::Gzip => write_tar(sys, freshen_image::ParallelGz::new(outer), &items, opts.clamp_mtime, &mut stats),
        Compression::Zstd => zstd::stream::write::Encoder::new(outer, 3).and_then(|z| write_tar(sys, z, &items, opts.clamp_mtime, &mut stats)),
    };
    let (digest, diff_id, size, raw) = match result {
        Ok(v) => v,
        Err(e) => {
            let _ = fs::remove_file(&tmp);
            return Err(io_err(&tmp)(e));
        }
    };
    stats.uncompressed_bytes = raw;
    let dest = blobs.join(digest.hex());
    fs::rename(&tmp, &dest).map_err(io_err(&dest))?;
    let media_type = match (opts.docker_media_types, opts.compression) {
        (true, Compression::Gzip) => "application/vnd.docker.image.rootfs.diff.tar.gzip",
        (true, Compression::Zstd) => "application/vnd.docker.image.rootfs.diff.tar.zstd",
        (false, Compression::Gzip) => "application/vnd.oci.image.layer.v1.tar+gzip",
        (false, Compression::Zstd) => "application/vnd.oci.image.layer.v1.tar+zstd",
    };
    if stats.entries == 0 {
        return Err(Error::Invalid("the sandbox changed nothing: no patch layer to write".into()));
    }
    Ok((LayerBlob { digest, diff_id, size, media_type: media_type.into(), created_by: opts.created_by.clone() }, stats))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn noise_is_left_out() {
        assert!(is_noise("var/lib/apt/lists/x_Packages", &[]));
        assert!(is_noise("var/cache/apt", &[]));
        assert!(is_noise("var/lib/dpkg/status-old", &[]));
        assert!(is_noise("usr/sbin/policy-rc.d", &["usr/sbin/policy-rc.d".into()]));
        assert!(!is_noise("var/lib/dpkg/status", &[]));
        assert!(!is_noise("usr/bin/apt", &[]));
    }
}
