//! GUID partition table: primary header at LBA 1, backup header as fallback.

use super::{Partition, PartitionTable, Role, TableKind};
use crate::bytes::{guid, le_u32, le_u64, utf16le};
use crate::error::{Error, Layer, Result};
use crate::image::Disk;
use uuid::{uuid, Uuid};

pub const BASIC_DATA: Uuid = uuid!("EBD0A0A2-B9E5-4433-87C0-68B6B72699C7");
pub const ESP: Uuid = uuid!("C12A7328-F81F-11D2-BA4B-00A0C93EC93B");
pub const MSR: Uuid = uuid!("E3C9E316-0B5C-4DB8-817D-F92DF00215AE");
pub const RECOVERY: Uuid = uuid!("DE94BBA4-06D1-4D40-A16A-BFD50179D6AC");
pub const LDM_METADATA: Uuid = uuid!("5808C8AA-7E8F-42E0-85D2-E1E90434CFB3");
pub const LDM_DATA: Uuid = uuid!("AF9B60A0-1431-4F62-BC68-3311714A69AD");

const CRC32: crc::Crc<u32> = crc::Crc::<u32>::new(&crc::CRC_32_ISO_HDLC);

/// Upper bound on the entry array we are willing to read (the usual is 16 KiB).
const MAX_ARRAY_BYTES: u64 = 1 << 20;

pub fn type_name(t: &Uuid) -> (&'static str, Role) {
    match *t {
        BASIC_DATA => ("Microsoft basic data", Role::BasicData),
        ESP => ("EFI system", Role::Esp),
        MSR => ("Microsoft reserved", Role::Msr),
        RECOVERY => ("Windows recovery", Role::Recovery),
        LDM_METADATA => ("LDM metadata", Role::Other),
        LDM_DATA => ("LDM data", Role::Other),
        _ => ("unknown", Role::Other),
    }
}

struct Header {
    disk_guid: Uuid,
    entries_lba: u64,
    count: u32,
    entry_size: u32,
    entries_crc: u32,
    first_usable: u64,
    last_usable: u64,
}

fn parse_header(sector: &[u8], lba: u64, ss: u64, disk_sectors: u64) -> Result<Header> {
    let off = lba * ss;
    if &sector[0..8] != b"EFI PART" {
        return Err(Error::corrupt(Layer::Gpt, off, "no 'EFI PART' signature"));
    }
    let hsize = le_u32(sector, 12) as usize;
    if !(92..=sector.len()).contains(&hsize) {
        return Err(Error::corrupt(Layer::Gpt, off + 12, format!("header size {hsize} out of range")));
    }
    let mut h = sector[..hsize].to_vec();
    h[16..20].fill(0);
    let want = le_u32(sector, 16);
    let got = CRC32.checksum(&h);
    if want != got {
        return Err(Error::corrupt(
            Layer::Gpt,
            off + 16,
            format!("header CRC32 mismatch (stored {want:#010x}, computed {got:#010x})"),
        ));
    }
    if le_u64(sector, 24) != lba {
        return Err(Error::corrupt(Layer::Gpt, off + 24, format!("header says it lives at LBA {}, found at LBA {lba}", le_u64(sector, 24))));
    }
    let hdr = Header {
        disk_guid: guid(sector, 56),
        entries_lba: le_u64(sector, 72),
        count: le_u32(sector, 80),
        entry_size: le_u32(sector, 84),
        entries_crc: le_u32(sector, 88),
        first_usable: le_u64(sector, 40),
        last_usable: le_u64(sector, 48),
    };
    if hdr.entry_size < 128 || hdr.entry_size % 8 != 0 || hdr.entry_size > 4096 {
        return Err(Error::corrupt(Layer::Gpt, off + 84, format!("partition entry size {} invalid", hdr.entry_size)));
    }
    let bytes = hdr.count as u64 * hdr.entry_size as u64;
    if bytes > MAX_ARRAY_BYTES {
        return Err(Error::corrupt(Layer::Gpt, off + 80, format!("{} partition entries of {} bytes is implausibly large", hdr.count, hdr.entry_size)));
    }
    if hdr.entries_lba >= disk_sectors || hdr.entries_lba + bytes.div_ceil(ss) > disk_sectors {
        return Err(Error::corrupt(Layer::Gpt, off + 72, format!("partition entry array at LBA {} lies past the end of the disk", hdr.entries_lba)));
    }
    Ok(hdr)
}

fn read_header_at(disk: &dyn Disk, lba: u64) -> Result<(Header, Vec<u8>)> {
    let ss = disk.sector_size() as u64;
    let sectors = disk.len() / ss;
    let mut sector = vec![0u8; ss as usize];
    disk.read_at(lba * ss, &mut sector)?;
    let hdr = parse_header(&sector, lba, ss, sectors)?;
    let mut array = vec![0u8; (hdr.count as u64 * hdr.entry_size as u64) as usize];
    disk.read_at(hdr.entries_lba * ss, &mut array)?;
    let got = CRC32.checksum(&array);
    if got != hdr.entries_crc {
        return Err(Error::corrupt(
            Layer::Gpt,
            hdr.entries_lba * ss,
            format!("partition entry array CRC32 mismatch (stored {:#010x}, computed {got:#010x})", hdr.entries_crc),
        ));
    }
    Ok((hdr, array))
}

/// Read the GPT of `disk`, falling back to the backup header at the last LBA.
pub fn read(disk: &dyn Disk) -> Result<PartitionTable> {
    let ss = disk.sector_size() as u64;
    let last_lba = (disk.len() / ss).saturating_sub(1);
    let mut warnings = Vec::new();
    let (hdr, array) = match read_header_at(disk, 1) {
        Ok(x) => x,
        Err(primary_err) => match read_header_at(disk, last_lba) {
            Ok(x) => {
                warnings.push(format!("primary GPT unusable ({primary_err}); using the backup header at LBA {last_lba}"));
                x
            }
            Err(_) => return Err(primary_err),
        },
    };
    let mut parts = Vec::new();
    for i in 0..hdr.count as usize {
        let e = &array[i * hdr.entry_size as usize..][..hdr.entry_size as usize];
        let ty = guid(e, 0);
        if ty.is_nil() {
            continue;
        }
        let off = hdr.entries_lba * ss + (i as u64) * hdr.entry_size as u64;
        let start = le_u64(e, 32);
        let end = le_u64(e, 40);
        if end < start {
            return Err(Error::corrupt(Layer::Gpt, off + 32, format!("partition {} ends (LBA {end}) before it starts (LBA {start})", i + 1)));
        }
        if start < hdr.first_usable || end > hdr.last_usable {
            warnings.push(format!("partition {} lies outside the usable LBA range {}..={}", i + 1, hdr.first_usable, hdr.last_usable));
        }
        let (type_name, role) = type_name(&ty);
        let (offset, size) = match (start.checked_mul(ss), (end - start).checked_add(1).and_then(|n| n.checked_mul(ss))) {
            (Some(o), Some(s)) => (o, s),
            _ => return Err(Error::corrupt(Layer::Gpt, off + 32, format!("partition {} has an absurd LBA range", i + 1))),
        };
        parts.push(Partition {
            index: i as u32 + 1,
            offset,
            size,
            type_id: ty.hyphenated().to_string(),
            type_name,
            role,
            active: false,
            name: utf16le(&e[56..128]),
            guid: Some(guid(e, 16).hyphenated().to_string()),
        });
    }
    Ok(PartitionTable {
        kind: TableKind::Gpt,
        disk_id: Some(hdr.disk_guid.hyphenated().to_string()),
        partitions: parts,
        warnings,
    })
}
