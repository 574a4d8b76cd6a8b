//! The offline hive editor (`rdprescue::hive::edit::HiveEditor`) driven by a
//! small op script over an arbitrary hive image.
//!
//! Input layout: `[flags u8][script length u8][script][hive]`.
//!
//! * flags bit 0: before anything, set seq2 = seq1 and recompute the base
//!   block checksum, so that mutated hives get past `HiveEditor::new`'s
//!   dirty-hive refusal and reach the cell walk and the edits.
//! * flags bits 1-2: the `max_sequence_seen` passed to `new`: seq1 plus 0, 1,
//!   1000 or 2^31 - 2 (wrapping: with seq1 from the input this exercises the
//!   wrap-around in `finish`).
//! * flags bit 3: do what the callers do: `hive::load` the hive (no logs) and
//!   edit the bytes and `max_sequence_seen` it returns.
//! * script: up to 24 ops, each `[op][path...][name][type][len lo][len hi][fill]`
//!   as far as it applies (missing bytes read as 0). op % 8: 0-3 set_value,
//!   4 delete_value, 5 delete_key, 6 add_key, 7 set_value of an existing value.
//!   A path is a base (a key path found in the hive when bit 7 of its byte is
//!   set, else one from a fixed vocabulary) plus 0-2 vocabulary components;
//!   value names likewise come from the hive or from a vocabulary (with
//!   non-ASCII, case-folding and length-limit cases). Data lengths are 0..8
//!   or 0..20000 (over the 16344-byte single-cell limit too); data is a
//!   pattern from the fill byte.
//!
//! Invariants asserted (panics inside nt-hive itself are tolerated, as in
//! `hive.rs`, unless HIVE_FUZZ_STRICT_NTHIVE is set; rdprescue's own code must
//! never panic):
//!
//! * a failed edit leaves the hive bytes exactly as they were (transactions);
//! * outside the pages `finish_written` names, the output is the input byte
//!   for byte (the plan compares only those pages with the hive's file);
//! * `finish` output has seq1 == seq2 after every sequence number given, a
//!   right checksum, is accepted by `HiveEditor::new` again, and loads with
//!   `hive::load` as Clean (when the input did, or came from `load`: the
//!   editor's base block checks are laxer than load's, it takes a file
//!   format other than 1, artifacts/hive_edit/crash-31438f98...);
//! * when the input hive is *well formed* (it validates for nt-hive, a full
//!   nt-hive walk has no errors, subkeys are strictly sorted and value names
//!   unique, case-insensitively; every cell reachable from the root is an
//!   allocated cell of the hbin tiling and subkey / value counts match their
//!   lists, see `structure_ok`), then after each successful op the edit is
//!   visible through `tree::Hive` (set_value: same type and bytes, and the
//!   returned old value is what was there; add_key: the key exists;
//!   delete_*: it is gone; an op that found nothing to do left the bytes
//!   alone), and the finished hive is still well formed for nt-hive.
//!
//! HIVE_EDIT_FUZZ_TRACE=1 prints every op, its result and the state of the
//! hive after it (for triage). HIVE_EDIT_FUZZ_STRICT=1 turns off the
//! tolerance of known bugs (reported, with their inputs in artifacts/): hives
//! whose cell tiling disagrees with their references are then held to the
//! strict checks too (see `structure_ok`), and value types are compared even
//! where tree::Hive misreads them (see `tree_type`).
#![no_main]
use libfuzzer_sys::fuzz_target;
use rdprescue::hive::edit::HiveEditor;
use rdprescue::hive::recover::base_block_checksum;
use rdprescue::hive::tree::{Hive, Key};
use rdprescue::hive::{load, HiveReport, HiveState, LoadedHive};
use rdprescue_fuzz::{in_nt_hive as nt, tolerate_nt_hive_panics};

fn le32(b: &[u8], off: usize) -> u32 {
    u32::from_le_bytes(b[off..off + 4].try_into().unwrap())
}

