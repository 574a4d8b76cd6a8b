//! Two snapshots of one machine compared (issue 15, "what changed between
//! these two snapshots?"): `rdprescue diff A B`. Each side is anything
//! [`Machine::open`](crate::machine::Machine::open) takes (an image, a
//! differencing child or Hyper-V checkpoint over its parent, a mounted volume,
//! a hive directory or file), inspected as `inspect` does; the RDP-relevant
//! rows (settings, SAM accounts, SECURITY logon rights, firewall rules) and the
//! findings are paired up and every difference is listed with the last-write
//! time of its key on both sides. With [`Options::all`] the whole hives
//! (SYSTEM, SOFTWARE, SAM, SECURITY, BCD) are compared key by key as well
//! ([`hives`]), bounded by [`Options::max_changes`].
//!
//! This layer sits on top of `rdp` (it reads [`InspectReport`]s) and never
//! writes: both sides are opened read-only.

pub mod hives;

use crate::hive::kind::HiveKind;
use crate::rdp::report::{Dated, Inspected, InspectReport};
use crate::rdp::{Finding, Setting, Severity};
use serde::Serialize;
use serde_json::Value as J;
use std::collections::{BTreeMap, VecDeque};
use std::path::Path;

/// What to compare.
#[derive(Debug, Clone, Copy)]
pub struct Options {
    /// Also compare the whole hives, key by key (`--all`).
    pub all: bool,
    /// Most hive changes listed per hive with `all`; the rest are counted.
    pub max_changes: usize,
}

impl Default for Options {
    fn default() -> Self {
        Options { all: false, max_changes: DEFAULT_MAX_CHANGES }
    }
}

/// Default cap of listed hive changes per hive (`--all`).
pub const DEFAULT_MAX_CHANGES: usize = 1000;

/// One side: what was opened and the state of each hive.
#[derive(Debug, Clone, Serialize)]
pub struct Side {
    pub path: String,
    /// "image", "mounted-volume", "directory", "hive-file".
    pub kind: &'static str,
    /// The control set `CurrentControlSet` stands for (paths below name it `CurrentControlSet`).
    pub control_set: Option<String>,
    pub hives: Vec<SideHive>,
}

#[derive(Debug, Clone, Serialize)]
pub struct SideHive {
    pub name: &'static str,
    /// "clean", "recovered" (dirty, logs replayed in memory), "dirty-not-recovered" or "missing".
    pub state: &'static str,
    pub location: String,
}

/// A settings row's values on one side, with the time of its key.
pub type RowValue = Dated<Values>;

/// What a settings row holds on one side (compared without the key's time).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Values {
    pub local: J,
    pub policy: J,
    pub effective: J,
    pub source: &'static str,
}

/// A row that differs: present on one side only, or with other values.
#[derive(Debug, Clone, Serialize)]
pub struct RowChange {
    /// The check the row belongs to.
    pub id: &'static str,
    /// The key, with the side's current control set written `CurrentControlSet`.
    pub path: String,
    pub name: String,
    /// "added" (only in B), "removed" (only in A), "changed".
    pub change: &'static str,
    pub a: Option<RowValue>,
    pub b: Option<RowValue>,
}

/// A finding on one side, with its time.
pub type FindingSide = Dated<FindingText>;

#[derive(Debug, Clone, Serialize)]
pub struct FindingText {
    pub severity: Severity,
    pub message: String,
}

/// A finding that appeared, was resolved, or changed.
#[derive(Debug, Clone, Serialize)]
pub struct FindingChange {
    pub check: String,
    /// "appeared" (only in B), "resolved" (only in A), "severity-changed", "changed" (message).
    pub change: &'static str,
    pub a: Option<FindingSide>,
    pub b: Option<FindingSide>,
}

/// Everything that differs between A and B.
#[derive(Debug, Clone, Serialize)]
pub struct Diff {
    pub a: Side,
    pub b: Side,
    /// How many differences are listed below (hive changes counted with the omitted ones).
    pub differences: usize,
    /// RDP settings rows (catalog checks other than the three groups below).
    pub settings: Vec<RowChange>,
    /// SAM rows: each local account (enabled, locked, expiry, groups) and the account policy.
    pub accounts: Vec<RowChange>,
    /// SECURITY rows: the logon rights of each principal.
    pub rights: Vec<RowChange>,
    /// Firewall rows: the Remote Desktop rules, profiles and block-all settings.
    pub firewall: Vec<RowChange>,
    pub findings: Vec<FindingChange>,
    /// With `--all`: the whole hives compared key by key.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub hives: Option<Vec<hives::HiveDiff>>,
}

/// A side opened and inspected.
pub struct Snapshot {
    pub opened: Inspected,
    pub report: InspectReport,
}

