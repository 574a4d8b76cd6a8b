//! Writing a disk in place: refusing a disk the host is using, and the one
//! [`DeviceWriter`] through which in-place fixes and `undo` write.
//!
//! A disk is in use when it (or a partition of it, or a device stacked on it,
//! like device-mapper or md, listed under `holders/`) is mounted, and — for a
//! raw image file — when the file backs a loop device (`losetup`, `mount -o
//! loop[,offset=N]`) that is mounted or has a mounted partition. Mounts are
//! matched by device number (`/proc/self/mountinfo`) and by device name
//! (`/proc/mounts`); files by device and inode, so another path to the same
//! file (a hard link, a bind mount) is caught too. The roots (`/proc`,
//! `/sys`) are parameters, so tests describe a machine with a fake tree.
//!
//! Block devices are also opened with `O_EXCL`: Linux then refuses (EBUSY) a
//! device that is mounted or claimed by the kernel, whatever the tables say.
//!
//! On Windows a disk (`\\.\PhysicalDriveN`) is written only when it is
//! offline (`IOCTL_DISK_GET_DISK_ATTRIBUTES`), or when every volume on it
//! (`FindFirstVolumeW`, `IOCTL_VOLUME_GET_VOLUME_DISK_EXTENTS`) could be locked
//! and dismounted (`FSCTL_LOCK_VOLUME`, `FSCTL_DISMOUNT_VOLUME`); the locks are
//! held ([`Held`]) until the writes are done. The decision is
//! [`check_windows_disk`] over the [`WindowsDisks`] trait, so it is tested on
//! Linux with a fake; the system calls are in `image::device` and
//! `image::windows`.

use crate::error::{Error, Layer, Result};
use crate::image::device::{DiskAttributes, DiskExtent};
use std::collections::HashMap;
use std::fs::File;
use std::io;
use std::path::{Path, PathBuf};

/// Where the kernel's tables are: `/proc` and `/sys` on a real system.
#[derive(Debug, Clone)]
pub struct Roots {
    pub proc: PathBuf,
    pub sys: PathBuf,
}

impl Roots {
    pub fn system() -> Roots {
        Roots { proc: PathBuf::from("/proc"), sys: PathBuf::from("/sys") }
    }
}

/// A loop device's backing file and window.
#[derive(Debug, Clone, PartialEq)]
pub struct Backing {
    pub file: PathBuf,
    pub offset: u64,
    pub sizelimit: u64,
}

#[derive(Debug, Clone)]
#[cfg_attr(not(unix), allow(dead_code))] // read by the Unix checks only
struct BlockDev {
    name: String,
    /// "major:minor".
    dev: String,
    /// The whole disk, for a partition.
    parent: Option<String>,
    holders: Vec<String>,
    backing: Option<Backing>,
}

fn read_trim(p: &Path) -> Option<String> {
    // sysfs attributes are small; a fake tree could hold anything: cap it.
    use std::io::Read;
    let mut s = String::new();
    File::open(p).ok()?.take(1 << 16).read_to_string(&mut s).ok()?;
    Some(s.trim_end_matches(['\n', '\0']).to_string())
}

fn list_dir(p: &Path) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(p).map(|rd| rd.flatten().filter_map(|e| e.file_name().to_str().map(str::to_string)).take(1 << 16).collect()).unwrap_or_default();
    v.sort();
    v
}

/// Every block device and partition listed under `sys/block`.
fn block_devices(sys: &Path) -> Vec<BlockDev> {
    let mut out = Vec::new();
    for name in list_dir(&sys.join("block")) {
        let d = sys.join("block").join(&name);
        let backing = read_trim(&d.join("loop/backing_file")).filter(|f| !f.is_empty()).map(|f| Backing {
            file: PathBuf::from(f),
            offset: read_trim(&d.join("loop/offset")).and_then(|s| s.parse().ok()).unwrap_or(0),
            sizelimit: read_trim(&d.join("loop/sizelimit")).and_then(|s| s.parse().ok()).unwrap_or(0),
        });
        out.push(BlockDev { name: name.clone(), dev: read_trim(&d.join("dev")).unwrap_or_default(), parent: None, holders: list_dir(&d.join("holders")), backing });
        for sub in list_dir(&d) {
            let p = d.join(&sub);
            if p.join("partition").is_file() {
                out.push(BlockDev { name: sub, dev: read_trim(&p.join("dev")).unwrap_or_default(), parent: Some(name.clone()), holders: list_dir(&p.join("holders")), backing: None });
            }
        }
    }
    out
}

/// Mounted devices: by "major:minor" and by device name, with a mount point.
#[derive(Default, Debug)]
struct Mounts {
    by_dev: HashMap<String, String>,
    by_name: HashMap<String, String>,
}

