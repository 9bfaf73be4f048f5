//! How freshen reaches archives, against the hermetic signed repository:
//! failing sources with and without `--ignore-unreachable`, misspelt
//! components, `file:` sources read from the image, HTTPS with the
//! system's trust store or `--ca-file`, proxies from the environment,
//! apt's auth.conf, and many scans filling one cold cache at once.

mod common;

use std::sync::atomic::Ordering;

use common::*;

/// An image trusting the test key, with `sources` and these packages installed.
fn image(sources: &str, installed: &[(&str, &str)]) -> (Rootfs, String) {
    let root = Rootfs::new(DEBIAN_OS);
    root.with_sources(sources);
    root.write("var/lib/dpkg/status", &installed.iter().map(|(n, v)| stanza(n, v)).collect::<String>());
    let img = pack(&[(&root.dir, "base")], &tempdir().join("oci"), "t");
    (root, img)
}

fn warnings(v: &serde_json::Value) -> Vec<String> {
    v["warnings"].as_array().unwrap().iter().map(|w| w.as_str().unwrap().to_string()).collect()
}

#[test]
fn ignore_unreachable_skips_any_failing_source_with_a_warning() {
    let u = &repo().url;
    let failing = [
        (format!("deb {u} nosuchsuite main"), "nosuchsuite"),
        (format!("deb {u} badhash main"), "hash mismatch"),
        ("deb file:/srv/nothing-here ./".to_string(), "file:/srv/nothing-here"),
        ("deb cdrom:[Debian GNU/Linux 12 _Bookworm_]/ bookworm main".to_string(), "cdrom:"),
    ];
    for (line, needle) in &failing {
        // Alone and without the flag, each is an error naming the source.
        let (_, img) = image(&format!("{line}\n"), &[("hello", "1.0-1")]);
        assert_error(&freshen(&["scan", &img], &tempdir()), &[needle]);
    }
    let all: String = failing.iter().map(|(l, _)| format!("{l}\n")).collect();
    let (_, img) = image(&format!("{all}deb {u} stable main\n"), &[("hello", "1.0-1")]);
    let cache = tempdir();
    let out = freshen(&["scan", &img, "--ignore-unreachable", "--format", "json"], &cache);
    assert_eq!(out.status.code(), Some(3), "{}", String::from_utf8_lossy(&out.stderr));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(updates(&v), vec![("hello".to_string(), "1.0-2".to_string(), false, false)]);
    let w = warnings(&v);
    assert_eq!(w.len(), 4, "{w:?}");
    for (_, needle) in &failing {
        assert!(w.iter().any(|w| w.contains(needle) && w.starts_with("skipped source")), "no warning with `{needle}`: {w:?}");
    }
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(stderr.lines().filter(|l| l.starts_with("warning: skipped source")).count(), 4, "{stderr}");
}

#[test]
fn misspelt_component_is_a_warning_as_in_apt() {
    let u = &repo().url;
    let (_, img) = image(&format!("deb {u} stable mian\ndeb {u} stable main\n"), &[("hello", "1.0-1")]);
    let (code, v) = scan_json(&img, &[], &tempdir());
    assert_eq!(code, 3, "{v}");
    let w = warnings(&v);
    assert_eq!(w.len(), 1, "{w:?}");
    assert!(w[0].contains("does not list component `mian`") && w[0].contains("etc/apt/sources.list:1"), "{w:?}");
    // apt says the same.
    let (root, _) = image(&format!("deb {u} stable mian\n"), &[("hello", "1.0-1")]);
    let state = tempdir();
    std::fs::create_dir_all(state.join("lists/partial")).unwrap();
    let out = std::process::Command::new("apt-get")
        .arg("-o").arg(format!("Dir={}", root.dir.display()))
        .arg("-o").arg(format!("Dir::State::Lists={}/lists", state.display()))
        .arg("-o").arg(format!("Dir::Cache={}/cache", state.display()))
        .args(["-o", "APT::Sandbox::User=root", "-o", "Debug::NoLocking=1", "update"])
        .output()
        .unwrap();
    assert!(String::from_utf8_lossy(&out.stderr).contains("doesn't have the component 'mian'"), "{}", String::from_utf8_lossy(&out.stderr));
}

