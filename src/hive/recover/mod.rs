//! Base-block validation, dirty detection and transaction-log recovery, in
//! memory: nothing is written anywhere. The logs are read through a
//! [`LogSrc`]: slices for the whole loads ([`load`], [`load_logs`]), readers
//! of the log files for [`load_paged`], which reads a log only as far as its
//! chain of valid entries goes (entry by entry through one reused buffer)
//! and keeps, for each page laid over the primary, where it is in which log.
//!
//! The rules are those of formats.md A.1, B.1–B.3 (Suhanov's specification);
//! where the specification leaves a choice, the behaviour is defined here.
//!
//! # What [`load`] does
//!
//! 1. **Primary base block.** The primary must be at least 4096 bytes. Its base
//!    block is *valid* when it has `regf` and a correct checksum. A valid base
//!    block must also pass the field checks (version 1.3–1.6, file type 0,
//!    format 1, hive-bins size a non-zero multiple of 4096 below 2 GiB, root
//!    cell offset 8-aligned inside the hive bins), else `load` fails: a valid
//!    checksum means the values are what was written, so they are not damage
//!    that a log could repair. An *invalid* base block (torn write) makes the
//!    hive dirty and is replaced from a log when one is usable; without one,
//!    its fields are used as found if they pass the checks, else `load` fails.
//! 2. **Clean** (valid, seq1 == seq2): the bytes are returned unchanged and the
//!    logs are ignored, except that their valid entries count towards
//!    `max_sequence_seen` and subsequent entries (seq ≥ primary seq2) are
//!    mentioned in a note. A clean primary shorter than 4096 + hive-bins size
//!    is an error (truncated, and there is nothing to complete it from).
//! 3. **Dirty, new-format logs** (HvLE, file type 6). With a valid primary base
//!    block, the logs are ordered by base-block sequence number (mod 2^32, not
//!    by file name); a log whose base seq is below primary seq2 is stale and
//!    skipped; within a log the chain of entries starts at its base seq and
//!    stops at the first entry that is not the next number or is damaged
//!    (signature, size, Marvin32 Hash-1/Hash-2, hive-bins size, page count,
//!    page references outside the hive-bins size or the entry); the second
//!    log is applied only if its base seq is the last applied seq + 1. With an
//!    invalid primary base block, only the log whose chain is the latest is
//!    applied and its base-block copy (file type set back to 0, bytes
//!    512..4096 zero) becomes the base block (`base_block_from_log`).
//! 4. **Dirty, old-format logs** (`DIRT`, file type 1 or 2), used only when no
//!    new-format log could be applied. A log is eligible when its timestamp is
//!    not older than the primary's (the first hbin's when the primary base block
//!    is invalid); among eligible logs the most recent wins, LOG1 on a tie.
//!    Equality is what Windows 7 requires; accepting a newer log follows
//!    Windows 8 and yarp and is noted. Dirty pages are not checked hbin by hbin.
//! 5. **Recovered base block.** After new-format entries: seq1 = seq2 = the last
//!    applied sequence number (what yarp's `save_recovered_hive` writes; a
//!    *writer* must later use `max_sequence_seen + 1`, formats.md A.6), hive-bins
//!    size from the last entry, Flags bit 0 from the last entry. After an
//!    old-format log: hive-bins size, root cell offset and Flags from the log's
//!    base block, seq1 = seq2 = the primary's seq1 (or the log's, when its base
//!    block was taken). The clustering factor is set to 1 (what Windows 8+
//!    writes and `nt-hive` requires), the checksum is recomputed, and the bytes
//!    are exactly 4096 + hive-bins size long (slack dropped, growth zero-filled).
//! 6. **Truncated dirty primary.** Log entries may grow and fill the hive; bytes
//!    that neither the primary nor any applied page supplied read as zeros and a
//!    note gives their count. After recovery the hbin chain is walked and a
//!    break is noted.
//! 7. **Dirty, nothing applicable** → `DirtyNotRecovered`: the primary's base
//!    block (or, if its fields are unusable, a valid log's base-block copy) with
//!    seq2 set to seq1, the hive-bins size cut to the intact hbin chain (as yarp
//!    does for a dirty primary; the file length is kept), clustering factor 1
//!    and the checksum recomputed, so that `nt-hive` reads it; a note says the
//!    data may be stale. Such bytes are for reading, not a base for edits.
//! 8. **`max_sequence_seen`** is the wrap-aware maximum of the primary's seq1 and
//!    seq2 (when its checksum is right), the base-block seq of every valid log,
//!    the last entry of every log's valid chain (applied or not) and the
//!    sequence number written into the returned base block, so that a writer
//!    using it + 1 makes every existing log entry permanently ineligible.
//!
//! Limits: the hive-bins size is at most 2 GiB − 4 KiB, and a log may grow the
//! hive to at most 1 GiB of hive bins (or the primary's own size, if larger); an
//! entry asking for more is treated as damaged. Every loop advances by at least
//! 512 bytes of input, so `load` always terminates, and it never panics. What
//! is kept of a log (page references, head copies, an old log's bitmap) is
//! at most the size of the log's valid part; a log is read through at most
//! 128 KiB of buffer (`newlog::PIECE`), and a failed read of a log is the
//! load's one-line error.

