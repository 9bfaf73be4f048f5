//! `freshen host install` and `freshen host uninstall`: the systemd unit
//! that runs `freshen watch`, a commented configuration, the state and
//! cache directories and, with `--dokku`, Dokku's plugin, all recorded in
//! a manifest ([`super::manifest`]) so that `uninstall` removes exactly
//! that. `--root DIR` works on a tree (an image being built, a test)
//! without asking systemctl or Dokku anything.

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{bail, Context, Result};
use freshen_host::Config;

use super::manifest::{self, inside, Writer};

/// The unit, as `dist/freshen.service` has it (ExecStart names
/// `/usr/bin/freshen`, replaced by the installed binary's path).
pub const UNIT: &str = include_str!("../../../../dist/freshen.service");
/// The configuration skeleton (`listen` replaced by `--listen`'s).
pub const CONFIG: &str = include_str!("../../../../dist/freshen.toml");
const UNIT_NAME: &str = "freshen.service";
const UNIT_PATH: &str = "/etc/systemd/system/freshen.service";
/// Where a Debian package ships the unit.
const PACKAGED_UNITS: [&str; 2] = ["/lib/systemd/system/freshen.service", "/usr/lib/systemd/system/freshen.service"];
const CONFIG_PATH: &str = "/etc/freshen/freshen.toml";
const DEFAULT_LISTEN: &str = "127.0.0.1:9470";

/// Dokku's plugin (the repository's `dokku-plugin/`): path, mode, content.
pub const PLUGIN: &[(&str, u32, &[u8])] = &[
    ("commands", 0o755, include_bytes!("../../../../dokku-plugin/commands")),
    ("functions", 0o644, include_bytes!("../../../../dokku-plugin/functions")),
    ("help-functions", 0o644, include_bytes!("../../../../dokku-plugin/help-functions")),
    ("install", 0o755, include_bytes!("../../../../dokku-plugin/install")),
    ("plugin.toml", 0o644, include_bytes!("../../../../dokku-plugin/plugin.toml")),
    ("pre-release-builder", 0o755, include_bytes!("../../../../dokku-plugin/pre-release-builder")),
    ("subcommands/default", 0o755, include_bytes!("../../../../dokku-plugin/subcommands/default")),
    ("subcommands/patch", 0o755, include_bytes!("../../../../dokku-plugin/subcommands/patch")),
    ("subcommands/report", 0o755, include_bytes!("../../../../dokku-plugin/subcommands/report")),
];
const PLUGIN_NAME: &str = "freshen";

#[derive(clap::Args)]
pub struct Args {
    #[command(subcommand)]
    command: HostCommand,
}

#[derive(clap::Subcommand)]
enum HostCommand {
    /// Install the systemd unit for `freshen watch` (enabled and started), a commented configuration, the state and cache directories; with --dokku also Dokku's plugin.
    Install(InstallArgs),
    /// Remove what `install` wrote (files changed since are kept; the state and cache unless --purge).
    Uninstall(UninstallArgs),
}

#[derive(clap::Args)]
struct InstallArgs {
    /// Also install the Dokku plugin (`dokku freshen:report`, `freshen:patch`, builds patched before release).
    #[arg(long)]
    dokku: bool,
    /// The address of the status page and metrics, written into a new configuration.
    #[arg(long, value_name = "ADDR", default_value = DEFAULT_LISTEN)]
    listen: std::net::SocketAddr,
    /// Install into this tree instead of the running system: files only, no systemctl or dokku.
    #[arg(long, value_name = "DIR")]
    root: Option<PathBuf>,
}

#[derive(clap::Args)]
struct UninstallArgs {
    /// Also remove the state database and the cache.
    #[arg(long)]
    purge: bool,
    /// Uninstall from this tree instead of the running system: files only, no systemctl.
    #[arg(long, value_name = "DIR")]
    root: Option<PathBuf>,
}

pub fn run(args: Args) -> Result<u8> {
    match args.command {
        HostCommand::Install(a) => install(a),
        HostCommand::Uninstall(a) => uninstall(a),
    }
    .map(|()| crate::exit::CLEAN)
}

fn root_of(root: &Option<PathBuf>) -> Result<PathBuf> {
    match root {
        Some(r) => std::fs::canonicalize(r).with_context(|| format!("--root {}", r.display())),
        None => Ok(PathBuf::from("/")),
    }
}

/// The installed configuration's settings (the defaults when there is none).
fn installed_config(root: &Path) -> Result<Config> {
    let path = inside(root, Path::new(CONFIG_PATH));
    if path.exists() {
        Ok(Config::read(&path)?)
    } else {
        Ok(Config::default())
    }
}

/// The path the unit runs: this binary, as seen from inside `root`.
fn exec_path(root: &Path) -> Result<PathBuf> {
    let exe = std::env::current_exe().context("finding this binary's path")?;
    let exe = std::fs::canonicalize(&exe).unwrap_or(exe);
    Ok(match exe.strip_prefix(root) {
        Ok(rel) if root != Path::new("/") => Path::new("/").join(rel),
        _ => exe,
    })
}

