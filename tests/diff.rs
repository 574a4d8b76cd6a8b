//! `rdprescue diff A B` and the key last-write times of `inspect` (issue 15
//! items 3 and 4): two scenario images that differ in known settings list
//! exactly those; an image and its `fix --diff-child` output differ by exactly
//! the fix plan; identical inputs give exit 0 and nothing; `last_write` agrees
//! with regipy (its own hive parser) on a real Windows hive; `inspect --sort
//! last-write` orders the findings newest first. Inputs are hashed before and
//! after every run (never modified).

mod common;
use common::*;
use serde_json::Value as J;
use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

fn scenario(name: &str) -> Option<(PathBuf, &'static J)> {
    find_scenario("diff", name)
}

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

/// `diff A B --json [extra]`: exit code and document; both inputs unchanged.
fn diff_json(a: &Path, b: &Path, extra: &[&str]) -> (i32, J) {
    let (ha, hb) = (sha256_file(a), sha256_file(b));
    let mut args = vec!["diff", s(a), s(b), "--json"];
    args.extend_from_slice(extra);
    let o = rdp(&args);
    assert_eq!((ha, hb), (sha256_file(a), sha256_file(b)), "diff modified an input");
    let code = o.status.code().unwrap();
    assert!(code == 0 || code == 1, "diff {args:?}: exit {code}: {}", stderr(&o));
    (code, serde_json::from_slice(&o.stdout).unwrap_or_else(|e| panic!("diff {args:?}: bad JSON: {e}")))
}

fn list<'a>(d: &'a J, field: &str) -> &'a Vec<J> {
    d[field].as_array().unwrap_or_else(|| panic!("no {field} in {d}"))
}

/// (hive, key, value name) of every value the scenario's patch sets.
fn patched(sc: &J) -> Vec<(String, String, String)> {
    let mut out = Vec::new();
    for (hive, keys) in sc["patch"].as_object().into_iter().flatten() {
        for (key, values) in keys.as_object().into_iter().flatten() {
            for name in values.as_object().into_iter().flatten().map(|(n, _)| n) {
                out.push((hive.clone(), key.clone(), name.clone()));
            }
        }
    }
    out
}

