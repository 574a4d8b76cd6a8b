//! Cells and the allocator: the cell-start bitmap, reading and writing cell
//! data with bounds checks, first-fit allocation, freeing with coalescing,
//! new hbins, and the per-edit page journal that makes each edit a transaction.

use super::*;

/// The set of cell offsets: one bit per 8-byte unit of the hive bins (cells
/// are 8-aligned). Membership tests are the hot path of every edit and the
/// set holds every cell of the hive (hundreds of thousands in a SYSTEM hive),
/// so a bitmap beats a tree: 200 KB for a 12.8 MB hive, built in one pass.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub(super) struct CellSet {
    pub(super) bits: Vec<u64>,
}

impl CellSet {
    pub(super) fn with_capacity(hbins: u32) -> Self {
        CellSet { bits: vec![0; (hbins as usize / 8).div_ceil(64)] }
    }
    #[inline]
    pub(super) fn slot(off: u32) -> (usize, u64) {
        let unit = (off / 8) as usize;
        (unit / 64, 1u64 << (unit % 64))
    }
    #[inline]
    pub(super) fn contains(&self, off: &u32) -> bool {
        let (w, m) = Self::slot(*off);
        off % 8 == 0 && self.bits.get(w).is_some_and(|b| b & m != 0)
    }
    #[inline]
    pub(super) fn insert(&mut self, off: u32) -> bool {
        let (w, m) = Self::slot(off);
        match self.bits.get_mut(w) {
            Some(b) => {
                let had = *b & m != 0;
                *b |= m;
                !had
            }
            None => self.grow_insert(off),
        }
    }
    /// [`insert`](Self::insert) past the end (a new hbin): the rare case.
    #[cold]
    #[inline(never)]
    fn grow_insert(&mut self, off: u32) -> bool {
        let (w, m) = Self::slot(off);
        self.bits.resize(w + 1, 0);
        self.bits[w] |= m;
        true
    }
    pub(super) fn remove(&mut self, off: &u32) -> bool {
        let (w, m) = Self::slot(*off);
        match self.bits.get_mut(w) {
            Some(b) if *b & m != 0 => {
                *b &= !m;
                true
            }
            _ => false,
        }
    }
    /// Offsets in increasing order.
    pub(super) fn iter(&self) -> impl Iterator<Item = u32> + '_ {
        self.bits.iter().enumerate().flat_map(|(w, &b)| {
            let mut b = b;
            std::iter::from_fn(move || {
                if b == 0 {
                    return None;
                }
                let i = b.trailing_zeros();
                b &= b - 1;
                Some(((w * 64 + i as usize) * 8) as u32)
            })
        })
    }
}

/// The errors of [`HiveEditor::cell_range`], out of line: the lookups are
/// the hot path of every walk of the hive, their errors are not.
#[cold]
#[inline(never)]
fn not_a_cell(off: u32, free: bool) -> Error {
    if free {
        bad_cell(off, format!("cell {off:#x} is free but still referenced"))
    } else {
        bad_cell(off, format!("offset {off:#x} does not point at a cell"))
    }
}

#[cold]
#[inline(never)]
fn past_end(off: u32) -> Error {
    bad_cell(off, "cell runs past the end of the file")
}

#[derive(Clone, Default)]
pub(super) struct Journal {
    /// Page index → its bytes before the edit (pages inside the original length only).
    pub(super) pages: std::collections::HashMap<usize, Vec<u8>>,
    /// Length of the hive before the edit (growth past it is truncated away).
    pub(super) len: usize,
}

pub(super) const PAGE: usize = 4096;

impl HiveEditor {
    /// Run `f`; on error put everything back as it was.
    pub(super) fn transact<T>(&mut self, f: impl FnOnce(&mut Self) -> Result<T>) -> Result<T> {
        let (root, hbins_end, cells, free) = (self.root, self.hbins_end, self.cells.clone(), self.free.clone());
        self.journal = Some(Journal { pages: Default::default(), len: self.b.len() });
        let r = f(self);
        let j = self.journal.take().unwrap_or_default();
        if r.is_err() {
            self.b.truncate(j.len);
            for (p, old) in j.pages {
                self.b[p * PAGE..p * PAGE + old.len()].copy_from_slice(&old);
            }
            (self.root, self.hbins_end, self.cells, self.free) = (root, hbins_end, cells, free);
        }
        r
    }

    /// Save the original bytes of the pages `range` touches (inside a
    /// transaction), and note them as written. Every write of the editor
    /// calls it first.
    pub(super) fn journal(&mut self, range: std::ops::Range<usize>) {
        if range.is_empty() {
            return;
        }
        let last = (range.end - 1) / PAGE;
        if self.written.len() <= last / 64 {
            self.written.resize(last / 64 + 1, 0);
        }
        let (b, written, mut journal) = (&self.b, &mut self.written, self.journal.as_mut());
        for p in range.start / PAGE..=last {
            written[p / 64] |= 1 << (p % 64);
            // The page as it was before this edit, kept once for rollback
            // (pages past the hive as it was when the journal began have no
            // earlier bytes).
            let start = p * PAGE;
            if let Some(j) = journal.as_mut().filter(|j| start < j.len) {
                j.pages.entry(p).or_insert_with(|| b[start..(start + PAGE).min(j.len)].to_vec());
            }
        }
    }

