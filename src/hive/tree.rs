//! Reading keys and values of a loaded hive through `nt-hive`, as owned
//! snapshots, plus the few facts `nt-hive` 0.3 does not expose (a key's
//! last-write time), read from the nk cell directly.

use super::{HiveReport, LoadedHive};
use crate::bytes::{le_u16, le_u32, le_u64};
use crate::error::{Error, Layer, Result};
use serde::Serialize;

/// Deepest key path we follow (Windows limits key paths to 512 levels).
pub const MAX_DEPTH: usize = 512;
/// Most keys one recursive query returns.
pub const MAX_KEYS: usize = 2_000_000;

/// A loaded hive: recovered bytes plus what loading did.
pub struct Hive {
    /// SYSTEM, SOFTWARE, SAM, SECURITY, BCD, or the file name of a plain hive.
    pub name: String,
    pub bytes: Vec<u8>,
    pub report: HiveReport,
}

/// A registry value.
#[derive(Debug, Clone, Serialize)]
pub struct Value {
    /// Empty for the default value.
    pub name: String,
    /// Registry type number (REG_SZ = 1, REG_DWORD = 4, ...).
    pub kind: u32,
    /// The data exactly as stored.
    pub raw: Vec<u8>,
}

/// A key with its values and the names of its subkeys.
#[derive(Debug, Clone, Serialize)]
pub struct Key {
    /// Path inside the hive, `\`-separated, as stored (empty for the root).
    pub path: String,
    pub name: String,
    /// Last write time, RFC 3339 UTC (whole seconds).
    pub last_write: Option<String>,
    pub class: Option<String>,
    pub values: Vec<Value>,
    pub subkeys: Vec<String>,
}

fn nt_err(e: nt_hive::NtHiveError) -> Error {
    Error::corrupt(Layer::Hive, 0, format!("{e}"))
}

pub const TYPE_NAMES: [&str; 12] = [
    "REG_NONE",
    "REG_SZ",
    "REG_EXPAND_SZ",
    "REG_BINARY",
    "REG_DWORD",
    "REG_DWORD_BIG_ENDIAN",
    "REG_LINK",
    "REG_MULTI_SZ",
    "REG_RESOURCE_LIST",
    "REG_FULL_RESOURCE_DESCRIPTOR",
    "REG_RESOURCE_REQUIREMENTS_LIST",
    "REG_QWORD",
];

impl Value {
    pub fn type_name(&self) -> String {
        TYPE_NAMES.get(self.kind as usize).map_or_else(|| format!("REG_{:#x}", self.kind), |s| s.to_string())
    }

    /// UTF-16LE data up to the first NUL.
    pub fn string(&self) -> String {
        crate::bytes::utf16le(&self.raw)
    }

    pub fn multi_string(&self) -> Vec<String> {
        let units: Vec<u16> = self.raw.chunks_exact(2).map(|c| u16::from_le_bytes([c[0], c[1]])).collect();
        let mut out: Vec<String> = units.split(|&u| u == 0).map(String::from_utf16_lossy).collect();
        while out.last().is_some_and(|s| s.is_empty()) {
            out.pop();
        }
        out
    }

    /// The value as a DWORD, if it is one.
    pub fn dword(&self) -> Option<u32> {
        match (self.kind, self.raw.len()) {
            (4, 4) => Some(le_u32(&self.raw, 0)),
            (5, 4) => Some(u32::from_be_bytes([self.raw[0], self.raw[1], self.raw[2], self.raw[3]])),
            _ => None,
        }
    }

    pub fn qword(&self) -> Option<u64> {
        (self.kind == 11 && self.raw.len() == 8).then(|| le_u64(&self.raw, 0))
    }

