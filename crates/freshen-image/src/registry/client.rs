//! One HTTP client per registry repository: picks HTTPS (or plain HTTP
//! where allowed), authenticates (basic, or bearer tokens cached for the
//! process) and turns failures into one-line errors.

use std::collections::HashMap;
use std::io::Read;
use std::sync::{Mutex, OnceLock};

use ureq::http::{self, Method, Response};
use freshen_http::Client as Http;
use ureq::SendBody;

use super::auth::{self, Challenge, Creds};
use crate::error::{Error, Result};
use crate::reference::RegistryRef;
use crate::text::one_line;
use crate::transport::Transport;

/// A response whose body is still to be read.
pub(super) type Resp = Response<ureq::Body>;

/// Tokens fetched in this process, by (registry, scopes).
static TOKENS: OnceLock<Mutex<HashMap<(String, String), String>>> = OnceLock::new();

/// A request body.
pub(super) enum Body<'a> {
    Empty,
    /// Small and repeatable (JSON): may be sent again after a 401.
    Bytes(&'a [u8]),
    /// A blob streamed once, with its length when known (else chunked).
    Stream(&'a mut dyn Read, Option<u64>),
}

/// A registry repository to talk to.
pub(super) struct Client {
    /// `docker://REGISTRY/REPO[:TAG]`, for messages.
    pub display: String,
    repository: String,
    /// The name credentials are filed under (`docker.io`, `host:port`).
    registry: String,
    /// `https://host[:port]` or `http://…`.
    base: String,
    agent: Http,
    /// Token scopes (`repository:app:pull,push`).
    scopes: Vec<String>,
    creds_arg: Option<Creds>,
    creds: OnceLock<std::result::Result<Option<Creds>, String>>,
    challenge: Mutex<Option<Challenge>>,
}

impl Client {
    /// Reaches the registry of `r` (`GET /v2/`), choosing the scheme and
    /// learning how it authenticates. `scopes` are requested for tokens.
    pub fn connect(r: &RegistryRef, t: &Transport, scopes: Vec<String>) -> Result<Client> {
        let display = format!("docker://{r}");
        let host = if r.registry == "docker.io" { "registry-1.docker.io" } else { r.registry.as_str() };
        let agent = agent(t).map_err(|e| Error::Invalid(format!("{display}: {e}")))?;
        let https = format!("https://{host}");
        let (base, ping) = match get(&agent, &format!("{https}/v2/")) {
            Ok(resp) => (https, resp),
            Err(e) if plain_http_allowed(host, t.tls_verify) && !is_cert_error(&e) && !is_unreachable(&e) => {
                let http = format!("http://{host}");
                match get(&agent, &format!("{http}/v2/")) {
                    Ok(resp) => (http, resp),
                    Err(_) => return Err(connect_error(&display, host, &e)),
                }
            }
            Err(e) => return Err(connect_error(&display, host, &e)),
        };
        let challenge = if ping.status() == 401 && answered_by(&ping, &base) { header(&ping, "www-authenticate").and_then(|h| auth::parse_challenge(&h)) } else { None };
        Ok(Client {
            display,
            repository: r.repository.clone(),
            registry: r.registry.clone(),
            base,
            agent,
            scopes,
            creds_arg: t.creds.clone(),
            creds: OnceLock::new(),
            challenge: Mutex::new(challenge),
        })
    }

    /// `BASE/v2/REPO/PATH`.
    pub fn url(&self, path: &str) -> String {
        format!("{}/v2/{}/{path}", self.base, self.repository)
    }

    /// An absolute URL for a `Location` header, which may be relative.
    pub fn resolve(&self, location: &str) -> String {
        if location.starts_with("https://") || location.starts_with("http://") {
            location.to_string()
        } else if location.starts_with('/') {
            format!("{}{location}", self.base)
        } else {
            format!("{}/{location}", self.base)
        }
    }

    /// Sends a request, authenticating as the registry asks: on a 401 the
    /// challenge is (re)read and a repeatable request is sent once more.
    /// Any status comes back as a response; only transport failures are
    /// errors. Credentials go only to this registry's origin (scheme, host
    /// and port), never to a redirect target (ureq drops `Authorization`
    /// on redirects), and only a challenge this origin sent is followed.
    pub fn send(&self, method: Method, url: &str, headers: &[(&str, &str)], mut body: Body) -> Result<Resp> {
        let mut retried = false;
        let ours = freshen_http::same_origin(url, &self.base);
        loop {
            let authorization = if ours { self.authorization(retried)? } else { None };
            let mut req = http::Request::builder().method(method.clone()).uri(url);
            for (k, v) in headers {
                req = req.header(*k, *v);
            }
            if let Some(a) = &authorization {
                req = req.header("authorization", a.as_str());
            }
            let sent = match &mut body {
                Body::Empty if method == Method::POST || method == Method::PUT => self.run(req.header("content-length", "0").body(SendBody::none())),
                Body::Empty => self.run(req.body(SendBody::none())),
                Body::Bytes(b) => self.run(req.header("content-length", b.len().to_string()).body(SendBody::from_reader(&mut &b[..]))),
                Body::Stream(r, Some(len)) => self.run(req.header("content-length", len.to_string()).body(SendBody::from_reader(*r))),
                Body::Stream(r, None) => self.run(req.body(SendBody::from_reader(*r))),
            };
            let resp = sent.map_err(|e| Error::Invalid(format!("{}: {method} {}: {}", self.display, strip_query(url), one_line(&e.to_string()))))?;
            // A 401 from elsewhere (a host a redirect reached, an upload URL
            // on another port) names no realm we may send credentials to.
            if resp.status() != 401 || retried || !ours || !answered_by(&resp, &self.base) || matches!(body, Body::Stream(..)) {
                return Ok(resp);
            }
            let fresh = header(&resp, "www-authenticate").and_then(|h| auth::parse_challenge(&h));
            let mut challenge = self.challenge.lock().unwrap_or_else(|p| p.into_inner());
            let changed = fresh.is_some() && *challenge != fresh;
            let bearer = matches!(*challenge, Some(Challenge::Bearer { .. }));
            if changed {
                *challenge = fresh;
            }
            drop(challenge);
            if !changed && !bearer {
                return Ok(resp);
            }
            retried = true;
        }
    }

    fn run(&self, req: std::result::Result<http::Request<SendBody>, http::Error>) -> std::result::Result<Resp, freshen_http::Error> {
        self.agent.run(req.map_err(|e| freshen_http::Error::Request { source: e.into(), proxy: None })?)
    }

    /// The `Authorization` header the registry's challenge calls for;
    /// `refresh` bypasses the token cache.
    fn authorization(&self, refresh: bool) -> Result<Option<String>> {
        let challenge = self.challenge.lock().unwrap_or_else(|p| p.into_inner()).clone();
        match challenge {
            None => Ok(None),
            Some(Challenge::Basic) => Ok(self.creds()?.map(|c| auth::basic(&c))),
            Some(Challenge::Bearer { realm, service }) => {
                let key = (self.registry.clone(), self.scopes.join(" "));
                let tokens = TOKENS.get_or_init(Default::default);
                if !refresh {
                    if let Some(t) = tokens.lock().unwrap_or_else(|p| p.into_inner()).get(&key) {
                        return Ok(Some(format!("Bearer {t}")));
                    }
                }
                let token = self.fetch_token(&realm, service.as_deref())?;
                tokens.lock().unwrap_or_else(|p| p.into_inner()).insert(key, token.clone());
                Ok(Some(format!("Bearer {token}")))
            }
        }
    }

    /// `GET realm?service=…&scope=…`, with basic credentials if we have any.
    fn fetch_token(&self, realm: &str, service: Option<&str>) -> Result<String> {
        let mut query: Vec<String> = service.map(|s| format!("service={}", encode(s))).into_iter().collect();
        query.extend(self.scopes.iter().map(|s| format!("scope={}", encode(s))));
        let url = format!("{realm}{}{}", if realm.contains('?') { '&' } else { '?' }, query.join("&"));
        let mut req = http::Request::builder().method(Method::GET).uri(&url);
        if let Some(c) = self.creds()? {
            req = req.header("authorization", auth::basic(&c));
        }
        let resp = self.run(req.body(SendBody::none()))
            .map_err(|e| Error::Invalid(format!("{}: token server {}: {}", self.display, strip_query(realm), one_line(&e.to_string()))))?;
        if resp.status() != 200 {
            return Err(self.fail("token request", resp));
        }
        let bytes = self.read_small(resp, 1 << 20)?;
        let v: serde_json::Value = serde_json::from_slice(&bytes)
            .map_err(|e| Error::Invalid(format!("{}: token server {}: invalid JSON: {e}", self.display, strip_query(realm))))?;
        v["token"]
            .as_str()
            .or_else(|| v["access_token"].as_str())
            .filter(|t| !t.is_empty())
            .map(str::to_string)
            .ok_or_else(|| Error::Invalid(format!("{}: token server {} sent no token", self.display, strip_query(realm))))
    }

    /// `--creds`, else Docker's config (looked up once, when needed).
    fn creds(&self) -> Result<Option<Creds>> {
        if let Some(c) = &self.creds_arg {
            return Ok(Some(c.clone()));
        }
        self.creds
            .get_or_init(|| auth::lookup(&self.registry))
            .clone()
            .map_err(|e| Error::Invalid(format!("{}: credentials: {e}", self.display)))
    }

    /// Reads a response body of at most `limit` bytes.
    pub fn read_small(&self, resp: Resp, limit: u64) -> Result<Vec<u8>> {
        let mut out = Vec::new();
        self.body(resp, limit)
            .read_to_end(&mut out)
            .map_err(|e| Error::Invalid(format!("{}: reading a response: {}", self.display, one_line(&e.to_string()))))?;
        Ok(out)
    }

    /// A response body of at most `limit` bytes, held to the minimum
    /// progress rule (a stalled or trickling registry fails the read).
    pub fn body(&self, resp: Resp, limit: u64) -> freshen_http::Steady<ureq::BodyReader<'static>> {
        self.agent.body(resp, limit)
    }

    /// A one-line error for an unexpected response to `what`, with the
    /// registry's own message.
    pub fn fail(&self, what: &str, resp: Resp) -> Error {
        let status = resp.status();
        // A token without the rights asked for: the user is known but may not do this.
        let insufficient = header(&resp, "www-authenticate").is_some_and(|h| h.contains("insufficient_scope"));
        let message = registry_message(&self.read_small(resp, 64 << 10).unwrap_or_default());
        let kind = match status.as_u16() {
            401 if insufficient => "access denied: the credentials do not allow this".into(),
            401 => {
                let hint = if self.creds_arg.is_none() && matches!(self.creds.get(), None | Some(Ok(None))) { " (no credentials: use --creds or docker login)" } else { "" };
                format!("authentication failed{hint}")
            }
            403 => "access denied".into(),
            404 => "not found".into(),
            413 => "too large for the registry".into(),
            s if s >= 500 => "registry error".into(),
            _ => "unexpected response".into(),
        };
        let message = if message.is_empty() { status.canonical_reason().unwrap_or("").to_lowercase() } else { message };
        Error::Invalid(format!("{}: {what}: {kind} ({}): {message}", self.display, status.as_u16()))
    }
}

