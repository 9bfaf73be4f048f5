//! A bound on tar extension headers. The tar crate reads a GNU long name
//! or long link (`L`, `K`) and a PAX header (`x`, `g`) whole into memory,
//! whatever size its header claims: a 2 MB gzip blob can claim 2 GiB. This
//! reader follows the archive's structure as the tar crate will (header
//! blocks, entry sizes rounded to 512 bytes, a PAX `size` record for the
//! next entry, GNU sparse extension blocks) and fails as soon as an
//! extension header claims more than [`EXT_LIMIT`], before the tar crate
//! gets to it.

use std::io::{self, Read};

/// Largest extension header read (GNU tar's own cap on long names is of
/// the same order).
pub const EXT_LIMIT: u64 = 4 << 20;
const BLOCK: u64 = 512;

pub struct TarGuard<R> {
    inner: R,
    /// Bytes of entry data (padded) before the next header.
    skip: u64,
    header: [u8; 512],
    fill: usize,
    /// The body of a local PAX header being read, and what is left of it.
    pax: Option<(Vec<u8>, u64)>,
    /// The `size` a local PAX header set for the next entry.
    pax_size: Option<u64>,
    /// The data size of a GNU sparse entry whose extension blocks follow.
    sparse: Option<u64>,
}

impl<R> TarGuard<R> {
    pub fn new(inner: R) -> TarGuard<R> {
        TarGuard { inner, skip: 0, header: [0; 512], fill: 0, pax: None, pax_size: None, sparse: None }
    }
}

fn padded(size: u64) -> u64 {
    size.saturating_add(BLOCK - 1) & !(BLOCK - 1)
}

/// A numeric header field: octal text, or base-256 when the top bit is set.
fn number(field: &[u8]) -> Option<u64> {
    if field[0] & 0x80 != 0 {
        let mut n: u64 = u64::from(field[0] & 0x7f);
        for b in &field[1..] {
            n = n.checked_mul(256)?.checked_add(u64::from(*b))?;
        }
        return Some(n);
    }
    let text = std::str::from_utf8(field).ok()?.trim_matches(|c: char| c == '\0' || c == ' ');
    if text.is_empty() {
        return Some(0);
    }
    u64::from_str_radix(text, 8).ok()
}

/// The `size` record of a PAX body, read as the tar crate reads it (the
/// first `size` record; none when a record is malformed).
fn pax_size(body: &[u8]) -> Option<u64> {
    for ext in tar::PaxExtensions::new(body) {
        let ext = ext.ok()?;
        if ext.key() == Ok("size") {
            return ext.value().ok()?.parse().ok();
        }
    }
    None
}

impl<R> TarGuard<R> {
    /// Takes in `data` (bytes the tar crate is about to get).
    fn follow(&mut self, mut data: &[u8]) -> io::Result<()> {
        while !data.is_empty() {
            if let Some((body, left)) = &mut self.pax {
                let n = (*left).min(data.len() as u64) as usize;
                body.extend_from_slice(&data[..n]);
                *left -= n as u64;
                data = &data[n..];
                if *left == 0 {
                    let size = body.len() as u64;
                    self.pax_size = pax_size(body);
                    self.pax = None;
                    self.skip = padded(size) - size;
                }
                continue;
            }
            if self.skip > 0 {
                let n = self.skip.min(data.len() as u64) as usize;
                self.skip -= n as u64;
                data = &data[n..];
                continue;
            }
            let n = (512 - self.fill).min(data.len());
            self.header[self.fill..self.fill + n].copy_from_slice(&data[..n]);
            self.fill += n;
            data = &data[n..];
            if self.fill == 512 {
                self.fill = 0;
                self.header_done()?;
            }
        }
        Ok(())
    }

