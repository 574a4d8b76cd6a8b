//! File handles (`fs::open_read`, `FileSystem::open_file`) read exactly what
//! path reads (`FileSystem::read_at`) give: every offset/length class
//! (resident, non-resident, sparse runs, `$ATTRIBUTE_LIST` fragments,
//! initialized size below the data size, ranges past the end), on the
//! ntfs-3g volume of testdata/images/ntfs-refusals.img, on the hives of
//! testdata/demo.vhdx, on a FAT volume (path fallback) and with hostile data
//! runs; a failure names the layer and the offset.

mod common;
use common::*;
use rdprescue::fs::FileSystem;
use rdprescue::image::Disk;
use std::rc::Rc;
use std::sync::Arc;

/// Offsets and lengths every file is read at, plus a few pseudo-random ones.
fn ranges(size: u64) -> Vec<(u64, usize)> {
    let offs = [0, 1, 511, 512, 1000, 4095, 4096, 8191, 8192, 16383, 16384, size / 3, size / 2, size.saturating_sub(1), size, size + 1, size + 4096, u64::MAX - 3];
    let lens = [0usize, 1, 100, 4096, 16384, 70_000];
    let mut v: Vec<(u64, usize)> = offs.iter().flat_map(|&o| lens.iter().map(move |&l| (o, l))).collect();
    let mut x = 0x9e37_79b9_7f4a_7c15u64 ^ size;
    for _ in 0..24 {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        v.push((x % (size + 2), (x >> 40) as usize % 40_000));
    }
    v
}

/// One read as comparable text: the bytes read, or the error line.
fn outcome(r: rdprescue::Result<usize>, buf: &[u8]) -> Result<Vec<u8>, String> {
    r.map(|n| buf[..n].to_vec()).map_err(|e| e.to_string())
}

/// The handle on `path` gives what path reads give, range by range; returns
/// how many ranges were compared and how many of them failed (in both).
fn same_as_path_reads(fs: &Rc<dyn FileSystem>, path: &str) -> (usize, usize) {
    let h = rdprescue::fs::open_read(fs, path).unwrap_or_else(|e| panic!("{path}: {e}"));
    let st = fs.stat(path).unwrap();
    assert_eq!(h.size(), st.size, "{path}: size");
    let (mut n, mut failed) = (0, 0);
    for (off, len) in ranges(st.size) {
        let (mut a, mut b) = (vec![0xA5u8; len], vec![0x5Au8; len]);
        let by_path = outcome(fs.read_at(path, off, &mut a), &a);
        let by_handle = outcome(h.read_at(off, &mut b), &b);
        assert!(by_path == by_handle, "{path} at {off:#x}+{len}: path read {:?}, handle {:?}", by_path.as_ref().map(|v| v.len()), by_handle.as_ref().map(|v| v.len()));
        if let Ok(v) = &by_path {
            // Short only at the end.
            assert_eq!(v.len() as u64, st.size.saturating_sub(off).min(len as u64), "{path} at {off:#x}+{len}");
        } else {
            failed += 1;
        }
        n += 1;
    }
    (n, failed)
}

fn refusals(tmp: &std::path::Path) -> (std::path::PathBuf, Vec<u8>) {
    let img = gunzip(&testdata().join("images/ntfs-refusals.img.gz"), tmp);
    let bytes = std::fs::read(&img).unwrap();
    (img, bytes)
}

fn mount_bytes(vol: Vec<u8>) -> Rc<dyn FileSystem> {
    let image = rdprescue::image::open_source(rdprescue::image::MemSource::arc("v.img", vol)).unwrap();
    Rc::from(rdprescue::fs::open(image.disk.clone(), 0).unwrap())
}

