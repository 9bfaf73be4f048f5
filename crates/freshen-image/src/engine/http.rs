//! A small blocking HTTP/1.1 client for the Docker Engine API: one request
//! per connection (`Connection: close`) over a unix socket or plain TCP.
//! Request bodies are sent with a known `Content-Length`; response bodies
//! stream through a [`Read`] (`Content-Length`, `chunked`, or up to the
//! end of the connection), so nothing is held in memory whole.

use std::io::{self, BufRead, BufReader, BufWriter, Read, Write};
use std::net::TcpStream;
use std::os::unix::net::UnixStream;
use std::path::PathBuf;

/// Longest response head (status line and headers) accepted.
const HEAD_LIMIT: usize = 64 << 10;
/// Longest chunk-size or trailer line accepted in a chunked body.
const LINE_LIMIT: usize = 4 << 10;

/// Where the Engine listens, parsed from `DOCKER_HOST` syntax.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Endpoint {
    /// `unix:///path/to/docker.sock`
    Unix(PathBuf),
    /// `tcp://host:port`: plain HTTP, no TLS.
    Tcp(String),
}

impl Endpoint {
    /// Parses `unix:///PATH` or `tcp://HOST[:PORT]` (port 2375 by default).
    pub fn parse(url: &str) -> Result<Endpoint, String> {
        let unsupported = || format!("unsupported Docker host `{url}` (use unix:///PATH or tcp://HOST:PORT; TLS and ssh:// are not supported)");
        if let Some(path) = url.strip_prefix("unix://") {
            if !path.starts_with('/') {
                return Err(unsupported());
            }
            return Ok(Endpoint::Unix(PathBuf::from(path)));
        }
        let addr = url.strip_prefix("tcp://").or_else(|| url.strip_prefix("http://")).ok_or_else(unsupported)?;
        let addr = addr.trim_end_matches('/');
        if addr.is_empty() || addr.contains('/') {
            return Err(unsupported());
        }
        let has_port = addr.rsplit_once(':').is_some_and(|(_, p)| !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()));
        Ok(Endpoint::Tcp(if has_port { addr.to_string() } else { format!("{addr}:2375") }))
    }

    /// Connects; a read or write that makes no progress for
    /// [`IDLE_TIMEOUT`] fails (a hung Engine), however long the whole
    /// exchange takes (a load answers once every layer is in).
    fn connect(&self) -> io::Result<Box<dyn Stream>> {
        Ok(match self {
            Endpoint::Unix(path) => {
                let s = UnixStream::connect(path)?;
                s.set_read_timeout(Some(IDLE_TIMEOUT))?;
                s.set_write_timeout(Some(IDLE_TIMEOUT))?;
                Box::new(s)
            }
            Endpoint::Tcp(addr) => {
                let s = TcpStream::connect(addr.as_str())?;
                s.set_read_timeout(Some(IDLE_TIMEOUT))?;
                s.set_write_timeout(Some(IDLE_TIMEOUT))?;
                Box::new(s)
            }
        })
    }

    /// The `Host` header: the Engine ignores it on a unix socket.
    fn host_header(&self) -> &str {
        match self {
            Endpoint::Unix(_) => "docker",
            Endpoint::Tcp(addr) => addr,
        }
    }
}

/// How long a read or write on the Engine's connection may stall.
const IDLE_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(600);

/// A connection to the Engine.
trait Stream: Read + Write + Send {}
impl Stream for UnixStream {}
impl Stream for TcpStream {}

/// A request body of known length.
pub(crate) struct Body<'a> {
    pub content_type: &'a str,
    pub len: u64,
    pub reader: &'a mut dyn Read,
}

/// A response: its status and its streamed body.
pub(crate) struct Response {
    pub status: u16,
    pub body: Box<dyn Read + Send>,
}

/// Why a request failed: reaching the Engine, or talking to it.
#[derive(Debug)]
pub(crate) enum Failure {
    Connect(io::Error),
    Exchange(io::Error),
}

/// Sends one request and reads the response head. `path` must already be
/// percent-encoded (see [`escape`]).
pub(crate) fn request(endpoint: &Endpoint, method: &str, path: &str, body: Option<Body>) -> Result<Response, Failure> {
    let stream = endpoint.connect().map_err(Failure::Connect)?;
    let mut reader = BufReader::new(stream);
    let sent = send(reader.get_mut().as_mut(), endpoint.host_header(), method, path, body);
    match sent {
        Ok(()) => read_response(reader, method).map_err(Failure::Exchange),
        // Our own body ended early: the Engine still waits for the rest.
        Err(SendError::Body(e)) => Err(Failure::Exchange(e)),
        // The Engine may have answered (an error) before reading it all.
        Err(SendError::Write(e)) => match read_response(reader, method) {
            Ok(r) if !(200..300).contains(&r.status) => Ok(r),
            _ => Err(Failure::Exchange(e)),
        },
    }
}

