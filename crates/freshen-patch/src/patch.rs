//! `patch`: plan (scan the original layers), prepare (unpack layers into the
//! cache), run apt in the sandbox, verify, and write one patch layer.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use freshen_apt::{Fetcher, RootView, ScanOptions, Update};
use freshen_image::{ImageSource, Interest, Layer, LayerBlob, NodeKind, RootFiles};
use serde_json::Value;

use crate::cache::LayerCache;
use crate::config::{patch_config, patch_manifest, unpatch, PatchRecord};
use crate::error::{io_err, Error, Result};
use crate::layer::{write_patch_layer, Compression, LayerOptions, LayerStats};
use crate::reuse;
use crate::script;
use crate::sandbox::{self, Bind, Overlay, RunSpec};

/// Options of a patch run.
pub struct PatchOptions {
    /// freshen's cache directory (layers, apt state, debs, indexes).
    pub cache: PathBuf,
    /// The OCI runtime (`None`: runc or crun from PATH).
    pub runtime: Option<PathBuf>,
    /// Everything `apt-get upgrade` would install, not only security updates.
    pub all: bool,
    pub compression: Compression,
    /// Clamp for file mtimes; default: the newest changelog date of the updates.
    pub source_date_epoch: Option<u64>,
    /// A smoke test run (with `sh -c`) in the patched image before it is accepted.
    pub test: Option<String>,
    /// The sandbox's memory and process limits.
    pub limits: crate::sandbox::Limits,
    pub now: DateTime<Utc>,
    /// Where progress goes (unpacking, apt, the layer).
    pub progress: std::sync::Arc<dyn freshen_image::Progress>,
}

/// One upgraded package.
#[derive(Clone, Debug)]
pub struct Upgraded {
    pub package: String,
    /// The package's architecture as dpkg records it (`amd64`, `i386`, `all`).
    pub arch: String,
    pub from: String,
    pub to: String,
    pub source_package: String,
    pub security: bool,
    pub cves: Vec<String>,
}

/// A patch ready to be written.
pub struct Patched {
    pub upgraded: Vec<Upgraded>,
    /// The image's OS (os-release), for the package URLs of a VEX document.
    pub os: freshen_apt::OsInfo,
    /// Updates in scope that `apt-get upgrade` would hold back, with reasons.
    pub held_back: Vec<(String, String)>,
    pub layer: LayerBlob,
    pub layer_path: PathBuf,
    pub stats: LayerStats,
    /// The original layers the patch layer goes on.
    pub base_layers: Vec<Layer>,
    pub config: Vec<u8>,
    pub manifest: Vec<u8>,
    pub manifest_media_type: String,
    pub timings: Vec<(&'static str, Duration)>,
    /// The layer is a recorded patch of the same base, reused.
    pub reused: bool,
    /// Removed when dropped.
    pub work: WorkDir,
}

impl Patched {
    /// The patched image, ready for [`freshen_image::write_image`]:
    /// `source`'s layers the patch goes on, plus the patch layer.
    pub fn image<'a>(&'a self, source: &'a dyn ImageSource) -> freshen_image::NewImage<'a> {
        freshen_image::NewImage {
            source,
            source_layers: &self.base_layers,
            new_blobs: vec![(self.layer.digest.clone(), self.layer_path.clone())],
            config: self.config.clone(),
            manifest: self.manifest.clone(),
            manifest_media_type: self.manifest_media_type.clone(),
        }
    }
}

/// What a patch run found.
pub enum Outcome {
    /// Nothing pending in the chosen scope; nothing was written.
    NothingPending { held_back: Vec<(String, String)> },
    Patched(Box<Patched>),
}

/// A scratch directory removed on drop (mounts inside are already gone),
/// marked alive by the lock it holds (see [`crate::cleanup`]).
pub struct WorkDir(pub PathBuf, #[allow(dead_code)] std::fs::File);

impl WorkDir {
    fn create(root: &Path) -> Result<WorkDir> {
        let n = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_nanos()).unwrap_or(0);
        let (dir, lock) = crate::cleanup::create(root, &format!("{}-{n}", std::process::id()))?;
        Ok(WorkDir(dir, lock))
    }

    /// The directory's name (`PID-NANOS`): unique also among runs in other
    /// PID namespaces sharing the cache, so container ids and cgroups made
    /// from it are too.
    fn name(&self) -> String {
        self.0.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default()
    }
}

impl Drop for WorkDir {
    fn drop(&mut self) {
        crate::cleanup::remove_work_dir(&self.0);
        crate::cleanup::unregister(&self.0);
    }
}

/// An image's sparse file view as the apt engine reads it.
pub struct View(pub RootFiles);

impl RootView for View {
    fn read(&self, path: &str) -> Option<&[u8]> {
        self.0.read(path)
    }
    fn list(&self, dir: &str) -> Vec<String> {
        self.0.list(dir)
    }
    fn layer_of(&self, path: &str) -> Option<usize> {
        self.0.layer_of(path)
    }
    fn mtime(&self, path: &str) -> Option<u64> {
        self.0.lookup(path).filter(|(_, n)| !matches!(n.kind, NodeKind::Symlink(_))).map(|(_, n)| n.mtime)
    }
    fn status_versions(&self) -> Vec<(usize, &[u8])> {
        self.0.versions.iter().filter(|v| v.path == "var/lib/dpkg/status").map(|v| (v.layer, v.data.as_slice())).collect()
    }
}

fn interest() -> Interest<'static> {
    Interest { paths: freshen_apt::system::PATHS, keep_versions: freshen_apt::system::VERSIONED_PATHS }
}

