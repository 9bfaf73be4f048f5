pub mod copy;
pub mod patch;
pub mod rebase;
pub mod scan;
pub mod transport;
