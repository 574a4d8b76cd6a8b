//! `rdprescue fix IMAGE --out NEW`: write the fixes of the chosen findings to a
//! new image (a full copy, or a differencing child of the untouched input),
//! verify it by reading it back, and only then move it into place.
//!
//! Exit: 0 output written and every targeted check now passes; 1 output
//! written but a targeted check still fires; 2 error (no output left behind).

use anyhow::{bail, Context};
use rdprescue::hive::edit::Edit;
use rdprescue::image;
use rdprescue::machine::{Machine, Origin};
use super::preflight;
use rdprescue::rdp::{self, profiles};
use serde_json::{json, Value as J};
use rdprescue::repair::{self, Destination};
use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

#[derive(clap::Args)]
pub struct Options {
    /// Image file or device; opened read-only, never written. Or a mounted Windows volume
    /// (F:\, /mnt/x) or a directory of hive files: written only with --in-place.
    pub image: PathBuf,
    /// The new image (must not exist); for a mounted volume or hive directory, a new directory
    /// for the edited hive files. Invisible until verified, then published; never replaces a file.
    #[arg(long, short)]
    pub out: Option<PathBuf>,
    /// Write a small differencing child (VHD or VHDX) whose parent is the input, instead of a full copy.
    /// Without --out it is written beside the input as NAME-rdprescue.EXT (a Hyper-V checkpoint's
    /// disk.avhdx gets disk-rdprescue.avhdx).
    #[arg(long)]
    pub diff_child: bool,
    #[command(flatten)]
    pub format: super::FormatArg,
    /// Fix this check's findings (repeatable), e.g. --check rdp-deny-local.
    #[arg(long = "check", value_name = "ID")]
    pub checks: Vec<String>,
    /// Fix every finding that has an automatic fix.
    #[arg(long)]
    pub all: bool,
    /// A named repair (repeatable): reset-rdp, disable-nla, enable-nla, nla-off-keep-tls, tls, fips-off, safe-mode-off, unlock-admin.
    #[arg(long = "profile", value_name = "NAME")]
    pub profiles: Vec<String>,
    /// With --profile reset-rdp: move a custom listener port back to 3389 (default: keep it and open it in the firewall).
    #[arg(long)]
    pub reset_port: bool,
    /// With --profile unlock-admin: the local account to enable and unlock (default: the
    /// built-in Administrator, RID 500).
    #[arg(long, value_name = "NAME")]
    pub user: Option<String>,
    /// Print the exact changes (old -> new) and write nothing.
    #[arg(long)]
    pub dry_run: bool,
    /// Write the fix into IMAGE itself: a raw disk or block device (e.g. the OS disk
    /// attached to a rescue VM, unmounted), only with --undo; or the hive files of a mounted
    /// Windows volume (each original kept beside it as <hive>.rdprescue-undo).
    #[arg(long)]
    pub in_place: bool,
    /// With --in-place: save the original bytes to this new file first (for `rdprescue undo`).
    #[arg(long, value_name = "FILE")]
    pub undo: Option<PathBuf>,
    /// Print JSON (the plan, each targeted check before and after, the output, the
    /// verification) instead of text; errors too: {"error": {...}} on stdout.
    #[arg(long)]
    pub json: bool,
    /// Write the fixed disk to this NEW Azure page blob (a SAS URL allowing create, write,
    /// read and delete; it must not exist). IMAGE is then the SAS URL of a page blob or
    /// snapshot holding a fixed VHD: the storage service copies it server-side, and only the
    /// changed 512-byte pages are uploaded, then read back and verified.
    #[arg(long, value_name = "URL")]
    pub out_url: Option<String>,
    /// How a new image (--out) is read back before it is published: `changed` reopens the
    /// container and compares every changed range, the partition table and the written volume's
    /// first sectors byte for byte; `full` opens it as a new machine and re-reads and re-recovers
    /// every hive (slower).
    #[arg(long, value_enum, value_name = "HOW", default_value_t = VerifyArg::Changed)]
    pub verify: VerifyArg,
}

/// `--verify`.
#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum VerifyArg {
    Changed,
    Full,
}

impl From<VerifyArg> for repair::Verify {
    fn from(v: VerifyArg) -> Self {
        match v {
            VerifyArg::Changed => repair::Verify::Changed,
            VerifyArg::Full => repair::Verify::Full,
        }
    }
}

