//! Registries shaped by an attacker, served by a small hand-written HTTP
//! server in the test: credentials never reach another origin (a blob
//! redirected to a host that asks for them, an upload URL on another
//! port), and a registry that stalls or trickles after its headers does
//! not hold a scan forever.

mod common;

use std::io::{BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::*;

/// A request as the crafted server saw it.
#[derive(Clone, Debug)]
struct Seen {
    method: String,
    path: String,
    authorization: Option<String>,
}

/// How the crafted server answers.
enum Reply {
    /// A whole response.
    Now(Vec<u8>),
    /// The head at once, then the body one byte per `Duration`.
    Trickle(Vec<u8>, Vec<u8>, Duration),
}

type Handler = Arc<dyn Fn(&Seen) -> Reply + Send + Sync>;

/// Serves `handler` on 127.0.0.1; returns the address and the requests seen.
fn craft(handler: Handler) -> (String, Arc<Mutex<Vec<Seen>>>) {
    craft_on(TcpListener::bind("127.0.0.1:0").unwrap(), handler)
}

fn craft_on(listener: TcpListener, handler: Handler) -> (String, Arc<Mutex<Vec<Seen>>>) {
    let addr = listener.local_addr().unwrap().to_string();
    let seen = Arc::new(Mutex::new(Vec::new()));
    let log = seen.clone();
    std::thread::spawn(move || {
        for stream in listener.incoming().flatten() {
            let (handler, log) = (handler.clone(), log.clone());
            std::thread::spawn(move || answer(stream, &*handler, &log));
        }
    });
    (addr, seen)
}

fn answer(mut stream: TcpStream, handler: &(dyn Fn(&Seen) -> Reply + Send + Sync), log: &Mutex<Vec<Seen>>) {
    let mut reader = BufReader::new(stream.try_clone().unwrap());
    while let Some(head) = RequestHead::read(&mut reader) {
        if head.method().is_empty() || head.path().is_empty() {
            return;
        }
        // The last Authorization header, as the loop over the lines kept it.
        let authorization = head.headers.iter().rfind(|(k, _)| k.eq_ignore_ascii_case("authorization")).map(|(_, v)| v.clone());
        let seen = Seen { method: head.method().to_string(), path: head.path().to_string(), authorization };
        let mut body = vec![0; head.length()];
        if reader.read_exact(&mut body).is_err() {
            return;
        }
        log.lock().unwrap().push(seen.clone());
        match handler(&seen) {
            Reply::Now(bytes) => {
                if stream.write_all(&bytes).is_err() {
                    return;
                }
            }
            Reply::Trickle(head, body, pause) => {
                let _ = stream.write_all(&head);
                for b in body {
                    std::thread::sleep(pause);
                    if stream.write_all(&[b]).is_err() {
                        return;
                    }
                }
                return;
            }
        }
    }
}

fn response(status: &str, headers: &[(&str, &str)], body: &[u8]) -> Vec<u8> {
    let mut r = format!("HTTP/1.1 {status}\r\nContent-Length: {}\r\n", body.len());
    for (k, v) in headers {
        r.push_str(&format!("{k}: {v}\r\n"));
    }
    r.push_str("\r\n");
    let mut r = r.into_bytes();
    r.extend_from_slice(body);
    r
}

const USER: &str = "alice";
const SECRET: &str = "s3cret-never-elsewhere";

/// An image packed into an OCI layout: (layout, manifest digest, layer digest).
fn image() -> (std::path::PathBuf, String, String) {
    let root = Rootfs::new(DEBIAN_OS);
    root.write("var/lib/dpkg/status", &stanza("hello", "1.0-1"));
    let layout = tempdir().join("oci");
    pack(&[(&root.dir, "debootstrap")], &layout, "v1");
    let manifest = tagged_digest(&layout, "v1");
    let layer = layout_json(&layout, &manifest)["layers"][0]["digest"].as_str().unwrap().to_string();
    (layout, manifest, layer)
}

fn blob(layout: &Path, digest: &str) -> Vec<u8> {
    std::fs::read(layout.join("blobs/sha256").join(digest.trim_start_matches("sha256:"))).unwrap()
}

/// A registry with basic authentication serving `layout`'s image as
/// `app:v1`; `layer` answers requests for the layer blob.
fn registry(layout: &Path, manifest: &str, layer: &str, on_layer: impl Fn(&Seen) -> Reply + Send + Sync + 'static) -> (String, Arc<Mutex<Vec<Seen>>>) {
    let expected = format!("Basic {}", base64(format!("{USER}:{SECRET}").as_bytes(), false));
    let manifest_bytes = blob(layout, manifest);
    let layout = layout.to_path_buf();
    let (manifest, layer) = (manifest.to_string(), layer.to_string());
    craft(Arc::new(move |req: &Seen| {
        if req.authorization.as_deref() != Some(expected.as_str()) {
            return Reply::Now(response("401 Unauthorized", &[("WWW-Authenticate", "Basic realm=\"crafted\"")], b""));
        }
        match req.path.as_str() {
            "/v2/" => Reply::Now(response("200 OK", &[], b"{}")),
            "/v2/app/manifests/v1" => Reply::Now(response("200 OK", &[("Content-Type", "application/vnd.oci.image.manifest.v1+json"), ("Docker-Content-Digest", &manifest)], &manifest_bytes)),
            p if p == format!("/v2/app/blobs/{layer}") => on_layer(req),
            p if p.starts_with("/v2/app/blobs/sha256:") => Reply::Now(response("200 OK", &[], &blob(&layout, &p["/v2/app/blobs/".len()..]))),
            _ => Reply::Now(response("404 Not Found", &[], b"")),
        }
    }))
}

fn no_secret_at(seen: &Mutex<Vec<Seen>>, who: &str) {
    let seen = seen.lock().unwrap();
    assert!(!seen.is_empty(), "{who} was asked nothing: the test proves nothing");
    for s in seen.iter() {
        assert!(s.authorization.is_none(), "{who} got credentials: {s:?}");
    }
}

/// (a) A blob redirected (302) to another host that answers 401 with a
/// Bearer realm on itself: neither that host nor its realm gets anything.
#[test]
fn redirected_blob_gets_no_credentials() {
    let cache = tempdir();
    let (layout, manifest, layer) = image();
    let evil_addr: Arc<Mutex<String>> = Arc::default();
    let realm = evil_addr.clone();
    let (evil, evil_seen) = craft(Arc::new(move |_: &Seen| {
        let challenge = format!("Bearer realm=\"http://{}/token\",service=\"evil\"", realm.lock().unwrap());
        Reply::Now(response("401 Unauthorized", &[("WWW-Authenticate", &challenge)], b""))
    }));
    *evil_addr.lock().unwrap() = evil.clone();
    let target = format!("http://{evil}/blob");
    let (reg, _) = registry(&layout, &manifest, &layer, move |_| Reply::Now(response("302 Found", &[("Location", &target)], b"")));
    let out = freshen(&["scan", &format!("docker://{reg}/app:v1"), "--creds", &format!("{USER}:{SECRET}")], &cache);
    assert_error(&out, &["401"]);
    assert!(!String::from_utf8_lossy(&out.stderr).contains(SECRET));
    no_secret_at(&evil_seen, "the host the redirect led to");
    assert!(!evil_seen.lock().unwrap().iter().any(|s| s.path.starts_with("/token")), "the other host's realm was asked for a token");
}

/// Two listeners on ports P and P·10+d, so that one URL is a string
/// prefix of the other (`http://127.0.0.1:4242` and `…:42421`).
fn prefix_ports() -> (TcpListener, TcpListener) {
    for port in 1000..6553u16 {
        let Ok(a) = TcpListener::bind(("127.0.0.1", port)) else { continue };
        for d in 0..10 {
            if let Ok(b) = TcpListener::bind(("127.0.0.1", port * 10 + d)) {
                return (a, b);
            }
        }
    }
    panic!("no free pair of ports");
}

/// (b) A push whose upload `Location` points to another port of the same
/// host (one whose URL has the registry's as a prefix): the upload goes
/// there without the basic credentials.
#[test]
fn upload_location_on_another_port_gets_no_credentials() {
    let cache = tempdir();
    let (layout, _, _) = image();
    let (reg_port, other_port) = prefix_ports();
    let (other, other_seen) = craft_on(other_port, Arc::new(|_: &Seen| Reply::Now(response("201 Created", &[], b""))));
    let expected = format!("Basic {}", base64(format!("{USER}:{SECRET}").as_bytes(), false));
    let location = format!("http://{other}/v2/app/blobs/uploads/1?state=x");
    let (reg, reg_seen) = craft_on(reg_port, Arc::new(move |req: &Seen| {
        if req.authorization.as_deref() != Some(expected.as_str()) {
            return Reply::Now(response("401 Unauthorized", &[("WWW-Authenticate", "Basic realm=\"crafted\"")], b""));
        }
        match (req.method.as_str(), req.path.as_str()) {
            ("GET", "/v2/") => Reply::Now(response("200 OK", &[], b"{}")),
            ("HEAD", _) => Reply::Now(response("404 Not Found", &[], b"")),
            ("POST", "/v2/app/blobs/uploads/") => Reply::Now(response("202 Accepted", &[("Location", &location)], b"")),
            ("PUT", p) if p.starts_with("/v2/app/manifests/") => Reply::Now(response("201 Created", &[], b"")),
            _ => Reply::Now(response("404 Not Found", &[], b"")),
        }
    }));
    let src = format!("oci:{}:v1", layout.display());
    let out = freshen(&["copy", &src, &format!("docker://{reg}/app:v2"), "--creds", &format!("{USER}:{SECRET}"), "-q"], &cache);
    assert_eq!(out.status.code(), Some(0), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(other.starts_with(&reg), "{other} {reg}");
    no_secret_at(&other_seen, "the upload URL on another port");
    let uploads = other_seen.lock().unwrap().iter().filter(|s| s.method == "PUT").count();
    assert_eq!(uploads, 2, "the layer and the config were uploaded there");
    assert!(reg_seen.lock().unwrap().iter().any(|s| s.method == "PUT" && s.path == "/v2/app/manifests/v2" && s.authorization.is_some()), "the registry itself still gets them");
}

/// Scans `app:v1` from a registry whose layer blob answers with its
/// headers and then `pause` between bytes; the progress window is 2 s.
fn scan_slow_layer(pause: Duration) -> (std::process::Output, Duration) {
    let cache = tempdir();
    let (layout, manifest, layer) = image();
    let data = blob(&layout, &layer);
    let head = format!("HTTP/1.1 200 OK\r\nContent-Length: {}\r\n\r\n", data.len()).into_bytes();
    let (reg, _) = registry(&layout, &manifest, &layer, move |_| Reply::Trickle(head.clone(), data.clone(), pause));
    let start = Instant::now();
    let out = freshen_env(&["scan", &format!("docker://{reg}/app:v1"), "--creds", &format!("{USER}:{SECRET}")], &cache, &[("FRESHEN_STALL_TIMEOUT", "2")]);
    (out, start.elapsed())
}

/// A registry that stalls after its headers fails the scan once no byte
/// came for the window.
#[test]
fn stalled_registry_fails_the_scan() {
    let (out, took) = scan_slow_layer(Duration::from_secs(600));
    assert_error(&out, &["layer", "no byte from the server for 2 s"]);
    assert!(took < Duration::from_secs(30), "took {took:?}");
}

/// A registry that trickles a byte at a time fails the scan by the
/// minimum-progress rule, though every read gets a byte in time.
#[test]
fn trickling_registry_fails_the_scan() {
    let (out, took) = scan_slow_layer(Duration::from_millis(200));
    assert_error(&out, &["layer", "stalled transfer"]);
    assert!(took < Duration::from_secs(30), "took {took:?}");
}
