//! Layer 5: the RDP checks. A declarative catalog ([`catalog`]) of every
//! offline-detectable setting that blocks Remote Desktop (ids from
//! `shared/reference/rdp-checks.md`), evaluated against a machine's hives.
//!
//! This layer only sees hives, through the [`Hives`] trait: it does not know
//! whether they came from a disk image, a device or a directory of files.
//!
//! For every setting it reports the local value, the Group Policy value
//! (`SOFTWARE\Policies\...`) and the effective one with its source; a missing
//! value is shown as the Windows default and says so. Broken settings become
//! [`Finding`]s carrying the exact registry [`Edit`]s a fix would write.

pub mod accounts;
pub mod baseline;
pub mod catalog;
pub mod check;
mod custom;
pub mod system;
pub mod eval;
pub mod firewall;
pub mod os;
pub mod profiles;
pub mod report;
pub mod symptoms;
pub mod now;

use crate::hive::edit::{Edit, RegData};
use crate::hive::source::{control_set_name, control_sets, ControlSets, HiveKind};
use crate::hive::tree::{Hive, Key, Value};
use serde::Serialize;
use serde_json::Value as J;
use std::borrow::Cow;
use std::cell::RefCell;
use std::collections::HashMap;
use std::rc::Rc;

pub use catalog::{Area, Check, CATALOG};
pub use eval::inspect;

/// Where the checks find hives. SYSTEM is required; the others are optional
/// (checks on a missing hive are reported as not evaluated).
pub trait Hives {
    fn hive(&self, kind: HiveKind) -> Option<&Hive>;
    /// The Windows volume's file system, for the checks that read files
    /// (tspkg.dll's version, pending.xml, hiberfil.sys, free space); None for
    /// hive files and directories.
    fn windows_fs(&self) -> Option<&dyn crate::fs::FileSystem> {
        None
    }
}

impl Hives for crate::machine::Machine {
    fn hive(&self, kind: HiveKind) -> Option<&Hive> {
        crate::machine::Machine::hive(self, kind)
    }
    fn windows_fs(&self) -> Option<&dyn crate::fs::FileSystem> {
        let w = *self.survey()?.windows_volumes.first()?;
        self.mount(w).ok()
    }
}

/// Hives held in memory, one per kind.
#[derive(Default)]
pub struct HiveSet {
    pub hives: Vec<(HiveKind, Hive)>,
}

impl Hives for HiveSet {
    fn hive(&self, kind: HiveKind) -> Option<&Hive> {
        self.hives.iter().find(|(k, _)| *k == kind).map(|(_, h)| h)
    }
}

/// How bad a finding is. `Info` entries are notes, not findings.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    /// RDP cannot work at all.
    Critical,
    /// RDP fails for most clients or most of the time.
    High,
    /// RDP fails in common situations (some clients, after a redeploy, domain logons).
    Medium,
    /// Unusual settings that can break RDP in narrow cases.
    Low,
    /// Worth knowing; not a fault.
    Info,
}

impl Severity {
    pub fn name(self) -> &'static str {
        match self {
            Severity::Critical => "critical",
            Severity::High => "high",
            Severity::Medium => "medium",
            Severity::Low => "low",
            Severity::Info => "info",
        }
    }
}

/// One row of the settings table.
#[derive(Debug, Clone, Serialize)]
pub struct Setting {
    /// The check this setting belongs to.
    pub id: &'static str,
    /// Full local path, e.g. `HKLM\SYSTEM\ControlSet001\Control\Terminal Server`.
    pub path: String,
    pub name: String,
    pub local: J,
    /// The Group Policy counterpart's path, when the setting has one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub policy_path: Option<String>,
    pub policy: J,
    pub effective: J,
    /// "local", "policy", "default" (value absent, Windows default applies),
    /// "missing" (absent and no usable default), "not-evaluated" (hive missing).
    pub source: &'static str,
}

/// A broken setting and how rdprescue would fix it.
#[derive(Debug, Clone, Serialize)]
pub struct Finding {
    /// A catalog check id, or `baseline:NAME` for an audit baseline expectation.
    pub check: Cow<'static, str>,
    pub severity: Severity,
    pub title: &'static str,
    pub message: String,
    /// The fix as text (one line per action, or the manual procedure).
    pub fix: String,
    /// The registry changes `rdprescue fix` applies; empty when the fix is manual.
    pub actions: Vec<Edit>,
    /// Group Policy files that write the bad value again at the next refresh
    /// (filled by `policy::annotate`; omitted from JSON when empty).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub reapplied_by: Vec<crate::policy::Reapply>,
    /// The newest event-log entry that confirms it (filled by
    /// `report::InspectReport::add_evidence`; omitted from JSON when none).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub confirmed_by: Option<crate::evidence::Confirmation>,
}

