//! The one HTTP client policy freshen uses for archive mirrors and
//! registries, so both behave like curl and apt on the same host:
//!
//! - trust: the system's CA store (`$SSL_CERT_FILE` / `$SSL_CERT_DIR` when
//!   set, else the distribution's bundle such as
//!   `/etc/ssl/certs/ca-certificates.crt`) plus `--ca-file`;
//! - proxies: `http_proxy`, `https_proxy` / `HTTPS_PROXY`, `all_proxy` /
//!   `ALL_PROXY` and `no_proxy` / `NO_PROXY`, read as curl reads them.
//!   Plain `http://` URLs go to the proxy as absolute-URI requests (what
//!   caching proxies such as squid and apt-cacher-ng expect), `https://`
//!   ones through a `CONNECT` tunnel. Errors name the proxy that was used.

mod forward;
mod origin;
mod proxy;
mod steady;
mod text;
mod trust;

use std::path::PathBuf;
use std::time::Duration;

use ureq::http::{self, Request, Response};
use ureq::{Agent, SendBody};

pub use origin::{final_url, same_origin, Origin};
pub use proxy::{no_proxy_matches, strip_userinfo};
pub use steady::Steady;
pub use text::{one_line, percent_decode};

/// How requests are sent.
#[derive(Clone, Debug)]
pub struct Policy {
    /// Extra PEM CA certificates trusted besides the system's (`--ca-file`).
    pub ca_file: Option<PathBuf>,
    /// `false` turns certificate checks off (`--tls-verify=false`).
    pub tls_verify: bool,
    /// Limit on setting up a connection (DNS, TCP, proxy, TLS).
    pub timeout_connect: Duration,
    /// Limit on waiting for a response's head.
    pub timeout_response: Duration,
    /// Limit on a whole request, body included (`None`: none, for large
    /// uploads and downloads of unknown size).
    pub timeout_global: Option<Duration>,
    /// The minimum-progress window ([`Steady`]): no byte for this long, or
    /// less than 1 KiB a second over it, fails a transfer. Default 60 s,
    /// or `FRESHEN_STALL_TIMEOUT` seconds.
    pub stall: Duration,
}

impl Default for Policy {
    fn default() -> Policy {
        Policy { ca_file: None, tls_verify: true, timeout_connect: Duration::from_secs(30), timeout_response: Duration::from_secs(300), timeout_global: None, stall: steady::window_from_env() }
    }
}

/// Failures of the client, each naming what it was about.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A CA file or a proxy variable that cannot be used.
    #[error("{0}")]
    Config(String),
    /// A request failed; `proxy` names the proxy it went through (without
    /// credentials).
    #[error("{source}{}", proxy.as_deref().map(|p| format!(" (through proxy {p})")).unwrap_or_default())]
    Request {
        #[source]
        source: ureq::Error,
        proxy: Option<String>,
    },
}

impl Error {
    /// The transport error, for callers that classify failures.
    pub fn ureq(&self) -> Option<&ureq::Error> {
        match self {
            Error::Request { source, .. } => Some(source),
            Error::Config(_) => None,
        }
    }
}

/// An HTTP client following [`Policy`] and the proxy environment.
pub struct Client {
    /// Straight to the server.
    direct: Agent,
    /// `https://` through `CONNECT` on the HTTPS proxy.
    tunnel: Option<(Agent, String)>,
    /// `http://` as absolute-URI requests to the HTTP proxy (redirects
    /// followed here).
    forward: Option<Forward>,
    no_proxy: Vec<String>,
    /// (connect, response) limits.
    timeouts: (Duration, Duration),
    stall: Duration,
}

/// The HTTP proxy.
struct Forward {
    proxy: proxy::ProxyUrl,
    /// For what the absolute-URI path does not carry (request bodies, an
    /// HTTPS proxy).
    tunnel: Agent,
}

impl Forward {
    fn is_plain(&self) -> bool {
        self.proxy.is_plain()
    }
}

const MAX_REDIRECTS: usize = 10;

impl Client {
    /// Builds the client: reads the trust store and the proxy variables.
    pub fn new(policy: &Policy) -> Result<Client, Error> {
        let roots = trust::root_certs(policy.ca_file.as_deref())?;
        let tls = ureq::tls::TlsConfig::builder().disable_verification(!policy.tls_verify).root_certs(roots).build();
        let config = |proxy: Option<ureq::Proxy>, redirects: u32| -> Agent {
            Agent::config_builder()
                .http_status_as_error(false)
                .tls_config(tls.clone())
                .proxy(proxy)
                .max_redirects(redirects)
                .timeout_connect(Some(policy.timeout_connect))
                .timeout_recv_response(Some(policy.timeout_response))
                .timeout_global(policy.timeout_global)
                .timeout_per_read(Some(policy.stall))
                .user_agent(concat!("freshen/", env!("CARGO_PKG_VERSION")))
                .build()
                .into()
        };
        let env = proxy::Env::read();
        let tunnel = match env.https() {
            Some(p) => {
                let parsed = proxy::ProxyUrl::parse(&p)?;
                let proxy = ureq::Proxy::new(&parsed.connect_form()).map_err(|e| Error::Config(format!("https_proxy {}: {e}", parsed.display)))?;
                Some((config(Some(proxy), 10), parsed.display))
            }
            None => None,
        };
        let forward = match env.http() {
            Some(p) => {
                let parsed = proxy::ProxyUrl::parse(&p)?;
                let proxy = ureq::Proxy::new(&parsed.connect_form()).map_err(|e| Error::Config(format!("http_proxy {}: {e}", parsed.display)))?;
                Some(Forward { tunnel: config(Some(proxy), 10), proxy: parsed })
            }
            None => None,
        };
        Ok(Client { direct: config(None, 10), tunnel, forward, no_proxy: env.no_proxy, timeouts: (policy.timeout_connect, policy.timeout_response), stall: policy.stall })
    }

