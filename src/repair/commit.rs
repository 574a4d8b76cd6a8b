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

use super::{verify_loaded, HiveEdit, Plan};
use crate::error::{Error, Layer, Result};
use crate::image::write::{self, fault_point, Progress};
use crate::machine::{HiveLocation, Machine};
use crate::rdp::eval::Inspection;
use super::output::NewFile;
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
}

impl Destination<'_> {
    pub fn path(&self) -> &Path {
        match self {
            Destination::Copy(p) | Destination::DiffChild(p) | Destination::HiveFile(p) => p,
        }
    }
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
    let target = dest.path();
    let inputs = [machine.path()];
    // A differencing child is read back through a path beside its target
    // (its parent locator is relative to its directory): a named temporary.
    let mut out = match dest {
        Destination::DiffChild(_) => NewFile::create_named(target, &inputs)?,
        _ => NewFile::create(target, &inputs)?,
    };
    let after = match dest {
        Destination::Copy(_) | Destination::DiffChild(_) => {
            let image = machine.image().ok_or_else(|| Error::Usage(format!("{} is not a disk image: its hives are written with a hive-file destination", machine.path().display())))?;
            if plan.edits.iter().any(|e| !matches!(e.location, HiveLocation::Volume { .. })) {
                return Err(Error::Usage("the plan edits hive files, not an image".into()));
            }
            match dest {
                Destination::DiffChild(_) => write::diff_child(image, &plan.patch, out.file_mut(), target)?,
                _ => write::full_copy(image, &plan.patch, out.file_mut(), progress)?,
            }
            out.sync()?;
            fault_point("before-verify");
            // Read the output back like any input: the container, the volumes,
            // the hive files (byte-exact and clean), and the checks.
            let written = Machine::open_image(&out.path()).map_err(|e| in_verification(&e))?;
            verify_loaded(&written, &plan.edits).map_err(|e| in_verification(&e))?;
            Some(crate::rdp::inspect(&written))
        }
        Destination::HiveFile(_) => {
            let [edit] = &plan.edits[..] else {
                return Err(Error::Usage(format!("a hive-file output holds one hive; this change edits {}", plan.edits.len())));
            };
            out.write_all(&edit.new_bytes)?;
            out.sync()?;
            fault_point("before-verify");
            verify_hive_file(&out.path(), edit)?;
            None
        }
    };
    fault_point("before-rename");
    out.commit()?;
    Ok(Committed { path: target.to_path_buf(), after })
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
