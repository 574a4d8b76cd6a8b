//! Hive loading and transaction-log recovery on arbitrary primary/LOG1/LOG2
//! bytes, then a bounded nt-hive walk of whatever `load` returns.
//!
//! Input layout: `[u32 LE primary length][u32 LE log1 length][primary][log1][log2]`;
//! lengths (bit 31 masked off) are clamped to what is there; an empty log1 or
//! log2 is passed as None. When bit 31 of the primary length is set, the
//! base-block checksums and the HvLE Marvin32 hashes are recomputed first, so
//! that mutated log entries get past their integrity checks and reach the code
//! that applies them.
//!
//! The same input is also loaded paged (`load_paged` over the primary and
//! the logs read on demand through readers that return short pieces, as
//! `inspect` loads an image's hives): it must fail exactly when `load`
//! fails, and give the same report (state, notes, sequence numbers) and,
//! byte for byte, the same image; and so must the paged load with the logs
//! parsed ahead on a second thread (`parse_log_ahead`, as inspect does).
//!
//! `load`'s own invariants are asserted: for a loaded (non-clean) hive the base
//! block passes nt-hive's validation (checksum, seq1 == seq2, sizes) and the
//! sequence number is not above `max_sequence_seen`. Panics inside nt-hive
//! itself (it asserts on the 0xFFFFFFFF "no cell" offset and overflows on
//! zero-size cells in debug builds) are not rdprescue's and are tolerated,
//! unless HIVE_FUZZ_STRICT_NTHIVE is set.
#![no_main]
use libfuzzer_sys::fuzz_target;
use rdprescue::hive::recover::{base_block_checksum, marvin32, HVLE_SEED};
use rdprescue::hive::pages::{LogBytes, ReadAt};
use rdprescue::hive::{load, load_paged_ahead, scan_primary, HiveState};
use rdprescue_fuzz::{in_nt_hive, tolerate_nt_hive_panics};

