//! A security archive that publishes fixes while a test runs
//! (`fixtures/live-repo.sh`: dpkg-deb, apt-ftparchive, gpg with the
//! hermetic repository's key), served on 127.0.0.1, and a base image whose
//! only apt source it is: the stale bookworm minbase (Debian's archive)
//! with `websrv` installed at the archive's first version.

use std::path::{Path, PathBuf};
use std::process::Command;

use super::{pack, repo, serve, stale_rootfs, stanza, tempdir, Rootfs};

/// The package whose fixes the archive publishes.
pub const PACKAGE: &str = "websrv";

pub struct LiveRepo {
    pub dir: PathBuf,
    pub url: String,
    pub requests: std::sync::Arc<std::sync::atomic::AtomicUsize>,
}

impl LiveRepo {
    /// An archive holding `websrv` `first`.
    pub fn start(first: &str) -> LiveRepo {
        let dir = tempdir().join("live");
        let live = LiveRepo { url: String::new(), requests: Default::default(), dir };
        live.publish(first, false);
        let (url, requests) = serve(live.dir.clone());
        LiveRepo { url, requests, ..live }
    }

    /// Publishes `websrv` `version` (`broken`: it fails its health check).
    pub fn publish(&self, version: &str, broken: bool) {
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/live-repo.sh");
        let mut cmd = Command::new("bash");
        cmd.arg(&script).arg(&self.dir).arg(repo().dir.join("gnupg")).arg(PACKAGE).arg(version);
        if broken {
            cmd.arg("broken");
        }
        let out = cmd.output().expect("run live-repo.sh");
        assert!(out.status.success(), "live-repo.sh: {}", String::from_utf8_lossy(&out.stderr));
    }

    /// The stale minbase with this archive as its only apt source and
    /// `websrv` `installed`, as an OCI layout in `work` (`oci:DIR:base`).
    pub fn base_image(&self, work: &Path, installed: &str) -> String {
        let app = Rootfs { dir: work.join("live-layer") };
        std::fs::create_dir_all(&app.dir).unwrap();
        app.write("etc/apt/sources.list", &format!("deb {} ./\n", self.url));
        app.write_bytes("etc/apt/trusted.gpg.d/test.gpg", &std::fs::read(repo().dir.join("keys/test.gpg")).unwrap());
        let base = stale_rootfs();
        let status = std::fs::read_to_string(base.join("var/lib/dpkg/status")).unwrap();
        app.write("var/lib/dpkg/status", &format!("{}\n\n{}", status.trim_end(), stanza(PACKAGE, installed).replace("Architecture: amd64", "Architecture: all")));
        app.write(&format!("usr/share/{PACKAGE}/version"), &format!("{PACKAGE} {installed}\n"));
        pack(&[(&base, "debootstrap"), (&app.dir, "install websrv")], &work.join("oci"), "base")
    }
}
