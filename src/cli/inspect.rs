//! `rdprescue inspect SOURCE`: why RDP fails, from the disk alone. SOURCE is an
//! image or device (hives found on its Windows and boot volumes), a directory
//! holding hive files (SYSTEM, SOFTWARE, BCD, with their logs), or a single
//! SYSTEM hive file. With a Windows volume, the guest's event logs of the
//! last `--since` days are the evidence (unless `--no-events`).

use rdprescue::rdp::report::Inspected;
use std::path::Path;

/// `by_last_write`: `--sort last-write` (text: findings newest key write first);
/// `since_days`: the event-log window (`None`: `--no-events`).
pub fn run(src: &Path, json_out: bool, symptom: Option<&str>, by_last_write: bool, since_days: Option<f64>) -> anyhow::Result<i32> {
    super::preflight::symptom(symptom)?;
    let opened = Inspected::open(src)?;
    let mut report = opened.report(opened.inspect(), symptom);
    if let Some(days) = since_days {
        let opts = rdprescue::evidence::Options { days, ..Default::default() };
        report.add_evidence(opened.evidence(&opts));
    }
    let out = if json_out {
        rdprescue::image::http::with_transfer(src, report.to_json()?)
    } else if by_last_write {
        super::render::inspect_text_by_last_write(&rdprescue::image::http::shown_path(src), &report)
    } else {
        super::render::inspect_text(&rdprescue::image::http::shown_path(src), &report)
    };
    super::emit(out.as_bytes())?;
    Ok(if report.findings.is_empty() { 0 } else { 1 })
}
