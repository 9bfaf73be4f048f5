//! Containers of the Docker Engine: inspect, create, start, stop, rename,
//! remove, connect to a network, the tail of the logs, and the list of all
//! containers, each one request. Inspects are raw JSON: a recreate copies
//! what it does not understand. Errors carry the Engine's message and what
//! was being done.

use std::io::Read;

use serde_json::Value;

use super::{http, ContainerSummary, Engine};
use crate::error::{Error, Result};
use crate::transport::Transport;

use http::Body;

/// All containers, running or not (`GET /containers/json?all=1`).
pub fn all_containers(t: &Transport) -> Result<Vec<ContainerSummary>> {
    list(t, "/containers/json?all=1")
}

/// The containers, running or not, that carry `label` (`KEY` or
/// `KEY=VALUE`).
pub(super) fn labelled_containers(t: &Transport, label: &str) -> Result<Vec<ContainerSummary>> {
    let filters = serde_json::json!({ "label": [label] }).to_string();
    list(t, &format!("/containers/json?all=1&filters={}", http::escape(&filters)))
}

fn list(t: &Transport, path: &str) -> Result<Vec<ContainerSummary>> {
    let engine = Engine::new(t)?;
    let bytes = engine.json_call("GET", path, None, "listing containers")?;
    serde_json::from_slice(&bytes).map_err(|e| Error::Invalid(format!("the Docker Engine at {} sent an unreadable container list: {e}", engine.url)))
}

/// `GET /containers/{id}/json`, or `None` when there is no such container.
pub fn inspect_container(t: &Transport, id: &str) -> Result<Option<Value>> {
    inspect(t, &format!("/containers/{}/json", http::escape(id)), &format!("inspecting container {id}"))
}

/// `GET /images/{name}/json`, or `None` when there is no such image.
pub fn inspect_image(t: &Transport, name: &str) -> Result<Option<Value>> {
    inspect(t, &format!("/images/{}/json", http::escape(name)), &format!("inspecting image {name}"))
}

fn inspect(t: &Transport, path: &str, what: &str) -> Result<Option<Value>> {
    let engine = Engine::new(t)?;
    let resp = engine.call("GET", path, None)?;
    if resp.status == 404 {
        return Ok(None);
    }
    let resp = engine.check(resp, what)?;
    let bytes = engine.read_small(resp.body, what)?;
    serde_json::from_slice(&bytes).map(Some).map_err(|e| Error::Invalid(format!("{what}: the Docker Engine at {} sent unreadable JSON: {e}", engine.url)))
}

/// Creates container `name` from `body` (`POST /containers/create`: the
/// container `Config` with `HostConfig` and `NetworkingConfig`); returns
/// its id.
pub fn create_container(t: &Transport, name: &str, body: &Value) -> Result<String> {
    let engine = Engine::new(t)?;
    let what = format!("creating container {name}");
    let bytes = engine.json_call("POST", &format!("/containers/create?name={}", http::escape(name)), Some(body), &what)?;
    let created: Value = serde_json::from_slice(&bytes).map_err(|e| Error::Invalid(format!("{what}: the Docker Engine at {} sent unreadable JSON: {e}", engine.url)))?;
    created["Id"].as_str().map(str::to_string).ok_or_else(|| Error::Invalid(format!("{what}: the Docker Engine at {} sent no container id", engine.url)))
}

/// Starts a container; one already running is left alone.
pub fn start_container(t: &Transport, id: &str) -> Result<()> {
    action(t, "POST", &format!("/containers/{}/start", http::escape(id)), None, &format!("starting container {id}"))
}

/// Stops a container with its own stop signal and timeout (no `t`: the
/// Engine uses the container's `StopSignal` and `StopTimeout`, then kills
/// it); one already stopped is left alone.
pub fn stop_container(t: &Transport, id: &str) -> Result<()> {
    action(t, "POST", &format!("/containers/{}/stop", http::escape(id)), None, &format!("stopping container {id}"))
}

/// Renames a container (running or not).
pub fn rename_container(t: &Transport, id: &str, new_name: &str) -> Result<()> {
    let path = format!("/containers/{}/rename?name={}", http::escape(id), http::escape(new_name));
    action(t, "POST", &path, None, &format!("renaming container {id} to {new_name}"))
}

