//! apt preferences (`/etc/apt/preferences`, `preferences.d/*`): pins.

use crate::deb822::paragraphs;
use crate::error::{Error, Result};
use crate::release::Release;

/// A pattern as apt accepts it: a glob (`*`, `?`, `[...]`), or `/regex/`.
#[derive(Clone, Debug)]
pub enum Pattern {
    Glob(String),
    Regex(regex_lite::Regex),
}

impl Pattern {
    pub fn parse(s: &str) -> std::result::Result<Pattern, String> {
        let s = s.trim().trim_matches('"');
        if s.len() >= 2 && s.starts_with('/') && s.ends_with('/') {
            regex_lite::Regex::new(&s[1..s.len() - 1]).map(Pattern::Regex).map_err(|e| format!("invalid regex `{s}`: {e}"))
        } else {
            Ok(Pattern::Glob(s.to_string()))
        }
    }

    pub fn matches(&self, text: &str) -> bool {
        match self {
            Pattern::Glob(g) => glob_match(g.as_bytes(), text.as_bytes()),
            Pattern::Regex(r) => r.is_match(text),
        }
    }
}

/// fnmatch-style matching of `*`, `?` and `[...]`.
pub fn glob_match(p: &[u8], t: &[u8]) -> bool {
    let (mut pi, mut ti) = (0, 0);
    let (mut star_p, mut star_t) = (usize::MAX, 0);
    while ti < t.len() {
        if pi < p.len() {
            match p[pi] {
                b'*' => {
                    star_p = pi;
                    star_t = ti;
                    pi += 1;
                    continue;
                }
                b'?' => {
                    pi += 1;
                    ti += 1;
                    continue;
                }
                b'[' => {
                    if let Some(end) = p[pi + 1..].iter().position(|&c| c == b']').map(|e| e + pi + 1) {
                        let set = &p[pi + 1..end];
                        let (neg, set) = match set.first() {
                            Some(b'!') | Some(b'^') => (true, &set[1..]),
                            _ => (false, set),
                        };
                        let mut hit = false;
                        let mut i = 0;
                        while i < set.len() {
                            if i + 2 < set.len() && set[i + 1] == b'-' {
                                hit |= set[i] <= t[ti] && t[ti] <= set[i + 2];
                                i += 3;
                            } else {
                                hit |= set[i] == t[ti];
                                i += 1;
                            }
                        }
                        if hit != neg {
                            pi = end + 1;
                            ti += 1;
                            continue;
                        }
                    } else if t[ti] == b'[' {
                        pi += 1;
                        ti += 1;
                        continue;
                    }
                }
                c if c == t[ti] => {
                    pi += 1;
                    ti += 1;
                    continue;
                }
                _ => {}
            }
        }
        if star_p == usize::MAX {
            return false;
        }
        pi = star_p + 1;
        star_t += 1;
        ti = star_t;
    }
    p[pi..].iter().all(|&c| c == b'*')
}

/// What a pin selects.
#[derive(Clone, Debug)]
pub enum PinKind {
    /// `Pin: release a=...,n=...,o=...,l=...,c=...,v=...`
    Release(Vec<(char, Pattern)>),
    /// `Pin: origin HOST`
    Origin(Pattern),
    /// `Pin: version 1.2*`
    Version(Pattern),
}

/// One preferences stanza.
#[derive(Clone, Debug)]
pub struct Pin {
    /// `None` for `Package: *` (a generic pin, applied to archives).
    pub packages: Option<Vec<Pattern>>,
    pub kind: PinKind,
    pub priority: i32,
    pub origin: String,
}

/// The facts of an archive that release and origin pins look at.
pub struct ArchiveFacts<'a> {
    pub release: &'a Release,
    /// Host of the source URI (`origin` pins), empty for local sources.
    pub host: &'a str,
    pub component: &'a str,
}

impl Pin {
    pub fn applies_to_package(&self, name: &str) -> bool {
        match &self.packages {
            None => true,
            Some(p) => p.iter().any(|p| p.matches(name)),
        }
    }

