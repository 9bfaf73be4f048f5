//! Placeholder: recreating a container on its patched image.
use std::time::Duration;

use freshen_image::Transport;

use crate::model::Action;

pub struct Accept {
    pub settle: Duration,
    pub health_timeout: Duration,
}

pub struct Refused {
    pub reason: String,
    pub logs: Option<String>,
}

impl Refused {
    pub fn action(&self) -> Action {
        Action::Failed
    }
}

pub fn replace(_t: &Transport, _name: &str, _accept: &Accept, _stop: &(dyn Fn() -> bool + Sync)) -> Result<(), Refused> {
    Err(Refused { reason: "not built".into(), logs: None })
}

pub fn repair(_t: &Transport) -> Vec<String> {
    Vec::new()
}
