//! `Packages` indexes: fetched once per content hash, then streamed to pick
//! out only the stanzas of packages the image has installed.

use std::collections::HashSet;
use std::fs::{self, File};
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};

use crate::deb822::paragraphs;
use crate::error::{io_err, Error, Result};
use crate::fetch::{copy_hashed, tmp_path, Fetcher};
use crate::release::Release;
use crate::sources::SourceEntry;
use crate::version::{self, Version};

/// One version of a package offered by an archive.
#[derive(Clone, Debug)]
pub struct Available {
    pub package: String,
    pub arch: String,
    pub version: Version,
    pub source: String,
    pub source_version: Version,
    /// `Pre-Depends` and `Depends`, joined.
    pub depends: String,
    pub breaks: String,
    pub conflicts: String,
    pub provides: String,
    /// `Multi-Arch` (`same`, `foreign`, `allowed`).
    pub multi_arch: Option<String>,
    /// `Phased-Update-Percentage` (Ubuntu), 100 when absent.
    pub phased: u8,
    /// Path of the `.deb` below the source's URI.
    pub filename: String,
    pub sha256: String,
    pub size: u64,
    /// Index of the archive (source + Release) that offers it.
    pub archive: usize,
}

/// Fetches (or finds in the cache) the uncompressed `Packages` index of a
/// component and architecture, verified against the signed Release.
/// `Ok(None)` when the Release lists no such index.
pub fn fetch_index(fetcher: &Fetcher, source: &SourceEntry, release: &Release, component: &str, arch: &str) -> Result<Option<PathBuf>> {
    let base = if source.is_flat() {
        Some("Packages".to_string())
    } else {
        release.index_path(component, &format!("binary-{arch}/Packages"))
    };
    let Some(base) = base else { return Ok(None) };
    let plain = release.sha256.get(&base).cloned();
    let variants: Vec<(&str, (String, u64))> = [".xz", ".gz", ""]
        .iter()
        .filter_map(|ext| release.sha256.get(&format!("{base}{ext}")).map(|h| (*ext, h.clone())))
        .collect();
    let Some(cache_key) = plain.as_ref().or(variants.first().map(|v| &v.1)).map(|h| h.0.clone()) else { return Ok(None) };
    let dir = fetcher.cache_dir().join("indexes");
    let dest = dir.join(&cache_key);
    if dest.is_file() {
        crate::fetch::touch(&dest);
        return Ok(Some(dest));
    }
    fs::create_dir_all(&dir).map_err(io_err(dir.display()))?;
    let dist = source.dist_url();
    let mut last_err = None;
    for (ext, (hash, size)) in &variants {
        let parent = base.rsplit_once('/').map(|(d, _)| d).unwrap_or("");
        let mut urls = Vec::new();
        if release.acquire_by_hash && !parent.is_empty() {
            urls.push(format!("{dist}/{parent}/by-hash/SHA256/{hash}"));
        }
        urls.push(format!("{dist}/{base}{ext}"));
        for url in urls {
            // Unique per writer: threads and processes filling this entry at
            // once each download and verify their own copy.
            let raw = tmp_path(&dir.join(format!("{hash}{ext}.download")));
            match fetcher.fetch_verified(&url, hash, Some(*size), &raw) {
                Ok(true) => {
                    let res = decompress_into(&raw, ext, &dest, &url, plain.as_ref());
                    let _ = fs::remove_file(&raw);
                    res?;
                    return Ok(Some(dest));
                }
                Ok(false) => continue,
                Err(e @ Error::Unreachable { .. }) => return Err(e),
                Err(e) => last_err = Some(e),
            }
        }
    }
    Err(last_err.unwrap_or_else(|| Error::Source {
        source_name: source.name(),
        message: format!("{base} is listed in the Release file but could not be downloaded"),
    }))
}

fn decompress_into(raw: &Path, ext: &str, dest: &Path, url: &str, plain: Option<&(String, u64)>) -> Result<()> {
    let f = BufReader::new(File::open(raw).map_err(io_err(raw.display()))?);
    let reader: Box<dyn std::io::Read> = match ext {
        ".xz" => Box::new(liblzma::read::XzDecoder::new_multi_decoder(f)),
        ".gz" => Box::new(flate2::bufread::MultiGzDecoder::new(f)),
        _ => Box::new(f),
    };
    let tmp = tmp_path(dest);
    let res = match plain {
        Some((hash, size)) => copy_hashed(reader, &tmp, url, hash, Some(*size)),
        None => {
            let mut r = reader;
            File::create(&tmp)
                .and_then(|mut out| std::io::copy(&mut r, &mut out))
                .map(|_| ())
                .map_err(|e| Error::Invalid(format!("{url}: corrupt compressed index: {e}")))
        }
    }
    .and_then(|_| fs::rename(&tmp, dest).map_err(io_err(dest.display())));
    if res.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    res
}

