//! The hive editor (`rdprescue::hive::edit`) on real Windows-made SYSTEM hives
//! from ../shared/data (skipped with a notice when absent): a set of edits of
//! every kind, then the finished bytes are reloaded and their FULL tree (every
//! key path, every value name, type and bytes, walked with nt-hive, which looks
//! every key up by binary search) must equal the original tree plus exactly the
//! intended changes. Independent readers then open the result: libhivex
//! (`hivexget`, `hivexregedit --export`, case-insensitive lookups) and, when it
//! can be installed into a venv under the target directory, regipy.

mod common;
use common::*;
use rdprescue::hive::{self, edit::HiveEditor, tree, HiveState};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;

type Snap = BTreeMap<String, BTreeMap<String, (u32, Vec<u8>)>>;

fn read_opt(p: &Path) -> Option<Vec<u8>> {
    p.exists().then(|| std::fs::read(p).unwrap())
}

fn sz(s: &str) -> Vec<u8> {
    s.encode_utf16().chain([0]).flat_map(|u| u.to_le_bytes()).collect()
}

/// Every key (path as stored) with its values, as nt-hive reads them.
fn snap(h: &tree::Hive) -> Snap {
    h.walk("")
        .unwrap()
        .into_iter()
        .map(|k| (k.path, k.values.into_iter().map(|v| (v.name, (v.kind, v.raw))).collect()))
        .collect()
}

fn open(bytes: Vec<u8>) -> tree::Hive {
    tree::Hive::new("SYSTEM", hive::load(bytes, None, None).unwrap())
}

/// The stored spelling of `path` (case-insensitive), if the key exists.
fn real_path(s: &Snap, path: &str) -> Option<String> {
    let up = path.to_uppercase();
    s.keys().find(|k| k.to_uppercase() == up).cloned()
}

fn children<'a>(s: &'a Snap, path: &str) -> Vec<&'a str> {
    let prefix = format!("{path}\\");
    s.keys().filter_map(|k| k.strip_prefix(&prefix)).filter(|r| !r.contains('\\')).collect()
}

/// Signature of the subkey list of the key at `path`, read from the raw cells
/// (linear scans, independent of the editor), to find index roots.
fn list_sig(b: &[u8], path: &str) -> Option<[u8; 2]> {
    let u32_at = |o: usize| b.get(o..o + 4).map(|s| u32::from_le_bytes(s.try_into().unwrap()));
    let cell = |off: u32| 4096 + off as usize + 4;
    let name = |nk: usize| -> Option<String> {
        let len = u16::from_le_bytes(b.get(nk + 72..nk + 74)?.try_into().ok()?) as usize;
        let raw = b.get(nk + 76..nk + 76 + len)?;
        Some(if b[nk + 2] & 0x20 != 0 {
            raw.iter().map(|&c| c as char).collect()
        } else {
            String::from_utf16_lossy(&raw.chunks_exact(2).map(|c| u16::from_le_bytes([c[0], c[1]])).collect::<Vec<_>>())
        })
    };
    let subkeys = |nk: usize| -> Vec<usize> {
        let mut out = vec![];
        let Some(list) = u32_at(nk + 28) else { return out };
        let l = cell(list);
        let mut leaves = vec![l];
        if b.get(l..l + 2) == Some(b"ri") {
            let n = u16::from_le_bytes([b[l + 2], b[l + 3]]) as usize;
            leaves = (0..n).filter_map(|i| u32_at(l + 4 + 4 * i)).map(cell).collect();
        }
        for l in leaves {
            let n = u16::from_le_bytes([b[l + 2], b[l + 3]]) as usize;
            let step = if &b[l..l + 2] == b"li" { 4 } else { 8 };
            out.extend((0..n).filter_map(|i| u32_at(l + 4 + step * i)).map(cell));
        }
        out
    };
    let mut nk = cell(u32_at(36)?);
    for c in path.split('\\') {
        nk = subkeys(nk).into_iter().find(|&k| name(k).is_some_and(|n| n.eq_ignore_ascii_case(c)))?;
    }
    let l = cell(u32_at(nk + 28)?);
    b.get(l..l + 2).map(|s| [s[0], s[1]])
}

