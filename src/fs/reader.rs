//! `Read + Seek` over a [`Disk`], with a small read cache: file-system crates do
//! many small reads of the same metadata, and every container read may have to
//! translate through a BAT.

use crate::error::Error;
use crate::image::Disk;
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::sync::Arc;

const CHUNK: u64 = 64 * 1024;
const SLOTS: usize = 16;

pub struct DiskReader {
    disk: Arc<dyn Disk>,
    pos: u64,
    /// (chunk index, bytes) in most-recently-used-first order.
    cache: Vec<(u64, Vec<u8>)>,
    /// The last error from the disk layer, kept so the file-system crates'
    /// `io::Error` can be turned back into our typed error.
    pub last_error: Option<Error>,
}

impl DiskReader {
    pub fn new(disk: Arc<dyn Disk>) -> Self {
        DiskReader { disk, pos: 0, cache: Vec::with_capacity(SLOTS), last_error: None }
    }

    fn chunk(&mut self, idx: u64) -> io::Result<&[u8]> {
        if let Some(i) = self.cache.iter().position(|(k, _)| *k == idx) {
            let e = self.cache.remove(i);
            self.cache.insert(0, e);
        } else {
            let start = idx * CHUNK;
            let len = CHUNK.min(self.disk.len() - start) as usize;
            let mut buf = vec![0u8; len];
            if let Err(e) = self.disk.read_at(start, &mut buf) {
                let msg = e.to_string();
                self.last_error = Some(e);
                return Err(io::Error::other(msg));
            }
            if self.cache.len() == SLOTS {
                self.cache.pop();
            }
            self.cache.insert(0, (idx, buf));
        }
        Ok(&self.cache[0].1)
    }
}

impl Read for DiskReader {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let len = self.disk.len();
        if self.pos >= len || buf.is_empty() {
            return Ok(0);
        }
        let want = (buf.len() as u64).min(len - self.pos) as usize;
        // Large reads (file data) bypass the cache.
        if want as u64 >= CHUNK {
            if let Err(e) = self.disk.read_at(self.pos, &mut buf[..want]) {
                let msg = e.to_string();
                self.last_error = Some(e);
                return Err(io::Error::other(msg));
            }
            self.pos += want as u64;
            return Ok(want);
        }
        let idx = self.pos / CHUNK;
        let off = (self.pos % CHUNK) as usize;
        let c = self.chunk(idx)?;
        let n = want.min(c.len() - off);
        buf[..n].copy_from_slice(&c[off..off + n]);
        self.pos += n as u64;
        Ok(n)
    }
}

impl Seek for DiskReader {
    fn seek(&mut self, pos: SeekFrom) -> io::Result<u64> {
        let new = match pos {
            SeekFrom::Start(p) => Some(p),
            SeekFrom::End(d) => self.disk.len().checked_add_signed(d),
            SeekFrom::Current(d) => self.pos.checked_add_signed(d),
        };
        match new {
            Some(p) => {
                self.pos = p;
                Ok(p)
            }
            None => Err(io::Error::new(io::ErrorKind::InvalidInput, "seek to a negative or overflowing position")),
        }
    }
}

/// fatfs wants `Write` even for reading. Every write is refused: the input is sacred.
impl Write for DiskReader {
    fn write(&mut self, _buf: &[u8]) -> io::Result<usize> {
        Err(io::Error::new(io::ErrorKind::PermissionDenied, "rdprescue opens images read-only"))
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}
