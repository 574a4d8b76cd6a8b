//! Writing images. The input is never opened for writing: every function here
//! writes a *new* file (the caller, `repair::commit`, creates it invisibly
//! next to the destination and publishes it only after verifying it).
//!
//! The layers above describe a change as a [`Patch`] of the virtual disk
//! (byte ranges at virtual-disk offsets); this layer materialises it either as
//! a full copy of the input in the input's format, or as a differencing child
//! whose parent is the untouched input.

//! The writers live with their readers: `raw.rs`, `vhd/write.rs`,
//! `vhdx/write.rs`. They read the input through the [`Image`] they are given
//! (its disk and the container structures its reader parsed), never by
//! opening the input's path again.

use super::{raw, vhd, vhdx, Format, Image};
use crate::error::{Error, Result};
use std::collections::BTreeMap;
use std::fs::File;
use std::path::Path;

/// Changed bytes of a virtual disk: non-overlapping ranges, by offset.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct Patch {
    writes: BTreeMap<u64, Vec<u8>>,
}

impl Patch {
    /// Record `data` at virtual offset `offset`. A range overlapping an earlier
    /// one replaces the overlapped bytes (later writes win).
    pub fn write(&mut self, offset: u64, data: &[u8]) {
        self.put(offset, std::borrow::Cow::Borrowed(data));
    }

    /// [`write`](Self::write) of bytes the caller gives up: kept as they
    /// are when they touch no other range (no copy into fresh memory).
    pub fn write_owned(&mut self, offset: u64, data: Vec<u8>) {
        self.put(offset, std::borrow::Cow::Owned(data));
    }

    fn put(&mut self, offset: u64, data: std::borrow::Cow<'_, [u8]>) {
        if data.is_empty() {
            return;
        }
        let end = offset + data.len() as u64;
        // Merge with every range that overlaps or touches [offset, end).
        let mut start = offset;
        let mut merged_end = end;
        // The ranges are disjoint and apart, so their ends rise with their
        // starts: walk back from `end` only while they reach `offset`.
        let touching: Vec<u64> = self.writes.range(..=end).rev().take_while(|(o, d)| *o + d.len() as u64 >= offset).map(|(o, _)| *o).collect();
        if touching.is_empty() {
            // Apart from every range (a plan's pieces come in order): no merge.
            self.writes.insert(offset, data.into_owned());
            return;
        }
        let mut old = Vec::new();
        for o in touching {
            let d = self.writes.remove(&o).expect("key just listed");
            start = start.min(o);
            merged_end = merged_end.max(o + d.len() as u64);
            old.push((o, d));
        }
        let mut buf = vec![0u8; (merged_end - start) as usize];
        for (o, d) in old {
            let at = (o - start) as usize;
            buf[at..at + d.len()].copy_from_slice(&d);
        }
        let at = (offset - start) as usize;
        buf[at..at + data.len()].copy_from_slice(&data);
        self.writes.insert(start, buf);
    }

    /// The ranges, by increasing offset (non-overlapping, non-touching).
    pub fn ranges(&self) -> impl Iterator<Item = (u64, &[u8])> {
        self.writes.iter().map(|(o, d)| (*o, d.as_slice()))
    }

    /// Total bytes changed.
    pub fn len(&self) -> u64 {
        self.writes.values().map(|d| d.len() as u64).sum()
    }

    pub fn is_empty(&self) -> bool {
        self.writes.is_empty()
    }

    /// The highest offset written + 1 (0 when empty).
    pub fn end(&self) -> u64 {
        self.writes.iter().next_back().map_or(0, |(o, d)| o + d.len() as u64)
    }
}

/// Lay the bytes of `ranges` (a patch's ranges, sorted by offset and
/// non-overlapping) that fall in `[at, at + buf.len())` over `buf`, which
/// holds the disk's bytes from virtual offset `at`. Returns how many bytes
/// of `buf` the patch covers.
pub(crate) fn overlay(ranges: &[(u64, &[u8])], at: u64, buf: &mut [u8]) -> u64 {
    let end = at + buf.len() as u64;
    let first = ranges.partition_point(|(o, d)| o + d.len() as u64 <= at);
    let mut covered = 0;
    for (o, d) in ranges[first..].iter().take_while(|(o, _)| *o < end) {
        let from = (*o).max(at);
        let to = (o + d.len() as u64).min(end);
        buf[(from - at) as usize..(to - at) as usize].copy_from_slice(&d[(from - o) as usize..(to - o) as usize]);
        covered += to - from;
    }
    covered
}

