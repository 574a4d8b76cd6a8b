//! NTFS through the `ntfs` crate. Paths are resolved through the directory
//! indexes (B-tree lookups, case-insensitive via the volume's `$UpCase` table),
//! never by scanning the MFT.

use super::{components, guard, DiskReader, FileRead, FileStat, FileSystem, FsKind, FsState};
use crate::bytes::{le_u16, le_u64};
use crate::error::{Error, Layer, Result};
use crate::image::Disk;
use ntfs::indexes::NtfsFileNameIndex;
use ntfs::structured_values::NtfsVolumeFlags;
use ntfs::{Ntfs, NtfsAttributeFlags, NtfsFile};
use std::cell::RefCell;
use std::io::Write;
use std::sync::Arc;

/// MFT record number of `$LogFile`.
const LOGFILE_RECORD: u64 = 2;
/// MFT record number of `$Boot`.
const BOOT_RECORD: u64 = 7;

pub struct NtfsFs {
    inner: RefCell<Inner>,
    state: FsState,
    /// Byte offset of the volume on the disk, for error messages.
    base: u64,
}

struct Inner {
    ntfs: Ntfs,
    r: DiskReader,
}

impl NtfsFs {
    pub fn open(vol: Arc<dyn Disk>, base: u64) -> Result<Self> {
        guard(Layer::Ntfs, base, || Self::open_inner(vol, base))
    }

    fn open_inner(vol: Arc<dyn Disk>, base: u64) -> Result<Self> {
        let mut r = DiskReader::new(vol, Layer::Ntfs, base);
        let mut ntfs = Ntfs::new(&mut r).map_err(|e| conv(&mut r, base, e))?;
        ntfs.read_upcase_table(&mut r).map_err(|e| conv(&mut r, base, e))?;
        let mut state = FsState {
            cluster_size: ntfs.cluster_size(),
            size: ntfs.size(),
            ..FsState::default()
        };
        if let Some(Ok(name)) = ntfs.volume_name(&mut r) {
            state.label = Some(name.name().to_string_lossy());
        }
        let info = ntfs.volume_info(&mut r).map_err(|e| conv(&mut r, base, e))?;
        state.version = Some(format!("{}.{}", info.major_version(), info.minor_version()));
        state.dirty = info.flags().contains(NtfsVolumeFlags::IS_DIRTY);
        let fs = NtfsFs { inner: RefCell::new(Inner { ntfs, r }), state, base };
        let logfile_clean = fs.logfile_clean()?;
        let hibernated = fs.hibernated()?;
        let mut fs = fs;
        fs.state.logfile_clean = Some(logfile_clean);
        fs.state.hibernated = Some(hibernated);
        Ok(fs)
    }

    /// First `n` bytes of the unnamed data stream of MFT record `rec` (or of `path`).
    fn head(&self, target: Target, n: usize) -> Result<Option<Vec<u8>>> {
        let mut inner = self.inner.borrow_mut();
        let Inner { ntfs, r } = &mut *inner;
        r.refuel();
        let base = self.base;
        let file = match target {
            Target::Record(rec) => ntfs.file(r, rec).map_err(|e| conv(r, base, e))?,
            Target::Path(p) => match lookup(ntfs, r, base, p) {
                Ok(f) => f,
                Err(Error::NotFound { .. }) => return Ok(None),
                Err(e) => return Err(e),
            },
        };
        let Some(item) = file.data(r, "") else { return Ok(None) };
        let item = item.map_err(|e| conv(r, base, e))?;
        let attr = item.to_attribute().map_err(|e| conv(r, base, e))?;
        let value = attr.value(r).map_err(|e| conv(r, base, e))?;
        let n = n.min(value.len() as usize);
        let mut buf = vec![0u8; n];
        let res = std::io::Read::read_exact(&mut value.attach(r), &mut buf);
        res.map_err(|e| io_conv(r, base, e))?;
        Ok(Some(buf))
    }

    /// Is `$LogFile` clean (nothing for Windows to redo/undo at mount)? Rules of
    /// ntfs-3g's `ntfs_is_logfile_clean`: an empty (all 0xFF) log is clean; else
    /// the restart area with the higher LSN must have no client in use or the
    /// "volume is clean" flag.
    fn logfile_clean(&self) -> Result<bool> {
        let Some(head) = self.head(Target::Record(LOGFILE_RECORD), 2 * 4096)? else {
            return Ok(true);
        };
        if head.iter().all(|&b| b == 0xFF) {
            return Ok(true);
        }
        let mut best: Option<(u64, bool)> = None;
        let page_size = match head.get(16..20) {
            Some(_) if crate::bytes::le_u32(&head, 16).is_power_of_two() => crate::bytes::le_u32(&head, 16) as usize,
            _ => 4096,
        };
        for page_off in [0usize, page_size] {
            let Some(page) = head.get(page_off..page_off + 512) else { continue };
            if &page[0..4] != b"RSTR" && &page[0..4] != b"CHKD" {
                continue;
            }
            let ra = le_u16(page, 24) as usize;
            if ra + 16 > page.len() {
                continue;
            }
            let lsn = le_u64(page, ra);
            let in_use = le_u16(page, ra + 12);
            let flags = le_u16(page, ra + 14);
            let clean = in_use == 0xFFFF || flags & 0x0002 != 0;
            if best.is_none_or(|(l, _)| lsn >= l) {
                best = Some((lsn, clean));
            }
        }
        Ok(best.is_none_or(|(_, clean)| clean))
    }

