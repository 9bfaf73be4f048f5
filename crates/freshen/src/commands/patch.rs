//! `freshen patch IMAGE -o DEST`

use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use freshen_apt::Fetcher;
use freshen_image::ImageRef;
use freshen_patch::layer::Compression;
use freshen_patch::{Outcome, PatchOptions};
use serde_json::json;

#[derive(clap::Args)]
pub struct Args {
    /// The image to patch: docker://REGISTRY/REPO[:TAG|@DIGEST], docker-daemon:NAME[:TAG],
    /// oci:DIR[:TAG] or docker-archive:FILE[:NAME:TAG].
    image: String,
    /// Where to write the patched image (same forms; it may be the image itself).
    #[arg(short, long)]
    output: String,
    /// Install everything `apt-get upgrade` would, not only security updates.
    #[arg(long)]
    all: bool,
    /// Write a JSON report of what was done.
    #[arg(long)]
    report: Option<PathBuf>,
    /// Write an OpenVEX document with a `fixed` statement per CVE.
    #[arg(long)]
    vex: Option<PathBuf>,
    /// Compression of the patch layer.
    #[arg(long, value_enum, default_value_t = CompressionArg::Gzip)]
    compression: CompressionArg,
    /// The OCI runtime binary (default: runc or crun from PATH).
    #[arg(long)]
    runtime: Option<PathBuf>,
    /// The sandbox's memory limit (K, M, G, T: powers of 1024).
    #[arg(long, value_name = "SIZE", default_value = "2G", value_parser = parse_memory)]
    memory: u64,
    /// The sandbox's limit of processes and threads.
    #[arg(long, value_name = "N", default_value_t = 2048, value_parser = clap::value_parser!(u32).range(16..))]
    pids: u32,
    /// A smoke test (`sh -c CMD`) run in the patched image before it is accepted.
    #[arg(long)]
    test: Option<String>,
    #[command(flatten)]
    common: super::transport::ImageArgs,
}

#[derive(Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum CompressionArg {
    Gzip,
    Zstd,
}

/// At least 64 MiB: apt and dpkg do not start with less.
fn parse_memory(text: &str) -> Result<u64, String> {
    match freshen_host::size::parse(text)? {
        n if n < 64 << 20 => Err(format!("`{text}` is less than 64M, too little for apt and dpkg")),
        n => Ok(n),
    }
}

fn write_json_atomic(path: &Path, value: &serde_json::Value) -> Result<()> {
    Ok(freshen_image::write_atomic(path, &serde_json::to_vec_pretty(value)?)?)
}

