//! The repositories of an image's `file:` apt sources (`deb file:/srv/repo
//! ./`), read from the image itself as apt in the image reads them, so the
//! archive code verifies them like any mirror (signature, hashes).

use std::sync::Arc;

use freshen_apt::fetch::LocalFiles;
use freshen_apt::{Fetcher, System};
use freshen_image::{Interest, RootFiles};

use crate::error::Result;
use crate::view::View;

/// An image's files below the directories of its `file:` sources.
struct LocalRepos(RootFiles);

impl LocalFiles for LocalRepos {
    fn read(&self, path: &str) -> Option<Vec<u8>> {
        self.0.read(path).map(<[u8]>::to_vec)
    }
}

/// The directories (`srv/repo/`) of the `file:` sources `view` names.
fn local_dirs(view: &View) -> Vec<String> {
    let Ok(system) = System::load(view) else { return Vec::new() };
    let mut dirs: Vec<String> = system
        .sources
        .iter()
        .filter_map(|s| freshen_apt::fetch::file_path(&s.uri))
        .map(|p| format!("{}/", p.trim_end_matches('/')))
        .filter(|p| p != "/")
        .collect();
    dirs.sort();
    dirs.dedup();
    dirs
}

/// When the sources in `view` name `file:` repositories, reads their
/// directories with `read` (one more pass over the image's layers) and
/// lets `fetcher` serve them.
pub fn attach_local_repos(fetcher: &Fetcher, view: &View, read: impl FnOnce(&Interest) -> freshen_image::Result<RootFiles>) -> Result<()> {
    let dirs = local_dirs(view);
    if dirs.is_empty() {
        return Ok(());
    }
    let paths: Vec<&str> = dirs.iter().map(String::as_str).collect();
    let files = read(&Interest { paths: &paths, keep_versions: &[] })?;
    fetcher.set_local_files(Arc::new(LocalRepos(files)));
    Ok(())
}
