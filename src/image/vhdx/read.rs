//! VHDX (MS-VHDX): fixed, dynamic and differencing disks, with a pending
//! metadata log replayed **in memory** (an overlay of 4 KiB file pages that every
//! read consults; the file is never written).
//!
//! Rules: ../shared/reference/formats.md §C (headers, region tables, metadata,
//! BAT interleaving, sector bitmaps, log entries and replay, parent locators).

use crate::image::{Candidate, ContainerInfo, Disk, Format, Image, LogReplay, OpenCtx, Source};
use crate::bytes::{guid, le_u16, le_u32, le_u64, utf16le};
use crate::error::{Error, Layer, Result};
use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};
use uuid::{uuid, Uuid};

const L: Layer = Layer::Vhdx;
const KIB: u64 = 1024;
const MIB: u64 = 1024 * 1024;
const PAGE: u64 = 4096;
/// CRC-32C of headers, region tables and log entries. Slice-by-16 tables
/// (16 KiB, built at compile time): every open checks two 4 KiB headers and
/// two 64 KiB region tables, and the byte-at-a-time table was 1% of
/// `inspect`'s profile on big127-dirty.
pub(crate) const CRC32C: crc::Crc<u32, crc::Table<16>> = crc::Crc::<u32, crc::Table<16>>::new(&crc::CRC_32_ISCSI);

pub(crate) const BAT_REGION: Uuid = uuid!("2DC27766-F623-4200-9D64-115E9BFD4A08");
pub(crate) const METADATA_REGION: Uuid = uuid!("8B7CA206-4790-4B9A-B8FE-575F050F886E");
pub(crate) const FILE_PARAMETERS: Uuid = uuid!("CAA16737-FA36-4D43-B3B6-33F0AA44E76B");
pub(crate) const VIRTUAL_DISK_SIZE: Uuid = uuid!("2FA54224-CD1B-4876-B211-5DBED83BF4B8");
pub(crate) const VIRTUAL_DISK_ID: Uuid = uuid!("BECA12AB-B2E6-4523-93EF-C309E000C746");
pub(crate) const LOGICAL_SECTOR_SIZE: Uuid = uuid!("8141BF1D-A96F-4709-BA47-F233A8FAAB5F");
pub(crate) const PHYSICAL_SECTOR_SIZE: Uuid = uuid!("CDA348C7-445D-4471-9CC9-E9885251C556");
pub(crate) const PARENT_LOCATOR: Uuid = uuid!("A8D35F2D-B30B-454D-ABF7-D3D84834AB0C");
pub(crate) const VHDX_PARENT_LOCATOR_TYPE: Uuid = uuid!("B04AEFB7-D19E-4A81-B789-25B8E9445913");

/// Largest virtual disk the spec allows (64 TiB).
const MAX_VIRTUAL_SIZE: u64 = 64 << 40;
/// Bounds on what we are willing to load into memory from untrusted headers.
const MAX_LOG: u64 = 256 * MIB;
pub(crate) const MAX_BAT: u64 = 256 * MIB;
const MAX_OVERLAY_PAGES: usize = 65536;
const BITMAP_CACHE: usize = 64;

// Payload block states.
pub(crate) const NOT_PRESENT: u64 = 0;
const UNDEFINED: u64 = 1;
pub(crate) const ZERO: u64 = 2;
const UNMAPPED: u64 = 3;
const UNMAPPED_V095: u64 = 5;
pub(crate) const FULLY_PRESENT: u64 = 6;
pub(crate) const PARTIALLY_PRESENT: u64 = 7;

/// The container file as seen after log replay: file bytes with overlay pages
/// on top, and possibly extended (LastFileOffset) beyond the real end of file.
pub(crate) struct View {
    pub(crate) src: Arc<dyn Source>,
    pub(crate) pages: BTreeMap<u64, Box<[u8]>>,
    pub(crate) len: u64,
}