/// What to fix, from --check / --all / --profile.
struct Selection {
    actions: Vec<Edit>,
    /// Local Registry.pol entries rewritten with the findings (policy::Reapply).
    files: Vec<repair::FileEdit>,
    /// Check ids whose findings are targeted (re-checked after the fix).
    targeted: BTreeSet<String>,
    /// Lines to tell the user: skipped manual fixes, checks with nothing to fix.
    notes: Vec<String>,
}

/// (The arguments were validated by [`preflight`] before the image was opened.)
fn select(o: &Options, m: &Machine, ins: &rdp::eval::Inspection) -> anyhow::Result<Selection> {
    let mut s = Selection {
        actions: Vec::new(),
        files: Vec::new(),
        targeted: BTreeSet::new(),
        notes: Vec::new(),
    };
    let push = |s: &mut Selection, a: &[Edit]| {
        for x in a {
            if !s.actions.contains(x) {
                s.actions.push(x.clone());
            }
        }
    };
    for c in &o.checks {
        let id = preflight::check_id(c)?;
        let found: Vec<_> = ins.findings.iter().filter(|f| f.check == *id).collect();
        if found.is_empty() {
            s.notes
                .push(format!("{id}: not reported on this image, nothing to fix"));
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
                s.notes
                    .push(format!("{}: no automatic fix; {}", f.check, f.fix));
            } else {
                s.targeted.insert(f.check.to_string());
                push(&mut s, &f.actions);
            }
        }
    }
    for name in &o.profiles {
        let p = preflight::profile(name)?;
        for f in ins
            .findings
            .iter()
            .filter(|f| p.checks.iter().any(|c| f.check == *c))
        {
            if f.actions.is_empty() {
                s.notes
                    .push(format!("{}: no automatic fix; {}", f.check, f.fix));
            } else {
                s.targeted.insert(f.check.to_string());
            }
        }
        if p.name == profiles::UNLOCK_ADMIN {
            if let Some(t) = rdp::accounts::unlock_target(m, o.user.as_deref()) {
                s.notes.push(format!("{}: acting on {t}", p.name));
            }
        }
        let po = profiles::Options { reset_port: o.reset_port };
        push(&mut s, &p.actions_for(m, ins, &po, o.user.as_deref()).map_err(anyhow::Error::msg)?);
        s.notes.extend(p.notes(m, &po));
    }
    // Group Policy files that would write a targeted finding's bad value back.
    for f in ins.findings.iter().filter(|f| s.targeted.contains(f.check.as_ref())) {
        for r in &f.reapplied_by {
            match &r.rewrite {
                Some(w) if !s.files.contains(w) => s.files.push(w.clone()),
                Some(_) => {}
                None => s.notes.push(format!("{}: {} sets {} again at the next Group Policy refresh: {}", f.check, r.file, r.value, r.remedy)),
            }
        }
    }
    s.notes.dedup();
    Ok(s)
}

