//! `rdprescue fix`: outputs built from the scenario images (real hives from
//! ../shared/data, Gen1/Gen2, raw/VHD/VHDX, one dirty with a change only in its
//! log) must carry exactly the intended changes, read back clean with
//! independent tools (qemu-img, ntfs-3g, hivex), leave the input untouched, and
//! never leave a half-written destination behind.

mod common;
use common::*;
use serde_json::Value as J;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn scenario(name: &str) -> Option<PathBuf> {
    Some(find_scenario("fix", name)?.0)
}

fn out_dir(test: &str) -> PathBuf {
    let d = Path::new(env!("CARGO_TARGET_TMPDIR")).join("fix").join(test);
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

fn fix(input: &Path, args: &[&str]) -> Output {
    let mut a = vec!["fix", input.to_str().unwrap()];
    a.extend_from_slice(args);
    rdp_on(input, &a)
}

/// `fix` with the clock fixed (SOURCE_DATE_EPOCH), so two runs write the same hive bytes.
fn fix_at_fixed_time(input: &Path, args: &[&str]) -> Output {
    let before = sha256_file(input);
    let o = Command::new(env!("CARGO_BIN_EXE_rdprescue")).arg("fix").arg(input).args(args).env("SOURCE_DATE_EPOCH", "1700000000").out().unwrap();
    assert_eq!(before, sha256_file(input), "fix modified its input");
    o
}

/// Every value of a hive as the tool reads it (logs replayed): (key path, value name) -> (type, data).
fn tree(source: &Path, root: &str) -> BTreeMap<(String, String), (String, J)> {
    let o = rdp(&["reg", "query", source.to_str().unwrap(), root, "-s", "--json"]);
    assert_eq!(o.status.code(), Some(0), "reg query {}: {}", source.display(), stderr(&o));
    let doc: J = serde_json::from_slice(&o.stdout).unwrap();
    let mut out = BTreeMap::new();
    for k in doc["keys"].as_array().unwrap() {
        let key = k["key"].as_str().unwrap().to_lowercase();
        out.insert((key.clone(), "<key>".into()), (String::new(), J::Null));
        for v in k["values"].as_array().unwrap() {
            out.insert((key.clone(), v["name"].as_str().unwrap().to_lowercase()), (v["type"].as_str().unwrap().to_string(), v["data"].clone()));
        }
    }
    out
}

fn inspect(src: &Path) -> J {
    let o = rdp(&["inspect", "--json", src.to_str().unwrap()]);
    assert!(matches!(o.status.code(), Some(0 | 1)), "inspect {}: {}", src.display(), stderr(&o));
    serde_json::from_slice(&o.stdout).unwrap()
}

fn ids(doc: &J) -> Vec<String> {
    doc["findings"].as_array().unwrap().iter().map(|f| f["check"].as_str().unwrap().to_string()).collect()
}

fn qemu_check(img: &Path) {
    if !have("qemu-img") {
        eprintln!("NOTICE: qemu-img not installed; skipping qemu-img check");
        return;
    }
    let o = Command::new("qemu-img").args(["check", img.to_str().unwrap()]).out().unwrap();
    let text = format!("{}{}", stdout(&o), stderr(&o));
    if o.status.success() {
        return;
    }
    // qemu-img checks neither raw nor VHD ("does not support checks"): then
    // qemu's own reader must at least see the same disk as ours.
    assert!(text.contains("does not support checks"), "qemu-img check {}: {text}", img.display());
    let raw = img.with_extension("qemu.raw");
    let o = Command::new("qemu-img").args(["convert", "-O", "raw", img.to_str().unwrap(), raw.to_str().unwrap()]).out().unwrap();
    assert!(o.status.success(), "qemu-img convert {}: {}", img.display(), stderr(&o));
    let ours = rdprescue::image::open(img).unwrap();
    let theirs = rdprescue::image::open(&raw).unwrap();
    assert_eq!(disk_sha256(theirs.disk.as_ref()), disk_sha256(ours.disk.as_ref()), "qemu and rdprescue read {} differently", img.display());
    std::fs::remove_file(&raw).unwrap();
}

/// Partition `index` of `img` (0: the Windows volume) as a file of its own,
/// cut out of the raw disk qemu-img makes of the image.
fn cut_partition(img: &Path, index: u64, work: &Path, name: &str) -> PathBuf {
    let raw = work.join("flat.raw");
    let _ = std::fs::remove_file(&raw);
    let o = Command::new("qemu-img").args(["convert", "-O", "raw", img.to_str().unwrap(), raw.to_str().unwrap()]).out().unwrap();
    assert!(o.status.success(), "qemu-img convert: {}", stderr(&o));
    let d: J = serde_json::from_slice(&rdp(&["disk", "--json", raw.to_str().unwrap()]).stdout).unwrap();
    let w = if index == 0 { d["windows_volumes"][0].as_u64().unwrap() } else { index };
    let p = d["partition_table"]["partitions"].as_array().unwrap().iter().find(|p| p["index"] == w).unwrap();
    let (off, size) = (p["offset"].as_u64().unwrap() as usize, p["size"].as_u64().unwrap() as usize);
    let all = std::fs::read(&raw).unwrap();
    let part = work.join(name);
    std::fs::write(&part, &all[off..off + size]).unwrap();
    std::fs::remove_file(&raw).unwrap();
    part
}

/// The SYSTEM hive of `img` as ntfs-3g reads it.
fn ntfscat_system(img: &Path, work: &Path) -> Option<Vec<u8>> {
    if !have("ntfscat") || !have("qemu-img") {
        eprintln!("NOTICE: ntfs-3g or qemu-img not installed; skipping the ntfs-3g read-back");
        return None;
    }
    let part = cut_partition(img, 0, work, "windows.ntfs");
    let o = Command::new("ntfscat").args([part.to_str().unwrap(), "Windows/System32/config/SYSTEM"]).out().unwrap();
    assert!(o.status.success(), "ntfscat: {}", stderr(&o));
    Some(o.stdout)
}

/// A value a fix targets: (end of its key path, value name, new data).
type Target = (&'static str, &'static str, J);

/// The changes `fix` made: every value of the output equals the input's
/// (logs replayed) except the targeted ones, which hold their new data.
fn assert_only_targeted_changed(input: &Path, output: &Path, root: &str, targeted: &[Target]) {
    let a = tree(input, root);
    let b = tree(output, root);
    let mut want = a.clone();
    for (key_end, name, data) in targeted {
        let k = want.keys().find(|(k, n)| k.ends_with(&key_end.to_lowercase()) && n == &name.to_lowercase()).cloned();
        match k {
            Some(k) => want.get_mut(&k).unwrap().1 = data.clone(),
            None => panic!("{key_end}\\{name} not in the input"),
        }
    }
    let diff: Vec<_> = want.iter().filter(|(k, v)| b.get(*k) != Some(*v)).map(|(k, v)| format!("{k:?}: want {v:?}, got {:?}", b.get(k))).take(5).collect();
    assert!(diff.is_empty(), "{} vs {}: {diff:#?}", input.display(), output.display());
    let extra: Vec<_> = b.keys().filter(|k| !want.contains_key(*k)).take(5).collect();
    assert!(extra.is_empty(), "unexpected in output: {extra:?}");
    eprintln!("{}: {} keys+values compared", output.display(), want.len());
}

/// Every key and value of a hive file as libhivex exports it (`hivexregedit
/// --export`): (key path, value name or "<key>"), lower-cased -> the .reg
/// data text. An oracle independent of rdprescue's hive reader.
fn hivex_tree(hive: &Path) -> BTreeMap<(String, String), String> {
    let o = Command::new("hivexregedit").args(["--export", hive.to_str().unwrap(), "\\"]).out().unwrap();
    assert!(o.status.success(), "hivexregedit --export {}: {}", hive.display(), stderr(&o));
    let mut out = BTreeMap::new();
    let mut key = String::new();
    for line in String::from_utf8_lossy(&o.stdout).lines() {
        if let Some(k) = line.strip_prefix('[').and_then(|l| l.strip_suffix(']')) {
            key = k.to_lowercase();
            out.insert((key.clone(), "<key>".into()), String::new());
        } else if let Some(data) = line.strip_prefix("@=") {
            out.insert((key.clone(), String::new()), data.to_string());
        } else if let Some(rest) = line.strip_prefix('"') {
            // "name"=data, with \" and \\ escaped in the name.
            let (mut name, mut chars) = (String::new(), rest.char_indices());
            let end = loop {
                match chars.next() {
                    Some((_, '\\')) => name.extend(chars.next().map(|(_, c)| c)),
                    Some((i, '"')) => break i,
                    Some((_, c)) => name.push(c),
                    None => panic!("unterminated value name in {line:?}"),
                }
            };
            let data = rest[end + 1..].strip_prefix('=').unwrap_or_else(|| panic!("{line:?}"));
            out.insert((key.clone(), name.to_lowercase()), data.to_string());
        } else {
            assert!(line.is_empty() || line.starts_with("Windows Registry Editor"), "unexpected export line {line:?}");
        }
    }
    out
}

/// The hive file at `fs_path` on partition `part` (0: the Windows volume) of
/// `img`, as qemu-img + ntfs-3g (NTFS) or mtools (FAT) read it.
fn hive_by_other_tools(img: &Path, part: u64, fs_path: &str, work: &Path, name: &str) -> Option<PathBuf> {
    if !have("qemu-img") || !have("ntfscat") || !have("mcopy") || !have("hivexregedit") {
        eprintln!("NOTICE: qemu-img, ntfs-3g, mtools or hivexregedit missing; skipping the hivex full-tree diff");
        return None;
    }
    let vol = cut_partition(img, part, work, &format!("{name}.vol"));
    let o = Command::new("ntfscat").args([vol.to_str().unwrap(), fs_path]).out().unwrap();
    let bytes = if o.status.success() {
        o.stdout
    } else {
        let o = Command::new("mcopy").env("MTOOLS_SKIP_CHECK", "1").args(["-n", "-i", vol.to_str().unwrap(), &format!("::{fs_path}"), "-"]).out().unwrap();
        assert!(o.status.success(), "neither ntfscat nor mcopy reads {fs_path}: {}", stderr(&o));
        o.stdout
    };
    std::fs::remove_file(&vol).unwrap();
    let f = work.join(name);
    std::fs::write(&f, bytes).unwrap();
    Some(f)
}

/// `child` over `parent` read whole by libvhdi (pyvhdi) into the raw file `out`.
fn libvhdi_flat(child: &Path, parent: &Path, out: &Path) -> Option<PathBuf> {
    if !have_pyvhdi() {
        return None;
    }
    let script = r#"
import sys, pyvhdi
f = pyvhdi.file(); f.open(sys.argv[1])
p = pyvhdi.file(); p.open(sys.argv[2]); f.set_parent(p)
with open(sys.argv[3], 'wb') as o:
    at = 0
    while at < f.media_size:
        k = min(f.media_size - at, 4 << 20)
        b = f.read_buffer_at_offset(k, at)
        assert len(b) == k
        o.write(b); at += k
"#;
    let o = Command::new(SYSTEM_PYTHON).args(["-c", script, child.to_str().unwrap(), parent.to_str().unwrap(), out.to_str().unwrap()]).out().unwrap();
    assert!(o.status.success(), "pyvhdi flatten {}: {}", child.display(), stderr(&o));
    Some(out.to_path_buf())
}

/// An expected difference: (end of the key path, value name or "<key>", the
/// new .reg data or None when it is gone).
type Change<'a> = (&'a str, &'a str, Option<&'a str>);

