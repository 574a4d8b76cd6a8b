//! `rdprescue reg set|delete SOURCE KEY ... --out NEW`: generic registry edits,
//! always written to a new image (full copy or differencing child) or, for a
//! plain hive file, a new hive file. Dirty hives are recovered first; the
//! written hive is clean. The same pipeline as `fix`.

use super::fix;
use super::regcmd;
use anyhow::{bail, Context};
use rdprescue::hive::edit::{show_json, Edit, EditOp, HiveEditor, RegData};
use rdprescue::hive::source::{self, HiveKind};
use rdprescue::{image, repair};
use std::path::{Path, PathBuf};

pub struct Output {
    pub out: Option<PathBuf>,
    pub diff_child: bool,
    pub dry_run: bool,
}

/// Data as typed on the command line: numbers for
/// DWORD/QWORD (decimal or 0x hex), `\0`-separated strings for MULTI_SZ (like
/// reg.exe), hex for BINARY.
pub fn parse_data(ty: &str, text: &str) -> anyhow::Result<RegData> {
    let num = |t: &str| -> anyhow::Result<u64> {
        let t = t.trim();
        let v = match t.strip_prefix("0x").or_else(|| t.strip_prefix("0X")) {
            Some(h) => u64::from_str_radix(h, 16),
            None => t.parse(),
        };
        v.with_context(|| format!("{t:?} is not a number"))
    };
    Ok(match ty.to_ascii_uppercase().as_str() {
        "REG_DWORD" => {
            let n = num(text)?;
            if n > u32::MAX as u64 {
                bail!("{n} does not fit a REG_DWORD");
            }
            RegData::Dword(n as u32)
        }
        "REG_QWORD" => RegData::Qword(num(text)?),
        "REG_SZ" => RegData::Sz(text.into()),
        "REG_EXPAND_SZ" => RegData::ExpandSz(text.into()),
        "REG_MULTI_SZ" => RegData::MultiSz(text.split("\\0").filter(|s| !s.is_empty()).map(String::from).collect()),
        "REG_BINARY" => {
            let h: String = text.chars().filter(|c| !c.is_whitespace() && *c != ',').collect();
            if h.len() % 2 != 0 || !h.chars().all(|c| c.is_ascii_hexdigit()) {
                bail!("REG_BINARY data must be hex bytes, e.g. 0a1b2c");
            }
            RegData::Binary((0..h.len()).step_by(2).map(|i| u8::from_str_radix(&h[i..i + 2], 16)).collect::<Result<_, _>>()?)
        }
        other => bail!("unsupported type {other} (REG_SZ, REG_EXPAND_SZ, REG_MULTI_SZ, REG_DWORD, REG_QWORD, REG_BINARY)"),
    })
}

/// The hive kind and in-hive path (CurrentControlSet resolved) of `key`.
fn locate(source_path: &Path, key: &str) -> anyhow::Result<(HiveKind, String, regcmd::Target)> {
    let t = regcmd::resolve(source_path, key)?;
    let kind = source::parse_key(key).hive.or_else(|| source::guess_kind(&t.hive.name, &t.hive)).with_context(|| format!("cannot tell which hive {key} is in"))?;
    if t.path.is_empty() {
        bail!("{key} is the root of the hive: name a key inside it");
    }
    Ok((kind, t.path.clone(), t))
}

pub fn set(source_path: &Path, key: &str, name: &str, ty: &str, data: &str, o: Output) -> anyhow::Result<i32> {
    let (kind, path, t) = locate(source_path, key)?;
    let a = Edit::set(kind, path, name, parse_data(ty, data)?);
    apply(source_path, t, vec![a], o)
}

pub fn delete(source_path: &Path, key: &str, name: Option<&str>, o: Output) -> anyhow::Result<i32> {
    let (kind, path, t) = locate(source_path, key)?;
    let a = match name {
        Some(n) => {
            if !t.hive.key(&path).is_ok_and(|k| k.values.iter().any(|v| v.name.eq_ignore_ascii_case(n))) {
                bail!("{key}\\{n}: no such value");
            }
            Edit::delete_value(kind, path, n)
        }
        None => {
            if t.hive.key(&path).is_err() {
                bail!("{key}: no such key");
            }
            Edit::delete_key(kind, path)
        }
    };
    apply(source_path, t, vec![a], o)
}

fn apply(source_path: &Path, t: regcmd::Target, actions: Vec<Edit>, o: Output) -> anyhow::Result<i32> {
    if source::is_hive_file(source_path) {
        return apply_to_hive_file(source_path, t, &actions, o);
    }
    let img = image::open(source_path)?;
    let plan = repair::plan(&img, &actions)?;
    if plan.edits.is_empty() {
        println!("Nothing to change: the value already has that data.");
        return Ok(0);
    }
    print!("{}", fix::describe(&plan));
    if o.dry_run {
        println!("Dry run: nothing written.");
        return Ok(0);
    }
    let Some(out) = &o.out else { bail!("--out NEW is required (or --dry-run): the input is never written") };
    fix::write_output(&img, &plan, out, o.diff_child)?;
    println!("Wrote {} ({}), verified by reading it back.", out.display(), if o.diff_child { "differencing child of the input" } else { "full copy" });
    Ok(0)
}

