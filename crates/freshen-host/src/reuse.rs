//! Scan reuse: the scan of an image named by its id (what containers
//! run, whose content cannot change) is recorded with the Release files
//! it read and their SHA256; a later pass whose conditional requests find
//! those files unchanged uses the record instead of exporting and
//! scanning the image again (indexes and packages are named by the hashes
//! those files sign, so the scan would find the same).

use std::collections::BTreeMap;

use chrono::Utc;
use freshen_apt::Fetcher;
use tracing::warn;

use crate::model::{ScanFailure, Scanned};
use crate::state::{RecordedScan, State};

/// The key a scan is recorded under for reuse: sources that name an
/// image by its id (what containers run), whose content cannot change.
fn image_key(source: &str) -> Option<&str> {
    source.strip_prefix("docker-daemon:").filter(|id| id.starts_with("sha256:")).map(|_| source)
}

/// The recorded scan of `source`'s image when every Release file it read
/// is unchanged (one conditional request each, shared by all images of
/// the pass); `None` when it must be scanned.
pub(crate) fn recorded(fetcher: &Fetcher, state: &State, source: &str) -> Option<Result<Scanned, ScanFailure>> {
    let key = image_key(source)?;
    let recorded = match state.recorded_scan(key) {
        Ok(r) => r?,
        Err(e) => {
            warn!(image = %source, error = %e, "cannot read the recorded scan");
            return None;
        }
    };
    // Unreachable: scan again, which says why.
    let now = freshen_apt::probe::probe(fetcher, recorded.releases.keys()).ok()?;
    if now != recorded.releases {
        return None;
    }
    if let Err(e) = state.touch_scan(key, Utc::now()) {
        warn!(image = %source, error = %e, "cannot record the scan's use");
    }
    Some(match recorded.unsupported {
        Some(m) => Err(ScanFailure::Unsupported(m)),
        None => Ok(Scanned { image_id: recorded.image_id, installed: recorded.installed, pending: recorded.pending, seconds: 0.0, distro: recorded.distro }),
    })
}

/// Records a scan of `source` for reuse (`releases`: the Release files it
/// read). A failed scan is not recorded: the next pass tries again.
pub(crate) fn remember(state: &State, source: &str, result: &Result<Scanned, ScanFailure>, releases: BTreeMap<String, String>) {
    let Some(key) = image_key(source) else { return };
    let recorded = match result {
        Ok(s) => RecordedScan { image_id: s.image_id.clone(), installed: s.installed, pending: s.pending.clone(), unsupported: None, releases, distro: s.distro.clone() },
        Err(ScanFailure::Unsupported(m)) => RecordedScan { image_id: key.to_string(), installed: 0, pending: Vec::new(), unsupported: Some(m.clone()), releases, distro: None },
        Err(ScanFailure::Failed(_)) => return,
    };
    if let Err(e) = state.record_scan(key, &recorded, Utc::now()) {
        warn!(image = %source, error = %e, "cannot record the scan for reuse");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_images_named_by_id_are_recorded() {
        let id = format!("docker-daemon:sha256:{}", "ab".repeat(32));
        assert_eq!(image_key(&id), Some(id.as_str()));
        for other in ["docker-daemon:app:1", "oci:/x:y", "docker://r/app:1", "dir:/x"] {
            assert_eq!(image_key(other), None, "{other}");
        }
    }
}
