//! `watch`: the pass at start, then again whenever an archive publishes or
//! the Engine starts something new. Every interval, one conditional
//! request per distinct Release file the recorded scans read
//! ([`sources_changed`]); the Engine's event stream (containers created
//! or started, images loaded, tagged or pulled) wakes it at once, a burst
//! of events giving one pass once they have been quiet for [`QUIET`].
//! A pass holds the pass lock; one already running elsewhere is not
//! started twice. A stop ([`crate::stop`]) ends the wait at once, or the
//! pass in flight after its current step. With `listen` configured, the
//! status page and metrics ([`crate::web`]) are served meanwhile.

use std::collections::BTreeMap;
use std::sync::mpsc::{channel, Receiver, RecvTimeoutError, Sender};
use std::sync::Arc;
use std::time::{Duration, Instant};

use freshen_apt::Fetcher;
use freshen_image::engine::events::{follow_forever, Notice};
use tracing::{info, warn};

use crate::error::{Error, Result};
use crate::lock::PassLock;
use crate::notify::Notifier;
use crate::pass::{self, Context};
use crate::state::State;
use crate::stop;
use crate::web::{self, Live};

/// How long events must be quiet before the pass they call for starts.
pub const QUIET: Duration = Duration::from_millis(1500);

/// Why the watch wakes.
enum Wake {
    Engine(String),
    Stop,
}

/// Watches until a stop is asked for; `interval` is how often the
/// archives are asked whether they published.
/// Under systemd it says when it is watching (`READY=1`), alive
/// (`WATCHDOG=1`, when the unit asks for it) and stopping.
pub fn watch(ctx: &Context, interval: Duration) -> Result<()> {
    let live = Arc::new(Live::default());
    let server = match ctx.config.listen {
        Some(addr) => {
            let server = web::serve(addr, ctx.config.state_dir.clone(), live.clone())?;
            info!(address = %server.addr(), "serving the status page and metrics");
            Some(server)
        }
        None => None,
    };
    let result = watch_with(ctx, interval, &live);
    if let Some(s) = server {
        s.stop();
    }
    result
}

fn watch_with(ctx: &Context, interval: Duration, live: &Live) -> Result<()> {
    let (tx, rx) = channel();
    let stop_tx = tx.clone();
    stop::on_request(move || {
        crate::systemd::notify("STOPPING=1");
        let _ = stop_tx.send(Wake::Stop);
    });
    spawn_events(ctx.transport.clone(), tx);
    let notifier = Notifier::start(&ctx.config.notify, &ctx.http);
    crate::systemd::spawn_watchdog(|| !stop::requested());
    crate::systemd::notify("READY=1\nSTATUS=watching");
    let result = watch_loop(ctx, interval, &rx, notifier.as_ref(), live);
    if let Some(n) = notifier {
        n.finish(FINISH);
    }
    result
}

/// How long a stopping `watch` or a finished `run` waits for notifications
/// still queued.
pub const FINISH: Duration = Duration::from_secs(30);

fn watch_loop(ctx: &Context, interval: Duration, rx: &Receiver<Wake>, notifier: Option<&Notifier>, live: &Live) -> Result<()> {
    let mut why = Some("start".to_string());
    let mut next_probe = Instant::now() + interval;
    let mut seen = BTreeMap::new();
    loop {
        if let Some(reason) = why.take() {
            crate::systemd::notify(&format!("STATUS=pass: {}", reason.replace('\n', " ")));
            let started = Instant::now();
            one_pass(ctx, &reason, notifier);
            live.pass_done(started.elapsed().as_secs_f64());
            crate::systemd::notify("STATUS=watching");
        }
        if stop::requested() {
            return Ok(());
        }
        match rx.recv_timeout(next_probe.saturating_duration_since(Instant::now())) {
            Ok(Wake::Stop) | Err(RecvTimeoutError::Disconnected) => return Ok(()),
            Ok(Wake::Engine(what)) => {
                let Some(n) = quiet(rx, QUIET) else { return Ok(()) };
                why = Some(if n == 0 { what } else { format!("{what} and {n} more Engine events") });
            }
            Err(RecvTimeoutError::Timeout) => {
                next_probe = Instant::now() + interval;
                match sources_changed(ctx, &mut seen) {
                    Ok(changed) if !changed.is_empty() => {
                        let now = chrono::Utc::now();
                        changed.iter().for_each(|url| live.published(url, now));
                        why = Some(format!("published: {}", changed.join(", ")));
                    }
                    Ok(_) => {}
                    Err(e) => warn!(error = %e, "cannot ask the archives whether they published"),
                }
            }
        }
    }
}

