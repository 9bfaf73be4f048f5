//! `freshen dokku ...`: what the Dokku plugin's commands and its
//! `pre-release-builder` trigger run (`dokku freshen:report`, `dokku
//! freshen:patch`, every build before Dokku releases it). Output follows
//! Dokku's conventions: `=====> ` headers, `-----> ` steps, indented
//! details, ` !     ` warnings and errors on stderr, exit 1 on failure.

use std::io::Write;
use std::time::Instant;

use anyhow::{bail, Result};
use chrono::Utc;
use freshen_host::dokku::release;
use freshen_host::model::{Action, Kind, Outcome};
use freshen_host::state::TargetStatus;
use freshen_host::{pass, PassLock, State};

use super::host::HostArgs;
use super::run::PassArgs;
use crate::output::Format;

#[derive(clap::Args)]
pub struct Args {
    #[command(subcommand)]
    command: Command,
}

#[derive(clap::Subcommand)]
enum Command {
    /// The app's (or every app's) pending security fixes, CVEs, exposure and last action, from the state database.
    Report(ReportArgs),
    /// Patch the app's running image (or every app's) and have Dokku restart it now, rolled back when Dokku's checks fail.
    Patch(PatchArgs),
    /// Dokku's `pre-release-builder` trigger: patch the new build IMAGE in place before Dokku releases it.
    PreReleaseBuilder(TriggerArgs),
}

#[derive(clap::Args)]
struct ReportArgs {
    /// The app (default: every app freshen has seen).
    app: Option<String>,
    #[command(flatten)]
    host: HostArgs,
    /// Output format.
    #[arg(long, value_enum, default_value_t = Format::Text)]
    format: Format,
}

#[derive(clap::Args)]
struct PatchArgs {
    /// The app to patch.
    #[arg(required_unless_present = "all", conflicts_with = "all")]
    app: Option<String>,
    /// Every app.
    #[arg(long)]
    all: bool,
    #[command(flatten)]
    pass: PassArgs,
}

#[derive(clap::Args)]
struct TriggerArgs {
    /// How Dokku built the image (herokuish, dockerfile, pack, ...).
    builder_type: String,
    /// The app.
    app: String,
    /// The new build, `NAME:TAG` in the Engine, patched in place.
    image: String,
    #[command(flatten)]
    pass: PassArgs,
}

pub fn run(args: Args) -> Result<u8> {
    let result = match args.command {
        Command::Report(a) => report(a),
        Command::Patch(a) => patch(a),
        Command::PreReleaseBuilder(a) => return Ok(trigger(a)),
    };
    // Dokku's way of failing: ` !     ` on stderr and exit 1.
    result.or_else(|e| {
        crate::progress::clear();
        eprintln!(" !     {}", crate::error_line(&e));
        Ok(crate::exit::ERROR)
    })
}

/// The apps of the state database (`app` alone when named).
fn apps(state: &State, app: Option<&str>) -> Result<Vec<TargetStatus>> {
    let apps: Vec<TargetStatus> = state.status(Utc::now())?.into_iter().filter(|t| t.kind == Kind::DokkuApp.as_str() && app.is_none_or(|a| t.name == a)).collect();
    if let (Some(app), true) = (app, apps.is_empty()) {
        bail!("freshen has no record of app {app} yet (a deploy, `dokku freshen:patch {app}` or freshen's next pass records it)");
    }
    Ok(apps)
}

fn report(args: ReportArgs) -> Result<u8> {
    let config = args.host.config()?;
    let state = State::open_reader(&config.state_dir)?;
    let apps = apps(&state, args.app.as_deref())?;
    let mut out = std::io::stdout().lock();
    match (args.format, &args.app) {
        (Format::Json, Some(_)) => serde_json::to_writer_pretty(&mut out, &apps[0])?,
        (Format::Json, None) => serde_json::to_writer_pretty(&mut out, &apps)?,
        (Format::Text, _) => {
            for (i, app) in apps.iter().enumerate() {
                if i > 0 {
                    writeln!(out)?;
                }
                write_report(&mut out, app)?;
            }
        }
    }
    if args.format == Format::Json {
        writeln!(out)?;
    }
    Ok(crate::exit::CLEAN)
}

