//! Containers other than raw/VHD/VHDX (issue 14, item 1).
//!
//! * Files that are no disk image this tool reads (compressed, VDI, ISO,
//!   QCOW v1, empty, tiny, text, unknown bytes) are named in one line with
//!   the command that converts them, exit 2, for every command; nothing is
//!   written.
//! * VMDK (monolithic sparse, stream-optimized, monolithic flat, split
//!   sparse, a child with a parent) and QCOW2 (v2, v3, compressed clusters,
//!   zero clusters, raw and qcow2 backing files) made by qemu-img from a
//!   sparse raw disk with data past 4 GiB read byte for byte like
//!   `qemu-img convert -O raw` of the same file.
//! * The README's demo image converted to VMDK and QCOW2 gives the same
//!   `disk` and `inspect --json` findings as the original; `fix` refuses to
//!   write those formats, before any plan, with nothing written.

mod common;
use common::*;
use rdprescue::image::{self, Format};
use std::path::{Path, PathBuf};
use std::process::Command;

const MIB: u64 = 1 << 20;
/// 4 GiB + 3 MiB + 1.5 KiB: data past 4 GiB, a size that is no multiple of
/// any cluster or grain.
const SIZE: u64 = (4 << 30) + 3 * MIB + 1536;

/// Patterned pieces of the source disk (offset, length): an MBR signature at
/// 510 makes it a disk; pieces straddle 64 KiB clusters/grains, the 2 GiB
/// split of twoGbMaxExtent*, 4 GiB, and the very end.
fn pieces() -> Vec<(u64, usize)> {
    vec![
        (0, 70_000),
        (MIB - 700, 1400),
        (5 * MIB + 512, 300_000),
        ((2 << 30) - 4096, 8192 + 100),
        ((4 << 30) - 65_536 - 3, 200_000),
        (SIZE - 123_456, 123_456),
    ]
}

/// Windows compared: every piece with a margin, boundaries, zero stretches.
fn windows() -> Vec<(u64, usize)> {
    let mut w: Vec<(u64, usize)> = pieces().iter().map(|&(o, n)| (o.saturating_sub(4096), n + 8192)).collect();
    w.extend([(65_536 - 10, 20), (3 * MIB, 128 << 10), ((3 << 30) + 12_345, 70_000), (SIZE - 512, 512), (SIZE - 1, 1)]);
    w.retain(|&(o, n)| o + n as u64 <= SIZE);
    w.iter().map(|&(o, n)| (o, n.min((SIZE - o) as usize))).collect()
}

fn run(c: &mut Command) {
    let o = c.out().unwrap();
    assert!(o.status.success(), "{c:?}: {}", stderr(&o));
}

/// The sparse source disk.
fn make_source(dir: &Path) -> PathBuf {
    let p = dir.join("src.raw");
    let f = std::fs::File::create(&p).unwrap();
    f.set_len(SIZE).unwrap();
    for (i, (off, n)) in pieces().into_iter().enumerate() {
        let mut d = pattern(i as u64 + 1, off, n);
        if off == 0 {
            // An MBR without partitions.
            d[446..510].fill(0);
            d[510] = 0x55;
            d[511] = 0xAA;
        }
        write_all_at(&f, &d, off).unwrap();
    }
    p
}

fn qemu_img(args: &[&str], paths: &[&Path]) {
    run(Command::new("qemu-img").args(args).args(paths));
}

/// Compare our reading of `img` with `qemu-img convert -O raw` of it, in
/// every window; returns the opened format.
fn same_as_qemu(dir: &Path, img: &Path) -> Format {
    let raw = dir.join("qemu-out.raw");
    let _ = std::fs::remove_file(&raw);
    qemu_img(&["convert", "-O", "raw"], &[img, &raw]);
    let before = sha256_file(img);
    let ours = image::open(img).unwrap_or_else(|e| panic!("{}: {e}", img.display()));
    assert_eq!(ours.disk.len(), std::fs::metadata(&raw).unwrap().len(), "{}: virtual size", img.display());
    let theirs = std::fs::File::open(&raw).unwrap();
    for (off, n) in windows() {
        let mut a = vec![0u8; n];
        let mut b = vec![0u8; n];
        ours.disk.read_at(off, &mut a).unwrap_or_else(|e| panic!("{} at {off:#x}: {e}", img.display()));
        read_exact_at(&theirs, &mut b, off).unwrap();
        assert!(a == b, "{}: bytes differ from qemu-img in [{off:#x}, +{n})", img.display());
    }
    std::fs::remove_file(&raw).unwrap();
    assert_eq!(before, sha256_file(img), "the input was modified");
    ours.info.format
}

