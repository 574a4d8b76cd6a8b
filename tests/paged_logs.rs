//! Hives on an NTFS volume loaded as `inspect` loads them
//! (`machine::load_paged`: the logs looked up first and parsed on a second
//! thread while the primary streams) give what the whole in-memory load
//! (`hive::load`) gives for the same bytes: every dirty hive of
//! ../shared/data/hives (with its logs), on a volume built by mkntfs/ntfscp.
//! When a log and the primary both fail, the error is the one the serial
//! order gives (the primary's stream first, then the logs' lookups, then
//! LOG1's parse, then LOG2's).

mod common;
use common::*;
use rdprescue::fs::FileSystem;
use rdprescue::image::Disk;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::rc::Rc;
use std::sync::Arc;

/// A sparse NTFS volume of `mib` MiB holding `files` (name, bytes) in its
/// root, in that order, written by ntfs-3g's tools.
fn ntfs_volume(dir: &Path, mib: u64, files: &[(String, Vec<u8>)]) -> PathBuf {
    let vol = dir.join("vol.img");
    std::fs::File::create(&vol).unwrap().set_len(mib << 20).unwrap();
    let o = Command::new("mkntfs").args(["-q", "-F", "-Q", "-c", "4096", "-s", "512", "-L", "Windows"]).arg(&vol).out().unwrap();
    assert!(o.status.success(), "mkntfs: {}", stderr(&o));
    let src = dir.join("file");
    for (name, bytes) in files {
        std::fs::write(&src, bytes).unwrap();
        let o = Command::new("ntfscp").arg("-q").arg(&vol).arg(&src).arg(format!("/{name}")).out().unwrap();
        assert!(o.status.success(), "ntfscp {name}: {}", stderr(&o));
    }
    std::fs::remove_file(&src).unwrap();
    vol
}

fn mount(disk: Arc<dyn Disk>) -> Rc<dyn FileSystem> {
    Rc::from(rdprescue::fs::open(disk, 0).unwrap())
}

fn read_opt(p: &Path) -> Option<Vec<u8>> {
    p.exists().then(|| std::fs::read(p).unwrap())
}

