//! VHDX (MS-VHDX): the reader ([`read`]: fixed, dynamic and differencing
//! disks, pending logs replayed in memory) and the writers ([`write`]: full
//! copies and differencing children).

mod read;
pub mod write;

pub use read::*;