/// `spans` (start, end) widened to whole `unit`s, cut at `limit`, sorted,
/// and merged where they overlap or touch.
pub(crate) fn whole_units(spans: impl IntoIterator<Item = (u64, u64)>, unit: u64, limit: u64) -> Vec<(u64, u64)> {
    let mut spans: Vec<(u64, u64)> = spans.into_iter().map(|(a, b)| (a / unit * unit, b.div_ceil(unit).saturating_mul(unit).min(limit))).filter(|(a, b)| a < b).collect();
    spans.sort_unstable();
    let mut merged: Vec<(u64, u64)> = Vec::with_capacity(spans.len());
    for (a, b) in spans {
        match merged.last_mut() {
            Some(l) if a <= l.1 => l.1 = l.1.max(b),
            _ => merged.push((a, b)),
        }
    }
    merged
}

/// Progress callback: (bytes done, bytes total).
pub type Progress<'a> = &'a mut dyn FnMut(u64, u64);

/// Write a full copy of `image` with `patch` applied into `out` (a new, empty
/// file), in the input's container format. Sparse-aware: unallocated or zero
/// regions are not written.
pub fn full_copy(image: &Image, patch: &Patch, out: &mut File, progress: Progress) -> Result<()> {
    check_patch(image, patch)?;
    match image.info.format {
        Format::Raw | Format::VhdFixed => raw::full_copy(image, patch, out, progress),
        Format::VhdDynamic | Format::VhdDifferencing => vhd::write::full_copy(image, patch, out, progress),
        Format::VhdxFixed | Format::VhdxDynamic | Format::VhdxDifferencing => vhdx::write::full_copy(image, patch, out, progress),
        Format::VmdkSparse | Format::VmdkStream | Format::VmdkFlat | Format::Qcow2 => Err(no_writer(image)),
    }
}

/// Write into `out` (a new, empty file at `out_path`) a differencing child of
/// `image` holding only the sectors `patch` touches; its parent locator points
/// at the input (relative path first). VHD inputs get a VHD child, VHDX inputs
/// a VHDX child; a raw input has no differencing format.
pub fn diff_child(image: &Image, patch: &Patch, out: &mut File, out_path: &Path) -> Result<()> {
    check_patch(image, patch)?;
    match image.info.format {
        Format::VhdFixed | Format::VhdDynamic | Format::VhdDifferencing => vhd::write::diff_child(image, patch, out, out_path),
        Format::VhdxFixed | Format::VhdxDynamic | Format::VhdxDifferencing => vhdx::write::diff_child(image, patch, out, out_path),
        Format::VmdkSparse | Format::VmdkStream | Format::VmdkFlat | Format::Qcow2 => Err(no_writer(image)),
        Format::Raw => Err(Error::Refused { layer: crate::error::Layer::Raw, msg: "a raw image cannot have a differencing child: write a full copy instead (without --diff-child)".into() }),
    }
}

// ------------------------------------------------------------------ output formats

/// A container format a full copy can be written in (`--format`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OutFormat {
    /// A flat disk image (sparse file).
    Raw,
    /// A fixed VHD: the disk, its size rounded up to a whole MiB (what Azure
    /// takes for upload), then the footer.
    VhdFixed,
    /// A dynamic VHD (2 MiB blocks).
    VhdDynamic,
    /// A dynamic VHDX (32 MiB blocks, Hyper-V's default).
    VhdxDynamic,
}

