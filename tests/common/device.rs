//! The strict test device: one `image::Source` for the tests that need a disk
//! which refuses unaligned reads (tests/image_source.rs, tests/device_sources.rs).

use rdprescue::error::{Error, Result};
use rdprescue::image::{Source, SourceId};
use std::io;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;

/// Reads made through a [`StrictDevice`]: the reads that got past the
/// alignment check, their bytes, the largest one, and the refused ones.
#[derive(Default)]
pub struct ReadStats {
    pub calls: AtomicU64,
    pub bytes: AtomicU64,
    pub max: AtomicU64,
    pub rejected: AtomicU64,
}

/// A device that refuses reads whose offset or length is not a multiple of
/// `align` (a read may end short of a multiple only at the end of the
/// device), as an `O_DIRECT` file or a 4Kn disk would, counting its reads.
///
/// [`StrictDevice::new`] is the strict twin of a file: its name, path and
/// identity, and siblings that are strict too (a differencing parent is
/// found through it). [`StrictDevice::named`] stands for a disk of that name
/// (`\\.\PhysicalDrive4`): its own identity, no siblings.
///
/// Once `after` reads got past the alignment check (or `vanish` is set), every
/// read fails as a detached disk does (ENXIO on Linux,
/// ERROR_DEVICE_NOT_CONNECTED on Windows).
pub struct StrictDevice {
    pub inner: Arc<dyn Source>,
    pub align: u32,
    pub stats: Arc<ReadStats>,
    /// Set by [`StrictDevice::named`].
    pub name: Option<String>,
    pub after: u64,
    pub vanish: Arc<AtomicBool>,
}

impl StrictDevice {
    pub fn new(inner: Arc<dyn Source>, align: u32) -> Self {
        StrictDevice { inner, align, stats: Arc::default(), name: None, after: u64::MAX, vanish: Arc::default() }
    }

    pub fn named(inner: Arc<dyn Source>, name: &str, align: u32) -> Self {
        StrictDevice { name: Some(name.into()), ..Self::new(inner, align) }
    }

    /// The same kind of device over `inner`, sharing the counters.
    fn twin(&self, inner: Arc<dyn Source>) -> Arc<dyn Source> {
        Arc::new(StrictDevice { inner, align: self.align, stats: self.stats.clone(), name: None, after: self.after, vanish: self.vanish.clone() })
    }
}

/// The error of a detached disk.
fn gone() -> io::Error {
    io::Error::from_raw_os_error(if cfg!(windows) { 1167 } else { 6 })
}

impl Source for StrictDevice {
    fn read_at(&self, offset: u64, buf: &mut [u8]) -> io::Result<()> {
        let a = u64::from(self.align);
        if offset % a != 0 || (buf.len() as u64 % a != 0 && offset + buf.len() as u64 != self.inner.len()) {
            self.stats.rejected.fetch_add(1, Ordering::Relaxed);
            return Err(io::Error::new(io::ErrorKind::InvalidInput, format!("unaligned read of {} bytes at {offset:#x}", buf.len())));
        }
        if self.vanish.load(Ordering::Relaxed) || self.stats.calls.fetch_add(1, Ordering::Relaxed) >= self.after {
            return Err(gone());
        }
        self.stats.bytes.fetch_add(buf.len() as u64, Ordering::Relaxed);
        self.stats.max.fetch_max(buf.len() as u64, Ordering::Relaxed);
        self.inner.read_at(offset, buf)
    }
    fn len(&self) -> u64 {
        self.inner.len()
    }
    fn sector_size(&self) -> u32 {
        self.inner.sector_size()
    }
    fn alignment(&self) -> u32 {
        self.align
    }
    fn name(&self) -> String {
        self.name.clone().unwrap_or_else(|| self.inner.name())
    }
    fn path(&self) -> PathBuf {
        match &self.name {
            Some(n) => PathBuf::from(n),
            None => self.inner.path(),
        }
    }
    fn identity(&self) -> SourceId {
        match &self.name {
            Some(n) => SourceId(format!("test-device:{n}")),
            None => self.inner.identity(),
        }
    }
    fn sibling(&self, name: &str) -> Result<Arc<dyn Source>> {
        match &self.name {
            Some(_) => Err(Error::Open { layer: rdprescue::Layer::Raw, path: PathBuf::from(name), source: io::ErrorKind::NotFound.into() }),
            None => Ok(self.twin(self.inner.sibling(name)?)),
        }
    }
    fn sibling_name(&self, name: &str) -> String {
        match &self.name {
            Some(_) => name.to_string(),
            None => self.inner.sibling_name(name),
        }
    }
    fn open_absolute(&self, path: &Path) -> Result<Arc<dyn Source>> {
        match &self.name {
            Some(n) => Err(Error::Open {
                layer: rdprescue::Layer::Raw,
                path: path.to_path_buf(),
                source: io::Error::new(io::ErrorKind::Unsupported, format!("an absolute path cannot be opened from {n}")),
            }),
            None => Ok(self.twin(self.inner.open_absolute(path)?)),
        }
    }
}