/// Everything `fix` can refuse from its arguments alone, before the image is
/// opened (see `preflight`): unknown ids and profiles, nothing selected,
/// contradictory flags, a missing, existing or homeless output or undo file.
fn preflight(o: &Options) -> anyhow::Result<()> {
    for c in &o.checks {
        preflight::check_id(c)?;
    }
    for p in &o.profiles {
        preflight::profile(p)?;
    }
    if o.checks.is_empty() && !o.all && o.profiles.is_empty() {
        let names: Vec<&str> = profiles::PROFILES.iter().map(|p| p.name).collect();
        preflight::usage!("say what to fix: --check ID (repeatable), --all, or --profile NAME ({})", names.join(", "));
    }
    if let Some(u) = &o.user {
        if !o.profiles.iter().any(|p| p.eq_ignore_ascii_case(profiles::UNLOCK_ADMIN)) {
            preflight::usage!("--user {u} applies to --profile {} only", profiles::UNLOCK_ADMIN);
        }
    }
    // A directory is a mounted Windows volume or a hive directory: its hive files are written.
    let files = o.image.is_dir();
    if o.format.format.is_some() && (files || o.in_place || o.out_url.is_some()) {
        preflight::usage!("--format names the container of a new image (--out NEW): not with --in-place, --out-url or a directory of hive files");
    }
    if files {
        if o.undo.is_some() {
            preflight::usage!("--undo FILE is for disks: on a mounted volume each original hive file is kept beside it as <hive>{} (undo with `rdprescue undo {}`)", repair::commit::UNDO_SUFFIX, o.image.display());
        }
        if o.diff_child {
            preflight::usage!("--diff-child needs a VHD or VHDX image; {} is a directory", o.image.display());
        }
        if o.in_place && o.out.is_some() {
            preflight::usage!("--in-place writes the hive files themselves: no --out");
        }
        if !o.in_place && o.out.is_none() && !o.dry_run {
            preflight::usage!("--out NEWDIR (a new directory for the edited hive files) or --in-place is required (or --dry-run)");
        }
    } else if o.out_url.is_some() {
        if o.out.is_some() || o.in_place || o.diff_child || o.undo.is_some() {
            preflight::usage!("--out-url writes a new page blob: no --out, --in-place, --undo or --diff-child with it");
        }
    } else if o.in_place {
        if o.out.is_some() || o.diff_child {
            preflight::usage!("--in-place writes the disk itself: no --out or --diff-child");
        }
        match &o.undo {
            Some(u) => preflight::new_path("--undo", u, &[&o.image])?,
            None => preflight::usage!("--in-place needs --undo FILE (where the original bytes are saved first)"),
        }
    } else if o.out.is_none() && o.diff_child {
        preflight::new_path("the default --diff-child output", &default_child_name(&o.image), &[&o.image])?;
    } else if o.out.is_none() && !o.dry_run {
        preflight::usage!("--out NEW is required (or --dry-run, or --in-place --undo FILE for a raw device)");
    }
    if let Some(out) = &o.out {
        preflight::new_path("--out", out, &[&o.image])?;
    }
    Ok(())
}

fn dest_json(d: Option<&Destination>) -> J {
    let (kind, path) = match d {
        None => return J::Null,
        Some(Destination::Copy { path, .. }) => ("copy", Some(*path)),
        Some(Destination::DiffChild { path, .. }) => ("diff-child", Some(*path)),
        Some(Destination::HiveFile(p)) => ("hive-file", Some(*p)),
        Some(Destination::InPlace { undo }) => ("in-place", Some(*undo)),
        Some(Destination::InPlaceFiles) => ("in-place-files", None),
        Some(Destination::HiveDir(p)) => ("hive-dir", Some(*p)),
        // The blob's URL as Display shows it: without its SAS query.
        Some(Destination::PageBlob { dest, .. }) => return json!({"kind": "page-blob", "url": dest.to_string()}),
    };
    let key = if kind == "in-place" { "undo" } else { "path" };
    json!({"kind": kind, key: path.map(|p| p.display().to_string())})
}

/// The plan as data: per hive its changes (old and new data), per file its
/// byte edits, and the size of the disk patch.
fn plan_json(plan: &repair::Plan, files: bool) -> J {
    use rdprescue::hive::edit::EditOp;
    let hives: Vec<J> = plan
        .edits
        .iter()
        .map(|e| {
            let changes: Vec<J> = e
                .changes
                .iter()
                .map(|c| {
                    let key = format!("{}\\{}", c.action.hive.short_root(), c.action.key);
                    match &c.action.op {
                        EditOp::SetValue { name, data } => json!({"op": "set", "key": key, "name": name, "old": c.old, "new": data.json(), "type": data.type_name()}),
                        EditOp::DeleteValue { name } => json!({"op": "delete-value", "key": key, "name": name, "old": c.old, "new": null}),
                        EditOp::DeleteKey => json!({"op": "delete-key", "key": key, "old": c.old}),
                        EditOp::CreateKey => json!({"op": "create-key", "key": key}),
                    }
                })
                .collect();
            json!({"hive": e.hive.name(), "location": e.location.to_string(), "changes": changes, "bytes_changed": e.bytes_changed, "new_sequence": e.new_sequence})
        })
        .collect();
    let file_plans: Vec<J> = plan
        .files
        .iter()
        .map(|p| {
            let edits: Vec<J> = p.edits.iter().map(|e| json!({"offset": e.offset, "old": hex::encode(&e.old), "new": hex::encode(&e.new), "what": e.what})).collect();
            json!({"partition": p.partition, "path": p.path, "edits": edits, "bytes_changed": p.bytes_changed})
        })
        .collect();
    let disk = (!files).then(|| json!({"bytes": plan.patch.len(), "ranges": plan.patch.ranges().count()}));
    json!({"hives": hives, "files": file_plans, "disk": disk})
}

