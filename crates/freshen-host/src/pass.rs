//! One pass: discover → scan (each distinct image once) → plan → (patch →
//! deploy, to come) → record. Each step is a function over plain data; a
//! target that fails is recorded and the pass goes on with the others.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Instant;

use chrono::Utc;
use freshen_apt::{Fetcher, ScanOptions};
use freshen_image::{ImageRef, Interest, Platform, Transport};
use freshen_patch::View;
use tracing::{info, warn};

use crate::config::Config;
use crate::discover;
use crate::error::Result;
use crate::model::{Action, Outcome, Pending, ScanFailure, Scanned, Target};
use crate::state::{ScanRow, State};
use crate::{reuse, stop};

/// What a pass works with.
pub struct Context<'a> {
    pub config: &'a Config,
    /// The Engine's address, registry credentials, scratch directory.
    pub transport: &'a Transport,
    pub platform: Platform,
    /// How mirrors are reached (trust store, `--ca-file`, proxies).
    pub http: freshen_http::Policy,
    /// Plan and record, change nothing.
    pub dry_run: bool,
}

/// What a pass found and did.
pub struct Report {
    pub outcomes: Vec<Outcome>,
    /// Why the Engine could not be asked, if it could not.
    pub discovery_error: Option<String>,
}

impl Report {
    /// Security fixes still pending over all targets.
    pub fn pending_security(&self) -> usize {
        self.outcomes.iter().map(Outcome::pending_security).sum()
    }

    /// Whether any target (or discovery) failed.
    pub fn failed(&self) -> bool {
        self.discovery_error.is_some() || self.outcomes.iter().any(|o| o.action == Action::Failed)
    }
}

pub(crate) type Scans = BTreeMap<String, std::result::Result<Scanned, ScanFailure>>;

/// Runs one pass and records it in `state`. Call it under the pass lock.
/// A stop asked for ([`crate::stop`]) ends it after the step in flight:
/// what was done is recorded, targets not reached are left as they were.
pub fn run(ctx: &Context, state: &mut State) -> Result<Report> {
    run_only(ctx, state, None)
}

/// As [`run`], over the targets `keep` accepts only (`freshen dokku
/// patch APP`); with a `keep`, targets left out stay as they were
/// recorded (neither retired nor their scans forgotten).
pub fn run_only(ctx: &Context, state: &mut State, keep: Option<&dyn Fn(&Target) -> bool>) -> Result<Report> {
    let started = Utc::now();
    let pass = state.begin_pass(started, ctx.dry_run)?;
    if !ctx.dry_run {
        match crate::recreate::repair(ctx.transport) {
            Ok(repaired) => {
                for r in repaired {
                    match &r.result {
                        Ok(how) => info!(container = %r.name, repair = ?how, "settled a replacement an interrupted pass left"),
                        Err(e) => warn!(container = %r.name, error = %e, "cannot settle a replacement an interrupted pass left"),
                    }
                }
            }
            Err(e) => warn!(error = %e, "cannot look for replacements an interrupted pass left"),
        }
    }
    let (mut targets, discovery_error) = discover(ctx);
    if let Some(keep) = keep {
        targets.retain(|t| keep(t));
    }
    let fetcher = Fetcher::new(ctx.config.cache_dir.clone(), &ctx.http)?;
    let (scans, reused) = scan_all(ctx, &fetcher, state, &targets);
    let interrupted = stop::requested();
    let reached: Vec<Target> = targets.into_iter().filter(|t| !interrupted || t.source.as_ref().is_none_or(|s| scans.contains_key(s))).collect();
    let mut outcomes = plan(&reached, &scans, ctx.dry_run, ctx.config.all);
    if !ctx.dry_run {
        // Stops between images by itself.
        crate::deploy::apply(ctx, &fetcher, state, &mut outcomes);
    }
    let interrupted = stop::requested();
    let stopped = interrupted.then(|| "interrupted: targets not reached were left as they were".to_string());
    let errors: Vec<String> = discovery_error.iter().cloned().chain(stopped).collect();
    let error = (!errors.is_empty()).then(|| errors.join("; "));
    let complete = discovery_error.is_none() && !interrupted && keep.is_none();
    state.record_pass(pass, &scan_rows(&scans, &reused), &outcomes, complete, Utc::now(), error.as_deref())?;
    if complete {
        state.forget_scans_before(started)?;
    }
    Ok(Report { outcomes, discovery_error })
}

