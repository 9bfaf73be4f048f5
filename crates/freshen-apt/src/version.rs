//! Debian versions, ordered exactly as `dpkg --compare-versions` orders
//! them (epoch, then upstream and revision in alternating non-digit and
//! digit runs, `~` before everything). The ordering is the `debversion`
//! crate's; a test compares it with dpkg on real version strings.

pub use debversion::Version;

/// Parses a version, naming it in the error.
pub fn parse(s: &str) -> Result<Version, String> {
    s.trim().parse::<Version>().map_err(|_| format!("invalid version `{}`", s.trim()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn orders_like_dpkg() {
        let v = |s: &str| parse(s).unwrap();
        assert!(v("1.0~rc1") < v("1.0"));
        assert!(v("1.0") < v("1.0+deb12u1"));
        assert!(v("1:0.9") > v("2.0"));
        assert!(v("1.0") == v("1.0-0"));
        assert!(v("1.0~~") < v("1.0~"));
        assert!(v("2.36-9+deb12u9") < v("2.36-9+deb12u10"));
    }
}
