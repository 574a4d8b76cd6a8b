//! `rdprescue audit IMAGES...`: inspect many images in parallel against an
//! optional baseline, one record per image, a summary at the end.
//!
//! Workers pull the next image from a shared counter, so at most `--jobs`
//! images are open at once (memory is bounded by jobs x one image's hives);
//! records are small and are written in input order as soon as every earlier
//! image is done. One unreadable image is an error record, never the end of
//! the sweep. Exit: 0 all pass, 1 some fail, 2 some could not be read.

use super::inspect;
use anyhow::{bail, Context};
use rdprescue::rdp::baseline::Baseline;
use rdprescue::rdp::{self, Severity};
use serde_json::{json, Value as J};
use std::collections::{BTreeMap, HashMap};
use std::io::{BufRead, Read, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc;
use std::time::Instant;

#[derive(Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    Table,
    Json,
    Jsonl,
    Csv,
}

pub struct Options {
    pub images: Vec<PathBuf>,
    pub from_list: Option<PathBuf>,
    pub baseline: Option<PathBuf>,
    pub jobs: Option<usize>,
    pub format: Format,
    pub shard: Option<String>,
}

/// `I/N`: this process takes the images at list positions k with k % N == I.
pub fn parse_shard(s: &str) -> anyhow::Result<(usize, usize)> {
    let (i, n) = s.split_once('/').with_context(|| format!("--shard {s}: expected I/N, e.g. 0/4"))?;
    let i: usize = i.trim().parse().with_context(|| format!("--shard {s}: I is not a number"))?;
    let n: usize = n.trim().parse().with_context(|| format!("--shard {s}: N is not a number"))?;
    if n == 0 || i >= n {
        bail!("--shard {s}: need 0 <= I < N (shards are numbered from 0, like a Kubernetes JOB_COMPLETION_INDEX)");
    }
    Ok((i, n))
}

/// Largest baseline file read (a baseline is a small TOML file).
const MAX_BASELINE: u64 = 16 << 20;
/// Largest image list read, and longest line in it (a path).
const MAX_LIST: u64 = 16 << 20;
const MAX_LIST_LINE: usize = 4 << 10;

/// Open an input file (`-` is standard input).
fn open_input(path: &Path, what: &str) -> anyhow::Result<Box<dyn Read>> {
    if path.as_os_str() == "-" {
        return Ok(Box::new(std::io::stdin()));
    }
    Ok(Box::new(std::fs::File::open(path).with_context(|| format!("cannot read {what} {}", path.display()))?))
}

/// The baseline text: at most [`MAX_BASELINE`] bytes are read (`/dev/zero`
/// or a wrong file fails at once instead of filling memory).
fn read_baseline(path: &Path) -> anyhow::Result<String> {
    let what = || format!("baseline {}", path.display());
    let f = std::fs::File::open(path).with_context(|| format!("cannot read baseline {}", path.display()))?;
    let mut bytes = Vec::new();
    f.take(MAX_BASELINE + 1).read_to_end(&mut bytes).with_context(|| format!("cannot read {}", what()))?;
    if bytes.len() as u64 > MAX_BASELINE {
        bail!("{}: larger than {} MiB; a baseline is a small TOML file", what(), MAX_BASELINE >> 20);
    }
    String::from_utf8(bytes).map_err(|e| anyhow::anyhow!("{}: not UTF-8 text (invalid byte at offset {})", what(), e.utf8_error().valid_up_to()))
}

/// Paths from an image list: one per line, blank lines and `#` comments
/// skipped. Lines are read through a cap ([`MAX_LIST_LINE`] each,
/// [`MAX_LIST`] in all), so a list without line breaks, or an endless
/// stream, is refused without filling memory.
fn read_list(r: impl Read, what: &str) -> anyhow::Result<Vec<PathBuf>> {
    let mut r = std::io::BufReader::new(r.take(MAX_LIST + 1));
    let (mut out, mut line, mut total) = (Vec::new(), Vec::new(), 0u64);
    for n in 1.. {
        line.clear();
        let got = (&mut r).take(MAX_LIST_LINE as u64 + 2).read_until(b'\n', &mut line).with_context(|| format!("reading {what}"))?;
        if got == 0 {
            break;
        }
        total += got as u64;
        if total > MAX_LIST {
            bail!("{what}: larger than {} MiB; split it, or use --shard", MAX_LIST >> 20);
        }
        let body = line.strip_suffix(b"\n").unwrap_or(&line);
        let body = body.strip_suffix(b"\r").unwrap_or(body);
        if body.len() > MAX_LIST_LINE {
            bail!("{what}: line {n} is longer than {} KiB; expected one image path per line", MAX_LIST_LINE >> 10);
        }
        let text = std::str::from_utf8(body).map_err(|_| anyhow::anyhow!("{what}: line {n} is not UTF-8 text"))?.trim();
        if !text.is_empty() && !text.starts_with('#') {
            out.push(PathBuf::from(text));
        }
    }
    Ok(out)
}

