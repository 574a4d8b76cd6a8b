//! `rdprescue reg set|delete SOURCE KEY ... --out NEW`: generic registry edits,
//! always written to a new image (full copy or differencing child) or, for a
//! plain hive file, a new hive file. Dirty hives are recovered first; the
//! written hive is clean. The same pipeline as `fix`.

use anyhow::{bail, Context};
use rdprescue::hive::edit::{display_name, Edit, RegData};
use rdprescue::hive::HiveKind;
use rdprescue::machine::{KeyTarget, Machine, Origin};
use rdprescue::repair::{self, Destination};
use serde_json::json;
use std::path::{Path, PathBuf};

pub struct Output {
    /// `--format`: the container of a new image.
    pub format: Option<rdprescue::image::write::OutFormat>,
    pub out: Option<PathBuf>,
    pub diff_child: bool,
    pub dry_run: bool,
    pub json: bool,
}

/// The registry type number of a `REG_*` name (case-insensitive;
/// `REG_DWORD_LITTLE_ENDIAN` is REG_DWORD, as reg.exe takes it).
fn type_number(ty: &str) -> Option<u32> {
    use rdprescue::hive::tree::TYPE_NAMES;
    let t = ty.trim().to_ascii_uppercase();
    if t == "REG_DWORD_LITTLE_ENDIAN" {
        return Some(4);
    }
    TYPE_NAMES.iter().position(|n| *n == t).map(|i| i as u32)
}

/// Data as typed on the command line: numbers for DWORD/QWORD (decimal or
/// 0x hex), `\0`-separated strings for MULTI_SZ (like reg.exe; or `sep`, reg.exe's
/// `/s`), hex for BINARY and the other types.
fn parse_with(ty: &str, text: &str, sep: Option<&str>) -> anyhow::Result<RegData> {
    let Some(kind) = type_number(ty) else {
        bail!("unsupported type {ty} (REG_SZ, REG_EXPAND_SZ, REG_MULTI_SZ, REG_DWORD, REG_QWORD, REG_BINARY, REG_NONE, REG_DWORD_BIG_ENDIAN)")
    };
    parse_kind(kind, text, sep)
}

fn parse_kind(kind: u32, text: &str, sep: Option<&str>) -> anyhow::Result<RegData> {
    let num = |t: &str| -> anyhow::Result<u64> {
        let t = t.trim();
        let v = match t.strip_prefix("0x").or_else(|| t.strip_prefix("0X")) {
            Some(h) => u64::from_str_radix(h, 16),
            None => t.parse(),
        };
        v.with_context(|| format!("{t:?} is not a number"))
    };
    let dword = |t: &str| -> anyhow::Result<u32> {
        let n = num(t)?;
        u32::try_from(n).map_err(|_| anyhow::anyhow!("{n} does not fit a REG_DWORD"))
    };
    let bytes = || -> anyhow::Result<Vec<u8>> {
        let h: String = text.chars().filter(|c| !c.is_whitespace() && *c != ',').collect();
        hex::decode(&h).map_err(|_| anyhow::anyhow!("{} data must be hex bytes, e.g. 0a1b2c", type_name(kind)))
    };
    Ok(match kind {
        4 => RegData::Dword(dword(text)?),
        5 => RegData::Other(5, dword(text)?.to_be_bytes().to_vec()),
        11 => RegData::Qword(num(text)?),
        1 => RegData::Sz(text.into()),
        2 => RegData::ExpandSz(text.into()),
        7 => RegData::MultiSz(text.split(sep.filter(|s| !s.is_empty()).unwrap_or("\\0")).filter(|s| !s.is_empty()).map(String::from).collect()),
        3 => RegData::Binary(bytes()?),
        k => RegData::Other(k, bytes()?),
    })
}

