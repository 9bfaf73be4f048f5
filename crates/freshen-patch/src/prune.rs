//! Pruning the cache: unpacked layers (`layers/`), Packages indexes
//! (`indexes/`), packages (`debs/`), patch records (`patches/`) and the
//! small revalidated documents (`http/`, `verified/`). Entries unused for
//! longer than a maximum age go, then the least recently used until the
//! cache fits a maximum size. "Used" is the modification time, which
//! freshen sets on every use ([`touch`]): access times are unreliable
//! (`noatime`, `relatime`). A layer a running patch has mounted is held
//! with a shared `flock` ([`crate::cache::LayerHold`]); pruning takes an
//! exclusive one without waiting and leaves a busy layer alone.

use std::fs::{self, File};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use rustix::fs::{flock, FlockOperation};

use crate::error::{io_err, Result};

/// The cache's subdirectories whose entries are pruned.
const KINDS: [&str; 6] = ["layers", "indexes", "debs", "patches", "http", "verified"];

/// What to keep.
#[derive(Clone, Copy, Debug)]
pub struct Limits {
    /// The most the pruned entries may take together, in bytes.
    pub max_size: u64,
    /// Entries unused for longer go whatever the size.
    pub max_age: Option<Duration>,
}

/// What a prune did.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Pruned {
    pub removed: usize,
    pub freed: u64,
    /// Entries that would have gone but are in use.
    pub busy: usize,
    /// What the entries left take.
    pub kept: u64,
}

/// Marks `path` as used now (its modification time).
pub fn touch(path: &Path) {
    if let Ok(f) = File::open(path) {
        let _ = f.set_modified(SystemTime::now());
    }
}

struct Entry {
    /// The files that go together (a record and its blob count apart).
    path: PathBuf,
    size: u64,
    used: SystemTime,
}

/// Prunes `cache` to `limits`.
pub fn prune(cache: &Path, limits: Limits) -> Result<Pruned> {
    let mut entries = Vec::new();
    for kind in KINDS {
        let dir = cache.join(kind);
        let Ok(list) = fs::read_dir(&dir) else { continue };
        for e in list {
            let e = e.map_err(io_err(&dir))?;
            let name = e.file_name();
            // Temporary names of writers at work, and patches/blobs (pruned below).
            if name.to_string_lossy().starts_with('.') || (kind == "patches" && name == "blobs") {
                continue;
            }
            let Ok(meta) = fs::symlink_metadata(e.path()) else { continue };
            entries.push(Entry { path: e.path(), size: disk_size(&e.path()), used: meta.modified().unwrap_or(SystemTime::UNIX_EPOCH) });
        }
    }
    entries.sort_by_key(|e| e.used);
    let now = SystemTime::now();
    let mut total: u64 = entries.iter().map(|e| e.size).sum();
    let mut out = Pruned::default();
    for e in entries {
        let old = limits.max_age.is_some_and(|age| now.duration_since(e.used).is_ok_and(|d| d > age));
        if !old && total <= limits.max_size {
            out.kept += e.size;
            continue;
        }
        match remove(&e.path)? {
            true => {
                out.removed += 1;
                out.freed += e.size;
                total -= e.size;
            }
            false => {
                out.busy += 1;
                out.kept += e.size;
            }
        }
    }
    remove_orphan_blobs(cache)?;
    Ok(out)
}

/// Removes an entry unless it is held; a directory is locked first.
fn remove(path: &Path) -> Result<bool> {
    let meta = match fs::symlink_metadata(path) {
        Ok(m) => m,
        Err(_) => return Ok(true),
    };
    if !meta.is_dir() {
        return match fs::remove_file(path) {
            Ok(()) => Ok(true),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(true),
            Err(e) => Err(io_err(path)(e)),
        };
    }
    let dir = File::open(path).map_err(io_err(path))?;
    match flock(&dir, FlockOperation::NonBlockingLockExclusive) {
        Ok(()) => {}
        Err(rustix::io::Errno::WOULDBLOCK) => return Ok(false),
        Err(e) => return Err(io_err(path)(e.into())),
    }
    // Renamed away first, so no reader finds it half removed.
    let doomed = path.with_file_name(format!(".pruned-{}-{}", std::process::id(), path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default()));
    fs::rename(path, &doomed).map_err(io_err(path))?;
    fs::remove_dir_all(&doomed).map_err(io_err(&doomed))?;
    Ok(true)
}

