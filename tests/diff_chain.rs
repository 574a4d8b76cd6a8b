//! Differencing VHDX built here from the spec (MS-VHDX §2.6, formats.md C.5)
//! over a generated parent: the chain reads back identical to the flattened
//! disk, a stale parent_linkage is refused, a missing parent is named.
//! (Differencing VHD chains are tested in src/image/vhd.rs.)

mod common;
use common::*;
use std::path::Path;
use uuid::Uuid;

const CRC32C: crc::Crc<u32> = crc::Crc::<u32>::new(&crc::CRC_32_ISCSI);
const MIB: usize = 1 << 20;
const BS: usize = 2 * MIB; // child block size
const CHUNK_RATIO: usize = (1 << 23) * 512 / BS;

fn put_guid(b: &mut [u8], off: usize, g: Uuid) {
    b[off..off + 16].copy_from_slice(&g.to_bytes_le());
}
fn crc_at(b: &mut [u8], off: usize, len: usize) {
    b[off + 4..off + 8].fill(0);
    let c = CRC32C.checksum(&b[off..off + len]);
    b[off + 4..off + 8].copy_from_slice(&c.to_le_bytes());
}
fn utf16(s: &str) -> Vec<u8> {
    s.encode_utf16().flat_map(|u| u.to_le_bytes()).collect()
}

fn parent_data_write_guid(p: &[u8]) -> Uuid {
    let seq = |o: usize| u64::from_le_bytes(p[o + 8..o + 16].try_into().unwrap());
    let h = if seq(128 * 1024) > seq(64 * 1024) { 128 * 1024 } else { 64 * 1024 };
    Uuid::from_bytes_le(p[h + 32..h + 48].try_into().unwrap())
}

/// What the child holds: one block fully, another every other sector.
struct Child {
    full_block: usize,
    partial_block: usize,
}

