//! Notifications: after each pass ([`after_pass`]), one event per target
//! patched, rolled back or failed (a failure for the reason of the one
//! before it not again), and one per target with security fixes
//! pending longer than `pending_after` (each fix told once, remembered in
//! the state database). Events go to a webhook (a JSON POST, retried with
//! backoff) and/or a command (the JSON on its stdin), delivered by a
//! thread of their own from a bounded queue, so a slow or failing receiver
//! never holds up a pass; its failures are logged, never fatal.

use std::collections::BTreeSet;
use std::io::Write;
use std::process::{Command, Stdio};
use std::sync::mpsc::{sync_channel, Receiver, SyncSender, TrySendError};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use serde::Serialize;
use tracing::{info, warn};

use crate::config::Notify;
use crate::model::{Action, Outcome, Pending};
use crate::state::{Overdue, State, TargetStatus};

/// Events waiting for delivery beyond this are dropped (and logged).
pub const QUEUE: usize = 64;
/// The first wait before a webhook request is tried again; it doubles.
pub const FIRST_RETRY: Duration = Duration::from_secs(1);

/// What happened.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Kind {
    Patched,
    RolledBack,
    Failed,
    /// Security fixes pending longer than `pending_after`.
    Pending,
}

impl Kind {
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Patched => "patched",
            Kind::RolledBack => "rolled-back",
            Kind::Failed => "failed",
            Kind::Pending => "pending",
        }
    }
}

/// One notification, as receivers get it (JSON).
#[derive(Clone, Debug, Serialize)]
pub struct Event {
    pub event: Kind,
    pub at: DateTime<Utc>,
    /// This host's name.
    pub host: String,
    pub target: EventTarget,
    /// Patched: the fixes put into service; otherwise the security fixes
    /// still pending (pending: those pending too long).
    pub packages: Vec<EventPackage>,
    /// Every CVE of `packages`, sorted.
    pub cves: Vec<String>,
    /// Patched: the exposure window the patch closed; otherwise the
    /// longest open one among `packages`.
    pub exposure_seconds: Option<i64>,
    pub reason: Option<String>,
}

#[derive(Clone, Debug, Serialize)]
pub struct EventTarget {
    pub kind: String,
    pub name: String,
    pub image: String,
}

#[derive(Clone, Debug, Serialize)]
pub struct EventPackage {
    pub package: String,
    pub arch: String,
    pub installed: String,
    pub candidate: String,
    pub cves: Vec<String>,
}

impl From<&Pending> for EventPackage {
    fn from(p: &Pending) -> EventPackage {
        EventPackage { package: p.package.clone(), arch: p.arch.clone(), installed: p.installed.clone(), candidate: p.candidate.clone(), cves: p.cves.clone() }
    }
}

fn cves(packages: &[EventPackage]) -> Vec<String> {
    packages.iter().flat_map(|p| p.cves.iter().cloned()).collect::<BTreeSet<_>>().into_iter().collect()
}

fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname").map(|h| h.trim().to_string()).unwrap_or_default()
}

/// The events of a pass's outcomes; `status` (read after the pass was
/// recorded) gives the exposure.
pub fn outcome_events(outcomes: &[Outcome], status: &[TargetStatus], now: DateTime<Utc>) -> Vec<Event> {
    let host = hostname();
    outcomes
        .iter()
        .filter_map(|o| {
            let kind = match o.action {
                Action::Patched => Kind::Patched,
                Action::RolledBack => Kind::RolledBack,
                Action::Failed => Kind::Failed,
                Action::Unchanged | Action::Skipped => return None,
            };
            let t = &o.target;
            let st = status.iter().find(|s| s.kind == t.kind.as_str() && s.name == t.name);
            let (packages, exposure): (Vec<EventPackage>, _) = match kind {
                Kind::Patched => (o.fixed.iter().map(EventPackage::from).collect(), st.and_then(|s| s.last_exposure_seconds)),
                _ => (o.pending.iter().flatten().filter(|p| p.counts()).map(EventPackage::from).collect(), st.and_then(|s| s.exposure_seconds)),
            };
            Some(Event {
                event: kind,
                at: now,
                host: host.clone(),
                target: EventTarget { kind: t.kind.as_str().into(), name: t.name.clone(), image: t.image.clone() },
                cves: cves(&packages),
                packages,
                exposure_seconds: exposure,
                reason: o.reason.clone(),
            })
        })
        .collect()
}