    #[cfg(test)]
    pub(super) fn is_allocated(&self, off: u32) -> bool {
        self.cells.contains(&off) && (le_u32(&self.b, BASE + off as usize) as i32) < 0
    }

    /// File range of the data of the allocated cell starting at `off`.
    #[inline]
    pub(super) fn cell_range(&self, off: u32) -> Result<Range<usize>> {
        if !self.cells.contains(&off) {
            return Err(not_a_cell(off, false));
        }
        let p = BASE + off as usize;
        let raw = le_u32(&self.b, p) as i32;
        if raw >= 0 {
            return Err(not_a_cell(off, true));
        }
        Ok(p + 4..p + raw.unsigned_abs() as usize)
    }

    #[inline]
    pub(super) fn cell(&self, off: u32) -> Result<&[u8]> {
        let r = self.cell_range(off)?;
        match self.b.get(r) {
            Some(c) => Ok(c),
            None => Err(past_end(off)),
        }
    }

    pub(super) fn put(&mut self, pos: usize, d: &[u8]) {
        self.journal(pos..pos + d.len());
        match self.b.get_mut(pos..pos + d.len()) {
            Some(s) => s.copy_from_slice(d),
            None => debug_assert!(false, "write at {pos:#x} outside the hive"),
        }
    }

    pub(super) fn set_size(&mut self, off: u32, size: i32) {
        self.put(BASE + off as usize, &size.to_le_bytes());
    }

    /// Write `d` at `at` in the data of allocated cell `cell`.
    pub(super) fn wbytes(&mut self, cell: u32, at: usize, d: &[u8]) -> Result<()> {
        let r = self.cell_range(cell)?;
        let start = r.start + at;
        if start + d.len() > r.end {
            return Err(bad_cell(cell, format!("field at +{at:#x} runs past the end of cell {cell:#x}")));
        }
        self.put(start, d);
        Ok(())
    }

    pub(super) fn w32(&mut self, cell: u32, at: usize, v: u32) -> Result<()> {
        self.wbytes(cell, at, &v.to_le_bytes())
    }

    /// A zeroed cell with room for `payload` bytes: first fit among the free
    /// cells, else a new hbin.
    pub(super) fn alloc(&mut self, payload: usize) -> Result<u32> {
        if payload > MAX_ALLOC {
            return Err(Error::unsupported(Layer::Hive, 0, format!("a {payload}-byte cell is larger than the editor allocates")));
        }
        let need = round8(payload + 4).max(8) as u32;
        let fit = self.free.iter().find(|(_, &s)| s >= need).map(|(&o, &s)| (o, s));
        let off = match fit {
            Some((o, s)) => {
                self.free.remove(&o);
                if s - need >= 16 {
                    self.set_size(o, -(need as i32));
                    self.set_size(o + need, (s - need) as i32);
                    self.cells.insert(o + need);
                    self.free.insert(o + need, s - need);
                } else {
                    self.set_size(o, -(s as i32));
                }
                o
            }
            None => self.append_hbin(need)?,
        };
        let r = self.cell_range(off)?;
        self.journal(r.clone());
        self.b.get_mut(r).into_iter().for_each(|s| s.fill(0));
        Ok(off)
    }

    /// Append an hbin holding an allocated cell of `need` bytes (returned) and
    /// a free cell for the rest.
    pub(super) fn append_hbin(&mut self, need: u32) -> Result<u32> {
        let start = self.hbins_end;
        let size = (HBIN_HEADER + need).div_ceil(HBIN_ALIGN) * HBIN_ALIGN;
        let end = start.checked_add(size).filter(|&e| e <= MAX_HBINS_SIZE).ok_or_else(|| {
            Error::unsupported(Layer::Hive, OFF_HBINS as u64, "growing the hive would exceed the 2 GiB hive-bins limit")
        })?;
        let (fs, fe) = (BASE + start as usize, BASE + end as usize);
        if self.b.len() < fe {
            self.b.resize(fe, 0);
        }
        // Slack past the old last hbin may hold anything: clear it.
        self.journal(fs..fe);
        self.b[fs..fe].fill(0);
        self.put(fs, hbin::SIGNATURE);
        self.put(fs + hbin::OFFSET, &start.to_le_bytes());
        self.put(fs + hbin::SIZE, &size.to_le_bytes());
        let cell = start + HBIN_HEADER;
        self.set_size(cell, -(need as i32));
        self.cells.insert(cell);
        let rest = size - HBIN_HEADER - need;
        if rest > 0 {
            self.set_size(cell + need, rest as i32);
            self.cells.insert(cell + need);
            self.free.insert(cell + need, rest);
        }
        self.hbins_end = end;
        self.put(OFF_HBINS, &end.to_le_bytes());
        Ok(cell)
    }

    /// Mark allocated cell `off` free, merged with free neighbours. Cells that
    /// touch are always in the same hbin (the hbin header separates bins).
    pub(super) fn free_cell(&mut self, off: u32) -> Result<()> {
        let r = self.cell_range(off)?;
        let mut start = off;
        let mut size = (r.end - r.start + 4) as u32;
        if let Some(next_size) = self.free.remove(&(off + size)) {
            self.cells.remove(&(off + size));
            size += next_size;
        }
        if let Some((&p, &ps)) = self.free.range(..off).next_back() {
            if p + ps == off {
                self.cells.remove(&off);
                start = p;
                size += ps;
            }
        }
        self.set_size(start, size as i32);
        self.free.insert(start, size);
        Ok(())
    }
}
