//! `rdprescue inspect SOURCE`: why RDP fails, from the disk alone. SOURCE is an
//! image or device (hives found on its Windows and boot volumes), a directory
//! holding hive files (SYSTEM, SOFTWARE, BCD, with their logs), or a single
//! SYSTEM hive file.

use anyhow::{bail, Context};
use rdprescue::hive::source::{self, HiveKind};
use rdprescue::hive::tree::Hive;
use rdprescue::image;
use rdprescue::rdp::report::{HiveStatus, ImageFacts, InspectReport};
use rdprescue::rdp::{self, HiveSet};
use std::path::Path;

/// Hives an inspection reads from an image.
const KINDS: [HiveKind; 3] = [HiveKind::System, HiveKind::Software, HiveKind::Bcd];

/// One hive's line in the report.
struct HiveEntry {
    kind: HiveKind,
    location: String,
    /// Ok(()) when loaded into the set; Err(reason) when absent or unreadable.
    status: Result<(), String>,
}

/// The loaded hives and what to say about where they came from.
pub struct Loaded {
    set: HiveSet,
    entries: Vec<HiveEntry>,
    image: ImageFacts,
}

/// Load the hives of an image, a directory or a hive file.
pub fn load(src: &Path) -> anyhow::Result<Loaded> {
    let meta = std::fs::metadata(src).with_context(|| format!("cannot open {}", src.display()))?;
    if meta.is_dir() {
        return load_dir(src);
    }
    if source::is_hive_file(src) {
        return load_files(src, &[src.to_path_buf()], "hive-file");
    }
    let img = image::open(src)?;
    let (survey, found) = source::load_machine(&img, &KINDS)?;
    let mut set = HiveSet::default();
    let mut entries = Vec::new();
    for f in found {
        let location = match f.partition {
            Some(p) => format!("partition {p}: {}", f.path),
            None => String::new(),
        };
        let status = match f.hive {
            Ok(h) => {
                set.hives.push((f.kind, h));
                Ok(())
            }
            Err(e) if f.kind == HiveKind::System => return Err(e).context("cannot read the SYSTEM hive"),
            Err(e) => Err(e.to_string()),
        };
        entries.push(HiveEntry { kind: f.kind, location, status });
    }
    let win = survey.windows_volumes.first().and_then(|w| survey.volumes.iter().find(|v| v.partition.index == *w));
    let image = ImageFacts {
        path: src.display().to_string(),
        kind: "image",
        container: Some(survey.container),
        partition_table: Some(survey.partition_table.kind),
        windows_volume: survey.windows_volumes.first().copied(),
        windows_volume_state: win.and_then(|v| v.state.clone()),
        bcd: survey.bcd,
    };
    Ok(Loaded { set, entries, image })
}

fn load_dir(dir: &Path) -> anyhow::Result<Loaded> {
    let mut files: Vec<_> = std::fs::read_dir(dir)
        .with_context(|| format!("cannot read directory {}", dir.display()))?
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.is_file() && !p.extension().is_some_and(|e| e.to_string_lossy().to_uppercase().starts_with("LOG")) && source::is_hive_file(p))
        .collect();
    files.sort();
    load_files(dir, &files, "directory")
}

fn load_files(src: &Path, files: &[std::path::PathBuf], kind: &'static str) -> anyhow::Result<Loaded> {
    let mut set = HiveSet::default();
    let mut entries = Vec::new();
    for f in files {
        let hive: Hive = source::load_file(f)?;
        let name = f.file_name().map(|n| n.to_string_lossy().to_string()).unwrap_or_default();
        let Some(k) = source::guess_kind(&name, &hive) else { continue };
        if set.hives.iter().any(|(have, _)| *have == k) || !KINDS.contains(&k) {
            continue;
        }
        entries.push(HiveEntry { kind: k, location: f.display().to_string(), status: Ok(()) });
        set.hives.push((k, hive));
    }
    if !set.hives.iter().any(|(k, _)| *k == HiveKind::System) {
        bail!("no SYSTEM hive in {} (expected a file named SYSTEM, or a hive holding a Select key)", src.display());
    }
    for k in KINDS {
        if !entries.iter().any(|e| e.kind == k) {
            entries.push(HiveEntry { kind: k, location: String::new(), status: Err("not found".into()) });
        }
    }
    entries.sort_by_key(|e| KINDS.iter().position(|k| *k == e.kind));
    Ok(Loaded { set, entries, image: ImageFacts::files(src.display().to_string(), kind) })
}

impl Loaded {
    pub fn hives(&self) -> &HiveSet {
        &self.set
    }
    /// What was opened (the `image` object of the report).
    pub fn image(&self) -> &ImageFacts {
        &self.image
    }
    /// Each hive's entry in the report, in report order.
    pub fn hive_statuses(&self) -> Vec<HiveStatus> {
        self.entries.iter().map(|e| HiveStatus::new(e.kind, e.location.clone(), rdp::Hives::hive(&self.set, e.kind), e.status.clone().err())).collect()
    }
    /// The full report of these hives' inspection.
    pub fn report(&self, ins: rdp::eval::Inspection, symptom: Option<&str>) -> InspectReport {
        InspectReport::new(self.image.clone(), self.hive_statuses(), ins, symptom)
    }
}

pub fn run(src: &Path, json_out: bool, symptom: Option<&str>) -> anyhow::Result<i32> {
    let loaded = load(src)?;
    let report = loaded.report(rdp::inspect(&loaded.set), symptom);
    let out = if json_out { report.to_json()? } else { super::render::inspect_text(src, &report) };
    super::emit(out.as_bytes())?;
    Ok(if report.findings.is_empty() { 0 } else { 1 })
}
