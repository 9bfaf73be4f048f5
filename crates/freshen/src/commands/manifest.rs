//! What `freshen host install` wrote, so that `uninstall` removes exactly
//! that: each file with the SHA256 it was written with (a file changed
//! since is kept), each directory and link it created. Paths are as seen
//! from inside the root (`/etc/freshen/freshen.toml`); the manifest itself
//! is JSON in the state directory.

use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use serde::{Deserialize, Serialize};

/// The manifest's file name in the state directory.
pub const FILE: &str = "install.json";

#[derive(Default, Serialize, Deserialize, PartialEq, Debug, Clone)]
pub struct Manifest {
    /// Files, links and directories written, in the order they were.
    pub entries: Vec<Entry>,
    /// `systemctl enable --now freshen.service` ran.
    #[serde(default)]
    pub enabled: bool,
    /// The state and cache directories (`uninstall --purge` removes them).
    pub state_dir: PathBuf,
    pub cache_dir: PathBuf,
}

#[derive(Serialize, Deserialize, PartialEq, Debug, Clone)]
#[serde(tag = "kind", rename_all = "lowercase")]
pub enum Entry {
    File { path: PathBuf, sha256: String },
    Dir { path: PathBuf },
    Link { path: PathBuf, target: PathBuf },
}

impl Entry {
    pub fn path(&self) -> &Path {
        match self {
            Entry::File { path, .. } | Entry::Dir { path } | Entry::Link { path, .. } => path,
        }
    }
}

/// A path inside `root` (`/` for the host itself).
pub fn inside(root: &Path, path: &Path) -> PathBuf {
    root.join(path.strip_prefix("/").unwrap_or(path))
}

fn sha256(data: &[u8]) -> String {
    freshen_image::Digest::of(data).to_string()
}

/// Writes files, links and directories under a root, recording them, and
/// says what it did.
pub struct Writer<'a> {
    pub root: &'a Path,
    pub manifest: Manifest,
    /// What was done, one line each (`wrote ...`, `kept ...`).
    pub said: Vec<String>,
    /// Whether anything was written.
    pub changed: bool,
}

impl Writer<'_> {
    /// Runs `f`, telling whether it wrote anything.
    pub fn step<T>(&mut self, f: impl FnOnce(&mut Self) -> Result<T>) -> Result<(T, bool)> {
        let before = std::mem::take(&mut self.changed);
        let out = f(self)?;
        let changed = std::mem::replace(&mut self.changed, before);
        self.changed |= changed;
        Ok((out, changed))
    }

    fn record(&mut self, entry: Entry) {
        self.manifest.entries.retain(|e| e.path() != entry.path());
        self.manifest.entries.push(entry);
        self.changed = true;
    }

    /// Creates `path` and its missing parents with `mode`, recording those
    /// it created.
    pub fn dir(&mut self, path: &Path, mode: u32) -> Result<()> {
        let on_disk = inside(self.root, path);
        if on_disk.is_dir() {
            return Ok(());
        }
        if let Some(parent) = path.parent().filter(|p| *p != Path::new("/")) {
            self.dir(parent, 0o755)?;
        }
        std::fs::DirBuilder::new().mode(mode).create(&on_disk).with_context(|| format!("creating {}", on_disk.display()))?;
        std::fs::set_permissions(&on_disk, std::fs::Permissions::from_mode(mode)).with_context(|| format!("chmod {}", on_disk.display()))?;
        self.said.push(format!("created {} ({mode:04o})", on_disk.display()));
        self.record(Entry::Dir { path: path.to_path_buf() });
        Ok(())
    }

    /// Writes `content` to `path` with `mode` unless it holds that
    /// already. A file that differs is replaced only when it is as an
    /// earlier install wrote it and `replace` allows; otherwise kept.
    pub fn file(&mut self, path: &Path, content: &[u8], mode: u32, replace: bool) -> Result<()> {
        let on_disk = inside(self.root, path);
        let want = sha256(content);
        if let Ok(now) = std::fs::read(&on_disk) {
            let now = sha256(&now);
            let ours = self.manifest.entries.iter().any(|e| matches!(e, Entry::File { path: p, sha256 } if p == path && *sha256 == now));
            if now == want {
                if !ours && !self.manifest.entries.iter().any(|e| e.path() == path) {
                    self.said.push(format!("kept {}: already there, not written by freshen", on_disk.display()));
                }
                return Ok(());
            }
            if !(ours && replace) {
                self.said.push(format!("kept {}: it exists and differs from what freshen would write", on_disk.display()));
                return Ok(());
            }
        }
        if let Some(parent) = path.parent() {
            self.dir(parent, 0o755)?;
        }
        let tmp = on_disk.with_extension("freshen-new");
        let _ = std::fs::remove_file(&tmp);
        let write = || -> std::io::Result<()> {
            use std::io::Write;
            let mut f = std::fs::OpenOptions::new().write(true).create_new(true).mode(mode).open(&tmp)?;
            f.write_all(content)?;
            f.set_permissions(std::fs::Permissions::from_mode(mode))?;
            f.sync_all()?;
            std::fs::rename(&tmp, &on_disk)
        };
        write().with_context(|| format!("writing {}", on_disk.display()))?;
        self.said.push(format!("wrote {}", on_disk.display()));
        self.record(Entry::File { path: path.to_path_buf(), sha256: want });
        Ok(())
    }

    /// Makes `path` a symbolic link to `target` unless it is one already;
    /// anything else there is kept.
    pub fn link(&mut self, path: &Path, target: &Path) -> Result<()> {
        let on_disk = inside(self.root, path);
        match std::fs::read_link(&on_disk) {
            Ok(t) if t == target => return Ok(()),
            Ok(_) | Err(_) if on_disk.symlink_metadata().is_ok() => {
                self.said.push(format!("kept {}: it exists and is not a link to {}", on_disk.display(), target.display()));
                return Ok(());
            }
            _ => {}
        }
        if let Some(parent) = path.parent() {
            self.dir(parent, 0o755)?;
        }
        std::os::unix::fs::symlink(target, &on_disk).with_context(|| format!("linking {}", on_disk.display()))?;
        self.said.push(format!("linked {} -> {}", on_disk.display(), target.display()));
        self.record(Entry::Link { path: path.to_path_buf(), target: target.to_path_buf() });
        Ok(())
    }
}

