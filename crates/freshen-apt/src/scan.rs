//! The scan: system facts + archive offers → pending updates, optionally
//! with the CVE ids and dates their changelogs give.

use std::collections::BTreeMap;
use std::fs::File;
use std::path::PathBuf;

use chrono::{DateTime, Utc};

use crate::archive::{collect_offers, Offers};
use crate::changelog::{changelog_from_deb, fixes_since, parse_changelog};
use crate::error::{Error, Result};
use crate::fetch::Fetcher;
use crate::policy::{plan, PlanInput, Update};
use crate::system::{RootView, System};

/// Options of a scan.
pub struct ScanOptions {
    /// "Now", for Valid-Until checks and exposure ages.
    pub now: DateTime<Utc>,
    /// Skip sources that cannot be reached instead of failing.
    pub ignore_unreachable: bool,
    /// Download candidate `.deb`s and read their changelogs.
    pub changelogs: bool,
}

/// What the changelog of a candidate says.
#[derive(Clone, Debug, Default)]
pub struct Fix {
    pub cves: Vec<String>,
    pub fixed_on: Option<DateTime<Utc>>,
    /// Date of the candidate's own (newest) changelog entry.
    pub newest: Option<DateTime<Utc>>,
    /// Why no changelog could be read, if none could.
    pub error: Option<String>,
}

/// The result of a scan.
pub struct Scan {
    pub system: System,
    pub offers: Offers,
    pub updates: Vec<Update>,
    /// Per update (same order as `updates`), when changelogs were asked for.
    pub fixes: Vec<Fix>,
}

/// Runs a scan of the system in `view`.
pub fn scan(fetcher: &Fetcher, view: &(dyn RootView + Sync), opts: &ScanOptions) -> Result<Scan> {
    let system = System::load(view)?;
    if system.sources.is_empty() {
        return Err(Error::Invalid("the image has no apt sources (/etc/apt/sources.list, /etc/apt/sources.list.d)".into()));
    }
    let mut offers = collect_offers(fetcher, &system, view, opts.now, opts.ignore_unreachable)?;
    check_default_release(&system, &offers)?;
    offers.warnings.extend(system.warnings.iter().cloned());
    let updates = plan(&PlanInput {
        installed: &system.installed,
        available: &offers.available,
        archives: &offers.archives,
        pins: &system.pins,
        native_arch: &system.native_arch,
        phasing: &system.phasing,
    });
    let fixes = if opts.changelogs { read_fixes(fetcher, &system, &offers, &updates)? } else { Vec::new() };
    Ok(Scan { system, offers, updates, fixes })
}

/// apt refuses an `APT::Default-Release` that names no archive (by suite,
/// codename or version) of the sources, unless it is `now` or a `k=v`
/// expression.
fn check_default_release(system: &System, offers: &Offers) -> Result<()> {
    let Some(rel) = system.conf.find("APT::Default-Release").filter(|r| !r.is_empty()) else { return Ok(()) };
    let glob = crate::preferences::Pattern::parse(rel).map_err(Error::Invalid)?;
    let named = |v: &Option<String>| v.as_deref().is_some_and(|v| glob.matches(v));
    let found = rel.as_bytes().get(1) == Some(&b'=')
        || glob.matches("now")
        || offers.archives.iter().any(|a| named(&a.release.suite) || named(&a.release.codename) || named(&a.release.version));
    if found {
        Ok(())
    } else {
        Err(Error::Invalid(format!("the value `{rel}` of APT::Default-Release is not a release in the sources (apt refuses it too)")))
    }
}

/// Downloads (into the shared cache) the `.deb` of an update's candidate,
/// verified against the SHA256 of the signed Packages index.
pub fn fetch_deb(fetcher: &Fetcher, offers: &Offers, u: &Update) -> Result<PathBuf> {
    let c = &u.candidate;
    let dest = deb_path(fetcher, u);
    if dest.is_file() {
        crate::fetch::touch(&dest);
        return Ok(dest);
    }
    let url = format!("{}/{}", offers.archives[c.archive].source.uri, quote_path(&c.filename));
    if !fetcher.fetch_verified(&url, &c.sha256, Some(c.size), &dest)? {
        return Err(Error::Unreachable { url, message: "not found (404)".into() });
    }
    Ok(dest)
}

/// Where [`fetch_deb`] keeps an update's `.deb` (named by its SHA256): a
/// file there is already downloaded and verified.
pub fn deb_path(fetcher: &Fetcher, u: &Update) -> PathBuf {
    fetcher.cache_dir().join("debs").join(format!("{}.deb", u.candidate.sha256))
}

