//! Patch in place and redeploy: for each distinct image with fixes to
//! install, patch it once (the image's own apt in freshen's sandbox), put
//! the result under every name the targets use (the previous image kept
//! under its rollback tag), then redeploy each target: recreate plain
//! containers (accepted when healthy, else rolled back), `dokku
//! ps:restart` apps under their deploy lock (rolled back when the restart
//! fails). A fix set rolled back on an image is not tried again on it
//! until a newer fix appears.
//!
//! Images are patched one after another (the sandbox is CPU and disk
//! bound); the redeploys of one image run in threads while the next image
//! is patched, since most of their time is spent waiting for health.

use std::collections::BTreeMap;
use std::time::Instant;

use chrono::Utc;
use freshen_apt::Fetcher;
use freshen_image::{engine, ImageRef};
use freshen_patch::{PatchOptions, Patched};
use tracing::{info, warn};

use crate::dokku;
use crate::model::{fix_set, Action, DeployRecord, Kind, Outcome, PatchRecord, Pending};
use crate::pass::Context;
use crate::recreate;
use crate::state::State;

/// Patches and redeploys every outcome planned `to_patch`, in place.
pub fn apply(ctx: &Context, fetcher: &Fetcher, state: &State, outcomes: &mut [Outcome]) {
    check_dokku_apps(ctx, outcomes);
    let mut groups: BTreeMap<String, Vec<usize>> = BTreeMap::new();
    for (i, o) in outcomes.iter().enumerate().filter(|(_, o)| o.to_patch) {
        groups.entry(o.target.source.clone().unwrap_or_default()).or_default().push(i);
    }
    std::thread::scope(|scope| {
        let mut running = Vec::new();
        for (source, members) in groups {
            if crate::stop::requested() {
                for &i in &members {
                    settle(&mut outcomes[i], Action::Skipped, "stopping: not patched this pass".into());
                }
                continue;
            }
            let mut group: Vec<Outcome> = members.iter().map(|&i| outcomes[i].clone()).collect();
            let Some(patched) = patch_group(ctx, fetcher, state, &source, &mut group) else {
                for (&i, o) in members.iter().zip(group) {
                    outcomes[i] = o;
                }
                continue;
            };
            running.push((members, scope.spawn(move || redeploy_group(ctx, patched, group))));
        }
        for (members, handle) in running {
            let group = handle.join().expect("a redeploy thread panicked");
            for (&i, o) in members.iter().zip(group) {
                outcomes[i] = o;
            }
        }
    });
}

/// Dokku apps to redeploy must be apps Dokku knows (`dokku apps:list`,
/// asked once a pass): a container whose label names an app that was
/// destroyed is not Dokku's to restart.
fn check_dokku_apps(ctx: &Context, outcomes: &mut [Outcome]) {
    if !outcomes.iter().any(|o| o.to_patch && o.target.kind == Kind::DokkuApp) {
        return;
    }
    let apps = dokku::apps(ctx.config);
    for o in outcomes.iter_mut().filter(|o| o.to_patch && o.target.kind == Kind::DokkuApp) {
        match &apps {
            Ok(apps) if apps.contains(&o.target.name) => {}
            Ok(_) => settle(o, Action::Skipped, "`dokku apps:list` does not list this app".into()),
            Err(e) => settle(o, Action::Failed, e.to_string()),
        }
    }
}

/// The patch of one image, written under every name its targets use.
struct Written {
    /// One record per name written; the first is the patch itself.
    records: Vec<PatchRecord>,
    upgraded: Vec<(String, String)>,
    /// The deploy locks of the Dokku apps among the targets.
    _locks: Vec<dokku::DeployLock>,
}