#[test]
fn handles_read_what_path_reads_give_on_ntfs_3g_files() {
    let tmp = tempfile::tempdir().unwrap();
    let (_, vol) = refusals(tmp.path());
    let fs = mount_bytes(vol);
    let mut total = 0;
    for path in ["/plain.bin", "/resident.bin", "/sparse.bin", "/frag.bin", "/$MFT", "/$UpCase", "/$Bitmap", "/$Boot", "/$Volume", "/$LogFile"] {
        let (n, failed) = same_as_path_reads(&fs, path);
        assert_eq!(failed, 0, "{path}: {failed} reads failed");
        total += n;
    }
    assert!(total > 1000);
    // The content itself, against whole-file reads (a second reader: the
    // crate's stream, or the attribute-list reader).
    for path in ["/plain.bin", "/resident.bin", "/sparse.bin", "/frag.bin"] {
        let whole = fs.read_file(path, 1 << 30).unwrap();
        let h = rdprescue::fs::open_read(&fs, path).unwrap();
        let mut got = vec![0u8; whole.len() + 10];
        assert_eq!(h.read_at(0, &mut got).unwrap(), whole.len(), "{path}");
        assert!(got[..whole.len()] == whole[..], "{path}: handle differs from the whole-file read");
    }
    // The borrowing variant gives the same handle.
    for path in ["/plain.bin", "/frag.bin", "/resident.bin"] {
        let (a, b) = (rdprescue::fs::open_read(&fs, path).unwrap(), rdprescue::fs::open_read_in(&*fs, path).unwrap());
        let (mut x, mut y) = (vec![0u8; 70_000], vec![1u8; 70_000]);
        assert_eq!(outcome(a.read_at(777, &mut x), &x), outcome(b.read_at(777, &mut y), &y), "{path}");
    }
    // The sparse file's hole reads as zeros, its tail as written.
    let h = rdprescue::fs::open_read(&fs, "/sparse.bin").unwrap();
    let mut b = vec![1u8; 4096];
    assert_eq!(h.read_at(500_000, &mut b).unwrap(), 4096);
    assert!(b.iter().all(|&x| x == 0));
    let mut t = [0u8; 8];
    assert_eq!(h.read_at(h.size() - 4, &mut t).unwrap(), 4);
    assert_eq!(&t[..4], b"tail");
}

#[test]
fn handles_fail_as_path_reads_fail() {
    let tmp = tempfile::tempdir().unwrap();
    let (_, vol) = refusals(tmp.path());
    let fs = mount_bytes(vol);
    for path in ["/comp/compressed.bin", "/encrypted.bin", "/no-such-file", "/comp", "/plain.bin/x"] {
        let by_path = fs.read_at(path, 0, &mut [0u8; 16]).unwrap_err().to_string();
        let by_handle = rdprescue::fs::open_read(&fs, path).err().map(|e| e.to_string());
        assert_eq!(by_handle.as_deref(), Some(by_path.as_str()), "{path}");
    }
    let e = rdprescue::fs::open_read(&fs, "/comp/compressed.bin").err().unwrap();
    assert!(matches!(e, rdprescue::Error::Unsupported { layer: rdprescue::error::Layer::Ntfs, offset, .. } if offset > 0), "{e:?}");
}

/// The MFT record bytes of the volume with the update-sequence fixups
/// applied, and where the unnamed non-resident `$DATA` attribute matching
/// `want` (flags, data size, lowest VCN) starts on the volume.
fn find_data_attr(vol: &[u8], want: impl Fn(u16, u64, u64) -> bool) -> Vec<usize> {
    let mut found = Vec::new();
    let mut at = 0;
    while at + 1024 <= vol.len() {
        if &vol[at..at + 4] == b"FILE" {
            let mut r = vol[at..at + 1024].to_vec();
            let (usa, cnt) = (le16(&r, 4), le16(&r, 6));
            for i in 1..cnt.min(3) {
                let fix = [r[usa + 2 * i], r[usa + 2 * i + 1]];
                r[i * 512 - 2..i * 512].copy_from_slice(&fix);
            }
            let mut a = le16(&r, 0x14);
            while a + 16 <= r.len() && &r[a..a + 4] != b"\xff\xff\xff\xff" {
                let len = u32::from_le_bytes(r[a + 4..a + 8].try_into().unwrap()) as usize;
                if len < 16 || a + len > r.len() {
                    break;
                }
                let ty = u32::from_le_bytes(r[a..a + 4].try_into().unwrap());
                if ty == 0x80 && r[a + 8] == 1 && r[a + 9] == 0 {
                    let (vcn, size) = (le64(&r, a + 16), le64(&r, a + 48));
                    if want(le16(&r, a + 12) as u16, size, vcn) {
                        found.push(at + a);
                    }
                }
                a += len;
            }
        }
        at += 1024;
    }
    found
}

fn le16(b: &[u8], at: usize) -> usize {
    u16::from_le_bytes(b[at..at + 2].try_into().unwrap()) as usize
}
fn le64(b: &[u8], at: usize) -> u64 {
    u64::from_le_bytes(b[at..at + 8].try_into().unwrap())
}

/// Bytes `at..at + len` of a record must not cover an update-sequence slot.
fn clear_of_fixups(at: usize, len: usize) {
    assert!((at..at + len).all(|b| b % 512 < 510), "bytes {at:#x}+{len} straddle a fixup");
}

