//! Audit baselines: what a team expects of its images, as a TOML file.
//!
//! ```toml
//! fail_on = "medium"                  # findings below this severity do not fail an image
//! ignore = ["static-ip"]              # checks whose findings are dropped
//!
//! [severity]                          # severity overrides, by check id
//! "fw-rdp-rule-inactive" = "low"
//!
//! [[expect]]                          # an expected effective value of a check's setting(s)
//! check = "rdp-port"
//! value = 3389
//!
//! [[expect]]                          # or of any registry value
//! path = 'HKLM\SYSTEM\CurrentControlSet\Control\Terminal Server\WinStations\RDP-Tcp'
//! name = "MinEncryptionLevel"
//! range = [2, 3]                      # or value = ..., allowed = [...], absent = true
//! severity = "high"                   # of the finding when it does not hold (default medium)
//! ```
//!
//! A baseline is validated as a whole when parsed (unknown keys, unknown check
//! ids, wrong types, contradictory rules are errors naming the entry), then
//! applied to an [`Inspection`]: ignored checks are dropped, severities
//! overridden, and each expectation that does not hold becomes a finding
//! with check id `baseline:NAME`.

use super::catalog;
use super::eval::{Inspection, NotEvaluated};
use super::{Ctx, Finding, Hives, Severity};
use crate::hive::edit::{display_name, show_json};
use crate::hive::source::{parse_key, HiveKind};
use serde::Deserialize;
use serde_json::Value as J;
use std::collections::BTreeMap;

/// A baseline that did not parse or validate.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct BaselineError(String);

