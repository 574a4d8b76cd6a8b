//! The name of the undo copy an in-place fix of a mounted volume keeps beside
//! each hive file (`repair::commit::undo_copy_path`): `<hive>.rdprescue-undo`
//! in the same folder, the name the CLI help and `undo` document, and one the
//! machine loader skips as its own (`machine::is_ours`), so a copy is never
//! taken for a hive. (tests/mounted.rs checks it end to end, with
//! ../shared/data.)

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
