//! Disks and volumes as sources: Windows device names (`\\.\PhysicalDrive2`,
//! `\\.\F:`, `\\?\Volume{...}`), what the Windows disk IOCTLs return, and
//! what an operating-system error on a disk means for the person at the
//! keyboard (no such disk, not elevated, the disk went away).
//!
//! Everything here but [`WinDevice`] is plain, platform-independent code,
//! tested on Linux: the IOCTL output structures are parsed from bytes, and
//! error codes are numbers. [`WinDevice`] (Windows only) opens a device
//! read-only with std (sharing read and write: a disk in use by Windows can
//! still be read), asks its length (`IOCTL_DISK_GET_LENGTH_INFO`) and logical
//! sector size (`IOCTL_DISK_GET_DRIVE_GEOMETRY_EX`) through
//! [`super::windows::ioctl`], and reports that reads must be aligned to the
//! sector, so [`crate::image::open_source`] reads it through the
//! [`super::AlignedReader`].

use std::io;

/// What a Windows device name names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DevicePath {
    /// `\\.\PhysicalDriveN`: a whole disk.
    PhysicalDrive(u32),
    /// `\\.\X:`: the volume with drive letter X (upper case).
    Volume(char),
    /// `\\?\Volume{GUID}` (no trailing backslash: the volume, not its root directory).
    VolumeGuid(String),
    /// Another disk or volume device (`\\?\GLOBALROOT\Device\Harddisk0\Partition1`,
    /// `\\.\HarddiskVolume3`, `\\.\Harddisk0Partition1`), as written after the prefix.
    Other(String),
}

impl DevicePath {
    /// The disk number, for a `PhysicalDriveN` name.
    pub fn disk_number(&self) -> Option<u32> {
        match self {
            DevicePath::PhysicalDrive(n) => Some(*n),
            _ => None,
        }
    }
}

/// `name` after its device-namespace prefix (`\\.\`, `\\?\`, or the same with
/// forward slashes, which Windows accepts too).
fn strip_prefix(name: &str) -> Option<&str> {
    let b = name.as_bytes();
    let slash = |c: u8| c == b'\\' || c == b'/';
    (b.len() > 4 && slash(b[0]) && slash(b[1]) && (b[2] == b'.' || b[2] == b'?') && slash(b[3])).then(|| &name[4..])
}

/// `prefix` followed by 1..=5 decimal digits, case-insensitively; the number.
fn numbered(s: &str, prefix: &str) -> Option<u32> {
    let head = s.get(..prefix.len())?;
    let digits = &s[prefix.len()..];
    (head.eq_ignore_ascii_case(prefix) && (1..=5).contains(&digits.len()) && digits.bytes().all(|c| c.is_ascii_digit()))
        .then(|| digits.parse().ok())
        .flatten()
}

/// What a Windows device name names, or `None` when `name` is not one (an
/// ordinary path, `\\?\C:\dir` verbatim paths, `\\.\pipe\x` and other devices
/// that are not disks).
pub fn classify(name: &str) -> Option<DevicePath> {
    let rest = strip_prefix(name)?;
    if let Some(n) = numbered(rest, "PhysicalDrive") {
        return Some(DevicePath::PhysicalDrive(n));
    }
    let b = rest.as_bytes();
    if b.len() == 2 && b[0].is_ascii_alphabetic() && b[1] == b':' {
        return Some(DevicePath::Volume(char::from(b[0].to_ascii_uppercase())));
    }
    let lower = rest.to_ascii_lowercase();
    if lower.starts_with("volume{") && lower.ends_with('}') && !rest.contains(['\\', '/']) {
        return Some(DevicePath::VolumeGuid(rest.to_string()));
    }
    let other = lower.starts_with("globalroot\\device\\harddisk")
        || numbered(rest, "HarddiskVolume").is_some()
        || lower.strip_prefix("harddisk").and_then(|r| r.split_once("partition")).is_some_and(|(d, p)| {
            !d.is_empty() && !p.is_empty() && d.bytes().chain(p.bytes()).all(|c| c.is_ascii_digit())
        });
    other.then(|| DevicePath::Other(rest.to_string()))
}

/// Whether `name` is a Windows disk or volume device name (see [`classify`]).
pub fn is_windows_device_path(name: &str) -> bool {
    classify(name).is_some()
}

