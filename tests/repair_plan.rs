//! `repair::plan` / `plan_with_files` decisions, on the repo's own fixtures
//! (testdata/hives/SYSTEM as a hive-file machine, testdata/demo.vhdx for
//! same-size file rewrites): which edits are dropped as changing nothing, the
//! old data the plan shows, a key deleted and then written again, and the
//! bounds of a file edit. Expectations come from testdata/hives/SYSTEM.reg
//! (hivexregedit's export) and fixtures.json, not from rdprescue.
//! Nothing is written: a plan only reads.

mod common;
use common::*;
use rdprescue::hive::edit::{Edit, EditOp, RegData};
use rdprescue::hive::HiveKind;
use rdprescue::machine::Machine;
use rdprescue::repair::{self, FileEdit};
use serde_json::json;

const K: HiveKind = HiveKind::System;

fn system_machine() -> Machine {
    Machine::open(&testdata().join("hives/SYSTEM")).unwrap()
}

/// The planned changes of the SYSTEM hive: (op, key, old).
fn planned(m: &Machine, edits: &[Edit]) -> Vec<(EditOp, String, serde_json::Value)> {
    let p = repair::plan(m, edits).unwrap();
    assert!(p.files.is_empty());
    assert!(p.edits.len() <= 1);
    p.edits.into_iter().flat_map(|e| e.changes).map(|c| (c.action.op, c.action.key, c.old)).collect()
}

/// Select\Current is dword 1 (SYSTEM.reg). Setting it to dword 1 changes
/// nothing and is dropped; the same four bytes as REG_BINARY change its type
/// and are kept, showing the old data (1).
#[test]
fn a_value_is_dropped_only_when_type_and_data_both_match() {
    let m = system_machine();
    assert!(planned(&m, &[Edit::set(K, "Select", "Current", RegData::Dword(1))]).is_empty(), "a no-op set was planned");
    let got = planned(&m, &[Edit::set(K, "Select", "Current", RegData::Binary(vec![1, 0, 0, 0]))]);
    assert_eq!(got.len(), 1, "a type change with the same bytes was dropped: {got:?}");
    assert_eq!(got[0].2, json!(1), "old data of Select\\Current");
    // Other data, same type: kept, old data shown.
    let got = planned(&m, &[Edit::set(K, "Select", "Failed", RegData::Dword(7))]);
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].2, json!(0), "old data of Select\\Failed");
    // A new value: old is null.
    let got = planned(&m, &[Edit::set(K, "Select", "Absent", RegData::Dword(7))]);
    assert_eq!(got[0].2, serde_json::Value::Null);
}

/// The old data of a key edit is its size as shown in the plan: Setup has 3
/// values and no subkeys (SYSTEM.reg).
#[test]
fn a_deleted_key_shows_what_it_held() {
    let m = system_machine();
    let got = planned(&m, &[Edit::delete_key(K, "Setup")]);
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].0, EditOp::DeleteKey);
    assert_eq!(got[0].2, json!("3 values, 0 subkeys"));
    let got = planned(&m, &[Edit::delete_value(K, "Setup", "SetupType")]);
    assert_eq!(got[0].2, json!(0));
}

/// A key deleted and then written again: below a deleted key the hive as
/// loaded says nothing, so a value set to the data it had before the delete,
/// and a create of the deleted key, are changes, not no-ops. The edited hive
/// must hold the key with exactly that one value.
#[test]
fn writes_below_a_key_deleted_earlier_in_the_plan_are_kept() {
    let m = system_machine();
    let edits = [Edit::delete_key(K, "Setup"), Edit::set(K, "Setup", "SetupType", RegData::Dword(0))];
    let p = repair::plan(&m, &edits).unwrap();
    assert_eq!(p.edits.len(), 1);
    let ops: Vec<&EditOp> = p.edits[0].changes.iter().map(|c| &c.action.op).collect();
    assert_eq!(ops.len(), 2, "the set after the delete was dropped: {ops:?}");
    // Read the planned bytes back with nt-hive (through the tree reader).
    let h = rdprescue::hive::tree::Hive::new("SYSTEM", rdprescue::hive::load(p.edits[0].new_bytes().unwrap().to_vec(), None, None).unwrap());
    let k = h.key("Setup").expect("Setup recreated");
    let vals: Vec<(String, u32, Vec<u8>)> = k.values.iter().map(|v| (v.name.clone(), v.kind, v.raw.clone())).collect();
    assert_eq!(vals, vec![("SetupType".to_string(), 4, vec![0, 0, 0, 0])]);

    let p = repair::plan(&m, &[Edit::delete_key(K, "Setup"), Edit::create_key(K, "Setup")]).unwrap();
    assert_eq!(p.edits[0].changes.len(), 2, "the create after the delete was dropped");
    let h = rdprescue::hive::tree::Hive::new("SYSTEM", rdprescue::hive::load(p.edits[0].new_bytes().unwrap().to_vec(), None, None).unwrap());
    assert!(h.key("Setup").expect("Setup recreated").values.is_empty());
}

