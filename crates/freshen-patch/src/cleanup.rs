//! Leaving nothing behind: the work directories of this process are
//! registered so that Ctrl-C can unmount and remove them, and those of
//! processes that died (SIGKILL, power loss) are reaped by the next run.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Mutex;

static ACTIVE: Mutex<Vec<PathBuf>> = Mutex::new(Vec::new());

/// Mount points a work directory may hold, innermost first.
const MOUNTS: &[&str] = &["test-merged", "merged", "lower"];

pub(crate) fn register(work: &Path) {
    if let Ok(mut a) = ACTIVE.lock() {
        a.push(work.to_path_buf());
    }
}

pub(crate) fn unregister(work: &Path) {
    if let Ok(mut a) = ACTIVE.lock() {
        a.retain(|w| w != work);
    }
}

/// Stops containers, unmounts and removes one work directory.
pub fn remove_work_dir(work: &Path) {
    let runtime = crate::sandbox::find_runtime(None).ok();
    for bundle in ["bundle", "test-bundle"] {
        let state = work.join(bundle).join("state");
        let (Some(rt), Ok(entries)) = (&runtime, std::fs::read_dir(&state)) else { continue };
        for e in entries.flatten() {
            let _ = Command::new(rt)
                .arg("--root")
                .arg(&state)
                .args(["delete", "--force"])
                .arg(e.file_name())
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status();
        }
    }
    for m in MOUNTS {
        let _ = rustix::mount::unmount(work.join(m), rustix::mount::UnmountFlags::DETACH);
    }
    // The scratch tmpfs of each sandbox run.
    if let Ok(entries) = std::fs::read_dir(work) {
        for e in entries.flatten() {
            if e.file_name().to_string_lossy().starts_with("run-") {
                let _ = rustix::mount::unmount(e.path(), rustix::mount::UnmountFlags::DETACH);
            }
        }
    }
    let _ = std::fs::remove_dir_all(work);
}

/// Cleans up every work directory of this process (for a Ctrl-C handler).
pub fn cleanup_active() {
    let dirs: Vec<PathBuf> = ACTIVE.lock().map(|a| a.clone()).unwrap_or_default();
    for d in dirs {
        remove_work_dir(&d);
    }
}

/// Removes the work directories of processes that no longer run.
pub fn reap_stale(work_root: &Path) {
    let Ok(entries) = std::fs::read_dir(work_root) else { return };
    for e in entries.flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        let Some(pid) = name.split('-').next().and_then(|p| p.parse::<u32>().ok()) else { continue };
        if pid != std::process::id() && !Path::new(&format!("/proc/{pid}")).exists() {
            remove_work_dir(&e.path());
        }
    }
}