fn split(data: &[u8]) -> (Vec<u8>, Option<Vec<u8>>, Option<Vec<u8>>, bool) {
    let len = |at: usize| {
        data.get(at..at + 4)
            .map_or(0, |b| u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
    };
    let fix = len(0) & 0x8000_0000 != 0;
    let rest = data.get(8..).unwrap_or(&[]);
    let (p, rest) = rest.split_at(((len(0) & 0x7FFF_FFFF) as usize).min(rest.len()));
    let (l1, l2) = rest.split_at(((len(4) & 0x7FFF_FFFF) as usize).min(rest.len()));
    let some = |b: &[u8]| (!b.is_empty()).then(|| b.to_vec());
    (p.to_vec(), some(l1), some(l2), fix)
}

fn fix_base(b: &mut [u8]) {
    if b.len() >= 512 {
        let c = base_block_checksum(b);
        b[508..512].copy_from_slice(&c.to_le_bytes());
    }
}

/// Recompute the hashes of the HvLE entries from offset 512 on, as long as
/// their size fields lead from one to the next.
fn fix_log(l: &mut [u8]) {
    fix_base(l);
    let mut off = 512;
    while let Some(h) = l.get(off..off + 40) {
        let size = u32::from_le_bytes([h[4], h[5], h[6], h[7]]) as usize;
        if &h[..4] != b"HvLE" || size < 512 || size % 512 != 0 || off + size > l.len() {
            break;
        }
        let e = &mut l[off..off + size];
        let h1 = marvin32(HVLE_SEED, &e[40..]);
        e[24..32].copy_from_slice(&h1.to_le_bytes());
        let h2 = marvin32(HVLE_SEED, &e[..32]);
        e[32..40].copy_from_slice(&h2.to_le_bytes());
        off += size;
    }
}

/// A reader of `bytes` that returns at most `most` bytes a call.
fn reader(bytes: Vec<u8>, most: usize) -> ReadAt {
    Box::new(move |at, buf| {
        let at = (at as usize).min(bytes.len());
        let n = buf.len().min(bytes.len() - at).min(most);
        buf[..n].copy_from_slice(&bytes[at..at + n]);
        Ok(n)
    })
}

/// `primary` loaded paged: the image read whole afterwards, and its report.
/// With `ahead`, the logs are first parsed on a second thread
/// (`parse_log_ahead`, as `machine::load_paged` does while the primary
/// streams) and recovery takes them from there.
fn paged(primary: &[u8], log1: Option<Vec<u8>>, log2: Option<Vec<u8>>, ahead: bool) -> rdprescue::Result<(Vec<u8>, rdprescue::hive::HiveReport)> {
    let parsed = match ahead {
        false => [None, None],
        true => std::thread::scope(|s| {
            let job = |l: &Option<Vec<u8>>| {
                l.clone().map(|l| {
                    let len = l.len();
                    let read = reader(l, 3000);
                    rdprescue::hive::parse_log_ahead(rdprescue::hive::pages::LogSrc::Read { name: "ahead", read: &read, len }, primary.len())
                })
            };
            let (a, b) = (&log1, &log2);
            s.spawn(move || [job(a), job(b)]).join().unwrap()
        }),
    };
    let file = std::rc::Rc::new(primary.to_vec());
    let stream = |w: &mut dyn std::io::Write| {
        w.write_all(&file).map_err(|e| rdprescue::Error::corrupt(rdprescue::error::Layer::Hive, 0, e.to_string()))?;
        Ok(file.len() as u64)
    };
    let scan = scan_primary(&stream, file.len())?;
    let f = file.clone();
    let read: ReadAt = Box::new(move |at, buf| {
        let at = (at as usize).min(f.len());
        let n = buf.len().min(f.len() - at);
        buf[..n].copy_from_slice(&f[at..at + n]);
        Ok(n)
    });
    let log = |name: &str, l: Option<Vec<u8>>| l.map(|l| LogBytes::Read { name: name.into(), len: l.len(), read: reader(l, 3000) });
    let (bytes, report) = load_paged_ahead(read, scan, log("LOG1", log1), log("LOG2", log2), parsed)?;
    Ok((bytes.into_vec()?, report))
}

/// Walk keys and values depth-first with a depth and an item budget.
fn walk(bytes: &[u8]) -> usize {
    let Ok(hive) = nt_hive::Hive::new(bytes) else { return 0 };
    let Ok(root) = hive.root_key_node() else { return 0 };
    let mut budget = 20_000usize;
    let mut stack = vec![(root, 0u32)];
    let mut data_bytes = 0usize;
    while let Some((key, depth)) = stack.pop() {
        let _ = key.name().map(|n| n.to_string_lossy());
        if let Some(Ok(values)) = key.values() {
            for v in values.flatten() {
                budget = budget.saturating_sub(1);
                if budget == 0 {
                    return data_bytes;
                }
                let _ = v.name().map(|n| n.to_string_lossy());
                let _ = v.data_type();
                if v.data_size() > 0 && v.data_size() < (1 << 20) {
                    if let Ok(d) = v.data().and_then(|d| d.into_vec()) {
                        data_bytes += d.len();
                    }
                }
            }
        }
        if depth < 64 {
            if let Some(Ok(subs)) = key.subkeys() {
                for s in subs.flatten() {
                    budget = budget.saturating_sub(1);
                    if budget == 0 {
                        return data_bytes;
                    }
                    stack.push((s, depth + 1));
                }
            }
        }
    }
    data_bytes
}

fuzz_target!(|data: &[u8]| {
    tolerate_nt_hive_panics(false);
    let (mut primary, mut log1, mut log2, fix) = split(data);
    if fix {
        fix_base(&mut primary);
        log1.iter_mut().chain(log2.iter_mut()).for_each(|l| fix_log(l));
    }
    let by_pages = paged(&primary, log1.clone(), log2.clone(), false);
    // The logs parsed ahead on another thread: the same outcome.
    let ahead = paged(&primary, log1.clone(), log2.clone(), true);
    match (&by_pages, ahead) {
        (Ok((b, r)), Ok((b2, r2))) => assert!(b == &b2 && format!("{r:?}") == format!("{r2:?}"), "logs parsed ahead: another image or report"),
        (Err(a), Err(b)) => assert_eq!(a.to_string(), b.to_string(), "logs parsed ahead: another error"),
        (a, b) => panic!("logs parsed ahead: {:?} vs {:?}", a.as_ref().err(), b.err()),
    }
    let h = match (load(primary, log1, log2), by_pages) {
        (Err(_), Err(_)) => return,
        (Ok(h), Ok((bytes, report))) => {
            assert_eq!(format!("{report:?}"), format!("{:?}", h.report), "paged load: another report");
            assert!(bytes == h.bytes, "paged load: other bytes");
            h
        }
        (Ok(_), Err(e)) => panic!("the paged load fails where load does not: {e}"),
        (Err(e), Ok(_)) => panic!("the paged load succeeds where load fails: {e}"),
    };
    let b = &h.bytes;
    if h.report.state != HiveState::Clean {
        let seq = u32::from_le_bytes(b[4..8].try_into().unwrap());
        assert!(
            (h.report.max_sequence_seen.wrapping_sub(seq) as i32) >= 0,
            "max_sequence_seen below the written seq"
        );
        if let Err(e) = nt_hive::Hive::new(&b[..]) {
            panic!("nt-hive refuses a {:?} hive: {e}", h.report.state);
        }
    }
    if h.report.state == HiveState::Recovered {
        let hbins = u32::from_le_bytes(b[40..44].try_into().unwrap()) as usize;
        assert_eq!(b.len(), 4096 + hbins);
    }
    let _ = in_nt_hive(|| walk(b));
});
