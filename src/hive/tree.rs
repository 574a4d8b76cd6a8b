//! Reading keys and values of a loaded hive as owned snapshots, by our own
//! cell reader over the regf layouts (regf.rs): one walk per lookup, from the
//! deepest key node an earlier lookup reached, reading only the cells it
//! touches (through the page store, pages.rs).

use super::{HiveReport, LoadedHive};
use crate::bytes::{le_u16, le_u32, le_u64};
use crate::error::{Error, Layer, Result};
use serde::Serialize;
use std::cell::RefCell;
use std::collections::HashMap;

/// Deepest key path we follow (Windows limits key paths to 512 levels).
pub const MAX_DEPTH: usize = 512;
/// Most keys one recursive query returns.
pub const MAX_KEYS: usize = 2_000_000;

/// A loaded hive: recovered bytes (whole, or read on demand) plus what
/// loading did.
pub struct Hive {
    /// SYSTEM, SOFTWARE, SAM, SECURITY, BCD, or the file name of a plain hive.
    pub name: String,
    data: HiveBytes,
    pub report: HiveReport,
    /// Key nodes that earlier lookups found and checked, by the path prefix
    /// asked for (components joined by `\`, case as asked): a lookup resumes
    /// at its longest known prefix instead of walking from the root again.
    nodes: RefCell<HashMap<String, Node>>,
}

/// A key node a lookup reached: its cell offset and its path as stored.
#[derive(Clone)]
struct Node {
    off: u32,
    path: String,
    /// Where the node's own name starts in `path`.
    name_at: usize,
}

