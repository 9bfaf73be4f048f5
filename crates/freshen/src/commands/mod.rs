pub mod copy;
pub mod host;
pub mod patch;
pub mod rebase;
pub mod run;
pub mod scan;
pub mod status;
pub mod transport;