/// Reads the manifest in `state_dir` (inside `root`), if there is one.
pub fn read(root: &Path, state_dir: &Path) -> Result<Option<Manifest>> {
    let path = inside(root, &state_dir.join(FILE));
    match std::fs::read(&path) {
        Ok(bytes) => Ok(Some(serde_json::from_slice(&bytes).with_context(|| format!("reading {}", path.display()))?)),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e).with_context(|| format!("reading {}", path.display())),
    }
}

/// Writes the manifest into its state directory (inside `root`).
pub fn write(root: &Path, manifest: &Manifest) -> Result<()> {
    let path = inside(root, &manifest.state_dir.join(FILE));
    let text = serde_json::to_vec_pretty(manifest)?;
    std::fs::write(&path, text).with_context(|| format!("writing {}", path.display()))?;
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).with_context(|| format!("chmod {}", path.display()))
}

/// Removes what `manifest` records, newest first: files only as they were
/// written, links only to what they pointed at, directories only when
/// empty. Says what it removed and what it kept.
pub fn remove(root: &Path, manifest: &Manifest, keep: &[&Path], said: &mut Vec<String>) {
    for entry in manifest.entries.iter().rev() {
        let on_disk = inside(root, entry.path());
        if keep.iter().any(|k| entry.path().starts_with(k)) {
            continue;
        }
        let result = match entry {
            Entry::File { sha256: want, .. } => match std::fs::read(&on_disk) {
                Ok(now) if sha256(&now) == *want => std::fs::remove_file(&on_disk).map(|_| true),
                Ok(_) => {
                    said.push(format!("kept {}: changed since it was installed", on_disk.display()));
                    continue;
                }
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
                Err(e) => Err(e),
            },
            Entry::Link { target, .. } => match std::fs::read_link(&on_disk) {
                Ok(t) if t == *target => std::fs::remove_file(&on_disk).map(|_| true),
                Ok(_) => {
                    said.push(format!("kept {}: it points elsewhere now", on_disk.display()));
                    continue;
                }
                Err(_) => continue,
            },
            Entry::Dir { .. } => match std::fs::remove_dir(&on_disk) {
                Ok(()) => Ok(true),
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
                Err(_) => {
                    said.push(format!("kept {}: not empty", on_disk.display()));
                    continue;
                }
            },
        };
        match result {
            Ok(_) => said.push(format!("removed {}", on_disk.display())),
            Err(e) => said.push(format!("kept {}: {e}", on_disk.display())),
        }
    }
}
