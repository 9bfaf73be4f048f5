#![no_main]
//! The index, manifest and config parsers, reached as `scan` reaches them:
//! an OCI layout opened by the transport dispatcher. The input is three
//! documents separated by `\n--\n` (index.json, manifest, config); in the
//! index `@M` stands for the manifest's digest and `@m` for its size, in
//! the manifest `@C` and `@c` for the config's, so that the fuzzer's
//! documents pass the digest checks and reach the parsers.
use freshen_image::{open, Digest, ImageRef, Platform, Transport};
use libfuzzer_sys::fuzz_target;

fn split(data: &[u8]) -> Option<(&[u8], &[u8], &[u8])> {
    let sep = b"\n--\n";
    let find = |d: &[u8]| d.windows(sep.len()).position(|w| w == sep);
    let i = find(data)?;
    let (index, rest) = (&data[..i], &data[i + sep.len()..]);
    let j = find(rest)?;
    Some((index, &rest[..j], &rest[j + sep.len()..]))
}

fn replace(doc: &[u8], pat: &[u8], with: &str) -> Vec<u8> {
    let mut out = Vec::with_capacity(doc.len());
    let mut i = 0;
    while i < doc.len() {
        if doc[i..].starts_with(pat) {
            out.extend_from_slice(with.as_bytes());
            i += pat.len();
        } else {
            out.push(doc[i]);
            i += 1;
        }
    }
    out
}

fuzz_target!(|data: &[u8]| {
    let Some((index, manifest, config)) = split(data) else { return };
    let c = Digest::of(config);
    let manifest = replace(&replace(manifest, b"@C", &c.to_string()), b"@c", &config.len().to_string());
    let m = Digest::of(&manifest);
    let index = replace(&replace(index, b"@M", &m.to_string()), b"@m", &manifest.len().to_string());
    let dir = std::env::temp_dir().join(format!("freshen-fuzz-json-{}", std::process::id()));
    let blobs = dir.join("blobs/sha256");
    std::fs::create_dir_all(&blobs).unwrap();
    std::fs::write(dir.join("oci-layout"), br#"{"imageLayoutVersion":"1.0.0"}"#).unwrap();
    std::fs::write(dir.join("index.json"), &index).unwrap();
    std::fs::write(blobs.join(m.hex()), &manifest).unwrap();
    std::fs::write(blobs.join(c.hex()), config).unwrap();
    for tag in [":latest", ""] {
        let Ok(r) = ImageRef::parse(&format!("oci:{}{tag}", dir.display())) else { continue };
        if let Ok(src) = open(&r, &Platform::host(), &Transport::default()) {
            let image = src.image();
            let _ = image.manifest();
            assert!(image.layers.iter().enumerate().all(|(i, l)| l.index == i));
        }
    }
    let _ = std::fs::remove_file(blobs.join(m.hex()));
    let _ = std::fs::remove_file(blobs.join(c.hex()));
});
