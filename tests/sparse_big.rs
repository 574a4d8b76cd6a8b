//! A 127 GiB sparse disk (testdata/make-big.sh) as dynamic VHDX and VHD: the
//! survey and a hive read touch only a few MB of the container file.
//! One test in this binary, because the byte counter is process-wide.

mod common;
use common::*;
use rdprescue::{image, locate};

#[test]
fn big_sparse_images_read_only_what_they_need() {
    let tmp = tempfile::tempdir().unwrap();
    for (name, format) in [("big127-gpt.vhd.gz", image::Format::VhdDynamic), ("big127-gpt.vhdx.gz", image::Format::VhdxDynamic)] {
        let img = gunzip(&testdata().join("images").join(name), tmp.path());
        let before_hash = sha256_file(&img);
        let before = image::bytes_read();
        let opened = image::open(&img).unwrap();
        assert_eq!(opened.info.format, format, "{name}");
        assert_eq!(opened.info.virtual_size, 127 << 30, "{name}");
        let report = locate::survey(&opened).unwrap();
        assert_eq!(report.windows_volumes, vec![3], "{name}");
        assert!(report.partition_table.warnings.is_empty(), "{name}: {:?}", report.partition_table.warnings);
        let win = report.partition_table.partitions.iter().find(|p| p.index == 3).unwrap();
        let fs = locate::mount(&opened, win).unwrap();
        let system = fs.read_file(locate::SYSTEM_HIVE, 1 << 30).unwrap();
        assert!(system.starts_with(b"regf"));
        // A read at the very end of the 127 GiB disk (backup GPT) works too.
        let mut last = [0u8; 512];
        opened.disk.read_at(opened.disk.len() - 512, &mut last).unwrap();
        assert_eq!(&last[..8], b"EFI PART", "{name}: backup GPT header at the last LBA");
        let used = image::bytes_read() - before;
        eprintln!("{name}: open + survey of 4 volumes + SYSTEM hive read {used} bytes of a {} byte file", std::fs::metadata(&img).unwrap().len());
        assert!(used < 8 << 20, "{name}: read {used} bytes");
        assert_eq!(sha256_file(&img), before_hash);
    }
}
