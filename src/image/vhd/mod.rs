//! VHD (Virtual PC / Hyper-V v1): the reader ([`read`]: fixed, dynamic and
//! differencing disks) and the writers ([`write`]: full copies and
//! differencing children).

mod read;
pub mod write;

pub use read::*;
