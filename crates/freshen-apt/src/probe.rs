//! Cheap change detection: which Release files a scan read, and whether
//! they still say the same. One conditional request (`If-None-Match` /
//! `If-Modified-Since`, through [`Fetcher::get_revalidated`]) per file
//! tells whether an archive published since; a scan whose Release files
//! are unchanged would find the same (indexes and packages are named by
//! the hashes those files sign).

use std::collections::BTreeMap;

use crate::error::Result;
use crate::fetch::{file_path, sha256_hex, Fetcher};
use crate::system::System;

/// What [`probe`] records for a URL the server says is absent.
pub const ABSENT: &str = "absent";

/// The Release files a scan of `system` with `fetcher` read, per distinct
/// network source: its `InRelease`, or `Release` and `Release.gpg` when
/// the archive has no `InRelease`. `file:` sources are read from the
/// image, which does not change under one image id, and are left out.
pub fn release_urls(fetcher: &Fetcher, system: &System) -> Vec<String> {
    let mut urls: Vec<String> = Vec::new();
    for source in &system.sources {
        let dist = source.dist_url();
        let inrelease = format!("{dist}/InRelease");
        if file_path(&dist).is_some() || urls.contains(&inrelease) || urls.contains(&format!("{dist}/Release")) {
            continue;
        }
        if fetcher.seen(&inrelease).is_some() {
            urls.push(inrelease);
        } else {
            urls.extend([format!("{dist}/Release"), format!("{dist}/Release.gpg")]);
        }
    }
    urls
}

/// Revalidates each URL (once per fetcher: a fetcher that has read it
/// already answers from memory) and returns its SHA256, or [`ABSENT`].
pub fn probe<'a>(fetcher: &Fetcher, urls: impl IntoIterator<Item = &'a String>) -> Result<BTreeMap<String, String>> {
    let mut out = BTreeMap::new();
    for url in urls {
        let digest = fetcher.get_revalidated(url)?.map_or_else(|| ABSENT.to_string(), |body| sha256_hex(&body));
        out.insert(url.clone(), digest);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{BufRead, BufReader, Write};
    use std::net::TcpListener;
    use std::sync::{Arc, Mutex};

    /// Serves `InRelease` (body and Last-Modified from `doc`) and 404s;
    /// records each request's path and whether it was conditional.
    fn serve(doc: Arc<Mutex<(String, String)>>, log: Arc<Mutex<Vec<String>>>) -> String {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        std::thread::spawn(move || {
            for stream in listener.incoming().flatten() {
                let mut reader = BufReader::new(stream.try_clone().unwrap());
                let mut line = String::new();
                reader.read_line(&mut line).unwrap();
                let path = line.split_whitespace().nth(1).unwrap_or("/").to_string();
                let mut ims = None;
                loop {
                    let mut h = String::new();
                    if reader.read_line(&mut h).unwrap_or(0) == 0 || h.trim().is_empty() {
                        break;
                    }
                    if let Some(v) = h.to_ascii_lowercase().strip_prefix("if-modified-since:") {
                        ims = Some(v.trim().to_string());
                    }
                }
                let (body, lm) = doc.lock().unwrap().clone();
                log.lock().unwrap().push(format!("{path}{}", if ims.is_some() { " conditional" } else { "" }));
                let mut stream = stream;
                let resp = if path != "/d/InRelease" {
                    "HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\nConnection: close\r\n\r\n".to_string()
                } else if ims.as_deref() == Some(lm.to_ascii_lowercase().as_str()) {
                    format!("HTTP/1.1 304 Not Modified\r\nLast-Modified: {lm}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
                } else {
                    format!("HTTP/1.1 200 OK\r\nLast-Modified: {lm}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}", body.len())
                };
                let _ = stream.write_all(resp.as_bytes());
            }
        });
        format!("http://{addr}")
    }

    #[test]
    fn unchanged_files_cost_one_conditional_request_and_changes_show() {
        let cache = tempfile::tempdir().unwrap();
        let doc = Arc::new(Mutex::new(("one".to_string(), "Mon, 30 Nov 2026 00:00:00 GMT".to_string())));
        let log = Arc::new(Mutex::new(Vec::new()));
        let url = serve(doc.clone(), log.clone());
        let urls = vec![format!("{url}/d/InRelease"), format!("{url}/gone/InRelease")];
        let fetcher = || Fetcher::new(cache.path().to_path_buf(), &freshen_http::Policy::default()).unwrap();
        let first = probe(&fetcher(), &urls).unwrap();
        assert_eq!(first[&urls[0]], sha256_hex(b"one"));
        assert_eq!(first[&urls[1]], ABSENT);
        log.lock().unwrap().clear();
        let f = fetcher();
        assert_eq!(probe(&f, &urls).unwrap(), first);
        assert_eq!(probe(&f, &urls).unwrap(), first, "a fetcher asks once");
        assert_eq!(*log.lock().unwrap(), ["/d/InRelease conditional", "/gone/InRelease"]);
        *doc.lock().unwrap() = ("two".into(), "Mon, 30 Nov 2026 01:00:00 GMT".into());
        let second = probe(&fetcher(), &urls).unwrap();
        assert_eq!(second[&urls[0]], sha256_hex(b"two"));
    }
}
