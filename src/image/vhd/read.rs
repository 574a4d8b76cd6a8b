//! VHD (Virtual PC / Hyper-V v1) containers: fixed, dynamic and differencing.
//!
//! Written from the format notes (`formats.md` section D). All fields are
//! big-endian.
//!
//! * **Footer** (512 bytes): at the end of the file; dynamic and differencing
//!   disks also keep an identical copy at offset 0. The end footer is
//!   authoritative. If it is missing or damaged (a truncated copy, a torn
//!   write) and the copy at offset 0 is valid and describes a dynamic or
//!   differencing disk, the copy is used **silently**: the copy is exactly
//!   what the end footer would say, and blocks are addressed absolutely, so
//!   everything that is still in the file reads fine; a block cut off by the
//!   truncation gives an error naming its BAT entry when (and only when) it
//!   is read. A fixed disk has no copy, so a bad end footer is an error.
//! * **Checksums** of the footer and the dynamic header are verified; a
//!   mismatch is an error naming the structure's file offset.
//! * **Dynamic / differencing**: a BAT of BE u32 sector numbers
//!   (`0xFFFFFFFF` = unallocated), blocks of `[bitmap][data]`. A dynamic disk
//!   ignores the bitmap (as qemu does) and reads unallocated blocks as zeros.
//!   A differencing disk takes a sector from this file when its bitmap bit
//!   (MSB-first) is 1 and from the parent otherwise; unallocated blocks come
//!   from the parent.
//!
//! Everything is read lazily: at open only the footer(s), the dynamic header,
//! the BAT (4 bytes per block, 254 KiB for a 127 GiB disk) and the parent
//! locators are read; a read touches only the bitmap bytes and data it needs.

use crate::image::{Candidate, ContainerInfo, Disk, Format, Image, OpenCtx, Source};
use crate::bytes::{be_u16, be_u32, be_u64, utf16be, utf16le};
use crate::error::{Error, Layer, Result};
use std::sync::Arc;

const L: Layer = Layer::Vhd;
const SECTOR: u64 = 512;
pub(crate) const FOOTER_LEN: usize = 512;
pub(crate) const HEADER_LEN: usize = 1024;
const FOOTER_COOKIE: &[u8; 8] = b"conectix";
const HEADER_COOKIE: &[u8; 8] = b"cxsparse";
pub(crate) const UNALLOCATED: u32 = 0xFFFF_FFFF;
/// Largest virtual size accepted: 2040 GiB, the VHD format's limit (Hyper-V
/// and qemu both refuse larger VHDs).
const MAX_SIZE: u64 = 2040 << 30;
/// Block sizes accepted: powers of two in 4 KiB..=256 MiB (Windows uses
/// 2 MiB, Virtual PC 512 KiB). Below 4 KiB the bitmap size is ambiguous
/// (qemu rounds `block_size / 4096` down to 0, the spec rounds up to 512).
const MIN_BLOCK: u32 = 4096;
const MAX_BLOCK: u32 = 256 << 20;
/// Cap on BAT entries (64 MiB of BAT); 2040 GiB in 2 MiB blocks needs 2^20.
pub(crate) const MAX_BAT_ENTRIES: u32 = 1 << 24;
/// Cap on one parent locator's data: 32 K UTF-16 units, the longest Windows path.
pub(crate) const MAX_LOCATOR_BYTES: u32 = 64 << 10;
/// CHS geometry 65535 x 16 x 255: "the size does not fit CHS", so the footer's
/// current size is authoritative even for Virtual PC / qemu images.
const CHS_MAX_SECTORS: u64 = 65535 * 16 * 255;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum DiskType {
    Fixed,
    Dynamic,
    Differencing,
}

