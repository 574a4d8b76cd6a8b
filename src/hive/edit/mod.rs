//! Offline editing of a registry hive (regf) in memory: set and delete values,
//! create and delete keys, then mark the result clean so that Windows ignores
//! the stale .LOG1/.LOG2 at the next boot (formats.md A.4–A.6, B.4).
//!
//! # How it works
//!
//! [`HiveEditor::new`] takes the *recovered* bytes of a hive (what
//! [`crate::hive::load`] returns: logs already replayed) and refuses a dirty
//! base block, because editing a hive whose newest state still lives in its logs
//! either loses that state or lets Windows replay the logs over the edit
//! (formats.md rule 1). It then walks every hbin and every cell once and keeps
//! three indexes: the set of all cell starts, the free cells, and the end of the
//! hive-bins data. It checks the base block with the loader's own function
//! ([`crate::hive::recover::check_primary_base`]) and walks the whole key tree
//! once: every referenced cell must be an allocated cell start with exactly one
//! referrer (security cells excepted, they are shared by reference count), so
//! that freeing a cell never frees something still in use and no live record
//! hides inside a free cell. Every offset read from the hive is checked against the set of
//! cell starts before it is followed, and every field read or written is checked
//! against its cell's length, so a damaged hive gives a `Corrupt` error naming
//! the file offset, never a panic or a write into the middle of another record.
//!
//! Each public edit is a transaction: on error the editor is restored to its
//! state before the call (a clone is taken first; hives are a few MiB).
//!
//! Allocation is first-fit over the free cells (split when at least 16 bytes
//! remain, so no tiny fragments are made), freeing coalesces with free
//! neighbours, and only when no free cell fits is a new hbin appended
//! (a multiple of 4096 bytes, fully tiled, hive-bins size in the base block
//! updated). Cells never cross an hbin boundary by construction: free cells only
//! ever come from one hbin, and two cells are merged only when they touch, which
//! the 32-byte hbin header prevents across bins.
//!
//! # Choices and limits
//!
//! * Value data longer than 16344 bytes would need a big-data (`db`) record;
//!   this editor does not write those and refuses such data with a `Usage`
//!   error. Existing big-data values are read (their old data is returned) and
//!   can be replaced by data that fits one cell; their `db`, segment-list and
//!   segment cells are then freed.
//! * New keys reuse the parent's security descriptor (its `sk` cell, whose
//!   reference count is incremented), as offline tools do; Windows would give
//!   an inherited one, but the parent's is valid. New keys have no class name.
//! * Deleting keys decrements reference counts. When a count would reach 0, all
//!   allocated key cells are scanned: if some still use the `sk` (the stored
//!   count was too low) the true count is stored, otherwise the `sk` is unlinked
//!   from the security list and freed.
//! * The "largest name / data" fields of a key are raised when needed but never
//!   lowered on deletion (they are upper bounds for buffer sizes).
//! * A subkey leaf holds at most 65535 entries; inserting into a full leaf is
//!   refused (`Unsupported`) instead of splitting it into an index root.
//! * Keys flagged as hive entry points (0x04) or no-delete (0x08) are not deleted,
//!   no key is created below a symbolic-link key (0x10), and no stored
//!   `CurrentControlSet` is created at the root (Windows makes it at boot as a
//!   volatile link; callers must name the control set).
//! * Names are compared the way nt-hive and Windows do: UTF-16 code unit by code
//!   unit after a simple one-to-one uppercase (Rust's uppercase when it maps to
//!   one BMP character, else the unit itself); rare characters whose Windows
//!   table differs from Unicode may sort differently.
//! * Volatile subkey fields are meaningless on disk and left alone.
//!
//! # Layout of this module
//!
//! `names` (upcase, hashes, stored name forms, paths), `cells` (cell bitmap,
//! bounded reads and writes, allocator, transactions), `keys` (key nodes,
//! subkey lists, subtree deletion, security cells), `values` (value lists,
//! data cells), `batch` (typed edits applied linearly), `collapse` (later-wins
//! reduction of an edit list), `ops` (the typed edits).

mod batch;
mod cells;
mod collapse;
mod keys;
mod names;
mod ops;
mod values;
pub use batch::Applied;
pub use collapse::collapse;
use cells::*;
use keys::*;
use names::*;
use values::*;
pub use ops::{display_name, show_json, type_name, Edit, EditOp, RegData};

use std::collections::{BTreeMap, HashSet};
use std::ops::Range;

use super::recover::{base_block_checksum, check_primary_base, MAX_HBINS_SIZE};
use crate::bytes::{le_u16, le_u32};
use crate::error::{Error, Layer, Result};

// The regf layout (regf.rs), under the names the editor uses.
use super::regf::base::{
    CHECKSUM as OFF_CHECKSUM, FILE_TYPE as OFF_FILE_TYPE, FILE_TYPE_PRIMARY, HBINS_SIZE as OFF_HBINS, LEN as BASE,
    MINOR as OFF_MINOR, ROOT as OFF_ROOT, SEQ1 as OFF_SEQ1, SEQ2 as OFF_SEQ2, TIMESTAMP as OFF_TIMESTAMP,
};
use super::regf::cell::{MAX_DATA as MAX_CELL_DATA, NONE};
use super::regf::hbin::{ALIGN as HBIN_ALIGN, HEADER_LEN as HBIN_HEADER};
use super::regf::nk::{
    CLASS_NAME as NK_CLASS, CLASS_NAME_LEN as NK_CLASS_LEN, FLAGS as NK_FLAGS, FLAG_COMP_NAME as KEY_COMP_NAME,
    FLAG_HIVE_ENTRY as KEY_HIVE_ENTRY, FLAG_NO_DELETE as KEY_NO_DELETE, FLAG_SYM_LINK as KEY_SYM_LINK,
    MAX_SUBKEY_NAME as NK_MAX_NAME, MAX_VALUE_DATA as NK_MAX_VDATA, MAX_VALUE_NAME as NK_MAX_VNAME, NAME as NK_NAME,
    NAME_LEN as NK_NAME_LEN, PARENT as NK_PARENT, SECURITY as NK_SK, SUBKEYS_LIST as NK_LIST, SUBKEY_COUNT as NK_NSUB,
    TIMESTAMP as NK_TIME, VALUES_LIST as NK_VLIST, VALUE_COUNT as NK_NVAL, VOLATILE_SUBKEYS_LIST as NK_VOLATILE_LIST,
};
use super::regf::sk::{BLINK as SK_BLINK, DESCRIPTOR as SK_MIN_LEN, FLINK as SK_FLINK, REFERENCES as SK_REFS};
use super::regf::vk::{
    DATA_INLINE, DATA_OFFSET as VK_DOFF, DATA_SIZE as VK_DSIZE, FLAGS as VK_FLAGS, FLAG_COMP_NAME as VALUE_COMP_NAME,
    NAME as VK_NAME, NAME_LEN as VK_NAME_LEN, TYPE as VK_TYPE,
};
use super::regf::{db, hbin, list};
use super::regf::{nk::SIGNATURE as NK_SIG, sk::SIGNATURE as SK_SIG, vk::SIGNATURE as VK_SIG};

/// Windows limits: key names 255 characters, value names 16383, 512 levels.
const MAX_KEY_NAME: usize = 255;
const MAX_VALUE_NAME: usize = 16383;
const MAX_DEPTH: usize = 512;
/// Entries in one subkey leaf (a u16 count).
const MAX_LEAF: usize = u16::MAX as usize;
/// Largest cell this editor allocates (a full lh leaf is ~512 KiB).
const MAX_ALLOC: usize = 1 << 20;

/// An in-memory regf hive being edited. See the module documentation.
#[derive(Clone)]
pub struct HiveEditor {
    b: Vec<u8>,
    max_seq: u32,
    minor: u32,
    root: u32,
    /// FILETIME written into every touched key.
    now: u64,
    /// End of the hive-bins data (= base block +40), relative to [`BASE`].
    hbins_end: u32,
    /// Start of every cell, free or allocated.
    cells: CellSet,
    /// Free cells: start → size.
    free: BTreeMap<u32, u32>,
    /// During an edit: the original bytes of every 4 KiB page it wrote, so a
    /// failed edit can be rolled back without copying the whole hive first.
    journal: Option<Journal>,
    /// Every 4 KiB page written since [`HiveEditor::new`] (one bit each,
    /// rolled-back edits included): outside them the bytes are the ones it
    /// was given. [`HiveEditor::finish_written`] returns them.
    written: Vec<u64>,
}

