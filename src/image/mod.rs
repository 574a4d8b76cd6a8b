//! Layer 1: image containers.
//!
//! A container turns a byte [`Source`] (a file, a block device, bytes in
//! memory) into a flat virtual disk. Every container implements [`Disk`];
//! everything above this layer only ever sees that trait. Formats are detected
//! by signature, never by file extension.
//!
//! Layout: one folder per container format (`vhd/`, `vhdx/`: `read.rs` and
//! `write.rs`; `raw.rs` holds both), the byte sources in `source.rs`, and
//! [`write`] dispatches a [`write::Patch`] to the writer of the input's format.

mod detect;
pub mod device;
pub mod qcow2;
pub mod http;
pub mod raw;
mod source;
pub mod vhd;
pub mod vhdx;
pub mod vmdk;
#[cfg(windows)]
mod windows;
pub mod write;

pub use source::{bytes_read, open_path, AlignedReader, FileSource, MemDir, MemSource, Source, SourceId, MAX_BOUNCE};

use crate::error::{Error, Layer, Result};
use serde::Serialize;
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// A flat, read-only virtual disk.
pub trait Disk: Send + Sync {
    /// Fill `buf` with the bytes at virtual offset `offset`. Reading past
    /// [`Disk::len`] is an error.
    fn read_at(&self, offset: u64, buf: &mut [u8]) -> Result<()>;
    /// Virtual size in bytes.
    fn len(&self) -> u64;
    /// Whether the disk has no bytes at all.
    fn is_empty(&self) -> bool {
        self.len() == 0
    }
    /// Logical sector size (512 or 4096): the unit of LBAs in partition tables.
    fn sector_size(&self) -> u32;
    /// The concrete type, for this layer's writers (which need the container
    /// structures the reader parsed); `None` for disks of other layers.
    fn as_any(&self) -> Option<&dyn std::any::Any> {
        None
    }
}

/// Read `out.len()` bytes of a parent or backing disk at `off`; bytes past
/// its end read as zeros (a child may be larger than its parent). Shared by
/// the VHD, VMDK and QCOW2 readers.
pub(crate) fn read_zero_extended(p: &dyn Disk, off: u64, out: &mut [u8]) -> Result<()> {
    let plen = p.len();
    if off >= plen {
        out.fill(0);
        return Ok(());
    }
    let k = (out.len() as u64).min(plen - off) as usize;
    p.read_at(off, &mut out[..k])?;
    out[k..].fill(0);
    Ok(())
}

/// Split a read of `buf` at virtual `offset` at every multiple of `block`
/// (non-zero) and hand each piece, with its virtual offset, to `read`: the
/// block walk of the VHD, VHDX and QCOW2 readers.
pub(crate) fn by_blocks(offset: u64, buf: &mut [u8], block: u64, mut read: impl FnMut(u64, &mut [u8]) -> Result<()>) -> Result<()> {
    let mut done = 0usize;
    while done < buf.len() {
        let v = offset + done as u64;
        let n = ((buf.len() - done) as u64).min(block - v % block) as usize;
        read(v, &mut buf[done..done + n])?;
        done += n;
    }
    Ok(())
}

/// The bounds check of every container's [`Disk::read_at`]: `len` bytes at
/// `offset` must lie within the `size`-byte virtual disk.
pub(crate) fn check_virtual_read(layer: Layer, offset: u64, len: usize, size: u64) -> Result<()> {
    if offset.checked_add(len as u64).is_none_or(|e| e > size) {
        return Err(Error::corrupt(layer, offset, format!("read of {len} bytes past the end of the virtual disk ({size} bytes)")));
    }
    Ok(())
}

/// Container format, as reported by `rdprescue disk`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Format {
    Raw,
    VhdFixed,
    VhdDynamic,
    VhdDifferencing,
    VhdxFixed,
    VhdxDynamic,
    VhdxDifferencing,
    /// VMDK: hosted sparse extents (monolithic sparse, split sparse).
    VmdkSparse,
    /// VMDK: stream-optimized (compressed grains, as in an OVA).
    VmdkStream,
    /// VMDK: a descriptor with flat (raw) extents only.
    VmdkFlat,
    Qcow2,
}

impl Format {
    pub fn name(self) -> &'static str {
        match self {
            Format::Raw => "raw",
            Format::VhdFixed => "vhd-fixed",
            Format::VhdDynamic => "vhd-dynamic",
            Format::VhdDifferencing => "vhd-differencing",
            Format::VhdxFixed => "vhdx-fixed",
            Format::VhdxDynamic => "vhdx-dynamic",
            Format::VhdxDifferencing => "vhdx-differencing",
            Format::VmdkSparse => "vmdk-sparse",
            Format::VmdkStream => "vmdk-stream",
            Format::VmdkFlat => "vmdk-flat",
            Format::Qcow2 => "qcow2",
        }
    }
}

/// What happened to a pending VHDX metadata log on open.
#[derive(Debug, Clone, Serialize, Default)]
pub struct LogReplay {
    /// Number of log entries applied (in memory).
    pub entries: u32,
    /// First and last applied log sequence numbers.
    pub first_sequence: u64,
    pub last_sequence: u64,
    /// Number of 4 KiB file pages overlaid in memory.
    pub pages: u32,
}

