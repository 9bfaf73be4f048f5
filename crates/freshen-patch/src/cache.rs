//! A content-addressed cache of unpacked layers: `ROOT/<diff id hex>` is the
//! layer unpacked in overlayfs format (see [`crate::unpack`]), ready to be an
//! overlay lower directory.
//!
//! An entry is unpacked under a temporary name (`ROOT/.tmp-<pid>-<n>`),
//! checked (blob digest and diff id), synced and renamed into place without
//! replacing anything, so a half-finished unpack never appears under a final
//! name and several processes can share the cache: when two unpack the same
//! layer at once, the first rename wins and the other discards its copy.

use std::fs;
use std::io;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use freshen_image::progress::Counting;
use freshen_image::{decompress, Digest, HashingReader, ImageSource, Layer, Progress};
use rustix::fs::{renameat_with, RenameFlags, CWD};
use rustix::io::Errno;

use crate::error::{io_err, Error, Result};
use crate::unpack::unpack_layer;

const TMP_PREFIX: &str = ".tmp-";
/// Temporary directories of dead processes older than this are removed.
const STALE_AFTER: Duration = Duration::from_secs(3600);

static SEQ: AtomicU64 = AtomicU64::new(0);

/// Unpacked layers, keyed by diff id.
#[derive(Clone)]
pub struct LayerCache {
    root: PathBuf,
    progress: Arc<dyn Progress>,
}

impl LayerCache {
    /// A cache in `root` (e.g. `CACHE/layers`), created when first needed.
    pub fn new(root: PathBuf) -> LayerCache {
        LayerCache { root, progress: freshen_image::progress::silent() }
    }

    /// Reports each layer it unpacks to `progress`.
    pub fn with_progress(self, progress: Arc<dyn Progress>) -> LayerCache {
        LayerCache { progress, ..self }
    }

    /// Where the layer with this diff id is (or would be) unpacked.
    pub fn path(&self, diff_id: &Digest) -> PathBuf {
        self.root.join(diff_id.hex())
    }

    /// The unpacked directory of `layer` (`ROOT/<diff id hex>`), unpacking it
    /// first if needed. The blob digest and the diff id are both verified
    /// before anything appears under the final name. A layer without a diff
    /// id in its config is unpacked every time and filed under the digest of
    /// its uncompressed tar.
    pub fn ensure(&self, source: &dyn ImageSource, layer: &Layer) -> Result<PathBuf> {
        if let Some(diff_id) = &layer.diff_id {
            let path = self.path(diff_id);
            if is_dir(&path) {
                crate::prune::touch(&path);
                return Ok(path);
            }
        }
        fs::create_dir_all(&self.root).map_err(io_err(&self.root))?;
        self.remove_stale();
        let tmp = self.make_tmp()?;
        let diff_id = match self.unpack_into(source, layer, &tmp) {
            Ok(d) => d,
            Err(e) => {
                let _ = fs::remove_dir_all(&tmp);
                return Err(e);
            }
        };
        let path = self.path(&diff_id);
        match renameat_with(CWD, &tmp, CWD, &path, RenameFlags::NOREPLACE) {
            Ok(()) => Ok(path),
            Err(Errno::EXIST) | Err(Errno::NOTEMPTY) if is_dir(&path) => {
                // Another process won the race: theirs is as good as ours.
                let _ = fs::remove_dir_all(&tmp);
                Ok(path)
            }
            Err(e) => {
                let _ = fs::remove_dir_all(&tmp);
                Err(Error::Io { path, source: e.into() })
            }
        }
    }

    /// [`LayerCache::ensure`], holding the layer against pruning until
    /// the hold is dropped (a prune that removed it in between is undone
    /// by unpacking again).
    pub fn ensure_held(&self, source: &dyn ImageSource, layer: &Layer) -> Result<(PathBuf, LayerHold)> {
        loop {
            let path = self.ensure(source, layer)?;
            match LayerHold::take(&path) {
                Ok(hold) if is_dir(&path) => return Ok((path, hold)),
                Ok(_) => continue,
                Err(Error::Io { source, .. }) if source.kind() == io::ErrorKind::NotFound => continue,
                Err(e) => return Err(e),
            }
        }
    }

    /// A new, empty temporary directory under the root.
    fn make_tmp(&self) -> Result<PathBuf> {
        loop {
            let n = SEQ.fetch_add(1, Ordering::Relaxed);
            let tmp = self.root.join(format!("{TMP_PREFIX}{}-{n}", std::process::id()));
            match fs::create_dir(&tmp) {
                Ok(()) => return Ok(tmp),
                // Left by an earlier process that had our pid: never in use now.
                Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {
                    let _ = fs::remove_dir_all(&tmp);
                }
                Err(e) => return Err(io_err(&tmp)(e)),
            }
        }
    }

