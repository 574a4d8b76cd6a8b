//! `--format`: a full copy converted to another container (issue 14 item 2).
//! Every conversion reads back, through our reader and through qemu-img and
//! libvhdi where installed, as the input with the patch applied; a fixed VHD
//! has its size rounded up to a whole MiB (Azure); the default follows the
//! `--out` extension; a differencing child in another family is refused with
//! nothing written.

mod common;

use common::{find_scenario, rdp_on, sha256_file, stderr, stdout, Rng, Start};
use rdprescue::image::write::{self, conversion, OutFormat, Patch};
use rdprescue::image::{self, Format};
use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::Command;

const MIB: u64 = 1 << 20;

fn fresh(p: &Path) -> File {
    std::fs::OpenOptions::new().read(true).write(true).create_new(true).open(p).unwrap()
}

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

fn all(p: &Path) -> Vec<u8> {
    let img = image::open(p).unwrap();
    let mut v = vec![0u8; img.disk.len() as usize];
    img.disk.read_at(0, &mut v).unwrap();
    v
}

#[test]
fn the_format_follows_the_flag_then_the_extension_then_the_input() {
    let c = |f: Format, out: &str, x: Option<OutFormat>| conversion(f, 40 * MIB, Path::new(out), x);
    // Same family by extension: the input's own writer, subtype kept.
    assert_eq!(c(Format::VhdFixed, "a.vhd", None), None);
    assert_eq!(c(Format::VhdDifferencing, "a.vhd", None), None);
    assert_eq!(c(Format::VhdxFixed, "a.VHDX", None), None);
    assert_eq!(c(Format::Raw, "a.img", None), None);
    // Another family by extension.
    assert_eq!(c(Format::VhdxDynamic, "a.vhd", None), Some(OutFormat::VhdDynamic));
    assert_eq!(c(Format::Raw, "a.vhdx", None), Some(OutFormat::VhdxDynamic));
    assert_eq!(c(Format::VhdDynamic, "a.raw", None), Some(OutFormat::Raw));
    assert_eq!(c(Format::VhdxDifferencing, "a.img", None), Some(OutFormat::Raw));
    // Unknown extension: the input's format.
    assert_eq!(c(Format::VhdxDynamic, "a.disk", None), None);
    assert_eq!(c(Format::VhdDynamic, "noext", None), None);
    // The flag wins over the extension.
    assert_eq!(c(Format::VhdxDynamic, "a.vhdx", Some(OutFormat::Raw)), Some(OutFormat::Raw));
    assert_eq!(c(Format::VhdDynamic, "a.raw", Some(OutFormat::VhdDynamic)), None);
    assert_eq!(c(Format::VhdDynamic, "a.vhd", Some(OutFormat::VhdFixed)), Some(OutFormat::VhdFixed));
    assert_eq!(c(Format::VhdxFixed, "a.vhdx", Some(OutFormat::VhdxDynamic)), Some(OutFormat::VhdxDynamic));
    // vhd-fixed of a fixed VHD: kept unless its size must be rounded up.
    assert_eq!(c(Format::VhdFixed, "a.vhd", Some(OutFormat::VhdFixed)), None);
    assert_eq!(conversion(Format::VhdFixed, 40 * MIB + 512, Path::new("a.vhd"), Some(OutFormat::VhdFixed)), Some(OutFormat::VhdFixed));
    // Spellings.
    for (n, f) in [("vhd", OutFormat::VhdDynamic), ("VHD-FIXED", OutFormat::VhdFixed), ("vhdx", OutFormat::VhdxDynamic), ("raw", OutFormat::Raw)] {
        assert_eq!(OutFormat::parse(n), Some(f));
    }
    assert_eq!(OutFormat::parse("qcow2"), None);
    // Children stay in their parent's family.
    assert!(write::check_child_format(Format::VhdxDynamic, Path::new("c.avhdx"), None).is_ok());
    assert!(write::check_child_format(Format::VhdDynamic, Path::new("c.vhd"), Some(OutFormat::VhdDynamic)).is_ok());
    assert!(write::check_child_format(Format::VhdxDynamic, Path::new("c.vhd"), None).is_err());
    assert!(write::check_child_format(Format::VhdFixed, Path::new("c.avhdx"), None).is_err());
    assert!(write::check_child_format(Format::VhdDynamic, Path::new("c.x"), Some(OutFormat::VhdxDynamic)).is_err());
    assert!(write::check_child_format(Format::VhdDynamic, Path::new("c.x"), Some(OutFormat::VhdFixed)).is_err());
}