/// Most key nodes [`Hive::nodes`] keeps (a few per distinct lookup; a
/// recursive walk must not grow it without bound).
const MAX_NODES: usize = 4096;

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
        Hive { name: name.into(), data: HiveBytes::whole_vec(loaded.bytes), report: loaded.report, nodes: RefCell::default() }
    }

    /// A hive over bytes read on demand ([`HiveBytes::paged`]).
    pub fn from_parts(name: impl Into<String>, data: HiveBytes, report: HiveReport) -> Self {
        Hive { name: name.into(), data, report, nodes: RefCell::default() }
    }

    /// The whole recovered image (what editing, export and diff need): read
    /// in full, once, when the hive is paged.
    pub fn bytes(&self) -> Result<&[u8]> {
        self.data.whole()
    }

    /// The whole recovered image in a new vector (an editor's own copy),
    /// without keeping a second whole copy in the hive.
    pub fn to_vec(&self) -> Result<Vec<u8>> {
        self.data.to_vec()
    }

    /// The 4 KiB pages of the image that may differ from the hive's file
    /// (base block, log pages laid over it, past the file's end); `None`
    /// when not known (a hive loaded whole).
    pub fn changed_pages(&self) -> Option<Vec<usize>> {
        self.data.changed_pages()
    }

    /// `len` bytes of the image at file offset `off` (`None` past its end),
    /// reading only the pages they are in.
    pub fn get(&self, off: usize, len: usize) -> Result<Option<std::borrow::Cow<'_, [u8]>>> {
        self.data.get(off, len)
    }

    /// Length of the recovered image.
    pub fn len(&self) -> usize {
        self.data.len()
    }

    pub fn is_empty(&self) -> bool {
        self.data.is_empty()
    }

    /// Chunks of the hive file read so far (0 for a whole image).
    pub fn chunks_read(&self) -> usize {
        self.data.chunks_read()
    }

    /// The buffers the hive holds, for the per-thread pool.
    pub fn into_buffers(self) -> Vec<Vec<u8>> {
        self.data.into_buffers()
    }

    /// The key at hive-relative `path` (components separated by `\`), or NotFound.
    pub fn key(&self, path: &str) -> Result<Key> {
        let comps: Vec<&str> = split(path);
        if comps.len() > MAX_DEPTH {
            return Err(Error::Usage(format!("key path deeper than {MAX_DEPTH} levels")));
        }
        // Prefix i (i components) is joined[..ends[i]]; prefix 0 is the root.
        let joined = comps.join("\\");
        let mut ends = vec![0];
        for (i, c) in comps.iter().enumerate() {
            ends.push(if i == 0 { c.len() } else { ends[i] + 1 + c.len() });
        }
        let start = {
            let nodes = self.nodes.borrow();
            (0..ends.len()).rev().find_map(|i| nodes.get(&joined[..ends[i]]).map(|n| (i, n.clone())))
        };
        key_at(&self.data, &self.name, &comps, start, |i, n| {
            let mut nodes = self.nodes.borrow_mut();
            if nodes.len() < MAX_NODES {
                nodes.insert(joined[..ends[i]].to_string(), n);
            }
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
        find_nk(&self.data, &comps).ok().flatten().map(|(_, k)| le_u64(&k, nk::TIMESTAMP))
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

// ---- the cell reader ----
//
// One walk per lookup over the regf layouts of regf.rs, through `Src` (whole
// bytes or the page store), so only the cells a lookup touches are read. The
// structural checks are those nt-hive 0.3 made on the same walk (cell
// allocated and 8-aligned, signatures, counts that fit their cells), as
// `hive` errors that name the file offset of the offending field; subkey
// lookup is nt-hive's binary search by upper-cased name, preceded, in lh
// leaves, by a scan of the stored name hashes (one nk cell read instead of
// log2(n)); a key whose stored hash is wrong is still found by the search.

use super::pages::{HiveBytes, Src};
use super::regf::{base, cell::MAX_DATA as MAX_CELL_DATA, cell::NONE as NO_CELL, db, list, nk, vk};
use std::borrow::Cow;
use std::cmp::Ordering;

const BASE: usize = base::LEN;
const ROOT_FIELD: usize = base::ROOT;

type Bytes<'a> = Cow<'a, [u8]>;

fn corrupt(at: usize, msg: impl Into<String>) -> Error {
    Error::corrupt(Layer::Hive, at as u64, msg.into())
}

/// File offset of byte `at` of the data of cell `c`.
fn pos(c: u32, at: usize) -> usize {
    BASE + c as usize + 4 + at
}

/// The data of the allocated cell at `off`, or `None` when there is none
/// there (free, too small, past the end); only read errors are errors.
fn cell<S: Src + ?Sized>(s: &S, off: u32) -> Result<Option<Bytes<'_>>> {
    let start = BASE + off as usize;
    let Some(h) = s.get(start, 4)? else { return Ok(None) };
    let size = i32::from_le_bytes([h[0], h[1], h[2], h[3]]);
    match size.checked_neg() {
        Some(len) if len >= 4 => s.get(start + 4, len as usize - 4),
        _ => Ok(None),
    }
}

/// The data of the cell at `off`, read from the field at file offset
/// `field`, which must be an allocated, 8-aligned cell inside the hive.
fn need<'a, S: Src + ?Sized>(s: &'a S, off: u32, field: usize, what: &str) -> Result<Bytes<'a>> {
    if off == NO_CELL {
        return Err(corrupt(field, format!("{what} offset is 0xffffffff (no cell)")));
    }
    let start = BASE + off as usize;
    let Some(h) = s.get(start, 4)? else { return Err(corrupt(field, format!("{what} offset {off:#x} points past the end of the hive"))) };
    let size = i32::from_le_bytes([h[0], h[1], h[2], h[3]]);
    if size >= 0 {
        return Err(corrupt(start, format!("{what} cell {off:#x} is not allocated (size {size})")));
    }
    let len = size.unsigned_abs() as usize;
    if len % 8 != 0 || len < 8 {
        return Err(corrupt(start, format!("{what} cell {off:#x} has a bad size {len:#x}")));
    }
    s.get(start + 4, len - 4)?.ok_or_else(|| corrupt(start, format!("{what} cell {off:#x} ({len:#x} bytes) runs past the end of the hive")))
}

/// The key node at `off` (signature and fixed part checked).
fn node<'a, S: Src + ?Sized>(s: &'a S, off: u32, field: usize) -> Result<Bytes<'a>> {
    let k = need(s, off, field, "key node")?;
    if k.len() < nk::NAME || &k[0..2] != nk::SIGNATURE {
        return Err(corrupt(pos(off, 0), format!("cell {off:#x} is not a key node (no nk signature)")));
    }
    Ok(k)
}

/// The stored name of key node `k` (cell `off`) and whether it is Latin-1.
fn nk_raw_name(k: &[u8], off: u32) -> Result<(&[u8], bool)> {
    let len = le_u16(k, nk::NAME_LEN) as usize;
    let raw = k.get(nk::NAME..nk::NAME + len).ok_or_else(|| corrupt(pos(off, nk::NAME_LEN), format!("key name of {len} bytes does not fit its cell {off:#x}")))?;
    Ok((raw, le_u16(k, nk::FLAGS) & nk::FLAG_COMP_NAME != 0))
}

