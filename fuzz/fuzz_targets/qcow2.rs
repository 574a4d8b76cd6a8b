//! QCOW2 reader (v2/v3, L1/L2, zero and compressed clusters, backing file)
//! on arbitrary bytes. Input: [u32 LE split][file A][file B]; A is opened as
//! `vm/a.qcow2`, B is in the same in-memory folder under every name a seed
//! uses for a backing file (`b`, `b.qcow2`).
#![no_main]
use libfuzzer_sys::fuzz_target;
use rdprescue_fuzz::open_pair;

fuzz_target!(|data: &[u8]| open_pair(data, "vm/a.qcow2", &["vm/b", "vm/b.qcow2"]));
