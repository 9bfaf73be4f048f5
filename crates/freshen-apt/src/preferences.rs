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
    /// `Pin: release a=...,n=...,o=...,l=...,c=...,v=...`; empty matches all.
    Release(Vec<(char, Pattern)>),
    /// `Pin: origin HOST`
    Origin(Pattern),
    /// `Pin: version 1.2*`
    Version(Pattern),
}

/// apt's `NEVER_PIN` (`Pin-Priority: never`, only for `Package: *`).
pub const NEVER_PIN: i32 = i16::MIN as i32;

/// One name of a `Package:` line: `NAME`, `NAME:ARCH`, `src:NAME`, with
/// globs or `/regex/` allowed for the name.
#[derive(Clone, Debug)]
pub struct PackageSel {
    /// `src:NAME`: the versions built from source package NAME.
    pub source: bool,
    pub name: Pattern,
    /// `:ARCH`; without one apt pins the native architecture (and `all`).
    pub arch: Option<String>,
}

impl PackageSel {
    fn parse(s: &str) -> std::result::Result<PackageSel, String> {
        let (source, rest) = match s.strip_prefix("src:") {
            Some(r) => (true, r),
            None => (false, s),
        };
        // The architecture follows the last `:` (not inside a /regex/).
        let (name, arch) = match rest.rfind(':') {
            Some(i) if !(rest.starts_with('/') && rest.ends_with('/')) => (&rest[..i], Some(rest[i + 1..].to_string())),
            _ => (rest, None),
        };
        Ok(PackageSel { source, name: Pattern::parse(name)?, arch })
    }

    /// Whether a version of binary package `name` (built from `source`, of
    /// architecture `arch`) is selected on a system whose native
    /// architecture is `native`.
    pub fn matches(&self, name: &str, source: &str, arch: &str, native: &str) -> bool {
        let arch_ok = match self.arch.as_deref() {
            None => arch == native || arch == "all",
            Some("any") => true,
            Some(a) => a == arch || (arch == "all" && a == native),
        };
        arch_ok && self.name.matches(if self.source { source } else { name })
    }
}

/// One preferences stanza.
#[derive(Clone, Debug)]
pub struct Pin {
    /// `None` for `Package: *` (a generic pin, applied to archives).
    pub packages: Option<Vec<PackageSel>>,
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
    /// The pin `APT::Default-Release` makes: release `value` at 990.
    pub fn default_release(value: &str, origin: &str) -> std::result::Result<Pin, String> {
        Ok(Pin { packages: None, kind: parse_release(value)?, priority: 990, origin: origin.to_string() })
    }

    /// Whether the pin names this binary package version.
    pub fn applies_to(&self, name: &str, source: &str, arch: &str, native: &str) -> bool {
        match &self.packages {
            None => true,
            Some(p) => p.iter().any(|p| p.matches(name, source, arch, native)),
        }
    }

    /// Whether the pin matches dpkg's status file, the "file" of installed
    /// versions (apt calls its archive and component `now`; origin pins
    /// and release pins on other fields never match it).
    pub fn matches_status_file(&self) -> bool {
        match &self.kind {
            PinKind::Release(conds) => conds.iter().all(|(k, p)| matches!(k, 'a' | '*' | 'c') && p.matches("now")),
            PinKind::Origin(_) | PinKind::Version(_) => false,
        }
    }

    /// Whether the pin matches an archive (release or origin pins).
    pub fn matches_archive(&self, a: &ArchiveFacts) -> bool {
        match &self.kind {
            PinKind::Origin(p) => p.matches(a.host),
            PinKind::Version(_) => false,
            PinKind::Release(conds) => conds.iter().all(|(k, p)| {
                let r = a.release;
                // A bare value names the archive or the codename.
                if *k == '*' {
                    return r.suite.as_deref().is_some_and(|s| p.matches(s)) || r.codename.as_deref().is_some_and(|s| p.matches(s));
                }
                let val = match k {
                    'a' => r.suite.as_deref(),
                    'n' => r.codename.as_deref(),
                    'o' => r.origin.as_deref(),
                    'l' => r.label.as_deref(),
                    'c' => Some(a.component),
                    'v' => r.version.as_deref(),
                    _ => None,
                };
                val.is_some_and(|v| p.matches(v))
            }),
        }
    }
}

/// A release pin's data as apt's `pkgVersionMatch` reads it: `*` (all), a
/// bare archive/codename or version (starting with a digit), or
/// comma-separated `k=v` conditions.
fn parse_release(arg: &str) -> std::result::Result<PinKind, String> {
    let arg = arg.trim();
    if arg == "*" {
        return Ok(PinKind::Release(Vec::new()));
    }
    if !arg.contains('=') {
        let key = if arg.starts_with(|c: char| c.is_ascii_digit()) { 'v' } else { '*' };
        return Ok(PinKind::Release(vec![(key, Pattern::parse(arg)?)]));
    }
    let mut conds = Vec::new();
    for part in arg.split(',') {
        let part = part.trim();
        if part.len() < 3 {
            continue;
        }
        match part.split_once('=') {
            Some((k, v)) if k.trim().len() == 1 => conds.push((k.trim().chars().next().unwrap_or('*').to_ascii_lowercase(), Pattern::parse(v)?)),
            Some((k, _)) => return Err(format!("unknown release key `{k}`")),
            None => conds.push(('*', Pattern::parse(part)?)),
        }
    }
    Ok(PinKind::Release(conds))
}

