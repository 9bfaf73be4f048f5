//! Debian and Ubuntu package logic for freshen: dpkg's database and version
//! ordering, apt's sources, pins and candidate policy, signed archives
//! (`InRelease` verified with a pure-Rust OpenPGP implementation) and their
//! `Packages` indexes, and changelogs.
//!
//! The entry point is [`scan`]: given a [`RootView`] of an image or host, it
//! returns the pending updates, which are security fixes, and which
//! `apt-get upgrade` would hold back. Libraries here never print.

pub mod aptconf;
pub mod archive;
pub mod auth;
pub mod changelog;
pub mod deb822;
mod error;
pub mod fetch;
pub mod keyring;
pub mod packages;
pub mod phasing;
pub mod policy;
pub mod preferences;
pub mod probe;
pub mod relation;
pub mod release;
mod scan;
pub mod sources;
pub mod status;
pub mod system;
pub mod version;

pub use error::{Error, Result};
pub use fetch::Fetcher;
pub use policy::{Archive, Update};
pub use scan::{deb_path, fetch_deb, scan, Fix, HostInfo, Scan, ScanOptions};
pub use system::{OsInfo, RootView, System};
