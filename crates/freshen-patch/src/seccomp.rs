//! The sandbox's system call filter: Docker's default seccomp profile
//! (moby/profiles `seccomp` v0.2.3, what `docker run` applies), resolved
//! for the sandbox's capability set (Docker's default one) and this
//! machine's architecture. Everything not allowed fails with `EPERM`;
//! `clone3` fails with `ENOSYS` so that the C library falls back to
//! `clone`, whose namespace flags are refused. Without `CAP_SYS_ADMIN` the
//! profile refuses `mount`, `umount2`, `pivot_root`, `unshare`, `setns`,
//! `bpf`, the new mount API, `keyctl` and friends; without the other
//! capabilities, module loading, `reboot`, clock changes, `iopl`/`ioperm`
//! and `syslog`.

use oci_spec::runtime::{Arch, LinuxSeccomp, LinuxSeccompAction, LinuxSeccompArg, LinuxSeccompArgBuilder, LinuxSeccompOperator, LinuxSyscall};

use crate::error::{Error, Result};

/// Allowed for every process (the profile's unconditional list, plus the
/// calls it allows on kernels from 4.8 on: every kernel freshen supports).
const ALLOWED: &[&str] = &[
    "accept", "accept4", "access", "adjtimex", "alarm", "bind", "brk", "cachestat", "capget", "capset", "chdir", "chmod", "chown",
    "chown32", "clock_adjtime", "clock_adjtime64", "clock_getres", "clock_getres_time64", "clock_gettime", "clock_gettime64",
    "clock_nanosleep", "clock_nanosleep_time64", "close", "close_range", "connect", "copy_file_range", "creat", "dup", "dup2", "dup3",
    "epoll_create", "epoll_create1", "epoll_ctl", "epoll_ctl_old", "epoll_pwait", "epoll_pwait2", "epoll_wait", "epoll_wait_old",
    "eventfd", "eventfd2", "execve", "execveat", "exit", "exit_group", "faccessat", "faccessat2", "fadvise64", "fadvise64_64",
    "fallocate", "fanotify_mark", "fchdir", "fchmod", "fchmodat", "fchmodat2", "fchown", "fchown32", "fchownat", "fcntl", "fcntl64",
    "fdatasync", "fgetxattr", "flistxattr", "flock", "fork", "fremovexattr", "fsetxattr", "fstat", "fstat64", "fstatat64", "fstatfs",
    "fstatfs64", "fsync", "ftruncate", "ftruncate64", "futex", "futex_requeue", "futex_time64", "futex_wait", "futex_waitv",
    "futex_wake", "futimesat", "getcpu", "getcwd", "getdents", "getdents64", "getegid", "getegid32", "geteuid", "geteuid32", "getgid",
    "getgid32", "getgroups", "getgroups32", "getitimer", "getpeername", "getpgid", "getpgrp", "getpid", "getppid", "getpriority",
    "getrandom", "getresgid", "getresgid32", "getresuid", "getresuid32", "getrlimit", "get_robust_list", "getrusage", "getsid",
    "getsockname", "getsockopt", "get_thread_area", "gettid", "gettimeofday", "getuid", "getuid32", "getxattr", "getxattrat",
    "inotify_add_watch", "inotify_init", "inotify_init1", "inotify_rm_watch", "io_cancel", "ioctl", "io_destroy", "io_getevents",
    "io_pgetevents", "io_pgetevents_time64", "ioprio_get", "ioprio_set", "io_setup", "io_submit", "ipc", "kill",
    "landlock_add_rule", "landlock_create_ruleset", "landlock_restrict_self", "lchown", "lchown32", "lgetxattr", "link", "linkat",
    "listen", "listmount", "listxattr", "listxattrat", "llistxattr", "_llseek", "lremovexattr", "lseek", "lsetxattr", "lstat",
    "lstat64", "madvise", "map_shadow_stack", "membarrier", "memfd_create", "memfd_secret", "mincore", "mkdir", "mkdirat", "mknod",
    "mknodat", "mlock", "mlock2", "mlockall", "mmap", "mmap2", "mprotect", "mq_getsetattr", "mq_notify", "mq_open",
    "mq_timedreceive", "mq_timedreceive_time64", "mq_timedsend", "mq_timedsend_time64", "mq_unlink", "mremap", "mseal", "msgctl",
    "msgget", "msgrcv", "msgsnd", "msync", "munlock", "munlockall", "munmap", "name_to_handle_at", "nanosleep", "newfstatat",
    "_newselect", "open", "openat", "openat2", "pause", "pidfd_open", "pidfd_send_signal", "pipe", "pipe2", "pkey_alloc",
    "pkey_free", "pkey_mprotect", "poll", "ppoll", "ppoll_time64", "prctl", "pread64", "preadv", "preadv2", "prlimit64",
    "process_mrelease", "process_vm_readv", "process_vm_writev", "pselect6", "pselect6_time64", "ptrace", "pwrite64", "pwritev",
    "pwritev2", "read", "readahead", "readlink", "readlinkat", "readv", "recv", "recvfrom", "recvmmsg", "recvmmsg_time64",
    "recvmsg", "remap_file_pages", "removexattr", "removexattrat", "rename", "renameat", "renameat2", "restart_syscall", "rmdir",
    "rseq", "rt_sigaction", "rt_sigpending", "rt_sigprocmask", "rt_sigqueueinfo", "rt_sigreturn", "rt_sigsuspend",
    "rt_sigtimedwait", "rt_sigtimedwait_time64", "rt_tgsigqueueinfo", "sched_getaffinity", "sched_getattr", "sched_getparam",
    "sched_get_priority_max", "sched_get_priority_min", "sched_getscheduler", "sched_rr_get_interval",
    "sched_rr_get_interval_time64", "sched_setaffinity", "sched_setattr", "sched_setparam", "sched_setscheduler", "sched_yield",
    "seccomp", "select", "semctl", "semget", "semop", "semtimedop", "semtimedop_time64", "send", "sendfile", "sendfile64",
    "sendmmsg", "sendmsg", "sendto", "setfsgid", "setfsgid32", "setfsuid", "setfsuid32", "setgid", "setgid32", "setgroups",
    "setgroups32", "setitimer", "setpgid", "setpriority", "setregid", "setregid32", "setresgid", "setresgid32", "setresuid",
    "setresuid32", "setreuid", "setreuid32", "setrlimit", "set_robust_list", "setsid", "setsockopt", "set_thread_area",
    "set_tid_address", "setuid", "setuid32", "setxattr", "setxattrat", "shmat", "shmctl", "shmdt", "shmget", "shutdown",
    "sigaltstack", "signalfd", "signalfd4", "sigprocmask", "sigreturn", "socketcall", "socketpair", "splice", "stat", "stat64",
    "statfs", "statfs64", "statmount", "statx", "symlink", "symlinkat", "sync", "sync_file_range", "syncfs", "sysinfo", "tee",
    "tgkill", "time", "timer_create", "timer_delete", "timer_getoverrun", "timer_gettime", "timer_gettime64", "timer_settime",
    "timer_settime64", "timerfd_create", "timerfd_gettime", "timerfd_gettime64", "timerfd_settime", "timerfd_settime64", "times",
    "tkill", "truncate", "truncate64", "ugetrlimit", "umask", "uname", "unlink", "unlinkat", "uretprobe", "utime", "utimensat",
    "utimensat_time64", "utimes", "vfork", "vmsplice", "wait4", "waitid", "waitpid", "write", "writev",
    // Allowed by the profile to holders of CAP_SYS_CHROOT, which the
    // sandbox keeps (dpkg's --root, debootstrap-style scripts).
    "chroot",
];

