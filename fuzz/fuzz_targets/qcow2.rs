//! QCOW2 reader (v2/v3, L1/L2, zero and compressed clusters, backing file)
//! on arbitrary bytes. Input: [u32 LE split][file A][file B]; A is opened as
//! `vm/a.qcow2`, B is in the same in-memory folder under every name a seed
//! uses for a backing file (`b`, `b.qcow2`).
#![no_main]
use libfuzzer_sys::fuzz_target;
use rdprescue::image::{open_source, MemDir};
use std::sync::Arc;

fuzz_target!(|data: &[u8]| {
    if data.len() < 4 {
        return;
    }
    let split = (u32::from_le_bytes([data[0], data[1], data[2], data[3]]) as usize).min(data.len() - 4);
    let (a, b) = data[4..].split_at(split);
    let dir = MemDir::new();
    dir.insert("vm/a.qcow2", a.to_vec());
    for n in ["vm/b", "vm/b.qcow2"] {
        dir.insert(n, b.to_vec());
    }
    let Ok(src) = dir.open("vm/a.qcow2") else { return };
    if let Ok(img) = open_source(Arc::new(src)) {
        let len = img.disk.len();
        let mut buf = vec![0u8; 65536.min(len as usize)];
        let _ = img.disk.read_at(0, &mut buf);
        if len > 4096 {
            let mut tail = [0u8; 4096];
            let _ = img.disk.read_at(len - 4096, &mut tail);
            let _ = img.disk.read_at(len / 2 - 1, &mut tail[..3]);
        }
        let _ = rdprescue::volume::read_partitions(img.disk.as_ref());
    }
});
