//! Unit tests of `load` on synthetic hives and logs built here.

use super::newlog::{build_entry, rehash};
use super::*;

const TS: u64 = 0x01D2_9627_F1C8_A860;

/// A 4096-byte base block with a correct checksum.
fn base_block(seq1: u32, seq2: u32, hbins: u32, file_type: u32) -> Vec<u8> {
    let mut b = vec![0u8; 4096];
    b[..4].copy_from_slice(b"regf");
    put_u32(&mut b, OFF_SEQ1, seq1);
    put_u32(&mut b, OFF_SEQ2, seq2);
    b[OFF_TIMESTAMP..OFF_TIMESTAMP + 8].copy_from_slice(&TS.to_le_bytes());
    put_u32(&mut b, OFF_MAJOR, 1);
    put_u32(&mut b, OFF_MINOR, 5);
    put_u32(&mut b, OFF_FILE_TYPE, file_type);
    put_u32(&mut b, OFF_FILE_FORMAT, 1);
    put_u32(&mut b, OFF_ROOT, 0x20);
    put_u32(&mut b, OFF_HBINS, hbins);
    put_u32(&mut b, OFF_CLUSTER, 1);
    fix_checksum(&mut b);
    b
}

/// One 4096-byte hbin at hive-bins offset `i * 4096`, its body filled with `fill`.
fn hbin(i: usize, fill: u8) -> Vec<u8> {
    let mut h = vec![fill; 4096];
    h[..32].fill(0);
    h[..4].copy_from_slice(b"hbin");
    put_u32(&mut h, 4, (i * 4096) as u32);
    put_u32(&mut h, 8, 4096);
    h[20..28].copy_from_slice(&TS.to_le_bytes());
    h
}

fn primary(seq1: u32, seq2: u32, bins: usize, fill: u8) -> Vec<u8> {
    let mut p = base_block(seq1, seq2, (bins * 4096) as u32, 0);
    for i in 0..bins {
        p.extend(hbin(i, fill));
    }
    p
}

fn new_log(base_seq: u32, hbins: u32, entries: &[Vec<u8>]) -> Vec<u8> {
    let mut l = base_block(base_seq, base_seq, hbins, FILE_TYPE_LOG_NEW)[..512].to_vec();
    for e in entries {
        l.extend_from_slice(e);
    }
    l
}

/// An entry rewriting hbin `i` with `fill`, for a hive of `bins` hbins.
fn entry(seq: u32, bins: usize, i: usize, fill: u8) -> Vec<u8> {
    build_entry(seq, (bins * 4096) as u32, 0, &[((i * 4096) as u32, &hbin(i, fill))])
}

fn old_log(seq: u32, ts: u64, hbins: u32, dirty: &[(usize, [u8; 512])]) -> Vec<u8> {
    let mut b = base_block(seq, seq, hbins, FILE_TYPE_LOG_OLD);
    b[OFF_TIMESTAMP..OFF_TIMESTAMP + 8].copy_from_slice(&ts.to_le_bytes());
    fix_checksum(&mut b);
    let mut l = b[..512].to_vec();
    l.extend_from_slice(b"DIRT");
    let mut bitmap = vec![0u8; (hbins / 4096) as usize];
    for &(bit, _) in dirty {
        bitmap[bit / 8] |= 1 << (bit % 8);
    }
    l.extend_from_slice(&bitmap);
    l.resize(l.len().div_ceil(512) * 512, 0);
    let mut sorted: Vec<_> = dirty.to_vec();
    sorted.sort_by_key(|d| d.0);
    for (_, p) in sorted {
        l.extend_from_slice(&p);
    }
    l
}

fn fill_at(bytes: &[u8], i: usize) -> u8 {
    bytes[4096 + i * 4096 + 100]
}

fn assert_consistent(h: &LoadedHive) {
    let b = &h.bytes;
    assert!(checksum_ok(b), "checksum");
    assert_eq!(le_u32(b, OFF_SEQ1), le_u32(b, OFF_SEQ2), "seqs");
    assert!(b.len() >= 4096 + le_u32(b, OFF_HBINS) as usize, "length");
    assert!(check_primary_fields(b).is_ok());
}

