//! `freshen watch`, scan reuse and `freshen cache prune`: containers of
//! images (the stale bookworm minbase with a source naming only a private
//! copy of the test repository's flat `moving` archive) in Debian's
//! dockerd started by the test. A pass whose images were scanned and whose
//! archives did not publish reuses the recorded scans; publishing (the
//! archive moves from `mover` 1.1 to 1.2) or a new container of a new
//! image calls for a pass of its own; SIGTERM ends the watch cleanly.
//! Needs root, docker.io, mmdebstrap and util-linux's flock.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::*;
use serde_json::Value;

/// A private copy of the flat `moving` archive, at state 1, served.
struct Moving {
    root: PathBuf,
    url: String,
    requests: Arc<AtomicUsize>,
}

impl Moving {
    fn start() -> Moving {
        let root = tempdir();
        for state in ["moving.1", "moving.2"] {
            let st = Command::new("cp").arg("-a").arg(repo().dir.join("repo").join(state)).arg(&root).status().unwrap();
            assert!(st.success());
        }
        std::os::unix::fs::symlink("moving.1", root.join("moving")).unwrap();
        let (url, requests) = serve(root.clone());
        Moving { root, url, requests }
    }

    /// The archive publishes mover 1.2 (a later Last-Modified).
    fn publish(&self) {
        let later = std::time::SystemTime::now() + Duration::from_secs(60);
        std::fs::File::options().write(true).open(self.root.join("moving.2/InRelease")).unwrap().set_modified(later).unwrap();
        let tmp = self.root.join("moving.new");
        std::os::unix::fs::symlink("moving.2", &tmp).unwrap();
        std::fs::rename(&tmp, self.root.join("moving")).unwrap();
    }
}

struct Host {
    d: Dockerd,
    stale: StaleImage,
    moving: Moving,
    state: PathBuf,
    config: PathBuf,
}

impl Host {
    /// dockerd, the archive, and image `app:1` loaded (mover 1.0 installed).
    fn start() -> Host {
        let h = Host { d: Dockerd::start(), stale: StaleImage::new("base"), moving: Moving::start(), state: PathBuf::new(), config: PathBuf::new() };
        let (state, config) = (h.stale.work.join("state"), h.stale.work.join("freshen.toml"));
        std::fs::write(&config, "").unwrap();
        let h = Host { state, config, ..h };
        h.load_image("app:1", "");
        h
    }

    /// Loads an image with mover 1.0 and `marker` (a different marker, a
    /// different image) into the Engine as `name`.
    fn load_image(&self, name: &str, marker: &str) {
        let app = Rootfs { dir: tempdir() };
        app.write("etc/apt/sources.list", &format!("deb {}/moving ./\n", self.moving.url));
        app.write_bytes("etc/apt/trusted.gpg.d/test.gpg", &std::fs::read(repo().dir.join("keys/test.gpg")).unwrap());
        app.write("etc/marker", marker);
        let status = std::fs::read_to_string(stale_rootfs().join("var/lib/dpkg/status")).unwrap();
        app.write("var/lib/dpkg/status", &format!("{}\n\n{}", status.trim_end(), stanza("mover", "1.0")));
        let layout = self.stale.work.join(format!("oci-{}", name.replace(':', "-")));
        let image = pack(&[(&stale_rootfs(), "base"), (&app.dir, "install mover")], &layout, "app");
        let out = freshen(&["copy", &image, &format!("docker-daemon:{name}"), "--docker-host", &self.d.host], &self.stale.cache);
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        let _ = std::fs::remove_dir_all(&app.dir);
    }

    fn container(&self, name: &str, image: &str) {
        self.d.ok(&["run", "-d", "--network", "none", "--name", name, image, "/bin/sleep", "600"]);
    }

