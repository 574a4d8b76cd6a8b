//! The VHD reader (`image::vhd`): Windows-made, qemu-made and synthetic
//! images (fixed, dynamic, differencing chains), the size rule, a sparse
//! 127 GiB disk, and hostile input. Synthetic images are built here by a small
//! VHD writer that follows formats.md D.1-D.5 (independent of the crate's).

mod common;

use common::{disk_bytes, disk_sha256 as disk_sha, need_tool as have, pattern, sha256 as sha, vhd_set_checksum as set_checksum, Rng, Start};
use rdprescue::error::{Error, Layer, Result};
use rdprescue::image::{self, Disk, Format, Image, MemDir, MemSource};
use std::sync::Arc;
use std::path::{Path, PathBuf};
use std::process::Command;

const MIB: u64 = 1 << 20;

// ------------------------------------------------------------------
// Helpers
// ------------------------------------------------------------------

/// The shared Windows-made sample images, or `None` (with a notice).
fn shared_images() -> Option<PathBuf> {
    common::shared_data().map(|d| d.join("images"))
}

fn gunzip(images: &Path, name: &str, dir: &Path) -> PathBuf {
    common::gunzip(&images.join(format!("{name}.gz")), dir)
}

fn run(cmd: &mut Command) {
    let out = cmd.out().unwrap();
    assert!(out.status.success(), "{cmd:?}: {}", String::from_utf8_lossy(&out.stderr));
}

/// `qemu-img info` virtual size.
fn qemu_size(path: &Path) -> u64 {
    let out =
        Command::new("qemu-img").args(["info", "-f", "vpc", "--output=json"]).arg(path).out().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    v["virtual-size"].as_u64().unwrap()
}

/// SHA-256 of `qemu-img convert -f vpc -O raw`.
fn qemu_sha(path: &Path, dir: &Path) -> String {
    let raw = dir.join("qemu-flat.raw");
    run(Command::new("qemu-img").args(["convert", "-f", "vpc", "-O", "raw"]).arg(path).arg(&raw));
    let s = sha(&std::fs::read(&raw).unwrap());
    std::fs::remove_file(&raw).unwrap();
    s
}

/// Random reads of random lengths (unaligned, spanning blocks) against
/// the expected flat bytes.
fn check_random_reads(d: &dyn Disk, full: &[u8], n: usize, seed: u64) {
    let mut r = Rng(seed);
    for _ in 0..n {
        let max = match r.next() % 4 {
            0 => 700,
            1 => 9000,
            2 => 5 * MIB,
            _ => 64,
        } as usize;
        let len = (r.next() as usize % (max + 1)).min(full.len());
        let off = r.next() as usize % (full.len() - len + 1);
        let mut buf = vec![0u8; len];
        d.read_at(off as u64, &mut buf).unwrap();
        assert!(buf == full[off..off + len], "mismatch reading {len} bytes at {off:#x}");
    }
}

fn assert_layer_err<T: std::fmt::Debug>(r: Result<T>, what: &str) -> String {
    let msg = r.expect_err(what).to_string();
    assert!(msg.contains("image/vhd") && msg.contains("offset 0x"), "{what}: {msg}");
    msg
}

// ------------------------------------------------------------------
// A VHD writer for synthetic images (follows formats.md D.1-D.5)
// ------------------------------------------------------------------

#[derive(Clone)]
struct Spec {
    disk_type: u32,
    size: u64,
    chs: (u16, u8, u8),
    creator: [u8; 4],
    uid: [u8; 16],
    block_size: u32,
    /// (block index, bitmap (bitmap size bytes), data (block size bytes))
    blocks: Vec<(u32, Vec<u8>, Vec<u8>)>,
    parent_uid: [u8; 16],
    parent_name: String,
    /// (platform code, raw locator data)
    locators: Vec<([u8; 4], Vec<u8>)>,
    /// Fixed disks: the data.
    fixed_data: Vec<u8>,
}

impl Spec {
    fn dynamic(size: u64, block_size: u32) -> Spec {
        Spec {
            disk_type: 3,
            size,
            chs: (65535, 16, 255),
            creator: *b"win ",
            uid: [0x11; 16],
            block_size,
            blocks: vec![],
            parent_uid: [0; 16],
            parent_name: String::new(),
            locators: vec![],
            fixed_data: vec![],
        }
    }
    fn bitmap_size(&self) -> usize {
        (self.block_size as usize / 512 / 8).div_ceil(512) * 512
    }
}

fn footer_bytes(s: &Spec, data_offset: u64) -> Vec<u8> {
    let mut f = vec![0u8; 512];
    f[0..8].copy_from_slice(b"conectix");
    f[8..12].copy_from_slice(&2u32.to_be_bytes());
    f[12..16].copy_from_slice(&0x0001_0000u32.to_be_bytes());
    f[16..24].copy_from_slice(&data_offset.to_be_bytes());
    f[28..32].copy_from_slice(&s.creator);
    f[32..36].copy_from_slice(&0x000a_0000u32.to_be_bytes());
    f[36..40].copy_from_slice(b"Wi2k");
    f[40..48].copy_from_slice(&s.size.to_be_bytes());
    f[48..56].copy_from_slice(&s.size.to_be_bytes());
    f[56..58].copy_from_slice(&s.chs.0.to_be_bytes());
    f[58] = s.chs.1;
    f[59] = s.chs.2;
    f[60..64].copy_from_slice(&s.disk_type.to_be_bytes());
    f[68..84].copy_from_slice(&s.uid);
    set_checksum(&mut f, 64);
    f
}

fn utf16le_bytes(s: &str) -> Vec<u8> {
    s.encode_utf16().flat_map(|u| u.to_le_bytes()).collect()
}

