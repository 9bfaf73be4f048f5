//! A sparse view of an image's root filesystem: only the paths a caller asks
//! for, read by streaming each layer once in order and applying OCI
//! whiteouts, never unpacking to disk. The same view is built from a plain
//! directory for `dir:` references.

use std::collections::BTreeMap;
use std::io::{self, BufRead, BufReader, Read};
use std::path::Path;

use crate::error::{io_err, Error, Result};
use crate::source::ImageSource;

/// Largest single file kept in memory (a dpkg status of a big image is a few MB).
const FILE_LIMIT: u64 = 256 << 20;
/// Most bytes of files read into memory over a whole image, copies kept
/// per layer included (125 layers each rewriting a 3 MB dpkg status take
/// 750 MB).
pub const TOTAL_LIMIT: u64 = 1 << 30;
const WHITEOUT_PREFIX: &str = ".wh.";
const OPAQUE_WHITEOUT: &str = ".wh..wh..opq";

/// Which paths to keep. Paths are relative to the root, `/`-separated,
/// without a leading `/`.
pub struct Interest<'a> {
    /// Exact paths, or directory prefixes ending in `/` (everything below).
    pub paths: &'a [&'a str],
    /// Exact paths whose every version, layer by layer, is also kept.
    pub keep_versions: &'a [&'a str],
}

impl Interest<'_> {
    fn wants(&self, path: &str) -> bool {
        self.paths.iter().any(|p| if p.ends_with('/') { path.starts_with(p) } else { path == *p })
    }

    /// A path on the way to something wanted: kept when it is a symlink.
    fn leads_to(&self, path: &str) -> bool {
        self.paths.iter().any(|p| p.len() > path.len() && p.starts_with(path) && p.as_bytes()[path.len()] == b'/')
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum NodeKind {
    File(Vec<u8>),
    Symlink(String),
    Dir,
}

#[derive(Clone, Debug)]
pub struct Node {
    pub kind: NodeKind,
    /// The layer that last wrote this path (`None` for a directory source).
    pub layer: Option<usize>,
    /// Modification time, seconds since the epoch.
    pub mtime: u64,
}

/// One version of a tracked file, as a layer wrote it.
#[derive(Clone, Debug)]
pub struct FileVersion {
    pub path: String,
    pub layer: usize,
    pub data: Vec<u8>,
}

/// The kept files of a root filesystem.
#[derive(Clone, Debug, Default)]
pub struct RootFiles {
    nodes: BTreeMap<String, Node>,
    /// Every version of the `keep_versions` paths, bottom layer first.
    pub versions: Vec<FileVersion>,
    /// Bytes of files read into memory so far (see [`TOTAL_LIMIT`]).
    read: u64,
}

fn normalize(path: &str) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for c in path.split('/') {
        match c {
            "" | "." => {}
            ".." => {
                out.pop();
            }
            c => out.push(c.to_string()),
        }
    }
    out
}

