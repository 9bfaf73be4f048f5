//! Dokku apps, through Dokku's own command and lock only (facts from
//! Dokku 0.38's source).
//!
//! An app runs `dokku/<app>:latest` (or a numbered tag when Dokku pushes
//! to a registry); Dokku keeps no "deployed image" setting, so the image
//! of the app's running containers is the one to patch in place. The
//! caller holds the app's [`DeployLock`] (the `flock` Dokku's git-receive
//! takes, so a push cannot interleave), writes the patched image under the
//! deployed tag and keeps the previous one under a rollback tag, then
//! calls [`redeploy`]: `dokku ps:restart <app>` recreates every container
//! from the tag with Dokku's zero-downtime checks, and when that fails
//! the previous image goes back under the deployed tag and is restarted.
//!
//! Only `dokku apps:list` and `dokku ps:restart` are run. The herokuish
//! and CNB builder images present on a Dokku host are found by
//! [`builder_images`], to be kept patched in place like configured images.

pub mod release;
mod run;

use std::fs::{File, OpenOptions};
use std::io::ErrorKind;
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::time::Duration;

use freshen_image::Transport;
use rustix::fs::{flock, FlockOperation};
use tracing::{info, warn};

use crate::config::Config;
use crate::error::{io_err, Error, Result};
use crate::model::Action;

pub use run::{strip_ansi, TAIL_LINES};

/// The lock file in an app's data directory.
pub const LOCK_FILE: &str = ".deploy.lock";
/// How long `dokku ps:restart` may take: each container waits for its
/// checks (by default 5 s, then up to 5 attempts of 30 s for app.json
/// healthchecks) before the next process type deploys.
pub const RESTART_TIMEOUT: Duration = Duration::from_secs(30 * 60);
/// How long `dokku apps:list` may take.
pub const LIST_TIMEOUT: Duration = Duration::from_secs(120);

/// An app's deploy lock, held until dropped: a non-blocking exclusive
/// `flock` on `$DOKKU_LIB_ROOT/data/apps/<app>/.deploy.lock`, the lock
/// Dokku's git-receive (push, `ps:rebuild`, `git:*`) takes. `ps:restart`
/// does not take it, so holding it does not stop [`restart`].
#[derive(Debug)]
pub struct DeployLock {
    file: File,
    pub path: PathBuf,
    /// freshen made the file (Dokku removes it after each deploy): it is
    /// removed again on drop. A file that was there (`dokku apps:lock`
    /// makes one) is left as it was.
    created: bool,
}

impl DeployLock {
    /// The lock file of `app` under Dokku's library root.
    pub fn path(lib_root: &Path, app: &str) -> PathBuf {
        lib_root.join("data/apps").join(app).join(LOCK_FILE)
    }

    /// Takes `app`'s deploy lock, or `None` when another process (a
    /// deploy) holds it. Like Dokku, creates the file when missing (mode
    /// 0644, owned as the app's data directory, so Dokku's user can
    /// still open it); the directory must exist.
    pub fn try_acquire(lib_root: &Path, app: &str) -> Result<Option<DeployLock>> {
        check_app_name(app)?;
        let path = DeployLock::path(lib_root, app);
        let (file, created) = match OpenOptions::new().read(true).write(true).create_new(true).mode(0o644).open(&path) {
            Ok(f) => (f, true),
            Err(e) if e.kind() == ErrorKind::AlreadyExists => (OpenOptions::new().read(true).open(&path).map_err(io_err(&path))?, false),
            Err(e) if e.kind() == ErrorKind::NotFound => {
                let dir = path.parent().unwrap_or(lib_root);
                return Err(Error::Dokku(format!("{}: no such directory: is `{app}` a Dokku app, and dokku.lib_root Dokku's DOKKU_LIB_ROOT?", dir.display())));
            }
            Err(e) => return Err(Error::Io { path, source: e }),
        };
        if created {
            give_to_directory_owner(&file, &path);
        }
        let mut lock = DeployLock { file, path, created };
        match flock(&lock.file, FlockOperation::NonBlockingLockExclusive) {
            Ok(()) => Ok(Some(lock)),
            Err(rustix::io::Errno::WOULDBLOCK) => {
                // Someone else's lock now: the file is theirs to remove.
                lock.created = false;
                info!(app, lock = %lock.path.display(), "a deploy holds the app's deploy lock");
                Ok(None)
            }
            Err(e) => {
                Err(Error::Io { path: lock.path.clone(), source: e.into() })
            }
        }
    }
}

