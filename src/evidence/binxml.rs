//! The least of a record's binary XML that says whether it can be
//! evidence: the provider name and the event id of its `System` element,
//! read without rendering the record (formats: libevtx "Windows XML Event
//! Log (EVTX) format", MS-EVEN6 2.2 BinXml). The `evtx` crate renders a
//! whole record before its event id can be seen, and most records are not
//! evidence; this lets the walk hand the crate only those that may be.
//!
//! A record is a fragment header, then either a template instance (a
//! template id, the chunk offset of its definition, which may follow in
//! place, then the substitution values) or elements written out. The
//! definition is walked until `Event/System` closes: `Provider/@Name` and
//! the text of `EventID` are either literal text or substitution indices,
//! resolved in the instance's value array.
//!
//! Everything is bounded (offsets checked against the chunk, a cap on
//! tokens and depth) and nothing panics. A shape this reader does not know
//! is `None` ("cannot tell": the caller renders the record); bytes that are
//! not BinXml are an error naming the layer and the offset in the file.

use crate::bytes::{le_u16, le_u32, le_u64};
use crate::{Error, Layer, Result};

/// Tokens walked in one template definition before giving up (System
/// comes first: real templates reach its end within ~30).
const MAX_TOKENS: usize = 512;
/// Element nesting followed.
const MAX_DEPTH: usize = 32;

/// Provider name and event id of one record; `None` for a field this
/// reader could not resolve (then the record may be anything).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SystemIds {
    pub provider: Option<String>,
    pub event_id: Option<u32>,
}

/// Where a field's value is: text in the definition, or a substitution.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Src {
    Text(String),
    Sub(u16),
    /// Mixed or unusual content (entity references, several parts).
    Unknown,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Event,
    System,
    Provider,
    EventId,
    Other,
}

/// A bounded reader over the chunk, `end` exclusive.
struct Cur<'a> {
    d: &'a [u8],
    pos: usize,
    end: usize,
    /// File offset of the chunk (for errors).
    base: u64,
}

impl<'a> Cur<'a> {
    fn bad(&self, at: usize, msg: impl Into<String>) -> Error {
        Error::Corrupt { layer: Layer::Evtx, offset: self.base + at as u64, msg: msg.into() }
    }
    fn take(&mut self, n: usize) -> Result<&'a [u8]> {
        match self.pos.checked_add(n).filter(|&e| e <= self.end) {
            Some(e) => {
                let s = &self.d[self.pos..e];
                self.pos = e;
                Ok(s)
            }
            None => Err(self.bad(self.pos, format!("binary XML: {n} bytes wanted past the end of the record or template"))),
        }
    }
    fn u8(&mut self) -> Result<u8> {
        Ok(self.take(1)?[0])
    }
    fn u16(&mut self) -> Result<u16> {
        Ok(le_u16(self.take(2)?, 0))
    }
    fn u32(&mut self) -> Result<u32> {
        Ok(le_u32(self.take(4)?, 0))
    }
    /// A name reference (chunk offset of the name); a name stored in place
    /// (its offset is where the reference ends) is stepped over.
    fn name_ref(&mut self) -> Result<u32> {
        let off = self.u32()?;
        if off as usize == self.pos {
            self.take(6)?;
            let n = self.u16()? as usize;
            self.take(n * 2 + 2)?;
        }
        Ok(off)
    }
    /// UTF-16LE text with a u16 character count before it.
    fn counted_utf16(&mut self) -> Result<&'a [u8]> {
        let n = self.u16()? as usize;
        self.take(n * 2)
    }
}

/// Whether the name at chunk offset `off` (next offset u32, hash u16,
/// count u16, UTF-16LE) is `want` (ASCII, exact: XML names are case-sensitive).
fn name_is(chunk: &[u8], off: u32, want: &str) -> bool {
    let o = off as usize;
    // (0 past the chunk: no name wanted is empty.)
    let count = le_u16(chunk, o + 6) as usize;
    if count != want.len() {
        return false;
    }
    let Some(chars) = chunk.get(o + 8..o + 8 + 2 * count) else { return false };
    chars.chunks_exact(2).zip(want.bytes()).all(|(c, w)| c[0] == w && c[1] == 0)
}

