#![no_main]
//! The layer walker `scan` uses: a layer blob (plain, gzip or zstd; the
//! tar guard bounds GNU long names and PAX headers, the inflate limit the
//! decompressed size, the read limits the files kept in memory) streamed
//! through `read_image_files` with the paths `scan` asks for.
use std::io::{Cursor, Read};

use freshen_image::{read_image_files, Digest, Image, ImageSource, Interest, Layer};
use libfuzzer_sys::fuzz_target;

struct OneLayer {
    image: Image,
    blob: Vec<u8>,
}

impl ImageSource for OneLayer {
    fn image(&self) -> &Image {
        &self.image
    }

    fn open_layer(&self, _: &Layer) -> freshen_image::Result<Box<dyn Read + Send + '_>> {
        Ok(Box::new(Cursor::new(&self.blob[..])))
    }
}

const CONFIG: &[u8] = br#"{"architecture":"amd64","os":"linux","rootfs":{"type":"layers","diff_ids":[]}}"#;

fuzz_target!(|data: &[u8]| {
    let layer = Layer {
        index: 0,
        digest: Digest::of(data),
        diff_id: None,
        media_type: "application/vnd.oci.image.layer.v1.tar".into(),
        size: Some(data.len() as u64),
        created_by: None,
    };
    let image = Image {
        reference: "fuzz".into(),
        manifest_digest: None,
        config_digest: Digest::of(CONFIG),
        config: serde_json::from_slice(CONFIG).unwrap(),
        config_raw: CONFIG.to_vec(),
        manifest_raw: None,
        layers: vec![layer],
        index: None,
    };
    let src = OneLayer { image, blob: data.to_vec() };
    let interest = Interest {
        paths: &["etc/apt/", "etc/os-release", "usr/lib/os-release", "var/lib/dpkg/status", "var/lib/dpkg/status.d/"],
        keep_versions: &["var/lib/dpkg/status"],
    };
    if let Ok(files) = read_image_files(&src, &interest) {
        for dir in ["etc/apt", "var/lib/dpkg/status.d"] {
            for name in files.list(dir) {
                let _ = files.read(&format!("{dir}/{name}"));
            }
        }
        let _ = files.read("etc/os-release");
        let _ = files.lookup("var/lib/dpkg/status");
        assert!(files.versions.iter().all(|v| v.path == "var/lib/dpkg/status"));
    }
});