/// Same-size rewrites of a file on the demo image (\Windows\System32\termsrv.dll,
/// 2048 bytes, partition 3 in fixtures.json): an edit of the file's last two
/// bytes is in bounds; one starting a byte later runs past the end and is
/// refused; the planned file is the old one with exactly the edit applied.
#[test]
fn file_edits_up_to_the_last_byte_are_planned() {
    let m = Machine::open(&testdata().join("demo.vhdx")).unwrap();
    let path = r"\Windows\System32\termsrv.dll";
    let old = m.mount(3).unwrap().read_file(path, 1 << 20).unwrap();
    assert_eq!(old.len(), 2048);
    let at = old.len() - 2;
    let flip = |b: &[u8]| b.iter().map(|x| !x).collect::<Vec<u8>>();
    let edit = |offset: usize, old_bytes: &[u8]| FileEdit {
        partition: 3,
        path: path.into(),
        offset: offset as u64,
        old: old_bytes.to_vec(),
        new: flip(old_bytes),
        what: "test".into(),
    };
    let p = repair::plan_with_files(&m, &[], &[edit(at, &old[at..])]).unwrap();
    assert_eq!(p.files.len(), 1);
    let mut want = old.clone();
    want[at..].copy_from_slice(&flip(&old[at..]));
    assert_eq!(p.files[0].new_bytes, want);
    assert_eq!(p.files[0].bytes_changed, 512, "one sector rewritten");
    // One byte further: the end is past the file.
    let e = repair::plan_with_files(&m, &[], &[edit(at + 1, &old[at..])]).err().expect("an edit past the end was planned").to_string();
    assert!(e.contains("are not the ones the fix was planned against"), "{e}");
    // In bounds but other bytes there: refused the same way.
    let e = repair::plan_with_files(&m, &[], &[edit(0, &flip(&old[..2]))]).err().expect("a stale edit was planned").to_string();
    assert!(e.contains("are not the ones the fix was planned against"), "{e}");
}

/// Files up to MAX_EDITED_FILE (16 MiB) are rewritten: the 3 MiB fragmented
/// file of the demo image is planned.
#[test]
fn a_multi_megabyte_file_can_be_edited() {
    assert_eq!(repair::MAX_EDITED_FILE, 16 << 20);
    let m = Machine::open(&testdata().join("demo.vhdx")).unwrap();
    let path = r"\Windows\Temp\fragmented.bin";
    let old = m.mount(3).unwrap().read_file(path, 1 << 30).unwrap();
    assert_eq!(old.len(), 3 << 20);
    let at = old.len() / 2;
    let fe = FileEdit { partition: 3, path: path.into(), offset: at as u64, old: old[at..at + 4].to_vec(), new: old[at..at + 4].iter().map(|x| x ^ 0x5a).collect(), what: "test".into() };
    let p = repair::plan_with_files(&m, &[], &[fe]).unwrap();
    assert_eq!(p.files[0].new_bytes.len(), old.len());
    assert_eq!(p.files[0].bytes_changed, 512);
}

/// The read-back check of file rewrites (`repair::verify_files`) compares the
/// file as read from the written image with the planned bytes: against the
/// untouched demo image, a plan that changes termsrv.dll must fail, and a plan
/// whose new bytes are the file as it is must pass.
#[test]
fn file_verification_compares_the_written_bytes() {
    let m = Machine::open(&testdata().join("demo.vhdx")).unwrap();
    let path = r"\Windows\System32\termsrv.dll";
    let old = m.mount(3).unwrap().read_file(path, 1 << 20).unwrap();
    let fe = FileEdit { partition: 3, path: path.into(), offset: 8, old: old[8..12].to_vec(), new: old[8..12].iter().map(|x| !x).collect(), what: "test".into() };
    let p = repair::plan_with_files(&m, &[], &[fe]).unwrap();
    let e = repair::verify_files(&m, &p.files).err().expect("the unwritten image passed the read-back check").to_string();
    assert!(e.contains("differs from the planned file"), "{e}");
    let mut same = p.files.clone();
    same[0].new_bytes = old;
    repair::verify_files(&m, &same).unwrap();
}
