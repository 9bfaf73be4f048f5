//! Recreating plain containers on a patched image against Debian's real
//! Docker Engine (`freshen_host::recreate`): every `docker run` setting
//! kept (networks with aliases and a static address, volumes named and
//! anonymous with their data, ports, Compose labels, limits, health
//! check, stop signal and timeout), refusals rolled back (unhealthy, an
//! exit, a signal), and the repair of what a crash left half-way,
//! including a replacing process killed with SIGKILL while it waits.
//! The patch in place is played by `docker commit` of a variant under the
//! same name and tag. Needs root, docker.io, mmdebstrap and Debian's archive.

mod common;

use std::cell::Cell;
use std::time::{Duration, Instant};

use common::*;
use freshen_host::recreate::{self, Accept, Repair, Rollback};
use freshen_image::Transport;
use serde_json::{json, Value};

/// A test Engine holding the stale bookworm minbase as `stale:latest`.
struct Engine {
    d: Dockerd,
    t: Transport,
    _stale: StaleImage,
}

fn engine() -> Engine {
    let stale = StaleImage::new("mmdebstrap --variant=minbase bookworm");
    let d = Dockerd::start();
    let out = freshen(&["copy", &stale.image, "docker-daemon:stale:latest", "--docker-host", &d.host], &stale.cache);
    assert!(out.status.success(), "freshen copy: {}", String::from_utf8_lossy(&out.stderr));
    let t = Transport { docker_host: Some(d.host.clone()), tmp_dir: stale.work.clone(), ..Transport::default() };
    Engine { d, t, _stale: stale }
}

impl Engine {
    /// Commits `from` changed by `script` as `to` (moving that name when
    /// it exists, as a patch in place does); returns the new image id.
    fn variant(&self, from: &str, to: &str, script: &str) -> String {
        self.d.ok(&["run", "--name", "freshen-build", "--network", "none", from, "sh", "-ec", script]);
        self.d.ok(&["commit", "freshen-build", to]);
        self.d.ok(&["rm", "freshen-build"]);
        self.image_id(to)
    }

    fn image_id(&self, name: &str) -> String {
        self.d.ok(&["image", "inspect", "-f", "{{.Id}}", name]).trim().to_string()
    }

    fn inspect(&self, name: &str) -> Value {
        let v: Value = serde_json::from_str(&self.d.ok(&["inspect", "--type", "container", name])).unwrap();
        v[0].clone()
    }

    /// Names of all containers, sorted.
    fn names(&self) -> Vec<String> {
        let mut n: Vec<String> = self.d.ok(&["ps", "-a", "--format", "{{.Names}}"]).lines().map(str::to_string).collect();
        n.sort();
        n
    }

