//! Evaluation of the catalog against a machine's hives.

use super::catalog::CATALOG;
use super::check::{Absent, Check, Fix, Lit, Out, Pred, Remedy, Ty};
use super::{Ctx, Finding, Hives, Setting, Severity};
use crate::hive::edit::{show_json, RegData};
use crate::hive::source::{ControlSets, HiveKind};
use crate::hive::tree::Value;
use serde::Serialize;
use serde_json::Value as J;

/// OS facts read from SOFTWARE (and the computer name from SYSTEM).
#[derive(Debug, Clone, Default, Serialize)]
pub struct WindowsInfo {
    pub product_name: Option<String>,
    pub edition: Option<String>,
    pub installation_type: Option<String>,
    pub display_version: Option<String>,
    /// e.g. "17763.5329" (CurrentBuild + UBR).
    pub build: Option<String>,
    pub computer_name: Option<String>,
    pub domain: Option<String>,
    pub system_root: Option<String>,
    pub control_sets: Option<ControlSets>,
}

/// A check that could not be evaluated (its hive is missing).
#[derive(Debug, Clone, Serialize)]
pub struct NotEvaluated {
    pub check: &'static str,
    pub reason: String,
}

/// Everything `inspect` found.
#[derive(Debug, Clone, Serialize)]
pub struct Inspection {
    pub windows: WindowsInfo,
    pub settings: Vec<Setting>,
    /// Severity critical..low, most severe first.
    pub findings: Vec<Finding>,
    /// Informational entries (severity info): not faults.
    pub notes: Vec<Finding>,
    pub not_evaluated: Vec<NotEvaluated>,
}

/// Run every check of the catalog.
pub fn inspect(hives: &dyn Hives) -> Inspection {
    let ctx = Ctx::new(hives);
    let mut out = Out::default();
    let mut not_evaluated: Vec<NotEvaluated> = Vec::new();
    for c in CATALOG {
        if !ctx.has(c.hive) {
            if !not_evaluated.iter().any(|n| n.check == c.id) {
                not_evaluated.push(NotEvaluated { check: c.id, reason: format!("no {} hive", c.hive.name()) });
            }
            continue;
        }
        let adapted;
        let c = match c.adapt {
            Some(adapt) => match adapt(&ctx, c) {
                Some(a) => {
                    adapted = a;
                    &adapted
                }
                None => continue,
            },
            None => c,
        };
        match c.run {
            Some(run) => run(&ctx, c, &mut out),
            None => value_check(&ctx, c, &mut out),
        }
    }
    let (mut notes, mut findings): (Vec<_>, Vec<_>) = out.findings.into_iter().partition(|f| f.severity == Severity::Info);
    // Stable: catalog order within a severity.
    findings.sort_by_key(|f| f.severity);
    notes.dedup_by(|a, b| a.check == b.check && a.message == b.message);
    findings.dedup_by(|a, b| a.check == b.check && a.message == b.message);
    Inspection { windows: windows_info(&ctx), settings: out.settings, findings, notes, not_evaluated }
}

fn windows_info(ctx: &Ctx) -> WindowsInfo {
    let cv = r"Microsoft\Windows NT\CurrentVersion";
    let s = |n: &str| ctx.string(HiveKind::Software, cv, n).filter(|s| !s.is_empty());
    // XP/2003 keep "1.511.1 () (Obsolete data - do not use)" in CurrentBuild: the number is in CurrentBuildNumber.
    let numeric = |b: &String| b.trim().chars().all(|c| c.is_ascii_digit());
    let build = s("CurrentBuild").filter(numeric).or_else(|| s("CurrentBuildNumber")).or_else(|| s("CurrentBuild")).map(|b| match ctx.dword(HiveKind::Software, cv, "UBR") {
        Some(ubr) => format!("{b}.{ubr}"),
        None => b,
    });
    let sys = |k: &str, n: &str| ctx.string(HiveKind::System, k, n).filter(|s| !s.is_empty());
    WindowsInfo {
        product_name: s("ProductName"),
        edition: s("EditionID"),
        installation_type: s("InstallationType"),
        display_version: s("DisplayVersion").or_else(|| s("ReleaseId")).or_else(|| s("CSDVersion")),
        build,
        computer_name: sys(r"{CCS}\Control\ComputerName\ComputerName", "ComputerName"),
        domain: sys(r"{CCS}\Services\Tcpip\Parameters", "Domain"),
        system_root: s("SystemRoot"),
        control_sets: ctx.sets.clone(),
    }
}

/// JSON for a literal.
pub(crate) fn lit_json(l: Lit) -> J {
    match l {
        Lit::D(d) => J::from(d),
        Lit::S(s) => J::from(s),
    }
}

/// The data a fix writes for a literal of a row of type `ty`.
pub(crate) fn lit_data(l: Lit, ty: Ty) -> RegData {
    match (l, ty) {
        (Lit::D(d), _) => RegData::Dword(d),
        (Lit::S(s), Ty::ExpandSz) => RegData::ExpandSz(s.into()),
        (Lit::S(s), Ty::MultiSz) => RegData::MultiSz(vec![s.into()]),
        (Lit::S(s), _) => RegData::Sz(s.into()),
    }
}