fn set_initialized(vol: &mut [u8], attr: usize, initialized: u64) {
    clear_of_fixups(attr + 56, 8);
    vol[attr + 56..attr + 64].copy_from_slice(&initialized.to_le_bytes());
}

/// Initialized size below the data size: the listed (`$ATTRIBUTE_LIST`)
/// reader zeros the bytes past it; the crate's reader of a value in the base
/// record reads the clusters. The handle gives the same in both.
#[test]
fn initialized_size_below_the_data_size() {
    let tmp = tempfile::tempdir().unwrap();
    let (_, vol) = refusals(tmp.path());
    let orig = mount_bytes(vol.clone());
    let frag_len = orig.stat("/frag.bin").unwrap().size;
    let plain = find_data_attr(&vol, |flags, size, _| flags == 0 && size == 16384);
    let frag = find_data_attr(&vol, |_, size, vcn| vcn == 0 && size == frag_len);
    assert_eq!((plain.len(), frag.len()), (1, 1), "plain.bin / frag.bin $DATA headers");
    let mut patched = vol.clone();
    set_initialized(&mut patched, plain[0], 5000);
    set_initialized(&mut patched, frag[0], 100_000);
    let fs = mount_bytes(patched);
    for path in ["/plain.bin", "/frag.bin"] {
        let (_, failed) = same_as_path_reads(&fs, path);
        assert_eq!(failed, 0, "{path}");
    }
    let h = rdprescue::fs::open_read(&fs, "/frag.bin").unwrap();
    let want = orig.read_file("/frag.bin", 1 << 30).unwrap();
    let mut got = vec![0u8; 200_000];
    assert_eq!(h.read_at(0, &mut got).unwrap(), 200_000);
    assert!(got[..100_000] == want[..100_000], "frag.bin before the initialized size");
    assert!(got[100_000..].iter().all(|&b| b == 0), "frag.bin past the initialized size reads as zeros");
    assert_ne!(&want[100_000..200_000], &got[100_000..], "the clusters past it are not zeros");
}

/// plain.bin (16 KiB in one run of 32 clusters) with its mapping pairs
/// replaced by `runs` (terminator added): the handle against path reads.
fn with_runs(vol: &[u8], runs: &[u8]) -> Rc<dyn FileSystem> {
    let plain = find_data_attr(vol, |flags, size, _| flags == 0 && size == 16384);
    assert_eq!(plain.len(), 1);
    let a = plain[0];
    let mp = a + le16(vol, a + 32);
    let room = a + u32::from_le_bytes(vol[a + 4..a + 8].try_into().unwrap()) as usize - mp;
    assert!(runs.len() < room, "{} bytes of runs, {room} of room", runs.len());
    clear_of_fixups(mp, room);
    let mut patched = vol.to_vec();
    patched[mp..mp + room].fill(0);
    patched[mp..mp + runs.len()].copy_from_slice(runs);
    mount_bytes(patched)
}

/// The LCN of plain.bin's single run (header 0x?1 or 0x?2 count bytes).
fn plain_lcn(vol: &[u8]) -> u64 {
    let a = find_data_attr(vol, |flags, size, _| flags == 0 && size == 16384)[0];
    let mp = a + le16(vol, a + 32);
    let h = vol[mp];
    let (nc, no) = ((h & 15) as usize, (h >> 4) as usize);
    let mut lcn = [0u8; 8];
    lcn[..no].copy_from_slice(&vol[mp + 1 + nc..mp + 1 + nc + no]);
    u64::from_le_bytes(lcn)
}