/// Removes a container, keeping its volumes; `force` kills it first if it
/// runs.
pub fn remove_container(t: &Transport, id: &str, force: bool) -> Result<()> {
    let path = format!("/containers/{}?force={}", http::escape(id), if force { 1 } else { 0 });
    action(t, "DELETE", &path, None, &format!("removing container {id}"))
}

/// Connects a container to a network with `endpoint` (an
/// `EndpointSettings`: aliases, IPAM configuration, links, ...).
pub fn connect_network(t: &Transport, network: &str, container: &str, endpoint: &Value) -> Result<()> {
    let body = serde_json::json!({ "Container": container, "EndpointConfig": endpoint });
    let what = format!("connecting container {container} to network {network}");
    action(t, "POST", &format!("/networks/{}/connect", http::escape(network)), Some(&body), &what)
}

/// The last `lines` lines of a container's stdout and stderr, interleaved
/// as written. `tty` says whether the container has a terminal: without
/// one the Engine frames each write with an 8-byte header.
pub fn container_logs(t: &Transport, id: &str, lines: usize, tty: bool) -> Result<Vec<String>> {
    let engine = Engine::new(t)?;
    let what = format!("reading the logs of container {id}");
    let path = format!("/containers/{}/logs?stdout=1&stderr=1&tail={lines}", http::escape(id));
    let resp = engine.call("GET", &path, None)?;
    let resp = engine.check(resp, &what)?;
    let bytes = engine.read_small(resp.body, &what)?;
    let text = if tty { bytes } else { demultiplex(&bytes) };
    let text = String::from_utf8_lossy(&text);
    let all: Vec<String> = text.lines().map(|l| l.trim_end_matches('\r').to_string()).collect();
    Ok(all[all.len().saturating_sub(lines)..].to_vec())
}

/// The payloads of a multiplexed log stream (each frame: stream type,
/// three zero bytes, a big-endian u32 length, the data); a frame cut
/// short keeps what arrived.
fn demultiplex(mut bytes: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(bytes.len());
    while bytes.len() >= 8 {
        let len = u32::from_be_bytes([bytes[4], bytes[5], bytes[6], bytes[7]]) as usize;
        let end = (8 + len).min(bytes.len());
        out.extend_from_slice(&bytes[8..end]);
        bytes = &bytes[end..];
    }
    out
}

/// A request whose answer is not needed; `304 Not Modified` (already
/// started, already stopped) counts as done.
fn action(t: &Transport, method: &str, path: &str, body: Option<&Value>, what: &str) -> Result<()> {
    let engine = Engine::new(t)?;
    engine.json_call(method, path, body, what).map(drop)
}

impl Engine {
    /// Sends a request with an optional JSON body; returns the answer's
    /// bytes (empty for `304 Not Modified`).
    fn json_call(&self, method: &str, path: &str, body: Option<&Value>, what: &str) -> Result<Vec<u8>> {
        let json = body.map(|b| serde_json::to_vec(b).expect("a JSON value serialises"));
        let mut reader = json.as_deref().unwrap_or_default();
        let body = json.as_ref().map(|j| Body { content_type: "application/json", len: j.len() as u64, reader: &mut reader as &mut dyn Read });
        let resp = self.call(method, path, body)?;
        if resp.status == 304 {
            return Ok(Vec::new());
        }
        let resp = self.check(resp, what)?;
        self.read_small(resp.body, what)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn demultiplexes_log_frames() {
        let mut framed = Vec::new();
        for (stream, data) in [(1u8, &b"out one\n"[..]), (2, b"err\n"), (1, b"out two\nthree")] {
            framed.extend_from_slice(&[stream, 0, 0, 0]);
            framed.extend_from_slice(&(data.len() as u32).to_be_bytes());
            framed.extend_from_slice(data);
        }
        assert_eq!(demultiplex(&framed), b"out one\nerr\nout two\nthree");
        framed.truncate(framed.len() - 3);
        assert_eq!(demultiplex(&framed), b"out one\nerr\nout two\nth", "a frame cut short keeps what arrived");
        assert_eq!(demultiplex(&[1, 0, 0]), b"");
    }
}