/// The fields of a footer this reader uses.
#[derive(Debug, Clone)]
struct Footer {
    /// File offset the footer was read from.
    offset: u64,
    data_offset: u64,
    creator: [u8; 4],
    current_size: u64,
    cylinders: u16,
    heads: u8,
    sectors_per_track: u8,
    disk_type: DiskType,
    unique_id: [u8; 16],
    /// The 512 bytes as read (for the writers, which copy sizes, geometry and
    /// creator fields from them).
    raw: [u8; FOOTER_LEN],
}

/// `~(sum of all bytes, the 4-byte checksum field counted as zero)`.
pub(crate) fn checksum(buf: &[u8], field: usize) -> u32 {
    let sum = buf.iter().enumerate().fold(0u32, |acc, (i, &b)| {
        if (field..field + 4).contains(&i) {
            acc
        } else {
            acc.wrapping_add(u32::from(b))
        }
    });
    !sum
}

fn parse_footer(buf: &[u8; FOOTER_LEN], offset: u64) -> Result<Footer> {
    if &buf[..8] != FOOTER_COOKIE {
        return Err(Error::corrupt(L, offset, "no VHD footer here (cookie \"conectix\" missing)"));
    }
    let stored = be_u32(buf, 64);
    let computed = checksum(buf, 64);
    if stored != computed {
        return Err(Error::corrupt(
            L,
            offset,
            format!("footer checksum mismatch: stored {stored:#010x}, computed {computed:#010x}"),
        ));
    }
    let disk_type = match be_u32(buf, 60) {
        2 => DiskType::Fixed,
        3 => DiskType::Dynamic,
        4 => DiskType::Differencing,
        t => {
            return Err(Error::unsupported(
                L,
                offset + 60,
                format!("disk type {t} (only 2 fixed, 3 dynamic, 4 differencing exist)"),
            ))
        }
    };
    let current_size = be_u64(buf, 48);
    if current_size < SECTOR {
        return Err(Error::corrupt(
            L,
            offset + 48,
            format!("current size {current_size} is less than one sector"),
        ));
    }
    if current_size > MAX_SIZE {
        return Err(Error::corrupt(
            L,
            offset + 48,
            format!("current size {current_size} exceeds the VHD limit of 2040 GiB"),
        ));
    }
    let mut creator = [0u8; 4];
    creator.copy_from_slice(&buf[28..32]);
    let mut unique_id = [0u8; 16];
    unique_id.copy_from_slice(&buf[68..84]);
    Ok(Footer {
        offset,
        data_offset: be_u64(buf, 16),
        creator,
        current_size,
        cylinders: be_u16(buf, 56),
        heads: buf[58],
        sectors_per_track: buf[59],
        disk_type,
        unique_id,
        raw: *buf,
    })
}

/// Find the footer: the one at the end, else (dynamic/differencing only) the
/// copy at offset 0. Returns the footer and whether it came from the end.
fn find_footer(src: &dyn Source) -> Result<(Footer, bool)> {
    let len = src.len();
    if len < FOOTER_LEN as u64 {
        return Err(Error::corrupt(
            L,
            0,
            format!("file is {len} bytes, too small for a VHD footer (512 bytes): truncated?"),
        ));
    }
    let end_off = len - FOOTER_LEN as u64;
    let mut end = [0u8; FOOTER_LEN];
    src.read(L, end_off, &mut end)?;
    let end_err = match parse_footer(&end, end_off) {
        Ok(f) => return Ok((f, true)),
        Err(e) => e,
    };
    if end_off > 0 {
        let mut head = [0u8; FOOTER_LEN];
        src.read(L, 0, &mut head)?;
        if &head[..8] == FOOTER_COOKIE {
            match parse_footer(&head, 0) {
                // The copy of a dynamic/differencing footer: usable on its own.
                Ok(f) if f.disk_type != DiskType::Fixed => return Ok((f, false)),
                // A fixed disk has no copy at 0; this is not a usable footer.
                Ok(_) => {}
                // Only the copy carries the cookie: its error is the useful one.
                Err(e) if &end[..8] != FOOTER_COOKIE => return Err(e),
                Err(_) => {}
            }
        }
    }
    Err(end_err)
}

