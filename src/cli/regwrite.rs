//! `rdprescue reg set|delete SOURCE KEY ... --out NEW`: generic registry edits,
//! always written to a new image (full copy or differencing child) or, for a
//! plain hive file, a new hive file. Dirty hives are recovered first; the
//! written hive is clean. The same pipeline as `fix`.

use super::fix;
use super::regcmd;
use anyhow::{bail, Context};
use rdprescue::hive::edit::HiveEditor;
use rdprescue::hive::source::{self, HiveKind};
use rdprescue::rdp::{self, Action};
use rdprescue::{image, repair};
use serde_json::Value as J;
use std::path::{Path, PathBuf};

pub struct Output {
    pub out: Option<PathBuf>,
    pub diff_child: bool,
    pub dry_run: bool,
}

/// Data as typed on the command line, as JSON for the action: numbers for
/// DWORD/QWORD (decimal or 0x hex), `\0`-separated strings for MULTI_SZ (like
/// reg.exe), hex for BINARY.
pub fn parse_data(ty: &str, text: &str) -> anyhow::Result<(&'static str, J)> {
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
            ("REG_DWORD", J::from(n))
        }
        "REG_QWORD" => ("REG_QWORD", J::from(num(text)?)),
        "REG_SZ" => ("REG_SZ", J::from(text)),
        "REG_EXPAND_SZ" => ("REG_EXPAND_SZ", J::from(text)),
        "REG_MULTI_SZ" => ("REG_MULTI_SZ", J::Array(text.split("\\0").filter(|s| !s.is_empty()).map(J::from).collect())),
        "REG_BINARY" => {
            let h: String = text.chars().filter(|c| !c.is_whitespace() && *c != ',').collect();
            if h.len() % 2 != 0 || !h.chars().all(|c| c.is_ascii_hexdigit()) {
                bail!("REG_BINARY data must be hex bytes, e.g. 0a1b2c");
            }
            ("REG_BINARY", J::from(h.to_lowercase()))
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
    let (ty, data) = parse_data(ty, data)?;
    let a = Action::SetValue { hive: kind.name(), key: path, name: name.to_string(), ty, data };
    apply(source_path, t, vec![a], o)
}

pub fn delete(source_path: &Path, key: &str, name: Option<&str>, o: Output) -> anyhow::Result<i32> {
    let (kind, path, t) = locate(source_path, key)?;
    let a = match name {
        Some(n) => {
            if !t.hive.key(&path).is_ok_and(|k| k.values.iter().any(|v| v.name.eq_ignore_ascii_case(n))) {
                bail!("{key}\\{n}: no such value");
            }
            Action::DeleteValue { hive: kind.name(), key: path, name: n.to_string() }
        }
        None => {
            if t.hive.key(&path).is_err() {
                bail!("{key}: no such key");
            }
            Action::DeleteKey { hive: kind.name(), key: path }
        }
    };
    apply(source_path, t, vec![a], o)
}

fn apply(source_path: &Path, t: regcmd::Target, actions: Vec<Action>, o: Output) -> anyhow::Result<i32> {
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
fn apply_to_hive_file(source_path: &Path, t: regcmd::Target, actions: &[Action], o: Output) -> anyhow::Result<i32> {
    if o.diff_child {
        bail!("--diff-child needs a VHD or VHDX image; {} is a hive file", source_path.display());
    }
    let hive = t.hive;
    if hive.report.state == rdprescue::hive::HiveState::DirtyNotRecovered {
        bail!("{} is dirty and its logs cannot be replayed: refusing to edit it", source_path.display());
    }
    let mut ed = HiveEditor::new(hive.bytes.clone(), hive.report.max_sequence_seen)?;
    for a in actions {
        match a {
            Action::SetValue { key, name, ty, data, .. } => {
                let (t, raw) = repair::encode(ty, data)?;
                let old = ed.set_value(key, name, t, &raw)?;
                let old = old.map_or("(absent)".into(), |(_, d)| format!("{} bytes", d.len()));
                println!("{}\\{}\\{name}: {old} -> {} ({ty})", t_root(&hive.name), key, rdp::show_json(data));
            }
            Action::DeleteValue { key, name, .. } => {
                ed.delete_value(key, name)?;
                println!("{}\\{}\\{name}: deleted", t_root(&hive.name), key);
            }
            Action::DeleteKey { key, .. } => {
                ed.delete_key(key)?;
                println!("[-{}\\{}]", t_root(&hive.name), key);
            }
            Action::CreateKey { key, .. } => {
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
    let mut nf = repair::output::NewFile::create(out, &[source_path])?;
    nf.write_all(&bytes)?;
    let check = rdprescue::hive::load(std::fs::read(nf.path()).with_context(|| format!("reading back {}", out.display()))?, None, None);
    match check {
        Ok(h) if h.report.state == rdprescue::hive::HiveState::Clean && h.bytes[..] == bytes[..h.bytes.len()] => {}
        other => bail!("verification of the written hive failed: {}", other.err().map_or("not clean".into(), |e| e.to_string())),
    }
    nf.commit()?;
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
        let hive = kind.name();
        actions.push(match op {
            RegOp::AddKey { .. } => Action::CreateKey { hive, key: path },
            RegOp::DeleteKey { .. } => Action::DeleteKey { hive, key: path },
            RegOp::DeleteValue { name, .. } => Action::DeleteValue { hive, key: path, name },
            RegOp::SetValue { name, kind: k, data, .. } => {
                let ty = *TYPE_NAMES.get(k as usize).with_context(|| format!("[{key}] {name:?}: registry type {k:#x} is not supported"))?;
                let v = rdprescue::hive::tree::Value { name: name.clone(), kind: k, raw: data.clone() };
                // Numbers and clean strings stay readable in the report; anything else is written byte for byte.
                let clean = match k {
                    1 | 2 => repair::encode(ty, &J::from(v.string())).is_ok_and(|(_, b)| b == data),
                    4 => data.len() == 4,
                    _ => false,
                };
                let json = if clean { v.json_data() } else { serde_json::json!({ "hex": data.iter().map(|b| format!("{b:02x}")).collect::<String>() }) };
                Action::SetValue { hive, key: path, name, ty, data: json }
            }
        });
    }
    apply(source_path, t, actions, o)
}
