//! QCOW2 containers, versions 2 and 3, read only.
//!
//! All fields are big-endian. The header gives the cluster size (2^9 ..
//! 2^21 bytes), the virtual size and the L1 table; each L1 entry points at
//! an L2 table of one cluster, each L2 entry at a data cluster:
//!
//! * offset 0, no flags: unallocated: read from the backing file (a sibling
//!   named in the header, raw or QCOW2, opened like a differencing parent),
//!   or zeros without one; past the backing file's end, zeros;
//! * bit 0 (version 3): the cluster reads as zeros;
//! * bit 62: a compressed cluster (raw deflate, the `zlib` compression type;
//!   `zstd` is refused when the header names it) at a byte offset with a
//!   size in 512-byte sectors;
//! * otherwise the host offset of the cluster (bits 9..55).
//!
//! Refcounts and snapshots are not needed to read the active image and are
//! ignored. Refused, each with one line: encryption, an external data file,
//! extended L2 entries (subclusters), unknown incompatible features.
//!
//! Bounded: the L1 table covering the virtual size is read at open (at most
//! 32 MiB, qemu's own limit, and only when it lies in the file); L2 tables are
//! read when first needed and kept in a small cache; one decompressed cluster
//! is cached. Nothing else read from the file sizes an allocation.

use crate::error::{Error, Layer, Result};
use crate::image::{Candidate, ContainerInfo, Disk, Format, Image, OpenCtx, Source};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};

const L: Layer = Layer::Qcow2;
const MAGIC: &[u8; 4] = b"QFI\xfb";
/// Bits 9..55 of an L1 or standard L2 entry: a host offset.
const OFFSET_MASK: u64 = 0x00FF_FFFF_FFFF_FE00;
const COMPRESSED: u64 = 1 << 62;
const ZERO: u64 = 1;
/// Largest L1 table read (bytes), as qemu's QCOW_MAX_L1_SIZE.
const MAX_L1_BYTES: u64 = 32 << 20;
/// Largest virtual size accepted (qemu's own limit is 2^61; 1 PiB is more
/// than any VM disk).
const MAX_SIZE: u64 = 1 << 50;
/// Longest backing file name (qemu's limit).
const MAX_BACKING_NAME: u32 = 1023;
/// Header extension: backing file format name.
const EXT_BACKING_FORMAT: u32 = 0xE279_2ACA;
/// Bytes of L2 tables kept in memory.
const CACHE_BYTES: usize = 16 << 20;

/// Incompatible feature bits.
const INCOMPAT_DIRTY: u64 = 1 << 0;
const INCOMPAT_CORRUPT: u64 = 1 << 1;
const INCOMPAT_DATA_FILE: u64 = 1 << 2;
const INCOMPAT_COMPRESSION: u64 = 1 << 3;
const INCOMPAT_EXTL2: u64 = 1 << 4;

fn be32(b: &[u8], o: usize) -> u32 {
    u32::from_be_bytes([b[o], b[o + 1], b[o + 2], b[o + 3]])
}
fn be64(b: &[u8], o: usize) -> u64 {
    u64::from_be_bytes(b[o..o + 8].try_into().unwrap_or([0; 8]))
}

/// A small cache of decoded tables, keyed by file offset, bounded in bytes
/// (cleared when full: the access pattern of a survey and a hive read is a
/// few tables at a time).
pub(crate) struct TableCache<T> {
    map: Mutex<HashMap<u64, Arc<Vec<T>>>>,
    max_entries: usize,
}

impl<T> TableCache<T> {
    pub(crate) fn new(table_bytes: usize) -> Self {
        TableCache { map: Mutex::new(HashMap::new()), max_entries: (CACHE_BYTES / table_bytes.max(1)).max(4) }
    }
    pub(crate) fn get_or(&self, key: u64, load: impl FnOnce() -> Result<Vec<T>>) -> Result<Arc<Vec<T>>> {
        if let Some(t) = self.map.lock().unwrap_or_else(|e| e.into_inner()).get(&key) {
            return Ok(t.clone());
        }
        let t = Arc::new(load()?);
        let mut m = self.map.lock().unwrap_or_else(|e| e.into_inner());
        if m.len() >= self.max_entries {
            m.clear();
        }
        m.insert(key, t.clone());
        Ok(t)
    }
}

