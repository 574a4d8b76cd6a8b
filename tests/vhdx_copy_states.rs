//! The BAT states of a full VHDX copy (`image::write::full_copy`) of a
//! dynamic VHDX whose blocks are all NOT_PRESENT (`qemu-img create`, its
//! BAT then cleared): a patch
//! into holes allocates exactly the blocks that end up non-zero, FULLY_PRESENT;
//! a block patched with zeros that the input never had stays NOT_PRESENT (the
//! writer's rule: ZERO only where the input said ZERO or had the block
//! allocated), and so does every untouched block. The content is checked with
//! qemu-img (independent reader) and ours; the BAT is read from the file by
//! hand (MS-VHDX region table at 192 KiB).

mod common;
use common::*;
use rdprescue::image::{self, write, write::Patch, Format};
use std::path::Path;
use std::process::Command;

const MIB: u64 = 1 << 20;
const BAT_GUID: uuid::Uuid = uuid::uuid!("2DC27766-F623-4200-9D64-115E9BFD4A08");

fn le_u32(b: &[u8], o: usize) -> u32 {
    u32::from_le_bytes(b[o..o + 4].try_into().unwrap())
}
fn le_u64(b: &[u8], o: usize) -> u64 {
    u64::from_le_bytes(b[o..o + 8].try_into().unwrap())
}

/// File offset of the BAT of the VHDX bytes `f`.
fn bat_offset(f: &[u8]) -> usize {
    let rt = 192 << 10;
    assert_eq!(&f[rt..rt + 4], b"regi");
    let e = (0..le_u32(&f, rt + 8) as usize)
        .map(|i| rt + 16 + 32 * i)
        .find(|e| uuid::Uuid::from_bytes_le(f[*e..*e + 16].try_into().unwrap()) == BAT_GUID)
        .expect("no BAT region");
    le_u64(f, e + 16) as usize
}

/// The first `n` BAT entries' states (low 3 bits) of the VHDX at `p`.
fn bat_states(p: &Path, n: usize) -> Vec<u64> {
    let f = std::fs::read(p).unwrap();
    let bat = bat_offset(&f);
    (0..n).map(|i| le_u64(&f, bat + 8 * i) & 7).collect()
}

fn run_ok(args: &[&str]) -> Vec<u8> {
    let o = Command::new("qemu-img").args(args).out().unwrap();
    assert!(o.status.success(), "qemu-img {args:?}: {}", String::from_utf8_lossy(&o.stderr));
    o.stdout
}

#[test]
#[cfg_attr(not(tool_qemu_img), ignore = "needs qemu-img")]
fn patch_into_holes_allocates_only_non_zero_blocks() {
    require("qemu-img");
    let dir = tempfile::tempdir().unwrap();
    let (bs, size) = (MIB, 8 * MIB);
    let blocks = (size / bs) as usize;
    let src = dir.path().join("src.vhdx");
    run_ok(&["create", "-q", "-f", "vhdx", "-o", "subformat=dynamic,block_size=1M", src.to_str().unwrap(), "8M"]);
    // qemu-img marks every block ZERO; make them NOT_PRESENT (0), which also
    // reads as zero in a disk without a parent. The BAT has no checksum.
    assert_eq!(bat_states(&src, blocks), vec![2; blocks], "qemu-img create marks every block ZERO");
    let mut f = std::fs::read(&src).unwrap();
    let bat = bat_offset(&f);
    f[bat..bat + 8 * blocks].fill(0);
    std::fs::write(&src, &f).unwrap();
    assert_eq!(bat_states(&src, blocks), vec![0; blocks]);
    let before = sha256_file(&src);

    let data = |n: usize, seed: u8| (0..n).map(|i| (i as u8).wrapping_mul(31).wrapping_add(seed) | 1).collect::<Vec<u8>>();
    let mut patch = Patch::default();
    patch.write(0, &data(100, 1)); // the very first bytes, into a hole
    patch.write(2 * bs + 512, &[0; 4096]); // zeros into a hole: nothing to allocate
    patch.write(5 * bs + 7, &data(1000, 2)); // data into a hole
    let mut expected = vec![0u8; size as usize];
    for (o, d) in patch.ranges() {
        expected[o as usize..o as usize + d.len()].copy_from_slice(d);
    }

    let img = image::open(&src).unwrap();
    assert_eq!(img.info.format, Format::VhdxDynamic);
    let copy = dir.path().join("copy.vhdx");
    let mut f = std::fs::File::create(&copy).unwrap();
    write::full_copy(&img, &patch, &mut f, &mut |_, _| {}).unwrap();
    drop(f);

    // Content: qemu-img and our reader.
    let raw = dir.path().join("copy.raw");
    run_ok(&["convert", "-f", "vhdx", "-O", "raw", copy.to_str().unwrap(), raw.to_str().unwrap()]);
    assert!(std::fs::read(&raw).unwrap() == expected, "qemu-img: copy != input + patch");
    let out = image::open(&copy).unwrap();
    let mut got = vec![0u8; size as usize];
    out.disk.read_at(0, &mut got).unwrap();
    assert!(got == expected, "our reader: copy != input + patch");

    // BAT: blocks 0 and 5 hold data; block 2 (zeros into a hole) and every
    // untouched block are NOT_PRESENT, as in the input.
    let mut want = vec![0u64; blocks];
    want[0] = 6;
    want[5] = 6;
    assert_eq!(bat_states(&copy, blocks), want, "BAT states of the copy (6 FULLY_PRESENT, 2 ZERO, 0 NOT_PRESENT)");
    assert_eq!(out.info.allocated_blocks, Some(2));
    assert_eq!(sha256_file(&src), before, "input unchanged");
}
