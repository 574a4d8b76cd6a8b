//! Byte sources: what a container reads from.
//!
//! A [`Source`] is a read-only, positional byte store with a length, a display
//! name for messages, an identity (to detect a differencing chain that loops
//! back on itself) and a way to find a differencing disk's parent next to it
//! ([`Source::sibling`]) or, where the kind of source permits it, by an
//! absolute path ([`Source::open_absolute`]). The containers (raw, VHD, VHDX)
//! only ever see `Arc<dyn Source>`.
//!
//! Implementations here: [`FileSource`] (a regular file or a block device) and
//! [`MemSource`] (bytes in memory, for fuzzing and tests, with in-memory
//! siblings via [`MemDir`]). A source that rejects unaligned reads says so with
//! [`Source::alignment`]; [`crate::image::open_source`] then puts an
//! [`AlignedReader`] in front of it, so the containers never have to care.

use crate::error::{Error, Layer, Result};
use std::collections::BTreeMap;
use std::fs::File;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

/// Bytes read from sources by this process (all files and memory sources):
/// lets tests and benchmarks check that only the needed bytes are read.
static BYTES_READ: AtomicU64 = AtomicU64::new(0);

/// Total bytes read from image sources so far by this process.
pub fn bytes_read() -> u64 {
    BYTES_READ.load(Ordering::Relaxed)
}

/// Count `n` bytes read (sources defined in other modules).
#[cfg_attr(not(windows), allow(dead_code))]
pub(crate) fn count_read(n: usize) {
    BYTES_READ.fetch_add(n as u64, Ordering::Relaxed);
}

/// Open `path` as a source: on Windows a disk or volume device name
/// (`\\.\PhysicalDrive2`, `\\.\F:`, see [`super::device::classify`]) opens
/// the device; an `http(s)://` URL opens a [`super::http::HttpSource`];
/// anything else is a file or block device ([`FileSource`]).
pub fn open_path(path: &Path) -> Result<Arc<dyn Source>> {
    // An http(s):// URL: a remote image read with range requests.
    if let Some(url) = path.to_str().filter(|s| super::http::is_url(s)) {
        return super::http::HttpSource::open_arc(url);
    }
    #[cfg(windows)]
    if let Some(dev) = path.to_str().and_then(super::device::classify) {
        return Ok(Arc::new(super::device::WinDevice::open(path, &dev)?));
    }
    FileSource::open_arc(path)
}

/// What makes two sources the same bytes (the same file reached by two paths
/// or a hard link, the same in-memory file): used to detect loops in a
/// differencing chain.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct SourceId(pub String);

/// A read-only byte store a container is read from.
pub trait Source: Send + Sync {
    /// Fill `buf` with the bytes at `offset`. Callers stay inside [`Source::len`]
    /// and, when [`Source::alignment`] is above 1, use aligned offsets and
    /// lengths (the [`AlignedReader`] does that for them).
    fn read_at(&self, offset: u64, buf: &mut [u8]) -> io::Result<()>;
    /// Length in bytes.
    fn len(&self) -> u64;
    fn is_empty(&self) -> bool {
        self.len() == 0
    }
    /// Logical sector size of the device (512 for files).
    fn sector_size(&self) -> u32 {
        512
    }
    /// Reads must start and end on multiples of this (1: any read works).
    fn alignment(&self) -> u32 {
        1
    }
    /// Name for messages (a path; for a URL, without its query string).
    fn name(&self) -> String;
    /// The path reported in [`crate::image::ContainerInfo`] (the name, unless
    /// the source is a file).
    fn path(&self) -> PathBuf {
        PathBuf::from(self.name())
    }
    /// Identity for loop detection.
    fn identity(&self) -> SourceId;
    /// Open a source by a name relative to this one's directory (`/`
    /// separators, `..` allowed): how a differencing disk finds its parent.
    fn sibling(&self, name: &str) -> Result<Arc<dyn Source>>;
    /// How [`Source::sibling`] would name `name` in a message.
    fn sibling_name(&self, name: &str) -> String {
        name.to_string()
    }
    /// Open a source by an absolute path, where this kind of source permits it
    /// (a file does; a remote or in-memory source does not).
    fn open_absolute(&self, path: &Path) -> Result<Arc<dyn Source>> {
        Err(Error::Open {
            layer: Layer::Raw,
            path: path.to_path_buf(),
            source: io::Error::new(io::ErrorKind::Unsupported, format!("an absolute path cannot be opened from {}", self.name())),
        })
    }
}

