//! `Release` files: what an archive suite says about itself, and the
//! SHA256 of every index in it.

use std::collections::HashMap;

use chrono::{DateTime, Utc};

use crate::deb822::paragraphs;

/// A parsed Release file.
#[derive(Clone, Debug, Default)]
pub struct Release {
    pub origin: Option<String>,
    pub label: Option<String>,
    /// The `Suite` field (apt's "archive", e.g. `oldstable-security`).
    pub suite: Option<String>,
    pub codename: Option<String>,
    pub version: Option<String>,
    pub date: Option<DateTime<Utc>>,
    pub valid_until: Option<DateTime<Utc>>,
    pub components: Vec<String>,
    pub architectures: Vec<String>,
    pub not_automatic: bool,
    pub but_automatic_upgrades: bool,
    pub acquire_by_hash: bool,
    /// path → (sha256 hex, size)
    pub sha256: HashMap<String, (String, u64)>,
}

/// Parses an RFC 2822 date as found in Release files and changelogs
/// (`Sat, 10 May 2025 09:05:58 UTC`, `Mon, 12 May 2025 10:00:00 +0200`).
pub fn parse_date(s: &str) -> Option<DateTime<Utc>> {
    let s = s.trim();
    let fixed;
    let s = if let Some(p) = s.strip_suffix(" UTC").or_else(|| s.strip_suffix(" GMT")).or_else(|| s.strip_suffix(" Z")) {
        fixed = format!("{p} +0000");
        fixed.as_str()
    } else {
        s
    };
    DateTime::parse_from_rfc2822(s).ok().map(|d| d.with_timezone(&Utc))
}

impl Release {
    /// Parses the (already verified) text of a Release file.
    pub fn parse(text: &str) -> Result<Release, String> {
        let mut it = paragraphs(text);
        let p = match it.next() {
            Some(Ok(p)) => p,
            Some(Err(e)) => return Err(format!("line {}: {}", e.line, e.message)),
            None => return Err("empty Release file".into()),
        };
        let yes = |f: &str| p.get(f).is_some_and(|v| v.eq_ignore_ascii_case("yes"));
        let date_field = |f: &str| -> Result<Option<DateTime<Utc>>, String> {
            match p.get(f) {
                None => Ok(None),
                Some(v) => parse_date(v).map(Some).ok_or_else(|| format!("invalid {f} `{v}`")),
            }
        };
        let mut sha256 = HashMap::new();
        if let Some(f) = p.field("SHA256") {
            for (i, line) in f.raw.lines().enumerate().skip(1) {
                let w: Vec<&str> = line.split_whitespace().collect();
                if w.is_empty() {
                    continue;
                }
                let [hash, size, path] = w.as_slice() else {
                    return Err(format!("line {}: malformed SHA256 entry `{}`", f.line + i, line.trim()));
                };
                let size = size.parse::<u64>().map_err(|_| format!("line {}: malformed size `{size}`", f.line + i))?;
                if hash.len() != 64 || !hash.bytes().all(|b| b.is_ascii_hexdigit()) {
                    return Err(format!("line {}: malformed SHA256 `{hash}`", f.line + i));
                }
                sha256.insert(path.to_string(), (hash.to_ascii_lowercase(), size));
            }
        }
        let words = |f: &str| p.get(f).map(|v| v.split_whitespace().map(str::to_string).collect()).unwrap_or_default();
        Ok(Release {
            origin: p.get("Origin").map(str::to_string),
            label: p.get("Label").map(str::to_string),
            suite: p.get("Suite").map(str::to_string),
            codename: p.get("Codename").map(str::to_string),
            version: p.get("Version").map(str::to_string),
            date: date_field("Date")?,
            valid_until: date_field("Valid-Until")?,
            components: words("Components"),
            architectures: words("Architectures"),
            not_automatic: yes("NotAutomatic"),
            but_automatic_upgrades: yes("ButAutomaticUpgrades"),
            acquire_by_hash: yes("Acquire-By-Hash"),
            sha256,
        })
    }

