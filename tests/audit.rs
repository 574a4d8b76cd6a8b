//! `rdprescue audit`: a sweep over every scenario image of
//! testdata/scenarios.json (real hives from ../shared/data, mixed Gen1/Gen2,
//! raw/VHD/VHDX, healthy and broken) plus two unreadable images; records,
//! error rows, exit codes, baselines, shards and the output formats.

mod common;
use common::*;
use serde_json::Value as J;
use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

struct Sweep {
    /// (image, expected check ids) of the readable images.
    good: Vec<(PathBuf, BTreeSet<String>)>,
    /// Images that cannot be read, and a word their error must contain.
    bad: Vec<(PathBuf, &'static str)>,
}

fn sweep() -> Option<Sweep> {
    let (dir, manifest) = build_scenarios("audit")?;
    let good: Vec<(PathBuf, BTreeSet<String>)> = manifest
        .iter()
        .map(|sc| (PathBuf::from(sc["image"].as_str().unwrap()), sc["expect"].as_array().unwrap().iter().map(|c| c.as_str().unwrap().to_string()).collect()))
        .collect();
    // Unreadable: a VHDX cut short, a Hyper-V checkpoint whose parent is gone,
    // and a disk whose Windows volume is BitLocker-encrypted.
    let cut = dir.join("cut-short.vhdx");
    let whole = std::fs::read(&good.iter().find(|(p, _)| p.extension().unwrap() == "vhdx").unwrap().0).unwrap();
    // Several tests of this binary build the sweep at once, in the shared
    // scenario directory: each file is written aside and renamed into place,
    // so no test ever hashes or reads a half-written one.
    let tmp = tempfile::tempdir_in(dir).unwrap();
    let place = |made: PathBuf| {
        let to = dir.join(made.file_name().unwrap());
        std::fs::rename(&made, &to).unwrap();
        to
    };
    std::fs::write(tmp.path().join("cut-short.vhdx"), &whole[..70_000]).unwrap();
    place(tmp.path().join("cut-short.vhdx"));
    let orphan = place(gunzip(&shared_data()?.join("images/hyperv-checkpoint-orphan.avhdx.gz"), tmp.path()));
    let locked = place(gunzip(&testdata().join("images/bitlocker-mbr.raw.gz"), tmp.path()));
    // The expected errors, derived rather than pasted from rdprescue's output:
    // the cut file ends (70000) inside the first region table, which MS-VHDX
    // puts at 192 KiB and which is 64 KiB long; the BitLocker partition's
    // offset is the one make-fixtures.sh recorded with sfdisk (fixtures.json).
    let cut_err = format!("image/vhdx at offset {:#x}: read of {} bytes past end of file", 192 * 1024, 64 * 1024);
    let fx: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(testdata().join("fixtures.json")).unwrap()).unwrap();
    let bl = fx["images"].as_array().unwrap().iter().find(|i| i["file"] == "images/bitlocker-mbr.raw.gz").unwrap();
    let p = bl["partitions"].as_array().unwrap().iter().find(|p| p["filesystem"] == "bitlocker").unwrap();
    let locked_err = format!("fs at offset {:#x}: unsupported: no readable Windows volume for the SYSTEM hive: partition(s) {} BitLocker-encrypted", p["start"].as_u64().unwrap(), p["index"]);
    // The orphan's error names the file offset of its parent locator item,
    // found here by walking the MS-VHDX structures by hand.
    let orphan_err = format!("image/vhdx at offset {:#x}: parent disk missing", vhdx_parent_locator_offset(&head(&orphan, 3 << 20)));
    let (cut_err, locked_err, orphan_err): (&'static str, &'static str, &'static str) = (cut_err.leak(), locked_err.leak(), orphan_err.leak());
    Some(Sweep { good, bad: vec![(cut, cut_err), (orphan, orphan_err), (locked, locked_err)] })
}

/// The first `n` bytes of a file.
fn head(p: &std::path::Path, n: usize) -> Vec<u8> {
    use std::io::Read;
    let mut b = vec![0u8; n];
    std::fs::File::open(p).unwrap().read_exact(&mut b).unwrap();
    b
}

/// File offset of a VHDX's parent locator metadata item, by MS-VHDX 2.2-2.6
/// (an oracle independent of image/vhdx): the region table at 192 KiB
/// ('regi', count at +8, 32-byte entries from +16: GUID, file offset u64)
/// names the metadata region (GUID 8B7CA206-4790-4B9A-B8FE-575F050F886E);
/// its table ('metadata', count u16 at +10, 32-byte entries from +32: item
/// GUID, offset u32 from the region start) names the parent locator
/// (A8D35F2D-B30B-454D-ABF7-D3D84834AB0C).
fn vhdx_parent_locator_offset(f: &[u8]) -> u64 {
    let guid = |s: &str| -> [u8; 16] {
        let h: Vec<u8> = (0..16).map(|i| u8::from_str_radix(&s.replace('-', "")[2 * i..2 * i + 2], 16).unwrap()).collect();
        // Mixed-endian GUID layout: the first three fields little-endian.
        let mut b = [0u8; 16];
        b[..4].copy_from_slice(&[h[3], h[2], h[1], h[0]]);
        b[4..6].copy_from_slice(&[h[5], h[4]]);
        b[6..8].copy_from_slice(&[h[7], h[6]]);
        b[8..].copy_from_slice(&h[8..]);
        b
    };
    let u32_at = |o: usize| u32::from_le_bytes(f[o..o + 4].try_into().unwrap());
    let rt = 192 * 1024;
    assert_eq!(&f[rt..rt + 4], b"regi");
    let meta = (0..u32_at(rt + 8) as usize)
        .map(|i| rt + 16 + 32 * i)
        .find(|&e| f[e..e + 16] == guid("8B7CA206-4790-4B9A-B8FE-575F050F886E"))
        .map(|e| u64::from_le_bytes(f[e + 16..e + 24].try_into().unwrap()) as usize)
        .expect("metadata region");
    assert_eq!(&f[meta..meta + 8], b"metadata");
    let count = u16::from_le_bytes([f[meta + 10], f[meta + 11]]) as usize;
    (0..count)
        .map(|i| meta + 32 + 32 * i)
        .find(|&e| f[e..e + 16] == guid("A8D35F2D-B30B-454D-ABF7-D3D84834AB0C"))
        .map(|e| (meta + u32_at(e + 16) as usize) as u64)
        .expect("parent locator item")
}

fn paths(s: &Sweep) -> Vec<String> {
    s.good.iter().map(|(p, _)| p).chain(s.bad.iter().map(|(p, _)| p)).map(|p| p.to_str().unwrap().to_string()).collect()
}

fn audit(args: &[&str]) -> (i32, String, String) {
    let o = rdp(args);
    (o.status.code().unwrap(), stdout(&o), stderr(&o))
}

fn jsonl(out: &str) -> Vec<J> {
    out.lines().map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("bad JSON line {l}: {e}"))).collect()
}

