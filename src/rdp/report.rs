//! Typed reports: the documents `inspect --json` and `audit` print, as serde
//! structs whose field order is the documented JSON schema (README,
//! "JSON (`--json`), stable" and the audit record). The renderers (JSON here
//! by serde; text, table and CSV in the CLI) all read these types, never a
//! JSON document built elsewhere.
//!
//! What the checks cannot know — the image, the hives and where they came
//! from — is filled in by the caller as plain [`ImageFacts`] and
//! [`HiveStatus`] values.

use super::eval::{Inspection, NotEvaluated, WindowsInfo};
use super::symptoms::{self, SYMPTOMS};
use super::{Finding, Hives, Setting, Severity};
use crate::fs::FsState;
use crate::hive::kind::HiveKind;
use crate::hive::tree::{filetime_iso, Hive};
use crate::hive::{HiveReport, HiveState};
use crate::image::ContainerInfo;
use crate::locate::BcdLocation;
use crate::machine::{Machine, Origin};
use crate::volume::TableKind;
use serde::ser::{SerializeMap, Serializer};
use serde::Serialize;
use serde_json::Value as J;
use std::borrow::Cow;

/// The `image` object: what was opened. A disk image (`kind` "image") has
/// all the disk fields, `null` where unknown; a hive directory or a hive file
/// has only `path` and `kind`.
#[derive(Debug, Clone)]
pub struct ImageFacts {
    pub path: String,
    /// "image", "mounted-volume", "directory" or "hive-file".
    pub kind: &'static str,
    /// The container (raw, VHD, VHDX); `None` for hive directories and files.
    pub container: Option<ContainerInfo>,
    pub partition_table: Option<TableKind>,
    /// Partition index of the Windows volume.
    pub windows_volume: Option<u32>,
    /// Dirty / hibernated / `$LogFile` state of the Windows volume.
    pub windows_volume_state: Option<FsState>,
    /// Where the BCD store was found.
    pub bcd: Option<BcdLocation>,
}

impl ImageFacts {
    /// A hive directory or a single hive file (`kind` "directory" / "hive-file").
    pub fn files(path: String, kind: &'static str) -> ImageFacts {
        ImageFacts { path, kind, container: None, partition_table: None, windows_volume: None, windows_volume_state: None, bcd: None }
    }

    /// What `machine` is: a disk image with its survey, or hive files.
    pub fn of(machine: &Machine) -> ImageFacts {
        let path = machine.path().display().to_string();
        let Some(survey) = machine.survey() else { return ImageFacts::files(path, machine.origin().name()) };
        let win = survey.windows_volumes.first().and_then(|w| survey.volumes.iter().find(|v| v.partition.index == *w));
        ImageFacts {
            path,
            kind: machine.origin().name(),
            container: Some(survey.container.clone()),
            partition_table: Some(survey.partition_table.kind),
            windows_volume: survey.windows_volumes.first().copied(),
            windows_volume_state: win.and_then(|v| v.state.clone()),
            bcd: survey.bcd.clone(),
        }
    }

    /// Whether this is a disk image (the disk fields are reported).
    pub fn is_disk(&self) -> bool {
        self.container.is_some()
    }
}

impl Serialize for ImageFacts {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut m = s.serialize_map(None)?;
        m.serialize_entry("path", &self.path)?;
        m.serialize_entry("kind", self.kind)?;
        if self.is_disk() {
            m.serialize_entry("container", &self.container)?;
            m.serialize_entry("partition_table", &self.partition_table)?;
            m.serialize_entry("windows_volume", &self.windows_volume)?;
            m.serialize_entry("windows_volume_state", &self.windows_volume_state)?;
            m.serialize_entry("bcd", &self.bcd)?;
        }
        m.end()
    }
}

/// One hive's entry: where it was looked for and what loading it did.
#[derive(Debug, Clone, Serialize)]
pub struct HiveStatus {
    /// SYSTEM, SOFTWARE, BCD.
    pub name: &'static str,
    /// `partition N: PATH` on an image, the file path otherwise; empty when not found.
    pub location: String,
    /// "clean", "recovered", "dirty-not-recovered" or "missing".
    pub state: &'static str,
    /// Why the hive is missing, when it was found but could not be read (or "not found").
    pub error: Option<String>,
    /// The loader's report (logs replayed, sequence numbers), when loaded.
    pub report: Option<HiveReport>,
}

