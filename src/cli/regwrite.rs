//! `rdprescue reg set|delete SOURCE KEY ... --out NEW`: generic registry edits,
//! always written to a new image (full copy or differencing child) or, for a
//! plain hive file, a new hive file. Dirty hives are recovered first; the
//! written hive is clean. The same pipeline as `fix`.

use anyhow::{bail, Context};
use rdprescue::hive::edit::{Edit, RegData};
use rdprescue::hive::HiveKind;
use rdprescue::machine::{KeyTarget, Machine, Origin};
use rdprescue::repair::{self, Destination};
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
fn locate<'m>(m: &'m Machine, key: &str) -> anyhow::Result<(HiveKind, String, KeyTarget<'m>)> {
    let t = m.resolve_key(key)?;
    let kind = t
        .kind
        .with_context(|| format!("cannot tell which hive {key} is in"))?;
    if t.path.is_empty() {
        bail!("{key} is the root of the hive: name a key inside it");
    }
    Ok((kind, t.path.clone(), t))
}

pub fn set(
    source_path: &Path,
    key: &str,
    name: &str,
    ty: &str,
    data: &str,
    o: Output,
) -> anyhow::Result<i32> {
    super::preflight::reg_output(source_path, o.out.as_deref(), o.dry_run)?;
    let m = Machine::open(source_path)?;
    let (kind, path, _) = locate(&m, key)?;
    let a = Edit::set(kind, path, name, parse_data(ty, data)?);
    apply(&m, vec![a], o)
}

pub fn delete(source_path: &Path, key: &str, name: Option<&str>, o: Output) -> anyhow::Result<i32> {
    super::preflight::reg_output(source_path, o.out.as_deref(), o.dry_run)?;
    let m = Machine::open(source_path)?;
    let (kind, path, t) = locate(&m, key)?;
    let a = match name {
        Some(n) => {
            if !t
                .hive
                .key(&path)
                .is_ok_and(|k| k.values.iter().any(|v| v.name.eq_ignore_ascii_case(n)))
            {
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
    apply(&m, vec![a], o)
}

fn apply(m: &Machine, actions: Vec<Edit>, o: Output) -> anyhow::Result<i32> {
    let image = m.origin() == Origin::Image;
    if o.diff_child && !image {
        bail!(
            "--diff-child needs a VHD or VHDX image; {} is a hive file",
            m.path().display()
        );
    }
    let plan = repair::plan(m, &actions)?;
    if plan.edits.is_empty() {
        println!("Nothing to change: the value already has that data.");
        return Ok(0);
    }
    print!("{plan}");
    if o.dry_run {
        println!("Dry run: nothing written.");
        return Ok(0);
    }
    let Some(out) = &o.out else {
        bail!("--out NEW is required (or --dry-run): the input is never written")
    };
    if image {
        super::commit(
            m,
            &plan,
            if o.diff_child {
                Destination::DiffChild(out)
            } else {
                Destination::Copy(out)
            },
        )?;
        println!(
            "Wrote {} ({}), verified by reading it back.",
            out.display(),
            if o.diff_child {
                "differencing child of the input"
            } else {
                "full copy"
            }
        );
    } else {
        super::commit(m, &plan, Destination::HiveFile(out))?;
        println!("Wrote {} (clean hive), verified by reading it back. Its old .LOG1/.LOG2 do not apply to it.", out.display());
    }
    Ok(0)
}

/// `reg import SOURCE FILE.reg`: every key and value of a .reg file (as regedit
/// or `reg export` writes it), applied to a new copy.
pub fn import(source_path: &Path, reg: &Path, o: Output) -> anyhow::Result<i32> {
    super::preflight::reg_output(source_path, o.out.as_deref(), o.dry_run)?;
    use rdprescue::hive::regfile::{self, RegOp};
    use rdprescue::hive::tree::TYPE_NAMES;
    let bytes = std::fs::read(reg).with_context(|| format!("cannot read {}", reg.display()))?;
    let ops =
        regfile::parse(&regfile::decode(&bytes)?).with_context(|| reg.display().to_string())?;
    if ops.is_empty() {
        println!("{} holds no keys: nothing to change.", reg.display());
        return Ok(0);
    }
    let m = Machine::open(source_path)?;
    // Every key is resolved against the machine (hives load once, on first
    // use); a hive file refuses keys of another hive.
    let mut actions = Vec::new();
    for op in ops {
        let key = op.key().to_string();
        let t = m.resolve_key(&key)?;
        let kind = t
            .kind
            .with_context(|| format!("[{key}]: cannot tell which hive it is in"))?;
        let path = t.path;
        if path.is_empty() {
            bail!("[{key}] is the root of a hive: rdprescue does not write hive roots");
        }
        actions.push(match op {
            RegOp::AddKey { .. } => Edit::create_key(kind, path),
            RegOp::DeleteKey { .. } => Edit::delete_key(kind, path),
            RegOp::DeleteValue { name, .. } => Edit::delete_value(kind, path, name),
            RegOp::SetValue {
                name,
                kind: k,
                data,
                ..
            } => {
                if TYPE_NAMES.get(k as usize).is_none() {
                    bail!("[{key}] {name:?}: registry type {k:#x} is not supported");
                }
                // Readable where the bytes round-trip; anything else is written byte for byte.
                Edit::set(kind, path, name, RegData::from_raw(k, &data))
            }
        });
    }
    apply(&m, actions, o)
}