/// Pins and the warnings apt would print about a preferences file.
#[derive(Debug, Default)]
pub struct Preferences {
    pub pins: Vec<Pin>,
    pub warnings: Vec<String>,
}

/// Parses a preferences file as apt 2.6's `ReadPinFile` does: stanzas
/// without `Pin` are skipped, unknown pin types are skipped with a
/// warning, a zero or missing priority is an error.
pub fn parse_preferences(text: &str, file: &str) -> Result<Preferences> {
    let mut out = Preferences::default();
    for p in paragraphs(text) {
        let p = p.map_err(|e| Error::Parse { file: file.to_string(), line: e.line, message: e.message })?;
        let perr = |line: usize, message: String| Error::Parse { file: file.to_string(), line, message };
        if p.get("Package").is_none() && p.get("Pin").is_none() && p.get("Pin-Priority").is_none() {
            continue; // only Explanation fields
        }
        let pkg = p.field("Package").ok_or_else(|| perr(p.line, "invalid record, no Package header".into()))?;
        let Some(pin) = p.field("Pin") else { continue };
        let generic = pkg.value() == "*";
        let (what, arg) = pin.value().split_once(char::is_whitespace).unwrap_or((pin.value(), ""));
        let kind = match what.to_ascii_lowercase().as_str() {
            "version" if !generic => PinKind::Version(Pattern::parse(arg).map_err(|m| perr(pin.line, m))?),
            "origin" => PinKind::Origin(Pattern::parse(arg).map_err(|m| perr(pin.line, m))?),
            "release" => parse_release(arg).map_err(|m| perr(pin.line, m))?,
            other => {
                out.warnings.push(format!("{file}:{}: did not understand pin type `{other}`; stanza ignored (as apt does)", pin.line));
                continue;
            }
        };
        let prio_field = p.field("Pin-Priority");
        let prio_line = prio_field.as_ref().map_or(p.line, |f| f.line);
        let prio_text = prio_field.as_ref().map_or("", |f| f.value());
        let priority: i32 = if prio_text == "never" {
            if !generic {
                return Err(perr(prio_line, "the special 'Pin-Priority: never' can only be used for 'Package: *' records".into()));
            }
            NEVER_PIN
        } else if prio_text.is_empty() {
            0
        } else {
            let v: i64 = prio_text.parse().map_err(|_| perr(prio_line, format!("invalid Pin-Priority `{prio_text}`")))?;
            if v < i16::MIN as i64 || v > i16::MAX as i64 {
                return Err(perr(prio_line, format!("Pin-Priority {v} is outside the range of valid pin priorities")));
            }
            // apt silently clamps a numeric -32768 to -32767.
            (v as i32).max(NEVER_PIN + 1)
        };
        if priority == 0 {
            return Err(perr(prio_line, "no priority (or zero) specified for pin; apt refuses this file too".into()));
        }
        let packages = if generic {
            None
        } else {
            Some(pkg.value().split_whitespace().map(PackageSel::parse).collect::<std::result::Result<Vec<_>, _>>().map_err(|m| perr(pkg.line, m))?)
        };
        out.pins.push(Pin { packages, kind, priority, origin: format!("{file}:{}", p.line) });
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
        .unwrap()
        .pins;
        assert_eq!(pins.len(), 3);
        assert!(pins[1].applies_to("libfoo", "foo", "amd64", "amd64"));
        assert!(!pins[1].applies_to("libfoo", "foo", "i386", "amd64"));
        let r = Release { suite: Some("bookworm-backports".into()), origin: Some("Debian".into()), ..Default::default() };
        assert!(pins[0].matches_archive(&ArchiveFacts { release: &r, host: "x", component: "main" }));
        assert!(pins[2].matches_archive(&ArchiveFacts { release: &r, host: "deb.example.org", component: "main" }));
        let w = parse_preferences("Package: *\nPin: nope x\nPin-Priority: 1\n", "p").unwrap();
        assert!(w.pins.is_empty() && w.warnings.len() == 1, "{w:?}");
        let e = parse_preferences("Package: x\nPin: version 1\nPin-Priority: 0\n", "p").unwrap_err();
        assert_eq!(e.to_string(), "p:3: no priority (or zero) specified for pin; apt refuses this file too");
        assert!(parse_preferences("Package: x\nPin: version 1\n", "p").is_err());
        let src = parse_preferences("Package: src:openssl zlib1g:i386\nPin: version 1*\nPin-Priority: 600\n", "p").unwrap().pins;
        assert!(src[0].applies_to("libssl3", "openssl", "amd64", "amd64"));
        assert!(!src[0].applies_to("openssl", "other", "amd64", "amd64"));
        assert!(src[0].applies_to("zlib1g", "zlib", "i386", "amd64"));
        assert!(!src[0].applies_to("zlib1g", "zlib", "amd64", "amd64"));
    }
}
