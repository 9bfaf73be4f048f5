//! `freshen copy SRC DEST`: moves an image between transports unchanged
//! (as `skopeo copy` does), streaming its blobs.

use anyhow::{bail, Context, Result};
use freshen_image::ImageRef;

#[derive(clap::Args)]
pub struct Args {
    /// The image to copy (any transport but dir:).
    source: String,
    /// Where to write it.
    destination: String,
    #[command(flatten)]
    common: super::transport::ImageArgs,
}

pub fn run(args: Args) -> Result<u8> {
    let input = ImageRef::parse(&args.source)?;
    let output = ImageRef::parse(&args.destination)?;
    if matches!(input, ImageRef::Dir { .. }) || matches!(output, ImageRef::Dir { .. }) {
        bail!("copy moves images; dir: is a root filesystem");
    }
    let platform = args.common.platform();
    let transport = args.common.transport(crate::progress::reporter())?;
    let source = freshen_image::open(&input, &platform, &transport)?;
    let image = source.image();
    // Unchanged bytes when stored; for a legacy docker-archive, the Docker manifest it implies.
    let value = image.manifest()?;
    let manifest = match &image.manifest_raw {
        Some(m) => m.clone(),
        None => serde_json::to_vec(&value)?,
    };
    let media_type = value["mediaType"].as_str().unwrap_or("application/vnd.oci.image.manifest.v1+json").to_string();
    let img = freshen_image::NewImage {
        source: source.as_ref(),
        source_layers: &image.layers,
        new_blobs: Vec::new(),
        config: image.config_raw.clone(),
        manifest,
        manifest_media_type: media_type,
    };
    let digest = freshen_image::write_image(&output, &img, &transport).with_context(|| format!("writing {output}"))?;
    println!("wrote {output} ({digest})");
    Ok(crate::exit::CLEAN)
}
