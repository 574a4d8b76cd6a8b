//! `rdprescue fix IMAGE --out NEW`: write the fixes of the chosen findings to a
//! new image (a full copy, or a differencing child of the untouched input),
//! verify it by reading it back, and only then move it into place.
//!
//! Exit: 0 output written and every targeted check now passes; 1 output
//! written but a targeted check still fires; 2 error (no output left behind).

use super::inspect;
use anyhow::{bail, Context};
use rdprescue::hive::edit::{display_name, show_json, Edit, EditOp};
use rdprescue::image;
use rdprescue::machine::Machine;
use rdprescue::rdp::{self, catalog, profiles};
use rdprescue::repair::{self, Destination, Plan};
use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

pub struct Options {
    pub image: PathBuf,
    pub out: Option<PathBuf>,
    pub diff_child: bool,
    pub checks: Vec<String>,
    pub all: bool,
    pub profiles: Vec<String>,
    pub dry_run: bool,
    pub in_place: bool,
    pub undo: Option<PathBuf>,
}

/// What to fix, from --check / --all / --profile.
struct Selection {
    actions: Vec<Edit>,
    /// Check ids whose findings are targeted (re-checked after the fix).
    targeted: BTreeSet<String>,
    /// Lines to tell the user: skipped manual fixes, checks with nothing to fix.
    notes: Vec<String>,
}

fn select(o: &Options, loaded: &inspect::Loaded, ins: &rdp::eval::Inspection) -> anyhow::Result<Selection> {
    if o.checks.is_empty() && !o.all && o.profiles.is_empty() {
        let names: Vec<&str> = profiles::PROFILES.iter().map(|p| p.name).collect();
        bail!("say what to fix: --check ID (repeatable), --all, or --profile NAME ({})", names.join(", "));
    }
    let mut s = Selection { actions: Vec::new(), targeted: BTreeSet::new(), notes: Vec::new() };
    let push = |s: &mut Selection, a: &[Edit]| {
        for x in a {
            if !s.actions.contains(x) {
                s.actions.push(x.clone());
            }
        }
    };
    let ids = catalog::ids();
    for c in &o.checks {
        let Some(id) = ids.iter().find(|i| i.eq_ignore_ascii_case(c)) else { bail!("--check {c}: unknown check id (see `rdprescue inspect` or README)") };
        let found: Vec<_> = ins.findings.iter().filter(|f| f.check == *id).collect();
        if found.is_empty() {
            s.notes.push(format!("{id}: not reported on this image, nothing to fix"));
        }
        for f in found {
            if f.actions.is_empty() {
                s.notes.push(format!("{id}: no automatic fix; {}", f.fix));
            } else {
                s.targeted.insert(id.to_string());
                push(&mut s, &f.actions);
            }
        }
    }
    if o.all {
        for f in &ins.findings {
            if f.actions.is_empty() {
                s.notes.push(format!("{}: no automatic fix; {}", f.check, f.fix));
            } else {
                s.targeted.insert(f.check.to_string());
                push(&mut s, &f.actions);
            }
        }
    }
    for name in &o.profiles {
        let Some(p) = profiles::find(name) else {
            let names: Vec<&str> = profiles::PROFILES.iter().map(|p| p.name).collect();
            bail!("--profile {name}: unknown profile ({})", names.join(", "));
        };
        for f in ins.findings.iter().filter(|f| p.checks.iter().any(|c| f.check == *c)) {
            if f.actions.is_empty() {
                s.notes.push(format!("{}: no automatic fix; {}", f.check, f.fix));
            } else {
                s.targeted.insert(f.check.to_string());
            }
        }
        push(&mut s, &p.actions(loaded.hives(), ins));
    }
    s.notes.dedup();
    Ok(s)
}

/// `.reg`-style description of a plan: every change with its old and new data.
pub fn describe(plan: &Plan) -> String {
    let mut o = String::new();
    for e in &plan.edits {
        super::outln!(o, "{} ({}): {} change(s), {} bytes of the file rewritten, clean at sequence {}", e.hive, e.location, e.changes.len(), e.bytes_changed, e.new_sequence);
        for c in &e.changes {
            let old = show_json(&c.old);
            let (root, key) = (c.action.hive.short_root(), &c.action.key);
            let line = match &c.action.op {
                EditOp::SetValue { name, data } => format!("{root}\\{key}\\{}: {old} -> {} ({})", display_name(name), show_json(&data.json()), data.type_name()),
                EditOp::DeleteValue { name } => format!("{root}\\{key}\\{}: {old} -> (deleted)", display_name(name)),
                EditOp::DeleteKey => format!("[-{root}\\{key}] ({old})"),
                EditOp::CreateKey => format!("[{root}\\{key}] (new key)"),
            };
            super::outln!(o, "  {line}");
        }
    }
    o
}

