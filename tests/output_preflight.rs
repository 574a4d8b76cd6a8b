//! `repair::output::preflight`, the check of a new output's name before
//! anything is opened: a target in a folder that does not exist is refused
//! naming that folder (not the working directory), one in an existing folder
//! passes, and an existing file or the input itself is refused.

use rdprescue::repair::output::preflight;

#[test]
fn the_target_folder_must_exist() {
    let d = tempfile::tempdir().unwrap();
    let missing = d.path().join("no-such-folder");
    let e = preflight(&missing.join("new.vhdx"), &[]).err().expect("a target in a missing folder passed").to_string();
    assert!(e.contains("does not exist") && e.contains("no-such-folder"), "{e}");
    preflight(&d.path().join("new.vhdx"), &[]).unwrap();
    let taken = d.path().join("taken.vhdx");
    std::fs::write(&taken, b"x").unwrap();
    let e = preflight(&taken, &[]).err().expect("an existing target passed").to_string();
    assert!(e.contains("never overwrites"), "{e}");
    let e = preflight(&taken, &[taken.as_path()]).err().expect("the input as target passed").to_string();
    assert!(e.contains("it is the input"), "{e}");
}