    /// Refuses a Release whose `Valid-Until` has passed or whose `Date` is
    /// in the future (beyond a small clock skew), as apt does.
    /// `valid_until`: enforce `Valid-Until` (apt's `Check-Valid-Until`);
    /// `date`: refuse a `Date` in the future (`Check-Date`, which also
    /// turns off the `Valid-Until` check when false, as in apt).
    pub fn check_dates(&self, now: DateTime<Utc>, valid_until: bool, date: bool) -> Result<(), String> {
        if !date {
            return Ok(());
        }
        if let Some(v) = self.valid_until.filter(|_| valid_until) {
            if v < now {
                return Err(format!(
                    "Release file expired on {} (Valid-Until; apt's check-valid-until=no turns this check off)",
                    v.format("%Y-%m-%d %H:%M:%S UTC")
                ));
            }
        }
        if let Some(d) = self.date {
            if d > now + chrono::Duration::minutes(10) {
                return Err(format!("Release file is dated in the future ({})", d.format("%Y-%m-%d %H:%M:%S UTC")));
            }
        }
        Ok(())
    }

    /// The default apt priority of this archive's versions.
    pub fn default_priority(&self) -> i32 {
        match (self.not_automatic, self.but_automatic_upgrades) {
            (true, true) => 100,
            (true, false) => 1,
            _ => 500,
        }
    }

    /// Whether apt counts this archive as a security archive.
    pub fn is_security(&self) -> bool {
        self.suite.as_deref().is_some_and(|s| s.ends_with("-security"))
            || self.codename.as_deref().is_some_and(|s| s.ends_with("-security"))
            || matches!(self.label.as_deref(), Some("Debian-Security") | Some("Ubuntu-Security"))
    }

    /// The Release's path of `rel` (e.g. `main/binary-amd64/Packages`),
    /// allowing for Debian's security archive, which lists components as
    /// `updates/main` while sources name `main` (and the reverse).
    pub fn index_path(&self, component: &str, rel: &str) -> Option<String> {
        let direct = format!("{component}/{rel}");
        if self.has_index(&direct) {
            return Some(direct);
        }
        let alt = match component.strip_prefix("updates/") {
            Some(c) => format!("{c}/{rel}"),
            None => format!("updates/{component}/{rel}"),
        };
        self.has_index(&alt).then_some(alt)
    }

    fn has_index(&self, base: &str) -> bool {
        ["", ".xz", ".gz"].iter().any(|ext| self.sha256.contains_key(&format!("{base}{ext}")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_release() {
        let r = Release::parse("Origin: Debian\nLabel: Debian-Security\nSuite: oldstable-security\nCodename: bookworm-security\nDate: Thu, 26 Nov 2026 21:03:35 UTC\nValid-Until: Thu, 03 Dec 2026 21:03:35 UTC\nComponents: updates/main\nSHA256:\n 30beba3da390282e6130d9949f8c269844f0d64183ffbeeb4f482ee97e204fcf  2553701 main/binary-amd64/Packages\n").unwrap();
        assert!(r.is_security());
        assert_eq!(r.index_path("main", "binary-amd64/Packages").as_deref(), Some("main/binary-amd64/Packages"));
        assert_eq!(r.index_path("updates/main", "binary-amd64/Packages").as_deref(), Some("main/binary-amd64/Packages"));
        let now = parse_date("Fri, 27 Nov 2026 00:00:00 +0000").unwrap();
        assert!(r.check_dates(now, true, true).is_ok());
        let later = parse_date("Fri, 04 Dec 2026 00:00:00 +0000").unwrap();
        assert!(r.check_dates(later, true, true).unwrap_err().contains("expired"));
        assert!(r.check_dates(later, false, true).is_ok());
        assert!(r.check_dates(later, true, false).is_ok());
        let earlier = parse_date("Wed, 25 Nov 2026 00:00:00 +0000").unwrap();
        assert!(r.check_dates(earlier, true, true).unwrap_err().contains("future"));
        assert!(Release::parse("SHA256:\n zz 1 x\n").is_err());
    }
}
