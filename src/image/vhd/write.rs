//! Writing VHD images (see [`super`]); layout from `formats.md` section D.
//!
//! Both writers build a **new** file from scratch, in this order:
//!
//! ```text
//! footer copy (512) | dynamic header (1024) | BAT | [locator data] | blocks | footer (512)
//! ```
//!
//! The BAT starts at 1536 and holds `⌈max(current size, virtual size) /
//! block size⌉` big-endian sector numbers, padded to 512 bytes with
//! `0xFFFFFFFF` (= unallocated). A block is `[sector bitmap, padded to 512
//! bytes][data]`; as Windows does, each block is placed so that its data area
//! starts on a 4 KiB boundary (the bitmap in the bytes just before it). The
//! block data are written first, then the BAT, the header and the footer
//! copy at 0, and the end footer last; the caller renames the file into place
//! only after verifying it, so the order only matters for the
//! fault-injection points (`vhd-data` after the block data, `vhd-footer`
//! before the end footer). Nothing is `fsync`ed here: that is the caller's
//! job before the rename.
//!
//! **Footer fields** are copied from the input's footer: features, version,
//! original and current size, CHS geometry, and the creator application,
//! version and host OS. Keeping the creator matters: readers (qemu, ours)
//! choose between CHS × 512 and the current size by the creator, so a new
//! creator could change the virtual size. New: the data offset (512), the
//! timestamp (now), the disk type, the checksum and a **new unique id**
//! (the content differs from the input, and a differencing child of the
//! input must not attach silently to the patched copy).
//!
//! * [`full_copy`] (dynamic or differencing input) writes a **dynamic** VHD
//!   (type 3) with the input's block size and a flattened chain: every block
//!   that is allocated in the input or anywhere in its chain (or that the
//!   patch touches) is read through the input's [`Disk`](crate::image::Disk),
//!   patched, and written only if it is not all zeros; within a written block,
//!   4 MiB pieces that are all zeros are left as holes in the output file
//!   (they read as zeros; only blocks over 4 MiB have such pieces). Bitmaps
//!   are all ones (allowed for a dynamic disk whose data area is
//!   zero-filled). The saved-state flag is kept. A layer of the chain that is
//!   not a dynamic/differencing VHD (a fixed VHD, VHDX or raw parent) has no
//!   allocation map here: then every block is read and zero-checked.
//! * [`diff_child`] (any VHD input) writes a **differencing** VHD (type 4,
//!   2 MiB blocks) holding only the sectors the patch touches, rounded out to
//!   whole 4 KiB groups (8 sectors = one bitmap byte, see `GRANULE`): each
//!   touched block gets a bitmap with exactly those groups set, and their
//!   data is the input's bytes with the patch applied (read-modify-write:
//!   the bytes the patch does not cover come from the parent, so the content
//!   is the same as with a per-sector bitmap). Parent fields: unique id = the
//!   input footer's unique id; name (UTF-16 BE) = the input's absolute path
//!   on Windows, as Windows writes it, its file name elsewhere (see
//!   `parent_name`); timestamp = the input **file's** modification time
//!   (see `parent_timestamp`); locators in Windows' order, entry 0 `W2ku`
//!   (absolute path; on Unix the Unix path) and entry 1 `W2ru` (relative to
//!   the child's directory: `.\name.vhd`, `..\base\name.vhd`), UTF-16 LE,
//!   each in its own 512-byte-rounded area after the BAT, with the platform
//!   data space in bytes (as Windows and DiscUtils write it).

use crate::bytes::{be_u32, be_u64};
use crate::error::{Error, Layer, Result};
use crate::image::vhd::{
    as_vhd, checksum, strip_verbatim, Layout, FOOTER_LEN, HEADER_LEN, MAX_BAT_ENTRIES, MAX_LOCATOR_BYTES, UNALLOCATED,
};
use crate::image::write::{fault_point, overlay, Patch, Progress};
use crate::image::{Format, Image};
use std::fs::File;
use std::io::{Seek, SeekFrom, Write};
use std::path::{Component, Path, PathBuf};

const L: Layer = Layer::Vhd;
const SECTOR: u64 = 512;
const BAT_OFFSET: u64 = 512 + HEADER_LEN as u64;
/// Block size of a differencing child (Windows' default).
const CHILD_BLOCK: u32 = 2 << 20;
/// Sectors a differencing child takes from the parent in whole groups of
/// this many (4 KiB, one bitmap byte), so every bitmap byte is 0x00 or 0xFF.
///
/// Windows writes differencing disks in 4 KiB units too. The reason it
/// matters: libvhdi (vhdiinfo/vhdimount, and the forensic tools built on it),
/// up to at least its 2024 sources, decodes a VHD bitmap byte as
/// `byte >> (7 - bit)` without masking the lower bit, so in a byte that is
/// neither 0x00 nor 0xFF every sector after the first set bit is taken from
/// the child: a bitmap marking single sectors reads back wrong through it
/// (checked with vhdimount 20210425: the clear sectors next to a set one
/// read as zeros).
const GRANULE: u64 = 8;
/// Block data areas start on multiples of this (see `place_block`).
const DATA_ALIGN: u64 = 4096;
/// Largest piece read and written at once.
const CHUNK: u64 = 4 << 20;
/// 2000-01-01T00:00:00Z, the VHD epoch, in Unix seconds.
const VHD_EPOCH: u64 = 946_684_800;
const TYPE_DYNAMIC: u32 = 3;
const TYPE_DIFFERENCING: u32 = 4;