impl Drop for DeployLock {
    fn drop(&mut self) {
        // Removed while still locked (Dokku's release unlocks, then
        // removes); the lock goes with the file descriptor.
        if self.created {
            if let Err(e) = std::fs::remove_file(&self.path) {
                warn!(lock = %self.path.display(), error = %e, "cannot remove the deploy lock file");
            }
        }
    }
}

/// Makes a new lock file the app data directory owner's (Dokku runs as
/// user `dokku`); left as it is when that is not allowed (not root).
fn give_to_directory_owner(file: &File, path: &Path) {
    let Some(meta) = path.parent().and_then(|d| d.metadata().ok()) else { return };
    let owner = Some(rustix::fs::Uid::from_raw(meta.uid()));
    let group = Some(rustix::fs::Gid::from_raw(meta.gid()));
    if let Err(e) = rustix::fs::fchown(file, owner, group) {
        if e != rustix::io::Errno::PERM {
            warn!(lock = %path.display(), error = %e, "cannot give the deploy lock file to the app directory's owner");
        }
    }
}

/// Refuses what Dokku would not accept as an app name (lowercase
/// alphanumerics, dots, hyphens and, in older apps, underscores), so a
/// container label cannot name a path outside Dokku's directories.
fn check_app_name(app: &str) -> Result<()> {
    if is_app_name(app) {
        Ok(())
    } else {
        Err(Error::Dokku(format!("`{app}` is not a Dokku app name (lowercase alphanumerics, `.`, `-` and `_`, starting alphanumeric)")))
    }
}

fn is_app_name(s: &str) -> bool {
    let mut chars = s.chars();
    chars.next().is_some_and(|c| c.is_ascii_lowercase() || c.is_ascii_digit()) && chars.all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || matches!(c, '.' | '-' | '_'))
}

/// Dokku's command: `dokku.command` as a path when it holds a `/`, else
/// looked up on `PATH`. `None` when there is no such executable.
pub fn command(config: &Config) -> Option<PathBuf> {
    let name = config.dokku.command.as_str();
    if name.is_empty() {
        return None;
    }
    let executable = |p: &Path| p.metadata().is_ok_and(|m| m.is_file() && m.mode() & 0o111 != 0);
    if name.contains('/') {
        let p = PathBuf::from(name);
        return executable(&p).then_some(p);
    }
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path).map(|dir| dir.join(name)).find(|p| executable(p))
}

/// Whether this host runs Dokku: its command is found or its library
/// root exists.
pub fn is_dokku_host(config: &Config) -> bool {
    command(config).is_some() || config.dokku.lib_root.is_dir()
}

/// Runs `dokku ARGS`; a command that cannot be found or started is an
/// error naming it.
fn dokku(config: &Config, args: &[&str], timeout: Duration) -> std::result::Result<run::Ran, String> {
    let name = &config.dokku.command;
    let cmd = command(config).ok_or_else(|| format!("Dokku's command `{name}` not found (is Dokku installed? set dokku.command)"))?;
    run::run(&cmd, args, timeout).map_err(|e| format!("cannot run `{} {}`: {e}", cmd.display(), args.join(" ")))
}

/// The apps Dokku knows (`dokku apps:list`).
pub fn apps(config: &Config) -> Result<Vec<String>> {
    let ran = dokku(config, &["apps:list"], LIST_TIMEOUT).map_err(Error::Dokku)?;
    if !ran.success() {
        let tail = ran.tail.iter().rev().take(3).rev().cloned().collect::<Vec<_>>().join(" / ");
        return Err(Error::Dokku(format!("`dokku apps:list` failed ({}): {tail}", ran.ending(LIST_TIMEOUT))));
    }
    Ok(parse_apps(&ran.stdout))
}

/// The app names in `dokku apps:list`'s standard output: the
/// `=====> My Apps` header and other decorated lines are skipped. (With
/// no apps Dokku warns on standard error and lists none.)
pub fn parse_apps<S: AsRef<str>>(stdout: &[S]) -> Vec<String> {
    stdout.iter().map(|l| strip_ansi(l.as_ref()).trim().to_string()).filter(|l| is_app_name(l)).collect()
}

/// Why `dokku ps:restart` (or the re-tag before it) failed, with the
/// last lines Dokku printed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Failure {
    pub reason: String,
    /// The last [`TAIL_LINES`] lines of Dokku's output (stdout and stderr).
    pub output_tail: Vec<String>,
}

impl std::fmt::Display for Failure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.reason)?;
        // Dokku's warnings (` !     ...`) say why; else its last line.
        let why = self.output_tail.iter().rev().find(|l| l.starts_with(" !")).or(self.output_tail.last());
        match why {
            Some(line) => write!(f, ": {}", line.trim_start_matches(" !").trim()),
            None => Ok(()),
        }
    }
}

