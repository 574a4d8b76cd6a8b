//! `rdprescue inspect`: the scenario images of testdata/scenarios.json (real
//! hives from ../shared/data broken on purpose, built by
//! testdata/make-scenarios.py as raw/VHD/VHDX, Gen1 and Gen2) must report
//! exactly their seeded check ids; plus the committed demo image, hive
//! directories, the JSON schema, symptoms, and errors.

mod common;
use common::*;
use serde_json::Value as J;
use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

fn scenarios() -> Option<&'static (PathBuf, Vec<J>)> {
    build_scenarios("inspect")
}

fn scenario(name: &str) -> Option<(PathBuf, &'static J)> {
    let (_, all) = scenarios()?;
    let sc = all.iter().find(|s| s["name"] == name).unwrap_or_else(|| panic!("no scenario {name}"));
    Some((PathBuf::from(sc["image"].as_str().unwrap()), sc))
}

fn inspect_json(src: &Path, extra: &[&str]) -> (i32, J) {
    let mut args = vec!["inspect", "--json", src.to_str().unwrap()];
    args.extend_from_slice(extra);
    let o = if src.is_file() { rdp_on(src, &args) } else { rdp(&args) };
    let code = o.status.code().unwrap();
    assert!(code == 0 || code == 1, "inspect {}: exit {code}: {}", src.display(), stderr(&o));
    (code, serde_json::from_slice(&o.stdout).unwrap_or_else(|e| panic!("inspect {}: bad JSON: {e}", src.display())))
}

fn checks(doc: &J) -> BTreeSet<String> {
    doc["findings"].as_array().unwrap().iter().map(|f| f["check"].as_str().unwrap().to_string()).collect()
}

fn setting<'a>(doc: &'a J, id: &str, path_end: &str, name: &str) -> &'a J {
    doc["settings"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["id"] == id && s["name"] == name && s["path"].as_str().unwrap().ends_with(path_end))
        .unwrap_or_else(|| panic!("no setting {id} {path_end}\\{name}"))
}

/// The documented schema: top-level sections and the fields of settings and findings.
fn assert_schema(doc: &J, what: &str) {
    for k in ["image", "windows", "hives", "settings", "findings", "notes", "not_evaluated"] {
        assert!(doc.get(k).is_some(), "{what}: no {k}");
    }
    for s in doc["settings"].as_array().unwrap() {
        for k in ["id", "path", "name", "local", "policy", "effective", "source"] {
            assert!(s.get(k).is_some(), "{what}: setting without {k}: {s}");
        }
        let src = s["source"].as_str().unwrap();
        assert!(["local", "policy", "default", "missing"].contains(&src), "{what}: source {src}");
    }
    for f in doc["findings"].as_array().unwrap() {
        for k in ["check", "severity", "message", "fix"] {
            assert!(f[k].as_str().is_some_and(|s| !s.is_empty()), "{what}: finding without {k}: {f}");
        }
        assert_ne!(f["severity"], "info", "{what}: info entries are notes, not findings");
    }
    let sev: Vec<&str> = doc["findings"].as_array().unwrap().iter().map(|f| f["severity"].as_str().unwrap()).collect();
    let rank = |s: &str| ["critical", "high", "medium", "low"].iter().position(|x| *x == s).unwrap();
    assert!(sev.windows(2).all(|w| rank(w[0]) <= rank(w[1])), "{what}: findings not ordered by severity: {sev:?}");
}

