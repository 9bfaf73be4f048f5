//! `docker-daemon:`: images in the Docker Engine, through its API on a
//! unix socket (or plain `tcp://`).
//!
//! Reading exports the image (`GET /images/{name}/get`, a docker-archive)
//! into a temporary file in [`Transport::tmp_dir`] and reads that like any
//! `docker-archive:`; the file goes when the source is dropped. Writing
//! builds a docker-archive there and streams it to `POST /images/load`,
//! after tagging the image the name held before with its rollback tag
//! ([`rollback_tag`]: `REPO:freshen-rollback-TAG`) so a deploy can roll
//! back.
//!
//! Requests carry no `/vX.Y` version prefix: the Engine then answers in its
//! own current API version. The endpoints and fields used (`Id`, `message`,
//! `error`, `errorDetail`) are the same from API 1.24 on, and an
//! unversioned path keeps working on Engines that refuse old versions
//! (Engine 29 refuses anything below 1.44), where a fixed `/v1.41` (Debian
//! bookworm's Engine 20.10) would fail.

mod archive;
mod containers;
pub mod events;
mod http;
mod images;

pub use archive::read_files;
pub use images::{list_images, tag_image, ImageSummary};

pub use containers::{
    all_containers, connect_network, container_logs, create_container, inspect_container, inspect_image, remove_container, rename_container, start_container,
    stop_container,
};

use std::fs::File;
use std::io::{self, BufReader, BufWriter, Read, Write};
use std::path::Path;

use serde::Deserialize;

use crate::digest::Digest;
use crate::error::{io_err, Error, Result};
use crate::platform::Platform;
use crate::progress::Counting;
use crate::docker_archive;
use crate::store::StoreSource;
use crate::source::{Image, ImageSource, Layer, NewImage};
use crate::scratch::TempFile;
use crate::text::one_line;
use crate::transport::Transport;

use http::{Body, Endpoint, Failure, Response};

const DEFAULT_HOST: &str = "unix:///var/run/docker.sock";
/// How the tag that keeps the image a name held before a load replaced
/// it starts ([`rollback_tag`]).
const ROLLBACK_PREFIX: &str = "freshen-rollback";
/// Longest tag the Engine accepts.
const TAG_MAX: usize = 128;
/// Largest JSON answer read whole (image inspect, an error).
const JSON_LIMIT: u64 = 16 << 20;
/// Longest line of the load progress stream.
const LOAD_LINE_LIMIT: usize = 1 << 20;

/// Opens `name` (`NAME:TAG` or an image id) from the Engine.
pub(crate) fn open(name: &str, platform: &Platform, t: &Transport) -> Result<Box<dyn ImageSource>> {
    let engine = Engine::new(t)?;
    if engine.image_id(name)?.is_none() {
        return Err(Error::Invalid(format!("docker-daemon:{name}: no such image in the Docker Engine at {}", engine.url)));
    }
    let export = engine.export(name, t)?;
    // The export holds just this image, so no tag needs choosing (an id
    // has none, and the Engine may spell the tag differently).
    let source = docker_archive::open(&export.path, None, platform, format!("docker-daemon:{name}"))?;
    Ok(Box::new(DaemonSource { source, _export: export }))
}

