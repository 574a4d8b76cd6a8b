//! Group Policy files that put a bad value back (issue 13 item 5): the
//! Registry.pol (PReg) and GptTmpl.inf parsers against an independent reader
//! (the PyPI package `registrypol`) and hostile bytes, the `reapplied_by`
//! annotation on the scenario images gpo-local and gpo-domain, and `fix`
//! rewriting the local Registry.pol DWORD, read back by ntfs-3g (`ntfscat`)
//! and parsed by both readers.

mod common;
use common::*;
use rdprescue::hive::edit::{Edit, RegData};
use rdprescue::hive::HiveKind;
use rdprescue::policy::inf::SecTemplate;
use rdprescue::policy::preg::{PolEntry, PolFile};
use rdprescue::policy::{self, Gpo, GpoFile, Policies};
use rdprescue::rdp::{Finding, HiveSet, Severity};
use serde_json::Value as J;
use std::path::{Path, PathBuf};
use std::process::Command;

const TS: &str = r"Software\Policies\Microsoft\Windows NT\Terminal Services";
const GUID: &str = "{4E8A1B52-7C4D-4B8A-9F3E-2D1C0B9A8E7F}";
const LOCAL_POL: &str = r"Windows\System32\GroupPolicy\Machine\Registry.pol";

fn scenario(name: &str) -> Option<PathBuf> {
    Some(find_scenario("gpo", name)?.0)
}

fn work(test: &str) -> PathBuf {
    let d = Path::new(env!("CARGO_TARGET_TMPDIR")).join("gpo").join(test);
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

fn inspect_json(img: &Path) -> J {
    let o = rdp_on(img, &["inspect", "--json", img.to_str().unwrap()]);
    assert!(matches!(o.status.code(), Some(0 | 1)), "inspect: {}", stderr(&o));
    serde_json::from_slice(&o.stdout).unwrap()
}

fn finding<'a>(doc: &'a J, id: &str) -> &'a J {
    doc["findings"].as_array().unwrap().iter().find(|f| f["check"] == id).unwrap_or_else(|| panic!("no finding {id}: {}", doc["findings"]))
}

/// The Python of a venv holding the PyPI package `registrypol` (an
/// independent Registry.pol reader), or None with a notice.
fn registrypol_python() -> Option<PathBuf> {
    let venv = Path::new(env!("CARGO_TARGET_TMPDIR")).join("registrypol-venv");
    let py = venv.join("bin/python");
    let ok = |c: &mut Command| c.out().is_ok_and(|o| o.status.success());
    if !ok(Command::new(&py).args(["-c", "import registrypol"])) {
        let made = ok(Command::new("python3").arg("-m").arg("venv").arg(&venv)) && ok(Command::new(venv.join("bin/pip")).args(["install", "-q", "registrypol==1.0.1"]));
        if !made {
            eprintln!("NOTICE: could not install registrypol into {}; SKIP the independent Registry.pol cross-check", venv.display());
            return None;
        }
    }
    Some(py)
}

/// `registrypol`'s reading of a Registry.pol: [key, value, type, size, data hex] per entry.
fn registrypol_read(bytes: &[u8], dir: &Path) -> Option<Vec<(String, String, u32, usize, String)>> {
    let py = registrypol_python()?;
    let f = dir.join("oracle.pol");
    std::fs::write(&f, bytes).unwrap();
    let script = "import json,sys,registrypol\np=registrypol.load(open(sys.argv[1],'rb'))\nprint(json.dumps([[v.key.rstrip('\\x00'),v.value.rstrip('\\x00'),v.type,v.size,v.data.hex()] for v in p.values]))";
    let o = Command::new(py).arg("-c").arg(script).arg(&f).out().unwrap();
    assert!(o.status.success(), "registrypol: {}", stderr(&o));
    let j: Vec<J> = serde_json::from_slice(&o.stdout).unwrap();
    Some(j.iter().map(|e| (e[0].as_str().unwrap().into(), e[1].as_str().unwrap().into(), e[2].as_u64().unwrap() as u32, e[3].as_u64().unwrap() as usize, e[4].as_str().unwrap().into())).collect())
}

