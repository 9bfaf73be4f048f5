//! Web origins (scheme, host, port), for deciding where credentials may go:
//! two URLs share an origin only when all three are equal, the port being
//! the scheme's default when absent. Strings are never compared by prefix
//! (`https://reg.example.evil.net` is not `https://reg.example`).

use std::str::FromStr;

use ureq::http::{Response, Uri};

/// The origin of an absolute `http`/`https` URL.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Origin {
    pub scheme: String,
    pub host: String,
    pub port: u16,
}

impl Origin {
    /// `None` for a relative URL, another scheme, or text that is no URL.
    pub fn of(url: &str) -> Option<Origin> {
        Origin::of_uri(&Uri::from_str(url).ok()?)
    }

    pub fn of_uri(uri: &Uri) -> Option<Origin> {
        let scheme = uri.scheme_str()?.to_ascii_lowercase();
        let default = match scheme.as_str() {
            "http" => 80,
            "https" => 443,
            _ => return None,
        };
        let host = uri.host()?.to_ascii_lowercase();
        if host.is_empty() {
            return None;
        }
        Some(Origin { scheme, host, port: uri.port_u16().unwrap_or(default) })
    }
}

/// Whether `a` and `b` are absolute URLs of one origin.
pub fn same_origin(a: &str, b: &str) -> bool {
    matches!((Origin::of(a), Origin::of(b)), (Some(x), Some(y)) if x == y)
}

/// The URL that answered, after the redirects the client followed.
#[derive(Clone, Debug)]
pub(crate) struct FinalUrl(pub Uri);

/// The URL a response of [`crate::Client`] came from (after redirects).
pub fn final_url(resp: &Response<ureq::Body>) -> Option<&Uri> {
    resp.extensions().get::<FinalUrl>().map(|f| &f.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn origins_compare_whole() {
        assert!(same_origin("https://reg.example/v2/", "https://REG.example:443/v2/a/blobs/x?y=1"));
        assert!(same_origin("http://127.0.0.1:5000", "http://127.0.0.1:5000/v2/"));
        assert!(!same_origin("https://reg.example", "https://reg.example.evil.net/v2/"));
        assert!(!same_origin("https://reg.example", "https://reg.example:5000/v2/"));
        assert!(!same_origin("http://127.0.0.1:5000", "http://127.0.0.1:5001/upload"));
        assert!(!same_origin("https://reg.example", "http://reg.example/"));
        assert!(!same_origin("https://reg.example", "https://reg.example@evil.net/"));
        assert!(!same_origin("https://reg.example", "/v2/relative"));
        assert!(!same_origin("https://reg.example", "ftp://reg.example/"));
        assert_eq!(Origin::of("http://[::1]:8080/x"), Some(Origin { scheme: "http".into(), host: "[::1]".into(), port: 8080 }));
    }
}