const KEY_VOCAB: &[&str] = &[
    "ControlSet001",
    "Control",
    "Terminal Server",
    "WinStations",
    "RDP-Tcp",
    "Microsoft",
    "Windows NT",
    "CurrentVersion",
    "Select",
    "Objects",
    "Elements",
    "a",
    "A",
    "zz",
    "ä",
    "Ä",
    "ß",
    "SS",
    "σ",
    "ς",
    "ǅ",
    "ﬀ",
    "日本語",
    "😀",
    "CurrentControlSet",
    "{4d3f1e2a-9b8c-11ee-8c90-0242ac120002}",
];

const VALUE_VOCAB: &[&str] = &[
    "",
    "fDenyTSConnections",
    "PortNumber",
    "UserAuthentication",
    "SecurityLayer",
    "Current",
    "Element",
    "x",
    "X",
    "ä",
    "Ä",
    "ß",
    "σ",
    "日本語",
    "😀",
    "with\\backslash",
];

const TYPES: [u32; 8] = [1, 2, 3, 4, 7, 11, 0, 5];

struct Script<'a>(&'a [u8]);

impl Script<'_> {
    fn byte(&mut self) -> u8 {
        match self.0.split_first() {
            Some((b, rest)) => {
                self.0 = rest;
                *b
            }
            None => 0,
        }
    }
}

/// Names found in the hive (bounded), and whether it is well formed.
#[derive(Default)]
struct Survey {
    keys: Vec<String>,
    values: Vec<String>,
    well_formed: bool,
    /// Why it is not well formed (first reason found).
    why: Option<String>,
}

/// Case-insensitive name key as the editor and nt-hive compare names: UTF-16
/// code units, each uppercased one-to-one when that stays in the BMP.
fn fold(name: &str) -> Vec<u16> {
    fold_units(name.encode_utf16().collect())
}

fn fold_units(units: Vec<u16>) -> Vec<u16> {
    units
        .into_iter()
        .map(|u| {
            let Some(c) = char::from_u32(u32::from(u)) else { return u };
            let mut up = c.to_uppercase();
            match (up.next(), up.next()) {
                (Some(x), None) if (x as u32) <= 0xFFFF => x as u16,
                _ => u,
            }
        })
        .collect()
}

/// The UTF-16 code units of a stored name (names that are not valid UTF-16
/// must not be compared through a lossy String).
fn units(n: &nt_hive::NtHiveNameString) -> Vec<u16> {
    match n {
        nt_hive::NtHiveNameString::Latin1(b) => b.iter().map(|&c| u16::from(c)).collect(),
        nt_hive::NtHiveNameString::Utf16LE(b) => b.chunks_exact(2).map(|c| u16::from_le_bytes([c[0], c[1]])).collect(),
    }
}

