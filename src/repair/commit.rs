//! The one write pipeline. Every command that writes (`fix`, `reg
//! set/delete/import`, `undo`) hands a [`Plan`] and a [`Destination`] to
//! [`commit`], which:
//!
//! 1. creates the output invisibly beside its final place (never over an
//!    existing file, never over the input), with [`NewFile`],
//! 2. writes it (a full copy, a differencing child, or a hive file),
//! 3. flushes it to stable storage,
//! 4. opens it again as a fresh input and checks that every edited hive reads
//!    back byte for byte and clean (and, for images, runs the checks again),
//! 5. only then makes it visible under its name, without replacing anything
//!    that appeared there meanwhile, and flushes the directory.
//!
//! A failure at any step leaves no output behind.
//!
//! In place ([`Destination::InPlace`], raw disks and devices only) the order
//! is: refuse a disk the host uses, record the bytes each range holds now,
//! open the device exclusively, publish the undo file (the same [`NewFile`]
//! steps), write the ranges, flush, read the disk back and verify. [`undo`]
//! puts the recorded bytes back after verifying the whole undo file and the
//! disk first.

use super::{verify_loaded, HiveEdit, Plan};
use crate::error::{Error, Layer, Result};
use crate::image::write::{self, fault_point, Progress};
use crate::machine::{HiveLocation, Machine};
use crate::rdp::eval::Inspection;
use super::device::{self, DeviceWriter};
use super::output::NewFile;
use super::undo::{self, Undo};
use crate::image::Format;
use std::path::{Path, PathBuf};