fn corrupt_at(file_off: usize, msg: impl Into<String>) -> Error {
    Error::corrupt(Layer::Hive, file_off as u64, msg)
}

/// A `Corrupt` error about the cell at cell offset `cell`.
fn bad_cell(cell: u32, msg: impl Into<String>) -> Error {
    corrupt_at(BASE + cell as usize, msg)
}

fn round8(n: usize) -> usize {
    (n + 7) & !7
}

/// `a` comes after `b` in sequence-number order (mod 2^32).
fn seq_after(a: u32, b: u32) -> bool {
    (a.wrapping_sub(b) as i32) > 0
}

/// Now as a FILETIME; `SOURCE_DATE_EPOCH` (Unix seconds, the reproducible-builds
/// convention) fixes it, so two runs of the same fix write identical bytes.
fn filetime_now() -> u64 {
    if let Some(secs) = std::env::var("SOURCE_DATE_EPOCH").ok().and_then(|v| v.trim().parse::<u64>().ok()) {
        return (secs + 11_644_473_600) * 10_000_000;
    }
    let d = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default();
    (d.as_secs() + 11_644_473_600) * 10_000_000 + u64::from(d.subsec_nanos() / 100)
}

impl HiveEditor {
    /// Start from the recovered bytes of a hive (LoadedHive.bytes / Hive.bytes) and the
    /// highest sequence number seen in its primary and logs (report.max_sequence_seen).
    pub fn new(bytes: Vec<u8>, max_sequence_seen: u32) -> Result<Self> {
        let b = bytes;
        if b.len() < BASE {
            return Err(corrupt_at(b.len(), format!("file is {} bytes, shorter than the 4096-byte base block", b.len())));
        }
        if b.get(0..4) != Some(b"regf") {
            return Err(corrupt_at(0, "no regf signature"));
        }
        if le_u32(&b, OFF_CHECKSUM) != base_block_checksum(&b) {
            return Err(corrupt_at(OFF_CHECKSUM, "base block checksum is wrong (dirty hive): load it with its logs before editing"));
        }
        let (seq1, seq2) = (le_u32(&b, OFF_SEQ1), le_u32(&b, OFF_SEQ2));
        if seq1 != seq2 {
            return Err(corrupt_at(OFF_SEQ1, format!("dirty hive (sequence numbers {seq1} / {seq2}): load it with its logs before editing")));
        }
        // The same base-block checks as `load` (version, file format, file
        // type, hive-bins size, root offset): one function, so the editor is
        // never laxer than the loader.
        check_primary_base(&b)?;
        let minor = le_u32(&b, OFF_MINOR);
        let hbins = le_u32(&b, OFF_HBINS);
        if hbins == 0 || hbins % HBIN_ALIGN != 0 || hbins > MAX_HBINS_SIZE || BASE + hbins as usize > b.len() {
            return Err(corrupt_at(OFF_HBINS, format!("hive bins data size {hbins:#x} is not a multiple of 4096 inside the {}-byte file", b.len())));
        }

        // Walk the hbins and their cells once. The hbins must tile the hive-bins
        // data and the cells must tile each hbin: that is what lets the
        // allocator trust sizes and the readers trust cell starts.
        let mut cells = CellSet::with_capacity(hbins);
        let mut free = BTreeMap::new();
        let mut h = 0u32;
        while h < hbins {
            let pos = BASE + h as usize;
            if b.get(pos..pos + 4) != Some(hbin::SIGNATURE) {
                return Err(corrupt_at(pos, "no hbin signature where the previous hbin ends"));
            }
            if le_u32(&b, pos + hbin::OFFSET) != h {
                return Err(corrupt_at(pos + hbin::OFFSET, format!("hbin offset field {:#x} is not its position {h:#x}", le_u32(&b, pos + hbin::OFFSET))));
            }
            let size = le_u32(&b, pos + hbin::SIZE);
            let end = match h.checked_add(size) {
                Some(e) if size != 0 && size % HBIN_ALIGN == 0 && e <= hbins => e,
                _ => return Err(corrupt_at(pos + hbin::SIZE, format!("hbin size {size:#x} is not a multiple of 4096 inside the hive bins"))),
            };
            let mut c = h + HBIN_HEADER;
            while c < end {
                let raw = le_u32(&b, BASE + c as usize) as i32;
                let len = raw.unsigned_abs();
                if len < 8 || len % 8 != 0 || len > end - c {
                    return Err(bad_cell(c, format!("cell size {raw} is not a multiple of 8 inside its hbin ({h:#x}..{end:#x})")));
                }
                cells.insert(c);
                if raw > 0 {
                    free.insert(c, len);
                }
                c += len;
            }
            h = end;
        }
        let ed = HiveEditor {
            b,
            max_seq: max_sequence_seen,
            minor,
            root: 0,
            now: filetime_now(),
            hbins_end: hbins,
            cells,
            free,
            journal: None,
            written: Vec::new(),
        };
        let root = le_u32(&ed.b, OFF_ROOT);
        let ed = HiveEditor { root, ..ed };
        ed.check_ownership()?;
        Ok(ed)
    }

