//! apt's configuration (`/etc/apt/apt.conf.d/*`, then `/etc/apt/apt.conf`),
//! parsed as apt's `ReadConfigFile` does: `A::B "value";`, scopes
//! `A { B "v"; };`, lists `A { "x"; "y"; };`, `//`, `#` and `/* */`
//! comments, `#include` (a file or a directory ending in `/`) and
//! `#clear`. Keys are case-insensitive; the last assignment wins.

use crate::error::{Error, Result};
use crate::system::RootView;

/// The options of one system, in the order they were set.
#[derive(Clone, Debug, Default)]
pub struct AptConf {
    /// (lowercased key, value). List items have keys ending in `::`.
    items: Vec<(String, String)>,
}

/// apt's `StringToBool`, for configuration values and source options.
pub(crate) fn to_bool(v: &str) -> Option<bool> {
    match v.to_ascii_lowercase().as_str() {
        "yes" | "true" | "with" | "on" | "enable" => Some(true),
        "no" | "false" | "without" | "off" | "disable" => Some(false),
        n => n.parse::<i64>().ok().map(|n| n != 0),
    }
}

/// The files apt reads from a `*.d` directory (`GetListOfFilesInDir`):
/// names with no extension or extension `ext`, made of the characters
/// run-parts allows, not hidden, sorted.
pub fn dir_files(view: &dyn RootView, dir: &str, ext: &str) -> Vec<String> {
    view.list(dir)
        .into_iter()
        .filter(|n| !n.starts_with('.'))
        .filter(|n| n.rsplit_once('.').is_none_or(|(_, e)| e == ext))
        .filter(|n| n.bytes().all(|b| b.is_ascii_alphanumeric() || b"_-.".contains(&b)))
        .map(|n| format!("{dir}/{n}"))
        .collect()
}

impl AptConf {
    /// Reads `/etc/apt/apt.conf.d/*` and `/etc/apt/apt.conf` from `view`.
    pub fn load(view: &dyn RootView) -> Result<AptConf> {
        let mut conf = AptConf::default();
        for f in dir_files(view, "etc/apt/apt.conf.d", "conf") {
            conf.read_file(view, &f, 0)?;
        }
        conf.read_file(view, "etc/apt/apt.conf", 0)?;
        Ok(conf)
    }

    /// Parses one configuration text (`file` names it in errors).
    pub fn parse(text: &str, file: &str) -> Result<AptConf> {
        let mut conf = AptConf::default();
        conf.read_text(None, text, file, 0)?;
        Ok(conf)
    }

    fn read_file(&mut self, view: &dyn RootView, path: &str, depth: usize) -> Result<()> {
        let Some(data) = view.read(path) else { return Ok(()) };
        let text = String::from_utf8_lossy(data).into_owned();
        self.read_text(Some(view), &text, &format!("/{path}"), depth)
    }

    fn read_text(&mut self, view: Option<&dyn RootView>, text: &str, file: &str, depth: usize) -> Result<()> {
        let perr = |line: usize, message: &str| Error::Parse { file: file.to_string(), line, message: message.to_string() };
        let mut stack: Vec<String> = Vec::new();
        let mut parent = String::new();
        let mut buffer = String::new();
        let mut in_comment = false;
        for (n, raw) in text.lines().enumerate() {
            let line_no = n + 1;
            let input = raw.replace('\t', "        ");
            let mut line: &str = input.trim();
            if in_comment {
                match line.find("*/") {
                    Some(end) => {
                        line = &line[end + 2..];
                        in_comment = false;
                    }
                    None => continue,
                }
            }
            let line = strip_line_comments(line);
            let mut fragment = String::new();
            let mut rest = line.as_str();
            while let Some(start) = find_unquoted(rest, "/*") {
                fragment.push_str(&rest[..start]);
                match rest[start + 2..].find("*/") {
                    Some(end) => rest = &rest[start + 2 + end + 2..],
                    None => {
                        rest = "";
                        in_comment = true;
                        break;
                    }
                }
            }
            fragment.push_str(rest);
            if fragment.is_empty() {
                continue;
            }
            let mut in_quote = false;
            let mut start = 0;
            for (i, c) in fragment.char_indices() {
                if c == '"' {
                    in_quote = !in_quote;
                }
                if in_quote || !matches!(c, '{' | ';' | '}') {
                    continue;
                }
                let piece = fragment[start..i].trim();
                if !buffer.is_empty() && !piece.is_empty() {
                    buffer.push(' ');
                }
                buffer.push_str(piece);
                start = i + 1;
                if c == '{' && buffer.is_empty() {
                    return Err(perr(line_no, "block starts with no name"));
                }
                if buffer.is_empty() {
                    if c == '}' {
                        parent = stack.pop().unwrap_or_default();
                    }
                    continue;
                }
                let (mut tag, word) = split_statement(&buffer).ok_or_else(|| perr(line_no, "malformed tag or extra junk after value"))?;
                let (word, no_word) = match word {
                    Some(w) => (w, false),
                    None if c != '{' => (std::mem::take(&mut tag), false),
                    None => (String::new(), true),
                };
                let mut word = word;
                if c == '{' {
                    stack.push(parent.clone());
                    parent = if parent.is_empty() { tag.clone() } else { format!("{parent}::{tag}") };
                    tag.clear();
                }
                let item = if parent.is_empty() {
                    tag.clone()
                } else if c != '{' || !tag.is_empty() {
                    format!("{parent}::{tag}")
                } else {
                    parent.clone()
                };
                if let Some(directive) = tag.strip_prefix('#') {
                    if !parent.is_empty() {
                        return Err(perr(line_no, "directives can only be done at the top level"));
                    }
                    match directive {
                        "clear" => self.clear(&word),
                        "include" => {
                            if depth > 10 {
                                return Err(perr(line_no, "too many nested includes"));
                            }
                            if let Some(view) = view {
                                let path = std::mem::take(&mut word);
                                let rel = path.trim_start_matches('/');
                                if path.len() > 2 && path.ends_with('/') {
                                    for f in dir_files(view, rel.trim_end_matches('/'), "conf") {
                                        self.read_file(view, &f, depth + 1)?;
                                    }
                                } else {
                                    self.read_file(view, rel, depth + 1)?;
                                }
                            }
                        }
                        "x-apt-configure-index" => {}
                        other => return Err(perr(line_no, &format!("unsupported directive `#{other}`"))),
                    }
                } else if !no_word {
                    self.set(&item, word);
                }
                buffer.clear();
                if c == '}' {
                    parent = stack.pop().unwrap_or_default();
                }
            }
            let tail = fragment[start..].trim();
            if !tail.is_empty() && !buffer.is_empty() {
                buffer.push(' ');
            }
            buffer.push_str(tail);
        }
        if !buffer.is_empty() {
            return Err(perr(text.lines().count(), "extra junk at end of file"));
        }
        Ok(())
    }