    fn header_done(&mut self) -> io::Result<()> {
        let h = &self.header;
        if let Some(size) = self.sparse {
            // A GNU sparse extension block: another follows while byte 504 says so.
            if h[504] == 0 {
                self.sparse = None;
                self.skip = padded(size);
            }
            return Ok(());
        }
        if h.iter().all(|b| *b == 0) {
            return Ok(());
        }
        let size = number(&h[124..136]).unwrap_or(0);
        match h[156] {
            kind @ (b'L' | b'K' | b'x' | b'g') => {
                if size > EXT_LIMIT {
                    let what = match kind {
                        b'L' => "GNU long name",
                        b'K' => "GNU long link name",
                        _ => "PAX header",
                    };
                    return Err(io::Error::new(io::ErrorKind::InvalidData, format!("a tar {what} of {size} bytes (more than {} MiB)", EXT_LIMIT >> 20)));
                }
                if kind == b'x' && size > 0 {
                    self.pax = Some((Vec::with_capacity(size as usize), size));
                } else {
                    self.skip = padded(size);
                }
            }
            kind => {
                let size = self.pax_size.take().unwrap_or(size);
                if kind == b'S' && h[482] != 0 {
                    self.sparse = Some(size);
                } else {
                    self.skip = padded(size);
                }
            }
        }
        Ok(())
    }
}

impl<R: Read> Read for TarGuard<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.follow(&buf[..n])?;
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(b: &mut tar::Builder<Vec<u8>>, path: &str, data: &[u8]) {
        let mut h = tar::Header::new_gnu();
        h.set_size(data.len() as u64);
        h.set_mode(0o644);
        h.set_entry_type(tar::EntryType::Regular);
        b.append_data(&mut h, path, data).unwrap();
    }

    fn walk(bytes: &[u8]) -> io::Result<Vec<String>> {
        let mut a = tar::Archive::new(TarGuard::new(bytes));
        let mut names = Vec::new();
        for e in a.entries()? {
            let mut e = e?;
            names.push(e.path()?.to_string_lossy().into_owned());
            io::copy(&mut e, &mut io::sink())?;
        }
        Ok(names)
    }

    #[test]
    fn real_archives_pass() {
        let mut b = tar::Builder::new(Vec::new());
        let long = format!("{}/file", "d".repeat(300));
        entry(&mut b, "a", b"hello");
        entry(&mut b, &long, &vec![1u8; 70_000]);
        b.append_pax_extensions([("path", "pax/named".as_bytes()), ("SCHILY.xattr.user.x", b"y")]).unwrap();
        entry(&mut b, "ignored-name", b"x");
        entry(&mut b, "z", b"");
        let bytes = b.into_inner().unwrap();
        assert_eq!(walk(&bytes).unwrap(), ["a", long.as_str(), "pax/named", "z"]);
    }

    /// A huge GNU long-name header, as a block.
    fn huge_longname() -> [u8; 512] {
        let mut h = tar::Header::new_gnu();
        h.as_mut_bytes()[..13].copy_from_slice(b"././@LongLink");
        h.set_size(2 << 30);
        h.set_entry_type(tar::EntryType::new(b'L'));
        h.set_cksum();
        *h.as_bytes()
    }

    /// A PAX `size` record overrides the header's size for the next entry:
    /// its data (blocks that look like huge extension headers) is skipped.
    #[test]
    fn pax_size_is_followed() {
        let data = huge_longname().repeat(137);
        let mut b = tar::Builder::new(Vec::new());
        b.append_pax_extensions([("size", data.len().to_string().as_bytes())]).unwrap();
        let mut h = tar::Header::new_gnu();
        h.set_path("big").unwrap();
        h.set_size(0);
        h.set_entry_type(tar::EntryType::Regular);
        h.set_cksum();
        let mut bytes = b.into_inner().unwrap();
        bytes.truncate(bytes.len() - 1024); // the end-of-archive blocks
        bytes.extend_from_slice(h.as_bytes());
        bytes.extend(&data);
        let mut b = tar::Builder::new(Vec::new());
        entry(&mut b, &format!("{}/after", "n".repeat(200)), b"x");
        bytes.extend(b.into_inner().unwrap());
        let names = walk(&bytes).unwrap();
        assert_eq!(names.len(), 2, "{names:?}");
        assert!(names[1].ends_with("/after"));
    }

    #[test]
    fn huge_extension_headers_fail_before_being_read() {
        for kind in [b'L', b'x'] {
            let mut h = tar::Header::from_byte_slice(&huge_longname()).clone();
            h.set_entry_type(tar::EntryType::new(kind));
            h.set_cksum();
            let mut bytes = h.as_bytes().to_vec();
            bytes.extend(vec![b'a'; 1 << 20]);
            let err = walk(&bytes).unwrap_err();
            assert!(err.to_string().contains("more than 4 MiB"), "{err}");
        }
    }
}
