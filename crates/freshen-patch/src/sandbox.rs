//! The sandbox: an overlay mount of an image's cached layers with a fresh
//! upper directory, and a command run in it by an OCI runtime (runc or
//! crun) from a config written with the oci-spec crate.
//!
//! The command runs as root with Docker's default capabilities, in its own
//! PID, mount, IPC, UTS, cgroup and network namespaces (only loopback: apt
//! needs no network, everything was downloaded and verified before), under
//! Docker's default seccomp profile ([`crate::seccomp`]), with
//! `no_new_privileges`, a pids and a memory limit, `/sys` read-only and
//! the paths Docker masks masked. No user namespace: the layer's files
//! must carry the image's own ids, and the runtime Debian 12 ships (runc
//! 1.1) cannot give a mount an id mapping.
//!
//! Privileged operations (mount, unmount, the runtime) are all here.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use oci_spec::runtime::{Capability, LinuxCapabilitiesBuilder, LinuxMemory, LinuxNamespace, LinuxNamespaceType, LinuxPids, Mount, Spec};

use crate::error::{io_err, Error, Result};

/// A mounted overlay; unmounted when dropped.
pub struct Overlay {
    pub merged: PathBuf,
}

fn check_option_path(p: &Path) -> Result<String> {
    let s = p.to_str().ok_or_else(|| Error::Invalid(format!("{}: not UTF-8", p.display())))?;
    if s.contains([',', ':', '\\']) {
        return Err(Error::Invalid(format!("{s}: overlay paths may not contain `,`, `:` or `\\`")));
    }
    Ok(s.to_string())
}

impl Overlay {
    /// Mounts `lowers` (top layer first) with `upper`/`work` at `merged`.
    /// With no upper, the mount is read-only. The layers are given one by
    /// one with the new mount API (`fsconfig` `lowerdir+`, Linux 6.8), so
    /// their number is not bounded by the size of one option string; on
    /// older kernels, one `lowerdir=` option (about 40 layers).
    pub fn mount(lowers: &[PathBuf], upper: Option<(&Path, &Path)>, merged: &Path) -> Result<Overlay> {
        let _guard = crate::cleanup::guard(merged)?;
        std::fs::create_dir_all(merged).map_err(io_err(merged))?;
        if let Some((u, w)) = upper {
            std::fs::create_dir_all(u).map_err(io_err(u))?;
            std::fs::create_dir_all(w).map_err(io_err(w))?;
        } else if lowers.len() == 1 {
            // overlayfs wants two lower layers without an upper: bind instead.
            rustix::mount::mount_bind(&lowers[0], merged).map_err(|e| io_err(merged)(e.into()))?;
            rustix::mount::mount_remount(merged, rustix::mount::MountFlags::BIND | rustix::mount::MountFlags::RDONLY, "")
                .map_err(|e| io_err(merged)(e.into()))?;
            return Ok(Overlay { merged: merged.to_path_buf() });
        }
        match mount_layer_by_layer(lowers, upper, merged) {
            Ok(()) => return Ok(Overlay { merged: merged.to_path_buf() }),
            // No new mount API, or no `lowerdir+` (before Linux 6.8).
            Err(e) if e == rustix::io::Errno::NOSYS || e == rustix::io::Errno::INVAL => {}
            Err(e) => return Err(Error::Invalid(format!("mounting overlay at {}: {e} (freshen patch needs root and overlayfs)", merged.display()))),
        }
        let mut lower_list = Vec::new();
        for l in lowers {
            lower_list.push(check_option_path(l)?);
        }
        let mut data = format!("lowerdir={}", lower_list.join(":"));
        if let Some((u, w)) = upper {
            data.push_str(&format!(",upperdir={},workdir={}", check_option_path(u)?, check_option_path(w)?));
        }
        if data.len() > 4000 {
            return Err(Error::Invalid(format!("too many layers for one overlay mount on this kernel ({} layers; Linux 6.8 or later mounts any number)", lowers.len())));
        }
        let flags = if upper.is_none() { rustix::mount::MountFlags::RDONLY } else { rustix::mount::MountFlags::empty() };
        let data = std::ffi::CString::new(data).map_err(|_| Error::Invalid("overlay options contain NUL".into()))?;
        rustix::mount::mount("overlay", merged, "overlay", flags, Some(data.as_c_str()))
            .map_err(|e| Error::Invalid(format!("mounting overlay at {}: {e} (freshen patch needs root and overlayfs)", merged.display())))?;
        Ok(Overlay { merged: merged.to_path_buf() })
    }
}

