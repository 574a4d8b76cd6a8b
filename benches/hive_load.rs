//! Load + transaction-log recovery of the 12.8 MB dirty Windows 10 SYSTEM hive
//! (../shared/data/hives/win10-1709-dirty, LOG1 2107..2110 + LOG2 2111..2130),
//! and of a clean hive for comparison. Run: `cargo bench --bench hive_load`.

use criterion::{criterion_group, criterion_main, Criterion};
use std::path::Path;

fn read(p: &Path) -> Option<Vec<u8>> {
    std::fs::read(p).ok()
}

fn bench(c: &mut Criterion) {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/data/hives");
    let dirty = dir.join("win10-1709-dirty");
    let (Some(primary), Some(log1), Some(log2)) = (read(&dirty.join("SYSTEM")), read(&dirty.join("SYSTEM.LOG1")), read(&dirty.join("SYSTEM.LOG2"))) else {
        eprintln!("NOTICE: {} absent; nothing to benchmark", dirty.display());
        return;
    };
    c.bench_function("load+recover win10-1709-dirty SYSTEM (12.8 MB, 24 log entries)", |b| {
        b.iter(|| {
            let h = rdprescue::hive::load(primary.clone(), Some(log1.clone()), Some(log2.clone())).unwrap();
            assert_eq!(h.report.recovered_sequence, Some(2130));
            h
        })
    });
    if let Some(clean) = read(&dir.join("win10-19041/SYSTEM")) {
        c.bench_function("load win10-19041 SYSTEM (clean)", |b| b.iter(|| rdprescue::hive::load(clean.clone(), None, None).unwrap()));
    }
}

criterion_group! {
    name = benches;
    config = Criterion::default().sample_size(30);
    targets = bench
}
criterion_main!(benches);
