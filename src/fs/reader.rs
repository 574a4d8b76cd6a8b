//! `Read + Seek` over a [`Disk`], with a small read cache: file-system crates do
//! many small reads of the same metadata, and every container read may have to
//! translate through a BAT.

use crate::error::{Error, Layer};
use crate::image::Disk;
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

const CHUNK: u64 = 64 * 1024;
const SLOTS: usize = 16;
/// Reads of at least this many bytes go straight to the disk, not through the
/// cache: file data (through the cache each would cost a 64 KiB read and a
/// second copy; the hive chunks of `hive::pages` bypass this reader
/// altogether through an NTFS file handle). The file-system crates' metadata
/// reads (MFT records, index records, FAT sectors) are smaller and stay
/// cached.
const BYPASS: usize = 16 * 1024;

/// Read calls allowed for one file-system operation (a lookup, or a lookup and
/// a file read). Far above any real need (a 100 MB file fragmented into 4 KiB
/// runs takes ~25 000), it stops the parser crates from looping forever over
/// cyclic on-disk structures (an index B-tree node that is its own child, a
/// cyclic attribute list or cluster chain): every such loop reads.
pub const DEFAULT_FUEL: u64 = 250_000;

pub struct DiskReader {
    disk: Arc<dyn Disk>,
    pos: u64,
    /// (chunk index, bytes) in most-recently-used-first order.
    cache: Vec<(u64, Vec<u8>)>,
    /// The last error from the disk layer, kept so the file-system crates'
    /// `io::Error` can be turned back into our typed error.
    pub last_error: Option<Error>,
    fuel: Fuel,
    /// For error messages: the file system being read and where its volume starts.
    layer: Layer,
    base: u64,
}

/// The read budget of a [`DiskReader`], shareable with the code that drives the
/// parser crate (fatfs keeps the reader to itself).
#[derive(Clone)]
pub struct Fuel(Arc<AtomicU64>);

impl Fuel {
    /// Reset the budget; called at the start of every file-system operation.
    pub fn refuel(&self) {
        self.0.store(DEFAULT_FUEL, Ordering::Relaxed);
    }
}

impl DiskReader {
    /// A reader over volume `disk`, which starts at byte `base` of the image and
    /// holds a file system of `layer` (used in error messages).
    pub fn new(disk: Arc<dyn Disk>, layer: Layer, base: u64) -> Self {
        DiskReader {
            disk,
            pos: 0,
            cache: Vec::with_capacity(SLOTS),
            last_error: None,
            fuel: Fuel(Arc::new(AtomicU64::new(DEFAULT_FUEL))),
            layer,
            base,
        }
    }

    /// Reset the read budget; called at the start of every file-system operation.
    pub fn refuel(&mut self) {
        self.fuel.refuel();
        self.last_error = None;
    }

    /// The volume this reader reads (for handles that read file data
    /// straight from it: [`crate::fs::FileRead`]).
    pub fn disk(&self) -> &Arc<dyn Disk> {
        &self.disk
    }

    pub fn fuel(&self) -> Fuel {
        self.fuel.clone()
    }

    fn burn(&mut self) -> io::Result<()> {
        if self.fuel.0.fetch_update(Ordering::Relaxed, Ordering::Relaxed, |f| f.checked_sub(1)).is_err() {
            let e = Error::corrupt(
                self.layer,
                self.base.saturating_add(self.pos),
                format!("on-disk structures loop (read budget of {DEFAULT_FUEL} reads exhausted)"),
            );
            let msg = e.to_string();
            self.last_error = Some(e);
            return Err(io::Error::other(msg));
        }
        Ok(())
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
        self.burn()?;
        let want = (buf.len() as u64).min(len - self.pos) as usize;
        // Large reads (file data, hive chunks) bypass the cache.
        if want >= BYPASS {
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

// ---- whole-file buffers, recycled per thread ----
//
// `audit` reads the same-sized hives and logs (tens of MB) image after image
// on each worker thread. A fresh buffer faults in every page (a fault per
// 4 KiB, zeroed by the kernel, and concurrent faults of two workers contend
// on the process's memory map); a buffer kept from the previous image is
// already mapped. The pool is per thread, holds at most SPARE_MAX buffers
// and SPARE_BYTES bytes, and is filled only by an explicit `recycle`.

const SPARE_MAX: usize = 4;
pub(crate) const SPARE_BYTES: usize = 256 << 20;

thread_local! {
    static SPARE: std::cell::RefCell<Vec<Vec<u8>>> = const { std::cell::RefCell::new(Vec::new()) };
}

/// A vector of exactly `len` initialized bytes for a whole-file read that
/// overwrites all of them: a recycled buffer of this thread when one is large
/// enough (its old bytes are left for the read to overwrite: no memset), else
/// a fresh zeroed one (calloc: pages come from the kernel untouched).
pub fn whole_buffer(len: usize) -> Vec<u8> {
    let recycled = SPARE.with(|s| {
        let mut s = s.borrow_mut();
        let best = s.iter().enumerate().filter(|(_, v)| v.capacity() >= len).min_by_key(|(_, v)| v.capacity()).map(|(i, _)| i)?;
        Some(s.swap_remove(best))
    });
    match recycled {
        Some(mut v) => {
            v.truncate(len);
            v.resize(len, 0);
            v
        }
        None => vec![0u8; len],
    }
}

/// Give a whole-file buffer back for [`whole_buffer`] on this thread (kept
/// only while the pool has room; small buffers are not worth keeping).
pub fn recycle(v: Vec<u8>) {
    if v.capacity() < 1 << 20 {
        return;
    }
    SPARE.with(|s| {
        let mut s = s.borrow_mut();
        let held: usize = s.iter().map(|b| b.capacity()).sum();
        if s.len() < SPARE_MAX && held + v.capacity() <= SPARE_BYTES {
            s.push(v);
        }
    });
}

#[cfg(test)]
mod spare_tests {
    use super::*;

    #[test]
    fn recycled_buffers_are_reused_and_sized_exactly() {
        let a = whole_buffer(2 << 20);
        assert_eq!(a.len(), 2 << 20);
        assert!(a.iter().all(|&b| b == 0));
        let mut a = a;
        a[0] = 7;
        let ptr = a.as_ptr();
        recycle(a);
        // A smaller read reuses it, with exactly the length asked for.
        let b = whole_buffer(1 << 20);
        assert_eq!(b.as_ptr(), ptr);
        assert_eq!(b.len(), 1 << 20);
        recycle(b);
        // A larger one than any spare gets a fresh, zeroed buffer.
        let c = whole_buffer(3 << 20);
        assert_ne!(c.as_ptr(), ptr);
        assert!(c.iter().all(|&b| b == 0));
        // Small buffers are not kept.
        recycle(vec![1u8; 100]);
        assert_eq!(SPARE.with(|s| s.borrow().len()), 1);
    }
}
