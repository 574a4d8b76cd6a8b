//! `diff --all`: two loaded hives of the same kind compared key by key —
//! keys added and removed, values added, removed and changed (old and new data
//! decoded as `reg query --json` shows them), each with the last-write time of
//! its key on both sides. A key whose time alone changed is not a difference.
//!
//! Bounded: the walk follows at most [`tree::MAX_DEPTH`] levels and
//! [`tree::MAX_KEYS`] keys per side (as `reg query -s`), and at most
//! `max_changes` changes are kept; the rest are only counted (`omitted`).

use crate::hive::kind::HiveKind;
use crate::hive::tree::{self, Hive, Key, Value};
use crate::{Error, Result};
use serde::Serialize;
use serde_json::Value as J;
use std::collections::BTreeMap;

/// The hives `--all` compares, in report order.
pub const COMPARED: [HiveKind; 5] = [HiveKind::System, HiveKind::Software, HiveKind::Sam, HiveKind::Security, HiveKind::Bcd];

/// One hive compared.
#[derive(Debug, Clone, Serialize)]
pub struct HiveDiff {
    pub hive: &'static str,
    /// "identical" (same recovered bytes: not walked), "compared", "missing"
    /// (on neither side), "only-a" / "only-b" (loaded on one side only: not
    /// compared, and counted as one difference).
    pub status: &'static str,
    /// Keys walked on each side (0 when not walked).
    pub keys_a: usize,
    pub keys_b: usize,
    pub changes: Vec<HiveChange>,
    /// Changes past the cap, counted but not listed.
    pub omitted: usize,
}

/// A key or value that differs.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct HiveChange {
    /// "key-added", "key-removed", "value-added", "value-removed", "value-changed".
    pub change: &'static str,
    /// Full key path (`HKLM\SYSTEM\...`, `BCD\...`).
    pub key: String,
    /// The value's name ("" for the default value); absent for key changes.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    pub old: Option<Data>,
    pub new: Option<Data>,
    pub a_last_write: Option<String>,
    pub b_last_write: Option<String>,
}

/// Value data, decoded.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Data {
    #[serde(rename = "type")]
    pub ty: String,
    pub data: J,
}

impl Data {
    fn of(v: &Value) -> Data {
        Data { ty: v.type_name(), data: v.json_data() }
    }
}

struct Walk<'a> {
    root: String,
    a: &'a Hive,
    b: &'a Hive,
    max: usize,
    out: HiveDiff,
}

