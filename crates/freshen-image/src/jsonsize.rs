//! A bound on what a JSON document from an image or a registry may expand
//! to once parsed: 16 MiB of `{},` is 8 million history entries, over a
//! gigabyte as typed values. The values are counted first, without
//! allocating, and a document of more than [`MAX_VALUES`] is refused.

use serde::de::{DeserializeSeed, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};
use std::cell::Cell;
use std::fmt;

/// Far above any real index, manifest or config (a config of 1,000
/// history entries has about 5,000 values).
pub const MAX_VALUES: u64 = 200_000;

/// Counts the values of `bytes` (a JSON document); an error names what is
/// wrong (too many values, or not JSON).
pub fn check(bytes: &[u8]) -> Result<(), String> {
    let count = Cell::new(0u64);
    let mut de = serde_json::Deserializer::from_slice(bytes);
    match (Count(&count)).deserialize(&mut de) {
        Ok(()) => Ok(()),
        Err(_) if count.get() > MAX_VALUES => Err(format!("more than {MAX_VALUES} JSON values: no image's index, manifest or config is this long")),
        Err(e) => Err(e.to_string()),
    }
}

#[derive(Clone, Copy)]
struct Count<'a>(&'a Cell<u64>);

impl Count<'_> {
    fn bump<E: serde::de::Error>(&self) -> Result<(), E> {
        self.0.set(self.0.get() + 1);
        if self.0.get() > MAX_VALUES {
            return Err(E::custom("too many values"));
        }
        Ok(())
    }
}

impl<'de> DeserializeSeed<'de> for Count<'_> {
    type Value = ();
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for Count<'_> {
    type Value = ();
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a JSON value")
    }
    fn visit_bool<E: serde::de::Error>(self, _: bool) -> Result<(), E> {
        self.bump()
    }
    fn visit_i64<E: serde::de::Error>(self, _: i64) -> Result<(), E> {
        self.bump()
    }
    fn visit_u64<E: serde::de::Error>(self, _: u64) -> Result<(), E> {
        self.bump()
    }
    fn visit_f64<E: serde::de::Error>(self, _: f64) -> Result<(), E> {
        self.bump()
    }
    fn visit_str<E: serde::de::Error>(self, _: &str) -> Result<(), E> {
        self.bump()
    }
    fn visit_unit<E: serde::de::Error>(self) -> Result<(), E> {
        self.bump()
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        self.bump()?;
        while seq.next_element_seed(self)?.is_some() {}
        Ok(())
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        self.bump()?;
        while map.next_key::<IgnoredAny>()?.is_some() {
            map.next_value_seed(self)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_without_building() {
        assert!(check(br#"{"history":[{"created_by":"x"}],"rootfs":{"diff_ids":["a"]}}"#).is_ok());
        let many = format!("{{\"history\":[{}{{}}]}}", "{},".repeat(MAX_VALUES as usize));
        assert!(check(many.as_bytes()).unwrap_err().contains("more than 200000 JSON values"));
        assert!(check(b"{").is_err());
    }
}