/// Write a flattened, patched copy of a dynamic or differencing VHD as a new
/// dynamic VHD (see the module documentation).
pub fn full_copy(image: &Image, patch: &Patch, out: &mut File, progress: Progress) -> Result<()> {
    if !matches!(image.info.format, Format::VhdDynamic | Format::VhdDifferencing) {
        return Err(Error::Usage(format!(
            "the VHD full-copy writer takes a dynamic or differencing VHD, not {}",
            image.info.format.name()
        )));
    }
    let lay = layout_of(image)?;
    let vsize = lay.virtual_size;
    let Some((block_size, _)) = &lay.sparse else {
        return Err(Error::corrupt(L, lay.footer_offset + 60, "the input is no longer a dynamic VHD"));
    };
    let bs = u64::from(*block_size);
    let entries = bat_entries(&lay, bs)?;
    let nblocks = vsize.div_ceil(bs) as usize; // <= entries
    let ranges: Vec<(u64, &[u8])> = patch.ranges().collect();

    // Blocks to read: allocated somewhere in the chain, or patched.
    let mut wanted = vec![false; nblocks];
    mark_chain(&lay, bs, vsize, &mut wanted);
    for (o, d) in &ranges {
        let end = (o + d.len() as u64).min(vsize);
        if *o < end {
            wanted[(o / bs) as usize..=((end - 1) / bs) as usize].fill(true);
        }
    }

    let bitmap_size = bitmap_size(bs);
    let mut bat = vec![UNALLOCATED; entries as usize];
    let mut next = BAT_OFFSET + bat_len(entries);
    let block_end = |b: u64| ((b + 1) * bs).min(vsize);
    let total: u64 = (0..nblocks as u64).filter(|&b| wanted[b as usize]).map(|b| block_end(b) - b * bs).sum();
    let mut done = 0u64;
    progress(0, total);
    // The disk starts writing the copy while it is being made.
    let mut behind = crate::image::write::SyncBehind::new(out);
    let mut o = Out::new(out, "the output VHD");
    let mut buf = vec![0u8; CHUNK.min(bs) as usize];
    let ones = vec![0xFFu8; bitmap_size as usize];
    // The input file itself, for blocks read from it directly, holes skipped
    // (dynamic input: an allocated block's data is all in this file, bitmaps
    // aside).
    let src_file = (image.info.format == Format::VhdDynamic)
        .then(|| crate::image::vhd::source_of(image.disk.as_ref()))
        .flatten()
        .and_then(|src| crate::image::write::source_file(src.as_ref()).map(|f| (f, src.len())));
    for b in (0..nblocks as u64).filter(|&b| wanted[b as usize]) {
        let start = b * bs;
        let end = block_end(b);
        let mut placed: Option<u64> = None;
        let in_bat = lay.sparse.and_then(|(_, bat)| bat.get(b as usize).copied()).unwrap_or(UNALLOCATED);
        let untouched = ranges.partition_point(|(o, d)| o + d.len() as u64 <= start) == ranges.partition_point(|(o, _)| *o < end);
        let from = u64::from(in_bat) * SECTOR + bitmap_size;
        // A block cut short by the end of the file is read (and reported) as before.
        let inside = src_file.as_ref().is_some_and(|(_, len)| from + (end - start) <= *len);
        if let (Some((f, _)), true, true, true) = (&src_file, in_bat != UNALLOCATED, untouched, inside) {
            let path = image.info.path.display().to_string();
            let io = |at: u64, e| Error::Io { layer: L, offset: at, path: path.clone(), source: e };
            crate::image::write::each_nonzero(f, from, from + (end - start), from, &mut |a, d| {
                let at = match placed {
                    Some(at) => at,
                    None => {
                        let at = place_block(next, bitmap_size);
                        bat[b as usize] = sector_number(at)?;
                        o.write_at(at, &ones)?;
                        next = at + bitmap_size + bs;
                        placed = Some(at);
                        at
                    }
                };
                behind.wrote(d.len() as u64);
                o.write_at(at + bitmap_size + (a - from), d)
            }, &io)?;
            done += end - start;
            progress(done, total);
            continue;
        }
        let mut off = start;
        while off < end {
            let n = (end - off).min(CHUNK) as usize;
            let piece = &mut buf[..n];
            image.disk.read_at(off, piece)?;
            overlay(&ranges, off, piece);
            if !is_zero(piece) {
                let at = match placed {
                    Some(at) => at,
                    None => {
                        let at = place_block(next, bitmap_size);
                        bat[b as usize] = sector_number(at)?;
                        o.write_at(at, &ones)?;
                        next = at + bitmap_size + bs;
                        placed = Some(at);
                        at
                    }
                };
                o.write_at(at + bitmap_size + (off - start), piece)?;
                behind.wrote(n as u64);
            }
            off += n as u64;
            done += n as u64;
            progress(done, total);
        }
    }
    behind.finish().map_err(|e| o.io(0, e))?;
    fault_point("vhd-data");

    let footer = new_footer(lay.footer, TYPE_DYNAMIC, lay.footer[84]);
    let header = new_header(entries, *block_size, None);
    finish(&mut o, &bat, &header, &footer, next)
}

