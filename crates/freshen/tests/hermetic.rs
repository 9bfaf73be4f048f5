//! `freshen scan` against a hermetic signed repository served on 127.0.0.1,
//! with apt itself (run on the same root through `-o Dir=`) as the oracle.

mod common;

use common::*;

const PREFS: &str = "Package: pinned\nPin: version 1.0*\nPin-Priority: 1001\n";

fn installed_base() -> String {
    [
        ("hello", "1.0-1"),
        ("libfoo", "1:1.9-1"),
        ("mid", "1.0"),
        ("pinned", "1.0-1"),
        ("exp", "1.0"),
        ("bpo", "1.0"),
        ("needy", "1.0"),
        ("tilde", "0.9"),
    ]
    .iter()
    .map(|(n, v)| stanza(n, v))
    .collect()
}

/// The main test image: a base layer and an "app" layer that upgraded `tilde`.
fn main_image() -> (Rootfs, Rootfs, String) {
    let r = repo();
    let base = Rootfs::new(DEBIAN_OS);
    base.with_sources(&format!(
        "deb {u} stable main\ndeb {u} stable-security main\ndeb {u} experimental main\ndeb {u} backports main\n",
        u = r.url
    ));
    base.write("etc/apt/preferences.d/pinned", PREFS);
    base.write("var/lib/dpkg/status", &installed_base());
    let app = Rootfs { dir: tempdir() };
    app.write("var/lib/dpkg/status", &installed_base().replace("Version: 0.9", "Version: 1.0~beta"));
    let layout = tempdir().join("oci");
    let image = pack(&[(&base.dir, "debootstrap"), (&app.dir, "RUN apt-get install tilde")], &layout, "app");
    // The merged root, for apt: the base with the app layer's status.
    base.write("var/lib/dpkg/status", &installed_base().replace("Version: 0.9", "Version: 1.0~beta"));
    (base, app, image)
}

#[test]
fn scan_matches_apt_on_security_pins_notautomatic_epochs_and_held_back() {
    let (root, _app, image) = main_image();
    let cache = tempdir();
    let (code, v) = scan_json(&image, &[], &cache);
    assert_eq!(code, 3, "{v}");
    let got = updates(&v);
    let expected = vec![
        ("bpo".to_string(), "2.0".to_string(), false, false),
        ("hello".into(), "1.0-2".into(), false, false),
        ("libfoo".into(), "1:2.0~rc1-1".into(), true, false),
        ("mid".into(), "1.2".into(), true, false),
        ("needy".into(), "2.0".into(), false, true),
        ("tilde".into(), "1.0".into(), false, false),
    ];
    assert_eq!(got, expected);
    // apt agrees on the set, the candidates and what is kept back.
    let apt = apt_oracle(&root.dir);
    let (apt_up, apt_kept) = (apt.upgradable, apt.kept_back);
    let ours: Vec<(String, String)> = got.iter().map(|u| (u.0.clone(), u.1.clone())).collect();
    assert_eq!(ours, apt_up);
    assert_eq!(apt_kept, vec!["needy".to_string()]);
    let needy = v["updates"].as_array().unwrap().iter().find(|u| u["package"] == "needy").unwrap();
    assert!(needy["held_back_reason"].as_str().unwrap().contains("newdep"), "{needy}");
    // Security first in the output.
    assert_eq!(v["updates"][0]["security"], true);
    assert_eq!(v["os"]["id"], "debian");
    assert_eq!(v["os"]["codename"], "calm");
    assert_eq!(v["os"]["version_id"], "13");
    // `updates/main` in the security Release matched the sources' `main`.
    let libfoo = v["updates"].as_array().unwrap().iter().find(|u| u["package"] == "libfoo").unwrap();
    assert_eq!(libfoo["suite"], "stable-security");
}

