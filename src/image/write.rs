//! Writing images. The input is never opened for writing: every function here
//! writes a *new* file (the caller, `repair::commit`, creates it invisibly
//! next to the destination and publishes it only after verifying it).
//!
//! The layers above describe a change as a [`Patch`] of the virtual disk
//! (byte ranges at virtual-disk offsets); this layer materialises it either as
//! a full copy of the input in the input's format, or as a differencing child
//! whose parent is the untouched input.

//! The writers live with their readers: `raw.rs`, `vhd/write.rs`,
//! `vhdx/write.rs`. They read the input through the [`Image`] they are given
//! (its disk and the container structures its reader parsed), never by
//! opening the input's path again.

use super::{raw, vhd, vhdx, Format, Image};
use crate::error::{Error, Result};
use std::collections::BTreeMap;
use std::fs::File;
use std::path::Path;

/// Changed bytes of a virtual disk: non-overlapping ranges, by offset.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct Patch {
    writes: BTreeMap<u64, Vec<u8>>,
}

impl Patch {
    /// Record `data` at virtual offset `offset`. A range overlapping an earlier
    /// one replaces the overlapped bytes (later writes win).
    pub fn write(&mut self, offset: u64, data: &[u8]) {
        if data.is_empty() {
            return;
        }
        let end = offset + data.len() as u64;
        // Merge with every range that overlaps or touches [offset, end).
        let mut start = offset;
        let mut merged_end = end;
        let touching: Vec<u64> = self.writes.range(..=end).filter(|(o, d)| *o + d.len() as u64 >= offset).map(|(o, _)| *o).collect();
        let mut old = Vec::new();
        for o in touching {
            let d = self.writes.remove(&o).expect("key just listed");
            start = start.min(o);
            merged_end = merged_end.max(o + d.len() as u64);
            old.push((o, d));
        }
        let mut buf = vec![0u8; (merged_end - start) as usize];
        for (o, d) in old {
            let at = (o - start) as usize;
            buf[at..at + d.len()].copy_from_slice(&d);
        }
        let at = (offset - start) as usize;
        buf[at..at + data.len()].copy_from_slice(data);
        self.writes.insert(start, buf);
    }

    /// The ranges, by increasing offset (non-overlapping, non-touching).
    pub fn ranges(&self) -> impl Iterator<Item = (u64, &[u8])> {
        self.writes.iter().map(|(o, d)| (*o, d.as_slice()))
    }

    /// Total bytes changed.
    pub fn len(&self) -> u64 {
        self.writes.values().map(|d| d.len() as u64).sum()
    }

    pub fn is_empty(&self) -> bool {
        self.writes.is_empty()
    }

    /// The highest offset written + 1 (0 when empty).
    pub fn end(&self) -> u64 {
        self.writes.iter().next_back().map_or(0, |(o, d)| o + d.len() as u64)
    }
}

/// Progress callback: (bytes done, bytes total).
pub type Progress<'a> = &'a mut dyn FnMut(u64, u64);

/// Write a full copy of `image` with `patch` applied into `out` (a new, empty
/// file), in the input's container format. Sparse-aware: unallocated or zero
/// regions are not written.
pub fn full_copy(image: &Image, patch: &Patch, out: &mut File, progress: Progress) -> Result<()> {
    writable(image)?;
    check_patch(image, patch)?;
    match image.info.format {
        Format::Raw | Format::VhdFixed => raw::full_copy(image, patch, out, progress),
        Format::VhdDynamic | Format::VhdDifferencing => vhd::write::full_copy(image, patch, out, progress),
        Format::VhdxFixed | Format::VhdxDynamic | Format::VhdxDifferencing => vhdx::write::full_copy(image, patch, out, progress),
        Format::VmdkSparse | Format::VmdkStream | Format::VmdkFlat | Format::Qcow2 => unreachable_refused(image),
    }
}

/// Write into `out` (a new, empty file at `out_path`) a differencing child of
/// `image` holding only the sectors `patch` touches; its parent locator points
/// at the input (relative path first). VHD inputs get a VHD child, VHDX inputs
/// a VHDX child; a raw input has no differencing format.
pub fn diff_child(image: &Image, patch: &Patch, out: &mut File, out_path: &Path) -> Result<()> {
    writable(image)?;
    check_patch(image, patch)?;
    match image.info.format {
        Format::VhdFixed | Format::VhdDynamic | Format::VhdDifferencing => vhd::write::diff_child(image, patch, out, out_path),
        Format::VhdxFixed | Format::VhdxDynamic | Format::VhdxDifferencing => vhdx::write::diff_child(image, patch, out, out_path),
        Format::VmdkSparse | Format::VmdkStream | Format::VmdkFlat | Format::Qcow2 => unreachable_refused(image),
        Format::Raw => Err(Error::Refused { layer: crate::error::Layer::Raw, msg: "a raw image cannot have a differencing child: write a full copy instead (without --diff-child)".into() }),
    }
}

/// Whether this layer can write an image of `image`'s format (a full copy or
/// a differencing child). VMDK and QCOW2 are read only: a fix of one must
/// name an output format. The one place this is decided; commands call it
/// before planning so the refusal comes first.
pub fn writable(image: &Image) -> Result<()> {
    match image.info.format {
        Format::VmdkSparse | Format::VmdkStream | Format::VmdkFlat | Format::Qcow2 => Err(Error::Refused {
            layer: crate::error::Layer::Repair,
            msg: format!(
                "{} is {}, which this tool reads but does not write: choose an output format (--out NAME.vhdx, or --format vhdx|vhd|raw), or convert it first: {}",
                image.info.path.display(),
                image.info.format.name(),
                super::convert_command(&image.info.path.display().to_string(), "vhdx")
            ),
        }),
        _ => Ok(()),
    }
}

fn unreachable_refused(image: &Image) -> Result<()> {
    writable(image)?;
    Err(Error::Usage(format!("no writer for {}", image.info.format.name())))
}

fn check_patch(image: &Image, patch: &Patch) -> Result<()> {
    if patch.end() > image.disk.len() {
        return Err(Error::Usage(format!("patch ends at {:#x}, past the end of the {}-byte virtual disk", patch.end(), image.disk.len())));
    }
    Ok(())
}

/// Test hook for fault injection: when the environment variable
/// `RDPRESCUE_FAULT` names this step, the process aborts here, as if killed.
pub fn fault_point(step: &str) {
    if std::env::var_os("RDPRESCUE_FAULT").is_some_and(|v| v == step) {
        eprintln!("rdprescue: fault injected at {step}");
        std::process::abort();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn patch_merges_overlaps() {
        let mut p = Patch::default();
        p.write(10, &[1, 1, 1]);
        p.write(20, &[2, 2]);
        p.write(12, &[3, 3]);
        assert_eq!(p.ranges().collect::<Vec<_>>(), vec![(10, &[1u8, 1, 3, 3][..]), (20, &[2u8, 2][..])]);
        p.write(14, &[4; 6]);
        // Touching ranges merge too.
        assert_eq!(p.ranges().collect::<Vec<_>>(), vec![(10, &[1u8, 1, 3, 3, 4, 4, 4, 4, 4, 4, 2, 2][..])]);
        assert_eq!(p.len(), 12);
        assert_eq!(p.end(), 22);
    }
}