/// "Nothing else changed", checked by libhivex: the full-tree export of the
/// output hive differs from the input's in exactly `want` (every expected
/// change present, nothing else). Inputs must be clean (hivex replays no log).
fn assert_hivex_diff(input: &Path, output: &Path, part: u64, fs_path: &str, work: &Path, want: &[Change]) {
    let (Some(a), Some(b)) = (hive_by_other_tools(input, part, fs_path, work, "in.hive"), hive_by_other_tools(output, part, fs_path, work, "out.hive")) else { return };
    let (a, b) = (hivex_tree(&a), hivex_tree(&b));
    let keys: std::collections::BTreeSet<_> = a.keys().chain(b.keys()).collect();
    let diff: Vec<_> = keys.into_iter().filter(|k| a.get(*k) != b.get(*k)).map(|k| (k.clone(), b.get(k).cloned())).collect();
    let matches = |(k, n): &(String, String), new: &Option<String>, w: &Change| k.ends_with(&w.0.to_lowercase()) && n == &w.1.to_lowercase() && new.as_deref() == w.2;
    let unexpected: Vec<_> = diff.iter().filter(|(k, new)| !want.iter().any(|w| matches(k, new, w))).collect();
    assert!(unexpected.is_empty(), "{}: changes nobody planned (hivex): {unexpected:?}", output.display());
    // A target the input already holds is a no-op the plan drops.
    let already = |w: &Change| a.iter().any(|(k, v)| matches(k, &Some(v.clone()), w));
    let missing: Vec<_> = want.iter().filter(|w| !diff.iter().any(|(k, new)| matches(k, new, w)) && !already(w)).collect();
    assert!(missing.is_empty(), "{}: planned changes not in the hive (hivex): {missing:?}; diff {diff:?}", output.display());
    eprintln!("{}: hivex full-tree diff of {} keys+values = the {} planned change(s)", output.display(), a.len().max(b.len()), diff.len());
}

