//! The loop on a Docker host: a security archive on 127.0.0.1 publishes a
//! fix (fixtures/live-repo.sh), `freshen run` patches what runs in place in
//! Debian's dockerd and redeploys it, with health checks and rollback, and
//! remembers what it did. The base image is the stale bookworm minbase
//! (Debian's archive) whose only apt source is that archive.
//! Needs root, docker.io, runc, mmdebstrap and Debian's archive.

mod common;


use common::live::{LiveRepo, PACKAGE};
use common::host::{expect, status, target};
use common::*;
use serde_json::Value;

/// The version of websrv in `image` (from the file the package ships).
fn websrv_in(d: &Dockerd, image: &str) -> String {
    d.ok(&["run", "--rm", "--entrypoint", "cat", image, &format!("/usr/share/{PACKAGE}/version")]).trim().to_string()
}

/// A Docker host with the live archive at websrv 1.0 and the base image
/// (websrv 1.0 installed) in the Engine as `name`.
struct LiveHost {
    d: Dockerd,
    live: LiveRepo,
    work: std::path::PathBuf,
    cache: std::path::PathBuf,
    state: std::path::PathBuf,
}

impl LiveHost {
    fn start(name: &str) -> LiveHost {
        let d = Dockerd::start();
        let live = LiveRepo::start("1.0");
        let work = tempdir();
        let (cache, state) = (work.join("cache"), work.join("state"));
        let base = live.base_image(&work, "1.0");
        expect(&["copy", &base, &format!("docker-daemon:{name}"), "--docker-host", &d.host], &cache, 0);
        LiveHost { d, live, work, cache, state }
    }
}

#[test]
fn a_configured_image_is_patched_in_place_when_the_archive_publishes() {
    let LiveHost { d, live, work, cache, state } = LiveHost::start("base:1");
    let old_id = d.ok(&["image", "inspect", "-f", "{{.Id}}", "base:1"]).trim().to_string();
    let config = work.join("freshen.toml");
    std::fs::write(&config, "images = [\"docker-daemon:base:1\"]\n").unwrap();
    let run = |code| expect(&["run", "--config", config.to_str().unwrap(), "--state", state.to_str().unwrap(), "--docker-host", &d.host], &cache, code);

    run(0);
    assert_eq!(target(&status(&state), "docker-daemon:base:1")["last_action"], "unchanged");

    live.publish("1.1", false);
    let out = run(0);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("patched"), "{text}");
    let new_id = d.ok(&["image", "inspect", "-f", "{{.Id}}", "base:1"]).trim().to_string();
    assert_ne!(new_id, old_id);
    assert_eq!(websrv_in(&d, "base:1"), "websrv 1.1");
    assert_eq!(d.ok(&["image", "inspect", "-f", "{{.Id}}", "base:freshen-rollback-1"]).trim(), old_id, "the previous image is kept for a rollback");
    let st = status(&state);
    let t = target(&st, "docker-daemon:base:1");
    assert_eq!((t["last_action"].as_str(), t["pending_security"].as_u64(), t["image_id"].as_str()), (Some("patched"), Some(0), Some(new_id.as_str())), "{st:#}");

    // Nothing new: the next pass changes nothing.
    run(0);
    assert_eq!(d.ok(&["image", "inspect", "-f", "{{.Id}}", "base:1"]).trim(), new_id);
    assert_eq!(target(&status(&state), "docker-daemon:base:1")["last_action"], "unchanged");
}

/// The `docker inspect` fields of container `name` that must survive a
/// recreate: the image's `org.freshen.patch.*` labels (which containers
/// inherit) and the alias the Engine makes of the short id are left out.
fn settings(d: &Dockerd, name: &str) -> Value {
    let v: Value = serde_json::from_str(&d.ok(&["inspect", name])).unwrap();
    let c = &v[0];
    let short = &c["Id"].as_str().unwrap()[..12];
    let mut labels = c["Config"]["Labels"].as_object().unwrap().clone();
    labels.retain(|k, _| !k.starts_with("org.freshen.patch."));
    let net = &c["NetworkSettings"]["Networks"]["appnet"];
    let aliases: Vec<&Value> = net["Aliases"].as_array().unwrap().iter().filter(|a| *a != short).collect();
    serde_json::json!([c["Config"]["Env"], c["Config"]["Cmd"], labels, c["Config"]["Healthcheck"], c["HostConfig"]["RestartPolicy"], c["HostConfig"]["Binds"], aliases, net["IPAMConfig"]])
}

