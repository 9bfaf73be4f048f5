//! The state database: SQLite in WAL mode under the state directory, one
//! writer (a pass, under the pass lock), any number of read-only readers
//! (`status`) that never block it. The schema is versioned in
//! `PRAGMA user_version` by numbered migrations; a database from a newer
//! freshen is refused. Times are UTC, stored as RFC 3339 text.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use chrono::{DateTime, SecondsFormat, Utc};
use rusqlite::{params, Connection, OpenFlags, OptionalExtension};
use serde::Serialize;

use crate::error::{db_err, io_err, Error, Result};
use crate::model::{Action, Outcome, Pending, PatchRecord};

mod history;
pub use history::{Exposure, Incident, Totals, Window};

/// The database's file name in the state directory.
pub const FILE: &str = "state.db";

/// Migration N (1-based) brings a database from version N-1 to N.
const MIGRATIONS: &[&str] = &[
    // 1: passes, targets, scans, fixes, actions.
    "CREATE TABLE passes (
        id INTEGER PRIMARY KEY,
        started_at TEXT NOT NULL,
        finished_at TEXT,
        dry_run INTEGER NOT NULL,
        pid INTEGER NOT NULL,
        error TEXT
    );
    CREATE TABLE targets (
        id INTEGER PRIMARY KEY,
        kind TEXT NOT NULL CHECK (kind IN ('container', 'dokku-app', 'image')),
        name TEXT NOT NULL,
        image TEXT NOT NULL,
        image_id TEXT,
        active INTEGER NOT NULL DEFAULT 1,
        first_seen TEXT NOT NULL,
        last_seen TEXT NOT NULL,
        UNIQUE (kind, name)
    );
    CREATE TABLE scans (
        id INTEGER PRIMARY KEY,
        pass_id INTEGER NOT NULL REFERENCES passes (id),
        source TEXT NOT NULL,
        image_id TEXT,
        at TEXT NOT NULL,
        seconds REAL,
        installed INTEGER,
        pending INTEGER,
        security INTEGER,
        unsupported INTEGER NOT NULL DEFAULT 0,
        error TEXT
    );
    CREATE TABLE fixes (
        id INTEGER PRIMARY KEY,
        target_id INTEGER NOT NULL REFERENCES targets (id),
        package TEXT NOT NULL,
        arch TEXT NOT NULL,
        installed TEXT NOT NULL,
        candidate TEXT NOT NULL,
        suite TEXT NOT NULL,
        security INTEGER NOT NULL,
        held_back TEXT,
        held INTEGER NOT NULL,
        cves TEXT NOT NULL,
        fixed_on TEXT,
        first_seen TEXT NOT NULL,
        last_seen TEXT NOT NULL,
        resolved_at TEXT,
        UNIQUE (target_id, package, arch, installed)
    );
    CREATE INDEX fixes_seen ON fixes (package, arch, installed);
    CREATE TABLE actions (
        id INTEGER PRIMARY KEY,
        pass_id INTEGER NOT NULL REFERENCES passes (id),
        target_id INTEGER NOT NULL REFERENCES targets (id),
        at TEXT NOT NULL,
        action TEXT NOT NULL CHECK (action IN ('patched', 'rolled-back', 'failed', 'unchanged', 'skipped')),
        reason TEXT
    );
    CREATE INDEX actions_target ON actions (target_id, id);",
    // 2: patches in place, deploys and rollbacks, refused fix sets.
    "CREATE TABLE patches (
        id INTEGER PRIMARY KEY,
        pass_id INTEGER NOT NULL REFERENCES passes (id),
        image TEXT NOT NULL,
        from_id TEXT NOT NULL,
        to_id TEXT NOT NULL,
        rollback TEXT,
        upgraded TEXT NOT NULL,
        fix_set TEXT NOT NULL,
        seconds REAL NOT NULL,
        at TEXT NOT NULL
    );
    CREATE TABLE deploys (
        id INTEGER PRIMARY KEY,
        pass_id INTEGER NOT NULL REFERENCES passes (id),
        target_id INTEGER NOT NULL REFERENCES targets (id),
        patch_id INTEGER REFERENCES patches (id),
        at TEXT NOT NULL,
        result TEXT NOT NULL CHECK (result IN ('patched', 'rolled-back', 'failed')),
        reason TEXT,
        logs TEXT
    );
    CREATE INDEX deploys_target ON deploys (target_id, id);
    CREATE TABLE refused (
        image_id TEXT NOT NULL,
        fix_set TEXT NOT NULL,
        at TEXT NOT NULL,
        reason TEXT,
        PRIMARY KEY (image_id, fix_set)
    );",
    // 3: what a scan of an image found, kept for reuse while the Release
    // files it read are unchanged; whether a recorded scan was reused.
    "CREATE TABLE scan_results (
        image_key TEXT PRIMARY KEY,
        image_id TEXT NOT NULL,
        installed INTEGER NOT NULL,
        pending TEXT NOT NULL,
        unsupported TEXT,
        releases TEXT NOT NULL,
        scanned_at TEXT NOT NULL,
        used_at TEXT NOT NULL
    );
    ALTER TABLE scans ADD COLUMN reused INTEGER NOT NULL DEFAULT 0;",
    // 4: when a notification told that a fix had been pending too long.
    "ALTER TABLE fixes ADD COLUMN overdue_told_at TEXT;",
    // 5: the distribution of a target's image (os-release ID), for links
    // to its security tracker; windows closed recently (the status page)
    // found by time.
    "ALTER TABLE targets ADD COLUMN distro TEXT;
    ALTER TABLE scan_results ADD COLUMN distro TEXT;
    CREATE INDEX fixes_resolved ON fixes (resolved_at);",
    // 6: whether a pass looked at every target (not `freshen dokku patch
    // APP` or a build trigger): only those say the host was checked.
    "ALTER TABLE passes ADD COLUMN whole INTEGER NOT NULL DEFAULT 1;",
];

