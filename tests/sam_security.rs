//! `hive::sam` and `hive::lsa` on real SAM / SECURITY hives (Windows 10 and
//! domain controllers from Server 2008 to 2022, in ../shared/data), field by
//! field against an independent reader: regipy's `samparse` plugin for the
//! user F records, and for everything regipy has no plugin for (user V names,
//! the domain F policy, alias C members, Names RIDs, ActSysAc, Privilgs, Sid)
//! raw value bytes read through regipy and decoded by the Python below,
//! written from MS-SAMR / MS-LSAD / MS-DTYP, not from rdprescue.
//! Plus hostile values planted into copies of the real hives with the
//! project's hive editor: each must give a one-line Corrupt error naming the
//! record.

mod common;

use rdprescue::error::{Error, Layer};
use rdprescue::hive::edit::HiveEditor;
use rdprescue::hive::lsa::{well_known, LogonRight, Rights, Sid};
use rdprescue::hive::sam::Sam;
use rdprescue::hive::tree::Hive;
use rdprescue::hive::LoadedHive;
use serde_json::Value as J;
use std::path::{Path, PathBuf};

const ORACLE: &str = r#####"
import json, struct, sys
from regipy.registry import RegistryHive
from regipy.plugins.sam.samparse import SAMParsePlugin

def sid_str(b):
    # MS-DTYP 2.4.2.2, decoded here independently of rdprescue
    rev, n = b[0], b[1]
    auth = int.from_bytes(b[2:8], 'big')
    subs = struct.unpack('<%dI' % n, b[8:8 + 4 * n])
    assert len(b) >= 8 + 4 * n
    return 'S-%d-%d' % (rev, auth) + ''.join('-%d' % s for s in subs), 8 + 4 * n

def default_value(h, path):
    return raw(h, path, '(default)')

def raw(h, path, name):
    k = h.get_key(path)
    for v in k.iter_values(as_json=False, trim_values=False):
        if v.name.lower() == (name.lower() or '(default)'):
            assert isinstance(v.value, bytes), (path, name, v.value_type)
            return v.value
    return None

def interval(b, off):
    (x,) = struct.unpack_from('<q', b, off)
    return 'never' if x == -(1 << 63) else abs(x) // 10**7

out = {}
sam_path, sec_path = sys.argv[1], sys.argv[2]
if sam_path != '-':
    h = RegistryHive(sam_path)
    p = SAMParsePlugin(h, as_json=True)
    p.run()
    out['users'] = p.entries
    f = raw(h, r'\SAM\Domains\Account', 'F')
    out['policy'] = {
        'max_password_age': interval(f, 0x18), 'min_password_age': interval(f, 0x20),
        'lockout_duration': interval(f, 0x30), 'lockout_observation_window': interval(f, 0x38),
        'min_password_length': struct.unpack_from('<H', f, 0x50)[0],
        'password_history_length': struct.unpack_from('<H', f, 0x52)[0],
        'lockout_threshold': struct.unpack_from('<H', f, 0x54)[0],
    }
    names = {}
    for sk in h.get_key(r'\SAM\Domains\Account\Users\Names').iter_subkeys():
        for v in sk.iter_values(as_json=False):
            if v.name in ('', '(default)'):
                names[sk.name] = int(str(v.value_type))
    out['names'] = names
    # V values decoded here: 17 (offset, length, qualifier) triples, data after them.
    texts = {}
    for sk in h.get_key(r'\SAM\Domains\Account\Users').iter_subkeys():
        if sk.name == 'Names':
            continue
        v = raw(h, '\\SAM\\Domains\\Account\\Users\\' + sk.name, 'V')
        def attr(i):
            off, ln, _ = struct.unpack_from('<III', v, 12 * i)
            return v[0xCC + off: 0xCC + off + ln].decode('utf-16-le')
        texts[str(int(sk.name, 16))] = {'name': attr(1), 'full_name': attr(2), 'comment': attr(3), 'user_comment': attr(4)}
    out['v'] = texts
    dv = raw(h, r'\SAM\Domains\Account', 'V')
    off, ln, _ = struct.unpack_from('<III', dv, 12)
    out['domain_sid'] = sid_str(dv[0x30 + off: 0x30 + off + ln])[0]
    aliases = {}
    for rid in ('00000220', '0000022B'):
        try:
            c = raw(h, '\\SAM\\Domains\\Builtin\\Aliases\\' + rid, 'C')
        except Exception:
            continue
        off, ln, cnt = struct.unpack_from('<III', c, 4 + 3 * 12)
        data = c[0x34 + off: 0x34 + off + ln]
        sids, pos = [], 0
        for _ in range(cnt):
            s, n = sid_str(data[pos:]); sids.append(s); pos += n
        aliases[rid] = sids
    out['aliases'] = aliases
