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

use crate::error::{Error, Layer, Result};
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

/// A transaction log as recovery and the overlay read it: in memory (the
/// whole loads) or read on demand through the file system (the paged load:
/// only the valid entries are read at load, and a dirty page's bytes again
/// when a chunk over it is read).
#[derive(Clone, Copy)]
pub enum LogSrc<'a> {
    Mem(&'a [u8]),
    Read { name: &'a str, read: &'a ReadAt, len: usize },
}

impl LogSrc<'_> {
    pub fn len(&self) -> usize {
        match self {
            LogSrc::Mem(b) => b.len(),
            LogSrc::Read { len, .. } => *len,
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Whether the log is in memory (a [`LogSrc::piece`] of it costs no read).
    pub fn in_memory(&self) -> bool {
        matches!(self, LogSrc::Mem(_))
    }

    /// Fill `buf` with the log's bytes at `off`. Callers ask only for bytes
    /// inside the log's length; a log that ends early (or a range outside
    /// it) is a one-line error naming the offset, never a panic.
    pub fn read_exact(&self, off: usize, buf: &mut [u8]) -> Result<()> {
        match self {
            LogSrc::Mem(b) => match off.checked_add(buf.len()).and_then(|end| b.get(off..end)) {
                Some(s) => {
                    buf.copy_from_slice(s);
                    Ok(())
                }
                None => Err(Error::corrupt(Layer::Hive, off as u64, format!("log range of {} bytes outside the {}-byte log", buf.len(), b.len()))),
            },
            LogSrc::Read { name, read, .. } => {
                let mut got = 0;
                while got < buf.len() {
                    let n = read((off + got) as u64, &mut buf[got..])?;
                    if n == 0 {
                        return Err(Error::corrupt(Layer::Hive, (off + got) as u64, format!("{name} ended early while it was being read")));
                    }
                    got += n;
                }
                Ok(())
            }
        }
    }

    /// `n` bytes at `off`: borrowed when the log is in memory, else read
    /// into `buf` (grown to `n` if shorter; the caller reuses it).
    pub fn piece<'b>(&'b self, off: usize, n: usize, buf: &'b mut Vec<u8>) -> Result<&'b [u8]> {
        if let LogSrc::Mem(b) = self {
            return off.checked_add(n).and_then(|end| b.get(off..end)).ok_or_else(|| Error::corrupt(Layer::Hive, off as u64, format!("log range of {n} bytes outside the {}-byte log", b.len())));
        }
        if buf.len() < n {
            buf.resize(n, 0);
        }
        self.read_exact(off, &mut buf[..n])?;
        Ok(&buf[..n])
    }
}

/// A transaction log a paged image keeps, to read its dirty pages from.
pub enum LogBytes {
    /// In memory (tests, or no log: empty).
    Mem(Vec<u8>),
    /// Read on demand: `read` reads the log file (`len` bytes); `name` is
    /// for error messages (the log's path).
    Read { name: String, read: ReadAt, len: usize },
}

impl LogBytes {
    pub fn src(&self) -> LogSrc<'_> {
        match self {
            LogBytes::Mem(v) => LogSrc::Mem(v),
            LogBytes::Read { name, read, len } => LogSrc::Read { name, read, len: *len },
        }
    }
}

impl Default for LogBytes {
    fn default() -> Self {
        LogBytes::Mem(Vec::new())
    }
}

/// A write of log bytes over the image: `len` bytes of log `log` at `src`
/// land at image offset `dst`; `heads` is where the write's head bytes start
/// in [`Overlay::heads`] ([`NO_HEADS`] when none were kept).
#[derive(Debug, Clone, Copy)]
struct Write {
    dst: usize,
    log: u8,
    src: usize,
    len: usize,
    heads: usize,
}

const NO_HEADS: usize = usize::MAX;

/// Unit of the overlay index, and the alignment of hbins (so every hbin
/// header is at the start of one).
pub const UNIT: usize = crate::hive::regf::hbin::ALIGN as usize;

/// Bytes at the start of every [`UNIT`] of the image whose copies a write
/// may carry ("heads": where hbin headers are, the only bytes recovery
/// itself reads of the image it rebuilds).
pub const HEAD: usize = crate::hive::regf::hbin::HEADER_LEN as usize;