/// Write a differencing VHD whose parent is the input VHD and which holds
/// only the 4 KiB groups of sectors `patch` touches (see the module
/// documentation).
pub fn diff_child(image: &Image, patch: &Patch, out: &mut File, out_path: &Path) -> Result<()> {
    if !matches!(image.info.format, Format::VhdFixed | Format::VhdDynamic | Format::VhdDifferencing) {
        return Err(Error::Usage(format!(
            "a VHD differencing child needs a VHD parent, not {}",
            image.info.format.name()
        )));
    }
    let lay = layout_of(image)?;
    let vsize = lay.virtual_size;
    let bs = u64::from(CHILD_BLOCK);
    let entries = bat_entries(&lay, bs)?;
    let bitmap_size = bitmap_size(bs);

    // Parent locators, placed after the BAT.
    let parent_abs = absolute(&image.info.path);
    let child_dir = absolute(out_path.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(Path::new(".")));
    // Errors about the locators name the output's first locator entry.
    let loc_field = 512 + 576;
    let abs_str = parent_abs.to_str().map(strip_verbatim).ok_or_else(|| {
        Error::unsupported(
            L,
            loc_field,
            format!("the parent path {} is not valid Unicode: a VHD parent locator cannot name it", parent_abs.display()),
        )
    })?;
    let mut locators: Vec<([u8; 4], Vec<u8>)> = vec![(*b"W2ku", utf16le(&abs_str))];
    if let Some(rel) = relative_locator(&child_dir, &parent_abs) {
        locators.push((*b"W2ru", utf16le(&rel)));
    }
    let mut next = BAT_OFFSET + bat_len(entries);
    let mut placed_locators = Vec::new();
    for (code, data) in locators {
        if data.len() as u64 > u64::from(MAX_LOCATOR_BYTES) {
            return Err(Error::unsupported(L, loc_field, format!("the parent path {abs_str} is too long for a VHD parent locator")));
        }
        let space = (data.len() as u64).div_ceil(SECTOR).max(1) * SECTOR;
        placed_locators.push(LocatorOut { code, space: space as u32, offset: next, data });
        next += space;
    }
    let parent = ParentOut {
        unique_id: lay.footer[68..84].try_into().unwrap_or([0; 16]),
        timestamp: parent_timestamp(&image.info.path, lay.footer),
        name: parent_name(&abs_str, &parent_abs),
        locators: placed_locators,
    };

    // Blocks: only the touched sector groups, read-modify-write from the parent.
    let ranges: Vec<(u64, &[u8])> = patch.ranges().collect();
    let mut bat = vec![UNALLOCATED; entries as usize];
    let mut o = Out::new(out, &out_path.display().to_string());
    let mut buf = vec![0u8; CHUNK as usize];
    for (blk, runs) in touched_runs(&ranges, vsize, bs) {
        let at = place_block(next, bitmap_size);
        *bat.get_mut(blk as usize).ok_or_else(|| Error::corrupt(L, lay.footer_offset + 48, "patch past the BAT"))? =
            sector_number(at)?;
        next = at + bitmap_size + bs;
        let mut bitmap = vec![0u8; bitmap_size as usize];
        for &(s0, s1) in &runs {
            for s in s0..s1 {
                bitmap[(s / 8) as usize] |= 0x80 >> (s % 8);
            }
        }
        o.write_at(at, &bitmap)?;
        for (s0, s1) in runs {
            let mut off = blk * bs + s0 * SECTOR;
            let end = blk * bs + s1 * SECTOR;
            while off < end {
                let n = (end - off).min(CHUNK) as usize;
                let piece = &mut buf[..n];
                image.disk.read_at(off, piece)?;
                overlay(&ranges, off, piece);
                o.write_at(at + bitmap_size + (off - blk * bs), piece)?;
                off += n as u64;
            }
        }
    }
    fault_point("vhd-data");

    for l in &parent.locators {
        let mut area = l.data.clone();
        area.resize(l.space as usize, 0);
        o.write_at(l.offset, &area)?;
    }
    let footer = new_footer(lay.footer, TYPE_DIFFERENCING, 0);
    let header = new_header(entries, CHILD_BLOCK, Some(&parent));
    finish(&mut o, &bat, &header, &footer, next)
}

// ----------------------------------------------------------------------
// Conversion (any input)
// ----------------------------------------------------------------------

/// Largest VHD: 2040 GiB (the spec's limit; the CHS geometry tops out there).
const MAX_VHD_SIZE: u64 = 2040 << 30;

