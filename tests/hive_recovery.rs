//! Hive loading and transaction-log recovery on real Windows-made hives from
//! ../shared/data/hives (skipped with a notice when absent). Recovered content is
//! compared, key by key and value by value (walked with nt-hive), against
//! Windows' own replay results (yarp's RecoveredHive_* files) and against an
//! independent recovery by yarp and regipy, recorded in
//! tests/oracles/hive_recovery.json by tests/oracles/hive_walk.py.

mod common;
use common::Start;
use rdprescue::hive::{load, HiveState, LoadedHive};
use serde_json::Value;
use sha2::{Digest, Sha256};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// ../shared/data/hives; fails when absent (the tests that use it are marked
/// ignored then, see tests/common).
fn hives() -> Option<PathBuf> {
    let p = Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/data/hives");
    assert!(p.is_dir(), "{} is absent: mark the test #[cfg_attr(not(shared_data), ignore = ...)]", p.display());
    Some(p)
}

fn read(p: &Path) -> Vec<u8> {
    std::fs::read(p).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
}

fn read_opt(p: &Path) -> Option<Vec<u8>> {
    p.exists().then(|| read(p))
}

/// Load `dir/name` with `name.LOG1` and `name.LOG2` when present.
fn load_with_logs(dir: &Path, name: &str) -> rdprescue::Result<LoadedHive> {
    load(
        read(&dir.join(name)),
        read_opt(&dir.join(format!("{name}.LOG1"))),
        read_opt(&dir.join(format!("{name}.LOG2"))),
    )
}