#[test]
fn layer_attribution_names_the_layer_that_wrote_each_entry() {
    let (_root, _app, image) = main_image();
    let (_, v) = scan_json(&image, &[], &tempdir());
    let find = |p: &str| v["updates"].as_array().unwrap().iter().find(|u| u["package"] == p).unwrap().clone();
    assert_eq!(find("tilde")["layer"]["index"], 1);
    assert_eq!(find("tilde")["layer"]["created_by"], "RUN apt-get install tilde");
    assert_eq!(find("hello")["layer"]["index"], 0);
    assert_eq!(find("hello")["layer"]["created_by"], "debootstrap");
    assert!(find("hello")["layer"]["digest"].as_str().unwrap().starts_with("sha256:"));
}

#[test]
fn only_security_and_exit_codes() {
    let (_root, _app, image) = main_image();
    let cache = tempdir();
    let (code, v) = scan_json(&image, &["--only", "security"], &cache);
    assert_eq!(code, 3);
    let names: Vec<_> = updates(&v).into_iter().map(|u| u.0).collect();
    assert_eq!(names, vec!["libfoo", "mid"]);
    // An image with nothing pending exits 0.
    let clean = Rootfs::new(DEBIAN_OS);
    clean.with_sources(&format!("deb {} stable main\n", repo().url));
    clean.write("var/lib/dpkg/status", &stanza("hello", "1.0-2"));
    let img = pack(&[(&clean.dir, "base")], &tempdir().join("oci"), "clean");
    let (code, v) = scan_json(&img, &[], &cache);
    assert_eq!(code, 0, "{v}");
    assert_eq!(v["updates"].as_array().unwrap().len(), 0);
    // Text output carries the summary line.
    let out = freshen(&["scan", &image], &cache);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("6 updates pending (2 security), 1 held back"), "{text}");
    assert!(text.contains("from layer 0 (debootstrap), layer 1 (RUN apt-get install tilde)"), "{text}");
}

#[test]
fn changelogs_give_cves_and_fix_dates() {
    let (_root, _app, image) = main_image();
    let cache = tempdir();
    let (_, v) = scan_json(&image, &["--changelogs"], &cache);
    let libfoo = v["updates"].as_array().unwrap().iter().find(|u| u["package"] == "libfoo").unwrap().clone();
    assert_eq!(libfoo["cves"], serde_json::json!(["CVE-2026-0999", "CVE-2026-1111"]));
    assert_eq!(libfoo["fixed_on"], "2026-11-01");
    assert_eq!(v["summary"]["oldest_fix"], "2026-11-01");
    assert!(v["summary"]["exposed_days"].as_i64().unwrap() >= 0);
    // The verified .deb stays in the shared cache for `patch`.
    let debs: Vec<_> = std::fs::read_dir(cache.join("debs")).unwrap().collect();
    assert!(!debs.is_empty());
}

#[test]
fn second_scan_costs_one_request_per_source() {
    let (_root, _app, image) = main_image();
    let cache = tempdir();
    let (_, first) = scan_json(&image, &[], &cache);
    assert!(first["http_requests"].as_u64().unwrap() > 4);
    let before = repo().requests.load(std::sync::atomic::Ordering::SeqCst);
    let (_, second) = scan_json(&image, &[], &cache);
    assert_eq!(second["http_requests"], 4, "{second}");
    assert_eq!(updates(&first), updates(&second));
    // The server saw at least those requests (other tests may run alongside).
    assert!(repo().requests.load(std::sync::atomic::Ordering::SeqCst) - before >= 4);
}

#[test]
fn ubuntu_style_security_pocket() {
    let os = "PRETTY_NAME=\"Ubuntu 24.04 LTS\"\nID=ubuntu\nVERSION_ID=\"24.04\"\nVERSION_CODENAME=noble\n";
    let root = Rootfs::new(os);
    root.with_sources(&format!("deb {} noble-security main\n", repo().url));
    root.write("var/lib/dpkg/status", &stanza("ubu", "1.0"));
    let img = pack(&[(&root.dir, "base")], &tempdir().join("oci"), "u");
    let (code, v) = scan_json(&img, &["--changelogs"], &tempdir());
    assert_eq!(code, 3);
    assert_eq!(updates(&v), vec![("ubu".to_string(), "1.1".to_string(), true, false)]);
    assert_eq!(v["updates"][0]["cves"], serde_json::json!(["CVE-2026-2222"]));
    assert_eq!(v["os"]["id"], "ubuntu");
    assert_eq!(v["os"]["codename"], "noble");
}

