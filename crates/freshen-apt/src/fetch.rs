//! HTTP with a local cache. Release files are revalidated with conditional
//! requests (ETag / If-Modified-Since); indexes and packages are stored
//! under the SHA256 the signed Release or Packages file gives them, so a
//! cached copy is never fetched again and never trusted without its hash.
//!
//! Several processes (and threads) may fill one cache at once: every file
//! is written under a name unique to its writer and renamed into place, so
//! a reader sees a whole file or none. Requests follow freshen's one HTTP
//! policy ([`freshen_http`]: system trust store, `--ca-file`, proxies) and
//! carry the credentials of apt's auth.conf or the source's URI; URLs in
//! messages never carry credentials.

use std::collections::HashMap;
use std::fs::{self, File};
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, RwLock};

use freshen_http::one_line;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::auth::{AuthTable, Credentials};
use crate::error::{io_err, Error, Result};

const SMALL_LIMIT: u64 = 64 << 20;

/// An HTTP client bound to a cache directory.
pub struct Fetcher {
    http: freshen_http::Client,
    cache: PathBuf,
    /// Login information: (URI prefix, credentials) of sources that carry
    /// them, then the image's auth.conf.
    auth: RwLock<(Vec<(String, Credentials)>, AuthTable)>,
    /// The files of `file:` sources: read from the image, as apt in the
    /// image reads them (set by the caller that has the image).
    local: RwLock<Option<Arc<dyn LocalFiles>>>,
    /// One lock per URL being revalidated, so threads asking for the same
    /// URL at once send one request and get the same answer.
    inflight: Mutex<HashMap<String, Arc<Mutex<()>>>>,
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
    /// SHA256 of the body these validators belong to: a body and a meta
    /// file written by two different processes do not pair up.
    sha256: Option<String>,
}

pub(crate) fn sha256_hex(data: &[u8]) -> String {
    freshen_fs::hex(&Sha256::digest(data))
}

/// Marks a cache entry as used now (its modification time): `cache prune`
/// removes the least recently used first, and access times are not
/// reliable (`noatime`, `relatime`).
pub(crate) fn touch(path: &Path) {
    if let Ok(f) = File::open(path) {
        let _ = f.set_modified(std::time::SystemTime::now());
    }
}

/// Writes `data` to `dest` whole ([`freshen_fs::write_atomic`]).
pub(crate) fn write_atomic(dest: &Path, data: &[u8]) -> Result<()> {
    freshen_fs::write_atomic(dest, data).map_err(io_err(dest.display()))
}

/// Read access to the files `file:` sources name, below the image's root
/// (`path` without the leading `/`).
pub trait LocalFiles: Send + Sync {
    fn read(&self, path: &str) -> Option<Vec<u8>>;
}

/// The path (below `/`) of a `file:` URL, or `None` for other schemes.
pub fn file_path(url: &str) -> Option<&str> {
    let rest = url.strip_prefix("file:")?;
    let rest = rest.strip_prefix("//").unwrap_or(rest);
    Some(rest.trim_start_matches('/'))
}

/// A temporary name beside `dest`, unique to this process and call (two
/// threads, or two processes, filling one cache entry never share one).
pub(crate) fn tmp_path(dest: &Path) -> PathBuf {
    static NEXT: AtomicU64 = AtomicU64::new(0);
    let name = dest.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    dest.with_file_name(format!(".{name}.{}-{}.tmp", std::process::id(), NEXT.fetch_add(1, Ordering::Relaxed)))
}

impl Fetcher {
    /// A fetcher sending requests as `policy` says (mirrors are always
    /// verified: `policy.tls_verify` is ignored here), each request done
    /// within 10 minutes.
    pub fn new(cache: PathBuf, policy: &freshen_http::Policy) -> Result<Fetcher> {
        let policy = freshen_http::Policy { tls_verify: true, timeout_global: Some(std::time::Duration::from_secs(600)), ..policy.clone() };
        let http = freshen_http::Client::new(&policy).map_err(|e| Error::Invalid(e.to_string()))?;
        Ok(Fetcher {
            http,
            cache,
            auth: RwLock::default(),
            local: RwLock::new(None),
            inflight: Mutex::default(),
            requests: AtomicUsize::new(0),
            seen: Mutex::new(HashMap::new()),
        })
    }

    /// Uses the login information of `auth` (an image's auth.conf) and of
    /// source URIs (`prefix`, credentials) for the URLs they match.
    pub fn set_credentials(&self, sources: Vec<(String, Credentials)>, auth: AuthTable) {
        *self.auth.write().unwrap_or_else(|e| e.into_inner()) = (sources, auth);
    }

    /// Reads `file:` sources through `files`.
    pub fn set_local_files(&self, files: Arc<dyn LocalFiles>) {
        *self.local.write().unwrap_or_else(|e| e.into_inner()) = Some(files);
    }

    /// A `file:` URL's content (`None`: absent), from the image.
    fn read_local(&self, url: &str, path: &str) -> Result<Option<Vec<u8>>> {
        let local = self.local.read().unwrap_or_else(|e| e.into_inner());
        let files = local.as_ref().ok_or_else(|| Error::Unreachable { url: url.to_string(), message: "the image's files are not available for file: sources here".into() })?;
        Ok(files.read(&freshen_http::percent_decode(path)))
    }

