//! What the status page and `/metrics` read besides [`State::status`]:
//! exposure windows closed, rollbacks and failures, totals, the last
//! successful pass and when each archive last published.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};

use super::{exposure, parse_time, time, State};
use crate::error::{db_err, Error, Result};

/// One exposure window a deploy (or a rebuilt image) closed: the longest
/// among the security fixes a target stopped needing at `closed`.
#[derive(Clone, Debug, PartialEq)]
pub struct Window {
    pub target: String,
    pub closed: DateTime<Utc>,
    pub seconds: i64,
}

/// A rollback or a failure, with its reason and the refused container's
/// last lines.
#[derive(Clone, Debug)]
pub struct Incident {
    pub target: String,
    pub at: DateTime<Utc>,
    /// `rolled-back` or `failed`.
    pub result: String,
    pub reason: Option<String>,
    pub logs: Option<String>,
}

/// A target's pending security fixes and its open exposure, as
/// [`State::status`] counts them, without the fixes themselves.
#[derive(Clone, Debug, PartialEq)]
pub struct Exposure {
    pub kind: String,
    pub name: String,
    pub pending_security: usize,
    pub exposure_seconds: Option<i64>,
}

/// Counts since the state database was created.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct Totals {
    /// Deploys of a patched image that were accepted.
    pub patched: u64,
    pub rolled_back: u64,
    /// Targets a pass left failed.
    pub failed: u64,
}

impl State {
    /// The windows closed since `since`, oldest first.
    pub fn closed_windows(&self, since: DateTime<Utc>) -> Result<Vec<Window>> {
        let err = db_err(&self.path);
        let mut stmt = self
            .conn
            .prepare(
                "SELECT t.name, f.fixed_on, f.first_seen, f.resolved_at FROM fixes f JOIN targets t ON t.id = f.target_id
                 WHERE f.security = 1 AND f.held = 0 AND f.resolved_at >= ?1 ORDER BY f.resolved_at, t.name",
            )
            .map_err(&err)?;
        let rows = stmt
            .query_map([time(since)], |r| Ok((r.get::<_, String>(0)?, parse_time(r.get(1)?), parse_time(r.get(2)?), parse_time(r.get(3)?))))
            .map_err(&err)?
            .collect::<rusqlite::Result<Vec<_>>>()
            .map_err(&err)?;
        let mut windows: Vec<Window> = Vec::new();
        for (target, fixed_on, first_seen, resolved) in rows {
            let (Some(closed), Some(seconds)) = (resolved, resolved.and_then(|r| exposure(fixed_on, first_seen, Some(r), r))) else { continue };
            match windows.iter_mut().rev().take_while(|w| w.closed == closed).find(|w| w.target == target) {
                Some(w) => w.seconds = w.seconds.max(seconds),
                None => windows.push(Window { target, closed, seconds }),
            }
        }
        Ok(windows)
    }

    /// Every active target's pending security fixes and open exposure at
    /// `now`, in one query.
    pub fn exposures(&self, now: DateTime<Utc>) -> Result<Vec<Exposure>> {
        let err = db_err(&self.path);
        let mut stmt = self
            .conn
            .prepare(
                "SELECT t.id, t.kind, t.name, f.fixed_on, f.first_seen, f.id IS NOT NULL FROM targets t
                 LEFT JOIN fixes f ON f.target_id = t.id AND f.resolved_at IS NULL AND f.security = 1 AND f.held = 0
                 WHERE t.active = 1 ORDER BY t.kind, t.name",
            )
            .map_err(&err)?;
        let mut rows = stmt.query([]).map_err(&err)?;
        let mut out: Vec<Exposure> = Vec::new();
        let mut last = None;
        while let Some(r) = rows.next().map_err(&err)? {
            let id: i64 = r.get(0).map_err(&err)?;
            if last != Some(id) {
                last = Some(id);
                out.push(Exposure { kind: r.get(1).map_err(&err)?, name: r.get(2).map_err(&err)?, pending_security: 0, exposure_seconds: None });
            }
            if r.get::<_, bool>(5).map_err(&err)? {
                let e = out.last_mut().expect("pushed above");
                e.pending_security += 1;
                let seconds = exposure(parse_time(r.get(3).map_err(&err)?), parse_time(r.get(4).map_err(&err)?), None, now);
                e.exposure_seconds = e.exposure_seconds.max(seconds);
            }
        }
        Ok(out)
    }