/// A stored name, decoded lossily (Latin-1 or UTF-16LE).
fn decode(raw: &[u8], latin1: bool) -> String {
    if latin1 {
        raw.iter().map(|&b| b as char).collect()
    } else {
        crate::bytes::utf16le_name(raw)
    }
}

/// Upper case of one UTF-16 code unit, the way the registry compares names
/// (unit by unit; a unit whose upper case is not one BMP unit is kept).
fn upcase(u: u16) -> u16 {
    if u < 0x80 {
        return (u as u8).to_ascii_uppercase() as u16;
    }
    let Some(c) = char::from_u32(u as u32) else { return u };
    let mut up = c.to_uppercase();
    match (up.next(), up.next()) {
        (Some(x), None) if (x as u32) < 0x1_0000 => x as u16,
        _ => u,
    }
}

fn cmp_units(a: impl Iterator<Item = u16>, mut b: impl Iterator<Item = u16>) -> Ordering {
    for x in a {
        match b.next() {
            None => return Ordering::Greater,
            Some(y) => match upcase(x).cmp(&upcase(y)) {
                Ordering::Equal => {}
                o => return o,
            },
        }
    }
    if b.next().is_some() {
        Ordering::Less
    } else {
        Ordering::Equal
    }
}

/// How stored name `raw` sorts against `want` (upper-cased unit by unit).
fn cmp_name(raw: &[u8], latin1: bool, want: &str) -> Ordering {
    if latin1 {
        if want.is_ascii() && raw.is_ascii() {
            let (a, b) = (raw.iter().map(u8::to_ascii_uppercase), want.bytes().map(|c| c.to_ascii_uppercase()));
            return a.cmp(b);
        }
        cmp_units(raw.iter().map(|&b| b as u16), want.encode_utf16())
    } else {
        cmp_units(raw.chunks_exact(2).map(|c| u16::from_le_bytes([c[0], c[1]])), want.encode_utf16())
    }
}

/// The lh hash of a name: h = 37·h + upcase(unit).
fn lh_hash(name: &str) -> u32 {
    name.encode_utf16().fold(0u32, |h, u| h.wrapping_mul(37).wrapping_add(upcase(u) as u32))
}

/// A subkey leaf (li, lf, lh) with its entry width.
struct Leaf<'a> {
    off: u32,
    data: Bytes<'a>,
    width: usize,
    n: usize,
    hashed: bool,
}

impl Leaf<'_> {
    fn entry(&self, i: usize) -> u32 {
        le_u32(&self.data, list::ENTRIES + self.width * i)
    }
    fn field(&self, i: usize) -> usize {
        pos(self.off, list::ENTRIES + self.width * i)
    }
}

/// A subkey list: a leaf, or an index root's leaf offsets.
enum List<'a> {
    Leaf(Leaf<'a>),
    Root { off: u32, data: Bytes<'a>, n: usize },
}

/// Leaf cell `off` (signature li/lf/lh and count checked).
fn leaf<'a, S: Src + ?Sized>(s: &'a S, off: u32, field: usize) -> Result<Leaf<'a>> {
    let data = need(s, off, field, "subkey list")?;
    let (width, hashed) = match data.get(0..2) {
        Some(x) if x == list::LF => (8, false),
        Some(x) if x == list::LH => (8, true),
        Some(x) if x == list::LI => (4, false),
        _ => return Err(corrupt(pos(off, 0), format!("cell {off:#x} is not a subkey list leaf (li/lf/lh)"))),
    };
    let n = le_u16(&data, list::COUNT) as usize;
    if list::ENTRIES + width * n > data.len() {
        return Err(corrupt(pos(off, list::COUNT), format!("subkey list {off:#x}: {n} entries do not fit its {} bytes", data.len())));
    }
    Ok(Leaf { off, data, width, n, hashed })
}

