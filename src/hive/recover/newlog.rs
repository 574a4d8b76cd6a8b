//! New-format transaction logs (Windows 8.1 / Server 2012 R2 and later): a
//! 512-byte base-block copy with file type 6, then HvLE entries (formats.md B.2).
//!
//! The log is read entry by entry through one reused buffer of at most
//! [`PIECE`] bytes (an entry of any size is hashed piece by piece), and only
//! up to where the chain of entries ends: the unused tail of a log (most of
//! a Windows log file) is never read. An entry keeps its page references and
//! where its page bytes are in the log, not the bytes; and a copy of the
//! bytes of its pages that recovery itself reads again (the first 32 bytes
//! of every 4 KiB unit of the image, where hbin headers are), so that
//! walking the recovered hbin chain reads nothing from the log.

use super::base::{Fields, BASE_BLOCK_LEN, HBIN_ALIGN, LOG_BASE_LEN};
use super::marvin32::{marvin32, Marvin32, HVLE_SEED};
use crate::bytes::{le_u32, le_u64};
use crate::error::Result;
use crate::hive::pages::{head_spans, LogSrc};

const ENTRY_HEADER_LEN: usize = 40;

/// Largest piece of a log read at once into the reused buffer.
pub const PIECE: usize = 128 * 1024;

/// One validated HvLE entry. Every page reference lies inside `hbins` and every
/// page's bytes inside the entry, so applying it cannot fail half-way.
#[derive(Debug, Clone)]
pub struct Entry {
    pub seq: u32,
    pub flags: u32,
    /// Hive bins data size after this entry.
    pub hbins: u32,
    /// Entry size in bytes (a multiple of 512).
    pub size: usize,
    /// The page references (8 bytes each: offset, size).
    refs: Vec<u8>,
    /// Log-file offset of the first page's bytes.
    data: usize,
    /// The pages' head bytes ([`head_spans`]), page after page.
    heads: Vec<u8>,
}

/// A page of an entry: `len` bytes of the log at `src` for hive-bins offset
/// `rel`, and its head bytes.
#[derive(Debug, Clone, Copy)]
pub struct Page<'e> {
    pub rel: usize,
    pub src: usize,
    pub len: usize,
    pub heads: &'e [u8],
}

/// How many head bytes a page of `len` bytes at hive-bins offset `rel` has.
fn heads_len(rel: usize, len: usize) -> usize {
    head_spans(BASE_BLOCK_LEN + rel, len).map(|(_, n)| n).sum()
}

impl Entry {
    /// The pages in reference order.
    pub fn pages(&self) -> impl Iterator<Item = Page<'_>> + '_ {
        let (mut pos, mut h) = (self.data, 0usize);
        self.refs.chunks_exact(8).map(move |r| {
            let (rel, len) = (le_u32(r, 0) as usize, le_u32(r, 4) as usize);
            let n = heads_len(rel, len);
            let p = Page { rel, src: pos, len, heads: self.heads.get(h..h + n).unwrap_or_default() };
            pos += len;
            h += n;
            p
        })
    }
}

/// A parsed new-format log: its base block and the chain of consecutive valid
/// entries that starts at the base-block sequence number.
#[derive(Debug)]
pub struct NewLog {
    /// The 512-byte base-block copy.
    pub base: Vec<u8>,
    pub fields: Fields,
    pub entries: Vec<Entry>,
    /// Set when the chain ended at an entry that carries the expected sequence
    /// number but is damaged (torn write, bad hash, bad field); a chain that
    /// just runs into a non-HvLE sector, an older entry or the end of the file
    /// ends cleanly and leaves this `None`.
    pub damaged: Option<String>,
    /// Where the first entry was expected, when the chain is empty and the
    /// reason is not damage: what was found there.
    pub empty_reason: Option<String>,
}

impl NewLog {
    pub fn base_seq(&self) -> u32 {
        self.fields.seq1
    }
    pub fn last_seq(&self) -> Option<u32> {
        self.entries.last().map(|e| e.seq)
    }
}

enum Stop {
    /// Not an entry of this chain: the chain ends here normally.
    End(String),
    /// An entry of this chain that is damaged: recovery stops before it.
    Bad(String),
}

thread_local! {
    /// The reused buffer entries are read through (one per thread, kept
    /// between hives: the second hive's logs fault in no fresh pages).
    static BUF: std::cell::RefCell<Vec<u8>> = const { std::cell::RefCell::new(Vec::new()) };
}