/// The targets of this pass. An Engine that cannot be reached is an error
/// of the pass, but the configured images are still looked after.
fn discover(ctx: &Context) -> (Vec<Target>, Option<String>) {
    let (mut containers, error) = match freshen_image::engine::running_containers(ctx.transport) {
        Ok(c) => (c, None),
        Err(e) => {
            warn!(error = %e, "discovery failed");
            (Vec::new(), Some(e.to_string()))
        }
    };
    for c in containers.iter_mut().filter(|c| c.image.starts_with("sha256:")) {
        // The name the container was created with has moved to another
        // image (a patch in place does that): the container still runs
        // the image it names by that name.
        match freshen_image::engine::container_image_name(&c.id, ctx.transport) {
            Ok(name) => c.image = name,
            Err(e) => warn!(container = %c.name(), error = %e, "cannot read the container's image name"),
        }
    }
    let resolve = |name: &str| freshen_image::engine::image_id(name, ctx.transport).ok().flatten();
    // On a Dokku host, the builder images present are kept patched too,
    // so that the next build starts from a patched base.
    let builders = crate::dokku::builder_images(ctx.config, ctx.transport).unwrap_or_else(|e| {
        warn!(error = %e, "cannot list Dokku's builder images");
        Vec::new()
    });
    let mut config = ctx.config.clone();
    for b in builders.into_iter().filter(|b| !ctx.config.images.contains(b)) {
        info!(image = %b, "a Dokku builder image");
        config.images.push(b);
    }
    let targets = discover::targets(&containers, &config, &resolve);
    info!(containers = containers.len(), targets = targets.len(), "discovered");
    (targets, error)
}

/// Scans each distinct image once, or reuses the recorded scan of the
/// same image when the Release files it read are unchanged. Returns the
/// scans and which of them were reused.
fn scan_all(ctx: &Context, fetcher: &Fetcher, state: &State, targets: &[Target]) -> (Scans, BTreeSet<String>) {
    let mut scans = Scans::new();
    let mut reused = BTreeSet::new();
    for source in targets.iter().filter_map(|t| t.source.as_ref()) {
        if scans.contains_key(source) {
            continue;
        }
        if stop::requested() {
            break;
        }
        if let Some(result) = reuse::recorded(fetcher, state, source) {
            info!(image = %source, "reused");
            reused.insert(source.clone());
            scans.insert(source.clone(), result);
            continue;
        }
        let (result, releases) = scan_image(ctx, fetcher, source);
        match &result {
            Ok(s) => info!(image = %source, installed = s.installed, pending = s.pending.len(), security = s.pending.iter().filter(|p| p.counts()).count(), seconds = s.seconds, "scanned"),
            Err(ScanFailure::Unsupported(e)) => info!(image = %source, reason = %e, "unsupported"),
            Err(ScanFailure::Failed(e)) => warn!(image = %source, error = %e, "scan failed"),
        }
        if let Some(releases) = releases {
            reuse::remember(state, source, &result, releases);
        }
        scans.insert(source.clone(), result);
    }
    (scans, reused)
}

/// Reads an image's dpkg and apt files and scans them with changelogs;
/// with the Release files the scan read and their SHA256, when the image
/// was read.
fn scan_image(ctx: &Context, fetcher: &Fetcher, source: &str) -> (std::result::Result<Scanned, ScanFailure>, Option<BTreeMap<String, String>>) {
    match scan_image_inner(ctx, fetcher, source) {
        Ok((scanned, releases)) => (Ok(scanned), Some(releases)),
        Err(e @ ScanFailure::Unsupported(_)) => (Err(e), Some(BTreeMap::new())),
        Err(e) => (Err(e), None),
    }
}

fn scan_image_inner(ctx: &Context, fetcher: &Fetcher, source: &str) -> std::result::Result<(Scanned, BTreeMap<String, String>), ScanFailure> {
    let started = Instant::now();
    let reference = ImageRef::parse(source).map_err(|e| failed(&e))?;
    let interest = Interest { paths: freshen_apt::system::PATHS, keep_versions: freshen_apt::system::VERSIONED_PATHS };
    let (image_id, files) = match &reference {
        ImageRef::Dir { path } => (None, freshen_image::read_dir_files(path, &interest).map_err(|e| failed(&e))?),
        _ => {
            let image = freshen_image::open(&reference, &ctx.platform, ctx.transport).map_err(|e| failed(&e))?;
            let files = freshen_image::read_image_files(image.as_ref(), &interest).map_err(|e| failed(&e))?;
            (Some(image.image().config_digest.to_string()), files)
        }
    };
    scan_files(fetcher, files, image_id.unwrap_or_else(|| source.to_string()), started)
}

