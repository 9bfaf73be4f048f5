//! `docker-daemon:`: images in the Docker Engine, through its API on a
//! unix socket.

use crate::digest::Digest;
use crate::error::{Error, Result};
use crate::platform::Platform;
use crate::sink::NewImage;
use crate::source::ImageSource;
use crate::transport::Transport;

pub(crate) fn open(name: &str, _platform: &Platform, _t: &Transport) -> Result<Box<dyn ImageSource>> {
    Err(Error::Invalid(format!("docker-daemon:{name}: the Docker Engine is not supported yet")))
}

pub(crate) fn load(name: &str, _img: &NewImage, _t: &Transport) -> Result<Digest> {
    Err(Error::Invalid(format!("docker-daemon:{name}: the Docker Engine is not supported yet")))
}