/// The schema version this freshen writes.
pub const SCHEMA_VERSION: i64 = MIGRATIONS.len() as i64;

/// An open state database.
pub struct State {
    conn: Connection,
    path: PathBuf,
}

pub fn time(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Secs, true)
}

fn parse_time(s: Option<String>) -> Option<DateTime<Utc>> {
    s.and_then(|s| DateTime::parse_from_rfc3339(&s).ok()).map(|t| t.with_timezone(&Utc))
}

impl State {
    /// Opens (creating, migrating) the database for writing. Call it
    /// only under the pass lock.
    pub fn open_writer(dir: &Path) -> Result<State> {
        std::fs::create_dir_all(dir).map_err(io_err(dir))?;
        let path = dir.join(FILE);
        let conn = Connection::open(&path).map_err(db_err(&path))?;
        let state = State { conn, path };
        let version = state.version()?;
        state.refuse_newer(version)?;
        let path = state.path.clone();
        let err = db_err(&path);
        state.conn.busy_timeout(std::time::Duration::from_secs(10)).map_err(&err)?;
        state.conn.pragma_update(None, "journal_mode", "WAL").map_err(&err)?;
        state.conn.pragma_update(None, "synchronous", "NORMAL").map_err(&err)?;
        state.conn.pragma_update(None, "foreign_keys", "ON").map_err(&err)?;
        state.keep_wal_files();
        for (i, sql) in MIGRATIONS.iter().enumerate().skip(version as usize) {
            let n = i + 1;
            let batch = format!("BEGIN IMMEDIATE; {sql}; PRAGMA user_version = {n}; COMMIT;");
            state.conn.execute_batch(&batch).map_err(|e| Error::State { path: state.path.clone(), message: format!("migration {n}: {e}") })?;
        }
        Ok(state)
    }

    /// Opens the database read-only (`status`): needs only read access to
    /// the state directory and never blocks the writer.
    pub fn open_reader(dir: &Path) -> Result<State> {
        let path = dir.join(FILE);
        if !path.is_file() {
            return Err(Error::State { path, message: "no such file (no pass has run with this state directory yet)".into() });
        }
        let flags = OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX;
        let conn = Connection::open_with_flags(&path, flags).map_err(db_err(&path))?;
        let state = State { conn, path };
        let version = state.version()?;
        state.refuse_newer(version)?;
        if version < SCHEMA_VERSION {
            return Err(Error::State { path: state.path, message: format!("schema version {version} is older than this freshen's ({SCHEMA_VERSION}); a `freshen run` upgrades it") });
        }
        Ok(state)
    }

    fn version(&self) -> Result<i64> {
        self.conn.pragma_query_value(None, "user_version", |r| r.get(0)).map_err(db_err(&self.path))
    }

    fn refuse_newer(&self, version: i64) -> Result<()> {
        if version > SCHEMA_VERSION {
            return Err(Error::State {
                path: self.path.clone(),
                message: format!("schema version {version} is newer than this freshen understands ({SCHEMA_VERSION}); use the freshen that wrote it, or a newer one"),
            });
        }
        Ok(())
    }

    /// Keeps the `-wal` and `-shm` files when the writer closes, so that a
    /// reader without write access to the directory can still open the
    /// database (SQLite must otherwise create them).
    fn keep_wal_files(&self) {
        let mut on: std::os::raw::c_int = 1;
        // SAFETY: the handle is this open connection's; the file control
        // reads one int through the pointer during the call.
        unsafe {
            let db = self.conn.handle();
            rusqlite::ffi::sqlite3_file_control(db, c"main".as_ptr(), rusqlite::ffi::SQLITE_FCNTL_PERSIST_WAL, &mut on as *mut _ as *mut std::ffi::c_void);
        }
    }

    /// Records the start of a pass; returns its id.
    pub fn begin_pass(&self, now: DateTime<Utc>, dry_run: bool) -> Result<i64> {
        self.conn
            .execute("INSERT INTO passes (started_at, dry_run, pid) VALUES (?1, ?2, ?3)", params![time(now), dry_run, std::process::id()])
            .map_err(db_err(&self.path))?;
        Ok(self.conn.last_insert_rowid())
    }