fn single_source_image(suite: &str, key: &str) -> String {
    let root = Rootfs::new(DEBIAN_OS);
    root.write("etc/apt/sources.list", &format!("deb {} {suite} main\n", repo().url));
    root.write_bytes("etc/apt/trusted.gpg.d/k.gpg", &std::fs::read(repo().dir.join("keys").join(key)).unwrap());
    root.write("var/lib/dpkg/status", &stanza("hello", "1.0-1"));
    pack(&[(&root.dir, "base")], &tempdir().join("oci"), "t")
}

#[test]
fn wrong_signature_names_source_and_keys() {
    let img = single_source_image("wrongkey", "test.gpg");
    let out = freshen(&["scan", &img], &tempdir());
    assert_error(&out, &["wrongkey", "InRelease signature", "signed by key", "keys tried"]);
    // Trusting the other key instead makes it verify.
    let img = single_source_image("wrongkey", "other.asc");
    let (code, _) = scan_json(&img, &[], &tempdir());
    assert_eq!(code, 3);
}

#[test]
fn expired_release_is_refused() {
    let img = single_source_image("expired", "test.gpg");
    assert_error(&freshen(&["scan", &img], &tempdir()), &["expired", "Valid-Until"]);
}

#[test]
fn tampered_index_is_refused() {
    let img = single_source_image("badhash", "test.gpg");
    assert_error(&freshen(&["scan", &img], &tempdir()), &["hash mismatch", "badhash"]);
}

#[test]
fn unreachable_mirror_is_named() {
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let root = Rootfs::new(DEBIAN_OS);
    root.with_sources(&format!("deb http://127.0.0.1:{port}/debian stable main\ndeb {} stable main\n", repo().url));
    root.write("var/lib/dpkg/status", &stanza("hello", "1.0-1"));
    let img = pack(&[(&root.dir, "base")], &tempdir().join("oci"), "t");
    assert_error(&freshen(&["scan", &img], &tempdir()), &[&format!("cannot reach http://127.0.0.1:{port}/debian/dists/stable/InRelease")]);
    let out = freshen(&["scan", &img, "--ignore-unreachable"], &tempdir());
    assert_eq!(out.status.code(), Some(3));
    assert!(String::from_utf8_lossy(&out.stderr).contains("warning: skipped source"));
}

#[test]
fn unsigned_trusted_yes_source_is_refused() {
    let root = Rootfs::new(DEBIAN_OS);
    root.write("etc/apt/sources.list", &format!("deb [trusted=yes] {} stable main\n", repo().url));
    root.write("var/lib/dpkg/status", &stanza("hello", "1.0-1"));
    let img = pack(&[(&root.dir, "base")], &tempdir().join("oci"), "t");
    assert_error(&freshen(&["scan", &img], &tempdir()), &["trusted=yes"]);
}

#[test]
fn host_directory_scan_reports_unattended_upgrades() {
    let root = Rootfs::new(DEBIAN_OS);
    root.with_sources(&format!("deb {} stable main\n", repo().url));
    root.write("var/lib/dpkg/status", &(stanza("hello", "1.0-1") + &stanza("unattended-upgrades", "2.9.1")));
    root.write("etc/apt/apt.conf.d/20auto-upgrades", "APT::Periodic::Update-Package-Lists \"1\";\nAPT::Periodic::Unattended-Upgrade \"1\";\n");
    root.write("var/lib/apt/periodic/unattended-upgrades-stamp", "");
    root.write("run/reboot-required", "*** System restart required ***\n");
    let (code, v) = scan_json(&format!("dir:{}", root.dir.display()), &[], &tempdir());
    assert_eq!(code, 3);
    assert_eq!(v["host"]["unattended_upgrades_installed"], true);
    assert_eq!(v["host"]["unattended_upgrades_enabled"], true);
    assert!(v["host"]["unattended_upgrades_last_run"].is_string());
    assert_eq!(v["host"]["reboot_required"], true);
    assert!(v["updates"][0]["layer"].is_null());
}

