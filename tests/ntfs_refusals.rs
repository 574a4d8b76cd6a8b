//! The NTFS in-place write refusals (fs/ntfs.rs `overwrite_plan`) on real
//! files made by ntfs-3g (testdata/make-ntfs-refusals.sh): compressed,
//! encrypted, sparse, resident and `$ATTRIBUTE_LIST` files are refused with a
//! message naming the reason; a plain file maps to the clusters ntfs-3g put it
//! in, checked against the volume bytes.

mod common;
use common::*;
use rdprescue::fs::FileSystem;
use rdprescue::Error;

fn volume(tmp: &std::path::Path) -> (Box<dyn FileSystem>, Vec<u8>) {
    let img = gunzip(&testdata().join("images/ntfs-refusals.img.gz"), tmp);
    let bytes = std::fs::read(&img).unwrap();
    let image = rdprescue::image::open(&img).unwrap();
    (rdprescue::fs::open(image.disk.clone(), 0).unwrap(), bytes)
}

#[test]
fn every_in_place_refusal_on_ntfs_3g_files() {
    let tmp = tempfile::tempdir().unwrap();
    let (fs, _) = volume(tmp.path());
    let change = |path: &str| fs.overwrite_plan(path, &[(0, vec![0x5a; 512])]);
    for (path, why) in [
        ("/comp/compressed.bin", "compressed, encrypted or sparse (attribute flags 0x0001)"),
        ("/encrypted.bin", "compressed, encrypted or sparse (attribute flags 0x4000)"),
        ("/sparse.bin", "compressed, encrypted or sparse (attribute flags 0x8000)"),
        ("/resident.bin", "resident in its MFT record"),
        ("/frag.bin", "$ATTRIBUTE_LIST"),
    ] {
        match change(path) {
            Err(Error::Unsupported { msg, .. }) => assert!(msg.contains(why), "{path}: {msg}"),
            other => panic!("{path}: expected a refusal naming {why:?}, got {other:?}"),
        }
    }
    // The files themselves read fine (the refusal is about writing).
    assert_eq!(fs.read_file("/resident.bin", 1 << 20).unwrap(), vec![b'r'; 100]);
    assert_eq!(fs.read_file("/plain.bin", 1 << 20).unwrap().len(), 16384);
}

/// Reading a file whose `$DATA` spans several MFT records: ntfs-3g's ntfscat
/// reads frag.bin's 2273280 bytes; the ntfs crate 0.4 alone read it as an
/// empty file, without an error (a fragmented hive would have loaded as a
/// 0-byte file): fs/ntfs.rs reads such files from the attribute list itself.
#[test]
fn a_file_under_an_attribute_list_reads_whole() {
    let tmp = tempfile::tempdir().unwrap();
    let (fs, _) = volume(tmp.path());
    let frag = fs.read_file("/frag.bin", 1 << 30).unwrap();
    assert!(frag.len() > 1 << 20 && frag.len() % 1024 == 0, "frag.bin is {} bytes", frag.len());
    assert!(frag.chunks(1024).enumerate().all(|(k, c)| c.iter().all(|b| *b == (k % 251) as u8)), "frag.bin content");
}

#[test]
fn a_plain_file_maps_onto_its_clusters() {
    let tmp = tempfile::tempdir().unwrap();
    let (fs, vol) = volume(tmp.path());
    let content = fs.read_file("/plain.bin", 1 << 20).unwrap();
    assert_eq!(content.len(), 16384);
    // Three ranges, one crossing a cluster boundary: each must land on the
    // volume bytes that hold that part of the file.
    let changes = vec![(0u64, vec![1u8; 512]), (4000, vec![2u8; 300]), (16384 - 512, vec![3u8; 512])];
    let plan = fs.overwrite_plan("/plain.bin", &changes).unwrap();
    // Apply the plan to a copy of the volume: the file read back (through the
    // ntfs crate's data stream, not the run list the plan used) carries the
    // changes and nothing else on the volume moved but those bytes.
    let mut patched = vol.clone();
    let mut written = 0;
    for (at, data) in &plan {
        patched[*at as usize..*at as usize + data.len()].copy_from_slice(data);
        written += data.len();
    }
    assert_eq!(written, 512 + 300 + 512);
    let mut want = content.clone();
    for (off, data) in &changes {
        want[*off as usize..*off as usize + data.len()].copy_from_slice(data);
    }
    let image = rdprescue::image::open_source(rdprescue::image::MemSource::arc("v.img", patched.clone())).unwrap();
    let again = rdprescue::fs::open(image.disk.clone(), 0).unwrap();
    assert_eq!(again.read_file("/plain.bin", 1 << 20).unwrap(), want);
    assert_eq!(again.read_file("/comp/compressed.bin", 1 << 20).err().map(|e| e.to_string().contains("compressed")), Some(true));
    let differing = vol.iter().zip(&patched).filter(|(a, b)| a != b).count();
    assert!(differing <= written && differing > 1000, "{differing} bytes differ");
    // Growing the file is refused.
    assert!(matches!(fs.overwrite_plan("/plain.bin", &[(16384 - 4, vec![0; 8])]), Err(Error::Unsupported { .. })));
}