/// Layout: footer copy | header | BAT | locator data | blocks | footer.
fn build(s: &Spec) -> Vec<u8> {
    if s.disk_type == 2 {
        let mut v = s.fixed_data.clone();
        v.extend(footer_bytes(s, u64::MAX));
        return v;
    }
    let entries = s.size.div_ceil(u64::from(s.block_size)) as usize;
    let bat_off = 1536usize;
    let bat_len = (entries * 4).div_ceil(512) * 512;
    let mut v = vec![0u8; bat_off + bat_len];
    v[..512].copy_from_slice(&footer_bytes(s, 512));
    v[bat_off..bat_off + bat_len].fill(0xFF);
    let mut h = vec![0u8; 1024];
    h[0..8].copy_from_slice(b"cxsparse");
    h[8..16].fill(0xFF);
    h[16..24].copy_from_slice(&(bat_off as u64).to_be_bytes());
    h[24..28].copy_from_slice(&0x0001_0000u32.to_be_bytes());
    h[28..32].copy_from_slice(&(entries as u32).to_be_bytes());
    h[32..36].copy_from_slice(&s.block_size.to_be_bytes());
    h[40..56].copy_from_slice(&s.parent_uid);
    for (i, u) in s.parent_name.encode_utf16().take(255).enumerate() {
        h[64 + 2 * i..66 + 2 * i].copy_from_slice(&u.to_be_bytes());
    }
    for (i, (code, data)) in s.locators.iter().enumerate() {
        let space = data.len().div_ceil(512).max(1) * 512;
        let o = 576 + 24 * i;
        h[o..o + 4].copy_from_slice(code);
        h[o + 4..o + 8].copy_from_slice(&(space as u32).to_be_bytes());
        h[o + 8..o + 12].copy_from_slice(&(data.len() as u32).to_be_bytes());
        h[o + 16..o + 24].copy_from_slice(&(v.len() as u64).to_be_bytes());
        let start = v.len();
        v.extend_from_slice(data);
        v.resize(start + space, 0);
    }
    set_checksum(&mut h, 36);
    v[512..1536].copy_from_slice(&h);
    for (idx, bitmap, data) in &s.blocks {
        assert_eq!(bitmap.len(), s.bitmap_size());
        assert_eq!(data.len(), s.block_size as usize);
        let sector = (v.len() / 512) as u32;
        let e = bat_off + 4 * *idx as usize;
        v[e..e + 4].copy_from_slice(&sector.to_be_bytes());
        v.extend_from_slice(bitmap);
        v.extend_from_slice(data);
    }
    let foot = v[..512].to_vec();
    v.extend(foot);
    v
}

/// Apply `f` to every footer copy (offset 0 if present, and the end),
/// then fix their checksums.
fn patch_footers(img: &mut [u8], f: impl Fn(&mut [u8])) {
    let end = img.len() - 512;
    let mut offs = vec![end];
    if &img[..8] == b"conectix" && end != 0 {
        offs.push(0);
    }
    for o in offs {
        f(&mut img[o..o + 512]);
        set_checksum(&mut img[o..o + 512], 64);
    }
}

/// Apply `f` to the dynamic header at 512, then fix its checksum.
fn patch_header(img: &mut [u8], f: impl Fn(&mut [u8])) {
    f(&mut img[512..1536]);
    set_checksum(&mut img[512..1536], 36);
}

/// Open bytes as a VHD (no format detection: a file whose footers are gone
/// must be a VHD error here, not a raw disk).
fn open_mem(bytes: Vec<u8>) -> Result<Image> {
    image::vhd::open(MemSource::arc("mem.vhd", bytes), &mut image::OpenCtx::default())
}

/// A 1 MiB dynamic disk with 64 KiB blocks; blocks 0, 3 and 15 allocated.
fn small_dynamic() -> (Vec<u8>, Vec<u8>) {
    let mut s = Spec::dynamic(MIB, 64 << 10);
    let mut flat = vec![0u8; MIB as usize];
    for b in [0u32, 3, 15] {
        let off = u64::from(b) * (64 << 10);
        let data = pattern(7, off, 64 << 10);
        flat[off as usize..off as usize + data.len()].copy_from_slice(&data);
        // The bitmap of a dynamic disk is ignored: leave it all zero.
        s.blocks.push((b, vec![0; s.bitmap_size()], data));
    }
    (build(&s), flat)
}

// ------------------------------------------------------------------
// Windows-made images
// ------------------------------------------------------------------

/// Hashes of `qemu-img convert -f vpc -O raw FILE out.raw; sha256sum out.raw`
/// (qemu-img 10.0.2). Both files have creator "win " and CHS smaller than
/// the current size (301x4x17 sectors = 10 479 616 bytes); qemu, like
/// Hyper-V, uses the current size (10 MiB) for "win ", and so do we.
/// Note: qemu's format probe only looks for "conectix" at offset 0, so it
/// takes the *fixed* VHD for a raw image (10 486 272 bytes, footer
/// included) unless given `-f vpc`.
const WIN10_FIXED_SHA: &str = "459325ab1fcd1d5ec9854cba790ee26378317cda177ffc1072008a1df88e6463";
const WIN10_DYNAMIC_SHA: &str = "ecff2ef6615a3cddc6a6885f1c6d9cf13a232697e1dc6575f2c2f01f57247784";
/// `qemu-img convert -f vpc -O raw` of the orphan differencing disk: qemu
/// has no VHD backing-file support and reads it as a stand-alone dynamic
/// disk (unallocated = zeros, bitmap ignored). The sectors whose bitmap
/// bit is 0 are zero in the file, so our reader over an all-zero parent
/// must give the same bytes.
const WIN10_ORPHAN_QEMU_SHA: &str = "9e96fac774e2e3606e0e3d5f1152844ca3c6a45ed45e61f36586b2cd60b19d3f";

#[test]
#[cfg_attr(not(shared_data), ignore = "needs ../shared/data")]
fn windows_fixed_and_dynamic_match_qemu() {
    let Some(images) = shared_images() else { return };
    let dir = tempfile::tempdir().unwrap();
    let qemu = have("qemu-img");
    for (name, format, want) in [
        ("win10-fixed.vhd", Format::VhdFixed, WIN10_FIXED_SHA),
        ("win10-dynamic.vhd", Format::VhdDynamic, WIN10_DYNAMIC_SHA),
    ] {
        let path = gunzip(&images, name, dir.path());
        let img = image::open(&path).unwrap();
        let d = img.disk.as_ref();
        assert_eq!(img.info.format, format);
        assert_eq!(img.info.virtual_size, 10 * MIB);
        assert_eq!(d.len(), 10 * MIB);
        assert_eq!(img.info.creator.as_deref(), Some("win"));
        assert!(img.info.parent.is_none());
        if format == Format::VhdDynamic {
            assert_eq!(img.info.block_size, Some(2 << 20));
            assert_eq!(img.info.disk_id.as_deref(), Some("4b6a0d04-f946-d74e-836f-d3dc87e1816b"));
            let alloc = img.info.allocated_blocks.unwrap();
            assert!(alloc > 0 && alloc < 5, "{alloc}");
        } else {
            assert_eq!(img.info.block_size, None);
        }
        let got = disk_sha(d);
        eprintln!("{name}: rdprescue sha256 {got}");
        assert_eq!(got, want, "{name}");
        if qemu {
            assert_eq!(qemu_size(&path), d.len());
            let q = qemu_sha(&path, dir.path());
            eprintln!("{name}: qemu-img    sha256 {q}");
            assert_eq!(got, q, "{name}");
        }
        // MBR with an NTFS partition.
        let full = disk_bytes(d);
        assert_eq!(&full[510..512], &[0x55, 0xAA]);
        let lba = u32::from_le_bytes(full[0x1C6..0x1CA].try_into().unwrap()) as usize;
        assert_eq!(&full[lba * 512 + 3..lba * 512 + 11], b"NTFS    ", "{name}");
        check_random_reads(d, &full, 300, 1);
        assert!(d.read_at(d.len() - 1, &mut [0u8; 2]).is_err());
    }
}