// ------------------------------------------------------------ IOCTL outputs

fn le_u32(b: &[u8], at: usize) -> Option<u32> {
    Some(u32::from_le_bytes(b.get(at..at + 4)?.try_into().ok()?))
}

fn le_u64(b: &[u8], at: usize) -> Option<u64> {
    Some(u64::from_le_bytes(b.get(at..at + 8)?.try_into().ok()?))
}

/// `GET_LENGTH_INFO` (`IOCTL_DISK_GET_LENGTH_INFO`): the length in bytes
/// (a signed 64-bit field; a negative one is refused).
pub fn parse_length_info(b: &[u8]) -> Option<u64> {
    le_u64(b, 0).filter(|&n| i64::try_from(n).is_ok())
}

/// What `DISK_GEOMETRY_EX` (`IOCTL_DISK_GET_DRIVE_GEOMETRY_EX`) says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Geometry {
    /// Logical sector size: reads and writes must be multiples of it.
    pub bytes_per_sector: u32,
    /// `MEDIA_TYPE` (12: fixed hard disk, 11: removable).
    pub media_type: u32,
    pub disk_size: u64,
}

/// `DISK_GEOMETRY_EX`: `DISK_GEOMETRY { Cylinders: i64, MediaType: u32,
/// TracksPerCylinder: u32, SectorsPerTrack: u32, BytesPerSector: u32 }` then
/// `DiskSize: i64`. A sector size that is not a power of two in 512..=64 KiB
/// is refused.
pub fn parse_geometry_ex(b: &[u8]) -> Option<Geometry> {
    let bytes_per_sector = le_u32(b, 20).filter(|s| s.is_power_of_two() && (512..=65536).contains(s))?;
    Some(Geometry { bytes_per_sector, media_type: le_u32(b, 8)?, disk_size: le_u64(b, 24).filter(|&n| i64::try_from(n).is_ok())? })
}

/// `STORAGE_DEVICE_NUMBER` (`IOCTL_STORAGE_GET_DEVICE_NUMBER`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DeviceNumber {
    /// `FILE_DEVICE_DISK` is 7.
    pub device_type: u32,
    /// N of `\\.\PhysicalDriveN`.
    pub device_number: u32,
    /// 0 for the whole disk; u32::MAX when the device cannot be partitioned.
    pub partition_number: u32,
}

pub fn parse_device_number(b: &[u8]) -> Option<DeviceNumber> {
    Some(DeviceNumber { device_type: le_u32(b, 0)?, device_number: le_u32(b, 4)?, partition_number: le_u32(b, 8)? })
}

/// `GET_DISK_ATTRIBUTES` (`IOCTL_DISK_GET_DISK_ATTRIBUTES`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct DiskAttributes {
    /// `DISK_ATTRIBUTE_OFFLINE`: no volume of the disk is mounted.
    pub offline: bool,
    /// `DISK_ATTRIBUTE_READ_ONLY`.
    pub read_only: bool,
}

/// `GET_DISK_ATTRIBUTES { Version: u32, Reserved1: u32, Attributes: u64 }`.
pub fn parse_disk_attributes(b: &[u8]) -> Option<DiskAttributes> {
    let a = le_u64(b, 8)?;
    Some(DiskAttributes { offline: a & 1 != 0, read_only: a & 2 != 0 })
}

/// One `DISK_EXTENT`: a piece of a volume on a disk.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DiskExtent {
    pub disk_number: u32,
    pub offset: u64,
    pub length: u64,
}

/// `VOLUME_DISK_EXTENTS { NumberOfDiskExtents: u32, (pad), Extents: [DISK_EXTENT] }`,
/// each `DISK_EXTENT { DiskNumber: u32, (pad), StartingOffset: i64,
/// ExtentLength: i64 }` (24 bytes). A count the buffer cannot hold is refused.
pub fn parse_disk_extents(b: &[u8]) -> Option<Vec<DiskExtent>> {
    let n = le_u32(b, 0)? as usize;
    if n > b.len().saturating_sub(8) / 24 {
        return None;
    }
    (0..n)
        .map(|i| {
            let e = 8 + 24 * i;
            Some(DiskExtent { disk_number: le_u32(b, e)?, offset: le_u64(b, e + 8)?, length: le_u64(b, e + 16)? })
        })
        .collect()
}

