//! Fetching what an image's sources offer: the signed Release of each
//! source, then the `Packages` indexes of its components, keeping the
//! stanzas of installed packages.

use std::collections::HashSet;

use chrono::{DateTime, Utc};

use crate::error::{Error, Result};
use crate::fetch::Fetcher;
use crate::packages::{fetch_index, scan_index, Available};
use crate::policy::Archive;
use crate::release::Release;
use crate::sources::SourceEntry;
use crate::system::{RootView, System};

/// What the archives offer for the installed packages.
pub struct Offers {
    pub archives: Vec<Archive>,
    pub available: Vec<Available>,
    /// What apt would warn about: sources skipped because they failed
    /// (only with `ignore_unreachable`), components a Release does not list.
    pub warnings: Vec<String>,
}

/// Fetches and verifies the Release file of one source.
pub fn fetch_release(fetcher: &Fetcher, system: &System, view: &dyn RootView, source: &SourceEntry, now: DateTime<Utc>) -> Result<Release> {
    let serr = |message: String| Error::Source { source_name: source.name(), message };
    if source.trusted {
        return Err(serr(format!("marked trusted=yes ({}): freshen does not accept unsigned sources", source.origin)));
    }
    let keys = system.keys_for(view, source)?;
    let dist = source.dist_url();
    let text = if let Some(inrelease) = fetcher.get_revalidated(&format!("{dist}/InRelease"))? {
        // Like apt's lists directory, the cache keeps what was verified: the
        // same bytes under the same keys are not verified again.
        let key = crate::fetch::sha256_hex(&[inrelease.as_slice(), keys.fingerprints().join(",").as_bytes()].concat());
        let verified = fetcher.cache_dir().join("verified").join(&key);
        match std::fs::read_to_string(&verified) {
            Ok(text) => text,
            Err(_) => {
                let text = keys.verify_cleartext(&inrelease).map_err(|e| serr(format!("InRelease signature: {e}")))?;
                if let Some(dir) = verified.parent() {
                    let _ = std::fs::create_dir_all(dir);
                }
                crate::fetch::write_atomic(&verified, text.as_bytes())?;
                text
            }
        }
    } else {
        let release = fetcher
            .get_revalidated(&format!("{dist}/Release"))?
            .ok_or_else(|| serr(format!("no InRelease or Release file at {dist}")))?;
        let sig = fetcher
            .get_revalidated(&format!("{dist}/Release.gpg"))?
            .ok_or_else(|| serr(format!("{dist}/Release is not signed (no Release.gpg)")))?;
        keys.verify_detached(&release, &sig).map_err(|e| serr(format!("Release.gpg signature: {e}")))?;
        String::from_utf8(release).map_err(|_| serr("Release is not UTF-8".into()))?
    };
    let release = Release::parse(&text).map_err(|m| serr(format!("Release file: {m}")))?;
    let conf = &system.conf;
    let check_date = source.check_date.unwrap_or_else(|| conf.find_bool("Acquire::Check-Date", true));
    let check_valid_until = source.check_valid_until.unwrap_or_else(|| conf.find_bool("Acquire::Check-Valid-Until", true));
    release.check_dates(now, check_valid_until, check_date).map_err(serr)?;
    // The Release must be the suite the sources asked for (apt checks this too).
    if !source.is_flat() {
        let names = [release.suite.as_deref(), release.codename.as_deref()];
        if !names.contains(&Some(source.suite.as_str())) {
            return Err(serr(format!(
                "Release file is for suite {} / codename {}, not {}",
                release.suite.as_deref().unwrap_or("?"),
                release.codename.as_deref().unwrap_or("?"),
                source.suite
            )));
        }
    }
    Ok(release)
}

/// The archives of one source, and warnings about it.
type SourceOffers = (Vec<(Archive, Vec<Available>)>, Vec<String>);

/// Checks a source's URI scheme: freshen reads what apt in the image
/// would, from the network (`http`, `https`) or the image (`file`).
fn check_scheme(source: &SourceEntry) -> Result<()> {
    let scheme = source.uri.split_once(':').map_or("", |(s, _)| s);
    match scheme {
        "http" | "https" | "file" => Ok(()),
        "cdrom" => Err(Error::Source { source_name: source.name(), message: "cdrom: sources cannot be read (no disc in an image); comment it out or use --ignore-unreachable".into() }),
        other => Err(Error::Source {
            source_name: source.name(),
            message: format!("unsupported URI scheme `{other}:` (freshen reads http://, https:// and file: sources)"),
        }),
    }
}