    /// Does `hiberfil.sys` hold a hibernation image (`hibr`, `HIBR`, or `wake`
    /// signatures; Fast Startup leaves `HIBR`)?
    fn hibernated(&self) -> Result<bool> {
        let Some(h) = self.head(Target::Path("hiberfil.sys"), 4)? else {
            return Ok(false);
        };
        Ok(h.len() == 4 && (h.eq_ignore_ascii_case(b"hibr") || h.eq_ignore_ascii_case(b"wake")))
    }
}

enum Target<'a> {
    Record(u64),
    Path(&'a str),
}

fn lookup<'n>(ntfs: &'n Ntfs, r: &mut DiskReader, base: u64, path: &str) -> Result<NtfsFile<'n>> {
    let mut file = ntfs.root_directory(r).map_err(|e| conv(r, base, e))?;
    let mut walked = String::new();
    for comp in components(path) {
        walked.push('\\');
        walked.push_str(comp);
        if !file.is_directory() {
            return Err(Error::NotFound { layer: Layer::Ntfs, path: walked });
        }
        let next = {
            let index = file.directory_index(r).map_err(|e| conv(r, base, e))?;
            let mut finder = index.finder();
            match NtfsFileNameIndex::find(&mut finder, ntfs, r, comp) {
                None => return Err(Error::NotFound { layer: Layer::Ntfs, path: walked }),
                Some(entry) => {
                    let entry = entry.map_err(|e| conv(r, base, e))?;
                    entry.to_file(ntfs, r).map_err(|e| conv(r, base, e))?
                }
            }
        };
        file = next;
    }
    Ok(file)
}

/// Convert an `ntfs` crate error, preferring the disk layer's own error if the
/// failure came from below.
fn conv(r: &mut DiskReader, base: u64, e: ntfs::NtfsError) -> Error {
    if let Some(inner) = r.last_error.take() {
        return inner;
    }
    Error::corrupt(Layer::Ntfs, base, format!("{e} (positions relative to the volume)"))
}

fn io_conv(r: &mut DiskReader, base: u64, e: std::io::Error) -> Error {
    if let Some(inner) = r.last_error.take() {
        return inner;
    }
    Error::corrupt(Layer::Ntfs, base, format!("reading file data: {e}"))
}

fn copy_volume(r: &mut DiskReader, total: u64, out: &mut dyn Write) -> Result<u64> {
    use std::io::{Read, Seek, SeekFrom};
    let mut buf = vec![0u8; total.min(1 << 20) as usize];
    let mut done = 0u64;
    let _ = r.seek(SeekFrom::Start(0));
    while done < total {
        let n = (total - done).min(buf.len() as u64) as usize;
        if let Err(e) = r.read_exact(&mut buf[..n]) {
            return Err(io_conv(r, 0, e));
        }
        out.write_all(&buf[..n]).map_err(|source| Error::Output { layer: Layer::Ntfs, what: "writing", path: "the output".into(), source })?;
        done += n as u64;
    }
    Ok(done)
}

impl FileSystem for NtfsFs {
    fn kind(&self) -> FsKind {
        FsKind::Ntfs
    }

    fn state(&self) -> &FsState {
        &self.state
    }

    fn stat(&self, path: &str) -> Result<FileStat> {
        guard(Layer::Ntfs, self.base, || {
            let mut inner = self.inner.borrow_mut();
            let Inner { ntfs, r } = &mut *inner;
            r.refuel();
            let base = self.base;
            let file = lookup(ntfs, r, base, path)?;
            if file.is_directory() {
                return Ok(FileStat { size: 0, is_dir: true });
            }
            if let Some((size, _, _)) = listed_data(ntfs, r, base, &file, path)? {
                return Ok(FileStat { size, is_dir: false });
            }
            let size = match file.data(r, "") {
                None => 0,
                Some(item) => {
                    let item = item.map_err(|e| conv(r, base, e))?;
                    let attr = item.to_attribute().map_err(|e| conv(r, base, e))?;
                    attr.value_length()
                }
            };
            Ok(FileStat { size, is_dir: false })
        })
    }