    /// Walk the whole key tree once and require every cell it references (key
    /// nodes, subkey lists, value lists, values, data, big-data records and
    /// segments, class names) to be an allocated cell start with exactly one
    /// referrer; security cells, shared by reference count, must be allocated
    /// `sk` cells. This is what lets the editor free and reuse cells: a cell
    /// with two owners (a value list shared by two keys) would be freed while
    /// still in use, and a record inside a "free" cell (a damaged size field
    /// swallowing its neighbours) would be allocated over.
    fn check_ownership(&self) -> Result<()> {
        // One bit per 8-byte unit, like `cells`: every cell start is inside it.
        let mut owned = CellSet::with_capacity(self.hbins_end);
        // The bitmap word and bit are computed once per reference: this runs
        // for every cell of the hive (hundreds of thousands) on every plan.
        #[cold]
        #[inline(never)]
        fn refused(off: u32, what: &str, from: u32, why: u8) -> Error {
            bad_cell(
                off,
                match why {
                    0 => format!("{what} at {off:#x} (referenced by cell {from:#x}) is not the start of a cell"),
                    1 => format!("{what} at {off:#x} (referenced by cell {from:#x}) is a free cell"),
                    _ => format!("{what} at {off:#x} is referenced twice (again by cell {from:#x})"),
                },
            )
        }
        /// Claim cell `off` for one owner: it must start a cell, be
        /// allocated and not be claimed yet. Inlined into every call site.
        #[inline(always)]
        fn claim_in(cells: &[u64], b: &[u8], owned: &mut CellSet, off: u32, what: &str, from: u32) -> Result<()> {
            let (w, m) = CellSet::slot(off);
            if off % 8 != 0 || cells.get(w).is_none_or(|x| x & m == 0) {
                return Err(refused(off, what, from, 0));
            }
            if (le_u32(b, BASE + off as usize) as i32) >= 0 {
                return Err(refused(off, what, from, 1));
            }
            let fresh = match owned.bits.get_mut(w) {
                Some(o) => {
                    let had = *o & m != 0;
                    *o |= m;
                    !had
                }
                None => owned.insert(off),
            };
            if !fresh {
                return Err(refused(off, what, from, 2));
            }
            Ok(())
        }
        let (cells, b) = (&self.cells.bits[..], &self.b[..]);
        // Keys share a few security cells: each distinct run checked once.
        let mut last_sk = None;
        claim_in(cells, b, &mut owned, self.root, "root key node", self.root)?;
        // Raw field reads, no per-key allocation: this runs on every open of
        // hives with hundreds of thousands of cells. The checks are those of
        // nk(), value_list(), storage() and subkeys(), which edits rely on.
        let mut stack = vec![self.root];
        while let Some(k) = stack.pop() {
            let c = self.cell(k)?;
            if c.len() < NK_NAME || c.get(0..2) != Some(NK_SIG) {
                return Err(bad_cell(k, format!("cell {k:#x} is not a key node (nk)")));
            }
            let (nsub, list, nval, vlist) = (le_u32(c, NK_NSUB), le_u32(c, NK_LIST), le_u32(c, NK_NVAL), le_u32(c, NK_VLIST));
            let (class, class_len) = (le_u32(c, NK_CLASS), le_u16(c, NK_CLASS_LEN));
            if NK_NAME + le_u16(c, NK_NAME_LEN) as usize > c.len() {
                return Err(bad_cell(k, "key name runs past its cell"));
            }
            let sk = le_u32(c, NK_SK);
            if last_sk != Some(sk) {
                self.sk_cell(sk)?;
                last_sk = Some(sk);
            }
            if class != NONE && class_len > 0 {
                claim_in(cells, b, &mut owned, class, "class name", k)?;
            }
            if nval > 0 {
                claim_in(cells, b, &mut owned, vlist, "value list", k)?;
                let l = self.cell(vlist)?;
                if (nval as usize).checked_mul(4).is_none_or(|need| need > l.len()) {
                    return Err(bad_cell(vlist, format!("value list of key {k:#x} is shorter than its {nval} values")));
                }
                for i in 0..nval as usize {
                    let v = le_u32(l, 4 * i);
                    claim_in(cells, b, &mut owned, v, "key value", vlist)?;
                    let c = self.cell(v)?;
                    if c.len() < VK_NAME || c.get(0..2) != Some(VK_SIG) {
                        return Err(bad_cell(v, format!("cell {v:#x} is not a key value (vk)")));
                    }
                    let vk = Vk { off: v, name: Vec::new(), dsize: le_u32(c, VK_DSIZE), doff: le_u32(c, VK_DOFF), ty: le_u32(c, VK_TYPE) };
                    match self.storage(&vk)? {
                        Storage::Inline | Storage::Empty => {}
                        Storage::Cell(d) => claim_in(cells, b, &mut owned, d, "value data", v)?,
                        Storage::Big { db, list, segs } => {
                            claim_in(cells, b, &mut owned, db, "big-data record", v)?;
                            claim_in(cells, b, &mut owned, list, "big-data segment list", db)?;
                            for s in segs {
                                claim_in(cells, b, &mut owned, s, "big-data segment", list)?;
                            }
                        }
                    }
                }
            }
            if nsub == 0 {
                continue;
            }
            // An index root over leaves, or one leaf.
            let top = self.cell(list)?;
            claim_in(cells, b, &mut owned, list, if top.get(0..2) == Some(list::RI) { "subkey index root" } else { "subkey list" }, k)?;
            // The leaves: an index root's entries (all claimed before any is
            // read), or the list itself; no allocation per key.
            let (ri, n_leaves) = if top.get(0..2) == Some(list::RI) {
                let n = le_u16(top, list::COUNT) as usize;
                if list::ENTRIES + 4 * n > top.len() {
                    return Err(bad_cell(list, format!("index root with {n} entries is longer than its cell")));
                }
                for i in 0..n {
                    claim_in(cells, b, &mut owned, le_u32(top, list::ENTRIES + 4 * i), "subkey list", list)?;
                }
                (true, n)
            } else {
                (false, 1)
            };
            let mut total = 0usize;
            for j in 0..n_leaves {
                let l = if ri { le_u32(top, list::ENTRIES + 4 * j) } else { list };
                let c = self.cell(l)?;
                let step = match c.get(0..2) {
                    Some(s) if s == list::LI => 4,
                    Some(s) if s == list::LF || s == list::LH => 8,
                    _ => return Err(bad_cell(l, format!("cell {l:#x} is not a subkey leaf (li/lf/lh)"))),
                };
                let n = le_u16(c, list::COUNT) as usize;
                if list::ENTRIES + step * n > c.len() {
                    return Err(bad_cell(l, format!("subkey leaf with {n} entries is longer than its cell")));
                }
                total += n;
                for i in 0..n {
                    let child = le_u32(c, list::ENTRIES + step * i);
                    claim_in(cells, b, &mut owned, child, "key node", l)?;
                    stack.push(child);
                }
            }
            if total != nsub as usize {
                return Err(bad_cell(k, format!("key at {k:#x} says {nsub} subkeys but its list holds {total}")));
            }
        }
        Ok(())
    }

    /// Bytes currently (for tests).
    pub fn bytes(&self) -> &[u8] {
        &self.b
    }

    /// Set value `name` ("" = default value) of key `path` (hive-relative, `\`-separated,
    /// case-insensitive, e.g. r"ControlSet001\Control\Terminal Server") to type `ty`
    /// (REG_SZ=1, REG_EXPAND_SZ=2, REG_BINARY=3, REG_DWORD=4, REG_MULTI_SZ=7, REG_QWORD=11)
    /// and raw data `data` (already encoded: UTF-16LE with terminator for strings, LE for numbers).
    /// Creates missing keys along the path and the value if absent. Returns the old
    /// (type, data) if the value existed.
    ///
    /// Data longer than 16344 bytes is refused (`Usage`): it would need a big-data
    /// (`db`) record, which this editor does not write. An existing big-data value
    /// can be replaced by data of at most 16344 bytes.
    pub fn set_value(&mut self, path: &str, name: &str, ty: u32, data: &[u8]) -> Result<Option<(u32, Vec<u8>)>> {
        if data.len() > MAX_CELL_DATA {
            return Err(Error::Usage(format!(
                "value {name:?}: {} bytes of data; values over {MAX_CELL_DATA} bytes need big-data cells, which the hive editor does not write",
                data.len()
            )));
        }
        let vname: Vec<u16> = name.encode_utf16().collect();
        if vname.len() > MAX_VALUE_NAME {
            return Err(Error::Usage(format!("value name longer than {MAX_VALUE_NAME} characters")));
        }
        let comps = parse_path(path)?;
        self.transact(|ed| ed.set_value_in(&comps, &vname, ty, data))
    }

    /// Create key `path` and any missing parents (no values); Ok(false) when it
    /// already existed.
    pub fn add_key(&mut self, path: &str) -> Result<bool> {
        let comps = parse_path(path)?;
        if comps.is_empty() {
            return Ok(false);
        }
        let mut cur = Some(self.root);
        for c in &comps {
            cur = match cur {
                Some(k) => self.find_child(&self.nk(k)?, &upcase(c))?.map(|(_, _, child)| child),
                None => None,
            };
        }
        if cur.is_some() {
            return Ok(false);
        }
        self.transact(|ed| ed.ensure_key(&comps))?;
        Ok(true)
    }

    /// Delete a value; Ok(false) if key or value absent.
    pub fn delete_value(&mut self, path: &str, name: &str) -> Result<bool> {
        let comps = parse_path(path)?;
        let up = upcase(&name.encode_utf16().collect::<Vec<_>>());
        self.transact(|ed| {
            let Some(key) = ed.resolve(&comps)? else { return Ok(false) };
            let nk = ed.nk(key)?;
            let mut list = ed.value_list(&nk)?;
            let Some((idx, vk)) = ed.find_value(&list, &up)? else { return Ok(false) };
            let storage = ed.storage(&vk)?;
            list.remove(idx);
            if list.is_empty() {
                ed.free_cell(nk.vlist)?;
                ed.w32(key, NK_VLIST, NONE)?;
            } else {
                let raw: Vec<u8> = list.iter().flat_map(|o| o.to_le_bytes()).collect();
                ed.wbytes(nk.vlist, 0, &raw)?;
            }
            ed.w32(key, NK_NVAL, list.len() as u32)?;
            for c in storage.cells() {
                ed.free_cell(c)?;
            }
            ed.free_cell(vk.off)?;
            ed.touch(key)?;
            Ok(true)
        })
    }

    /// Delete a key and its whole subtree; Ok(false) if absent. Refuse the root.
    pub fn delete_key(&mut self, path: &str) -> Result<bool> {
        let comps = parse_path(path)?;
        let Some((last, parent_path)) = comps.split_last() else {
            return Err(Error::Usage("refusing to delete the root key of a hive".into()));
        };
        self.transact(|ed| ed.delete_key_in(parent_path, last))
    }