fn has_note(h: &LoadedHive, what: &str) -> bool {
    h.report.notes.iter().any(|n| n.contains(what))
}

#[test]
fn clean_hive_is_returned_unchanged() {
    let mut p = primary(10, 10, 3, 0x11);
    p.extend(vec![0xEE; 8192]); // slack after the last hbin
    let h = load(p.clone(), None, None).unwrap();
    assert_eq!(h.report.state, HiveState::Clean);
    assert_eq!(h.bytes, p);
    assert_eq!(h.report.max_sequence_seen, 10);
    assert!(h.report.applied.is_empty());
}

#[test]
fn clean_hive_ignores_subsequent_log_entries_but_counts_them() {
    let p = primary(10, 10, 2, 0x11);
    let l1 = new_log(10, 8192, &[entry(10, 2, 1, 0x22), entry(11, 2, 0, 0x33)]);
    let l2 = new_log(4, 8192, &[entry(4, 2, 1, 0x44)]);
    let h = load(p.clone(), Some(l1), Some(l2)).unwrap();
    assert_eq!(h.report.state, HiveState::Clean);
    assert_eq!(h.bytes, p);
    assert_eq!(h.report.max_sequence_seen, 11);
    assert!(has_note(
        &h,
        "LOG1: the hive is clean, so its 2 subsequent log entries (10..11) are ignored"
    ));
    assert!(!has_note(&h, "LOG2"));
}

#[test]
fn logs_are_ordered_by_sequence_not_by_name() {
    let p = primary(10, 9, 2, 0x11);
    // LOG2 holds the earlier entries 9..11, LOG1 the later 12..13.
    let l2 = new_log(
        9,
        8192,
        &[entry(9, 2, 0, 0x21), entry(10, 2, 1, 0x22), entry(11, 2, 0, 0x23)],
    );
    let l1 = new_log(12, 8192, &[entry(12, 2, 1, 0x24), entry(13, 2, 0, 0x25)]);
    let h = load(p, Some(l1), Some(l2)).unwrap();
    assert_eq!(h.report.state, HiveState::Recovered);
    let order: Vec<_> = h
        .report
        .applied
        .iter()
        .map(|a| (a.log.as_str(), a.entries, a.first_sequence, a.last_sequence))
        .collect();
    assert_eq!(
        order,
        vec![("LOG2", 3, Some(9), Some(11)), ("LOG1", 2, Some(12), Some(13))]
    );
    assert_eq!(h.report.recovered_sequence, Some(13));
    assert_eq!(h.report.max_sequence_seen, 13);
    assert_eq!(fill_at(&h.bytes, 0), 0x25);
    assert_eq!(fill_at(&h.bytes, 1), 0x24);
    assert_eq!(le_u32(&h.bytes, OFF_SEQ1), 13);
    assert_consistent(&h);
    assert_eq!(h.bytes.len(), 4096 + 8192);
}

#[test]
fn sequence_order_wraps_around() {
    let p = primary(0xFFFF_FFFF, 0xFFFF_FFFE, 1, 0x11);
    let l1 = new_log(
        0xFFFF_FFFE,
        4096,
        &[
            entry(0xFFFF_FFFE, 1, 0, 1),
            entry(0xFFFF_FFFF, 1, 0, 2),
            entry(0, 1, 0, 3),
        ],
    );
    let l2 = new_log(1, 4096, &[entry(1, 1, 0, 4)]);
    let h = load(p, Some(l1), Some(l2)).unwrap();
    assert_eq!(h.report.applied.len(), 2);
    assert_eq!(h.report.applied[0].log, "LOG1");
    assert_eq!(h.report.recovered_sequence, Some(1));
    assert_eq!(h.report.max_sequence_seen, 1);
    assert_eq!(fill_at(&h.bytes, 0), 4);
}

