//! Human-readable renderings of the typed reports (`rdp::report`): the
//! `inspect` text report, the `audit` table, summary and CSV. JSON is the
//! reports' own serde form; everything here reads the same types.

use super::outln;
use rdprescue::hive::edit::show_json;
use rdprescue::hive::HiveState;
use rdprescue::rdp::report::{AuditRecord, AuditStatus, AuditSummary, InspectReport, SymptomReport};
use rdprescue::rdp::Severity;
use serde_json::Value as J;
use std::path::Path;

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

/// A value as a table cell, never truncated (a cut value would mislead).
fn value_cell(v: &J) -> String {
    match v {
        J::Null => "-".to_string(),
        J::String(s) if s.is_empty() => "\"\"".to_string(),
        J::String(s) => s.clone(),
        v => show_json(v),
    }
}

/// The VALUE column of each setting: `leaf\name`, with as many parent keys
/// as it takes to tell apart rows of different paths (`TLS 1.2\Server\Enabled`
/// vs `TLS 1.1\Server\Enabled`).
fn unique_labels(settings: &[rdprescue::rdp::Setting]) -> Vec<String> {
    let parts: Vec<Vec<&str>> = settings.iter().map(|s| s.path.split('\\').chain(std::iter::once(s.name.as_str())).collect()).collect();
    let suffix = |p: &[&str], k: usize| p[p.len().saturating_sub(k)..].join("\\");
    parts
        .iter()
        .enumerate()
        .map(|(i, p)| {
            let mut k = 2;
            while k < p.len() && parts.iter().enumerate().any(|(j, q)| j != i && q != p && suffix(q, k).eq_ignore_ascii_case(&suffix(p, k))) {
                k += 1;
            }
            suffix(p, k)
        })
        .collect()
}

/// Widest a LOCAL or POLICY column grows for alignment; a longer value is
/// shown whole and pushes the rest of its row right.
const VALUE_COLUMN_MAX: usize = 16;

/// The settings table: every value whole; on a terminal the VALUE labels
/// (registry paths) are cut in the middle so the table fits its width.
fn settings_table(o: &mut String, settings: &[rdprescue::rdp::Setting], width: Option<usize>) {
    let labels = unique_labels(settings);
    let locals: Vec<String> = settings.iter().map(|s| value_cell(&s.local)).collect();
    let policies: Vec<String> = settings.iter().map(|s| value_cell(&s.policy)).collect();
    let effs: Vec<String> = settings.iter().map(|s| format!("{} ({})", value_cell(&s.effective), s.source)).collect();
    let w = |head: &str, v: &[String], cap: usize| v.iter().map(|x| x.chars().count()).max().unwrap_or(0).min(cap).max(head.len());
    let check_w = settings.iter().map(|s| s.id.len()).max().unwrap_or(0).max(5);
    let (local_w, policy_w) = (w("LOCAL", &locals, VALUE_COLUMN_MAX), w("POLICY", &policies, VALUE_COLUMN_MAX));
    // The last column is not padded: this is the room kept for it on a terminal.
    let eff_w = w("EFFECTIVE (SOURCE)", &effs, VALUE_COLUMN_MAX + 8);
    let natural = w("VALUE", &labels, usize::MAX);
    let label_w = match width {
        Some(tw) => natural.min(tw.saturating_sub(2 + check_w + 1 + 1 + local_w + 1 + policy_w + 1 + eff_w).max(24)),
        None => natural,
    };
    let line = |o: &mut String, c: &str, l: &str, lo: &str, p: &str, e: &str| {
        let row = format!("  {c:<check_w$} {:<label_w$} {lo:<local_w$} {p:<policy_w$} {e}", super::fmt::middle_path(l, label_w));
        outln!(o, "{}", row.trim_end());
    };
    line(o, "CHECK", "VALUE", "LOCAL", "POLICY", "EFFECTIVE (SOURCE)");
    for (i, s) in settings.iter().enumerate() {
        line(o, s.id, &labels[i], &locals[i], &policies[i], &effs[i]);
    }
}

/// A serde value as a table cell (enum names as they appear in the JSON).
fn json_cell<T: serde::Serialize>(v: &T, width: usize) -> String {
    cell(&serde_json::to_value(v).unwrap_or(J::Null), width)
}

/// The `inspect` report as text.
pub fn inspect_text(src: &Path, r: &InspectReport) -> String {
    inspect_text_dated(src, r, false)
}

