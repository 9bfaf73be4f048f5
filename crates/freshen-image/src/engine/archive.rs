//! A few files of an image, read through a container created from it and
//! never started (`POST /containers/create`, then `GET
//! /containers/{id}/archive?path=...` per wanted path, then `DELETE`):
//! the Engine reads them from its own layer store, so nothing is exported.
//! What a scan reads (dpkg status, apt sources, keyrings, os-release) is a
//! few hundred kilobytes, however large the image.

use std::fs;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use super::{http, Engine};
use crate::error::{io_err, Error, Result};
use crate::files::{read_dir_files, Interest, RootFiles};
use crate::transport::Transport;

/// The files of image `name` (`NAME:TAG` or an id) that `interest` wants,
/// as [`read_dir_files`] gives them for a directory: symlinks are kept and
/// followed within the image's root only. The container is removed
/// whatever happens; those a killed run left are removed by the next
/// ([`reap`]), as its scratch directory is (named for the owner lock,
/// see [`crate::scratch`]).
pub fn read_files(name: &str, interest: &Interest, t: &Transport) -> Result<RootFiles> {
    static SEQ: AtomicU64 = AtomicU64::new(0);
    let engine = Engine::new(t)?;
    reap(t);
    let n = SEQ.fetch_add(1, Ordering::Relaxed);
    let owner = crate::scratch::owner();
    let container = format!("{PREFIX}{owner}-{n}");
    let body = serde_json::json!({
        "Image": name,
        "Entrypoint": ["/nonexistent"],
        "Cmd": [],
        "NetworkDisabled": true,
        "Labels": { LABEL: t.tmp_dir.to_string_lossy() },
        "HostConfig": { "NetworkMode": "none" },
    });
    let id = super::create_container(t, &container, &body).map_err(|e| Error::Invalid(format!("docker-daemon:{name}: {e}")))?;
    let dir = t.tmp_dir.join(format!("freshen-files-{owner}-{n}"));
    let read = fs::create_dir(&dir).map_err(io_err(&dir)).and_then(|()| fetch_into(&engine, name, &id, interest, &dir)).and_then(|()| read_dir_files(&dir, interest));
    let _ = fs::remove_dir_all(&dir);
    let removed = engine.call("DELETE", &format!("/containers/{}?force=1", http::escape(&id)), None).and_then(|r| engine.check(r, &format!("removing container {container}")));
    let files = read?;
    removed?;
    Ok(files)
}

/// The label of the containers [`read_files`] creates; its value is the
/// scratch directory whose owner locks tell whether their creator lives.
const LABEL: &str = "org.freshen.read-files";

/// Their names: the prefix, then `OWNER-N` ([`crate::scratch::owner`]).
const PREFIX: &str = "freshen-read-files-";

/// Removes the containers a killed run of this scratch directory left
/// (their owner's lock free); those of live runs, and of runs with another
/// scratch directory (which this one cannot judge), stay. Best effort: a
/// failure here does not stop the read.
fn reap(t: &Transport) {
    let Ok(containers) = super::containers::labelled_containers(t, &format!("{LABEL}={}", t.tmp_dir.to_string_lossy())) else { return };
    let me = crate::scratch::owner();
    for c in &containers {
        let owner = c.names.iter().find_map(|n| n.trim_start_matches('/').strip_prefix(PREFIX)?.rsplit_once('-').map(|(o, _)| o.to_string()));
        if owner.is_some_and(|o| o != me && crate::scratch::owner_gone(&t.tmp_dir, &o)) {
            let _ = super::remove_container(t, &c.id, true);
        }
    }
}