    /// Records everything a pass found and did, in one transaction:
    /// scans, targets (those not seen again become inactive), fixes
    /// (keeping when each was first seen; those no longer pending are
    /// resolved) and one action per target.
    /// `retire`: discovery saw everything, so targets not among `outcomes`
    /// are gone (false when the Engine could not be asked).
    pub fn record_pass(&mut self, pass: i64, scans: &[ScanRow], outcomes: &[Outcome], retire: bool, now: DateTime<Utc>, error: Option<&str>) -> Result<()> {
        let path = self.path.clone();
        let err = db_err(&path);
        let tx = self.conn.transaction().map_err(&err)?;
        let now_s = time(now);
        for s in scans {
            tx.execute(
                "INSERT INTO scans (pass_id, source, image_id, at, seconds, installed, pending, security, unsupported, error, reused) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11)",
                params![pass, s.source, s.image_id, now_s, s.seconds, s.installed, s.pending, s.security, s.unsupported, s.error, s.reused],
            )
            .map_err(&err)?;
        }
        if retire {
            tx.execute("UPDATE targets SET active = 0", []).map_err(&err)?;
        }
        // One row per patch, however many targets it was deployed to.
        let mut patch_ids = std::collections::HashMap::new();
        for o in outcomes {
            let t = &o.target;
            let image_id = o.image_id.as_ref().or(t.image_id.as_ref());
            tx.execute(
                "INSERT INTO targets (kind, name, image, image_id, active, first_seen, last_seen, distro) VALUES (?1, ?2, ?3, ?4, 1, ?5, ?5, ?6)
                 ON CONFLICT (kind, name) DO UPDATE SET image = ?3, image_id = coalesce(?4, image_id), active = 1, last_seen = ?5, distro = coalesce(?6, distro)",
                params![t.kind.as_str(), t.name, t.image, image_id, now_s, o.distro],
            )
            .map_err(&err)?;
            let id: i64 = tx.query_row("SELECT id FROM targets WHERE kind = ?1 AND name = ?2", params![t.kind.as_str(), t.name], |r| r.get(0)).map_err(&err)?;
            if let Some(pending) = &o.pending {
                let deployed = o.deploy.as_ref().filter(|d| d.result == Action::Patched).map(|d| time(d.at));
                record_fixes(&tx, id, pending, &o.fixed, &now_s, deployed.as_deref()).map_err(&err)?;
            }
            if let Some(d) = &o.deploy {
                let patch_id = match &o.patch {
                    Some(p) => Some(record_patch(&tx, pass, p, &mut patch_ids, &now_s).map_err(&err)?),
                    None => None,
                };
                tx.execute(
                    "INSERT INTO deploys (pass_id, target_id, patch_id, at, result, reason, logs) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
                    params![pass, id, patch_id, time(d.at), d.result.as_str(), d.reason, d.logs],
                )
                .map_err(&err)?;
                if let (Action::RolledBack, Some(p)) = (d.result, &o.patch) {
                    tx.execute(
                        "INSERT INTO refused (image_id, fix_set, at, reason) VALUES (?1, ?2, ?3, ?4) ON CONFLICT (image_id, fix_set) DO UPDATE SET at = ?3, reason = ?4",
                        params![p.from_id, p.fix_set, time(d.at), d.reason],
                    )
                    .map_err(&err)?;
                }
            }
            tx.execute("INSERT INTO actions (pass_id, target_id, at, action, reason) VALUES (?1, ?2, ?3, ?4, ?5)", params![pass, id, now_s, o.action.as_str(), o.reason])
                .map_err(&err)?;
        }
        tx.execute("UPDATE passes SET finished_at = ?2, error = ?3, whole = ?4 WHERE id = ?1", params![pass, now_s, error, retire]).map_err(&err)?;
        tx.commit().map_err(&err)
    }

