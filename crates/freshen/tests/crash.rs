//! Crash safety: SIGKILL during unpack, during apt and during layer
//! writing leaves the source untouched and nothing under the output name,
//! and the next run (reaping what the dead one left) succeeds; Ctrl-C
//! during apt reports once, exits 130 and leaves nothing behind, and so
//! do SIGTERM and SIGHUP sent to freshen alone (exit 143, 129).
//! Needs root, runc and Debian's archive.

mod common;

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use common::*;

fn any_entry(dir: &Path, pred: &dyn Fn(&Path) -> bool) -> bool {
    let Ok(rd) = std::fs::read_dir(dir) else { return false };
    rd.flatten().any(|e| pred(&e.path()))
}

/// Starts `freshen patch` in a process group of its own (as a shell runs
/// a foreground job) and returns it as soon as `cond` holds.
fn start_until(args: &[&str], cache: &Path, what: &str, cond: &dyn Fn() -> bool) -> std::process::Child {
    use std::os::unix::process::CommandExt;
    let mut child = Command::new(env!("CARGO_BIN_EXE_freshen")).args(args).env("FRESHEN_CACHE", cache).stderr(std::process::Stdio::piped()).process_group(0).spawn().unwrap();
    let start = Instant::now();
    loop {
        if cond() {
            return child;
        }
        if let Some(status) = child.try_wait().unwrap() {
            panic!("freshen finished ({status}) before it was {what}");
        }
        assert!(start.elapsed() < Duration::from_secs(300), "never saw freshen {what}");
        std::thread::sleep(Duration::from_millis(2));
    }
}

/// The tests here time signals against a run's phases: one at a time, so
/// that another test's patch on the same two cores does not move them.
fn one_at_a_time() -> std::sync::MutexGuard<'static, ()> {
    static ONE: std::sync::Mutex<()> = std::sync::Mutex::new(());
    ONE.lock().unwrap_or_else(|e| e.into_inner())
}

/// Starts `freshen patch` and SIGKILLs it as soon as `cond` holds.
fn kill_when(args: &[&str], cache: &Path, what: &str, cond: &dyn Fn() -> bool) {
    let mut child = start_until(args, cache, what, cond);
    child.kill().unwrap();
    child.wait().unwrap();
}

/// apt is running in the sandbox of a run with this cache.
fn running_apt(cache: &Path) -> bool {
    any_entry(&cache.join("work"), &|w| std::fs::metadata(w.join("bundle/output.log")).map(|m| m.len() > 0).unwrap_or(false))
}

#[test]
fn sigkill_at_any_phase_then_a_normal_run_succeeds() {
    let _one = one_at_a_time();
    let stale = StaleImage::new("base");
    let (layout, image) = (stale.layout.clone(), stale.image.clone());
    let cache = stale.cache.clone();
    let index_before = std::fs::read(layout.join("index.json")).unwrap();
    let out = format!("oci:{}:patched", layout.display());
    let args = ["patch", image.as_str(), "-o", out.as_str()];
    let work_dirs = cache.join("work");

    kill_when(&args, &cache, "unpacking a layer", &|| any_entry(&cache.join("layers"), &|p| p.file_name().unwrap().to_string_lossy().starts_with(".tmp-")));
    kill_when(&args, &cache, "running apt", &|| running_apt(&cache));
    kill_when(&args, &cache, "writing the layer", &|| {
        any_entry(&work_dirs, &|w| any_entry(w, &|run| run.file_name().unwrap().to_string_lossy().starts_with("run-") && any_entry(&run.join("blobs"), &|_| true)))
    });

    // The source is untouched and nothing was written under the output name.
    assert_eq!(std::fs::read(layout.join("index.json")).unwrap(), index_before);
    // The next run succeeds and cleans up after the dead ones.
    let o = freshen(&args, &cache);
    assert_eq!(o.status.code(), Some(0), "{}{}", String::from_utf8_lossy(&o.stdout), String::from_utf8_lossy(&o.stderr));
    let (code, _) = scan_json(&out, &["--only", "security"], &cache);
    assert_eq!(code, 0);
    assert!(!any_entry(&work_dirs, &|_| true), "work directories left behind");
    let mounts = std::fs::read_to_string("/proc/mounts").unwrap();
    assert!(!mounts.contains(cache.to_str().unwrap()), "mounts left behind");
}

#[test]
fn ctrl_c_during_apt_prints_one_error_and_exits_130() {
    let _one = one_at_a_time();
    let stale = StaleImage::new("base");
    let (layout, image, cache) = (stale.layout.clone(), stale.image.clone(), stale.cache.clone());
    let out = format!("oci:{}:patched", layout.display());
    let child = start_until(&["patch", image.as_str(), "-o", out.as_str()], &cache, "running apt", &|| running_apt(&cache));
    // Ctrl-C on a terminal: SIGINT to the whole foreground process group,
    // runc and apt included, so the command fails while the handler cleans up.
    let st = Command::new("kill").args(["-INT", "--", &format!("-{}", child.id())]).status().unwrap();
    assert!(st.success());
    let o = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(130), "{stderr}");
    let errors: Vec<&str> = stderr.lines().filter(|l| l.starts_with("error")).collect();
    assert_eq!(errors, ["error: interrupted"], "{stderr}");
    assert!(!any_entry(&cache.join("work"), &|_| true), "work directories left behind");
    let mounts = std::fs::read_to_string("/proc/mounts").unwrap();
    assert!(!mounts.contains(cache.to_str().unwrap()), "mounts left behind");
}