/// The image list: arguments first, then the list file (one path per line,
/// blank lines and `#` comments skipped, `-` reads standard input).
fn image_list(o: &Options) -> anyhow::Result<Vec<PathBuf>> {
    let mut out = o.images.clone();
    if let Some(f) = &o.from_list {
        let what = if f.as_os_str() == "-" { "the image list on standard input".to_string() } else { format!("image list {}", f.display()) };
        out.extend(read_list(open_input(f, "image list")?, &what)?);
    }
    if out.is_empty() {
        bail!("no images given (name them, or use --from-list FILE)");
    }
    Ok(out)
}

/// One image's record.
struct Record {
    json: J,
    status: Status,
}

#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Status {
    Pass,
    Fail,
    Error,
}

impl Status {
    fn name(self) -> &'static str {
        match self {
            Status::Pass => "pass",
            Status::Fail => "fail",
            Status::Error => "error",
        }
    }
}

fn audit_one(path: &Path, baseline: &Baseline) -> Record {
    let size = std::fs::metadata(path).map(|m| m.len()).ok();
    let run = || -> anyhow::Result<Record> {
        let loaded = inspect::load(path)?;
        let mut ins = rdp::inspect(loaded.hives());
        let ignored = baseline.apply(loaded.hives(), &mut ins);
        let status = if baseline.fails(&ins.findings) { Status::Fail } else { Status::Pass };
        let image = loaded.image_json();
        let container = image.get("container");
        let json = json!({
            "image": path.display().to_string(),
            "status": status.name(),
            "error": null,
            "size": size,
            "format": container.map_or_else(|| image["kind"].clone(), |c| c["format"].clone()),
            "virtual_size": container.map_or(J::Null, |c| c["virtual_size"].clone()),
            "windows": ins.windows,
            "control_set": ins.windows.control_sets.as_ref().map(|c| c.current_key.clone()),
            "hives": inspect::hives_json(&loaded).as_array().into_iter().flatten().map(|h| json!({"name": h["name"], "state": h["state"]})).collect::<Vec<_>>(),
            "settings": ins.settings.iter().map(|s| json!({"id": s.id, "path": s.path, "name": s.name, "effective": s.effective, "source": s.source})).collect::<Vec<_>>(),
            "findings": ins.findings.iter().map(|f| json!({"check": f.check, "severity": f.severity, "message": f.message, "fix": f.fix})).collect::<Vec<_>>(),
            "ignored": ignored,
            "not_evaluated": ins.not_evaluated,
        });
        Ok(Record { json, status })
    };
    let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(run)).unwrap_or_else(|_| Err(anyhow::anyhow!("internal error while reading this image")));
    r.unwrap_or_else(|e| Record {
        json: json!({"image": path.display().to_string(), "status": "error", "error": super::one_line(&e), "size": size}),
        status: Status::Error,
    })
}

pub fn run(o: Options) -> anyhow::Result<i32> {
    let baseline = match &o.baseline {
        Some(f) => {
            let text = read_baseline(f)?;
            Baseline::parse(&text).with_context(|| format!("baseline {}", f.display()))?
        }
        None => Baseline::default(),
    };
    let mut images = image_list(&o)?;
    if let Some(s) = &o.shard {
        let (i, n) = parse_shard(s)?;
        images = images.into_iter().enumerate().filter(|(k, _)| k % n == i).map(|(_, p)| p).collect();
    }
    let jobs = match o.jobs {
        Some(0) => bail!("--jobs must be at least 1"),
        Some(j) => j,
        None => std::thread::available_parallelism().map_or(1, |n| n.get()),
    }
    .min(images.len().max(1));

    let bar = indicatif::ProgressBar::with_draw_target(Some(images.len() as u64), indicatif::ProgressDrawTarget::stderr());
    bar.set_style(indicatif::ProgressStyle::with_template("{bar:30} {pos}/{len} images, {per_sec}, eta {eta}  {msg}").expect("static template"));

    let started = Instant::now();
    let next = AtomicUsize::new(0);
    let (tx, rx) = mpsc::channel::<(usize, Record)>();
    let mut out = Output::new(o.format);
    std::thread::scope(|s| -> anyhow::Result<()> {
        for _ in 0..jobs {
            let tx = tx.clone();
            let (next, images, baseline) = (&next, &images, &baseline);
            s.spawn(move || loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                let Some(p) = images.get(i) else { break };
                if tx.send((i, audit_one(p, baseline))).is_err() {
                    break;
                }
            });
        }
        drop(tx);
        // Write in input order: hold records that finished early.
        let mut waiting: HashMap<usize, Record> = HashMap::new();
        let mut due = 0;
        for (i, r) in rx {
            bar.inc(1);
            waiting.insert(i, r);
            while let Some(r) = waiting.remove(&due) {
                bar.set_message(images[due].file_name().map(|n| n.to_string_lossy().to_string()).unwrap_or_default());
                bar.suspend(|| out.record(&r))?;
                due += 1;
            }
        }
        Ok(())
    })?;
    bar.finish_and_clear();
    let elapsed = started.elapsed().as_secs_f64();
    out.finish(elapsed, jobs)?;
    Ok(match out.worst() {
        Some(Status::Error) => 2,
        Some(Status::Fail) => 1,
        _ => 0,
    })
}

