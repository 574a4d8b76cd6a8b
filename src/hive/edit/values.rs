//! Values: key values (vk), value lists, data cells (resident, one cell,
//! or read-only big data) and their replacement.

use super::*;

/// A parsed key value.
pub(super) struct Vk {
    pub(super) off: u32,
    pub(super) name: Vec<u16>,
    pub(super) dsize: u32,
    pub(super) doff: u32,
    pub(super) ty: u32,
}

/// Where a value's data lives.
pub(super) enum Storage {
    /// In the vk's data-offset field (≤ 4 bytes).
    Inline,
    /// Zero-length data without a cell.
    Empty,
    Cell(u32),
    /// db record, segment list, segments.
    Big { db: u32, list: u32, segs: Vec<u32> },
}

impl Storage {
    pub(super) fn cells(&self) -> Vec<u32> {
        match self {
            Storage::Inline | Storage::Empty => vec![],
            Storage::Cell(c) => vec![*c],
            Storage::Big { db, list, segs } => segs.iter().copied().chain([*list, *db]).collect(),
        }
    }
}

impl HiveEditor {
    pub(super) fn set_value_in(&mut self, comps: &[Vec<u16>], vname: &[u16], ty: u32, data: &[u8]) -> Result<Option<(u32, Vec<u8>)>> {
        let key = self.ensure_key(comps)?;
        let nk = self.nk(key)?;
        let list = self.value_list(&nk)?;
        let old = match self.find_value(&list, &upcase(vname))? {
            Some((_, vk)) => Some(self.overwrite_value(&vk, ty, data)?),
            None => {
                let vk = self.new_vk(vname, ty, data)?;
                self.append_value(key, &list, vk)?;
                let units2 = vname.len() as u32 * 2;
                self.raise(key, NK_MAX_VNAME, units2)?;
                None
            }
        };
        self.raise(key, NK_MAX_VDATA, data.len() as u32)?;
        self.touch(key)?;
        Ok(old)
    }

    /// Give existing value `vk` new type and data (the data cell is reused
    /// when it is big enough); returns the old (type, data).
    pub(super) fn overwrite_value(&mut self, vk: &Vk, ty: u32, data: &[u8]) -> Result<(u32, Vec<u8>)> {
        let old = (vk.ty, self.read_data(vk)?);
        let storage = self.storage(vk)?;
        let (dsize, doff) = if data.len() <= 4 {
            for c in storage.cells() {
                self.free_cell(c)?;
            }
            inline(data)
        } else {
            match storage {
                // Fits the existing cell: overwrite in place, zero the rest.
                Storage::Cell(c) if self.cell(c)?.len() >= data.len() => {
                    let mut buf = data.to_vec();
                    buf.resize(self.cell(c)?.len(), 0);
                    self.wbytes(c, 0, &buf)?;
                    (data.len() as u32, c)
                }
                other => {
                    let c = self.alloc_data(data)?;
                    for old in other.cells() {
                        self.free_cell(old)?;
                    }
                    (data.len() as u32, c)
                }
            }
        };
        self.w32(vk.off, VK_DSIZE, dsize)?;
        self.w32(vk.off, VK_DOFF, doff)?;
        self.w32(vk.off, VK_TYPE, ty)?;
        Ok(old)
    }

    /// Allocate and fill a vk (and its data cell), not yet linked to a key.
    pub(super) fn new_vk(&mut self, vname: &[u16], ty: u32, data: &[u8]) -> Result<u32> {
        let (dsize, doff) = if data.len() <= 4 { inline(data) } else { (data.len() as u32, self.alloc_data(data)?) };
        let (raw, compressed) = encode_name(vname);
        let flags = if compressed && !vname.is_empty() { VALUE_COMP_NAME } else { 0 };
        let mut vk = Vec::with_capacity(VK_NAME + raw.len());
        vk.extend_from_slice(VK_SIG);
        vk.extend_from_slice(&(raw.len() as u16).to_le_bytes());
        vk.extend_from_slice(&dsize.to_le_bytes());
        vk.extend_from_slice(&doff.to_le_bytes());
        vk.extend_from_slice(&ty.to_le_bytes());
        vk.extend_from_slice(&flags.to_le_bytes());
        vk.extend_from_slice(&[0, 0]);
        vk.extend_from_slice(&raw);
        let off = self.alloc(vk.len())?;
        self.wbytes(off, 0, &vk)?;
        Ok(off)
    }

    pub(super) fn alloc_data(&mut self, data: &[u8]) -> Result<u32> {
        let c = self.alloc(data.len())?;
        self.wbytes(c, 0, data)?;
        Ok(c)
    }

    /// Add `vk` at the end of the key's value list, growing the list cell if full.
    pub(super) fn append_value(&mut self, key: u32, list: &[u32], vk: u32) -> Result<()> {
        let nk = self.nk(key)?;
        let n = list.len();
        let need = 4 * (n + 1);
        if n > 0 && self.cell(nk.vlist)?.len() >= need {
            self.w32(nk.vlist, 4 * n, vk)?;
        } else {
            let raw: Vec<u8> = list.iter().chain([&vk]).flat_map(|o| o.to_le_bytes()).collect();
            let new = self.alloc(need)?;
            self.wbytes(new, 0, &raw)?;
            if n > 0 {
                self.free_cell(nk.vlist)?;
            }
            self.w32(key, NK_VLIST, new)?;
        }
        self.w32(key, NK_NVAL, n as u32 + 1)
    }

