//! `freshen completions SHELL`: the shell completion script, and the
//! hidden `freshen manpages DIR`: one man page per command, both made from
//! the clap definitions (the Debian package ships them).

use std::path::PathBuf;

use anyhow::{Context, Result};
use clap_complete::Shell;

#[derive(clap::Args)]
pub struct Args {
    /// The shell to complete for (bash, zsh, fish, elvish, powershell).
    #[arg(value_name = "SHELL")]
    shell: Shell,
}

/// Prints the completion script of `shell` for `cmd`.
pub fn run(args: Args, mut cmd: clap::Command) -> Result<u8> {
    clap_complete::generate(args.shell, &mut cmd, "freshen", &mut std::io::stdout().lock());
    Ok(crate::exit::CLEAN)
}

#[derive(clap::Args)]
pub struct ManpagesArgs {
    /// Where to write freshen.1 and freshen-COMMAND.1 (created if missing).
    #[arg(value_name = "DIR")]
    dir: PathBuf,
}

/// Writes `freshen.1` and one page per visible subcommand, nested ones as
/// `freshen-cache-prune.1`.
pub fn manpages(args: ManpagesArgs, cmd: clap::Command) -> Result<u8> {
    std::fs::create_dir_all(&args.dir).with_context(|| format!("{}", args.dir.display()))?;
    clap_mangen::generate_to(cmd, &args.dir).with_context(|| format!("writing man pages to {}", args.dir.display()))?;
    Ok(crate::exit::CLEAN)
}
