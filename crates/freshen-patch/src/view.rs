//! An image's files as the apt engine reads them.

use freshen_apt::RootView;
use freshen_image::{Interest, NodeKind, RootFiles};

/// An image's sparse file view as the apt engine reads it.
pub struct View(pub RootFiles);

impl RootView for View {
    fn read(&self, path: &str) -> Option<&[u8]> {
        self.0.read(path)
    }
    fn list(&self, dir: &str) -> Vec<String> {
        self.0.list(dir)
    }
    fn layer_of(&self, path: &str) -> Option<usize> {
        self.0.layer_of(path)
    }
    fn mtime(&self, path: &str) -> Option<u64> {
        self.0.lookup(path).filter(|(_, n)| !matches!(n.kind, NodeKind::Symlink(_))).map(|(_, n)| n.mtime)
    }
    fn status_versions(&self) -> Vec<(usize, &[u8])> {
        self.0.versions.iter().filter(|v| v.path == "var/lib/dpkg/status").map(|v| (v.layer, v.data.as_slice())).collect()
    }
}

/// The files the apt engine reads from an image.
pub(crate) fn interest() -> Interest<'static> {
    Interest { paths: freshen_apt::system::PATHS, keep_versions: freshen_apt::system::VERSIONED_PATHS }
}
