//! The hive editor's ownership walk (`HiveEditor::new` → `check_ownership`) on
//! hostile hives crafted from the repo's small SYSTEM hive (testdata/hives,
//! 20 KiB, made by mkhive): each damage must be refused with the error that
//! names it, at the damaged cell, and a class pointer whose length is 0 must be
//! ignored (length 0 means "no class name", whatever the pointer says), as the
//! editor's delete path ignores it. Offsets are found by a linear scan of the
//! raw cells here, independent of the editor.

mod common;
use common::*;
use rdprescue::hive::edit::HiveEditor;
use rdprescue::{Error, Layer};

const BASE: usize = 4096;

fn system() -> Vec<u8> {
    std::fs::read(testdata().join("hives/SYSTEM")).unwrap()
}

fn u16_at(b: &[u8], o: usize) -> u16 {
    u16::from_le_bytes(b[o..o + 2].try_into().unwrap())
}
fn u32_at(b: &[u8], o: usize) -> u32 {
    u32::from_le_bytes(b[o..o + 4].try_into().unwrap())
}
fn put16(b: &mut [u8], o: usize, v: u16) {
    b[o..o + 2].copy_from_slice(&v.to_le_bytes());
}
fn put32(b: &mut [u8], o: usize, v: u32) {
    b[o..o + 4].copy_from_slice(&v.to_le_bytes());
}

/// Every cell (hbin-relative offset, signed size field) of the hive, by walking
/// the hbins and their cells linearly.
fn cells(b: &[u8]) -> Vec<(u32, i32)> {
    let hbins = u32_at(b, 40);
    let mut out = Vec::new();
    let mut h = 0u32;
    while h < hbins {
        let size = u32_at(b, BASE + h as usize + 8);
        let mut c = h + 32;
        while c < h + size {
            let raw = u32_at(b, BASE + c as usize) as i32;
            out.push((c, raw));
            c += raw.unsigned_abs();
        }
        h += size;
    }
    out
}

fn root(b: &[u8]) -> u32 {
    u32_at(b, 36)
}

/// File offset of the data of cell `c` (after its size field).
fn data(c: u32) -> usize {
    BASE + c as usize + 4
}

/// The editor's refusal: a hive-layer Corrupt error at `cell`'s file offset
/// whose message contains `what`.
fn assert_refused(b: Vec<u8>, cell: u32, what: &str) {
    match HiveEditor::new(b, 0) {
        Ok(_) => panic!("hostile hive accepted (expected: {what})"),
        Err(Error::Corrupt { layer, offset, msg }) => {
            assert_eq!(layer, Layer::Hive, "{msg}");
            assert!(msg.contains(what), "wrong refusal: {msg:?}, expected {what:?}");
            assert_eq!(offset, (BASE + cell as usize) as u64, "{msg}");
        }
        Err(e) => panic!("wrong error kind: {e}"),
    }
}

#[test]
fn the_unmodified_hive_opens() {
    let b = system();
    let root = root(&b);
    assert_eq!(&b[data(root)..data(root) + 2], b"nk");
    HiveEditor::new(b, 0).unwrap();
}

/// A key node cell shorter than the fixed nk header (76 bytes, up to the name):
/// the root's 88-byte cell is split into a 72-byte allocated cell (68 bytes of
/// data) and a 16-byte free cell, so the cells still tile the hbin. The nk
/// check must refuse it as "not a key node", before reading any field past the
/// cell (a `<` turned into `==` lets it through to the name check instead).
#[test]
fn key_node_shorter_than_its_header_is_refused() {
    let mut b = system();
    let root = root(&b);
    let size = u32_at(&b, BASE + root as usize) as i32;
    assert_eq!(size, -88, "the fixture's root cell changed; adjust the split");
    put32(&mut b, BASE + root as usize, (-72i32) as u32);
    put32(&mut b, BASE + root as usize + 72, 16);
    assert_eq!(cells(&b).iter().find(|c| c.0 == root).unwrap().1, -72);
    assert_refused(b, root, "is not a key node (nk)");
}