#[test]
fn file_sources_are_read_from_the_image_and_verified() {
    let flat = repo().dir.join("repo/moving.1");
    let root = Rootfs::new(DEBIAN_OS);
    root.with_sources("deb file:/srv/repo ./\n");
    for e in std::fs::read_dir(&flat).unwrap() {
        let e = e.unwrap();
        root.write_bytes(&format!("srv/repo/{}", e.file_name().to_string_lossy()), &std::fs::read(e.path()).unwrap());
    }
    root.write("var/lib/dpkg/status", &stanza("mover", "1.0"));
    let img = pack(&[(&root.dir, "base")], &tempdir().join("oci"), "local");
    let (code, v) = scan_json(&img, &["--changelogs"], &tempdir());
    assert_eq!(code, 3, "{v}");
    assert_eq!(updates(&v), vec![("mover".to_string(), "1.1".to_string(), false, false)]);
    assert_eq!(v["http_requests"], 0);
    // The host directory too.
    let (code, _) = scan_json(&format!("dir:{}", root.dir.display()), &[], &tempdir());
    assert_eq!(code, 3);
    // An index that does not match the signed Release is refused.
    root.write("srv/repo/Packages", "Package: mover\nVersion: 9.9\nFilename: x.deb\nSize: 1\nSHA256: 0000000000000000000000000000000000000000000000000000000000000000\n");
    std::fs::remove_file(root.dir.join("srv/repo/Packages.xz")).unwrap();
    let img = pack(&[(&root.dir, "base")], &tempdir().join("oci"), "local");
    assert_error(&freshen(&["scan", &img], &tempdir()), &["file:/srv/repo", "hash mismatch"]);
}

#[test]
fn https_mirror_trusts_the_system_store_and_ca_file() {
    let https = HttpsRepo::start();
    let (_, img) = image(&format!("deb {} stable main\n", https.url), &[("hello", "1.0-1")]);
    let ca = https.ca.to_str().unwrap();
    let out = freshen_env(&["scan", &img, "--format", "json"], &tempdir(), &[("SSL_CERT_FILE", ca)]);
    assert_eq!(out.status.code(), Some(3), "{}", String::from_utf8_lossy(&out.stderr));
    let out = freshen_env(&["scan", &img, "--format", "json", "--ca-file", ca], &tempdir(), &[]);
    assert_eq!(out.status.code(), Some(3), "{}", String::from_utf8_lossy(&out.stderr));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(updates(&v), vec![("hello".to_string(), "1.0-2".to_string(), false, false)]);
    // Without the CA: one line naming the URL and the certificate problem.
    assert_error(&freshen_env(&["scan", &img], &tempdir(), &[]), &[&format!("cannot reach {}/dists/stable/InRelease", https.url), "UnknownIssuer"]);
}

