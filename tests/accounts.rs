//! Issue 13: who may log on. The account (SAM) and logon-right (SECURITY)
//! checks on the scenario images of testdata/scenarios.json, whose real SAM +
//! SECURITY hives were broken with hivex: each finding fires on its scenario
//! and not on the clean one, `fix --all` (and the unlock-admin profile)
//! repairs it and the output inspects clean, and the fixed hives, read back
//! from the new image by regipy and hivex (not by rdprescue), hold the edited
//! F bytes and ActSysAc masks.

mod common;

use common::*;
use serde_json::Value as J;
use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::Command;

/// Every check this issue added.
const IDS: [&str; 8] = [
    "no-enabled-admin",
    "admin-disabled",
    "account-locked",
    "account-expired",
    "password-must-change-nla",
    "user-rights-deny-rdp",
    "user-rights-no-rdp-allow",
    "user-rights-network-nla",
];

/// regipy's view of a SAM and a SECURITY hive: samparse's users, and every
/// account object's raw ActSysAc / Sid / SecDesc (decoded here, not by
/// rdprescue).
const READER: &str = r#####"
import json, struct, sys
from regipy.registry import RegistryHive
from regipy.plugins.sam.samparse import SAMParsePlugin

def default_value(h, path):
    for v in h.get_key(path).iter_values(as_json=False, trim_values=False):
        if v.name in ('', '(default)'):
            return v.value
    return None

out = {}
sam, sec = sys.argv[1], sys.argv[2]
h = RegistryHive(sam)
p = SAMParsePlugin(h, as_json=True)
p.run()
out['users'] = {str(u['rid']): u for u in p.entries if 'rid' in u}
h = RegistryHive(sec)
acc = {}
for sk in h.get_key(r'\Policy\Accounts').iter_subkeys():
    base = '\\Policy\\Accounts\\' + sk.name
    subs = [s.name for s in sk.iter_subkeys()]
    e = {}
    for n in ('ActSysAc', 'Sid', 'SecDesc'):
        if n in subs:
            e[n] = default_value(h, base + '\\' + n).hex()
    if 'ActSysAc' in e:
        e['mask'] = struct.unpack('<I', bytes.fromhex(e['ActSysAc']))[0]
    acc[sk.name] = e
out['accounts'] = acc
print(json.dumps(out, default=str))
"#####;

fn scenarios() -> Option<&'static (PathBuf, Vec<J>)> {
    build_scenarios("accounts")
}

fn scenario(name: &str) -> Option<(PathBuf, &'static J)> {
    find_scenario("accounts", name)
}

fn inspect(img: &Path, extra: &[&str]) -> (i32, J) {
    let mut args = vec!["inspect", "--json", img.to_str().unwrap()];
    args.extend_from_slice(extra);
    let o = rdp_on(img, &args);
    let code = o.status.code().unwrap();
    assert!(code == 0 || code == 1, "inspect {}: exit {code}: {}", img.display(), stderr(&o));
    (code, serde_json::from_slice(&o.stdout).unwrap())
}

fn checks(doc: &J) -> BTreeSet<String> {
    doc["findings"].as_array().unwrap().iter().map(|f| f["check"].as_str().unwrap().to_string()).collect()
}

/// `rdprescue fix IMG ARGS --out DIR/NAME.EXT`; the output path.
fn fix(img: &Path, dir: &Path, name: &str, args: &[&str]) -> (PathBuf, std::process::Output) {
    let out = dir.join(format!("{name}.{}", img.extension().unwrap().to_str().unwrap()));
    let mut a = vec!["fix", img.to_str().unwrap()];
    a.extend_from_slice(args);
    a.extend(["--out", out.to_str().unwrap()]);
    (out.clone(), rdp_on(img, &a))
}

