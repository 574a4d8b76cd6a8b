//! `reg query` / `reg export` against independent readers: libhivex (values of
//! the RDP keys of four real SYSTEM hives, tests/oracles/hivex_values.json) and
//! a .reg round trip through `hivexregedit --merge` (interop, when installed).

mod common;
use common::*;
use rdprescue::hive::source;
use serde_json::Value as J;
use std::path::Path;
use std::process::Command;

fn oracle() -> J {
    let p = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/oracles/hivex_values.json");
    serde_json::from_str(&std::fs::read_to_string(p).unwrap()).unwrap()
}

#[test]
#[cfg_attr(not(shared_data), ignore = "needs ../shared/data")]
fn rdp_keys_match_hivex() {
    let Some(data) = shared_data() else { return };
    let mut compared = 0;
    for (rel, exp) in oracle().as_object().unwrap() {
        let path = data.join("hives").join(rel);
        let hive = rdprescue::machine::load_file(&path).unwrap();
        let sets = source::control_sets(&hive);
        assert_eq!(sets.current_key, exp["control_set"].as_str().unwrap(), "{rel}");
        for (key, vals) in exp["keys"].as_object().unwrap() {
            let k = hive.key(&format!("{}\\{key}", sets.current_key)).unwrap();
            let vals = vals.as_object().unwrap();
            assert_eq!(k.values.len(), vals.len(), "{rel} {key}: value count");
            for v in &k.values {
                let e = &vals[&v.name];
                assert_eq!(v.kind as u64, e["type"].as_u64().unwrap(), "{rel} {key} {}: type", v.name);
                assert_eq!(sha256(&v.raw), e["sha256"].as_str().unwrap(), "{rel} {key} {}: data", v.name);
                compared += 1;
            }
        }
    }
    eprintln!("{compared} values identical to libhivex");
    assert!(compared > 300);
}

