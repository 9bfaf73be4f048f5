//! `freshen run`: one pass over the host (discover, scan, record).

use anyhow::Result;
use freshen_host::{pass, PassLock, State};

use super::host::{init_logs, HostArgs, LogFormat};
use crate::output::table;

#[derive(clap::Args)]
pub struct Args {
    #[command(flatten)]
    host: HostArgs,
    /// Scan and record, change nothing; print what would be patched.
    #[arg(long)]
    dry_run: bool,
    /// Print the configuration (the file's settings with the flags over them) as TOML and exit.
    #[arg(long)]
    print_config: bool,
    /// Log lines on stderr as text or JSON.
    #[arg(long, value_enum, default_value_t = LogFormat::Text)]
    log_format: LogFormat,
    #[command(flatten)]
    common: super::transport::ImageArgs,
}

pub fn run(args: Args) -> Result<u8> {
    let mut config = args.host.config()?;
    if let Some(cache) = args.common.cache_flag() {
        config.cache_dir = cache.to_path_buf();
    }
    if args.print_config {
        print!("{}", config.to_toml());
        return Ok(crate::exit::CLEAN);
    }
    init_logs(args.log_format);
    let _lock = PassLock::acquire(&config.state_dir)?;
    let mut state = State::open_writer(&config.state_dir)?;
    let transport = args.common.transport_in(&config.cache_dir, freshen_image::progress::silent())?;
    let ctx = pass::Context { config: &config, transport: &transport, platform: args.common.platform(), http: args.common.http_policy()?, dry_run: args.dry_run, stop: &|| false };
    let report = pass::run(&ctx, &mut state)?;

    let mut rows = vec![["KIND", "NAME", "IMAGE", "SECURITY", "ACTION"].map(String::from).to_vec()];
    for o in &report.outcomes {
        let action = match &o.reason {
            Some(r) => format!("{}: {r}", o.action.as_str()),
            None => o.action.as_str().to_string(),
        };
        let security = o.pending.as_ref().map_or("-".to_string(), |_| o.pending_security().to_string());
        rows.push(vec![o.target.kind.as_str().into(), o.target.name.clone(), o.target.image.clone(), security, action]);
    }
    if !report.outcomes.is_empty() {
        table(&rows, &mut std::io::stdout().lock())?;
    }
    if let Some(e) = &report.discovery_error {
        eprintln!("error: discovery: {e}");
    }
    let pending = report.pending_security();
    let exposed = report.outcomes.iter().filter(|o| o.pending_security() > 0).count();
    let failed = report.outcomes.iter().filter(|o| o.action == freshen_host::model::Action::Failed).count();
    println!("{} targets: {exposed} with security fixes pending, {failed} failed", report.outcomes.len());
    Ok(if report.failed() {
        crate::exit::ERROR
    } else if pending > 0 {
        crate::exit::PENDING
    } else {
        crate::exit::CLEAN
    })
}