/// Write the content of any `image` (another container format) with `patch`
/// applied as a new dynamic VHD with 2 MiB blocks; a fresh footer (see
/// [`fresh_footer`]); its virtual size is the input's, rounded up to a whole
/// sector.
pub(crate) fn convert(image: &Image, patch: &Patch, out: &mut File, progress: Progress) -> Result<()> {
    let vsize = image.disk.len().div_ceil(SECTOR) * SECTOR;
    check_size(vsize)?;
    let bs = u64::from(CHILD_BLOCK);
    let entries = vsize.div_ceil(bs) as u32; // <= 2040 GiB / 2 MiB
    let bitmap_size = bitmap_size(bs);
    let mut bat = vec![UNALLOCATED; entries as usize];
    let mut next = BAT_OFFSET + bat_len(entries);
    let ones = vec![0xFFu8; bitmap_size as usize];
    let mut behind = crate::image::write::SyncBehind::new(out);
    let mut o = Out::new(out, "the VHD being written");
    crate::image::write::feed(image, patch, bs, progress, &mut |off, data| {
        behind.wrote(data.len() as u64);
        let b = (off / bs) as usize;
        if bat[b] == UNALLOCATED {
            let at = place_block(next, bitmap_size);
            bat[b] = sector_number(at)?;
            o.write_at(at, &ones)?;
            next = at + bitmap_size + bs;
        }
        o.write_at(u64::from(bat[b]) * SECTOR + bitmap_size + off % bs, data)
    })?;
    behind.finish().map_err(|e| o.io(0, e))?;
    fault_point("vhd-data");
    let footer = fresh_footer(vsize, TYPE_DYNAMIC);
    let header = new_header(entries, CHILD_BLOCK, None);
    finish(&mut o, &bat, &header, &footer, next)
}

fn check_size(size: u64) -> Result<()> {
    if size == 0 || size > MAX_VHD_SIZE {
        return Err(Error::unsupported(L, 48, format!("a {size}-byte disk cannot be a VHD (at most 2040 GiB): write VHDX or raw (--format)")));
    }
    Ok(())
}

/// A footer for a VHD converted from another format, of virtual size `size`
/// (a multiple of 512): current and original size `size`, the CHS geometry
/// of the VHD specification's algorithm, type `disk_type` (2 fixed: data
/// offset all ones; 3 dynamic: 512), a new unique id. Creator `win `
/// (Hyper-V's): every reader (qemu, libvhdi, Azure, ours) then takes the
/// current size as the disk's size, where an unknown creator makes qemu use
/// CHS × 512, which is smaller whenever the size is not a whole number of
/// cylinders.
pub(crate) fn fresh_footer(size: u64, disk_type: u32) -> [u8; FOOTER_LEN] {
    let mut t = [0u8; FOOTER_LEN];
    t[0..8].copy_from_slice(b"conectix");
    t[8..12].copy_from_slice(&2u32.to_be_bytes());
    t[12..16].copy_from_slice(&0x0001_0000u32.to_be_bytes());
    t[28..32].copy_from_slice(b"win ");
    t[32..36].copy_from_slice(&0x000A_0000u32.to_be_bytes());
    t[36..40].copy_from_slice(b"Wi2k");
    t[40..48].copy_from_slice(&size.to_be_bytes());
    t[48..56].copy_from_slice(&size.to_be_bytes());
    let (c, h, spt) = chs(size / SECTOR);
    t[56..58].copy_from_slice(&c.to_be_bytes());
    t[58] = h;
    t[59] = spt;
    let mut f = new_footer(&t, disk_type, 0);
    if disk_type == 2 {
        f[16..24].fill(0xFF);
        set_checksum(&mut f, 64);
    }
    f
}

/// CHS geometry for `sectors` (VHD specification, appendix "CHS
/// calculation"): cylinders, heads, sectors per track.
fn chs(sectors: u64) -> (u16, u8, u8) {
    let total = sectors.min(65535 * 16 * 255);
    let (spt, heads, cth);
    if total >= 65535 * 16 * 63 {
        spt = 255;
        heads = 16;
        cth = total / spt;
    } else {
        let mut s = 17;
        let mut c = total / s;
        let mut h = c.div_ceil(1024).max(4);
        if c >= h * 1024 || h > 16 {
            s = 31;
            h = 16;
            c = total / s;
        }
        if c >= h * 1024 {
            s = 63;
            h = 16;
            c = total / s;
        }
        spt = s;
        heads = h;
        cth = c;
    }
    ((cth / heads).min(65535) as u16, heads as u8, spt as u8)
}

/// The virtual ranges a dynamic or differencing VHD chain may hold data in
/// (`None`: a layer without an allocation map, so anywhere).
pub(crate) fn allocated(image: &Image) -> Option<Vec<(u64, u64)>> {
    let lay = layout_of(image).ok()?;
    let (bs, _) = lay.sparse?;
    let bs = u64::from(bs);
    let n = lay.virtual_size.div_ceil(bs) as usize;
    let mut wanted = vec![false; n];
    mark_chain(&lay, bs, lay.virtual_size, &mut wanted);
    if wanted.iter().all(|w| *w) && n > 0 {
        return None;
    }
    Some((0..n as u64).filter(|b| wanted[*b as usize]).map(|b| (b * bs, ((b + 1) * bs).min(lay.virtual_size))).collect())
}

// ----------------------------------------------------------------------
// Structures
// ----------------------------------------------------------------------

/// One parent locator as written.
struct LocatorOut {
    code: [u8; 4],
    /// Bytes reserved at `offset` (a multiple of 512).
    space: u32,
    offset: u64,
    /// UTF-16 LE path, no terminator.
    data: Vec<u8>,
}

/// The parent fields of a differencing child's dynamic header.
struct ParentOut {
    unique_id: [u8; 16],
    timestamp: u32,
    /// UTF-16 code units (at most 255, so a terminator fits).
    name: Vec<u16>,
    locators: Vec<LocatorOut>,
}

fn set_checksum(buf: &mut [u8], field: usize) {
    buf[field..field + 4].fill(0);
    let c = checksum(buf, field);
    buf[field..field + 4].copy_from_slice(&c.to_be_bytes());
}