fn failed(e: &dyn std::fmt::Display) -> ScanFailure {
    ScanFailure::Failed(e.to_string().replace('\n', " "))
}

/// Scans an image's dpkg and apt files (read since `started`) with
/// changelogs; with the Release files the scan read and their SHA256.
pub(crate) fn scan_files(fetcher: &Fetcher, files: freshen_image::RootFiles, image_id: String, started: Instant) -> std::result::Result<(Scanned, BTreeMap<String, String>), ScanFailure> {
    let opts = ScanOptions { now: Utc::now(), ignore_unreachable: false, changelogs: true };
    let scan = match freshen_apt::scan(fetcher, &View(files), &opts) {
        Ok(s) => s,
        Err(freshen_apt::Error::Unsupported(m)) => return Err(ScanFailure::Unsupported(m)),
        Err(e) => return Err(failed(&e)),
    };
    let pending = scan
        .updates
        .iter()
        .enumerate()
        .map(|(i, u)| {
            let fix = scan.fixes.get(i);
            Pending {
                package: u.package.clone(),
                arch: u.arch.clone(),
                installed: u.installed.to_string(),
                candidate: u.candidate.version.to_string(),
                suite: u.suite.clone(),
                security: u.security,
                held_back: u.held_back.clone(),
                held: u.deliberately_held(),
                cves: fix.map(|f| f.cves.clone()).unwrap_or_default(),
                fixed_on: fix.and_then(|f| f.fixed_on),
            }
        })
        .collect();
    // Memoised by the fetcher: what the scan read, no new request.
    let releases = freshen_apt::probe::probe(fetcher, &freshen_apt::probe::release_urls(fetcher, &scan.system)).map_err(|e| failed(&e))?;
    let scanned = Scanned { image_id, installed: scan.system.installed.len(), pending, seconds: started.elapsed().as_secs_f64(), distro: scan.system.os.id.clone() };
    Ok((scanned, releases))
}

/// What to do with each target: a target whose image has updates in scope
/// (security updates, or with `all` every update `apt-get upgrade` would
/// install) is to be patched; in a dry run it is skipped, saying what a
/// patch would install.
pub fn plan(targets: &[Target], scans: &Scans, dry_run: bool, all: bool) -> Vec<Outcome> {
    targets
        .iter()
        .map(|t| {
            let outcome = |action, reason: Option<String>| Outcome::new(t.clone(), action, reason);
            if let Some(why) = &t.skip {
                return outcome(Action::Skipped, Some(why.clone()));
            }
            let Some(scan) = t.source.as_ref().and_then(|s| scans.get(s)) else {
                return outcome(Action::Failed, Some("not scanned".into()));
            };
            match scan {
                Err(ScanFailure::Unsupported(m)) => outcome(Action::Skipped, Some(format!("unsupported: {m}"))),
                Err(ScanFailure::Failed(m)) => outcome(Action::Failed, Some(m.clone())),
                Ok(s) => {
                    let wanted = s.pending.iter().filter(|p| !p.held && (all || p.security)).count();
                    let security = s.pending.iter().filter(|p| p.counts()).count();
                    let (action, reason) = if wanted == 0 {
                        (Action::Unchanged, None)
                    } else if dry_run {
                        (Action::Skipped, Some(format!("dry run: would patch {wanted} updates ({security} security)")))
                    } else {
                        (Action::Failed, Some("planned for a patch that did not run".into()))
                    };
                    let to_patch = wanted > 0 && !dry_run;
                    Outcome { image_id: Some(s.image_id.clone()), pending: Some(s.pending.clone()), distro: s.distro.clone(), to_patch, ..outcome(action, reason) }
                }
            }
        })
        .collect()
}

pub(crate) fn scan_rows(scans: &Scans, reused: &BTreeSet<String>) -> Vec<ScanRow> {
    scans
        .iter()
        .map(|(source, r)| match r {
            Ok(s) => ScanRow {
                source: source.clone(),
                image_id: Some(s.image_id.clone()),
                seconds: Some(s.seconds),
                installed: Some(s.installed),
                pending: Some(s.pending.iter().filter(|p| !p.held).count()),
                security: Some(s.pending.iter().filter(|p| p.counts()).count()),
                reused: reused.contains(source),
                ..ScanRow::default()
            },
            Err(ScanFailure::Unsupported(m)) => ScanRow { source: source.clone(), unsupported: true, error: Some(m.clone()), reused: reused.contains(source), ..ScanRow::default() },
            Err(ScanFailure::Failed(m)) => ScanRow { source: source.clone(), error: Some(m.clone()), ..ScanRow::default() },
        })
        .collect()
}
