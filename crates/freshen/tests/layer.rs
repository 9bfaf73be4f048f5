//! What a patch layer carries, with packages from the hermetic repository's
//! `scripts-security` suite installed over the stale bookworm base (whose
//! sources are replaced, so only they are pending): `recreate`'s postinst
//! deletes and recreates a directory with one file identical to the one it
//! had, `keygen`'s creates per-instance secrets (SSH host key, machine IDs,
//! random seed, snakeoil key) when missing. The layer keeps every file apt's
//! result has, carries no secret (and the report says which were left out),
//! keeps the auto-installed marks in both scopes, and is reproducible
//! although the secrets are random. Needs root, runc, umoci and Debian's
//! archive (for the base).

mod common;

use common::*;
use serde_json::Value;

const SECRETS_MADE: &[&str] = &[
    "etc/machine-id",
    "etc/ssh/ssh_host_ed25519_key",
    "etc/ssh/ssh_host_ed25519_key.pub",
    "etc/ssl/certs/ssl-cert-snakeoil.pem",
    "etc/ssl/private/ssl-cert-snakeoil.key",
    "var/lib/dbus/machine-id",
    "var/lib/systemd/random-seed",
];

#[test]
fn recreated_dirs_secrets_and_auto_marks() {
    let stale = StaleImage::new("base");
    let r = repo();
    let base = stale_rootfs();
    let app = Rootfs { dir: tempdir() };
    let _cleanup = Cleanup(vec![app.dir.clone()]);
    app.write("etc/apt/sources.list", &format!("deb {} scripts-security main\n", r.url));
    app.write_bytes("etc/apt/trusted.gpg.d/test.gpg", &std::fs::read(r.dir.join("keys/test.gpg")).unwrap());
    let status = std::fs::read_to_string(base.join("var/lib/dpkg/status")).unwrap();
    app.write("var/lib/dpkg/status", &format!("{}\n\n{}{}", status.trim_end(), stanza("recreate", "1.0"), stanza("keygen", "1.0")));
    let ext = std::fs::read_to_string(base.join("var/lib/apt/extended_states")).unwrap_or_default();
    let ext = format!("{}\n\nPackage: recreate\nArchitecture: amd64\nAuto-Installed: 1\n", ext.trim_end());
    app.write("var/lib/apt/extended_states", &ext);
    app.write("usr/share/recreate/cache/kept.txt", "same\n").write("usr/share/recreate/cache/old.txt", "old\n");
    for f in SECRETS_MADE {
        assert!(!base.join(f).exists(), "the base image already has {f}");
    }
    let layout = stale.work.join("app");
    let image = pack(&[(&base, "base"), (&app.dir, "install recreate and keygen")], &layout, "app");
    let original = umoci_unpack(&layout, "app", &stale.work.join("u-app"));
    let auto_before = showauto(&original);
    assert!(auto_before.lines().any(|l| l == "recreate"), "{auto_before}");

    for (scope, flags) in [("security", &[][..]), ("all", &["--all"][..])] {
        let tag = format!("patched-{scope}");
        let report = stale.work.join(format!("{tag}.json"));
        let mut args = vec!["patch", &image, "--report", report.to_str().unwrap()];
        let dest = format!("oci:{}:{tag}", layout.display());
        args.extend(["-o", &dest]);
        args.extend(flags);
        let out = freshen(&args, &stale.work.join(format!("cache-{scope}")));
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert_eq!(out.status.code(), Some(0), "{stdout}{}", String::from_utf8_lossy(&out.stderr));
        assert!(stdout.contains("left out of the layer (per-instance secrets"), "{stdout}");
        let rep: Value = serde_json::from_slice(&std::fs::read(&report).unwrap()).unwrap();
        let mut upgraded: Vec<&str> = rep["upgraded"].as_array().unwrap().iter().map(|u| u["package"].as_str().unwrap()).collect();
        upgraded.sort();
        assert_eq!(upgraded, ["keygen", "recreate"]);
        let mut left_out: Vec<&str> = rep["layer"]["secrets_left_out"].as_array().unwrap().iter().map(|s| s.as_str().unwrap()).collect();
        left_out.sort();
        assert_eq!(left_out, SECRETS_MADE, "the report names the secrets left out");

        // The layer: the recreated directory as its differences, no opaque
        // marker, no secret, no extended_states (the marks did not change).
        let manifest = layout_json(&layout, &tagged_digest(&layout, &tag));
        let names = layer_names(&layout, manifest["layers"][2]["digest"].as_str().unwrap());
        assert!(!names.iter().any(|n| n.ends_with(".wh..wh..opq")), "opaque marker in {names:?}");
        assert!(names.contains(&"usr/share/recreate/cache/.wh.old.txt".to_string()), "{names:?}");
        assert!(names.contains(&"usr/share/recreate/cache/new.txt".to_string()), "{names:?}");
        assert!(!names.contains(&"usr/share/recreate/cache/kept.txt".to_string()), "an unchanged file is not rewritten: {names:?}");
        assert!(names.contains(&"etc/keygen.conf".to_string()), "{names:?}");
        assert!(!names.iter().any(|n| freshen_patch::secrets::is_secret(n)), "a secret in the layer: {names:?}");
        assert!(!names.contains(&"var/lib/apt/extended_states".to_string()), "{names:?}");

        // The patched image, as umoci unpacks it.
        let root = umoci_unpack(&layout, &tag, &stale.work.join(format!("u-{scope}")));
        assert_eq!(std::fs::read_to_string(root.join("usr/share/recreate/cache/kept.txt")).unwrap(), "same\n", "a file apt left in place is lost");
        assert_eq!(std::fs::read_to_string(root.join("usr/share/recreate/cache/new.txt")).unwrap(), "new\n");
        assert!(!root.join("usr/share/recreate/cache/old.txt").exists());
        for f in SECRETS_MADE {
            assert!(!root.join(f).exists(), "{f} made in the sandbox is in the image");
        }
        assert_eq!(showauto(&root), auto_before, "auto-installed marks changed ({scope})");
        assert_eq!(std::fs::read_to_string(root.join("var/lib/apt/extended_states")).unwrap(), ext);
        let status = std::fs::read_to_string(root.join("var/lib/dpkg/status")).unwrap();
        assert!(status.contains("Package: keygen\nStatus: install ok installed\n") && status.contains("Version: 1.1\n"), "{status}");
    }

    // Random secrets stay out, so a cold second run gives the same layer.
    let out = freshen(&["patch", &image, "-o", &format!("oci:{}:again", layout.display())], &stale.work.join("cache-again"));
    assert_eq!(out.status.code(), Some(0), "{}", String::from_utf8_lossy(&out.stderr));
    let layer = |tag: &str| layout_json(&layout, &tagged_digest(&layout, tag))["layers"][2]["digest"].clone();
    assert_eq!(layer("again"), layer("patched-security"), "two cold runs gave different layers");
}

