//! NTFS volume on arbitrary bytes: mount, look up the paths rdprescue needs, read them.
#![no_main]
use libfuzzer_sys::fuzz_target;
use rdprescue::image::{raw, MemSource};

// The file-system crates are run inside `fs::guard`, which turns their panics
// into errors (the CLI does the same). libFuzzer's hook would abort on them, so
// keep it only for panics outside a guard, i.e. in our own code.
fn init() {
    let default = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        if !rdprescue::fs::in_guard() {
            default(info);
        }
    }));
}

fuzz_target!(init: init(), |data: &[u8]| {
    let Ok(img) = raw::open(MemSource::arc("fuzz.raw", data.to_vec())) else { return };
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
