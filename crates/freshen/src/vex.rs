//! The OpenVEX v0.2.0 document `patch --vex` writes: one `fixed` statement
//! per CVE the patch fixes, its product the written image as a `pkg:oci`
//! purl, its subcomponents the upgraded packages as `pkg:deb` purls, in the
//! form scanners (Trivy, Grype) build for what they find in an image.

use chrono::{DateTime, Utc};
use freshen_apt::OsInfo;
use freshen_image::{Digest, ImageRef, RegistryRef};
use freshen_patch::Upgraded;
use serde_json::{json, Value};

/// A purl component percent-encoded as the purl specification says:
/// everything but ASCII letters, digits, `.-_~`, the colon (never encoded)
/// and `keep`.
fn encode(s: &str, keep: &[u8]) -> String {
    let mut keep_all = vec![b':'];
    keep_all.extend_from_slice(keep);
    freshen_image::percent_encode(s, &keep_all)
}

/// `?k=v&...`: keys sorted, empty values left out, values encoded (`/` kept,
/// as in `repository_url=docker.io/library/debian`).
fn qualifiers(mut q: Vec<(&str, String)>) -> String {
    q.retain(|(_, v)| !v.is_empty());
    q.sort();
    let parts: Vec<String> = q.iter().map(|(k, v)| format!("{k}={}", encode(v, b"/"))).collect();
    if parts.is_empty() {
        String::new()
    } else {
        format!("?{}", parts.join("&"))
    }
}

/// A Debian or Ubuntu binary package:
/// `pkg:deb/debian/libssl3@3.0.15-1~deb12u1?arch=amd64&distro=debian-12`.
/// The namespace is the os-release `ID`, `distro` is `ID-VERSION_ID`; the
/// version keeps its epoch (`1:2.4.47-2%2Bb1`).
pub fn deb_purl(os: &OsInfo, name: &str, version: &str, arch: &str) -> String {
    let id = os.id.as_deref().unwrap_or("debian").to_lowercase();
    let distro = os.version_id.as_deref().map(|v| format!("{id}-{v}")).unwrap_or_default();
    format!("pkg:deb/{}/{}@{}{}", encode(&id, b""), encode(&name.to_lowercase(), b""), encode(version, b""), qualifiers(vec![("arch", arch.to_string()), ("distro", distro)]))
}

/// The written image: `pkg:oci/NAME@DIGEST?repository_url=REGISTRY/REPO`
/// (NAME the last component of the repository) for a registry, a Docker
/// Engine name or a docker-archive with a name; a layout or an unnamed
/// archive has no repository, so NAME is its directory or file name and a
/// layout's tag goes in `tag=`.
pub fn oci_purl(output: &ImageRef, digest: &Digest) -> String {
    let registry = match output {
        ImageRef::Docker(r) => Some(r.clone()),
        ImageRef::DockerDaemon { name } | ImageRef::DockerArchive { reference: Some(name), .. } => RegistryRef::parse(name).ok(),
        _ => None,
    };
    let file_name = |p: &std::path::Path| p.file_name().map(|n| n.to_string_lossy().into_owned());
    let (name, q) = match (registry, output) {
        (Some(r), _) => (r.repository.rsplit('/').next().map(str::to_string), vec![("repository_url", format!("{}/{}", r.registry, r.repository))]),
        (None, ImageRef::Oci { dir, tag }) => (file_name(dir), vec![("tag", tag.clone().unwrap_or_default())]),
        (None, ImageRef::DockerArchive { path, .. }) => (file_name(path), vec![]),
        // An Engine image id (`sha256:...`): nothing names it.
        (None, _) => (None, vec![]),
    };
    let name = name.unwrap_or_else(|| "image".into());
    format!("pkg:oci/{}@{}{}", encode(&name.to_lowercase(), b""), encode(&digest.to_string(), b""), qualifiers(q))
}

/// The CVEs the upgrades fix, sorted, each once.
pub fn fixed_cves(upgraded: &[Upgraded]) -> Vec<String> {
    let mut cves: Vec<String> = upgraded.iter().flat_map(|u| u.cves.clone()).collect();
    cves.sort();
    cves.dedup();
    cves
}