/// Where a target's image is written, as a reference: its name in the
/// Engine (`docker-daemon:NAME:TAG`), or a configured image's reference.
fn destination(o: &Outcome) -> String {
    let id = o.target.image_id.as_deref().unwrap_or_default();
    match o.target.kind {
        Kind::Image => o.target.name.clone(),
        Kind::Container => format!("docker-daemon:{}", crate::discover::pinned_name(&o.target.image, id).unwrap_or_else(|| o.target.image.clone())),
        Kind::DokkuApp => format!("docker-daemon:{}", o.target.image),
    }
}

/// Whether a container names its image by id or digest (patched under
/// `freshen/pinned:ID12`, with `pinned = "patch"`).
fn pinned(o: &Outcome) -> bool {
    o.target.kind == Kind::Container && crate::discover::pinned_name(&o.target.image, o.target.image_id.as_deref().unwrap_or_default()).is_some()
}

/// The Engine's name of a `docker-daemon:` destination.
fn engine_name(dest: &str) -> Option<&str> {
    dest.strip_prefix("docker-daemon:")
}

/// Checks, patches and writes one image; `None` when there is nothing to
/// redeploy (each member's outcome then says why).
fn patch_group(ctx: &Context, fetcher: &Fetcher, state: &State, source: &str, group: &mut [Outcome]) -> Option<Written> {
    let pending: Vec<Pending> = group[0].pending.clone().unwrap_or_default();
    let wanted: Vec<&Pending> = pending.iter().filter(|p| !p.held && (ctx.config.all || p.security)).collect();
    let set = fix_set(wanted.iter().copied());
    let from_id = group[0].image_id.clone().unwrap_or_default();
    match state.refused(&from_id, &set) {
        Ok(Some((at, reason))) => {
            let why = format!("this fix set was rolled back on this image at {} ({}): not retried until a newer fix appears", crate::state::time(at), reason.unwrap_or_default());
            for o in group.iter_mut() {
                settle(o, Action::Skipped, why.clone());
            }
            return None;
        }
        Ok(None) => {}
        Err(e) => warn!(error = %e, "cannot read the refused fix sets"),
    }
    // Only names that still hold the image scanned are moved: a name that
    // moved on (a newer release) must not be overwritten with an old one.
    // A Dokku app is patched only under its deploy lock, held until its
    // restart is done.
    let mut names: Vec<String> = Vec::new();
    // Names an earlier pass already moved to its patch of this image (it
    // was stopped before redeploying): redeployed without patching again.
    let mut resumed: Vec<(String, String)> = Vec::new();
    let mut locks = Vec::new();
    for o in group.iter_mut() {
        if o.target.kind == Kind::DokkuApp {
            match dokku::DeployLock::try_acquire(&ctx.config.dokku.lib_root, &o.target.name) {
                Ok(Some(lock)) => locks.push(lock),
                Ok(None) => {
                    info!(app = %o.target.name, "a deploy holds the app's deploy lock: skipped this pass");
                    settle(o, Action::Skipped, "a Dokku deploy holds the app's deploy lock: skipped this pass".into());
                    continue;
                }
                Err(e) => {
                    settle(o, Action::Failed, e.to_string());
                    continue;
                }
            }
        }
        let dest = destination(o);
        if let (Some(name), true) = (engine_name(&dest), pinned(o)) {
            // A pinned container's image gets freshen's name first (once:
            // later it holds the patch, and the rollback tag the original).
            if matches!(engine::image_id(name, ctx.transport), Ok(None)) {
                if let Err(e) = engine::tag_image(&from_id, name, ctx.transport) {
                    settle(o, Action::Failed, e.to_string());
                    continue;
                }
            }
        }
        if let Some(name) = engine_name(&dest).filter(|_| o.target.kind != Kind::Image) {
            match engine::image_id(name, ctx.transport) {
                Ok(Some(id)) if id == from_id => {}
                Ok(Some(id)) if engine::image_id(&engine::rollback_tag(name), ctx.transport).ok().flatten().as_deref() == Some(from_id.as_str()) => {
                    if !resumed.iter().any(|(d, _)| *d == dest) {
                        resumed.push((dest, id));
                    }
                    continue;
                }
                Ok(other) => {
                    let now = other.unwrap_or_else(|| "no image".into());
                    settle(o, Action::Skipped, format!("{name} now names {now}, not the image this runs ({from_id}): redeploy it from its new image"));
                    continue;
                }
                Err(e) => {
                    settle(o, Action::Failed, e.to_string());
                    continue;
                }
            }
        }
        if !names.contains(&dest) {
            names.push(dest);
        }
    }
    let wanted_lines: Vec<String> = wanted.iter().map(|p| format!("{}:{} {} {}", p.package, p.arch, p.installed, p.candidate)).collect();
    let mut records: Vec<PatchRecord> = resumed
        .into_iter()
        .map(|(dest, to_id)| {
            info!(image = %dest, from = %from_id, to = %to_id, "redeploying the patch an interrupted pass made");
            let rollback = engine_name(&dest).map(engine::rollback_tag);
            PatchRecord { image: dest, from_id: from_id.clone(), to_id, rollback, upgraded: wanted_lines.clone(), fix_set: set.clone(), seconds: 0.0 }
        })
        .collect();
    let wanted_keys: Vec<(String, String)> = wanted.iter().map(|p| (p.package.clone(), p.arch.clone())).collect();
    if names.is_empty() {
        return (!records.is_empty()).then_some(Written { records, upgraded: wanted_keys, _locks: locks });
    }
    let started = Instant::now();
    let patched = match patch_image(ctx, fetcher, source) {
        Ok(Some(p)) => p,
        Ok(None) => {
            for o in group.iter_mut().filter(|o| o.to_patch) {
                settle(o, Action::Unchanged, "the patch found nothing to install (held back in the image's apt)".into());
            }
            return None;
        }
        Err(e) => {
            warn!(image = %source, error = %e, "patch failed");
            for o in group.iter_mut().filter(|o| o.to_patch) {
                settle(o, Action::Failed, format!("patch: {e}"));
            }
            return None;
        }
    };
    let upgraded: Vec<(String, String)> = patched.1.upgraded.iter().map(|u| (u.package.clone(), u.arch.clone())).collect();
    let lines: Vec<String> = patched.1.upgraded.iter().map(|u| format!("{}:{} {} {}", u.package, u.arch, u.from, u.to)).collect();
    let mut first: Option<PatchRecord> = None;
    for name in &names {
        let written = write(ctx, &patched, name, first.as_ref());
        match written {
            Ok((to_id, rollback)) => {
                info!(image = %name, from = %from_id, to = %to_id, upgraded = lines.len(), seconds = started.elapsed().as_secs_f64(), "patched in place");
                let record = PatchRecord {
                    image: name.clone(),
                    from_id: from_id.clone(),
                    to_id,
                    rollback,
                    upgraded: lines.clone(),
                    fix_set: set.clone(),
                    seconds: started.elapsed().as_secs_f64(),
                };
                first.get_or_insert_with(|| record.clone());
                records.push(record);
            }
            Err(e) => {
                warn!(image = %name, error = %e, "writing the patched image failed");
                for o in group.iter_mut().filter(|o| o.to_patch && destination(o) == *name) {
                    settle(o, Action::Failed, format!("writing {name}: {e}"));
                }
            }
        }
    }
    (!records.is_empty()).then_some(Written { records, upgraded, _locks: locks })
}

