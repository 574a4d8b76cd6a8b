//! The evtx binary XML reader of the evidence prefilter (issue 15) on
//! arbitrary bytes: the input is one event-log chunk (padded or cut to
//! 64 KiB). Every record the header walk finds has its System ids read
//! (`evidence::binxml::system_ids`), and so has the whole input as one
//! record: no panic, bounded work, errors on the evidence/evtx layer, and
//! the walk stays inside the chunk and its free space.
#![no_main]
use libfuzzer_sys::fuzz_target;
use rdprescue::evidence::binxml;
use rdprescue::evidence::log::surely_unwanted;

fuzz_target!(|data: &[u8]| {
    let mut chunk = data.to_vec();
    chunk.resize(65536, 0);
    let recs = binxml::records(&chunk);
    let mut end = 512;
    for r in &recs {
        assert_eq!(r.offset, end, "records follow each other");
        assert!(r.size >= 28 && r.offset + r.size <= chunk.len());
        end = r.offset + r.size;
        match binxml::system_ids(&chunk, r.offset + 24, r.size - 28, 4096) {
            Ok(ids) => {
                let _ = surely_unwanted(&ids);
            }
            Err(e) => assert!(e.to_string().contains("evidence/evtx"), "{e}"),
        }
    }
    if data.len() >= 2 {
        let at = u16::from_le_bytes([data[0], data[1]]) as usize;
        if let Err(e) = binxml::system_ids(&chunk, at, data.len(), 0) {
            assert!(e.to_string().contains("evidence/evtx"), "{e}");
        }
    }
});