mod base;
mod marvin32;
mod newlog;
mod oldlog;

pub use base::{checksum as base_block_checksum, MAX_HBINS_SIZE};
pub use marvin32::{marvin32, HVLE_SEED};

use super::regf::{self, hbin};
use super::pages::{head_spans, HiveBytes, LogBytes, LogSrc, Overlay, ReadAt, HEAD, UNIT};
use super::{HiveReport, HiveState, LoadedHive, LogApplied};
use crate::bytes::{le_u32, le_u64};
use crate::error::{Error, Layer, Result};
use base::*;
use newlog::NewLog;
use oldlog::OldLog;

/// Largest hive-bins size a transaction log may grow a hive to, unless the
/// primary is already larger.
pub const MAX_LOG_HBINS_SIZE: u32 = 1 << 30;

/// One of the two log slots after parsing.
enum Log {
    Absent,
    Empty,
    Invalid(String),
    New(NewLog),
    Old(OldLog),
}

struct Slot {
    name: &'static str,
    log: Log,
}

/// Parse a log: its 512-byte base block first, then (new format) its chain
/// of entries or (old format) its dirty bitmap, read through `src` up to
/// where the chain ends. Only a failed read of the log is an error.
fn parse_log(src: Option<LogSrc<'_>>, hbins_limit: u32) -> Result<Log> {
    let Some(src) = src else { return Ok(Log::Absent) };
    if src.is_empty() {
        return Ok(Log::Empty);
    }
    let mut buf = Vec::new();
    let base = src.piece(0, LOG_BASE_LEN.min(src.len()), &mut buf)?.to_vec();
    Ok(match check_log_base(&base) {
        Err(bad) => Log::Invalid(format!("{} (offset {:#x})", bad.msg, bad.offset)),
        Ok(f) if f.file_type == FILE_TYPE_LOG_NEW => Log::New(newlog::parse(src, base, f, hbins_limit)?),
        Ok(f) => match oldlog::parse(src, base, f, hbins_limit)? {
            Ok(o) => Log::Old(o),
            Err((off, msg)) => Log::Invalid(format!("old-format log: {msg} (offset {off:#x})")),
        },
    })
}

fn to_error(layer: Layer, bad: Bad, suffix: &str) -> Error {
    let msg = format!("{}{suffix}", bad.msg);
    if bad.unsupported {
        Error::unsupported(layer, bad.offset as u64, msg)
    } else {
        Error::corrupt(layer, bad.offset as u64, msg)
    }
}

/// The primary's own base-block fields, checked like any base block plus file type 0.
fn check_primary_fields(b: &[u8]) -> Result<Fields, Bad> {
    let f = check_fields(b)?;
    if f.file_type != FILE_TYPE_PRIMARY {
        return Err(Bad::unsupported(
            OFF_FILE_TYPE,
            format!(
                "file type {} (0 = primary expected; 1, 2 and 6 are transaction logs)",
                f.file_type
            ),
        ));
    }
    Ok(f)
}

/// The base-block checks [`load`] makes of a primary (signature, version, file
/// format, file type, hive-bins size, root cell offset), as a `Hive` error
/// naming the field. The hive editor opens hives through this same function.
pub fn check_primary_base(b: &[u8]) -> Result<()> {
    check_primary_fields(b).map(|_| ()).map_err(|bad| to_error(Layer::Hive, bad, ""))
}

/// Wrap-aware maximum of sequence numbers.
fn seq_max(seqs: impl IntoIterator<Item = u32>) -> Option<u32> {
    seqs.into_iter().reduce(|m, s| if seq_after(s, m) { s } else { m })
}

/// Reads `buf.len()` bytes of the primary file at an offset below its length.
type ReadPrimary<'a> = &'a dyn Fn(usize, &mut [u8]) -> Result<()>;

/// The hive image being rebuilt: its base block, its length, the log pages
/// laid over the primary (by reference into the logs: (log, offset, length);
/// nothing is copied until the image is read), and which of its bytes past
/// the end of the original primary file were actually supplied by log pages.
struct Work<'a> {
    base: Vec<u8>,
    len: usize,
    orig_len: usize,
    filled: Vec<(usize, usize)>,
    overlay: Overlay,
    logs: [LogSrc<'a>; 2],
    primary: ReadPrimary<'a>,
}