impl View {
    pub(crate) fn read(&self, offset: u64, buf: &mut [u8]) -> Result<()> {
        let end = offset.checked_add(buf.len() as u64);
        if end.is_none_or(|e| e > self.len) {
            return Err(Error::corrupt(
                L,
                offset,
                format!("read of {} bytes past the end of the {}-byte file: truncated?", buf.len(), self.len),
            ));
        }
        let flen = self.src.len();
        if offset < flen {
            let n = (flen - offset).min(buf.len() as u64) as usize;
            self.src.read(L, offset, &mut buf[..n])?;
            buf[n..].fill(0);
        } else {
            buf.fill(0);
        }
        if !self.pages.is_empty() {
            let end = offset + buf.len() as u64;
            for (&p, page) in self.pages.range(offset / PAGE * PAGE..end) {
                let from = p.max(offset);
                let to = (p + PAGE).min(end);
                buf[(from - offset) as usize..(to - offset) as usize]
                    .copy_from_slice(&page[(from - p) as usize..(to - p) as usize]);
            }
        }
        Ok(())
    }

    pub(crate) fn read_vec(&self, offset: u64, len: u64) -> Result<Vec<u8>> {
        let mut v = vec![0u8; len as usize];
        self.read(offset, &mut v)?;
        Ok(v)
    }
}

/// A parsed VHDX header.
#[derive(Clone)]
pub(crate) struct Header {
    pub(crate) offset: u64,
    pub(crate) seq: u64,
    pub(crate) data_write_guid: Uuid,
    pub(crate) log_guid: Uuid,
    pub(crate) log_length: u32,
    pub(crate) log_offset: u64,
}

fn crc_ok(buf: &[u8], field: usize) -> bool {
    let stored = le_u32(buf, field);
    let mut d = CRC32C.digest();
    d.update(&buf[..field]);
    d.update(&[0; 4]);
    d.update(&buf[field + 4..]);
    d.finalize() == stored
}

fn parse_header(src: &dyn Source, offset: u64) -> Result<Header> {
    let mut b = vec![0u8; PAGE as usize];
    src.read(L, offset, &mut b)?;
    if &b[0..4] != b"head" {
        return Err(Error::corrupt(L, offset, "no 'head' signature"));
    }
    if !crc_ok(&b, 4) {
        return Err(Error::corrupt(L, offset + 4, "header CRC-32C mismatch"));
    }
    let h = Header {
        offset,
        seq: le_u64(&b, 8),
        data_write_guid: guid(&b, 32),
        log_guid: guid(&b, 48),
        log_length: le_u32(&b, 68),
        log_offset: le_u64(&b, 72),
    };
    if le_u16(&b, 66) != 1 {
        return Err(Error::unsupported(L, offset + 66, format!("VHDX version {}", le_u16(&b, 66))));
    }
    Ok(h)
}

/// The current header: the valid one, or the valid one with the higher sequence number.
pub(crate) fn current_header(src: &dyn Source) -> Result<Header> {
    let h1 = parse_header(src, 64 * KIB);
    let h2 = parse_header(src, 128 * KIB);
    match (h1, h2) {
        (Ok(a), Ok(b)) => Ok(if b.seq > a.seq { b } else { a }),
        (Ok(a), Err(_)) => Ok(a),
        (Err(_), Ok(b)) => Ok(b),
        (Err(e), Err(_)) => Err(Error::corrupt(L, 64 * KIB, format!("both headers are invalid ({e})"))),
    }
}

/// The VHDX reader's disk behind `d`, if it is one.
pub(crate) fn as_vhdx(d: &dyn Disk) -> Option<&VhdxDisk> {
    d.as_any().and_then(|a| a.downcast_ref::<VhdxDisk>())
}

pub(crate) struct Region {
    pub(crate) offset: u64,
    pub(crate) length: u64,
}

pub(crate) fn region_table(src: &dyn Source) -> Result<(Region, Region)> {
    let mut first_err = None;
    for off in [192 * KIB, 256 * KIB] {
        match parse_region_table(src, off) {
            Ok(r) => return Ok(r),
            Err(e) => {
                first_err.get_or_insert(e);
            }
        }
    }
    Err(first_err.unwrap_or_else(|| Error::corrupt(L, 192 * KIB, "no region table")))
}

