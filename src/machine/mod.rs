//! Layer 5: one opened machine. A [`Machine`] is what every command starts
//! from: the container opened once, its volumes surveyed once, each file
//! system mounted at most once, and the machine hives (SYSTEM, SOFTWARE, SAM,
//! SECURITY, BCD) loaded lazily, each at most once, with its recovery report.
//!
//! A machine is a disk image (file or device), a Windows volume the host has
//! mounted (`F:\`, `/mnt/x`: a directory holding `Windows\System32\config`),
//! a directory of hive files (forensic copies of `config\`), or one hive file. The layers below know
//! nothing of this one; the checks (`rdp`) and the repair planner read hives
//! through it, and the repair planner asks it where each hive file lives.

mod hostdir;
mod keys;

pub use hostdir::HostDir;
pub use keys::KeyTarget;

use crate::error::{Error, Layer, Result};
use crate::fs::FileSystem;
use crate::hive::source::guess_kind;
use crate::hive::tree::Hive;
use crate::hive::{self, HiveKind};
use crate::image::{self, Image};
use crate::locate::{self, DiskReport};
use std::cell::OnceCell;
use std::rc::Rc;
use std::path::{Path, PathBuf};

/// Largest hive (or log) file we read: Windows refuses hives above 2 GiB.
pub const MAX_HIVE_FILE: u64 = 2 << 30;

/// What kind of thing was opened.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Origin {
    /// A disk image or block device.
    Image,
    /// A directory holding hive files (SYSTEM, SOFTWARE, ... with their logs).
    Directory,
    /// A Windows volume mounted by the host (`F:\`, `/mnt/x`): the hives are
    /// its `Windows\System32\config` files, other files are read through
    /// the host. The BCD store is on another volume, out of reach.
    MountedVolume,
    /// A single hive file.
    HiveFile,
}

impl Origin {
    /// The `kind` the inspect report shows.
    pub fn name(self) -> &'static str {
        match self {
            Origin::Image => "image",
            Origin::Directory => "directory",
            Origin::MountedVolume => "mounted-volume",
            Origin::HiveFile => "hive-file",
        }
    }
}

/// Where a machine hive lives.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HiveLocation {
    /// A file on a volume of the image: partition index and path.
    Volume { partition: u32, path: String },
    /// A plain file on the local file system.
    File(PathBuf),
}

impl std::fmt::Display for HiveLocation {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            HiveLocation::Volume { partition, path } => write!(f, "partition {partition}: {path}"),
            HiveLocation::File(p) => write!(f, "{}", p.display()),
        }
    }
}

/// A mounted volume, kept for the life of the machine.
struct Mount {
    partition: u32,
    /// Shared with the hives read from it (their pages are read on demand).
    fs: OnceCell<std::result::Result<Rc<dyn FileSystem>, Error>>,
}

enum Inner {
    Image { image: Image, survey: DiskReport, mounts: Vec<Mount> },
    /// Hive files by kind (directory or single file). `other` is a single
    /// hive file of a kind rdprescue does not know (NTUSER.DAT, ...).
    Files { files: Vec<(HiveKind, PathBuf)>, other: Option<PathBuf> },
    /// A mounted Windows volume: its hive files by kind, and the volume.
    Mounted { volume: HostDir, files: Vec<(HiveKind, PathBuf)> },
}

/// Where the Windows hives are on a Windows volume.
pub const CONFIG_DIR: &str = r"Windows\System32\config";

/// Why the BCD store cannot be read through a mounted Windows volume.
pub const BCD_UNREACHABLE: &str = "BCD store (not reachable through a mounted volume: it is on the EFI system partition or the System Reserved volume, which have no drive letter; give the whole disk instead, e.g. \\\\.\\PhysicalDrive2 on Windows or /dev/sdc on Linux, with the disk offline or unmounted)";

/// One opened machine: see the module documentation.
pub struct Machine {
    path: PathBuf,
    origin: Origin,
    inner: Inner,
    hives: [OnceCell<std::result::Result<Hive, Error>>; 5],
    other: OnceCell<std::result::Result<Hive, Error>>,
}

fn slot(kind: HiveKind) -> usize {
    HiveKind::ALL.iter().position(|k| *k == kind).unwrap_or(0)
}

