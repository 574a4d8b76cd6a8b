//! Disks as sources (issue 12): the whole read path (container, partition
//! table, file systems, hives, checks) through a device that rejects
//! unaligned reads, at 512 and 4096 bytes; and a disk that vanishes in the
//! middle of reading: one-line errors naming the device, nothing written.
//! (Real loop devices, 4Kn included, are in tests/disks.rs.)

mod common;

use common::*;
use rdprescue::error::Error;
use rdprescue::image::{self, FileSource, Source};
use rdprescue::machine::Machine;
use rdprescue::repair::{self, Destination};
use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering;
use std::sync::Arc;

fn fixture(name: &str, dir: &Path) -> PathBuf {
    gunzip(&testdata().join("images").join(format!("{name}.gz")), dir)
}

/// What a machine shows: the survey, the OS facts, the findings, each
/// machine hive's bytes.
fn facts(m: &Machine) -> serde_json::Value {
    let i = rdprescue::rdp::inspect(m);
    let hives: Vec<String> = rdprescue::hive::HiveKind::ALL.iter().map(|k| m.hive(*k).map_or("-".into(), |h| sha256(h.bytes().unwrap()))).collect();
    serde_json::json!({
        "survey": serde_json::to_value(m.survey().unwrap()).unwrap(),
        "windows": serde_json::to_value(&i.windows).unwrap(),
        "findings": i.findings.iter().map(|f| f.check.to_string()).collect::<Vec<_>>(),
        "hives": hives,
    })
}

#[test]
fn the_whole_read_path_works_on_a_device_that_rejects_unaligned_reads() {
    let tmp = tempfile::tempdir().unwrap();
    for name in ["gen1-mbr.raw", "gen2-gpt.raw", "mbr-extended.raw"] {
        let path = fixture(name, tmp.path());
        let plain = facts(&Machine::open_image(&path).unwrap());
        for align in [512, 4096] {
            let dev = Arc::new(StrictDevice::named(FileSource::open_arc(&path).unwrap(), name, align));
            // Unaligned reads are really refused by the device itself.
            assert!(dev.read_at(1, &mut [0u8; 3]).is_err());
            let m = Machine::from_image(&path, image::open_source(dev.clone()).unwrap()).unwrap();
            let got = facts(&m);
            // The container reports the source's path; the rest is identical.
            assert_eq!(got["windows"], plain["windows"], "{name} at {align}");
            assert_eq!(got["findings"], plain["findings"], "{name} at {align}");
            assert_eq!(got["hives"], plain["hives"], "{name} at {align}");
            assert_eq!(got["survey"]["volumes"], plain["survey"]["volumes"], "{name} at {align}");
            assert_eq!(got["survey"]["partition_table"], plain["survey"]["partition_table"], "{name} at {align}");
            assert_eq!(dev.stats.rejected.load(Ordering::Relaxed), 1, "{name} at {align}: an unaligned read reached the device");
            assert!(dev.stats.calls.load(Ordering::Relaxed) > 10);
            // Every file the checks need was read: the Windows hives are there.
            if name != "mbr-extended.raw" {
                assert_ne!(got["hives"][0], "-", "{name}: SYSTEM not read");
            }
        }
    }
}

