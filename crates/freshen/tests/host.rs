//! `freshen run` and `freshen status` on a host: Debian's dockerd started
//! by the test, containers of the stale bookworm minbase (Debian's
//! archive), hermetic images scanned against the signed repository on
//! 127.0.0.1. Discovery by labels, one scan per distinct image, what is
//! recorded and kept across passes, the pass lock, bad configurations and
//! a state database from a newer freshen.
//! Needs root, docker.io, mmdebstrap, setpriv and Debian's archive.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use common::host::{expect, hermetic_image, status, target};
use common::*;
use serde_json::Value;

/// `KIND:NAME` of every target, sorted.
fn names(status: &Value) -> Vec<String> {
    let mut n: Vec<String> = status["targets"].as_array().unwrap().iter().map(|t| format!("{}:{}", t["kind"].as_str().unwrap(), t["name"].as_str().unwrap())).collect();
    n.sort();
    n
}

/// An Alpine-like image: no dpkg database.
fn alpine_image() -> String {
    let alpine = Rootfs::new("NAME=\"Alpine Linux\"\nID=alpine\nVERSION_ID=3.20.0\nPRETTY_NAME=\"Alpine Linux v3.20\"\n");
    alpine.write("lib/apk/db/installed", "P:musl\nV:1.2.5-r0\n");
    pack(&[(&alpine.dir, "alpine")], &tempdir().join("oci"), "a")
}

fn write_config(dir: &Path, name: &str, text: &str) -> PathBuf {
    let p = dir.join(name);
    std::fs::write(&p, text).unwrap();
    p
}

fn toml_list(items: &[&str]) -> String {
    items.iter().map(|i| format!("{i:?}")).collect::<Vec<_>>().join(", ")
}