#[test]
#[cfg_attr(not(shared_data), ignore = "needs ../shared/data")]
fn windows_orphan_differencing_names_missing_parent() {
    let Some(images) = shared_images() else { return };
    let dir = tempfile::tempdir().unwrap();
    let path = gunzip(&images, "win10-diskpart-orphan-differencing.vhd", dir.path());
    let err = image::open(&path).unwrap_err();
    assert!(matches!(err, Error::MissingParent { layer: Layer::Vhd, .. }), "{err:?}");
    let msg = err.to_string();
    eprintln!("{msg}");
    assert!(msg.contains("image/vhd") && msg.contains("offset 0x"), "{msg}");
    assert!(msg.contains(r"C:\Projects\dfvfs\test_data\fat-parent.vhd"), "{msg}");
    assert!(msg.contains(&dir.path().join("fat-parent.vhd").display().to_string()), "{msg}");
}

/// Give the orphan a parent made here: a wrong unique id is refused; the
/// right one opens, and the chain reads child sectors where its bitmap
/// says so and parent sectors elsewhere.
#[test]
#[cfg_attr(not(shared_data), ignore = "needs ../shared/data")]
fn windows_orphan_differencing_with_substitute_parent() {
    let Some(images) = shared_images() else { return };
    let dir = tempfile::tempdir().unwrap();
    let path = gunzip(&images, "win10-diskpart-orphan-differencing.vhd", dir.path());
    let child = std::fs::read(&path).unwrap();
    let size = u64::from_be_bytes(child[48..56].try_into().unwrap());
    assert_eq!(size, 4 * MIB);
    let mut parent_uid = [0u8; 16];
    parent_uid.copy_from_slice(&child[512 + 40..512 + 56]);

    let mut ps = Spec::dynamic(size, 2 << 20);
    ps.chs = (120, 4, 17);
    let ppath = dir.path().join("fat-parent.vhd");

    // Wrong unique id.
    ps.uid = [0x42; 16];
    std::fs::write(&ppath, build(&ps)).unwrap();
    let msg = image::open(&path).unwrap_err().to_string();
    assert!(msg.contains("image/vhd") && msg.contains("unique id") && msg.contains("offset 0x"), "{msg}");

    // Right id, empty parent: equals qemu's stand-alone reading.
    ps.uid = parent_uid;
    std::fs::write(&ppath, build(&ps)).unwrap();
    let img = image::open(&path).unwrap();
    assert_eq!(img.info.format, Format::VhdDifferencing);
    assert_eq!(img.info.allocated_blocks, Some(1));
    let parent_info = img.info.parent.as_ref().unwrap();
    assert_eq!(parent_info.format, Format::VhdDynamic);
    assert_eq!(parent_info.path, ppath);
    assert_eq!(disk_sha(img.disk.as_ref()), WIN10_ORPHAN_QEMU_SHA);

    // Right id, parent full of a pattern.
    let pflat = pattern(3, 0, size as usize);
    ps.blocks = (0..2)
        .map(|b| {
            (b, vec![0xFF; 512], pflat[b as usize * (2 << 20)..(b as usize + 1) * (2 << 20)].to_vec())
        })
        .collect();
    std::fs::write(&ppath, build(&ps)).unwrap();
    let img = image::open(&path).unwrap();
    // Expected, straight from the file: BAT at 0x2000 (header field), block 0 only.
    let bat = u64::from_be_bytes(child[512 + 16..512 + 24].try_into().unwrap()) as usize;
    let b0 = u32::from_be_bytes(child[bat..bat + 4].try_into().unwrap()) as usize * 512;
    let mut want = pflat.clone();
    let mut from_child = 0;
    for s in 0..4096 {
        if child[b0 + s / 8] & (0x80 >> (s % 8)) != 0 {
            want[s * 512..(s + 1) * 512]
                .copy_from_slice(&child[b0 + 512 + s * 512..b0 + 512 + (s + 1) * 512]);
            from_child += 1;
        }
    }
    assert_eq!(from_child, 18);
    let got = disk_bytes(img.disk.as_ref());
    assert!(got == want);
    check_random_reads(img.disk.as_ref(), &want, 300, 2);
}

// ------------------------------------------------------------------
// qemu-made images
// ------------------------------------------------------------------

/// A raw file with data and holes, converted by qemu-img to the four VHD
/// flavours; our reader must agree with qemu on size and content.
#[test]
#[cfg_attr(not(tool_qemu_img), ignore = "needs qemu-img (Linux)")]
fn qemu_made_images_match_qemu() {
    common::require("qemu-img");
    let dir = tempfile::tempdir().unwrap();
    // 9 MiB + 3 sectors: not a CHS size, so plain qemu rounds it up.
    let len = 9 * MIB as usize + 1536;
    let mut raw = vec![0u8; len];
    for (off, n) in [(0usize, 300_000usize), (4 * MIB as usize + 123, 5000), (len - 100_000, 100_000)] {
        raw[off..off + n].copy_from_slice(&pattern(5, off as u64, n));
    }
    let rawp = dir.path().join("src.raw");
    std::fs::write(&rawp, &raw).unwrap();
    for (opts, format, creator) in [
        ("subformat=fixed", Format::VhdFixed, "qemu"),
        ("subformat=dynamic", Format::VhdDynamic, "qemu"),
        ("subformat=fixed,force_size=on", Format::VhdFixed, "qem2"),
        ("subformat=dynamic,force_size=on", Format::VhdDynamic, "qem2"),
    ] {
        let p = dir.path().join("q.vhd");
        let _ = std::fs::remove_file(&p);
        run(Command::new("qemu-img")
            .args(["convert", "-f", "raw", "-O", "vpc", "-o", opts])
            .arg(&rawp)
            .arg(&p));
        let img = image::open(&p).unwrap();
        let d = img.disk.as_ref();
        assert_eq!(img.info.format, format, "{opts}");
        assert_eq!(img.info.creator.as_deref(), Some(creator), "{opts}");
        let qs = qemu_size(&p);
        assert_eq!(d.len(), qs, "{opts}");
        if opts.contains("force_size") {
            assert_eq!(qs, len as u64);
        } else {
            assert!(qs > len as u64, "{opts}: {qs}");
        }
        let ours = disk_sha(d);
        let theirs = qemu_sha(&p, dir.path());
        eprintln!("{opts}: size {qs}, rdprescue {ours}, qemu-img {theirs}");
        assert_eq!(ours, theirs, "{opts}");
        let mut want = raw.clone();
        want.resize(qs as usize, 0);
        assert_eq!(ours, sha(&want), "{opts}");
        if format == Format::VhdDynamic {
            let alloc = img.info.allocated_blocks.unwrap();
            assert!(alloc < qs.div_ceil(2 * MIB), "{opts}: {alloc} blocks allocated");
        }
        check_random_reads(d, &want, 200, 3);
    }
}

