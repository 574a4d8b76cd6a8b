//! One `.evtx` file read newest first and bounded: the file header, then
//! 64 KiB chunks from the current one backwards (circularly), each handed
//! to the `evtx` crate, stopping at the first chunk wholly older than the
//! window. Only the pieces needed are read (through [`LogFile::read_at`]),
//! never the whole file.
//!
//! Nothing here fails on bad bytes: a chunk that is not one (bad magic) is
//! skipped and counted, a record the crate cannot render is counted, a
//! truncated file ends the walk; the caps (chunks, records, bytes) end it
//! too, and say so in the log's status.

use super::binxml::{self, CHUNK_HEADER};
use crate::bytes::{le_u16, le_u64};
use super::extract::{self, Raw};
use serde_json::Value as J;
use std::sync::Arc;

/// EVTX layout (formats: libevtx "Windows XML Event Log (EVTX) format").
pub const FILE_HEADER: u64 = 4096;
pub const CHUNK: u64 = 65536;

/// Where the bytes of one log come from.
pub trait LogFile {
    fn len(&self) -> u64;
    /// Fill `buf` from `offset`; returns the bytes read (short at the end).
    fn read_at(&self, offset: u64, buf: &mut [u8]) -> crate::Result<usize>;
}

/// A log held in memory (tests, the fuzz target).
impl LogFile for &[u8] {
    fn len(&self) -> u64 {
        <[u8]>::len(self) as u64
    }
    fn read_at(&self, offset: u64, buf: &mut [u8]) -> crate::Result<usize> {
        let start = (offset.min(<[u8]>::len(self) as u64)) as usize;
        let n = buf.len().min(<[u8]>::len(self) - start);
        buf[..n].copy_from_slice(&self[start..start + n]);
        Ok(n)
    }
}

/// Bounds on the work spent on one log and on all of them.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// Chunks read from one log (64 KiB each).
    pub chunks_per_log: usize,
    /// Records looked at in one log.
    pub records_per_log: usize,
    /// Bytes read from all logs together.
    pub total_bytes: u64,
    /// Events of one (log, event id) kept individually (newest first); the rest are counted.
    pub kept_per_id: usize,
    /// Chunks peeked at (record headers only) past the first chunk wholly
    /// older than the window, for newer records in torn copies.
    pub tail_chunks: usize,
}

impl Default for Limits {
    fn default() -> Self {
        // A 14-day window of a busy server's Security log fits in 128 MiB
        // (its default maximum is 20 MiB; Azure images often set 128 MiB+).
        Limits { chunks_per_log: 2048, records_per_log: 1_000_000, total_bytes: 512 << 20, kept_per_id: 50, tail_chunks: 64 }
    }
}

/// What reading one log did.
#[derive(Debug, Clone, Default)]
pub struct Walk {
    /// Chunks read and parsed.
    pub chunks_read: usize,
    /// Chunks skipped: bad magic, header past the data, unparsable.
    pub chunks_damaged: usize,
    /// Records in the window that the crate rendered.
    pub records: usize,
    /// Records the crate could not render.
    pub records_damaged: usize,
    /// Bytes read.
    pub bytes: u64,
    /// Why the walk stopped early (a cap, a truncated file), if it did.
    pub stopped: Option<String>,
    /// The file header was missing or bad (chunks were found by position).
    pub bad_header: bool,
    /// Newest record time seen (µs since the Unix epoch).
    pub newest: Option<i64>,
}

/// How to read one log: its chunks newest first, and which all-zero
/// chunks are damage rather than space not yet used.
#[derive(Debug, Clone)]
pub struct Plan {
    pub order: Vec<u64>,
    /// The file header is missing or bad: chunks ordered by their own record numbers.
    pub bad_header: bool,
    /// Chunks the header says are in use (an all-zero chunk below it is damage).
    pub in_use: u64,
}

/// First and last event record ids of the chunk at `i`, by its header.
fn chunk_ids(file: &dyn LogFile, i: u64) -> Option<(u64, u64)> {
    let mut h = [0u8; 64];
    let n = file.read_at(FILE_HEADER + i * CHUNK, &mut h).ok()?;
    if n < 64 || &h[..8] != b"ElfChnk\0" {
        return None;
    }
    let (first, last) = (le_u64(&h, 24), le_u64(&h, 32));
    (first <= last).then_some((first, last))
}