/// The subkey list of key node `k` (cell `koff`), if it has one.
fn subkey_list<'a, S: Src + ?Sized>(s: &'a S, koff: u32, k: &[u8]) -> Result<Option<List<'a>>> {
    let off = le_u32(k, nk::SUBKEYS_LIST);
    if off == NO_CELL {
        return Ok(None);
    }
    let field = pos(koff, nk::SUBKEYS_LIST);
    let data = need(s, off, field, "subkey list")?;
    if data.get(0..2) == Some(&list::RI[..]) {
        let n = le_u16(&data, list::COUNT) as usize;
        if list::ENTRIES + 4 * n > data.len() {
            return Err(corrupt(pos(off, list::COUNT), format!("index root {off:#x}: {n} entries do not fit its {} bytes", data.len())));
        }
        return Ok(Some(List::Root { off, data, n }));
    }
    drop(data);
    leaf(s, off, field).map(|l| Some(List::Leaf(l)))
}

/// nt-hive's binary search of a sorted leaf.
fn search_leaf<'a, S: Src + ?Sized>(s: &'a S, l: &Leaf<'_>, name: &str) -> Result<Option<(u32, Bytes<'a>)>> {
    let (mut lo, mut hi) = (0i64, l.n as i64 - 1);
    while lo <= hi {
        let mid = ((lo + hi) / 2) as usize;
        let off = l.entry(mid);
        let k = node(s, off, l.field(mid))?;
        let (raw, latin1) = nk_raw_name(&k, off)?;
        match cmp_name(raw, latin1, name) {
            Ordering::Equal => return Ok(Some((off, k))),
            Ordering::Less => lo = mid as i64 + 1,
            Ordering::Greater => hi = mid as i64 - 1,
        }
    }
    Ok(None)
}

/// The entry of an lh leaf whose stored hash and name are `name`'s.
fn hash_scan<'a, S: Src + ?Sized>(s: &'a S, l: &Leaf<'_>, name: &str, h: u32) -> Result<Option<(u32, Bytes<'a>)>> {
    for i in 0..l.n {
        if le_u32(&l.data, list::ENTRIES + 8 * i + 4) != h {
            continue;
        }
        let off = l.entry(i);
        let k = node(s, off, l.field(i))?;
        let (raw, latin1) = nk_raw_name(&k, off)?;
        if cmp_name(raw, latin1, name) == Ordering::Equal {
            return Ok(Some((off, k)));
        }
    }
    Ok(None)
}

/// The subkey `name` of key node `k` (cell `koff`): its offset and cell.
fn child<'a, S: Src + ?Sized>(s: &'a S, koff: u32, k: &[u8], name: &str) -> Result<Option<(u32, Bytes<'a>)>> {
    let Some(l) = subkey_list(s, koff, k)? else { return Ok(None) };
    let h = lh_hash(name);
    match l {
        List::Leaf(l) => {
            if l.hashed {
                if let Some(hit) = hash_scan(s, &l, name, h)? {
                    return Ok(Some(hit));
                }
            }
            search_leaf(s, &l, name)
        }
        List::Root { off, data, n } => {
            let leaves: Vec<Leaf<'_>> = (0..n).map(|i| leaf(s, le_u32(&data, list::ENTRIES + 4 * i), pos(off, list::ENTRIES + 4 * i))).collect::<Result<_>>()?;
            for l in leaves.iter().filter(|l| l.hashed) {
                if let Some(hit) = hash_scan(s, l, name, h)? {
                    return Ok(Some(hit));
                }
            }
            // nt-hive's search over the index root: by the first and last
            // name of each leaf, then inside the one leaf that can hold it.
            let (mut lo, mut hi) = (0i64, n as i64 - 1);
            while lo <= hi {
                let mid = ((lo + hi) / 2) as usize;
                let l = &leaves[mid];
                if l.n == 0 {
                    hi = mid as i64 - 1;
                    continue;
                }
                let (first, last) = (l.entry(0), l.entry(l.n - 1));
                let fk = node(s, first, l.field(0))?;
                let (raw, latin1) = nk_raw_name(&fk, first)?;
                match cmp_name(raw, latin1, name) {
                    Ordering::Equal => return Ok(Some((first, fk))),
                    Ordering::Greater => {
                        hi = mid as i64 - 1;
                        continue;
                    }
                    Ordering::Less => {}
                }
                let lk = node(s, last, l.field(l.n - 1))?;
                let (raw, latin1) = nk_raw_name(&lk, last)?;
                match cmp_name(raw, latin1, name) {
                    Ordering::Equal => return Ok(Some((last, lk))),
                    Ordering::Less => {
                        lo = mid as i64 + 1;
                        continue;
                    }
                    Ordering::Greater => {}
                }
                return search_leaf(s, l, name);
            }
            Ok(None)
        }
    }
}