fn oracle() -> Value {
    let p = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/oracles/hive_recovery.json");
    serde_json::from_str(&std::fs::read_to_string(p).unwrap()).unwrap()
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

/// key path -> value name -> (raw type, sha256 of the raw data)
type Tree = BTreeMap<String, BTreeMap<String, (u32, String)>>;

/// Walk every key and value with nt-hive. Returns the tree and the errors met
/// (an unreadable key or value is skipped and reported, not fatal).
fn walk(bytes: &[u8]) -> (Tree, Vec<String>) {
    let hive = nt_hive::Hive::new(bytes).expect("nt-hive refuses the loaded bytes");
    let mut tree = Tree::new();
    let mut errors = Vec::new();
    let root = hive.root_key_node().expect("root key");
    let mut stack = vec![(String::new(), root)];
    while let Some((path, key)) = stack.pop() {
        let mut values = BTreeMap::new();
        if let Some(vals) = key.values() {
            match vals {
                Err(e) => errors.push(format!("{path}: values: {e}")),
                Ok(vals) => {
                    for v in vals {
                        let v = match v {
                            Ok(v) => v,
                            Err(e) => {
                                errors.push(format!("{path}: value: {e}"));
                                continue;
                            }
                        };
                        let name = v
                            .name()
                            .map(|n| n.to_string_lossy())
                            .unwrap_or_else(|e| format!("<{e}>"));
                        let ty = match v.data_type() {
                            Ok(t) => t as u32,
                            Err(nt_hive::NtHiveError::UnsupportedKeyValueDataType { actual, .. }) => actual,
                            Err(e) => panic!("{path}\\{name}: {e}"),
                        };
                        // nt-hive asserts on the 0xFFFFFFFF "no cell" offset that empty values carry.
                        let data = if v.data_size() == 0 {
                            Ok(Vec::new())
                        } else {
                            v.data().and_then(|d| d.into_vec())
                        };
                        match data {
                            Ok(d) => {
                                values.insert(name, (ty, hex(&Sha256::digest(&d))));
                            }
                            Err(e) => errors.push(format!("{path}\\{name}: data: {e}")),
                        }
                    }
                }
            }
        }
        assert!(tree.insert(path.clone(), values).is_none(), "duplicate key {path}");
        if let Some(subs) = key.subkeys() {
            match subs {
                Err(e) => errors.push(format!("{path}: subkeys: {e}")),
                Ok(subs) => {
                    for s in subs {
                        match s.and_then(|s| Ok((s.name()?.to_string_lossy(), s))) {
                            Ok((name, s)) => stack.push((format!("{path}\\{name}"), s)),
                            Err(e) => errors.push(format!("{path}: subkey: {e}")),
                        }
                    }
                }
            }
        }
    }
    (tree, errors)
}

/// The canonical listing of tests/oracles/hive_walk.py, and its summary.
fn summary(tree: &Tree) -> (usize, usize, String) {
    let mut text = String::new();
    for (k, vals) in tree {
        text.push_str(&format!("K\t{k}\n"));
        for (n, (t, h)) in vals {
            text.push_str(&format!("V\t{n}\t{t}\t{h}\n"));
        }
    }
    let values = tree.values().map(|v| v.len()).sum();
    (tree.len(), values, hex(&Sha256::digest(text.as_bytes())))
}

fn assert_matches_oracle(tree: &Tree, exp: &Value, what: &str) {
    let (keys, values, sha) = summary(tree);
    eprintln!("{what}: {keys} keys, {values} values, listing sha256 {sha}");
    assert_eq!(keys as u64, exp["keys"].as_u64().unwrap(), "{what}: key count");
    assert_eq!(values as u64, exp["values"].as_u64().unwrap(), "{what}: value count");
    assert_eq!(
        sha,
        exp["sha256"].as_str().unwrap(),
        "{what}: listing differs from the oracle"
    );
}

/// Compare two trees and describe the first differences.
fn assert_same_tree(got: &Tree, want: &Tree, what: &str) {
    if got == want {
        return;
    }
    let mut diffs = Vec::new();
    for k in want.keys().filter(|k| !got.contains_key(*k)) {
        diffs.push(format!("missing key {k}"));
    }
    for k in got.keys().filter(|k| !want.contains_key(*k)) {
        diffs.push(format!("extra key {k}"));
    }
    for (k, wv) in want {
        if let Some(gv) = got.get(k) {
            if gv != wv {
                diffs.push(format!("key {k}: values {gv:?} != {wv:?}"));
            }
        }
    }
    diffs.truncate(20);
    panic!("{what}: content differs:\n{}", diffs.join("\n"));
}

fn le_u32(b: &[u8], off: usize) -> u32 {
    u32::from_le_bytes(b[off..off + 4].try_into().unwrap())
}

#[test]
#[cfg_attr(not(shared_data), ignore = "needs ../shared/data")]
fn win10_1709_dirty_system_recovers_to_2130() {
    let Some(d) = hives() else { return };
    let dir = d.join("win10-1709-dirty");
    let h = load_with_logs(&dir, "SYSTEM").unwrap();
    let r = &h.report;
    eprintln!("{}", serde_json::to_string_pretty(r).unwrap());
    assert_eq!(r.state, HiveState::Recovered);
    assert_eq!((r.primary_seq1, r.primary_seq2), (1622, 1621));
    assert!(r.primary_checksum_ok && !r.base_block_from_log);
    let applied: Vec<_> = r
        .applied
        .iter()
        .map(|a| (a.log.as_str(), a.format, a.entries, a.first_sequence, a.last_sequence))
        .collect();
    assert_eq!(
        applied,
        vec![
            ("LOG1", "new", 4, Some(2107), Some(2110)),
            ("LOG2", "new", 20, Some(2111), Some(2130))
        ]
    );
    assert_eq!(r.recovered_sequence, Some(2130));
    assert_eq!(r.max_sequence_seen, 2130);
    // The base block as nt-hive and Windows expect it after recovery.
    assert_eq!((le_u32(&h.bytes, 4), le_u32(&h.bytes, 8)), (2130, 2130));
    assert_eq!(le_u32(&h.bytes, 40), 12591104);
    assert_eq!(h.bytes.len(), 4096 + 12591104);

    let (tree, errors) = walk(&h.bytes);
    assert!(errors.is_empty(), "{errors:?}");
    let o = oracle();
    let exp = &o["win10-1709-dirty/SYSTEM"];
    assert_matches_oracle(&tree, exp, "recovered SYSTEM vs yarp");
    for s in exp["spot_values"].as_array().unwrap() {
        let (k, n) = (s["key"].as_str().unwrap(), s["value"].as_str().unwrap());
        let got = tree
            .get(k)
            .and_then(|v| v.get(n))
            .unwrap_or_else(|| panic!("missing {k}\\{n}"));
        assert_eq!(got.0 as u64, s["type"].as_u64().unwrap(), "{k}\\{n}");
        assert_eq!(got.1, s["sha256"].as_str().unwrap(), "{k}\\{n}");
    }

    // Order comes from the base-block sequence numbers, not from the file names.
    let swapped = load(
        read(&dir.join("SYSTEM")),
        read_opt(&dir.join("SYSTEM.LOG2")),
        read_opt(&dir.join("SYSTEM.LOG1")),
    )
    .unwrap();
    assert_eq!(swapped.bytes, h.bytes);
    assert_eq!(swapped.report.applied[0].log, "LOG2"); // the slot name of the file holding 2107..2110

    // Without its logs the primary is read as-is (stale), and matches regipy's walk of the file.
    let stale = load(read(&dir.join("SYSTEM")), None, None).unwrap();
    assert_eq!(stale.report.state, HiveState::DirtyNotRecovered);
    assert_eq!(stale.report.max_sequence_seen, 1622);
    let (tree, errors) = walk(&stale.bytes);
    assert!(errors.is_empty(), "{errors:?}");
    assert_matches_oracle(&tree, &exp["primary_as_is"], "stale SYSTEM vs regipy");
}

#[test]
#[cfg_attr(not(shared_data), ignore = "needs ../shared/data")]
fn truncated_and_damaged_real_logs_never_panic() {
    let Some(d) = hives() else { return };
    let dir = d.join("win10-1709-dirty");
    let (p, l1, l2) = (
        read(&dir.join("SYSTEM")),
        read(&dir.join("SYSTEM.LOG1")),
        read(&dir.join("SYSTEM.LOG2")),
    );
    // LOG2 cut inside its entry 2118 (at 0x8c000, 0x161000 bytes): 2111..2117 apply.
    let h = load(p.clone(), Some(l1.clone()), Some(l2[..0x8c000 + 0x1000].to_vec())).unwrap();
    assert_eq!(h.report.recovered_sequence, Some(2117));
    assert!(
        h.report
            .notes
            .iter()
            .any(|n| n.contains("entry 2118") && n.contains("runs past the end")),
        "{:?}",
        h.report.notes
    );
    // A flipped bit in LOG1's first entry: nothing from LOG1, so LOG2 cannot follow.
    let mut bad = l1.clone();
    bad[0x300] ^= 4;
    let h = load(p.clone(), Some(bad), Some(l2.clone())).unwrap();
    assert_eq!(h.report.state, HiveState::DirtyNotRecovered);
    assert!(
        h.report.notes.iter().any(|n| n.contains("Hash-1")),
        "{:?}",
        h.report.notes
    );
    // Many cut points: defined outcome, never a panic.
    for cut in (0..l2.len()).step_by(l2.len() / 97) {
        let h = load(p.clone(), Some(l1.clone()), Some(l2[..cut].to_vec())).unwrap();
        assert!(h.report.recovered_sequence.is_some_and(|s| (2110..=2130).contains(&s)));
    }
    // A cut primary: shorter than its base block is refused; past it, either
    // refused as corrupt (hive layer) or recovered into a consistent hive.
    for cut in [0, 100, 4095, 4096, 8192, p.len() / 2] {
        match load(p[..cut].to_vec(), Some(l1.clone()), Some(l2.clone())) {
            Err(e) => assert!(matches!(e, rdprescue::Error::Corrupt { layer: rdprescue::Layer::Hive | rdprescue::Layer::HiveLog, .. }), "cut {cut}: {e:?}"),
            Ok(h) => {
                assert!(cut >= 4096, "cut {cut}: a primary without its base block loaded");
                assert!(h.bytes.starts_with(b"regf") && h.report.state != HiveState::Clean, "cut {cut}: {:?}", h.report);
            }
        }
    }
}

#[test]
#[cfg_attr(not(shared_data), ignore = "needs ../shared/data")]
fn ntuser_stale_log2_is_ignored() {
    let Some(d) = hives() else { return };
    let h = load_with_logs(&d.join("ntuser-stale-log"), "NTUSER.DAT").unwrap();
    let r = &h.report;
    eprintln!("{}", serde_json::to_string_pretty(r).unwrap());
    assert_eq!(r.state, HiveState::Recovered);
    assert_eq!(r.applied.len(), 1);
    assert_eq!((r.applied[0].log.as_str(), r.applied[0].entries), ("LOG1", 23));
    assert_eq!(
        (r.applied[0].first_sequence, r.applied[0].last_sequence),
        (Some(566), Some(588))
    );
    assert_eq!(r.recovered_sequence, Some(588));
    assert!(
        r.notes
            .iter()
            .any(|n| n == "LOG2: base sequence 562 is older than primary seq2 566: stale, ignored"),
        "{:?}",
        r.notes
    );
    let (tree, errors) = walk(&h.bytes);
    assert!(errors.is_empty(), "{errors:?}");
    assert_matches_oracle(
        &tree,
        &oracle()["ntuser-stale-log/NTUSER.DAT"],
        "recovered NTUSER.DAT vs yarp",
    );
}

#[test]
#[cfg_attr(not(shared_data), ignore = "needs ../shared/data")]
fn yarp_new_dirty_hive_equals_windows_recovery() {
    let Some(d) = hives() else { return };
    let dir = d.join("yarp/NewDirtyHive1");
    let h = load_with_logs(&dir, "NewDirtyHive").unwrap();
    eprintln!("{}", serde_json::to_string_pretty(&h.report).unwrap());
    assert_eq!(h.report.state, HiveState::Recovered);
    let applied: Vec<_> = h
        .report
        .applied
        .iter()
        .map(|a| (a.log.as_str(), a.first_sequence, a.last_sequence))
        .collect();
    assert_eq!(applied, vec![("LOG1", Some(2), Some(2)), ("LOG2", Some(3), Some(5))]);
    let windows = read(&dir.join("RecoveredHive_Windows10"));
    let (got, e1) = walk(&h.bytes);
    let (want, e2) = walk(&windows);
    assert!(e1.is_empty() && e2.is_empty(), "{e1:?} {e2:?}");
    assert_same_tree(&got, &want, "NewDirtyHive1 vs Windows 10");
    // The hive-bins data is byte-identical too.
    assert_eq!(&h.bytes[4096..], &windows[4096..4096 + h.bytes.len() - 4096]);
    // The primary before recovery differs, so the comparison means something.
    let (stale, _) = walk(&load(read(&dir.join("NewDirtyHive")), None, None).unwrap().bytes);
    assert_ne!(stale, want);
}

#[test]
#[cfg_attr(not(shared_data), ignore = "needs ../shared/data")]
fn yarp_old_dirty_hive_equals_windows_recovery() {
    let Some(d) = hives() else { return };
    let dir = d.join("yarp/OldDirtyHive");
    let h = load_with_logs(&dir, "OldDirtyHive").unwrap();
    eprintln!("{}", serde_json::to_string_pretty(&h.report).unwrap());
    assert_eq!(h.report.state, HiveState::Recovered);
    assert_eq!(h.report.applied.len(), 1);
    assert_eq!(
        (h.report.applied[0].log.as_str(), h.report.applied[0].format),
        ("LOG1", "old")
    );
    assert_eq!(h.report.recovered_sequence, Some(5));
    let (got, e1) = walk(&h.bytes);
    let (want, e2) = walk(&read(&dir.join("RecoveredHive_Windows7")));
    assert!(e1.is_empty() && e2.is_empty(), "{e1:?} {e2:?}");
    assert_same_tree(&got, &want, "OldDirtyHive vs Windows 7");
    assert!(got.contains_key("\\key_with_many_subkeys\\5000\\find_me_in_log"));
    let (stale, _) = walk(&load(read(&dir.join("OldDirtyHive")), None, None).unwrap().bytes);
    assert_ne!(stale, want);
}

#[test]
#[cfg_attr(not(shared_data), ignore = "needs ../shared/data")]
fn yarp_bad_base_block_is_recovered_from_the_log() {
    let Some(d) = hives() else { return };
    let h = load_with_logs(&d.join("yarp/BadBaseBlockHive"), "BadBaseBlockHive").unwrap();
    eprintln!("{}", serde_json::to_string_pretty(&h.report).unwrap());
    assert_eq!(h.report.state, HiveState::Recovered);
    assert!(h.report.base_block_from_log);
    assert!(!h.report.primary_checksum_ok);
    assert_eq!(h.report.applied[0].format, "old");
    assert_eq!(le_u32(&h.bytes, 24), 3); // minor version from the log, not the damaged 1
    let (tree, errors) = walk(&h.bytes);
    assert!(errors.is_empty(), "{errors:?}");
    assert!(tree.contains_key("\\key_with_many_subkeys"));
    // It is the same hive as OldDirtyHive, whose Windows-recovered state we have.
    let (want, _) = walk(&read(&d.join("yarp/OldDirtyHive/RecoveredHive_Windows7")));
    assert_same_tree(&tree, &want, "BadBaseBlockHive vs OldDirtyHive's Windows 7 recovery");
}

#[test]
#[cfg_attr(not(shared_data), ignore = "needs ../shared/data")]
fn yarp_bad_logs_leave_the_hive_unrecovered() {
    let Some(d) = hives() else { return };
    for (n, why) in [(1, "checksum"), (2, "no DIRT signature"), (3, "checksum")] {
        let h = load_with_logs(&d.join(format!("yarp/BadLogHive{n}")), "BadLogHive").unwrap();
        eprintln!("BadLogHive{n}: {:?}", h.report.notes);
        assert_eq!(h.report.state, HiveState::DirtyNotRecovered, "BadLogHive{n}");
        assert!(h.report.applied.is_empty());
        assert!(
            h.report
                .notes
                .iter()
                .any(|x| x.starts_with("LOG1: unusable") && x.contains(why)),
            "BadLogHive{n}"
        );
        assert!(h.report.notes.iter().any(|x| x.contains("may be stale")));
        let (_, errors) = walk(&h.bytes);
        assert!(errors.is_empty(), "BadLogHive{n}: {errors:?}");
    }
}

#[test]
#[cfg_attr(not(shared_data), ignore = "needs ../shared/data")]
fn yarp_truncated_dirty_hive_is_cut_to_its_intact_hbins() {
    let Some(d) = hives() else { return };
    let h = load(read(&d.join("yarp/TruncatedDirtyHive")), None, None).unwrap();
    eprintln!("{:?}", h.report);
    assert_eq!(h.report.state, HiveState::DirtyNotRecovered);
    assert!(h.report.notes.iter().any(|n| n.contains("primary file is truncated")));
    assert!(h.report.notes.iter().any(|n| n.contains("cut from 0x77000")));
    let hive = nt_hive::Hive::new(&h.bytes[..]).unwrap();
    let root = hive.root_key_node().unwrap();
    let names: Vec<String> = root
        .subkeys()
        .unwrap()
        .unwrap()
        .map(|k| k.unwrap().name().unwrap().to_string_lossy())
        .collect();
    assert_eq!(names, vec!["key_with_many_subkeys"]);
}

#[test]
#[cfg_attr(not(shared_data), ignore = "needs ../shared/data")]
fn corrupt_truncated_xp_system_has_a_defined_outcome() {
    let Some(d) = hives() else { return };
    let p = read(&d.join("corrupt/SYSTEM-truncated-xp"));
    let h = load(p.clone(), None, None).unwrap();
    // Its base block is clean and consistent with the file length: loaded as-is;
    // the damage is inside the hive bins and is for the reader to report.
    assert_eq!(h.report.state, HiveState::Clean);
    assert_eq!(h.bytes, p);
    // Reading it: rdprescue's reader (guarded against nt-hive's own panics)
    // lists it or refuses it with one line, exit 0 or 2, never a panic.
    let dir = tempfile::tempdir().unwrap();
    let f = dir.path().join("SYSTEM");
    std::fs::write(&f, &p).unwrap();
    let o = std::process::Command::new(env!("CARGO_BIN_EXE_rdprescue")).args(["reg", "query", f.to_str().unwrap(), "\\", "-s", "--json"]).out().unwrap();
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(!err.contains("panicked") && !err.contains("internal error"), "{err}");
    match o.status.code() {
        Some(0) => {
            let doc: Value = serde_json::from_slice(&o.stdout).unwrap();
            assert!(!doc["keys"].as_array().unwrap().is_empty(), "listed nothing");
        }
        Some(2) => {
            // --json: the error is one JSON object on stdout.
            let doc: Value = serde_json::from_slice(&o.stdout).unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(&o.stdout)));
            assert_eq!(doc["error"]["layer"], "hive", "{doc}");
            assert!(err.is_empty(), "{err}");
        }
        other => panic!("exit {other:?}: {err}"),
    }
}