    /// The targets (kind, name) whose latest action failed for the same
    /// reason as the one before it (passes that skipped the target not
    /// counted): a failure already told.
    pub fn repeated_failures(&self) -> Result<std::collections::HashSet<(String, String)>> {
        let err = db_err(&self.path);
        let mut stmt = self
            .conn
            .prepare(
                "SELECT t.kind, t.name FROM targets t
                 JOIN actions a ON a.id = (SELECT max(id) FROM actions WHERE target_id = t.id AND action != 'skipped')
                 JOIN actions b ON b.id = (SELECT max(id) FROM actions WHERE target_id = t.id AND action != 'skipped' AND id < a.id)
                 WHERE a.action = 'failed' AND b.action = 'failed' AND a.reason IS b.reason",
            )
            .map_err(&err)?;
        let rows = stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?))).map_err(&err)?;
        rows.collect::<rusqlite::Result<_>>().map_err(&err)
    }

    /// When (and why) `fix_set` was rolled back on image `image_id`, if it
    /// was: such a set is not tried again on that image.
    pub fn refused(&self, image_id: &str, fix_set: &str) -> Result<Option<(DateTime<Utc>, Option<String>)>> {
        self.conn
            .query_row("SELECT at, reason FROM refused WHERE image_id = ?1 AND fix_set = ?2", params![image_id, fix_set], |r| Ok((parse_time(r.get(0)?), r.get(1)?)))
            .optional()
            .map(|o| o.and_then(|(at, reason)| Some((at?, reason))))
            .map_err(db_err(&self.path))
    }

    /// Every active target with its pending fixes and last action.
    pub fn status(&self, now: DateTime<Utc>) -> Result<Vec<TargetStatus>> {
        let err = db_err(&self.path);
        let mut stmt = self
            .conn
            .prepare(
                "SELECT t.id, t.kind, t.name, t.image, t.image_id, a.action, a.at, a.reason,
                   (SELECT count(*) FROM deploys WHERE target_id = t.id AND result = 'rolled-back'), t.distro FROM targets t
                 LEFT JOIN actions a ON a.id = (SELECT max(id) FROM actions WHERE target_id = t.id)
                 WHERE t.active = 1 ORDER BY t.kind, t.name",
            )
            .map_err(&err)?;
        let rows = stmt
            .query_map([], |r| {
                Ok((
                    r.get::<_, i64>(0)?,
                    TargetStatus {
                        kind: r.get(1)?,
                        name: r.get(2)?,
                        image: r.get(3)?,
                        image_id: r.get(4)?,
                        distro: r.get(9)?,
                        pending_security: 0,
                        last_action: r.get(5)?,
                        last_action_at: parse_time(r.get(6)?),
                        last_reason: r.get(7)?,
                        rollbacks: r.get(8)?,
                        exposure_seconds: None,
                        last_exposure_seconds: None,
                        fixes: Vec::new(),
                    },
                ))
            })
            .map_err(&err)?
            .collect::<rusqlite::Result<Vec<_>>>()
            .map_err(&err)?;
        let mut out = Vec::new();
        for (id, mut t) in rows {
            t.fixes = self.pending_fixes(id, now)?;
            let counted = t.fixes.iter().filter(|f| f.pending.counts());
            t.pending_security = counted.clone().count();
            t.exposure_seconds = counted.filter_map(|f| f.exposure_seconds).max();
            t.last_exposure_seconds = self.last_window(id)?;
            out.push(t);
        }
        Ok(out)
    }

    /// The longest exposure among the security fixes the target's latest
    /// patch closed.
    fn last_window(&self, target: i64) -> Result<Option<i64>> {
        let err = db_err(&self.path);
        let mut stmt = self
            .conn
            .prepare(
                "SELECT fixed_on, first_seen, resolved_at FROM fixes WHERE target_id = ?1 AND security = 1 AND held = 0
                 AND resolved_at = (SELECT max(resolved_at) FROM fixes WHERE target_id = ?1 AND security = 1 AND held = 0)",
            )
            .map_err(&err)?;
        let windows = stmt
            .query_map([target], |r| Ok((parse_time(r.get(0)?), parse_time(r.get(1)?), parse_time(r.get(2)?))))
            .map_err(&err)?
            .collect::<rusqlite::Result<Vec<_>>>()
            .map_err(&err)?;
        Ok(windows.into_iter().filter_map(|(fixed_on, first_seen, resolved)| resolved.and_then(|r| exposure(fixed_on, first_seen, Some(r), r))).max())
    }

    fn pending_fixes(&self, target: i64, now: DateTime<Utc>) -> Result<Vec<FixStatus>> {
        let err = db_err(&self.path);
        let mut stmt = self.conn.prepare(&format!("SELECT {FIX_COLUMNS} FROM fixes WHERE target_id = ?1 AND resolved_at IS NULL ORDER BY security DESC, package, arch")).map_err(&err)?;
        let fixes = stmt.query_map([target], |r| fix_status(r, 0, now)).map_err(&err)?.collect::<rusqlite::Result<Vec<_>>>().map_err(&err)?;
        Ok(fixes)
    }

    /// Security fixes of active targets pending for at least `after`
    /// (their exposure) that no notification has told of yet.
    pub fn overdue(&self, after: std::time::Duration, now: DateTime<Utc>) -> Result<Vec<Overdue>> {
        let err = db_err(&self.path);
        let mut stmt = self
            .conn
            .prepare(&format!(
                "SELECT f.id, t.kind, t.name, t.image, {} FROM fixes f JOIN targets t ON t.id = f.target_id
                 WHERE t.active = 1 AND f.resolved_at IS NULL AND f.security = 1 AND f.held = 0 AND f.overdue_told_at IS NULL
                 ORDER BY t.kind, t.name, f.package, f.arch",
                FIX_COLUMNS.split(", ").map(|c| format!("f.{c}")).collect::<Vec<_>>().join(", ")
            ))
            .map_err(&err)?;
        let rows = stmt
            .query_map([], |r| Ok(Overdue { fix_id: r.get(0)?, kind: r.get(1)?, name: r.get(2)?, image: r.get(3)?, fix: fix_status(r, 4, now)? }))
            .map_err(&err)?
            .collect::<rusqlite::Result<Vec<_>>>()
            .map_err(&err)?;
        let after = after.as_secs() as i64;
        Ok(rows.into_iter().filter(|o| o.fix.exposure_seconds.is_some_and(|s| s >= after)).collect())
    }

    /// Remembers that the fixes `ids` ([`Overdue::fix_id`]) were told of.
    pub fn told_overdue(&self, ids: &[i64], now: DateTime<Utc>) -> Result<()> {
        for id in ids {
            self.conn.execute("UPDATE fixes SET overdue_told_at = ?2 WHERE id = ?1", params![id, time(now)]).map_err(db_err(&self.path))?;
        }
        Ok(())
    }
}