/// The size rule: CHS for creators "vpc "/"qemu" (unless the geometry is
/// the 65535x16x255 maximum), the current size otherwise. Checked on
/// images written here, and against `qemu-img info` when available.
#[test]
#[cfg_attr(not(tool_qemu_img), ignore = "needs qemu-img (Linux)")]
fn size_rule_chs_or_current_size() {
    // Rust-written images: current size 12 MiB, CHS 302x4x17 = 10 514 432 bytes.
    let chs_bytes = 302 * 4 * 17 * 512;
    for (creator, chs, want) in [
        (*b"qemu", (302u16, 4u8, 17u8), chs_bytes),
        (*b"vpc ", (302, 4, 17), chs_bytes),
        (*b"win ", (302, 4, 17), 12 * MIB),
        (*b"qem2", (302, 4, 17), 12 * MIB),
        (*b"d2v ", (302, 4, 17), 12 * MIB),
        (*b"vbox", (302, 4, 17), 12 * MIB),
        (*b"qemu", (65535, 16, 255), 12 * MIB),
        (*b"qemu", (0, 0, 0), 12 * MIB),
        // CHS larger than the current size: never read past the current size.
        (*b"vpc ", (400, 4, 17), 12 * MIB),
    ] {
        let mut s = Spec::dynamic(12 * MIB, 2 << 20);
        s.creator = creator;
        s.chs = chs;
        let img = open_mem(build(&s)).unwrap();
        assert_eq!(img.disk.len(), want, "{:?} {chs:?}", std::str::from_utf8(&creator));
        assert_eq!(img.info.virtual_size, want);
    }
    // A fixed "vpc " disk whose CHS is smaller: the tail is not exposed.
    let mut s = Spec::dynamic(12 * MIB, 2 << 20);
    s.disk_type = 2;
    s.creator = *b"vpc ";
    s.chs = (302, 4, 17);
    s.fixed_data = pattern(9, 0, 12 * MIB as usize);
    let img = open_mem(build(&s)).unwrap();
    assert_eq!(img.disk.len(), chs_bytes);
    assert!(disk_bytes(img.disk.as_ref()) == s.fixed_data[..chs_bytes as usize]);

    common::require("qemu-img");
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("s.vhd");
    // qemu writes current size = CHS for plain images...
    run(Command::new("qemu-img")
        .args(["create", "-q", "-f", "vpc", "-o", "subformat=dynamic"])
        .arg(&p)
        .arg("10M"));
    assert_eq!(qemu_size(&p), 10_514_432);
    assert_eq!(image::open(&p).unwrap().disk.len(), 10_514_432);
    // ...so make them differ by hand (current size 12 MiB; the BAT has 6
    // entries of 2 MiB, so 12 MiB is still covered) and compare per creator.
    let orig = std::fs::read(&p).unwrap();
    for (creator, want) in
        [(b"qemu", 10_514_432u64), (b"vpc ", 10_514_432), (b"win ", 12 * MIB), (b"qem2", 12 * MIB)]
    {
        let mut img = orig.clone();
        patch_footers(&mut img, |f| {
            f[28..32].copy_from_slice(creator);
            f[48..56].copy_from_slice(&(12 * MIB).to_be_bytes());
        });
        std::fs::write(&p, &img).unwrap();
        let ours = image::open(&p).unwrap();
        assert_eq!(qemu_size(&p), want, "{:?}", std::str::from_utf8(creator));
        assert_eq!(ours.disk.len(), want, "{:?}", std::str::from_utf8(creator));
        assert_eq!(disk_sha(ours.disk.as_ref()), qemu_sha(&p, dir.path()));
    }
    // force_size=on: creator "qem2", maximum CHS, exact current size.
    std::fs::remove_file(&p).unwrap();
    run(Command::new("qemu-img")
        .args(["create", "-q", "-f", "vpc", "-o", "subformat=dynamic,force_size=on"])
        .arg(&p)
        .arg("10M"));
    assert_eq!(qemu_size(&p), 10 * MIB);
    assert_eq!(image::open(&p).unwrap().disk.len(), 10 * MIB);
}

/// A sparse 127 GiB dynamic disk: the BAT (254 KiB) is loaded, reads touch
/// only what they need.
#[test]
fn sparse_127_gib() {
    let size = 127u64 << 30;
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("big.vhd");
    let qemu = have("qemu-img") && have("qemu-io");
    let vsize;
    if qemu {
        run(Command::new("qemu-img")
            .args(["create", "-q", "-f", "vpc", "-o", "subformat=dynamic"])
            .arg(&p)
            .arg("127G"));
        vsize = qemu_size(&p);
        let last = vsize - 4096;
        run(Command::new("qemu-io")
            .args(["-f", "vpc", "-c", "write -P 0xab 1M 64k", "-c"])
            .arg(format!("write -P 0xcd {last} 4096"))
            .arg(&p));
    } else {
        let mut s = Spec::dynamic(size, 2 << 20);
        s.creator = *b"qem2";
        let mut b0 = vec![0u8; 2 << 20];
        b0[MIB as usize..MIB as usize + 65536].fill(0xab);
        let mut bl = vec![0u8; 2 << 20];
        bl[(2 << 20) - 4096..].fill(0xcd);
        s.blocks = vec![(0, vec![0xFF; 512], b0), ((size / (2 << 20) - 1) as u32, vec![0xFF; 512], bl)];
        std::fs::write(&p, build(&s)).unwrap();
        vsize = size;
    }
    assert!(std::fs::metadata(&p).unwrap().len() < 8 * MIB);
    let img = image::open(&p).unwrap();
    let d = img.disk.as_ref();
    assert_eq!(d.len(), vsize);
    assert!(vsize >= size, "{vsize}");
    assert_eq!(img.info.allocated_blocks, Some(2));
    let mut first = vec![0u8; 2 * MIB as usize];
    d.read_at(0, &mut first).unwrap();
    assert!(first[..MIB as usize].iter().all(|&b| b == 0));
    assert!(first[MIB as usize..MIB as usize + 65536].iter().all(|&b| b == 0xab));
    assert!(first[MIB as usize + 65536..].iter().all(|&b| b == 0));
    let mut tail = vec![0u8; 8192];
    d.read_at(vsize - 8192, &mut tail).unwrap();
    assert!(tail[..4096].iter().all(|&b| b == 0) && tail[4096..].iter().all(|&b| b == 0xcd));
    let mut sector = [0u8; 512];
    d.read_at(vsize - 512, &mut sector).unwrap();
    assert!(sector.iter().all(|&b| b == 0xcd));
    // Unallocated, across a block boundary in the middle.
    let mut mid = vec![0xEEu8; 4096];
    d.read_at((64u64 << 30) - 2048, &mut mid).unwrap();
    assert!(mid.iter().all(|&b| b == 0));
    assert!(d.read_at(vsize - 511, &mut sector).is_err());
}