/// One `pending` event per target among `overdue` (sorted by target).
pub fn overdue_events(overdue: &[Overdue], after: Duration, now: DateTime<Utc>) -> Vec<Event> {
    let host = hostname();
    let mut events: Vec<Event> = Vec::new();
    for o in overdue {
        let same = events.last_mut().filter(|e| e.target.kind == o.kind && e.target.name == o.name);
        let e = match same {
            Some(e) => e,
            None => {
                events.push(Event {
                    event: Kind::Pending,
                    at: now,
                    host: host.clone(),
                    target: EventTarget { kind: o.kind.clone(), name: o.name.clone(), image: o.image.clone() },
                    packages: Vec::new(),
                    cves: Vec::new(),
                    exposure_seconds: None,
                    reason: None,
                });
                events.last_mut().expect("just pushed")
            }
        };
        e.packages.push(EventPackage::from(&o.fix.pending));
        e.exposure_seconds = e.exposure_seconds.max(o.fix.exposure_seconds);
    }
    for e in &mut events {
        e.cves = cves(&e.packages);
        e.reason = Some(format!("{} security fixes pending longer than {}", e.packages.len(), crate::duration::Span(after)));
    }
    events
}

/// Runs after every pass of `run` and `watch`: queues the pass's events
/// and those of fixes newly pending too long, which are then remembered as
/// told. Nothing is done without a receiver.
pub fn after_pass(notifier: Option<&Notifier>, state: &State, outcomes: &[Outcome]) {
    let Some(n) = notifier else { return };
    let now = Utc::now();
    let status = state.status(now).unwrap_or_else(|e| {
        warn!(error = %e, "notifications: cannot read the targets' exposure");
        Vec::new()
    });
    // A target that keeps failing for the same reason is told once, not
    // each pass; a new reason, or a failure after it went well, is told.
    let repeated = match outcomes.iter().any(|o| o.action == Action::Failed) {
        true => state.repeated_failures().unwrap_or_else(|e| {
            warn!(error = %e, "notifications: cannot read which failures were told");
            Default::default()
        }),
        false => Default::default(),
    };
    for event in outcome_events(outcomes, &status, now) {
        if event.event == Kind::Failed && repeated.contains(&(event.target.kind.clone(), event.target.name.clone())) {
            info!(target = %event.target.name, "notifications: the same failure as last pass, not told again");
            continue;
        }
        n.send(event);
    }
    let after = n.config.pending_after.0;
    match state.overdue(after, now) {
        Ok(overdue) if !overdue.is_empty() => {
            for event in overdue_events(&overdue, after, now) {
                n.send(event);
            }
            let ids: Vec<i64> = overdue.iter().map(|o| o.fix_id).collect();
            if let Err(e) = state.told_overdue(&ids, now) {
                warn!(error = %e, "notifications: cannot remember which pending fixes were told");
            }
        }
        Ok(_) => {}
        Err(e) => warn!(error = %e, "notifications: cannot read the fixes pending too long"),
    }
}

/// The delivery thread and its queue.
pub struct Notifier {
    config: Notify,
    tx: Option<SyncSender<Event>>,
    /// The delivery thread, and word from it that it has delivered all.
    thread: Option<(JoinHandle<()>, Receiver<()>)>,
}

impl Notifier {
    /// Starts delivering to the configured receivers; `None` when none is
    /// configured. `http` is how mirrors are reached (trust store, CA file,
    /// proxies); the webhook gets `timeout` on top.
    pub fn start(config: &Notify, http: &freshen_http::Policy) -> Option<Notifier> {
        if config.webhook.is_none() && config.command.is_empty() {
            return None;
        }
        let timeout = config.timeout.0;
        let policy = freshen_http::Policy { timeout_connect: timeout, timeout_response: timeout, timeout_global: Some(timeout), ..http.clone() };
        let (tx, rx) = sync_channel(QUEUE);
        let (done_tx, done) = sync_channel(1);
        let (webhook, command, attempts) = (config.webhook.clone(), config.command.clone(), config.retries.saturating_add(1));
        // The client (trust store, proxies) is set up by the thread, while
        // the pass runs.
        let thread = std::thread::Builder::new()
            .name("notify".into())
            .spawn(move || {
                let webhook = webhook.and_then(|url| match freshen_http::Client::new(&policy) {
                    Ok(c) => Some((c, url)),
                    Err(e) => {
                        warn!(error = %e, "notifications: cannot set up the webhook's HTTP client");
                        None
                    }
                });
                Receivers { webhook, command, timeout, attempts }.deliver_all(rx);
                let _ = done_tx.send(());
            })
            .ok()?;
        Some(Notifier { config: config.clone(), tx: Some(tx), thread: Some((thread, done)) })
    }

