//! The evidence path (issue 15) on arbitrary bytes: the input is one event
//! log (`.evtx`) read as the first byte says (0: System, 1: Security, else
//! an RDP channel) through `evidence::collect_files`: the chunk plan from
//! the (possibly lying) file header, the newest-first walk, the evtx crate
//! inside `fs::guard`, the decoders and the link table. It must never
//! panic, and stays within its caps.
#![no_main]
use libfuzzer_sys::fuzz_target;
use rdprescue_fuzz::keep_guarded_panics;
use rdprescue::evidence::log::{LogFile, Limits};
use rdprescue::evidence::{collect_files, links, Options};

fuzz_target!(init: keep_guarded_panics(), |data: &[u8]| {
    let Some((&mode, rest)) = data.split_first() else { return };
    let channel = match mode % 3 {
        0 => "System",
        1 => "Security",
        _ => "Microsoft-Windows-RemoteDesktopServices-RdpCoreTS/Operational",
    };
    let limits = Limits { chunks_per_log: 64, records_per_log: 20_000, total_bytes: 8 << 20, kept_per_id: 8, tail_chunks: 8 };
    let opts = Options { days: if mode & 0x80 != 0 { 36500.0 } else { 14.0 }, limits };
    let mut ev = collect_files(&[(channel, "fuzz.evtx".into(), Ok(&rest as &dyn LogFile))], &opts);
    assert_eq!(ev.logs.len(), 1);
    assert!(ev.logs[0].chunks_read <= 64);
    for c in &ev.counts {
        assert!(c.listed <= 8 && c.listed <= c.count);
    }
    links::explain(&mut ev.events, &|c| c.len() % 2 == 0);
    for e in &ev.events {
        let _ = links::confirming(&e.summary, &ev.events);
        assert!(!e.unexplained || e.confirms.is_empty());
    }
});