impl RootFiles {
    /// Looks a path up, following symlinks (within the root) in every component.
    pub fn lookup(&self, path: &str) -> Option<(String, &Node)> {
        let mut comps = normalize(path);
        let mut hops = 0;
        'restart: loop {
            for i in 0..comps.len() {
                let prefix = comps[..=i].join("/");
                if let Some(Node { kind: NodeKind::Symlink(target), .. }) = self.nodes.get(&prefix) {
                    hops += 1;
                    if hops > 40 {
                        return None;
                    }
                    let base = if target.starts_with('/') { String::new() } else { comps[..i].join("/") };
                    let mut next = normalize(&format!("{base}/{target}"));
                    next.extend(comps[i + 1..].iter().cloned());
                    comps = next;
                    continue 'restart;
                }
            }
            let key = comps.join("/");
            return self.nodes.get(&key).map(|n| (key, n));
        }
    }

    /// The contents of a regular file, following symlinks.
    pub fn read(&self, path: &str) -> Option<&[u8]> {
        match self.lookup(path) {
            Some((_, Node { kind: NodeKind::File(data), .. })) => Some(data),
            _ => None,
        }
    }

    /// The layer that wrote the file at `path` (after following symlinks).
    pub fn layer_of(&self, path: &str) -> Option<usize> {
        self.lookup(path).and_then(|(_, n)| n.layer)
    }

    /// Whether anything (file, link or directory) is at `path`.
    pub fn exists(&self, path: &str) -> bool {
        self.lookup(path).is_some() || {
            let (dir, _) = self.resolve_dir(path);
            self.nodes.range(format!("{dir}/")..).next().is_some_and(|(k, _)| k.starts_with(&format!("{dir}/")))
        }
    }

    fn resolve_dir(&self, dir: &str) -> (String, ()) {
        match self.lookup(dir) {
            Some((k, _)) => (k, ()),
            None => (normalize(dir).join("/"), ()),
        }
    }

    /// Names of the direct children of a directory, sorted.
    pub fn list(&self, dir: &str) -> Vec<String> {
        let (dir, _) = self.resolve_dir(dir);
        let prefix = if dir.is_empty() { String::new() } else { format!("{dir}/") };
        let mut out: Vec<String> = Vec::new();
        for (k, _) in self.nodes.range(prefix.clone()..) {
            let Some(rest) = k.strip_prefix(&prefix) else { break };
            let name = rest.split('/').next().unwrap_or(rest);
            if !name.is_empty() && out.last().map(String::as_str) != Some(name) {
                out.push(name.to_string());
            }
        }
        out
    }

    /// Node metadata without following the last symlink.
    pub fn node(&self, path: &str) -> Option<&Node> {
        self.nodes.get(&normalize(path).join("/"))
    }

    fn remove_below(&mut self, dir: &str) {
        let prefix = format!("{dir}/");
        let doomed: Vec<String> = self.nodes.range(prefix.clone()..).take_while(|(k, _)| k.starts_with(&prefix)).map(|(k, _)| k.clone()).collect();
        for k in doomed {
            self.nodes.remove(&k);
        }
    }
}

/// Decompresses a layer blob of `compressed` bytes by sniffing its first
/// bytes: gzip, zstd or plain tar. A compressed stream may inflate only to
/// [`crate::inflate::limit`] bytes.
pub fn decompress<'a>(raw: Box<dyn Read + 'a>, compressed: Option<u64>) -> io::Result<Box<dyn Read + 'a>> {
    let mut buf = BufReader::with_capacity(256 << 10, raw);
    let head = buf.fill_buf()?;
    let inflated: Box<dyn Read + 'a> = if head.starts_with(&[0x1f, 0x8b]) {
        Box::new(flate2::bufread::MultiGzDecoder::new(buf))
    } else if head.starts_with(&[0x28, 0xb5, 0x2f, 0xfd]) {
        Box::new(zstd::stream::read::Decoder::with_buffer(buf)?)
    } else {
        return Ok(Box::new(buf));
    };
    let limit = crate::inflate::limit(compressed);
    Ok(Box::new(crate::inflate::Bounded { inner: inflated, left: limit, limit, compressed }))
}

/// Streams every layer of an image, bottom first, and keeps what `interest` names.
pub fn read_image_files(source: &dyn ImageSource, interest: &Interest) -> Result<RootFiles> {
    read_layers_files(source, &source.image().layers, interest)
}

/// As [`read_image_files`], over the given layers only (e.g. the original
/// layers of a patched image).
pub fn read_layers_files(source: &dyn ImageSource, layers: &[crate::Layer], interest: &Interest) -> Result<RootFiles> {
    let mut files = RootFiles::default();
    for layer in layers {
        let raw = source.open_layer(layer)?;
        let layer_err = |e: io::Error| Error::Layer { index: layer.index, digest: layer.digest.to_string(), reason: crate::text::tar_error(&e) };
        // Reading and hashing run on their own thread, decompression and
        // the tar walk on this one.
        pipelined(raw, |raw| {
            // The uncompressed stream must hash to the config's diff id.
            let mut stream: Box<dyn Read> = match &layer.diff_id {
                Some(d) => Box::new(DiffIdCheck(crate::digest::VerifyingReader::new(decompress(Box::new(raw), layer.size)?, d.clone(), None))),
                None => decompress(Box::new(raw), layer.size)?,
            };
            apply_layer(&mut files, &mut stream, layer.index, interest)?;
            // Read what the tar reader left (padding, trailing blocks) so the
            // digest and size checks at the end of the blob always run.
            io::copy(&mut stream, &mut io::sink()).map(|_| ())
        })
        .map_err(layer_err)?;
    }
    Ok(files)
}

