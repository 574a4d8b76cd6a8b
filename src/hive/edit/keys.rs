//! Keys: key nodes, subkey lists (li/lf/lh leaves under an optional ri),
//! lookups by upper-cased name, creation, deletion of whole subtrees and
//! security-cell reference counts.

use super::*;

/// A parsed key node (only what the editor uses).
pub(super) struct Nk {
    pub(super) off: u32,
    pub(super) flags: u16,
    pub(super) nsub: u32,
    pub(super) list: u32,
    pub(super) nval: u32,
    pub(super) vlist: u32,
    pub(super) sk: u32,
    pub(super) class: u32,
    /// Class name length in bytes (0: no class name, whatever `class` says).
    pub(super) class_len: u16,
    pub(super) name: Vec<u16>,
}

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(super) enum LeafKind {
    Li,
    Lf,
    Lh,
}

/// One subkey leaf: its cell and its (nk offset, hint or hash) entries.
pub(super) struct Leaf {
    pub(super) off: u32,
    pub(super) kind: LeafKind,
    pub(super) items: Vec<(u32, u32)>,
}

/// A key's subkey list: either one leaf, or an index root over leaves.
pub(super) struct Subkeys {
    pub(super) ri: Option<u32>,
    pub(super) leaves: Vec<Leaf>,
}

impl HiveEditor {
    /// Delete subkey `last` of the key at `parent_path` with its subtree (no transaction).
    pub(super) fn delete_key_in(&mut self, parent_path: &[Vec<u16>], last: &[u16]) -> Result<bool> {
        let up = upcase(last);
        let Some(parent) = self.resolve(parent_path)? else { return Ok(false) };
        let pnk = self.nk(parent)?;
        let Some((leaf, item, child)) = self.find_child(&pnk, &up)? else { return Ok(false) };
        // Read and check the whole subtree before changing anything.
        let (cells, sk_uses) = self.collect_subtree(child)?;
        self.remove_subkey(parent, leaf, item)?;
        for c in cells {
            self.free_cell(c)?;
        }
        for (sk, n) in sk_uses {
            self.release_sk(sk, n)?;
        }
        self.touch(parent)?;
        Ok(true)
    }

    /// The key at `comps`, creating missing keys on the way.
    pub(super) fn ensure_key(&mut self, comps: &[Vec<u16>]) -> Result<u32> {
        let mut cur = self.root;
        for c in comps {
            let nk = self.nk(cur)?;
            cur = match self.find_child(&nk, &upcase(c))? {
                Some((_, _, child)) => child,
                None => self.create_key(cur, c)?,
            };
        }
        Ok(cur)
    }