#[test]
fn proxies_come_from_the_environment() {
    let proxy = ForwardProxy::start();
    let (_, img) = image(&format!("deb {} stable main\n", repo().url), &[("hello", "1.0-1")]);
    let out = freshen_env(&["scan", &img, "--format", "json"], &tempdir(), &[("http_proxy", &proxy.url)]);
    assert_eq!(out.status.code(), Some(3), "{}", String::from_utf8_lossy(&out.stderr));
    let through = proxy.requests.load(Ordering::SeqCst);
    assert!(through >= 2, "{through} requests went through the proxy");
    // no_proxy exempts the host.
    let out = freshen_env(&["scan", &img], &tempdir(), &[("http_proxy", &proxy.url), ("no_proxy", "localhost,127.0.0.1")]);
    assert_eq!(out.status.code(), Some(3), "{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(proxy.requests.load(Ordering::SeqCst), through);
    // https:// goes through a CONNECT tunnel on https_proxy (TLS still checked end to end).
    let https = HttpsRepo::start();
    let (_, img_tls) = image(&format!("deb {} stable main\n", https.url), &[("hello", "1.0-1")]);
    let before = proxy.requests.load(Ordering::SeqCst);
    let out = freshen_env(&["scan", &img_tls, "--ca-file", https.ca.to_str().unwrap()], &tempdir(), &[("https_proxy", &proxy.url)]);
    assert_eq!(out.status.code(), Some(3), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(proxy.requests.load(Ordering::SeqCst) > before);
    // A dead proxy is named.
    let dead = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let dead = format!("http://127.0.0.1:{dead}");
    assert_error(&freshen_env(&["scan", &img], &tempdir(), &[("http_proxy", &dead)]), &[&format!("through proxy {dead}")]);
}

#[test]
fn auth_conf_gives_credentials_that_are_never_shown() {
    let (url, _) = serve_private(repo().dir.join("repo"), "mirror-user", "pa55-word");
    let sources = format!("deb {url} stable main\n");
    let (root, img) = image(&sources, &[("hello", "1.0-1")]);
    let secret_free = |out: &std::process::Output| {
        let all = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
        assert!(!all.contains("pa55-word"), "the password was printed: {all}");
    };
    // No credentials: a 401, named.
    let out = freshen(&["scan", &img], &tempdir());
    assert_error(&out, &["401", "auth.conf"]);
    // An entry without `http://` is for HTTPS only (apt_auth.conf(5)); one for another path does not match.
    let host = url.trim_start_matches("http://");
    for entry in [format!("machine {host} login mirror-user password pa55-word\n"), format!("machine http://{host}/other login mirror-user password pa55-word\n")] {
        root.write("etc/apt/auth.conf.d/mirror.conf", &entry);
        let img = pack(&[(&root.dir, "base")], &tempdir().join("oci"), "t");
        let out = freshen(&["scan", &img], &tempdir());
        assert_error(&out, &["401"]);
        secret_free(&out);
    }
    root.write("etc/apt/auth.conf.d/mirror.conf", &format!("machine http://{host}/dists\nlogin mirror-user\npassword pa55-word\n"));
    let img = pack(&[(&root.dir, "base")], &tempdir().join("oci"), "t");
    let out = freshen(&["scan", &img, "--format", "json"], &tempdir());
    assert_eq!(out.status.code(), Some(3), "{}", String::from_utf8_lossy(&out.stderr));
    secret_free(&out);
    // Credentials in the source URI: used, never printed (not in the JSON's uri either).
    let (_, img) = image(&format!("deb http://mirror-user:pa55-word@{host} stable main\n"), &[("hello", "1.0-1")]);
    let out = freshen(&["scan", &img, "--format", "json", "--changelogs"], &tempdir());
    assert_eq!(out.status.code(), Some(3), "{}", String::from_utf8_lossy(&out.stderr));
    secret_free(&out);
    // Wrong credentials: refused, and not shown.
    let (_, img) = image(&format!("deb http://mirror-user:wrong-pa55-word@{host} stable main\n"), &[("hello", "1.0-1")]);
    let out = freshen(&["scan", &img], &tempdir());
    assert_error(&out, &["401", "refused"]);
    secret_free(&out);
}

const TWO_COMPONENTS: &[(&str, &str)] = &[("hello", "1.0-1"), ("contribpkg", "0.9")];

fn expected_two_components() -> Vec<(String, String, bool, bool)> {
    vec![("contribpkg".to_string(), "1.0".to_string(), false, false), ("hello".to_string(), "1.0-2".to_string(), false, false)]
}

#[test]
fn one_dist_in_several_entries_fills_a_cold_cache() {
    let u = &repo().url;
    // Three entries of one dist: threads of one process fetch the same Release and indexes.
    let (_, img) = image(&format!("deb {u} stable main\ndeb {u} stable contrib\ndeb {u} stable main contrib\n"), TWO_COMPONENTS);
    for _ in 0..3 {
        let (code, v) = scan_json(&img, &[], &tempdir());
        assert_eq!(code, 3, "{v}");
        assert_eq!(updates(&v), expected_two_components());
        assert!(warnings(&v).is_empty(), "{v}");
    }
}

#[test]
fn concurrent_scans_share_one_cold_cache() {
    let u = &repo().url;
    let (_, img) = image(&format!("deb {u} stable main contrib\ndeb {u} stable-security main\n"), TWO_COMPONENTS);
    let cache = tempdir();
    let runs: Vec<_> = (0..4).map(|_| std::thread::spawn({
        let (img, cache) = (img.clone(), cache.clone());
        move || scan_json(&img, &["--changelogs"], &cache)
    })).collect();
    for r in runs {
        let (code, v) = r.join().unwrap();
        assert_eq!(code, 3, "{v}");
        assert_eq!(updates(&v), expected_two_components());
    }
    // No temporary file is left behind.
    let leftovers: Vec<_> = walk(&cache).into_iter().filter(|p| p.contains(".tmp") || p.contains(".download")).collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");
}

fn walk(dir: &std::path::Path) -> Vec<String> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        if e.path().is_dir() {
            out.extend(walk(&e.path()));
        } else {
            out.push(e.path().display().to_string());
        }
    }
    out
}

