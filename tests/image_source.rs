//! Byte sources under the containers (`image::Source`): every container format
//! reads byte-identically through a strict device that rejects unaligned
//! reads (the `AlignedReader` that `open_source` puts in front of it does the
//! aligning), differencing parents are found through the source, and the
//! adapter reads only a bounded amount around each request.

mod common;

use common::*;
use rdprescue::image::write::{diff_child, Patch};
use rdprescue::image::{self, AlignedReader, FileSource, Format, MemSource, Source, MAX_BOUNCE};
use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering;
use std::sync::Arc;

const MIB: u64 = 1 << 20;

fn fixture(name: &str, dir: &Path) -> PathBuf {
    gunzip(&testdata().join("images").join(format!("{name}.gz")), dir)
}

fn new_file(p: &Path) -> std::fs::File {
    std::fs::OpenOptions::new().read(true).write(true).create_new(true).open(p).unwrap()
}

/// A differencing child of `parent` (written by our writer next to it).
fn child_of(parent: &Path, name: &str) -> PathBuf {
    let img = image::open(parent).unwrap();
    let mut patch = Patch::default();
    let mut r = Rng(0x5eed);
    patch.write(3 * 512 + 7, &r.bytes(700));
    patch.write(MIB + 4096, &r.bytes(9000));
    patch.write(img.disk.len() - 5000, &r.bytes(5000));
    let out = parent.with_file_name(name);
    diff_child(&img, &patch, &mut new_file(&out), &out).unwrap();
    out
}

/// The dynamic VHDX fixture with 4096-byte logical (and physical) sectors:
/// the metadata region has no checksum, so two items are patched in place.
fn make_4kn(src: &Path, out: &Path) {
    let mut f = std::fs::read(src).unwrap();
    let le32 = |b: &[u8], o: usize| u32::from_le_bytes(b[o..o + 4].try_into().unwrap());
    let m = (0..f.len() / MIB as usize).map(|i| i * MIB as usize).find(|&o| o > 0 && &f[o..o + 8] == b"metadata").unwrap();
    let mut set = 0;
    for i in 0..u16::from_le_bytes([f[m + 10], f[m + 11]]) as usize {
        let e = m + 32 + 32 * i;
        let id = uuid::Uuid::from_bytes_le(f[e..e + 16].try_into().unwrap());
        if id == uuid::uuid!("8141BF1D-A96F-4709-BA47-F233A8FAAB5F") || id == uuid::uuid!("CDA348C7-445D-4471-9CC9-E9885251C556") {
            let at = m + le32(&f, e + 16) as usize;
            f[at..at + 4].copy_from_slice(&4096u32.to_le_bytes());
            set += 1;
        }
    }
    assert_eq!(set, 2);
    std::fs::write(out, f).unwrap();
}

/// Open `path` normally and through a strict device of alignment `align`;
/// both must give the same container facts and the same bytes, whole and in
/// random unaligned pieces.
fn same_through_strict(path: &Path, format: Format, align: u32) {
    let plain = image::open(path).unwrap();
    assert_eq!(plain.info.format, format, "{}", path.display());
    let strict = StrictDevice::new(FileSource::open_arc(path).unwrap(), align);
    let stats = strict.stats.clone();
    // Unaligned reads are really refused by the device itself.
    let mut b = [0u8; 3];
    assert!(strict.read_at(1, &mut b).is_err());
    let img = image::open_source(Arc::new(strict)).unwrap();
    let what = format!("{} ({:?}, alignment {align})", path.display(), format);
    assert_eq!(serde_json::to_value(&img.info).unwrap(), serde_json::to_value(&plain.info).unwrap(), "{what}");
    let (a, b) = (plain.disk.as_ref(), img.disk.as_ref());
    assert_eq!(a.sector_size(), b.sector_size(), "{what}");
    assert_eq!(disk_sha256(a), disk_sha256(b), "{what}");
    let mut r = Rng(u64::from(align) ^ a.len());
    for _ in 0..300 {
        let n = (r.next() % 20_000) as usize;
        let off = r.next() % (a.len() - n as u64);
        let (mut x, mut y) = (vec![0u8; n], vec![0u8; n]);
        a.read_at(off, &mut x).unwrap();
        b.read_at(off, &mut y).unwrap();
        assert!(x == y, "{what}: {n} bytes at {off:#x}");
    }
    assert_eq!(stats.rejected.load(Ordering::Relaxed), 1, "{what}: the adapter let an unaligned read through");
    assert!(stats.calls.load(Ordering::Relaxed) > 0);
    eprintln!("{what}: {} reads, {} bytes, largest {}", stats.calls.load(Ordering::Relaxed), stats.bytes.load(Ordering::Relaxed), stats.max.load(Ordering::Relaxed));
}