pub fn run(o: Options) -> anyhow::Result<i32> {
    preflight(&o)?;
    let m = Machine::open(&o.image)?;
    // A mounted Windows volume or a hive directory: its hive files are written.
    let files = matches!(m.origin(), Origin::MountedVolume | Origin::Directory);
    if m.image().is_none() && !files {
        bail!("fix needs a disk image or device; {} is a hive file or directory (use `rdprescue reg set` on a copy of it)", o.image.display());
    }
    // The editor's buffer for SYSTEM is faulted in on the other core meanwhile.
    let warm = repair::Warm::start(&m);
    let mut before = rdp::inspect(&m);
    rdprescue::policy::annotate(&m, &mut before);
    let sel = select(&o, &m, &before)?;
    // With --json, everything goes into one document printed at the end.
    let mut doc = json!({
        "image": o.image.display().to_string(),
        "dry_run": o.dry_run,
        "notes": sel.notes,
        "destination": null,
        "plan": null,
        "checks": [],
        "output": null,
        "verified": false,
        "remaining_findings": null,
        "result": "nothing-to-change",
    });
    let finish = |doc: &J, code: i32| -> anyhow::Result<i32> {
        let mut s = serde_json::to_string_pretty(doc)?;
        s.push('\n');
        super::emit(s.as_bytes())?;
        Ok(code)
    };
    if !o.json {
        for n in &sel.notes {
            eprintln!("note: {n}");
        }
    }
    if sel.actions.is_empty() {
        if o.json {
            return finish(&doc, 0);
        }
        println!("Nothing to change.");
        return Ok(0);
    }
    let blob = o.out_url.as_deref().map(|u| blob_urls(&o, u)).transpose()?;
    let format = o.format.format;
    let default_child = (o.diff_child && o.out.is_none() && !o.in_place && !files).then(|| default_child_name(&o.image));
    let dest = match (&o.out, &o.undo) {
        _ if blob.is_some() => blob.as_ref().map(|(source, dest)| Destination::PageBlob { source, dest }),
        _ if files => files_destination(&o)?,
        (None, _) if default_child.is_some() => default_child.as_deref().map(|path| Destination::DiffChild { path, format }),
        _ if o.in_place && (o.out.is_some() || o.diff_child) => {
            bail!("--in-place writes the disk itself: no --out or --diff-child")
        }
        (_, Some(undo)) if o.in_place => Some(Destination::InPlace { undo }),
        _ if o.in_place => {
            bail!("--in-place needs --undo FILE (where the original bytes are saved first)")
        }
        (Some(out), _) if o.diff_child => Some(Destination::DiffChild { path: out, format }),
        (Some(out), _) => Some(Destination::Copy { path: out, format }),
        (None, _) if o.dry_run => None,
        (None, _) => bail!(
            "--out NEW is required (or --dry-run, or --in-place --undo FILE for a raw device)"
        ),
    };
    if let (Some(Destination::InPlace { .. }), Some(img)) = (dest, m.image()) {
        if img.info.format != image::Format::Raw {
            bail!("--in-place writes raw disks and block devices only; {} is {}: use --out (full copy or --diff-child)", o.image.display(), img.info.format.name());
        }
    }
    // A container this tool reads but does not write: refused before the plan.
    match (dest, m.image()) {
        (Some(Destination::Copy { path, format }), Some(img)) => image::write::writable(img, path, format, false)?,
        (Some(Destination::DiffChild { path, format }), Some(img)) => {
            image::write::writable(img, path, format, true)?;
            image::write::check_child_format(img.info.format, path, format)?;
        }
        _ => {}
    }
    doc["destination"] = dest_json(dest.as_ref());
    warm.finish();
    let plan = repair::plan_with_files(&m, &sel.actions, &sel.files)?;
    if plan.edits.is_empty() && plan.files.is_empty() {
        if o.json {
            return finish(&doc, 0);
        }
        println!("Nothing to change: every value already has the data the fix would write.");
        return Ok(0);
    }
    doc["plan"] = plan_json(&plan, files);
    let sev_of = |id: &str| before.findings.iter().find(|f| f.check == id).map_or("-", |f| f.severity.name());
    let before_of = |id: &str| before.findings.iter().find(|f| f.check == id).map(|f| f.message.clone());
    doc["checks"] = sel.targeted.iter().map(|id| json!({"id": id, "severity": sev_of(id), "before": before_of(id), "after": null, "fixed": null})).collect();
    if !o.json {
        print!("{plan}");
        if !files {
            println!(
                "Disk: {} bytes in {} range(s) change.",
                plan.patch.len(),
                plan.patch.ranges().count()
            );
        }
    }
    let Some(dest) = dest.filter(|_| !o.dry_run) else {
        if o.json {
            doc["result"] = J::from("dry-run");
            return finish(&doc, 0);
        }
        println!("Dry run: nothing written.");
        return Ok(0);
    };
    if format.is_some() && !matches!(dest, Destination::Copy { .. } | Destination::DiffChild { .. }) {
        return Err(rdprescue::Error::Usage("--format applies to a new image (--out, with or without --diff-child), not to hive files or in-place writes".into()).into());
    }
    let committed = super::commit(&m, &plan, dest, o.verify.into())?;
    doc["output"] = J::from(committed.path.display().to_string());
    let after = committed
        .after
        .context("verification: the output was not inspected")?;
    doc["verified"] = J::from(true);
    if !o.json {
        match dest {
            Destination::InPlace { undo } => println!(
                "Wrote {} in place, verified by reading it back; undo with `rdprescue undo {} {}`.",
                o.image.display(),
                o.image.display(),
                undo.display()
            ),
            Destination::DiffChild { path: out, .. } => println!(
                "Wrote {} (differencing child of the input), verified by reading it back.",
                out.display()
            ),
            Destination::InPlaceFiles => println!(
                "Wrote the hive file(s) of {} in place, verified by reading them back; the originals are kept beside them as <hive>{}: undo with `rdprescue undo {}`.",
                o.image.display(),
                repair::commit::UNDO_SUFFIX,
                o.image.display()
            ),
            Destination::HiveDir(out) => println!(
                "Wrote {} (the edited hive files), verified by reading them back.",
                out.display()
            ),
            Destination::PageBlob { dest, .. } => {
                let (st, read) = (repair::blob::stats(), image::http::transfer());
                println!(
                    "Wrote {dest} (a server-side copy of the source with {} bytes of changed pages uploaded; {} request(s) to blob storage), verified by reading it back ({} bytes read in {} range request(s) from the source and the copy).",
                    st.uploaded, st.requests, read.bytes, read.requests
                )
            }
            Destination::Copy { path: out, .. } | Destination::HiveFile(out) => println!(
                "Wrote {} (full copy), verified by reading it back.",
                out.display()
            ),
        }
    }
    let mut still = Vec::new();
    let mut lines = String::new();
    let colour = !o.json && super::fmt::term().colour;
    for (i, id) in sel.targeted.iter().enumerate() {
        let sev = sev_of(id);
        // Padding is measured on the plain name: escape codes take no columns.
        let pad = " ".repeat(8usize.saturating_sub(sev.len()));
        let sev_shown = super::fmt::paint(colour, sev);
        let now = after.findings.iter().find(|f| f.check == id.as_str());
        doc["checks"][i]["after"] = now.map_or(J::Null, |f| J::from(f.message.clone()));
        doc["checks"][i]["fixed"] = J::from(now.is_none());
        match now {
            None => super::outln!(lines, "  {id:<28} {sev_shown}{pad} -> fixed"),
            Some(f) => {
                super::outln!(lines, "  {id:<28} {sev_shown}{pad} -> still reported: {}", f.message);
                still.push(id.clone());
            }
        }
    }
    let rest = after.findings.len();
    let code = if still.is_empty() { 0 } else { 1 };
    doc["remaining_findings"] = J::from(rest);
    doc["result"] = J::from(if still.is_empty() { "fixed" } else { "still-reported" });
    if o.json {
        return finish(&doc, code);
    }
    println!("Checks:");
    print!("{lines}");
    println!(
        "{rest} finding(s) remain on the output{}",
        if rest > 0 {
            " (run `rdprescue inspect` on it)"
        } else {
            ""
        }
    );
    Ok(code)
}

