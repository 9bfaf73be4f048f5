//! Leaving nothing behind: the work directories of this process are
//! registered so that a stop signal can unmount and remove them, and those
//! of processes that died (SIGKILL, power loss) are reaped by the next run.
//!
//! Whether a work directory is alive is decided by a lock, not by its PID:
//! the run holds an exclusive `flock` on `WORK/.lock` for its whole life,
//! and a reaper removes only directories whose lock it can take. A live run
//! in another PID namespace sharing the cache is never reaped, and a dead
//! one is reaped although another process now has its PID. Creating and
//! reaping take `ROOT.lock` (beside the work root) in turn, so a reaper
//! never sees a directory whose lock is not yet held.

use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Mutex;

use rustix::fs::{flock, FlockOperation};

use crate::error::{io_err, Result};

static ACTIVE: Mutex<Vec<PathBuf>> = Mutex::new(Vec::new());

/// Set once a stop signal's cleanup began: no directory is made in a work
/// directory after that ([`make_dirs`]), so none comes back once removed.
static STOPPING: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

/// Held while directories are made or mounted in a work directory, and by
/// a stop signal's cleanup from its start to the process's exit: the two
/// never interleave, and nothing is made or mounted after the cleanup.
static MUTATE: Mutex<()> = Mutex::new(());

/// The right to make directories or mount in a work directory; refused
/// once a stop signal's cleanup began.
pub(crate) fn guard(path: &Path) -> Result<std::sync::MutexGuard<'static, ()>> {
    let g = MUTATE.lock().unwrap_or_else(|e| e.into_inner());
    not_stopping(path)?;
    Ok(g)
}

/// Fails (about `path`) once a stop signal's cleanup began.
fn not_stopping(path: &Path) -> Result<()> {
    match STOPPING.load(std::sync::atomic::Ordering::SeqCst) {
        true => Err(io_err(path)(std::io::Error::new(std::io::ErrorKind::Interrupted, "stopping"))),
        false => Ok(()),
    }
}

/// The runtime processes (`runc run`) this process started, by pidfd: a
/// stop signal's cleanup kills them before it removes their directories,
/// since the runtime makes its state directory's parents again.
static CHILDREN: Mutex<Vec<(u32, std::os::fd::OwnedFd)>> = Mutex::new(Vec::new());

/// Starts `cmd` (under [`guard`], so that no process starts once a stop
/// signal's cleanup began) and tracks it until [`untrack`].
pub(crate) fn spawn(cmd: &mut Command, work: &Path) -> Result<std::process::Child> {
    let _g = guard(work)?;
    let child = cmd.spawn().map_err(|e| crate::error::Error::Invalid(format!("cannot start {}: {e}", Path::new(cmd.get_program()).display())))?;
    // Opened before anyone waits for the child, so the PID is still its.
    if let Some(fd) = rustix::process::Pid::from_raw(child.id() as i32).and_then(|pid| rustix::process::pidfd_open(pid, rustix::process::PidfdFlags::empty()).ok()) {
        CHILDREN.lock().unwrap_or_else(|e| e.into_inner()).push((child.id(), fd));
    }
    Ok(child)
}

/// Stops tracking a child started by [`spawn`] (once it was waited for).
pub(crate) fn untrack(pid: u32) {
    CHILDREN.lock().unwrap_or_else(|e| e.into_inner()).retain(|(p, _)| *p != pid);
}

/// Kills the tracked children and waits until each has exited (without
/// reaping it: the thread that started it does).
fn kill_children() {
    use rustix::process::{pidfd_send_signal, waitid, Signal, WaitId, WaitIdOptions};
    let children = CHILDREN.lock().unwrap_or_else(|e| e.into_inner());
    for (_, fd) in children.iter() {
        if pidfd_send_signal(fd, Signal::KILL).is_ok() {
            let _ = waitid(WaitId::PidFd(std::os::fd::AsFd::as_fd(fd)), WaitIdOptions::EXITED | WaitIdOptions::NOWAIT);
        }
    }
}

/// Makes `path` and its parents inside a work directory (under [`guard`]).
pub(crate) fn make_dirs(path: &Path) -> Result<()> {
    let _g = guard(path)?;
    std::fs::create_dir_all(path).map_err(io_err(path))
}

/// Mount points a work directory may hold, innermost first.
const MOUNTS: &[&str] = &["test-merged", "merged", "lower"];

/// The lock file in each work directory.
const LOCK: &str = ".lock";

/// The OCI runtime a work directory's containers were started with.
const RUNTIME: &str = ".runtime";

/// Opens (creating) `path` and takes an exclusive lock on it, waiting for
/// it when `wait`; `None` when another open file holds it.
fn lock(path: &Path, wait: bool) -> Result<Option<File>> {
    let f = std::fs::OpenOptions::new().read(true).write(true).create(true).truncate(false).open(path).map_err(io_err(path))?;
    let op = if wait { FlockOperation::LockExclusive } else { FlockOperation::NonBlockingLockExclusive };
    match flock(&f, op) {
        Ok(()) => Ok(Some(f)),
        Err(rustix::io::Errno::WOULDBLOCK) => Ok(None),
        Err(e) => Err(io_err(path)(e.into())),
    }
}