/// The root key node: its offset and cell.
fn root<S: Src + ?Sized>(s: &S) -> Result<(u32, Bytes<'_>)> {
    let h = s.get(ROOT_FIELD, 4)?.ok_or_else(|| corrupt(ROOT_FIELD, "no base block"))?;
    let root = le_u32(&h, 0);
    if root == NO_CELL {
        return Err(corrupt(ROOT_FIELD, "root cell offset is 0xffffffff (no cell)"));
    }
    Ok((root, node(s, root, ROOT_FIELD)?))
}

/// The key node at `comps`, `None` when a component is absent.
fn find_nk<'a, S: Src + ?Sized>(s: &'a S, comps: &[&str]) -> Result<Option<(u32, Bytes<'a>)>> {
    let (mut off, mut k) = root(s)?;
    for c in comps {
        match child(s, off, &k, c)? {
            Some((o, n)) => (off, k) = (o, n),
            None => return Ok(None),
        }
    }
    Ok(Some((off, k)))
}

/// The data of value `v` (cell `voff`), as nt-hive's `data().into_vec()` reads it.
fn value_data<S: Src + ?Sized>(s: &S, voff: u32, v: &[u8]) -> Result<Vec<u8>> {
    let raw_size = le_u32(v, vk::DATA_SIZE);
    let size = (raw_size & !vk::DATA_INLINE) as usize;
    let doff = le_u32(v, vk::DATA_OFFSET);
    let size_field = pos(voff, vk::DATA_SIZE);
    if raw_size & vk::DATA_INLINE != 0 {
        if size > 4 {
            return Err(corrupt(size_field, format!("value data of {size} bytes cannot be stored in its data-offset field")));
        }
        return Ok(v[vk::DATA_OFFSET..vk::DATA_OFFSET + size].to_vec());
    }
    let d = need(s, doff, pos(voff, vk::DATA_OFFSET), "value data")?;
    if size <= MAX_CELL_DATA {
        return d.get(..size).map(<[u8]>::to_vec).ok_or_else(|| corrupt(pos(doff, 0), format!("value data cell {doff:#x} holds {} bytes, the value says {size}", d.len())));
    }
    // Big data: a db record and its list of segments of 16344 bytes each.
    if d.len() < db::LEN || &d[0..2] != db::SIGNATURE {
        return Err(corrupt(pos(doff, 0), format!("cell {doff:#x} is not a big-data record (db)")));
    }
    let count = le_u16(&d, db::SEGMENT_COUNT) as usize;
    if count * MAX_CELL_DATA < size {
        return Err(corrupt(pos(doff, db::SEGMENT_COUNT), format!("{count} big-data segments cannot hold {size} bytes")));
    }
    let loff = le_u32(&d, db::SEGMENT_LIST);
    let segs = need(s, loff, pos(doff, db::SEGMENT_LIST), "big-data segment list")?;
    if segs.len() < 4 * count {
        return Err(corrupt(pos(doff, db::SEGMENT_COUNT), format!("big-data segment list {loff:#x}: {count} entries do not fit its {} bytes", segs.len())));
    }
    let mut out = Vec::with_capacity(size);
    for j in 0..count {
        let want = (size - out.len()).min(MAX_CELL_DATA);
        if want == 0 {
            break;
        }
        let so = le_u32(&segs, 4 * j);
        let seg = need(s, so, pos(loff, 4 * j), "big-data segment")?;
        let part = seg.get(..want).ok_or_else(|| corrupt(pos(so, 0), format!("big-data segment {so:#x} holds {} bytes, {want} expected", seg.len())))?;
        out.extend_from_slice(part);
    }
    Ok(out)
}

