//! VHD writers (`image::write::vhd`): full copies (dynamic and differencing
//! inputs -> dynamic VHD) and differencing children, checked with our reader,
//! qemu-img (`info` + `compare`; `qemu-img check` does not support vpc) and
//! libvhdi's `vhdiinfo`.

mod common;

use common::{disk_bytes, have, sha256_file, Rng, Start};
use rdprescue::image::write::{diff_child, full_copy, Patch};
use rdprescue::image::{self, Disk, Format, Image};
use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

const MIB: u64 = 1 << 20;
const GIB: u64 = 1 << 30;

// ----------------------------------------------------------------------
// Helpers
// ----------------------------------------------------------------------

/// qemu-img is there (the callers are marked ignored without it); always true.
fn qemu() -> bool {
    common::require("qemu-img");
    true
}

fn run(cmd: &mut Command) -> String {
    let out = cmd.out().unwrap();
    assert!(
        out.status.success(),
        "{cmd:?} failed: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// A raw file of `size` bytes (sparse) with `data` written at the given offsets.
fn make_raw(path: &Path, size: u64, data: &[(u64, Vec<u8>)]) {
    let f = File::create(path).unwrap();
    f.set_len(size).unwrap();
    for (o, d) in data {
        common::write_all_at(&f, d, *o).unwrap();
    }
}

/// `qemu-img convert` a raw file to VHD (`subformat` dynamic or fixed).
fn to_vhd(raw: &Path, vhd: &Path, subformat: &str, force_size: bool) {
    let opts = format!("subformat={subformat}{}", if force_size { ",force_size=on" } else { "" });
    run(Command::new("qemu-img").args(["convert", "-f", "raw", "-O", "vpc", "-o", &opts]).arg(raw).arg(vhd));
}

/// `qemu-img check`, which qemu does not implement for vpc: report what it says.
fn qemu_check(path: &Path) {
    let out = Command::new("qemu-img").args(["check", "-f", "vpc"]).arg(path).out().unwrap();
    let msg = String::from_utf8_lossy(&out.stderr);
    if out.status.success() {
        eprintln!("qemu-img check {}: ok", path.display());
    } else {
        assert!(msg.contains("does not support checks"), "qemu-img check {}: {msg}", path.display());
        eprintln!("NOTICE: qemu-img check -f vpc: {} (using qemu-img info + compare)", msg.trim());
    }
}

fn qemu_info(path: &Path) -> serde_json::Value {
    let out = run(Command::new("qemu-img").args(["info", "-f", "vpc", "--output=json"]).arg(path));
    serde_json::from_str(&out).unwrap()
}

/// `qemu-img compare` of a VHD with a raw file: identical contents.
fn qemu_compare(vhd: &Path, raw: &Path) {
    let out = run(Command::new("qemu-img").args(["compare", "-f", "vpc", "-F", "raw"]).arg(vhd).arg(raw));
    assert!(out.contains("Images are identical"), "qemu-img compare: {out}");
}

/// The patch used on the small images: a range crossing the 2 MiB block
/// boundary, a partial sector, a range in a block no layer allocates, two
/// ranges sharing a sector, whole aligned sectors, and zeros over data.
fn small_patch(r: &mut Rng) -> Patch {
    let mut p = Patch::default();
    p.write(2 * MIB - 300, &r.bytes(1000)); // crosses blocks 0/1, unaligned at both ends
    p.write(5 * MIB + 123, &r.bytes(17)); // inside one sector
    p.write(5 * MIB + 200, &r.bytes(5)); // same sector again
    p.write(16 * MIB + 4096 + 7, &r.bytes(5000)); // block 8: unallocated in the input
    p.write(11 * MIB, &r.bytes(3 * 512)); // whole sectors
    p.write(MIB, &vec![0u8; 4096]); // zeros over random data
    p
}

fn apply(expected: &mut [u8], patch: &Patch) {
    for (o, d) in patch.ranges() {
        expected[o as usize..o as usize + d.len()].copy_from_slice(d);
    }
}

fn new_file(path: &Path) -> File {
    std::fs::OpenOptions::new().read(true).write(true).create_new(true).open(path).unwrap()
}

/// Run full_copy into `out`, checking the progress reports.
fn do_full_copy(img: &Image, patch: &Patch, out: &Path) {
    let mut f = new_file(out);
    let mut calls: Vec<(u64, u64)> = Vec::new();
    full_copy(img, patch, &mut f, &mut |d, t| calls.push((d, t))).unwrap();
    assert!(!calls.is_empty());
    assert!(calls.windows(2).all(|w| w[0].0 <= w[1].0 && w[0].1 == w[1].1), "progress not monotonic");
    let (d, t) = *calls.last().unwrap();
    assert_eq!(d, t, "progress did not reach its total");
}

fn do_diff_child(img: &Image, patch: &Patch, out: &Path) {
    let mut f = new_file(out);
    diff_child(img, patch, &mut f, out).unwrap();
}

/// The small source: 20 MiB raw with random data in blocks 0, 1, 2, 5 and
/// 9 (2 MiB blocks), the rest zero.
fn small_source(dir: &Path, r: &mut Rng) -> (PathBuf, Vec<u8>) {
    let size = 20 * MIB;
    let data = vec![
        (0, r.bytes(64 << 10)),
        (2 * MIB - 4096, r.bytes(8192)),
        (4 * MIB + 512, r.bytes(MIB as usize)),
        (10 * MIB, r.bytes(2 * MIB as usize)),
        (19 * MIB, r.bytes(4096)),
    ];
    let raw = dir.join("source.raw");
    make_raw(&raw, size, &data);
    let flat = std::fs::read(&raw).unwrap();
    (raw, flat)
}

/// The VHD header fields of a file we wrote, for structural checks.
struct Parsed {
    footer: Vec<u8>,
    header: Vec<u8>,
}

fn parse(path: &Path) -> Parsed {
    let b = std::fs::read(path).unwrap();
    let footer = b[b.len() - 512..].to_vec();
    assert_eq!(&b[..512], &footer[..], "footer copy at 0 differs from the end footer");
    let header = b[512..1536].to_vec();
    assert_eq!(&footer[..8], b"conectix");
    assert_eq!(&header[..8], b"cxsparse");
    for (buf, field) in [(&footer, 64usize), (&header, 36)] {
        let sum = buf
            .iter()
            .enumerate()
            .filter(|(i, _)| !(field..field + 4).contains(i))
            .fold(0u32, |a, (_, &x)| a.wrapping_add(u32::from(x)));
        assert_eq!(u32::from_be_bytes(buf[field..field + 4].try_into().unwrap()), !sum, "checksum at {field}");
    }
    Parsed { footer, header }
}

/// File size of a VHD we write: structures up to `start`, then `n` blocks of
/// 2 MiB (512-byte bitmap) whose data areas start on 4 KiB boundaries, then
/// the footer.
fn vhd_size(start: u64, n: u64) -> u64 {
    let mut next = start;
    for _ in 0..n {
        let at = (next + 512).div_ceil(4096) * 4096 - 512;
        next = at + 512 + 2 * MIB;
    }
    next + 512
}

fn be32(b: &[u8], o: usize) -> u32 {
    u32::from_be_bytes(b[o..o + 4].try_into().unwrap())
}

/// vhdiinfo output, or None (with a notice) when libvhdi-utils is absent.
fn vhdiinfo(path: &Path) -> Option<String> {
    if !have("vhdiinfo") {
        eprintln!("NOTICE: vhdiinfo (libvhdi-utils) not installed; skipping its checks");
        return None;
    }
    let out = Command::new("vhdiinfo").arg(path).out().unwrap();
    let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert!(out.status.success(), "vhdiinfo {}: {text}", path.display());
    Some(text)
}

/// A VHD mounted with libvhdi's `vhdimount` (FUSE); unmounted on drop.
struct Mounted {
    dir: PathBuf,
    /// The file exposing the top layer (the image named on the command line).
    top: PathBuf,
}

impl Drop for Mounted {
    fn drop(&mut self) {
        let ok = Command::new("fusermount").arg("-u").arg(&self.dir).status().is_ok_and(|s| s.success());
        if !ok {
            let _ = Command::new("umount").arg(&self.dir).status();
        }
    }
}

/// Mount `image` with vhdimount, which opens differencing parents itself;
/// None (with a notice) when vhdimount or FUSE is unavailable.
fn vhdimount(image: &Path, mnt: &Path) -> Option<Mounted> {
    if !have("vhdimount") || !have("fusermount") || !Path::new("/dev/fuse").exists() {
        eprintln!("NOTICE: vhdimount, fusermount or /dev/fuse missing; skipping the libvhdi data checks");
        return None;
    }
    std::fs::create_dir_all(mnt).unwrap();
    let out = Command::new("vhdimount").arg(image).arg(mnt).out().unwrap();
    if !out.status.success() {
        // No FUSE, or a parent vhdimount cannot find: it ignores the locators
        // and looks only for the parent name's file name next to each child.
        eprintln!(
            "NOTICE: vhdimount could not mount {} (no FUSE, or a parent not next to its child): {}; \
             skipping the libvhdi data checks",
            image.display(),
            String::from_utf8_lossy(&out.stderr).lines().filter(|l| l.contains("parent") || l.contains("Unable")).collect::<Vec<_>>().join(" | ")
        );
        return None;
    }
    let mut layers: Vec<u32> = std::fs::read_dir(mnt)
        .unwrap()
        .filter_map(|e| e.ok()?.file_name().to_str()?.strip_prefix("vhdi")?.parse().ok())
        .collect();
    layers.sort_unstable();
    let top = mnt.join(format!("vhdi{}", layers.last().expect("vhdimount shows no layer")));
    Some(Mounted { dir: mnt.to_path_buf(), top })
}

fn read_range(path: &Path, off: u64, n: usize) -> Vec<u8> {
    let mut b = vec![0u8; n];
    common::read_exact_at(&File::open(path).unwrap(), &mut b, off).unwrap();
    b
}

/// Every bitmap byte of a child we wrote is 0x00 or 0xFF, and the set bits
/// are exactly the 4 KiB groups the patch touches.
fn check_child_bitmaps(child: &Path, patch: &Patch, vsize: u64) {
    let b = std::fs::read(child).unwrap();
    let entries = be32(&b, 512 + 28) as usize;
    let mut want = std::collections::BTreeSet::new();
    for (o, d) in patch.ranges() {
        for g in o / 4096..(o + d.len() as u64).div_ceil(4096) {
            want.insert(g);
        }
    }
    let mut got = std::collections::BTreeSet::new();
    for i in 0..entries {
        let e = be32(&b, 1536 + 4 * i);
        if e == u32::MAX {
            continue;
        }
        let bm = &b[e as usize * 512..e as usize * 512 + 512];
        for (j, &x) in bm.iter().enumerate() {
            let g = (i * 512 + j) as u64;
            let last_partial = g == vsize / 4096 && vsize % 4096 != 0;
            assert!(x == 0 || x == 0xFF || last_partial, "block {i} bitmap byte {j} = {x:#04x}");
            if x != 0 {
                got.insert(g);
            }
        }
    }
    assert_eq!(got, want, "bitmap groups");
}

// ----------------------------------------------------------------------
// Tests
// ----------------------------------------------------------------------

#[test]
#[cfg_attr(not(tool_qemu_img), ignore = "needs qemu-img (Linux)")]
fn full_copy_of_dynamic_vhd() {
    if !qemu() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let mut r = Rng(1);
    let (raw, flat) = small_source(dir.path(), &mut r);
    let patch = small_patch(&mut r);
    let mut expected = flat.clone();
    apply(&mut expected, &patch);
    let exp_raw = dir.path().join("expected.raw");
    std::fs::write(&exp_raw, &expected).unwrap();

    // force_size=on (creator "qem2": current size) and off (creator "qemu": CHS).
    for force in [true, false] {
        let src = dir.path().join(format!("dyn-{force}.vhd"));
        to_vhd(&raw, &src, "dynamic", force);
        let before = sha256_file(&src);
        let img = image::open(&src).unwrap();
        assert_eq!(img.info.format, Format::VhdDynamic);
        let vsize = img.disk.len();
        let out = dir.path().join(format!("copy-{force}.vhd"));
        do_full_copy(&img, &patch, &out);
        assert_eq!(before, sha256_file(&src), "input modified");

        // Structure: same geometry/sizes/creator, new unique id, type 3.
        let p = parse(&out);
        let sf = std::fs::read(&src).unwrap();
        let sf = &sf[sf.len() - 512..];
        assert_eq!(be32(&p.footer, 60), 3);
        assert_eq!(&p.footer[28..60], &sf[28..60], "creator, sizes and geometry are copied");
        assert_ne!(&p.footer[68..84], &sf[68..84], "a new unique id");
        assert_eq!(be32(&p.header, 32), 2 << 20);

        // Our reader.
        let copy = image::open(&out).unwrap();
        assert_eq!(copy.info.format, Format::VhdDynamic);
        assert_eq!(copy.disk.len(), vsize);
        // qemu without force_size rounds the size to CHS (up, here): the rest reads as zeros.
        let mut want = expected.clone();
        want.resize(vsize as usize, 0);
        assert!(disk_bytes(copy.disk.as_ref()) == want, "content (force_size={force})");
        // Sparse: blocks 0, 1, 2, 5, 8 (patch) and 9 of 10; block 3, 4, 6, 7 stay out.
        assert_eq!(copy.info.allocated_blocks, Some(6), "allocated blocks (force_size={force})");

        // qemu.
        qemu_check(&out);
        let info = qemu_info(&out);
        assert_eq!(info["virtual-size"].as_u64(), Some(vsize));
        if vsize == expected.len() as u64 {
            qemu_compare(&out, &exp_raw);
        } else {
            let chs = dir.path().join("expected-chs.raw");
            std::fs::write(&chs, &want).unwrap();
            qemu_compare(&out, &chs);
        }
        if let Some(v) = vhdiinfo(&out) {
            assert!(v.contains("Dynamic"), "{v}");
        }
        eprintln!(
            "full copy (force_size={force}): input {} bytes, output {} bytes, virtual {vsize}",
            std::fs::metadata(&src).unwrap().len(),
            std::fs::metadata(&out).unwrap().len()
        );
    }
}

#[test]
#[cfg_attr(not(tool_qemu_img), ignore = "needs qemu-img (Linux)")]
fn diff_child_of_fixed_and_dynamic_vhd() {
    if !qemu() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let mut r = Rng(2);
    let (raw, flat) = small_source(dir.path(), &mut r);
    let patch = small_patch(&mut r);
    let mut expected = flat.clone();
    apply(&mut expected, &patch);

    for sub in ["fixed", "dynamic"] {
        let parent = dir.path().join(format!("parent-{sub}.vhd"));
        to_vhd(&raw, &parent, sub, true);
        let before = sha256_file(&parent);
        let img = image::open(&parent).unwrap();
        let child = dir.path().join(format!("child-{sub}.vhd"));
        do_diff_child(&img, &patch, &child);
        assert_eq!(before, sha256_file(&parent), "parent modified");

        // Structure.
        let p = parse(&child);
        let pf = std::fs::read(&parent).unwrap();
        let pf = &pf[pf.len() - 512..];
        assert_eq!(be32(&p.footer, 60), 4, "differencing");
        assert_eq!(&p.footer[40..60], &pf[40..60], "sizes and geometry copied");
        assert_eq!(&p.header[40..56], &pf[68..84], "parent unique id");
        let name: Vec<u16> =
            p.header[64..576].chunks(2).map(|c| u16::from_be_bytes([c[0], c[1]])).take_while(|&u| u != 0).collect();
        // The file name (on Windows hosts, the absolute path, as Windows writes it).
        assert_eq!(String::from_utf16(&name).unwrap(), format!("parent-{sub}.vhd"));
        let codes: Vec<&[u8]> = (0..8).map(|i| &p.header[576 + 24 * i..580 + 24 * i]).collect();
        assert!(codes.contains(&&b"W2ru"[..]) && codes.contains(&&b"W2ku"[..]), "locators");
        // The W2ru data: UTF-16 LE ".\parent-x.vhd".
        let i = codes.iter().position(|c| *c == b"W2ru").unwrap();
        let e = &p.header[576 + 24 * i..600 + 24 * i];
        let (len, off) = (be32(e, 8) as usize, u64::from_be_bytes(e[16..24].try_into().unwrap()) as usize);
        let bytes = std::fs::read(&child).unwrap();
        let rel: Vec<u16> = bytes[off..off + len].chunks(2).map(|c| u16::from_le_bytes([c[0], c[1]])).collect();
        assert_eq!(String::from_utf16(&rel).unwrap(), format!(".\\parent-{sub}.vhd"));
        // Touched blocks only: 0, 1, 2, 5 and 8, after footer copy, header,
        // a 10-entry BAT (512 bytes) and two 512-byte locator areas.
        assert_eq!(bytes.len() as u64, vhd_size(512 + 1024 + 512 + 2 * 512, 5), "child size");
        // Block data areas are 4 KiB-aligned, as Windows places them.
        for i in 0..10 {
            let e = be32(&bytes, 1536 + 4 * i);
            assert!(e == u32::MAX || (u64::from(e) * 512 + 512) % 4096 == 0, "block {i} at sector {e}");
        }

        check_child_bitmaps(&child, &patch, expected.len() as u64);

        // Our reader, through the parent locator.
        let c = image::open(&child).unwrap();
        assert_eq!(c.info.format, Format::VhdDifferencing);
        assert_eq!(c.info.allocated_blocks, Some(5));
        let pinfo = c.info.parent.as_ref().expect("parent opened");
        assert_eq!(pinfo.path.canonicalize().unwrap(), parent.canonicalize().unwrap());
        assert!(disk_bytes(c.disk.as_ref()) == expected, "child content ({sub} parent)");

        // libvhdi.
        if let Some(v) = vhdiinfo(&child) {
            let uid = uuid::Uuid::from_slice(&pf[68..84]).unwrap().to_string();
            assert!(v.contains("Differential") || v.contains("Differencing"), "{v}");
            assert!(v.to_lowercase().contains(&uid), "vhdiinfo does not show the parent id {uid}: {v}");
            assert!(v.contains(&format!("parent-{sub}.vhd")), "vhdiinfo does not show the parent name: {v}");
            eprintln!("vhdiinfo {}:\n{v}", child.display());
        }
        // libvhdi reads the data through the parent too.
        if let Some(m) = vhdimount(&child, &dir.path().join(format!("mnt-{sub}"))) {
            assert!(std::fs::read(&m.top).unwrap() == expected, "vhdimount view of the {sub} child");
        }
        // qemu-img opens it (its vpc driver does not follow parents).
        qemu_check(&child);
        let info = qemu_info(&child);
        assert_eq!(info["virtual-size"].as_u64(), Some(expected.len() as u64));

        // A full copy of the child flattens the chain.
        let mut patch2 = Patch::default();
        patch2.write(7 * MIB + 3, &r.bytes(100));
        let mut expected2 = expected.clone();
        apply(&mut expected2, &patch2);
        let flat_out = dir.path().join(format!("flat-{sub}.vhd"));
        let child_sha = sha256_file(&child);
        do_full_copy(&c, &patch2, &flat_out);
        assert_eq!(child_sha, sha256_file(&child));
        let fimg = image::open(&flat_out).unwrap();
        assert_eq!(fimg.info.format, Format::VhdDynamic);
        assert!(disk_bytes(fimg.disk.as_ref()) == expected2, "flattened content ({sub} parent)");
        let exp2 = dir.path().join("expected2.raw");
        std::fs::write(&exp2, &expected2).unwrap();
        qemu_compare(&flat_out, &exp2);
        // A fixed parent has no allocation map: its zero blocks are still left out.
        assert_eq!(fimg.info.allocated_blocks, Some(7), "blocks 0, 1, 2, 3, 5, 8, 9");
    }
}

#[test]
#[cfg_attr(not(tool_qemu_img), ignore = "needs qemu-img (Linux)")]
fn diff_child_in_another_directory_and_grandchild() {
    if !qemu() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let mut r = Rng(3);
    let (raw, flat) = small_source(dir.path(), &mut r);
    std::fs::create_dir(dir.path().join("base")).unwrap();
    std::fs::create_dir(dir.path().join("kids")).unwrap();
    let parent = dir.path().join("base/p.vhd");
    to_vhd(&raw, &parent, "dynamic", true);
    let img = image::open(&parent).unwrap();
    let patch = small_patch(&mut r);
    let mut expected = flat.clone();
    apply(&mut expected, &patch);
    let child = dir.path().join("kids/c.vhd");
    do_diff_child(&img, &patch, &child);
    let c = image::open(&child).unwrap();
    assert!(disk_bytes(c.disk.as_ref()) == expected);

    // A child of the child (differencing parent), next to it.
    let mut p2 = Patch::default();
    p2.write(2 * MIB - 10, &r.bytes(20));
    p2.write(19 * MIB + 511, &[0xEE; 2]);
    let mut expected2 = expected.clone();
    apply(&mut expected2, &p2);
    let g = dir.path().join("kids/g.vhd");
    do_diff_child(&c, &p2, &g);
    let gi = image::open(&g).unwrap();
    assert_eq!(gi.info.parent.as_ref().unwrap().format, Format::VhdDifferencing);
    assert!(disk_bytes(gi.disk.as_ref()) == expected2);
    // Only 20 bytes in two blocks and 2 bytes in a third: three blocks.
    assert_eq!(gi.info.allocated_blocks, Some(3));
    check_child_bitmaps(&g, &p2, expected2.len() as u64);
    if let Some(m) = vhdimount(&g, &dir.path().join("mnt")) {
        assert!(std::fs::read(&m.top).unwrap() == expected2, "vhdimount view of the grandchild");
    }
    if let Some(v) = vhdiinfo(&child) {
        assert!(v.contains("p.vhd"), "{v}");
    }
}

#[test]
#[cfg_attr(not(tool_qemu_img), ignore = "needs qemu-img (Linux)")]
fn errors_are_clean() {
    if !qemu() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let mut r = Rng(4);
    let (raw, _) = small_source(dir.path(), &mut r);
    let src = dir.path().join("d.vhd");
    to_vhd(&raw, &src, "dynamic", true);
    let img = image::open(&src).unwrap();
    // A patch past the end of the disk.
    let mut p = Patch::default();
    p.write(img.disk.len() - 1, &[1, 2]);
    let mut f = new_file(&dir.path().join("x.vhd"));
    assert!(full_copy(&img, &p, &mut f, &mut |_, _| {}).is_err());
    assert!(diff_child(&img, &p, &mut f, &dir.path().join("x.vhd")).is_err());
    // A raw input has no VHD child (the random source gets a boot-sector
    // signature: unknown bytes are no longer opened as raw).
    let mut signed = std::fs::read(&raw).unwrap();
    signed[510..512].copy_from_slice(&[0x55, 0xAA]);
    let signed_raw = dir.path().join("signed.raw");
    std::fs::write(&signed_raw, &signed).unwrap();
    let rimg = image::open(&signed_raw).unwrap();
    let e = diff_child(&rimg, &Patch::default(), &mut f, &dir.path().join("x.vhd")).unwrap_err();
    assert!(e.to_string().contains("raw"), "{e}");
    // The input truncated between open and write: the writers read through
    // the opened image (never by reopening the path), and the first read of
    // data that is gone is a VHD-layer error with an offset.
    let src2 = dir.path().join("e.vhd");
    to_vhd(&raw, &src2, "dynamic", true);
    let img2 = image::open(&src2).unwrap();
    std::fs::write(&src2, b"not a vhd any more").unwrap();
    let e = full_copy(&img2, &Patch::default(), &mut f, &mut |_, _| {}).unwrap_err().to_string();
    assert!(e.contains("image/vhd") && e.contains("offset 0x"), "{e}");
    // A partial-sector patch: the child's sectors are completed from the input.
    let mut p = Patch::default();
    p.write(100, &[1, 2, 3]);
    let e = diff_child(&img2, &p, &mut f, &dir.path().join("x.vhd")).unwrap_err().to_string();
    assert!(e.contains("image/vhd") && e.contains("offset 0x"), "{e}");
}

/// A 127 GiB sparse dynamic VHD: the child is small and quick to make; a full
/// copy reads only the allocated blocks.
#[test]
#[cfg_attr(not(tool_qemu_img), ignore = "needs qemu-img (Linux)")]
fn big_sparse_127_gib() {
    if !qemu() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let mut r = Rng(5);
    let size = 127 * GIB;
    let data = vec![(0, r.bytes(MIB as usize)), (64 * GIB + 12345, r.bytes(300_000)), (size - MIB, r.bytes(MIB as usize))];
    let raw = dir.path().join("big.raw");
    make_raw(&raw, size, &data);
    let parent = dir.path().join("big.vhd");
    let t = Instant::now();
    to_vhd(&raw, &parent, "dynamic", true);
    eprintln!("qemu-img convert of the 127 GiB raw file: {:?}", t.elapsed());
    let before = sha256_file(&parent);
    let img = image::open(&parent).unwrap();
    assert_eq!(img.disk.len(), size);

    let mut patch = Patch::default();
    patch.write(510, &r.bytes(4)); // partial sector at the MBR signature
    patch.write(2 * MIB - 100, &r.bytes(200)); // crosses a block boundary
    patch.write(100 * GIB + 777, &r.bytes(70_000)); // unallocated block
    patch.write(size - 512, &r.bytes(512)); // the last sector
    let ranges: Vec<(u64, Vec<u8>)> = patch.ranges().map(|(o, d)| (o, d.to_vec())).collect();

    let child = dir.path().join("big-child.vhd");
    let t = Instant::now();
    do_diff_child(&img, &patch, &child);
    let took = t.elapsed();
    let child_size = std::fs::metadata(&child).unwrap().len();
    let child_alloc = common::allocated_bytes(&std::fs::metadata(&child).unwrap());
    let bat = (127 * GIB / (2 * MIB)) * 4;
    eprintln!(
        "MEASURED: differencing child of the 127 GiB VHD: {child_size} bytes ({} KiB; BAT {bat} bytes, \
         4 touched blocks; {child_alloc} bytes allocated on disk), made in {took:?}",
        child_size / 1024
    );
    assert_eq!(before, sha256_file(&parent), "parent modified");
    // footer copy + header + BAT + 2 locator areas + 4 blocks (0, 1, 51200, 65023) + footer.
    assert_eq!(child_size, vhd_size(512 + 1024 + bat + 2 * 512, 4));

    // Read back the patched ranges and their surroundings.
    let c = image::open(&child).unwrap();
    assert_eq!(c.info.format, Format::VhdDifferencing);
    let read = |d: &dyn Disk, o: u64, n: usize| {
        let mut b = vec![0u8; n];
        d.read_at(o, &mut b).unwrap();
        b
    };
    for (o, d) in &ranges {
        let lo = o.saturating_sub(4096);
        let hi = (o + d.len() as u64 + 4096).min(size);
        let mut want = read(img.disk.as_ref(), lo, (hi - lo) as usize);
        want[(o - lo) as usize..(o - lo) as usize + d.len()].copy_from_slice(d);
        assert!(read(c.disk.as_ref(), lo, (hi - lo) as usize) == want, "range at {o:#x}");
    }
    // Elsewhere the child reads as its parent.
    for o in [MIB, 64 * GIB, 64 * GIB + 300_000, size - 2 * MIB, 3 * GIB] {
        assert!(read(c.disk.as_ref(), o, 65536) == read(img.disk.as_ref(), o, 65536), "at {o:#x}");
    }
    if let Some(v) = vhdiinfo(&child) {
        assert!(v.contains("big.vhd"), "{v}");
    }
    check_child_bitmaps(&child, &patch, size);
    if let Some(m) = vhdimount(&child, &dir.path().join("mnt")) {
        for (o, d) in &ranges {
            let lo = o.saturating_sub(8192);
            let n = ((o + d.len() as u64 + 8192).min(size) - lo) as usize;
            assert!(read_range(&m.top, lo, n) == read(c.disk.as_ref(), lo, n), "vhdimount at {o:#x}");
        }
    }

    // A full copy of the child: reads only the blocks allocated in the chain.
    let flat = dir.path().join("big-flat.vhd");
    let t = Instant::now();
    do_full_copy(&c, &Patch::default(), &flat);
    eprintln!(
        "MEASURED: full copy of the 127 GiB chain: {} bytes, in {:?}",
        std::fs::metadata(&flat).unwrap().len(),
        t.elapsed()
    );
    // Expected: the raw file with the patch written (still sparse).
    {
        let f = std::fs::OpenOptions::new().write(true).open(&raw).unwrap();
        for (o, d) in &ranges {
            common::write_all_at(&f, d, *o).unwrap();
        }
    }
    let t = Instant::now();
    qemu_compare(&flat, &raw);
    eprintln!("qemu-img compare of the flattened 127 GiB copy with the raw file: {:?}", t.elapsed());
    let fi = image::open(&flat).unwrap();
    // Blocks 0, 1, 32768 (64 GiB), 51200 (100 GiB) and 65023 (the last).
    assert_eq!(fi.info.allocated_blocks, Some(5));
}

/// Windows-made VHDs (diskpart) from ../shared/data/images as inputs.
#[test]
#[cfg_attr(not(shared_data), ignore = "needs ../shared/data")]
fn windows_made_inputs() {
    let Some(data) = common::shared_data() else { return };
    let dir = tempfile::tempdir().unwrap();
    let mut r = Rng(6);
    for name in ["win10-fixed.vhd", "win10-dynamic.vhd"] {
        let src = common::gunzip(&data.join("images").join(format!("{name}.gz")), dir.path());
        let before = sha256_file(&src);
        let img = image::open(&src).unwrap();
        let n = img.disk.len();
        let mut expected = disk_bytes(img.disk.as_ref());
        let mut patch = Patch::default();
        patch.write(446, &r.bytes(64)); // the MBR partition table
        patch.write(2 * MIB - 1, &r.bytes(2)); // across the first block boundary
        patch.write(n - 700, &r.bytes(100)); // near the end
        apply(&mut expected, &patch);

        let child = dir.path().join(format!("child-{name}"));
        do_diff_child(&img, &patch, &child);
        let c = image::open(&child).unwrap();
        assert!(disk_bytes(c.disk.as_ref()) == expected, "{name} child");
        if let Some(v) = vhdiinfo(&child) {
            assert!(v.contains(name), "{v}");
        }
        check_child_bitmaps(&child, &patch, n);
        if let Some(m) = vhdimount(&child, &dir.path().join(format!("mnt-{name}"))) {
            assert!(std::fs::read(&m.top).unwrap() == expected, "vhdimount view of the {name} child");
        }
        if img.info.format == Format::VhdDynamic {
            let out = dir.path().join(format!("copy-{name}"));
            do_full_copy(&img, &patch, &out);
            let o = image::open(&out).unwrap();
            assert!(disk_bytes(o.disk.as_ref()) == expected, "{name} full copy");
            assert_eq!(o.info.creator.as_deref(), Some("win"), "creator kept");
            if have("qemu-img") {
                let exp = dir.path().join("expected.raw");
                std::fs::write(&exp, &expected).unwrap();
                qemu_compare(&out, &exp);
            }
        }
        assert_eq!(before, sha256_file(&src), "{name} modified");
    }
}
