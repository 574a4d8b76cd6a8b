//! Hyper-V checkpoints: the live disk of a VM with checkpoints is its newest
//! `.avhdx`. `fix --diff-child` on it must write a VHDX differencing child of
//! that `.avhdx` whose parent locator Hyper-V resolves: the relative path
//! first, an `absolute_win32_path` only when the parent's path is a Windows
//! one (never a Linux path written with backslashes). The chain
//! base.vhdx -> checkpoint.avhdx (made with our own writer) -> fix child is
//! read back by our reader and by libvhdi (vhdiinfo, pyvhdi).

mod common;
use common::*;
use rdprescue::image::{self, Format};
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::Command;

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

fn dir(test: &str) -> PathBuf {
    let d = Path::new(env!("CARGO_TARGET_TMPDIR")).join("avhdx").join(test);
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

fn le_u16(b: &[u8], o: usize) -> u16 {
    u16::from_le_bytes(b[o..o + 2].try_into().unwrap())
}
fn le_u32(b: &[u8], o: usize) -> u32 {
    u32::from_le_bytes(b[o..o + 4].try_into().unwrap())
}

/// The key/value entries of the VHDX parent locator in file `p` (MS-VHDX
/// 2.6.2.6): found by its locator type GUID, entries decoded by hand.
fn locator(p: &Path) -> HashMap<String, String> {
    let f = std::fs::read(p).unwrap();
    let ty = uuid::uuid!("B04AEFB7-D19E-4A81-B789-25B8E9445913").to_bytes_le();
    let at = f.windows(16).position(|w| w == ty).expect("a parent locator");
    let utf16 = |o: usize, n: usize| String::from_utf16(&f[at + o..at + o + n].chunks(2).map(|c| u16::from_le_bytes([c[0], c[1]])).collect::<Vec<_>>()).unwrap();
    let mut kv = HashMap::new();
    for i in 0..le_u16(&f, at + 18) as usize {
        let e = at + 20 + 12 * i;
        let (ko, vo, kl, vl) = (le_u32(&f, e) as usize, le_u32(&f, e + 4) as usize, le_u16(&f, e + 8) as usize, le_u16(&f, e + 10) as usize);
        kv.insert(utf16(ko, kl), utf16(vo, vl));
    }
    kv
}

/// The DataWriteGuid of VHDX file `p` (current header), as a locator writes it.
fn data_write_guid(p: &Path) -> String {
    let f = std::fs::read(p).unwrap();
    let seq = |o: usize| u64::from_le_bytes(f[o + 8..o + 16].try_into().unwrap());
    let h = if seq(128 << 10) > seq(64 << 10) { 128 << 10 } else { 64 << 10 };
    format!("{{{}}}", uuid::Uuid::from_bytes_le(f[h + 32..h + 48].try_into().unwrap()).hyphenated())
}

/// A VM folder as Hyper-V leaves it after one checkpoint: `vm.vhdx` and the
/// live `vm_<GUID>.avhdx` (written with our own differencing writer, moving
/// the RDP port to 3390 so that the checkpoint holds something of its own).
fn vm_with_checkpoint(d: &Path) -> (PathBuf, PathBuf) {
    let base = gunzip(&testdata().join("images/gen1-mbr-dynamic.vhdx.gz"), d);
    let base = {
        let p = d.join("vm.vhdx");
        std::fs::rename(&base, &p).unwrap();
        p
    };
    let avhdx = d.join("vm_8A1B2C3D-4E5F-4071-8293-A4B5C6D7E8F9.avhdx");
    let o = rdp(&["reg", "set", s(&base), r"HKLM\SYSTEM\CurrentControlSet\Control\Terminal Server\WinStations\RDP-Tcp", "-v", "PortNumber", "-t", "REG_DWORD", "-d", "3390", "--diff-child", "--out", s(&avhdx)]);
    assert_eq!(o.status.code(), Some(0), "making the checkpoint: {}", stderr(&o));
    let img = image::open(&avhdx).unwrap();
    assert_eq!(img.info.format, Format::VhdxDifferencing, "the checkpoint is a differencing VHDX");
    (base, avhdx)
}

fn finding_ids(p: &Path) -> Vec<String> {
    let o = rdp(&["inspect", "--json", s(p)]);
    assert!(matches!(o.status.code(), Some(0 | 1)), "inspect {}: {}", p.display(), stderr(&o));
    let doc: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    doc["findings"].as_array().unwrap().iter().map(|f| f["check"].as_str().unwrap().to_string()).collect()
}

/// SHA-256 of the whole virtual disk of `chain[0]` read by libvhdi, each
/// file given its parent (`chain[i + 1]`) explicitly.
fn pyvhdi_chain(chain: &[&Path]) -> Option<String> {
    if !have_pyvhdi() {
        return None;
    }
    let script = r#"
import sys, hashlib, pyvhdi
files = []
for p in sys.argv[1:]:
    f = pyvhdi.file(); f.open(p); files.append(f)
for i in range(len(files) - 2, -1, -1):
    files[i].set_parent(files[i + 1])
top = files[0]
h = hashlib.sha256(); o = 0; n = top.media_size
while o < n:
    k = min(n - o, 4 << 20)
    b = top.read_buffer_at_offset(k, o)
    assert len(b) == k, (o, k, len(b))
    h.update(b); o += k
print(h.hexdigest())
"#;
    let o = Command::new(SYSTEM_PYTHON).arg("-c").arg(script).args(chain.iter().map(|p| s(p))).out().unwrap();
    assert!(o.status.success(), "pyvhdi: {}", stderr(&o));
    Some(stdout(&o).trim().to_string())
}

/// vhdiinfo's field `name` for file `p`.
fn vhdiinfo(p: &Path, name: &str) -> Option<String> {
    let o = Command::new("vhdiinfo").arg(p).out().unwrap();
    assert!(o.status.success(), "vhdiinfo {}: {}", p.display(), stderr(&o));
    stdout(&o).lines().find_map(|l| l.trim().strip_prefix(name).map(|v| v.trim().trim_start_matches(':').trim().to_string()))
}

#[test]
fn fix_diff_child_of_the_newest_avhdx_is_a_child_hyperv_resolves() {
    let d = dir("chain");
    let (base, avhdx) = vm_with_checkpoint(&d);
    let ids = finding_ids(&avhdx);
    assert!(ids.contains(&"rdp-port".to_string()) && ids.contains(&"rdp-deny-local".to_string()), "{ids:?}");
    let (hb, ha) = (sha256_file(&base), sha256_file(&avhdx));

    // No --out: the child is named after the checkpoint, beside it.
    let o = rdp(&["fix", s(&avhdx), "--all", "--diff-child"]);
    assert_eq!(o.status.code(), Some(0), "{}{}", stdout(&o), stderr(&o));
    let child = d.join("vm_8A1B2C3D-4E5F-4071-8293-A4B5C6D7E8F9-rdprescue.avhdx");
    assert!(child.is_file() && stdout(&o).contains(s(&child)), "{}", stdout(&o));
    assert_eq!((sha256_file(&base), sha256_file(&avhdx)), (hb.clone(), ha.clone()), "the chain below the child is untouched");
    // A second run never replaces it.
    let before = sha256_file(&child);
    let o = rdp(&["fix", s(&avhdx), "--all", "--diff-child"]);
    assert_clean_error(&o, "default child name taken");
    assert_eq!(sha256_file(&child), before);

    // The locator: linkage to the .avhdx's DataWriteGuid, the relative path,
    // and no absolute path made of a Linux path with backslashes.
    let kv = locator(&child);
    assert_eq!(kv["parent_linkage"], data_write_guid(&avhdx), "{kv:?}");
    assert_eq!(kv["relative_path"], r".\vm_8A1B2C3D-4E5F-4071-8293-A4B5C6D7E8F9.avhdx");
    if cfg!(windows) {
        let abs = &kv["absolute_win32_path"];
        assert!(abs.as_bytes()[1] == b':' || abs.starts_with(r"\\"), "a Windows path: {abs}");
    } else {
        assert!(!kv.contains_key("absolute_win32_path"), "a Linux parent path is never written as a Windows one: {kv:?}");
    }
    assert!(kv.values().all(|v| !v.contains('/')), "{kv:?}");
    assert!(kv.keys().all(|k| ["parent_linkage", "relative_path", "absolute_win32_path"].contains(&k.as_str())), "{kv:?}");

    // Our reader: the whole chain, and the fixes took.
    let img = image::open(&child).unwrap();
    assert_eq!(img.info.format, Format::VhdxDifferencing);
    let parent = img.info.parent.as_ref().unwrap();
    assert_eq!(parent.path.canonicalize().unwrap(), avhdx.canonicalize().unwrap());
    assert_eq!(parent.parent.as_ref().unwrap().path.canonicalize().unwrap(), base.canonicalize().unwrap());
    let ours = disk_sha256(img.disk.as_ref());
    drop(img);
    let ids = finding_ids(&child);
    assert!(!ids.contains(&"rdp-port".to_string()) && !ids.contains(&"rdp-deny-local".to_string()), "{ids:?}");

    // libvhdi: the same bytes through the three files, and the child's parent identifier.
    match pyvhdi_chain(&[&child, &avhdx, &base]) {
        Some(h) => assert_eq!(h, ours, "libvhdi reads the chain as our reader does"),
        None => eprintln!("NOTICE: pyvhdi chain read skipped"),
    }
    if need_tool("vhdiinfo") {
        assert_eq!(vhdiinfo(&child, "Disk type").as_deref(), Some("Differential"));
        assert_eq!(vhdiinfo(&child, "Parent identifier"), vhdiinfo(&avhdx, "Identifier"), "the child's parent is the checkpoint");
    }

    // Hyper-V moves a VM folder whole: the relative path still resolves.
    let moved = d.join("moved");
    std::fs::create_dir(&moved).unwrap();
    for f in [&base, &avhdx, &child] {
        std::fs::rename(f, moved.join(f.file_name().unwrap())).unwrap();
    }
    let img = image::open(&moved.join(child.file_name().unwrap())).unwrap();
    assert_eq!(disk_sha256(img.disk.as_ref()), ours, "the moved chain reads the same");
}

#[test]
fn a_child_in_another_folder_climbs_to_its_parent() {
    let d = dir("subdir");
    let (_, avhdx) = vm_with_checkpoint(&d);
    let sub = d.join("rescue");
    std::fs::create_dir(&sub).unwrap();
    let child = sub.join("fixed.avhdx");
    let o = rdp(&["fix", s(&avhdx), "--check", "rdp-deny-local", "--diff-child", "--out", s(&child)]);
    assert_eq!(o.status.code(), Some(0), "{}{}", stdout(&o), stderr(&o));
    let kv = locator(&child);
    assert_eq!(kv["relative_path"], r"..\vm_8A1B2C3D-4E5F-4071-8293-A4B5C6D7E8F9.avhdx", "{kv:?}");
    assert_eq!(kv["parent_linkage"], data_write_guid(&avhdx));
    let img = image::open(&child).unwrap();
    assert_eq!(img.info.parent.as_ref().unwrap().path.canonicalize().unwrap(), avhdx.canonicalize().unwrap());
    assert!(!finding_ids(&child).contains(&"rdp-deny-local".to_string()));
    // A raw input has no differencing child, with or without a default name.
    let raw = gunzip(&testdata().join("images/gen1-mbr.raw.gz"), &d);
    let o = rdp_on(&raw, &["fix", s(&raw), "--all", "--diff-child"]);
    assert_clean_error(&o, "diff-child of a raw image");
    assert!(!d.join("gen1-mbr-rdprescue.raw").exists());
}