enum SendError {
    /// Reading the request body failed or it was shorter than declared.
    Body(io::Error),
    /// Writing to the connection failed.
    Write(io::Error),
}

fn send(stream: &mut dyn Stream, host: &str, method: &str, path: &str, body: Option<Body>) -> Result<(), SendError> {
    let mut w = BufWriter::with_capacity(64 << 10, stream);
    let mut head = format!("{method} {path} HTTP/1.1\r\nHost: {host}\r\nUser-Agent: freshen\r\nConnection: close\r\n");
    if let Some(b) = &body {
        head.push_str(&format!("Content-Type: {}\r\nContent-Length: {}\r\n", b.content_type, b.len));
    }
    head.push_str("\r\n");
    w.write_all(head.as_bytes()).map_err(SendError::Write)?;
    if let Some(b) = body {
        copy_exact(b.reader, &mut w, b.len)?;
    }
    w.flush().map_err(SendError::Write)
}

/// Copies exactly `len` bytes, telling reader failures from writer ones.
fn copy_exact(r: &mut dyn Read, w: &mut dyn Write, len: u64) -> Result<(), SendError> {
    let mut buf = vec![0u8; 64 << 10];
    let mut left = len;
    while left > 0 {
        let want = buf.len().min(usize::try_from(left).unwrap_or(usize::MAX));
        let n = match r.read(&mut buf[..want]) {
            Ok(0) => return Err(SendError::Body(io::Error::new(io::ErrorKind::UnexpectedEof, format!("request body ended {left} bytes early")))),
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(SendError::Body(e)),
        };
        w.write_all(&buf[..n]).map_err(SendError::Write)?;
        left -= n as u64;
    }
    Ok(())
}

/// Reads the response head and frames the body that follows it.
fn read_response<R: BufRead + Send + 'static>(mut r: R, method: &str) -> io::Result<Response> {
    loop {
        let head = read_head(&mut r)?;
        let mut headers = [httparse::EMPTY_HEADER; 64];
        let mut parsed = httparse::Response::new(&mut headers);
        match parsed.parse(&head) {
            Ok(httparse::Status::Complete(_)) => {}
            Ok(httparse::Status::Partial) => return Err(invalid("incomplete response head")),
            Err(e) => return Err(invalid(&format!("malformed response head: {e}"))),
        }
        let status = parsed.code.unwrap_or(0);
        if (100..200).contains(&status) {
            continue; // 100 Continue and friends precede the real response
        }
        let header = |name: &str| {
            parsed.headers.iter().find(|h| h.name.eq_ignore_ascii_case(name)).map(|h| String::from_utf8_lossy(h.value).trim().to_ascii_lowercase())
        };
        let body: Box<dyn Read + Send> = if method == "HEAD" || status == 204 || status == 304 {
            Box::new(io::empty())
        } else if header("transfer-encoding").is_some_and(|v| v.split(',').any(|t| t.trim() == "chunked")) {
            Box::new(ChunkedReader::new(r))
        } else if let Some(len) = header("content-length") {
            let len = len.parse::<u64>().map_err(|_| invalid(&format!("bad Content-Length `{len}`")))?;
            Box::new(ExactReader { inner: r.take(len) })
        } else {
            Box::new(r)
        };
        return Ok(Response { status, body });
    }
}

/// The bytes up to and including the empty line that ends a head.
fn read_head(r: &mut dyn BufRead) -> io::Result<Vec<u8>> {
    let mut head = Vec::new();
    loop {
        let line = read_line(r, HEAD_LIMIT.saturating_sub(head.len()).max(1))?;
        head.extend_from_slice(&line);
        if line == b"\r\n" || line == b"\n" {
            return Ok(head);
        }
    }
}

/// Reads one line (with its `\n`) of at most `limit` bytes.
pub(crate) fn read_line(r: &mut dyn BufRead, limit: usize) -> io::Result<Vec<u8>> {
    let mut line = Vec::new();
    r.take(limit as u64).read_until(b'\n', &mut line)?;
    match line.last() {
        Some(b'\n') => Ok(line),
        None => Err(io::Error::new(io::ErrorKind::UnexpectedEof, "connection closed before the end of a line")),
        Some(_) if line.len() >= limit => Err(invalid(&format!("line longer than {limit} bytes"))),
        Some(_) => Err(io::Error::new(io::ErrorKind::UnexpectedEof, "connection closed in the middle of a line")),
    }
}