    /// Data as a natural JSON value: numbers for DWORD/QWORD, strings, arrays
    /// for MULTI_SZ, lowercase hex for everything else.
    pub fn json_data(&self) -> serde_json::Value {
        use serde_json::Value as J;
        match self.kind {
            1 | 2 | 6 => J::String(self.string()),
            7 => J::Array(self.multi_string().into_iter().map(J::String).collect()),
            4 | 5 => self.dword().map_or_else(|| J::String(hex(&self.raw)), J::from),
            11 => self.qword().map_or_else(|| J::String(hex(&self.raw)), J::from),
            _ => J::String(hex(&self.raw)),
        }
    }

    /// Data as `reg.exe` prints it.
    pub fn display(&self) -> String {
        match self.kind {
            1 | 2 | 6 => self.string(),
            7 => self.multi_string().join("\\0"),
            4 | 5 => self.dword().map_or_else(|| hex(&self.raw).to_uppercase(), |d| format!("{d:#x} ({d})")),
            11 => self.qword().map_or_else(|| hex(&self.raw).to_uppercase(), |q| format!("{q:#x} ({q})")),
            _ => hex(&self.raw).to_uppercase(),
        }
    }
}

pub fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

/// FILETIME (100 ns since 1601) as RFC 3339 UTC in whole seconds
/// (`2024-01-01T00:00:00Z`), by the `time` crate; `None` for 0 (never
/// written) and for times past the year 9999 (not a real write time).
pub fn filetime_iso(ft: u64) -> Option<String> {
    if ft == 0 {
        return None;
    }
    let secs = (ft / 10_000_000) as i64 - 11_644_473_600;
    let t = time::OffsetDateTime::from_unix_timestamp(secs).ok()?;
    t.format(&time::format_description::well_known::Rfc3339).ok()
}

impl Hive {
    pub fn new(name: impl Into<String>, loaded: LoadedHive) -> Self {
        Hive { name: name.into(), bytes: loaded.bytes, report: loaded.report }
    }

    fn nt(&self) -> Result<nt_hive::Hive<&[u8]>> {
        nt_hive::Hive::without_validation(&self.bytes[..]).map_err(nt_err)
    }

    /// The key at hive-relative `path` (components separated by `\`), or NotFound.
    pub fn key(&self, path: &str) -> Result<Key> {
        let comps: Vec<&str> = split(path);
        if comps.len() > MAX_DEPTH {
            return Err(Error::Usage(format!("key path deeper than {MAX_DEPTH} levels")));
        }
        let hive = self.nt()?;
        // nt-hive asserts (panics) on a cell offset of 0xFFFFFFFF in a list it
        // follows; every key node is checked (check_node) before nt-hive reads
        // its lists, so such a hive gives a named error instead. `raw` holds
        // the nk cell(s) of the current key, found by its stored name.
        let root = le_u32(&self.bytes, ROOT_FIELD);
        if root == NO_CELL {
            return Err(Error::corrupt(Layer::Hive, ROOT_FIELD as u64, "root cell offset is 0xffffffff (no cell)"));
        }
        let mut raw = vec![root];
        check_node(&self.bytes, root)?;
        let mut node = hive.root_key_node().map_err(nt_err)?;
        let mut real = Vec::new();
        for c in &comps {
            node = match node.subkey(c) {
                Some(n) => n.map_err(nt_err)?,
                None => return Err(Error::NotFound { layer: Layer::Hive, path: format!("{}\\{}", self.name, comps.join("\\")) }),
            };
            let name = node.name().map_err(nt_err)?.to_string_lossy();
            raw = child_cells(&self.bytes, &raw, &name);
            for &k in &raw {
                check_node(&self.bytes, k)?;
            }
            real.push(name);
        }
        let mut values = Vec::new();
        let mut raw_types = None;
        if let Some(vs) = node.values() {
            for v in vs.map_err(nt_err)? {
                let v = v.map_err(nt_err)?;
                let name = v.name().map_err(nt_err)?.to_string_lossy();
                // nt-hive names only the 12 standard types; read others from the vk.
                let kind = match v.data_type() {
                    Ok(t) => t as u32,
                    Err(_) => raw_types
                        .get_or_insert_with(|| value_types(&self.bytes, &comps))
                        .iter()
                        .find(|(n, _)| n.eq_ignore_ascii_case(&name))
                        .map_or(0, |(_, t)| *t),
                };
                let raw = v.data().map_err(nt_err)?.into_vec().map_err(nt_err)?;
                values.push(Value { name, kind, raw });
            }
        }
        let mut subkeys = Vec::new();
        if let Some(sk) = node.subkeys() {
            for k in sk.map_err(nt_err)? {
                subkeys.push(k.map_err(nt_err)?.name().map_err(nt_err)?.to_string_lossy());
                if subkeys.len() > MAX_KEYS {
                    return Err(Error::corrupt(Layer::Hive, 0, "a key with more than two million subkeys"));
                }
            }
        }
        let class = node.class_name().and_then(|c| c.ok()).map(|c| c.to_string_lossy());
        let path = real.join("\\");
        Ok(Key {
            name: real.last().cloned().unwrap_or_default(),
            last_write: match raw[..] {
                // The nk cell found on the way down: no second walk.
                [one] => cell(&self.bytes, one).map(|k| le_u64(k, nk::TIMESTAMP)),
                _ => key_timestamp(&self.bytes, &comps),
            }
            .and_then(filetime_iso),
            class,
            values,
            subkeys,
            path,
        })
    }

