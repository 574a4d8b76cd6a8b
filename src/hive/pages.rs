//! The bytes behind a loaded hive, read on demand.
//!
//! `inspect` touches a few hundred KiB of a hive of tens of MB; reading the
//! whole file puts every byte into fresh memory (page-cache copy, a page
//! fault and kernel zeroing per 4 KiB, unmapping at exit), which was most of
//! its time. A [`HiveBytes`] is either the whole image in one vector (what
//! hive editing, export, diff and the tests want) or a page store: the hive
//! file is read in [`CHUNK`]-byte chunks through the file-system layer the
//! first time a cell in one is read, the (recovered) base block and the
//! log-recovered pages ([`Overlay`]) laid over them. [`HiveBytes::whole`]
//! gives the whole image (reads the rest once) to whoever needs it.
//!
//! Bounded: a chunk is at most [`CHUNK`] bytes and only chunks inside the
//! image length exist, so the store never holds more than the image (plus the
//! whole copy, once asked for). A failed read is the file system's one-line
//! error, returned by the read that needed it; nothing panics.

use crate::error::Result;
use std::borrow::Cow;
use std::cell::OnceCell;

/// Byte ranges of a hive image (file offsets: base block at 0).
pub trait Src {
    /// The `len` bytes at `off`, or `None` when the range runs past the end.
    /// Only a failed read of the underlying file is an error.
    fn get(&self, off: usize, len: usize) -> Result<Option<Cow<'_, [u8]>>>;
}

impl Src for [u8] {
    fn get(&self, off: usize, len: usize) -> Result<Option<Cow<'_, [u8]>>> {
        Ok(off.checked_add(len).and_then(|end| <[u8]>::get(self, off..end)).map(Cow::Borrowed))
    }
}

/// Bytes read per chunk. `inspect` on the Windows 10 SYSTEM hive of
/// big127-dirty (12.8 MB, 3,075 pages of 4 KiB) touches 319 distinct 4 KiB
/// pages (1.3 MB): 152 chunks of 16 KiB (2.4 MB), 78 of 64 KiB (5.1 MB).
/// A chunk read goes through a file handle (`fs::open_read`: no path lookup
/// per read), so reading only the pages needed pays: perf stat -r 30/50 of
/// `inspect --json` on big127-dirty, five interleaved rounds at load ~4.8,
/// task-clock 16.8 ms (16 KiB), 16.3 ms (8 KiB), 16.1 ms (4 KiB); page
/// faults 3,225 / 3,052 / 2,944; `diff --all` big127 vs big4 (whole hives
/// read chunk by chunk) 56.6 / 56.4 / 57.7 ms, within noise.
pub const CHUNK: usize = 4 * 1024;

/// Reads `buf.len()` bytes of the hive file at an offset (short only at its end).
pub type ReadAt = Box<dyn Fn(u64, &mut [u8]) -> Result<usize>>;

/// A write of log bytes over the image: `len` bytes of log `log` at `src`
/// land at image offset `dst`.
#[derive(Debug, Clone, Copy)]
struct Write {
    dst: usize,
    log: u8,
    src: usize,
    len: usize,
}

/// Unit of the overlay index.
const UNIT: usize = 4096;

/// The log pages recovery laid over the primary, in the order applied (a
/// later write wins), indexed by the 4 KiB units they touch.
#[derive(Debug, Default)]
pub struct Overlay {
    writes: Vec<Write>,
    by_unit: Vec<Vec<u32>>,
}

impl Overlay {
    /// Record that `len` bytes of log `log` at `src` were written at `dst`.
    pub fn push(&mut self, dst: usize, log: u8, src: usize, len: usize) {
        if len == 0 {
            return;
        }
        let i = self.writes.len() as u32;
        self.writes.push(Write { dst, log, src, len });
        let (first, last) = (dst / UNIT, (dst + len - 1) / UNIT);
        if self.by_unit.len() <= last {
            self.by_unit.resize_with(last + 1, Vec::new);
        }
        for u in &mut self.by_unit[first..=last] {
            u.push(i);
        }
    }

    pub fn is_empty(&self) -> bool {
        self.writes.is_empty()
    }

