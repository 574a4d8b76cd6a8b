//! The undo file of an in-place fix (repair/undo.rs) on arbitrary bytes:
//! `Undo::parse` never panics; a file it accepts writes back to the same
//! bytes-equivalent file (`to_bytes` then `parse` gives it again), and its
//! `plan` against a disk of the recorded size (up to 4 MiB: zeros, then
//! with every range fixed) never panics; on the fixed disk, when the head
//! matches, it restores exactly the ranges whose bytes differ.
#![no_main]
use libfuzzer_sys::fuzz_target;
use rdprescue::image::Disk;
use rdprescue::repair::undo::Undo;

struct Mem(Vec<u8>);
impl Disk for Mem {
    fn read_at(&self, offset: u64, buf: &mut [u8]) -> rdprescue::Result<()> {
        let s = usize::try_from(offset).ok().and_then(|o| self.0.get(o..o.checked_add(buf.len())?));
        let s = s.ok_or_else(|| rdprescue::Error::Usage("past end".into()))?;
        buf.copy_from_slice(s);
        Ok(())
    }
    fn len(&self) -> u64 {
        self.0.len() as u64
    }
    fn sector_size(&self) -> u32 {
        512
    }
}

fuzz_target!(|data: &[u8]| {
    let Ok(u) = Undo::parse(data) else { return };
    let again = Undo::parse(&u.to_bytes().expect("an accepted undo file serializes")).expect("a re-serialized undo file parses");
    assert_eq!(again, u);
    if u.device_size > 4 << 20 {
        return;
    }
    let mut disk = Mem(vec![0; u.device_size as usize]);
    let _ = u.plan(&disk, false);
    for r in &u.ranges {
        disk.0[r.offset as usize..r.offset as usize + r.after.len()].copy_from_slice(&r.after);
    }
    if let Ok(w) = u.plan(&disk, false) {
        let differ = u.ranges.iter().filter(|r| r.before != r.after).count();
        assert_eq!(w.len(), differ);
        for ((o, b), r) in w.iter().zip(u.ranges.iter().filter(|r| r.before != r.after)) {
            assert_eq!((*o, b), (r.offset, &r.before));
        }
    }
});
