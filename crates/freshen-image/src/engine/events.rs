//! The Engine's event stream (`GET /events`): one JSON object per line,
//! streamed (chunked) for as long as the connection lasts.
//! [`follow_forever`] reads it, reconnects with a growing delay when the
//! Engine goes away, and blocks in reads (no polling) while nothing
//! happens.

use std::io::{self, BufReader};
use std::time::Duration;

use serde::Deserialize;

use super::{http, Engine};
use crate::error::Error;
use crate::transport::Transport;

/// The events freshen listens for: containers created or started, images
/// loaded, tagged or pulled.
const FILTERS: &str = r#"{"type":["container","image"],"event":["create","start","load","tag","pull"]}"#;
/// Longest event line accepted.
const EVENT_LINE_LIMIT: usize = 1 << 20;
/// Delays between reconnection attempts: doubling from the first to the last.
const BACKOFF: (Duration, Duration) = (Duration::from_secs(1), Duration::from_secs(60));

/// One event of the Engine.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
pub struct Event {
    /// `container`, `image`, ...
    #[serde(rename = "Type", default)]
    pub kind: String,
    /// `start`, `create`, `load`, `tag`, `pull`, ...
    #[serde(rename = "Action", default)]
    pub action: String,
    #[serde(rename = "Actor", default)]
    pub actor: Actor,
}

/// What an event is about.
#[derive(Clone, Debug, Default, PartialEq, Eq, Deserialize)]
pub struct Actor {
    /// The container's or image's id (or name).
    #[serde(rename = "ID", default)]
    pub id: String,
}

/// What [`follow_forever`] reports.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Notice {
    /// The stream is open; `again` when it was lost before (events in
    /// between were missed).
    Connected { again: bool },
    Event(Event),
    /// The stream ended or could not be opened; retried after `retry`.
    Lost { error: String, retry: Duration },
}

/// How one event stream ended.
enum End {
    /// `on` returned false.
    Stopped,
    /// Nothing came for the client's idle timeout: the stream was open
    /// all along, so nothing was missed.
    Stalled,
    /// The Engine went away or could not be reached; whether the stream
    /// had been open.
    Lost { opened: bool, error: Error },
}

/// Reads one event stream of the Engine `t` names until it ends. `on`
/// hears [`Notice::Connected`] (when `announce`) once the Engine has
/// accepted the request, then each event.
fn follow(t: &Transport, announce: Option<bool>, on: &mut dyn FnMut(Notice) -> bool) -> End {
    let opened = (|| {
        let engine = Engine::new(t)?;
        let path = format!("/events?filters={}", http::escape(FILTERS));
        let resp = engine.call("GET", &path, None)?;
        Ok((engine.check(resp, "following events")?, engine.url))
    })();
    let (resp, url) = match opened {
        Ok(r) => r,
        Err(error) => return End::Lost { opened: false, error },
    };
    if let Some(again) = announce {
        if !on(Notice::Connected { again }) {
            return End::Stopped;
        }
    }
    let mut lines = BufReader::new(resp.body);
    loop {
        let line = match http::read_line(&mut lines, EVENT_LINE_LIMIT) {
            Ok(line) => line,
            Err(e) if matches!(e.kind(), io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut) => return End::Stalled,
            Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => {
                return End::Lost { opened: true, error: Error::Invalid(format!("the Docker Engine at {url} closed the event stream")) }
            }
            Err(e) => return End::Lost { opened: true, error: Error::Invalid(format!("the Docker Engine at {url}: event stream: {e}")) },
        };
        // A line this freshen cannot read is skipped, not fatal.
        if let Ok(event) = serde_json::from_slice::<Event>(&line) {
            if !on(Notice::Event(event)) {
                return End::Stopped;
            }
        }
    }
}

