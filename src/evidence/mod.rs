//! Evidence: what the guest logged. The event logs of the Windows volume
//! (`Windows\System32\winevt\Logs\*.evtx`) are read through the file-system
//! layer, newest chunk first, for the last N days before the newest event
//! of any of them ([`collect`]); the records the table of [`extract`]
//! names become [`Event`]s with a one-line summary and decoded data.
//! [`links`] says which check each event confirms; `rdp::report` joins
//! them with the findings (`confirmed_by`, unexplained events, symptoms).
//!
//! A layer beside the checks: it knows files (below) and check ids (as
//! names), not hives or findings. A bad log never fails an inspection: it
//! gets a status line (damaged chunks skipped and counted, truncated,
//! capped) and the other logs are read as usual.

pub mod binxml;
pub mod extract;
pub mod links;
pub mod log;

use crate::fs::FileSystem;
use log::{LogFile, Limits};
use serde::Serialize;
use serde_json::{Map, Value as J};
use std::collections::BTreeMap;

/// Where Windows keeps its event logs.
pub const LOGS_DIR: &str = r"Windows\System32\winevt\Logs";

/// The logs read: channel name and file name.
pub static LOGS: &[(&str, &str)] = &[
    ("System", "System.evtx"),
    ("Security", "Security.evtx"),
    ("Microsoft-Windows-TerminalServices-RemoteConnectionManager/Operational", "Microsoft-Windows-TerminalServices-RemoteConnectionManager%4Operational.evtx"),
    ("Microsoft-Windows-RemoteDesktopServices-RdpCoreTS/Operational", "Microsoft-Windows-RemoteDesktopServices-RdpCoreTS%4Operational.evtx"),
    ("Microsoft-Windows-TerminalServices-LocalSessionManager/Operational", "Microsoft-Windows-TerminalServices-LocalSessionManager%4Operational.evtx"),
];

/// Default window: 14 days before the newest event.
pub const DEFAULT_DAYS: f64 = 14.0;

/// One event that is evidence.
#[derive(Debug, Clone, Serialize)]
pub struct Event {
    /// Channel: `System`, `Security`, `Microsoft-Windows-...-RdpCoreTS/Operational`, ...
    pub log: String,
    pub event_id: u32,
    /// UTC, RFC 3339 with microseconds.
    pub time: String,
    pub provider: String,
    pub record_id: u64,
    pub summary: String,
    pub data: Map<String, J>,
    /// Checks that fired and that this event confirms (filled by the report).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub confirms: Vec<String>,
    /// A failure that no check that fired explains (filled by the report).
    pub unexplained: bool,
    /// A failure rather than context (logons, restarts).
    #[serde(skip)]
    pub fault: bool,
    /// µs since the Unix epoch.
    #[serde(skip)]
    pub micros: i64,
}

/// A finding's `confirmed_by`: the event that shows it happened.
#[derive(Debug, Clone, Serialize)]
pub struct Confirmation {
    pub log: String,
    pub event_id: u32,
    pub time: String,
    pub record_id: u64,
    pub summary: String,
}

impl Confirmation {
    pub fn of(e: &Event) -> Confirmation {
        Confirmation { log: e.log.clone(), event_id: e.event_id, time: e.time.clone(), record_id: e.record_id, summary: e.summary.clone() }
    }
}

/// What reading one log did.
#[derive(Debug, Clone, Serialize)]
pub struct LogStatus {
    pub log: String,
    /// Path on the Windows volume.
    pub file: String,
    /// "read", "damaged" (chunks or records skipped), "missing", "unreadable".
    pub status: &'static str,
    /// Why, for anything but a clean read: skipped chunks, truncation, caps, errors.
    pub detail: Option<String>,
    pub chunks_read: usize,
    pub chunks_damaged: usize,
    /// Records in the window.
    pub records: usize,
    /// Evidence events found (before the per-id cap).
    pub events: usize,
}

/// Events of one (log, event id) in the window.
#[derive(Debug, Clone, Serialize)]
pub struct Count {
    pub log: String,
    pub event_id: u32,
    pub count: usize,
    /// How many are listed in `evidence` (the newest).
    pub listed: usize,
}