/// Where a plan is written.
#[derive(Debug, Clone, Copy)]
pub enum Destination<'a> {
    /// A new image: a full copy of the input with the changes, in the
    /// input's container format.
    Copy(&'a Path),
    /// A new differencing child (VHD or VHDX) of the untouched input.
    DiffChild(&'a Path),
    /// A new hive file (the input machine is a hive file or a directory of
    /// them; the plan edits exactly one hive).
    HiveFile(&'a Path),
    /// The input itself (a raw disk or block device, unmounted), after its
    /// original bytes are saved to the new undo file `undo`.
    InPlace { undo: &'a Path },
}

/// What a commit wrote and found when it read the output back.
#[derive(Debug)]
pub struct Committed {
    /// Where the output now is.
    pub path: PathBuf,
    /// The checks run on the output as read back (image outputs).
    pub after: Option<Inspection>,
}

/// Write `plan` to `dest` (see the module documentation).
pub fn commit(machine: &Machine, plan: &Plan, dest: Destination, progress: Progress) -> Result<Committed> {
    match dest {
        Destination::Copy(target) => to_image(machine, plan, target, false, progress),
        Destination::DiffChild(target) => to_image(machine, plan, target, true, progress),
        Destination::HiveFile(target) => to_hive_file(machine, plan, target),
        Destination::InPlace { undo } => in_place(machine, plan, undo),
    }
}

/// A new image (full copy or differencing child) at `target`.
fn to_image(machine: &Machine, plan: &Plan, target: &Path, child: bool, progress: Progress) -> Result<Committed> {
    let image = machine.image().ok_or_else(|| Error::Usage(format!("{} is not a disk image: its hives are written with a hive-file destination", machine.path().display())))?;
    if plan.edits.iter().any(|e| !matches!(e.location, HiveLocation::Volume { .. })) {
        return Err(Error::Usage("the plan edits hive files, not an image".into()));
    }
    // A differencing child is read back through a path beside its target
    // (its parent locator is relative to its directory): a named temporary.
    let mut out = if child { NewFile::create_named(target, &[machine.path()])? } else { NewFile::create(target, &[machine.path()])? };
    if child {
        write::diff_child(image, &plan.patch, out.file_mut(), target)?;
    } else {
        write::full_copy(image, &plan.patch, out.file_mut(), progress)?;
    }
    out.sync()?;
    fault_point("before-verify");
    // Read the output back like any input: the container, the volumes, the
    // hive files (byte-exact and clean), and the checks.
    let written = Machine::open_image(&out.path()).map_err(|e| in_verification(&e))?;
    verify_loaded(&written, &plan.edits).map_err(|e| in_verification(&e))?;
    let after = crate::rdp::inspect(&written);
    publish(out)?;
    Ok(Committed { path: target.to_path_buf(), after: Some(after) })
}

/// A new hive file at `target` holding the plan's one edited hive.
fn to_hive_file(machine: &Machine, plan: &Plan, target: &Path) -> Result<Committed> {
    let [edit] = &plan.edits[..] else {
        return Err(Error::Usage(format!("a hive-file output holds one hive; this change edits {}", plan.edits.len())));
    };
    let mut out = NewFile::create(target, &[machine.path()])?;
    out.write_all(&edit.new_bytes)?;
    out.sync()?;
    fault_point("before-verify");
    verify_hive_file(&out.path(), edit)?;
    publish(out)?;
    Ok(Committed { path: target.to_path_buf(), after: None })
}

/// Make a verified output visible under its name (never replacing a file).
fn publish(out: NewFile) -> Result<()> {
    fault_point("before-rename");
    out.commit()
}

/// Write `plan` into the machine's own raw disk, after saving the undo file.
fn in_place(machine: &Machine, plan: &Plan, undo: &Path) -> Result<Committed> {
    let dev = machine.path();
    let image = machine.image().filter(|i| i.info.format == Format::Raw).ok_or_else(|| Error::Refused {
        layer: Layer::Repair,
        msg: format!(
            "in place writes raw disks and block devices only; {} is {}: use --out (full copy or --diff-child)",
            dev.display(),
            machine.image().map_or(machine.origin().name(), |i| i.info.format.name())
        ),
    })?;
    // Kept until the writes are done (on Windows: the locked volumes).
    let _held = device::check_not_mounted(dev, &device::Roots::system())?;
    let record = Undo::record(
        image.disk.as_ref(),
        &dev.display().to_string(),
        plan.patch.ranges(),
    )?;
    let mut saved = NewFile::create(undo, &[dev])?;
    // Opened (exclusively, for a block device) before the undo file is
    // published: a busy device leaves no undo file behind.
    let w = DeviceWriter::open(dev)?;
    saved.write_all(&record.to_bytes()?)?;
    saved.sync()?;
    saved.commit()?;
    fault_point("in-place-undo-saved");
    for (off, data) in plan.patch.ranges() {
        w.write_at(off, data)?;
    }
    w.sync()?;
    drop(w);
    fault_point("before-verify");
    let restore = |e: &Error| {
        Error::corrupt(
            Layer::Repair,
            0,
            format!(
                "verification: {e}; restore with `rdprescue undo {} {}`",
                dev.display(),
                undo.display()
            ),
        )
    };
    let written = Machine::open_image(dev).map_err(|e| restore(&e))?;
    verify_loaded(&written, &plan.edits).map_err(|e| restore(&e))?;
    Ok(Committed {
        path: dev.to_path_buf(),
        after: Some(crate::rdp::inspect(&written)),
    })
}

/// What [`undo`] did.
#[derive(Debug)]
pub struct Restored {
    /// Ranges written back.
    pub written: usize,
    /// Ranges that already held the original bytes.
    pub already: usize,
}

/// Put back the bytes an in-place fix changed on `dev`, from the undo file
/// `file`: the file (checksums, ranges, device identity) and the disk (each
/// range holds the fixed or the original bytes, unless `force`) are checked
/// completely before the first write.
pub fn undo(dev: &Path, file: &Path, force: bool) -> Result<Restored> {
    let bytes = read_capped(file)?;
    let u = Undo::parse(&bytes)?;
    let img = crate::image::open(dev)?;
    if img.info.format != Format::Raw {
        return Err(Error::Refused {
            layer: Layer::Repair,
            msg: format!(
                "{} is {}, not the raw disk this undo file was made for",
                dev.display(),
                img.info.format.name()
            ),
        });
    }
    // Kept until the writes are done (on Windows: the locked volumes).
    let _held = device::check_not_mounted(dev, &device::Roots::system())?;
    let writes = u.plan(img.disk.as_ref(), force)?;
    drop(img);
    let w = DeviceWriter::open(dev)?;
    fault_point("undo-before-write");
    for (off, data) in &writes {
        w.write_at(*off, data)?;
    }
    w.sync()?;
    Ok(Restored {
        written: writes.len(),
        already: u.ranges.len() - writes.len(),
    })
}

/// The undo file's bytes, refusing one larger than any undo file rdprescue writes.
fn read_capped(file: &Path) -> Result<Vec<u8>> {
    use std::io::Read;
    let err = |source| Error::Open {
        layer: Layer::Repair,
        path: file.to_path_buf(),
        source,
    };
    let f = std::fs::File::open(file).map_err(err)?;
    let mut bytes = Vec::new();
    f.take(undo::MAX_FILE + 1)
        .read_to_end(&mut bytes)
        .map_err(err)?;
    Ok(bytes)
}

fn in_verification(e: &Error) -> Error {
    Error::corrupt(Layer::Repair, 0, format!("verification: reading the output back: {e}"))
}

/// A hive file read back from disk: clean, and the edited bytes exactly.
fn verify_hive_file(path: &Path, edit: &HiveEdit) -> Result<()> {
    let got = std::fs::read(path).map_err(|source| Error::Output { layer: Layer::Repair, what: "reading back", path: path.to_path_buf(), source })?;
    if got != edit.new_bytes {
        let at = got.iter().zip(&edit.new_bytes).position(|(a, b)| a != b).unwrap_or(got.len().min(edit.new_bytes.len()));
        return Err(Error::corrupt(Layer::Hive, at as u64, format!("verification: the written hive differs from the edited {}", edit.path)));
    }
    let h = crate::hive::load(got, None, None)?;
    if h.report.state != crate::hive::HiveState::Clean {
        return Err(Error::corrupt(Layer::Hive, 0, format!("verification: the written {} is not clean", edit.path)));
    }
    Ok(())
}