impl Machine {
    /// Open `path`: a directory of hive files, a hive file, or else an image
    /// (raw, VHD, VHDX, block device), read-only.
    pub fn open(path: &Path) -> Result<Machine> {
        // An http(s):// URL is a remote image; the machine is named by the
        // URL without its query string (a SAS token is a secret).
        if path.to_str().is_some_and(image::http::is_url) {
            return Machine::open_image(path);
        }
        // A Windows disk or volume (`\\.\PhysicalDrive2`) is an image; it has no metadata to ask.
        if cfg!(windows) && path.to_str().is_some_and(image::device::is_windows_device_path) {
            return Machine::open_image(path);
        }
        let meta = std::fs::metadata(path).map_err(|e| Error::Open { layer: Layer::Raw, path: path.to_path_buf(), source: image::device::explain_missing(path, e) })?;
        if meta.is_dir() {
            if let Some(config) = windows_config(path) {
                return Ok(Machine::open_mounted(path, &config));
            }
            return Machine::open_dir(path);
        }
        if is_hive_file(path) {
            return Machine::open_hive_file(path);
        }
        Machine::from_image(path, image::open(path)?)
    }

    /// Open `path` as a disk image or device, whatever its first bytes.
    pub fn open_image(path: &Path) -> Result<Machine> {
        if path.to_str().is_some_and(image::http::is_url) {
            let image = image::open(path)?;
            let shown = image.info.path.clone();
            return Machine::from_image(&shown, image);
        }
        Machine::from_image(path, image::open(path)?)
    }

    /// A machine over an already opened image; surveys it once.
    pub fn from_image(path: &Path, image: Image) -> Result<Machine> {
        let (survey, mut mounted) = locate::survey_mounted(&image)?;
        let mounts = survey
            .partition_table
            .partitions
            .iter()
            .map(|p| {
                let fs = OnceCell::new();
                if let Some(i) = mounted.iter().position(|(ix, _)| *ix == p.index) {
                    let _ = fs.set(Ok(Rc::from(mounted.swap_remove(i).1)));
                }
                Mount { partition: p.index, fs }
            })
            .collect();
        Ok(Machine::new(path, Origin::Image, Inner::Image { image, survey, mounts }))
    }

    fn new(path: &Path, origin: Origin, inner: Inner) -> Machine {
        Machine { path: path.to_path_buf(), origin, inner, hives: Default::default(), other: OnceCell::new() }
    }

    /// A directory of hive files: each regf file (not a .LOG*) whose name or
    /// content says which machine hive it is; the first of each kind wins.
    fn open_dir(dir: &Path) -> Result<Machine> {
        let rd = std::fs::read_dir(dir).map_err(|source| Error::Open { layer: Layer::Hive, path: dir.to_path_buf(), source })?;
        let mut paths: Vec<PathBuf> = rd
            .flatten()
            .map(|e| e.path())
            .filter(|p| p.is_file() && !p.extension().is_some_and(|e| e.to_string_lossy().to_uppercase().starts_with("LOG")) && !is_ours(p) && is_hive_file(p))
            .collect();
        paths.sort();
        let m = Machine::new(dir, Origin::Directory, Inner::Files { files: Vec::new(), other: None });
        let mut files: Vec<(HiveKind, PathBuf)> = Vec::new();
        for p in paths {
            let by_name = p.file_name().and_then(|n| HiveKind::from_name(&n.to_string_lossy()));
            let (kind, loaded) = match by_name {
                Some(k) => (Some(k), None),
                None => {
                    // Only the content can tell: load it now and keep it.
                    let h = load_file(&p)?;
                    (guess_kind("", &h), Some(h))
                }
            };
            let Some(kind) = kind else { continue };
            if files.iter().any(|(k, _)| *k == kind) {
                continue;
            }
            if let Some(h) = loaded {
                let _ = m.hives[slot(kind)].set(Ok(h));
            }
            files.push((kind, p));
        }
        Ok(Machine { inner: Inner::Files { files, other: None }, ..m })
    }

