//! The NTFS and FAT overwrite plans (`FileSystem::overwrite_plan`) on
//! arbitrary volumes and changes: never panic; an accepted plan writes
//! exactly the changed bytes (same total, same data in file order), inside
//! the volume.
//!
//! Input layout: `[path index u8][3 x (u32 LE file offset, u16 LE length)][volume]`;
//! the path is one of the hive locations or the names in fuzz/run.sh's seeds.
#![no_main]
use libfuzzer_sys::fuzz_target;
use rdprescue_fuzz::{keep_guarded_panics, raw_volume};

const PATHS: &[&str] = &[
    r"\Windows\System32\config\SYSTEM",
    r"\Windows\System32\config\SOFTWARE",
    r"\Boot\BCD",
    r"\EFI\Microsoft\Boot\BCD",
    "/plain.bin",
    "/comp/compressed.bin",
    "/sparse.bin",
    "/resident.bin",
    "/frag.bin",
    "/encrypted.bin",
];

fuzz_target!(init: keep_guarded_panics(), |data: &[u8]| {
    if data.len() < 19 {
        return;
    }
    let path = PATHS[data[0] as usize % PATHS.len()];
    let changes: Vec<(u64, Vec<u8>)> = (0..3)
        .map(|i| {
            let c = &data[1 + 6 * i..7 + 6 * i];
            let off = u32::from_le_bytes(c[0..4].try_into().unwrap()) as u64;
            let len = u16::from_le_bytes(c[4..6].try_into().unwrap()) as usize;
            (off, (0..len).map(|k| (k as u8) ^ (i as u8 * 0x55)).collect())
        })
        .filter(|(_, d): &(u64, Vec<u8>)| !d.is_empty())
        .collect();
    let vol = &data[19..];
    let Some(fs) = raw_volume(vol) else { return };
    let Ok(plan) = fs.overwrite_plan(path, &changes) else { return };
    let want: Vec<u8> = changes.iter().flat_map(|(_, d)| d.iter().copied()).collect();
    let got: Vec<u8> = plan.iter().flat_map(|(_, d)| d.iter().copied()).collect();
    assert_eq!(got, want, "{path}: the plan does not carry the changed bytes in order");
    for (at, d) in &plan {
        assert!(at.checked_add(d.len() as u64).is_some_and(|e| e <= vol.len() as u64), "{path}: plan writes at {at:#x}+{} past the {}-byte volume", d.len(), vol.len());
    }
});