/// SAM and SECURITY of an image, copied out with `rdprescue cat`.
fn hives_of(img: &Path, dir: &Path, tag: &str) -> (PathBuf, PathBuf) {
    let get = |h: &str| {
        let o = rdp_on(img, &["cat", img.to_str().unwrap(), &format!(r"Windows\System32\config\{h}")]);
        assert!(o.status.success(), "cat {h}: {}", stderr(&o));
        let p = dir.join(format!("{tag}-{h}"));
        std::fs::write(&p, &o.stdout).unwrap();
        p
    };
    (get("SAM"), get("SECURITY"))
}

/// Whether regipy is available; its venv is installed once, not by several
/// tests of this binary at the same time (else a notice, and the cross-check
/// is skipped).
fn venv() -> bool {
    static VENV: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    *VENV.get_or_init(|| regipy_python().is_some())
}

/// regipy's reading of an image's SAM and SECURITY (None: regipy unavailable, noticed).
fn read_back(img: &Path, dir: &Path, tag: &str) -> Option<J> {
    if !venv() {
        return None;
    }
    let (sam, sec) = hives_of(img, dir, tag);
    regipy_script(READER, &[sam.to_str().unwrap(), sec.to_str().unwrap()])
}

/// hivexregedit's export of `key` in `hive` (None, noticed, without hivex).
fn hivex_export(hive: &Path, key: &str) -> Option<String> {
    if !have("hivexregedit") {
        eprintln!("NOTICE: hivexregedit not installed; skipping the hivex read-back");
        return None;
    }
    let o = Command::new("hivexregedit").args(["--export", hive.to_str().unwrap(), key]).out().unwrap();
    assert!(o.status.success(), "hivexregedit {key}: {}", stderr(&o));
    Some(String::from_utf8_lossy(&o.stdout).into_owned())
}

/// regipy's samparse entries are keyed by RID here.
fn rid(name: &str) -> &'static str {
    match name {
        "Administrator" => "500",
        "Preston" => "1000",
        other => panic!("no RID for {other}"),
    }
}

fn user<'a>(users: &'a J, name: &str) -> &'a J {
    &users[rid(name)]
}

fn acb(users: &J, name: &str) -> u64 {
    user(users, name)["account_flags"].as_u64().unwrap_or_else(|| panic!("{name}: {users}"))
}

#[test]
#[cfg_attr(not(scenarios), ignore = "needs ../shared/data and the scenario-image tools (python3, hivex, ntfs-3g, fdisk, gdisk, mtools, dosfstools, qemu-img)")]
fn each_check_fires_on_its_scenario_and_not_on_the_clean_one() {
    let Some((_, all)) = scenarios() else { return };
    let (code, clean) = inspect(&scenario("accounts-clean").unwrap().0, &[]);
    assert_eq!((code, checks(&clean)), (0, BTreeSet::new()), "accounts-clean: {}", clean["findings"]);
    let mut fired = BTreeSet::new();
    let ours = |s: &&J| {
        let n = s["name"].as_str().unwrap();
        (n.starts_with("accounts-") || n.starts_with("rights-")) && n != "accounts-dc"
    };
    for sc in all.iter().filter(ours) {
        let name = sc["name"].as_str().unwrap();
        let (code, doc) = inspect(Path::new(sc["image"].as_str().unwrap()), &[]);
        let want: BTreeSet<String> = sc["expect"].as_array().unwrap().iter().map(|c| c.as_str().unwrap().to_string()).collect();
        assert_eq!(checks(&doc), want, "{name}: {}", sc["about"]);
        assert_eq!(code, i32::from(!want.is_empty()), "{name}: exit code");
        for f in doc["findings"].as_array().unwrap() {
            let id = f["check"].as_str().unwrap();
            fired.insert(id.to_string());
            // Each finding names the account(s) or SID(s) involved, with display names.
            let msg = f["message"].as_str().unwrap();
            assert!(msg.contains("S-1-5-"), "{name} {id}: no SID named: {msg}");
            assert!(["Preston", "Administrator", "Local account", "Administrators"].iter().any(|n| msg.contains(n)), "{name} {id}: no display name: {msg}");
            assert!(!f["actions"].as_array().unwrap().is_empty(), "{name} {id}: no automatic fix");
        }
    }
    let missing: Vec<&str> = IDS.iter().copied().filter(|i| !fired.contains(*i)).collect();
    assert!(missing.is_empty(), "checks with no scenario: {missing:?}");
    // Lockouts that run out by themselves are a note, not a finding; so is
    // must-change without NLA (the logon screen lets the user change it).
    let (_, expired) = inspect(&scenario("accounts-lockout-expired").unwrap().0, &[]);
    let notes = expired["notes"].to_string();
    assert!(notes.contains("lockout has run out") && notes.contains("\\\"now\\\" = 2022-06-22T16:28:50Z"), "{notes}");
    let (_, locked) = inspect(&scenario("accounts-locked").unwrap().0, &[]);
    let msg = locked["findings"][0]["message"].as_str().unwrap();
    assert!(msg.contains("\"now\" = 2030-01-01T00:00:00Z (the newest timestamp in the hives: Preston's last bad password)"), "{msg}");
    let (_, forever) = inspect(&scenario("accounts-locked-forever").unwrap().0, &[]);
    assert!(forever["findings"][0]["message"].as_str().unwrap().contains("until an administrator unlocks it"));
}

