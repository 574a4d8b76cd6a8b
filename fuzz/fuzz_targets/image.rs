//! Container parsers (raw/VHD/VHDX, incl. log replay and BAT) on arbitrary bytes.
#![no_main]
use libfuzzer_sys::fuzz_target;
use rdprescue::image::{open_source, MemSource};

fuzz_target!(|data: &[u8]| {
    // In memory: a parent locator can only name other in-memory files (none).
    if let Ok(img) = open_source(MemSource::arc("fuzz.vhdx", data.to_vec())) {
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
