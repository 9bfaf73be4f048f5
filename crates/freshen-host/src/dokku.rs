//! Placeholder: Dokku.
use std::path::Path;

use freshen_image::Transport;

use crate::model::Action;

pub struct DeployLock;

impl DeployLock {
    pub fn try_acquire(_lib_root: &Path, _app: &str) -> crate::Result<Option<DeployLock>> {
        Ok(Some(DeployLock))
    }
}

pub struct Redeployed;

impl Redeployed {
    pub fn action(&self) -> Action {
        Action::Failed
    }
    pub fn reason(&self) -> Option<String> {
        Some("not built".into())
    }
    pub fn logs(&self) -> Option<String> {
        None
    }
}

pub fn redeploy(_c: &crate::config::Dokku, _t: &Transport, _app: &str, _deployed: &str, _rollback: &str) -> Redeployed {
    Redeployed
}