fn invalid(msg: &str) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, format!("bad HTTP response from the Docker Engine: {msg}"))
}

/// A `Content-Length` body: ending before the declared length is an error.
struct ExactReader<R> {
    inner: io::Take<R>,
}

impl<R: Read> Read for ExactReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        if n == 0 && !buf.is_empty() && self.inner.limit() > 0 {
            return Err(io::Error::new(io::ErrorKind::UnexpectedEof, format!("response body ended {} bytes early", self.inner.limit())));
        }
        Ok(n)
    }
}

/// Decodes a `Transfer-Encoding: chunked` body; extensions and trailers
/// are skipped. A body cut short is an `UnexpectedEof` error.
pub(crate) struct ChunkedReader<R> {
    inner: R,
    /// Bytes left in the current chunk.
    left: u64,
    /// A chunk's data has been read; its CRLF has not.
    after_data: bool,
    done: bool,
}

impl<R: BufRead> ChunkedReader<R> {
    pub fn new(inner: R) -> ChunkedReader<R> {
        ChunkedReader { inner, left: 0, after_data: false, done: false }
    }

    /// Reads the next chunk-size line; at the last chunk, the trailers.
    fn next_chunk(&mut self) -> io::Result<()> {
        if self.after_data {
            let crlf = read_line(&mut self.inner, LINE_LIMIT)?;
            if crlf != b"\r\n" && crlf != b"\n" {
                return Err(invalid("chunk data longer than its size"));
            }
            self.after_data = false;
        }
        let line = read_line(&mut self.inner, LINE_LIMIT)?;
        let text = String::from_utf8_lossy(&line);
        let size = text.split(';').next().unwrap_or("").trim();
        self.left = u64::from_str_radix(size, 16).map_err(|_| invalid(&format!("bad chunk size `{size}`")))?;
        if self.left == 0 {
            while !matches!(read_line(&mut self.inner, LINE_LIMIT)?.as_slice(), b"\r\n" | b"\n") {}
            self.done = true;
        }
        Ok(())
    }
}

impl<R: BufRead> Read for ChunkedReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if buf.is_empty() {
            return Ok(0);
        }
        if self.left == 0 && !self.done {
            self.next_chunk()?;
        }
        if self.done {
            return Ok(0);
        }
        let want = buf.len().min(usize::try_from(self.left).unwrap_or(usize::MAX));
        let n = self.inner.read(&mut buf[..want])?;
        if n == 0 {
            return Err(io::Error::new(io::ErrorKind::UnexpectedEof, "chunked response body ended early"));
        }
        self.left -= n as u64;
        self.after_data = self.left == 0;
        Ok(n)
    }
}

