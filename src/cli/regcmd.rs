//! `rdprescue reg query|export SOURCE KEY`: read registry keys out of an image
//! (SYSTEM, SOFTWARE, SAM, SECURITY from the Windows volume, BCD from the boot
//! volume) or out of a plain hive file, with transaction logs replayed.

use super::outln;
use rdprescue::hive::regfile;
use rdprescue::hive::tree::{join, Key, Value};
use rdprescue::machine::{KeyTarget, Machine};
use serde_json::json;
use std::ffi::OsString;
use std::path::Path;

/// reg.exe's message for a missing key or value (exit code 1, like reg.exe).
pub const NOT_FOUND: &str = "ERROR: The system was unable to find the specified registry key or value.";

/// Whether `e` is a key or value missing from a hive (not a missing hive file
/// or a damaged one).
pub fn is_missing(e: &anyhow::Error) -> bool {
    matches!(e.downcast_ref::<rdprescue::Error>(), Some(rdprescue::Error::NotFound { layer: rdprescue::error::Layer::Hive, .. }))
}

/// Report a missing key or value the way reg.exe does: its one line (with
/// what is missing) on stderr, or a JSON error object on stdout with
/// `--json`; exit code 1.
pub fn missing(what: &str, json_out: bool) -> anyhow::Result<i32> {
    if json_out {
        let doc = json!({"error": {"layer": "hive", "offset": null, "message": format!("{NOT_FOUND} ({what})")}});
        super::emit(format!("{doc}\n").as_bytes())?;
    } else {
        eprintln!("{NOT_FOUND} ({what})");
    }
    Ok(1)
}

/// Rewrite reg.exe spellings of `rdprescue reg ...` into the clap forms,
/// before parsing; any other command line is returned unchanged.
///
/// Case-insensitive, with `/` or `-` as switch character like reg.exe:
/// `reg QUERY|ADD|DELETE|EXPORT|IMPORT` (`add` = `set`), `/v NAME`, `/ve` (the
/// default value), `/va` (delete: every value of the key), `/t TYPE`,
/// `/d DATA`, `/s` (query: recurse; add: the REG_MULTI_SZ separator, which
/// takes a value), `/f` (add, delete: no prompt, rdprescue never prompts),
/// `/y` (export: accepted, but an existing FILE is still refused: outputs are
/// never replaced), `/reg:64` (the hive as stored). The value after an option
/// goes through untouched (it may be `/s` or start with `-`).
pub fn reg_exe_args(args: Vec<OsString>) -> Vec<OsString> {
    let is = |a: &OsString, s: &str| a.to_str().is_some_and(|a| a.eq_ignore_ascii_case(s));
    if args.len() < 3 || !is(&args[1], "reg") {
        return args;
    }
    let mut out: Vec<OsString> = args[..1].to_vec();
    out.push("reg".into());
    let sub = args[2].to_str().map(str::to_ascii_lowercase).unwrap_or_default();
    let sub = match sub.as_str() {
        "add" => "set".to_string(),
        "query" | "set" | "delete" | "import" | "export" => sub,
        _ => {
            out.extend(args[2..].iter().cloned());
            return out;
        }
    };
    out.push(sub.clone().into());
    // clap options whose value is the next argument, passed through as typed.
    const TAKES_VALUE: [&str; 8] = ["-v", "--value", "-t", "--type", "-d", "--data", "-o", "--out"];
    let mut it = args.into_iter().skip(3);
    while let Some(a) = it.next() {
        let Some(t) = a.to_str().map(str::to_ascii_lowercase) else {
            out.push(a);
            continue;
        };
        let with_next = |flag: &str, it: &mut dyn Iterator<Item = OsString>| -> OsString {
            match it.next() {
                Some(v) => {
                    let mut f = OsString::from(format!("{flag}="));
                    f.push(v);
                    f
                }
                None => flag.into(),
            }
        };
        let sw = t.strip_prefix('/').or_else(|| t.strip_prefix('-').filter(|s| !s.starts_with('-')));
        match (sub.as_str(), sw) {
            (_, _) if t == "--" => {
                out.push(a);
                out.extend(it);
                break;
            }
            // `-d -1` would read -1 as a flag: `-d=-1` cannot.
            (_, _) if TAKES_VALUE.contains(&t.as_str()) => {
                let flag = a.to_str().unwrap_or_default().to_string();
                out.push(with_next(&flag, &mut it));
            }
            ("query" | "set" | "delete", Some("v")) => out.push(with_next("--value", &mut it)),
            ("query" | "set" | "delete", Some("ve")) => out.push("--value=".into()),
            ("delete", Some("va")) => out.push("--all-values".into()),
            ("set", Some("t")) => out.push(with_next("--type", &mut it)),
            ("set", Some("d")) => out.push(with_next("--data", &mut it)),
            ("set", Some("s")) => out.push(with_next("--separator", &mut it)),
            ("query", Some("s")) => out.push("--recursive".into()),
            ("set" | "delete", Some("f")) | ("export", Some("y")) | (_, Some("reg:64")) => {}
            _ => out.push(a),
        }
    }
    out
}

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
    outln!(o, "    {name}    {}    {}", v.type_name(), reg_exe_data(v));
}

