//! New-format transaction logs (Windows 8.1 / Server 2012 R2 and later): a
//! 512-byte base-block copy with file type 6, then HvLE entries (formats.md B.2).

use super::base::{Fields, HBIN_ALIGN, LOG_BASE_LEN};
use super::marvin32::{marvin32, HVLE_SEED};
use crate::bytes::{le_u32, le_u64};

const ENTRY_HEADER_LEN: usize = 40;

/// One validated HvLE entry. Every page reference lies inside `hbins` and every
/// page's bytes inside the entry, so applying it cannot fail half-way.
#[derive(Debug, Clone)]
pub struct Entry<'a> {
    pub seq: u32,
    pub flags: u32,
    /// Hive bins data size after this entry.
    pub hbins: u32,
    /// Entry size in bytes (a multiple of 512).
    pub size: usize,
    refs: &'a [u8],
    data: &'a [u8],
}

impl<'a> Entry<'a> {
    /// `(offset relative to the hive bins data, page bytes)` in reference order.
    pub fn pages(&self) -> impl Iterator<Item = (usize, &'a [u8])> + '_ {
        let data = self.data;
        let mut pos = 0usize;
        self.refs.chunks_exact(8).filter_map(move |r| {
            let off = le_u32(r, 0) as usize;
            let size = le_u32(r, 4) as usize;
            let page = data.get(pos..pos + size)?;
            pos += size;
            Some((off, page))
        })
    }
}

/// A parsed new-format log: its base block and the chain of consecutive valid
/// entries that starts at the base-block sequence number.
#[derive(Debug)]
pub struct NewLog<'a> {
    /// The 512-byte base-block copy.
    pub base: &'a [u8],
    pub fields: Fields,
    pub entries: Vec<Entry<'a>>,
    /// Set when the chain ended at an entry that carries the expected sequence
    /// number but is damaged (torn write, bad hash, bad field); a chain that
    /// just runs into a non-HvLE sector, an older entry or the end of the file
    /// ends cleanly and leaves this `None`.
    pub damaged: Option<String>,
    /// Where the first entry was expected, when the chain is empty and the
    /// reason is not damage: what was found there.
    pub empty_reason: Option<String>,
}

impl NewLog<'_> {
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

/// Parse the entry chain of a log whose base block `fields` has already been
/// checked (`base::check_log_base`, file type 6). Entries whose hive-bins size
/// exceeds `hbins_limit` count as damaged.
pub fn parse<'a>(log: &'a [u8], fields: Fields, hbins_limit: u32) -> NewLog<'a> {
    let mut out = NewLog {
        base: &log[..LOG_BASE_LEN.min(log.len())],
        fields,
        entries: Vec::new(),
        damaged: None,
        empty_reason: None,
    };
    let mut off = LOG_BASE_LEN;
    let mut expected = fields.seq1;
    // Every entry is at least 512 bytes, so this loop runs at most len/512 times.
    loop {
        match parse_entry(log, off, expected, hbins_limit) {
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
    out
}

fn parse_entry<'a>(log: &'a [u8], off: usize, expected: u32, hbins_limit: u32) -> Result<Entry<'a>, Stop> {
    let Some(hdr) = log.get(off..off + ENTRY_HEADER_LEN) else {
        return Err(Stop::End(format!("end of file at offset {off:#x}")));
    };
    if &hdr[0..4] != b"HvLE" {
        return Err(Stop::End(format!("no HvLE signature at offset {off:#x}")));
    }
    let seq = le_u32(hdr, 12);
    if seq != expected {
        return Err(Stop::End(format!(
            "entry at offset {off:#x} has sequence number {seq}, expected {expected}"
        )));
    }
    let bad = |msg: String| Stop::Bad(format!("entry {seq} at offset {off:#x}: {msg}"));
    let size = le_u32(hdr, 4) as usize;
    if size < LOG_BASE_LEN || size % LOG_BASE_LEN != 0 {
        return Err(bad(format!("size {size:#x} is not a non-zero multiple of 512")));
    }
    let Some(entry) = log.get(off..off + size) else {
        return Err(bad(format!(
            "size {size:#x} runs past the end of the file ({:#x} bytes)",
            log.len()
        )));
    };
    let hbins = le_u32(hdr, 16);
    if hbins == 0 || hbins % HBIN_ALIGN != 0 {
        return Err(bad(format!(
            "hive bins data size {hbins:#x} is not a non-zero multiple of 4096"
        )));
    }
    if hbins > hbins_limit {
        return Err(bad(format!(
            "hive bins data size {hbins:#x} exceeds the {hbins_limit:#x} limit"
        )));
    }
    let count = le_u32(hdr, 20) as usize;
    let pages_start = ENTRY_HEADER_LEN as u64 + 8 * count as u64;
    if count == 0 || pages_start > size as u64 {
        return Err(bad(format!("dirty page count {count} does not fit in the entry")));
    }
    let pages_start = pages_start as usize;
    if marvin32(HVLE_SEED, &entry[..32]) != le_u64(hdr, 32) {
        return Err(bad("Hash-2 mismatch (torn or damaged header)".into()));
    }
    if marvin32(HVLE_SEED, &entry[ENTRY_HEADER_LEN..]) != le_u64(hdr, 24) {
        return Err(bad("Hash-1 mismatch (torn or damaged page data)".into()));
    }
    let refs = &entry[ENTRY_HEADER_LEN..pages_start];
    let mut total = 0u64;
    for (i, r) in refs.chunks_exact(8).enumerate() {
        let (o, s) = (le_u32(r, 0) as u64, le_u32(r, 4) as u64);
        if o + s > hbins as u64 {
            return Err(bad(format!(
                "page reference {i} (offset {o:#x}, size {s:#x}) points past the hive bins data size {hbins:#x}"
            )));
        }
        total += s;
    }
    if pages_start as u64 + total > size as u64 {
        return Err(bad(format!(
            "its {count} pages ({total:#x} bytes) run past the entry size {size:#x}"
        )));
    }
    Ok(Entry {
        seq,
        flags: le_u32(hdr, 8),
        hbins,
        size,
        refs,
        data: &entry[pages_start..],
    })
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
        let log = parse(&l, fields(10), 1 << 30);
        assert_eq!(log.entries.len(), 2);
        assert_eq!(log.last_seq(), Some(11));
        assert!(log.damaged.is_none());
        assert_eq!(log.entries[1].flags, 1);
        let pages: Vec<_> = log.entries[1].pages().collect();
        assert_eq!(pages.len(), 1);
        assert_eq!(pages[0].0, 4096);
        assert_eq!(pages[0].1.len(), 4096);
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
            let log = parse(&l, fields(1), 1 << 30);
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
            let log = parse(&l, fields(7), 1 << 30);
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
        let log = parse(&l, fields(u32::MAX), 1 << 30);
        assert_eq!(log.entries.len(), 2);
        assert_eq!(log.last_seq(), Some(0));
    }
}