#[test]
fn stale_log_is_ignored_with_a_note() {
    let p = primary(567, 566, 2, 0x11);
    let l1 = new_log(566, 8192, &[entry(566, 2, 0, 0x21), entry(567, 2, 1, 0x22)]);
    let l2 = new_log(562, 8192, &[entry(562, 2, 0, 0x99)]);
    let h = load(p, Some(l1), Some(l2)).unwrap();
    assert_eq!(h.report.state, HiveState::Recovered);
    assert_eq!(h.report.applied.len(), 1);
    assert_eq!(h.report.applied[0].log, "LOG1");
    assert!(has_note(
        &h,
        "LOG2: base sequence 562 is older than primary seq2 566: stale, ignored"
    ));
    assert_eq!(fill_at(&h.bytes, 0), 0x21);
    assert_eq!(h.report.recovered_sequence, Some(567));
    assert_eq!(h.report.max_sequence_seen, 567);
}

#[test]
fn second_log_must_follow_on() {
    let p = primary(10, 9, 2, 0x11);
    let l1 = new_log(9, 8192, &[entry(9, 2, 0, 0x21), entry(10, 2, 1, 0x22)]);
    let l2 = new_log(12, 8192, &[entry(12, 2, 0, 0x99)]);
    let h = load(p, Some(l1), Some(l2)).unwrap();
    assert_eq!(h.report.applied.len(), 1);
    assert_eq!(h.report.recovered_sequence, Some(10));
    assert!(has_note(
        &h,
        "LOG2: base sequence 12 does not follow the last applied entry 10"
    ));
    // max_sequence_seen still covers the unapplied log, for the writer.
    assert_eq!(h.report.max_sequence_seen, 12);
}

#[test]
fn damaged_entry_stops_recovery_and_blocks_the_next_log() {
    let p = primary(10, 9, 2, 0x11);
    let mut bad = entry(10, 2, 1, 0x22);
    bad[600] ^= 0xFF;
    let l1 = new_log(9, 8192, &[entry(9, 2, 0, 0x21), bad, entry(11, 2, 0, 0x23)]);
    let l2 = new_log(12, 8192, &[entry(12, 2, 0, 0x99)]);
    let h = load(p, Some(l1), Some(l2)).unwrap();
    assert_eq!(h.report.recovered_sequence, Some(9));
    assert!(has_note(&h, "LOG1: recovery stops before damaged entry 10 at offset"));
    assert!(has_note(&h, "Hash-1"));
    assert_eq!(fill_at(&h.bytes, 0), 0x21);
    assert_eq!(fill_at(&h.bytes, 1), 0x11);
}

#[test]
fn earlier_log_without_entries_blocks_the_later_one() {
    let p = primary(10, 9, 2, 0x11);
    let l1 = new_log(9, 8192, &[]);
    let l2 = new_log(12, 8192, &[entry(12, 2, 0, 0x99)]);
    let h = load(p, Some(l1), Some(l2)).unwrap();
    assert_eq!(h.report.state, HiveState::DirtyNotRecovered);
    assert!(has_note(
        &h,
        "LOG2: not applied: the earlier log LOG1 yielded no valid entry"
    ));
    assert_consistent(&h);
}

#[test]
fn entries_grow_the_hive_and_set_flags() {
    let p = primary(3, 2, 1, 0x11);
    let e1 = build_entry(2, 3 * 4096, 1, &[(4096, &hbin(1, 0x31)), (8192, &hbin(2, 0x32))]);
    let l1 = new_log(2, 4096, &[e1]);
    let h = load(p, Some(l1), None).unwrap();
    assert_eq!(h.bytes.len(), 4096 + 3 * 4096);
    assert_eq!(le_u32(&h.bytes, OFF_HBINS), 3 * 4096);
    // Bit 0 comes from the entry; the other bits stay the primary's (0).
    assert_eq!(le_u32(&h.bytes, OFF_FLAGS), 1);
    assert_eq!(fill_at(&h.bytes, 2), 0x32);
    assert!(!has_note(&h, "read as zeros"), "{:?}", h.report.notes);
    assert!(!has_note(&h, "hbin chain"), "{:?}", h.report.notes);
    assert_consistent(&h);
}