    /// A mounted Windows volume at `root` whose hive directory is `config`:
    /// the machine hives by their file names (any case), and `\Boot\BCD`
    /// when the Windows volume holds it (Gen1 without System Reserved).
    fn open_mounted(root: &Path, config: &Path) -> Machine {
        let volume = HostDir::new(root);
        let mut files: Vec<(HiveKind, PathBuf)> = Vec::new();
        let mut names: Vec<PathBuf> = std::fs::read_dir(config).map(|rd| rd.flatten().map(|e| e.path()).collect()).unwrap_or_default();
        // An exact (upper-case) name before another spelling of it.
        names.sort();
        for p in names {
            let Some(kind) = p.file_name().and_then(|n| HiveKind::from_name(&n.to_string_lossy())).filter(|k| *k != HiveKind::Bcd) else { continue };
            if p.is_file() && !files.iter().any(|(k, _)| *k == kind) {
                files.push((kind, p));
            }
        }
        if let Ok(bcd) = volume.resolve(locate::BCD_BIOS) {
            if bcd.is_file() {
                files.push((HiveKind::Bcd, bcd));
            }
        }
        files.sort_by_key(|(k, _)| slot(*k));
        Machine::new(root, Origin::MountedVolume, Inner::Mounted { volume, files })
    }

    /// A hive-directory machine over the given hive files (each with its own
    /// logs beside it), as if they were one directory: how a repair written
    /// to a new directory is read back together with the hives it left alone.
    pub fn from_hive_files(path: &Path, files: Vec<(HiveKind, PathBuf)>) -> Machine {
        Machine::new(path, Origin::Directory, Inner::Files { files, other: None })
    }

    /// The machine hive files of a directory or mounted-volume machine, by kind.
    pub fn hive_files(&self) -> &[(HiveKind, PathBuf)] {
        match &self.inner {
            Inner::Files { files, .. } | Inner::Mounted { files, .. } => files,
            Inner::Image { .. } => &[],
        }
    }

    /// The mounted volume (mounted-volume machines only).
    pub fn host_volume(&self) -> Option<&HostDir> {
        match &self.inner {
            Inner::Mounted { volume, .. } => Some(volume),
            _ => None,
        }
    }

    /// One hive file: its kind from its name, else from its content.
    fn open_hive_file(path: &Path) -> Result<Machine> {
        let m = Machine::new(path, Origin::HiveFile, Inner::Files { files: Vec::new(), other: None });
        let name = path.file_name().map(|n| n.to_string_lossy().to_string()).unwrap_or_default();
        let (kind, h) = match HiveKind::from_name(&name) {
            Some(k) => (Some(k), None),
            None => {
                let h = load_file(path)?;
                (guess_kind("", &h), Some(h))
            }
        };
        let inner = match kind {
            Some(k) => {
                if let Some(h) = h {
                    let _ = m.hives[slot(k)].set(Ok(h));
                }
                Inner::Files { files: vec![(k, path.to_path_buf())], other: None }
            }
            None => {
                if let Some(h) = h {
                    let _ = m.other.set(Ok(h));
                }
                Inner::Files { files: Vec::new(), other: Some(path.to_path_buf()) }
            }
        };
        Ok(Machine { inner, ..m })
    }

    /// The path given to [`Machine::open`].
    pub fn path(&self) -> &Path {
        &self.path
    }

    pub fn origin(&self) -> Origin {
        self.origin
    }

    /// The opened image (image machines only).
    pub fn image(&self) -> Option<&Image> {
        match &self.inner {
            Inner::Image { image, .. } => Some(image),
            Inner::Files { .. } | Inner::Mounted { .. } => None,
        }
    }

    /// The survey of the image (image machines only).
    pub fn survey(&self) -> Option<&DiskReport> {
        match &self.inner {
            Inner::Image { survey, .. } => Some(survey),
            Inner::Files { .. } | Inner::Mounted { .. } => None,
        }
    }

    fn not_an_image(&self, what: &str) -> Error {
        Error::Usage(format!("{what} needs a disk image or device; {} is a {}", self.path.display(), self.origin.name()))
    }

    /// The file system of partition `index`, mounted once.
    pub fn mount(&self, index: u32) -> Result<&dyn FileSystem> {
        self.mount_shared(index).map(|fs| &**fs)
    }

