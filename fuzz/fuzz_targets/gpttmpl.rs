//! The `GptTmpl.inf` security-template parser (`policy::inf`) on arbitrary
//! bytes (UTF-16LE with or without BOM, UTF-8, ANSI).
//!
//! Invariants: no panic; an error (of the parser or of a typed section
//! reader) is one line naming `policy/inf`; every line offset is inside the
//! input; the typed readers ([Privilege Rights], [Registry Values],
//! [System Access], [Service General Setting]) never panic on a parsed file.
#![no_main]
use libfuzzer_sys::fuzz_target;
use rdprescue::policy::inf::SecTemplate;

fn one_line(e: rdprescue::Error) {
    let m = e.to_string();
    assert!(m.starts_with("policy/inf") && !m.contains('\n'), "{m}");
}

fuzz_target!(|data: &[u8]| {
    match SecTemplate::parse(data) {
        Ok(t) => {
            for s in &t.sections {
                for l in &s.lines {
                    assert!((l.offset as usize) < data.len().max(1), "line offset past the end");
                }
            }
            for (_, who, _) in t.privilege_rights() {
                for p in who {
                    let _ = p.sid();
                }
            }
            match t.registry_values() {
                Ok(v) => v.iter().for_each(|r| {
                    let _ = r.dword();
                }),
                Err(e) => one_line(e),
            }
            if let Err(e) = t.services() {
                one_line(e);
            }
            let _ = t.system_access("EnableAdminAccount");
        }
        Err(e) => one_line(e),
    }
});