/// An image and its patch, ready to be written.
pub(crate) type Opened = (Box<dyn freshen_image::ImageSource>, Box<Patched>);

/// Runs the image's own apt on the image `source` names.
pub(crate) fn patch_image(ctx: &Context, fetcher: &Fetcher, source: &str) -> Result<Option<Opened>, String> {
    let reference = ImageRef::parse(source).map_err(|e| e.to_string())?;
    let image = freshen_image::open(&reference, &ctx.platform, ctx.transport).map_err(|e| e.to_string())?;
    let opts = PatchOptions {
        cache: ctx.config.cache_dir.clone(),
        runtime: None,
        all: ctx.config.all,
        compression: freshen_patch::layer::Compression::Gzip,
        source_date_epoch: None,
        test: None,
        limits: freshen_patch::sandbox::Limits { memory: ctx.config.sandbox_memory.0, pids: ctx.config.sandbox_pids.into() },
        now: Utc::now(),
        progress: freshen_image::progress::silent(),
    };
    match freshen_patch::patch(image.as_ref(), fetcher, &opts) {
        Ok(freshen_patch::Outcome::Patched(p)) => Ok(Some((image, p))),
        Ok(freshen_patch::Outcome::NothingPending { .. }) => Ok(None),
        Err(e) => Err(e.to_string().replace('\n', " ")),
    }
}