fn ours(p: &PolFile) -> Vec<(String, String, u32, usize, String)> {
    p.entries.iter().map(|e| (e.key.clone(), e.value.clone(), e.ty, e.data.len(), hex(&e.data))).collect()
}

fn entry(key: &str, value: &str, ty: u32, data: Vec<u8>) -> PolEntry {
    PolEntry { key: key.into(), value: value.into(), ty, data, offset: 0, data_offset: 0 }
}

fn utf16z(s: &str) -> Vec<u8> {
    s.encode_utf16().chain([0]).flat_map(u16::to_le_bytes).collect()
}

/// A file with every directive and several types, as written by our writer.
fn sample() -> Vec<u8> {
    PolFile {
        entries: vec![
            entry(TS, "fDenyTSConnections", 4, 1u32.to_le_bytes().to_vec()),
            entry(TS, "**del.SecurityLayer", 1, utf16z(" ")),
            entry(TS, "**DeleteValues", 1, utf16z("A;B")),
            entry(r"Software\Policies\X", "**delvals.", 1, utf16z(" ")),
            entry(r"Software\Policies\X", "**DeleteKeys", 1, utf16z("K1;K2")),
            entry(r"Software\Policies\X", "**SecureKey", 4, 1u32.to_le_bytes().to_vec()),
            entry(r"Software\Policies\X", "**soft.Name", 1, utf16z("value")),
            entry(r"Software\Policies\Y", "Q", 11, 7u64.to_le_bytes().to_vec()),
            // 12 bytes: registrypol finds entries with a regex whose `.` does not
            // match byte 0x0A, so a size (or data) holding 0x0A hides the
            // entry from it; 10 bytes ("a", "b") would.
            entry(r"Software\Policies\Y", "Multi", 7, [utf16z("ab"), utf16z("c"), vec![0, 0]].concat()),
        ],
    }
    .to_bytes()
}

#[test]
fn registrypol_reads_what_we_read() {
    let d = work("oracle");
    let b = sample();
    let mine = ours(&PolFile::parse(&b).unwrap());
    assert_eq!(mine.len(), 9);
    let Some(theirs) = registrypol_read(&b, &d) else { return };
    assert_eq!(theirs, mine, "registrypol and policy::preg disagree");
}

#[test]
fn every_single_byte_corruption_is_an_error_or_a_parse_never_a_panic() {
    let b = sample();
    for i in 0..b.len() {
        for x in [0x00u8, 0xFF, b'[', b';', b']'] {
            let mut c = b.clone();
            c[i] = x;
            if let Err(e) = PolFile::parse(&c) {
                let m = e.to_string();
                assert!(m.starts_with("policy/preg at offset 0x") && !m.contains('\n'), "{i}/{x}: {m}");
            }
        }
    }
    // Templates: the same with a UTF-16 template.
    let t: Vec<u8> = [0xFF, 0xFE].into_iter().chain("[Privilege Rights]\r\nSeDenyRemoteInteractiveLogonRight = *S-1-5-32-544\r\n".encode_utf16().flat_map(u16::to_le_bytes)).collect();
    for i in 0..t.len() {
        let mut c = t.clone();
        c[i] ^= 0xD8;
        if let Err(e) = SecTemplate::parse(&c) {
            let m = e.to_string();
            assert!(m.starts_with("policy/inf at offset 0x") && !m.contains('\n'), "{i}: {m}");
        }
    }
}