/// The unit with `ExecStart` running `exe`.
pub fn unit_for(exe: &Path) -> String {
    UNIT.lines()
        .map(|l| match l.strip_prefix("ExecStart=/usr/bin/freshen") {
            Some(rest) => format!("ExecStart={}{rest}", exe.display()),
            None => l.to_string(),
        })
        .collect::<Vec<_>>()
        .join("\n")
        + "\n"
}

/// The configuration skeleton with `listen`.
pub fn config_for(listen: std::net::SocketAddr) -> String {
    CONFIG.replace(&format!("listen = \"{DEFAULT_LISTEN}\""), &format!("listen = \"{listen}\""))
}

fn install(args: InstallArgs) -> Result<()> {
    let root = root_of(&args.root)?;
    let on_host = args.root.is_none();
    if on_host && !rustix::process::geteuid().is_root() {
        bail!("freshen host install needs root (or --root DIR to install into a tree)");
    }
    if args.dokku {
        // Before anything is written.
        plugin_dirs(&root, &installed_config(&root)?)?;
    }
    let defaults = Config::default();
    let earlier = manifest::read(&root, &defaults.state_dir)?.unwrap_or_default();
    let mut w = Writer { root: &root, manifest: earlier, said: Vec::new(), changed: false };

    w.file(Path::new(CONFIG_PATH), config_for(args.listen).as_bytes(), 0o600, false)?;
    let config = installed_config(&root)?;
    if config.state_dir != defaults.state_dir {
        // The manifest lives in the default state directory, found again
        // by uninstall without the configuration.
        w.said.push(format!("note: state_dir is {}: add it to the unit's ReadWritePaths", config.state_dir.display()));
    }
    w.manifest.state_dir = defaults.state_dir.clone();
    w.manifest.cache_dir = config.cache_dir.clone();
    for dir in [&defaults.state_dir, &config.state_dir, &config.cache_dir] {
        w.dir(dir, 0o700)?;
    }

    let packaged = PACKAGED_UNITS.iter().map(Path::new).find(|p| inside(&root, p).is_file());
    let (unit_path, unit_changed) = w.step(|w| match packaged {
        Some(p) => {
            w.said.push(format!("using the packaged unit {}", inside(w.root, p).display()));
            Ok(p.to_path_buf())
        }
        None => {
            w.file(Path::new(UNIT_PATH), unit_for(&exec_path(w.root)?).as_bytes(), 0o644, true)?;
            Ok(PathBuf::from(UNIT_PATH))
        }
    })?;
    let plugin_changed = match args.dokku {
        true => w.step(|w| install_plugin(w, &config))?.1,
        false => false,
    };
    if !on_host {
        // What `systemctl enable` does for WantedBy=multi-user.target.
        w.link(Path::new("/etc/systemd/system/multi-user.target.wants/freshen.service"), &unit_path)?;
    }
    // Recorded before systemctl and Dokku are asked anything, so that
    // uninstall finds what was written even if they fail.
    let changed = w.changed;
    if changed {
        manifest::write(&root, &w.manifest)?;
    }
    for line in w.said.drain(..) {
        println!("{line}");
    }

    if on_host && plugin_changed {
        // Dokku's own way: `plugin:install` without a URL runs every
        // enabled plugin's install trigger.
        run_checked(Command::new(&config.dokku.command).arg("plugin:install"), "dokku plugin:install")?;
        println!("ran Dokku's install triggers (dokku plugin:install)");
    }
    let mut started = false;
    if on_host {
        let running = systemctl_ok(&["is-enabled", "--quiet", UNIT_NAME]) && systemctl_ok(&["is-active", "--quiet", UNIT_NAME]);
        if unit_changed || !running {
            if !w.manifest.enabled {
                w.manifest.enabled = true;
                manifest::write(&root, &w.manifest)?;
            }
            systemctl(&["daemon-reload"])?;
            systemctl(&["enable", "--now", UNIT_NAME])?;
            println!("enabled and started {UNIT_NAME}");
            started = true;
        }
    }
    if changed {
        println!("recorded in {}", inside(&root, &w.manifest.state_dir.join(manifest::FILE)).display());
    } else if !started {
        println!("nothing to do: freshen is installed as before");
    }
    Ok(())
}

/// Dokku's plugin, placed as `dokku plugin:install` would (plugn: the
/// files under `plugins/available/NAME`, enabled by a link under
/// `plugins/enabled`).
fn install_plugin(w: &mut Writer, config: &Config) -> Result<()> {
    let plugins = plugin_dirs(w.root, config)?;
    let dir = plugins.join("available").join(PLUGIN_NAME);
    for (rel, mode, content) in PLUGIN {
        w.file(&dir.join(rel), content, *mode, true)?;
    }
    w.link(&plugins.join("enabled").join(PLUGIN_NAME), &dir)
}

