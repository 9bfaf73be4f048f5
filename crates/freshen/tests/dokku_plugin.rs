//! The Dokku plugin (`dokku-plugin/`) on a Dokku host: every build is
//! patched by the `pre-release-builder` trigger before Dokku releases it,
//! `dokku freshen:report` and `dokku freshen:patch` run freshen, and
//! freshen's own failures leave the build as it is unless `dokku.strict`.
//!
//! Dokku cannot be installed on the test machines:
//! `tests/fixtures/dokku` is a stand-in written from Dokku 0.38's source
//! and plugn's (its header names the files) that builds a Dockerfile app as
//! Dokku's builder-dockerfile does, running every enabled plugin's
//! `pre-release-builder` as plugn does, dispatches `PLUGIN:CMD` to the
//! plugin's subcommands as the `dokku` script does, and deploys as Dokku's
//! docker-local scheduler does, with Debian's dockerd started by the test.
//! Needs root, docker.io, mmdebstrap and runc.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use common::dokku::DokkuHost;
use common::live::LiveRepo;
use common::*;
use serde_json::Value;

const PLUGIN: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../../dokku-plugin");

fn text(out: &Output) -> (String, String) {
    (String::from_utf8_lossy(&out.stdout).into_owned(), String::from_utf8_lossy(&out.stderr).into_owned())
}

/// freshen's configuration for the host, and a `freshen` for the plugin
/// (`FRESHEN_BIN`) that reads it and the test's cache.
fn configure(host: &DokkuHost, work: &Path, cache: &Path, strict: bool) -> PathBuf {
    let config = work.join("freshen.toml");
    let toml = format!(
        "state_dir = {:?}\ncache_dir = {:?}\n[dokku]\ncommand = {:?}\nlib_root = {:?}\nstrict = {strict}\n",
        work.join("state").to_str().unwrap(),
        cache.to_str().unwrap(),
        host.command.to_str().unwrap(),
        host.lib.to_str().unwrap()
    );
    std::fs::write(&config, toml).unwrap();
    let bin = work.join("freshen");
    if !bin.exists() {
        let script = format!("#!/bin/sh\nexec '{}' \"$@\" --config '{}'\n", env!("CARGO_BIN_EXE_freshen"), config.display());
        std::fs::write(&bin, script).unwrap();
        Command::new("chmod").arg("755").arg(&bin).status().unwrap();
        host.env("FRESHEN_BIN", bin.to_str().unwrap());
    }
    config
}

/// Two plugins, one before freshen and one after (plugn runs them in glob
/// order), that record what their `pre-release-builder` got: the
/// arguments and the image id `$IMAGE` named then.
fn recorders(host: &DokkuHost, work: &Path, docker_host: &str) -> PathBuf {
    let log = work.join("trigger.log");
    for name in ["aa-record", "zz-record"] {
        let dir = work.join(name);
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("plugin.toml"), "[plugin]\ndescription = \"records triggers\"\nversion = \"0.0.1\"\n[plugin.config]\n").unwrap();
        let hook = format!("#!/usr/bin/env bash\nset -eo pipefail\necho \"{name} $* $(docker --host '{docker_host}' image inspect -f '{{{{.Id}}}}' \"$3\")\" >>'{}'\n", log.display());
        std::fs::write(dir.join("pre-release-builder"), hook).unwrap();
        Command::new("chmod").arg("755").arg(dir.join("pre-release-builder")).status().unwrap();
        host.plugin(name, &dir);
    }
    log
}

/// The image ids the recorders saw before and after freshen's trigger,
/// after checking the trigger's arguments; the log is emptied.
fn before_and_after(log: &Path) -> (String, String) {
    let text = std::fs::read_to_string(log).unwrap();
    std::fs::remove_file(log).unwrap();
    let lines: Vec<Vec<&str>> = text.lines().map(|l| l.split_whitespace().collect()).collect();
    assert_eq!(lines.len(), 2, "{text}");
    assert_eq!(&lines[0][..4], ["aa-record", "dockerfile", "shop", "dokku/shop:latest"], "{text}");
    assert_eq!(&lines[1][..4], ["zz-record", "dockerfile", "shop", "dokku/shop:latest"], "{text}");
    (lines[0][4].to_string(), lines[1][4].to_string())
}

/// The app's source: a Dockerfile on `base` with its own labels, env,
/// user, entrypoint and command.
fn source(host: &DokkuHost, app: &str, base: &str, extra: &str) {
    let src = host.root.join(app).join("src");
    std::fs::create_dir_all(&src).unwrap();
    let dockerfile = format!(
        "FROM {base}\nLABEL org.example.team=shop\nENV GREETING=hello\n{extra}USER 1000\nENTRYPOINT [\"/usr/bin/env\"]\nCMD [\"sleep\", \"infinity\"]\n"
    );
    std::fs::write(src.join("Dockerfile"), dockerfile).unwrap();
}