/// The virtual size, following the convention of the tool that wrote the image.
///
/// Hyper-V, Azure, disk2vhd, XenServer and `qemu-img -o force_size=on`
/// (creator `qem2`) use the footer's **current size**; Virtual PC (`vpc `) and
/// plain `qemu-img create -f vpc` (`qemu`) use **CHS × 512**. The rule here:
///
/// * creator `vpc ` or `qemu`, geometry not the 65535×16×255 maximum (which
///   means "does not fit CHS") and CHS × 512 ≤ current size → CHS × 512;
/// * otherwise the current size, rounded down to whole sectors.
///
/// This matches `qemu-img info` for every image qemu-img writes (it stores
/// current size = CHS × 512 unless the geometry is the maximum, and `qem2`
/// images use current size) and for Windows-made images (`win `). It differs
/// from qemu on purpose for unknown creators (qemu uses CHS for any creator
/// not in its current-size list; we follow Hyper-V and use current size, which
/// never hides data) and when CHS × 512 exceeds the current size (qemu would
/// use CHS; we never go past the size the file was made for).
fn virtual_size(f: &Footer) -> u64 {
    let chs = u64::from(f.cylinders) * u64::from(f.heads) * u64::from(f.sectors_per_track);
    let chs_creator = &f.creator == b"vpc " || &f.creator == b"qemu";
    if chs_creator && chs != 0 && chs != CHS_MAX_SECTORS && chs * SECTOR <= f.current_size {
        chs * SECTOR
    } else {
        f.current_size / SECTOR * SECTOR
    }
}

fn creator_string(c: &[u8; 4]) -> Option<String> {
    let s: String =
        c.iter().map(|&b| if b.is_ascii_graphic() || b == b' ' { b as char } else { ' ' }).collect();
    let s = s.trim();
    (!s.is_empty()).then(|| s.to_string())
}

fn guid_string(id: &[u8; 16]) -> String {
    // DiscUtils reads the unique id as a big-endian GUID: bytes in file order.
    uuid::Uuid::from_bytes(*id).to_string()
}

/// A VHD opened read-only.
pub struct VhdDisk {
    src: Arc<dyn Source>,
    size: u64,
    /// The authoritative footer (the end footer, or the copy at 0).
    footer: Footer,
    sparse: Option<Sparse>,
}

/// Dynamic and differencing layout.
struct Sparse {
    block_size: u64,
    bitmap_size: u64,
    /// BAT entries for the blocks covering the virtual size.
    bat: Vec<u32>,
    bat_offset: u64,
    /// Block contents must lie below this file offset (the end footer, or EOF
    /// when the footer copy at offset 0 is in use).
    data_limit: u64,
    /// Present for differencing disks.
    parent: Option<Arc<dyn Disk>>,
}

impl Sparse {
    /// Check that `[off, off + n)` of block `blk` lies in the file.
    fn check_in_file(&self, blk: u64, entry: u32, off: u64, n: u64, vofs: u64) -> Result<()> {
        if off.checked_add(n).is_none_or(|e| e > self.data_limit) {
            return Err(Error::corrupt(
                L,
                self.bat_offset + blk * 4,
                format!(
                    "BAT entry for block {blk} (virtual offset {vofs:#x}) points to sector {entry} \
                     (file offset {:#x}), but its bytes at file offset {off:#x} lie past the end of \
                     the block area ({:#x}): file truncated or BAT corrupt",
                    u64::from(entry) * SECTOR,
                    self.data_limit
                ),
            ));
        }
        Ok(())
    }

    fn read_file(
        &self,
        src: &dyn Source,
        blk: u64,
        entry: u32,
        off: u64,
        out: &mut [u8],
        vofs: u64,
    ) -> Result<()> {
        self.check_in_file(blk, entry, off, out.len() as u64, vofs)?;
        src.read(L, off, out)
    }

