//! Keys are looked up in the hive they name: a hive file refuses keys of
//! another hive (issue 11 item 9), and keys under roots that are no machine
//! hive on disk (HKCU, HKU, HKLM\HARDWARE) are refused, never read or
//! written as literal subkeys.

mod common;
use common::*;
use std::path::{Path, PathBuf};

/// A copy of testdata/hives/SYSTEM in a fresh directory (logs absent: clean).
fn system_copy(dir: &Path, name: &str) -> PathBuf {
    let p = dir.join(name);
    std::fs::copy(testdata().join("hives/SYSTEM"), &p).unwrap();
    p
}

fn reg_file(dir: &Path, body: &str) -> PathBuf {
    let p = dir.join("x.reg");
    std::fs::write(&p, format!("Windows Registry Editor Version 5.00\r\n\r\n{body}\r\n")).unwrap();
    p
}

#[test]
fn import_refuses_keys_of_another_hive_into_a_hive_file() {
    let d = tempfile::tempdir().unwrap();
    for name in ["SYSTEM", "renamed.hive"] {
        // By name, and (renamed) by content: the file holds Select, so it is SYSTEM.
        let hive = system_copy(d.path(), name);
        for body in [
            "[HKEY_LOCAL_MACHINE\\SOFTWARE\\Microsoft\\Evil]\r\n\"x\"=dword:00000001",
            "[HKEY_CURRENT_USER\\Evil]\r\n\"x\"=dword:00000001",
            "[HKEY_USERS\\.DEFAULT\\Evil]",
        ] {
            let reg = reg_file(d.path(), body);
            let out = d.path().join("out.hive");
            let o = rdp_on(&hive, &["reg", "import", hive.to_str().unwrap(), reg.to_str().unwrap(), "--out", out.to_str().unwrap()]);
            assert_clean_error(&o, body);
            assert!(stderr(&o).contains("SYSTEM hive"), "{body}: {}", stderr(&o));
            assert!(!out.exists(), "{body}: an output was written");
        }
        // A key of the file's own hive still imports.
        let reg = reg_file(d.path(), "[HKEY_LOCAL_MACHINE\\SYSTEM\\Select]\r\n\"Zz\"=dword:00000007");
        let out = d.path().join("ok.hive");
        let o = rdp_on(&hive, &["reg", "import", hive.to_str().unwrap(), reg.to_str().unwrap(), "--out", out.to_str().unwrap()]);
        assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
        let q = rdp(&["reg", "query", out.to_str().unwrap(), r"HKLM\SYSTEM\Select", "-v", "Zz"]);
        assert!(stdout(&q).lines().any(|l| l.ends_with("REG_DWORD    0x7")), "{}", stdout(&q));
        std::fs::remove_file(&out).unwrap();
        std::fs::remove_file(&hive).unwrap();
    }
}

#[test]
fn set_and_query_refuse_other_hives_and_foreign_roots() {
    let d = tempfile::tempdir().unwrap();
    let hive = system_copy(d.path(), "SYSTEM");
    let h = hive.to_str().unwrap();
    let out = d.path().join("o");
    let o = rdp_on(&hive, &["reg", "set", h, r"HKLM\SOFTWARE\X", "-v", "a", "-t", "REG_DWORD", "-d", "1", "--out", out.to_str().unwrap()]);
    assert_clean_error(&o, "reg set SOFTWARE key into SYSTEM file");
    assert!(!out.exists());
    let o = rdp_on(&hive, &["reg", "query", h, r"HKCU\Software"]);
    assert_clean_error(&o, "reg query HKCU on SYSTEM file");
    // On an image, the same roots are refused by name.
    let demo = testdata().join("demo.vhdx");
    for key in [r"HKEY_CURRENT_USER\Software", r"HKLM\HARDWARE\DESCRIPTION"] {
        let o = rdp_on(&demo, &["reg", "query", demo.to_str().unwrap(), key]);
        assert_clean_error(&o, key);
        assert!(stderr(&o).contains("NTUSER.DAT") || stderr(&o).contains("not stored on disk"), "{key}: {}", stderr(&o));
    }
}

/// A .reg file is applied with regedit's semantics: the last write to a value
/// wins, a key created and then deleted is gone, `@` set twice keeps the
/// second (issue 11 item 7: such files were refused as "hive is damaged").
#[test]
fn import_applies_later_wins_semantics_to_an_image() {
    let d = tempfile::tempdir().unwrap();
    let demo = d.path().join("demo.vhdx");
    std::fs::copy(testdata().join("demo.vhdx"), &demo).unwrap();
    let ts = r"HKEY_LOCAL_MACHINE\SYSTEM\CurrentControlSet\Control\Terminal Server";
    let reg = reg_file(
        d.path(),
        &format!(
            "[{ts}]\r\n\"fDenyTSConnections\"=dword:00000001\r\n\"fDenyTSConnections\"=dword:00000000\r\n\r\n\
             [{ts}\\Gone]\r\n\"x\"=\"y\"\r\n\r\n[-{ts}\\Gone]\r\n\r\n\
             [{ts}\\Twice]\r\n@=\"first\"\r\n@=\"second\"\r\n"
        ),
    );
    let out = d.path().join("out.vhdx");
    let o = rdp_on(&demo, &["reg", "import", demo.to_str().unwrap(), reg.to_str().unwrap(), "--out", out.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(0), "{}{}", stdout(&o), stderr(&o));
    let q = |key: &str, v: &str| stdout(&rdp(&["reg", "query", out.to_str().unwrap(), key, "-v", v]));
    assert!(q(r"HKLM\SYSTEM\CurrentControlSet\Control\Terminal Server", "fDenyTSConnections").lines().any(|l| l.ends_with("REG_DWORD    0x0")));
    assert!(q(r"HKLM\SYSTEM\CurrentControlSet\Control\Terminal Server\Twice", "(Default)").contains("second"));
    let gone = rdp(&["reg", "query", out.to_str().unwrap(), r"HKLM\SYSTEM\CurrentControlSet\Control\Terminal Server\Gone"]);
    // A missing key exits 1, like reg.exe.
    assert_eq!(gone.status.code(), Some(1), "{}", stdout(&gone));
}