impl dyn Source + '_ {
    /// Read exactly `buf.len()` bytes at `offset`; a read past the end is
    /// reported as truncation by `layer`, an I/O error names `layer` and the
    /// source.
    pub fn read(&self, layer: Layer, offset: u64, buf: &mut [u8]) -> Result<()> {
        let len = self.len();
        if offset.checked_add(buf.len() as u64).is_none_or(|e| e > len) {
            return Err(Error::corrupt(
                layer,
                offset,
                format!("read of {} bytes past end of file {} ({len} bytes): file truncated?", buf.len(), self.name()),
            ));
        }
        if buf.is_empty() {
            return Ok(());
        }
        // A disk that went away, or one not readable without privileges, says so.
        self.read_at(offset, buf).map_err(|source| Error::Io { layer, offset, path: self.name(), source: super::device::explain(source) })
    }

    /// Read `len` bytes at `offset` into a new vector (callers bound `len`;
    /// it is checked against the source's length before allocating).
    pub fn read_vec(&self, layer: Layer, offset: u64, len: u64) -> Result<Vec<u8>> {
        if offset.checked_add(len).is_none_or(|e| e > self.len()) {
            return Err(Error::corrupt(
                layer,
                offset,
                format!("read of {len} bytes past end of file {} ({} bytes): file truncated?", self.name(), self.len()),
            ));
        }
        let mut v = vec![0u8; len as usize];
        self.read(layer, offset, &mut v)?;
        Ok(v)
    }
}

fn not_found(path: PathBuf, what: &str) -> Error {
    Error::Open { layer: Layer::Raw, path, source: io::Error::new(io::ErrorKind::NotFound, what.to_string()) }
}

/// Whether `e` says only that there is nothing by that name.
pub(crate) fn is_not_found(e: &Error) -> bool {
    matches!(e, Error::Open { source, .. } if source.kind() == io::ErrorKind::NotFound)
}

// ---------------------------------------------------------------- files

/// A regular file or block device opened read-only. Reads are positional
/// (`pread`), so one `FileSource` can be shared between threads.
pub struct FileSource {
    file: File,
    path: PathBuf,
    len: u64,
    id: SourceId,
    sector: u32,
}

impl FileSource {
    /// Open read-only (never for writing: the input is sacred). Anything but
    /// a regular file or a block device (a FIFO, a socket, a character
    /// device, a directory) is refused **before** it is opened: opening a
    /// FIFO for reading blocks until a writer appears, and reading one never
    /// ends.
    pub fn open(path: &Path) -> Result<Self> {
        let open_err = |source| Error::Open { layer: Layer::Raw, path: path.to_path_buf(), source };
        let meta = std::fs::metadata(path).map_err(|e| open_err(super::device::explain_missing(path, e)))?;
        check_kind(path, &meta.file_type())?;
        // A device the user may not open: say how to get access.
        let file = open_read_only(path).map_err(|e| open_err(if is_block_device(&meta.file_type()) { super::device::explain(e) } else { e }))?;
        // The path may have been replaced between the check and the open.
        let meta = file.metadata().map_err(open_err)?;
        check_kind(path, &meta.file_type())?;
        let io_err = |source| Error::Io { layer: Layer::Raw, offset: 0, path: path.display().to_string(), source };
        // Block devices report 0 in metadata; seeking to the end works for both.
        let len = if meta.is_file() { meta.len() } else { device_len(&file).map_err(io_err)? };
        let id = file_identity(path, &meta);
        let sector = device_sector_size(&file, &meta).unwrap_or(512);
        Ok(FileSource { file, path: path.to_path_buf(), len, id, sector })
    }

    /// Open `path` as an `Arc<dyn Source>`.
    pub fn open_arc(path: &Path) -> Result<Arc<dyn Source>> {
        Ok(Arc::new(Self::open(path)?))
    }

    pub fn file_path(&self) -> &Path {
        &self.path
    }

    fn dir(&self) -> &Path {
        self.path.parent().unwrap_or(Path::new(""))
    }
}

/// The error for a path that is neither a regular file nor a block device.
fn check_kind(path: &Path, ft: &std::fs::FileType) -> Result<()> {
    if ft.is_file() || is_block_device(ft) {
        return Ok(());
    }
    let what = if ft.is_dir() { "a directory" } else { special_kind(ft) };
    Err(Error::Usage(format!("{}: {} is {what}, not a disk image or block device", Layer::Raw, path.display())))
}

#[cfg(unix)]
fn is_block_device(ft: &std::fs::FileType) -> bool {
    use std::os::unix::fs::FileTypeExt;
    ft.is_block_device()
}

#[cfg(not(unix))]
fn is_block_device(_: &std::fs::FileType) -> bool {
    false
}

