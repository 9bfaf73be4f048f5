//! Proxy settings from the environment, read as curl reads them, and the
//! absolute-URI form of a request sent to a forward proxy.

use std::str::FromStr;

use base64::Engine as _;
use ureq::http::uri::{Authority, Scheme};
use ureq::http::{self, HeaderMap, HeaderValue, Uri};

use crate::text::percent_decode;
use crate::Error;

/// The proxy variables of the environment.
pub(crate) struct Env {
    http: Option<String>,
    https: Option<String>,
    all: Option<String>,
    pub no_proxy: Vec<String>,
}

fn var(names: &[&str]) -> Option<String> {
    names.iter().find_map(|n| std::env::var(n).ok().filter(|v| !v.trim().is_empty()))
}

impl Env {
    pub fn read() -> Env {
        Env {
            // Like curl, only the lower-case `http_proxy`: a CGI program
            // gets the request's `Proxy:` header as `HTTP_PROXY` ("httpoxy").
            http: var(&["http_proxy"]),
            https: var(&["https_proxy", "HTTPS_PROXY"]),
            all: var(&["all_proxy", "ALL_PROXY"]),
            no_proxy: var(&["no_proxy", "NO_PROXY"])
                .map(|v| v.split([',', ' ', '\t']).map(|e| e.trim().to_ascii_lowercase()).filter(|e| !e.is_empty()).collect())
                .unwrap_or_default(),
        }
    }

    pub fn http(&self) -> Option<String> {
        self.http.clone().or_else(|| self.all.clone())
    }

    pub fn https(&self) -> Option<String> {
        self.https.clone().or_else(|| self.all.clone())
    }
}

/// Whether `host` is exempt from proxying by a `no_proxy` list: `*`, the
/// host itself, or a domain it lies in (`example.org` and `.example.org`
/// both cover `deb.example.org`), as curl matches.
pub fn no_proxy_matches(list: &[String], host: &str) -> bool {
    let host = host.trim_start_matches('[').trim_end_matches(']').to_ascii_lowercase();
    list.iter().any(|e| {
        let e = e.trim_start_matches('.').trim_start_matches('[').trim_end_matches(']');
        e == "*" || host == e || host.strip_suffix(e).is_some_and(|rest| rest.ends_with('.'))
    })
}

/// `url` without `user:password@`, for messages and cache keys.
pub fn strip_userinfo(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else { return url.to_string() };
    let end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    match rest[..end].rfind('@') {
        Some(at) => format!("{scheme}://{}", &rest[at + 1..]),
        None => url.to_string(),
    }
}

/// The scheme and host (no port, no credentials) of a URL.
pub(crate) fn scheme_host(url: &str) -> Option<(&str, &str)> {
    let (scheme, rest) = url.split_once("://")?;
    let authority = &rest[..rest.find(['/', '?', '#']).unwrap_or(rest.len())];
    let hostport = authority.rsplit_once('@').map_or(authority, |(_, h)| h);
    let host = if hostport.starts_with('[') {
        &hostport[..hostport.find(']').map_or(hostport.len(), |i| i + 1)]
    } else {
        hostport.split(':').next().unwrap_or(hostport)
    };
    Some((scheme, host))
}

/// A proxy named by a variable: `[scheme://][user:pass@]host[:port][/]`.
pub(crate) struct ProxyUrl {
    scheme: Scheme,
    authority: Authority,
    /// `Proxy-Authorization` value, when the variable carries credentials.
    auth: Option<String>,
    /// `scheme://host:port`, for messages.
    pub display: String,
    raw: String,
}

impl ProxyUrl {
    pub fn parse(raw: &str) -> Result<ProxyUrl, Error> {
        let raw = raw.trim();
        let with_scheme = if raw.contains("://") { raw.to_string() } else { format!("http://{raw}") };
        let shown = strip_userinfo(&with_scheme);
        let bad = |why: &str| Error::Config(format!("proxy {shown}: {why}"));
        let (scheme, rest) = with_scheme.split_once("://").unwrap_or(("http", &with_scheme));
        let scheme = match scheme.to_ascii_lowercase().as_str() {
            "http" => Scheme::HTTP,
            "https" => Scheme::HTTPS,
            other => return Err(bad(&format!("unsupported proxy scheme `{other}` (http:// and https:// proxies are supported)"))),
        };
        let authority = rest.split(['/', '?', '#']).next().unwrap_or("");
        let (userinfo, hostport) = match authority.rsplit_once('@') {
            Some((u, h)) => (Some(u), h),
            None => (None, authority),
        };
        if hostport.is_empty() {
            return Err(bad("no host"));
        }
        // curl's default proxy port.
        let has_port = hostport.rsplit_once(':').is_some_and(|(_, p)| !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()) && !hostport.ends_with(']'));
        let hostport = if has_port { hostport.to_string() } else { format!("{hostport}:1080") };
        let authority = Authority::from_str(&hostport).map_err(|e| bad(&e.to_string()))?;
        let auth = userinfo.map(|u| {
            let (user, pass) = u.split_once(':').unwrap_or((u, ""));
            let creds = format!("{}:{}", percent_decode(user), percent_decode(pass));
            format!("Basic {}", base64::engine::general_purpose::STANDARD.encode(creds))
        });
        let display = format!("{scheme}://{authority}");
        let raw = match userinfo {
            Some(u) => format!("{scheme}://{u}@{authority}"),
            None => display.clone(),
        };
        Ok(ProxyUrl { scheme, authority, auth, display, raw })
    }

    /// A plain `http://` proxy (not TLS to the proxy itself).
    pub fn is_plain(&self) -> bool {
        self.scheme == Scheme::HTTP
    }

    /// `host:port` to connect to.
    pub fn host_port(&self) -> String {
        self.authority.as_str().to_string()
    }

    /// The form `ureq::Proxy::new` takes (for `CONNECT`).
    pub fn connect_form(&self) -> String {
        self.raw.clone()
    }
}