/// A name that sorts right after `after` (and so, usually, before its successor).
fn just_after(after: &str) -> String {
    format!("{after}0RdpRescue")
}

/// Edits made to one hive and the hivex/regipy checks they call for.
struct Probe {
    key: String,
    value: String,
    expect: (u32, Vec<u8>),
}

/// Edit one hive, check its tree; returns the written file, the values to probe
/// with other readers, and whether an index root was edited.
fn edit_hive(data: &Path, rel: &str) -> (PathBuf, Vec<Probe>, bool) {
    let p = data.join("hives").join(rel);
    let loaded = hive::load(
        std::fs::read(&p).unwrap(),
        read_opt(&p.with_extension("LOG1")),
        read_opt(&p.with_extension("LOG2")),
    )
    .unwrap();
    let max_seq = loaded.report.max_sequence_seen;
    let orig = open(loaded.bytes.clone());
    let before = snap(&orig);
    let mut want = before.clone();
    let mut ed = HiveEditor::new(loaded.bytes, max_seq).unwrap();
    let mut probes = vec![];

    let cur = orig.key("Select").unwrap().values.iter().find(|v| v.name == "Current").and_then(|v| v.dword()).unwrap();
    let cs = real_path(&before, &format!("ControlSet{cur:03}")).unwrap();
    let ts = real_path(&before, &format!(r"{cs}\Control\Terminal Server")).unwrap();

    // 1. An existing DWORD, changed in place (path and name in another case).
    let deny = before[&ts]["fDenyTSConnections"].clone();
    let flipped = (1 - u32::from_le_bytes(deny.1[..4].try_into().unwrap())).to_le_bytes().to_vec();
    let old = ed.set_value(&ts.to_lowercase(), "FDENYTSCONNECTIONS", 4, &flipped).unwrap();
    assert_eq!(old, Some(deny), "{rel}: old fDenyTSConnections");
    want.get_mut(&ts).unwrap().insert("fDenyTSConnections".into(), (4, flipped.clone()));
    probes.push(Probe { key: ts.clone(), value: "fDenyTSConnections".into(), expect: (4, flipped) });

    // 2. An existing string made much longer (a new data cell).
    let cn = real_path(&before, &format!(r"{cs}\Control\ComputerName\ComputerName")).unwrap();
    let long = sz(&format!("RDPRESCUE-{}", "X".repeat(150)));
    let old = ed.set_value(&cn, "ComputerName", 1, &long).unwrap();
    assert_eq!(old.as_ref(), before[&cn].get("ComputerName"), "{rel}: old ComputerName");
    want.get_mut(&cn).unwrap().insert("ComputerName".into(), (1, long.clone()));
    probes.push(Probe { key: cn, value: "ComputerName".into(), expect: (1, long) });

    // 3. New values of several types on an existing key.
    let added = [
        ("RdpRescueAdded", 1u32, sz("added by tests/hive_edit.rs")),
        ("RdpRescueQword", 11, 0x0123_4567_89AB_CDEFu64.to_le_bytes().to_vec()),
        ("RdpRescueMulti", 7, sz("one\0two\0")),
        ("RdpRescueBinary", 3, (0..5000u32).map(|i| (i * 31) as u8).collect()),
    ];
    for (n, t, d) in &added {
        assert_eq!(ed.set_value(&ts, n, *t, d).unwrap(), None);
        want.get_mut(&ts).unwrap().insert(n.to_string(), (*t, d.clone()));
    }
    probes.push(Probe { key: ts.clone(), value: "RdpRescueAdded".into(), expect: (added[0].1, added[0].2.clone()) });

    // 4. A key path three levels deep, sorting into the middle of Services.
    let services = real_path(&before, &format!(r"{cs}\Services")).unwrap();
    let names = children(&before, &services);
    let mid = just_after(names[names.len() / 2]);
    let deep = format!(r"{services}\{mid}\Parameters\Tëst-日本");
    ed.set_value(&deep, "Deep", 4, &42u32.to_le_bytes()).unwrap();
    ed.set_value(&deep, "", 1, &sz("default")).unwrap();
    want.entry(format!(r"{services}\{mid}")).or_default();
    want.entry(format!(r"{services}\{mid}\Parameters")).or_default();
    let w = want.entry(deep.clone()).or_default();
    w.insert("Deep".into(), (4, 42u32.to_le_bytes().to_vec()));
    w.insert(String::new(), (1, sz("default")));
    probes.push(Probe { key: deep.clone(), value: "Deep".into(), expect: (4, 42u32.to_le_bytes().to_vec()) });

    // 5. The biggest key: an index root (ri) in these hives. Insert before
    //    everything, in the middle and after everything; delete one child.
    let mut counts: BTreeMap<&str, usize> = BTreeMap::new();
    // (Not under another control set: those are deleted below.)
    for k in before.keys().filter(|k| !k.starts_with("ControlSet") || k.starts_with(&format!("{cs}\\"))) {
        *counts.entry(k.rsplit_once('\\').map_or("", |p| p.0)).or_default() += 1;
    }
    let (big, n) = counts.into_iter().filter(|c| !c.0.is_empty()).max_by_key(|c| c.1).map(|(k, n)| (k.to_string(), n)).unwrap();
    let sig = list_sig(ed.bytes(), &big);
    eprintln!("{rel}: biggest key {big} ({n} subkeys, list {:?})", sig.map(|s| String::from_utf8_lossy(&s).into_owned()));
    let kids = children(&before, &big);
    for (i, name) in ["!RdpRescueFirst".to_string(), just_after(kids[kids.len() / 2]), "~RdpRescueLast".to_string()].iter().enumerate() {
        let path = format!(r"{big}\{name}");
        ed.set_value(&path, "n", 4, &(i as u32).to_le_bytes()).unwrap();
        want.entry(path.clone()).or_default().insert("n".into(), (4, (i as u32).to_le_bytes().to_vec()));
        probes.push(Probe { key: path, value: "n".into(), expect: (4, (i as u32).to_le_bytes().to_vec()) });
    }
    let victim = format!(r"{big}\{}", kids[kids.len() / 3]);
    assert!(ed.delete_key(&victim).unwrap());
    want.retain(|k, _| k != &victim && !k.starts_with(&format!("{victim}\\")));

    // 6. Delete a value.
    let gone = before[&ts].keys().find(|n| *n != "fDenyTSConnections").unwrap().clone();
    assert!(ed.delete_value(&ts, &gone).unwrap());
    assert!(!ed.delete_value(&ts, &gone).unwrap());
    want.get_mut(&ts).unwrap().remove(&gone);

    // 7. Delete key subtrees: a service, and every other control set.
    let mut deleted = vec![real_path(&before, &format!(r"{services}\W32Time")).unwrap()];
    deleted.extend(before.keys().filter(|k| k.starts_with("ControlSet") && !k.contains('\\') && **k != cs).cloned());
    for d in &deleted {
        let n = want.keys().filter(|k| *k == d || k.starts_with(&format!("{d}\\"))).count();
        eprintln!("{rel}: deleting {d} ({n} keys)");
        assert!(ed.delete_key(&d.to_uppercase()).unwrap(), "{d}");
        assert!(!ed.delete_key(d).unwrap());
        want.retain(|k, _| k != d && !k.starts_with(&format!("{d}\\")));
    }
    assert!(!ed.delete_key(r"No\Such\Key").unwrap());

    // Finish and compare everything.
    let out = ed.finish().unwrap();
    let reloaded = hive::load(out.clone(), None, None).unwrap();
    let r = &reloaded.report;
    assert_eq!(r.state, HiveState::Clean, "{rel}");
    assert!(r.primary_checksum_ok);
    assert_eq!((r.primary_seq1, r.primary_seq2), (max_seq + 1, max_seq + 1), "{rel}: sequence numbers");
    let after = snap(&tree::Hive::new("SYSTEM", reloaded));
    let missing: Vec<_> = want.keys().filter(|k| !after.contains_key(*k)).take(10).collect();
    let extra: Vec<_> = after.keys().filter(|k| !want.contains_key(*k)).take(10).collect();
    let changed: Vec<_> = after.keys().filter(|k| want.get(*k).is_some_and(|w| w != &after[*k])).take(10).collect();
    assert!(missing.is_empty() && extra.is_empty() && changed.is_empty(), "{rel}: missing {missing:?}, unexpected {extra:?}, changed {changed:?}");
    let values: usize = after.values().map(|v| v.len()).sum();
    eprintln!(
        "{rel}: {} keys and {values} values identical to the original plus the edits ({} keys before); {} -> {} bytes",
        after.len(),
        before.len(),
        std::fs::metadata(&p).unwrap().len(),
        out.len()
    );
    // The deep key was written under the deepest new name too.
    assert!(after.contains_key(&deep));

    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("hive_edit");
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join(rel.replace('/', "-"));
    std::fs::write(&file, &out).unwrap();
    (file, probes, sig == Some(*b"ri"))
}

