//! `rdprescue audit IMAGES...`: inspect many images in parallel against an
//! optional baseline, one record per image, a summary at the end.
//!
//! Workers pull the next image from a shared counter, so at most `--jobs`
//! images are open at once (memory is bounded by jobs x one image's hives);
//! records are small and are written in input order as soon as every earlier
//! image is done. One unreadable image is an error record, never the end of
//! the sweep. Exit: 0 all pass, 1 some fail, 2 some could not be read.

use super::render;
use anyhow::{bail, Context};
use rdprescue::rdp::baseline::Baseline;
use rdprescue::rdp::report::Inspected;
use rdprescue::rdp::report::{
    AuditRecord, AuditReport, AuditStatus as Status, AuditSummary, CheckCount,
};
use rdprescue::rdp::Severity;
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

#[derive(clap::Args)]
pub struct Options {
    /// Images, devices or directories of hive files.
    pub images: Vec<PathBuf>,
    /// Also read image paths from FILE (one per line, '#' comments; '-' for standard input).
    #[arg(long, value_name = "FILE")]
    pub from_list: Option<PathBuf>,
    /// Baseline (TOML): expected values, severity overrides, ignored checks, fail_on.
    #[arg(long, value_name = "FILE")]
    pub baseline: Option<PathBuf>,
    /// Images audited at once (default: number of CPUs).
    #[arg(long, short = 'j', value_name = "N")]
    pub jobs: Option<usize>,
    /// Output: a table with a summary, one JSON document, JSON lines (records only;
    /// summary on stderr), or CSV (one column per setting).
    #[arg(long, value_enum, default_value = "table")]
    pub format: Format,
    /// Take only list positions k with k % N == I (0 <= I < N), for fleet sweeps split
    /// across indexed jobs.
    #[arg(long, value_name = "I/N")]
    pub shard: Option<String>,
}

/// `I/N`: this process takes the images at list positions k with k % N == I.
pub fn parse_shard(s: &str) -> anyhow::Result<(usize, usize)> {
    let (i, n) = s
        .split_once('/')
        .with_context(|| format!("--shard {s}: expected I/N, e.g. 0/4"))?;
    let i: usize = i
        .trim()
        .parse()
        .with_context(|| format!("--shard {s}: I is not a number"))?;
    let n: usize = n
        .trim()
        .parse()
        .with_context(|| format!("--shard {s}: N is not a number"))?;
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
    Ok(Box::new(std::fs::File::open(path).with_context(|| {
        format!("cannot read {what} {}", path.display())
    })?))
}

/// The baseline text: at most [`MAX_BASELINE`] bytes are read (`/dev/zero`
/// or a wrong file fails at once instead of filling memory).
fn read_baseline(path: &Path) -> anyhow::Result<String> {
    let what = || format!("baseline {}", path.display());
    let f = std::fs::File::open(path)
        .with_context(|| format!("cannot read baseline {}", path.display()))?;
    let mut bytes = Vec::new();
    f.take(MAX_BASELINE + 1)
        .read_to_end(&mut bytes)
        .with_context(|| format!("cannot read {}", what()))?;
    if bytes.len() as u64 > MAX_BASELINE {
        bail!(
            "{}: larger than {} MiB; a baseline is a small TOML file",
            what(),
            MAX_BASELINE >> 20
        );
    }
    String::from_utf8(bytes).map_err(|e| {
        anyhow::anyhow!(
            "{}: not UTF-8 text (invalid byte at offset {})",
            what(),
            e.utf8_error().valid_up_to()
        )
    })
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
        let got = (&mut r)
            .take(MAX_LIST_LINE as u64 + 2)
            .read_until(b'\n', &mut line)
            .with_context(|| format!("reading {what}"))?;
        if got == 0 {
            break;
        }
        total += got as u64;
        if total > MAX_LIST {
            bail!(
                "{what}: larger than {} MiB; split it, or use --shard",
                MAX_LIST >> 20
            );
        }
        let body = line.strip_suffix(b"\n").unwrap_or(&line);
        let body = body.strip_suffix(b"\r").unwrap_or(body);
        if body.len() > MAX_LIST_LINE {
            bail!(
                "{what}: line {n} is longer than {} KiB; expected one image path per line",
                MAX_LIST_LINE >> 10
            );
        }
        let text = std::str::from_utf8(body)
            .map_err(|_| anyhow::anyhow!("{what}: line {n} is not UTF-8 text"))?
            .trim();
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
        let what = if f.as_os_str() == "-" {
            "the image list on standard input".to_string()
        } else {
            format!("image list {}", f.display())
        };
        out.extend(read_list(open_input(f, "image list")?, &what)?);
    }
    if out.is_empty() {
        bail!("no images given (name them, or use --from-list FILE)");
    }
    Ok(out)
}