impl Snapshot {
    /// Open and inspect `path` (read-only).
    pub fn open(path: &Path) -> crate::Result<Snapshot> {
        let opened = Inspected::open(path)?;
        let report = opened.report(opened.inspect(), None);
        Ok(Snapshot { opened, report })
    }

    fn current_set(&self) -> Option<&str> {
        self.report.windows.control_sets.as_ref().map(|c| c.current_key.as_str())
    }

    fn side(&self) -> Side {
        Side {
            path: self.report.image.path.clone(),
            kind: self.report.image.kind,
            control_set: self.current_set().map(str::to_string),
            hives: self.report.hives.iter().map(|h| SideHive { name: h.name, state: h.state, location: h.location.clone() }).collect(),
        }
    }
}

/// Compare two opened snapshots.
pub fn diff(a: &Snapshot, b: &Snapshot, opts: Options) -> crate::Result<Diff> {
    let rows = row_changes(a, b);
    let mut d = Diff { a: a.side(), b: b.side(), differences: 0, settings: vec![], accounts: vec![], rights: vec![], firewall: vec![], findings: finding_changes(&a.report.findings, &b.report.findings), hives: None };
    for r in rows {
        match group(&r) {
            Group::Accounts => d.accounts.push(r),
            Group::Rights => d.rights.push(r),
            Group::Firewall => d.firewall.push(r),
            Group::Settings => d.settings.push(r),
        }
    }
    if opts.all {
        let mut out = Vec::new();
        for kind in hives::COMPARED {
            out.push(hives::diff_hive(kind, a.opened.machine.hive(kind), b.opened.machine.hive(kind), opts.max_changes)?);
        }
        d.hives = Some(out);
    }
    d.differences = d.settings.len()
        + d.accounts.len()
        + d.rights.len()
        + d.firewall.len()
        + d.findings.len()
        + d.hives.as_ref().map_or(0, |h| h.iter().map(hives::HiveDiff::count).sum());
    Ok(d)
}

/// Open both sides and compare them.
pub fn diff_paths(a: &Path, b: &Path, opts: Options) -> crate::Result<Diff> {
    let sa = Snapshot::open(a)?;
    let sb = Snapshot::open(b)?;
    diff(&sa, &sb, opts)
}

enum Group {
    Settings,
    Accounts,
    Rights,
    Firewall,
}

fn group(r: &RowChange) -> Group {
    let under = |kind: HiveKind| r.path.get(..kind.short_root().len() + 1).is_some_and(|p| p.eq_ignore_ascii_case(&format!("{}\\", kind.short_root())));
    if under(HiveKind::Sam) {
        Group::Accounts
    } else if under(HiveKind::Security) {
        Group::Rights
    } else if r.id.starts_with("fw-") || r.path.to_ascii_lowercase().contains(r"\sharedaccess\parameters\firewallpolicy") {
        Group::Firewall
    } else {
        Group::Settings
    }
}

/// `path` with the side's current control set (`ControlSet001`) written
/// `CurrentControlSet`, so rows of two sides booting different sets pair up.
fn normalize(path: &str, set: Option<&str>) -> String {
    let Some(set) = set else { return path.to_string() };
    path.split('\\').map(|c| if c.eq_ignore_ascii_case(set) { "CurrentControlSet" } else { c }).collect::<Vec<_>>().join("\\")
}

fn value_of(s: &Dated<Setting>) -> RowValue {
    let item = Values { local: s.local.clone(), policy: s.policy.clone(), effective: s.effective.clone(), source: s.source };
    Dated { item, last_write: s.last_write.clone() }
}

/// The items of one side handed out by key: each goes to the first asker
/// with an equal key, once; what nobody asked for is listed after, in order.
struct Pairing<K> {
    free: BTreeMap<K, VecDeque<usize>>,
}

impl<K: Ord> Pairing<K> {
    /// `items`: (index, key) in their order.
    fn new(items: impl IntoIterator<Item = (usize, K)>) -> Self {
        let mut free: BTreeMap<K, VecDeque<usize>> = BTreeMap::new();
        for (i, k) in items {
            free.entry(k).or_default().push_back(i);
        }
        Pairing { free }
    }

    /// The first item with key `k` not handed out yet.
    fn take(&mut self, k: &K) -> Option<usize> {
        self.free.get_mut(k)?.pop_front()
    }

    /// The indices never handed out, in order.
    fn unpaired(self) -> Vec<usize> {
        let mut left: Vec<usize> = self.free.into_values().flatten().collect();
        left.sort_unstable();
        left
    }
}