/// Percent-encodes a pool path as apt does (`:` of epochs, `%`, spaces...).
fn quote_path(p: &str) -> String {
    let mut out = String::with_capacity(p.len());
    for b in p.bytes() {
        if b.is_ascii_alphanumeric() || b"/._~+-".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

fn read_fixes(fetcher: &Fetcher, system: &System, offers: &Offers, updates: &[Update]) -> Result<Vec<Fix>> {
    // One changelog per source package and version.
    let mut groups: BTreeMap<(String, String), Vec<usize>> = BTreeMap::new();
    for (i, u) in updates.iter().enumerate() {
        groups.entry((u.candidate.source.clone(), u.candidate.source_version.to_string())).or_default().push(i);
    }
    let groups: Vec<Vec<usize>> = groups.into_values().collect();
    let next = std::sync::atomic::AtomicUsize::new(0);
    let results: Vec<Vec<(usize, Fix)>> = std::thread::scope(|scope| {
        let workers: Vec<_> = (0..4)
            .map(|_| {
                scope.spawn(|| {
                    let mut out = Vec::new();
                    loop {
                        let g = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                        let Some(members) = groups.get(g) else { break };
                        let fix = group_fix(fetcher, system, offers, updates, members);
                        out.extend(members.iter().map(|&i| (i, fix.clone())));
                    }
                    out
                })
            })
            .collect();
        workers.into_iter().map(|w| w.join().unwrap_or_default()).collect()
    });
    let mut fixes = vec![Fix::default(); updates.len()];
    for (i, f) in results.into_iter().flatten() {
        fixes[i] = f;
    }
    // A source whose debs could not be fetched at all is an error the user must see.
    if let Some(f) = fixes.iter().find(|f| f.error.as_deref().is_some_and(|e| e.starts_with("cannot reach"))) {
        return Err(Error::Invalid(f.error.clone().unwrap_or_default()));
    }
    Ok(fixes)
}

fn group_fix(fetcher: &Fetcher, system: &System, offers: &Offers, updates: &[Update], members: &[usize]) -> Fix {
    let mut last_err = None;
    // Prefer the binary named like its source: it usually carries the changelog.
    let mut order: Vec<usize> = members.to_vec();
    order.sort_by_key(|&i| updates[i].package != updates[i].candidate.source);
    for &i in &order {
        let u = &updates[i];
        let installed_src = &system.installed[u.installed_index].source_version;
        let res = fetch_deb(fetcher, offers, u).and_then(|path| {
            let f = File::open(&path).map_err(crate::error::io_err(path.display()))?;
            changelog_from_deb(std::io::BufReader::new(f), &u.package).map_err(|e| Error::Invalid(format!("{}: {e}", path.display())))
        });
        match res {
            Ok(Some(text)) => {
                let entries = parse_changelog(&text);
                let (cves, fixed_on) = fixes_since(&entries, installed_src);
                return Fix { cves, fixed_on, newest: entries.first().and_then(|e| e.date), error: None };
            }
            Ok(None) => last_err = Some(format!("{} has no changelog", u.package)),
            Err(e) => {
                last_err = Some(e.to_string());
                if matches!(e, Error::Unreachable { .. }) {
                    break;
                }
            }
        }
    }
    Fix { error: last_err, ..Fix::default() }
}

/// Host facts: automatic upgrades and pending reboots.
#[derive(Clone, Debug, Default)]
pub struct HostInfo {
    pub unattended_upgrades_installed: bool,
    pub unattended_upgrades_enabled: bool,
    /// Seconds since the epoch of the last unattended-upgrades run.
    pub unattended_upgrades_last_run: Option<u64>,
    pub reboot_required: bool,
}

impl HostInfo {
    pub fn read(view: &dyn RootView, system: &System) -> HostInfo {
        let installed = system.installed.iter().any(|p| p.name == "unattended-upgrades");
        let enabled = system.conf.find("APT::Periodic::Unattended-Upgrade").is_some_and(|v| v != "0" && !v.is_empty());
        let last_run = view
            .mtime("var/lib/apt/periodic/unattended-upgrades-stamp")
            .or_else(|| view.mtime("var/log/unattended-upgrades/unattended-upgrades.log"));
        HostInfo {
            unattended_upgrades_installed: installed,
            unattended_upgrades_enabled: installed && enabled,
            unattended_upgrades_last_run: last_run,
            reboot_required: view.read("run/reboot-required").is_some() || view.read("var/run/reboot-required").is_some(),
        }
    }
}