/// Loads `img` into the Engine as `name`; returns the manifest digest.
/// Engine 20.10 records no manifest digest for a loaded image, so this is
/// the digest of the manifest freshen wrote, as for `docker-archive:`.
pub(crate) fn load(name: &str, img: &NewImage, t: &Transport) -> Result<Digest> {
    if name.starts_with("sha256:") {
        return Err(Error::Invalid(format!("docker-daemon:{name}: cannot load an image under an id; name it NAME:TAG")));
    }
    let engine = Engine::new(t)?;
    let config_digest = Digest::of(&img.config);
    let manifest_digest = Digest::of(&img.manifest);
    let previous = engine.image_id(name)?;
    let archive = TempFile::reserve(&t.tmp_dir, "load");
    docker_archive::write(&archive.path, Some(name), img)?;
    let note = match previous {
        Some(id) if id != config_digest.to_string() && id != manifest_digest.to_string() => {
            let kept = rollback_tag(name);
            engine.tag(name, &kept)?;
            format!("previous image {id} kept as {kept}")
        }
        Some(_) => "unchanged".to_string(),
        None => "new image".to_string(),
    };
    engine.load_archive(name, &archive.path, t, &note)?;
    drop(archive);
    let loaded = engine.image_id(name)?.unwrap_or_else(|| "no such image".into());
    // The classic image store names an image by its config digest, the
    // containerd store by its manifest digest.
    if loaded != config_digest.to_string() && loaded != manifest_digest.to_string() {
        return Err(Error::Invalid(format!(
            "docker-daemon:{name}: after the load the Docker Engine at {} holds {loaded}, not the image written (config {config_digest})",
            engine.url
        )));
    }
    Ok(manifest_digest)
}

/// The name that keeps the image `name` (`REPO[:TAG]`) held before a
/// patch in place replaced it: `REPO:freshen-rollback-TAG`. Two tags of
/// one repository never share it: a tag too long to carry whole is
/// replaced by its SHA-256 after a `.` (`REPO:freshen-rollback.HEX`),
/// which no whole tag gives.
pub fn rollback_tag(name: &str) -> String {
    let repo = repository(name);
    let tag = name.strip_prefix(repo).and_then(|t| t.strip_prefix(':')).unwrap_or("latest");
    let whole = format!("{ROLLBACK_PREFIX}-{tag}");
    if whole.len() <= TAG_MAX {
        return format!("{repo}:{whole}");
    }
    let hex = Digest::of(tag.as_bytes()).to_string();
    format!("{repo}:{ROLLBACK_PREFIX}.{}", &hex["sha256:".len()..])
}

/// A container as the Engine lists it (`GET /containers/json`).
#[derive(Clone, Debug, Deserialize)]
pub struct ContainerSummary {
    #[serde(rename = "Id")]
    pub id: String,
    /// The names, each with a leading `/`.
    #[serde(rename = "Names", default)]
    pub names: Vec<String>,
    /// The image as the container was created with it (a name, a digest
    /// reference or an id; the Engine shows the id once the name moved on).
    #[serde(rename = "Image", default)]
    pub image: String,
    /// The id of the image the container runs.
    #[serde(rename = "ImageID", default)]
    pub image_id: String,
    #[serde(rename = "Labels", default, deserialize_with = "null_as_empty")]
    pub labels: std::collections::BTreeMap<String, String>,
    /// `running`, `exited`, `created`, `restarting`, `paused`, `dead`.
    #[serde(rename = "State", default)]
    pub state: String,
}

impl ContainerSummary {
    /// The first name without its leading `/` (else the short id).
    pub fn name(&self) -> String {
        self.names.first().map(|n| n.trim_start_matches('/').to_string()).unwrap_or_else(|| self.id.chars().take(12).collect())
    }
}

fn null_as_empty<'de, D: serde::Deserializer<'de>>(d: D) -> std::result::Result<std::collections::BTreeMap<String, String>, D::Error> {
    Ok(Option::deserialize(d)?.unwrap_or_default())
}

/// The running containers of the Engine `t` names.
pub fn running_containers(t: &Transport) -> Result<Vec<ContainerSummary>> {
    let engine = Engine::new(t)?;
    let resp = engine.call("GET", "/containers/json", None)?;
    let resp = engine.check(resp, "listing containers")?;
    let bytes = engine.read_small(resp.body, "listing containers")?;
    serde_json::from_slice(&bytes).map_err(|e| Error::Invalid(format!("the Docker Engine at {} sent an unreadable container list: {e}", engine.url)))
}