#[test]
fn growth_not_backed_by_pages_is_zero_filled_and_noted() {
    let p = primary(3, 2, 1, 0x11);
    let e1 = build_entry(2, 3 * 4096, 0, &[(4096, &hbin(1, 0x31))]);
    let h = load(p, Some(new_log(2, 4096, &[e1])), None).unwrap();
    assert_eq!(h.bytes.len(), 4 * 4096);
    assert!(
        has_note(
            &h,
            "4096 bytes of hive bins data between file offsets 0x2000 and 0x4000"
        ),
        "{:?}",
        h.report.notes
    );
    assert!(has_note(&h, "hbin chain breaks at hive bins offset 0x2000"));
}

#[test]
fn truncated_dirty_primary_is_completed_from_the_log() {
    let mut p = primary(3, 2, 3, 0x11);
    p.truncate(4096 + 4096 + 100); // hbin 1 torn, hbin 2 missing
    let l1 = new_log(
        2,
        3 * 4096,
        &[build_entry(
            2,
            3 * 4096,
            0,
            &[(4096, &hbin(1, 0x21)), (8192, &hbin(2, 0x22))],
        )],
    );
    let h = load(p.clone(), Some(l1), None).unwrap();
    assert_eq!(h.report.state, HiveState::Recovered);
    assert!(has_note(&h, "primary file is truncated"));
    assert!(!has_note(&h, "read as zeros"), "{:?}", h.report.notes);
    assert_eq!(h.bytes.len(), 4 * 4096);
    assert_eq!(fill_at(&h.bytes, 2), 0x22);

    // Without the log: cut to the intact hbins.
    let h = load(p, None, None).unwrap();
    assert_eq!(h.report.state, HiveState::DirtyNotRecovered);
    assert_eq!(le_u32(&h.bytes, OFF_HBINS), 4096);
    assert!(has_note(&h, "cut from 0x3000 to the 0x1000 bytes"));
    assert_consistent(&h);
}

#[test]
fn invalid_primary_base_block_is_taken_from_the_latest_log() {
    let mut p = primary(10, 9, 2, 0x11);
    put_u32(&mut p, OFF_MINOR, 1); // damage without fixing the checksum
    p[8] ^= 0x40;
    let l1 = new_log(9, 8192, &[entry(9, 2, 0, 0x21), entry(10, 2, 1, 0x22)]);
    let l2 = new_log(11, 8192, &[entry(11, 2, 0, 0x23)]);
    let h = load(p, Some(l1), Some(l2)).unwrap();
    assert_eq!(h.report.state, HiveState::Recovered);
    assert!(h.report.base_block_from_log);
    assert!(!h.report.primary_checksum_ok);
    assert_eq!(h.report.applied.len(), 1);
    assert_eq!(h.report.applied[0].log, "LOG2");
    assert!(has_note(&h, "LOG1: not applied: the primary base block is invalid"));
    assert_eq!(fill_at(&h.bytes, 0), 0x23);
    assert_eq!(fill_at(&h.bytes, 1), 0x11);
    assert_eq!(le_u32(&h.bytes, OFF_MINOR), 5);
    assert_eq!(le_u32(&h.bytes, OFF_FILE_TYPE), 0);
    assert_eq!(&h.bytes[512..4096], &[0u8; 3584][..]);
    assert_consistent(&h);
}

#[test]
fn dirty_without_logs_is_made_readable() {
    let p = primary(6, 5, 2, 0x11);
    let h = load(p.clone(), None, Some(Vec::new())).unwrap();
    assert_eq!(h.report.state, HiveState::DirtyNotRecovered);
    assert_eq!(le_u32(&h.bytes, OFF_SEQ1), 6);
    assert_eq!(h.report.max_sequence_seen, 6);
    assert!(has_note(&h, "may be stale"));
    assert!(has_note(&h, "LOG2: empty file"));
    assert_eq!(&h.bytes[4096..], &p[4096..]);
    assert_consistent(&h);

    // Bad checksum, sane fields, no log: fields used as found.
    let mut q = p.clone();
    q[OFF_CHECKSUM] ^= 1;
    let h = load(q, None, None).unwrap();
    assert_eq!(h.report.state, HiveState::DirtyNotRecovered);
    assert!(has_note(&h, "used as found"));
    assert_consistent(&h);

    // Bad checksum and bad fields, but a valid (unusable) log base block: taken from the log.
    let mut q = p.clone();
    put_u32(&mut q, OFF_ROOT, 0xFFFF_FFFF);
    let l = new_log(3, 8192, &[]);
    let h = load(q.clone(), Some(l), None).unwrap();
    assert_eq!(h.report.state, HiveState::DirtyNotRecovered);
    assert!(h.report.base_block_from_log);
    assert_consistent(&h);
    // ... and without one: an error naming the field.
    let e = load(q, None, None).unwrap_err().to_string();
    assert!(e.starts_with("hive at offset 0x24: root cell offset 0xffffffff"), "{e}");
}