/// A NUL-terminated UTF-16 string (a volume name from `FindFirstVolumeW`).
pub fn wide_to_string(w: &[u16]) -> String {
    let end = w.iter().position(|&c| c == 0).unwrap_or(w.len());
    String::from_utf16_lossy(&w[..end])
}

// ------------------------------------------------------------ errors

/// What an operating-system error on a disk means.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Problem {
    /// No disk or volume by that name.
    NotFound,
    /// Not allowed to open it: not elevated / not root.
    AccessDenied,
    /// The disk went away while it was open (detached, removed, taken offline).
    Vanished,
    /// Another program holds it exclusively.
    Busy,
}

/// Windows error codes (`GetLastError`) that say one of the [`Problem`]s.
pub fn windows_problem(code: i32) -> Option<Problem> {
    Some(match code {
        // FILE_NOT_FOUND, PATH_NOT_FOUND, BAD_UNIT, INVALID_NAME, BAD_PATHNAME
        2 | 3 | 20 | 123 | 161 => Problem::NotFound,
        // ACCESS_DENIED, PRIVILEGE_NOT_HELD
        5 | 1314 => Problem::AccessDenied,
        // NOT_READY, DEV_NOT_EXIST, NO_SUCH_DEVICE, FILE_INVALID (volume
        // dismounted under the handle), MEDIA_CHANGED, DEVICE_NOT_CONNECTED,
        // DEVICE_REMOVED
        21 | 55 | 433 | 1006 | 1110 | 1167 | 1617 => Problem::Vanished,
        // SHARING_VIOLATION, LOCK_VIOLATION, BUSY
        32 | 33 | 170 => Problem::Busy,
        _ => return None,
    })
}

/// Unix (Linux) errno values that say one of the [`Problem`]s.
pub fn unix_problem(code: i32) -> Option<Problem> {
    Some(match code {
        2 => Problem::NotFound,       // ENOENT
        1 | 13 => Problem::AccessDenied, // EPERM, EACCES
        6 | 19 | 123 => Problem::Vanished, // ENXIO, ENODEV, ENOMEDIUM
        16 => Problem::Busy,          // EBUSY
        _ => return None,
    })
}

/// What to tell the user about `p` (on Windows when `windows`).
pub fn hint(p: Problem, windows: bool) -> &'static str {
    match (p, windows) {
        (Problem::NotFound, true) => "no such disk or volume (`rdprescue disks` lists the attached disks)",
        (Problem::NotFound, false) => "`rdprescue disks` lists the attached disks",
        (Problem::AccessDenied, true) => "run rdprescue elevated (a command prompt or PowerShell opened with \"Run as administrator\")",
        (Problem::AccessDenied, false) => "run rdprescue as root (sudo) to read a disk device",
        (Problem::Vanished, _) => "the disk went away while it was being read (detached, removed or taken offline?)",
        (Problem::Busy, _) => "the disk is held by another program",
    }
}

/// The [`Problem`] an I/O error says, on the system this runs on.
pub fn problem(e: &io::Error) -> Option<Problem> {
    let code = e.raw_os_error()?;
    if cfg!(windows) {
        windows_problem(code)
    } else {
        unix_problem(code)
    }
}

/// `e` with what it means for the user appended (same kind; one line). An
/// error that says nothing known is returned as it is.
pub fn explain(e: io::Error) -> io::Error {
    explain_as(e, cfg!(windows), is_root())
}

#[cfg(unix)]
fn is_root() -> bool {
    rustix::process::geteuid().is_root()
}

#[cfg(not(unix))]
fn is_root() -> bool {
    false
}

/// [`explain`] for a given system, and whether the process runs as root on
/// Unix (tests run the Windows wording on Linux).
pub fn explain_as(e: io::Error, windows: bool, root: bool) -> io::Error {
    let p = e.raw_os_error().and_then(|c| if windows { windows_problem(c) } else { unix_problem(c) });
    let said = match p {
        // Root and still refused: sudo will not help.
        Some(Problem::AccessDenied) if root && !windows => "refused even to root (a container without access to the device, or a security module)",
        Some(p) => hint(p, windows),
        None => return e,
    };
    io::Error::new(e.kind(), format!("{e}: {said}"))
}

