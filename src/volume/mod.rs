//! Layer 2: volumes. Reads the partition table (MBR with extended partitions, or
//! GPT with fallback to the backup header) of a [`Disk`] and hands out each
//! partition as a [`Slice`], which is itself a [`Disk`].

pub mod gpt;
pub mod mbr;

use crate::error::{Error, Layer, Result};
use crate::image::Disk;
use serde::Serialize;
use std::sync::Arc;

/// Which kind of partition table the disk has.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum TableKind {
    Mbr,
    Gpt,
    /// No partition table: the whole disk is one volume ("superfloppy").
    None,
}

/// What a partition is for, judged from its type code alone.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Role {
    /// NTFS/exFAT/FAT data partition (MBR 0x07/0x0B/0x0C/..., GPT basic data).
    BasicData,
    /// EFI system partition (GPT type or MBR 0xEF).
    Esp,
    /// Microsoft reserved partition (no file system).
    Msr,
    /// Windows recovery environment (GPT recovery type or MBR 0x27).
    Recovery,
    /// Linux, LVM, swap, ... : not ours.
    Other,
    /// The whole disk, without a partition table.
    WholeDisk,
}

/// One partition (or the whole disk, when there is no partition table).
#[derive(Debug, Clone, Serialize)]
pub struct Partition {
    /// 1-based; MBR logical partitions are numbered from 5 like Linux does.
    pub index: u32,
    /// Byte offset on the virtual disk.
    pub offset: u64,
    /// Size in bytes.
    pub size: u64,
    /// MBR type byte as `0x07`, or the GPT type GUID.
    pub type_id: String,
    /// Human name of the type (e.g. "NTFS/exFAT", "EFI system").
    pub type_name: &'static str,
    pub role: Role,
    /// MBR active flag.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub active: bool,
    /// GPT partition name.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub name: String,
    /// GPT unique partition GUID.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub guid: Option<String>,
}

/// The partition table of a disk.
#[derive(Debug, Clone, Serialize)]
pub struct PartitionTable {
    pub kind: TableKind,
    /// MBR disk signature (`0x1234abcd`) or GPT disk GUID.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub disk_id: Option<String>,
    pub partitions: Vec<Partition>,
    /// Non-fatal oddities (e.g. primary GPT header damaged, backup used).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub warnings: Vec<String>,
}

/// Read the partition table of `disk`.
pub fn read_partitions(disk: &dyn Disk) -> Result<PartitionTable> {
    let ss = disk.sector_size() as u64;
    if disk.len() < ss {
        return Err(Error::corrupt(
            Layer::Volume,
            0,
            format!("disk of {} bytes is smaller than one sector", disk.len()),
        ));
    }
    let mut lba0 = vec![0u8; ss as usize];
    disk.read_at(0, &mut lba0)?;
    let table = match mbr::parse_sector0(&lba0) {
        mbr::Sector0::Protective => gpt::read(disk)?,
        mbr::Sector0::Mbr(entries) => mbr::read(disk, &lba0, entries)?,
        mbr::Sector0::NoTable => PartitionTable {
            kind: TableKind::None,
            disk_id: None,
            partitions: vec![Partition {
                index: 1,
                offset: 0,
                size: disk.len(),
                type_id: String::new(),
                type_name: "whole disk",
                role: Role::WholeDisk,
                active: false,
                name: String::new(),
                guid: None,
            }],
            warnings: vec![],
        },
    };
    for p in &table.partitions {
        let end = p.offset.checked_add(p.size);
        if end.is_none_or(|e| e > disk.len()) {
            return Err(Error::corrupt(
                match table.kind {
                    TableKind::Gpt => Layer::Gpt,
                    _ => Layer::Mbr,
                },
                p.offset,
                format!(
                    "partition {} ({} bytes at {:#x}) extends past the end of the {}-byte disk",
                    p.index,
                    p.size,
                    p.offset,
                    disk.len()
                ),
            ));
        }
    }
    Ok(table)
}

/// A window onto a disk: a partition seen as a disk of its own.
#[derive(Clone)]
pub struct Slice {
    disk: Arc<dyn Disk>,
    start: u64,
    len: u64,
}

impl Slice {
    /// A window of `len` bytes at `start`; the caller guarantees it lies within the disk
    /// (`read_partitions` checks that), and reads are bounds-checked again anyway.
    pub fn new(disk: Arc<dyn Disk>, start: u64, len: u64) -> Self {
        Slice { disk, start, len }
    }
    pub fn of(disk: Arc<dyn Disk>, p: &Partition) -> Self {
        Slice::new(disk, p.offset, p.size)
    }
    /// Byte offset of this slice on the underlying disk.
    pub fn start(&self) -> u64 {
        self.start
    }
}

impl Disk for Slice {
    fn read_at(&self, offset: u64, buf: &mut [u8]) -> Result<()> {
        if offset.checked_add(buf.len() as u64).is_none_or(|e| e > self.len) {
            return Err(Error::corrupt(
                Layer::Volume,
                self.start.saturating_add(offset),
                format!("read of {} bytes past the end of the {}-byte volume", buf.len(), self.len),
            ));
        }
        self.disk.read_at(self.start + offset, buf)
    }
    fn len(&self) -> u64 {
        self.len
    }
    fn sector_size(&self) -> u32 {
        self.disk.sector_size()
    }
}
