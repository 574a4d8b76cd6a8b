//! The image writers (`rdprescue::image::write::{full_copy, diff_child}` and
//! `Patch`) on arbitrary images with a small patch.
//!
//! Input layout: `[flags u8][u32 LE parent length][7 × (u32 LE offset,
//! u16 LE length, u8 fill)][parent image][image]` (54 header bytes; missing
//! bytes read as 0).
//!
//! * flags & 7: the number of patch ranges used. A range's offset is
//!   `offset / 2^32` of the virtual size, its length at most 65535 bytes (cut
//!   at the end of the disk), its data a pattern from the fill byte (fill 0:
//!   zeros, which exercises the writers' dropping of all-zero blocks).
//! * flags & 8: the image is preceded by a parent image of `parent length`
//!   bytes (clamped). The writers read their input by path, so the images go
//!   to files in a per-process directory under /dev/shm (tmpfs): the parent
//!   (or, without one, the image itself) to `disk.img`, the image to `top.img`
//!   next to it, so a differencing image whose locator names `.\disk.img`
//!   (what `diff_child` writes for an input at `disk.img`) opens with its
//!   parent, and its flattening is fuzzed too.
//! * flags & 16: first recompute the VHD footer / dynamic header checksums and
//!   the VHDX header and region table CRC-32Cs of both images, so that
//!   mutated fields get past the integrity checks.
//!
//! The image is opened with `image::open`; images with a virtual size over
//! 256 MiB are skipped. (The work directory is `rdprescue-fuzz-write-PID`;
//! those of processes that are gone are removed at start.) Then:
//!
//! * `full_copy` into a new file; when it succeeds the output must open, have
//!   the format the writer promises (raw → raw, fixed → fixed, dynamic and
//!   differencing → dynamic), the same virtual and logical sector sizes, and
//!   read back the input's bytes with the patch applied;
//! * `diff_child` (VHD and VHDX inputs; a raw input must be refused) into a
//!   new file next to the input; when it succeeds the child must open (its
//!   parent is the input, found through the locators written) as a
//!   differencing disk and read back the same.
//!
//! "Read back" is checked over every patched range widened by 4 KiB on each
//! side (a child stores whole sectors / 4 KiB groups: the bytes around the
//! patch must come from the parent unchanged), the first and last 4 KiB and a
//! few more sampled ranges. Progress reports must not pass their total.
//!
//! With WRITE_FUZZ_SAVE_PAIRS=DIR set, every successful differencing child of
//! a parent-less input is saved to DIR as a flags-8 input (parent = the
//! input, image = the child): `run.sh` makes its differencing seeds that way.
#![no_main]
use libfuzzer_sys::fuzz_target;
use rdprescue::image::write::{diff_child, full_copy, Patch};
use rdprescue::image::{open, Format, Image};
use std::fs::{File, OpenOptions};
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

const MAX_VSIZE: u64 = 256 << 20;
const HEADER: usize = 1 + 4 + 7 * 7;

fn dir() -> &'static Path {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        let base = if Path::new("/dev/shm").is_dir() { PathBuf::from("/dev/shm") } else { std::env::temp_dir() };
        // Directories of earlier runs that died (a crash aborts the process
        // before it can clean up) go first.
        let proc_fs = Path::new("/proc/self").exists();
        for e in std::fs::read_dir(&base).into_iter().flatten().flatten().filter(|_| proc_fs) {
            let name = e.file_name();
            let pid = name.to_str().and_then(|n| n.strip_prefix("rdprescue-fuzz-write-")).and_then(|p| p.parse::<u32>().ok());
            if pid.is_some_and(|p| !Path::new(&format!("/proc/{p}")).exists()) {
                let _ = std::fs::remove_dir_all(e.path());
            }
        }
        let d = base.join(format!("rdprescue-fuzz-write-{}", std::process::id()));
        std::fs::create_dir_all(&d).expect("create the fuzz work directory");
        d
    })
}

fn fresh(p: &Path) -> File {
    OpenOptions::new().read(true).write(true).create(true).truncate(true).open(p).expect("create an output file")
}

/// Remove this process' files (the next run must not see them as parents).
fn clean(paths: &[&PathBuf]) {
    for p in paths {
        let _ = std::fs::remove_file(p);
    }
}

