//! Notifications from real passes: the hermetic image (a pending security
//! fix of libfoo with CVEs, from the signed test repository on 127.0.0.1)
//! and an image that cannot be read give a `pending` and a `failed`
//! event; they reach a webhook the test serves on 127.0.0.1 (failing twice
//! before it accepts) and a command; the pending fix and the failure are
//! told once, across passes and processes; failing receivers are logged
//! and change nothing of the pass. `watch` notifies too, and speaks systemd's notification
//! protocol (READY, WATCHDOG, STOPPING) to a socket the test binds.
//! (Patched and rolled-back events are checked in deploy.rs, with dockerd.)

mod common;

use std::io::{BufReader, Read, Write};
use std::net::TcpListener;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::host::hermetic_image;
use common::*;
use serde_json::Value;

/// A webhook receiver on 127.0.0.1: answers 500 to the first `fail`
/// requests, then 204; keeps every request's body.
struct Hook {
    url: String,
    bodies: Arc<Mutex<Vec<Value>>>,
}

impl Hook {
    fn start(fail: usize) -> Hook {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("http://{}/hook", listener.local_addr().unwrap());
        let bodies: Arc<Mutex<Vec<Value>>> = Default::default();
        let seen = bodies.clone();
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                let Ok(mut stream) = stream else { continue };
                let mut reader = BufReader::new(stream.try_clone().unwrap());
                let head = RequestHead::read(&mut reader).expect("a request");
                let mut body = vec![0; head.length()];
                reader.read_exact(&mut body).unwrap();
                assert!(head.line.starts_with("POST /hook "), "{}", head.line);
                let mut all = seen.lock().unwrap();
                all.push(serde_json::from_slice(&body).unwrap_or(Value::Null));
                let status = if all.len() <= fail { "500 Internal Server Error" } else { "204 No Content" };
                let _ = stream.write_all(format!("HTTP/1.1 {status}\r\ncontent-length: 0\r\nconnection: close\r\n\r\n").as_bytes());
            }
        });
        Hook { url, bodies }
    }

    fn bodies(&self) -> Vec<Value> {
        self.bodies.lock().unwrap().clone()
    }
}

/// A port nothing listens on.
fn closed_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// The JSON lines a command receiver appended to `file`.
fn lines(file: &Path) -> Vec<Value> {
    std::fs::read_to_string(file).unwrap_or_default().lines().map(|l| serde_json::from_str(l).unwrap()).collect()
}

struct Host {
    work: std::path::PathBuf,
    hermetic: String,
    broken: String,
}

impl Host {
    fn new() -> Host {
        let work = tempdir();
        let broken = format!("dir:{}", work.join("no-such-image").display());
        Host { hermetic: hermetic_image(), broken, work }
    }

    /// `freshen run --dry-run` with `notify` as the [notify] table; the
    /// Engine is not there (discovery fails, exit 1), the images are.
    fn run(&self, notify: &str) -> std::process::Output {
        let config = self.work.join("freshen.toml");
        std::fs::write(&config, format!("images = [{:?}, {:?}]\n[notify]\n{notify}", self.hermetic, self.broken)).unwrap();
        let state = self.work.join("state");
        let out = freshen(&["run", "--dry-run", "--config", config.to_str().unwrap(), "--state", state.to_str().unwrap(), "--docker-host", "unix:///nonexistent/docker.sock"], &self.work.join("cache"));
        assert_eq!(out.status.code(), Some(1), "{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
        out
    }
}

fn event<'a>(events: &'a [Value], kind: &str) -> Vec<&'a Value> {
    events.iter().filter(|e| e["event"] == kind).collect()
}

