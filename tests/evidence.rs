//! Evidence from the guest's event logs (issue 15): the events extracted
//! from the real logs of ../shared/data/evtx agree with an independent
//! reader (python-evtx); scenario images carrying real logs show
//! `evidence`, `confirmed_by` and unexplained events; damaged, truncated
//! and hostile logs are status lines, never a failed inspection.

mod common;
use common::*;
use rdprescue::evidence::log::{self, LogFile, Limits};
use rdprescue::evidence::{collect_files, extract, Options};
use serde_json::Value as J;
use std::path::{Path, PathBuf};

fn evtx_dir() -> PathBuf {
    shared_data().unwrap().join("evtx")
}

/// The real logs and the channel each is read as.
const REAL: &[(&str, &str)] = &[
    ("system.evtx", "System"),
    ("2-vss_7-System.evtx", "System"),
    ("security.evtx", "Security"),
    ("new-user-security.evtx", "Security"),
    ("2-vss_0-Microsoft-Windows-RemoteDesktopServices-RdpCoreTS%4Operational.evtx", "Microsoft-Windows-RemoteDesktopServices-RdpCoreTS/Operational"),
    ("2-vss_0-Microsoft-Windows-TerminalServices-RemoteConnectionManager%4Operational.evtx", "Microsoft-Windows-TerminalServices-RemoteConnectionManager/Operational"),
    ("E_Windows_system32_winevt_logs_Microsoft-Windows-CAPI2%4Operational.evtx", "Microsoft-Windows-CAPI2/Operational"),
    ("sample_with_a_bad_chunk_magic.evtx", "Microsoft-Windows-TerminalServices-LocalSessionManager/Operational"),
];

/// Every record of the window of one log file (newest - 14 days), as
/// (record id, µs), and the evidence events, by our reader.
fn ours(bytes: &[u8], channel: &str, days: f64) -> (i64, Vec<(u64, i64)>, Vec<rdprescue::evidence::Event>, rdprescue::evidence::LogStatus) {
    let f: &dyn LogFile = &bytes;
    let plan = log::plan(f, &log::header(f).unwrap());
    let mut budget = u64::MAX;
    let newest = log::newest(f, &plan, &mut budget).expect("a dated record");
    let since = newest - (days * 86_400_000_000.0) as i64;
    let mut all = Vec::new();
    log::walk(f, &plan, since, &Limits::default(), &mut budget, false, &mut |r| all.push((r.record_id, r.micros)));
    let ev = collect_files(&[(channel, "x".into(), Ok(f))], &Options { days, ..Default::default() });
    (since, all, ev.events, ev.logs[0].clone())
}

/// python-evtx (Willi Ballenthin's pure-Python reader) in a venv under the
/// target directory (network once, like regipy).
fn python_evtx() -> PathBuf {
    let venv = Path::new(env!("CARGO_TARGET_TMPDIR")).join("python-evtx-venv");
    let py = venv.join("bin/python");
    let ok = |c: &mut std::process::Command| c.output().is_ok_and(|o| o.status.success());
    if !ok(std::process::Command::new(&py).args(["-c", "import Evtx.Evtx"])) {
        let made = ok(std::process::Command::new("python3").arg("-m").arg("venv").arg(&venv)) && ok(std::process::Command::new(venv.join("bin/pip")).args(["install", "-q", "python-evtx==0.8.1"]));
        assert!(made, "could not install python-evtx into {} (pip install python-evtx: network needed once)", venv.display());
    }
    py
}