/// Walk the hive with nt-hive (bounded): collect names and check that every
/// subkey list is strictly sorted and every key's value names are unique.
fn survey(bytes: &[u8]) -> Survey {
    let mut s = Survey::default();
    // Err: an nt-hive error, or the walk budget ran out.
    let walk = |s: &mut Survey| -> Result<bool, String> {
        let hive = nt_hive::Hive::new(bytes).map_err(|e| e.to_string())?;
        let root = hive.root_key_node().map_err(|e| e.to_string())?;
        let mut budget = 5_000usize;
        let mut stack = vec![(root, String::new(), 0u32)];
        let mut ok = true;
        while let Some((key, path, depth)) = stack.pop() {
            if let Some(values) = key.values() {
                let mut seen: Vec<Vec<u16>> = Vec::new();
                for v in values.map_err(|e| e.to_string())? {
                    let v = v.map_err(|e| e.to_string())?;
                    let raw = v.name().map_err(|e| e.to_string())?;
                    let name = raw.to_string_lossy();
                    // tree::Hive::key reads every value's data: so must this.
                    if v.data_size() as usize > bytes.len() {
                        return Err(format!("value {name:?} claims {} bytes of data", v.data_size()));
                    }
                    v.data().map_err(|e| e.to_string())?.into_vec().map_err(|e| e.to_string())?;
                    let f = fold_units(units(&raw));
                    if seen.contains(&f) {
                        ok = false;
                        s.why.get_or_insert_with(|| format!("key {path:?}: two values named {name:?}"));
                    }
                    seen.push(f);
                    if s.values.len() < 64 && !name.contains('\u{FFFD}') {
                        s.values.push(name);
                    }
                    budget = budget.checked_sub(1).ok_or("walk budget exhausted")?;
                }
            }
            if let Some(subs) = key.subkeys() {
                let mut prev: Option<Vec<u16>> = None;
                for sub in subs.map_err(|e| e.to_string())? {
                    let sub = sub.map_err(|e| e.to_string())?;
                    let raw = sub.name().map_err(|e| e.to_string())?;
                    let name = raw.to_string_lossy();
                    let f = fold_units(units(&raw));
                    if prev.as_ref().is_some_and(|p| *p >= f) {
                        ok = false;
                        s.why.get_or_insert_with(|| format!("key {path:?}: subkey {name:?} out of order"));
                    }
                    prev = Some(f);
                    let p = if path.is_empty() { name } else { format!("{path}\\{name}") };
                    // A name that is not valid UTF-16 cannot be given as a &str path.
                    if s.keys.len() < 64 && !p.contains('\u{FFFD}') {
                        s.keys.push(p.clone());
                    }
                    budget = budget.checked_sub(1).ok_or("walk budget exhausted")?;
                    if depth < 32 {
                        stack.push((sub, p, depth + 1));
                    } else {
                        ok = false;
                        s.why.get_or_insert_with(|| "deeper than 32 levels".into());
                    }
                }
            }
        }
        Ok(ok)
    };
    match nt(|| walk(&mut s)) {
        Some(Ok(true)) => s.well_formed = true,
        Some(Ok(false)) => {}
        Some(Err(e)) => s.why = Some(e),
        None => s.why = Some("nt-hive panicked".into()),
    }
    s
}

