//! Debian changelogs, read from inside a `.deb` (an `ar` archive holding
//! `data.tar.{xz,zst,gz}`), and the CVE ids and dates of their entries.

use std::io::{self, Read};

use chrono::{DateTime, Utc};

use crate::release::parse_date;
use crate::version::{self, Version};

/// One changelog entry.
#[derive(Clone, Debug)]
pub struct Entry {
    pub version: Version,
    pub date: Option<DateTime<Utc>>,
    pub cves: Vec<String>,
}

/// Finds `usr/share/doc/*/changelog.Debian.gz` (else `changelog.gz`) in a
/// `.deb` and returns it decompressed, or `None` when the package has none.
pub fn changelog_from_deb(deb: impl Read, package: &str) -> io::Result<Option<String>> {
    let mut ar = ArReader::new(deb)?;
    while let Some((name, size)) = ar.next_member()? {
        let member = (&mut ar.inner).take(size);
        if !name.starts_with("data.tar") {
            io::copy(&mut { member }, &mut io::sink())?;
            ar.skip_padding(size)?;
            continue;
        }
        let r: Box<dyn Read> = match name.as_str() {
            "data.tar.xz" => Box::new(liblzma::read::XzDecoder::new(member)),
            "data.tar.zst" => Box::new(zstd::stream::read::Decoder::new(member)?),
            "data.tar.gz" => Box::new(flate2::read::GzDecoder::new(member)),
            "data.tar" => Box::new(member),
            other => return Err(io::Error::new(io::ErrorKind::InvalidData, format!("unsupported member {other}"))),
        };
        return find_changelog(r, package);
    }
    Ok(None)
}

fn find_changelog(r: impl Read, package: &str) -> io::Result<Option<String>> {
    let mut archive = tar::Archive::new(r);
    let own = format!("usr/share/doc/{package}/changelog.Debian.gz");
    let mut fallback: Option<Vec<u8>> = None;
    for entry in archive.entries()? {
        let mut entry = entry?;
        if entry.header().entry_type() != tar::EntryType::Regular {
            continue;
        }
        let path = entry.path()?.to_string_lossy().trim_start_matches("./").to_string();
        let is_doc = path.starts_with("usr/share/doc/") && path.matches('/').count() == 4;
        let debian = path.ends_with("/changelog.Debian.gz");
        if !(is_doc && (debian || path.ends_with("/changelog.gz"))) || entry.size() > (64 << 20) {
            continue;
        }
        let mut gz = Vec::new();
        entry.read_to_end(&mut gz)?;
        if path == own || debian {
            return gunzip(&gz).map(Some);
        }
        fallback.get_or_insert(gz);
    }
    fallback.map(|gz| gunzip(&gz)).transpose()
}

fn gunzip(gz: &[u8]) -> io::Result<String> {
    let mut s = Vec::new();
    flate2::read::MultiGzDecoder::new(gz).take(256 << 20).read_to_end(&mut s)?;
    Ok(String::from_utf8_lossy(&s).into_owned())
}

struct ArReader<R> {
    inner: R,
}

impl<R: Read> ArReader<R> {
    fn new(mut inner: R) -> io::Result<Self> {
        let mut magic = [0u8; 8];
        inner.read_exact(&mut magic)?;
        if &magic != b"!<arch>\n" {
            return Err(io::Error::new(io::ErrorKind::InvalidData, "not a .deb (ar) archive"));
        }
        Ok(ArReader { inner })
    }

    fn next_member(&mut self) -> io::Result<Option<(String, u64)>> {
        let mut h = [0u8; 60];
        match self.inner.read_exact(&mut h) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => return Ok(None),
            Err(e) => return Err(e),
        }
        let name = String::from_utf8_lossy(&h[0..16]).trim().trim_end_matches('/').to_string();
        let size: u64 = String::from_utf8_lossy(&h[48..58])
            .trim()
            .parse()
            .map_err(|_| io::Error::new(io::ErrorKind::InvalidData, "corrupt ar member header"))?;
        Ok(Some((name, size)))
    }

    fn skip_padding(&mut self, size: u64) -> io::Result<()> {
        if size % 2 == 1 {
            let mut b = [0u8; 1];
            let _ = self.inner.read(&mut b)?;
        }
        Ok(())
    }
}