fn ids(r: &J) -> BTreeSet<String> {
    r["findings"].as_array().unwrap().iter().map(|f| f["check"].as_str().unwrap().to_string()).collect()
}

#[test]
#[cfg_attr(not(scenarios), ignore = "needs ../shared/data and the scenario-image tools (python3, hivex, ntfs-3g, fdisk, gdisk, mtools, dosfstools, qemu-img)")]
fn every_record_right_error_rows_and_exit_codes() {
    let Some(s) = sweep() else { return };
    let all = paths(&s);
    assert!(all.len() >= 20, "only {} images", all.len());
    assert!(s.good.iter().filter(|(_, e)| e.is_empty()).count() >= 2, "no healthy images");
    let hashes: Vec<String> = all.iter().map(|p| sha256_file(Path::new(p))).collect();

    let mut args = vec!["audit", "--format", "jsonl", "--jobs", "2"];
    args.extend(all.iter().map(String::as_str));
    let (code, out, err) = audit(&args);
    assert_eq!(code, 2, "some images unreadable: {err}");
    let recs = jsonl(&out);
    assert_eq!(recs.len(), all.len());
    for (i, r) in recs.iter().enumerate() {
        // Input order, whatever order the workers finished in.
        assert_eq!(r["image"], all[i]);
    }
    let mut formats = BTreeSet::new();
    for ((img, want), r) in s.good.iter().zip(&recs) {
        let name = img.display();
        assert_eq!(&ids(r), want, "{name}");
        assert_eq!(r["status"], if want.is_empty() { "pass" } else { "fail" }, "{name}");
        assert!(r["error"].is_null());
        assert_eq!(r["size"], std::fs::metadata(img).unwrap().len());
        assert!(r["windows"]["build"].as_str().is_some_and(|b| !b.is_empty()), "{name}: no OS build");
        assert!(r["control_set"].as_str().is_some_and(|c| c.starts_with("ControlSet")), "{name}");
        assert_eq!(r["hives"][0]["name"], "SYSTEM");
        assert!(r["settings"].as_array().unwrap().len() > 40, "{name}: settings missing");
        assert!(r["settings"].as_array().unwrap().iter().all(|x| x.get("effective").is_some() && x["source"].is_string()));
        formats.insert(r["format"].as_str().unwrap().to_string());
    }
    assert_eq!(formats, ["raw", "vhd-dynamic", "vhdx-dynamic"].map(String::from).into());
    for ((img, word), r) in s.bad.iter().zip(&recs[s.good.len()..]) {
        assert_eq!(r["status"], "error", "{}", img.display());
        let e = r["error"].as_str().unwrap();
        assert!(e.contains(word), "{}: {e}", img.display());
    }
    // The summary goes to stderr for JSON lines.
    let healthy = s.good.iter().filter(|(_, e)| e.is_empty()).count();
    assert!(err.contains(&format!("{} images: {healthy} pass, {} fail, 3 unreadable", all.len(), s.good.len() - healthy)), "{err}");
    for (p, h) in all.iter().zip(&hashes) {
        assert_eq!(&sha256_file(Path::new(p)), h, "audit modified {p}");
    }

    // Exit 1 without the unreadable ones, 0 on the healthy ones alone.
    let mut args = vec!["audit", "--format", "jsonl"];
    args.extend(s.good.iter().map(|(p, _)| p.to_str().unwrap()));
    assert_eq!(audit(&args).0, 1);
    let mut args = vec!["audit"];
    args.extend(s.good.iter().filter(|(_, e)| e.is_empty()).map(|(p, _)| p.to_str().unwrap()));
    let (code, out, _) = audit(&args);
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("PASS") && out.contains(&format!("Summary: {healthy} images: {healthy} pass, 0 fail, 0 unreadable")), "{out}");
}