    /// Whether the pin matches an archive (release or origin pins).
    pub fn matches_archive(&self, a: &ArchiveFacts) -> bool {
        match &self.kind {
            PinKind::Origin(p) => p.matches(a.host),
            PinKind::Version(_) => false,
            PinKind::Release(conds) => conds.iter().all(|(k, p)| {
                let r = a.release;
                let val = match k {
                    'a' => r.suite.as_deref(),
                    'n' => r.codename.as_deref(),
                    'o' => r.origin.as_deref(),
                    'l' => r.label.as_deref(),
                    'c' => Some(a.component),
                    'v' => r.version.as_deref(),
                    'b' => None,
                    _ => None,
                };
                // A bare value names the archive or the codename.
                if *k == '*' {
                    return r.suite.as_deref().is_some_and(|s| p.matches(s)) || r.codename.as_deref().is_some_and(|s| p.matches(s));
                }
                val.is_some_and(|v| p.matches(v))
            }),
        }
    }
}

/// Parses a preferences file.
pub fn parse_preferences(text: &str, file: &str) -> Result<Vec<Pin>> {
    let mut out = Vec::new();
    for p in paragraphs(text) {
        let p = p.map_err(|e| Error::Parse { file: file.to_string(), line: e.line, message: e.message })?;
        let perr = |line: usize, message: String| Error::Parse { file: file.to_string(), line, message };
        if p.get("Package").is_none() && p.get("Pin").is_none() {
            continue; // only Explanation fields
        }
        let pkg = p.field("Package").ok_or_else(|| perr(p.line, "pin without a Package field".into()))?;
        let pin = p.field("Pin").ok_or_else(|| perr(p.line, "stanza without a Pin field".into()))?;
        let prio = p.field("Pin-Priority").ok_or_else(|| perr(p.line, "stanza without Pin-Priority".into()))?;
        let priority: i32 = prio.value().parse().map_err(|_| perr(prio.line, format!("invalid Pin-Priority `{}`", prio.value())))?;
        let packages = if pkg.value() == "*" {
            None
        } else {
            Some(pkg.value().split_whitespace().map(Pattern::parse).collect::<std::result::Result<Vec<_>, _>>().map_err(|m| perr(pkg.line, m))?)
        };
        let (what, arg) = pin.value().split_once(char::is_whitespace).unwrap_or((pin.value(), ""));
        let arg = arg.trim();
        let kind = match what {
            "version" => PinKind::Version(Pattern::parse(arg).map_err(|m| perr(pin.line, m))?),
            "origin" => PinKind::Origin(Pattern::parse(arg).map_err(|m| perr(pin.line, m))?),
            "release" => {
                let mut conds = Vec::new();
                for part in arg.split(',') {
                    let part = part.trim();
                    if part.is_empty() {
                        continue;
                    }
                    match part.split_once('=') {
                        Some((k, v)) if k.trim().len() == 1 => {
                            conds.push((k.trim().chars().next().unwrap_or('*'), Pattern::parse(v).map_err(|m| perr(pin.line, m))?))
                        }
                        Some((k, _)) => return Err(perr(pin.line, format!("unknown release key `{k}`"))),
                        None => conds.push(('*', Pattern::parse(part).map_err(|m| perr(pin.line, m))?)),
                    }
                }
                PinKind::Release(conds)
            }
            other => return Err(perr(pin.line, format!("unknown pin type `{other}` (expected release, origin or version)"))),
        };
        out.push(Pin { packages, kind, priority, origin: format!("{file}:{}", p.line) });
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn globs() {
        assert!(glob_match(b"lib*", b"libc6"));
        assert!(glob_match(b"1.2*", b"1.2.3-1"));
        assert!(!glob_match(b"1.2*", b"1.3"));
        assert!(glob_match(b"a?c", b"abc"));
        assert!(glob_match(b"[ab]x", b"bx"));
        assert!(!glob_match(b"[!ab]x", b"bx"));
        assert!(glob_match(b"*", b""));
    }

    #[test]
    fn parses_pins() {
        let pins = parse_preferences(
            "Explanation: x\nPackage: *\nPin: release a=bookworm-backports, o=Debian\nPin-Priority: 100\n\nPackage: hello lib*\nPin: version 1.0*\nPin-Priority: 1001\n\nPackage: *\nPin: origin \"deb.example.org\"\nPin-Priority: -1\n",
            "prefs",
        )
        .unwrap();
        assert_eq!(pins.len(), 3);
        assert!(pins[1].applies_to_package("libfoo"));
        let r = Release { suite: Some("bookworm-backports".into()), origin: Some("Debian".into()), ..Default::default() };
        assert!(pins[0].matches_archive(&ArchiveFacts { release: &r, host: "x", component: "main" }));
        assert!(pins[2].matches_archive(&ArchiveFacts { release: &r, host: "deb.example.org", component: "main" }));
        assert!(parse_preferences("Package: *\nPin: nope x\nPin-Priority: 1\n", "p").is_err());
    }
}
