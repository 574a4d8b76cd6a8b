//! The read-back of a new image (`repair::commit`, `--verify changed`, the
//! default): the output is reopened through the image layer and every
//! patched range compared byte for byte; the "after" checks come from the
//! loaded machine with the edited hives substituted. A writer handed one wrong
//! byte inside a patched hive page (`RDPRESCUE_FAULT=wrong-byte`) must fail
//! the commit and leave nothing behind, in every container and with either
//! verification; and both verifications must report the same checks after.

mod common;
use common::*;
use serde_json::Value as J;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

fn demo_copy(dir: &Path) -> PathBuf {
    let p = dir.join("demo.vhdx");
    std::fs::copy(testdata().join("demo.vhdx"), &p).unwrap();
    p
}

fn wrong_byte(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_rdprescue")).args(args).env("RDPRESCUE_FAULT", "wrong-byte").out().unwrap()
}

fn names(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(dir).unwrap().flatten().map(|e| e.file_name().to_string_lossy().to_string()).collect();
    v.sort();
    v
}

/// A VHD copy of the demo disk (to write VHD children from).
fn demo_vhd(dir: &Path, input: &Path) -> PathBuf {
    let vhd = dir.join("demo.vhd");
    let o = rdp(&["reg", "set", s(input), r"HKLM\SYSTEM\Select", "-v", "Zz", "-t", "REG_DWORD", "-d", "5", "--out", s(&vhd)]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    vhd
}

#[test]
fn one_wrong_byte_in_a_patched_page_fails_the_commit() {
    let d = tempfile::tempdir().unwrap();
    let input = demo_copy(d.path());
    let vhd = demo_vhd(d.path(), &input);
    let before = names(d.path());
    let (h_vhdx, h_vhd) = (sha256_file(&input), sha256_file(&vhd));
    let out_vhdx = d.path().join("out.vhdx");
    let out_raw = d.path().join("out.raw");
    let out_vhd = d.path().join("out.vhd");
    let child_vhdx = d.path().join("child.avhdx");
    let child_vhd = d.path().join("child.vhd");
    let cases: Vec<Vec<&str>> = vec![
        vec!["fix", s(&input), "--profile", "reset-rdp", "--out", s(&out_vhdx)],
        vec!["fix", s(&input), "--profile", "reset-rdp", "--out", s(&out_raw)],
        vec!["fix", s(&input), "--profile", "reset-rdp", "--out", s(&out_vhd)],
        vec!["fix", s(&input), "--profile", "reset-rdp", "--diff-child", "--out", s(&child_vhdx)],
        vec!["fix", s(&vhd), "--profile", "reset-rdp", "--diff-child", "--out", s(&child_vhd)],
        vec!["reg", "set", s(&input), r"HKLM\SYSTEM\Select", "-v", "Zz", "-t", "REG_DWORD", "-d", "6", "--diff-child", "--out", s(&child_vhdx)],
    ];
    // The whole-machine reopen (--verify full) catches it too: checked on
    // one full copy and one child (it is the slower path).
    for (i, args) in cases.iter().enumerate() {
        for verify in ["changed", "full"] {
            let mut a = args.clone();
            if verify == "full" && !(i == 0 || i == 3) {
                continue;
            }
            if a[0] == "fix" {
                a.extend(["--verify", verify]);
            }
            let o = wrong_byte(&a);
            assert_eq!(o.status.code(), Some(2), "{a:?}: a wrong byte was published: {}{}", stdout(&o), stderr(&o));
            let e = error_line(&o);
            assert!(e.contains("verification"), "{a:?}: {e}");
            if verify == "changed" {
                assert!(e.contains("does not hold the planned bytes"), "{a:?}: {e}");
            }
            let now: Vec<String> = names(d.path()).into_iter().filter(|n| !(n.contains(".rdprescue-") && n.ends_with(".tmp"))).collect();
            assert_eq!(now, before, "{a:?}: something was left behind");
            if verify == "full" {
                continue;
            }
            // Without the fault the same command writes a verified output.
            let o = rdp(&a);
            assert_eq!(o.status.code(), Some(0), "{a:?}: {}", stderr(&o));
            let out = PathBuf::from(a[a.iter().position(|x| *x == "--out").unwrap() + 1]);
            std::fs::remove_file(out).unwrap();
        }
    }
    assert_eq!(sha256_file(&input), h_vhdx, "the input changed");
    assert_eq!(sha256_file(&vhd), h_vhd, "the input changed");
}

/// The checks after the fix, as computed from the loaded machine, equal the
/// checks run on the output reopened as a new machine.
#[test]
fn changed_and_full_verification_report_the_same_checks() {
    let d = tempfile::tempdir().unwrap();
    let input = demo_copy(d.path());
    for (i, extra) in [&["--profile", "reset-rdp"][..], &["--all"][..], &["--all", "--diff-child"][..]].iter().enumerate() {
        let mut docs: Vec<J> = Vec::new();
        for verify in ["changed", "full"] {
            let out = d.path().join(format!("out-{i}-{verify}.vhdx"));
            let mut a = vec!["fix", s(&input), "--json", "--verify", verify, "--out", s(&out)];
            a.extend(extra.iter().copied());
            let o = rdp(&a);
            assert!(matches!(o.status.code(), Some(0 | 1)), "{a:?}: {}", stderr(&o));
            let mut j: J = serde_json::from_slice(&o.stdout).unwrap();
            assert_eq!(j["verified"], J::from(true), "{a:?}");
            for k in ["output", "destination"] {
                j[k] = J::Null;
            }
            docs.push(j);
            std::fs::remove_file(&out).unwrap();
        }
        assert!(docs[0]["checks"].as_array().is_some_and(|c| !c.is_empty()), "{extra:?}: no targeted checks");
        assert_eq!(docs[0], docs[1], "{extra:?}: the two verifications disagree");
    }
}
