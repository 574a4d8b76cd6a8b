//! reg.exe spellings of `rdprescue reg` (issue 14 item 3), its key errors and
//! exit codes, type preservation of `reg set`/`reg add`, `--json` of the
//! write commands, and `cat C:\...`: CLI-level, on the README demo image and
//! the small SYSTEM hive of testdata/hives. Every run hashes its input
//! (`rdp_on`); the written hives are read back with hivexget as an
//! independent oracle where it is installed.

mod common;
use common::*;
use serde_json::Value as J;
use std::path::{Path, PathBuf};
use std::process::Command;

const TS: &str = r"HKLM\SYSTEM\CurrentControlSet\Control\Terminal Server";

fn demo() -> PathBuf {
    testdata().join("demo.vhdx")
}

/// The testdata SYSTEM hive copied under a name that says nothing (its kind
/// comes from its content).
fn hive_copy(dir: &Path) -> PathBuf {
    let p = dir.join("machine.hiv");
    std::fs::copy(testdata().join("hives/SYSTEM"), &p).unwrap();
    p
}

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

/// Run `f` (many `rdp` runs on `input`) and check `input` is unchanged
/// after all of them: one hash instead of two per run keeps the tests fast.
fn untouched<T>(input: &Path, f: impl FnOnce() -> T) -> T {
    let before = sha256_file(input);
    let r = f();
    assert_eq!(before, sha256_file(input), "{} was modified", input.display());
    r
}

/// Exit code 1 with reg.exe's one line, and nothing on stdout.
fn assert_missing(o: &std::process::Output, what: &str) {
    assert_eq!(o.status.code(), Some(1), "{what}: {}", stderr(o));
    let err = stderr(o);
    assert_eq!(err.trim_end().lines().count(), 1, "{what}: {err}");
    assert!(err.starts_with("ERROR: The system was unable to find the specified registry key or value."), "{what}: {err}");
    assert!(o.stdout.is_empty(), "{what}: {}", stdout(o));
}

/// hivexget's .reg-style listing of `key` in `hive` (the independent oracle).
fn hivex_key(hive: &Path, key: &str) -> String {
    require("hivexget");
    let o = Command::new("hivexget").args([s(hive), key]).out().unwrap();
    assert!(o.status.success(), "hivexget {key}: {}", stderr(&o));
    stdout(&o)
}