#[test]
fn hostile_data_runs() {
    let tmp = tempfile::tempdir().unwrap();
    let (_, vol) = refusals(tmp.path());
    let lcn = plain_lcn(&vol);
    assert!(lcn > 0 && lcn < 0x7fff, "LCN {lcn}");
    let l = (lcn as u16).to_le_bytes();
    let second = ((lcn + 16) as u16).to_le_bytes();
    // The first half in place, then a run of 0 clusters (invalid): reads of
    // the first 8 KiB work, reads reaching past them fail the same way.
    let fs = with_runs(&vol, &[0x21, 16, l[0], l[1], 0x01, 0x00]);
    let (n, failed) = same_as_path_reads(&fs, "/plain.bin");
    assert!(failed > 10 && failed < n - 10, "{failed} of {n} failed");
    let h = rdprescue::fs::open_read(&fs, "/plain.bin").unwrap();
    let e = h.read_at(8000, &mut [0u8; 1000]).unwrap_err();
    assert!(matches!(e, rdprescue::Error::Corrupt { layer: rdprescue::error::Layer::Ntfs, .. }), "{e:?}");
    assert!(e.to_string().contains("cluster count"), "{e}");
    // Runs that cover half the data size: the rest is missing.
    let fs = with_runs(&vol, &[0x21, 16, l[0], l[1]]);
    let (_, failed) = same_as_path_reads(&fs, "/plain.bin");
    assert!(failed > 10);
    // A sparse run then a real one (the second half in place).
    let fs = with_runs(&vol, &[0x01, 16, 0x21, 16, second[0], second[1]]);
    let (_, failed) = same_as_path_reads(&fs, "/plain.bin");
    assert_eq!(failed, 0);
    let h = rdprescue::fs::open_read(&fs, "/plain.bin").unwrap();
    let mut b = vec![7u8; 16384];
    assert_eq!(h.read_at(0, &mut b).unwrap(), 16384);
    assert!(b[..8192].iter().all(|&x| x == 0));
    // A run that leaves the volume after 8 of its 32 clusters: the first
    // 4 KiB read, reads reaching past them fail, the same way.
    let end = ((vol.len() / 512 - 8) as u16).to_le_bytes();
    let fs = with_runs(&vol, &[0x21, 32, end[0], end[1]]);
    let (n, failed) = same_as_path_reads(&fs, "/plain.bin");
    assert!(failed > 10 && failed < n - 10, "{failed} of {n} failed");
    let h = rdprescue::fs::open_read(&fs, "/plain.bin").unwrap();
    assert_eq!(h.read_at(0, &mut [0u8; 4096]).unwrap(), 4096);
    let e = h.read_at(4000, &mut [0u8; 100]).unwrap_err();
    assert!(matches!(e, rdprescue::Error::Corrupt { layer: rdprescue::error::Layer::Ntfs, .. }), "{e:?}");
}

/// The hives and logs of demo.vhdx (what `inspect` pages through the handle).
#[test]
fn handles_on_the_hives_of_demo_vhdx() {
    let image = rdprescue::image::open(&testdata().join("demo.vhdx")).unwrap();
    let table = rdprescue::volume::read_partitions(&*image.disk).unwrap();
    let mut compared = 0;
    for p in &table.partitions {
        let slice: Arc<dyn Disk> = Arc::new(rdprescue::volume::Slice::of(image.disk.clone(), p));
        let Ok(fs) = rdprescue::fs::open(slice, p.offset) else { continue };
        let fs: Rc<dyn FileSystem> = Rc::from(fs);
        let Ok(names) = fs.list_dir("Windows/System32/config") else { continue };
        for name in names {
            let path = format!("Windows/System32/config/{name}");
            if fs.stat(&path).is_ok_and(|s| !s.is_dir) {
                let (n, failed) = same_as_path_reads(&fs, &path);
                assert_eq!(failed, 0, "{path}");
                compared += n;
            }
        }
    }
    assert!(compared > 500, "only {compared} ranges compared: no Windows volume in demo.vhdx?");
}

/// A FAT volume has no handle of its own: the fallback reads by path.
#[test]
fn fat_falls_back_to_path_reads() {
    let tmp = tempfile::tempdir().unwrap();
    let img = gunzip(&testdata().join("images/gen2-gpt.raw.gz"), tmp.path());
    let image = rdprescue::image::open(&img).unwrap();
    let table = rdprescue::volume::read_partitions(&*image.disk).unwrap();
    let mut files = 0;
    for p in &table.partitions {
        let slice: Arc<dyn Disk> = Arc::new(rdprescue::volume::Slice::of(image.disk.clone(), p));
        let Ok(fs) = rdprescue::fs::open(slice, p.offset) else { continue };
        if fs.kind() == rdprescue::fs::FsKind::Ntfs {
            continue;
        }
        assert!(fs.open_file("EFI/Microsoft/Boot/BCD").unwrap().is_none());
        let fs: Rc<dyn FileSystem> = Rc::from(fs);
        for path in ["EFI/Microsoft/Boot/BCD", "EFI/Boot/bootx64.efi"] {
            if fs.exists(path) {
                let (_, failed) = same_as_path_reads(&fs, path);
                assert_eq!(failed, 0, "{path}");
                files += 1;
            }
        }
        let h = rdprescue::fs::open_read_in(&*fs, "EFI/Microsoft/Boot/BCD").unwrap();
        let (mut x, mut y) = (vec![0u8; 5000], vec![1u8; 5000]);
        assert_eq!(outcome(fs.read_at("EFI/Microsoft/Boot/BCD", 3000, &mut x), &x), outcome(h.read_at(3000, &mut y), &y));
        assert!(rdprescue::fs::open_read_in(&*fs, "EFI").is_err(), "a directory");
        let by_path = fs.read_at("nope", 0, &mut [0u8; 4]).unwrap_err().to_string();
        assert_eq!(rdprescue::fs::open_read(&fs, "nope").err().map(|e| e.to_string()), Some(by_path));
    }
    assert!(files > 0, "no FAT file compared");
}