    /// [`Machine::mount`], as the shared handle a paged hive keeps.
    fn mount_shared(&self, index: u32) -> Result<&Rc<dyn FileSystem>> {
        let Inner::Image { image, survey, mounts } = &self.inner else { return Err(self.not_an_image("reading a volume")) };
        let m = mounts.iter().find(|m| m.partition == index).ok_or_else(|| Error::Usage(format!("no partition {index} (partitions: {})", list(survey))))?;
        let fs = m.fs.get_or_init(|| {
            let p = survey.partition_table.partitions.iter().find(|p| p.index == index).ok_or_else(|| Error::Usage(format!("no partition {index}")))?;
            locate::mount(image, p).map(Rc::from)
        });
        match fs {
            Ok(fs) => Ok(fs),
            Err(e) => Err(e.duplicate()),
        }
    }

    /// The partition whose file system holds `path`: partition `index` if
    /// given, else the first Windows volume holding it, else any readable
    /// volume holding it (for `cat`). A mounted volume is partition 0.
    pub fn find_file(&self, index: Option<u32>, path: &str) -> Result<(u32, &dyn FileSystem)> {
        if let Inner::Mounted { volume, .. } = &self.inner {
            if index.is_some_and(|i| i != 0) {
                return Err(Error::Usage(format!("{} is a mounted volume: it has no partitions (leave out the partition number)", self.path.display())));
            }
            volume.stat(path)?;
            return Ok((0, volume));
        }
        let Some(survey) = self.survey() else { return Err(self.not_an_image("reading a file")) };
        if let Some(i) = index {
            return Ok((i, self.mount(i)?));
        }
        let mut first_err = None;
        let mut found: Option<(bool, u32, &dyn FileSystem)> = None;
        for p in &survey.partition_table.partitions {
            if matches!(p.role, crate::volume::Role::Msr | crate::volume::Role::Other) {
                continue;
            }
            match self.mount(p.index) {
                Ok(fs) if fs.exists(path) => {
                    let win = survey.windows_volumes.contains(&p.index);
                    if found.as_ref().is_none_or(|(w, _, _)| win && !*w) {
                        found = Some((win, p.index, fs));
                    }
                }
                Ok(_) => {}
                Err(e) => {
                    first_err.get_or_insert(e);
                }
            }
        }
        match found {
            Some((_, i, fs)) => Ok((i, fs)),
            None => Err(match first_err {
                Some(e) if survey.partition_table.partitions.len() == 1 => e,
                _ => Error::NotFound { layer: Layer::Fs, path: format!("{path} (on no readable volume; partitions: {})", list(survey)) },
            }),
        }
    }

    /// Where machine hive `kind` lives, or why it cannot be found.
    pub fn hive_location(&self, kind: HiveKind) -> Result<HiveLocation> {
        match &self.inner {
            Inner::Image { survey, .. } => {
                let (partition, path) = match kind {
                    HiveKind::Bcd => survey.bcd.as_ref().map(|b| (b.partition, b.path.to_string())).ok_or_else(|| Error::NotFound {
                        layer: Layer::Hive,
                        path: "BCD store (no \\Boot\\BCD or \\EFI\\Microsoft\\Boot\\BCD on any volume)".into(),
                    })?,
                    k => survey
                        .windows_volumes
                        .first()
                        .map(|&w| (w, k.config_path().unwrap_or_default()))
                        .ok_or_else(|| survey.no_windows_volume(&format!("{} hive", k.name())))?,
                };
                Ok(HiveLocation::Volume { partition, path })
            }
            Inner::Files { files, .. } => files
                .iter()
                .find(|(k, _)| *k == kind)
                .map(|(_, p)| HiveLocation::File(p.clone()))
                .ok_or_else(|| Error::NotFound { layer: Layer::Hive, path: format!("{} hive (not in {})", kind.short(), self.path.display()) }),
            Inner::Mounted { files, .. } => files.iter().find(|(k, _)| *k == kind).map(|(_, p)| HiveLocation::File(p.clone())).ok_or_else(|| Error::NotFound {
                layer: Layer::Hive,
                path: match kind {
                    HiveKind::Bcd => BCD_UNREACHABLE.to_string(),
                    k => format!("{} hive (not in {})", k.short(), Path::new(&self.path).join(CONFIG_DIR).display()),
                },
            }),
        }
    }