/// Allowed on one architecture only.
const PER_ARCH: &[(&str, &[&str])] = &[("x86_64", &["arch_prctl", "modify_ldt"]), ("aarch64", &["arm_fadvise64_64", "arm_sync_file_range", "sync_file_range2"])];

/// `clone`'s flags that make namespaces (`CLONE_NEWNS | CLONE_NEWCGROUP |
/// CLONE_NEWUTS | CLONE_NEWIPC | CLONE_NEWUSER | CLONE_NEWPID |
/// CLONE_NEWNET`): a `clone` with none of them is allowed.
const NAMESPACE_FLAGS: u64 = 0x7E02_0000;
const EPERM: u32 = 1;
const ENOSYS: u32 = 38;

fn rule(names: &[&str], action: LinuxSeccompAction, errno: Option<u32>, args: Vec<LinuxSeccompArg>) -> LinuxSyscall {
    let mut s = LinuxSyscall::default();
    s.set_names(names.iter().map(|n| n.to_string()).collect());
    s.set_action(action);
    s.set_errno_ret(errno);
    s.set_args((!args.is_empty()).then_some(args));
    s
}

fn arg(index: usize, op: LinuxSeccompOperator, value: u64, value_two: Option<u64>) -> Result<LinuxSeccompArg> {
    let b = LinuxSeccompArgBuilder::default().index(index).op(op).value(value);
    let b = match value_two {
        Some(v) => b.value_two(v),
        None => b,
    };
    b.build().map_err(|e| Error::Invalid(format!("system call filter: {e}")))
}

