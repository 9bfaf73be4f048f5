//! apt sources: one-line `deb [opts] URI SUITE COMPONENT...` entries in
//! `sources.list` and `*.list`, and deb822 stanzas in `*.sources`.

use crate::auth::{split_userinfo, Credentials};
use crate::aptconf::to_bool;
use crate::deb822::paragraphs;
use crate::error::{Error, Result};

/// One `deb` line, or one (URI, suite) pair of a deb822 stanza.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SourceEntry {
    /// Base URI without a trailing `/`, and without the `user:password@`
    /// it may carry (those are in `credentials`).
    pub uri: String,
    /// `user:password@` of the URI as written; sent to this source only,
    /// never shown.
    pub credentials: Option<Credentials>,
    pub suite: String,
    /// Empty for a flat repository (suite ending in `/`).
    pub components: Vec<String>,
    /// `arch=` / `Architectures:`; `None` means the system's architectures.
    pub architectures: Option<Vec<String>>,
    /// `signed-by=` / `Signed-By:`: key file paths, fingerprints, or an
    /// inline armored key block.
    pub signed_by: Option<String>,
    /// `trusted=yes`: apt skips signature checks. freshen refuses it.
    pub trusted: bool,
    /// `check-valid-until=` / `Check-Valid-Until:`; `None` follows
    /// `Acquire::Check-Valid-Until`.
    pub check_valid_until: Option<bool>,
    /// `check-date=` / `Check-Date:`; `None` follows `Acquire::Check-Date`.
    pub check_date: Option<bool>,
    /// The file and line it came from.
    pub origin: String,
}

impl SourceEntry {
    pub fn is_flat(&self) -> bool {
        self.components.is_empty()
    }

    /// The directory holding `InRelease` for this source.
    pub fn dist_url(&self) -> String {
        if self.is_flat() {
            match self.suite.trim_end_matches('/').trim_start_matches("./") {
                "" | "." => self.uri.clone(),
                s => format!("{}/{s}", self.uri),
            }
        } else {
            format!("{}/dists/{}", self.uri, self.suite)
        }
    }

    /// The architectures whose indexes apt fetches for this source: the
    /// system's (native first, then dpkg's foreign ones), limited by
    /// `arch=` / `Architectures:`.
    pub fn architectures_of(&self, native: &str, foreign: &[String]) -> Vec<String> {
        std::iter::once(native.to_string())
            .chain(foreign.iter().cloned())
            .filter(|a| self.architectures.as_ref().is_none_or(|only| only.contains(a)))
            .collect()
    }

    /// A short name for messages: `URI SUITE`.
    pub fn name(&self) -> String {
        format!("{} {}", self.uri, self.suite)
    }
}

fn expand(s: &str, arch: &str) -> String {
    s.replace("$(ARCH)", arch)
}

/// Parses a one-line format file (`sources.list`, `*.list`).
pub fn parse_list(text: &str, file: &str, arch: &str) -> Result<Vec<SourceEntry>> {
    let mut out = Vec::new();
    for (n, raw) in text.lines().enumerate() {
        let line = raw.split('#').next().unwrap_or("").trim();
        if line.is_empty() {
            continue;
        }
        let perr = |message: String| Error::Parse { file: file.to_string(), line: n + 1, message };
        let (kind, mut rest) = line.split_once(char::is_whitespace).ok_or_else(|| perr(format!("malformed entry `{line}`")))?;
        match kind {
            "deb" => {}
            "deb-src" => continue,
            other => return Err(perr(format!("unknown entry type `{other}`"))),
        }
        rest = rest.trim_start();
        let mut architectures = None;
        let mut signed_by = None;
        let mut trusted = false;
        let (mut check_valid_until, mut check_date) = (None, None);
        if let Some(r) = rest.strip_prefix('[') {
            let close = r.find(']').ok_or_else(|| perr("unterminated option list `[`".into()))?;
            for opt in r[..close].split_whitespace() {
                let (k, v) = opt.split_once('=').ok_or_else(|| perr(format!("malformed option `{opt}`")))?;
                match k {
                    "arch" => architectures = Some(v.split(',').map(str::to_string).collect()),
                    "signed-by" => signed_by = Some(v.split(',').collect::<Vec<_>>().join(" ")),
                    "trusted" => trusted = v == "yes",
                    "check-valid-until" => check_valid_until = to_bool(v),
                    "check-date" => check_date = to_bool(v),
                    _ => {}
                }
            }
            rest = r[close + 1..].trim_start();
        }
        // A `cdrom:[Label with spaces]/` URI is one word to apt.
        let uri_end = match rest.strip_prefix("cdrom:[").and_then(|r| r.find(']')).map(|c| c + "cdrom:[".len()) {
            Some(close) => rest[close..].find(char::is_whitespace).map_or(rest.len(), |i| close + i),
            None => rest.find(char::is_whitespace).unwrap_or(rest.len()),
        };
        let (uri, rest) = rest.split_at(uri_end);
        if uri.is_empty() {
            return Err(perr("missing URI".into()));
        }
        let mut words = rest.split_whitespace();
        let suite = words.next().ok_or_else(|| perr("missing suite".into()))?;
        let components: Vec<String> = words.map(str::to_string).collect();
        if components.is_empty() && !suite.ends_with('/') {
            return Err(perr(format!("suite `{suite}` has no components")));
        }
        let (uri, credentials) = split_userinfo(uri.trim_end_matches('/'));
        out.push(SourceEntry {
            uri,
            credentials,
            suite: expand(suite, arch),
            components,
            architectures,
            signed_by,
            trusted,
            check_valid_until,
            check_date,
            origin: format!("{file}:{}", n + 1),
        });
    }
    Ok(out)
}