/// `patch` with a `file:` source: the lists and the `.deb` come from the
/// image, verified, and apt in the sandbox installs that very `.deb`.
/// Needs root, runc and the stale bookworm root filesystem.
#[test]
fn patch_installs_from_a_file_source_in_the_image() {
    let stale = stale_rootfs();
    let top = Rootfs { dir: tempdir() };
    top.write("etc/apt/sources.list", "deb file:/srv/repo ./\n");
    top.write_bytes("etc/apt/trusted.gpg.d/test.gpg", &std::fs::read(repo().dir.join("keys/test.gpg")).unwrap());
    for e in std::fs::read_dir(repo().dir.join("repo/moving.1")).unwrap() {
        let e = e.unwrap();
        top.write_bytes(&format!("srv/repo/{}", e.file_name().to_string_lossy()), &std::fs::read(e.path()).unwrap());
    }
    let status = std::fs::read_to_string(stale.join("var/lib/dpkg/status")).unwrap();
    top.write("var/lib/dpkg/status", &format!("{}\n\n{}", status.trim_end(), stanza("mover", "1.0")));
    let work = tempdir();
    let layout = work.join("oci");
    let image = pack(&[(&stale, "mmdebstrap"), (&top.dir, "local repository")], &layout, "local");
    let cache = work.join("cache");
    let report = work.join("report.json");
    let out = freshen(&["patch", &image, "--all", "-o", &format!("oci:{}:patched", layout.display()), "--report", report.to_str().unwrap()], &cache);
    assert_eq!(out.status.code(), Some(0), "{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    let r: serde_json::Value = serde_json::from_slice(&std::fs::read(&report).unwrap()).unwrap();
    let upgraded: Vec<(String, String)> = r["upgraded"].as_array().unwrap().iter().map(|u| (u["package"].as_str().unwrap().to_string(), u["to"].as_str().unwrap().to_string())).collect();
    assert_eq!(upgraded, vec![("mover".to_string(), "1.1".to_string())]);
    // The patched image has nothing pending from its file: source.
    let (code, v) = scan_json(&format!("oci:{}:patched", layout.display()), &[], &cache);
    assert_eq!(code, 0, "{v}");
    assert_eq!(v["http_requests"], 0);
}

/// Registries follow the same policy as mirrors: the system's trust store
/// (`SSL_CERT_FILE`) is enough, without `--ca-file`.
#[test]
fn registries_trust_the_system_store() {
    let registry = Registry::tls();
    let ca = registry.ca.clone().unwrap();
    let image = registry.image("absent/app:1");
    let out = freshen_env(&["scan", &image], &tempdir(), &[]);
    assert_error(&out, &["certificate"]);
    let out = freshen_env(&["scan", &image], &tempdir(), &[("SSL_CERT_FILE", ca.to_str().unwrap())]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(!stderr.contains("certificate") && stderr.contains("absent/app"), "{stderr}");
}
