//! freshen: find (and later patch) stale OS packages in container images.

mod commands;
mod output;
mod progress;
mod signals;
mod vex;

use std::process::ExitCode;
use std::sync::atomic::{AtomicU8, Ordering};

use clap::{CommandFactory, Parser, Subcommand};

/// Exit codes, documented in the README.
pub mod exit {
    /// Nothing pending in the chosen scope.
    pub const CLEAN: u8 = 0;
    /// An error: bad input, an unreachable or badly signed source, ...
    pub const ERROR: u8 = 1;
    /// Updates are pending in the chosen scope.
    pub const PENDING: u8 = 3;
    /// `patch`: nothing pending in the chosen scope, nothing written.
    pub const NOTHING_TO_PATCH: u8 = 4;
}

#[derive(Parser)]
#[command(name = "freshen", version, about = "Find and fix stale OS packages in container images")]
struct Cli {
    /// No progress on stderr (errors and results are still printed).
    #[arg(short, long, global = true)]
    quiet: bool,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Show which installed packages have newer versions in the image's own apt sources.
    Scan(commands::scan::Args),
    /// Install the pending updates as one thin layer on the original image (needs root).
    Patch(commands::patch::Args),
    /// Copy an image from one place to another unchanged (registries, the Docker Engine, files).
    Copy(commands::copy::Args),
    /// Move an image's own layers from its old base onto a new one (e.g. the patched base).
    Rebase(commands::rebase::Args),
    /// One pass over this host: discover running containers, Dokku apps and configured images, scan each image once, record fixes and exposure.
    Run(commands::run::Args),
    /// The pass of `run` at start, then whenever an archive publishes or the Engine starts something new, until SIGTERM or Ctrl-C.
    Watch(commands::watch::Args),
    /// Manage the cache directory.
    Cache(commands::cache::Args),
    /// What the state database knows: every target's pending security fixes, exposure and last action.
    Status(commands::status::Args),
    /// Set freshen up on this host: `host install` (systemd unit for `watch`, configuration, directories, Dokku plugin) and `host uninstall`.
    Host(commands::install::Args),
    /// Print the shell completion script for bash, zsh, fish, elvish or powershell (the Debian package installs them).
    Completions(commands::completions::Args),
    /// Write the man pages into a directory (for packaging).
    #[command(hide = true)]
    Manpages(commands::completions::ManpagesArgs),
    /// What the Dokku plugin runs: report, patch, and the pre-release-builder trigger.
    Dokku(commands::dokku::Args),
}

/// Whether the process is still running, was interrupted (a stop signal),
/// or has its result: exactly one of the signal handler and `main` reports.
static STATE: AtomicU8 = AtomicU8::new(RUNNING);
const RUNNING: u8 = 0;
const INTERRUPTED: u8 = 1;
const FINISHED: u8 = 2;

fn main() -> ExitCode {
    let cli = Cli::parse();
    progress::set_quiet(cli.quiet);
    // `run` and `watch` stop after the step in flight (SIGINT, SIGTERM,
    // SIGHUP); a second signal stops them at once, as it does every other
    // command.
    let graceful = matches!(cli.command, Command::Run(_) | Command::Watch(_));
    // Ctrl-C, SIGTERM, SIGHUP: stop sandboxed containers, unmount and
    // remove work directories, exit 128 + the signal's number.
    let _ = signals::install(move |signal| {
        if graceful && !freshen_host::stop::requested() {
            freshen_host::stop::request();
            eprintln!("stopping once the step in flight is done (signal again to stop at once)");
            return;
        }
        if STATE.compare_exchange(RUNNING, INTERRUPTED, Ordering::SeqCst, Ordering::SeqCst).is_err() {
            return; // the result is being printed; the process is exiting anyway
        }
        progress::clear();
        freshen_patch::cleanup::cleanup_active();
        commands::transport::remove_own_scratch();
        eprintln!("error: interrupted");
        std::process::exit(signals::exit_code(signal));
    });
    let result = match cli.command {
        Command::Scan(args) => commands::scan::run(args),
        Command::Patch(args) => commands::patch::run(args),
        Command::Rebase(args) => commands::rebase::run(args),
        Command::Copy(args) => commands::copy::run(args),
        Command::Run(args) => commands::run::run(args),
        Command::Status(args) => commands::status::run(args),
        Command::Watch(args) => commands::watch::run(args),
        Command::Cache(args) => commands::cache::run(args),
        Command::Host(args) => commands::install::run(args),
        Command::Completions(args) => commands::completions::run(args, Cli::command()),
        Command::Manpages(args) => commands::completions::manpages(args, Cli::command()),
        Command::Dokku(args) => commands::dokku::run(args),
    };
    // A command that failed because of a stop signal (its child processes
    // got it too) leaves the report to the handler, which exits 128 + signal.
    if STATE.compare_exchange(RUNNING, FINISHED, Ordering::SeqCst, Ordering::SeqCst).is_err() {
        loop {
            std::thread::park();
        }
    }
    match result {
        Ok(code) => ExitCode::from(code),
        Err(e) => {
            progress::clear();
            eprintln!("error: {}", error_line(&e));
            ExitCode::from(exit::ERROR)
        }
    }
}

/// The error and its causes on one line (`a: b: c`), a cause its parent's
/// message already ends with (`{path}: {source}`) said once, control
/// characters from images and registries escaped.
fn error_line(e: &anyhow::Error) -> String {
    let mut msg = String::new();
    for cause in e.chain() {
        let text = cause.to_string();
        if msg.ends_with(&text) {
            continue;
        }
        if !msg.is_empty() {
            msg.push_str(": ");
        }
        msg.push_str(&text);
    }
    freshen_image::escape(&msg.replace('\n', " ")).into_owned()
}
