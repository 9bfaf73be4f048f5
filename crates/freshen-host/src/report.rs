//! The document `freshen status --format json` prints and `/api/status`
//! serves: every target, exposed first (the oldest pending security fix
//! first within each), and the host's own patch state.

use std::cmp::Reverse;
use std::path::Path;

use chrono::{DateTime, Utc};
use serde::Serialize;

use crate::error::Result;
use crate::hostinfo::HostReport;
use crate::state::{State, TargetStatus};

/// What `status` reports.
#[derive(Clone, Debug, Serialize)]
pub struct StatusReport {
    pub host: HostReport,
    pub targets: Vec<TargetStatus>,
}

/// The host in one line's worth of numbers.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Summary {
    pub targets: usize,
    /// Targets with a pending security fix.
    pub exposed: usize,
    pub pending_security: usize,
    /// The longest open exposure over all targets.
    pub longest: Option<i64>,
}

impl StatusReport {
    /// Reads the state at `now`; the host below `root` (`/` on a host).
    pub fn read(state: &State, root: &Path, now: DateTime<Utc>) -> Result<StatusReport> {
        let mut targets = state.status(now)?;
        for t in &mut targets {
            // Counted security fixes first, the longest exposed first.
            t.fixes.sort_by_key(|f| (Reverse(f.pending.counts()), Reverse(f.exposure_seconds), f.pending.package.clone()));
        }
        targets.sort_by_key(|t| (Reverse(t.exposure_seconds), Reverse(t.pending_security), t.kind.clone(), t.name.clone()));
        Ok(StatusReport { host: HostReport::read(root), targets })
    }

    pub fn summary(&self) -> Summary {
        Summary {
            targets: self.targets.len(),
            exposed: self.targets.iter().filter(|t| t.pending_security > 0).count(),
            pending_security: self.targets.iter().map(|t| t.pending_security).sum(),
            longest: self.targets.iter().filter_map(|t| t.exposure_seconds).max(),
        }
    }
}