/// A raw disk whose size is not a whole MiB, with data here and there.
fn source(dir: &Path, rng: &mut Rng) -> (PathBuf, Vec<u8>) {
    let size = 22 * MIB + 3 * 512;
    let mut v = vec![0u8; size as usize];
    for (off, n) in [(0u64, 70_000usize), (17 * MIB - 100, 300_000), (size - 5000, 5000)] {
        v[off as usize..off as usize + n].copy_from_slice(&rng.bytes(n));
    }
    // A boot-sector signature, so that the random bytes open as a raw disk
    // (unknown bytes are refused as "no disk image").
    v[510..512].copy_from_slice(&[0x55, 0xAA]);
    let p = dir.join("src.raw");
    let f = fresh(&p);
    f.set_len(size).unwrap();
    for (off, n) in [(0u64, 70_000u64), (17 * MIB - 100, 300_000), (size - 5000, 5000)] {
        common::write_all_at(&f, &v[off as usize..(off + n) as usize], off).unwrap();
    }
    (p, v)
}

/// Every input family to every output format, through our reader.
#[test]
fn every_conversion_reads_back_as_input_plus_patch() {
    let dir = tempfile::tempdir().unwrap();
    let mut rng = Rng(0xc0_4e27);
    let (raw, base) = source(dir.path(), &mut rng);
    let mut p = Patch::default();
    p.write(12 * MIB + 7, &rng.bytes(3000)); // in a hole
    p.write(17 * MIB, &rng.bytes(512)); // over data
    let mut want = base.clone();
    for (o, d) in p.ranges() {
        want[o as usize..o as usize + d.len()].copy_from_slice(d);
    }
    // Inputs: the raw disk and its conversions (no patch).
    let raw_img = image::open(&raw).unwrap();
    let mut inputs = vec![raw.clone()];
    for (f, ext) in [(OutFormat::VhdDynamic, "vhd"), (OutFormat::VhdxDynamic, "vhdx")] {
        let q = dir.path().join(format!("src.{ext}"));
        write::full_copy_as(&raw_img, &Patch::default(), &mut fresh(&q), Some(f), &mut |_, _| {}).unwrap();
        inputs.push(q);
    }
    for input in &inputs {
        let before = sha256_file(input);
        let img = image::open(input).unwrap();
        for f in [OutFormat::Raw, OutFormat::VhdFixed, OutFormat::VhdDynamic, OutFormat::VhdxDynamic] {
            let out = dir.path().join(format!("{}-to-{}", input.file_name().unwrap().to_string_lossy(), f.name()));
            write::full_copy_as(&img, &p, &mut fresh(&out), Some(f), &mut |_, _| {}).unwrap();
            let o = image::open(&out).unwrap();
            let fmt = o.info.format;
            let expect = match f {
                OutFormat::Raw => Format::Raw,
                OutFormat::VhdFixed => Format::VhdFixed,
                OutFormat::VhdDynamic => Format::VhdDynamic,
                OutFormat::VhdxDynamic => Format::VhdxDynamic,
            };
            assert_eq!(fmt, expect, "{}", out.display());
            let got = all(&out);
            // The size: the input's (a whole sector), or a whole MiB for vhd-fixed.
            let vsize = if f == OutFormat::VhdFixed { (want.len() as u64).div_ceil(MIB) * MIB } else { want.len() as u64 };
            assert_eq!(got.len() as u64, vsize, "{}", out.display());
            assert!(got[..want.len()] == want[..] && got[want.len()..].iter().all(|b| *b == 0), "{}: content", out.display());
            let used = common::allocated_bytes(&std::fs::metadata(&out).unwrap());
            #[cfg(unix)]
            assert!(used < 8 * MIB, "{}: {used} bytes allocated", out.display());
            let _ = used;
        }
        assert_eq!(sha256_file(input), before, "input unchanged");
    }
}