/// The image ranges `(offset, length)` of a write of `len` bytes at `dst`
/// that lie in the first [`HEAD`] bytes of a [`UNIT`], in order: the bytes a
/// write's heads hold, concatenated.
pub fn head_spans(dst: usize, len: usize) -> impl Iterator<Item = (usize, usize)> {
    let end = dst.saturating_add(len);
    let first = dst / UNIT;
    let last = if len == 0 { first } else { (end - 1) / UNIT };
    (first..=last).filter_map(move |u| {
        let (lo, hi) = ((u * UNIT).max(dst), (u * UNIT + HEAD).min(end));
        (lo < hi).then(|| (lo, hi - lo))
    })
}

/// Where image byte `x` is in the heads of a write of `len` bytes at `dst`
/// (`None` when `x` is not in one of its head spans).
fn head_index(dst: usize, len: usize, x: usize) -> Option<usize> {
    let end = dst + len;
    if x < dst || x >= end || x % UNIT >= HEAD {
        return None;
    }
    let (first, u) = (dst / UNIT, x / UNIT);
    let first_len = (first * UNIT + HEAD).min(end).saturating_sub(dst.max(first * UNIT));
    Some(if u == first { x - dst.max(first * UNIT) } else { first_len + HEAD * (u - first - 1) + x % UNIT })
}

/// The log pages recovery laid over the primary, in the order applied (a
/// later write wins), indexed by the 4 KiB units they touch.
#[derive(Debug, Default)]
pub struct Overlay {
    writes: Vec<Write>,
    by_unit: Vec<Vec<u32>>,
    heads: Vec<u8>,
}