#[test]
#[cfg_attr(not(scenarios), ignore = "needs ../shared/data and the scenario-image tools (python3, hivex, ntfs-3g, fdisk, gdisk, mtools, dosfstools, qemu-img)")]
fn every_scenario_reports_exactly_its_seeded_checks() {
    let Some((_, all)) = scenarios() else { return };
    let mut combos = BTreeSet::new();
    for sc in all {
        let name = sc["name"].as_str().unwrap();
        let img = Path::new(sc["image"].as_str().unwrap());
        let (code, doc) = inspect_json(img, &[]);
        assert_schema(&doc, name);
        let want: BTreeSet<String> = sc["expect"].as_array().unwrap().iter().map(|c| c.as_str().unwrap().to_string()).collect();
        assert_eq!(checks(&doc), want, "{name}: {}", sc["about"]);
        assert_eq!(code, if want.is_empty() { 0 } else { 1 }, "{name}: exit code");
        // Every finding carries a concrete fix: registry actions, or a manual procedure.
        for f in doc["findings"].as_array().unwrap() {
            let auto = f["actions"].as_array().is_some_and(|a| !a.is_empty());
            assert!(auto || f["fix"].as_str().unwrap().starts_with("manual: "), "{name}: {f}");
        }
        // Hives come from where the generation puts them.
        let bcd = &doc["image"]["bcd"];
        let gen = sc["gen"].as_u64().unwrap();
        assert_eq!(bcd["firmware"], if gen == 1 { "bios" } else { "uefi" }, "{name}: {bcd}");
        assert_eq!(bcd["path"], if gen == 1 { "\\Boot\\BCD" } else { "\\EFI\\Microsoft\\Boot\\BCD" }, "{name}");
        assert_eq!(doc["image"]["container"]["format"].as_str().unwrap().split('-').next().unwrap(), sc["format"].as_str().unwrap(), "{name}");
        assert!(doc["not_evaluated"].as_array().unwrap().is_empty(), "{name}: {}", doc["not_evaluated"]);
        combos.insert((gen, sc["format"].as_str().unwrap().to_string()));
    }
    assert_eq!(combos.len(), 6, "every generation in every container format: {combos:?}");
}

#[test]
#[cfg_attr(not(scenarios), ignore = "needs ../shared/data and the scenario-image tools (python3, hivex, ntfs-3g, fdisk, gdisk, mtools, dosfstools, qemu-img)")]
fn healthy_windows7_with_rdp_enabled() {
    let Some((img, _)) = scenario("win7-rdp-enabled-gen1") else { return };
    let (_, doc) = inspect_json(&img, &[]);
    assert_eq!(doc["windows"]["product_name"], "Windows 7 Professional");
    assert_eq!(doc["windows"]["build"], "7601");
    assert_eq!(setting(&doc, "rdp-deny-local", "Terminal Server", "fDenyTSConnections")["effective"], 0);
    // The one finding is a fact of this real hive: its Remote Desktop firewall rules are
    // enabled for the Domain and Private profiles only (RemoteDesktop-In-TCP_1, Public, is
    // Active=FALSE), so RDP is closed if Windows files the VM's network as Public.
    let f = &doc["findings"][0];
    assert_eq!((f["check"].as_str(), f["severity"].as_str()), (Some("fw-rdp-rule-inactive"), Some("medium")));
    assert!(f["message"].as_str().unwrap().contains("Public"), "{f}");
    assert!(f["fix"].as_str().unwrap().contains("RemoteDesktop-In-TCP_1"), "{f}");
    // Its two static addresses belong to emulated Intel adapters, not to a Hyper-V NIC: notes only.
    let notes: Vec<&J> = doc["notes"].as_array().unwrap().iter().filter(|n| n["check"] == "static-ip").collect();
    assert_eq!(notes.len(), 2, "{}", doc["notes"]);
}