/// `gen2-gpt.raw` (GPT in 512-byte LBAs) as a 4Kn disk: the same partitions
/// at the same byte offsets, the protective MBR and the GPT rewritten in
/// 4096-byte LBAs (primary and backup, checksums recomputed).
fn to_4kn(raw: &[u8]) -> Vec<u8> {
    const S: usize = 4096;
    let crc = crc::Crc::<u32>::new(&crc::CRC_32_ISO_HDLC);
    let le32 = |b: &[u8], o: usize| u32::from_le_bytes(b[o..o + 4].try_into().unwrap());
    let le64 = |b: &[u8], o: usize| u64::from_le_bytes(b[o..o + 8].try_into().unwrap());
    let old = &raw[512..1024];
    assert_eq!(&old[..8], b"EFI PART");
    let (n, esz) = (le32(old, 80) as usize, le32(old, 84) as usize);
    let at = le64(old, 72) as usize * 512;
    let mut entries = raw[at..at + n * esz].to_vec();
    for e in entries.chunks_mut(esz) {
        for f in [32, 40] {
            let lba = le64(e, f);
            if lba != 0 {
                assert_eq!(lba % 8, if f == 32 { 0 } else { 7 }, "partition not 4 KiB aligned");
                e[f..f + 8].copy_from_slice(&(lba / 8).to_le_bytes());
            }
        }
    }
    let mut d = raw.to_vec();
    let last = (d.len() / S - 1) as u64;
    let entry_lbas = (n * esz).div_ceil(S) as u64;
    // Clear the old GPT structures (512-byte LBAs 1..34 and the backup).
    d[512..34 * 512].fill(0);
    let tail = d.len() - 33 * 512;
    d[tail..].fill(0);
    // The protective MBR's one partition covers the disk in 4 KiB sectors.
    d[446 + 8..446 + 12].copy_from_slice(&1u32.to_le_bytes());
    d[446 + 12..446 + 16].copy_from_slice(&u32::try_from(last).unwrap().to_le_bytes());
    let header = |mine: u64, other: u64, table: u64| {
        let mut h = vec![0u8; S];
        h[..92].copy_from_slice(&old[..92]);
        h[16..20].fill(0);
        h[24..32].copy_from_slice(&mine.to_le_bytes());
        h[32..40].copy_from_slice(&other.to_le_bytes());
        h[40..48].copy_from_slice(&(2 + entry_lbas).to_le_bytes());
        h[48..56].copy_from_slice(&(last - 1 - entry_lbas).to_le_bytes());
        h[72..80].copy_from_slice(&table.to_le_bytes());
        h[88..92].copy_from_slice(&crc.checksum(&entries).to_le_bytes());
        let c = crc.checksum(&h[..92]);
        h[16..20].copy_from_slice(&c.to_le_bytes());
        h
    };
    let put = |d: &mut Vec<u8>, lba: u64, b: &[u8]| d[lba as usize * S..lba as usize * S + b.len()].copy_from_slice(b);
    put(&mut d, 1, &header(1, last, 2));
    put(&mut d, 2, &entries);
    put(&mut d, last - entry_lbas, &entries);
    put(&mut d, last, &header(last, 1, last - entry_lbas));
    d
}

#[test]
fn a_4kn_device_that_takes_only_whole_4k_sectors_reads_like_the_512_byte_original() {
    let tmp = tempfile::tempdir().unwrap();
    let path = fixture("gen2-gpt.raw", tmp.path());
    let plain = facts(&Machine::open_image(&path).unwrap());
    let dir = image::MemDir::new().with_sector_size(4096);
    dir.insert("4kn.raw", to_4kn(&std::fs::read(&path).unwrap()));
    let dev = Arc::new(StrictDevice::named(Arc::new(dir.open("4kn.raw").unwrap()), "4kn.raw", 4096));
    assert_eq!(dev.sector_size(), 4096);
    let m = Machine::from_image(Path::new("4kn.raw"), image::open_source(dev.clone()).unwrap()).unwrap();
    assert_eq!(m.image().unwrap().disk.sector_size(), 4096);
    let got = facts(&m);
    for k in ["windows", "findings", "hives"] {
        assert_eq!(got[k], plain[k], "{k}");
    }
    assert_eq!(got["survey"]["volumes"], plain["survey"]["volumes"]);
    assert_eq!(got["survey"]["partition_table"], plain["survey"]["partition_table"]);
    assert_eq!(got["survey"]["bcd"], plain["survey"]["bcd"]);
    assert_ne!(got["hives"][4], "-", "BCD read from the 4Kn ESP");
    assert_eq!(dev.stats.rejected.load(Ordering::Relaxed), 0, "an unaligned read reached the device");
    // Read as a 512-byte-sector disk, the same bytes have no usable GPT at
    // LBA 1: the sector size really decides.
    let dir512 = image::MemDir::new();
    dir512.insert("4kn.raw", to_4kn(&std::fs::read(&path).unwrap()));
    let m512 = Machine::from_image(Path::new("4kn.raw"), image::open_source(Arc::new(dir512.open("4kn.raw").unwrap())).unwrap());
    assert!(m512.map_or(true, |m| m.survey().unwrap().windows_volumes.is_empty()), "a 4Kn GPT read in 512-byte sectors found Windows");
}

