//! freshen's host configuration: one TOML file (default
//! [`DEFAULT_PATH`], optional), every key defaulted. Unknown keys and bad
//! values are errors naming the file, line and key.

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::duration::Span;
use crate::size::Size;
use crate::error::{io_err, Error, Result};

/// Where the configuration is read from when no file is named.
pub const DEFAULT_PATH: &str = "/etc/freshen/freshen.toml";

/// Everything `freshen run`, `watch` and `status` can be told.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    /// Which running containers freshen looks after: `all` (every one
    /// except those labelled `org.freshen.enable=false`) or `labelled`
    /// (only those labelled `org.freshen.enable=true`).
    pub containers: Containers,
    /// A container created from an image id or digest (not a name):
    /// `skip` leaves it alone; `patch` writes its patched image under
    /// `freshen/pinned:ID12` and recreates it from that name.
    pub pinned: Pinned,
    /// Images kept patched in place besides those containers run, in
    /// freshen's transport syntax (`docker://REG/REPO:TAG`,
    /// `docker-daemon:NAME:TAG`, `oci:DIR:TAG`, ...).
    pub images: Vec<String>,
    /// How often `watch` looks for published fixes.
    pub interval: Span,
    /// Install every update `apt-get upgrade` would, not only security
    /// updates.
    pub all: bool,
    /// A recreated container without a `HEALTHCHECK` is accepted when it is
    /// still running this long after its start.
    pub settle: Span,
    /// A recreated container with a `HEALTHCHECK` must report healthy
    /// within this long.
    pub health_timeout: Span,
    /// The state database and the pass lock live here.
    pub state_dir: PathBuf,
    /// Downloaded indexes, packages and layers (default: `$FRESHEN_CACHE`,
    /// else `$XDG_CACHE_HOME/freshen`, else `~/.cache/freshen`, else
    /// `/var/cache/freshen`).
    pub cache_dir: PathBuf,
    /// After each pass `watch` prunes the cache to this size, least
    /// recently used first (`20G`, `500M`).
    pub cache_max_size: Size,
    /// ... and removes what was not used for this long.
    pub cache_max_age: Span,
    /// The memory limit of the sandbox apt and dpkg run in when patching.
    pub sandbox_memory: Size,
    /// ... and its limit of processes and threads.
    pub sandbox_pids: u32,
    /// Where `watch` serves its status page, `/metrics`, `/api/status` and
    /// `/healthz` (`127.0.0.1:9470`); off unless set.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub listen: Option<std::net::SocketAddr>,
    /// Dokku, when the host runs it.
    pub dokku: Dokku,
    /// Who is told when a target is patched, rolled back or fails, or a
    /// security fix stays pending too long.
    pub notify: Notify,
}

/// Notification receivers ([`crate::notify`]).
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Notify {
    /// An `http://` or `https://` URL each event is POSTed to as JSON,
    /// retried with backoff.
    pub webhook: Option<String>,
    /// A command (`["/path", "arg"]`) run once per event, the event JSON
    /// on its stdin.
    pub command: Vec<String>,
    /// A security fix pending this long is told once per target.
    pub pending_after: Span,
    /// How long one webhook request or one run of the command may take.
    pub timeout: Span,
    /// A webhook request that fails is tried again this many times, the
    /// wait doubling from 1s.
    pub retries: u32,
}

impl Default for Notify {
    fn default() -> Notify {
        Notify { webhook: None, command: Vec::new(), pending_after: Span(Duration::from_secs(24 * 3600)), timeout: Span(Duration::from_secs(10)), retries: 4 }
    }
}

/// What to do with a container that names its image by id or digest.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Pinned {
    Skip,
    Patch,
}

/// Which containers are looked after.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Containers {
    All,
    Labelled,
}

/// How to reach Dokku.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Dokku {
    /// Dokku's command (looked up on `PATH` unless a path).
    pub command: String,
    /// Dokku's library root (`DOKKU_LIB_ROOT`): app deploy locks are under
    /// `data/apps/<app>/.deploy.lock`.
    pub lib_root: PathBuf,
    /// The `pre-release-builder` trigger fails the deploy when freshen
    /// itself fails (the Engine or an archive unreachable, a patch that
    /// fails); by default it says why and lets the deploy go on unpatched.
    pub strict: bool,
}