    /// Queues `event`; a full queue drops it (logged).
    pub fn send(&self, event: Event) {
        let Some(tx) = &self.tx else { return };
        match tx.try_send(event) {
            Ok(()) => {}
            Err(TrySendError::Full(e)) => warn!(event = e.event.as_str(), target = %e.target.name, "notifications: the queue is full; event dropped"),
            Err(TrySendError::Disconnected(e)) => warn!(event = e.event.as_str(), target = %e.target.name, "notifications: delivery has stopped; event dropped"),
        }
    }

    /// Waits up to `wait` for the queued events to be delivered; what is
    /// left then is given up (logged).
    pub fn finish(mut self, wait: Duration) {
        drop(self.tx.take());
        let Some((thread, done)) = self.thread.take() else { return };
        match done.recv_timeout(wait) {
            Ok(()) | Err(std::sync::mpsc::RecvTimeoutError::Disconnected) => {
                let _ = thread.join();
            }
            Err(std::sync::mpsc::RecvTimeoutError::Timeout) => warn!(waited_seconds = wait.as_secs(), "notifications: not all delivered in time; giving up"),
        }
    }
}

struct Receivers {
    webhook: Option<(freshen_http::Client, String)>,
    command: Vec<String>,
    timeout: Duration,
    attempts: u32,
}

impl Receivers {
    fn deliver_all(&self, rx: Receiver<Event>) {
        for event in rx {
            let body = match serde_json::to_vec(&event) {
                Ok(b) => b,
                Err(e) => {
                    warn!(error = %e, "notifications: cannot encode an event");
                    continue;
                }
            };
            let (kind, target) = (event.event.as_str(), event.target.name.as_str());
            if let Some((client, url)) = &self.webhook {
                match post(client, url, &body, self.attempts) {
                    Ok(attempts) => info!(event = kind, target, attempts, "notified the webhook"),
                    Err(e) => warn!(event = kind, target, error = %e, "notifications: the webhook failed"),
                }
            }
            if !self.command.is_empty() {
                match run_command(&self.command, kind, &body, self.timeout) {
                    Ok(()) => info!(event = kind, target, "notified the command"),
                    Err(e) => warn!(event = kind, target, command = %self.command[0], error = %e, "notifications: the command failed"),
                }
            }
        }
    }
}

/// POSTs `body`, retrying failures (no answer, a status other than 2xx)
/// with backoff; returns how many attempts it took.
fn post(client: &freshen_http::Client, url: &str, body: &[u8], attempts: u32) -> Result<u32, String> {
    let mut wait = FIRST_RETRY;
    let mut last = String::new();
    for attempt in 1..=attempts {
        match client.post(url, &[("content-type", "application/json")], body) {
            Ok(resp) if resp.status().is_success() => return Ok(attempt),
            Ok(resp) => last = format!("HTTP {}", resp.status()),
            Err(e) => last = e.to_string(),
        }
        if attempt < attempts {
            std::thread::sleep(wait);
            wait *= 2;
        }
    }
    // The URL may carry a token: not logged.
    Err(format!("{attempts} attempts, the last: {last}"))
}

/// Runs the command with the event on its stdin (`FRESHEN_EVENT` names
/// the event); killed after `timeout`.
fn run_command(command: &[String], kind: &str, body: &[u8], timeout: Duration) -> Result<(), String> {
    let mut child = Command::new(&command[0])
        .args(&command[1..])
        .env("FRESHEN_EVENT", kind)
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .spawn()
        .map_err(|e| format!("cannot start it: {e}"))?;
    let mut stdin = child.stdin.take().expect("piped");
    let body = body.to_vec();
    // A command that does not read its stdin must not block the thread.
    let writer = std::thread::spawn(move || {
        let _ = stdin.write_all(&body);
    });
    let deadline = Instant::now() + timeout;
    let status = loop {
        match child.try_wait() {
            Ok(Some(status)) => break status,
            Ok(None) if Instant::now() >= deadline => {
                let _ = child.kill();
                let _ = child.wait();
                return Err(format!("still running after {}: killed", crate::duration::Span(timeout)));
            }
            Ok(None) => std::thread::sleep(Duration::from_millis(20)),
            Err(e) => return Err(e.to_string()),
        }
    };
    let _ = writer.join();
    if status.success() {
        Ok(())
    } else {
        Err(status.code().map_or("killed by a signal".into(), |c| format!("exit {c}")))
    }
}