// ------------------------------------------------------------------
// Differencing chains
// ------------------------------------------------------------------

/// A dynamic parent: made by qemu-img when available, else here.
/// Returns (path, flat content, footer).
/// The footer fields the differencing tests use, read from a VHD file's end.
struct Footer {
    current_size: u64,
    cylinders: u16,
    heads: u8,
    sectors_per_track: u8,
    unique_id: [u8; 16],
}

fn read_footer(p: &Path) -> Footer {
    let b = std::fs::read(p).unwrap();
    let f = &b[b.len() - 512..];
    assert_eq!(&f[..8], b"conectix", "{}", p.display());
    Footer {
        current_size: u64::from_be_bytes(f[48..56].try_into().unwrap()),
        cylinders: u16::from_be_bytes(f[56..58].try_into().unwrap()),
        heads: f[58],
        sectors_per_track: f[59],
        unique_id: f[68..84].try_into().unwrap(),
    }
}

fn guid_string(id: &[u8; 16]) -> String {
    uuid::Uuid::from_bytes(*id).to_string()
}

fn make_parent(dir: &Path, name: &str, size: u64) -> (PathBuf, Vec<u8>, Footer) {
    let flat = pattern(21, 0, size as usize);
    let p = dir.join(name);
    if have("qemu-img") {
        let raw = dir.join("parent.raw");
        std::fs::write(&raw, &flat).unwrap();
        run(Command::new("qemu-img")
            .args(["convert", "-f", "raw", "-O", "vpc", "-o", "subformat=dynamic,force_size=on"])
            .arg(&raw)
            .arg(&p));
        std::fs::remove_file(&raw).unwrap();
    } else {
        let mut s = Spec::dynamic(size, 2 << 20);
        s.uid = [0x77; 16];
        s.blocks = (0..size.div_ceil(2 << 20) as u32)
            .map(|b| {
                (b, vec![0xFF; 512], flat[b as usize * (2 << 20)..(b as usize + 1) * (2 << 20)].to_vec())
            })
            .collect();
        std::fs::write(&p, build(&s)).unwrap();
    }
    let f = read_footer(&p);
    (p, flat, f)
}

/// Child of `parent` (6 MiB, three 2 MiB blocks): block 0 allocated with
/// only some sectors present, block 1 unallocated, block 2 fully present.
/// Returns the spec and the expected flattened chain.
fn child_spec(pf: &Footer, pflat: &[u8]) -> (Spec, Vec<u8>) {
    let mut s = Spec::dynamic(pf.current_size, 2 << 20);
    s.disk_type = 4;
    s.chs = (pf.cylinders, pf.heads, pf.sectors_per_track);
    s.uid = [0xC4; 16];
    s.parent_uid = pf.unique_id;
    s.parent_name = r"C:\VMs\parent.vhd".into();
    s.locators =
        vec![(*b"W2ku", utf16le_bytes(r"C:\VMs\parent.vhd")), (*b"W2ru", utf16le_bytes(r".\parent.vhd"))];
    let cflat = pattern(99, 0, pf.current_size as usize);
    let mut want = pflat.to_vec();
    // Block 0: sectors 0-3, 9, 100-107, 4095 present; the rest of the
    // block holds junk that must never be returned.
    let present: Vec<usize> = [0, 1, 2, 3, 9].into_iter().chain(100..108).chain([4095]).collect();
    let mut bitmap = vec![0u8; 512];
    let mut data = vec![0xEE; 2 << 20];
    for &sec in &present {
        bitmap[sec / 8] |= 0x80 >> (sec % 8);
        data[sec * 512..(sec + 1) * 512].copy_from_slice(&cflat[sec * 512..(sec + 1) * 512]);
        want[sec * 512..(sec + 1) * 512].copy_from_slice(&cflat[sec * 512..(sec + 1) * 512]);
    }
    s.blocks.push((0, bitmap, data));
    let b2 = 4 << 20..6 << 20;
    s.blocks.push((2, vec![0xFF; 512], cflat[b2.clone()].to_vec()));
    want[b2.clone()].copy_from_slice(&cflat[b2]);
    (s, want)
}