/// `dokku ps:restart <app>`: every container of the app recreated from
/// its deployed tag, Dokku's checks deciding.
pub fn restart(config: &Config, app: &str) -> std::result::Result<(), Failure> {
    let failure = |reason: String, output_tail: Vec<String>| Failure { reason, output_tail };
    check_app_name(app).map_err(|e| failure(e.to_string(), Vec::new()))?;
    info!(app, "dokku ps:restart");
    let ran = dokku(config, &["ps:restart", app], RESTART_TIMEOUT).map_err(|e| failure(e, Vec::new()))?;
    if ran.success() {
        Ok(())
    } else {
        Err(failure(format!("`dokku ps:restart {app}` failed ({})", ran.ending(RESTART_TIMEOUT)), ran.tail))
    }
}

/// What [`redeploy`] did.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RedeployOutcome {
    /// `dokku ps:restart` on the patched image.
    pub restart: std::result::Result<(), Failure>,
    /// When that failed: the previous image put back under the deployed
    /// tag and `dokku ps:restart` again.
    pub rollback: Option<std::result::Result<(), Failure>>,
}

impl RedeployOutcome {
    /// `patched`, `rolled-back` (the app runs the previous image again) or
    /// `failed` (the rollback failed too: the app may run either image).
    pub fn action(&self) -> Action {
        match (&self.restart, &self.rollback) {
            (Ok(()), _) => Action::Patched,
            (Err(_), Some(Ok(()))) => Action::RolledBack,
            (Err(_), _) => Action::Failed,
        }
    }

    /// One line for the record: what failed, and how the rollback went.
    pub fn reason(&self) -> Option<String> {
        let Err(failed) = &self.restart else { return None };
        Some(match &self.rollback {
            Some(Ok(())) => format!("{failed}; rolled back to the previous image"),
            Some(Err(again)) => format!("{failed}; rollback failed: {again}"),
            None => failed.to_string(),
        })
    }
}

/// Redeploys `app` after the caller (holding its [`DeployLock`]) has put
/// the patched image under `deployed_tag` and the previous one under
/// `rollback_tag` (both `NAME:TAG` in the Engine): `dokku ps:restart`,
/// and when that fails, `rollback_tag` tagged as `deployed_tag` again and
/// `dokku ps:restart` once more.
pub fn redeploy(config: &Config, transport: &Transport, app: &str, deployed_tag: &str, rollback_tag: &str) -> RedeployOutcome {
    let restarted = restart(config, app);
    let Err(failed) = &restarted else { return RedeployOutcome { restart: restarted, rollback: None } };
    warn!(app, error = %failed, "the patched image failed Dokku's checks: rolling back");
    let rollback = match freshen_image::engine::tag_image(rollback_tag, deployed_tag, transport) {
        Ok(()) => restart(config, app),
        Err(e) => Err(Failure { reason: format!("putting {rollback_tag} back as {deployed_tag}: {e}"), output_tail: Vec::new() }),
    };
    if let Err(e) = &rollback {
        warn!(app, error = %e, "the rollback failed");
    }
    RedeployOutcome { restart: restarted, rollback: Some(rollback) }
}

/// The builder images present in the Engine of a Dokku host, as
/// `docker-daemon:NAME:TAG`: herokuish (`gliderlabs/herokuish:*`, Dokku's
/// `DOKKU_IMAGE`) and Cloud Native Buildpacks builders (`heroku/builder:*`,
/// Dokku's `DOKKU_CNB_BUILDER`, and other `*/builder:*`). Empty when the
/// host does not run Dokku.
pub fn builder_images(config: &Config, transport: &Transport) -> Result<Vec<String>> {
    if !is_dokku_host(config) {
        return Ok(Vec::new());
    }
    let mut names: Vec<String> = freshen_image::engine::list_images(transport)?
        .into_iter()
        .flat_map(|i| i.repo_tags)
        .filter(|n| is_builder_image(n))
        .map(|n| format!("docker-daemon:{n}"))
        .collect();
    names.sort();
    names.dedup();
    Ok(names)
}

