//! Patching for freshen: a content-addressed cache of unpacked layers in
//! overlayfs format, an overlay + OCI runtime sandbox that runs the image's
//! own apt, and the thin, deterministic patch layer generated from the
//! overlay's upper directory.

pub mod cache;
pub mod cleanup;
pub mod config;
mod debs;
mod error;
pub mod layer;
mod local;
mod lists;
mod lowerview;
mod options;
mod patch;
pub mod prune;
mod reuse;
mod run;
pub mod sandbox;
mod seccomp;
pub mod syscall;
mod script;
pub mod secrets;
pub mod unpack;
mod view;
mod workdir;

pub use error::{Error, Result};
pub use local::attach_local_repos;
pub use options::PatchOptions;
pub use patch::{patch, Outcome, Patched, Upgraded};
pub use view::View;
pub use workdir::WorkDir;