if sec_path != '-':
    h = RegistryHive(sec_path)
    acc = {}
    for sk in h.get_key(r'\Policy\Accounts').iter_subkeys():
        base = '\\Policy\\Accounts\\' + sk.name
        subs = [s.name for s in sk.iter_subkeys()]
        e = {}
        if 'Sid' in subs:
            e['sid'] = sid_str(default_value(h, base + '\\Sid'))[0]
        if 'ActSysAc' in subs:
            e['actsysac'] = struct.unpack('<I', default_value(h, base + '\\ActSysAc'))[0]
        if 'Privilgs' in subs:
            b = default_value(h, base + '\\Privilgs')
            (n,) = struct.unpack_from('<I', b, 0)
            e['luids'] = [struct.unpack_from('<Q', b, 8 + 12 * i)[0] for i in range(n)]
        acc[sk.name] = e
    out['accounts'] = acc
print(json.dumps(out, default=str))
"#####;

/// (label, SAM, SECURITY).
type HiveSet = (String, Option<PathBuf>, Option<PathBuf>);

/// Every real hive set; None (with a notice) when ../shared/data is absent.
fn hive_sets() -> Option<Vec<HiveSet>> {
    let data = common::shared_data()?.join("hives");
    let mut sets = Vec::new();
    for f in ["SAM-win10", "SAM-server2019"] {
        sets.push((format!("sam/{f}"), Some(data.join("sam").join(f)), None));
    }
    let mut dirs: Vec<_> = std::fs::read_dir(data.join("sam-security")).unwrap().flatten().map(|e| e.path()).collect();
    dirs.sort();
    for d in dirs {
        let label = format!("sam-security/{}", d.file_name().unwrap().to_string_lossy());
        let get = |n: &str| Some(d.join(n)).filter(|p| p.exists());
        sets.push((label, get("SAM"), get("SECURITY")));
    }
    assert!(sets.len() >= 8, "expected the 8 hive sets of ../shared/data/README.md, found {}", sets.len());
    Some(sets)
}

fn load(p: &Path) -> Hive {
    rdprescue::machine::load_file(p).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
}

/// regipy's time string ("2010-11-20T21:48:12.569244+00:00" or null) as ours
/// ("2010-11-20T21:48:12Z" or "never").
fn regipy_time(v: &J) -> String {
    match v.as_str() {
        None => "never".into(),
        Some(s) => format!("{}Z", &s[..19]),
    }
}

fn opt_text(s: &Option<String>) -> String {
    s.clone().unwrap_or_default()
}

