//! `rdprescue disks` and disks as inputs, on real Linux loop devices (we
//! attach them with `losetup -f --show`; each test detaches its own, also
//! when it fails): one loop device holding a Windows scenario image and one
//! not; a 4Kn loop device (4096-byte logical sectors, GPT in 4 KiB LBAs);
//! bad input (no such disk, not root): one-line errors naming the device,
//! exit 2, nothing written.
//!
//! Loop devices need Linux, root and losetup: elsewhere those tests are
//! ignored (not Linux) or print SKIP (no root or no losetup).

mod common;

use common::*;
use serde_json::Value as J;
use std::path::{Path, PathBuf};
use std::process::Command;

/// Why loop devices cannot be used here, if they cannot.
fn loop_unavailable() -> Option<String> {
    let root = Command::new("id").arg("-u").out().is_ok_and(|o| String::from_utf8_lossy(&o.stdout).trim() == "0");
    let missing: Vec<&str> = ["losetup"].into_iter().filter(|t| !have(t)).collect();
    (!root || !missing.is_empty()).then(|| format!("loop devices need root and losetup (root: {root}, missing: {missing:?})"))
}

/// Print a visible SKIP for `test` and say whether it must stop.
fn skip(test: &str) -> bool {
    match loop_unavailable() {
        Some(why) => {
            eprintln!("SKIP: {test}: {why}");
            println!("SKIP: {test}: {why}");
            true
        }
        None => false,
    }
}

/// An attached loop device, detached on drop (also when the test fails).
struct Loop {
    dev: String,
}

impl Loop {
    fn attach(file: &Path, extra: &[&str]) -> Loop {
        let o = Command::new("losetup").args(["-f", "--show"]).args(extra).arg(file).out().unwrap();
        assert!(o.status.success(), "losetup {extra:?} {}: {}", file.display(), stderr(&o));
        let dev = stdout(&o).trim().to_string();
        assert!(dev.starts_with("/dev/loop"), "{dev}");
        Loop { dev }
    }
    fn path(&self) -> &Path {
        Path::new(&self.dev)
    }
}

impl Drop for Loop {
    fn drop(&mut self) {
        let _ = Command::new("losetup").args(["-d", &self.dev]).status();
    }
}

/// A raw image holding Windows: the raw Gen1 scenario `win7-healthy-gen1`
/// when the scenario images can be built here, else the committed fixture
/// (with a notice). Returned with a name for messages.
fn windows_raw(dir: &Path) -> PathBuf {
    let can_build = Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/data").is_dir() && SCENARIO_TOOLS.iter().all(|t| have(t));
    if can_build {
        if let Some((_, all)) = build_scenarios("disks") {
            let sc = all.iter().find(|s| s["name"] == "win7-healthy-gen1").expect("scenario win7-healthy-gen1");
            assert_eq!(sc["format"], "raw");
            // A copy: the loop device must not pin the shared scenario file.
            let to = dir.join("win7-healthy-gen1.raw");
            std::fs::copy(sc["image"].as_str().unwrap(), &to).unwrap();
            return to;
        }
    }
    eprintln!("NOTICE: the scenario images cannot be built here; the Windows loop device holds the fixture gen1-mbr.raw");
    gunzip(&testdata().join("images/gen1-mbr.raw.gz"), dir)
}

fn disks_json() -> J {
    let o = rdp(&["disks", "--json"]);
    assert_eq!(o.status.code(), Some(0), "disks --json: {}", stderr(&o));
    serde_json::from_slice(&o.stdout).unwrap_or_else(|e| panic!("disks --json: {e}: {}", stdout(&o)))
}

fn row<'a>(doc: &'a J, dev: &str) -> &'a J {
    doc["disks"].as_array().unwrap().iter().find(|d| d["path"] == dev).unwrap_or_else(|| panic!("{dev} not listed: {doc:#}"))
}