    /// The latest rollbacks and failures, newest first.
    pub fn incidents(&self, limit: usize) -> Result<Vec<Incident>> {
        let err = db_err(&self.path);
        let mut stmt = self
            .conn
            .prepare(
                "SELECT t.name, d.at, d.result, d.reason, d.logs FROM deploys d JOIN targets t ON t.id = d.target_id WHERE d.result <> 'patched'
                 UNION ALL
                 SELECT t.name, a.at, 'failed', a.reason, NULL FROM actions a JOIN targets t ON t.id = a.target_id WHERE a.action = 'failed'
                   AND NOT EXISTS (SELECT 1 FROM deploys d WHERE d.pass_id = a.pass_id AND d.target_id = a.target_id)
                 ORDER BY 2 DESC LIMIT ?1",
            )
            .map_err(&err)?;
        let rows = stmt
            .query_map([limit as i64], |r| Ok((r.get::<_, String>(0)?, parse_time(r.get(1)?), r.get(2)?, r.get(3)?, r.get(4)?)))
            .map_err(&err)?
            .collect::<rusqlite::Result<Vec<_>>>()
            .map_err(&err)?;
        Ok(rows.into_iter().filter_map(|(target, at, result, reason, logs)| Some(Incident { target, at: at?, result, reason, logs })).collect())
    }

    /// Accepted patches, rollbacks and failures so far.
    pub fn totals(&self) -> Result<Totals> {
        self.conn
            .query_row(
                "SELECT (SELECT count(*) FROM deploys WHERE result = 'patched'), (SELECT count(*) FROM deploys WHERE result = 'rolled-back'),
                   (SELECT count(*) FROM actions WHERE action = 'failed')",
                [],
                |r| Ok(Totals { patched: r.get(0)?, rolled_back: r.get(1)?, failed: r.get(2)? }),
            )
            .map_err(db_err(&self.path))
    }

    /// When the latest pass over every target that finished without error
    /// finished (passes over some targets only, such as a Dokku build's,
    /// do not count).
    pub fn last_good_pass(&self) -> Result<Option<DateTime<Utc>>> {
        self.conn
            .query_row("SELECT max(finished_at) FROM passes WHERE finished_at IS NOT NULL AND error IS NULL AND whole = 1", [], |r| r.get(0))
            .map(parse_time)
            .map_err(db_err(&self.path))
    }