/// Any failure of a source, as an error naming it.
fn named(source: &SourceEntry, e: Error) -> Error {
    match e {
        e @ Error::Source { .. } => e,
        e => Error::Source { source_name: source.name(), message: e.to_string() },
    }
}

fn offers_of(fetcher: &Fetcher, system: &System, view: &dyn RootView, source: &SourceEntry, wanted: &HashSet<String>, now: DateTime<Utc>) -> Result<SourceOffers> {
    check_scheme(source)?;
    let release = fetch_release(fetcher, system, view, source, now)?;
    let archs = source.architectures_of(&system.native_arch, &system.foreign_archs);
    let components = if source.is_flat() { vec![String::new()] } else { source.components.clone() };
    let mut out = Vec::new();
    let mut warnings = Vec::new();
    for component in components {
        if !component.is_empty() && !release_has_component(&release, &component, &archs) {
            // As apt: "doesn't have the component (component misspelt in sources.list?)".
            warnings.push(format!(
                "{}: the Release file does not list component `{component}` (misspelt in {}?); skipped",
                source.name(),
                source.origin
            ));
            continue;
        }
        let mut available = Vec::new();
        for arch in &archs {
            if let Some(path) = fetch_index(fetcher, source, &release, &component, arch)? {
                let label = format!("{} {component}/binary-{arch}/Packages", source.dist_url());
                available.extend(scan_index(&path, &label, wanted, 0)?);
            }
        }
        out.push((Archive { source: source.clone(), release: release.clone(), component }, available));
    }
    Ok((out, warnings))
}

/// Whether the Release offers `component`: its `Components` field lists it
/// (allowing for `updates/main` and `main`), or, without that field, it has
/// indexes for it.
fn release_has_component(release: &Release, component: &str, archs: &[String]) -> bool {
    if release.components.is_empty() {
        return archs.iter().any(|a| release.index_path(component, &format!("binary-{a}/Packages")).is_some());
    }
    let bare = component.strip_prefix("updates/").unwrap_or(component);
    release.components.iter().any(|c| c == component || c.strip_prefix("updates/").unwrap_or(c) == bare)
}

/// Resolves every source of `system` (in parallel) into archives and offers.
/// With `ignore_unreachable`, a source that fails in any way (unreachable,
/// missing or badly signed Release, index not matching its hash,
/// unsupported scheme) is skipped with a warning naming it, as apt warns
/// and goes on; without it, that failure is the error.
pub fn collect_offers(fetcher: &Fetcher, system: &System, view: &(dyn RootView + Sync), now: DateTime<Utc>, ignore_unreachable: bool) -> Result<Offers> {
    let wanted: HashSet<String> = system.installed.iter().map(|p| p.name.clone()).collect();
    let with_credentials = system.sources.iter().filter_map(|s| s.credentials.clone().map(|c| (s.uri.clone(), c))).collect();
    fetcher.set_credentials(with_credentials, crate::auth::AuthTable::read(view));
    let mut seen = HashSet::new();
    let sources: Vec<&SourceEntry> = system.sources.iter().filter(|s| seen.insert((s.dist_url(), s.components.clone()))).collect();
    let results: Vec<Result<SourceOffers>> = std::thread::scope(|scope| {
        let handles: Vec<_> = sources
            .iter()
            .map(|s| {
                let wanted = &wanted;
                scope.spawn(move || offers_of(fetcher, system, view, s, wanted, now).map_err(|e| named(s, e)))
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap_or_else(|_| Err(Error::Invalid("internal error: a fetch thread panicked".into())))).collect()
    });
    let mut offers = Offers { archives: Vec::new(), available: Vec::new(), warnings: Vec::new() };
    for r in results {
        match r {
            Ok((list, warnings)) => {
                offers.warnings.extend(warnings);
                for (archive, mut available) in list {
                    let id = offers.archives.len();
                    for a in &mut available {
                        a.archive = id;
                    }
                    offers.archives.push(archive);
                    offers.available.extend(available);
                }
            }
            Err(e) if ignore_unreachable => offers.warnings.push(format!("skipped source {e}")),
            Err(e) => return Err(e),
        }
    }
    Ok(offers)
}
