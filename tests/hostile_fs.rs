//! Hostile file-system structures: lookups must end with a clear error, never
//! hang or panic.

mod common;
use common::*;

const WINDOWS_VOLUME: usize = 9437184; // partition 2 of gen1-mbr (testdata/fixtures.json)

fn utf16(s: &str) -> Vec<u8> {
    s.encode_utf16().flat_map(|u| u.to_le_bytes()).collect()
}

/// Make the first entry of the root directory's index record point to the
/// record itself as its B-tree child: a textbook B-tree walk loops forever.
#[test]
fn cyclic_ntfs_index_btree() {
    let tmp = tempfile::tempdir().unwrap();
    let img = gunzip(&testdata().join("images/gen1-mbr.raw.gz"), tmp.path());
    let mut d = std::fs::read(&img).unwrap();
    let needle = utf16("$AttrDef");
    let mut patched = false;
    let mut off = WINDOWS_VOLUME;
    while off + 4096 <= d.len() && !patched {
        if &d[off..off + 4] == b"INDX" && d[off..off + 4096].windows(needle.len()).any(|w| w == needle.as_slice()) {
            let first = off + 0x18 + u32::from_le_bytes(d[off + 0x18..off + 0x1C].try_into().unwrap()) as usize;
            let len = u16::from_le_bytes(d[first + 8..first + 10].try_into().unwrap()) as usize;
            assert!(len >= 24 && (first + len) % 512 < 504, "entry layout unexpected");
            d[first + 12] |= 1; // INDEX_ENTRY_NODE: has a child
            d[first + len - 8..first + len].fill(0); // child VCN 0 = this very record
            d[off + 0x18 + 12] |= 1; // node header: has children
            patched = true;
        }
        off += 4096;
    }
    assert!(patched, "root INDX record not found");
    std::fs::write(&img, &d).unwrap();
    let imgs = img.to_str().unwrap();
    // "!" sorts before every entry, so the walk descends into the cycle.
    let o = rdp_on(&img, &["cat", imgs, r"\!", "-p", "2"]);
    assert_layer_error(&o, "cyclic index");
    assert!(stderr(&o).contains("loop"), "{}", stderr(&o));
}

/// A directory entry that refers back to its own directory: lookups of ever
/// longer paths terminate (bounded by the path) with "not found".
#[test]
fn directory_containing_itself() {
    let tmp = tempfile::tempdir().unwrap();
    let img = gunzip(&testdata().join("images/gen1-mbr.raw.gz"), tmp.path());
    let imgs = img.to_str().unwrap();
    let deep = r"\Windows".to_string() + &r"\.".repeat(2000) + r"\System32\config\SYSTEM";
    let o = rdp_on(&img, &["cat", imgs, &deep, "-p", "2"]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let o = rdp_on(&img, &["cat", imgs, &r"\Windows\..".repeat(500), "-p", "2"]);
    assert_clean_error(&o, "dot-dot chain");
}

/// Zero-filled and truncated volumes inside a valid partition table.
#[test]
fn damaged_volumes() {
    let tmp = tempfile::tempdir().unwrap();
    let img = gunzip(&testdata().join("images/gen1-mbr.raw.gz"), tmp.path());
    let mut d = std::fs::read(&img).unwrap();
    // Zero the Windows volume's MFT area but keep its boot sector.
    let mft_lcn = u64::from_le_bytes(d[WINDOWS_VOLUME + 0x30..WINDOWS_VOLUME + 0x38].try_into().unwrap()) as usize;
    let cluster = 4096usize.min(512 * d[WINDOWS_VOLUME + 0x0D] as usize);
    let mft = WINDOWS_VOLUME + mft_lcn * cluster;
    d[mft..mft + 64 * 1024].fill(0);
    let zeroed = tmp.path().join("zeroed-mft.raw");
    std::fs::write(&zeroed, &d).unwrap();
    let o = rdp_on(&zeroed, &["cat", zeroed.to_str().unwrap(), r"\Windows\System32\config\SYSTEM", "-p", "2"]);
    assert_layer_error(&o, "zeroed MFT");
    assert!(stderr(&o).contains("fs/ntfs"), "{}", stderr(&o));
    let o = rdp_on(&zeroed, &["disk", zeroed.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(0), "disk still lists the damaged volume: {}", stderr(&o));
    assert!(stdout(&o).contains("unreadable"), "{}", stdout(&o));

    // Truncate the image in the middle of the Windows volume.
    let trunc = tmp.path().join("truncated.raw");
    std::fs::write(&trunc, &d[..WINDOWS_VOLUME + 1024 * 1024]).unwrap();
    let o = rdp_on(&trunc, &["disk", "--json", trunc.to_str().unwrap()]);
    assert_layer_error(&o, "truncated");
    assert!(error_line(&o).contains("past the end"), "{}", error_line(&o));
}

/// Found by `fuzz/run.sh ntfs`: an index entry shorter than its header makes
/// the ntfs crate panic (slice index). The guard turns it into one clean line.
#[test]
fn fuzz_regression_short_index_entry() {
    let tmp = tempfile::tempdir().unwrap();
    let img = gunzip(&testdata().join("regress/ntfs-short-index-entry.img.gz"), tmp.path());
    let o = rdp_on(&img, &["cat", img.to_str().unwrap(), r"\Windows\System32\config\SYSTEM"]);
    assert_layer_error(&o, "short index entry");
    assert!(stderr(&o).contains("fs/ntfs"), "{}", stderr(&o));
    let o = rdp_on(&img, &["disk", img.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(0));
    assert!(!stderr(&o).contains("internal error"), "{}", stderr(&o));
}