/// Follows the event stream for as long as `on` returns true, reconnecting
/// after 1 s, 2 s, 4 s, ... (at most 60 s) while the Engine is away; the
/// delay starts over once a stream has been open. A stream that was only
/// quiet for the client's idle timeout is reopened at once, unannounced.
/// `sleep` waits between attempts and returns false to give up (a stop
/// was asked for).
pub fn follow_forever(t: &Transport, on: &mut dyn FnMut(Notice) -> bool, sleep: &dyn Fn(Duration) -> bool) {
    let mut delay = BACKOFF.0;
    let mut announce = Some(false);
    loop {
        match follow(t, announce, on) {
            End::Stopped => return,
            End::Stalled => announce = None,
            End::Lost { opened, error } => {
                if opened {
                    delay = BACKOFF.0;
                }
                announce = Some(true);
                if !on(Notice::Lost { error: error.to_string(), retry: delay }) || !sleep(delay) {
                    return;
                }
                delay = (delay * 2).min(BACKOFF.1);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{BufRead, Write};
    use std::os::unix::net::UnixListener;

    /// An Engine on a unix socket that answers each connection with these
    /// chunked event lines and closes it.
    fn engine(lines: Vec<&'static str>, connections: usize) -> (std::path::PathBuf, Transport, std::thread::JoinHandle<Vec<String>>) {
        let dir = std::env::temp_dir().join(format!("freshen-events-test-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let sock = dir.join("docker.sock");
        let listener = UnixListener::bind(&sock).unwrap();
        let server = std::thread::spawn(move || {
            let mut paths = Vec::new();
            for _ in 0..connections {
                let (mut s, _) = listener.accept().unwrap();
                let mut head = String::new();
                let mut r = std::io::BufReader::new(s.try_clone().unwrap());
                r.read_line(&mut head).unwrap();
                paths.push(head.split_whitespace().nth(1).unwrap().to_string());
                loop {
                    let mut h = String::new();
                    if r.read_line(&mut h).unwrap() == 0 || h.trim().is_empty() {
                        break;
                    }
                }
                let mut out = b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n".to_vec();
                for l in &lines {
                    let l = format!("{l}\n");
                    out.extend(format!("{:x}\r\n{l}\r\n", l.len()).bytes());
                }
                s.write_all(&out).unwrap();
            }
            paths
        });
        let t = Transport { docker_host: Some(format!("unix://{}", sock.display())), ..Transport::default() };
        (dir, t, server)
    }

    #[test]
    fn events_are_read_and_a_lost_engine_is_retried() {
        let start = r#"{"Type":"container","Action":"start","Actor":{"ID":"c1","Attributes":{"image":"app:1"}},"time":1}"#;
        let (dir, t, server) = engine(vec![start, "not json", "", r#"{"Type":"image","Action":"tag","Actor":{"ID":"sha256:ab"}}"#], 2);
        let mut seen = Vec::new();
        let slept = std::cell::RefCell::new(Vec::new());
        follow_forever(
            &t,
            &mut |n| {
                seen.push(n);
                seen.iter().filter(|n| matches!(n, Notice::Connected { .. })).count() < 2 || !matches!(seen.last(), Some(Notice::Event(_)))
            },
            &|d| {
                slept.borrow_mut().push(d);
                true
            },
        );
        let paths = server.join().unwrap();
        assert!(paths.iter().all(|p| p.starts_with("/events?filters=%7B%22type%22")), "{paths:?}");
        let event = |kind: &str, action: &str, id: &str| Notice::Event(Event { kind: kind.into(), action: action.into(), actor: Actor { id: id.into() } });
        assert_eq!(seen[..4], [Notice::Connected { again: false }, event("container", "start", "c1"), event("image", "tag", "sha256:ab"), seen[3].clone()]);
        assert!(matches!(&seen[3], Notice::Lost { error, retry } if error.contains("closed the event stream") && *retry == BACKOFF.0), "{seen:?}");
        assert_eq!(seen[4], Notice::Connected { again: true });
        assert_eq!(*slept.borrow(), [BACKOFF.0]);
        let _ = std::fs::remove_dir_all(&dir);

        // No Engine: retried with a doubling delay until told to stop.
        let t = Transport { docker_host: Some("unix:///nonexistent/docker.sock".into()), ..Transport::default() };
        let slept = std::cell::RefCell::new(Vec::new());
        follow_forever(&t, &mut |_| true, &|d| {
            slept.borrow_mut().push(d);
            slept.borrow().len() < 8
        });
        let secs: Vec<u64> = slept.borrow().iter().map(Duration::as_secs).collect();
        assert_eq!(secs, [1, 2, 4, 8, 16, 32, 60, 60]);
    }
}
