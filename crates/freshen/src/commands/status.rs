//! `freshen status`: every target the last pass saw, read-only from the
//! state database (needs no root, never blocks a running pass): the most
//! exposed first, each with its oldest pending security fix, and a summary
//! line for the host.

use std::io::Write;

use anyhow::Result;
use chrono::Utc;
use freshen_host::duration::human;
use freshen_host::report::StatusReport;
use freshen_host::State;

use super::host::HostArgs;
use crate::output::{table, Format};

#[derive(clap::Args)]
pub struct Args {
    #[command(flatten)]
    host: HostArgs,
    /// Output format.
    #[arg(long, value_enum, default_value_t = Format::Text)]
    format: Format,
}

pub fn run(args: Args) -> Result<u8> {
    let config = args.host.config()?;
    let state = State::open_reader(&config.state_dir)?;
    let report = StatusReport::read(&state, std::path::Path::new("/"), Utc::now())?;
    let mut out = std::io::stdout().lock();
    match args.format {
        Format::Json => {
            serde_json::to_writer_pretty(&mut out, &report)?;
            writeln!(out)?;
        }
        Format::Text => text(&report, &mut out)?,
    }
    Ok(crate::exit::CLEAN)
}

fn text(report: &StatusReport, out: &mut impl Write) -> Result<()> {
    let mut rows = vec![["KIND", "NAME", "IMAGE", "SECURITY", "EXPOSED", "OLDEST PENDING FIX", "ROLLBACKS", "LAST ACTION"].map(String::from).to_vec()];
    for t in &report.targets {
        let exposed = t.exposure_seconds.map_or("-".to_string(), human);
        // Fixes come oldest first.
        let oldest = t.fixes.iter().find(|f| f.pending.counts()).map_or("-".to_string(), |f| {
            let cve = f.pending.cves.first().map(|c| format!(" {c}{}", if f.pending.cves.len() > 1 { format!(" +{}", f.pending.cves.len() - 1) } else { String::new() })).unwrap_or_default();
            format!("{}{cve} ({})", f.pending.package, f.exposure_seconds.map_or("-".to_string(), human))
        });
        let action = t.last_action_line().unwrap_or_else(|| "-".into());
        rows.push(vec![t.kind.clone(), t.name.clone(), t.image.clone(), t.pending_security.to_string(), exposed, oldest, t.rollbacks.to_string(), action]);
    }
    table(&rows, out)?;
    let s = report.summary();
    writeln!(
        out,
        "\n{} targets, {} exposed, {} pending security fixes, longest open exposure {}",
        s.targets,
        s.exposed,
        s.pending_security,
        s.longest.map_or("none".to_string(), human)
    )?;
    let host = &report.host;
    let unattended = match (&host.error, host.unattended_upgrades_installed, host.unattended_upgrades_enabled) {
        (Some(e), _, _) => format!("unknown ({e})"),
        (None, false, _) => "not installed".to_string(),
        (None, true, false) => "installed, not enabled (APT::Periodic::Unattended-Upgrade)".to_string(),
        (None, true, true) => format!("enabled, last run {}", host.unattended_upgrades_last_run.map_or("never".into(), |t| t.format("%Y-%m-%d %H:%M UTC").to_string())),
    };
    writeln!(out, "host: unattended-upgrades {unattended}{}", if host.reboot_required { "; reboot required" } else { "" })?;
    Ok(())
}