/// RDP logons in the window (Security 4624 / 4625).
#[derive(Debug, Clone, Default, Serialize)]
pub struct Logons {
    /// 4625 with logon type 10 (remote interactive).
    pub failed_rdp: usize,
    /// 4625 with logon type 3 (network: NLA checks credentials this way).
    pub failed_network: usize,
    pub failed_other: usize,
    /// 4625 by reason (NTSTATUS name or code).
    pub failed_by_reason: BTreeMap<String, usize>,
    /// 4624 with logon type 10.
    pub successful_rdp: usize,
    pub last_successful_rdp: Option<String>,
}

/// The window read.
#[derive(Debug, Clone, Serialize)]
pub struct Window {
    pub from: String,
    /// The newest event of all logs read.
    pub to: String,
    pub days: f64,
}

/// Everything read from the event logs.
#[derive(Debug, Clone, Serialize)]
pub struct Evidence {
    /// "read", "skipped" (`--no-events`), "no-volume" (hive files: no logs).
    pub status: &'static str,
    pub window: Option<Window>,
    pub logs: Vec<LogStatus>,
    pub counts: Vec<Count>,
    pub logons: Logons,
    /// Newest first.
    #[serde(skip)]
    pub events: Vec<Event>,
}

impl Evidence {
    /// No logs read, with why (`skipped`, `no-volume`).
    pub fn none(status: &'static str) -> Evidence {
        Evidence { status, window: None, logs: Vec::new(), counts: Vec::new(), logons: Logons::default(), events: Vec::new() }
    }
}

/// What to read.
#[derive(Debug, Clone, Copy)]
pub struct Options {
    /// Days before the newest event.
    pub days: f64,
    pub limits: Limits,
}

impl Default for Options {
    fn default() -> Self {
        Options { days: DEFAULT_DAYS, limits: Limits::default() }
    }
}

/// Parse `--since`: `14d`, `36h`, `2w`, or a number of days.
pub fn parse_since(s: &str) -> Option<f64> {
    let s = s.trim();
    let (num, mul) = match s.chars().last()? {
        'd' | 'D' => (&s[..s.len() - 1], 1.0),
        'h' | 'H' => (&s[..s.len() - 1], 1.0 / 24.0),
        'w' | 'W' => (&s[..s.len() - 1], 7.0),
        _ => (s, 1.0),
    };
    let v: f64 = num.trim().parse().ok()?;
    (v.is_finite() && v > 0.0 && v <= 36500.0).then_some(v * mul)
}

/// A log file on a mounted volume, read through its file handle
/// ([`FileSystem::open_file`]: no path lookup per chunk) where the file
/// system has one, else through [`FileSystem::read_at`].
struct OnVolume<'a> {
    h: Option<Box<dyn crate::fs::FileRead + 'a>>,
    fs: &'a dyn FileSystem,
    path: String,
    len: u64,
}

impl LogFile for OnVolume<'_> {
    fn len(&self) -> u64 {
        self.len
    }
    fn read_at(&self, offset: u64, buf: &mut [u8]) -> crate::Result<usize> {
        match &self.h {
            Some(h) => h.read_at(offset, buf),
            None => self.fs.read_at(&self.path, offset, buf),
        }
    }
}