/// Settings rows paired by (check, key, value name), the key with the side's
/// current control set written `CurrentControlSet`, key and name without case.
fn row_changes(a: &Snapshot, b: &Snapshot) -> Vec<RowChange> {
    let key = |s: &Dated<Setting>, set: Option<&str>| (s.id, normalize(&s.path, set).to_lowercase(), s.name.to_lowercase());
    let (sa, sb) = (a.current_set(), b.current_set());
    let mut pairing = Pairing::new(b.report.settings.iter().enumerate().map(|(i, s)| (i, key(s, sb))));
    let mut out = Vec::new();
    for ra in &a.report.settings {
        let va = value_of(ra);
        let change = match pairing.take(&key(ra, sa)).map(|i| value_of(&b.report.settings[i])) {
            None => ("removed", None),
            Some(vb) if va.item != vb.item => ("changed", Some(vb)),
            Some(_) => continue,
        };
        out.push(RowChange { id: ra.id, path: normalize(&ra.path, sa), name: ra.name.clone(), change: change.0, a: Some(va), b: change.1 });
    }
    for rb in pairing.unpaired().into_iter().map(|i| &b.report.settings[i]) {
        out.push(RowChange { id: rb.id, path: normalize(&rb.path, sb), name: rb.name.clone(), change: "added", a: None, b: Some(value_of(rb)) });
    }
    out
}

fn finding_side(f: &Dated<Finding>) -> FindingSide {
    Dated { item: FindingText { severity: f.severity, message: f.message.clone() }, last_write: f.last_write.clone() }
}

/// Pair the findings of each check: same message first (unchanged), then in
/// order (changed severity or message); the rest appeared or were resolved.
fn finding_changes(a: &[Dated<Finding>], b: &[Dated<Finding>]) -> Vec<FindingChange> {
    let same = |f: &Dated<Finding>| (f.check.clone(), f.message.clone(), f.severity);
    let mut unchanged = Pairing::new(b.iter().map(same).enumerate());
    let changed_a: Vec<&Dated<Finding>> = a.iter().filter(|fa| unchanged.take(&same(fa)).is_none()).collect();
    let mut by_check = Pairing::new(unchanged.unpaired().into_iter().map(|j| (j, b[j].check.clone())));
    let mut out = Vec::new();
    for fa in changed_a {
        match by_check.take(&fa.check) {
            Some(j) => {
                let change = if b[j].severity != fa.severity { "severity-changed" } else { "changed" };
                out.push(FindingChange { check: fa.check.to_string(), change, a: Some(finding_side(fa)), b: Some(finding_side(&b[j])) });
            }
            None => out.push(FindingChange { check: fa.check.to_string(), change: "resolved", a: Some(finding_side(fa)), b: None }),
        }
    }
    for fb in by_check.unpaired().into_iter().map(|j| &b[j]) {
        out.push(FindingChange { check: fb.check.to_string(), change: "appeared", a: None, b: Some(finding_side(fb)) });
    }
    out
}

impl Diff {
    /// Pretty JSON with a final newline (`diff --json`).
    pub fn to_json(&self) -> serde_json::Result<String> {
        let mut s = serde_json::to_string_pretty(self)?;
        s.push('\n');
        Ok(s)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn control_sets_are_normalized() {
        assert_eq!(normalize(r"HKLM\SYSTEM\ControlSet002\Services\X", Some("ControlSet002")), r"HKLM\SYSTEM\CurrentControlSet\Services\X");
        assert_eq!(normalize(r"HKLM\SYSTEM\ControlSet001\Services\X", Some("ControlSet002")), r"HKLM\SYSTEM\ControlSet001\Services\X");
        assert_eq!(normalize(r"BCD\Objects", None), r"BCD\Objects");
    }

    fn finding(check: &'static str, severity: Severity, message: &str) -> Dated<Finding> {
        Dated {
            item: Finding { check: check.into(), severity, title: "", message: message.into(), fix: String::new(), actions: vec![], reapplied_by: vec![], confirmed_by: None },
            last_write: None,
        }
    }

    #[test]
    fn findings_pair_by_check_then_message() {
        let a = [finding("x", Severity::High, "m1"), finding("x", Severity::Low, "m2"), finding("gone", Severity::Low, "g")];
        let b = [finding("x", Severity::Low, "m2"), finding("x", Severity::Critical, "m1 worse"), finding("new", Severity::Medium, "n")];
        let c = finding_changes(&a, &b);
        let got: Vec<(&str, &str)> = c.iter().map(|c| (c.check.as_str(), c.change)).collect();
        assert_eq!(got, [("x", "severity-changed"), ("gone", "resolved"), ("new", "appeared")]);
        assert_eq!(c[0].a.as_ref().unwrap().message, "m1");
        assert_eq!(c[0].b.as_ref().unwrap().message, "m1 worse");
        assert!(finding_changes(&a, &a).is_empty());
    }
}
