//! VMDK containers, read only.
//!
//! * **Hosted sparse extent** (`KDMV`, little-endian header of 512 bytes):
//!   capacity and grain size in sectors, a grain directory (GD) of u32 sector
//!   offsets of grain tables (GT), each GT `numGTEsPerGT` u32 sector offsets
//!   of grains. A GT or grain entry of 0 is unallocated (the parent's bytes,
//!   or zeros); 1 with the zeroed-grain flag is a grain of zeros. The
//!   redundant GD is ignored (as qemu does). A monolithic sparse file is one
//!   such extent, with its descriptor embedded (read for the parent hint).
//! * **Stream-optimized**: the same extent with compressed grains (flag bit
//!   16, deflate in a zlib stream, each grain behind a 12-byte marker: LBA and
//!   size) and the GD written last: the header at 0 says "GD at end" and the
//!   footer copy of the header, 1024 bytes before the end, gives it.
//! * **Descriptor file** (text, `# Disk DescriptorFile`): extent lines
//!   `RW <sectors> FLAT|SPARSE|ZERO|VMFS "<file>" [<offset>]` (monolithicFlat,
//!   twoGbMaxExtentFlat, twoGbMaxExtentSparse, ...). Extent files are opened
//!   as siblings of the descriptor (`Source::sibling`), never detected.
//! * **Parent** (`parentFileNameHint`, when `parentCID` is not `ffffffff`):
//!   opened like a VHD's parent, and its CID must equal our `parentCID`.
//!
//! Bounded: the GD is read at open (at most 16 MiB, and only when it lies in
//! the file), GTs when first needed (cached), one decompressed grain cached;
//! descriptor text at most 1 MiB; grains at most 8 MiB.

use crate::error::{Error, Layer, Result};
use crate::image::qcow2::TableCache;
use crate::image::{Candidate, ContainerInfo, Disk, Format, Image, OpenCtx, Source};
use std::path::Path;
use std::sync::{Arc, Mutex};

const L: Layer = Layer::Vmdk;
const SECTOR: u64 = 512;
const MAGIC: &[u8; 4] = b"KDMV";
const GD_AT_END: u64 = u64::MAX;
const FLAG_ZERO_GRAIN: u32 = 1 << 2;
const FLAG_COMPRESSED: u32 = 1 << 16;
/// Largest grain: 8 MiB (VMware and qemu use 64 KiB).
const MAX_GRAIN_SECTORS: u64 = 1 << 14;
/// Most GT entries per GT (VMware and qemu use 512).
const MAX_GTES: u32 = 4096;
/// Largest grain directory read (bytes).
const MAX_GD_BYTES: u64 = 16 << 20;
/// Largest virtual size: 1 PiB.
const MAX_CAPACITY_SECTORS: u64 = 1 << 41;
/// Largest descriptor (text file or embedded).
const MAX_DESCRIPTOR: u64 = 1 << 20;
/// Most extents in a descriptor.
const MAX_EXTENTS: usize = 4096;

fn le16(b: &[u8], o: usize) -> u16 {
    u16::from_le_bytes([b[o], b[o + 1]])
}
fn le32(b: &[u8], o: usize) -> u32 {
    u32::from_le_bytes([b[o], b[o + 1], b[o + 2], b[o + 3]])
}
fn le64(b: &[u8], o: usize) -> u64 {
    u64::from_le_bytes(b[o..o + 8].try_into().unwrap_or([0; 8]))
}

/// One hosted sparse extent.
struct Sparse {
    src: Arc<dyn Source>,
    /// Capacity in bytes.
    capacity: u64,
    grain: u64,
    gtes: u64,
    gd: Vec<u32>,
    gd_offset: u64,
    compressed: bool,
    zero_grain: bool,
    gts: TableCache<u32>,
    last: Mutex<Option<(u32, Arc<Vec<u8>>)>>,
}

/// Where one grain's bytes are.
enum Grain {
    Unallocated,
    Zero,
    At { sector: u32, entry_at: u64 },
}