/// Returns the stanzas of `wanted` packages in a cached `Packages` file.
/// The first scan of an index writes a sidecar of stanza offsets
/// (`<hash>.offsets`), so later scans read only the stanzas they need.
/// `label` names the index in errors.
pub fn scan_index(path: &Path, label: &str, wanted: &HashSet<String>, archive: usize) -> Result<Vec<Available>> {
    let sidecar = path.with_extension("offsets");
    let entries = match fs::read(&sidecar).ok().and_then(|b| parse_offsets(&b)) {
        Some(e) => e,
        None => {
            let f = File::open(path).map_err(io_err(path.display()))?;
            let e = stanza_offsets(BufReader::with_capacity(1 << 20, f)).map_err(io_err(path.display()))?;
            let mut text = String::with_capacity(e.len() * 32);
            for (name, off, len, line) in &e {
                text.push_str(&format!("{name}\t{off}\t{len}\t{line}\n"));
            }
            crate::fetch::write_atomic(&sidecar, text.as_bytes())?;
            e
        }
    };
    let mut f = File::open(path).map_err(io_err(path.display()))?;
    let mut out = Vec::new();
    let mut buf = Vec::new();
    for (name, off, len, line) in entries.iter().filter(|e| wanted.contains(&e.0)) {
        use std::io::{Read, Seek, SeekFrom};
        buf.resize(*len as usize, 0);
        f.seek(SeekFrom::Start(*off)).and_then(|_| f.read_exact(&mut buf)).map_err(io_err(path.display()))?;
        parse_stanza(&buf, label, *line, archive, &mut out)?;
        let _ = name;
    }
    Ok(out)
}

type Offsets = Vec<(String, u64, u64, usize)>;

fn parse_offsets(b: &[u8]) -> Option<Offsets> {
    let text = std::str::from_utf8(b).ok()?;
    let mut out = Vec::new();
    for l in text.lines() {
        let mut it = l.split('\t');
        out.push((it.next()?.to_string(), it.next()?.parse().ok()?, it.next()?.parse().ok()?, it.next()?.parse().ok()?));
    }
    Some(out)
}

/// (package, byte offset, length, first line) of every stanza.
fn stanza_offsets(mut r: impl BufRead) -> std::io::Result<Offsets> {
    let mut out = Vec::new();
    let mut line = Vec::with_capacity(256);
    let (mut pos, mut line_no) = (0u64, 0usize);
    let mut cur: Option<(String, u64, usize)> = None;
    let mut start: Option<(u64, usize)> = None;
    loop {
        line.clear();
        let n = r.read_until(b'\n', &mut line)?;
        let blank = n == 0 || line.iter().all(|b| b.is_ascii_whitespace());
        if blank {
            if let (Some((name, _, _)), Some((s, l))) = (cur.take(), start.take()) {
                out.push((name, s, pos - s, l));
            }
            if n == 0 {
                break;
            }
        } else {
            if start.is_none() {
                start = Some((pos, line_no + 1));
            }
            if let Some(name) = line.strip_prefix(b"Package:") {
                cur = Some((String::from_utf8_lossy(name).trim().to_string(), pos, line_no + 1));
            }
        }
        pos += n as u64;
        line_no += 1;
    }
    Ok(out)
}

/// As [`scan_index`], over any reader.
pub fn scan_reader(mut r: impl BufRead, label: &str, wanted: &HashSet<String>, archive: usize) -> Result<Vec<Available>> {
    let mut out = Vec::new();
    let mut line = Vec::with_capacity(256);
    let mut stanza: Vec<u8> = Vec::new();
    let mut line_no = 0usize;
    let mut stanza_start = 0usize;
    let mut keep = false;
    let mut in_stanza = false;
    loop {
        line.clear();
        let n = r.read_until(b'\n', &mut line).map_err(io_err(label))?;
        if n > 0 {
            line_no += 1;
        }
        let blank = n == 0 || line.iter().all(|b| b.is_ascii_whitespace());
        if blank {
            if keep {
                parse_stanza(&stanza, label, stanza_start, archive, &mut out)?;
            }
            stanza.clear();
            keep = false;
            in_stanza = false;
            if n == 0 {
                break;
            }
            continue;
        }
        if !in_stanza {
            in_stanza = true;
            stanza_start = line_no;
        }
        if let Some(name) = line.strip_prefix(b"Package:") {
            let name = std::str::from_utf8(name).unwrap_or("").trim();
            keep = wanted.contains(name);
            if keep {
                // Fields before `Package:` (rare) were skipped; keep from here.
                stanza.clear();
                stanza_start = line_no;
            }
        }
        if keep {
            stanza.extend_from_slice(&line);
        }
    }
    Ok(out)
}