/// Parse the entry chain of a log whose base block `base` (its first 512
/// bytes, giving `fields`) has already been checked (`base::check_log_base`,
/// file type 6). Entries whose hive-bins size exceeds `hbins_limit` count as
/// damaged. Only a failed read of the log is an error.
pub fn parse(log: LogSrc<'_>, base: Vec<u8>, fields: Fields, hbins_limit: u32) -> Result<NewLog> {
    let mut buf = BUF.with(|b| std::mem::take(&mut *b.borrow_mut()));
    let out = parse_with(log, base, fields, hbins_limit, &mut buf);
    buf.truncate(PIECE);
    BUF.with(|b| *b.borrow_mut() = buf);
    out
}

fn parse_with(log: LogSrc<'_>, base: Vec<u8>, fields: Fields, hbins_limit: u32, buf: &mut Vec<u8>) -> Result<NewLog> {
    let mut out = NewLog { base, fields, entries: Vec::new(), damaged: None, empty_reason: None };
    let mut off = LOG_BASE_LEN;
    let mut expected = fields.seq1;
    // The header of the entry at `off`, when the read of the one before
    // brought it along.
    let mut next = None;
    // Every entry is at least 512 bytes, so this loop runs at most len/512 times.
    loop {
        match parse_entry(&log, off, expected, hbins_limit, buf, &mut next)? {
            Ok(e) => {
                off += e.size;
                out.entries.push(e);
                expected = expected.wrapping_add(1);
            }
            Err(Stop::End(why)) => {
                if out.entries.is_empty() {
                    out.empty_reason = Some(why);
                }
                break;
            }
            Err(Stop::Bad(why)) => {
                out.damaged = Some(why);
                break;
            }
        }
    }
    Ok(out)
}

type Header = [u8; ENTRY_HEADER_LEN];