/// `ucfconf`'s postinst hands ucf a `mktemp` file for a conffile the image
/// edited; ucf asks through debconf, which records the temporary name in
/// `config.dat`. Two cold runs must still give the same layer.
#[test]
fn ucf_temporary_names_do_not_change_the_layer() {
    let base = realistic_rootfs();
    let stale = StaleImage::of(&base, "server base");
    let r = repo();
    let app = Rootfs { dir: tempdir() };
    let _cleanup = Cleanup(vec![app.dir.clone()]);
    app.write("etc/apt/sources.list", &format!("deb {} scripts-security main\n", r.url));
    app.write_bytes("etc/apt/trusted.gpg.d/test.gpg", &std::fs::read(r.dir.join("keys/test.gpg")).unwrap());
    let status = std::fs::read_to_string(base.join("var/lib/dpkg/status")).unwrap();
    app.write("var/lib/dpkg/status", &format!("{}\n\n{}", status.trim_end(), stanza("ucfconf", "1.0")));
    // ucf's record of the pristine 1.0 file, and the image's edit of it.
    let md5 = std::process::Command::new("sh").arg("-c").arg("printf 'setting = 1\\n' | md5sum | cut -d' ' -f1").output().unwrap();
    let hashfile = std::fs::read_to_string(base.join("var/lib/ucf/hashfile")).unwrap();
    app.write("var/lib/ucf/hashfile", &format!("{hashfile}{}  /etc/ucfconf.conf\n", String::from_utf8_lossy(&md5.stdout).trim()));
    app.write("etc/ucfconf.conf", "setting = 1\n# local edit\n");
    let layout = stale.work.join("app");
    let image = pack(&[(&base, "server base"), (&app.dir, "install ucfconf")], &layout, "app");
    let mut layers = Vec::new();
    for run in ["one", "two"] {
        let out = freshen(&["patch", &image, "-o", &format!("oci:{}:{run}", layout.display())], &stale.work.join(format!("cache-{run}")));
        assert_eq!(out.status.code(), Some(0), "{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
        layers.push(layout_json(&layout, &tagged_digest(&layout, run))["layers"][2]["digest"].as_str().unwrap().to_string());
    }
    let names = layer_names(&layout, &layers[0]);
    // ucf kept the edited file and put the new one aside: it really asked.
    assert!(names.contains(&"etc/ucfconf.conf.ucf-dist".to_string()), "{names:?}");
    assert!(!names.contains(&"etc/ucfconf.conf".to_string()), "{names:?}");
    assert!(names.contains(&"var/cache/debconf/config.dat".to_string()), "{names:?}");
    assert_eq!(layers[0], layers[1], "two cold runs gave different layers");
}

/// An image of 125 layers (Docker allows 127) is patched: the overlay is
/// mounted layer by layer (`fsconfig` `lowerdir+`), not with one option
/// string too long for the kernel.
#[test]
fn an_image_of_125_layers_is_patched() {
    let stale = StaleImage::new("base");
    let r = repo();
    let base = stale_rootfs();
    let mut dirs = Vec::new();
    for i in 0..123 {
        let layer = Rootfs { dir: stale.work.join(format!("l{i}")) };
        std::fs::create_dir_all(&layer.dir).unwrap();
        layer.write(&format!("srv/layer/{i}"), &format!("{i}\n"));
        dirs.push(layer);
    }
    let app = Rootfs { dir: stale.work.join("app") };
    std::fs::create_dir_all(&app.dir).unwrap();
    app.write("etc/apt/sources.list", &format!("deb {}/moving.2 ./\n", r.url));
    app.write_bytes("etc/apt/trusted.gpg.d/test.gpg", &std::fs::read(r.dir.join("keys/test.gpg")).unwrap());
    let status = std::fs::read_to_string(base.join("var/lib/dpkg/status")).unwrap();
    app.write("var/lib/dpkg/status", &format!("{}\n\n{}", status.trim_end(), stanza("mover", "1.0")));
    let mut layers: Vec<(&std::path::Path, &str)> = vec![(&base, "base")];
    layers.extend(dirs.iter().map(|d| (d.dir.as_path(), "a layer")));
    layers.push((&app.dir, "install mover"));
    assert_eq!(layers.len(), 125);
    let layout = stale.work.join("oci125");
    let image = pack(&layers, &layout, "app");
    let out = freshen(&["patch", &image, "--all", "-o", &format!("oci:{}:patched", layout.display())], &stale.cache);
    assert_eq!(out.status.code(), Some(0), "{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    let manifest = layout_json(&layout, &tagged_digest(&layout, "patched"));
    assert_eq!(manifest["layers"].as_array().unwrap().len(), 126);
    let root = umoci_unpack(&layout, "patched", &stale.work.join("u"));
    assert_eq!(std::fs::read_to_string(root.join("usr/share/mover/version")).unwrap(), "mover 1.2\n");
    assert_eq!(std::fs::read_to_string(root.join("srv/layer/0")).unwrap(), "0\n");
}