/// The columns [`fix_status`] reads, in order.
const FIX_COLUMNS: &str = "package, arch, installed, candidate, suite, security, held_back, held, cves, fixed_on, first_seen";

/// A fix read from the columns [`FIX_COLUMNS`] starting at `at`.
fn fix_status(r: &rusqlite::Row, at: usize, now: DateTime<Utc>) -> rusqlite::Result<FixStatus> {
    let cves: String = r.get(at + 8)?;
    let fixed_on = parse_time(r.get(at + 9)?);
    let first_seen = parse_time(r.get(at + 10)?);
    Ok(FixStatus {
        pending: Pending {
            package: r.get(at)?,
            arch: r.get(at + 1)?,
            installed: r.get(at + 2)?,
            candidate: r.get(at + 3)?,
            suite: r.get(at + 4)?,
            security: r.get(at + 5)?,
            held_back: r.get(at + 6)?,
            held: r.get(at + 7)?,
            cves: cves.split_whitespace().map(str::to_string).collect(),
            fixed_on,
        },
        first_seen,
        exposure_seconds: exposure(fixed_on, first_seen, None, now),
    })
}

/// A security fix pending too long on one target.
#[derive(Clone, Debug)]
pub struct Overdue {
    pub fix_id: i64,
    pub kind: String,
    pub name: String,
    pub image: String,
    pub fix: FixStatus,
}

impl State {
    /// The recorded scan of the image `key` names, if any.
    pub fn recorded_scan(&self, key: &str) -> Result<Option<RecordedScan>> {
        let err = db_err(&self.path);
        let row = self
            .conn
            .query_row("SELECT image_id, installed, pending, unsupported, releases, distro FROM scan_results WHERE image_key = ?1", [key], |r| {
                Ok((r.get::<_, String>(0)?, r.get::<_, usize>(1)?, r.get::<_, String>(2)?, r.get::<_, Option<String>>(3)?, r.get::<_, String>(4)?, r.get::<_, Option<String>>(5)?))
            })
            .optional()
            .map_err(&err)?;
        let Some((image_id, installed, pending, unsupported, releases, distro)) = row else { return Ok(None) };
        let bad = |e: serde_json::Error| Error::State { path: self.path.clone(), message: format!("recorded scan of {key}: {e}") };
        Ok(Some(RecordedScan { image_id, installed, pending: serde_json::from_str(&pending).map_err(bad)?, unsupported, releases: serde_json::from_str(&releases).map_err(bad)?, distro }))
    }

    /// Records what a scan of the image `key` names found (replacing what
    /// was recorded), or that a recorded one was used again, at `now`.
    pub fn record_scan(&self, key: &str, scan: &RecordedScan, now: DateTime<Utc>) -> Result<()> {
        let pending = serde_json::to_string(&scan.pending).unwrap_or_default();
        let releases = serde_json::to_string(&scan.releases).unwrap_or_default();
        self.conn
            .execute(
                "INSERT INTO scan_results (image_key, image_id, installed, pending, unsupported, releases, scanned_at, used_at, distro) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?7, ?8)
                 ON CONFLICT (image_key) DO UPDATE SET image_id = ?2, installed = ?3, pending = ?4, unsupported = ?5, releases = ?6, scanned_at = ?7, used_at = ?7, distro = ?8",
                params![key, scan.image_id, scan.installed, pending, scan.unsupported, releases, time(now), scan.distro],
            )
            .map_err(db_err(&self.path))?;
        Ok(())
    }

    /// Marks a recorded scan as used at `now`.
    pub fn touch_scan(&self, key: &str, now: DateTime<Utc>) -> Result<()> {
        self.conn.execute("UPDATE scan_results SET used_at = ?2 WHERE image_key = ?1", params![key, time(now)]).map_err(db_err(&self.path))?;
        Ok(())
    }

    /// Forgets recorded scans not used since `since` (images nothing runs
    /// or names any more).
    pub fn forget_scans_before(&self, since: DateTime<Utc>) -> Result<()> {
        self.conn.execute("DELETE FROM scan_results WHERE used_at < ?1", [time(since)]).map_err(db_err(&self.path))?;
        Ok(())
    }

    /// Every Release file a recorded scan read, with the SHA256 it had.
    pub fn recorded_releases(&self) -> Result<BTreeMap<String, String>> {
        let err = db_err(&self.path);
        let mut stmt = self.conn.prepare("SELECT releases FROM scan_results").map_err(&err)?;
        let all = stmt.query_map([], |r| r.get::<_, String>(0)).map_err(&err)?.collect::<rusqlite::Result<Vec<_>>>().map_err(&err)?;
        let mut out = BTreeMap::new();
        for text in all {
            let releases: BTreeMap<String, String> = serde_json::from_str(&text).map_err(|e| Error::State { path: self.path.clone(), message: format!("recorded releases: {e}") })?;
            out.extend(releases);
        }
        Ok(out)
    }
}

/// What a scan of one image found, as recorded for reuse.
#[derive(Clone, Debug, PartialEq)]
pub struct RecordedScan {
    pub image_id: String,
    pub installed: usize,
    pub pending: Vec<Pending>,
    /// Why the image is not supported, when it is not.
    pub unsupported: Option<String>,
    /// The Release files the scan read and their SHA256
    /// ([`freshen_apt::probe`]).
    pub releases: BTreeMap<String, String>,
    /// The image's distribution (os-release `ID`).
    pub distro: Option<String>,
}

