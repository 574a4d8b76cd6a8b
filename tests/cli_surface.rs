//! The command-line surface (issue 14): validation before acting, `checks`,
//! completions and man page, `--version`, JSON everywhere (errors included),
//! plain output when not on a terminal. Everything runs on the images in
//! testdata/ (no ../shared/data, no external tool).

mod common;

use common::*;
use serde_json::Value as J;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn demo() -> PathBuf {
    testdata().join("demo.vhdx")
}

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

fn json(o: &Output) -> J {
    serde_json::from_slice(&o.stdout).unwrap_or_else(|e| panic!("not JSON ({e}): {}{}", stdout(o), stderr(o)))
}

/// Names in a directory (what a refused command must not have added to).
fn listing(d: &Path) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(d).unwrap().map(|e| e.unwrap().file_name().to_string_lossy().into_owned()).collect();
    v.sort();
    v
}

/// A refusal: exit 2, one line on stderr, nothing on stdout (no plan).
fn assert_refused(o: &Output, what: &str, says: &str) {
    assert_clean_error(o, what);
    assert!(o.stdout.is_empty(), "{what}: printed before refusing: {}", stdout(o));
    assert!(stderr(o).contains(says), "{what}: expected {says:?} in {}", stderr(o));
}

#[test]
fn bad_arguments_are_refused_before_anything_happens() {
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path();
    let img = demo();
    let existing = d.join("existing.vhdx");
    std::fs::write(&existing, b"keep me").unwrap();
    let reg = d.join("x.reg");
    std::fs::write(&reg, "Windows Registry Editor Version 5.00\r\n\r\n[HKEY_LOCAL_MACHINE\\SYSTEM\\ControlSet001\\Control\\Terminal Server]\r\n\"fDenyTSConnections\"=dword:00000000\r\n").unwrap();
    let undo = d.join("undo.json");
    let new = d.join("new.vhdx");
    let homeless = d.join("no-such-folder").join("new.vhdx");
    let no_undo = d.join("no-undo.json");
    let key = r"HKLM\SYSTEM\CurrentControlSet\Control\Terminal Server";
    let child_vhd = d.join("child.vhd");
    let before = listing(d);
    let cases: Vec<(Vec<&str>, &str)> = vec![
        (vec!["fix", s(&img), "--all"], "--out NEW is required"),
        (vec!["fix", s(&img), "--all", "--out", s(&existing)], "already exists"),
        (vec!["fix", s(&img), "--all", "--out", s(&homeless)], "does not exist"),
        (vec!["fix", s(&img), "--all", "--in-place", "--undo", s(&undo), "--out", s(&new)], "--in-place writes the disk itself"),
        (vec!["fix", s(&img), "--all", "--in-place", "--undo", s(&existing)], "already exists"),
        (vec!["fix", s(&img), "--all", "--in-place"], "--in-place needs --undo"),
        (vec!["fix", s(&img), "--all", "--in-place", "--undo", s(&undo), "--format", "vhd"], "--format names the container of a new image"),
        (vec!["fix", s(&img), "--all", "--diff-child", "--format", "vhd", "--out", s(&child_vhd)], "a differencing child is written in its parent's format"),
        (vec!["fix", s(&img), "--all", "--diff-child", "--out", s(&child_vhd)], "a differencing child is written in its parent's format"),
        (vec!["fix", s(&img), "--check", "rdp-deny-locl", "--out", s(&new)], "did you mean rdp-deny-local?"),
        (vec!["fix", s(&img), "--profile", "reset-rpd", "--out", s(&new)], "did you mean reset-rdp?"),
        (vec!["fix", s(&img), "--out", s(&new)], "say what to fix"),
        (vec!["fix", s(&img), "--all", "--user", "bob", "--out", s(&new)], "--user bob applies to --profile unlock-admin only"),
        (vec!["inspect", s(&img), "--symptom", "qqq zzz"], "no known symptom id"),
        (vec!["inspect", s(&img), "--symptom", "cant-find-computr"], "did you mean cant-find-computer?"),
        (vec!["reg", "set", s(&img), key, "-v", "fDenyTSConnections", "-t", "REG_DWORD", "-d", "0"], "--out NEW is required"),
        (vec!["reg", "set", s(&img), key, "-v", "fDenyTSConnections", "-t", "REG_DWORD", "-d", "0", "--out", s(&existing)], "already exists"),
        (vec!["reg", "delete", s(&img), key, "-v", "fDenyTSConnections", "--out", s(&homeless)], "does not exist"),
        (vec!["reg", "import", s(&img), s(&reg), "--out", s(&existing)], "already exists"),
        (vec!["undo", s(&img), s(&no_undo)], "not found"),
    ];
    for (args, says) in &cases {
        let o = rdp_on(&img, args);
        assert_refused(&o, &args.join(" "), says);
        assert_eq!(listing(d), before, "{args:?} wrote something");
        assert_eq!(std::fs::read(&existing).unwrap(), b"keep me");
    }
    // Ids and flags are checked before the image is even opened: a missing
    // image is not what these report.
    let gone = d.join("no-such-image.vhdx");
    for (args, says) in [
        (vec!["fix", s(&gone), "--check", "bogus-check", "--out", s(&new)], "unknown check id"),
        (vec!["fix", s(&gone), "--profile", "bogus", "--out", s(&new)], "unknown profile"),
        (vec!["fix", s(&gone), "--all", "--out", s(&existing)], "already exists"),
        (vec!["inspect", s(&gone), "--symptom", "bogus"], "no known symptom id"),
        (vec!["reg", "set", s(&gone), key, "-v", "x", "-d", "1", "--out", s(&homeless)], "does not exist"),
    ] {
        let o = rdp(&args);
        assert_refused(&o, &args.join(" "), says);
    }
}

