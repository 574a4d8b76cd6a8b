//! Hostile containers through the command line: every one must give exit 2 and
//! one line naming the layer and an offset, never a panic or a hang, and the
//! input must stay untouched.

mod common;
use common::*;
use std::path::{Path, PathBuf};

const CRC32C: crc::Crc<u32> = crc::Crc::<u32>::new(&crc::CRC_32_ISCSI);

fn fixture(name: &str, tmp: &Path) -> Vec<u8> {
    std::fs::read(gunzip(&testdata().join("images").join(name), tmp)).unwrap()
}

fn write(tmp: &Path, name: &str, bytes: &[u8]) -> PathBuf {
    let p = tmp.join(name);
    std::fs::write(&p, bytes).unwrap();
    p
}

fn expect_error(img: &Path, what: &str, needle: &str) {
    let o = rdp_on(img, &["disk", "--json", img.to_str().unwrap()]);
    assert_layer_error(&o, what);
    assert!(error_line(&o).contains(needle), "{what}: expected {needle:?} in: {}", error_line(&o));
}

fn le32(b: &[u8], o: usize) -> u32 {
    u32::from_le_bytes(b[o..o + 4].try_into().unwrap())
}
fn le64(b: &[u8], o: usize) -> u64 {
    u64::from_le_bytes(b[o..o + 8].try_into().unwrap())
}

/// Recompute the CRC-32C of a VHDX structure of `len` bytes at `off` (checksum at +4).
fn fix_crc(b: &mut [u8], off: usize, len: usize) {
    b[off + 4..off + 8].fill(0);
    let c = CRC32C.checksum(&b[off..off + len]);
    b[off + 4..off + 8].copy_from_slice(&c.to_le_bytes());
}

/// (file offset of the BAT, its length) from region table 1.
fn bat_region(b: &[u8]) -> (usize, usize, usize) {
    let rt = 192 * 1024;
    for i in 0..le32(b, rt + 8) as usize {
        let e = rt + 16 + 32 * i;
        if b[e..e + 4] == [0x66, 0x77, 0xC2, 0x2D] {
            return (e, le64(b, e + 16) as usize, le32(b, e + 24) as usize);
        }
    }
    panic!("no BAT region");
}

#[test]
fn hostile_vhdx() {
    let tmp = tempfile::tempdir().unwrap();
    let t = tmp.path();
    let good = fixture("gen1-mbr-dynamic.vhdx.gz", t);

    expect_error(&write(t, "trunc.vhdx", &good[..200 * 1024]), "truncated", "image/vhdx");

    let mut z = good.clone();
    z[64 * 1024..320 * 1024].fill(0);
    expect_error(&write(t, "zeroed.vhdx", &z), "zeroed headers", "both headers are invalid");

    // One bad header: the other one is used. Both bad: error.
    let mut one = good.clone();
    one[64 * 1024 + 100] ^= 1;
    let p = write(t, "flip1.vhdx", &one);
    assert_eq!(rdp_on(&p, &["disk", p.to_str().unwrap()]).status.code(), Some(0));
    one[128 * 1024 + 100] ^= 1;
    expect_error(&write(t, "flip2.vhdx", &one), "both headers flipped", "CRC-32C");

    // Both region tables damaged.
    let mut r = good.clone();
    r[192 * 1024 + 40] ^= 0x80;
    r[256 * 1024 + 40] ^= 0x80;
    expect_error(&write(t, "regions.vhdx", &r), "region tables", "region table CRC-32C");

    // A BAT region far larger than the file.
    let mut h = good.clone();
    let (e, _, _) = bat_region(&h);
    h[e + 24..e + 28].copy_from_slice(&0xFFF0_0000u32.to_le_bytes());
    fix_crc(&mut h, 192 * 1024, 64 * 1024);
    h.copy_within(192 * 1024..256 * 1024, 256 * 1024);
    expect_error(&write(t, "hugebat.vhdx", &h), "huge BAT", "past the end of the file");

    // A BAT entry pointing far past the end of the file: error when read.
    let mut b = good.clone();
    let (_, bat, _) = bat_region(&b);
    let first = (0..64).find(|i| le64(&b, bat + 8 * i) & 7 == 6).unwrap();
    b[bat + 8 * first..bat + 8 * first + 8].copy_from_slice(&((1u64 << 40) | 6).to_le_bytes());
    let p = write(t, "batpastend.vhdx", &b);
    let o = rdp_on(&p, &["cat", p.to_str().unwrap(), r"\Windows\System32\config\SYSTEM"]);
    assert_layer_error(&o, "BAT past end");
    assert!(stderr(&o).contains("BAT entry"), "{}", stderr(&o));
}

