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
    let mut entry = serde_json::json!({
        "mediaType": img.manifest_media_type,
        "digest": manifest_digest.to_string(),
        "size": img.manifest.len(),
    });
    if let Some(t) = tag {
        entry["annotations"] = serde_json::json!({"org.opencontainers.image.ref.name": t});
    }
    let manifests = index["manifests"].as_array_mut().ok_or_else(|| Error::Invalid(format!("{}: no manifests array", index_path.display())))?;
    manifests.retain(|m| m["annotations"]["org.opencontainers.image.ref.name"].as_str() != tag);
    manifests.push(entry);
    crate::write::write_atomic(&dir.join("oci-layout"), br#"{"imageLayoutVersion":"1.0.0"}"#)?;
    crate::write::write_atomic(&index_path, &serde_json::to_vec(&index).map_err(|e| Error::Invalid(e.to_string()))?)?;
    Ok(manifest_digest)
}

fn append(b: &mut tar::Builder<File>, name: &str, data: &mut dyn io::Read, size: u64) -> io::Result<()> {
    let mut h = tar::Header::new_gnu();
    h.set_size(size);
    h.set_mode(0o644);
    h.set_mtime(0);
    h.set_entry_type(if name.ends_with('/') { tar::EntryType::Directory } else { tar::EntryType::Regular });
    b.append_data(&mut h, name, data)
}

/// A docker-archive holding both forms: `manifest.json` (read by every
/// `docker load`) and an OCI layout (`index.json`, `blobs/`).
pub(crate) fn write_archive(path: &Path, reference: Option<&str>, img: &NewImage) -> Result<Digest> {
    let parent = path.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(Path::new("."));
    let staging = parent.join(format!(".{}.freshen-{}", path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default(), std::process::id()));
    let _ = fs::remove_dir_all(&staging);
    let res = (|| {
        let digest = write_layout(&staging, reference, img)?;
        let config_digest = Digest::of(&img.config);
        let mut layers: Vec<String> = img.source_layers.iter().map(|l| format!("blobs/sha256/{}", l.digest.hex())).collect();
        layers.extend(img.new_blobs.iter().map(|(d, _)| format!("blobs/sha256/{}", d.hex())));
        let tags: Vec<String> = reference.map(|r| vec![if r.contains(':') { r.to_string() } else { format!("{r}:latest") }]).unwrap_or_default();
        let manifest = serde_json::json!([{"Config": format!("blobs/sha256/{}", config_digest.hex()), "RepoTags": tags, "Layers": layers}]);
        let manifest = serde_json::to_vec(&manifest).map_err(|e| Error::Invalid(e.to_string()))?;
        let tmp = parent.join(format!(".{}.tmp-{}", path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default(), std::process::id()));
        let build = || -> io::Result<()> {
            let mut b = tar::Builder::new(File::create(&tmp)?);
            append(&mut b, "blobs/", &mut io::empty(), 0)?;
            append(&mut b, "blobs/sha256/", &mut io::empty(), 0)?;
            let mut names: Vec<_> = fs::read_dir(staging.join("blobs/sha256"))?.map(|e| e.map(|e| e.file_name())).collect::<io::Result<_>>()?;
            names.sort();
            for n in names {
                let p = staging.join("blobs/sha256").join(&n);
                let size = fs::metadata(&p)?.len();
                append(&mut b, &format!("blobs/sha256/{}", n.to_string_lossy()), &mut File::open(&p)?, size)?;
            }
            for name in ["index.json", "oci-layout"] {
                let data = fs::read(staging.join(name))?;
                append(&mut b, name, &mut &data[..], data.len() as u64)?;
            }
            append(&mut b, "manifest.json", &mut &manifest[..], manifest.len() as u64)?;
            let mut f = b.into_inner()?;
            f.flush()?;
            f.sync_all()?;
            fs::rename(&tmp, path)
        };
        if let Err(e) = build() {
            let _ = fs::remove_file(&tmp);
            return Err(io_err(path)(e));
        }
        Ok(digest)
    })();
    let _ = fs::remove_dir_all(&staging);
    res
}