/// Dokku's plugin directory (`LIB_ROOT/plugins`), which must exist.
fn plugin_dirs(root: &Path, config: &Config) -> Result<PathBuf> {
    let plugins = config.dokku.lib_root.join("plugins");
    if !inside(root, &plugins).is_dir() {
        bail!("--dokku: Dokku is not installed here: no {} (Dokku's lib_root is {})", inside(root, &plugins).display(), config.dokku.lib_root.display());
    }
    Ok(plugins)
}

fn uninstall(args: UninstallArgs) -> Result<()> {
    let root = root_of(&args.root)?;
    let on_host = args.root.is_none();
    if on_host && !rustix::process::geteuid().is_root() {
        bail!("freshen host uninstall needs root (or --root DIR)");
    }
    let state_dir = Config::default().state_dir;
    let Some(m) = manifest::read(&root, &state_dir)? else {
        println!("nothing to uninstall: no {}", inside(&root, &state_dir.join(manifest::FILE)).display());
        return Ok(());
    };
    let mut said = Vec::new();
    if on_host && m.enabled {
        systemctl(&["disable", "--now", UNIT_NAME])?;
        said.push(format!("stopped and disabled {UNIT_NAME}"));
    }
    let keep: Vec<&Path> = if args.purge { Vec::new() } else { vec![m.state_dir.as_path(), m.cache_dir.as_path()] };
    manifest::remove(&root, &m, &keep, &mut said);
    let record = inside(&root, &m.state_dir.join(manifest::FILE));
    std::fs::remove_file(&record).with_context(|| format!("removing {}", record.display()))?;
    said.push(format!("removed {}", record.display()));
    if args.purge {
        for dir in [&m.state_dir, &m.cache_dir] {
            let on_disk = inside(&root, dir);
            if on_disk.exists() {
                std::fs::remove_dir_all(&on_disk).with_context(|| format!("removing {}", on_disk.display()))?;
                said.push(format!("removed {} and everything in it", on_disk.display()));
            }
        }
    } else {
        said.push(format!("kept the state {} and the cache {} (--purge removes them)", inside(&root, &m.state_dir).display(), inside(&root, &m.cache_dir).display()));
    }
    if on_host && m.entries.iter().any(|e| e.path() == Path::new(UNIT_PATH)) {
        systemctl(&["daemon-reload"])?;
    }
    for line in said {
        println!("{line}");
    }
    Ok(())
}

fn systemctl_ok(args: &[&str]) -> bool {
    Command::new("systemctl").args(args).status().is_ok_and(|s| s.success())
}

fn systemctl(args: &[&str]) -> Result<()> {
    run_checked(Command::new("systemctl").args(args), &format!("systemctl {}", args.join(" ")))
}

fn run_checked(cmd: &mut Command, what: &str) -> Result<()> {
    let out = cmd.output().with_context(|| format!("cannot run {what}"))?;
    if !out.status.success() {
        let err = String::from_utf8_lossy(&out.stderr);
        bail!("{what}: {}: {}", out.status, err.trim());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_skeleton_shows_every_key_with_its_default() {
        let text = config_for("127.0.0.1:9999".parse().unwrap());
        assert!(text.contains("\nlisten = \"127.0.0.1:9999\"\n"));
        assert!(text.contains("\n# webhook = \"https://"));
        // Every commented key, uncommented, gives the defaults.
        let open: String = text
            .lines()
            .map(|l| match l.strip_prefix("# ") {
                Some(kv) if kv.contains(" = ") && !kv.starts_with("webhook") => kv,
                _ => l,
            })
            .collect::<Vec<_>>()
            .join("\n");
        let parsed = Config::parse(&open, Path::new("skeleton")).unwrap();
        let want = Config { cache_dir: "/var/cache/freshen".into(), listen: Some("127.0.0.1:9999".parse().unwrap()), ..Config::default() };
        assert_eq!(parsed.to_toml(), want.to_toml());
        // And every key of the configuration is there.
        for line in want.to_toml().lines().filter(|l| l.contains(" = ")) {
            let key = line.split(" = ").next().unwrap();
            assert!(text.contains(&format!("\n# {key} = ")) || text.contains(&format!("\n{key} = ")), "{key} missing from the skeleton");
        }
    }

    #[test]
    fn the_plugin_list_is_the_whole_directory() {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../dokku-plugin");
        let mut found = Vec::new();
        let mut stack = vec![dir.clone()];
        while let Some(d) = stack.pop() {
            for e in std::fs::read_dir(&d).unwrap() {
                let e = e.unwrap();
                if e.file_type().unwrap().is_dir() {
                    stack.push(e.path());
                } else {
                    use std::os::unix::fs::PermissionsExt;
                    let mode = e.metadata().unwrap().permissions().mode() & 0o777;
                    found.push((e.path().strip_prefix(&dir).unwrap().to_str().unwrap().to_string(), mode));
                }
            }
        }
        found.sort();
        let listed: Vec<(String, u32)> = PLUGIN.iter().map(|(p, m, _)| (p.to_string(), *m)).collect();
        assert_eq!(found, listed, "dokku-plugin/ and the embedded list differ: update PLUGIN in install.rs");
    }
}