/// The image a container was created from, as it was named then
/// (`Config.Image` of `GET /containers/{id}/json`). The container list
/// shows the image's id instead once that name has moved to another image.
pub fn container_image_name(id: &str, t: &Transport) -> Result<String> {
    #[derive(Deserialize)]
    struct Config {
        #[serde(rename = "Image", default)]
        image: String,
    }
    #[derive(Deserialize)]
    struct ContainerInspect {
        #[serde(rename = "Config")]
        config: Config,
    }
    let engine = Engine::new(t)?;
    let what = format!("container {id}");
    let resp = engine.call("GET", &format!("/containers/{}/json", http::escape(id)), None)?;
    let resp = engine.check(resp, &what)?;
    let bytes = engine.read_small(resp.body, &what)?;
    let inspect: ContainerInspect =
        serde_json::from_slice(&bytes).map_err(|e| Error::Invalid(format!("{what}: the Docker Engine at {} sent an unreadable container inspect: {e}", engine.url)))?;
    Ok(inspect.config.image)
}

/// The id of image `name` (`NAME:TAG` or an id) in the Engine `t` names,
/// or `None` when it has no such image.
pub fn image_id(name: &str, t: &Transport) -> Result<Option<String>> {
    Engine::new(t)?.image_id(name)
}

/// A source read from an exported archive, which it removes when dropped.
struct DaemonSource {
    source: StoreSource,
    _export: TempFile,
}

impl ImageSource for DaemonSource {
    fn image(&self) -> &Image {
        self.source.image()
    }

    fn open_layer(&self, layer: &Layer) -> Result<Box<dyn Read + Send + '_>> {
        self.source.open_layer(layer)
    }
}

/// The fields of an image inspect freshen reads.
#[derive(Deserialize)]
struct Inspect {
    #[serde(rename = "Id")]
    id: String,
}

/// The Docker Engine at one address.
struct Engine {
    /// The address as given (`unix:///var/run/docker.sock`), for messages.
    url: String,
    endpoint: Endpoint,
}

impl Engine {
    /// The Engine `t` names, else `$DOCKER_HOST`, else the default socket.
    fn new(t: &Transport) -> Result<Engine> {
        let url = t
            .docker_host
            .clone()
            .or_else(|| std::env::var("DOCKER_HOST").ok().filter(|h| !h.is_empty()))
            .unwrap_or_else(|| DEFAULT_HOST.to_string());
        let endpoint = Endpoint::parse(&url).map_err(Error::Invalid)?;
        Ok(Engine { url, endpoint })
    }

    /// Sends a request; failures name the Engine.
    fn call(&self, method: &str, path: &str, body: Option<Body>) -> Result<Response> {
        http::request(&self.endpoint, method, path, body).map_err(|f| match f {
            Failure::Connect(e) => Error::Invalid(format!("cannot reach the Docker Engine at {}: {}", self.url, connect_hint(&e))),
            Failure::Exchange(e) => Error::Invalid(format!("the Docker Engine at {}: {e}", self.url)),
        })
    }

    /// The id of image `name`, or `None` when the Engine has no such image.
    fn image_id(&self, name: &str) -> Result<Option<String>> {
        let resp = self.call("GET", &format!("/images/{}/json", http::escape(name)), None)?;
        if resp.status == 404 {
            return Ok(None);
        }
        let resp = self.check(resp, &subject(name))?;
        let bytes = self.read_small(resp.body, &subject(name))?;
        let inspect: Inspect = serde_json::from_slice(&bytes)
            .map_err(|e| Error::Invalid(format!("docker-daemon:{name}: the Docker Engine at {} sent an unreadable image inspect: {e}", self.url)))?;
        Ok(Some(inspect.id))
    }