    /// Lay the writes touching `[at, at + buf.len())` over `buf`, in order.
    pub fn apply(&self, logs: &[&[u8]], at: usize, buf: &mut [u8]) {
        if buf.is_empty() || self.writes.is_empty() {
            return;
        }
        let end = at + buf.len();
        let (first, last) = (at / UNIT, ((end - 1) / UNIT).min(self.by_unit.len().saturating_sub(1)));
        if first >= self.by_unit.len() {
            return;
        }
        let mut idx: Vec<u32> = self.by_unit[first..=last].iter().flatten().copied().collect();
        idx.sort_unstable();
        idx.dedup();
        for i in idx {
            let w = self.writes[i as usize];
            let (lo, hi) = (w.dst.max(at), (w.dst + w.len).min(end));
            if lo >= hi {
                continue;
            }
            let Some(log) = logs.get(w.log as usize) else { continue };
            if let Some(s) = log.get(w.src + (lo - w.dst)..w.src + (hi - w.dst)) {
                buf[lo - at..hi - at].copy_from_slice(s);
            }
        }
    }
}

/// A paged hive image: see the module documentation.
pub struct Paged {
    /// Chunk size ([`CHUNK`]; smaller in tests).
    chunk: usize,
    /// The image's base block (as recovered).
    base: Vec<u8>,
    read: ReadAt,
    /// Length of the primary file; image bytes past it read as zeros
    /// unless a log page supplied them.
    file_len: usize,
    chunks: Vec<OnceCell<Box<[u8]>>>,
    overlay: Overlay,
    logs: Vec<Vec<u8>>,
}

/// The bytes of a loaded hive image.
pub struct HiveBytes {
    len: usize,
    whole: OnceCell<Vec<u8>>,
    paged: Option<Paged>,
}

impl std::fmt::Debug for HiveBytes {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "HiveBytes({} bytes, {})", self.len, if self.paged.is_some() { "paged" } else { "whole" })
    }
}

impl HiveBytes {
    /// The whole image, in memory.
    pub fn whole_vec(v: Vec<u8>) -> Self {
        let len = v.len();
        let whole = OnceCell::new();
        let _ = whole.set(v);
        HiveBytes { len, whole, paged: None }
    }

    /// An image of `len` bytes read on demand from a primary file of
    /// `file_len` bytes, with `base` as its base block and `overlay` (pages
    /// of `logs`) laid over it.
    pub fn paged(len: usize, base: Vec<u8>, read: ReadAt, file_len: usize, overlay: Overlay, logs: Vec<Vec<u8>>) -> Self {
        let chunk = CHUNK;
        let chunks = (0..len.div_ceil(chunk)).map(|_| OnceCell::new()).collect();
        HiveBytes { len, whole: OnceCell::new(), paged: Some(Paged { chunk, base, read, file_len, chunks, overlay, logs }) }
    }

    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// How many chunks have been read (for measurements and tests).
    pub fn chunks_read(&self) -> usize {
        self.paged.as_ref().map_or(0, |p| p.chunks.iter().filter(|c| c.get().is_some()).count())
    }

    /// Fill `buf` with image bytes at `at` (inside the image) from the file,
    /// the base block and the overlay.
    fn fill(p: &Paged, at: usize, buf: &mut [u8]) -> Result<()> {
        let end = at + buf.len();
        let from_file = end.min(p.file_len).saturating_sub(at);
        let mut got = 0;
        while got < from_file {
            let n = (p.read)((at + got) as u64, &mut buf[got..from_file])?;
            if n == 0 {
                break;
            }
            got += n;
        }
        buf[got..].fill(0);
        if at < p.base.len() {
            let n = (p.base.len() - at).min(buf.len());
            buf[..n].copy_from_slice(&p.base[at..at + n]);
        }
        let logs: Vec<&[u8]> = p.logs.iter().map(Vec::as_slice).collect();
        p.overlay.apply(&logs, at, buf);
        Ok(())
    }

    fn chunk<'a>(&self, p: &'a Paged, i: usize) -> Result<&'a [u8]> {
        let cell = &p.chunks[i];
        if let Some(c) = cell.get() {
            return Ok(c);
        }
        let at = i * p.chunk;
        let mut buf = vec![0u8; p.chunk.min(self.len - at)].into_boxed_slice();
        Self::fill(p, at, &mut buf)?;
        Ok(cell.get_or_init(|| buf))
    }

    /// The whole image: reads what was not read yet, once.
    pub fn whole(&self) -> Result<&[u8]> {
        if let Some(w) = self.whole.get() {
            return Ok(w);
        }
        let Some(p) = &self.paged else { return Ok(&[]) };
        let v = self.build(p)?;
        Ok(self.whole.get_or_init(|| v))
    }

    /// The whole image in a vector of the caller's (the hive editor's):
    /// built like [`HiveBytes::whole`] but not kept, so a paged hive that is
    /// edited is put into fresh memory once, not twice.
    pub fn to_vec(&self) -> Result<Vec<u8>> {
        if let Some(w) = self.whole.get() {
            return Ok(w.clone());
        }
        let Some(p) = &self.paged else { return Ok(Vec::new()) };
        self.build(p)
    }

    /// The chunks read so far, the rest read from the file, the overlay laid over it.
    fn build(&self, p: &Paged) -> Result<Vec<u8>> {
        let mut v = crate::fs::reader::whole_buffer(self.len);
        for (i, c) in p.chunks.iter().enumerate() {
            let at = i * p.chunk;
            let part = &mut v[at..(at + p.chunk).min(self.len)];
            match c.get() {
                Some(b) => part.copy_from_slice(b),
                None => Self::fill(p, at, part)?,
            }
        }
        Ok(v)
    }

    /// The whole image as an owned vector.
    pub fn into_vec(self) -> Result<Vec<u8>> {
        self.whole()?;
        Ok(self.whole.into_inner().unwrap_or_default())
    }

    /// The buffers this image holds, for the per-thread pool (audit).
    pub fn into_buffers(self) -> Vec<Vec<u8>> {
        let mut out: Vec<Vec<u8>> = self.whole.into_inner().into_iter().collect();
        if let Some(mut p) = self.paged {
            out.extend(std::mem::take(&mut p.logs));
        }
        out
    }
}