    /// Create subkey `name` of `parent` (which must not have it yet).
    pub(super) fn create_key(&mut self, parent: u32, name: &[u16]) -> Result<u32> {
        if name.len() > MAX_KEY_NAME {
            return Err(Error::Usage(format!("key name {:?} is longer than {MAX_KEY_NAME} characters", show(name))));
        }
        let pnk = self.nk(parent)?;
        if pnk.flags & KEY_SYM_LINK != 0 {
            return Err(Error::Usage(format!("key {:?} is a symbolic link; keys cannot be created below it", show(&pnk.name))));
        }
        // Windows makes CurrentControlSet at boot as a volatile link; a stored
        // key of that name would be a different key that shadows nothing.
        if parent == self.root && upcase(name) == upcase(&"CurrentControlSet".encode_utf16().collect::<Vec<_>>()) {
            return Err(Error::Usage(
                "CurrentControlSet exists only in a running system; name the control set (ControlSet00N, see Select\\Current)".into(),
            ));
        }
        // The new key shares the parent's security descriptor: one more user.
        let refs = self.sk_cell(pnk.sk)?.1;
        let refs = refs.checked_add(1).ok_or_else(|| bad_cell(pnk.sk, "security cell reference count overflows"))?;
        let (raw, compressed) = encode_name(name);
        let mut nk = vec![0u8; NK_NAME];
        nk[0..2].copy_from_slice(NK_SIG);
        let flags = if compressed { KEY_COMP_NAME } else { 0 };
        nk[NK_FLAGS..NK_FLAGS + 2].copy_from_slice(&flags.to_le_bytes());
        nk[NK_TIME..NK_TIME + 8].copy_from_slice(&self.now.to_le_bytes());
        nk[NK_PARENT..NK_PARENT + 4].copy_from_slice(&parent.to_le_bytes());
        for f in [NK_LIST, NK_VOLATILE_LIST, NK_VLIST, NK_CLASS] {
            nk[f..f + 4].copy_from_slice(&NONE.to_le_bytes());
        }
        nk[NK_SK..NK_SK + 4].copy_from_slice(&pnk.sk.to_le_bytes());
        nk[NK_NAME_LEN..NK_NAME_LEN + 2].copy_from_slice(&(raw.len() as u16).to_le_bytes());
        nk.extend_from_slice(&raw);
        let off = self.alloc(nk.len())?;
        self.wbytes(off, 0, &nk)?;
        self.w32(pnk.sk, SK_REFS, refs)?;
        self.insert_subkey(parent, off, name)?;
        self.w32(parent, NK_NSUB, pnk.nsub + 1)?;
        // Largest subkey name: low 16 bits only, in UTF-16 bytes; the high bits are flags.
        let v = le_u32(self.cell(parent)?, NK_MAX_NAME);
        let low = (v & 0xFFFF).max(name.len() as u32 * 2);
        self.w32(parent, NK_MAX_NAME, (v & 0xFFFF_0000) | low)?;
        self.touch(parent)?;
        Ok(off)
    }

    /// Insert `child` (named `name`) into `parent`'s subkey list at its sorted place.
    pub(super) fn insert_subkey(&mut self, parent: u32, child: u32, name: &[u16]) -> Result<()> {
        let up = upcase(name);
        let entry = |kind| match kind {
            LeafKind::Lh => (child, lh_hash(name)),
            LeafKind::Lf => (child, lf_hint(name)),
            LeafKind::Li => (child, 0),
        };
        let pnk = self.nk(parent)?;
        let subs = self.subkeys(&pnk)?;
        let used: Vec<usize> = (0..subs.leaves.len()).filter(|&i| !subs.leaves[i].items.is_empty()).collect();
        let Some(&last_leaf) = used.last() else {
            // No list yet: a one-entry lh (lf before minor 5).
            let kind = if self.minor >= 5 { LeafKind::Lh } else { LeafKind::Lf };
            let off = self.write_leaf(kind, &[entry(kind)], None)?;
            return self.w32(parent, NK_LIST, off);
        };
        // In an index root, the name goes into the first leaf whose last name
        // is greater, or into the last leaf if it sorts after everything.
        let mut target = last_leaf;
        for &i in &used {
            let Some(&(o, _)) = subs.leaves[i].items.last() else { continue };
            if upcase(&self.nk(o)?.name) > up {
                target = i;
                break;
            }
        }
        let leaf = &subs.leaves[target];
        let mut pos = leaf.items.len();
        for (i, &(o, _)) in leaf.items.iter().enumerate() {
            match upcase(&self.nk(o)?.name).cmp(&up) {
                std::cmp::Ordering::Less => {}
                std::cmp::Ordering::Greater => {
                    pos = i;
                    break;
                }
                std::cmp::Ordering::Equal => return Err(bad_cell(o, format!("subkey {:?} already exists", show(name)))),
            }
        }
        if leaf.items.len() >= MAX_LEAF {
            return Err(Error::unsupported(Layer::Hive, (BASE + leaf.off as usize) as u64, "subkey leaf is full (65535 entries)"));
        }
        let mut items = leaf.items.clone();
        items.insert(pos, entry(leaf.kind));
        let new = self.write_leaf(leaf.kind, &items, Some(leaf.off))?;
        if new != leaf.off {
            match subs.ri {
                Some(ri) => self.w32(ri, list::ENTRIES + 4 * target, new)?,
                None => self.w32(parent, NK_LIST, new)?,
            }
        }
        Ok(())
    }

