//! Full copies that read the input file's data extents only (`SEEK_DATA`/
//! `SEEK_HOLE`; a reflink where the file system shares extents) against the
//! copy that reads everything through the container, which every source
//! without a file behind it still takes (the previous implementation, used
//! here as the oracle by opening the same bytes from memory): same bytes,
//! same allocated blocks, and a sparse input stays sparse.

mod common;

use common::{allocated_bytes, Rng};
use rdprescue::image::write::{self, OutFormat, Patch};
use rdprescue::image::{self, Format, Image, MemSource};
use std::fs::File;
use std::path::Path;

const MIB: u64 = 1 << 20;

fn fresh(p: &Path) -> File {
    std::fs::OpenOptions::new().read(true).write(true).create_new(true).open(p).unwrap()
}

fn all(img: &Image) -> Vec<u8> {
    let mut v = vec![0u8; img.disk.len() as usize];
    img.disk.read_at(0, &mut v).unwrap();
    v
}

/// A sparse raw disk of `size` bytes with data at a few places (one stretch
/// of data is written zeros: allocated, but zero).
fn sparse_raw(path: &Path, size: u64, rng: &mut Rng) -> Vec<u8> {
    let mut want = vec![0u8; size as usize];
    let f = fresh(path);
    f.set_len(size).unwrap();
    for (off, n) in [(MIB / 2, 300_000usize), (14 * MIB + 4096, MIB as usize), (size - MIB, MIB as usize)] {
        let b = rng.bytes(n);
        common::write_all_at(&f, &b, off).unwrap();
        want[off as usize..off as usize + n].copy_from_slice(&b);
    }
    common::write_all_at(&f, &vec![0u8; 200_000], 18 * MIB).unwrap();
    f.sync_all().unwrap();
    want
}

fn patch(rng: &mut Rng, size: u64) -> Patch {
    let mut p = Patch::default();
    p.write(MIB / 2 + 1000, &rng.bytes(1536));
    p.write(10 * MIB + 512, &rng.bytes(4096)); // inside a hole
    p.write(size - 512, &rng.bytes(512)); // the last sector
    p
}

fn apply(v: &mut [u8], p: &Patch) {
    for (o, d) in p.ranges() {
        v[o as usize..o as usize + d.len()].copy_from_slice(d);
    }
}

/// The same image, its bytes served from memory: the writers' read path.
fn from_memory(path: &Path) -> Image {
    image::open_source(MemSource::arc(&path.to_string_lossy(), std::fs::read(path).unwrap())).unwrap()
}

#[test]
fn raw_copy_stays_sparse_and_equals_the_read_path() {
    let dir = tempfile::tempdir().unwrap();
    let mut rng = Rng(0x0fa5_7c09);
    let size = 24 * MIB;
    let src = dir.path().join("in.raw");
    let mut want = sparse_raw(&src, size, &mut rng);
    let p = patch(&mut rng, size);
    apply(&mut want, &p);
    let before = common::sha256_file(&src);

    let img = image::open(&src).unwrap();
    let fast = dir.path().join("fast.raw");
    write::full_copy(&img, &p, &mut fresh(&fast), &mut |_, _| {}).unwrap();
    let slow = dir.path().join("slow.raw");
    write::full_copy(&from_memory(&src), &p, &mut fresh(&slow), &mut |_, _| {}).unwrap();
    assert!(std::fs::read(&fast).unwrap() == want, "file-extent copy + patch = input + patch");
    assert!(std::fs::read(&slow).unwrap() == want, "read path = input + patch");
    assert_eq!(common::sha256_file(&src), before, "input unchanged");

    let used = |p: &Path| allocated_bytes(&std::fs::metadata(p).unwrap());
    let (u_in, u_fast) = (used(&src), used(&fast));
    eprintln!("allocated: input {u_in}, extent copy {u_fast}, read path {}", used(&slow));
    #[cfg(unix)]
    {
        // The holes stay holes (3.3 MiB of data plus the patch, not 96 MiB);
        // the patched hole adds at most a block or two.
        assert!(u_fast <= u_in + 64 * 1024, "copy uses {u_fast} bytes, input {u_in}");
        assert!(u_fast < 8 * MIB, "copy uses {u_fast} bytes");
    }
}

/// VHD (dynamic, fixed) and VHDX (dynamic) inputs, made from the raw disk by
/// the conversion writer: the extent-reading full copy reads exactly like the
/// read path's, allocates the same blocks, and stays sparse.
#[test]
fn container_copies_equal_the_read_path() {
    let dir = tempfile::tempdir().unwrap();
    let mut rng = Rng(0x7e57_fa57);
    let size = 24 * MIB;
    let raw = dir.path().join("in.raw");
    let base = sparse_raw(&raw, size, &mut rng);
    let raw_img = image::open(&raw).unwrap();
    for (fmt, ext, expect) in [
        (OutFormat::VhdDynamic, "vhd", Format::VhdDynamic),
        (OutFormat::VhdFixed, "vhd", Format::VhdFixed),
        (OutFormat::VhdxDynamic, "vhdx", Format::VhdxDynamic),
    ] {
        let input = dir.path().join(format!("in-{}.{ext}", fmt.name()));
        write::full_copy_as(&raw_img, &Patch::default(), &mut fresh(&input), Some(fmt), &mut |_, _| {}).unwrap();
        let img = image::open(&input).unwrap();
        assert_eq!(img.info.format, expect);
        assert!(all(&img) == base, "{}: converted input reads as the raw disk", fmt.name());
        let p = patch(&mut rng, size);
        let mut want = base.clone();
        apply(&mut want, &p);
        let before = common::sha256_file(&input);

        let fast = dir.path().join(format!("fast-{}.{ext}", fmt.name()));
        write::full_copy(&img, &p, &mut fresh(&fast), &mut |_, _| {}).unwrap();
        let slow = dir.path().join(format!("slow-{}.{ext}", fmt.name()));
        write::full_copy(&from_memory(&input), &p, &mut fresh(&slow), &mut |_, _| {}).unwrap();
        let (f, s) = (image::open(&fast).unwrap(), image::open(&slow).unwrap());
        assert_eq!((f.info.format, f.info.virtual_size), (s.info.format, s.info.virtual_size), "{}", fmt.name());
        assert_eq!(f.info.allocated_blocks, s.info.allocated_blocks, "{}: same blocks allocated", fmt.name());
        assert!(all(&f) == want, "{}: extent copy = input + patch", fmt.name());
        assert!(all(&s) == want, "{}: read path = input + patch", fmt.name());
        if expect == Format::VhdFixed {
            // A fixed VHD is copied whole: byte for byte the read path's file.
            assert!(std::fs::read(&fast).unwrap() == std::fs::read(&slow).unwrap());
        }
        assert_eq!(common::sha256_file(&input), before, "input unchanged");
        let used = allocated_bytes(&std::fs::metadata(&fast).unwrap());
        eprintln!("{}: copy {} bytes, {used} allocated", fmt.name(), std::fs::metadata(&fast).unwrap().len());
        #[cfg(unix)]
        assert!(used < 16 * MIB, "{}: copy uses {used} bytes", fmt.name());
    }
}
