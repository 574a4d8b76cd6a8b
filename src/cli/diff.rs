//! `rdprescue diff A B [--json] [--all]`: what changed between two snapshots
//! of a machine (two images, an image and its differencing child, a VHDX and
//! its checkpoint, hive directories or files). Both are opened read-only.
//!
//! Exit: 0 no differences, 1 differences, 2 error (like diff(1)).

use super::outln;
use rdprescue::diff::hives::{Data, HiveDiff};
use rdprescue::diff::{self, Diff, FindingChange, RowChange, RowValue, Side};
use rdprescue::hive::edit::show_json;
use std::path::PathBuf;

#[derive(clap::Args)]
pub struct Options {
    /// The older snapshot: image, device, mounted Windows volume, hive directory or hive file.
    pub a: PathBuf,
    /// The newer snapshot (e.g. A's differencing child or checkpoint .avhdx).
    pub b: PathBuf,
    /// JSON output.
    #[arg(long)]
    pub json: bool,
    /// Also compare the whole hives (SYSTEM, SOFTWARE, SAM, SECURITY, BCD) key by key:
    /// keys added/removed, values added/removed/changed with old and new data.
    #[arg(long)]
    pub all: bool,
    /// With --all: list at most N changes per hive (the rest are counted).
    #[arg(long, value_name = "N", default_value_t = diff::DEFAULT_MAX_CHANGES)]
    pub max_changes: usize,
}

pub fn run(o: Options) -> anyhow::Result<i32> {
    let d = diff::diff_paths(&o.a, &o.b, diff::Options { all: o.all, max_changes: o.max_changes })?;
    let out = if o.json { d.to_json()? } else { text(&d) };
    super::emit(out.as_bytes())?;
    Ok(if d.differences == 0 { 0 } else { 1 })
}

fn side(o: &mut String, tag: &str, s: &Side) {
    let set = s.control_set.as_deref().map(|c| format!(", CurrentControlSet = {c}")).unwrap_or_default();
    outln!(o, "{tag}: {} ({}{set})", s.path, s.kind);
    let hives: Vec<String> = s.hives.iter().map(|h| format!("{} {}", h.name, h.state)).collect();
    outln!(o, "   hives: {}", hives.join(", "));
}

fn lw(x: Option<&str>) -> &str {
    x.unwrap_or("-")
}

fn row_value(v: &Option<RowValue>) -> String {
    match v {
        None => "(no row)".into(),
        Some(v) => format!("{} ({})", show_json(&v.effective), v.source),
    }
}

fn rows(o: &mut String, title: &str, rows: &[RowChange]) {
    if rows.is_empty() {
        return;
    }
    outln!(o, "{title}:");
    for r in rows {
        let mark = match r.change {
            "added" => '+',
            "removed" => '-',
            _ => '~',
        };
        let (ta, tb) = (r.a.as_ref().and_then(|v| v.last_write.as_deref()), r.b.as_ref().and_then(|v| v.last_write.as_deref()));
        outln!(o, "  {mark} {:<26} {}\\{}: {} -> {}", r.id, r.path, r.name, row_value(&r.a), row_value(&r.b));
        outln!(o, "      key written: A {}, B {}", lw(ta), lw(tb));
    }
}

fn findings(o: &mut String, f: &[FindingChange]) {
    if f.is_empty() {
        return;
    }
    outln!(o, "Findings:");
    for c in f {
        match (&c.a, &c.b) {
            (None, Some(b)) => outln!(o, "  + [{}] {}: {} (appeared; key written {})", b.severity.name(), c.check, b.message, lw(b.last_write.as_deref())),
            (Some(a), None) => outln!(o, "  - [{}] {}: {} (resolved; key written {} in A)", a.severity.name(), c.check, a.message, lw(a.last_write.as_deref())),
            (Some(a), Some(b)) => {
                outln!(o, "  ~ [{} -> {}] {}: {}", a.severity.name(), b.severity.name(), c.check, b.message);
                if a.message != b.message {
                    outln!(o, "      was: {}", a.message);
                }
                outln!(o, "      key written: A {}, B {}", lw(a.last_write.as_deref()), lw(b.last_write.as_deref()));
            }
            (None, None) => {}
        }
    }
}

fn data(d: &Option<Data>) -> String {
    d.as_ref().map_or_else(|| "(none)".into(), |d| format!("{} ({})", show_json(&d.data), d.ty))
}

fn hive(o: &mut String, h: &HiveDiff) {
    match h.status {
        "identical" => outln!(o, "  {}: identical", h.hive),
        "missing" => outln!(o, "  {}: on neither side", h.hive),
        "only-a" => outln!(o, "  {}: loaded in A only (not compared)", h.hive),
        "only-b" => outln!(o, "  {}: loaded in B only (not compared)", h.hive),
        _ => {
            outln!(o, "  {}: {} change(s) ({} keys in A, {} in B)", h.hive, h.changes.len() + h.omitted, h.keys_a, h.keys_b);
            for c in &h.changes {
                let when = format!("[A {}, B {}]", lw(c.a_last_write.as_deref()), lw(c.b_last_write.as_deref()));
                let name = c.name.as_deref().map(|n| if n.is_empty() { "(Default)" } else { n }).unwrap_or_default();
                match c.change {
                    "key-added" => outln!(o, "    + [{}] (key added) {when}", c.key),
                    "key-removed" => outln!(o, "    - [{}] (key removed) {when}", c.key),
                    "value-added" => outln!(o, "    + {}\\{name}: {} {when}", c.key, data(&c.new)),
                    "value-removed" => outln!(o, "    - {}\\{name}: {} {when}", c.key, data(&c.old)),
                    _ => outln!(o, "    ~ {}\\{name}: {} -> {} {when}", c.key, data(&c.old), data(&c.new)),
                }
            }
            if h.omitted > 0 {
                outln!(o, "    ... and {} more change(s) (raise --max-changes to list them)", h.omitted);
            }
        }
    }
}

/// The text report.
fn text(d: &Diff) -> String {
    let mut o = String::new();
    side(&mut o, "A", &d.a);
    side(&mut o, "B", &d.b);
    outln!(o);
    rows(&mut o, "Settings", &d.settings);
    rows(&mut o, "Accounts", &d.accounts);
    rows(&mut o, "Logon rights", &d.rights);
    rows(&mut o, "Firewall", &d.firewall);
    findings(&mut o, &d.findings);
    if let Some(hs) = &d.hives {
        outln!(o, "Hives:");
        for h in hs {
            hive(&mut o, h);
        }
    }
    if d.differences == 0 {
        outln!(o, "No differences.");
    } else {
        outln!(o, "{} difference(s).", d.differences);
    }
    o
}