/// Waits until no event came for `quiet`; returns how many did meanwhile,
/// or `None` when a stop was asked for.
fn quiet(rx: &Receiver<Wake>, quiet: Duration) -> Option<usize> {
    let mut n = 0;
    loop {
        match rx.recv_timeout(quiet) {
            Ok(Wake::Engine(_)) => n += 1,
            Ok(Wake::Stop) | Err(RecvTimeoutError::Disconnected) => return None,
            Err(RecvTimeoutError::Timeout) => return Some(n),
        }
    }
}

/// Follows the Engine's events in a thread of its own, which blocks in
/// reads while nothing happens and waits between reconnections.
fn spawn_events(transport: freshen_image::Transport, tx: Sender<Wake>) {
    std::thread::spawn(move || {
        let mut on = |notice: Notice| {
            let wake = match notice {
                Notice::Connected { again: false } => return true,
                // Events were missed while the Engine was away.
                Notice::Connected { again: true } => "the Docker Engine is back".to_string(),
                Notice::Event(e) => format!("{} {} {}", e.kind, e.action, short(&e.actor.id)),
                Notice::Lost { error, retry } => {
                    warn!(error = %error, retry_seconds = retry.as_secs(), "lost the Docker Engine's events");
                    return true;
                }
            };
            tx.send(Wake::Engine(wake)).is_ok()
        };
        follow_forever(&transport, &mut on, &|d| {
            std::thread::sleep(d);
            !stop::requested()
        });
    });
}

fn short(id: &str) -> &str {
    let hex = id.strip_prefix("sha256:").unwrap_or(id);
    if hex.len() == 64 && hex.bytes().all(|b| b.is_ascii_hexdigit()) {
        &hex[..12]
    } else {
        id
    }
}

/// One pass under the pass lock; failures are logged and the watch goes on.
fn one_pass(ctx: &Context, why: &str, notifier: Option<&Notifier>) {
    info!(reason = %why, "pass");
    let result = PassLock::acquire(&ctx.config.state_dir).and_then(|_lock| {
        let mut state = State::open_writer(&ctx.config.state_dir)?;
        let report = pass::run(ctx, &mut state)?;
        crate::notify::after_pass(notifier, &state, &report.outcomes);
        Ok(report)
    });
    match result {
        Ok(report) => {
            let failed = report.outcomes.iter().filter(|o| o.action == crate::model::Action::Failed).count();
            info!(targets = report.outcomes.len(), pending_security = report.pending_security(), failed, "pass done");
        }
        Err(e @ Error::Locked { .. }) => info!(reason = %e, "pass not started"),
        Err(e) => warn!(error = %e, "pass failed"),
    }
    let limits = freshen_patch::prune::Limits { max_size: ctx.config.cache_max_size.0, max_age: Some(ctx.config.cache_max_age.0) };
    match freshen_patch::prune::prune(&ctx.config.cache_dir, limits) {
        Ok(p) if p.removed > 0 => info!(removed = p.removed, freed = p.freed, busy = p.busy, kept = p.kept, "cache pruned"),
        Ok(_) => {}
        Err(e) => warn!(error = %e, "cannot prune the cache"),
    }
}

/// The Release files recorded scans read that now say something else
/// than when recorded or last asked (`seen`): one conditional request
/// each. A file that cannot be reached is not counted as changed; one that
/// changed calls for one pass, even if that pass cannot scan.
pub fn sources_changed(ctx: &Context, seen: &mut BTreeMap<String, String>) -> Result<Vec<String>> {
    let recorded = State::open_reader(&ctx.config.state_dir)?.recorded_releases()?;
    let fetcher = Fetcher::new(ctx.config.cache_dir.clone(), &ctx.http)?;
    let mut changed = Vec::new();
    for (url, digest) in recorded {
        match freshen_apt::probe::probe(&fetcher, [&url]) {
            Ok(mut now) => {
                let now = now.remove(&url).unwrap_or_default();
                let before = seen.get(&url).unwrap_or(&digest);
                if *before != now {
                    changed.push(url.clone());
                }
                seen.insert(url, now);
            }
            // Asked again at the next interval.
            Err(e) => warn!(url = %url, error = %e, "cannot ask the archive whether it published"),
        }
    }
    Ok(changed)
}
