//! apt itself as the oracle for a root filesystem: Debian's apt reads the
//! root's own configuration (`APT_CONFIG` points `Dir` at it, so
//! `apt.conf.d`, sources, preferences, keys and `/etc/machine-id` are the
//! image's), with its state in a scratch directory.

use std::path::Path;
use std::process::Command;

use super::{apt_list_after, kept_back, tempdir};

/// What apt says about a root.
#[derive(Debug, Default)]
pub struct AptAnswer {
    /// `apt list --upgradable`: (package, candidate), sorted.
    pub upgradable: Vec<(String, String)>,
    /// `apt-get -s upgrade`: what it would install, (package, version), sorted.
    pub installs: Vec<(String, String)>,
    /// `apt-get -s upgrade`: kept back.
    pub kept_back: Vec<String>,
    /// `apt-get -s upgrade`: deferred due to phasing (apt 2.7 and later;
    /// apt 2.6 lists them as kept back).
    pub deferred: Vec<String>,
}

/// Options of an oracle run.
#[derive(Default)]
pub struct AptRun {
    /// Run apt in a new PID namespace with its own /proc, so apt does not
    /// think it runs in a chroot (apt ignores phasing in a chroot).
    pub own_pid_namespace: bool,
}

/// Runs apt on `root`; panics with apt's output when `apt-get update` fails.
pub fn apt_oracle(root: &Path) -> AptAnswer {
    apt_oracle_with(root, &AptRun::default()).expect("apt-get update")
}

/// Runs apt on `root`; `Err(stderr)` when one of its commands fails.
pub fn apt_oracle_with(root: &Path, run: &AptRun) -> Result<AptAnswer, String> {
    let state = tempdir();
    for d in ["lists/partial", "cache/archives/partial", "log"] {
        std::fs::create_dir_all(state.join(d)).unwrap();
    }
    let conf = state.join("apt.conf");
    std::fs::write(
        &conf,
        format!(
            "Dir \"{r}/\";\nDir::State::status \"{r}/var/lib/dpkg/status\";\nDir::State::Lists \"{s}/lists\";\n\
             Dir::Cache \"{s}/cache\";\nDir::Log \"{s}/log\";\nAPT::Sandbox::User \"root\";\n\
             APT::Architecture \"amd64\";\nAPT::Architectures {{ \"amd64\"; }};\nDebug::NoLocking \"1\";\n",
            r = root.display(),
            s = state.display()
        ),
    )
    .unwrap();
    let apt = |args: &[&str]| {
        let mut cmd = if run.own_pid_namespace {
            let mut c = Command::new("unshare");
            c.args(["--pid", "--fork", "--mount-proc"]).args(args);
            c
        } else {
            let mut c = Command::new(args[0]);
            c.args(&args[1..]);
            c
        };
        cmd.env("APT_CONFIG", &conf).env_remove("SOURCE_DATE_EPOCH").output().unwrap()
    };
    let out = apt(&["apt-get", "update"]);
    if !out.status.success() {
        return Err(String::from_utf8_lossy(&out.stderr).into_owned());
    }
    let list = apt(&["apt", "list", "--upgradable"]);
    if !list.status.success() {
        return Err(String::from_utf8_lossy(&list.stderr).into_owned());
    }
    let mut upgradable: Vec<(String, String)> = String::from_utf8_lossy(&list.stdout)
        .lines()
        .filter(|l| l.contains("[upgradable from"))
        .map(|l| (l.split('/').next().unwrap().to_string(), l.split_whitespace().nth(1).unwrap().to_string()))
        .collect();
    upgradable.sort();
    let sim = apt(&["apt-get", "-s", "upgrade"]);
    if !sim.status.success() {
        return Err(String::from_utf8_lossy(&sim.stderr).into_owned());
    }
    let text = String::from_utf8_lossy(&sim.stdout).into_owned();
    let mut installs: Vec<(String, String)> = text
        .lines()
        .filter_map(|l| l.strip_prefix("Inst "))
        .map(|l| {
            let name = l.split_whitespace().next().unwrap().to_string();
            let version = l.split('(').nth(1).and_then(|r| r.split_whitespace().next()).unwrap_or("").to_string();
            (name, version)
        })
        .collect();
    installs.sort();
    let deferred = apt_list_after(&text, "The following upgrades have been deferred due to phasing");
    Ok(AptAnswer { upgradable, installs, kept_back: kept_back(&text), deferred })
}
