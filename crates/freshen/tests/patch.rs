//! `freshen patch` end to end on the real stale bookworm image: the result
//! is checked with tools freshen did not write (umoci, skopeo) and with
//! freshen's own scan; re-patching replaces the patch layer and, with the
//! archive unchanged, reproduces the same digest. The VEX document is
//! checked against the OpenVEX schema and packageurl-python. Needs root,
//! runc, umoci, skopeo, Debian's archive and python3 with packageurl-python
//! and jsonschema.

mod common;

use std::process::Command;

use common::*;
use serde_json::Value;

fn layers_of(layout: &std::path::Path, tag: &str) -> Vec<Value> {
    let out = Command::new("skopeo").args(["inspect", "--raw", &format!("oci:{}:{tag}", layout.display())]).output().expect("skopeo");
    assert!(out.status.success(), "skopeo inspect: {}", String::from_utf8_lossy(&out.stderr));
    let m: Value = serde_json::from_slice(&out.stdout).unwrap();
    m["layers"].as_array().unwrap().clone()
}

/// The VEX document, checked with tools freshen did not write: the OpenVEX
/// v0.2.0 schema (python `jsonschema`) and packageurl-python, which must
/// parse each purl and serialize it back to the same (canonical) string.
/// Its statements say exactly what the report says was fixed.
fn check_vex(vex: &std::path::Path, report: &Value, layout: &std::path::Path) {
    let schema = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/openvex-v0.2.0.schema.json");
    let script = r#"
import json, sys, jsonschema
from packageurl import PackageURL
doc, schema = json.load(open(sys.argv[1])), json.load(open(sys.argv[2]))
jsonschema.Draft202012Validator.check_schema(schema)
jsonschema.Draft202012Validator(schema).validate(doc)
for s in doc["statements"]:
    for p in s["products"]:
        for purl in [p["@id"]] + [c["@id"] for c in p["subcomponents"]]:
            again = PackageURL.from_string(purl).to_string()
            assert again == purl, f"{purl} is {again} in canonical form"
"#;
    let out = Command::new("python3").arg("-c").arg(script).arg(vex).arg(&schema).output().expect("python3");
    assert!(out.status.success(), "VEX check failed (pip install packageurl-python jsonschema): {}", String::from_utf8_lossy(&out.stderr));

    let v: Value = serde_json::from_slice(&std::fs::read(vex).unwrap()).unwrap();
    let statements = v["statements"].as_array().unwrap();
    let cves: Vec<&str> = statements.iter().map(|s| s["vulnerability"]["name"].as_str().unwrap()).collect();
    assert_eq!(serde_json::json!(cves), report["cves"]);
    let digest = manifest_digest(layout, "patched");
    for s in statements {
        assert_eq!(s["status"], "fixed");
        let product = &s["products"][0];
        // A layout has no repository: its directory names it, the tag is a qualifier.
        assert_eq!(product["@id"], format!("pkg:oci/oci@{digest}?tag=patched"));
        let cve = s["vulnerability"]["name"].as_str().unwrap();
        let mut subs: Vec<String> = product["subcomponents"].as_array().unwrap().iter().map(|c| c["@id"].as_str().unwrap().to_string()).collect();
        let mut expected: Vec<String> = report["upgraded"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|u| u["cves"].as_array().unwrap().iter().any(|c| c == cve))
            .map(|u| format!("pkg:deb/debian/{}@{}?arch={}&distro=debian-12", u["package"].as_str().unwrap(), u["to"].as_str().unwrap().replace('+', "%2B"), u["arch"].as_str().unwrap()))
            .collect();
        subs.sort();
        expected.sort();
        assert_eq!(subs, expected, "{cve}");
    }
}

/// The manifest digest of `tag` in an OCI layout.
fn manifest_digest(layout: &std::path::Path, tag: &str) -> String {
    let index: Value = serde_json::from_slice(&std::fs::read(layout.join("index.json")).unwrap()).unwrap();
    index["manifests"].as_array().unwrap().iter().find(|m| m["annotations"]["org.opencontainers.image.ref.name"] == tag).unwrap()["digest"].as_str().unwrap().to_string()
}