#[test]
#[cfg_attr(not(all(shared_data, tool_python3)), ignore = "needs ../shared/data and python3 (regipy)")]
fn sam_agrees_with_regipy() {
    let Some(sets) = hive_sets() else { return };
    let mut fields = 0usize;
    let mut summary = Vec::new();
    for (label, sam_path, _) in &sets {
        let Some(sam_path) = sam_path else { continue };
        let ours = Sam::read(&load(sam_path)).unwrap_or_else(|e| panic!("{label}: {e}"));
        let Some(theirs) = common::regipy_script(ORACLE, &[sam_path.to_str().unwrap(), "-"]) else { return };

        // Accounts: the same RIDs, names from V and from Names\<name>'s type.
        let users = theirs["users"].as_array().unwrap();
        assert_eq!(ours.accounts.len(), users.len(), "{label}: account count");
        let names = theirs["names"].as_object().unwrap();
        assert_eq!(names.len(), ours.accounts.len(), "{label}: Names entries");
        for u in users {
            let rid = u["rid"].as_u64().unwrap() as u32;
            let a = ours.account(rid).unwrap_or_else(|| panic!("{label}: RID {rid} missing"));
            let v = &theirs["v"][rid.to_string()];
            assert_eq!(a.name, v["name"].as_str().unwrap(), "{label} {rid}: name (V)");
            assert_eq!(names.get(&a.name).and_then(J::as_u64), Some(u64::from(rid)), "{label} {rid}: Names\\{} type", a.name);
            assert_eq!(opt_text(&a.full_name), v["full_name"].as_str().unwrap(), "{label} {rid}: full name");
            assert_eq!(opt_text(&a.comment), v["comment"].as_str().unwrap(), "{label} {rid}: comment");
            assert_eq!(opt_text(&a.user_comment), v["user_comment"].as_str().unwrap(), "{label} {rid}: user comment");
            // F: regipy reads the low 16 bits of UserAccountControl.
            let flags = u["account_flags"].as_u64().unwrap() as u32;
            assert_eq!(a.account_control & 0xFFFF, flags, "{label} {rid}: ACB bits");
            assert_eq!(a.disabled, flags & 0x1 != 0, "{label} {rid}: disabled");
            assert_eq!(a.locked_out, flags & 0x400 != 0, "{label} {rid}: locked out");
            assert_eq!(a.password_never_expires, flags & 0x200 != 0, "{label} {rid}: never expires");
            let parsed: Vec<&str> = u["account_flags_parsed"].as_array().unwrap().iter().map(|x| x.as_str().unwrap()).collect();
            assert_eq!(a.disabled, parsed.contains(&"Account Disabled"), "{label} {rid}: regipy's flag names");
            assert_eq!(u64::from(a.bad_password_count), u["failed_login_count"].as_u64().unwrap(), "{label} {rid}: bad password count");
            assert_eq!(u64::from(a.logon_count), u["login_count"].as_u64().unwrap(), "{label} {rid}: logon count");
            assert_eq!(a.last_logon.iso(), regipy_time(&u["last_login"]), "{label} {rid}: last logon");
            assert_eq!(a.password_last_set.iso(), regipy_time(&u["password_last_set"]), "{label} {rid}: password last set");
            assert_eq!(a.account_expires.iso(), regipy_time(&u["account_expires"]), "{label} {rid}: account expires");
            assert_eq!(a.last_failed_logon.iso(), regipy_time(&u["last_failed_login"]), "{label} {rid}: last failed logon");
            assert_eq!(a.must_change_password, a.password_last_set.0 == 0 || a.password_expired, "{label} {rid}: must change");
            fields += 17;
        }

        // Domain policy (F) and domain SID (V).
        let p = &theirs["policy"];
        let secs = |i: rdprescue::hive::sam::Interval| i.seconds().map_or(J::from("never"), J::from);
        assert_eq!(secs(ours.policy.max_password_age), p["max_password_age"], "{label}: max password age");
        assert_eq!(secs(ours.policy.min_password_age), p["min_password_age"], "{label}: min password age");
        assert_eq!(secs(ours.policy.lockout_duration), p["lockout_duration"], "{label}: lockout duration");
        assert_eq!(secs(ours.policy.lockout_observation_window), p["lockout_observation_window"], "{label}: lockout window");
        assert_eq!(J::from(ours.policy.min_password_length), p["min_password_length"], "{label}: min length");
        assert_eq!(J::from(ours.policy.password_history_length), p["password_history_length"], "{label}: history");
        assert_eq!(J::from(ours.policy.lockout_threshold), p["lockout_threshold"], "{label}: lockout threshold");
        assert_eq!(ours.domain_sid.as_ref().map(Sid::to_string).as_deref(), theirs["domain_sid"].as_str(), "{label}: domain SID");
        fields += 8;

        // Alias members.
        let sids = |m: &[rdprescue::hive::sam::Member]| m.iter().map(|m| J::from(m.sid.to_string())).collect::<Vec<_>>();
        assert_eq!(J::from(sids(&ours.administrators)), theirs["aliases"]["00000220"], "{label}: Administrators");
        assert_eq!(J::from(sids(&ours.remote_desktop_users)), theirs["aliases"]["0000022B"], "{label}: Remote Desktop Users");
        fields += ours.administrators.len() + ours.remote_desktop_users.len();
        // Local members resolve to the account's name; the built-in
        // Administrator is always one.
        let admin = ours.administrators.iter().find(|m| m.sid.rid() == Some(500) && m.sid.domain() == ours.domain_sid).expect("built-in Administrator in Administrators");
        assert_eq!(admin.name.as_deref(), Some("Administrator"), "{label}");
        assert!(ours.local_administrators().iter().any(|a| a.rid == 500), "{label}");
        assert!(!ours.is_domain_controller, "{label}: SAM alone cannot tell a DC");
        assert!(ours.notes.is_empty(), "{label}: {:?}", ours.notes);
        summary.push(format!("{label}: {} accounts, {} admins, {} RDP users", ours.accounts.len(), ours.administrators.len(), ours.remote_desktop_users.len()));
    }
    eprintln!("SAM vs regipy: {fields} fields compared\n  {}", summary.join("\n  "));
    assert!(fields >= 300, "only {fields} fields compared");
}

