//! `freshen run`: one pass over the host (discover, scan, record).

use anyhow::Result;
use freshen_host::{pass, Config, PassLock, State};

use super::host::{init_logs, HostArgs, LogFormat};
use crate::output::table;

#[derive(clap::Args)]
pub struct Args {
    #[command(flatten)]
    pub pass: PassArgs,
}

/// What `run` and `watch` are told.
#[derive(clap::Args)]
pub struct PassArgs {
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

impl PassArgs {
    /// The configuration with the flags over it, or `None` when it was
    /// printed (`--print-config`); starts the log.
    pub fn config(&self, adjust: impl FnOnce(&mut Config)) -> Result<Option<Config>> {
        let mut config = self.host.config()?;
        if let Some(cache) = self.common.cache_flag() {
            config.cache_dir = cache.to_path_buf();
        }
        adjust(&mut config);
        if self.print_config {
            print!("{}", config.to_toml());
            return Ok(None);
        }
        init_logs(self.log_format);
        Ok(Some(config))
    }

    /// Runs `f` with the context of a pass over `config`.
    pub fn with_context<T>(&self, config: &Config, f: impl FnOnce(&pass::Context) -> Result<T>) -> Result<T> {
        let transport = self.common.transport_in(&config.cache_dir, freshen_image::progress::silent())?;
        let ctx = pass::Context { config, transport: &transport, platform: self.common.platform(), http: self.common.http_policy()?, dry_run: self.dry_run };
        f(&ctx)
    }
}

pub fn run(args: Args) -> Result<u8> {
    let args = args.pass;
    let Some(config) = args.config(|_| {})? else { return Ok(crate::exit::CLEAN) };
    let _lock = PassLock::acquire(&config.state_dir)?;
    let mut state = State::open_writer(&config.state_dir)?;
    let (report, notifier) = args.with_context(&config, |ctx| {
        let notifier = freshen_host::notify::Notifier::start(&config.notify, &ctx.http);
        let report = pass::run(ctx, &mut state)?;
        freshen_host::notify::after_pass(notifier.as_ref(), &state, &report.outcomes);
        Ok((report, notifier))
    })?;

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
        eprintln!("error: discovery: {}", freshen_image::escape(&e.to_string()));
    }
    let pending = report.pending_security();
    let exposed = report.outcomes.iter().filter(|o| o.pending_security() > 0).count();
    let failed = report.outcomes.iter().filter(|o| o.action == freshen_host::model::Action::Failed).count();
    println!("{} targets: {exposed} with security fixes pending, {failed} failed", report.outcomes.len());
    if let Some(n) = notifier {
        n.finish(freshen_host::watch::FINISH);
    }
    Ok(if report.failed() {
        crate::exit::ERROR
    } else if pending > 0 {
        crate::exit::PENDING
    } else {
        crate::exit::CLEAN
    })
}