/// Build a differencing VHDX over a parent of `vsize` bytes.
fn build_child(vsize: u64, linkage: Uuid, relative: &str, c: &Child) -> Vec<u8> {
    let blocks = (vsize as usize).div_ceil(BS);
    let sb_blocks = blocks.div_ceil(CHUNK_RATIO);
    let entries = sb_blocks * (CHUNK_RATIO + 1);
    let (bat_off, meta_off, data_off) = (2 * MIB, 3 * MIB, 4 * MIB);
    let bitmap_off = data_off + 2 * BS;
    let mut f = vec![0u8; bitmap_off + MIB];
    f[0..8].copy_from_slice(b"vhdxfile");
    for (i, off) in [64 * 1024, 128 * 1024].into_iter().enumerate() {
        f[off..off + 4].copy_from_slice(b"head");
        f[off + 8..off + 16].copy_from_slice(&(i as u64 + 1).to_le_bytes());
        put_guid(&mut f, off + 16, Uuid::from_u128(0x1111));
        put_guid(&mut f, off + 32, Uuid::from_u128(0x2222));
        f[off + 66..off + 68].copy_from_slice(&1u16.to_le_bytes());
        f[off + 68..off + 72].copy_from_slice(&(MIB as u32).to_le_bytes());
        f[off + 72..off + 80].copy_from_slice(&(MIB as u64).to_le_bytes());
        crc_at(&mut f, off, 4096);
    }
    let rt = 192 * 1024;
    f[rt..rt + 4].copy_from_slice(b"regi");
    f[rt + 8..rt + 12].copy_from_slice(&2u32.to_le_bytes());
    for (i, (g, off)) in [("2DC27766-F623-4200-9D64-115E9BFD4A08", bat_off), ("8B7CA206-4790-4B9A-B8FE-575F050F886E", meta_off)].iter().enumerate() {
        let e = rt + 16 + 32 * i;
        put_guid(&mut f, e, Uuid::parse_str(g).unwrap());
        f[e + 16..e + 24].copy_from_slice(&(*off as u64).to_le_bytes());
        f[e + 24..e + 28].copy_from_slice(&(MIB as u32).to_le_bytes());
        f[e + 28..e + 32].copy_from_slice(&1u32.to_le_bytes());
    }
    crc_at(&mut f, rt, 64 * 1024);
    f.copy_within(rt..rt + 64 * 1024, 256 * 1024);

    // Metadata.
    let m = meta_off;
    f[m..m + 8].copy_from_slice(b"metadata");
    let mut locator = vec![0u8; 20];
    put_guid(&mut locator, 0, Uuid::parse_str("B04AEFB7-D19E-4A81-B789-25B8E9445913").unwrap());
    let kvs = [("parent_linkage", format!("{{{linkage}}}")), ("relative_path", relative.to_string())];
    locator[18..20].copy_from_slice(&(kvs.len() as u16).to_le_bytes());
    let mut strings = Vec::new();
    let table_end = 20 + 12 * kvs.len();
    let mut entries_bytes = Vec::new();
    for (k, v) in &kvs {
        let (k, v) = (utf16(k), utf16(v));
        let ko = table_end + strings.len();
        strings.extend_from_slice(&k);
        let vo = table_end + strings.len();
        strings.extend_from_slice(&v);
        entries_bytes.extend_from_slice(&(ko as u32).to_le_bytes());
        entries_bytes.extend_from_slice(&(vo as u32).to_le_bytes());
        entries_bytes.extend_from_slice(&(k.len() as u16).to_le_bytes());
        entries_bytes.extend_from_slice(&(v.len() as u16).to_le_bytes());
    }
    locator.extend_from_slice(&entries_bytes);
    locator.extend_from_slice(&strings);
    let mut fp = vec![0u8; 8];
    fp[0..4].copy_from_slice(&(BS as u32).to_le_bytes());
    fp[4..8].copy_from_slice(&2u32.to_le_bytes()); // HasParent
    let items: Vec<(&str, Vec<u8>, u32)> = vec![
        ("CAA16737-FA36-4D43-B3B6-33F0AA44E76B", fp, 4),
        ("2FA54224-CD1B-4876-B211-5DBED83BF4B8", vsize.to_le_bytes().to_vec(), 6),
        ("BECA12AB-B2E6-4523-93EF-C309E000C746", Uuid::from_u128(0x3333).to_bytes_le().to_vec(), 6),
        ("8141BF1D-A96F-4709-BA47-F233A8FAAB5F", 512u32.to_le_bytes().to_vec(), 6),
        ("CDA348C7-445D-4471-9CC9-E9885251C556", 4096u32.to_le_bytes().to_vec(), 6),
        ("A8D35F2D-B30B-454D-ABF7-D3D84834AB0C", locator, 4),
    ];
    f[m + 10..m + 12].copy_from_slice(&(items.len() as u16).to_le_bytes());
    let mut at = 64 * 1024;
    for (i, (g, data, flags)) in items.iter().enumerate() {
        let e = m + 32 + 32 * i;
        put_guid(&mut f, e, Uuid::parse_str(g).unwrap());
        f[e + 16..e + 20].copy_from_slice(&(at as u32).to_le_bytes());
        f[e + 20..e + 24].copy_from_slice(&(data.len() as u32).to_le_bytes());
        f[e + 24..e + 28].copy_from_slice(&flags.to_le_bytes());
        f[m + at..m + at + data.len()].copy_from_slice(data);
        at += data.len().div_ceil(8) * 8;
    }

    // BAT: block full_block FULLY_PRESENT at data_off, partial_block
    // PARTIALLY_PRESENT at data_off + BS, chunk 0's bitmap at bitmap_off.
    let bat = |f: &mut Vec<u8>, idx: usize, v: u64| f[bat_off + 8 * idx..bat_off + 8 * idx + 8].copy_from_slice(&v.to_le_bytes());
    assert!(entries * 8 <= MIB);
    bat(&mut f, c.full_block, ((data_off as u64 >> 20) << 20) | 6);
    bat(&mut f, c.partial_block, ((data_off + BS) as u64) | 7);
    bat(&mut f, CHUNK_RATIO, bitmap_off as u64 | 6);
    for (i, b) in f[data_off..data_off + BS].iter_mut().enumerate() {
        *b = (i % 251) as u8 ^ 0x5A;
    }
    for (i, b) in f[data_off + BS..data_off + 2 * BS].iter_mut().enumerate() {
        *b = (i % 241) as u8 ^ 0xC3;
    }
    // Sector bitmap (LSB-first): every other sector of partial_block is here.
    let first_sector = c.partial_block * BS / 512;
    for s in (first_sector..first_sector + BS / 512).step_by(2) {
        f[bitmap_off + s / 8] |= 1 << (s % 8);
    }
    f
}