#[test]
#[cfg_attr(not(scenarios), ignore = "needs ../shared/data and the scenario-image tools (python3, hivex, ntfs-3g, fdisk, gdisk, mtools, dosfstools, qemu-img)")]
fn a_change_that_lives_only_in_the_log_is_reported() {
    let Some((img, sc)) = scenario("dirty-log") else { return };
    let (_, doc) = inspect_json(&img, &[]);
    let system = doc["hives"].as_array().unwrap().iter().find(|h| h["name"] == "SYSTEM").unwrap();
    assert_eq!(system["state"], "recovered");
    assert_eq!(system["report"]["recovered_sequence"], sc["log"]["sequence"]);
    assert_eq!(setting(&doc, "rdp-port", "RDP-Tcp", "PortNumber")["effective"], 3390);
    // The primary alone (what log-blind tools read) still says 3389.
    let dir = tempfile::tempdir().unwrap();
    let o = rdp_on(&img, &["cat", img.to_str().unwrap(), r"Windows\System32\config\SYSTEM"]);
    assert!(o.status.success(), "{}", stderr(&o));
    std::fs::write(dir.path().join("SYSTEM"), &o.stdout).unwrap();
    let (_, primary) = inspect_json(dir.path(), &[]);
    assert_eq!(primary["hives"][0]["state"], "dirty-not-recovered");
    assert_eq!(setting(&primary, "rdp-port", "RDP-Tcp", "PortNumber")["effective"], 3389);
    assert!(!checks(&primary).contains("rdp-port"));
}

#[test]
#[cfg_attr(not(scenarios), ignore = "needs ../shared/data and the scenario-image tools (python3, hivex, ntfs-3g, fdisk, gdisk, mtools, dosfstools, qemu-img)")]
fn real_dirty_hive_is_read_with_its_logs() {
    let Some((img, _)) = scenario("win10-1709-dirty") else { return };
    let (_, doc) = inspect_json(&img, &[]);
    let system = &doc["hives"][0];
    assert_eq!((system["name"].as_str(), system["state"].as_str()), (Some("SYSTEM"), Some("recovered")));
    assert_eq!(system["report"]["recovered_sequence"], 2130);
}

#[test]
#[cfg_attr(not(scenarios), ignore = "needs ../shared/data and the scenario-image tools (python3, hivex, ntfs-3g, fdisk, gdisk, mtools, dosfstools, qemu-img)")]
fn policy_value_wins_and_names_both() {
    let Some((img, _)) = scenario("policy-deny") else { return };
    let (_, doc) = inspect_json(&img, &[]);
    let s = setting(&doc, "rdp-deny-local", "Terminal Server", "fDenyTSConnections");
    assert_eq!((s["local"].as_u64(), s["policy"].as_u64(), s["effective"].as_u64(), s["source"].as_str()), (Some(0), Some(1), Some(1), Some("policy")));
    let f = doc["findings"].as_array().unwrap().iter().find(|f| f["check"] == "rdp-deny-policy").unwrap();
    assert_eq!(f["actions"][0]["op"], "delete-value");
    assert_eq!(f["actions"][0]["hive"], "SOFTWARE");
}

#[test]
#[cfg_attr(not(scenarios), ignore = "needs ../shared/data and the scenario-image tools (python3, hivex, ntfs-3g, fdisk, gdisk, mtools, dosfstools, qemu-img)")]
fn symptoms_map_to_checks_and_to_causes_outside_the_disk() {
    let Some((img, _)) = scenario("crypto") else { return };
    let (_, doc) = inspect_json(&img, &["--symptom", "An internal error has occurred."]);
    let m = &doc["symptom"]["matches"][0];
    assert_eq!(m["id"], "internal-error");
    let found: Vec<&str> = m["checks"].as_array().unwrap().iter().filter(|c| c["found"] == true).map(|c| c["check"].as_str().unwrap()).collect();
    assert!(found.contains(&"tls12-server-disabled") && found.contains(&"min-encryption-level"), "{found:?}");
    let Some((healthy, _)) = scenario("win7-rdp-enabled-gen2") else { return };
    let o = rdp_on(&healthy, &["inspect", healthy.to_str().unwrap(), "--symptom", "Remote Desktop can't find the computer \"vm1\"."]);
    let text = stdout(&o);
    assert!(text.contains("the cause is most likely outside the disk"), "{text}");
    assert!(text.contains("DNS"), "{text}");
}

