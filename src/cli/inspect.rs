//! `rdprescue inspect SOURCE`: why RDP fails, from the disk alone. SOURCE is an
//! image or device (hives found on its Windows and boot volumes), a directory
//! holding hive files (SYSTEM, SOFTWARE, BCD, with their logs), or a single
//! SYSTEM hive file.

use super::outln;
use anyhow::{bail, Context};
use rdprescue::hive::{HiveKind, HiveState};
use rdprescue::machine::{Machine, Origin};
use rdprescue::rdp::eval::Inspection;
use rdprescue::rdp::symptoms::{self, Symptom};
use rdprescue::rdp::{self, show_json, Severity};
use serde_json::{json, Value as J};
use std::path::Path;

/// Hives an inspection reads from an image.
const KINDS: [HiveKind; 3] = [HiveKind::System, HiveKind::Software, HiveKind::Bcd];

/// One hive's line in the report.
struct HiveEntry {
    kind: HiveKind,
    location: String,
    /// Ok(()) when loaded; Err(reason) when absent or unreadable.
    status: Result<(), String>,
}

/// The opened machine and what to say about where its hives came from.
pub struct Loaded {
    pub machine: Machine,
    entries: Vec<HiveEntry>,
    image: J,
}

/// Open an image, a directory of hive files or a hive file, and load the
/// hives an inspection reads.
pub fn load(src: &Path) -> anyhow::Result<Loaded> {
    from_machine(Machine::open(src)?)
}

/// The hives an inspection reads, loaded from `machine`.
pub fn from_machine(machine: Machine) -> anyhow::Result<Loaded> {
    let src = machine.path().to_path_buf();
    let image_origin = machine.origin() == Origin::Image;
    let mut entries = Vec::new();
    for kind in KINDS {
        let location = machine.hive_location(kind).map(|l| l.to_string()).unwrap_or_default();
        let status = match machine.hive_result(kind) {
            Ok(_) => Ok(()),
            Err(e) if kind == HiveKind::System && image_origin => return Err(e.duplicate()).context("cannot read the SYSTEM hive"),
            Err(_) if kind == HiveKind::System => {
                bail!("no SYSTEM hive in {} (expected a file named SYSTEM, or a hive holding a Select key)", src.display())
            }
            Err(e) if image_origin => Err(e.to_string()),
            Err(rdprescue::Error::NotFound { .. }) => Err("not found".into()),
            Err(e) => Err(e.to_string()),
        };
        entries.push(HiveEntry { kind, location, status });
    }
    let image = match machine.survey() {
        Some(survey) => {
            let win = survey.windows_volumes.first().and_then(|w| survey.volumes.iter().find(|v| v.partition.index == *w));
            json!({
                "path": src.display().to_string(),
                "kind": "image",
                "container": survey.container,
                "partition_table": survey.partition_table.kind,
                "windows_volume": survey.windows_volumes.first(),
                "windows_volume_state": win.and_then(|v| v.state.clone()),
                "bcd": survey.bcd,
            })
        }
        None => json!({"path": src.display().to_string(), "kind": machine.origin().name()}),
    };
    Ok(Loaded { machine, entries, image })
}

impl Loaded {
    pub fn hives(&self) -> &Machine {
        &self.machine
    }
    /// The `image` object of the JSON report.
    pub fn image_json(&self) -> &J {
        &self.image
    }
}

pub fn hives_json(l: &Loaded) -> J {
    J::Array(
        l.entries
            .iter()
            .map(|e| {
                let h = l.machine.hive(e.kind);
                json!({
                    "name": short(e.kind),
                    "location": e.location,
                    "state": h.map_or("missing", |h| state_name(h.report.state)),
                    "error": e.status.as_ref().err(),
                    "report": h.map(|h| &h.report),
                })
            })
            .collect(),
    )
}

fn short(k: HiveKind) -> &'static str {
    if k == HiveKind::Bcd {
        "BCD"
    } else {
        k.name()
    }
}

/// `leaf\name` of a setting, for the VALUE column.
fn value_label(path: &str, name: &str) -> String {
    let leaf = path.rsplit('\\').next().unwrap_or_default();
    format!("{leaf}\\{name}")
}