fn parse_region_table(src: &dyn Source, off: u64) -> Result<(Region, Region)> {
    let mut b = vec![0u8; 64 * KIB as usize];
    src.read(L, off, &mut b)?;
    if &b[0..4] != b"regi" {
        return Err(Error::corrupt(L, off, "no 'regi' region table signature"));
    }
    if !crc_ok(&b, 4) {
        return Err(Error::corrupt(L, off + 4, "region table CRC-32C mismatch"));
    }
    let count = le_u32(&b, 8);
    if count > 2047 {
        return Err(Error::corrupt(L, off + 8, format!("{count} region table entries (at most 2047)")));
    }
    let (mut bat, mut meta) = (None, None);
    for i in 0..count as usize {
        let e = 16 + 32 * i;
        let id = guid(&b, e);
        let r = Region { offset: le_u64(&b, e + 16), length: le_u32(&b, e + 24) as u64 };
        let eoff = off + e as u64;
        if r.offset < MIB || r.offset % MIB != 0 || r.length % MIB != 0 || r.length == 0 {
            return Err(Error::corrupt(L, eoff, format!("region {id} at {:#x} length {:#x} is misaligned", r.offset, r.length)));
        }
        if r.offset.checked_add(r.length).is_none_or(|e| e > src.len()) {
            return Err(Error::corrupt(L, eoff, format!("region {id} ({:#x}+{:#x}) lies past the end of the file", r.offset, r.length)));
        }
        match id {
            BAT_REGION => bat = Some(r),
            METADATA_REGION => meta = Some(r),
            _ if le_u32(&b, e + 28) & 1 != 0 => {
                return Err(Error::unsupported(L, eoff, format!("unknown required region {id}")));
            }
            _ => {}
        }
    }
    match (bat, meta) {
        (Some(b), Some(m)) => Ok((b, m)),
        _ => Err(Error::corrupt(L, off, "region table lacks the BAT or metadata region")),
    }
}

// ------------------------------------------------------------------ log replay

/// A validated log entry.
struct LogEntry {
    offset: u64,
    length: u64,
    tail: u64,
    seq: u64,
    flushed_file_offset: u64,
    last_file_offset: u64,
    /// (file offset, 4 KiB page) writes and (file offset, length) zero fills, in order.
    ops: Vec<LogOp>,
}

enum LogOp {
    Data(u64, Box<[u8]>),
    Zero(u64, u64),
}

/// Circular read of `len` bytes at log offset `at`.
fn circ(log: &[u8], at: u64, len: u64) -> Vec<u8> {
    let n = log.len() as u64;
    (0..len).map(|i| log[((at + i) % n) as usize]).collect()
}

fn parse_entry(log: &[u8], at: u64, log_guid: Uuid, log_file_offset: u64) -> Option<LogEntry> {
    let n = log.len() as u64;
    let hdr = circ(log, at, 64);
    if &hdr[0..4] != b"loge" {
        return None;
    }
    let length = le_u32(&hdr, 8) as u64;
    let tail = le_u32(&hdr, 12) as u64;
    let seq = le_u64(&hdr, 16);
    let count = le_u32(&hdr, 24) as u64;
    if length < PAGE || length % PAGE != 0 || length > n || tail % PAGE != 0 || tail >= n || seq == 0 || guid(&hdr, 32) != log_guid {
        return None;
    }
    let entry = circ(log, at, length);
    if !crc_ok(&entry, 4) {
        return None;
    }
    let desc_pages = (64 + 32 * count).div_ceil(PAGE);
    if desc_pages > length / PAGE {
        return None;
    }
    let mut ops = Vec::new();
    let mut data_page = desc_pages;
    for i in 0..count {
        let d = (64 + 32 * i) as usize;
        let dseq = le_u64(&entry, d + 24);
        if dseq != seq {
            return None;
        }
        let file_offset = le_u64(&entry, d + 16);
        match &entry[d..d + 4] {
            b"desc" => {
                if file_offset % PAGE != 0 || data_page >= length / PAGE {
                    return None;
                }
                let s = &entry[(data_page * PAGE) as usize..((data_page + 1) * PAGE) as usize];
                if &s[0..4] != b"data" || ((le_u32(s, 4) as u64) << 32 | le_u32(s, 4092) as u64) != seq {
                    return None;
                }
                let mut page = vec![0u8; PAGE as usize].into_boxed_slice();
                page[0..8].copy_from_slice(&entry[d + 8..d + 16]); // leading bytes
                page[8..4092].copy_from_slice(&s[8..4092]);
                page[4092..4096].copy_from_slice(&entry[d + 4..d + 8]); // trailing bytes
                ops.push(LogOp::Data(file_offset, page));
                data_page += 1;
            }
            b"zero" => {
                let len = le_u64(&entry, d + 8);
                if file_offset % PAGE != 0 || len % PAGE != 0 {
                    return None;
                }
                ops.push(LogOp::Zero(file_offset, len));
            }
            _ => return None,
        }
    }
    let _ = log_file_offset;
    Some(LogEntry {
        offset: at,
        length,
        tail,
        seq,
        flushed_file_offset: le_u64(&hdr, 48),
        last_file_offset: le_u64(&hdr, 56),
        ops,
    })
}