    /// The proxy (without credentials) a request for `url` goes through.
    pub fn proxy_for(&self, url: &str) -> Option<&str> {
        let (scheme, host) = proxy::scheme_host(url)?;
        if no_proxy_matches(&self.no_proxy, host) {
            return None;
        }
        match scheme {
            "https" => self.tunnel.as_ref().map(|t| t.1.as_str()),
            "http" => self.forward.as_ref().map(|f| f.proxy.display.as_str()),
            _ => None,
        }
    }

    /// A response's body, at most `limit` bytes, read under the
    /// minimum-progress rule ([`Steady`]).
    pub fn body(&self, resp: Response<ureq::Body>, limit: u64) -> Steady<ureq::BodyReader<'static>> {
        Steady::new(resp.into_body().into_with_config().limit(limit).reader(), self.stall)
    }

    /// A GET with `headers`.
    pub fn get(&self, url: &str, headers: &[(&str, &str)]) -> Result<Response<ureq::Body>, Error> {
        let mut req = http::Request::get(url);
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        let req = req.body(SendBody::none()).map_err(|e| Error::Request { source: e.into(), proxy: None })?;
        self.run(req)
    }

    /// A POST of `body` (sent with its length) with `headers`.
    pub fn post(&self, url: &str, headers: &[(&str, &str)], body: &[u8]) -> Result<Response<ureq::Body>, Error> {
        use ureq::AsSendBody;
        let mut req = http::Request::post(url);
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        let mut bytes = body;
        let req = req.body(bytes.as_body()).map_err(|e| Error::Request { source: e.into(), proxy: None })?;
        self.run(req)
    }

    /// Sends `req` directly or through the proxy its URL calls for. Any
    /// status comes back as a response; only transport failures are errors.
    /// The URL that answered is kept with the response ([`final_url`]).
    pub fn run(&self, req: Request<SendBody>) -> Result<Response<ureq::Body>, Error> {
        self.run_hop(req, 0)
    }

    fn run_hop(&self, req: Request<SendBody>, hops: usize) -> Result<Response<ureq::Body>, Error> {
        let url = req.uri().to_string();
        let Some(proxy) = self.proxy_for(&url).map(str::to_string) else {
            return self.direct.run(req).map(answered).map_err(|source| Error::Request { source, proxy: None });
        };
        let err = |source: ureq::Error| Error::Request { source, proxy: Some(proxy.clone()) };
        match (&self.tunnel, &self.forward) {
            (Some((agent, _)), _) if url.starts_with("https://") => agent.run(req).map(answered).map_err(err),
            (_, Some(forward)) if forward.is_plain() && (req.method() == http::Method::GET || req.method() == http::Method::HEAD) => {
                let target = req.uri().clone();
                let mut resp = forward::send(&forward.proxy, req.method(), &target, req.headers(), self.timeouts.0, self.timeouts.1).map_err(err)?;
                resp.extensions_mut().insert(origin::FinalUrl(target.clone()));
                let location = resp.headers().get("location").and_then(|l| l.to_str().ok());
                let Some(next) = location.filter(|_| resp.status().is_redirection()).and_then(|l| proxy::join(&target, l)) else { return Ok(resp) };
                if hops >= MAX_REDIRECTS {
                    return Err(err(ureq::Error::TooManyRedirects));
                }
                let mut again = Request::builder().method(req.method().clone()).uri(next);
                for (k, v) in req.headers().iter().filter(|(k, _)| *k != http::header::HOST && *k != http::header::AUTHORIZATION) {
                    again = again.header(k, v);
                }
                let again = again.body(SendBody::none()).map_err(|e| err(e.into()))?;
                self.run_hop(again, hops + 1)
            }
            // Other methods, and HTTPS proxies: a CONNECT tunnel.
            (_, Some(forward)) => forward.tunnel.run(req).map(answered).map_err(err),
            _ => self.direct.run(req).map(answered).map_err(|source| Error::Request { source, proxy: None }),
        }
    }
}

/// Files the URL that answered (after ureq's redirects) with the response.
fn answered(mut resp: Response<ureq::Body>) -> Response<ureq::Body> {
    let uri = ureq::ResponseExt::get_uri(&resp).clone();
    resp.extensions_mut().insert(origin::FinalUrl(uri));
    resp
}