/// Upserts a target's pending updates and those a deploy fixed this pass: a
/// fix keeps the earliest time any target showed the same installed version
/// wanting an update (so a container started later from a known-stale image
/// is exposed since then). Fixes a deploy put into service are resolved when
/// it was accepted (`deployed`); others no longer pending, now.
fn record_fixes(tx: &rusqlite::Transaction, target: i64, pending: &[Pending], fixed: &[Pending], now: &str, deployed: Option<&str>) -> rusqlite::Result<()> {
    for p in pending.iter().chain(fixed) {
        let first_seen: Option<String> = tx
            .query_row("SELECT min(first_seen) FROM fixes WHERE package = ?1 AND arch = ?2 AND installed = ?3", params![p.package, p.arch, p.installed], |r| r.get(0))
            .optional()?
            .flatten();
        let first_seen = first_seen.unwrap_or_else(|| now.to_string());
        tx.execute(
            "INSERT INTO fixes (target_id, package, arch, installed, candidate, suite, security, held_back, held, cves, fixed_on, first_seen, last_seen)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13)
             ON CONFLICT (target_id, package, arch, installed) DO UPDATE SET candidate = ?5, suite = ?6, security = ?7, held_back = ?8, held = ?9,
                cves = ?10, fixed_on = coalesce(?11, fixed_on), first_seen = min(first_seen, ?12), last_seen = ?13, resolved_at = NULL",
            params![
                target,
                p.package,
                p.arch,
                p.installed,
                p.candidate,
                p.suite,
                p.security,
                p.held_back,
                p.held,
                p.cves.join(" "),
                p.fixed_on.map(time),
                first_seen,
                now
            ],
        )?;
    }
    if let Some(at) = deployed {
        for p in fixed {
            tx.execute(
                "UPDATE fixes SET resolved_at = ?5 WHERE target_id = ?1 AND package = ?2 AND arch = ?3 AND installed = ?4",
                params![target, p.package, p.arch, p.installed, at],
            )?;
        }
    }
    // Pending before, not seen now: no longer pending.
    tx.execute("UPDATE fixes SET resolved_at = ?3 WHERE target_id = ?1 AND resolved_at IS NULL AND last_seen <> ?2", params![target, now, deployed.unwrap_or(now)])?;
    Ok(())
}

/// Inserts a patch once (keyed by the image it wrote and its new id).
fn record_patch(tx: &rusqlite::Transaction, pass: i64, p: &PatchRecord, ids: &mut std::collections::HashMap<(String, String), i64>, now: &str) -> rusqlite::Result<i64> {
    let key = (p.image.clone(), p.to_id.clone());
    if let Some(id) = ids.get(&key) {
        return Ok(*id);
    }
    tx.execute(
        "INSERT INTO patches (pass_id, image, from_id, to_id, rollback, upgraded, fix_set, seconds, at) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
        params![pass, p.image, p.from_id, p.to_id, p.rollback, p.upgraded.join("\n"), p.fix_set, p.seconds, now],
    )?;
    let id = tx.last_insert_rowid();
    ids.insert(key, id);
    Ok(id)
}

/// Exposure of one fix: from when it was available (the later of its
/// changelog date and when freshen first saw it) to when it stopped being
/// pending, or `now`.
pub fn exposure(fixed_on: Option<DateTime<Utc>>, first_seen: Option<DateTime<Utc>>, resolved: Option<DateTime<Utc>>, now: DateTime<Utc>) -> Option<i64> {
    let available = fixed_on.into_iter().chain(first_seen).max()?;
    Some((resolved.unwrap_or(now) - available).num_seconds().max(0))
}

/// One scan, as recorded.
#[derive(Clone, Debug, Default)]
pub struct ScanRow {
    pub source: String,
    pub image_id: Option<String>,
    pub seconds: Option<f64>,
    pub installed: Option<usize>,
    pub pending: Option<usize>,
    pub security: Option<usize>,
    pub unsupported: bool,
    pub error: Option<String>,
    /// The recorded result of an earlier scan was used.
    pub reused: bool,
}

/// A target as `status` shows it.
#[derive(Clone, Debug, Serialize)]
pub struct TargetStatus {
    pub kind: String,
    pub name: String,
    pub image: String,
    pub image_id: Option<String>,
    /// The image's distribution (os-release `ID`: `debian`, `ubuntu`).
    pub distro: Option<String>,
    pub pending_security: usize,
    pub last_action: Option<String>,
    pub last_action_at: Option<DateTime<Utc>>,
    /// Why, for a skipped or failed target.
    pub last_reason: Option<String>,
    /// How many redeploys of this target were rolled back.
    pub rollbacks: usize,
    /// The oldest exposure among the pending security fixes.
    pub exposure_seconds: Option<i64>,
    /// The window the latest patch closed: the longest exposure among the
    /// security fixes it resolved.
    pub last_exposure_seconds: Option<i64>,
    pub fixes: Vec<FixStatus>,
}