/// Seconds since 2000-01-01 UTC (saturating).
fn vhd_time(t: std::time::SystemTime) -> Option<u32> {
    let secs = t.duration_since(std::time::UNIX_EPOCH).ok()?.as_secs().checked_sub(VHD_EPOCH)?;
    Some(secs.min(u64::from(u32::MAX)) as u32)
}

/// The parent time stamp for a child of `parent`: the parent **file's**
/// modification time, in VHD seconds; the parent footer's time stamp when the
/// file time is unavailable or before 2000.
///
/// The VHD spec calls the field "the modification time stamp of the parent
/// hard disk", and the writers found in public code take the file's
/// last-write time: DiscUtils (`CreateDifferencing` passes
/// `GetLastWriteTimeUtc` of the parent file), Xen blktap `vhd-util`
/// (`stat(parent).st_mtime`) and VirtualBox ("used by snapshots to detect a
/// modified base VHD"). The footer time stamp is the parent's *creation*
/// time, which nothing found compares with. Who checks the field: Virtual PC
/// and early blktap compared it with the parent file's mtime (blktap later
/// removed the check: it broke on copies); qemu, libvhdi and our reader
/// ignore it; Windows does not check it — the diskpart-made child in
/// `shared/data/images` has a parent time stamp of **0** — and relies on the
/// parent unique id.
fn parent_timestamp(parent: &Path, footer: &[u8; FOOTER_LEN]) -> u32 {
    std::fs::metadata(parent).and_then(|m| m.modified()).ok().and_then(vhd_time).unwrap_or_else(|| be_u32(footer, 24))
}

/// A footer for the output, from the input's (see the module documentation).
fn new_footer(template: &[u8; FOOTER_LEN], disk_type: u32, saved_state: u8) -> [u8; FOOTER_LEN] {
    let mut f = [0u8; FOOTER_LEN];
    // Cookie, features, version, (data offset, time stamp), creator, sizes,
    // geometry; the reserved bytes after the saved-state flag stay zero.
    f[..84].copy_from_slice(&template[..84]);
    f[16..24].copy_from_slice(&512u64.to_be_bytes());
    let now = vhd_time(std::time::SystemTime::now()).unwrap_or(0);
    f[24..28].copy_from_slice(&now.to_be_bytes());
    f[60..64].copy_from_slice(&disk_type.to_be_bytes());
    f[68..84].copy_from_slice(uuid::Uuid::new_v4().as_bytes());
    f[84] = saved_state;
    set_checksum(&mut f, 64);
    f
}

fn new_header(entries: u32, block_size: u32, parent: Option<&ParentOut>) -> [u8; HEADER_LEN] {
    let mut h = [0u8; HEADER_LEN];
    h[0..8].copy_from_slice(b"cxsparse");
    // Data offset: all 64 bits set (what Microsoft's tools expect).
    h[8..16].fill(0xFF);
    h[16..24].copy_from_slice(&BAT_OFFSET.to_be_bytes());
    h[24..28].copy_from_slice(&0x0001_0000u32.to_be_bytes());
    h[28..32].copy_from_slice(&entries.to_be_bytes());
    h[32..36].copy_from_slice(&block_size.to_be_bytes());
    if let Some(p) = parent {
        h[40..56].copy_from_slice(&p.unique_id);
        h[56..60].copy_from_slice(&p.timestamp.to_be_bytes());
        for (i, u) in p.name.iter().take(255).enumerate() {
            h[64 + 2 * i..66 + 2 * i].copy_from_slice(&u.to_be_bytes());
        }
        for (i, l) in p.locators.iter().take(8).enumerate() {
            let e = 576 + 24 * i;
            h[e..e + 4].copy_from_slice(&l.code);
            h[e + 4..e + 8].copy_from_slice(&l.space.to_be_bytes());
            h[e + 8..e + 12].copy_from_slice(&(l.data.len() as u32).to_be_bytes());
            h[e + 16..e + 24].copy_from_slice(&l.offset.to_be_bytes());
        }
    }
    set_checksum(&mut h, 36);
    h
}

/// BAT entries for the output: enough for the footer's current size and for
/// the virtual size (they differ for CHS-sized images), at most the reader's cap.
fn bat_entries(lay: &Layout, bs: u64) -> Result<u32> {
    let current = be_u64(lay.footer, 48);
    let n = current.max(lay.virtual_size).div_ceil(bs);
    if n > u64::from(MAX_BAT_ENTRIES) {
        return Err(Error::unsupported(
            L,
            lay.footer_offset + 48,
            format!("a {current}-byte disk in {bs}-byte blocks needs {n} BAT entries (more than {MAX_BAT_ENTRIES})"),
        ));
    }
    Ok(n as u32)
}

fn bat_len(entries: u32) -> u64 {
    (u64::from(entries) * 4).div_ceil(SECTOR) * SECTOR
}

/// The BAT as bytes, padded to whole sectors with unallocated entries.
fn bat_bytes(bat: &[u32]) -> Vec<u8> {
    let mut v = vec![0xFFu8; bat_len(bat.len() as u32) as usize];
    for (i, e) in bat.iter().enumerate() {
        v[4 * i..4 * i + 4].copy_from_slice(&e.to_be_bytes());
    }
    v
}

