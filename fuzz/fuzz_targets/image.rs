//! Container parsers (raw/VHD/VHDX, incl. log replay and BAT) on arbitrary bytes.
#![no_main]
use libfuzzer_sys::fuzz_target;
use rdprescue::image::{open_source, MemSource};
use rdprescue_fuzz::walk_disk;

fuzz_target!(|data: &[u8]| {
    // In memory: a parent locator can only name other in-memory files (none).
    if let Ok(img) = open_source(MemSource::arc("fuzz.vhdx", data.to_vec())) {
        walk_disk(&img);
    }
});
