//! Packing a directory as one deterministic gzip layer into a layout's
//! blobs (for tests, benchmarks and the `pack_rootfs` example).

use std::collections::HashMap;
use std::fs::{self, File};
use std::io::{self, BufWriter, Write};
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::Path;

use crate::atomic::{rename_synced, tmp_name};
use crate::digest::{Digest, HashingWriter};
use crate::error::{io_err, Result};
use crate::write::{set_special, LayerBlob};

/// Packs the directory `root` as one gzip layer into `layout/blobs/sha256`:
/// entries sorted, numeric owners, hardlinks, symlinks, devices and fifos
/// kept, mtimes clamped to `clamp_mtime` when given.
pub fn write_layer_from_dir(root: &Path, layout: &Path, clamp_mtime: Option<u64>, created_by: &str) -> Result<LayerBlob> {
    let blobs = layout.join("blobs/sha256");
    fs::create_dir_all(&blobs).map_err(io_err(&blobs))?;
    let tmp = tmp_name(&blobs, "layer");
    let out = File::create(&tmp).map_err(io_err(&tmp))?;
    let outer = HashingWriter::new(BufWriter::new(out));
    let gz = flate2::write::GzEncoder::new(outer, flate2::Compression::default());
    let inner = HashingWriter::new(gz);
    let mut builder = tar::Builder::new(inner);
    let mut links: HashMap<(u64, u64), String> = HashMap::new();
    let res = append_tree(&mut builder, root, "", clamp_mtime, &mut links);
    let finish = || -> io::Result<(Digest, Digest, u64)> {
        let (gz, diff_id, _) = builder.into_inner()?.finish();
        let (mut file, digest, size) = gz.finish()?.finish();
        file.flush()?;
        file.get_ref().sync_all()?;
        Ok((digest, diff_id, size))
    };
    let result = res.map_err(io_err(root)).and_then(|_| finish().map_err(io_err(&tmp)));
    let (digest, diff_id, size) = match result {
        Ok(v) => v,
        Err(e) => {
            let _ = fs::remove_file(&tmp);
            return Err(e);
        }
    };
    rename_synced(&tmp, &blobs.join(digest.hex()))?;
    Ok(LayerBlob {
        digest,
        diff_id,
        size,
        media_type: "application/vnd.oci.image.layer.v1.tar+gzip".into(),
        created_by: created_by.to_string(),
    })
}

fn append_tree<W: Write>(
    b: &mut tar::Builder<W>,
    root: &Path,
    rel: &str,
    clamp: Option<u64>,
    links: &mut HashMap<(u64, u64), String>,
) -> io::Result<()> {
    let dir = if rel.is_empty() { root.to_path_buf() } else { root.join(rel) };
    let mut names: Vec<_> = fs::read_dir(&dir)?.map(|e| e.map(|e| e.file_name())).collect::<io::Result<_>>()?;
    names.sort();
    for name in names {
        let name = name.to_string_lossy().into_owned();
        let path = if rel.is_empty() { name.clone() } else { format!("{rel}/{name}") };
        let full = root.join(&path);
        let meta = fs::symlink_metadata(&full)?;
        let ft = meta.file_type();
        let mut h = tar::Header::new_gnu();
        h.set_mode(meta.mode() & 0o7777);
        h.set_uid(meta.uid() as u64);
        h.set_gid(meta.gid() as u64);
        let mtime = meta.mtime().max(0) as u64;
        h.set_mtime(clamp.map_or(mtime, |c| mtime.min(c)));
        h.set_size(0);
        if ft.is_dir() {
            h.set_entry_type(tar::EntryType::Directory);
            b.append_data(&mut h, format!("{path}/"), io::empty())?;
            append_tree(b, root, &path, clamp, links)?;
        } else if ft.is_symlink() {
            h.set_entry_type(tar::EntryType::Symlink);
            b.append_link(&mut h, &path, fs::read_link(&full)?)?;
        } else if ft.is_file() {
            if meta.nlink() > 1 {
                if let Some(first) = links.get(&(meta.dev(), meta.ino())) {
                    h.set_entry_type(tar::EntryType::Link);
                    b.append_link(&mut h, &path, first)?;
                    continue;
                }
                links.insert((meta.dev(), meta.ino()), path.clone());
            }
            h.set_entry_type(tar::EntryType::Regular);
            h.set_size(meta.len());
            b.append_data(&mut h, &path, File::open(&full)?)?;
        } else if ft.is_char_device() || ft.is_block_device() || ft.is_fifo() {
            set_special(&mut h, &meta)?;
            b.append_data(&mut h, &path, io::empty())?;
        }
        // Sockets are not part of an image.
    }
    Ok(())
}