/// What Dokku and the app read of an image, freshen's own labels aside.
fn config_of(d: &Dockerd, image: &str) -> Value {
    let mut c: Value = serde_json::from_str(&d.ok(&["image", "inspect", "-f", "{{json .Config}}", image])).unwrap();
    c["Labels"].as_object_mut().unwrap().retain(|k, _| !k.starts_with("org.freshen.patch."));
    serde_json::json!({ "Labels": c["Labels"], "Env": c["Env"], "User": c["User"], "Cmd": c["Cmd"], "Entrypoint": c["Entrypoint"] })
}

fn image_id(d: &Dockerd, name: &str) -> String {
    d.ok(&["image", "inspect", "-f", "{{.Id}}", name]).trim().to_string()
}

/// The image the app's web container runs, and the version of websrv in it.
fn deployed(d: &Dockerd) -> (String, String) {
    let id = d.ok(&["container", "inspect", "-f", "{{.Image}}", "shop.web.1"]).trim().to_string();
    let version = d.ok(&["exec", "shop.web.1", "cat", "/usr/share/websrv/version"]).trim().to_string();
    (id, version)
}

/// A build on a stale base: the trigger patches it in place, Dokku's
/// release and deploy put the patched image into service with the build's
/// labels, env, user, entrypoint and command; the app's record is in the
/// state database for `freshen:report`. A build on a current base is left
/// as built. An archive freshen cannot reach leaves the build unpatched and
/// the deploy goes on, unless `dokku.strict`.
#[test]
fn every_build_is_patched_before_release() {
    let d = Dockerd::start();
    let live = LiveRepo::start("1.0");
    let work = tempdir();
    let cache = work.join("cache");
    let base = live.base_image(&work.join("stale"), "1.0");
    let out = freshen(&["copy", &base, "docker-daemon:live:1", "--docker-host", &d.host], &cache);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    live.publish("1.1", false);

    let host = DokkuHost::new(Some(&d.host));
    host.app("shop", "web=1\n");
    host.plugin("freshen", Path::new(PLUGIN));
    let trigger_log = recorders(&host, &work, &d.host);
    configure(&host, &work, &cache, false);
    host.env("DOCKER_BUILDKIT", "0");

    // The help and a report before any record, as Dokku dispatches them.
    let (help, _) = text(&host.run(&["freshen:help"], 0));
    assert!(help.starts_with("Usage: dokku freshen[:COMMAND]") && help.contains("freshen:report [<app>] [--format json]"), "{help}");
    let (_, err) = text(&host.run(&["freshen:report", "shop"], 1));
    assert!(err.starts_with(" !     "), "{err}");

    // (a) The stale base: patched before release.
    source(&host, "shop", "live:1", "");
    let out = host.run(&["ps:rebuild", "shop"], 0);
    let (stdout, stderr) = text(&out);
    assert!(stdout.contains("-----> freshen: patched dokku/shop:latest: 1 security updates installed"), "{stdout}{stderr}");
    assert!(stdout.contains("       websrv 1.0 -> 1.1"), "{stdout}");
    assert!(stdout.contains("=====> Application deployed"), "{stdout}");
    let (built, after) = before_and_after(&trigger_log);
    assert_ne!(built, after, "the next plugin saw the build unpatched");
    let (runs, version) = deployed(&d);
    assert_eq!(runs, image_id(&d, "dokku/shop:latest"));
    assert_eq!(version, "websrv 1.1", "the deployed image is stale");
    let (code, scan) = scan_json(&format!("docker-daemon:{runs}"), &["--docker-host", &d.host], &cache);
    assert_eq!(code, 0, "security fixes still pending in the deployed image: {scan:#}");
    let c = config_of(&d, "dokku/shop:latest");
    assert_eq!(c["Labels"]["org.example.team"], "shop");
    assert_eq!((c["Labels"]["com.dokku.app-name"].as_str(), c["Labels"]["com.dokku.image-stage"].as_str()), (Some("shop"), Some("release")));
    assert!(c["Env"].as_array().unwrap().iter().any(|e| e == "GREETING=hello"), "{c}");
    assert_eq!((c["User"].as_str(), c["Entrypoint"].clone(), c["Cmd"].clone()), (Some("1000"), serde_json::json!(["/usr/bin/env"]), serde_json::json!(["sleep", "infinity"])));
    assert_eq!(d.ok(&["exec", "shop.web.1", "id", "-u"]).trim(), "1000");

    // The report: JSON and Dokku's text layout.
    let (json, _) = text(&host.run(&["freshen:report", "shop", "--format", "json"], 0));
    let report: Value = serde_json::from_str(&json).unwrap();
    assert_eq!((report["name"].as_str(), report["kind"].as_str(), report["pending_security"].as_u64()), (Some("shop"), Some("dokku-app"), Some(0)), "{report:#}");
    assert_eq!(report["last_action"], "patched", "{report:#}");
    let (all, _) = text(&host.run(&["freshen:report", "--format", "json"], 0));
    assert_eq!(serde_json::from_str::<Value>(&all).unwrap().as_array().map(Vec::len), Some(1));
    let (report, _) = text(&host.run(&["freshen:report", "shop"], 0));
    assert!(report.starts_with("=====> shop freshen information\n"), "{report}");
    assert!(report.contains("\n       Freshen pending security:      0\n"), "{report}");
    assert!(report.contains("\n       Freshen last action:           patched "), "{report}");
    let (_, err) = text(&host.run(&["freshen:report", "shop", "--format", "yaml"], 1));
    assert!(err.contains(" !     Invalid --format value: yaml"), "{err}");

    // (b) A current base: nothing pending, the build released as built.
    let current = live.base_image(&work.join("current"), "1.1");
    let out = freshen(&["copy", &current, "docker-daemon:live:2", "--docker-host", &d.host], &cache);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    // What a killed trigger left (its file-reading container and scratch
    // directory, its owner lock free) goes with the next build; another
    // cache's container is not this one's to judge and stays.
    let tmp = cache.join("tmp");
    let leftover = tmp.join("freshen-files-999999.1-0");
    std::fs::create_dir_all(leftover.join("var/lib/dpkg")).unwrap();
    let label = |dir: &Path| format!("org.freshen.read-files={}", dir.display());
    d.ok(&["create", "--name", "freshen-read-files-999999.1-0", "--label", &label(&tmp), "--entrypoint", "/nonexistent", "live:2"]);
    d.ok(&["create", "--name", "freshen-read-files-999999.2-0", "--label", &label(&work.join("other-cache/tmp")), "--entrypoint", "/nonexistent", "live:2"]);
    source(&host, "shop", "live:2", "");
    let (stdout, stderr) = text(&host.run(&["ps:rebuild", "shop"], 0));
    assert!(stdout.contains("-----> freshen: no security update pending for dokku/shop:latest"), "{stdout}{stderr}");
    let names = d.ok(&["ps", "-a", "--format", "{{.Names}}"]);
    assert!(!names.lines().any(|n| n == "freshen-read-files-999999.1-0"), "a dead run's container stayed: {names}");
    assert!(names.lines().any(|n| n == "freshen-read-files-999999.2-0"), "another cache's container was removed: {names}");
    assert!(!leftover.exists(), "a dead run's scratch directory stayed");
    let (built, after) = before_and_after(&trigger_log);
    assert_eq!(built, after, "a build with nothing pending was changed");
    assert_eq!(deployed(&d).1, "websrv 1.1");

    // `dokku freshen:patch`: a fix published for the running app is
    // patched in now and Dokku restarts the app on it; then nothing is
    // left to do for any app. An app without containers is an error.
    live.publish("1.2", false);
    let (stdout, stderr) = text(&host.run(&["freshen:patch", "shop"], 0));
    assert!(stdout.contains("-----> shop: patched (1 packages upgraded)") && stdout.contains("       websrv 1.1 -> 1.2"), "{stdout}{stderr}");
    assert_eq!(deployed(&d).1, "websrv 1.2");
    let (stdout, stderr) = text(&host.run(&["freshen:patch", "--all"], 0));
    assert!(stdout.contains("-----> shop: unchanged"), "{stdout}{stderr}");
    host.app("blog", "web=1\n");
    let (_, err) = text(&host.run(&["freshen:patch", "blog"], 1));
    assert!(err.contains(" !     App blog has no running containers: nothing to patch"), "{err}");

    // (c) The image's archive unreachable: said so, the build released
    // unpatched, the deploy goes on; with dokku.strict the deploy fails
    // and the app keeps running what it ran.
    let dead = format!("http://127.0.0.1:{}/", silent_server());
    std::fs::write(host.root.join("shop/src/sources.list"), format!("deb {dead} ./\n")).unwrap();
    source(&host, "shop", "live:1", "COPY sources.list /etc/apt/sources.list\n");
    let (stdout, stderr) = text(&host.run(&["ps:rebuild", "shop"], 0));
    assert!(stderr.contains(" !     freshen: dokku/shop:latest: ") && stderr.contains("releasing the build unpatched"), "{stdout}{stderr}");
    assert!(stdout.contains("=====> Application deployed"), "{stdout}");
    assert_eq!(deployed(&d).1, "websrv 1.0", "the unpatched build was not deployed");
    let running = deployed(&d).0;
    configure(&host, &work, &cache, true);
    source(&host, "shop", "live:1", "COPY sources.list /etc/apt/sources.list\nENV REBUILT=1\n");
    let (stdout, stderr) = text(&host.run(&["ps:rebuild", "shop"], 1));
    assert!(stderr.contains("dokku.strict is set: failing the deploy"), "{stdout}{stderr}");
    assert!(!stdout.contains("Application deployed"), "{stdout}");
    assert_eq!(deployed(&d).0, running, "a strict failure still deployed");
}