/// A path that does not exist, with a word on Windows device names where
/// they mean nothing (not Windows) and on `rdprescue disks` for device paths.
pub fn explain_missing(path: &std::path::Path, e: io::Error) -> io::Error {
    if e.kind() != io::ErrorKind::NotFound {
        return e;
    }
    let name = path.to_string_lossy();
    if !cfg!(windows) && is_windows_device_path(&name) {
        return io::Error::new(e.kind(), format!("{e}: a Windows device name; on this system give the disk's device (/dev/sdX; `rdprescue disks` lists them)"));
    }
    if name.starts_with("/dev/") || cfg!(windows) && is_windows_device_path(&name) {
        return explain(e);
    }
    e
}

// ------------------------------------------------------------ the Windows source

#[cfg(windows)]
pub use win::WinDevice;

#[cfg(windows)]
mod win {
    use super::super::source::{count_read, Source, SourceId};
    use super::super::windows::ioctl;
    use super::{explain, parse_geometry_ex, parse_length_info, DevicePath};
    use crate::error::{Error, Layer, Result};
    use std::fs::File;
    use std::io;
    use std::path::{Path, PathBuf};
    use std::sync::Arc;
    use windows_sys::Win32::System::Ioctl::{FSCTL_ALLOW_EXTENDED_DASD_IO, IOCTL_DISK_GET_DRIVE_GEOMETRY_EX, IOCTL_DISK_GET_LENGTH_INFO};

    /// Alignment used when the device does not report its geometry (a
    /// volume on some drivers): a multiple of every sector size in use.
    const FALLBACK_ALIGN: u32 = 4096;

    /// A Windows disk or volume opened read-only (sharing read and write).
    pub struct WinDevice {
        file: File,
        name: String,
        len: u64,
        sector: u32,
        align: u32,
        id: SourceId,
    }

    /// Open `path` read-only, sharing read and write (Windows keeps using
    /// an online disk; rdprescue only reads it).
    pub fn open_shared(path: &Path, write: bool) -> io::Result<File> {
        use std::os::windows::fs::OpenOptionsExt;
        use windows_sys::Win32::Storage::FileSystem::{FILE_SHARE_READ, FILE_SHARE_WRITE};
        std::fs::OpenOptions::new().read(true).write(write).share_mode(FILE_SHARE_READ | FILE_SHARE_WRITE).open(path)
    }

    /// The logical sector size of an open disk or volume, when it says.
    pub fn sector_size(file: &File) -> Option<u32> {
        let mut g = [0u8; 256];
        let n = ioctl(file, IOCTL_DISK_GET_DRIVE_GEOMETRY_EX, &[], &mut g).ok()?;
        parse_geometry_ex(&g[..n]).map(|g| g.bytes_per_sector)
    }

    impl WinDevice {
        /// Open the device `path` names (`dev` is what [`super::classify`] made of it).
        pub fn open(path: &Path, dev: &DevicePath) -> Result<WinDevice> {
            let name = path.display().to_string();
            let open_err = |e: io::Error| Error::Open { layer: Layer::Raw, path: path.to_path_buf(), source: explain(e) };
            let file = open_shared(path, false).map_err(open_err)?;
            if !matches!(dev, DevicePath::PhysicalDrive(_)) {
                // A volume handle refuses reads past its file system's end
                // (NTFS keeps its backup boot sector there) unless asked; a
                // driver that does not know the request changes nothing.
                let _ = ioctl(&file, FSCTL_ALLOW_EXTENDED_DASD_IO, &[], &mut []);
            }
            let io_err = |e: io::Error| {
                let e = explain(e);
                Error::Io { layer: Layer::Raw, offset: 0, path: name.clone(), source: io::Error::new(e.kind(), format!("asking its length (IOCTL_DISK_GET_LENGTH_INFO): {e}")) }
            };
            let mut b = [0u8; 8];
            let n = ioctl(&file, IOCTL_DISK_GET_LENGTH_INFO, &[], &mut b).map_err(io_err)?;
            let len = parse_length_info(&b[..n]).ok_or_else(|| Error::corrupt(Layer::Raw, 0, format!("{name}: IOCTL_DISK_GET_LENGTH_INFO returned {n} bytes")))?;
            let (sector, align) = match sector_size(&file) {
                Some(s) => (s, s),
                None => (512, FALLBACK_ALIGN),
            };
            let id = SourceId(format!("windev:{}", match dev {
                DevicePath::PhysicalDrive(n) => format!("PhysicalDrive{n}"),
                DevicePath::Volume(c) => format!("{c}:"),
                DevicePath::VolumeGuid(g) | DevicePath::Other(g) => g.to_ascii_lowercase(),
            }));
            Ok(WinDevice { file, name, len, sector, align, id })
        }
    }

