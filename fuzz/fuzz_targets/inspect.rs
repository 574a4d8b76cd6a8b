//! The whole check evaluation (`rdp::inspect`) on arbitrary hives: SYSTEM,
//! SOFTWARE and BCD bytes, each loaded by `hive::load` (recovery included);
//! those that load are handed to the catalog. Never panics; every finding's
//! fix edits name a hive kind that was given.
//!
//! Input layout: `[u32 LE system length][u32 LE software length][system][software][bcd]`
//! (lengths clamped to what is there; an empty part is no hive).
#![no_main]
use libfuzzer_sys::fuzz_target;
use rdprescue::hive::source::HiveKind;
use rdprescue::hive::tree::Hive;
use rdprescue::rdp::HiveSet;

fn part<'a>(data: &mut &'a [u8], len: Option<usize>) -> &'a [u8] {
    let n = len.unwrap_or(data.len()).min(data.len());
    let (a, b) = data.split_at(n);
    *data = b;
    a
}

fuzz_target!(|data: &[u8]| {
    if data.len() < 8 {
        return;
    }
    let l1 = u32::from_le_bytes(data[0..4].try_into().unwrap()) as usize;
    let l2 = u32::from_le_bytes(data[4..8].try_into().unwrap()) as usize;
    let mut rest = &data[8..];
    let parts = [(HiveKind::System, part(&mut rest, Some(l1))), (HiveKind::Software, part(&mut rest, Some(l2))), (HiveKind::Bcd, part(&mut rest, None))];
    let mut set = HiveSet::default();
    for (kind, bytes) in parts {
        if bytes.is_empty() {
            continue;
        }
        if let Ok(loaded) = rdprescue::hive::load(bytes.to_vec(), None, None) {
            set.hives.push((kind, Hive::new(kind.name(), loaded)));
        }
    }
    let ins = rdprescue::rdp::inspect(&set);
    for f in ins.findings.iter().chain(&ins.notes) {
        for e in &f.actions {
            assert!(set.hives.iter().any(|(k, _)| *k == e.hive), "{}: a fix for a hive that was not given", f.check);
        }
    }
});
