//! Recreating a plain container on its patched image, with a health gate
//! and rollback, and repairing what a crash left half-way.
//!
//! The image is patched in place first (its name moves to the patched
//! image); [`replace`] then renames the old container `<name>.freshen-old`
//! and stops it (its own stop signal and timeout), creates the new one
//! under `<name>` as `docker run` would have with the same settings
//! ([`create_plan`]), connects its other networks, starts it, and waits
//! for it to be accepted ([`Accept`]). Accepted, the old container is
//! removed; refused (or interrupted), the new one is removed and the old
//! one renamed back and started: a container is never left stopped.
//!
//! The Engine itself holds the intent: a container named
//! `<name>.freshen-old` exists only between those steps (it is renamed
//! before it is stopped, and started before it gets its name back), so a
//! crash at any point leaves either the container running under its name
//! or that mark, and [`repair`] finishes or undoes each one it finds.

mod body;

use std::fmt;
use std::thread::sleep;
use std::time::{Duration, Instant};

use freshen_image::engine;
use freshen_image::Transport;
use serde_json::Value;
use tracing::{error, info, warn};

pub use body::{create_plan, CreatePlan};

/// What the old container is renamed to while its replacement starts.
pub const OLD_SUFFIX: &str = ".freshen-old";
/// How many log lines of a refused container are kept.
pub const LOG_LINES: usize = 20;
/// How often a starting container is looked at.
const POLL: Duration = Duration::from_millis(250);

/// When a new container is accepted.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Accept {
    /// Without a `HEALTHCHECK`: still running (and not restarted) this
    /// long after its start.
    pub settle: Duration,
    /// With one: how long it has to report `healthy`. `unhealthy` or an
    /// exit refuse it at once.
    pub health_timeout: Duration,
}

impl Default for Accept {
    /// 10 s to settle, 5 minutes to become healthy.
    fn default() -> Accept {
        Accept { settle: Duration::from_secs(10), health_timeout: Duration::from_secs(300) }
    }
}

/// A container recreated on its image.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Replaced {
    pub name: String,
    /// The old container's id (removed).
    pub old_id: String,
    /// The new container's id.
    pub new_id: String,
    /// The image the new container runs.
    pub image_id: String,
}

/// Why a container was not replaced, and what became of it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Refused {
    pub name: String,
    pub reason: String,
    /// The last lines the new container logged, if one was started.
    pub logs: Vec<String>,
    pub rollback: Rollback,
}

/// What was done to bring the old container back.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Rollback {
    /// Nothing had been changed.
    NotNeeded,
    /// The new container is gone; the old one runs again under its name.
    Done,
    /// Bringing the old container back failed: it needs a hand (the next
    /// [`repair`] tries again).
    Failed(String),
}

impl fmt::Display for Refused {
    fn fmt(&self, f: &mut fmt::Formatter) -> fmt::Result {
        write!(f, "{}: {}", self.name, self.reason)?;
        match &self.rollback {
            Rollback::NotNeeded => Ok(()),
            Rollback::Done => write!(f, " (rolled back: the old container runs again)"),
            Rollback::Failed(e) => write!(f, " (ROLLBACK FAILED, the old container may be stopped as {}{OLD_SUFFIX}: {e})", self.name),
        }
    }
}

/// Recreates `container` (a name or id) on the image its name now points
/// at, and keeps the new one only once [`Accept`] says so. `stop` is asked
/// while waiting: when it says yes (a signal), the new container is
/// refused and the old one brought back.
pub fn replace(t: &Transport, container: &str, accept: &Accept, stop: &dyn Fn() -> bool) -> Result<Replaced, Refused> {
    replace_on(t, container, None, accept, stop)
}