#[test]
fn primary_errors_name_layer_and_offset() {
    let e = load(vec![0; 100], None, None).unwrap_err().to_string();
    assert_eq!(
        e,
        "hive at offset 0x64: file is 100 bytes, shorter than the 4096-byte base block"
    );
    let e = load(vec![0; 8192], None, None).unwrap_err().to_string();
    assert!(e.contains("no regf signature"), "{e}");

    // Valid checksum but unsupported version: an error, not a recovery.
    let mut p = primary(1, 1, 1, 0);
    put_u32(&mut p, OFF_MAJOR, 2);
    fix_checksum(&mut p);
    let e = load(p, None, None).unwrap_err();
    assert!(
        matches!(
            e,
            Error::Unsupported {
                layer: Layer::Hive,
                offset: 20,
                ..
            }
        ),
        "{e}"
    );

    // A transaction log passed as the primary.
    let p = base_block(1, 1, 4096, 6);
    let e = load(p, None, None).unwrap_err().to_string();
    assert!(e.contains("file type 6"), "{e}");

    // Clean but truncated.
    let mut p = primary(1, 1, 2, 0);
    p.truncate(8192);
    let e = load(p, None, None).unwrap_err().to_string();
    assert!(
        e.starts_with("hive at offset 0x28: hive bins data size 0x2000 exceeds the 0x1000 bytes"),
        "{e}"
    );
}

#[test]
fn old_format_log_applies_when_timestamps_match() {
    let p = primary(5, 4, 2, 0x11);
    let mut page = [0x77u8; 512];
    page[..4].copy_from_slice(b"hbin"); // keep the chain intact: page 8 is hbin 1's header
    page[4..8].copy_from_slice(&4096u32.to_le_bytes());
    page[8..12].copy_from_slice(&4096u32.to_le_bytes());
    let l1 = old_log(5, TS, 8192, &[(1, [0x55; 512]), (8, page)]);
    let h = load(p.clone(), Some(l1.clone()), Some(Vec::new())).unwrap();
    assert_eq!(h.report.state, HiveState::Recovered);
    assert_eq!(h.report.applied[0].format, "old");
    assert_eq!(h.report.applied[0].entries, 2);
    assert_eq!(h.report.recovered_sequence, Some(5));
    assert_eq!(h.bytes[4096 + 512], 0x55);
    assert_eq!(h.bytes[4096 + 4096 + 100], 0x77);
    assert_eq!(h.bytes[4096 + 100], 0x11);
    assert_consistent(&h);

    // Stale (older) timestamp: not applied.
    let stale = old_log(5, TS - 1, 8192, &[(1, [0x55; 512])]);
    let h = load(p.clone(), Some(stale.clone()), None).unwrap();
    assert_eq!(h.report.state, HiveState::DirtyNotRecovered);
    assert!(has_note(&h, "LOG1: timestamp"));
    assert!(has_note(&h, "stale, ignored"));

    // The more recent of two logs wins; a newer-than-primary timestamp is noted.
    let newer = old_log(6, TS + 5, 8192, &[(2, [0x66; 512])]);
    let h = load(p.clone(), Some(l1.clone()), Some(newer)).unwrap();
    assert_eq!(h.report.applied[0].log, "LOG2");
    assert!(has_note(&h, "applied anyway"));
    assert!(has_note(&h, "LOG1: not applied"));
    assert_eq!(h.report.max_sequence_seen, 6);

    // Invalid primary base block: base block from the log, timestamp checked against the first hbin.
    let mut q = p.clone();
    q[OFF_CHECKSUM] ^= 1;
    let h = load(q.clone(), Some(l1), None).unwrap();
    assert!(h.report.base_block_from_log);
    assert_eq!(h.report.state, HiveState::Recovered);
    assert_consistent(&h);
    let h = load(q, Some(stale), None).unwrap();
    assert_eq!(h.report.state, HiveState::DirtyNotRecovered);
}

