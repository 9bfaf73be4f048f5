//! Options every command that reads or writes images shares: the platform,
//! the cache, registry credentials and TLS, and the Docker Engine's address.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::{bail, Result};
use freshen_image::{Platform, Transport};

#[derive(clap::Args, Clone)]
pub struct ImageArgs {
    /// The platform to pick from a multi-platform image (default: this machine's).
    #[arg(long, value_parser = Platform::parse)]
    platform: Option<Platform>,
    /// Cache directory (default: $FRESHEN_CACHE, else ~/.cache/freshen).
    #[arg(long)]
    cache: Option<PathBuf>,
    #[command(flatten)]
    transport: TransportArgs,
}

impl ImageArgs {
    pub fn platform(&self) -> Platform {
        self.platform.clone().unwrap_or_else(Platform::host)
    }

    /// The cache directory: `--cache`, else [`freshen_host::config::default_cache_dir`].
    pub fn cache(&self) -> PathBuf {
        self.cache.clone().unwrap_or_else(freshen_host::config::default_cache_dir)
    }

    /// freshen's one HTTP policy, for archive mirrors (registries get it
    /// through [`ImageArgs::transport`]): the system trust store plus `--ca-file`.
    pub fn http_policy(&self) -> Result<freshen_http::Policy> {
        self.transport.check_ca_file()?;
        Ok(freshen_http::Policy { ca_file: self.transport.ca_file.clone(), tls_verify: self.transport.tls_verify, ..freshen_http::Policy::default() })
    }

    pub fn transport(&self, progress: Arc<dyn freshen_image::Progress>) -> Result<Transport> {
        self.transport.transport(&self.cache(), progress)
    }

    /// `--cache`, when given.
    pub fn cache_flag(&self) -> Option<&Path> {
        self.cache.as_deref()
    }

    /// [`ImageArgs::transport`] with scratch files under `cache`.
    pub fn transport_in(&self, cache: &Path, progress: Arc<dyn freshen_image::Progress>) -> Result<Transport> {
        self.transport.transport(cache, progress)
    }

    /// [`ImageArgs::transport`] with a spool for layers pulled from a
    /// registry, for commands that read layers more than once; the spool
    /// goes when the returned guard is dropped.
    pub fn spooling_transport(&self, progress: Arc<dyn freshen_image::Progress>) -> Result<(Transport, Spool)> {
        let mut t = self.transport(progress)?;
        let dir = t.tmp_dir.join(format!("freshen-spool-{}-0", freshen_image::scratch_owner()));
        std::fs::create_dir_all(&dir).map_err(|e| anyhow::anyhow!("{}: {e}", dir.display()))?;
        t.spool = Some(dir.clone());
        Ok((t, Spool(dir)))
    }
}

/// Removes the layer spool when dropped.
pub struct Spool(PathBuf);

impl Drop for Spool {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

#[derive(clap::Args, Clone)]
struct TransportArgs {
    /// Registry credentials USER:PASS (default: ~/.docker/config.json and its credential helpers).
    #[arg(long, value_name = "USER:PASS")]
    creds: Option<String>,
    /// Verify registries' TLS certificates (and require HTTPS).
    #[arg(long, default_value_t = true, action = clap::ArgAction::Set, value_name = "BOOL")]
    tls_verify: bool,
    /// Extra CA certificates (PEM) to trust for registries and archive mirrors, besides the system's.
    #[arg(long, value_name = "FILE")]
    ca_file: Option<PathBuf>,
    /// The Docker Engine's address (default: $DOCKER_HOST, else unix:///var/run/docker.sock).
    #[arg(long, value_name = "URL")]
    docker_host: Option<String>,
}

impl TransportArgs {
    fn check_ca_file(&self) -> Result<()> {
        match &self.ca_file {
            Some(f) if !f.is_file() => bail!("--ca-file {}: no such file", f.display()),
            _ => Ok(()),
        }
    }