    /// Read `out.len()` bytes of block `blk`, starting `in_blk` bytes into it
    /// (the caller keeps the range inside the block).
    fn read_block(&self, src: &dyn Source, blk: u64, in_blk: u64, out: &mut [u8]) -> Result<()> {
        let vofs = blk * self.block_size + in_blk;
        let entry = match self.bat.get(blk as usize) {
            Some(&e) => e,
            None => {
                return Err(Error::corrupt(L, self.bat_offset, format!("block {blk} is outside the BAT")));
            }
        };
        if entry == UNALLOCATED {
            return match &self.parent {
                None => {
                    out.fill(0);
                    Ok(())
                }
                // Past the parent's end only when parent and child follow
                // different size conventions (see `virtual_size`).
                Some(p) => crate::image::read_zero_extended(p.as_ref(), vofs, out),
            };
        }
        let block_off = u64::from(entry) * SECTOR;
        let data_off = block_off + self.bitmap_size;
        let Some(parent) = &self.parent else {
            // Dynamic disk: the bitmap is ignored (qemu does the same).
            return self.read_file(src, blk, entry, data_off + in_blk, out, vofs);
        };
        // Differencing: per-sector bitmap, MSB-first, 1 = this file, 0 = parent.
        let end = in_blk + out.len() as u64;
        let first_sec = in_blk / SECTOR;
        let last_sec = (end - 1) / SECTOR;
        let first_byte = first_sec / 8;
        let nbytes = last_sec / 8 - first_byte + 1;
        let mut bitmap = vec![0u8; nbytes as usize];
        self.read_file(src, blk, entry, block_off + first_byte, &mut bitmap, vofs)?;
        let bit = |s: u64| bitmap[(s / 8 - first_byte) as usize] & (0x80 >> (s % 8)) != 0;
        let mut s = first_sec;
        while s <= last_sec {
            let here = bit(s);
            let mut t = s;
            while t < last_sec && bit(t + 1) == here {
                t += 1;
            }
            // Sectors s..=t share a source; clip to the requested bytes.
            let lo = (s * SECTOR).max(in_blk);
            let hi = ((t + 1) * SECTOR).min(end);
            let part = &mut out[(lo - in_blk) as usize..(hi - in_blk) as usize];
            if here {
                self.read_file(src, blk, entry, data_off + lo, part, vofs)?;
            } else {
                crate::image::read_zero_extended(parent.as_ref(), blk * self.block_size + lo, part)?;
            }
            s = t + 1;
        }
        Ok(())
    }
}

impl Disk for VhdDisk {
    fn read_at(&self, offset: u64, buf: &mut [u8]) -> Result<()> {
        crate::image::check_virtual_read(L, offset, buf.len(), self.size)?;
        let Some(sp) = &self.sparse else {
            // Fixed: the data before the footer is the disk (size checked at open).
            return self.src.read(L, offset, buf);
        };
        let bs = sp.block_size;
        crate::image::by_blocks(offset, buf, bs, |v, piece| sp.read_block(self.src.as_ref(), v / bs, v % bs, piece))
    }
    fn len(&self) -> u64 {
        self.size
    }
    fn sector_size(&self) -> u32 {
        512
    }
    fn as_any(&self) -> Option<&dyn std::any::Any> {
        Some(self)
    }
}

/// The dynamic header of a dynamic or differencing disk, checked, and its BAT.
struct DynHeader {
    hdr: Vec<u8>,
    hdr_off: u64,
    bat_offset: u64,
    block_size: u32,
    /// BAT entries for the blocks covering the virtual size `size`.
    bat: Vec<u32>,
}

