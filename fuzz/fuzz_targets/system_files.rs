//! The readers behind issue 19's file checks on arbitrary bytes: the first
//! byte picks one. 0: tspkg.dll's PE headers and version resource
//! (`pe_facts`, pelite inside a guard); 1: a certificate properties Blob
//! (`cert_facts`: the bounded property walk, then x509-cert); 2: an NTFS
//! volume's free space (`free_bytes`: `$Bitmap` streamed through a counter).
#![no_main]
use libfuzzer_sys::fuzz_target;
use rdprescue::image::{raw, MemSource};

// pelite and ntfs run inside `fs::guard`, which turns their panics into
// errors; keep libFuzzer's hook for panics in our own code only.
fn init() {
    let default = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        if !rdprescue::fs::in_guard() {
            default(info);
        }
    }));
}

fuzz_target!(init: init(), |data: &[u8]| {
    let Some((&mode, rest)) = data.split_first() else { return };
    match mode % 3 {
        0 => {
            let _ = rdprescue::rdp::system::pe_facts(rest);
        }
        1 => {
            let _ = rdprescue::rdp::system::cert_facts(rest);
        }
        _ => {
            let Ok(img) = raw::open(MemSource::arc("fuzz.raw", rest.to_vec())) else { return };
            let Ok(fs) = rdprescue::fs::open(img.disk.clone(), 0) else { return };
            if let Ok(Some(free)) = fs.free_bytes() {
                assert!(free <= fs.state().size, "more free bytes than the volume holds");
            }
        }
    }
});