/// One app's report, laid out as Dokku's `*:report` commands do.
fn write_report(out: &mut dyn Write, app: &TargetStatus) -> std::io::Result<()> {
    let security: Vec<_> = app.fixes.iter().filter(|f| f.pending.counts()).collect();
    let mut cves: Vec<&str> = security.iter().flat_map(|f| f.pending.cves.iter().map(String::as_str)).collect();
    cves.sort();
    cves.dedup();
    let packages: Vec<String> = security.iter().map(|f| format!("{} {} -> {}", f.pending.package, f.pending.installed, f.pending.candidate)).collect();
    let action = app.last_action_line().unwrap_or_else(|| "none".into());
    let none = |v: &[String]| if v.is_empty() { "none".to_string() } else { v.join(", ") };
    let rows = [
        ("image", app.image.clone()),
        ("pending security", app.pending_security.to_string()),
        ("packages", none(&packages)),
        ("cves", none(&cves.iter().map(|c| c.to_string()).collect::<Vec<_>>())),
        ("exposure", app.exposure_seconds.map_or("none".into(), freshen_host::duration::human)),
        ("last exposure", app.last_exposure_seconds.map_or("none".into(), freshen_host::duration::human)),
        ("last action", action),
        ("rollbacks", app.rollbacks.to_string()),
    ];
    // Names, images and reasons come from images and the Engine.
    writeln!(out, "=====> {} freshen information", freshen_image::escape(&app.name))?;
    for (key, value) in rows {
        writeln!(out, "       {:<30} {}", format!("Freshen {key}:"), freshen_image::escape(&value))?;
    }
    Ok(())
}

fn patch(args: PatchArgs) -> Result<u8> {
    let Some(config) = args.pass.config(|_| {})? else { return Ok(crate::exit::CLEAN) };
    let _lock = PassLock::acquire(&config.state_dir)?;
    let mut state = State::open_writer(&config.state_dir)?;
    let wanted = |t: &freshen_host::model::Target| t.kind == Kind::DokkuApp && args.app.as_ref().is_none_or(|a| t.name == *a);
    let report = args.pass.with_context(&config, |ctx| Ok(pass::run_only(ctx, &mut state, Some(&wanted))?))?;
    if let Some(e) = &report.discovery_error {
        bail!("cannot ask the Docker Engine what runs: {e}");
    }
    if report.outcomes.is_empty() {
        match &args.app {
            Some(app) => bail!("App {app} has no running containers: nothing to patch"),
            None => println!("-----> No app has running containers: nothing to patch"),
        }
    }
    let mut failed = false;
    for o in &report.outcomes {
        let line = freshen_image::escape(&format!("{}: {}{}", o.target.name, o.action.as_str(), o.reason.as_ref().map(|r| format!(" ({r})")).unwrap_or_default())).into_owned();
        match o.action {
            Action::Patched | Action::Unchanged | Action::Skipped => println!("-----> {line}"),
            Action::RolledBack | Action::Failed => {
                failed = true;
                eprintln!(" !     {line}");
            }
        }
        for f in &o.fixed {
            println!("       {} {} -> {}", f.package, f.installed, f.candidate);
        }
    }
    Ok(if failed { crate::exit::ERROR } else { crate::exit::CLEAN })
}

/// The trigger never fails a deploy for freshen's own failure unless
/// `dokku.strict`: it says why and leaves the build as it is.
fn trigger(args: TriggerArgs) -> u8 {
    let started = Instant::now();
    let mut strict = false;
    let result = (|| -> Result<release::Released> {
        let Some(config) = args.pass.config(|_| {})? else { bail!("--print-config: nothing done") };
        strict = config.dokku.strict;
        // The state is written under the pass lock; a pass running now
        // records the app itself.
        let lock = PassLock::acquire(&config.state_dir).ok();
        let mut state = lock.as_ref().and_then(|_| State::open_writer(&config.state_dir).ok());
        args.pass.with_context(&config, |ctx| Ok(release::pre_release(ctx, state.as_mut(), &args.app, &args.image)?))
    })();
    let seconds = started.elapsed().as_secs_f64();
    match result {
        Ok(r) => {
            say(&args.image, &r.outcome, seconds);
            crate::exit::CLEAN
        }
        Err(e) => {
            crate::progress::clear();
            eprintln!(" !     freshen: {}: {}", args.image, crate::error_line(&e));
            if strict {
                eprintln!(" !     freshen: dokku.strict is set: failing the deploy");
                crate::exit::ERROR
            } else {
                eprintln!(" !     freshen: releasing the build unpatched (set dokku.strict = true to fail the deploy instead)");
                crate::exit::CLEAN
            }
        }
    }
}

/// What the trigger did, for the deploy's log.
fn say(image: &str, o: &Outcome, seconds: f64) {
    match o.action {
        Action::Patched => {
            println!("-----> freshen: patched {image}: {} security updates installed ({seconds:.1}s)", o.fixed.iter().filter(|f| f.security).count());
            for f in &o.fixed {
                let cves = if f.cves.is_empty() { String::new() } else { format!(" ({})", f.cves.join(", ")) };
                println!("       {} {} -> {}{cves}", f.package, f.installed, f.candidate);
            }
        }
        Action::Unchanged => println!("-----> freshen: no security update pending for {image} ({seconds:.2}s)"),
        _ => println!("-----> freshen: {image} left as built: {}{}", o.action.as_str(), o.reason.as_ref().map(|r| format!(" ({r})")).unwrap_or_default()),
    }
}
