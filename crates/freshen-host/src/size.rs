//! Sizes as the configuration and `cache prune` write them: `20G`,
//! `500M`, `64K`, `1T` (powers of 1024, an optional `B`/`iB` after the
//! unit) or a plain number of bytes.

use std::fmt;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// A size in bytes read from and written as text such as `"20G"`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Size(pub u64);

const UNITS: [(&str, u32); 4] = [("T", 40), ("G", 30), ("M", 20), ("K", 10)];

/// Parses `20G`, `500M`, `1024`, ...
pub fn parse(text: &str) -> Result<u64, String> {
    let bad = || format!("invalid size `{text}`: expected a number and an optional unit (K, M, G, T), e.g. \"20G\", \"500M\"");
    let t = text.trim();
    let digits = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
    let n: u64 = t[..digits].parse().map_err(|_| bad())?;
    let unit = t[digits..].to_ascii_uppercase();
    let unit = unit.strip_suffix("IB").or_else(|| unit.strip_suffix('B').filter(|u| !u.is_empty())).unwrap_or(&unit);
    let shift = match unit {
        "" => 0,
        u => UNITS.iter().find(|(name, _)| *name == u).map(|(_, s)| *s).ok_or_else(bad)?,
    };
    n.checked_mul(1u64 << shift).ok_or_else(bad)
}

impl fmt::Display for Size {
    /// The largest unit that divides the size exactly (`21474836480` → `20G`).
    fn fmt(&self, f: &mut fmt::Formatter) -> fmt::Result {
        for (unit, shift) in UNITS {
            if self.0 != 0 && self.0.is_multiple_of(1u64 << shift) {
                return write!(f, "{}{unit}", self.0 >> shift);
            }
        }
        write!(f, "{}", self.0)
    }
}

impl Serialize for Size {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Size {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Size, D::Error> {
        let text = String::deserialize(d)?;
        parse(&text).map(Size).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_parse_and_print_back() {
        for (text, bytes, shown) in [("20G", 20 << 30, "20G"), ("500M", 500 << 20, "500M"), ("1536K", 1536 << 10, "1536K"), ("2GiB", 2 << 30, "2G"), ("10mb", 10 << 20, "10M"), ("0", 0, "0"), ("1000", 1000, "1000")] {
            assert_eq!(parse(text), Ok(bytes), "{text}");
            assert_eq!(Size(bytes).to_string(), shown);
        }
        for bad in ["", "G", "20X", "-1G", "1.5G", "20 G", "99999999999T"] {
            assert!(parse(bad).unwrap_err().contains("invalid size"), "{bad}");
        }
    }
}