    /// Streams `docker save NAME` into a temporary file.
    fn export(&self, name: &str, t: &Transport) -> Result<TempFile> {
        let resp = self.call("GET", &format!("/images/{}/get", http::escape(name)), None)?;
        let resp = self.check(resp, &subject(name))?;
        let (tmp, file) = TempFile::create(&t.tmp_dir, "export")?;
        let mut body = Counting::new(resp.body, t.progress.begin(&format!("export {name}"), None));
        let mut out = BufWriter::with_capacity(1 << 20, file);
        let copied = io::copy(&mut body, &mut out).and_then(|n| out.flush().map(|_| n));
        copied.map_err(|e| Error::Invalid(format!("docker-daemon:{name}: exporting from the Docker Engine at {} into {}: {e}", self.url, tmp.path.display())))?;
        body.task().finish(""); // the reporter tells bytes and time
        Ok(tmp)
    }

    /// Tags image `name` (a name or an id) as `full` (`REPO[:TAG]`).
    fn tag(&self, name: &str, full: &str) -> Result<()> {
        let repo = repository(full);
        let tag = full.strip_prefix(repo).and_then(|t| t.strip_prefix(':')).unwrap_or("latest");
        let path = format!("/images/{}/tag?repo={}&tag={}", http::escape(name), http::escape(repo), http::escape(tag));
        let what = format!("tagging {} as {repo}:{tag}", subject(name));
        let resp = self.call("POST", &path, None)?;
        let resp = self.check(resp, &what)?;
        let _ = self.read_small(resp.body, &what)?;
        Ok(())
    }

    /// Streams a docker-archive to `POST /images/load` and fails with the
    /// first error the Engine reports.
    fn load_archive(&self, name: &str, archive: &Path, t: &Transport, note: &str) -> Result<()> {
        let file = File::open(archive).map_err(io_err(archive))?;
        let len = file.metadata().map_err(io_err(archive))?.len();
        let mut reader = Counting::new(BufReader::with_capacity(1 << 20, file), t.progress.begin(&format!("load {name}"), Some(len)));
        let body = Body { content_type: "application/x-tar", len, reader: &mut reader };
        let resp = self.call("POST", "/images/load?quiet=1", Some(body))?;
        let resp = self.check(resp, &subject(name))?;
        let mut lines = BufReader::new(resp.body);
        loop {
            let line = match http::read_line(&mut lines, LOAD_LINE_LIMIT) {
                Ok(line) => line,
                Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => break,
                Err(e) => return Err(Error::Invalid(format!("docker-daemon:{name}: the Docker Engine at {}: {e}", self.url))),
            };
            if let Some(msg) = load_error(&line) {
                return Err(Error::Invalid(format!("docker-daemon:{name}: the Docker Engine at {} refused the image: {}", self.url, one_line(&msg))));
            }
        }
        reader.task().finish(note);
        Ok(())
    }

    /// Passes a 2xx response; turns any other into an error carrying the
    /// Engine's `message`, after `what` the request was about.
    fn check(&self, resp: Response, what: &str) -> Result<Response> {
        if (200..300).contains(&resp.status) {
            return Ok(resp);
        }
        let status = resp.status;
        let bytes = self.read_small(resp.body, what).unwrap_or_default();
        let message = serde_json::from_slice::<serde_json::Value>(&bytes)
            .ok()
            .and_then(|v| v.get("message").and_then(|m| m.as_str()).map(str::to_string))
            .unwrap_or_else(|| String::from_utf8_lossy(&bytes).into_owned());
        let message = if message.trim().is_empty() { format!("HTTP status {status}") } else { one_line(&message) };
        Err(Error::Invalid(format!("{what}: the Docker Engine at {}: {message}", self.url)))
    }

    /// Reads a JSON answer of at most [`JSON_LIMIT`] bytes.
    fn read_small(&self, body: Box<dyn Read + Send>, what: &str) -> Result<Vec<u8>> {
        let mut bytes = Vec::new();
        body.take(JSON_LIMIT + 1).read_to_end(&mut bytes).map_err(|e| Error::Invalid(format!("{what}: the Docker Engine at {}: {e}", self.url)))?;
        if bytes.len() as u64 > JSON_LIMIT {
            return Err(Error::Invalid(format!("{what}: the Docker Engine at {} sent an answer over {JSON_LIMIT} bytes", self.url)));
        }
        Ok(bytes)
    }
}