    fn transport(&self, cache: &Path, progress: Arc<dyn freshen_image::Progress>) -> Result<Transport> {
        let creds = match &self.creds {
            Some(c) => match c.split_once(':') {
                Some((u, p)) if !u.is_empty() => Some((u.to_string(), p.to_string())),
                _ => bail!("--creds: expected USER:PASS"),
            },
            None => None,
        };
        self.check_ca_file()?;
        secure_cache(cache)?;
        let tmp_dir = cache.join("tmp");
        std::fs::create_dir_all(&tmp_dir).map_err(|e| anyhow::anyhow!("{}: {e}", tmp_dir.display()))?;
        freshen_image::hold_owner_lock(&tmp_dir)?;
        reap_stale(&tmp_dir);
        let _ = SCRATCH.set(tmp_dir.clone());
        Ok(Transport { creds, tls_verify: self.tls_verify, ca_file: self.ca_file.clone(), docker_host: self.docker_host.clone(), tmp_dir, spool: None, progress })
    }
}

/// Makes the cache directory private: layers are unpacked there as root,
/// with setuid files and device nodes, so no other user may enter it. It
/// is created mode 0700; an existing one must be a directory (not a
/// symlink) owned by this user and writable by no one else, and is made
/// 0700 if it was more open.
pub fn secure_cache(cache: &Path) -> Result<()> {
    use std::os::unix::fs::{DirBuilderExt, MetadataExt, PermissionsExt};
    if let Some(parent) = cache.parent().filter(|p| !p.as_os_str().is_empty()) {
        std::fs::create_dir_all(parent).map_err(|e| anyhow::anyhow!("{}: {e}", parent.display()))?;
    }
    match std::fs::DirBuilder::new().mode(0o700).create(cache) {
        Ok(()) => return Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
        Err(e) => bail!("cache directory {}: {e}", cache.display()),
    }
    let meta = std::fs::symlink_metadata(cache).map_err(|e| anyhow::anyhow!("cache directory {}: {e}", cache.display()))?;
    if !meta.is_dir() {
        bail!("cache directory {}: not a directory (a symlink or a file); give freshen a directory of its own", cache.display());
    }
    let me = rustix::process::geteuid().as_raw();
    if meta.uid() != me {
        bail!("cache directory {}: owned by uid {}, not by this user (uid {me}); refusing to unpack images where another user can change them", cache.display(), meta.uid());
    }
    if meta.mode() & 0o022 != 0 {
        bail!("cache directory {}: writable by group or others (mode {:o}); refusing to unpack images where another user can change them", cache.display(), meta.mode() & 0o7777);
    }
    if meta.mode() & 0o077 != 0 {
        std::fs::set_permissions(cache, std::fs::Permissions::from_mode(0o700)).map_err(|e| anyhow::anyhow!("cache directory {}: {e}", cache.display()))?;
    }
    Ok(())
}

static SCRATCH: std::sync::OnceLock<PathBuf> = std::sync::OnceLock::new();

/// Removes scratch files and spools (`freshen-WHAT-OWNER-N…`) whose
/// process is gone, by the lock each process holds while it lives
/// (`own`: this process's too, when it is being interrupted), and the
/// locks of the gone.
fn remove_scratch(tmp_dir: &Path, own: bool) {
    let Ok(entries) = std::fs::read_dir(tmp_dir) else { return };
    let me = freshen_image::scratch_owner();
    for e in entries.flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        let path = e.path();
        if let Some(owner) = name.strip_prefix(".owner-").filter(|o| !o.ends_with(".new") && *o != me) {
            if freshen_image::owner_gone(tmp_dir, owner) {
                let _ = std::fs::remove_file(&path);
            }
            continue;
        }
        let Some(owner) = name.strip_prefix("freshen-").and_then(|r| r.split('-').nth(1)) else { continue };
        let gone = if owner == me { own } else { freshen_image::owner_gone(tmp_dir, owner) };
        if gone {
            let _ = if path.is_dir() { std::fs::remove_dir_all(&path) } else { std::fs::remove_file(&path) };
        }
    }
}

/// What a killed freshen left behind.
fn reap_stale(tmp_dir: &Path) {
    remove_scratch(tmp_dir, false);
}

/// On Ctrl-C: this process's scratch files (an Engine export or load).
pub fn remove_own_scratch() {
    if let Some(dir) = SCRATCH.get() {
        remove_scratch(dir, true);
    }
}