impl<'a> Work<'a> {
    fn new(base: &[u8], orig_len: usize, primary: ReadPrimary<'a>, logs: [LogSrc<'a>; 2]) -> Self {
        Work {
            base: base[..BASE_BLOCK_LEN].to_vec(),
            len: orig_len,
            orig_len,
            filled: Vec::new(),
            overlay: Overlay::default(),
            logs,
            primary,
        }
    }

    /// Make room for `hbins` bytes of hive bins (zero-filled growth).
    fn grow_to(&mut self, hbins: u32) {
        self.len = self.len.max(BASE_BLOCK_LEN + hbins as usize);
    }

    /// Lay `len` bytes of log `log` (0: LOG1, 1: LOG2) at log offset `src`
    /// at hive-bins offset `rel`; `heads` are their head bytes, when read.
    /// Callers grew the image first.
    fn write(&mut self, rel: usize, log: u8, src: usize, len: usize, heads: Option<&[u8]>) {
        let dst = BASE_BLOCK_LEN + rel;
        let end = dst + len;
        if end > self.len {
            return;
        }
        self.overlay.push(dst, log, src, len, heads);
        if end > self.orig_len {
            self.filled.push((dst.max(self.orig_len), end));
        }
    }

    /// `n` bytes of the image at `at` (primary, zeros past it, base block,
    /// log pages: their head copies where the read lies in them, as the
    /// hbin headers recovery reads do), `None` past the end of the image.
    fn read(&self, at: usize, n: usize) -> Result<Option<Vec<u8>>> {
        if at + n > self.len {
            return Ok(None);
        }
        let mut buf = vec![0u8; n];
        let from_file = (at + n).min(self.orig_len).saturating_sub(at);
        if from_file > 0 {
            (self.primary)(at, &mut buf[..from_file])?;
        }
        if at < BASE_BLOCK_LEN {
            let k = (BASE_BLOCK_LEN - at).min(n);
            buf[..k].copy_from_slice(&self.base[at..at + k]);
        }
        self.overlay.apply(&self.logs, at, &mut buf, true)?;
        Ok(Some(buf))
    }

    /// Replace the base block by a log's 512-byte copy (rest zero, file type 0).
    fn take_base_from_log(&mut self, log_base: &[u8]) {
        let n = log_base.len().min(LOG_BASE_LEN);
        self.base.fill(0);
        self.base[..n].copy_from_slice(&log_base[..n]);
        put_u32(&mut self.base, OFF_FILE_TYPE, FILE_TYPE_PRIMARY);
    }

    /// Bytes of `[orig_len, end)` that no applied page supplied.
    fn missing_before(&mut self, end: usize) -> usize {
        if self.orig_len >= end {
            return 0;
        }
        self.filled.sort_unstable();
        let (mut covered, mut reach) = (0usize, self.orig_len);
        for &(s, e) in &self.filled {
            let (s, e) = (s.max(reach), e.min(end));
            if e > s {
                covered += e - s;
                reach = e;
            }
        }
        (end - self.orig_len) - covered
    }

    /// Set the final base-block fields, cut the image to 4096 + hbins, fix the checksum.
    fn finish(&mut self, seq: u32, hbins: u32) {
        self.len = BASE_BLOCK_LEN + hbins as usize;
        put_u32(&mut self.base, OFF_SEQ1, seq);
        put_u32(&mut self.base, OFF_SEQ2, seq);
        put_u32(&mut self.base, OFF_HBINS, hbins);
        put_u32(&mut self.base, OFF_CLUSTER, 1);
        fix_checksum(&mut self.base);
    }
}

/// What recovery made of a primary and its logs.
enum Outcome {
    /// The primary, unchanged.
    Clean(HiveReport),
    /// An image of `len` bytes: `base` as its base block, the primary's bytes
    /// after it (zeros past its end), `overlay` (pages of the logs) over them.
    Rebuilt { base: Vec<u8>, len: usize, overlay: Overlay, report: HiveReport },
}

/// Length of the intact chain of hbins from the start of the hive-bins data
/// of image `img`, at most `limit` bytes, and why it stopped short (if it did).
#[cfg(test)]
fn hbin_chain(img: &[u8], limit: usize) -> (usize, Option<String>) {
    let read = |at: usize, n: usize| Ok(img.get(at..at + n).map(<[u8]>::to_vec));
    chain(&read, img.len(), limit).unwrap_or((0, None))
}

/// The hbin chain of the image being rebuilt.
fn work_chain(work: &Work<'_>, limit: usize) -> Result<(usize, Option<String>)> {
    chain(&|at, n| work.read(at, n), work.len, limit)
}

/// The hbin chain of an image of `len` bytes that `read(at, n)` reads
/// (`None` past its end).
fn chain(read: &dyn Fn(usize, usize) -> Result<Option<Vec<u8>>>, len: usize, limit: usize) -> Result<(usize, Option<String>)> {
    let mut pos = 0usize;
    // Each hbin is at least 4096 bytes, so this runs at most limit/4096 times.
    while pos < limit {
        let at = BASE_BLOCK_LEN + pos;
        let Some(h) = read(at, hbin::HEADER_LEN as usize)? else {
            return Ok((
                pos,
                Some(format!("the file ends at {len:#x}, inside the hive bins data")),
            ));
        };
        if &h[0..4] != hbin::SIGNATURE {
            return Ok((pos, Some(format!("no hbin signature at file offset {at:#x}"))));
        }
        let (off, size) = (le_u32(&h, hbin::OFFSET) as usize, le_u32(&h, hbin::SIZE) as usize);
        if off != pos {
            return Ok((pos, Some(format!("hbin at file offset {at:#x} says it is at {off:#x}"))));
        }
        let align = hbin::ALIGN as usize;
        if size < align || size % align != 0 || pos + size > limit {
            return Ok((
                pos,
                Some(format!("hbin at file offset {at:#x} has a bad size {size:#x}")),
            ));
        }
        pos += size;
    }
    Ok((pos, None))
}

