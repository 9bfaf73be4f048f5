//! Pushing a [`NewImage`] to a registry: blobs first (skipped when present,
//! mounted across repositories of the same registry, else uploaded in one
//! streamed PUT), the manifest last, so a failed push never leaves a tag
//! pointing at a partial image.

use std::fs::File;
use std::io::{self, BufReader, Read};

use ureq::http::Method;

use super::client::{encode, header, Body, Client};
use crate::digest::{Digest, HashingWriter};
use crate::gzip::ParallelGz;
use crate::scratch::TempFile;
use crate::error::{io_err, Error, Result};
use crate::progress::{Counting, Progress};
use crate::reference::RegistryRef;
use crate::source::NewImage;
use crate::source::{ImageSource, Layer, ParentIndex};
use crate::transport::Transport;

/// Copy buffer for streamed uploads.
const CHUNK: usize = 256 << 10;

/// Where a blob's bytes come from.
enum Data<'a> {
    Layer(&'a dyn ImageSource, &'a Layer),
    File(&'a std::path::Path),
    Bytes(&'a [u8]),
}

/// Pushes `img` to `r` and returns the digest of the image's manifest
/// (also when, pushed over the image it came from, a multi-platform index
/// is rewritten to point at it: the index's own digest is not returned).
pub(crate) fn push(r: &RegistryRef, img: &NewImage, t: &Transport) -> Result<Digest> {
    let origin = img.source.registry_origin().filter(|o| o.registry == r.registry);
    // Where each source layer can be mounted from: another repository of
    // this registry (a rebased image mixes two).
    let mount_from = |layer: &Layer| img.source.layer_origin(layer).filter(|o| o.registry == r.registry && o.repository != r.repository).map(|o| o.repository.as_str());
    let mut scopes = vec![format!("repository:{}:pull,push", r.repository)];
    for repo in img.source_layers.iter().filter_map(mount_from) {
        let scope = format!("repository:{repo}:pull");
        if !scopes.contains(&scope) {
            scopes.push(scope);
        }
    }
    let pusher = Pusher { client: Client::connect(r, t, scopes)?, progress: t.progress.as_ref() };

    // Layers stored uncompressed (`docker save` output) go up gzipped, as
    // the manifest then says; the config (diff ids) is unchanged.
    let (manifest, gzipped) = gzip_plain_layers(img, t)?;
    for (layer, gz) in img.source_layers.iter().zip(&gzipped) {
        match gz {
            Some(g) => pusher.blob(&g.digest, Some(g.size), Data::File(&g.file.path), None)?,
            None => pusher.blob(&layer.digest, layer.size, Data::Layer(img.source, layer), mount_from(layer))?,
        }
    }
    drop(gzipped);
    for (digest, path) in &img.new_blobs {
        let size = std::fs::metadata(path).map_err(io_err(path))?.len();
        pusher.blob(digest, Some(size), Data::File(path), None)?;
    }
    pusher.blob(&Digest::of(&img.config), Some(img.config.len() as u64), Data::Bytes(&img.config), None)?;

    let digest = Digest::of(&manifest);
    let parent = img.source.image().index.as_ref().filter(|_| origin.is_some_and(|o| o.repository == r.repository));
    match (parent, &r.tag) {
        (Some(parent), Some(tag)) => {
            // The manifest by digest, then the index (with its entry
            // replaced) under the tag: the tag moves once, atomically.
            pusher.manifest(&digest.to_string(), &manifest, &img.manifest_media_type)?;
            let index = replace_entry(parent, &digest, manifest.len(), &img.manifest_media_type)
                .map_err(|e| Error::Invalid(format!("{}: index {}: {e}", pusher.client.display, parent.digest)))?;
            pusher.manifest(tag, &index, &parent.media_type)?;
        }
        _ => pusher.manifest(r.tag.as_deref().unwrap_or(&digest.to_string()), &manifest, &img.manifest_media_type)?,
    }
    Ok(digest)
}

/// A source layer gzipped for the registry.
struct Gzipped {
    file: TempFile,
    digest: Digest,
    size: u64,
}

/// The gzip media type for an uncompressed layer type, if it is one.
fn gzip_type(media_type: &str) -> Option<&'static str> {
    match media_type {
        "application/vnd.docker.image.rootfs.diff.tar" => Some("application/vnd.docker.image.rootfs.diff.tar.gzip"),
        "application/vnd.oci.image.layer.v1.tar" => Some("application/vnd.oci.image.layer.v1.tar+gzip"),
        _ => None,
    }
}