#[test]
#[cfg_attr(not(scenarios), ignore = "needs ../shared/data and the scenario-image tools (python3, hivex, ntfs-3g, fdisk, gdisk, mtools, dosfstools, qemu-img)")]
fn table_json_and_csv_agree() {
    let Some(s) = sweep() else { return };
    let all = paths(&s);
    let list = std::env::temp_dir().join(format!("rdprescue-audit-list-{}", std::process::id()));
    std::fs::write(&list, format!("# the sweep\n\n{}\n", all.join("\n"))).unwrap();
    let l = list.to_str().unwrap();

    let (code, table, _) = audit(&["audit", "--from-list", l]);
    assert_eq!(code, 2);
    assert_eq!(table.lines().filter(|x| x.starts_with("FAIL") || x.starts_with("PASS") || x.starts_with("ERROR")).count(), all.len(), "{table}");
    assert!(table.contains("Summary:") && table.contains("fw-rdp-rule-inactive"), "{table}");

    let (_, json, _) = audit(&["audit", "--from-list", l, "--format", "json", "-j", "1"]);
    let doc: J = serde_json::from_str(&json).unwrap();
    let recs = doc["records"].as_array().unwrap();
    assert_eq!(recs.len(), all.len());
    assert_eq!(doc["summary"]["images"], all.len());
    assert_eq!(doc["summary"]["error"], 3);
    assert_eq!(doc["summary"]["jobs"], 1);
    let deny = doc["summary"]["checks"].as_array().unwrap().iter().find(|c| c["check"] == "rdp-deny-local").unwrap();
    assert_eq!(deny["images"], s.good.iter().filter(|(_, e)| e.contains("rdp-deny-local")).count());

    let (_, csv_out, _) = audit(&["audit", "--from-list", l, "--format", "csv"]);
    let mut rdr = csv::Reader::from_reader(csv_out.as_bytes());
    let head = rdr.headers().unwrap().clone();
    assert_eq!(&head[0], "image");
    let port_col = head.iter().position(|h| h == "setting:rdp-port/PortNumber").expect("a column per setting");
    let rows: Vec<csv::StringRecord> = rdr.records().map(Result::unwrap).collect();
    assert_eq!(rows.len(), all.len());
    for (row, rec) in rows.iter().zip(recs) {
        assert_eq!(&row[0], rec["image"].as_str().unwrap());
        assert_eq!(&row[1], rec["status"].as_str().unwrap());
        let n = rec["findings"].as_array().map_or(0, Vec::len);
        assert_eq!(row[7].parse::<usize>().unwrap_or(0), n);
    }
    let moved = rows.iter().find(|r| r[0].ends_with("port-moved.vhdx")).unwrap();
    assert_ne!(&moved[port_col], "3389");
    let healthy = rows.iter().find(|r| r[0].ends_with("win7-healthy-gen1.raw")).unwrap();
    assert_eq!(&healthy[port_col], "3389");
    std::fs::remove_file(&list).unwrap();
}