/// SIGTERM (systemd, `timeout`) and SIGHUP sent to freshen alone, not to
/// its process group, while apt runs in the sandbox: the container is
/// stopped, its mounts and work directory removed, exit 128 + signal.
#[test]
fn sigterm_and_sighup_during_apt_stop_the_sandbox_and_exit_128_plus_signal() {
    let _one = one_at_a_time();
    let stale = StaleImage::new("base");
    let (layout, image, cache) = (stale.layout.clone(), stale.image.clone(), stale.cache.clone());
    let out = format!("oci:{}:patched", layout.display());
    // The second run names its runtime: a wrapper around runc that logs
    // its calls, so the cleanup is seen to use it (`--runtime` honoured).
    let wrapper_dir = tempdir();
    let (wrapper, log) = (wrapper_dir.join("logging-runc"), wrapper_dir.join("calls"));
    std::fs::write(&wrapper, format!("#!/bin/sh\necho \"$*\" >> {}\nexec runc \"$@\"\n", log.display())).unwrap();
    assert!(Command::new("chmod").arg("755").arg(&wrapper).status().unwrap().success());
    for (signal, code) in [("-TERM", 143), ("-HUP", 129)] {
        let mut args = vec!["patch", image.as_str(), "-o", out.as_str()];
        if signal == "-HUP" {
            args.extend(["--runtime", wrapper.to_str().unwrap()]);
        }
        let child = start_until(&args, &cache, "running apt", &|| running_apt(&cache));
        let pid = child.id();
        let cgroup = format!("/freshen/freshen-{pid}-");
        let in_container = || -> Vec<String> {
            let procs = std::fs::read_dir("/proc").unwrap().flatten().filter(|e| e.file_name().to_string_lossy().bytes().all(|b| b.is_ascii_digit()));
            procs.filter(|e| std::fs::read_to_string(e.path().join("cgroup")).is_ok_and(|c| c.contains(&cgroup))).map(|e| e.file_name().to_string_lossy().into_owned()).collect()
        };
        assert!(!in_container().is_empty(), "the container of {pid} is not running: the test proves nothing");
        assert!(Command::new("kill").args([signal, &pid.to_string()]).status().unwrap().success());
        let o = child.wait_with_output().unwrap();
        let stderr = String::from_utf8_lossy(&o.stderr);
        assert_eq!(o.status.code(), Some(code), "{signal}: {stderr}");
        let errors: Vec<&str> = stderr.lines().filter(|l| l.starts_with("error")).collect();
        assert_eq!(errors, ["error: interrupted"], "{stderr}");
        assert!(in_container().is_empty(), "{signal}: processes of the container left: {:?}", in_container());
        assert!(!any_entry(&cache.join("work"), &|_| true), "{signal}: work directories left behind");
        let mounts = std::fs::read_to_string("/proc/self/mountinfo").unwrap();
        assert!(!mounts.contains(cache.to_str().unwrap()), "{signal}: mounts left behind");
        assert!(!layout.join("index.json").exists() || !std::fs::read_to_string(layout.join("index.json")).unwrap().contains("\"patched\""), "{signal}: an output was written");
    }
    let calls = std::fs::read_to_string(&log).unwrap();
    assert!(calls.lines().any(|l| l.contains("delete --force")), "the cleanup did not stop the container with --runtime: {calls}");
}

