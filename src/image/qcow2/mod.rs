//! QCOW2 (QEMU copy-on-write, versions 2 and 3): the reader ([`read`]).
//! Writing QCOW2 is not supported (see `image::write::writable`).

mod read;

pub use read::*;
