//! Durations as the configuration writes them: `500ms`, `10s`, `5m`,
//! `1h`, `1d`, or several of those run together (`1h30m`).

use std::fmt;
use std::time::Duration;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// A duration read from and written as text such as `"10s"`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Span(pub Duration);

const UNITS: [(&str, u64); 5] = [("d", 86_400_000), ("h", 3_600_000), ("m", 60_000), ("s", 1_000), ("ms", 1)];

/// Parses `10s`, `5m`, `1h30m`, ...; a bare number or an unknown unit is an error.
pub fn parse(text: &str) -> Result<Duration, String> {
    let bad = || format!("invalid duration `{text}`: expected a number and a unit (ms, s, m, h, d), e.g. \"10s\", \"5m\", \"1h\"");
    let mut rest = text.trim();
    if rest.is_empty() {
        return Err(bad());
    }
    let mut millis: u64 = 0;
    while !rest.is_empty() {
        let digits = rest.find(|c: char| !c.is_ascii_digit()).unwrap_or(rest.len());
        let unit_len = rest[digits..].find(|c: char| c.is_ascii_digit()).unwrap_or(rest.len() - digits);
        let (n, unit) = (&rest[..digits], &rest[digits..digits + unit_len]);
        let n: u64 = n.parse().map_err(|_| bad())?;
        let scale = UNITS.iter().find(|(u, _)| *u == unit).map(|(_, s)| *s).ok_or_else(bad)?;
        millis = n.checked_mul(scale).and_then(|v| millis.checked_add(v)).ok_or_else(bad)?;
        rest = &rest[digits + unit_len..];
    }
    Ok(Duration::from_millis(millis))
}

/// A length of time for people: `3d 4h`, `2h 5m`, `7m`, `40s`.
pub fn human(secs: i64) -> String {
    let (d, h, m) = (secs / 86_400, secs % 86_400 / 3600, secs % 3600 / 60);
    match (d, h, m) {
        (0, 0, 0) => format!("{secs}s"),
        (0, 0, m) => format!("{m}m"),
        (0, h, m) => format!("{h}h {m}m"),
        (d, h, _) => format!("{d}d {h}h"),
    }
}

impl fmt::Display for Span {
    /// The shortest form that parses back to the same value (`90s` → `1m30s`).
    fn fmt(&self, f: &mut fmt::Formatter) -> fmt::Result {
        let mut left = self.0.as_millis() as u64;
        if left == 0 {
            return f.write_str("0s");
        }
        for (unit, scale) in UNITS {
            if left >= scale {
                write!(f, "{}{unit}", left / scale)?;
                left %= scale;
            }
        }
        Ok(())
    }
}

impl Serialize for Span {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Span {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Span, D::Error> {
        let text = String::deserialize(d)?;
        parse(&text).map(Span).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_parse_and_print_back() {
        for (text, secs, shown) in [("10s", 10, "10s"), ("5m", 300, "5m"), ("1h", 3600, "1h"), ("1h30m", 5400, "1h30m"), ("90s", 90, "1m30s"), ("2d", 172_800, "2d")] {
            let d = parse(text).unwrap();
            assert_eq!(d, Duration::from_secs(secs), "{text}");
            assert_eq!(Span(d).to_string(), shown);
        }
        assert_eq!(parse("250ms").unwrap(), Duration::from_millis(250));
        for bad in ["", "10", "s", "10 s", "5x", "-1s", "1.5h", "99999999999999999999d"] {
            assert!(parse(bad).unwrap_err().contains("invalid duration"), "{bad}");
        }
    }
}