#[test]
fn publish_patch_redeploy_roll_back_and_not_retry() {
    let LiveHost { d, live, work, cache, state } = LiveHost::start("web:1");
    d.ok(&["network", "create", "--subnet", "172.30.0.0/24", "appnet"]);
    d.ok(&[
        "run", "-d", "--name", "web", "--network", "appnet", "--network-alias", "api", "--ip", "172.30.0.10",
        "-v", "webdata:/data", "-e", "MODE=prod", "--restart", "unless-stopped",
        "--label", "com.docker.compose.project=shop", "--label", "com.docker.compose.service=web",
        "--health-cmd", &format!("test ! -e /usr/share/{PACKAGE}/broken"), "--health-interval", "1s", "--health-start-period", "1s",
        "web:1", "sleep", "infinity",
    ]);
    let inspect = |what: &str| d.ok(&["inspect", "-f", what, "web"]).trim().to_string();
    for _ in 0..100 {
        if inspect("{{.State.Health.Status}}") == "healthy" {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(200));
    }
    d.ok(&["exec", "web", "sh", "-c", "echo kept > /data/file"]);
    let before = settings(&d, "web");
    let config = work.join("freshen.toml");
    // A command receiver: every event, one JSON line.
    let told = work.join("told.jsonl");
    let receiver = format!("[notify]\ncommand = [\"/bin/sh\", \"-c\", \"cat >> {0}; echo >> {0}\"]\n", told.display());
    std::fs::write(&config, format!("settle = \"2s\"\nhealth_timeout = \"30s\"\n{receiver}")).unwrap();
    let events = || -> Vec<Value> { std::fs::read_to_string(&told).unwrap_or_default().lines().map(|l| serde_json::from_str(l).unwrap()).collect() };
    let run = |code| expect(&["run", "--config", config.to_str().unwrap(), "--state", state.to_str().unwrap(), "--docker-host", &d.host], &cache, code);
    run(0);
    assert_eq!(events(), Vec::<Value>::new(), "nothing happened yet");

    // The archive publishes a fix: patched in place, recreated, healthy.
    live.publish("1.1", false);
    let first_id = inspect("{{.Id}}");
    run(0);
    assert_ne!(inspect("{{.Id}}"), first_id, "the container was not recreated");
    assert_eq!(inspect("{{.State.Health.Status}}"), "healthy");
    assert_eq!(settings(&d, "web"), before, "settings changed in the recreate");
    assert_eq!(d.ok(&["exec", "web", "cat", "/data/file", &format!("/usr/share/{PACKAGE}/version")]), format!("kept\n{PACKAGE} 1.1\n"));
    let patched_image = d.ok(&["image", "inspect", "-f", "{{.Id}}", "web:1"]).trim().to_string();
    assert_eq!(inspect("{{.Image}}"), patched_image);
    let st = status(&state);
    let t = target(&st, "web");
    assert_eq!((t["kind"].as_str(), t["last_action"].as_str(), t["pending_security"].as_u64()), (Some("container"), Some("patched"), Some(0)), "{st:#}");
    assert!(t["last_exposure_seconds"].as_i64().is_some_and(|s| (0..600).contains(&s)), "the closed window is remembered: {t:#}");
    let told = events();
    assert_eq!(told.len(), 1, "{told:#?}");
    let e = &told[0];
    assert_eq!((e["event"].as_str(), e["target"]["kind"].as_str(), e["target"]["name"].as_str(), e["target"]["image"].as_str()), (Some("patched"), Some("container"), Some("web"), Some("web:1")), "{e:#}");
    assert_eq!((e["packages"][0]["package"].as_str(), e["packages"][0]["candidate"].as_str()), (Some(PACKAGE), Some("1.1")), "{e:#}");
    assert_eq!(e["exposure_seconds"], t["last_exposure_seconds"], "the window the patch closed");

    // A fix whose new version fails the health check: rolled back.
    live.publish("1.2", true);
    let good_id = inspect("{{.Id}}");
    run(3);
    assert_eq!(inspect("{{.Id}}"), good_id, "the old container is not the one running");
    assert_eq!(inspect("{{.State.Running}}"), "true");
    assert_eq!(d.ok(&["image", "inspect", "-f", "{{.Id}}", "web:1"]).trim(), patched_image, "the name holds the refused patch");
    let names = d.ok(&["ps", "-a", "--format", "{{.Names}}"]);
    assert_eq!(names.trim(), "web", "a container was left behind: {names}");
    let st = status(&state);
    let t = target(&st, "web");
    assert_eq!((t["last_action"].as_str(), t["rollbacks"].as_u64(), t["pending_security"].as_u64()), (Some("rolled-back"), Some(1), Some(1)), "{st:#}");
    assert!(t["last_reason"].as_str().unwrap().contains("health"), "{t:#}");
    let told = events();
    assert_eq!(told.len(), 2, "{told:#?}");
    let e = &told[1];
    assert_eq!((e["event"].as_str(), e["target"]["name"].as_str(), e["packages"][0]["candidate"].as_str()), (Some("rolled-back"), Some("web"), Some("1.2")), "{e:#}");
    assert!(e["reason"].as_str().unwrap().contains("health") && e["exposure_seconds"].as_i64().is_some(), "{e:#}");

    // Not retried until a newer fix appears.
    let out = run(3);
    assert!(String::from_utf8_lossy(&out.stdout).contains("not retried"), "{}", String::from_utf8_lossy(&out.stdout));
    assert_eq!(events().len(), 2, "a set not retried is not told again");
    assert_eq!(inspect("{{.Id}}"), good_id);
    live.publish("1.3", false);
    run(0);
    assert_eq!(d.ok(&["exec", "web", "cat", &format!("/usr/share/{PACKAGE}/version")]).trim(), format!("{PACKAGE} 1.3"));
    assert_eq!(target(&status(&state), "web")["last_action"], "patched");
}