#[test]
fn differencing_chain_reads_child_and_parent() {
    let dir = tempfile::tempdir().unwrap();
    let (ppath, pflat, pf) = make_parent(dir.path(), "parent.vhd", 6 * MIB);
    let parent = image::open(&ppath).unwrap();
    assert!(disk_bytes(parent.disk.as_ref()) == pflat);
    let (spec, want) = child_spec(&pf, &pflat);
    let cpath = dir.path().join("child.vhd");
    std::fs::write(&cpath, build(&spec)).unwrap();

    let img = image::open(&cpath).unwrap();
    assert_eq!(img.info.format, Format::VhdDifferencing);
    assert_eq!(img.info.allocated_blocks, Some(2));
    assert_eq!(img.info.block_size, Some(2 << 20));
    assert_eq!(img.info.disk_id.as_deref(), Some("c4c4c4c4-c4c4-c4c4-c4c4-c4c4c4c4c4c4"));
    let pinfo = img.info.parent.as_ref().unwrap();
    assert_eq!(pinfo.format, Format::VhdDynamic);
    assert_eq!(pinfo.path, ppath);
    assert_eq!(pinfo.disk_id.as_deref(), Some(guid_string(&pf.unique_id).as_str()));
    let d = img.disk.as_ref();
    assert_eq!(d.len(), 6 * MIB);
    assert_eq!(disk_sha(d), sha(&want));
    assert!(disk_bytes(d) == want);
    // Sector by sector through block 0, and odd pieces around present sectors.
    for sec in 0..200u64 {
        let mut b = [0u8; 512];
        d.read_at(sec * 512, &mut b).unwrap();
        assert!(b[..] == want[sec as usize * 512..(sec as usize + 1) * 512], "sector {sec}");
    }
    for (off, n) in [(8 * 512 + 500, 30), (9 * 512 - 1, 514), (2 * MIB - 700, 1400), (4 * MIB - 1, 2)] {
        let mut b = vec![0u8; n];
        d.read_at(off, &mut b).unwrap();
        assert!(b[..] == want[off as usize..off as usize + n], "{off:#x}+{n}");
    }
    check_random_reads(d, &want, 400, 4);
    assert!(d.read_at(6 * MIB - 100, &mut [0u8; 101]).is_err());

    // A grandchild over the child: chain of three.
    let cf = read_footer(&cpath);
    let mut g = Spec::dynamic(cf.current_size, 2 << 20);
    g.disk_type = 4;
    g.chs = spec.chs;
    g.uid = [0x99; 16];
    g.parent_uid = cf.unique_id;
    g.parent_name = "child.vhd".into();
    let mut bm = vec![0u8; 512];
    bm[0] = 0x01; // sector 7 only
    let gdata = vec![0x5A; 2 << 20];
    g.blocks.push((1, bm.clone(), gdata.clone()));
    let gpath = dir.path().join("grandchild.vhd");
    std::fs::write(&gpath, build(&g)).unwrap();
    let gi = image::open(&gpath).unwrap();
    assert_eq!(gi.info.parent.as_ref().unwrap().parent.as_ref().unwrap().format, Format::VhdDynamic);
    let mut want2 = want.clone();
    want2[2 * MIB as usize + 7 * 512..2 * MIB as usize + 8 * 512].fill(0x5A);
    assert!(disk_bytes(gi.disk.as_ref()) == want2);
}

#[test]
fn differencing_parent_search_order() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir(dir.path().join("base")).unwrap();
    let (ppath, pflat, pf) = make_parent(&dir.path().join("base"), "parent.vhd", 6 * MIB);
    let (mut spec, want) = child_spec(&pf, &pflat);
    let cpath = dir.path().join("child.vhd");
    let check = |spec: &Spec, expect: &Path| {
        std::fs::write(&cpath, build(spec)).unwrap();
        let img = image::open(&cpath).unwrap();
        assert_eq!(img.info.parent.as_ref().unwrap().path, expect);
        assert!(disk_bytes(img.disk.as_ref()) == want);
    };
    // Relative locator into a subdirectory (backslashes, leading .\).
    spec.locators = vec![(*b"W2ru", utf16le_bytes(r".\base\parent.vhd"))];
    check(&spec, &ppath);
    // Deprecated Wi2r with a byte string.
    spec.locators = vec![(*b"Wi2r", br"base\parent.vhd".to_vec())];
    check(&spec, &ppath);
    // Relative locator wrong, absolute \\?\ path: its file name next to the child.
    let beside = dir.path().join("parent2.vhd");
    std::fs::copy(&ppath, &beside).unwrap();
    spec.locators = vec![
        (*b"W2ru", utf16le_bytes(r"..\nowhere\parent.vhd")),
        (*b"W2ku", utf16le_bytes(r"\\?\D:\Hyper-V\parent2.vhd")),
    ];
    check(&spec, &beside);
    // No locators at all: the parent name's file name next to the child.
    spec.locators.clear();
    spec.parent_name = r"E:\old\parent2.vhd".into();
    check(&spec, &beside);
    // Relative wins over absolute.
    spec.locators = vec![
        (*b"W2ku", utf16le_bytes(r"D:\x\parent2.vhd")),
        (*b"W2ru", utf16le_bytes(r"base\parent.vhd")),
    ];
    check(&spec, &ppath);
}

#[test]
fn differencing_errors() {
    let dir = tempfile::tempdir().unwrap();
    let (_ppath, pflat, pf) = make_parent(dir.path(), "parent.vhd", 6 * MIB);
    let (spec, _) = child_spec(&pf, &pflat);
    let cpath = dir.path().join("child.vhd");

    // Wrong parent unique id.
    let mut s = spec.clone();
    s.parent_uid = [0xAB; 16];
    std::fs::write(&cpath, build(&s)).unwrap();
    let msg = assert_layer_err(image::open(&cpath), "uid mismatch");
    assert!(msg.contains("unique id") && msg.contains("parent.vhd"), "{msg}");

    // Size mismatch.
    let mut s = spec.clone();
    s.size = 8 * MIB;
    std::fs::write(&cpath, build(&s)).unwrap();
    let msg = assert_layer_err(image::open(&cpath), "size mismatch");
    assert!(msg.contains("size"), "{msg}");

    // Missing parent.
    let mut s = spec.clone();
    s.parent_name = r"C:\VMs\gone.vhd".into();
    s.locators =
        vec![(*b"W2ku", utf16le_bytes(r"C:\VMs\gone.vhd")), (*b"W2ru", utf16le_bytes(r".\gone.vhd"))];
    std::fs::write(&cpath, build(&s)).unwrap();
    let err = image::open(&cpath).unwrap_err();
    assert!(matches!(err, Error::MissingParent { .. }), "{err:?}");
    let msg = assert_layer_err::<()>(Err(err), "missing parent");
    assert!(msg.contains(r"C:\VMs\gone.vhd") && msg.contains("gone.vhd"), "{msg}");

    // Locators that point outside the file or are absurdly long are skipped.
    let mut img = build(&s);
    patch_header(&mut img, |h| {
        h[576 + 8..576 + 12].copy_from_slice(&u32::MAX.to_be_bytes());
        h[600 + 16..600 + 24].copy_from_slice(&u64::MAX.to_be_bytes());
    });
    std::fs::write(&cpath, &img).unwrap();
    assert!(matches!(image::open(&cpath), Err(Error::MissingParent { .. })));

    // A child whose locator points to itself: a loop error, no recursion.
    let mut s = spec.clone();
    s.parent_name = "self.vhd".into();
    s.locators = vec![(*b"W2ru", utf16le_bytes(r".\self.vhd"))];
    let spath = dir.path().join("self.vhd");
    std::fs::write(&spath, build(&s)).unwrap();
    let msg = image::open(&spath).unwrap_err().to_string();
    assert!(msg.contains("loops"), "{msg}");

    // Two children pointing at each other.
    let mut a = spec.clone();
    a.parent_name = "b.vhd".into();
    a.locators = vec![(*b"W2ru", utf16le_bytes("b.vhd"))];
    let mut b = spec.clone();
    b.parent_name = "a.vhd".into();
    b.locators = vec![(*b"W2ru", utf16le_bytes("a.vhd"))];
    std::fs::write(dir.path().join("a.vhd"), build(&a)).unwrap();
    std::fs::write(dir.path().join("b.vhd"), build(&b)).unwrap();
    let msg = image::open(&dir.path().join("a.vhd")).unwrap_err().to_string();
    assert!(msg.contains("loops"), "{msg}");
}