/// The ten logon-right bits, from ntlsa.h's SECURITY_ACCESS_* (written out
/// here, not taken from rdprescue).
const BITS: [(u64, &str); 10] = [
    (0x1, "SeInteractiveLogonRight"),
    (0x2, "SeNetworkLogonRight"),
    (0x4, "SeBatchLogonRight"),
    (0x10, "SeServiceLogonRight"),
    (0x40, "SeDenyInteractiveLogonRight"),
    (0x80, "SeDenyNetworkLogonRight"),
    (0x100, "SeDenyBatchLogonRight"),
    (0x200, "SeDenyServiceLogonRight"),
    (0x400, "SeRemoteInteractiveLogonRight"),
    (0x800, "SeDenyRemoteInteractiveLogonRight"),
];

#[test]
#[cfg_attr(not(all(shared_data, tool_python3)), ignore = "needs ../shared/data and python3 (regipy)")]
fn security_agrees_with_regipy() {
    let Some(sets) = hive_sets() else { return };
    let mut fields = 0usize;
    let mut summary = Vec::new();
    for (label, _, sec_path) in &sets {
        let Some(sec_path) = sec_path else { continue };
        let ours = Rights::read(&load(sec_path)).unwrap_or_else(|e| panic!("{label}: {e}"));
        let Some(theirs) = common::regipy_script(ORACLE, &["-", sec_path.to_str().unwrap()]) else { return };
        let accounts = theirs["accounts"].as_object().unwrap();
        assert_eq!(ours.accounts.len(), accounts.len(), "{label}: account objects");
        for (key, e) in accounts {
            let sid = Sid::from_string(e["sid"].as_str().unwrap()).unwrap();
            assert_eq!(&sid.to_string(), key, "{label}: Sid value vs key name");
            let a = ours.get(&sid).unwrap_or_else(|| panic!("{label}: {sid} missing"));
            assert_eq!(a.system_access.map(u64::from), e["actsysac"].as_u64(), "{label} {sid}: ActSysAc");
            let want: Vec<&str> = BITS.iter().filter(|(b, _)| e["actsysac"].as_u64().unwrap_or(0) & b != 0).map(|(_, n)| *n).collect();
            let got: Vec<&str> = a.logon_rights.iter().map(|r| r.name()).collect();
            assert_eq!(got, want, "{label} {sid}: logon rights");
            let luids: Vec<u64> = e["luids"].as_array().map(|l| l.iter().map(|x| x.as_u64().unwrap()).collect()).unwrap_or_default();
            assert_eq!(a.privilege_luids, luids, "{label} {sid}: Privilgs");
            fields += 4 + luids.len();
        }
        // The defaults every Windows since 2008 has: Administrators may log on
        // over RDP and over the network.
        let rdp = ours.who_has(LogonRight::RemoteInteractive);
        assert!(rdp.contains(&&well_known::administrators()), "{label}: {rdp:?}");
        assert!(ours.who_has(LogonRight::Network).contains(&&well_known::administrators()), "{label}");
        assert!(ours.who_has(LogonRight::DenyRemoteInteractive).is_empty(), "{label}");
        let admins = ours.get(&well_known::administrators()).unwrap();
        assert_eq!(admins.display_name, "Administrators");
        assert!(admins.privileges.iter().any(|p| p == "SeDebugPrivilege"), "{label}: {:?}", admins.privileges);
        summary.push(format!("{label}: {} SIDs, RDP logon: {}", ours.accounts.len(), rdp.iter().map(|s| s.display_name()).collect::<Vec<_>>().join(", ")));
    }
    eprintln!("SECURITY vs regipy: {fields} fields compared\n  {}", summary.join("\n  "));
    assert!(fields >= 300, "only {fields} fields compared");
}