#[test]
fn a_killed_pass_is_repaired_by_the_next() {
    let LiveHost { d, live, work, cache, state } = LiveHost::start("web:1");
    d.ok(&["run", "-d", "--name", "web", "web:1", "sleep", "infinity"]);
    let config = work.join("freshen.toml");
    std::fs::write(&config, "settle = \"20s\"\n").unwrap();
    let args = ["run", "--config", config.to_str().unwrap(), "--state", state.to_str().unwrap(), "--docker-host", &d.host];
    live.publish("1.1", false);
    let mut child = freshen_command(&args, &cache).spawn().unwrap();
    // SIGKILL while the replacement settles: the old one is stopped under
    // its temporary name.
    let mut seen = false;
    for _ in 0..1200 {
        if d.ok(&["ps", "-a", "--format", "{{.Names}}"]).lines().any(|n| n == "web.freshen-old") {
            seen = true;
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    assert!(seen, "the recreate never started");
    child.kill().unwrap();
    child.wait().unwrap();
    // The replacement is removed so that the repair has to put the old one back.
    d.ok(&["rm", "-f", "web"]);
    let out = freshen(&args, &cache);
    assert!(matches!(out.status.code(), Some(0 | 3)), "{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    let names = d.ok(&["ps", "--format", "{{.Names}}"]);
    assert_eq!(names.trim(), "web", "{names}");
    assert!(!d.ok(&["ps", "-a", "--format", "{{.Names}}"]).contains("freshen-old"));
}

/// A container created from an image id is left alone by default, and
/// with `pinned = "patch"` recreated from freshen's name for the patch.
#[test]
fn a_container_pinned_to_an_image_id_is_patched_when_configured() {
    let LiveHost { d, live, work, cache, state } = LiveHost::start("web:1");
    let id = d.ok(&["image", "inspect", "-f", "{{.Id}}", "web:1"]).trim().to_string();
    d.ok(&["run", "-d", "--name", "pinned", &id, "sleep", "infinity"]);
    let skip = work.join("skip.toml");
    std::fs::write(&skip, "settle = \"2s\"\n").unwrap();
    let patch = work.join("patch.toml");
    std::fs::write(&patch, "settle = \"2s\"\npinned = \"patch\"\n").unwrap();
    let run = |config: &std::path::Path, code| expect(&["run", "--config", config.to_str().unwrap(), "--state", state.to_str().unwrap(), "--docker-host", &d.host], &cache, code);
    live.publish("1.1", false);
    let out = run(&skip, 0);
    assert!(String::from_utf8_lossy(&out.stdout).contains("pinned = \"patch\""), "{}", String::from_utf8_lossy(&out.stdout));
    let first = d.ok(&["inspect", "-f", "{{.Id}}", "pinned"]);
    run(&patch, 0);
    assert_ne!(d.ok(&["inspect", "-f", "{{.Id}}", "pinned"]), first, "not recreated");
    let name = format!("freshen/pinned:{}", &id["sha256:".len().."sha256:".len() + 12]);
    assert_eq!(d.ok(&["inspect", "-f", "{{.Config.Image}}", "pinned"]).trim(), name);
    assert_eq!(d.ok(&["exec", "pinned", "cat", &format!("/usr/share/{PACKAGE}/version")]).trim(), format!("{PACKAGE} 1.1"));
    let rollback = format!("freshen/pinned:freshen-rollback-{}", &id["sha256:".len().."sha256:".len() + 12]);
    assert_eq!(d.ok(&["image", "inspect", "-f", "{{.Id}}", &rollback]).trim(), id, "the original is kept for a rollback");
    assert_eq!(target(&status(&state), "pinned")["last_action"], "patched");
}