/// Find the active sequence of the log and replay it into `view`'s overlay.
pub(crate) fn replay_log(view: &mut View, h: &Header) -> Result<Option<LogReplay>> {
    if h.log_guid.is_nil() || h.log_length == 0 {
        return Ok(None);
    }
    let (off, len) = (h.log_offset, h.log_length as u64);
    if off < MIB || len % MIB != 0 || len > MAX_LOG || off.checked_add(len).is_none_or(|e| e > view.src.len()) {
        return Err(Error::corrupt(L, h.offset + 68, format!("log at {off:#x} length {len:#x} is invalid or past the end of the file")));
    }
    let log = view.src.read_vec(L, off, len)?;
    let mut entries: HashMap<u64, LogEntry> = HashMap::new();
    for at in (0..len).step_by(PAGE as usize) {
        if let Some(e) = parse_entry(&log, at, h.log_guid, off) {
            entries.insert(at, e);
        }
    }
    // Chains of consecutive entries (each followed by the next sequence number).
    let next_of = |e: &LogEntry| -> Option<u64> {
        let nx = (e.offset + e.length) % len;
        entries.get(&nx).filter(|n| n.seq == e.seq.wrapping_add(1)).map(|n| n.offset)
    };
    let has_pred: std::collections::HashSet<u64> = entries.values().filter_map(next_of).collect();
    let mut best: Option<Vec<u64>> = None;
    let mut best_seq = 0;
    for start in entries.keys().filter(|k| !has_pred.contains(k)) {
        let mut chain = vec![*start];
        let mut cur = *start;
        while let Some(n) = next_of(&entries[&cur]) {
            if chain.len() > entries.len() {
                break;
            }
            chain.push(n);
            cur = n;
        }
        let head = &entries[chain.last().unwrap_or(start)];
        // The head's Tail must point into the sequence; replay from there.
        if let Some(pos) = chain.iter().position(|o| *o == head.tail) {
            if best.is_none() || head.seq > best_seq {
                best_seq = head.seq;
                best = Some(chain[pos..].to_vec());
            }
        }
    }
    let Some(seq) = best else {
        return Ok(None);
    };
    let head = &entries[seq.last().unwrap_or(&0)];
    if head.flushed_file_offset > view.src.len() {
        return Err(Error::corrupt(
            L,
            off + head.offset + 48,
            format!("log says the file was flushed to {:#x} but it is {:#x} bytes long: truncated", head.flushed_file_offset, view.src.len()),
        ));
    }
    let mut pages = 0u32;
    for o in &seq {
        for op in &entries[o].ops {
            let (start, page_count) = match op {
                LogOp::Data(f, _) => (*f, 1),
                LogOp::Zero(f, l) => (*f, l / PAGE),
            };
            for k in 0..page_count {
                if view.pages.len() >= MAX_OVERLAY_PAGES {
                    return Err(Error::unsupported(L, off + o, "log replay touches more than 256 MiB"));
                }
                let data = match op {
                    LogOp::Data(_, p) => p.clone(),
                    LogOp::Zero(..) => vec![0u8; PAGE as usize].into_boxed_slice(),
                };
                view.pages.insert(start + k * PAGE, data);
                pages += 1;
            }
        }
    }
    let max_page_end = view.pages.keys().next_back().map_or(0, |p| p + PAGE);
    view.len = view.len.max(head.last_file_offset).max(max_page_end);
    Ok(Some(LogReplay {
        entries: seq.len() as u32,
        first_sequence: entries[&seq[0]].seq,
        last_sequence: head.seq,
        pages,
    }))
}