/// Whether every cell reachable from the root key (subkey lists, keys, value
/// lists, values, data cells and big-data segments, security and class cells)
/// is an allocated cell start of the hbin tiling that `HiveEditor::new`
/// checks, no cell but a security cell is referenced twice, and the subkey /
/// value counts of every key match its lists (the editor, like Windows,
/// trusts the counts; nt-hive ignores them). nt-hive does not look at the tiling, so a hive where a damaged cell
/// size turns live cells into (parts of) a "free" cell reads fine through it;
/// the editor then allocates from that free cell over live records. That is
/// a known editor limitation (artifacts/hive_edit/crash-7e72a42c...: the
/// editor only checks the cells it follows); likewise a value list shared by
/// two keys is freed by an edit of one of them and left dangling in the other
/// (artifacts/hive_edit/crash-f3f8a28d...). Such hives are not held to the
/// strict read-back checks unless HIVE_EDIT_FUZZ_STRICT is set.
fn structure_ok(b: &[u8]) -> Result<(), String> {
    const BASE: usize = 4096;
    let u32_at = |off: usize| b.get(off..off + 4).map(|x| u32::from_le_bytes(x.try_into().unwrap()));
    let hbins = u32_at(40).ok_or("short")? as usize;
    // The tiling: cell start -> allocated.
    let mut tiles = std::collections::HashMap::new();
    let mut h = 0usize;
    while h < hbins {
        let size = u32_at(BASE + h + 8).ok_or("hbin past the end")? as usize;
        if size == 0 || size % 4096 != 0 {
            return Err("bad hbin size".into());
        }
        let mut c = h + 32;
        while c < h + size {
            let raw = u32_at(BASE + c).ok_or("cell past the end")? as i32;
            let len = raw.unsigned_abs() as usize;
            if len < 8 {
                return Err("bad cell size".into());
            }
            tiles.insert(c as u32, raw < 0);
            c += len;
        }
        h += size;
    }
    // The cell's data (after the size field), if it is an allocated cell start.
    let data = |off: u32| -> Result<&[u8], String> {
        match tiles.get(&off) {
            Some(true) => {
                let p = BASE + off as usize;
                let len = (u32_at(p).unwrap() as i32).unsigned_abs() as usize;
                b.get(p + 4..p + len).ok_or_else(|| format!("cell {off:#x} past the end"))
            }
            Some(false) => Err(format!("cell {off:#x} is referenced but free")),
            None => Err(format!("offset {off:#x} is referenced but not a cell start")),
        }
    };
    let le32 = |d: &[u8], o: usize| d.get(o..o + 4).map_or(u32::MAX, |x| u32::from_le_bytes(x.try_into().unwrap()));
    let le16 = |d: &[u8], o: usize| d.get(o..o + 2).map_or(0, |x| u16::from_le_bytes(x.try_into().unwrap()));
    let mut seen = std::collections::HashSet::new();
    let mut owned = std::collections::HashSet::new();
    let mut own = |off: u32| if owned.insert(off) { Ok(()) } else { Err(format!("cell {off:#x} is referenced twice")) };
    let mut keys = vec![u32_at(36).ok_or("short")?];
    let mut budget = 200_000usize;
    while let Some(k) = keys.pop() {
        if !seen.insert(k) {
            return Err(format!("key {k:#x} is referenced twice"));
        }
        budget = budget.checked_sub(1).ok_or("walk budget exhausted")?;
        let nk = data(k)?;
        if nk.get(..2) != Some(b"nk") {
            return Err(format!("cell {k:#x} is not a key"));
        }
        // Security cells are shared (reference counted); all others have one owner.
        let sk = le32(nk, 44);
        if sk != u32::MAX {
            data(sk)?;
        }
        let class = le32(nk, 48);
        if le16(nk, 74) > 0 && class != u32::MAX {
            own(class)?;
            data(class)?;
        }
        let nval = le32(nk, 36) as usize;
        if nval > 0 {
            own(le32(nk, 40))?;
            let list = data(le32(nk, 40))?;
            if list.len() / 4 < nval {
                return Err(format!("key {k:#x}: {nval} values but a value list of {} bytes", list.len()));
            }
            for i in 0..nval.min(list.len() / 4) {
                own(le32(list, 4 * i))?;
                let vk = data(le32(list, 4 * i))?;
                let (dsize, doff) = (le32(vk, 4), le32(vk, 8));
                if dsize & 0x8000_0000 == 0 && dsize > 0 {
                    own(doff)?;
                    let d = data(doff)?;
                    if dsize > 16344 && d.get(..2) == Some(b"db") {
                        own(le32(d, 4))?;
                        let segs = data(le32(d, 4))?;
                        for j in 0..(le16(d, 2) as usize).min(segs.len() / 4) {
                            own(le32(segs, 4 * j))?;
                            data(le32(segs, 4 * j))?;
                        }
                    }
                }
            }
        }
        // The subkey count must match the list (nt-hive ignores the count,
        // the editor and Windows trust it).
        let (nsub, list) = (le32(nk, 20) as usize, le32(nk, 28));
        let mut found = 0usize;
        if nsub > 0 || list != u32::MAX {
            let mut lists = vec![(list, 0)];
            while let Some((l, depth)) = lists.pop() {
                own(l)?;
                let cell = data(l)?;
                let n = le16(cell, 2) as usize;
                let width = match cell.get(..2) {
                    Some(b"lf") | Some(b"lh") => 8,
                    Some(b"li") | Some(b"ri") => 4,
                    _ => return Err(format!("cell {l:#x} is not a subkey list")),
                };
                if cell.len() < 4 + width * n {
                    return Err(format!("list {l:#x} of {n} entries in {} bytes", cell.len()));
                }
                let entries = (0..n).map(|i| le32(cell, 4 + width * i));
                match cell.get(..2) {
                    Some(b"ri") if depth == 0 => lists.extend(entries.map(|e| (e, 1))),
                    Some(b"ri") => return Err(format!("index root {l:#x} below an index root")),
                    _ => {
                        found += n;
                        keys.extend(entries);
                    }
                }
            }
        }
        if found != nsub {
            return Err(format!("key {k:#x}: subkey count {nsub} but {found} in its list"));
        }
    }
    Ok(())
}

