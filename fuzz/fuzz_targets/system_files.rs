//! The readers behind issue 19's file checks on arbitrary bytes: the first
//! byte picks one. 0: tspkg.dll's PE headers and version resource
//! (`pe_facts`, pelite inside a guard); 1: a certificate properties Blob
//! (`cert_facts`: the bounded property walk, then x509-cert); 2: an NTFS
//! volume's free space (`free_bytes`: `$Bitmap` streamed through a counter).
#![no_main]
use libfuzzer_sys::fuzz_target;
use rdprescue_fuzz::{keep_guarded_panics, raw_volume};

fuzz_target!(init: keep_guarded_panics(), |data: &[u8]| {
    let Some((&mode, rest)) = data.split_first() else { return };
    match mode % 3 {
        0 => {
            let _ = rdprescue::rdp::system::pe_facts(rest);
        }
        1 => {
            let _ = rdprescue::rdp::system::cert_facts(rest);
        }
        _ => {
            let Some(fs) = raw_volume(rest) else { return };
            if let Ok(Some(free)) = fs.free_bytes() {
                assert!(free <= fs.state().size, "more free bytes than the volume holds");
            }
        }
    }
});