#[test]
#[cfg_attr(not(shared_data), ignore = "needs ../shared/data")]
fn domain_controllers_are_flagged() {
    let Some(sets) = hive_sets() else { return };
    let mut dcs = 0;
    for (label, sam_path, sec_path) in &sets {
        let (Some(sam_path), Some(sec_path)) = (sam_path, sec_path) else { continue };
        let mut sam = Sam::read(&load(sam_path)).unwrap();
        let rights = Rights::read(&load(sec_path)).unwrap();
        sam.apply_security(&rights);
        let dc = label.contains("win20");
        assert_eq!(sam.is_domain_controller, dc, "{label}: {:?}", sam.domain_controller_evidence);
        if dc {
            dcs += 1;
            assert!(sam.domain_controller_evidence.as_deref().unwrap().contains("Account Operators"), "{label}");
            // The DSRM Administrator is what the SAM holds; it is enabled.
            let admin = sam.account(500).unwrap();
            assert!(!admin.disabled, "{label}: DSRM Administrator disabled");
        }
    }
    assert_eq!(dcs, 6, "six DC hive pairs expected");
    // The workstation's details, pinned (regipy's own test data: Preston is
    // the user account, Administrator and Guest are disabled; Preston is an
    // administrator; the SECURITY file comes from another machine, whose
    // Remote Desktop Users hold the RDP right).
    let w = sets.iter().find(|s| s.0 == "sam-security/win10-regipy").unwrap();
    let sam = Sam::read(&load(w.1.as_ref().unwrap())).unwrap();
    let names: Vec<_> = sam.accounts.iter().map(|a| (a.name.as_str(), a.rid, a.disabled)).collect();
    assert_eq!(names, [("Administrator", 500, true), ("Guest", 501, true), ("Preston", 1000, false)]);
    assert_eq!(sam.local_administrators().iter().map(|a| a.name.as_str()).collect::<Vec<_>>(), ["Administrator", "Preston"]);
    let rights = Rights::read(&load(w.2.as_ref().unwrap())).unwrap();
    assert!(rights.who_has(LogonRight::RemoteInteractive).contains(&&well_known::remote_desktop_users()));
    let guest = rights.accounts.iter().find(|a| a.sid.rid() == Some(501)).unwrap();
    assert_eq!(guest.display_name, "Guest (built-in)");
    assert_eq!(guest.logon_rights, [LogonRight::Interactive, LogonRight::DenyInteractive, LogonRight::DenyNetwork]);
}

#[test]
#[cfg_attr(not(all(shared_data, tool_python3)), ignore = "needs ../shared/data and python3 (regipy)")]
fn product_type_marks_a_domain_controller() {
    let Some(data) = common::shared_data() else { return };
    let sam_path = data.join("hives/sam-security/win10-regipy/SAM");
    // SYSTEM hives (not the SAM's own machine: only ProductType is read).
    for (system, product, dc) in [("server2008-dc", "LanmanNT", true), ("win10-19041", "WinNT", false), ("win7-sp1", "WinNT", false)] {
        let mut sam = Sam::read(&load(&sam_path)).unwrap();
        let got = sam.apply_system(&load(&data.join("hives").join(system).join("SYSTEM")));
        assert_eq!(got.as_deref(), Some(product), "{system}");
        assert_eq!(sam.is_domain_controller, dc, "{system}");
        if dc {
            assert!(sam.domain_controller_evidence.as_deref().unwrap().contains("LanmanNT"));
        }
    }
    // Independent reader: regipy reads the same ProductType on the DC's SYSTEM.
    let dc_system = data.join("hives/server2008-dc/SYSTEM");
    let q = vec![(dc_system.to_str().unwrap().to_string(), r"ControlSet001\Control\ProductOptions".to_string(), "ProductType".to_string())];
    if let Some(v) = common::regipy_values(&q) {
        assert_eq!(v[0][1], "LanmanNT", "regipy: {v:?}");
    }
}