#[test]
#[cfg_attr(not(scenarios), ignore = "needs ../shared/data and the scenario-image tools (python3, hivex, ntfs-3g, fdisk, gdisk, mtools, dosfstools, qemu-img)")]
fn full_copies_in_every_format_carry_exactly_the_fix() {
    let d = out_dir("full");
    // Gen1/Gen2 x raw/VHD/VHDX, each with RDP turned off or the port moved.
    let deny = || vec![(r"control\terminal server", "fDenyTSConnections", J::from(0))];
    let cases: Vec<(&str, &str, Vec<Target>)> = vec![
        ("win10-as-shipped", "rdp-deny-local", deny()),
        ("safeboot-gen1", "bcd-safeboot", vec![]),
        // Gen2: the BCD store is on the FAT EFI system partition.
        ("safeboot-gen2", "bcd-safeboot", vec![]),
        ("port-moved", "rdp-port", vec![(r"winstations\rdp-tcp", "PortNumber", J::from(3389)), (r"tds\tcp", "PortNumber", J::from(3389))]),
        ("crypto", "rdp-deny-local", deny()),
        ("hyperv-nic", "rdp-deny-local", deny()),
        ("setup-hook", "setup-cmdline-stuck", vec![(r"\setup", "SetupType", J::from(0)), (r"\setup", "CmdLine", J::from(""))]),
        // The real dirty Windows 10 hive, recovered from its real logs before the edit.
        ("win10-1709-dirty", "rdp-deny-local", deny()),
    ];
    for (name, check, targeted) in cases {
        let Some(input) = scenario(name) else { return };
        let ext = input.extension().unwrap().to_str().unwrap().to_string();
        let out = d.join(format!("{name}-fixed.{ext}"));
        let before = inspect(&input);
        assert!(ids(&before).contains(&check.to_string()), "{name}: {check} not reported before");
        let o = fix(&input, &["--check", check, "--out", out.to_str().unwrap()]);
        assert_eq!(o.status.code(), Some(0), "{name}: {}{}", stdout(&o), stderr(&o));
        assert!(stdout(&o).contains("-> fixed"), "{}", stdout(&o));
        qemu_check(&out);
        let after = inspect(&out);
        assert!(!ids(&after).contains(&check.to_string()), "{name}: {check} still reported");
        // Every other finding is unchanged.
        let mut rest: Vec<String> = ids(&before).into_iter().filter(|c| c != check).collect();
        rest.sort();
        let mut now = ids(&after);
        now.sort();
        assert_eq!(now, rest, "{name}");
        if check == "bcd-safeboot" {
            // The safeboot element (key and its value) is all that goes.
            let (part, path) = if name.ends_with("gen2") { (1, "EFI/Microsoft/Boot/BCD") } else { (1, "Boot/BCD") };
            assert_hivex_diff(&input, &out, part, path, &d, &[(r"\25000080", "<key>", None), (r"\25000080", "element", None)]);
            let bcd = tree(&out, "BCD");
            assert!(!bcd.keys().any(|(k, _)| k.ends_with("25000080")), "{name}: safeboot element left");
            // Gen2: the EFI system partition (FAT, written through fatfs) passes fsck.fat.
            if name.ends_with("gen2") && have("fsck.fat") && have("qemu-img") {
                let esp = cut_partition(&out, 1, &d, "esp.fat");
                let o = Command::new("fsck.fat").args(["-n", esp.to_str().unwrap()]).out().unwrap();
                assert!(o.status.success(), "fsck.fat: {}{}", stdout(&o), stderr(&o));
            }
            continue;
        }
        assert_only_targeted_changed(&input, &out, r"HKLM\SYSTEM", &targeted);
        if name != "win10-1709-dirty" {
            // Independently of rdprescue's reader: libhivex's full export.
            let reg: Vec<String> = targeted.iter().map(|(_, _, data)| match data {
                J::Number(n) => format!("dword:{:08x}", n.as_u64().unwrap()),
                J::String(s) => format!("hex(1):{}", s.encode_utf16().chain([0]).flat_map(|u| u.to_le_bytes()).map(|b| format!("{b:02x}")).collect::<Vec<_>>().join(",")),
                other => panic!("{other}"),
            }).collect();
            let want: Vec<Change> = targeted.iter().zip(&reg).map(|((k, v, _), r)| (*k, *v, Some(r.as_str()))).collect();
            assert_hivex_diff(&input, &out, 0, "Windows/System32/config/SYSTEM", &d, &want);
        }
        let (_, value, data) = &targeted[0];
        // ntfs-3g reads a clean hive with the new value.
        if let Some(sys) = ntfscat_system(&out, &d) {
            let h = rdprescue::hive::load(sys.clone(), None, None).unwrap();
            assert_eq!(h.report.state, rdprescue::hive::HiveState::Clean, "{name}");
            assert_eq!(u32::from_le_bytes(sys[4..8].try_into().unwrap()), u32::from_le_bytes(sys[8..12].try_into().unwrap()));
            if have("hivexget") {
                let f = d.join("SYSTEM");
                std::fs::write(&f, &sys).unwrap();
                let cs = "ControlSet001";
                let key = if *value == "PortNumber" { format!(r"{cs}\Control\Terminal Server\WinStations\RDP-Tcp") } else if *value == "SetupType" { "Setup".into() } else { format!(r"{cs}\Control\Terminal Server") };
                let o = Command::new("hivexget").args([f.to_str().unwrap(), &key, *value]).out().unwrap();
                assert!(o.status.success(), "hivexget {key} {value}: {}", stderr(&o));
                assert_eq!(stdout(&o).trim(), match data { J::Number(n) => n.to_string(), J::String(s) => s.clone(), _ => unreachable!() }, "{name}");
                // regipy (its own parser) reads the same.
                if let Some(got) = regipy_values(&[(f.display().to_string(), key.clone(), value.to_string())]) {
                    assert_eq!(got[0][1], *data, "{name}: regipy");
                }
            }
        }
    }
}

