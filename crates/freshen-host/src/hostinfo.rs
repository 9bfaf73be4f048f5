//! The host's own patch state, for the end of `status`: whether
//! unattended-upgrades is installed, enabled (apt's
//! `APT::Periodic::Unattended-Upgrade`, read with apt's own configuration
//! rules) and when it last ran, and whether a reboot is required
//! (`/run/reboot-required`, written by Debian's and Ubuntu's packages).

use std::path::Path;

use chrono::{DateTime, Utc};
use freshen_apt::aptconf::AptConf;
use freshen_image::Interest;
use freshen_patch::View;
use serde::Serialize;

/// What `status` says of the host.
#[derive(Clone, Debug, Default, Serialize)]
pub struct HostReport {
    pub unattended_upgrades: Unattended,
    pub reboot_required: bool,
    /// The packages that asked for the reboot (`reboot-required.pkgs`).
    pub reboot_packages: Vec<String>,
}

#[derive(Clone, Debug, Default, Serialize)]
pub struct Unattended {
    pub installed: bool,
    /// `APT::Periodic::Unattended-Upgrade` is set to a non-zero interval.
    pub enabled: bool,
    /// When its log was last written.
    pub last_run: Option<DateTime<Utc>>,
}

const APT_PATHS: &[&str] = &["etc/apt/apt.conf", "etc/apt/apt.conf.d/"];
const BINARY: &str = "usr/bin/unattended-upgrade";
const LOG: &str = "var/log/unattended-upgrades/unattended-upgrades.log";

impl HostReport {
    /// Reads the host below `root` (`/` on a real host).
    pub fn read(root: &Path) -> HostReport {
        let interest = Interest { paths: APT_PATHS, keep_versions: &[] };
        let conf = freshen_image::read_dir_files(root, &interest).ok().and_then(|files| AptConf::load(&View(files)).ok()).unwrap_or_default();
        // "always" or a number of days; 0 (or unset) disables it.
        let enabled = conf.find("APT::Periodic::Unattended-Upgrade").is_some_and(|v| {
            let v = v.trim();
            v.eq_ignore_ascii_case("always") || v.parse::<f64>().is_ok_and(|d| d > 0.0)
        });
        let last_run = std::fs::metadata(root.join(LOG)).and_then(|m| m.modified()).ok().map(DateTime::<Utc>::from);
        let run = ["run", "var/run"].iter().map(|d| root.join(d)).find(|d| d.is_dir());
        let reboot_required = run.as_ref().is_some_and(|d| d.join("reboot-required").exists());
        let reboot_packages = run
            .and_then(|d| std::fs::read_to_string(d.join("reboot-required.pkgs")).ok())
            .map(|t| {
                let mut v: Vec<String> = t.lines().map(str::trim).filter(|l| !l.is_empty()).map(str::to_string).collect();
                v.sort();
                v.dedup();
                v
            })
            .unwrap_or_default();
        HostReport { unattended_upgrades: Unattended { installed: root.join(BINARY).exists(), enabled, last_run }, reboot_required, reboot_packages }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_what_debian_writes() {
        let root = tempfile::tempdir().unwrap();
        let r = root.path();
        assert!(!HostReport::read(r).unattended_upgrades.enabled);
        for (path, text) in [
            ("etc/apt/apt.conf.d/20auto-upgrades", "APT::Periodic::Update-Package-Lists \"1\";\nAPT::Periodic::Unattended-Upgrade \"1\";\n"),
            ("usr/bin/unattended-upgrade", "#!/usr/bin/python3\n"),
            (LOG, "2026-11-29 06:25:01,123 INFO No packages found that can be upgraded unattended\n"),
            ("run/reboot-required", "*** System restart required ***\n"),
            ("run/reboot-required.pkgs", "linux-image-6.1.0-28-amd64\nlibc6\nlibc6\n"),
        ] {
            std::fs::create_dir_all(r.join(path).parent().unwrap()).unwrap();
            std::fs::write(r.join(path), text).unwrap();
        }
        let h = HostReport::read(r);
        assert!(h.unattended_upgrades.installed && h.unattended_upgrades.enabled && h.unattended_upgrades.last_run.is_some());
        assert!(h.reboot_required);
        assert_eq!(h.reboot_packages, ["libc6", "linux-image-6.1.0-28-amd64"]);
        // A later file turning it off wins, as in apt.
        std::fs::write(r.join("etc/apt/apt.conf.d/99off"), "APT::Periodic::Unattended-Upgrade \"0\";\n").unwrap();
        assert!(!HostReport::read(r).unattended_upgrades.enabled);
    }
}