#[test]
#[cfg_attr(not(scenarios), ignore = "needs ../shared/data and the scenario-image tools (python3, hivex, ntfs-3g, fdisk, gdisk, mtools, dosfstools, qemu-img)")]
fn two_scenarios_differ_in_exactly_their_patched_settings() {
    let Some((a, sa)) = scenario("win7-healthy-gen1") else { return };
    let Some((b, sb)) = scenario("nla-trio") else { return };
    let (code, d) = diff_json(&a, &b, &[]);
    assert_eq!(code, 1);
    // The values the two scenarios set differently (their SOFTWARE patches are the same).
    let names = |sc: &J| -> BTreeSet<(String, String)> {
        patched(sc).into_iter().filter(|(h, _, _)| h == "SYSTEM").map(|(_, k, n)| (k.replace("ControlSet001", "CurrentControlSet"), n)).collect()
    };
    let want: BTreeSet<(String, String)> = names(sa).symmetric_difference(&names(sb)).cloned().collect();
    assert_eq!(want.len(), 4, "{want:?}");
    let mut got = BTreeSet::new();
    let mut other = BTreeSet::new();
    for field in ["settings", "accounts", "rights", "firewall"] {
        for r in list(&d, field) {
            let path = r["path"].as_str().unwrap();
            match path.strip_prefix(r"HKLM\SYSTEM\") {
                Some(k) => {
                    assert!(got.insert((k.to_string(), r["name"].as_str().unwrap().to_string())), "row listed twice: {r}");
                }
                None => {
                    other.insert(r["id"].as_str().unwrap().to_string());
                }
            }
            assert_eq!(r["change"], "changed", "{r}");
            // Both sides carry their key's last-write time (the key exists on both).
            if path.starts_with("HKLM") {
                assert!(r["a"]["last_write"].as_str().is_some_and(|t| t.ends_with('Z')), "{r}");
                assert!(r["b"]["last_write"].is_string(), "{r}");
            }
        }
    }
    assert_eq!(got, want, "registry rows that differ");
    // Besides the registry: the free space of the two volumes (not a registry value) may differ.
    assert!(other.iter().all(|i| i == "low-disk-space"), "{other:?}");
    assert_eq!(list(&d, "firewall").len(), 1, "the Public Remote Desktop rule only healthy turns on");
    assert!(list(&d, "accounts").is_empty() && list(&d, "rights").is_empty());
    // Findings: nla-trio's expected ids appeared, healthy had none to resolve.
    let appeared: BTreeSet<&str> = list(&d, "findings").iter().inspect(|f| assert_eq!(f["change"], "appeared", "{f}")).map(|f| f["check"].as_str().unwrap()).collect();
    let expect: BTreeSet<&str> = sb["expect"].as_array().unwrap().iter().map(|x| x.as_str().unwrap()).collect();
    assert_eq!(appeared, expect);
    assert!(sa["expect"].as_array().unwrap().is_empty());
    // Each side names its hives and their state.
    for side in ["a", "b"] {
        let hives = d[side]["hives"].as_array().unwrap();
        assert_eq!(hives.iter().find(|h| h["name"] == "SYSTEM").unwrap()["state"], "clean");
    }
    assert_eq!(d["differences"].as_u64().unwrap() as usize, got.len() + other.len() + appeared.len());
    // Swapped: the same rows, the findings resolved instead.
    let (_, back) = diff_json(&b, &a, &[]);
    assert!(list(&back, "findings").iter().all(|f| f["change"] == "resolved"));
    assert_eq!(back["differences"], d["differences"]);
    // --all: the SYSTEM hives differ in exactly those values (SOFTWARE and BCD are the same bytes).
    let (_, all) = diff_json(&a, &b, &["--all"]);
    let mut hive_changes = BTreeSet::new();
    for h in list(&all, "hives") {
        match h["hive"].as_str().unwrap() {
            "SYSTEM" => {
                assert_eq!(h["status"], "compared");
                assert!(h["keys_a"].as_u64().unwrap() > 10_000 && h["keys_a"] == h["keys_b"], "{h}");
                for c in h["changes"].as_array().unwrap() {
                    assert_eq!(c["change"], "value-changed", "{c}");
                    let k = c["key"].as_str().unwrap().strip_prefix(r"HKLM\SYSTEM\").unwrap().replace("ControlSet001", "CurrentControlSet");
                    hive_changes.insert((k.to_lowercase(), c["name"].as_str().unwrap().to_string()));
                }
            }
            _ => assert!(h["status"] == "identical" || h["status"] == "missing", "{h}"),
        }
    }
    assert_eq!(hive_changes, want.iter().map(|(k, n)| (k.to_lowercase(), n.clone())).collect(), "diff --all vs the patches");
    // Text: one line per change, the exit code the same.
    let o = rdp(&["diff", s(&a), s(&b)]);
    assert_eq!(o.status.code(), Some(1));
    let t = stdout(&o);
    assert!(t.contains(r"RDP-Tcp\SecurityLayer: 1 (local) -> 5 (local)"), "{t}");
    assert!(t.contains("key written: A 20"), "{t}");
}

#[test]
#[cfg_attr(not(scenarios), ignore = "needs ../shared/data and the scenario-image tools (python3, hivex, ntfs-3g, fdisk, gdisk, mtools, dosfstools, qemu-img)")]
fn identical_inputs_have_no_differences() {
    let Some((a, _)) = scenario("accounts-locked") else { return };
    let (code, d) = diff_json(&a, &a, &["--all"]);
    assert_eq!(code, 0, "{d}");
    assert_eq!(d["differences"], 0);
    for f in ["settings", "accounts", "rights", "firewall", "findings"] {
        assert!(list(&d, f).is_empty(), "{f}: {d}");
    }
    let hives = list(&d, "hives");
    assert_eq!(hives.len(), 5);
    for h in hives {
        assert!(h["changes"].as_array().unwrap().is_empty() && h["omitted"] == 0, "{h}");
        assert!(h["status"] == "identical" || h["status"] == "missing", "{h}");
    }
    let o = rdp(&["diff", s(&a), s(&a)]);
    assert_eq!(o.status.code(), Some(0));
    assert!(stdout(&o).trim_end().ends_with("No differences."), "{}", stdout(&o));
}

/// The changes a `fix` run printed in its plan: (full key, value name or "" for a key op, op).
fn plan_lines(out: &str) -> BTreeSet<(String, String, &'static str)> {
    let mut set = BTreeSet::new();
    for l in out.lines().filter(|l| l.starts_with("  ") && !l.starts_with("   ")) {
        let l = l.trim_start();
        if let Some(k) = l.strip_prefix("[-") {
            set.insert((k.split("] (").next().unwrap().to_string(), String::new(), "key-removed"));
        } else if let Some(k) = l.strip_prefix('[') {
            set.insert((k.split("] (").next().unwrap().to_string(), String::new(), "key-added"));
        } else if let Some((path, rest)) = l.split_once(": ") {
            let (key, name) = path.rsplit_once('\\').unwrap();
            let name = if name == "(Default)" { "" } else { name };
            let op = if rest.ends_with("-> (deleted)") {
                "value-removed"
            } else if rest.starts_with("(absent)") || rest.starts_with("null") || rest.starts_with('-') {
                "value-added"
            } else {
                "value-changed"
            };
            set.insert((key.to_string(), name.to_string(), op));
        }
    }
    set
}

#[test]
#[cfg_attr(not(scenarios), ignore = "needs ../shared/data and the scenario-image tools (python3, hivex, ntfs-3g, fdisk, gdisk, mtools, dosfstools, qemu-img)")]
fn a_fix_child_differs_by_exactly_the_fix_plan() {
    let Some((a, _)) = scenario("accounts-locked") else { return };
    let dir = tempfile::tempdir().unwrap();
    let child = dir.path().join("child.vhdx");
    let o = rdp_on(&a, &["fix", s(&a), "--all", "--diff-child", "--out", s(&child)]);
    assert_eq!(o.status.code(), Some(0), "{}{}", stdout(&o), stderr(&o));
    let plan = plan_lines(&stdout(&o));
    assert!(!plan.is_empty(), "no plan in: {}", stdout(&o));

    let (code, d) = diff_json(&a, &child, &["--all"]);
    assert_eq!(code, 1);
    let mut got = BTreeSet::new();
    let mut touched = 0;
    for h in list(&d, "hives") {
        assert_eq!(h["omitted"], 0, "{h}");
        for c in h["changes"].as_array().unwrap() {
            let op: &'static str = match c["change"].as_str().unwrap() {
                "value-added" => "value-added",
                "value-removed" => "value-removed",
                "value-changed" => "value-changed",
                "key-added" => "key-added",
                "key-removed" => "key-removed",
                other => panic!("{other}"),
            };
            got.insert((c["key"].as_str().unwrap().to_string(), c["name"].as_str().unwrap_or_default().to_string(), op));
            // The hive editor stamps the keys it writes: B's time is newer.
            let (ta, tb) = (c["a_last_write"].as_str().unwrap_or(""), c["b_last_write"].as_str().unwrap());
            assert!(tb > ta, "{c}");
            touched += 1;
        }
        if h["hive"] != "SAM" {
            assert!(h["status"] == "identical" || h["status"] == "missing", "only SAM was edited: {h}");
        }
    }
    assert!(touched > 0);
    assert_eq!(got, plan, "diff --all vs the plan fix printed");
    // The RDP view: the fixed finding is resolved, and the rows it changed are listed.
    let f = list(&d, "findings");
    assert!(f.iter().any(|f| f["check"] == "account-locked" && f["change"] == "resolved"), "{f:?}");
    assert!(f.iter().all(|f| f["change"] == "resolved"), "{f:?}");
    assert!(list(&d, "accounts").iter().any(|r| r["name"] == "F (Preston)" && r["change"] == "changed"), "{d}");
    // Side facts: B is the child.
    assert!(d["b"]["path"].as_str().unwrap().ends_with("child.vhdx"));
    // The cap: with --max-changes 0 every change is counted, none listed.
    let (_, capped) = diff_json(&a, &child, &["--all", "--max-changes", "0"]);
    let sam = list(&capped, "hives").iter().find(|h| h["hive"] == "SAM").unwrap().clone();
    assert!(sam["changes"].as_array().unwrap().is_empty());
    assert_eq!(sam["omitted"].as_u64().unwrap() as usize, plan.len());
    assert_eq!(capped["differences"], d["differences"]);
}