/// hivexget output for a value, as bytes comparable with ours.
fn hivex_matches(file: &Path, p: &Probe) -> bool {
    // Lower-cased path and upper-cased name: hivex must find them case-insensitively.
    let out = Command::new("hivexget").arg(file).arg(p.key.to_lowercase()).arg(p.value.to_uppercase()).out().unwrap();
    assert!(out.status.success(), "hivexget {} {}: {}", p.key, p.value, stderr(&out));
    let got = stdout(&out);
    let got = got.trim_end_matches('\n');
    match p.expect.0 {
        4 => got == u32::from_le_bytes(p.expect.1[..4].try_into().unwrap()).to_string(),
        1 => got == tree::Value { name: String::new(), kind: 1, raw: p.expect.1.clone() }.string(),
        // QWORD, MULTI_SZ, BINARY, EXPAND_SZ...: hivexget prints no raw
        // bytes for them; libhivex's .reg export of the key does (type and data).
        _ => hivex_export_value(file, &p.key, &p.value).as_ref() == Some(&p.expect),
    }
}

/// (type, data) of a value as `hivexregedit --export` of its key prints it
/// (`dword:`, `hex:` or `hex(N):` data; names compared case-insensitively).
fn hivex_export_value(file: &Path, key: &str, name: &str) -> Option<(u32, Vec<u8>)> {
    let out = Command::new("hivexregedit").arg("--export").arg(file).arg(key.to_lowercase()).out().unwrap();
    assert!(out.status.success(), "hivexregedit --export {key}: {}", stderr(&out));
    let text = stdout(&out);
    let want = if name.is_empty() { "@=".to_string() } else { format!("\"{}\"=", name.replace('\\', "\\\\").replace('"', "\\\"")).to_lowercase() };
    // Only the key's own section (the export includes its subkeys).
    let section: Vec<&str> = text.lines().skip_while(|l| !l.starts_with('[')).skip(1).take_while(|l| !l.starts_with('[')).collect();
    let line = section.iter().find(|l| l.to_lowercase().starts_with(&want))?;
    let data = &line[want.len()..];
    let hex = |h: &str| -> Vec<u8> { h.split(',').filter(|b| !b.is_empty()).map(|b| u8::from_str_radix(b, 16).unwrap()).collect() };
    if let Some(d) = data.strip_prefix("dword:") {
        return Some((4, u32::from_str_radix(d, 16).unwrap().to_le_bytes().to_vec()));
    }
    if let Some(h) = data.strip_prefix("hex:") {
        return Some((3, hex(h)));
    }
    let (ty, h) = data.strip_prefix("hex(")?.split_once("):")?;
    Some((u32::from_str_radix(ty, 16).unwrap(), hex(h)))
}

