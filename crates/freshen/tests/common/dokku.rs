//! A Dokku host in a temporary directory for the tests: Dokku cannot be
//! installed on the test machines, so `fixtures/dokku` is a stand-in
//! written from Dokku 0.38's and plugn's source (its header names the
//! files) that enacts `ps:restart` as Dokku's docker-local scheduler does,
//! builds a Dockerfile app with the `pre-release-builder` trigger
//! (`ps:rebuild`), runs plugins' subcommands as the `dokku` script
//! dispatches them, and logs every call.

use std::path::PathBuf;
use std::process::Command;

use freshen_host::config::Dokku;
use freshen_host::Config;

use super::tempdir;

pub const STANDIN: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/dokku");

/// A Dokku host in a temporary directory: `$DOKKU_ROOT`, `$DOKKU_LIB_ROOT`
/// and a `dokku` command (the stand-in, with its environment) that
/// freshen's configuration names.
pub struct DokkuHost {
    pub root: PathBuf,
    pub lib: PathBuf,
    pub log: PathBuf,
    pub config: Config,
    /// The `dokku` command (a wrapper that gives the stand-in its environment).
    pub command: PathBuf,
}

impl DokkuHost {
    pub fn new(docker_host: Option<&str>) -> DokkuHost {
        let dir = tempdir();
        let (root, lib, log) = (dir.join("home-dokku"), dir.join("var-lib-dokku"), dir.join("calls.log"));
        std::fs::create_dir_all(&root).unwrap();
        std::fs::create_dir_all(lib.join("data/apps")).unwrap();
        let docker = docker_host.map(|h| format!("export DOCKER_HOST='{h}'\n")).unwrap_or_default();
        let command = dir.join("dokku");
        let script = format!(
            "#!/bin/sh\n{docker}[ -f '{env}' ] && . '{env}'\nexport DOKKU_ROOT='{}' DOKKU_LIB_PATH='{}' DOKKU_STANDIN_LOG='{}'\n\
             export DOKKU_DEFAULT_CHECKS_WAIT=2 DOKKU_WAIT_TO_RETIRE=0 DOKKU_GLOBAL_RUN_ARGS=--network=none\nexec '{STANDIN}' \"$@\"\n",
            root.display(),
            lib.display(),
            log.display(),
            env = dir.join("env").display(),
        );
        std::fs::write(&command, script).unwrap();
        Command::new("chmod").arg("755").arg(&command).status().unwrap();
        let config = Config { dokku: Dokku { command: command.to_str().unwrap().into(), lib_root: lib.clone(), ..Default::default() }, ..Config::default() };
        DokkuHost { root, lib, log, config, command }
    }

    /// Exports `name=value` to every later `dokku` call (and so to the
    /// plugins it runs).
    pub fn env(&self, name: &str, value: &str) {
        use std::io::Write;
        let path = self.command.with_file_name("env");
        let mut f = std::fs::OpenOptions::new().create(true).append(true).open(path).unwrap();
        writeln!(f, "export {name}='{value}'").unwrap();
    }

    /// Installs and enables the plugin in `dir` as `name`, as `dokku
    /// plugin:install` and plugn's `enable` leave it: a link in
    /// `plugins/available` and one to it in `plugins/enabled`.
    pub fn plugin(&self, name: &str, dir: &std::path::Path) {
        let plugins = self.lib.join("plugins");
        std::fs::create_dir_all(plugins.join("available")).unwrap();
        std::fs::create_dir_all(plugins.join("enabled")).unwrap();
        std::os::unix::fs::symlink(dir, plugins.join("available").join(name)).unwrap();
        std::os::unix::fs::symlink(plugins.join("available").join(name), plugins.join("enabled").join(name)).unwrap();
    }

    /// `dokku ARGS`: its output, exit code asserted.
    pub fn run(&self, args: &[&str], code: i32) -> std::process::Output {
        let out = Command::new(&self.command).args(args).output().unwrap();
        assert_eq!(out.status.code(), Some(code), "dokku {args:?}:\n{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
        out
    }

    /// An app as `dokku apps:create` and `ps:scale` leave it.
    pub fn app(&self, name: &str, scale: &str) {
        std::fs::create_dir_all(self.root.join(name)).unwrap();
        std::fs::create_dir_all(self.lib.join("data/apps").join(name)).unwrap();
        let ps = self.lib.join("config/ps").join(name);
        std::fs::create_dir_all(&ps).unwrap();
        std::fs::write(ps.join("scale"), scale).unwrap();
    }

    /// The calls the stand-in saw since the last look.
    pub fn calls(&self) -> Vec<String> {
        let text = std::fs::read_to_string(&self.log).unwrap_or_default();
        let _ = std::fs::remove_file(&self.log);
        text.lines().map(str::to_string).collect()
    }
}