fn flattened(parent: &[u8], child: &[u8], c: &Child) -> Vec<u8> {
    let mut d = parent.to_vec();
    let data_off = 4 * MIB;
    d[c.full_block * BS..(c.full_block + 1) * BS].copy_from_slice(&child[data_off..data_off + BS]);
    for k in (0..BS / 512).step_by(2) {
        let v = c.partial_block * BS + k * 512;
        d[v..v + 512].copy_from_slice(&child[data_off + BS + k * 512..data_off + BS + k * 512 + 512]);
    }
    d
}

fn read_all(img: &Path) -> Vec<u8> {
    let opened = rdprescue::image::open(img).unwrap();
    let mut v = vec![0u8; opened.disk.len() as usize];
    opened.disk.read_at(0, &mut v).unwrap();
    v
}

#[test]
fn vhdx_differencing_chain_reads_as_flattened() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("parents");
    std::fs::create_dir(&dir).unwrap();
    let parent_path = gunzip(&testdata().join("images/gen1-mbr-dynamic.vhdx.gz"), &dir);
    let parent_path = {
        let p = dir.join("parent.vhdx");
        std::fs::rename(&parent_path, &p).unwrap();
        p
    };
    let parent_file = std::fs::read(&parent_path).unwrap();
    let parent_disk = read_all(&parent_path);
    let c = Child { full_block: 5, partial_block: 9 }; // unused clusters of the parent's volumes
    let child = build_child(parent_disk.len() as u64, parent_data_write_guid(&parent_file), r"parents\parent.vhdx", &c);
    let child_path = tmp.path().join("child.avhdx");
    std::fs::write(&child_path, &child).unwrap();

    let expect = flattened(&parent_disk, &child, &c);
    assert_ne!(expect, parent_disk);
    let before = (sha256_file(&parent_path), sha256_file(&child_path));
    let got = read_all(&child_path);
    assert!(got == expect, "chain differs from the flattened disk");
    // Unaligned reads that straddle present/absent sectors and blocks.
    let opened = rdprescue::image::open(&child_path).unwrap();
    for (off, len) in [(9 * BS + 100, 1000), (4 * BS - 7, 3 * BS), (9 * BS + 511, 2), (8 * BS + 3, BS)] {
        let mut b = vec![0u8; len];
        opened.disk.read_at(off as u64, &mut b).unwrap();
        assert_eq!(b, expect[off..off + len], "read at {off:#x}+{len}");
    }
    // The CLI reports the chain and still reads the files of the parent's volumes.
    let o = rdp_on(&child_path, &["disk", "--json", child_path.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let j: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(j["container"]["format"], "vhdx-differencing");
    assert_eq!(j["container"]["parent"]["format"], "vhdx-dynamic");
    assert_eq!(j["windows_volumes"], serde_json::json!([2]));
    assert_eq!(before, (sha256_file(&parent_path), sha256_file(&child_path)), "inputs modified");

    // A parent changed after the child was made (new DataWriteGuid) is refused.
    let stale = build_child(parent_disk.len() as u64, Uuid::from_u128(42), r"parents\parent.vhdx", &c);
    let stale_path = tmp.path().join("stale.avhdx");
    std::fs::write(&stale_path, &stale).unwrap();
    let o = rdp_on(&stale_path, &["disk", stale_path.to_str().unwrap()]);
    assert_layer_error(&o, "stale linkage");
    assert!(stderr(&o).contains("parent_linkage"), "{}", stderr(&o));

    // Missing parent: named.
    let lost = build_child(parent_disk.len() as u64, parent_data_write_guid(&parent_file), r"elsewhere\gone.vhdx", &c);
    let lost_path = tmp.path().join("lost.avhdx");
    std::fs::write(&lost_path, &lost).unwrap();
    let o = rdp_on(&lost_path, &["disk", lost_path.to_str().unwrap()]);
    assert_layer_error(&o, "missing parent");
    assert!(stderr(&o).contains(r"elsewhere\gone.vhdx"), "{}", stderr(&o));
}
