//! What `run`, `watch` and `status` share: the configuration file and
//! state directory flags, and the log lines on stderr.

use std::path::PathBuf;

use anyhow::Result;
use freshen_host::Config;

#[derive(clap::Args, Clone)]
pub struct HostArgs {
    /// The configuration file (default: /etc/freshen/freshen.toml, when it exists).
    #[arg(long, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// The state directory (default: the configuration's state_dir, /var/lib/freshen).
    #[arg(long, value_name = "DIR")]
    pub state: Option<PathBuf>,
}

impl HostArgs {
    /// The configuration file's settings with the flags over them.
    pub fn config(&self) -> Result<Config> {
        let mut config = Config::load(self.config.as_deref())?;
        if let Some(dir) = &self.state {
            config.state_dir = dir.clone();
        }
        Ok(config)
    }
}

#[derive(Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum LogFormat {
    Text,
    Json,
}

/// One line per event on stderr (warnings only with `--quiet`).
pub fn init_logs(format: LogFormat) {
    use tracing_subscriber::filter::LevelFilter;
    let level = if crate::progress::is_quiet() { LevelFilter::WARN } else { LevelFilter::INFO };
    let builder = tracing_subscriber::fmt().with_writer(std::io::stderr).with_max_level(level).with_ansi(false).with_target(false);
    let _ = match format {
        LogFormat::Text => builder.try_init(),
        LogFormat::Json => builder.json().flatten_event(true).try_init(),
    };
}
