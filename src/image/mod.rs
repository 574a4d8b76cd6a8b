//! Layer 1: image containers.
//!
//! A container turns a file (or block device) into a flat virtual disk. Every
//! container implements [`Disk`]; everything above this layer only ever sees that
//! trait. Formats are detected by signature, never by file extension.

mod file;
pub mod write;
pub mod raw;
pub mod vhd;
pub mod vhdx;

pub use file::{bytes_read, FileSource};

use crate::error::{Error, Layer, Result};
use serde::Serialize;
use std::path::{Path, PathBuf};

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
    pub disk: std::sync::Arc<dyn Disk>,
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

/// State carried while a differencing chain is opened, to detect loops.
#[derive(Default)]
pub struct OpenCtx {
    visited: Vec<PathBuf>,
}

impl OpenCtx {
    /// Open `path` as the parent of a child image. `expected` is the name the
    /// child records (for the error message); `candidates` are tried in order.
    pub fn open_parent(
        &mut self,
        layer: Layer,
        offset: u64,
        expected: &str,
        candidates: &[PathBuf],
    ) -> Result<Image> {
        for cand in candidates {
            if cand.is_file() || is_block_device(cand) {
                return self.open(cand);
            }
        }
        Err(Error::MissingParent {
            layer,
            offset,
            expected: expected.to_string(),
            tried: if candidates.is_empty() {
                "no usable locator".into()
            } else {
                candidates
                    .iter()
                    .map(|p| p.display().to_string())
                    .collect::<Vec<_>>()
                    .join(", ")
            },
        })
    }

    /// Open an image, detecting its format by signature.
    pub fn open(&mut self, path: &Path) -> Result<Image> {
        let canon = path.canonicalize().unwrap_or_else(|_| path.to_path_buf());
        if self.visited.contains(&canon) {
            return Err(Error::corrupt(
                Layer::Raw,
                0,
                format!("differencing chain loops back to {}", path.display()),
            ));
        }
        if self.visited.len() >= MAX_CHAIN_DEPTH {
            return Err(Error::corrupt(
                Layer::Raw,
                0,
                format!("differencing chain deeper than {MAX_CHAIN_DEPTH} at {}", path.display()),
            ));
        }
        self.visited.push(canon);
        self.open_source(FileSource::open(path)?)
    }

    /// Open an already opened source (a file, or bytes in memory).
    pub fn open_source(&mut self, src: FileSource) -> Result<Image> {
        match detect(&src)? {
            Detected::Vhdx => vhdx::open(src, self),
            Detected::Vhd => vhd::open(src, self),
            Detected::Raw => raw::open(src),
        }
    }
}

/// Open any supported image (raw file, block device, VHD, VHDX) read-only.
pub fn open(path: &Path) -> Result<Image> {
    OpenCtx::default().open(path)
}

enum Detected {
    Raw,
    Vhd,
    Vhdx,
}

fn detect(src: &FileSource) -> Result<Detected> {
    let len = src.len();
    let mut head = [0u8; 8];
    if len >= 8 {
        src.read_at(Layer::Raw, 0, &mut head)?;
        if &head == b"vhdxfile" {
            return Ok(Detected::Vhdx);
        }
        if &head == b"conectix" {
            return Ok(Detected::Vhd);
        }
    }
    if len >= 512 {
        let mut foot = [0u8; 8];
        src.read_at(Layer::Raw, len - 512, &mut foot)?;
        if &foot == b"conectix" {
            return Ok(Detected::Vhd);
        }
    }
    Ok(Detected::Raw)
}

fn is_block_device(p: &Path) -> bool {
    #[cfg(unix)]
    {
        use std::os::unix::fs::FileTypeExt;
        std::fs::metadata(p).map(|m| m.file_type().is_block_device()).unwrap_or(false)
    }
    #[cfg(not(unix))]
    {
        let _ = p;
        false
    }
}