/// Whether `NAME:TAG` names a Dokku builder image.
pub fn is_builder_image(name: &str) -> bool {
    let Some((repo, tag)) = name.rsplit_once(':').filter(|(_, t)| !t.contains('/')) else { return false };
    let last = repo.rsplit('/').next().unwrap_or(repo);
    !tag.is_empty() && (repo == "gliderlabs/herokuish" || (repo.contains('/') && last == "builder"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn app_names_are_read_from_dokku_output() {
        let out = ["\x1b[1G=====> My Apps", "node-js-app", "python_old", "shop.v2", "", " !     You haven't deployed any applications yet", "-----> note", "Not-An-App"];
        assert_eq!(parse_apps(&out), ["node-js-app", "python_old", "shop.v2"]);
        assert!(parse_apps(&["=====> My Apps"]).is_empty());
    }

    #[test]
    fn app_names_that_name_paths_are_refused() {
        for bad in ["", "../etc", "a/b", ".hidden", "-x", "Shop"] {
            assert!(check_app_name(bad).is_err(), "{bad:?}");
        }
        let dir = tempfile::tempdir().unwrap();
        let err = DeployLock::try_acquire(dir.path(), "../../x").unwrap_err().to_string();
        assert!(err.contains("not a Dokku app name"), "{err}");
    }

    #[test]
    fn builder_images_are_recognised() {
        for yes in ["gliderlabs/herokuish:latest-24", "heroku/builder:24", "paketobuildpacks/builder:base", "localhost:5000/heroku/builder:22"] {
            assert!(is_builder_image(yes), "{yes}");
        }
        for no in ["gliderlabs/herokuish", "dokku/shop:latest", "builder:1", "heroku/builder-extra:1", "localhost:5000/builder", "herokuish:1"] {
            assert!(!is_builder_image(no), "{no}");
        }
    }

    #[test]
    fn the_lock_is_exclusive_and_its_file_goes_when_made_here() {
        let dir = tempfile::tempdir().unwrap();
        let err = DeployLock::try_acquire(dir.path(), "shop").unwrap_err().to_string();
        assert!(err.contains("data/apps/shop: no such directory"), "{err}");
        std::fs::create_dir_all(dir.path().join("data/apps/shop")).unwrap();
        let path = DeployLock::path(dir.path(), "shop");
        let held = DeployLock::try_acquire(dir.path(), "shop").unwrap().expect("a free lock");
        assert_eq!(std::fs::metadata(&path).unwrap().mode() & 0o777, 0o644);
        // flock belongs to the open file description: a second open here
        // conflicts as another process would.
        assert!(DeployLock::try_acquire(dir.path(), "shop").unwrap().is_none());
        assert!(path.exists(), "a refused attempt removed the holder's file");
        drop(held);
        assert!(!path.exists(), "the lock file made here was left behind");
        // A file that was there (`apps:lock`) stays.
        std::fs::write(&path, "").unwrap();
        drop(DeployLock::try_acquire(dir.path(), "shop").unwrap().expect("a free lock"));
        assert!(path.exists());
    }

    fn failure(tail: &[&str]) -> Failure {
        Failure { reason: "`dokku ps:restart shop` failed (exit status: 1)".into(), output_tail: tail.iter().map(|s| s.to_string()).collect() }
    }

    #[test]
    fn outcomes_say_what_happened() {
        let failed = failure(&["-----> Deploying web (count=1)", " !     Could not start due to 1 failed checks (web.1)", "       done"]);
        assert_eq!(failed.to_string(), "`dokku ps:restart shop` failed (exit status: 1): Could not start due to 1 failed checks (web.1)");
        let ok = RedeployOutcome { restart: Ok(()), rollback: None };
        assert_eq!((ok.action(), ok.reason()), (Action::Patched, None));
        let back = RedeployOutcome { restart: Err(failed.clone()), rollback: Some(Ok(())) };
        assert_eq!(back.action(), Action::RolledBack);
        assert!(back.reason().unwrap().ends_with("(web.1); rolled back to the previous image"));
        let worse = RedeployOutcome { restart: Err(failed), rollback: Some(Err(failure(&["boom"]))) };
        assert_eq!(worse.action(), Action::Failed);
        assert!(worse.reason().unwrap().ends_with("; rollback failed: `dokku ps:restart shop` failed (exit status: 1): boom"));
    }

    #[test]
    fn a_missing_command_is_named() {
        let config = Config { dokku: crate::config::Dokku { command: "/nonexistent/dokku".into(), lib_root: "/nonexistent/lib".into(), ..Default::default() }, ..Config::default() };
        assert!(!is_dokku_host(&config));
        let err = apps(&config).unwrap_err().to_string();
        assert_eq!(err, "dokku: Dokku's command `/nonexistent/dokku` not found (is Dokku installed? set dokku.command)");
        let t = Transport { docker_host: Some("unix:///nonexistent/freshen.sock".into()), ..Transport::default() };
        assert_eq!(builder_images(&config, &t).unwrap(), Vec::<String>::new(), "not a Dokku host: the Engine is not asked");
    }
}