/// A QCOW2 image opened read-only.
pub struct Qcow2Disk {
    src: Arc<dyn Source>,
    size: u64,
    cluster_bits: u32,
    version: u32,
    /// L1 entries covering the virtual size.
    l1: Vec<u64>,
    l1_offset: u64,
    l2: TableCache<u64>,
    /// The last decompressed cluster (host entry, bytes).
    last: Mutex<Option<(u64, Arc<Vec<u8>>)>>,
    backing: Option<Arc<dyn Disk>>,
}

impl Qcow2Disk {
    fn cluster(&self) -> u64 {
        1 << self.cluster_bits
    }

    fn l2_table(&self, l1i: usize) -> Result<Option<Arc<Vec<u64>>>> {
        let e = self.l1.get(l1i).copied().unwrap_or(0);
        let off = e & OFFSET_MASK;
        let at = self.l1_offset + 8 * l1i as u64;
        if off == 0 {
            return Ok(None);
        }
        let cs = self.cluster();
        if off % cs != 0 {
            return Err(Error::corrupt(L, at, format!("L1 entry {l1i} points at {off:#x}, not a cluster boundary")));
        }
        if off.checked_add(cs).is_none_or(|e| e > self.src.len()) {
            return Err(Error::corrupt(
                L,
                at,
                format!("L1 entry {l1i} points at an L2 table at {off:#x}, past the end of the file ({} bytes)", self.src.len()),
            ));
        }
        self.l2
            .get_or(off, || {
                let raw = self.src.read_vec(L, off, cs)?;
                Ok(raw.chunks_exact(8).map(|c| be64(c, 0)).collect())
            })
            .map(Some)
    }

    /// Read `out.len()` bytes at `in_cl` inside virtual cluster `ci`.
    fn read_cluster(&self, ci: u64, in_cl: u64, out: &mut [u8]) -> Result<()> {
        let cs = self.cluster();
        let per_l2 = cs / 8;
        let l1i = (ci / per_l2) as usize;
        let l2i = (ci % per_l2) as usize;
        let vofs = ci * cs + in_cl;
        let entry = match self.l2_table(l1i)? {
            Some(t) => t[l2i],
            None => 0,
        };
        let l2_at = (self.l1.get(l1i).copied().unwrap_or(0) & OFFSET_MASK) + 8 * l2i as u64;
        if entry & COMPRESSED != 0 {
            let data = self.decompress(entry, l2_at, vofs)?;
            out.copy_from_slice(&data[in_cl as usize..in_cl as usize + out.len()]);
            return Ok(());
        }
        if self.version >= 3 && entry & ZERO != 0 {
            out.fill(0);
            return Ok(());
        }
        let host = entry & OFFSET_MASK;
        if host == 0 {
            return match &self.backing {
                // Bytes past the backing file's end read as zeros (as qemu).
                Some(b) => crate::image::read_zero_extended(b.as_ref(), vofs, out),
                None => {
                    out.fill(0);
                    Ok(())
                }
            };
        }
        if host % cs != 0 {
            return Err(Error::corrupt(L, l2_at, format!("L2 entry for virtual offset {vofs:#x} points at {host:#x}, not a cluster boundary")));
        }
        let len = self.src.len();
        let start = host + in_cl;
        if start >= len {
            return Err(Error::corrupt(
                L,
                l2_at,
                format!("L2 entry for virtual offset {vofs:#x} points at {host:#x}, past the end of the file ({len} bytes)"),
            ));
        }
        // The last cluster of a file may be cut short: qemu reads the rest as zeros.
        let n = (out.len() as u64).min(len - start) as usize;
        self.src.read(L, start, &mut out[..n])?;
        out[n..].fill(0);
        Ok(())
    }

