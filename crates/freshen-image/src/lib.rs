//! Container images for freshen: references and transports, manifests and
//! configs (as [`oci_spec`] types), blob digests verified while they stream,
//! and a sparse read of an image's files through its layers with OCI
//! whiteout semantics.
//!
//! ```no_run
//! use freshen_image::{open, read_image_files, ImageRef, Interest, Platform};
//! let r = ImageRef::parse("oci:./images:app")?;
//! let src = open(&r, &Platform::host())?;
//! let files = read_image_files(&src, &Interest { paths: &["etc/os-release"], keep_versions: &[] })?;
//! println!("{:?}", files.read("etc/os-release"));
//! # Ok::<(), freshen_image::Error>(())
//! ```

mod digest;
mod error;
mod files;
mod platform;
mod reference;
mod resolve;
mod sink;
mod source;
mod store;
mod write;

pub use digest::{hex_encode, Digest, HashingWriter, VerifyingReader};
pub use error::{Error, Result};
pub use files::{decompress, read_dir_files, read_image_files, read_layers_files, FileVersion, Interest, Node, NodeKind, RootFiles};
pub use platform::Platform;
pub use reference::ImageRef;
pub use resolve::{open, StoreSource};
pub use sink::{write_image, NewImage};
pub use source::{Image, ImageSource, Layer};
pub use write::{set_special, write_layer_from_dir, write_oci_layout, LayerBlob, LayoutImage};
