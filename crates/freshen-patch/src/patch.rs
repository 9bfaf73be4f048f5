//! `patch`: plan (scan the original layers), then reuse a recorded patch
//! layer ([`crate::reuse`]) or build one in the sandbox ([`crate::run`]),
//! and make the patched config and manifest.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use freshen_apt::{Fetcher, ScanOptions, Update};
use freshen_image::{ImageSource, Layer, LayerBlob};
use serde_json::Value;

use crate::config::{patch_config, patch_manifest, unpatch, PatchRecord};
use crate::error::{Error, Result};
use crate::layer::LayerStats;
use crate::options::PatchOptions;
use crate::reuse;
use crate::run::{run_sandbox, Built, RunCtx};
use crate::view::{interest, View};
use crate::workdir::WorkDir;

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