impl HiveStatus {
    /// The entry of hive `kind`: `hive` when it loaded, else `error`.
    pub fn new(kind: HiveKind, location: String, hive: Option<&Hive>, error: Option<String>) -> HiveStatus {
        HiveStatus { name: kind.short(), location, state: hive.map_or("missing", |h| state_name(h.report.state)), error, report: hive.map(|h| h.report.clone()) }
    }
}

/// A machine opened for inspection: what it is, and the hives an inspection
/// reads, loaded, with where each came from.
pub struct Inspected {
    pub machine: Machine,
    pub image: ImageFacts,
    pub hives: Vec<HiveStatus>,
}

impl Inspected {
    /// Open an image, a directory of hive files or a hive file (SYSTEM required).
    pub fn open(path: &std::path::Path) -> crate::Result<Inspected> {
        Inspected::of(Machine::open(path)?)
    }

    /// Load the inspected hives of an opened machine.
    pub fn of(machine: Machine) -> crate::Result<Inspected> {
        let hives = hive_statuses(&machine).map_err(|e| e.context("cannot read the SYSTEM hive"))?;
        Ok(Inspected { image: ImageFacts::of(&machine), hives, machine })
    }

    /// Run the checks, and say which Group Policy files re-apply a finding's
    /// bad value (`reapplied_by`, see [`crate::policy`]).
    pub fn inspect(&self) -> Inspection {
        let mut ins = super::inspect(&self.machine);
        crate::policy::annotate(&self.machine, &mut ins);
        ins
    }

    /// The event-log evidence of this machine (see [`crate::evidence`]):
    /// the logs of its Windows volume, or a `no-volume` status for hive
    /// files and directories.
    pub fn evidence(&self, opts: &crate::evidence::Options) -> crate::evidence::Evidence {
        match self.machine.find_file(None, crate::evidence::LOGS_DIR) {
            Ok((_, fs)) => crate::evidence::collect(fs, opts),
            Err(_) if self.machine.survey().is_none() && self.machine.host_volume().is_none() => crate::evidence::Evidence::none("no-volume"),
            Err(_) => crate::evidence::Evidence::none("no-logs"),
        }
    }

    /// The full report of an inspection of these hives.
    pub fn report(&self, ins: Inspection, symptom: Option<&str>) -> InspectReport {
        let mut r = InspectReport::new(self.image.clone(), self.hives.clone(), ins, symptom);
        r.stamp(&self.machine);
        r
    }
}

/// Hives an inspection reads (SAM and SECURITY last: the account and
/// logon-right checks read them).
pub const INSPECTED: [HiveKind; 5] = [HiveKind::System, HiveKind::Software, HiveKind::Bcd, HiveKind::Sam, HiveKind::Security];

/// Load the hives an inspection reads from `machine` and say where each came
/// from. SYSTEM is required: without it there is nothing to inspect.
pub fn hive_statuses(machine: &Machine) -> crate::Result<Vec<HiveStatus>> {
    let image = machine.origin() == Origin::Image;
    // A mounted volume says where each hive should be, and why BCD is out of reach.
    let volume = machine.origin() == Origin::MountedVolume;
    let mut out = Vec::new();
    for kind in INSPECTED {
        let location = machine.hive_location(kind).map(|l| l.to_string()).unwrap_or_default();
        let error = match machine.hive_result(kind) {
            Ok(_) => None,
            Err(e) if kind == HiveKind::System && (image || volume) => return Err(e.duplicate()),
            Err(_) if kind == HiveKind::System => {
                return Err(crate::Error::NotFound {
                    layer: crate::Layer::Hive,
                    path: format!("no SYSTEM hive in {} (expected a file named SYSTEM, or a hive holding a Select key)", machine.path().display()),
                })
            }
            Err(crate::Error::NotFound { .. }) if !image && !volume => Some("not found".to_string()),
            Err(e) => Some(e.to_string()),
        };
        out.push(HiveStatus::new(kind, location, machine.hive(kind), error));
    }
    Ok(out)
}

/// The report name of a load state.
pub fn state_name(s: HiveState) -> &'static str {
    match s {
        HiveState::Clean => "clean",
        HiveState::Recovered => "recovered",
        HiveState::DirtyNotRecovered => "dirty-not-recovered",
    }
}

