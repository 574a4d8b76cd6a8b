//! `rdprescue checks [--profiles | --symptoms] [--json]`: what rdprescue
//! knows, without an image: every check (id, title, severity, hive and
//! registry location, fix), the fix profiles and the client messages
//! `inspect --symptom` recognises. Also `completions SHELL` and `man`, both
//! generated from the clap definition so they never drift from the parser.

use super::outln;
use anyhow::Context;
use rdprescue::rdp::catalog::{self, Absent, Check, Fix, Lit, Pred, CATALOG};
use rdprescue::rdp::{profiles, symptoms};
use serde_json::{json, Value as J};
use std::path::Path;

fn lit(l: Lit) -> J {
    match l {
        Lit::D(d) => J::from(d),
        Lit::S(s) => J::from(s),
    }
}

fn lit_text(l: Lit) -> String {
    match l {
        Lit::D(d) if d > 9 => format!("{d} ({d:#x})"),
        Lit::D(d) => d.to_string(),
        Lit::S(s) => format!("{s:?}"),
    }
}

fn pred_text(p: Pred) -> String {
    let list = |v: &[u32]| v.iter().map(|x| x.to_string()).collect::<Vec<_>>().join(" or ");
    match p {
        Pred::Eq(v) => format!("= {v}"),
        Pred::In(v) => format!("= {}", list(v)),
        Pred::Range(a, b) => format!("in {a}..={b}"),
        Pred::Ne(v) => format!("not {v}"),
        Pred::Ge(v) => format!(">= {v}"),
        Pred::StrEq(s) => format!("= {s:?}"),
        Pred::StrIn(v) => format!("= {}", v.iter().map(|s| format!("{s:?}")).collect::<Vec<_>>().join(" or ")),
        Pred::StrEnds(s) => format!("ends with {s:?}"),
        Pred::NotEmpty => "not empty".into(),
    }
}

fn absent_text(a: Absent) -> String {
    match a {
        Absent::Default(l) => format!("absent means {}", lit_text(l)),
        Absent::Broken(why) => format!("absent is broken: {why}"),
        Absent::Fine(what) => format!("absent is fine: {what}"),
    }
}

/// Where a value row reads: `HKLM\SYSTEM\{CCS}\...` (`{CCS}` is the current control set).
fn location(c: &Check) -> String {
    format!("{}\\{}\\{}", c.hive.short_root(), c.key, c.value)
}

fn policy_location(key: &str, value: &str) -> String {
    format!("HKLM\\SOFTWARE\\{key}\\{value}")
}

/// The fix of a value row: what it writes.
fn fix_json(c: &Check) -> J {
    match c.fix {
        Fix::Set(l) => json!({"action": "set", "hive": c.hive.name(), "key": c.key, "value": c.value, "type": c.ty.name(), "data": lit(l)}),
        Fix::Delete => json!({"action": "delete-value", "hive": c.hive.name(), "key": c.key, "value": c.value}),
        Fix::Manual(t) => json!({"action": "manual", "text": t}),
    }
}

fn fix_text(c: &Check) -> String {
    match c.fix {
        Fix::Set(l) => format!("set {} = {} ({})", location(c), lit_text(l), c.ty.name()),
        Fix::Delete => format!("delete {}", location(c)),
        Fix::Manual(t) => t.to_string(),
    }
}

const CODE_FIX: &str = "computed from what the check finds on the disk (`rdprescue inspect` shows it per finding)";

/// One entry per check id (rows sharing an id are its several locations);
/// a policy id (the Group Policy copy of a row) is its own entry.
fn check_entries() -> Vec<J> {
    catalog::ids()
        .into_iter()
        .map(|id| {
            let rows: Vec<&Check> = CATALOG.iter().filter(|c| c.id == id).collect();
            let policy_rows: Vec<&Check> = CATALOG.iter().filter(|c| c.policy_id == Some(id)).collect();
            let first = rows.first().or(policy_rows.first()).copied().expect("every id comes from a row");
            let mut locations = Vec::new();
            let mut fixes = Vec::new();
            if rows.is_empty() {
                // The Group Policy copy: its fix deletes the policy value (and sets the local one when that is broken too).
                for c in &policy_rows {
                    if let Some((k, v)) = c.policy {
                        locations.push(json!({"hive": "SOFTWARE", "key": k, "value": v, "type": c.ty.name(), "registry": policy_location(k, v), "healthy": pred_text(c.healthy), "policy_of": c.id}));
                        fixes.push(json!({"action": "delete-value", "hive": "SOFTWARE", "key": k, "value": v, "text": format!("delete {} (and fix {} if it is broken too)", policy_location(k, v), c.id)}));
                    }
                }
            }
            for c in &rows {
                if c.is_code() {
                    continue;
                }
                let policy = c.policy.map(|(k, v)| json!({"hive": "SOFTWARE", "key": k, "value": v, "registry": policy_location(k, v)}));
                locations.push(json!({"hive": c.hive.name(), "key": c.key, "value": c.value, "type": c.ty.name(), "registry": location(c), "healthy": pred_text(c.healthy), "absent": absent_text(c.absent), "policy": policy}));
                let mut f = fix_json(c);
                f["text"] = J::from(fix_text(c));
                fixes.push(f);
            }
            if rows.iter().any(|c| c.is_code()) {
                fixes.push(json!({"action": "computed", "text": CODE_FIX}));
            }
            json!({
                "id": id,
                "title": first.title,
                "severity": first.severity,
                "area": first.area,
                "hive": first.hive.name(),
                "explain": first.explain,
                "evaluated_by": if rows.iter().any(|c| c.is_code()) { "code" } else { "value" },
                "locations": locations,
                "fix": fixes,
            })
        })
        .collect()
}