/// The uncompressed stream checked against the config's diff id; a
/// mismatch says so.
struct DiffIdCheck<R>(crate::digest::VerifyingReader<R>);

impl<R: Read> Read for DiffIdCheck<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        self.0.read(buf).map_err(|e| if e.kind() == io::ErrorKind::InvalidData { io::Error::new(e.kind(), format!("the uncompressed layer does not match the config's diff id ({e})")) } else { e })
    }
}

const CHUNK: usize = 1 << 20;

/// Runs `consume` on the bytes of `r`, with `r` read on a second thread.
/// Errors of `r` (such as a digest mismatch at its end) reach `consume` as
/// read errors, in order.
fn pipelined<T>(mut r: Box<dyn Read + Send + '_>, consume: impl FnOnce(ChannelReader) -> io::Result<T>) -> io::Result<T> {
    std::thread::scope(|s| {
        let (tx, rx) = std::sync::mpsc::sync_channel::<io::Result<Vec<u8>>>(4);
        s.spawn(move || loop {
            let mut buf = vec![0u8; CHUNK];
            let mut filled = 0;
            let res = loop {
                match r.read(&mut buf[filled..]) {
                    Ok(0) => break Ok(()),
                    Ok(n) => {
                        filled += n;
                        if filled == buf.len() {
                            break Ok(());
                        }
                    }
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                    Err(e) => break Err(e),
                }
            };
            buf.truncate(filled);
            let done = filled == 0 || res.is_err();
            let msg = match res {
                Err(e) if filled == 0 => Err(e),
                Err(e) => {
                    let _ = tx.send(Ok(buf));
                    Err(e)
                }
                Ok(()) => Ok(buf),
            };
            if tx.send(msg).is_err() || done {
                return;
            }
        });
        consume(ChannelReader { rx, cur: Vec::new(), pos: 0, eof: false })
    })
}

struct ChannelReader {
    rx: std::sync::mpsc::Receiver<io::Result<Vec<u8>>>,
    cur: Vec<u8>,
    pos: usize,
    eof: bool,
}

impl Read for ChannelReader {
    fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
        while self.pos == self.cur.len() {
            if self.eof {
                return Ok(0);
            }
            match self.rx.recv() {
                Ok(Ok(chunk)) if chunk.is_empty() => self.eof = true,
                Ok(Ok(chunk)) => {
                    self.cur = chunk;
                    self.pos = 0;
                }
                Ok(Err(e)) => {
                    self.eof = true;
                    return Err(e);
                }
                Err(_) => self.eof = true,
            }
        }
        let n = out.len().min(self.cur.len() - self.pos);
        out[..n].copy_from_slice(&self.cur[self.pos..self.pos + n]);
        self.pos += n;
        Ok(n)
    }
}

