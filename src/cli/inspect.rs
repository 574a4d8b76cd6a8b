//! `rdprescue inspect SOURCE`: why RDP fails, from the disk alone. SOURCE is an
//! image or device (hives found on its Windows and boot volumes), a directory
//! holding hive files (SYSTEM, SOFTWARE, BCD, with their logs), or a single
//! SYSTEM hive file.

use anyhow::Context;
use rdprescue::machine::Machine;
use rdprescue::rdp::report::{self, HiveStatus, ImageFacts, InspectReport};
use rdprescue::rdp;
use std::path::Path;

/// The opened machine, what was opened and where its hives came from.
pub struct Loaded {
    pub machine: Machine,
    image: ImageFacts,
    hives: Vec<HiveStatus>,
}

/// Open an image, a directory of hive files or a hive file, and load the
/// hives an inspection reads (SYSTEM is required).
pub fn load(src: &Path) -> anyhow::Result<Loaded> {
    let machine = Machine::open(src)?;
    let hives = report::hive_statuses(&machine).context("cannot read the SYSTEM hive")?;
    Ok(Loaded { image: ImageFacts::of(&machine), hives, machine })
}

impl Loaded {
    pub fn hives(&self) -> &Machine {
        &self.machine
    }
    /// The full report of these hives' inspection.
    pub fn report(&self, ins: rdp::eval::Inspection, symptom: Option<&str>) -> InspectReport {
        InspectReport::new(self.image.clone(), self.hives.clone(), ins, symptom)
    }
}

pub fn run(src: &Path, json_out: bool, symptom: Option<&str>) -> anyhow::Result<i32> {
    let loaded = load(src)?;
    let report = loaded.report(rdp::inspect(&loaded.machine), symptom);
    let out = if json_out { report.to_json()? } else { super::render::inspect_text(src, &report) };
    super::emit(out.as_bytes())?;
    Ok(if report.findings.is_empty() { 0 } else { 1 })
}