fn tool(name: &str) -> bool {
    Command::new("sh").args(["-c", &format!("command -v {name}")]).out().is_ok_and(|o| o.status.success())
}

fn run(prog: &str, args: &[&str]) -> String {
    let o = Command::new(prog).args(args).out().unwrap();
    assert!(o.status.success(), "{prog} {args:?}: {}{}", stdout(&o), stderr(&o));
    stdout(&o)
}

/// qemu-img reads every output as the same disk (compare against the raw
/// output), with the format and virtual size it should have; the fixed VHD is
/// a whole number of MiB, as Azure requires.
#[test]
#[cfg_attr(not(tool_qemu_img), ignore = "needs qemu-img")]
fn qemu_img_agrees() {
    assert!(tool("qemu-img"), "qemu-img is not on PATH");
    let dir = tempfile::tempdir().unwrap();
    let mut rng = Rng(0x9e_3779);
    let (raw, base) = source(dir.path(), &mut rng);
    let img = image::open(&raw).unwrap();
    let mut p = Patch::default();
    p.write(5 * MIB + 100, &rng.bytes(10_000));
    let mut outs = Vec::new();
    for (f, qfmt) in [(OutFormat::Raw, "raw"), (OutFormat::VhdFixed, "vpc"), (OutFormat::VhdDynamic, "vpc"), (OutFormat::VhdxDynamic, "vhdx")] {
        let out = dir.path().join(format!("out-{}", f.name()));
        write::full_copy_as(&img, &p, &mut fresh(&out), Some(f), &mut |_, _| {}).unwrap();
        let info: serde_json::Value = serde_json::from_str(&run("qemu-img", &["info", "--output=json", "-f", qfmt, s(&out)])).unwrap();
        let vsize = info["virtual-size"].as_u64().unwrap();
        let want = if f == OutFormat::VhdFixed { (base.len() as u64).div_ceil(MIB) * MIB } else { base.len() as u64 };
        assert_eq!(vsize, want, "{}: qemu-img virtual size", f.name());
        if f == OutFormat::VhdFixed {
            assert_eq!(vsize % MIB, 0);
            assert_eq!(std::fs::metadata(&out).unwrap().len(), vsize + 512, "data, then the footer");
        }
        if qfmt != "raw" {
            let o = Command::new("qemu-img").args(["check", "-f", qfmt, s(&out)]).out().unwrap();
            // vpc has no check; the VHDX must check clean.
            assert!(o.status.success() || stderr(&o).contains("not support"), "{}: {}{}", f.name(), stdout(&o), stderr(&o));
        }
        outs.push((out, qfmt));
    }
    let (raw_out, _) = &outs[0];
    for (out, qfmt) in &outs[1..] {
        // -s: a size difference (the fixed VHD's rounding) is an error unless the extra bytes are zero.
        let o = Command::new("qemu-img").args(["compare", "-f", qfmt, "-F", "raw", s(out), s(raw_out)]).out().unwrap();
        assert!(o.status.success() && stdout(&o).contains("identical"), "{}: {}{}", out.display(), stdout(&o), stderr(&o));
    }
}

/// libvhdi (vhdiinfo) reads the VHD outputs with the right type and size.
#[test]
#[cfg_attr(not(tool_vhdiinfo), ignore = "needs vhdiinfo (libvhdi-utils)")]
fn libvhdi_agrees() {
    assert!(tool("vhdiinfo"), "vhdiinfo is not on PATH");
    let dir = tempfile::tempdir().unwrap();
    let mut rng = Rng(0x1b_7d11);
    let (raw, base) = source(dir.path(), &mut rng);
    let img = image::open(&raw).unwrap();
    for (f, kind) in [(OutFormat::VhdFixed, "Fixed"), (OutFormat::VhdDynamic, "Dynamic")] {
        let out = dir.path().join(format!("out-{}.vhd", f.name()));
        write::full_copy_as(&img, &Patch::default(), &mut fresh(&out), Some(f), &mut |_, _| {}).unwrap();
        let info = run("vhdiinfo", &[s(&out)]);
        let size = if f == OutFormat::VhdFixed { (base.len() as u64).div_ceil(MIB) * MIB } else { base.len() as u64 };
        assert!(info.contains(&format!("Disk type\t\t: {kind}")), "{info}");
        assert!(info.contains(&format!("({size} bytes)")), "{}: {info}", f.name());
    }
}