/// For each file (path, since µs): every record of every chunk (by the file
/// size, as we read) with its time from the record header, and for records
/// in the window the provider, event id and EventData/UserData leaves.
const ORACLE: &str = r#"
import json, re, sys
import Evtx.Evtx as evtx
from xml.etree import ElementTree as ET
out = {}
for path, since in json.loads(sys.argv[1]):
    recs = []
    with evtx.Evtx(path) as log:
        fh = log.get_file_header()
        for ch in fh.chunks(include_inactive=True):
            if not ch.check_magic():
                continue
            for r in ch.records():
                t = r.timestamp()
                us = (t.replace(tzinfo=None) - __import__('datetime').datetime(1970, 1, 1))
                us = us.days * 86400000000 + us.seconds * 1000000 + us.microseconds
                item = {"id": r.record_num(), "us": us}
                if us >= since:
                    try:
                        x = ET.fromstring(r.xml())
                        ns = {"e": "http://schemas.microsoft.com/win/2004/08/events/event"}
                        item["event_id"] = int(x.find("e:System/e:EventID", ns).text)
                        item["provider"] = x.find("e:System/e:Provider", ns).get("Name")
                        fields = {}
                        for d in x.iter():
                            tag = d.tag.split("}")[-1]
                            if tag == "Data" and d.get("Name"):
                                fields[d.get("Name")] = d.text or ""
                        ud = x.find("e:UserData", ns)
                        if ud is not None:
                            for el in list(ud):
                                for leaf in list(el):
                                    fields[leaf.tag.split("}")[-1]] = leaf.text or ""
                        item["fields"] = fields
                    except Exception as e:
                        item["error"] = str(e)
                recs.append(item)
    out[path] = recs
print(json.dumps(out))
"#;