fn security_hive_with(sid: &str, mask: u32) -> Option<HiveSet> {
    // A real SECURITY hive edited by our own editor so that Policy\Accounts\<SID>\ActSysAc holds `mask`.
    let dir = shared_data()?.join("hives/sam-security/win2019_64");
    let bytes = std::fs::read(dir.join("SECURITY")).ok()?;
    let loaded = rdprescue::hive::load(bytes, None, None).unwrap();
    let mut ed = rdprescue::hive::edit::HiveEditor::new(loaded.bytes.clone(), loaded.report.max_sequence_seen).unwrap();
    let key = format!(r"Policy\Accounts\{sid}");
    ed.apply_all(&[Edit::create_key(HiveKind::Security, key.clone()), Edit::set(HiveKind::Security, key, "ActSysAc", RegData::Binary(mask.to_le_bytes().to_vec()))]).unwrap();
    let h = rdprescue::hive::tree::Hive::new("SECURITY", rdprescue::hive::load(ed.finish().unwrap(), None, None).unwrap());
    Some(HiveSet { hives: vec![(HiveKind::Security, h)] })
}

fn finding_with(actions: Vec<Edit>) -> Finding {
    Finding { check: "test".into(), severity: Severity::High, title: "t", message: String::new(), fix: String::new(), actions, reapplied_by: Vec::new(), confirmed_by: None }
}

fn policies(inf: &str, source: &'static str) -> Policies {
    let parsed = SecTemplate::parse(inf.as_bytes()).unwrap();
    let guid = (source == "domain").then(|| GUID.to_string());
    Policies {
        gpos: vec![Gpo { source, guid, name: Some("RDP Lockdown".into()), pol: None, inf: Some(GpoFile { partition: 2, path: "GptTmpl.inf".into(), parsed, not_writable: None }) }],
        errors: Vec::new(),
    }
}

#[test]
#[cfg_attr(not(shared_data), ignore = "needs ../shared/data")]
fn privilege_rights_match_act_sys_ac_edits_generically() {
    const DENY_RDP: u32 = 0x800;
    const ALLOW_RDP: u32 = 0x400;
    let admins = "S-1-5-32-544";
    let Some(hives) = security_hive_with(admins, DENY_RDP | 0x2) else {
        eprintln!("NOTICE: ../shared/data missing; SKIP the ActSysAc matching test");
        return;
    };
    let key = format!(r"Policy\Accounts\{admins}");
    // The fix clears the deny bit; a template denying RDP to Administrators puts it back.
    let clear = finding_with(vec![Edit::set(HiveKind::Security, key.clone(), "ActSysAc", RegData::Binary(0x2u32.to_le_bytes().to_vec()))]);
    let p = policies("[Privilege Rights]\nSeDenyRemoteInteractiveLogonRight = *S-1-5-32-544,Guest\n", "domain");
    let r = policy::reapplied(&hives, &p, &clear);
    assert_eq!(r.len(), 1, "{r:?}");
    assert_eq!(r[0].source, "domain");
    assert_eq!(r[0].gpo.as_deref(), Some(GUID));
    assert!(r[0].value.contains("SeDenyRemoteInteractiveLogonRight") && r[0].remedy.contains("domain controller"), "{r:?}");
    // A template that denies RDP to someone else only: healthy for this fix.
    let other = policies("[Privilege Rights]\nSeDenyRemoteInteractiveLogonRight = Guest\n", "local");
    assert!(policy::reapplied(&hives, &other, &clear).is_empty());
    // Adding the allow bit while the template grants RDP logon to Remote Desktop Users only: it is removed again.
    let add = finding_with(vec![Edit::set(HiveKind::Security, key.clone(), "ActSysAc", RegData::Binary((DENY_RDP | 0x2 | ALLOW_RDP).to_le_bytes().to_vec()))]);
    let only_rdu = policies("[Privilege Rights]\nSeRemoteInteractiveLogonRight = *S-1-5-32-555\n", "local");
    let r = policy::reapplied(&hives, &only_rdu, &add);
    assert_eq!(r.len(), 1, "{r:?}");
    assert!(r[0].value.contains("leaves out S-1-5-32-544") && r[0].remedy.contains("secpol.msc"), "{r:?}");
    // ... and a template naming Administrators (by name) agrees with it.
    let with_admins = policies("[Privilege Rights]\nSeRemoteInteractiveLogonRight = Administrators,*S-1-5-32-555\n", "local");
    assert!(policy::reapplied(&hives, &with_admins, &add).is_empty());
}