/// Parse the entry at `off`. `next` holds its header when the previous read
/// brought it along; on return it holds the next entry's header when this
/// entry's last read brought that along (the 40 bytes after the entry, read
/// anyway to see whether the chain goes on: one read per entry, not two).
fn parse_entry(log: &LogSrc<'_>, off: usize, expected: u32, hbins_limit: u32, buf: &mut Vec<u8>, next: &mut Option<Header>) -> Result<Result<Entry, Stop>> {
    let len = log.len();
    if off + ENTRY_HEADER_LEN > len {
        return Ok(Err(Stop::End(format!("end of file at offset {off:#x}"))));
    }
    let hdr: Header = match next.take() {
        Some(h) => h,
        None => log.piece(off, ENTRY_HEADER_LEN, buf)?.try_into().unwrap_or([0; ENTRY_HEADER_LEN]),
    };
    let hdr = &hdr[..];
    if &hdr[0..4] != b"HvLE" {
        return Ok(Err(Stop::End(format!("no HvLE signature at offset {off:#x}"))));
    }
    let seq = le_u32(hdr, 12);
    if seq != expected {
        return Ok(Err(Stop::End(format!(
            "entry at offset {off:#x} has sequence number {seq}, expected {expected}"
        ))));
    }
    let bad = |msg: String| Ok(Err(Stop::Bad(format!("entry {seq} at offset {off:#x}: {msg}"))));
    let size = le_u32(hdr, 4) as usize;
    if size < LOG_BASE_LEN || size % LOG_BASE_LEN != 0 {
        return bad(format!("size {size:#x} is not a non-zero multiple of 512"));
    }
    if off + size > len {
        return bad(format!("size {size:#x} runs past the end of the file ({len:#x} bytes)"));
    }
    let hbins = le_u32(hdr, 16);
    if hbins == 0 || hbins % HBIN_ALIGN != 0 {
        return bad(format!("hive bins data size {hbins:#x} is not a non-zero multiple of 4096"));
    }
    if hbins > hbins_limit {
        return bad(format!("hive bins data size {hbins:#x} exceeds the {hbins_limit:#x} limit"));
    }
    let count = le_u32(hdr, 20) as usize;
    let pages_start = ENTRY_HEADER_LEN as u64 + 8 * count as u64;
    if count == 0 || pages_start > size as u64 {
        return bad(format!("dirty page count {count} does not fit in the entry"));
    }
    let pages_start = pages_start as usize;
    if marvin32(HVLE_SEED, &hdr[..32]) != le_u64(hdr, 32) {
        return bad("Hash-2 mismatch (torn or damaged header)".into());
    }
    // The rest of the entry, piece by piece: hashed; the references kept;
    // the pages' head bytes copied out as they pass.
    let mut hash = Marvin32::new(HVLE_SEED);
    let mut refs = Vec::with_capacity(pages_start - ENTRY_HEADER_LEN);
    let mut spans: Vec<(usize, usize)> = Vec::new();
    let mut heads: Vec<u8> = Vec::new();
    let (mut span, mut heads_at, mut built) = (0usize, 0usize, false);
    let whole = log.in_memory();
    let mut at = ENTRY_HEADER_LEN;
    while at < size {
        let n = if whole { size - at } else { (size - at).min(PIECE) };
        // The last piece of a log read from its file brings the next header.
        let ahead = if !whole && at + n == size && off + size + ENTRY_HEADER_LEN <= len { ENTRY_HEADER_LEN } else { 0 };
        let got = log.piece(off + at, n + ahead, buf)?;
        let piece = &got[..n];
        if ahead > 0 {
            *next = got[n..].try_into().ok();
        }
        hash.update(piece);
        if at < pages_start {
            refs.extend_from_slice(&piece[..n.min(pages_start - at)]);
        }
        if at + n > pages_start {
            if !built {
                built = true;
                // The references are complete: where each page's head bytes
                // are in the entry (up to its end; a page past it makes
                // the entry damaged below).
                let mut pos = pages_start;
                'refs: for r in refs.chunks_exact(8) {
                    let (rel, plen) = (le_u32(r, 0) as usize, le_u32(r, 4) as usize);
                    let dst = BASE_BLOCK_LEN + rel;
                    for (x, k) in head_spans(dst, plen) {
                        let e = pos + (x - dst);
                        if e >= size {
                            break 'refs;
                        }
                        spans.push((e, k.min(size - e)));
                    }
                    pos += plen;
                }
                heads.resize(spans.iter().map(|s| s.1).sum(), 0);
            }
            // Copy the parts of the spans inside [at, at + n).
            while let Some(&(e, k)) = spans.get(span) {
                let (lo, hi) = (e.max(at), (e + k).min(at + n));
                if lo < hi {
                    let into = heads_at + (lo - e);
                    heads[into..into + (hi - lo)].copy_from_slice(&piece[lo - at..hi - at]);
                }
                if e + k > at + n {
                    break;
                }
                heads_at += k;
                span += 1;
            }
        }
        at += n;
    }
    if hash.finish() != le_u64(hdr, 24) {
        return bad("Hash-1 mismatch (torn or damaged page data)".into());
    }
    let mut total = 0u64;
    for (i, r) in refs.chunks_exact(8).enumerate() {
        let (o, s) = (le_u32(r, 0) as u64, le_u32(r, 4) as u64);
        if o + s > hbins as u64 {
            return bad(format!(
                "page reference {i} (offset {o:#x}, size {s:#x}) points past the hive bins data size {hbins:#x}"
            ));
        }
        total += s;
    }
    if pages_start as u64 + total > size as u64 {
        return bad(format!("its {count} pages ({total:#x} bytes) run past the entry size {size:#x}"));
    }
    Ok(Ok(Entry { seq, flags: le_u32(hdr, 8), hbins, size, refs, data: off + pages_start, heads }))
}

/// Test helper: build a valid HvLE entry (exposed to the sibling test modules).
#[cfg(test)]
pub fn build_entry(seq: u32, hbins: u32, flags: u32, pages: &[(u32, &[u8])]) -> Vec<u8> {
    let body: usize = ENTRY_HEADER_LEN + 8 * pages.len() + pages.iter().map(|p| p.1.len()).sum::<usize>();
    let size = body.div_ceil(LOG_BASE_LEN) * LOG_BASE_LEN;
    let mut e = vec![0u8; size];
    e[0..4].copy_from_slice(b"HvLE");
    e[4..8].copy_from_slice(&(size as u32).to_le_bytes());
    e[8..12].copy_from_slice(&flags.to_le_bytes());
    e[12..16].copy_from_slice(&seq.to_le_bytes());
    e[16..20].copy_from_slice(&hbins.to_le_bytes());
    e[20..24].copy_from_slice(&(pages.len() as u32).to_le_bytes());
    let mut pos = ENTRY_HEADER_LEN + 8 * pages.len();
    for (i, (o, d)) in pages.iter().enumerate() {
        let r = ENTRY_HEADER_LEN + 8 * i;
        e[r..r + 4].copy_from_slice(&o.to_le_bytes());
        e[r + 4..r + 8].copy_from_slice(&(d.len() as u32).to_le_bytes());
        e[pos..pos + d.len()].copy_from_slice(d);
        pos += d.len();
    }
    rehash(&mut e);
    e
}