impl Default for Config {
    fn default() -> Config {
        Config {
            containers: Containers::All,
            pinned: Pinned::Skip,
            images: Vec::new(),
            interval: Span(Duration::from_secs(300)),
            all: false,
            settle: Span(Duration::from_secs(10)),
            health_timeout: Span(Duration::from_secs(120)),
            state_dir: PathBuf::from("/var/lib/freshen"),
            cache_dir: default_cache_dir(),
            cache_max_size: Size(20 << 30),
            cache_max_age: Span(Duration::from_secs(30 * 86_400)),
            sandbox_memory: Size(freshen_patch::sandbox::Limits::default().memory),
            sandbox_pids: freshen_patch::sandbox::Limits::default().pids as u32,
            listen: None,
            dokku: Dokku::default(),
            notify: Notify::default(),
        }
    }
}

impl Default for Dokku {
    fn default() -> Dokku {
        Dokku { command: "dokku".into(), lib_root: PathBuf::from("/var/lib/dokku"), strict: false }
    }
}

/// freshen's cache directory: `$FRESHEN_CACHE`, else
/// `$XDG_CACHE_HOME/freshen`, else `~/.cache/freshen`, else
/// `/var/cache/freshen` (root without `$HOME`).
pub fn default_cache_dir() -> PathBuf {
    let var = |name: &str| std::env::var_os(name).filter(|v| !v.is_empty()).map(PathBuf::from);
    var("FRESHEN_CACHE")
        .or_else(|| var("XDG_CACHE_HOME").map(|d| d.join("freshen")))
        .or_else(|| var("HOME").map(|h| h.join(".cache/freshen")))
        .unwrap_or_else(|| PathBuf::from("/var/cache/freshen"))
}

impl Config {
    /// Reads `file`, or [`DEFAULT_PATH`] when it exists and no file is
    /// named; otherwise the defaults.
    pub fn load(file: Option<&Path>) -> Result<Config> {
        match file {
            Some(f) => Config::read(f),
            None if Path::new(DEFAULT_PATH).exists() => Config::read(Path::new(DEFAULT_PATH)),
            None => Ok(Config::default()),
        }
    }

    /// Reads one TOML file.
    pub fn read(file: &Path) -> Result<Config> {
        let text = std::fs::read_to_string(file).map_err(io_err(file))?;
        Config::parse(&text, file)
    }

    /// Parses TOML text; `file` names it in errors.
    pub fn parse(text: &str, file: &Path) -> Result<Config> {
        let line_of = |at: usize| text[..at.min(text.len())].matches('\n').count() + 1;
        let config: Config = toml::from_str(text).map_err(|e| {
            let line = line_of(e.span().map(|s| s.start).unwrap_or(0));
            let message = e.message().trim().replace('\n', " ");
            Error::Config { file: file.to_path_buf(), line, key: key_at(text, e.span()), message }
        })?;
        for image in &config.images {
            if let Err(e) = freshen_image::ImageRef::parse(image) {
                let at = text.find(&format!("{image:?}")).unwrap_or(0);
                return Err(Error::Config { file: file.to_path_buf(), line: line_of(at), key: "images".into(), message: e.to_string() });
            }
        }
        if let Some(url) = config.notify.webhook.as_ref().filter(|u| !u.starts_with("http://") && !u.starts_with("https://")) {
            let at = text.find(&format!("{url:?}")).unwrap_or(0);
            return Err(Error::Config { file: file.to_path_buf(), line: line_of(at), key: "notify.webhook".into(), message: format!("`{url}` is not an http:// or https:// URL") });
        }
        Ok(config)
    }

    /// The configuration as TOML (`--print-config`).
    pub fn to_toml(&self) -> String {
        toml::to_string(self).unwrap_or_else(|e| format!("# cannot show the configuration: {e}\n"))
    }
}

