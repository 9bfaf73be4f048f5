//! Dokku apps: redeploying a patched image with `dokku ps:restart` and
//! rolling back one that fails Dokku's checks, the app's deploy lock,
//! `dokku apps:list`, and the builder images of a Dokku host.
//!
//! Dokku cannot be installed on the test machines: `tests/fixtures/dokku`
//! is a stand-in written from Dokku 0.38's source (its header names the
//! files) that enacts `ps:restart` as Dokku's docker-local scheduler does,
//! with the `docker` CLI against Debian's dockerd started by the test, and
//! logs every call so the tests see exactly what freshen ran.
//! Needs root, docker.io, mmdebstrap and util-linux's flock.

mod common;

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};

use common::dokku::DokkuHost;
use common::*;
use freshen_host::config::Dokku;
use freshen_host::dokku::{self, DeployLock, RedeployOutcome};
use freshen_host::model::Action;
use freshen_host::Config;
use freshen_image::Transport;

fn image_id(d: &Dockerd, name: &str) -> String {
    d.ok(&["image", "inspect", "-f", "{{.Id}}", name]).trim().to_string()
}

/// The id and image id of the running container `name`.
fn running(d: &Dockerd, name: &str) -> (String, String) {
    let out = d.ok(&["container", "inspect", "-f", "{{.Id}} {{.Image}} {{.State.Running}}", name]);
    let f: Vec<&str> = out.split_whitespace().collect();
    assert_eq!(f[2], "true", "{name} is not running");
    (f[0].to_string(), f[1].to_string())
}

/// A new image made from `from` (a commit of a container created from it,
/// with `changes`): another id, the same labels, env and user.
fn commit(d: &Dockerd, from: &str, changes: &[&str], to: &str) -> String {
    let cid = d.ok(&["container", "create", "--network=none", from]).trim().to_string();
    let mut args = vec!["commit"];
    for c in changes {
        args.extend(["--change", c]);
    }
    args.extend([cid.as_str(), to]);
    d.ok(&args);
    d.ok(&["container", "rm", &cid]);
    image_id(d, to)
}

