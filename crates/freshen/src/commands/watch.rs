//! `freshen watch`: the pass of `run` at start, then whenever an archive
//! publishes or the Engine starts something new, until SIGTERM or Ctrl-C.

use anyhow::{bail, Result};
use freshen_host::duration::Span;

use super::run::PassArgs;

#[derive(clap::Args)]
pub struct Args {
    #[command(flatten)]
    pass: PassArgs,
    /// How often to ask the archives whether they published (default: the configuration's interval, 5m).
    #[arg(long, value_name = "DURATION")]
    interval: Option<String>,
    /// Serve the status page, /metrics, /api/status and /healthz on this address (e.g. 127.0.0.1:9470; default: the configuration's `listen`, else none).
    #[arg(long, value_name = "ADDR")]
    listen: Option<std::net::SocketAddr>,
}

pub fn run(args: Args) -> Result<u8> {
    let interval = match &args.interval {
        Some(text) => match freshen_host::duration::parse(text) {
            Ok(d) if d.is_zero() => bail!("--interval: must be longer than 0s"),
            Ok(d) => Some(d),
            Err(e) => bail!("--interval: {e}"),
        },
        None => None,
    };
    let Some(config) = args.pass.config(|c| {
        c.interval = interval.map(Span).unwrap_or(c.interval);
        c.listen = args.listen.or(c.listen);
    })? else { return Ok(crate::exit::CLEAN) };
    if config.interval.0.is_zero() {
        bail!("interval: must be longer than 0s");
    }
    args.pass.with_context(&config, |ctx| Ok(freshen_host::watch::watch(ctx, config.interval.0)?))?;
    Ok(crate::exit::CLEAN)
}
