//! `rdprescue inspect SOURCE`: why RDP fails, from the disk alone. SOURCE is an
//! image or device (hives found on its Windows and boot volumes), a directory
//! holding hive files (SYSTEM, SOFTWARE, BCD, with their logs), or a single
//! SYSTEM hive file. With a Windows volume, the guest's event logs of the
//! last `--since` days are the evidence (unless `--no-events`).

use rdprescue::rdp::report::Inspected;
use std::path::Path;

pub fn run(src: &Path, json_out: bool, symptom: Option<&str>, since_days: Option<f64>) -> anyhow::Result<i32> {
    let opened = Inspected::open(src)?;
    let mut report = opened.report(opened.inspect(), symptom);
    if let Some(days) = since_days {
        let opts = rdprescue::evidence::Options { days, ..Default::default() };
        report.add_evidence(opened.evidence(&opts));
    }
    let out = if json_out {
        report.to_json()?
    } else {
        super::render::inspect_text(src, &report)
    };
    super::emit(out.as_bytes())?;
    Ok(if report.findings.is_empty() { 0 } else { 1 })
}