fn state_name(s: HiveState) -> &'static str {
    match s {
        HiveState::Clean => "clean",
        HiveState::Recovered => "recovered",
        HiveState::DirtyNotRecovered => "dirty-not-recovered",
    }
}

fn symptom_json(text: &str, matches: &[&Symptom], ins: &Inspection) -> J {
    json!({
        "input": text,
        "matches": matches.iter().map(|s| json!({
            "id": s.id,
            "message": s.message,
            "checks": s.checks.iter().map(|c| json!({"check": c, "found": ins.findings.iter().any(|f| f.check == *c)})).collect::<Vec<_>>(),
            "outside": s.outside,
        })).collect::<Vec<_>>(),
    })
}

pub fn run(src: &Path, json_out: bool, symptom: Option<&str>) -> anyhow::Result<i32> {
    let loaded = load(src)?;
    let ins = rdp::inspect(&loaded.machine);
    let matches = symptom.map(symptoms::match_text).unwrap_or_default();
    if json_out {
        let mut doc = json!({
            "image": loaded.image,
            "windows": ins.windows,
            "hives": hives_json(&loaded),
            "settings": ins.settings,
            "findings": ins.findings,
            "notes": ins.notes,
            "not_evaluated": ins.not_evaluated,
        });
        if let Some(t) = symptom {
            doc["symptom"] = symptom_json(t, &matches, &ins);
        }
        let mut s = serde_json::to_string_pretty(&doc)?;
        s.push('\n');
        super::emit(s.as_bytes())?;
    } else {
        super::emit(text(src, &loaded, &ins, symptom, &matches).as_bytes())?;
    }
    Ok(if ins.findings.is_empty() { 0 } else { 1 })
}

fn cell(v: &J, width: usize) -> String {
    let s = match v {
        J::Null => "-".to_string(),
        J::String(s) if s.is_empty() => "\"\"".to_string(),
        J::String(s) => s.clone(),
        v => show_json(v),
    };
    if s.chars().count() > width {
        format!("{}…", s.chars().take(width.saturating_sub(1)).collect::<String>())
    } else {
        s
    }
}

