//! In-place repair of a raw disk (a block device attached to a rescue VM, or
//! a raw image file), only with `--in-place --undo FILE`, and `rdprescue undo`.
//!
//! The undo file ([`rdprescue::repair::undo`], checksummed) is written
//! (atomically, synced) before the first byte of the disk changes. It holds,
//! for every changed range, the bytes before and after; `undo` verifies the
//! whole file and the disk first, then puts the "before" bytes back, only
//! where the disk still holds the "after" bytes (nothing else wrote there
//! since), unless forced.

use anyhow::{bail, Context};
use rdprescue::image::{self, Format};
use rdprescue::repair::device::{self, DeviceWriter};
use rdprescue::repair::output::NewFile;
use rdprescue::repair::undo::{self, Undo};
use rdprescue::repair::{self, Plan};
use std::path::Path;

/// Refuse a disk the host is using (see [`device::check_not_mounted`]).
fn refuse_if_mounted(dev: &Path) -> anyhow::Result<()> {
    device::check_not_mounted(dev, &device::Roots::system())?;
    Ok(())
}

/// Apply `plan` to the raw disk `dev` in place, after saving `undo`.
pub fn apply(img: &image::Image, dev: &Path, plan: &Plan, undo: &Path) -> anyhow::Result<()> {
    if img.info.format != Format::Raw {
        bail!("--in-place writes raw disks and block devices only; {} is {}: use --out (full copy or --diff-child)", dev.display(), img.info.format.name());
    }
    refuse_if_mounted(dev)?;
    let u = Undo::record(img.disk.as_ref(), &dev.display().to_string(), plan.patch.ranges())?;
    let mut nf = NewFile::create(undo, &[dev]).context("the undo file")?;
    // Opened (exclusively, for a block device) before the undo file is
    // published: a busy device leaves no undo file behind.
    let w = DeviceWriter::open(dev)?;
    nf.write_all(&u.to_bytes()?)?;
    nf.commit().context("the undo file")?;
    rdprescue::image::write::fault_point("in-place-undo-saved");
    for (off, data) in plan.patch.ranges() {
        w.write_at(off, data).with_context(|| format!("undo file: {}", undo.display()))?;
    }
    w.sync().with_context(|| format!("undo file: {}", undo.display()))?;
    drop(w);
    let written = rdprescue::machine::Machine::open_image(dev)?;
    repair::verify(&written, &plan.edits).with_context(|| format!("verification failed; restore with `rdprescue undo {} {}`", dev.display(), undo.display()))?;
    Ok(())
}

/// `rdprescue undo DEVICE UNDO_FILE [--force]`.
pub fn undo(dev: &Path, file: &Path, force: bool) -> anyhow::Result<i32> {
    let bytes = read_capped(file)?;
    let u = Undo::parse(&bytes).with_context(|| file.display().to_string())?;
    let img = image::open(dev)?;
    if img.info.format != Format::Raw {
        bail!("{} is {}, not the raw disk this undo file was made for", dev.display(), img.info.format.name());
    }
    refuse_if_mounted(dev)?;
    // Everything is checked before the first write.
    let writes = u.plan(img.disk.as_ref(), force).with_context(|| format!("{} with {}", dev.display(), file.display()))?;
    drop(img);
    let w = DeviceWriter::open(dev)?;
    for (off, data) in &writes {
        w.write_at(*off, data)?;
    }
    w.sync()?;
    println!("Restored {} range(s) of {} from {} ({} already held the original bytes).", writes.len(), dev.display(), file.display(), u.ranges.len() - writes.len());
    Ok(0)
}

/// Read the undo file, refusing one larger than any undo file rdprescue writes.
fn read_capped(file: &Path) -> anyhow::Result<Vec<u8>> {
    use std::io::Read;
    let f = std::fs::File::open(file).with_context(|| format!("cannot read {}", file.display()))?;
    let mut bytes = Vec::new();
    f.take(undo::MAX_FILE + 1).read_to_end(&mut bytes).with_context(|| format!("cannot read {}", file.display()))?;
    Ok(bytes)
}
