//! Options every command that reads or writes images shares: registry
//! credentials and TLS, and the Docker Engine's address.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::{bail, Result};
use freshen_image::Transport;

#[derive(clap::Args, Clone)]
pub struct TransportArgs {
    /// Registry credentials USER:PASS (default: ~/.docker/config.json and its credential helpers).
    #[arg(long, value_name = "USER:PASS")]
    creds: Option<String>,
    /// Verify registries' TLS certificates (and require HTTPS).
    #[arg(long, default_value_t = true, action = clap::ArgAction::Set, value_name = "BOOL")]
    tls_verify: bool,
    /// Extra CA certificates (PEM) to trust for registries.
    #[arg(long, value_name = "FILE")]
    ca_file: Option<PathBuf>,
    /// The Docker Engine's address (default: $DOCKER_HOST, else unix:///var/run/docker.sock).
    #[arg(long, value_name = "URL")]
    docker_host: Option<String>,
}

impl TransportArgs {
    pub fn transport(&self, cache: &Path, progress: Arc<dyn freshen_image::Progress>) -> Result<Transport> {
        let creds = match &self.creds {
            Some(c) => match c.split_once(':') {
                Some((u, p)) if !u.is_empty() => Some((u.to_string(), p.to_string())),
                _ => bail!("--creds: expected USER:PASS"),
            },
            None => None,
        };
        if let Some(f) = &self.ca_file {
            if !f.is_file() {
                bail!("--ca-file {}: no such file", f.display());
            }
        }
        let tmp_dir = cache.join("tmp");
        std::fs::create_dir_all(&tmp_dir).map_err(|e| anyhow::anyhow!("{}: {e}", tmp_dir.display()))?;
        Ok(Transport { creds, tls_verify: self.tls_verify, ca_file: self.ca_file.clone(), docker_host: self.docker_host.clone(), tmp_dir, progress })
    }
}