fn err<T>(msg: impl Into<String>) -> Result<T, BaselineError> {
    Err(BaselineError(msg.into()))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawBaseline {
    fail_on: Option<String>,
    #[serde(default)]
    ignore: Vec<String>,
    #[serde(default)]
    severity: BTreeMap<String, String>,
    #[serde(default)]
    expect: Vec<RawExpect>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawExpect {
    /// A name for the rule; the finding's id is `baseline:<id>`.
    id: Option<String>,
    check: Option<String>,
    path: Option<String>,
    name: Option<String>,
    value: Option<toml::Value>,
    allowed: Option<Vec<toml::Value>>,
    range: Option<Vec<toml::Value>>,
    absent: Option<bool>,
    severity: Option<String>,
    message: Option<String>,
}

/// What an expectation compares against.
#[derive(Debug, Clone, PartialEq)]
pub enum Target {
    /// The settings rows of a catalog check (optionally only the value `name`).
    Check { id: &'static str, name: Option<String> },
    /// Any value of SYSTEM, SOFTWARE or BCD (`CurrentControlSet` resolved per image).
    Path { hive: HiveKind, key: Vec<String>, name: String, shown: String },
}

/// A registry datum an expectation allows: a number, a string
/// (case-insensitive), or a MULTI_SZ list.
#[derive(Debug, Clone, PartialEq)]
pub enum Datum {
    Num(i64),
    Str(String),
    List(Vec<String>),
}

#[derive(Debug, Clone, PartialEq)]
pub enum Want {
    OneOf(Vec<Datum>),
    Range(i64, i64),
    Absent,
}

#[derive(Debug, Clone)]
pub struct Expect {
    pub label: String,
    pub target: Target,
    pub want: Want,
    pub severity: Severity,
    pub message: Option<String>,
}

#[derive(Debug, Clone)]
pub struct Baseline {
    /// Findings at this severity or worse fail an image.
    pub fail_on: Severity,
    pub ignore: Vec<&'static str>,
    pub severity: Vec<(&'static str, Severity)>,
    pub expect: Vec<Expect>,
}

impl Default for Baseline {
    fn default() -> Self {
        Baseline { fail_on: Severity::Low, ignore: Vec::new(), severity: Vec::new(), expect: Vec::new() }
    }
}

fn severity(s: &str, what: &str) -> Result<Severity, BaselineError> {
    Ok(match s.to_ascii_lowercase().as_str() {
        "critical" => Severity::Critical,
        "high" => Severity::High,
        "medium" => Severity::Medium,
        "low" => Severity::Low,
        "info" => Severity::Info,
        _ => return err(format!("{what}: unknown severity \"{s}\" (critical, high, medium, low, info)")),
    })
}

/// A catalog check id, or an error with the closest known ids.
fn check_id(id: &str, what: &str) -> Result<&'static str, BaselineError> {
    let ids = catalog::ids();
    if let Some(k) = ids.iter().find(|k| k.eq_ignore_ascii_case(id)) {
        return Ok(k);
    }
    let lower = id.to_ascii_lowercase();
    let mut near: Vec<(usize, &str)> = ids.iter().map(|k| (distance(k, &lower), *k)).filter(|(d, k)| *d <= 3 || k.contains(&lower)).collect();
    near.sort();
    let near: Vec<&str> = near.into_iter().take(3).map(|(_, k)| k).collect();
    let hint = if near.is_empty() { String::new() } else { format!(" (did you mean {}?)", near.join(", ")) };
    err(format!("{what}: unknown check id \"{id}\"{hint}"))
}

/// Edit distance (Levenshtein), for "did you mean".
fn distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut row: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut prev = row[0];
        row[0] = i + 1;
        for (j, cb) in b.iter().enumerate() {
            let cur = row[j + 1];
            row[j + 1] = (prev + usize::from(ca != *cb)).min(row[j] + 1).min(cur + 1);
            prev = cur;
        }
    }
    row[b.len()]
}

fn datum(v: &toml::Value, what: &str) -> Result<Datum, BaselineError> {
    match v {
        toml::Value::Integer(i) => Ok(Datum::Num(*i)),
        toml::Value::String(s) => Ok(Datum::Str(s.clone())),
        toml::Value::Array(a) => {
            let mut out = Vec::new();
            for x in a {
                match x {
                    toml::Value::String(s) => out.push(s.clone()),
                    other => return err(format!("{what}: a list value (REG_MULTI_SZ) holds strings only, not {}", other.type_str())),
                }
            }
            Ok(Datum::List(out))
        }
        other => err(format!("{what}: expected an integer, a string or a list of strings, not {}", other.type_str())),
    }
}

impl Baseline {
    /// Parse and validate a baseline. Errors name the entry at fault.
    pub fn parse(text: &str) -> Result<Baseline, BaselineError> {
        let raw: RawBaseline = toml::from_str(text).map_err(|e| BaselineError(e.to_string().trim().replace('\n', " ").replace("  ", " ")))?;
        let mut b = Baseline::default();
        if let Some(f) = &raw.fail_on {
            b.fail_on = severity(f, "fail_on")?;
        }
        for id in &raw.ignore {
            b.ignore.push(check_id(id, "ignore")?);
        }
        for (id, sev) in &raw.severity {
            let what = format!("severity.\"{id}\"");
            b.severity.push((check_id(id, &what)?, severity(sev, &what)?));
        }
        for (i, r) in raw.expect.iter().enumerate() {
            b.expect.push(expectation(i, r)?);
        }
        Ok(b)
    }

    /// Drop ignored findings, override severities, evaluate expectations.
    /// Returns how many findings were ignored.
    pub fn apply(&self, hives: &dyn Hives, ins: &mut Inspection) -> usize {
        let before = ins.findings.len();
        ins.findings.retain(|f| !self.ignore.iter().any(|i| f.check == *i));
        ins.notes.retain(|f| !self.ignore.iter().any(|i| f.check == *i));
        let ignored = before - ins.findings.len();
        let mut all: Vec<Finding> = std::mem::take(&mut ins.findings).into_iter().chain(std::mem::take(&mut ins.notes)).collect();
        for f in &mut all {
            if let Some((_, s)) = self.severity.iter().find(|(id, _)| f.check == *id) {
                f.severity = *s;
            }
        }
        let ctx = Ctx::new(hives);
        for e in &self.expect {
            match e.check(&ctx, ins) {
                Ok(None) => {}
                Ok(Some(f)) => all.push(f),
                Err(reason) => ins.not_evaluated.push(NotEvaluated { check: "baseline", reason: format!("{}: {reason}", e.label) }),
            }
        }
        let (notes, mut findings): (Vec<_>, Vec<_>) = all.into_iter().partition(|f| f.severity == Severity::Info);
        findings.sort_by_key(|f| f.severity);
        ins.findings = findings;
        ins.notes = notes;
        ignored
    }

    /// Whether an image with these findings fails the baseline.
    pub fn fails(&self, findings: &[Finding]) -> bool {
        findings.iter().any(|f| f.severity <= self.fail_on)
    }
}

fn expectation(i: usize, r: &RawExpect) -> Result<Expect, BaselineError> {
    let what = format!("expect[{i}]");
    let target = match (&r.check, &r.path) {
        (Some(c), None) => Target::Check { id: check_id(c, &what)?, name: r.name.clone() },
        (None, Some(p)) => {
            let Some(name) = r.name.clone() else { return err(format!("{what}: a `path` rule needs `name` (the value; \"\" for the default value)")) };
            let k = parse_key(p);
            let hive = match k.hive {
                Some(h @ (HiveKind::System | HiveKind::Software | HiveKind::Bcd)) => h,
                Some(h) => return err(format!("{what}: the audit reads SYSTEM, SOFTWARE and BCD, not {}", h.name())),
                None => return err(format!("{what}: path \"{p}\" must start with HKLM\\SYSTEM, HKLM\\SOFTWARE or BCD")),
            };
            Target::Path { hive, key: k.rest, name, shown: p.clone() }
        }
        (Some(_), Some(_)) => return err(format!("{what}: give `check` or `path`, not both")),
        (None, None) => return err(format!("{what}: needs `check` (a check id) or `path` + `name` (a registry value)")),
    };
    let given = [r.value.is_some(), r.allowed.is_some(), r.range.is_some(), r.absent.is_some()].iter().filter(|b| **b).count();
    if given != 1 {
        return err(format!("{what}: give exactly one of `value`, `allowed`, `range`, `absent` ({given} given)"));
    }
    let want = if let Some(v) = &r.value {
        Want::OneOf(vec![datum(v, &format!("{what}.value"))?])
    } else if let Some(a) = &r.allowed {
        if a.is_empty() {
            return err(format!("{what}.allowed: empty list"));
        }
        Want::OneOf(a.iter().enumerate().map(|(j, v)| datum(v, &format!("{what}.allowed[{j}]"))).collect::<Result<_, _>>()?)
    } else if let Some(rg) = &r.range {
        match rg.as_slice() {
            [toml::Value::Integer(lo), toml::Value::Integer(hi)] if lo <= hi => Want::Range(*lo, *hi),
            [toml::Value::Integer(lo), toml::Value::Integer(hi)] => return err(format!("{what}.range: low {lo} is above high {hi}")),
            _ => return err(format!("{what}.range: expected [low, high] with two integers")),
        }
    } else if r.absent == Some(true) {
        Want::Absent
    } else {
        return err(format!("{what}: `absent = false` says nothing; use `value`, `allowed` or `range`"));
    };
    let label = match (&r.id, &target) {
        (Some(id), _) => id.clone(),
        (None, Target::Check { id, name: Some(n) }) => format!("{id}/{n}"),
        (None, Target::Check { id, name: None }) => id.to_string(),
        (None, Target::Path { name, .. }) => if name.is_empty() { "(Default)".into() } else { name.clone() },
    };
    Ok(Expect {
        label,
        target,
        want,
        severity: r.severity.as_deref().map(|s| severity(s, &format!("{what}.severity"))).transpose()?.unwrap_or(Severity::Medium),
        message: r.message.clone(),
    })
}

impl Datum {
    fn matches(&self, v: &J) -> bool {
        match (self, v) {
            (Datum::Num(n), J::Number(x)) => x.as_i64() == Some(*n) || (x.as_u64().is_some() && u64::try_from(*n).ok() == x.as_u64()),
            (Datum::Str(s), J::String(x)) => s.eq_ignore_ascii_case(x) || s.to_lowercase() == x.to_lowercase(),
            (Datum::List(l), J::Array(a)) => l.len() == a.len() && l.iter().zip(a).all(|(s, x)| x.as_str().is_some_and(|x| x.to_lowercase() == s.to_lowercase())),
            _ => false,
        }
    }
    fn show(&self) -> String {
        match self {
            Datum::Num(n) => n.to_string(),
            Datum::Str(s) => format!("\"{s}\""),
            Datum::List(l) => format!("[{}]", l.iter().map(|s| format!("\"{s}\"")).collect::<Vec<_>>().join(", ")),
        }
    }
}

impl Want {
    fn holds(&self, v: &J) -> bool {
        match self {
            Want::OneOf(d) => d.iter().any(|d| d.matches(v)),
            Want::Range(lo, hi) => v.as_i64().is_some_and(|x| (*lo..=*hi).contains(&x)),
            Want::Absent => v.is_null(),
        }
    }
    fn show(&self) -> String {
        match self {
            Want::OneOf(d) if d.len() == 1 => d[0].show(),
            Want::OneOf(d) => format!("one of {}", d.iter().map(Datum::show).collect::<Vec<_>>().join(", ")),
            Want::Range(lo, hi) => format!("a value in {lo}..={hi}"),
            Want::Absent => "absent".into(),
        }
    }
}

impl Expect {
    /// Ok(None): holds; Ok(Some): a finding; Err: cannot be judged on this image.
    fn check(&self, ctx: &Ctx, ins: &Inspection) -> Result<Option<Finding>, String> {
        // (where, value) pairs to judge.
        let mut seen: Vec<(String, J)> = Vec::new();
        match &self.target {
            Target::Check { id, name } => {
                for s in ins.settings.iter().filter(|s| s.id == *id && name.as_ref().is_none_or(|n| s.name.eq_ignore_ascii_case(n))) {
                    if s.source == "not-evaluated" {
                        return Err(format!("{}\\{} not evaluated (hive missing)", s.path, s.name));
                    }
                    let v = if self.want == Want::Absent && s.local.is_null() && s.policy.is_null() { J::Null } else { s.effective.clone() };
                    seen.push((format!("{}\\{}", s.path, s.name), v));
                }
                if seen.is_empty() {
                    return Err(format!("check {id} reported no setting{} on this image", name.as_ref().map(|n| format!(" named {n}")).unwrap_or_default()));
                }
            }
            Target::Path { hive, key, name, shown } => {
                if !ctx.has(*hive) {
                    return Err(format!("{shown}: no {} hive", hive.name()));
                }
                let key: Vec<String> = key.iter().enumerate().map(|(i, c)| if i == 0 && c.eq_ignore_ascii_case("CurrentControlSet") && *hive == HiveKind::System { ctx.ccs.clone() } else { c.clone() }).collect();
                let path = key.join("\\");
                let v = ctx.value(*hive, &path, name).map_or(J::Null, |v| v.json_data());
                seen.push((format!("{}\\{}\\{}", hive.short_root(), path, display_name(name)), v));
            }
        }
        let bad: Vec<String> = seen.iter().filter(|(_, v)| !self.want.holds(v)).map(|(w, v)| format!("{w} is {}", show_json(v))).collect();
        if bad.is_empty() {
            return Ok(None);
        }
        let msg = format!("{}; baseline expects {}{}", bad.join("; "), self.want.show(), self.message.as_ref().map(|m| format!(" ({m})")).unwrap_or_default());
        Ok(Some(Finding {
            check: format!("baseline:{}", self.label).into(),
            severity: self.severity,
            title: "Baseline expectation",
            message: msg,
            fix: format!("manual: make it {} (baseline)", self.want.show()),
            actions: Vec::new(),
            reapplied_by: Vec::new(),
            confirmed_by: None,
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bad(t: &str) -> String {
        Baseline::parse(t).unwrap_err().to_string()
    }

    #[test]
    fn parses_a_full_baseline() {
        let b = Baseline::parse(
            r#"
fail_on = "medium"
ignore = ["static-ip"]
[severity]
"fw-rdp-rule-inactive" = "low"
[[expect]]
check = "rdp-port"
value = 3389
[[expect]]
id = "enc"
path = 'HKLM\SYSTEM\CurrentControlSet\Control\Terminal Server\WinStations\RDP-Tcp'
name = "MinEncryptionLevel"
range = [2, 3]
severity = "high"
[[expect]]
check = "security-layer"
allowed = [1, 2]
"#,
        )
        .unwrap();
        assert_eq!(b.fail_on, Severity::Medium);
        assert_eq!(b.ignore, ["static-ip"]);
        assert_eq!(b.severity, [("fw-rdp-rule-inactive", Severity::Low)]);
        assert_eq!(b.expect.len(), 3);
        assert_eq!(b.expect[1].label, "enc");
        assert_eq!(b.expect[1].want, Want::Range(2, 3));
        assert!(matches!(&b.expect[1].target, Target::Path { hive: HiveKind::System, key, .. } if key[0] == "CurrentControlSet"));
    }

    #[test]
    fn errors_name_the_entry() {
        assert!(bad("ignore = [\"rdp-prot\"]").contains("unknown check id \"rdp-prot\" (did you mean rdp-port"));
        assert!(bad("[[expect]]\ncheck = \"rdp-port\"\nvalue = 1.5").contains("expect[0].value: expected an integer"));
        assert!(bad("[[expect]]\ncheck = \"rdp-port\"\nvalue = 1\nrange = [1, 2]").contains("exactly one of"));
        assert!(bad("[[expect]]\ncheck = \"rdp-port\"\nrange = [5, 2]").contains("low 5 is above high 2"));
        assert!(bad("[[expect]]\npath = 'HKLM\\SAM\\x'\nname = \"a\"\nvalue = 1").contains("not SAM"));
        assert!(bad("[[expect]]\npath = 'HKCU\\x'\nname = \"a\"\nvalue = 1").contains("must start with HKLM"));
        assert!(bad("[[expect]]\nvalue = 1").contains("needs `check`"));
        assert!(bad("[severity]\n\"rdp-port\" = \"severe\"").contains("unknown severity \"severe\""));
        assert!(bad("colour = 1").contains("unknown field `colour`"));
        assert!(bad("fail_on = 3").contains("invalid type"));
    }

    #[test]
    fn data_compare_like_the_registry() {
        assert!(Datum::Num(3389).matches(&J::from(3389u32)));
        assert!(!Datum::Num(3389).matches(&J::from("3389")));
        assert!(Datum::Str("TermService".into()).matches(&J::from("termservice")));
        assert!(Datum::List(vec!["a".into(), "B".into()]).matches(&serde_json::json!(["A", "b"])));
        assert!(Want::Range(2, 3).holds(&J::from(3u32)) && !Want::Range(2, 3).holds(&J::from(4u32)));
        assert!(Want::Absent.holds(&J::Null) && !Want::Absent.holds(&J::from(0u32)));
    }
}
