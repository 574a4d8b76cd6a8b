//! The name of the undo copy an in-place fix of a mounted volume keeps beside
//! each hive file (`repair::commit::undo_copy_path`): `<hive>.rdprescue-undo`
//! in the same folder, the name the CLI help and `undo` document, and one the
//! machine loader skips as its own (`machine::is_ours`), so a copy is never
//! taken for a hive; and `undo_files` restoring from those copies, with its
//! counts. (tests/mounted.rs checks it end to end, with ../shared/data.)

use rdprescue::machine::is_ours;
use rdprescue::repair::commit::{undo_copy_path, UNDO_SUFFIX};
use std::path::Path;

#[test]
fn undo_copy_sits_beside_its_hive() {
    assert_eq!(UNDO_SUFFIX, ".rdprescue-undo");
    let hive = Path::new("mnt").join("Windows").join("System32").join("config").join("SYSTEM");
    let copy = undo_copy_path(&hive);
    assert_eq!(copy, Path::new("mnt").join("Windows").join("System32").join("config").join("SYSTEM.rdprescue-undo"));
    assert!(is_ours(&copy));
    assert!(!is_ours(&hive));
    // A lower-case hive name keeps its spelling.
    assert_eq!(undo_copy_path(Path::new("software")), Path::new("software.rdprescue-undo"));
}

/// `undo_files` on a directory of hive files: SYSTEM was changed since its
/// undo copy was made, SOFTWARE still holds its copy's bytes. One file is
/// written back, one already held the original; both copies are removed.
#[test]
fn undo_files_counts_written_and_already_restored() {
    let d = tempfile::tempdir().unwrap();
    let td = Path::new(env!("CARGO_MANIFEST_DIR")).join("testdata/hives");
    let system = std::fs::read(td.join("SYSTEM")).unwrap();
    let software = std::fs::read(td.join("SOFTWARE")).unwrap();
    let mut changed = system.clone();
    let last = changed.len() - 1;
    changed[last] ^= 0xFF;
    std::fs::write(d.path().join("SYSTEM"), &changed).unwrap();
    std::fs::write(d.path().join("SOFTWARE"), &software).unwrap();
    std::fs::write(undo_copy_path(&d.path().join("SYSTEM")), &system).unwrap();
    std::fs::write(undo_copy_path(&d.path().join("SOFTWARE")), &software).unwrap();
    let r = rdprescue::repair::commit::undo_files(d.path()).unwrap();
    assert_eq!((r.written, r.already), (1, 1));
    assert!(std::fs::read(d.path().join("SYSTEM")).unwrap() == system, "SYSTEM not restored");
    assert!(std::fs::read(d.path().join("SOFTWARE")).unwrap() == software);
    let mut left: Vec<String> = std::fs::read_dir(d.path()).unwrap().map(|e| e.unwrap().file_name().to_string_lossy().into_owned()).collect();
    left.sort();
    assert_eq!(left, vec!["SOFTWARE", "SYSTEM"], "undo copies left behind");
}
