//! Content digests and a reader that checks one while the bytes stream past.

use std::fmt;
use std::io::{self, Read};

use sha2::{Digest as _, Sha256};

/// A `sha256:<64 hex>` content digest. Other algorithms are refused: they
/// are not used by any registry or tool freshen talks to.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Digest {
    hex: String,
}

impl Digest {
    /// Parses `sha256:<hex>`, refusing anything that could be used as a path trick.
    pub fn parse(s: &str) -> Result<Digest, String> {
        let hex = s
            .strip_prefix("sha256:")
            .ok_or_else(|| format!("unsupported digest `{s}` (only sha256 is supported)"))?;
        if hex.len() != 64 || !hex.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b)) {
            return Err(format!("malformed digest `{s}`"));
        }
        Ok(Digest { hex: hex.to_string() })
    }

    /// A short form for progress labels: `sha256:0123456789ab`.
    pub fn short(&self) -> String {
        format!("sha256:{}", &self.hex[..12])
    }

    /// The digest of `data`.
    pub fn of(data: &[u8]) -> Digest {
        Digest::from_hasher(Sha256::new_with_prefix(data))
    }

    /// The digest a finished SHA-256 hasher holds.
    pub fn from_sha256(h: Sha256) -> Digest {
        Digest::from_hasher(h)
    }

    pub(crate) fn from_hasher(h: Sha256) -> Digest {
        Digest { hex: freshen_fs::hex(&h.finalize()) }
    }

    /// The 64 hexadecimal digits.
    pub fn hex(&self) -> &str {
        &self.hex
    }
}

impl fmt::Display for Digest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "sha256:{}", self.hex)
    }
}

/// Wraps a reader, hashing and counting what passes. When the inner reader
/// ends, the size and digest are compared with the expected ones and a
/// mismatch is returned as an `InvalidData` error, so no consumer can see a
/// clean end of a corrupt blob. Reading past the expected size fails at once.
pub struct VerifyingReader<R> {
    inner: R,
    hasher: Sha256,
    read: u64,
    expected_size: Option<u64>,
    expected: Digest,
    done: bool,
}

impl<R: Read> VerifyingReader<R> {
    pub fn new(inner: R, expected: Digest, expected_size: Option<u64>) -> Self {
        VerifyingReader { inner, hasher: Sha256::new(), read: 0, expected_size, expected, done: false }
    }

    /// Reads and checks whatever is left.
    pub fn finish(mut self) -> io::Result<()> {
        io::copy(&mut self, &mut io::sink()).map(|_| ())
    }
}

impl<R: Read> Read for VerifyingReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if self.done {
            return Ok(0);
        }
        let n = self.inner.read(buf)?;
        if n == 0 {
            self.done = true;
            if let Some(size) = self.expected_size {
                if size != self.read {
                    return Err(invalid(format!("size is {} bytes, expected {size} (truncated blob)", self.read)));
                }
            }
            let got = Digest::from_hasher(std::mem::take(&mut self.hasher));
            if got != self.expected {
                return Err(invalid(format!("digest mismatch: content hashes to {got}")));
            }
            return Ok(0);
        }
        self.read += n as u64;
        if let Some(size) = self.expected_size {
            if self.read > size {
                self.done = true;
                return Err(invalid(format!("blob is larger than its declared size of {size} bytes")));
            }
        }
        self.hasher.update(&buf[..n]);
        Ok(n)
    }
}

/// Wraps a writer, hashing and counting what passes.
pub struct HashingWriter<W> {
    inner: W,
    hasher: Sha256,
    count: u64,
}

impl<W: io::Write> HashingWriter<W> {
    pub fn new(inner: W) -> Self {
        HashingWriter { inner, hasher: Sha256::new(), count: 0 }
    }

    /// The inner writer, the digest of what was written and its length.
    pub fn finish(self) -> (W, Digest, u64) {
        (self.inner, Digest::from_hasher(self.hasher), self.count)
    }
}

impl<W: io::Write> io::Write for HashingWriter<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.hasher.update(&buf[..n]);
        self.count += n as u64;
        Ok(n)
    }
    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

/// Wraps a reader, hashing what passes through it.
pub struct HashingReader<R> {
    inner: R,
    hasher: Sha256,
}

impl<R: Read> HashingReader<R> {
    pub fn new(inner: R) -> Self {
        HashingReader { inner, hasher: Sha256::new() }
    }

    /// The digest of what was read so far.
    pub fn digest(self) -> Digest {
        Digest::from_hasher(self.hasher)
    }
}

impl<R: Read> Read for HashingReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.hasher.update(&buf[..n]);
        Ok(n)
    }
}

fn invalid(msg: String) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, msg)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn verifies_and_rejects() {
        let d = Digest::of(b"hello");
        let mut ok = VerifyingReader::new(&b"hello"[..], d.clone(), Some(5));
        io::copy(&mut ok, &mut io::sink()).unwrap();
        let mut bad = VerifyingReader::new(&b"hellp"[..], d.clone(), Some(5));
        assert!(io::copy(&mut bad, &mut io::sink()).unwrap_err().to_string().contains("digest mismatch"));
        let mut short = VerifyingReader::new(&b"hell"[..], d.clone(), Some(5));
        assert!(io::copy(&mut short, &mut io::sink()).unwrap_err().to_string().contains("truncated"));
        let mut long = VerifyingReader::new(&b"hello!"[..], d, Some(5));
        assert!(io::copy(&mut long, &mut io::sink()).unwrap_err().to_string().contains("larger"));
        assert!(Digest::parse("sha256:../../etc").is_err());
        assert!(Digest::parse("md5:abc").is_err());
    }
}