    fn args<'a>(&'a self, verb: &'a str) -> Vec<&'a str> {
        vec![verb, "--dry-run", "--log-format", "json", "--config", self.config.to_str().unwrap(), "--state", self.state.to_str().unwrap(), "--docker-host", &self.d.host]
    }

    fn run(&self) -> Vec<Value> {
        let out = freshen(&self.args("run"), &self.stale.cache);
        assert_eq!(out.status.code(), Some(0), "{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
        log_lines(&String::from_utf8_lossy(&out.stderr))
    }

    fn status(&self) -> Value {
        let out = freshen(&["status", "--state", self.state.to_str().unwrap(), "--format", "json"], Path::new("/nonexistent"));
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        serde_json::from_slice(&out.stdout).unwrap()
    }

    /// The candidate of `mover` pending for target `name`, if any.
    fn mover(&self, name: &str) -> Option<String> {
        let s = self.status();
        let t = s["targets"].as_array()?.iter().find(|t| t["name"] == name)?.clone();
        t["fixes"].as_array()?.iter().find(|f| f["package"] == "mover").and_then(|f| f["candidate"].as_str()).map(str::to_string)
    }
}

fn log_lines(stderr: &str) -> Vec<Value> {
    stderr.lines().filter_map(|l| serde_json::from_str(l).ok()).collect()
}

fn count(log: &[Value], message: &str) -> usize {
    log.iter().filter(|l| l["message"] == message).count()
}

#[test]
fn a_pass_reuses_scans_until_the_archive_publishes() {
    let h = Host::start();
    h.container("c1", "app:1");
    h.container("c2", "app:1");
    let log = h.run();
    assert_eq!((count(&log, "scanned"), count(&log, "reused")), (1, 0), "{log:#?}");
    assert_eq!(h.mover("c1").as_deref(), Some("1.1"));

    // Nothing published: one conditional request for the InRelease, no export, no scan.
    let before = h.moving.requests.load(Ordering::SeqCst);
    let started = Instant::now();
    let log = h.run();
    let took = started.elapsed();
    assert_eq!((count(&log, "scanned"), count(&log, "reused")), (0, 1), "{log:#?}");
    assert_eq!(h.moving.requests.load(Ordering::SeqCst) - before, 1, "only the InRelease is asked for again");
    assert_eq!(h.mover("c2").as_deref(), Some("1.1"), "the reused scan keeps what is pending");
    eprintln!("a pass with nothing pending took {took:?}");
    let db = rusqlite::Connection::open(h.state.join("state.db")).unwrap();
    let reused: Vec<i64> = db.prepare("SELECT reused FROM scans ORDER BY id").unwrap().query_map([], |r| r.get(0)).unwrap().map(Result::unwrap).collect();
    assert_eq!(reused, [0, 1]);

    // The archive publishes: the next pass scans again and sees 1.2.
    h.moving.publish();
    let log = h.run();
    assert_eq!((count(&log, "scanned"), count(&log, "reused")), (1, 0), "{log:#?}");
    assert_eq!(h.mover("c1").as_deref(), Some("1.2"));
}

/// Waits up to `secs` for `cond`.
fn wait_for(secs: u64, what: &str, mut cond: impl FnMut() -> bool) {
    let until = Instant::now() + Duration::from_secs(secs);
    while !cond() {
        assert!(Instant::now() < until, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(200));
    }
}

#[test]
fn watch_passes_on_publishing_and_new_containers_and_stops_on_sigterm() {
    let h = Host::start();
    h.container("c1", "app:1");
    let log_path = h.stale.work.join("watch.log");
    let mut args = h.args("watch");
    args.extend(["--interval", "1s"]);
    let mut child = Command::new(env!("CARGO_BIN_EXE_freshen"))
        .args(&args)
        .env("FRESHEN_CACHE", &h.stale.cache)
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&log_path).unwrap())
        .spawn()
        .unwrap();
    let log = || log_lines(&std::fs::read_to_string(&log_path).unwrap_or_default());
    wait_for(120, "the first pass", || h.state.join("state.db").exists() && count(&log(), "pass done") >= 1);
    assert_eq!(h.mover("c1").as_deref(), Some("1.1"));
    // Idle ticks ask the archive, and pass no more.
    std::thread::sleep(Duration::from_secs(3));
    assert_eq!(count(&log(), "pass"), 1, "{:#?}", log());

    h.moving.publish();
    let published = Instant::now();
    wait_for(20, "a pass seeing mover 1.2", || h.mover("c1").as_deref() == Some("1.2"));
    eprintln!("the fix was seen {:?} after it was published", published.elapsed());
    assert!(log().iter().any(|l| l["message"] == "pass" && l["reason"].as_str().is_some_and(|r| r.starts_with("published: ") && r.contains("/moving/InRelease"))), "{:#?}", log());

    // A new container of a new image: scanned without any archive change.
    let passes = count(&log(), "pass done");
    h.load_image("app:2", "two");
    // Loading is an Engine event too: a pass, with nothing new running.
    wait_for(20, "a pass after the load", || count(&log(), "pass done") > passes);
    assert!(log().iter().any(|l| l["message"] == "pass" && l["reason"].as_str().is_some_and(|r| r.starts_with("image load "))), "{:#?}", log());
    let scanned = count(&log(), "scanned");
    h.container("c3", "app:2");
    wait_for(20, "a pass scanning c3's image", || h.mover("c3").is_some());
    assert_eq!(count(&log(), "scanned"), scanned + 1, "only the new image is scanned: {:#?}", log());
    assert!(log().iter().any(|l| l["message"] == "pass" && l["reason"].as_str().is_some_and(|r| r.starts_with("container "))), "{:#?}", log());

    // SIGTERM: exits 0 promptly, every pass recorded as finished.
    let stopped = Instant::now();
    let st = Command::new("kill").args(["-TERM", &child.id().to_string()]).status().unwrap();
    assert!(st.success());
    let code = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break s.code();
        }
        assert!(stopped.elapsed() < Duration::from_secs(10), "watch did not stop");
        std::thread::sleep(Duration::from_millis(50));
    };
    assert_eq!(code, Some(0), "{}", std::fs::read_to_string(&log_path).unwrap());
    let db = rusqlite::Connection::open(h.state.join("state.db")).unwrap();
    let unfinished: i64 = db.query_row("SELECT count(*) FROM passes WHERE finished_at IS NULL", [], |r| r.get(0)).unwrap();
    assert_eq!(unfinished, 0);
    assert!(std::fs::OpenOptions::new().write(true).open(h.state.join("pass.lock")).is_ok());
    let out = freshen(&h.args("run"), &h.stale.cache);
    assert_eq!(out.status.code(), Some(0), "the lock went with the watch: {}", String::from_utf8_lossy(&out.stderr));
}