impl OutFormat {
    /// The `--format` spellings, in the order the help lists them.
    pub const NAMES: [&'static str; 4] = ["vhd", "vhd-fixed", "vhdx", "raw"];

    pub fn parse(s: &str) -> Option<OutFormat> {
        match s.to_ascii_lowercase().as_str() {
            "vhd" | "vhd-dynamic" => Some(OutFormat::VhdDynamic),
            "vhd-fixed" => Some(OutFormat::VhdFixed),
            "vhdx" | "vhdx-dynamic" => Some(OutFormat::VhdxDynamic),
            "raw" | "img" => Some(OutFormat::Raw),
            _ => None,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            OutFormat::Raw => "raw",
            OutFormat::VhdFixed => "vhd-fixed",
            OutFormat::VhdDynamic => "vhd",
            OutFormat::VhdxDynamic => "vhdx",
        }
    }

    /// What today's full copy of `input` writes without conversion (`None`:
    /// a format with no writer of its own, or a fixed VHDX, which has no
    /// `--format` name: it is copied as fixed VHDX unless asked otherwise).
    fn native(input: Format) -> Option<OutFormat> {
        match input {
            Format::Raw => Some(OutFormat::Raw),
            Format::VhdFixed => Some(OutFormat::VhdFixed),
            Format::VhdDynamic | Format::VhdDifferencing => Some(OutFormat::VhdDynamic),
            Format::VhdxFixed => None,
            Format::VhdxDynamic | Format::VhdxDifferencing => Some(OutFormat::VhdxDynamic),
            // Read only: every copy of these is a conversion.
            Format::VmdkSparse | Format::VmdkStream | Format::VmdkFlat | Format::Qcow2 => None,
        }
    }
}

fn is_vhd(f: Format) -> bool {
    matches!(f, Format::VhdFixed | Format::VhdDynamic | Format::VhdDifferencing)
}

fn is_vhdx(f: Format) -> bool {
    matches!(f, Format::VhdxFixed | Format::VhdxDynamic | Format::VhdxDifferencing)
}

/// The lower-case extension of `out`.
fn extension(out: &Path) -> String {
    out.extension().and_then(|e| e.to_str()).unwrap_or("").to_ascii_lowercase()
}

/// The conversion a full copy of `input` (virtual size `vsize`) to `out`
/// needs: `None` when the input's own writer makes what is asked (the copy is
/// then what it always was), else the format to convert to. Asked means
/// `explicit` (`--format`), else the extension of `out`: `.vhd` a VHD (the
/// input's own subtype if it is one, else dynamic), `.vhdx`/`.avhdx` a VHDX
/// (likewise), `.raw`/`.img`/`.bin`/`.dd` a raw image; any other name keeps
/// the input's format. An explicit `vhd-fixed` of a fixed VHD whose size is
/// not a whole MiB is converted too (its size rounded up, as Azure needs).
pub fn conversion(input: Format, vsize: u64, out: &Path, explicit: Option<OutFormat>) -> Option<OutFormat> {
    let want = match explicit {
        Some(f) => f,
        None => match extension(out).as_str() {
            "vhd" if is_vhd(input) => return None,
            "vhd" => OutFormat::VhdDynamic,
            "vhdx" | "avhdx" if is_vhdx(input) => return None,
            "vhdx" | "avhdx" => OutFormat::VhdxDynamic,
            "raw" | "img" | "bin" | "dd" => OutFormat::Raw,
            _ => return None,
        },
    };
    let rounds = want == OutFormat::VhdFixed && explicit.is_some() && vsize % (1 << 20) != 0;
    (OutFormat::native(input) != Some(want) || rounds).then_some(want)
}

/// Refuse a differencing child in another family than its parent's: asked
/// with `--format`, or named `.vhd` for a VHDX parent / `.vhdx`, `.avhdx`
/// for a VHD parent (a child is always in its parent's format).
pub fn check_child_format(input: Format, out: &Path, explicit: Option<OutFormat>) -> Result<()> {
    let refuse = |what: String| {
        Err(Error::Refused {
            layer: crate::error::Layer::Repair,
            msg: format!("a differencing child is written in its parent's format ({}), not {what}: drop --format, or write a full copy (without --diff-child) to convert", input.name()),
        })
    };
    match explicit {
        Some(f @ OutFormat::VhdDynamic) if !is_vhd(input) => return refuse(f.name().into()),
        Some(f @ OutFormat::VhdxDynamic) if !is_vhdx(input) => return refuse(f.name().into()),
        Some(f @ (OutFormat::VhdFixed | OutFormat::Raw)) => return refuse(f.name().into()),
        _ => {}
    }
    match extension(out).as_str() {
        "vhd" if is_vhdx(input) => refuse(format!("a .vhd file ({})", out.display())),
        "vhdx" | "avhdx" if is_vhd(input) => refuse(format!("a .{} file ({})", extension(out), out.display())),
        _ => Ok(()),
    }
}

/// Write a full copy of `image` with `patch` applied into `out` as
/// `format` (see [`conversion`]; `None`: the input's own format, as
/// [`full_copy`]).
pub fn full_copy_as(image: &Image, patch: &Patch, out: &mut File, format: Option<OutFormat>, progress: Progress) -> Result<()> {
    let Some(format) = format else { return full_copy(image, patch, out, progress) };
    check_patch(image, patch)?;
    match format {
        OutFormat::Raw | OutFormat::VhdFixed => raw::convert(image, patch, out, format == OutFormat::VhdFixed, progress),
        OutFormat::VhdDynamic => vhd::write::convert(image, patch, out, progress),
        OutFormat::VhdxDynamic => vhdx::write::convert(image, patch, out, progress),
    }
}

/// Feed the content of `image` with `patch` applied to `put`, as runs of
/// non-zero bytes at virtual offsets (64 KiB granules; each run lies within
/// one `align`-byte block). Only the virtual ranges that may hold data are
/// read: the extents of a raw or fixed-VHD file, the blocks a dynamic or
/// differencing chain allocates (everything for other disks), and the patch.
pub(crate) fn feed(image: &Image, patch: &Patch, align: u64, progress: Progress, put: &mut dyn FnMut(u64, &[u8]) -> Result<()>) -> Result<()> {
    const GRAIN: u64 = 64 << 10;
    let vsize = image.disk.len();
    let mut spans = allocated(image)?;
    spans.extend(patch.ranges().map(|(o, d)| (o, o + d.len() as u64)));
    let merged = whole_units(spans, GRAIN, vsize);
    let ranges: Vec<(u64, &[u8])> = patch.ranges().collect();
    let total: u64 = merged.iter().map(|(a, b)| b - a).sum();
    let mut done = 0;
    progress(0, total);
    let piece = align.clamp(GRAIN, PIECE);
    let mut buf = vec![0u8; piece as usize];
    for (a, b) in merged {
        let mut at = a;
        while at < b {
            // Pieces never cross an `align` boundary.
            let n = (b - at).min(piece - at % piece).min((at / align + 1) * align - at);
            let p = &mut buf[..n as usize];
            image.disk.read_at(at, p)?;
            overlay(&ranges, at, p);
            // Runs of non-zero granules.
            let mut i = 0usize;
            while i < p.len() {
                let g = |i: usize| &p[i..(i + GRAIN as usize).min(p.len())];
                if zero(g(i)) {
                    i += g(i).len();
                    continue;
                }
                let start = i;
                while i < p.len() && !zero(g(i)) {
                    i += g(i).len();
                }
                put(at + start as u64, &p[start..i])?;
            }
            at += n;
            done += n;
            progress(done, total);
        }
    }
    Ok(())
}

fn zero(b: &[u8]) -> bool {
    let mut words = b.chunks_exact(16);
    let acc = words.by_ref().fold(0u128, |a, c| a | u128::from_ne_bytes(c.try_into().unwrap_or([0xFF; 16])));
    acc == 0 && words.remainder().iter().all(|x| *x == 0)
}

/// The virtual ranges of `image` that may hold data (see [`feed`]).
fn allocated(image: &Image) -> Result<Vec<(u64, u64)>> {
    let vsize = image.disk.len();
    let whole = vec![(0, vsize)];
    Ok(match image.info.format {
        Format::Raw | Format::VhdFixed => {
            let src = match image.info.format {
                Format::Raw => image.disk.as_any().and_then(|a| a.downcast_ref::<raw::RawDisk>()).map(|d| d.source().clone()),
                _ => vhd::source_of(image.disk.as_ref()),
            };
            match src.as_deref().and_then(source_file) {
                Some(f) => data_extents(&f, 0, vsize).map_err(|e| Error::Io { layer: crate::error::Layer::Raw, offset: 0, path: image.info.path.display().to_string(), source: e })?,
                None => whole,
            }
        }
        Format::VhdDynamic | Format::VhdDifferencing => vhd::write::allocated(image).unwrap_or(whole),
        Format::VhdxDynamic | Format::VhdxDifferencing => vhdx::write::allocated(image).unwrap_or(whole),
        // Every virtual byte is read (zero granules still become holes).
        Format::VhdxFixed | Format::VmdkSparse | Format::VmdkStream | Format::VmdkFlat | Format::Qcow2 => whole,
    })
}

/// Whether a new image of `image` can be written to `out` (`child`: as a
/// differencing child; `explicit`: the `--format` asked for). VMDK and QCOW2
/// are read only: a full copy of one must be a conversion (a `--format`, or an
/// `--out` extension that names one), and a child of one cannot be written.
/// The one place this is decided; commands call it before planning so the
/// refusal comes first.
pub fn writable(image: &Image, out: &Path, explicit: Option<OutFormat>, child: bool) -> Result<()> {
    let read_only = matches!(image.info.format, Format::VmdkSparse | Format::VmdkStream | Format::VmdkFlat | Format::Qcow2);
    if read_only && (child || conversion(image.info.format, image.disk.len(), out, explicit).is_none()) {
        return Err(no_writer(image));
    }
    Ok(())
}

/// The refusal for a format this layer reads but does not write.
fn no_writer(image: &Image) -> Error {
    Error::Refused {
        layer: crate::error::Layer::Repair,
        msg: format!(
            "{} is {}, which this tool reads but does not write: choose an output format (--out NAME.vhdx, or --format vhdx|vhd|raw), or convert it first: {}",
            image.info.path.display(),
            image.info.format.name(),
            super::convert_command(&image.info.path.display().to_string(), "vhdx")
        ),
    }
}

fn check_patch(image: &Image, patch: &Patch) -> Result<()> {
    if patch.end() > image.disk.len() {
        return Err(Error::Usage(format!("patch ends at {:#x}, past the end of the {}-byte virtual disk", patch.end(), image.disk.len())));
    }
    Ok(())
}

// ------------------------------------------------------------------ file-range copies

/// The regular file a source reads, opened again read-only, when it is the
/// very file the source opened (same device and inode): the full-copy writers
/// hand its untouched ranges to the kernel (`copy_file_range`, a reflink
/// where the file system shares extents) instead of reading them through the
/// container. `None` for block devices, memory sources, other platforms, or a
/// path that now names another file: the writers then read as before.
#[cfg(any(target_os = "linux", target_os = "android"))]
pub(crate) fn source_file(src: &dyn super::Source) -> Option<File> {
    use std::os::unix::fs::MetadataExt;
    let f = File::open(src.path()).ok()?;
    let m = f.metadata().ok()?;
    let same = m.is_file() && m.len() == src.len() && src.identity().0 == format!("file:{}:{}", m.dev(), m.ino());
    same.then_some(f)
}

#[cfg(not(any(target_os = "linux", target_os = "android")))]
pub(crate) fn source_file(_src: &dyn super::Source) -> Option<File> {
    None
}

/// The data extents of `f` within `[start, end)` (`SEEK_DATA`/`SEEK_HOLE`):
/// holes are never read. A file system without them reports the whole range
/// as data (the kernel's default), which is still correct.
#[cfg(any(target_os = "linux", target_os = "android"))]
pub(crate) fn data_extents(f: &File, start: u64, end: u64) -> std::io::Result<Vec<(u64, u64)>> {
    use rustix::fs::{seek, SeekFrom};
    let mut v = Vec::new();
    let mut at = start;
    while at < end {
        let d = match seek(f, SeekFrom::Data(at)) {
            Ok(d) => d,
            // No data at or after `at`.
            Err(rustix::io::Errno::NXIO) => break,
            Err(e) => return Err(e.into()),
        };
        if d >= end {
            break;
        }
        let h = seek(f, SeekFrom::Hole(d)).map_err(std::io::Error::from)?.min(end);
        if h <= d {
            // A file changing under us; never loop.
            return Err(std::io::Error::other(format!("SEEK_HOLE at {d} returned {h}")));
        }
        v.push((d, h));
        at = h;
    }
    Ok(v)
}

#[cfg(not(any(target_os = "linux", target_os = "android")))]
pub(crate) fn data_extents(_f: &File, start: u64, end: u64) -> std::io::Result<Vec<(u64, u64)>> {
    Ok(if start < end { vec![(start, end)] } else { Vec::new() })
}

/// Make `to` (new, empty) a reflink of all of `from` (`FICLONE`: Btrfs, XFS,
/// others that share extents): no byte is copied and the holes stay holes.
/// `false` where the file system cannot (ext4, another file system, not
/// Linux): the caller copies.
pub(crate) fn clone_whole(from: &File, to: &File) -> bool {
    #[cfg(any(target_os = "linux", target_os = "android"))]
    {
        rustix::fs::ioctl_ficlone(to, from).is_ok()
    }
    #[cfg(not(any(target_os = "linux", target_os = "android")))]
    {
        let _ = (from, to);
        false
    }
}

/// Unit of the zero check: a stretch of zeros this long (aligned to the
/// caller's base) is left a hole, as `cp --sparse=always` does.
const GRAIN: u64 = 64 << 10;
/// Bytes read at once: small enough that a piece read, zero-checked and
/// written stays in the CPU's cache (a 4 MiB piece did not: the copy then
/// cost more CPU time in the kernel's copies), as cp reads 128-256 KiB.
const PIECE: u64 = 1 << 20;

/// Call `put(offset, bytes)` for the non-zero data of `from` in
/// `[start, end)`: only its data extents are read (never its holes), in
/// [`PIECE`]s, and runs of [`GRAIN`]s (aligned to `base` <= `start`) that
/// hold a non-zero byte are handed over, so zero stretches become holes in
/// the output exactly as the reading copy made them.
///
/// Why not `copy_file_range`: on file systems without shared extents (ext4,
/// the common case) it copies allocated zeros as data, and measured on a
/// scenario image the copy then occupied 52 MiB where the zero-checking copy
/// occupied 14; where extents can be shared, [`clone_whole`] does better.
pub(crate) fn each_nonzero(from: &File, start: u64, end: u64, base: u64, put: &mut dyn FnMut(u64, &[u8]) -> Result<()>, io: &dyn Fn(u64, std::io::Error) -> Error) -> Result<()> {
    let mut buf = vec![0u8; PIECE.min(end.saturating_sub(start)) as usize];
    let next_grain = |i: u64| base + ((i - base) / GRAIN + 1) * GRAIN;
    for (a, e) in data_extents(from, start, end).map_err(|x| io(start, x))? {
        let mut at = a;
        while at < e {
            // A piece ends on a grain boundary, unless the extent ends first.
            let mut pe = (at + PIECE).min(e);
            if pe < e {
                let g = base + (pe - base) / GRAIN * GRAIN;
                if g > at {
                    pe = g;
                }
            }
            let p = &mut buf[..(pe - at) as usize];
            read_exact_at(from, p, at).map_err(|x| io(at, x))?;
            let mut i = at;
            while i < pe {
                let g_end = next_grain(i).min(pe);
                if zero(&p[(i - at) as usize..(g_end - at) as usize]) {
                    i = g_end;
                    continue;
                }
                let run = i;
                i = g_end;
                while i < pe {
                    let g_end = next_grain(i).min(pe);
                    if zero(&p[(i - at) as usize..(g_end - at) as usize]) {
                        break;
                    }
                    i = g_end;
                }
                put(run, &p[(run - at) as usize..(i - at) as usize])?;
            }
            at = pe;
        }
    }
    Ok(())
}

#[cfg(unix)]
pub(crate) fn read_exact_at(f: &File, buf: &mut [u8], off: u64) -> std::io::Result<()> {
    std::os::unix::fs::FileExt::read_exact_at(f, buf, off)
}

#[cfg(unix)]
pub(crate) fn write_all_at(f: &File, buf: &[u8], off: u64) -> std::io::Result<()> {
    std::os::unix::fs::FileExt::write_all_at(f, buf, off)
}

#[cfg(windows)]
pub(crate) fn read_exact_at(f: &File, mut buf: &mut [u8], mut off: u64) -> std::io::Result<()> {
    use std::os::windows::fs::FileExt;
    while !buf.is_empty() {
        let n = f.seek_read(buf, off)?;
        if n == 0 {
            return Err(std::io::ErrorKind::UnexpectedEof.into());
        }
        off += n as u64;
        buf = &mut buf[n..];
    }
    Ok(())
}

#[cfg(windows)]
pub(crate) fn write_all_at(f: &File, mut buf: &[u8], mut off: u64) -> std::io::Result<()> {
    use std::os::windows::fs::FileExt;
    while !buf.is_empty() {
        let n = f.seek_write(buf, off)?;
        if n == 0 {
            return Err(std::io::ErrorKind::WriteZero.into());
        }
        off += n as u64;
        buf = &buf[n..];
    }
    Ok(())
}

// ------------------------------------------------------------------ write-behind

/// Bytes written between two background flushes of [`SyncBehind`].
pub const SYNC_EVERY: u64 = 32 << 20;

/// Write-behind for a file being written: every [`SYNC_EVERY`] bytes
/// reported by [`wrote`](SyncBehind::wrote), a background thread flushes the
/// file's data (`sync_data`, on its own handle to the same file) while the
/// writer goes on writing, so that the disk works during the copy instead of
/// after it and the final `fsync` before publishing finds little left to do.
/// At most one flush is queued: one already waiting covers the newer bytes
/// too.
///
/// [`finish`](SyncBehind::finish) stops the thread and returns the first
/// error a flush met. It must be called (and its error reported) before the
/// final flush: on Linux a write-back error is reported once per open file,
/// so an error this thread saw would not be seen again by the caller's
/// `fsync`. Dropping it unfinished (an error path) waits for the thread and
/// discards its result. Where no second handle or thread can be had, it does
/// nothing and the final flush does all the work, as before.
pub struct SyncBehind {
    tx: Option<std::sync::mpsc::SyncSender<()>>,
    thread: Option<std::thread::JoinHandle<std::io::Result<()>>>,
    pending: u64,
}

impl SyncBehind {
    pub fn new(file: &File) -> SyncBehind {
        let none = SyncBehind { tx: None, thread: None, pending: 0 };
        let Ok(f) = file.try_clone() else { return none };
        let (tx, rx) = std::sync::mpsc::sync_channel::<()>(1);
        let thread = std::thread::Builder::new().name("rdprescue-sync".into()).spawn(move || {
            // Flush on each request until the writer hangs up; keep the
            // first error (later flushes would not report it again).
            while rx.recv().is_ok() {
                f.sync_data()?;
            }
            Ok(())
        });
        match thread {
            Ok(t) => SyncBehind { tx: Some(tx), thread: Some(t), pending: 0 },
            Err(_) => none,
        }
    }