fn scenario(name: &str) -> Option<PathBuf> {
    Some(find_scenario("convert", name)?.0)
}

/// The command line: `--out x.vhd` of a VHDX writes a VHD, `--format` wins,
/// the fix is in the converted output, and a mismatched child is refused with
/// nothing written and the input untouched.
#[test]
#[cfg_attr(not(scenarios), ignore = "needs ../shared/data and the scenario-image tools (python3, hivex, ntfs-3g, fdisk, gdisk, mtools, dosfstools, qemu-img)")]
fn fix_and_reg_set_convert_on_the_command_line() {
    let Some(input) = scenario("port-moved") else { return };
    let dir = tempfile::tempdir().unwrap();
    let before = sha256_file(&input);
    let format_of = |p: &Path| image::open(p).unwrap().info.format;
    let port = |p: &Path| {
        let o = rdp_on(p, &["reg", "query", s(p), r"HKLM\SYSTEM\CurrentControlSet\Control\Terminal Server\WinStations\RDP-Tcp", "-v", "PortNumber"]);
        stdout(&o)
    };
    assert_eq!(format_of(&input), Format::VhdxDynamic);

    // By extension.
    let vhd = dir.path().join("fixed.vhd");
    let o = rdp_on(&input, &["fix", s(&input), "--check", "rdp-port", "--out", s(&vhd)]);
    assert_eq!(o.status.code(), Some(0), "{}{}", stdout(&o), stderr(&o));
    assert_eq!(format_of(&vhd), Format::VhdDynamic);
    assert!(port(&vhd).contains("0xd3d"), "{}", port(&vhd));
    // By flag, over the extension.
    let azure = dir.path().join("azure.vhdx");
    let o = rdp_on(&input, &["fix", s(&input), "--check", "rdp-port", "--format", "vhd-fixed", "--out", s(&azure)]);
    assert_eq!(o.status.code(), Some(0), "{}{}", stdout(&o), stderr(&o));
    let a = image::open(&azure).unwrap();
    assert_eq!(a.info.format, Format::VhdFixed);
    assert_eq!(a.info.virtual_size % MIB, 0);
    // reg set to raw.
    let raw = dir.path().join("set.img");
    let o = rdp_on(&input, &["reg", "set", s(&input), r"HKLM\SYSTEM\CurrentControlSet\Control\Terminal Server\WinStations\RDP-Tcp", "-v", "PortNumber", "-t", "REG_DWORD", "-d", "3391", "--out", s(&raw)]);
    assert_eq!(o.status.code(), Some(0), "{}{}", stdout(&o), stderr(&o));
    assert_eq!(format_of(&raw), Format::Raw);
    assert!(port(&raw).contains("0xd3f"), "{}", port(&raw));

    // Refusals: nothing written.
    for (args, what) in [
        (vec!["--diff-child", "--out", "c.vhd"], "differencing child"),
        (vec!["--diff-child", "--format", "raw", "--out", "c.avhdx"], "differencing child"),
        (vec!["--format", "qcow2", "--out", "q.vhdx"], "qcow2"),
    ] {
        let mut a = vec!["fix", s(&input), "--check", "rdp-port"];
        let args: Vec<String> = args.iter().map(|x| if x.contains('.') { s(&dir.path().join(x)).to_string() } else { x.to_string() }).collect();
        a.extend(args.iter().map(String::as_str));
        let o = rdp_on(&input, &a);
        assert_eq!(o.status.code(), Some(2), "{a:?}: {}{}", stdout(&o), stderr(&o));
        assert!(stderr(&o).contains(what), "{}", stderr(&o));
    }
    for n in ["c.vhd", "c.avhdx", "q.vhdx"] {
        assert!(!dir.path().join(n).exists(), "{n} written");
    }
    assert_eq!(sha256_file(&input), before, "input unchanged");
}
