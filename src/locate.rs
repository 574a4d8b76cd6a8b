//! Finds what matters in an image: which volumes hold Windows
//! (`\Windows\System32\config\SYSTEM`) and where the boot configuration (BCD)
//! lives (`\Boot\BCD` on an NTFS "System Reserved" or Windows volume for BIOS/Gen1,
//! `\EFI\Microsoft\Boot\BCD` on the EFI system partition for UEFI/Gen2).

use crate::error::{Error, Layer, Result};
use crate::fs::{self, FileSystem, FsKind, FsState};
use crate::image::{ContainerInfo, Image};
use crate::volume::{self, Partition, PartitionTable, Role, Slice};
use serde::Serialize;

pub const SYSTEM_HIVE: &str = r"\Windows\System32\config\SYSTEM";
pub const BCD_BIOS: &str = r"\Boot\BCD";
pub const BCD_UEFI: &str = r"\EFI\Microsoft\Boot\BCD";

/// One volume of the image and what was found on it.
#[derive(Debug, Clone, Serialize)]
pub struct VolumeReport {
    #[serde(flatten)]
    pub partition: Partition,
    pub filesystem: FsKind,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub state: Option<FsState>,
    /// Why the file system could not be read, if it could not.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// A "System Reserved" boot volume (Gen1).
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub system_reserved: bool,
    /// Holds `\Windows\System32\config\SYSTEM`.
    pub windows: bool,
    /// Path of the BCD store on this volume.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub bcd: Option<&'static str>,
}

/// Everything `rdprescue disk` reports.
#[derive(Debug, Clone, Serialize)]
pub struct DiskReport {
    pub container: ContainerInfo,
    pub partition_table: PartitionTable,
    pub volumes: Vec<VolumeReport>,
    /// Indexes of the partitions holding Windows.
    pub windows_volumes: Vec<u32>,
    /// (partition index, path) of the BCD store Windows boots from.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub bcd: Option<BcdLocation>,
}

#[derive(Debug, Clone, Serialize)]
pub struct BcdLocation {
    pub partition: u32,
    pub path: &'static str,
    /// "uefi" (ESP) or "bios" (System Reserved / Windows volume).
    pub firmware: &'static str,
}

/// Mount the file system of partition `p` of `image`.
impl DiskReport {
    /// Why no Windows volume was found: BitLocker-encrypted partitions that may
    /// hold it (an `Unsupported` error at the first one), or plain absence.
    pub fn no_windows_volume(&self, what: &str) -> Error {
        let locked: Vec<&VolumeReport> = self.volumes.iter().filter(|v| v.filesystem == FsKind::BitLocker).collect();
        match locked.first() {
            Some(v) => Error::unsupported(
                Layer::Fs,
                v.partition.offset,
                format!(
                    "no readable Windows volume for the {what}: partition(s) {} BitLocker-encrypted (-FVE-FS-); unlock and pass the decrypted volume (e.g. dislocker)",
                    locked.iter().map(|v| v.partition.index.to_string()).collect::<Vec<_>>().join(", ")
                ),
            ),
            None => Error::NotFound { layer: Layer::Hive, path: format!("{what} (no Windows volume in the image)") },
        }
    }
}

pub fn mount(image: &Image, p: &Partition) -> Result<Box<dyn FileSystem>> {
    fs::open(std::sync::Arc::new(Slice::of(image.disk.clone(), p)), p.offset)
}

/// Survey an opened image: partitions, file systems, Windows and BCD.
pub fn survey(image: &Image) -> Result<DiskReport> {
    survey_mounted(image).map(|(r, _)| r)
}

/// [`survey`], also handing back the file systems it mounted on the way (by
/// partition index), so that a caller keeping them never mounts twice.
pub fn survey_mounted(image: &Image) -> Result<(DiskReport, Vec<(u32, Box<dyn FileSystem>)>)> {
    let table = volume::read_partitions(image.disk.as_ref())?;
    let mut volumes = Vec::new();
    let mut mounted = Vec::new();
    for p in &table.partitions {
        let (v, fs) = survey_volume(image, p);
        volumes.push(v);
        if let Some(fs) = fs {
            mounted.push((p.index, fs));
        }
    }
    let windows_volumes = volumes.iter().filter(|v| v.windows).map(|v| v.partition.index).collect();
    // Prefer the ESP (UEFI), then a System Reserved volume, then any other.
    let bcd = volumes
        .iter()
        .filter(|v| v.bcd.is_some())
        .min_by_key(|v| match (v.partition.role, v.system_reserved) {
            (Role::Esp, _) => 0,
            (_, true) => 1,
            _ => 2,
        })
        .map(|v| BcdLocation {
            partition: v.partition.index,
            path: v.bcd.unwrap_or(BCD_BIOS),
            firmware: if v.bcd == Some(BCD_UEFI) { "uefi" } else { "bios" },
        });
    Ok((DiskReport { container: image.info.clone(), partition_table: table, volumes, windows_volumes, bcd }, mounted))
}

fn survey_volume(image: &Image, p: &Partition) -> (VolumeReport, Option<Box<dyn FileSystem>>) {
    let mut r = VolumeReport {
        partition: p.clone(),
        filesystem: FsKind::Unknown,
        state: None,
        error: None,
        system_reserved: false,
        windows: false,
        bcd: None,
    };
    if matches!(p.role, Role::Msr | Role::Other) && p.role != Role::WholeDisk {
        // MSR has no file system; "other" (Linux, LDM, extended) is not ours.
        return (r, None);
    }
    let slice = Slice::of(image.disk.clone(), p);
    match fs::probe(&slice) {
        Ok(k) => r.filesystem = k,
        Err(e) => {
            r.error = Some(e.to_string());
            return (r, None);
        }
    }
    if matches!(r.filesystem, FsKind::Unknown) {
        return (r, None);
    }
    let fs = match mount(image, p) {
        Ok(fs) => fs,
        Err(e) => {
            r.error = Some(e.to_string());
            return (r, None);
        }
    };
    r.windows = fs.kind() == FsKind::Ntfs && fs.exists(SYSTEM_HIVE);
    r.bcd = if fs.kind() == FsKind::Ntfs {
        fs.exists(BCD_BIOS).then_some(BCD_BIOS)
    } else {
        fs.exists(BCD_UEFI).then_some(BCD_UEFI)
    };
    let label = fs.state().label.clone().unwrap_or_default();
    r.system_reserved = fs.kind() == FsKind::Ntfs
        && !r.windows
        && (label.eq_ignore_ascii_case("System Reserved") || (p.active && r.bcd.is_some()));
    r.state = Some(fs.state().clone());
    (r, Some(fs))
}