/// Test helper: recompute both hashes of an entry after editing it.
#[cfg(test)]
pub fn rehash(e: &mut [u8]) {
    let h1 = marvin32(HVLE_SEED, &e[ENTRY_HEADER_LEN..]);
    e[24..32].copy_from_slice(&h1.to_le_bytes());
    let h2 = marvin32(HVLE_SEED, &e[..32]);
    e[32..40].copy_from_slice(&h2.to_le_bytes());
}

#[cfg(test)]
mod tests {
    use super::*;

    fn log_with(base_seq: u32, entries: &[Vec<u8>]) -> Vec<u8> {
        let mut l = vec![0u8; LOG_BASE_LEN];
        for e in entries {
            l.extend_from_slice(e);
        }
        let _ = base_seq;
        l
    }

    fn fields(seq: u32) -> Fields {
        let mut b = vec![0u8; 512];
        b[4..8].copy_from_slice(&seq.to_le_bytes());
        b[8..12].copy_from_slice(&seq.to_le_bytes());
        Fields::read(&b)
    }

    #[test]
    fn chain_stops_at_gap_and_remnants() {
        let page = vec![0xAAu8; 4096];
        let l = log_with(
            10,
            &[
                build_entry(10, 8192, 0, &[(0, &page)]),
                build_entry(11, 8192, 1, &[(4096, &page)]),
                build_entry(5, 8192, 0, &[(0, &page)]), // an older remnant
            ],
        );
        let log = parse(LogSrc::Mem(&l), l[..512].to_vec(), fields(10), 1 << 30).unwrap();
        assert_eq!(log.entries.len(), 2);
        assert_eq!(log.last_seq(), Some(11));
        assert!(log.damaged.is_none());
        assert_eq!(log.entries[1].flags, 1);
        let pages: Vec<_> = log.entries[1].pages().collect();
        assert_eq!(pages.len(), 1);
        assert_eq!((pages[0].rel, pages[0].src, pages[0].len), (4096, 512 + log.entries[0].size + 48, 4096));
        assert_eq!(pages[0].heads, &page[..32]);
    }

    #[test]
    fn damaged_entries_stop_the_chain() {
        let page = vec![0x55u8; 4096];
        let good = build_entry(1, 8192, 0, &[(0, &page)]);
        type Edit = fn(&mut Vec<u8>);
        let cases: &[(&str, Edit)] = &[
            ("Hash-1", |e| e[100] ^= 1),
            ("Hash-2", |e| e[27] ^= 1),
            ("size", |e| {
                e[4..8].copy_from_slice(&0u32.to_le_bytes());
                rehash(e)
            }),
            ("size", |e| {
                e[4..8].copy_from_slice(&0x7FFF_FE00u32.to_le_bytes());
                let h2 = marvin32(HVLE_SEED, &e[..32]);
                e[32..40].copy_from_slice(&h2.to_le_bytes());
            }),
            ("hive bins", |e| {
                e[16..20].copy_from_slice(&1000u32.to_le_bytes());
                rehash(e)
            }),
            ("limit", |e| {
                e[16..20].copy_from_slice(&0x4000_1000u32.to_le_bytes());
                rehash(e)
            }),
            ("count", |e| {
                e[20..24].copy_from_slice(&0u32.to_le_bytes());
                rehash(e)
            }),
            ("count", |e| {
                e[20..24].copy_from_slice(&0x1FFF_FFFFu32.to_le_bytes());
                rehash(e)
            }),
            ("points past", |e| {
                e[40..44].copy_from_slice(&8192u32.to_le_bytes());
                rehash(e)
            }),
            ("points past", |e| {
                e[40..44].copy_from_slice(&0xFFFF_F000u32.to_le_bytes());
                rehash(e)
            }),
            ("run past the entry", |e| {
                e[44..48].copy_from_slice(&8192u32.to_le_bytes());
                e[16..20].copy_from_slice(&16384u32.to_le_bytes());
                rehash(e)
            }),
        ];
        for (what, edit) in cases {
            let mut bad = good.clone();
            edit(&mut bad);
            let l = log_with(1, &[bad]);
            let log = parse(LogSrc::Mem(&l), l[..512].to_vec(), fields(1), 1 << 30).unwrap();
            assert!(log.entries.is_empty(), "{what}");
            let why = log.damaged.unwrap_or_else(|| panic!("{what}: not flagged"));
            assert!(why.contains(what), "{what}: {why}");
        }
    }