fn tree(bytes: &[u8]) -> Hive {
    let report = HiveReport {
        state: HiveState::Clean,
        primary_seq1: 0,
        primary_seq2: 0,
        primary_checksum_ok: true,
        base_block_from_log: false,
        applied: vec![],
        max_sequence_seen: 0,
        recovered_sequence: None,
        notes: vec![],
    };
    Hive::new("fuzz", LoadedHive { bytes: bytes.to_vec(), report })
}

/// The key at `path` through tree::Hive; None when nt-hive panicked.
fn read_key(bytes: &[u8], path: &str) -> Option<rdprescue::error::Result<Key>> {
    let h = tree(bytes);
    nt(|| h.key(path))
}

/// Known bug (artifacts/hive_edit/crash-b6d688cf...): tree::Hive reads a
/// type nt-hive does not name (above 11) from the vk itself, finding key and
/// value by names decoded with bytes::utf16le, which stops at the first NUL:
/// a UTF-16 name holding U+0000 is not found and the type reads as 0. Such
/// types compare as "unknown" unless HIVE_EDIT_FUZZ_STRICT is set.
fn tree_type(ty: u32, path: &str, name: &str) -> Option<u32> {
    static STRICT: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    let strict = *STRICT.get_or_init(|| std::env::var_os("HIVE_EDIT_FUZZ_STRICT").is_some());
    (strict || ty <= 11 || !(path.contains('\0') || name.contains('\0'))).then_some(ty)
}

fn find_value(key: &Key, name: &str) -> Option<(u32, Vec<u8>)> {
    let f = fold(name);
    key.values.iter().find(|v| fold(&v.name) == f).map(|v| (v.kind, v.raw.clone()))
}

/// `base` with the `extra` components appended.
fn path_string(base: &str, extra: &[&str]) -> String {
    let mut p = base.to_string();
    for c in extra {
        if !p.is_empty() {
            p.push('\\');
        }
        p.push_str(c);
    }
    p
}

enum Op {
    Set { path: String, name: String, ty: u32, data: Vec<u8> },
    DelValue { path: String, name: String },
    DelKey { path: String },
    AddKey { path: String },
}

impl Op {
    fn show(&self) -> String {
        let cut = |s: &str| if s.len() > 200 { format!("{:?}...({} chars)", &s[..s.floor_char_boundary(200)], s.chars().count()) } else { format!("{s:?}") };
        match self {
            Op::Set { path, name, ty, data } => format!("set_value({}, {}, {ty:#x}, {} bytes)", cut(path), cut(name), data.len()),
            Op::DelValue { path, name } => format!("delete_value({}, {})", cut(path), cut(name)),
            Op::DelKey { path } => format!("delete_key({})", cut(path)),
            Op::AddKey { path } => format!("add_key({})", cut(path)),
        }
    }
}

/// HIVE_EDIT_FUZZ_TRACE set: print every op and its result (for triage).
fn trace() -> bool {
    static T: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    *T.get_or_init(|| std::env::var_os("HIVE_EDIT_FUZZ_TRACE").is_some())
}