fn utf16(b: &[u8]) -> String {
    crate::bytes::utf16le_name(b).trim_end_matches('\0').to_string()
}

/// What the walk of an element tree found.
#[derive(Default, Clone)]
struct Found {
    provider: Option<Src>,
    event_id: Option<Src>,
}

fn put(slot: &mut Option<Src>, v: Src) {
    *slot = Some(match (slot.take(), v) {
        (None, v) => v,
        (Some(Src::Text(a)), Src::Text(b)) => Src::Text(a + &b),
        _ => Src::Unknown,
    });
}

/// Walk element tokens from `c.pos` to `c.end` until `Event/System` ends.
/// `dep`: element starts carry a dependency id (template definitions).
/// Ok(None) for a shape not handled here.
fn walk(c: &mut Cur<'_>, dep: bool) -> Result<Option<Found>> {
    let mut found = Found::default();
    let mut stack: Vec<Kind> = Vec::new();
    let mut in_start = false;
    // Inside the Name attribute of Provider.
    let mut provider_name = false;
    for _ in 0..MAX_TOKENS {
        if c.pos >= c.end {
            break;
        }
        let at = c.pos;
        let tok = c.u8()?;
        match tok {
            0x00 => break,
            0x01 | 0x41 => {
                if dep {
                    c.u16()?;
                }
                c.u32()?;
                let name = c.name_ref()?;
                if tok == 0x41 {
                    c.u32()?;
                }
                let kind = match stack.last() {
                    None if name_is(c.d, name, "Event") => Kind::Event,
                    Some(Kind::Event) if name_is(c.d, name, "System") => Kind::System,
                    Some(Kind::System) if name_is(c.d, name, "Provider") => Kind::Provider,
                    Some(Kind::System) if name_is(c.d, name, "EventID") => Kind::EventId,
                    _ => Kind::Other,
                };
                if stack.len() >= MAX_DEPTH {
                    return Ok(None);
                }
                stack.push(kind);
                in_start = true;
                provider_name = false;
            }
            0x02 => {
                in_start = false;
                provider_name = false;
            }
            0x03 | 0x04 => {
                in_start = false;
                provider_name = false;
                if stack.pop() == Some(Kind::System) {
                    return Ok(Some(found));
                }
                if stack.is_empty() {
                    // The root closed without a System element.
                    return Ok(Some(found));
                }
            }
            0x05 | 0x45 => {
                let ty = c.u8()?;
                if ty != 0x01 {
                    // Value text is a string (MS-EVEN6); anything else is not walked here.
                    return Ok(None);
                }
                let s = c.counted_utf16()?;
                if in_start && provider_name {
                    put(&mut found.provider, Src::Text(utf16(s)));
                } else if !in_start && stack.last() == Some(&Kind::EventId) {
                    put(&mut found.event_id, Src::Text(utf16(s)));
                }
            }
            0x06 | 0x46 => {
                let name = c.name_ref()?;
                provider_name = in_start && stack.last() == Some(&Kind::Provider) && name_is(c.d, name, "Name");
            }
            0x07 | 0x47 | 0x08 | 0x48 | 0x09 | 0x49 => {
                match tok & 0x0f {
                    0x07 => {
                        c.counted_utf16()?;
                    }
                    0x08 => {
                        c.u16()?;
                    }
                    _ => {
                        c.name_ref()?;
                    }
                }
                if in_start && provider_name {
                    put(&mut found.provider, Src::Unknown);
                } else if !in_start && stack.last() == Some(&Kind::EventId) {
                    put(&mut found.event_id, Src::Unknown);
                }
            }
            0x0a => {
                c.name_ref()?;
            }
            0x0b => {
                c.counted_utf16()?;
            }
            0x0d | 0x0e => {
                let i = c.u16()?;
                c.u8()?;
                if in_start && provider_name {
                    put(&mut found.provider, Src::Sub(i));
                } else if !in_start && stack.last() == Some(&Kind::EventId) {
                    put(&mut found.event_id, Src::Sub(i));
                }
            }
            0x0f => {
                c.take(3)?;
            }
            // A template instance inside a definition: not followed here.
            0x0c => return Ok(None),
            _ => return Err(c.bad(at, format!("binary XML: unknown token 0x{tok:02x}"))),
        }
    }
    Ok(Some(found))
}