#[test]
#[cfg_attr(not(all(shared_data, tool_python3)), ignore = "needs ../shared/data and python3 (regipy)")]
fn edits_on_real_hives() {
    let Some(data) = shared_data() else { return };
    let mut files = vec![];
    let mut ri = 0;
    for rel in ["win10-1709-dirty/SYSTEM", "win7-sp1/SYSTEM", "win10-19041/SYSTEM", "server2008-dc/SYSTEM"] {
        let (file, probes, edited_ri) = edit_hive(&data, rel);
        files.push((file, probes));
        ri += edited_ri as usize;
    }
    assert!(ri >= 2, "keys with index-root lists were edited in only {ri} hives");
    if !have("hivexget") || !have("hivexregedit") {
        eprintln!("NOTICE: hivexget/hivexregedit not installed; skipping the libhivex cross-check");
    } else {
        let mut checked = 0;
        for (file, probes) in &files {
            for p in probes {
                assert!(hivex_matches(file, p), "{}: hivex reads {}\\{} differently", file.display(), p.key, p.value);
                checked += 1;
            }
            // The export of the new deep key's parent holds the new keys and values.
            let deep = &probes[3];
            let top = deep.key.rsplitn(3, '\\').nth(2).unwrap();
            let out = Command::new("hivexregedit").args(["--export", "--prefix", "HKLM\\SYSTEM"]).arg(file).arg(top.to_uppercase()).out().unwrap();
            assert!(out.status.success(), "hivexregedit: {}", stderr(&out));
            let reg = stdout(&out);
            assert!(reg.contains(&format!("[HKLM\\SYSTEM\\{}]", deep.key)), "{}", &reg[..reg.len().min(2000)]);
            assert!(reg.contains("\"Deep\"=dword:0000002a"), "{reg}");
        }
        eprintln!("{checked} edited values read back identically by libhivex");
    }
    regipy_check(&files);
}

