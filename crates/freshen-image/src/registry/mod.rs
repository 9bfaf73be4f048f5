//! `docker://`: images in registries, through the OCI distribution API.
//!
//! Pulling resolves a tag or digest to a manifest (through an index for
//! the requested platform), verifies every digest and streams layers;
//! pushing uploads only the blobs the registry lacks (mounting them from
//! the source repository when it is on the same registry) and writes the
//! manifest last.

mod auth;
mod client;
mod push;

use std::io::{self, Read};
use std::sync::Arc;

use oci_spec::image::{ImageConfiguration, ImageIndex, ImageManifest};
use ureq::http::Method;

use crate::digest::{Digest, VerifyingReader};
use crate::error::{Error, Result};
use crate::platform::Platform;
use crate::progress::{Counting, Progress};
use crate::reference::RegistryRef;
use crate::manifest::{choose_platform, layers_of, parse_digest, JSON_LIMIT};
use crate::source::{parse_json, Image, ImageSource, Layer, ParentIndex};
use crate::transport::Transport;

use client::{header, Body, Client};

pub(crate) use push::push;

/// The manifest and index media types freshen reads.
const ACCEPT: &str = "application/vnd.oci.image.index.v1+json, application/vnd.docker.distribution.manifest.list.v2+json, application/vnd.oci.image.manifest.v1+json, application/vnd.docker.distribution.manifest.v2+json";

/// An image in a registry repository.
struct RegistrySource {
    client: Client,
    origin: RegistryRef,
    image: Image,
    progress: Arc<dyn Progress>,
    spool: Option<std::path::PathBuf>,
}

/// Opens `docker://REF` for `platform`.
pub(crate) fn open(r: &RegistryRef, platform: &Platform, t: &Transport) -> Result<Box<dyn ImageSource>> {
    let client = Client::connect(r, t, vec![format!("repository:{}:pull", r.repository)])?;
    let expected = r.digest.as_deref().map(parse_digest).transpose()?;
    let mut fetched = fetch_manifest(&client, r.reference(), expected.as_ref())?;
    let mut parent = None;
    if fetched.is_index() {
        let index: ImageIndex = parse_json("index", &fetched.digest, &fetched.bytes)?;
        let (entry, desc) = choose_platform(&index, platform, &client.display)?;
        let digest = parse_digest(desc.digest().as_ref())?;
        let manifest = fetch_manifest(&client, &digest.to_string(), Some(&digest))?;
        parent = Some(ParentIndex { raw: fetched.bytes, media_type: fetched.media_type, digest: fetched.digest, entry });
        fetched = manifest;
        if fetched.is_index() {
            return Err(Error::Invalid(format!("{}: the index entry for {platform} is itself an index (nested indexes are not supported)", client.display)));
        }
    }
    let manifest: ImageManifest = parse_json("manifest", &fetched.digest, &fetched.bytes)?;
    let config_digest = parse_digest(manifest.config().digest().as_ref())?;
    let config_raw = fetch_config(&client, &config_digest)?;
    let config: ImageConfiguration = parse_json("config", &config_digest, &config_raw)?;
    let layers = layers_of(&manifest, &config, &client.display)?;
    let image = Image {
        reference: client.display.clone(),
        manifest_digest: Some(fetched.digest),
        config_digest,
        config,
        config_raw,
        manifest_raw: Some(fetched.bytes),
        layers,
        index: parent,
    };
    Ok(Box::new(RegistrySource { client, origin: r.clone(), image, progress: t.progress.clone(), spool: t.spool.clone() }))
}

/// A manifest or index as the registry sent it, its digest verified.
struct Fetched {
    bytes: Vec<u8>,
    media_type: String,
    digest: Digest,
}

impl Fetched {
    fn is_index(&self) -> bool {
        self.media_type.contains("index") || self.media_type.contains("manifest.list")
    }
}

/// `GET /v2/REPO/manifests/REF`, checked against `expected` (a digest the
/// user named), else against `Docker-Content-Digest`.
fn fetch_manifest(client: &Client, reference: &str, expected: Option<&Digest>) -> Result<Fetched> {
    let resp = client.send(Method::GET, &client.url(&format!("manifests/{reference}")), &[("accept", ACCEPT)], Body::Empty)?;
    if resp.status() != 200 {
        return Err(client.fail(&format!("manifest `{reference}`"), resp));
    }
    let content_type = header(&resp, "content-type").unwrap_or_default();
    let header_digest = header(&resp, "docker-content-digest").and_then(|d| Digest::parse(d.trim()).ok());
    let bytes = client.read_small(resp, JSON_LIMIT)?;
    let got = Digest::of(&bytes);
    if let Some(want) = expected.or(header_digest.as_ref()) {
        if &got != want {
            return Err(Error::Invalid(format!("{}: manifest `{reference}`: digest mismatch: expected {want}, content hashes to {got}", client.display)));
        }
    }
    crate::jsonsize::check(&bytes).map_err(|reason| Error::Json { what: "manifest", digest: got.to_string(), reason })?;
    let value: serde_json::Value = serde_json::from_slice(&bytes)
        .map_err(|e| Error::Json { what: "manifest", digest: got.to_string(), reason: e.to_string() })?;
    let media_type = value["mediaType"].as_str().map(str::to_string).unwrap_or_else(|| content_type.split(';').next().unwrap_or("").trim().to_string());
    if value["schemaVersion"].as_u64() == Some(1) || media_type.contains("distribution.manifest.v1") {
        return Err(Error::Invalid(format!("{}: manifest `{reference}` uses the deprecated schema 1, which freshen does not read; re-push the image with a current tool", client.display)));
    }
    let media_type = if media_type.is_empty() && value.get("manifests").is_some() { "application/vnd.oci.image.index.v1+json".to_string() } else { media_type };
    Ok(Fetched { bytes, media_type, digest: got })
}