fn bitmap_size(bs: u64) -> u64 {
    (bs / SECTOR / 8).div_ceil(SECTOR) * SECTOR
}

/// Where the next block goes: its data area starts on a 4 KiB boundary (the
/// bitmap just before it), as Windows places blocks; `next` is the first free
/// byte.
fn place_block(next: u64, bitmap_size: u64) -> u64 {
    (next + bitmap_size).div_ceil(DATA_ALIGN) * DATA_ALIGN - bitmap_size
}

/// The BAT value for a block at file offset `at`.
fn sector_number(at: u64) -> Result<u32> {
    let s = at / SECTOR;
    if s >= u64::from(UNALLOCATED) {
        return Err(Error::unsupported(L, at, "the output VHD would exceed 2 TiB, the limit of its 32-bit BAT"));
    }
    Ok(s as u32)
}

/// The container structures the reader parsed when `image` was opened.
fn layout_of(image: &Image) -> Result<Layout<'_>> {
    let lay = as_vhd(image.disk.as_ref()).map(|d| d.layout()).ok_or_else(|| {
        Error::Usage(format!("{} was not opened by this tool's VHD reader", image.info.path.display()))
    })?;
    if lay.virtual_size != image.disk.len() {
        return Err(Error::corrupt(L, lay.footer_offset + 48, "the VHD layout does not match its disk (internal)"));
    }
    Ok(lay)
}

// ----------------------------------------------------------------------
// Blocks
// ----------------------------------------------------------------------

/// Mark the `bs`-byte output blocks below `vsize` that hold data somewhere in
/// the chain starting at `top` (walked through the opened disks). A layer
/// without a VHD allocation map (fixed VHD, VHDX, raw) marks everything.
fn mark_chain(top: &Layout, bs: u64, vsize: u64, wanted: &mut [bool]) {
    let mut owned;
    let mut lay = top;
    for _ in 0..=crate::image::MAX_CHAIN_DEPTH {
        let Some((pbs, bat)) = &lay.sparse else {
            wanted.fill(true);
            return;
        };
        let pbs = u64::from(*pbs);
        for (k, &e) in bat.iter().enumerate() {
            let lo = k as u64 * pbs;
            let hi = (lo + pbs).min(vsize);
            if e != UNALLOCATED && lo < hi {
                wanted[(lo / bs) as usize..=((hi - 1) / bs) as usize].fill(true);
            }
        }
        let Some(parent) = lay.parent else { return };
        match as_vhd(parent.as_ref()) {
            Some(p) => {
                owned = p.layout();
                lay = &owned;
            }
            None => {
                wanted.fill(true);
                return;
            }
        }
    }
    // Deeper than the reader opens: every block may hold data.
    wanted.fill(true);
}

/// Per touched block (ascending): the touched sector runs inside it, rounded
/// out to [`GRANULE`]-sector groups (and cut at the end of the disk), as
/// half-open sector ranges relative to the block, ascending and disjoint.
fn touched_runs(ranges: &[(u64, &[u8])], vsize: u64, bs: u64) -> Vec<(u64, Vec<(u64, u64)>)> {
    let spb = bs / SECTOR; // a multiple of GRANULE: bs >= 4 KiB
    let disk_sectors = vsize / SECTOR;
    let mut out: Vec<(u64, Vec<(u64, u64)>)> = Vec::new();
    for (o, d) in ranges {
        let end = (o + d.len() as u64).min(vsize);
        if *o >= end {
            continue;
        }
        let mut s = o / SECTOR / GRANULE * GRANULE;
        let s_end = end.div_ceil(SECTOR).div_ceil(GRANULE).saturating_mul(GRANULE).min(disk_sectors);
        while s < s_end {
            let blk = s / spb;
            let e = s_end.min((blk + 1) * spb);
            let run = (s - blk * spb, e - blk * spb);
            match out.last_mut() {
                Some((b, runs)) if *b == blk => match runs.last_mut() {
                    // Two ranges can share a sector: merge touching runs.
                    Some(last) if last.1 >= run.0 => last.1 = last.1.max(run.1),
                    _ => runs.push(run),
                },
                _ => out.push((blk, vec![run])),
            }
            s = e;
        }
    }
    out
}

fn is_zero(b: &[u8]) -> bool {
    b.chunks(4096).all(|c| c.iter().fold(0u8, |a, &x| a | x) == 0)
}

// ----------------------------------------------------------------------
// Paths
// ----------------------------------------------------------------------

fn absolute(p: &Path) -> PathBuf {
    p.canonicalize().or_else(|_| std::path::absolute(p)).unwrap_or_else(|_| p.to_path_buf())
}

/// The parent name field. On Windows the absolute path, as Windows writes it;
/// elsewhere the file name, as DiscUtils writes it: readers that fall back on
/// this field (libvhdi's vhdimount, ours) take the text after the last
/// backslash as a file name next to the child, and a Unix path has no
/// backslash (vhdimount 20210425 then looks for `<child dir>/<whole path>`).
/// Also the file name when the path does not fit the field's 255 UTF-16
/// units (plus terminator).
fn parent_name(abs: &str, path: &Path) -> Vec<u16> {
    let full: Vec<u16> = abs.encode_utf16().collect();
    if cfg!(windows) && full.len() <= 255 {
        return full;
    }
    path.file_name().map(|n| n.to_string_lossy().encode_utf16().take(255).collect()).unwrap_or_default()
}