fn text(src: &Path, l: &Loaded, ins: &Inspection, symptom: Option<&str>, matches: &[&Symptom]) -> String {
    let mut o = String::new();
    let w = &ins.windows;
    outln!(o, "Source:   {}", src.display());
    if let Some(c) = l.image.get("container") {
        let size = c.get("virtual_size").and_then(J::as_u64).map(super::fmt::size).unwrap_or_default();
        outln!(o, "Image:    {} {}, {} partition table", c.get("format").map(|f| cell(f, 40)).unwrap_or_default(), size, cell(&l.image["partition_table"], 10));
        if let Some(st) = l.image.get("windows_volume_state").filter(|s| !s.is_null()) {
            let mut flags = Vec::new();
            if st["dirty"] == J::Bool(true) {
                flags.push("dirty flag set");
            }
            if st["hibernated"] == J::Bool(true) {
                flags.push("hibernated (Fast Startup or hibernate): Windows may resume from memory and overwrite registry changes");
            }
            if st["logfile_clean"] == J::Bool(false) {
                flags.push("$LogFile not clean (unclean shutdown)");
            }
            if !flags.is_empty() {
                outln!(o, "Volume:   Windows volume {}", flags.join("; "));
            }
        }
    }
    let os = [w.product_name.clone(), w.display_version.clone().map(|v| format!("version {v}")), w.build.clone().map(|b| format!("build {b}")), w.installation_type.clone()]
        .into_iter()
        .flatten()
        .collect::<Vec<_>>()
        .join(", ");
    outln!(o, "Windows:  {}", if os.is_empty() { "unknown (no SOFTWARE hive)".into() } else { os });
    if let Some(n) = &w.computer_name {
        outln!(o, "Computer: {n}{}", w.domain.as_ref().map(|d| format!(" (domain {d})")).unwrap_or_default());
    }
    if let Some(s) = &w.control_sets {
        let opt = |x: Option<u32>| x.map_or("-".into(), |v| v.to_string());
        outln!(o, "Control set: {} (Current {}, Default {}, LastKnownGood {}, Failed {})", s.current_key, s.current, opt(s.default), opt(s.last_known_good), opt(s.failed));
        if let Some(warn) = &s.warning {
            outln!(o, "  warning: {warn}");
        }
    }
    outln!(o, "Hives:");
    for e in &l.entries {
        let h = l.machine.hive(e.kind);
        let state = match (h, &e.status) {
            (Some(h), _) => {
                let r = &h.report;
                match r.state {
                    HiveState::Clean => "clean".to_string(),
                    HiveState::Recovered => {
                        let logs = r
                            .applied
                            .iter()
                            .map(|a| match (a.first_sequence, a.last_sequence) {
                                (Some(f), Some(t)) => format!("{} {f}..{t}", a.log),
                                _ => format!("{} ({} pages)", a.log, a.entries),
                            })
                            .collect::<Vec<_>>()
                            .join(", ");
                        format!("dirty, recovered in memory from {logs}")
                    }
                    HiveState::DirtyNotRecovered => "DIRTY and no usable log: values may be stale".to_string(),
                }
            }
            (None, Err(why)) => format!("missing ({why})"),
            (None, Ok(())) => "missing".into(),
        };
        let loc = if e.location.is_empty() { String::new() } else { format!("  [{}]", e.location) };
        outln!(o, "  {:<9} {state}{loc}", short(e.kind));
    }
    outln!(o);
    outln!(o, "Settings:");
    outln!(o, "  {:<26} {:<40} {:<14} {:<14} EFFECTIVE (SOURCE)", "CHECK", "VALUE", "LOCAL", "POLICY");
    for s in &ins.settings {
        let eff = format!("{} ({})", cell(&s.effective, 24), s.source);
        outln!(o, "  {:<26} {:<40} {:<14} {:<14} {eff}", s.id, cell(&J::from(value_label(&s.path, &s.name)), 40), cell(&s.local, 14), cell(&s.policy, 14));
    }
    outln!(o);
    if ins.findings.is_empty() {
        outln!(o, "Findings: none. Nothing on this disk blocks RDP.");
    } else {
        let count = |sev: Severity| ins.findings.iter().filter(|f| f.severity == sev).count();
        outln!(o, "Findings: {} ({} critical, {} high, {} medium, {} low)", ins.findings.len(), count(Severity::Critical), count(Severity::High), count(Severity::Medium), count(Severity::Low));
        for f in &ins.findings {
            outln!(o, "  [{}] {}: {}", f.severity.name(), f.check, f.message);
            outln!(o, "      fix: {}", f.fix);
        }
    }
    if !ins.notes.is_empty() {
        outln!(o, "Notes:");
        for n in &ins.notes {
            outln!(o, "  {}: {}", n.check, n.message);
        }
    }
    if !ins.not_evaluated.is_empty() {
        let ids: Vec<String> = ins.not_evaluated.iter().map(|n| format!("{} ({})", n.check, n.reason)).collect();
        outln!(o, "Not evaluated: {}", ids.join(", "));
    }
    if let Some(t) = symptom {
        outln!(o);
        if matches.is_empty() {
            outln!(o, "Symptom \"{t}\": no known RDP error message matches. Known: {}", symptoms::SYMPTOMS.iter().map(|s| s.id).collect::<Vec<_>>().join(", "));
        }
        for s in matches {
            outln!(o, "Symptom: {}", s.message);
            let found: Vec<&str> = s.checks.iter().copied().filter(|c| ins.findings.iter().any(|f| f.check == *c)).collect();
            if found.is_empty() {
                outln!(o, "  No check that can cause it fired on this disk ({} checked): the cause is most likely outside the disk.", s.checks.len());
            } else {
                outln!(o, "  Found on this disk: {}", found.join(", "));
            }
            outln!(o, "  Checks that can cause it: {}", s.checks.join(", "));
            outln!(o, "  Outside the disk:");
            for x in s.outside {
                outln!(o, "    - {x}");
            }
        }
    }
    o
}
