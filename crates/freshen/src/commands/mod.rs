pub mod patch;
pub mod scan;
