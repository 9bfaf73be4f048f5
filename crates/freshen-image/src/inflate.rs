//! The bound on what a compressed layer may inflate to. A few MB of zstd
//! can stand for 100 GiB of zeros (14 s of CPU); at 100 MB, minutes in
//! every `watch` pass. Real layers inflate 2–5 times, and sparse or
//! zero-filled files rarely take a whole layer past 20 times: a layer may
//! inflate to 64 times its compressed size, at least 4 GiB (so small layers
//! holding a zero-filled file still pass), 64 GiB when its compressed size
//! is unknown. `FRESHEN_MAX_LAYER_SIZE` (bytes, or with a K, M, G or T
//! suffix) replaces the rule with a fixed bound, for images that need more.

use std::io::{self, Read};

/// How many times its compressed size a layer may inflate to.
pub const RATIO: u64 = 64;
/// The bound is never below this.
pub const FLOOR: u64 = 4 << 30;
/// The bound when the compressed size is unknown.
pub const UNKNOWN: u64 = 64 << 30;

/// The variable that sets a fixed bound.
pub const VAR: &str = "FRESHEN_MAX_LAYER_SIZE";

/// The most a layer of `compressed` bytes may inflate to.
pub fn limit(compressed: Option<u64>) -> u64 {
    if let Some(fixed) = std::env::var(VAR).ok().and_then(|v| parse_size(&v)) {
        return fixed;
    }
    compressed.map_or(UNKNOWN, |c| c.saturating_mul(RATIO).max(FLOOR))
}

/// `1234`, `10K`, `512M`, `64G`, `1T` (binary multiples).
fn parse_size(s: &str) -> Option<u64> {
    let s = s.trim();
    let (num, shift) = match s.char_indices().last()? {
        (i, 'K' | 'k') => (&s[..i], 10),
        (i, 'M' | 'm') => (&s[..i], 20),
        (i, 'G' | 'g') => (&s[..i], 30),
        (i, 'T' | 't') => (&s[..i], 40),
        _ => (s, 0),
    };
    num.trim().parse::<u64>().ok().and_then(|n| n.checked_mul(1 << shift)).filter(|n| *n > 0)
}

/// A decompressed stream that fails once it passes `limit` bytes.
pub(crate) struct Bounded<R> {
    pub inner: R,
    pub left: u64,
    pub limit: u64,
    pub compressed: Option<u64>,
}

impl<R: Read> Read for Bounded<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        if n as u64 > self.left {
            let rule = match (std::env::var(VAR).ok().and_then(|v| parse_size(&v)), self.compressed) {
                (Some(_), _) => format!("the bound {VAR} sets"),
                (None, Some(c)) => format!("{RATIO} times its {} compressed, at least {}; set {VAR} to allow more", human(c), human(FLOOR)),
                (None, None) => format!("its compressed size is unknown; set {VAR} to allow more"),
            };
            return Err(io::Error::new(io::ErrorKind::InvalidData, format!("inflates to more than {} ({rule})", human(self.limit))));
        }
        self.left -= n as u64;
        Ok(n)
    }
}

fn human(n: u64) -> String {
    if n >= 1 << 30 {
        format!("{:.1} GiB", n as f64 / (1u64 << 30) as f64)
    } else {
        format!("{:.1} MiB", n as f64 / (1u64 << 20) as f64)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_and_rule() {
        assert_eq!(parse_size("10K"), Some(10 << 10));
        assert_eq!(parse_size("64G"), Some(64 << 30));
        assert_eq!(parse_size(" 123 "), Some(123));
        assert_eq!(parse_size("0"), None);
        assert_eq!(parse_size("x"), None);
        assert_eq!(parse_size("99999999999T"), None);
        if std::env::var_os(VAR).is_none() {
            assert_eq!(limit(Some(1 << 20)), FLOOR);
            assert_eq!(limit(Some(1 << 30)), 64 << 30);
            assert_eq!(limit(None), UNKNOWN);
        }
    }

    #[test]
    fn bounded_stops_past_the_limit() {
        let data = vec![0u8; 10_000];
        let mut ok = Bounded { inner: &data[..], left: 10_000, limit: 10_000, compressed: Some(10) };
        assert_eq!(io::copy(&mut ok, &mut io::sink()).unwrap(), 10_000);
        let mut over = Bounded { inner: &data[..], left: 9_999, limit: 9_999, compressed: Some(10) };
        let e = io::copy(&mut over, &mut io::sink()).unwrap_err();
        assert!(e.to_string().starts_with("inflates to more than"), "{e}");
    }
}
