//! Container parsers (raw/VHD/VHDX, incl. log replay and BAT) on arbitrary bytes.
#![no_main]
use libfuzzer_sys::fuzz_target;
use rdprescue::image::{FileSource, OpenCtx};
use std::path::Path;

fuzz_target!(|data: &[u8]| {
    let src = FileSource::from_bytes(Path::new("/nonexistent/fuzz.vhdx"), data.to_vec());
    if let Ok(img) = OpenCtx::default().open_source(src) {
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