fn decode_op(s: &mut Script, sv: &Survey) -> Op {
    let op = s.byte() % 8;
    let pb = s.byte();
    let base = if pb & 0x80 != 0 && !sv.keys.is_empty() {
        sv.keys[(pb & 0x7F) as usize % sv.keys.len()].clone()
    } else if pb & 0x40 != 0 {
        String::new()
    } else {
        KEY_VOCAB[pb as usize % KEY_VOCAB.len()].to_string()
    };
    let extra: Vec<String> = (0..(pb >> 4) % 3)
        .map(|_| {
            let c = s.byte();
            if c == 0xFF {
                "k".repeat(256) // over the 255-character key name limit
            } else if c == 0xFE {
                "K".repeat(255)
            } else {
                KEY_VOCAB[c as usize % KEY_VOCAB.len()].to_string()
            }
        })
        .collect();
    let path = path_string(&base, &extra.iter().map(String::as_str).collect::<Vec<_>>());
    let nb = s.byte();
    let name = if (nb & 0x80 != 0 || op == 7) && !sv.values.is_empty() {
        sv.values[(nb & 0x7F) as usize % sv.values.len()].clone()
    } else if nb == 0x7F {
        "v".repeat(16384) // over the value name limit
    } else {
        VALUE_VOCAB[nb as usize % VALUE_VOCAB.len()].to_string()
    };
    match op {
        4 => Op::DelValue { path, name },
        5 => Op::DelKey { path },
        6 => Op::AddKey { path },
        _ => {
            let tb = s.byte();
            let ty = if tb >= 0xF8 { u32::from_le_bytes([s.byte(), s.byte(), s.byte(), s.byte()]) } else { TYPES[tb as usize % 8] };
            let l = u16::from_le_bytes([s.byte(), s.byte()]);
            let len = if l & 0x8000 == 0 { l as usize % 9 } else { (l & 0x7FFF) as usize % 20001 };
            let fill = s.byte();
            let data = (0..len).map(|i| fill.wrapping_add((i as u8).wrapping_mul(fill | 1))).collect();
            Op::Set { path, name, ty, data }
        }
    }
}