pub fn run(args: Args) -> Result<u8> {
    let started = std::time::Instant::now();
    let input = ImageRef::parse(&args.image)?;
    let output = ImageRef::parse(&args.output)?;
    if matches!(input, ImageRef::Dir { .. }) {
        anyhow::bail!("{input}: patch needs an image, not a directory");
    }
    if matches!(output, ImageRef::Dir { .. }) {
        anyhow::bail!("{output}: patch writes images (docker://, docker-daemon:, oci:, docker-archive:), not directories");
    }
    let platform = args.common.platform();
    let cache = args.common.cache();
    let progress = crate::progress::reporter();
    let (transport, _spool) = args.common.spooling_transport(progress.clone())?;
    let source = freshen_image::open(&input, &platform, &transport)?;
    let fetcher = Fetcher::new(cache.clone(), &args.common.http_policy()?)?;
    let now = chrono::Utc::now();
    let source_date_epoch = std::env::var("SOURCE_DATE_EPOCH").ok().and_then(|s| s.trim().parse().ok());
    let opts = PatchOptions {
        cache,
        runtime: args.runtime,
        all: args.all,
        compression: if args.compression == CompressionArg::Zstd { Compression::Zstd } else { Compression::Gzip },
        source_date_epoch,
        test: args.test,
        limits: freshen_patch::sandbox::Limits { memory: args.memory, pids: args.pids.into() },
        now,
        progress,
    };
    let outcome = freshen_patch::patch(source.as_ref(), &fetcher, &opts).with_context(|| format!("patching {input}"))?;
    let patched = match outcome {
        Outcome::NothingPending { held_back } => {
            let scope = if args.all { "updates" } else { "security updates" };
            println!("{input}: no {scope} pending; nothing written");
            for (p, why) in held_back {
                println!("  held back: {}", freshen_image::escape(&format!("{p}: {why}")));
            }
            return Ok(crate::exit::NOTHING_TO_PATCH);
        }
        Outcome::Patched(p) => p,
    };
    let t = std::time::Instant::now();
    let img = patched.image(source.as_ref());
    let digest = freshen_image::write_image(&output, &img, &transport).with_context(|| format!("writing {output}"))?;
    let mut timings = patched.timings.clone();
    timings.push(("write", t.elapsed()));
    let security = patched.upgraded.iter().filter(|u| u.security).count();
    println!("{input}: upgraded {} packages ({security} security) in {:.1} s", patched.upgraded.len(), started.elapsed().as_secs_f64());
    for u in &patched.upgraded {
        let cves = if u.cves.is_empty() { String::new() } else { format!("  {}", u.cves.join(" ")) };
        println!("  {}", freshen_image::escape(&format!("{} {} -> {}{cves}", u.package, u.from, u.to)));
    }
    for (p, why) in &patched.held_back {
        println!("  held back: {}", freshen_image::escape(&format!("{p}: {why}")));
    }
    let s = &patched.stats;
    println!(
        "layer {}: {:.1} MB compressed, {:.1} MB uncompressed, {} files, {} whiteouts ({} unchanged files dropped)",
        patched.layer.digest,
        patched.layer.size as f64 / 1e6,
        s.uncompressed_bytes as f64 / 1e6,
        s.files,
        s.whiteouts,
        s.unchanged_dropped
    );
    if !s.secrets_left_out.is_empty() {
        println!("left out of the layer (per-instance secrets the image did not ship as apt made them): {}", freshen_image::escape(&s.secrets_left_out.join(", ")));
    }
    println!("wrote {output} ({digest})");
    let cves = crate::vex::fixed_cves(&patched.upgraded);
    if let Some(path) = &args.report {
        let report = json!({
            "image": input.to_string(),
            "output": output.to_string(),
            "manifest_digest": digest.to_string(),
            "upgraded": patched.upgraded.iter().map(|u| json!({
                "package": u.package, "arch": u.arch, "from": u.from, "to": u.to,
                "source_package": u.source_package, "security": u.security, "cves": u.cves,
            })).collect::<Vec<_>>(),
            "held_back": patched.held_back.iter().map(|(p, r)| json!({"package": p, "reason": r})).collect::<Vec<_>>(),
            "cves": cves,
            "layer": {
                "digest": patched.layer.digest.to_string(),
                "diff_id": patched.layer.diff_id.to_string(),
                "media_type": patched.layer.media_type,
                "compressed_bytes": patched.layer.size,
                "uncompressed_bytes": s.uncompressed_bytes,
                "files": s.files,
                "whiteouts": s.whiteouts,
                "unchanged_dropped": s.unchanged_dropped,
                "secrets_left_out": s.secrets_left_out,
            },
            "timings_ms": timings.iter().map(|(k, d)| (k.to_string(), json!(d.as_millis() as u64))).collect::<serde_json::Map<_, _>>(),
            "total_ms": started.elapsed().as_millis() as u64,
        });
        write_json_atomic(path, &report)?;
    }
    if let Some(path) = &args.vex {
        match crate::vex::document(&output, &digest, &patched.os, &patched.upgraded, now) {
            Some(vex) => write_json_atomic(path, &vex)?,
            None => println!("no known CVE fixed: no VEX document written"),
        }
    }
    Ok(crate::exit::CLEAN)
}
