//! Raw images and block devices: the virtual disk is the source itself.
//!
//! Also the full-copy writer for raw images and fixed VHDs (whose data is a
//! raw disk followed by a 512-byte footer): a regular input file is
//! reflinked where the file system can (`FICLONE`), else only its data
//! extents (`SEEK_DATA`/`SEEK_HOLE`) are read, its holes never, with zero
//! stretches left as holes; other sources are read whole, likewise. Then only
//! the patch's bytes are written at their virtual offsets (the same file
//! offsets).

use super::write::{fault_point, Patch, Progress};
use super::{ContainerInfo, Disk, Format, Image, Source};
use crate::error::{Error, Layer, Result};
use std::fs::File;
use std::io::{Seek, SeekFrom, Write};
use std::sync::Arc;

pub struct RawDisk {
    src: Arc<dyn Source>,
    sector: u32,
}

impl RawDisk {
    /// The bytes this disk reads (for the writers).
    pub(crate) fn source(&self) -> &Arc<dyn Source> {
        &self.src
    }
}

impl Disk for RawDisk {
    fn read_at(&self, offset: u64, buf: &mut [u8]) -> Result<()> {
        if offset.checked_add(buf.len() as u64).is_none_or(|e| e > self.src.len()) {
            return Err(Error::corrupt(Layer::Raw, offset, "read past end of disk"));
        }
        self.src.read(Layer::Raw, offset, buf)
    }
    fn len(&self) -> u64 {
        self.src.len()
    }
    fn sector_size(&self) -> u32 {
        self.sector
    }
    fn as_any(&self) -> Option<&dyn std::any::Any> {
        Some(self)
    }
}

/// The source's logical sector size when it is one partition tables use.
fn sector_of(src: &dyn Source) -> u32 {
    match src.sector_size() {
        s @ (512 | 4096) => s,
        _ => 512,
    }
}

pub fn open(src: Arc<dyn Source>) -> Result<Image> {
    let sector = sector_of(src.as_ref());
    let info = ContainerInfo {
        path: src.path(),
        format: Format::Raw,
        file_size: src.len(),
        virtual_size: src.len(),
        logical_sector_size: sector,
        physical_sector_size: sector,
        block_size: None,
        disk_id: None,
        creator: None,
        log_replayed: None,
        allocated_blocks: None,
        parent: None,
    };
    Ok(Image { disk: Arc::new(RawDisk { src, sector }), info })
}

// ------------------------------------------------------------------ writer

const CHUNK: usize = 4 << 20;
const GRANULE: usize = 64 << 10;

/// Write a copy of a raw image or fixed VHD with `patch` applied into `out`,
/// reading the input through the source `image` was opened from.
pub fn full_copy(image: &Image, patch: &Patch, out: &mut File, progress: Progress) -> Result<()> {
    let layer = if image.info.format == Format::VhdFixed { Layer::Vhd } else { Layer::Raw };
    let src = match image.info.format {
        Format::Raw => image.disk.as_any().and_then(|a| a.downcast_ref::<RawDisk>()).map(|d| d.source().clone()),
        Format::VhdFixed => super::vhd::source_of(image.disk.as_ref()),
        _ => None,
    };
    let Some(src) = src else {
        return Err(Error::Usage(format!(
            "the raw writer takes a raw image or fixed VHD opened by this tool, not {}",
            image.info.format.name()
        )));
    };
    let path = &image.info.path;
    let io = |offset: u64, what: &str, e: std::io::Error| Error::corrupt(layer, offset, format!("{what} {}: {e}", path.display()));
    // A fixed VHD is copied whole: data, any slack, and the footer at its very
    // end (the size its footer states may be smaller than the data area, e.g.
    // rounded down to a CHS geometry). For a raw disk the virtual size is the
    // source's length.
    let total = match image.info.format {
        Format::VhdFixed => src.len(),
        _ => image.disk.len(),
    };
    // The disk starts writing the copy while it is being made (see SyncBehind).
    let mut behind = super::write::SyncBehind::new(out);
    if let Some(file) = super::write::source_file(src.as_ref()) {
        // The input is a regular file: a reflink where the file system
        // shares extents; else its data extents are read (its holes never)
        // and zero stretches stay holes.
        if !super::write::clone_whole(&file, out) {
            let mut done = 0u64;
            progress(0, total);
            let err = |o: u64, e: std::io::Error| io(o, "copying", e);
            super::write::each_nonzero(&file, 0, total, 0, &mut |o, d| {
                super::write::write_all_at(out, d, o).map_err(|e| io(o, "writing copy of", e))?;
                behind.wrote(d.len() as u64);
                done = o + d.len() as u64;
                if done % (16 * CHUNK as u64) < d.len() as u64 {
                    progress(done, total);
                }
                Ok(())
            }, &err)?;
            progress(total, total);
        }
    } else {
        copy_reading(src.as_ref(), layer, total, out, &mut behind, progress, &io)?;
    }
    behind.finish().map_err(|e| io(0, "flushing copy of", e))?;
    out.set_len(total).map_err(|e| io(total, "sizing copy of", e))?;
    fault_point("raw-data");
    // Only the changed bytes are written over the copy.
    for (off, data) in patch.ranges() {
        super::write::write_all_at(out, data, off).map_err(|e| io(off, "patching copy of", e))?;
    }
    Ok(())
}