#[test]
#[cfg_attr(not(tool_qemu_img), ignore = "needs qemu-img")]
fn vmdk_subformats_read_like_qemu() {
    require("qemu-img");
    let tmp = tempfile::tempdir().unwrap();
    let t = tmp.path();
    let src = make_source(t);
    for (sub, want) in [
        ("monolithicSparse", Format::VmdkSparse),
        ("streamOptimized", Format::VmdkStream),
        ("monolithicFlat", Format::VmdkFlat),
        ("twoGbMaxExtentSparse", Format::VmdkSparse),
        ("twoGbMaxExtentFlat", Format::VmdkFlat),
    ] {
        let d = t.join(sub);
        std::fs::create_dir(&d).unwrap();
        let v = d.join("disk.vmdk");
        qemu_img(&["convert", "-f", "raw", "-O", "vmdk", "-o", &format!("subformat={sub}")], &[&src, &v]);
        assert_eq!(same_as_qemu(t, &v), want, "{sub}");
        // Our own output formats agree with the reader.
        let o = rdp_on(&v, &["disk", "--json", v.to_str().unwrap()]);
        assert_eq!(o.status.code(), Some(0), "{sub}: {}", stderr(&o));
        let j: serde_json::Value = serde_json::from_str(&stdout(&o)).unwrap();
        assert_eq!(j["container"]["format"], want.name(), "{sub}: {j}");
        std::fs::remove_dir_all(&d).unwrap();
    }
}

