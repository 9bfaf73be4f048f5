//! Where blobs live: a directory or a tar file (docker-archive). Paths given
//! here come from the image's own JSON and are only ever looked up, never
//! joined onto the host filesystem unchecked.

use std::collections::HashMap;
use std::fs::File;
use std::io::{Read, Seek, SeekFrom};
use std::path::{Component, Path, PathBuf};

use crate::digest::VerifyingReader;
use crate::error::{io_err, Error, Result};
use crate::source::{Image, ImageSource, Layer};

pub(crate) trait Store {
    /// Opens the file at `unsafe_rel` (relative, `/`-separated) with its size,
    /// or `None` when it does not exist.
    fn open(&self, unsafe_rel: &str) -> Result<Option<(Box<dyn Read + Send + '_>, u64)>>;
    /// A name for messages.
    fn location(&self) -> String;

    fn read_all(&self, unsafe_rel: &str, limit: u64) -> Result<Option<Vec<u8>>> {
        let Some((mut r, size)) = self.open(unsafe_rel)? else { return Ok(None) };
        if size > limit {
            return Err(Error::Invalid(format!("{}: {unsafe_rel} is {size} bytes, larger than the limit of {limit}", self.location())));
        }
        let mut buf = Vec::with_capacity(size as usize);
        r.read_to_end(&mut buf).map_err(io_err(Path::new(&self.location()).join(unsafe_rel)))?;
        Ok(Some(buf))
    }
}

/// A plain directory, such as an OCI image layout.
pub(crate) struct DirStore {
    pub root: PathBuf,
}

/// Joins a relative path onto `root`, refusing absolute paths and `..`.
pub(crate) fn scoped_join(root: &Path, unsafe_rel: &str) -> Option<PathBuf> {
    let rel = Path::new(unsafe_rel);
    if rel.components().all(|c| matches!(c, Component::Normal(_) | Component::CurDir)) {
        Some(root.join(rel))
    } else {
        None
    }
}

/// Opens `rel` below `root` for reading without following any symlink and
/// without leaving `root` (`openat2` with `RESOLVE_BENEATH` and
/// `RESOLVE_NO_SYMLINKS`), and without blocking on a FIFO.
fn open_beneath(root: &Path, rel: &str) -> std::io::Result<File> {
    use rustix::fs::{openat2, Mode, OFlags, ResolveFlags};
    let dir = rustix::fs::open(root, OFlags::PATH | OFlags::DIRECTORY | OFlags::CLOEXEC, Mode::empty())?;
    let how = ResolveFlags::BENEATH | ResolveFlags::NO_SYMLINKS | ResolveFlags::NO_MAGICLINKS;
    let fd = openat2(&dir, rel, OFlags::RDONLY | OFlags::CLOEXEC | OFlags::NOFOLLOW | OFlags::NONBLOCK | OFlags::NOCTTY, Mode::empty(), how)?;
    Ok(File::from(fd))
}

impl Store for DirStore {
    fn open(&self, unsafe_rel: &str) -> Result<Option<(Box<dyn Read + Send + '_>, u64)>> {
        let Some(path) = scoped_join(&self.root, unsafe_rel) else {
            return Err(Error::Invalid(format!("{}: refusing path `{unsafe_rel}`", self.location())));
        };
        match open_beneath(&self.root, unsafe_rel) {
            Ok(f) => {
                let meta = f.metadata().map_err(io_err(&path))?;
                if !meta.is_file() {
                    return Err(Error::Invalid(format!("{} is not a regular file", path.display())));
                }
                Ok(Some((Box::new(f), meta.len())))
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) if e.raw_os_error() == Some(rustix::io::Errno::LOOP.raw_os_error()) || e.raw_os_error() == Some(rustix::io::Errno::XDEV.raw_os_error()) => {
                Err(Error::Invalid(format!("{} is a symlink or leaves {}: a layout's files must be regular files inside it", path.display(), self.root.display())))
            }
            Err(e) => Err(io_err(path)(e)),
        }
    }

    fn location(&self) -> String {
        self.root.display().to_string()
    }
}

/// An uncompressed tar file, indexed once so members can be read at random.
pub(crate) struct TarStore {
    path: PathBuf,
    members: HashMap<String, (u64, u64)>,
}

impl TarStore {
    pub fn open(path: &Path) -> Result<TarStore> {
        let file = File::open(path).map_err(io_err(path))?;
        let mut archive = tar::Archive::new(std::io::BufReader::new(file));
        let mut members = HashMap::new();
        let bad = |e: std::io::Error| Error::Invalid(format!("{}: not a readable tar archive: {}", path.display(), crate::text::tar_error(&e)));
        for entry in archive.entries_with_seek().map_err(bad)? {
            let entry = entry.map_err(bad)?;
            if !matches!(entry.header().entry_type(), tar::EntryType::Regular | tar::EntryType::Continuous) {
                continue;
            }
            let name = entry.path().map_err(bad)?.to_string_lossy().trim_start_matches("./").to_string();
            members.insert(name, (entry.raw_file_position(), entry.size()));
        }
        if members.is_empty() {
            return Err(Error::Invalid(format!("{}: empty or not a tar archive", path.display())));
        }
        Ok(TarStore { path: path.to_path_buf(), members })
    }
}

impl Store for TarStore {
    fn open(&self, unsafe_rel: &str) -> Result<Option<(Box<dyn Read + Send + '_>, u64)>> {
        let key = unsafe_rel.trim_start_matches("./");
        let Some(&(offset, size)) = self.members.get(key) else { return Ok(None) };
        let mut f = File::open(&self.path).map_err(io_err(&self.path))?;
        f.seek(SeekFrom::Start(offset)).map_err(io_err(&self.path))?;
        Ok(Some((Box::new(f.take(size)), size)))
    }

    fn location(&self) -> String {
        self.path.display().to_string()
    }
}

/// An image read from a directory or an archive.
pub struct StoreSource {
    pub(crate) store: Box<dyn Store>,
    pub(crate) image: Image,
    /// Where each layer's blob is in the store, by layer index.
    pub(crate) layer_paths: Vec<String>,
}

impl ImageSource for StoreSource {
    fn image(&self) -> &Image {
        &self.image
    }

    fn open_layer(&self, layer: &Layer) -> Result<Box<dyn Read + Send + '_>> {
        let path = &self.layer_paths[layer.index];
        let (r, size) = self.store.open(path)?.ok_or_else(|| Error::MissingBlob {
            digest: layer.digest.to_string(),
            location: self.store.location(),
        })?;
        Ok(Box::new(VerifyingReader::new(r, layer.digest.clone(), Some(layer.size.unwrap_or(size)))))
    }
}
