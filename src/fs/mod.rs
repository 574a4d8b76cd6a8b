//! Layer 3: file systems. NTFS through the `ntfs` crate, FAT12/16/32 through
//! `fatfs`. Both are read through [`DiskReader`], a cached `Read + Seek` view of a
//! volume. Everything above this layer uses the [`FileSystem`] trait.

pub mod fat;
pub mod ntfs;
pub(crate) mod reader;

pub use reader::DiskReader;

use crate::error::{Error, Layer, Result};
use crate::image::Disk;
use serde::Serialize;
use std::io::Write;
use std::sync::Arc;

/// What a volume's boot sector says it holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum FsKind {
    Ntfs,
    Fat12,
    Fat16,
    Fat32,
    ExFat,
    /// BitLocker-encrypted (`-FVE-FS-`): unreadable without the key.
    BitLocker,
    /// Nothing we recognise.
    Unknown,
}

/// State of a file system that matters before trusting or changing it.
#[derive(Debug, Clone, Default, Serialize)]
pub struct FsState {
    /// Volume label.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub label: Option<String>,
    /// NTFS version, e.g. "3.1".
    #[serde(skip_serializing_if = "Option::is_none")]
    pub version: Option<String>,
    /// Volume dirty flag set (chkdsk pending / not cleanly unmounted).
    pub dirty: bool,
    /// NTFS: `$LogFile` holds operations that Windows has not checkpointed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub logfile_clean: Option<bool>,
    /// NTFS: `hiberfil.sys` holds a hibernation image (hibernate or Fast Startup).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub hibernated: Option<bool>,
    pub cluster_size: u32,
    pub size: u64,
}

/// Metadata of a file.
#[derive(Debug, Clone, Copy, Serialize)]
pub struct FileStat {
    pub size: u64,
    pub is_dir: bool,
}

/// A mounted, read-only file system. Paths use `\` or `/` separators, are
/// relative to the volume root and are matched case-insensitively.
pub trait FileSystem {
    fn kind(&self) -> FsKind;
    fn state(&self) -> &FsState;
    /// Metadata of `path`, or `Error::NotFound`.
    fn stat(&self, path: &str) -> Result<FileStat>;
    /// Stream the unnamed data of file `path` into `out`; returns bytes written.
    fn read_to(&self, path: &str, out: &mut dyn Write) -> Result<u64>;

    /// The volume writes (volume-relative offset, bytes) that make byte ranges
    /// `changes` (file offset, new bytes) of file `path` hold the new bytes,
    /// without changing any file-system structure: the file keeps its size and
    /// its clusters. Refuses (with the reason) what cannot be written that way:
    /// growth, sparse/compressed/encrypted or resident data, ranges past the
    /// initialized size. Nothing is written here; the caller owns the output.
    fn overwrite_plan(&self, path: &str, changes: &[(u64, Vec<u8>)]) -> Result<Vec<(u64, Vec<u8>)>> {
        let _ = changes;
        Err(Error::Refused { layer: Layer::Fs, msg: format!("{path}: writing is not supported on this file system") })
    }

    /// Free bytes of the volume, or None where the file system does not say
    /// (NTFS: the clusters clear in `$Bitmap`, streamed in bounded memory).
    fn free_bytes(&self) -> Result<Option<u64>> {
        Ok(None)
    }

    /// Names of the entries of directory `path` (at most [`MAX_DIR_ENTRIES`],
    /// DOS 8.3 aliases left out). File systems that cannot list refuse.
    fn list_dir(&self, path: &str) -> Result<Vec<String>> {
        Err(Error::unsupported(Layer::Fs, 0, format!("{path}: listing directories is not supported on this file system")))
    }

    /// Up to `buf.len()` bytes of file `path` from byte `offset` (short only
    /// at the end of the file); returns how many. For readers that need a
    /// few pieces of a large file (event-log chunks, newest first). The
    /// default streams the file up to the range; NTFS and host directories
    /// seek.
    fn read_at(&self, path: &str, offset: u64, buf: &mut [u8]) -> Result<usize> {
        let mut w = RangeWriter { skip: offset, buf, filled: 0 };
        match self.read_to(path, &mut w) {
            Ok(_) => Ok(w.filled),
            Err(Error::Output { .. }) if w.filled == w.buf.len() => Ok(w.filled),
            Err(e) => Err(e),
        }
    }