    /// The last-write FILETIME of the key at `path` (hive-relative, `\\`
    /// separated, case-insensitive), read from its nk cell alone: no value,
    /// subkey list or class is read, so stamping many report rows stays cheap.
    /// `None` when the key is absent (or the path is deeper than [`MAX_DEPTH`]).
    pub fn last_write(&self, path: &str) -> Option<u64> {
        let comps = split(path);
        if comps.len() > MAX_DEPTH {
            return None;
        }
        key_timestamp(&self.bytes, &comps)
    }

    /// `path` and, depth first, every key below it.
    pub fn walk(&self, path: &str) -> Result<Vec<Key>> {
        let mut out = Vec::new();
        let mut stack = vec![(self.key(path)?, 0usize)];
        while let Some((k, depth)) = stack.pop() {
            let children: Vec<String> = k.subkeys.iter().rev().map(|s| join(&k.path, s)).collect();
            out.push(k);
            if out.len() > MAX_KEYS {
                return Err(Error::Usage(format!("more than {MAX_KEYS} keys below {path}")));
            }
            if depth < MAX_DEPTH {
                for c in children {
                    stack.push((self.key(&c)?, depth + 1));
                }
            }
        }
        Ok(out)
    }
}


pub fn split(path: &str) -> Vec<&str> {
    path.split('\\').filter(|c| !c.is_empty()).collect()
}

pub fn join(a: &str, b: &str) -> String {
    if a.is_empty() {
        b.to_string()
    } else {
        format!("{a}\\{b}")
    }
}

// ---- nk cells, read directly (only for what nt-hive does not expose) ----

use super::regf::{base, cell::MAX_DATA as MAX_CELL_DATA, cell::NONE as NO_CELL, db, list, nk, vk};
const BASE: usize = base::LEN;

fn cell(bytes: &[u8], off: u32) -> Option<&[u8]> {
    let start = BASE.checked_add(off as usize)?;
    let size = i32::from_le_bytes(bytes.get(start..start + 4)?.try_into().ok()?);
    let len = size.checked_neg()? as usize;
    if len < 4 {
        return None;
    }
    bytes.get(start + 4..start + len)
}

