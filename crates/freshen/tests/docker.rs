//! The patched images in Debian's Docker Engine: `docker load` accepts
//! them, apt inside sees no pending security update, dpkg is consistent;
//! and an image built by that engine on the stale base (file capabilities,
//! hardlinks, a deleted file) keeps all of them through a patch.
//! Needs root, docker.io, runc, skopeo and Debian's archive.

mod common;

use common::*;

#[test]
fn docker_loads_and_runs_patched_images() {
    let stale = StaleImage::new("mmdebstrap --variant=minbase bookworm");
    let (work, image) = (stale.work.clone(), stale.image.clone());
    let cache = stale.cache.clone();
    let d = Dockerd::start();

    // The stale base into the engine (skopeo as an independent converter).
    let stale_tar = work.join("stale.tar");
    let st = std::process::Command::new("skopeo")
        .args(["copy", &image, &format!("docker-archive:{}:stale:latest", stale_tar.display())])
        .output()
        .unwrap();
    assert!(st.status.success(), "skopeo copy: {}", String::from_utf8_lossy(&st.stderr));
    d.ok(&["load", "-i", stale_tar.to_str().unwrap()]);

    // An app built FROM it by the engine: capabilities, hardlinks, a deletion.
    let ctx = work.join("ctx");
    std::fs::create_dir_all(&ctx).unwrap();
    std::fs::write(
        ctx.join("Dockerfile"),
        "FROM stale:latest\n\
         RUN apt-get update && apt-get install -y --no-install-recommends iputils-ping libcap2-bin && rm -rf /var/lib/apt/lists/*\n\
         RUN rm /etc/issue.net && mkdir /data && echo hello > /data/a && ln /data/a /data/b\n",
    )
    .unwrap();
    d.ok(&["build", "--network", "host", "-t", "app:1", ctx.to_str().unwrap()]);
    let app_tar = work.join("app.tar");
    d.ok(&["save", "-o", app_tar.to_str().unwrap(), "app:1"]);

    let patched_tar = work.join("app-patched.tar");
    let out = freshen(&["patch", &format!("docker-archive:{}", app_tar.display()), "-o", &format!("docker-archive:{}:app:patched", patched_tar.display())], &cache);
    assert_eq!(out.status.code(), Some(0), "{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    d.ok(&["load", "-i", patched_tar.to_str().unwrap()]);

    let run = |cmd: &str| d.ok(&["run", "--rm", "--network", "host", "app:patched", "sh", "-c", cmd]);
    assert!(run("getcap /bin/ping").contains("cap_net_raw"), "file capabilities lost");
    assert_eq!(run("stat -c %h /data/a /data/b").split_whitespace().collect::<Vec<_>>(), vec!["2", "2"], "hardlinks lost");
    assert_eq!(run("test -e /etc/issue.net && echo present || echo deleted").trim(), "deleted");
    assert_eq!(run("dpkg --audit").trim(), "", "dpkg --audit is not clean");
    let upgradable = run("apt-get update -qq >/dev/null && apt list --upgradable 2>/dev/null");
    assert!(!upgradable.lines().any(|l| l.contains("-security")), "security updates still pending:\n{upgradable}");
    // The base image patched straight to a docker-archive loads and runs too.
    let base_tar = work.join("stale-patched.tar");
    let out = freshen(&["patch", &image, "-o", &format!("docker-archive:{}:stale:patched", base_tar.display())], &cache);
    assert_eq!(out.status.code(), Some(0), "{}", String::from_utf8_lossy(&out.stderr));
    d.ok(&["load", "-i", base_tar.to_str().unwrap()]);
    assert_eq!(d.ok(&["run", "--rm", "stale:patched", "dpkg", "--audit"]).trim(), "");
}