    /// Unpacks `layer` into `tmp`, returning its verified diff id.
    fn unpack_into(&self, source: &dyn ImageSource, layer: &Layer, tmp: &Path) -> Result<Digest> {
        let label = layer.digest.to_string();
        let layer_err = |e: io::Error| {
            Error::Image(freshen_image::Error::Layer { index: layer.index, digest: label.clone(), reason: e.to_string() })
        };
        let task = self.progress.begin(&format!("unpack layer {} {}", layer.index, layer.digest.short()), layer.size);
        let mut raw = Counting::new(source.open_layer(layer)?, task);
        let unpacked = (|| {
            let stream = decompress(Box::new(&mut raw), layer.size).map_err(layer_err)?;
            let mut tar = HashingReader::new(stream);
            unpack_layer(&mut tar, tmp, &label)?;
            // The tar walk stops at the end-of-archive blocks: the diff id
            // covers everything that follows too.
            io::copy(&mut tar, &mut io::sink()).map_err(layer_err)?;
            Ok(tar.digest())
        })();
        // Read the blob to its end, so its size and digest are checked
        // (`open_layer`'s stream fails there on a mismatch). After a failed
        // unpack this also tells a corrupt blob, the likely cause, apart
        // from a bad archive.
        let rest = io::copy(&mut raw, &mut io::sink()).map_err(layer_err);
        let got = match (unpacked, rest) {
            (Ok(d), Ok(_)) => d,
            (Err(_), Err(blob)) | (Ok(_), Err(blob)) => return Err(blob),
            (Err(e), Ok(_)) => return Err(e),
        };
        if let Some(want) = &layer.diff_id {
            if *want != got {
                return Err(Error::Image(freshen_image::Error::Layer {
                    index: layer.index,
                    digest: label,
                    reason: format!("diff id mismatch: the uncompressed layer hashes to {got}, the image config says {want}"),
                }));
            }
        }
        // Make the contents durable before they get their final name.
        let dir = fs::File::open(tmp).map_err(io_err(tmp))?;
        rustix::fs::syncfs(&dir).map_err(|e| Error::Io { path: tmp.to_path_buf(), source: e.into() })?;
        raw.task().finish("");
        Ok(got)
    }

    /// Removes temporary directories left by killed runs: those of processes
    /// that no longer exist and unchanged for an hour. Errors are ignored;
    /// leftovers never get in the way otherwise.
    fn remove_stale(&self) {
        let Ok(entries) = fs::read_dir(&self.root) else { return };
        let now = SystemTime::now();
        for e in entries.flatten() {
            let name = e.file_name();
            let Some(rest) = name.to_str().and_then(|n| n.strip_prefix(TMP_PREFIX)) else { continue };
            let Some(pid) = rest.split('-').next().and_then(|p| p.parse::<i32>().ok()) else { continue };
            let alive = match rustix::process::Pid::from_raw(pid) {
                Some(p) => rustix::process::test_kill_process(p) != Err(Errno::SRCH),
                None => false,
            };
            if alive {
                continue;
            }
            let Ok(meta) = fs::symlink_metadata(e.path()) else { continue };
            // The later of mtime and ctime: setting the root's mtime from the
            // archive changes its ctime.
            let changed = meta.mtime().max(meta.ctime()).max(0) as u64;
            let age = now.duration_since(UNIX_EPOCH + Duration::from_secs(changed)).unwrap_or_default();
            if meta.is_dir() && age > STALE_AFTER {
                let _ = fs::remove_dir_all(e.path());
            }
        }
    }
}

/// A shared `flock` on an unpacked layer's directory: [`crate::prune`]
/// leaves it alone while any is held.
pub struct LayerHold(#[allow(dead_code)] fs::File);

impl LayerHold {
    /// Holds the layer directory `path`.
    pub fn take(path: &Path) -> Result<LayerHold> {
        let dir = fs::File::open(path).map_err(io_err(path))?;
        rustix::fs::flock(&dir, rustix::fs::FlockOperation::LockShared).map_err(|e| Error::Io { path: path.to_path_buf(), source: e.into() })?;
        Ok(LayerHold(dir))
    }
}

fn is_dir(path: &Path) -> bool {
    fs::symlink_metadata(path).is_ok_and(|m| m.is_dir())
}

