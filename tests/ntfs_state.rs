//! The NTFS volume facts `NtfsFs` records when it opens a volume (cluster size,
//! volume size) and what is derived from them (free space through `$Bitmap`),
//! checked against the boot sector read by hand (BPB: bytes per sector at 0x0B,
//! sectors per cluster at 0x0D, total sectors at 0x28) on the demo image's
//! Windows volume (partition 3 in testdata/fixtures.json).

mod common;
use common::*;
use rdprescue::fs::FsKind;
use rdprescue::machine::Machine;

#[test]
fn cluster_size_and_size_come_from_the_boot_sector() {
    let m = Machine::open(&testdata().join("demo.vhdx")).unwrap();
    let part = m.survey().unwrap().partition_table.partitions.iter().find(|p| p.index == 3).unwrap().clone();
    let mut boot = [0u8; 512];
    m.image().unwrap().disk.read_at(part.offset, &mut boot).unwrap();
    assert_eq!(&boot[3..11], b"NTFS    ");
    let bps = u64::from(u16::from_le_bytes([boot[0x0B], boot[0x0C]]));
    let spc = u64::from(boot[0x0D]);
    assert!(spc > 0 && spc < 0x80, "sectors per cluster {spc:#x} (the demo uses a plain count)");
    let total = u64::from_le_bytes(boot[0x28..0x30].try_into().unwrap());

    let fs = m.mount(3).unwrap();
    assert_eq!(fs.kind(), FsKind::Ntfs);
    let st = fs.state();
    assert_eq!(u64::from(st.cluster_size), bps * spc, "cluster size");
    assert_eq!(st.size, total * bps, "volume size");
    assert!(st.size <= part.size);

    // Free space: a whole number of clusters, some but not all of the volume
    // (the demo volume holds a few MiB of files).
    let free = fs.free_bytes().unwrap().expect("NTFS reports free space");
    assert_eq!(free % (bps * spc), 0);
    assert!(free > 0 && free < st.size, "free {free} of {}", st.size);
}
