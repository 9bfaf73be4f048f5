//! The small file and byte helpers every freshen crate shares, in one
//! place: files put in place whole, so a crash leaves either the old file
//! or the new one (written under a temporary name beside the destination,
//! synced, renamed, and the directory synced), and the hex form of bytes.
//! Errors are plain [`io::Error`]s; each crate adds the path in its own
//! error type.

use std::fs::{self, File};
use std::io::{self, Write};
use std::path::{Path, PathBuf};

/// A temporary name in `dir`, unique to this process and thread.
pub fn tmp_name(dir: &Path, what: &str) -> PathBuf {
    dir.join(format!(".tmp-{what}-{}-{:?}", std::process::id(), std::thread::current().id()).replace(['(', ')'], ""))
}

/// Writes `data` to a temporary name next to `path`, syncs it, renames it
/// into place and syncs the directory.
pub fn write_atomic(path: &Path, data: &[u8]) -> io::Result<()> {
    let tmp = tmp_name(parent(path), "write");
    let res = (|| {
        let mut f = File::create(&tmp)?;
        f.write_all(data)?;
        f.sync_all()
    })();
    if let Err(e) = res {
        let _ = fs::remove_file(&tmp);
        return Err(e);
    }
    rename_synced(&tmp, path)
}

/// Copies `src` to `dest` the same way: a synced temporary renamed into
/// place, the directory synced.
pub fn copy_atomic(src: &Path, dest: &Path) -> io::Result<()> {
    let tmp = tmp_name(parent(dest), "copy");
    if let Err(e) = fs::copy(src, &tmp).and_then(|_| File::open(&tmp)?.sync_all()) {
        let _ = fs::remove_file(&tmp);
        return Err(e);
    }
    rename_synced(&tmp, dest)
}

/// Renames the synced file `tmp` to `dest` and syncs `dest`'s directory;
/// `tmp` is removed when the rename fails.
pub fn rename_synced(tmp: &Path, dest: &Path) -> io::Result<()> {
    if let Err(e) = fs::rename(tmp, dest) {
        let _ = fs::remove_file(tmp);
        return Err(e);
    }
    File::open(parent(dest))?.sync_all()
}

fn parent(path: &Path) -> &Path {
    path.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(Path::new("."))
}

/// Lowercase hex of bytes.
pub fn hex(bytes: &[u8]) -> String {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let mut s = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        s.push(HEX[(b >> 4) as usize] as char);
        s.push(HEX[(b & 15) as usize] as char);
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn writes_whole_files_and_leaves_no_temporary() {
        let dir = std::env::temp_dir().join(format!("freshen-fs-test-{}", std::process::id()));
        fs::create_dir_all(&dir).unwrap();
        let path = dir.join("f");
        write_atomic(&path, b"one").unwrap();
        write_atomic(&path, b"two").unwrap();
        assert_eq!(fs::read(&path).unwrap(), b"two");
        assert_eq!(fs::read_dir(&dir).unwrap().count(), 1);
        assert!(write_atomic(&dir.join("missing/f"), b"x").is_err());
        copy_atomic(&path, &dir.join("g")).unwrap();
        assert_eq!(fs::read(dir.join("g")).unwrap(), b"two");
        assert!(copy_atomic(&dir.join("missing"), &dir.join("h")).is_err());
        assert_eq!(fs::read_dir(&dir).unwrap().count(), 2);
        fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn hex_is_lowercase_two_digits_a_byte() {
        assert_eq!(hex(&[0x00, 0x0f, 0xa5, 0xff]), "000fa5ff");
    }
}