    fn read_to(&self, path: &str, out: &mut dyn Write) -> Result<u64> {
        self.read_data(path, Out::Stream(out))
    }

    fn overwrite_plan(&self, path: &str, changes: &[(u64, Vec<u8>)]) -> Result<Vec<(u64, Vec<u8>)>> {
        let (runs, limit) = self.runs(path)?;
        map_changes(path, &runs, limit, changes, self.base)
    }

    /// Clusters clear in `$Bitmap` (one bit per cluster, set = in use), times
    /// the cluster size. The bitmap is streamed through a counter: a 2 TiB
    /// volume of 4 KiB clusters has a 64 MiB bitmap, never held in memory.
    fn free_bytes(&self) -> Result<Option<u64>> {
        let cluster = u64::from(self.state.cluster_size);
        if cluster == 0 {
            return Err(Error::corrupt(Layer::Ntfs, self.base, "cluster size 0"));
        }
        let clusters = self.state.size / cluster;
        let mut counter = FreeBits { left: clusters, free: 0 };
        let read = self.read_data("$Bitmap", Out::Stream(&mut counter))?;
        if read.saturating_mul(8) < clusters {
            return Err(Error::corrupt(Layer::Ntfs, self.base, format!("$Bitmap holds {read} bytes, too few for the volume's {clusters} clusters")));
        }
        Ok(Some(counter.free * cluster))
    }

    fn list_dir(&self, path: &str) -> Result<Vec<String>> {
        guard(Layer::Ntfs, self.base, || {
            let mut inner = self.inner.borrow_mut();
            let Inner { ntfs, r } = &mut *inner;
            r.refuel();
            let base = self.base;
            let dir = lookup(ntfs, r, base, path)?;
            if !dir.is_directory() {
                return Err(Error::Usage(format!("{path} is not a directory")));
            }
            let index = dir.directory_index(r).map_err(|e| conv(r, base, e))?;
            let mut entries = index.entries();
            let mut names = Vec::new();
            while let Some(entry) = entries.next(r) {
                let entry = entry.map_err(|e| conv(r, base, e))?;
                let Some(key) = entry.key() else { continue };
                let key = key.map_err(|e| conv(r, base, e))?;
                if key.namespace() == ntfs::structured_values::NtfsFileNamespace::Dos {
                    continue;
                }
                if names.len() >= super::MAX_DIR_ENTRIES {
                    break;
                }
                names.push(key.name().to_string_lossy());
            }
            Ok(names)
        })
    }

    fn read_at(&self, path: &str, offset: u64, buf: &mut [u8]) -> Result<usize> {
        self.read_range(path, offset, buf)
    }

    fn open_file(&self, path: &str) -> Result<Option<Box<dyn FileRead>>> {
        Ok(self.open_handle(path)?.map(|h| Box::new(h) as Box<dyn FileRead>))
    }

    fn open_shared(&self, path: &str) -> Result<Option<Arc<dyn FileRead + Send + Sync>>> {
        Ok(self.open_handle(path)?.map(|h| Arc::new(h) as Arc<dyn FileRead + Send + Sync>))
    }

    /// Read a whole file straight into its final buffer (no bounce copy: hives
    /// are megabytes and every copy costs page faults).
    fn read_file(&self, path: &str, limit: u64) -> Result<Vec<u8>> {
        let mut v = Vec::new();
        self.read_data(path, Out::Whole(&mut v, limit))?;
        Ok(v)
    }
}

/// Counts the clear bits among the first `left` bits written to it (`$Bitmap`
/// past the last cluster is padding and ignored).
struct FreeBits {
    left: u64,
    free: u64,
}