#[test]
fn every_container_reads_the_same_through_a_strict_device() {
    let tmp = tempfile::tempdir().unwrap();
    let t = tmp.path();
    let raw = fixture("gen1-mbr.raw", t);
    let vhd_fixed = fixture("gen1-mbr-fixed.vhd", t);
    let vhd_dyn = fixture("gen1-mbr-dynamic.vhd", t);
    let vhdx_fixed = fixture("gen1-mbr-fixed.vhdx", t);
    let vhdx_dyn = fixture("gen1-mbr-dynamic.vhdx", t);
    let vhdx_4kn = t.join("4kn.vhdx");
    make_4kn(&vhdx_dyn, &vhdx_4kn);
    assert_eq!(image::open(&vhdx_4kn).unwrap().disk.sector_size(), 4096);
    let vhd_diff = child_of(&vhd_dyn, "child.vhd");
    let vhd_diff_fixed = child_of(&vhd_fixed, "child-of-fixed.vhd");
    let vhdx_diff = child_of(&vhdx_dyn, "child.vhdx");
    let vhdx_diff_4kn = child_of(&vhdx_4kn, "child-4kn.vhdx");
    let cases = [
        (&raw, Format::Raw),
        (&vhd_fixed, Format::VhdFixed),
        (&vhd_dyn, Format::VhdDynamic),
        (&vhd_diff, Format::VhdDifferencing),
        (&vhd_diff_fixed, Format::VhdDifferencing),
        (&vhdx_fixed, Format::VhdxFixed),
        (&vhdx_dyn, Format::VhdxDynamic),
        (&vhdx_4kn, Format::VhdxDynamic),
        (&vhdx_diff, Format::VhdxDifferencing),
        (&vhdx_diff_4kn, Format::VhdxDifferencing),
    ];
    for (path, format) in cases {
        for align in [512, 4096] {
            same_through_strict(path, format, align);
        }
    }
    // The 4Kn child really has 4 KiB sectors and a parent found through the source.
    let c = image::open_source(Arc::new(StrictDevice::new(FileSource::open_arc(&vhdx_diff_4kn).unwrap(), 4096))).unwrap();
    assert_eq!(c.info.logical_sector_size, 4096);
    assert_eq!(c.info.parent.as_ref().unwrap().path, vhdx_4kn);
}

/// The bytes of [`counted`]: a pattern, with the boot-sector signature at
/// 510 that makes it a disk for `open_source` (unknown bytes are refused).
fn counted_byte(i: usize) -> u8 {
    match i {
        510 => 0x55,
        511 => 0xAA,
        _ => (i / 4096) as u8 ^ i as u8,
    }
}

/// A source that counts what is read from it, and wants 4 KiB alignment.
fn counted(len: usize) -> (Arc<dyn Source>, Arc<ReadStats>) {
    let data: Vec<u8> = (0..len).map(counted_byte).collect();
    let s = StrictDevice::new(MemSource::arc("counted.img", data), 4096);
    let stats = s.stats.clone();
    (Arc::new(s), stats)
}