#[test]
fn hostile_vhd() {
    let tmp = tempfile::tempdir().unwrap();
    let t = tmp.path();
    let good = fixture("gen1-mbr-dynamic.vhd.gz", t);
    let n = good.len();
    // Truncated in the middle of the data: the footer copy at 0 is used, and the
    // missing blocks fail when read.
    let p = write(t, "trunc.vhd", &good[..n / 2]);
    let o = rdp_on(&p, &["cat", p.to_str().unwrap(), r"\Windows\System32\config\SOFTWARE"]);
    assert_layer_error(&o, "truncated vhd");
    let mut z = good.clone();
    z[..512].fill(0);
    z[n - 512..].fill(0);
    let p = write(t, "zeroed.vhd", &z);
    // No footer anywhere: not a VHD at all, read as raw, with no partition table.
    let o = rdp_on(&p, &["disk", "--json", p.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let mut f = good.clone();
    f[n - 512 + 48] ^= 0x10;
    f[48] ^= 0x10;
    expect_error(&write(t, "flip.vhd", &f), "flipped footer", "checksum");
}

/// A differencing VHD that is its own parent (the Windows-made orphan renamed to
/// the parent name it records).
#[test]
#[cfg_attr(not(shared_data), ignore = "needs ../shared/data")]
fn looping_parent_chain() {
    let Some(data) = shared_data() else { return };
    let tmp = tempfile::tempdir().unwrap();
    let orphan = gunzip(&data.join("images/win10-diskpart-orphan-differencing.vhd.gz"), tmp.path());
    let looped = tmp.path().join("fat-parent.vhd");
    std::fs::rename(&orphan, &looped).unwrap();
    let o = rdp_on(&looped, &["disk", looped.to_str().unwrap()]);
    assert_clean_error(&o, "looping chain");
    assert!(stderr(&o).contains("loops back"), "{}", stderr(&o));
}

/// Partition past the end of the disk.
#[test]
fn partition_past_end() {
    let tmp = tempfile::tempdir().unwrap();
    let mut d = fixture("gen1-mbr.raw.gz", tmp.path());
    let e = 0x1BE + 16;
    d[e + 12..e + 16].copy_from_slice(&0x0100_0000u32.to_le_bytes());
    expect_error(&write(tmp.path(), "past.raw", &d), "partition past end", "past the end");
}

/// A FIFO (or socket, or character device) given as the image used to block
/// forever in open(); `audit` with one in its list never finished. Now: exit
/// 2 naming it, at once, and an error row in `audit`.
#[cfg(unix)]
#[test]
#[cfg_attr(not(tool_mkfifo), ignore = "needs mkfifo")]
fn fifo_and_special_files_are_refused() {
    require("mkfifo");
    let tmp = tempfile::tempdir().unwrap();
    let fifo = tmp.path().join("pipe.vhdx");
    let st = std::process::Command::new("mkfifo").arg(&fifo).status().unwrap();
    assert!(st.success());
    let f = fifo.to_str().unwrap();
    let want = format!("image/raw: {f} is a FIFO, not a disk image or block device");
    for args in [vec!["disk", f], vec!["disk", "--json", f], vec!["inspect", f], vec!["cat", f, r"\Windows\System32\config\SYSTEM"]] {
        let o = rdp_timeout(&args, 20);
        assert_clean_error(&o, &format!("{args:?}"));
        assert!(error_line(&o).contains(&want), "{args:?}: {}", error_line(&o));
    }
    // A character device.
    let o = rdp_timeout(&["disk", "/dev/null"], 20);
    assert_clean_error(&o, "disk /dev/null");
    assert!(stderr(&o).contains("/dev/null is a character device"), "{}", stderr(&o));

    // audit: the good image gets its row, the FIFO an error row, and it ends.
    let good = gunzip(&testdata().join("images/gen1-mbr.raw.gz"), tmp.path());
    let g = good.to_str().unwrap();
    let o = rdp_timeout(&["audit", "--format", "jsonl", "-j", "2", g, f], 60);
    let rows: Vec<serde_json::Value> = stdout(&o).lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    assert_eq!(rows.len(), 2, "{}\n{}", stdout(&o), stderr(&o));
    let row = |p: &str| rows.iter().find(|r| r["image"] == p).unwrap_or_else(|| panic!("no row for {p}: {rows:?}"));
    assert_eq!(row(f)["status"], "error");
    assert!(row(f)["error"].as_str().unwrap().contains(&want), "{:?}", row(f));
    assert_ne!(row(g)["status"], "error", "{:?}", row(g));
    assert!(!stderr(&o).contains("panicked"), "{}", stderr(&o));

    // A differencing child whose parent was replaced by a FIFO: the parent
    // lookup skips it, naming why, instead of blocking in open().
    let parent = gunzip(&testdata().join("images/gen1-mbr-dynamic.vhd.gz"), tmp.path());
    let child = tmp.path().join("child.vhd");
    {
        use rdprescue::image::{self, write};
        let img = image::open(&parent).unwrap();
        let mut patch = write::Patch::default();
        patch.write(4096, &[1, 2, 3]);
        let mut out = std::fs::OpenOptions::new().read(true).write(true).create_new(true).open(&child).unwrap();
        write::diff_child(&img, &patch, &mut out, &child).unwrap();
    }
    assert_eq!(rdp_timeout(&["disk", child.to_str().unwrap()], 20).status.code(), Some(0));
    std::fs::remove_file(&parent).unwrap();
    assert!(std::process::Command::new("mkfifo").arg(&parent).status().unwrap().success());
    let o = rdp_timeout(&["disk", child.to_str().unwrap()], 20);
    assert_layer_error(&o, "parent replaced by a FIFO");
    let e = stderr(&o);
    assert!(e.contains("parent disk missing") && e.contains("is a FIFO"), "{e}");
}