/// `/dev/mapper/x` → `dm-3` (where it resolves), `/dev/sda1` → `sda1`.
fn dev_name(source: &str) -> Option<String> {
    if !source.starts_with("/dev/") {
        return None;
    }
    let p = Path::new(source);
    let p = p.canonicalize().unwrap_or_else(|_| p.to_path_buf());
    p.file_name().and_then(|n| n.to_str()).map(str::to_string)
}

fn mounts(proc: &Path) -> Mounts {
    let mut m = Mounts::default();
    // mountinfo: ID PARENT MAJ:MIN ROOT MOUNTPOINT OPTIONS [OPTIONAL...] - FSTYPE SOURCE SUPEROPTS
    if let Some(text) = read_mounts(&proc.join("self/mountinfo")) {
        for line in text.lines() {
            let f: Vec<&str> = line.split_whitespace().collect();
            let (Some(dev), Some(point)) = (f.get(2), f.get(4)) else { continue };
            m.by_dev.insert(dev.to_string(), point.to_string());
            if let Some(source) = f.iter().position(|x| *x == "-").and_then(|i| f.get(i + 2)) {
                if let Some(n) = dev_name(source) {
                    m.by_name.insert(n, point.to_string());
                }
            }
        }
    }
    if let Some(text) = read_mounts(&proc.join("mounts")) {
        for line in text.lines() {
            let mut f = line.split_whitespace();
            let (Some(source), Some(point)) = (f.next(), f.next()) else { continue };
            if let Some(n) = dev_name(source) {
                m.by_name.insert(n, point.to_string());
            }
        }
    }
    m
}

fn read_mounts(p: &Path) -> Option<String> {
    use std::io::Read;
    let mut s = String::new();
    File::open(p).ok()?.take(64 << 20).read_to_string(&mut s).ok()?;
    Some(s)
}

#[cfg_attr(not(unix), allow(dead_code))]
struct Table {
    devs: Vec<BlockDev>,
    mounts: Mounts,
}

#[cfg_attr(not(unix), allow(dead_code))]
impl Table {
    fn load(roots: &Roots) -> Table {
        Table { devs: block_devices(&roots.sys), mounts: mounts(&roots.proc) }
    }

    fn get(&self, name: &str) -> Option<&BlockDev> {
        self.devs.iter().find(|d| d.name == name)
    }

    /// Why `name` is in use: itself, a partition or a holder mounted.
    fn busy(&self, name: &str, depth: u32) -> Option<String> {
        if depth > 8 {
            return None;
        }
        let d = self.get(name);
        if let Some(point) = self.mounts.by_name.get(name).or_else(|| d.filter(|d| !d.dev.is_empty()).and_then(|d| self.mounts.by_dev.get(&d.dev))) {
            return Some(format!("/dev/{name} is mounted at {point}"));
        }
        for p in self.devs.iter().filter(|p| p.parent.as_deref() == Some(name)) {
            if let Some(why) = self.busy(&p.name, depth + 1) {
                return Some(why);
            }
        }
        for h in d.map(|d| d.holders.clone()).unwrap_or_default() {
            if let Some(why) = self.busy(&h, depth + 1) {
                return Some(format!("{why} (stacked on /dev/{name})"));
            }
        }
        None
    }
}

/// What keeps a disk safe to write while it is written: on Windows, the
/// locked volumes (released when this is dropped); elsewhere nothing.
#[derive(Default)]
#[must_use = "the volumes stay locked only while this is kept"]
pub struct Held {
    locks: Vec<Box<dyn Send>>,
}

impl std::fmt::Debug for Held {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Held({} locked volumes)", self.locks.len())
    }
}

impl Held {
    /// How many volumes are locked.
    pub fn locked(&self) -> usize {
        self.locks.len()
    }
}

/// Refuse to write `target` (a block device, a raw image file, or on Windows
/// a disk device) when the host is using it; see the module documentation.
/// Keep the returned [`Held`] until the writes are done.
pub fn check_not_mounted(target: &Path, roots: &Roots) -> Result<Held> {
    #[cfg(windows)]
    if target.to_str().is_some_and(crate::image::device::is_windows_device_path) {
        return check_windows_disk(target, &mut SystemDisks);
    }
    check_tables(target, roots)?;
    Ok(Held::default())
}