fn utf16le(s: &str) -> Vec<u8> {
    s.encode_utf16().flat_map(u16::to_le_bytes).collect()
}

/// The Windows relative path from directory `from` to file `to` (both
/// absolute): `.\name.vhd`, `..\base\name.vhd`. `None` when there is none
/// (different drives, or a component that is not valid Unicode).
fn relative_locator(from: &Path, to: &Path) -> Option<String> {
    let a: Vec<Component> = from.components().collect();
    let b: Vec<Component> = to.components().collect();
    let common = a.iter().zip(&b).take_while(|(x, y)| x == y).count();
    if common == 0 {
        return None;
    }
    let mut parts: Vec<&str> = Vec::new();
    for c in &a[common..] {
        match c {
            Component::Normal(_) => parts.push(".."),
            _ => return None,
        }
    }
    let up = !parts.is_empty();
    for c in &b[common..] {
        match c {
            Component::Normal(s) => parts.push(s.to_str()?),
            _ => return None,
        }
    }
    if b.len() == common {
        return None;
    }
    let joined = parts.join("\\");
    Some(if up { joined } else { format!(".\\{joined}") })
}

/// The output file, with errors naming the VHD layer and the offset.
/// The last writes of every VHD this module makes: BAT, dynamic header, the
/// footer copy at 0, then the footer at the end (a crash before it leaves no
/// valid VHD).
fn finish(o: &mut Out, bat: &[u32], header: &[u8], footer: &[u8], next: u64) -> Result<()> {
    o.write_at(BAT_OFFSET, &bat_bytes(bat))?;
    o.write_at(512, header)?;
    o.write_at(0, footer)?;
    fault_point("vhd-footer");
    o.write_at(next, footer)?;
    o.set_len(next + FOOTER_LEN as u64)
}

struct Out<'a> {
    file: &'a mut File,
    name: String,
}

impl<'a> Out<'a> {
    fn new(file: &'a mut File, name: &str) -> Self {
        Out { file, name: name.to_string() }
    }

    fn io(&self, offset: u64, source: std::io::Error) -> Error {
        Error::Io { layer: L, offset, path: self.name.clone(), source }
    }

    fn write_at(&mut self, offset: u64, buf: &[u8]) -> Result<()> {
        self.file.seek(SeekFrom::Start(offset)).and_then(|_| self.file.write_all(buf)).map_err(|e| self.io(offset, e))
    }