/// The document, or `None` when the upgrades fix no known CVE (OpenVEX
/// needs at least one statement).
pub fn document(output: &ImageRef, digest: &Digest, os: &OsInfo, upgraded: &[Upgraded], now: DateTime<Utc>) -> Option<Value> {
    let product = oci_purl(output, digest);
    let statements: Vec<Value> = fixed_cves(upgraded)
        .iter()
        .map(|c| {
            let subs: Vec<Value> = upgraded.iter().filter(|u| u.cves.contains(c)).map(|u| json!({"@id": deb_purl(os, &u.package, &u.to, &u.arch)})).collect();
            json!({
                "vulnerability": {"name": c},
                "products": [{"@id": product, "subcomponents": subs}],
                "status": "fixed",
            })
        })
        .collect();
    if statements.is_empty() {
        return None;
    }
    Some(json!({
        "@context": "https://openvex.dev/ns/v0.2.0",
        "@id": format!("urn:freshen:vex:{}", digest.hex()),
        "author": "freshen",
        "timestamp": now.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
        "version": 1,
        "tooling": format!("freshen {}", env!("CARGO_PKG_VERSION")),
        "statements": statements,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn os(id: &str, version: &str) -> OsInfo {
        OsInfo { id: Some(id.into()), version_id: Some(version.into()), ..OsInfo::default() }
    }

    #[test]
    fn deb_purls_as_scanners_build_them() {
        let bookworm = os("debian", "12");
        assert_eq!(deb_purl(&bookworm, "libssl3", "3.0.15-1~deb12u1", "amd64"), "pkg:deb/debian/libssl3@3.0.15-1~deb12u1?arch=amd64&distro=debian-12");
        // The spec's own example: the epoch's colon stays, `+` is encoded.
        assert_eq!(deb_purl(&bookworm, "attr", "1:2.4.47-2+b1", "i386"), "pkg:deb/debian/attr@1:2.4.47-2%2Bb1?arch=i386&distro=debian-12");
        assert_eq!(deb_purl(&os("ubuntu", "24.04"), "libc6", "2.39-0ubuntu8.3", "amd64"), "pkg:deb/ubuntu/libc6@2.39-0ubuntu8.3?arch=amd64&distro=ubuntu-24.04");
        assert_eq!(deb_purl(&OsInfo::default(), "tzdata", "2024a-0+deb12u1", "all"), "pkg:deb/debian/tzdata@2024a-0%2Bdeb12u1?arch=all");
    }

    #[test]
    fn oci_purls_name_the_written_image() {
        let d = Digest::of(b"manifest");
        let purl = |r: &str| oci_purl(&ImageRef::parse(r).unwrap(), &d);
        assert_eq!(purl("docker://127.0.0.1:5000/team/app:1.0"), format!("pkg:oci/app@{d}?repository_url=127.0.0.1:5000/team/app"));
        assert_eq!(purl("docker://debian:12"), format!("pkg:oci/debian@{d}?repository_url=docker.io/library/debian"));
        assert_eq!(purl("docker-daemon:myapp:patched"), format!("pkg:oci/myapp@{d}?repository_url=docker.io/library/myapp"));
        assert_eq!(purl("docker-archive:/tmp/x.tar:registry.example/a/b:2"), format!("pkg:oci/b@{d}?repository_url=registry.example/a/b"));
        assert_eq!(purl("docker-archive:/tmp/Saved.tar"), format!("pkg:oci/saved.tar@{d}"));
        assert_eq!(purl("oci:/tmp/My Layout:patched"), format!("pkg:oci/my%20layout@{d}?tag=patched"));
        assert_eq!(purl("oci:/tmp/layout"), format!("pkg:oci/layout@{d}"));
    }

    #[test]
    fn one_fixed_statement_per_cve_and_none_without_cves() {
        let up = |package: &str, cves: &[&str]| Upgraded {
            package: package.into(),
            arch: "amd64".into(),
            from: "1.0-1".into(),
            to: "1.0-1+deb12u1".into(),
            source_package: "src".into(),
            security: true,
            cves: cves.iter().map(|c| c.to_string()).collect(),
        };
        let out = ImageRef::parse("docker://registry.example/app:1-patched").unwrap();
        let d = Digest::of(b"m");
        let bookworm = os("debian", "12");
        let upgraded = [up("libfoo1", &["CVE-2026-2", "CVE-2026-1"]), up("foo-bin", &["CVE-2026-1"]), up("unrelated", &[])];
        let doc = document(&out, &d, &bookworm, &upgraded, Utc::now()).unwrap();
        let st = doc["statements"].as_array().unwrap();
        assert_eq!(st.iter().map(|s| s["vulnerability"]["name"].as_str().unwrap()).collect::<Vec<_>>(), ["CVE-2026-1", "CVE-2026-2"]);
        assert_eq!(st[0]["products"][0]["@id"], format!("pkg:oci/app@{d}?repository_url=registry.example/app"));
        let subs: Vec<&str> = st[0]["products"][0]["subcomponents"].as_array().unwrap().iter().map(|c| c["@id"].as_str().unwrap()).collect();
        assert_eq!(subs, ["pkg:deb/debian/libfoo1@1.0-1%2Bdeb12u1?arch=amd64&distro=debian-12", "pkg:deb/debian/foo-bin@1.0-1%2Bdeb12u1?arch=amd64&distro=debian-12"]);
        assert!(st.iter().all(|s| s["status"] == "fixed"));
        assert!(document(&out, &d, &bookworm, &[up("unrelated", &[])], Utc::now()).is_none());
    }
}