/// `--symptom`: the known client messages the text matched.
#[derive(Debug, Clone, Serialize)]
pub struct SymptomReport {
    pub input: String,
    pub matches: Vec<SymptomMatch>,
}

#[derive(Debug, Clone, Serialize)]
pub struct SymptomMatch {
    pub id: &'static str,
    pub message: &'static str,
    /// The checks that can cause it, and whether each fired on this disk.
    pub checks: Vec<CheckFound>,
    /// Causes no disk can show.
    pub outside: &'static [&'static str],
}

#[derive(Debug, Clone, Serialize)]
pub struct CheckFound {
    pub check: &'static str,
    pub found: bool,
}

impl SymptomReport {
    pub fn new(input: &str, findings: &[Finding]) -> SymptomReport {
        let matches = symptoms::match_text(input)
            .into_iter()
            .map(|s| SymptomMatch {
                id: s.id,
                message: s.message,
                checks: s.checks.iter().map(|&c| CheckFound { check: c, found: findings.iter().any(|f| f.check == c) }).collect(),
                outside: s.outside,
            })
            .collect();
        SymptomReport { input: input.to_string(), matches }
    }

    /// Ids of every known symptom (for "no match" messages).
    pub fn known() -> Vec<&'static str> {
        SYMPTOMS.iter().map(|s| s.id).collect()
    }
}

/// Everything `inspect` reports about one source.
#[derive(Debug, Clone, Serialize)]
pub struct InspectReport {
    pub image: ImageFacts,
    pub windows: WindowsInfo,
    pub hives: Vec<HiveStatus>,
    pub settings: Vec<Dated<Setting>>,
    /// Severity critical..low, most severe first.
    pub findings: Vec<Dated<Finding>>,
    /// Severity info: not faults.
    pub notes: Vec<Dated<Finding>>,
    pub not_evaluated: Vec<NotEvaluated>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub symptom: Option<SymptomReport>,
    /// What the guest's event logs show in the window, newest first
    /// ([`InspectReport::add_evidence`]).
    pub evidence: Vec<crate::evidence::Event>,
    /// How the event logs were read: window, per-log status, counts.
    pub event_logs: crate::evidence::Evidence,
}

impl InspectReport {
    pub fn new(image: ImageFacts, hives: Vec<HiveStatus>, ins: Inspection, symptom: Option<&str>) -> InspectReport {
        let symptom = symptom.map(|t| SymptomReport::new(t, &ins.findings));
        InspectReport {
            image,
            windows: ins.windows,
            hives,
            settings: undated(ins.settings),
            findings: undated(ins.findings),
            notes: undated(ins.notes),
            not_evaluated: ins.not_evaluated,
            symptom,
            evidence: Vec::new(),
            event_logs: crate::evidence::Evidence::none("skipped"),
        }
    }

    /// Join the event-log evidence with the findings: each finding an event
    /// confirms gets `confirmed_by` (the newest such event), each event the
    /// checks it confirms, and a failure that no check that fired explains
    /// is `unexplained`; a symptom's checks that have events come first.
    pub fn add_evidence(&mut self, mut ev: crate::evidence::Evidence) {
        use crate::evidence::{links, Confirmation};
        let mut events = std::mem::take(&mut ev.events);
        let fired: std::collections::BTreeSet<String> = self.findings.iter().map(|f| f.check.to_string()).collect();
        links::explain(&mut events, &|c| fired.contains(c));
        for f in &mut self.findings {
            f.item.confirmed_by = links::confirming(&f.check, &events).map(Confirmation::of);
        }
        if let Some(s) = &mut self.symptom {
            for m in &mut s.matches {
                // Stable: checks with events first, in their order.
                m.checks.sort_by_key(|c| links::confirming(c.check, &events).is_none());
            }
        }
        self.evidence = events;
        self.event_logs = ev;
    }

    /// The report as pretty JSON with a final newline (`inspect --json`).
    pub fn to_json(&self) -> serde_json::Result<String> {
        let mut s = serde_json::to_string_pretty(self)?;
        s.push('\n');
        Ok(s)
    }
}

/// An image's verdict in an audit.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum AuditStatus {
    Pass,
    Fail,
    /// The image could not be read.
    Error,
}

impl AuditStatus {
    pub fn name(self) -> &'static str {
        match self {
            AuditStatus::Pass => "pass",
            AuditStatus::Fail => "fail",
            AuditStatus::Error => "error",
        }
    }
}