#[test]
#[cfg_attr(not(all(target_os = "linux", root, tool_losetup)), ignore = "needs Linux loop devices (root, losetup)")]
fn disks_lists_loop_devices_and_names_the_windows_one() {
    if skip("disks_lists_loop_devices_and_names_the_windows_one") {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let win = windows_raw(tmp.path());
    let other = gunzip(&testdata().join("images/mbr-extended.raw.gz"), tmp.path());
    let (win_sum, other_sum) = (sha256_file(&win), sha256_file(&other));
    // What inspect reads from the image file itself: the oracle for the row.
    let o = rdp(&["inspect", "--json", win.to_str().unwrap()]);
    let expect: J = serde_json::from_slice(&o.stdout).unwrap();
    let expect = &expect["windows"];
    assert!(expect["product_name"].is_string() && expect["build"].is_string() && expect["computer_name"].is_string(), "{expect}");

    let lw = Loop::attach(&win, &["-r"]);
    let lo = Loop::attach(&other, &["-r"]);
    let doc = disks_json();
    let w = row(&doc, &lw.dev);
    assert_eq!(Path::new(w["backing_file"].as_str().unwrap()).canonicalize().unwrap(), win.canonicalize().unwrap());
    assert_eq!(w["size"], std::fs::metadata(&win).unwrap().len());
    assert_eq!(w["sector_size"], 512);
    assert_eq!(w["partition_table"], "mbr");
    assert_eq!(w["system"], false);
    assert!(w["error"].is_null(), "{w}");
    for k in ["product_name", "computer_name", "build"] {
        assert_eq!(w["windows"][k], expect[k], "{k}: {w}");
    }
    assert!(w["windows"]["partition"].as_u64().is_some_and(|p| p >= 1), "{w}");
    let n = row(&doc, &lo.dev);
    assert!(n["windows"].is_null() && n["error"].is_null(), "{n}");
    assert_eq!(n["partition_table"], "mbr");
    assert_eq!(n["size"], std::fs::metadata(&other).unwrap().len());
    let broken: Vec<&str> = doc["likely_broken"].as_array().unwrap().iter().map(|p| p.as_str().unwrap()).collect();
    assert!(broken.contains(&lw.dev.as_str()) && !broken.contains(&lo.dev.as_str()), "{broken:?}");
    // Loop devices without a backing file are not listed.
    for d in doc["disks"].as_array().unwrap() {
        let p = d["path"].as_str().unwrap();
        if p.starts_with("/dev/loop") {
            assert!(d["backing_file"].is_string(), "{d}");
        }
    }

    // The text form: one row per disk, the Windows facts, the hint.
    let o = rdp(&["disks"]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let text = stdout(&o);
    let line = text.lines().find(|l| l.starts_with(&format!("{} ", lw.dev))).unwrap_or_else(|| panic!("{text}"));
    for want in [expect["product_name"].as_str().unwrap(), expect["build"].as_str().unwrap(), expect["computer_name"].as_str().unwrap(), "MBR"] {
        assert!(line.contains(want), "{want:?} not in {line:?}");
    }
    let hint = text.lines().find(|l| l.starts_with("hint: ")).unwrap_or_else(|| panic!("no hint: {text}"));
    assert!(hint.contains(&lw.dev) && !hint.contains(&format!("{} ", lo.dev)) && !hint.contains(&format!("{},", lo.dev)), "{hint}");

    drop((lw, lo));
    assert_eq!((sha256_file(&win), sha256_file(&other)), (win_sum, other_sum), "an input changed");
}

/// The GPT of the Gen2 fixture (512-byte LBAs) in 4 KiB LBAs, for sfdisk.
const GPT_4KN: &str = "label: gpt
label-id: 5F3C2D1E-0B4A-4C8D-9E7F-6A5B4C3D2E10
start=256, size=8704, type=C12A7328-F81F-11D2-BA4B-00A0C93EC93B, uuid=A1E5F0C2-3B4D-4E6F-8A9B-0C1D2E3F4A01, name=\"EFI system partition\"
start=8960, size=512, type=E3C9E316-0B5C-4DB8-817D-F92DF00215AE, uuid=A1E5F0C2-3B4D-4E6F-8A9B-0C1D2E3F4A02, name=\"Microsoft reserved partition\"
start=9472, size=9728, type=EBD0A0A2-B9E5-4433-87C0-68B6B72699C7, uuid=A1E5F0C2-3B4D-4E6F-8A9B-0C1D2E3F4A03, name=\"Basic data partition\"
start=19200, size=1024, type=DE94BBA4-06D1-4D40-A16A-BFD50179D6AC, uuid=A1E5F0C2-3B4D-4E6F-8A9B-0C1D2E3F4A04
";

#[test]
#[cfg_attr(not(all(target_os = "linux", root, tool_losetup, tool_sfdisk)), ignore = "needs Linux loop devices (root, losetup, sfdisk)")]
fn a_4kn_disk_is_read_in_4k_sectors() {
    if skip("a_4kn_disk_is_read_in_4k_sectors") {
        return;
    }
    if !have("sfdisk") {
        eprintln!("SKIP: a_4kn_disk_is_read_in_4k_sectors: sfdisk not installed");
        println!("SKIP: a_4kn_disk_is_read_in_4k_sectors: sfdisk not installed");
        return;
    }
    use rdprescue::image::{FileSource, Source};
    use rdprescue::machine::Machine;
    let tmp = tempfile::tempdir().unwrap();
    let g2 = gunzip(&testdata().join("images/gen2-gpt.raw.gz"), tmp.path());
    let disk = tmp.path().join("4kn.raw");
    std::fs::File::create(&disk).unwrap().set_len(std::fs::metadata(&g2).unwrap().len()).unwrap();
    {
        // A 4Kn disk: the same partitions at the same byte offsets, the GPT
        // written by sfdisk in 4 KiB LBAs on a 4096-byte-sector loop device.
        let rw = Loop::attach(&disk, &["--sector-size", "4096"]);
        let mut c = Command::new("sfdisk").args(["-q", "--no-reread", "--no-tell-kernel", &rw.dev]).stdin(std::process::Stdio::piped()).stdout(std::process::Stdio::piped()).stderr(std::process::Stdio::piped()).start().unwrap();
        use std::io::Write;
        c.stdin.take().unwrap().write_all(GPT_4KN.as_bytes()).unwrap();
        let o = c.wait_with_output().unwrap();
        assert!(o.status.success(), "sfdisk: {}", stderr(&o));
    }
    let src = std::fs::read(&g2).unwrap();
    let mut dst = std::fs::read(&disk).unwrap();
    for (start, size) in [(256usize, 8704usize), (8960, 512), (9472, 9728), (19200, 1024)] {
        let r = start * 4096..(start + size) * 4096;
        dst[r.clone()].copy_from_slice(&src[r]);
    }
    std::fs::write(&disk, &dst).unwrap();
    let sum = sha256_file(&disk);

    let l = Loop::attach(&disk, &["-r", "--sector-size", "4096"]);
    let fsrc = FileSource::open(l.path()).unwrap();
    assert_eq!(fsrc.sector_size(), 4096, "BLKSSZGET");
    let plain = Machine::open_image(&g2).unwrap();
    let m = Machine::open_image(l.path()).unwrap();
    let s = m.survey().unwrap();
    assert_eq!(m.image().unwrap().disk.sector_size(), 4096);
    assert_eq!(s.partition_table.kind, rdprescue::volume::TableKind::Gpt);
    let offsets = |s: &rdprescue::locate::DiskReport| s.partition_table.partitions.iter().map(|p| (p.index, p.offset, p.size)).collect::<Vec<_>>();
    assert_eq!(offsets(s), offsets(plain.survey().unwrap()));
    assert_eq!(s.windows_volumes, plain.survey().unwrap().windows_volumes);
    assert_eq!(s.bcd.as_ref().map(|b| b.partition), plain.survey().unwrap().bcd.as_ref().map(|b| b.partition));
    let (a, b) = (rdprescue::rdp::inspect(&plain), rdprescue::rdp::inspect(&m));
    assert_eq!(serde_json::to_value(&a.windows).unwrap(), serde_json::to_value(&b.windows).unwrap());
    assert_eq!(a.findings.iter().map(|f| f.check.to_string()).collect::<Vec<_>>(), b.findings.iter().map(|f| f.check.to_string()).collect::<Vec<_>>());
    assert!(m.hive(rdprescue::hive::HiveKind::Bcd).is_some(), "BCD read from the 4Kn ESP");
    // The command line too.
    let doc = disks_json();
    let r = row(&doc, &l.dev);
    assert_eq!((r["sector_size"].as_u64(), r["partition_table"].as_str()), (Some(4096), Some("gpt")), "{r}");
    assert!(r["windows"]["product_name"].is_string(), "{r}");
    drop(l);
    assert_eq!(sha256_file(&disk), sum);
}

#[test]
fn no_such_disk_is_one_line_naming_it() {
    let tmp = tempfile::tempdir().unwrap();
    let undo = tmp.path().join("undo.bin");
    for dev in [r"\\.\PhysicalDrive9", "/dev/rdprescue-no-such-disk"] {
        for args in [vec!["disk", dev], vec!["inspect", dev], vec!["fix", dev, "--all", "--in-place", "--undo", undo.to_str().unwrap()]] {
            let o = rdp(&args);
            assert_clean_error(&o, &format!("{args:?}"));
            let e = stderr(&o);
            assert!(e.contains(dev), "{args:?}: the device is not named: {e}");
            assert!(e.contains("rdprescue disks") || e.contains("Windows device name"), "{args:?}: no advice: {e}");
        }
    }
    assert!(!undo.exists());
    assert_eq!(std::fs::read_dir(tmp.path()).unwrap().count(), 0, "something was written");
}

#[test]
#[cfg_attr(not(all(target_os = "linux", root, tool_losetup, tool_setpriv)), ignore = "needs Linux loop devices (root, losetup, setpriv)")]
fn a_disk_the_user_may_not_open_says_run_as_root() {
    if skip("a_disk_the_user_may_not_open_says_run_as_root") {
        return;
    }
    if !have("setpriv") {
        eprintln!("SKIP: a_disk_the_user_may_not_open_says_run_as_root: setpriv not installed");
        println!("SKIP: a_disk_the_user_may_not_open_says_run_as_root: setpriv not installed");
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    // A directory the unprivileged user may write to, so that only the disk refuses.
    let out = tmp.path().join("out");
    std::fs::create_dir(&out).unwrap();
    Command::new("chmod").args(["0777", tmp.path().to_str().unwrap(), out.to_str().unwrap()]).status().unwrap();
    let img = gunzip(&testdata().join("images/gen1-mbr.raw.gz"), tmp.path());
    let sum = sha256_file(&img);
    // Read-write: the kernel would take a write from anyone allowed to open it.
    let l = Loop::attach(&img, &[]);
    let undo = out.join("undo.bin");
    let as_nobody = |args: &[&str]| Command::new("setpriv").args(["--reuid=65534", "--regid=65534", "--clear-groups", env!("CARGO_BIN_EXE_rdprescue")]).args(args).out().unwrap();
    for args in [vec!["disk", &l.dev], vec!["inspect", &l.dev], vec!["fix", &l.dev, "--all", "--in-place", "--undo", undo.to_str().unwrap()]] {
        let o = as_nobody(&args);
        assert_clean_error(&o, &format!("{args:?} as nobody"));
        let e = stderr(&o);
        assert!(e.contains(&l.dev) && e.contains("run rdprescue as root"), "{args:?}: {e}");
    }
    assert!(!undo.exists());
    assert_eq!(std::fs::read_dir(&out).unwrap().count(), 0, "something was written");
    drop(l);
    assert_eq!(sha256_file(&img), sum, "the disk changed");
}

/// The rows and the hint from candidates that are image files (so it runs
/// anywhere): a disk that cannot be read gets its error in its row and the
/// list goes on; the system disk holding Windows is not the likely broken one.
#[test]
fn every_candidate_gets_a_row_and_errors_stay_in_theirs() {
    use rdprescue::disks::{report, Candidate};
    let tmp = tempfile::tempdir().unwrap();
    let win = gunzip(&testdata().join("images/gen1-mbr.raw.gz"), tmp.path());
    let gpt = gunzip(&testdata().join("images/gen2-gpt.raw.gz"), tmp.path());
    let other = gunzip(&testdata().join("images/mbr-extended.raw.gz"), tmp.path());
    let c = |p: &Path, system: bool, error: Option<&str>| Candidate { path: p.to_path_buf(), backing_file: None, model: None, system, error: error.map(str::to_string) };
    let missing = tmp.path().join("gone.raw");
    let list = report(&[c(&gpt, true, None), c(&missing, false, None), c(&win, false, None), c(&other, false, Some("cannot open it: denied")), c(&other, false, None)]);
    let rows = &list.disks;
    assert_eq!(rows.len(), 5);
    // The system disk holds Windows too, but is not named.
    assert!(rows[0].system && rows[0].windows.is_some());
    assert_eq!(list.likely_broken, std::slice::from_ref(&win));
    assert!(list.system_disk_known);
    // The missing one: an error naming it, nothing else.
    let e = rows[1].error.as_deref().unwrap();
    assert!(e.contains("gone.raw") && !e.contains('\n'), "{e}");
    assert!(rows[1].size.is_none() && rows[1].windows.is_none());
    // The Windows one, as inspect sees it.
    let w = rows[2].windows.as_ref().unwrap();
    let o = rdp(&["inspect", "--json", win.to_str().unwrap()]);
    let expect: J = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(w.product_name.as_deref(), expect["windows"]["product_name"].as_str());
    assert_eq!(w.build.as_deref(), expect["windows"]["build"].as_str());
    assert_eq!(w.computer_name.as_deref(), expect["windows"]["computer_name"].as_str());
    assert_eq!(Some(w.partition as u64), expect["image"]["windows_volume"].as_u64());
    assert!(w.error.is_none());
    assert_eq!(rows[2].partition_table, Some(rdprescue::volume::TableKind::Mbr));
    assert_eq!(rows[0].partition_table, Some(rdprescue::volume::TableKind::Gpt));
    // An enumeration error is kept as it is; the same disk readable is read.
    assert_eq!(rows[3].error.as_deref(), Some("cannot open it: denied"));
    assert!(rows[4].error.is_none() && rows[4].windows.is_none() && rows[4].size == Some(std::fs::metadata(&other).unwrap().len()));
    // Without a known system disk, every Windows disk is a candidate.
    let list = report(&[c(&gpt, false, None), c(&win, false, None)]);
    assert_eq!(list.likely_broken.len(), 2);
    assert!(!list.system_disk_known);
}