/// regipy (pure Python, its own parser) opens every edited hive and reads the
/// probed values. Installed into a venv under the target directory on first use.
fn regipy_check(files: &[(PathBuf, Vec<Probe>)]) {
    let queries: Vec<(String, String, String)> = files
        .iter()
        .flat_map(|(f, ps)| ps.iter().map(move |p| (f.display().to_string(), p.key.clone(), p.value.clone())))
        .collect();
    let Some(got) = regipy_values(&queries) else { return };
    let probes: Vec<&Probe> = files.iter().flat_map(|(_, ps)| ps).collect();
    for (g, p) in got.iter().zip(&probes) {
        assert!(!g.is_null(), "regipy did not find {}\\{}", p.key, p.value);
        match p.expect.0 {
            4 => assert_eq!(g[1].as_u64(), Some(u32::from_le_bytes(p.expect.1[..4].try_into().unwrap()) as u64), "{}", p.key),
            1 => assert_eq!(g[1].as_str().unwrap(), tree::Value { name: String::new(), kind: 1, raw: p.expect.1.clone() }.string()),
            _ => {}
        }
    }
    eprintln!("{} edited values read back identically by regipy", got.len());
}

/// Every real Windows-made hive of ../shared/data that loads also opens in the
/// editor: the ownership walk done at open (every referenced cell allocated,
/// one owner each) holds on real hives, and is fast (open time printed; the
/// 12.8 MB SYSTEM hive opens in a few ms in release builds).
#[test]
#[cfg_attr(not(shared_data), ignore = "needs ../shared/data")]
fn editor_opens_every_real_hive() {
    let Some(data) = shared_data() else { return };
    let files: Vec<_> = files_under(&data.join("hives")).into_iter().filter(|p| !p.file_name().unwrap().to_string_lossy().contains('.')).collect();
    let mut opened = 0;
    for f in &files {
        let log = |ext: &str| read_opt(&f.with_file_name(format!("{}.{ext}", f.file_name().unwrap().to_string_lossy())));
        let Ok(h) = hive::load(std::fs::read(f).unwrap(), log("LOG1").or_else(|| log("LOG")), log("LOG2")) else { continue };
        if h.report.state == HiveState::DirtyNotRecovered || f.to_string_lossy().contains("corrupt") {
            continue;
        }
        let len = h.bytes.len();
        // Best of 5 (the machine is shared).
        let mut dt = std::time::Duration::MAX;
        for _ in 0..4 {
            let t = std::time::Instant::now();
            let _ = HiveEditor::new(h.bytes.clone(), 0);
            dt = dt.min(t.elapsed());
        }
        let t = std::time::Instant::now();
        let r = HiveEditor::new(h.bytes, h.report.max_sequence_seen);
        dt = dt.min(t.elapsed());
        eprintln!("{:>9} bytes {:>8.2} ms  {}", len, dt.as_secs_f64() * 1e3, f.strip_prefix(&data).unwrap().display());
        r.unwrap_or_else(|e| panic!("{}: the editor refuses a real hive: {e}", f.display()));
        opened += 1;
    }
    assert!(opened >= 15, "only {opened} real hives opened");
}
