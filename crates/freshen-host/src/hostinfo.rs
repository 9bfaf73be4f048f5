//! The host's own patch state, for the end of `status`: the facts `scan
//! dir:/` reports (unattended-upgrades installed, enabled by apt's
//! `APT::Periodic::Unattended-Upgrade`, when it last ran; a reboot
//! required), read from the host's root.

use std::path::Path;

use chrono::{DateTime, Utc};
use freshen_apt::HostInfo;
use freshen_apt::system::System;
use freshen_image::Interest;
use freshen_patch::View;
use serde::Serialize;

/// What `status` says of the host.
#[derive(Clone, Debug, Default, Serialize)]
pub struct HostReport {
    /// Why the host could not be read (not Debian or Ubuntu, say).
    pub error: Option<String>,
    pub unattended_upgrades_installed: bool,
    pub unattended_upgrades_enabled: bool,
    pub unattended_upgrades_last_run: Option<DateTime<Utc>>,
    pub reboot_required: bool,
}

impl HostReport {
    /// Reads the host below `root` (`/` on a real host).
    pub fn read(root: &Path) -> HostReport {
        let interest = Interest { paths: freshen_apt::system::PATHS, keep_versions: &[] };
        let view = match freshen_image::read_dir_files(root, &interest) {
            Ok(files) => View(files),
            Err(e) => return HostReport { error: Some(e.to_string()), ..HostReport::default() },
        };
        let system = match System::load(&view) {
            Ok(s) => s,
            Err(e) => return HostReport { error: Some(e.to_string()), ..HostReport::default() },
        };
        let h = HostInfo::read(&view, &system);
        HostReport {
            error: None,
            unattended_upgrades_installed: h.unattended_upgrades_installed,
            unattended_upgrades_enabled: h.unattended_upgrades_enabled,
            unattended_upgrades_last_run: h.unattended_upgrades_last_run.and_then(|s| DateTime::from_timestamp(s as i64, 0)),
            reboot_required: h.reboot_required,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_what_debian_writes() {
        let root = tempfile::tempdir().unwrap();
        let r = root.path();
        let write = |path: &str, text: &str| {
            std::fs::create_dir_all(r.join(path).parent().unwrap()).unwrap();
            std::fs::write(r.join(path), text).unwrap();
        };
        write("etc/os-release", "ID=debian\nVERSION_ID=\"12\"\nVERSION_CODENAME=bookworm\n");
        write("var/lib/dpkg/status", "Package: unattended-upgrades\nStatus: install ok installed\nArchitecture: all\nVersion: 2.9.1+nmu3\n\n");
        assert!(!HostReport::read(r).unattended_upgrades_enabled);
        write("etc/apt/apt.conf.d/20auto-upgrades", "APT::Periodic::Update-Package-Lists \"1\";\nAPT::Periodic::Unattended-Upgrade \"1\";\n");
        write("var/log/unattended-upgrades/unattended-upgrades.log", "2026-11-29 06:25:01,123 INFO No packages found that can be upgraded unattended\n");
        write("run/reboot-required", "*** System restart required ***\n");
        let h = HostReport::read(r);
        assert!(h.error.is_none() && h.unattended_upgrades_installed && h.unattended_upgrades_enabled && h.unattended_upgrades_last_run.is_some(), "{h:?}");
        assert!(h.reboot_required);
        // A later file turning it off wins, as in apt.
        write("etc/apt/apt.conf.d/99off", "APT::Periodic::Unattended-Upgrade \"0\";\n");
        assert!(!HostReport::read(r).unattended_upgrades_enabled);
        assert!(HostReport::read(&r.join("nonexistent")).error.is_some());
    }
}