    /// `n` more bytes were written: start a background flush every
    /// [`SYNC_EVERY`] bytes (never blocks).
    pub fn wrote(&mut self, n: u64) {
        self.pending += n;
        if self.pending >= SYNC_EVERY {
            self.pending = 0;
            if let Some(tx) = &self.tx {
                // Full: a flush is already queued and will cover these bytes.
                let _ = tx.try_send(());
            }
        }
    }

    /// Stop the background thread after its last flush; the first error it
    /// met, if any.
    pub fn finish(mut self) -> std::io::Result<()> {
        self.stop()
    }

    fn stop(&mut self) -> std::io::Result<()> {
        self.tx = None;
        match self.thread.take().map(|t| t.join()) {
            None => Ok(()),
            Some(Ok(r)) => r,
            Some(Err(_)) => Err(std::io::Error::other("the background flush thread failed")),
        }
    }
}

impl Drop for SyncBehind {
    fn drop(&mut self) {
        let _ = self.stop();
    }
}

/// Whether the fault-injection test hook `RDPRESCUE_FAULT` names `step`.
pub fn fault_armed(step: &str) -> bool {
    std::env::var_os("RDPRESCUE_FAULT").is_some_and(|v| v == step)
}

/// Test hook for fault injection: when the environment variable
/// `RDPRESCUE_FAULT` names this step, the process aborts here, as if killed.
pub fn fault_point(step: &str) {
    if fault_armed(step) {
        eprintln!("rdprescue: fault injected at {step}");
        std::process::abort();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Random writes against a byte-by-byte model: the same bytes, and the
    /// ranges stay disjoint, apart and sorted (what `write`'s backward walk
    /// relies on).
    #[test]
    fn patch_matches_a_byte_model() {
        let mut seed = 0x9e37_79b9_7f4a_7c15u64;
        let mut next = |n: u64| {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed % n
        };
        for round in 0..200 {
            let mut p = Patch::default();
            let mut model: BTreeMap<u64, u8> = BTreeMap::new();
            for i in 0..1 + next(40) {
                let (off, len) = (next(600), 1 + next(if round % 2 == 0 { 8 } else { 90 }));
                let data: Vec<u8> = (0..len).map(|k| (i * 7 + k) as u8 | 1).collect();
                p.write(off, &data);
                for (k, b) in data.iter().enumerate() {
                    model.insert(off + k as u64, *b);
                }
            }
            let mut got: BTreeMap<u64, u8> = BTreeMap::new();
            let mut last_end = None;
            for (o, d) in p.ranges() {
                assert!(last_end.is_none_or(|e| e < o), "round {round}: ranges touch or overlap");
                last_end = Some(o + d.len() as u64);
                got.extend(d.iter().enumerate().map(|(k, b)| (o + k as u64, *b)));
            }
            assert_eq!(got, model, "round {round}");
        }
    }

    #[test]
    fn patch_merges_overlaps() {
        let mut p = Patch::default();
        p.write(10, &[1, 1, 1]);
        p.write(20, &[2, 2]);
        p.write(12, &[3, 3]);
        assert_eq!(p.ranges().collect::<Vec<_>>(), vec![(10, &[1u8, 1, 3, 3][..]), (20, &[2u8, 2][..])]);
        p.write(14, &[4; 6]);
        // Touching ranges merge too.
        assert_eq!(p.ranges().collect::<Vec<_>>(), vec![(10, &[1u8, 1, 3, 3, 4, 4, 4, 4, 4, 4, 2, 2][..])]);
        assert_eq!(p.len(), 12);
        assert_eq!(p.end(), 22);
    }

    /// The background flush runs after SYNC_EVERY bytes, not before, and its
    /// error comes back from finish (the caller's own fsync would not see it
    /// again). /dev/null cannot be flushed (EINVAL), which makes the flush
    /// visible.
    #[cfg(target_os = "linux")]
    #[test]
    fn sync_behind_flushes_every_so_often_and_reports_errors() {
        let null = || std::fs::OpenOptions::new().write(true).open("/dev/null").unwrap();
        let f = null();
        let mut b = SyncBehind::new(&f);
        b.wrote(SYNC_EVERY - 1);
        assert!(b.finish().is_ok(), "no flush before SYNC_EVERY bytes");
        let mut b = SyncBehind::new(&f);
        b.wrote(SYNC_EVERY / 2);
        b.wrote(SYNC_EVERY / 2);
        let e = b.finish().expect_err("a flush after SYNC_EVERY bytes, its error reported");
        assert_eq!(e.raw_os_error(), Some(22), "{e}");
        // A regular file flushes fine, as often as asked.
        let dir = std::env::temp_dir().join(format!("rdprescue-behind-{}", std::process::id()));
        let file = File::create(&dir).unwrap();
        let mut b = SyncBehind::new(&file);
        for _ in 0..3 {
            write_all_at(&file, b"data", 0).unwrap();
            b.wrote(SYNC_EVERY);
        }
        assert!(b.finish().is_ok());
        let _ = std::fs::remove_file(&dir);
        // Dropped unfinished (an error path): no hang, no panic.
        let mut b = SyncBehind::new(&f);
        b.wrote(SYNC_EVERY);
        drop(b);
    }
}
