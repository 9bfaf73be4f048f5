//! What an image (or host) says about its packages: OS identity, the dpkg
//! database, apt sources, pins and trusted keys, read from a file view.

use crate::aptconf::{dir_files, AptConf};
use crate::error::{Error, Result};
use crate::keyring::Keyring;
use crate::phasing::Phasing;
use crate::preferences::{parse_preferences, Pin};
use crate::sources::{parse_list, parse_sources, SourceEntry};
use crate::status::{attribute_layers, parse_status, Installed};

/// Read access to a root filesystem (an image's merged layers, or a directory).
pub trait RootView {
    /// Contents of a regular file, following symlinks within the root.
    fn read(&self, path: &str) -> Option<&[u8]>;
    /// Names in a directory, sorted.
    fn list(&self, dir: &str) -> Vec<String>;
    /// The layer that wrote a path, if the view has layers.
    fn layer_of(&self, path: &str) -> Option<usize>;
    /// Modification time of a path, seconds since the epoch.
    fn mtime(&self, path: &str) -> Option<u64>;
    /// Every version of `var/lib/dpkg/status`, (layer, content), bottom first.
    fn status_versions(&self) -> Vec<(usize, &[u8])>;
}

/// The paths [`System::load`] reads: exact paths, or prefixes ending in `/`.
pub const PATHS: &[&str] = &[
    "etc/os-release",
    "usr/lib/os-release",
    "etc/debian_version",
    "etc/lsb-release",
    "var/lib/dpkg/status",
    "var/lib/dpkg/status.d/",
    "var/lib/dpkg/arch",
    "etc/apt/",
    "etc/machine-id",
    "usr/share/keyrings/",
    "var/lib/apt/periodic/",
    "var/log/unattended-upgrades/unattended-upgrades.log",
    "var/run/reboot-required",
    "run/reboot-required",
];

/// Paths whose every layer version is kept (for layer attribution).
pub const VERSIONED_PATHS: &[&str] = &["var/lib/dpkg/status"];

/// OS identity from os-release and friends.
#[derive(Clone, Debug, Default)]
pub struct OsInfo {
    pub id: Option<String>,
    pub version_id: Option<String>,
    pub codename: Option<String>,
    pub pretty_name: Option<String>,
    pub debian_version: Option<String>,
}

/// The package facts of one system.
pub struct System {
    pub os: OsInfo,
    pub installed: Vec<Installed>,
    pub native_arch: String,
    pub foreign_archs: Vec<String>,
    pub sources: Vec<SourceEntry>,
    pub pins: Vec<Pin>,
    /// apt's configuration (`apt.conf`, `apt.conf.d`).
    pub conf: AptConf,
    /// How apt on this system treats phased updates.
    pub phasing: Phasing,
    /// What apt would warn about while reading this configuration.
    pub warnings: Vec<String>,
    /// Keys apt trusts for sources without `Signed-By`.
    pub default_keys: Keyring,
    /// Where the dpkg database was read from.
    pub status_path: String,
}

fn shell_var(text: &str, key: &str) -> Option<String> {
    text.lines().find_map(|l| {
        let (k, v) = l.split_once('=')?;
        (k.trim() == key).then(|| v.trim().trim_matches('"').trim_matches('\'').to_string())
    })
}

fn text<'a>(v: &'a dyn RootView, path: &str) -> Option<std::borrow::Cow<'a, str>> {
    v.read(path).map(String::from_utf8_lossy)
}

impl OsInfo {
    pub fn read(v: &dyn RootView) -> OsInfo {
        let osr = text(v, "etc/os-release").or_else(|| text(v, "usr/lib/os-release")).unwrap_or_default();
        let lsb = text(v, "etc/lsb-release").unwrap_or_default();
        OsInfo {
            id: shell_var(&osr, "ID").or_else(|| shell_var(&lsb, "DISTRIB_ID").map(|s| s.to_lowercase())),
            version_id: shell_var(&osr, "VERSION_ID").or_else(|| shell_var(&lsb, "DISTRIB_RELEASE")),
            codename: shell_var(&osr, "VERSION_CODENAME")
                .or_else(|| shell_var(&osr, "UBUNTU_CODENAME"))
                .or_else(|| shell_var(&lsb, "DISTRIB_CODENAME")),
            pretty_name: shell_var(&osr, "PRETTY_NAME"),
            debian_version: text(v, "etc/debian_version").map(|s| s.trim().to_string()),
        }
    }

    fn describe(&self) -> String {
        match (&self.pretty_name, &self.id) {
            (Some(p), Some(id)) => format!("{p} (ID={id})"),
            (None, Some(id)) => format!("ID={id}"),
            (Some(p), None) => p.clone(),
            (None, None) => "no /etc/os-release".into(),
        }
    }
}