/// How messages name an image of the Engine.
fn subject(name: &str) -> String {
    format!("docker-daemon:{name}")
}

/// Says what to do about a failed connection.
fn connect_hint(e: &io::Error) -> String {
    match e.kind() {
        io::ErrorKind::NotFound => "no such file (is dockerd running? set DOCKER_HOST)".into(),
        io::ErrorKind::ConnectionRefused => "connection refused (is dockerd running? set DOCKER_HOST)".into(),
        io::ErrorKind::PermissionDenied => "permission denied (run as root or as a member of the docker group)".into(),
        _ => e.to_string(),
    }
}

/// `NAME:TAG` without its tag (a registry port is not a tag).
fn repository(name: &str) -> &str {
    match name.rsplit_once(':') {
        Some((repo, tag)) if !tag.contains('/') => repo,
        _ => name,
    }
}

/// The error a line of the load progress stream reports, if any.
fn load_error(line: &[u8]) -> Option<String> {
    let v: serde_json::Value = serde_json::from_slice(line).ok()?;
    let detail = v.get("errorDetail").and_then(|d| d.get("message")).and_then(|m| m.as_str());
    detail.or_else(|| v.get("error").and_then(|m| m.as_str())).map(str::to_string)
}


#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn repository_strips_the_tag_only() {
        assert_eq!(repository("dokku/app:latest"), "dokku/app");
        assert_eq!(repository("localhost:5000/app:2"), "localhost:5000/app");
        assert_eq!(repository("localhost:5000/app"), "localhost:5000/app");
    }

    #[test]
    fn rollback_tags_never_collide() {
        assert_eq!(rollback_tag("dokku/app:latest"), "dokku/app:freshen-rollback-latest");
        assert_eq!(rollback_tag("localhost:5000/app"), "localhost:5000/app:freshen-rollback-latest");
        assert_ne!(rollback_tag("app:1"), rollback_tag("app:2"));
        let long = "x".repeat(128);
        let kept = rollback_tag(&format!("app:{long}"));
        assert!(kept.starts_with("app:freshen-rollback.") && kept.len() - 4 <= TAG_MAX, "{kept}");
        assert_ne!(kept, rollback_tag(&format!("app:{}", "x".repeat(127))));
    }

    #[test]
    fn load_errors_are_found() {
        assert_eq!(load_error(br#"{"stream":"Loaded image: a:b\n"}"#), None);
        assert_eq!(load_error(b"not json"), None);
        assert_eq!(load_error(br#"{"errorDetail":{"message":"invalid diffID"},"error":"short"}"#).as_deref(), Some("invalid diffID"));
        assert_eq!(load_error(br#"{"error":"no space left"}"#).as_deref(), Some("no space left"));
    }

    #[test]
    fn unreachable_engines_are_named() {
        let t = Transport { docker_host: Some("unix:///nonexistent/freshen.sock".into()), ..Transport::default() };
        let err = match open("app:latest", &Platform::host(), &t) {
            Err(e) => e.to_string(),
            Ok(_) => panic!("opened an image from a missing socket"),
        };
        assert_eq!(err, "cannot reach the Docker Engine at unix:///nonexistent/freshen.sock: no such file (is dockerd running? set DOCKER_HOST)");
        let t = Transport { docker_host: Some("ssh://me@host".into()), ..Transport::default() };
        assert!(open("app:latest", &Platform::host(), &t).err().unwrap().to_string().contains("unsupported Docker host `ssh://me@host`"));
    }

    #[test]
    fn temp_files_go_when_dropped() {
        let dir = std::env::temp_dir();
        let (tmp, mut f) = TempFile::create(&dir, "test").unwrap();
        f.write_all(b"x").unwrap();
        let path = tmp.path.clone();
        assert!(path.is_file());
        drop(tmp);
        assert!(!path.exists());
    }
}