/// Parses a deb822 `*.sources` file.
pub fn parse_sources(text: &str, file: &str, arch: &str) -> Result<Vec<SourceEntry>> {
    let mut out = Vec::new();
    for p in paragraphs(text) {
        let p = p.map_err(|e| Error::Parse { file: file.to_string(), line: e.line, message: e.message })?;
        let perr = |message: String| Error::Parse { file: file.to_string(), line: p.line, message };
        if p.get("Enabled").is_some_and(|v| v.eq_ignore_ascii_case("no")) {
            continue;
        }
        let types = p.get("Types").ok_or_else(|| perr("stanza without Types".into()))?;
        if !types.split_whitespace().any(|t| t == "deb") {
            continue;
        }
        let uris = p.get("URIs").ok_or_else(|| perr("stanza without URIs".into()))?;
        let suites = p.get("Suites").ok_or_else(|| perr("stanza without Suites".into()))?;
        let components: Vec<String> = p.get("Components").unwrap_or("").split_whitespace().map(str::to_string).collect();
        let architectures = p.get("Architectures").map(|a| a.split_whitespace().map(str::to_string).collect());
        let signed_by = p.get("Signed-By").map(str::to_string);
        let trusted = p.get("Trusted").is_some_and(|v| v.eq_ignore_ascii_case("yes"));
        let check_valid_until = p.get("Check-Valid-Until").and_then(to_bool);
        let check_date = p.get("Check-Date").and_then(to_bool);
        for uri in uris.split_whitespace() {
            for suite in suites.split_whitespace() {
                if components.is_empty() && !suite.ends_with('/') {
                    return Err(perr(format!("suite `{suite}` has no components")));
                }
                let (uri, credentials) = split_userinfo(uri.trim_end_matches('/'));
                out.push(SourceEntry {
                    uri,
                    credentials,
                    suite: expand(suite, arch),
                    components: if suite.ends_with('/') { Vec::new() } else { components.clone() },
                    architectures: architectures.clone(),
                    signed_by: signed_by.clone(),
                    trusted,
                    check_valid_until,
                    check_date,
                    origin: format!("{file}:{}", p.line),
                });
            }
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_line() {
        let s = parse_list(
            "# c\ndeb [arch=amd64 signed-by=/usr/share/keyrings/k.gpg] http://deb.debian.org/debian/ bookworm main contrib\ndeb-src http://x y z\ndeb http://r ./\n",
            "sources.list",
            "amd64",
        )
        .unwrap();
        assert_eq!(s.len(), 2);
        assert_eq!(s[0].uri, "http://deb.debian.org/debian");
        assert_eq!(s[0].components, vec!["main", "contrib"]);
        assert_eq!(s[0].signed_by.as_deref(), Some("/usr/share/keyrings/k.gpg"));
        assert_eq!(s[0].check_valid_until, None);
        let snap = parse_list("deb [check-valid-until=no] http://snapshot.debian.org/archive/debian/20240101T000000Z bookworm main\n", "l", "amd64").unwrap();
        assert_eq!(snap[0].check_valid_until, Some(false));
        assert_eq!(s[0].dist_url(), "http://deb.debian.org/debian/dists/bookworm");
        assert!(s[1].is_flat());
        assert_eq!(s[1].dist_url(), "http://r");
        let e = parse_list("deb http://x bookworm\n", "a.list", "amd64").unwrap_err();
        assert_eq!(e.to_string(), "a.list:1: suite `bookworm` has no components");
    }

    #[test]
    fn deb822() {
        let s = parse_sources(
            "Types: deb deb-src\nURIs: http://a http://b\nSuites: noble noble-security\nComponents: main universe\nSigned-By: /k.gpg\n\nTypes: deb\nURIs: http://c\nSuites: x\nComponents: main\nEnabled: no\n",
            "ubuntu.sources",
            "amd64",
        )
        .unwrap();
        assert_eq!(s.len(), 4);
        assert_eq!(s[3].name(), "http://b noble-security");
        let s = parse_list("deb https://me:secret@host/debian stable main\n", "a.list", "amd64").unwrap();
        assert_eq!(s[0].name(), "https://host/debian stable");
        assert!(s[0].credentials.is_some());
        let s = parse_list("deb cdrom:[Debian GNU/Linux 12 _Bookworm_]/ bookworm main\n", "a.list", "amd64").unwrap();
        assert_eq!(s[0].uri, "cdrom:[Debian GNU/Linux 12 _Bookworm_]");
        assert_eq!(s[0].suite, "bookworm");
    }
}