/// Unpacks each wanted path of container `id` under `dir`, a path the
/// image lacks skipped. The requests run at once: the Engine mounts the
/// container's root for each, which is most of their time.
fn fetch_into(engine: &Engine, name: &str, id: &str, interest: &Interest, dir: &Path) -> Result<()> {
    let paths = requests(interest);
    let fetch_all = |paths: &[String]| -> Vec<Result<Option<Vec<u8>>>> {
        std::thread::scope(|s| {
            let handles: Vec<_> = paths.iter().map(|path| s.spawn(move || fetch(engine, name, id, path))).collect();
            handles.into_iter().map(|h| h.join().unwrap_or_else(|_| Err(Error::Invalid(format!("docker-daemon:{name}: a reading thread panicked"))))).collect()
        })
    };
    let mut fetched: Vec<(String, Result<Option<Vec<u8>>>)> = paths.iter().cloned().zip(fetch_all(&paths)).collect();
    // A whole directory too large to read at once: its wanted paths one by one.
    let too_large: Vec<String> = fetched.iter().filter(|(p, r)| r.is_err() && WHOLE.contains(&p.as_str())).map(|(p, _)| p.clone()).collect();
    if !too_large.is_empty() {
        fetched.retain(|(p, _)| !too_large.contains(p));
        let below: Vec<String> = interest.paths.iter().map(|w| w.trim_end_matches('/').to_string()).filter(|w| too_large.iter().any(|d| w.starts_with(&format!("{d}/")))).collect();
        fetched.extend(below.iter().cloned().zip(fetch_all(&below)));
    }
    for (path, tar) in &fetched {
        let Some(tar) = tar.as_ref().map_err(|e| Error::Invalid(e.to_string()))? else { continue };
        let what = format!("docker-daemon:{name}: reading /{path}");
        // The archive names entries from the path's last component.
        let parent: PathBuf = Path::new(path).parent().map(|p| dir.join(p)).unwrap_or_else(|| dir.to_path_buf());
        fs::create_dir_all(&parent).map_err(io_err(&parent))?;
        let mut archive = tar::Archive::new(tar.as_slice());
        archive.set_preserve_permissions(false);
        archive.set_unpack_xattrs(false);
        archive.set_overwrite(true);
        let entries = archive.entries().map_err(|e| Error::Invalid(format!("{what}: {}", crate::text::tar_error(&e))))?;
        for entry in entries {
            let mut entry = entry.map_err(|e| Error::Invalid(format!("{what}: {}", crate::text::tar_error(&e))))?;
            // Only files, directories and symlinks; unpack_in refuses paths
            // that leave `parent`.
            use tar::EntryType::*;
            if !matches!(entry.header().entry_type(), Regular | Directory | Symlink) {
                continue;
            }
            entry.unpack_in(&parent).map_err(|e| Error::Invalid(format!("{what}: unpacking into {}: {e}", parent.display())))?;
        }
    }
    Ok(())
}

/// Directories read whole in one request, for every wanted path below
/// them: each request costs the Engine a mount of the container's root
/// (some 40 ms), whatever its size, and `/etc` is small.
const WHOLE: &[&str] = &["etc"];

/// The paths to ask the Engine for: the wanted ones, those below a
/// [`WHOLE`] directory replaced by it.
fn requests(interest: &Interest) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for wanted in interest.paths {
        let path = wanted.trim_end_matches('/');
        let path = WHOLE.iter().find(|w| path.strip_prefix(**w).is_some_and(|rest| rest.starts_with('/'))).map_or(path, |w| *w);
        if !out.iter().any(|p| p == path) {
            out.push(path.to_string());
        }
    }
    out
}

/// The tar of `/path` in container `id`, `None` when there is no such path.
fn fetch(engine: &Engine, name: &str, id: &str, path: &str) -> Result<Option<Vec<u8>>> {
    let what = format!("docker-daemon:{name}: reading /{path}");
    let resp = engine.call("GET", &format!("/containers/{}/archive?path=/{}", http::escape(id), http::escape(path)), None)?;
    if resp.status == 404 {
        let _ = engine.read_small(resp.body, &what);
        return Ok(None);
    }
    let resp = engine.check(resp, &what)?;
    engine.read_small(resp.body, &what).map(Some)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_below_etc_are_read_in_one_request() {
        let interest = Interest { paths: &["etc/os-release", "usr/lib/os-release", "etc/apt/", "var/lib/dpkg/status", "etc/machine-id", "etcetera"], keep_versions: &[] };
        assert_eq!(requests(&interest), ["etc", "usr/lib/os-release", "var/lib/dpkg/status", "etcetera"]);
    }
}