/// The chunk order, newest first. The header names the current chunk, but
/// a log Windows did not close (a crash, a snapshot of a running VM) has a
/// stale header: the chunks after it that continue its record numbers are
/// newer, so the walk starts at the last of them. Without a usable header
/// every chunk header is read and the one with the highest record number
/// starts the walk. Then backwards, circularly.
pub fn plan(file: &dyn LogFile, header: &[u8]) -> Plan {
    let chunks = file.len().saturating_sub(FILE_HEADER) / CHUNK;
    let valid = header.len() >= 128 && &header[..8] == b"ElfFile\0";
    let in_use = if valid { u64::from(le_u16(header, 42)).min(chunks) } else { chunks };
    let current = valid.then(|| le_u64(header, 16)).filter(|c| *c < chunks);
    let mut newest = None;
    if let Some(c) = current {
        if let Some((_, mut last)) = chunk_ids(file, c) {
            let mut j = c;
            for _ in 1..chunks {
                let next = (j + 1) % chunks;
                match chunk_ids(file, next) {
                    Some((f, l)) if f == last.wrapping_add(1) => {
                        j = next;
                        last = l;
                    }
                    _ => break,
                }
            }
            newest = Some(j);
        }
    }
    let bad_header = newest.is_none();
    // A log Windows wrapped (or a snapshot taken while it rewrote chunks)
    // holds its chunks out of file order: read every chunk header (64
    // bytes) and order by last record number, newest first, starting with
    // the chunk the header sequence found; chunks without a header go last
    // (they are read, and counted as damaged or unused).
    let mut ids: Vec<(u64, u64)> = (0..chunks).filter_map(|i| chunk_ids(file, i).map(|(_, l)| (l, i))).collect();
    ids.sort_by(|a, b| b.cmp(a));
    let mut order: Vec<u64> = newest.into_iter().collect();
    order.extend(ids.iter().map(|&(_, i)| i).filter(|i| Some(*i) != newest));
    let seen: std::collections::BTreeSet<u64> = order.iter().copied().collect();
    order.extend((0..chunks).rev().filter(|i| !seen.contains(i)));
    Plan { order, bad_header: bad_header && !valid, in_use }
}

/// Time (µs since the Unix epoch) of the newest record in a chunk, by its
/// record headers alone ([`binxml::records`], no rendering); None for an
/// empty or bad chunk.
pub fn chunk_newest(chunk: &[u8]) -> Option<i64> {
    if chunk.len() < CHUNK_HEADER || &chunk[..8] != b"ElfChnk\0" {
        return None;
    }
    binxml::records(chunk).iter().filter_map(|r| filetime_micros(r.filetime)).max()
}

/// FILETIME (100 ns since 1601) to µs since 1970; None outside 1601..30828.
pub fn filetime_micros(ft: u64) -> Option<i64> {
    const EPOCH_DIFF_US: i64 = 11_644_473_600_000_000;
    if ft == 0 || ft > 0x7FFF_FFFF_FFFF_FFFF {
        return None;
    }
    Some((ft / 10) as i64 - EPOCH_DIFF_US)
}

/// The file header (up to 4 KiB; short for a truncated file).
pub fn header(file: &dyn LogFile) -> crate::Result<Vec<u8>> {
    let mut h = vec![0u8; FILE_HEADER as usize];
    let n = file.read_at(0, &mut h)?;
    h.truncate(n);
    Ok(h)
}

/// The newest record time of a log: the newest of the first four chunks
/// of its plan (the current chunk, and the chunks with the highest record
/// numbers: a current chunk just started or damaged, an island chunk of
/// newer records past zeroed ones).
pub fn newest(file: &dyn LogFile, plan: &Plan, budget: &mut u64) -> Option<i64> {
    let mut buf = vec![0u8; CHUNK as usize];
    let mut newest = None;
    for &i in plan.order.iter().take(4) {
        if *budget < CHUNK {
            break;
        }
        *budget -= CHUNK;
        let n = file.read_at(FILE_HEADER + i * CHUNK, &mut buf).unwrap_or(0);
        newest = newest.max(chunk_newest(&buf[..n]));
    }
    newest
}

/// What the record headers (and, with the prefilter, the binary XML) of
/// one chunk say, before the crate is asked to render any of it.
struct Peek {
    /// The newest record with a valid time (None: no record is dated).
    newest: Option<i64>,
    /// Records walked.
    walked: usize,
    /// Records in the window that the prefilter says are surely not evidence
    /// (binary XML offset of each: the crate's `binxml_offset`).
    skip: std::collections::HashSet<u64>,
    /// Records in the window the crate must render (may be evidence).
    render: usize,
    /// The walk ended before the free space (a torn or damaged chunk): the
    /// crate may find more records.
    torn: bool,
    /// The record that carries the header's last record id is not the last
    /// one before the free space: (last id, its offset) of the walk.
    extend: Option<(u64, u32)>,
    /// Records in the window (from `since` on).
    in_window: usize,
}

