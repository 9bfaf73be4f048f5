//! `oci:DIR[:TAG]`: an OCI image layout in a directory.

use std::path::Path;

use crate::digest::Digest;
use crate::error::{Error, Result};
use crate::platform::Platform;
use crate::source::NewImage;
use crate::store::{DirStore, StoreSource};

/// Opens the image tagged `tag` (or the only one) in the layout at `dir`.
pub(crate) fn open(dir: &Path, tag: Option<&str>, platform: &Platform, display: String) -> Result<StoreSource> {
    if !dir.join("index.json").is_file() {
        return Err(Error::Invalid(format!("{}: not an OCI image layout (no index.json)", dir.display())));
    }
    crate::layout::open(Box::new(DirStore { root: dir.to_path_buf() }), tag, platform, display)
}

/// Writes `img` into the layout at `dir` under `tag`.
pub(crate) fn write(dir: &Path, tag: Option<&str>, img: &NewImage) -> Result<Digest> {
    crate::layout::write(dir, tag, img)
}
