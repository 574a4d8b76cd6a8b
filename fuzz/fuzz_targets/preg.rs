//! The `Registry.pol` (PReg) parser (`policy::preg`) on arbitrary bytes.
//!
//! Invariants: no panic and no allocation beyond the input's size; an error
//! is one line naming `policy/preg` and an offset inside the input; a parsed
//! file's data offsets point at its data bytes in the input; the writer's
//! bytes of a parsed file parse back to the same entries; every entry's
//! directive decodes without panicking.
#![no_main]
use libfuzzer_sys::fuzz_target;
use rdprescue::policy::preg::PolFile;

fuzz_target!(|data: &[u8]| {
    match PolFile::parse(data) {
        Ok(p) => {
            for e in &p.entries {
                let at = e.data_offset as usize;
                assert_eq!(&data[at..at + e.data.len()], &e.data[..], "data offset does not point at the data");
                assert!((e.offset as usize) < at, "entry starts after its data");
                let _ = (e.directive(), e.target_name(), e.dword());
            }
            let again = PolFile::parse(&p.to_bytes()).expect("the writer's bytes parse");
            let strip = |f: &PolFile| f.entries.iter().map(|e| (e.key.clone(), e.value.clone(), e.ty, e.data.clone())).collect::<Vec<_>>();
            assert_eq!(strip(&again), strip(&p), "write/parse round trip");
            if let Some(e) = p.entries.first() {
                let _ = p.lookup(&e.key, &e.value);
            }
        }
        Err(e) => {
            let m = e.to_string();
            assert!(m.starts_with("policy/preg") && !m.contains('\n'), "{m}");
        }
    }
});