/// What the fixed hives must hold, per scenario (read by regipy).
fn expect_fixed(name: &str, r: &J) {
    let users = &r["users"];
    let acc = &r["accounts"];
    match name {
        "accounts-no-admin" | "accounts-admin-disabled" => {
            assert_eq!(acb(users, "Preston") & 1, 0, "{name}: Preston still disabled");
            if name == "accounts-no-admin" {
                assert_eq!(acb(users, "Administrator") & 1, 0, "{name}: Administrator (in use, disabled) still disabled");
            }
        }
        "accounts-locked" | "accounts-locked-forever" => {
            assert_eq!(acb(users, "Preston") & 0x400, 0, "{name}: still locked");
            assert_eq!(user(users, "Preston")["failed_login_count"], 0, "{name}");
            assert_eq!(user(users, "Preston")["last_failed_login"], J::Null, "{name}");
        }
        "accounts-expired" => assert_eq!(user(users, "Preston")["account_expires"], J::Null, "{name}: still expires"),
        "accounts-must-change" => {
            let t = user(users, "Preston")["password_last_set"].as_str().unwrap_or_default();
            assert!(t.starts_with("2022-06-22T16:28:50"), "{name}: PasswordLastSet {t} (want the snapshot time)");
        }
        "rights-deny-rdp" => assert_eq!(acc["S-1-5-113"]["mask"].as_u64().unwrap() & 0x800, 0, "{name}: {acc}"),
        "rights-no-rdp-allow" => assert_eq!(acc["S-1-5-32-544"]["mask"], 0x407, "{name}: {acc}"),
        "rights-admins-object-missing" => {
            let a = &acc["S-1-5-32-544"];
            assert_eq!(a["mask"], 0x400, "{name}: {acc}");
            assert_eq!(a["Sid"], "01020000000000052000000020020000", "{name}");
            assert_eq!(a["SecDesc"], acc["S-1-1-0"]["SecDesc"], "{name}: the descriptor every account object carries");
        }
        "rights-network-nla" => assert_eq!(acc["S-1-5-114"]["mask"].as_u64().unwrap() & 0x80, 0, "{name}: {acc}"),
        other => panic!("no read-back expectation for {other}"),
    }
}