/// Gzips (deterministically, on all cores) the source layers the manifest
/// lists as uncompressed tars, into scratch files; returns the manifest
/// with their descriptors replaced, and per source layer its gzipped blob.
fn gzip_plain_layers(img: &NewImage, t: &Transport) -> Result<(Vec<u8>, Vec<Option<Gzipped>>)> {
    let mut manifest: serde_json::Value = serde_json::from_slice(&img.manifest).map_err(|e| Error::Invalid(format!("manifest: {e}")))?;
    let mut out = Vec::new();
    for (i, layer) in img.source_layers.iter().enumerate() {
        let desc = &mut manifest["layers"][i];
        let plain = desc["digest"].as_str() == Some(layer.digest.to_string().as_str());
        let Some(gz_type) = gzip_type(desc["mediaType"].as_str().unwrap_or("")).filter(|_| plain) else {
            out.push(None);
            continue;
        };
        let task = t.progress.begin(&format!("compress {}", layer.digest.short()), layer.size);
        let (file, f) = TempFile::create(&t.tmp_dir, "gzip")?;
        let mut reader = Counting::new(img.source.open_layer(layer)?, task);
        let mut gz = ParallelGz::new(HashingWriter::new(io::BufWriter::with_capacity(CHUNK, f)));
        let layer_err = |e: io::Error| Error::Layer { index: layer.index, digest: layer.digest.to_string(), reason: e.to_string() };
        io::copy(&mut reader, &mut gz).map_err(layer_err)?;
        let (w, digest, size) = gz.finish().map_err(layer_err)?.finish();
        w.into_inner().map_err(|e| layer_err(e.into_error()))?;
        reader.task().finish(&format!("{:.1} MB gzipped", size as f64 / 1e6));
        *desc = serde_json::json!({"mediaType": gz_type, "digest": digest.to_string(), "size": size});
        out.push(Some(Gzipped { file, digest, size }));
    }
    if out.iter().all(Option::is_none) {
        return Ok((img.manifest.clone(), out));
    }
    Ok((serde_json::to_vec(&manifest).map_err(|e| Error::Invalid(e.to_string()))?, out))
}

/// The parent index with only `manifests[entry]`'s digest, size and media
/// type changed; everything else (platforms, annotations, other entries)
/// is kept as it was.
fn replace_entry(parent: &ParentIndex, digest: &Digest, size: usize, media_type: &str) -> std::result::Result<Vec<u8>, String> {
    let mut index: serde_json::Value = serde_json::from_slice(&parent.raw).map_err(|e| format!("invalid JSON: {e}"))?;
    let entry = index["manifests"]
        .as_array_mut()
        .and_then(|m| m.get_mut(parent.entry))
        .and_then(|e| e.as_object_mut())
        .ok_or_else(|| format!("no entry {} in manifests", parent.entry))?;
    entry.insert("digest".into(), digest.to_string().into());
    entry.insert("size".into(), size.into());
    entry.insert("mediaType".into(), media_type.into());
    serde_json::to_vec(&index).map_err(|e| e.to_string())
}

struct Pusher<'a> {
    client: Client,
    progress: &'a dyn Progress,
}

