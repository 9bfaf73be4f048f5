//! The `.deb` of every planned update, downloaded before the sandbox runs
//! (checked against the SHA256 of the signed index) and put in apt's
//! archives directory, so apt in the sandbox needs no network.

use std::path::{Path, PathBuf};

use freshen_apt::{Fetcher, Update};

use crate::error::{io_err, Error, Result};

/// Downloads (or finds in the cache) the `.deb`s of `todo`, with a
/// progress task, and links them into `archives` (apt's `archives/`).
pub(crate) fn stage(fetcher: &Fetcher, offers: &freshen_apt::archive::Offers, todo: &[(usize, &Update)], progress: &dyn freshen_image::Progress, archives: &Path) -> Result<()> {
    // Reading changelogs while planning already downloaded most of them.
    let missing: Vec<u64> = todo.iter().filter(|(_, u)| !freshen_apt::deb_path(fetcher, u).is_file()).map(|(_, u)| u.candidate.size).collect();
    let task = progress.begin(&format!("download {} packages", todo.len()), Some(missing.iter().sum()));
    let debs = prefetch(fetcher, offers, todo, task.as_ref())?;
    task.finish(&if missing.is_empty() { "all in the cache".to_string() } else { String::new() });
    for ((_, u), deb) in todo.iter().zip(debs) {
        let dest = archives.join(archive_name(u));
        std::fs::hard_link(&deb, &dest).or_else(|_| std::fs::copy(&deb, &dest).map(|_| ())).map_err(io_err(&dest))?;
    }
    Ok(())
}

/// The file name apt gives a package in its archives directory.
fn archive_name(u: &Update) -> String {
    format!("{}_{}_{}.deb", u.package, u.candidate.version.to_string().replace(':', "%3a"), u.candidate.arch)
}

/// Downloads (or finds in the cache) the `.deb` of every planned update,
/// each checked against the SHA256 of the signed index, four at a time.
/// `task` counts the bytes of the ones not yet in the cache.
fn prefetch(fetcher: &Fetcher, offers: &freshen_apt::archive::Offers, todo: &[(usize, &Update)], task: &dyn freshen_image::Task) -> Result<Vec<PathBuf>> {
    let next = std::sync::atomic::AtomicUsize::new(0);
    let mut results: Vec<Option<Result<PathBuf>>> = (0..todo.len()).map(|_| None).collect();
    let done: Vec<(usize, Result<PathBuf>)> = std::thread::scope(|scope| {
        let workers: Vec<_> = (0..4.min(todo.len()))
            .map(|_| {
                scope.spawn(|| {
                    let mut out = Vec::new();
                    loop {
                        let i = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                        let Some((_, u)) = todo.get(i) else { break };
                        if !freshen_apt::deb_path(fetcher, u).is_file() {
                            task.inc(u.candidate.size);
                        }
                        out.push((i, freshen_apt::fetch_deb(fetcher, offers, u).map_err(|e| Error::Invalid(format!("downloading {} {}: {e}", u.package, u.candidate.version)))));
                    }
                    out
                })
            })
            .collect();
        workers.into_iter().flat_map(|w| w.join().unwrap_or_default()).collect()
    });
    for (i, r) in done {
        results[i] = Some(r);
    }
    results.into_iter().map(|r| r.unwrap_or_else(|| Err(Error::Invalid("a download worker failed".into())))).collect()
}