/// The image bytes, with checksums and CRCs recomputed when flags & 16.
fn fixed(b: &[u8], flags: u8) -> Vec<u8> {
    let mut v = b.to_vec();
    if flags & 16 == 0 {
        return v;
    }
    let vhd_sum = |v: &mut [u8], at: usize, len: usize, field: usize| {
        if let Some(s) = v.get_mut(at..at + len) {
            s[field..field + 4].fill(0);
            let sum = !s.iter().fold(0u32, |a, &x| a.wrapping_add(u32::from(x)));
            s[field..field + 4].copy_from_slice(&sum.to_be_bytes());
        }
    };
    let len = v.len();
    if len >= 512 && &v[len - 512..len - 504] == b"conectix" {
        vhd_sum(&mut v, len - 512, 512, 64);
    }
    if v.get(0..8) == Some(b"conectix") {
        vhd_sum(&mut v, 0, 512, 64);
    }
    // The dynamic header, where the footer (end, else the copy at 0) says.
    let foot = if len >= 512 && &v[len - 512..len - 504] == b"conectix" { Some(len - 512) } else { (len >= 512 && &v[..8] == b"conectix").then_some(0) };
    if let Some(f) = foot {
        let off = u64::from_be_bytes(v[f + 16..f + 24].try_into().unwrap());
        if let Ok(off) = usize::try_from(off) {
            if off.checked_add(1024).is_some_and(|e| e <= len) && &v[off..off + 8] == b"cxsparse" {
                vhd_sum(&mut v, off, 1024, 36);
            }
        }
    }
    if v.get(0..8) == Some(b"vhdxfile") {
        const CRC32C: crc::Crc<u32> = crc::Crc::<u32>::new(&crc::CRC_32_ISCSI);
        for (at, size, sig) in [(64usize << 10, 4096usize, b"head"), (128 << 10, 4096, b"head"), (192 << 10, 65536, b"regi"), (256 << 10, 65536, b"regi")] {
            if let Some(s) = v.get_mut(at..at + size) {
                if &s[..4] == sig {
                    s[4..8].fill(0);
                    let c = CRC32C.checksum(s);
                    s[4..8].copy_from_slice(&c.to_le_bytes());
                }
            }
        }
    }
    v
}

/// Expected bytes of `[off, off + len)`: the input's, with the patch over them.
fn expected(input: &Image, patch: &Patch, off: u64, len: usize) -> Option<Vec<u8>> {
    let mut b = vec![0u8; len];
    input.disk.read_at(off, &mut b).ok()?;
    let end = off + len as u64;
    for (o, d) in patch.ranges() {
        let (lo, hi) = (o.max(off), (o + d.len() as u64).min(end));
        if lo < hi {
            b[(lo - off) as usize..(hi - off) as usize].copy_from_slice(&d[(lo - o) as usize..(hi - o) as usize]);
        }
    }
    Some(b)
}

fn check_reads(what: &str, input: &Image, out: &Image, patch: &Patch, samples: &[(u64, usize)]) {
    assert_eq!(out.disk.len(), input.disk.len(), "{what}: virtual size changed");
    assert_eq!(out.disk.sector_size(), input.disk.sector_size(), "{what}: sector size changed");
    for &(off, len) in samples {
        let mut got = vec![0u8; len];
        if let Err(e) = out.disk.read_at(off, &mut got) {
            panic!("{what}: reading {len} bytes at {off:#x} of the output fails: {e}");
        }
        // Where the input itself cannot be read, the output may hold anything.
        if let Some(want) = expected(input, patch, off, len) {
            if let Some(i) = (0..len).find(|&i| got[i] != want[i]) {
                panic!(
                    "{what}: byte {:#x} reads {:#04x}, expected {:#04x} (input {:?}, patch {:?})",
                    off + i as u64,
                    got[i],
                    want[i],
                    input.info.format,
                    patch.ranges().map(|(o, d)| (o, d.len())).collect::<Vec<_>>()
                );
            }
        }
    }
}