    impl Source for WinDevice {
        fn read_at(&self, mut offset: u64, mut buf: &mut [u8]) -> io::Result<()> {
            use std::os::windows::fs::FileExt;
            count_read(buf.len());
            while !buf.is_empty() {
                let n = self.file.seek_read(buf, offset)?;
                if n == 0 {
                    return Err(io::ErrorKind::UnexpectedEof.into());
                }
                offset += n as u64;
                buf = &mut buf[n..];
            }
            Ok(())
        }
        fn len(&self) -> u64 {
            self.len
        }
        fn sector_size(&self) -> u32 {
            self.sector
        }
        fn alignment(&self) -> u32 {
            self.align
        }
        fn name(&self) -> String {
            self.name.clone()
        }
        fn path(&self) -> PathBuf {
            PathBuf::from(&self.name)
        }
        fn identity(&self) -> SourceId {
            self.id.clone()
        }
        fn sibling(&self, name: &str) -> Result<Arc<dyn Source>> {
            Err(Error::Open {
                layer: Layer::Raw,
                path: PathBuf::from(name),
                source: io::Error::new(io::ErrorKind::NotFound, format!("{} is a device: it has no files beside it", self.name)),
            })
        }
    }
}

#[cfg(windows)]
pub use win::{open_shared, sector_size};

/// The Windows disk and volume queries the rest of the crate needs, as safe
/// functions over an open `File` (Windows only).
#[cfg(windows)]
mod queries {
    use super::super::windows::{ioctl, volume_names as names};
    use super::{parse_device_number, parse_disk_attributes, parse_disk_extents, DeviceNumber, DiskAttributes, DiskExtent};
    use std::fs::File;
    use std::io;
    use windows_sys::Win32::Storage::FileSystem::IOCTL_VOLUME_GET_VOLUME_DISK_EXTENTS;
    use windows_sys::Win32::System::Ioctl::{FSCTL_DISMOUNT_VOLUME, FSCTL_LOCK_VOLUME, IOCTL_DISK_GET_DISK_ATTRIBUTES, IOCTL_STORAGE_GET_DEVICE_NUMBER};

    fn malformed(what: &str) -> io::Error {
        io::Error::new(io::ErrorKind::InvalidData, format!("{what}: unexpected answer from the driver"))
    }

    /// `IOCTL_STORAGE_GET_DEVICE_NUMBER`: which `PhysicalDriveN` a disk or partition is.
    pub fn device_number(f: &File) -> io::Result<DeviceNumber> {
        let mut b = [0u8; 12];
        let n = ioctl(f, IOCTL_STORAGE_GET_DEVICE_NUMBER, &[], &mut b)?;
        parse_device_number(&b[..n]).ok_or_else(|| malformed("IOCTL_STORAGE_GET_DEVICE_NUMBER"))
    }

    /// `IOCTL_DISK_GET_DISK_ATTRIBUTES`: offline and read-only bits.
    pub fn disk_attributes(f: &File) -> io::Result<DiskAttributes> {
        let mut b = [0u8; 16];
        let n = ioctl(f, IOCTL_DISK_GET_DISK_ATTRIBUTES, &[], &mut b)?;
        parse_disk_attributes(&b[..n]).ok_or_else(|| malformed("IOCTL_DISK_GET_DISK_ATTRIBUTES"))
    }

    /// `IOCTL_VOLUME_GET_VOLUME_DISK_EXTENTS`: where a volume lives.
    pub fn volume_extents(f: &File) -> io::Result<Vec<DiskExtent>> {
        let mut b = vec![0u8; 8 + 24 * 128];
        let n = ioctl(f, IOCTL_VOLUME_GET_VOLUME_DISK_EXTENTS, &[], &mut b)?;
        parse_disk_extents(&b[..n]).ok_or_else(|| malformed("IOCTL_VOLUME_GET_VOLUME_DISK_EXTENTS"))
    }