/// The overlay through `fsopen`/`fsconfig`/`fsmount`/`move_mount`, one
/// `lowerdir+` per layer (paths need no escaping).
fn mount_layer_by_layer(lowers: &[PathBuf], upper: Option<(&Path, &Path)>, merged: &Path) -> rustix::io::Result<()> {
    use rustix::mount::{fsconfig_create, fsconfig_set_string, fsmount, fsopen, move_mount, FsMountFlags, FsOpenFlags, MountAttrFlags, MoveMountFlags};
    let fs = fsopen("overlay", FsOpenFlags::FSOPEN_CLOEXEC)?;
    for l in lowers {
        fsconfig_set_string(&fs, "lowerdir+", l)?;
    }
    if let Some((u, w)) = upper {
        fsconfig_set_string(&fs, "upperdir", u)?;
        fsconfig_set_string(&fs, "workdir", w)?;
    }
    fsconfig_create(&fs)?;
    let attrs = if upper.is_none() { MountAttrFlags::MOUNT_ATTR_RDONLY } else { MountAttrFlags::empty() };
    let mnt = fsmount(&fs, FsMountFlags::FSMOUNT_CLOEXEC, attrs)?;
    move_mount(&mnt, "", rustix::fs::CWD, merged, MoveMountFlags::MOVE_MOUNT_F_EMPTY_PATH)
}

impl Drop for Overlay {
    fn drop(&mut self) {
        let _ = rustix::mount::unmount(&self.merged, rustix::mount::UnmountFlags::DETACH);
    }
}

/// The largest tmpfs a run's scratch directory gets.
pub const SCRATCH_MAX: u64 = 4 << 30;

/// Makes `dir` a tmpfs when the machine has memory to spare, so dpkg's many
/// small writes do not wait for the disk: its size is half of the memory
/// available, at most [`SCRATCH_MAX`], and it is used only when that is at
/// least 1 GiB and at least `need` bytes (what the upgrade may write).
/// Otherwise `dir` stays on disk. Unmounted by the work directory's
/// cleanup.
pub fn mount_scratch(dir: &Path, need: u64) -> Result<()> {
    let _guard = crate::cleanup::guard(dir)?;
    std::fs::create_dir_all(dir).map_err(io_err(dir))?;
    let available_kb: u64 = std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|m| m.lines().find(|l| l.starts_with("MemAvailable:")).and_then(|l| l.split_whitespace().nth(1)?.parse().ok()))
        .unwrap_or(0);
    let size_kb = (available_kb / 2).min(SCRATCH_MAX >> 10);
    if size_kb < (1 << 20) || size_kb < need >> 10 {
        return Ok(());
    }
    let data = std::ffi::CString::new(format!("size={size_kb}k,mode=0700")).map_err(|_| Error::Invalid("tmpfs options".into()))?;
    // Falls back to the disk if tmpfs cannot be mounted.
    let _ = rustix::mount::mount("tmpfs", dir, "tmpfs", rustix::mount::MountFlags::empty(), Some(data.as_c_str()));
    Ok(())
}

/// A bind mount into the sandbox.
#[derive(Clone, Debug)]
pub struct Bind {
    pub source: PathBuf,
    pub destination: String,
    pub read_only: bool,
}