    fn decompress(&self, entry: u64, l2_at: u64, vofs: u64) -> Result<Arc<Vec<u8>>> {
        if let Some((e, d)) = &*self.last.lock().unwrap_or_else(|e| e.into_inner()) {
            if *e == entry {
                return Ok(d.clone());
            }
        }
        let cs = self.cluster();
        let x = 62 - (self.cluster_bits - 8);
        let coffset = entry & ((1u64 << x) - 1);
        let nsectors = ((entry >> x) & ((1u64 << (self.cluster_bits - 8)) - 1)) + 1;
        let csize = nsectors * 512 - (coffset & 511);
        let len = self.src.len();
        if coffset >= len || coffset < cs {
            return Err(Error::corrupt(
                L,
                l2_at,
                format!("compressed cluster for virtual offset {vofs:#x} at {coffset:#x} lies outside the data area of the file ({len} bytes)"),
            ));
        }
        let input = self.src.read_vec(L, coffset, csize.min(len - coffset))?;
        let mut data = vec![0u8; cs as usize];
        let mut z = flate2::Decompress::new(false);
        let r = z.decompress(&input, &mut data, flate2::FlushDecompress::Finish);
        if r.is_err() || z.total_out() != cs {
            return Err(Error::corrupt(
                L,
                coffset,
                format!(
                    "compressed cluster for virtual offset {vofs:#x} does not inflate to {cs} bytes ({}): damaged deflate data",
                    match r {
                        Err(e) => e.to_string(),
                        Ok(_) => format!("{} bytes", z.total_out()),
                    }
                ),
            ));
        }
        let d = Arc::new(data);
        *self.last.lock().unwrap_or_else(|e| e.into_inner()) = Some((entry, d.clone()));
        Ok(d)
    }
}