#[test]
fn query_spellings_are_one_key() {
    let d = demo();
    let canonical = rdp_on(&d, &["reg", "query", s(&d), TS, "-v", "fDenyTSConnections"]);
    assert_eq!(canonical.status.code(), Some(0), "{}", stderr(&canonical));
    let out = stdout(&canonical);
    // reg.exe lists a DWORD as 0x1, nothing after it.
    assert!(out.lines().any(|l| l == "    fDenyTSConnections    REG_DWORD    0x1"), "{out}");
    untouched(&d, || for (sub, key, v) in [
        ("QUERY", TS, "/V"),
        ("query", r"HKLM:\SYSTEM\CurrentControlSet\Control\Terminal Server", "/v"),
        ("Query", r"Computer\HKEY_LOCAL_MACHINE\SYSTEM\CurrentControlSet\Control\Terminal Server\", "-v"),
        ("query", r"Registry::HKEY_LOCAL_MACHINE\SYSTEM\CurrentControlSet\Control\Terminal Server", "/v"),
        ("query", "hklm/system/currentcontrolset/control/terminal server", "/v"),
    ] {
        let o = rdp(&["REG", sub, s(&d), key, v, "fDenyTSConnections"]);
        assert_eq!(o.status.code(), Some(0), "{key}: {}", stderr(&o));
        assert_eq!(stdout(&o), out, "{sub} {key} {v}");
    });
    // /s recurses: the subkeys' own listings appear.
    let o = rdp_on(&d, &["reg", "query", s(&d), TS, "/s"]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert!(stdout(&o).lines().any(|l| l.ends_with(r"Terminal Server\WinStations")), "{}", stdout(&o));
    assert!(stdout(&o).lines().filter(|l| l.starts_with("HKEY_LOCAL_MACHINE")).count() > 3, "{}", stdout(&o));
    // An unknown switch is refused by the parser (exit 2), not ignored.
    let o = rdp_on(&d, &["reg", "query", s(&d), TS, "/f", "x"]);
    assert_eq!(o.status.code(), Some(2), "{}", stdout(&o));
}

#[test]
fn unset_default_value_is_not_set() {
    let d = demo();
    untouched(&d, || for v in [&["/ve"][..], &["-v", "(Default)"], &["/v", "(default)"]] {
        let mut args = vec!["reg", "query", s(&d), TS];
        args.extend_from_slice(v);
        let o = rdp(&args);
        assert_eq!(o.status.code(), Some(0), "{v:?}: {}", stderr(&o));
        assert!(stdout(&o).lines().any(|l| l == "    (Default)    REG_SZ    (value not set)"), "{v:?}: {}", stdout(&o));
    });
    let o = rdp_on(&d, &["reg", "query", s(&d), TS, "/ve", "--json"]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let j: J = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(j["values"], serde_json::json!([]), "{j}");
}

#[test]
fn missing_key_or_value_exits_1_like_reg_exe() {
    let d = demo();
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("out.vhdx");
    let reg = tmp.path().join("x.reg");
    let nokey = format!(r"{TS}\NoSuchKey");
    let runs: Vec<(&str, Vec<&str>)> = vec![
        ("query value", vec!["reg", "query", s(&d), TS, "/v", "NoSuchValue"]),
        ("query key", vec!["reg", "query", s(&d), &nokey]),
        ("query key /s", vec!["reg", "query", s(&d), &nokey, "/s"]),
        ("delete value", vec!["reg", "delete", s(&d), TS, "/v", "NoSuchValue", "/f", "--out", s(&out)]),
        ("delete key", vec!["reg", "delete", s(&d), &nokey, "/f", "--out", s(&out)]),
        ("delete /va", vec!["reg", "delete", s(&d), &nokey, "/va", "/f", "--out", s(&out)]),
        ("export", vec!["reg", "export", s(&d), &nokey, s(&reg)]),
    ];
    untouched(&d, || {
        for (what, args) in runs {
            let o = rdp(&args);
            assert_missing(&o, what);
            assert!(!out.exists() && !reg.exists(), "{what}: wrote an output");
        }
    });
    // With --json: the error as a JSON object on stdout, still exit 1.
    let o = rdp_on(&d, &["reg", "query", s(&d), &nokey, "--json"]);
    assert_eq!(o.status.code(), Some(1));
    let j: J = serde_json::from_slice(&o.stdout).unwrap();
    assert!(j["error"]["message"].as_str().unwrap().contains("NoSuchKey"), "{j}");
}

#[test]
fn key_errors_say_what_is_wrong() {
    let d = demo();
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("out.vhdx");
    untouched(&d, || for (key, says) in [
        (r"HKLM\SYSTM\Select", "unknown hive SYSTM (did you mean SYSTEM?)"),
        (r"SOFTWRE\Microsoft", "unknown hive SOFTWRE (did you mean SOFTWARE?)"),
        (r"HKEY_LOCAL_MACHNE\SYSTEM\Select", "did you mean HKEY_LOCAL_MACHINE?"),
        (r"HKCU\Software\Microsoft", "HKCU lives in a user's NTUSER.DAT: name the file"),
        (r"HKEY_USERS\.DEFAULT\Control Panel", r"Windows\System32\config\DEFAULT"),
        (r"HKLM\HARDWARE\DESCRIPTION\System", "HARDWARE is built at boot and not stored on disk"),
    ] {
        for cmd in [&["reg", "query", s(&d), key][..], &["reg", "add", s(&d), key, "/v", "x", "/d", "1", "/f", "--out", s(&out)]] {
            let o = rdp(cmd);
            assert_clean_error(&o, key);
            assert!(stderr(&o).contains(says), "{key}: {}", stderr(&o));
            assert!(!out.exists(), "{key}: wrote an output");
        }
    });
    // A hive file names its own kind in the refusal.
    let h = hive_copy(tmp.path());
    let o = rdp_on(&h, &["reg", "query", s(&h), r"HKCU\Software"]);
    assert_clean_error(&o, "HKCU on a SYSTEM file");
    assert!(stderr(&o).contains("NTUSER.DAT") && stderr(&o).contains("is the SYSTEM hive"), "{}", stderr(&o));
}

#[test]
#[cfg_attr(not(tool_hivexget), ignore = "needs hivexget")]
fn add_keeps_the_existing_type() {
    let tmp = tempfile::tempdir().unwrap();
    let h = hive_copy(tmp.path());
    let out = tmp.path().join("out.hiv");
    // No /t: fDenyTSConnections stays a REG_DWORD (it used to become REG_SZ).
    let o = rdp_on(&h, &["reg", "add", s(&h), TS, "/v", "fDenyTSConnections", "/d", "0", "/f", "--out", s(&out)]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let text = stdout(&o);
    // The hive shows as HKLM\SYSTEM from its content, old value decoded.
    assert!(text.contains(r"HKLM\SYSTEM\ControlSet001\Control\Terminal Server\fDenyTSConnections: 1 -> 0 (REG_DWORD)"), "{text}");
    assert!(!text.contains("Note:"), "{text}");
    let listing = hivex_key(&out, r"\ControlSet001\Control\Terminal Server");
    assert!(listing.contains("\"fDenyTSConnections\"=dword:00000000"), "{listing}");
    // A string keeps REG_SZ; a new value without /t is REG_SZ, and said so.
    let out2 = tmp.path().join("out2.hiv");
    let o = rdp_on(&out, &["reg", "add", s(&out), TS, "/v", "ProductVersion", "/d", "6.0", "--out", s(&out2)]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let out3 = tmp.path().join("out3.hiv");
    let o = rdp_on(&out2, &["reg", "add", s(&out2), TS, "/v", "Brand New", "/d", "12", "--out", s(&out3)]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert!(stdout(&o).contains("no type given and no value \"Brand New\" yet: REG_SZ, as reg.exe does"), "{}", stdout(&o));
    let listing = hivex_key(&out3, r"\ControlSet001\Control\Terminal Server");
    assert!(listing.contains("\"fDenyTSConnections\"=dword:00000000"), "{listing}");
    assert!(listing.contains("\"ProductVersion\"=\"6.0\""), "{listing}");
    assert!(listing.contains("\"Brand New\"=\"12\""), "{listing}");
    // Data that does not fit the kept type is an error, nothing written.
    let bad = tmp.path().join("bad.hiv");
    let o = rdp_on(&out3, &["reg", "add", s(&out3), TS, "/v", "fDenyTSConnections", "/d", "yes", "--out", s(&bad)]);
    assert_clean_error(&o, "text into a DWORD");
    assert!(stderr(&o).contains("REG_DWORD"), "{}", stderr(&o));
    assert!(!bad.exists());
}

#[test]
#[cfg_attr(not(tool_hivexget), ignore = "needs hivexget")]
fn add_types_like_reg_exe() {
    let tmp = tempfile::tempdir().unwrap();
    let h = hive_copy(tmp.path());
    let key = r"HKLM\SYSTEM\ControlSet001\Services\RegExe";
    let mut cur = h.clone();
    for (i, (name, ty, data, extra)) in [
        ("D", "reg_dword", "0x1F", None),
        ("Q", "REG_QWORD", "4294967296", None),
        ("M", "REG_MULTI_SZ", r"a\0b", None),
        ("S", "REG_MULTI_SZ", "x,y", Some(",")),
        ("B", "REG_BINARY", "0a1b2c", None),
        ("E", "REG_EXPAND_SZ", "%SystemRoot%", None),
    ]
    .into_iter()
    .enumerate()
    {
        let next = tmp.path().join(format!("step{i}.hiv"));
        let mut args = vec!["reg", "ADD", s(&cur), key, "/V", name, "/T", ty, "/D", data, "/F"];
        if let Some(sep) = extra {
            args.extend(["/s", sep]);
        }
        args.extend(["--out", s(&next)]);
        let o = rdp_on(&cur, &args);
        assert_eq!(o.status.code(), Some(0), "{name}: {}", stderr(&o));
        cur = next;
    }
    let listing = hivex_key(&cur, r"\ControlSet001\Services\RegExe");
    for want in [
        "\"D\"=dword:0000001f",
        "\"Q\"=hex(11):00,00,00,00,01,00,00,00",
        "\"M\"=hex(7):61,00,00,00,62,00,00,00,00,00",
        "\"S\"=hex(7):78,00,00,00,79,00,00,00,00,00",
        "\"B\"=hex(3):0a,1b,2c",
    ] {
        assert!(listing.contains(want), "{want}: {listing}");
    }
    // The reg.exe-style listing: numbers in hex only.
    let o = rdp_on(&cur, &["reg", "query", s(&cur), key]);
    let text = stdout(&o);
    assert!(text.contains("    D    REG_DWORD    0x1f\n") && text.contains("    Q    REG_QWORD    0x100000000\n"), "{text}");
    assert!(text.contains("    M    REG_MULTI_SZ    a\\0b\n"), "{text}");
    // /ve sets the default value; /va deletes every value, keeping the key.
    let dflt = tmp.path().join("default.hiv");
    let o = rdp_on(&cur, &["reg", "add", s(&cur), key, "/ve", "/d", "hello", "/f", "--out", s(&dflt)]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let o = rdp_on(&dflt, &["reg", "query", s(&dflt), key, "/ve"]);
    assert!(stdout(&o).contains("    (Default)    REG_SZ    hello\n"), "{}", stdout(&o));
    let none = tmp.path().join("none.hiv");
    let o = rdp_on(&dflt, &["reg", "delete", s(&dflt), key, "/va", "/f", "--out", s(&none)]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let o = rdp_on(&none, &["reg", "query", s(&none), key]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert!(!stdout(&o).contains("REG_"), "{}", stdout(&o));
    assert_eq!(hivex_key(&none, r"\ControlSet001\Services\RegExe").trim(), "");
}

#[test]
fn write_commands_speak_json() {
    let tmp = tempfile::tempdir().unwrap();
    let h = hive_copy(tmp.path());
    let out = tmp.path().join("set.hiv");
    let o = rdp_on(&h, &["reg", "set", s(&h), TS, "-v", "fDenyTSConnections", "-d", "0", "--out", s(&out), "--json"]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let j: J = serde_json::from_slice(&o.stdout).unwrap();
    let c = &j["plan"][0]["changes"][0];
    assert_eq!(j["plan"][0]["hive"], r"HKLM\SYSTEM");
    assert_eq!(c["op"], "set-value");
    assert_eq!(c["key"], r"HKEY_LOCAL_MACHINE\SYSTEM\ControlSet001\Control\Terminal Server");
    assert_eq!(c["name"], "fDenyTSConnections");
    assert_eq!(c["old"], serde_json::json!({"type": "REG_DWORD", "data": 1}));
    assert_eq!(c["new"], serde_json::json!({"type": "REG_DWORD", "data": 0}));
    assert_eq!((j["written"].as_bool(), j["verified"].as_bool(), j["dry_run"].as_bool()), (Some(true), Some(true), Some(false)));
    assert_eq!(Path::new(j["output"].as_str().unwrap()), out);
    assert!(out.exists());
    // delete, dry run: nothing written.
    let o = rdp_on(&out, &["reg", "delete", s(&out), TS, "/v", "fDenyTSConnections", "/f", "--dry-run", "--json"]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let j: J = serde_json::from_slice(&o.stdout).unwrap();
    let c = &j["plan"][0]["changes"][0];
    assert_eq!((c["op"].as_str(), &c["old"]["data"], &c["new"]), (Some("delete-value"), &J::from(0), &J::Null));
    assert_eq!((j["written"].as_bool(), j["output"].is_null()), (Some(false), true));
    // import.
    let reg = tmp.path().join("x.reg");
    std::fs::write(&reg, "Windows Registry Editor Version 5.00\r\n\r\n[HKEY_LOCAL_MACHINE\\SYSTEM\\CurrentControlSet\\Control\\Terminal Server]\r\n\"fDenyTSConnections\"=dword:00000001\r\n").unwrap();
    let imp = tmp.path().join("imp.hiv");
    let o = rdp_on(&out, &["reg", "import", s(&out), s(&reg), "--out", s(&imp), "--json"]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let j: J = serde_json::from_slice(&o.stdout).unwrap();
    let c = &j["plan"][0]["changes"][0];
    assert_eq!((&c["old"]["data"], &c["new"]["data"]), (&J::from(0), &J::from(1)));
    assert_eq!(j["verified"], true);
    // Nothing to change is still one JSON document.
    let again = tmp.path().join("again.hiv");
    let o = rdp_on(&imp, &["reg", "import", s(&imp), s(&reg), "--out", s(&again), "--json"]);
    let j: J = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!((j["plan"].as_array().map(Vec::len), j["written"].as_bool()), (Some(0), Some(false)));
    assert!(!again.exists());
}

#[test]
fn export_takes_the_file_like_reg_exe() {
    let d = demo();
    let tmp = tempfile::tempdir().unwrap();
    let f = tmp.path().join("select.reg");
    let o = rdp_on(&d, &["reg", "EXPORT", s(&d), r"HKLM\SYSTEM\Select", s(&f), "/y"]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let bytes = std::fs::read(&f).unwrap();
    assert_eq!(&bytes[..2], &[0xff, 0xfe], "UTF-16LE with BOM");
    // The output is never replaced, /y or not.
    let o = rdp_on(&d, &["reg", "export", s(&d), r"HKLM\SYSTEM\Select", s(&f), "/y"]);
    assert_clean_error(&o, "existing export file");
    assert_eq!(std::fs::read(&f).unwrap(), bytes);
}

#[test]
#[cfg_attr(not(tool_hivexget), ignore = "needs hivexget")]
fn add_into_an_image_child_and_cat_it_back_with_a_drive_letter() {
    let d = demo();
    let tmp = tempfile::tempdir().unwrap();
    let child = tmp.path().join("child.vhdx");
    let o = rdp_on(&d, &["reg", "add", s(&d), TS, "/v", "fDenyTSConnections", "/t", "REG_DWORD", "/d", "0", "/f", "--out", s(&child), "--diff-child"]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    // cat with a Windows path (drive letter, backslashes) = cat with /Windows/...
    let a = rdp_on(&child, &["cat", s(&child), r"C:\Windows\System32\config\SYSTEM"]);
    assert_eq!(a.status.code(), Some(0), "{}", stderr(&a));
    let b = rdp_on(&child, &["cat", s(&child), "/Windows/System32/config/SYSTEM"]);
    assert_eq!(a.stdout, b.stdout);
    assert_eq!(&a.stdout[..4], b"regf");
    let hive = tmp.path().join("SYSTEM");
    std::fs::write(&hive, &a.stdout).unwrap();
    let listing = hivex_key(&hive, r"\ControlSet001\Control\Terminal Server");
    assert!(listing.contains("\"fDenyTSConnections\"=dword:00000000"), "{listing}");
    // A path that is not there: one line, exit 2.
    let o = rdp_on(&child, &["cat", s(&child), r"C:\Windows\nope.txt"]);
    assert_clean_error(&o, "cat of a missing file");
}