impl Overlay {
    /// Record that `len` bytes of log `log` at `src` were written at `dst`;
    /// `heads`, when given, are those bytes' [`head_spans`] (copied when the
    /// entry was read, so that recovery reads the hbin headers it walks
    /// without reading the log again).
    pub fn push(&mut self, dst: usize, log: u8, src: usize, len: usize, heads: Option<&[u8]>) {
        if len == 0 {
            return;
        }
        let i = self.writes.len() as u32;
        let heads = match heads {
            Some(h) => {
                let at = self.heads.len();
                self.heads.extend_from_slice(h);
                at
            }
            None => NO_HEADS,
        };
        self.writes.push(Write { dst, log, src, len, heads });
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

    /// Forget the head copies (they serve recovery only).
    pub fn drop_heads(&mut self) {
        self.heads = Vec::new();
        for w in &mut self.writes {
            w.heads = NO_HEADS;
        }
    }

    /// Lay the writes touching `[at, at + buf.len())` over `buf`, in order,
    /// reading their bytes from `logs` (by index). With `use_heads`, a piece
    /// inside the head of a unit is taken from the write's head copy when it
    /// has one and its log is not in memory (recovery's reads of the image).
    pub fn apply(&self, logs: &[LogSrc<'_>], at: usize, buf: &mut [u8], use_heads: bool) -> Result<()> {
        if buf.is_empty() || self.writes.is_empty() {
            return Ok(());
        }
        let end = at + buf.len();
        let (first, last) = (at / UNIT, ((end - 1) / UNIT).min(self.by_unit.len().saturating_sub(1)));
        if first >= self.by_unit.len() {
            return Ok(());
        }
        // Write `i`'s bytes over `buf`, which holds the image at `at`.
        let apply_one = |i: u32, at: usize, buf: &mut [u8]| -> Result<()> {
            let w = self.writes[i as usize];
            let (lo, hi) = (w.dst.max(at), (w.dst + w.len).min(at + buf.len()));
            if lo >= hi {
                return Ok(());
            }
            let Some(log) = logs.get(w.log as usize) else { return Ok(()) };
            if use_heads && w.heads != NO_HEADS && !log.in_memory() && lo / UNIT == (hi - 1) / UNIT && (hi - 1) % UNIT < HEAD {
                if let Some(h) = head_index(w.dst, w.len, lo).and_then(|k| self.heads.get(w.heads + k..w.heads + k + (hi - lo))) {
                    buf[lo - at..hi - at].copy_from_slice(h);
                    return Ok(());
                }
            }
            log.read_exact(w.src + (lo - w.dst), &mut buf[lo - at..hi - at])
        };
        let mut idx: Vec<u32> = if first == last {
            // One unit: its list is already in write order.
            self.by_unit[first].clone()
        } else {
            let mut v: Vec<u32> = self.by_unit[first..=last].iter().flatten().copied().collect();
            v.sort_unstable();
            v.dedup();
            v
        };
        if logs.iter().all(LogSrc::in_memory) {
            // Copies are cheap: in order, a later write over an earlier one.
            for i in idx {
                apply_one(i, at, buf)?;
            }
            return Ok(());
        }
        // Reads are not: the latest write first, and of each earlier one
        // only the bytes no later one covers (a hot page is in many entries).
        idx.reverse();
        let mut covered: Vec<(usize, usize)> = Vec::new();
        for i in idx {
            let w = self.writes[i as usize];
            let (lo, hi) = (w.dst.max(at), (w.dst + w.len).min(end));
            if lo >= hi {
                continue;
            }
            let mut from = lo;
            for &(c0, c1) in covered.iter().filter(|c| c.1 > lo && c.0 < hi) {
                if c0 > from {
                    apply_one(i, from, &mut buf[from - at..c0 - at])?;
                }
                from = from.max(c1);
            }
            if from < hi {
                apply_one(i, from, &mut buf[from - at..hi - at])?;
            }
            // Merge [lo, hi) into the sorted, disjoint covered ranges.
            let k = covered.partition_point(|c| c.1 < lo);
            let mut m = (lo, hi);
            while let Some(&c) = covered.get(k).filter(|c| c.0 <= m.1) {
                m = (m.0.min(c.0), m.1.max(c.1));
                covered.remove(k);
            }
            covered.insert(k, m);
            if covered.len() == 1 && covered[0].0 <= at && covered[0].1 >= end {
                break;
            }
        }
        Ok(())
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
    logs: [LogBytes; 2],
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
    pub fn paged(len: usize, base: Vec<u8>, read: ReadAt, file_len: usize, mut overlay: Overlay, logs: [LogBytes; 2]) -> Self {
        overlay.drop_heads();
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

    /// The 4 KiB pages of the image that may differ from the primary file,
    /// by increasing index: the base block's, every page a log write laid
    /// over, and those the file does not hold whole. `None` for a whole
    /// image (where the file's bytes are not known).
    pub fn changed_pages(&self) -> Option<Vec<usize>> {
        let p = self.paged.as_ref()?;
        let mut v = vec![0];
        v.extend(p.overlay.by_unit.iter().enumerate().filter(|(_, w)| !w.is_empty()).map(|(u, _)| u));
        v.extend(p.file_len / UNIT..self.len.div_ceil(UNIT));
        v.sort_unstable();
        v.dedup();
        v.retain(|&u| u * UNIT < self.len);
        Some(v)
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
        p.overlay.apply(&[p.logs[0].src(), p.logs[1].src()], at, buf, false)
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
    /// Each run of chunks not read yet is filled by one read (through a file
    /// handle: one read per data run of the file), not one read per chunk:
    /// with 4 KiB chunks an edited 12.8 MB hive was 3,000 reads.
    fn build(&self, p: &Paged) -> Result<Vec<u8>> {
        let mut v = crate::fs::reader::whole_buffer(self.len);
        let n = p.chunks.len();
        let mut i = 0;
        while i < n {
            let at = i * p.chunk;
            if let Some(b) = p.chunks[i].get() {
                v[at..at + b.len()].copy_from_slice(b);
                i += 1;
                continue;
            }
            let mut j = i + 1;
            while j < n && p.chunks[j].get().is_none() {
                j += 1;
            }
            Self::fill(p, at, &mut v[at..(j * p.chunk).min(self.len)])?;
            i = j;
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
            for l in std::mem::take(&mut p.logs) {
                if let LogBytes::Mem(v) = l {
                    out.push(v);
                }
            }
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
        ov.push(CHUNK - 4096, 0, 0, 8192, None);
        ov.push(CHUNK, 1, 0, 100, None);
        ov.push(3 * CHUNK + 4096, 0, 100, 4096, None);
        let len = 3 * CHUNK + 8192;
        let logs = [LogBytes::Mem(log.clone()), LogBytes::Mem(vec![5u8; 100])];
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
        // The chunks not read yet (2, 3, 4: file, overlay and growth) are
        // one run, filled by one read; an editor's copy keeps nothing.
        let before = reads.get();
        assert_eq!(h.to_vec().unwrap(), want);
        assert_eq!(reads.get(), before + 1, "one read for the run of unread chunks");
        assert_eq!(h.chunks_read(), 2);
        assert_eq!(h.whole().unwrap(), &want[..]);
        assert_eq!(reads.get(), before + 2);
        let before = reads.get();
        assert_eq!(&*h.get(3 * CHUNK, 4).unwrap().unwrap(), &want[3 * CHUNK..3 * CHUNK + 4]);
        assert_eq!(reads.get(), before, "served from the whole copy");
        assert_eq!(h.into_vec().unwrap(), want);
    }

    #[test]
    fn read_errors_are_returned_not_panicked() {
        let read: ReadAt = Box::new(|at, _| Err(Error::corrupt(Layer::Ntfs, at, "unreadable cluster")));
        let h = HiveBytes::paged(2 * CHUNK, vec![0; 4096], read, 2 * CHUNK, Overlay::default(), Default::default());
        let e = h.get(CHUNK + 5, 4).unwrap_err();
        assert!(e.to_string().contains("unreadable cluster"), "{e}");
        assert!(h.whole().is_err());
    }

    /// A log read through a reader: the same bytes as from memory, one read
    /// per write piece; a log read error is returned; head copies serve
    /// only recovery's reads (`use_heads`) and only for logs not in memory.
    #[test]
    fn logs_read_on_demand_and_heads() {
        let log: Vec<u8> = (0..20_000).map(|i| (i * 13 % 241) as u8).collect();
        let l = Rc::new(log.clone());
        let reads = Rc::new(std::cell::Cell::new(0));
        let (l2, r2) = (l.clone(), reads.clone());
        let read: ReadAt = Box::new(move |at, buf| {
            r2.set(r2.get() + 1);
            let at = (at as usize).min(l2.len());
            let n = buf.len().min(l2.len() - at);
            buf[..n].copy_from_slice(&l2[at..at + n]);
            Ok(n)
        });
        // Writes at odd places: unaligned, across units, inside a head.
        let writes = [(4096 + 10, 100, 9000), (3 * 4096 - 5, 7000, 4097), (5 * 4096 + 3, 200, 20), (8 * 4096, 1, 1)];
        let mut ov = Overlay::default();
        let mut fake = Overlay::default();
        for &(dst, src, len) in &writes {
            let heads: Vec<u8> = head_spans(dst, len).flat_map(|(x, n)| log[src + x - dst..src + x - dst + n].to_vec()).collect();
            ov.push(dst, 1, src, len, Some(&heads));
            // The same writes with wrong head copies: must never be used
            // outside recovery's reads.
            fake.push(dst, 1, src, len, Some(&vec![0xEE; heads.len()]));
        }
        let mut want = vec![0u8; 10 * 4096];
        for &(dst, src, len) in &writes {
            want[dst..dst + len].copy_from_slice(&log[src..src + len]);
        }
        let mem = [LogSrc::Mem(&[]), LogSrc::Mem(&log)];
        let file = [LogSrc::Mem(&[]), LogSrc::Read { name: "LOG2", read: &read, len: log.len() }];
        for (srcs, o) in [(&mem, &ov), (&file, &ov), (&mem, &fake), (&file, &fake)] {
            let mut got = vec![0u8; want.len()];
            o.apply(srcs, 0, &mut got, false).unwrap();
            assert!(got == want);
        }
        // Recovery's reads: every head-sized piece of every unit, served
        // from the head copies without a read; a piece running past a head
        // reads the log.
        let before = reads.get();
        for (off, n) in [(0, HEAD), (20, 8), (31, 1), (0, 40)] {
            for u in 0..10 {
                let at = u * 4096 + off;
                let mut got = vec![0u8; n];
                ov.apply(&file, at, &mut got, true).unwrap();
                assert_eq!(got, &want[at..at + n], "unit {u} +{off} {n}");
            }
            assert_eq!(reads.get() > before, n > HEAD, "{off} {n}");
        }
        // Of writes over the same bytes only the latest is read.
        let mut twice = Overlay::default();
        twice.push(100, 1, 0, 5000, None);
        twice.push(50, 1, 7000, 6000, None);
        twice.push(3000, 1, 300, 100, None);
        let (mut a, mut b) = (vec![0u8; 8192], vec![0u8; 8192]);
        twice.apply(&mem, 0, &mut a, false).unwrap();
        let before = reads.get();
        twice.apply(&file, 0, &mut b, false).unwrap();
        assert!(a == b);
        assert_eq!(reads.get() - before, 3, "the first write is not read: the second covers it");
        assert_eq!(&b[3000..3100], &log[300..400]);
        assert_eq!(&b[50..3000], &log[7000..9950]);
        // A log that ends early, or a read error, is an error.
        let short = [LogSrc::Mem(&[]), LogSrc::Read { name: "LOG2", read: &read, len: log.len() }];
        let mut cut = Overlay::default();
        cut.push(0, 1, 19_990, 100, None);
        let e = cut.apply(&short, 0, &mut [0u8; 100], false).unwrap_err();
        assert!(e.to_string().contains("LOG2 ended early"), "{e}");
        let bad: ReadAt = Box::new(|at, _| Err(Error::corrupt(Layer::Ntfs, at, "unreadable cluster")));
        let e = ov.apply(&[LogSrc::Mem(&[]), LogSrc::Read { name: "LOG2", read: &bad, len: 1 << 20 }], 4096, &mut [0u8; 4096], false).unwrap_err();
        assert!(e.to_string().contains("unreadable cluster"), "{e}");
        let e = cut.apply(&[LogSrc::Mem(&[]), LogSrc::Mem(&log[..100])], 0, &mut [0u8; 100], false).unwrap_err();
        assert!(e.to_string().contains("outside"), "{e}");
    }

    #[test]
    fn head_index_walks_the_head_spans() {
        for (dst, len) in [(0, 1), (0, 4096), (31, 2), (32, 4064), (100, 10_000), (4095, 2), (8192, 32), (8191, 34), (5, 0)] {
            let mut k = 0;
            for (x, n) in head_spans(dst, len) {
                for y in x..x + n {
                    assert_eq!(head_index(dst, len, y), Some(k), "{dst} {len} {y}");
                    k += 1;
                }
            }
            assert_eq!(head_index(dst, len, dst + len), None);
            for x in dst..dst + len {
                assert_eq!(head_index(dst, len, x).is_some(), x % UNIT < HEAD);
            }
        }
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
    use std::rc::Rc;

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
        // The logs through readers that count the bytes read and the
        // farthest offset.
        let log_read = Rc::new(std::cell::Cell::new((0usize, 0usize)));
        let reader = |name: &str, log: Vec<u8>| {
            let (len, c) = (log.len(), log_read.clone());
            let read: ReadAt = Box::new(move |at, buf| {
                let at = (at as usize).min(log.len());
                let n = buf.len().min(log.len() - at);
                buf[..n].copy_from_slice(&log[at..at + n]);
                let (total, far) = c.get();
                c.set((total + n, far.max(at + n)));
                Ok(n)
            });
            LogBytes::Read { name: name.into(), read, len }
        };
        let (l1len, l2len) = (log1.len(), log2.len());
        let (data, report) = crate::hive::load_paged(at, scan, Some(reader("SYSTEM.LOG1", log1)), Some(reader("SYSTEM.LOG2", log2))).unwrap();
        assert_eq!(format!("{report:?}"), format!("{:?}", whole.report));
        // The file was streamed once; recovery read nothing more of it.
        assert_eq!((reads.get(), streamed.get()), (0, 1));
        // Of the logs (3.2 MB each), only the valid entries were read (57 KB
        // of LOG1, 2.7 MB of LOG2), each byte once.
        let (log_bytes, _) = log_read.get();
        assert!(log_bytes < 2_800_000, "{log_bytes} of {} log bytes read", l1len + l2len);
        log_read.set((0, 0));
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
        // The key lookup read some dirty pages from the logs, no more.
        let (after, _) = log_read.get();
        assert!(after > 0 && after <= chunks * CHUNK, "{after} log bytes for {chunks} chunks");
        assert_eq!(paged.bytes().unwrap(), full.bytes().unwrap());
    }
}
