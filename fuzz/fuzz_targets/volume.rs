//! Partition tables (MBR with EBR chains, GPT with backup) on arbitrary bytes.
#![no_main]
use libfuzzer_sys::fuzz_target;
use rdprescue::image::{raw, MemSource};

fuzz_target!(|data: &[u8]| {
    let Ok(img) = raw::open(MemSource::arc("fuzz.raw", data.to_vec())) else { return };
    if let Ok(table) = rdprescue::volume::read_partitions(img.disk.as_ref()) {
        for p in &table.partitions {
            let s = rdprescue::volume::Slice::of(img.disk.clone(), p);
            let _ = rdprescue::fs::probe(&s);
        }
    }
});