/// The filter for a process on `arch` (`std::env::consts::ARCH`).
pub fn profile(arch: &str) -> Result<LinuxSeccomp> {
    use LinuxSeccompAction::{ScmpActAllow as Allow, ScmpActErrno as Errno};
    use LinuxSeccompOperator::{ScmpCmpEq as Eq, ScmpCmpGt as Gt, ScmpCmpLt as Lt, ScmpCmpMaskedEq as MaskedEq};
    let architectures = match arch {
        "x86_64" => vec![Arch::ScmpArchX86_64, Arch::ScmpArchX86, Arch::ScmpArchX32],
        "aarch64" => vec![Arch::ScmpArchAarch64, Arch::ScmpArchArm],
        other => return Err(Error::Invalid(format!("no system call filter for architecture {other}: the sandbox runs on x86_64 and aarch64"))),
    };
    let mut syscalls = vec![rule(ALLOWED, Allow, None, vec![])];
    for (a, names) in PER_ARCH {
        if *a == arch {
            syscalls.push(rule(names, Allow, None, vec![]));
        }
    }
    // Sockets of every family but AF_VSOCK (40): no way to the host's
    // hypervisor sockets.
    syscalls.push(rule(&["socket"], Allow, None, vec![arg(0, Lt, 38, None)?]));
    syscalls.push(rule(&["socket"], Allow, None, vec![arg(0, Eq, 39, None)?]));
    syscalls.push(rule(&["socket"], Allow, None, vec![arg(0, Gt, 40, None)?]));
    // personality(2): only the personas the profile allows (PER_LINUX,
    // PER_LINUX32, UNAME26 variants, and the query 0xffffffff).
    for p in [0, 8, 0x20000, 0x20008, 0xffff_ffff] {
        syscalls.push(rule(&["personality"], Allow, None, vec![arg(0, Eq, p, None)?]));
    }
    syscalls.push(rule(&["clone"], Allow, None, vec![arg(0, MaskedEq, NAMESPACE_FLAGS, Some(0))?]));
    syscalls.push(rule(&["clone3"], Errno, Some(ENOSYS), vec![]));
    let mut s = LinuxSeccomp::default();
    s.set_default_action(Errno);
    s.set_default_errno_ret(Some(EPERM));
    s.set_architectures(Some(architectures));
    s.set_syscalls(Some(syscalls));
    Ok(s)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refuses_what_a_container_must_not_do() {
        let p = profile("x86_64").unwrap();
        let allowed: Vec<&str> = p.syscalls().as_ref().unwrap().iter().filter(|s| s.action() == LinuxSeccompAction::ScmpActAllow && s.args().is_none()).flat_map(|s| s.names().iter().map(String::as_str)).collect();
        for refused in ["mount", "umount2", "pivot_root", "unshare", "setns", "bpf", "keyctl", "add_key", "init_module", "finit_module", "kexec_load", "reboot", "open_tree", "move_mount", "fsopen", "perf_event_open", "userfaultfd", "swapon"] {
            assert!(!allowed.contains(&refused), "{refused} is allowed");
        }
        for needed in ["openat", "execve", "chroot", "fchownat", "setresuid", "arch_prctl", "statx", "renameat2"] {
            assert!(allowed.contains(&needed), "{needed} is refused");
        }
        assert!(!allowed.contains(&"arm_fadvise64_64"));
        assert_eq!(p.default_errno_ret(), Some(EPERM));
        assert!(profile("riscv64").is_err());
        // The namespace flags of clone(2), as <linux/sched.h> defines them.
        assert_eq!(NAMESPACE_FLAGS, 0x0002_0000 | 0x0200_0000 | 0x0400_0000 | 0x0800_0000 | 0x1000_0000 | 0x2000_0000 | 0x4000_0000);
    }
}
