//! Patching for freshen: a content-addressed cache of unpacked layers in
//! overlayfs format, an overlay + OCI runtime sandbox that runs the image's
//! own apt, and the thin, deterministic patch layer generated from the
//! overlay's upper directory.

pub mod cache;
pub mod cleanup;
pub mod config;
mod error;
pub mod layer;
mod local;
mod lowerview;
mod patch;
pub mod prune;
mod reuse;
pub mod sandbox;
mod seccomp;
pub mod syscall;
mod script;
pub mod secrets;
pub mod unpack;

pub use error::{Error, Result};
pub use local::attach_local_repos;
pub use patch::{patch, Outcome, PatchOptions, Patched, Upgraded, View, WorkDir};