#[test]
#[cfg_attr(not(scenarios), ignore = "needs ../shared/data and the scenario-image tools (python3, hivex, ntfs-3g, fdisk, gdisk, mtools, dosfstools, qemu-img)")]
fn fix_all_repairs_each_scenario_and_the_hives_read_back_independently() {
    let Some((_, all)) = scenarios() else { return };
    let dir = tempfile::tempdir().unwrap();
    let mut n = 0;
    for sc in all.iter().filter(|s| !s["expect"].as_array().unwrap().is_empty() && IDS.iter().any(|i| s["expect"].as_array().unwrap().iter().any(|e| e == i))) {
        let name = sc["name"].as_str().unwrap();
        let img = PathBuf::from(sc["image"].as_str().unwrap());
        let before = sha256_file(&img);
        let (_, doc) = inspect(&img, &[]);
        let (out, o) = fix(&img, dir.path(), name, &["--all"]);
        assert_eq!(o.status.code(), Some(0), "{name}: {}{}", stdout(&o), stderr(&o));
        assert_eq!(sha256_file(&img), before, "{name}: the input changed");
        let (code, after) = inspect(&out, &[]);
        assert_eq!((code, checks(&after)), (0, BTreeSet::new()), "{name}: after fix: {}", after["findings"]);
        if let Some(r) = read_back(&out, dir.path(), name) {
            expect_fixed(name, &r);
        }
        // hivex reads the very bytes the finding said it would write.
        for f in doc["findings"].as_array().unwrap() {
            for a in f["actions"].as_array().unwrap() {
                let (h, key) = (a["hive"].as_str().unwrap(), a["key"].as_str().unwrap());
                let hive = dir.path().join(format!("{name}-{h}"));
                let Some(text) = hivex_export(&hive, key) else { continue };
                let data = match &a["data"] {
                    J::String(s) => s.clone(),
                    d => d["hex"].as_str().unwrap().to_string(),
                };
                let bytes: Vec<String> = data.as_bytes().chunks(2).map(|c| String::from_utf8_lossy(c).into_owned()).collect();
                let name_part = if a["name"] == "" { "@".to_string() } else { format!("\"{}\"", a["name"].as_str().unwrap()) };
                let want_type = if a["type"] == "REG_BINARY" { "hex(3)".to_string() } else { "hex(0)".to_string() };
                let line = format!("{name_part}={want_type}:{}", bytes.join(","));
                let alt = line.replace("hex(3):", "hex:");
                let head = format!("[\\{key}]");
                let start = text.find(&head).unwrap_or_else(|| panic!("{name}: hivex has no {key}:\n{text}"));
                let block = text[start..].split("\n[").next().unwrap();
                assert!(block.contains(&line) || block.contains(&alt), "{name}: hivex shows for {key}:\n{block}\nwanted {line}");
            }
        }
        n += 1;
    }
    assert_eq!(n, 10, "scenarios fixed");
}