/// [`replace`], creating the new container from the image `name` (a
/// `REPO:TAG`) instead of the name the container was created with: for a
/// container created from an image id or digest, whose patch is written
/// under a name of freshen's.
pub fn replace_on(t: &Transport, container: &str, name: Option<&str>, accept: &Accept, stop: &dyn Fn() -> bool) -> Result<Replaced, Refused> {
    let untouched = |reason: String| Refused { name: container.to_string(), reason, logs: Vec::new(), rollback: Rollback::NotNeeded };
    let mut old = engine::inspect_container(t, container).map_err(|e| untouched(e.to_string()))?.ok_or_else(|| untouched("no such container".into()))?;
    if let Some(n) = name {
        old["Config"]["Image"] = Value::from(n);
    }
    if old["State"]["Running"] != true {
        return Err(untouched("the container is not running".into()));
    }
    let old_id = old["Id"].as_str().unwrap_or(container).to_string();
    let image_config = engine::inspect_image(t, old["Image"].as_str().unwrap_or_default()).ok().flatten().map(|i| i["Config"].clone()).unwrap_or(Value::Null);
    let image = old["Config"]["Image"].as_str().unwrap_or_default();
    let new_image = match engine::inspect_image(t, image) {
        Ok(Some(i)) => i["Id"].as_str().unwrap_or_default().to_string(),
        Ok(None) => return Err(untouched(format!("its image {image} is gone from the Engine"))),
        Err(e) => return Err(untouched(e.to_string())),
    };
    let plan = create_plan(&old, &image_config, &new_image).map_err(untouched)?;
    let name = plan.name.clone();
    let refused = |reason: String, logs: Vec<String>, rollback: Rollback| Refused { name: name.clone(), reason, logs, rollback };
    let parked = format!("{name}{OLD_SUFFIX}");
    if engine::inspect_container(t, &parked).ok().flatten().is_some() {
        return Err(refused(format!("{parked} is left from an earlier attempt: repair first"), Vec::new(), Rollback::NotNeeded));
    }
    if stop() {
        return Err(refused("interrupted before the container was stopped".into(), Vec::new(), Rollback::NotNeeded));
    }

    // Renamed while it still runs, so that from here on its name marks
    // the replacement under way for a repair after a crash.
    info!(container = %name, image = %image, "renaming and stopping the old container");
    if let Err(e) = engine::rename_container(t, &old_id, &parked) {
        return Err(refused(e.to_string(), Vec::new(), Rollback::NotNeeded));
    }
    if let Err(e) = engine::stop_container(t, &old_id) {
        return Err(refused(e.to_string(), Vec::new(), rolled_back(restore(t, &name, &old_id, true, None))));
    }
    info!(container = %name, "creating the new container");
    let new_id = match engine::create_container(t, &name, &plan.body) {
        Ok(id) => id,
        Err(e) => return Err(refused(e.to_string(), Vec::new(), rolled_back(restore(t, &name, &old_id, true, None)))),
    };
    let started = plan
        .networks
        .iter()
        .try_for_each(|(net, ep)| engine::connect_network(t, net, &new_id, ep))
        .and_then(|()| engine::start_container(t, &new_id))
        .map_err(|e| e.to_string());
    let accepted = started.and_then(|()| {
        info!(container = %name, id = %short(&new_id), "started the new container; waiting for it to be accepted");
        wait_accepted(t, &new_id, accept, stop)
    });
    match accepted {
        Ok(()) => {
            info!(container = %name, id = %short(&new_id), "accepted; removing the old container");
            if let Err(e) = engine::remove_container(t, &old_id, true) {
                warn!(container = %parked, error = %e, "cannot remove the old container; the next repair will");
            }
            Ok(Replaced { name, old_id, new_id, image_id: new_image })
        }
        Err(reason) => {
            warn!(container = %name, reason = %reason, "refused; rolling back");
            let tty = plan.body["Tty"] == true;
            let logs = engine::container_logs(t, &new_id, LOG_LINES, tty).unwrap_or_else(|e| vec![format!("(the logs cannot be read: {e})")]);
            Err(refused(reason, logs, rolled_back(restore(t, &name, &old_id, true, Some(&new_id)))))
        }
    }
}

/// Waits until the new container is accepted, or says why not.
fn wait_accepted(t: &Transport, id: &str, accept: &Accept, stop: &dyn Fn() -> bool) -> Result<(), String> {
    let begun = Instant::now();
    loop {
        let c = engine::inspect_container(t, id).map_err(|e| e.to_string())?.ok_or("the new container disappeared")?;
        let state = &c["State"];
        let why = || state["Error"].as_str().filter(|e| !e.is_empty()).map(|e| format!(": {e}")).unwrap_or_default();
        if state["Running"] != true {
            return Err(format!("the new container exited (exit code {}){}", state["ExitCode"], why()));
        }
        if state["Restarting"] == true || state["RestartCount"].as_u64().unwrap_or(0) > 0 {
            return Err(format!("the new container exited and was restarted (last exit code {}){}", state["ExitCode"], why()));
        }
        let waited = begun.elapsed();
        match health(&c) {
            None if waited >= accept.settle => return Ok(()),
            None => {}
            Some("healthy") => return Ok(()),
            Some("unhealthy") => return Err(format!("its health check reports unhealthy{}", last_probe(&c))),
            Some(status) if waited >= accept.health_timeout => {
                return Err(format!("not healthy after {} s (still {status}){}", accept.health_timeout.as_secs(), last_probe(&c)));
            }
            Some(_) => {}
        }
        if stop() {
            return Err("interrupted before the new container was accepted".into());
        }
        sleep(POLL);
    }
}

