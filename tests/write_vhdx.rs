//! VHDX writers (`image::write::vhdx`): full copies and differencing children
//! of qemu-made (512- and 4096-byte sector, fixed, dynamic, 127 GiB sparse)
//! and Windows-made VHDX files, checked with our reader, `qemu-img` (check,
//! convert), libvhdi (`vhdiinfo`, and the pyvhdi bindings as an independent
//! reader of a child through its parent), and by parsing the written file.
//!
//! qemu cannot open differencing VHDX at all ("VHDX images with parent not
//! supported", ENOTSUP in `vhdx_parse_metadata`), so the child's independent
//! oracle is libvhdi; qemu-img's answer on the child is printed as a NOTICE.

mod common;
use common::*;
use rdprescue::image::{self, write, write::Patch, Format};
use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::Instant;
use uuid::Uuid;

const MIB: u64 = 1 << 20;
const CRC32C: crc::Crc<u32> = crc::Crc::<u32>::new(&crc::CRC_32_ISCSI);

// ------------------------------------------------------------------ helpers

struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn bytes(&mut self, n: usize) -> Vec<u8> {
        // Never a zero byte, so "non-zero data" is unambiguous.
        (0..n).map(|_| (self.next() % 255) as u8 + 1).collect()
    }
}

fn tmpdir() -> tempfile::TempDir {
    tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR")).unwrap()
}

fn run(prog: &str, args: &[&str]) -> Output {
    Command::new(prog).args(args).out().unwrap_or_else(|e| panic!("{prog}: {e}"))
}

fn ok(prog: &str, args: &[&str]) -> String {
    let o = run(prog, args);
    assert!(o.status.success(), "{prog} {args:?} failed: {}{}", stdout(&o), stderr(&o));
    stdout(&o)
}

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

/// qemu-img and qemu-io are there (the callers are marked ignored without
/// them); always true.
fn have_qemu() -> bool {
    require("qemu-img");
    require("qemu-io");
    true
}

/// `qemu-img check` must pass.
fn qemu_check(p: &Path) {
    let out = ok("qemu-img", &["check", s(p)]);
    eprintln!("qemu-img check {}: {}", p.file_name().unwrap().to_string_lossy(), out.trim());
}

/// The virtual disk as qemu reads it.
fn qemu_raw(p: &Path, dir: &Path) -> Vec<u8> {
    let raw = dir.join("qemu-flat.raw");
    ok("qemu-img", &["convert", "-O", "raw", s(p), s(&raw)]);
    let v = std::fs::read(&raw).unwrap();
    std::fs::remove_file(&raw).unwrap();
    v
}

/// The virtual disk as our reader reads it (small disks).
fn our_raw(p: &Path) -> Vec<u8> {
    let img = image::open(p).unwrap();
    let mut v = vec![0u8; img.disk.len() as usize];
    img.disk.read_at(0, &mut v).unwrap();
    v
}


fn apply(disk: &mut [u8], patch: &Patch) {
    for (o, d) in patch.ranges() {
        disk[o as usize..o as usize + d.len()].copy_from_slice(d);
    }
}

/// Run full_copy into `out`; check the progress callback ends at total.
fn full_copy(input: &Path, patch: &Patch, out: &Path) -> (image::Image, std::time::Duration) {
    let img = image::open(input).unwrap();
    let mut f = File::create(out).unwrap();
    let mut last = (0, 1);
    let mut calls = 0;
    let t = Instant::now();
    write::full_copy(&img, patch, &mut f, &mut |d, total| {
        assert!(d <= total);
        last = (d, total);
        calls += 1;
    })
    .unwrap();
    let took = t.elapsed();
    assert!(calls > 0 && last.0 == last.1, "progress ended at {last:?}");
    (img, took)
}

fn diff_child(input: &Path, patch: &Patch, out: &Path) -> std::time::Duration {
    let img = image::open(input).unwrap();
    let mut f = File::create(out).unwrap();
    let t = Instant::now();
    write::diff_child(&img, patch, &mut f, out).unwrap();
    t.elapsed()
}

fn le_u32(b: &[u8], o: usize) -> u32 {
    u32::from_le_bytes(b[o..o + 4].try_into().unwrap())
}
fn le_u64(b: &[u8], o: usize) -> u64 {
    u64::from_le_bytes(b[o..o + 8].try_into().unwrap())
}

/// Facts read straight from a written file, checking every checksum.
struct Written {
    seqs: [u64; 2],
    data_write_guid: Uuid,
    file_write_guid: Uuid,
    /// (BAT index, entry) of every non-zero BAT entry.
    bat: Vec<(u64, u64)>,
    /// Sector bitmap bits set, over all present bitmap blocks.
    bitmap_bits: u64,
    parent_locator: Vec<(String, String)>,
}