    /// Mark clean (seq1 = seq2 = max(every seq seen, incl. the ones passed to new and the
    /// primary's) + 1, fresh last-written timestamp, file type primary, hive-bins size updated,
    /// checksum last) and return the bytes. Length may grow (new hbins) — callers check if it fits.
    pub fn finish(self) -> Result<Vec<u8>> {
        Ok(self.finish_written()?.0)
    }

    /// [`finish`](Self::finish), with the 4 KiB pages written since
    /// [`new`](Self::new) (by increasing index; the base block's page is
    /// always one): everywhere else the bytes are those `new` was given, so
    /// a caller comparing the result with the original compares only these.
    pub fn finish_written(mut self) -> Result<(Vec<u8>, Vec<usize>)> {
        // The new sequence number must be above every log entry so that no
        // stale .LOG1/.LOG2 entry is ever eligible again (formats.md B.4).
        let top = [le_u32(&self.b, OFF_SEQ1), le_u32(&self.b, OFF_SEQ2)]
            .into_iter()
            .fold(self.max_seq, |m, s| if seq_after(s, m) { s } else { m });
        let seq = top.wrapping_add(1);
        let now = filetime_now();
        let hbins = self.hbins_end;
        self.put(OFF_SEQ1, &seq.to_le_bytes());
        self.put(OFF_SEQ2, &seq.to_le_bytes());
        // A fresh timestamp stops an old-format (DIRT) log from matching; the
        // first hbin keeps a copy that is used when the base block is damaged.
        self.put(OFF_TIMESTAMP, &now.to_le_bytes());
        self.put(BASE + hbin::TIMESTAMP, &now.to_le_bytes());
        self.put(OFF_FILE_TYPE, &FILE_TYPE_PRIMARY.to_le_bytes());
        self.put(OFF_HBINS, &hbins.to_le_bytes());
        let sum = base_block_checksum(&self.b);
        self.put(OFF_CHECKSUM, &sum.to_le_bytes());
        let pages = (0..self.written.len() * 64).filter(|&p| self.written[p / 64] & (1 << (p % 64)) != 0 && p * PAGE < self.b.len()).collect();
        Ok((self.b, pages))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::hive::tree;
    use crate::hive::HiveState;
    use std::collections::BTreeSet;

    /// The repo's own generated SOFTWARE hive (testdata/make-fixtures.sh): lh
    /// lists, one sk, odd names, a class name and a 40000-byte big-data value.
    pub(super) fn software() -> Vec<u8> {
        include_bytes!("../../../testdata/hives/SOFTWARE").to_vec()
    }

    pub(in crate::hive::edit) fn editor() -> HiveEditor {
        HiveEditor::new(software(), 42).unwrap()
    }

    fn u16s(s: &str) -> Vec<u16> {
        s.encode_utf16().collect()
    }

    pub(super) fn sz(s: &str) -> Vec<u8> {
        s.encode_utf16().chain([0]).flat_map(|u| u.to_le_bytes()).collect()
    }

    pub(super) type Snap = BTreeMap<String, BTreeMap<String, (u32, Vec<u8>)>>;

    /// Every key and value as nt-hive reads them from finished bytes. The walk
    /// looks every key up by path, i.e. by nt-hive's binary search, so a list
    /// out of order shows up as a missing key.
    pub(super) fn snap(bytes: &[u8]) -> Snap {
        let loaded = crate::hive::load(bytes.to_vec(), None, None).unwrap();
        assert_eq!(loaded.report.state, HiveState::Clean);
        let h = tree::Hive::new("T", loaded);
        h.walk("")
            .unwrap()
            .into_iter()
            .map(|k| (k.path, k.values.into_iter().map(|v| (v.name, (v.kind, v.raw))).collect()))
            .collect()
    }

    /// `got == want`, reporting only the differing keys.
    #[track_caller]
    pub(super) fn same(got: &Snap, want: &Snap, what: &str) {
        if got != want {
            let missing: Vec<_> = want.keys().filter(|k| !got.contains_key(*k)).collect();
            let extra: Vec<_> = got.keys().filter(|k| !want.contains_key(*k)).collect();
            let changed: Vec<_> = got.keys().filter(|k| want.get(*k).is_some_and(|w| w != &got[*k])).collect();
            panic!("{what}: trees differ; missing {missing:?}, unexpected {extra:?}, values differ in {changed:?}");
        }
    }

    /// Record an expected value, under the existing spelling of the key if any.
    fn expect(want: &mut Snap, path: &str, name: &str, v: (u32, Vec<u8>)) {
        let real = want.keys().find(|k| k.to_uppercase() == path.to_uppercase()).cloned().unwrap_or(path.to_string());
        want.entry(real).or_default().insert(name.into(), v);
    }

    pub(super) fn finished(ed: &HiveEditor) -> Vec<u8> {
        ed.clone().finish().unwrap()
    }

    /// Independent structural checks of a hive: hbin/cell tiling (via `new`),
    /// every subkey list sorted with the right hashes and hints, parent links,
    /// counts, readable values, max-length fields, exact sk reference counts
    /// and a consistent sk list.
    pub(super) fn verify(bytes: &[u8]) -> HiveEditor {
        let ed = HiveEditor::new(bytes.to_vec(), 0).expect("hive structure");
        let mut sk_users: BTreeMap<u32, u32> = BTreeMap::new();
        let mut stack = vec![ed.root];
        while let Some(o) = stack.pop() {
            let nk = ed.nk(o).unwrap();
            let raw = ed.cell(o).unwrap().to_vec();
            *sk_users.entry(nk.sk).or_default() += 1;
            let subs = ed.subkeys(&nk).unwrap();
            let mut prev: Option<Vec<u16>> = None;
            for l in &subs.leaves {
                assert!(!l.items.is_empty(), "empty leaf under {}", show(&nk.name));
                for &(c, extra) in &l.items {
                    let cnk = ed.nk(c).unwrap();
                    let up = upcase(&cnk.name);
                    if let Some(p) = &prev {
                        assert!(*p < up, "{:?} not after {:?}", show(&cnk.name), show(p));
                    }
                    prev = Some(up);
                    match l.kind {
                        LeafKind::Lh => assert_eq!(extra, lh_hash(&cnk.name), "lh hash of {}", show(&cnk.name)),
                        LeafKind::Lf => assert_eq!(extra, lf_hint(&cnk.name), "lf hint of {}", show(&cnk.name)),
                        LeafKind::Li => {}
                    }
                    assert_eq!(le_u32(ed.cell(c).unwrap(), 16), o, "parent of {}", show(&cnk.name));
                    assert!(le_u32(&raw, NK_MAX_NAME) & 0xFFFF >= cnk.name.len() as u32 * 2);
                    let compressible = cnk.name.iter().all(|&u| u <= 0xFF);
                    assert_eq!(cnk.flags & KEY_COMP_NAME != 0, compressible, "name flag of {}", show(&cnk.name));
                    stack.push(c);
                }
            }
            for v in ed.value_list(&nk).unwrap() {
                let vk = ed.vk(v).unwrap();
                let d = ed.read_data(&vk).unwrap();
                assert!(le_u32(&raw, NK_MAX_VNAME) >= vk.name.len() as u32 * 2);
                assert!(le_u32(&raw, NK_MAX_VDATA) as usize >= d.len());
            }
        }
        for (&sk, &n) in &sk_users {
            assert_eq!(ed.sk_cell(sk).unwrap().1, n, "reference count of sk {sk:#x}");
        }
        // The sk list is a closed ring through every sk in use.
        let first = *sk_users.keys().next().unwrap();
        let (mut cur, mut ring) = (first, BTreeSet::new());
        loop {
            ring.insert(cur);
            let next = le_u32(ed.sk_cell(cur).unwrap().0, SK_FLINK);
            assert_eq!(le_u32(ed.sk_cell(next).unwrap().0, SK_BLINK), cur);
            cur = next;
            if cur == first {
                break;
            }
            assert!(ring.len() < 100_000);
        }
        assert!(sk_users.keys().all(|k| ring.contains(k)));
        ed
    }

    fn key_of(ed: &HiveEditor, path: &str) -> u32 {
        ed.resolve(&parse_path(path).unwrap()).unwrap().unwrap()
    }

    /// Turn `path`'s single leaf into an index root over leaves of the given
    /// kinds and sizes (real hives use ri for big keys; the fixture has none).
    fn make_ri(ed: &mut HiveEditor, path: &str, parts: &[(LeafKind, usize)]) {
        let key = key_of(ed, path);
        let nk = ed.nk(key).unwrap();
        let subs = ed.subkeys(&nk).unwrap();
        assert!(subs.ri.is_none());
        let items = &subs.leaves[0].items;
        assert_eq!(parts.iter().map(|p| p.1).sum::<usize>(), items.len());
        let mut leaves = vec![];
        let mut at = 0;
        for &(kind, n) in parts {
            let chunk: Vec<(u32, u32)> = items[at..at + n]
                .iter()
                .map(|&(o, _)| {
                    let name = ed.nk(o).unwrap().name;
                    (o, match kind {
                        LeafKind::Lh => lh_hash(&name),
                        LeafKind::Lf => lf_hint(&name),
                        LeafKind::Li => 0,
                    })
                })
                .collect();
            leaves.push(ed.write_leaf(kind, &chunk, None).unwrap());
            at += n;
        }
        let ri = ed.alloc(4 + 4 * leaves.len()).unwrap();
        let mut raw = b"ri".to_vec();
        raw.extend_from_slice(&(leaves.len() as u16).to_le_bytes());
        raw.extend(leaves.iter().flat_map(|o| o.to_le_bytes()));
        ed.wbytes(ri, 0, &raw).unwrap();
        ed.free_cell(subs.leaves[0].off).unwrap();
        ed.w32(key, NK_LIST, ri).unwrap();
    }

    const CV: &str = r"Microsoft\Windows NT\CurrentVersion";
    const SORTING: &str = r"RdpRescueFixture\Sorting";

    /// `finish_written` names every page whose bytes changed (and the base
    /// block's): outside them the result is the input, byte for byte. Edits
    /// that grow the hive, free cells, fail and roll back are all covered.
    #[test]
    fn finish_written_names_every_changed_page() {
        let input = software();
        let mut ed = HiveEditor::new(input.clone(), 42).unwrap();
        ed.set_value(r"Microsoft\Windows NT\CurrentVersion", "Written", 1, &sz(&"x".repeat(3000))).unwrap();
        ed.add_key(r"Written\A\B").unwrap();
        ed.delete_value(r"Microsoft\Windows NT\CurrentVersion", "Written").unwrap();
        // A failed edit (a value too large) is rolled back: its pages may be
        // named, but their bytes are the input's again.
        assert!(ed.set_value("Written", "big", 3, &vec![1; MAX_CELL_DATA + 1]).is_err());
        for i in 0..40 {
            ed.set_value(r"Written\A", &format!("v{i}"), 3, &vec![i as u8; 2000]).unwrap();
        }
        let (out, pages) = ed.finish_written().unwrap();
        assert!(out.len() > input.len(), "the edits grew the hive");
        assert!(pages.windows(2).all(|w| w[0] < w[1]) && pages.first() == Some(&0), "{pages:?}");
        let named: BTreeSet<usize> = pages.iter().copied().collect();
        let mut differing = 0;
        for (p, got) in out.chunks(PAGE).enumerate() {
            let was = input.get(p * PAGE..((p + 1) * PAGE).min(input.len())).unwrap_or(&[]);
            if got != was {
                differing += 1;
                assert!(named.contains(&p), "page {p} changed but is not named");
            }
        }
        assert!(differing > 3, "{differing} pages changed");
        assert!(pages.iter().all(|&p| p * PAGE < out.len()));
    }

    #[test]
    fn fixture_verifies() {
        let s = snap(&software());
        assert!(s.len() > 20);
        verify(&software());
        // Upcase, hash and hint on the checked example of formats.md A.4.
        assert_eq!(lh_hash(&u16s("abcd_äöüß")), 0xcd87_d55e);
        assert_eq!(lf_hint(&u16s("ab")), u32::from_le_bytes(*b"ab\0\0"));
        assert_eq!(lf_hint(&u16s("a日bc")), u32::from_le_bytes([b'a', 0, b'b', b'c']));
    }

    #[test]
    fn set_existing_dword_in_place() {
        let mut ed = editor();
        let before = snap(&software());
        let (cells, free) = (ed.cells.clone(), ed.free.clone());
        // Path and name are case-insensitive.
        let old = ed.set_value(r"microsoft\WINDOWS NT\currentversion", "ubr", 4, &9999u32.to_le_bytes()).unwrap();
        assert_eq!(old, Some((4, 2113u32.to_le_bytes().to_vec())));
        assert_eq!((&ed.cells, &ed.free), (&cells, &free), "an in-place DWORD change allocates nothing");
        let out = finished(&ed);
        let mut want = before;
        want.get_mut(CV).unwrap().insert("UBR".into(), (4, 9999u32.to_le_bytes().to_vec()));
        same(&snap(&out), &want, "want");
        verify(&out);
        // The key's last-write time is now.
        let e2 = HiveEditor::new(out, 0).unwrap();
        let k = key_of(&e2, CV);
        assert_eq!(crate::bytes::le_u64(e2.cell(k).unwrap(), NK_TIME), ed.now);
    }

    #[test]
    fn strings_grow_and_shrink() {
        let mut ed = editor();
        let wl = r"Microsoft\Windows NT\CurrentVersion\Winlogon";
        let before = snap(&software());
        let vk = {
            let nk = ed.nk(key_of(&ed, wl)).unwrap();
            ed.find_value(&ed.value_list(&nk).unwrap(), &upcase(&u16s("SHELL"))).unwrap().unwrap().1
        };
        let old_cell = vk.doff;
        let long = sz(&"explorer.exe,rdprescue.exe ".repeat(10));
        let old = ed.set_value(wl, "Shell", 1, &long).unwrap();
        assert_eq!(old, Some((1, sz("explorer.exe"))));
        let new_cell = ed.vk(vk.off).unwrap().doff;
        assert_ne!(new_cell, old_cell, "longer data moves to a new cell");
        assert!(!ed.is_allocated(old_cell), "the old data cell is freed");
        // A shorter string stays in the (now larger) cell.
        ed.set_value(wl, "Shell", 2, &sz("cmd.exe")).unwrap();
        assert_eq!(ed.vk(vk.off).unwrap().doff, new_cell);
        // Down to 4 bytes: resident in the vk, data cell freed.
        ed.set_value(wl, "Shell", 3, &[1, 2, 3]).unwrap();
        let v = ed.vk(vk.off).unwrap();
        assert_eq!(v.dsize, DATA_INLINE | 3);
        assert!(!ed.is_allocated(new_cell));
        let out = finished(&ed);
        let mut want = before;
        want.get_mut(wl).unwrap().insert("Shell".into(), (3, vec![1, 2, 3]));
        same(&snap(&out), &want, "want");
        verify(&out);
    }

    #[test]
    fn add_values_and_sorted_keys() {
        let mut ed = editor();
        let mut want = snap(&software());
        // A value on an existing key; an empty default value; a UTF-16 name.
        assert_eq!(ed.set_value(CV, "RdpRescueAdded", 4, &7u32.to_le_bytes()).unwrap(), None);
        assert_eq!(ed.set_value(CV, "", 1, &sz("dflt")).unwrap(), None);
        assert_eq!(ed.set_value(CV, "Wert-Ω", 3, &[9; 100]).unwrap(), None);
        let cv = want.get_mut(CV).unwrap();
        cv.insert("RdpRescueAdded".into(), (4, 7u32.to_le_bytes().to_vec()));
        cv.insert(String::new(), (1, sz("dflt")));
        cv.insert("Wert-Ω".into(), (3, vec![9; 100]));
        // Keys landing before, between and after the fixture's odd names.
        let names = ["00", "a0", "Aa_", "AB0", "a_a", "b", "Y", "zZz", "_0", "`", "ä1", "Äa", "ÅZ", "Ω", "日本", "~"];
        for (i, n) in names.iter().enumerate() {
            let path = format!(r"{SORTING}\{n}");
            let old = ed.set_value(&path, "n", 4, &(100 + i as u32).to_le_bytes()).unwrap();
            // "b" exists (with n = 0): its value is replaced, not duplicated.
            assert_eq!(old.is_some(), *n == "b", "{n}");
            expect(&mut want, &path, "n", (4, (100 + i as u32).to_le_bytes().to_vec()));
        }
        // Three levels deep under a key without subkeys (creates lh lists).
        ed.set_value(r"RdpRescueFixture\Types\New1\New2\New3", "deep", 1, &sz("x")).unwrap();
        want.entry(r"RdpRescueFixture\Types\New1".into()).or_default();
        want.entry(r"RdpRescueFixture\Types\New1\New2".into()).or_default();
        want.entry(r"RdpRescueFixture\Types\New1\New2\New3".into()).or_default().insert("deep".into(), (1, sz("x")));
        let out = finished(&ed);
        same(&snap(&out), &want, "want");
        let e2 = verify(&out);
        let types = e2.nk(key_of(&e2, r"RdpRescueFixture\Types")).unwrap();
        assert_eq!(e2.leaf(types.list).unwrap().kind, LeafKind::Lh);
    }

    #[test]
    fn index_root_insert_and_delete() {
        let mut ed = editor();
        let want0 = snap(&finished(&ed));
        make_ri(&mut ed, SORTING, &[(LeafKind::Lh, 4), (LeafKind::Li, 4), (LeafKind::Lf, 3)]);
        // nt-hive reads the ri the same (its binary search goes through it).
        let mut want = want0.clone();
        same(&snap(&finished(&ed)), &want, "want");
        verify(&finished(&ed));
        // Before everything (leaf 0), inside leaf 1 and 2, after everything.
        // Leaves: [0 A AA AB] [A_ B Z ZZ] [_ Ä Å]. "!" goes first in leaf 0; "AB1"
        // and "A_1" into leaf 1 (the first whose last name is greater); "Zz"
        // exists; "ÄÄ" into leaf 2; "ÿ" (upper Ÿ, U+0178) and "Ω" after everything.
        for n in ["!", "AB1", "A_1", "Zz", "ÄÄ", "ÿ", "Ω"] {
            let path = format!(r"{SORTING}\{n}");
            ed.set_value(&path, "v", 4, &[1, 0, 0, 0]).unwrap();
            expect(&mut want, &path, "v", (4, vec![1, 0, 0, 0]));
            same(&snap(&finished(&ed)), &want, &format!("after adding {n}"));
        }
        let key = key_of(&ed, SORTING);
        let subs = ed.subkeys(&ed.nk(key).unwrap()).unwrap();
        assert!(subs.ri.is_some());
        assert_eq!(subs.leaves.iter().map(|l| l.items.len()).collect::<Vec<_>>(), vec![5, 6, 6]);
        // Empty the middle leaf: it is dropped from the ri.
        let middle: Vec<String> = subs.leaves[1]
            .items
            .iter()
            .map(|&(o, _)| show(&ed.nk(o).unwrap().name))
            .collect();
        for n in &middle {
            assert!(ed.delete_key(&format!(r"{SORTING}\{n}")).unwrap());
            want.retain(|k, _| !k.starts_with(&format!(r"{SORTING}\{n}")));
        }
        let subs = ed.subkeys(&ed.nk(key).unwrap()).unwrap();
        assert_eq!(subs.leaves.len(), 2);
        same(&snap(&finished(&ed)), &want, "want");
        verify(&finished(&ed));
        // Empty everything: ri and leaves freed, list offset none.
        let all: Vec<String> = want.keys().filter_map(|k| k.strip_prefix(&format!(r"{SORTING}\"))).map(String::from).collect();
        for n in all {
            assert!(ed.delete_key(&format!(r"{SORTING}\{n}")).unwrap(), "{n}");
        }
        let nk = ed.nk(key).unwrap();
        assert_eq!((nk.nsub, nk.list), (0, NONE));
        verify(&finished(&ed));
    }

    #[test]
    fn lf_lists_on_minor_4() {
        let mut b = software();
        b[OFF_MINOR] = 4;
        let sum = base_block_checksum(&b);
        b[OFF_CHECKSUM..OFF_CHECKSUM + 4].copy_from_slice(&sum.to_le_bytes());
        let mut ed = HiveEditor::new(b, 42).unwrap();
        let mut want = snap(&finished(&ed));
        make_ri(&mut ed, SORTING, &[(LeafKind::Lf, 11)]);
        for n in ["A0", "a", "q", "Ωmega"] {
            let path = format!(r"{SORTING}\{n}");
            ed.set_value(&path, "v", 4, &[2, 0, 0, 0]).unwrap();
            expect(&mut want, &path, "v", (4, vec![2, 0, 0, 0]));
        }
        // A new list on minor 4 is an lf.
        ed.set_value(r"RdpRescueFixture\Types\Sub", "v", 4, &[3, 0, 0, 0]).unwrap();
        want.entry(r"RdpRescueFixture\Types\Sub".into()).or_default().insert("v".into(), (4, vec![3, 0, 0, 0]));
        let out = finished(&ed);
        same(&snap(&out), &want, "want");
        let e2 = verify(&out);
        let types = e2.nk(key_of(&e2, r"RdpRescueFixture\Types")).unwrap();
        assert_eq!(e2.leaf(types.list).unwrap().kind, LeafKind::Lf);
    }

    #[test]
    fn delete_values_and_keys() {
        let mut ed = editor();
        let mut want = snap(&software());
        let wl = r"Microsoft\Windows NT\CurrentVersion\Winlogon";
        assert!(ed.delete_value(wl, "shell").unwrap());
        want.get_mut(wl).unwrap().remove("Shell");
        assert!(!ed.delete_value(wl, "shell").unwrap());
        assert!(!ed.delete_value(r"No\Such\Key", "x").unwrap());
        // Delete every value of a key: the list cell goes away.
        let s18 = r"Microsoft\Windows NT\CurrentVersion\ProfileList\S-1-5-18";
        for v in ["ProfileImagePath", "Flags", "State"] {
            assert!(ed.delete_value(s18, v).unwrap());
        }
        want.get_mut(s18).unwrap().clear();
        let nk = ed.nk(key_of(&ed, s18)).unwrap();
        assert_eq!((nk.nval, nk.vlist), (0, NONE));
        // A subtree with UTF-16 names, a class name and a big-data value.
        let free_before: u32 = ed.free.values().sum();
        let sk = ed.nk(ed.root).unwrap().sk;
        let refs_before = ed.sk_cell(sk).unwrap().1;
        assert!(ed.delete_key("rdprescuefixture").unwrap());
        let gone = want.keys().filter(|k| k.starts_with("RdpRescueFixture")).count() as u32;
        want.retain(|k, _| !k.starts_with("RdpRescueFixture"));
        assert_eq!(ed.sk_cell(sk).unwrap().1, refs_before - gone);
        assert!(ed.free.values().sum::<u32>() > free_before + 40_000);
        assert!(!ed.delete_key("RdpRescueFixture").unwrap());
        assert!(matches!(ed.delete_key(""), Err(Error::Usage(_))));
        assert!(matches!(ed.delete_key(r"\\"), Err(Error::Usage(_))));
        let out = finished(&ed);
        same(&snap(&out), &want, "want");
        verify(&out);
        // Freed space is reused: adding it all back does not grow the hive.
        let mut ed = HiveEditor::new(out, 0).unwrap();
        let len = ed.hbins_end;
        ed.set_value(r"Reuse\Me", "x", 3, &[5; 16000]).unwrap();
        assert_eq!(ed.hbins_end, len);
    }

    #[test]
    fn sk_freed_when_last_user_goes() {
        let mut ed = editor();
        // Give a new key its own sk (a copy of the root's), linked into the list.
        ed.set_value(r"Own\Child", "v", 4, &[1, 0, 0, 0]).unwrap();
        let own = key_of(&ed, "Own");
        let child = key_of(&ed, r"Own\Child");
        let root_sk = ed.nk(ed.root).unwrap().sk;
        let sk_bytes = ed.cell(root_sk).unwrap().to_vec();
        let new_sk = ed.alloc(sk_bytes.len()).unwrap();
        ed.wbytes(new_sk, 0, &sk_bytes).unwrap();
        let next = le_u32(&sk_bytes, SK_FLINK);
        ed.w32(new_sk, SK_FLINK, next).unwrap();
        ed.w32(new_sk, SK_BLINK, root_sk).unwrap();
        ed.w32(root_sk, SK_FLINK, new_sk).unwrap();
        ed.w32(next, SK_BLINK, new_sk).unwrap();
        ed.w32(new_sk, SK_REFS, 2).unwrap();
        ed.w32(own, NK_SK, new_sk).unwrap();
        ed.w32(child, NK_SK, new_sk).unwrap();
        let refs = ed.sk_cell(root_sk).unwrap().1;
        ed.w32(root_sk, SK_REFS, refs - 2).unwrap();
        verify(&finished(&ed));
        // A grandchild shares it (3 users), then the subtree goes.
        ed.set_value(r"Own\Child\Grand", "v", 4, &[1, 0, 0, 0]).unwrap();
        assert_eq!(ed.sk_cell(new_sk).unwrap().1, 3);
        assert!(ed.delete_key("own").unwrap());
        assert!(!ed.is_allocated(new_sk));
        let e2 = verify(&finished(&ed));
        assert_eq!(le_u32(e2.sk_cell(root_sk).unwrap().0, SK_FLINK), root_sk, "ring back to one sk");
    }

    #[test]
    fn big_data_read_and_replaced() {
        let mut ed = editor();
        let types = r"RdpRescueFixture\Types";
        let before = snap(&software());
        let big = before[types]["big-40000"].clone();
        assert_eq!(big.1.len(), 40000);
        let vk = {
            let nk = ed.nk(key_of(&ed, types)).unwrap();
            ed.find_value(&ed.value_list(&nk).unwrap(), &upcase(&u16s("big-40000"))).unwrap().unwrap().1
        };
        let Storage::Big { db, list, segs } = ed.storage(&vk).unwrap() else { panic!("fixture value is not big data") };
        assert_eq!(segs.len(), 3);
        // Too big to write: refused, nothing changed.
        let bytes = ed.bytes().to_vec();
        let e = ed.set_value(types, "big-40000", 3, &vec![1; 16345]).unwrap_err();
        assert!(matches!(e, Error::Usage(_)), "{e}");
        assert_eq!(ed.bytes(), &bytes[..]);
        // Replaced by small data: old data returned, db cells freed.
        let old = ed.set_value(types, "BIG-40000", 3, &[7; 16344]).unwrap();
        assert_eq!(old, Some(big));
        for c in segs.into_iter().chain([db, list]) {
            assert!(!ed.is_allocated(c), "{c:#x} still allocated");
        }
        let mut want = before;
        want.get_mut(types).unwrap().insert("big-40000".into(), (3, vec![7; 16344]));
        let out = finished(&ed);
        same(&snap(&out), &want, "want");
        verify(&out);
    }

    #[test]
    fn growth_appends_tiled_hbins() {
        let mut ed = editor();
        let mut want = snap(&software());
        let end0 = ed.hbins_end;
        for i in 0..30u32 {
            let data: Vec<u8> = (0..16000 + i).map(|j| (j * 7 + i) as u8).collect();
            ed.set_value(r"Grow\Here", &format!("v{i}"), 3, &data).unwrap();
            want.entry(r"Grow\Here".into()).or_default().insert(format!("v{i}"), (3, data));
        }
        want.entry("Grow".into()).or_default();
        assert!(ed.hbins_end >= end0 + 30 * 16000);
        let out = finished(&ed);
        assert_eq!(le_u32(&out, OFF_HBINS), ed.hbins_end);
        assert_eq!(out.len(), BASE + ed.hbins_end as usize);
        same(&snap(&out), &want, "want");
        verify(&out);
        // Slack after the last hbin is reused, not kept in front of new bins.
        let mut b = software();
        b.extend_from_slice(&[0xAA; 8192]);
        let mut ed = HiveEditor::new(b, 0).unwrap();
        ed.set_value("Slack", "x", 3, &[1; 16000]).unwrap();
        let out = ed.finish().unwrap();
        assert_eq!(out.len(), BASE + le_u32(&out, OFF_HBINS) as usize);
        verify(&out);
    }

    #[test]
    fn finish_marks_clean_above_every_sequence() {
        // Wrap-aware: 42 comes after 0xFFFFFFFF, 0x80000010 after 42.
        for (seen, want) in [(100u32, 101u32), (7, 43), (42, 43), (u32::MAX, 43), (0x8000_0010, 0x8000_0011)] {
            let ed = HiveEditor::new(software(), seen).unwrap();
            let out = ed.finish().unwrap();
            assert_eq!((le_u32(&out, OFF_SEQ1), le_u32(&out, OFF_SEQ2)), (want, want), "seen {seen}");
            assert_eq!(le_u32(&out, OFF_CHECKSUM), base_block_checksum(&out));
            assert_eq!(le_u32(&out, OFF_FILE_TYPE), 0);
            let ts = crate::bytes::le_u64(&out, OFF_TIMESTAMP);
            assert!(ts > (1_704_067_200 + 11_644_473_600) * 10_000_000, "timestamp is fresh");
            assert_eq!(crate::bytes::le_u64(&out, BASE + 20), ts);
            let r = crate::hive::load(out, None, None).unwrap().report;
            assert_eq!(r.state, HiveState::Clean);
            assert!(r.primary_checksum_ok);
        }
    }

    #[test]
    fn refuses_dirty_and_bad_input() {
        let mut b = software();
        b[OFF_SEQ1] = 43;
        assert!(HiveEditor::new(b.clone(), 0).is_err(), "bad checksum");
        let sum = base_block_checksum(&b);
        b[OFF_CHECKSUM..OFF_CHECKSUM + 4].copy_from_slice(&sum.to_le_bytes());
        assert!(HiveEditor::new(b, 0).is_err(), "seq1 != seq2");
        assert!(HiveEditor::new(vec![0; 100], 0).is_err());
        let mut ed = editor();
        assert!(matches!(ed.set_value(&"a\\".repeat(600), "x", 4, &[0; 4]), Err(Error::Usage(_))));
        assert!(matches!(ed.set_value("k", &"n".repeat(16384), 4, &[0; 4]), Err(Error::Usage(_))));
    }

    #[test]
    fn refuses_links_and_current_control_set() {
        let mut ed = editor();
        let e = ed.set_value(r"currentcontrolset\Control", "x", 4, &[0; 4]).unwrap_err();
        assert!(matches!(e, Error::Usage(_)), "{e}");
        // Deeper down the name is an ordinary key name.
        ed.set_value(r"Classes\CurrentControlSet", "x", 4, &[0; 4]).unwrap();
        let k = key_of(&ed, r"RdpRescueFixture\WithClass");
        let flags = ed.nk(k).unwrap().flags | KEY_SYM_LINK;
        ed.wbytes(k, NK_FLAGS, &flags.to_le_bytes()).unwrap();
        let e = ed.set_value(r"RdpRescueFixture\WithClass\Sub", "x", 4, &[0; 4]).unwrap_err();
        assert!(matches!(e, Error::Usage(_)), "{e}");
        // Values of the link key itself can be set.
        ed.set_value(r"RdpRescueFixture\WithClass", "x", 4, &[2, 0, 0, 0]).unwrap();
    }

    #[test]
    fn failed_edit_rolls_back() {
        let mut ed = editor();
        let bytes = ed.bytes().to_vec();
        // "New" would be created before the 300-character name is refused.
        let long = "x".repeat(300);
        let e = ed.set_value(&format!(r"New\{long}"), "v", 4, &[0; 4]).unwrap_err();
        assert!(matches!(e, Error::Usage(_)), "{e}");
        assert_eq!(ed.bytes(), &bytes[..]);
        assert_eq!(ed.resolve(&parse_path("New").unwrap()).unwrap(), None);
    }

    /// `b` with its base-block checksum recomputed.
    fn resum(mut b: Vec<u8>) -> Vec<u8> {
        let sum = base_block_checksum(&b);
        b[OFF_CHECKSUM..OFF_CHECKSUM + 4].copy_from_slice(&sum.to_le_bytes());
        b
    }

    /// The `Corrupt` offset of a refused open.
    #[track_caller]
    fn refused_at(b: Vec<u8>) -> (u64, String) {
        match HiveEditor::new(b, 0) {
            Err(Error::Corrupt { layer: Layer::Hive, offset, msg }) => (offset, msg),
            Err(e) => panic!("refused, but not as a corrupt hive: {e}"),
            Ok(_) => panic!("the editor opened a damaged hive"),
        }
    }

    /// Issue 10 item 8 (a): the editor checks the base block exactly as
    /// `load` does (it used to skip the file format field and the root offset
    /// checks), through the same function.
    #[test]
    fn base_block_checked_like_load() {
        for (field, v) in [(32usize, 2u32), (OFF_ROOT, 0xFFFF_FFFF), (OFF_ROOT, 0x10), (OFF_HBINS, 0x1001), (OFF_MINOR, 7)] {
            let mut b = software();
            b[field..field + 4].copy_from_slice(&v.to_le_bytes());
            let b = resum(b);
            let by_load = crate::hive::load(b.clone(), None, None).map(|_| ()).unwrap_err();
            let by_editor = HiveEditor::new(b, 0).map(|_| ()).unwrap_err();
            assert_eq!(by_editor.to_string(), by_load.to_string(), "field {field} = {v:#x}");
        }
    }

    /// All cells in file order: (offset, size field).
    fn all_cells(ed: &HiveEditor) -> Vec<(u32, i32)> {
        ed.cells.iter().map(|c| (c, le_u32(&ed.b, BASE + c as usize) as i32)).collect()
    }

    /// Issue 10 item 8 (b): a damaged size field makes a free cell swallow the
    /// live record after it. The editor used to accept this and then allocate
    /// over the record; now the swallowed record is no cell start, and the
    /// reference to it is refused at open, naming it.
    #[test]
    fn free_cell_swallowing_a_record_is_refused() {
        // Free cells among live ones: delete a few values.
        let mut ed = editor();
        for v in ["Shell", "Userinit"] {
            assert!(ed.delete_value(r"Microsoft\Windows NT\CurrentVersion\Winlogon", v).unwrap());
        }
        let base = finished(&ed);
        let ed = HiveEditor::new(base.clone(), 0).unwrap();
        let software = || base.clone();
        let cells = all_cells(&ed);
        let (f, fsize, live, lsize) = cells
            .windows(2)
            .find_map(|w| (w[0].1 > 0 && w[1].1 < 0 && w[0].0 + w[0].1 as u32 == w[1].0).then_some((w[0].0, w[0].1, w[1].0, -w[1].1)))
            .expect("fixture has a free cell before an allocated one");
        let mut b = software();
        let p = BASE + f as usize;
        b[p..p + 4].copy_from_slice(&(fsize + lsize).to_le_bytes());
        let (off, msg) = refused_at(b.clone());
        assert_eq!(off, (BASE + live as usize) as u64, "{msg}");
        assert!(msg.contains("not the start of a cell"), "{msg}");
        // The same with an allocated cell grown over its neighbour.
        let (a, asize, next) = cells.windows(2).find_map(|w| (w[0].1 < 0 && w[1].1 < 0 && w[0].0 + w[0].1.unsigned_abs() == w[1].0).then_some((w[0].0, w[0].1, w[1]))).unwrap();
        let mut b = software();
        let p = BASE + a as usize;
        b[p..p + 4].copy_from_slice(&(asize + next.1).to_le_bytes());
        let (off, msg) = refused_at(b);
        assert_eq!(off, (BASE + next.0 as usize) as u64, "{msg}");
    }

    /// Issue 10 item 8 (c): a value list shared by two keys was freed by an
    /// edit of one while the other still used it. Refused at open now.
    #[test]
    fn value_list_shared_by_two_keys_is_refused() {
        let ed = editor();
        let wl = key_of(&ed, r"Microsoft\Windows NT\CurrentVersion\Winlogon");
        let cv = key_of(&ed, CV);
        let (list, n) = {
            let nk = ed.nk(wl).unwrap();
            (nk.vlist, nk.nval)
        };
        let mut b = software();
        let at = BASE + cv as usize + 4;
        b[at + NK_VLIST..at + NK_VLIST + 4].copy_from_slice(&list.to_le_bytes());
        b[at + NK_NVAL..at + NK_NVAL + 4].copy_from_slice(&n.to_le_bytes());
        let (off, msg) = refused_at(b);
        assert_eq!(off, (BASE + list as usize) as u64, "{msg}");
        assert!(msg.contains("value list") && msg.contains("referenced twice"), "{msg}");
        // Other doubly used cells: a subkey listed twice, a data cell shared
        // by two values.
        let mut b = software();
        let nk = ed.nk(key_of(&ed, SORTING)).unwrap();
        let leaf = ed.leaf(nk.list).unwrap();
        let lp = BASE + leaf.off as usize + 4;
        let first = leaf.items[0].0;
        b[lp + 12..lp + 16].copy_from_slice(&first.to_le_bytes());
        let (off, msg) = refused_at(b);
        assert_eq!(off, (BASE + first as usize) as u64, "{msg}");
        let vals: Vec<Vk> = ed.value_list(&ed.nk(wl).unwrap()).unwrap().into_iter().map(|v| ed.vk(v).unwrap()).collect();
        let cells: Vec<&Vk> = vals.iter().filter(|v| v.dsize & DATA_INLINE == 0 && v.dsize > 0).collect();
        assert!(cells.len() >= 2);
        let mut b = software();
        let vp = BASE + cells[1].off as usize + 4;
        b[vp + VK_DOFF..vp + VK_DOFF + 4].copy_from_slice(&cells[0].doff.to_le_bytes());
        b[vp + VK_DSIZE..vp + VK_DSIZE + 4].copy_from_slice(&1u32.to_le_bytes());
        let (off, msg) = refused_at(b);
        assert_eq!(off, (BASE + cells[0].doff as usize) as u64, "{msg}");
    }

    #[test]
    fn random_damage_never_panics() {
        let base = software();
        let mut seed = 0x2545_F491_4F6C_DD1Du64;
        let mut rnd = move || {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed
        };
        let paths = [
            CV,
            r"Microsoft\Windows NT\CurrentVersion\Winlogon",
            r"Microsoft\Windows NT\CurrentVersion\ProfileList",
            SORTING,
            r"RdpRescueFixture\Types",
            r"RdpRescueFixture\WithClass",
            "RdpRescueFixture",
            "Microsoft",
            r"Sorting\New\Key",
        ];
        let names = ["UBR", "Shell", "big-40000", "", "sz", "n", "new", "x"];
        let (mut opened, mut ok_edits) = (0, 0);
        for round in 0..2000 {
            let mut b = base.clone();
            for _ in 0..1 + rnd() % 24 {
                let pos = if round % 10 == 0 { rnd() as usize % 512 } else { BASE + rnd() as usize % (b.len() - BASE) };
                b[pos] = if rnd() % 2 == 0 { b[pos] ^ (1 << (rnd() % 8)) } else { rnd() as u8 };
            }
            let sum = base_block_checksum(&b);
            b[OFF_CHECKSUM..OFF_CHECKSUM + 4].copy_from_slice(&sum.to_le_bytes());
            let Ok(mut ed) = HiveEditor::new(b, 42) else { continue };
            opened += 1;
            for _ in 0..12 {
                let path = paths[rnd() as usize % paths.len()];
                let sub = format!(r"{path}\{}", ["k1", "a", "Zz", "Ω"][rnd() as usize % 4]);
                let name = names[rnd() as usize % names.len()];
                let len = [0usize, 3, 4, 5, 200, 5000, 16344][rnd() as usize % 7];
                let r = match rnd() % 5 {
                    0 => ed.set_value(path, name, 3, &vec![0x5A; len]).map(|_| ()),
                    1 => ed.set_value(&sub, name, 1, &vec![0x41; len]).map(|_| ()),
                    2 => ed.delete_value(path, name).map(|_| ()),
                    3 => ed.delete_key(&sub).map(|_| ()),
                    _ => ed.delete_key(path).map(|_| ()),
                };
                ok_edits += r.is_ok() as u32;
            }
            // Whatever happened, the result still tiles and opens.
            let out = ed.finish().unwrap();
            HiveEditor::new(out, 0).expect("edited hive keeps its hbin/cell structure");
        }
        eprintln!("{opened} damaged hives opened, {ok_edits} edits succeeded");
        assert!(opened > 1000 && ok_edits > 5000, "fuzz did not exercise the editor ({opened}, {ok_edits})");
    }
}
