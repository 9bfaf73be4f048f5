//! `freshen rebase IMAGE --onto NEW_BASE [--old-base OLD_BASE] -o DEST`

use anyhow::{bail, Context, Result};
use freshen_image::rebase::{OldBase, BASE_DIGEST, BASE_NAME};
use freshen_image::{Image, ImageRef, ImageSource, Interest, Platform};
use serde_json::Value;

#[derive(clap::Args)]
pub struct Args {
    /// The image to rebase (any transport but dir:).
    image: String,
    /// The new base, e.g. the base image after `freshen patch`.
    #[arg(long, value_name = "NEW_BASE")]
    onto: String,
    /// The base the image was built on (default: found from the new base's
    /// freshen patch record, or the image's org.opencontainers.image.base.* annotations or labels).
    #[arg(long, value_name = "OLD_BASE")]
    old_base: Option<String>,
    /// Where to write the rebased image (it may be the image itself).
    #[arg(short, long)]
    output: String,
    /// Rebase even when a layer above the base rewrote the dpkg database.
    #[arg(long)]
    force: bool,
    #[command(flatten)]
    common: super::transport::ImageArgs,
}

fn parse_image(s: &str, what: &str) -> Result<ImageRef> {
    let r = ImageRef::parse(s)?;
    if matches!(r, ImageRef::Dir { .. }) {
        bail!("{what} {r}: rebase needs an image, not a directory");
    }
    Ok(r)
}

/// The history entry of each layer (empty-layer entries skipped).
fn layer_comments(config: &Value) -> Vec<String> {
    config["history"]
        .as_array()
        .map(|h| h.iter().filter(|e| !e["empty_layer"].as_bool().unwrap_or(false)).map(|e| e["comment"].as_str().unwrap_or("").to_string()).collect())
        .unwrap_or_default()
}

/// The old base when none is given: the original of a freshen-patched new
/// base (also when the image sits on an earlier patch of that original),
/// else what the image's base annotations or labels name.
fn find_old_base(image: &Image, new_base: &Image, platform: &Platform, transport: &freshen_image::Transport) -> Result<OldBase> {
    let base_config: Value = serde_json::from_slice(&new_base.config_raw)?;
    if let Some((original, n)) = freshen_patch::config::unpatch(&base_config)? {
        let mut old = OldBase {
            name: format!("{} without its freshen patch", new_base.reference),
            diff_ids: new_base.layers[..n].iter().map(freshen_image::Layer::content_id).collect(),
            history_len: original["history"].as_array().map_or(0, Vec::len),
        };
        freshen_image::rebase::check_prefix(image, &old).with_context(|| format!("{} is a freshen-patched base", new_base.reference))?;
        // Built on an earlier patch of the same original: that patch layer
        // belongs to the old base too.
        let image_config: Value = serde_json::from_slice(&image.config_raw)?;
        let earlier_patch = image.layers.get(n).filter(|_| layer_comments(&image_config).get(n).is_some_and(|c| c == "freshen patch"));
        if let Some(layer) = earlier_patch {
            old.diff_ids.push(layer.content_id());
            old.history_len += 1;
            old.name = format!("{} (an earlier freshen patch of {})", old.name, new_base.reference);
        }
        return Ok(old);
    }
    let manifest: Value = image.manifest_raw.as_deref().and_then(|m| serde_json::from_slice(m).ok()).unwrap_or(Value::Null);
    let config: Value = serde_json::from_slice(&image.config_raw)?;
    let recorded = |key: &str| manifest["annotations"][key].as_str().or(config["config"]["Labels"][key].as_str()).map(str::to_string);
    let Some(name) = recorded(BASE_NAME) else {
        bail!(
            "cannot tell which layers of {} are its base: {} is not a freshen-patched image and the image records no {BASE_NAME}; give --old-base",
            image.reference,
            new_base.reference
        );
    };
    // A name with a transport is freshen's own record; others are registry
    // names (`docker.io/library/ubuntu:24.04`), pinned by the digest if given.
    let reference = match (ImageRef::parse(&name), recorded(BASE_DIGEST)) {
        (Ok(_), _) => name.clone(),
        (Err(_), Some(d)) if !name.contains('@') => format!("docker://{name}@{d}"),
        (Err(_), _) => format!("docker://{name}"),
    };
    let r = ImageRef::parse(&reference).with_context(|| format!("{} names its base `{name}`", image.reference))?;
    let old = freshen_image::open(&r, platform, transport).with_context(|| format!("opening the recorded base {r}"))?;
    Ok(OldBase::of(old.image(), &r.to_string()))
}