/// Patch layer blobs no record names any more.
fn remove_orphan_blobs(cache: &Path) -> Result<()> {
    let dir = cache.join("patches");
    let Ok(blobs) = fs::read_dir(dir.join("blobs")) else { return Ok(()) };
    let mut named = String::new();
    if let Ok(records) = fs::read_dir(&dir) {
        for r in records.flatten().filter(|r| r.path().extension().is_some_and(|x| x == "json")) {
            named.push_str(&fs::read_to_string(r.path()).unwrap_or_default());
        }
    }
    for b in blobs.flatten() {
        let hex = b.file_name().to_string_lossy().into_owned();
        if !hex.starts_with('.') && !named.contains(&hex) {
            let _ = fs::remove_file(b.path());
        }
    }
    Ok(())
}

/// The space a file or directory tree takes on disk.
fn disk_size(path: &Path) -> u64 {
    let Ok(meta) = fs::symlink_metadata(path) else { return 0 };
    let own = meta.blocks() * 512;
    if !meta.is_dir() {
        return own;
    }
    own + fs::read_dir(path).map(|l| l.flatten().map(|e| disk_size(&e.path())).sum()).unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn aged(path: &Path, days: u64) {
        File::open(path).unwrap().set_modified(SystemTime::now() - Duration::from_secs(days * 86_400)).unwrap();
    }

    #[test]
    fn old_and_least_recently_used_go_held_layers_stay() {
        let cache = tempfile::tempdir().unwrap();
        let c = cache.path();
        for d in ["layers/a", "layers/b", "debs", "indexes", "patches/blobs"] {
            fs::create_dir_all(c.join(d)).unwrap();
        }
        fs::write(c.join("layers/a/f"), vec![1u8; 64 << 10]).unwrap();
        fs::write(c.join("layers/b/f"), vec![1u8; 64 << 10]).unwrap();
        fs::write(c.join("debs/old.deb"), vec![1u8; 8 << 10]).unwrap();
        fs::write(c.join("debs/new.deb"), vec![1u8; 8 << 10]).unwrap();
        fs::write(c.join("debs/.x.deb.1-0.tmp"), b"writing").unwrap();
        fs::write(c.join("patches/k.json"), format!("{{\"digest\":\"sha256:{}\"}}", "a".repeat(64))).unwrap();
        fs::write(c.join("patches/blobs").join("a".repeat(64)), b"kept").unwrap();
        fs::write(c.join("patches/blobs").join("b".repeat(64)), b"orphan").unwrap();
        aged(&c.join("debs/old.deb"), 40);
        aged(&c.join("layers/a"), 20);
        aged(&c.join("layers/b"), 10);
        // Old by age only.
        let p = prune(c, Limits { max_size: u64::MAX, max_age: Some(Duration::from_secs(30 * 86_400)) }).unwrap();
        assert_eq!((p.removed, p.busy), (1, 0));
        assert!(!c.join("debs/old.deb").exists() && c.join("debs/new.deb").exists());
        assert!(!c.join("patches/blobs").join("b".repeat(64)).exists(), "a blob no record names goes");
        // Over the size: the least recently used layer goes first; a held one stays.
        let held = crate::cache::LayerHold::take(&c.join("layers/b")).unwrap();
        let p = prune(c, Limits { max_size: 0, max_age: None }).unwrap();
        assert_eq!(p.busy, 1);
        assert!(!c.join("layers/a").exists() && c.join("layers/b/f").exists() && !c.join("debs/new.deb").exists());
        assert!(c.join("debs/.x.deb.1-0.tmp").exists(), "a file being written is left alone");
        drop(held);
        // Once released it goes. A process another test of this binary
        // starts meanwhile holds a copy of every descriptor until it execs
        // (close-on-exec), the lock's too: a prune then finds it busy, as it
        // should, and the next one removes it.
        let gone = (0..100).any(|_| {
            let p = prune(c, Limits { max_size: 0, max_age: None }).unwrap();
            p.busy == 0 || {
                std::thread::sleep(Duration::from_millis(20));
                false
            }
        });
        assert!(gone && !c.join("layers/b").exists());
        assert_eq!(fs::read_dir(c.join("layers")).unwrap().count(), 0);
    }
}