#[test]
fn discovers_scans_once_and_records_what_runs() {
    let d = Dockerd::start();
    let stale = StaleImage::new("mmdebstrap --variant=minbase bookworm");
    let work = &stale.work;
    expect(&["copy", &stale.image, "docker-daemon:stale:latest", "--docker-host", &d.host], &stale.cache, 0);
    let id = d.ok(&["image", "inspect", "-f", "{{.Id}}", "stale:latest"]).trim().to_string();
    let short_id = &id["sha256:".len().."sha256:".len() + 12];
    for (name, label, image) in [
        ("web1", None, "stale:latest"),
        ("web2", None, "stale:latest"),
        ("off", Some("org.freshen.enable=false"), "stale:latest"),
        ("on", Some("org.freshen.enable=true"), "stale:latest"),
        ("shop.web.1", Some("com.dokku.app-name=shop"), "stale:latest"),
        ("pinned", None, short_id),
    ] {
        let mut args = vec!["run", "-d", "--network", "none", "--name", name];
        if let Some(l) = label {
            args.extend(["--label", l]);
        }
        args.extend([image, "/bin/sleep", "600"]);
        d.ok(&args);
    }
    let (hermetic, alpine) = (hermetic_image(), alpine_image());
    let config = write_config(work, "freshen.toml", &format!("images = [{}]\nhealth_timeout = \"15s\"\n", toml_list(&[&hermetic, &alpine])));
    let state = work.join("state");
    let run = |config: &Path| {
        let args = ["run", "--dry-run", "--config", config.to_str().unwrap(), "--state", state.to_str().unwrap(), "--docker-host", &d.host];
        expect(&args, &stale.cache, 3)
    };

    let out = run(&config);
    let stdout = String::from_utf8_lossy(&out.stdout);
    eprintln!("{stdout}{}", String::from_utf8_lossy(&out.stderr));
    let line = |name: &str| stdout.lines().find(|l| l.split_whitespace().nth(1) == Some(name)).unwrap_or_else(|| panic!("no line for {name}: {stdout}"));
    assert!(line("web1").contains("skipped: dry run: would patch"), "{stdout}");
    assert!(line("pinned").contains("skipped: the container names its image by id"), "{stdout}");
    assert!(!stdout.contains(" off "), "{stdout}");
    let s1 = status(&state);
    let mut want = vec!["container:on", "container:pinned", "container:web1", "container:web2", "dokku-app:shop"].into_iter().map(String::from).collect::<Vec<_>>();
    want.extend([format!("image:{alpine}"), format!("image:{hermetic}")]);
    want.sort();
    assert_eq!(names(&s1), want, "org.freshen.enable=false is left out, the Dokku app is one target");

    // What runs: pending security fixes with their exposure.
    let web1 = target(&s1, "web1");
    assert_eq!((web1["image"].as_str(), web1["image_id"].as_str(), web1["last_action"].as_str()), (Some("stale:latest"), Some(id.as_str()), Some("skipped")));
    assert!(web1["pending_security"].as_u64().unwrap() > 0, "{web1:#}");
    assert!(web1["exposure_seconds"].as_i64().unwrap() >= 0, "{web1:#}");
    assert!(web1["fixes"].as_array().unwrap().iter().any(|f| f["security"] == true && !f["cves"].as_array().unwrap().is_empty()), "no fix names a CVE: {web1:#}");
    assert_eq!(target(&s1, "shop")["pending_security"], web1["pending_security"]);
    let pinned = target(&s1, "pinned");
    assert_eq!((pinned["last_action"].as_str(), pinned["image_id"].as_str()), (Some("skipped"), Some(id.as_str())));
    assert!(pinned["last_reason"].as_str().unwrap().contains("by id"), "{pinned:#}");
    assert_eq!(pinned["fixes"], serde_json::json!([]));
    let unsupported = target(&s1, &alpine);
    assert_eq!(unsupported["last_action"], "skipped");
    assert!(unsupported["last_reason"].as_str().unwrap().contains("unsupported: no dpkg database"), "{unsupported:#}");
    let libfoo = &target(&s1, &hermetic)["fixes"][0];
    assert_eq!((libfoo["package"].as_str(), libfoo["candidate"].as_str()), (Some("libfoo"), Some("1:2.0~rc1-1")));
    assert_eq!(libfoo["cves"], serde_json::json!(["CVE-2026-0999", "CVE-2026-1111"]));
    assert!(libfoo["fixed_on"].as_str().unwrap().starts_with("2026-11-01"), "{libfoo:#}");

    // Five containers of one image (the pinned one is not scanned): one scan.
    let db = rusqlite::Connection::open(state.join("state.db")).unwrap();
    let scans: Vec<(String, i64)> = db.prepare("SELECT source, count(*) FROM scans GROUP BY source ORDER BY source").unwrap().query_map([], |r| Ok((r.get(0)?, r.get(1)?))).unwrap().map(Result::unwrap).collect();
    assert_eq!(scans.len(), 3, "{scans:?}");
    assert!(scans.iter().all(|(_, n)| *n == 1), "{scans:?}");
    assert!(scans.iter().any(|(s, _)| *s == format!("docker-daemon:{id}")), "{scans:?}");

    // A second pass keeps when each fix was first seen.
    std::thread::sleep(Duration::from_millis(1100));
    run(&config);
    let s2 = status(&state);
    let first = |s: &Value, name: &str| target(s, name)["fixes"].as_array().unwrap().iter().map(|f| (f["package"].clone(), f["first_seen"].clone())).collect::<Vec<_>>();
    assert_eq!(first(&s2, "web1"), first(&s1, "web1"));
    assert_eq!(first(&s2, &hermetic), first(&s1, &hermetic));
    assert!(target(&s2, "web1")["last_action_at"].as_str() > target(&s1, "web1")["last_action_at"].as_str());
    assert!(target(&s2, "web1")["exposure_seconds"].as_i64() >= target(&s1, "web1")["exposure_seconds"].as_i64());

    // When the name a container was created with moves to another image,
    // the Engine lists the container by its image's id; it is still the
    // container of `stale:latest`, running the image it started with.
    expect(&["copy", &hermetic, "docker-daemon:stale:latest", "--docker-host", &d.host], &stale.cache, 0);
    let listed = d.ok(&["ps", "--filter", "name=web1", "--format", "{{.Image}}"]);
    assert!(!listed.contains("stale"), "the Engine still lists web1 by name: {listed}");
    run(&config);
    let web1 = target(&status(&state), "web1").clone();
    assert_eq!((web1["image"].as_str(), web1["image_id"].as_str(), web1["last_action"].as_str()), (Some("stale:latest"), Some(id.as_str()), Some("skipped")), "{web1:#}");
    assert!(web1["pending_security"].as_u64().unwrap() > 0, "{web1:#}");

    // `containers = "labelled"`: only those labelled org.freshen.enable=true.
    let labelled = write_config(work, "labelled.toml", "containers = \"labelled\"\n");
    run(&labelled);
    assert_eq!(names(&status(&state)), ["container:on"]);
}