#[test]
fn hostile_logs_are_ignored_with_notes() {
    let p = primary(10, 9, 2, 0x11);
    // Random bytes, a truncated base block, a log with a bad checksum.
    let mut bad_cks = new_log(9, 8192, &[entry(9, 2, 0, 1)]);
    bad_cks[100] ^= 1;
    for (l, what) in [
        (vec![0x5Au8; 3000], "no regf signature"),
        (
            new_log(9, 8192, &[])[..300].to_vec(),
            "shorter than the 512-byte base block",
        ),
        (bad_cks, "checksum"),
    ] {
        let h = load(p.clone(), Some(l), None).unwrap();
        assert_eq!(h.report.state, HiveState::DirtyNotRecovered);
        assert!(has_note(&h, what), "{what}: {:?}", h.report.notes);
    }
    // An old-format log whose bitmap claims more pages than the file holds.
    let mut ol = old_log(10, TS, 8192, &[(0, [1; 512]), (1, [2; 512])]);
    ol.truncate(ol.len() - 512);
    let h = load(p.clone(), Some(ol), None).unwrap();
    assert!(has_note(&h, "truncated log"), "{:?}", h.report.notes);
    // An entry with a huge page count, one with size 0, one pointing past the hive.
    let mut e = entry(9, 2, 0, 1);
    put_u32(&mut e, 20, u32::MAX);
    rehash(&mut e);
    let h = load(p.clone(), Some(new_log(9, 8192, &[e])), None).unwrap();
    assert!(has_note(&h, "dirty page count"), "{:?}", h.report.notes);
    let mut e = entry(9, 2, 0, 1);
    put_u32(&mut e, 4, 0);
    rehash(&mut e);
    let h = load(p.clone(), Some(new_log(9, 8192, &[e])), None).unwrap();
    assert!(has_note(&h, "size 0x0"), "{:?}", h.report.notes);
    let e = build_entry(9, 8192, 0, &[(8192, &[1u8; 512])]);
    let h = load(p.clone(), Some(new_log(9, 8192, &[e])), None).unwrap();
    assert!(
        has_note(&h, "points past the hive bins data size"),
        "{:?}",
        h.report.notes
    );
    // An entry asking to grow the hive past the limit.
    let e = build_entry(9, MAX_LOG_HBINS_SIZE + 4096, 0, &[(0, &[1u8; 512])]);
    let h = load(p, Some(new_log(9, 8192, &[e])), None).unwrap();
    assert!(has_note(&h, "exceeds the 0x40000000 limit"), "{:?}", h.report.notes);
}