    fn wait_health(&self, name: &str, want: &str) {
        let begun = Instant::now();
        loop {
            let status = self.d.ok(&["inspect", "-f", "{{.State.Health.Status}}", name]);
            if status.trim() == want {
                return;
            }
            assert!(begun.elapsed() < Duration::from_secs(60), "{name} is still {status} after 60 s, not {want}");
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    fn running(&self, name: &str) -> bool {
        self.inspect(name)["State"]["Running"] == true
    }
}

fn never() -> bool {
    false
}

/// The settings `docker run` was given, as inspect shows them, with the
/// container's own short id (an alias the Engine adds) left out.
fn settings(c: &Value) -> Value {
    let short = &c["Id"].as_str().unwrap()[..12];
    let pick = |v: &Value, keys: &[&str]| Value::Object(keys.iter().map(|k| (k.to_string(), v[*k].clone())).collect());
    let networks: serde_json::Map<String, Value> = c["NetworkSettings"]["Networks"]
        .as_object()
        .unwrap()
        .iter()
        .map(|(name, n)| {
            let aliases: Vec<&Value> = n["Aliases"].as_array().unwrap().iter().filter(|a| a.as_str() != Some(short)).collect();
            (name.clone(), json!({"Aliases": aliases, "IPAMConfig": n["IPAMConfig"]}))
        })
        .collect();
    let mut mounts: Vec<Value> = c["Mounts"].as_array().unwrap().iter().map(|m| pick(m, &["Type", "Name", "Destination", "RW"])).collect();
    mounts.sort_by_key(|m| m["Destination"].to_string());
    json!({
        "Name": c["Name"],
        "Config": pick(&c["Config"], &["User", "WorkingDir", "Entrypoint", "Cmd", "Env", "Labels", "Image", "Healthcheck", "StopSignal", "StopTimeout", "ExposedPorts", "Volumes"]),
        "HostConfig": pick(&c["HostConfig"], &["NetworkMode", "PortBindings", "RestartPolicy", "Memory", "LogConfig"]),
        "Networks": networks,
        "Mounts": mounts,
        "Ports": c["NetworkSettings"]["Ports"],
    })
}

/// A container with every setting the issue names, replaced on the
/// patched image: all kept, the anonymous volume's data there, a new id on
/// the name's new image. Before that, a signal during the wait rolls back.
#[test]
fn replaces_a_container_keeping_every_setting() {
    let e = engine();
    let d = &e.d;
    let old_image = e.variant("stale:latest", "app:1", "echo 1 > /version");
    d.ok(&["network", "create", "--subnet", "172.30.0.0/24", "front"]);
    d.ok(&["network", "create", "back"]);
    d.ok(&["volume", "create", "named"]);
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let publish = format!("127.0.0.1:{port}:80");
    let compose_image = format!("com.docker.compose.image={old_image}");
    #[rustfmt::skip]
    d.ok(&[
        "run", "-d", "--name", "web", "--network", "front", "--network-alias", "web-alias", "--ip", "172.30.0.10",
        "-p", &publish, "-v", "named:/data", "-v", "/anon", "-e", "A=1", "-u", "1000:1000", "-w", "/srv",
        "--entrypoint", "/bin/sh", "-l", "com.docker.compose.project=proj", "-l", "com.docker.compose.service=web", "-l", &compose_image,
        "--restart", "unless-stopped", "-m", "64m", "--log-opt", "max-size=1m", "--stop-signal", "SIGINT", "--stop-timeout", "3",
        "--health-cmd", "test -f /version", "--health-interval", "1s",
        "app:1", "-c", "echo started as $(id -u); trap 'echo INT > /data/stopped-by; exit 0' INT; while :; do sleep 0.2; done",
    ]);
    d.ok(&["network", "connect", "--alias", "back-alias", "back", "web"]);
    d.ok(&["exec", "-u", "0", "web", "sh", "-c", "echo kept > /anon/data && echo named > /data/file && chmod 777 /data"]);
    e.wait_health("web", "healthy");
    let before = e.inspect("web");
    let new_image = e.variant("app:1", "app:1", "echo 2 > /version");
    assert_ne!(old_image, new_image);

    // A signal before anything is done changes nothing; one while the new
    // container starts rolls back to the old one.
    let refused = recreate::replace(&e.t, "web", &Accept::default(), &|| true).unwrap_err();
    assert_eq!((refused.rollback.clone(), refused.reason.contains("interrupted")), (Rollback::NotNeeded, true), "{refused}");
    let asked = Cell::new(0);
    let stop = || {
        asked.set(asked.get() + 1);
        asked.get() > 1
    };
    let refused = recreate::replace(&e.t, "web", &Accept::default(), &stop).unwrap_err();
    assert_eq!(refused.rollback, Rollback::Done, "{refused}");
    assert!(refused.reason.contains("interrupted before the new container was accepted"), "{refused}");
    let back = e.inspect("web");
    assert_eq!((&back["Id"], back["State"]["Running"].as_bool()), (&before["Id"], Some(true)));
    assert_eq!(e.names(), ["web"]);
    assert_eq!(d.ok(&["exec", "web", "cat", "/data/stopped-by"]), "INT\n", "the old container was not stopped with its stop signal");
    d.ok(&["exec", "web", "rm", "/data/stopped-by"]);

    let accept = Accept { settle: Duration::from_secs(1), health_timeout: Duration::from_secs(60) };
    let begun = Instant::now();
    let replaced = recreate::replace(&e.t, "web", &accept, &never).unwrap_or_else(|r| panic!("{r}: {:?}", r.logs));
    let seconds = begun.elapsed().as_secs_f64();
    let after = e.inspect("web");
    assert_eq!(after["Id"], replaced.new_id.as_str());
    assert_ne!(after["Id"], before["Id"]);
    assert_eq!((after["Image"].as_str(), replaced.image_id.as_str()), (Some(new_image.as_str()), new_image.as_str()));
    assert_eq!(after["State"]["Health"]["Status"], "healthy");
    let mut want = settings(&before);
    want["Config"]["Labels"]["com.docker.compose.image"] = new_image.clone().into();
    assert_eq!(settings(&after), want, "settings differ after the replacement");
    assert_ne!(after["Config"]["Hostname"], before["Config"]["Hostname"], "the old short id was pinned as hostname");
    assert_eq!(after["NetworkSettings"]["Networks"]["front"]["IPAddress"], "172.30.0.10");
    assert_eq!(d.ok(&["exec", "web", "cat", "/anon/data", "/data/file", "/version"]), "kept\nnamed\n2\n");
    assert_eq!(d.ok(&["exec", "web", "cat", "/data/stopped-by"]), "INT\n", "the old container was not stopped with its stop signal");
    assert_eq!(d.ok(&["logs", "web"]).trim(), "started as 1000");
    assert_eq!(e.names(), ["web"], "the old container is removed once the new one is accepted");
    eprintln!("replaced in {seconds:.1} s");
}

/// A new container whose health check fails, and one without a health
/// check that exits: both refused with the reason and its log lines, the
/// new container removed, the old one running again under its name.
#[test]
fn refuses_unhealthy_and_exiting_containers_and_rolls_back() {
    let e = engine();
    let d = &e.d;
    e.variant("stale:latest", "app:1", "touch /ok");
    let script = "echo starting; if [ ! -f /ok ]; then echo 'no /ok: giving up' >&2; sleep 2; exit 3; fi; exec sleep 600";
    d.ok(&["run", "-d", "--name", "checked", "--network", "none", "--stop-timeout", "1", "--health-cmd", "test -f /ok", "--health-interval", "1s", "--health-retries", "2", "app:1", "sleep", "600"]);
    d.ok(&["run", "-d", "--name", "plain", "--network", "none", "--stop-timeout", "1", "app:1", "sh", "-c", script]);
    e.wait_health("checked", "healthy");
    let ids = (e.inspect("checked")["Id"].clone(), e.inspect("plain")["Id"].clone());
    e.variant("app:1", "app:1", "rm /ok");
    let accept = Accept { settle: Duration::from_secs(10), health_timeout: Duration::from_secs(60) };

    let refused = recreate::replace(&e.t, "checked", &accept, &never).unwrap_err();
    assert_eq!(refused.rollback, Rollback::Done, "{refused}");
    assert!(refused.reason.contains("unhealthy"), "{refused}");
    let checked = e.inspect("checked");
    assert_eq!((&checked["Id"], checked["State"]["Running"].as_bool()), (&ids.0, Some(true)));

    let begun = Instant::now();
    let refused = recreate::replace(&e.t, "plain", &accept, &never).unwrap_err();
    // Its stop timeout (1 s), the new container's 2 s, not the 10 s to settle.
    assert!(begun.elapsed() < Duration::from_secs(8), "an exit is refused at once, not after the settle time: {:?}", begun.elapsed());
    assert_eq!(refused.rollback, Rollback::Done, "{refused}");
    assert!(refused.reason.contains("exit code 3"), "{refused}");
    let mut logs = refused.logs.clone();
    logs.sort(); // stdout and stderr, each in order, are copied apart
    assert_eq!(logs, ["no /ok: giving up", "starting"]);
    assert_eq!(refused.to_string(), "plain: the new container exited (exit code 3) (rolled back: the old container runs again)");
    let plain = e.inspect("plain");
    assert_eq!((&plain["Id"], plain["State"]["Running"].as_bool()), (&ids.1, Some(true)));
    assert_eq!(e.names(), ["checked", "plain"], "the refused containers are removed");
}

/// What a crash leaves: the old container parked under its temporary name
/// (stopped, or still running) with no replacement, with a leftover that
/// never started, with a healthy running replacement, with an unhealthy
/// one.
#[test]
fn repairs_interrupted_replacements() {
    let e = engine();
    let d = &e.d;
    let run = |name: &str, health: &str| {
        d.ok(&["run", "-d", "--name", name, "--network", "none", "--health-cmd", health, "--health-interval", "1s", "--health-retries", "1", "stale:latest", "sleep", "600"]);
        e.inspect(name)["Id"].as_str().unwrap().to_string()
    };
    let park = |name: &str| {
        d.ok(&["stop", "-t", "0", name]);
        d.ok(&["rename", name, &format!("{name}.freshen-old")]);
    };
    let alone = run("alone", "true");
    park("alone");
    // Killed after the rename, before the stop.
    let early = run("early", "true");
    d.ok(&["rename", "early", "early.freshen-old"]);
    let leftover = run("leftover", "true");
    park("leftover");
    d.ok(&["create", "--name", "leftover", "--network", "none", "stale:latest", "sleep", "600"]);
    run("done", "true");
    park("done");
    let replacement = run("done", "true");
    let bad = run("bad", "true");
    park("bad");
    run("bad", "false");
    e.wait_health("done", "healthy");
    e.wait_health("bad", "unhealthy");

    let mut repaired: Vec<(String, Result<Repair, String>)> = recreate::repair(&e.t).unwrap().into_iter().map(|r| (r.name, r.result)).collect();
    repaired.sort_by(|a, b| a.0.cmp(&b.0));
    assert_eq!(
        repaired,
        [
            ("alone".into(), Ok(Repair::Restored)),
            ("bad".into(), Ok(Repair::RolledBack)),
            ("done".into(), Ok(Repair::Finished)),
            ("early".into(), Ok(Repair::Restored)),
            ("leftover".into(), Ok(Repair::Restored))
        ]
    );
    assert_eq!(e.names(), ["alone", "bad", "done", "early", "leftover"]);
    for (name, id) in [("alone", &alone), ("early", &early), ("leftover", &leftover), ("done", &replacement), ("bad", &bad)] {
        assert_eq!(e.inspect(name)["Id"], id.as_str(), "{name}");
        assert!(e.running(name), "{name} is not running");
    }
    assert!(recreate::repair(&e.t).unwrap().is_empty(), "a second repair finds nothing");
}

/// The Engine [`replace_until_killed`] works on, set by its parent.
const CHILD_HOST: &str = "FRESHEN_TEST_RECREATE_HOST";

/// A pass killed (SIGKILL) while the new container starts: the old one is
/// parked and stopped, the new one runs but is not yet healthy. The next
/// repair rolls back to the old container.
#[test]
fn a_replacement_killed_while_waiting_is_repaired() {
    let e = engine();
    let d = &e.d;
    e.variant("stale:latest", "app:1", "touch /ok");
    let health = ["--health-cmd", "test -f /ok", "--health-interval", "1s", "--health-retries", "1000"];
    d.ok(&[&["run", "-d", "--name", "web", "--network", "none", "--stop-timeout", "1"], &health[..], &["app:1", "sleep", "600"]].concat());
    e.wait_health("web", "healthy");
    let old = e.inspect("web")["Id"].clone();
    e.variant("app:1", "app:1", "rm /ok");

    let mut child = std::process::Command::new(std::env::current_exe().unwrap())
        .args(["--ignored", "--exact", "replace_until_killed", "--nocapture"])
        .env(CHILD_HOST, &d.host)
        .spawn()
        .unwrap();
    let begun = Instant::now();
    while !(e.names() == ["web", "web.freshen-old"] && e.running("web")) {
        assert!(begun.elapsed() < Duration::from_secs(60), "the replacement did not start: {:?}", e.names());
        std::thread::sleep(Duration::from_millis(100));
    }
    child.kill().unwrap(); // SIGKILL
    child.wait().unwrap();
    assert_eq!(e.inspect("web")["State"]["Health"]["Status"], "starting");
    assert!(!e.running("web.freshen-old"));

    let repaired = recreate::repair(&e.t).unwrap();
    assert_eq!(repaired.iter().map(|r| (r.name.as_str(), r.result.clone())).collect::<Vec<_>>(), [("web", Ok(Repair::RolledBack))]);
    assert_eq!(e.names(), ["web"]);
    assert_eq!((e.inspect("web")["Id"].clone(), e.running("web")), (old, true));
}

/// Replaces `web` and waits (long) for it: run in a child process that
/// [`a_replacement_killed_while_waiting_is_repaired`] kills.
#[test]
#[ignore = "run by a_replacement_killed_while_waiting_is_repaired"]
fn replace_until_killed() {
    let t = Transport { docker_host: Some(std::env::var(CHILD_HOST).unwrap()), ..Transport::default() };
    let accept = Accept { settle: Duration::from_secs(600), health_timeout: Duration::from_secs(600) };
    let r = recreate::replace(&t, "web", &accept, &never);
    panic!("the replacement ended before it was killed: {r:?}");
}