fn inspect_written(p: &Path) -> Written {
    let f = std::fs::read(p).unwrap();
    assert_eq!(&f[0..8], b"vhdxfile");
    let mut seqs = [0; 2];
    let mut guids = Vec::new();
    for (i, h) in [64 << 10, 128 << 10].into_iter().enumerate() {
        let mut b = f[h..h + 4096].to_vec();
        assert_eq!(&b[0..4], b"head");
        let crc = le_u32(&b, 4);
        b[4..8].fill(0);
        assert_eq!(crc, CRC32C.checksum(&b), "header {i} CRC");
        assert_eq!(&b[48..64], &[0; 16], "header {i}: LogGuid must be zero (no pending log)");
        assert_eq!((le_u32(&b, 68), le_u64(&b, 72)), (1 << 20, 1 << 20), "log at 1 MiB, 1 MiB long");
        seqs[i] = le_u64(&b, 8);
        guids.push((Uuid::from_bytes_le(b[16..32].try_into().unwrap()), Uuid::from_bytes_le(b[32..48].try_into().unwrap())));
    }
    assert_eq!(guids[0], guids[1], "both headers carry the same FileWriteGuid and DataWriteGuid");
    let rt = 192 << 10;
    assert_eq!(f[rt..rt + (64 << 10)], f[rt + (64 << 10)..rt + (128 << 10)], "region tables identical");
    let mut b = f[rt..rt + (64 << 10)].to_vec();
    let crc = le_u32(&b, 4);
    b[4..8].fill(0);
    assert_eq!(crc, CRC32C.checksum(&b), "region table CRC");
    let (mut bat_off, mut bat_len, mut meta_off) = (0, 0, 0);
    for i in 0..le_u32(&b, 8) as usize {
        let e = 16 + 32 * i;
        let id = Uuid::from_bytes_le(b[e..e + 16].try_into().unwrap());
        if id == uuid::uuid!("2DC27766-F623-4200-9D64-115E9BFD4A08") {
            (bat_off, bat_len) = (le_u64(&b, e + 16) as usize, le_u32(&b, e + 24) as usize);
        } else {
            meta_off = le_u64(&b, e + 16) as usize;
        }
    }
    let bat: Vec<(u64, u64)> = (0..bat_len / 8).map(|i| (i as u64, le_u64(&f, bat_off + 8 * i))).filter(|(_, e)| *e != 0).collect();
    // Sector bitmaps are the entries that come last in each chunk's group;
    // only differencing files have them, and only they use state 7.
    let mut bitmap_bits = 0;
    let mut parent_locator = Vec::new();
    let m = &f[meta_off..];
    for i in 0..u16::from_le_bytes([m[10], m[11]]) as usize {
        let e = 32 + 32 * i;
        if Uuid::from_bytes_le(m[e..e + 16].try_into().unwrap()) == uuid::uuid!("A8D35F2D-B30B-454D-ABF7-D3D84834AB0C") {
            let it = &m[le_u32(m, e + 16) as usize..][..le_u32(m, e + 20) as usize];
            assert_eq!(Uuid::from_bytes_le(it[0..16].try_into().unwrap()), uuid::uuid!("B04AEFB7-D19E-4A81-B789-25B8E9445913"));
            let u16s = |b: &[u8]| String::from_utf16(&b.chunks(2).map(|c| u16::from_le_bytes([c[0], c[1]])).collect::<Vec<_>>()).unwrap();
            for k in 0..u16::from_le_bytes([it[18], it[19]]) as usize {
                let x = 20 + 12 * k;
                let (ko, vo) = (le_u32(it, x) as usize, le_u32(it, x + 4) as usize);
                let (kl, vl) = (u16::from_le_bytes([it[x + 8], it[x + 9]]) as usize, u16::from_le_bytes([it[x + 10], it[x + 11]]) as usize);
                parent_locator.push((u16s(&it[ko..ko + kl]), u16s(&it[vo..vo + vl])));
            }
        }
    }
    if !parent_locator.is_empty() {
        // Differencing: entry chunk_ratio of each group of chunk_ratio + 1 is the bitmap.
        let fp = (0..u16::from_le_bytes([m[10], m[11]]) as usize)
            .map(|i| 32 + 32 * i)
            .find(|e| Uuid::from_bytes_le(m[*e..*e + 16].try_into().unwrap()) == uuid::uuid!("CAA16737-FA36-4D43-B3B6-33F0AA44E76B"))
            .unwrap();
        let ls = (0..u16::from_le_bytes([m[10], m[11]]) as usize)
            .map(|i| 32 + 32 * i)
            .find(|e| Uuid::from_bytes_le(m[*e..*e + 16].try_into().unwrap()) == uuid::uuid!("8141BF1D-A96F-4709-BA47-F233A8FAAB5F"))
            .unwrap();
        let bs = le_u32(m, le_u32(m, fp + 16) as usize) as u64;
        let sector = le_u32(m, le_u32(m, ls + 16) as usize) as u64;
        let ratio = (1u64 << 23) * sector / bs;
        for (i, e) in &bat {
            if i % (ratio + 1) == ratio {
                assert_eq!(e & 7, 6, "sector bitmap entry state");
                let off = ((e >> 20) << 20) as usize;
                bitmap_bits += f[off..off + (1 << 20)].iter().map(|b| b.count_ones() as u64).sum::<u64>();
            } else {
                assert_eq!(e & 7, 7, "child payload blocks are partially present");
            }
        }
    }
    Written { seqs, file_write_guid: guids[0].0, data_write_guid: guids[0].1, bat, bitmap_bits, parent_locator }
}

/// Logical sectors the patch touches.
fn sectors_touched(patch: &Patch, sector: u64) -> u64 {
    let mut set = std::collections::BTreeSet::new();
    for (o, d) in patch.ranges() {
        for s in o / sector..(o + d.len() as u64).div_ceil(sector) {
            set.insert(s);
        }
    }
    set.len() as u64
}