#[test]
#[cfg_attr(not(all(shared_data, tool_python3)), ignore = "needs ../shared/data and python3 (python-evtx)")]
fn real_logs_agree_with_python_evtx() {
    let dir = evtx_dir();
    let mut mine = Vec::new();
    let mut args = Vec::new();
    for (name, channel) in REAL {
        let p = dir.join(name);
        let bytes = std::fs::read(&p).unwrap();
        // One day before each log's newest event: python-evtx renders every
        // record of the window, slowly (~2 ms each).
        let (since, all, events, status) = ours(&bytes, channel, 1.0);
        args.push((p.to_str().unwrap().to_string(), since));
        mine.push((name, all, events, status));
    }
    let py = python_evtx();
    let o = std::process::Command::new(py).arg("-c").arg(ORACLE).arg(serde_json::to_string(&args).unwrap()).output().unwrap();
    assert!(o.status.success(), "python-evtx: {}", stderr(&o));
    let theirs: J = serde_json::from_slice(&o.stdout).unwrap();
    let mut compared = 0;
    for ((name, all, events, status), (path, since)) in mine.iter().zip(&args) {
        let recs = theirs[path.as_str()].as_array().unwrap();
        // Every record in the window: the same ids at the same times (python-evtx
        // converts FILETIME through a float: within 1 µs).
        let want: std::collections::BTreeMap<u64, i64> = recs.iter().map(|r| (r["id"].as_u64().unwrap(), r["us"].as_i64().unwrap())).filter(|(_, t)| t >= since).collect();
        let got: std::collections::BTreeMap<u64, i64> = all.iter().copied().collect();
        // We follow the log's record numbers from the header's current chunk;
        // python-evtx (include_inactive) also reads an island chunk past a
        // gap of zeroed chunks (2-vss_7-System.evtx: chunk 12, records
        // 1418..1422, after a log whose sequence ends at 1155): compare the
        // records up to the newest we read.
        let top = got.keys().max().copied().unwrap_or(0);
        let want: std::collections::BTreeMap<u64, i64> = want.into_iter().filter(|(id, _)| *id <= top).collect();
        // (FILETIME * 1e-7 as a double near 1.5e9 s: a few µs of error.)
        let close = |a: i64, b: i64| (a - b).abs() <= 3;
        // Records python-evtx walks past that the evtx crate could not render are counted by us.
        let missing: Vec<_> = want.iter().filter(|(id, t)| !got.get(id).is_some_and(|g| close(*g, **t))).collect();
        // Same record, other time: wrong (records at the window's edge may differ by that µs).
        let same = |id: u64| recs.iter().filter(move |r| r["id"].as_u64() == Some(id));
        let differ: Vec<_> = got.iter().filter(|(id, t)| same(**id).count() > 0 && !same(**id).any(|r| close(r["us"].as_i64().unwrap(), **t)) && **t > since + 1).collect();
        assert!(differ.is_empty(), "{name}: records at other times than python-evtx's: {:?}", &differ[..differ.len().min(5)]);
        // Records python-evtx never reaches: it stops a chunk at its free-space
        // offset, which a log Windows did not close leaves stale; the evtx
        // crate walks to the chunk's last record number (system.evtx: 1881).
        let only_ours: Vec<_> = got.keys().filter(|id| !recs.iter().any(|r| r["id"].as_u64() == Some(**id))).collect();
        assert!(only_ours.len() <= 2 + want.len() / 3, "{name}: records python-evtx does not have: {:?}", &only_ours[..only_ours.len().min(5)]);
        let skipped = status.detail.as_deref().and_then(|d| d.split(" unreadable record").next()?.rsplit(' ').next()?.parse::<usize>().ok()).unwrap_or(0);
        // The evtx crate ends a chunk at the last record number its header
        // gives; a chunk Windows did not close has records past it that
        // python-evtx (walking to the free-space offset) reads: the RCM log
        // loses 98 of 1 day's records that way. Known gap, bounded here.
        assert!(missing.len() <= skipped + want.len() / 3, "{name}: {} window records missing, {skipped} reported unreadable: {:?}", missing.len(), &missing[..missing.len().min(5)]);
        if !missing.is_empty() {
            eprintln!("NOTICE: {name}: {} of {} window records python-evtx reads are not read (dirty chunk past its header's last record)", missing.len(), want.len());
        }
        // Every evidence event python-evtx can render: id, provider, time and the raw fields we decode.
        let mut wanted = 0;
        for r in recs.iter().filter(|r| r["us"].as_i64().unwrap() >= *since && r.get("event_id").is_some()) {
            let (id, prov) = (r["event_id"].as_u64().unwrap() as u32, r["provider"].as_str().unwrap());
            let Some(w) = extract::wanted(prov, id) else { continue };
            let fields: serde_json::Map<String, J> = r["fields"].as_object().unwrap().clone();
            if (w.decode)(id, &fields).is_none() {
                continue;
            }
            wanted += 1;
            let rid = r["id"].as_u64().unwrap();
            let Some(e) = events.iter().find(|e| e.record_id == rid) else {
                // Beyond the per-id cap: only the newest are listed.
                continue;
            };
            compared += 1;
            assert_eq!((e.event_id, e.provider.as_str()), (id, prov), "{name} record {rid}");
            assert!(close(e.micros, r["us"].as_i64().unwrap()), "{name} record {rid}: time {} vs {}", e.micros, r["us"]);
            for (k, v) in &e.data {
                if let Some(theirs) = fields.get(k) {
                    assert_eq!(v.as_str().unwrap_or_default().to_lowercase(), theirs.as_str().unwrap().to_lowercase(), "{name} record {rid} field {k}");
                }
            }
        }
        let listed: usize = events.len();
        assert!(listed <= wanted, "{name}: we list {listed} events, python-evtx finds {wanted}");
        if wanted > 0 {
            assert!(listed > 0, "{name}: python-evtx finds {wanted} evidence events, we none");
        }
        eprintln!("{name}: {} window records, {wanted} evidence events (python-evtx), {listed} listed, status {} {:?}", want.len(), status.status, status.detail);
    }
    assert!(compared > 50, "only {compared} events compared field by field");
}

