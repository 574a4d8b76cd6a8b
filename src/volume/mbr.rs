//! Master boot record, including extended partitions (EBR chains).

use super::{Partition, PartitionTable, Role, TableKind};
use crate::bytes::le_u32;
use crate::error::{Error, Layer, Result};
use crate::image::Disk;

/// A raw MBR partition entry.
#[derive(Debug, Clone, Copy)]
pub struct Entry {
    pub status: u8,
    pub ptype: u8,
    pub lba_start: u32,
    pub sectors: u32,
}

pub enum Sector0 {
    /// A protective MBR (type 0xEE): the disk is GPT.
    Protective,
    Mbr([Entry; 4]),
    /// No 0x55AA signature, or no entries at all.
    NoTable,
}

const MAX_LOGICAL: usize = 128;

fn entries(sector: &[u8]) -> [Entry; 4] {
    std::array::from_fn(|i| {
        let e = 0x1BE + 16 * i;
        Entry {
            status: sector[e],
            ptype: sector[e + 4],
            lba_start: le_u32(sector, e + 8),
            sectors: le_u32(sector, e + 12),
        }
    })
}

/// Classify sector 0 (which must be at least 512 bytes).
pub fn parse_sector0(sector: &[u8]) -> Sector0 {
    if sector.len() < 512 || sector[510] != 0x55 || sector[511] != 0xAA {
        return Sector0::NoTable;
    }
    let e = entries(sector);
    if e.iter().any(|x| x.ptype == 0xEE) {
        return Sector0::Protective;
    }
    // A volume boot record (NTFS/FAT boot sector) also ends in 0x55AA; its
    // "entries" are boot code. Treat the disk as a superfloppy when sector 0 looks
    // like a file-system boot sector and holds no plausible table.
    let is_vbr = &sector[3..11] == b"NTFS    " || &sector[3..11] == b"-FVE-FS-" || &sector[82..87] == b"FAT32" || &sector[54..59] == b"FAT16" || &sector[54..59] == b"FAT12";
    let used: Vec<_> = e.iter().filter(|x| x.ptype != 0 && x.sectors != 0).collect();
    if used.is_empty() || (is_vbr && used.iter().any(|x| x.status & 0x7F != 0)) {
        return Sector0::NoTable;
    }
    Sector0::Mbr(e)
}

pub fn type_name(t: u8) -> (&'static str, Role) {
    match t {
        0x07 => ("NTFS/exFAT", Role::BasicData),
        0x17 => ("hidden NTFS", Role::BasicData),
        0x27 => ("Windows RE (hidden NTFS)", Role::Recovery),
        0x01 => ("FAT12", Role::BasicData),
        0x04 | 0x06 | 0x0E => ("FAT16", Role::BasicData),
        0x0B | 0x0C => ("FAT32", Role::BasicData),
        0x1B | 0x1C => ("hidden FAT32", Role::BasicData),
        0x05 | 0x0F | 0x85 => ("extended", Role::Other),
        0xEF => ("EFI system", Role::Esp),
        0x42 => ("Windows dynamic disk (LDM)", Role::Other),
        0x82 => ("Linux swap", Role::Other),
        0x83 => ("Linux", Role::Other),
        0x8E => ("Linux LVM", Role::Other),
        _ => ("unknown", Role::Other),
    }
}

fn is_extended(t: u8) -> bool {
    matches!(t, 0x05 | 0x0F | 0x85)
}

fn partition(index: u32, ss: u64, base_lba: u64, e: &Entry) -> Partition {
    let (type_name, role) = type_name(e.ptype);
    Partition {
        index,
        offset: (base_lba + e.lba_start as u64) * ss,
        size: e.sectors as u64 * ss,
        type_id: format!("{:#04x}", e.ptype),
        type_name,
        role,
        active: e.status & 0x80 != 0,
        name: String::new(),
        guid: None,
    }
}

/// Read an MBR whose sector 0 is `lba0` and whose primary entries are `primary`.
pub fn read(disk: &dyn Disk, lba0: &[u8], primary: [Entry; 4]) -> Result<PartitionTable> {
    let ss = disk.sector_size() as u64;
    let mut parts = Vec::new();
    let mut warnings = Vec::new();
    let mut extended = None;
    for (i, e) in primary.iter().enumerate() {
        if e.ptype == 0 || e.sectors == 0 {
            continue;
        }
        if e.status & 0x7F != 0 {
            warnings.push(format!("MBR entry {} has invalid status byte {:#04x}", i + 1, e.status));
        }
        if is_extended(e.ptype) {
            if extended.is_some() {
                warnings.push(format!("MBR entry {}: second extended partition ignored", i + 1));
            } else {
                extended = Some(*e);
            }
        }
        parts.push(partition(i as u32 + 1, ss, 0, e));
    }
    if let Some(ext) = extended {
        read_logical(disk, ext, &mut parts)?;
    }
    Ok(PartitionTable {
        kind: TableKind::Mbr,
        disk_id: Some(format!("{:#010x}", le_u32(lba0, 0x1B8))),
        partitions: parts,
        warnings,
    })
}

/// Walk the EBR chain of an extended partition. Each EBR holds one logical
/// partition (relative to that EBR) and a link to the next EBR (relative to the
/// start of the extended partition).
fn read_logical(disk: &dyn Disk, ext: Entry, parts: &mut Vec<Partition>) -> Result<()> {
    let ss = disk.sector_size() as u64;
    let ext_start = ext.lba_start as u64;
    let ext_end = ext_start + ext.sectors as u64;
    let mut ebr_lba = ext_start;
    let mut seen = Vec::new();
    let mut sector = vec![0u8; ss as usize];
    let mut index = 5;
    loop {
        if seen.contains(&ebr_lba) {
            return Err(Error::corrupt(Layer::Mbr, ebr_lba * ss, "extended partition chain loops"));
        }
        if seen.len() >= MAX_LOGICAL {
            return Err(Error::corrupt(
                Layer::Mbr,
                ebr_lba * ss,
                format!("more than {MAX_LOGICAL} logical partitions"),
            ));
        }
        if ebr_lba >= ext_end || (ebr_lba + 1) * ss > disk.len() {
            return Err(Error::corrupt(
                Layer::Mbr,
                ebr_lba * ss,
                "extended boot record lies outside the extended partition or the disk",
            ));
        }
        seen.push(ebr_lba);
        disk.read_at(ebr_lba * ss, &mut sector)?;
        if sector[510] != 0x55 || sector[511] != 0xAA {
            return Err(Error::corrupt(Layer::Mbr, ebr_lba * ss + 510, "extended boot record lacks the 0x55AA signature"));
        }
        let e = entries(&sector);
        if e[0].ptype != 0 && e[0].sectors != 0 {
            let p = partition(index, ss, ebr_lba, &e[0]);
            if p.offset + p.size > ext_end * ss {
                return Err(Error::corrupt(
                    Layer::Mbr,
                    ebr_lba * ss + 0x1BE,
                    format!("logical partition {index} extends past its extended partition"),
                ));
            }
            parts.push(p);
            index += 1;
        }
        if !is_extended(e[1].ptype) || e[1].sectors == 0 {
            return Ok(());
        }
        ebr_lba = ext_start + e[1].lba_start as u64;
    }
}
