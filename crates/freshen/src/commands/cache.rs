//! `freshen cache prune`: the least recently used layers, indexes,
//! packages and patch records go until the cache fits; what a running
//! patch has mounted stays.

use std::path::PathBuf;

use anyhow::{anyhow, Result};

#[derive(clap::Args)]
pub struct Args {
    #[command(subcommand)]
    command: Command,
}

#[derive(clap::Subcommand)]
enum Command {
    /// Remove least recently used cache entries not in use.
    Prune(PruneArgs),
}

#[derive(clap::Args)]
struct PruneArgs {
    /// Remove least recently used entries until the cache takes at most this (e.g. 20G, 500M, 0).
    #[arg(long, value_name = "SIZE", default_value = "20G")]
    max_size: String,
    /// Remove entries unused for longer than this (e.g. 30d, 12h).
    #[arg(long, value_name = "DURATION", default_value = "30d")]
    max_age: String,
    /// Cache directory (default: $FRESHEN_CACHE, else ~/.cache/freshen).
    #[arg(long, value_name = "DIR")]
    cache: Option<PathBuf>,
}

pub fn run(args: Args) -> Result<u8> {
    let Command::Prune(args) = args.command;
    let max_size = freshen_host::size::parse(&args.max_size).map_err(|e| anyhow!("--max-size: {e}"))?;
    let max_age = freshen_host::duration::parse(&args.max_age).map_err(|e| anyhow!("--max-age: {e}"))?;
    let cache = args.cache.unwrap_or_else(freshen_host::config::default_cache_dir);
    let p = freshen_patch::prune::prune(&cache, freshen_patch::prune::Limits { max_size, max_age: Some(max_age) })?;
    let size = |b: u64| format!("{:.1} MiB", b as f64 / (1u64 << 20) as f64);
    println!("removed {} entries ({}), {} in use kept, {} left in {}", p.removed, size(p.freed), p.busy, size(p.kept), cache.display());
    Ok(crate::exit::CLEAN)
}