fuzz_target!(|data: &[u8]| {
    tolerate_nt_hive_panics(true);
    let (&flags, rest) = data.split_first().unwrap_or((&0, &[]));
    let (&slen, rest) = rest.split_first().unwrap_or((&0, &[]));
    let (script, hive) = rest.split_at((slen as usize).min(rest.len()));
    let mut bytes = hive.to_vec();
    if bytes.len() < 4096 {
        return;
    }
    if flags & 1 != 0 {
        let seq1 = le32(&bytes, 4);
        bytes[8..12].copy_from_slice(&seq1.to_le_bytes());
        let c = base_block_checksum(&bytes);
        bytes[508..512].copy_from_slice(&c.to_le_bytes());
    }
    let loaded = load(bytes.clone(), None, None).ok();
    let (bytes, max_seq) = if flags & 8 != 0 {
        // What the callers (repair, reg set/import) do: edit what load returned.
        let Some(h) = loaded else { return };
        (h.bytes, h.report.max_sequence_seen)
    } else {
        // What a caller passes: load's max_sequence_seen, at or after the primary's.
        let seq1 = le32(&bytes, 4);
        (bytes, seq1.wrapping_add([0, 1, 1000, 0x7FFF_FFFE][((flags >> 1) & 3) as usize]))
    };
    if bytes.len() < 4096 {
        return;
    }
    let seq1 = le32(&bytes, 4);
    let sv = survey(&bytes);
    let refs = if sv.well_formed { structure_ok(&bytes) } else { Err("not checked".into()) };
    // The input, to check that the pages `finish_written` names hold every change.
    let input = bytes.clone();
    let Ok(mut ed) = HiveEditor::new(bytes, max_seq) else { return };
    let strict = sv.well_formed && (refs.is_ok() || std::env::var_os("HIVE_EDIT_FUZZ_STRICT").is_some());
    if trace() {
        eprintln!("well formed for nt-hive: {} {:?}; structure: {refs:?}; strict: {strict}", sv.well_formed, sv.why);
    }

    let mut s = Script(script);
    let mut ops = 0;
    while !s.0.is_empty() && ops < 24 {
        ops += 1;
        let op = decode_op(&mut s, &sv);
        let before = ed.bytes().to_vec();
        // What the key holds before the op (only needed for set_value's old value).
        let old_seen = match (&op, strict) {
            (Op::Set { path, name, .. }, true) => match read_key(&before, path) {
                Some(Ok(k)) => Some(find_value(&k, name)),
                Some(Err(rdprescue::error::Error::NotFound { .. })) => Some(None),
                _ => None,
            },
            _ => None,
        };
        let ok = match &op {
            Op::Set { path, name, ty, data } => ed.set_value(path, name, *ty, data).map(|old| {
                if let Some(seen) = old_seen {
                    // The editor's type is the truth; tree_type says when tree::Hive may misread it.
                    let seen = match (&old, seen) {
                        (Some((t, _)), Some((_, d))) if tree_type(*t, path, name).is_none() => Some((*t, d)),
                        (_, seen) => seen,
                    };
                    assert_eq!(old, seen, "set_value({path:?}, {name:?}) returned an old value nt-hive did not see");
                }
                Some(())
            }),
            Op::DelValue { path, name } => ed.delete_value(path, name).map(|done| done.then_some(())),
            Op::DelKey { path } => ed.delete_key(path).map(|done| done.then_some(())),
            Op::AddKey { path } => ed.add_key(path).map(|done| done.then_some(())),
        }
        .map(|changed| changed.is_some());
        if trace() {
            let after = survey(ed.bytes());
            eprintln!("op {ops}: {} -> {:?} (well formed after: {} {:?})", op.show(), ok.as_ref().map_err(|e| e.to_string()), after.well_formed, after.why);
        }
        match ok {
            Err(_) => {
                assert!(ed.bytes() == &before[..], "a failed edit changed the hive");
                continue;
            }
            // delete_* / add_key found nothing to do.
            Ok(false) => assert!(ed.bytes() == &before[..], "{} did nothing but changed the hive", op.show()),
            Ok(true) => {}
        }
        if !strict {
            continue;
        }
        let now = ed.bytes();
        match &op {
            Op::Set { path, name, ty, data } => match read_key(now, path) {
                Some(Ok(k)) => {
                    let got = find_value(&k, name);
                    if tree_type(*ty, path, name).is_some() {
                        assert_eq!(got.as_ref().map(|(t, _)| *t), Some(*ty), "type of {path:?} {name:?} after set_value");
                    }
                    assert!(got.is_some_and(|(_, d)| d == *data), "data of {path:?} {name:?} after set_value");
                }
                Some(Err(e)) => panic!("key {path:?} unreadable after set_value: {e}"),
                None => {}
            },
            Op::AddKey { path } => {
                if let Some(Err(e)) = read_key(now, path) {
                    panic!("key {path:?} unreadable after add_key: {e}");
                }
            }
            Op::DelKey { path } => {
                if let Some(Ok(_)) = read_key(now, path) {
                    panic!("key {path:?} still there after delete_key (which returned {ok:?})");
                }
            }
            Op::DelValue { path, name } => {
                if let Some(Ok(k)) = read_key(now, path) {
                    assert!(find_value(&k, name).is_none(), "value {path:?} {name:?} still there after delete_value (which returned {ok:?})");
                }
            }
        }
    }

    let Ok((out, written)) = ed.finish_written() else { return };
    assert!(out.len() >= 4096);
    // Outside the pages it names, the output is the input byte for byte
    // (the plan compares only those pages with the hive's file).
    assert!(written.windows(2).all(|w| w[0] < w[1]) && written.first() == Some(&0), "written pages {written:?}");
    for (p, page) in out.chunks(4096).enumerate() {
        let was = input.get(p * 4096..((p + 1) * 4096).min(input.len())).unwrap_or(&[]);
        assert!(page == was || written.binary_search(&p).is_ok(), "page {p} changed but finish_written does not name it");
    }
    let (s1, s2) = (le32(&out, 4), le32(&out, 8));
    assert_eq!(s1, s2, "finish left seq1 != seq2");
    for given in [seq1, max_seq] {
        assert!((s1.wrapping_sub(given) as i32) > 0, "finish seq {s1} is not after {given}");
    }
    assert_eq!(le32(&out, 508), base_block_checksum(&out), "finish left a wrong checksum");
    match load(out.clone(), None, None) {
        Ok(h) => assert_eq!(h.report.state, HiveState::Clean, "finished hive does not load clean"),
        // The editor checks the base block with load's own function
        // (recover::check_primary_base), so what it opened, load opens.
        Err(e) => panic!("finished hive does not load: {e}"),
    }
    if let Err(e) = HiveEditor::new(out.clone(), 0) {
        panic!("the editor refuses its own output: {e}");
    }
    if strict {
        let after = survey(&out);
        assert!(after.well_formed, "edits turned a well-formed hive into a malformed one: {:?}", after.why);
    }
});
