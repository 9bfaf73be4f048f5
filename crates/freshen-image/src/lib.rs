//! Container images for freshen: references and transports, manifests and
//! configs (as [`oci_spec`] types), blob digests verified while they stream,
//! and a sparse read of an image's files through its layers with OCI
//! whiteout semantics.
//!
//! ```no_run
//! use freshen_image::{open, read_image_files, ImageRef, Interest, Platform, Transport};
//! let r = ImageRef::parse("oci:./images:app")?;
//! let src = open(&r, &Platform::host(), &Transport::default())?;
//! let files = read_image_files(src.as_ref(), &Interest { paths: &["etc/os-release"], keep_versions: &[] })?;
//! println!("{:?}", files.read("etc/os-release"));
//! # Ok::<(), freshen_image::Error>(())
//! ```

mod archive;
mod atomic;
mod digest;
mod dispatch;
mod docker_archive;
pub mod engine;
mod error;
mod files;
mod gzip;
pub mod inflate;
mod jsonsize;
mod layout;
mod manifest;
mod oci;
#[cfg(feature = "testing")]
mod pack;
pub mod targuard;
mod platform;
pub mod progress;
pub mod rebase;
mod reference;
mod registry;
mod scratch;
mod source;
mod text;
mod store;
mod transport;
mod write;

pub use digest::{Digest, HashingReader, HashingWriter, VerifyingReader};
pub use freshen_fs::hex as hex_encode;
pub use error::{Error, Result};
pub use gzip::ParallelGz;
pub use files::{decompress, read_dir_files, read_image_files, read_layers_files, FileVersion, Interest, Node, NodeKind, RootFiles};
pub use platform::Platform;
pub use progress::{Progress, Task};
pub use reference::{ImageRef, RegistryRef};
pub use atomic::write_atomic;
pub use dispatch::{open, write_image};
pub use write::{set_device, set_special, LayerBlob};

/// For tests, benchmarks and the example: writing layouts from directories,
/// and opening local images as their concrete type.
#[cfg(feature = "testing")]
pub use {
    dispatch::open_local,
    layout::{write_oci_layout, LayoutImage},
    store::StoreSource,
    pack::write_layer_from_dir,
};
pub use text::{escape, percent_encode, tar_error};
pub use source::{Image, ImageSource, Layer, NewImage, ParentIndex};
pub use transport::Transport;
pub use scratch::{hold_owner_lock, owner as scratch_owner, owner_gone};
