//! Which attached disk is which: `rdprescue disks`.
//!
//! On a rescue VM the broken machine's OS disk is attached as a data disk
//! beside the rescue VM's own system disk. This module lists the attached
//! disks (Linux: `/sys/block` entries `sd*`, `nvme*n*`, `vd*`, `xvd*` and
//! loop devices that have a backing file; Windows: `\\.\PhysicalDrive0..N`,
//! probed until a run of names that do not exist), opens each read-only as a
//! [`Machine`] (container, partition table, volumes), reads the product name
//! and build from SOFTWARE and the computer name from SYSTEM when a volume
//! holds Windows, and marks the disk the running system booted from. A disk
//! that cannot be read gets its error in its row; the list goes on.
//!
//! The Linux enumeration ([`linux`]) takes the `/proc` and `/sys` roots as
//! parameters, so it is tested with a fake tree.

pub mod linux;

use crate::machine::Machine;
use crate::volume::TableKind;
use serde::Serialize;
use std::path::PathBuf;

/// An attached disk found by the enumeration, before it is opened.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Candidate {
    /// What to give rdprescue to read it (`/dev/sdc`, `\\.\PhysicalDrive2`).
    pub path: PathBuf,
    /// A loop device's backing file.
    pub backing_file: Option<PathBuf>,
    /// The model the kernel or driver reports, when it does.
    pub model: Option<String>,
    /// The running system booted from it.
    pub system: bool,
    /// It could not be opened at all (no permission, ...): why.
    pub error: Option<String>,
}

/// A Windows installation found on a disk.
#[derive(Debug, Clone, Serialize, Default, PartialEq, Eq)]
pub struct WindowsInstall {
    /// The partition holding `Windows\System32\config\SYSTEM`.
    pub partition: u32,
    pub product_name: Option<String>,
    pub computer_name: Option<String>,
    /// CurrentBuild and UBR, e.g. "20348.2113".
    pub build: Option<String>,
    /// A hive that could not be read (the other facts may still be there).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// One row of `rdprescue disks`.
#[derive(Debug, Clone, Serialize)]
pub struct DiskRow {
    pub path: PathBuf,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub backing_file: Option<PathBuf>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub model: Option<String>,
    /// Virtual size in bytes (the container's, for a VHD(X) on a loop device).
    pub size: Option<u64>,
    pub sector_size: Option<u32>,
    pub partition_table: Option<TableKind>,
    /// The disk the running system booted from.
    pub system: bool,
    /// Windows on this disk, if any.
    pub windows: Option<WindowsInstall>,
    /// Why the disk could not be read (then the other facts are missing).
    pub error: Option<String>,
}

/// What `rdprescue disks` reports.
#[derive(Debug, Clone, Serialize)]
pub struct DiskList {
    pub disks: Vec<DiskRow>,
    /// The disks that hold Windows and are not the system disk: on a rescue
    /// VM, the broken machine's OS disk.
    pub likely_broken: Vec<PathBuf>,
    /// Whether the running system's disk was identified (else every Windows
    /// disk is a candidate).
    pub system_disk_known: bool,
}

/// Open `c` and describe it; an error goes into the row.
pub fn describe(c: &Candidate) -> DiskRow {
    let mut row = DiskRow {
        path: c.path.clone(),
        backing_file: c.backing_file.clone(),
        model: c.model.clone(),
        size: None,
        sector_size: None,
        partition_table: None,
        system: c.system,
        windows: None,
        error: c.error.clone(),
    };
    if row.error.is_some() {
        return row;
    }
    let m = match Machine::open_image(&c.path) {
        Ok(m) => m,
        Err(e) => {
            row.error = Some(e.to_string().replace('\n', " "));
            return row;
        }
    };
    if let Some(img) = m.image() {
        row.size = Some(img.disk.len());
        row.sector_size = Some(img.disk.sector_size());
    }
    if let Some(s) = m.survey() {
        row.partition_table = Some(s.partition_table.kind);
        if let Some(&partition) = s.windows_volumes.first() {
            row.windows = Some(windows_install(&m, partition));
        }
    }
    row
}

/// Product, build and computer name of the machine's Windows.
pub fn windows_install(m: &Machine, partition: u32) -> WindowsInstall {
    let mut w = WindowsInstall { partition, ..Default::default() };
    let mut errors = Vec::new();
    let mut key = |path: &str| match m.resolve_key(path).and_then(|t| t.hive.key(&t.path)) {
        Ok(k) => Some(k),
        Err(e) => {
            errors.push(e.to_string());
            None
        }
    };
    let string = |k: &crate::hive::tree::Key, n: &str| k.values.iter().find(|v| v.name.eq_ignore_ascii_case(n)).map(|v| v.string()).filter(|s| !s.is_empty());
    if let Some(k) = key(r"HKLM\SOFTWARE\Microsoft\Windows NT\CurrentVersion") {
        w.product_name = string(&k, "ProductName");
        let ubr = k.values.iter().find(|v| v.name.eq_ignore_ascii_case("UBR")).and_then(|v| v.dword());
        w.build = string(&k, "CurrentBuild").or_else(|| string(&k, "CurrentBuildNumber")).map(|b| match ubr {
            Some(u) => format!("{b}.{u}"),
            None => b,
        });
    }
    if let Some(k) = key(r"HKLM\SYSTEM\CurrentControlSet\Control\ComputerName\ComputerName") {
        w.computer_name = string(&k, "ComputerName");
    }
    if !errors.is_empty() {
        w.error = Some(errors.join("; ").replace('\n', " "));
    }
    w
}

/// Describe every candidate and name the likely broken OS disks.
pub fn report(candidates: &[Candidate]) -> DiskList {
    let disks: Vec<DiskRow> = candidates.iter().map(describe).collect();
    let likely_broken = disks.iter().filter(|d| d.windows.is_some() && !d.system).map(|d| d.path.clone()).collect();
    DiskList { likely_broken, system_disk_known: disks.iter().any(|d| d.system), disks }
}

/// The attached disks of this machine (see the module documentation).
pub fn list() -> DiskList {
    report(&candidates())
}

/// The attached disks of this machine, not yet opened.
#[cfg(not(windows))]
pub fn candidates() -> Vec<Candidate> {
    linux::candidates(&crate::repair::device::Roots::system(), std::path::Path::new("/dev"))
}

/// The attached disks of this machine, not yet opened.
#[cfg(windows)]
pub fn candidates() -> Vec<Candidate> {
    windows::candidates()
}

/// Names that do not exist in a row before probing `\\.\PhysicalDriveN`
/// stops (disk numbers have gaps after disks are removed).
pub const MISSES: u32 = 8;
/// The most disk numbers probed.
pub const MAX_DISKS: u32 = 512;

/// Probe disk numbers 0, 1, ... with `open` until [`MISSES`] in a row do not
/// exist: the numbers that exist, each with why it cannot be opened, if it
/// cannot (`open` gives `Ok(None)` when it opened, `Ok(Some(why))` when it
/// exists but cannot be opened, `Err(())` when there is no such disk).
pub fn probe(mut open: impl FnMut(u32) -> std::result::Result<Option<String>, ()>) -> Vec<(u32, Option<String>)> {
    let mut out = Vec::new();
    let mut misses = 0;
    for n in 0..MAX_DISKS {
        match open(n) {
            Ok(why) => {
                misses = 0;
                out.push((n, why));
            }
            Err(()) => {
                misses += 1;
                if misses >= MISSES {
                    break;
                }
            }
        }
    }
    out
}

#[cfg(windows)]
mod windows {
    use super::Candidate;
    use crate::image::device::{self, Problem};
    use std::path::PathBuf;

