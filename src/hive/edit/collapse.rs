//! `.reg` later-wins semantics: [`collapse`] drops the edits a later edit
//! makes pointless, so that every edit left has a visible effect on the
//! final state and a check of the result after writing does not trip over
//! an intermediate value (issue 11 item 7).

use std::collections::{BTreeMap, BTreeSet, HashMap};

use super::ops::{Edit, EditOp};
use super::upcase;
use crate::hive::HiveKind;

type Path = (HiveKind, Vec<Vec<u16>>);

/// Path components as the editor splits them (empty ones dropped).
fn comps(key: &str) -> Vec<&str> {
    key.split('\\').filter(|c| !c.is_empty()).collect()
}

fn norm(e: &Edit) -> Path {
    (e.hive, comps(&e.key).iter().map(|c| upcase(&c.encode_utf16().collect::<Vec<_>>())).collect())
}

fn norm_name(n: &str) -> Vec<u16> {
    upcase(&n.encode_utf16().collect::<Vec<_>>())
}

fn creates(e: &Edit) -> bool {
    matches!(e.op, EditOp::SetValue { .. } | EditOp::CreateKey)
}

/// What is known about one value (by key and upper-cased name) among the
/// edits kept so far: its last kept delete and the set after it.
#[derive(Default, Clone, Copy)]
struct ValState {
    del: Option<usize>,
    set: Option<usize>,
}

#[derive(Default)]
struct Out {
    edits: Vec<Option<Edit>>,
    paths: Vec<Path>,
    /// Kept edits by exact key path (indices may be stale: checked on use).
    by_key: BTreeMap<Path, Vec<usize>>,
    /// Kept edits that create their key (and its parents), by exact path.
    creators: BTreeMap<Path, BTreeSet<usize>>,
    vals: HashMap<(Path, Vec<u16>), ValState>,
}

impl Out {
    fn push(&mut self, e: Edit, p: Path) -> usize {
        let i = self.edits.len();
        self.place(i, e, p);
        i
    }

    /// Put `e` in slot `i` (a new slot, or one freed by `remove`).
    fn place(&mut self, i: usize, e: Edit, p: Path) {
        if creates(&e) {
            self.creators.entry(p.clone()).or_default().insert(i);
        }
        self.by_key.entry(p.clone()).or_default().push(i);
        if i == self.edits.len() {
            self.edits.push(Some(e));
            self.paths.push(p);
        } else {
            self.edits[i] = Some(e);
            self.paths[i] = p;
        }
    }

    fn remove(&mut self, i: usize) -> Option<Edit> {
        let e = self.edits[i].take()?;
        if creates(&e) {
            let p = &self.paths[i];
            if let Some(s) = self.creators.get_mut(p) {
                s.remove(&i);
                if s.is_empty() {
                    self.creators.remove(p);
                }
            }
        }
        Some(e)
    }

    /// Kept edits whose key is `p` or below it, in path order.
    fn below<'a>(map: &'a BTreeMap<Path, impl Sized>, p: &'a Path) -> impl Iterator<Item = &'a Path> + 'a {
        map.range(p.clone()..).map(|(k, _)| k).take_while(move |k| k.0 == p.0 && k.1.starts_with(&p.1))
    }

    /// A kept edit before slot `before` creates `p` (or something below it,
    /// hence `p`). The root always exists.
    fn created_before(&self, p: &Path, before: usize) -> bool {
        p.1.is_empty() || Self::below(&self.creators, p).any(|k| self.creators[k].first().is_some_and(|&i| i < before))
    }

    /// The value slot `i` holds, if it still holds that value's edit.
    fn live(&self, i: Option<usize>, set: bool, p: &Path) -> Option<usize> {
        let i = i?;
        let e = self.edits[i].as_ref()?;
        (matches!(e.op, EditOp::SetValue { .. }) == set && matches!(e.op, EditOp::SetValue { .. } | EditOp::DeleteValue { .. }) && self.paths[i] == *p)
            .then_some(i)
    }

    /// Remove creating edit `i`, keeping what it created: a `CreateKey` of
    /// the first `depth` components of its key (spelled as it spelled them)
    /// takes its slot unless a kept edit before it already created them.
    fn remove_keeping_keys(&mut self, i: usize, depth: usize) {
        let Some(e) = self.remove(i) else { return };
        if !creates(&e) {
            return;
        }
        let c = comps(&e.key);
        let p: Path = (e.hive, self.paths[i].1[..depth.min(c.len())].to_vec());
        if self.created_before(&p, i) {
            return;
        }
        let key = c[..depth.min(c.len())].join("\\");
        self.place(i, Edit::create_key(e.hive, key), p);
    }
}