    #[test]
    fn truncated_log_never_panics() {
        let page = vec![0x11u8; 4096];
        let mut l = log_with(7, &[build_entry(7, 4096, 0, &[(0, &page)])]);
        for cut in [0, 1, 511, 512, 520, 551, 552, 600, 4096, l.len() - 1] {
            l.truncate(cut);
            let log = parse(LogSrc::Mem(&l), vec![0; 512], fields(7), 1 << 30).unwrap();
            assert!(log.entries.is_empty());
        }
    }

    #[test]
    fn sequence_wraps() {
        let page = vec![0u8; 512];
        let l = log_with(
            u32::MAX,
            &[
                build_entry(u32::MAX, 4096, 0, &[(0, &page)]),
                build_entry(0, 4096, 0, &[(512, &page)]),
            ],
        );
        let log = parse(LogSrc::Mem(&l), l[..512].to_vec(), fields(u32::MAX), 1 << 30).unwrap();
        assert_eq!(log.entries.len(), 2);
        assert_eq!(log.last_seq(), Some(0));
    }

    /// A log read through a reader: entries read piece by piece give the
    /// same chain, pages and head bytes as the log in memory; reading stops
    /// at the entry that ends the chain; a read error is returned.
    #[test]
    fn read_through_a_reader_like_in_memory() {
        use crate::hive::pages::ReadAt;
        use std::rc::Rc;
        let big: Vec<u8> = (0..(PIECE + 3 * 4096 + 100)).map(|i| (i * 31 % 253) as u8).collect();
        let small: Vec<u8> = (0..5000).map(|i| (i % 7) as u8).collect();
        let l = log_with(
            3,
            &[
                // A page larger than a piece, unaligned pages, heads across pieces.
                build_entry(3, 1 << 20, 0, &[(4096 * 5 + 17, &big), (0, &small), (4096 * 60 - 10, &small[..40])]),
                build_entry(4, 1 << 20, 0, &[(8192, &small[..4096])]),
                build_entry(9, 1 << 20, 0, &[(0, &small)]),
            ],
        );
        let mut l = l;
        let end_of_chain = l.len() - build_entry(9, 1 << 20, 0, &[(0, &small)]).len();
        l.resize(l.len() + 50_000, 0xAB); // an unused tail
        let f = Rc::new(l.clone());
        let far = Rc::new(std::cell::Cell::new(0usize));
        let (f2, far2) = (f.clone(), far.clone());
        let read: ReadAt = Box::new(move |at, buf| {
            let at = at as usize;
            let n = buf.len().min(f2.len() - at).min(5000); // short reads too
            buf[..n].copy_from_slice(&f2[at..at + n]);
            far2.set(far2.get().max(at + n));
            Ok(n)
        });
        let mem = parse(LogSrc::Mem(&l), l[..512].to_vec(), fields(3), 1 << 30).unwrap();
        let src = LogSrc::Read { name: "LOG1", read: &read, len: l.len() };
        let rd = parse(src, l[..512].to_vec(), fields(3), 1 << 30).unwrap();
        assert_eq!(format!("{mem:?}"), format!("{rd:?}"));
        assert_eq!(rd.entries.len(), 2);
        assert!(far.get() <= end_of_chain + 40, "read up to {:#x}, the chain ends at {end_of_chain:#x}", far.get());
        for e in &rd.entries {
            for p in e.pages() {
                let bytes = &l[p.src..p.src + p.len];
                let want: Vec<u8> = head_spans(BASE_BLOCK_LEN + p.rel, p.len).flat_map(|(x, n)| bytes[x - BASE_BLOCK_LEN - p.rel..][..n].to_vec()).collect();
                assert_eq!(p.heads, &want[..], "page at {:#x}", p.rel);
            }
        }
        let pages: Vec<usize> = rd.entries[0].pages().map(|p| p.len).collect();
        assert_eq!(pages, [big.len(), small.len(), 40]);
        // A read error is the load's error, not a damaged entry.
        let bad: ReadAt = Box::new(|at, _| Err(crate::error::Error::corrupt(crate::error::Layer::Ntfs, at, "unreadable cluster")));
        let e = parse(LogSrc::Read { name: "LOG1", read: &bad, len: l.len() }, l[..512].to_vec(), fields(3), 1 << 30).unwrap_err();
        assert!(e.to_string().contains("unreadable cluster"), "{e}");
    }
}