#[test]
fn release_origin_and_glob_pins_match_apt() {
    let r = repo();
    let root = Rootfs::new(DEBIAN_OS);
    root.with_sources(&format!("deb {u} stable main\ndeb {u} stable-security main\n", u = r.url));
    root.write(
        "etc/apt/preferences",
        "Package: hel*\nPin: release n=calm\nPin-Priority: -10\n\n\
         Package: *\nPin: release l=Test-Security, o=Test\nPin-Priority: 50\n\n\
         Package: /^til/\nPin: origin 127.0.0.1\nPin-Priority: 1\n",
    );
    root.write("var/lib/dpkg/status", &installed_base());
    let img = pack(&[(&root.dir, "base")], &tempdir().join("oci"), "pins");
    let (_, v) = scan_json(&img, &[], &tempdir());
    let got = updates(&v);
    let apt = apt_oracle(&root.dir);
    let (apt_up, apt_kept) = (apt.upgradable, apt.kept_back);
    let ours: Vec<(String, String)> = got.iter().map(|u| (u.0.clone(), u.1.clone())).collect();
    assert_eq!(ours, apt_up);
    assert_eq!(apt_kept, vec!["needy".to_string()]);
    // hello is pinned away, libfoo's security archive is below the installed
    // version's 100, tilde's origin is pinned to 1; mid still gets 1.2 from
    // stable and counts as security because 1.1 lies in between.
    assert_eq!(
        got,
        vec![
            ("mid".to_string(), "1.2".to_string(), true, false),
            ("needy".into(), "2.0".into(), false, true),
            ("pinned".into(), "2.0".into(), false, false),
        ]
    );
}

#[test]
fn deb822_sources_with_signed_by_and_detached_signatures() {
    let r = repo();
    let root = Rootfs::new(DEBIAN_OS);
    root.write_bytes("usr/share/keyrings/test-archive.gpg", &std::fs::read(r.dir.join("keys/test.gpg")).unwrap());
    root.write(
        "etc/apt/sources.list.d/test.sources",
        &format!("Types: deb\nURIs: {}\nSuites: detached\nComponents: main\nSigned-By: /usr/share/keyrings/test-archive.gpg\n", r.url),
    );
    root.write("var/lib/dpkg/status", &stanza("hello", "1.0-1"));
    let img = pack(&[(&root.dir, "base")], &tempdir().join("oci"), "d822");
    let (code, v) = scan_json(&img, &[], &tempdir());
    assert_eq!(code, 3, "{v}");
    assert_eq!(updates(&v), vec![("hello".to_string(), "1.0-6".to_string(), false, false)]);
    // The same source trusted through a key it does not carry fails.
    root.write_bytes("usr/share/keyrings/test-archive.gpg", &std::fs::read(r.dir.join("keys/other.asc")).unwrap());
    let img = pack(&[(&root.dir, "base")], &tempdir().join("oci"), "d822");
    assert_error(&freshen(&["scan", &img], &tempdir()), &["detached", "Release.gpg signature"]);
    // A Signed-By path the image does not have is named.
    root.write(
        "etc/apt/sources.list.d/test.sources",
        &format!("Types: deb\nURIs: {}\nSuites: detached\nComponents: main\nSigned-By: /etc/apt/keyrings/missing.gpg\n", r.url),
    );
    let img = pack(&[(&root.dir, "base")], &tempdir().join("oci"), "d822");
    assert_error(&freshen(&["scan", &img], &tempdir()), &["/etc/apt/keyrings/missing.gpg"]);
}

