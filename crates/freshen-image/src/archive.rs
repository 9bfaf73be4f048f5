//! `docker-archive:FILE[:NAME:TAG]`: a docker-archive tar file.

use std::path::Path;

use crate::digest::Digest;
use crate::error::Result;
use crate::platform::Platform;
use crate::source::NewImage;
use crate::store::StoreSource;

/// Opens the image named `reference` (or the only one) in the archive at `path`.
pub(crate) fn open(path: &Path, reference: Option<&str>, platform: &Platform, display: String) -> Result<StoreSource> {
    crate::docker_archive::open(path, reference, platform, display)
}

/// Writes `img` as the archive `path`, naming it `reference`.
pub(crate) fn write(path: &Path, reference: Option<&str>, img: &NewImage) -> Result<Digest> {
    crate::docker_archive::write(path, reference, img)
}