/// The `inspect` report as text; with `dated`, each finding line ends with
/// the last-write time of its key (`inspect --sort last-write`).
fn inspect_text_dated(src: &Path, r: &InspectReport, dated: bool) -> String {
    let mut o = String::new();
    let w = &r.windows;
    outln!(o, "Source:   {}", src.display());
    if let Some(c) = &r.image.container {
        let size = super::fmt::size(c.virtual_size);
        outln!(o, "Image:    {} {}, {} partition table", cell(&J::from(c.format.name()), 40), size, json_cell(&r.image.partition_table, 10));
        if let Some(st) = &r.image.windows_volume_state {
            let mut flags = Vec::new();
            if st.dirty {
                flags.push("dirty flag set");
            }
            if st.hibernated == Some(true) {
                flags.push("hibernated (Fast Startup or hibernate): Windows may resume from memory and overwrite registry changes");
            }
            if st.logfile_clean == Some(false) {
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
    for h in &r.hives {
        let state = match (&h.report, &h.error) {
            (Some(rep), _) => match rep.state {
                HiveState::Clean => "clean".to_string(),
                HiveState::Recovered => {
                    let logs = rep
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
            },
            (None, Some(why)) => format!("missing ({why})"),
            (None, None) => "missing".into(),
        };
        let loc = if h.location.is_empty() { String::new() } else { format!("  [{}]", h.location) };
        outln!(o, "  {:<9} {state}{loc}", h.name);
    }
    outln!(o);
    outln!(o, "Settings:");
    let rows: Vec<rdprescue::rdp::Setting> = r.settings.iter().map(|d| d.item.clone()).collect();
    settings_table(&mut o, &rows, super::fmt::term().width);
    outln!(o);
    if r.findings.is_empty() {
        outln!(o, "Findings: none. Nothing on this disk blocks RDP.");
    } else {
        let count = |sev: Severity| r.findings.iter().filter(|f| f.severity == sev).count();
        outln!(o, "Findings: {} ({} critical, {} high, {} medium, {} low)", r.findings.len(), count(Severity::Critical), count(Severity::High), count(Severity::Medium), count(Severity::Low));
        for f in &r.findings {
            let when = if dated { format!(" (key written {})", f.last_write.as_deref().unwrap_or("-")) } else { String::new() };
            outln!(o, "  [{}] {}: {}{when}", super::fmt::severity(f.severity.name()), f.check, f.message);
            outln!(o, "      fix: {}", f.fix);
            for r in &f.reapplied_by {
                let who = match (r.source, &r.gpo, &r.name) {
                    ("local", _, _) => "the local GPO".to_string(),
                    (_, Some(g), Some(n)) => format!("domain GPO \"{n}\" {g}"),
                    (_, Some(g), None) => format!("domain GPO {g}"),
                    (_, None, Some(n)) => format!("a domain GPO ({n})"),
                    (_, None, None) => "a domain GPO".to_string(),
                };
                outln!(o, "      re-applied by {who}: {} sets {}; {}", r.file, r.value, r.remedy);
            }
            if let Some(c) = &f.confirmed_by {
                outln!(o, "      confirmed by: {} {} {}: {}", c.time, short_log(&c.log), c.event_id, c.summary);
            }
        }
    }
    if !r.notes.is_empty() {
        outln!(o, "Notes:");
        for n in &r.notes {
            outln!(o, "  {}: {}", n.check, n.message);
        }
    }
    if !r.not_evaluated.is_empty() {
        let ids: Vec<String> = r.not_evaluated.iter().map(|n| format!("{} ({})", n.check, n.reason)).collect();
        outln!(o, "Not evaluated: {}", ids.join(", "));
    }
    evidence_text(&mut o, r);
    if let Some(s) = &r.symptom {
        outln!(o);
        symptom_text(&mut o, s);
        symptom_evidence_text(&mut o, s, &r.evidence);
    }
    o
}

/// `inspect --sort last-write`: the text report with the findings ordered by
/// the last-write time of their keys, newest first (undated ones last), each
/// line showing that time.
pub fn inspect_text_by_last_write(src: &Path, r: &InspectReport) -> String {
    let mut sorted = r.clone();
    sorted.sort_findings_by_last_write();
    inspect_text_dated(src, &sorted, true)
}

// ---- evidence (issue 15): the event logs' section of the inspect text.

/// A channel name without its provider prefix (`RdpCoreTS/Operational`).
fn short_log(log: &str) -> &str {
    log.rsplit_once("-Windows-").map_or(log, |(_, l)| l.split_once('-').map_or(l, |(_, r)| r))
}

/// Events listed in the text report (the JSON has them all, up to the per-id cap).
const TEXT_EVENTS: usize = 40;

fn evidence_text(o: &mut String, r: &InspectReport) {
    let ev = &r.event_logs;
    match ev.status {
        "skipped" => return,
        "no-volume" => {
            outln!(o, "Evidence: none (hive files: no event logs)");
            return;
        }
        "no-logs" => {
            outln!(o, "Evidence: none (no Windows\\System32\\winevt\\Logs on any readable volume)");
            return;
        }
        _ => {}
    }
    outln!(o);
    match &ev.window {
        Some(w) => outln!(o, "Evidence (event logs, {} days before the newest event: {} .. {}):", w.days, w.from, w.to),
        None => outln!(o, "Evidence (event logs: no dated record in any of them):"),
    }
    for l in &ev.logs {
        let detail = l.detail.as_ref().map(|d| format!(" ({d})")).unwrap_or_default();
        if l.status == "missing" {
            outln!(o, "  {:<44} missing", short_log(&l.log));
        } else {
            outln!(o, "  {:<44} {}: {} records in the window, {} events{detail}", short_log(&l.log), l.status, l.records, l.events);
        }
    }
    let lg = &ev.logons;
    if lg.failed_rdp + lg.failed_network + lg.failed_other + lg.successful_rdp > 0 {
        let reasons: Vec<String> = lg.failed_by_reason.iter().map(|(k, v)| format!("{v} {k}")).collect();
        outln!(o, "  logons: {} failed RDP (type 10), {} failed network (type 3), {} failed other{}; {} successful RDP{}", lg.failed_rdp, lg.failed_network, lg.failed_other,
            if reasons.is_empty() { String::new() } else { format!(" [{}]", reasons.join(", ")) }, lg.successful_rdp,
            lg.last_successful_rdp.as_ref().map(|t| format!(", last {t}")).unwrap_or_default());
    }
    for e in r.evidence.iter().take(TEXT_EVENTS) {
        let tag = if !e.confirms.is_empty() { format!("  [confirms {}]", e.confirms.join(", ")) } else if e.unexplained { "  [UNEXPLAINED: no check explains it]".to_string() } else { String::new() };
        outln!(o, "  {} {:<22} {:>5} {}{tag}", e.time, short_log(&e.log), e.event_id, e.summary);
    }
    if r.evidence.len() > TEXT_EVENTS {
        outln!(o, "  ... {} more (--json lists them)", r.evidence.len() - TEXT_EVENTS);
    }
    let unexplained: Vec<&rdprescue::evidence::Event> = r.evidence.iter().filter(|e| e.unexplained).collect();
    if !unexplained.is_empty() {
        outln!(o, "Unexplained evidence: {} failure event(s) that no check on this disk explains; newest: {} {} {}: {}", unexplained.len(), unexplained[0].time, short_log(&unexplained[0].log), unexplained[0].event_id, unexplained[0].summary);
    }
}

/// Under `--symptom`: the events that bear on each matched message.
fn symptom_evidence_text(o: &mut String, s: &SymptomReport, events: &[rdprescue::evidence::Event]) {
    for m in &s.matches {
        let rel: Vec<&rdprescue::evidence::Event> = events.iter().filter(|e| rdprescue::rdp::symptoms::event_bears_on(m.id, e, &m.checks.iter().map(|c| c.check).collect::<Vec<_>>())).take(5).collect();
        if !rel.is_empty() {
            outln!(o, "  Evidence in the logs for \"{}\":", m.id);
            for e in rel {
                outln!(o, "    {} {} {}: {}", e.time, short_log(&e.log), e.event_id, e.summary);
            }
        }
    }
}

fn symptom_text(o: &mut String, s: &SymptomReport) {
    if s.matches.is_empty() {
        outln!(o, "Symptom \"{}\": no known RDP error message matches. Known: {}", s.input, SymptomReport::known().join(", "));
    }
    for m in &s.matches {
        outln!(o, "Symptom: {}", m.message);
        let found: Vec<&str> = m.checks.iter().filter(|c| c.found).map(|c| c.check).collect();
        if found.is_empty() {
            outln!(o, "  No check that can cause it fired on this disk ({} checked): the cause is most likely outside the disk.", m.checks.len());
        } else {
            outln!(o, "  Found on this disk: {}", found.join(", "));
        }
        outln!(o, "  Checks that can cause it: {}", m.checks.iter().map(|c| c.check).collect::<Vec<_>>().join(", "));
        outln!(o, "  Outside the disk:");
        for x in m.outside {
            outln!(o, "    - {x}");
        }
    }
}

/// Check ids of a record's findings, consecutive repeats dropped.
fn check_ids(r: &AuditRecord) -> Vec<&str> {
    let mut ids: Vec<&str> = r.findings().iter().map(|f| f.check.as_ref()).collect();
    ids.dedup();
    ids
}

fn count(r: &AuditRecord, sev: Severity) -> usize {
    r.findings().iter().filter(|f| f.severity == sev).count()
}

/// The header of the `audit` table.
pub fn audit_table_header() -> String {
    format!("{:<6} {:>4} {:>4} {:>4} {:>4}  {:<12} {:<14} {}\n", "STATUS", "CRIT", "HIGH", "MED", "LOW", "BUILD", "FORMAT", "IMAGE / FINDINGS")
}

/// One image's line (and its findings or error) in the `audit` table.
pub fn audit_table_row(r: &AuditRecord) -> String {
    let image = &r.image;
    let detail = if let Some(e) = &r.error {
        format!("\n       error: {e}")
    } else if r.findings().is_empty() {
        String::new()
    } else {
        format!("\n       {}", check_ids(r).join(", "))
    };
    let Some(res) = r.result.as_ref().filter(|_| r.status != AuditStatus::Error) else {
        return format!("{:<6} {:>4} {:>4} {:>4} {:>4}  {:<12} {:<14} {image}{detail}\n", "ERROR", "-", "-", "-", "-", "-", "-", image = audit_image(image));
    };
    let build = res.windows.build.as_deref().unwrap_or("-");
    let n = |s| count(r, s);
    format!("{:<6} {:>4} {:>4} {:>4} {:>4}  {:<12} {:<14} {image}{detail}\n", r.status.name().to_uppercase(), n(Severity::Critical), n(Severity::High), n(Severity::Medium), n(Severity::Low), build, res.format, image = audit_image(image))
}

/// Columns before IMAGE in the audit table.
const AUDIT_PREFIX: usize = 56;

/// The IMAGE cell: the whole path, or on a terminal its middle cut to fit.
fn audit_image(image: &str) -> String {
    match super::fmt::term().width {
        Some(w) => super::fmt::middle(image, w.saturating_sub(AUDIT_PREFIX).max(24)),
        None => image.to_string(),
    }
}

/// The summary after the `audit` table (on stderr with `jsonl`).
pub fn audit_summary_text(s: &AuditSummary) -> String {
    let mut o = String::new();
    let secs = s.seconds;
    let n = s.images;
    outln!(
        o,
        "\nSummary: {n} images: {} pass, {} fail, {} unreadable ({secs:.2} s, {:.1} images/s, {} jobs)",
        s.pass,
        s.fail,
        s.error,
        if secs > 0.0 { n as f64 / secs } else { 0.0 },
        s.jobs
    );
    if !s.checks.is_empty() {
        outln!(o, "  {:<34} {:<9} IMAGES", "CHECK", "SEVERITY");
        for c in &s.checks {
            outln!(o, "  {:<34} {} {}", c.check, super::fmt::severity_padded(c.severity.name(), 9), c.images);
        }
    }
    o
}

/// A cell: strings raw, numbers in decimal, lists joined by `;`, absent empty.
fn plain(v: &J) -> String {
    match v {
        J::Null => String::new(),
        J::String(s) => s.clone(),
        J::Array(a) => a.iter().map(plain).collect::<Vec<_>>().join(";"),
        other => other.to_string(),
    }
}

fn settings(r: &AuditRecord) -> &[rdprescue::rdp::report::AuditSetting] {
    r.result.as_ref().map_or(&[], |x| &x.settings)
}

/// `audit --format csv`: one row per image, fixed columns, then one column per
/// setting (`setting:ID/NAME`, effective value) in the order first seen.
pub fn audit_csv(records: &[AuditRecord]) -> anyhow::Result<Vec<u8>> {
    let mut cols: Vec<String> = Vec::new();
    for r in records {
        for s in settings(r) {
            let c = format!("{}/{}", s.id, s.name);
            if !cols.contains(&c) {
                cols.push(c);
            }
        }
    }
    let mut w = ::csv::Writer::from_writer(Vec::new());
    let fixed = ["image", "status", "format", "virtual_size", "os", "build", "control_set", "findings", "critical", "high", "medium", "low", "checks", "error"];
    w.write_record(fixed.iter().map(|s| s.to_string()).chain(cols.iter().map(|c| format!("setting:{c}"))))?;
    for r in records {
        let res = r.result.as_ref();
        let opt = |v: Option<&str>| v.unwrap_or_default().to_string();
        let n = |s| count(r, s).to_string();
        let mut row = vec![
            r.image.clone(),
            r.status.name().to_string(),
            opt(res.map(|x| x.format)),
            res.and_then(|x| x.virtual_size).map(|v| v.to_string()).unwrap_or_default(),
            opt(res.and_then(|x| x.windows.product_name.as_deref())),
            opt(res.and_then(|x| x.windows.build.as_deref())),
            opt(res.and_then(|x| x.control_set.as_deref())),
            r.findings().len().to_string(),
            n(Severity::Critical),
            n(Severity::High),
            n(Severity::Medium),
            n(Severity::Low),
            check_ids(r).join(";"),
            opt(r.error.as_deref()),
        ];
        for c in &cols {
            let v = settings(r).iter().find(|s| format!("{}/{}", s.id, s.name) == *c).map(|s| plain(&s.effective)).unwrap_or_default();
            row.push(v);
        }
        w.write_record(&row)?;
    }
    w.into_inner().map_err(|e| anyhow::anyhow!("writing CSV: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use rdprescue::rdp::Setting;

    fn setting(id: &'static str, path: &str, name: &str, local: J) -> Setting {
        Setting { id, path: path.into(), name: name.into(), local: local.clone(), policy_path: None, policy: J::Null, effective: local, source: "local" }
    }

    fn tls() -> Vec<Setting> {
        let p = r"HKLM\SYSTEM\ControlSet001\Control\SecurityProviders\SCHANNEL\Protocols";
        vec![
            setting("tls12-server-disabled", &format!(r"{p}\TLS 1.2\Server"), "Enabled", J::Null),
            setting("tls11-server-disabled", &format!(r"{p}\TLS 1.1\Server"), "Enabled", J::Null),
            setting("rdp-port", r"HKLM\SYSTEM\ControlSet001\Control\Terminal Server\WinStations\RDP-Tcp", "PortNumber", J::from(3389)),
            setting("fw-rdp-rule-inactive", r"HKLM\SYSTEM\ControlSet001\Services\SharedAccess\Parameters\FirewallPolicy\FirewallRules", "RemoteDesktop-UserMode-In-TCP", J::from("v2.31|Action=Allow|Active=TRUE|Dir=In|Protocol=6|LPort=3389|App=%SystemRoot%\\system32\\svchost.exe|Svc=termservice|Name=@FirewallAPI.dll,-28775|")),
        ]
    }

    #[test]
    fn labels_tell_the_tls_rows_apart() {
        let l = unique_labels(&tls());
        assert_eq!(l[0], r"TLS 1.2\Server\Enabled");
        assert_eq!(l[1], r"TLS 1.1\Server\Enabled");
        assert_eq!(l[2], r"RDP-Tcp\PortNumber");
    }

    #[test]
    fn a_terminal_cuts_labels_never_values() {
        let s = tls();
        let mut wide = String::new();
        settings_table(&mut wide, &s, None);
        assert!(wide.contains(r"FirewallRules\RemoteDesktop-UserMode-In-TCP"), "{wide}");
        let mut narrow = String::new();
        settings_table(&mut narrow, &s, Some(100));
        for line in narrow.lines().filter(|l| !l.contains("fw-rdp-rule")) {
            assert!(line.chars().count() <= 100, "{line:?} is wider than 100 columns");
        }
        // The firewall rule value is whole, the label cut in the middle.
        assert!(narrow.contains("Svc=termservice|Name=@FirewallAPI.dll,-28775|"), "{narrow}");
        assert!(narrow.contains('…') && narrow.contains("TCP"), "{narrow}");
        assert!(narrow.contains("3389 (0xd3d)") || narrow.contains("3389"), "{narrow}");
        // The TLS rows stay told apart even when cut.
        assert!(narrow.contains("1.2") && narrow.contains("1.1"), "{narrow}");
    }
}
