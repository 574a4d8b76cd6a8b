//! `rdprescue inspect SOURCE`: why RDP fails, from the disk alone. SOURCE is an
//! image or device (hives found on its Windows and boot volumes), a directory
//! holding hive files (SYSTEM, SOFTWARE, BCD, with their logs), or a single
//! SYSTEM hive file.

use rdprescue::rdp::report::Inspected;
use std::path::Path;

pub fn run(src: &Path, json_out: bool, symptom: Option<&str>) -> anyhow::Result<i32> {
    let opened = Inspected::open(src)?;
    let report = opened.report(opened.inspect(), symptom);
    let out = if json_out {
        rdprescue::image::http::with_transfer(src, report.to_json()?)
    } else {
        super::render::inspect_text(&rdprescue::image::http::shown_path(src), &report)
    };
    super::emit(out.as_bytes())?;
    Ok(if report.findings.is_empty() { 0 } else { 1 })
}