#[test]
fn a_patched_app_is_restarted_by_dokku_and_rolled_back_when_its_checks_fail() {
    let stale = StaleImage::new("mmdebstrap --variant=minbase bookworm");
    let d = Dockerd::start();
    let out = freshen(&["copy", &stale.image, "docker-daemon:stale:latest", "--docker-host", &d.host], &stale.cache);
    assert!(out.status.success(), "freshen copy: {}", String::from_utf8_lossy(&out.stderr));
    let base = d.ok(&["container", "create", "--network=none", "stale:latest", "true"]).trim().to_string();
    let labels = ["LABEL com.dokku.app-name=shop com.dokku.image-stage=release com.dokku.builder-type=dockerfile", r#"CMD ["sleep", "infinity"]"#];
    let mut args = vec!["commit"];
    for c in &labels {
        args.extend(["--change", c]);
    }
    args.extend([base.as_str(), "dokku/shop:latest"]);
    d.ok(&args);
    let first = image_id(&d, "dokku/shop:latest");

    // The app as a deploy left it: one web container, its id in
    // $DOKKU_ROOT/shop/CONTAINER.web.1.
    let host = DokkuHost::new(Some(&d.host));
    host.app("shop", "web=1\n");
    let cid = d
        .ok(&[
            "container", "create", "--name=shop.web.1", "--label=com.dokku.app-name=shop", "--label=com.dokku.container-type=deploy",
            "--label=com.dokku.process-type=web", "--label=com.dokku.dyno=web.1", "--env=DYNO=web.1", "--init", "--network=none",
            "--restart=on-failure:10", "dokku/shop:latest",
        ])
        .trim()
        .to_string();
    d.ok(&["container", "start", &cid]);
    std::fs::write(host.root.join("shop/CONTAINER.web.1"), &cid).unwrap();
    let t = Transport { docker_host: Some(d.host.clone()), ..Transport::default() };

    // (a) The patched image (a commit stands in for it) under the
    // deployed tag, the previous one under the rollback tag: one
    // ps:restart puts the app on it.
    d.ok(&["tag", "dokku/shop:latest", "dokku/shop:freshen-rollback"]);
    let patched = commit(&d, "dokku/shop:latest", &[], "dokku/shop:latest");
    assert_ne!(patched, first);
    let lock = DeployLock::try_acquire(&host.lib, "shop").unwrap().expect("no deploy runs");
    let outcome = dokku::redeploy(&host.config, &t, "shop", "dokku/shop:latest", "dokku/shop:freshen-rollback");
    assert_eq!(outcome, RedeployOutcome { restart: Ok(()), rollback: None });
    assert_eq!((outcome.action(), outcome.reason()), (Action::Patched, None));
    assert_eq!(host.calls(), ["ps:restart shop"]);
    let (new_cid, runs) = running(&d, "shop.web.1");
    assert_eq!(runs, patched, "the app does not run the patched image");
    assert_ne!(new_cid, cid, "ps:restart made no new container");
    assert!(!d.docker(&["container", "inspect", &cid]).status.success(), "the old container was not retired");
    assert_eq!(std::fs::read_to_string(host.root.join("shop/CONTAINER.web.1")).unwrap().trim(), new_cid);
    let labels = d.ok(&["container", "inspect", "-f", "{{index .Config.Labels \"com.dokku.app-name\"}} {{index .Config.Labels \"com.dokku.dyno\"}}", &new_cid]);
    assert_eq!(labels.trim(), "shop web.1");

    // (b) A patched image whose command exits at once fails Dokku's
    // check: the previous image goes back under the deployed tag and the
    // app is restarted on it.
    d.ok(&["tag", "dokku/shop:latest", "dokku/shop:freshen-rollback"]);
    let broken = commit(&d, "dokku/shop:latest", &[r#"CMD ["true"]"#], "dokku/shop:latest");
    let outcome = dokku::redeploy(&host.config, &t, "shop", "dokku/shop:latest", "dokku/shop:freshen-rollback");
    assert_eq!(outcome.action(), Action::RolledBack, "{outcome:?}");
    let failed = outcome.restart.as_ref().unwrap_err();
    assert!(failed.output_tail.iter().any(|l| l == " !     Could not start due to 1 failed checks (web.1)"), "{failed:?}");
    assert!(failed.to_string().starts_with("`dokku ps:restart shop` failed (exit status: 1): Could not start due to 1 failed checks (web.1)"), "{failed}");
    assert!(outcome.reason().unwrap().ends_with("; rolled back to the previous image"));
    assert_eq!(host.calls(), ["ps:restart shop", "ps:restart shop"]);
    assert_eq!(image_id(&d, "dokku/shop:latest"), patched, "the deployed tag was not put back");
    let (back_cid, runs) = running(&d, "shop.web.1");
    assert_eq!(runs, patched, "the app does not run the previous image again");
    assert_ne!(back_cid, new_cid);
    let leftovers = d.ok(&["container", "ls", "--all", "--quiet", "--filter", "label=com.dokku.app-name=shop"]);
    assert_eq!(leftovers.lines().count(), 1, "containers besides shop.web.1: {leftovers}");
    assert_ne!(image_id(&d, "dokku/shop:freshen-rollback"), broken);
    drop(lock);
    assert!(!DeployLock::path(&host.lib, "shop").exists(), "the deploy lock file was left behind");

    // (e) The builder images present on a Dokku host, and none on
    // another host; no Dokku command is run for them.
    d.ok(&["tag", "stale:latest", "gliderlabs/herokuish:latest-24"]);
    d.ok(&["tag", "stale:latest", "heroku/builder:24"]);
    d.ok(&["tag", "stale:latest", "library/app:1"]);
    let found = dokku::builder_images(&host.config, &t).unwrap();
    assert_eq!(found, ["docker-daemon:gliderlabs/herokuish:latest-24", "docker-daemon:heroku/builder:24"]);
    let elsewhere = Config { dokku: Dokku { command: "freshen-test-no-dokku".into(), lib_root: "/nonexistent/dokku".into(), ..Default::default() }, ..Config::default() };
    assert!(dokku::builder_images(&elsewhere, &t).unwrap().is_empty());
    assert!(host.calls().is_empty());
}

#[test]
fn an_app_whose_deploy_holds_the_lock_is_skipped() {
    let host = DokkuHost::new(None);
    host.app("shop", "web=1\n");
    let path = DeployLock::path(&host.lib, "shop");
    // A deploy's lock: util-linux flock holding the file while the
    // command it becomes (no fork) runs.
    let mut deploy = Command::new("flock")
        .args(["--exclusive", "--no-fork"])
        .arg(&path)
        .args(["sh", "-c", "echo locked; exec sleep 60"])
        .stdout(Stdio::piped())
        .spawn()
        .expect("flock (util-linux)");
    let mut line = String::new();
    BufReader::new(deploy.stdout.take().unwrap()).read_line(&mut line).unwrap();
    assert_eq!(line.trim(), "locked");
    assert!(DeployLock::try_acquire(&host.lib, "shop").unwrap().is_none(), "took a lock a deploy holds");
    assert!(path.exists(), "the deploy's lock file was removed");
    deploy.kill().unwrap();
    deploy.wait().unwrap();

    // Free again: taken, and other processes (Dokku's `flock -n`) are
    // refused while freshen holds it.
    let held = DeployLock::try_acquire(&host.lib, "shop").unwrap().expect("a free lock");
    let dokku_try = Command::new("flock").arg("--nonblock").arg(&path).arg("true").status().unwrap();
    assert_eq!(dokku_try.code(), Some(1), "another process took the lock freshen holds");
    drop(held);
    assert_eq!(Command::new("flock").arg("--nonblock").arg(&path).arg("true").status().unwrap().code(), Some(0));
    assert!(host.calls().is_empty(), "the lock needs no Dokku command");
    let err = DeployLock::try_acquire(&host.lib, "blog").unwrap_err().to_string();
    assert!(err.contains("data/apps/blog: no such directory"), "{err}");
}

#[test]
fn apps_are_listed_as_dokku_lists_them() {
    let host = DokkuHost::new(None);
    assert!(dokku::apps(&host.config).unwrap().is_empty(), "an app on a host without any");
    assert_eq!(host.calls(), ["apps:list"]);
    host.app("shop", "web=1\n");
    host.app("blog", "web=1\nworker=2\n");
    for not_an_app in [".ssh", "Upper"] {
        std::fs::create_dir_all(host.root.join(not_an_app)).unwrap();
    }
    std::fs::write(host.root.join("dokkurc"), "").unwrap();
    assert_eq!(dokku::apps(&host.config).unwrap(), ["blog", "shop"]);
    assert_eq!(host.calls(), ["apps:list"]);

    // The stand-in refuses what it does not implement, loudly.
    let out = Command::new(&host.config.dokku.command).args(["ps:stop", "shop"]).output().unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("`ps:stop shop` is not a dokku command."));
    assert_eq!(host.calls(), ["ps:stop shop"]);
    let missing = Config { dokku: Dokku { command: host.root.join("no-dokku").to_str().unwrap().into(), lib_root: host.lib.clone(), ..Default::default() }, ..Config::default() };
    let err = dokku::apps(&missing).unwrap_err().to_string();
    assert!(err.contains("no-dokku` not found"), "{err}");
}

/// The loop on a Dokku host, through `freshen run`: the archive publishes
/// a fix for the app's image; freshen asks `dokku apps:list`, takes the
/// deploy lock, patches `dokku/shop:latest` in place (labels, env, user and
/// command unchanged) and has Dokku restart the app on it. With a deploy
/// holding the lock, the app is skipped and said so.
#[test]
fn run_patches_a_dokku_app_and_dokku_restarts_it() {
    let d = Dockerd::start();
    let live = common::live::LiveRepo::start("1.0");
    let work = tempdir();
    let (cache, state) = (work.join("cache"), work.join("state"));
    let base = live.base_image(&work, "1.0");
    let out = freshen(&["copy", &base, "docker-daemon:live:1", "--docker-host", &d.host], &cache);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let labels = [
        "LABEL com.dokku.app-name=shop com.dokku.image-stage=release com.dokku.builder-type=herokuish",
        "ENV USER=herokuishuser",
        "USER 1000",
        r#"CMD ["sleep", "infinity"]"#,
    ];
    let c = d.ok(&["container", "create", "--network=none", "live:1", "true"]).trim().to_string();
    let mut args = vec!["commit"];
    for l in &labels {
        args.extend(["--change", l]);
    }
    args.extend([c.as_str(), "dokku/shop:latest"]);
    d.ok(&args);
    // What Dokku reads of an image; freshen adds only its own
    // `org.freshen.patch.*` labels (what a later patch replaces).
    let config_of = |image: &str| {
        let mut c: serde_json::Value = serde_json::from_str(&d.ok(&["image", "inspect", "-f", "{{json .Config}}", image])).unwrap();
        c["Labels"].as_object_mut().unwrap().retain(|k, _| !k.starts_with("org.freshen.patch."));
        (c["Labels"].clone(), c["Env"].clone(), c["User"].clone(), c["Cmd"].clone(), c["Entrypoint"].clone())
    };
    let before = config_of("dokku/shop:latest");
    let host = DokkuHost::new(Some(&d.host));
    host.app("shop", "web=1\n");
    let cid = d
        .ok(&[
            "container", "create", "--name=shop.web.1", "--label=com.dokku.app-name=shop", "--label=com.dokku.container-type=deploy",
            "--label=com.dokku.process-type=web", "--label=com.dokku.dyno=web.1", "--network=none", "dokku/shop:latest",
        ])
        .trim()
        .to_string();
    d.ok(&["container", "start", &cid]);
    std::fs::write(host.root.join("shop/CONTAINER.web.1"), &cid).unwrap();
    let config = work.join("freshen.toml");
    std::fs::write(&config, format!("[dokku]\ncommand = {:?}\nlib_root = {:?}\n", host.command.to_str().unwrap(), host.lib.to_str().unwrap())).unwrap();
    let run = || freshen(&["run", "--config", config.to_str().unwrap(), "--state", state.to_str().unwrap(), "--docker-host", &d.host], &cache);

    live.publish("1.1", false);
    // A deploy holds the lock: skipped, nothing changed, said so.
    let lock = DeployLock::try_acquire(&host.lib, "shop").unwrap().unwrap();
    let out = run();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(3), "{stdout}{}", String::from_utf8_lossy(&out.stderr));
    assert!(stdout.contains("deploy lock"), "{stdout}");
    assert_eq!(running(&d, "shop.web.1").0, cid);
    assert!(!host.calls().iter().any(|c| c.starts_with("ps:")), "Dokku was asked to restart an app under a deploy");
    drop(lock);

    let out = run();
    assert_eq!(out.status.code(), Some(0), "{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert_eq!(host.calls(), ["apps:list", "ps:restart shop"], "the stand-in saw other calls");
    let patched = image_id(&d, "dokku/shop:latest");
    let (new_cid, runs) = running(&d, "shop.web.1");
    assert_eq!(runs, patched);
    assert_ne!(new_cid, cid);
    assert_eq!(d.ok(&["exec", "shop.web.1", "cat", "/usr/share/websrv/version"]).trim(), "websrv 1.1");
    assert_eq!(config_of("dokku/shop:latest"), before, "the patch changed what Dokku reads of the image");
    assert!(d.docker(&["image", "inspect", "dokku/shop:freshen-rollback-latest"]).status.success(), "no rollback image kept");
}
