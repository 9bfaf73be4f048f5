//! Writing an image built from a source's blobs plus new ones to an `oci:`
//! layout or a `docker-archive:` file. Nothing appears under the
//! destination's name until it is complete.

use std::fs::{self, File};
use std::io::{self, Write};
use std::path::{Path, PathBuf};

use crate::digest::Digest;
use crate::error::{io_err, Error, Result};
use crate::reference::ImageRef;
use crate::source::{ImageSource, Layer};
use crate::transport::Transport;

/// A new image: some layers of `source`, then new blobs already on disk.
pub struct NewImage<'a> {
    pub source: &'a dyn ImageSource,
    /// Layers copied from the source, bottom first.
    pub source_layers: &'a [Layer],
    /// New blobs: (digest, file holding it).
    pub new_blobs: Vec<(Digest, PathBuf)>,
    pub config: Vec<u8>,
    pub manifest: Vec<u8>,
    pub manifest_media_type: String,
}

fn copy_blob(img: &NewImage, blobs: &Path, layer: &Layer) -> Result<()> {
    let dest = blobs.join(layer.digest.hex());
    if dest.is_file() {
        return Ok(());
    }
    let tmp = blobs.join(format!(".tmp-{}-{}", std::process::id(), layer.digest.hex()));
    let mut r = img.source.open_layer(layer)?;
    let res = File::create(&tmp).and_then(|mut f| io::copy(&mut r, &mut f).and_then(|_| f.sync_all())).and_then(|_| fs::rename(&tmp, &dest));
    if let Err(e) = res {
        let _ = fs::remove_file(&tmp);
        return Err(Error::Layer { index: layer.index, digest: layer.digest.to_string(), reason: e.to_string() });
    }
    Ok(())
}

fn put(blobs: &Path, data: &[u8]) -> Result<Digest> {
    let d = Digest::of(data);
    crate::write::write_atomic(&blobs.join(d.hex()), data)?;
    Ok(d)
}

/// Writes `img` to `dest` and returns the manifest digest.
pub fn write_image(dest: &ImageRef, img: &NewImage, transport: &Transport) -> Result<Digest> {
    match dest {
        ImageRef::Docker(r) => crate::registry::push(r, img, transport),
        ImageRef::DockerDaemon { name } => crate::daemon::load(name, img, transport),
        ImageRef::Oci { dir, tag } => write_layout(dir, tag.as_deref(), img),
        ImageRef::DockerArchive { path, reference } => write_archive(path, reference.as_deref(), img),
        ImageRef::Dir { .. } => Err(Error::Invalid(format!("{dest}: cannot write an image to a dir: reference"))),
    }
}

