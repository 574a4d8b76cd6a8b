//! NTFS volume on arbitrary bytes: mount, look up the paths rdprescue needs, read them.
#![no_main]
use libfuzzer_sys::fuzz_target;
use rdprescue::image::{raw, FileSource};
use std::path::Path;

fuzz_target!(|data: &[u8]| {
    let Ok(img) = raw::open(FileSource::from_bytes(Path::new("fuzz.raw"), data.to_vec())) else { return };
    let Ok(fs) = rdprescue::fs::open(img.disk.clone(), 0) else { return };
    for p in [r"\Windows\System32\config\SYSTEM", r"\Boot\BCD", r"\EFI\Microsoft\Boot\BCD", "hiberfil.sys", r"\Users\Public\Desktop\readme.txt"] {
        if let Ok(st) = fs.stat(p) {
            if st.size < (1 << 24) {
                let mut sink = std::io::sink();
                let _ = fs.read_to(p, &mut sink);
            }
        }
    }
});