    pub(super) fn vk(&self, off: u32) -> Result<Vk> {
        let c = self.cell(off)?;
        if c.len() < VK_NAME || c.get(0..2) != Some(VK_SIG) {
            return Err(bad_cell(off, format!("cell {off:#x} is not a key value (vk)")));
        }
        let len = le_u16(c, VK_NAME_LEN) as usize;
        let raw = c.get(VK_NAME..VK_NAME + len).ok_or_else(|| bad_cell(off, "value name runs past its cell"))?;
        Ok(Vk {
            off,
            name: decode_name(raw, le_u16(c, VK_FLAGS) & VALUE_COMP_NAME != 0),
            dsize: le_u32(c, VK_DSIZE),
            doff: le_u32(c, VK_DOFF),
            ty: le_u32(c, VK_TYPE),
        })
    }

    pub(super) fn value_list(&self, nk: &Nk) -> Result<Vec<u32>> {
        if nk.nval == 0 {
            return Ok(vec![]);
        }
        let c = self.cell(nk.vlist)?;
        let n = nk.nval as usize;
        if n.checked_mul(4).is_none_or(|need| need > c.len()) {
            return Err(bad_cell(nk.vlist, format!("value list of key {:?} is shorter than its {n} values", show(&nk.name))));
        }
        Ok((0..n).map(|i| le_u32(c, 4 * i)).collect())
    }

    /// (index in the list, vk) of the value whose upper-cased name is `up`.
    pub(super) fn find_value(&self, list: &[u32], up: &[u16]) -> Result<Option<(usize, Vk)>> {
        for (i, &o) in list.iter().enumerate() {
            let vk = self.vk(o)?;
            if upcase(&vk.name) == up {
                return Ok(Some((i, vk)));
            }
        }
        Ok(None)
    }

    pub(super) fn storage(&self, vk: &Vk) -> Result<Storage> {
        let len = (vk.dsize & !DATA_INLINE) as usize;
        if vk.dsize & DATA_INLINE != 0 {
            if len > 4 {
                return Err(bad_cell(vk.off, format!("resident value data of {len} bytes (at most 4 fit)")));
            }
            return Ok(Storage::Inline);
        }
        if len == 0 {
            // No data, so no data cell, whatever the offset field holds (as
            // Windows and nt-hive read it); a cell it may name stays as it is.
            return Ok(Storage::Empty);
        }
        let c = self.cell(vk.doff)?;
        if len > MAX_CELL_DATA && self.minor >= 4 && c.get(0..2) == Some(db::SIGNATURE) && c.len() >= db::LEN {
            let (n, list) = (le_u16(c, db::SEGMENT_COUNT) as usize, le_u32(c, db::SEGMENT_LIST));
            let l = self.cell(list)?;
            if 4 * n > l.len() || n * MAX_CELL_DATA < len {
                return Err(bad_cell(vk.doff, format!("big-data record with {n} segments cannot hold {len} bytes")));
            }
            let segs: Vec<u32> = (0..n).map(|i| le_u32(l, 4 * i)).collect();
            for &s in &segs {
                self.cell(s)?;
            }
            return Ok(Storage::Big { db: vk.doff, list, segs });
        }
        if c.len() < len {
            return Err(bad_cell(vk.doff, format!("data cell of {} bytes is shorter than the value's {len}", c.len())));
        }
        Ok(Storage::Cell(vk.doff))
    }

    pub(super) fn read_data(&self, vk: &Vk) -> Result<Vec<u8>> {
        let len = (vk.dsize & !DATA_INLINE) as usize;
        Ok(match self.storage(vk)? {
            Storage::Inline => vk.doff.to_le_bytes()[..len.min(4)].to_vec(),
            Storage::Empty => vec![],
            Storage::Cell(c) => self.cell(c)?.get(..len).unwrap_or_default().to_vec(),
            Storage::Big { segs, .. } => {
                let mut out = Vec::with_capacity(len);
                for s in segs {
                    let d = self.cell(s)?;
                    let take = (len - out.len()).min(MAX_CELL_DATA);
                    out.extend_from_slice(d.get(..take).ok_or_else(|| bad_cell(s, "big-data segment is too short"))?);
                    if out.len() == len {
                        break;
                    }
                }
                out
            }
        })
    }
}

/// (data size field, data offset field) for ≤ 4 bytes stored in the vk itself.
pub(super) fn inline(data: &[u8]) -> (u32, u32) {
    let mut w = [0u8; 4];
    w[..data.len().min(4)].copy_from_slice(&data[..data.len().min(4)]);
    (data.len() as u32 | DATA_INLINE, u32::from_le_bytes(w))
}
