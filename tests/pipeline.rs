//! Every writer goes through the one write pipeline (`repair::commit`): a
//! crash at any of its steps leaves no output and no temporary file behind,
//! and never touches the input; in place, the undo file is on disk before the
//! first byte of the device changes and always brings the original back.
//! The process is killed (aborted) at the named step by `RDPRESCUE_FAULT`.

mod common;
use common::*;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn with_fault(step: &str, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_rdprescue")).args(args).env("RDPRESCUE_FAULT", step).out().unwrap()
}

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

/// Names in `dir` other than `keep`.
fn leftovers(dir: &Path, keep: &[&Path]) -> Vec<String> {
    std::fs::read_dir(dir)
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .filter(|p| !keep.iter().any(|k| k == p))
        .map(|p| p.file_name().unwrap().to_string_lossy().to_string())
        .collect()
}

/// Run `args` killed at `step`: it must have died there, leaving the input
/// unchanged and `dir` holding only `keep`, apart from (when `named`) the
/// process's own named temporary, which a later run removes.
fn crash(step: &str, args: &[&str], input: &Path, dir: &Path, keep: &[&Path], named: bool) {
    let before = sha256_file(input);
    let o = with_fault(step, args);
    assert!(aborted(&o.status), "{step} {args:?}: not killed ({}): {}", o.status, stderr(&o));
    assert!(stderr(&o).contains(&format!("fault injected at {step}")), "{step} {args:?}: hook not reached: {}", stderr(&o));
    assert_eq!(sha256_file(input), before, "{step} {args:?}: the input changed");
    let named = named || NAMED_TEMPORARIES_ONLY;
    let left: Vec<String> = leftovers(dir, keep).into_iter().filter(|n| !(named && n.contains(".rdprescue-") && n.ends_with(".tmp"))).collect();
    assert!(left.is_empty(), "{step} {args:?}: left behind: {left:?}");
}

fn demo_copy(dir: &Path) -> PathBuf {
    let p = dir.join("demo.vhdx");
    std::fs::copy(testdata().join("demo.vhdx"), &p).unwrap();
    p
}

/// The demo disk as a raw image (in-place fixes write raw disks only).
fn demo_raw(dir: &Path) -> PathBuf {
    let img = rdprescue::image::open(&testdata().join("demo.vhdx")).unwrap();
    let p = dir.join("disk.raw");
    std::fs::write(&p, disk_bytes(img.disk.as_ref())).unwrap();
    p
}

#[test]
fn image_outputs_leave_nothing_behind() {
    let d = tempfile::tempdir().unwrap();
    let input = demo_copy(d.path());
    let out = d.path().join("out.vhdx");
    let reg = d.path().join("x.reg");
    std::fs::write(&reg, "Windows Registry Editor Version 5.00\r\n\r\n[HKEY_LOCAL_MACHINE\\SYSTEM\\CurrentControlSet\\Control\\Terminal Server]\r\n\"fDenyTSConnections\"=dword:00000000\r\n").unwrap();
    let keep = [input.as_path(), reg.as_path()];
    let commands: Vec<Vec<&str>> = vec![
        vec!["fix", s(&input), "--profile", "reset-rdp", "--out", s(&out)],
        vec!["fix", s(&input), "--profile", "reset-rdp", "--diff-child", "--out", s(&out)],
        vec!["reg", "set", s(&input), r"HKLM\SYSTEM\CurrentControlSet\Control\Terminal Server", "-v", "fDenyTSConnections", "-t", "REG_DWORD", "-d", "0", "--out", s(&out)],
        vec!["reg", "import", s(&input), s(&reg), "--out", s(&out)],
    ];
    for args in &commands {
        // A differencing child is staged as a named temporary (it is read back
        // through its directory, where its parent locator resolves); an
        // abort cannot remove it, the next run to that name does.
        let named = args.contains(&"--diff-child");
        for step in ["before-verify", "before-rename"] {
            crash(step, args, &input, d.path(), &keep, named);
        }
        // Without a fault the same command writes a verified output, and
        // nothing else is left beside it.
        let o = rdp(args);
        assert_eq!(o.status.code(), Some(0), "{args:?}: {}", stderr(&o));
        assert!(stdout(&o).contains("verified by reading it back"), "{args:?}: {}", stdout(&o));
        assert_eq!(leftovers(d.path(), &[&input, &reg, &out]), Vec::<String>::new(), "{args:?}");
        std::fs::remove_file(&out).unwrap();
    }
}

#[test]
fn hive_file_output_leaves_nothing_behind() {
    let d = tempfile::tempdir().unwrap();
    let hive = d.path().join("SYSTEM");
    std::fs::copy(testdata().join("hives/SYSTEM"), &hive).unwrap();
    let out = d.path().join("SYSTEM.new");
    let args = ["reg", "set", s(&hive), r"HKLM\SYSTEM\Select", "-v", "Zz", "-t", "REG_DWORD", "-d", "5", "--out", s(&out)];
    for step in ["before-verify", "before-rename"] {
        crash(step, &args, &hive, d.path(), &[hive.as_path()], false);
    }
    let o = rdp(&args);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let q = rdp(&["reg", "query", s(&out), r"HKLM\SYSTEM\Select", "-v", "Zz"]);
    assert!(stdout(&q).lines().any(|l| l.ends_with("REG_DWORD    0x5")), "{}", stdout(&q));
}

#[test]
fn in_place_and_undo_always_restore_the_original() {
    let d = tempfile::tempdir().unwrap();
    let dev = demo_raw(d.path());
    let original = sha256_file(&dev);
    let undo = d.path().join("undo.json");
    let fix = ["fix", s(&dev), "--profile", "reset-rdp", "--in-place", "--undo", s(&undo)];

    // Killed once the undo file is saved, before the disk is written: the
    // disk is untouched and the undo file is complete (undo finds nothing to do).
    let o = with_fault("in-place-undo-saved", &fix);
    assert!(aborted(&o.status), "{}", stderr(&o));
    assert_eq!(sha256_file(&dev), original);
    assert_eq!(leftovers(d.path(), &[&dev, &undo]), Vec::<String>::new());
    let o = rdp(&["undo", s(&dev), s(&undo)]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert_eq!(sha256_file(&dev), original);
    std::fs::remove_file(&undo).unwrap();

    // Killed after the disk was written, before it was read back: undo
    // brings the original back.
    let o = with_fault("before-verify", &fix);
    assert!(aborted(&o.status), "{}", stderr(&o));
    assert_ne!(sha256_file(&dev), original);
    // Undo killed before its first write changes nothing; run again, it restores.
    let fixed = sha256_file(&dev);
    let o = with_fault("undo-before-write", &["undo", s(&dev), s(&undo)]);
    assert!(aborted(&o.status), "{}", stderr(&o));
    assert_eq!(sha256_file(&dev), fixed);
    let o = rdp(&["undo", s(&dev), s(&undo)]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert_eq!(sha256_file(&dev), original);
    std::fs::remove_file(&undo).unwrap();

    // Uninterrupted: fixed, verified, re-inspected; undo restores.
    let o = rdp(&fix);
    assert_eq!(o.status.code(), Some(0), "{}{}", stdout(&o), stderr(&o));
    assert!(stdout(&o).contains("in place, verified by reading it back"), "{}", stdout(&o));
    let o = rdp(&["undo", s(&dev), s(&undo)]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert_eq!(sha256_file(&dev), original);
}