#[test]
#[cfg_attr(not(shared_data), ignore = "needs ../shared/data")]
fn damaged_and_truncated_logs_are_status_lines() {
    let dir = evtx_dir();
    let bad = std::fs::read(dir.join("sample_with_a_bad_chunk_magic.evtx")).unwrap();
    let (_, all, _, st) = ours(&bad, "X", 14.0);
    assert_eq!(st.status, "damaged");
    assert!(st.chunks_damaged >= 1 && st.chunks_read >= 1, "{st:?}");
    assert!(!all.is_empty());
    // Cut the Security log in the middle of its third chunk: the first two still read.
    let sec = std::fs::read(dir.join("security.evtx")).unwrap();
    let cut = &sec[..4096 + 2 * 65536 + 3000];
    let ev = collect_files(&[("Security", "s".into(), Ok(&cut as &dyn LogFile))], &Options { days: 3650.0, ..Default::default() });
    assert_eq!(ev.logs[0].status, "damaged");
    assert!(ev.logs[0].detail.as_deref().unwrap().contains("truncated"), "{:?}", ev.logs[0]);
    assert!(ev.logs[0].records > 100, "{:?}", ev.logs[0]);
    // A header promising chunks the file does not have; a zeroed header.
    let mut lie = sec[..4096 + 65536].to_vec();
    lie[42..44].copy_from_slice(&60000u16.to_le_bytes());
    lie[16..24].copy_from_slice(&59999u64.to_le_bytes());
    let mut zero = sec[..4096 + 3 * 65536].to_vec();
    zero[..4096].fill(0);
    for (what, b) in [("lying header", &lie), ("zeroed header", &zero)] {
        let b = b.as_slice();
        let ev = collect_files(&[("Security", "s".into(), Ok(&b as &dyn LogFile))], &Options { days: 3650.0, ..Default::default() });
        assert!(ev.logs[0].records > 0, "{what}: {:?}", ev.logs[0]);
    }
}

#[test]
fn hostile_chunks_are_bounded() {
    // A chunk whose records claim huge sizes, a record of size 0 (a loop),
    // a chunk header pointing past the chunk; no panic, bounded work.
    let mut f = vec![0u8; 4096 + 3 * 65536];
    f[..8].copy_from_slice(b"ElfFile\0");
    f[16..24].copy_from_slice(&2u64.to_le_bytes());
    f[42..44].copy_from_slice(&3u16.to_le_bytes());
    for c in 0..3usize {
        let at = 4096 + c * 65536;
        f[at..at + 8].copy_from_slice(b"ElfChnk\0");
        f[at + 24..at + 32].copy_from_slice(&(c as u64 * 10 + 1).to_le_bytes());
        f[at + 32..at + 40].copy_from_slice(&(c as u64 * 10 + 9).to_le_bytes());
        f[at + 48..at + 52].copy_from_slice(&(if c == 2 { 0xFFFF_FFFFu32 } else { 65536 }).to_le_bytes());
        let r = at + 512;
        f[r..r + 4].copy_from_slice(&[0x2a, 0x2a, 0, 0]);
        f[r + 4..r + 8].copy_from_slice(&(if c == 0 { 0u32 } else { 0x7FFF_FFF0 }).to_le_bytes());
        f[r + 16..r + 24].copy_from_slice(&131_000_000_000_000_000u64.to_le_bytes());
    }
    let t = std::time::Instant::now();
    let fs = f.as_slice();
    let ev = collect_files(&[("System", "s".into(), Ok(&fs as &dyn LogFile))], &Options::default());
    assert!(t.elapsed().as_secs() < 2);
    assert!(ev.events.is_empty());
    assert_eq!(ev.logs.len(), 1);
    // Byte budget: nothing read once it is spent, and the status says so.
    let opts = Options { limits: Limits { total_bytes: 65536, ..Limits::default() }, ..Default::default() };
    let ev = collect_files(&[("System", "s".into(), Ok(&fs as &dyn LogFile))], &opts);
    assert!(ev.logs[0].detail.as_deref().unwrap_or_default().contains("budget"), "{:?}", ev.logs[0]);
}

fn scenario(name: &str) -> Option<(PathBuf, &'static J)> {
    let (_, all) = build_scenarios("evidence")?;
    let sc = all.iter().find(|s| s["name"] == name).unwrap_or_else(|| panic!("no scenario {name}"));
    Some((PathBuf::from(sc["image"].as_str().unwrap()), sc))
}

fn inspect(img: &Path, extra: &[&str]) -> J {
    let mut args = vec!["inspect", "--json", img.to_str().unwrap()];
    args.extend_from_slice(extra);
    let o = rdp_on(img, &args);
    assert!(matches!(o.status.code(), Some(0 | 1)), "{args:?}: {}", stderr(&o));
    serde_json::from_slice(&o.stdout).unwrap()
}