/// A key whose class-name pointer names a cell but whose class length is 0 has
/// no class name: the pointer must not claim that cell. Here it names the
/// root's own subkey list, which the root owns; claiming it would refuse the
/// hive as "referenced twice". It must open, and deleting the key must leave
/// the named cell alone (the editor's delete skips such a pointer too).
#[test]
fn class_pointer_with_zero_length_is_ignored() {
    let mut b = system();
    let root = root(&b);
    let list = u32_at(&b, data(root) + 28);
    // The root's first subkey (an lh leaf: offset, hash pairs).
    assert_eq!(&b[data(list)..data(list) + 2], b"lh");
    let child = u32_at(&b, data(list) + 4);
    let nk = data(child);
    assert_eq!(&b[nk..nk + 2], b"nk");
    assert_eq!(u16_at(&b, nk + 74), 0, "the fixture's key has a class name");
    // Point the child's class at the root's subkey list, length 0.
    put32(&mut b, nk + 48, list);
    let mut ed = HiveEditor::new(b.clone(), 0).expect("a zero-length class pointer must be ignored");
    // Its name, to delete it by path.
    let nlen = u16_at(&b, nk + 72) as usize;
    assert_ne!(u16_at(&b, nk + 2) & 0x20, 0, "compressed (Latin-1) name expected");
    let name: String = b[nk + 76..nk + 76 + nlen].iter().map(|&c| c as char).collect();
    assert!(ed.delete_key(&name).unwrap(), "{name} not deleted");
    let out = ed.finish().unwrap();
    // The root's subkey list (or its replacement) is still an allocated list.
    let list2 = u32_at(&out, data(root) + 28);
    let (_, raw) = *cells(&out).iter().find(|c| c.0 == list2).unwrap();
    assert!(raw < 0, "the root's subkey list was freed");
    HiveEditor::new(out, 0).expect("the edited hive must reopen");
}

/// The same pointer with a non-zero length is a class name and does claim the
/// cell: a cell owned twice is refused.
#[test]
fn class_pointer_into_an_owned_cell_is_refused() {
    let mut b = system();
    let root = root(&b);
    let list = u32_at(&b, data(root) + 28);
    let child = u32_at(&b, data(list) + 4);
    let nk = data(child);
    put32(&mut b, nk + 48, list);
    put16(&mut b, nk + 74, 8);
    // The walk pops the root first and claims its list, then the child's class.
    assert_refused(b, list, "is referenced twice");
}

/// An index root ("ri") whose entry count runs past its cell: the root's
/// subkey list relabelled "ri" with a count of 1000 (4 + 4 * 1000 bytes in a
/// 36-byte cell). It must be refused by the count check, naming the index
/// root, not by whatever the out-of-cell entries would point at.
#[test]
fn index_root_count_overrunning_its_cell_is_refused() {
    let mut b = system();
    let root = root(&b);
    let list = u32_at(&b, data(root) + 28);
    let (_, raw) = *cells(&b).iter().find(|c| c.0 == list).unwrap();
    assert!(raw.unsigned_abs() < 4 + 4 * 1000);
    b[data(list)..data(list) + 2].copy_from_slice(b"ri");
    put16(&mut b, data(list) + 2, 1000);
    assert_refused(b, list, "index root with 1000 entries is longer than its cell");
}

/// An index root whose count fits: the lh leaf's 4 (offset, hash) pairs read
/// as 8 ri entries fits the cell, so the walk goes on to the entries and
/// refuses the first that is not a subkey leaf (an nk), not the count.
#[test]
fn index_root_that_fits_is_walked() {
    let mut b = system();
    let root = root(&b);
    let list = u32_at(&b, data(root) + 28);
    let n = u16_at(&b, data(list) + 2);
    b[data(list)..data(list) + 2].copy_from_slice(b"ri");
    put16(&mut b, data(list) + 2, 2 * n);
    let first = u32_at(&b, data(list) + 4);
    // The second entry is the first child's hash, not a cell start.
    let err = HiveEditor::new(b, 0).err().expect("an ri over key nodes must be refused").to_string();
    assert!(!err.contains("longer than its cell"), "{err}");
    assert!(err.contains("not the start of a cell") || err.contains(&format!("cell {first:#x} is not a subkey leaf")), "{err}");
}