/// Whether the stored name of key cell `nk` reads as `name` (decoded as
/// `nk_name` does, lossily), without building a string: child lookups
/// compare every sibling's name.
fn nk_name_is(nk: &[u8], name: &str) -> bool {
    let len = le_u16(nk, nk::NAME_LEN) as usize;
    let Some(raw) = nk.get(nk::NAME..nk::NAME + len) else { return false };
    if le_u16(nk, nk::FLAGS) & nk::FLAG_COMP_NAME != 0 {
        // Latin-1: a byte >= 0x80 never equals an ASCII char, so an ASCII
        // name (nearly all) compares as bytes, length first.
        if name.is_ascii() {
            return raw == name.as_bytes();
        }
        raw.iter().map(|&b| b as char).eq(name.chars())
    } else {
        let units = raw.chunks_exact(2).map(|c| u16::from_le_bytes([c[0], c[1]]));
        char::decode_utf16(units).map(|c| c.unwrap_or(char::REPLACEMENT_CHARACTER)).eq(name.chars())
    }
}

fn nk_name(nk: &[u8]) -> Option<String> {
    let len = le_u16(nk, nk::NAME_LEN) as usize;
    let raw = nk.get(nk::NAME..nk::NAME + len)?;
    Some(if le_u16(nk, nk::FLAGS) & nk::FLAG_COMP_NAME != 0 { raw.iter().map(|&b| b as char).collect() } else { crate::bytes::utf16le_name(raw) })
}

const ROOT_FIELD: usize = base::ROOT;

/// The nk cells among the subkeys of the keys `parents` whose stored name is
/// exactly `name` (one, unless the hive lists a name twice); every subkey when
/// none matches, so that the check never misses the cell nt-hive went to.
fn child_cells(bytes: &[u8], parents: &[u32], name: &str) -> Vec<u32> {
    let mut all = Vec::new();
    for &p in parents {
        if let Some(nk) = cell(bytes, p) {
            subkey_offsets(bytes, le_u32(nk, nk::SUBKEYS_LIST), 0, &mut all);
        }
    }
    // Sorted and deduplicated either way; only the (usually one) match is
    // sorted when there is one, not the whole sibling list.
    let mut named: Vec<u32> =
        all.iter().copied().filter(|&o| cell(bytes, o).is_some_and(|k| k.get(0..2) == Some(nk::SIGNATURE) && nk_name_is(k, name))).collect();
    let mut out = if named.is_empty() { all } else { std::mem::take(&mut named) };
    out.sort_unstable();
    out.dedup();
    out
}