/// Blocks of `expected` holding any non-zero byte.
fn nonzero_blocks(expected: &[u8], bs: usize) -> u64 {
    expected.chunks(bs).filter(|c| c.iter().any(|b| *b != 0)).count() as u64
}

/// Checks shared by every child: metadata, locator, bitmap bits, our reader.
fn check_child(child: &Path, parent: &Path, patch: &Patch, sector: u64) -> Written {
    let w = inspect_written(child);
    let kv: std::collections::HashMap<_, _> = w.parent_locator.iter().cloned().collect();
    let linkage = kv.get("parent_linkage").expect("parent_linkage");
    assert!(linkage.starts_with('{') && linkage.ends_with('}'), "{linkage}");
    let pf = std::fs::read(parent).unwrap();
    let seq = |o: usize| le_u64(&pf, o + 8);
    let h = if seq(128 << 10) > seq(64 << 10) { 128 << 10 } else { 64 << 10 };
    let pdwg = Uuid::from_bytes_le(pf[h + 32..h + 48].try_into().unwrap());
    assert_eq!(linkage, &format!("{{{}}}", pdwg.hyphenated()), "parent_linkage = the parent's DataWriteGuid");
    if parent.parent().unwrap().canonicalize().unwrap() == child.parent().unwrap().canonicalize().unwrap() {
        assert_eq!(kv["relative_path"], format!(".\\{}", parent.file_name().unwrap().to_string_lossy()));
    }
    // A Windows absolute path only when the parent's path is one (never a Unix path with backslashes).
    match kv.get("absolute_win32_path") {
        Some(abs) => assert!(cfg!(windows) && abs.ends_with(&format!("\\{}", parent.file_name().unwrap().to_string_lossy())) && !abs.contains('/'), "{abs}"),
        None => assert!(!cfg!(windows) && kv.contains_key("relative_path"), "{kv:?}"),
    }
    assert!(!kv.contains_key("parent_linkage2"));
    assert_eq!(w.bitmap_bits, sectors_touched(patch, sector), "sector bitmaps mark exactly the sectors written");
    let img = image::open(child).unwrap();
    assert_eq!(img.info.format, Format::VhdxDifferencing);
    assert_eq!(img.info.parent.as_ref().unwrap().path.canonicalize().unwrap(), parent.canonicalize().unwrap());
    assert_eq!(img.disk.sector_size() as u64, sector);
    w
}

/// vhdiinfo sees a differencing disk whose parent identifier is the
/// parent's identifier (for VHDX, libvhdi shows the DataWriteGuid there).
fn vhdiinfo(child: &Path, parent: &Path) {
    if !have("vhdiinfo") {
        eprintln!("NOTICE: vhdiinfo not installed; skipped");
        return;
    }
    let field = |out: &str, name: &str| out.lines().find_map(|l| l.trim().strip_prefix(name).map(|v| v.trim().trim_start_matches(':').trim().to_string()));
    let out = ok("vhdiinfo", &[s(child)]);
    eprintln!("vhdiinfo {}:\n{}", child.file_name().unwrap().to_string_lossy(), out.trim_end());
    assert_eq!(field(&out, "Disk type").as_deref(), Some("Differential"), "vhdiinfo does not see a differencing disk: {out}");
    let pout = ok("vhdiinfo", &[s(parent)]);
    let pid = field(&pout, "Identifier").expect("parent identifier");
    assert_eq!(field(&out, "Parent identifier"), Some(pid), "vhdiinfo: the child's parent identifier is not the parent's");
}