fn type_name(kind: u32) -> String {
    rdprescue::hive::edit::type_name(kind)
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

/// `reg set` (`reg add`): without a type, the existing value keeps its type
/// (data parsed as that type); a new value is REG_SZ, as reg.exe makes it,
/// and the output says so.
#[allow(clippy::too_many_arguments)]
pub fn set(
    source_path: &Path,
    key: &str,
    name: &str,
    ty: Option<&str>,
    data: &str,
    sep: Option<&str>,
    o: Output,
) -> anyhow::Result<i32> {
    super::preflight::reg_output(source_path, o.out.as_deref(), o.dry_run)?;
    let m = Machine::open(source_path)?;
    let (kind, path, t) = locate(&m, key)?;
    let existing = t.hive.key(&path).ok().and_then(|k| k.values.into_iter().find(|v| v.name.eq_ignore_ascii_case(name)));
    let (data, note) = match (ty, existing) {
        (Some(ty), _) => (parse_with(ty, data, sep)?, None),
        (None, Some(v)) => (
            parse_kind(v.kind, data, sep).with_context(|| format!("the existing value is {} (no /t given, so it keeps that type)", v.type_name()))?,
            None,
        ),
        (None, None) => (RegData::Sz(data.into()), Some(format!("no type given and no value {:?} yet: REG_SZ, as reg.exe does (give one with /t or -t)", display_name(name)))),
    };
    let a = Edit::set(kind, path, name, data);
    apply(&m, vec![a], o, note)
}

pub fn delete(source_path: &Path, key: &str, name: Option<&str>, all_values: bool, o: Output) -> anyhow::Result<i32> {
    super::preflight::reg_output(source_path, o.out.as_deref(), o.dry_run)?;
    let m = Machine::open(source_path)?;
    let (kind, path, t) = locate(&m, key)?;
    let full = format!("{}\\{path}", t.root);
    let k = match t.hive.key(&path) {
        Ok(k) => k,
        Err(e) => {
            let e = anyhow::Error::from(e);
            if super::regcmd::is_missing(&e) {
                return super::regcmd::missing(&format!("no key {full}"), o.json);
            }
            return Err(e);
        }
    };
    let actions = match name {
        Some(n) => {
            if !k.values.iter().any(|v| v.name.eq_ignore_ascii_case(n)) {
                return super::regcmd::missing(&format!("no value {:?} in {full}", display_name(n)), o.json);
            }
            vec![Edit::delete_value(kind, path, n)]
        }
        None if all_values => k.values.iter().map(|v| Edit::delete_value(kind, path.clone(), v.name.clone())).collect(),
        None => vec![Edit::delete_key(kind, path)],
    };
    if actions.is_empty() {
        return nothing(&m, &o, &format!("{full} has no values: nothing to change."));
    }
    apply(&m, actions, o, None)
}

/// Nothing to write: the message, or the JSON record of an empty plan.
fn nothing(m: &Machine, o: &Output, msg: &str) -> anyhow::Result<i32> {
    if o.json {
        let doc = json!({"source": m.path().display().to_string(), "plan": [], "message": msg, "dry_run": o.dry_run, "output": null, "written": false, "verified": false});
        println!("{}", serde_json::to_string_pretty(&doc)?);
    } else {
        println!("{msg}");
    }
    Ok(0)
}

/// `{type, data}` of a value as it is in the machine's hive now, or null.
fn old_value(m: &Machine, kind: HiveKind, key: &str, name: &str) -> serde_json::Value {
    m.require(kind)
        .ok()
        .and_then(|h| h.key(key).ok())
        .and_then(|k| k.values.into_iter().find(|v| v.name.eq_ignore_ascii_case(name)))
        .map_or(serde_json::Value::Null, |v| json!({"type": v.type_name(), "data": v.json_data()}))
}

/// The plan as JSON: per hive file, each change with the old and new data
/// decoded (`{type, data}` like `reg query --json` values).
fn plan_json(m: &Machine, plan: &repair::Plan) -> serde_json::Value {
    use rdprescue::hive::edit::EditOp;
    let hives: Vec<_> = plan
        .edits
        .iter()
        .map(|e| {
            let changes: Vec<_> = e
                .changes
                .iter()
                .map(|c| {
                    let a = &c.action;
                    let key = format!("{}\\{}", a.hive.root(), a.key);
                    match &a.op {
                        EditOp::SetValue { name, data } => json!({"op": a.op_name(), "key": key, "name": name, "old": old_value(m, a.hive, &a.key, name), "new": {"type": data.type_name(), "data": data.json()}}),
                        EditOp::DeleteValue { name } => json!({"op": a.op_name(), "key": key, "name": name, "old": old_value(m, a.hive, &a.key, name), "new": null}),
                        EditOp::DeleteKey | EditOp::CreateKey => json!({"op": a.op_name(), "key": key, "old": c.old}),
                    }
                })
                .collect();
            json!({
                "hive": e.hive.short_root(),
                "file": e.location.to_string(),
                "bytes_changed": e.bytes_changed,
                "new_sequence": e.new_sequence,
                "changes": changes,
            })
        })
        .collect();
    serde_json::Value::Array(hives)
}

fn apply(m: &Machine, actions: Vec<Edit>, o: Output, note: Option<String>) -> anyhow::Result<i32> {
    let image = m.origin() == Origin::Image;
    if o.diff_child && !image {
        bail!(
            "--diff-child needs a VHD or VHDX image; {} is a hive file",
            m.path().display()
        );
    }
    if o.format.is_some() && !image {
        bail!("--format names the container of a new image: {} is a hive file (its output is a hive file)", m.path().display());
    }
    // A container this tool reads but does not write: refused before the plan.
    if let (false, Some(img), Some(out)) = (o.dry_run, m.image(), o.out.as_deref()) {
        rdprescue::image::write::writable(img, out, o.format, o.diff_child)?;
    }
    let plan = repair::plan(m, &actions)?;
    if plan.edits.is_empty() {
        return nothing(m, &o, "Nothing to change: the value already has that data.");
    }
    let mut doc = json!({"source": m.path().display().to_string(), "plan": plan_json(m, &plan)});
    if let Some(n) = &note {
        doc["note"] = json!(n);
    }
    doc["dry_run"] = json!(o.dry_run);
    if !o.json {
        if let Some(n) = &note {
            println!("Note: {n}");
        }
        print!("{plan}");
    }
    let finish = |doc: &mut serde_json::Value, out: Option<&Path>, kind: Option<&str>| -> anyhow::Result<i32> {
        if o.json {
            doc["output"] = json!(out.map(|p| p.display().to_string())); // lossy: never fail after writing
            doc["output_kind"] = json!(kind);
            doc["written"] = json!(out.is_some());
            doc["verified"] = json!(out.is_some());
            println!("{}", serde_json::to_string_pretty(doc)?);
        }
        Ok(0)
    };
    if o.dry_run {
        if !o.json {
            println!("Dry run: nothing written.");
        }
        return finish(&mut doc, None, None);
    }
    let Some(out) = &o.out else {
        bail!("--out NEW is required (or --dry-run): the input is never written")
    };
    let what = if image {
        super::commit(
            m,
            &plan,
            if o.diff_child {
                Destination::DiffChild { path: out, format: o.format }
            } else {
                Destination::Copy { path: out, format: o.format }
            },
            repair::Verify::Changed,
        )?;
        let what = if o.diff_child {
            "differencing child of the input"
        } else {
            "full copy"
        };
        if !o.json {
            println!("Wrote {} ({what}), verified by reading it back.", out.display());
        }
        what
    } else {
        super::commit(m, &plan, Destination::HiveFile(out), repair::Verify::Changed)?;
        if !o.json {
            println!("Wrote {} (clean hive), verified by reading it back. Its old .LOG1/.LOG2 do not apply to it.", out.display());
        }
        "clean hive file"
    };
    finish(&mut doc, Some(out), Some(what))
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
    let m = Machine::open(source_path)?;
    if ops.is_empty() {
        return nothing(&m, &o, &format!("{} holds no keys: nothing to change.", reg.display()));
    }
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
    apply(&m, actions, o, None)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn data_like_reg_exe() {
        let p = |t: &str, d: &str| parse_with(t, d, None).unwrap();
        assert_eq!(p("reg_dword", "0x1F"), RegData::Dword(31));
        assert_eq!(p("REG_DWORD", "3389"), RegData::Dword(3389));
        assert_eq!(p("REG_DWORD_LITTLE_ENDIAN", "1"), RegData::Dword(1));
        assert_eq!(p("REG_DWORD_BIG_ENDIAN", "1"), RegData::Other(5, vec![0, 0, 0, 1]));
        assert_eq!(p("REG_QWORD", "0x100000000"), RegData::Qword(1 << 32));
        assert_eq!(p("REG_MULTI_SZ", r"a\0b\0"), RegData::MultiSz(vec!["a".into(), "b".into()]));
        assert_eq!(parse_with("REG_MULTI_SZ", "a,b", Some(",")).unwrap(), RegData::MultiSz(vec!["a".into(), "b".into()]));
        assert_eq!(p("REG_BINARY", "0a1B 2c"), RegData::Binary(vec![0x0a, 0x1b, 0x2c]));
        assert_eq!(p("REG_NONE", ""), RegData::Other(0, vec![]));
        assert!(parse_with("REG_DWORD", "4294967296", None).is_err());
        assert!(parse_with("REG_DWORD", "x", None).is_err());
        assert!(parse_with("REG_BINARY", "abc", None).is_err());
        assert!(parse_with("REG_WORD", "1", None).unwrap_err().to_string().contains("unsupported type REG_WORD"));
    }
}