/// Deterministic mutation test: flip bytes in a valid dirty hive and its logs;
/// `load` must never panic, and whatever it returns must be self-consistent.
#[test]
fn mutations_never_panic() {
    let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
    let mut rnd = move || {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        x
    };
    let p = primary(10, 9, 3, 0x11);
    let l1 = new_log(9, 3 * 4096, &[entry(9, 3, 0, 0x21), entry(10, 3, 1, 0x22)]);
    let l2 = new_log(
        11,
        3 * 4096,
        &[
            entry(11, 3, 2, 0x23),
            build_entry(12, 4 * 4096, 1, &[(12288, &hbin(3, 0x24))]),
        ],
    );
    let ol = old_log(10, TS, 3 * 4096, &[(0, [1; 512]), (9, [2; 512])]);
    for round in 0..3000 {
        let (mut a, mut b, mut c) = (
            p.clone(),
            l1.clone(),
            if round % 3 == 0 { ol.clone() } else { l2.clone() },
        );
        for _ in 0..(1 + rnd() % 4) {
            let which = rnd() % 3;
            let buf = match which {
                0 => &mut a,
                1 => &mut b,
                _ => &mut c,
            };
            let at = (rnd() as usize) % buf.len();
            match rnd() % 4 {
                0 => buf[at] ^= 1 << (rnd() % 8),
                1 => buf[at] = 0xFF,
                2 => buf.truncate(at),
                _ => {
                    // Poke a header field with a random u32.
                    let fields = [
                        4usize,
                        8,
                        28,
                        36,
                        40,
                        512 + 4,
                        512 + 12,
                        512 + 16,
                        512 + 20,
                        512 + 40,
                        512 + 44,
                    ];
                    let f = fields[(rnd() as usize) % fields.len()];
                    put_u32(buf, f, rnd() as u32);
                }
            }
            if which == 0 && rnd() % 2 == 0 {
                fix_checksum(&mut a);
            }
        }
        if let Ok(h) = load(a, Some(b), Some(c)) {
            if h.report.state != HiveState::Clean {
                assert_consistent(&h);
                assert!(!seq_after(le_u32(&h.bytes, OFF_SEQ1), h.report.max_sequence_seen));
            }
            if h.report.state == HiveState::Recovered {
                assert_eq!(h.bytes.len(), 4096 + le_u32(&h.bytes, OFF_HBINS) as usize);
            }
        }
    }
}

#[test]
fn random_bytes_are_rejected_or_loaded_consistently() {
    let mut x: u64 = 0x2545_F491_4F6C_DD1D;
    let mut bytes = |n: usize| -> Vec<u8> {
        (0..n)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                x as u8
            })
            .collect()
    };
    for n in [0usize, 1, 511, 512, 4095, 4096, 4097, 8192, 65536] {
        let (p, a, b) = (bytes(n), bytes(n), bytes(n / 2));
        assert!(load(p.clone(), Some(a.clone()), Some(b.clone())).is_err(), "random primary of {n} bytes");
        // A good primary with random logs: the logs are unusable, the hive is read as-is.
        let h = load(primary(4, 3, 2, 0x11), Some(a), Some(b)).unwrap();
        assert_eq!(h.report.state, HiveState::DirtyNotRecovered);
        assert_consistent(&h);
        // A random primary that claims to be a hive.
        let mut q = p;
        if q.len() >= 4096 {
            q[..4].copy_from_slice(b"regf");
            fix_checksum(&mut q);
            // Random bins after a valid-looking base block: refused as
            // corrupt naming the hive layer, or loaded as the regf file it
            // claims to be (never another kind of error, never a panic).
            match load(q.clone(), None, None) {
                Err(e) => assert!(matches!(e, crate::Error::Corrupt { layer: crate::Layer::Hive | crate::Layer::HiveLog, .. } | crate::Error::Unsupported { layer: crate::Layer::Hive, .. }), "{n}: {e:?}"),
                Ok(h) => assert!(h.bytes.starts_with(b"regf") && h.bytes.len() >= 4096 && h.bytes.len() <= q.len(), "{n}: {:?}", h.report),
            }
        }
    }
}

/// The hbin chain stops at an hbin whose size is not a whole number of 4 KiB
/// pages, even when that size is larger than a page (and so would pass a
/// "too small" test alone), and at one that runs past the limit.
#[test]
fn hbin_chain_stops_at_misaligned_or_overlong_sizes() {
    let mut p = primary(1, 1, 4, 0x11);
    assert_eq!(hbin_chain(&p, 4 * 4096), (4 * 4096, None));
    // The second hbin claims 0x1800 bytes: >= 4096, but not page-aligned.
    put_u32(&mut p, BASE_BLOCK_LEN + 4096 + 8, 0x1800);
    let (len, why) = hbin_chain(&p, 4 * 4096);
    assert_eq!(len, 4096);
    assert!(why.unwrap().contains("bad size 0x1800"));
    // A page-aligned size that runs past the limit.
    put_u32(&mut p, BASE_BLOCK_LEN + 4096 + 8, 4 * 4096);
    let (len, why) = hbin_chain(&p, 4 * 4096);
    assert_eq!(len, 4096);
    assert!(why.unwrap().contains("bad size 0x4000"));
}