#[test]
#[cfg_attr(not(scenarios), ignore = "needs ../shared/data and the scenario-image tools (python3, hivex, ntfs-3g, fdisk, gdisk, mtools, dosfstools, qemu-img)")]
fn a_dirty_hive_is_recovered_before_the_edit_and_written_clean() {
    let d = out_dir("dirty");
    let Some(input) = scenario("dirty-log") else { return };
    let out = d.join("fixed.vhdx");
    // The port lives only in the log (3390); the fix writes 3389 over the recovered hive.
    let o = fix(&input, &["--check", "rdp-port", "--check", "rdp-deny-local", "--out", out.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(0), "{}{}", stdout(&o), stderr(&o));
    assert!(stdout(&o).contains("3390 (0xd3e) -> 3389"), "{}", stdout(&o));
    qemu_check(&out);
    let after = inspect(&out);
    assert!(!ids(&after).iter().any(|c| c == "rdp-port" || c == "rdp-deny-local"), "{after}");
    let sys = &after["hives"][0]["report"];
    assert_eq!(sys["state"], "clean", "{sys}");
    let before = inspect(&input);
    let max = before["hives"][0]["report"]["max_sequence_seen"].as_u64().unwrap();
    assert_eq!(sys["primary_seq1"].as_u64().unwrap(), max + 1, "seq above every log entry");
    // Everything else equals the input as recovered from its log.
    assert_only_targeted_changed(
        &input,
        &out,
        r"HKLM\SYSTEM",
        &[(r"control\terminal server", "fDenyTSConnections", J::from(0)), (r"winstations\rdp-tcp", "PortNumber", J::from(3389))],
    );
    // The reset-rdp profile also turns the firewall rules on.
    let out = d.join("reset.vhdx");
    let o = fix(&input, &["--profile", "reset-rdp", "--out", out.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(0), "{}{}", stdout(&o), stderr(&o));
    assert_eq!(ids(&inspect(&out)), Vec::<String>::new(), "reset-rdp leaves findings");
}

#[test]
#[cfg_attr(not(scenarios), ignore = "needs ../shared/data and the scenario-image tools (python3, hivex, ntfs-3g, fdisk, gdisk, mtools, dosfstools, qemu-img)")]
fn diff_child_holds_only_the_change_and_its_parent_is_untouched() {
    let d = out_dir("child");
    for name in ["port-moved", "crypto"] {
        let Some(input) = scenario(name) else { return };
        let ext = input.extension().unwrap().to_str().unwrap().to_string();
        // The child names its parent by relative path: keep them side by side.
        let parent = d.join(format!("{name}.{ext}"));
        std::fs::copy(&input, &parent).unwrap();
        let hash = sha256_file(&parent);
        let child = d.join(format!("{name}-child.{}", if ext == "vhd" { "vhd" } else { "avhdx" }));
        let full = d.join(format!("{name}-full.{ext}"));
        let check = if name == "port-moved" { "rdp-port" } else { "rdp-deny-local" };
        let o = fix_at_fixed_time(&parent, &["--check", check, "--out", child.to_str().unwrap(), "--diff-child"]);
        assert_eq!(o.status.code(), Some(0), "{name}: {}{}", stdout(&o), stderr(&o));
        assert_eq!(sha256_file(&parent), hash, "{name}: parent changed");
        // What the child occupies on disk (blocks are sparse where nothing was written).
        let m = std::fs::metadata(&child).unwrap();
        let used = allocated_bytes(&m);
        assert!(used < 12 << 20, "{name}: child occupies {used} bytes");
        eprintln!("{name}: differencing child {} bytes, {used} allocated", m.len());
        // (qemu opens no differencing VHDX, so there is no qemu-img check of the child.)
        let o = fix_at_fixed_time(&parent, &["--check", check, "--out", full.to_str().unwrap()]);
        assert_eq!(o.status.code(), Some(0));
        qemu_check(&full);
        // The child over its parent reads exactly like the full copy: through
        // libvhdi (independent) and through our reader.
        let flat = rdprescue::image::open(&full).unwrap();
        let want = disk_sha256(flat.disk.as_ref());
        let ours = rdprescue::image::open(&child).unwrap();
        assert_eq!(disk_sha256(ours.disk.as_ref()), want, "{name}: child over parent != full copy (our reader)");
        if have_pyvhdi() {
            let (sha, facts) = pyvhdi(&child, Some(&parent), &[(0, flat.disk.len())]);
            assert_eq!(sha, want, "{name}: child over parent != full copy (libvhdi: {facts})");
        }
        assert!(!ids(&inspect(&child)).contains(&check.to_string()));
        if have("vhdiinfo") {
            let o = Command::new("vhdiinfo").arg(&child).out().unwrap();
            assert!(o.status.success(), "vhdiinfo: {}{}", stdout(&o), stderr(&o));
            assert!(stdout(&o).to_lowercase().contains("parent"), "{}", stdout(&o));
        } else {
            eprintln!("NOTICE: vhdiinfo (libvhdi-utils) not installed; skipping the libvhdi check");
        }
    }
}

#[test]
#[cfg_attr(not(scenarios), ignore = "needs ../shared/data and the scenario-image tools (python3, hivex, ntfs-3g, fdisk, gdisk, mtools, dosfstools, qemu-img)")]
fn a_killed_fix_leaves_no_destination() {
    let d = out_dir("fault");
    let (Some(vhdx), Some(vhd), Some(raw)) = (scenario("port-moved"), scenario("setup-hook"), scenario("win10-as-shipped")) else { return };
    for (input, step) in [
        (&vhdx, "vhdx-data"),
        (&vhdx, "vhdx-metadata"),
        (&vhd, "vhd-data"),
        (&vhd, "vhd-footer"),
        (&raw, "raw-data"),
        (&vhdx, "before-verify"),
        (&vhdx, "before-rename"),
    ] {
        let ext = input.extension().unwrap().to_str().unwrap();
        let out = d.join(format!("{step}.{ext}"));
        let o = Command::new(env!("CARGO_BIN_EXE_rdprescue"))
            .args(["fix", input.to_str().unwrap(), "--all", "--out", out.to_str().unwrap()])
            .env("RDPRESCUE_FAULT", step)
            .out()
            .unwrap();
        assert!(o.status.code().is_none(), "{step}: not killed: {}", stderr(&o));
        assert!(stderr(&o).contains(&format!("fault injected at {step}")), "{step}: hook not reached: {}", stderr(&o));
        assert!(!out.exists(), "{step}: destination exists after a crash");
    }
    let out = d.join("ok.vhdx");
    let o = fix(&vhdx, &["--check", "rdp-port", "--out", out.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert!(out.exists());
    // No temporary file of the successful run is left.
    let left: Vec<_> = std::fs::read_dir(&d).unwrap().flatten().map(|e| e.file_name().to_string_lossy().to_string()).filter(|n| n.starts_with(".ok.vhdx")).collect();
    assert!(left.is_empty(), "{left:?}");
}

#[test]
#[cfg_attr(not(scenarios), ignore = "needs ../shared/data and the scenario-image tools (python3, hivex, ntfs-3g, fdisk, gdisk, mtools, dosfstools, qemu-img)")]
fn dry_run_and_refusals() {
    let d = out_dir("refuse");
    let Some(input) = scenario("win10-as-shipped") else { return };
    let out = d.join("x.raw");
    let o = fix(&input, &["--check", "rdp-deny-local", "--dry-run"]);
    assert_eq!(o.status.code(), Some(0));
    assert!(stdout(&o).contains(r"fDenyTSConnections: 1 -> 0 (REG_DWORD)") && stdout(&o).contains("Dry run"), "{}", stdout(&o));
    assert!(!out.exists());
    for (args, word) in [
        (vec!["--out", out.to_str().unwrap()], "say what to fix"),
        (vec!["--check", "rdp-prot", "--out", out.to_str().unwrap()], "unknown check id"),
        (vec!["--profile", "reset", "--out", out.to_str().unwrap()], "unknown profile"),
        (vec!["--check", "rdp-deny-local", "--out", input.to_str().unwrap()], "already exists"),
        (vec!["--check", "rdp-deny-local", "--out", out.to_str().unwrap(), "--diff-child"], "raw image cannot have a differencing child"),
    ] {
        let o = fix(&input, &args);
        assert_clean_error(&o, word);
        assert!(stderr(&o).contains(word), "{args:?}: {}", stderr(&o));
        assert!(!out.exists());
    }
    // A hibernated (Fast Startup) Windows would overwrite the fix on resume: refused.
    let Some(hib) = scenario("fast-startup") else { return };
    let o = fix(&hib, &["--all", "--out", d.join("h.vhd").to_str().unwrap()]);
    assert_layer_error(&o, "hibernated");
    assert!(stderr(&o).contains("Windows is hibernated") && !d.join("h.vhd").exists(), "{}", stderr(&o));
    // Nothing to fix is not an error.
    let o = fix(&input, &["--check", "bcd-safeboot", "--out", out.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert!(stdout(&o).contains("Nothing to change") && !out.exists());
}

#[test]
#[cfg_attr(not(scenarios), ignore = "needs ../shared/data and the scenario-image tools (python3, hivex, ntfs-3g, fdisk, gdisk, mtools, dosfstools, qemu-img)")]
fn in_place_on_a_raw_disk_with_undo() {
    let d = out_dir("inplace");
    let Some(input) = scenario("win10-as-shipped") else { return };
    let dev = d.join("disk.raw");
    std::fs::copy(&input, &dev).unwrap();
    let original = sha256_file(&dev);
    let undo = d.join("undo.json");
    let o = rdp(&["fix", dev.to_str().unwrap(), "--check", "rdp-deny-local", "--in-place", "--undo", undo.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(0), "{}{}", stdout(&o), stderr(&o));
    assert!(!ids(&inspect(&dev)).contains(&"rdp-deny-local".to_string()));
    assert_ne!(sha256_file(&dev), original);
    // A second in-place fix may not reuse the undo file.
    let o = rdp(&["fix", dev.to_str().unwrap(), "--all", "--in-place", "--undo", undo.to_str().unwrap()]);
    assert_clean_error(&o, "undo file exists");
    let o = rdp(&["undo", dev.to_str().unwrap(), undo.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert_eq!(sha256_file(&dev), original, "undo restores every byte");
    // Container formats are never written in place; --in-place needs --undo.
    let Some(vhdx) = scenario("port-moved") else { return };
    let o = fix(&vhdx, &["--all", "--in-place", "--undo", d.join("u2.json").to_str().unwrap()]);
    assert_clean_error(&o, "in-place vhdx");
    assert!(stderr(&o).contains("raw disks and block devices only"));
    assert!(!d.join("u2.json").exists());
    let o = fix(&dev, &["--all", "--in-place"]);
    assert_eq!(o.status.code(), Some(2));
}

#[test]
#[cfg_attr(not(scenarios), ignore = "needs ../shared/data and the scenario-image tools (python3, hivex, ntfs-3g, fdisk, gdisk, mtools, dosfstools, qemu-img)")]
fn reg_set_and_delete_write_a_copy() {
    let d = out_dir("reg");
    let Some(input) = scenario("port-moved") else { return };
    let out = d.join("tls.vhdx");
    // A key path that does not exist yet: every missing key is created.
    let key = r"HKLM\SYSTEM\CurrentControlSet\Control\SecurityProviders\SCHANNEL\Protocols\TLS 1.2\Server";
    let o = rdp_on(&input, &["reg", "set", input.to_str().unwrap(), key, "-v", "Enabled", "-t", "REG_DWORD", "-d", "0x1", "--out", out.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(0), "{}{}", stdout(&o), stderr(&o));
    assert!(stdout(&o).contains("Enabled: (absent) -> 1 (REG_DWORD)"), "{}", stdout(&o));
    qemu_check(&out);
    let o = rdp(&["reg", "query", out.to_str().unwrap(), &key.to_uppercase(), "-v", "enabled", "--json"]);
    let j: J = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(j["values"][0]["data"], 1, "{j}");
    // hivex finds the new keys by its own case-insensitive lookup (hash and sort order right).
    if let Some(sys) = ntfscat_system(&out, &d) {
        let f = d.join("SYSTEM");
        std::fs::write(&f, &sys).unwrap();
        if have("hivexget") {
            let o = Command::new("hivexget").args([f.to_str().unwrap(), r"controlset001\CONTROL\securityproviders\schannel\PROTOCOLS\tls 1.2\server", "Enabled"]).out().unwrap();
            assert!(o.status.success(), "hivexget: {}", stderr(&o));
            assert_eq!(stdout(&o).trim(), "1");
        }
    }
    assert_only_targeted_changed_but_new(&input, &out, key);
    // Delete the key again, from the copy, into another copy.
    let out2 = d.join("tls-deleted.vhdx");
    let o = rdp_on(&out, &["reg", "delete", out.to_str().unwrap(), r"HKLM\SYSTEM\CurrentControlSet\Control\SecurityProviders\SCHANNEL\Protocols\TLS 1.2", "--out", out2.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(0), "{}{}", stdout(&o), stderr(&o));
    assert_eq!(tree(&input, r"HKLM\SYSTEM\ControlSet001\Control\SecurityProviders"), tree(&out2, r"HKLM\SYSTEM\ControlSet001\Control\SecurityProviders"));
    // The same judged by libhivex on the whole hive: against the input, the
    // copy of the copy has no TLS 1.2 left and differs only by keys `reg set`
    // created above it (empty, no values), nothing else anywhere.
    let sys = "Windows/System32/config/SYSTEM";
    if let (Some(a), Some(b)) = (hive_by_other_tools(&input, 0, sys, &d, "in.hive"), hive_by_other_tools(&out2, 0, sys, &d, "out2.hive")) {
        let (a, b) = (hivex_tree(&a), hivex_tree(&b));
        assert!(!b.keys().any(|(k, _)| k.contains(r"\tls 1.2")), "TLS 1.2 left behind");
        let keys: std::collections::BTreeSet<_> = a.keys().chain(b.keys()).collect();
        let diff: Vec<_> = keys.into_iter().filter(|k| a.get(*k) != b.get(*k)).collect();
        let created = r"\controlset001\control\securityproviders\schannel\protocols";
        assert!(diff.iter().all(|(k, n)| n == "<key>" && !a.contains_key(&(k.clone(), n.clone())) && created.starts_with(k.as_str())), "hivex: {diff:?}");
    }
    // A plain hive file gives a new, clean hive file.
    let Some(data) = shared_data() else { return };
    let hive = data.join("hives/win10-1709-dirty/SYSTEM");
    let out3 = d.join("SYSTEM-fixed");
    let o = rdp_on(&hive, &["reg", "set", hive.to_str().unwrap(), r"ControlSet001\Control\Terminal Server", "-v", "fDenyTSConnections", "-t", "REG_DWORD", "-d", "0", "--out", out3.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let h = rdprescue::hive::load(std::fs::read(&out3).unwrap(), None, None).unwrap();
    assert_eq!(h.report.state, rdprescue::hive::HiveState::Clean);
    assert_eq!(h.report.primary_seq1, 2131, "one above the last log entry (2130)");
}

/// Like `assert_only_targeted_changed` for an edit that only adds keys under `new_key`.
fn assert_only_targeted_changed_but_new(input: &Path, output: &Path, new_key: &str) {
    let a = tree(input, r"HKLM\SYSTEM");
    let b = tree(output, r"HKLM\SYSTEM");
    let marker = r"\securityproviders\schannel\protocols";
    let kept: Vec<_> = a.iter().filter(|(k, v)| b.get(*k) != Some(*v)).map(|(k, _)| k.clone()).collect();
    assert!(kept.is_empty(), "changed or lost: {:?}", &kept[..kept.len().min(5)]);
    let added: Vec<_> = b.keys().filter(|k| !a.contains_key(*k)).collect();
    assert!(added.iter().all(|(k, _)| k.contains(marker)), "{new_key}: unexpected additions {added:?}");
    assert!(!added.is_empty());
}

#[test]
#[cfg_attr(not(scenarios), ignore = "needs ../shared/data and the scenario-image tools (python3, hivex, ntfs-3g, fdisk, gdisk, mtools, dosfstools, qemu-img)")]
fn reg_import_applies_a_reg_file_to_a_copy() {
    let d = out_dir("import");
    let (Some(from), Some(input)) = (scenario("win7-healthy-gen1"), scenario("crypto")) else { return };
    // A key exported from one machine, imported into a copy of another.
    let key = r"HKLM\SYSTEM\CurrentControlSet\Control\Terminal Server\WinStations\RDP-Tcp";
    let reg = d.join("rdp-tcp.reg");
    let o = rdp(&["reg", "export", from.to_str().unwrap(), key, "-o", reg.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let out = d.join("imported.vhd");
    let o = rdp_on(&input, &["reg", "import", input.to_str().unwrap(), reg.to_str().unwrap(), "--out", out.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(0), "{}{}", stdout(&o), stderr(&o));
    let (a, b) = (tree(&from, key), tree(&out, key));
    for (k, v) in &a {
        assert_eq!(b.get(k), Some(v), "{k:?} not imported");
    }
    // New keys, raw types, the default value and deletions, in regedit's UTF-16 form.
    let text = "Windows Registry Editor Version 5.00\r\n\r\n[HKEY_LOCAL_MACHINE\\SOFTWARE\\Rescue\\New Key]\r\n\"Multi\"=hex(7):61,00,00,00,62,00,00,00,00,00\r\n\"Q\"=hex(b):01,00,00,00,00,00,00,00\r\n@=\"default\"\r\n\r\n[HKEY_LOCAL_MACHINE\\SYSTEM\\CurrentControlSet\\Control\\Terminal Server]\r\n\"fDenyTSConnections\"=-\r\n";
    let reg2 = d.join("mixed.reg");
    std::fs::write(&reg2, [&[0xFF, 0xFE][..], &text.encode_utf16().flat_map(u16::to_le_bytes).collect::<Vec<u8>>()].concat()).unwrap();
    let out2 = d.join("mixed.vhd");
    let o = rdp_on(&input, &["reg", "import", input.to_str().unwrap(), reg2.to_str().unwrap(), "--out", out2.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(0), "{}{}", stdout(&o), stderr(&o));
    let t = tree(&out2, r"HKLM\SOFTWARE\rescue");
    let get = |k: &str, n: &str| t.get(&(format!(r"hkey_local_machine\software\rescue{k}"), n.to_string())).cloned();
    assert_eq!(get(r"\new key", "multi"), Some(("REG_MULTI_SZ".into(), serde_json::json!(["a", "b"]))));
    assert_eq!(get(r"\new key", "q"), Some(("REG_QWORD".into(), J::from(1))));
    assert_eq!(get(r"\new key", ""), Some(("REG_SZ".into(), J::from("default"))));
    assert!(!tree(&out2, r"HKLM\SYSTEM\ControlSet001\Control\Terminal Server").contains_key(&(r"hkey_local_machine\system\controlset001\control\terminal server".into(), "fdenytsconnections".into())));
    // A broken .reg file is refused with its line, and nothing is written.
    let bad = d.join("bad.reg");
    std::fs::write(&bad, "REGEDIT4\n[HKEY_LOCAL_MACHINE\\SOFTWARE\\X]\n\"a\"=dword:xyz\n").unwrap();
    let out3 = d.join("bad.vhd");
    let o = rdp_on(&input, &["reg", "import", input.to_str().unwrap(), bad.to_str().unwrap(), "--out", out3.to_str().unwrap()]);
    assert_clean_error(&o, "bad .reg");
    assert!(stderr(&o).contains("line 3"), "{}", stderr(&o));
    assert!(!out3.exists());
}

/// The README's fix commands on the committed demo image: nothing installed needed.
#[test]
fn demo_image_fix_needs_nothing_installed() {
    let d = out_dir("demo");
    let demo = testdata().join("demo.vhdx");
    for (name, extra) in [("full.vhdx", None), ("child.avhdx", Some("--diff-child"))] {
        let out = d.join(name);
        let mut args = vec!["--profile", "reset-rdp", "--out", out.to_str().unwrap()];
        args.extend(extra);
        let o = fix(&demo, &args);
        assert_eq!(o.status.code(), Some(0), "{}{}", stdout(&o), stderr(&o));
        let o = rdp(&["inspect", out.to_str().unwrap()]);
        assert_eq!(o.status.code(), Some(0), "{name}: findings remain: {}", stdout(&o));
        // Judged by other tools too (qemu-img reads the child through its
        // parent; ntfs-3g, hivex): exactly the planned change in SYSTEM.
        // qemu-img cannot read VHDX differencing disks: libvhdi flattens the child.
        let judged = match extra {
            None => Some(out.clone()),
            Some(_) => libvhdi_flat(&out, &demo, &d.join("child-flat.raw")),
        };
        if let Some(j) = judged {
            assert_hivex_diff(&demo, &j, 0, "Windows/System32/config/SYSTEM", &d, &[(r"\control\terminal server", "fDenyTSConnections", Some("dword:00000000"))]);
        }
    }
    // The child holds only what changed.
    let child = std::fs::metadata(d.join("child.avhdx")).unwrap();
    assert!(allocated_bytes(&child) < 8 << 20, "child occupies {} bytes", allocated_bytes(&child));
}

/// An existing `--out` is refused whether or not it is the input (issue 18: a
/// refusal of the input alone passed every test) before anything is written, and keeps
/// its bytes; no temporary is left next to it.
#[test]
fn an_existing_output_is_never_replaced() {
    let d = out_dir("existing-out");
    let demo = testdata().join("demo.vhdx");
    let before = sha256_file(&demo);
    let taken = d.join("taken.vhdx");
    std::fs::write(&taken, b"someone else's file").unwrap();
    let dangling = d.join("dangling.vhdx");
    // A dangling symlink is a Unix case (Windows symlinks need a privilege).
    #[cfg(unix)]
    std::os::unix::fs::symlink(d.join("nowhere"), &dangling).unwrap();
    let mut cases = vec![(&taken, None), (&taken, Some("--diff-child")), (&demo, None)];
    if cfg!(unix) {
        cases.push((&dangling, None));
    }
    for (out, extra) in cases {
        let mut args = vec!["--profile", "reset-rdp", "--out", out.to_str().unwrap()];
        args.extend(extra);
        let o = fix(&demo, &args);
        assert_clean_error(&o, "already exists");
        // Refused up front, not caught at publication ("appeared while writing").
        let want = if out == &demo { "already exists: it is the input" } else { "already exists; rdprescue never overwrites" };
        assert!(stderr(&o).contains(want), "{}: {}", out.display(), stderr(&o));
    }
    assert_eq!(std::fs::read(&taken).unwrap(), b"someone else's file");
    #[cfg(unix)]
    assert!(std::fs::symlink_metadata(&dangling).unwrap().file_type().is_symlink() && !d.join("nowhere").exists());
    let mut left: Vec<_> = std::fs::read_dir(&d).unwrap().map(|e| e.unwrap().file_name().into_string().unwrap()).collect();
    left.sort();
    let want: &[&str] = if cfg!(unix) { &["dangling.vhdx", "taken.vhdx"] } else { &["taken.vhdx"] };
    assert_eq!(left, want);
    assert_eq!(sha256_file(&demo), before);
    // reg set refuses the same way.
    let o = rdp(&["reg", "set", demo.to_str().unwrap(), r"HKLM\SYSTEM\Select", "-v", "RdprescueTest", "-t", "REG_DWORD", "-d", "7", "--out", taken.to_str().unwrap()]);
    assert_clean_error(&o, "already exists");
    assert_eq!(std::fs::read(&taken).unwrap(), b"someone else's file");
}

// ---- issue 19: profiles as Microsoft and the Azure scripts do them

/// The local value of a setting row of an inspection.
fn local(doc: &J, id: &str, name: &str) -> J {
    let s = doc["settings"].as_array().unwrap().iter().find(|s| s["id"] == id && s["name"] == name).unwrap_or_else(|| panic!("no setting {id} {name}"));
    s["local"].clone()
}

fn fixed(input: &Path, out: &Path, args: &[&str]) -> (J, String) {
    let mut a = args.to_vec();
    a.extend(["--out", out.to_str().unwrap()]);
    let o = fix(input, &a);
    assert!(matches!(o.status.code(), Some(0 | 1)), "{args:?}: {}{}", stdout(&o), stderr(&o));
    (inspect(out), stderr(&o))
}

#[test]
#[cfg_attr(not(scenarios), ignore = "needs ../shared/data and the scenario-image tools (python3, hivex, ntfs-3g, fdisk, gdisk, mtools, dosfstools, qemu-img)")]
fn issue19_nla_profiles_write_what_d10_and_the_azure_script_write() {
    let d = out_dir("i19-nla");
    let Some(shipped) = scenario("win10-as-shipped") else { return };
    let trio = |doc: &J| [local(doc, "security-layer", "SecurityLayer"), local(doc, "nla-user-auth", "UserAuthentication"), local(doc, "sec-protocol-negotiation", "fAllowSecProtocolNegotiation")];
    assert_eq!(trio(&inspect(&shipped)), [J::from(2), J::from(1), J::from(1)]);
    // D10's workaround: all three 0.
    let (doc, _) = fixed(&shipped, &d.join("off.raw"), &["--profile", "disable-nla"]);
    assert_eq!(trio(&doc), [J::from(0), J::from(0), J::from(0)]);
    // Azure's DisableNLA: UserAuthentication 0 only, TLS kept.
    let (doc, _) = fixed(&shipped, &d.join("keep-tls.raw"), &["--profile", "nla-off-keep-tls"]);
    assert_eq!(trio(&doc), [J::from(2), J::from(0), J::from(1)]);
    // D10's re-enable on the domain member that had NLA off and domain credentials refused.
    let Some(member) = scenario("i19-domain-member") else { return };
    let (doc, _) = fixed(&member, &d.join("on.vhdx"), &["--profile", "enable-nla"]);
    assert_eq!(trio(&doc), [J::from(1), J::from(1), J::from(1)]);
    assert_eq!(local(&doc, "disable-domain-creds", "disabledomaincreds"), 0);
    assert!(!doc["findings"].as_array().unwrap().iter().any(|f| f["check"] == "disable-domain-creds"));
}

#[test]
#[cfg_attr(not(scenarios), ignore = "needs ../shared/data and the scenario-image tools (python3, hivex, ntfs-3g, fdisk, gdisk, mtools, dosfstools, qemu-img)")]
fn issue19_fips_off_also_lowers_the_encryption_level() {
    let d = out_dir("i19-fips");
    let Some(member) = scenario("i19-domain-member") else { return };
    let (doc, _) = fixed(&member, &d.join("fips.vhdx"), &["--profile", "fips-off"]);
    assert_eq!(local(&doc, "min-encryption-level", "MinEncryptionLevel"), 2);
    assert_eq!(local(&doc, "fips-policy", "Enabled"), 0);
    let left: Vec<&str> = doc["findings"].as_array().unwrap().iter().map(|f| f["check"].as_str().unwrap()).collect();
    assert!(!left.contains(&"fips-policy") && !left.contains(&"min-encryption-level"), "{left:?}");
}

#[test]
#[cfg_attr(not(scenarios), ignore = "needs ../shared/data and the scenario-image tools (python3, hivex, ntfs-3g, fdisk, gdisk, mtools, dosfstools, qemu-img)")]
fn issue19_reset_rdp_keeps_a_custom_port_unless_told() {
    let d = out_dir("i19-port");
    let Some(moved) = scenario("port-moved") else { return };
    // Kept: the listener stays on 3390 and the firewall admits it (Windows 7: an App=System rule).
    let (doc, err) = fixed(&moved, &d.join("keep.vhdx"), &["--profile", "reset-rdp"]);
    assert_eq!(local(&doc, "rdp-port", "PortNumber"), 3390);
    assert!(err.contains("must allow TCP 3390"), "{err}");
    let left: Vec<&str> = doc["findings"].as_array().unwrap().iter().map(|f| f["check"].as_str().unwrap()).collect();
    assert!(left.is_empty(), "{left:?}");
    let rule = doc["settings"].as_array().unwrap().iter().find(|s| s["name"] == "RemoteDesktop-UserMode-In-TCP-3390").expect("the rule for the kept port");
    assert!(rule["local"].as_str().unwrap().contains("LPort=3390|App=System|"), "{rule}");
    // --reset-port: back to 3389, and the NSG must allow 3389.
    let (doc, err) = fixed(&moved, &d.join("reset.vhdx"), &["--profile", "reset-rdp", "--reset-port"]);
    assert_eq!(local(&doc, "rdp-port", "PortNumber"), 3389);
    assert!(err.contains("must allow TCP 3389"), "{err}");
}

#[test]
#[cfg_attr(not(scenarios), ignore = "needs ../shared/data and the scenario-image tools (python3, hivex, ntfs-3g, fdisk, gdisk, mtools, dosfstools, qemu-img)")]
fn issue19_safe_mode_off_reverts_the_dsrm_security_layer_on_a_dc() {
    let d = out_dir("i19-dsrm");
    let Some(dc) = scenario("i19-dc-dsrm") else { return };
    assert_eq!(local(&inspect(&dc), "security-layer", "SecurityLayer"), 0);
    let (doc, _) = fixed(&dc, &d.join("normal.vhd"), &["--profile", "safe-mode-off"]);
    assert_eq!(local(&doc, "security-layer", "SecurityLayer"), 1, "win-toggle-safe-mode's DSRM SecurityLayer 0 reverted");
    assert!(!doc["findings"].as_array().unwrap().iter().any(|f| f["check"] == "bcd-safeboot"));
    // Not a DC: SecurityLayer 0 is a choice (D10's NLA-off state), safe-mode-off leaves it.
    let Some(member) = scenario("i19-domain-member") else { return };
    let o = fix(&member, &["--profile", "safe-mode-off", "--out", d.join("member.vhdx").to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert!(stdout(&o).contains("Nothing to change."), "{}", stdout(&o));
}

/// The plan compares only the pages that can differ (the editor's writes,
/// the log pages recovery laid over the file, the base block) with the hive
/// file on the volume. With `RDPRESCUE_FAULT=check-diff` it also streams
/// the whole file and fails (exit 2) if that finds a change the pages
/// missed. Every scenario's `fix --all` plan must come out the same both
/// ways, the dirty hives (recovered from their logs) among them.
#[test]
#[cfg_attr(not(scenarios), ignore = "needs ../shared/data and the scenario-image tools (python3, hivex, ntfs-3g, fdisk, gdisk, mtools, dosfstools, qemu-img)")]
fn the_changed_pages_hold_every_change_of_the_plan() {
    let Some((_, all)) = build_scenarios("fix") else { return };
    let mut edited = Vec::new();
    for sc in all {
        let img = sc["image"].as_str().unwrap();
        let run = |check: bool| {
            let mut c = Command::new(env!("CARGO_BIN_EXE_rdprescue"));
            c.args(["fix", img, "--all", "--dry-run", "--json"]).env("SOURCE_DATE_EPOCH", "1700000000");
            if check {
                c.env("RDPRESCUE_FAULT", "check-diff");
            }
            c.out().unwrap()
        };
        let (plain, checked) = (run(false), run(true));
        assert_eq!(checked.status.code(), plain.status.code(), "{img}: {}", stderr(&checked));
        assert_eq!(stdout(&checked), stdout(&plain), "{img}");
        let doc: J = serde_json::from_slice(&plain.stdout).unwrap_or(J::Null);
        if doc["plan"]["hives"].as_array().is_some_and(|h| !h.is_empty()) {
            edited.push(sc["name"].as_str().unwrap().to_string());
        }
    }
    for dirty in ["dirty-log", "win10-1709-dirty"] {
        assert!(edited.iter().any(|n| n == dirty), "{dirty}: no hive edit planned, so the comparison went untested ({edited:?})");
    }
}