    /// Per Release file the recorded scans read, the earliest time a scan
    /// recorded what it says now: when freshen first saw its latest
    /// publication.
    pub fn sources_seen(&self) -> Result<BTreeMap<String, DateTime<Utc>>> {
        let err = db_err(&self.path);
        let mut stmt = self.conn.prepare("SELECT releases, scanned_at FROM scan_results ORDER BY scanned_at DESC").map_err(&err)?;
        let rows = stmt.query_map([], |r| Ok((r.get::<_, String>(0)?, parse_time(r.get(1)?)))).map_err(&err)?.collect::<rusqlite::Result<Vec<_>>>().map_err(&err)?;
        // Newest first: the first digest met is the current one.
        let mut current: BTreeMap<String, (String, DateTime<Utc>)> = BTreeMap::new();
        for (text, at) in rows {
            let Some(at) = at else { continue };
            let releases: BTreeMap<String, String> = serde_json::from_str(&text).map_err(|e| Error::State { path: self.path.clone(), message: format!("recorded releases: {e}") })?;
            for (url, digest) in releases {
                match current.get_mut(&url) {
                    Some((d, seen)) if *d == digest => *seen = at.min(*seen),
                    Some(_) => {}
                    None => {
                        current.insert(url, (digest, at));
                    }
                }
            }
        }
        Ok(current.into_iter().map(|(url, (_, at))| (url, at)).collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{Action, DeployRecord, Kind, Outcome, Pending, Target};

    fn pending(pkg: &str) -> Pending {
        Pending {
            package: pkg.into(),
            arch: "amd64".into(),
            installed: "1".into(),
            candidate: "2".into(),
            suite: "bookworm-security".into(),
            security: true,
            held_back: None,
            held: false,
            cves: vec!["CVE-2026-1".into()],
            fixed_on: None,
        }
    }

    #[test]
    fn a_pass_over_some_targets_is_not_the_last_good_pass() {
        let (_dir, mut s, t0) = crate::state::tests::fresh();
        let t1 = t0 + chrono::Duration::hours(1);
        let pass = s.begin_pass(t0, false).unwrap();
        s.record_pass(pass, &[], &[], true, t0, None).unwrap();
        let pass = s.begin_pass(t1, false).unwrap();
        s.record_pass(pass, &[], &[], false, t1, None).unwrap();
        assert_eq!(s.last_good_pass().unwrap(), Some(t0));
    }

    #[test]
    fn windows_incidents_and_totals() {
        let (_dir, mut s, t0) = crate::state::tests::fresh();
        let target = |name: &str| Target { kind: Kind::Container, name: name.into(), image: "i:1".into(), image_id: Some("sha256:1".into()), source: None, skip: None };
        let seen = |name: &str| Outcome { pending: Some(vec![pending("libc6"), pending("zlib")]), ..Outcome::new(target(name), Action::Failed, Some("planned".into())) };
        let pass = s.begin_pass(t0, false).unwrap();
        s.record_pass(pass, &[], &[seen("a"), seen("b")], true, t0, None).unwrap();
        let t1 = t0 + chrono::Duration::hours(2);
        let deploy = |result, reason: &str| Some(DeployRecord { result, reason: Some(reason.into()), logs: Some("<boom>".into()), at: t1 });
        let a = Outcome { action: Action::Patched, deploy: deploy(Action::Patched, "ok"), fixed: vec![pending("libc6"), pending("zlib")], pending: Some(vec![]), ..Outcome::new(target("a"), Action::Patched, None) };
        let b = Outcome { deploy: deploy(Action::RolledBack, "unhealthy"), pending: Some(vec![pending("libc6"), pending("zlib")]), ..Outcome::new(target("b"), Action::RolledBack, Some("unhealthy".into())) };
        let pass = s.begin_pass(t1, false).unwrap();
        s.record_pass(pass, &[], &[a, b], true, t1, None).unwrap();
        let windows = s.closed_windows(t0).unwrap();
        assert_eq!(windows, vec![Window { target: "a".into(), closed: t1, seconds: 7200 }], "one window per target and close, the longest fix");
        assert!(s.closed_windows(t1 + chrono::Duration::seconds(1)).unwrap().is_empty());
        let incidents = s.incidents(10).unwrap();
        // The first pass's failures (no deploy) and b's rollback, newest first.
        assert_eq!(incidents.iter().map(|i| (i.target.as_str(), i.result.as_str())).collect::<Vec<_>>(), [("b", "rolled-back"), ("a", "failed"), ("b", "failed")]);
        assert_eq!(incidents[0].logs.as_deref(), Some("<boom>"));
        assert_eq!(s.totals().unwrap(), Totals { patched: 1, rolled_back: 1, failed: 2 });
        assert_eq!(s.last_good_pass().unwrap(), Some(t1));
        // The same numbers as status.
        let t2 = t1 + chrono::Duration::hours(1);
        let exposures = s.exposures(t2).unwrap();
        let status = s.status(t2).unwrap();
        assert_eq!(exposures.len(), 2);
        for (e, t) in exposures.iter().zip(&status) {
            assert_eq!((&e.name, e.pending_security, e.exposure_seconds), (&t.name, t.pending_security, t.exposure_seconds));
        }
        assert_eq!((exposures[1].pending_security, exposures[1].exposure_seconds), (2, Some(3 * 3600)));
    }
}