#[test]
#[cfg_attr(not(shared_data), ignore = "needs ../shared/data")]
fn clean_hives_are_returned_unchanged() {
    let Some(d) = hives() else { return };
    let o = oracle();
    for rel in [
        "win10-19041/SYSTEM",
        "win7-sp1/SYSTEM",
        "server2008-dc/SYSTEM",
        "hivex/minimal",
        "hivex/special",
        "bcd/BCD-win10-uefi",
        "bcd/BCD-zimmerman",
        "sam/SAM-win10",
        "sam/SAM-server2019",
    ] {
        let p = read(&d.join(rel));
        let h = load(p.clone(), None, None).unwrap();
        assert_eq!(h.report.state, HiveState::Clean, "{rel}");
        assert!(h.bytes == p, "{rel}: bytes changed");
        assert_eq!(h.report.max_sequence_seen, h.report.primary_seq1, "{rel}");
        let (tree, errors) = walk(&h.bytes);
        assert!(errors.is_empty(), "{rel}: {errors:?}");
        if let Some(exp) = o.get(rel) {
            assert_matches_oracle(&tree, exp, rel);
        }
    }
}

/// A reader of `bytes` for the paged load that returns at most `most` bytes
/// a call and counts the bytes it returned.
fn counting_reader(bytes: Vec<u8>, most: usize, count: std::rc::Rc<std::cell::Cell<usize>>) -> rdprescue::hive::pages::ReadAt {
    Box::new(move |at, buf| {
        let at = (at as usize).min(bytes.len());
        let n = buf.len().min(bytes.len() - at).min(most);
        buf[..n].copy_from_slice(&bytes[at..at + n]);
        count.set(count.get() + n);
        Ok(n)
    })
}