impl Walk<'_> {
    fn push(&mut self, c: HiveChange) {
        if self.out.changes.len() < self.max {
            self.out.changes.push(c);
        } else {
            self.out.omitted += 1;
        }
    }

    fn full(&self, path: &str) -> String {
        if path.is_empty() {
            self.root.clone()
        } else {
            format!("{}\\{path}", self.root)
        }
    }

    fn count(&mut self, a: bool, b: bool) -> Result<()> {
        self.out.keys_a += usize::from(a);
        self.out.keys_b += usize::from(b);
        if self.out.keys_a.max(self.out.keys_b) > tree::MAX_KEYS {
            return Err(Error::Usage(format!("{}: more than {} keys", self.out.hive, tree::MAX_KEYS)));
        }
        Ok(())
    }

    /// A key present on one side only: it and its values (`a_side`: removed).
    fn one_sided(&mut self, k: &Key, a_side: bool) {
        let key = self.full(&k.path);
        let (lw_a, lw_b) = if a_side { (k.last_write.clone(), None) } else { (None, k.last_write.clone()) };
        self.push(HiveChange { change: if a_side { "key-removed" } else { "key-added" }, key: key.clone(), name: None, old: None, new: None, a_last_write: lw_a.clone(), b_last_write: lw_b.clone() });
        for v in &k.values {
            let d = Some(Data::of(v));
            let (old, new) = if a_side { (d, None) } else { (None, d) };
            let change = if a_side { "value-removed" } else { "value-added" };
            self.push(HiveChange { change, key: key.clone(), name: Some(v.name.clone()), old, new, a_last_write: lw_a.clone(), b_last_write: lw_b.clone() });
        }
    }

    fn values(&mut self, ka: &Key, kb: &Key) {
        let key = self.full(&ka.path);
        let (lw_a, lw_b) = (ka.last_write.clone(), kb.last_write.clone());
        let by_name = |k: &Key| k.values.iter().map(|v| (v.name.to_lowercase(), v.clone())).collect::<BTreeMap<_, _>>();
        let (va, vb) = (by_name(ka), by_name(kb));
        for (n, x) in &va {
            let change = match vb.get(n) {
                None => Some(("value-removed", None)),
                Some(y) if x.kind != y.kind || x.raw != y.raw => Some(("value-changed", Some(Data::of(y)))),
                Some(_) => None,
            };
            if let Some((change, new)) = change {
                self.push(HiveChange { change, key: key.clone(), name: Some(x.name.clone()), old: Some(Data::of(x)), new, a_last_write: lw_a.clone(), b_last_write: lw_b.clone() });
            }
        }
        for (n, y) in &vb {
            if !va.contains_key(n) {
                self.push(HiveChange { change: "value-added", key: key.clone(), name: Some(y.name.clone()), old: None, new: Some(Data::of(y)), a_last_write: lw_a.clone(), b_last_write: lw_b.clone() });
            }
        }
    }

    /// Depth first from the root; `(path, in A, in B, depth)` on an explicit stack.
    fn run(&mut self) -> Result<()> {
        let mut stack = vec![(String::new(), true, true, 0usize)];
        while let Some((path, in_a, in_b, depth)) = stack.pop() {
            self.count(in_a, in_b)?;
            let ka = if in_a { Some(self.a.key(&path)?) } else { None };
            let kb = if in_b { Some(self.b.key(&path)?) } else { None };
            let mut children: BTreeMap<String, (String, bool, bool)> = BTreeMap::new();
            match (&ka, &kb) {
                (Some(x), Some(y)) => self.values(x, y),
                (Some(x), None) => self.one_sided(x, true),
                (None, Some(y)) => self.one_sided(y, false),
                (None, None) => continue,
            }
            for (k, a_side) in [(&ka, true), (&kb, false)] {
                for s in k.iter().flat_map(|k| &k.subkeys) {
                    let e = children.entry(s.to_lowercase()).or_insert_with(|| (tree::join(&path, s), false, false));
                    if a_side {
                        e.1 = true;
                    } else {
                        e.2 = true;
                    }
                }
            }
            if depth < tree::MAX_DEPTH {
                // Reversed so that the stack pops them in name order.
                for (_, (p, x, y)) in children.into_iter().rev() {
                    stack.push((p, x, y, depth + 1));
                }
            }
        }
        Ok(())
    }
}

/// Compare hive `kind` of two sides (either may be absent).
pub fn diff_hive(kind: HiveKind, a: Option<&Hive>, b: Option<&Hive>, max_changes: usize) -> Result<HiveDiff> {
    let out = HiveDiff { hive: kind.short(), status: "compared", keys_a: 0, keys_b: 0, changes: vec![], omitted: 0 };
    let (a, b) = match (a, b) {
        (None, None) => return Ok(HiveDiff { status: "missing", ..out }),
        (Some(_), None) => return Ok(HiveDiff { status: "only-a", ..out }),
        (None, Some(_)) => return Ok(HiveDiff { status: "only-b", ..out }),
        (Some(a), Some(b)) => (a, b),
    };
    if a.bytes()? == b.bytes()? {
        return Ok(HiveDiff { status: "identical", ..out });
    }
    let mut w = Walk { root: kind.short_root(), a, b, max: max_changes, out };
    w.run()?;
    Ok(w.out)
}