/// Read and check the dynamic header `footer` points to, and the BAT entries
/// covering a `size`-byte virtual disk.
fn read_dynamic_header(src: &dyn Source, footer: &Footer, size: u64) -> Result<DynHeader> {
    let len = src.len();
    // Dynamic header.
    let hdr_off = footer.data_offset;
    if hdr_off.checked_add(HEADER_LEN as u64).is_none_or(|e| e > len) {
        return Err(Error::corrupt(
            L,
            footer.offset + 16,
            format!("dynamic header offset {hdr_off:#x} (+1024 bytes) lies past the end of the file ({len} bytes)"),
        ));
    }
    let mut hdr = vec![0u8; HEADER_LEN];
    src.read(L, hdr_off, &mut hdr)?;
    if &hdr[..8] != HEADER_COOKIE {
        return Err(Error::corrupt(L, hdr_off, "no dynamic disk header here (cookie \"cxsparse\" missing)"));
    }
    let stored = be_u32(&hdr, 36);
    let computed = checksum(&hdr, 36);
    if stored != computed {
        return Err(Error::corrupt(
            L,
            hdr_off,
            format!("dynamic header checksum mismatch: stored {stored:#010x}, computed {computed:#010x}"),
        ));
    }
    let bat_offset = be_u64(&hdr, 16);
    let max_entries = be_u32(&hdr, 28);
    let block_size = be_u32(&hdr, 32);
    if !block_size.is_power_of_two() || !(MIN_BLOCK..=MAX_BLOCK).contains(&block_size) {
        return Err(Error::corrupt(
            L,
            hdr_off + 32,
            format!("block size {block_size} is not a power of two between 4 KiB and 256 MiB"),
        ));
    }
    if max_entries > MAX_BAT_ENTRIES {
        return Err(Error::corrupt(
            L,
            hdr_off + 28,
            format!("BAT claims {max_entries} entries (more than {MAX_BAT_ENTRIES})"),
        ));
    }
    let bs = u64::from(block_size);
    let needed = size.div_ceil(bs);
    if u64::from(max_entries) < needed {
        return Err(Error::corrupt(
            L,
            hdr_off + 28,
            format!(
                "BAT has {max_entries} entries, but a {size}-byte disk needs {needed} blocks of {block_size} bytes"
            ),
        ));
    }
    let bat_bytes = u64::from(max_entries) * 4;
    if bat_offset.checked_add(bat_bytes).is_none_or(|e| e > len) {
        return Err(Error::corrupt(
            L,
            hdr_off + 16,
            format!("BAT at {bat_offset:#x} ({bat_bytes} bytes) lies past the end of the file ({len} bytes)"),
        ));
    }
    // needed <= max_entries <= 2^24 and the bytes are in the file: bounded.
    let mut raw_bat = vec![0u8; (needed * 4) as usize];
    src.read(L, bat_offset, &mut raw_bat)?;
    let bat: Vec<u32> =
        raw_bat.chunks_exact(4).map(|c| u32::from_be_bytes([c[0], c[1], c[2], c[3]])).collect();
    Ok(DynHeader { hdr, hdr_off, bat_offset, block_size, bat })
}

/// The container structures of a VHD, for the writers (`vhd::write`), as the
/// reader parsed them when the image was opened.
pub(crate) struct Layout<'a> {
    /// The authoritative footer's bytes (the end footer, or the copy at 0),
    /// and the file offset they were read from.
    pub(crate) footer: &'a [u8; FOOTER_LEN],
    pub(crate) footer_offset: u64,
    /// The virtual size.
    pub(crate) virtual_size: u64,
    /// Dynamic and differencing disks: block size and the BAT entries
    /// covering the virtual size (`UNALLOCATED` or a sector number).
    pub(crate) sparse: Option<(u32, &'a [u32])>,
    /// The parent of a differencing disk.
    pub(crate) parent: Option<&'a Arc<dyn Disk>>,
}