/// The shortest edit list with the same final state as `edits` applied in
/// order (each edit as the hive editor applies it): the last write to a value
/// wins (merged into the first write's slot, which keeps the name as first
/// spelled and the value's place in its list); a value deletion drops the
/// writes before it; a key deletion drops every earlier edit at or below the
/// key (paths and names compare case-insensitively, as the editor does). Keys
/// that dropped edits had created (and whose spelling they fixed) are kept
/// by a `CreateKey` in the first dropped edit's place; a create after a
/// delete keeps both, in order. Edits of different hives never interact.
pub fn collapse(edits: &[Edit]) -> Vec<Edit> {
    let mut out = Out::default();
    for e in edits {
        let p = norm(e);
        match &e.op {
            EditOp::SetValue { name, data } => {
                let vkey = (p.clone(), norm_name(name));
                let st = out.vals.get(&vkey).copied().unwrap_or_default();
                match out.live(st.set, true, &p) {
                    Some(i) => {
                        // Later write wins, in the first write's slot.
                        if let Some(Edit { op: EditOp::SetValue { data: d, .. }, .. }) = out.edits[i].as_mut() {
                            *d = data.clone();
                        }
                    }
                    None => {
                        let j = out.push(e.clone(), p);
                        let del = out.live(st.del, false, &vkey.0);
                        out.vals.insert(vkey, ValState { del, set: Some(j) });
                    }
                }
            }
            EditOp::DeleteValue { name } => {
                let vkey = (p.clone(), norm_name(name));
                let st = out.vals.get(&vkey).copied().unwrap_or_default();
                if let Some(i) = out.live(st.set, true, &p) {
                    let depth = p.1.len();
                    out.remove_keeping_keys(i, depth);
                }
                let del = match out.live(st.del, false, &p) {
                    // Already deleted, and nothing set since: nothing to do.
                    Some(d) => d,
                    None => out.push(e.clone(), p),
                };
                out.vals.insert(vkey, ValState { del: Some(del), set: None });
            }
            EditOp::CreateKey => {
                if !out.created_before(&p, usize::MAX) {
                    out.push(e.clone(), p);
                }
            }
            EditOp::DeleteKey => {
                if p.1.is_empty() {
                    // Refused by the editor (the root); kept as is.
                    out.push(e.clone(), p);
                    continue;
                }
                let under: Vec<Path> = Out::below(&out.by_key, &p).cloned().collect();
                let mut dropped = Vec::new();
                for k in under {
                    for i in out.by_key.remove(&k).unwrap_or_default() {
                        if out.paths[i] == k && out.edits[i].is_some() {
                            dropped.push(i);
                        }
                    }
                }
                dropped.sort_unstable();
                dropped.dedup();
                // The first creator below the key created its parents: keep them.
                let first_creator = dropped.iter().copied().find(|&i| out.edits[i].as_ref().is_some_and(creates));
                for &i in &dropped {
                    if Some(i) != first_creator {
                        out.remove(i);
                    }
                }
                if let Some(i) = first_creator {
                    out.remove_keeping_keys(i, p.1.len() - 1);
                }
                out.push(e.clone(), p);
            }
        }
    }
    out.edits.into_iter().flatten().collect()
}

#[cfg(test)]
mod tests {
    use super::super::batch::tests::{random_edits, Rng};
    use super::super::tests::{editor, finished, same, snap};
    use super::*;
    use crate::hive::edit::RegData;