/// The headers of a request for `target` (a plain `http://` URL) sent to
/// a forward proxy: `Host` of the target, its credentials as an
/// `Authorization` header (unless one is set), the proxy's own as
/// `Proxy-Authorization`.
pub(crate) fn forward_headers(headers: &mut HeaderMap, target: &Uri, proxy: &ProxyUrl) -> Result<(), http::Error> {
    if let Some(authority) = target.authority() {
        let (userinfo, hostport) = match authority.as_str().rsplit_once('@') {
            Some((u, h)) => (Some(u), h),
            None => (None, authority.as_str()),
        };
        headers.insert(http::header::HOST, HeaderValue::from_str(hostport)?);
        if let (Some(user), false) = (userinfo, headers.contains_key(http::header::AUTHORIZATION)) {
            let (u, p) = user.split_once(':').unwrap_or((user, ""));
            let basic = format!("Basic {}", base64::engine::general_purpose::STANDARD.encode(format!("{}:{}", percent_decode(u), percent_decode(p))));
            headers.insert(http::header::AUTHORIZATION, HeaderValue::from_str(&basic)?);
        }
    }
    if let Some(a) = &proxy.auth {
        headers.insert(http::header::PROXY_AUTHORIZATION, HeaderValue::from_str(a)?);
    }
    Ok(())
}

/// Resolves a `Location` header against the URL it answered.
pub(crate) fn join(base: &Uri, location: &str) -> Option<Uri> {
    let scheme = base.scheme_str().unwrap_or("http");
    let authority = base.authority().map(|a| a.as_str()).unwrap_or("");
    let abs = if location.contains("://") {
        location.to_string()
    } else if let Some(rest) = location.strip_prefix("//") {
        format!("{scheme}://{rest}")
    } else if location.starts_with('/') {
        format!("{scheme}://{authority}{location}")
    } else {
        let dir = base.path().rsplit_once('/').map_or("", |(d, _)| d);
        format!("{scheme}://{authority}{dir}/{location}")
    };
    Uri::from_str(&abs).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn no_proxy_like_curl() {
        let list: Vec<String> = ["example.org", ".internal", "127.0.0.1", "[::1]"].iter().map(|s| s.to_string()).collect();
        assert!(no_proxy_matches(&list, "example.org"));
        assert!(no_proxy_matches(&list, "deb.example.org"));
        assert!(!no_proxy_matches(&list, "badexample.org"));
        assert!(no_proxy_matches(&list, "a.internal"));
        assert!(no_proxy_matches(&list, "127.0.0.1"));
        assert!(no_proxy_matches(&list, "[::1]"));
        assert!(!no_proxy_matches(&list, "127.0.0.2"));
        assert!(no_proxy_matches(&["*".to_string()], "anything"));
    }

    #[test]
    fn urls() {
        assert_eq!(strip_userinfo("http://u:p@h:8/x@y"), "http://h:8/x@y");
        assert_eq!(strip_userinfo("https://h/p"), "https://h/p");
        assert_eq!(scheme_host("https://u:p@Deb.example:443/x"), Some(("https", "Deb.example")));
        assert_eq!(scheme_host("http://[::1]:8080/"), Some(("http", "[::1]")));
        let p = ProxyUrl::parse("user:s%40cret@proxy.lan").unwrap();
        assert_eq!(p.display, "http://proxy.lan:1080");
        assert!(p.auth.is_some());
        assert!(ProxyUrl::parse("socks5://x:1").err().unwrap().to_string().contains("socks5"));
        let base = Uri::from_str("http://h/a/b/c").unwrap();
        assert_eq!(join(&base, "d").unwrap().to_string(), "http://h/a/b/d");
        assert_eq!(join(&base, "/x").unwrap().to_string(), "http://h/x");
        assert_eq!(join(&base, "https://o/y").unwrap().to_string(), "https://o/y");
    }

    #[test]
    fn forward_request_headers() {
        let proxy = ProxyUrl::parse("http://a:b@127.0.0.1:3128").unwrap();
        let target = Uri::from_str("http://u:p@deb.example/debian/dists/x").unwrap();
        let mut headers = HeaderMap::new();
        forward_headers(&mut headers, &target, &proxy).unwrap();
        assert_eq!(headers["host"], "deb.example");
        assert_eq!(headers["authorization"], "Basic dTpw");
        assert_eq!(headers["proxy-authorization"], "Basic YTpi");
    }
}
