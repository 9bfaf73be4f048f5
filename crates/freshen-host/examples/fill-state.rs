//! Fills a state database with a host's worth of history through the
//! State API, for bench/web.sh: `fill-state DIR TARGETS DAYS`. Every day
//! one pass: each target's image shows pending security fixes, every
//! third day a target is patched (some rolled back, some failing).

use std::collections::BTreeMap;

use chrono::{Duration, Utc};
use freshen_host::model::{Action, DeployRecord, Kind, Outcome, Pending, Target};
use freshen_host::state::RecordedScan;
use freshen_host::State;

const PACKAGES: &[&str] = &["libc6", "openssl", "libssl3", "zlib1g", "curl", "libcurl4", "tzdata", "libxml2", "perl-base", "libsqlite3-0"];

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let (Some(dir), Some(targets), Some(days)) = (args.get(1), args.get(2).and_then(|n| n.parse::<usize>().ok()), args.get(3).and_then(|n| n.parse::<i64>().ok())) else {
        eprintln!("usage: fill-state DIR TARGETS DAYS");
        std::process::exit(2);
    };
    let mut state = State::open_writer(std::path::Path::new(dir)).unwrap_or_else(|e| {
        eprintln!("fill-state: {e}");
        std::process::exit(1);
    });
    let now = Utc::now();
    let target = |i: usize| Target {
        kind: if i.is_multiple_of(10) { Kind::DokkuApp } else { Kind::Container },
        name: format!("svc-{i:03}"),
        image: format!("registry.example/team{}/svc-{i:03}:v{}", i % 7, i % 4),
        image_id: Some(format!("sha256:{i:064x}")),
        source: Some(format!("docker-daemon:sha256:{i:064x}")),
        skip: None,
    };
    let distro = |i: usize| Some(if i.is_multiple_of(3) { "ubuntu" } else { "debian" }.to_string());
    for day in 0..days {
        let at = now - Duration::days(days - day) + Duration::minutes(5);
        let pass = state.begin_pass(at, false).expect("begin pass");
        let outcomes: Vec<Outcome> = (0..targets)
            .map(|i| {
                // Each target's image falls behind by one fix a day for a
                // few days, then a patch closes the window.
                let round = (day + i as i64) / 3;
                let open = ((day + i as i64) % 3) as usize;
                let pending = |n: usize, round: i64| -> Vec<Pending> {
                    (0..n)
                        .map(|k| {
                            let pkg = PACKAGES[(i + k) % PACKAGES.len()];
                            Pending {
                                package: pkg.into(),
                                arch: "amd64".into(),
                                installed: format!("{round}.{k}-1"),
                                candidate: format!("{round}.{k}-1+deb12u1"),
                                suite: "bookworm-security".into(),
                                security: true,
                                held_back: None,
                                held: false,
                                cves: vec![format!("CVE-2026-{:04}", (i * 31 + k * 7 + round as usize) % 10000), format!("CVE-2025-{:04}", (i + k) % 10000)],
                                fixed_on: Some(at - Duration::hours(6)),
                            }
                        })
                        .collect()
                };
                let base = Outcome { distro: distro(i), image_id: target(i).image_id, ..Outcome::new(target(i), Action::Unchanged, None) };
                if open == 0 && day > 0 {
                    let deployed = at + Duration::minutes(2);
                    let (result, reason) = match i % 17 {
                        3 => (Action::RolledBack, Some(format!("svc-{i:03}: its health check reports unhealthy (rolled back: the old container runs again)"))),
                        5 => (Action::Failed, Some("the patch failed: apt-get exited with status 100".into())),
                        _ => (Action::Patched, Some("4 packages upgraded".to_string())),
                    };
                    let deploy = DeployRecord { result, reason: reason.clone(), logs: (result != Action::Patched).then(|| "<panic> at main.go:42\nexit status 2".to_string()), at: deployed };
                    // What the last two passes saw pending.
                    let prev = pending(4, round - 1);
                    match result {
                        Action::Patched => Outcome { action: result, reason, deploy: Some(deploy), fixed: prev, pending: Some(Vec::new()), ..base },
                        _ => Outcome { action: result, reason, deploy: Some(deploy), pending: Some(prev), ..base },
                    }
                } else {
                    Outcome { pending: Some(pending(open.max(1) * 2, round)), ..base }
                }
            })
            .collect();
        state.record_pass(pass, &[], &outcomes, true, at + Duration::minutes(3), None).expect("record pass");
    }
    for i in 0..targets {
        let releases = BTreeMap::from([
            (format!("http://deb.debian.org/debian-security/dists/bookworm-security/InRelease#{}", i % 3), format!("{:064x}", i % 3)),
            ("http://deb.debian.org/debian/dists/bookworm/InRelease".to_string(), "ab".repeat(32)),
        ]);
        let scan = RecordedScan { image_id: format!("sha256:{i:064x}"), installed: 120, pending: Vec::new(), unsupported: None, releases, distro: distro(i) };
        state.record_scan(&format!("docker-daemon:sha256:{i:064x}"), &scan, now - Duration::hours(i as i64 % 48)).expect("record scan");
    }
}
