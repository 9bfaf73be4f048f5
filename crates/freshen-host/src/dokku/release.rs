//! Dokku's `pre-release-builder` trigger: a new build of an app, tagged
//! `$IMAGE` in the Engine, is scanned and (when security fixes are
//! pending, or any update with `all`) patched in place under the same
//! name before Dokku's release step, so no app is deployed stale.
//!
//! The scan reads only the files it needs through a container created from
//! the image and never started ([`freshen_image::engine::read_files`]),
//! not an export of the whole image, and reuses the recorded scan of the
//! same image id when its archives have not published since. The patch is
//! the one a pass makes (the image's own apt in freshen's sandbox, one thin
//! layer); its config (labels, Env, User, Cmd, Entrypoint) is the build's,
//! plus freshen's own `org.freshen.patch.*` labels.

use std::time::Instant;

use chrono::Utc;
use freshen_apt::Fetcher;
use freshen_image::{engine, Interest};
use tracing::info;

use crate::error::{Error, Result};
use crate::model::{fix_set, Action, DeployRecord, Kind, Outcome, PatchRecord, Target};
use crate::pass::{self, Context, Scans};
use crate::state::State;

/// What the trigger did to one build.
pub struct Released {
    /// The app's outcome, as a pass records it.
    pub outcome: Outcome,
    /// Seconds spent reading and scanning the image (0 when a recorded
    /// scan was reused).
    pub scan_seconds: f64,
    pub reused: bool,
}

/// Scans `image` (`NAME:TAG` in the Engine), the new build of `app`, and
/// patches it in place when updates are in scope; records the app's
/// pending and fixed updates in `state` when one is given (the caller
/// holds the pass lock). An `Err` is freshen's own failure (the Engine or
/// an archive unreachable, a patch that failed): the image is then as it
/// was built.
pub fn pre_release(ctx: &Context, state: Option<&mut State>, app: &str, image: &str) -> Result<Released> {
    super::check_app_name(app)?;
    let id = engine::image_id(image, ctx.transport)?.ok_or_else(|| Error::Dokku(format!("docker-daemon:{image}: no such image in the Engine")))?;
    let source = format!("docker-daemon:{id}");
    let fetcher = Fetcher::new(ctx.config.cache_dir.clone(), &ctx.http)?;
    let started = Instant::now();
    let recorded = state.as_deref().and_then(|s| crate::reuse::recorded(&fetcher, s, &source));
    let reused = recorded.is_some();
    let scanned = match recorded {
        Some(r) => r,
        None => {
            let interest = Interest { paths: freshen_apt::system::PATHS, keep_versions: freshen_apt::system::VERSIONED_PATHS };
            let files = engine::read_files(image, &interest, ctx.transport)?;
            let read = started.elapsed().as_secs_f64();
            let result = pass::scan_files(&fetcher, files, id.clone(), started);
            info!(image, read_seconds = read, scan_seconds = started.elapsed().as_secs_f64() - read, "scanned the build");
            match result {
                Ok((scanned, releases)) => {
                    if let Some(s) = state.as_deref() {
                        crate::reuse::remember(s, &source, &Ok(scanned.clone()), releases);
                    }
                    Ok(scanned)
                }
                Err(e) => Err(e),
            }
        }
    };
    let scan_seconds = if reused { 0.0 } else { started.elapsed().as_secs_f64() };
    let scanned = match scanned {
        Err(crate::model::ScanFailure::Failed(m)) => return Err(Error::Dokku(format!("scanning {image}: {m}"))),
        other => other,
    };
    let target = Target { kind: Kind::DokkuApp, name: app.to_string(), image: image.to_string(), image_id: Some(id.clone()), source: Some(source.clone()), skip: None };
    let mut scans = Scans::new();
    scans.insert(source.clone(), scanned);
    let mut outcome = pass::plan(std::slice::from_ref(&target), &scans, ctx.dry_run, ctx.config.all).remove(0);
    if outcome.to_patch {
        patch(ctx, &fetcher, image, &id, &mut outcome)?;
    }
    if let Some(state) = state {
        let now = Utc::now();
        let run = state.begin_pass(now, false)?;
        state.record_pass(run, &pass::scan_rows(&scans, &Default::default()), std::slice::from_ref(&outcome), false, now, None)?;
    }
    Ok(Released { outcome, scan_seconds, reused })
}

/// Patches the build `image` (id `from_id`) in place; fills in the
/// outcome as a pass's accepted deploy: the build is released next.
fn patch(ctx: &Context, fetcher: &Fetcher, image: &str, from_id: &str, outcome: &mut Outcome) -> Result<()> {
    let started = Instant::now();
    let pending = outcome.pending.clone().unwrap_or_default();
    let set = fix_set(pending.iter().filter(|p| !p.held && (ctx.config.all || p.security)));
    let opened = crate::deploy::patch_image(ctx, fetcher, &format!("docker-daemon:{from_id}")).map_err(|e| Error::Dokku(format!("patching {image}: {e}")))?;
    let Some(opened) = opened else {
        outcome.to_patch = false;
        outcome.action = Action::Unchanged;
        outcome.reason = Some("the patch found nothing to install (held back in the image's apt)".into());
        return Ok(());
    };
    let dest = format!("docker-daemon:{image}");
    let (to_id, rollback) = crate::deploy::write(ctx, &opened, &dest, None).map_err(|e| Error::Dokku(format!("writing {image}: {e}")))?;
    let upgraded: Vec<(String, String)> = opened.1.upgraded.iter().map(|u| (u.package.clone(), u.arch.clone())).collect();
    let lines: Vec<String> = opened.1.upgraded.iter().map(|u| format!("{}:{} {} {}", u.package, u.arch, u.from, u.to)).collect();
    let seconds = started.elapsed().as_secs_f64();
    info!(app = %outcome.target.name, image, from = %from_id, to = %to_id, upgraded = lines.len(), seconds, "build patched before release");
    let record = PatchRecord { image: dest, from_id: from_id.to_string(), to_id, rollback, upgraded: lines, fix_set: set, seconds };
    let deploy = DeployRecord { result: Action::Patched, reason: Some("patched before Dokku's release".into()), logs: None, at: Utc::now() };
    crate::deploy::finish(outcome, record, deploy, &upgraded);
    Ok(())
}