/// The differencing child `--diff-child` writes without `--out`: beside the
/// input, `NAME-rdprescue.EXT` with the input's extension (`.avhdx` for a
/// Hyper-V checkpoint, `.vhdx`, `.vhd`), so Hyper-V sees the kind of disk it
/// expects where the VM's disks are.
fn default_child_name(input: &Path) -> PathBuf {
    let stem = input.file_stem().map_or_else(|| "disk".into(), |s| s.to_string_lossy().into_owned());
    let ext = input.extension().map_or_else(|| "vhdx".into(), |e| e.to_string_lossy().into_owned());
    input.with_file_name(format!("{stem}-rdprescue.{ext}"))
}

/// Where a fix of a mounted volume's (or hive directory's) hive files goes:
/// the files themselves (--in-place) or a new directory (--out).
fn files_destination(o: &Options) -> anyhow::Result<Option<Destination<'_>>> {
    Ok(match &o.out {
        _ if o.undo.is_some() => bail!(
            "--undo FILE is for disks: on a mounted volume each original hive file is kept beside it as <hive>{} (undo with `rdprescue undo {}`)",
            repair::commit::UNDO_SUFFIX,
            o.image.display()
        ),
        _ if o.diff_child => bail!("--diff-child needs a VHD or VHDX image; {} is a directory", o.image.display()),
        Some(_) if o.in_place => bail!("--in-place writes the hive files themselves: no --out"),
        _ if o.in_place => Some(Destination::InPlaceFiles),
        Some(out) => Some(Destination::HiveDir(out)),
        None if o.dry_run => None,
        None => bail!("--out NEWDIR (a new directory for the edited hive files) or --in-place is required (or --dry-run)"),
    })
}