/// A plain hive file: the edited, clean hive goes to a new file.
fn apply_to_hive_file(source_path: &Path, t: regcmd::Target, actions: &[Edit], o: Output) -> anyhow::Result<i32> {
    if o.diff_child {
        bail!("--diff-child needs a VHD or VHDX image; {} is a hive file", source_path.display());
    }
    let hive = t.hive;
    if hive.report.state == rdprescue::hive::HiveState::DirtyNotRecovered {
        bail!("{} is dirty and its logs cannot be replayed: refusing to edit it", source_path.display());
    }
    let mut ed = HiveEditor::new(hive.bytes.clone(), hive.report.max_sequence_seen)?;
    for a in actions {
        let key = &a.key;
        match &a.op {
            EditOp::SetValue { name, data } => {
                let old = ed.set_value(key, name, data.kind(), &data.to_bytes())?;
                let old = old.map_or("(absent)".into(), |(_, d)| format!("{} bytes", d.len()));
                println!("{}\\{}\\{name}: {old} -> {} ({})", t_root(&hive.name), key, show_json(&data.json()), data.type_name());
            }
            EditOp::DeleteValue { name } => {
                ed.delete_value(key, name)?;
                println!("{}\\{}\\{name}: deleted", t_root(&hive.name), key);
            }
            EditOp::DeleteKey => {
                ed.delete_key(key)?;
                println!("[-{}\\{}]", t_root(&hive.name), key);
            }
            EditOp::CreateKey => {
                if ed.add_key(key)? {
                    println!("[{}\\{}] (new key)", t_root(&hive.name), key);
                }
            }
        }
    }
    let bytes = ed.finish()?;
    if o.dry_run {
        println!("Dry run: nothing written.");
        return Ok(0);
    }
    let Some(out) = &o.out else { bail!("--out NEW is required (or --dry-run): the input is never written") };
    if out.exists() {
        bail!("{} already exists; rdprescue never overwrites (choose a new --out path)", out.display());
    }
    let dir = out.parent().filter(|d| !d.as_os_str().is_empty()).unwrap_or(Path::new("."));
    let tmp = dir.join(format!(".{}.rdprescue-{}.tmp", out.file_name().context("--out has no file name")?.to_string_lossy(), std::process::id()));
    std::fs::write(&tmp, &bytes).with_context(|| format!("writing {}", tmp.display()))?;
    let check = rdprescue::hive::load(std::fs::read(&tmp)?, None, None);
    match check {
        Ok(h) if h.report.state == rdprescue::hive::HiveState::Clean && h.bytes[..] == bytes[..h.bytes.len()] => {}
        other => {
            let _ = std::fs::remove_file(&tmp);
            bail!("verification of the written hive failed: {}", other.err().map_or("not clean".into(), |e| e.to_string()));
        }
    }
    std::fs::rename(&tmp, out).with_context(|| format!("moving the output into place at {}", out.display()))?;
    println!("Wrote {} (clean hive), verified by reading it back. Its old .LOG1/.LOG2 do not apply to it.", out.display());
    Ok(0)
}

fn t_root(name: &str) -> String {
    format!("HKLM\\{}", name.to_uppercase())
}

/// `reg import SOURCE FILE.reg`: every key and value of a .reg file (as regedit
/// or `reg export` writes it), applied to a new copy.
pub fn import(source_path: &Path, reg: &Path, o: Output) -> anyhow::Result<i32> {
    use rdprescue::hive::regfile::{self, RegOp};
    use rdprescue::hive::tree::TYPE_NAMES;
    let bytes = std::fs::read(reg).with_context(|| format!("cannot read {}", reg.display()))?;
    let ops = regfile::parse(&regfile::decode(&bytes)?).with_context(|| reg.display().to_string())?;
    let first = ops.first().map(|op| op.key().to_string());
    let Some(first) = first else {
        println!("{} holds no keys: nothing to change.", reg.display());
        return Ok(0);
    };
    // Loads the hive of the first key: a hive file, or SYSTEM/SOFTWARE/... of the image.
    let t = regcmd::resolve(source_path, &first)?;
    // CurrentControlSet needs SYSTEM's Select: from the hive loaded above, or
    // (image sources) from SYSTEM, loaded once when a SYSTEM key first needs it.
    let mut sets = t.control_sets.clone();
    let mut looked = sets.is_some() || source::is_hive_file(source_path);
    let mut actions = Vec::new();
    for op in ops {
        let key = op.key().to_string();
        let kp = source::parse_key(&key);
        let kind = kp.hive.or_else(|| source::guess_kind(&t.hive.name, &t.hive)).with_context(|| format!("[{key}]: cannot tell which hive it is in"))?;
        if kind == HiveKind::System && !looked && kp.rest.first().is_some_and(|c| c.eq_ignore_ascii_case("CurrentControlSet")) {
            sets = regcmd::resolve(source_path, r"HKLM\SYSTEM\Select")?.control_sets;
            looked = true;
        }
        let path = source::resolve_ccs(&kp.rest, sets.as_ref().filter(|_| kind == HiveKind::System)).join("\\");
        if path.is_empty() {
            bail!("[{key}] is the root of a hive: rdprescue does not write hive roots");
        }
        actions.push(match op {
            RegOp::AddKey { .. } => Edit::create_key(kind, path),
            RegOp::DeleteKey { .. } => Edit::delete_key(kind, path),
            RegOp::DeleteValue { name, .. } => Edit::delete_value(kind, path, name),
            RegOp::SetValue { name, kind: k, data, .. } => {
                if TYPE_NAMES.get(k as usize).is_none() {
                    bail!("[{key}] {name:?}: registry type {k:#x} is not supported");
                }
                // Readable where the bytes round-trip; anything else is written byte for byte.
                Edit::set(kind, path, name, RegData::from_raw(k, &data))
            }
        });
    }
    apply(source_path, t, actions, o)
}
