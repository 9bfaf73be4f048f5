//! A GET sent to a forward proxy in absolute-URI form (`GET http://host/path
//! HTTP/1.1`), which ureq does not do: it only tunnels with `CONNECT`, which
//! caching proxies (squid's default rules, apt-cacher-ng) refuse for port 80.

use std::io::{self, BufRead, BufReader, Read, Write};
use std::net::{TcpStream, ToSocketAddrs};
use std::time::Duration;

use ureq::http::{self, HeaderMap, Response, Uri};

use crate::proxy::ProxyUrl;

/// Sends a GET or HEAD for `target` (a plain `http://` URL) to `proxy`.
pub(crate) fn send(proxy: &ProxyUrl, method: &http::Method, target: &Uri, headers: &HeaderMap, connect: Duration, response: Duration) -> Result<Response<ureq::Body>, ureq::Error> {
    let mut headers = headers.clone();
    crate::proxy::forward_headers(&mut headers, target, proxy)?;
    let addr = proxy.host_port();
    let addrs: Vec<_> = addr.to_socket_addrs().map_err(|_| ureq::Error::HostNotFound)?.collect();
    let mut last = io::Error::new(io::ErrorKind::NotFound, "no address");
    let mut stream = None;
    for a in addrs {
        match TcpStream::connect_timeout(&a, connect) {
            Ok(s) => {
                stream = Some(s);
                break;
            }
            Err(e) => last = e,
        }
    }
    let mut stream = stream.ok_or(ureq::Error::Io(last))?;
    stream.set_read_timeout(Some(response))?;
    stream.set_write_timeout(Some(response))?;
    let mut head = format!("{method} {} HTTP/1.1\r\n", crate::proxy::strip_userinfo(&target.to_string()));
    for (k, v) in &headers {
        head.push_str(&format!("{k}: {}\r\n", v.to_str().unwrap_or("")));
    }
    head.push_str(concat!("User-Agent: freshen/", env!("CARGO_PKG_VERSION"), "\r\nConnection: close\r\n\r\n"));
    stream.write_all(head.as_bytes())?;
    let mut reader = BufReader::new(stream);
    let mut raw = Vec::new();
    loop {
        let n = reader.read_until(b'\n', &mut raw)?;
        if n == 0 {
            return Err(ureq::Error::Io(io::Error::new(io::ErrorKind::UnexpectedEof, "the proxy closed the connection")));
        }
        if raw.ends_with(b"\r\n\r\n") || raw.ends_with(b"\n\n") {
            break;
        }
        if raw.len() > 64 << 10 {
            return Err(ureq::Error::Io(io::Error::new(io::ErrorKind::InvalidData, "response head too large")));
        }
    }
    let mut headers = [httparse::EMPTY_HEADER; 64];
    let mut parsed = httparse::Response::new(&mut headers);
    parsed.parse(&raw).map_err(|e| ureq::Error::Io(io::Error::new(io::ErrorKind::InvalidData, e.to_string())))?;
    let mut resp = Response::builder().status(parsed.code.unwrap_or(502));
    let (mut length, mut chunked) = (None, false);
    for h in parsed.headers.iter() {
        if h.name.eq_ignore_ascii_case("content-length") {
            length = std::str::from_utf8(h.value).ok().and_then(|v| v.trim().parse::<u64>().ok());
        }
        if h.name.eq_ignore_ascii_case("transfer-encoding") && String::from_utf8_lossy(h.value).to_ascii_lowercase().contains("chunked") {
            chunked = true;
        }
        resp = resp.header(h.name, h.value);
    }
    let no_body = *method == http::Method::HEAD || matches!(parsed.code, Some(204 | 304));
    let body: Box<dyn Read + Send + Sync> = if no_body {
        Box::new(io::empty())
    } else if chunked {
        Box::new(Chunked { inner: reader, left: 0, done: false })
    } else if let Some(n) = length {
        Box::new(reader.take(n))
    } else {
        Box::new(reader)
    };
    resp.body(ureq::Body::builder().reader(body)).map_err(ureq::Error::from)
}

/// Decodes `Transfer-Encoding: chunked`.
struct Chunked<R> {
    inner: R,
    left: u64,
    done: bool,
}

impl<R: BufRead> Read for Chunked<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if self.done || buf.is_empty() {
            return Ok(0);
        }
        if self.left == 0 {
            let mut line = String::new();
            self.inner.read_line(&mut line)?;
            if line.trim().is_empty() {
                // The CRLF after the previous chunk.
                line.clear();
                self.inner.read_line(&mut line)?;
            }
            let size = line.trim().split(';').next().unwrap_or("");
            self.left = u64::from_str_radix(size, 16).map_err(|_| io::Error::new(io::ErrorKind::InvalidData, format!("bad chunk size `{}`", line.trim())))?;
            if self.left == 0 {
                self.done = true;
                return Ok(0);
            }
        }
        let max = buf.len().min(self.left as usize);
        let n = self.inner.read(&mut buf[..max])?;
        if n == 0 {
            return Err(io::Error::new(io::ErrorKind::UnexpectedEof, "chunked body cut short"));
        }
        self.left -= n as u64;
        Ok(n)
    }
}
