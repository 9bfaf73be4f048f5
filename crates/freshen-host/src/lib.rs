//! Host automation for freshen: on a Docker (or Dokku) host, discover what
//! runs, scan each distinct image against its own apt sources, and record
//! targets, fixes, exposure and actions in a state database. It calls
//! freshen-image, freshen-apt and freshen-patch; they never call it.
//!
//! A pass ([`pass::run`]) is discover → scan (reusing the recorded scan of
//! an image whose archives have not published since) → plan → patch and
//! redeploy ([`deploy`]) → record. [`recreate`] replaces a plain container
//! on its patched image (health gate, rollback) and repairs what a crash
//! left half-way; [`dokku`] has Dokku restart an app. [`watch`] runs
//! passes when an archive publishes or the Engine starts something new;
//! [`stop`] ends either after the step in flight. [`notify`] tells
//! webhooks and commands what a pass did; [`systemd`] tells the service
//! manager that `watch` is ready, alive and stopping.

pub mod config;
pub mod deploy;
pub mod discover;
pub mod dokku;
pub mod duration;
pub mod hostinfo;
mod error;
pub mod lock;
pub mod model;
pub mod notify;
pub mod pass;
pub mod recreate;
pub mod report;
mod reuse;
pub mod size;
pub mod state;
pub mod stop;
pub mod systemd;
pub mod watch;
pub mod web;

pub use config::Config;
pub use error::{Error, Result};
pub use lock::PassLock;
pub use state::State;