/// The dotted key an error span points at: the key itself (an unknown
/// key) or the key of the value on that line, under the nearest
/// `[table]` header above.
fn key_at(text: &str, span: Option<std::ops::Range<usize>>) -> String {
    let Some(span) = span.filter(|s| s.end <= text.len()) else { return "(file)".into() };
    let line_start = text[..span.start].rfind('\n').map(|i| i + 1).unwrap_or(0);
    let line_end = text[span.start..].find('\n').map(|i| span.start + i).unwrap_or(text.len());
    let line = &text[line_start..line_end];
    let before = &text[line_start..span.start];
    let key = match before.find('=') {
        Some(eq) => before[..eq].trim().to_string(),
        None if line.trim_start().starts_with('[') => return line.trim().trim_matches(|c| c == '[' || c == ']').trim().to_string(),
        None => text[span.clone()].trim().to_string(),
    };
    let key = key.trim_matches('"').to_string();
    let table = text[..line_start]
        .lines()
        .rev()
        .map(str::trim)
        .find(|l| l.starts_with('[') && !l.starts_with("[["))
        .map(|l| l.trim_matches(|c| c == '[' || c == ']').trim().to_string());
    match table {
        Some(t) if !t.is_empty() => format!("{t}.{key}"),
        _ => key,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn err(text: &str) -> String {
        Config::parse(text, Path::new("f.toml")).unwrap_err().to_string()
    }

    #[test]
    fn every_key_has_a_default_and_reads_back() {
        let c = Config::parse("", Path::new("f.toml")).unwrap();
        assert_eq!(c.containers, Containers::All);
        assert_eq!((c.settle.0, c.health_timeout.0, c.all), (Duration::from_secs(10), Duration::from_secs(120), false));
        assert_eq!(c.state_dir, Path::new("/var/lib/freshen"));
        assert_eq!((c.dokku.command.as_str(), c.dokku.strict), ("dokku", false));
        assert_eq!((c.cache_max_size, c.cache_max_age.0), (Size(20 << 30), Duration::from_secs(30 * 86_400)));
        assert_eq!(c.listen, None);
        let text = "listen = \"127.0.0.1:9470\"\ncontainers = \"labelled\"\nimages = [\"docker://r/base:1\"]\ninterval = \"1m30s\"\ncache_max_size = \"500M\"\ncache_max_age = \"7d\"\nsandbox_memory = \"4G\"\nsandbox_pids = 500\n[dokku]\nlib_root = \"/srv/dokku\"\nstrict = true\n";
        let c = Config::parse(text, Path::new("f.toml")).unwrap();
        assert_eq!((c.containers, c.images.len(), c.interval.0.as_secs()), (Containers::Labelled, 1, 90));
        assert_eq!((c.dokku.lib_root.as_path(), c.dokku.strict), (Path::new("/srv/dokku"), true));
        assert_eq!(c.listen, Some("127.0.0.1:9470".parse().unwrap()));
        assert_eq!((c.cache_max_size.0, c.cache_max_age.0.as_secs()), (500 << 20, 7 * 86_400));
        assert_eq!((c.sandbox_memory.0, c.sandbox_pids), (4 << 30, 500));
        assert_eq!((c.notify.pending_after.0.as_secs(), c.notify.webhook.as_deref()), (86_400, None));
        let text = format!("{text}[notify]\nwebhook = \"http://127.0.0.1:1/hook\"\ncommand = [\"/bin/true\"]\npending_after = \"2h\"\n");
        let c = Config::parse(&text, Path::new("f.toml")).unwrap();
        assert_eq!((c.notify.pending_after.0.as_secs(), c.notify.command.len()), (7200, 1));
        let again = Config::parse(&c.to_toml(), Path::new("f.toml")).unwrap();
        assert_eq!(again.to_toml(), c.to_toml());
    }

    #[test]
    fn errors_name_the_file_line_and_key() {
        let e = err("interval = \"5m\"\ncolour = \"red\"\n");
        assert!(e.starts_with("f.toml:2: colour: unknown field `colour`"), "{e}");
        let e = err("images = []\n\ninterval = \"5 minutes\"\n");
        assert!(e.starts_with("f.toml:3: interval: invalid duration `5 minutes`"), "{e}");
        let e = err("[dokku]\ncommand = \"dokku\"\nroot = \"/x\"\n");
        assert!(e.starts_with("f.toml:3: dokku.root: unknown field `root`"), "{e}");
        let e = err("[dokku]\nlib_root = \"/x\"\n[x]\n");
        assert!(e.contains("f.toml:3:") && e.contains("unknown field `x`"), "{e}");
        let e = err("containers = \"some\"\n");
        assert!(e.starts_with("f.toml:1: containers: unknown variant `some`"), "{e}");
        let e = err("images = [\n  \"oci:/x:y\",\n  \"nope:foo\",\n]\n");
        assert!(e.starts_with("f.toml:3: images: ") && e.contains("nope:foo"), "{e}");
        let e = err("cache_max_size = \"lots\"\n");
        assert!(e.starts_with("f.toml:1: cache_max_size: invalid size `lots`"), "{e}");
        let e = err("[notify]\nwebhook = \"ftp://x/\"\n");
        assert!(e.starts_with("f.toml:2: notify.webhook: `ftp://x/` is not an http"), "{e}");
        let e = err("[notify]\npending_after = \"a day\"\n");
        assert!(e.starts_with("f.toml:2: notify.pending_after: invalid duration"), "{e}");
        let e = err("listen = \"localhost\"\n");
        assert!(e.starts_with("f.toml:1: listen: "), "{e}");
        let e = err("interval = 5\n");
        assert!(e.starts_with("f.toml:1: interval:"), "{e}");
    }
}