#[test]
#[cfg_attr(not(scenarios), ignore = "needs ../shared/data and the scenario-image tools (python3, hivex, ntfs-3g, fdisk, gdisk, mtools, dosfstools, qemu-img)")]
fn unlock_admin_profile() {
    let Some((img, _)) = scenario("accounts-no-admin") else { return };
    let dir = tempfile::tempdir().unwrap();
    // Default: the built-in Administrator (RID 500) is enabled; Preston, the
    // other administrator in use, stays disabled and is still reported.
    let (out, o) = fix(&img, dir.path(), "rid500", &["--profile", "unlock-admin"]);
    assert_eq!(o.status.code(), Some(0), "{}{}", stdout(&o), stderr(&o));
    assert!(stderr(&o).contains("unlock-admin: acting on Administrator (S-1-5-21-"), "{}", stderr(&o));
    assert_eq!(checks(&inspect(&out, &[]).1), BTreeSet::from(["admin-disabled".to_string()]));
    if let Some(r) = read_back(&out, dir.path(), "rid500") {
        assert_eq!(acb(&r["users"], "Administrator") & 1, 0);
        assert_eq!(acb(&r["users"], "Preston") & 1, 1);
    }
    // --user NAME (any case): that account instead.
    let (out, o) = fix(&img, dir.path(), "preston", &["--profile", "unlock-admin", "--user", "preston"]);
    assert_eq!(o.status.code(), Some(0), "{}{}", stdout(&o), stderr(&o));
    assert_eq!(checks(&inspect(&out, &[]).1), BTreeSet::new());
    if let Some(r) = read_back(&out, dir.path(), "preston") {
        assert_eq!(acb(&r["users"], "Preston") & 1, 0);
        assert_eq!(acb(&r["users"], "Administrator") & 1, 1);
    }
    // Unknown user, or --user without the profile: one-line errors, nothing written.
    let (out, o) = fix(&img, dir.path(), "nobody", &["--profile", "unlock-admin", "--user", "nobody"]);
    assert_clean_error(&o, "--user nobody");
    assert!(stderr(&o).contains("Administrator, Guest, Preston"), "{}", stderr(&o));
    assert!(!out.exists());
    let (_, o) = fix(&img, dir.path(), "nouser", &["--all", "--user", "Preston"]);
    assert_clean_error(&o, "--user without unlock-admin");
    // On a rights scenario the profile restores Administrators' RDP logon right.
    let Some((img, _)) = scenario("rights-no-rdp-allow") else { return };
    let (out, o) = fix(&img, dir.path(), "rights", &["--profile", "unlock-admin"]);
    assert_eq!(o.status.code(), Some(0), "{}{}", stdout(&o), stderr(&o));
    assert_eq!(checks(&inspect(&out, &[]).1), BTreeSet::new());
    if let Some(r) = read_back(&out, dir.path(), "rights") {
        assert_eq!(r["accounts"]["S-1-5-32-544"]["mask"], 0x407);
        assert_eq!(acb(&r["users"], "Administrator") & 1, 0);
    }
}

#[test]
#[cfg_attr(not(scenarios), ignore = "needs ../shared/data and the scenario-image tools (python3, hivex, ntfs-3g, fdisk, gdisk, mtools, dosfstools, qemu-img)")]
fn domain_controllers_skip_the_sam_checks() {
    let Some((_, all)) = scenarios() else { return };
    let sc = all.iter().find(|s| s["name"] == "accounts-dc").expect("the DC scenario with a DC's SAM + SECURITY");
    let img = PathBuf::from(sc["image"].as_str().unwrap());
    let (_, doc) = inspect(&img, &[]);
    let note = doc["notes"].as_array().unwrap().iter().find(|n| n["check"] == "no-enabled-admin").unwrap_or_else(|| panic!("{}", doc["notes"]));
    let msg = note["message"].as_str().unwrap();
    assert!(msg.contains("domain controller") && msg.contains("LanmanNT") && msg.contains("Directory Services Restore Mode"), "{msg}");
    assert!(!checks(&doc).iter().any(|c| IDS[..5].contains(&c.as_str())), "{:?}", checks(&doc));
    let dir = tempfile::tempdir().unwrap();
    let (_, o) = fix(&img, dir.path(), "dc", &["--profile", "unlock-admin"]);
    assert_clean_error(&o, "unlock-admin on a DC");
    assert!(stderr(&o).contains("domain controller"), "{}", stderr(&o));
}