/// The values of key node `k` (cell `koff`), in list order.
fn values<S: Src + ?Sized>(s: &S, koff: u32, k: &[u8]) -> Result<Vec<Value>> {
    let loff = le_u32(k, nk::VALUES_LIST);
    if loff == NO_CELL {
        return Ok(Vec::new());
    }
    let l = need(s, loff, pos(koff, nk::VALUES_LIST), "value list")?;
    let count = le_u32(k, nk::VALUE_COUNT) as usize;
    if count.saturating_mul(4) > l.len() {
        return Err(corrupt(pos(koff, nk::VALUE_COUNT), format!("{count} values do not fit the {}-byte value list {loff:#x}", l.len())));
    }
    let mut out = Vec::with_capacity(count);
    for i in 0..count {
        let voff = le_u32(&l, 4 * i);
        let v = need(s, voff, pos(loff, 4 * i), "value")?;
        if v.len() < vk::NAME || &v[0..2] != vk::SIGNATURE {
            return Err(corrupt(pos(voff, 0), format!("cell {voff:#x} is not a value (no vk signature)")));
        }
        let len = le_u16(&v, vk::NAME_LEN) as usize;
        let raw = v.get(vk::NAME..vk::NAME + len).ok_or_else(|| corrupt(pos(voff, vk::NAME_LEN), format!("value name of {len} bytes does not fit its cell {voff:#x}")))?;
        let name = decode(raw, le_u16(&v, vk::FLAGS) & vk::FLAG_COMP_NAME != 0);
        let kind = le_u32(&v, vk::TYPE);
        let raw = value_data(s, voff, &v)?;
        out.push(Value { name, kind, raw });
    }
    Ok(out)
}

/// The names of the subkeys of key node `k` (cell `koff`), in list order.
fn subkey_names<S: Src + ?Sized>(s: &S, koff: u32, k: &[u8]) -> Result<Vec<String>> {
    let mut out = Vec::new();
    let leaves = match subkey_list(s, koff, k)? {
        None => return Ok(out),
        Some(List::Leaf(l)) => vec![l],
        Some(List::Root { off, data, n }) => (0..n).map(|i| leaf(s, le_u32(&data, list::ENTRIES + 4 * i), pos(off, list::ENTRIES + 4 * i))).collect::<Result<_>>()?,
    };
    for l in &leaves {
        for i in 0..l.n {
            let off = l.entry(i);
            let c = node(s, off, l.field(i))?;
            let (raw, latin1) = nk_raw_name(&c, off)?;
            out.push(decode(raw, latin1));
            if out.len() > MAX_KEYS {
                return Err(corrupt(0, "a key with more than two million subkeys"));
            }
        }
    }
    Ok(out)
}

/// The class name of key node `k`, when it has a readable one.
fn class_name<S: Src + ?Sized>(s: &S, k: &[u8]) -> Result<Option<String>> {
    let off = le_u32(k, nk::CLASS_NAME);
    if off == NO_CELL {
        return Ok(None);
    }
    let len = le_u16(k, nk::CLASS_NAME_LEN) as usize;
    let start = BASE + off as usize;
    let Some(h) = s.get(start, 4)? else { return Ok(None) };
    let size = i32::from_le_bytes([h[0], h[1], h[2], h[3]]);
    if size >= 0 || size.unsigned_abs() % 8 != 0 {
        return Ok(None);
    }
    Ok(cell(s, off)?.and_then(|c| c.get(..len).map(crate::bytes::utf16le_name)))
}

/// The key at `comps` of the hive in `s`, named `hive` in errors. The walk
/// starts at `start`, the node of the first `i` components when an earlier
/// walk reached and checked it, else at the root; `reached(i, node)` is told
/// of each node of the first `i` components this walk finds and checks.
fn key_at<S: Src + ?Sized>(s: &S, hive: &str, comps: &[&str], start: Option<(usize, Node)>, mut reached: impl FnMut(usize, Node)) -> Result<Key> {
    let (done, mut at) = match start {
        Some(known) => known,
        None => {
            let (off, _) = root(s)?;
            check_node(s, off)?;
            let root = Node { off, path: String::new(), name_at: 0 };
            reached(0, root.clone());
            (0, root)
        }
    };
    let mut k = node(s, at.off, ROOT_FIELD)?;
    for (i, c) in comps.iter().enumerate().skip(done) {
        let Some((o, n)) = child(s, at.off, &k, c)? else {
            return Err(Error::NotFound { layer: Layer::Hive, path: format!("{hive}\\{}", comps.join("\\")) });
        };
        check_node(s, o)?;
        let (raw, latin1) = nk_raw_name(&n, o)?;
        let name = decode(raw, latin1);
        // The root's path is empty: a first component's path is its name.
        let name_at = if i == 0 { 0 } else { at.path.len() + 1 };
        let path = if name_at == 0 { name } else { format!("{}\\{name}", at.path) };
        (at, k) = (Node { off: o, path, name_at }, n);
        reached(i + 1, at.clone());
    }
    Ok(Key {
        name: at.path[at.name_at..].to_string(),
        last_write: filetime_iso(le_u64(&k, nk::TIMESTAMP)),
        class: class_name(s, &k)?,
        values: values(s, at.off, &k)?,
        subkeys: subkey_names(s, at.off, &k)?,
        path: at.path,
    })
}