/// `primary` with its logs loaded paged, as inspect loads an image's hives:
/// the primary read on demand, the logs read through readers (short reads
/// of `most` bytes). The report, the whole image, and the log bytes read.
fn load_paged_with_readers(primary: Vec<u8>, log1: Option<Vec<u8>>, log2: Option<Vec<u8>>, most: usize) -> rdprescue::Result<(String, Vec<u8>, usize)> {
    use rdprescue::hive::pages::LogBytes;
    use std::{cell::Cell, rc::Rc};
    let file = Rc::new(primary);
    let f = file.clone();
    let stream = |w: &mut dyn std::io::Write| {
        w.write_all(&f).map_err(|e| rdprescue::Error::corrupt(rdprescue::error::Layer::Hive, 0, e.to_string()))?;
        Ok(f.len() as u64)
    };
    let scan = rdprescue::hive::scan_primary(&stream, file.len())?;
    let read = counting_reader(file.to_vec(), usize::MAX, Rc::new(Cell::new(0)));
    let logged = Rc::new(Cell::new(0));
    let log = |name: &str, l: Option<Vec<u8>>| l.map(|l| LogBytes::Read { name: name.into(), len: l.len(), read: counting_reader(l, most, logged.clone()) });
    let (bytes, report) = rdprescue::hive::load_paged(read, scan, log("LOG1", log1), log("LOG2", log2))?;
    let at_load = logged.get();
    Ok((format!("{report:?}"), bytes.into_vec()?, at_load))
}