/// Walk one chunk's record headers up to its free space; with `prefilter`,
/// read each in-window record's provider and event id from its binary XML
/// ([`binxml::system_ids`]) and note those no evidence row wants.
fn peek(chunk: &[u8], base: u64, since: i64, prefilter: bool, index: usize, countables: &mut Vec<Countable>) -> Peek {
    let recs = binxml::records(chunk);
    // (The crate resyncs past zeroes too, on a record further on.)
    let torn = torn(chunk, &recs);
    let mut p = Peek { newest: None, walked: recs.len(), skip: Default::default(), render: 0, torn, extend: extend(chunk, &recs), in_window: 0 };
    let mut templates = binxml::Templates::default();
    for r in &recs {
        let Some(t) = filetime_micros(r.filetime) else {
            // The crate decides about a record it cannot date.
            p.render += 1;
            continue;
        };
        p.newest = p.newest.max(Some(t));
        if t < since {
            continue;
        }
        p.in_window += 1;
        let at = r.offset + 24;
        if !prefilter {
            p.render += 1;
            continue;
        }
        let ids = binxml::system_ids_in(chunk, at, r.size.saturating_sub(28), base, &mut templates, &|id| extract::WANTED.iter().any(|w| w.ids.contains(&id))).unwrap_or_default();
        if surely_unwanted(&ids) {
            p.skip.insert(at as u64);
            continue;
        }
        let row = ids.event_id.zip(ids.provider.as_deref()).and_then(|(id, prov)| extract::wanted(prov, id).map(|w| (w, id)));
        match row {
            // (In a torn chunk the crate goes through every record and has
            // the last word on which are readable: rendered there.)
            Some((w, id)) if extract::countable(w) && !p.torn => {
                // Counted, or rendered if among the newest (decided after the walk).
                p.skip.insert(at as u64);
                countables.push(Countable { id, micros: t, record_id: r.id, provider: w.provider, chunk: index, at: at as u64 });
            }
            _ => p.render += 1,
        }
    }
    p
}

/// Whether a record with these System ids names no row of the evidence
/// table: its event id is known and no row lists it, or its provider is
/// known too and no row names both.
pub fn surely_unwanted(s: &binxml::SystemIds) -> bool {
    let Some(id) = s.event_id else { return false };
    if !extract::WANTED.iter().any(|w| w.ids.contains(&id)) {
        return true;
    }
    s.provider.as_deref().is_some_and(|p| extract::wanted(p, id).is_none())
}

/// A record the peek found in the window that a countable row wants.
struct Countable {
    id: u32,
    micros: i64,
    record_id: u64,
    provider: &'static str,
    /// Index in the walk's list of chunks, binary XML offset in the chunk.
    chunk: usize,
    at: u64,
}

/// One chunk the first pass looked at.
struct Seen {
    i: u64,
    /// Offsets (binary XML) of records not to render: surely not evidence,
    /// or only counted.
    skip: std::collections::HashSet<u64>,
    /// The crate must go through it: records to render, a torn chunk, or
    /// a bad chunk (for the damage count).
    crate_needed: bool,
    /// In-window records found by the peek (for chunks the crate skips).
    in_window: usize,
    /// Peeked past the window's edge (damage is not counted there).
    tail: bool,
    /// [`Peek::extend`].
    extend: Option<(u64, u32)>,
}