    /// A handle on file `path` that reads it without looking the path up
    /// again ([`open_read`] is what callers use). `None` where the file system
    /// has nothing cheaper than a path read per call: [`open_read`] then wraps
    /// [`FileSystem::read_at`]. NTFS gives one holding the file's decoded data
    /// runs (or its resident bytes).
    fn open_file(&self, path: &str) -> Result<Option<Box<dyn FileRead>>> {
        let _ = path;
        Ok(None)
    }

    /// [`FileSystem::open_file`] as a handle another thread may read through
    /// (the file system itself stays on its thread): the same lookup, the
    /// same errors, the same bytes. `None` where the file system has no such
    /// handle (only NTFS has: its handle holds the volume and decoded runs);
    /// callers then read on this thread ([`open_read`]). The paged hive load
    /// parses a hive's logs through these while the primary streams.
    fn open_shared(&self, path: &str) -> Result<Option<Arc<dyn FileRead + Send + Sync>>> {
        let _ = path;
        Ok(None)
    }

    /// Whether `path` exists (errors other than "not found" are reported as absent).
    fn exists(&self, path: &str) -> bool {
        self.stat(path).is_ok()
    }
    /// Read a whole file, refusing files larger than `limit` bytes.
    fn read_file(&self, path: &str, limit: u64) -> Result<Vec<u8>> {
        let st = self.stat(path)?;
        if st.is_dir {
            return Err(Error::Usage(format!("{path} is a directory")));
        }
        if st.size > limit {
            return Err(Error::unsupported(Layer::Fs, 0, format!("{path} is {} bytes, more than the {limit}-byte limit", st.size)));
        }
        let mut v = Vec::with_capacity(st.size as usize);
        self.read_to(path, &mut v)?;
        Ok(v)
    }
}

/// An open file of a [`FileSystem`] ([`open_read`]): what its reads need
/// (NTFS: the sizes and the data runs, decoded once) without the path lookup
/// that every [`FileSystem::read_at`] repeats (directory index walk, MFT
/// record read and fixups, attribute list, runs). The file system's state at
/// open is what it reads: the tool never writes the volume it reads.
pub trait FileRead {
    /// Size of the file in bytes.
    fn size(&self) -> u64;
    /// Exactly what [`FileSystem::read_at`] on the file's path gives: up to
    /// `buf.len()` bytes from `offset`, short only at the end of the file;
    /// failures name the layer and the offset.
    fn read_at(&self, offset: u64, buf: &mut [u8]) -> Result<usize>;
}

/// Open file `path` of `fs` for reads at offsets: the file system's own
/// handle ([`FileSystem::open_file`]) or one that reads by path. Fails as a
/// read of the path would (not found, a directory, unreadable structures).
pub fn open_read(fs: &std::rc::Rc<dyn FileSystem>, path: &str) -> Result<Box<dyn FileRead>> {
    open_by(fs.clone(), path)
}

/// [`open_read`] for a borrowed file system (the handle lives as long as the
/// borrow), for readers that hold `&dyn FileSystem`.
pub fn open_read_in<'a>(fs: &'a dyn FileSystem, path: &str) -> Result<Box<dyn FileRead + 'a>> {
    open_by(fs, path)
}

/// [`open_read`] over any pointer to a file system (shared or borrowed).
fn open_by<'a, F: std::ops::Deref<Target = dyn FileSystem + 'a> + 'a>(fs: F, path: &str) -> Result<Box<dyn FileRead + 'a>> {
    if let Some(h) = fs.open_file(path)? {
        return Ok(h);
    }
    let st = fs.stat(path)?;
    if st.is_dir {
        return Err(Error::Usage(format!("{path} is a directory")));
    }
    Ok(Box::new(PathRead { fs, path: path.to_string(), size: st.size }))
}

/// [`FileRead`] by path: every read is a [`FileSystem::read_at`].
struct PathRead<F> {
    fs: F,
    path: String,
    size: u64,
}

impl<'a, F: std::ops::Deref<Target = dyn FileSystem + 'a>> FileRead for PathRead<F> {
    fn size(&self) -> u64 {
        self.size
    }
    fn read_at(&self, offset: u64, buf: &mut [u8]) -> Result<usize> {
        self.fs.read_at(&self.path, offset, buf)
    }
}

