//! Audit baseline TOML (rdp/baseline.rs) on arbitrary text: `Baseline::parse`
//! never panics; a baseline it accepts is applied to the inspection of the
//! repo's SYSTEM and SOFTWARE hives, and what `apply` hands back is checked:
//! findings sorted by severity with no `info` among them, notes all `info`,
//! no ignored check left, the ignored count at most the findings before.
#![no_main]
use libfuzzer_sys::fuzz_target;
use rdprescue::hive::source::HiveKind;
use rdprescue::hive::tree::Hive;
use rdprescue::rdp::{baseline::Baseline, HiveSet, Severity};

fn hives() -> HiveSet {
    let load = |kind, b: &[u8]| (kind, Hive::new("H", rdprescue::hive::load(b.to_vec(), None, None).unwrap()));
    HiveSet {
        hives: vec![
            load(HiveKind::System, include_bytes!("../../testdata/hives/SYSTEM")),
            load(HiveKind::Software, include_bytes!("../../testdata/hives/SOFTWARE")),
        ],
    }
}

thread_local! {
    static HIVES: HiveSet = hives();
}

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    let Ok(b) = Baseline::parse(text) else { return };
    HIVES.with(|h| {
        let mut ins = rdprescue::rdp::inspect(h);
        let before = ins.findings.len();
        let ignored = b.apply(h, &mut ins);
        assert!(ignored <= before);
        assert!(ins.findings.windows(2).all(|w| w[0].severity <= w[1].severity), "findings out of order");
        assert!(ins.findings.iter().all(|f| f.severity != Severity::Info));
        assert!(ins.notes.iter().all(|f| f.severity == Severity::Info));
        for id in &b.ignore {
            assert!(!ins.findings.iter().chain(&ins.notes).any(|f| f.check == *id), "ignored {id} still reported");
        }
        let _ = b.fails(&ins.findings);
    });
});