    fn load(&self, kind: HiveKind) -> Result<Hive> {
        match self.hive_location(kind)? {
            HiveLocation::Volume { partition, path } => load_paged(self.mount_shared(partition)?.clone(), &path, kind.name()),
            HiveLocation::File(p) => load_file(&p),
        }
    }

    /// Machine hive `kind`, loaded (and recovered from its logs) on first use.
    pub fn hive_result(&self, kind: HiveKind) -> std::result::Result<&Hive, &Error> {
        self.hives[slot(kind)].get_or_init(|| self.load(kind)).as_ref()
    }

    /// Machine hive `kind`, if present and readable.
    pub fn hive(&self, kind: HiveKind) -> Option<&Hive> {
        self.hive_result(kind).ok()
    }

    /// Machine hive `kind`, or the error that loading it gave.
    pub fn require(&self, kind: HiveKind) -> Result<&Hive> {
        self.hive_result(kind).map_err(Error::duplicate)
    }

    /// The machine hive a single hive file holds (hive-file machines).
    pub fn file_kind(&self) -> Option<HiveKind> {
        match (&self.inner, self.origin) {
            (Inner::Files { files, .. }, Origin::HiveFile) => files.first().map(|(k, _)| *k),
            _ => None,
        }
    }

    /// Drop the machine, handing the loaded hives' buffers to this thread's
    /// pool of whole-file buffers, so the next image read on this thread
    /// (`audit`) reuses mapped memory instead of faulting in fresh pages.
    pub fn recycle(self) {
        for h in self.hives.into_iter().chain([self.other]).filter_map(|c| c.into_inner()?.ok()) {
            h.into_buffers().into_iter().for_each(crate::fs::reader::recycle);
        }
    }

    /// The hive of a single hive file, whatever its kind.
    pub fn file_hive(&self) -> Result<&Hive> {
        if let Some(k) = self.file_kind() {
            return self.require(k);
        }
        match &self.inner {
            Inner::Files { other: Some(p), .. } => self.other.get_or_init(|| load_file(p)).as_ref().map_err(Error::duplicate),
            _ => Err(Error::Usage(format!("{} is not a hive file", self.path.display()))),
        }
    }
}

fn list(survey: &DiskReport) -> String {
    survey.partition_table.partitions.iter().map(|p| p.index.to_string()).collect::<Vec<_>>().join(", ")
}

/// The logs of hive file `path`, each opened by `open` (`None`: no such
/// file): `path.LOG1`, else an XP-style `path.LOG`, as the first; `path.LOG2`.
fn open_logs<T>(path: &str, open: impl Fn(String) -> Result<Option<T>>) -> Result<(Option<T>, Option<T>)> {
    let log1 = match open(format!("{path}.LOG1"))? {
        None => open(format!("{path}.LOG"))?,
        l => l,
    };
    Ok((log1, open(format!("{path}.LOG2"))?))
}

