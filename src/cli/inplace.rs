//! In-place repair of a raw disk (a block device attached to a rescue VM, or
//! a raw image file), only with `--in-place --undo FILE`, and `rdprescue undo`.
//!
//! The undo file is written (atomically, synced) before the first byte of the
//! disk changes. It holds, for every changed range, the bytes before and after;
//! `undo` puts the "before" bytes back, but only where the disk still holds the
//! "after" bytes (nothing else wrote there since), unless forced.

use anyhow::{bail, Context};
use rdprescue::image::{self, Format};
use rdprescue::repair::{self, Plan};
use serde::{Deserialize, Serialize};
use std::fs::OpenOptions;
use std::os::unix::fs::FileExt;
use std::path::Path;

const FORMAT: &str = "rdprescue-undo/1";

#[derive(Serialize, Deserialize)]
struct UndoFile {
    format: String,
    device: String,
    device_size: u64,
    ranges: Vec<UndoRange>,
}

#[derive(Serialize, Deserialize)]
struct UndoRange {
    offset: u64,
    before: String,
    after: String,
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

fn unhex(s: &str) -> anyhow::Result<Vec<u8>> {
    if s.len() % 2 != 0 {
        bail!("odd-length hex");
    }
    (0..s.len()).step_by(2).map(|i| u8::from_str_radix(&s[i..i + 2], 16).context("bad hex")).collect()
}

/// Refuse a device (or a partition of it) that the host has mounted.
fn refuse_if_mounted(dev: &Path) -> anyhow::Result<()> {
    let Ok(canon) = dev.canonicalize() else { return Ok(()) };
    let name = canon.to_string_lossy().to_string();
    if let Ok(m) = std::fs::read_to_string("/proc/mounts") {
        for line in m.lines() {
            let src = line.split_whitespace().next().unwrap_or_default();
            let src = Path::new(src).canonicalize().map(|p| p.to_string_lossy().to_string()).unwrap_or_else(|_| src.to_string());
            if src == name || (src.starts_with(&name) && src[name.len()..].trim_start_matches('p').chars().all(|c| c.is_ascii_digit()) && src.len() > name.len()) {
                bail!("{name} is mounted here ({src}): unmount it before writing to it in place");
            }
        }
    }
    Ok(())
}

fn write_atomic(path: &Path, bytes: &[u8]) -> anyhow::Result<()> {
    if path.exists() {
        bail!("{} already exists; choose a new undo file", path.display());
    }
    let dir = path.parent().filter(|d| !d.as_os_str().is_empty()).unwrap_or(Path::new("."));
    let tmp = dir.join(format!(".{}.rdprescue-{}.tmp", path.file_name().context("undo file has no name")?.to_string_lossy(), std::process::id()));
    let f = (|| -> std::io::Result<()> {
        let f = OpenOptions::new().write(true).create_new(true).open(&tmp)?;
        f.write_all_at(bytes, 0)?;
        f.sync_all()
    })();
    if let Err(e) = f {
        let _ = std::fs::remove_file(&tmp);
        return Err(e).with_context(|| format!("writing {}", tmp.display()));
    }
    std::fs::rename(&tmp, path).with_context(|| format!("moving {} into place", path.display()))?;
    if let Ok(d) = std::fs::File::open(dir) {
        let _ = d.sync_all();
    }
    Ok(())
}

/// Apply `plan` to the raw disk `dev` in place, after saving `undo`.
pub fn apply(img: &image::Image, dev: &Path, plan: &Plan, undo: &Path) -> anyhow::Result<()> {
    if img.info.format != Format::Raw {
        bail!("--in-place writes raw disks and block devices only; {} is {}: use --out (full copy or --diff-child)", dev.display(), img.info.format.name());
    }
    refuse_if_mounted(dev)?;
    let mut ranges = Vec::new();
    for (off, after) in plan.patch.ranges() {
        let mut before = vec![0u8; after.len()];
        img.disk.read_at(off, &mut before)?;
        ranges.push(UndoRange { offset: off, before: hex(&before), after: hex(after) });
    }
    let u = UndoFile { format: FORMAT.into(), device: dev.display().to_string(), device_size: img.disk.len(), ranges };
    write_atomic(undo, serde_json::to_string_pretty(&u)?.as_bytes())?;
    rdprescue::image::write::fault_point("in-place-undo-saved");
    let f = OpenOptions::new().write(true).open(dev).with_context(|| format!("opening {} for writing", dev.display()))?;
    for (off, data) in plan.patch.ranges() {
        f.write_all_at(data, off).with_context(|| format!("writing {} at {off:#x} (undo file: {})", dev.display(), undo.display()))?;
    }
    f.sync_all().with_context(|| format!("flushing {}", dev.display()))?;
    drop(f);
    let written = rdprescue::machine::Machine::open_image(dev)?;
    repair::verify(&written, &plan.edits).with_context(|| format!("verification failed; restore with `rdprescue undo {} {}`", dev.display(), undo.display()))?;
    Ok(())
}

/// `rdprescue undo DEVICE UNDO_FILE [--force]`.
pub fn undo(dev: &Path, file: &Path, force: bool) -> anyhow::Result<i32> {
    let text = std::fs::read_to_string(file).with_context(|| format!("cannot read {}", file.display()))?;
    let u: UndoFile = serde_json::from_str(&text).with_context(|| format!("{} is not an rdprescue undo file", file.display()))?;
    if u.format != FORMAT {
        bail!("{}: format {:?}, expected {FORMAT}", file.display(), u.format);
    }
    let img = image::open(dev)?;
    if img.info.format != Format::Raw || img.disk.len() != u.device_size {
        bail!("{} is not the disk this undo file was made for ({} bytes raw expected)", dev.display(), u.device_size);
    }
    refuse_if_mounted(dev)?;
    let mut plan = Vec::new();
    for r in &u.ranges {
        let (before, after) = (unhex(&r.before)?, unhex(&r.after)?);
        if before.len() != after.len() || r.offset.checked_add(before.len() as u64).is_none_or(|e| e > u.device_size) {
            bail!("{}: range at {:#x} is malformed", file.display(), r.offset);
        }
        let mut now = vec![0u8; after.len()];
        img.disk.read_at(r.offset, &mut now)?;
        if now != after && now != before && !force {
            bail!("{} changed at {:#x} since the fix (neither the fixed nor the original bytes): refusing to undo (--force overrides)", dev.display(), r.offset);
        }
        plan.push((r.offset, before));
    }
    drop(img);
    let f = OpenOptions::new().write(true).open(dev).with_context(|| format!("opening {} for writing", dev.display()))?;
    for (off, data) in &plan {
        f.write_all_at(data, *off).with_context(|| format!("writing {} at {off:#x}", dev.display()))?;
    }
    f.sync_all()?;
    println!("Restored {} range(s) of {} from {}.", plan.len(), dev.display(), file.display());
    Ok(0)
}