#[test]
fn sigterm_ends_a_run_after_the_scan_in_flight() {
    let work = tempdir();
    let image = |sources: String| {
        let root = Rootfs::new(DEBIAN_OS);
        root.with_sources(&sources);
        root.write("var/lib/dpkg/status", &stanza("hello", "1.0-1"));
        format!("dir:{}", root.dir.display())
    };
    // The first image's mirror answers nothing for 4 s; the second is never reached.
    let slow = image(format!("deb http://127.0.0.1:{}/debian stable main\n", silent_server()));
    let unreached = image(format!("deb {} stable main\n", repo().url));
    let config = work.join("freshen.toml");
    std::fs::write(&config, format!("images = [{slow:?}, {unreached:?}]\n")).unwrap();
    let state = work.join("state");
    let args = ["run", "--dry-run", "--config", config.to_str().unwrap(), "--state", state.to_str().unwrap(), "--docker-host", "unix:///nonexistent/docker.sock"];
    let child = Command::new(env!("CARGO_BIN_EXE_freshen")).args(args).env("FRESHEN_CACHE", work.join("cache")).stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().unwrap();
    let pid = child.id().to_string();
    wait_for(20, "the pass to start", || std::fs::read_to_string(state.join("pass.lock")).is_ok_and(|p| p.trim() == pid));
    std::thread::sleep(Duration::from_millis(500));
    let signalled = Instant::now();
    assert!(Command::new("kill").args(["-TERM", &pid]).status().unwrap().success());
    let out = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(signalled.elapsed() < Duration::from_secs(8), "{stderr}");
    assert!(stderr.contains("stopping once the step in flight is done"), "{stderr}");
    assert_eq!(out.status.code(), Some(1), "the slow image failed: {stderr}");
    let db = rusqlite::Connection::open(state.join("state.db")).unwrap();
    let (finished, error): (Option<String>, String) = db.query_row("SELECT finished_at, error FROM passes", [], |r| Ok((r.get(0)?, r.get(1)?))).unwrap();
    assert!(finished.is_some() && error.contains("interrupted"), "{error}");
    let targets: Vec<String> = db.prepare("SELECT name FROM targets").unwrap().query_map([], |r| r.get(0)).unwrap().map(Result::unwrap).collect();
    assert_eq!(targets, [slow], "the scan in flight is recorded, the image not reached is not");
}

