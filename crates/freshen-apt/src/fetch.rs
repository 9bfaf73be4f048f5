//! HTTP with a local cache. Release files are revalidated with conditional
//! requests (ETag / If-Modified-Since); indexes and packages are stored
//! under the SHA256 the signed Release or Packages file gives them, so a
//! cached copy is never fetched again and never trusted without its hash.

use std::collections::HashMap;
use std::fs::{self, File};
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::error::{io_err, Error, Result};

const SMALL_LIMIT: u64 = 64 << 20;

/// An HTTP client bound to a cache directory.
pub struct Fetcher {
    agent: ureq::Agent,
    cache: PathBuf,
    requests: AtomicUsize,
    /// What each revalidated URL said during this fetcher's life: one
    /// command works from one consistent snapshot of the archives even
    /// when they publish while it runs.
    seen: Mutex<HashMap<String, Option<Vec<u8>>>>,
}

#[derive(Serialize, Deserialize, Default)]
struct Meta {
    etag: Option<String>,
    last_modified: Option<String>,
}

pub(crate) fn sha256_hex(data: &[u8]) -> String {
    hex(&Sha256::digest(data))
}

pub(crate) fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Writes to a temporary file beside `dest` and renames it into place.
pub(crate) fn write_atomic(dest: &Path, data: &[u8]) -> Result<()> {
    let tmp = tmp_path(dest);
    let res = (|| {
        let mut f = File::create(&tmp)?;
        f.write_all(data)?;
        fs::rename(&tmp, dest)
    })();
    if res.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    res.map_err(io_err(dest.display()))
}

pub(crate) fn tmp_path(dest: &Path) -> PathBuf {
    let name = dest.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    dest.with_file_name(format!(".{name}.{}.tmp", std::process::id()))
}

impl Fetcher {
    pub fn new(cache: PathBuf) -> Fetcher {
        let agent: ureq::Agent = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .timeout_connect(Some(Duration::from_secs(15)))
            .timeout_global(Some(Duration::from_secs(600)))
            .user_agent(concat!("freshen/", env!("CARGO_PKG_VERSION")))
            .build()
            .into();
        Fetcher { agent, cache, requests: AtomicUsize::new(0), seen: Mutex::new(HashMap::new()) }
    }

    /// The cache directory.
    pub fn cache_dir(&self) -> &Path {
        &self.cache
    }

    /// How many HTTP requests this fetcher has sent.
    pub fn requests(&self) -> usize {
        self.requests.load(Ordering::Relaxed)
    }

    fn check_scheme(url: &str) -> Result<()> {
        if url.starts_with("http://") || url.starts_with("https://") {
            Ok(())
        } else {
            Err(Error::Invalid(format!("unsupported URI `{url}` (only http:// and https:// sources are supported)")))
        }
    }

    fn call(&self, url: &str, headers: &[(&str, String)]) -> Result<ureq::http::Response<ureq::Body>> {
        Self::check_scheme(url)?;
        self.requests.fetch_add(1, Ordering::Relaxed);
        let mut req = self.agent.get(url);
        for (k, v) in headers {
            req = req.header(*k, v);
        }
        req.call().map_err(|e| Error::Unreachable { url: url.to_string(), message: e.to_string() })
    }

    /// The body [`Fetcher::get_revalidated`] returned for `url` earlier in
    /// this fetcher's life (`None` if it was not asked for or was absent).
    pub fn seen(&self, url: &str) -> Option<Vec<u8>> {
        self.seen.lock().unwrap_or_else(|e| e.into_inner()).get(url).cloned().flatten()
    }

    /// Fetches a small document (Release, InRelease, Release.gpg),
    /// revalidating a cached copy once per fetcher: later calls return what
    /// the first one got. `None` when the server says 404.
    pub fn get_revalidated(&self, url: &str) -> Result<Option<Vec<u8>>> {
        if let Some(body) = self.seen.lock().unwrap_or_else(|e| e.into_inner()).get(url) {
            return Ok(body.clone());
        }
        let body = self.revalidate(url)?;
        self.seen.lock().unwrap_or_else(|e| e.into_inner()).insert(url.to_string(), body.clone());
        Ok(body)
    }