/// The Linux tables check of [`check_not_mounted`].
fn check_tables(target: &Path, roots: &Roots) -> Result<()> {
    let meta = std::fs::metadata(target).map_err(|e| Error::Open { layer: Layer::Raw, path: target.to_path_buf(), source: e })?;
    let t = Table::load(roots);
    let refuse = |why: String| -> Result<()> { Err(Error::Refused { layer: Layer::Raw, msg: format!("{} is in use: {why}; unmount it (and detach its loop devices) before writing to it in place", target.display()) }) };
    #[cfg(unix)]
    {
        use std::os::unix::fs::{FileTypeExt, MetadataExt};
        if meta.file_type().is_block_device() {
            let dev = format!("{}:{}", rustix::fs::major(meta.rdev()), rustix::fs::minor(meta.rdev()));
            if let Some(d) = t.devs.iter().find(|d| d.dev == dev) {
                if let Some(why) = t.busy(&d.name.clone(), 0) {
                    return refuse(why);
                }
            } else if let Some(point) = t.mounts.by_dev.get(&dev) {
                return refuse(format!("device {dev} is mounted at {point}"));
            }
        }
        for d in t.devs.iter() {
            let Some(b) = &d.backing else { continue };
            let same = std::fs::metadata(&b.file).is_ok_and(|m| m.dev() == meta.dev() && m.ino() == meta.ino()) || target.canonicalize().is_ok_and(|c| c == b.file);
            if !same {
                continue;
            }
            if let Some(why) = t.busy(&d.name, 0) {
                return refuse(format!("it backs /dev/{} (offset {}, size limit {}), and {why}", d.name, b.offset, b.sizelimit));
            }
        }
    }
    #[cfg(not(unix))]
    let _ = (meta, t, refuse);
    Ok(())
}

/// The Windows queries [`check_windows_disk`] makes: a trait, so that the
/// decision is tested with a fake on any system.
pub trait WindowsDisks {
    /// The disk number N of `target` (`\\.\PhysicalDriveN`).
    fn disk_number(&mut self, target: &Path) -> io::Result<u32>;
    /// Disk N's attributes (offline, read-only).
    fn attributes(&mut self, disk: u32) -> io::Result<DiskAttributes>;
    /// Every volume of the system (`\\?\Volume{...}\`).
    fn volumes(&mut self) -> io::Result<Vec<String>>;
    /// Where `volume` lives.
    fn extents(&mut self, volume: &str) -> io::Result<Vec<DiskExtent>>;
    /// Lock and dismount `volume`; the lock holds until the returned value is dropped.
    fn lock_and_dismount(&mut self, volume: &str) -> io::Result<Box<dyn Send>>;
}

/// How to take disk `n` offline, for messages.
pub fn offline_advice(n: u32) -> String {
    format!("take disk {n} offline first (diskpart: `select disk {n}`, then `offline disk`; or PowerShell: `Set-Disk -Number {n} -IsOffline $true`), then run rdprescue again")
}

/// Whether the Windows disk `target` may be written in place: it is offline,
/// or every volume on it is now locked and dismounted (kept in the returned
/// [`Held`]). A read-only disk, a volume that cannot be locked, or volumes
/// that cannot be listed are refused, saying how to take the disk offline.
pub fn check_windows_disk(target: &Path, os: &mut dyn WindowsDisks) -> Result<Held> {
    let name = target.display();
    let n = os.disk_number(target).map_err(|e| Error::Open { layer: Layer::Raw, path: target.to_path_buf(), source: crate::image::device::explain(e) })?;
    let refuse = |msg: String| Error::Refused { layer: Layer::Raw, msg };
    // An attribute query that fails says nothing: the volume checks decide.
    let attrs = os.attributes(n).ok();
    if attrs.is_some_and(|a| a.read_only) {
        return Err(refuse(format!(
            "{name} (disk {n}) is read-only: clear it first (diskpart: `select disk {n}`, `attributes disk clear readonly`; or PowerShell: `Set-Disk -Number {n} -IsReadOnly $false`)"
        )));
    }
    if attrs.is_some_and(|a| a.offline) {
        return Ok(Held::default());
    }
    let volumes = os.volumes().map_err(|e| refuse(format!("{name} (disk {n}) is online and its volumes cannot be listed ({e}); {}", offline_advice(n))))?;
    let mut mine = Vec::new();
    for v in volumes {
        // A volume whose extents cannot be read is not on a disk (a CD-ROM
        // drive without media, a RAM disk): it cannot be on this one.
        if os.extents(&v).is_ok_and(|ex| ex.iter().any(|e| e.disk_number == n)) {
            mine.push(v);
        }
    }
    let mut held = Held::default();
    for v in &mine {
        match os.lock_and_dismount(v) {
            Ok(h) => held.locks.push(h),
            // `held` is dropped on return: the volumes locked so far are released.
            Err(e) => {
                return Err(refuse(format!(
                    "{name} (disk {n}) is online and its volume {v} could not be locked and dismounted ({}): it is in use; {}",
                    crate::image::device::explain(e),
                    offline_advice(n)
                )))
            }
        }
    }
    Ok(held)
}

/// [`WindowsDisks`] on the running Windows system.
#[cfg(windows)]
pub struct SystemDisks;