/// Writes the patch to `dest`; a later name in the Engine of the same
/// image only gets a tag. Returns the new image id (a manifest digest
/// outside the Engine) and the rollback tag.
pub(crate) fn write(ctx: &Context, patched: &Opened, dest: &str, first: Option<&PatchRecord>) -> Result<(String, Option<String>), String> {
    let (image, p) = patched;
    let err = |e: freshen_image::Error| e.to_string();
    let name = engine_name(dest);
    let held_before = match name {
        Some(n) => engine::image_id(n, ctx.transport).map_err(err)?,
        None => None,
    };
    let rollback = name.filter(|_| held_before.is_some()).map(engine::rollback_tag);
    match (name, first.filter(|f| engine_name(&f.image).is_some())) {
        (Some(name), Some(first)) => {
            if let Some(r) = &rollback {
                engine::tag_image(name, r, ctx.transport).map_err(err)?;
            }
            engine::tag_image(&first.to_id, name, ctx.transport).map_err(err)?;
            Ok((first.to_id.clone(), rollback))
        }
        _ => {
            let dest = ImageRef::parse(dest).map_err(err)?;
            let img = p.image(image.as_ref());
            let digest = freshen_image::write_image(&dest, &img, ctx.transport).map_err(err)?;
            let to_id = match name {
                Some(n) => engine::image_id(n, ctx.transport).map_err(err)?.unwrap_or_default(),
                None => digest.to_string(),
            };
            Ok((to_id, rollback))
        }
    }
}