/// Read `file` newest first, handing each rendered record from `since`
/// (µs) on to `sink`.
///
/// With `prefilter`, only records the evidence table may want are
/// rendered. A first pass reads each chunk's record headers and, for
/// records in the window, their provider and event id from the binary XML
/// ([`peek`]): records no row wants are not rendered, and records of
/// [`extract::countable`] rows past the newest `kept_per_id` of their event
/// id are handed to `sink` as counted only. The second pass hands the
/// crate only the chunks that hold a record to render.
///
/// Past the first chunk wholly older than the window, up to
/// `limits.tail_chunks` more chunks are peeked at: a log copied while
/// Windows wrote it (a volume shadow copy, a running VM's disk) holds
/// newer records in chunks whose headers still say old.
pub fn walk(file: &dyn LogFile, plan: &Plan, since: i64, limits: &Limits, budget: &mut u64, prefilter: bool, sink: &mut dyn FnMut(Raw)) -> Walk {
    let mut w = Walk { bad_header: plan.bad_header, ..Walk::default() };
    if file.len() < FILE_HEADER + CHUNK {
        w.stopped = Some(format!("truncated: {} bytes, no complete chunk", file.len()));
        return w;
    }
    if file.len() > FILE_HEADER && (file.len() - FILE_HEADER) % CHUNK != 0 {
        w.stopped = Some(format!("truncated: {} bytes after the last whole chunk ignored", (file.len() - FILE_HEADER) % CHUNK));
    }
    // Pass 1: record headers and System ids, newest chunk first.
    let mut looked = 0usize;
    let mut tail: Option<usize> = None;
    let mut seen: Vec<Seen> = Vec::new();
    let mut countables: Vec<Countable> = Vec::new();
    let mut data = vec![0u8; CHUNK as usize];
    for (n, &i) in plan.order.iter().enumerate() {
        if n >= limits.chunks_per_log {
            if tail.is_none() {
                w.stopped = Some(format!("stopped after {} chunks (cap)", limits.chunks_per_log));
            }
            break;
        }
        if tail.is_some_and(|t| t >= limits.tail_chunks) {
            break;
        }
        if *budget < CHUNK {
            w.stopped = Some("stopped: the byte budget of all logs is spent".into());
            break;
        }
        if looked >= limits.records_per_log {
            w.stopped = Some(format!("stopped after {} records (cap)", limits.records_per_log));
            break;
        }
        let got = match file.read_at(FILE_HEADER + i * CHUNK, &mut data) {
            Ok(n) => n,
            Err(e) => {
                w.stopped = Some(format!("chunk {i} unreadable: {e}"));
                break;
            }
        };
        *budget -= CHUNK;
        w.bytes += got as u64;
        if got < CHUNK as usize {
            w.stopped = Some(format!("truncated at chunk {i}"));
            break;
        }
        let in_tail = tail.is_some();
        if let Some(t) = tail.as_mut() {
            *t += 1;
        }
        if data[..8].iter().all(|&b| b == 0) {
            // Never written (a preallocated log not yet full), unless the
            // header counts it as in use: then it was wiped.
            if i < plan.in_use && !in_tail {
                w.chunks_damaged += 1;
            }
            continue;
        }
        if &data[..8] != b"ElfChnk\0" {
            if !in_tail {
                // The crate says why (and counts it as damaged).
                seen.push(Seen { i, skip: Default::default(), crate_needed: true, in_window: 0, tail: false, extend: None });
            }
            continue;
        }
        let base = FILE_HEADER + i * CHUNK;
        let p = peek(&data, base, since, prefilter, seen.len(), &mut countables);
        looked += p.walked;
        w.newest = w.newest.max(p.newest);
        if in_tail && p.in_window == 0 && !p.torn {
            // Nothing new in this old chunk.
            continue;
        }
        if p.newest.is_some() && p.in_window == 0 && !in_tail {
            // Wholly older than the window: the chunks behind it are older
            // still, but for torn copies (see above).
            tail = Some(0);
        }
        let crate_needed = p.render > 0 || p.torn || p.extend.is_some();
        seen.push(Seen { i, skip: p.skip, crate_needed, in_window: p.in_window, tail: in_tail, extend: p.extend });
    }
    // The newest `kept_per_id` records of each countable event id are
    // rendered; the others are only counted.
    countables.sort_by(|a, b| a.id.cmp(&b.id).then(b.micros.cmp(&a.micros)).then(b.record_id.cmp(&a.record_id)));
    let mut run = (u32::MAX, 0usize);
    for c in &countables {
        run = if run.0 == c.id { (c.id, run.1 + 1) } else { (c.id, 1) };
        if run.1 <= limits.kept_per_id.max(1) {
            seen[c.chunk].skip.remove(&c.at);
            seen[c.chunk].crate_needed = true;
        } else {
            sink(Raw { record_id: c.record_id, micros: c.micros, json: J::Null, counted: Some((c.provider, c.id)) });
        }
    }
    drop(countables);
    // Pass 2: the crate renders what is left, chunk by chunk.
    let settings = Arc::new(evtx::ParserSettings::default().indent(false));
    for s in &seen {
        if !s.crate_needed {
            w.chunks_read += 1;
            w.records += s.in_window;
            continue;
        }
        let mut data = vec![0u8; CHUNK as usize];
        match file.read_at(FILE_HEADER + s.i * CHUNK, &mut data) {
            Ok(n) if n == CHUNK as usize => {}
            _ => continue,
        }
        let base = FILE_HEADER + s.i * CHUNK;
        // The crate is fuzzed and forbids unsafe code; should it panic on
        // some chunk all the same, the chunk counts as damaged.
        let r = crate::fs::guard(crate::Layer::Fs, base, || {
            let Ok(mut cd) = evtx::EvtxChunkData::new(data, false) else { return Ok(None) };
            if let Some((last, at)) = s.extend {
                // Windows appended records past the last one its (stale)
                // header names: read them, up to the free space.
                cd.header.last_event_record_id = last;
                cd.header.last_event_record_data_offset = at;
            }
            let Ok(mut chunk) = cd.parse(settings.clone()) else { return Ok(None) };
            let (mut in_window, mut bad, mut records, mut n) = (false, 0usize, 0usize, 0usize);
            for rec in chunk.iter() {
                n += 1;
                if n > limits.records_per_log {
                    break;
                }
                let rec = match rec {
                    Ok(r) => r,
                    Err(_) => {
                        bad += 1;
                        continue;
                    }
                };
                let t = rec.timestamp.as_microsecond();
                if t < since {
                    continue;
                }
                in_window = true;
                if s.skip.contains(&rec.binxml_offset) {
                    // Not evidence, or counted in pass 1: not rendered.
                    records += 1;
                    continue;
                }
                let id = rec.event_record_id;
                match rec.into_json_bytes() {
                    Ok(r) => {
                        records += 1;
                        // Parse only what the evidence table may want.
                        if prefilter && quick_unwanted(&r.data) {
                            continue;
                        }
                        match serde_json::from_slice(&r.data) {
                            Ok(json) => sink(Raw { record_id: id, micros: t, json, counted: None }),
                            Err(_) => bad += 1,
                        }
                    }
                    Err(_) => bad += 1,
                }
            }
            Ok(Some((in_window, bad, records)))
        });
        let Ok(Some((in_window, bad, records))) = r else {
            if !s.tail {
                w.chunks_damaged += 1;
            }
            continue;
        };
        if s.tail && !in_window {
            continue;
        }
        w.chunks_read += 1;
        w.records_damaged += bad;
        w.records += records;
    }
    w
}