fn profile_entries() -> Vec<J> {
    profiles::PROFILES.iter().map(|p| json!({"id": p.name, "description": p.about, "checks": p.checks})).collect()
}

fn symptom_entries() -> Vec<J> {
    symptoms::SYMPTOMS.iter().map(|s| json!({"id": s.id, "description": s.message, "checks": s.checks, "outside": s.outside})).collect()
}

pub fn run(profiles: bool, symptoms: bool, json_out: bool) -> anyhow::Result<i32> {
    let (what, entries) = if profiles {
        ("profiles", profile_entries())
    } else if symptoms {
        ("symptoms", symptom_entries())
    } else {
        ("checks", check_entries())
    };
    let mut o = String::new();
    if json_out {
        o = serde_json::to_string_pretty(&json!({ what: entries }))?;
        o.push('\n');
    } else if what == "checks" {
        for e in &entries {
            let s = |k: &str| e[k].as_str().unwrap_or_default().to_string();
            outln!(o, "{}  [{}]  {}", s("id"), super::fmt::severity(&s("severity")), s("title"));
            for l in e["locations"].as_array().into_iter().flatten() {
                let mut line = format!("    at:  {}", l["registry"].as_str().unwrap_or_default());
                if let Some(p) = l["policy"]["registry"].as_str() {
                    line.push_str(&format!(" (policy: {p})"));
                }
                if let Some(h) = l["healthy"].as_str() {
                    line.push_str(&format!("; healthy {h}"));
                }
                outln!(o, "{line}");
            }
            if e["locations"].as_array().is_none_or(|l| l.is_empty()) {
                outln!(o, "    at:  {} hive, several values or files ({})", s("hive"), s("explain"));
            }
            for f in e["fix"].as_array().into_iter().flatten() {
                outln!(o, "    fix: {}", f["text"].as_str().unwrap_or_default());
            }
        }
        outln!(o);
        outln!(o, "{} checks. `rdprescue fix IMAGE --check ID --out NEW` applies a check's fix; `--json` gives the same as data.", entries.len());
    } else {
        let flag = if profiles { "fix --profile" } else { "inspect --symptom" };
        for e in &entries {
            outln!(o, "{}", e["id"].as_str().unwrap_or_default());
            outln!(o, "    {}", e["description"].as_str().unwrap_or_default());
            let checks: Vec<&str> = e["checks"].as_array().into_iter().flatten().filter_map(|c| c.as_str()).collect();
            outln!(o, "    checks: {}", if checks.is_empty() { "(none: sets its values whatever is found)".to_string() } else { checks.join(", ") });
            for x in e["outside"].as_array().into_iter().flatten() {
                outln!(o, "    outside the disk: {}", x.as_str().unwrap_or_default());
            }
        }
        outln!(o);
        outln!(o, "{} {what}; use one with `rdprescue {flag} ID`.", entries.len());
    }
    super::emit(o.as_bytes())?;
    Ok(0)
}

/// `rdprescue completions SHELL`
pub fn completions(shell: clap_complete::Shell, cmd: &mut clap::Command) -> anyhow::Result<i32> {
    let mut out = Vec::new();
    clap_complete::generate(shell, cmd, "rdprescue", &mut out);
    super::emit(&out)?;
    Ok(0)
}

/// `rdprescue man [-o DIR]`: the page on stdout, or every page into DIR.
pub fn man(cmd: clap::Command, dir: Option<&Path>) -> anyhow::Result<i32> {
    match dir {
        Some(d) => {
            if !d.is_dir() {
                anyhow::bail!("-o {}: not an existing directory", d.display());
            }
            clap_mangen::generate_to(cmd, d).with_context(|| format!("writing man pages into {}", d.display()))?;
        }
        None => {
            let mut out = Vec::new();
            clap_mangen::Man::new(cmd).render(&mut out)?;
            super::emit(&out)?;
        }
    }
    Ok(0)
}