fn write_layout(dir: &Path, tag: Option<&str>, img: &NewImage) -> Result<Digest> {
    let blobs = dir.join("blobs/sha256");
    fs::create_dir_all(&blobs).map_err(io_err(&blobs))?;
    for l in img.source_layers {
        copy_blob(img, &blobs, l)?;
    }
    for (d, path) in &img.new_blobs {
        let dest = blobs.join(d.hex());
        if !dest.is_file() {
            let tmp = blobs.join(format!(".tmp-{}-{}", std::process::id(), d.hex()));
            fs::copy(path, &tmp).and_then(|_| fs::rename(&tmp, &dest)).map_err(io_err(&dest))?;
        }
    }
    put(&blobs, &img.config)?;
    let manifest_digest = put(&blobs, &img.manifest)?;
    let index_path = dir.join("index.json");
    let mut index: serde_json::Value = match fs::read(&index_path) {
        Ok(b) => serde_json::from_slice(&b).map_err(|e| Error::Invalid(format!("{}: {e}", index_path.display())))?,
        Err(_) => serde_json::json!({"schemaVersion": 2, "mediaType": "application/vnd.oci.image.index.v1+json", "manifests": []}),
    };
    let entry = index_entry(img, &manifest_digest, tag);
    let manifests = index["manifests"].as_array_mut().ok_or_else(|| Error::Invalid(format!("{}: no manifests array", index_path.display())))?;
    manifests.retain(|m| m["annotations"]["org.opencontainers.image.ref.name"].as_str() != tag);
    manifests.push(entry);
    crate::write::write_atomic(&dir.join("oci-layout"), br#"{"imageLayoutVersion":"1.0.0"}"#)?;
    crate::write::write_atomic(&index_path, &serde_json::to_vec(&index).map_err(|e| Error::Invalid(e.to_string()))?)?;
    Ok(manifest_digest)
}

fn append<W: Write>(b: &mut tar::Builder<W>, name: &str, data: &mut dyn io::Read, size: u64) -> io::Result<()> {
    let mut h = tar::Header::new_gnu();
    h.set_size(size);
    h.set_mode(0o644);
    h.set_mtime(0);
    h.set_entry_type(if name.ends_with('/') { tar::EntryType::Directory } else { tar::EntryType::Regular });
    b.append_data(&mut h, name, data)
}

/// An OCI layout's index entry for `img`, tagged `tag`.
fn index_entry(img: &NewImage, manifest_digest: &Digest, tag: Option<&str>) -> serde_json::Value {
    let mut entry = serde_json::json!({
        "mediaType": img.manifest_media_type,
        "digest": manifest_digest.to_string(),
        "size": img.manifest.len(),
    });
    if let Some(t) = tag {
        entry["annotations"] = serde_json::json!({"org.opencontainers.image.ref.name": t});
    }
    entry
}

/// A docker-archive holding both forms: `manifest.json` (read by every
/// `docker load`) and an OCI layout (`index.json`, `blobs/`). Written in
/// one pass, each blob streamed from its source into the tar, under a
/// temporary name renamed into place.
pub(crate) fn write_archive(path: &Path, reference: Option<&str>, img: &NewImage) -> Result<Digest> {
    let name = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    let parent = path.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(Path::new("."));
    let tmp = parent.join(format!(".{name}.tmp-{}", std::process::id()));
    let config_digest = Digest::of(&img.config);
    let manifest_digest = Digest::of(&img.manifest);
    let json = |v: &serde_json::Value| serde_json::to_vec(v).map_err(|e| Error::Invalid(e.to_string()));
    let index = json(&serde_json::json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.index.v1+json",
        "manifests": [index_entry(img, &manifest_digest, reference)],
    }))?;
    let mut layers: Vec<String> = img.source_layers.iter().map(|l| format!("blobs/sha256/{}", l.digest.hex())).collect();
    layers.extend(img.new_blobs.iter().map(|(d, _)| format!("blobs/sha256/{}", d.hex())));
    let tags: Vec<String> = reference.map(|r| vec![if r.contains(':') { r.to_string() } else { format!("{r}:latest") }]).unwrap_or_default();
    let legacy = json(&serde_json::json!([{"Config": format!("blobs/sha256/{}", config_digest.hex()), "RepoTags": tags, "Layers": layers}]))?;

    let build = || -> Result<()> {
        let file = File::create(&tmp).map_err(io_err(&tmp))?;
        let mut b = tar::Builder::new(io::BufWriter::with_capacity(1 << 20, file));
        let io = |e: io::Error| io_err(path)(e);
        append(&mut b, "blobs/", &mut io::empty(), 0).map_err(io)?;
        append(&mut b, "blobs/sha256/", &mut io::empty(), 0).map_err(io)?;
        let mut seen = std::collections::HashSet::new();
        for l in img.source_layers {
            if !seen.insert(l.digest.clone()) {
                continue;
            }
            let size = l.size.ok_or_else(|| Error::Invalid(format!("layer {} ({}) has no recorded size", l.index, l.digest)))?;
            let mut r = img.source.open_layer(l)?;
            append(&mut b, &format!("blobs/sha256/{}", l.digest.hex()), &mut r, size)
                .map_err(|e| Error::Layer { index: l.index, digest: l.digest.to_string(), reason: e.to_string() })?;
        }
        for (d, p) in &img.new_blobs {
            if seen.insert(d.clone()) {
                let mut f = File::open(p).map_err(io_err(p))?;
                let size = f.metadata().map_err(io_err(p))?.len();
                append(&mut b, &format!("blobs/sha256/{}", d.hex()), &mut f, size).map_err(io)?;
            }
        }
        for (d, data) in [(&config_digest, &img.config), (&manifest_digest, &img.manifest)] {
            if seen.insert(d.clone()) {
                append(&mut b, &format!("blobs/sha256/{}", d.hex()), &mut &data[..], data.len() as u64).map_err(io)?;
            }
        }
        let layout = br#"{"imageLayoutVersion":"1.0.0"}"#;
        for (entry, data) in [("index.json", &index[..]), ("oci-layout", &layout[..]), ("manifest.json", &legacy[..])] {
            append(&mut b, entry, &mut &data[..], data.len() as u64).map_err(io)?;
        }
        let f = b.into_inner().map_err(io)?.into_inner().map_err(|e| io(e.into_error()))?;
        f.sync_all().map_err(io)?;
        fs::rename(&tmp, path).map_err(io)
    };
    if let Err(e) = build() {
        let _ = fs::remove_file(&tmp);
        return Err(e);
    }
    Ok(manifest_digest)
}