// ------------------------------------------------------------------ metadata

pub(crate) struct Metadata {
    pub(crate) block_size: u32,
    pub(crate) fixed: bool,
    pub(crate) has_parent: bool,
    pub(crate) virtual_size: u64,
    pub(crate) disk_id: Option<Uuid>,
    pub(crate) logical_sector: u32,
    pub(crate) physical_sector: u32,
    pub(crate) parent_locator: Option<(u64, Vec<u8>)>,
}

pub(crate) fn read_metadata(view: &View, r: &Region) -> Result<Metadata> {
    let t = view.read_vec(r.offset, 64 * KIB)?;
    if &t[0..8] != b"metadata" {
        return Err(Error::corrupt(L, r.offset, "no 'metadata' table signature"));
    }
    let count = le_u16(&t, 10) as usize;
    if count > 2047 {
        return Err(Error::corrupt(L, r.offset + 10, format!("{count} metadata entries (at most 2047)")));
    }
    let mut items: HashMap<Uuid, (u64, Vec<u8>)> = HashMap::new();
    for i in 0..count {
        let e = 32 + 32 * i;
        let id = guid(&t, e);
        let (ioff, ilen, flags) = (le_u32(&t, e + 16) as u64, le_u32(&t, e + 20) as u64, le_u32(&t, e + 24));
        let eoff = r.offset + e as u64;
        if ilen == 0 {
            continue;
        }
        if ioff < 64 * KIB || ilen > MIB || ioff + ilen > r.length {
            return Err(Error::corrupt(L, eoff, format!("metadata item {id} ({ioff:#x}+{ilen:#x}) lies outside the metadata region")));
        }
        let known = [FILE_PARAMETERS, VIRTUAL_DISK_SIZE, VIRTUAL_DISK_ID, LOGICAL_SECTOR_SIZE, PHYSICAL_SECTOR_SIZE, PARENT_LOCATOR];
        if !known.contains(&id) {
            if flags & 4 != 0 {
                return Err(Error::unsupported(L, eoff, format!("unknown required metadata item {id}")));
            }
            continue;
        }
        items.insert(id, (r.offset + ioff, view.read_vec(r.offset + ioff, ilen)?));
    }
    let need = |id: Uuid, what: &str, min: usize| -> Result<&(u64, Vec<u8>)> {
        match items.get(&id) {
            Some(x) if x.1.len() >= min => Ok(x),
            _ => Err(Error::corrupt(L, r.offset, format!("metadata lacks the {what} item"))),
        }
    };
    let (fp_off, fp) = need(FILE_PARAMETERS, "file parameters", 8)?;
    let block_size = le_u32(fp, 0);
    if !block_size.is_power_of_two() || !(MIB as u32..=256 * MIB as u32).contains(&block_size) {
        return Err(Error::corrupt(L, *fp_off, format!("block size {block_size} is not a power of two in 1..256 MiB")));
    }
    let flags = le_u32(fp, 4);
    let (vs_off, vs) = need(VIRTUAL_DISK_SIZE, "virtual disk size", 8)?;
    let virtual_size = le_u64(vs, 0);
    let (ls_off, ls) = need(LOGICAL_SECTOR_SIZE, "logical sector size", 4)?;
    let logical_sector = le_u32(ls, 0);
    if logical_sector != 512 && logical_sector != 4096 {
        return Err(Error::corrupt(L, *ls_off, format!("logical sector size {logical_sector} (must be 512 or 4096)")));
    }
    if virtual_size == 0 || virtual_size > MAX_VIRTUAL_SIZE || virtual_size % logical_sector as u64 != 0 {
        return Err(Error::corrupt(L, *vs_off, format!("virtual disk size {virtual_size} is invalid")));
    }
    let physical_sector = items.get(&PHYSICAL_SECTOR_SIZE).map_or(logical_sector, |(_, b)| le_u32(b, 0));
    Ok(Metadata {
        block_size,
        fixed: flags & 1 != 0,
        has_parent: flags & 2 != 0,
        virtual_size,
        disk_id: items.get(&VIRTUAL_DISK_ID).filter(|(_, b)| b.len() >= 16).map(|(_, b)| guid(b, 0)),
        logical_sector,
        physical_sector,
        parent_locator: items.remove(&PARENT_LOCATOR),
    })
}