#[test]
fn demo_image_needs_nothing_installed() {
    let demo = testdata().join("demo.vhdx");
    let o = rdp_on(&demo, &["inspect", demo.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    let text = stdout(&o);
    assert!(text.contains("[critical] rdp-deny-local"), "{text}");
    assert!(text.contains("fix: set HKLM\\SYSTEM\\ControlSet001\\Control\\Terminal Server\\fDenyTSConnections = 0 (REG_DWORD)"), "{text}");
    let (code, doc) = inspect_json(&demo, &[]);
    assert_eq!(code, 1);
    assert_schema(&doc, "demo");
    assert_eq!(checks(&doc), BTreeSet::from(["rdp-deny-local".to_string()]));
    assert!(doc["settings"].as_array().unwrap().len() >= 40);
}

#[test]
fn hive_directory_and_single_hive_file() {
    let dir = tempfile::tempdir().unwrap();
    for h in ["SYSTEM", "SOFTWARE"] {
        std::fs::copy(testdata().join("hives").join(h), dir.path().join(h)).unwrap();
    }
    std::fs::copy(testdata().join("hives/BCD-gen2"), dir.path().join("BCD")).unwrap();
    let (_, doc) = inspect_json(dir.path(), &[]);
    assert_eq!(doc["image"]["kind"], "directory");
    let states: Vec<&str> = doc["hives"].as_array().unwrap().iter().map(|h| h["state"].as_str().unwrap()).collect();
    assert_eq!(states, ["clean", "clean", "clean"]);
    assert!(doc["not_evaluated"].as_array().unwrap().is_empty());
    let (_, one) = inspect_json(&dir.path().join("SYSTEM"), &[]);
    assert_eq!(one["image"]["kind"], "hive-file");
    assert!(one["not_evaluated"].as_array().unwrap().iter().any(|n| n["check"] == "bcd-safeboot"));
    // No SYSTEM: an error, not an empty report.
    std::fs::remove_file(dir.path().join("SYSTEM")).unwrap();
    let o = rdp(&["inspect", dir.path().to_str().unwrap()]);
    assert_clean_error(&o, "no SYSTEM");
    assert!(stderr(&o).contains("no SYSTEM hive"));
}

#[test]
fn unreadable_images_exit_2() {
    let dir = tempfile::tempdir().unwrap();
    let junk = dir.path().join("junk.img");
    std::fs::write(&junk, vec![0u8; 1 << 20]).unwrap();
    assert_clean_error(&rdp_on(&junk, &["inspect", junk.to_str().unwrap()]), "zero-filled image");
    let bl = gunzip(&testdata().join("images/bitlocker-mbr.raw.gz"), dir.path());
    let o = rdp_on(&bl, &["inspect", bl.to_str().unwrap(), "--json"]);
    assert_clean_error(&o, "BitLocker");
    assert!(o.stdout.is_empty());
}

#[test]
#[cfg_attr(not(shared_data), ignore = "needs ../shared (reference/rdp-checks.md)")]
fn catalog_ids_come_from_the_reference() {
    let ids = rdprescue::rdp::catalog::ids();
    assert!(ids.len() >= 40, "{} ids", ids.len());
    assert!(rdprescue::rdp::CATALOG.len() >= 50);
    let Some(shared) = shared_data() else { return };
    let reference = std::fs::read_to_string(shared.join("../reference/rdp-checks.md")).unwrap();
    // Ours: the issue names these (fAllowSecProtocolNegotiation, gpsvc, TLS 1.0/1.1 next to 1.2).
    let own = ["sec-protocol-negotiation", "gpsvc-disabled", "tls10-server-disabled", "tls11-server-disabled"];
    for id in ids {
        assert!(own.contains(&id) || reference.contains(&format!("| {id} ")) || reference.contains(&format!("| {id} (")), "{id} is not a check id of rdp-checks.md");
    }
}