/// The client: freshen's one HTTP policy (system trust store plus
/// `--ca-file`, proxies from the environment), TLS checks as asked.
fn agent(t: &Transport) -> std::result::Result<Http, freshen_http::Error> {
    Http::new(&freshen_http::Policy { ca_file: t.ca_file.clone(), tls_verify: t.tls_verify, ..freshen_http::Policy::default() })
}

/// Whether `resp` came from `base`'s origin (not from where a redirect led).
fn answered_by(resp: &Resp, base: &str) -> bool {
    freshen_http::final_url(resp).is_some_and(|u| freshen_http::same_origin(&u.to_string(), base))
}

fn get(agent: &Http, url: &str) -> std::result::Result<Resp, freshen_http::Error> {
    agent.get(url, &[])
}

/// Docker allows plain HTTP for loopback registries and with
/// `--tls-verify=false`, after HTTPS fails.
fn plain_http_allowed(host: &str, tls_verify: bool) -> bool {
    let name = match host.rsplit_once(':') {
        Some((h, port)) if port.bytes().all(|b| b.is_ascii_digit()) => h,
        _ => host,
    };
    !tls_verify || matches!(name, "localhost" | "127.0.0.1" | "[::1]" | "::1")
}

fn is_cert_error(e: &freshen_http::Error) -> bool {
    e.to_string().to_lowercase().contains("certificate")
}

