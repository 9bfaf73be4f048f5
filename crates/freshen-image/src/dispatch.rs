//! The one place that maps a reference to its transport, for reading
//! ([`open`]) and writing ([`write_image`]). Transports never call back
//! into it.

use crate::digest::Digest;
use crate::error::{Error, Result};
use crate::platform::Platform;
use crate::reference::ImageRef;
use crate::source::{ImageSource, NewImage};
use crate::store::StoreSource;
use crate::transport::Transport;

/// Opens any image reference: a registry, the Docker Engine, an OCI layout
/// or a docker-archive. `dir:` is not an image with layers; see
/// [`crate::read_dir_files`].
pub fn open(reference: &ImageRef, platform: &Platform, transport: &Transport) -> Result<Box<dyn ImageSource>> {
    match reference {
        ImageRef::Docker(r) => crate::registry::open(r, platform, transport),
        ImageRef::DockerDaemon { name } => crate::engine::open(name, platform, transport),
        _ => Ok(Box::new(open_local(reference, platform)?)),
    }
}

/// Opens an `oci:` or `docker-archive:` reference.
pub fn open_local(reference: &ImageRef, platform: &Platform) -> Result<StoreSource> {
    let display = reference.to_string();
    match reference {
        ImageRef::Oci { dir, tag } => crate::oci::open(dir, tag.as_deref(), platform, display),
        ImageRef::DockerArchive { path, reference } => crate::archive::open(path, reference.as_deref(), platform, display),
        ImageRef::Dir { .. } => Err(Error::Invalid(format!("{display} is a directory, not an image"))),
        ImageRef::Docker(_) | ImageRef::DockerDaemon { .. } => Err(Error::Invalid(format!("{display} is not a local image"))),
    }
}

/// Writes `img` to `dest` and returns the manifest digest.
pub fn write_image(dest: &ImageRef, img: &NewImage, transport: &Transport) -> Result<Digest> {
    match dest {
        ImageRef::Docker(r) => crate::registry::push(r, img, transport),
        ImageRef::DockerDaemon { name } => crate::engine::load(name, img, transport),
        ImageRef::Oci { dir, tag } => crate::oci::write(dir, tag.as_deref(), img),
        ImageRef::DockerArchive { path, reference } => crate::archive::write(path, reference.as_deref(), img),
        ImageRef::Dir { .. } => Err(Error::Invalid(format!("{dest}: cannot write an image to a dir: reference"))),
    }
}