fn parse_stanza(data: &[u8], label: &str, first_line: usize, archive: usize, out: &mut Vec<Available>) -> Result<()> {
    let perr = |line: usize, message: String| Error::Parse { file: label.to_string(), line: first_line + line - 1, message };
    let text = std::str::from_utf8(data).map_err(|_| perr(1, "stanza is not UTF-8".into()))?;
    for p in paragraphs(text) {
        let p = p.map_err(|e| perr(e.line, e.message))?;
        let field = |name: &str| p.field(name).ok_or_else(|| perr(p.line, format!("stanza without {name}")));
        let package = field("Package")?.value().to_string();
        let vf = field("Version")?;
        let version = version::parse(vf.value()).map_err(|m| perr(vf.line, m))?;
        let (source, source_version) = match p.field("Source") {
            Some(f) => match f.value().split_once('(') {
                Some((n, v)) => (n.trim().to_string(), version::parse(v.trim_end().trim_end_matches(')')).map_err(|m| perr(f.line, m))?),
                None => (f.value().to_string(), version.clone()),
            },
            None => (package.clone(), version.clone()),
        };
        let sha = field("SHA256")?;
        if sha.value().len() != 64 || !sha.value().bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(perr(sha.line, format!("malformed SHA256 `{}`", sha.value())));
        }
        let sizef = field("Size")?;
        let size = sizef.value().parse().map_err(|_| perr(sizef.line, format!("malformed Size `{}`", sizef.value())))?;
        let filename = field("Filename")?.value().to_string();
        if filename.split('/').any(|c| c == "..") || filename.starts_with('/') {
            return Err(perr(p.line, format!("refusing Filename `{filename}`")));
        }
        out.push(Available {
            arch: p.get("Architecture").unwrap_or("all").to_string(),
            version,
            source,
            source_version,
            depends: [p.get("Pre-Depends"), p.get("Depends")].into_iter().flatten().collect::<Vec<_>>().join(", "),
            breaks: p.get("Breaks").unwrap_or("").to_string(),
            conflicts: p.get("Conflicts").unwrap_or("").to_string(),
            provides: p.get("Provides").unwrap_or("").to_string(),
            multi_arch: p.get("Multi-Arch").map(str::to_string),
            // apt ignores an invalid value (with a warning) and keeps 100.
            phased: p.get("Phased-Update-Percentage").and_then(|v| v.trim().parse::<u8>().ok()).filter(|v| *v <= 100).unwrap_or(100),
            filename,
            sha256: sha.value().to_ascii_lowercase(),
            size,
            archive,
            package,
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scans_wanted_only() {
        let idx = "Package: a\nVersion: 1\nArchitecture: amd64\nFilename: pool/a.deb\nSize: 3\nSHA256: 0000000000000000000000000000000000000000000000000000000000000000\n\nPackage: b\nVersion: 2\n\nPackage: c\nSource: cc (3)\nVersion: 3+b1\nArchitecture: all\nFilename: pool/c.deb\nSize: 4\nSHA256: 1111111111111111111111111111111111111111111111111111111111111111\n";
        let wanted: HashSet<String> = ["a".to_string(), "c".to_string()].into();
        let v = scan_reader(idx.as_bytes(), "Packages", &wanted, 7).unwrap();
        assert_eq!(v.len(), 2);
        assert_eq!(v[1].source, "cc");
        assert_eq!(v[1].source_version.to_string(), "3");
        assert_eq!(v[1].archive, 7);
        let bad = "Package: b\nVersion: 1\n\nPackage: c\nVersion: 1\nFilename: x\nSize: zz\nSHA256: 1111111111111111111111111111111111111111111111111111111111111111\n";
        let e = scan_reader(bad.as_bytes(), "Packages", &wanted, 0).unwrap_err();
        assert_eq!(e.to_string(), "Packages:7: malformed Size `zz`");
    }

    #[test]
    fn sidecar_offsets_give_the_same_stanzas_and_lines() {
        let idx = "Package: x\nVersion: 1\n\nPackage: c\nVersion: 1\nFilename: x\nSize: zz\nSHA256: 1111111111111111111111111111111111111111111111111111111111111111\n";
        let path = std::env::temp_dir().join(format!("freshen-packages-test-{}", std::process::id()));
        std::fs::write(&path, idx).unwrap();
        let wanted: HashSet<String> = ["c".to_string()].into();
        for _ in 0..2 {
            // First run writes the sidecar, the second reads it.
            let e = scan_index(&path, "Packages", &wanted, 0).unwrap_err();
            assert_eq!(e.to_string(), "Packages:7: malformed Size `zz`");
        }
        assert!(path.with_extension("offsets").is_file());
        let _ = std::fs::remove_file(path.with_extension("offsets"));
        let _ = std::fs::remove_file(&path);
    }
}
