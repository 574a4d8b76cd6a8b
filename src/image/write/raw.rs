//! Full copies of raw images and fixed VHDs (whose data is a raw disk followed
//! by a 512-byte footer): the file is copied with zero regions left as holes,
//! then the patch is written at its virtual offsets (the same file offsets).

use super::{fault_point, Patch, Progress};
use crate::error::{Error, Layer, Result};
use crate::image::{Format, Image};
use std::fs::File;
use std::io::{Read, Seek, SeekFrom, Write};
use std::os::unix::fs::FileExt;

const CHUNK: usize = 4 << 20;
const GRANULE: usize = 64 << 10;

pub fn full_copy(image: &Image, patch: &Patch, out: &mut File, progress: Progress) -> Result<()> {
    let layer = if image.info.format == Format::VhdFixed { Layer::Vhd } else { Layer::Raw };
    let path = &image.info.path;
    let io = |offset: u64, what: &str, e: std::io::Error| Error::corrupt(layer, offset, format!("{what} {}: {e}", path.display()));
    let mut src = File::open(path).map_err(|source| Error::Open { layer, path: path.clone(), source })?;
    // A fixed VHD is copied whole: data, any slack, and the footer at its very
    // end (the size its footer states may be smaller than the data area, e.g.
    // rounded down to a CHS geometry). A block device reports length 0 in its
    // metadata: for raw disks the virtual size is the truth.
    let total = match image.info.format {
        Format::VhdFixed => image.info.file_size,
        _ => image.disk.len(),
    };
    let mut buf = vec![0u8; CHUNK];
    let mut done = 0u64;
    while done < total {
        let n = (total - done).min(CHUNK as u64) as usize;
        src.read_exact(&mut buf[..n]).map_err(|e| io(done, "reading", e))?;
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
            }
            at = end;
        }
        done += n as u64;
        if done % (64 * CHUNK as u64) == 0 || done == total {
            progress(done, total);
        }
    }
    out.set_len(total).map_err(|e| io(total, "sizing copy of", e))?;
    fault_point("raw-data");
    for (off, data) in patch.ranges() {
        out.write_all_at(data, off).map_err(|e| io(off, "patching copy of", e))?;
    }
    Ok(())
}
