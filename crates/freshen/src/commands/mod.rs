pub mod patch;
pub mod scan;
pub mod transport;