/// Creates a work directory under `root` (reaping dead ones first) and
/// returns it with the lock that marks it alive, to be held until it is
/// removed.
pub(crate) fn create(root: &Path, name: &str) -> Result<(PathBuf, File)> {
    std::fs::create_dir_all(root).map_err(io_err(root))?;
    let _root = lock(&root.with_extension("lock"), true)?;
    // Nothing is made once a stop signal's cleanup began (it may already
    // have gone through this process's directories).
    not_stopping(root)?;
    reap_locked(root);
    let dir = root.join(name);
    // Registered before it exists: a stop signal from here on removes it
    // (the handler waits for the root lock this holds; see
    // [`cleanup_active`]).
    register(&dir);
    let made = std::fs::create_dir_all(&dir).map_err(io_err(&dir)).and_then(|()| {
        lock(&dir.join(LOCK), false)?.ok_or_else(|| crate::error::Error::Invalid(format!("{}: locked by another run", dir.display())))
    });
    match made {
        Ok(held) => Ok((dir, held)),
        Err(e) => {
            unregister(&dir);
            Err(e)
        }
    }
}

/// Notes the OCI runtime (`--runtime`, else the one found) that starts
/// containers in `work`, so that whoever cleans up stops them with it.
pub(crate) fn record_runtime(work: &Path, runtime: &Path) -> Result<()> {
    let path = work.join(RUNTIME);
    std::fs::write(&path, runtime.as_os_str().as_encoded_bytes()).map_err(io_err(&path))
}

/// The runtime recorded for `work`, else the one on PATH.
fn runtime_of(work: &Path) -> Option<PathBuf> {
    use std::os::unix::ffi::OsStringExt;
    match std::fs::read(work.join(RUNTIME)) {
        Ok(bytes) if !bytes.is_empty() => Some(PathBuf::from(std::ffi::OsString::from_vec(bytes))),
        _ => crate::sandbox::find_runtime(None).ok(),
    }
}

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
    stop_containers(work);
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
    // Moved aside first: a thread of this process still writing a file by
    // its path (a list, a script, a log) then fails instead of adding an
    // entry while the tree is removed, which would leave it non-empty. What
    // is left under the new name is reaped by the next run (no lock held).
    let mut aside = work.as_os_str().to_owned();
    aside.push(".removed");
    let aside = PathBuf::from(aside);
    let gone = if std::fs::rename(work, &aside).is_ok() { &aside } else { work };
    let _ = std::fs::remove_dir_all(gone);
}

/// Removes (`delete --force`) the containers a work directory's runtime
/// state knows; the runtime process that started each then exits.
fn stop_containers(work: &Path) {
    let runtime = runtime_of(work);
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
}

/// Cleans up every work directory of this process (for a Ctrl-C handler).
/// A directory being made ([`create`] holds its root's lock) is waited
/// for, up to a few seconds, so that it is not made again after removal.
/// A mount, directory or runtime process being made ([`guard`]) is waited
/// for; the guard is then kept until the process exits, so nothing is
/// made or started again. The containers are removed first (each
/// runtime process reaps its container and exits); a runtime process
/// still alive then (one that had not yet recorded its container) is
/// killed, and what it recorded meanwhile removed with the directory.
pub fn cleanup_active() {
    STOPPING.store(true, std::sync::atomic::Ordering::SeqCst);
    let held = MUTATE.lock().unwrap_or_else(|e| e.into_inner());
    let dirs: Vec<PathBuf> = ACTIVE.lock().map(|a| a.clone()).unwrap_or_default();
    for d in &dirs {
        stop_containers(d);
    }
    kill_children();
    for d in &dirs {
        let _root = d.parent().and_then(|root| root_lock_within(root, std::time::Duration::from_secs(5)));
        remove_work_dir(d);
    }
    std::mem::forget(held);
}

/// The root's lock, tried until `wait` has passed.
fn root_lock_within(root: &Path, wait: std::time::Duration) -> Option<File> {
    let until = std::time::Instant::now() + wait;
    loop {
        match lock(&root.with_extension("lock"), false) {
            Ok(Some(f)) => return Some(f),
            Ok(None) if std::time::Instant::now() < until => std::thread::sleep(std::time::Duration::from_millis(10)),
            _ => return None,
        }
    }
}

/// Removes the work directories no live run holds (the root lock held).
fn reap_locked(work_root: &Path) {
    let Ok(entries) = std::fs::read_dir(work_root) else { return };
    for e in entries.flatten() {
        if !e.file_type().is_ok_and(|t| t.is_dir()) {
            continue;
        }
        let dir = e.path();
        // No lock file: a directory whose run died before taking it.
        let held = match std::fs::OpenOptions::new().read(true).open(dir.join(LOCK)) {
            Ok(f) => matches!(flock(&f, FlockOperation::NonBlockingLockExclusive), Err(rustix::io::Errno::WOULDBLOCK)),
            Err(_) => false,
        };
        if !held {
            remove_work_dir(&dir);
        }
    }
}