/// Facts about a container, reported by `rdprescue disk`.
#[derive(Debug, Clone, Serialize)]
pub struct ContainerInfo {
    pub path: PathBuf,
    pub format: Format,
    /// Size of the container file itself.
    pub file_size: u64,
    pub virtual_size: u64,
    pub logical_sector_size: u32,
    pub physical_sector_size: u32,
    /// Allocation block size (dynamic/differencing formats).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub block_size: Option<u32>,
    /// Disk identifier (VHD unique id / VHDX virtual disk id).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub disk_id: Option<String>,
    /// Creator application (VHD footer / VHDX file identifier).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub creator: Option<String>,
    /// A pending VHDX log that was replayed in memory.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub log_replayed: Option<LogReplay>,
    /// Blocks allocated in this file (dynamic/differencing formats).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub allocated_blocks: Option<u64>,
    /// The parent of a differencing disk, already opened.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub parent: Option<Box<ContainerInfo>>,
}

/// An opened image: the disk and the facts about its container chain.
pub struct Image {
    pub disk: Arc<dyn Disk>,
    pub info: ContainerInfo,
}

impl std::fmt::Debug for Image {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Image").field("info", &self.info).finish()
    }
}

/// Maximum length of a differencing chain (Hyper-V checkpoint trees are far
/// shallower than this); protects against looping parent references.
pub const MAX_CHAIN_DEPTH: usize = 64;

/// Where a differencing disk's parent may be, as its locators say.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Candidate {
    /// A name relative to the child's directory (`/` separators).
    Sibling(String),
    /// An absolute path (only where the child's source can open one).
    Absolute(PathBuf),
}

/// State carried while a differencing chain is opened, to detect loops.
#[derive(Default)]
pub struct OpenCtx {
    visited: Vec<SourceId>,
}

impl OpenCtx {
    /// Open the parent of `child`: the first of `candidates` that its source
    /// can open (a sibling by relative name, or an absolute path where the
    /// source kind permits it). `expected` is the name the child records (for
    /// the error message).
    pub fn open_parent(
        &mut self,
        child: &dyn Source,
        layer: Layer,
        offset: u64,
        expected: &str,
        candidates: &[Candidate],
    ) -> Result<Image> {
        let mut tried = Vec::new();
        for cand in candidates {
            let (name, found) = match cand {
                Candidate::Sibling(n) => (child.sibling_name(n), child.sibling(n)),
                Candidate::Absolute(p) => (p.display().to_string(), child.open_absolute(p)),
            };
            match found {
                Ok(src) => return self.open_source(src),
                // Nothing there: try the next one.
                Err(e) if source::is_not_found(&e) => tried.push(name),
                // Something there that cannot be used: say why, and go on.
                Err(e) => tried.push(format!("{name} ({e})")),
            }
        }
        Err(Error::MissingParent {
            layer,
            offset,
            expected: expected.to_string(),
            tried: if tried.is_empty() { "no usable locator".into() } else { tried.join(", ") },
        })
    }

    /// Open an image file (or block device), detecting its format by signature.
    pub fn open(&mut self, path: &Path) -> Result<Image> {
        self.open_source(open_path(path)?)
    }

    /// Open a source (a file, a device, bytes in memory). A source that wants
    /// aligned reads gets an [`AlignedReader`] in front of it.
    pub fn open_source(&mut self, src: Arc<dyn Source>) -> Result<Image> {
        let src: Arc<dyn Source> = if src.alignment() > 1 { Arc::new(AlignedReader::new(src)) } else { src };
        let id = src.identity();
        if self.visited.contains(&id) {
            return Err(Error::corrupt(Layer::Raw, 0, format!("differencing chain loops back to {}", src.name())));
        }
        if self.visited.len() >= MAX_CHAIN_DEPTH {
            return Err(Error::corrupt(
                Layer::Raw,
                0,
                format!("differencing chain deeper than {MAX_CHAIN_DEPTH} at {}", src.name()),
            ));
        }
        // Unknown bytes are read as raw only as a differencing parent (its
        // child names it as a disk); an input must show that it is one.
        let strict = self.visited.is_empty();
        self.visited.push(id);
        match detect::detect(src.as_ref(), strict)? {
            Detected::Vhdx => vhdx::open(src, self),
            Detected::Vhd => vhd::open(src, self),
            Detected::VmdkSparse => vmdk::open_sparse(src, self),
            Detected::VmdkDescriptor => vmdk::open_descriptor(src, self),
            Detected::Qcow2 => qcow2::open(src, self),
            Detected::Raw => raw::open(src),
        }
    }
}

/// Open any supported image (raw file, block device, VHD, VHDX) read-only.
pub fn open(path: &Path) -> Result<Image> {
    OpenCtx::default().open(path)
}

/// Open an image from any byte source (parents are looked up through it).
pub fn open_source(src: Arc<dyn Source>) -> Result<Image> {
    OpenCtx::default().open_source(src)
}

use detect::Detected;
pub(crate) use detect::convert as convert_command;