#[cfg(windows)]
impl WindowsDisks for SystemDisks {
    fn disk_number(&mut self, target: &Path) -> io::Result<u32> {
        use crate::image::device;
        if let Some(n) = target.to_str().and_then(device::classify).and_then(|d| d.disk_number()) {
            return Ok(n);
        }
        let f = device::open_shared(target, false)?;
        device::volume_extents(&f).ok().and_then(|e| e.first().map(|e| e.disk_number)).map_or_else(|| device::device_number(&f).map(|d| d.device_number), Ok)
    }
    fn attributes(&mut self, disk: u32) -> io::Result<DiskAttributes> {
        let f = crate::image::device::open_shared(Path::new(&format!(r"\\.\PhysicalDrive{disk}")), false)?;
        crate::image::device::disk_attributes(&f)
    }
    fn volumes(&mut self) -> io::Result<Vec<String>> {
        crate::image::device::volume_names()
    }
    fn extents(&mut self, volume: &str) -> io::Result<Vec<DiskExtent>> {
        // The volume device is the name without its trailing backslash (with it, the root directory).
        let f = crate::image::device::open_shared(Path::new(volume.trim_end_matches('\\')), false)?;
        crate::image::device::volume_extents(&f)
    }
    fn lock_and_dismount(&mut self, volume: &str) -> io::Result<Box<dyn Send>> {
        let f = crate::image::device::open_shared(Path::new(volume.trim_end_matches('\\')), true)?;
        crate::image::device::lock_and_dismount(&f)?;
        Ok(Box::new(f))
    }
}

/// Positional reads and writes of whole buffers: what [`write_aligned`] needs
/// (a file or device; a strict fake in tests).
pub trait Positional {
    fn read_exact_at(&self, offset: u64, buf: &mut [u8]) -> io::Result<()>;
    fn write_all_at(&self, offset: u64, data: &[u8]) -> io::Result<()>;
}

impl Positional for File {
    fn read_exact_at(&self, offset: u64, buf: &mut [u8]) -> io::Result<()> {
        #[cfg(unix)]
        return std::os::unix::fs::FileExt::read_exact_at(self, buf, offset);
        #[cfg(windows)]
        {
            use std::os::windows::fs::FileExt;
            let (mut at, mut rest) = (offset, buf);
            while !rest.is_empty() {
                let n = self.seek_read(rest, at)?;
                if n == 0 {
                    return Err(io::ErrorKind::UnexpectedEof.into());
                }
                at += n as u64;
                rest = &mut rest[n..];
            }
            Ok(())
        }
        #[cfg(not(any(unix, windows)))]
        {
            let _ = (offset, buf);
            Err(io::Error::other("positional reads are not supported on this system"))
        }
    }
    fn write_all_at(&self, offset: u64, data: &[u8]) -> io::Result<()> {
        #[cfg(unix)]
        return std::os::unix::fs::FileExt::write_all_at(self, data, offset);
        #[cfg(windows)]
        {
            use std::os::windows::fs::FileExt;
            let (mut at, mut rest) = (offset, data);
            while !rest.is_empty() {
                let n = self.seek_write(rest, at)?;
                if n == 0 {
                    return Err(io::Error::from(io::ErrorKind::WriteZero));
                }
                at += n as u64;
                rest = &rest[n..];
            }
            Ok(())
        }
        #[cfg(not(any(unix, windows)))]
        {
            let _ = (offset, data);
            Err(io::Error::other("in-place writes are not supported on this system"))
        }
    }
}

/// Write `data` at `offset` on a device that takes only whole units of
/// `align` bytes (a Windows disk: its sector): a partial unit at either end is
/// read, merged and written back whole. `align` 1 writes straight through.
pub fn write_aligned(dev: &dyn Positional, align: u64, offset: u64, data: &[u8]) -> io::Result<()> {
    let a = align.max(1);
    let end = offset.checked_add(data.len() as u64).ok_or_else(|| io::Error::from(io::ErrorKind::InvalidInput))?;
    if data.is_empty() || (offset % a == 0 && end % a == 0) {
        return dev.write_all_at(offset, data);
    }
    let (start, stop) = (offset / a * a, end.div_ceil(a) * a);
    let mut buf = vec![0u8; (stop - start) as usize];
    let unit = a as usize;
    if offset != start {
        dev.read_exact_at(start, &mut buf[..unit])?;
    }
    if end != stop && (stop - a != start || offset == start) {
        let at = buf.len() - unit;
        dev.read_exact_at(stop - a, &mut buf[at..])?;
    }
    buf[(offset - start) as usize..(end - start) as usize].copy_from_slice(data);
    dev.write_all_at(start, &buf)
}

/// Positional writes to a disk (block device, raw image file, or Windows
/// disk device), for in-place fixes and `undo`. Never creates or truncates.
pub struct DeviceWriter {
    f: File,
    path: PathBuf,
    /// Writes are whole units of this (a Windows disk's sector; else 1).
    align: u64,
}