impl VhdDisk {
    pub(crate) fn layout(&self) -> Layout<'_> {
        Layout {
            footer: &self.footer.raw,
            footer_offset: self.footer.offset,
            virtual_size: self.size,
            sparse: self.sparse.as_ref().map(|sp| (sp.block_size as u32, sp.bat.as_slice())),
            parent: self.sparse.as_ref().and_then(|sp| sp.parent.as_ref()),
        }
    }
}

/// The VHD reader's disk behind `d`, if it is one.
pub(crate) fn as_vhd(d: &dyn Disk) -> Option<&VhdDisk> {
    d.as_any().and_then(|a| a.downcast_ref::<VhdDisk>())
}

/// The bytes a VHD disk reads (for the writers).
pub(crate) fn source_of(d: &dyn Disk) -> Option<Arc<dyn Source>> {
    as_vhd(d).map(|v| v.src.clone())
}

/// Open a VHD whose footer (or footer copy) has been detected in `src`.
pub fn open(src: Arc<dyn Source>, ctx: &mut OpenCtx) -> Result<Image> {
    let (footer, at_end) = find_footer(src.as_ref())?;
    let len = src.len();
    let size = virtual_size(&footer);
    let mut info = ContainerInfo {
        path: src.path(),
        format: match footer.disk_type {
            DiskType::Fixed => Format::VhdFixed,
            DiskType::Dynamic => Format::VhdDynamic,
            DiskType::Differencing => Format::VhdDifferencing,
        },
        file_size: len,
        virtual_size: size,
        logical_sector_size: 512,
        physical_sector_size: 512,
        block_size: None,
        disk_id: Some(guid_string(&footer.unique_id)),
        creator: creator_string(&footer.creator),
        log_replayed: None,
        allocated_blocks: None,
        parent: None,
    };

    if footer.disk_type == DiskType::Fixed {
        // find_footer only returns a fixed footer from the end of the file.
        let data_len = footer.offset;
        if size > data_len {
            return Err(Error::corrupt(
                L,
                footer.offset + 48,
                format!(
                    "fixed VHD footer gives a disk of {size} bytes, but only {data_len} bytes precede \
                     the footer: file truncated?"
                ),
            ));
        }
        return Ok(Image { disk: Arc::new(VhdDisk { src, size, footer, sparse: None }), info });
    }

    let DynHeader { hdr, hdr_off, bat_offset, block_size, bat } = read_dynamic_header(src.as_ref(), &footer, size)?;
    let bs = u64::from(block_size);
    let allocated = bat.iter().filter(|&&e| e != UNALLOCATED).count() as u64;
    // Bitmap: one bit per sector, rounded up to whole sectors.
    let bitmap_size = (bs / SECTOR / 8).div_ceil(SECTOR) * SECTOR;
    info.block_size = Some(block_size);
    info.allocated_blocks = Some(allocated);

    let parent = if footer.disk_type == DiskType::Differencing {
        let p = open_parent(src.as_ref(), ctx, &footer, &hdr, hdr_off, size)?;
        info.parent = Some(Box::new(p.info));
        Some(p.disk)
    } else {
        None
    };
    let sparse = Sparse {
        block_size: bs,
        bitmap_size,
        bat,
        bat_offset,
        data_limit: if at_end { footer.offset } else { len },
        parent,
    };
    Ok(Image { disk: Arc::new(VhdDisk { src, size, footer, sparse: Some(sparse) }), info })
}

/// One parent locator entry with its decoded path.
pub(crate) struct Locator {
    relative: bool,
    /// W2ru/W2ku (as opposed to the deprecated Wi2r/Wi2k).
    modern: bool,
    path: String,
}