    fn set_len(&mut self, len: u64) -> Result<()> {
        self.file.set_len(len).map_err(|e| self.io(len, e))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn relative_locators() {
        let r = |a: &str, b: &str| relative_locator(Path::new(a), Path::new(b));
        assert_eq!(r("/vm", "/vm/p.vhd").as_deref(), Some(r".\p.vhd"));
        assert_eq!(r("/vm/kids", "/vm/base/p.vhd").as_deref(), Some(r"..\base\p.vhd"));
        assert_eq!(r("/vm", "/vm/base/p.vhd").as_deref(), Some(r".\base\p.vhd"));
        assert_eq!(r("/a/b/c", "/x.vhd").as_deref(), Some(r"..\..\..\x.vhd"));
        assert_eq!(r("/vm", "/vm"), None);
        assert_eq!(r("vm", "/vm/p.vhd"), None);
    }

    #[test]
    fn runs_merge_and_split() {
        let a = [1u8; 10];
        let b = [2u8; 600];
        let c = [3u8; 1024];
        let bs = 2 << 20;
        // Two ranges in sector 0; one crossing sectors 1-2; one crossing a block boundary.
        let ranges: Vec<(u64, &[u8])> = vec![(10, &a), (100, &a), (1000, &b), (bs - 512, &c)];
        let runs = touched_runs(&ranges, 1 << 30, bs);
        // Whole 8-sector groups.
        assert_eq!(runs, vec![(0, vec![(0, 8), (4088, 4096)]), (1, vec![(0, 8)])]);
        // Sector 0, sector 8 and sector 20 give groups 0-8, 8-16 and 16-24; the
        // end of the disk (sector 2097150 = block 511, sector 4094) cuts the last group.
        let ranges2: Vec<(u64, &[u8])> = vec![(10, &a), (8 * 512 + 1, &a), (20 * 512, &a), ((1 << 30) - 3 * 512, &a)];
        let runs = touched_runs(&ranges2, (1 << 30) - 2 * 512, bs);
        // Touching groups merge.
        assert_eq!(runs, vec![(0, vec![(0, 24)]), (511, vec![(4088, 4094)])]);
        // overlay lays only the part in the buffer.
        let mut buf = vec![0u8; 512];
        overlay(&ranges, 512, &mut buf);
        assert!(buf[..488].iter().all(|&x| x == 0) && buf[488..].iter().all(|&x| x == 2));
    }

    /// A dynamic VHD built by hand (creator "win ", so the current size
    /// counts): `blocks` are (index, full block data).
    fn build_dynamic(path: &Path, size: u64, bs: u32, blocks: &[(u32, Vec<u8>)]) {
        let mut t = [0u8; FOOTER_LEN];
        t[0..8].copy_from_slice(b"conectix");
        t[8..12].copy_from_slice(&2u32.to_be_bytes());
        t[12..16].copy_from_slice(&0x0001_0000u32.to_be_bytes());
        t[28..32].copy_from_slice(b"win ");
        t[36..40].copy_from_slice(b"Wi2k");
        t[40..48].copy_from_slice(&size.to_be_bytes());
        t[48..56].copy_from_slice(&size.to_be_bytes());
        t[56..60].copy_from_slice(&[0xFF, 0xFF, 16, 255]);
        let footer = new_footer(&t, TYPE_DYNAMIC, 0);
        let entries = size.div_ceil(u64::from(bs)) as u32;
        let mut v = vec![0u8; (BAT_OFFSET + bat_len(entries)) as usize];
        v[..512].copy_from_slice(&footer);
        v[512..1536].copy_from_slice(&new_header(entries, bs, None));
        let mut bat = vec![UNALLOCATED; entries as usize];
        for (i, data) in blocks {
            bat[*i as usize] = (v.len() / 512) as u32;
            v.extend(vec![0u8; bitmap_size(u64::from(bs)) as usize]);
            v.extend_from_slice(data);
        }
        v[1536..1536 + bat_len(entries) as usize].copy_from_slice(&bat_bytes(&bat));
        v.extend_from_slice(&footer);
        std::fs::write(path, v).unwrap();
    }

    fn bytes(seed: u8, n: usize) -> Vec<u8> {
        (0..n).map(|i| (i as u8).wrapping_mul(31).wrapping_add(seed) | 1).collect()
    }

    fn all(d: &dyn crate::image::Disk) -> Vec<u8> {
        let mut v = vec![0u8; d.len() as usize];
        d.read_at(0, &mut v).unwrap();
        v
    }

    fn fresh(p: &Path) -> File {
        std::fs::OpenOptions::new().read(true).write(true).create_new(true).open(p).unwrap()
    }

    /// Block sizes other than 2 MiB: 8 MiB (zero pieces inside a block become
    /// holes; an allocated all-zero block is dropped) and 64 KiB; a full copy
    /// of a 2 MiB-block child over them maps the parent's blocks.
    #[test]
    fn other_block_sizes_and_chains() {
        const M: usize = 1 << 20;
        let dir = tempfile::tempdir().unwrap();
        let size = 40 * M as u64;
        let mut flat = vec![0u8; 40 * M];
        flat[4 * M..8 * M].copy_from_slice(&bytes(1, 4 * M));
        flat[16 * M..17 * M].copy_from_slice(&bytes(2, M));
        let mut patch = Patch::default();
        patch.write(25 * M as u64 + 3, &bytes(3, 1000));
        patch.write(39 * M as u64 + 511, &bytes(4, 2));
        let mut want = flat.clone();
        for (o, d) in patch.ranges() {
            want[o as usize..o as usize + d.len()].copy_from_slice(d);
        }
        for (bs, tag) in [(8 << 20, "8m"), (64 << 10, "64k")] {
            let b = bs as usize;
            let blocks: Vec<(u32, Vec<u8>)> = (0..40 * M / b)
                .filter(|i| bs == 8 << 20 || flat[i * b..(i + 1) * b].iter().any(|&x| x != 0))
                .map(|i| (i as u32, flat[i * b..(i + 1) * b].to_vec()))
                .collect();
            let src = dir.path().join(format!("p-{tag}.vhd"));
            build_dynamic(&src, size, bs, &blocks);
            let img = crate::image::open(&src).unwrap();
            assert!(all(img.disk.as_ref()) == flat);

            // Full copy: same block size; all-zero blocks left out.
            let out = dir.path().join(format!("copy-{tag}.vhd"));
            full_copy(&img, &patch, &mut fresh(&out), &mut |_, _| {}).unwrap();
            let c = crate::image::open(&out).unwrap();
            assert_eq!(c.info.block_size, Some(bs));
            assert!(all(c.disk.as_ref()) == want, "{tag}");
            let nonzero = (0..40 * M / b).filter(|i| want[i * b..(i + 1) * b].iter().any(|&x| x != 0)).count();
            assert_eq!(c.info.allocated_blocks, Some(nonzero as u64), "{tag}");

            // Child (2 MiB blocks) over it, then flattened.
            let child = dir.path().join(format!("c-{tag}.vhd"));
            diff_child(&img, &patch, &mut fresh(&child), &child).unwrap();
            let ci = crate::image::open(&child).unwrap();
            assert!(all(ci.disk.as_ref()) == want, "{tag} child");
            let flat_out = dir.path().join(format!("f-{tag}.vhd"));
            full_copy(&ci, &Patch::default(), &mut fresh(&flat_out), &mut |_, _| {}).unwrap();
            let fi = crate::image::open(&flat_out).unwrap();
            assert_eq!(fi.info.block_size, Some(2 << 20));
            assert!(all(fi.disk.as_ref()) == want, "{tag} flattened");
            // 2 MiB blocks 2, 3 (4..8 MiB), 8 (16 MiB), 12 (25 MiB), 19 (39 MiB).
            assert_eq!(fi.info.allocated_blocks, Some(5), "{tag} flattened");
        }
    }

    #[test]
    fn zero_check() {
        assert!(is_zero(&[0; 10000]));
        let mut v = vec![0u8; 10000];
        v[9999] = 1;
        assert!(!is_zero(&v));
    }
}