/// Load a hive from its primary file and optional .LOG1 / .LOG2 contents
/// (pass a single XP-era .LOG as `log1`). See the module documentation for
/// the exact rules. Errors name `Layer::Hive` (primary) with a primary-file
/// offset.
pub fn load(primary: Vec<u8>, log1: Option<Vec<u8>>, log2: Option<Vec<u8>>) -> Result<LoadedHive> {
    load_logs(primary, log1.as_deref(), log2.as_deref())
}

/// [`load`] with the logs borrowed: the caller keeps (and may reuse) their
/// buffers; recovery only reads them.
pub fn load_logs(primary: Vec<u8>, log1: Option<&[u8]>, log2: Option<&[u8]>) -> Result<LoadedHive> {
    short_primary(primary.len())?;
    let read = |at: usize, buf: &mut [u8]| -> Result<()> {
        buf.copy_from_slice(&primary[at..at + buf.len()]);
        Ok(())
    };
    let logs = [log1.map(LogSrc::Mem), log2.map(LogSrc::Mem)];
    match recover(&primary[..BASE_BLOCK_LEN], primary.len(), &read, logs, [None, None])? {
        Outcome::Clean(report) => Ok(LoadedHive { bytes: primary, report }),
        Outcome::Rebuilt { base, len, overlay, report } => {
            let mut img = primary;
            img.resize(len, 0);
            img[..BASE_BLOCK_LEN].copy_from_slice(&base);
            overlay.apply(&[LogSrc::Mem(log1.unwrap_or_default()), LogSrc::Mem(log2.unwrap_or_default())], 0, &mut img, false)?;
            Ok(LoadedHive { bytes: img, report })
        }
    }
}

/// What one pass over a primary file keeps for [`load_paged`]: its length,
/// its base block, and the first 32 bytes of every 4 KiB page (where hbin
/// headers are: hbins are 4 KiB multiples from offset 4096).
pub struct PrimaryScan {
    len: usize,
    base: Vec<u8>,
    heads: Vec<u8>,
}

/// Stream a primary file of `file_len` bytes once (`stream` writes it out
/// from its start): the same read, with the same errors, as reading it
/// whole, so a hive whose file cannot be read fails to load exactly as
/// before; but nothing of its size is kept.
pub fn scan_primary(stream: &dyn Fn(&mut dyn std::io::Write) -> Result<u64>, file_len: usize) -> Result<PrimaryScan> {
    let mut sink = Heads { pos: 0, base: vec![0u8; BASE_BLOCK_LEN.min(file_len)], table: vec![0u8; file_len.div_ceil(UNIT) * HEAD] };
    stream(&mut sink)?;
    Ok(PrimaryScan { len: file_len.min(sink.pos), base: sink.base, heads: sink.table })
}

/// [`load_logs`] over a primary file read on demand: `read` fills a buffer
/// from an offset of the primary file that `scan` went over. Recovery reads
/// the base block and, for a dirty hive, the hbin headers from the scan;
/// the logs are read as far as their valid entries go (new format: entry by
/// entry through one reused buffer; old format: base block and bitmap),
/// through `log1`/`log2` when those are [`LogBytes::Read`]. The image it
/// returns reads the rest as cells are read, with the log pages laid over
/// it read again from the logs, which it keeps.
pub fn load_paged(read: ReadAt, scan: PrimaryScan, log1: Option<LogBytes>, log2: Option<LogBytes>) -> Result<(HiveBytes, HiveReport)> {
    load_paged_ahead(read, scan, log1, log2, [None, None])
}

/// [`load_paged`] with logs already parsed ([`parse_log_ahead`]: `ahead[0]`
/// from `log1`'s bytes, `ahead[1]` from `log2`'s; `None`: parsed here), with
/// the same outcome and the same errors in the same order (the primary's
/// length and base-block fields are checked before any log's error).
pub fn load_paged_ahead(read: ReadAt, scan: PrimaryScan, log1: Option<LogBytes>, log2: Option<LogBytes>, ahead: [Option<ParsedLog>; 2]) -> Result<(HiveBytes, HiveReport)> {
    let file_len = scan.len;
    short_primary(file_len)?;
    let base = scan.base;
    // Every read recovery makes past the base block is inside the first 32
    // bytes of a 4 KiB page; anything else is read from the file.
    let primary = |at: usize, buf: &mut [u8]| -> Result<()> {
        let in_page = at % UNIT;
        if in_page + buf.len() > HEAD {
            return fill_from(&read, at, buf);
        }
        let from = at / UNIT * HEAD + in_page;
        match scan.heads.get(from..from + buf.len()) {
            Some(h) => buf.copy_from_slice(h),
            None => fill_from(&read, at, buf)?,
        }
        Ok(())
    };
    let outcome = recover(&base, file_len, &primary, [log1.as_ref().map(LogBytes::src), log2.as_ref().map(LogBytes::src)], ahead)?;
    match outcome {
        Outcome::Clean(report) => {
            for l in log1.into_iter().chain(log2) {
                if let LogBytes::Mem(v) = l {
                    crate::fs::reader::recycle(v);
                }
            }
            Ok((HiveBytes::paged(file_len, base, read, file_len, Overlay::default(), Default::default()), report))
        }
        Outcome::Rebuilt { base, len, overlay, report } => {
            let logs = [log1.unwrap_or_default(), log2.unwrap_or_default()];
            Ok((HiveBytes::paged(len, base, read, file_len, overlay, logs), report))
        }
    }
}

