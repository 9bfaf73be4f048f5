//! Small text helpers shared by the registry and Docker Engine clients.

pub(crate) use freshen_http::one_line;

/// Percent-encodes every byte but ASCII letters, digits, `-._~` and the
/// bytes in `keep`.
pub fn percent_encode(s: &str, keep: &[u8]) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~".contains(&b) || keep.contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// Text that came from an image, a registry or a file, fit to print on a
/// terminal: control characters (ESC, BEL, CR, newlines, C1 controls) are
/// shown escaped (`\x1b`, `\u{9b}`), everything else as it is.
pub fn escape(s: &str) -> std::borrow::Cow<'_, str> {
    if !s.chars().any(char::is_control) {
        return std::borrow::Cow::Borrowed(s);
    }
    let mut out = String::with_capacity(s.len() + 8);
    for c in s.chars() {
        match c {
            '\t' => out.push_str("\\t"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            c if (c as u32) < 0x80 && c.is_control() => out.push_str(&format!("\\x{:02x}", c as u32)),
            c if c.is_control() => out.push_str(&format!("\\u{{{:x}}}", c as u32)),
            c => out.push(c),
        }
    }
    std::borrow::Cow::Owned(out)
}

/// The message of an error from walking a tar stream. The tar crate quotes
/// the raw bytes of a bad header field and the entry's name
/// (`numeric field was not a number: BYTES when getting size for NAME`):
/// only the description before the quoted part is kept.
pub fn tar_error(e: &std::io::Error) -> String {
    let msg = e.to_string();
    match msg.split_once(": ") {
        Some((head, _)) if head.starts_with("numeric field") || head.starts_with("invalid path in entry header") => format!("bad tar header ({head})"),
        _ => escape(&msg).into_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escape_shows_control_characters() {
        assert_eq!(escape("plain ü text"), "plain ü text");
        assert_eq!(escape("a\x1b[31mb\x07c\rd\ne\u{9b}"), "a\\x1b[31mb\\x07c\\rd\\ne\\u{9b}");
    }

    #[test]
    fn tar_errors_do_not_quote_the_file() {
        let e = std::io::Error::other("numeric field did not have utf-8 text: \x1b]0;x\x07 when getting cksum for \x1b[2J");
        assert_eq!(tar_error(&e), "bad tar header (numeric field did not have utf-8 text)");
        assert_eq!(tar_error(&std::io::Error::other("archive header checksum mismatch")), "archive header checksum mismatch");
    }
}