#[test]
#[cfg_attr(not(scenarios), ignore = "needs ../shared/data and the scenario-image tools (python3, hivex, ntfs-3g, fdisk, gdisk, mtools, dosfstools, qemu-img)")]
fn baseline_ignores_overrides_and_expects() {
    let Some(s) = sweep() else { return };
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR"));
    let baseline = dir.join("audit-baseline.toml");
    std::fs::copy(testdata().join("audit-baseline.toml"), &baseline).unwrap();
    let b = baseline.to_str().unwrap();
    let img = |n: &str| s.good.iter().find(|(p, _)| p.file_stem().unwrap() == n).unwrap().0.to_str().unwrap().to_string();
    let (rdp_enabled, moved, crypto) = (img("win7-rdp-enabled-gen1"), img("port-moved"), img("crypto"));
    let (code, out, err) = audit(&["audit", "--baseline", b, "--format", "jsonl", &rdp_enabled, &moved, &crypto]);
    let recs = jsonl(&out);
    assert_eq!(recs.len(), 3, "{err}");
    // Ignored: the only finding of the Win7 image.
    assert_eq!(recs[0]["status"], "pass", "{}", recs[0]);
    assert_eq!(recs[0]["ignored"], 1);
    // rdp-port downgraded to low (below fail_on), but the baseline's own expectation is critical.
    let moved_ids = ids(&recs[1]);
    assert_eq!(moved_ids, ["baseline:rdp-port", "rdp-port"].map(String::from).into(), "{}", recs[1]);
    let f = recs[1]["findings"].as_array().unwrap();
    assert_eq!(f[0]["check"], "baseline:rdp-port");
    assert_eq!(f[0]["severity"], "critical");
    assert!(f[0]["message"].as_str().unwrap().contains("baseline expects 3389"), "{}", f[0]);
    assert_eq!(f[1]["severity"], "low");
    assert_eq!(recs[1]["status"], "fail");
    // The crypto image has MinEncryptionLevel 9: the path rule fires with the default severity.
    let enc = recs[2]["findings"].as_array().unwrap().iter().find(|f| f["check"] == "baseline:encryption").expect("path rule fired");
    assert_eq!(enc["severity"], "medium");
    assert!(enc["message"].as_str().unwrap().contains(r"ControlSet001\Control\Terminal Server\WinStations\RDP-Tcp\MinEncryptionLevel is 9; baseline expects a value in 2..=4"), "{enc}");
    assert_eq!(code, 1);

    // A baseline that names no known check is refused before any image is read.
    std::fs::write(&baseline, "ignore = [\"rdp-prot\"]\n").unwrap();
    let (code, out, err) = audit(&["audit", "--baseline", b, &rdp_enabled]);
    assert_eq!(code, 2);
    assert!(out.is_empty());
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(err.contains("audit-baseline.toml") && err.contains("unknown check id \"rdp-prot\" (did you mean rdp-port"), "{err}");
    std::fs::write(&baseline, "[[expect]]\ncheck = \"rdp-port\"\nvalue = true\n").unwrap();
    let (code, _, err) = audit(&["audit", "--baseline", b, &rdp_enabled]);
    assert_eq!(code, 2);
    assert!(err.contains("expect[0].value: expected an integer, a string or a list of strings, not boolean"), "{err}");
}

#[test]
#[cfg_attr(not(scenarios), ignore = "needs ../shared/data and the scenario-image tools (python3, hivex, ntfs-3g, fdisk, gdisk, mtools, dosfstools, qemu-img)")]
fn shards_partition_the_list() {
    let Some(s) = sweep() else { return };
    let all = paths(&s);
    let mut seen = Vec::new();
    for i in 0..3 {
        let shard = format!("{i}/3");
        let mut args = vec!["audit", "--format", "jsonl", "--shard", &shard];
        args.extend(all.iter().map(String::as_str));
        let (_, out, _) = audit(&args);
        let got: Vec<String> = jsonl(&out).iter().map(|r| r["image"].as_str().unwrap().to_string()).collect();
        let want: Vec<String> = all.iter().enumerate().filter(|(k, _)| k % 3 == i).map(|(_, p)| p.clone()).collect();
        assert_eq!(got, want, "shard {shard}");
        seen.extend(got);
    }
    seen.sort();
    let mut all_sorted = all.clone();
    all_sorted.sort();
    assert_eq!(seen, all_sorted, "shards cover every image exactly once");
    for bad in ["3/3", "1/0", "x/2", "1"] {
        let (code, _, err) = audit(&["audit", "--shard", bad, &all[0]]);
        assert_eq!(code, 2, "{bad}");
        assert!(err.contains("--shard"), "{err}");
    }
}

