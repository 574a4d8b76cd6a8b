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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::image::{raw, MemSource};

    const CRC32: crc::Crc<u32> = crc::Crc::<u32>::new(&crc::CRC_32_ISO_HDLC);

    fn disk(bytes: Vec<u8>) -> Arc<dyn Disk> {
        raw::open(MemSource::arc("t.img", bytes)).unwrap().disk
    }

    fn mbr_entry(s: &mut [u8], slot: usize, status: u8, ty: u8, lba: u32, count: u32) {
        let e = 0x1BE + 16 * slot;
        s[e] = status;
        s[e + 4] = ty;
        s[e + 8..e + 12].copy_from_slice(&lba.to_le_bytes());
        s[e + 12..e + 16].copy_from_slice(&count.to_le_bytes());
        s[510] = 0x55;
        s[511] = 0xAA;
    }

    /// 8 MiB disk: primary 1 (active NTFS), primary 2 extended holding two logicals.
    fn extended_disk() -> Vec<u8> {
        let mut d = vec![0u8; 8 << 20];
        d[0x1B8..0x1BC].copy_from_slice(&0xdeadbeefu32.to_le_bytes());
        mbr_entry(&mut d[..512], 0, 0x80, 0x07, 2048, 2048);
        mbr_entry(&mut d[..512], 1, 0, 0x0F, 4096, 8192);
        // EBR 1 at LBA 4096: logical at +63, link to next EBR at ext+4096.
        mbr_entry(&mut d[4096 * 512..][..512], 0, 0, 0x07, 63, 1000);
        mbr_entry(&mut d[4096 * 512..][..512], 1, 0, 0x05, 4096, 2000);
        // EBR 2 at LBA 8192.
        mbr_entry(&mut d[8192 * 512..][..512], 0, 0, 0x0C, 63, 1000);
        d
    }

    #[test]
    fn mbr_with_logical_partitions() {
        let t = read_partitions(disk(extended_disk()).as_ref()).unwrap();
        assert_eq!(t.kind, TableKind::Mbr);
        assert_eq!(t.disk_id.as_deref(), Some("0xdeadbeef"));
        let got: Vec<_> = t.partitions.iter().map(|p| (p.index, p.offset / 512, p.size / 512, p.type_id.as_str(), p.active)).collect();
        assert_eq!(
            got,
            vec![(1, 2048, 2048, "0x07", true), (2, 4096, 8192, "0x0f", false), (5, 4159, 1000, "0x07", false), (6, 8255, 1000, "0x0c", false)]
        );
    }

    #[test]
    fn looping_ebr_chain_is_an_error() {
        let mut d = extended_disk();
        // EBR 2 links back to EBR 1.
        mbr_entry(&mut d[8192 * 512..][..512], 1, 0, 0x05, 0, 2000);
        let e = read_partitions(disk(d).as_ref()).unwrap_err().to_string();
        assert!(e.contains("volume/mbr") && e.contains("loops") && e.contains("offset 0x"), "{e}");
    }

    #[test]
    fn partition_past_end_of_disk_is_an_error() {
        let mut d = vec![0u8; 1 << 20];
        mbr_entry(&mut d[..512], 0, 0, 0x07, 2048, 1 << 20);
        let e = read_partitions(disk(d).as_ref()).unwrap_err().to_string();
        assert!(e.contains("past the end") && e.contains("offset 0x100000"), "{e}");
    }

    #[test]
    fn no_signature_means_whole_disk() {
        let t = read_partitions(disk(vec![0u8; 4096]).as_ref()).unwrap();
        assert_eq!(t.kind, TableKind::None);
        assert_eq!(t.partitions.len(), 1);
        assert_eq!(t.partitions[0].role, Role::WholeDisk);
    }

    fn guid_bytes(u: uuid::Uuid) -> [u8; 16] {
        u.to_bytes_le()
    }

    /// A 4 MiB GPT disk with an ESP and a basic data partition, both headers valid.
    fn gpt_disk() -> Vec<u8> {
        let ss = 512usize;
        let mut d = vec![0u8; 4 << 20];
        let sectors = (d.len() / ss) as u64;
        mbr_entry(&mut d[..512], 0, 0, 0xEE, 1, (sectors - 1) as u32);
        let mut array = vec![0u8; 128 * 128];
        let parts = [(gpt::ESP, 34u64, 2047u64, "EFI system partition"), (gpt::BASIC_DATA, 2048, 6143, "Basic data partition")];
        for (i, (ty, s, e, name)) in parts.iter().enumerate() {
            let a = &mut array[i * 128..][..128];
            a[0..16].copy_from_slice(&guid_bytes(*ty));
            a[16..32].copy_from_slice(&guid_bytes(uuid::Uuid::from_u128(0x1234 + i as u128)));
            a[32..40].copy_from_slice(&s.to_le_bytes());
            a[40..48].copy_from_slice(&e.to_le_bytes());
            for (k, u) in name.encode_utf16().enumerate() {
                a[56 + 2 * k..58 + 2 * k].copy_from_slice(&u.to_le_bytes());
            }
        }
        let array_crc = CRC32.checksum(&array);
        for (my, alt, entries) in [(1u64, sectors - 1, 2u64), (sectors - 1, 1, sectors - 33)] {
            d[entries as usize * ss..][..array.len()].copy_from_slice(&array);
            let mut h = [0u8; 92];
            h[0..8].copy_from_slice(b"EFI PART");
            h[8..12].copy_from_slice(&0x10000u32.to_le_bytes());
            h[12..16].copy_from_slice(&92u32.to_le_bytes());
            h[24..32].copy_from_slice(&my.to_le_bytes());
            h[32..40].copy_from_slice(&alt.to_le_bytes());
            h[40..48].copy_from_slice(&34u64.to_le_bytes());
            h[48..56].copy_from_slice(&(sectors - 34).to_le_bytes());
            h[56..72].copy_from_slice(&guid_bytes(uuid::Uuid::from_u128(0xabcdef)));
            h[72..80].copy_from_slice(&entries.to_le_bytes());
            h[80..84].copy_from_slice(&128u32.to_le_bytes());
            h[84..88].copy_from_slice(&128u32.to_le_bytes());
            h[88..92].copy_from_slice(&array_crc.to_le_bytes());
            let c = CRC32.checksum(&h);
            h[16..20].copy_from_slice(&c.to_le_bytes());
            d[my as usize * ss..][..92].copy_from_slice(&h);
        }
        d
    }

    #[test]
    fn gpt_partitions() {
        let t = read_partitions(disk(gpt_disk()).as_ref()).unwrap();
        assert_eq!(t.kind, TableKind::Gpt);
        assert!(t.warnings.is_empty(), "{:?}", t.warnings);
        assert_eq!(t.partitions.len(), 2);
        assert_eq!(t.partitions[0].role, Role::Esp);
        assert_eq!(t.partitions[0].name, "EFI system partition");
        assert_eq!((t.partitions[1].offset, t.partitions[1].size), (2048 * 512, 4096 * 512));
        assert_eq!(t.partitions[1].role, Role::BasicData);
        assert_eq!(t.partitions[1].type_id, "ebd0a0a2-b9e5-4433-87c0-68b6b72699c7");
    }

    #[test]
    fn gpt_falls_back_to_backup_header() {
        let mut d = gpt_disk();
        d[512 + 30] ^= 0x40; // corrupt the primary header
        let t = read_partitions(disk(d).as_ref()).unwrap();
        assert_eq!(t.partitions.len(), 2);
        assert!(t.warnings[0].contains("backup"), "{:?}", t.warnings);
    }

    #[test]
    fn gpt_both_headers_bad_is_an_error() {
        let mut d = gpt_disk();
        let last = d.len() - 512;
        d[512 + 30] ^= 0x40;
        d[last + 30] ^= 0x40;
        let e = read_partitions(disk(d).as_ref()).unwrap_err().to_string();
        assert!(e.contains("volume/gpt") && e.contains("CRC32"), "{e}");
    }

    #[test]
    fn gpt_huge_entry_array_is_rejected() {
        let mut d = gpt_disk();
        for hdr in [512usize, d.len() - 512] {
            d[hdr + 80..hdr + 84].copy_from_slice(&0x00FF_FFFFu32.to_le_bytes());
            d[hdr + 16..hdr + 20].fill(0);
            let c = CRC32.checksum(&d[hdr..hdr + 92]);
            d[hdr + 16..hdr + 20].copy_from_slice(&c.to_le_bytes());
        }
        let e = read_partitions(disk(d).as_ref()).unwrap_err().to_string();
        assert!(e.contains("implausibly large"), "{e}");
    }
}