/// Decode the parent locators (entries 0..8 at header offset 576). Damaged
/// entries are skipped: they are hints, and the parent name remains.
fn read_locators(src: &dyn Source, hdr: &[u8]) -> Vec<Locator> {
    let mut out = Vec::new();
    for i in 0..8 {
        let o = 576 + 24 * i;
        let code = &hdr[o..o + 4];
        let (relative, utf16) = match code {
            b"W2ru" => (true, true),
            b"W2ku" => (false, true),
            b"Wi2r" => (true, false),
            b"Wi2k" => (false, false),
            _ => continue,
        };
        let data_len = be_u32(hdr, o + 8);
        let data_off = be_u64(hdr, o + 16);
        if data_len == 0 || data_len > MAX_LOCATOR_BYTES {
            continue;
        }
        let mut data = vec![0u8; data_len as usize];
        if data_off.checked_add(u64::from(data_len)).is_none_or(|e| e > src.len())
            || src.read(L, data_off, &mut data).is_err()
        {
            continue;
        }
        // W2ru/W2ku are UTF-16 LE. The deprecated Wi2r/Wi2k are byte strings
        // in the old spec, but some writers put UTF-16 there too.
        let path = if utf16 || (data.len() >= 2 && data[0] != 0 && data[1] == 0) {
            utf16le(&data)
        } else {
            let end = data.iter().position(|&b| b == 0).unwrap_or(data.len());
            String::from_utf8_lossy(&data[..end]).into_owned()
        };
        let path = path.trim().to_string();
        if !path.is_empty() {
            out.push(Locator { relative, modern: utf16, path });
        }
    }
    // Relative entries first, the modern (W2..) before the deprecated within each kind.
    out.sort_by_key(|l| (!l.relative, !l.modern));
    out
}

/// Strip the Win32 "verbatim" prefixes `\\?\` and `\\?\UNC\`.
pub(crate) fn strip_verbatim(p: &str) -> String {
    if let Some(rest) = p.strip_prefix(r"\\?\UNC\") {
        format!(r"\\{rest}")
    } else if let Some(rest) = p.strip_prefix(r"\\?\") {
        rest.to_string()
    } else {
        p.to_string()
    }
}

/// Last component of a Windows (or Unix) path.
fn win_file_name(p: &str) -> Option<&str> {
    p.rsplit(['\\', '/']).find(|s| !s.is_empty() && *s != "." && *s != "..")
}

/// A Windows relative path (`.\parent.vhd`, `..\base\parent.vhd`) as a name
/// relative to the child's directory, `/`-separated. `None` for a rooted path
/// (`\vms\x.vhd`, `C:x`).
fn resolve_relative(rel: &str) -> Option<String> {
    let mut s = rel.replace('\\', "/");
    while let Some(rest) = s.strip_prefix("./") {
        s = rest.to_string();
    }
    if s.is_empty() || s.starts_with('/') || s.contains(':') {
        return None;
    }
    Some(s)
}

/// Where to look for the parent, in order: relative locators, as siblings of
/// the child; on Windows the absolute locators and the parent name as
/// recorded; then the file names of the absolute locators, the relative
/// locators and the parent name, as siblings of the child.
pub(crate) fn parent_candidates(locators: &[Locator], parent_name: &str) -> Vec<Candidate> {
    let mut cands: Vec<Candidate> = Vec::new();
    for l in locators.iter().filter(|l| l.relative) {
        cands.extend(resolve_relative(&l.path).map(Candidate::Sibling));
    }
    let absolutes: Vec<String> =
        locators.iter().filter(|l| !l.relative).map(|l| strip_verbatim(&l.path)).collect();
    if cfg!(windows) {
        cands.extend(absolutes.iter().map(|a| Candidate::Absolute(a.into())));
        if !parent_name.is_empty() {
            cands.push(Candidate::Absolute(strip_verbatim(parent_name).into()));
        }
    }
    let names = absolutes
        .iter()
        .map(String::as_str)
        .chain(locators.iter().filter(|l| l.relative).map(|l| l.path.as_str()))
        .chain(std::iter::once(parent_name));
    for n in names {
        if let Some(f) = win_file_name(n) {
            cands.push(Candidate::Sibling(f.to_string()));
        }
    }
    let mut seen = Vec::new();
    cands.retain(|c| {
        if seen.contains(c) {
            false
        } else {
            seen.push(c.clone());
            true
        }
    });
    cands
}