#[test]
#[cfg_attr(not(shared_data), ignore = "needs ../shared/data")]
fn enabling_the_builtin_administrator_against_enable_admin_account_0() {
    let Some(dir) = shared_data().map(|d| d.join("hives/sam/SAM-win10")) else {
        eprintln!("NOTICE: ../shared/data missing; SKIP");
        return;
    };
    let sam = rdprescue::hive::tree::Hive::new("SAM", rdprescue::hive::load(std::fs::read(dir).unwrap(), None, None).unwrap());
    let key = r"SAM\Domains\Account\Users\000001F4";
    let f = sam.key(key).unwrap().values.into_iter().find(|v| v.name == "F").unwrap().raw;
    let mut enabled = f.clone();
    enabled[0x38] &= !0x01; // ACB disabled bit off
    let hives = HiveSet { hives: vec![(HiveKind::Sam, sam)] };
    let fnd = finding_with(vec![Edit::set(HiveKind::Sam, key, "F", RegData::Binary(enabled))]);
    let r = policy::reapplied(&hives, &policies("[System Access]\nEnableAdminAccount = 0\n", "local"), &fnd);
    assert_eq!(r.len(), 1, "{r:?}");
    assert!(r[0].value.contains("EnableAdminAccount = 0"));
    assert!(policy::reapplied(&hives, &policies("[System Access]\nEnableAdminAccount = 1\n", "local"), &fnd).is_empty());
}

#[test]
#[cfg_attr(not(scenarios), ignore = "needs ../shared/data and the scenario-image tools (python3, hivex, ntfs-3g, fdisk, gdisk, mtools, dosfstools, qemu-img)")]
fn gpo_local_findings_name_the_local_gpo() {
    let Some(img) = scenario("gpo-local") else { return };
    let doc = inspect_json(&img);
    let deny = finding(&doc, "rdp-deny-policy");
    let r = deny["reapplied_by"].as_array().unwrap();
    assert_eq!(r.len(), 1, "{r:?}");
    assert_eq!(r[0]["source"], "local");
    assert_eq!(r[0]["gpo"], J::Null);
    assert_eq!(r[0]["name"], "Local Group Policy");
    assert!(r[0]["file"].as_str().unwrap().ends_with(LOCAL_POL));
    assert_eq!(r[0]["value"], format!(r"{TS}\fDenyTSConnections = 1 (REG_DWORD)"));
    assert_eq!(r[0]["remedy"], "fix rewrites the entry in the local Registry.pol to 0");
    // TermService disabled, and the template disables it again.
    let svc = finding(&doc, "termservice-disabled")["reapplied_by"].as_array().unwrap();
    assert_eq!(svc.len(), 1);
    assert!(svc[0]["file"].as_str().unwrap().ends_with("GptTmpl.inf") && svc[0]["value"] == "[Service General Setting] TermService start mode 4", "{svc:?}");
    // UserAuthentication = 1 in the same file is healthy: no finding, no note; a finding the GPO does not touch has no field.
    assert!(finding(&doc, "fw-rdp-rule-inactive").get("reapplied_by").is_none());
    assert!(!doc.to_string().contains("UserAuthentication = 1"));
    // The text report says it too.
    let t = stdout(&rdp_on(&img, &["inspect", img.to_str().unwrap()]));
    assert!(t.contains(r"re-applied by the local GPO: partition 3: Windows\System32\GroupPolicy\Machine\Registry.pol sets"), "{t}");
}

