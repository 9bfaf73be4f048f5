//! `freshen status`: every target the last pass saw, read-only from the
//! state database (needs no root, never blocks a running pass).

use anyhow::Result;
use chrono::Utc;
use freshen_host::hostinfo::HostReport;
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
    let targets = state.status(Utc::now())?;
    let host = HostReport::read(std::path::Path::new("/"));
    let mut out = std::io::stdout().lock();
    match args.format {
        Format::Json => {
            serde_json::to_writer_pretty(&mut out, &serde_json::json!({ "targets": targets, "host": host }))?;
            use std::io::Write;
            writeln!(out)?;
        }
        Format::Text => {
            let mut rows = vec![["KIND", "NAME", "IMAGE", "SECURITY", "EXPOSED", "ROLLBACKS", "LAST ACTION"].map(String::from).to_vec()];
            for t in &targets {
                let exposed = t.exposure_seconds.map_or("-".to_string(), human);
                let action = match (&t.last_action, t.last_action_at) {
                    (Some(a), Some(at)) => format!("{a} {}{}", at.format("%Y-%m-%d %H:%M UTC"), t.last_reason.as_ref().map(|r| format!(": {r}")).unwrap_or_default()),
                    _ => "-".into(),
                };
                rows.push(vec![t.kind.clone(), t.name.clone(), t.image.clone(), t.pending_security.to_string(), exposed, t.rollbacks.to_string(), action]);
            }
            table(&rows, &mut out)?;
            use std::io::Write;
            let unattended = match (&host.error, host.unattended_upgrades_installed, host.unattended_upgrades_enabled) {
                (Some(e), _, _) => format!("unknown ({e})"),
                (None, false, _) => "not installed".to_string(),
                (None, true, false) => "installed, not enabled (APT::Periodic::Unattended-Upgrade)".to_string(),
                (None, true, true) => format!("enabled, last run {}", host.unattended_upgrades_last_run.map_or("never".into(), |t| t.format("%Y-%m-%d %H:%M UTC").to_string())),
            };
            writeln!(out, "\nhost: unattended-upgrades {unattended}{}", if host.reboot_required { "; reboot required" } else { "" })?;
        }
    }
    Ok(crate::exit::CLEAN)
}

/// `3d 4h`, `2h 5m`, `40s`.
pub fn human(secs: i64) -> String {
    let (d, h, m) = (secs / 86_400, secs % 86_400 / 3600, secs % 3600 / 60);
    match (d, h, m) {
        (0, 0, 0) => format!("{secs}s"),
        (0, 0, m) => format!("{m}m"),
        (0, h, m) => format!("{h}h {m}m"),
        (d, h, _) => format!("{d}d {h}h"),
    }
}