/// Access to the hives for the checks: control-set resolution and a cache of
/// keys already read.
pub struct Ctx<'a> {
    hives: &'a dyn Hives,
    pub sets: Option<ControlSets>,
    /// `ControlSetNNN` that `{CCS}` stands for.
    pub ccs: String,
    /// Control sets a fix writes to: Current, plus Default when it differs and exists.
    pub fix_sets: Vec<String>,
    cache: RefCell<HashMap<(&'static str, String), Option<Rc<Key>>>>,
    firewall: std::cell::OnceCell<firewall::Firewall>,
    os: std::cell::OnceCell<os::OsInfo>,
}

impl<'a> Ctx<'a> {
    pub fn new(hives: &'a dyn Hives) -> Self {
        let sets = hives.hive(HiveKind::System).filter(|h| h.key("Select").is_ok()).map(control_sets);
        let ccs = sets.as_ref().map_or_else(|| control_set_name(1), |s| s.current_key.clone());
        let mut fix_sets = vec![ccs.clone()];
        if let (Some(s), Some(sys)) = (&sets, hives.hive(HiveKind::System)) {
            if let Some(d) = s.default.map(control_set_name) {
                if d != ccs && sys.key(&d).is_ok() {
                    fix_sets.push(d);
                }
            }
        }
        Ctx { hives, sets, ccs, fix_sets, cache: RefCell::new(HashMap::new()), firewall: std::cell::OnceCell::new(), os: std::cell::OnceCell::new() }
    }

    /// The firewall configuration, parsed once per inspection.
    pub fn firewall(&self) -> &firewall::Firewall {
        self.firewall.get_or_init(|| firewall::Firewall::load(self))
    }

    /// The Windows build / era and domain role, read once per inspection.
    pub fn os(&self) -> &os::OsInfo {
        self.os.get_or_init(|| os::OsInfo::load(self))
    }

    pub fn has(&self, kind: HiveKind) -> bool {
        self.hives.hive(kind).is_some()
    }

    pub fn hive(&self, kind: HiveKind) -> Option<&Hive> {
        self.hives.hive(kind)
    }

    /// Replace `{CCS}` by the current control set.
    pub fn expand(&self, path: &str) -> String {
        path.replace("{CCS}", &self.ccs)
    }

    /// The key at `path` (`{CCS}` allowed) of hive `kind`, if present.
    pub fn key(&self, kind: HiveKind, path: &str) -> Option<Key> {
        self.shared_key(kind, path).map(|k| (*k).clone())
    }

    /// [`key`](Self::key) without copying it: the cached key itself, read
    /// from the hive once per inspection.
    pub fn shared_key(&self, kind: HiveKind, path: &str) -> Option<Rc<Key>> {
        let path = self.expand(path);
        let ck = (kind.name(), path.to_lowercase());
        if let Some(k) = self.cache.borrow().get(&ck) {
            return k.clone();
        }
        let k = self.hives.hive(kind).and_then(|h| h.key(&path).ok()).map(Rc::new);
        self.cache.borrow_mut().insert(ck, k.clone());
        k
    }

    pub fn value(&self, kind: HiveKind, path: &str, name: &str) -> Option<Value> {
        self.shared_key(kind, path)?.values.iter().find(|v| v.name.eq_ignore_ascii_case(name)).cloned()
    }

    pub fn dword(&self, kind: HiveKind, path: &str, name: &str) -> Option<u32> {
        self.value(kind, path, name).and_then(|v| v.dword())
    }

    pub fn string(&self, kind: HiveKind, path: &str, name: &str) -> Option<String> {
        self.value(kind, path, name).filter(|v| matches!(v.kind, 1 | 2 | 6)).map(|v| v.string())
    }

    /// Full path for display: `HKLM\SYSTEM\ControlSet001\...`.
    pub fn full(&self, kind: HiveKind, path: &str) -> String {
        format!("{}\\{}", kind.short_root(), self.expand(path))
    }

    /// Actions writing `name` = `data` under `path` in every control set a fix
    /// targets (a `{CCS}` path), or once (any other path).
    pub fn set_actions(&self, kind: HiveKind, path: &str, name: &str, data: RegData) -> Vec<Edit> {
        self.targets(path).into_iter().map(|key| Edit::set(kind, key, name, data.clone())).collect()
    }

    pub fn delete_value_actions(&self, kind: HiveKind, path: &str, name: &str) -> Vec<Edit> {
        self.targets(path)
            .into_iter()
            .filter(|k| self.hive(kind).and_then(|h| h.key(k).ok()).is_some_and(|k| k.values.iter().any(|v| v.name.eq_ignore_ascii_case(name))))
            .map(|key| Edit::delete_value(kind, key, name))
            .collect()
    }

    fn targets(&self, path: &str) -> Vec<String> {
        if path.contains("{CCS}") {
            self.fix_sets.iter().map(|s| path.replace("{CCS}", s)).collect()
        } else {
            vec![path.to_string()]
        }
    }
}