#[test]
#[cfg_attr(not(scenarios), ignore = "needs ../shared/data and the scenario-image tools (python3, hivex, ntfs-3g, fdisk, gdisk, mtools, dosfstools, qemu-img)")]
fn gpo_domain_findings_name_the_gpo_and_pending_values_are_noted() {
    let Some(img) = scenario("gpo-domain") else { return };
    let doc = inspect_json(&img);
    let all = finding(&doc, "rdp-deny-policy")["reapplied_by"].as_array().unwrap().clone();
    assert_eq!(all.len(), 2, "{all:?}");
    // The local GPO's Registry.pol is resident in its MFT record: named, not rewritten.
    assert_eq!(all[0]["source"], "local");
    assert!(all[0]["remedy"].as_str().unwrap().contains("cannot rewrite this Registry.pol in place") && all[0]["remedy"].as_str().unwrap().contains("resident"), "{all:?}");
    let r = &all[1..];
    assert_eq!((r[0]["source"].as_str(), r[0]["gpo"].as_str(), r[0]["name"].as_str()), (Some("domain"), Some(GUID), Some("RDP Lockdown")));
    assert!(r[0]["file"].as_str().unwrap().contains(&format!(r"ProgramData\Microsoft\Group Policy\History\{GUID}\Machine\Registry.pol")));
    assert!(r[0]["remedy"].as_str().unwrap().starts_with(&format!("fix the domain GPO \"RDP Lockdown\" {GUID} on a domain controller")));
    // The cached domain security template (which names no GPO) disables TermService again.
    let svc = finding(&doc, "termservice-disabled")["reapplied_by"].as_array().unwrap().clone();
    assert_eq!(svc.len(), 1, "{svc:?}");
    assert_eq!((svc[0]["source"].as_str(), svc[0]["gpo"].as_str()), (Some("domain"), None));
    assert!(svc[0]["file"].as_str().unwrap().ends_with(r"Windows\security\templates\policies\gpt00000.dom"), "{svc:?}");
    assert_eq!(svc[0]["value"], "[Service General Setting] TermService start mode 4");
    assert!(svc[0]["remedy"].as_str().unwrap().starts_with("find the domain GPO that sets it"), "{svc:?}");
    let t = stdout(&rdp_on(&img, &["inspect", img.to_str().unwrap()]));
    assert!(t.contains(r"re-applied by a domain GPO (cached domain security template gpt00000.dom): partition 2: Windows\security\templates\policies\gpt00000.dom sets"), "{t}");
    let notes: Vec<&str> = doc["notes"].as_array().unwrap().iter().filter(|n| n["check"] == "gpo-files").map(|n| n["message"].as_str().unwrap()).collect();
    assert_eq!(notes.len(), 2, "{notes:?}");
    assert!(notes.iter().any(|n| n.contains("will set SecurityLayer = 7 at the next Group Policy refresh")), "{notes:?}");
    // The GPO folder SOFTWARE does not name, found by listing History: its
    // truncated Registry.pol is one line naming the layer and the offset.
    assert!(notes.contains(
        &r"a Group Policy file could not be read, so whether it re-applies a bad value is unknown: partition 2: ProgramData\Microsoft\Group Policy\History\{0F0E0D0C-0B0A-4909-8807-060504030201}\Machine\Registry.pol: policy/preg at offset 0xa: file ends inside an instruction (expected key)"
    ), "{notes:?}");
    let note = doc["notes"].as_array().unwrap().iter().find(|n| n["check"] == "gpo-files" && n["message"].as_str().unwrap().contains("SecurityLayer")).unwrap();
    assert_eq!(note["reapplied_by"][0]["value"], format!(r"{TS}\SecurityLayer = 7 (REG_DWORD)"));
    // fix: the hive is fixed, the domain GPO is named as what to fix by hand.
    let d = work("domain");
    let out = d.join("out.vhdx");
    let before = sha256_file(&img);
    let o = rdp_on(&img, &["fix", img.to_str().unwrap(), "--check", "rdp-deny-policy", "--out", out.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert!(stderr(&o).contains(&format!("fix the domain GPO \"RDP Lockdown\" {GUID} on a domain controller")), "{}", stderr(&o));
    assert!(!stdout(&o).contains("Registry.pol"), "a domain GPO's cached file (or a resident local one) is never rewritten: {}", stdout(&o));
    assert!(stderr(&o).contains("cannot rewrite this Registry.pol in place"), "{}", stderr(&o));
    assert_eq!(before, sha256_file(&img));
}

/// Partition 3 (the Windows volume of a Gen2 raw scenario) cut out, and a file of it read by ntfs-3g.
fn ntfscat(raw_img: &Path, path: &str, dir: &Path) -> Option<Vec<u8>> {
    if !have("ntfscat") {
        eprintln!("NOTICE: ntfscat (ntfs-3g) not installed; SKIP the ntfs-3g read-back");
        return None;
    }
    let d: J = serde_json::from_slice(&rdp(&["disk", "--json", raw_img.to_str().unwrap()]).stdout).unwrap();
    let w = d["windows_volumes"][0].as_u64().unwrap();
    let p = d["partition_table"]["partitions"].as_array().unwrap().iter().find(|p| p["index"] == w).unwrap();
    let (off, size) = (p["offset"].as_u64().unwrap() as usize, p["size"].as_u64().unwrap() as usize);
    let part = dir.join(format!("win-{}.ntfs", raw_img.file_stem().unwrap().to_string_lossy()));
    std::fs::write(&part, &std::fs::read(raw_img).unwrap()[off..off + size]).unwrap();
    let o = Command::new("ntfscat").arg(&part).arg(path.replace('\\', "/")).out().unwrap();
    assert!(o.status.success(), "ntfscat: {}", stderr(&o));
    std::fs::remove_file(&part).unwrap();
    Some(o.stdout)
}

#[test]
#[cfg_attr(not(scenarios), ignore = "needs ../shared/data and the scenario-image tools (python3, hivex, ntfs-3g, fdisk, gdisk, mtools, dosfstools, qemu-img)")]
fn fix_rewrites_the_local_registry_pol_dword() {
    let Some(img) = scenario("gpo-local") else { return };
    let d = work("local");
    let out = d.join("out.raw");
    let before = sha256_file(&img);
    let o = rdp_on(&img, &["fix", img.to_str().unwrap(), "--check", "rdp-deny-policy", "--out", out.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(0), "{}{}", stdout(&o), stderr(&o));
    assert_eq!(before, sha256_file(&img), "fix modified its input");
    assert!(stdout(&o).contains("fDenyTSConnections = 0 (REG_DWORD)"), "{}", stdout(&o));
    // Read back by ntfs-3g: only the one DWORD changed; both readers agree.
    let (Some(old), Some(new)) = (ntfscat(&img, LOCAL_POL, &d), ntfscat(&out, LOCAL_POL, &d)) else { return };
    assert_eq!(old.len(), new.len(), "the file keeps its size");
    let diff: Vec<usize> = (0..old.len()).filter(|&i| old[i] != new[i]).collect();
    let p_old = PolFile::parse(&old).unwrap();
    let p_new = PolFile::parse(&new).unwrap();
    let e = p_old.entries.iter().find(|e| e.value == "fDenyTSConnections").unwrap();
    assert_eq!(diff, vec![e.data_offset as usize], "exactly the DWORD's low byte changes");
    assert_eq!(p_new.lookup(TS, "fDenyTSConnections").and_then(|e| e.dword()), Some(0));
    assert_eq!(p_old.entries.len(), 15);
    if let Some(theirs) = registrypol_read(&new, &d) {
        assert_eq!(theirs, ours(&p_new), "registrypol reads the rewritten file as we do");
        let fdeny = theirs.iter().find(|e| e.1 == "fDenyTSConnections").unwrap();
        assert_eq!((fdeny.2, fdeny.4.as_str()), (4, "00000000"));
    }
    // Re-inspected: the finding is gone and no GPO re-applies it.
    let doc = inspect_json(&out);
    assert!(doc["findings"].as_array().unwrap().iter().all(|f| f["check"] != "rdp-deny-policy"));
    assert!(!doc.to_string().contains("fDenyTSConnections = 1"), "{}", doc["findings"]);
}
