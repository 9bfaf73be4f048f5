//! One sandbox run: the image's layers from the cache under an overlay,
//! apt's lists and `.deb`s staged, the image's own apt run in the sandbox,
//! the result re-scanned (and `--test` run), and the patch layer written.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use freshen_apt::{Fetcher, ScanOptions, Update};
use freshen_image::{ImageSource, Layer, LayerBlob};

use crate::cache::LayerCache;
use crate::error::{Error, Result};
use crate::layer::{write_patch_layer, LayerOptions, LayerStats};
use crate::options::PatchOptions;
use crate::sandbox::{self, Bind, Overlay, RunSpec};
use crate::script;
use crate::view::View;
use crate::workdir::WorkDir;

/// The layer a sandbox run produced.
pub(crate) struct Built {
    pub(crate) layer: LayerBlob,
    pub(crate) layer_path: PathBuf,
    pub(crate) stats: LayerStats,
    /// (package, version) installed after the run.
    pub(crate) installed_after: Vec<(String, String)>,
}

/// Everything a sandbox run needs.
pub(crate) struct RunCtx<'a> {
    pub(crate) source: &'a dyn ImageSource,
    pub(crate) fetcher: &'a Fetcher,
    pub(crate) opts: &'a PatchOptions,
    pub(crate) todo: &'a [(usize, &'a Update)],
    pub(crate) clamp: u64,
    pub(crate) docker: bool,
    pub(crate) created_by: String,
    pub(crate) work: &'a WorkDir,
    pub(crate) offers: &'a freshen_apt::archive::Offers,
    pub(crate) system_arch: String,
    pub(crate) foreign_archs: Vec<String>,
}

