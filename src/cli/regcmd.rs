//! `rdprescue reg query|export SOURCE KEY`: read registry keys out of an image
//! (SYSTEM, SOFTWARE, SAM, SECURITY from the Windows volume, BCD from the boot
//! volume) or out of a plain hive file, with transaction logs replayed.

use super::outln;
use anyhow::bail;
use rdprescue::hive::regfile;
use rdprescue::hive::tree::{join, Key, Value};
use rdprescue::machine::{KeyTarget, Machine};
use serde_json::json;
use std::path::Path;

fn full(root: &str, path: &str) -> String {
    if path.is_empty() {
        root.to_string()
    } else {
        format!("{root}\\{path}")
    }
}

fn value_json(v: &Value) -> serde_json::Value {
    json!({"name": v.name, "type": v.type_name(), "data": v.json_data()})
}

fn key_json(root: &str, k: &Key, only: Option<&Value>) -> serde_json::Value {
    let values: Vec<_> = match only {
        Some(v) => vec![value_json(v)],
        None => k.values.iter().map(value_json).collect(),
    };
    json!({
        "key": full(root, &k.path),
        "last_write": k.last_write,
        "class": k.class,
        "values": values,
        "subkeys": k.subkeys,
    })
}

fn hive_json(t: &KeyTarget) -> serde_json::Value {
    json!({"name": t.hive.name, "report": t.hive.report, "control_sets": t.control_sets})
}

fn facts(t: &KeyTarget) -> String {
    let r = &t.hive.report;
    let mut s = format!(
        "hive {}: {:?}, primary seq {}/{}{}",
        t.hive.name,
        r.state,
        r.primary_seq1,
        r.primary_seq2,
        if r.primary_checksum_ok {
            ""
        } else {
            ", bad checksum"
        }
    );
    for a in &r.applied {
        s.push_str(&format!(
            "; {} ({} format) applied {} entries",
            a.log, a.format, a.entries
        ));
        if let (Some(f), Some(l)) = (a.first_sequence, a.last_sequence) {
            s.push_str(&format!(" seq {f}..{l}"));
        }
    }
    for n in &r.notes {
        s.push_str(&format!("; {n}"));
    }
    if let Some(c) = &t.control_sets {
        s.push_str(&format!(
            "\ncontrol sets: Current={} Default={} LastKnownGood={} Failed={} -> CurrentControlSet = {}",
            c.current,
            c.default.map_or("-".into(), |v| v.to_string()),
            c.last_known_good.map_or("-".into(), |v| v.to_string()),
            c.failed.map_or("-".into(), |v| v.to_string()),
            c.current_key
        ));
        if let Some(w) = &c.warning {
            s.push_str(&format!(" (warning: {w})"));
        }
    }
    s
}

fn value_text(o: &mut String, v: &Value) {
    let name = if v.name.is_empty() {
        "(Default)"
    } else {
        &v.name
    };
    outln!(o, "    {name}    {}    {}", v.type_name(), v.display());
}

pub fn query(
    source_path: &Path,
    key: &str,
    value: Option<&str>,
    recursive: bool,
    json_out: bool,
    verbose: bool,
) -> anyhow::Result<i32> {
    let m = Machine::open(source_path)?;
    let t = m.resolve_key(key)?;
    let keys = if recursive {
        t.hive.walk(&t.path)?
    } else {
        vec![t.hive.key(&t.path)?]
    };
    let selected = |k: &Key| -> Option<Value> {
        value.and_then(|n| {
            let n = if n == "(Default)" { "" } else { n };
            k.values
                .iter()
                .find(|v| v.name.eq_ignore_ascii_case(n))
                .cloned()
        })
    };
    if let Some(n) = value {
        if !recursive && selected(&keys[0]).is_none() {
            bail!(
                "hive: value {n:?} not found in {}",
                full(&t.root, &keys[0].path)
            );
        }
    }
    let mut o = String::new();
    if json_out {
        let doc = if recursive {
            let ks: Vec<_> = keys
                .iter()
                .filter_map(|k| match value {
                    Some(_) => selected(k).map(|v| key_json(&t.root, k, Some(&v))),
                    None => Some(key_json(&t.root, k, None)),
                })
                .collect();
            json!({"hive": hive_json(&t), "keys": ks})
        } else {
            let mut j = key_json(&t.root, &keys[0], selected(&keys[0]).as_ref());
            j["hive"] = hive_json(&t);
            j
        };
        o = serde_json::to_string_pretty(&doc)?;
        o.push('\n');
    } else {
        if verbose {
            eprintln!("{}", facts(&t));
        }
        for k in &keys {
            let vals: Vec<Value> = match value {
                Some(_) => selected(k).into_iter().collect(),
                None => k.values.clone(),
            };
            if recursive && value.is_some() && vals.is_empty() {
                continue;
            }
            outln!(o);
            outln!(o, "{}", full(&t.root, &k.path));
            for v in &vals {
                value_text(&mut o, v);
            }
            if !recursive && value.is_none() {
                outln!(o);
                for s in &k.subkeys {
                    outln!(o, "{}", full(&t.root, &join(&k.path, s)));
                }
            }
        }
    }
    super::emit(o.as_bytes())?;
    Ok(0)
}

pub fn export(
    source_path: &Path,
    key: &str,
    out: Option<&Path>,
    utf8: bool,
) -> anyhow::Result<i32> {
    let m = Machine::open(source_path)?;
    let t = m.resolve_key(key)?;
    let keys = t.hive.walk(&t.path)?;
    let doc = regfile::document(&t.root, &keys);
    let bytes = if utf8 {
        doc.into_bytes()
    } else {
        regfile::utf16_bytes(&doc)
    };
    match out {
        // UTF-16 on a terminal is unreadable noise: only when asked for with `-o -`.
        None if !utf8 && std::io::IsTerminal::is_terminal(&std::io::stdout()) => bail!("reg export: refusing to write UTF-16 .reg data to a terminal: give -o FILE, --utf8, or -o - to write it anyway"),
        None => super::emit(&bytes)?,
        Some(p) if p.as_os_str() == "-" => super::emit(&bytes)?,
        Some(p) => write_atomic(p, source_path, &bytes)?,
    }
    Ok(0)
}

/// Write `bytes` to the new file `path` (never replacing anything, never the
/// input) through [`NewFile`](rdprescue::repair::output::NewFile).
fn write_atomic(path: &Path, input: &Path, bytes: &[u8]) -> anyhow::Result<()> {
    let mut f = rdprescue::repair::output::NewFile::create(path, &[input])?;
    f.write_all(bytes)?;
    f.commit()?;
    Ok(())
}