fn archive_name(u: &Update) -> String {
    format!("{}_{}_{}.deb", u.package, u.candidate.version.to_string().replace(':', "%3a"), u.candidate.arch)
}

/// Downloads (or finds in the cache) the `.deb` of every planned update,
/// each checked against the SHA256 of the signed index, four at a time.
/// `task` counts the bytes of the ones not yet in the cache.
fn prefetch_debs(fetcher: &Fetcher, offers: &freshen_apt::archive::Offers, todo: &[(usize, &Update)], task: &dyn freshen_image::Task) -> Result<Vec<PathBuf>> {
    let next = std::sync::atomic::AtomicUsize::new(0);
    let mut results: Vec<Option<Result<PathBuf>>> = (0..todo.len()).map(|_| None).collect();
    let done: Vec<(usize, Result<PathBuf>)> = std::thread::scope(|scope| {
        let workers: Vec<_> = (0..4.min(todo.len()))
            .map(|_| {
                scope.spawn(|| {
                    let mut out = Vec::new();
                    loop {
                        let i = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                        let Some((_, u)) = todo.get(i) else { break };
                        if !freshen_apt::deb_path(fetcher, u).is_file() {
                            task.inc(u.candidate.size);
                        }
                        out.push((i, freshen_apt::fetch_deb(fetcher, offers, u).map_err(|e| Error::Invalid(format!("downloading {} {}: {e}", u.package, u.candidate.version)))));
                    }
                    out
                })
            })
            .collect();
        workers.into_iter().flat_map(|w| w.join().unwrap_or_default()).collect()
    });
    for (i, r) in done {
        results[i] = Some(r);
    }
    results.into_iter().map(|r| r.unwrap_or_else(|| Err(Error::Invalid("a download worker failed".into())))).collect()
}