/// Refuse, as a `hive` error naming the field's file offset, a cell offset of
/// 0xFFFFFFFF anywhere a reader would follow it from key node `nk`: subkey
/// list entries (ri and its leaves), value list entries, value data offsets
/// and big-data segment lists. (nt-hive 0.3 asserted on such offsets; every
/// key on a looked-up path is checked, as it was when nt-hive read them.)
fn check_node<S: Src + ?Sized>(s: &S, nk: u32) -> Result<()> {
    let Some(k) = cell(s, nk)? else { return Ok(()) };
    let none = |c: u32, at: usize, what: &str| corrupt(pos(c, at), format!("{what} in cell {c:#x} is 0xffffffff (no cell)"));
    // Entries 0..n at 4 + step*i of list cell `l`.
    let entries = |l: u32, c: &[u8], step: usize, what: &str| -> Result<Vec<u32>> {
        let n = (le_u16(c, list::COUNT) as usize).min(c.len().saturating_sub(list::ENTRIES) / step);
        (0..n)
            .map(|i| match le_u32(c, list::ENTRIES + step * i) {
                NO_CELL => Err(none(l, list::ENTRIES + step * i, &format!("{what} entry {i}"))),
                o => Ok(o),
            })
            .collect()
    };
    let list_off = le_u32(&k, nk::SUBKEYS_LIST);
    // Entry width of a leaf (lf/lh 8, li 4).
    let width = |c: &[u8]| match c.get(0..2) {
        Some(x) if x == list::LF || x == list::LH => Some(8),
        Some(x) if x == list::LI => Some(4),
        _ => None,
    };
    let l = if list_off != NO_CELL { cell(s, list_off)? } else { None };
    if let Some(l) = l {
        if l.get(0..2) == Some(&list::RI[..]) {
            for leaf in entries(list_off, &l, 4, "index root")? {
                if let Some(c) = cell(s, leaf)? {
                    if let Some(w) = width(&c) {
                        entries(leaf, &c, w, "subkey list")?;
                    }
                }
            }
        } else if let Some(w) = width(&l) {
            entries(list_off, &l, w, "subkey list")?;
        }
    }
    let (count, vlist) = (le_u32(&k, nk::VALUE_COUNT) as usize, le_u32(&k, nk::VALUES_LIST));
    if count == 0 || vlist == NO_CELL {
        return Ok(());
    }
    let Some(l) = cell(s, vlist)? else { return Ok(()) };
    for i in 0..count.min(l.len() / 4) {
        let v = le_u32(&l, 4 * i);
        if v == NO_CELL {
            return Err(none(vlist, 4 * i, &format!("value list entry {i}")));
        }
        let Some(value) = cell(s, v)?.filter(|c| c.len() >= vk::NAME) else { continue };
        let (dsize, doff) = (le_u32(&value, vk::DATA_SIZE), le_u32(&value, vk::DATA_OFFSET));
        if dsize & vk::DATA_INLINE != 0 {
            continue;
        }
        if doff == NO_CELL {
            return Err(none(v, vk::DATA_OFFSET, "value data offset"));
        }
        if dsize as usize > MAX_CELL_DATA {
            let Some(big) = cell(s, doff)?.filter(|c| c.len() >= db::LEN) else { continue };
            let segs = le_u32(&big, db::SEGMENT_LIST);
            if segs == NO_CELL {
                return Err(none(doff, db::SEGMENT_LIST, "big-data segment list offset"));
            }
            if let Some(sl) = cell(s, segs)? {
                for j in 0..(le_u16(&big, db::SEGMENT_COUNT) as usize).min(sl.len() / 4) {
                    if le_u32(&sl, 4 * j) == NO_CELL {
                        return Err(none(segs, 4 * j, &format!("big-data segment {j}")));
                    }
                }
            }
        }
    }
    Ok(())
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