#[test]
fn cache_prune_keeps_what_is_held_and_refuses_bad_limits() {
    let cache = tempdir();
    for d in ["layers/held", "layers/idle", "debs", "indexes"] {
        std::fs::create_dir_all(cache.join(d)).unwrap();
    }
    std::fs::write(cache.join("layers/held/f"), vec![0u8; 1 << 16]).unwrap();
    std::fs::write(cache.join("layers/idle/f"), vec![0u8; 1 << 16]).unwrap();
    std::fs::write(cache.join("debs/a.deb"), b"deb").unwrap();
    std::fs::write(cache.join("indexes/0123"), b"Package: x\n").unwrap();
    // A running patch holds a shared lock on each layer it has mounted.
    let mut holder = Command::new("flock").arg("-s").arg(cache.join("layers/held")).args(["sleep", "60"]).spawn().expect("flock (util-linux)");
    std::thread::sleep(Duration::from_millis(300));
    let out = freshen(&["cache", "prune", "--max-size", "0", "--cache", cache.to_str().unwrap()], Path::new("/nonexistent"));
    let _ = holder.kill();
    let _ = holder.wait();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.starts_with("removed 3 entries") && stdout.contains("1 in use kept"), "{stdout}");
    assert!(cache.join("layers/held/f").exists());
    for gone in ["layers/idle", "debs/a.deb", "indexes/0123"] {
        assert!(!cache.join(gone).exists(), "{gone} is still there");
    }
    let prune = |flag: &str, value: &str| -> Output { freshen(&["cache", "prune", flag, value, "--cache", cache.to_str().unwrap()], Path::new("/nonexistent")) };
    assert_error(&prune("--max-size", "20Q"), &["--max-size", "invalid size `20Q`"]);
    assert_error(&prune("--max-size", "1.5G"), &["--max-size"]);
    assert_error(&prune("--max-age", "30"), &["--max-age", "invalid duration `30`"]);
    assert!(cache.join("layers/held/f").exists(), "a refused prune removed something");
}

#[test]
fn bad_intervals_are_refused() {
    let work = tempdir();
    let state = work.join("state");
    for (interval, needle) in [("5x", "invalid duration `5x`"), ("0s", "longer than 0s"), ("", "invalid duration")] {
        let out = freshen(&["watch", "--interval", interval, "--state", state.to_str().unwrap(), "--docker-host", "unix:///nonexistent/docker.sock"], &work.join("cache"));
        assert_error(&out, &["--interval", needle]);
    }
    assert!(!state.exists(), "a refused watch started a pass");
}