/// Mount `child` with vhdimount (FUSE) and compare the top of the chain with
/// `expected`; skipped with a NOTICE when FUSE or vhdimount is unusable.
fn vhdimount(child: &Path, dir: &Path, expected: &[u8]) {
    if !have("vhdimount") || !Path::new("/dev/fuse").exists() {
        eprintln!("NOTICE: vhdimount or /dev/fuse missing; vhdimount check skipped");
        return;
    }
    struct Unmount(PathBuf);
    impl Drop for Unmount {
        fn drop(&mut self) {
            let quiet = |c: &mut Command| c.stdout(Stdio::null()).stderr(Stdio::null()).status().is_ok_and(|s| s.success());
            if !quiet(Command::new("fusermount").arg("-u").arg(&self.0)) {
                quiet(Command::new("umount").arg(&self.0));
            }
        }
    }
    let mnt = dir.join(format!("mnt-{}", child.file_name().unwrap().to_string_lossy()));
    std::fs::create_dir_all(&mnt).unwrap();
    // vhdimount daemonizes: no pipes that the daemon would keep open.
    let st = Command::new("vhdimount").arg(child).arg(&mnt).stdout(Stdio::null()).stderr(Stdio::null()).status().unwrap();
    if !st.success() {
        eprintln!("NOTICE: vhdimount failed ({st}); FUSE unusable here, check skipped");
        return;
    }
    let _guard = Unmount(mnt.clone());
    // The chain appears as vhdi1 (base parent) .. vhdiN (the child).
    let mut files = Vec::new();
    for _ in 0..50 {
        files = std::fs::read_dir(&mnt).map(|d| d.filter_map(|e| e.ok()).map(|e| e.path()).collect::<Vec<_>>()).unwrap_or_default();
        if !files.is_empty() {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    let num = |p: &PathBuf| p.file_name().unwrap().to_string_lossy().trim_start_matches("vhdi").parse::<u32>().unwrap_or(0);
    files.sort_by_key(num);
    let top = files.last().expect("vhdimount shows no files");
    let got = std::fs::read(top).unwrap();
    assert!(got == expected, "vhdimount: {} differs from input + patch", top.display());
    eprintln!("vhdimount: {} ({} files in the chain) = input + patch", top.file_name().unwrap().to_string_lossy(), files.len());
}

/// qemu cannot open differencing VHDX; say what it answers.
fn qemu_on_child(child: &Path) {
    let o = run("qemu-img", &["check", s(child)]);
    if o.status.success() {
        eprintln!("qemu-img check on the child passed: {}", stdout(&o).trim());
    } else {
        eprintln!("NOTICE: qemu-img check on the differencing child: {} (qemu has no differencing VHDX support)", stderr(&o).trim());
    }
}

/// A raw disk of `size` bytes with random data at `pieces`, converted by qemu.
fn make_source(dir: &Path, name: &str, size: u64, pieces: &[(u64, usize)], opts: &str, rng: &mut Rng) -> (PathBuf, Vec<u8>) {
    let mut raw = vec![0u8; size as usize];
    for (o, n) in pieces {
        raw[*o as usize..*o as usize + n].copy_from_slice(&rng.bytes(*n));
    }
    let rawp = dir.join(format!("{name}.raw"));
    std::fs::write(&rawp, &raw).unwrap();
    let out = dir.join(format!("{name}.vhdx"));
    ok("qemu-img", &["convert", "-f", "raw", "-O", "vhdx", "-o", opts, s(&rawp), s(&out)]);
    std::fs::remove_file(&rawp).unwrap();
    (out, raw)
}

/// The patch of the small-disk tests (block size `bs`, disk of `size`).
fn small_patch(bs: u64, size: u64, rng: &mut Rng) -> Patch {
    let mut p = Patch::default();
    p.write(3 * bs - 300, &rng.bytes(800)); // crosses a block boundary (blocks 2 and 3 hold data)
    p.write(10 * bs + 12345 + 17, &rng.bytes(37)); // partial sector in an allocated block
    p.write(15 * bs + 4096 + 3, &rng.bytes(10000)); // a previously unallocated block
    p.write(17 * bs + 512, &[0; 4096]); // zeros into an unallocated block: stays unallocated
    p.write(bs - 100, &rng.bytes(200)); // from an allocated block into an unallocated one
    p.write(size - 10, &rng.bytes(10)); // the very last bytes of the disk
    p.write(10 * bs + 20000, &rng.bytes(3)); // a second range in block 10
    p
}

fn small_pieces(bs: u64) -> Vec<(u64, usize)> {
    vec![(0, MIB as usize / 2), (3 * bs - 1000, 70000), (10 * bs + 12345, 5000)]
}

// ------------------------------------------------------------------ tests

#[test]
#[cfg_attr(not(all(tool_qemu_img, tool_qemu_io)), ignore = "needs qemu-img and qemu-io (Linux)")]
fn dynamic_512_full_copy_and_child() {
    if !have_qemu() {
        return;
    }
    let dir = tmpdir();
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    let (bs, size) = (2 * MIB, 40 * MIB);
    let (src, raw) = make_source(dir.path(), "dyn", size, &small_pieces(bs), "subformat=dynamic,block_size=2M", &mut rng);
    let before = sha256_file(&src);
    let in_img = image::open(&src).unwrap();
    assert_eq!(in_img.info.format, Format::VhdxDynamic);
    let in_alloc = in_img.info.allocated_blocks.unwrap();
    assert_eq!(our_raw(&src), raw);
    let patch = small_patch(bs, size, &mut rng);
    let mut expected = raw.clone();
    apply(&mut expected, &patch);

    // Full copy: dynamic, same geometry, only non-zero blocks allocated.
    let copy = dir.path().join("copy.vhdx");
    let (_, took) = full_copy(&src, &patch, &copy);
    eprintln!("full copy of a 40 MiB dynamic VHDX: {took:?}, {} bytes", std::fs::metadata(&copy).unwrap().len());
    qemu_check(&copy);
    let out = image::open(&copy).unwrap();
    assert_eq!(out.info.format, Format::VhdxDynamic);
    assert_eq!((out.info.block_size, out.info.logical_sector_size, out.info.physical_sector_size), (in_img.info.block_size, 512, in_img.info.physical_sector_size));
    assert_eq!(out.info.disk_id, in_img.info.disk_id, "the copy is the same virtual disk");
    assert!(out.info.log_replayed.is_none());
    assert_eq!(out.info.allocated_blocks, Some(nonzero_blocks(&expected, bs as usize)));
    assert!(out.info.allocated_blocks.unwrap() > in_alloc, "the patch allocated blocks");
    assert_eq!(our_raw(&copy), expected, "our reader: copy = input + patch");
    assert_eq!(qemu_raw(&copy, dir.path()), expected, "qemu: copy = input + patch");
    let w = inspect_written(&copy);
    assert_eq!(w.seqs[1], w.seqs[0] + 1);
    let inw = inspect_written_guids(&src);
    assert_ne!(w.data_write_guid, inw.1, "new DataWriteGuid");
    assert_ne!(w.file_write_guid, inw.0, "new FileWriteGuid");
    // The block zero-patched while unallocated stays unallocated (qemu-img
    // convert marks never-written blocks ZERO; the copy keeps that state).
    let in_state = inspect_written_bat(&src, 17);
    let out_state = w.bat.iter().find(|(i, _)| *i == 17).map_or(0, |(_, e)| *e);
    assert_eq!(out_state, in_state & 7, "block 17 (input entry {in_state:#x})");

    // Differencing child.
    let child = dir.path().join("child.vhdx");
    let took = diff_child(&src, &patch, &child);
    let csize = std::fs::metadata(&child).unwrap().len();
    eprintln!("child of a 40 MiB dynamic VHDX: {took:?}, {csize} bytes");
    let w = check_child(&child, &src, &patch, 512);
    assert_eq!(image::open(&child).unwrap().info.block_size, Some(bs as u32));
    assert_eq!(our_raw(&child), expected, "our reader: child over parent = input + patch");
    // Blocks: 0,1 (boundary), 2,3, 10, 15, 17, 19 = 8 payload + 1 bitmap.
    assert_eq!(w.bat.len(), 9);
    assert!(csize <= 4 * MIB + 8 * bs + MIB, "child is {csize} bytes");
    if have_pyvhdi() {
        let (sha, facts) = pyvhdi(&child, Some(&src), &[(0, size)]);
        eprintln!("pyvhdi child: {facts}");
        assert_eq!(sha, sha256(&expected), "libvhdi: child over parent = input + patch");
        let (sha, _) = pyvhdi(&copy, None, &[(0, size)]);
        assert_eq!(sha, sha256(&expected), "libvhdi: full copy");
    }
    vhdiinfo(&child, &src);
    vhdimount(&child, dir.path(), &expected);
    qemu_on_child(&child);
    // A full copy of the child flattens the chain into a dynamic VHDX.
    let flat = dir.path().join("flat.vhdx");
    let mut patch2 = Patch::default();
    patch2.write(5 * bs + 7, &rng.bytes(1000));
    full_copy(&child, &patch2, &flat);
    qemu_check(&flat);
    let fo = image::open(&flat).unwrap();
    assert_eq!(fo.info.format, Format::VhdxDynamic);
    assert!(fo.info.parent.is_none());
    apply(&mut expected, &patch2);
    assert_eq!(our_raw(&flat), expected);
    assert_eq!(qemu_raw(&flat, dir.path()), expected);
    assert_eq!(fo.info.allocated_blocks, Some(nonzero_blocks(&expected, bs as usize)));
    assert_eq!(sha256_file(&src), before, "input unchanged");
}

fn inspect_written_bat(p: &Path, idx: usize) -> u64 {
    let f = std::fs::read(p).unwrap();
    let rt = 192 << 10;
    let bat = (0..le_u32(&f, rt + 8) as usize)
        .map(|i| rt + 16 + 32 * i)
        .find(|e| Uuid::from_bytes_le(f[*e..*e + 16].try_into().unwrap()) == uuid::uuid!("2DC27766-F623-4200-9D64-115E9BFD4A08"))
        .unwrap();
    le_u64(&f, le_u64(&f, bat + 16) as usize + 8 * idx)
}

fn inspect_written_guids(p: &Path) -> (Uuid, Uuid) {
    let f = std::fs::read(p).unwrap();
    let seq = |o: usize| le_u64(&f, o + 8);
    let h = if seq(128 << 10) > seq(64 << 10) { 128 << 10 } else { 64 << 10 };
    (Uuid::from_bytes_le(f[h + 16..h + 32].try_into().unwrap()), Uuid::from_bytes_le(f[h + 32..h + 48].try_into().unwrap()))
}

#[test]
#[cfg_attr(not(all(tool_qemu_img, tool_qemu_io)), ignore = "needs qemu-img and qemu-io (Linux)")]
fn fixed_512_full_copy_and_child() {
    if !have_qemu() {
        return;
    }
    let dir = tmpdir();
    let mut rng = Rng(0x1234_5678_9abc_def1);
    let (bs, size) = (MIB, 24 * MIB); // the patch's block numbers, in MiB
    let (src, raw) = make_source(dir.path(), "fixed", size, &small_pieces(bs), "subformat=fixed,block_size=8M", &mut rng);
    let before = sha256_file(&src);
    let in_img = image::open(&src).unwrap();
    assert_eq!(in_img.info.format, Format::VhdxFixed);
    let patch = small_patch(bs, size, &mut rng);
    let mut expected = raw.clone();
    apply(&mut expected, &patch);

    let copy = dir.path().join("copy.vhdx");
    let (_, took) = full_copy(&src, &patch, &copy);
    eprintln!("full copy of a 24 MiB fixed VHDX: {took:?}, {} bytes", std::fs::metadata(&copy).unwrap().len());
    qemu_check(&copy);
    let out = image::open(&copy).unwrap();
    assert_eq!(out.info.format, Format::VhdxFixed);
    assert_eq!(out.info.block_size, Some(8 << 20));
    assert_eq!(our_raw(&copy), expected);
    assert_eq!(qemu_raw(&copy, dir.path()), expected);
    let w = inspect_written(&copy);
    assert_eq!(w.bat.len(), 3, "every block of a fixed disk is present");
    assert!(w.bat.iter().all(|(_, e)| e & 7 == 6));

    let child = dir.path().join("child.vhdx");
    diff_child(&src, &patch, &child);
    check_child(&child, &src, &patch, 512);
    assert_eq!(image::open(&child).unwrap().info.block_size, Some(2 << 20), "2 MiB blocks over a fixed parent");
    assert_eq!(our_raw(&child), expected);
    if have_pyvhdi() {
        assert_eq!(pyvhdi(&child, Some(&src), &[(0, size)]).0, sha256(&expected));
    }
    vhdiinfo(&child, &src);
    // A child in another directory: its relative_path climbs out of it.
    let sub = dir.path().join("checkpoints");
    std::fs::create_dir(&sub).unwrap();
    let child2 = sub.join("child.avhdx");
    diff_child(&src, &patch, &child2);
    let w = check_child(&child2, &src, &patch, 512);
    assert!(w.parent_locator.contains(&("relative_path".into(), "..\\fixed.vhdx".into())), "{:?}", w.parent_locator);
    assert_eq!(our_raw(&child2), expected);
    assert_eq!(sha256_file(&src), before, "input unchanged");
}

/// A 4096-byte logical sector VHDX. qemu-img cannot create one, so a small
/// qemu-made dynamic VHDX gets its sector-size metadata items set to 4096
/// (metadata has no checksum; with fewer blocks than one chunk the BAT layout
/// is the same for both sector sizes).
#[test]
#[cfg_attr(not(all(tool_qemu_img, tool_qemu_io)), ignore = "needs qemu-img and qemu-io (Linux)")]
fn logical_4096_full_copy_and_child() {
    if !have_qemu() {
        return;
    }
    let dir = tmpdir();
    let mut rng = Rng(0x0bad_cafe_f00d_1234);
    let (bs, size) = (MIB, 24 * MIB);
    let (src, raw) = make_source(dir.path(), "4kn", size, &small_pieces(bs), "subformat=dynamic,block_size=1M", &mut rng);
    let mut f = std::fs::read(&src).unwrap();
    let m = 3 << 20; // qemu puts the metadata region at 3 MiB
    assert_eq!(&f[m..m + 8], b"metadata");
    let mut set = 0;
    for i in 0..u16::from_le_bytes([f[m + 10], f[m + 11]]) as usize {
        let e = m + 32 + 32 * i;
        let id = Uuid::from_bytes_le(f[e..e + 16].try_into().unwrap());
        if id == uuid::uuid!("8141BF1D-A96F-4709-BA47-F233A8FAAB5F") || id == uuid::uuid!("CDA348C7-445D-4471-9CC9-E9885251C556") {
            let at = m + le_u32(&f, e + 16) as usize;
            f[at..at + 4].copy_from_slice(&4096u32.to_le_bytes());
            set += 1;
        }
    }
    assert_eq!(set, 2);
    std::fs::write(&src, &f).unwrap();
    let before = sha256_file(&src);
    let in_img = image::open(&src).unwrap();
    assert_eq!((in_img.info.logical_sector_size, in_img.info.physical_sector_size), (4096, 4096));
    assert_eq!(our_raw(&src), raw);
    let py = have_pyvhdi();
    if py {
        let (sha, facts) = pyvhdi(&src, None, &[(0, size)]);
        assert!(facts.contains("sector=4096"), "libvhdi: {facts}");
        assert_eq!(sha, sha256(&raw));
    }
    let patch = small_patch(bs, size, &mut rng);
    let mut expected = raw.clone();
    apply(&mut expected, &patch);

    let copy = dir.path().join("copy.vhdx");
    full_copy(&src, &patch, &copy);
    inspect_written(&copy);
    let out = image::open(&copy).unwrap();
    assert_eq!((out.info.logical_sector_size, out.info.physical_sector_size), (4096, 4096));
    assert_eq!(our_raw(&copy), expected);
    let o = run("qemu-img", &["check", s(&copy)]);
    eprintln!("NOTICE: qemu-img check on the 4096-byte-sector copy: {}{}", stdout(&o).trim(), stderr(&o).trim());

    let child = dir.path().join("child.vhdx");
    diff_child(&src, &patch, &child);
    let w = check_child(&child, &src, &patch, 4096);
    eprintln!("4Kn child: {} sector bitmap bits for {} patched bytes", w.bitmap_bits, patch.len());
    assert_eq!(our_raw(&child), expected);
    if py {
        assert_eq!(pyvhdi(&copy, None, &[(0, size)]).0, sha256(&expected), "libvhdi: 4Kn full copy");
        let (sha, facts) = pyvhdi(&child, Some(&src), &[(0, size)]);
        eprintln!("pyvhdi 4Kn child: {facts}");
        assert!(facts.contains("sector=4096"));
        assert_eq!(sha, sha256(&expected), "libvhdi: 4Kn child over parent");
    }
    vhdiinfo(&child, &src);
    vhdimount(&child, dir.path(), &expected);
    assert_eq!(sha256_file(&src), before, "input unchanged");
}

/// A 127 GiB sparse dynamic VHDX: the child is small and quick to make; the
/// full copy only reads the allocated blocks.
#[test]
#[cfg_attr(not(all(tool_qemu_img, tool_qemu_io)), ignore = "needs qemu-img and qemu-io (Linux)")]
fn big_127g_child_and_copy() {
    if !have_qemu() {
        return;
    }
    let dir = tmpdir();
    let mut rng = Rng(0x5151_7272_9393_abab);
    let size: u64 = 127 << 30;
    let src = dir.path().join("big.vhdx");
    ok("qemu-img", &["create", "-q", "-f", "vhdx", "-o", "subformat=dynamic", s(&src), "127G"]);
    for (off, pat) in [(0u64, "0x11"), (64 << 30, "0x22"), (size - MIB, "0x33")] {
        ok("qemu-io", &["-c", &format!("write -P {pat} {off} 1M"), s(&src)]);
    }
    let before = sha256_file(&src);
    let img = image::open(&src).unwrap();
    let bs = img.info.block_size.unwrap() as u64;
    let mut patch = Patch::default();
    let ranges: Vec<(u64, Vec<u8>)> = vec![
        (1000, rng.bytes(5000)),
        (64 * bs - 4000, rng.bytes(9000)), // block boundary, unallocated blocks
        ((64 << 30) + 77, rng.bytes(33)),   // partial sector in an allocated block
        (100 << 30, rng.bytes(MIB as usize)),
        (size - 512, rng.bytes(512)),
    ];
    for (o, d) in &ranges {
        patch.write(*o, d);
    }
    let read = |disk: &dyn image::Disk, o: u64, n: usize| {
        let mut b = vec![0u8; n];
        disk.read_at(o, &mut b).unwrap();
        b
    };
    // Expected bytes: over each range with 4 KiB of margin, and samples.
    let mut checks: Vec<(u64, Vec<u8>)> = Vec::new();
    for (o, d) in &ranges {
        let (a, e) = (o.saturating_sub(4096), (o + d.len() as u64 + 4096).min(size));
        let mut b = read(img.disk.as_ref(), a, (e - a) as usize);
        b[(o - a) as usize..(o - a) as usize + d.len()].copy_from_slice(d);
        checks.push((a, b));
    }
    for o in [512 << 20, (64 << 30) + MIB, 90 << 30, size - (2 << 20)] {
        checks.push((o, read(img.disk.as_ref(), o, MIB as usize)));
    }

    let child = dir.path().join("big-child.vhdx");
    let took = diff_child(&src, &patch, &child);
    let csize = std::fs::metadata(&child).unwrap().len();
    let blocks = std::fs::metadata(&child).map(|m| allocated_bytes(&m)).unwrap();
    eprintln!("TIMING: child of a 127 GiB dynamic VHDX ({} MiB blocks): {took:?}; file {csize} bytes ({blocks} on disk)", bs >> 20);
    assert!(csize < 64 * MIB + 7 * bs, "child of 127 GiB is {csize} bytes");
    assert!(blocks < 32 * MIB, "child of 127 GiB uses {blocks} bytes on disk");
    let w = check_child(&child, &src, &patch, 512);
    let c = image::open(&child).unwrap();
    for (o, b) in &checks {
        assert_eq!(&read(c.disk.as_ref(), *o, b.len()), b, "child at {o:#x}");
    }
    eprintln!("127 GiB child: {} BAT entries set, {} bitmap bits", w.bat.len(), w.bitmap_bits);
    if have_pyvhdi() {
        let rs: Vec<(u64, u64)> = checks.iter().map(|(o, b)| (*o, b.len() as u64)).collect();
        let want: Vec<u8> = checks.iter().flat_map(|(_, b)| b.clone()).collect();
        assert_eq!(pyvhdi(&child, Some(&src), &rs).0, sha256(&want), "libvhdi: 127 GiB child");
    }
    vhdiinfo(&child, &src);

    let copy = dir.path().join("big-copy.vhdx");
    let (_, took) = full_copy(&src, &patch, &copy);
    let fsize = std::fs::metadata(&copy).unwrap().len();
    eprintln!("TIMING: full copy of the 127 GiB dynamic VHDX: {took:?}; file {fsize} bytes");
    qemu_check(&copy);
    let cp = image::open(&copy).unwrap();
    assert_eq!(cp.info.format, Format::VhdxDynamic);
    for (o, b) in &checks {
        assert_eq!(&read(cp.disk.as_ref(), *o, b.len()), b, "copy at {o:#x}");
    }
    // 3 qemu-written blocks + the patch's (block 0 shared; boundary 2; 100 GiB; last shared).
    assert_eq!(cp.info.allocated_blocks, Some(6));
    assert!(fsize < 64 * MIB + 6 * bs);
    assert_eq!(sha256_file(&src), before, "input unchanged");
}

/// Windows-made VHDX files (../shared/data), including two with a pending
/// log: the copy has no log, is clean for qemu, and reads as input + patch.
#[test]
#[cfg_attr(not(all(shared_data, tool_qemu_img, tool_qemu_io)), ignore = "needs ../shared/data, qemu-img and qemu-io (Linux)")]
fn windows_made_inputs() {
    let Some(data) = shared_data() else { return };
    if !have_qemu() {
        return;
    }
    let dir = tmpdir();
    let py = have_pyvhdi();
    let mut rng = Rng(0xfeed_beef_0102_0304);
    for name in ["win10-dynamic.vhdx", "win10-fixed.vhdx", "server2022-gpt-dynamic.vhdx", "win10-pending-log.vhdx", "server2022-pending-log-gpt.vhdx"] {
        let gz = data.join("images").join(format!("{name}.gz"));
        if !gz.exists() {
            eprintln!("NOTICE: {} absent, skipped", gz.display());
            continue;
        }
        let src = gunzip(&gz, dir.path());
        let before = sha256_file(&src);
        let img = image::open(&src).unwrap();
        let size = img.disk.len();
        let sector = img.info.logical_sector_size as u64;
        let mut patch = Patch::default();
        patch.write(sector + 5, &rng.bytes(700));
        patch.write(size / 2 - 3000, &rng.bytes(6000));
        patch.write(size - 100, &rng.bytes(100));
        let mut expected = our_raw(&src);
        apply(&mut expected, &patch);

        let copy = dir.path().join(format!("copy-{name}"));
        let (_, took) = full_copy(&src, &patch, &copy);
        eprintln!("{name}: {:?} log={:?}, full copy {took:?}", img.info.format, img.info.log_replayed.as_ref().map(|l| l.entries));
        qemu_check(&copy);
        inspect_written(&copy);
        let out = image::open(&copy).unwrap();
        let want_format = if img.info.format == Format::VhdxFixed { Format::VhdxFixed } else { Format::VhdxDynamic };
        assert_eq!(out.info.format, want_format, "{name}");
        assert_eq!(out.info.block_size, img.info.block_size, "{name}");
        assert!(out.info.log_replayed.is_none(), "{name}: the copy has no pending log");
        assert!(our_raw(&copy) == expected, "{name}: our reader: copy != input + patch");
        assert!(qemu_raw(&copy, dir.path()) == expected, "{name}: qemu: copy != input + patch");

        let child = dir.path().join(format!("child-{name}"));
        diff_child(&src, &patch, &child);
        check_child(&child, &src, &patch, sector);
        assert!(our_raw(&child) == expected, "{name}: our reader: child != input + patch");
        // libvhdi reads a VHDX with a pending log without replaying it, so it
        // can be the oracle only for clean parents.
        if img.info.log_replayed.is_none() {
            if py {
                assert_eq!(pyvhdi(&child, Some(&src), &[(0, size)]).0, sha256(&expected), "{name}: libvhdi child");
            }
            vhdiinfo(&child, &src);
        }
        assert_eq!(sha256_file(&src), before, "{name}: input unchanged");
        std::fs::remove_file(&src).unwrap();
    }
}

/// The fault hooks abort the process at the named steps; what is left is
/// not a valid VHDX (no header yet), so it cannot be mistaken for one.
#[test]
#[cfg_attr(not(all(tool_qemu_img, tool_qemu_io)), ignore = "needs qemu-img and qemu-io (Linux)")]
fn fault_points_leave_no_valid_header() {
    if let Ok(job) = std::env::var("WRITE_VHDX_FAULT_JOB") {
        // Child process: run the writer that is to be aborted.
        let (src, out, kind) = {
            let mut it = job.split('|');
            (PathBuf::from(it.next().unwrap()), PathBuf::from(it.next().unwrap()), it.next().unwrap().to_string())
        };
        let mut patch = Patch::default();
        patch.write(4096, &[7; 9000]);
        if kind == "copy" {
            full_copy(&src, &patch, &out);
        } else {
            diff_child(&src, &patch, &out);
        }
        return;
    }
    if !have_qemu() {
        return;
    }
    let dir = tmpdir();
    let src = dir.path().join("f.vhdx");
    ok("qemu-img", &["create", "-q", "-f", "vhdx", s(&src), "64M"]);
    ok("qemu-io", &["-c", "write -P 0x5a 0 3M", s(&src)]);
    for step in ["vhdx-data", "vhdx-metadata"] {
        for kind in ["copy", "child"] {
            let out = dir.path().join(format!("{kind}-{step}.vhdx"));
            let o = Command::new(std::env::current_exe().unwrap())
                .args(["--exact", "fault_points_leave_no_valid_header", "--nocapture", "--test-threads=1"])
                .env("WRITE_VHDX_FAULT_JOB", format!("{}|{}|{kind}", s(&src), s(&out)))
                .env("RDPRESCUE_FAULT", step)
                .out()
                .unwrap();
            assert!(!o.status.success(), "{kind} did not abort at {step}");
            assert!(stderr(&o).contains(&format!("fault injected at {step}")), "{kind} {step}: {}", stderr(&o));
            let f = std::fs::read(&out).unwrap();
            assert!(f.len() < (64 << 10) + 4 || f[64 << 10..(64 << 10) + 4] == [0; 4], "{kind} {step}: a header was written");
            // Without the file identifier (written last but for the headers)
            // it is not even detected as VHDX; with it, it is refused.
            match image::open(&out) {
                Ok(img) => assert_eq!(img.info.format, Format::Raw, "{kind} {step}: the cut file opens as {:?}", img.info.format),
                Err(e) => eprintln!("{kind} cut at {step}: {e}"),
            }
        }
    }
}
