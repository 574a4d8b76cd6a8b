//! Full copies of raw images and fixed VHDs (whose data is a raw disk followed
//! by a 512-byte footer): the file is copied with zero regions left as holes,
//! then the patch is written at its virtual offsets (the same file offsets).

use super::{fault_point, Patch, Progress};
use crate::error::{Error, Layer, Result};
use crate::image::{Format, Image};
use std::fs::File;
use std::io::{Read, Seek, SeekFrom, Write};
use std::os::unix::fs::FileExt;

const CHUNK: usize = 1 << 20;

pub fn full_copy(image: &Image, patch: &Patch, out: &mut File, progress: Progress) -> Result<()> {
    let layer = if image.info.format == Format::VhdFixed { Layer::Vhd } else { Layer::Raw };
    let path = &image.info.path;
    let io = |offset: u64, what: &str, e: std::io::Error| Error::corrupt(layer, offset, format!("{what} {}: {e}", path.display()));
    let mut src = File::open(path).map_err(|source| Error::Open { layer, path: path.clone(), source })?;
    // A block device reports length 0 in its metadata: the virtual size is the truth.
    let total = match image.info.format {
        Format::VhdFixed => image.disk.len() + 512,
        _ => image.disk.len(),
    };
    let mut buf = vec![0u8; CHUNK];
    let mut done = 0u64;
    while done < total {
        let n = (total - done).min(CHUNK as u64) as usize;
        src.read_exact(&mut buf[..n]).map_err(|e| io(done, "reading", e))?;
        if buf[..n].iter().all(|b| *b == 0) {
            out.seek(SeekFrom::Current(n as i64)).map_err(|e| io(done, "seeking output for", e))?;
        } else {
            out.write_all(&buf[..n]).map_err(|e| io(done, "writing copy of", e))?;
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