/// What to run.
pub struct RunSpec {
    pub args: Vec<String>,
    pub env: Vec<String>,
    pub binds: Vec<Bind>,
    pub limits: Limits,
}

/// The sandbox's resource limits.
#[derive(Clone, Copy, Debug)]
pub struct Limits {
    /// Memory in bytes.
    pub memory: u64,
    /// Processes and threads.
    pub pids: i64,
}

impl Default for Limits {
    fn default() -> Limits {
        Limits { memory: 2 << 30, pids: 2048 }
    }
}

/// Paths Docker masks besides those the runtime spec's defaults name.
const MORE_MASKED: &[&str] = &["/proc/interrupts", "/sys/devices/virtual/powercap"];

/// The OCI runtime binary: `--runtime PATH`, else runc or crun on PATH.
pub fn find_runtime(flag: Option<&Path>) -> Result<PathBuf> {
    if let Some(p) = flag {
        return Ok(p.to_path_buf());
    }
    let path = std::env::var_os("PATH").unwrap_or_default();
    for name in ["runc", "crun"] {
        for dir in std::env::split_paths(&path).chain([PathBuf::from("/usr/sbin"), PathBuf::from("/sbin")]) {
            let p = dir.join(name);
            if p.is_file() {
                return Ok(p);
            }
        }
    }
    Err(Error::Invalid("no OCI runtime found: install runc or crun, or pass --runtime PATH".into()))
}

/// Docker's default capability set: what apt and dpkg need (seteuid to
/// `_apt`, chown, file capabilities), and no more.
const CAPS: &[Capability] = &[
    Capability::Chown,
    Capability::DacOverride,
    Capability::Fowner,
    Capability::Fsetid,
    Capability::Kill,
    Capability::Setgid,
    Capability::Setuid,
    Capability::Setpcap,
    Capability::NetBindService,
    Capability::SysChroot,
    Capability::Mknod,
    Capability::AuditWrite,
    Capability::Setfcap,
];

/// Writes the runtime config for running `spec` in `rootfs`.
pub fn write_config(bundle: &Path, rootfs: &Path, id: &str, run: &RunSpec) -> Result<()> {
    let bad = |e: oci_spec::OciSpecError| Error::Invalid(format!("runtime config: {e}"));
    let mut spec = Spec::default();
    spec.set_hostname(Some("freshen".into()));
    let mut root = spec.root().clone().unwrap_or_default();
    root.set_path(rootfs.to_path_buf());
    root.set_readonly(Some(false));
    spec.set_root(Some(root));
    let mut process = spec.process().clone().unwrap_or_default();
    process.set_args(Some(run.args.clone()));
    let mut env = vec!["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin".to_string()];
    env.extend(run.env.iter().cloned());
    process.set_env(Some(env));
    process.set_no_new_privileges(Some(true));
    let caps: std::collections::HashSet<Capability> = CAPS.iter().copied().collect();
    process.set_capabilities(Some(
        LinuxCapabilitiesBuilder::default()
            .bounding(caps.clone())
            .effective(caps.clone())
            .permitted(caps)
            .build()
            .map_err(bad)?,
    ));
    spec.set_process(Some(process));
    // A network namespace of its own (only loopback); no user namespace
    // (see the module's note).
    let mut linux = spec.linux().clone().unwrap_or_default();
    let namespaces: Vec<LinuxNamespace> = [
        LinuxNamespaceType::Pid,
        LinuxNamespaceType::Ipc,
        LinuxNamespaceType::Uts,
        LinuxNamespaceType::Mount,
        LinuxNamespaceType::Network,
        LinuxNamespaceType::Cgroup,
    ]
    .into_iter()
        .map(|t| {
            let mut ns = LinuxNamespace::default();
            ns.set_typ(t);
            ns
        })
        .collect();
    linux.set_namespaces(Some(namespaces));
    linux.set_seccomp(Some(crate::seccomp::profile(std::env::consts::ARCH)?));
    let mut masked = linux.masked_paths().clone().unwrap_or_default();
    masked.extend(MORE_MASKED.iter().map(|p| p.to_string()));
    linux.set_masked_paths(Some(masked));
    let mut resources = linux.resources().clone().unwrap_or_default();
    let mut memory = LinuxMemory::default();
    memory.set_limit(Some(run.limits.memory as i64));
    // Memory and swap together: no swap beyond the limit.
    memory.set_swap(Some(run.limits.memory as i64));
    resources.set_memory(Some(memory));
    let mut pids = LinuxPids::default();
    pids.set_limit(run.limits.pids);
    resources.set_pids(Some(pids));
    linux.set_resources(Some(resources));
    linux.set_cgroups_path(Some(PathBuf::from(format!("/freshen/{id}"))));
    spec.set_linux(Some(linux));
    let mut mounts: Vec<Mount> = spec.mounts().clone().unwrap_or_default();
    mounts.retain(|m| m.destination() != Path::new("/sys/fs/cgroup"));
    for b in &run.binds {
        let mut m = Mount::default();
        m.set_destination(PathBuf::from(&b.destination));
        m.set_typ(Some("bind".into()));
        m.set_source(Some(b.source.clone()));
        let mut opts = vec!["rbind".to_string(), "nosuid".to_string(), "nodev".to_string()];
        if b.read_only {
            opts.push("ro".into());
        }
        m.set_options(Some(opts));
        mounts.push(m);
    }
    spec.set_mounts(Some(mounts));
    crate::cleanup::make_dirs(bundle)?;
    spec.save(bundle.join("config.json")).map_err(bad)?;
    Ok(())
}

