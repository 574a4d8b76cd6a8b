//! VMDK (VMware virtual disks): the reader ([`read`]) for hosted sparse
//! extents (monolithic sparse, stream-optimized) and descriptor files with
//! FLAT / SPARSE / ZERO extents. Writing VMDK is not supported (see
//! `image::write::writable`).

mod read;

pub use read::*;