/// A rule on a hive the source does not have is "not evaluated", never a pass
/// or a failure; a hive file is a valid audit source.
#[test]
#[cfg_attr(not(shared_data), ignore = "needs ../shared/data")]
fn baseline_rule_on_a_missing_hive_is_not_evaluated() {
    let Some(data) = shared_data() else { return };
    let system = data.join("hives/win7-sp1/SYSTEM");
    let baseline = Path::new(env!("CARGO_TARGET_TMPDIR")).join("audit-baseline-software.toml");
    std::fs::write(&baseline, "ignore = [\"fw-rdp-rule-inactive\"]\n[[expect]]\npath = 'HKLM\\SOFTWARE\\Policies\\Microsoft\\Windows NT\\Terminal Services'\nname = \"fDenyTSConnections\"\nabsent = true\n").unwrap();
    let o = rdp_on(&system, &["audit", "--format", "json", "--baseline", baseline.to_str().unwrap(), system.to_str().unwrap()]);
    let doc: J = serde_json::from_slice(&o.stdout).unwrap();
    let r = &doc["records"][0];
    assert_eq!(r["format"], "hive-file");
    assert_eq!(r["status"], "pass", "{r}");
    let ne = r["not_evaluated"].as_array().unwrap();
    assert!(ne.iter().any(|n| n["check"] == "baseline" && n["reason"].as_str().unwrap().contains("no SOFTWARE hive")), "{ne:?}");
    assert_eq!(o.status.code(), Some(0));
}

/// `--baseline` and `--from-list` are read through a cap: `/dev/zero` (or any
/// file without line breaks) is refused at once with one line and exit 2,
/// instead of growing memory until the allocator gives up.
#[cfg(unix)]
#[test]
fn baseline_and_list_are_read_through_a_cap() {
    let demo = testdata().join("demo.vhdx");
    let demo = demo.to_str().unwrap();
    let refused = |args: &[&str], stdin: Option<&Path>, want: &str| {
        let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_rdprescue"));
        cmd.args(args);
        if let Some(f) = stdin {
            cmd.stdin(std::fs::File::open(f).unwrap());
        }
        let t = std::time::Instant::now();
        let o = cmd.out().unwrap();
        let err = stderr(&o);
        assert_eq!(o.status.code(), Some(2), "{args:?}: {err}");
        assert!(o.stdout.is_empty(), "{args:?}: wrote records before refusing its input");
        assert_eq!(err.lines().count(), 1, "{args:?}: {err}");
        assert!(err.contains(want), "{args:?}: {err}");
        assert!(t.elapsed().as_secs() < 30, "{args:?}: took {:?}", t.elapsed());
    };
    let zero = Path::new("/dev/zero");
    refused(&["audit", "--baseline", "/dev/zero", demo], None, "baseline /dev/zero: larger than 16 MiB");
    refused(&["audit", "--from-list", "/dev/zero"], None, "image list /dev/zero: line 1 is longer than 4 KiB");
    refused(&["audit", "--from-list", "-"], Some(zero), "image list on standard input: line 1 is longer than 4 KiB");

    let dir = Path::new(env!("CARGO_TARGET_TMPDIR"));
    let long = dir.join("audit-list-long-line.txt");
    std::fs::write(&long, format!("{demo}\n# a comment\n{}\n", "x".repeat(5 << 10))).unwrap();
    refused(&["audit", "--from-list", long.to_str().unwrap()], None, "line 3 is longer than 4 KiB");
    let big = dir.join("audit-baseline-big.toml");
    std::fs::write(&big, format!("# {}\n", "x".repeat(17 << 20))).unwrap();
    refused(&["audit", "--baseline", big.to_str().unwrap(), demo], None, "larger than 16 MiB");

    // At the cap, a line is still a path (here of no image: an error record, not a refusal).
    let at_cap = dir.join("audit-list-at-cap.txt");
    let path = format!("/{}", "y".repeat((4 << 10) - 1));
    std::fs::write(&at_cap, format!("{demo}\r\n\n{path}\n")).unwrap();
    let o = rdp(&["audit", "--format", "jsonl", "--from-list", at_cap.to_str().unwrap()]);
    let recs = jsonl(&stdout(&o));
    assert_eq!(recs.len(), 2, "{}", stderr(&o));
    assert_eq!(recs[0]["image"], demo);
    assert_eq!(recs[1]["image"], path.as_str());
    assert_eq!(recs[1]["status"], "error");
    assert_eq!(o.status.code(), Some(2));
}