#[test]
fn patch_stale_image_then_repatch() {
    let stale = StaleImage::new("mmdebstrap --variant=minbase bookworm");
    let (work, layout, image) = (stale.work.clone(), stale.layout.clone(), stale.image.clone());
    let cache = stale.cache.clone();
    let (_, before) = scan_json(&image, &["--only", "security"], &cache);
    let pending: Vec<String> = updates(&before).into_iter().map(|u| u.0).collect();
    assert!(!pending.is_empty());

    let report = work.join("report.json");
    let vex = work.join("vex.json");
    let out = freshen(
        &["patch", &image, "-o", &format!("oci:{}:patched", layout.display()), "--report", report.to_str().unwrap(), "--vex", vex.to_str().unwrap(), "--test", "apt-get --version >/dev/null && ls /"],
        &cache,
    );
    assert_eq!(out.status.code(), Some(0), "patch failed: {}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    eprintln!("{}", String::from_utf8_lossy(&out.stdout));
    let r: Value = serde_json::from_slice(&std::fs::read(&report).unwrap()).unwrap();
    let mut upgraded: Vec<String> = r["upgraded"].as_array().unwrap().iter().map(|u| u["package"].as_str().unwrap().to_string()).collect();
    upgraded.sort();
    assert_eq!(upgraded, pending, "the patch upgraded exactly the pending security updates");
    let compressed = r["layer"]["compressed_bytes"].as_u64().unwrap();
    let uncompressed = r["layer"]["uncompressed_bytes"].as_u64().unwrap();
    assert!(uncompressed < 80_000_000, "layer too large: {uncompressed}");
    assert!(compressed < uncompressed);
    check_vex(&vex, &r, &layout);
    // Progress: planning (which downloads debs to read their changelogs)
    // and the download step are reported as what they did.
    let progress = String::from_utf8_lossy(&out.stderr);
    assert!(progress.lines().any(|l| l.starts_with("plan: ")), "{progress}");
    let download = progress.lines().find(|l| l.starts_with("download ")).unwrap_or_else(|| panic!("no download step: {progress}"));
    assert!(download.ends_with(": all in the cache") || download.contains(" MB in "), "{download}");

    // Independent checkers accept it.
    let layers = layers_of(&layout, "patched");
    assert_eq!(layers.len(), 2);
    let bundle = work.join("bundle");
    let st = Command::new("umoci").args(["unpack", "--image", &format!("{}:patched", layout.display())]).arg(&bundle).output().expect("umoci");
    assert!(st.status.success(), "umoci unpack: {}", String::from_utf8_lossy(&st.stderr));
    let status = std::fs::read_to_string(bundle.join("rootfs/var/lib/dpkg/status")).unwrap();
    for u in r["upgraded"].as_array().unwrap() {
        let stanza = status.split("\n\n").find(|s| s.starts_with(&format!("Package: {}\n", u["package"].as_str().unwrap()))).unwrap();
        assert!(stanza.contains(&format!("\nVersion: {}\n", u["to"].as_str().unwrap())), "{stanza}");
    }
    // apt's lists, caches and logs stay out of the patch layer.
    let names = layer_names(&layout, layers[1]["digest"].as_str().unwrap());
    for noise in ["var/lib/apt/lists/", "var/cache/apt/", "var/log/apt/", "var/log/dpkg.log", "tmp/", "usr/sbin/policy-rc.d"] {
        assert!(!names.iter().any(|n| n.starts_with(noise)), "{noise} leaked into the patch layer");
    }
    assert!(names.iter().any(|n| n == "var/lib/dpkg/status"), "the dpkg database is in the patch layer");
    // `install --only-upgrade` marks what it names manual: freshen keeps the
    // marks, so extended_states is as it was and not in the layer.
    assert!(!names.iter().any(|n| n == "var/lib/apt/extended_states"), "extended_states in the patch layer");
    assert_eq!(showauto(&bundle.join("rootfs")), showauto(&stale_rootfs()), "apt-mark showauto changed");
    // freshen's own scan of the result: nothing pending in scope.
    let (code, after) = scan_json(&format!("oci:{}:patched", layout.display()), &["--only", "security"], &cache);
    assert_eq!(code, 0, "{after}");

    // Re-patch: starts again from the original layers; same archive, same
    // digest. A fresh cache makes apt really run again (no recorded patch).
    let report2 = work.join("report2.json");
    let out2 = freshen(&["patch", &format!("oci:{}:patched", layout.display()), "-o", &format!("oci:{}:repatched", layout.display()), "--report", report2.to_str().unwrap()], &work.join("cache2"));
    assert_eq!(out2.status.code(), Some(0), "{}", String::from_utf8_lossy(&out2.stderr));
    assert_eq!(layers_of(&layout, "repatched").len(), 2, "one patch layer, not a stack");
    let digest = |tag: &str| manifest_digest(&layout, tag);
    let r2: Value = serde_json::from_slice(&std::fs::read(&report2).unwrap()).unwrap();
    let plan = |r: &Value| -> Vec<(String, String)> { r["upgraded"].as_array().unwrap().iter().map(|u| (u["package"].to_string(), u["to"].to_string())).collect() };
    if plan(&r) == plan(&r2) {
        assert_eq!(digest("patched"), digest("repatched"), "re-patching with an unchanged archive must reproduce the image");
    } else {
        // Debian published between the two runs: the new plan must still
        // cover everything the first one upgraded.
        eprintln!("the archive moved between the runs: {:?} then {:?}", plan(&r), plan(&r2));
        assert!(plan(&r).iter().all(|(p, _)| plan(&r2).iter().any(|(q, _)| q == p)), "re-patch dropped an update");
        assert_ne!(digest("patched"), digest("repatched"));
    }
    // An up-to-date image (the patched root, packed as a new single-layer
    // image): nothing pending, exit 4, nothing written.
    let fresh_layout = work.join("fresh");
    let fresh = pack(&[(&bundle.join("rootfs"), "up to date")], &fresh_layout, "fresh");
    let out3 = freshen(&["patch", &fresh, "-o", &format!("oci:{}:none", fresh_layout.display())], &cache);
    assert_eq!(out3.status.code(), Some(4), "{}{}", String::from_utf8_lossy(&out3.stdout), String::from_utf8_lossy(&out3.stderr));
    assert!(String::from_utf8_lossy(&out3.stdout).contains("nothing written"));
    let index = std::fs::read_to_string(fresh_layout.join("index.json")).unwrap();
    assert!(!index.contains("\"none\""), "nothing may be written under the output name");
}