    /// Remove entry `item` of leaf `leaf` from `parent`'s subkey list, dropping
    /// emptied leaves and an emptied index root.
    pub(super) fn remove_subkey(&mut self, parent: u32, leaf: usize, item: usize) -> Result<()> {
        let pnk = self.nk(parent)?;
        let subs = self.subkeys(&pnk)?;
        let l = subs.leaves.get(leaf).ok_or_else(|| bad_cell(pnk.list, "subkey leaf vanished"))?;
        let mut items = l.items.clone();
        if item >= items.len() {
            return Err(bad_cell(l.off, "subkey entry vanished"));
        }
        items.remove(item);
        if !items.is_empty() {
            self.write_leaf(l.kind, &items, Some(l.off))?;
        } else {
            self.free_cell(l.off)?;
            match subs.ri {
                None => self.w32(parent, NK_LIST, NONE)?,
                Some(ri) => {
                    let mut leaves: Vec<u32> = subs.leaves.iter().map(|l| l.off).collect();
                    leaves.remove(leaf);
                    if leaves.is_empty() {
                        self.free_cell(ri)?;
                        self.w32(parent, NK_LIST, NONE)?;
                    } else {
                        let mut raw = list::RI.to_vec();
                        raw.extend_from_slice(&(leaves.len() as u16).to_le_bytes());
                        raw.extend(leaves.iter().flat_map(|o| o.to_le_bytes()));
                        self.wbytes(ri, 0, &raw)?;
                    }
                }
            }
        }
        self.w32(parent, NK_NSUB, pnk.nsub.saturating_sub(1))
    }

    /// Write a leaf with `items`, in `old`'s cell if it is big enough, else in a
    /// new cell (freeing `old`). Returns the leaf's cell.
    pub(super) fn write_leaf(&mut self, kind: LeafKind, items: &[(u32, u32)], old: Option<u32>) -> Result<u32> {
        let (sig, step) = match kind {
            LeafKind::Li => (list::LI, 4),
            LeafKind::Lf => (list::LF, 8),
            LeafKind::Lh => (list::LH, 8),
        };
        let mut raw = Vec::with_capacity(list::ENTRIES + step * items.len());
        raw.extend_from_slice(sig);
        raw.extend_from_slice(&(items.len() as u16).to_le_bytes());
        for &(o, extra) in items {
            raw.extend_from_slice(&o.to_le_bytes());
            if step == 8 {
                raw.extend_from_slice(&extra.to_le_bytes());
            }
        }
        let off = match old {
            Some(o) if self.cell(o)?.len() >= raw.len() => o,
            _ => self.alloc(raw.len())?,
        };
        self.wbytes(off, 0, &raw)?;
        if let Some(o) = old.filter(|&o| o != off) {
            self.free_cell(o)?;
        }
        Ok(off)
    }