/// apt's name for a URI in `/var/lib/apt/lists` (`URItoFileName`): the
/// scheme and credentials dropped, unsafe bytes quoted as `%xx`, `/` as `_`.
fn apt_list_name(url: &str) -> String {
    // `file:/srv/repo` has no authority: apt names it `_srv_repo…`.
    let url = url.strip_prefix("file:").map_or(url, |p| p.strip_prefix("//").unwrap_or(p));
    let rest = url.split_once("://").map_or(url, |(_, r)| r);
    let (authority, path) = rest.split_once('/').map_or((rest, ""), |(a, p)| (a, p));
    let host = authority.rsplit_once('@').map_or(authority, |(_, h)| h);
    let mut out = String::new();
    for b in format!("{host}/{path}").bytes() {
        if b"\\|{}[]<>\"^~_=!@#$%&*".contains(&b) || b <= 0x20 || b >= 0x7f {
            out.push_str(&format!("%{b:02x}"));
        } else {
            out.push(if b == b'/' { '_' } else { b as char });
        }
    }
    out
}

/// The URL apt derives a source's files from: for flat repositories apt
/// keeps the suite as written (`./` gives `URI/./Packages`).
fn apt_dist_url(source: &freshen_apt::sources::SourceEntry) -> String {
    if source.is_flat() {
        format!("{}/{}", source.uri.trim_end_matches('/'), source.suite.trim_end_matches('/'))
    } else {
        source.dist_url()
    }
}

/// Builds apt's lists directory from the very Release files and `Packages`
/// indexes freshen verified and planned with, so apt in the sandbox sees
/// the same snapshot of the archive (no `apt-get update`: an archive that
/// publishes while freshen runs cannot change what gets installed).
fn seed_apt_lists(fetcher: &Fetcher, offers: &freshen_apt::archive::Offers, native: &str, foreign: &[String], lists: &Path) -> Result<()> {
    for a in &offers.archives {
        let (dist, apt_dist) = (a.source.dist_url(), apt_dist_url(&a.source));
        for doc in ["InRelease", "Release", "Release.gpg"] {
            if let Some(body) = fetcher.seen(&format!("{dist}/{doc}")) {
                let dest = lists.join(apt_list_name(&format!("{apt_dist}/{doc}")));
                std::fs::write(&dest, body).map_err(io_err(&dest))?;
            }
        }
        for arch in &a.source.architectures_of(native, foreign) {
            let Some(index) = freshen_apt::packages::fetch_index(fetcher, &a.source, &a.release, &a.component, arch)? else { continue };
            let url = if a.source.is_flat() { format!("{apt_dist}/Packages") } else { format!("{dist}/{}/binary-{arch}/Packages", a.component) };
            let dest = lists.join(apt_list_name(&url));
            if !dest.exists() {
                std::fs::hard_link(&index, &dest).or_else(|_| std::fs::copy(&index, &dest).map(|_| ())).map_err(io_err(&dest))?;
            }
        }
    }
    Ok(())
}

const POLICY_RC_D: &str = "#!/bin/sh\n# freshen: no services start while packages are patched\nexit 101\n";

/// The layer a sandbox run produced.
struct Built {
    layer: LayerBlob,
    layer_path: PathBuf,
    stats: LayerStats,
    /// (package, version) installed after the run.
    installed_after: Vec<(String, String)>,
}

/// Everything a sandbox run needs.
struct RunCtx<'a> {
    source: &'a dyn ImageSource,
    fetcher: &'a Fetcher,
    opts: &'a PatchOptions,
    todo: &'a [(usize, &'a Update)],
    clamp: u64,
    docker: bool,
    created_by: String,
    work: &'a WorkDir,
    offers: &'a freshen_apt::archive::Offers,
    system_arch: String,
    foreign_archs: Vec<String>,
}