/// Load hive file `path` of a mounted file system with its .LOG1/.LOG2 (or
/// an XP-style .LOG), paged ([`hive::load_paged`]): the hive
/// file is streamed once (read errors as before; its base block and hbin
/// headers kept), then its chunks are read again as cells in them are read;
/// the logs are read as far as their valid entries go, and their dirty pages
/// again when a chunk over them is read. The hive keeps `fs` to read them.
///
/// The logs are looked up first and, where the file system gives handles
/// another thread may read through ([`FileSystem::open_shared`]: NTFS),
/// parsed on a second thread while this one streams the primary (the two
/// are independent; the file system stays on this thread). The outcome and
/// the errors, and their order, are those of doing it all in turn: the
/// primary's stream, then the logs' lookups, then the primary's handle, then
/// recovery ([`hive::load_paged_ahead`]).
pub fn load_paged(fs: Rc<dyn FileSystem>, path: &str, name: &str) -> Result<Hive> {
    let st = fs.stat(path)?;
    if st.is_dir {
        return Err(Error::Usage(format!("{path} is a directory")));
    }
    if st.size > MAX_HIVE_FILE {
        return Err(Error::unsupported(Layer::Fs, 0, format!("{path} is {} bytes, more than the {MAX_HIVE_FILE}-byte limit", st.size)));
    }
    // A log is looked up (missing: none; a directory or a file over the
    // limit: the errors a hive file gives), then read on demand. An error
    // is kept until the primary has streamed: the stream's error comes first.
    let logs = open_logs(path, |p| {
        let st = match fs.stat(&p) {
            Ok(st) => st,
            Err(Error::NotFound { .. }) => return Ok(None),
            Err(e) => return Err(e),
        };
        if st.is_dir {
            return Err(Error::Usage(format!("{p} is a directory")));
        }
        if st.size > MAX_HIVE_FILE {
            return Err(Error::unsupported(Layer::Fs, 0, format!("{p} is {} bytes, more than the {MAX_HIVE_FILE}-byte limit", st.size)));
        }
        let h = match fs.open_shared(&p)? {
            Some(h) => LogHandle::Shared(h),
            None => LogHandle::Local(crate::fs::open_read(&fs, &p)?),
        };
        Ok(Some(LogFile { name: p, h, len: st.size as usize }))
    });
    // The whole file is read once, as before (so an unreadable hive fails
    // to load, as before, instead of reading as missing keys later), but
    // only its base block and hbin headers are kept.
    let scan = || hive::scan_primary(&|w: &mut dyn std::io::Write| fs.read_to(path, w), st.size as usize);
    let (scan, ahead) = match &logs {
        Ok((l1, l2)) => parse_logs_while(l1.as_ref(), l2.as_ref(), st.size as usize, scan),
        Err(_) => (scan(), [None, None]),
    };
    let scan = scan?;
    let (log1, log2) = logs?;
    let file = path.to_string();
    // Read through a handle: no path lookup per chunk (fs::open_read).
    let h = crate::fs::open_read(&fs, &file)?;
    let read = read_at(h);
    let (data, report) = hive::load_paged_ahead(read, scan, log1.map(LogFile::bytes), log2.map(LogFile::bytes), ahead)?;
    Ok(Hive::from_parts(name, data, report))
}

/// A file handle (boxed or shared) as the page store reads it.
fn read_at<H: std::ops::Deref + 'static>(h: H) -> hive::pages::ReadAt
where
    H::Target: crate::fs::FileRead,
{
    Box::new(move |at, buf| crate::fs::FileRead::read_at(&*h, at, buf))
}

/// A log file of a hive being loaded by [`load_paged`], looked up.
struct LogFile {
    name: String,
    h: LogHandle,
    len: usize,
}

enum LogHandle {
    /// A handle another thread may read through.
    Shared(std::sync::Arc<dyn crate::fs::FileRead + Send + Sync>),
    /// One read on the file system's thread only.
    Local(Box<dyn crate::fs::FileRead>),
}

impl LogFile {
    /// The log as the paged hive keeps it (read on demand).
    fn bytes(self) -> hive::pages::LogBytes {
        let read = match self.h {
            LogHandle::Shared(h) => read_at(h),
            LogHandle::Local(h) => read_at(h),
        };
        hive::pages::LogBytes::Read { name: self.name, read, len: self.len }
    }
}