/// A reader of `bytes` another thread may build (the logs parsed ahead).
fn arc_reader(bytes: std::sync::Arc<Vec<u8>>) -> rdprescue::hive::pages::ReadAt {
    Box::new(move |at, buf| {
        let at = (at as usize).min(bytes.len());
        let n = buf.len().min(bytes.len() - at);
        buf[..n].copy_from_slice(&bytes[at..at + n]);
        Ok(n)
    })
}

/// [`load_paged_with_readers`] (no short reads) with the logs parsed ahead
/// on a second thread (`hive::parse_log_ahead`, as `machine::load_paged`
/// does while the primary streams), for a primary said to be `ahead_len`
/// bytes long; with `decoy`, what is parsed ahead is not the logs but 4 KiB
/// of zeros, which recovery must not use (`ahead_len` then gives another
/// hive-bins limit). The report and the whole image.
fn load_paged_ahead(primary: Vec<u8>, log1: Option<Vec<u8>>, log2: Option<Vec<u8>>, ahead_len: usize, decoy: bool) -> rdprescue::Result<(String, Vec<u8>)> {
    use rdprescue::hive::pages::{LogBytes, LogSrc};
    use std::sync::Arc;
    let logs = [log1.map(Arc::new), log2.map(Arc::new)];
    let ahead = std::thread::scope(|s| {
        let parse = || {
            logs.clone().map(|l| {
                l.map(|b| {
                    let b = if decoy { Arc::new(vec![0u8; 4096]) } else { b };
                    let (len, read) = (b.len(), arc_reader(b));
                    rdprescue::hive::parse_log_ahead(LogSrc::Read { name: "ahead", read: &read, len }, ahead_len)
                })
            })
        };
        s.spawn(parse).join().unwrap()
    });
    let stream = |w: &mut dyn std::io::Write| {
        w.write_all(&primary).map_err(|e| rdprescue::Error::corrupt(rdprescue::error::Layer::Hive, 0, e.to_string()))?;
        Ok(primary.len() as u64)
    };
    let scan = rdprescue::hive::scan_primary(&stream, primary.len())?;
    let read = arc_reader(Arc::new(primary.clone()));
    let [l1, l2] = logs;
    let log = |name: &str, l: Option<Arc<Vec<u8>>>| l.map(|b| LogBytes::Read { name: name.into(), len: b.len(), read: arc_reader(b) });
    let (bytes, report) = rdprescue::hive::load_paged_ahead(read, scan, log("LOG1", l1), log("LOG2", l2), ahead)?;
    Ok((format!("{report:?}"), bytes.into_vec()?))
}