/// Percent-encodes all but unreserved characters and `/:@`, for a path
/// segment or query value holding an image name.
pub(crate) fn escape(s: &str) -> String {
    crate::text::percent_encode(s, b"/:@")
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::net::UnixListener;

    /// Hands out at most `step` bytes per read, to split every token.
    struct Trickle<'a> {
        data: &'a [u8],
        step: usize,
    }

    impl Read for Trickle<'_> {
        fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
            let n = buf.len().min(self.step).min(self.data.len());
            buf[..n].copy_from_slice(&self.data[..n]);
            self.data = &self.data[n..];
            Ok(n)
        }
    }

    fn read_with(r: &mut dyn Read, buf_len: usize) -> io::Result<Vec<u8>> {
        let mut out = Vec::new();
        let mut buf = vec![0u8; buf_len];
        loop {
            match r.read(&mut buf)? {
                0 => return Ok(out),
                n => out.extend_from_slice(&buf[..n]),
            }
        }
    }

    const CHUNKED: &[u8] = b"4\r\nWiki\r\n5;ext=1\r\npedia\r\nE\r\n in\r\n\r\nchunks.\r\n0\r\nTrailer: x\r\n\r\nNEXT";

    #[test]
    fn chunked_decodes_across_split_reads() {
        for step in [1, 2, 3, 7, 1000] {
            for buf_len in [1, 3, 64] {
                let inner = BufReader::with_capacity(step, Trickle { data: CHUNKED, step });
                let mut r = ChunkedReader::new(inner);
                assert_eq!(read_with(&mut r, buf_len).unwrap(), b"Wikipedia in\r\n\r\nchunks.", "step {step} buf {buf_len}");
                // The reader stops after the trailers, leaving what follows.
                let mut rest = Vec::new();
                r.inner.read_to_end(&mut rest).unwrap();
                assert_eq!(rest, b"NEXT");
            }
        }
    }

    #[test]
    fn chunked_refuses_truncated_and_malformed_bodies() {
        for bad in [&b"4\r\nWik"[..], b"4\r\nWiki\r\n", b"zz\r\nWiki\r\n0\r\n\r\n", b"2\r\nWiki\r\n0\r\n\r\n", b"4\r\nWiki\r\n0\r\n"] {
            let mut r = ChunkedReader::new(BufReader::with_capacity(1, Trickle { data: bad, step: 1 }));
            assert!(read_with(&mut r, 16).is_err(), "{:?}", String::from_utf8_lossy(bad));
        }
    }

    #[test]
    fn frames_responses() {
        let parse = |raw: &'static [u8]| {
            let r = BufReader::with_capacity(2, Trickle { data: raw, step: 2 });
            let mut resp = read_response(r, "GET").unwrap();
            (resp.status, read_with(&mut resp.body, 5))
        };
        let (s, b) = parse(b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhelloEXTRA");
        assert_eq!((s, b.unwrap()), (200, b"hello".to_vec()));
        let (s, b) = parse(b"HTTP/1.1 404 Not Found\r\nTransfer-Encoding: chunked\r\n\r\n3\r\n{}\n\r\n0\r\n\r\n");
        assert_eq!((s, b.unwrap()), (404, b"{}\n".to_vec()));
        let (s, b) = parse(b"HTTP/1.0 200 OK\r\n\r\nto the end");
        assert_eq!((s, b.unwrap()), (200, b"to the end".to_vec()));
        let (_, b) = parse(b"HTTP/1.1 200 OK\r\nContent-Length: 9\r\n\r\nshort");
        assert_eq!(b.unwrap_err().kind(), io::ErrorKind::UnexpectedEof);
        for bad in [&b"garbage\r\n\r\n"[..], b"HTTP/1.1 200 OK\r\nContent-Length: x\r\n\r\n", b"HTTP/1.1 200 OK\r\n"] {
            assert!(read_response(BufReader::new(bad), "GET").is_err(), "{:?}", String::from_utf8_lossy(bad));
        }
    }

    #[test]
    fn parses_hosts() {
        assert_eq!(Endpoint::parse("unix:///run/docker.sock"), Ok(Endpoint::Unix("/run/docker.sock".into())));
        assert_eq!(Endpoint::parse("tcp://127.0.0.1:2376"), Ok(Endpoint::Tcp("127.0.0.1:2376".into())));
        assert_eq!(Endpoint::parse("tcp://docker/"), Ok(Endpoint::Tcp("docker:2375".into())));
        for bad in ["ssh://me@host", "unix://relative.sock", "tcp://", "npipe:////./pipe/docker", "/var/run/docker.sock"] {
            assert!(Endpoint::parse(bad).unwrap_err().contains(bad), "{bad}");
        }
    }

    #[test]
    fn escapes_names() {
        assert_eq!(escape("localhost:5000/app:1.2"), "localhost:5000/app:1.2");
        assert_eq!(escape("a b&c=d?#%"), "a%20b%26c%3Dd%3F%23%25");
    }

    /// A full exchange over a unix socket: the body arrives with its
    /// length, the chunked answer is decoded.
    #[test]
    fn round_trip_over_a_unix_socket() {
        let dir = std::env::temp_dir().join(format!("freshen-http-test-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let sock = dir.join("s.sock");
        let listener = UnixListener::bind(&sock).unwrap();
        let server = std::thread::spawn(move || {
            let (conn, _) = listener.accept().unwrap();
            let mut r = BufReader::new(conn.try_clone().unwrap());
            let head = String::from_utf8(read_head(&mut r).unwrap()).unwrap();
            let mut body = vec![0u8; 11];
            r.read_exact(&mut body).unwrap();
            let mut w = conn;
            w.write_all(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nok\r\n0\r\n\r\n").unwrap();
            (head, body)
        });
        let mut data: &[u8] = b"hello world";
        let body = Body { content_type: "application/x-tar", len: 11, reader: &mut data };
        let mut resp = request(&Endpoint::Unix(sock), "POST", "/images/load?quiet=1", Some(body)).unwrap();
        assert_eq!(resp.status, 200);
        assert_eq!(read_with(&mut resp.body, 8).unwrap(), b"ok");
        let (head, body) = server.join().unwrap();
        assert!(head.starts_with("POST /images/load?quiet=1 HTTP/1.1\r\n"), "{head}");
        assert!(head.contains("Content-Length: 11\r\n") && head.contains("Content-Type: application/x-tar\r\n"), "{head}");
        assert_eq!(body, b"hello world");
        let _ = std::fs::remove_dir_all(&dir);
    }
}