impl System {
    /// Reads everything apt would need from `v`.
    pub fn load(v: &dyn RootView) -> Result<System> {
        let os = OsInfo::read(v);
        let (mut installed, status_path) = if let Some(s) = v.read("var/lib/dpkg/status") {
            let t = std::str::from_utf8(s).map_err(|_| Error::Invalid("/var/lib/dpkg/status is not UTF-8".into()))?;
            let mut inst = parse_status(t, "/var/lib/dpkg/status")?;
            attribute_layers(&mut inst, &v.status_versions());
            (inst, "/var/lib/dpkg/status".to_string())
        } else {
            let mut inst = Vec::new();
            for name in v.list("var/lib/dpkg/status.d") {
                if name.ends_with(".md5sums") {
                    continue;
                }
                let path = format!("var/lib/dpkg/status.d/{name}");
                let Some(data) = v.read(&path) else { continue };
                let mut pkgs = parse_status(&String::from_utf8_lossy(data), &format!("/{path}"))?;
                for p in &mut pkgs {
                    p.layer = v.layer_of(&path);
                }
                inst.extend(pkgs);
            }
            (inst, "/var/lib/dpkg/status.d".to_string())
        };
        if installed.is_empty() {
            let what = if os.id.is_none() && os.pretty_name.is_none() {
                "no dpkg database and no /etc/os-release: this looks like a scratch or non-Linux-distribution image".to_string()
            } else {
                format!("no dpkg database (/var/lib/dpkg/status) in an image of {}: freshen supports Debian and Ubuntu based images", os.describe())
            };
            return Err(Error::Unsupported(what));
        }
        installed.sort_by(|a, b| a.name.cmp(&b.name).then(a.arch.cmp(&b.arch)));
        let native_arch = installed
            .iter()
            .find(|p| p.name == "dpkg")
            .map(|p| p.arch.clone())
            .or_else(|| installed.iter().find(|p| p.arch != "all").map(|p| p.arch.clone()))
            .unwrap_or_else(|| "amd64".into());
        let foreign_archs: Vec<String> = text(v, "var/lib/dpkg/arch")
            .map(|t| t.split_whitespace().filter(|a| *a != native_arch).map(str::to_string).collect())
            .unwrap_or_default();
        let mut sources = Vec::new();
        if let Some(t) = text(v, "etc/apt/sources.list") {
            sources.extend(parse_list(&t, "/etc/apt/sources.list", &native_arch)?);
        }
        for name in v.list("etc/apt/sources.list.d") {
            let path = format!("etc/apt/sources.list.d/{name}");
            let Some(t) = text(v, &path) else { continue };
            if name.ends_with(".list") {
                sources.extend(parse_list(&t, &format!("/{path}"), &native_arch)?);
            } else if name.ends_with(".sources") {
                sources.extend(parse_sources(&t, &format!("/{path}"), &native_arch)?);
            }
        }
        let conf = AptConf::load(v)?;
        let mut pins = Vec::new();
        let mut warnings = Vec::new();
        // apt reads `preferences` first, then `preferences.d` (files with no
        // extension or `.pref`); APT::Default-Release comes before both.
        if let Some(rel) = conf.find("APT::Default-Release").filter(|r| !r.is_empty()) {
            pins.push(Pin::default_release(rel, "APT::Default-Release").map_err(|m| Error::Invalid(format!("APT::Default-Release: {m}")))?);
        }
        let mut pref_files = vec!["etc/apt/preferences".to_string()];
        pref_files.extend(dir_files(v, "etc/apt/preferences.d", "pref"));
        for path in pref_files {
            if let Some(t) = text(v, &path) {
                let prefs = parse_preferences(&t, &format!("/{path}"))?;
                pins.extend(prefs.pins);
                warnings.extend(prefs.warnings);
            }
        }
        let mut default_keys = Keyring::default();
        if let Some(d) = v.read("etc/apt/trusted.gpg") {
            let _ = default_keys.add_file(d);
        }
        for name in v.list("etc/apt/trusted.gpg.d") {
            if name.ends_with(".gpg") || name.ends_with(".asc") {
                if let Some(d) = v.read(&format!("etc/apt/trusted.gpg.d/{name}")) {
                    let _ = default_keys.add_file(d);
                }
            }
        }
        let phasing = Phasing::new(&conf, v.read("etc/machine-id"));
        Ok(System { os, installed, native_arch, foreign_archs, sources, pins, conf, phasing, warnings, default_keys, status_path })
    }

    /// The keys that may sign `source`'s Release file.
    pub fn keys_for(&self, v: &dyn RootView, source: &SourceEntry) -> Result<Keyring> {
        let Some(sb) = &source.signed_by else { return Ok(self.default_keys.clone()) };
        let mut ring = Keyring::default();
        if sb.contains("-----BEGIN PGP PUBLIC KEY BLOCK-----") {
            // deb822 folds the inline key; a line of "." stands for an empty line.
            let key: String = sb.lines().map(|l| if l.trim() == "." { "" } else { l.trim() }).collect::<Vec<_>>().join("\n");
            ring.add_file(key.as_bytes()).map_err(|e| Error::Source { source_name: source.name(), message: format!("unreadable inline Signed-By key: {e}") })?;
            return Ok(ring);
        }
        let mut fprs = Vec::new();
        for item in sb.split(|c: char| c.is_whitespace() || c == ',').filter(|s| !s.is_empty()) {
            if item.starts_with('/') {
                let data = v.read(item.trim_start_matches('/')).ok_or_else(|| Error::Source {
                    source_name: source.name(),
                    message: format!("Signed-By key file {item} is not in the image ({})", source.origin),
                })?;
                ring.add_file(data).map_err(|e| Error::Source { source_name: source.name(), message: format!("unreadable key file {item}: {e}") })?;
            } else {
                fprs.push(item.to_string());
            }
        }
        if !fprs.is_empty() {
            let pool = if ring.keys.is_empty() { &self.default_keys } else { &ring };
            ring = pool.filter_fingerprints(&fprs).map_err(|message| Error::Source { source_name: source.name(), message })?;
        }
        Ok(ring)
    }
}