    const S: HiveKind = HiveKind::Software;

    fn set(k: &str, n: &str, d: u32) -> Edit {
        Edit::set(S, k, n, RegData::Dword(d))
    }

    #[test]
    fn later_wins() {
        // A value set twice (names in other case): one set, first spelling, last data.
        assert_eq!(collapse(&[set("K", "v", 1), set("k", "V", 2)]), vec![set("K", "v", 2)]);
        // `@` set twice.
        assert_eq!(collapse(&[set("K", "", 1), set("K", "", 2)]), vec![set("K", "", 2)]);
        // Set then deleted: the key the set created stays.
        assert_eq!(
            collapse(&[set(r"A\B", "v", 1), Edit::delete_value(S, r"a\b", "V")]),
            vec![Edit::create_key(S, r"A\B"), Edit::delete_value(S, r"a\b", "V")]
        );
        // Deleted twice: once.
        assert_eq!(collapse(&[Edit::delete_value(S, "K", "v"), Edit::delete_value(S, "K", "v")]), vec![Edit::delete_value(S, "K", "v")]);
        // A key created then deleted: only the deletion (and the parent the
        // creation made).
        assert_eq!(
            collapse(&[Edit::create_key(S, r"P\New"), set(r"P\New\Sub", "x", 1), Edit::delete_key(S, r"p\NEW")]),
            vec![Edit::create_key(S, "P"), Edit::delete_key(S, r"p\NEW")]
        );
        assert_eq!(collapse(&[Edit::create_key(S, "Top"), Edit::delete_key(S, "top")]), vec![Edit::delete_key(S, "top")]);
        // Create after delete keeps both, in order.
        let x = vec![Edit::delete_key(S, "K"), Edit::create_key(S, "K"), set("K", "v", 1)];
        assert_eq!(collapse(&x), x);
        // A create below a key already created is dropped; other hives are independent.
        assert_eq!(collapse(&[set(r"A\B", "v", 1), Edit::create_key(S, "a")]), vec![set(r"A\B", "v", 1)]);
        let other = Edit::delete_key(HiveKind::System, "A");
        assert_eq!(collapse(&[set("A", "v", 1), other.clone()]), vec![set("A", "v", 1), other]);
    }

    /// Property: on random sequences (overlapping keys and names in mixed
    /// case, deletes of keys above and below, creates after deletes),
    /// applying `collapse(x)` and `x` to a real hive gives identical trees
    /// (paths as spelled, values with types and data), and collapsing twice
    /// changes nothing.
    #[test]
    fn collapse_keeps_the_final_state() {
        let mut r = Rng(0xD1B5_4A32_D192_ED03);
        let (mut total, mut kept) = (0, 0);
        for round in 0..300 {
            let x = random_edits(&mut r, 1 + round % 60);
            let c = collapse(&x);
            assert!(c.len() <= x.len(), "round {round}");
            assert_eq!(collapse(&c), c, "round {round}: collapse is not idempotent");
            let (mut a, mut b) = (editor(), editor());
            a.apply_all(&x).unwrap();
            b.apply_all(&c).unwrap();
            same(&snap(&finished(&b)), &snap(&finished(&a)), &format!("round {round}: {x:?}\n -> {c:?}"));
            total += x.len();
            kept += c.len();
        }
        eprintln!("{kept} of {total} edits kept");
        assert!(kept < total * 3 / 4, "random sequences barely collapsed ({kept} of {total})");
    }

    #[test]
    fn linear_on_big_imports() {
        let mut x: Vec<Edit> = (0..100_000u32).map(|i| set(r"Imp\Key", &format!("v{}", i % 50_000), i)).collect();
        x.push(Edit::delete_key(S, "imp"));
        x.extend((0..1000u32).map(|i| set(&format!(r"Imp\K{i}"), "a", i)));
        let t = std::time::Instant::now();
        let c = collapse(&x);
        eprintln!("collapse of {} edits: {:?}", x.len(), t.elapsed());
        assert_eq!(c.len(), 1001);
    }
}