#[test]
#[cfg_attr(not(scenarios), ignore = "needs ../shared/data and the scenario-image tools (python3, hivex, ntfs-3g, fdisk, gdisk, mtools, dosfstools, qemu-img)")]
fn inspect_sorts_findings_by_last_write() {
    let Some((img, sc)) = scenario("services") else { return };
    let o = rdp_on(&img, &["inspect", s(&img), "--sort", "last-write"]);
    assert_eq!(o.status.code(), Some(1));
    let text = stdout(&o);
    let times: Vec<&str> = text.lines().filter(|l| l.starts_with("  [")).map(|l| l.rsplit("(key written ").next().unwrap().trim_end_matches(')')).collect();
    assert_eq!(times.len(), sc["expect"].as_array().unwrap().len() + 1, "{text}"); // sessionenv-umrdp-disabled fires twice
    assert!(times.iter().all(|t| t.len() == 20 && t.ends_with('Z')), "{times:?}");
    assert!(times.windows(2).all(|w| w[0] >= w[1]), "not newest first: {times:?}");
    // The default order is by severity, with no times.
    let plain = stdout(&rdp_on(&img, &["inspect", s(&img)]));
    assert!(!plain.contains("(key written "));
    let sev: Vec<&str> = plain.lines().filter(|l| l.starts_with("  [")).map(|l| &l[3..l.find(']').unwrap()]).collect();
    let rank = |s: &str| ["critical", "high", "medium", "low"].iter().position(|x| *x == s).unwrap();
    assert!(sev.windows(2).all(|w| rank(w[0]) <= rank(w[1])), "{sev:?}");
    // JSON: every finding's last_write is the newest of the keys its actions write.
    let doc: J = serde_json::from_slice(&rdp_on(&img, &["inspect", "--json", s(&img)]).stdout).unwrap();
    let term = doc["findings"].as_array().unwrap().iter().find(|f| f["check"] == "termservice-disabled").unwrap();
    let row = doc["settings"].as_array().unwrap().iter().find(|r| r["id"] == "termservice-disabled" && r["name"] == "Start").unwrap();
    assert_eq!(term["last_write"], row["last_write"], "{term}");
    assert!(doc["settings"].as_array().unwrap().iter().all(|r| r.get("last_write").is_some()));
}