/// The substitution values of a template instance: where its descriptors
/// and values start, and how many; values are looked up by index.
struct Values<'a> {
    desc: &'a [u8],
    data: &'a [u8],
}

fn values<'a>(c: &mut Cur<'a>) -> Result<Values<'a>> {
    let at = c.pos;
    let n = c.u32()? as usize;
    if n.saturating_mul(4) > c.end.saturating_sub(c.pos) {
        return Err(c.bad(at, format!("binary XML: {n} substitutions do not fit in the record")));
    }
    let desc = c.take(n * 4)?;
    let data = &c.d[c.pos..c.end];
    Ok(Values { desc, data })
}

impl<'a> Values<'a> {
    /// Type and bytes of value `i` (None past the record).
    fn get(&self, i: usize) -> Option<(u8, &'a [u8])> {
        let mut at = 0usize;
        for (k, d) in self.desc.chunks_exact(4).enumerate() {
            let size = le_u16(d, 0) as usize;
            if k == i {
                return Some((d[2], self.data.get(at..at + size)?));
            }
            at += size;
        }
        None
    }
}

fn resolve(src: Option<&Src>, vals: &Values<'_>) -> Option<Src> {
    match src? {
        Src::Sub(i) => {
            let (ty, b) = vals.get(*i as usize)?;
            Some(match ty {
                0x01 => Src::Text(utf16(b)),
                // Unsigned integers (the event id's usual types).
                0x04 | 0x06 | 0x08 | 0x0a if b.len() <= 8 && !b.is_empty() => {
                    let mut w = [0u8; 8];
                    w[..b.len()].copy_from_slice(b);
                    Src::Text(u64::from_le_bytes(w).to_string())
                }
                _ => return None,
            })
        }
        other => Some(other.clone()),
    }
}

/// What the template definitions of one chunk say (by definition offset),
/// so each is walked once per chunk.
#[derive(Default)]
pub struct Templates(std::collections::HashMap<usize, Option<Found>>);

/// Provider name and event id of the record whose BinXml is
/// `chunk[start..start + len]`; `base` is the chunk's offset in the file.
pub fn system_ids(chunk: &[u8], start: usize, len: usize, base: u64) -> Result<SystemIds> {
    system_ids_in(chunk, start, len, base, &mut Templates::default(), &|_| true)
}

/// [`system_ids`] with the chunk's template cache; the provider is read
/// only when `need_provider(event id)` says so (None otherwise).
pub fn system_ids_in(chunk: &[u8], start: usize, len: usize, base: u64, templates: &mut Templates, need_provider: &dyn Fn(u32) -> bool) -> Result<SystemIds> {
    let end = start.saturating_add(len).min(chunk.len());
    let mut c = Cur { d: chunk, pos: start.min(end), end, base };
    let mut first = c.u8()?;
    if first == 0x0f {
        c.take(3)?;
        first = c.u8()?;
    }
    let (found, vals) = if first == 0x0c {
        c.u8()?;
        c.u32()?;
        let def = c.u32()? as usize;
        let inline = def == c.pos;
        // The definition's header: next definition u32, GUID, data size u32.
        let mut h = Cur { d: chunk, pos: def, end: chunk.len(), base };
        h.take(20)?;
        let size = h.u32()? as usize;
        let body = h.pos;
        let body_end = body.checked_add(size).filter(|&e| e <= chunk.len()).ok_or_else(|| h.bad(def, format!("binary XML: template definition of {size} bytes past the chunk")))?;
        let found = match templates.0.get(&def) {
            Some(f) => f.clone(),
            None => {
                let mut t = Cur { d: chunk, pos: body, end: body_end, base };
                let f = walk(&mut t, true)?;
                templates.0.insert(def, f.clone());
                f
            }
        };
        if inline {
            // The values follow the definition.
            if body_end > end {
                return Err(c.bad(def, "binary XML: template definition past the record"));
            }
            c.pos = body_end;
        }
        (found, values(&mut c)?)
    } else {
        // Elements written out (no template): no substitutions.
        c.pos -= 1;
        (walk(&mut c, false)?, Values { desc: &[], data: &[] })
    };
    let Some(found) = found else { return Ok(SystemIds::default()) };
    let text = |s: Option<Src>| match s {
        Some(Src::Text(t)) => Some(t),
        _ => None,
    };
    let event_id = text(resolve(found.event_id.as_ref(), &vals)).and_then(|t| t.trim().parse::<u32>().ok());
    let provider = if event_id.is_none_or(need_provider) { text(resolve(found.provider.as_ref(), &vals)) } else { None };
    Ok(SystemIds { provider, event_id })
}