    /// `FSCTL_LOCK_VOLUME` then `FSCTL_DISMOUNT_VOLUME` on a volume opened
    /// for reading and writing: held until `f` is closed.
    pub fn lock_and_dismount(f: &File) -> io::Result<()> {
        ioctl(f, FSCTL_LOCK_VOLUME, &[], &mut [])?;
        ioctl(f, FSCTL_DISMOUNT_VOLUME, &[], &mut [])?;
        Ok(())
    }

    /// Every volume (`\\?\Volume{...}\`).
    pub fn volume_names() -> io::Result<Vec<String>> {
        names()
    }
}

#[cfg(windows)]
pub use queries::{device_number, disk_attributes, lock_and_dismount, volume_extents, volume_names};

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn device_names() {
        assert_eq!(classify(r"\\.\PhysicalDrive2"), Some(DevicePath::PhysicalDrive(2)));
        assert_eq!(classify(r"\\?\physicaldrive12"), Some(DevicePath::PhysicalDrive(12)));
        assert_eq!(classify("//./PHYSICALDRIVE0"), Some(DevicePath::PhysicalDrive(0)));
        assert_eq!(classify(r"\\.\f:"), Some(DevicePath::Volume('F')));
        assert_eq!(classify(r"\\?\C:"), Some(DevicePath::Volume('C')));
        let g = r"Volume{3f2504e0-4f89-11d3-9a0c-0305e82c3301}";
        assert_eq!(classify(&format!(r"\\?\{g}")), Some(DevicePath::VolumeGuid(g.into())));
        assert_eq!(classify(r"\\?\GLOBALROOT\Device\Harddisk0\Partition1"), Some(DevicePath::Other(r"GLOBALROOT\Device\Harddisk0\Partition1".into())));
        assert_eq!(classify(r"\\.\HarddiskVolume3"), Some(DevicePath::Other("HarddiskVolume3".into())));
        assert_eq!(classify(r"\\.\Harddisk1Partition2"), Some(DevicePath::Other("Harddisk1Partition2".into())));
        for not in [
            r"\\?\C:\",
            r"\\?\C:\Windows",
            &format!(r"\\?\{g}\"),
            r"\\.\pipe\x",
            r"\\.\PhysicalDrive",
            r"\\.\PhysicalDrive1x",
            r"\\.\PhysicalDrive123456",
            r"\\.\COM1",
            r"\\.\HarddiskPartition1",
            r"\\.\",
            r"C:\disk.vhdx",
            "F:",
            "/dev/sdb",
            r"\\server\share\disk.vhdx",
            r"\\.\PhysicalDrive٣",
        ] {
            assert_eq!(classify(not), None, "{not}");
            assert!(!is_windows_device_path(not));
        }
        assert_eq!(classify(r"\\.\PhysicalDrive7").and_then(|d| d.disk_number()), Some(7));
        assert_eq!(DevicePath::Volume('C').disk_number(), None);
    }

    #[test]
    fn ioctl_structures() {
        assert_eq!(parse_length_info(&(1u64 << 40).to_le_bytes()), Some(1 << 40));
        assert_eq!(parse_length_info(&u64::MAX.to_le_bytes()), None);
        assert_eq!(parse_length_info(&[1, 2, 3]), None);

        let mut g = vec![0u8; 32];
        g[0..8].copy_from_slice(&1000u64.to_le_bytes());
        g[8..12].copy_from_slice(&12u32.to_le_bytes());
        g[20..24].copy_from_slice(&4096u32.to_le_bytes());
        g[24..32].copy_from_slice(&(64u64 << 30).to_le_bytes());
        assert_eq!(parse_geometry_ex(&g), Some(Geometry { bytes_per_sector: 4096, media_type: 12, disk_size: 64 << 30 }));
        assert_eq!(parse_geometry_ex(&g[..31]), None);
        for bad in [0u32, 256, 1000, 1 << 17] {
            g[20..24].copy_from_slice(&bad.to_le_bytes());
            assert_eq!(parse_geometry_ex(&g), None, "{bad}");
        }

        let mut d = Vec::new();
        for v in [7u32, 3, 0] {
            d.extend_from_slice(&v.to_le_bytes());
        }
        assert_eq!(parse_device_number(&d), Some(DeviceNumber { device_type: 7, device_number: 3, partition_number: 0 }));
        assert_eq!(parse_device_number(&d[..11]), None);

        let mut a = vec![0u8; 16];
        a[0] = 16;
        a[8] = 1;
        assert_eq!(parse_disk_attributes(&a), Some(DiskAttributes { offline: true, read_only: false }));
        a[8] = 2;
        assert_eq!(parse_disk_attributes(&a), Some(DiskAttributes { offline: false, read_only: true }));
        assert_eq!(parse_disk_attributes(&a[..15]), None);

        let mut e = vec![0u8; 8 + 48];
        e[0] = 2;
        for (i, (disk, off, len)) in [(1u32, 1u64 << 20, 100u64 << 20), (4, 0, 5)].into_iter().enumerate() {
            let at = 8 + 24 * i;
            e[at..at + 4].copy_from_slice(&disk.to_le_bytes());
            e[at + 8..at + 16].copy_from_slice(&off.to_le_bytes());
            e[at + 16..at + 24].copy_from_slice(&len.to_le_bytes());
        }
        assert_eq!(
            parse_disk_extents(&e),
            Some(vec![DiskExtent { disk_number: 1, offset: 1 << 20, length: 100 << 20 }, DiskExtent { disk_number: 4, offset: 0, length: 5 }])
        );
        // A count larger than the buffer holds: refused, no allocation from it.
        e[0..4].copy_from_slice(&u32::MAX.to_le_bytes());
        assert_eq!(parse_disk_extents(&e), None);
        e[0..4].copy_from_slice(&3u32.to_le_bytes());
        assert_eq!(parse_disk_extents(&e), None);
        assert_eq!(parse_disk_extents(&[0, 0, 0, 0, 0, 0, 0, 0]), Some(vec![]));

        let w: Vec<u16> = r"\\?\Volume{x}\".encode_utf16().chain([0, 65, 66]).collect();
        assert_eq!(wide_to_string(&w), r"\\?\Volume{x}\");
    }

    #[test]
    fn error_meanings() {
        assert_eq!(windows_problem(2), Some(Problem::NotFound));
        assert_eq!(windows_problem(5), Some(Problem::AccessDenied));
        assert_eq!(windows_problem(1167), Some(Problem::Vanished));
        assert_eq!(windows_problem(32), Some(Problem::Busy));
        assert_eq!(windows_problem(87), None);
        assert_eq!(unix_problem(13), Some(Problem::AccessDenied));
        assert_eq!(unix_problem(6), Some(Problem::Vanished));
        assert_eq!(unix_problem(5), None);
        let e = explain_as(io::Error::from_raw_os_error(5), true, false);
        assert_eq!(e.kind(), io::Error::from_raw_os_error(5).kind(), "the kind is kept");
        let m = e.to_string();
        assert!(m.contains("run rdprescue elevated") && m.contains("Run as administrator") && !m.contains('\n'), "{m}");
        let m = explain_as(io::Error::from_raw_os_error(2), true, false).to_string();
        assert!(m.contains("no such disk") && m.contains("rdprescue disks"), "{m}");
        let m = explain_as(io::Error::from_raw_os_error(1167), true, false).to_string();
        assert!(m.contains("went away"), "{m}");
        let m = explain_as(io::Error::from_raw_os_error(13), false, false).to_string();
        assert!(m.contains("as root"), "{m}");
        let m = explain_as(io::Error::from_raw_os_error(1), false, true).to_string();
        assert!(m.contains("even to root") && !m.contains("sudo"), "{m}");
        // Windows wording does not depend on root.
        assert!(explain_as(io::Error::from_raw_os_error(5), true, true).to_string().contains("elevated"));
        // Nothing known: unchanged.
        let e = explain_as(io::Error::from_raw_os_error(87), true, false);
        assert_eq!(e.raw_os_error(), Some(87));
        let e = explain_as(io::Error::other("x"), false, false);
        assert_eq!(e.to_string(), "x");
    }
}
