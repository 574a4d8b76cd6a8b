//! Linux: the attached disks from `/sys/block`, the system disk from
//! `/proc/self/mountinfo`. Both roots are parameters ([`Roots`]), so a fake
//! tree describes a machine in tests.

use super::Candidate;
use crate::repair::device::Roots;
use std::collections::HashMap;
use std::fs::File;
use std::io::Read;
use std::path::{Path, PathBuf};

/// A sysfs attribute or a proc table, trimmed; capped (a fake tree could
/// hold anything).
fn read_small(p: &Path, cap: u64) -> Option<String> {
    let mut s = String::new();
    File::open(p).ok()?.take(cap).read_to_string(&mut s).ok()?;
    Some(s.trim_end_matches(['\n', '\0']).trim().to_string())
}

fn list_dir(p: &Path) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(p)
        .map(|rd| rd.flatten().filter_map(|e| e.file_name().to_str().map(str::to_string)).take(1 << 16).collect())
        .unwrap_or_default();
    v.sort();
    v
}

/// `prefix` then at least one character all of `class`, and nothing else.
fn all_after(name: &str, prefix: &str, class: fn(&u8) -> bool) -> bool {
    name.strip_prefix(prefix).is_some_and(|r| !r.is_empty() && r.as_bytes().iter().all(class))
}

/// Whether a `/sys/block` name is a disk rdprescue lists: `sd*`, `vd*`,
/// `xvd*` (letters), `nvme<N>n<M>` (namespaces, not controllers or
/// partitions), `loop<N>` (with a backing file, checked by the caller).
pub fn is_listed_name(name: &str) -> bool {
    let lower = |c: &u8| c.is_ascii_lowercase();
    let digit = |c: &u8| c.is_ascii_digit();
    all_after(name, "sd", lower)
        || all_after(name, "vd", lower)
        || all_after(name, "xvd", lower)
        || all_after(name, "loop", digit)
        || name.strip_prefix("nvme").and_then(|r| r.split_once('n')).is_some_and(|(c, n)| {
            !c.is_empty() && !n.is_empty() && c.bytes().chain(n.bytes()).all(|b| b.is_ascii_digit())
        })
}

/// The attached disks: `/sys/block` entries of [`is_listed_name`] (loop
/// devices only with a backing file), as `dev/NAME`, with the disk the
/// running system booted from marked.
pub fn candidates(roots: &Roots, dev: &Path) -> Vec<Candidate> {
    let block = roots.sys.join("block");
    let system = system_disk(roots);
    let mut out = Vec::new();
    for name in list_dir(&block) {
        if !is_listed_name(&name) {
            continue;
        }
        let d = block.join(&name);
        let backing_file = read_small(&d.join("loop/backing_file"), 1 << 16).filter(|f| !f.is_empty()).map(PathBuf::from);
        if name.starts_with("loop") && backing_file.is_none() {
            continue;
        }
        let model = read_small(&d.join("device/model"), 1 << 10).filter(|m| !m.is_empty());
        out.push(Candidate { path: dev.join(&name), backing_file, model, system: system.as_deref() == Some(name.as_str()), error: None });
    }
    out
}

/// The `/sys/block` disk each block device name and "major:minor" belongs
/// to (a disk to itself, a partition to its disk).
struct DiskOf {
    by_dev: HashMap<String, String>,
    by_name: HashMap<String, String>,
}

impl DiskOf {
    fn load(sys: &Path) -> DiskOf {
        let mut t = DiskOf { by_dev: HashMap::new(), by_name: HashMap::new() };
        let block = sys.join("block");
        for disk in list_dir(&block) {
            let d = block.join(&disk);
            let mut add = |name: &str, dir: &Path| {
                if let Some(dev) = read_small(&dir.join("dev"), 64) {
                    t.by_dev.insert(dev, disk.clone());
                }
                t.by_name.insert(name.to_string(), disk.clone());
            };
            add(&disk, &d);
            for sub in list_dir(&d) {
                let p = d.join(&sub);
                if p.join("partition").is_file() {
                    add(&sub, &p);
                }
            }
        }
        t
    }

    /// The physical disk under `disk`: itself, or for a device-mapper / md
    /// device (LVM, RAID, LUKS) the disk under its first slave.
    fn physical(&self, sys: &Path, disk: &str, depth: u32) -> Option<String> {
        if depth > 8 {
            return None;
        }
        let slaves = list_dir(&sys.join("block").join(disk).join("slaves"));
        match slaves.first() {
            None => Some(disk.to_string()),
            Some(s) => self.physical(sys, self.by_name.get(s)?, depth + 1),
        }
    }
}