#[test]
fn aligned_reader_reads_a_bounded_amount() {
    let len = 40 * MIB as usize;
    let (src, stats) = counted(len);
    let r = AlignedReader::new(src.clone());
    let expect = |off: usize, n: usize| -> Vec<u8> { (off..off + n).map(counted_byte).collect() };
    let reset = || {
        for c in [&stats.calls, &stats.bytes, &stats.max, &stats.rejected] {
            c.store(0, Ordering::Relaxed);
        }
    };
    // One byte: one aligned unit.
    let mut b = [0u8; 1];
    r.read_at(5000, &mut b).unwrap();
    assert_eq!(b.to_vec(), expect(5000, 1));
    assert_eq!((stats.calls.load(Ordering::Relaxed), stats.bytes.load(Ordering::Relaxed)), (1, 4096));
    // Aligned reads go straight through, whatever their size.
    reset();
    let mut big = vec![0u8; 8 * MIB as usize];
    r.read_at(4 * MIB, &mut big).unwrap();
    assert!(big == expect(4 * MIB as usize, 8 * MIB as usize));
    assert_eq!((stats.calls.load(Ordering::Relaxed), stats.bytes.load(Ordering::Relaxed)), (1, 8 * MIB));
    // A large unaligned read: at most one extra unit at each end, in pieces no
    // larger than the bounce buffer.
    for (off, n) in [(1usize, 10 * MIB as usize + 3), (4095, 4098), (12345, 777), (len - 10, 10), (len - 5000, 5000)] {
        reset();
        let mut v = vec![0u8; n];
        r.read_at(off as u64, &mut v).unwrap();
        assert!(v == expect(off, n), "{n} bytes at {off}");
        let read = stats.bytes.load(Ordering::Relaxed);
        assert!(read >= n as u64 && read <= n as u64 + 2 * 4096, "{n} bytes at {off}: read {read}");
        assert!(stats.max.load(Ordering::Relaxed) <= (MAX_BOUNCE + 4096) as u64, "{n} bytes at {off}: one read of {}", stats.max.load(Ordering::Relaxed));
        assert_eq!(stats.rejected.load(Ordering::Relaxed), 0);
    }
    // Past the end: an error, not a short read or a panic.
    let mut v = vec![0u8; 10];
    assert!(r.read_at(len as u64 - 5, &mut v).is_err());
    assert!(r.read_at(u64::MAX - 3, &mut v).is_err());
    assert!(r.read_at(u64::MAX - 20, &mut v).is_err());
    // Through open_source, the raw container sees the same bytes.
    reset();
    let img = image::open_source(src).unwrap();
    let mut v = vec![0u8; 3000];
    img.disk.read_at(7, &mut v).unwrap();
    assert!(v == expect(7, 3000));
    assert_eq!(stats.rejected.load(Ordering::Relaxed), 0);
    assert!(stats.bytes.load(Ordering::Relaxed) <= 3 * 4096 + 2 * 4096, "open + read: {}", stats.bytes.load(Ordering::Relaxed));
}

/// A differencing chain in memory: the parent is found as an in-memory
/// sibling; alone, the child reports its parent missing.
#[test]
fn memory_chain_parents() {
    let tmp = tempfile::tempdir().unwrap();
    let parent = fixture("gen1-mbr-dynamic.vhdx", tmp.path());
    let child = child_of(&parent, "c.vhdx");
    let dir = image::MemDir::new();
    dir.insert("vms/base/gen1-mbr-dynamic.vhdx", std::fs::read(&parent).unwrap());
    dir.insert("vms/base/c.vhdx", std::fs::read(&child).unwrap());
    let img = image::open_source(Arc::new(dir.open("vms/base/c.vhdx").unwrap())).unwrap();
    assert_eq!(img.info.format, Format::VhdxDifferencing);
    assert_eq!(img.info.parent.as_ref().unwrap().path, PathBuf::from("vms/base/gen1-mbr-dynamic.vhdx"));
    assert_eq!(disk_sha256(img.disk.as_ref()), disk_sha256(image::open(&child).unwrap().disk.as_ref()));
    // Without the parent: a missing-parent error naming the in-memory names
    // tried, and never a file of the same name on disk.
    let lone = image::open_source(MemSource::arc("c.vhdx", std::fs::read(&child).unwrap())).unwrap_err();
    assert!(matches!(lone, rdprescue::error::Error::MissingParent { .. }), "{lone:?}");
}