/// Run `scan` (the primary's stream) on this thread while a second thread
/// parses the logs that have shared handles and bytes to parse
/// ([`hive::parse_log_ahead`], for a primary of `primary_len` bytes); a log
/// the second thread has not started on when the stream ends is parsed here
/// (when the other core is busy the thread may not run before then: the
/// work is then done in turn, as without it). The others are left to
/// recovery (`None`), as are all when no thread can be started. Recovery
/// re-parses a log whose parse it cannot use, so what this returns never
/// changes the outcome, only when and where the work is done.
fn parse_logs_while<T>(l1: Option<&LogFile>, l2: Option<&LogFile>, primary_len: usize, scan: impl FnOnce() -> T) -> (T, [Option<hive::ParsedLog>; 2]) {
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::Mutex;
    type Job<'a> = Option<(&'a str, &'a std::sync::Arc<dyn crate::fs::FileRead + Send + Sync>, usize)>;
    fn shared(l: Option<&LogFile>) -> Job<'_> {
        match l {
            Some(LogFile { name, h: LogHandle::Shared(h), len }) if *len > 0 => Some((name.as_str(), h, *len)),
            _ => None,
        }
    }
    let jobs = [shared(l1), shared(l2)];
    if jobs.iter().all(Option::is_none) {
        return (scan(), [None, None]);
    }
    // Each log is claimed once, by whichever thread gets to it first.
    let next = AtomicUsize::new(0);
    let done: [Mutex<Option<hive::ParsedLog>>; 2] = Default::default();
    let work = || loop {
        let i = next.fetch_add(1, Ordering::Relaxed);
        let (Some(job), Some(slot)) = (jobs.get(i), done.get(i)) else { break };
        if let Some((name, h, len)) = *job {
            let read = read_at(h.clone());
            let parsed = hive::parse_log_ahead(hive::pages::LogSrc::Read { name, read: &read, len }, primary_len);
            if let Ok(mut slot) = slot.lock() {
                *slot = Some(parsed);
            }
        }
    };
    let scanned = std::thread::scope(|s| {
        let worker = std::thread::Builder::new().name("hive-logs".into()).spawn_scoped(s, work);
        let scanned = scan();
        work();
        // A thread that could not start, or (never expected) panicked,
        // leaves what it did not finish to recovery on this thread.
        if let Ok(w) = worker {
            let _ = w.join();
        }
        scanned
    });
    (scanned, done.map(|d| d.into_inner().ok().flatten()))
}

/// Load a plain hive file from the local file system, with sibling
/// NAME.LOG1/NAME.LOG2 (any case) when present.
pub fn load_file(path: &Path) -> Result<Hive> {
    let read = |p: &Path| -> Result<Vec<u8>> {
        let meta = std::fs::metadata(p).map_err(|source| Error::Open { layer: Layer::Hive, path: p.to_path_buf(), source })?;
        if meta.len() > MAX_HIVE_FILE {
            return Err(Error::unsupported(Layer::Hive, 0, format!("{} is larger than 2 GiB: not a hive", p.display())));
        }
        std::fs::read(p).map_err(|source| Error::Open { layer: Layer::Hive, path: p.to_path_buf(), source })
    };
    let primary = read(path)?;
    let sibling = |ext: &str| -> Option<PathBuf> {
        let dir = path.parent().filter(|d| !d.as_os_str().is_empty()).unwrap_or(Path::new("."));
        let want = format!("{}.{ext}", path.file_name()?.to_string_lossy()).to_lowercase();
        std::fs::read_dir(dir).ok()?.flatten().map(|e| e.path()).find(|p| p.file_name().is_some_and(|n| n.to_string_lossy().to_lowercase() == want))
    };
    let log = |ext| sibling(ext).map(|p| read(&p)).transpose();
    let log1 = match log("LOG1")? {
        None => log("LOG")?,
        l => l,
    };
    let log2 = log("LOG2")?;
    let name = path.file_name().map_or_else(|| "hive".into(), |n| n.to_string_lossy().to_string());
    Ok(Hive::new(name, hive::load(primary, log1, log2)?))
}

/// The hive directory (`Windows\System32\config`, any case) of a mounted
/// Windows volume at `root`, if `root` is one.
pub fn windows_config(root: &Path) -> Option<PathBuf> {
    HostDir::new_unprobed(root).resolve(CONFIG_DIR).ok().filter(|p| p.is_dir())
}

/// Files rdprescue itself leaves beside hive files: undo copies and
/// temporaries, never hives of the machine.
pub fn is_ours(path: &Path) -> bool {
    path.file_name().is_some_and(|n| {
        let n = n.to_string_lossy().to_lowercase();
        n.ends_with(".rdprescue-undo") || (n.contains(".rdprescue-") && n.ends_with(".tmp"))
    })
}

/// Whether `path` is a plain hive file (a regular file starting with `regf`)
/// rather than an image.
pub fn is_hive_file(path: &Path) -> bool {
    use std::io::Read;
    let mut sig = [0u8; 4];
    std::fs::metadata(path).is_ok_and(|m| m.is_file()) && std::fs::File::open(path).and_then(|mut f| f.read_exact(&mut sig)).is_ok() && &sig == b"regf"
}