#[test]
#[cfg_attr(not(all(shared_data, tool_python3)), ignore = "needs ../shared/data and python3 (regipy)")]
fn last_write_matches_regipy_on_a_real_hive() {
    let Some(data) = shared_data() else { return };
    require("python3");
    let hive = data.join("hives/win10-19041/SYSTEM");
    let o = rdp_on(&hive, &["inspect", "--json", s(&hive)]);
    let doc: J = serde_json::from_slice(&o.stdout).unwrap_or_else(|e| panic!("{e}: {}", stderr(&o)));
    let mut keys: Vec<String> = Vec::new();
    let mut ours: Vec<J> = Vec::new();
    for r in doc["settings"].as_array().unwrap() {
        if let Some(k) = r["path"].as_str().unwrap().strip_prefix(r"HKLM\SYSTEM\") {
            if r["source"] != "policy" && !keys.contains(&k.to_string()) {
                keys.push(k.to_string());
                ours.push(r["last_write"].clone());
            }
        }
    }
    assert!(keys.len() > 30, "{keys:?}");
    assert!(ours.iter().filter(|t| t.is_string()).count() > 20);
    assert!(ours.iter().any(J::is_null), "some catalog keys are absent from this hive");
    let script = r#"
import sys, json, datetime
from regipy.registry import RegistryHive
h = RegistryHive(sys.argv[1])
out = []
for p in json.loads(sys.argv[2]):
    try:
        k = h.get_key('\\' + p)
    except Exception:
        out.append(None)
        continue
    ft = k.header.last_modified
    t = datetime.datetime(1601, 1, 1) + datetime.timedelta(microseconds=ft // 10)
    out.append(t.strftime('%Y-%m-%dT%H:%M:%SZ'))
print(json.dumps(out))
"#;
    let Some(theirs) = regipy_script(script, &[s(&hive), &serde_json::to_string(&keys).unwrap()]) else { return };
    let theirs = theirs.as_array().unwrap();
    for ((k, a), b) in keys.iter().zip(&ours).zip(theirs) {
        assert_eq!(a, b, "last_write of {k}: ours {a}, regipy {b}");
    }
}

#[test]
fn unreadable_side_is_one_error_line() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("nope.vhdx");
    let junk = dir.path().join("junk.img");
    std::fs::write(&junk, vec![0x5au8; 4096]).unwrap();
    for (a, b) in [(&missing, &junk), (&junk, &missing), (&junk, &junk)] {
        let o = rdp(&["diff", s(a), s(b)]);
        assert_clean_error(&o, "diff of an unreadable side");
    }
}

/// `last_write` is read after log recovery: a dirty hive with its logs gives
/// the key times of Windows' own replay of it (yarp's RecoveredHive_Windows10
/// oracle), and the primary alone gives other (stale) times.
#[test]
#[cfg_attr(not(shared_data), ignore = "needs ../shared/data")]
fn last_write_is_read_after_log_recovery() {
    let Some(data) = shared_data() else { return };
    let dir = data.join("hives/yarp/NewDirtyHive1");
    let times = |hive: &Path| -> Vec<(String, J)> {
        let o = rdp_on(hive, &["reg", "query", s(hive), r"\", "-s", "--json"]);
        assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
        let d: J = serde_json::from_slice(&o.stdout).unwrap();
        // Key paths below the root (the root's name is the file's).
        d["keys"].as_array().unwrap().iter().map(|k| (k["key"].as_str().unwrap().splitn(3, '\\').nth(2).unwrap_or("").to_string(), k["last_write"].clone())).collect()
    };
    let recovered = times(&dir.join("NewDirtyHive"));
    let oracle = times(&dir.join("RecoveredHive_Windows10"));
    assert!(recovered.len() >= 5 && recovered.iter().all(|(_, t)| t.is_string()));
    assert_eq!(recovered, oracle);
    let tmp = tempfile::tempdir().unwrap();
    let alone = tmp.path().join("NewDirtyHive");
    std::fs::copy(dir.join("NewDirtyHive"), &alone).unwrap();
    assert_ne!(times(&alone), oracle, "without its logs the hive must read differently (else this test proves nothing)");
}
