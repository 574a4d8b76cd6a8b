//! Set-up the fuzz targets share: the panic hook for guarded parsers, the
//! in-memory raw volume, the paths a file-system target reads, the walk over
//! an opened disk, and the two-file input of the vmdk/qcow2 targets.
use rdprescue::fs::FileSystem;
use rdprescue::image::{open_source, raw, Image, MemDir, MemSource};
use std::sync::Arc;

/// The file-system crates (ntfs, fatfs), pelite and evtx run inside
/// `fs::guard`, which turns their panics into errors (the CLI does the same).
/// libFuzzer's hook would abort on them, so keep it only for panics outside a
/// guard, i.e. in our own code. Pass as `fuzz_target!(init: keep_guarded_panics(), ..)`.
pub fn keep_guarded_panics() {
    let default = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        if !rdprescue::fs::in_guard() {
            default(info);
        }
    }));
}

/// `bytes` as a raw disk holding one volume at offset 0, mounted; None when
/// either step refuses it.
pub fn raw_volume(bytes: &[u8]) -> Option<Box<dyn FileSystem>> {
    let img = raw::open(MemSource::arc("fuzz.raw", bytes.to_vec())).ok()?;
    rdprescue::fs::open(img.disk.clone(), 0).ok()
}

/// Mount `bytes` as a volume, look up the paths rdprescue needs and read
/// those under 16 MiB.
pub fn read_known_paths(bytes: &[u8]) {
    let Some(fs) = raw_volume(bytes) else { return };
    for p in [r"\Windows\System32\config\SYSTEM", r"\Boot\BCD", r"\EFI\Microsoft\Boot\BCD", "hiberfil.sys", r"\Users\Public\Desktop\readme.txt"] {
        if let Ok(st) = fs.stat(p) {
            if st.size < (1 << 24) {
                let mut sink = std::io::sink();
                let _ = fs.read_to(p, &mut sink);
            }
        }
        // The file handle (decoded runs kept, reads straight from the
        // volume) over the same hostile structures: the start, across the
        // middle, the last byte, and past the end.
        if let Ok(Some(h)) = fs.open_file(p) {
            let size = h.size();
            let mut buf = [0u8; 4096];
            for at in [0, size / 2, size.saturating_sub(1), size, size.saturating_add(4096)] {
                let _ = h.read_at(at, &mut buf);
            }
        }
    }
}

/// Read an opened disk where readers split their work: the first 64 KiB, the
/// last 4 KiB, 3 bytes across the middle; then its partition table.
pub fn walk_disk(img: &Image) {
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

/// Input `[u32 LE split][file A][file B]` (split clamped to what is there):
/// A goes into an in-memory folder as `a`, B under each of `b_names`; then A
/// is opened as an image and walked ([`walk_disk`]).
pub fn open_pair(data: &[u8], a: &str, b_names: &[&str]) {
    let Some((head, rest)) = data.split_first_chunk::<4>() else { return };
    let split = (u32::from_le_bytes(*head) as usize).min(rest.len());
    let (a_bytes, b_bytes) = rest.split_at(split);
    let dir = MemDir::new();
    dir.insert(a, a_bytes.to_vec());
    for n in b_names {
        dir.insert(n, b_bytes.to_vec());
    }
    let Ok(src) = dir.open(a) else { return };
    if let Ok(img) = open_source(Arc::new(src)) {
        walk_disk(&img);
    }
}

thread_local! {
    static IN_NT_HIVE: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
}

/// Panics stay fatal (libfuzzer-sys' hook prints, then aborts) except those
/// raised while [`in_nt_hive`] runs: nt-hive asserts on the 0xFFFFFFFF "no
/// cell" offset and overflows on zero-size cells in debug builds, which is
/// not rdprescue's. With `only_its_source`, only panics located in the
/// nt-hive crate's own source are tolerated. HIVE_FUZZ_STRICT_NTHIVE set:
/// none is. Installed once per process.
pub fn tolerate_nt_hive_panics(only_its_source: bool) {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        if std::env::var_os("HIVE_FUZZ_STRICT_NTHIVE").is_some() {
            return;
        }
        let abort_hook = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            let located = !only_its_source || info.location().is_some_and(|l| l.file().contains("nt-hive-"));
            if !(located && IN_NT_HIVE.with(|f| f.get())) {
                abort_hook(info);
            }
        }));
    });
}

/// Run `f` (which calls into nt-hive); None if it panicked.
pub fn in_nt_hive<T>(f: impl FnOnce() -> T) -> Option<T> {
    IN_NT_HIVE.with(|c| c.set(true));
    let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(f)).ok();
    IN_NT_HIVE.with(|c| c.set(false));
    r
}