/// The `/sys/block` name of the disk the root file system is on: the root
/// mount's "major:minor" (or, for file systems with anonymous device numbers
/// such as btrfs, its `/dev/...` source), to its disk, through device-mapper
/// and md to the disk below. `None` when it cannot be told (a container's
/// overlay root, a network root).
pub fn system_disk(roots: &Roots) -> Option<String> {
    let info = read_small(&roots.proc.join("self/mountinfo"), 64 << 20)?;
    // mountinfo: ID PARENT MAJ:MIN ROOT MOUNTPOINT OPTIONS [OPTIONAL...] - FSTYPE SOURCE SUPEROPTS
    // The last mount on / is the one in effect.
    let line = info.lines().rev().find(|l| l.split_whitespace().nth(4) == Some("/"))?;
    let f: Vec<&str> = line.split_whitespace().collect();
    let t = DiskOf::load(&roots.sys);
    let by_dev = f.get(2).filter(|d| !d.starts_with("0:")).and_then(|d| t.by_dev.get(*d));
    let by_source = || {
        let source = f.iter().position(|x| *x == "-").and_then(|i| f.get(i + 2))?;
        let name = Path::new(source.strip_prefix("/dev/")?).file_name()?.to_str()?;
        t.by_name.get(name)
    };
    let disk = by_dev.or_else(by_source)?;
    t.physical(&roots.sys, disk, 0)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A fake sysfs: `disks` are (name, dev, partitions as (name, dev)),
    /// `loops` (name, dev, backing file or ""), `slaves` (holder, slave).
    struct Fake {
        root: PathBuf,
    }

    impl Fake {
        fn new(tag: &str) -> Fake {
            let root = std::env::temp_dir().join(format!("rdprescue-disks-{tag}-{}", std::process::id()));
            let _ = std::fs::remove_dir_all(&root);
            std::fs::create_dir_all(root.join("proc/self")).unwrap();
            std::fs::create_dir_all(root.join("sys/block")).unwrap();
            Fake { root }
        }
        fn roots(&self) -> Roots {
            Roots { proc: self.root.join("proc"), sys: self.root.join("sys") }
        }
        fn disk(&self, name: &str, dev: &str, parts: &[(&str, &str)]) -> &Self {
            let d = self.root.join("sys/block").join(name);
            std::fs::create_dir_all(d.join("device")).unwrap();
            std::fs::write(d.join("dev"), format!("{dev}\n")).unwrap();
            std::fs::write(d.join("device/model"), format!("Virtual Disk {name}    \n")).unwrap();
            for (p, pdev) in parts {
                std::fs::create_dir_all(d.join(p)).unwrap();
                std::fs::write(d.join(p).join("dev"), format!("{pdev}\n")).unwrap();
                std::fs::write(d.join(p).join("partition"), "1\n").unwrap();
            }
            self
        }
        fn lo(&self, name: &str, dev: &str, backing: &str) -> &Self {
            let d = self.root.join("sys/block").join(name);
            std::fs::create_dir_all(&d).unwrap();
            std::fs::write(d.join("dev"), format!("{dev}\n")).unwrap();
            if !backing.is_empty() {
                std::fs::create_dir_all(d.join("loop")).unwrap();
                std::fs::write(d.join("loop/backing_file"), format!("{backing}\n")).unwrap();
            }
            self
        }
        fn slave(&self, holder: &str, dev: &str, slave: &str) -> &Self {
            let d = self.root.join("sys/block").join(holder);
            std::fs::create_dir_all(d.join("slaves").join(slave)).unwrap();
            std::fs::write(d.join("dev"), format!("{dev}\n")).unwrap();
            self
        }
        fn root_mount(&self, dev: &str, source: &str) -> &Self {
            let info = format!(
                "21 1 0:20 / /proc rw - proc proc rw\n\
                 25 1 {dev} / / rw,relatime shared:1 - ext4 {source} rw\n\
                 30 25 8:33 / /mnt/data rw - ext4 /dev/sdc1 rw\n"
            );
            std::fs::write(self.root.join("proc/self/mountinfo"), info).unwrap();
            self
        }
    }

    impl Drop for Fake {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.root);
        }
    }

    /// The device paths, with `/` (a Windows build joins with `\\`).
    fn names(c: &[Candidate]) -> Vec<String> {
        c.iter().map(|c| c.path.display().to_string().replace('\\', "/")).collect()
    }

    #[test]
    fn listed_names() {
        for yes in ["sda", "sdab", "vdb", "xvdf", "nvme0n1", "nvme12n3", "loop0", "loop17"] {
            assert!(is_listed_name(yes), "{yes}");
        }
        for no in ["sda1", "sd", "nvme0", "nvme0n1p2", "nvmen1", "loop", "loop0p1", "sr0", "dm-0", "md0", "ram0", "zram0", "vda1", "xvda2", "sdA"] {
            assert!(!is_listed_name(no), "{no}");
        }
    }

    #[test]
    fn enumerates_a_rescue_vm() {
        let f = Fake::new("rescue");
        f.disk("sda", "8:0", &[("sda1", "8:1"), ("sda2", "8:2")])
            .disk("sdb", "8:16", &[("sdb1", "8:17")])
            .disk("sdc", "8:32", &[("sdc1", "8:33"), ("sdc2", "8:34")])
            .disk("nvme0n1", "259:0", &[("nvme0n1p1", "259:1")])
            .lo("loop0", "7:0", "/srv/images/broken.raw")
            .lo("loop1", "7:1", "")
            .lo("sr0", "11:0", "")
            .slave("dm-0", "253:0", "sda2")
            .root_mount("8:2", "/dev/sda2");
        let dev = Path::new("/dev");
        let c = candidates(&f.roots(), dev);
        assert_eq!(names(&c), ["/dev/loop0", "/dev/nvme0n1", "/dev/sda", "/dev/sdb", "/dev/sdc"]);
        let loop0 = &c[0];
        assert_eq!(loop0.backing_file.as_deref(), Some(Path::new("/srv/images/broken.raw")));
        assert_eq!(c[2].model.as_deref(), Some("Virtual Disk sda"));
        assert_eq!(names(&c.iter().filter(|c| c.system).cloned().collect::<Vec<_>>()), ["/dev/sda"]);
        assert_eq!(system_disk(&f.roots()).as_deref(), Some("sda"));
    }

    #[test]
    fn system_disk_through_lvm_btrfs_and_overmounts() {
        // Root on LVM: dm-0 over sdb1.
        let f = Fake::new("lvm");
        f.disk("sda", "8:0", &[]).disk("sdb", "8:16", &[("sdb1", "8:17")]).slave("dm-0", "253:0", "sdb1").root_mount("253:0", "/dev/mapper/vg-root");
        assert_eq!(system_disk(&f.roots()).as_deref(), Some("sdb"));
        // btrfs: an anonymous device number; the source names the partition.
        let f = Fake::new("btrfs");
        f.disk("nvme0n1", "259:0", &[("nvme0n1p2", "259:2")]).root_mount("0:31", "/dev/nvme0n1p2");
        assert_eq!(system_disk(&f.roots()).as_deref(), Some("nvme0n1"));
        // A container: overlay on /, nothing to tell.
        let f = Fake::new("overlay");
        f.disk("sda", "8:0", &[("sda1", "8:1")]).root_mount("0:52", "overlay");
        assert_eq!(system_disk(&f.roots()), None);
        assert!(candidates(&f.roots(), Path::new("/dev")).iter().all(|c| !c.system));
        // The last mount on / wins.
        let f = Fake::new("over");
        f.disk("sda", "8:0", &[("sda1", "8:1")]).disk("vda", "252:0", &[("vda1", "252:1")]);
        std::fs::write(f.root.join("proc/self/mountinfo"), "1 0 8:1 / / rw - ext4 /dev/sda1 rw\n2 1 252:1 / / rw - ext4 /dev/vda1 rw\n").unwrap();
        assert_eq!(system_disk(&f.roots()).as_deref(), Some("vda"));
        // A slave loop (dm over dm over itself) ends, without a disk.
        let f = Fake::new("cycle");
        f.slave("dm-0", "253:0", "dm-1").slave("dm-1", "253:1", "dm-0").root_mount("253:0", "/dev/dm-0");
        assert_eq!(system_disk(&f.roots()), None);
        // No /proc at all.
        let f = Fake::new("none");
        assert_eq!(system_disk(&f.roots()), None);
        assert!(candidates(&f.roots(), Path::new("/dev")).is_empty());
    }
}