/// The first layer above the base (its index in the image) that wrote the
/// dpkg database, if any.
fn dpkg_writer(source: &dyn ImageSource, from: usize) -> Result<Option<usize>> {
    let layers = &source.image().layers[from..];
    let paths = ["var/lib/dpkg/status", "var/lib/dpkg/status.d"];
    let files = freshen_image::read_layers_files(source, layers, &Interest { paths: &paths, keep_versions: &paths[..1] })?;
    let status = files.versions.iter().map(|v| v.layer).min();
    let status_d = files.list("var/lib/dpkg/status.d").iter().filter_map(|f| files.layer_of(&format!("var/lib/dpkg/status.d/{f}"))).min();
    Ok(status.into_iter().chain(status_d).min())
}

pub fn run(args: Args) -> Result<u8> {
    let input = parse_image(&args.image, "image")?;
    let onto = parse_image(&args.onto, "--onto")?;
    let output = parse_image(&args.output, "output")?;
    let platform = args.common.platform();
    let (transport, _spool) = args.common.spooling_transport(crate::progress::reporter())?;
    let image = freshen_image::open(&input, &platform, &transport)?;
    let new_base = freshen_image::open(&onto, &platform, &transport)?;
    let old = match &args.old_base {
        Some(s) => {
            let r = parse_image(s, "--old-base")?;
            OldBase::of(freshen_image::open(&r, &platform, &transport)?.image(), &r.to_string())
        }
        None => find_old_base(image.image(), new_base.image(), &platform, &transport)?,
    };
    freshen_image::rebase::check_prefix(image.image(), &old)?;
    if let Some(k) = dpkg_writer(image.as_ref(), old.diff_ids.len())? {
        let layer = &image.image().layers[k];
        let by = layer.created_by.as_deref().unwrap_or("no history");
        let msg = format!(
            "layer {} of {input} ({by}) rewrote /var/lib/dpkg/status: on the new base the dpkg database would describe the old base's packages and hide its updates",
            layer.index
        );
        if !args.force {
            bail!("{msg}; rebuild the image on the new base instead, or pass --force");
        }
        eprintln!("warning: {}", freshen_image::escape(&msg));
    }
    // Recorded as the OCI annotation expects: a registry name when there is one.
    let base_name = match &onto {
        ImageRef::Docker(r) => r.to_string(),
        other => other.to_string(),
    };
    let rebased = freshen_image::rebase::rebase(image.as_ref(), &old, new_base.as_ref(), &base_name)?;
    let img = freshen_image::NewImage {
        source: &rebased.source,
        source_layers: &rebased.source.image().layers,
        new_blobs: Vec::new(),
        config: rebased.config.clone(),
        manifest: rebased.manifest.clone(),
        manifest_media_type: rebased.media_type.clone(),
    };
    let digest = freshen_image::write_image(&output, &img, &transport).with_context(|| format!("writing {output}"))?;
    println!(
        "{input}: rebased from {} ({} layers) onto {onto} ({} layers), keeping its own {} layers",
        old.name,
        old.diff_ids.len(),
        new_base.image().layers.len(),
        rebased.upper_layers
    );
    println!("wrote {output} ({digest})");
    Ok(crate::exit::CLEAN)
}