impl DeviceWriter {
    /// Open `path` for writing; a block device exclusively (`O_EXCL`: the
    /// kernel refuses a mounted or claimed device); a Windows disk device
    /// for reading too, so that writes can be whole sectors.
    pub fn open(path: &Path) -> Result<DeviceWriter> {
        #[cfg(windows)]
        if path.to_str().is_some_and(crate::image::device::is_windows_device_path) {
            use crate::image::device;
            let f = device::open_shared(path, true).map_err(|e| Error::Open { layer: Layer::Raw, path: path.to_path_buf(), source: device::explain(e) })?;
            let align = u64::from(device::sector_size(&f).unwrap_or(4096));
            return Ok(DeviceWriter { f, path: path.to_path_buf(), align });
        }
        let mut o = std::fs::OpenOptions::new();
        o.write(true);
        #[cfg(unix)]
        {
            use std::os::unix::fs::{FileTypeExt, OpenOptionsExt};
            let block = std::fs::metadata(path).is_ok_and(|m| m.file_type().is_block_device());
            if block {
                o.custom_flags(rustix::fs::OFlags::EXCL.bits() as i32);
            }
        }
        let f = o.open(path).map_err(|e| {
            if e.raw_os_error() == Some(16) {
                Error::Refused { layer: Layer::Raw, msg: format!("{} is busy (mounted, or in use by the kernel): unmount it before writing to it in place", path.display()) }
            } else {
                Error::Open { layer: Layer::Raw, path: path.to_path_buf(), source: e }
            }
        })?;
        Ok(DeviceWriter { f, path: path.to_path_buf(), align: 1 })
    }

    /// Write all of `data` at byte `offset`.
    pub fn write_at(&self, offset: u64, data: &[u8]) -> Result<()> {
        write_aligned(&self.f, self.align, offset, data).map_err(|e| Error::Io { layer: Layer::Raw, offset, path: self.path.display().to_string(), source: crate::image::device::explain(e) })
    }