    fn name(n: u32) -> PathBuf {
        PathBuf::from(format!(r"\\.\PhysicalDrive{n}"))
    }

    /// `\\.\PhysicalDrive0..N` (see [`super::probe`]), the system disk marked.
    pub fn candidates() -> Vec<Candidate> {
        let system = system_disk();
        super::probe(|n| match device::open_shared(&name(n), false) {
            Ok(_) => Ok(None),
            Err(e) if device::problem(&e) == Some(Problem::NotFound) => Err(()),
            Err(e) => Ok(Some(format!("cannot open {}: {}", name(n).display(), device::explain(e)))),
        })
        .into_iter()
        .map(|(n, error)| Candidate { path: name(n), backing_file: None, model: None, system: system == Some(n), error })
        .collect()
    }

    /// The disk number of `%SystemDrive%` (the volume's first extent, or its
    /// device number).
    fn system_disk() -> Option<u32> {
        let drive = std::env::var("SystemDrive").unwrap_or_else(|_| "C:".into());
        let f = device::open_shared(std::path::Path::new(&format!(r"\\.\{}", drive.trim_end_matches('\\'))), false).ok()?;
        device::volume_extents(&f).ok().and_then(|e| e.first().map(|e| e.disk_number)).or_else(|| device::device_number(&f).ok().map(|d| d.device_number))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn probing_stops_after_a_run_of_missing_disks() {
        // Disks 0, 1, 3 and 9 exist (gaps of 1 and 5), 3 cannot be opened, 40 is beyond the run.
        let mut asked = Vec::new();
        let found = probe(|n| {
            asked.push(n);
            match n {
                0 | 1 | 9 | 40 => Ok(None),
                3 => Ok(Some("access denied".into())),
                _ => Err(()),
            }
        });
        assert_eq!(found, [(0, None), (1, None), (3, Some("access denied".into())), (9, None)]);
        assert_eq!(*asked.last().unwrap(), 9 + MISSES, "stopped after {MISSES} misses in a row");
        // Nothing at all: MISSES probes.
        let mut k = 0;
        assert!(probe(|_| {
            k += 1;
            Err(())
        })
        .is_empty());
        assert_eq!(k, MISSES);
        // Everything exists: bounded.
        assert_eq!(probe(|_| Ok(None)).len(), MAX_DISKS as usize);
    }
}