/// The header fix of [`Peek::extend`] for a chunk about to be parsed,
/// from its records (`recs`: [`binxml::records`]).
fn extend(chunk: &[u8], recs: &[binxml::RecordAt]) -> Option<(u64, u32)> {
    let header_last = le_u64(chunk, 32);
    let pos = recs.iter().position(|r| r.id == header_last)?;
    let last = recs.last()?;
    (pos + 1 < recs.len() && last.id > header_last).then_some((last.id, last.offset as u32))
}

/// Whether the walk of a chunk's records (`recs`: [`binxml::records`])
/// ended before its free space: room for a record header is left between
/// the last record and the free-space offset (garbage or zeroes where the
/// next record should start).
pub fn torn(chunk: &[u8], recs: &[binxml::RecordAt]) -> bool {
    let stop = recs.last().map_or(CHUNK_HEADER, |r| r.offset + r.size);
    stop + 24 <= binxml::free_space(chunk)
}

/// Whether a rendered record (compact JSON from the evtx crate) is surely
/// not evidence: its provider and event id, found by a plain scan, name no
/// row of the table. False when the scan cannot tell (then it is parsed).
pub fn quick_unwanted(json: &[u8]) -> bool {
    fn after<'a>(h: &'a [u8], key: &[u8]) -> Option<&'a [u8]> {
        h.windows(key.len()).position(|w| w == key).map(|i| &h[i + key.len()..])
    }
    let Some(p) = after(json, br##""Provider":{"#attributes":{"Name":""##) else { return false };
    let Some(end) = p.iter().position(|&b| b == b'"' || b == b'\\') else { return false };
    if p[end] != b'"' {
        return false;
    }
    let Ok(provider) = std::str::from_utf8(&p[..end]) else { return false };
    let Some(mut e) = after(json, br##""EventID":"##) else { return false };
    if e.first() == Some(&b'{') {
        let Some(t) = after(e, br##""#text":"##) else { return false };
        e = t;
    }
    let digits = e.iter().take_while(|b| b.is_ascii_digit()).count();
    let Some(id) = std::str::from_utf8(&e[..digits]).ok().and_then(|d| d.parse::<u32>().ok()) else { return false };
    extract::wanted(provider, id).is_none()
}

/// The fields of a rendered record that the extraction reads: provider,
/// event id, and EventData / UserData flattened to name → value.
pub fn fields(json: &J) -> Option<(String, u32, serde_json::Map<String, J>)> {
    let sys = json.get("Event")?.get("System")?;
    let id = match sys.get("EventID")? {
        J::Number(n) => n.as_u64()?,
        J::Object(o) => o.get("#text").and_then(|t| t.as_u64().or_else(|| t.as_str().and_then(|s| s.parse().ok())))?,
        J::String(s) => s.parse().ok()?,
        _ => return None,
    };
    let provider = sys.get("Provider").and_then(|p| p.get("#attributes")).and_then(|a| a.get("Name")).and_then(J::as_str).unwrap_or_default().to_string();
    let mut out = serde_json::Map::new();
    let ev = json.get("Event")?;
    if let Some(J::Object(d)) = ev.get("EventData") {
        extract::flatten(d, &mut out);
    }
    if let Some(J::Object(u)) = ev.get("UserData") {
        // One element (EventXML, LogFileCleared, ...) holding the fields.
        for v in u.values() {
            if let J::Object(inner) = v {
                extract::flatten(inner, &mut out);
            }
        }
    }
    Some((provider, u32::try_from(id).ok()?, out))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quick_filter_keeps_what_the_table_wants() {
        let rec = |prov: &str, id: &str| format!(r##"{{"Event":{{"System":{{"Provider":{{"#attributes":{{"Name":"{prov}"}}}},"EventID":{id}}}}}}}"##);
        assert!(!quick_unwanted(rec("Service Control Manager", r##"{"#attributes":{"Qualifiers":49152},"#text":7023}"##).as_bytes()));
        assert!(quick_unwanted(rec("Service Control Manager", r##"{"#attributes":{"Qualifiers":16384},"#text":7036}"##).as_bytes()));
        assert!(!quick_unwanted(rec("Microsoft-Windows-RemoteDesktopServices-RdpCoreTS", "140").as_bytes()));
        assert!(quick_unwanted(rec("Microsoft-Windows-RemoteDesktopServices-RdpCoreTS", "148").as_bytes()));
        // Cannot tell: parsed.
        assert!(!quick_unwanted(b"{}"));
        assert!(!quick_unwanted(rec("A\\\"B", "1").as_bytes()));
    }

    /// The newest time of a chunk comes from the one record walk
    /// (binxml::records): a record header whose size runs past the chunk
    /// or is too small for a record does not set it, and the free-space
    /// offset ends the walk.
    #[test]
    fn chunk_newest_counts_only_walked_records() {
        let mut c = vec![0u8; CHUNK as usize];
        c[..8].copy_from_slice(b"ElfChnk\0");
        let ft = |us: i64| ((us + 11_644_473_600_000_000) * 10) as u64;
        let mut at = CHUNK_HEADER;
        for (size, us) in [(100u32, 5_000_000i64), (100, 7_000_000), (0x7FFF_FFF0, 9_000_000)] {
            c[at..at + 4].copy_from_slice(&[0x2a, 0x2a, 0, 0]);
            c[at + 4..at + 8].copy_from_slice(&size.to_le_bytes());
            c[at + 16..at + 24].copy_from_slice(&ft(us).to_le_bytes());
            at += 100;
        }
        c[48..52].copy_from_slice(&u32::MAX.to_le_bytes());
        assert_eq!(chunk_newest(&c), Some(7_000_000));
        let recs = binxml::records(&c);
        assert!(torn(&c, &recs), "the walk stopped before the free space");
        c[CHUNK_HEADER + 104..CHUNK_HEADER + 108].copy_from_slice(&24u32.to_le_bytes());
        assert_eq!(chunk_newest(&c), Some(5_000_000));
        c[48..52].copy_from_slice(&(CHUNK_HEADER as u32 + 100).to_le_bytes());
        assert!(!torn(&c, &binxml::records(&c)));
        c[..8].fill(0);
        assert_eq!(chunk_newest(&c), None);
    }

    #[test]
    fn filetimes() {
        assert_eq!(filetime_micros(116_444_736_000_000_000), Some(0));
        assert_eq!(filetime_micros(0), None);
        assert_eq!(filetime_micros(u64::MAX), None);
    }
}
