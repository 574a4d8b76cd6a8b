//! NTFS volume on arbitrary bytes: mount, look up the paths rdprescue needs, read them.
#![no_main]
use libfuzzer_sys::fuzz_target;
use rdprescue_fuzz::{keep_guarded_panics, read_known_paths};

fuzz_target!(init: keep_guarded_panics(), |data: &[u8]| read_known_paths(data));