/// Key/value pairs of a parent locator item.
fn parse_locator(off: u64, b: &[u8]) -> Result<HashMap<String, String>> {
    if b.len() < 20 || guid(b, 0) != VHDX_PARENT_LOCATOR_TYPE {
        return Err(Error::unsupported(L, off, "parent locator of an unknown type"));
    }
    let count = le_u16(b, 18) as usize;
    let mut kv = HashMap::new();
    for i in 0..count {
        let e = 20 + 12 * i;
        if e + 12 > b.len() {
            return Err(Error::corrupt(L, off + e as u64, "parent locator entries run past the item"));
        }
        let (ko, vo) = (le_u32(b, e) as usize, le_u32(b, e + 4) as usize);
        let (kl, vl) = (le_u16(b, e + 8) as usize, le_u16(b, e + 10) as usize);
        let (Some(k), Some(v)) = (b.get(ko..ko + kl), b.get(vo..vo + vl)) else {
            return Err(Error::corrupt(L, off + e as u64, "parent locator key or value lies outside the item"));
        };
        kv.insert(utf16le(k), utf16le(v));
    }
    Ok(kv)
}

/// Where to look for the parent, in order: the relative path as a sibling of
/// the child; the absolute path where it is one here (no drive letter); then
/// the file names of the relative, volume and absolute paths, as siblings.
fn parent_candidates(kv: &HashMap<String, String>) -> Vec<Candidate> {
    let win_to_local = |p: &str| p.trim_start_matches(r"\\?\").replace('\\', "/");
    let file_name = |p: &str| p.rsplit(['\\', '/']).next().unwrap_or(p).to_string();
    let mut c = Vec::new();
    if let Some(r) = kv.get("relative_path") {
        c.push(Candidate::Sibling(win_to_local(r.trim_start_matches(r".\"))));
    }
    if let Some(a) = kv.get("absolute_win32_path") {
        let local = win_to_local(a);
        if !local.contains(':') {
            c.push(Candidate::Absolute(local.into()));
        }
    }
    for key in ["relative_path", "volume_path", "absolute_win32_path"] {
        if let Some(p) = kv.get(key) {
            c.push(Candidate::Sibling(file_name(p)));
        }
    }
    let mut seen = Vec::new();
    c.retain(|p| {
        let keep = !seen.contains(p);
        seen.push(p.clone());
        keep
    });
    c
}

// ------------------------------------------------------------------ the disk

pub struct VhdxDisk {
    pub(crate) view: View,
    /// The current header and the metadata, as read at open (for the writers).
    pub(crate) header: Header,
    pub(crate) meta: Metadata,
    pub(crate) bat: Vec<u64>,
    bat_offset: u64,
    block_size: u64,
    pub(crate) chunk_ratio: u64,
    sector: u64,
    virtual_size: u64,
    pub(crate) parent: Option<Arc<dyn Disk>>,
    bitmaps: Mutex<Vec<(u64, Arc<Vec<u8>>)>>,
}

impl VhdxDisk {
    fn bat_entry(&self, idx: u64) -> Result<u64> {
        self.bat
            .get(idx as usize)
            .copied()
            .ok_or_else(|| Error::corrupt(L, self.bat_offset + idx * 8, format!("BAT entry {idx} is missing")))
    }

    fn block_offset(&self, idx: u64, e: u64) -> Result<u64> {
        let off = (e >> 20) << 20;
        if off < MIB || off.checked_add(self.block_size).is_none_or(|end| end > self.view.len) {
            return Err(Error::corrupt(
                L,
                self.bat_offset + idx * 8,
                format!("BAT entry {idx} points to {off:#x}, outside the {}-byte file", self.view.len),
            ));
        }
        Ok(off)
    }

    /// The 1 MiB sector bitmap of chunk `chunk` (differencing disks).
    fn bitmap(&self, chunk: u64) -> Result<Arc<Vec<u8>>> {
        if let Some((_, b)) = self.bitmaps.lock().unwrap_or_else(|p| p.into_inner()).iter().find(|(c, _)| *c == chunk) {
            return Ok(b.clone());
        }
        let idx = chunk * (self.chunk_ratio + 1) + self.chunk_ratio;
        let e = self.bat_entry(idx)?;
        let b = if e & 7 == FULLY_PRESENT {
            let off = (e >> 20) << 20;
            if off < MIB || off + MIB > self.view.len {
                return Err(Error::corrupt(L, self.bat_offset + idx * 8, format!("sector bitmap of chunk {chunk} points to {off:#x}, outside the file")));
            }
            Arc::new(self.view.read_vec(off, MIB)?)
        } else {
            return Err(Error::corrupt(
                L,
                self.bat_offset + idx * 8,
                format!("chunk {chunk} has partially present blocks but no sector bitmap (state {})", e & 7),
            ));
        };
        let mut cache = self.bitmaps.lock().unwrap_or_else(|p| p.into_inner());
        if cache.len() >= BITMAP_CACHE {
            cache.remove(0);
        }
        cache.push((chunk, b.clone()));
        Ok(b)
    }

    /// Read within one block.
    fn read_block(&self, v: u64, buf: &mut [u8]) -> Result<()> {
        let b = v / self.block_size;
        let idx = b + b / self.chunk_ratio;
        let e = self.bat_entry(idx)?;
        let within = v % self.block_size;
        match e & 7 {
            FULLY_PRESENT => self.view.read(self.block_offset(idx, e)? + within, buf),
            NOT_PRESENT if self.parent.is_some() => self.parent.as_ref().map_or(Ok(()), |p| p.read_at(v, buf)),
            NOT_PRESENT | UNDEFINED | ZERO | UNMAPPED | UNMAPPED_V095 => {
                buf.fill(0);
                Ok(())
            }
            PARTIALLY_PRESENT => {
                let Some(parent) = self.parent.as_ref() else {
                    return Err(Error::corrupt(L, self.bat_offset + idx * 8, format!("BAT entry {idx} is partially present in a disk without a parent")));
                };
                let base = self.block_offset(idx, e)?;
                let bitmap = self.bitmap(b / self.chunk_ratio)?;
                // Runs of sectors that are all here or all in the parent.
                let mut pos = 0usize;
                while pos < buf.len() {
                    let s = (v + pos as u64) / self.sector;
                    let bit = |s: u64| {
                        let i = s & ((1 << 23) - 1);
                        bitmap[(i >> 3) as usize] & (1 << (i & 7)) != 0
                    };
                    let here = bit(s);
                    let mut run_end = ((s + 1) * self.sector - v) as usize;
                    while run_end < buf.len() && bit((v + run_end as u64) / self.sector) == here {
                        run_end += self.sector as usize;
                    }
                    let run_end = run_end.min(buf.len());
                    let va = v + pos as u64;
                    if here {
                        self.view.read(base + va % self.block_size, &mut buf[pos..run_end])?;
                    } else {
                        parent.read_at(va, &mut buf[pos..run_end])?;
                    }
                    pos = run_end;
                }
                Ok(())
            }
            s => Err(Error::corrupt(L, self.bat_offset + idx * 8, format!("BAT entry {idx} has reserved state {s}"))),
        }
    }
}

impl Disk for VhdxDisk {
    fn read_at(&self, offset: u64, buf: &mut [u8]) -> Result<()> {
        if offset.checked_add(buf.len() as u64).is_none_or(|e| e > self.virtual_size) {
            return Err(Error::corrupt(L, offset, format!("read of {} bytes past the end of the {}-byte virtual disk", buf.len(), self.virtual_size)));
        }
        crate::image::by_blocks(offset, buf, self.block_size, |v, piece| self.read_block(v, piece))
    }
    fn len(&self) -> u64 {
        self.virtual_size
    }
    fn sector_size(&self) -> u32 {
        self.sector as u32
    }
    fn as_any(&self) -> Option<&dyn std::any::Any> {
        Some(self)
    }
}

pub fn open(src: Arc<dyn Source>, ctx: &mut OpenCtx) -> Result<Image> {
    let creator = {
        let mut b = vec![0u8; 512];
        src.read(L, 8, &mut b)?;
        Some(utf16le(&b)).filter(|s| !s.is_empty())
    };
    let header = current_header(src.as_ref())?;
    let len = src.len();
    let mut view = View { src, pages: BTreeMap::new(), len };
    let log_replayed = replay_log(&mut view, &header)?;
    let (bat_region, meta_region) = region_table(view.src.as_ref())?;
    let mut m = read_metadata(&view, &meta_region)?;

    let bs = m.block_size as u64;
    let chunk_ratio = ((1u64 << 23) * m.logical_sector as u64) / bs;
    let data_blocks = m.virtual_size.div_ceil(bs);
    let sb_blocks = data_blocks.div_ceil(chunk_ratio);
    let entries = if m.has_parent { sb_blocks * (chunk_ratio + 1) } else { data_blocks + (data_blocks - 1) / chunk_ratio };
    if entries * 8 > bat_region.length || entries * 8 > MAX_BAT {
        return Err(Error::corrupt(
            L,
            bat_region.offset,
            format!("BAT region of {} bytes cannot hold the {entries} entries a {}-byte disk needs", bat_region.length, m.virtual_size),
        ));
    }
    let raw = view.read_vec(bat_region.offset, entries * 8)?;
    let bat: Vec<u64> = raw.chunks_exact(8).map(|c| le_u64(c, 0)).collect();
    let allocated = (0..data_blocks)
        .filter(|b| matches!(bat[(b + b / chunk_ratio) as usize] & 7, FULLY_PRESENT | PARTIALLY_PRESENT))
        .count() as u64;

    let path = view.src.path();
    let mut parent_info = None;
    let parent: Option<Arc<dyn Disk>> = if m.has_parent {
        let Some((loc_off, loc)) = &m.parent_locator.take() else {
            return Err(Error::corrupt(L, meta_region.offset, "differencing disk without a parent locator"));
        };
        let kv = parse_locator(*loc_off, loc)?;
        let expected = kv
            .get("absolute_win32_path")
            .or_else(|| kv.get("relative_path"))
            .or_else(|| kv.get("volume_path"))
            .cloned()
            .unwrap_or_else(|| "(no path in the parent locator)".into());
        let p = ctx.open_parent(view.src.as_ref(), L, *loc_off, &expected, &parent_candidates(&kv))?;
        if p.disk.len() != m.virtual_size {
            return Err(Error::corrupt(
                L,
                *loc_off,
                format!("parent {} is {} bytes, this differencing disk is {}", p.info.path.display(), p.disk.len(), m.virtual_size),
            ));
        }
        if let Some(pd) = as_vhdx(p.disk.as_ref()) {
            let linkage = kv.get("parent_linkage").map(|s| s.trim_matches(['{', '}']).to_lowercase());
            let linkage2 = kv.get("parent_linkage2").map(|s| s.trim_matches(['{', '}']).to_lowercase());
            let actual = pd.header.data_write_guid.hyphenated().to_string();
            if linkage.as_deref() != Some(actual.as_str()) && linkage2.as_deref() != Some(actual.as_str()) {
                return Err(Error::corrupt(
                    L,
                    *loc_off,
                    format!(
                        "parent {} was modified after this child was made (parent_linkage {{{}}} != its DataWriteGuid {{{actual}}})",
                        p.info.path.display(),
                        linkage.unwrap_or_default()
                    ),
                ));
            }
        }
        parent_info = Some(Box::new(p.info));
        Some(p.disk)
    } else {
        None
    };

    let info = ContainerInfo {
        path,
        format: if m.has_parent {
            Format::VhdxDifferencing
        } else if m.fixed {
            Format::VhdxFixed
        } else {
            Format::VhdxDynamic
        },
        file_size: len,
        virtual_size: m.virtual_size,
        logical_sector_size: m.logical_sector,
        physical_sector_size: m.physical_sector,
        block_size: Some(m.block_size),
        disk_id: m.disk_id.map(|g| g.hyphenated().to_string()),
        creator,
        log_replayed,
        allocated_blocks: Some(allocated),
        parent: parent_info,
    };
    let disk = VhdxDisk {
        view,
        header,
        bat,
        bat_offset: bat_region.offset,
        block_size: bs,
        chunk_ratio,
        sector: m.logical_sector as u64,
        virtual_size: m.virtual_size,
        parent,
        bitmaps: Mutex::new(Vec::new()),
        meta: m,
    };
    Ok(Image { disk: Arc::new(disk), info })
}