/// One image's audit record. An unreadable image has only `image`,
/// `status` ("error"), `error` and `size`.
#[derive(Debug, Clone, Serialize)]
pub struct AuditRecord {
    pub image: String,
    pub status: AuditStatus,
    pub error: Option<String>,
    /// Size of the image file, when it could be read.
    pub size: Option<u64>,
    #[serde(flatten)]
    pub result: Option<AuditResult>,
}

/// What an audit found on a readable image.
#[derive(Debug, Clone, Serialize)]
pub struct AuditResult {
    /// Container format (`vhdx-dynamic`, ...), or the source kind for hive files/directories.
    pub format: &'static str,
    pub virtual_size: Option<u64>,
    pub windows: WindowsInfo,
    /// `ControlSetNNN` the checks read.
    pub control_set: Option<String>,
    pub hives: Vec<AuditHive>,
    pub settings: Vec<AuditSetting>,
    pub findings: Vec<AuditFinding>,
    /// Findings dropped by the baseline's `ignore`.
    pub ignored: usize,
    pub not_evaluated: Vec<NotEvaluated>,
}

#[derive(Debug, Clone, Serialize)]
pub struct AuditHive {
    pub name: &'static str,
    pub state: &'static str,
}

#[derive(Debug, Clone, Serialize)]
pub struct AuditSetting {
    pub id: &'static str,
    pub path: String,
    pub name: String,
    pub effective: J,
    pub source: &'static str,
}

#[derive(Debug, Clone, Serialize)]
pub struct AuditFinding {
    pub check: Cow<'static, str>,
    pub severity: Severity,
    pub message: String,
    pub fix: String,
}

impl AuditRecord {
    /// The record of an inspected image (`report` after the baseline was applied).
    pub fn new(image: String, size: Option<u64>, status: AuditStatus, ignored: usize, report: InspectReport) -> AuditRecord {
        let r = report;
        let result = AuditResult {
            format: r.image.container.as_ref().map_or(r.image.kind, |c| c.format.name()),
            virtual_size: r.image.container.as_ref().map(|c| c.virtual_size),
            control_set: r.windows.control_sets.as_ref().map(|c| c.current_key.clone()),
            windows: r.windows,
            hives: r.hives.iter().map(|h| AuditHive { name: h.name, state: h.state }).collect(),
            settings: r.settings.into_iter().map(|s| s.item).map(|s| AuditSetting { id: s.id, path: s.path, name: s.name, effective: s.effective, source: s.source }).collect(),
            findings: r.findings.into_iter().map(|f| f.item).map(|f| AuditFinding { check: f.check, severity: f.severity, message: f.message, fix: f.fix }).collect(),
            ignored,
            not_evaluated: r.not_evaluated,
        };
        AuditRecord { image, status, error: None, size, result: Some(result) }
    }

    /// The record of an image that could not be read.
    pub fn error(image: String, size: Option<u64>, error: String) -> AuditRecord {
        AuditRecord { image, status: AuditStatus::Error, error: Some(error), size, result: None }
    }

    /// The findings (none for an unreadable image).
    pub fn findings(&self) -> &[AuditFinding] {
        self.result.as_ref().map_or(&[], |r| &r.findings)
    }
}

/// The end of an audit: counts, and how many images each check fired on.
#[derive(Debug, Clone, Serialize)]
pub struct AuditSummary {
    pub images: usize,
    pub pass: usize,
    pub fail: usize,
    pub error: usize,
    pub jobs: usize,
    /// Wall time, rounded to milliseconds.
    pub seconds: f64,
    /// Most frequent first, then most severe, then by id.
    pub checks: Vec<CheckCount>,
}

#[derive(Debug, Clone, Serialize)]
pub struct CheckCount {
    pub check: String,
    pub images: usize,
    pub severity: Severity,
}

/// `audit --format json`: every record and the summary.
#[derive(Debug, Clone, Serialize)]
pub struct AuditReport<'a> {
    pub records: &'a [AuditRecord],
    pub summary: &'a AuditSummary,
}

// ---- Key last-write times on rows and findings (issue 15, "since when") ----

/// A report row with the last-write time of the registry key it was read
/// from: serialized as the row's own fields followed by `last_write` (RFC 3339
/// UTC, whole seconds; `null` when the key is absent or the row is not read
/// from a registry key). Reads as the row itself (`Deref`).
#[derive(Debug, Clone, Serialize)]
pub struct Dated<T> {
    #[serde(flatten)]
    pub item: T,
    pub last_write: Option<String>,
}

