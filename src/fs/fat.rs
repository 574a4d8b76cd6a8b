//! FAT12/16/32 (the EFI system partition) through `fatfs`. Reading is strictly
//! read-only; [`FileSystem::overwrite_plan`] runs fatfs over a copy-on-write
//! view of the volume and returns the writes it made, without touching the
//! volume itself.

use super::{components, guard, DiskReader, FileStat, FileSystem, FsKind, FsState};
use crate::error::{Error, Layer, Result};
use crate::image::Disk;
use std::cell::RefCell;
use std::io::{Read, Seek, SeekFrom, Write};
use std::rc::Rc;
use std::sync::Arc;

type Fs = fatfs::FileSystem<DiskReader>;

pub struct FatFs {
    fs: RefCell<Fs>,
    vol: Arc<dyn Disk>,
    fuel: super::reader::Fuel,
    kind: FsKind,
    state: FsState,
    base: u64,
}

impl FatFs {
    pub fn open(vol: Arc<dyn Disk>, base: u64) -> Result<Self> {
        guard(Layer::Fat, base, || {
            let r = DiskReader::new(vol.clone(), Layer::Fat, base);
            let fuel = r.fuel();
            let fs = fatfs::FileSystem::new(r, fatfs::FsOptions::new())
                .map_err(|e| Error::corrupt(Layer::Fat, base, format!("cannot mount: {e}")))?;
            let kind = match fs.fat_type() {
                fatfs::FatType::Fat12 => FsKind::Fat12,
                fatfs::FatType::Fat16 => FsKind::Fat16,
                fatfs::FatType::Fat32 => FsKind::Fat32,
            };
            // fatfs's stats() would also count the free clusters, reading
            // the whole FAT when FSInfo has no count: the boot sector says
            // the rest.
            let cluster_size = fs.cluster_size();
            let mut boot = [0u8; bpb::LEN];
            let clusters = vol.read_at(0, &mut boot).ok().and_then(|()| total_clusters(&boot));
            let status = fs.read_status_flags().map_err(|e| Error::corrupt(Layer::Fat, base, format!("reading status flags: {e}")))?;
            let label = fs.volume_label();
            let label = label.trim();
            let state = FsState {
                label: (!label.is_empty() && label != "NO NAME").then(|| label.to_string()),
                version: None,
                dirty: status.dirty() || status.io_error(),
                logfile_clean: None,
                hibernated: None,
                cluster_size,
                size: clusters.map_or(0, |n| u64::from(n) * u64::from(cluster_size)),
            };
            Ok(FatFs { fs: RefCell::new(fs), vol, fuel, kind, state, base })
        })
    }

