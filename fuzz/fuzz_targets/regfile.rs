//! The .reg reader (`rdprescue::hive::regfile::{decode, parse}`) on arbitrary
//! bytes, and the writer (`value_line`, `document`) against it.
//!
//! Input: the bytes of a .reg file (UTF-16LE with BOM, or UTF-8).
//!
//! Invariants: no panic; when `parse` succeeds, every `SetValue` written back
//! as a one-key document (`document(key, [Key { path: "", values: [Value {
//! name, kind, raw: data }] }])`, through `value_line`) parses to exactly
//! `[AddKey { key }, SetValue { key, name, kind, data }]` again, and its
//! UTF-16LE form (`utf16_bytes`, as regedit saves) decodes to the same text.
//!
//! `fuzz/regfile.dict` (passed by run.sh) holds .reg tokens; without it the
//! fuzzer rarely builds `hex(1):` data that decodes to a line feed.
#![no_main]
use libfuzzer_sys::fuzz_target;
use rdprescue::hive::regfile::{decode, document, parse, utf16_bytes, value_line, RegOp};
use rdprescue::hive::tree::{Key, Value};

fuzz_target!(|data: &[u8]| {
    let Ok(text) = decode(data) else { return };
    let Ok(ops) = parse(&text) else { return };
    for op in &ops {
        let RegOp::SetValue { key, name, kind, data } = op else { continue };
        let v = Value { name: name.clone(), kind: *kind, raw: data.clone() };
        let line = value_line(&v);
        let k = Key {
            path: String::new(),
            name: String::new(),
            last_write: None,
            class: None,
            values: vec![v],
            subkeys: vec![],
        };
        let doc = document(key, &[k]);
        let want = vec![RegOp::AddKey { key: key.clone() }, op.clone()];
        match parse(&doc) {
            Ok(got) => assert_eq!(got, want, "round trip of {line:?} in [{key}] changed it"),
            Err(e) => panic!("round trip of {line:?} in [{key}] does not parse: {e}"),
        }
        let wide = decode(&utf16_bytes(&doc)).expect("decode of utf16_bytes");
        assert_eq!(wide, doc, "UTF-16 form decodes to another text");
    }
});