    fn authorization(&self, url: &str) -> Option<String> {
        let auth = self.auth.read().unwrap_or_else(|e| e.into_inner());
        let (sources, table) = &*auth;
        let by_source = sources.iter().find(|(prefix, _)| url.starts_with(prefix.as_str()) && url[prefix.len()..].starts_with('/')).map(|(_, c)| c);
        by_source.or_else(|| table.lookup(url)).map(Credentials::basic)
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
            Err(Error::Invalid(format!("unsupported URI `{}` (freshen reads http://, https:// and file: sources)", freshen_http::strip_userinfo(url))))
        }
    }

    fn call(&self, url: &str, headers: &[(&str, String)]) -> Result<ureq::http::Response<ureq::Body>> {
        Self::check_scheme(url)?;
        self.requests.fetch_add(1, Ordering::Relaxed);
        let authorization = self.authorization(url);
        let mut all: Vec<(&str, &str)> = headers.iter().map(|(k, v)| (*k, v.as_str())).collect();
        if let Some(a) = &authorization {
            all.push(("authorization", a));
        }
        let resp = self.http.get(url, &all).map_err(|e| Error::Unreachable { url: url.to_string(), message: one_line(&e.to_string()) })?;
        match resp.status().as_u16() {
            401 | 403 => Err(Error::Unreachable {
                url: url.to_string(),
                message: format!(
                    "HTTP status {}{}",
                    resp.status().as_u16(),
                    if authorization.is_some() { " (the credentials for it were refused)" } else { " (no credentials for it in the image's /etc/apt/auth.conf)" }
                ),
            }),
            _ => Ok(resp),
        }
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
        let lock = self.inflight.lock().unwrap_or_else(|e| e.into_inner()).entry(url.to_string()).or_default().clone();
        let _one_at_a_time = lock.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(body) = self.seen.lock().unwrap_or_else(|e| e.into_inner()).get(url) {
            return Ok(body.clone());
        }
        let body = match file_path(url) {
            Some(path) => self.read_local(url, path)?,
            None => self.revalidate(url)?,
        };
        self.seen.lock().unwrap_or_else(|e| e.into_inner()).insert(url.to_string(), body.clone());
        Ok(body)
    }

    fn revalidate(&self, url: &str) -> Result<Option<Vec<u8>>> {
        let dir = self.cache.join("http");
        fs::create_dir_all(&dir).map_err(io_err(dir.display()))?;
        let key = sha256_hex(url.as_bytes());
        let body_path = dir.join(&key);
        let meta_path = dir.join(format!("{key}.meta"));
        let meta: Meta = fs::read(&meta_path).ok().and_then(|b| serde_json::from_slice(&b).ok()).unwrap_or_default();
        // A body is used only with the validators written for it.
        let cached = fs::read(&body_path).ok().filter(|b| meta.sha256.as_deref() == Some(sha256_hex(b).as_str()));
        let mut headers = Vec::new();
        if cached.is_some() {
            if let Some(e) = &meta.etag {
                headers.push(("If-None-Match", e.clone()));
            }
            if let Some(l) = &meta.last_modified {
                headers.push(("If-Modified-Since", l.clone()));
            }
        }
        let resp = self.call(url, &headers)?;
        match resp.status().as_u16() {
            304 if cached.is_some() => {
                touch(&body_path);
                Ok(cached)
            }
            200 => {
                let header = |n: &str| resp.headers().get(n).and_then(|v| v.to_str().ok()).map(str::to_string);
                let (etag, last_modified) = (header("etag"), header("last-modified"));
                let mut body = Vec::new();
                std::io::Read::read_to_end(&mut self.http.body(resp, SMALL_LIMIT), &mut body)
                    .map_err(|e| Error::Unreachable { url: url.to_string(), message: one_line(&e.to_string()) })?;
                let new_meta = Meta { etag, last_modified, sha256: Some(sha256_hex(&body)) };
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

    /// What a proxy, if any, `url` goes through (for messages).
    pub fn proxy_for(&self, url: &str) -> Option<&str> {
        self.http.proxy_for(url)
    }

    /// Streams `url` into `dest` (atomically), checking SHA256 and size.
    /// Returns false on 404.
    pub fn fetch_verified(&self, url: &str, sha256: &str, size: Option<u64>, dest: &Path) -> Result<bool> {
        if let Some(path) = file_path(url) {
            let Some(data) = self.read_local(url, path)? else { return Ok(false) };
            return self.store_verified(&data[..], url, sha256, size, dest).map(|_| true);
        }
        let resp = self.call(url, &[])?;
        match resp.status().as_u16() {
            200 => {}
            404 | 410 => return Ok(false),
            s => return Err(Error::Unreachable { url: url.to_string(), message: format!("HTTP status {s}") }),
        }
        self.store_verified(self.http.body(resp, u64::MAX), url, sha256, size, dest).map(|_| true)
    }

    fn store_verified(&self, reader: impl Read, url: &str, sha256: &str, size: Option<u64>, dest: &Path) -> Result<()> {
        if let Some(parent) = dest.parent() {
            fs::create_dir_all(parent).map_err(io_err(parent.display()))?;
        }
        let tmp = tmp_path(dest);
        let res = copy_hashed(reader, &tmp, url, sha256, size).and_then(|_| fs::rename(&tmp, dest).map_err(io_err(dest.display())));
        if res.is_err() {
            let _ = fs::remove_file(&tmp);
        }
        res
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
    let got = freshen_fs::hex(&h.finalize());
    if got != sha256 || size.is_some_and(|s| s != n_total) {
        return Err(Error::Invalid(format!("{what}: hash mismatch: expected sha256 {sha256}, got {got} ({n_total} bytes)")));
    }
    Ok(())
}