/// Refuse, as a `hive` error naming the field's file offset, a cell offset of
/// 0xFFFFFFFF anywhere nt-hive would follow it from key node `nk`: subkey list
/// entries (ri and its leaves), value list entries, value data offsets and
/// big-data segment lists. nt-hive 0.3 asserts on such offsets
/// (`data_offset != u32::MAX`) instead of returning an error.
fn check_node(bytes: &[u8], nk: u32) -> Result<()> {
    let Some(k) = cell(bytes, nk) else { return Ok(()) };
    // File offset of byte `at` of the data of cell `c`.
    let pos = |c: u32, at: usize| (BASE + c as usize + 4 + at) as u64;
    let none = |c: u32, at: usize, what: &str| {
        Error::corrupt(Layer::Hive, pos(c, at), format!("{what} in cell {c:#x} is 0xffffffff (no cell)"))
    };
    // Entries 0..n at 4 + step*i of list cell `l`.
    let entries = |l: u32, c: &[u8], step: usize, what: &str| -> Result<Vec<u32>> {
        let n = (le_u16(c, list::COUNT) as usize).min(c.len().saturating_sub(list::ENTRIES) / step);
        (0..n).map(|i| match le_u32(c, list::ENTRIES + step * i) {
            NO_CELL => Err(none(l, list::ENTRIES + step * i, &format!("{what} entry {i}"))),
            o => Ok(o),
        }).collect()
    };
    let list_off = le_u32(k, nk::SUBKEYS_LIST);
    // Entry width of a leaf (lf/lh 8, li 4).
    let width = |c: &[u8]| match c.get(0..2) {
        Some(s) if s == list::LF || s == list::LH => Some(8),
        Some(s) if s == list::LI => Some(4),
        _ => None,
    };
    if let Some(l) = (list_off != NO_CELL).then(|| cell(bytes, list_off)).flatten() {
        if l.get(0..2) == Some(list::RI) {
            for leaf in entries(list_off, l, 4, "index root")? {
                if let Some((c, w)) = cell(bytes, leaf).and_then(|c| Some((c, width(c)?))) {
                    entries(leaf, c, w, "subkey list")?;
                }
            }
        } else if let Some(w) = width(l) {
            entries(list_off, l, w, "subkey list")?;
        }
    }
    let (count, vlist) = (le_u32(k, nk::VALUE_COUNT) as usize, le_u32(k, nk::VALUES_LIST));
    if count == 0 || vlist == NO_CELL {
        return Ok(());
    }
    let Some(l) = cell(bytes, vlist) else { return Ok(()) };
    for i in 0..count.min(l.len() / 4) {
        let v = le_u32(l, 4 * i);
        if v == NO_CELL {
            return Err(none(vlist, 4 * i, &format!("value list entry {i}")));
        }
        let Some(value) = cell(bytes, v).filter(|c| c.len() >= vk::NAME) else { continue };
        let (dsize, doff) = (le_u32(value, vk::DATA_SIZE), le_u32(value, vk::DATA_OFFSET));
        if dsize & vk::DATA_INLINE != 0 {
            continue;
        }
        if doff == NO_CELL {
            return Err(none(v, vk::DATA_OFFSET, "value data offset"));
        }
        if dsize as usize > MAX_CELL_DATA {
            let Some(big) = cell(bytes, doff).filter(|c| c.len() >= db::LEN) else { continue };
            let segs = le_u32(big, db::SEGMENT_LIST);
            if segs == NO_CELL {
                return Err(none(doff, db::SEGMENT_LIST, "big-data segment list offset"));
            }
            if let Some(sl) = cell(bytes, segs) {
                for j in 0..(le_u16(big, db::SEGMENT_COUNT) as usize).min(sl.len() / 4) {
                    if le_u32(sl, 4 * j) == NO_CELL {
                        return Err(none(segs, 4 * j, &format!("big-data segment {j}")));
                    }
                }
            }
        }
    }
    Ok(())
}

/// Offsets of the subkeys of nk `nk` (following ri → li/lf/lh).
fn subkey_offsets(bytes: &[u8], list: u32, depth: u8, out: &mut Vec<u32>) {
    let Some(l) = cell(bytes, list) else { return };
    let count = le_u16(l, list::COUNT) as usize;
    let entry = |i: usize, w: usize| le_u32(l, list::ENTRIES + w * i);
    match l.get(0..2) {
        Some(s) if s == list::LF || s == list::LH => out.extend((0..count).map(|i| entry(i, 8))),
        Some(s) if s == list::LI => out.extend((0..count).map(|i| entry(i, 4))),
        Some(s) if s == list::RI && depth == 0 => {
            for i in 0..count {
                subkey_offsets(bytes, entry(i, 4), 1, out);
            }
        }
        _ => {}
    }
}

/// (name, type) of every value of the key at `comps`.
fn value_types(bytes: &[u8], comps: &[&str]) -> Vec<(String, u32)> {
    let Some(nk) = find_nk(bytes, comps) else { return vec![] };
    let (count, vlist) = (le_u32(nk, nk::VALUE_COUNT) as usize, le_u32(nk, nk::VALUES_LIST));
    let Some(l) = cell(bytes, vlist) else { return vec![] };
    (0..count.min(l.len() / 4))
        .filter_map(|i| cell(bytes, le_u32(l, 4 * i)))
        .filter(|v| v.get(0..2) == Some(vk::SIGNATURE))
        .map(|v| {
            let n = v.get(vk::NAME..vk::NAME + le_u16(v, vk::NAME_LEN) as usize).unwrap_or(&[]);
            let name = if le_u16(v, vk::FLAGS) & vk::FLAG_COMP_NAME != 0 { n.iter().map(|&b| b as char).collect() } else { crate::bytes::utf16le_name(n) };
            (name, le_u32(v, vk::TYPE))
        })
        .collect()
}