/// Writes records as they come and the summary at the end.
struct Output {
    format: Format,
    /// Kept for JSON/CSV (written at the end) and for the summary.
    records: Vec<J>,
    statuses: Vec<Status>,
    /// check id -> (images it fired on, worst severity)
    checks: BTreeMap<String, (usize, Severity)>,
}

impl Output {
    fn new(format: Format) -> Self {
        Output { format, records: Vec::new(), statuses: Vec::new(), checks: BTreeMap::new() }
    }

    fn worst(&self) -> Option<Status> {
        self.statuses.iter().copied().max()
    }

    fn record(&mut self, r: &Record) -> anyhow::Result<()> {
        self.statuses.push(r.status);
        let mut seen: Vec<&str> = Vec::new();
        for f in r.json["findings"].as_array().into_iter().flatten() {
            let id = f["check"].as_str().unwrap_or_default();
            if seen.contains(&id) {
                continue;
            }
            seen.push(id);
            let sev: Severity = severity_of(&f["severity"]);
            let e = self.checks.entry(id.to_string()).or_insert((0, sev));
            e.0 += 1;
            e.1 = e.1.min(sev);
        }
        match self.format {
            Format::Jsonl => {
                let mut line = serde_json::to_string(&r.json)?;
                line.push('\n');
                super::emit(line.as_bytes())?;
            }
            Format::Table => {
                if self.statuses.len() == 1 {
                    super::emit(format!("{:<6} {:>4} {:>4} {:>4} {:>4}  {:<12} {:<14} {}\n", "STATUS", "CRIT", "HIGH", "MED", "LOW", "BUILD", "FORMAT", "IMAGE / FINDINGS").as_bytes())?;
                }
                super::emit(table_row(&r.json).as_bytes())?;
            }
            Format::Json | Format::Csv => {}
        }
        if matches!(self.format, Format::Json | Format::Csv) {
            self.records.push(r.json.clone());
        }
        Ok(())
    }

    fn summary(&self, elapsed: f64, jobs: usize) -> J {
        let count = |s: Status| self.statuses.iter().filter(|x| **x == s).count();
        let mut checks: Vec<(&String, &(usize, Severity))> = self.checks.iter().collect();
        checks.sort_by(|a, b| b.1 .0.cmp(&a.1 .0).then(a.1 .1.cmp(&b.1 .1)).then(a.0.cmp(b.0)));
        json!({
            "images": self.statuses.len(),
            "pass": count(Status::Pass),
            "fail": count(Status::Fail),
            "error": count(Status::Error),
            "jobs": jobs,
            "seconds": (elapsed * 1000.0).round() / 1000.0,
            "checks": checks.iter().map(|(id, (n, sev))| json!({"check": id, "images": n, "severity": sev})).collect::<Vec<_>>(),
        })
    }

    fn finish(&mut self, elapsed: f64, jobs: usize) -> anyhow::Result<()> {
        let summary = self.summary(elapsed, jobs);
        match self.format {
            Format::Json => {
                let mut s = serde_json::to_string_pretty(&json!({"records": self.records, "summary": summary}))?;
                s.push('\n');
                super::emit(s.as_bytes())?;
            }
            Format::Csv => super::emit(&csv(&self.records)?)?,
            Format::Table => super::emit(summary_text(&summary).as_bytes())?,
            Format::Jsonl => {
                // Standard output holds records only (shards concatenate); the summary goes to stderr.
                let _ = std::io::stderr().write_all(summary_text(&summary).as_bytes());
            }
        }
        Ok(())
    }
}

