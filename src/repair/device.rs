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

use crate::error::{Error, Layer, Result};
use std::collections::HashMap;
use std::fs::File;
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

/// Refuse to write `target` (a block device or a raw image file) when the
/// host is using it; see the module documentation.
pub fn check_not_mounted(target: &Path, roots: &Roots) -> Result<()> {
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

/// Positional writes to a disk (block device or raw image file), for
/// in-place fixes and `undo`. Never creates or truncates.
pub struct DeviceWriter {
    f: File,
    path: PathBuf,
}

impl DeviceWriter {
    /// Open `path` for writing; a block device exclusively (`O_EXCL`: the
    /// kernel refuses a mounted or claimed device).
    pub fn open(path: &Path) -> Result<DeviceWriter> {
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
        Ok(DeviceWriter { f, path: path.to_path_buf() })
    }

    /// Write all of `data` at byte `offset`.
    pub fn write_at(&self, offset: u64, data: &[u8]) -> Result<()> {
        #[cfg(unix)]
        let r = std::os::unix::fs::FileExt::write_all_at(&self.f, data, offset);
        #[cfg(windows)]
        let r = (|| {
            use std::os::windows::fs::FileExt;
            let (mut at, mut rest) = (offset, data);
            while !rest.is_empty() {
                let n = self.f.seek_write(rest, at)?;
                if n == 0 {
                    return Err(std::io::Error::from(std::io::ErrorKind::WriteZero));
                }
                at += n as u64;
                rest = &rest[n..];
            }
            Ok(())
        })();
        #[cfg(not(any(unix, windows)))]
        let r: std::io::Result<()> = Err(std::io::Error::other("in-place writes are not supported on this system"));
        r.map_err(|e| Error::Io { layer: Layer::Raw, offset, path: self.path.display().to_string(), source: e })
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
    #[cfg_attr(not(unix), ignore = "Linux mount table (/proc): not consulted on Windows")]
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
}