/// Work directories are reaped by their lock, not by their PID: a live run
/// in another PID namespace sharing the cache (its PID unknown here) keeps
/// its directory while another run starts, and a dead run's directory is
/// reaped although a process with its PID is alive (PID 1).
#[test]
fn reaping_decides_by_the_lock_of_the_live_run() {
    let _one = one_at_a_time();
    use std::os::unix::process::CommandExt;
    let stale = StaleImage::new("base");
    let (layout, image, cache) = (stale.layout.clone(), stale.image.clone(), stale.cache.clone());
    let dead = cache.join("work/1-42");
    std::fs::create_dir_all(&dead).unwrap();
    std::fs::write(dead.join("left"), "by a run that died").unwrap();
    // A PID that no process here has, for the run in its own PID namespace.
    let pid = (30000..32000).find(|p| !Path::new(&format!("/proc/{p}")).exists()).unwrap();
    let first_out = format!("oci:{}:first", layout.display());
    let script = format!("echo {} > /proc/sys/kernel/ns_last_pid && \"$0\" \"$@\"", pid - 1);
    let first = Command::new("unshare")
        .args(["--pid", "--fork", "--mount-proc", "sh", "-c", &script, env!("CARGO_BIN_EXE_freshen"), "patch", &image, "-o", &first_out])
        .env("FRESHEN_CACHE", &cache)
        .stderr(std::process::Stdio::piped())
        .process_group(0)
        .spawn()
        .unwrap();
    let start = Instant::now();
    let live = cache.join("work").join(format!("{pid}-"));
    let live_dir = || std::fs::read_dir(cache.join("work")).unwrap().flatten().map(|e| e.path()).find(|p| p.to_string_lossy().starts_with(live.to_str().unwrap()));
    while !running_apt(&cache) {
        assert!(start.elapsed() < Duration::from_secs(300), "the run in its own PID namespace never ran apt");
        std::thread::sleep(Duration::from_millis(20));
    }
    let live_dir = live_dir().expect("the run in its own PID namespace has the PID asked for");
    assert!(!Path::new(&format!("/proc/{pid}")).exists(), "PID {pid} is in use here: the test proves nothing");

    // Another run starts with the same cache: it reaps before making its own.
    let second_out = format!("oci:{}:second", layout.display());
    let second = start_until(&["patch", image.as_str(), "-o", second_out.as_str()], &cache, "making its work directory", &|| {
        any_entry(&cache.join("work"), &|w| !w.starts_with(&live_dir) && w.file_name().unwrap().to_string_lossy().split('-').next() != Some("1") && w.is_dir())
    });
    assert!(Command::new("kill").args(["-TERM", &second.id().to_string()]).status().unwrap().success());
    let o = second.wait_with_output().unwrap();
    assert_eq!(o.status.code(), Some(143), "{}", String::from_utf8_lossy(&o.stderr));
    assert!(!dead.exists(), "the dead run's directory was kept because PID 1 is alive");
    assert!(live_dir.exists(), "the live run's directory was reaped");

    let o = first.wait_with_output().unwrap();
    assert_eq!(o.status.code(), Some(0), "the live run failed: {}", String::from_utf8_lossy(&o.stderr));
    let left: Vec<_> = std::fs::read_dir(cache.join("work")).unwrap().flatten().filter(|e| e.path().is_dir()).map(|e| (e.file_name(), std::fs::read_dir(e.path()).map(|d| d.flatten().map(|e| e.file_name()).collect::<Vec<_>>()).unwrap_or_default())).collect();
    let find = Command::new("find").arg(cache.join("work")).args(["-printf", "%p %TT\\n"]).output().unwrap();
    assert!(left.is_empty(), "work directories left behind (live run {}): {left:?}\n{}", live_dir.display(), String::from_utf8_lossy(&find.stdout));
}

/// Scratch files and spools in the cache's `tmp` are reaped by the lock
/// their process holds (`.owner-OWNER`), not by a PID: a live owner's
/// spool stays, a dead owner's files and lock go.
#[test]
fn scratch_files_are_reaped_by_their_owner_lock() {
    let _one = one_at_a_time();
    let r = repo();
    let root = Rootfs::new(DEBIAN_OS);
    root.with_sources(&format!("deb {} stable main\n", r.url));
    root.write("var/lib/dpkg/status", &stanza("hello", "1.0-1"));
    let image = pack(&[(&root.dir, "debootstrap")], &tempdir().join("oci"), "app");
    let cache = tempdir().join("cache");
    let tmp = cache.join("tmp");
    std::fs::create_dir_all(&tmp).unwrap();
    let (live, dead, dead_lock) = (tmp.join("freshen-spool-999999.1-0"), tmp.join("freshen-export-999998.2-0.tar"), tmp.join(".owner-999997.3"));
    std::fs::create_dir_all(&live).unwrap();
    std::fs::write(live.join("layer"), "in use").unwrap();
    std::fs::write(&dead, "left by a killed run").unwrap();
    std::fs::write(&dead_lock, "").unwrap();
    std::fs::create_dir_all(tmp.join("freshen-spool-999997.3-0")).unwrap();
    let lock = tmp.join(".owner-999999.1");
    let mut holder = Command::new("flock").arg(&lock).args(["sleep", "60"]).spawn().unwrap();
    let start = Instant::now();
    while Command::new("flock").args(["-n"]).arg(&lock).arg("true").status().unwrap().success() {
        assert!(start.elapsed() < Duration::from_secs(10), "flock never took the lock");
        std::thread::sleep(Duration::from_millis(20));
    }
    let (code, _) = scan_json(&image, &[], &cache);
    let _ = holder.kill();
    let _ = holder.wait();
    assert_eq!(code, 3);
    assert!(live.join("layer").exists(), "a live owner's spool was reaped");
    assert!(!dead.exists() && !tmp.join("freshen-spool-999997.3-0").exists(), "a dead owner's scratch was kept");
    assert!(!dead_lock.exists(), "a dead owner's lock was kept");
}