/// Whether `v` satisfies `p`; Err says why it cannot be judged (wrong type).
pub(crate) fn holds(p: Pred, v: &Value, ty: Ty) -> Result<bool, String> {
    let wrong = || format!("has type {}, expected {}", v.type_name(), ty.name());
    match p {
        Pred::Eq(_) | Pred::In(_) | Pred::Range(..) | Pred::Ne(_) | Pred::Ge(_) => match v.dword() {
            Some(d) => Ok(holds_dword(p, d)),
            None => Err(wrong()),
        },
        Pred::StrEq(_) | Pred::StrIn(_) | Pred::StrEnds(_) | Pred::NotEmpty => {
            let s = match v.kind {
                1 | 2 => v.string(),
                7 => v.multi_string().join(","),
                _ => return Err(wrong()),
            };
            Ok(holds_str(p, &s))
        }
    }
}

fn holds_dword(p: Pred, d: u32) -> bool {
    match p {
        Pred::Eq(x) => d == x,
        Pred::In(xs) => xs.contains(&d),
        Pred::Range(a, b) => (a..=b).contains(&d),
        Pred::Ne(x) => d != x,
        Pred::Ge(x) => d >= x,
        _ => false,
    }
}

fn holds_str(p: Pred, s: &str) -> bool {
    match p {
        Pred::StrEq(x) => s.trim().eq_ignore_ascii_case(x),
        Pred::StrIn(xs) => xs.iter().any(|x| s.trim().eq_ignore_ascii_case(x)),
        Pred::StrEnds(x) => s.trim().to_lowercase().ends_with(&x.to_lowercase()),
        Pred::NotEmpty => s.chars().any(|c| !c.is_whitespace() && c != ','),
        _ => false,
    }
}

fn holds_lit(p: Pred, l: Lit) -> bool {
    match l {
        Lit::D(d) => holds_dword(p, d),
        Lit::S(s) => holds_str(p, s),
    }
}

fn shown(v: &Value) -> String {
    show_json(&v.json_data())
}

/// The local fix of a value rule.
fn local_fix(ctx: &Ctx, c: &Check) -> Remedy {
    match c.fix {
        Fix::Set(l) => {
            if ctx.key(c.hive, c.key).is_none() {
                Remedy::Manual(format!("the key {} is missing; rdprescue does not fabricate it (restore it from a healthy VM of the same build)", ctx.full(c.hive, c.key)))
            } else {
                Remedy::Actions(ctx.set_actions(c.hive, c.key, c.value, lit_data(l, c.ty)))
            }
        }
        Fix::Delete => Remedy::Actions(ctx.delete_value_actions(c.hive, c.key, c.value)),
        Fix::Manual(t) => Remedy::Manual(t.into()),
    }
}

fn value_check(ctx: &Ctx, c: &Check, out: &mut Out) {
    let local = ctx.value(c.hive, c.key, c.value);
    let policy = c.policy.filter(|_| ctx.has(HiveKind::Software)).and_then(|(k, n)| ctx.value(HiveKind::Software, k, n));
    let (effective, source) = match (&policy, &local, c.absent) {
        (Some(p), _, _) => (p.json_data(), "policy"),
        (None, Some(l), _) => (l.json_data(), "local"),
        (None, None, Absent::Default(d)) => (lit_json(d), "default"),
        (None, None, Absent::Fine(_)) => (J::Null, "default"),
        (None, None, Absent::Broken(_)) => (J::Null, "missing"),
    };
    out.setting(Setting {
        id: c.id,
        path: ctx.full(c.hive, c.key),
        name: c.value.into(),
        local: local.as_ref().map_or(J::Null, Value::json_data),
        policy_path: c.policy.map(|(k, _)| ctx.full(HiveKind::Software, k)),
        policy: policy.as_ref().map_or(J::Null, Value::json_data),
        effective,
        source,
    });
    // Local verdict: Ok(true) healthy, Ok(false) broken, Err(reason) broken for that reason.
    let local_verdict = match (&local, c.absent) {
        (Some(v), _) => holds(c.healthy, v, c.ty).map_err(|e| format!("local {} {e}", c.value)),
        (None, Absent::Default(d)) => Ok(holds_lit(c.healthy, d)),
        (None, Absent::Fine(_)) => Ok(true),
        (None, Absent::Broken(why)) => Err(format!("{} is absent: {why}", c.value)),
    };
    if let (Some(p), Some((pk, pn))) = (&policy, c.policy) {
        let verdict = holds(c.healthy, p, c.ty);
        if verdict != Ok(true) {
            let detail = match verdict {
                Err(e) => format!("policy {pn} {e}"),
                _ => format!("Group Policy sets {pn} = {}", shown(p)),
            };
            let mut actions = ctx.delete_value_actions(HiveKind::Software, pk, pn);
            if local_verdict != Ok(true) {
                if let Remedy::Actions(a) = local_fix(ctx, c) {
                    actions.extend(a);
                }
            }
            let msg = format!("{} ({detail}; a domain GPO writes it again at refresh: fix the GPO too)", c.explain);
            out.finding(c, c.policy_id.unwrap_or(c.id), c.severity, msg, Remedy::Actions(actions));
        }
        return;
    }
    match local_verdict {
        Ok(true) => {}
        Ok(false) => {
            let detail = match &local {
                Some(v) => format!("{} = {}", c.value, shown(v)),
                None => match c.absent {
                    Absent::Default(d) => format!("{} absent, default {}", c.value, show_json(&lit_json(d))),
                    _ => format!("{} absent", c.value),
                },
            };
            out.finding(c, c.id, c.severity, format!("{} ({detail} at {})", c.explain, ctx.full(c.hive, c.key)), local_fix(ctx, c));
        }
        Err(why) => out.finding(c, c.id, c.severity, format!("{} ({why} at {})", c.explain, ctx.full(c.hive, c.key)), local_fix(ctx, c)),
    }
}