fn apply_layer(files: &mut RootFiles, stream: &mut dyn Read, layer: usize, interest: &Interest) -> io::Result<()> {
    let mut archive = tar::Archive::new(crate::targuard::TarGuard::new(stream));
    let mut added: BTreeMap<String, Node> = BTreeMap::new();
    let mut whiteouts: Vec<String> = Vec::new();
    let mut opaque: Vec<String> = Vec::new();
    let mut versions = Vec::new();
    for entry in archive.entries()? {
        let mut entry = entry?;
        let raw_path = entry.path()?.to_string_lossy().into_owned();
        if raw_path.split('/').any(|c| c == "..") {
            continue; // cannot name anything inside the root
        }
        let path = normalize(&raw_path).join("/");
        if path.is_empty() {
            continue;
        }
        let (parent, name) = match path.rsplit_once('/') {
            Some((p, n)) => (p.to_string(), n),
            None => (String::new(), path.as_str()),
        };
        if name == OPAQUE_WHITEOUT {
            opaque.push(parent);
            continue;
        }
        if let Some(hidden) = name.strip_prefix(WHITEOUT_PREFIX) {
            whiteouts.push(if parent.is_empty() { hidden.to_string() } else { format!("{parent}/{hidden}") });
            continue;
        }
        let kind = entry.header().entry_type();
        let wanted = interest.wants(&path);
        let mtime = entry.header().mtime().unwrap_or(0);
        let node = match kind {
            tar::EntryType::Regular | tar::EntryType::Continuous if wanted => {
                if entry.size() > FILE_LIMIT {
                    return Err(io::Error::new(io::ErrorKind::InvalidData, format!("{} is larger than {FILE_LIMIT} bytes", crate::text::escape(&path))));
                }
                let keep = interest.keep_versions.contains(&path.as_str());
                files.read += entry.size() * if keep { 2 } else { 1 };
                if files.read > TOTAL_LIMIT {
                    return Err(io::Error::new(
                        io::ErrorKind::InvalidData,
                        format!("the files read into memory (apt configuration, keyrings, dpkg status) pass {} MiB in all at {}", TOTAL_LIMIT >> 20, crate::text::escape(&path)),
                    ));
                }
                let mut data = Vec::with_capacity(entry.size() as usize);
                entry.read_to_end(&mut data)?;
                if keep {
                    versions.push(FileVersion { path: path.clone(), layer, data: data.clone() });
                }
                NodeKind::File(data)
            }
            tar::EntryType::Link if wanted => {
                let target = entry.link_name()?.map(|p| normalize(&p.to_string_lossy()).join("/")).unwrap_or_default();
                match added.get(&target) {
                    Some(n) => n.kind.clone(),
                    None => continue,
                }
            }
            tar::EntryType::Symlink if wanted || interest.leads_to(&path) => {
                NodeKind::Symlink(entry.link_name()?.map(|p| p.to_string_lossy().into_owned()).unwrap_or_default())
            }
            tar::EntryType::Directory => NodeKind::Dir,
            _ => {
                // Not kept, but a non-directory here still hides whatever the
                // lower layers had at and below this path.
                if wanted || interest.leads_to(&path) {
                    added.remove(&path);
                    whiteouts.push(path);
                }
                continue;
            }
        };
        if node == NodeKind::Dir && !(wanted || interest.leads_to(&path)) {
            continue;
        }
        added.insert(path, Node { kind: node, layer: Some(layer), mtime });
    }
    // Whiteouts and opaque directories hide lower layers only.
    for dir in opaque {
        files.remove_below(&dir);
    }
    for path in whiteouts {
        files.nodes.remove(&path);
        files.remove_below(&path);
    }
    for (path, node) in added {
        match node.kind {
            NodeKind::Dir => {
                // A directory over a lower non-directory replaces it.
                if files.nodes.get(&path).is_some_and(|n| n.kind != NodeKind::Dir) {
                    files.nodes.remove(&path);
                }
            }
            _ => files.remove_below(&path),
        }
        files.nodes.insert(path, node);
    }
    files.versions.extend(versions);
    Ok(())
}

/// Builds the same view from a directory, never following symlinks out of it.
pub fn read_dir_files(root: &Path, interest: &Interest) -> Result<RootFiles> {
    let meta = std::fs::metadata(root).map_err(io_err(root))?;
    if !meta.is_dir() {
        return Err(Error::Invalid(format!("{} is not a directory", root.display())));
    }
    let mut files = RootFiles::default();
    // Symlinked ancestors of wanted paths (e.g. /var/run -> /run).
    let mut seen = std::collections::BTreeSet::new();
    for p in interest.paths {
        let comps: Vec<&str> = p.trim_end_matches('/').split('/').collect();
        for i in 1..comps.len() {
            let rel = comps[..i].join("/");
            if seen.insert(rel.clone()) {
                add_path(&mut files, root, &rel, interest, 0, true)?;
            }
        }
        add_path(&mut files, root, p.trim_end_matches('/'), interest, 0, false)?;
    }
    Ok(files)
}