/// The chunk header (formats: libevtx "EVTX chunk header"): records start
/// after it.
pub const CHUNK_HEADER: usize = 512;

/// The chunk's free-space offset (header field at 48: where the next
/// record would be written), at most the chunk's length.
pub fn free_space(chunk: &[u8]) -> usize {
    (le_u32(chunk, 48) as usize).min(chunk.len())
}

/// One record header found by walking a chunk: offset, size, id, FILETIME.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RecordAt {
    pub offset: usize,
    pub size: usize,
    pub id: u64,
    pub filetime: u64,
}

/// The records of a chunk one after another from its header (512) up to
/// its free-space offset, the way Windows appends them: each starts with
/// the record magic and a size that stays in the chunk. Stops at the
/// first that does not (zeroes, garbage); bounded by the chunk. The one
/// walk of a chunk's record headers: every reader of them goes through it.
pub fn records(chunk: &[u8]) -> Vec<RecordAt> {
    let mut out = Vec::new();
    if chunk.len() < CHUNK_HEADER {
        return out;
    }
    let free = free_space(chunk);
    let mut at = CHUNK_HEADER;
    while at + 24 <= free {
        if chunk[at..at + 4] != [0x2a, 0x2a, 0, 0] {
            break;
        }
        let size = le_u32(chunk, at + 4) as usize;
        if size < 28 || size > chunk.len() - at {
            break;
        }
        out.push(RecordAt { offset: at, size, id: le_u64(chunk, at + 8), filetime: le_u64(chunk, at + 16) });
        at += size;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A name entry at `off` in `buf`.
    fn name(buf: &mut Vec<u8>, s: &str) -> u32 {
        let off = buf.len() as u32;
        buf.extend_from_slice(&[0; 6]);
        buf.extend_from_slice(&(s.len() as u16).to_le_bytes());
        for b in s.bytes() {
            buf.extend_from_slice(&[b, 0]);
        }
        buf.extend_from_slice(&[0, 0]);
        off
    }

    fn open(buf: &mut Vec<u8>, dep: bool, attrs: bool, n: u32) {
        buf.push(if attrs { 0x41 } else { 0x01 });
        if dep {
            buf.extend_from_slice(&0xffffu16.to_le_bytes());
        }
        buf.extend_from_slice(&0u32.to_le_bytes());
        buf.extend_from_slice(&n.to_le_bytes());
        if attrs {
            buf.extend_from_slice(&0u32.to_le_bytes());
        }
    }

    /// A chunk-like buffer: names, a template definition of
    /// <Event><System><Provider Name=%0/><EventID>%1</EventID></System></Event>,
    /// then a record instance of it with the given values.
    fn sample(provider: &str, id: u16, literal_id: Option<&str>) -> (Vec<u8>, usize, usize) {
        let mut b = vec![0u8; 512];
        let (ev, sys, prov, nm, eid) = (name(&mut b, "Event"), name(&mut b, "System"), name(&mut b, "Provider"), name(&mut b, "Name"), name(&mut b, "EventID"));
        let def = b.len();
        b.extend_from_slice(&[0; 20]);
        let size_at = b.len();
        b.extend_from_slice(&[0; 4]);
        let body = b.len();
        b.extend_from_slice(&[0x0f, 1, 1, 0]);
        open(&mut b, true, false, ev);
        b.push(0x02);
        open(&mut b, true, false, sys);
        b.push(0x02);
        open(&mut b, true, true, prov);
        b.push(0x06);
        b.extend_from_slice(&nm.to_le_bytes());
        b.extend_from_slice(&[0x0e, 0, 0, 0x01]);
        b.push(0x03);
        open(&mut b, true, false, eid);
        b.push(0x02);
        match literal_id {
            Some(t) => {
                b.extend_from_slice(&[0x05, 0x01]);
                b.extend_from_slice(&(t.len() as u16).to_le_bytes());
                for c in t.bytes() {
                    b.extend_from_slice(&[c, 0]);
                }
            }
            None => b.extend_from_slice(&[0x0d, 1, 0, 0x06]),
        }
        b.extend_from_slice(&[0x04, 0x04, 0x04, 0x00]);
        let size = (b.len() - body) as u32;
        b[size_at..size_at + 4].copy_from_slice(&size.to_le_bytes());
        let rec = b.len();
        b.extend_from_slice(&[0x0f, 1, 1, 0, 0x0c, 1]);
        b.extend_from_slice(&7u32.to_le_bytes());
        b.extend_from_slice(&(def as u32).to_le_bytes());
        b.extend_from_slice(&2u32.to_le_bytes());
        let p: Vec<u8> = provider.encode_utf16().flat_map(|u| u.to_le_bytes()).collect();
        b.extend_from_slice(&(p.len() as u16).to_le_bytes());
        b.extend_from_slice(&[0x01, 0]);
        b.extend_from_slice(&[2, 0, 0x06, 0]);
        b.extend_from_slice(&p);
        b.extend_from_slice(&id.to_le_bytes());
        b.push(0);
        let len = b.len() - rec;
        (b, rec, len)
    }

    #[test]
    fn template_substitutions_and_text() {
        let (b, at, len) = sample("Schannel", 36871, None);
        assert_eq!(system_ids(&b, at, len, 0).unwrap(), SystemIds { provider: Some("Schannel".into()), event_id: Some(36871) });
        let (b, at, len) = sample("EventLog", 0, Some("6008"));
        assert_eq!(system_ids(&b, at, len, 0).unwrap().event_id, Some(6008));
    }

    #[test]
    fn every_cut_and_flip_is_bounded() {
        let (b, at, len) = sample("Service Control Manager", 7023, None);
        for cut in 0..len {
            // Short records: an error naming the evtx layer, never a panic.
            if let Err(e) = system_ids(&b, at, cut, 4096) {
                assert!(e.to_string().contains("evtx"), "{e}");
            }
        }
        for i in 0..b.len() {
            for x in [0x00u8, 0xff, 0x41, 0x0c] {
                let mut m = b.clone();
                m[i] = x;
                let _ = system_ids(&m, at, len, 0);
            }
        }
        assert!(system_ids(&b, b.len() + 10, 5, 0).is_err());
    }

    #[test]
    fn record_walk_stops_at_garbage_and_free_space() {
        let mut c = vec![0u8; 65536];
        c[..8].copy_from_slice(b"ElfChnk\0");
        let mut at = 512;
        for id in 1..=3u64 {
            c[at..at + 4].copy_from_slice(&[0x2a, 0x2a, 0, 0]);
            c[at + 4..at + 8].copy_from_slice(&100u32.to_le_bytes());
            c[at + 8..at + 16].copy_from_slice(&id.to_le_bytes());
            at += 100;
        }
        c[48..52].copy_from_slice(&(512u32 + 200).to_le_bytes());
        assert_eq!(records(&c).iter().map(|r| r.id).collect::<Vec<_>>(), [1, 2]);
        c[48..52].copy_from_slice(&u32::MAX.to_le_bytes());
        assert_eq!(records(&c).len(), 3);
        c[512 + 104..512 + 108].copy_from_slice(&u32::MAX.to_le_bytes());
        assert_eq!(records(&c).len(), 1);
    }
}