/// Runs apt over `layers` in the sandbox and writes the patch layer.
fn run_sandbox(ctx: &RunCtx, layers: &[Layer], all_layers: &[Layer], timings: &mut Vec<(&'static str, Duration)>) -> Result<Built> {
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
        std::fs::create_dir_all(&d).map_err(io_err(&d))?;
    }
    // Reading changelogs while planning already downloaded most of them.
    let missing: Vec<u64> = ctx.todo.iter().filter(|(_, u)| !freshen_apt::deb_path(ctx.fetcher, u).is_file()).map(|(_, u)| u.candidate.size).collect();
    let task = opts.progress.begin(&format!("download {} packages", ctx.todo.len()), Some(missing.iter().sum()));
    let debs = prefetch_debs(ctx.fetcher, ctx.offers, ctx.todo, task.as_ref())?;
    task.finish(&if missing.is_empty() { "all in the cache".to_string() } else { String::new() });
    for ((_, u), deb) in ctx.todo.iter().zip(debs) {
        let dest = archives.join("archives").join(archive_name(u));
        std::fs::hard_link(&deb, &dest).or_else(|_| std::fs::copy(&deb, &dest).map(|_| ())).map_err(io_err(&dest))?;
    }
    seed_apt_lists(ctx.fetcher, ctx.offers, &ctx.system_arch, &ctx.foreign_archs, &lists)?;
    let run_dir = ctx.work.0.join(format!("run-{}", layers.len()));
    // What the upgrade may write: its packages unpacked (xz packs dpkg
    // trees about 4:1), twice over for dpkg's `.dpkg-new` files, plus room.
    let need = ctx.todo.iter().map(|(_, u)| u.candidate.size).sum::<u64>() * 8 + (64 << 20);
    sandbox::mount_scratch(&run_dir, need)?;
    let policy = ctx.work.0.join("policy-rc.d");
    std::fs::write(&policy, POLICY_RC_D).map_err(io_err(&policy))?;
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&policy, std::fs::Permissions::from_mode(0o755)).map_err(io_err(&policy))?;
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
    // apt gives dpkg the PATH of `DPkg::Path`: the script's, with its mktemp first.
    let apt_opts = "-q -y -o Dpkg::Options::=--force-confold -o Dpkg::Options::=--force-unsafe-io -o Acquire::Languages=none -o APT::Install-Recommends=false -o APT::Install-Suggests=false -o DPkg::Path=\"$PATH\"";
    let action = if opts.all {
        format!("apt-get {apt_opts} upgrade")
    } else {
        let pkgs: Vec<String> = ctx.todo.iter().map(|(_, u)| format!("{}:{}={}", u.package, u.arch, u.candidate.version)).collect();
        format!("apt-get {apt_opts} install --only-upgrade {}", pkgs.join(" "))
    };
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
    let after = freshen_image::read_dir_files(&merged, &interest())?;
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

/// The layers of the OS part: up to the last one that wrote the dpkg database.
fn os_layers(view: &View, n: usize) -> usize {
    let status = view.0.versions.iter().filter(|v| v.path == "var/lib/dpkg/status").map(|v| v.layer).max();
    let status_d = view.0.list("var/lib/dpkg/status.d").iter().filter_map(|f| view.0.layer_of(&format!("var/lib/dpkg/status.d/{f}"))).max();
    status.max(status_d).map_or(n, |l| (l + 1).clamp(1, n))
}