/// Read the evidence logs of the Windows volume `fs`.
pub fn collect(fs: &dyn FileSystem, opts: &Options) -> Evidence {
    let mut files: Vec<(&str, String, Result<Box<dyn LogFile + '_>, String>)> = Vec::new();
    for (log, name) in LOGS {
        let path = format!("{LOGS_DIR}\\{name}");
        let f = match fs.stat(&path) {
            Ok(st) if st.is_dir => Err("a directory".to_string()),
            Ok(st) => Ok(Box::new(OnVolume { h: fs.open_file(&path).ok().flatten(), fs, path: path.clone(), len: st.size }) as Box<dyn LogFile>),
            Err(crate::Error::NotFound { .. }) => Err(String::new()),
            Err(e) => Err(e.to_string()),
        };
        files.push((log, path, f));
    }
    let refs: Vec<(&str, String, Result<&dyn LogFile, String>)> = files.iter().map(|(l, p, f)| (*l, p.clone(), f.as_ref().map(|b| b.as_ref()).map_err(Clone::clone))).collect();
    collect_files(&refs, opts)
}

/// Read the given logs (channel, path shown, file or why it is absent:
/// empty for "missing"): the newest event of all sets the window, then
/// each log is walked back to it.
pub fn collect_files(files: &[(&str, String, Result<&dyn LogFile, String>)], opts: &Options) -> Evidence {
    let mut budget = opts.limits.total_bytes;
    let mut witnesses = Vec::new();
    let mut plans = Vec::new();
    for (_, _, f) in files {
        let p = match f {
            Ok(f) => match log::header(*f) {
                Ok(h) => {
                    let p = log::plan(*f, &h);
                    witnesses.push((log::newest(*f, &p, &mut budget), ()));
                    Ok(p)
                }
                Err(e) => Err(format!("file header unreadable: {e}")),
            },
            Err(e) => Err(e.clone()),
        };
        plans.push(p);
    }
    // "Now" (crate::rdp::now): the newest event of all logs.
    let newest = crate::rdp::now::newest(witnesses).map(|(t, ())| t);
    let span = (opts.days * 86_400_000_000.0) as i64;
    let since = newest.map_or(i64::MIN, |n| n.saturating_sub(span));
    let mut ev = Evidence::none("read");
    ev.window = newest.map(|n| Window { from: iso(since), to: iso(n), days: opts.days });
    let mut per_id: BTreeMap<(String, u32), (usize, Vec<Event>)> = BTreeMap::new();
    for ((log, path, f), p) in files.iter().zip(&plans) {
        let (f, p) = match (f, p) {
            (Ok(f), Ok(p)) => (*f, p),
            (Err(why), _) | (_, Err(why)) => {
                let (status, detail) = if why.is_empty() { ("missing", None) } else { ("unreadable", Some(why.clone())) };
                ev.logs.push(LogStatus { log: log.to_string(), file: path.clone(), status, detail, chunks_read: 0, chunks_damaged: 0, records: 0, events: 0 });
                continue;
            }
        };
        let mut found = 0usize;
        let mut sink = |raw: extract::Raw| {
            if let Some((_, id)) = raw.counted {
                // Past the newest of its id (the walk rendered those): counted only.
                found += 1;
                per_id.entry((log.to_string(), id)).or_default().0 += 1;
                return;
            }
            let Some((provider, id, fields)) = log::fields(&raw.json) else { return };
            let Some(w) = extract::wanted(&provider, id) else { return };
            let Some(d) = (w.decode)(id, &fields) else { return };
            found += 1;
            if log.eq_ignore_ascii_case("Security") {
                count_logon(&mut ev.logons, id, &fields, raw.micros);
            }
            let e = Event { log: log.to_string(), event_id: id, time: iso(raw.micros), provider, record_id: raw.record_id, summary: d.summary, data: d.data, confirms: Vec::new(), unexplained: false, fault: d.fault, micros: raw.micros };
            let slot = per_id.entry((log.to_string(), id)).or_default();
            slot.0 += 1;
            slot.1.push(e);
            let cap = opts.limits.kept_per_id.max(1);
            if slot.1.len() >= cap * 2 {
                slot.1.sort_by(|a, b| b.micros.cmp(&a.micros).then(b.record_id.cmp(&a.record_id)));
                slot.1.truncate(cap);
            }
        };
        let w = log::walk(f, p, since, &opts.limits, &mut budget, true, &mut sink);
        let mut detail = Vec::new();
        if w.bad_header {
            detail.push("no valid file header (chunks read by position)".to_string());
        }
        if w.chunks_damaged > 0 {
            detail.push(format!("{} damaged chunk(s) skipped", w.chunks_damaged));
        }
        if w.records_damaged > 0 {
            detail.push(format!("{} unreadable record(s) skipped", w.records_damaged));
        }
        if let Some(s) = &w.stopped {
            detail.push(s.clone());
        }
        let status = if w.chunks_damaged > 0 || w.records_damaged > 0 || w.bad_header || w.stopped.as_deref().is_some_and(|s| s.starts_with("truncated") || s.contains("unreadable")) {
            "damaged"
        } else {
            "read"
        };
        ev.logs.push(LogStatus {
            log: log.to_string(),
            file: path.clone(),
            status,
            detail: (!detail.is_empty()).then(|| detail.join("; ")),
            chunks_read: w.chunks_read,
            chunks_damaged: w.chunks_damaged,
            records: w.records,
            events: found,
        });
    }
    for ((log, id), (count, mut events)) in per_id {
        events.sort_by(|a, b| b.micros.cmp(&a.micros).then(b.record_id.cmp(&a.record_id)));
        events.truncate(opts.limits.kept_per_id.max(1));
        ev.counts.push(Count { log, event_id: id, count, listed: events.len() });
        ev.events.extend(events);
    }
    ev.events.sort_by(|a, b| b.micros.cmp(&a.micros).then(b.record_id.cmp(&a.record_id)));
    ev
}

fn count_logon(l: &mut Logons, id: u32, f: &Map<String, J>, micros: i64) {
    let lt = extract::number(f, "LogonType");
    match id {
        4625 => {
            match lt {
                Some(10) => l.failed_rdp += 1,
                Some(3) => l.failed_network += 1,
                _ => l.failed_other += 1,
            }
            let sub = extract::number(f, "SubStatus").filter(|s| *s != 0).or_else(|| extract::number(f, "Status")).unwrap_or(0);
            let key = extract::ntstatus(sub).map_or_else(|| format!("0x{sub:08X}"), str::to_string);
            *l.failed_by_reason.entry(key).or_default() += 1;
        }
        4624 if lt == Some(10) => {
            l.successful_rdp += 1;
            let t = iso(micros);
            if l.last_successful_rdp.as_ref().is_none_or(|x| *x < t) {
                l.last_successful_rdp = Some(t);
            }
        }
        _ => {}
    }
}

/// µs since the Unix epoch as RFC 3339 UTC with microseconds.
pub fn iso(micros: i64) -> String {
    let secs = micros.div_euclid(1_000_000);
    let us = micros.rem_euclid(1_000_000);
    let days = secs.div_euclid(86_400);
    let rem = secs.rem_euclid(86_400);
    // Civil date from days since 1970-01-01 (H. Hinnant's algorithm).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = if m <= 2 { y + 1 } else { y };
    format!("{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}.{us:06}Z", rem / 3600, rem / 60 % 60, rem % 60)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn iso_dates() {
        assert_eq!(iso(0), "1970-01-01T00:00:00.000000Z");
        assert_eq!(iso(1_533_670_502_368_399), "2018-08-07T19:35:02.368399Z");
        assert_eq!(iso(951_782_400_000_001), "2000-02-29T00:00:00.000001Z");
        assert_eq!(iso(-1), "1969-12-31T23:59:59.999999Z");
    }

    #[test]
    fn since_spellings() {
        assert_eq!(parse_since("14d"), Some(14.0));
        assert_eq!(parse_since("2w"), Some(14.0));
        assert_eq!(parse_since("36h"), Some(1.5));
        assert_eq!(parse_since("3"), Some(3.0));
        for bad in ["", "d", "-1d", "0", "xd", "nan", "1e9d"] {
            assert_eq!(parse_since(bad), None, "{bad}");
        }
    }

    #[test]
    fn garbage_is_a_status_not_an_error() {
        let junk: Vec<u8> = (0..200_000u32).map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8).collect();
        let short = b"ElfFile\0".to_vec();
        let (junk, short) = (junk.as_slice(), short.as_slice());
        let files: Vec<(&str, String, Result<&dyn LogFile, String>)> = vec![
            ("System", "a".into(), Ok(&junk as &dyn LogFile)),
            ("Security", "b".into(), Ok(&short as &dyn LogFile)),
            ("X", "c".into(), Err(String::new())),
        ];
        let ev = collect_files(&files, &Options::default());
        assert!(ev.events.is_empty());
        assert_eq!(ev.logs.iter().map(|l| l.status).collect::<Vec<_>>(), ["damaged", "damaged", "missing"]);
        assert_eq!(ev.logs[0].chunks_damaged, 2, "{:?}", ev.logs[0]);
    }
}
