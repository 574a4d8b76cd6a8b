//! VMDK reader (hosted sparse, stream-optimized, descriptor + extents, parent)
//! on arbitrary bytes. Input: [u32 LE split][file A][file B]; A is opened as
//! `vm/a.vmdk`, B is in the same in-memory folder under every name a seed
//! uses for an extent or a parent (`b.vmdk`, `b-flat.vmdk`, `b-s001.vmdk`).
#![no_main]
use libfuzzer_sys::fuzz_target;
use rdprescue_fuzz::open_pair;

fuzz_target!(|data: &[u8]| open_pair(data, "vm/a.vmdk", &["vm/b.vmdk", "vm/b-flat.vmdk", "vm/b-s001.vmdk"]));