/// Redeploys every member of one patched image; gives the outcomes back.
fn redeploy_group(ctx: &Context, written: Written, group: Vec<Outcome>) -> Vec<Outcome> {
    let written = &written;
    let record_of = |o: &Outcome| written.records.iter().find(|r| r.image == destination(o)).cloned();
    let mut group: Vec<Outcome> = std::thread::scope(|scope| {
        let handles: Vec<_> = group
            .into_iter()
            .map(|mut o| {
                scope.spawn(move || {
                    let Some(record) = o.to_patch.then(|| record_of(&o)).flatten() else { return o };
                    let deploy = match o.target.kind {
                        Kind::Image => DeployRecord { result: Action::Patched, reason: None, logs: None, at: Utc::now() },
                        Kind::Container => match recreate_container(ctx, &o) {
                            Ok(d) => d,
                            Err(untouched) => {
                                settle(&mut o, Action::Skipped, untouched);
                                return o;
                            }
                        },
                        Kind::DokkuApp => restart_app(ctx, &o, &record),
                    };
                    finish(&mut o, record, deploy, &written.upgraded);
                    o
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().expect("a redeploy thread panicked")).collect()
    });
    // A name no container accepted goes back to the image it held, so
    // nothing new starts from a patch that was refused.
    for record in &written.records {
        let users: Vec<&Outcome> = group.iter().filter(|o| o.patch.as_ref().is_some_and(|p| p.image == record.image) && o.target.kind == Kind::Container).collect();
        let refused = users.iter().any(|o| o.action == Action::RolledBack) && users.iter().all(|o| o.action != Action::Patched);
        if let (true, Some(rollback), Some(name)) = (refused, &record.rollback, engine_name(&record.image)) {
            match engine::tag_image(rollback, name, ctx.transport) {
                Ok(()) => info!(image = %record.image, "name restored to the previous image"),
                Err(e) => warn!(image = %record.image, error = %e, "cannot restore the name to the previous image"),
            }
            for o in group.iter_mut().filter(|o| o.target.kind == Kind::Image && o.patch.as_ref().is_some_and(|p| p.image == record.image)) {
                o.action = Action::RolledBack;
                o.reason = Some("every container of this image refused the patch; the name holds the previous image again".into());
                o.image_id = Some(record.from_id.clone());
            }
        }
    }
    group
}

/// Recreates one container on its patched image; `Err` (why) when the
/// container was left as it was (it stopped meanwhile, a stop was asked
/// for): not a verdict on the patch.
fn recreate_container(ctx: &Context, o: &Outcome) -> Result<DeployRecord, String> {
    let accept = recreate::Accept { settle: ctx.config.settle.0, health_timeout: ctx.config.health_timeout.0 };
    let name = destination(o);
    let from = engine_name(&name).filter(|_| pinned(o));
    match recreate::replace_on(ctx.transport, &o.target.name, from, &accept, &crate::stop::requested) {
        Ok(_) => Ok(DeployRecord { result: Action::Patched, reason: None, logs: None, at: Utc::now() }),
        Err(refused) => {
            let result = match refused.rollback {
                recreate::Rollback::Done => Action::RolledBack,
                recreate::Rollback::NotNeeded => return Err(format!("not recreated: {refused}")),
                recreate::Rollback::Failed(_) => Action::Failed,
            };
            let logs = (!refused.logs.is_empty()).then(|| refused.logs.join("\n"));
            Ok(DeployRecord { result, reason: Some(refused.to_string()), logs, at: Utc::now() })
        }
    }
}

/// `dokku ps:restart` of an app on its patched image, rolled back when
/// the restart fails.
fn restart_app(ctx: &Context, o: &Outcome, record: &PatchRecord) -> DeployRecord {
    let Some(rollback) = &record.rollback else {
        return DeployRecord { result: Action::Failed, reason: Some("no previous image to roll back to".into()), logs: None, at: Utc::now() };
    };
    let outcome = dokku::redeploy(ctx.config, ctx.transport, &o.target.name, &o.target.image, rollback);
    let logs: Vec<String> = [Some(&outcome.restart), outcome.rollback.as_ref()].into_iter().flatten().filter_map(|r| r.as_ref().err()).map(|f| f.output_tail.join("\n")).collect();
    DeployRecord { result: outcome.action(), reason: outcome.reason(), logs: (!logs.is_empty()).then(|| logs.join("\n---\n")), at: Utc::now() }
}

/// Fills in a target's outcome from its redeploy.
pub(crate) fn finish(o: &mut Outcome, record: PatchRecord, deploy: DeployRecord, upgraded: &[(String, String)]) {
    o.to_patch = false;
    o.action = deploy.result;
    o.reason = deploy.reason.clone();
    if deploy.result == Action::Patched {
        o.image_id = Some(record.to_id.clone());
        if let Some(p) = &mut o.pending {
            let (fixed, left) = p.drain(..).partition(|p| upgraded.iter().any(|(name, arch)| *name == p.package && *arch == p.arch));
            o.fixed = fixed;
            *p = left;
        }
        o.reason = Some(format!("{} packages upgraded", record.upgraded.len()));
    }
    o.patch = Some(record);
    o.deploy = Some(deploy);
}

/// Settles a planned target without a patch.
fn settle(o: &mut Outcome, action: Action, reason: String) {
    o.to_patch = false;
    o.action = action;
    o.reason = Some(reason);
}