    fn revalidate(&self, url: &str) -> Result<Option<Vec<u8>>> {
        let dir = self.cache.join("http");
        fs::create_dir_all(&dir).map_err(io_err(dir.display()))?;
        let key = sha256_hex(url.as_bytes());
        let body_path = dir.join(&key);
        let meta_path = dir.join(format!("{key}.meta"));
        let cached = fs::read(&body_path).ok();
        let meta: Meta = fs::read(&meta_path).ok().and_then(|b| serde_json::from_slice(&b).ok()).unwrap_or_default();
        let mut headers = Vec::new();
        if cached.is_some() {
            if let Some(e) = &meta.etag {
                headers.push(("If-None-Match", e.clone()));
            }
            if let Some(l) = &meta.last_modified {
                headers.push(("If-Modified-Since", l.clone()));
            }
        }
        let mut resp = self.call(url, &headers)?;
        match resp.status().as_u16() {
            304 if cached.is_some() => Ok(cached),
            200 => {
                let header = |n: &str| resp.headers().get(n).and_then(|v| v.to_str().ok()).map(str::to_string);
                let new_meta = Meta { etag: header("etag"), last_modified: header("last-modified") };
                let body = resp
                    .body_mut()
                    .with_config()
                    .limit(SMALL_LIMIT)
                    .read_to_vec()
                    .map_err(|e| Error::Unreachable { url: url.to_string(), message: e.to_string() })?;
                write_atomic(&body_path, &body)?;
                write_atomic(&meta_path, &serde_json::to_vec(&new_meta).unwrap_or_default())?;
                Ok(Some(body))
            }
            404 | 410 => {
                let _ = fs::remove_file(&body_path);
                Ok(None)
            }
            s => Err(Error::Unreachable { url: url.to_string(), message: format!("HTTP status {s}") }),
        }
    }

    /// Streams `url` into `dest` (atomically), checking SHA256 and size.
    /// Returns false on 404.
    pub fn fetch_verified(&self, url: &str, sha256: &str, size: Option<u64>, dest: &Path) -> Result<bool> {
        let mut resp = self.call(url, &[])?;
        match resp.status().as_u16() {
            200 => {}
            404 | 410 => return Ok(false),
            s => return Err(Error::Unreachable { url: url.to_string(), message: format!("HTTP status {s}") }),
        }
        let reader = resp.body_mut().as_reader();
        if let Some(parent) = dest.parent() {
            fs::create_dir_all(parent).map_err(io_err(parent.display()))?;
        }
        let tmp = tmp_path(dest);
        let res = copy_hashed(reader, &tmp, url, sha256, size).and_then(|_| fs::rename(&tmp, dest).map_err(io_err(dest.display())));
        if res.is_err() {
            let _ = fs::remove_file(&tmp);
        }
        res.map(|_| true)
    }
}

/// Copies `r` to `dest`, failing unless the bytes hash to `sha256` (and
/// have `size`, when given).
pub(crate) fn copy_hashed(mut r: impl Read, dest: &Path, what: &str, sha256: &str, size: Option<u64>) -> Result<()> {
    let mut f = File::create(dest).map_err(io_err(dest.display()))?;
    let mut h = Sha256::new();
    let mut buf = vec![0u8; 256 << 10];
    let mut n_total = 0u64;
    loop {
        let n = match r.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(Error::Unreachable { url: what.to_string(), message: e.to_string() }),
        };
        n_total += n as u64;
        if size.is_some_and(|s| n_total > s) {
            return Err(Error::Invalid(format!("{what}: larger than the {} bytes the signed index gives", size.unwrap_or(0))));
        }
        h.update(&buf[..n]);
        f.write_all(&buf[..n]).map_err(io_err(dest.display()))?;
    }
    let got = hex(&h.finalize());
    if got != sha256 || size.is_some_and(|s| s != n_total) {
        return Err(Error::Invalid(format!("{what}: hash mismatch: expected sha256 {sha256}, got {got} ({n_total} bytes)")));
    }
    Ok(())
}
