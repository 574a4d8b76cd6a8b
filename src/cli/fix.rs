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
use rdprescue::rdp::{self, catalog, profiles};
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
    /// Write the fixed disk to this NEW Azure page blob (a SAS URL allowing create, write,
    /// read and delete; it must not exist). IMAGE is then the SAS URL of a page blob or
    /// snapshot holding a fixed VHD: the storage service copies it server-side, and only the
    /// changed 512-byte pages are uploaded, then read back and verified.
    #[arg(long, value_name = "URL")]
    pub out_url: Option<String>,
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

fn select(o: &Options, m: &Machine, ins: &rdp::eval::Inspection) -> anyhow::Result<Selection> {
    if o.checks.is_empty() && !o.all && o.profiles.is_empty() {
        let names: Vec<&str> = profiles::PROFILES.iter().map(|p| p.name).collect();
        bail!(
            "say what to fix: --check ID (repeatable), --all, or --profile NAME ({})",
            names.join(", ")
        );
    }
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
    let ids = catalog::ids();
    for c in &o.checks {
        let Some(id) = ids.iter().find(|i| i.eq_ignore_ascii_case(c)) else {
            bail!("--check {c}: unknown check id (see `rdprescue inspect` or README)")
        };
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
        let Some(p) = profiles::find(name) else {
            let names: Vec<&str> = profiles::PROFILES.iter().map(|p| p.name).collect();
            bail!("--profile {name}: unknown profile ({})", names.join(", "));
        };
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
    if let Some(u) = &o.user {
        if !o.profiles.iter().any(|p| p.eq_ignore_ascii_case(profiles::UNLOCK_ADMIN)) {
            bail!("--user {u} applies to --profile {} only", profiles::UNLOCK_ADMIN);
        }
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

pub fn run(o: Options) -> anyhow::Result<i32> {
    let m = Machine::open(&o.image)?;
    // A mounted Windows volume or a hive directory: its hive files are written.
    let files = matches!(m.origin(), Origin::MountedVolume | Origin::Directory);
    if m.image().is_none() && !files {
        bail!("fix needs a disk image or device; {} is a hive file or directory (use `rdprescue reg set` on a copy of it)", o.image.display());
    }
    let mut before = rdp::inspect(&m);
    rdprescue::policy::annotate(&m, &mut before);
    let sel = select(&o, &m, &before)?;
    for n in &sel.notes {
        eprintln!("note: {n}");
    }
    if sel.actions.is_empty() {
        println!("Nothing to change.");
        return Ok(0);
    }
    let blob = o.out_url.as_deref().map(|u| blob_urls(&o, u)).transpose()?;
    let default_child = (o.diff_child && o.out.is_none() && !o.in_place && !files).then(|| default_child_name(&o.image));
    let dest = match (&o.out, &o.undo) {
        _ if blob.is_some() => blob.as_ref().map(|(source, dest)| Destination::PageBlob { source, dest }),
        _ if files => files_destination(&o)?,
        (None, _) if default_child.is_some() => default_child.as_deref().map(Destination::DiffChild),
        _ if o.in_place && (o.out.is_some() || o.diff_child) => {
            bail!("--in-place writes the disk itself: no --out or --diff-child")
        }
        (_, Some(undo)) if o.in_place => Some(Destination::InPlace { undo }),
        _ if o.in_place => {
            bail!("--in-place needs --undo FILE (where the original bytes are saved first)")
        }
        (Some(out), _) if o.diff_child => Some(Destination::DiffChild(out)),
        (Some(out), _) => Some(Destination::Copy(out)),
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
    let plan = repair::plan_with_files(&m, &sel.actions, &sel.files)?;
    if plan.edits.is_empty() && plan.files.is_empty() {
        println!("Nothing to change: every value already has the data the fix would write.");
        return Ok(0);
    }
    print!("{plan}");
    if !files {
        println!(
            "Disk: {} bytes in {} range(s) change.",
            plan.patch.len(),
            plan.patch.ranges().count()
        );
    }
    let Some(dest) = dest.filter(|_| !o.dry_run) else {
        println!("Dry run: nothing written.");
        return Ok(0);
    };
    let after = super::commit(&m, &plan, dest)?
        .after
        .context("verification: the output was not inspected")?;
    match dest {
        Destination::InPlace { undo } => println!(
            "Wrote {} in place, verified by reading it back; undo with `rdprescue undo {} {}`.",
            o.image.display(),
            o.image.display(),
            undo.display()
        ),
        Destination::DiffChild(out) => println!(
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
        Destination::Copy(out) | Destination::HiveFile(out) => println!(
            "Wrote {} (full copy), verified by reading it back.",
            out.display()
        ),
    }
    let mut still = Vec::new();
    println!("Checks:");
    for id in &sel.targeted {
        let sev = before
            .findings
            .iter()
            .find(|f| f.check == id.as_str())
            .map_or("-", |f| f.severity.name());
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
    println!(
        "{rest} finding(s) remain on the output{}",
        if rest > 0 {
            " (run `rdprescue inspect` on it)"
        } else {
            ""
        }
    );
    Ok(if still.is_empty() { 0 } else { 1 })
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

/// `rdprescue undo DEVICE UNDO_FILE [--force]`, or `rdprescue undo DIR` for
/// the hive files of a mounted volume (their undo copies are beside them).
pub fn undo(dev: &Path, file: Option<&Path>, force: bool) -> anyhow::Result<i32> {
    if dev.is_dir() {
        if let Some(f) = file {
            bail!("{} is a directory: its undo copies are the <hive>{} files beside its hive files, not {}", dev.display(), repair::commit::UNDO_SUFFIX, f.display());
        }
        let r = repair::commit::undo_files(dev)?;
        println!(
            "Restored {} hive file(s) of {} from their undo copies ({} already held the original bytes); the undo copies are removed.",
            r.written,
            dev.display(),
            r.already
        );
        return Ok(0);
    }
    let Some(file) = file else { bail!("name the undo file: rdprescue undo DEVICE UNDO_FILE") };
    let r = repair::undo(dev, file, force)?;
    println!(
        "Restored {} range(s) of {} from {} ({} already held the original bytes).",
        r.written,
        dev.display(),
        file.display(),
        r.already
    );
    Ok(0)
}
