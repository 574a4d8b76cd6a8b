//! The FAT overwrite plan (`FileSystem::overwrite_plan` of `FatFs`) on the EFI
//! system partition of the demo image (gen2-gpt): the planned volume writes, put
//! on a copy of the volume by hand, must make the file hold exactly the new bytes
//! (read back by mtools' `mtype` when installed, and by our reader), leave the
//! file's size and every other byte of it alone, and stay inside the volume;
//! a change past the file's end is refused. The input is never written.

mod common;
use common::*;
use rdprescue::fs::FsKind;
use rdprescue::machine::Machine;
use std::process::Command;

const BCD: &str = r"\EFI\Microsoft\Boot\BCD";

#[test]
fn planned_writes_change_exactly_the_file_bytes() {
    let tmp = tempfile::tempdir().unwrap();
    let demo = testdata().join("demo.vhdx");
    let before = sha256_file(&demo);
    let m = Machine::open(&demo).unwrap();
    let part = m.survey().unwrap().partition_table.partitions.iter().find(|p| p.index == 1).unwrap().clone();
    let fs = m.mount(1).unwrap();
    assert_eq!(fs.kind(), FsKind::Fat32, "partition 1 is the FAT32 ESP");
    let old = fs.read_file(BCD, 1 << 20).unwrap();
    assert_eq!(old.len(), 12288, "fixtures.json: the ESP's BCD is 12288 bytes");

    // Two changes: one straddling cluster boundaries, one at the very end.
    let a: Vec<u8> = (0..3000u32).map(|i| (i % 251) as u8 ^ 0xA5).collect();
    let b = vec![0x5Au8; 16];
    let changes = vec![(1000u64, a.clone()), (old.len() as u64 - 16, b.clone())];
    let writes = fs.overwrite_plan(BCD, &changes).unwrap();
    assert!(!writes.is_empty());
    let mut want = old.clone();
    want[1000..4000].copy_from_slice(&a);
    want[old.len() - 16..].copy_from_slice(&b);

    // Put the writes on a copy of the volume.
    let mut vol = vec![0u8; part.size as usize];
    m.image().unwrap().disk.read_at(part.offset, &mut vol).unwrap();
    let mut written = 0usize;
    for (vol_off, data) in &writes {
        assert!(vol_off + data.len() as u64 <= part.size, "a write at {vol_off:#x} leaves the volume");
        let at = *vol_off as usize;
        vol[at..at + data.len()].copy_from_slice(data);
        written += data.len();
    }
    assert!(written >= 3016, "only {written} bytes planned");
    let copy = tmp.path().join("esp.img");
    std::fs::write(&copy, &vol).unwrap();
    drop(vol);

    let esp = rdprescue::fs::open(rdprescue::image::open(&copy).unwrap().disk, 0).unwrap();
    let got = esp.read_file(BCD, 1 << 20).unwrap();
    assert!(got == want, "our reader: the planned writes do not give the new file");
    if need_tool("mtype") {
        let o = Command::new("mtype").arg("-i").arg(&copy).arg("::/EFI/Microsoft/Boot/BCD").out().unwrap();
        assert!(o.status.success(), "mtype: {}", String::from_utf8_lossy(&o.stderr));
        assert!(o.stdout == want, "mtools: the planned writes do not give the new file");
    }
    // Past the end: refused, nothing planned.
    let e = fs.overwrite_plan(BCD, &[(old.len() as u64 - 4, vec![1; 8])]).err().expect("growing the file was planned").to_string();
    assert!(e.contains("would grow"), "{e}");
    assert_eq!(sha256_file(&demo), before, "input unchanged");
}