/// A copy of `hive` with value `name` of `key` set to `data` (type `ty`).
fn planted(hive: &Hive, key: &str, name: &str, ty: u32, data: &[u8]) -> Hive {
    let mut ed = HiveEditor::new(hive.bytes().unwrap().to_vec(), hive.report.max_sequence_seen).unwrap();
    ed.set_value(key, name, ty, data).unwrap();
    Hive::new(hive.name.clone(), LoadedHive { bytes: ed.finish().unwrap(), report: hive.report.clone() })
}

fn assert_corrupt<T: std::fmt::Debug>(r: rdprescue::error::Result<T>, record: &str, case: &str) {
    match r {
        Err(e @ Error::Corrupt { layer: Layer::Hive, .. }) => {
            let line = e.to_string();
            assert!(line.contains(record), "{case}: error does not name {record}: {line}");
            assert_eq!(line.lines().count(), 1, "{case}: {line}");
        }
        other => panic!("{case}: expected a hive Corrupt error, got {other:?}"),
    }
}

#[test]
#[cfg_attr(not(shared_data), ignore = "needs ../shared/data")]
fn hostile_values_in_real_hives() {
    let Some(data) = common::shared_data() else { return };
    let dir = data.join("hives/sam-security/win10-regipy");
    let sam = load(&dir.join("SAM"));
    let sec = load(&dir.join("SECURITY"));
    let user = r"SAM\Domains\Account\Users\000003E8";
    let f = sam.key(user).unwrap().values.iter().find(|v| v.name == "F").unwrap().raw.clone();
    let v = sam.key(user).unwrap().values.iter().find(|v| v.name == "V").unwrap().raw.clone();
    let c = sam.key(r"SAM\Domains\Builtin\Aliases\00000220").unwrap().values.iter().find(|v| v.name == "C").unwrap().raw.clone();
    let with = |b: &[u8], off: usize, val: u32| {
        let mut b = b.to_vec();
        b[off..off + 4].copy_from_slice(&val.to_le_bytes());
        b
    };
    let mut cases: Vec<(&str, &str, Vec<u8>, String)> = vec![
        ("truncated F", "F", f[..0x30].to_vec(), format!("{user} F")),
        ("empty F", "F", vec![], format!("{user} F")),
        ("F of another RID", "F", with(&f, 0x30, 0x3E9), format!("{user} F")),
        ("truncated V table", "V", v[..100].to_vec(), format!("{user} V")),
        ("V name offset past the end", "V", with(&v, 12, 0x7FFF_0000), format!("{user} V")),
        ("V name length huge", "V", with(&v, 16, u32::MAX), format!("{user} V")),
        ("V name odd length", "V", with(&v, 16, 7), format!("{user} V")),
    ];
    for (case, name, bytes, record) in cases.drain(..) {
        let h = planted(&sam, user, name, 3, &bytes);
        assert_corrupt(Sam::read(&h), &record, case);
    }
    let alias = r"SAM\Domains\Builtin\Aliases\00000220";
    let count_at = 4 + 3 * 12 + 8;
    for (case, bytes) in [
        ("C member count huge", with(&c, count_at, u32::MAX)),
        ("C member count too high", with(&c, count_at, 3)),
        ("C member list past the end", with(&c, count_at - 8, 0x10_0000)),
        ("C truncated", c[..20].to_vec()),
    ] {
        assert_corrupt(Sam::read(&planted(&sam, alias, "C", 3, &bytes)), &format!("{alias} C"), case);
    }
    assert_corrupt(Sam::read(&planted(&sam, r"SAM\Domains\Account", "F", 3, &[0; 0x20])), r"SAM\Domains\Account F", "short domain F");

    let acct = r"Policy\Accounts\S-1-5-32-544";
    for (case, sub, bytes) in [
        ("ActSysAc of 3 bytes", "ActSysAc", vec![7u8, 4, 0]),
        ("Privilgs count huge", "Privilgs", vec![0xFF, 0xFF, 0xFF, 0xFF, 0, 0, 0, 0]),
        ("Privilgs truncated header", "Privilgs", vec![1, 0]),
        ("Sid truncated", "Sid", vec![1, 2, 0, 0, 0, 0, 0, 5, 0x20, 0, 0, 0]),
        ("Sid with 200 sub-authorities", "Sid", vec![1, 200, 0, 0, 0, 0, 0, 5]),
    ] {
        let h = planted(&sec, &format!(r"{acct}\{sub}"), "", 0, &bytes);
        assert_corrupt(Rights::read(&h), acct, case);
    }
}
