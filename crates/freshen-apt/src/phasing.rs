//! Phased updates (Ubuntu's `Phased-Update-Percentage`), decided as apt
//! 2.x decides them for a machine: from the machine id, the source package
//! and its version, with the same pseudo-random draw (C++'s `seed_seq`,
//! `minstd_rand` and libstdc++'s `uniform_int_distribution(0, 100)`).

use crate::aptconf::AptConf;
use crate::packages::Available;

/// How apt on the image would treat phased updates.
#[derive(Clone, Debug, Default)]
pub struct Phasing {
    /// `APT::Machine-ID`, else the first line of `/etc/machine-id`; apt
    /// includes every phased update when there is none (as in most
    /// container images).
    pub machine_id: Option<String>,
    /// `APT::Get::Always-Include-Phased-Updates` (or update-manager's key).
    pub always: bool,
    /// `APT::Get::Never-Include-Phased-Updates` (or update-manager's key).
    pub never: bool,
    /// `APT::Get::Phase-Policy`: phasing lowers the candidate's priority
    /// to 1 instead of holding the upgrade back.
    pub in_policy: bool,
}

impl Phasing {
    /// The phasing settings of a system from its configuration and its
    /// `/etc/machine-id` contents.
    pub fn new(conf: &AptConf, machine_id_file: Option<&[u8]>) -> Phasing {
        let id = conf.find("APT::Machine-ID").map(str::to_string).or_else(|| {
            machine_id_file.and_then(|d| String::from_utf8_lossy(d).lines().next().map(|l| l.to_string()))
        });
        let key = |apt: &str, um: &str| conf.find_bool(apt, conf.find_bool(um, false));
        Phasing {
            machine_id: id.filter(|s| !s.is_empty()),
            always: key("APT::Get::Always-Include-Phased-Updates", "Update-Manager::Always-Include-Phased-Updates"),
            never: key("APT::Get::Never-Include-Phased-Updates", "Update-Manager::Never-Include-Phased-Updates"),
            in_policy: conf.find_bool("APT::Get::Phase-Policy", false),
        }
    }

    /// Whether this machine is outside the phase of `version` (apt's
    /// `IsIgnoredPhasedUpdate`).
    pub fn ignores(&self, version: &Available) -> bool {
        if version.phased >= 100 || self.always {
            return false;
        }
        if self.never {
            return true;
        }
        let Some(id) = &self.machine_id else { return false };
        let seed = format!("{}-{}-{id}", version.source, version.source_version);
        draw(seed.as_bytes()) > u32::from(version.phased)
    }

    /// Phasing applied in the candidate policy (`Phase-Policy`).
    pub fn excluded(&self, version: &Available) -> bool {
        self.in_policy && self.ignores(version)
    }

    /// Phasing applied by `apt-get upgrade` (the default): the upgrade is
    /// deferred.
    pub fn deferred(&self, version: &Available) -> bool {
        !self.in_policy && self.ignores(version)
    }
}

/// `std::seed_seq(seed).generate` into 4 words (what `minstd_rand` asks for).
fn seed_seq4(seed: &[u8]) -> [u32; 4] {
    // Each `char` is converted to a 32-bit value (sign-extended, as `char`
    // is signed on x86).
    let v: Vec<u32> = seed.iter().map(|&c| c as i8 as i32 as u32).collect();
    let n = 4usize;
    let s = v.len();
    let mut b = [0x8b8b_8b8bu32; 4];
    let t = (n - 1) / 2;
    let p = (n - t) / 2;
    let q = p + t;
    let m = (s + 1).max(n);
    let tf = |x: u32| x ^ (x >> 27);
    for k in 0..m {
        let r1 = 1_664_525u32.wrapping_mul(tf(b[k % n] ^ b[(k + p) % n] ^ b[(k + n - 1) % n]));
        let add = if k == 0 {
            s as u32
        } else if k <= s {
            ((k % n) as u32).wrapping_add(v[k - 1])
        } else {
            (k % n) as u32
        };
        let r2 = r1.wrapping_add(add);
        b[(k + p) % n] = b[(k + p) % n].wrapping_add(r1);
        b[(k + q) % n] = b[(k + q) % n].wrapping_add(r2);
        b[k % n] = r2;
    }
    for k in m..m + n {
        let r3 = 1_566_083_941u32.wrapping_mul(tf(b[k % n].wrapping_add(b[(k + p) % n]).wrapping_add(b[(k + n - 1) % n])));
        let r4 = r3.wrapping_sub((k % n) as u32);
        b[(k + p) % n] ^= r3;
        b[(k + q) % n] ^= r4;
        b[k % n] = r4;
    }
    b
}

/// `uniform_int_distribution<unsigned>(0, 100)(minstd_rand(seed_seq(seed)))`
/// as libstdc++ computes it.
fn draw(seed: &[u8]) -> u32 {
    const M: u64 = 2_147_483_647;
    let words = seed_seq4(seed);
    let mut x = u64::from(words[3]) % M;
    if x == 0 {
        x = 1;
    }
    let mut next = || {
        x = x * 48_271 % M;
        x
    };
    // libstdc++'s downscaling for an engine range that is not 2^32 or 2^64.
    let range = (M - 1) - 1;
    let scaling = range / 101;
    let past = 101 * scaling;
    loop {
        let r = next() - 1;
        if r < past {
            return (r / scaling) as u32;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seed_seq_matches_the_standard_library() {
        // Printed by a C++ program built with g++ 12 (Debian bookworm):
        // std::seed_seq over "abc", generate(out, out + 4).
        assert_eq!(seed_seq4(b"abc"), [0x5567_065d, 0x3a04_374c, 0x6eff_f255, 0x5766_7f1a]);
    }

    #[test]
    fn draws_match_the_standard_library() {
        // The same program: uniform_int_distribution<unsigned>(0, 100) of a
        // minstd_rand seeded with seed_seq over each string, as apt draws.
        for (seed, want) in [
            ("hello-1.0-2-0123456789abcdef0123456789abcdef", 86),
            ("openssl-3.0.13-0ubuntu3.4-3d1219c7c4c5404aaa1f6d2a48adfda4", 48),
            ("x-1-y", 94),
            ("p-0", 84),
        ] {
            assert_eq!(draw(seed.as_bytes()), want, "{seed}");
        }
        assert!((0..=300).all(|i| draw(format!("p-{i}").as_bytes()) <= 100));
    }
}