#[test]
fn checks_lists_every_catalog_id() {
    let o = rdp(&["checks", "--json"]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let doc = json(&o);
    let listed: Vec<&str> = doc["checks"].as_array().unwrap().iter().map(|c| c["id"].as_str().unwrap()).collect();
    assert_eq!(listed, rdprescue::rdp::catalog::ids());
    for c in doc["checks"].as_array().unwrap() {
        let id = &c["id"];
        for f in ["title", "severity", "hive", "explain"] {
            assert!(c[f].as_str().is_some_and(|v| !v.is_empty()), "{id}: no {f}");
        }
        assert!(c["fix"].as_array().is_some_and(|f| !f.is_empty()), "{id}: no fix");
        if c["evaluated_by"] == "value" {
            let l = &c["locations"][0];
            assert!(l["key"].as_str().is_some_and(|k| !k.is_empty()) && l["value"].is_string(), "{id}: no registry location: {c}");
        }
    }
    let fdeny = doc["checks"].as_array().unwrap().iter().find(|c| c["id"] == "rdp-deny-local").unwrap();
    assert_eq!(fdeny["locations"][0]["value"], "fDenyTSConnections");
    assert_eq!((fdeny["fix"][0]["action"].as_str(), fdeny["fix"][0]["data"].as_u64()), (Some("set"), Some(0)));
    // The text form names every id too.
    let text = stdout(&rdp(&["checks"]));
    for id in rdprescue::rdp::catalog::ids() {
        assert!(text.lines().any(|l| l.starts_with(&format!("{id}  "))), "{id} missing from `checks`");
    }
    assert!(!text.contains('\x1b'), "escape codes without a terminal");
}

#[test]
fn every_listed_symptom_id_is_accepted() {
    let doc = json(&rdp(&["checks", "--symptoms", "--json"]));
    let ids: Vec<String> = doc["symptoms"].as_array().unwrap().iter().map(|s| s["id"].as_str().unwrap().to_string()).collect();
    assert!(ids.len() >= 10, "{ids:?}");
    let img = demo();
    for id in &ids {
        let o = rdp_on(&img, &["inspect", s(&img), "--json", "--symptom", id]);
        assert!(matches!(o.status.code(), Some(0 | 1)), "--symptom {id}: {}", stderr(&o));
        let m = &json(&o)["symptom"]["matches"];
        assert_eq!(m.as_array().map(Vec::len), Some(1), "--symptom {id}: {m}");
        assert_eq!(m[0]["id"], id.as_str());
    }
    let text = stdout(&rdp(&["checks", "--symptoms"]));
    for id in &ids {
        assert!(text.lines().any(|l| l == id), "{id} missing from `checks --symptoms`");
    }
}

#[test]
fn every_listed_profile_is_accepted() {
    let doc = json(&rdp(&["checks", "--profiles", "--json"]));
    let ids: Vec<&str> = doc["profiles"].as_array().unwrap().iter().map(|p| p["id"].as_str().unwrap()).collect();
    let names: Vec<&str> = rdprescue::rdp::profiles::PROFILES.iter().map(|p| p.name).collect();
    assert_eq!(ids, names);
    let img = demo();
    for id in ids {
        let o = rdp_on(&img, &["fix", s(&img), "--profile", id, "--dry-run", "--json"]);
        let d = json(&o);
        if id == "unlock-admin" {
            // The demo image has no SAM: the profile is accepted, then finds nothing to act on.
            assert_eq!(o.status.code(), Some(2), "{d}");
            assert!(d["error"]["message"].as_str().unwrap().contains("no SAM hive"), "{d}");
            continue;
        }
        assert_eq!(o.status.code(), Some(0), "--profile {id}: {d} {}", stderr(&o));
        assert!(matches!(d["result"].as_str(), Some("dry-run" | "nothing-to-change")), "{id}: {d}");
    }
}

#[test]
fn completions_man_and_version() {
    for sh in ["bash", "zsh", "fish", "powershell", "elvish"] {
        let o = rdp(&["completions", sh]);
        assert_eq!(o.status.code(), Some(0), "{sh}: {}", stderr(&o));
        assert!(stdout(&o).contains("inspect"), "{sh}: completion does not offer `inspect`");
    }
    assert!(stdout(&rdp(&["completions", "bash"])).contains("complete -F"));
    let o = rdp(&["man"]);
    assert_eq!(o.status.code(), Some(0));
    let page = stdout(&o);
    assert!(page.starts_with(".ie") || page.contains(".TH rdprescue"), "{}", &page[..page.len().min(200)]);
    assert!(page.contains("inspect"));
    let tmp = tempfile::tempdir().unwrap();
    let o = rdp(&["man", "-o", s(tmp.path())]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    for p in ["rdprescue.1", "rdprescue-inspect.1", "rdprescue-fix.1", "rdprescue-checks.1"] {
        assert!(tmp.path().join(p).metadata().is_ok_and(|m| m.len() > 100), "{p} not written: {:?}", listing(tmp.path()));
    }
    let o = rdp(&["man", "-o", s(&tmp.path().join("nope"))]);
    assert_clean_error(&o, "man into a missing folder");
    let v = stdout(&rdp(&["--version"]));
    assert!(v.starts_with(&format!("rdprescue {} (", env!("CARGO_PKG_VERSION"))) && v.trim_end().ends_with(')'), "{v}");
    let commit = v.trim_end().rsplit('(').next().unwrap().trim_end_matches(')');
    assert!(!commit.is_empty(), "{v}");
}

/// A file that claims to be a VHDX and is not: the error names image/vhdx and an offset.
fn corrupt_vhdx(dir: &Path) -> PathBuf {
    let p = dir.join("corrupt.vhdx");
    let mut b = vec![0u8; 1 << 20];
    b[..8].copy_from_slice(b"vhdxfile");
    std::fs::write(&p, b).unwrap();
    p
}

#[test]
fn json_errors_are_one_object_on_stdout() {
    let tmp = tempfile::tempdir().unwrap();
    let bad = corrupt_vhdx(tmp.path());
    for args in [vec!["inspect", s(&bad), "--json"], vec!["disk", s(&bad), "--json"], vec!["fix", s(&bad), "--all", "--dry-run", "--json"], vec!["reg", "query", s(&bad), r"HKLM\SYSTEM", "--json"]] {
        let o = rdp_on(&bad, &args);
        assert_eq!(o.status.code(), Some(2), "{args:?}: {}{}", stdout(&o), stderr(&o));
        let doc = json(&o);
        let e = &doc["error"];
        assert_eq!(doc.as_object().unwrap().len(), 1, "{doc}");
        assert!(e["layer"].as_str().is_some_and(|l| l.starts_with("image/")), "{args:?}: {doc}");
        assert!(e["offset"].is_u64(), "{args:?}: {doc}");
        assert!(e["message"].as_str().is_some_and(|m| !m.is_empty() && !m.contains('\n')), "{doc}");
        assert!(o.stderr.is_empty(), "{args:?}: {}", stderr(&o));
    }
    // Validation and parse errors are JSON too.
    let o = rdp(&["fix", s(&demo()), "--check", "nope", "--json", "--out", s(&tmp.path().join("o.vhdx"))]);
    assert_eq!((o.status.code(), json(&o)["error"]["layer"].as_str()), (Some(2), Some("usage")));
    let o = rdp(&["inspect", "--json", "--no-such-flag"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(json(&o)["error"]["message"].as_str().unwrap().contains("--no-such-flag"));
    // Without --json the same failure stays one line on stderr.
    assert_layer_error(&rdp(&["inspect", s(&bad)]), "corrupt vhdx, text");
}

#[test]
fn fix_and_undo_speak_json() {
    // On the input's volume: a differencing child names its parent by a
    // relative path too (under wine the system temp folder is another drive).
    let tmp = tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR")).unwrap();
    let img = demo();
    let child = tmp.path().join("child.vhdx");
    let o = rdp_on(&img, &["fix", s(&img), "--check", "rdp-deny-local", "--diff-child", "--out", s(&child), "--json"]);
    assert_eq!(o.status.code(), Some(0), "{}{}", stdout(&o), stderr(&o));
    let d = json(&o);
    assert_eq!(d["output"], s(&child));
    assert_eq!(d["verified"], true);
    assert_eq!(d["destination"]["kind"], "diff-child");
    assert_eq!(d["result"], "fixed");
    let c = &d["checks"][0];
    assert_eq!((c["id"].as_str(), c["fixed"].as_bool()), (Some("rdp-deny-local"), Some(true)), "{d}");
    assert!(c["before"].is_string() && c["after"].is_null(), "{c}");
    let change = &d["plan"]["hives"][0]["changes"][0];
    assert_eq!((change["name"].as_str(), change["old"].as_u64(), change["new"].as_u64()), (Some("fDenyTSConnections"), Some(1), Some(0)), "{d}");
    assert!(child.exists());

    // In place on a raw disk, then undo, both as JSON.
    let raw = gunzip(&testdata().join("images/gen1-mbr.raw.gz"), tmp.path());
    let original = sha256_file(&raw);
    let undo = tmp.path().join("undo.json");
    let o = rdp(&["fix", s(&raw), "--all", "--in-place", "--undo", s(&undo), "--json"]);
    assert!(matches!(o.status.code(), Some(0 | 1)), "{}{}", stdout(&o), stderr(&o));
    let d = json(&o);
    if d["result"] == "nothing-to-change" {
        panic!("the fixture has nothing to fix: {d}");
    }
    assert_eq!(d["destination"]["kind"], "in-place");
    let o = rdp(&["undo", s(&raw), s(&undo), "--json"]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let u = json(&o);
    assert!(u["restored"].as_u64().is_some_and(|n| n > 0), "{u}");
    assert_eq!(sha256_file(&raw), original);
}

#[test]
fn output_off_a_terminal_is_plain_and_whole() {
    let img = demo();
    for no_color in [None, Some("1")] {
        let mut c = Command::new(env!("CARGO_BIN_EXE_rdprescue"));
        c.args(["inspect", s(&img)]);
        if let Some(v) = no_color {
            c.env("NO_COLOR", v);
        }
        let o = c.out().unwrap();
        let text = stdout(&o);
        assert!(!text.contains('\x1b'), "escape codes off a terminal: {text}");
        // Nothing is cut when the output is not a terminal, and the TLS rows are told apart.
        assert!(!text.contains('…'), "{text}");
        for v in ["1.0", "1.1", "1.2"] {
            assert!(text.contains(&format!(r"TLS {v}\Server\Enabled")), "TLS {v}: {text}");
        }
        assert!(text.contains("4294967295 (0xffffffff)"), "a value was cut: {text}");
    }
}