/// The source and destination blobs of `--out-url` (a remote fix): the source
/// is IMAGE's URL, the destination must be another blob; no other output.
fn blob_urls(o: &Options, dest: &str) -> anyhow::Result<(repair::blob::BlobUrl, repair::blob::BlobUrl)> {
    if o.out.is_some() || o.in_place || o.diff_child || o.undo.is_some() {
        bail!("--out-url writes a new page blob: no --out, --in-place, --undo or --diff-child with it");
    }
    let dest = repair::blob::BlobUrl::parse(dest).context("--out-url")?;
    let Some(source) = o.image.to_str().filter(|s| s.starts_with("https://") || s.starts_with("http://")) else {
        bail!("--out-url needs the source as a URL the storage service can copy (the SAS URL of a page blob or snapshot); for a local image use --out");
    };
    let source = repair::blob::BlobUrl::parse(source).context("the source")?;
    Ok((source, dest))
}

/// `rdprescue undo DEVICE UNDO_FILE [--force] [--json]`, or `rdprescue undo
/// DIR` for the hive files of a mounted volume (their undo copies are beside them).
pub fn undo(dev: &Path, file: Option<&Path>, force: bool, json_out: bool) -> anyhow::Result<i32> {
    preflight::undo(dev, file)?;
    let report = |kind: &str, written: usize, already: usize, text: String| -> anyhow::Result<i32> {
        let mut s = if json_out {
            serde_json::to_string_pretty(&json!({
                "device": dev.display().to_string(),
                "kind": kind,
                "undo_file": file.map(|f| f.display().to_string()),
                "restored": written,
                "already": already,
            }))?
        } else {
            text
        };
        s.push('\n');
        super::emit(s.as_bytes())?;
        Ok(0)
    };
    if dev.is_dir() {
        if let Some(f) = file {
            bail!("{} is a directory: its undo copies are the <hive>{} files beside its hive files, not {}", dev.display(), repair::commit::UNDO_SUFFIX, f.display());
        }
        let r = repair::commit::undo_files(dev)?;
        let text = format!(
            "Restored {} hive file(s) of {} from their undo copies ({} already held the original bytes); the undo copies are removed.",
            r.written,
            dev.display(),
            r.already
        );
        return report("hive-files", r.written as usize, r.already as usize, text);
    }
    let Some(file) = file else { bail!("name the undo file: rdprescue undo DEVICE UNDO_FILE") };
    let r = repair::undo(dev, file, force)?;
    let text = format!(
        "Restored {} range(s) of {} from {} ({} already held the original bytes).",
        r.written,
        dev.display(),
        file.display(),
        r.already
    );
    report("ranges", r.written as usize, r.already as usize, text)
}
