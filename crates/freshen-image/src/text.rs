//! Small text helpers shared by the registry and Docker Engine clients.

pub(crate) use freshen_http::one_line;

/// Percent-encodes every byte but ASCII letters, digits, `-._~` and the
/// bytes in `keep`.
pub(crate) fn percent_encode(s: &str, keep: &[u8]) -> String {
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