/// Fingerprints in `Signed-By` select keys as apt's gpgv method does: whole
/// fingerprints only (a key id must not widen trust), `!` for that very key.
#[test]
fn signed_by_fingerprints_match_whole() {
    let r = repo();
    let fpr = |key: &str| {
        let out = std::process::Command::new("gpg").args(["--batch", "--with-colons", "--show-keys"]).arg(r.dir.join("keys").join(key)).output().unwrap();
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        text.lines().find_map(|l| l.strip_prefix("fpr:").map(|f| f.trim_matches(':').to_string())).expect("a fingerprint")
    };
    let (test, other) = (fpr("test.gpg"), fpr("other.asc"));
    assert_eq!(test.len(), 40, "{test}");
    let root = Rootfs::new(DEBIAN_OS);
    root.write_bytes("etc/apt/trusted.gpg.d/test.gpg", &std::fs::read(r.dir.join("keys/test.gpg")).unwrap());
    root.write_bytes("etc/apt/trusted.gpg.d/other.asc", &std::fs::read(r.dir.join("keys/other.asc")).unwrap());
    root.write("var/lib/dpkg/status", &stanza("hello", "1.0-1"));
    let scan_with = |signed_by: &str| {
        root.write("etc/apt/sources.list", &format!("deb [signed-by={signed_by}] {} detached main\n", r.url));
        let img = pack(&[(&root.dir, "base")], &tempdir().join("oci"), "fpr");
        freshen(&["scan", &img, "--format", "json"], &tempdir())
    };
    for ok in [test.clone(), test.to_lowercase(), format!("{test}!"), format!("{other},{test}")] {
        let out = scan_with(&ok);
        assert_eq!(out.status.code(), Some(3), "signed-by={ok}: {}", String::from_utf8_lossy(&out.stderr));
    }
    assert_error(&scan_with(&other), &["detached", "signature"]);
    let long_id = &test[24..];
    assert_error(&scan_with(long_id), &[long_id, "not a full fingerprint"]);
    assert_error(&scan_with(&test[1..]), &["not a full fingerprint"]);
}

#[test]
fn distroless_status_d() {
    let root = Rootfs::new(DEBIAN_OS);
    root.with_sources(&format!("deb {} stable main\n", repo().url));
    root.write("var/lib/dpkg/status.d/hello", "Package: hello\nVersion: 1.0-1\nArchitecture: amd64\n");
    root.write("var/lib/dpkg/status.d/hello.md5sums", "d41d8cd98f00b204e9800998ecf8427e  usr/share/hello\n");
    let img = pack(&[(&root.dir, "distroless")], &tempdir().join("oci"), "dl");
    let (code, v) = scan_json(&img, &[], &tempdir());
    assert_eq!(code, 3);
    assert_eq!(updates(&v), vec![("hello".to_string(), "1.0-2".to_string(), false, false)]);
    assert_eq!(v["updates"][0]["layer"]["index"], 0);
}

#[test]
fn multi_arch_packages_show_their_arch() {
    let root = Rootfs::new(DEBIAN_OS);
    root.with_sources(&format!("deb {} multiarch main\n", repo().url));
    root.write("var/lib/dpkg/arch", "amd64\ni386\n");
    let mut status = stanza("dpkg", "1.0") + &stanza("plain", "1.0");
    for (name, arch) in [("libmulti", "amd64"), ("libmulti", "i386"), ("onlyi386", "i386")] {
        status += &stanza(name, "1.0").replace("Architecture: amd64", &format!("Architecture: {arch}\nMulti-Arch: same"));
    }
    root.write("var/lib/dpkg/status", &status);
    let image = pack(&[(&root.dir, "base")], &tempdir().join("oci"), "multi");
    let out = freshen(&["scan", &image], &tempdir());
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(3), "{text}{}", String::from_utf8_lossy(&out.stderr));
    // The PACKAGE column, as apt names them: the arch for a foreign one and
    // for a name installed for two; a plain native package stays plain.
    let header = text.lines().find(|l| l.starts_with("SOURCE")).unwrap_or_else(|| panic!("no table: {text}"));
    let col = header.find("PACKAGE").unwrap();
    let mut names: Vec<&str> = text.lines().skip_while(|l| !l.starts_with("SOURCE")).skip(1).take_while(|l| !l.contains(" pending")).filter(|l| l.len() > col).map(|l| l[col..].split_whitespace().next().unwrap()).collect();
    names.sort();
    assert_eq!(names, ["libmulti:amd64", "libmulti:i386", "onlyi386:i386", "plain"], "{text}");
}