impl Write for FreeBits {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        for &b in buf {
            if self.left == 0 {
                break;
            }
            let bits = self.left.min(8) as u32;
            let mask = if bits == 8 { 0xFF } else { (1u8 << bits) - 1 };
            self.free += u64::from((!b & mask).count_ones());
            self.left -= u64::from(bits);
        }
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// File offset ranges of a non-resident attribute mapped to the volume:
/// (file offset, volume offset or None for a sparse run, length).
type Runs = Vec<(u64, Option<u64>, u64)>;

/// Refuse a compressed or encrypted (EFS) `$DATA`: its clusters are not the
/// file's bytes.
fn raw_readable(attr: &ntfs::NtfsAttribute, base: u64, path: &str) -> Result<()> {
    let flags = attr.flags();
    if flags.intersects(NtfsAttributeFlags::COMPRESSED | NtfsAttributeFlags::ENCRYPTED) {
        return Err(Error::unsupported(
            Layer::Ntfs,
            base + attr.position().value().map_or(0, |p| p.get()),
            format!("{path} is NTFS-{} and cannot be read raw", if flags.contains(NtfsAttributeFlags::ENCRYPTED) { "encrypted (EFS)" } else { "compressed" }),
        ));
    }
    Ok(())
}

/// Data size and initialized size of the non-resident attribute whose header
/// is at volume byte `h` (header +48 and +56).
fn header_sizes(r: &mut DiskReader, base: u64, h: u64) -> Result<(u64, u64)> {
    let mut sizes = [0u8; 16];
    std::io::Seek::seek(r, std::io::SeekFrom::Start(h + 48)).map_err(|e| io_conv(r, base, e))?;
    std::io::Read::read_exact(r, &mut sizes).map_err(|e| io_conv(r, base, e))?;
    Ok((le_u64(&sizes, 0), le_u64(&sizes, 8)))
}

/// Append the data runs of `nr` to `runs` as (file offset from `at`, volume
/// position or None for a hole, length); returns the file offset after them.
/// At most a million runs in all.
fn push_runs(r: &mut DiskReader, base: u64, h: u64, path: &str, nr: &ntfs::attribute_value::NtfsNonResidentAttributeValue, runs: &mut Runs, mut at: u64) -> Result<u64> {
    for run in nr.data_runs() {
        let run = run.map_err(|e| conv(r, base, e))?;
        let len = run.allocated_size();
        runs.push((at, run.data_position().value().map(|p| p.get()), len));
        at = at.saturating_add(len);
        if runs.len() > 1 << 20 {
            return Err(Error::corrupt(Layer::Ntfs, h, format!("{path}: more than a million data runs")));
        }
    }
    Ok(at)
}

/// Most fragments one file's unnamed `$DATA` may have in its attribute list.
const MAX_LISTED_FRAGMENTS: usize = 1 << 16;

/// The unnamed `$DATA` of a file whose attributes spill into extension
/// records (`$ATTRIBUTE_LIST`), as (data size, initialized size, runs in file
/// order: file offset, volume byte position or None for a hole, length).
/// `None` when the file has no attribute list, or its data is resident: the
/// ntfs crate's own view is then right. The crate (0.4) is not, when the
/// first `$DATA` fragment stays in the base record (as ntfs-3g and Windows
/// often leave it): its list walk skips base-record entries and hands back
/// the second fragment, whose data-size field is 0, so a fragmented hive
/// would read as an empty file.
fn listed_data(ntfs: &Ntfs, r: &mut DiskReader, base: u64, file: &NtfsFile, path: &str) -> Result<Option<(u64, u64, Runs)>> {
    let mut list = None;
    for a in file.attributes_raw() {
        let a = a.map_err(|e| conv(r, base, e))?;
        if a.ty().ok() == Some(ntfs::NtfsAttributeType::AttributeList) {
            list = Some(a.structured_value::<_, ntfs::structured_values::NtfsAttributeList>(r).map_err(|e| conv(r, base, e))?);
            break;
        }
    }
    let Some(list) = list else { return Ok(None) };
    let cluster = u64::from(ntfs.cluster_size());
    let mut entries = list.entries();
    let (mut size, mut initialized) = (None, 0u64);
    let mut runs = Runs::new();
    let mut at = 0u64;
    let mut fragments = 0usize;
    while let Some(entry) = entries.next(r) {
        let entry = entry.map_err(|e| conv(r, base, e))?;
        if entry.ty().ok() != Some(ntfs::NtfsAttributeType::Data) || entry.name_length() != 0 {
            continue;
        }
        fragments += 1;
        if fragments > MAX_LISTED_FRAGMENTS {
            return Err(Error::corrupt(Layer::Ntfs, base, format!("{path}: more than {MAX_LISTED_FRAGMENTS} $DATA fragments")));
        }
        let vcn = u64::try_from(entry.lowest_vcn().value()).map_err(|_| Error::corrupt(Layer::Ntfs, base, format!("{path}: negative VCN in the attribute list")))?;
        let efile = entry.to_file(ntfs, r).map_err(|e| conv(r, base, e))?;
        let attr = entry.to_attribute(&efile).map_err(|e| conv(r, base, e))?;
        if attr.is_resident() {
            return Ok(None);
        }
        raw_readable(&attr, base, path)?;
        let h = attr.position().value().map(|p| p.get()).ok_or_else(|| Error::corrupt(Layer::Ntfs, base, format!("{path}: $DATA fragment without a position")))?;
        if vcn == 0 {
            // Only the first fragment carries the sizes (header +48: data, +56: initialized).
            size = Some(attr.value_length());
            initialized = header_sizes(r, base, h)?.1.min(attr.value_length());
        }
        if vcn.checked_mul(cluster) != Some(at) {
            return Err(Error::corrupt(Layer::Ntfs, h, format!("{path}: $DATA fragment starts at VCN {vcn}, expected byte {at:#x}")));
        }
        let value = attr.value(r).map_err(|e| conv(r, base, e))?;
        let ntfs::attribute_value::NtfsAttributeValue::NonResident(nr) = value else {
            return Err(Error::corrupt(Layer::Ntfs, h, format!("{path}: a listed $DATA fragment is not non-resident")));
        };
        at = push_runs(r, base, h, path, &nr, &mut runs, at)?;
    }
    let Some(size) = size else { return Ok(None) };
    if at < size {
        return Err(Error::corrupt(Layer::Ntfs, base, format!("{path}: $DATA fragments cover {at} bytes of {size}")));
    }
    Ok(Some((size, initialized, runs)))
}

/// Read `size` bytes of a listed `$DATA` (see [`listed_data`]) into `w`:
/// holes and bytes past the initialized size are zeros.
fn read_listed(r: &mut DiskReader, base: u64, size: u64, initialized: u64, runs: &Runs, w: &mut dyn Write) -> Result<u64> {
    let mut buf = vec![0u8; 1 << 20];
    let mut done = 0u64;
    for &(at, pos, len) in runs {
        let mut off = 0u64;
        while off < len && at.saturating_add(off) < size {
            let file_at = at.saturating_add(off);
            let n = (len - off).min(size - file_at).min(buf.len() as u64) as usize;
            let chunk = &mut buf[..n];
            match pos {
                Some(p) if file_at < initialized => {
                    std::io::Seek::seek(r, std::io::SeekFrom::Start(p.saturating_add(off))).map_err(|e| io_conv(r, base, e))?;
                    std::io::Read::read_exact(r, chunk).map_err(|e| io_conv(r, base, e))?;
                    let valid = (initialized - file_at).min(n as u64) as usize;
                    chunk[valid..].fill(0);
                }
                _ => chunk.fill(0),
            }
            w.write_all(chunk).map_err(|source| Error::Output { layer: Layer::Ntfs, what: "writing", path: "the output".into(), source })?;
            off += n as u64;
            done += n as u64;
        }
    }
    Ok(done)
}

/// Map `changes` through `runs` to volume writes, splitting at run boundaries.
fn map_changes(path: &str, runs: &Runs, limit: u64, changes: &[(u64, Vec<u8>)], base: u64) -> Result<Vec<(u64, Vec<u8>)>> {
    let mut out = Vec::new();
    for (off, data) in changes {
        let end = off.checked_add(data.len() as u64).ok_or_else(|| Error::Usage(format!("{path}: write range overflows")))?;
        if end > limit {
            return Err(Error::unsupported(Layer::Ntfs, base, format!("{path}: writing up to byte {end:#x} would grow the file past its {limit:#x} initialized bytes; rdprescue never changes NTFS allocation")));
        }
        let mut pos = *off;
        while pos < end {
            let Some(&(fstart, vol, len)) = runs.iter().find(|(s, _, l)| pos >= *s && pos < s + l) else {
                return Err(Error::corrupt(Layer::Ntfs, base, format!("{path}: file offset {pos:#x} is in no data run")));
            };
            let Some(vol) = vol else {
                return Err(Error::unsupported(Layer::Ntfs, base, format!("{path}: file offset {pos:#x} lies in a sparse run (no clusters to write into)")));
            };
            let n = (fstart + len).min(end) - pos;
            let from = (pos - off) as usize;
            out.push((vol + (pos - fstart), data[from..from + n as usize].to_vec()));
            pos += n;
        }
    }
    Ok(out)
}

/// Where [`NtfsFs::read_data`] puts a file's bytes.
enum Out<'a> {
    Stream(&'a mut dyn Write),
    /// The whole file into one vector, refusing files above the limit.
    Whole(&'a mut Vec<u8>, u64),
}

impl NtfsFs {
    /// Data runs and initialized size of the unnamed `$DATA` of `path`, after
    /// checking it can be overwritten in place (formats.md E.3).
    fn runs(&self, path: &str) -> Result<(Runs, u64)> {
        self.with_file(path, |_, r, file| {
            let base = self.base;
            let refuse = |msg: String| Error::unsupported(Layer::Ntfs, base, format!("{path}: {msg}"));
            let mut attrs = file.attributes();
            while let Some(item) = attrs.next(r) {
                let item = item.map_err(|e| conv(r, base, e))?;
                let a = item.to_attribute().map_err(|e| conv(r, base, e))?;
                if a.ty().ok() == Some(ntfs::NtfsAttributeType::ReparsePoint) {
                    return Err(refuse("has a reparse point (WOF-compressed or a link): cannot be written in place".into()));
                }
            }
            let Some(item) = file.data(r, "") else { return Err(refuse("has no data".into())) };
            let item = item.map_err(|e| conv(r, base, e))?;
            let attr = item.to_attribute().map_err(|e| conv(r, base, e))?;
            let flags = attr.flags();
            if flags.intersects(NtfsAttributeFlags::COMPRESSED | NtfsAttributeFlags::ENCRYPTED | NtfsAttributeFlags::SPARSE) {
                return Err(refuse(format!("data is compressed, encrypted or sparse (attribute flags {:#06x})", flags.bits())));
            }
            let header = attr.position().value().map(|p| p.get());
            let value = attr.value(r).map_err(|e| conv(r, base, e))?;
            let size = value.len();
            let ntfs::attribute_value::NtfsAttributeValue::NonResident(nr) = value else {
                return Err(match value {
                    ntfs::attribute_value::NtfsAttributeValue::Resident(_) => refuse("data is resident in its MFT record (writing it means editing NTFS metadata)".into()),
                    _ => refuse("data spans several MFT records ($ATTRIBUTE_LIST); in-place writes of such files are not supported".into()),
                });
            };
            // Initialized size (attribute header +56) bounds what may be written:
            // bytes past it read as zeros whatever the clusters hold.
            let Some(h) = header else { return Err(refuse("attribute header has no position".into())) };
            if (h + 48..h + 64).any(|b| b % 512 >= 510) {
                return Err(refuse("attribute sizes straddle an update-sequence fixup; cannot check the initialized size".into()));
            }
            let (data_size, initialized) = header_sizes(r, base, h)?;
            if data_size != size {
                return Err(Error::corrupt(Layer::Ntfs, h, format!("{path}: attribute header says {data_size} bytes, the parser {size}")));
            }
            let mut runs = Runs::new();
            push_runs(r, base, h, path, &nr, &mut runs, 0)?;
            Ok((runs, initialized.min(size)))
        })
    }

    fn read_data(&self, path: &str, mut out: Out<'_>) -> Result<u64> {
        let base = self.base;
        self.with_data(path, |r, file, data| {
            let value = match data {
                Data::Empty => return Ok(0),
                Data::Listed { size, initialized, runs } => {
                    return match out {
                        Out::Stream(w) => read_listed(r, base, size, initialized, &runs, w),
                        Out::Whole(v, limit) => {
                            if size > limit {
                                return Err(Error::unsupported(Layer::Ntfs, 0, format!("{path} is {size} bytes, more than the {limit}-byte limit")));
                            }
                            v.clear();
                            v.reserve_exact(size as usize);
                            read_listed(r, base, size, initialized, &runs, v)
                        }
                    };
                }
                Data::Value(value) => value,
            };
            let total = value.len();
            if let Out::Whole(v, limit) = &mut out {
                if total > *limit {
                    return Err(Error::unsupported(Layer::Ntfs, 0, format!("{path} is {total} bytes, more than the {limit}-byte limit")));
                }
                v.clear();
            }
            if file.file_record_number() == BOOT_RECORD {
                // `$Boot` starts at LCN 0, which the ntfs crate cannot represent
                // (it reads a run at LCN 0 as sparse): read the volume directly.
                return match out {
                    Out::Stream(w) => copy_volume(r, total, w),
                    Out::Whole(v, _) => copy_volume(r, total, v),
                };
            }
            let mut done = 0u64;
            let mut failed = None;
            let mut v = value.attach(r);
            match out {
                Out::Whole(whole, _) => {
                    // A buffer recycled on this thread, or zeroed pages from
                    // the kernel (calloc: no memset of a 12.8 MB hive); the
                    // read overwrites every byte.
                    *whole = crate::fs::reader::whole_buffer(total as usize);
                    for part in whole.chunks_mut(4 << 20) {
                        if let Err(e) = std::io::Read::read_exact(&mut v, part) {
                            failed = Some(e);
                            break;
                        }
                        done += part.len() as u64;
                    }
                }
                Out::Stream(w) => {
                    // 128 KiB: stays in the CPU's cache between the kernel's
                    // copy into it and the consumer's pass over it, and is 32
                    // fresh pages, not 256 (a hive streamed at load, and the
                    // plan's comparison: 1,935 -> 1,660 page faults for
                    // inspect on big127-dirty).
                    let mut buf = vec![0u8; (128 << 10).min(total as usize)];
                    while done < total {
                        let n = (total - done).min(buf.len() as u64) as usize;
                        if let Err(e) = std::io::Read::read_exact(&mut v, &mut buf[..n]) {
                            failed = Some(e);
                            break;
                        }
                        w.write_all(&buf[..n]).map_err(|source| Error::Output { layer: Layer::Ntfs, what: "writing", path: "the output".into(), source })?;
                        done += n as u64;
                    }
                }
            }
            drop(v);
            if let Some(e) = failed {
                let e = io_conv(r, base, e);
                return Err(match e {
                    Error::Corrupt { layer, offset, msg } => Error::Corrupt { layer, offset, msg: format!("{path} at file offset {done:#x}: {msg}") },
                    other => other,
                });
            }
            Ok(done)
        })
    }
}

/// The unnamed `$DATA` of a file as the readers meet it.
enum Data<'n, 'i> {
    /// No unnamed `$DATA`: an empty file.
    Empty,
    /// Spread over several MFT records (`$ATTRIBUTE_LIST`): size, initialized
    /// size and the runs gathered from every record.
    Listed { size: u64, initialized: u64, runs: Runs },
    /// In the file's own record, checked to be readable raw ([`raw_readable`]).
    Value(ntfs::attribute_value::NtfsAttributeValue<'n, 'i>),
}

impl NtfsFs {
    /// The opening every reader of a file shares: panic guard, borrow of the
    /// parser, a refuelled read budget, lookup of `path`, refusal of a
    /// directory; then `f` on the file.
    fn with_file<T>(&self, path: &str, f: impl for<'n> FnOnce(&'n Ntfs, &mut DiskReader, NtfsFile<'n>) -> Result<T>) -> Result<T> {
        guard(Layer::Ntfs, self.base, || {
            let mut inner = self.inner.borrow_mut();
            let Inner { ntfs, r } = &mut *inner;
            r.refuel();
            let file = lookup(ntfs, r, self.base, path)?;
            if file.is_directory() {
                return Err(Error::Usage(format!("{path} is a directory")));
            }
            f(ntfs, r, file)
        })
    }

    /// [`Self::with_file`], then `f` on the file's unnamed `$DATA`: the
    /// attribute-list branch or the value in the file's own record.
    fn with_data<T>(&self, path: &str, f: impl FnOnce(&mut DiskReader, &NtfsFile, Data<'_, '_>) -> Result<T>) -> Result<T> {
        let base = self.base;
        self.with_file(path, |ntfs, r, file| {
            if let Some((size, initialized, runs)) = listed_data(ntfs, r, base, &file, path)? {
                return f(r, &file, Data::Listed { size, initialized, runs });
            }
            let Some(item) = file.data(r, "") else { return f(r, &file, Data::Empty) };
            let item = item.map_err(|e| conv(r, base, e))?;
            let attr = item.to_attribute().map_err(|e| conv(r, base, e))?;
            raw_readable(&attr, base, path)?;
            let value = attr.value(r).map_err(|e| conv(r, base, e))?;
            f(r, &file, Data::Value(value))
        })
    }
}

impl NtfsFs {
    /// [`FileSystem::read_at`]: seek in the unnamed `$DATA` (or walk the
    /// runs of a listed one) and read only the range asked for.
    fn read_range(&self, path: &str, offset: u64, buf: &mut [u8]) -> Result<usize> {
        let base = self.base;
        self.with_data(path, |r, _, data| {
            let value = match data {
                Data::Empty => return Ok(0),
                Data::Listed { size, initialized, runs } => {
                    let n = size.saturating_sub(offset).min(buf.len() as u64) as usize;
                    let buf = &mut buf[..n];
                    buf.fill(0);
                    let end = offset + n as u64;
                    for &(at, pos, len) in &runs {
                        let (lo, hi) = (at.max(offset), at.saturating_add(len).min(end).min(initialized));
                        let Some(p) = pos else { continue };
                        if lo >= hi {
                            continue;
                        }
                        std::io::Seek::seek(r, std::io::SeekFrom::Start(p.saturating_add(lo - at))).map_err(|e| io_conv(r, base, e))?;
                        std::io::Read::read_exact(r, &mut buf[(lo - offset) as usize..(hi - offset) as usize]).map_err(|e| io_conv(r, base, e))?;
                    }
                    return Ok(n);
                }
                Data::Value(value) => value,
            };
            let n = value.len().saturating_sub(offset).min(buf.len() as u64) as usize;
            if n == 0 {
                return Ok(0);
            }
            let mut v = value.attach(r);
            let res = std::io::Seek::seek(&mut v, std::io::SeekFrom::Start(offset)).and_then(|_| std::io::Read::read_exact(&mut v, &mut buf[..n]));
            drop(v);
            res.map_err(|e| io_conv(r, base, e))?;
            Ok(n)
        })
    }
}

/// An open NTFS file ([`FileSystem::open_file`]): the unnamed `$DATA` of a
/// file as [`NtfsFs::read_range`] meets it, looked up and decoded once. Reads
/// go straight to the volume, one read per data run touched; they give what
/// `read_range` gives for the same path (the tests compare the two).
pub struct NtfsHandle {
    vol: Arc<dyn Disk>,
    /// Byte offset of the volume on the disk, for error messages.
    base: u64,
    size: u64,
    body: Body,
}

enum Body {
    /// No unnamed `$DATA`.
    Empty,
    /// The value in the file's MFT record.
    Resident(Vec<u8>),
    /// `$ATTRIBUTE_LIST` fragments ([`listed_data`]): holes and bytes past
    /// the initialized size read as zeros; runs short of the size too.
    Listed { initialized: u64, runs: Runs },
    /// A non-resident value in the file's own record, read as the `ntfs`
    /// crate reads it: holes are zeros, the clusters are read up to the data
    /// size (the crate does not zero past the initialized size), and a read
    /// that needs bytes past the runs fails with `tail` (the decoding error
    /// of the next run, or the end of the runs).
    Runs { runs: Runs, covered: u64, tail: String },
}

impl NtfsFs {
    /// [`FileSystem::open_file`]: look `path` up once and keep what a read
    /// needs. `None` for the one shape the runs do not describe (a value the
    /// crate reads through its own attribute-list walk); the caller then reads
    /// by path.
    fn open_handle(&self, path: &str) -> Result<Option<NtfsHandle>> {
        let base = self.base;
        self.with_data(path, |r, _, data| {
            let vol = r.disk().clone();
            let (size, body) = match data {
                Data::Empty => (0, Body::Empty),
                Data::Listed { size, initialized, runs } => (size, Body::Listed { initialized, runs }),
                Data::Value(ntfs::attribute_value::NtfsAttributeValue::Resident(v)) => (v.len(), Body::Resident(v.data().to_vec())),
                Data::Value(ntfs::attribute_value::NtfsAttributeValue::NonResident(nr)) => {
                    // Runs are decoded from the record already in memory:
                    // at most one per two bytes of it.
                    let mut runs = Runs::new();
                    let mut covered = 0u64;
                    let mut tail = "reading file data: failed to fill whole buffer".to_string();
                    for run in nr.data_runs() {
                        match run {
                            Ok(run) => {
                                let len = run.allocated_size();
                                runs.push((covered, run.data_position().value().map(|p| p.get()), len));
                                covered = covered.saturating_add(len);
                            }
                            Err(e) => {
                                tail = format!("reading file data: {}", std::io::Error::from(e));
                                break;
                            }
                        }
                    }
                    (nr.len(), Body::Runs { runs, covered, tail })
                }
                Data::Value(_) => return Ok(None),
            };
            Ok(Some(NtfsHandle { vol, base, size, body }))
        })
    }
}

impl NtfsHandle {
    /// `buf.len()` bytes of the volume at `pos`: as the file-system reader
    /// reads them (a range past the end of the volume is corrupt data).
    fn read_vol(&self, pos: u64, buf: &mut [u8]) -> Result<()> {
        let avail = self.vol.len().saturating_sub(pos).min(buf.len() as u64) as usize;
        if avail > 0 {
            self.vol.read_at(pos, &mut buf[..avail])?;
        }
        if avail < buf.len() {
            return Err(Error::corrupt(Layer::Ntfs, self.base, "reading file data: failed to fill whole buffer"));
        }
        Ok(())
    }

    /// Read the parts of `[offset, offset + buf.len())` that `runs` place on
    /// the volume, below `limit`, into `buf`; other bytes are left alone.
    fn read_runs(&self, runs: &Runs, offset: u64, buf: &mut [u8], limit: u64) -> Result<()> {
        let end = offset + buf.len() as u64;
        let first = runs.partition_point(|&(at, _, len)| at.saturating_add(len) <= offset);
        for &(at, pos, len) in &runs[first..] {
            if at >= end {
                break;
            }
            let (lo, hi) = (at.max(offset), at.saturating_add(len).min(end).min(limit));
            let Some(p) = pos else { continue };
            if lo >= hi {
                continue;
            }
            self.read_vol(p.saturating_add(lo - at), &mut buf[(lo - offset) as usize..(hi - offset) as usize])?;
        }
        Ok(())
    }
}

impl FileRead for NtfsHandle {
    fn size(&self) -> u64 {
        self.size
    }

    fn read_at(&self, offset: u64, buf: &mut [u8]) -> Result<usize> {
        let n = self.size.saturating_sub(offset).min(buf.len() as u64) as usize;
        let buf = &mut buf[..n];
        match &self.body {
            Body::Empty => Ok(0),
            Body::Resident(v) => {
                // n > 0 only when offset < size = v.len().
                if n > 0 {
                    buf.copy_from_slice(&v[offset as usize..offset as usize + n]);
                }
                Ok(n)
            }
            Body::Listed { initialized, runs } => {
                buf.fill(0);
                self.read_runs(runs, offset, buf, *initialized)?;
                Ok(n)
            }
            Body::Runs { runs, covered, tail } => {
                if n == 0 {
                    return Ok(0);
                }
                buf.fill(0);
                let end = offset + n as u64;
                self.read_runs(runs, offset, buf, end)?;
                if end > *covered {
                    return Err(Error::corrupt(Layer::Ntfs, self.base, tail.clone()));
                }
                Ok(n)
            }
        }
    }
}