/// The dirty hives of ../shared/data/hives: every primary with a log beside
/// it (name, primary, log1 with its extension, log2), and the Windows 10
/// SYSTEM with a damaged LOG2 (its chain ends early).
fn dirty_hives(d: &Path) -> Vec<(String, Vec<u8>, Option<(&'static str, Vec<u8>)>, Option<Vec<u8>>)> {
    let mut cases = Vec::new();
    for p in files_under(d) {
        let (dir, name) = (p.parent().unwrap(), p.file_name().unwrap().to_string_lossy().to_string());
        if name.to_uppercase().contains(".LOG") || name.ends_with(".gz") {
            continue;
        }
        let sib = |ext: &str| read_opt(&dir.join(format!("{name}.{ext}")));
        let log1 = sib("LOG1").map(|l| ("LOG1", l)).or_else(|| sib("LOG").map(|l| ("LOG", l)));
        let log2 = sib("LOG2");
        if log1.is_some() || log2.is_some() {
            cases.push((p.display().to_string(), std::fs::read(&p).unwrap(), log1, log2));
        }
    }
    cases.sort_by(|a, b| a.0.cmp(&b.0));
    let w = d.join("win10-1709-dirty");
    let mut l2 = std::fs::read(w.join("SYSTEM.LOG2")).unwrap();
    l2[0x3000] ^= 0x40;
    cases.push(("win10 SYSTEM, LOG2 byte 0x3000 flipped".into(), std::fs::read(w.join("SYSTEM")).unwrap(), Some(("LOG1", std::fs::read(w.join("SYSTEM.LOG1")).unwrap())), Some(l2)));
    cases
}

#[test]
#[cfg_attr(not(all(shared_data, tool_mkntfs, tool_ntfscp)), ignore = "needs ../shared/data, mkntfs and ntfscp (Linux)")]
fn dirty_hives_on_ntfs_load_as_the_whole_load_does() {
    let d = Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/data/hives");
    assert!(d.is_dir(), "{} is absent", d.display());
    let cases = dirty_hives(&d);
    assert!(cases.len() >= 9, "{} dirty hives", cases.len());
    let mut files = Vec::new();
    for (i, (_, p, l1, l2)) in cases.iter().enumerate() {
        files.push((format!("h{i}"), p.clone()));
        if let Some((ext, l)) = l1 {
            files.push((format!("h{i}.{ext}"), l.clone()));
        }
        if let Some(l) = l2 {
            files.push((format!("h{i}.LOG2"), l.clone()));
        }
    }
    let total: usize = files.iter().map(|f| f.1.len()).sum();
    let tmp = tempfile::tempdir().unwrap();
    let vol = ntfs_volume(tmp.path(), (total as u64 >> 20) + 24, &files);
    let fs = mount(rdprescue::image::open(&vol).unwrap().disk.clone());
    let mut recovered = 0;
    for (i, (what, p, l1, l2)) in cases.into_iter().enumerate() {
        let name = format!("h{i}");
        // The logs have handles the second thread reads through.
        for (ext, l) in [(l1.as_ref().map_or("LOG1", |l| l.0), l1.as_ref().map(|l| &l.1)), ("LOG2", l2.as_ref())] {
            if l.is_some() {
                assert!(fs.open_shared(&format!("{name}.{ext}")).unwrap().is_some(), "{what}: {ext} has no shared handle");
            }
        }
        let whole = rdprescue::hive::load(p, l1.map(|l| l.1), l2);
        match (whole, rdprescue::machine::load_paged(fs.clone(), &name, "HIVE")) {
            (Ok(w), Ok(h)) => {
                assert_eq!(format!("{:?}", h.report), format!("{:?}", w.report), "{what}: another report");
                assert!(h.to_vec().unwrap() == w.bytes, "{what}: other bytes");
                recovered += (w.report.state == rdprescue::hive::HiveState::Recovered) as usize;
            }
            (Err(a), Err(b)) => assert_eq!(a.to_string(), b.to_string(), "{what}"),
            (a, b) => panic!("{what}: whole {:?}, on NTFS {:?}", a.map(|h| h.report.state), b.map(|h| h.report.state)),
        }
    }
    assert!(recovered >= 4, "{recovered} recovered");
}

/// A disk whose reads fail where they touch one of `bad` (start, length,
/// what is there).
struct Failing {
    inner: Arc<dyn Disk>,
    bad: Vec<(u64, u64, &'static str)>,
}

impl Disk for Failing {
    fn read_at(&self, offset: u64, buf: &mut [u8]) -> rdprescue::Result<()> {
        let end = offset + buf.len() as u64;
        if let Some((at, _, what)) = self.bad.iter().find(|&&(at, len, _)| offset < at + len && at < end) {
            return Err(rdprescue::Error::corrupt(rdprescue::error::Layer::Raw, *at, format!("{what} unreadable")));
        }
        self.inner.read_at(offset, buf)
    }
    fn len(&self) -> u64 {
        self.inner.len()
    }
    fn sector_size(&self) -> u32 {
        self.inner.sector_size()
    }
}

/// Where `head` starts on volume `vol`, at a 4 KiB boundary (the only place).
fn find(vol: &[u8], head: &[u8]) -> u64 {
    let at: Vec<usize> = (0..vol.len() - head.len()).step_by(4096).filter(|&o| &vol[o..o + head.len()] == head).collect();
    assert_eq!(at.len(), 1, "{} places", at.len());
    at[0] as u64
}

#[test]
#[cfg_attr(not(all(shared_data, tool_mkntfs, tool_ntfscp)), ignore = "needs ../shared/data, mkntfs and ntfscp (Linux)")]
fn a_failing_log_and_a_failing_primary_give_the_serial_error() {
    let d = Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/data/hives/yarp/NewDirtyHive1");
    let (p, l1, l2) = (std::fs::read(d.join("NewDirtyHive")).unwrap(), std::fs::read(d.join("NewDirtyHive.LOG1")).unwrap(), std::fs::read(d.join("NewDirtyHive.LOG2")).unwrap());
    // Fillers keep each file's clusters out of the others' 64 KiB
    // file-system cache chunks.
    let pad = || vec![0x55u8; 256 << 10];
    let files = [("pad0".to_string(), pad()), ("h".into(), p.clone()), ("pad1".into(), pad()), ("h.LOG1".into(), l1.clone()), ("pad2".into(), pad()), ("h.LOG2".into(), l2.clone()), ("pad3".into(), pad())];
    let tmp = tempfile::tempdir().unwrap();
    let vol = std::fs::read(ntfs_volume(tmp.path(), 12, &files)).unwrap();
    let (pa, l1a, l2a) = (find(&vol, &p[..4096]), find(&vol, &l1[..512]), find(&vol, &l2[..512]));
    // The primary's middle; each log past its base block.
    let primary = (pa + (p.len() as u64 / 2 & !4095), 4096, "primary");
    let log1 = (l1a + 512, l1.len() as u64 - 512, "LOG1");
    let log2 = (l2a + 512, l2.len() as u64 - 512, "LOG2");
    // LOG1's MFT record with a broken update sequence (its lookup fails).
    let name = |n: &str| n.encode_utf16().flat_map(u16::to_le_bytes).collect::<Vec<u8>>();
    let rec = (0..vol.len()).step_by(1024).find(|&o| {
        let r = &vol[o..o + 1024];
        &r[..4] == b"FILE" && r.windows(12).any(|w| w == name("h.LOG1")) && !r.windows(12).any(|w| w == name("h.LOG2"))
    });
    let rec = rec.expect("LOG1's MFT record");
    let mut broken = vol.clone();
    broken[rec + 510] ^= 0xff;
    let load = |vol: &Vec<u8>, bad: Vec<(u64, u64, &'static str)>| -> String {
        let inner = rdprescue::image::open_source(rdprescue::image::MemSource::arc("v.img", vol.clone())).unwrap().disk;
        let fs = mount(Arc::new(Failing { inner, bad }));
        match rdprescue::machine::load_paged(fs, "h", "HIVE") {
            Ok(h) => format!("ok {:?}", h.report.state),
            Err(e) => e.to_string(),
        }
    };
    // Each failure alone: the serial path's error (self-checks of the setup).
    assert_eq!(load(&vol, vec![]), "ok Recovered");
    assert!(load(&vol, vec![primary]).contains("primary unreadable"));
    assert!(load(&vol, vec![log1]).contains("LOG1 unreadable"));
    assert!(load(&vol, vec![log2]).contains("LOG2 unreadable"));
    let lookup = load(&broken, vec![]);
    assert!(!lookup.starts_with("ok") && !lookup.contains("unreadable"), "{lookup}");
    // Together: the primary's stream, then LOG1's lookup, then LOG1's parse.
    assert!(load(&vol, vec![log1, log2, primary]).contains("primary unreadable"));
    assert!(load(&broken, vec![log2, primary]).contains("primary unreadable"));
    assert_eq!(load(&broken, vec![log2]), lookup);
    assert!(load(&vol, vec![log2, log1]).contains("LOG1 unreadable"));
}