#[test]
#[cfg_attr(not(shared_data), ignore = "needs ../shared/data")]
fn reg_query_cli() {
    let Some(data) = shared_data() else { return };
    let hive = data.join("hives/win10-19041/SYSTEM");
    let h = hive.to_str().unwrap();
    let o = rdp_on(&hive, &["reg", "query", h, r"HKLM\SYSTEM\CurrentControlSet\Control\Terminal Server"]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let out = stdout(&o);
    assert!(out.contains("HKEY_LOCAL_MACHINE\\SYSTEM\\ControlSet001\\Control\\Terminal Server\r\n") || out.contains("HKEY_LOCAL_MACHINE\\SYSTEM\\ControlSet001\\Control\\Terminal Server\n"), "{out}");
    assert!(out.contains("    fDenyTSConnections    REG_DWORD    0x1\n") || out.contains("    fDenyTSConnections    REG_DWORD    0x1\r\n"), "{out}");
    assert!(out.contains("Terminal Server\\WinStations"), "{out}");
    // -v and JSON.
    let o = rdp_on(&hive, &["reg", "query", h, r"hklm\system\currentcontrolset\control\terminal server\winstations\rdp-tcp", "-v", "portnumber", "--json"]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let j: J = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(j["values"], serde_json::json!([{"name": "PortNumber", "type": "REG_DWORD", "data": 3389}]));
    assert_eq!(j["hive"]["report"]["state"], "clean");
    assert!(j["last_write"].as_str().unwrap().ends_with('Z'));
    // Missing value / key: reg.exe's one line, exit 1 (tests/reg_cli.rs has the rest).
    let o = rdp_on(&hive, &["reg", "query", h, r"HKLM\SYSTEM\CurrentControlSet\Control\Terminal Server", "-v", "nope"]);
    assert_eq!((o.status.code(), stderr(&o).starts_with("ERROR: The system was unable")), (Some(1), true), "missing value: {}", stderr(&o));
    let o = rdp_on(&hive, &["reg", "query", h, r"HKLM\SYSTEM\CurrentControlSet\Nope"]);
    assert_eq!((o.status.code(), stderr(&o).starts_with("ERROR: The system was unable")), (Some(1), true), "missing key: {}", stderr(&o));
    // The dirty hive is read with its logs (the JSON says so).
    let dirty = data.join("hives/win10-1709-dirty/SYSTEM");
    let o = rdp_on(&dirty, &["reg", "query", dirty.to_str().unwrap(), r"HKLM\SYSTEM\Select", "--json"]);
    let j: J = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(j["hive"]["report"]["state"], "recovered");
    assert_eq!(j["hive"]["report"]["recovered_sequence"], 2130);
    // BCD and SAM.
    let bcd = data.join("hives/bcd/BCD-win10-uefi");
    let o = rdp_on(&bcd, &["reg", "query", bcd.to_str().unwrap(), r"BCD\Objects"]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert!(stdout(&o).contains("HKEY_LOCAL_MACHINE\\BCD00000000\\Objects\\{"), "{}", stdout(&o));
    let sam = data.join("hives/sam/SAM-win10");
    let o = rdp_on(&sam, &["reg", "query", sam.to_str().unwrap(), r"HKLM\SAM\SAM\Domains\Account", "--json"]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
}

/// Hives inside images: SYSTEM/SOFTWARE from the Windows volume, BCD from the ESP
/// (Gen2) or System Reserved (Gen1).
#[test]
fn reg_query_in_images() {
    let demo = testdata().join("demo.vhdx");
    let d = demo.to_str().unwrap();
    let o = rdp_on(&demo, &["reg", "query", d, r"HKLM\SYSTEM\CurrentControlSet\Control\Terminal Server\WinStations\RDP-Tcp", "-v", "PortNumber"]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert!(stdout(&o).lines().any(|l| l.trim_end() == "    PortNumber    REG_DWORD    0xd3d"), "{}", stdout(&o));
    let o = rdp_on(&demo, &["reg", "query", d, r"HKLM\SOFTWARE\Microsoft\Windows NT\CurrentVersion", "-v", "CurrentBuild", "--json"]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let o = rdp_on(&demo, &["reg", "query", d, r"BCD\Objects"]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let tmp = tempfile::tempdir().unwrap();
    let g1 = gunzip(&testdata().join("images/gen1-mbr-dynamic.vhd.gz"), tmp.path());
    let o = rdp_on(&g1, &["reg", "query", g1.to_str().unwrap(), r"BCD\Objects", "--json"]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    // An image needs the hive named.
    let o = rdp_on(&demo, &["reg", "query", d, r"ControlSet001\Control"]);
    assert_clean_error(&o, "hive not named");
    // The SOFTWARE hive of the image is the generated one.
    let o = rdp_on(&demo, &["reg", "query", d, r"HKLM\SOFTWARE\Microsoft\Windows NT\CurrentVersion", "-v", "ProductName", "--json"]);
    let j: J = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(j["values"][0]["data"], "Windows Server 2022 Datacenter", "{j}");
}

/// Export RDP-Tcp as .reg, merge it into hivex's minimal hive with
/// hivexregedit, read it back with our reader: identical values.
#[test]
#[cfg_attr(not(all(shared_data, tool_hivexregedit)), ignore = "needs ../shared/data and hivexregedit (Linux)")]
fn reg_export_round_trip_through_hivexregedit() {
    let Some(data) = shared_data() else { return };
    require("hivexregedit");
    let tmp = tempfile::tempdir().unwrap();
    let src = data.join("hives/win10-19041/SYSTEM");
    let key = r"HKLM\SYSTEM\CurrentControlSet\Control\Terminal Server\WinStations";
    let reg = tmp.path().join("out.reg");
    let o = rdp_on(&src, &["reg", "export", src.to_str().unwrap(), key, "-o", reg.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let bytes = std::fs::read(&reg).unwrap();
    assert_eq!(&bytes[..2], &[0xFF, 0xFE], "UTF-16LE BOM");
    let target = tmp.path().join("merged");
    std::fs::copy(data.join("hives/hivex/minimal"), &target).unwrap();
    // hivexregedit reads UTF-8 (or with --encoding) text.
    let utf8 = tmp.path().join("out-utf8.reg");
    let o = rdp_on(&src, &["reg", "export", src.to_str().unwrap(), key, "-o", utf8.to_str().unwrap(), "--utf8"]);
    assert_eq!(o.status.code(), Some(0));
    // hivexregedit creates a key only under an existing parent: put the
    // (empty) ancestors in front of our export.
    let ours_text = std::fs::read_to_string(&utf8).unwrap();
    assert!(ours_text.starts_with("Windows Registry Editor Version 5.00\r\n"));
    let mut text = String::from("Windows Registry Editor Version 5.00\r\n");
    for anc in [r"ControlSet001", r"ControlSet001\Control", r"ControlSet001\Control\Terminal Server"] {
        text.push_str(&format!("\r\n[HKEY_LOCAL_MACHINE\\SYSTEM\\{anc}]\r\n"));
    }
    text.push_str(&ours_text["Windows Registry Editor Version 5.00\r\n".len()..]);
    std::fs::write(&utf8, text).unwrap();
    let m = Command::new("hivexregedit")
        .args(["--merge", "--prefix", r"HKEY_LOCAL_MACHINE\SYSTEM"])
        .arg(&target)
        .arg(&utf8)
        .out()
        .unwrap();
    assert!(m.status.success(), "hivexregedit: {}", String::from_utf8_lossy(&m.stderr));
    let ours = rdprescue::machine::load_file(&src).unwrap();
    let merged = rdprescue::machine::load_file(&target).unwrap();
    let a = ours.walk(r"ControlSet001\Control\Terminal Server\WinStations").unwrap();
    let b = merged.walk(r"ControlSet001\Control\Terminal Server\WinStations").unwrap();
    assert_eq!(a.len(), b.len(), "key count");
    let mut n = 0;
    for (ka, kb) in a.iter().zip(&b) {
        assert_eq!(ka.path.to_lowercase(), kb.path.to_lowercase());
        assert_eq!(ka.values.len(), kb.values.len(), "{}", ka.path);
        for va in &ka.values {
            let vb = kb.values.iter().find(|v| v.name == va.name).unwrap_or_else(|| panic!("{} {}", ka.path, va.name));
            assert_eq!((va.kind, &va.raw), (vb.kind, &vb.raw), "{} {}", ka.path, va.name);
            n += 1;
        }
    }
    eprintln!("{} keys, {n} values survived the .reg round trip", a.len());
}

/// nk cell offset of the key at `path` in a hive without index roots (raw
/// walk of lf/lh/li lists, case-insensitive ASCII names).
fn raw_key(b: &[u8], path: &str) -> u32 {
    let u32_at = |o: usize| u32::from_le_bytes(b[o..o + 4].try_into().unwrap());
    let u16_at = |o: usize| u16::from_le_bytes(b[o..o + 2].try_into().unwrap()) as usize;
    let mut k = u32_at(36);
    for comp in path.split('\\') {
        let list = 4096 + u32_at(4096 + k as usize + 4 + 28) as usize + 4;
        let step = if &b[list..list + 2] == b"li" { 4 } else { 8 };
        k = (0..u16_at(list + 2))
            .map(|i| u32_at(list + 4 + step * i))
            .find(|&c| {
                let nk = 4096 + c as usize + 4;
                let name = &b[nk + 76..nk + 76 + u16_at(nk + 72)];
                name.eq_ignore_ascii_case(comp.as_bytes())
            })
            .unwrap_or_else(|| panic!("no key {comp}"));
    }
    k
}

/// Issue 11 item 5: nt-hive asserts (panics) on a cell offset of 0xffffffff
/// in a list it follows; `reg query` showed "internal error". Each such
/// offset is now a one-line `hive at offset 0x...` error, exit 2.
#[test]
fn reg_query_refuses_none_offsets_without_panic() {
    let base = std::fs::read(testdata().join("hives/SOFTWARE")).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let u32_at = |b: &[u8], o: usize| u32::from_le_bytes(b[o..o + 4].try_into().unwrap());
    let cv = raw_key(&base, r"Microsoft\Windows NT\CurrentVersion");
    let cv_nk = 4096 + cv as usize + 4;
    let vlist = 4096 + u32_at(&base, cv_nk + 40) as usize + 4;
    // A value of CurrentVersion with its data in a cell.
    let vk_with_cell = (0..u32_at(&base, cv_nk + 36) as usize)
        .map(|i| 4096 + u32_at(&base, vlist + 4 * i) as usize + 4)
        .find(|&vk| u32_at(&base, vk + 4) & 0x8000_0000 == 0 && u32_at(&base, vk + 4) > 0)
        .unwrap();
    let root_list = 4096 + u32_at(&base, 4096 + u32_at(&base, 36) as usize + 4 + 28) as usize + 4;
    let cases = [
        // (what, field to set to 0xffffffff, key queried)
        ("lh entry of the root's subkey list", root_list + 4, r"HKLM\SOFTWARE\Microsoft"),
        ("lh entry of the root's subkey list (root queried)", root_list + 4, r"HKLM\SOFTWARE"),
        ("value list entry", vlist, r"HKLM\SOFTWARE\Microsoft\Windows NT\CurrentVersion"),
        ("value data offset", vk_with_cell + 8, r"HKLM\SOFTWARE\Microsoft\Windows NT\CurrentVersion"),
    ];
    for (i, (what, field, key)) in cases.into_iter().enumerate() {
        let mut b = base.clone();
        b[field..field + 4].copy_from_slice(&u32::MAX.to_le_bytes());
        let file = dir.path().join(format!("SOFTWARE-{i}"));
        std::fs::write(&file, &b).unwrap();
        let o = rdp_on(&file, &["reg", "query", file.to_str().unwrap(), key]);
        assert_clean_error(&o, what);
        let err = stderr(&o);
        assert!(err.contains(&format!("hive at offset {field:#x}: ")), "{what}: {err}");
        assert!(err.contains("0xffffffff"), "{what}: {err}");
    }
    // The untouched hive answers the same queries.
    let file = dir.path().join("SOFTWARE");
    std::fs::write(&file, &base).unwrap();
    let o = rdp_on(&file, &["reg", "query", file.to_str().unwrap(), r"HKLM\SOFTWARE\Microsoft\Windows NT\CurrentVersion"]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
}

/// Every key and value of the real BCD, SAM and SECURITY hives (the hive
/// kinds the SAM/LSA records and the BCD elements are read from) against
/// libhivex (tests/oracles/hivex_trees.json, made by hivex_trees.py): the same
/// key paths, last-write times, value names, types, sizes and data.
#[test]
#[cfg_attr(not(shared_data), ignore = "needs ../shared/data")]
fn bcd_sam_security_trees_match_hivex() {
    let data = shared_data().expect("../shared/data");
    let p = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/oracles/hivex_trees.json");
    let oracle: J = serde_json::from_str(&std::fs::read_to_string(p).unwrap()).unwrap();
    let (mut hives, mut keys, mut values) = (0, 0, 0);
    for (rel, exp) in oracle.as_object().unwrap() {
        let hive = rdprescue::machine::load_file(&data.join("hives").join(rel)).unwrap();
        let exp = exp.as_object().unwrap();
        let walked = hive.walk("").unwrap();
        let ours: std::collections::BTreeSet<&str> = walked.iter().map(|k| k.path.as_str()).collect();
        let theirs: std::collections::BTreeSet<&str> = exp.keys().map(String::as_str).collect();
        assert_eq!(ours, theirs, "{rel}: key paths");
        for k in &walked {
            let e = &exp[&k.path];
            assert_eq!(k.last_write.as_deref(), e["t"].as_str(), "{rel} {}: last write", k.path);
            let ev = e["values"].as_object().unwrap();
            assert_eq!(k.values.len(), ev.len(), "{rel} {}: value count", k.path);
            for v in &k.values {
                let e = ev.get(&v.name).unwrap_or_else(|| panic!("{rel} {}: value {:?} not in hivex", k.path, v.name));
                assert_eq!(v.kind as u64, e[0].as_u64().unwrap(), "{rel} {} {}: type", k.path, v.name);
                assert_eq!(v.raw.len() as u64, e[1].as_u64().unwrap(), "{rel} {} {}: size", k.path, v.name);
                assert_eq!(&sha256(&v.raw)[..16], e[2].as_str().unwrap(), "{rel} {} {}: data", k.path, v.name);
                values += 1;
            }
            keys += 1;
        }
        hives += 1;
    }
    eprintln!("{hives} hives, {keys} keys, {values} values identical to libhivex");
    assert_eq!(hives, 18);
    assert!(keys > 1500 && values > 1500, "{keys} keys, {values} values");
}

/// `Hive::key` resumes each lookup at the deepest key node an earlier lookup
/// reached and checked. In any order, with repeats, other spellings and
/// misses, every answer must equal a fresh hive's (one that never looked
/// anything up), and an error below a known node must come back every time.
#[test]
fn key_lookups_answer_as_a_fresh_hive_in_any_order() {
    let file = testdata().join("hives/SOFTWARE");
    let answer = |h: &rdprescue::hive::tree::Hive, p: &str| match h.key(p) {
        Ok(k) => serde_json::to_value(&k).unwrap(),
        Err(e) => J::String(format!("error: {e}")),
    };
    let fresh = || rdprescue::machine::load_file(&file).unwrap();
    let stored: Vec<String> = fresh().walk("").unwrap().into_iter().map(|k| k.path).collect();
    assert!(stored.len() > 30 && stored.iter().any(|p| p.contains('日')), "{stored:?}");
    let mut asked: Vec<String> = Vec::new();
    for p in &stored {
        asked.extend([p.clone(), p.to_uppercase(), p.to_lowercase(), format!(r"\{p}\\"), format!(r"{p}\NoSuchKey"), format!(r"{p}\NoSuchKey\Deeper")]);
    }
    let expected: Vec<J> = asked.iter().map(|p| answer(&fresh(), p)).collect();
    assert!(expected.iter().filter(|a| a.is_string()).count() >= 2 * stored.len(), "misses are asked too");
    // Three orders over one hive: forward, backward, and deepest first.
    let mut order: Vec<usize> = (0..asked.len()).collect();
    let warm = fresh();
    for round in 0..3 {
        match round {
            1 => order.reverse(),
            2 => order.sort_by_key(|&i| std::cmp::Reverse(asked[i].matches('\\').count())),
            _ => {}
        }
        for &i in &order {
            assert_eq!(answer(&warm, &asked[i]), expected[i], "round {round}: {:?}", asked[i]);
        }
    }

    // A node whose own subkey list is broken, below a node that is known:
    // the error every time, the sibling's answer unchanged.
    let base = std::fs::read(&file).unwrap();
    let u32_at = |b: &[u8], o: usize| u32::from_le_bytes(b[o..o + 4].try_into().unwrap());
    let nt = 4096 + raw_key(&base, r"Microsoft\Windows NT") as usize + 4;
    let entry = 4096 + u32_at(&base, nt + 28) as usize + 4 + 4;
    let mut b = base.clone();
    b[entry..entry + 4].copy_from_slice(&u32::MAX.to_le_bytes());
    let dir = tempfile::tempdir().unwrap();
    let broken = dir.path().join("SOFTWARE");
    std::fs::write(&broken, &b).unwrap();
    let fresh = || rdprescue::machine::load_file(&broken).unwrap();
    let h = fresh();
    let windows = answer(&h, r"Microsoft\Windows");
    assert!(windows.is_object(), "{windows}");
    for p in [r"Microsoft\Windows NT", r"Microsoft\Windows NT\CurrentVersion", r"Microsoft\Windows NT", r"Microsoft\Windows NT\CurrentVersion", r"Microsoft\Windows NT\NoSuchKey"] {
        let (a, e) = (answer(&h, p), answer(&fresh(), p));
        assert!(e.as_str().is_some_and(|e| e.contains(&format!("hive at offset {entry:#x}: ")) && e.contains("0xffffffff")), "{p}: {e}");
        assert_eq!(a, e, "{p}");
    }
    assert_eq!(answer(&h, r"Microsoft\Windows"), windows);
}
