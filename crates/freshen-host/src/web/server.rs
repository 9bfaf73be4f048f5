//! The HTTP server: one thread answering one request at a time (each
//! renders in milliseconds), until [`Server::stop`].

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::thread::JoinHandle;

use chrono::Utc;
use tiny_http::{Header, Method, Request, Response};
use tracing::warn;

use super::{metrics, page, Live};
use crate::error::{Error, Result};
use crate::report::StatusReport;
use crate::state::State;

/// A running server.
pub struct Server {
    http: Arc<tiny_http::Server>,
    thread: Option<JoinHandle<()>>,
    addr: SocketAddr,
}

impl Server {
    /// The address it listens on (the port chosen, for port 0).
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Stops answering and waits for the request in flight.
    pub fn stop(mut self) {
        self.http.unblock();
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// Serves the state database under `state_dir` on `addr`.
pub fn serve(addr: SocketAddr, state_dir: PathBuf, live: Arc<Live>) -> Result<Server> {
    let http = Arc::new(tiny_http::Server::http(addr).map_err(|e| Error::Listen { addr, message: e.to_string() })?);
    let bound = http.server_addr().to_ip().unwrap_or(addr);
    let server = http.clone();
    let thread = std::thread::Builder::new()
        .name("freshen-web".into())
        .spawn(move || {
            for request in server.incoming_requests() {
                answer(request, &state_dir, &live);
            }
        })
        .map_err(|e| Error::Listen { addr, message: e.to_string() })?;
    Ok(Server { http, thread: Some(thread), addr: bound })
}

fn header(name: &str, value: &str) -> Header {
    Header::from_bytes(name.as_bytes(), value.as_bytes()).expect("a valid header")
}

fn answer(request: Request, state_dir: &std::path::Path, live: &Live) {
    let path = request.url().split('?').next().unwrap_or("/").to_string();
    let (status, content_type, body) = if !matches!(request.method(), Method::Get | Method::Head) {
        (405, "text/plain; charset=utf-8", "only GET and HEAD\n".to_string())
    } else {
        route(&path, state_dir, live)
    };
    let mut response = Response::from_string(body)
        .with_status_code(status)
        .with_header(header("Content-Type", content_type))
        .with_header(header("Cache-Control", "no-store"))
        .with_header(header("X-Content-Type-Options", "nosniff"));
    if content_type.starts_with("text/html") {
        // Inline CSS only: no script, no frame, no outside resource.
        response = response
            .with_header(header("Content-Security-Policy", "default-src 'none'; style-src 'unsafe-inline'; img-src data:; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"))
            .with_header(header("Referrer-Policy", "no-referrer"));
    }
    if let Err(e) = request.respond(response) {
        warn!(path = %path, error = %e, "cannot answer an HTTP request");
    }
}

fn route(path: &str, state_dir: &std::path::Path, live: &Live) -> (u16, &'static str, String) {
    const HTML: &str = "text/html; charset=utf-8";
    const TEXT: &str = "text/plain; charset=utf-8";
    let now = Utc::now();
    let state = || State::open_reader(state_dir);
    let result = match path {
        "/healthz" => return (200, TEXT, "ok\n".into()),
        "/" => state().and_then(|s| page::render(&s, std::path::Path::new("/"), now)).map(|b| (HTML, b)).map_err(|e| (HTML, page::error(&e.to_string(), now))),
        "/metrics" => state().and_then(|s| metrics::render(&s, live, now)).map(|b| (metrics::CONTENT_TYPE, b)).map_err(|e| (TEXT, format!("{e}\n"))),
        "/api/status" => state()
            .and_then(|s| StatusReport::read(&s, std::path::Path::new("/"), now))
            .map(|r| ("application/json", serde_json::to_string_pretty(&r).unwrap_or_default() + "\n"))
            .map_err(|e| ("application/json", serde_json::json!({ "error": e.to_string() }).to_string() + "\n")),
        _ => return (404, TEXT, "not found: try /, /metrics, /api/status or /healthz\n".into()),
    };
    match result {
        Ok((t, body)) => (200, t, body),
        Err((t, body)) => (503, t, body),
    }
}