impl HiveDiff {
    /// Differences this hive counts for: its changes, or 1 when it is loaded on one side only.
    pub fn count(&self) -> usize {
        match self.status {
            "only-a" | "only-b" => 1,
            _ => self.changes.len() + self.omitted,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::hive::edit::{Edit, HiveEditor, RegData};

    fn hive(bytes: Vec<u8>) -> Hive {
        Hive::new("SOFTWARE", crate::hive::load(bytes, None, None).unwrap())
    }

    /// Every kind of change, made by the hive editor on the committed SOFTWARE
    /// test hive, is found, with nothing else (the keys it touched only have
    /// newer times, which are not differences).
    #[test]
    fn every_change_kind_and_nothing_else() {
        let a_bytes = include_bytes!("../../testdata/hives/SOFTWARE").to_vec();
        let a = hive(a_bytes.clone());
        let cv = r"Microsoft\Windows NT\CurrentVersion";
        let old_name = a.key(cv).unwrap().values.iter().find(|v| v.kind == 1).unwrap().clone();
        let some_key = a.key(cv).unwrap().subkeys.first().cloned();
        let mut ed = HiveEditor::new(a_bytes, 0).unwrap();
        let mut edits = vec![
            Edit::set(HiveKind::Software, cv, &old_name.name, RegData::Sz("changed".into())),
            Edit::set(HiveKind::Software, cv, "rdprescue-new", RegData::Dword(7)),
            Edit::create_key(HiveKind::Software, r"rdprescue\new key"),
        ];
        if let Some(k) = &some_key {
            edits.push(Edit::delete_key(HiveKind::Software, format!(r"{cv}\{k}")));
        }
        let other = a.key(cv).unwrap().values.iter().find(|v| v.name != old_name.name).unwrap().name.clone();
        edits.push(Edit::delete_value(HiveKind::Software, cv, &other));
        ed.apply_all(&edits).unwrap();
        let b = hive(ed.finish().unwrap());
        let d = diff_hive(HiveKind::Software, Some(&a), Some(&b), 100).unwrap();
        assert_eq!(d.status, "compared");
        let root = r"HKLM\SOFTWARE";
        let got: Vec<(&str, String, Option<String>)> = d.changes.iter().map(|c| (c.change, c.key.clone(), c.name.clone())).collect();
        let full = |k: &str| format!(r"{root}\{k}");
        assert!(got.contains(&("value-changed", full(cv), Some(old_name.name.clone()))), "{got:?}");
        assert!(got.contains(&("value-added", full(cv), Some("rdprescue-new".into()))), "{got:?}");
        assert!(got.contains(&("value-removed", full(cv), Some(other.clone()))), "{got:?}");
        assert!(got.contains(&("key-added", full("rdprescue"), None)), "{got:?}");
        assert!(got.contains(&("key-added", full(r"rdprescue\new key"), None)), "{got:?}");
        let removed = got.iter().filter(|c| c.0 == "key-removed").count();
        assert_eq!(removed > 0, some_key.is_some());
        // Nothing else: each listed change is one of the edits (a deleted key lists its subtree).
        for (ch, key, _) in &got {
            let ok = key == &full(cv) || key.starts_with(&full("rdprescue")) || some_key.as_ref().is_some_and(|k| key.starts_with(&full(&format!(r"{cv}\{k}"))));
            assert!(ok, "unexpected {ch} {key}");
        }
        let changed = d.changes.iter().find(|c| c.change == "value-changed").unwrap();
        assert_eq!(changed.new.as_ref().unwrap().data, J::from("changed"));
        assert_eq!(changed.old.as_ref().unwrap().ty, "REG_SZ");
        assert!(changed.b_last_write > changed.a_last_write, "the editor stamps the key it writes");
        // The cap counts the rest; the same hive is identical without a walk.
        let capped = diff_hive(HiveKind::Software, Some(&a), Some(&b), 2).unwrap();
        assert_eq!((capped.changes.len(), capped.omitted), (2, d.changes.len() - 2));
        let same = diff_hive(HiveKind::Software, Some(&a), Some(&a), 100).unwrap();
        assert_eq!((same.status, same.count()), ("identical", 0));
        assert_eq!(diff_hive(HiveKind::Software, Some(&a), None, 100).unwrap().count(), 1);
    }
}
