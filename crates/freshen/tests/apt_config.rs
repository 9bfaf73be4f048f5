//! The parts of apt's configuration that change its answer: dpkg holds,
//! pins at the edges of apt's priority rules, `APT::Default-Release`,
//! `Check-Valid-Until`, and Ubuntu's phased updates. Each case is checked
//! against Debian's apt itself, reading the same root (its own
//! `apt.conf.d`, preferences and machine id) through `APT_CONFIG`.

mod common;

use common::*;

fn image(root: &Rootfs) -> String {
    pack(&[(&root.dir, "base")], &tempdir().join("oci"), "t")
}

fn held(stanza: &str) -> String {
    stanza.replace("Status: install ok installed", "Status: hold ok installed")
}

/// (package, version) rows, sorted.
type Rows = Vec<(String, String)>;

/// freshen's (package, candidate) of every update, and of those it does
/// not hold back.
fn ours(v: &serde_json::Value) -> (Rows, Rows) {
    let all = updates(v);
    let pending = all.iter().map(|u| (u.0.clone(), u.1.clone())).collect();
    let installs = all.iter().filter(|u| !u.3).map(|u| (u.0.clone(), u.1.clone())).collect();
    (pending, installs)
}

fn held_back(v: &serde_json::Value) -> Vec<String> {
    updates(v).into_iter().filter(|u| u.3).map(|u| u.0).collect()
}

fn reason(v: &serde_json::Value, package: &str) -> String {
    let u = v["updates"].as_array().unwrap().iter().find(|u| u["package"] == package).unwrap_or_else(|| panic!("no {package}: {v}"));
    u["held_back_reason"].as_str().unwrap_or_default().to_string()
}

#[test]
fn dpkg_holds_are_kept_back_as_apt_does() {
    let r = repo();
    let root = Rootfs::new(DEBIAN_OS);
    root.with_sources(&format!("deb {u} stable main\ndeb {u} stable-security main\n", u = r.url));
    let status = held(&stanza("hello", "1.0-1")) + &held(&stanza("libfoo", "1:1.9-1")) + &stanza("mid", "1.0") + &stanza("needy", "1.0");
    root.write("var/lib/dpkg/status", &status);
    let (code, v) = scan_json(&image(&root), &[], &tempdir());
    let apt = apt_oracle(&root.dir);
    let (pending, installs) = ours(&v);
    assert_eq!(pending, apt.upgradable, "{v}");
    assert_eq!(installs, apt.installs, "{v}");
    assert_eq!(held_back(&v), apt.kept_back);
    assert_eq!(apt.kept_back, vec!["hello", "libfoo", "needy"]);
    assert_eq!(reason(&v, "libfoo"), "held by the dpkg selection (apt-mark hold)");
    assert_eq!(v["summary"]["held"], 2);
    assert!(v["summary"]["text"].as_str().unwrap().contains("3 held back (2 by apt-mark hold)"), "{v}");
    // mid is still pending: exit 3.
    assert_eq!(code, 3);
    // Held updates alone do not fail a scan (the owner chose to hold them).
    root.write("var/lib/dpkg/status", &held(&stanza("hello", "1.0-1")));
    let (code, v) = scan_json(&image(&root), &["--only", "all"], &tempdir());
    assert_eq!(code, 0, "{v}");
    assert_eq!(held_back(&v), vec!["hello"]);
}

const PINS: &str = "Package: src:libfoo\nPin: release a=stable-security\nPin-Priority: -1\n\n\
Package: hello\nPin: version 0.9*\nPin-Priority: PRIO\n\n\
Package: mid:i386\nPin: release a=stable\nPin-Priority: -1\n\n\
Package: *\nPin: bogus x\nPin-Priority: 5\n";

#[test]
fn pins_at_the_edges_of_apts_rules() {
    let r = repo();
    for prio in ["999", "1000", "1001"] {
        let root = Rootfs::new(DEBIAN_OS);
        root.with_sources(&format!("deb {u} stable main\ndeb {u} stable-security main\ndeb {u} old main\n", u = r.url));
        root.write("var/lib/dpkg/status", &(stanza("hello", "1.0-1") + &stanza("libfoo", "1:1.9-1") + &stanza("mid", "1.0")));
        root.write("etc/apt/preferences.d/edges", &PINS.replace("PRIO", prio));
        let (_, v) = scan_json(&image(&root), &[], &tempdir());
        let apt = apt_oracle(&root.dir);
        let (pending, installs) = ours(&v);
        assert_eq!(pending, apt.upgradable, "Pin-Priority {prio}: {v}");
        // apt-get upgrade never downgrades; freshen lists no downgrade.
        let apt_upgrades: Vec<_> = apt.installs.iter().filter(|(p, _)| p != "hello" || prio == "999").cloned().collect();
        assert_eq!(installs, apt_upgrades, "Pin-Priority {prio}: {v} / {:?}", apt.installs);
        // src:libfoo keeps libfoo off the security archive; mid:i386 does not
        // touch mid (amd64).
        assert!(!pending.iter().any(|(p, _)| p == "libfoo"), "{v}");
        assert!(pending.iter().any(|(p, _)| p == "mid"), "{v}");
        // The unknown pin type is a warning, as in apt.
        assert!(v["warnings"].to_string().contains("did not understand pin type `bogus`"), "{v}");
    }
    // Pin-Priority 0: apt refuses the file, so does freshen, naming it.
    let root = Rootfs::new(DEBIAN_OS);
    root.with_sources(&format!("deb {} stable main\n", r.url));
    root.write("var/lib/dpkg/status", &stanza("hello", "1.0-1"));
    root.write("etc/apt/preferences.d/zero", "Package: hello\nPin: version 1*\nPin-Priority: 0\n");
    assert_error(&freshen(&["scan", &image(&root)], &tempdir()), &["/etc/apt/preferences.d/zero:3", "no priority (or zero)"]);
    assert!(apt_oracle_with(&root.dir, &AptRun::default()).is_err_and(|e| e.contains("No priority (or zero) specified for pin")));
}