#[test]
#[cfg_attr(not(scenarios), ignore = "needs ../shared/data and the scenario-image tools (python3, hivex, ntfs-3g, fdisk, gdisk, mtools, dosfstools, qemu-img)")]
fn settings_rows_and_audit_columns() {
    let Some((img, _)) = scenario("accounts-locked") else { return };
    let (_, doc) = inspect(&img, &[]);
    let s = doc["settings"].as_array().unwrap();
    let row = |id: &str, name: &str| s.iter().find(|r| r["id"] == id && r["name"] == name).unwrap_or_else(|| panic!("no setting {id}/{name}"));
    let p = row("no-enabled-admin", "F (Preston)");
    assert!(p["path"].as_str().unwrap().ends_with(r"HKLM\SAM\SAM\Domains\Account\Users\000003E8"));
    assert!(p["effective"].as_str().unwrap().starts_with("enabled, locked out (5 bad passwords"), "{p}");
    assert_eq!(p["local"]["bad_password_count"], 5);
    assert_eq!(row("no-enabled-admin", "F (lockout and password policy)")["effective"]["lockout_threshold"], 5);
    assert_eq!(row("no-enabled-admin", "now (newest timestamp in the hives)")["effective"], "2030-01-01T00:00:00Z");
    let a = row("user-rights-deny-rdp", "Administrators (S-1-5-32-544)");
    assert_eq!(a["local"], 0x407);
    assert!(a["effective"].as_array().unwrap().contains(&J::from("SeRemoteInteractiveLogonRight")));
    assert_eq!(row("user-rights-deny-rdp", "Local account (S-1-5-113)")["source"], "default");
    // audit: the same rows as CSV columns, and the finding in the record.
    let o = rdp_on(&img, &["audit", "--format", "csv", img.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    let csv = stdout(&o);
    let (head, line) = csv.split_once('\n').unwrap();
    assert!(head.contains("setting:no-enabled-admin/F (Preston)") && head.contains("setting:user-rights-deny-rdp/Administrators (S-1-5-32-544)"), "{head}");
    assert!(line.contains("account-locked") && line.contains("locked out (5 bad passwords"), "{line}");
    let o = rdp_on(&img, &["audit", "--format", "json", img.to_str().unwrap()]);
    let rec: J = serde_json::from_slice(&o.stdout).unwrap();
    let r = &rec["records"][0];
    assert_eq!(r["findings"][0]["check"], "account-locked");
    let names: Vec<&str> = r["hives"].as_array().unwrap().iter().map(|h| h["name"].as_str().unwrap()).collect();
    assert_eq!(names, ["SYSTEM", "SOFTWARE", "BCD", "SAM", "SECURITY"]);
}

#[test]
#[cfg_attr(not(scenarios), ignore = "needs ../shared/data and the scenario-image tools (python3, hivex, ntfs-3g, fdisk, gdisk, mtools, dosfstools, qemu-img)")]
fn client_messages_map_to_the_account_checks() {
    for (scn, text, id, check) in [
        ("rights-deny-rdp", "The connection was denied because the user account is not authorized for remote login.", "not-authorized-remote-login", "user-rights-deny-rdp"),
        ("accounts-locked", "As a security precaution, the user account has been locked out because there were too many logon attempts", "account-locked-out", "account-locked"),
        ("rights-no-rdp-allow", "This computer can't connect to the remote computer. Try connecting again.", "this-computer-cant-connect", "user-rights-no-rdp-allow"),
        ("accounts-must-change", "The credentials that were used to connect to the remote computer did not work.", "credentials-did-not-work", "password-must-change-nla"),
        ("rights-network-nla", "An authentication error has occurred. The function requested is not supported. This could be due to CredSSP encryption oracle remediation.", "credssp-encryption-oracle", "user-rights-network-nla"),
        ("accounts-clean", "Remote logins are currently disabled.", "remote-logins-disabled", "winstations-disabled"),
    ] {
        let Some((img, _)) = scenario(scn) else { return };
        let (_, doc) = inspect(&img, &["--symptom", text]);
        let m = &doc["symptom"]["matches"];
        assert_eq!(m.as_array().unwrap().len(), 1, "{text}: {m}");
        assert_eq!(m[0]["id"], id, "{text}");
        let c = m[0]["checks"].as_array().unwrap().iter().find(|c| c["check"] == check).unwrap_or_else(|| panic!("{id}: {check} not listed"));
        assert_eq!(c["found"], scn != "accounts-clean", "{scn}: {c}");
    }
}

#[test]
#[cfg_attr(not(all(shared_data, tool_hivexregedit)), ignore = "needs ../shared/data and hivexregedit (Linux)")]
fn real_account_objects_share_one_descriptor() {
    // What the fix copies into a new account object, measured with hivex on
    // every real SECURITY hive: one SecDesc for all account objects, REG_NONE
    // attribute values, an empty REG_BINARY key default.
    let Some(data) = shared_data() else { return };
    if !have("hivexregedit") {
        eprintln!("NOTICE: hivexregedit not installed; skipping");
        return;
    }
    let mut hives = 0;
    for d in std::fs::read_dir(data.join("hives/sam-security")).unwrap().flatten() {
        let sec = d.path().join("SECURITY");
        let text = hivex_export(&sec, r"Policy\Accounts").unwrap();
        let mut descs = BTreeSet::new();
        let mut key_defaults = BTreeSet::new();
        let mut current = String::new();
        for line in text.lines() {
            if line.starts_with('[') {
                current = line.to_string();
            } else if let Some(v) = line.strip_prefix("@=") {
                let depth = current.matches('\\').count();
                match depth {
                    3 => {
                        key_defaults.insert(v.to_string());
                    }
                    4 => {
                        assert!(v.starts_with("hex(0):"), "{}: {current} {v}", sec.display());
                        if current.ends_with("\\SecDesc]") {
                            descs.insert(v.to_string());
                        }
                    }
                    _ => {}
                }
            }
        }
        assert_eq!(descs.len(), 1, "{}: {descs:?}", sec.display());
        assert_eq!(key_defaults, BTreeSet::from(["hex(3):".to_string()]), "{}", sec.display());
        let ours = rdprescue::hive::lsa::Rights::read(&rdprescue::machine::load_file(&sec).unwrap()).unwrap();
        let sd = ours.common_sec_desc().unwrap().iter().map(|b| format!("{b:02x}")).collect::<Vec<_>>().join(",");
        assert_eq!(descs.iter().next().unwrap(), &format!("hex(0):{sd}"), "{}", sec.display());
        hives += 1;
    }
    assert_eq!(hives, 7);
}

#[test]
#[cfg_attr(not(all(shared_data, tool_python3)), ignore = "needs ../shared/data and python3 (regipy)")]
fn now_is_the_shutdown_time_regipy_reads() {
    // accounts-clean's "now" is win10-19041's ShutdownTime (newer than every
    // SAM time): decoded by regipy + Python here, compared with our setting row.
    let Some(data) = shared_data() else { return };
    let Some((img, _)) = scenario("accounts-clean") else { return };
    let system = data.join("hives/win10-19041/SYSTEM");
    let script = r#"
import sys, json, struct, datetime
from regipy.registry import RegistryHive
h = RegistryHive(sys.argv[1])
for v in h.get_key(r'\ControlSet001\Control\Windows').iter_values(as_json=False, trim_values=False):
    if v.name == 'ShutdownTime':
        raw = v.value if isinstance(v.value, bytes) else bytes.fromhex(v.value)
        ft = struct.unpack('<Q', raw)[0]
        t = datetime.datetime(1601, 1, 1) + datetime.timedelta(microseconds=ft // 10)
        print(json.dumps(t.strftime('%Y-%m-%dT%H:%M:%SZ')))
"#;
    if !venv() {
        return;
    }
    let Some(theirs) = regipy_script(script, &[system.to_str().unwrap()]) else { return };
    let (_, doc) = inspect(&img, &[]);
    let now = doc["settings"].as_array().unwrap().iter().find(|r| r["name"] == "now (newest timestamp in the hives)").unwrap();
    assert_eq!(now["effective"], theirs, "{now}");
    assert!(now["local"].as_str().unwrap().ends_with(r"Control\Windows\ShutdownTime"), "{now}");
}

/// Hostile SAM / SECURITY records (planted into copies of the real hives
/// with the project's editor, then random byte flips in every record the
/// checks read): `inspect` and the unlock-admin profile never panic; an
/// unreadable record is a one-line note naming it, not a finding.
#[test]
#[cfg_attr(not(shared_data), ignore = "needs ../shared/data")]
fn hostile_account_records_give_notes_not_panics() {
    use rdprescue::hive::edit::HiveEditor;
    use rdprescue::hive::source::HiveKind;
    use rdprescue::hive::tree::Hive;
    use rdprescue::hive::LoadedHive;
    use rdprescue::rdp::{self, HiveSet};
    let Some(data) = shared_data() else { return };
    let load = |p: PathBuf| rdprescue::machine::load_file(&p).unwrap();
    let system = load(data.join("hives/win10-19041/SYSTEM"));
    let sam = load(data.join("hives/sam-security/win10-regipy/SAM"));
    let sec = load(data.join("hives/sam-security/win10-regipy/SECURITY"));
    let planted = |h: &Hive, key: &str, name: &str, ty: u32, bytes: &[u8]| {
        let mut ed = HiveEditor::new(h.bytes().unwrap().to_vec(), h.report.max_sequence_seen).unwrap();
        ed.set_value(key, name, ty, bytes).unwrap();
        Hive::new(h.name.clone(), LoadedHive { bytes: ed.finish().unwrap(), report: h.report.clone() })
    };
    let copy = |h: &Hive| Hive::new(h.name.clone(), LoadedHive { bytes: h.bytes().unwrap().to_vec(), report: h.report.clone() });
    let raw = |h: &Hive, key: &str, name: &str| h.key(key).unwrap().values.iter().find(|v| v.name == name).unwrap().raw.clone();
    let run = |sam: Hive, sec: Hive| {
        let set = HiveSet { hives: vec![(HiveKind::System, copy(&system)), (HiveKind::Sam, sam), (HiveKind::Security, sec)] };
        let ins = rdp::inspect(&set);
        let ctx = rdp::Ctx::new(&set);
        let _ = rdp::accounts::unlock_admin(&ctx, None);
        let _ = rdp::accounts::unlock_admin(&ctx, Some("Preston"));
        ins
    };
    // A truncated user F: a note naming the record.
    let preston = r"SAM\Domains\Account\Users\000003E8";
    let ins = run(planted(&sam, preston, "F", 3, &[0; 0x20]), copy(&sec));
    let note = ins.notes.iter().find(|n| n.check == "no-enabled-admin").expect("a note");
    assert!(note.message.contains(r"Users\000003E8 F") && !note.message.contains('\n'), "{}", note.message);
    assert!(!ins.findings.iter().any(|f| IDS[..5].contains(&&*f.check)));
    // A 3-byte ActSysAc: a note from the rights rows.
    let ins = run(copy(&sam), planted(&sec, r"Policy\Accounts\S-1-5-32-544\ActSysAc", "", 0, &[7, 4, 0]));
    assert!(ins.notes.iter().any(|n| n.check == "user-rights-deny-rdp" && n.message.contains("S-1-5-32-544")), "{:?}", ins.notes);
    // Random flips in every record read.
    let mut rng = Rng(0x5eed_acc0);
    let records: [(bool, &str, &str); 5] = [
        (true, preston, "F"),
        (true, preston, "V"),
        (true, r"SAM\Domains\Account", "F"),
        (true, r"SAM\Domains\Builtin\Aliases\00000220", "C"),
        (false, r"Policy\Accounts\S-1-5-32-544\Privilgs", ""),
    ];
    let mut runs = 0;
    for (in_sam, key, name) in records {
        let base = if in_sam { &sam } else { &sec };
        let orig = raw(base, key, name);
        for _ in 0..40 {
            let mut b = orig.clone();
            for _ in 0..1 + rng.next() % 4 {
                let i = (rng.next() as usize) % b.len();
                b[i] = rng.next() as u8;
            }
            if rng.next() % 4 == 0 {
                b.truncate((rng.next() as usize) % (b.len() + 1));
            }
            let h = planted(base, key, name, if in_sam { 3 } else { 0 }, &b);
            let ins = if in_sam { run(h, copy(&sec)) } else { run(copy(&sam), h) };
            for n in ins.notes.iter().chain(&ins.findings) {
                assert!(!n.message.contains('\n'), "{}", n.message);
            }
            runs += 1;
        }
    }
    eprintln!("hostile account records: {runs} inspections, no panic");
}