    fn with_entry<T>(&self, path: &str, f: impl FnOnce(fatfs::DirEntry<'_, DiskReader>) -> Result<T>) -> Result<T> {
        let fs = self.fs.borrow();
        self.fuel.refuel();
        let mut dir = fs.root_dir();
        let comps: Vec<&str> = components(path).collect();
        let not_found = || Error::NotFound { layer: Layer::Fat, path: path.to_string() };
        let Some((last, parents)) = comps.split_last() else {
            return Err(Error::Usage("the root directory is not a file".into()));
        };
        for c in parents {
            let e = find(&dir, c, self.base)?.ok_or_else(not_found)?;
            if !e.is_dir() {
                return Err(not_found());
            }
            dir = e.to_dir();
        }
        let e = find(&dir, last, self.base)?.ok_or_else(not_found)?;
        f(e)
    }
}

/// The fields of a FAT boot sector (BPB) that size the data area, as fatfs
/// reads them (little-endian).
mod bpb {
    pub const BYTES_PER_SECTOR: usize = 0x0B; // u16
    pub const SECTORS_PER_CLUSTER: usize = 0x0D; // u8
    pub const RESERVED_SECTORS: usize = 0x0E; // u16
    pub const FATS: usize = 0x10; // u8
    pub const ROOT_ENTRIES: usize = 0x11; // u16
    pub const TOTAL_SECTORS_16: usize = 0x13; // u16
    pub const SECTORS_PER_FAT_16: usize = 0x16; // u16, 0 on FAT32
    pub const TOTAL_SECTORS_32: usize = 0x20; // u32
    pub const SECTORS_PER_FAT_32: usize = 0x24; // u32
    pub const LEN: usize = 0x28;
    /// Bytes per root directory entry.
    pub const DIR_ENTRY: u32 = 32;
}

/// The clusters of the data area, as fatfs counts them (its `stats()`
/// total): the sectors after the reserved ones, the FATs and the root
/// directory, in whole clusters. `None` where the fields make no sense
/// (fatfs refuses to mount such a volume).
fn total_clusters(b: &[u8; bpb::LEN]) -> Option<u32> {
    let u16_at = |at: usize| u32::from(crate::bytes::le_u16(b, at));
    let bytes_per_sector = u16_at(bpb::BYTES_PER_SECTOR);
    let per_fat = match u16_at(bpb::SECTORS_PER_FAT_16) {
        0 => crate::bytes::le_u32(b, bpb::SECTORS_PER_FAT_32),
        n => n,
    };
    let total = match u16_at(bpb::TOTAL_SECTORS_16) {
        0 => crate::bytes::le_u32(b, bpb::TOTAL_SECTORS_32),
        n => n,
    };
    let root_dir = (u16_at(bpb::ROOT_ENTRIES) * bpb::DIR_ENTRY).checked_add(bytes_per_sector.checked_sub(1)?)?.checked_div(bytes_per_sector)?;
    let first_data = u16_at(bpb::RESERVED_SECTORS).checked_add(u32::from(b[bpb::FATS]).checked_mul(per_fat)?)?.checked_add(root_dir)?;
    total.checked_sub(first_data)?.checked_div(u32::from(b[bpb::SECTORS_PER_CLUSTER]))
}

/// Case-insensitive lookup of `name` (long or short name) in `dir`. Bounded: a
/// directory cannot hold more entries than fit in the volume, and fatfs stops at
/// the end-of-chain marker; we add a hard cap against cyclic cluster chains.
fn find<'a, T: fatfs::ReadWriteSeek>(dir: &fatfs::Dir<'a, T>, name: &str, base: u64) -> Result<Option<fatfs::DirEntry<'a, T>>> {
    const MAX_ENTRIES: usize = 1 << 20;
    for (i, e) in dir.iter().enumerate() {
        if i >= MAX_ENTRIES {
            return Err(Error::corrupt(Layer::Fat, base, "directory has more than a million entries (cyclic cluster chain?)"));
        }
        let e = e.map_err(|e| Error::corrupt(Layer::Fat, base, format!("reading directory: {e}")))?;
        if e.file_name().eq_ignore_ascii_case(name) || e.short_file_name().eq_ignore_ascii_case(name) {
            return Ok(Some(e));
        }
    }
    Ok(None)
}

/// The clock fatfs stamps a rewritten file's directory entry with: now, in
/// UTC (FAT stores local time, which an offline tool cannot know; the EFI
/// firmware and Windows only display it), or `SOURCE_DATE_EPOCH` when set.
/// Without it fatfs (built without chrono) would write 1980-01-01.
#[derive(Debug)]
struct UtcNow;

static UTC_NOW: UtcNow = UtcNow;

impl UtcNow {
    fn now() -> fatfs::DateTime {
        let secs = std::env::var("SOURCE_DATE_EPOCH")
            .ok()
            .and_then(|v| v.trim().parse::<u64>().ok())
            .unwrap_or_else(|| std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs()));
        Self::at(secs)
    }

    fn at(secs: u64) -> fatfs::DateTime {
        // Civil date from days since 1970-01-01 (proleptic Gregorian).
        let days = (secs / 86_400) as i64 + 719_468;
        let era = days.div_euclid(146_097);
        let doe = days.rem_euclid(146_097);
        let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
        let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
        let mp = (5 * doy + 2) / 153;
        let day = (doy - (153 * mp + 2) / 5 + 1) as u16;
        let month = if mp < 10 { mp + 3 } else { mp - 9 } as u16;
        let year = (yoe + era * 400 + i64::from(month <= 2)).clamp(1980, 2107) as u16;
        let t = secs % 86_400;
        fatfs::DateTime {
            date: fatfs::Date { year, month, day },
            time: fatfs::Time { hour: (t / 3600) as u16, min: (t / 60 % 60) as u16, sec: (t % 60) as u16, millis: 0 },
        }
    }
}

impl fatfs::TimeProvider for UtcNow {
    fn get_current_date(&self) -> fatfs::Date {
        Self::now().date
    }
    fn get_current_date_time(&self) -> fatfs::DateTime {
        Self::now()
    }
}