#[cfg(unix)]
fn special_kind(ft: &std::fs::FileType) -> &'static str {
    use std::os::unix::fs::FileTypeExt;
    if ft.is_fifo() {
        "a FIFO"
    } else if ft.is_socket() {
        "a socket"
    } else if ft.is_char_device() {
        "a character device"
    } else {
        "a special file"
    }
}

#[cfg(not(unix))]
fn special_kind(_: &std::fs::FileType) -> &'static str {
    "a special file"
}

/// Open read-only; on Unix with `O_NONBLOCK`, so that a path swapped for a
/// FIFO after the type check cannot block the open (the type is checked again
/// on the open file). `O_NONBLOCK` does not change reads of regular files and
/// block devices.
#[cfg(unix)]
fn open_read_only(path: &Path) -> io::Result<File> {
    use std::os::unix::fs::OpenOptionsExt;
    std::fs::OpenOptions::new().read(true).custom_flags(libc::O_NONBLOCK).open(path)
}

#[cfg(not(unix))]
fn open_read_only(path: &Path) -> io::Result<File> {
    File::open(path)
}

fn device_len(file: &File) -> io::Result<u64> {
    use std::io::{Seek, SeekFrom};
    let mut f = file;
    let len = f.seek(SeekFrom::End(0))?;
    f.seek(SeekFrom::Start(0))?;
    Ok(len)
}

#[cfg(unix)]
fn file_identity(_: &Path, meta: &std::fs::Metadata) -> SourceId {
    use std::os::unix::fs::MetadataExt;
    SourceId(format!("file:{}:{}", meta.dev(), meta.ino()))
}

#[cfg(not(unix))]
fn file_identity(path: &Path, _: &std::fs::Metadata) -> SourceId {
    let canon = path.canonicalize().unwrap_or_else(|_| path.to_path_buf());
    SourceId(format!("file:{}", canon.display()))
}

/// The logical sector size of a block device (Linux: `BLKSSZGET`, else
/// sysfs), so that a 4Kn disk's partition table is read in 4 KiB sectors;
/// `None` for files and elsewhere.
#[cfg(target_os = "linux")]
fn device_sector_size(file: &File, meta: &std::fs::Metadata) -> Option<u32> {
    use std::os::unix::fs::MetadataExt;
    if !is_block_device(&meta.file_type()) {
        return None;
    }
    let valid = |s: &u32| s.is_power_of_two() && (512..=65536).contains(s);
    if let Some(s) = rustix::fs::ioctl_blksszget(file).ok().filter(valid) {
        return Some(s);
    }
    let dev = meta.rdev();
    let major = ((dev >> 8) & 0xfff) | ((dev >> 32) & !0xfff);
    let minor = (dev & 0xff) | ((dev >> 12) & !0xff);
    let base = PathBuf::from(format!("/sys/dev/block/{major}:{minor}"));
    // A partition has no queue/ of its own: its disk's is one level up.
    [base.join("queue/logical_block_size"), base.join("../queue/logical_block_size")]
        .iter()
        .find_map(|p| std::fs::read_to_string(p).ok()?.trim().parse::<u32>().ok())
        .filter(|s| s.is_power_of_two() && (512..=65536).contains(s))
}

#[cfg(not(target_os = "linux"))]
fn device_sector_size(_: &File, _: &std::fs::Metadata) -> Option<u32> {
    None
}

#[cfg(unix)]
fn pread_exact(f: &File, offset: u64, buf: &mut [u8]) -> io::Result<()> {
    use std::os::unix::fs::FileExt;
    f.read_exact_at(buf, offset)
}

#[cfg(windows)]
fn pread_exact(f: &File, mut offset: u64, mut buf: &mut [u8]) -> io::Result<()> {
    use std::os::windows::fs::FileExt;
    while !buf.is_empty() {
        let n = f.seek_read(buf, offset)?;
        if n == 0 {
            return Err(io::ErrorKind::UnexpectedEof.into());
        }
        offset += n as u64;
        buf = &mut buf[n..];
    }
    Ok(())
}