    /// Every cell of the subtree at `key` (values, data, lists, class names, key
    /// nodes) and how many of its keys use each security cell. Refuses cycles,
    /// cells referenced twice and keys that must not be deleted.
    pub(super) fn collect_subtree(&self, key: u32) -> Result<(Vec<u32>, BTreeMap<u32, u32>)> {
        let mut cells = Vec::new();
        let mut sk_uses = BTreeMap::new();
        let mut seen = HashSet::new();
        let mut stack = vec![(key, 0usize)];
        while let Some((off, depth)) = stack.pop() {
            if depth > MAX_DEPTH {
                return Err(bad_cell(off, format!("key tree deeper than {MAX_DEPTH} levels")));
            }
            let nk = self.nk(off)?;
            if nk.flags & (KEY_HIVE_ENTRY | KEY_NO_DELETE) != 0 {
                return Err(Error::Usage(format!("key {:?} is marked as not deletable (flags {:#x})", show(&nk.name), nk.flags)));
            }
            let list = self.value_list(&nk)?;
            for &v in &list {
                let vk = self.vk(v)?;
                cells.extend(self.storage(&vk)?.cells());
                cells.push(v);
            }
            if !list.is_empty() {
                cells.push(nk.vlist);
            }
            if nk.class != NONE && nk.class_len > 0 {
                cells.push(nk.class);
            }
            let subs = self.subkeys(&nk)?;
            cells.extend(subs.ri);
            for l in &subs.leaves {
                cells.push(l.off);
                stack.extend(l.items.iter().map(|&(o, _)| (o, depth + 1)));
            }
            *sk_uses.entry(nk.sk).or_insert(0u32) += 1;
            cells.push(off);
        }
        for &c in &cells {
            if !seen.insert(c) {
                return Err(bad_cell(c, "cell is referenced twice in the key tree being deleted"));
            }
        }
        Ok((cells, sk_uses))
    }

    /// `n` keys that used security cell `sk` are gone.
    pub(super) fn release_sk(&mut self, sk: u32, n: u32) -> Result<()> {
        let (_, refs) = self.sk_cell(sk)?;
        if refs > n {
            return self.w32(sk, SK_REFS, refs - n);
        }
        // The count says nobody uses it any more; trust only a scan of the
        // remaining key nodes before freeing it.
        let users = self.count_sk_users(sk);
        if users > 0 {
            return self.w32(sk, SK_REFS, users);
        }
        let c = self.cell(sk)?;
        let (flink, blink) = (le_u32(c, SK_FLINK), le_u32(c, SK_BLINK));
        if flink == sk || blink == sk {
            return Err(bad_cell(sk, "the last security cell of the hive would become unused"));
        }
        self.sk_cell(flink)?;
        self.sk_cell(blink)?;
        self.w32(blink, SK_FLINK, flink)?;
        self.w32(flink, SK_BLINK, blink)?;
        self.free_cell(sk)
    }

    /// Allocated key nodes whose security cell is `sk`.
    pub(super) fn count_sk_users(&self, sk: u32) -> u32 {
        let mut n = 0u32;
        for c in self.cells.iter() {
            if let Ok(d) = self.cell(c) {
                if d.len() >= NK_NAME && d.get(0..2) == Some(NK_SIG) && le_u32(d, NK_SK) == sk {
                    n = n.saturating_add(1);
                }
            }
        }
        n
    }

    pub(super) fn touch(&mut self, key: u32) -> Result<()> {
        let now = self.now.to_le_bytes();
        self.wbytes(key, NK_TIME, &now)
    }

    /// nk field `field` = max(itself, `v`).
    pub(super) fn raise(&mut self, key: u32, field: usize, v: u32) -> Result<()> {
        let old = le_u32(self.cell(key)?, field);
        if v > old {
            self.w32(key, field, v)?;
        }
        Ok(())
    }

    pub(super) fn nk(&self, off: u32) -> Result<Nk> {
        let c = self.cell(off)?;
        if c.len() < NK_NAME || c.get(0..2) != Some(NK_SIG) {
            return Err(bad_cell(off, format!("cell {off:#x} is not a key node (nk)")));
        }
        let flags = le_u16(c, NK_FLAGS);
        let len = le_u16(c, NK_NAME_LEN) as usize;
        let raw = c.get(NK_NAME..NK_NAME + len).ok_or_else(|| bad_cell(off, "key name runs past its cell"))?;
        Ok(Nk {
            off,
            flags,
            nsub: le_u32(c, NK_NSUB),
            list: le_u32(c, NK_LIST),
            nval: le_u32(c, NK_NVAL),
            vlist: le_u32(c, NK_VLIST),
            sk: le_u32(c, NK_SK),
            class: le_u32(c, NK_CLASS),
            class_len: le_u16(c, NK_CLASS_LEN),
            name: decode_name(raw, flags & KEY_COMP_NAME != 0),
        })
    }

