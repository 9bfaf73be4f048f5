//! freshen's version ordering against `dpkg --compare-versions` on more
//! than 10,000 pairs of version strings from the real Debian `Packages`
//! indexes apt has downloaded on this machine (`apt-get update` first).

use std::cmp::Ordering;
use std::collections::{BTreeMap, BTreeSet};
use std::process::Command;

fn real_versions() -> (Vec<String>, BTreeMap<String, BTreeSet<String>>) {
    let mut all = BTreeSet::new();
    let mut by_pkg: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    let lists = std::fs::read_dir("/var/lib/apt/lists").expect("/var/lib/apt/lists (run apt-get update)");
    for e in lists.flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        if !name.contains("_Packages") || !name.contains("debian") {
            continue;
        }
        let out = Command::new("/usr/lib/apt/apt-helper").arg("cat-file").arg(e.path()).output().expect("apt-helper");
        let text = String::from_utf8_lossy(&out.stdout);
        let mut pkg = String::new();
        for line in text.lines() {
            if let Some(p) = line.strip_prefix("Package: ") {
                pkg = p.to_string();
            } else if let Some(v) = line.strip_prefix("Version: ") {
                all.insert(v.to_string());
                by_pkg.entry(pkg.clone()).or_default().insert(v.to_string());
            }
        }
    }
    (all.into_iter().collect(), by_pkg)
}

fn dpkg_cmp(a: &str, b: &str) -> Ordering {
    let run = |op: &str| Command::new("dpkg").args(["--compare-versions", a, op, b]).status().unwrap().success();
    if run("lt") {
        Ordering::Less
    } else if run("eq") {
        Ordering::Equal
    } else {
        Ordering::Greater
    }
}

#[test]
fn ordering_matches_dpkg_on_real_versions() {
    let (all, by_pkg) = real_versions();
    assert!(all.len() > 20_000, "only {} versions found: run apt-get update", all.len());
    let mut pairs: BTreeSet<(String, String)> = BTreeSet::new();
    // Versions of the same package across suites (the comparisons scan makes).
    for vs in by_pkg.values() {
        let vs: Vec<&String> = vs.iter().collect();
        for w in vs.windows(2) {
            pairs.insert((w[0].clone(), w[1].clone()));
        }
    }
    // Neighbours in string order share long prefixes: the hard cases.
    for w in all.windows(2).step_by(7) {
        pairs.insert((w[0].clone(), w[1].clone()));
    }
    // Pseudo-random pairs.
    let mut x: u64 = 0x9e3779b97f4a7c15;
    while pairs.len() < 10_500 {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        let a = &all[(x % all.len() as u64) as usize];
        let b = &all[((x >> 32) % all.len() as u64) as usize];
        pairs.insert((a.clone(), b.clone()));
    }
    let pairs: Vec<(String, String)> = pairs.into_iter().collect();
    assert!(pairs.len() >= 10_000);
    let chunks: Vec<&[(String, String)]> = pairs.chunks(pairs.len() / 4 + 1).collect();
    let mismatches: Vec<String> = std::thread::scope(|s| {
        let hs: Vec<_> = chunks
            .iter()
            .map(|c| {
                s.spawn(move || {
                    let mut bad = Vec::new();
                    for (a, b) in c.iter() {
                        let ours = freshen_apt::version::parse(a).unwrap().cmp(&freshen_apt::version::parse(b).unwrap());
                        let theirs = dpkg_cmp(a, b);
                        if ours != theirs {
                            bad.push(format!("{a} vs {b}: freshen {ours:?}, dpkg {theirs:?}"));
                        }
                    }
                    bad
                })
            })
            .collect();
        hs.into_iter().flat_map(|h| h.join().unwrap()).collect()
    });
    assert!(mismatches.is_empty(), "{} of {} pairs differ: {:?}", mismatches.len(), pairs.len(), &mismatches[..mismatches.len().min(20)]);
    eprintln!("{} pairs agree with dpkg", pairs.len());
}