fn audit_one(path: &Path, baseline: &Baseline) -> AuditRecord {
    let size = std::fs::metadata(path).map(|m| m.len()).ok();
    // A URL is shown without its query string (a SAS token is a secret).
    let shown = rdprescue::image::http::shown_path(path);
    let run = || -> anyhow::Result<AuditRecord> {
        let loaded = Inspected::open(path)?;
        // A URL's size is the remote file's.
        let size = size.or_else(|| loaded.machine.image().filter(|_| shown != path).map(|i| i.info.file_size));
        let mut ins = loaded.inspect();
        let ignored = baseline.apply(&loaded.machine, &mut ins);
        let status = if baseline.fails(&ins.findings) {
            Status::Fail
        } else {
            Status::Pass
        };
        let report = loaded.report(ins, None);
        // This worker's next image reads into the hive buffers of this one.
        loaded.machine.recycle();
        Ok(AuditRecord::new(
            shown.display().to_string(),
            size,
            status,
            ignored,
            report,
        ))
    };
    let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(run))
        .unwrap_or_else(|_| Err(anyhow::anyhow!("internal error while reading this image")));
    r.unwrap_or_else(|e| AuditRecord::error(shown.display().to_string(), size, super::one_line(&e)))
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
        images = images
            .into_iter()
            .enumerate()
            .filter(|(k, _)| k % n == i)
            .map(|(_, p)| p)
            .collect();
    }
    let jobs = match o.jobs {
        Some(0) => bail!("--jobs must be at least 1"),
        Some(j) => j,
        None => std::thread::available_parallelism().map_or(1, |n| n.get()),
    }
    .min(images.len().max(1));

    let bar = indicatif::ProgressBar::with_draw_target(
        Some(images.len() as u64),
        indicatif::ProgressDrawTarget::stderr(),
    );
    bar.set_style(
        indicatif::ProgressStyle::with_template(
            "{bar:30} {pos}/{len} images, {per_sec}, eta {eta}  {msg}",
        )
        .expect("static template"),
    );

    let started = Instant::now();
    let next = AtomicUsize::new(0);
    let (tx, rx) = mpsc::channel::<(usize, AuditRecord)>();
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
        let mut waiting: HashMap<usize, AuditRecord> = HashMap::new();
        let mut due = 0;
        for (i, r) in rx {
            bar.inc(1);
            waiting.insert(i, r);
            while let Some(r) = waiting.remove(&due) {
                bar.set_message(
                    images[due]
                        .file_name()
                        .map(|n| n.to_string_lossy().to_string())
                        .unwrap_or_default(),
                );
                bar.suspend(|| out.record(r))?;
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
    /// Kept for JSON/CSV (written at the end).
    records: Vec<AuditRecord>,
    statuses: Vec<Status>,
    /// check id -> (images it fired on, worst severity)
    checks: BTreeMap<String, (usize, Severity)>,
}

impl Output {
    fn new(format: Format) -> Self {
        Output {
            format,
            records: Vec::new(),
            statuses: Vec::new(),
            checks: BTreeMap::new(),
        }
    }

    fn worst(&self) -> Option<Status> {
        self.statuses.iter().copied().max()
    }

    fn record(&mut self, r: AuditRecord) -> anyhow::Result<()> {
        self.statuses.push(r.status);
        let mut seen: Vec<&str> = Vec::new();
        for f in r.findings() {
            let id = f.check.as_ref();
            if seen.contains(&id) {
                continue;
            }
            seen.push(id);
            let e = self.checks.entry(id.to_string()).or_insert((0, f.severity));
            e.0 += 1;
            e.1 = e.1.min(f.severity);
        }
        match self.format {
            Format::Jsonl => {
                let mut line = serde_json::to_string(&r)?;
                line.push('\n');
                super::emit(line.as_bytes())?;
            }
            Format::Table => {
                if self.statuses.len() == 1 {
                    super::emit(render::audit_table_header().as_bytes())?;
                }
                super::emit(render::audit_table_row(&r).as_bytes())?;
            }
            Format::Json | Format::Csv => self.records.push(r),
        }
        Ok(())
    }

    fn summary(&self, elapsed: f64, jobs: usize) -> AuditSummary {
        let count = |s: Status| self.statuses.iter().filter(|x| **x == s).count();
        let mut checks: Vec<(&String, &(usize, Severity))> = self.checks.iter().collect();
        checks.sort_by(|a, b| {
            b.1 .0
                .cmp(&a.1 .0)
                .then(a.1 .1.cmp(&b.1 .1))
                .then(a.0.cmp(b.0))
        });
        AuditSummary {
            images: self.statuses.len(),
            pass: count(Status::Pass),
            fail: count(Status::Fail),
            error: count(Status::Error),
            jobs,
            seconds: (elapsed * 1000.0).round() / 1000.0,
            checks: checks
                .iter()
                .map(|(id, (n, sev))| CheckCount {
                    check: id.to_string(),
                    images: *n,
                    severity: *sev,
                })
                .collect(),
        }
    }

    fn finish(&mut self, elapsed: f64, jobs: usize) -> anyhow::Result<()> {
        let summary = self.summary(elapsed, jobs);
        match self.format {
            Format::Json => {
                let mut s = serde_json::to_string_pretty(&AuditReport {
                    records: &self.records,
                    summary: &summary,
                })?;
                s.push('\n');
                super::emit(s.as_bytes())?;
            }
            Format::Csv => super::emit(&render::audit_csv(&self.records)?)?,
            Format::Table => super::emit(render::audit_summary_text(&summary).as_bytes())?,
            Format::Jsonl => {
                // Standard output holds records only (shards concatenate); the summary goes to stderr.
                let _ =
                    std::io::stderr().write_all(render::audit_summary_text(&summary).as_bytes());
            }
        }
        Ok(())
    }
}