impl Disk for Qcow2Disk {
    fn read_at(&self, offset: u64, buf: &mut [u8]) -> Result<()> {
        crate::image::check_virtual_read(L, offset, buf.len(), self.size)?;
        let cs = self.cluster();
        crate::image::by_blocks(offset, buf, cs, |v, piece| self.read_cluster(v / cs, v % cs, piece))
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

/// The header fields the reader uses.
struct Header {
    version: u32,
    backing_offset: u64,
    backing_size: u32,
    cluster_bits: u32,
    size: u64,
    l1_size: u32,
    l1_offset: u64,
    /// Where header extensions start.
    ext_start: u64,
}

fn parse_header(src: &dyn Source) -> Result<Header> {
    let len = src.len();
    if len < 72 {
        return Err(Error::corrupt(L, 0, format!("file is {len} bytes, too small for a QCOW2 header (72 bytes): truncated?")));
    }
    let mut h = [0u8; 112];
    let n = (len as usize).min(h.len());
    src.read(L, 0, &mut h[..n])?;
    if &h[..4] != MAGIC {
        return Err(Error::corrupt(L, 0, "no QCOW2 header here (magic QFI\\xfb missing)"));
    }
    let version = be32(&h, 4);
    if !(2..=3).contains(&version) {
        return Err(Error::unsupported(L, 4, format!("QCOW version {version} (only 2 and 3 are read)")));
    }
    let cluster_bits = be32(&h, 20);
    if !(9..=21).contains(&cluster_bits) {
        return Err(Error::corrupt(L, 20, format!("cluster bits {cluster_bits}: the cluster size must be 512 B .. 2 MiB")));
    }
    let size = be64(&h, 24);
    if size > MAX_SIZE {
        return Err(Error::corrupt(L, 24, format!("virtual size {size} is larger than 1 PiB")));
    }
    let crypt = be32(&h, 32);
    if crypt != 0 {
        return Err(Error::unsupported(
            L,
            32,
            format!("the image is encrypted (method {crypt}: {}): decrypt it with qemu-img convert first", if crypt == 1 { "AES" } else if crypt == 2 { "LUKS" } else { "unknown" }),
        ));
    }
    let mut ext_start = 72;
    if version == 3 {
        if len < 104 {
            return Err(Error::corrupt(L, 0, format!("file is {len} bytes, too small for a QCOW2 version 3 header (104 bytes): truncated?")));
        }
        let incompat = be64(&h, 72);
        let header_len = be32(&h, 100);
        if header_len < 104 || u64::from(header_len) > (1u64 << cluster_bits) || u64::from(header_len) > len {
            return Err(Error::corrupt(L, 100, format!("header length {header_len} is not between 104 and the cluster size")));
        }
        ext_start = u64::from(header_len);
        if incompat & INCOMPAT_DATA_FILE != 0 {
            return Err(Error::unsupported(
                L,
                72,
                "the image keeps its data in an external data file, which this tool does not read: convert it with qemu-img convert first",
            ));
        }
        if incompat & INCOMPAT_EXTL2 != 0 {
            return Err(Error::unsupported(
                L,
                72,
                "the image uses extended L2 entries (subclusters), which this tool does not read: convert it with qemu-img convert first",
            ));
        }
        if incompat & INCOMPAT_COMPRESSION != 0 {
            let ctype = if header_len > 104 { h[104] } else { 0 };
            if ctype != 0 {
                return Err(Error::unsupported(
                    L,
                    104,
                    format!(
                        "compression type {} ({}): only zlib-compressed clusters are read: convert it with qemu-img convert first",
                        ctype,
                        if ctype == 1 { "zstd" } else { "unknown" }
                    ),
                ));
            }
        }
        let unknown = incompat & !(INCOMPAT_DIRTY | INCOMPAT_CORRUPT | INCOMPAT_COMPRESSION);
        if unknown != 0 {
            return Err(Error::unsupported(L, 72, format!("unknown incompatible feature bits {unknown:#x}")));
        }
    }
    Ok(Header {
        version,
        backing_offset: be64(&h, 8),
        backing_size: be32(&h, 16),
        cluster_bits,
        size,
        l1_size: be32(&h, 36),
        l1_offset: be64(&h, 40),
        ext_start,
    })
}

/// The backing format named by the header extension, if any.
fn backing_format(src: &dyn Source, h: &Header) -> Result<Option<String>> {
    let end = (1u64 << h.cluster_bits).min(src.len());
    let mut at = h.ext_start;
    // Each extension takes at least 8 bytes: bounded by the cluster.
    while at + 8 <= end {
        let mut e = [0u8; 8];
        src.read(L, at, &mut e)?;
        let (ty, n) = (be32(&e, 0), u64::from(be32(&e, 4)));
        if ty == 0 {
            break;
        }
        if at + 8 + n > end {
            return Err(Error::corrupt(L, at, format!("header extension {ty:#x} of {n} bytes runs past the first cluster")));
        }
        if ty == EXT_BACKING_FORMAT {
            let v = src.read_vec(L, at + 8, n)?;
            return Ok(Some(String::from_utf8_lossy(&v).trim_end_matches('\0').to_string()));
        }
        at += 8 + n.div_ceil(8) * 8;
    }
    Ok(None)
}

/// Where to look for a backing file named `name` (absolute or relative to the
/// image's directory, as qemu resolves it).
fn backing_candidates(name: &str) -> Vec<Candidate> {
    let base = name.rsplit(['/', '\\']).next().unwrap_or(name).to_string();
    let absolute = name.starts_with('/') || name.starts_with('\\') || name.get(1..3).is_some_and(|s| s == ":\\" || s == ":/");
    let mut c = Vec::new();
    if absolute {
        c.push(Candidate::Absolute(name.into()));
    } else {
        c.push(Candidate::Sibling(name.replace('\\', "/")));
    }
    if !base.is_empty() && !c.contains(&Candidate::Sibling(base.clone())) {
        c.push(Candidate::Sibling(base));
    }
    c
}

/// Open a QCOW2 image whose magic has been detected in `src`.
pub fn open(src: Arc<dyn Source>, ctx: &mut OpenCtx) -> Result<Image> {
    let h = parse_header(src.as_ref())?;
    let len = src.len();
    let cs = 1u64 << h.cluster_bits;
    let per_l1 = cs * (cs / 8);
    let needed = h.size.div_ceil(per_l1);
    if u64::from(h.l1_size) < needed {
        return Err(Error::corrupt(
            L,
            36,
            format!("L1 table has {} entries, but a {}-byte disk needs {needed} with {cs}-byte clusters", h.l1_size, h.size),
        ));
    }
    let l1_bytes = needed * 8;
    if l1_bytes > MAX_L1_BYTES {
        return Err(Error::corrupt(L, 36, format!("L1 table of {l1_bytes} bytes is larger than 32 MiB")));
    }
    if h.l1_offset % cs != 0 || h.l1_offset.checked_add(l1_bytes).is_none_or(|e| e > len) {
        return Err(Error::corrupt(
            L,
            40,
            format!("L1 table at {:#x} ({l1_bytes} bytes) is not cluster-aligned or lies past the end of the file ({len} bytes)", h.l1_offset),
        ));
    }
    let l1: Vec<u64> = src.read_vec(L, h.l1_offset, l1_bytes)?.chunks_exact(8).map(|c| be64(c, 0)).collect();

    let mut info = ContainerInfo {
        path: src.path(),
        format: Format::Qcow2,
        file_size: len,
        virtual_size: h.size,
        logical_sector_size: 512,
        physical_sector_size: 512,
        block_size: Some(cs as u32),
        disk_id: None,
        creator: None,
        log_replayed: None,
        allocated_blocks: None,
        parent: None,
    };
    let backing = if h.backing_offset != 0 && h.backing_size != 0 {
        if h.backing_size > MAX_BACKING_NAME {
            return Err(Error::corrupt(L, 16, format!("backing file name of {} bytes (more than {MAX_BACKING_NAME})", h.backing_size)));
        }
        let raw = src.read_vec(L, h.backing_offset, u64::from(h.backing_size))?;
        let name = String::from_utf8_lossy(&raw).to_string();
        let fmt = backing_format(src.as_ref(), &h)?;
        if let Some(f) = fmt.as_deref() {
            if !matches!(f, "raw" | "qcow2" | "vmdk" | "vpc" | "vhdx") {
                return Err(Error::unsupported(L, h.backing_offset, format!("backing file {name} is in format {f}, which this tool does not read")));
            }
        }
        let p = ctx.open_parent(src.as_ref(), L, h.backing_offset, &name, &backing_candidates(&name))?;
        info.parent = Some(Box::new(p.info));
        Some(p.disk)
    } else {
        None
    };
    let disk = Qcow2Disk {
        src,
        size: h.size,
        cluster_bits: h.cluster_bits,
        version: h.version,
        l1,
        l1_offset: h.l1_offset,
        l2: TableCache::new(cs as usize),
        last: Mutex::new(None),
        backing,
    };
    Ok(Image { disk: Arc::new(disk), info })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::image::{MemDir, MemSource};

    const CS: usize = 512;

    /// A tiny version-3 image with 512-byte clusters: header (cluster 0), L1
    /// (cluster 1), one L2 table (cluster 2), data clusters after.
    fn image(size: u64, l2: &[u64], data: &[u8]) -> Vec<u8> {
        let mut b = vec![0u8; 3 * CS];
        b[..4].copy_from_slice(MAGIC);
        b[4..8].copy_from_slice(&3u32.to_be_bytes());
        b[20..24].copy_from_slice(&9u32.to_be_bytes());
        b[24..32].copy_from_slice(&size.to_be_bytes());
        b[36..40].copy_from_slice(&1u32.to_be_bytes());
        b[40..48].copy_from_slice(&(CS as u64).to_be_bytes());
        b[100..104].copy_from_slice(&104u32.to_be_bytes());
        b[CS..CS + 8].copy_from_slice(&(2 * CS as u64 | 1 << 63).to_be_bytes());
        for (i, e) in l2.iter().enumerate() {
            b[2 * CS + 8 * i..2 * CS + 8 * i + 8].copy_from_slice(&e.to_be_bytes());
        }
        b.extend_from_slice(data);
        b
    }

    fn open_bytes(b: Vec<u8>) -> Result<Image> {
        open(MemSource::arc("t.qcow2", b), &mut OpenCtx::default())
    }

    fn err(b: Vec<u8>) -> String {
        match open_bytes(b) {
            Err(e) => e.to_string(),
            Ok(i) => {
                let mut buf = vec![0u8; i.disk.len() as usize];
                i.disk.read_at(0, &mut buf).expect_err("a read error").to_string()
            }
        }
    }

    #[test]
    fn reads_data_zero_unallocated_and_compressed_clusters() {
        let mut data = vec![0xAB; CS];
        // A compressed cluster: raw deflate of 512 bytes of 0x5C, at offset 4*CS.
        let mut z = flate2::write::DeflateEncoder::new(Vec::new(), flate2::Compression::default());
        std::io::Write::write_all(&mut z, &[0x5C; CS]).unwrap();
        let c = z.finish().unwrap();
        data.extend_from_slice(&c);
        // cluster_bits 9: x = 61, the sector count field is 1 bit wide.
        let nsec = (c.len() as u64).div_ceil(512) - 1;
        let compressed = COMPRESSED | nsec << 61 | (4 * CS as u64);
        let l2 = [3 * CS as u64 | 1 << 63, 0, ZERO, compressed];
        let img = open_bytes(image(4 * CS as u64, &l2, &data)).unwrap();
        assert_eq!(img.info.format, Format::Qcow2);
        let mut buf = vec![0xEEu8; 4 * CS];
        img.disk.read_at(0, &mut buf).unwrap();
        assert!(buf[..CS].iter().all(|&b| b == 0xAB));
        assert!(buf[CS..3 * CS].iter().all(|&b| b == 0));
        assert!(buf[3 * CS..].iter().all(|&b| b == 0x5C));
        // A read across a cluster boundary.
        let mut two = [0u8; 4];
        img.disk.read_at(CS as u64 - 2, &mut two).unwrap();
        assert_eq!(two, [0xAB, 0xAB, 0, 0]);
        assert!(img.disk.read_at(4 * CS as u64 - 1, &mut two).is_err());
    }

    #[test]
    fn refusals_and_corruption() {
        let base = || image(4 * CS as u64, &[3 * CS as u64], &[1u8; CS]);
        // An L2 table past the end of the file.
        let mut b = base();
        b[CS..CS + 8].copy_from_slice(&(64 * CS as u64).to_be_bytes());
        let e = err(b);
        assert!(e.starts_with("image/qcow2 at offset 0x200: ") && e.contains("past the end of the file"), "{e}");
        // A data cluster past the end.
        let e = err(image(4 * CS as u64, &[99 * CS as u64], &[]));
        assert!(e.contains("image/qcow2") && e.contains("past the end of the file"), "{e}");
        // Huge sizes.
        let mut b = base();
        b[24..32].copy_from_slice(&u64::MAX.to_be_bytes());
        assert!(err(b).contains("larger than 1 PiB"));
        let mut b = base();
        b[24..32].copy_from_slice(&(1u64 << 45).to_be_bytes());
        b[36..40].copy_from_slice(&u32::MAX.to_be_bytes());
        let e = err(b);
        assert!(e.contains("larger than 32 MiB"), "{e}");
        let mut b = base();
        b[20..24].copy_from_slice(&40u32.to_be_bytes());
        assert!(err(b).contains("cluster size must be"));
        // Encryption, external data file, extended L2, zstd.
        let mut b = base();
        b[32..36].copy_from_slice(&2u32.to_be_bytes());
        let e = err(b);
        assert!(e.contains("unsupported: the image is encrypted (method 2: LUKS)"), "{e}");
        for (bit, want) in [(INCOMPAT_DATA_FILE, "external data file"), (INCOMPAT_EXTL2, "extended L2"), (1 << 9, "unknown incompatible")] {
            let mut b = base();
            b[72..80].copy_from_slice(&bit.to_be_bytes());
            let e = err(b);
            assert!(e.starts_with("image/qcow2 at offset 0x48: unsupported: ") && e.contains(want), "{e}");
        }
        let mut b = base();
        b[72..80].copy_from_slice(&INCOMPAT_COMPRESSION.to_be_bytes());
        b[100..104].copy_from_slice(&112u32.to_be_bytes());
        b[104] = 1;
        assert!(err(b).contains("compression type 1 (zstd)"));
        // Damaged compressed data.
        let e = err(image(CS as u64, &[COMPRESSED | 3 * CS as u64], &[0xFF; CS]));
        assert!(e.contains("does not inflate"), "{e}");
        // Truncated header.
        assert!(err(MAGIC.to_vec()).contains("too small"));
    }

    #[test]
    fn backing_file_is_a_sibling_and_reads_zeros_past_its_end() {
        let mut b = image(4 * CS as u64, &[], &[]);
        // Backing name in the header cluster at 200.
        let name = b"base.raw";
        b[200..200 + name.len()].copy_from_slice(name);
        b[8..16].copy_from_slice(&200u64.to_be_bytes());
        b[16..20].copy_from_slice(&(name.len() as u32).to_be_bytes());
        let dir = MemDir::new();
        dir.insert("d/base.raw", vec![0x42; 2 * CS]);
        dir.insert("d/child.qcow2", b);
        let img = crate::image::open_source(Arc::new(dir.open("d/child.qcow2").unwrap())).unwrap();
        let mut buf = vec![0u8; 4 * CS];
        img.disk.read_at(0, &mut buf).unwrap();
        assert!(buf[..2 * CS].iter().all(|&x| x == 0x42) && buf[2 * CS..].iter().all(|&x| x == 0));
        assert_eq!(img.info.parent.as_ref().unwrap().format, Format::Raw);
        // Missing: one line naming it.
        let dir = MemDir::new();
        let mut b = image(4 * CS as u64, &[], &[]);
        b[200..208].copy_from_slice(name);
        b[8..16].copy_from_slice(&200u64.to_be_bytes());
        b[16..20].copy_from_slice(&8u32.to_be_bytes());
        dir.insert("d/child.qcow2", b);
        let e = crate::image::open_source(Arc::new(dir.open("d/child.qcow2").unwrap())).unwrap_err().to_string();
        assert!(e.contains("image/qcow2") && e.contains("parent disk missing: expected base.raw"), "{e}");
    }
}