impl Source for FileSource {
    fn read_at(&self, offset: u64, buf: &mut [u8]) -> io::Result<()> {
        BYTES_READ.fetch_add(buf.len() as u64, Ordering::Relaxed);
        pread_exact(&self.file, offset, buf)
    }
    fn len(&self) -> u64 {
        self.len
    }
    fn sector_size(&self) -> u32 {
        self.sector
    }
    fn name(&self) -> String {
        self.path.display().to_string()
    }
    fn path(&self) -> PathBuf {
        self.path.clone()
    }
    fn identity(&self) -> SourceId {
        self.id.clone()
    }
    fn sibling(&self, name: &str) -> Result<Arc<dyn Source>> {
        let rel = Path::new(name);
        if name.is_empty() || rel.has_root() || rel.is_absolute() {
            return Err(not_found(rel.to_path_buf(), "not a relative name"));
        }
        Self::open_arc(&self.dir().join(rel))
    }
    fn sibling_name(&self, name: &str) -> String {
        self.dir().join(name).display().to_string()
    }
    fn open_absolute(&self, path: &Path) -> Result<Arc<dyn Source>> {
        Self::open_arc(path)
    }
}

// ---------------------------------------------------------------- memory

static NEXT_MEM_DIR: AtomicU64 = AtomicU64::new(1);

/// A directory of in-memory files: lets differencing chains live in memory
/// (a child finds its parent with [`Source::sibling`]).
#[derive(Clone)]
pub struct MemDir {
    id: u64,
    files: Arc<Mutex<BTreeMap<String, Arc<Vec<u8>>>>>,
    sector: u32,
}

impl Default for MemDir {
    fn default() -> Self {
        MemDir { id: NEXT_MEM_DIR.fetch_add(1, Ordering::Relaxed), files: Arc::default(), sector: 512 }
    }
}

impl MemDir {
    pub fn new() -> Self {
        Self::default()
    }

    /// The logical sector size the files of this directory report.
    pub fn with_sector_size(mut self, sector: u32) -> Self {
        self.sector = sector;
        self
    }

    /// Add (or replace) a file; `name` may contain `/`.
    pub fn insert(&self, name: &str, bytes: Vec<u8>) {
        if let Some(n) = normalize(name) {
            self.files.lock().unwrap_or_else(|p| p.into_inner()).insert(n, Arc::new(bytes));
        }
    }

    /// Open a file of this directory.
    pub fn open(&self, name: &str) -> Result<MemSource> {
        let norm = normalize(name).ok_or_else(|| not_found(PathBuf::from(name), "not in this memory directory"))?;
        let data = self.files.lock().unwrap_or_else(|p| p.into_inner()).get(&norm).cloned();
        let data = data.ok_or_else(|| not_found(PathBuf::from(name), "not in this memory directory"))?;
        Ok(MemSource { dir: self.clone(), name: norm, data })
    }
}

/// `a/./b/../c` as `a/c`; `None` when it climbs above the root.
fn normalize(name: &str) -> Option<String> {
    let mut parts: Vec<&str> = Vec::new();
    for c in name.split('/') {
        match c {
            "" | "." => {}
            ".." => {
                parts.pop()?;
            }
            c => parts.push(c),
        }
    }
    (!parts.is_empty()).then(|| parts.join("/"))
}

/// Bytes in memory as a source (fuzzing, tests).
pub struct MemSource {
    dir: MemDir,
    name: String,
    data: Arc<Vec<u8>>,
}

impl MemSource {
    /// A lone in-memory file called `name` (its siblings are never found).
    pub fn new(name: &str, bytes: Vec<u8>) -> Self {
        let dir = MemDir::new();
        let name = normalize(name).unwrap_or_else(|| "mem".into());
        MemSource { data: Arc::new(bytes), name, dir }
    }

    /// [`MemSource::new`] as an `Arc<dyn Source>`.
    pub fn arc(name: &str, bytes: Vec<u8>) -> Arc<dyn Source> {
        Arc::new(Self::new(name, bytes))
    }
}

impl Source for MemSource {
    fn read_at(&self, offset: u64, buf: &mut [u8]) -> io::Result<()> {
        let range = usize::try_from(offset)
            .ok()
            .and_then(|o| Some(o..o.checked_add(buf.len())?))
            .filter(|r| r.end <= self.data.len())
            .ok_or_else(|| io::Error::from(io::ErrorKind::UnexpectedEof))?;
        BYTES_READ.fetch_add(buf.len() as u64, Ordering::Relaxed);
        buf.copy_from_slice(&self.data[range]);
        Ok(())
    }
    fn len(&self) -> u64 {
        self.data.len() as u64
    }
    fn sector_size(&self) -> u32 {
        self.dir.sector
    }
    fn name(&self) -> String {
        self.name.clone()
    }
    fn identity(&self) -> SourceId {
        SourceId(format!("mem:{}:{}", self.dir.id, self.name))
    }
    fn sibling(&self, name: &str) -> Result<Arc<dyn Source>> {
        Ok(Arc::new(self.dir.open(&self.sibling_name(name))?))
    }
    fn sibling_name(&self, name: &str) -> String {
        match self.name.rsplit_once('/') {
            Some((dir, _)) => format!("{dir}/{name}"),
            None => name.to_string(),
        }
    }
}