/// Fetches the config blob (at most [`JSON_LIMIT`] bytes).
fn fetch_config(client: &Client, digest: &Digest) -> Result<Vec<u8>> {
    let resp = client.send(Method::GET, &client.url(&format!("blobs/{digest}")), &[], Body::Empty)?;
    if resp.status() != 200 {
        return Err(client.fail(&format!("config {digest}"), resp));
    }
    client.read_small(resp, JSON_LIMIT)
}


impl ImageSource for RegistrySource {
    fn image(&self) -> &Image {
        &self.image
    }

    fn open_layer(&self, layer: &Layer) -> Result<Box<dyn Read + Send + '_>> {
        let spooled = self.spool.as_ref().map(|dir| dir.join(layer.digest.hex()));
        if let Some(f) = spooled.as_ref().and_then(|p| std::fs::File::open(p).ok()) {
            // Pulled and verified earlier in this run; checked again as it is read.
            return Ok(Box::new(VerifyingReader::new(io::BufReader::with_capacity(1 << 20, f), layer.digest.clone(), layer.size)));
        }
        let resp = self.client.send(Method::GET, &self.client.url(&format!("blobs/{}", layer.digest)), &[], Body::Empty)?;
        if resp.status() != 200 {
            return Err(self.client.fail(&format!("layer {} ({})", layer.index, layer.digest), resp));
        }
        let task = self.progress.begin(&format!("pull {}", layer.digest.short()), layer.size);
        let verified = VerifyingReader::new(self.client.body(resp, u64::MAX), layer.digest.clone(), layer.size);
        let stream = Finishing { inner: Counting::new(verified, task), done: false };
        match spooled {
            Some(path) => Ok(Box::new(Spooling::new(stream, path))),
            None => Ok(Box::new(stream)),
        }
    }

    fn registry_origin(&self) -> Option<&RegistryRef> {
        Some(&self.origin)
    }
}

/// Finishes the progress task once the stream ends cleanly (verified).
struct Finishing<R> {
    inner: Counting<R>,
    done: bool,
}

impl<R: Read> Read for Finishing<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        if n == 0 && !buf.is_empty() && !self.done {
            self.done = true;
            self.inner.task().finish("");
        }
        Ok(n)
    }
}

/// Copies a verified stream into the spool as it is read: the file gets
/// its name only when the stream ended cleanly (its digest checked), and
/// is dropped when the stream fails or is abandoned.
struct Spooling<R> {
    inner: R,
    /// The temporary file and the name it gets at the end.
    out: Option<(io::BufWriter<std::fs::File>, std::path::PathBuf, std::path::PathBuf)>,
}

impl<R> Spooling<R> {
    fn new(inner: R, path: std::path::PathBuf) -> Spooling<R> {
        let tmp = path.with_extension(format!("tmp-{}", std::process::id()));
        let out = std::fs::File::create(&tmp).ok().map(|f| (io::BufWriter::with_capacity(1 << 20, f), tmp, path));
        Spooling { inner, out }
    }

    /// Stops spooling (a write failed): the stream itself goes on.
    fn abandon(&mut self) {
        if let Some((_, tmp, _)) = self.out.take() {
            let _ = std::fs::remove_file(tmp);
        }
    }
}

impl<R: Read> Read for Spooling<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        if n > 0 {
            if let Some((w, _, _)) = &mut self.out {
                if io::Write::write_all(w, &buf[..n]).is_err() {
                    self.abandon();
                }
            }
        } else if !buf.is_empty() {
            if let Some((w, tmp, path)) = self.out.take() {
                let done = w.into_inner().map_err(|e| e.into_error()).and_then(|_| std::fs::rename(&tmp, &path));
                if done.is_err() {
                    let _ = std::fs::remove_file(&tmp);
                }
            }
        }
        Ok(n)
    }
}

impl<R> Drop for Spooling<R> {
    fn drop(&mut self) {
        self.abandon();
    }
}