/// Runs apt over `layers` in the sandbox and writes the patch layer.
pub(crate) fn run_sandbox(ctx: &RunCtx, layers: &[Layer], all_layers: &[Layer], timings: &mut Vec<(&'static str, Duration)>) -> Result<Built> {
    let opts = ctx.opts;
    let t = Instant::now();
    let cache = LayerCache::new(opts.cache.join("layers")).with_progress(opts.progress.clone());
    let mut lowers = Vec::new();
    // Held against `cache prune` while mounted.
    let mut holds = Vec::new();
    for l in layers.iter().rev() {
        let (path, hold) = cache.ensure_held(ctx.source, l)?;
        lowers.push(path);
        holds.push(hold);
    }
    // apt's lists and archives for this run only, built from what freshen
    // verified: the sandbox installs the planned versions without asking
    // the archive again, even if it has published (or dropped them) since.
    let lists = ctx.work.0.join("lists");
    let archives = ctx.work.0.join("apt-cache");
    for d in [lists.join("partial"), archives.join("archives/partial")] {
        crate::cleanup::make_dirs(&d)?;
    }
    crate::debs::stage(ctx.fetcher, ctx.offers, ctx.todo, opts.progress.as_ref(), &archives.join("archives"))?;
    crate::lists::seed(ctx.fetcher, ctx.offers, &ctx.system_arch, &ctx.foreign_archs, &lists)?;
    let run_dir = ctx.work.0.join(format!("run-{}", layers.len()));
    // What the upgrade may write: its packages unpacked (xz packs dpkg
    // trees about 4:1), twice over for dpkg's `.dpkg-new` files, plus room.
    let need = ctx.todo.iter().map(|(_, u)| u.candidate.size).sum::<u64>() * 8 + (64 << 20);
    sandbox::mount_scratch(&run_dir, need)?;
    let policy = ctx.work.0.join("policy-rc.d");
    script::write_policy_rc_d(&policy)?;
    timings.push(("prepare", t.elapsed()));

    // Run apt in the sandbox.
    let t = Instant::now();
    let runtime = sandbox::find_runtime(opts.runtime.as_deref())?;
    crate::cleanup::record_runtime(&ctx.work.0, &runtime)?;
    let upper = run_dir.join("upper");
    let merged = ctx.work.0.join("merged");
    let overlay = Overlay::mount(&lowers, Some((&upper, &run_dir.join("work"))), &merged)?;
    // Mount points the sandbox may have to create stay out of the layer.
    let mut exclude = Vec::new();
    for p in ["usr/sbin/policy-rc.d", "var/lib/apt/lists", "var/cache/apt"] {
        if std::fs::symlink_metadata(merged.join(p)).is_err() {
            exclude.push(p.to_string());
        }
    }
    let action = script::apt_action(opts.all, ctx.todo);
    let script = script::apt_script(&action);
    let bin = ctx.work.0.join("bin");
    script::write_bin(&bin)?;
    let binds = vec![
        Bind { source: lists.clone(), destination: "/var/lib/apt/lists".into(), read_only: true },
        Bind { source: archives.clone(), destination: "/var/cache/apt".into(), read_only: false },
        Bind { source: policy.clone(), destination: "/usr/sbin/policy-rc.d".into(), read_only: true },
        Bind { source: bin, destination: script::BIN_DIR.into(), read_only: true },
    ];
    let run = RunSpec {
        args: vec!["/bin/sh".into(), "-c".into(), script],
        env: vec!["DEBIAN_FRONTEND=noninteractive".into(), "LC_ALL=C".into()],
        binds: binds.clone(),
        limits: opts.limits,
    };
    let task = opts.progress.begin(&format!("apt: upgrade {} packages in the sandbox", ctx.todo.len()), None);
    let out = sandbox::run(&runtime, &ctx.work.0.join("bundle"), &merged, &format!("freshen-{}", ctx.work.name()), &run)?;
    if !out.success {
        return Err(Error::Invalid(format!("apt failed in the sandbox ({}): {}", out.status(), out.tail(6))));
    }
    task.finish("");
    if std::env::var_os("FRESHEN_TIMING").is_some() {
        for l in out.output.lines().filter(|l| l.starts_with("freshen-step ")) {
            eprintln!("timing: {l}");
        }
    }
    timings.push(("apt", t.elapsed()));

    // Verify: a re-scan of the result shows nothing pending in scope.
    let t = Instant::now();
    let after = freshen_image::read_dir_files(&merged, &crate::view::interest())?;
    let rescan = freshen_apt::scan(ctx.fetcher, &View(after), &ScanOptions { now: opts.now, ignore_unreachable: false, changelogs: false })?;
    let left: Vec<String> = rescan.updates.iter().filter(|u| (opts.all || u.security) && u.held_back.is_none()).map(|u| format!("{} {}", u.package, u.candidate.version)).collect();
    if !left.is_empty() {
        return Err(Error::Invalid(format!("after apt ran, updates are still pending: {}", left.join(", "))));
    }
    let installed_after: Vec<(String, String)> = rescan.system.installed.iter().map(|p| (p.name.clone(), p.version.to_string())).collect();
    drop(overlay);
    if let Some(cmd) = &opts.test {
        // The whole image (also layers above the OS part) with the patch on top.
        let mut test_lowers = vec![upper.clone()];
        for l in all_layers.iter().rev() {
            let (path, hold) = cache.ensure_held(ctx.source, l)?;
            test_lowers.push(path);
            holds.push(hold);
        }
        let test_merged = ctx.work.0.join("test-merged");
        let _test = Overlay::mount(&test_lowers, Some((&run_dir.join("test-upper"), &run_dir.join("test-work"))), &test_merged)?;
        let tr = RunSpec { args: vec!["/bin/sh".into(), "-c".into(), cmd.clone()], env: vec![], binds: vec![], limits: opts.limits };
        let out = sandbox::run(&runtime, &ctx.work.0.join("test-bundle"), &test_merged, &format!("freshen-test-{}", ctx.work.name()), &tr)?;
        if !out.success {
            return Err(Error::Invalid(format!("--test `{cmd}` failed in the patched image ({}): {}", out.status(), out.tail(6))));
        }
    }
    timings.push(("verify", t.elapsed()));

    let t = Instant::now();
    let lower_view = ctx.work.0.join("lower");
    let lower_mount = Overlay::mount(&lowers, None, &lower_view)?;
    let layer_opts = LayerOptions { clamp_mtime: ctx.clamp, compression: opts.compression, docker_media_types: ctx.docker, exclude, created_by: ctx.created_by.clone() };
    let blobs = run_dir.join("blobs");
    let task = opts.progress.begin("write and compress the patch layer", None);
    let (layer, stats) = write_patch_layer(&upper, &lower_view, &blobs, &layer_opts)?;
    task.finish(&format!("{:.1} MB ({:.1} MB uncompressed, {} files)", layer.size as f64 / 1e6, stats.uncompressed_bytes as f64 / 1e6, stats.files));
    drop(lower_mount);
    timings.push(("layer", t.elapsed()));
    let layer_path = blobs.join(layer.digest.hex());
    Ok(Built { layer, layer_path, stats, installed_after })
}