#[test]
#[cfg_attr(not(scenarios), ignore = "needs ../shared/data and the scenario-image tools (python3, hivex, ntfs-3g, fdisk, gdisk, mtools, dosfstools, qemu-img)")]
fn scenario_logs_confirm_findings() {
    let Some((img, _)) = scenario("evidence-logs") else { return };
    let doc = inspect(&img, &[]);
    let f = doc["findings"].as_array().unwrap().iter().find(|f| f["check"] == "dhcp-disabled").unwrap();
    let c = &f["confirmed_by"];
    assert_eq!((c["log"].as_str(), c["event_id"].as_u64(), c["record_id"].as_u64()), (Some("System"), Some(7023), Some(363)), "{f}");
    assert_eq!(c["time"], "2018-07-12T00:41:06.020943Z");
    // Findings no event confirms carry no confirmed_by.
    assert!(doc["findings"].as_array().unwrap().iter().filter(|f| f["check"] != "dhcp-disabled").all(|f| f.get("confirmed_by").is_none()));
    let e = doc["evidence"].as_array().unwrap().iter().find(|e| e["record_id"] == 363).unwrap();
    assert_eq!(e["confirms"], serde_json::json!(["dhcp-disabled"]));
    assert_eq!(e["data"]["service"], "Dhcp");
    assert_eq!(e["unexplained"], false);
    assert_eq!(doc["event_logs"]["window"]["to"], "2018-07-12T20:45:58.219749Z");
    let sys = doc["event_logs"]["logs"].as_array().unwrap().iter().find(|l| l["log"] == "System").unwrap();
    assert_eq!(sys["status"], "read");
    assert_eq!(sys["records"], 457);
    // Text: the finding says so.
    let o = rdp_on(&img, &["inspect", img.to_str().unwrap()]);
    assert!(stdout(&o).contains("confirmed by: 2018-07-12T00:41:06.020943Z System 7023: Dhcp terminated with an error"), "{}", stdout(&o));
    // --no-events: nothing read; a window that ends before the event: no confirmation.
    let doc = inspect(&img, &["--no-events"]);
    assert_eq!(doc["event_logs"]["status"], "skipped");
    assert!(doc["evidence"].as_array().unwrap().is_empty());
    let doc = inspect(&img, &["--since", "12h"]);
    assert!(doc["findings"].as_array().unwrap().iter().all(|f| f.get("confirmed_by").is_none()));
}

#[test]
#[cfg_attr(not(scenarios), ignore = "needs ../shared/data and the scenario-image tools (python3, hivex, ntfs-3g, fdisk, gdisk, mtools, dosfstools, qemu-img)")]
fn scenario_rdp_logs_unexplained_and_damaged() {
    let Some((img, _)) = scenario("evidence-rdp-logs") else { return };
    let doc = inspect(&img, &["--symptom", "Your credentials did not work"]);
    let ev = doc["evidence"].as_array().unwrap();
    let wrong = ev.iter().find(|e| e["event_id"] == 140).unwrap();
    assert_eq!(wrong["unexplained"], true, "{wrong}");
    assert!(wrong["data"]["IPString"].as_str().is_some_and(|s| !s.is_empty()), "{wrong}");
    assert!(ev.iter().any(|e| e["event_id"] == 1149 && e["unexplained"] == false));
    let logs = doc["event_logs"]["logs"].as_array().unwrap();
    let lsm = logs.iter().find(|l| l["log"].as_str().unwrap().contains("LocalSessionManager")).unwrap();
    assert_eq!(lsm["status"], "damaged");
    assert!(lsm["chunks_damaged"].as_u64().unwrap() >= 1, "{lsm}");
    let counts = doc["event_logs"]["counts"].as_array().unwrap();
    let c140 = counts.iter().find(|c| c["event_id"] == 140).unwrap();
    assert!((120..=126).contains(&c140["count"].as_u64().unwrap()), "{c140}");
    let o = rdp_on(&img, &["inspect", img.to_str().unwrap(), "--symptom", "Your credentials did not work"]);
    let t = stdout(&o);
    assert!(t.contains("Evidence in the logs for \"credentials-did-not-work\""), "{t}");
    assert!(t.contains("UNEXPLAINED"), "{t}");
}