// ------------------------------------------------------------------
// Hostile input
// ------------------------------------------------------------------

#[test]
fn small_dynamic_reads() {
    let (img, flat) = small_dynamic();
    let d = open_mem(img).unwrap();
    assert_eq!(d.info.allocated_blocks, Some(3));
    assert_eq!(d.info.block_size, Some(64 << 10));
    assert!(disk_bytes(d.disk.as_ref()) == flat);
    check_random_reads(d.disk.as_ref(), &flat, 300, 5);
    assert_layer_err(d.disk.read_at(MIB, &mut [0u8; 1]), "read past end");
    assert_layer_err(d.disk.read_at(u64::MAX, &mut [0u8; 2]), "read overflow");
    d.disk.read_at(MIB, &mut []).unwrap();
}

#[test]
fn hostile_truncation() {
    let (img, flat) = small_dynamic();
    for n in [0usize, 100, 511] {
        assert_layer_err(open_mem(img[..n].to_vec()), "tiny file");
    }
    // Cut inside the BAT: the footer copy at 0 is found, the BAT is not.
    assert_layer_err(open_mem(img[..1560].to_vec()), "cut in BAT");
    // Cut inside the last block: opens through the footer copy at offset 0
    // (documented); the lost block gives an error naming its BAT entry.
    let cut = img.len() - 512 - 1000;
    let t = open_mem(img[..cut].to_vec()).unwrap();
    let mut b = vec![0u8; 64 << 10];
    t.disk.read_at(3 * (64 << 10), &mut b).unwrap();
    assert!(b[..] == flat[3 * (64 << 10)..4 * (64 << 10)]);
    let msg = assert_layer_err(t.disk.read_at(15 * (64 << 10), &mut b), "lost block");
    // The BAT entry of block 15 is at 1536 + 15 * 4 = 0x63c.
    assert!(msg.contains("offset 0x63c") && msg.contains("block 15"), "{msg}");
    // A fixed disk that lost its footer: no VHD left.
    let mut s = Spec::dynamic(64 << 10, 2 << 20);
    s.disk_type = 2;
    s.fixed_data = pattern(1, 0, 64 << 10);
    let fixed = build(&s);
    assert!(open_mem(fixed.clone()).is_ok());
    assert_layer_err(open_mem(fixed[..fixed.len() - 100].to_vec()), "fixed truncated");
}

#[test]
fn hostile_footers() {
    let mut s = Spec::dynamic(64 << 10, 2 << 20);
    s.disk_type = 2;
    s.fixed_data = pattern(1, 0, 64 << 10);
    let fixed = build(&s);
    let end = fixed.len() - 512;
    // Zeroed footer.
    let mut f = fixed.clone();
    f[end..].fill(0);
    assert_layer_err(open_mem(f), "zeroed fixed footer");
    // One flipped bit: checksum error naming the footer offset.
    let mut f = fixed.clone();
    f[end + 50] ^= 0x04;
    let msg = assert_layer_err(open_mem(f), "flipped fixed footer");
    assert!(msg.contains("checksum") && msg.contains(&format!("{end:#x}")), "{msg}");
    // Current size larger than the data before the footer.
    let mut f = fixed.clone();
    patch_footers(&mut f, |x| x[48..56].copy_from_slice(&(1u64 << 20).to_be_bytes()));
    assert_layer_err(open_mem(f), "fixed size too large");

    let (dynamic, flat) = small_dynamic();
    let end = dynamic.len() - 512;
    // End footer zeroed or flipped, copy at 0 intact: the copy is used.
    for mutate in [|f: &mut [u8]| f.fill(0), |f: &mut [u8]| f[99] ^= 1] {
        let mut f = dynamic.clone();
        mutate(&mut f[end..]);
        let img = open_mem(f).unwrap();
        assert!(disk_bytes(img.disk.as_ref()) == flat);
    }
    // Both copies zeroed / flipped.
    let mut f = dynamic.clone();
    f[end..].fill(0);
    f[..512].fill(0);
    assert_layer_err(open_mem(f), "both footers zeroed");
    let mut f = dynamic.clone();
    f[end + 20] ^= 0x80;
    f[20] ^= 0x80;
    let msg = assert_layer_err(open_mem(f), "both footers flipped");
    assert!(msg.contains("checksum"), "{msg}");
    // Only the copy has the cookie, and it is damaged: its error is reported.
    let mut f = dynamic.clone();
    f[end..].fill(0);
    f[100] ^= 1;
    let msg = assert_layer_err(open_mem(f), "copy flipped");
    assert!(msg.contains("checksum") && msg.contains("offset 0x0:"), "{msg}");
    // Field values.
    for (what, field, value) in [
        ("type 0", 60usize, 0u64),
        ("type 5", 60, 5),
        ("size 0", 48, 0),
        ("size 3 TiB", 48, 3 << 40),
        ("header past EOF", 16, 1 << 40),
        ("header offset overflow", 16, u64::MAX - 10),
    ] {
        let mut f = dynamic.clone();
        patch_footers(&mut f, |x| {
            if field == 60 {
                x[60..64].copy_from_slice(&(value as u32).to_be_bytes());
            } else {
                x[field..field + 8].copy_from_slice(&value.to_be_bytes());
            }
        });
        assert_layer_err(open_mem(f), what);
    }
}