/// Keeps the base block and the first [`HEAD`] bytes of every
/// [`UNIT`] of what is written to it (a file streamed from its start).
struct Heads {
    pos: usize,
    base: Vec<u8>,
    table: Vec<u8>,
}

impl std::io::Write for Heads {
    fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
        if self.pos < self.base.len() {
            let n = (self.base.len() - self.pos).min(b.len());
            self.base[self.pos..self.pos + n].copy_from_slice(&b[..n]);
        }
        for (at, n) in head_spans(self.pos, b.len()) {
            let (to, i) = (at / UNIT * HEAD + at % UNIT, at - self.pos);
            if let Some(d) = self.table.get_mut(to..to + n) {
                d.copy_from_slice(&b[i..i + n]);
            }
        }
        self.pos += b.len();
        Ok(b.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// Fill `buf` from the primary at `at`; a short read is an error.
fn fill_from(read: &ReadAt, at: usize, buf: &mut [u8]) -> Result<()> {
    let mut got = 0;
    while got < buf.len() {
        let n = read((at + got) as u64, &mut buf[got..])?;
        if n == 0 {
            return Err(Error::corrupt(Layer::Hive, (at + got) as u64, "the hive file ended early while it was being read"));
        }
        got += n;
    }
    Ok(())
}

fn short_primary(len: usize) -> Result<()> {
    if len < BASE_BLOCK_LEN {
        return Err(Error::corrupt(
            Layer::Hive,
            len as u64,
            format!("file is {len} bytes, shorter than the 4096-byte base block"),
        ));
    }
    Ok(())
}

/// The hive-bins size a log may grow a hive to whose primary file is `plen`
/// bytes long: [`MAX_LOG_HBINS_SIZE`], or the primary's own, if larger.
fn log_hbins_limit(plen: usize) -> u32 {
    let avail_hbins = (plen.saturating_sub(BASE_BLOCK_LEN) / 4096 * 4096).min(MAX_HBINS_SIZE as usize) as u32;
    MAX_LOG_HBINS_SIZE.max(avail_hbins)
}

/// A log parsed ahead of recovery ([`parse_log_ahead`]), e.g. on another
/// thread while the primary file streams: what parsing it gave (a failed
/// read of the log is kept, to be returned in its turn) and the hive-bins
/// limit it was parsed with.
pub struct ParsedLog {
    log: Result<Log>,
    limit: u32,
}

/// Parse log `src` of a hive whose primary file is expected to be
/// `primary_len` bytes long (its size on the file system), for
/// [`load_paged_ahead`]. Recovery uses the result when the primary turns out
/// to be a length that gives the same hive-bins limit (always, unless the
/// primary is over 1 GiB and its stream comes up short of its size), else
/// parses the log again itself: the outcome is that of [`load_paged`].
pub fn parse_log_ahead(src: LogSrc<'_>, primary_len: usize) -> ParsedLog {
    let limit = log_hbins_limit(primary_len);
    ParsedLog { log: parse_log(Some(src), limit), limit }
}

/// Recovery proper: `primary` is the primary's base block, `plen` its file
/// length, `read` its other bytes; `ahead` holds the logs already parsed.
fn recover(primary: &[u8], plen: usize, read: ReadPrimary<'_>, logs: [Option<LogSrc<'_>>; 2], ahead: [Option<ParsedLog>; 2]) -> Result<Outcome> {
    let pf = Fields::read(primary);
    let sig_ok = primary.get(0..4) == Some(&regf::base::SIGNATURE[..]);
    let cks_ok = checksum_ok(primary);
    let primary_valid = sig_ok && cks_ok;
    let primary_fields = check_primary_fields(primary);
    if primary_valid {
        if let Err(bad) = &primary_fields {
            return Err(to_error(Layer::Hive, bad.clone(), ""));
        }
    }
    let dirty = !primary_valid || pf.seq1 != pf.seq2;

    let hbins_limit = log_hbins_limit(plen);
    // A log parsed ahead with this same limit is what parsing it here gives
    // (same bytes, same limit); any other is parsed here. LOG1's error is
    // returned before LOG2's, as when both are parsed here.
    let [a1, a2] = ahead;
    let parse = |i: usize, a: Option<ParsedLog>| match a {
        Some(p) if p.limit == hbins_limit => p.log,
        _ => parse_log(logs[i], hbins_limit),
    };
    let slots = [Slot { name: "LOG1", log: parse(0, a1)? }, Slot { name: "LOG2", log: parse(1, a2)? }];

    let mut report = HiveReport {
        state: HiveState::Clean,
        primary_seq1: pf.seq1,
        primary_seq2: pf.seq2,
        primary_checksum_ok: cks_ok,
        base_block_from_log: false,
        applied: Vec::new(),
        max_sequence_seen: 0,
        recovered_sequence: None,
        notes: Vec::new(),
    };
    let mut seen: Vec<u32> = Vec::new();
    if cks_ok {
        seen.extend([pf.seq1, pf.seq2]);
    }
    for s in &slots {
        match &s.log {
            Log::New(l) => {
                seen.push(l.base_seq());
                seen.extend(l.last_seq());
            }
            Log::Old(l) => seen.push(l.fields.seq1),
            _ => {}
        }
    }
    if pf.cluster != 1 && sig_ok {
        report.notes.push(format!(
            "clustering factor is {} (Windows 8+ always writes 1; a rewritten base block gets 1)",
            pf.cluster
        ));
    }

    if !dirty {
        let hbins = pf.hbins as usize;
        if hbins > plen - BASE_BLOCK_LEN {
            return Err(Error::corrupt(
                Layer::Hive,
                OFF_HBINS as u64,
                format!(
                    "hive bins data size {hbins:#x} exceeds the {:#x} bytes after the base block: truncated hive (clean, so no log can complete it)",
                    plen - BASE_BLOCK_LEN
                ),
            ));
        }
        for s in &slots {
            if let Log::New(l) = &s.log {
                let later: Vec<u32> = l
                    .entries
                    .iter()
                    .map(|e| e.seq)
                    .filter(|&q| seq_at_or_after(q, pf.seq2))
                    .collect();
                if let (Some(a), Some(b)) = (later.first(), later.last()) {
                    report.notes.push(format!(
                        "{}: the hive is clean, so its {} subsequent log entries ({a}..{b}) are ignored",
                        s.name,
                        later.len()
                    ));
                }
            }
        }
        report.max_sequence_seen = seq_max(seen).unwrap_or(pf.seq1);
        return Ok(Outcome::Clean(report));
    }

    // Dirty.
    report.notes.push(if !sig_ok {
        "primary base block has no regf signature: damaged".to_string()
    } else if !cks_ok {
        format!(
            "primary base block checksum {:#010x} is wrong (computed {:#010x}): dirty, base block damaged",
            le_u32(primary, OFF_CHECKSUM),
            checksum(primary)
        )
    } else {
        format!("primary is dirty: seq1 {} != seq2 {}", pf.seq1, pf.seq2)
    });
    if pf.hbins as usize > plen - BASE_BLOCK_LEN && primary_fields.is_ok() {
        report.notes.push(format!(
            "primary file is truncated: hive bins data size {:#x} but only {:#x} bytes follow the base block",
            pf.hbins,
            plen - BASE_BLOCK_LEN
        ));
    }
    for s in &slots {
        match &s.log {
            Log::Empty => report.notes.push(format!("{}: empty file", s.name)),
            Log::Invalid(why) => report.notes.push(format!("{}: unusable: {why}", s.name)),
            _ => {}
        }
    }

    let empty = LogSrc::Mem(&[]);
    let mut work = Work::new(primary, plen, read, [logs[0].unwrap_or(empty), logs[1].unwrap_or(empty)]);
    let outcome = recover_new(&mut work, &pf, primary_valid, &slots, &mut report)
        .or_else(|| recover_old(&mut work, &pf, primary_valid, &slots, &mut report));

    match outcome {
        Some((seq, hbins)) => {
            work.finish(seq, hbins);
            seen.push(seq);
            report.state = HiveState::Recovered;
            report.recovered_sequence = Some(seq);
            if let Err(bad) = check_primary_fields(&work.base) {
                return Err(to_error(Layer::Hive, bad, " (in the recovered base block)"));
            }
            let end = work.len;
            let missing = work.missing_before(end);
            if missing > 0 {
                report.notes.push(format!(
                    "{missing} bytes of hive bins data between file offsets {:#x} and {end:#x} were in neither the primary nor the applied log entries: read as zeros",
                    work.orig_len
                ));
            }
            if let (pos, Some(why)) = work_chain(&work, hbins as usize)? {
                report.notes.push(format!(
                    "after recovery the hbin chain breaks at hive bins offset {pos:#x} ({why}): data past it may be unreadable"
                ));
            }
        }
        None => {
            let seq = not_recovered(&mut work, primary_fields, sig_ok, &slots, &mut report)?;
            seen.push(seq);
        }
    }
    report.max_sequence_seen = seq_max(seen).unwrap_or(0);
    Ok(Outcome::Rebuilt { base: work.base, len: work.len, overlay: work.overlay, report })
}

/// New-format recovery. Returns the final (sequence number, hive-bins size)
/// when at least one entry was applied.
fn recover_new(
    work: &mut Work,
    pf: &Fields,
    primary_valid: bool,
    slots: &[Slot],
    report: &mut HiveReport,
) -> Option<(u32, u32)> {
    let mut logs: Vec<(u8, &'static str, &NewLog)> = slots
        .iter()
        .enumerate()
        .filter_map(|(i, s)| match &s.log {
            Log::New(l) => Some((i as u8, s.name, l)),
            _ => None,
        })
        .collect();
    if logs.is_empty() {
        return None;
    }
    for (_, name, l) in &logs {
        if l.entries.is_empty() {
            let why = l
                .damaged
                .as_deref()
                .or(l.empty_reason.as_deref())
                .unwrap_or("none found");
            report.notes.push(format!("{name}: no valid log entry ({why})"));
        }
    }

    let mut steps: Vec<(u8, &'static str, &NewLog)> = Vec::new();
    let mut cut_short = false;
    if primary_valid {
        // Earlier log first, by base-block sequence number (mod 2^32); LOG1 on a tie.
        if logs.len() == 2 && !seq_at_or_after(logs[1].2.base_seq(), logs[0].2.base_seq()) {
            logs.swap(0, 1);
        }
        let mut taken: Option<&'static str> = None;
        let mut last: Option<u32> = None;
        for (i, name, l) in logs {
            if !seq_at_or_after(l.base_seq(), pf.seq2) {
                report.notes.push(format!(
                    "{name}: base sequence {} is older than primary seq2 {}: stale, ignored",
                    l.base_seq(),
                    pf.seq2
                ));
                continue;
            }
            if let Some(prev) = taken {
                match last {
                    Some(n) if l.base_seq() == n.wrapping_add(1) => {}
                    Some(n) => {
                        report.notes.push(format!(
                            "{name}: base sequence {} does not follow the last applied entry {n}: not applied",
                            l.base_seq()
                        ));
                        cut_short = true;
                        continue;
                    }
                    None => {
                        report.notes.push(format!(
                            "{name}: not applied: the earlier log {prev} yielded no valid entry, so entries from {} would not follow on",
                            l.base_seq()
                        ));
                        cut_short = true;
                        continue;
                    }
                }
            }
            taken = Some(name);
            if let Some(d) = &l.damaged {
                report.notes.push(format!("{name}: recovery stops before damaged {d}"));
                cut_short = true;
            }
            if !l.entries.is_empty() {
                last = l.last_seq();
                steps.push((i, name, l));
            }
        }
    } else {
        // Invalid primary base block: only the log with the latest entries, and its base block.
        let mut best: Option<(u8, &'static str, &NewLog)> = None;
        for &(i, name, l) in &logs {
            if l.entries.is_empty() {
                continue;
            }
            if best.is_none_or(|(_, _, b)| seq_after(l.base_seq(), b.base_seq())) {
                best = Some((i, name, l));
            }
        }
        let (i, name, l) = best?;
        for &(_, other, o) in &logs {
            if other != name && !o.entries.is_empty() {
                report.notes.push(format!(
                    "{other}: not applied: the primary base block is invalid, so only the log with the latest entries ({name}) is used"
                ));
            }
        }
        if let Some(d) = &l.damaged {
            report.notes.push(format!("{name}: recovery stops before damaged {d}"));
        }
        work.take_base_from_log(&l.base);
        report.base_block_from_log = true;
        steps.push((i, name, l));
    }
    if steps.is_empty() {
        return None;
    }

    let mut hbins = le_u32(&work.base, OFF_HBINS);
    let mut flags = le_u32(&work.base, OFF_FLAGS);
    let mut last = 0;
    for &(i, name, l) in &steps {
        for e in &l.entries {
            work.grow_to(e.hbins);
            for p in e.pages() {
                work.write(p.rel, i, p.src, p.len, Some(p.heads));
            }
            hbins = e.hbins;
            flags = (flags & !1) | (e.flags & 1);
            last = e.seq;
        }
        report.applied.push(LogApplied {
            log: name.to_string(),
            format: "new",
            entries: l.entries.len() as u32,
            first_sequence: l.entries.first().map(|e| e.seq),
            last_sequence: l.last_seq(),
        });
    }
    put_u32(&mut work.base, OFF_FLAGS, flags);

    let first = steps[0].2.entries[0].seq;
    if primary_valid && first != pf.seq2 {
        report.notes.push(if cut_short {
            format!(
                "log entries start at {first} but primary seq2 is {}: the primary holds partially reconciled data and the log chain was cut short at {last}, so the recovered hive may be inconsistent",
                pf.seq2
            )
        } else {
            format!(
                "log entries start at {first} but primary seq2 is {}: earlier entries were already reconciled into the primary; the whole chain {first}..{last} was applied",
                pf.seq2
            )
        });
    }
    Some((last, hbins))
}

/// Old-format recovery. Returns the final (sequence number, hive-bins size).
fn recover_old(
    work: &mut Work,
    pf: &Fields,
    primary_valid: bool,
    slots: &[Slot],
    report: &mut HiveReport,
) -> Option<(u32, u32)> {
    let logs: Vec<(u8, &'static str, &OldLog)> = slots
        .iter()
        .enumerate()
        .filter_map(|(i, s)| match &s.log {
            Log::Old(l) => Some((i as u8, s.name, l)),
            _ => None,
        })
        .collect();
    if logs.is_empty() {
        return None;
    }
    // The timestamp the log must match: the primary's, or the first hbin's
    // backup copy when the primary base block is invalid.
    let (reference, what) = if primary_valid {
        (pf.timestamp, "primary's")
    } else {
        (work.read(BASE_BLOCK_LEN + 20, 8).ok().flatten().map_or(0, |b| le_u64(&b, 0)), "first hbin's")
    };
    let mut best: Option<(u8, &'static str, &OldLog)> = None;
    for &(i, name, l) in &logs {
        if l.fields.timestamp < reference {
            report.notes.push(format!(
                "{name}: timestamp {:#x} is older than the {what} {reference:#x}: stale, ignored",
                l.fields.timestamp
            ));
        } else if best.is_none_or(|(_, _, b)| l.fields.timestamp > b.fields.timestamp) {
            best = Some((i, name, l));
        }
    }
    let (i, name, l) = best?;
    for &(_, other, o) in &logs {
        if other != name && o.fields.timestamp >= reference {
            report
                .notes
                .push(format!("{other}: not applied: {name} is at least as recent"));
        }
    }
    if l.fields.timestamp != reference {
        report.notes.push(format!(
            "{name}: timestamp {:#x} is newer than the {what} {reference:#x}: applied anyway (as Windows 8 and yarp do)",
            l.fields.timestamp
        ));
    }
    let seq = if primary_valid {
        put_u32(&mut work.base, OFF_ROOT, l.fields.root);
        put_u32(&mut work.base, OFF_FLAGS, le_u32(&l.base, OFF_FLAGS));
        pf.seq1
    } else {
        work.take_base_from_log(&l.base);
        report.base_block_from_log = true;
        l.fields.seq1
    };
    work.grow_to(l.fields.hbins);
    for (rel, src, len) in l.pages() {
        work.write(rel, i, src, len, None);
    }
    report.applied.push(LogApplied {
        log: name.to_string(),
        format: "old",
        entries: l.dirty_pages as u32,
        first_sequence: None,
        last_sequence: None,
    });
    Some((seq, l.fields.hbins))
}

/// Dirty and nothing applied: make the primary readable as it is. Returns the
/// sequence number written into the base block.
fn not_recovered(
    work: &mut Work,
    primary_fields: Result<Fields, Bad>,
    sig_ok: bool,
    slots: &[Slot],
    report: &mut HiveReport,
) -> Result<u32> {
    let fields = match primary_fields {
        Ok(f) => {
            if !report.primary_checksum_ok {
                report
                    .notes
                    .push("the damaged primary base block's fields are used as found".into());
            }
            f
        }
        Err(bad) => {
            // Any valid log base-block copy, the most recent one first.
            let mut best: Option<(&'static str, &[u8], u32)> = None;
            for s in slots {
                let (b, seq) = match &s.log {
                    Log::New(l) => (&l.base[..], l.base_seq()),
                    Log::Old(l) => (&l.base[..], l.fields.seq1),
                    _ => continue,
                };
                if best.is_none_or(|(_, _, q)| seq_after(seq, q)) {
                    best = Some((s.name, b, seq));
                }
            }
            let Some((name, b, _)) = best else {
                return Err(if !sig_ok {
                    let sig = &work.base[..4];
                    Error::corrupt(
                        Layer::Hive,
                        0,
                        format!(
                            "no regf signature (found {}): not a registry hive, and no usable log",
                            show_sig(sig)
                        ),
                    )
                } else {
                    to_error(
                        Layer::Hive,
                        bad,
                        " (base block damaged and no usable log to recover it from)",
                    )
                });
            };
            work.take_base_from_log(b);
            report.base_block_from_log = true;
            report.notes.push(format!("base block taken from {name}"));
            Fields::read(&work.base)
        }
    };
    let declared = fields.hbins as usize;
    let avail = (work.len - BASE_BLOCK_LEN) / 4096 * 4096;
    let (hbins, why) = work_chain(work, declared.min(avail))?;
    let why = why.unwrap_or_else(|| "the file ends there".into());
    if hbins == 0 {
        return Err(Error::corrupt(
            Layer::Hive,
            BASE_BLOCK_LEN as u64,
            format!("no intact hive bin: {why}"),
        ));
    }
    if hbins < declared {
        report.notes.push(format!(
            "hive bins data cut from {declared:#x} to the {hbins:#x} bytes of intact hbins ({why})"
        ));
    }
    if let Err(bad) = check_root(fields.root, hbins as u32) {
        return Err(to_error(Layer::Hive, bad, ""));
    }
    put_u32(&mut work.base, OFF_SEQ2, fields.seq1);
    put_u32(&mut work.base, OFF_SEQ1, fields.seq1);
    put_u32(&mut work.base, OFF_HBINS, hbins as u32);
    put_u32(&mut work.base, OFF_CLUSTER, 1);
    fix_checksum(&mut work.base);
    report.state = HiveState::DirtyNotRecovered;
    report.notes.push(
        "dirty hive and no transaction log could be applied: read as-is; changes that only reached the logs are missing, so the data may be stale"
            .into(),
    );
    Ok(fields.seq1)
}

#[cfg(test)]
mod tests;

#[cfg(test)]
mod heads_tests {
    use super::*;
    use std::io::Write;

    #[test]
    fn heads_keep_the_first_bytes_of_every_page_whatever_the_write_sizes() {
        let file: Vec<u8> = (0..3 * UNIT + 100).map(|i| (i % 253) as u8).collect();
        for piece in [1, 7, 31, 32, 33, 4095, 4096, 5000, file.len()] {
            let mut h = Heads { pos: 0, base: vec![0u8; BASE_BLOCK_LEN], table: vec![0u8; file.len().div_ceil(UNIT) * HEAD] };
            for c in file.chunks(piece) {
                h.write_all(c).unwrap();
            }
            for k in 0..4 {
                assert_eq!(&h.table[k * HEAD..(k + 1) * HEAD], &file[k * UNIT..k * UNIT + HEAD], "piece {piece}, page {k}");
            }
            assert_eq!(h.base, &file[..BASE_BLOCK_LEN]);
        }
    }
}