    /// (cell data, reference count) of security cell `off`.
    pub(super) fn sk_cell(&self, off: u32) -> Result<(&[u8], u32)> {
        let c = self.cell(off)?;
        if c.len() < SK_MIN_LEN || c.get(0..2) != Some(SK_SIG) {
            return Err(bad_cell(off, format!("cell {off:#x} is not a security cell (sk)")));
        }
        Ok((c, le_u32(c, SK_REFS)))
    }

    pub(super) fn leaf(&self, off: u32) -> Result<Leaf> {
        let c = self.cell(off)?;
        let kind = match c.get(0..2) {
            Some(s) if s == list::LI => LeafKind::Li,
            Some(s) if s == list::LF => LeafKind::Lf,
            Some(s) if s == list::LH => LeafKind::Lh,
            _ => return Err(bad_cell(off, format!("cell {off:#x} is not a subkey leaf (li/lf/lh)"))),
        };
        let n = le_u16(c, list::COUNT) as usize;
        let step = if kind == LeafKind::Li { 4 } else { 8 };
        if list::ENTRIES + step * n > c.len() {
            return Err(bad_cell(off, format!("subkey leaf with {n} entries is longer than its cell")));
        }
        let items = (0..n).map(|i| (le_u32(c, list::ENTRIES + step * i), if step == 8 { le_u32(c, list::ENTRIES + 4 + step * i) } else { 0 })).collect();
        Ok(Leaf { off, kind, items })
    }

    /// The subkey list of `nk`, checked against its subkey count.
    pub(super) fn subkeys(&self, nk: &Nk) -> Result<Subkeys> {
        if nk.nsub == 0 {
            return Ok(Subkeys { ri: None, leaves: vec![] });
        }
        let c = self.cell(nk.list)?;
        let subs = if c.get(0..2) == Some(list::RI) {
            let n = le_u16(c, list::COUNT) as usize;
            if list::ENTRIES + 4 * n > c.len() {
                return Err(bad_cell(nk.list, format!("index root with {n} entries is longer than its cell")));
            }
            let offs: Vec<u32> = (0..n).map(|i| le_u32(c, list::ENTRIES + 4 * i)).collect();
            // An index root points at leaves only (leaf() refuses another ri).
            let leaves = offs.into_iter().map(|o| self.leaf(o)).collect::<Result<Vec<_>>>()?;
            Subkeys { ri: Some(nk.list), leaves }
        } else {
            Subkeys { ri: None, leaves: vec![self.leaf(nk.list)?] }
        };
        let total: usize = subs.leaves.iter().map(|l| l.items.len()).sum();
        if total != nk.nsub as usize {
            return Err(bad_cell(nk.off, format!("key {:?} says {} subkeys but its list holds {total}", show(&nk.name), nk.nsub)));
        }
        Ok(subs)
    }

    /// (leaf index, entry index, nk) of the subkey whose upper-cased name is `up`.
    pub(super) fn find_child(&self, nk: &Nk, up: &[u16]) -> Result<Option<(usize, usize, u32)>> {
        let subs = self.subkeys(nk)?;
        for (li, l) in subs.leaves.iter().enumerate() {
            for (ii, &(o, _)) in l.items.iter().enumerate() {
                if upcase(&self.nk(o)?.name) == up {
                    return Ok(Some((li, ii, o)));
                }
            }
        }
        Ok(None)
    }

    /// The key at `comps`, if it exists.
    pub(super) fn resolve(&self, comps: &[Vec<u16>]) -> Result<Option<u32>> {
        let mut cur = self.root;
        for c in comps {
            let nk = self.nk(cur)?;
            match self.find_child(&nk, &upcase(c))? {
                Some((_, _, child)) => cur = child,
                None => return Ok(None),
            }
        }
        Ok(Some(cur))
    }
}