impl TargetStatus {
    /// `patched 2026-11-30 06:07 UTC: 1 packages upgraded`, when there
    /// was an action.
    pub fn last_action_line(&self) -> Option<String> {
        let (a, at) = (self.last_action.as_ref()?, self.last_action_at?);
        Some(format!("{a} {}{}", at.format("%Y-%m-%d %H:%M UTC"), self.last_reason.as_ref().map(|r| format!(": {r}")).unwrap_or_default()))
    }
}

/// A pending fix as `status` shows it.
#[derive(Clone, Debug, Serialize)]
pub struct FixStatus {
    #[serde(flatten)]
    pub pending: Pending,
    pub first_seen: Option<DateTime<Utc>>,
    pub exposure_seconds: Option<i64>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{DeployRecord, Kind, Target};

    fn pending(pkg: &str, installed: &str) -> Pending {
        Pending {
            package: pkg.into(),
            arch: "amd64".into(),
            installed: installed.into(),
            candidate: format!("{installed}+1"),
            suite: "s-security".into(),
            security: true,
            held_back: None,
            held: false,
            cves: vec!["CVE-2024-1".into()],
            fixed_on: None,
        }
    }

    /// A new state database in a directory of its own, and the time the
    /// tests start at.
    pub(super) fn fresh() -> (tempfile::TempDir, State, DateTime<Utc>) {
        let dir = tempfile::tempdir().unwrap();
        let s = State::open_writer(dir.path()).unwrap();
        (dir, s, DateTime::parse_from_rfc3339("2026-01-01T00:00:00Z").unwrap().with_timezone(&Utc))
    }

    fn outcome(name: &str, p: Vec<Pending>) -> Outcome {
        let target = Target { kind: Kind::Container, name: name.into(), image: "i:1".into(), image_id: Some("sha256:1".into()), source: None, skip: None };
        Outcome { pending: Some(p), ..Outcome::new(target, Action::Skipped, Some("dry run".into())) }
    }

    #[test]
    fn first_seen_survives_and_fixes_resolve() {
        let (dir, mut s, t0) = fresh();
        let t1 = t0 + chrono::Duration::hours(1);
        let pass = s.begin_pass(t0, true).unwrap();
        s.record_pass(pass, &[], &[outcome("a", vec![pending("libc6", "1"), pending("zlib", "2")])], true, t0, None).unwrap();
        let pass = s.begin_pass(t1, true).unwrap();
        // b starts later from the same stale versions: exposed since t0.
        s.record_pass(pass, &[], &[outcome("a", vec![pending("libc6", "1")]), outcome("b", vec![pending("libc6", "1")])], true, t1, None).unwrap();
        let st = State::open_reader(dir.path()).unwrap().status(t1).unwrap();
        assert_eq!(st.len(), 2);
        for t in &st {
            assert_eq!((t.pending_security, t.exposure_seconds), (1, Some(3600)), "{}", t.name);
            assert_eq!(t.fixes[0].first_seen, Some(t0));
            assert_eq!(t.last_action.as_deref(), Some("skipped"));
        }
        // The schema version is checked on both sides.
        drop(s);
        let conn = Connection::open(dir.path().join(FILE)).unwrap();
        conn.pragma_update(None, "user_version", SCHEMA_VERSION + 1).unwrap();
        drop(conn);
        for e in [State::open_writer(dir.path()).err().unwrap(), State::open_reader(dir.path()).err().unwrap()] {
            assert!(e.to_string().contains("is newer than this freshen understands"), "{e}");
        }
    }

    #[test]
    fn deploys_resolve_fixes_when_accepted_and_rollbacks_are_remembered() {
        let (dir, mut s, t0) = fresh();
        let pass = s.begin_pass(t0, false).unwrap();
        s.record_pass(pass, &[], &[outcome("a", vec![pending("libc6", "1")]), outcome("b", vec![pending("libc6", "1")])], true, t0, None).unwrap();
        let patch = PatchRecord {
            image: "docker-daemon:i:1".into(),
            from_id: "sha256:1".into(),
            to_id: "sha256:2".into(),
            rollback: Some("i:freshen-rollback-1".into()),
            upgraded: vec!["libc6:amd64 1 1+1".into()],
            fix_set: "libc6:amd64=1+1".into(),
            seconds: 3.0,
        };
        let (t1, accepted, t2) = (t0 + chrono::Duration::seconds(50), t0 + chrono::Duration::seconds(65), t0 + chrono::Duration::seconds(90));
        let deployed = |result, at| DeployRecord { result, reason: Some("why".into()), logs: Some("last line".into()), at };
        let a = Outcome { action: Action::Patched, patch: Some(patch.clone()), deploy: Some(deployed(Action::Patched, accepted)), fixed: vec![pending("libc6", "1")], ..outcome("a", vec![]) };
        let b = Outcome { action: Action::RolledBack, patch: Some(patch.clone()), deploy: Some(deployed(Action::RolledBack, accepted)), ..outcome("b", vec![pending("libc6", "1")]) };
        assert_eq!(s.refused("sha256:1", &patch.fix_set).unwrap(), None);
        let pass = s.begin_pass(t1, false).unwrap();
        s.record_pass(pass, &[], &[a, b], true, t2, None).unwrap();
        let (at, reason) = s.refused("sha256:1", &patch.fix_set).unwrap().unwrap();
        assert_eq!((at, reason.as_deref()), (accepted, Some("why")));
        assert_eq!(s.refused("sha256:1", "libc6:amd64=1+2").unwrap(), None, "a newer fix is tried");
        let st = State::open_reader(dir.path()).unwrap().status(t2).unwrap();
        let (a, b) = (&st[0], &st[1]);
        assert_eq!((a.pending_security, a.rollbacks, b.pending_security, b.rollbacks), (0, 0, 1, 1));
        let resolved: String = s.conn.query_row("SELECT resolved_at FROM fixes WHERE target_id = (SELECT id FROM targets WHERE name = 'a')", [], |r| r.get(0)).unwrap();
        assert_eq!(resolved, time(accepted), "exposure ends when the patched container was accepted");
        assert_eq!(a.last_exposure_seconds, Some(65), "first seen at t0, accepted 65 s later");
        let patches: i64 = s.conn.query_row("SELECT count(*) FROM patches", [], |r| r.get(0)).unwrap();
        assert_eq!(patches, 1, "one patch deployed to two targets is one row");
    }