impl Sparse {
    fn locate(&self, gi: u64) -> Result<Grain> {
        let gdi = (gi / self.gtes) as usize;
        let gti = gi % self.gtes;
        let gd_at = self.gd_offset + 4 * gdi as u64;
        let gt_sector = match self.gd.get(gdi) {
            Some(&s) => u64::from(s),
            None => return Err(Error::corrupt(L, self.gd_offset, format!("grain {gi} is outside the grain directory"))),
        };
        if gt_sector == 0 {
            return Ok(Grain::Unallocated);
        }
        let gt_off = gt_sector * SECTOR;
        let gt_bytes = self.gtes * 4;
        let len = self.src.len();
        if gt_off.checked_add(gt_bytes).is_none_or(|e| e > len) {
            return Err(Error::corrupt(
                L,
                gd_at,
                format!("grain directory entry {gdi} points at a grain table at {gt_off:#x}, past the end of {} ({len} bytes)", self.src.name()),
            ));
        }
        let gt = self.gts.get_or(gt_off, || {
            let raw = self.src.read_vec(L, gt_off, gt_bytes)?;
            Ok(raw.chunks_exact(4).map(|c| le32(c, 0)).collect())
        })?;
        let entry_at = gt_off + 4 * gti;
        Ok(match gt[gti as usize] {
            0 => Grain::Unallocated,
            1 if self.zero_grain => Grain::Zero,
            s => Grain::At { sector: s, entry_at },
        })
    }

    /// Read `out.len()` bytes at `off` (inside one grain); `Ok(false)` when
    /// the grain is unallocated (the caller reads the parent).
    fn read(&self, off: u64, out: &mut [u8]) -> Result<bool> {
        let gi = off / self.grain;
        let in_g = off % self.grain;
        let (sector, entry_at) = match self.locate(gi)? {
            Grain::Unallocated => return Ok(false),
            Grain::Zero => {
                out.fill(0);
                return Ok(true);
            }
            Grain::At { sector, entry_at } => (sector, entry_at),
        };
        let at = u64::from(sector) * SECTOR;
        let len = self.src.len();
        if sector < 1 || at >= len {
            return Err(Error::corrupt(
                L,
                entry_at,
                format!("grain table entry for grain {gi} points at sector {sector} (file offset {at:#x}), outside the data of {} ({len} bytes)", self.src.name()),
            ));
        }
        if self.compressed {
            // The last grain of a disk that is no whole number of grains
            // holds only the bytes up to the capacity (qemu writes it so).
            let want = self.grain.min(self.capacity.saturating_sub(gi * self.grain));
            let data = self.inflate(sector, at, entry_at, want)?;
            out.copy_from_slice(&data[in_g as usize..in_g as usize + out.len()]);
            return Ok(true);
        }
        let start = at + in_g;
        if start.checked_add(out.len() as u64).is_none_or(|e| e > len) {
            return Err(Error::corrupt(
                L,
                entry_at,
                format!("grain {gi} at file offset {at:#x} runs past the end of {} ({len} bytes): file truncated?", self.src.name()),
            ));
        }
        self.src.read(L, start, out)?;
        Ok(true)
    }

    fn inflate(&self, sector: u32, at: u64, entry_at: u64, want: u64) -> Result<Arc<Vec<u8>>> {
        if let Some((s, d)) = &*self.last.lock().unwrap_or_else(|e| e.into_inner()) {
            if *s == sector {
                return Ok(d.clone());
            }
        }
        let len = self.src.len();
        if at + 12 > len {
            return Err(Error::corrupt(L, entry_at, format!("compressed grain at {at:#x} runs past the end of the file ({len} bytes)")));
        }
        let marker = self.src.read_vec(L, at, 12)?;
        let size = u64::from(le32(&marker, 8));
        if size == 0 || size > 2 * self.grain + 4096 || at + 12 + size > len {
            return Err(Error::corrupt(
                L,
                at + 8,
                format!("compressed grain at {at:#x} claims {size} bytes (grain {} bytes, file {len} bytes)", self.grain),
            ));
        }
        let input = self.src.read_vec(L, at + 12, size)?;
        let mut data = vec![0u8; self.grain as usize];
        let mut z = flate2::Decompress::new(true);
        let r = z.decompress(&input, &mut data, flate2::FlushDecompress::Finish);
        if r.is_err() || z.total_out() < want {
            return Err(Error::corrupt(
                L,
                at + 12,
                format!(
                    "compressed grain does not inflate to {want} bytes ({}): damaged deflate data",
                    match r {
                        Err(e) => e.to_string(),
                        Ok(_) => format!("{} bytes", z.total_out()),
                    }
                ),
            ));
        }
        let d = Arc::new(data);
        *self.last.lock().unwrap_or_else(|e| e.into_inner()) = Some((sector, d.clone()));
        Ok(d)
    }
}

enum Extent {
    Flat { src: Arc<dyn Source>, offset: u64 },
    Zero,
    Sparse(Box<Sparse>),
}

struct Piece {
    start: u64,
    len: u64,
    extent: Extent,
}