/// The copy through user space, for sources that are not a regular file
/// (block devices, memory): zero stretches become holes.
fn copy_reading(src: &dyn Source, layer: Layer, total: u64, out: &mut File, behind: &mut super::write::SyncBehind, progress: Progress, io: &dyn Fn(u64, &str, std::io::Error) -> Error) -> Result<()> {
    let mut buf = vec![0u8; CHUNK];
    let mut done = 0u64;
    while done < total {
        let n = (total - done).min(CHUNK as u64) as usize;
        src.read(layer, done, &mut buf[..n])?;
        // Zero stretches (64 KiB granules) become holes, as `cp --sparse=always`
        // does; runs of data go out in one write.
        let mut at = 0;
        while at < n {
            let zero = |i: usize| buf[i..(i + GRANULE).min(n)].iter().all(|b| *b == 0);
            let is_zero = zero(at);
            let mut end = at;
            while end < n && zero(end) == is_zero {
                end = (end + GRANULE).min(n);
            }
            if is_zero {
                out.seek(SeekFrom::Current((end - at) as i64)).map_err(|e| io(done, "seeking output for", e))?;
            } else {
                out.write_all(&buf[at..end]).map_err(|e| io(done, "writing copy of", e))?;
                behind.wrote((end - at) as u64);
            }
            at = end;
        }
        done += n as u64;
        if done % (64 * CHUNK as u64) == 0 || done == total {
            progress(done, total);
        }
    }
    Ok(())
}

/// Write the content of any `image` with `patch` applied as a raw image (a
/// sparse file: only non-zero 64 KiB stretches of the ranges that may hold
/// data are written), or, with `vhd_fixed`, as a fixed VHD: the size rounded
/// up to a whole MiB (Azure takes no other), then a fresh footer.
pub fn convert(image: &Image, patch: &Patch, out: &mut File, vhd_fixed: bool, progress: Progress) -> Result<()> {
    let layer = if vhd_fixed { Layer::Vhd } else { Layer::Raw };
    let vsize = image.disk.len();
    let size = if vhd_fixed { vsize.div_ceil(1 << 20) << 20 } else { vsize };
    let io = |offset: u64, e: std::io::Error| Error::Io { layer, offset, path: "the copy being written".into(), source: e };
    let mut behind = super::write::SyncBehind::new(out);
    super::write::feed(image, patch, 4 << 20, progress, &mut |off, data| {
        super::write::write_all_at(out, data, off).map_err(|e| io(off, e))?;
        behind.wrote(data.len() as u64);
        Ok(())
    })?;
    behind.finish().map_err(|e| io(0, e))?;
    fault_point("raw-data");
    out.set_len(size).map_err(|e| io(size, e))?;
    if vhd_fixed {
        if size > 2040 << 30 {
            return Err(Error::unsupported(Layer::Vhd, 48, format!("a {size}-byte disk cannot be a VHD (at most 2040 GiB): write VHDX or raw (--format)")));
        }
        let footer = super::vhd::write::fresh_footer(size, 2);
        super::write::write_all_at(out, &footer, size).map_err(|e| io(size, e))?;
    }
    Ok(())
}