    #[test]
    fn a_failure_for_the_reason_told_before_is_a_repeat() {
        let (_dir, mut s, t0) = fresh();
        let failed = |name: &str, why: &str| Outcome { action: Action::Failed, reason: Some(why.into()), ..outcome(name, vec![]) };
        let skipped = |name: &str| outcome(name, vec![]);
        let unchanged = |name: &str| Outcome { action: Action::Unchanged, reason: None, ..outcome(name, vec![]) };
        let passes: [Vec<Outcome>; 4] = [
            vec![failed("a", "archive unreachable"), failed("b", "apt failed"), failed("c", "x")],
            vec![skipped("a"), failed("b", "apt failed again"), unchanged("c")],
            vec![failed("a", "archive unreachable"), failed("b", "apt failed again"), failed("c", "x")],
            vec![],
        ];
        let mut repeats = Vec::new();
        for (i, outcomes) in passes.iter().enumerate() {
            let at = t0 + chrono::Duration::hours(i as i64);
            let pass = s.begin_pass(at, true).unwrap();
            s.record_pass(pass, &[], outcomes, false, at, None).unwrap();
            let mut r: Vec<String> = s.repeated_failures().unwrap().into_iter().map(|(_, n)| n).collect();
            r.sort();
            repeats.push(r);
        }
        // a: the same reason with a skip between; b: a new reason, then
        // the same again; c: a failure after a pass that went well is new.
        assert_eq!(repeats, [vec![], vec![], vec!["a".to_string(), "b".to_string()], vec!["a".to_string(), "b".to_string()]]);
    }

    #[test]
    fn recorded_scans_read_back_until_forgotten() {
        let (_dir, s, t0) = fresh();
        let releases = |d: &str| BTreeMap::from([("http://m/d/InRelease".to_string(), d.to_string())]);
        let a = RecordedScan { image_id: "sha256:a".into(), installed: 3, pending: vec![pending("libc6", "1")], unsupported: None, releases: releases("11"), distro: Some("debian".into()) };
        let b = RecordedScan { image_id: "sha256:b".into(), installed: 0, pending: vec![], unsupported: Some("no dpkg database".into()), releases: BTreeMap::new(), distro: None };
        s.record_scan("docker-daemon:sha256:a", &a, t0).unwrap();
        s.record_scan("docker-daemon:sha256:b", &b, t0).unwrap();
        assert_eq!(s.recorded_scan("docker-daemon:sha256:a").unwrap(), Some(a.clone()));
        assert_eq!(s.recorded_scan("docker-daemon:sha256:b").unwrap(), Some(b));
        assert_eq!(s.recorded_scan("docker-daemon:sha256:c").unwrap(), None);
        assert_eq!(s.recorded_releases().unwrap(), releases("11"));
        // A new scan replaces the record; one not used since goes.
        let t1 = t0 + chrono::Duration::hours(1);
        s.record_scan("docker-daemon:sha256:a", &RecordedScan { releases: releases("22"), ..a }, t1).unwrap();
        s.forget_scans_before(t1).unwrap();
        assert_eq!(s.recorded_scan("docker-daemon:sha256:b").unwrap(), None);
        assert_eq!(s.recorded_releases().unwrap(), releases("22"));
        s.touch_scan("docker-daemon:sha256:a", t1 + chrono::Duration::hours(1)).unwrap();
        s.forget_scans_before(t1 + chrono::Duration::minutes(1)).unwrap();
        assert!(s.recorded_scan("docker-daemon:sha256:a").unwrap().is_some(), "touched: kept");
    }

    #[test]
    fn exposure_starts_at_the_later_of_changelog_and_first_seen() {
        let t = |h: i64| DateTime::parse_from_rfc3339("2026-01-01T00:00:00Z").unwrap().with_timezone(&Utc) + chrono::Duration::hours(h);
        assert_eq!(exposure(Some(t(2)), Some(t(1)), None, t(5)), Some(3 * 3600));
        assert_eq!(exposure(None, Some(t(1)), Some(t(3)), t(5)), Some(2 * 3600));
        assert_eq!(exposure(None, None, None, t(5)), None);
    }
}