/// Failures that plain HTTP on the same port cannot fix.
fn is_unreachable(e: &freshen_http::Error) -> bool {
    let Some(e) = e.ureq() else { return true };
    match e {
        ureq::Error::HostNotFound | ureq::Error::ConnectionFailed | ureq::Error::Timeout(_) => true,
        ureq::Error::Io(io) => matches!(io.kind(), std::io::ErrorKind::ConnectionRefused | std::io::ErrorKind::TimedOut | std::io::ErrorKind::HostUnreachable | std::io::ErrorKind::NetworkUnreachable),
        _ => false,
    }
}

fn connect_error(display: &str, host: &str, e: &freshen_http::Error) -> Error {
    let hint = if is_cert_error(e) { " (trust its CA with --ca-file, or use --tls-verify=false)" } else { "" };
    Error::Invalid(format!("{display}: cannot reach registry {host}: {}{hint}", one_line(&e.to_string())))
}

/// A header's value as text.
pub(super) fn header(resp: &Resp, name: &str) -> Option<String> {
    resp.headers().get(name).and_then(|v| v.to_str().ok()).map(str::to_string)
}

/// The `errors[].message` (and detail) of a distribution error body, or a
/// short plain-text body.
fn registry_message(body: &[u8]) -> String {
    let from_json = serde_json::from_slice::<serde_json::Value>(body).ok().and_then(|v| {
        let errors = v["errors"].as_array()?;
        let msgs: Vec<String> = errors
            .iter()
            .filter_map(|e| {
                let m = e["message"].as_str().or_else(|| e["code"].as_str())?;
                Some(match e["detail"].as_str() {
                    Some(d) if !d.is_empty() => format!("{m} ({d})"),
                    _ => m.to_string(),
                })
            })
            .collect();
        Some(msgs.join("; "))
    });
    let text = from_json.unwrap_or_else(|| String::from_utf8_lossy(&body[..body.len().min(200)]).into_owned());
    one_line(&text).to_lowercase()
}


/// A URL without its query (upload URLs carry state, tokens may too).
fn strip_query(url: &str) -> &str {
    url.split('?').next().unwrap_or(url)
}

/// Percent-encodes a query value.
pub(super) fn encode(s: &str) -> String {
    crate::text::percent_encode(s, b"")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn helpers() {
        assert_eq!(encode("repository:a/b:pull,push"), "repository%3Aa%2Fb%3Apull%2Cpush");
        assert!(plain_http_allowed("127.0.0.1:5000", true));
        assert!(plain_http_allowed("localhost", true));
        assert!(plain_http_allowed("[::1]:5000", true));
        assert!(!plain_http_allowed("reg.example:5000", true));
        assert!(plain_http_allowed("reg.example:5000", false));
        assert_eq!(
            registry_message(br#"{"errors":[{"code":"MANIFEST_UNKNOWN","message":"manifest unknown","detail":"unknown tag=nope"}]}"#),
            "manifest unknown (unknown tag=nope)"
        );
        assert_eq!(registry_message(b"Bad\nGateway"), "bad gateway");
    }
}
