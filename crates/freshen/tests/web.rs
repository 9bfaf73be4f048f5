//! What `freshen watch --listen` serves, read by real clients: Debian's
//! headless `chromium` loads the status page (DOM checked, screenshots at
//! desktop and phone width written to `target/web-screenshots/`), Debian's
//! `prometheus` scrapes `/metrics` every second and is asked for a
//! target's pending fixes, `/api/status` is `freshen status --format json`.
//! The state is made by real passes over Debian's dockerd and the live
//! security archive (fixtures/live-repo.sh): `app` patched, `web` rolled
//! back (its fix fails the health check), `old` (a container created from
//! an image id, scanned once, left alone) pending.
//! Needs root, docker.io, runc, mmdebstrap, curl, chromium, prometheus.

mod common;

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::host::{expect, status, target};
use common::live::{LiveRepo, PACKAGE};
use common::*;
use serde_json::Value;

/// Child processes killed when the test ends, however it ends.
struct Children(Vec<Child>);

impl Drop for Children {
    fn drop(&mut self) {
        for c in &mut self.0 {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// `curl URL`: (HTTP status, body).
fn get(url: &str) -> (u16, String) {
    let out = Command::new("curl").args(["-s", "-w", "\n%{http_code}", url]).output().expect("curl");
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let (body, code) = text.rsplit_once('\n').unwrap_or(("", "0"));
    (code.trim().parse().unwrap_or(0), body.to_string())
}

fn wait_for(what: &str, timeout: Duration, mut f: impl FnMut() -> Option<String>) -> String {
    let start = Instant::now();
    loop {
        if let Some(v) = f() {
            return v;
        }
        assert!(start.elapsed() < timeout, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(300));
    }
}

/// The state: three containers on the live archive's websrv, after passes
/// that patched `app`, rolled `web` back and left `old` pending.
fn make_state(d: &Dockerd, live: &LiveRepo, work: &Path, cache: &Path, state: &Path) {
    let base = live.base_image(work, "1.0");
    for name in ["web:1", "app:1", "old:1"] {
        expect(&["copy", &base, &format!("docker-daemon:{name}"), "--docker-host", &d.host], cache, 0);
    }
    // Different images for each: patching one leaves the others.
    for (i, name) in ["app:1", "old:1"].into_iter().enumerate() {
        let tmp = format!("tmp{i}");
        d.ok(&["run", "--name", &tmp, name, "sh", "-c", &format!("echo {i} > /etc/marker")]);
        d.ok(&["commit", &tmp, name]);
        d.ok(&["rm", &tmp]);
    }
    let old_id = d.ok(&["image", "inspect", "-f", "{{.Id}}", "old:1"]).trim().to_string();
    d.ok(&["run", "-d", "--network", "none", "--name", "web", "--health-cmd", &format!("test ! -e /usr/share/{PACKAGE}/broken"), "--health-interval", "1s", "--health-start-period", "1s", "web:1", "sleep", "infinity"]);
    d.ok(&["run", "-d", "--network", "none", "--name", "app", "app:1", "sleep", "infinity"]);
    d.ok(&["run", "-d", "--network", "none", "--name", "old", &old_id, "sleep", "infinity"]);
    let config = |pinned: &str| {
        let f = work.join(format!("freshen-{pinned}.toml"));
        std::fs::write(&f, format!("settle = \"2s\"\nhealth_timeout = \"30s\"\npinned = \"{pinned}\"\n")).unwrap();
        f
    };
    let (scan_pinned, skip_pinned) = (config("patch"), config("skip"));
    let run = |config: &Path, extra: &[&str], code| {
        let mut args = vec!["run", "--config", config.to_str().unwrap(), "--state", state.to_str().unwrap(), "--docker-host", &d.host];
        args.extend_from_slice(extra);
        expect(&args, cache, code);
    };
    // A fix: every target seen pending (old, pinned by id, scanned once).
    live.publish("1.1", false);
    run(&scan_pinned, &["--dry-run"], 3);
    // Patched and deployed, except old (pinned: left alone from now on).
    run(&skip_pinned, &[], 0);
    // A fix that fails web's health check: web rolled back, app patched.
    live.publish("1.2", true);
    run(&skip_pinned, &[], 3);
    let st = status(state);
    assert_eq!(target(&st, "app")["last_action"], "patched", "{st:#}");
    assert_eq!(target(&st, "web")["last_action"], "rolled-back", "{st:#}");
    assert_eq!(target(&st, "old")["pending_security"], 1, "{st:#}");
}

/// `chromium --headless` on `url`, with `extra` arguments; its stdout.
fn chromium(url: &str, extra: &[&str], profile: &Path) -> String {
    let out = Command::new("chromium")
        .args(["--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--hide-scrollbars", "--no-first-run"])
        .arg(format!("--user-data-dir={}", profile.display()))
        .args(extra)
        .arg(url)
        .output()
        .expect("chromium (apt-get install chromium)");
    assert!(out.status.success(), "chromium {extra:?}: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[test]
fn status_page_metrics_and_api_from_a_watch() {
    let d = Dockerd::start();
    let live = LiveRepo::start("1.0");
    let work = tempdir();
    let (cache, state) = (work.join("cache"), work.join("state"));
    make_state(&d, &live, &work, &cache, &state);

    // The watch serves what the passes recorded; its own pass cannot reach
    // an Engine, so it changes nothing.
    let port = free_port();
    let addr = format!("127.0.0.1:{port}");
    let empty = work.join("empty.toml");
    std::fs::write(&empty, "interval = \"1h\"\n").unwrap();
    let mut children = Children(Vec::new());
    let watch = freshen_command(&["watch", "--listen", &addr, "--config", empty.to_str().unwrap(), "--state", state.to_str().unwrap(), "--docker-host", "unix:///nonexistent/docker.sock"], &cache)
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(work.join("watch.log")).unwrap())
        .spawn()
        .unwrap();
    children.0.push(watch);
    let base = format!("http://{addr}");
    wait_for("the watch to serve", Duration::from_secs(30), || (get(&format!("{base}/healthz")) == (200, "ok\n".into())).then_some(String::new()));
    assert_eq!(get(&format!("{base}/nope")).0, 404);

    // /api/status is `status --format json` (exposure keeps counting).
    let api: Value = serde_json::from_str(&get(&format!("{base}/api/status")).1).unwrap();
    let cli = status(&state);
    assert_eq!(without_times(api), without_times(cli.clone()));
    // Ordered by open exposure: the exposed targets first.
    let names: Vec<&str> = cli["targets"].as_array().unwrap().iter().map(|t| t["name"].as_str().unwrap()).collect();
    assert_eq!(names.last(), Some(&"app"), "{names:?}");
    let text = String::from_utf8_lossy(&expect(&["status", "--state", state.to_str().unwrap()], Path::new("/nonexistent"), 0).stdout).into_owned();
    let row = |name: &str| text.lines().position(|l| l.split_whitespace().nth(1) == Some(name)).unwrap_or_else(|| panic!("no row {name}: {text}"));
    assert!(row("old") < row("app") && row("web") < row("app"), "{text}");
    let old_line = text.lines().nth(row("old")).unwrap();
    assert!(old_line.contains(&format!("{PACKAGE} CVE-2026-0011")), "the oldest pending fix with its CVE: {text}");
    assert!(text.contains("3 targets, 2 exposed, 2 pending security fixes, longest open exposure "), "{text}");

    // The page in a real browser.
    let profile = work.join("chromium");
    let dom = chromium(&format!("{base}/"), &["--dump-dom"], &profile);
    for name in ["web", "app", "old"] {
        assert!(dom.contains(&format!(r#"id="t-container-{name}""#)), "no row for {name}: {dom}");
    }
    assert!(dom.contains(r#"href="https://security-tracker.debian.org/tracker/CVE-2026-0011""#), "the CVE links to Debian's tracker: {dom}");
    assert!(dom.contains("Rolled back") && dom.contains("Patched") && dom.contains("Exposed"), "{dom}");
    assert!(dom.contains("<svg") && dom.contains(r#"class="bar "#), "the chart with a closed window: {dom}");
    assert!(dom.contains("health"), "the rollback's reason: {dom}");
    let shots = Path::new(env!("CARGO_BIN_EXE_freshen")).parent().unwrap().parent().unwrap().join("web-screenshots");
    std::fs::create_dir_all(&shots).unwrap();
    for (name, size) in [("desktop.png", "1280,1400"), ("phone.png", "390,2400")] {
        let file = shots.join(name);
        let _ = std::fs::remove_file(&file);
        chromium(&format!("{base}/"), &[&format!("--screenshot={}", file.display()), &format!("--window-size={size}")], &profile);
        let png = std::fs::read(&file).unwrap();
        assert!(png.starts_with(b"\x89PNG") && png.len() > 10_000, "{name}");
    }

    // Prometheus scrapes /metrics every second.
    let (metrics_status, metrics) = get(&format!("{base}/metrics"));
    assert_eq!(metrics_status, 200, "{metrics}");
    assert!(metrics.contains("freshen_rollbacks_total 1") && metrics.contains("freshen_pass_duration_seconds_count 1"), "{metrics}");
    let prom_port = free_port();
    let prom_dir = work.join("prometheus");
    std::fs::create_dir_all(&prom_dir).unwrap();
    let config = prom_dir.join("prometheus.yml");
    std::fs::write(&config, format!("global:\n  scrape_interval: 1s\nscrape_configs:\n  - job_name: freshen\n    static_configs:\n      - targets: ['{addr}']\n")).unwrap();
    let prometheus = Command::new("prometheus")
        .arg(format!("--config.file={}", config.display()))
        .arg(format!("--storage.tsdb.path={}", prom_dir.join("data").display()))
        .arg(format!("--web.listen-address=127.0.0.1:{prom_port}"))
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(prom_dir.join("log")).unwrap())
        .spawn()
        .expect("prometheus (apt-get install prometheus)");
    children.0.push(prometheus);
    let query = format!("http://127.0.0.1:{prom_port}/api/v1/query?query=freshen_pending_security_fixes%7Btarget%3D%22old%22%7D");
    let value = wait_for("prometheus to scrape freshen", Duration::from_secs(60), || {
        let (code, body) = get(&query);
        let v: Value = serde_json::from_str(&body).ok().filter(|_| code == 200)?;
        let r = v["data"]["result"].as_array()?.first()?.clone();
        assert_eq!((r["metric"]["kind"].as_str(), r["metric"]["job"].as_str()), (Some("container"), Some("freshen")), "{v:#}");
        r["value"][1].as_str().map(str::to_string)
    });
    assert_eq!(value, "1");

    // SIGTERM: the watch and its server end.
    let pid = children.0[0].id().to_string();
    assert!(Command::new("kill").args(["-TERM", &pid]).status().unwrap().success());
    let start = Instant::now();
    while children.0[0].try_wait().unwrap().is_none() {
        assert!(start.elapsed() < Duration::from_secs(30), "the watch did not stop");
        std::thread::sleep(Duration::from_millis(100));
    }
    assert_ne!(get(&format!("{base}/healthz")).0, 200, "still serving after the watch ended");
}

/// A status document without what moves with the clock.
fn without_times(mut v: Value) -> Value {
    fn strip(v: &mut Value) {
        match v {
            Value::Object(m) => {
                m.remove("exposure_seconds");
                m.values_mut().for_each(strip);
            }
            Value::Array(a) => a.iter_mut().for_each(strip),
            _ => {}
        }
    }
    strip(&mut v);
    v
}


#[test]
fn an_address_that_cannot_be_listened_on_is_one_error_line() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = taken.local_addr().unwrap().to_string();
    let work = tempdir();
    let config = work.join("freshen.toml");
    std::fs::write(&config, format!("listen = \"{addr}\"\n")).unwrap();
    let state = work.join("state");
    let out = freshen(&["watch", "--config", config.to_str().unwrap(), "--state", state.to_str().unwrap(), "--docker-host", "unix:///nonexistent/docker.sock"], &work.join("cache"));
    assert_error(&out, &[&format!("listen {addr}: ")]);
    std::fs::write(&config, "listen = \"localhost\"\n").unwrap();
    let out = freshen(&["watch", "--config", config.to_str().unwrap(), "--state", state.to_str().unwrap()], &work.join("cache"));
    assert_error(&out, &["freshen.toml:1: listen: "]);
}