/// Collects `CVE-YYYY-NNNN...` ids in text order, without duplicates.
pub fn find_cves(text: &str) -> Vec<String> {
    let b = text.as_bytes();
    let mut out: Vec<String> = Vec::new();
    let mut i = 0;
    while let Some(pos) = text[i..].find("CVE-") {
        let s = i + pos;
        let mut j = s + 4;
        let year_end = j + 4;
        if year_end < b.len() && b[j..year_end].iter().all(u8::is_ascii_digit) && b[year_end] == b'-' {
            j = year_end + 1;
            let start_num = j;
            while j < b.len() && b[j].is_ascii_digit() {
                j += 1;
            }
            if j - start_num >= 4 {
                let id = text[s..j].to_string();
                if !out.contains(&id) {
                    out.push(id);
                }
            }
        }
        i = s + 4;
    }
    out
}

/// Parses the entries of a Debian changelog, newest first.
pub fn parse_changelog(text: &str) -> Vec<Entry> {
    let mut out: Vec<Entry> = Vec::new();
    let mut body = String::new();
    for line in text.lines() {
        if !line.starts_with(' ') && !line.starts_with('\t') && line.contains('(') && line.contains(')') && line.contains(';') {
            let v = line.split_once('(').and_then(|(_, r)| r.split_once(')')).map(|(v, _)| v);
            if let Some(Ok(version)) = v.map(version::parse) {
                if let Some(last) = out.last_mut() {
                    last.cves = find_cves(&body);
                }
                body.clear();
                out.push(Entry { version, date: None, cves: Vec::new() });
                continue;
            }
        }
        if let Some(trailer) = line.strip_prefix(" -- ") {
            if let Some(last) = out.last_mut() {
                if let Some((_, date)) = trailer.rsplit_once(">  ").or_else(|| trailer.rsplit_once("> ")) {
                    last.date = parse_date(date);
                }
            }
            continue;
        }
        body.push_str(line);
        body.push('\n');
    }
    if let Some(last) = out.last_mut() {
        last.cves = find_cves(&body);
    }
    out
}

/// What the entries newer than `installed` say: their CVE ids and the date
/// of the oldest of them (when the first of the fixes was published).
pub fn fixes_since(entries: &[Entry], installed: &Version) -> (Vec<String>, Option<DateTime<Utc>>) {
    let mut cves: Vec<String> = Vec::new();
    let mut oldest = None;
    for e in entries.iter().filter(|e| &e.version > installed) {
        for c in &e.cves {
            if !cves.contains(c) {
                cves.push(c.clone());
            }
        }
        if let Some(d) = e.date {
            oldest = Some(oldest.map_or(d, |o: DateTime<Utc>| o.min(d)));
        }
    }
    cves.sort();
    (cves, oldest)
}

#[cfg(test)]
mod tests {
    use super::*;

    const CL: &str = "openssl (3.0.15-1~deb12u1) bookworm-security; urgency=medium\n\n  * Fix CVE-2024-5535 and CVE-2024-9143.\n  * Also CVE-2024-5535 again.\n\n -- Sebastian Andrzej Siewior <sebastian@breakpoint.cc>  Sat, 26 Oct 2024 11:21:46 +0200\n\nopenssl (3.0.14-1~deb12u2) bookworm; urgency=medium\n\n  * CVE-2024-4741\n\n -- X <x@y>  Mon, 12 Aug 2024 10:00:00 +0000\n\nopenssl (3.0.11-1~deb12u2) bookworm-security; urgency=medium\n\n  * CVE-2023-5678\n\n -- X <x@y>  Mon, 06 Nov 2023 10:00:00 +0000\n";

    #[test]
    fn parses_entries() {
        let e = parse_changelog(CL);
        assert_eq!(e.len(), 3);
        assert_eq!(e[0].cves, vec!["CVE-2024-5535", "CVE-2024-9143"]);
        let (cves, date) = fixes_since(&e, &version::parse("3.0.11-1~deb12u2").unwrap());
        assert_eq!(cves, vec!["CVE-2024-4741", "CVE-2024-5535", "CVE-2024-9143"]);
        assert_eq!(date.unwrap().format("%Y-%m-%d").to_string(), "2024-08-12");
        assert!(find_cves("CVE-2024-1 CVE-20x CVE-").is_empty());
    }
}