/// A volume seen through fatfs for writing: reads return the volume with the
/// writes made so far applied; writes are only recorded.
struct CopyOnWrite {
    r: DiskReader,
    pos: u64,
    writes: Captured,
}

/// Writes recorded by [`CopyOnWrite`]: (volume offset, bytes), in order.
type Captured = Rc<RefCell<Vec<(u64, Vec<u8>)>>>;

impl Read for CopyOnWrite {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        self.r.seek(SeekFrom::Start(self.pos))?;
        let n = self.r.read(buf)?;
        let (start, end) = (self.pos, self.pos + n as u64);
        for (o, d) in self.writes.borrow().iter() {
            let (ws, we) = (*o, o + d.len() as u64);
            let (s, e) = (ws.max(start), we.min(end));
            if s < e {
                buf[(s - start) as usize..(e - start) as usize].copy_from_slice(&d[(s - ws) as usize..(e - ws) as usize]);
            }
        }
        self.pos = end;
        Ok(n)
    }
}

impl Write for CopyOnWrite {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.writes.borrow_mut().push((self.pos, buf.to_vec()));
        self.pos += buf.len() as u64;
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Seek for CopyOnWrite {
    fn seek(&mut self, to: SeekFrom) -> std::io::Result<u64> {
        self.pos = self.r.seek(to)?;
        Ok(self.pos)
    }
}

impl FileSystem for FatFs {
    fn overwrite_plan(&self, path: &str, changes: &[(u64, Vec<u8>)]) -> Result<Vec<(u64, Vec<u8>)>> {
        if self.state.dirty {
            return Err(Error::unsupported(Layer::Fat, self.base, "volume is marked dirty (not cleanly unmounted): run chkdsk on it first"));
        }
        guard(Layer::Fat, self.base, || {
            let base = self.base;
            let writes = Rc::new(RefCell::new(Vec::new()));
            let dev = CopyOnWrite { r: DiskReader::new(self.vol.clone(), Layer::Fat, base), pos: 0, writes: writes.clone() };
            let opts = fatfs::FsOptions::new().time_provider(&UTC_NOW);
            let fs = fatfs::FileSystem::new(dev, opts).map_err(|e| Error::corrupt(Layer::Fat, base, format!("cannot mount: {e}")))?;
            {
                let comps: Vec<&str> = components(path).collect();
                let not_found = || Error::NotFound { layer: Layer::Fat, path: path.to_string() };
                let (last, parents) = comps.split_last().ok_or_else(|| Error::Usage("the root directory is not a file".into()))?;
                let mut dir = fs.root_dir();
                for c in parents {
                    let e = find(&dir, c, base)?.ok_or_else(not_found)?;
                    if !e.is_dir() {
                        return Err(not_found());
                    }
                    dir = e.to_dir();
                }
                let e = find(&dir, last, base)?.ok_or_else(not_found)?;
                if e.is_dir() {
                    return Err(Error::Usage(format!("{path} is a directory")));
                }
                let size = e.len();
                let mut f = e.to_file();
                for (off, data) in changes {
                    if off + data.len() as u64 > size {
                        return Err(Error::unsupported(Layer::Fat, base, format!("{path}: writing up to byte {:#x} would grow the {size}-byte file", off + data.len() as u64)));
                    }
                    f.seek(SeekFrom::Start(*off)).and_then(|_| f.write_all(data)).map_err(|e| Error::corrupt(Layer::Fat, base, format!("{path}: writing at file offset {off:#x}: {e}")))?;
                }
                f.flush().map_err(|e| Error::corrupt(Layer::Fat, base, format!("{path}: {e}")))?;
            }
            fs.unmount().map_err(|e| Error::corrupt(Layer::Fat, base, format!("unmount: {e}")))?;
            let out = writes.borrow().clone();
            Ok(out)
        })
    }