#[test]
#[cfg_attr(not(all(tool_qemu_img, tool_qemu_io)), ignore = "needs qemu-img and qemu-io")]
fn vmdk_child_over_its_parent() {
    require("qemu-img");
    require("qemu-io");
    let tmp = tempfile::tempdir().unwrap();
    let t = tmp.path();
    let src = make_source(t);
    let base = t.join("base.vmdk");
    qemu_img(&["convert", "-f", "raw", "-O", "vmdk"], &[&src, &base]);
    let child = t.join("child.vmdk");
    run(Command::new("qemu-img").args(["create", "-f", "vmdk", "-b", "base.vmdk", "-F", "vmdk"]).arg(&child));
    run(Command::new("qemu-io").args(["-f", "vmdk", "-c", "write -P 0xab 1048000 200000", "-c", "write -P 0xcd 4294967000 5000"]).arg(&child));
    assert_eq!(same_as_qemu(t, &child), Format::VmdkSparse);
    let img = image::open(&child).unwrap();
    assert_eq!(img.info.parent.as_ref().unwrap().format, Format::VmdkSparse);
    // The parent changed after the child was made: its CID no longer matches.
    let o = rdp_on(&child, &["disk", child.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    run(Command::new("qemu-io").args(["-f", "vmdk", "-c", "write -P 0x11 0 512"]).arg(&base));
    let o = rdp_on(&child, &["disk", child.to_str().unwrap()]);
    assert_layer_error(&o, "changed parent");
    assert!(stderr(&o).contains("image/vmdk") && stderr(&o).contains("CID"), "{}", stderr(&o));
}

#[test]
#[cfg_attr(not(tool_qemu_img), ignore = "needs qemu-img")]
fn qcow2_versions_and_compressed_clusters_read_like_qemu() {
    require("qemu-img");
    let tmp = tempfile::tempdir().unwrap();
    let t = tmp.path();
    let src = make_source(t);
    for (opts, compress) in [("compat=0.10", false), ("compat=1.1", false), ("compat=1.1,cluster_size=4096", false), ("compat=1.1", true), ("compat=0.10,cluster_size=2M", true)] {
        let q = t.join("d.qcow2");
        let _ = std::fs::remove_file(&q);
        let mut args = vec!["convert", "-f", "raw", "-O", "qcow2", "-o", opts];
        if compress {
            args.push("-c");
        }
        qemu_img(&args, &[&src, &q]);
        assert_eq!(same_as_qemu(t, &q), Format::Qcow2, "{opts} compressed={compress}");
    }
}

#[test]
#[cfg_attr(not(all(tool_qemu_img, tool_qemu_io)), ignore = "needs qemu-img and qemu-io")]
fn qcow2_backing_files_and_zero_clusters() {
    require("qemu-img");
    require("qemu-io");
    let tmp = tempfile::tempdir().unwrap();
    let t = tmp.path();
    let src = make_source(t);
    let base_q = t.join("base.qcow2");
    qemu_img(&["convert", "-f", "raw", "-O", "qcow2"], &[&src, &base_q]);
    for (backing, fmt, compat) in [("src.raw", "raw", "1.1"), ("base.qcow2", "qcow2", "1.1"), ("src.raw", "raw", "0.10")] {
        let child = t.join("child.qcow2");
        let _ = std::fs::remove_file(&child);
        run(Command::new("qemu-img").args(["create", "-f", "qcow2", "-o", &format!("compat={compat}"), "-b", backing, "-F", fmt]).arg(&child));
        // Data over the backing file, zero clusters hiding its data (v3: the
        // zero flag; v2: qemu allocates zeroed clusters), one past 4 GiB.
        run(Command::new("qemu-io").args([
            "-f",
            "qcow2",
            "-c",
            "write -P 0xab 65000 70000",
            "-c",
            "write -z 0 65536",
            "-c",
            &format!("write -z {} 131072", (4u64 << 30) - 65_536),
            "-c",
            &format!("write -P 0x5a {} 1000", SIZE - 1000),
        ]).arg(&child));
        assert_eq!(same_as_qemu(t, &child), Format::Qcow2, "backing {backing}, compat {compat}");
        let img = image::open(&child).unwrap();
        let parent = img.info.parent.as_ref().expect("the backing file is the parent");
        assert_eq!(parent.format, if fmt == "raw" { Format::Raw } else { Format::Qcow2 });
        let mut head = [0xFFu8; 512];
        img.disk.read_at(0, &mut head).unwrap();
        assert!(head.iter().all(|&b| b == 0), "zero cluster over backing data reads zeros");
    }
    // A missing backing file: one line naming it.
    std::fs::rename(&base_q, t.join("moved.qcow2")).unwrap();
    let child = t.join("orphan.qcow2");
    run(Command::new("qemu-img").args(["create", "-f", "qcow2", "-u", "-b", "base.qcow2", "-F", "qcow2"]).arg(&child).arg(SIZE.to_string()));
    let o = rdp_on(&child, &["disk", child.to_str().unwrap()]);
    assert_layer_error(&o, "missing backing file");
    assert!(stderr(&o).contains("image/qcow2") && stderr(&o).contains("parent disk missing: expected base.qcow2"), "{}", stderr(&o));
}

/// Findings of `inspect --json` without what names the container.
fn findings(v: &serde_json::Value) -> serde_json::Value {
    let mut v = v.clone();
    if let Some(o) = v.as_object_mut() {
        for k in ["image", "path", "container", "source"] {
            o.remove(k);
        }
    }
    v
}

#[test]
#[cfg_attr(not(tool_qemu_img), ignore = "needs qemu-img")]
fn demo_image_as_vmdk_and_qcow2_gives_the_same_findings() {
    require("qemu-img");
    let tmp = tempfile::tempdir().unwrap();
    let t = tmp.path();
    let demo = testdata().join("demo.vhdx");
    let d = demo.to_str().unwrap();
    let want_disk: serde_json::Value = serde_json::from_str(&stdout(&rdp_on(&demo, &["disk", "--json", d]))).unwrap();
    let o = rdp_on(&demo, &["inspect", "--json", d]);
    let want: serde_json::Value = serde_json::from_str(&stdout(&o)).unwrap();
    assert!(want["findings"].as_array().is_some_and(|f| !f.is_empty()), "the demo has findings: {want}");
    for (name, args, format) in [
        ("demo.vmdk", vec!["-O", "vmdk", "-o", "subformat=streamOptimized"], Format::VmdkStream),
        ("demo-sparse.vmdk", vec!["-O", "vmdk"], Format::VmdkSparse),
        ("demo.qcow2", vec!["-O", "qcow2", "-c"], Format::Qcow2),
    ] {
        let p = t.join(name);
        let mut a = vec!["convert", "-f", "vhdx"];
        a.extend(args);
        qemu_img(&a, &[&demo, &p]);
        let s = p.to_str().unwrap();
        let o = rdp_on(&p, &["disk", "--json", s]);
        assert_eq!(o.status.code(), Some(0), "{name}: {}", stderr(&o));
        let got: serde_json::Value = serde_json::from_str(&stdout(&o)).unwrap();
        assert_eq!(got["container"]["format"], format.name());
        assert_eq!(got["partition_table"], want_disk["partition_table"], "{name}: partitions");
        assert_eq!(got["windows_volumes"], want_disk["windows_volumes"], "{name}");
        let o = rdp_on(&p, &["inspect", "--json", s]);
        let got: serde_json::Value = serde_json::from_str(&stdout(&o)).unwrap_or_else(|e| panic!("{name}: {e}: {}", stderr(&o)));
        assert_eq!(findings(&got), findings(&want), "{name}: inspect findings");

        // Writing these formats is refused before any plan, nothing written.
        let out = t.join(format!("{name}.fixed"));
        let o = rdp_on(&p, &["fix", s, "--all", "--out", out.to_str().unwrap()]);
        assert_clean_error(&o, "fix of a read-only format");
        assert!(stderr(&o).contains("reads but does not write: choose an output format"), "{}", stderr(&o));
        assert!(stdout(&o).is_empty(), "no plan before the refusal: {}", stdout(&o));
        assert!(!out.exists());
        let o = rdp_on(&p, &["reg", "set", s, r"HKLM\SYSTEM\CurrentControlSet\Control\Terminal Server", "-v", "fDenyTSConnections", "-t", "REG_DWORD", "-d", "0", "--out", out.to_str().unwrap()]);
        assert_clean_error(&o, "reg set on a read-only format");
        assert!(!out.exists());
        // An --out that names a writable format makes the copy a conversion.
        let conv = t.join(format!("{name}-fixed.vhdx"));
        let o = rdp_on(&p, &["fix", s, "--all", "--out", conv.to_str().unwrap()]);
        assert!(o.status.success(), "{name}: fix --out .vhdx: {}", stderr(&o));
        let o = rdp_on(&conv, &["disk", "--json", conv.to_str().unwrap()]);
        let got: serde_json::Value = serde_json::from_str(&stdout(&o)).unwrap();
        assert_eq!(got["container"]["format"], "vhdx-dynamic", "{name}");
        assert_eq!(got["windows_volumes"], want_disk["windows_volumes"], "{name}: the converted copy");
        let o = rdp_on(&conv, &["inspect", "--json", conv.to_str().unwrap()]);
        let fixed: serde_json::Value = serde_json::from_str(&stdout(&o)).unwrap();
        let count = |v: &serde_json::Value| v["findings"].as_array().map_or(0, Vec::len);
        assert!(count(&want) > 0 && count(&fixed) < count(&want), "{name}: {} findings after the fix, {} before", count(&fixed), count(&want));
        std::fs::remove_file(&conv).unwrap();
        std::fs::remove_file(&p).unwrap();
    }
}

/// Files that are no disk image: one line naming what it is, exit 2, for
/// every command, nothing written.
#[test]
fn unreadable_containers_are_named() {
    let tmp = tempfile::tempdir().unwrap();
    let t = tmp.path();
    let put = |name: &str, bytes: &[u8]| {
        let p = t.join(name);
        std::fs::write(&p, bytes).unwrap();
        p
    };
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    std::io::Write::write_all(&mut gz, &[0u8; 4096]).unwrap();
    let gz = gz.finish().unwrap();
    let sector = |o: usize, sig: &[u8]| {
        let mut v = vec![0u8; 64 << 10];
        v[o..o + sig.len()].copy_from_slice(sig);
        v
    };
    let cases: Vec<(PathBuf, &str)> = vec![
        (put("disk.vhdx.gz", &gz), "gzip-compressed, not a disk image: decompress it first: gzip -dc"),
        (put("disk.raw.xz", &sector(0, &[0xFD, b'7', b'z', b'X', b'Z', 0])), "xz-compressed"),
        (put("disk.raw.zst", &sector(0, &[0x28, 0xB5, 0x2F, 0xFD])), "zstd-compressed"),
        (put("disk.bz2", &sector(0, b"BZh9")), "bzip2-compressed"),
        (put("disk.zip", &sector(0, b"PK\x03\x04")), "zip archive"),
        (put("disk.7z", &sector(0, b"7z\xBC\xAF\x27\x1C")), "7-Zip archive"),
        (put("vm.ova", &sector(257, b"ustar")), "tar archive"),
        (put("win.vdi", &sector(0x40, &0xBEDA_107Fu32.to_le_bytes())), "VirtualBox VDI image, which this tool does not read: convert it: qemu-img convert -O vhdx"),
        (put("old.qcow", &sector(0, b"QFI\xfb\0\0\0\x01")), "QCOW (version 1)"),
        (put("win.iso", &sector(0x8001, b"CD001")), "ISO 9660"),
        (put("empty.img", b""), "is empty (0 bytes)"),
        (put("tiny.img", &[0x11; 300]), "is 300 bytes, less than one 512-byte sector"),
        (put("README.md", b"# rdprescue\n\nOffline repair of Windows VM disk images.\n"), "is a text file (it begins \"# rdprescue\"), not a disk image"),
        (put("junk.bin", &pattern(3, 0, 1 << 20)), "no container signature (VHD, VHDX, VMDK, QCOW2), no partition table (MBR/GPT)"),
    ];
    for (p, want) in &cases {
        let s = p.to_str().unwrap();
        let out = t.join("out.vhdx");
        for args in [
            vec!["disk", s],
            vec!["disk", "--json", s],
            vec!["inspect", s],
            vec!["inspect", "--json", s],
            vec!["cat", s, r"\Windows\System32\config\SYSTEM"],
            vec!["reg", "query", s, r"HKLM\SYSTEM\Select"],
            vec!["fix", s, "--all", "--out", out.to_str().unwrap()],
        ] {
            let o = rdp_on(p, &args);
            if args.contains(&"--json") {
                // With --json the error is one JSON object on stdout.
                assert_eq!(o.status.code(), Some(2), "{args:?}");
                let j: serde_json::Value = serde_json::from_str(&stdout(&o)).unwrap_or_else(|e| panic!("{args:?}: {e}: {}", stdout(&o)));
                assert_eq!(j["error"]["layer"], "image", "{args:?}");
                assert_eq!(j["error"]["offset"], 0, "{args:?}");
                let m = j["error"]["message"].as_str().unwrap();
                assert!(m.contains(want) && m.contains(s), "{args:?}: want {want:?} in {m}");
                assert!(!out.exists(), "{args:?} wrote {}", out.display());
                continue;
            }
            assert_clean_error(&o, &format!("{args:?}"));
            let e = stderr(&o);
            assert!(e.contains(want) && e.contains(s), "{args:?}: want {want:?} in {e}");
            assert!(e.contains("image at offset 0x0: unsupported: "), "{args:?}: {e}");
            assert!(!out.exists(), "{args:?} wrote {}", out.display());
        }
    }
    // audit: an error row each.
    let all: Vec<&str> = cases.iter().map(|(p, _)| p.to_str().unwrap()).collect();
    let mut args = vec!["audit", "--format", "jsonl"];
    args.extend(&all);
    let o = rdp(&args);
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    let rows: Vec<serde_json::Value> = stdout(&o).lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    assert_eq!(rows.len(), cases.len(), "{}", stdout(&o));
    for (p, want) in &cases {
        let row = rows.iter().find(|r| r["image"] == p.to_str().unwrap()).unwrap_or_else(|| panic!("no row for {}", p.display()));
        assert_eq!(row["status"], "error", "{row}");
        assert!(row["error"].as_str().unwrap().contains(want), "{row}");
    }
}
