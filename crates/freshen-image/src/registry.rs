//! `docker://`: images in registries, through the OCI distribution API.

use crate::digest::Digest;
use crate::error::{Error, Result};
use crate::platform::Platform;
use crate::reference::RegistryRef;
use crate::sink::NewImage;
use crate::source::ImageSource;
use crate::transport::Transport;

pub(crate) fn open(r: &RegistryRef, _platform: &Platform, _t: &Transport) -> Result<Box<dyn ImageSource>> {
    Err(Error::Invalid(format!("docker://{r}: registries are not supported yet")))
}

pub(crate) fn push(r: &RegistryRef, _img: &NewImage, _t: &Transport) -> Result<Digest> {
    Err(Error::Invalid(format!("docker://{r}: registries are not supported yet")))
}