/// Find, open and check the parent of a differencing disk (through the
/// child's source: siblings first, then absolute paths where permitted).
///
/// Checked: the parent footer's unique id equals the child's parent unique id,
/// and the footers' current sizes agree (for a non-VHD parent: its length
/// equals the child's virtual size). Not checked: the parent timestamp, which
/// copying or restoring the parent file changes without changing its data.
fn open_parent(
    src: &dyn Source,
    ctx: &mut OpenCtx,
    footer: &Footer,
    hdr: &[u8],
    hdr_off: u64,
    size: u64,
) -> Result<Image> {
    let mut parent_uid = [0u8; 16];
    parent_uid.copy_from_slice(&hdr[40..56]);
    let parent_name = utf16be(&hdr[64..576]).trim().to_string();
    let locators = read_locators(src, hdr);
    let expected = locators
        .iter()
        .find(|l| !l.relative)
        .map(|l| strip_verbatim(&l.path))
        .or_else(|| (!parent_name.is_empty()).then(|| parent_name.clone()))
        .or_else(|| locators.first().map(|l| l.path.clone()))
        .unwrap_or_else(|| "(parent name and locators empty)".to_string());
    let cands = parent_candidates(&locators, &parent_name);
    let parent = ctx.open_parent(src, L, hdr_off + 64, &expected, &cands)?;
    let ppath = parent.info.path.clone();
    match as_vhd(parent.disk.as_ref()) {
        Some(pd) => {
            let pf = &pd.footer;
            if pf.unique_id != parent_uid {
                return Err(Error::corrupt(
                    L,
                    hdr_off + 40,
                    format!(
                        "parent {} has unique id {}, but this differencing disk was made from unique id {}: \
                         wrong parent, or the parent was replaced",
                        ppath.display(),
                        guid_string(&pf.unique_id),
                        guid_string(&parent_uid)
                    ),
                ));
            }
            if pf.current_size != footer.current_size {
                return Err(Error::corrupt(
                    L,
                    footer.offset + 48,
                    format!(
                        "parent {} has current size {}, but this differencing disk has {}",
                        ppath.display(),
                        pf.current_size,
                        footer.current_size
                    ),
                ));
            }
        }
        None => {
            if parent.disk.len() != size {
                return Err(Error::corrupt(
                    L,
                    footer.offset + 48,
                    format!(
                        "parent {} ({}) is {} bytes, but this differencing disk is {size} bytes",
                        ppath.display(),
                        parent.info.format.name(),
                        parent.disk.len()
                    ),
                ));
            }
        }
    }
    Ok(parent)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The candidate list, as documented on [`parent_candidates`].
    #[test]
    fn parent_candidate_order() {
        let locs = vec![
            Locator { relative: false, modern: true, path: r"\\?\D:\a\p.vhd".into() },
            Locator { relative: true, modern: true, path: r".\..\b\p.vhd".into() },
        ];
        let c = parent_candidates(&locs, r"D:\a\q.vhd");
        let mut expect = vec![Candidate::Sibling("../b/p.vhd".into())];
        if cfg!(windows) {
            expect.extend([Candidate::Absolute(r"D:\a\p.vhd".into()), Candidate::Absolute(r"D:\a\q.vhd".into())]);
        }
        expect.extend([Candidate::Sibling("p.vhd".into()), Candidate::Sibling("q.vhd".into())]);
        assert_eq!(c, expect);
        assert_eq!(resolve_relative(r"\vms\x.vhd"), None);
        assert_eq!(resolve_relative(r"C:x.vhd"), None);
        assert_eq!(resolve_relative(r".\.\base\x.vhd").as_deref(), Some("base/x.vhd"));
    }
}
