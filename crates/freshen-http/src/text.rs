//! Small text helpers shared by freshen's HTTP users.

/// Collapses whitespace (newlines included) to single spaces: messages
/// from servers and TLS stacks become one-line errors.
pub fn one_line(s: &str) -> String {
    s.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// Decodes `%xx` escapes (user names and passwords in URLs); anything
/// else is kept as it is.
pub fn percent_decode(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' {
            if let Some(v) = s.get(i + 1..i + 3).and_then(|h| u8::from_str_radix(h, 16).ok()) {
                out.push(v);
                i += 3;
                continue;
            }
        }
        out.push(b[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    #[test]
    fn helpers() {
        assert_eq!(super::one_line("a\n  b\tc "), "a b c");
        assert_eq!(super::percent_decode("p%40ss%2x%"), "p@ss%2x%");
    }
}