#[test]
fn one_pass_at_a_time_failures_recorded_status_without_root() {
    let work = tempdir();
    let slow = Rootfs::new(DEBIAN_OS);
    slow.with_sources(&format!("deb http://127.0.0.1:{}/debian stable main\n", silent_server()));
    slow.write("var/lib/dpkg/status", &stanza("hello", "1.0-1"));
    let slow_image = format!("dir:{}", slow.dir.display());
    let hermetic = hermetic_image();
    let config = write_config(&work, "freshen.toml", &format!("images = [{}]\n", toml_list(&[&slow_image, &hermetic])));
    let state = work.join("state");
    let cache = work.join("cache");
    let args = ["run", "--dry-run", "--config", config.to_str().unwrap(), "--state", state.to_str().unwrap(), "--docker-host", "unix:///nonexistent/docker.sock"];
    let mut first = Command::new(env!("CARGO_BIN_EXE_freshen")).args(args).env("FRESHEN_CACHE", &cache).stdout(std::process::Stdio::null()).stderr(std::process::Stdio::null()).spawn().unwrap();
    let holder = first.id().to_string();
    let lock = state.join("pass.lock");
    for _ in 0..100 {
        if std::fs::read_to_string(&lock).is_ok_and(|p| p.trim() == holder) {
            break;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    assert_error(&freshen(&args, &cache), &["another freshen pass", &format!("(pid {holder})"), lock.to_str().unwrap()]);
    // Readers do not wait for the pass.
    assert_eq!(status(&state)["targets"], serde_json::json!([]));
    // The first pass goes on past an unreachable Engine and a silent
    // mirror, records both, and fails.
    assert_eq!(first.wait().unwrap().code(), Some(1));
    let s = status(&state);
    assert_eq!(names(&s), [format!("image:{slow_image}"), format!("image:{hermetic}")].into_iter().collect::<std::collections::BTreeSet<_>>().into_iter().collect::<Vec<_>>());
    let failed = target(&s, &slow_image);
    assert_eq!(failed["last_action"], "failed");
    assert!(failed["last_reason"].as_str().unwrap().contains("127.0.0.1"), "{failed:#}");
    assert_eq!(target(&s, &hermetic)["pending_security"], 1);
    // The lock went with its holder.
    expect(&args, &cache, 1);

    // status needs only read access to the state directory.
    for dir in [work.as_path(), state.as_path()] {
        let out = Command::new("chmod").arg("755").arg(dir).output().unwrap();
        assert!(out.status.success());
    }
    let out = Command::new("setpriv")
        .args(["--reuid=65534", "--regid=65534", "--clear-groups", env!("CARGO_BIN_EXE_freshen"), "status", "--format", "json", "--state"])
        .arg(&state)
        .output()
        .expect("setpriv");
    assert!(out.status.success(), "status as nobody: {}", String::from_utf8_lossy(&out.stderr));
    let as_nobody: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(names(&as_nobody), names(&s));
}

#[test]
fn bad_configurations_and_newer_databases_are_refused() {
    let work = tempdir();
    let cache = work.join("cache");
    let state = work.join("state");
    let run = |config: &Path| freshen(&["run", "--dry-run", "--config", config.to_str().unwrap(), "--state", state.to_str().unwrap()], &cache);
    let unknown = write_config(&work, "unknown.toml", "interval = \"5m\"\n\n[dokku]\ncommand = \"dokku\"\nroot = \"/srv\"\n");
    assert_error(&run(&unknown), &[unknown.to_str().unwrap(), ":5:", "dokku.root", "unknown field `root`"]);
    let duration = write_config(&work, "duration.toml", "containers = \"all\"\ninterval = \"5 minutes\"\n");
    assert_error(&run(&duration), &[":2:", "interval", "invalid duration `5 minutes`"]);
    let timeout = write_config(&work, "timeout.toml", "health_timeout = 10\n");
    assert_error(&run(&timeout), &[":1:", "health_timeout"]);
    assert!(!state.exists(), "a refused configuration started a pass");
    // --print-config: the file with the flags over it.
    let good = write_config(&work, "good.toml", "containers = \"labelled\"\ninterval = \"90s\"\n");
    let out = expect(&["run", "--config", good.to_str().unwrap(), "--state", "/srv/st", "--cache", "/srv/cache", "--print-config"], &cache, 0);
    let text = String::from_utf8_lossy(&out.stdout);
    for line in ["containers = \"labelled\"", "interval = \"1m30s\"", "health_timeout = \"2m\"", "settle = \"10s\"", "all = false", "state_dir = \"/srv/st\"", "cache_dir = \"/srv/cache\"", "lib_root = \"/var/lib/dokku\""] {
        assert!(text.lines().any(|l| l == line), "no `{line}` in {text}");
    }

    // A database written by a newer freshen is refused by run and status.
    let empty = write_config(&work, "empty.toml", "");
    expect(&["run", "--dry-run", "--config", empty.to_str().unwrap(), "--state", state.to_str().unwrap(), "--docker-host", "unix:///nonexistent/docker.sock"], &cache, 1);
    let db = rusqlite::Connection::open(state.join("state.db")).unwrap();
    let version: i64 = db.pragma_query_value(None, "user_version", |r| r.get(0)).unwrap();
    assert!(version >= 1);
    db.pragma_update(None, "user_version", version + 1).unwrap();
    drop(db);
    let newer = format!("schema version {} is newer than this freshen understands ({version})", version + 1);
    assert_error(&freshen(&["status", "--state", state.to_str().unwrap()], &cache), &[&newer, "state.db"]);
    assert_error(&run(&empty), &[&newer]);
}