/// Data as reg.exe lists it: DWORD and QWORD in hex only (`0x1`), the rest
/// as [`Value::display`].
fn reg_exe_data(v: &Value) -> String {
    match v.kind {
        4 => v.dword().map_or_else(|| v.display(), |d| format!("{d:#x}")),
        11 => v.qword().map_or_else(|| v.display(), |q| format!("{q:#x}")),
        _ => v.display(),
    }
}

/// Whether `name` asks for the default value (`""`, `/ve`, `(Default)`).
fn is_default(name: &str) -> bool {
    name.is_empty() || name.eq_ignore_ascii_case("(Default)")
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
    // Only the named key missing is reg.exe's exit 1; a subkey that a key
    // lists but cannot be found is damage (exit 2).
    let first = match t.hive.key(&t.path) {
        Ok(k) => k,
        Err(e) => {
            let e = anyhow::Error::from(e);
            if is_missing(&e) {
                return missing(&format!("no key {}", full(&t.root, &t.path)), json_out);
            }
            return Err(e);
        }
    };
    let keys = if recursive { t.hive.walk(&t.path)? } else { vec![first] };
    let selected = |k: &Key| -> Option<Value> {
        value.and_then(|n| {
            let n = if is_default(n) { "" } else { n };
            k.values
                .iter()
                .find(|v| v.name.eq_ignore_ascii_case(n))
                .cloned()
        })
    };
    // reg.exe lists an unset default value as "(value not set)" rather than
    // failing; any other missing value is exit 1.
    let unset_default = value.is_some_and(is_default);
    if let Some(n) = value {
        if !recursive && !unset_default && selected(&keys[0]).is_none() {
            return missing(&format!("no value {n:?} in {}", full(&t.root, &keys[0].path)), json_out);
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
            let only = selected(&keys[0]);
            let mut j = key_json(&t.root, &keys[0], only.as_ref());
            if value.is_some() && only.is_none() {
                j["values"] = json!([]); // the unset default value
            }
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
            if recursive && value.is_some() && vals.is_empty() && !unset_default {
                continue;
            }
            outln!(o);
            outln!(o, "{}", full(&t.root, &k.path));
            for v in &vals {
                value_text(&mut o, v);
            }
            if unset_default && vals.is_empty() {
                outln!(o, "    (Default)    REG_SZ    (value not set)");
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
    if let Err(e) = t.hive.key(&t.path) {
        let e = anyhow::Error::from(e);
        if is_missing(&e) {
            return missing(&format!("no key {}", full(&t.root, &t.path)), false);
        }
        return Err(e);
    }
    let keys = t.hive.walk(&t.path)?;
    let doc = regfile::document(&t.root, &keys);
    let bytes = if utf8 {
        doc.into_bytes()
    } else {
        regfile::utf16_bytes(&doc)
    };
    match out {
        // UTF-16 on a terminal is unreadable noise: only when asked for with `-o -`.
        None if !utf8 && std::io::IsTerminal::is_terminal(&std::io::stdout()) => anyhow::bail!("reg export: refusing to write UTF-16 .reg data to a terminal: give -o FILE, --utf8, or -o - to write it anyway"),
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

#[cfg(test)]
mod tests {
    use super::*;

    fn rw(line: &[&str]) -> Vec<String> {
        let args = std::iter::once("rdprescue").chain(line.iter().copied()).map(OsString::from).collect();
        reg_exe_args(args).into_iter().skip(1).map(|a| a.into_string().unwrap()).collect()
    }

    #[test]
    fn reg_exe_spellings() {
        assert_eq!(rw(&["reg", "QUERY", "i.vhdx", "K", "/V", "fDeny", "/S"]), ["reg", "query", "i.vhdx", "K", "--value=fDeny", "--recursive"]);
        assert_eq!(rw(&["REG", "query", "i", "K", "/ve"]), ["reg", "query", "i", "K", "--value="]);
        assert_eq!(
            rw(&["reg", "Add", "i", "K", "/v", "X", "/t", "REG_DWORD", "/d", "0x1", "/f", "--out", "o"]),
            ["reg", "set", "i", "K", "--value=X", "--type=REG_DWORD", "--data=0x1", "--out=o"]
        );
        assert_eq!(rw(&["reg", "add", "i", "K", "/ve", "/d", "-1", "/s", ",", "-o", "/tmp/o"]), ["reg", "set", "i", "K", "--value=", "--data=-1", "--separator=,", "-o=/tmp/o"]);
        assert_eq!(rw(&["reg", "delete", "i", "K", "/va", "/F", "-o", "o"]), ["reg", "delete", "i", "K", "--all-values", "-o=o"]);
        assert_eq!(rw(&["reg", "delete", "i", "K", "-v", "/f", "-f"]), ["reg", "delete", "i", "K", "-v=/f"]);
        assert_eq!(rw(&["reg", "export", "i", "K", "f.reg", "/y"]), ["reg", "export", "i", "K", "f.reg"]);
        // Image paths and values that merely start with a slash stay.
        assert_eq!(rw(&["reg", "query", "/tmp/i.vhdx", "K", "/reg:64"]), ["reg", "query", "/tmp/i.vhdx", "K"]);
        // Unknown switches reach clap, which refuses them.
        assert_eq!(rw(&["reg", "query", "i", "K", "/f", "x"]), ["reg", "query", "i", "K", "/f", "x"]);
        assert_eq!(rw(&["reg", "query", "i", "K", "--", "/s"]), ["reg", "query", "i", "K", "--", "/s"]);
        // Other commands are left alone.
        assert_eq!(rw(&["inspect", "/v"]), ["inspect", "/v"]);
        assert_eq!(rw(&["reg", "frob", "/v"]), ["reg", "frob", "/v"]);
        assert_eq!(rw(&["reg"]), ["reg"]);
    }

    #[test]
    fn numbers_list_like_reg_exe() {
        let v = |kind: u32, raw: &[u8]| reg_exe_data(&Value { name: "x".into(), kind, raw: raw.to_vec() });
        assert_eq!(v(4, &[1, 0, 0, 0]), "0x1");
        assert_eq!(v(4, &[0x3d, 0x0d, 0, 0]), "0xd3d");
        assert_eq!(v(11, &[0, 0, 0, 0, 1, 0, 0, 0]), "0x100000000");
        assert_eq!(v(4, &[1, 2]), "0102", "a short DWORD shows its bytes");
        assert!(is_default("") && is_default("(default)") && !is_default("x"));
    }
}