/// Write the plan to a new image at `out` through the library's one write
/// pipeline (with a progress bar for full copies). Returns the inspection of
/// the written image, as read back before it was moved into place.
pub fn write_output(m: &Machine, plan: &Plan, out: &Path, diff_child: bool) -> anyhow::Result<rdp::eval::Inspection> {
    let dest = if diff_child { Destination::DiffChild(out) } else { Destination::Copy(out) };
    let total = m.image().map_or(0, |i| i.disk.len());
    let bar = indicatif::ProgressBar::with_draw_target(Some(total), indicatif::ProgressDrawTarget::stderr());
    bar.set_style(indicatif::ProgressStyle::with_template("copying {bar:30} {bytes}/{total_bytes} {bytes_per_sec} eta {eta}").expect("static template"));
    let done = repair::commit(m, plan, dest, &mut |done, total| {
        bar.set_length(total);
        bar.set_position(done);
    });
    bar.finish_and_clear();
    done?.after.context("verification: the output was not inspected")
}

pub fn run(o: Options) -> anyhow::Result<i32> {
    let loaded = inspect::load(&o.image)?;
    let Some(img) = loaded.machine.image() else {
        bail!("fix needs a disk image or device; {} is a hive file or directory (use `rdprescue reg set` on a copy of it)", o.image.display());
    };
    let before = rdp::inspect(loaded.hives());
    let sel = select(&o, &loaded, &before)?;
    for n in &sel.notes {
        eprintln!("note: {n}");
    }
    if sel.actions.is_empty() {
        println!("Nothing to change.");
        return Ok(0);
    }
    if o.in_place && img.info.format != image::Format::Raw {
        bail!("--in-place writes raw disks and block devices only; {} is {}: use --out (full copy or --diff-child)", o.image.display(), img.info.format.name());
    }
    let plan = repair::plan(&loaded.machine, &sel.actions)?;
    if plan.edits.is_empty() {
        println!("Nothing to change: every value already has the data the fix would write.");
        return Ok(0);
    }
    print!("{}", describe(&plan));
    println!("Disk: {} bytes in {} range(s) change.", plan.patch.len(), plan.patch.ranges().count());
    if o.dry_run {
        println!("Dry run: nothing written.");
        return Ok(0);
    }
    let after = if o.in_place {
        let Some(undo) = &o.undo else { bail!("--in-place needs --undo FILE (where the original bytes are saved first)") };
        if o.out.is_some() || o.diff_child {
            bail!("--in-place writes the disk itself: no --out or --diff-child");
        }
        super::inplace::apply(img, &o.image, &plan, undo)?;
        println!("Wrote {} in place, verified by reading it back; undo with `rdprescue undo {} {}`.", o.image.display(), o.image.display(), undo.display());
        rdp::inspect(inspect::load(&o.image)?.hives())
    } else {
        let Some(out) = &o.out else { bail!("--out NEW is required (or --dry-run, or --in-place --undo FILE for a raw device)") };
        let after = write_output(&loaded.machine, &plan, out, o.diff_child)?;
        println!("Wrote {} ({}), verified by reading it back.", out.display(), if o.diff_child { "differencing child of the input" } else { "full copy" });
        after
    };
    let mut still = Vec::new();
    println!("Checks:");
    for id in &sel.targeted {
        let sev = before.findings.iter().find(|f| f.check == id.as_str()).map_or("-", |f| f.severity.name());
        let now = after.findings.iter().find(|f| f.check == id.as_str());
        match now {
            None => println!("  {id:<28} {sev:<8} -> fixed"),
            Some(f) => {
                println!("  {id:<28} {sev:<8} -> still reported: {}", f.message);
                still.push(id.clone());
            }
        }
    }
    let rest = after.findings.len();
    println!("{rest} finding(s) remain on the output{}", if rest > 0 { " (run `rdprescue inspect` on it)" } else { "" });
    Ok(if still.is_empty() { 0 } else { 1 })
}