#[test]
fn hostile_dynamic_header_and_bat() {
    let (dynamic, _) = small_dynamic();
    // Flipped header bit: checksum error at the header offset.
    let mut f = dynamic.clone();
    f[512 + 30] ^= 1;
    let msg = assert_layer_err(open_mem(f), "flipped header");
    assert!(msg.contains("checksum") && msg.contains("offset 0x200"), "{msg}");
    // Wrong cookie.
    let mut f = dynamic.clone();
    patch_header(&mut f, |h| h[0] = b'X');
    assert_layer_err(open_mem(f), "header cookie");
    let u32_field =
        |off: usize, v: u32| move |h: &mut [u8]| h[off..off + 4].copy_from_slice(&v.to_be_bytes());
    for (what, off, v) in [
        ("block size 0", 32usize, 0u32),
        ("block size not a power of two", 32, 3 << 20),
        ("block size 2 KiB", 32, 2048),
        ("block size 512 MiB", 32, 512 << 20),
        ("huge max table entries", 28, u32::MAX),
        ("max table entries over the cap", 28, (1 << 24) + 1),
        ("max table entries past EOF", 28, 1 << 20),
        ("too few table entries", 28, 15),
    ] {
        let mut f = dynamic.clone();
        patch_header(&mut f, u32_field(off, v));
        assert_layer_err(open_mem(f), what);
    }
    for (what, v) in [("BAT past EOF", 1u64 << 30), ("BAT offset overflow", u64::MAX - 3)] {
        let mut f = dynamic.clone();
        patch_header(&mut f, |h| h[16..24].copy_from_slice(&v.to_be_bytes()));
        assert_layer_err(open_mem(f), what);
    }
    // A BAT entry past EOF: opening works, reading that block fails.
    for entry in [0x00FF_FFFFu32, 0xFFFF_FFFE, (dynamic.len() / 512 - 1) as u32] {
        let mut f = dynamic.clone();
        f[1536 + 3 * 4..1536 + 4 * 4].copy_from_slice(&entry.to_be_bytes());
        let img = open_mem(f).unwrap();
        let mut b = [0u8; 4096];
        img.disk.read_at(0, &mut b).unwrap();
        let msg = assert_layer_err(img.disk.read_at(3 * (64 << 10) + 100, &mut b), "BAT entry past EOF");
        assert!(msg.contains("offset 0x60c") && msg.contains("past the end"), "{msg}");
    }
}

/// Random corruption of a small dynamic image and of a differencing child of
/// it (its parent found in memory): open and read everything. Errors are
/// fine, panics and hangs are not; every error must be one line naming the
/// VHD layer and an offset, of the kinds hostile bytes can cause (corrupt,
/// unsupported, parent missing); and enough mutated inputs still open and read
/// for the test to mean something.
#[test]
fn hostile_random_mutations_never_panic() {
    let (dynamic, flat) = small_dynamic();
    let mut diff = Spec::dynamic(MIB, 64 << 10);
    diff.disk_type = 4;
    diff.uid = [0x22; 16];
    diff.parent_uid = [0x11; 16]; // small_dynamic's unique id
    diff.parent_name = "nothing-here.vhd".into();
    diff.locators = vec![(*b"W2ru", utf16le_bytes("p.vhd")), (*b"Wi2k", b"C:\\p.vhd".to_vec())];
    // Sector 0 of block 0 from the child, the rest from the parent.
    let mut bm = vec![0u8; diff.bitmap_size()];
    bm[0] = 0x80;
    diff.blocks.push((0, bm, vec![0xC5; 64 << 10]));
    let diff = build(&diff);
    // Unmutated, the child opens over its parent and reads as documented.
    let dir = MemDir::new();
    dir.insert("p.vhd", dynamic.clone());
    dir.insert("child.vhd", diff.clone());
    let chain = image::open_source(Arc::new(dir.open("child.vhd").unwrap())).unwrap();
    let mut want = flat.clone();
    want[..512].fill(0xC5);
    assert!(disk_bytes(chain.disk.as_ref()) == want);

    let check_err = |e: Error, what: &str| {
        let msg = e.to_string();
        assert!(
            matches!(e, Error::Corrupt { layer: Layer::Vhd, .. } | Error::Unsupported { layer: Layer::Vhd, .. } | Error::MissingParent { layer: Layer::Vhd, .. }),
            "{what}: unexpected error kind: {e:?}"
        );
        assert!(!msg.contains('\n') && msg.starts_with("image/vhd at offset 0x"), "{what}: {msg}");
    };
    let mut r = Rng(0xF022);
    let (mut opened, mut read_whole, mut open_errors, mut read_errors, mut as_raw) = (0, 0, 0, 0, 0);
    for i in 0..1500 {
        let is_diff = i % 4 == 0;
        let mut img = if is_diff { diff.clone() } else { dynamic.clone() };
        let n = 1 + r.next() % 8;
        for _ in 0..n {
            let len = img.len() as u64;
            let pos = match r.next() % 3 {
                0 => r.next() % 2048,
                1 => len - 512 + r.next() % 512,
                _ => r.next() % len,
            } as usize;
            img[pos] = r.next() as u8;
        }
        if r.next() % 2 == 0 {
            patch_footers(&mut img, |_| {});
            patch_header(&mut img, |_| {});
        }
        if r.next() % 10 == 0 {
            let keep = (r.next() % img.len() as u64) as usize;
            img.truncate(keep);
        }
        let dir = MemDir::new();
        dir.insert("p.vhd", dynamic.clone());
        dir.insert("x.vhd", img);
        match image::open_source(Arc::new(dir.open("x.vhd").unwrap())) {
            Ok(im) => {
                opened += 1;
                if im.info.format == Format::Raw {
                    // Both cookies gone: not a VHD any more.
                    as_raw += 1;
                    continue;
                }
                let d = im.disk;
                let mut buf = vec![0u8; 100_000];
                let mut off = 0;
                let mut ok = true;
                while off < d.len() {
                    let n = (d.len() - off).min(buf.len() as u64) as usize;
                    if let Err(e) = d.read_at(off, &mut buf[..n]) {
                        check_err(e, &format!("mutation {i}: read at {off:#x}"));
                        read_errors += 1;
                        ok = false;
                    }
                    off += n as u64;
                }
                if ok {
                    read_whole += 1;
                }
            }
            // Both cookies gone and no disk signature left: refused by
            // detection as no disk image at all (once read as raw).
            Err(Error::Unsupported { layer: Layer::Image, .. }) => {
                opened += 1;
                as_raw += 1;
            }
            Err(e) => {
                check_err(e, &format!("mutation {i}: open"));
                open_errors += 1;
            }
        }
    }
    eprintln!(
        "1500 mutations: {opened} opened ({as_raw} as raw), {read_whole} read whole, {open_errors} open errors, {read_errors} read errors"
    );
    assert!(opened - as_raw >= 100, "too few mutated images opened as VHD: {opened} ({as_raw} as raw)");
    assert!(read_whole >= 100, "too few mutated images read whole: {read_whole}");
    assert!(open_errors >= 100, "too few mutations were refused: {open_errors}");
}