// ---------------------------------------------------------------- alignment

/// Largest bounce buffer an [`AlignedReader`] uses (rounded up to the alignment).
pub const MAX_BOUNCE: usize = 1 << 20;

/// Turns any read into reads at aligned offsets and lengths, through a bounce
/// buffer of at most [`MAX_BOUNCE`] bytes (plus one alignment unit): for
/// devices that reject unaligned reads. Aligned reads go straight through.
pub struct AlignedReader {
    inner: Arc<dyn Source>,
    align: u64,
}

impl AlignedReader {
    /// Wrap `inner`, aligning to its [`Source::alignment`].
    pub fn new(inner: Arc<dyn Source>) -> Self {
        let align = u64::from(inner.alignment().max(1));
        AlignedReader { inner, align }
    }
}

impl Source for AlignedReader {
    fn read_at(&self, offset: u64, buf: &mut [u8]) -> io::Result<()> {
        let a = self.align;
        let len = buf.len() as u64;
        if (offset % a == 0 && len % a == 0) || buf.is_empty() {
            return self.inner.read_at(offset, buf);
        }
        let end = offset.checked_add(len).ok_or_else(|| io::Error::from(io::ErrorKind::InvalidInput))?;
        // The last unit may be cut short by the end of the source (and
        // nothing below can overflow when rounding up).
        let limit = self.inner.len();
        if end > limit {
            return Err(io::ErrorKind::UnexpectedEof.into());
        }
        let chunk = (MAX_BOUNCE as u64).div_ceil(a) * a;
        let size = chunk.min(end.div_ceil(a) * a - offset / a * a) as usize;
        // One unit more than needed, so that the bounce buffer can start at
        // an aligned address too (devices are opened without
        // FILE_FLAG_NO_BUFFERING, which would demand it; this costs nothing).
        let mut storage = vec![0u8; size + a as usize];
        let skip = storage.as_ptr().align_offset(a as usize).min(a as usize);
        let bounce = &mut storage[skip..skip + size];
        let mut pos = offset / a * a;
        while pos < end {
            let n = chunk.min(end.div_ceil(a) * a - pos).min(limit.saturating_sub(pos));
            if n == 0 {
                return Err(io::ErrorKind::UnexpectedEof.into());
            }
            let piece = &mut bounce[..n as usize];
            self.inner.read_at(pos, piece)?;
            let from = pos.max(offset);
            let to = (pos + n).min(end);
            buf[(from - offset) as usize..(to - offset) as usize].copy_from_slice(&piece[(from - pos) as usize..(to - pos) as usize]);
            pos += n;
        }
        Ok(())
    }
    fn len(&self) -> u64 {
        self.inner.len()
    }
    fn sector_size(&self) -> u32 {
        self.inner.sector_size()
    }
    fn alignment(&self) -> u32 {
        1
    }
    fn name(&self) -> String {
        self.inner.name()
    }
    fn path(&self) -> PathBuf {
        self.inner.path()
    }
    fn identity(&self) -> SourceId {
        self.inner.identity()
    }
    fn sibling(&self, name: &str) -> Result<Arc<dyn Source>> {
        self.inner.sibling(name)
    }
    fn sibling_name(&self, name: &str) -> String {
        self.inner.sibling_name(name)
    }
    fn open_absolute(&self, path: &Path) -> Result<Arc<dyn Source>> {
        self.inner.open_absolute(path)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn normalize_names() {
        assert_eq!(normalize("a/./b/../c").as_deref(), Some("a/c"));
        assert_eq!(normalize("../x"), None);
        assert_eq!(normalize("x//y/").as_deref(), Some("x/y"));
    }

    #[test]
    fn mem_siblings() {
        let d = MemDir::new();
        d.insert("vm/child.vhd", vec![1]);
        d.insert("base/parent.vhd", vec![2, 3]);
        let c: Arc<dyn Source> = Arc::new(d.open("vm/child.vhd").unwrap());
        let p = c.sibling("../base/parent.vhd").unwrap();
        assert_eq!(p.len(), 2);
        assert_eq!(p.name(), "base/parent.vhd");
        assert!(is_not_found(&c.sibling("nothing.vhd").err().unwrap()));
        assert!(c.open_absolute(Path::new("/etc/passwd")).is_err());
        assert_ne!(c.identity(), p.identity());
        assert_eq!(p.identity(), c.sibling("../base/./parent.vhd").unwrap().identity());
    }
}
