//! Host automation for freshen: on a Docker (or Dokku) host, discover what
//! runs, scan each distinct image against its own apt sources, and record
//! targets, fixes, exposure and actions in a state database. It calls
//! freshen-image, freshen-apt and freshen-patch; they never call it.
//!
//! A pass ([`pass::run`]) is discover → scan (reusing the recorded scan of
//! an image whose archives have not published since) → plan → record;
//! patching and redeploying slot in between plan and record. [`watch`]
//! runs passes when an archive publishes or the Engine starts something
//! new; [`stop`] ends either after the step in flight.

pub mod config;
pub mod discover;
pub mod duration;
mod error;
pub mod lock;
pub mod model;
pub mod pass;
mod reuse;
pub mod size;
pub mod state;
pub mod stop;
pub mod watch;

pub use config::Config;
pub use error::{Error, Result};
pub use lock::PassLock;
pub use state::State;