/// With the Engine unreachable the trigger says so in Dokku's way and
/// exits 0 (the deploy goes on), or 1 with `dokku.strict`; it is run as
/// plugn runs it.
#[test]
fn the_trigger_never_fails_a_deploy_for_freshen_s_own_failure() {
    let work = tempdir();
    let stopped = format!("unix://{}/stopped.sock", work.display());
    let host = DokkuHost::new(Some(&stopped));
    host.app("shop", "web=1\n");
    host.plugin("freshen", Path::new(PLUGIN));
    let trigger = host.lib.join("plugins/enabled/freshen/pre-release-builder");
    let run = |strict: bool| {
        configure(&host, &work, &work.join("cache"), strict);
        let bin = work.join("freshen");
        Command::new(&trigger)
            .args(["herokuish", "shop", "dokku/shop:latest"])
            .env("FRESHEN_BIN", &bin)
            .env("DOCKER_HOST", &stopped)
            .output()
            .unwrap()
    };
    let out = run(false);
    let (stdout, stderr) = text(&out);
    assert_eq!(out.status.code(), Some(0), "{stdout}{stderr}");
    assert!(stderr.starts_with(" !     freshen: dokku/shop:latest: ") && stderr.contains("cannot reach the Docker Engine"), "{stderr}");
    assert!(stderr.contains(" !     freshen: releasing the build unpatched"), "{stderr}");
    let out = run(true);
    let (stdout, stderr) = text(&out);
    assert_eq!(out.status.code(), Some(1), "{stdout}{stderr}");
    assert!(stderr.contains(" !     freshen: dokku.strict is set: failing the deploy"), "{stderr}");

    // Without freshen installed the trigger does nothing and says so.
    let out = Command::new(&trigger).args(["herokuish", "shop", "dokku/shop:latest"]).env("FRESHEN_BIN", work.join("missing")).env("PATH", "/usr/bin:/bin").output().unwrap();
    assert_eq!(out.status.code(), Some(0));
    assert!(String::from_utf8_lossy(&out.stderr).contains(" !     freshen: not installed"), "{}", String::from_utf8_lossy(&out.stderr));

    // The install trigger (run as root by `dokku plugin:install`): Dokku's
    // user may run `freshen dokku ...` as root through sudo, a rule visudo
    // accepts; without freshen it writes nothing.
    let sudoers = work.join("sudoers-freshen");
    let install = host.lib.join("plugins/enabled/freshen/install");
    let bin = work.join("freshen");
    let out = Command::new(&install).env("FRESHEN_BIN", &bin).env("FRESHEN_SUDOERS_FILE", &sudoers).env("DOKKU_SYSTEM_USER", "nobody").output().unwrap();
    assert_eq!(out.status.code(), Some(0), "{:?}", text(&out));
    let rule = std::fs::read_to_string(&sudoers).unwrap();
    let bin = bin.display();
    assert_eq!(rule, format!("nobody ALL=(root) NOPASSWD: {bin} --version, {bin} dokku *\n"));
    use std::os::unix::fs::PermissionsExt;
    assert_eq!(std::fs::metadata(&sudoers).unwrap().permissions().mode() & 0o777, 0o440);
    assert!(Command::new("visudo").arg("-cqf").arg(&sudoers).status().unwrap().success());
    std::fs::remove_file(&sudoers).unwrap();
    let out = Command::new(&install).env("FRESHEN_BIN", work.join("missing")).env("PATH", "/usr/bin:/bin").env("FRESHEN_SUDOERS_FILE", &sudoers).env("DOKKU_SYSTEM_USER", "nobody").output().unwrap();
    assert_eq!(out.status.code(), Some(0));
    assert!(String::from_utf8_lossy(&out.stderr).contains("the freshen binary is not installed") && !sudoers.exists());

    // Dokku's dispatch: `dokku freshen` prints the help, `help` lists the
    // plugin, an unknown subcommand is not a command.
    let (help, _) = text(&host.run(&["freshen"], 0));
    assert!(help.contains("freshen:patch <app>|--all") && help.contains("Additional commands:"), "{help}");
    let (help, _) = text(&host.run(&["help"], 0));
    assert!(help.contains("    freshen, Patch the OS packages"), "{help}");
    let (_, err) = text(&host.run(&["freshen:nope"], 1));
    assert!(err.contains("`freshen:nope` is not a dokku command."), "{err}");
    let (_, err) = text(&host.run(&["freshen:patch"], 1));
    assert!(err.contains(" !     Please specify an app to run the command on"), "{err}");
}