/// Last-write FILETIME of the key at `comps`.
fn key_timestamp(bytes: &[u8], comps: &[&str]) -> Option<u64> {
    find_nk(bytes, comps).map(|k| le_u64(k, nk::TIMESTAMP))
}

/// Key names compare case-insensitively; ASCII names (nearly all) without
/// allocating.
fn same_name(stored: &str, want: &str) -> bool {
    if stored.is_ascii() && want.is_ascii() {
        stored.eq_ignore_ascii_case(want)
    } else {
        stored.to_uppercase() == want.to_uppercase()
    }
}

/// Whether key cell `nk`'s name is `want`, as [`same_name`] of its decoded
/// name says; an ASCII compressed name against an ASCII `want` (nearly every
/// sibling of every lookup) without decoding it into a string.
fn nk_name_matches(nk: &[u8], want: &str) -> bool {
    let len = le_u16(nk, nk::NAME_LEN) as usize;
    let Some(raw) = nk.get(nk::NAME..nk::NAME + len) else { return false };
    if le_u16(nk, nk::FLAGS) & nk::FLAG_COMP_NAME != 0 && raw.is_ascii() && want.is_ascii() {
        return raw.eq_ignore_ascii_case(want.as_bytes());
    }
    nk_name(nk).is_some_and(|n| same_name(&n, want))
}

/// The nk cell of the key at `comps`.
fn find_nk<'a>(bytes: &'a [u8], comps: &[&str]) -> Option<&'a [u8]> {
    let mut key = cell(bytes, le_u32(bytes, base::ROOT))?;
    for c in comps {
        let mut offs = Vec::new();
        subkey_offsets(bytes, le_u32(key, nk::SUBKEYS_LIST), 0, &mut offs);
        key = offs.into_iter().filter_map(|o| cell(bytes, o)).find(|k| k.get(0..2) == Some(nk::SIGNATURE) && nk_name_matches(k, c))?;
    }
    Some(key)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn filetime() {
        // 2024-01-01T00:00:00Z
        assert_eq!(filetime_iso((1_704_067_200 + 11_644_473_600) * 10_000_000).as_deref(), Some("2024-01-01T00:00:00Z"));
        assert_eq!(filetime_iso(0), None);
        // 1601-01-01 itself, and a FILETIME past the year 9999 (garbage).
        assert_eq!(filetime_iso(1).as_deref(), Some("1601-01-01T00:00:00Z"));
        assert_eq!(filetime_iso(u64::MAX), None);
        // Sub-second ticks are dropped, not rounded.
        assert_eq!(filetime_iso((1_704_067_200 + 11_644_473_600) * 10_000_000 + 9_999_999).as_deref(), Some("2024-01-01T00:00:00Z"));
    }

    #[test]
    fn value_rendering() {
        let d = Value { name: "x".into(), kind: 4, raw: vec![1, 0, 0, 0] };
        assert_eq!(d.display(), "0x1 (1)");
        assert_eq!(d.json_data(), serde_json::json!(1));
        let m = Value { name: "m".into(), kind: 7, raw: "a\0bc\0\0".encode_utf16().flat_map(|u| u.to_le_bytes()).collect() };
        assert_eq!(m.multi_string(), vec!["a", "bc"]);
        assert_eq!(m.display(), "a\\0bc");
        let b = Value { name: "b".into(), kind: 3, raw: vec![0xab, 1] };
        assert_eq!(b.display(), "AB01");
        assert_eq!(Value { name: String::new(), kind: 0x20, raw: vec![] }.type_name(), "REG_0x20");
    }
}