    /// Flush everything written to stable storage.
    pub fn sync(&self) -> Result<()> {
        self.f.sync_all().map_err(|e| Error::Io { layer: Layer::Raw, offset: 0, path: self.path.display().to_string(), source: e })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A fake /proc + /sys: `loops` are (name, backing file, offset), `parts`
    /// (disk, partition), `mounted` names with their mount points.
    fn tree(tag: &str, loops: &[(&str, &Path, u64)], parts: &[(&str, &str)], holders: &[(&str, &str)], mounted: &[(&str, &str)]) -> Roots {
        let root = std::env::temp_dir().join(format!("rdprescue-device-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&root);
        let (proc, sys) = (root.join("proc"), root.join("sys"));
        std::fs::create_dir_all(proc.join("self")).unwrap();
        let mut minor = 0;
        let mut devnum = HashMap::new();
        let mut mk = |dir: &Path, name: &str| {
            std::fs::create_dir_all(dir.join("holders")).unwrap();
            minor += 1;
            let dev = format!("7:{minor}");
            std::fs::write(dir.join("dev"), format!("{dev}\n")).unwrap();
            devnum.insert(name.to_string(), dev);
        };
        for (name, file, offset) in loops {
            let d = sys.join("block").join(name);
            mk(&d, name);
            std::fs::create_dir_all(d.join("loop")).unwrap();
            std::fs::write(d.join("loop/backing_file"), format!("{}\n", file.display())).unwrap();
            std::fs::write(d.join("loop/offset"), format!("{offset}\n")).unwrap();
            std::fs::write(d.join("loop/sizelimit"), "0\n").unwrap();
        }
        for (disk, part) in parts {
            let d = sys.join("block").join(disk).join(part);
            mk(&d, part);
            std::fs::write(d.join("partition"), "1\n").unwrap();
        }
        for (dev, holder) in holders {
            let d = sys.join("block").join(holder);
            mk(&d, holder);
            let base = if parts.iter().any(|(_, p)| p == dev) { sys.join("block").join(parts.iter().find(|(_, p)| p == dev).unwrap().0).join(dev) } else { sys.join("block").join(dev) };
            std::fs::create_dir_all(base.join("holders").join(holder)).unwrap();
        }
        let mut info = String::new();
        let mut plain = String::new();
        for (i, (name, point)) in mounted.iter().enumerate() {
            // Half the entries are matched by device number only, half by name only.
            if i % 2 == 0 {
                let dev = devnum.get(*name).cloned().unwrap_or_else(|| "8:0".into());
                info.push_str(&format!("{} 1 {dev} / {point} rw - ext4 /dev/nosuch{i} rw\n", 30 + i));
            } else {
                plain.push_str(&format!("/dev/{name} {point} ext4 rw 0 0\n"));
            }
        }
        info.push_str("20 1 0:22 / /proc rw - proc proc rw\n");
        std::fs::write(proc.join("self/mountinfo"), info).unwrap();
        std::fs::write(proc.join("mounts"), plain).unwrap();
        Roots { proc, sys }
    }

    fn file(tag: &str) -> PathBuf {
        let p = std::env::temp_dir().join(format!("rdprescue-device-img-{tag}-{}", std::process::id()));
        std::fs::write(&p, vec![0u8; 4096]).unwrap();
        p
    }

    #[test]
    #[cfg_attr(not(unix), ignore = "the loop-device and mount tables are Linux's")]
    fn a_file_backing_a_mounted_loop_device_is_refused() {
        let img = file("a");
        let other = file("b");
        // mount -o loop,offset=1048576 img /mnt
        let r = tree("offset", &[("loop3", &img, 1 << 20)], &[], &[], &[("loop3", "/mnt")]);
        let e = check_not_mounted(&img, &r).unwrap_err().to_string();
        assert!(e.contains("backs /dev/loop3 (offset 1048576") && e.contains("/mnt"), "{e}");
        assert!(check_not_mounted(&other, &r).is_ok());
        // Another name for the same file (a hard link) is the same file.
        let link = img.with_extension("link");
        let _ = std::fs::remove_file(&link);
        std::fs::hard_link(&img, &link).unwrap();
        assert!(check_not_mounted(&link, &r).is_err());
        // losetup -P img; mount /dev/loop4p2 /mnt (matched by name only).
        let r = tree("parts", &[("loop4", &img, 0)], &[("loop4", "loop4p1"), ("loop4", "loop4p2")], &[], &[("loop4p1", "/a"), ("loop4p2", "/b")]);
        let e = check_not_mounted(&img, &r).unwrap_err().to_string();
        assert!(e.contains("loop4p"), "{e}");
        let r = tree("parts2", &[("loop4", &img, 0)], &[("loop4", "loop4p1"), ("loop4", "loop4p2")], &[], &[("sda", "/"), ("loop4p2", "/b")]);
        let e = check_not_mounted(&img, &r).unwrap_err().to_string();
        assert!(e.contains("/dev/loop4p2 is mounted at /b"), "{e}");
        // A partition held by device-mapper, which is mounted.
        let r = tree("holder", &[("loop5", &img, 0)], &[("loop5", "loop5p1")], &[("loop5p1", "dm-0")], &[("sda", "/"), ("dm-0", "/srv")]);
        let e = check_not_mounted(&img, &r).unwrap_err().to_string();
        assert!(e.contains("dm-0") && e.contains("/srv"), "{e}");
        // Attached but nothing mounted: allowed.
        let r = tree("idle", &[("loop6", &img, 0)], &[("loop6", "loop6p1")], &[], &[]);
        assert!(check_not_mounted(&img, &r).is_ok());
        for p in [img, other, link] {
            let _ = std::fs::remove_file(p);
        }
    }

    #[test]
    fn device_writer_writes_in_place_without_truncating() {
        let img = file("w");
        let w = DeviceWriter::open(&img).unwrap();
        w.write_at(4000, &[1, 2, 3]).unwrap();
        w.sync().unwrap();
        let b = std::fs::read(&img).unwrap();
        assert_eq!(b.len(), 4096);
        assert_eq!(&b[4000..4003], &[1, 2, 3]);
        assert!(DeviceWriter::open(&img.with_extension("absent")).is_err());
        let _ = std::fs::remove_file(img);
    }

    /// A strict fake Windows: it records every call, answers only for what
    /// it knows, and fails the test on a call the decision must not make
    /// (locking a volume of another disk, locking twice, extents of an
    /// unknown volume). `held` is what is locked right now.
    /// (volume, disks it spans; None: its extents cannot be read)
    type Volumes = Vec<(&'static str, Option<Vec<u32>>)>;

    struct FakeWin {
        disk: Option<u32>,
        attrs: Option<DiskAttributes>,
        volumes: Option<Volumes>,
        unlockable: Vec<&'static str>,
        calls: Vec<String>,
        held: std::sync::Arc<std::sync::Mutex<Vec<String>>>,
    }

    struct Lock(String, std::sync::Arc<std::sync::Mutex<Vec<String>>>);

    impl Drop for Lock {
        fn drop(&mut self) {
            self.1.lock().unwrap().retain(|v| *v != self.0);
        }
    }

    impl FakeWin {
        fn new(attrs: Option<DiskAttributes>, volumes: Option<Volumes>) -> FakeWin {
            FakeWin { disk: Some(2), attrs, volumes, unlockable: vec![], calls: vec![], held: Default::default() }
        }
        fn held(&self) -> Vec<String> {
            self.held.lock().unwrap().clone()
        }
    }

    impl WindowsDisks for FakeWin {
        fn disk_number(&mut self, target: &Path) -> io::Result<u32> {
            self.calls.push(format!("disk_number {}", target.display()));
            self.disk.ok_or_else(|| io::Error::from_raw_os_error(2))
        }
        fn attributes(&mut self, disk: u32) -> io::Result<DiskAttributes> {
            assert_eq!(Some(disk), self.disk, "attributes of another disk");
            self.calls.push(format!("attributes {disk}"));
            self.attrs.ok_or_else(|| io::Error::from_raw_os_error(50))
        }
        fn volumes(&mut self) -> io::Result<Vec<String>> {
            self.calls.push("volumes".into());
            self.volumes.as_ref().map(|v| v.iter().map(|(n, _)| n.to_string()).collect()).ok_or_else(|| io::Error::from_raw_os_error(5))
        }
        fn extents(&mut self, volume: &str) -> io::Result<Vec<DiskExtent>> {
            self.calls.push(format!("extents {volume}"));
            let (_, disks) = self.volumes.as_ref().unwrap().iter().find(|(n, _)| *n == volume).expect("extents of an unknown volume");
            disks.as_ref().map(|d| d.iter().map(|&n| DiskExtent { disk_number: n, offset: 1 << 20, length: 1 << 30 }).collect()).ok_or_else(|| io::Error::from_raw_os_error(21))
        }
        fn lock_and_dismount(&mut self, volume: &str) -> io::Result<Box<dyn Send>> {
            self.calls.push(format!("lock {volume}"));
            let (_, disks) = self.volumes.as_ref().unwrap().iter().find(|(n, _)| *n == volume).expect("lock of an unknown volume");
            assert!(disks.as_ref().is_some_and(|d| d.contains(&self.disk.unwrap())), "locked {volume}, which is not on the disk");
            assert!(!self.held().contains(&volume.to_string()), "locked {volume} twice");
            if self.unlockable.contains(&volume) {
                return Err(io::Error::from_raw_os_error(5));
            }
            self.held.lock().unwrap().push(volume.to_string());
            Ok(Box::new(Lock(volume.to_string(), self.held.clone())))
        }
    }

    const DISK2: &str = r"\\.\PhysicalDrive2";

    fn refused(r: Result<Held>) -> String {
        match r {
            Err(e @ Error::Refused { .. }) => e.to_string(),
            Err(e) => panic!("not a refusal: {e}"),
            Ok(_) => panic!("not refused"),
        }
    }

    #[test]
    fn an_offline_windows_disk_is_written_without_locking_anything() {
        let mut os = FakeWin::new(Some(DiskAttributes { offline: true, read_only: false }), Some(vec![("V1", Some(vec![2]))]));
        let h = check_windows_disk(Path::new(DISK2), &mut os).unwrap();
        assert_eq!(h.locked(), 0);
        assert_eq!(os.calls, [format!("disk_number {DISK2}"), "attributes 2".into()]);
    }

    #[test]
    fn an_online_windows_disk_has_every_volume_on_it_locked_until_the_guard_drops() {
        let vols = vec![("V1", Some(vec![2])), ("V2", Some(vec![0])), ("CD", None), ("SPAN", Some(vec![1, 2]))];
        let mut os = FakeWin::new(Some(DiskAttributes::default()), Some(vols.clone()));
        let h = check_windows_disk(Path::new(DISK2), &mut os).unwrap();
        assert_eq!(h.locked(), 2);
        assert_eq!(os.held(), ["V1", "SPAN"]);
        assert_eq!(os.calls, [&format!("disk_number {DISK2}"), "attributes 2", "volumes", "extents V1", "extents V2", "extents CD", "extents SPAN", "lock V1", "lock SPAN"]);
        drop(h);
        assert!(os.held().is_empty(), "locks released with the guard");
        // Attributes that cannot be read: the volumes decide.
        let mut os = FakeWin::new(None, Some(vols));
        assert_eq!(check_windows_disk(Path::new(DISK2), &mut os).unwrap().locked(), 2);
        // No volume on the disk: nothing to lock, allowed.
        let mut os = FakeWin::new(Some(DiskAttributes::default()), Some(vec![("V2", Some(vec![0]))]));
        assert_eq!(check_windows_disk(Path::new(DISK2), &mut os).unwrap().locked(), 0);
        assert!(!os.calls.iter().any(|c| c.starts_with("lock")));
    }

    #[test]
    fn a_windows_disk_in_use_is_refused_with_how_to_take_it_offline() {
        let mut os = FakeWin::new(Some(DiskAttributes::default()), Some(vec![("V1", Some(vec![2])), ("V3", Some(vec![2])), ("V4", Some(vec![2]))]));
        os.unlockable = vec!["V3"];
        let e = refused(check_windows_disk(Path::new(DISK2), &mut os));
        for want in [DISK2, "disk 2", "V3", "could not be locked", "select disk 2", "offline disk", "Set-Disk -Number 2 -IsOffline $true"] {
            assert!(e.contains(want), "{want:?} not in: {e}");
        }
        assert!(!e.contains('\n'));
        // It stopped at the first failure, and released the lock it had taken.
        assert_eq!(os.calls.last().unwrap(), "lock V3");
        assert!(os.held().is_empty());
        // Volumes that cannot be listed: refused the same way.
        let mut os = FakeWin::new(Some(DiskAttributes::default()), None);
        let e = refused(check_windows_disk(Path::new(DISK2), &mut os));
        assert!(e.contains("cannot be listed") && e.contains("Set-Disk -Number 2 -IsOffline $true"), "{e}");
        // A read-only disk (offline or not): refused before any volume call.
        let mut os = FakeWin::new(Some(DiskAttributes { offline: true, read_only: true }), Some(vec![]));
        let e = refused(check_windows_disk(Path::new(DISK2), &mut os));
        assert!(e.contains("read-only") && e.contains("-IsReadOnly $false") && e.contains("attributes disk clear readonly"), "{e}");
        assert_eq!(os.calls.len(), 2);
        // No such disk: an open error naming it, nothing else asked.
        let mut os = FakeWin::new(None, None);
        os.disk = None;
        let e = check_windows_disk(Path::new(r"\\.\PhysicalDrive9"), &mut os).err().unwrap();
        assert!(matches!(e, Error::Open { .. }) && e.to_string().contains("PhysicalDrive9"), "{e}");
        assert_eq!(os.calls.len(), 1);
    }

    /// A device that takes only whole 4 KiB units, recording each access.
    struct StrictDev {
        data: std::sync::Mutex<Vec<u8>>,
        log: std::sync::Mutex<Vec<(char, u64, usize)>>,
    }

    impl Positional for StrictDev {
        fn read_exact_at(&self, offset: u64, buf: &mut [u8]) -> io::Result<()> {
            assert!(offset % 4096 == 0 && buf.len() % 4096 == 0, "unaligned read of {} at {offset}", buf.len());
            self.log.lock().unwrap().push(('r', offset, buf.len()));
            buf.copy_from_slice(&self.data.lock().unwrap()[offset as usize..offset as usize + buf.len()]);
            Ok(())
        }
        fn write_all_at(&self, offset: u64, data: &[u8]) -> io::Result<()> {
            assert!(offset % 4096 == 0 && data.len() % 4096 == 0, "unaligned write of {} at {offset}", data.len());
            self.log.lock().unwrap().push(('w', offset, data.len()));
            self.data.lock().unwrap()[offset as usize..offset as usize + data.len()].copy_from_slice(data);
            Ok(())
        }
    }

    #[test]
    fn writes_to_a_sector_device_are_whole_sectors() {
        let n = 64 * 4096;
        let init: Vec<u8> = (0..n).map(|i| (i * 7 % 251) as u8).collect();
        let dev = StrictDev { data: std::sync::Mutex::new(init.clone()), log: Default::default() };
        let mut model = init;
        let mut seed = 0x1234_5678_u64;
        let mut next = || {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed
        };
        for i in 0..300 {
            let len = (next() % 20_000) as usize;
            let off = (next() % (n - len) as u64) as usize;
            let data: Vec<u8> = (0..len).map(|j| (i + j) as u8).collect();
            dev.log.lock().unwrap().clear();
            write_aligned(&dev, 4096, off as u64, &data).unwrap();
            model[off..off + len].copy_from_slice(&data);
            let log = dev.log.lock().unwrap().clone();
            // At most one read per partial end, then one write.
            assert!(log.iter().filter(|l| l.0 == 'r').all(|l| l.2 == 4096) && log.iter().filter(|l| l.0 == 'r').count() <= 2, "{log:?}");
            assert_eq!(log.iter().filter(|l| l.0 == 'w').count(), usize::from(len > 0), "{log:?}");
        }
        assert!(*dev.data.lock().unwrap() == model);
        // Aligned: straight through, nothing read.
        dev.log.lock().unwrap().clear();
        write_aligned(&dev, 4096, 8192, &[9u8; 4096]).unwrap();
        assert_eq!(*dev.log.lock().unwrap(), [('w', 8192, 4096)]);
        // Inside one sector: that sector read once.
        dev.log.lock().unwrap().clear();
        write_aligned(&dev, 4096, 8192 + 10, &[1, 2, 3]).unwrap();
        assert_eq!(*dev.log.lock().unwrap(), [('r', 8192, 4096), ('w', 8192, 4096)]);
        // Alignment 1 (files, Linux block devices): unchanged bytes.
        let f = file("aligned1");
        let fh = std::fs::OpenOptions::new().read(true).write(true).open(&f).unwrap();
        write_aligned(&fh, 1, 3, &[5, 6]).unwrap();
        assert_eq!(&std::fs::read(&f).unwrap()[..6], &[0, 0, 0, 5, 6, 0]);
        let _ = std::fs::remove_file(f);
    }
}
