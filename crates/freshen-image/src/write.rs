//! A layer blob as written into a layout, and the tar header of a device
//! node or fifo.

use std::fs;
use std::io;
use std::os::unix::fs::{FileTypeExt, MetadataExt};

use crate::digest::Digest;

/// A layer blob written into a layout's `blobs/sha256`.
#[derive(Clone, Debug)]
pub struct LayerBlob {
    pub digest: Digest,
    pub diff_id: Digest,
    pub size: u64,
    pub media_type: String,
    /// What made it, for the config's history.
    pub created_by: String,
}

/// Sets the entry type and device numbers of a header for a character or
/// block device or a fifo (Linux's encoding of `st_rdev`).
pub fn set_special(h: &mut tar::Header, meta: &fs::Metadata) -> io::Result<()> {
    let ft = meta.file_type();
    let kind = if ft.is_char_device() {
        tar::EntryType::Char
    } else if ft.is_block_device() {
        tar::EntryType::Block
    } else {
        tar::EntryType::Fifo
    };
    set_device(h, kind, meta.rdev())
}

/// Sets `h` to a device node or fifo `kind` with the number `rdev`.
pub fn set_device(h: &mut tar::Header, kind: tar::EntryType, rdev: u64) -> io::Result<()> {
    h.set_entry_type(kind);
    h.set_device_major((((rdev >> 8) & 0xfff) | ((rdev >> 32) & !0xfff)) as u32)?;
    h.set_device_minor(((rdev & 0xff) | ((rdev >> 12) & !0xff)) as u32)
}
