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

use super::extract::{self, Raw};
use serde_json::Value as J;
use std::sync::Arc;

/// EVTX layout (formats: libevtx "Windows XML Event Log (EVTX) format").
pub const FILE_HEADER: u64 = 4096;
pub const CHUNK: u64 = 65536;
const CHUNK_HEADER: usize = 512;

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
}

impl Default for Limits {
    fn default() -> Self {
        // A 14-day window of a busy server's Security log fits in 128 MiB
        // (its default maximum is 20 MiB; Azure images often set 128 MiB+).
        Limits { chunks_per_log: 2048, records_per_log: 1_000_000, total_bytes: 512 << 20, kept_per_id: 50 }
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
    let first = u64::from_le_bytes(h[24..32].try_into().ok()?);
    let last = u64::from_le_bytes(h[32..40].try_into().ok()?);
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
    let field = |at: usize| u64::from_le_bytes(header[at..at + 8].try_into().unwrap_or([0; 8]));
    let in_use = if valid { u64::from(u16::from_le_bytes([header[42], header[43]])).min(chunks) } else { chunks };
    let current = valid.then(|| field(16)).filter(|c| *c < chunks);
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
/// record headers alone (no rendering); None for an empty or bad chunk.
pub fn chunk_newest(chunk: &[u8]) -> Option<i64> {
    if chunk.len() < CHUNK_HEADER || &chunk[..8] != b"ElfChnk\0" {
        return None;
    }
    let free = (u32::from_le_bytes(chunk[48..52].try_into().ok()?) as usize).min(chunk.len());
    let mut at = CHUNK_HEADER;
    let mut newest = None;
    while at + 24 <= free {
        if chunk[at..at + 4] != [0x2a, 0x2a, 0, 0] {
            break;
        }
        let size = u32::from_le_bytes(chunk[at + 4..at + 8].try_into().ok()?) as usize;
        let ft = u64::from_le_bytes(chunk[at + 16..at + 24].try_into().ok()?);
        if let Some(t) = filetime_micros(ft) {
            newest = newest.max(Some(t));
        }
        if size < 24 {
            break;
        }
        at += size;
    }
    newest
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

/// The newest record time of a log: the first chunks of its plan (up to
/// four, for a current chunk just started or damaged).
pub fn newest(file: &dyn LogFile, plan: &Plan, budget: &mut u64) -> Option<i64> {
    let mut buf = vec![0u8; CHUNK as usize];
    for &i in plan.order.iter().take(4) {
        if *budget < CHUNK {
            break;
        }
        *budget -= CHUNK;
        let n = file.read_at(FILE_HEADER + i * CHUNK, &mut buf).unwrap_or(0);
        if let Some(t) = chunk_newest(&buf[..n]) {
            return Some(t);
        }
    }
    None
}

/// Read `file` newest first, handing each rendered record from `since`
/// (µs) on to `sink`; with `prefilter`, only those the evidence table may
/// want ([`quick_unwanted`]).
pub fn walk(file: &dyn LogFile, plan: &Plan, since: i64, limits: &Limits, budget: &mut u64, prefilter: bool, sink: &mut dyn FnMut(Raw)) -> Walk {
    let mut w = Walk { bad_header: plan.bad_header, ..Walk::default() };
    let order = &plan.order;
    if file.len() < FILE_HEADER + CHUNK {
        w.stopped = Some(format!("truncated: {} bytes, no complete chunk", file.len()));
        return w;
    }
    if file.len() > FILE_HEADER && (file.len() - FILE_HEADER) % CHUNK != 0 {
        w.stopped = Some(format!("truncated: {} bytes after the last whole chunk ignored", (file.len() - FILE_HEADER) % CHUNK));
    }
    let settings = Arc::new(evtx::ParserSettings::default().indent(false));
    let mut looked = 0usize;
    for (n, &i) in order.iter().enumerate() {
        if n >= limits.chunks_per_log {
            w.stopped = Some(format!("stopped after {} chunks (cap)", limits.chunks_per_log));
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
        let mut data = vec![0u8; CHUNK as usize];
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
        if data[..8].iter().all(|&b| b == 0) {
            // Never written (a preallocated log not yet full), unless the
            // header counts it as in use: then it was wiped.
            if i < plan.in_use {
                w.chunks_damaged += 1;
            }
            continue;
        }
        // The crate is fuzzed and forbids unsafe code; should it panic on
        // some chunk all the same, the chunk counts as damaged.
        let r = crate::fs::guard(crate::Layer::Fs, FILE_HEADER + i * CHUNK, || {
            let Ok(mut cd) = evtx::EvtxChunkData::new(data, false) else { return Ok(None) };
            let Ok(mut chunk) = cd.parse(settings.clone()) else { return Ok(None) };
            let (mut in_window, mut dated, mut bad) = (false, false, 0usize);
            let mut newest = w.newest;
            let mut records = 0usize;
            for rec in chunk.iter() {
                looked += 1;
                if looked > limits.records_per_log {
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
                dated = true;
                newest = newest.max(Some(t));
                if t < since {
                    continue;
                }
                in_window = true;
                let id = rec.event_record_id;
                match rec.into_json_bytes() {
                    Ok(s) => {
                        records += 1;
                        // Parse only what the evidence table may want (most
                        // records are not evidence).
                        if prefilter && quick_unwanted(&s.data) {
                            continue;
                        }
                        match serde_json::from_slice(&s.data) {
                            Ok(json) => sink(Raw { record_id: id, micros: t, json }),
                            Err(_) => bad += 1,
                        }
                    }
                    Err(_) => bad += 1,
                }
            }
            Ok(Some((in_window, dated, bad, newest, records)))
        });
        let Ok(Some((in_window, dated, bad, newest, records))) = r else {
            w.chunks_damaged += 1;
            continue;
        };
        w.chunks_read += 1;
        w.records_damaged += bad;
        w.records += records;
        w.newest = newest;
        if dated && !in_window {
            // Wholly older than the window: the chunks behind it are older still.
            break;
        }
    }
    w
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

    #[test]
    fn filetimes() {
        assert_eq!(filetime_micros(116_444_736_000_000_000), Some(0));
        assert_eq!(filetime_micros(0), None);
        assert_eq!(filetime_micros(u64::MAX), None);
    }
}