fn add_path(files: &mut RootFiles, root: &Path, rel: &str, interest: &Interest, depth: usize, links_only: bool) -> Result<()> {
    use std::os::unix::fs::MetadataExt;
    let full = root.join(rel);
    let meta = match std::fs::symlink_metadata(&full) {
        Ok(m) => m,
        Err(e) if e.kind() == io::ErrorKind::NotFound || e.kind() == io::ErrorKind::NotADirectory => return Ok(()),
        Err(e) => return Err(io_err(full)(e)),
    };
    let mtime = meta.mtime().max(0) as u64;
    let ft = meta.file_type();
    if ft.is_symlink() {
        let target = std::fs::read_link(&full).map_err(io_err(&full))?;
        files.nodes.insert(rel.to_string(), Node { kind: NodeKind::Symlink(target.to_string_lossy().into_owned()), layer: None, mtime });
    } else if links_only {
    } else if ft.is_file() {
        if meta.len() > FILE_LIMIT {
            return Err(Error::Invalid(format!("{} is larger than {FILE_LIMIT} bytes", full.display())));
        }
        match std::fs::read(&full) {
            Ok(data) => {
                files.nodes.insert(rel.to_string(), Node { kind: NodeKind::File(data), layer: None, mtime });
            }
            // Unreadable files (e.g. root-only keyrings when not root) are skipped.
            Err(e) if e.kind() == io::ErrorKind::PermissionDenied => {}
            Err(e) => return Err(io_err(full)(e)),
        }
    } else if ft.is_dir() && depth < 16 {
        files.nodes.insert(rel.to_string(), Node { kind: NodeKind::Dir, layer: None, mtime });
        let rd = match std::fs::read_dir(&full) {
            Ok(rd) => rd,
            Err(e) if e.kind() == io::ErrorKind::PermissionDenied => return Ok(()),
            Err(e) => return Err(io_err(full)(e)),
        };
        let mut names: Vec<String> = rd.filter_map(|e| e.ok()).map(|e| e.file_name().to_string_lossy().into_owned()).collect();
        names.sort();
        for name in names {
            let child = format!("{rel}/{name}");
            if interest.wants(&child) || interest.leads_to(&child) {
                add_path(files, root, &child, interest, depth + 1, false)?;
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// (path, file contents, symlink target).
    type Entry<'a> = (&'a str, Option<&'a [u8]>, Option<&'a str>);

    fn tar_of(entries: &[Entry]) -> Vec<u8> {
        let mut b = tar::Builder::new(Vec::new());
        for (path, data, link) in entries {
            let mut h = tar::Header::new_ustar();
            if let Some(l) = link {
                h.set_entry_type(tar::EntryType::Symlink);
                h.set_size(0);
                b.append_link(&mut h, path, l).unwrap();
            } else if let Some(d) = data {
                h.set_size(d.len() as u64);
                h.set_mode(0o644);
                h.set_cksum();
                b.append_data(&mut h, path, *d).unwrap();
            } else {
                h.set_entry_type(tar::EntryType::Directory);
                h.set_size(0);
                h.set_mode(0o755);
                h.set_cksum();
                b.append_data(&mut h, path, &[][..]).unwrap();
            }
        }
        b.into_inner().unwrap()
    }

    #[test]
    fn whiteouts_and_symlinks() {
        let interest = Interest { paths: &["etc/apt/", "etc/os-release", "usr/lib/os-release"], keep_versions: &[] };
        let mut files = RootFiles::default();
        let l0 = tar_of(&[
            ("etc/apt/sources.list", Some(b"a"), None),
            ("etc/apt/sources.list.d/x.list", Some(b"x"), None),
            ("etc/apt/sources.list.d/y.list", Some(b"y"), None),
            ("etc/os-release", None, Some("../usr/lib/os-release")),
            ("usr/lib/os-release", Some(b"ID=debian"), None),
            ("etc/other", Some(b"no"), None),
        ]);
        apply_layer(&mut files, &mut &l0[..], 0, &interest).unwrap();
        assert_eq!(files.read("etc/os-release"), Some(&b"ID=debian"[..]));
        assert_eq!(files.read("etc/other"), None);
        assert_eq!(files.list("etc/apt/sources.list.d"), vec!["x.list", "y.list"]);
        let l1 = tar_of(&[
            ("etc/apt/.wh.sources.list", Some(b""), None),
            ("etc/apt/sources.list.d/.wh..wh..opq", Some(b""), None),
            ("etc/apt/sources.list.d/z.list", Some(b"z"), None),
        ]);
        apply_layer(&mut files, &mut &l1[..], 1, &interest).unwrap();
        assert_eq!(files.read("etc/apt/sources.list"), None);
        assert_eq!(files.list("etc/apt/sources.list.d"), vec!["z.list"]);
        assert_eq!(files.layer_of("etc/apt/sources.list.d/z.list"), Some(1));
        assert_eq!(files.layer_of("etc/os-release"), Some(0));
    }
}