/// The health status of a container with a health check (`starting`,
/// `healthy`, `unhealthy`), `None` without one.
fn health(c: &Value) -> Option<&str> {
    c["State"]["Health"]["Status"].as_str().filter(|s| !s.is_empty() && *s != "none")
}

/// `: OUTPUT` of the last health probe, on one line.
fn last_probe(c: &Value) -> String {
    let out = c["State"]["Health"]["Log"].as_array().and_then(|l| l.last()).and_then(|p| p["Output"].as_str()).unwrap_or_default();
    let out = out.split_whitespace().collect::<Vec<_>>().join(" ");
    if out.is_empty() { String::new() } else { format!(": {out}") }
}

/// Brings the old container back under `name`: removes `replacement`,
/// starts the old one and then (when `renamed`) gives it its name back,
/// so that a crash in between leaves the temporary name for [`repair`].
fn restore(t: &Transport, name: &str, old_id: &str, renamed: bool, replacement: Option<&str>) -> Result<(), String> {
    if let Some(new) = replacement {
        engine::remove_container(t, new, true).map_err(|e| e.to_string())?;
    }
    engine::start_container(t, old_id).map_err(|e| e.to_string())?;
    if renamed {
        engine::rename_container(t, old_id, name).map_err(|e| e.to_string())?;
    }
    info!(container = %name, id = %short(old_id), "the old container runs again");
    Ok(())
}

fn rolled_back(r: Result<(), String>) -> Rollback {
    match r {
        Ok(()) => Rollback::Done,
        Err(e) => {
            error!(error = %e, "ROLLBACK FAILED: the old container could not be brought back");
            Rollback::Failed(e)
        }
    }
}

fn short(id: &str) -> &str {
    id.get(..12).unwrap_or(id)
}

/// What [`repair`] did with one container left as `<name>.freshen-old`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Repaired {
    /// The container's own name (without the suffix).
    pub name: String,
    pub result: Result<Repair, String>,
}

/// How a half-done replacement was settled.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Repair {
    /// The replacement runs and is accepted: the old container was removed.
    Finished,
    /// The replacement was not accepted: removed, the old container runs
    /// again under its name.
    RolledBack,
    /// There was no running replacement: the old container runs again
    /// under its name.
    Restored,
}

/// Settles every container named `<name>.freshen-old` (a replacement a
/// crash interrupted). Call it under the pass lock, before replacing
/// anything. Fails only when the Engine cannot list its containers.
pub fn repair(t: &Transport) -> freshen_image::Result<Vec<Repaired>> {
    let all = engine::all_containers(t)?;
    let mut done = Vec::new();
    for old in all.iter().filter(|c| c.name().ends_with(OLD_SUFFIX)) {
        let parked = old.name();
        let name = parked.trim_end_matches(OLD_SUFFIX).to_string();
        let current = all.iter().find(|c| c.name() == name);
        let result = match current {
            Some(new) if new.state == "running" && accepted_now(t, &new.id) => {
                info!(container = %name, "repair: the replacement runs and is accepted; removing the old container");
                engine::remove_container(t, &old.id, true).map(|()| Repair::Finished).map_err(|e| e.to_string())
            }
            Some(new) if new.state == "running" => {
                warn!(container = %name, "repair: the replacement is not accepted; rolling back");
                restore(t, &name, &old.id, true, Some(&new.id)).map(|()| Repair::RolledBack)
            }
            leftover => {
                warn!(container = %name, "repair: no running replacement; bringing the old container back");
                restore(t, &name, &old.id, true, leftover.map(|c| c.id.as_str())).map(|()| Repair::Restored)
            }
        };
        if let Err(e) = &result {
            error!(container = %name, error = %e, "repair failed");
        }
        done.push(Repaired { name, result });
    }
    Ok(done)
}

/// Running and healthy, or running without a health check.
fn accepted_now(t: &Transport, id: &str) -> bool {
    match engine::inspect_container(t, id) {
        Ok(Some(c)) => c["State"]["Running"] == true && c["State"]["Restarting"] != true && matches!(health(&c), None | Some("healthy")),
        _ => false,
    }
}