#[test]
fn default_release_is_a_990_pin_as_in_apt() {
    let r = repo();
    let root = Rootfs::new(DEBIAN_OS);
    root.with_sources(&format!("deb {u} stable main\ndeb {u} stable-security main\ndeb {u} backports main\ndeb {u} experimental main\n", u = r.url));
    root.write("var/lib/dpkg/status", &(stanza("hello", "1.0-1") + &stanza("libfoo", "1:1.9-1") + &stanza("mid", "1.0") + &stanza("bpo", "1.0") + &stanza("exp", "1.0")));
    // apt's syntax: a scope and comments.
    root.write("etc/apt/apt.conf.d/01release", "// the target release\nAPT { Default-Release \"calm\"; }; # here\n/* more */ APT::Get::Show-Versions \"1\";\n");
    let (_, v) = scan_json(&image(&root), &[], &tempdir());
    let apt = apt_oracle(&root.dir);
    let (pending, installs) = ours(&v);
    assert_eq!(pending, apt.upgradable, "{v}");
    assert_eq!(installs, apt.installs);
    // stable (codename calm) at 990: libfoo's installed version is in it, so
    // the security archive's newer version (500) is not the candidate.
    assert!(!pending.iter().any(|(p, _)| p == "libfoo"), "{v}");
    assert!(pending.iter().any(|(p, v)| p == "hello" && v == "1.0-2"), "{v}");
    // A release no source has: apt refuses, so does freshen.
    root.write("etc/apt/apt.conf.d/01release", "APT::Default-Release \"nosuch\";\n");
    assert_error(&freshen(&["scan", &image(&root)], &tempdir()), &["nosuch", "APT::Default-Release"]);
}

#[test]
fn check_valid_until_off_accepts_an_expired_release_as_apt_does() {
    let r = repo();
    for (sources, conf) in [
        (format!("deb [check-valid-until=no] {} expired main\n", r.url), None),
        (format!("deb {} expired main\n", r.url), Some("Acquire::Check-Valid-Until \"false\";\n")),
        (format!("Types: deb\nURIs: {}\nSuites: expired\nComponents: main\nCheck-Valid-Until: no\n", r.url), None),
    ] {
        let root = Rootfs::new(DEBIAN_OS);
        root.with_sources("");
        if sources.starts_with("Types:") {
            root.write("etc/apt/sources.list.d/snap.sources", &sources);
        } else {
            root.write("etc/apt/sources.list", &sources);
        }
        if let Some(c) = conf {
            root.write("etc/apt/apt.conf.d/10snapshot", c);
        }
        root.write("var/lib/dpkg/status", &stanza("hello", "1.0-1"));
        let (code, v) = scan_json(&image(&root), &[], &tempdir());
        assert_eq!(code, 3, "{sources}: {v}");
        assert_eq!(ours(&v).0, apt_oracle(&root.dir).upgradable);
        assert_eq!(ours(&v).0, vec![("hello".to_string(), "1.0-3".to_string())]);
    }
}

#[test]
fn phased_updates_are_deferred_as_apt_decides() {
    let r = repo();
    let os = "PRETTY_NAME=\"Ubuntu 24.04 LTS\"\nID=ubuntu\nVERSION_ID=\"24.04\"\nVERSION_CODENAME=noble\n";
    let names = ["ph5", "ph20", "ph40", "ph60", "ph80", "ph95", "phfull"];
    let root = Rootfs::new(os);
    root.with_sources(&format!("deb {} phased main\n", r.url));
    root.write("var/lib/dpkg/status", &names.iter().map(|n| stanza(n, "1.0")).collect::<String>());
    // Without a machine id (most container images) apt installs them all.
    let (_, v) = scan_json(&image(&root), &[], &tempdir());
    let apt = apt_oracle_with(&root.dir, &AptRun { own_pid_namespace: true }).unwrap();
    assert!(apt.deferred.is_empty() && apt.kept_back.is_empty(), "{apt:?}");
    assert!(held_back(&v).is_empty(), "{v}");
    // With one, apt draws per source version and machine; so must freshen.
    let mut deferred_somewhere = false;
    for id in ["3d1219c7c4c5404aaa1f6d2a48adfda4", "0123456789abcdef0123456789abcdef", "fedcba9876543210fedcba9876543210"] {
        root.write("etc/machine-id", &format!("{id}\n"));
        let (_, v) = scan_json(&image(&root), &[], &tempdir());
        let apt = apt_oracle_with(&root.dir, &AptRun { own_pid_namespace: true }).unwrap();
        // apt 2.6 says "kept back", later versions "deferred due to phasing".
        let mut apt_deferred = [apt.kept_back.clone(), apt.deferred.clone()].concat();
        apt_deferred.sort();
        assert_eq!(held_back(&v), apt_deferred, "machine {id}: {v}");
        assert_eq!(ours(&v).1, apt.installs, "machine {id}");
        for p in &apt_deferred {
            assert!(reason(&v, p).starts_with("phasing: deferred on this machine"), "{v}");
        }
        deferred_somewhere |= !apt_deferred.is_empty();
        assert!(!apt_deferred.contains(&"phfull".to_string()));
    }
    assert!(deferred_somewhere, "no machine id deferred anything: the case tests nothing");
}