impl<T> std::ops::Deref for Dated<T> {
    type Target = T;
    fn deref(&self) -> &T {
        &self.item
    }
}

fn undated<T>(items: Vec<T>) -> Vec<Dated<T>> {
    items.into_iter().map(|item| Dated { item, last_write: None }).collect()
}

/// The hive and hive-relative key of a path as reports print it
/// (`HKLM\SYSTEM\ControlSet001\...`, `BCD\Objects\...`); `None` for anything
/// else (a file such as `\Windows\System32\tspkg.dll`, "Windows volume").
pub fn split_report_path(path: &str) -> Option<(HiveKind, &str)> {
    HiveKind::ALL.into_iter().find_map(|kind| {
        let root = kind.short_root();
        let head = path.get(..root.len()).filter(|h| h.eq_ignore_ascii_case(&root))?;
        match &path[head.len()..] {
            "" => Some((kind, "")),
            rest => rest.strip_prefix('\\').map(|r| (kind, r)),
        }
    })
}

/// The last-write FILETIME of the key at report path `path`, from the nk
/// cell of the loaded (log-recovered) hive; `None` when the hive or the key
/// is absent, or `path` is not a registry path.
pub fn key_time(hives: &dyn Hives, path: &str) -> Option<u64> {
    let (kind, key) = split_report_path(path)?;
    hives.hive(kind)?.last_write(key)
}

/// The key a settings row's effective value came from: the policy key when
/// the policy decides (`source` "policy"), else the row's own key. SAM rows
/// name the user's (or the account domain's) key, whose time is when its
/// `F`/`V` record was last written; SECURITY rows the account's `ActSysAc`
/// key; rows that are not registry values (a file version, free space) have
/// none.
pub fn setting_time(hives: &dyn Hives, s: &Setting) -> Option<u64> {
    let path = if s.source == "policy" { s.policy_path.as_deref().unwrap_or(&s.path) } else { &s.path };
    key_time(hives, path)
}

/// A finding's time: the newest last-write among the existing keys its fix
/// writes (its `actions`: the keys holding the bad values); for a finding
/// without actions, the newest among the rows of its check.
pub fn finding_time(hives: &dyn Hives, f: &Finding, settings: &[Dated<Setting>]) -> Option<u64> {
    let from_actions = f.actions.iter().filter_map(|a| hives.hive(a.hive).and_then(|h| h.last_write(&a.key))).max();
    from_actions.or_else(|| settings.iter().filter(|s| s.id == f.check).filter_map(|s| setting_time(hives, s)).max())
}

impl InspectReport {
    /// Fill `last_write` of every settings row, finding and note from `hives`
    /// (the hives the report was made from).
    pub fn stamp(&mut self, hives: &dyn Hives) {
        for s in &mut self.settings {
            s.last_write = setting_time(hives, &s.item).and_then(filetime_iso);
        }
        let settings = &self.settings;
        for f in self.findings.iter_mut().chain(self.notes.iter_mut()) {
            f.last_write = finding_time(hives, &f.item, settings).and_then(filetime_iso);
        }
    }

    /// Findings newest key last-write first (RFC 3339 UTC strings sort as
    /// times); findings without a time last; ties keep their order.
    pub fn sort_findings_by_last_write(&mut self) {
        self.findings.sort_by(|a, b| match (&a.last_write, &b.last_write) {
            (Some(x), Some(y)) => y.cmp(x),
            (Some(_), None) => std::cmp::Ordering::Less,
            (None, Some(_)) => std::cmp::Ordering::Greater,
            (None, None) => std::cmp::Ordering::Equal,
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn image_facts_keep_disk_fields_for_images_only() {
        let f = ImageFacts::files("d".into(), "directory");
        assert_eq!(serde_json::to_string(&f).unwrap(), r#"{"path":"d","kind":"directory"}"#);
    }

    #[test]
    fn error_records_have_four_fields() {
        let r = AuditRecord::error("x.vhd".into(), Some(3), "image/vhd at offset 0x0: bad".into());
        assert_eq!(serde_json::to_string(&r).unwrap(), r#"{"image":"x.vhd","status":"error","error":"image/vhd at offset 0x0: bad","size":3}"#);
    }
}