/// `RDPRESCUE_PAGE_TRACE=1`: each paged hive, when dropped, names on stderr
/// the chunks it read (`page-trace: file-len N chunk C offsets a,b,...`), for
/// bench/inspect-vs-dissect.sh's needed-bytes floor.
impl Drop for Paged {
    fn drop(&mut self) {
        if std::env::var_os("RDPRESCUE_PAGE_TRACE").is_some() {
            let offs: Vec<String> = self.chunks.iter().enumerate().filter(|(_, c)| c.get().is_some()).map(|(i, _)| (i * self.chunk).to_string()).collect();
            eprintln!("page-trace: file-len {} chunk {} offsets {}", self.file_len, self.chunk, offs.join(","));
        }
    }
}

impl Src for HiveBytes {
    fn get(&self, off: usize, len: usize) -> Result<Option<Cow<'_, [u8]>>> {
        let Some(end) = off.checked_add(len).filter(|&e| e <= self.len) else { return Ok(None) };
        if let Some(w) = self.whole.get() {
            return Ok(Some(Cow::Borrowed(&w[off..end])));
        }
        let Some(p) = &self.paged else { return Ok(None) };
        if len == 0 {
            return Ok(Some(Cow::Borrowed(&[])));
        }
        let cs = p.chunk;
        let (first, last) = (off / cs, (end - 1) / cs);
        if first == last {
            let c = self.chunk(p, first)?;
            return Ok(Some(Cow::Borrowed(&c[off - first * cs..end - first * cs])));
        }
        // A cell across a chunk boundary: copied out of the chunks.
        let mut v = Vec::with_capacity(len);
        for i in first..=last {
            let c = self.chunk(p, i)?;
            let (lo, hi) = (off.max(i * cs) - i * cs, end.min((i + 1) * cs) - i * cs);
            v.extend_from_slice(&c[lo..hi]);
        }
        Ok(Some(Cow::Owned(v)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::{Error, Layer};
    use std::rc::Rc;

    fn file(n: usize) -> Vec<u8> {
        (0..n).map(|i| (i * 7 % 251) as u8).collect()
    }

    #[test]
    fn pages_read_on_demand_match_the_whole_image() {
        let f = Rc::new(file(3 * CHUNK + 1000));
        let reads = Rc::new(std::cell::Cell::new(0));
        let (f2, r2) = (f.clone(), reads.clone());
        let read: ReadAt = Box::new(move |at, buf| {
            r2.set(r2.get() + 1);
            let at = at as usize;
            let n = buf.len().min(f2.len().saturating_sub(at));
            buf[..n].copy_from_slice(&f2[at..at + n]);
            Ok(n)
        });
        let mut base = f[..4096].to_vec();
        base[0] = 0xaa;
        let log = vec![9u8; 8192];
        let mut ov = Overlay::default();
        // Two writes over one range: the later wins; one crosses a chunk
        // boundary; one lies past the end of the file (growth).
        ov.push(CHUNK - 4096, 0, 0, 8192);
        ov.push(CHUNK, 1, 0, 100);
        ov.push(3 * CHUNK + 4096, 0, 100, 4096);
        let len = 3 * CHUNK + 8192;
        let logs = vec![log.clone(), vec![5u8; 100]];
        let h = HiveBytes::paged(len, base.clone(), read, f.len(), ov, logs);
        // The expected image, built the simple way.
        let mut want = f.to_vec();
        want.resize(len, 0);
        want[..4096].copy_from_slice(&base);
        want[CHUNK - 4096..CHUNK + 4096].fill(9);
        want[CHUNK..CHUNK + 100].fill(5);
        want[3 * CHUNK + 4096..3 * CHUNK + 8192].fill(9);
        assert_eq!(&*h.get(0, 8).unwrap().unwrap(), &want[..8]);
        assert_eq!(h.chunks_read(), 1);
        let across = h.get(CHUNK - 10, 20).unwrap().unwrap();
        assert!(matches!(across, Cow::Owned(_)));
        assert_eq!(&*across, &want[CHUNK - 10..CHUNK + 10]);
        assert_eq!(h.chunks_read(), 2);
        assert!(h.get(len - 1, 2).unwrap().is_none());
        assert!(h.get(usize::MAX, 2).unwrap().is_none());
        assert_eq!(h.whole().unwrap(), &want[..]);
        let before = reads.get();
        assert_eq!(&*h.get(3 * CHUNK, 4).unwrap().unwrap(), &want[3 * CHUNK..3 * CHUNK + 4]);
        assert_eq!(reads.get(), before, "served from the whole copy");
        assert_eq!(h.into_vec().unwrap(), want);
    }

    #[test]
    fn read_errors_are_returned_not_panicked() {
        let read: ReadAt = Box::new(|at, _| Err(Error::corrupt(Layer::Ntfs, at, "unreadable cluster")));
        let h = HiveBytes::paged(2 * CHUNK, vec![0; 4096], read, 2 * CHUNK, Overlay::default(), vec![]);
        let e = h.get(CHUNK + 5, 4).unwrap_err();
        assert!(e.to_string().contains("unreadable cluster"), "{e}");
        assert!(h.whole().is_err());
    }
}

/// The real dirty Windows 10 SYSTEM hive (../shared/data), loaded paged and
/// whole: the same recovered image byte for byte, the same keys, and a key
/// lookup that reads a small part of the file.
#[cfg(test)]
mod real_hive {
    use super::*;
    use crate::error::{Error, Layer};
    use crate::hive::tree::Hive;
    use std::path::Path;

    #[test]
    #[cfg_attr(not(shared_data), ignore = "needs ../shared/data")]
    fn paged_and_whole_loads_agree_on_the_dirty_win10_system() {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/data/hives/win10-1709-dirty");
        let read = |n: &str| std::fs::read(dir.join(n)).unwrap_or_else(|e| panic!("{n}: {e}"));
        let (primary, log1, log2) = (read("SYSTEM"), read("SYSTEM.LOG1"), read("SYSTEM.LOG2"));
        let whole = crate::hive::load(primary.clone(), Some(log1.clone()), Some(log2.clone())).unwrap();
        assert_eq!(whole.report.state, crate::hive::HiveState::Recovered);
        let file = std::rc::Rc::new(primary);
        let f = file.clone();
        let reads = std::rc::Rc::new(std::cell::Cell::new(0usize));
        let r = reads.clone();
        let at: ReadAt = Box::new(move |at, buf| {
            r.set(r.get() + buf.len());
            let at = at as usize;
            let n = buf.len().min(f.len().saturating_sub(at));
            buf[..n].copy_from_slice(&f[at..at + n]);
            Ok(n)
        });
        let streamed = std::cell::Cell::new(0usize);
        let stream = |w: &mut dyn std::io::Write| {
            streamed.set(streamed.get() + 1);
            w.write_all(&file).map_err(|e| Error::corrupt(Layer::Hive, 0, e.to_string()))?;
            Ok(file.len() as u64)
        };
        let scan = crate::hive::scan_primary(&stream, file.len()).unwrap();
        let (data, report) = crate::hive::load_paged(at, scan, Some(log1), Some(log2)).unwrap();
        assert_eq!(format!("{report:?}"), format!("{:?}", whole.report));
        // The file was streamed once; recovery read nothing more of it.
        assert_eq!((reads.get(), streamed.get()), (0, 1));
        let after_load = reads.get();
        let paged = Hive::from_parts("SYSTEM", data, report);
        let key = r"ControlSet001\Control\Terminal Server";
        let a = paged.key(key).unwrap();
        let chunks = paged.chunks_read();
        assert!(chunks > 0 && chunks * CHUNK < paged.len() / 4, "{chunks} chunks of {} bytes", paged.len());
        assert_eq!(reads.get() - after_load, chunks * CHUNK, "only the touched chunks were read");
        let full = Hive::new("SYSTEM", whole);
        let b = full.key(key).unwrap();
        assert_eq!(serde_json::to_string(&a).unwrap(), serde_json::to_string(&b).unwrap());
        assert_eq!(paged.last_write(key), full.last_write(key));
        assert_eq!(paged.bytes().unwrap(), full.bytes().unwrap());
    }
}