/// A VMDK opened read-only.
pub struct VmdkDisk {
    size: u64,
    pieces: Vec<Piece>,
    parent: Option<Arc<dyn Disk>>,
}

impl VmdkDisk {
    fn read_parent(&self, off: u64, out: &mut [u8]) -> Result<()> {
        let Some(p) = &self.parent else {
            out.fill(0);
            return Ok(());
        };
        crate::image::read_zero_extended(p.as_ref(), off, out)
    }
}

impl Disk for VmdkDisk {
    fn read_at(&self, offset: u64, buf: &mut [u8]) -> Result<()> {
        crate::image::check_virtual_read(L, offset, buf.len(), self.size)?;
        let mut done = 0usize;
        while done < buf.len() {
            let v = offset + done as u64;
            // Pieces are sorted and contiguous from 0.
            let i = self.pieces.partition_point(|p| p.start + p.len <= v);
            let Some(p) = self.pieces.get(i) else {
                return Err(Error::corrupt(L, v, "no extent covers this offset"));
            };
            let in_p = v - p.start;
            let mut n = ((buf.len() - done) as u64).min(p.len - in_p);
            let out = &mut buf[done..];
            match &p.extent {
                Extent::Zero => out[..n as usize].fill(0),
                Extent::Flat { src, offset } => src.read(L, offset + in_p, &mut out[..n as usize])?,
                Extent::Sparse(s) => {
                    n = n.min(s.grain - in_p % s.grain);
                    if !s.read(in_p, &mut out[..n as usize])? {
                        self.read_parent(v, &mut out[..n as usize])?;
                    }
                }
            }
            done += n as usize;
        }
        Ok(())
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

/// The header fields used, from the header at 0 or the footer.
struct Header {
    flags: u32,
    capacity: u64,
    grain: u64,
    desc_offset: u64,
    desc_size: u64,
    gtes: u32,
    gd_offset: u64,
    compress: u16,
}

fn parse_header(b: &[u8], at: u64) -> Result<Header> {
    if &b[..4] != MAGIC {
        return Err(Error::corrupt(L, at, "no VMDK sparse extent header here (magic KDMV missing)"));
    }
    let version = le32(b, 4);
    if !(1..=3).contains(&version) {
        return Err(Error::unsupported(L, at + 4, format!("sparse extent version {version} (only 1, 2 and 3 exist)")));
    }
    Ok(Header {
        flags: le32(b, 8),
        capacity: le64(b, 12),
        grain: le64(b, 20),
        desc_offset: le64(b, 28),
        desc_size: le64(b, 36),
        gtes: le32(b, 44),
        gd_offset: le64(b, 56),
        compress: le16(b, 77),
    })
}

/// Open a hosted sparse extent: its header (or its footer when the GD is at
/// the end) and grain directory. Returns the extent and the header.
fn open_sparse_extent(src: Arc<dyn Source>) -> Result<(Sparse, Header)> {
    let len = src.len();
    if len < SECTOR {
        return Err(Error::corrupt(L, 0, format!("{} is {len} bytes, too small for a VMDK sparse extent header: truncated?", src.name())));
    }
    let mut b = [0u8; 512];
    src.read(L, 0, &mut b)?;
    let mut h = parse_header(&b, 0)?;
    let mut hdr_at = 0;
    if h.gd_offset == GD_AT_END {
        // Stream-optimized: footer marker, footer (a header copy), end-of-stream marker.
        if len < 4 * SECTOR {
            return Err(Error::corrupt(L, 56, "grain directory at the end, but the file is too small for a footer: truncated?"));
        }
        hdr_at = len - 2 * SECTOR;
        src.read(L, hdr_at, &mut b)?;
        h = parse_header(&b, hdr_at).map_err(|_| {
            Error::corrupt(L, hdr_at, "grain directory at the end, but no footer (KDMV) 1024 bytes before the end of the file: truncated stream-optimized VMDK?")
        })?;
        if h.gd_offset == GD_AT_END {
            return Err(Error::corrupt(L, hdr_at + 56, "the footer too says the grain directory is at the end"));
        }
    }
    if h.capacity == 0 || h.capacity > MAX_CAPACITY_SECTORS {
        return Err(Error::corrupt(L, hdr_at + 12, format!("capacity of {} sectors is 0 or larger than 1 PiB", h.capacity)));
    }
    if !h.grain.is_power_of_two() || h.grain > MAX_GRAIN_SECTORS {
        return Err(Error::corrupt(L, hdr_at + 20, format!("grain size of {} sectors is not a power of two up to {MAX_GRAIN_SECTORS}", h.grain)));
    }
    if h.gtes == 0 || h.gtes > MAX_GTES {
        return Err(Error::corrupt(L, hdr_at + 44, format!("{} grain table entries per table (1..{MAX_GTES})", h.gtes)));
    }
    let compressed = h.flags & FLAG_COMPRESSED != 0;
    if compressed && h.compress != 1 {
        return Err(Error::unsupported(L, hdr_at + 77, format!("compression algorithm {} (only 1, deflate, exists)", h.compress)));
    }
    let grain = h.grain * SECTOR;
    let per_gt = grain * u64::from(h.gtes);
    let capacity = h.capacity * SECTOR;
    let gd_entries = capacity.div_ceil(per_gt);
    let gd_bytes = gd_entries * 4;
    if gd_bytes > MAX_GD_BYTES {
        return Err(Error::corrupt(L, hdr_at + 12, format!("grain directory of {gd_bytes} bytes is larger than {MAX_GD_BYTES}")));
    }
    let gd_offset = h.gd_offset.checked_mul(SECTOR).unwrap_or(u64::MAX);
    if h.gd_offset == 0 || gd_offset.checked_add(gd_bytes).is_none_or(|e| e > len) {
        return Err(Error::corrupt(
            L,
            hdr_at + 56,
            format!("grain directory at sector {} ({gd_bytes} bytes) lies outside {} ({len} bytes)", h.gd_offset, src.name()),
        ));
    }
    let gd = src.read_vec(L, gd_offset, gd_bytes)?.chunks_exact(4).map(|c| le32(c, 0)).collect();
    let s = Sparse {
        capacity,
        grain,
        gtes: u64::from(h.gtes),
        gd,
        gd_offset,
        compressed,
        zero_grain: h.flags & FLAG_ZERO_GRAIN != 0,
        gts: TableCache::new(h.gtes as usize * 4),
        last: Mutex::new(None),
        src,
    };
    Ok((s, h))
}

/// A parsed descriptor.
#[derive(Debug, Default)]
struct Descriptor {
    cid: Option<String>,
    parent_cid: Option<String>,
    create_type: String,
    parent_hint: Option<String>,
    extents: Vec<ExtentLine>,
}

#[derive(Debug)]
struct ExtentLine {
    sectors: u64,
    kind: String,
    file: Option<String>,
    offset: u64,
    /// Byte offset of the line in the descriptor (for errors).
    at: u64,
}

fn unquote(v: &str) -> String {
    let v = v.trim();
    v.strip_prefix('"').and_then(|s| s.strip_suffix('"')).unwrap_or(v).to_string()
}

/// Parse descriptor text starting at file offset `base`.
fn parse_descriptor(text: &str, base: u64) -> Result<Descriptor> {
    let mut d = Descriptor::default();
    let mut at = base;
    for raw in text.split_inclusive('\n') {
        let line_at = at;
        at += raw.len() as u64;
        let line = raw.trim_matches(|c: char| c.is_whitespace() || c == '\0');
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let first = line.split_whitespace().next().unwrap_or("");
        if matches!(first, "RW" | "RDONLY" | "NOACCESS") {
            if d.extents.len() >= MAX_EXTENTS {
                return Err(Error::corrupt(L, line_at, format!("more than {MAX_EXTENTS} extents")));
            }
            let rest = line[first.len()..].trim_start();
            let (size, rest) = rest.split_once(char::is_whitespace).unwrap_or((rest, ""));
            let sectors: u64 = size.parse().map_err(|_| Error::corrupt(L, line_at, format!("extent size {size:?} is not a number")))?;
            let rest = rest.trim_start();
            let (kind, rest) = rest.split_once(char::is_whitespace).unwrap_or((rest, ""));
            let rest = rest.trim();
            let (file, offset) = if let Some(q) = rest.strip_prefix('"') {
                let end = q.find('"').ok_or_else(|| Error::corrupt(L, line_at, "extent file name without its closing quote"))?;
                let off = q[end + 1..].trim();
                let offset = if off.is_empty() {
                    0
                } else {
                    off.parse().map_err(|_| Error::corrupt(L, line_at, format!("extent offset {off:?} is not a number")))?
                };
                (Some(q[..end].to_string()), offset)
            } else {
                (None, 0)
            };
            d.extents.push(ExtentLine { sectors, kind: kind.to_ascii_uppercase(), file, offset, at: line_at });
            continue;
        }
        if let Some((k, v)) = line.split_once('=') {
            let v = unquote(v);
            match k.trim() {
                "CID" => d.cid = Some(v.to_ascii_lowercase()),
                "parentCID" => d.parent_cid = Some(v.to_ascii_lowercase()),
                "createType" => d.create_type = v,
                "parentFileNameHint" => d.parent_hint = Some(v),
                _ => {}
            }
        }
    }
    Ok(d)
}

/// Open the parent named by the descriptor, if it has one.
fn open_parent(src: &dyn Source, ctx: &mut OpenCtx, d: &Descriptor, info: &mut ContainerInfo) -> Result<Option<Arc<dyn Disk>>> {
    let Some(hint) = d.parent_hint.as_deref().filter(|h| !h.is_empty()) else { return Ok(None) };
    if d.parent_cid.as_deref().is_none_or(|c| c == "ffffffff") {
        return Ok(None);
    }
    let base = hint.rsplit(['/', '\\']).next().unwrap_or(hint).to_string();
    let mut cands = Vec::new();
    if Path::new(hint).is_absolute() || hint.get(1..3).is_some_and(|s| s == ":\\" || s == ":/") {
        cands.push(Candidate::Absolute(hint.into()));
    } else {
        cands.push(Candidate::Sibling(hint.replace('\\', "/")));
    }
    if !cands.contains(&Candidate::Sibling(base.clone())) {
        cands.push(Candidate::Sibling(base));
    }
    let p = ctx.open_parent(src, L, 0, hint, &cands)?;
    if matches!(p.info.format, Format::VmdkSparse | Format::VmdkStream | Format::VmdkFlat) {
        if p.info.disk_id != d.parent_cid {
            return Err(Error::corrupt(
                L,
                0,
                format!(
                    "parent {} has CID {}, but this VMDK was made from CID {}: wrong parent, or the parent was changed",
                    p.info.path.display(),
                    p.info.disk_id.as_deref().unwrap_or("(none)"),
                    d.parent_cid.as_deref().unwrap_or("(none)")
                ),
            ));
        }
    }
    info.parent = Some(Box::new(p.info));
    Ok(Some(p.disk))
}

fn info_for(src: &dyn Source, format: Format, size: u64, block: Option<u64>, d: &Descriptor) -> ContainerInfo {
    ContainerInfo {
        path: src.path(),
        format,
        file_size: src.len(),
        virtual_size: size,
        logical_sector_size: 512,
        physical_sector_size: 512,
        block_size: block.and_then(|b| u32::try_from(b).ok()),
        disk_id: d.cid.clone(),
        creator: (!d.create_type.is_empty()).then(|| d.create_type.clone()),
        log_replayed: None,
        allocated_blocks: None,
        parent: None,
    }
}

/// Open a hosted sparse VMDK (monolithic sparse or stream-optimized) whose
/// `KDMV` magic has been detected in `src`.
pub fn open_sparse(src: Arc<dyn Source>, ctx: &mut OpenCtx) -> Result<Image> {
    let (sparse, h) = open_sparse_extent(src.clone())?;
    let len = src.len();
    // The embedded descriptor: the parent hint and the CIDs.
    let d = if h.desc_offset != 0 && h.desc_size != 0 {
        let off = h.desc_offset.saturating_mul(SECTOR);
        let n = h.desc_size.saturating_mul(SECTOR).min(MAX_DESCRIPTOR);
        if off.checked_add(n).is_none_or(|e| e > len) {
            return Err(Error::corrupt(L, 28, format!("embedded descriptor at sector {} lies past the end of the file ({len} bytes)", h.desc_offset)));
        }
        let raw = src.read_vec(L, off, n)?;
        let end = raw.iter().position(|&b| b == 0).unwrap_or(raw.len());
        parse_descriptor(&String::from_utf8_lossy(&raw[..end]), off)?
    } else {
        Descriptor::default()
    };
    let size = sparse.capacity;
    let format = if sparse.compressed || d.create_type == "streamOptimized" { Format::VmdkStream } else { Format::VmdkSparse };
    let mut info = info_for(src.as_ref(), format, size, Some(sparse.grain), &d);
    let parent = open_parent(src.as_ref(), ctx, &d, &mut info)?;
    let disk = VmdkDisk { size, pieces: vec![Piece { start: 0, len: size, extent: Extent::Sparse(Box::new(sparse)) }], parent };
    Ok(Image { disk: Arc::new(disk), info })
}

/// Open a VMDK descriptor file (text) and its extents, as siblings.
pub fn open_descriptor(src: Arc<dyn Source>, ctx: &mut OpenCtx) -> Result<Image> {
    let len = src.len();
    if len > MAX_DESCRIPTOR {
        return Err(Error::corrupt(L, 0, format!("descriptor file of {len} bytes is larger than {MAX_DESCRIPTOR}")));
    }
    let raw = src.read_vec(L, 0, len)?;
    let d = parse_descriptor(&String::from_utf8_lossy(&raw), 0)?;
    if d.extents.is_empty() {
        return Err(Error::corrupt(L, 0, "descriptor lists no extents"));
    }
    let mut pieces = Vec::new();
    let mut start = 0u64;
    let mut grain = None;
    let mut sparse_seen = false;
    let mut stream = false;
    for e in &d.extents {
        let n = e.sectors.checked_mul(SECTOR).filter(|n| start.checked_add(*n).is_some_and(|end| end <= MAX_CAPACITY_SECTORS * SECTOR));
        let Some(n) = n else {
            return Err(Error::corrupt(L, e.at, format!("extent of {} sectors takes the disk past 1 PiB", e.sectors)));
        };
        let open_file = || -> Result<Arc<dyn Source>> {
            let Some(f) = e.file.as_deref() else {
                return Err(Error::corrupt(L, e.at, format!("{} extent without a file name", e.kind)));
            };
            let base = f.rsplit(['/', '\\']).next().unwrap_or(f);
            if Path::new(f).is_absolute() {
                if let Ok(s) = src.open_absolute(Path::new(f)) {
                    return Ok(s);
                }
            }
            src.sibling(&f.replace('\\', "/")).or_else(|err| if base != f { src.sibling(base) } else { Err(err) }).map_err(|err| {
                Error::corrupt(L, e.at, format!("extent file {f} cannot be opened next to {}: {err}", src.name()))
            })
        };
        let extent = match e.kind.as_str() {
            "ZERO" => Extent::Zero,
            "FLAT" | "VMFS" => {
                let f = open_file()?;
                let off = e.offset.checked_mul(SECTOR).unwrap_or(u64::MAX);
                if off.checked_add(n).is_none_or(|end| end > f.len()) {
                    return Err(Error::corrupt(
                        L,
                        e.at,
                        format!("flat extent {} is {} bytes, shorter than the {n} bytes at offset {off} the descriptor gives: truncated?", f.name(), f.len()),
                    ));
                }
                Extent::Flat { src: f, offset: off }
            }
            "SPARSE" => {
                let f = open_file()?;
                let (s, _) = open_sparse_extent(f)?;
                if s.capacity < n {
                    return Err(Error::corrupt(L, e.at, format!("sparse extent {} holds {} bytes, less than the {n} the descriptor gives", s.src.name(), s.capacity)));
                }
                sparse_seen = true;
                stream |= s.compressed;
                grain.get_or_insert(s.grain);
                Extent::Sparse(Box::new(s))
            }
            k => {
                return Err(Error::unsupported(
                    L,
                    e.at,
                    format!("extent type {k} (only FLAT, SPARSE, ZERO and VMFS are read): convert the disk with qemu-img convert first"),
                ))
            }
        };
        if n > 0 {
            pieces.push(Piece { start, len: n, extent });
        }
        start += n;
    }
    let size = start;
    if size == 0 {
        return Err(Error::corrupt(L, 0, "descriptor gives a disk of 0 bytes"));
    }
    let format = if stream || d.create_type == "streamOptimized" {
        Format::VmdkStream
    } else if sparse_seen {
        Format::VmdkSparse
    } else {
        Format::VmdkFlat
    };
    let mut info = info_for(src.as_ref(), format, size, grain, &d);
    let parent = open_parent(src.as_ref(), ctx, &d, &mut info)?;
    Ok(Image { disk: Arc::new(VmdkDisk { size, pieces, parent }), info })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::image::{MemDir, MemSource};

    /// A tiny monolithic sparse extent: header (sector 0), GD (sector 1), one
    /// GT of 4 entries (sector 2), grains of one sector after.
    fn sparse(capacity: u64, gt: &[u32], grains: &[u8]) -> Vec<u8> {
        let mut b = vec![0u8; 3 * 512];
        b[..4].copy_from_slice(MAGIC);
        b[4..8].copy_from_slice(&1u32.to_le_bytes());
        b[8..12].copy_from_slice(&(3u32 | FLAG_ZERO_GRAIN).to_le_bytes());
        b[12..20].copy_from_slice(&capacity.to_le_bytes());
        b[20..28].copy_from_slice(&1u64.to_le_bytes());
        b[44..48].copy_from_slice(&4u32.to_le_bytes());
        b[56..64].copy_from_slice(&1u64.to_le_bytes());
        b[73..77].copy_from_slice(b"\n \r\n");
        let gts = capacity.div_ceil(4) as usize;
        for i in 0..gts.min(1) {
            b[512 + 4 * i..512 + 4 * i + 4].copy_from_slice(&2u32.to_le_bytes());
        }
        for (i, e) in gt.iter().enumerate() {
            b[1024 + 4 * i..1024 + 4 * i + 4].copy_from_slice(&e.to_le_bytes());
        }
        b.extend_from_slice(grains);
        b
    }

    fn err_of(r: Result<Image>) -> String {
        match r {
            Err(e) => e.to_string(),
            Ok(i) => {
                let mut buf = vec![0u8; i.disk.len() as usize];
                i.disk.read_at(0, &mut buf).expect_err("a read error").to_string()
            }
        }
    }

    #[test]
    fn sparse_grains_zero_and_unallocated() {
        let mut grains = vec![0x11u8; 512];
        grains.extend_from_slice(&[0x22; 512]);
        let b = sparse(4, &[3, 0, 1, 4], &grains);
        let img = open_sparse(MemSource::arc("s.vmdk", b), &mut OpenCtx::default()).unwrap();
        assert_eq!(img.info.format, Format::VmdkSparse);
        let mut buf = vec![0xEE; 2048];
        img.disk.read_at(0, &mut buf).unwrap();
        assert!(buf[..512].iter().all(|&x| x == 0x11));
        assert!(buf[512..1536].iter().all(|&x| x == 0));
        assert!(buf[1536..].iter().all(|&x| x == 0x22));
    }

    #[test]
    fn corruption_and_huge_sizes() {
        let open = |b: Vec<u8>| open_sparse(MemSource::arc("s.vmdk", b), &mut OpenCtx::default());
        // A grain past the end of the file.
        let e = err_of(open(sparse(4, &[99, 0, 0, 0], &[])));
        assert!(e.starts_with("image/vmdk at offset 0x400: ") && e.contains("outside the data"), "{e}");
        // A grain table loop: the GD entry pointing at the GD itself reads its
        // entries as grain offsets, which are checked like any other.
        let mut b = sparse(4, &[], &[]);
        b[512..516].copy_from_slice(&1u32.to_le_bytes());
        b[516..520].copy_from_slice(&0xFFFF_FFF0u32.to_le_bytes());
        let img = open(b).unwrap();
        let mut one = [0u8; 512];
        let e = img.disk.read_at(512, &mut one).unwrap_err().to_string();
        assert!(e.contains("outside the data"), "{e}");
        // A GT past the end.
        let mut b = sparse(4, &[], &[]);
        b[512..516].copy_from_slice(&1000u32.to_le_bytes());
        assert!(err_of(open(b)).contains("past the end"));
        // Huge capacity, huge grain, huge GT, GD outside the file.
        let mut b = sparse(4, &[], &[]);
        b[12..20].copy_from_slice(&u64::MAX.to_le_bytes());
        assert!(err_of(open(b)).contains("larger than 1 PiB"));
        let mut b = sparse(4, &[], &[]);
        b[12..20].copy_from_slice(&(1u64 << 40).to_le_bytes());
        assert!(err_of(open(b)).contains("grain directory of"));
        let mut b = sparse(4, &[], &[]);
        b[20..28].copy_from_slice(&(1u64 << 30).to_le_bytes());
        assert!(err_of(open(b)).contains("grain size"));
        let mut b = sparse(4, &[], &[]);
        b[44..48].copy_from_slice(&u32::MAX.to_le_bytes());
        assert!(err_of(open(b)).contains("grain table entries"));
        let mut b = sparse(4, &[], &[]);
        b[56..64].copy_from_slice(&(u64::MAX - 1).to_le_bytes());
        assert!(err_of(open(b)).contains("grain directory at sector"));
        // Stream-optimized without its footer.
        let mut b = sparse(4, &[], &[0; 2048]);
        b[56..64].copy_from_slice(&GD_AT_END.to_le_bytes());
        assert!(err_of(open(b)).contains("no footer"));
        // A damaged compressed grain.
        let mut b = sparse(4, &[3, 0, 0, 0], &[0; 512]);
        b[8..12].copy_from_slice(&(FLAG_COMPRESSED | 3).to_le_bytes());
        b[77..79].copy_from_slice(&1u16.to_le_bytes());
        b[3 * 512 + 8..3 * 512 + 12].copy_from_slice(&100u32.to_le_bytes());
        b[3 * 512 + 12..3 * 512 + 112].fill(0xFF);
        assert!(err_of(open(b)).contains("does not inflate"));
    }

    #[test]
    fn compressed_grains_inflate() {
        let mut z = flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::default());
        std::io::Write::write_all(&mut z, &[0x33; 512]).unwrap();
        let c = z.finish().unwrap();
        let mut g = Vec::new();
        g.extend_from_slice(&0u64.to_le_bytes());
        g.extend_from_slice(&(c.len() as u32).to_le_bytes());
        g.extend_from_slice(&c);
        g.resize(1024, 0);
        let mut b = sparse(4, &[3, 0, 0, 0], &g);
        b[8..12].copy_from_slice(&(FLAG_COMPRESSED | 3).to_le_bytes());
        b[77..79].copy_from_slice(&1u16.to_le_bytes());
        let img = open_sparse(MemSource::arc("s.vmdk", b), &mut OpenCtx::default()).unwrap();
        assert_eq!(img.info.format, Format::VmdkStream);
        let mut buf = vec![0u8; 2048];
        img.disk.read_at(0, &mut buf).unwrap();
        assert!(buf[..512].iter().all(|&x| x == 0x33) && buf[512..].iter().all(|&x| x == 0));
    }

    #[test]
    fn descriptor_with_flat_zero_and_sparse_extents_and_a_parent() {
        let dir = MemDir::new();
        dir.insert("vm/flat.bin", [vec![0u8; 512], vec![0x44u8; 1024]].concat());
        dir.insert("vm/s001.vmdk", sparse(4, &[3, 0, 0, 0], &[0x55; 512]));
        dir.insert("vm/base.vmdk", b"# Disk DescriptorFile\nCID=0000abcd\nparentCID=ffffffff\ncreateType=\"monolithicFlat\"\nRW 3 FLAT \"flat.bin\" 0\nRW 3 FLAT \"flat.bin\" 0\nRW 4 ZERO\n".to_vec());
        let child = "# Disk DescriptorFile\nversion=1\nCID=12345678\nparentCID=0000ABCD\ncreateType=\"twoGbMaxExtentSparse\"\nparentFileNameHint=\"base.vmdk\"\n\n# Extent description\nRW 2 FLAT \"flat.bin\" 1\nRW 2 ZERO\nRW 4 SPARSE \"s001.vmdk\"\nRW 2 ZERO\n";
        dir.insert("vm/child.vmdk", child.as_bytes().to_vec());
        let img = crate::image::open_source(Arc::new(dir.open("vm/child.vmdk").unwrap())).unwrap();
        assert_eq!(img.info.format, Format::VmdkSparse);
        assert_eq!(img.disk.len(), 10 * 512);
        assert_eq!(img.info.parent.as_ref().unwrap().format, Format::VmdkFlat);
        let mut buf = vec![0u8; 10 * 512];
        img.disk.read_at(0, &mut buf).unwrap();
        let s = |i: usize| buf[i * 512];
        // FLAT from sector 1 of flat.bin, ZERO, the sparse extent's grain, then
        // its unallocated grains from the parent (0, 44, 44, 0, 44, 44, 0...), ZERO.
        assert_eq!((s(0), s(1), s(2), s(3), s(4), s(5), s(6), s(7), s(8), s(9)), (0x44, 0x44, 0, 0, 0x55, 0x44, 0, 0, 0, 0));
        // The wrong parent.
        dir.insert("vm/child.vmdk", child.replace("0000ABCD", "0000abce").into_bytes());
        let e = crate::image::open_source(Arc::new(dir.open("vm/child.vmdk").unwrap())).unwrap_err().to_string();
        assert!(e.contains("has CID 0000abcd, but this VMDK was made from CID 0000abce"), "{e}");
        // A missing extent, a short flat extent, an unknown extent type.
        for (bad, want) in [
            ("RW 2 FLAT \"gone.bin\" 0\n", "extent file gone.bin cannot be opened"),
            ("RW 20 FLAT \"flat.bin\" 0\n", "shorter than"),
            ("RW 2 SESPARSE \"flat.bin\"\n", "unsupported: extent type SESPARSE"),
            ("RW x FLAT \"flat.bin\"\n", "is not a number"),
            ("RW 18446744073709551615 ZERO\n", "past 1 PiB"),
        ] {
            dir.insert("vm/bad.vmdk", format!("# Disk DescriptorFile\n{bad}").into_bytes());
            let e = crate::image::open_source(Arc::new(dir.open("vm/bad.vmdk").unwrap())).unwrap_err().to_string();
            assert!(e.starts_with("image/vmdk at offset 0x16: ") && e.contains(want), "{bad}: {e}");
        }
    }
}