/// Plans and builds the patch for `source`.
pub fn patch(source: &dyn ImageSource, fetcher: &Fetcher, opts: &PatchOptions) -> Result<Outcome> {
    let mut timings = Vec::new();
    let t = Instant::now();
    let image = source.image();
    let config: Value = serde_json::from_slice(&image.config_raw).map_err(|e| Error::Invalid(format!("image config: {e}")))?;
    // A patched image is patched again from its original layers.
    let (base_config, n_base) = match unpatch(&config)? {
        Some((c, n)) if n < image.layers.len() => (c, n),
        _ => (config, image.layers.len()),
    };
    let base_layers: Vec<Layer> = image.layers[..n_base].to_vec();
    let files = freshen_image::read_layers_files(source, &base_layers, &interest())?;
    let view = View(files);
    crate::local::attach_local_repos(fetcher, &view, |i| freshen_image::read_layers_files(source, &base_layers, i))?;
    // Reading changelogs downloads the updates' debs.
    let task = opts.progress.begin("plan: read the archive and the updates' changelogs", None);
    let scan = freshen_apt::scan(fetcher, &view, &ScanOptions { now: opts.now, ignore_unreachable: false, changelogs: true })?;
    task.finish("");
    let in_scope: Vec<(usize, &Update)> = scan.updates.iter().enumerate().filter(|(_, u)| opts.all || u.security).collect();
    let held_back: Vec<(String, String)> = in_scope.iter().filter_map(|(_, u)| u.held_back.clone().map(|r| (u.package.clone(), r))).collect();
    let todo: Vec<(usize, &Update)> = in_scope.into_iter().filter(|(_, u)| u.held_back.is_none()).collect();
    timings.push(("plan", t.elapsed()));
    if todo.is_empty() {
        return Ok(Outcome::NothingPending { held_back });
    }
    let clamp = opts.source_date_epoch.unwrap_or_else(|| {
        let newest = todo.iter().filter_map(|(i, _)| scan.fixes.get(*i).and_then(|f| f.newest)).max();
        let release = scan.offers.archives.iter().filter_map(|a| a.release.date).max();
        newest.or(release).map(|d| d.timestamp().max(0) as u64).unwrap_or(0)
    });
    let docker = image.manifest_raw.as_deref().map(|m| String::from_utf8_lossy(m).contains("application/vnd.docker.distribution.manifest.v2")).unwrap_or(true);
    let created_by = format!(
        "freshen patch: {}",
        todo.iter().map(|(_, u)| format!("{} {} -> {}", u.package, u.installed, u.candidate.version)).collect::<Vec<_>>().join(", ")
    );
    let work = WorkDir::create(&opts.cache.join("work"))?;
    let ctx = RunCtx {
        source,
        fetcher,
        opts,
        todo: &todo,
        clamp,
        docker,
        created_by: created_by.clone(),
        work: &work,
        offers: &scan.offers,
        system_arch: scan.system.native_arch.clone(),
        foreign_archs: scan.system.foreign_archs.clone(),
    };

    // Reuse a recorded patch of the same OS layers with the same updates, or
    // run apt on the OS layers; fall back to the whole image when the layers
    // above touch what the patch changes.
    let t = Instant::now();
    let os_k = os_layers(&view, n_base);
    let ids: Vec<String> = todo.iter().map(|(_, u)| format!("{}:{}={}", u.package, u.arch, u.candidate.version)).collect();
    // `layer=2`: the layer format (no opaque markers, no secrets, auto marks kept).
    let options = format!("all={} compression={:?} clamp={clamp} docker={docker} layer=2", opts.all, opts.compression);
    let record_key = reuse::key(&base_layers[..os_k], &ids, &options);
    let mut built = None;
    let mut reused = false;
    if let (Some(k), None) = (&record_key, &opts.test) {
        if let Some((rec, blob)) = reuse::find(&opts.cache, k) {
            if reuse::conflict(source, &base_layers[os_k..], &rec.stats.paths)?.is_none() {
                let digest = freshen_image::Digest::parse(&rec.digest).map_err(Error::Invalid)?;
                let diff_id = freshen_image::Digest::parse(&rec.diff_id).map_err(Error::Invalid)?;
                let layer = LayerBlob { digest, diff_id, size: rec.size, media_type: rec.media_type.clone(), created_by: rec.created_by.clone() };
                built = Some(Built { layer, layer_path: blob, stats: rec.stats.clone(), installed_after: rec.packages.clone() });
                reused = true;
                timings.push(("reuse", t.elapsed()));
            }
        }
    }
    let built = match built {
        Some(b) => b,
        None => {
            let b = run_sandbox(&ctx, &base_layers[..os_k], &base_layers, &mut timings)?;
            match reuse::conflict(source, &base_layers[os_k..], &b.stats.paths)? {
                None => {
                    if let Some(k) = &record_key {
                        let pk: Vec<(String, String)> = b.installed_after.iter().filter(|(n, _)| todo.iter().any(|(_, u)| &u.package == n)).cloned().collect();
                        reuse::store(&opts.cache, k, &b.layer, &b.layer_path, &b.stats, &pk)?;
                    }
                    b
                }
                // The layers above change what the patch changes: apt must see them.
                Some(_) => run_sandbox(&ctx, &base_layers, &base_layers, &mut timings)?,
            }
        }
    };
    let after: std::collections::HashMap<&str, &str> = built.installed_after.iter().map(|(n, v)| (n.as_str(), v.as_str())).collect();
    let upgraded: Vec<Upgraded> = scan
        .updates
        .iter()
        .enumerate()
        .filter(|(_, u)| after.get(u.package.as_str()).is_some_and(|v| *v != u.installed.to_string()))
        .map(|(i, u)| Upgraded {
            package: u.package.clone(),
            arch: u.arch.clone(),
            from: u.installed.to_string(),
            to: after.get(u.package.as_str()).map(|v| v.to_string()).unwrap_or_default(),
            source_package: u.candidate.source.clone(),
            security: u.security,
            cves: scan.fixes.get(i).map(|f| f.cves.clone()).unwrap_or_default(),
        })
        .collect();
    let packages: Vec<(String, String)> = upgraded.iter().map(|u| (u.package.clone(), u.to.clone())).collect();
    let created = crate::config::patch_created(&base_config, clamp);
    let rec = PatchRecord {
        diff_id: built.layer.diff_id.to_string(),
        base_layers: n_base,
        original_manifest: original_manifest_digest(image, n_base),
        created,
        created_by: built.layer.created_by.clone(),
        packages: &packages,
    };
    let new_config = patch_config(&base_config, &rec)?;
    let config_bytes = serde_json::to_vec(&new_config).map_err(|e| Error::Invalid(e.to_string()))?;
    let (manifest, media) = patch_manifest(&image.manifest()?, n_base, &config_bytes, &built.layer)?;
    let manifest = serde_json::to_vec(&manifest).map_err(|e| Error::Invalid(e.to_string()))?;
    Ok(Outcome::Patched(Box::new(Patched {
        upgraded,
        os: scan.system.os.clone(),
        held_back,
        layer: built.layer,
        layer_path: built.layer_path,
        stats: built.stats,
        base_layers,
        config: config_bytes,
        manifest,
        manifest_media_type: media,
        timings,
        reused,
        work,
    })))
}