    fn kind(&self) -> FsKind {
        self.kind
    }
    fn state(&self) -> &FsState {
        &self.state
    }
    fn stat(&self, path: &str) -> Result<FileStat> {
        guard(Layer::Fat, self.base, || {
            if components(path).next().is_none() {
                return Ok(FileStat { size: 0, is_dir: true });
            }
            self.with_entry(path, |e| Ok(FileStat { size: e.len(), is_dir: e.is_dir() }))
        })
    }
    fn read_to(&self, path: &str, out: &mut dyn Write) -> Result<u64> {
        guard(Layer::Fat, self.base, || {
            let base = self.base;
            self.with_entry(path, |e| {
                if e.is_dir() {
                    return Err(Error::Usage(format!("{path} is a directory")));
                }
                let total = e.len();
                let mut f = e.to_file();
                let mut buf = vec![0u8; 64 * 1024];
                let mut done = 0u64;
                while done < total {
                    let n = f.read(&mut buf).map_err(|err| Error::corrupt(Layer::Fat, base, format!("reading {path} at file offset {done:#x}: {err}")))?;
                    if n == 0 {
                        return Err(Error::corrupt(Layer::Fat, base, format!("{path}: cluster chain ends at {done} bytes, directory entry says {total}")));
                    }
                    let n = n.min((total - done) as usize);
                    out.write_all(&buf[..n]).map_err(|source| Error::Output { layer: Layer::Fat, what: "writing", path: "the output".into(), source })?;
                    done += n as u64;
                }
                Ok(done)
            })
        })
    }
}

#[cfg(test)]
mod clock_tests {
    use super::UtcNow;

    #[test]
    fn utc_clock_gives_civil_dates() {
        // 1700000000 = 2023-11-14 22:13:20 UTC; 951782400 = 2000-02-29 (leap day).
        let t = UtcNow::at(1_700_000_000);
        assert_eq!((t.date.year, t.date.month, t.date.day), (2023, 11, 14));
        assert_eq!((t.time.hour, t.time.min, t.time.sec), (22, 13, 20));
        let t = UtcNow::at(951_782_400);
        assert_eq!((t.date.year, t.date.month, t.date.day), (2000, 2, 29));
    }
}

#[cfg(test)]
mod size_tests {
    use super::{bpb, total_clusters};
    use fatfs::{FatType, FormatVolumeOptions};
    use std::io::Cursor;

    /// The boot sector's count of data clusters is fatfs's own (`stats()`),
    /// on FAT12, FAT16 and FAT32 volumes of several geometries, and
    /// nonsense fields give `None`, never a panic.
    #[test]
    fn clusters_from_the_boot_sector_are_fatfs_stats() {
        let cases: [(u64, Option<FatType>, Option<u32>); 6] = [
            (1 << 20, None, None),
            (4 << 20, Some(FatType::Fat12), Some(1024)),
            (20 << 20, None, None),
            (20 << 20, Some(FatType::Fat16), Some(2048)),
            (40 << 20, Some(FatType::Fat32), Some(512)),
            (64 << 20, Some(FatType::Fat32), Some(4096)),
        ];
        for (len, kind, cluster) in cases {
            let mut disk = Cursor::new(vec![0u8; len as usize]);
            let mut o = FormatVolumeOptions::new();
            if let Some(k) = kind {
                o = o.fat_type(k);
            }
            if let Some(c) = cluster {
                o = o.bytes_per_cluster(c);
            }
            fatfs::format_volume(&mut disk, o).unwrap();
            let boot: [u8; bpb::LEN] = disk.get_ref()[..bpb::LEN].try_into().unwrap();
            let fs = fatfs::FileSystem::new(disk, fatfs::FsOptions::new()).unwrap();
            let stats = fs.stats().unwrap();
            assert_eq!(total_clusters(&boot), Some(stats.total_clusters()), "{len} bytes, {:?}", fs.fat_type());
            assert!(stats.total_clusters() > 0);
        }
        let mut junk = [0u8; bpb::LEN];
        assert_eq!(total_clusters(&junk), None, "zero bytes per sector");
        junk[bpb::BYTES_PER_SECTOR] = 2; // 512
        junk[bpb::TOTAL_SECTORS_16] = 10;
        junk[bpb::RESERVED_SECTORS] = 20;
        junk[bpb::SECTORS_PER_CLUSTER] = 1;
        assert_eq!(total_clusters(&junk), None, "metadata past the end");
        junk[bpb::RESERVED_SECTORS] = 1;
        junk[bpb::SECTORS_PER_CLUSTER] = 0;
        assert_eq!(total_clusters(&junk), None, "zero sectors per cluster");
        junk.fill(0xFF);
        let _ = total_clusters(&junk);
    }
}