/// The output of a sandboxed command.
pub struct RunOutput {
    pub success: bool,
    pub code: Option<i32>,
    pub output: String,
}

impl RunOutput {
    /// `exit N`, or `killed by a signal`.
    pub fn status(&self) -> String {
        self.code.map_or("killed by a signal".into(), |c| format!("exit {c}"))
    }

    /// The last `n` lines of the combined output, for error messages.
    pub fn tail(&self, n: usize) -> String {
        let lines: Vec<&str> = self.output.lines().filter(|l| !l.trim().is_empty()).collect();
        lines[lines.len().saturating_sub(n)..].join(" | ")
    }
}

/// Runs `run` in `rootfs` with the runtime; stdout and stderr are combined.
pub fn run(runtime: &Path, bundle: &Path, rootfs: &Path, id: &str, run: &RunSpec) -> Result<RunOutput> {
    write_config(bundle, rootfs, id, run)?;
    let state = bundle.join("state");
    crate::cleanup::make_dirs(&state)?;
    let log = bundle.join("output.log");
    let out = std::fs::File::create(&log).map_err(io_err(&log))?;
    let err = out.try_clone().map_err(io_err(&log))?;
    let mut cmd = Command::new(runtime);
    cmd.arg("--root").arg(&state).args(["run", "--bundle"]).arg(bundle).arg(id).stdin(Stdio::null()).stdout(out).stderr(err);
    let mut child = crate::cleanup::spawn(&mut cmd, bundle)?;
    let status = child.wait();
    crate::cleanup::untrack(child.id());
    let status = status.map_err(|e| Error::Invalid(format!("cannot wait for {}: {e}", runtime.display())))?;
    let output = String::from_utf8_lossy(&std::fs::read(&log).unwrap_or_default()).into_owned();
    // A container that failed to start may linger in the state dir. Under
    // the guard: the runtime makes its state directory again, so after a
    // stop signal's cleanup (which removes the containers itself) it must
    // not run.
    if let Ok(_g) = crate::cleanup::guard(&state) {
        let _ = Command::new(runtime).arg("--root").arg(&state).args(["delete", "--force", id]).stderr(Stdio::null()).status();
    }
    Ok(RunOutput { success: status.success(), code: status.code(), output })
}