/// Every hive of ../shared/data/hives (Windows-made dirty hives with new-
/// and old-format logs, damaged logs, a stale log, clean hives), and the
/// dirty Windows 10 SYSTEM with its logs cut short or damaged, loaded paged
/// with the logs read on demand: the same report (notes included), the
/// same image byte for byte and the same errors as the whole load. Of the
/// Windows 10 logs (6.4 MB), only the valid entries are read at load.
#[test]
#[cfg_attr(not(shared_data), ignore = "needs ../shared/data")]
fn paged_loads_with_logs_read_on_demand_equal_whole_loads() {
    let Some(d) = hives() else { return };
    let mut cases: Vec<(String, Vec<u8>, Option<Vec<u8>>, Option<Vec<u8>>)> = Vec::new();
    for p in common::files_under(&d) {
        let (dir, name) = (p.parent().unwrap(), p.file_name().unwrap().to_string_lossy().to_string());
        if name.to_uppercase().contains(".LOG") || name.ends_with(".gz") {
            continue;
        }
        let sib = |ext: &str| read_opt(&dir.join(format!("{name}.{ext}")));
        let log1 = sib("LOG1").or_else(|| sib("LOG"));
        cases.push((p.display().to_string(), read(&p), log1, sib("LOG2")));
    }
    let w = d.join("win10-1709-dirty");
    let (p, l1, l2) = (read(&w.join("SYSTEM")), read(&w.join("SYSTEM.LOG1")), read(&w.join("SYSTEM.LOG2")));
    for cut in [0, 100, 600, 0x4e00, 0x60000, 0x2a0000] {
        cases.push((format!("LOG2 cut at {cut:#x}"), p.clone(), Some(l1.clone()), Some(l2[..cut.min(l2.len())].to_vec())));
    }
    for flip in [0x200 + 30, 0x3000, 0x20000] {
        let mut bad = l2.clone();
        bad[flip] ^= 0x40;
        cases.push((format!("LOG2 byte {flip:#x} flipped"), p.clone(), Some(l1.clone()), Some(bad)));
    }
    assert!(cases.len() > 30, "{} cases", cases.len());
    let mut recovered = 0;
    for (what, primary, log1, log2) in cases {
        let whole = load(primary.clone(), log1.clone(), log2.clone());
        // Short reads for the small hives (the Windows 10 SYSTEM is 12.8 MB).
        let mosts: &[usize] = if primary.len() > 4 << 20 { &[usize::MAX] } else { &[usize::MAX, 4093] };
        for &most in mosts {
            match (&whole, load_paged_with_readers(primary.clone(), log1.clone(), log2.clone(), most)) {
                (Ok(h), Ok((report, bytes, _))) => {
                    assert_eq!(report, format!("{:?}", h.report), "{what}: another report");
                    assert!(bytes == h.bytes, "{what}: other bytes");
                    recovered += (h.report.state == HiveState::Recovered) as usize;
                }
                (Err(a), Err(b)) => assert_eq!(a.to_string(), b.to_string(), "{what}"),
                (a, b) => panic!("{what}: whole {:?}, paged {:?}", a.as_ref().map(|h| h.report.state), b.map(|r| r.0)),
            }
        }
        // The logs parsed ahead on another thread; and parsed ahead for a
        // primary over 1 GiB (another hive-bins limit) from other bytes,
        // which recovery must parse again: the same outcome either way.
        for (ahead_len, decoy) in [(primary.len(), false), (3 << 30, true)] {
            match (&whole, load_paged_ahead(primary.clone(), log1.clone(), log2.clone(), ahead_len, decoy)) {
                (Ok(h), Ok((report, bytes))) => {
                    assert_eq!(report, format!("{:?}", h.report), "{what}: another report (ahead, decoy {decoy})");
                    assert!(bytes == h.bytes, "{what}: other bytes (ahead, decoy {decoy})");
                }
                (Err(a), Err(b)) => assert_eq!(a.to_string(), b.to_string(), "{what} (ahead, decoy {decoy})"),
                (a, b) => panic!("{what} (ahead, decoy {decoy}): whole {:?}, paged {:?}", a.as_ref().map(|h| h.report.state), b.map(|r| r.0)),
            }
        }
    }
    assert!(recovered >= 8, "{recovered} recovered loads");
    let (_, _, log_bytes) = load_paged_with_readers(p, Some(l1), Some(l2), usize::MAX).unwrap();
    assert!((2_700_000..2_800_000).contains(&log_bytes), "{log_bytes} log bytes read at load");
}