fuzz_target!(|data: &[u8]| {
    let mut head = [0u8; HEADER];
    let n = data.len().min(HEADER);
    head[..n].copy_from_slice(&data[..n]);
    let rest = &data[n..];
    let flags = head[0];
    let (parent, image_bytes) = if flags & 8 != 0 {
        let plen = u32::from_le_bytes(head[1..5].try_into().unwrap()) as usize;
        let (p, i) = rest.split_at(plen.min(rest.len()));
        (Some(p), i)
    } else {
        (None, rest)
    };

    let d = dir();
    let (base, top, copy, child) = (d.join("disk.img"), d.join("top.img"), d.join("copy.out"), d.join("child.out"));
    let all = [&base, &top, &copy, &child];
    clean(&all);
    let inp = match parent {
        Some(p) => {
            std::fs::write(&base, fixed(p, flags)).expect("write the parent image");
            &top
        }
        None => &base,
    };
    std::fs::write(inp, fixed(image_bytes, flags)).expect("write the input image");
    let Ok(input) = open(inp) else { return clean(&all) };
    let vsize = input.disk.len();
    if vsize == 0 || vsize > MAX_VSIZE {
        drop(input);
        return clean(&all);
    }

    let mut patch = Patch::default();
    for i in 0..(flags & 7) as usize {
        let e = &head[5 + 7 * i..12 + 7 * i];
        let off = (u64::from(u32::from_le_bytes([e[0], e[1], e[2], e[3]])) * vsize) >> 32;
        let len = u64::from(u16::from_le_bytes([e[4], e[5]])).min(vsize - off) as usize;
        let fill = e[6];
        let bytes: Vec<u8> = if fill == 0 { vec![0; len] } else { (0..len).map(|k| fill ^ (k as u8).wrapping_mul(fill | 1)).collect() };
        patch.write(off, &bytes);
    }
    assert!(patch.end() <= vsize);

    // Ranges to compare.
    let mut samples: Vec<(u64, usize)> = Vec::new();
    let mut add = |o: u64, e: u64| {
        let e = e.min(vsize);
        if o < e {
            samples.push((o, (e - o) as usize));
        }
    };
    add(0, 4096);
    add(vsize.saturating_sub(4096), vsize);
    for (o, dd) in patch.ranges() {
        add(o.saturating_sub(4096), o + dd.len() as u64 + 4096);
    }
    for k in 1..4u64 {
        let o = vsize / 4 * k;
        add(o - o % 512, o - o % 512 + 4096);
    }

    let mut last = (0u64, 0u64);
    let mut progress = |done: u64, total: u64| {
        assert!(done <= total, "progress {done} of {total}");
        assert!(done >= last.0 || total != last.1, "progress went back from {} to {done}", last.0);
        last = (done, total);
    };
    if full_copy(&input, &patch, &mut fresh(&copy), &mut progress).is_ok() {
        let out = match open(&copy) {
            Ok(o) => o,
            Err(e) => panic!("full copy of a {:?} input does not open: {e}", input.info.format),
        };
        let want = match input.info.format {
            Format::VhdDifferencing => Format::VhdDynamic,
            Format::VhdxDifferencing => Format::VhdxDynamic,
            f => f,
        };
        assert_eq!(out.info.format, want, "full copy format");
        check_reads("full copy", &input, &out, &patch, &samples);
    }

    let res = diff_child(&input, &patch, &mut fresh(&child), &child);
    if input.info.format == Format::Raw {
        assert!(res.is_err(), "a raw image got a differencing child");
    } else if res.is_ok() {
        if let (Some(save), None) = (std::env::var_os("WRITE_FUZZ_SAVE_PAIRS"), parent) {
            let me = fixed(image_bytes, flags);
            let mut seed = vec![8 | (flags & 0x17)];
            seed.extend_from_slice(&(me.len() as u32).to_le_bytes());
            seed.extend_from_slice(&head[5..]);
            seed.extend_from_slice(&me);
            seed.extend_from_slice(&std::fs::read(&child).expect("read the child back"));
            let name = format!("pair-{:?}-{:016x}", input.info.format, seed.iter().fold(0xcbf29ce484222325u64, |h, &b| (h ^ u64::from(b)).wrapping_mul(0x100000001b3)));
            std::fs::write(Path::new(&save).join(name), seed).expect("save a pair seed");
        }
        let out = match open(&child) {
            Ok(o) => o,
            Err(e) => panic!("differencing child of a {:?} input does not open: {e}", input.info.format),
        };
        assert!(
            matches!(out.info.format, Format::VhdDifferencing | Format::VhdxDifferencing),
            "child format {:?}",
            out.info.format
        );
        check_reads("differencing child", &input, &out, &patch, &samples);
    }
    drop(input);
    clean(&all);
});