/// The one-line error of a disk that went away: names the device, says it.
fn assert_vanished(e: &Error, name: &str, what: &str) {
    let m = e.to_string();
    assert!(m.contains(name), "{what}: the device is not named: {m}");
    assert!(m.contains("went away"), "{what}: does not say the disk went away: {m}");
    assert!(!m.contains('\n'), "{what}: not one line: {m}");
}

#[test]
fn a_disk_that_vanishes_mid_read_gives_one_line_naming_it() {
    let tmp = tempfile::tempdir().unwrap();
    let path = fixture("gen2-gpt.raw", tmp.path());
    let name = r"\\.\PhysicalDrive3";
    // How many reads a full inspection takes.
    let probe = Arc::new(StrictDevice::named(FileSource::open_arc(&path).unwrap(), name, 512));
    let m = Machine::from_image(&path, image::open_source(probe.clone()).unwrap()).unwrap();
    let _ = facts(&m);
    let total = probe.stats.calls.load(Ordering::Relaxed);
    assert!(total > 20, "{total}");
    let mut at_open = 0;
    let mut later = 0;
    for after in (0..total).step_by((total / 40).max(1) as usize).chain([total - 1]) {
        let mut dev = StrictDevice::named(FileSource::open_arc(&path).unwrap(), name, 512);
        dev.after = after;
        let opened = image::open_source(Arc::new(dev)).and_then(|img| Machine::from_image(&path, img));
        match opened {
            Err(e) => {
                at_open += 1;
                assert_vanished(&e, name, &format!("open, after {after} reads"));
            }
            Ok(m) => {
                // A hive read that fails keeps its error, never a panic or a
                // wrong answer; the error names the device.
                let errs: Vec<String> = rdprescue::hive::HiveKind::ALL.iter().filter_map(|k| m.hive_result(*k).err().map(|e| e.to_string())).filter(|e| e.contains("went away")).collect();
                if !errs.is_empty() {
                    later += 1;
                }
                for e in errs {
                    assert!(e.contains(name) && !e.contains('\n'), "{e}");
                }
            }
        }
    }
    assert!(at_open > 0 && later > 0, "the vanishing points covered opening ({at_open}) and hive reads ({later})");
}

#[test]
fn a_disk_that_vanishes_while_a_fix_is_written_leaves_nothing_behind() {
    let tmp = tempfile::tempdir().unwrap();
    let path = fixture("gen1-mbr.raw", tmp.path());
    let before = sha256_file(&path);
    let open = || {
        let dev = Arc::new(StrictDevice::named(FileSource::open_arc(&path).unwrap(), r"\\.\PhysicalDrive4", 512));
        let vanish = dev.vanish.clone();
        (Machine::from_image(&path, image::open_source(dev).unwrap()).unwrap(), vanish)
    };
    let (m, vanish) = open();
    let edits: Vec<_> = rdprescue::rdp::inspect(&m).findings.into_iter().flat_map(|f| f.actions).collect();
    assert!(!edits.is_empty(), "the fixture has findings with fixes");
    let plan = repair::plan(&m, &edits).unwrap();
    assert!(!plan.edits.is_empty());
    // A full copy: the disk goes away before the copy reads it.
    vanish.store(true, Ordering::Relaxed);
    let out = tmp.path().join("fixed.raw");
    let e = repair::commit(&m, &plan, Destination::Copy { path: &out, format: None }, &mut |_, _| {}).unwrap_err();
    assert_vanished(&e, r"\\.\PhysicalDrive4", "full copy");
    // In place: the original bytes cannot be recorded, so nothing is written,
    // not even the undo file.
    let (m, vanish) = open();
    let plan = repair::plan(&m, &edits).unwrap();
    vanish.store(true, Ordering::Relaxed);
    let undo = tmp.path().join("undo.bin");
    let e = repair::commit(&m, &plan, Destination::InPlace { undo: &undo }, &mut |_, _| {}).unwrap_err();
    assert_vanished(&e, r"\\.\PhysicalDrive4", "in place");
    assert_eq!(sha256_file(&path), before, "the disk was written");
    let left: Vec<String> = std::fs::read_dir(tmp.path()).unwrap().map(|e| e.unwrap().file_name().to_string_lossy().into_owned()).collect();
    assert_eq!(left, ["gen1-mbr.raw"], "outputs or temporaries left behind");
}