fn severity_of(v: &J) -> Severity {
    match v.as_str() {
        Some("critical") => Severity::Critical,
        Some("high") => Severity::High,
        Some("medium") => Severity::Medium,
        Some("low") => Severity::Low,
        _ => Severity::Info,
    }
}

fn table_row(r: &J) -> String {
    let findings = r["findings"].as_array().cloned().unwrap_or_default();
    let n = |s: &str| findings.iter().filter(|f| f["severity"] == s).count();
    let image = r["image"].as_str().unwrap_or_default();
    let detail = if let Some(e) = r["error"].as_str() {
        format!("\n       error: {e}")
    } else if findings.is_empty() {
        String::new()
    } else {
        let mut ids: Vec<&str> = findings.iter().filter_map(|f| f["check"].as_str()).collect();
        ids.dedup();
        format!("\n       {}", ids.join(", "))
    };
    let build = r["windows"]["build"].as_str().unwrap_or("-");
    let format = r["format"].as_str().unwrap_or("-");
    if r["status"] == "error" {
        return format!("{:<6} {:>4} {:>4} {:>4} {:>4}  {:<12} {:<14} {image}{detail}\n", "ERROR", "-", "-", "-", "-", "-", "-");
    }
    format!("{:<6} {:>4} {:>4} {:>4} {:>4}  {:<12} {:<14} {image}{detail}\n", r["status"].as_str().unwrap_or_default().to_uppercase(), n("critical"), n("high"), n("medium"), n("low"), build, format)
}

fn summary_text(s: &J) -> String {
    let mut o = String::new();
    let secs = s["seconds"].as_f64().unwrap_or(0.0);
    let n = s["images"].as_u64().unwrap_or(0);
    super::outln!(
        o,
        "\nSummary: {n} images: {} pass, {} fail, {} unreadable ({secs:.2} s, {:.1} images/s, {} jobs)",
        s["pass"],
        s["fail"],
        s["error"],
        if secs > 0.0 { n as f64 / secs } else { 0.0 },
        s["jobs"]
    );
    let checks = s["checks"].as_array().cloned().unwrap_or_default();
    if !checks.is_empty() {
        super::outln!(o, "  {:<34} {:<9} IMAGES", "CHECK", "SEVERITY");
        for c in checks {
            super::outln!(o, "  {:<34} {:<9} {}", c["check"].as_str().unwrap_or_default(), c["severity"].as_str().unwrap_or_default(), c["images"]);
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

/// One row per image: fixed columns, then one column per setting
/// (`id/name`, effective value) in the order first seen.
fn csv(records: &[J]) -> anyhow::Result<Vec<u8>> {
    let mut cols: Vec<String> = Vec::new();
    for r in records {
        for s in r["settings"].as_array().into_iter().flatten() {
            let c = format!("{}/{}", plain(&s["id"]), plain(&s["name"]));
            if !cols.contains(&c) {
                cols.push(c);
            }
        }
    }
    let mut w = ::csv::Writer::from_writer(Vec::new());
    let fixed = ["image", "status", "format", "virtual_size", "os", "build", "control_set", "findings", "critical", "high", "medium", "low", "checks", "error"];
    w.write_record(fixed.iter().map(|s| s.to_string()).chain(cols.iter().map(|c| format!("setting:{c}"))))?;
    for r in records {
        let f = r["findings"].as_array().cloned().unwrap_or_default();
        let n = |s: &str| f.iter().filter(|x| x["severity"] == s).count().to_string();
        let mut ids: Vec<String> = f.iter().map(|x| plain(&x["check"])).collect();
        ids.dedup();
        let mut row = vec![
            plain(&r["image"]),
            plain(&r["status"]),
            plain(&r["format"]),
            plain(&r["virtual_size"]),
            plain(&r["windows"]["product_name"]),
            plain(&r["windows"]["build"]),
            plain(&r["control_set"]),
            f.len().to_string(),
            n("critical"),
            n("high"),
            n("medium"),
            n("low"),
            ids.join(";"),
            plain(&r["error"]),
        ];
        let settings = r["settings"].as_array().cloned().unwrap_or_default();
        for c in &cols {
            let v = settings.iter().find(|s| format!("{}/{}", plain(&s["id"]), plain(&s["name"])) == *c).map(|s| plain(&s["effective"])).unwrap_or_default();
            row.push(v);
        }
        w.write_record(&row)?;
    }
    w.into_inner().map_err(|e| anyhow::anyhow!("writing CSV: {e}"))
}