/// The writer behind the default [`FileSystem::read_at`]: drops `skip`
/// bytes, fills `buf`, then stops the stream with an error.
struct RangeWriter<'a> {
    skip: u64,
    buf: &'a mut [u8],
    filled: usize,
}

impl Write for RangeWriter<'_> {
    fn write(&mut self, data: &[u8]) -> std::io::Result<usize> {
        if self.filled == self.buf.len() {
            return Err(std::io::Error::other("range read complete"));
        }
        let drop = self.skip.min(data.len() as u64) as usize;
        self.skip -= drop as u64;
        let take = (data.len() - drop).min(self.buf.len() - self.filled);
        self.buf[self.filled..self.filled + take].copy_from_slice(&data[drop..drop + take]);
        self.filled += take;
        Ok(data.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// Most entries [`FileSystem::list_dir`] returns.
pub const MAX_DIR_ENTRIES: usize = 4096;

/// Split a Windows-style path into its components.
pub fn components(path: &str) -> impl Iterator<Item = &str> {
    path.split(['\\', '/']).filter(|c| !c.is_empty() && *c != ".")
}

/// Identify the file system of a volume from its first sector.
pub fn probe(vol: &dyn Disk) -> Result<FsKind> {
    if vol.len() < 512 {
        return Ok(FsKind::Unknown);
    }
    let mut s = [0u8; 512];
    vol.read_at(0, &mut s)?;
    Ok(match &s[3..11] {
        b"NTFS    " => FsKind::Ntfs,
        b"-FVE-FS-" => FsKind::BitLocker,
        b"EXFAT   " => FsKind::ExFat,
        _ if s[510] == 0x55 && s[511] == 0xAA => {
            if &s[82..87] == b"FAT32" {
                FsKind::Fat32
            } else if &s[54..59] == b"FAT16" {
                FsKind::Fat16
            } else if &s[54..59] == b"FAT12" {
                FsKind::Fat12
            } else {
                FsKind::Unknown
            }
        }
        _ => FsKind::Unknown,
    })
}

/// Mount the file system on `vol` (read-only).
pub fn open(vol: Arc<dyn Disk>, base: u64) -> Result<Box<dyn FileSystem>> {
    match probe(vol.as_ref())? {
        FsKind::Ntfs => Ok(Box::new(ntfs::NtfsFs::open(vol, base)?)),
        FsKind::Fat12 | FsKind::Fat16 | FsKind::Fat32 => Ok(Box::new(fat::FatFs::open(vol, base)?)),
        FsKind::BitLocker => Err(Error::unsupported(
            Layer::Fs,
            base,
            "volume is BitLocker-encrypted (-FVE-FS-); unlock it first (e.g. dislocker) and pass the decrypted volume",
        )),
        FsKind::ExFat => Err(Error::unsupported(Layer::Fs, base, "exFAT volumes are not supported")),
        FsKind::Unknown => Err(Error::unsupported(Layer::Fs, base, "no NTFS or FAT file system recognised")),
    }
}

thread_local! {
    static IN_GUARD: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
}

/// Whether this thread is inside a parser guard, where a panic of a
/// third-party crate becomes an ordinary error: a panic hook should stay quiet.
pub fn in_guard() -> bool {
    IN_GUARD.with(|g| g.get())
}

/// Run `f`, turning a panic inside a third-party parser into an error. Our own
/// code never panics on bad input; this guards the crates we build on, which
/// are fuzzed too but not by us alone.
pub(crate) fn guard<T>(layer: Layer, base: u64, f: impl FnOnce() -> Result<T>) -> Result<T> {
    let outer = IN_GUARD.with(|g| g.replace(true));
    let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(f));
    IN_GUARD.with(|g| g.set(outer));
    match r {
        Ok(r) => r,
        Err(p) => {
            let msg = p
                .downcast_ref::<&str>()
                .map(|s| s.to_string())
                .or_else(|| p.downcast_ref::<String>().cloned())
                .unwrap_or_else(|| "unknown".into());
            Err(Error::corrupt(layer, base, format!("malformed file system structures (parser gave up: {msg})")))
        }
    }
}