/// Random damage to the data runs and sizes of plain.bin (one run),
/// sparse.bin (runs and a hole) and frag.bin's first `$ATTRIBUTE_LIST`
/// fragment: no panic; a handle read that works gives the path read's bytes;
/// one that fails fails like the path read, except where a run leaves the
/// volume (the crate's stream then reads the next run in its place, the
/// handle refuses with the end-of-volume error).
#[test]
fn damaged_runs_and_sizes_read_as_path_reads_do() {
    let tmp = tempfile::tempdir().unwrap();
    let (_, vol) = refusals(tmp.path());
    let frag_len = mount_bytes(vol.clone()).stat("/frag.bin").unwrap().size;
    let attrs = [
        find_data_attr(&vol, |flags, size, _| flags == 0 && size == 16384),
        find_data_attr(&vol, |flags, _, _| flags == 0x8000),
        find_data_attr(&vol, |_, size, vcn| vcn == 0 && size == frag_len),
    ];
    assert!(attrs.iter().all(|a| a.len() == 1), "{attrs:?}");
    const EOF: &str = "reading file data: failed to fill whole buffer";
    let mut x = 0x2545_f491_4f6c_dd1du64;
    let mut next = move || {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        x
    };
    let (mut reads, mut handle_ok, mut deviations) = (0, 0, 0);
    for _ in 0..400 {
        let mut v = vol.clone();
        let a = attrs[(next() % 3) as usize][0];
        let end = a + u32::from_le_bytes(v[a + 4..a + 8].try_into().unwrap()) as usize;
        for _ in 0..1 + next() % 3 {
            // Sizes (+40..+64) or the mapping pairs, never a fixup slot.
            let at = if next() % 4 == 0 { a + 40 + (next() % 24) as usize } else { a + le16(&v, a + 32) + (next() as usize % (end - a - le16(&v, a + 32))) };
            if at % 512 < 510 {
                v[at] = next() as u8;
            }
        }
        let image = rdprescue::image::open_source(rdprescue::image::MemSource::arc("v.img", v)).unwrap();
        let Ok(fs) = rdprescue::fs::open(image.disk.clone(), 0) else { continue };
        let fs: Rc<dyn FileSystem> = Rc::from(fs);
        for path in ["/plain.bin", "/sparse.bin", "/frag.bin"] {
            let h = match rdprescue::fs::open_read(&fs, path) {
                Ok(h) => h,
                Err(e) => {
                    let by_path = fs.read_at(path, 0, &mut [0u8; 16]).err().map(|e| e.to_string());
                    assert_eq!(by_path, Some(e.to_string()), "{path}: open failed, the path read did not fail alike");
                    continue;
                }
            };
            let size = h.size();
            for (off, len) in [(0u64, 1usize), (0, 4096), (1000, 20_000), (8192, 4096), (size / 2, 3000), (size.saturating_sub(1), 10), (size, 5)] {
                let (mut p, mut q) = (vec![0u8; len], vec![1u8; len]);
                let by_path = outcome(fs.read_at(path, off, &mut p), &p);
                let by_handle = outcome(h.read_at(off, &mut q), &q);
                reads += 1;
                match &by_handle {
                    Ok(_) => {
                        handle_ok += 1;
                        assert!(by_path == by_handle, "{path} at {off:#x}+{len}: handle read {} bytes, path read {:?}", q.len(), by_path.as_ref().map(|b| b.len()));
                    }
                    Err(e) if by_path.as_ref().err() == Some(e) => {}
                    Err(e) => {
                        assert!(e.ends_with(EOF), "{path} at {off:#x}+{len}: handle {e}, path {:?}", by_path.as_ref().map(|b| b.len()));
                        deviations += 1;
                    }
                }
            }
        }
    }
    eprintln!("damaged runs: {reads} reads compared, {handle_ok} read by the handle, {deviations} refused past the volume where the crate read on");
    assert!(reads > 1000 && handle_ok > reads / 4, "{reads} reads, {handle_ok} ok");
}