impl Pusher<'_> {
    /// Makes sure the repository has blob `digest`, mounting it from
    /// `mount_from` (a repository of the same registry) when it can.
    fn blob(&self, digest: &Digest, size: Option<u64>, data: Data, mount_from: Option<&str>) -> Result<()> {
        let task = self.progress.begin(&format!("push {}", digest.short()), size);
        let c = &self.client;
        let head = c.send(Method::HEAD, &c.url(&format!("blobs/{digest}")), &[], Body::Empty)?;
        match head.status().as_u16() {
            200 => {
                task.finish("exists");
                return Ok(());
            }
            404 => {}
            _ => return Err(c.fail(&format!("checking blob {digest}"), head)),
        }
        let location = match mount_from {
            Some(from) => {
                let resp = c.send(Method::POST, &c.url(&format!("blobs/uploads/?mount={}&from={}", encode(&digest.to_string()), encode(from))), &[], Body::Empty)?;
                if resp.status() == 201 {
                    task.finish(&format!("mounted from {from}"));
                    return Ok(());
                }
                self.upload_location(resp, digest)?
            }
            None => {
                let resp = c.send(Method::POST, &c.url("blobs/uploads/"), &[], Body::Empty)?;
                self.upload_location(resp, digest)?
            }
        };
        let url = format!("{}{}digest={}", c.resolve(&location), if location.contains('?') { '&' } else { '?' }, encode(&digest.to_string()));
        let reader: Box<dyn Read + Send + '_> = match data {
            Data::Layer(source, layer) => source.open_layer(layer)?,
            Data::File(path) => Box::new(File::open(path).map_err(io_err(path))?),
            Data::Bytes(b) => Box::new(b),
        };
        let mut counting = Counting::new(BufReader::with_capacity(CHUNK, reader), task);
        let headers = [("content-type", "application/octet-stream")];
        let resp = c.send(Method::PUT, &url, &headers, Body::Stream(&mut counting, size))?;
        if resp.status() != 201 {
            return Err(c.fail(&format!("uploading blob {digest}"), resp));
        }
        counting.task().finish("");
        Ok(())
    }

    /// The upload URL a `POST …/blobs/uploads/` answered with.
    fn upload_location(&self, resp: super::client::Resp, digest: &Digest) -> Result<String> {
        if resp.status() != 202 {
            return Err(self.client.fail(&format!("starting the upload of blob {digest}"), resp));
        }
        header(&resp, "location").ok_or_else(|| Error::Invalid(format!("{}: starting the upload of blob {digest}: the registry sent no Location", self.client.display)))
    }

    /// `PUT /v2/REPO/manifests/REFERENCE`.
    fn manifest(&self, reference: &str, bytes: &[u8], media_type: &str) -> Result<()> {
        let c = &self.client;
        let resp = c.send(Method::PUT, &c.url(&format!("manifests/{reference}")), &[("content-type", media_type)], Body::Bytes(bytes))?;
        if resp.status() != 201 {
            return Err(c.fail(&format!("writing manifest `{reference}`"), resp));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replaces_only_the_entry() {
        let raw = br#"{"schemaVersion":2,"mediaType":"application/vnd.oci.image.index.v1+json","annotations":{"a":"b"},"manifests":[
            {"mediaType":"application/vnd.docker.distribution.manifest.v2+json","digest":"sha256:1111111111111111111111111111111111111111111111111111111111111111","size":10,"platform":{"os":"linux","architecture":"arm64"}},
            {"mediaType":"application/vnd.docker.distribution.manifest.v2+json","digest":"sha256:2222222222222222222222222222222222222222222222222222222222222222","size":20,"platform":{"os":"linux","architecture":"amd64"},"annotations":{"x":"y"}}]}"#;
        let parent = ParentIndex { raw: raw.to_vec(), media_type: "application/vnd.oci.image.index.v1+json".into(), digest: Digest::of(raw), entry: 1 };
        let d = Digest::of(b"new");
        let out: serde_json::Value = serde_json::from_slice(&replace_entry(&parent, &d, 42, "application/vnd.oci.image.manifest.v1+json").unwrap()).unwrap();
        let old: serde_json::Value = serde_json::from_slice(raw).unwrap();
        assert_eq!(out["manifests"][0], old["manifests"][0]);
        assert_eq!(out["annotations"], old["annotations"]);
        let e = &out["manifests"][1];
        assert_eq!((e["digest"].as_str(), e["size"].as_u64(), e["mediaType"].as_str()), (Some(d.to_string().as_str()), Some(42), Some("application/vnd.oci.image.manifest.v1+json")));
        assert_eq!((&e["platform"], &e["annotations"]), (&old["manifests"][1]["platform"], &old["manifests"][1]["annotations"]));
        let bad = ParentIndex { entry: 5, ..parent };
        assert!(replace_entry(&bad, &d, 1, "x").is_err());
    }
}