/// Logs parsed ahead whose reads failed (as a log on an unreadable cluster
/// does on the second thread) give their error only where the serial load
/// would: after the primary's own errors (too short, a base block whose
/// fields are refused), and LOG1's before LOG2's.
#[test]
#[cfg_attr(not(shared_data), ignore = "needs ../shared/data")]
fn errors_of_logs_parsed_ahead_come_in_the_serial_order() {
    use rdprescue::hive::pages::{LogBytes, LogSrc, ReadAt};
    let Some(d) = hives() else { return };
    let dir = d.join("yarp/NewDirtyHive1");
    let (primary, log1, log2) = (read(&dir.join("NewDirtyHive")), read(&dir.join("NewDirtyHive.LOG1")), read(&dir.join("NewDirtyHive.LOG2")));
    let failing = |tag: &'static str| -> ReadAt { Box::new(move |at, _| Err(rdprescue::Error::corrupt(rdprescue::error::Layer::Ntfs, at, format!("{tag} unreadable")))) };
    // Each log parsed ahead through a reader that fails (`Some(tag)`) or
    // reads its bytes; the serial paged load gets readers that read.
    let load = |primary: &[u8], bad: [Option<&'static str>; 2]| -> String {
        let ahead = [(&log1, bad[0]), (&log2, bad[1])].map(|(l, bad)| {
            let read = match bad {
                Some(tag) => failing(tag),
                None => arc_reader(std::sync::Arc::new(l.clone())),
            };
            Some(rdprescue::hive::parse_log_ahead(LogSrc::Read { name: "ahead", read: &read, len: l.len() }, primary.len()))
        });
        let p = primary.to_vec();
        let stream = |w: &mut dyn std::io::Write| {
            w.write_all(&p).map_err(|e| rdprescue::Error::corrupt(rdprescue::error::Layer::Hive, 0, e.to_string()))?;
            Ok(p.len() as u64)
        };
        let scan = rdprescue::hive::scan_primary(&stream, p.len()).unwrap();
        let log = |name: &str, l: &Vec<u8>| Some(LogBytes::Read { name: name.into(), len: l.len(), read: arc_reader(std::sync::Arc::new(l.clone())) });
        match rdprescue::hive::load_paged_ahead(arc_reader(std::sync::Arc::new(p.clone())), scan, log("LOG1", &log1), log("LOG2", &log2), ahead) {
            Ok((_, r)) => format!("ok {:?}", r.state),
            Err(e) => e.to_string(),
        }
    };
    // The logs read: recovered; a failed read of LOG1 first, else LOG2.
    assert_eq!(load(&primary, [None, None]), "ok Recovered");
    assert!(load(&primary, [Some("LOG1"), Some("LOG2")]).contains("LOG1 unreadable"));
    assert!(load(&primary, [None, Some("LOG2")]).contains("LOG2 unreadable"));
    // A primary shorter than a base block: its error, whatever the logs.
    let short = load(&primary[..4000], [Some("LOG1"), Some("LOG2")]);
    assert!(short.contains("shorter than the 4096-byte base block"), "{short}");
    // A base block with a right checksum and a refused field (version 1.9).
    let mut bad = primary.clone();
    bad[0x18..0x1c].copy_from_slice(&9u32.to_le_bytes());
    let sum = rdprescue::hive::recover::base_block_checksum(&bad[..4096]);
    bad[0x1fc..0x200].copy_from_slice(&sum.to_le_bytes());
    let refused = load(&bad, [None, None]);
    assert!(!refused.starts_with("ok") && !refused.contains("unreadable") && refused.contains("0x18"), "{refused}");
    assert_eq!(load(&bad, [Some("LOG1"), Some("LOG2")]), refused);
}