    fn set(&mut self, item: &str, value: String) {
        let key = item.to_ascii_lowercase();
        if !key.ends_with("::") {
            self.items.retain(|(k, _)| *k != key);
        }
        self.items.push((key, value));
    }

    fn clear(&mut self, item: &str) {
        let key = item.to_ascii_lowercase();
        let sub = format!("{key}::");
        self.items.retain(|(k, _)| *k != key && !k.starts_with(&sub));
    }

    /// The value of `key` (e.g. `APT::Default-Release`), if set.
    pub fn find(&self, key: &str) -> Option<&str> {
        let key = key.to_ascii_lowercase();
        self.items.iter().rev().find(|(k, _)| *k == key).map(|(_, v)| v.as_str())
    }

    /// A boolean option as apt reads it; `default` when unset or unreadable.
    pub fn find_bool(&self, key: &str, default: bool) -> bool {
        self.find(key).and_then(to_bool).unwrap_or(default)
    }
}

/// Drops `//` and `#` comments (not `#include`/`#clear`) outside quotes.
fn strip_line_comments(line: &str) -> String {
    let mut out = line;
    if let Some(i) = find_unquoted(out, "//") {
        out = &out[..i];
    }
    let mut from = 0;
    while let Some(i) = out[from..].find('#').map(|i| i + from) {
        let quoted = !out[..i].matches('"').count().is_multiple_of(2);
        let magic = ["clear", "include", "x-apt-configure-index"].iter().any(|m| out[i + 1..].starts_with(m));
        if quoted || magic {
            from = i + 1;
            continue;
        }
        out = &out[..i];
        break;
    }
    out.to_string()
}

fn find_unquoted(s: &str, needle: &str) -> Option<usize> {
    let mut from = 0;
    while let Some(i) = s[from..].find(needle).map(|i| i + from) {
        if s[..i].matches('"').count().is_multiple_of(2) {
            return Some(i);
        }
        from = i + 1;
    }
    None
}

/// One word: `"quoted text"` (quotes removed) or text up to whitespace.
fn word(s: &str) -> Option<(String, &str)> {
    let s = s.trim_start();
    if s.is_empty() {
        return None;
    }
    let mut out = String::new();
    let mut in_quote = false;
    let mut end = s.len();
    for (i, c) in s.char_indices() {
        match c {
            '"' => in_quote = !in_quote,
            c if c.is_whitespace() && !in_quote => {
                end = i;
                break;
            }
            c => out.push(c),
        }
    }
    if in_quote {
        return None;
    }
    Some((out, &s[end..]))
}

/// `TAG [WORD]` of one statement.
fn split_statement(s: &str) -> Option<(String, Option<String>)> {
    let (tag, rest) = word(s)?;
    match word(rest) {
        None => Some((tag, None)),
        Some((w, rest)) if rest.trim().is_empty() => Some((tag, Some(w))),
        Some(_) => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scopes_lists_comments() {
        let c = AptConf::parse(
            "// comment\nAPT::Default-Release \"bookworm\"; # trailing\nAcquire {\n  Check-Valid-Until \"false\";\n  http { Proxy \"http://p:3128\"; };\n};\n/* multi\nline */ APT::Periodic::Unattended-Upgrade \"1\";\nDPkg::Pre-Invoke { \"a\"; \"b // not a comment\"; };\nAPT::Default-Release \"trixie\";\n",
            "apt.conf",
        )
        .unwrap();
        assert_eq!(c.find("apt::default-release"), Some("trixie"));
        assert!(!c.find_bool("Acquire::Check-Valid-Until", true));
        assert_eq!(c.find("Acquire::http::Proxy"), Some("http://p:3128"));
        assert_eq!(c.find("APT::Periodic::Unattended-Upgrade"), Some("1"));
        assert_eq!(c.items.iter().filter(|(k, _)| k == "dpkg::pre-invoke::").count(), 2);
        assert!(c.find_bool("Missing::Key", true));
    }

    #[test]
    fn clear_and_errors() {
        let c = AptConf::parse("Acquire::Check-Valid-Until \"no\";\n#clear Acquire;\n", "a").unwrap();
        assert_eq!(c.find("Acquire::Check-Valid-Until"), None);
        let e = AptConf::parse("APT::X \"1\" junk;\n", "/etc/apt/apt.conf.d/10x").unwrap_err();
        assert!(e.to_string().starts_with("/etc/apt/apt.conf.d/10x:1: "), "{e}");
        assert!(AptConf::parse("APT::X \"1\"\n", "a").is_err());
        assert!(AptConf::parse("{ x; };\n", "a").is_err());
    }
}