#[test]
fn events_reach_a_retried_webhook_and_a_command_and_a_pending_fix_is_told_once() {
    let h = Host::new();
    let hook = Hook::start(2);
    let told = h.work.join("told.jsonl");
    let notify = format!("webhook = {:?}\ncommand = [\"/bin/sh\", \"-c\", \"cat >> {}; echo >> {}\"]\npending_after = \"0s\"\n", hook.url, told.display(), told.display());
    h.run(&notify);

    // Two events; the first was tried three times (500, 500, 204).
    let bodies = hook.bodies();
    assert_eq!(bodies.len(), 4, "{bodies:#?}");
    assert_eq!(bodies[0], bodies[1]);
    assert_eq!(bodies[1], bodies[2]);
    let events = &bodies[2..];
    assert_eq!(lines(&told), events, "the command got the same events");
    let failed = event(events, "failed");
    assert_eq!(failed.len(), 1, "{events:#?}");
    assert_eq!((failed[0]["target"]["kind"].as_str(), failed[0]["target"]["name"].as_str()), (Some("image"), Some(h.broken.as_str())));
    assert!(failed[0]["reason"].as_str().is_some_and(|r| r.contains("no-such-image")), "{:#}", failed[0]);
    let pending = event(events, "pending");
    assert_eq!(pending.len(), 1, "{events:#?}");
    let p = pending[0];
    assert_eq!((p["target"]["name"].as_str(), p["target"]["image"].as_str()), (Some(h.hermetic.as_str()), Some(h.hermetic.as_str())));
    assert_eq!(p["packages"].as_array().unwrap().iter().map(|p| p["package"].as_str().unwrap()).collect::<Vec<_>>(), ["libfoo"]);
    assert_eq!(p["packages"][0]["installed"], "1:1.9-1");
    let cves: Vec<&str> = p["cves"].as_array().unwrap().iter().map(|c| c.as_str().unwrap()).collect();
    assert!(!cves.is_empty() && cves.iter().all(|c| c.starts_with("CVE-")), "{p:#}");
    assert!(p["exposure_seconds"].as_i64().is_some_and(|s| s >= 0), "{p:#}");
    assert!(p["host"].as_str().is_some_and(|h| !h.is_empty()));

    // The next pass (another process): the same failure for the same
    // reason is not told again, nor is the pending fix.
    h.run(&notify);
    let again = &hook.bodies()[4..];
    assert!(again.is_empty(), "{again:#?}");
    assert_eq!(lines(&told).len(), 2);
}

#[test]
fn failing_receivers_are_logged_and_change_nothing() {
    let h = Host::new();
    let quiet = h.run("");
    let started = Instant::now();
    let notify = format!("webhook = \"http://127.0.0.1:{}/hook\"\ncommand = [\"/bin/sh\", \"-c\", \"exec sleep 30\"]\ntimeout = \"1s\"\nretries = 1\npending_after = \"0s\"\n", closed_port());
    let out = h.run(&notify);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("the webhook failed") && err.contains("2 attempts"), "{err}");
    assert!(err.contains("the command failed") && err.contains("killed"), "{err}");
    assert!(started.elapsed() < Duration::from_secs(25), "{:?}", started.elapsed());
    assert_eq!(out.stdout, quiet.stdout, "the pass reports the same");
    let st = common::host::status(&h.work.join("state"));
    assert_eq!(common::host::target(&st, &h.hermetic)["pending_security"], 1);
}

#[test]
fn watch_notifies_and_speaks_to_systemd() {
    use std::os::unix::net::UnixDatagram;
    let h = Host::new();
    let hook = Hook::start(0);
    let socket = h.work.join("notify.sock");
    let systemd = UnixDatagram::bind(&socket).unwrap();
    systemd.set_read_timeout(Some(Duration::from_secs(60))).unwrap();
    let config = h.work.join("freshen.toml");
    std::fs::write(&config, format!("images = [{:?}]\n[notify]\nwebhook = {:?}\npending_after = \"0s\"\n", h.hermetic, hook.url)).unwrap();
    let state = h.work.join("state");
    let mut child = freshen_command(&["watch", "--dry-run", "--config", config.to_str().unwrap(), "--state", state.to_str().unwrap(), "--docker-host", "unix:///nonexistent/docker.sock"], &h.work.join("cache"))
        .env("NOTIFY_SOCKET", &socket)
        .env("WATCHDOG_USEC", "400000")
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let mut got = Vec::new();
    let mut buf = [0u8; 512];
    let deadline = Instant::now() + Duration::from_secs(60);
    // READY first, pings, and the pass's event at the webhook.
    while Instant::now() < deadline && !(got.iter().filter(|m: &&String| *m == "WATCHDOG=1").count() >= 2 && !hook.bodies().is_empty() && got.iter().any(|m| m == "STATUS=watching" )) {
        let n = systemd.recv(&mut buf).unwrap();
        got.push(String::from_utf8_lossy(&buf[..n]).into_owned());
    }
    let ready = got.iter().position(|m| m.starts_with("READY=1")).unwrap_or_else(|| panic!("{got:?}"));
    assert!(got[ready..].iter().any(|m| m.starts_with("STATUS=pass: start")), "{got:?}");
    assert!(got.iter().filter(|m| *m == "WATCHDOG=1").count() >= 2, "{got:?}");
    let bodies = hook.bodies();
    assert_eq!(bodies.len(), 1, "{bodies:#?}");
    assert_eq!((bodies[0]["event"].as_str(), bodies[0]["target"]["name"].as_str()), (Some("pending"), Some(h.hermetic.as_str())));
    terminate(child.id());
    let mut stopping = false;
    while let Ok(n) = systemd.recv(&mut buf) {
        if &buf[..n] == b"STOPPING=1" {
            stopping = true;
            break;
        }
    }
    assert!(stopping, "no STOPPING=1");
    assert_eq!(child.wait().unwrap().code(), Some(0));
}

fn terminate(pid: u32) {
    let st = std::process::Command::new("kill").arg("-TERM").arg(pid.to_string()).status().unwrap();
    assert!(st.success());
}