/// The digest of the original (unpatched) manifest: recorded in a patched
/// image's label, else the input's own.
fn original_manifest_digest(image: &freshen_image::Image, n_base: usize) -> Option<String> {
    if n_base < image.layers.len() {
        let c: Value = serde_json::from_slice(&image.config_raw).ok()?;
        return c["config"]["Labels"][crate::config::ORIGINAL_MANIFEST].as_str().map(str::to_string);
    }
    image.manifest_digest.as_ref().map(|d| d.to_string())
}

#[cfg(test)]
mod tests {
    use super::apt_list_name;

    #[test]
    fn list_names_match_apt() {
        // Names apt 2.6 gave these URIs in /var/lib/apt/lists.
        assert_eq!(apt_list_name("http://deb.debian.org/debian/dists/bookworm/InRelease"), "deb.debian.org_debian_dists_bookworm_InRelease");
        assert_eq!(apt_list_name("http://127.0.0.1:8765/re_po~x/dists/st/Release"), "127.0.0.1:8765_re%5fpo%7ex_dists_st_Release");
        assert_eq!(apt_list_name("https://user:secret@example.org/a/./Packages"), "example.org_a_._Packages");
        assert_eq!(apt_list_name("file:/srv/repo/./InRelease"), "_srv_repo_._InRelease");
    }
}
