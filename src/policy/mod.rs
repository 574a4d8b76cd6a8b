//! Group Policy files that put a bad value back.
//!
//! A fix written to the hives lasts only until the next Group Policy
//! refresh if a GPO sets the bad value again. This module finds the policy
//! files of a machine — the local GPO (`Windows\System32\GroupPolicy\Machine`)
//! and the domain GPOs cached under `ProgramData\Microsoft\Group Policy\History\{GUID}\Machine`
//! (and their security templates under `Windows\security\templates\policies\gpt*.dom`)
//! — parses their `Registry.pol` ([`preg`]) and `GptTmpl.inf` ([`inf`]), and
//! says, for every finding, which of them sets the value the fix changes
//! ([`annotate`]). For the local GPO a same-size DWORD entry is rewritten by
//! `fix` (a [`crate::repair::FileEdit`]); a domain GPO can only be fixed on a
//! domain controller.
//!
//! Matching is generic over a finding's [`Edit`]s, not over check ids:
//! a registry edit is matched against `Registry.pol` entries and the
//! template's `[Registry Values]` / `[Service General Setting]`; a SECURITY
//! `Policy\Accounts\<SID>\ActSysAc` edit against `[Privilege Rights]`; a SAM
//! user `F` edit that enables the built-in Administrator or Guest against
//! `[System Access]` `EnableAdminAccount` / `EnableGuestAccount`.

pub mod inf;
pub mod preg;

use crate::fs::FileSystem;
use crate::hive::edit::{Edit, EditOp, RegData};
use crate::hive::lsa::LogonRight;
use crate::hive::tree::Value;
use crate::hive::HiveKind;
use crate::machine::Machine;
use crate::rdp::check::{Fix, Lit, Pred};
use crate::rdp::eval::Inspection;
use crate::rdp::{Finding, Severity, CATALOG};
use crate::repair::FileEdit;
use inf::SecTemplate;
use preg::{Directive, PolFile};
use serde::Serialize;

/// The local GPO's machine `Registry.pol`.
pub const LOCAL_POL: &str = r"Windows\System32\GroupPolicy\Machine\Registry.pol";
/// The local GPO's security template.
pub const LOCAL_INF: &str = r"Windows\System32\GroupPolicy\Machine\Microsoft\Windows NT\SecEdit\GptTmpl.inf";
/// Where Windows caches the applied domain GPOs.
pub const HISTORY_DIR: &str = r"ProgramData\Microsoft\Group Policy\History";
/// Below `HISTORY_DIR\{GUID}`.
const GPO_POL: &str = r"Machine\Registry.pol";
const GPO_INF: &str = r"Machine\Microsoft\Windows NT\SecEdit\GptTmpl.inf";
/// Where the security extension caches the applied domain GPOs' security
/// templates (`gptNNNNN.dom`; the file does not name its GPO).
pub const SECURITY_CACHE_DIR: &str = r"Windows\security\templates\policies";
/// SOFTWARE keys naming the applied GPOs (GUID → display name).
pub const HISTORY_KEY: &str = r"Microsoft\Windows\CurrentVersion\Group Policy\History";
pub const GPO_LIST_KEY: &str = r"Microsoft\Windows\CurrentVersion\Group Policy\State\Machine\GPO-List";
/// Most domain GPOs looked at (a machine has a handful).
const MAX_GPOS: usize = 256;

/// A GPO that will write a finding's bad value again, and what to do about it.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct Reapply {
    /// "local" (this machine's own GPO) or "domain" (a cached domain GPO).
    pub source: &'static str,
    /// The GPO's GUID (`{...}`); null for the local GPO.
    pub gpo: Option<String>,
    /// Its display name, when the SOFTWARE hive names it.
    pub name: Option<String>,
    /// The file: `partition N: PATH`.
    pub file: String,
    /// What the file sets, e.g. `Software\Policies\...\fDenyTSConnections = 1`.
    pub value: String,
    /// What `fix` does about it, or what to do by hand.
    pub remedy: String,
    /// The rewrite `fix` applies (local GPO, same-size DWORD).
    #[serde(skip)]
    pub rewrite: Option<FileEdit>,
}

/// One policy file found on the machine.
#[derive(Debug, Clone)]
pub struct GpoFile<T> {
    pub partition: u32,
    pub path: String,
    pub parsed: T,
    /// Why its bytes cannot be rewritten in place (e.g. NTFS resident data),
    /// when they cannot.
    pub not_writable: Option<String>,
}

/// One GPO: the local one, or a cached domain GPO.
#[derive(Debug, Clone)]
pub struct Gpo {
    pub source: &'static str,
    pub guid: Option<String>,
    pub name: Option<String>,
    pub pol: Option<GpoFile<PolFile>>,
    pub inf: Option<GpoFile<SecTemplate>>,
}

impl Gpo {
    fn label(&self) -> String {
        match (&self.name, &self.guid) {
            (Some(n), Some(g)) => format!("\"{n}\" {g}"),
            (None, Some(g)) => g.clone(),
            (Some(n), None) => n.clone(),
            (None, None) => "local GPO".into(),
        }
    }

    fn domain_remedy(&self) -> String {
        if self.guid.is_none() {
            return "find the domain GPO that sets it (gpresult /h after boot, or Group Policy Management) and fix it on a domain controller; the cached copy on this disk is replaced at the next refresh".into();
        }
        format!("fix the domain GPO {} on a domain controller (Group Policy Management); the cached copy on this disk is replaced at the next refresh", self.label())
    }
}

/// Every GPO found, and the policy files that could not be read (one line each).
#[derive(Debug, Clone, Default)]
pub struct Policies {
    pub gpos: Vec<Gpo>,
    pub errors: Vec<String>,
}

fn read(fs: &dyn FileSystem, path: &str, limit: u64) -> Option<crate::Result<Vec<u8>>> {
    match fs.read_file(path, limit) {
        Err(crate::Error::NotFound { .. }) => None,
        r => Some(r),
    }
}

/// GUID → display name of the GPOs the SOFTWARE hive lists.
fn gpo_names(m: &Machine) -> Vec<(String, Option<String>)> {
    let mut out: Vec<(String, Option<String>)> = Vec::new();
    let Some(sw) = m.hive(HiveKind::Software) else { return out };
    let mut add = |k: &crate::hive::tree::Key| {
        let s = |n: &str| k.values.iter().find(|v| v.name.eq_ignore_ascii_case(n)).map(Value::string).filter(|s| !s.is_empty());
        if let Some(g) = s("GPOName").filter(|g| g.starts_with('{')) {
            let name = s("DisplayName");
            match out.iter().position(|(x, _)| x.eq_ignore_ascii_case(&g)) {
                Some(i) if out[i].1.is_none() => out[i].1 = name,
                Some(_) => {}
                None if out.len() < MAX_GPOS => out.push((g, name)),
                None => {}
            }
        }
    };
    if let Ok(list) = sw.key(GPO_LIST_KEY) {
        for sub in list.subkeys.iter().take(MAX_GPOS) {
            if let Ok(k) = sw.key(&format!(r"{GPO_LIST_KEY}\{sub}")) {
                add(&k);
            }
        }
    }
    if let Ok(hist) = sw.key(HISTORY_KEY) {
        for cse in hist.subkeys.iter().take(MAX_GPOS) {
            let Ok(c) = sw.key(&format!(r"{HISTORY_KEY}\{cse}")) else { continue };
            for n in c.subkeys.iter().take(MAX_GPOS) {
                if let Ok(k) = sw.key(&format!(r"{HISTORY_KEY}\{cse}\{n}")) {
                    add(&k);
                }
            }
        }
    }
    out
}

/// Find and parse the machine's policy files. A machine that is not a disk
/// image (hive files) has none; an unreadable or hostile file is reported
/// in `errors` and otherwise ignored.
pub fn discover(m: &Machine) -> Policies {
    let mut p = Policies::default();
    let gpo = |source: &'static str, guid: Option<String>, name: Option<String>, pol_path: Option<String>, inf_path: String, p: &mut Policies| {
        let mut g = Gpo { source, guid, name, pol: None, inf: None };
        let pol_found = pol_path.and_then(|path| m.find_file(None, &path).ok().map(|found| (path, found)));
        if let Some((pol_path, (part, fs))) = pol_found {
            match read(fs, &pol_path, preg::MAX_FILE).map(|r| r.and_then(|b| PolFile::parse(&b))) {
                Some(Ok(parsed)) => {
                    // Whether a same-size rewrite can be mapped to the volume (the header's bytes as probe).
                    let not_writable = fs.overwrite_plan(&pol_path, &[(0, preg::SIGNATURE.to_vec())]).err().map(|e| e.to_string());
                    g.pol = Some(GpoFile { partition: part, path: pol_path.clone(), parsed, not_writable })
                }
                Some(Err(e)) => p.errors.push(format!("partition {part}: {pol_path}: {e}")),
                None => {}
            }
        }
        if let Ok((part, fs)) = m.find_file(None, &inf_path) {
            match read(fs, &inf_path, inf::MAX_FILE).map(|r| r.and_then(|b| SecTemplate::parse(&b))) {
                Some(Ok(parsed)) => g.inf = Some(GpoFile { partition: part, path: inf_path.clone(), parsed, not_writable: None }),
                Some(Err(e)) => p.errors.push(format!("partition {part}: {inf_path}: {e}")),
                None => {}
            }
        }
        if g.pol.is_some() || g.inf.is_some() {
            p.gpos.push(g);
        }
    };
    gpo("local", None, Some("Local Group Policy".into()), Some(LOCAL_POL.into()), LOCAL_INF.into(), &mut p);
    let mut guids = gpo_names(m);
    // GPO folders the hive does not name (or a machine without SOFTWARE).
    if let Ok((_, fs)) = m.find_file(None, HISTORY_DIR) {
        if let Ok(names) = fs.list_dir(HISTORY_DIR) {
            for n in names.into_iter().filter(|n| n.starts_with('{')) {
                if guids.len() < MAX_GPOS && !guids.iter().any(|(g, _)| g.eq_ignore_ascii_case(&n)) {
                    guids.push((n, None));
                }
            }
        }
    }
    for (guid, name) in guids {
        let dir = format!(r"{HISTORY_DIR}\{guid}");
        gpo("domain", Some(guid), name, Some(format!(r"{dir}\{GPO_POL}")), format!(r"{dir}\{GPO_INF}"), &mut p);
    }
    // Cached domain security templates (no Registry.pol beside them).
    if let Ok((_, fs)) = m.find_file(None, SECURITY_CACHE_DIR) {
        let mut names: Vec<String> = fs.list_dir(SECURITY_CACHE_DIR).unwrap_or_default().into_iter().filter(|n| n.to_ascii_lowercase().ends_with(".dom")).collect();
        names.sort();
        for n in names.into_iter().take(MAX_GPOS) {
            let path = format!(r"{SECURITY_CACHE_DIR}\{n}");
            gpo("domain", None, Some(format!("cached domain security template {n}")), None, path, &mut p);
        }
    }
    p
}

/// Discover the machine's policy files and annotate `ins` with them: every
/// finding whose fix a GPO undoes gets its `reapplied_by`, and a note is
/// added for each policy file that could not be read and for each bad value
/// a GPO will write that the hives do not hold yet.
pub fn annotate(m: &Machine, ins: &mut Inspection) {
    let p = discover(m);
    annotate_with(m, &p, ins);
}

/// [`annotate`] with already discovered policies.
pub fn annotate_with(hives: &dyn crate::rdp::Hives, p: &Policies, ins: &mut Inspection) {
    for f in &mut ins.findings {
        f.reapplied_by = reapplied(hives, p, f);
    }
    for e in &p.errors {
        ins.notes.push(note(format!("a Group Policy file could not be read, so whether it re-applies a bad value is unknown: {e}")));
    }
    let notes = pending(hives, p, &mut ins.findings);
    ins.notes.extend(notes);
}

fn note(message: String) -> Finding {
    Finding {
        check: "gpo-files".into(),
        severity: Severity::Info,
        title: "Group Policy files",
        message,
        fix: "manual: none needed".into(),
        actions: Vec::new(),
        reapplied_by: Vec::new(),
        confirmed_by: None,
    }
}

/// The GPOs that undo finding `f`'s fix.
pub fn reapplied(hives: &dyn crate::rdp::Hives, p: &Policies, f: &Finding) -> Vec<Reapply> {
    let mut out: Vec<Reapply> = Vec::new();
    for a in &f.actions {
        for g in &p.gpos {
            for r in match_edit(hives, g, a) {
                if !out.contains(&r) {
                    out.push(r);
                }
            }
        }
    }
    out
}

/// `hive key` of an edit as a policy file names it: `Software\...`,
/// `System\CurrentControlSet\...` (any control set).
fn policy_key(a: &Edit) -> Option<String> {
    let root = match a.hive {
        HiveKind::Software => "Software",
        HiveKind::System => "System",
        _ => return None,
    };
    let key = a.key.trim_matches('\\');
    let key = match key.split_once('\\') {
        Some((cs, rest)) if a.hive == HiveKind::System && is_control_set(cs) => format!(r"CurrentControlSet\{rest}"),
        None if a.hive == HiveKind::System && is_control_set(key) => "CurrentControlSet".into(),
        _ => key.to_string(),
    };
    Some(format!(r"{root}\{key}"))
}

fn is_control_set(s: &str) -> bool {
    s.len() == 13 && s[..10].eq_ignore_ascii_case("ControlSet") && s[10..].bytes().all(|b| b.is_ascii_digit())
}

fn same_key(a: &str, b: &str) -> bool {
    a.trim_matches('\\').eq_ignore_ascii_case(b.trim_matches('\\'))
}

/// The catalog row about value `name` of `a`'s key (as its local value or
/// its Group Policy counterpart): its healthy predicate and type.
fn row_for(a: &Edit, name: &str) -> Option<&'static crate::rdp::Check> {
    let pk = policy_key(a)?;
    CATALOG.iter().filter(|c| !c.is_code()).find(|c| {
        let local = Edit { hive: c.hive, key: c.key.replace("{CCS}", "ControlSet001"), op: EditOp::CreateKey };
        let local_match = c.hive == a.hive && c.value.eq_ignore_ascii_case(name) && policy_key(&local).is_some_and(|k| same_key(&k, &pk));
        let policy_match = a.hive == HiveKind::Software && c.policy.is_some_and(|(k, n)| n.eq_ignore_ascii_case(name) && same_key(&format!(r"Software\{k}"), &pk));
        local_match || policy_match
    })
}

/// Whether data (`ty`, `raw`) is healthy for the value an edit fixes:
/// Some(true/false) when the fix's data or a catalog row can judge it.
fn judge(hives: &dyn crate::rdp::Hives, a: &Edit, name: &str, ty: u32, raw: &[u8]) -> Option<bool> {
    let v = Value { name: name.into(), kind: ty, raw: raw.to_vec() };
    if let EditOp::SetValue { data, .. } = &a.op {
        if same_data(&v, data.kind(), &data.to_bytes()) {
            return Some(true);
        }
    }
    if let Some(row) = row_for(a, name) {
        return Some(crate::rdp::eval::holds(row.healthy, &v, row.ty) == Ok(true));
    }
    match &a.op {
        // Not what the fix writes, and no row says it would be fine.
        EditOp::SetValue { .. } => Some(false),
        // The fix deletes the value: bad when the file writes back what the hive holds now.
        _ => {
            let old = hives.hive(a.hive).and_then(|h| h.key(&a.key).ok()).and_then(|k| k.values.into_iter().find(|x| x.name.eq_ignore_ascii_case(name)));
            old.map(|o| !same_data(&v, o.kind, &o.raw)).filter(|healthy| !healthy)
        }
    }
}

/// Equal data: DWORDs by number, strings by text (trailing NULs ignored), else bytes.
fn same_data(v: &Value, kind: u32, raw: &[u8]) -> bool {
    let w = Value { name: String::new(), kind, raw: raw.to_vec() };
    match (v.kind, kind) {
        (4 | 5, 4 | 5) => v.dword().is_some() && v.dword() == w.dword(),
        (1 | 2, 1 | 2) => v.string() == w.string(),
        (7, 7) => v.multi_string() == w.multi_string(),
        _ => v.kind == kind && v.raw == raw,
    }
}

/// The healthy DWORD a local `Registry.pol` entry should hold for edit `a`.
fn healthy_dword(a: &Edit, name: &str) -> Option<u32> {
    if let EditOp::SetValue { data: RegData::Dword(d), .. } = &a.op {
        return Some(*d);
    }
    healthy_row_dword(row_for(a, name)?)
}

fn reg_type_name(ty: u32) -> String {
    Value { name: String::new(), kind: ty, raw: Vec::new() }.type_name()
}

fn show(ty: u32, raw: &[u8]) -> String {
    crate::hive::edit::show_json(&Value { name: String::new(), kind: ty, raw: raw.to_vec() }.json_data())
}

/// Every way GPO `g` undoes edit `a`.
fn match_edit(hives: &dyn crate::rdp::Hives, g: &Gpo, a: &Edit) -> Vec<Reapply> {
    let mut out = Vec::new();
    let mk = |file: String, value: String, remedy: String, rewrite: Option<FileEdit>| Reapply { source: g.source, gpo: g.guid.clone(), name: g.name.clone(), file, value, remedy, rewrite };
    let name = match &a.op {
        EditOp::SetValue { name, .. } | EditOp::DeleteValue { name } => Some(name.as_str()),
        _ => None,
    };
    // Registry.pol entries for this value.
    if let (Some(pol), Some(pk), Some(name)) = (&g.pol, policy_key(a), name) {
        if let Some(e) = pol.parsed.lookup(&pk, name) {
            let writes = match e.directive() {
                Directive::Set => true,
                // `**soft.` writes only an absent value: what a delete fix leaves.
                Directive::Soft(_) => matches!(a.op, EditOp::DeleteValue { .. }),
                _ => false,
            };
            if writes && judge(hives, a, name, e.ty, &e.data) == Some(false) {
                let file = format!("partition {}: {}", pol.partition, pol.path);
                let value = format!(r"{}\{} = {} ({})", e.key, e.value, show(e.ty, &e.data), reg_type_name(e.ty));
                let (remedy, rewrite) = if g.source == "local" {
                    match (e.dword(), healthy_dword(a, name)) {
                        (Some(_), Some(_)) if pol.not_writable.is_some() => (local_not_writable(pol), None),
                        (Some(_), Some(d)) => {
                            let rw = FileEdit {
                                partition: pol.partition,
                                path: pol.path.clone(),
                                offset: e.data_offset,
                                old: e.data.clone(),
                                new: d.to_le_bytes().to_vec(),
                                what: format!(r"{}\{} = {d} (REG_DWORD)", e.key, e.value),
                            };
                            (format!("fix rewrites the entry in the local Registry.pol to {d}"), Some(rw))
                        }
                        _ => (
                            "edit the local Group Policy (gpedit.msc, Computer Configuration) after boot: the entry is not a DWORD rdprescue can rewrite in place".to_string(),
                            None,
                        ),
                    }
                } else {
                    (g.domain_remedy(), None)
                };
                out.push(mk(file, value, remedy, rewrite));
            }
        }
    }
    let Some(t) = &g.inf else { return out };
    let file = format!("partition {}: {}", t.partition, t.path);
    let manual = || if g.source == "local" { "edit the local security policy (secpol.msc) after boot, or this GptTmpl.inf".to_string() } else { g.domain_remedy() };
    // [Registry Values].
    if let (Some(pk), Some(name)) = (policy_key(a), name) {
        for rv in t.parsed.registry_values().unwrap_or_default() {
            if !(same_key(&rv.key, &pk) && rv.name.eq_ignore_ascii_case(name)) {
                continue;
            }
            let raw: Option<Vec<u8>> = match rv.ty {
                4 => rv.dword().map(|d| d.to_le_bytes().to_vec()),
                1 | 2 => Some(RegData::Sz(rv.data.clone()).to_bytes()),
                7 => Some(RegData::MultiSz(rv.data.split(',').map(str::to_string).collect()).to_bytes()),
                _ => None,
            };
            if let Some(raw) = raw {
                if judge(hives, a, name, rv.ty, &raw) == Some(false) {
                    out.push(mk(file.clone(), format!(r"[Registry Values] MACHINE\{}\{} = {},{}", rv.key, rv.name, rv.ty, rv.data), manual(), None));
                }
            }
        }
    }
    // [Service General Setting]: a service's start mode.
    if let (HiveKind::System, EditOp::SetValue { name, data: RegData::Dword(start) }) = (a.hive, &a.op) {
        let parts: Vec<&str> = a.key.split('\\').collect();
        if name.eq_ignore_ascii_case("Start") && parts.len() == 3 && parts[1].eq_ignore_ascii_case("Services") {
            for s in t.parsed.services().unwrap_or_default() {
                if s.name.eq_ignore_ascii_case(parts[2]) && s.start != *start {
                    out.push(mk(file.clone(), format!("[Service General Setting] {} start mode {}", s.name, s.start), manual(), None));
                }
            }
        }
    }
    // [Privilege Rights] against SECURITY Policy\Accounts\<SID>\ActSysAc.
    if a.hive == HiveKind::Security {
        let parts: Vec<&str> = a.key.trim_matches('\\').split('\\').collect();
        if parts.len() == 3 && parts[0].eq_ignore_ascii_case("Policy") && parts[1].eq_ignore_ascii_case("Accounts") {
            let sid = parts[2];
            let old = hives
                .hive(HiveKind::Security)
                .and_then(|h| h.key(&a.key).ok())
                .and_then(|k| k.values.into_iter().find(|v| v.name.eq_ignore_ascii_case("ActSysAc")))
                .and_then(|v| v.raw.get(..4).map(|b| u32::from_le_bytes([b[0], b[1], b[2], b[3]])))
                .unwrap_or(0);
            let new = match &a.op {
                EditOp::SetValue { name, data } if name.eq_ignore_ascii_case("ActSysAc") => data.to_bytes().get(..4).map(|b| u32::from_le_bytes([b[0], b[1], b[2], b[3]])),
                EditOp::DeleteKey => Some(0),
                _ => None,
            };
            if let Some(new) = new {
                for (right, who, _) in t.parsed.privilege_rights() {
                    let Some(r) = LogonRight::from_name(&right) else { continue };
                    let bit = r.bit();
                    if (old ^ new) & bit == 0 {
                        continue;
                    }
                    let listed = who.iter().any(|p| p.sid().is_some_and(|s| s.eq_ignore_ascii_case(sid)));
                    if listed != (new & bit != 0) {
                        let list = who.iter().map(ToString::to_string).collect::<Vec<_>>().join(",");
                        let what = if listed { "grants it to" } else { "leaves out" };
                        out.push(mk(file.clone(), format!("[Privilege Rights] {right} = {list} ({what} {sid})"), manual(), None));
                    }
                }
            }
        }
    }
    // [System Access] EnableAdminAccount / EnableGuestAccount against a SAM
    // user F edit that enables the built-in account.
    if let (HiveKind::Sam, EditOp::SetValue { name, data }) = (a.hive, &a.op) {
        let rid = a.key.rsplit('\\').next().and_then(|r| u32::from_str_radix(r, 16).ok());
        let setting = match rid {
            Some(500) => Some("EnableAdminAccount"),
            Some(501) => Some("EnableGuestAccount"),
            _ => None,
        };
        let disabled = |b: &[u8]| crate::hive::sam::UserFixed::parse(b, "F").ok().map(|f| f.account_control & crate::hive::sam::acb::ACCOUNT_DISABLED != 0);
        if let (Some(setting), true) = (setting, name.eq_ignore_ascii_case("F")) {
            let now_enabled = disabled(&data.to_bytes()) == Some(false);
            if now_enabled && t.parsed.system_access(setting) == Some(0) {
                out.push(mk(file.clone(), format!("[System Access] {setting} = 0 (disables the account again)"), manual(), None));
            }
        }
    }
    out
}

/// Bad values a GPO's `Registry.pol` writes to a catalog row's Group Policy
/// counterpart that no finding's edit names: attached to the row's finding
/// when it fired (its local value is fixed, the policy one comes back on
/// top), else a note when the hive does not hold the value yet (the GPO
/// was changed but not applied; the next refresh applies it).
fn pending(hives: &dyn crate::rdp::Hives, p: &Policies, findings: &mut [Finding]) -> Vec<Finding> {
    let mut notes = Vec::new();
    for g in &p.gpos {
        let Some(pol) = &g.pol else { continue };
        for c in CATALOG.iter().filter(|c| !c.is_code()) {
            let Some((pk, pn)) = c.policy else { continue };
            let Some(e) = pol.parsed.lookup(&format!(r"Software\{pk}"), pn) else { continue };
            if e.directive() != Directive::Set {
                continue;
            }
            let v = Value { name: pn.into(), kind: e.ty, raw: e.data.clone() };
            if crate::rdp::eval::holds(c.healthy, &v, c.ty) == Ok(true) {
                continue;
            }
            let file = format!("partition {}: {}", pol.partition, pol.path);
            let value = format!(r"{}\{} = {} ({})", e.key, e.value, show(e.ty, &e.data), reg_type_name(e.ty));
            let mut attached = false;
            for f in findings.iter_mut().filter(|f| f.check == c.id || Some(f.check.as_ref()) == c.policy_id) {
                attached = true;
                if f.reapplied_by.iter().any(|r| r.file == file && r.value == value) {
                    continue;
                }
                let (remedy, rewrite) = match (g.source, e.dword(), healthy_row_dword(c)) {
                    ("local", Some(_), Some(_)) if pol.not_writable.is_some() => (local_not_writable(pol), None),
                    ("local", Some(_), Some(d)) => (
                        format!("fix rewrites the entry in the local Registry.pol to {d}"),
                        Some(FileEdit { partition: pol.partition, path: pol.path.clone(), offset: e.data_offset, old: e.data.clone(), new: d.to_le_bytes().to_vec(), what: format!(r"{}\{} = {d} (REG_DWORD)", e.key, e.value) }),
                    ),
                    ("local", _, _) => ("edit the local Group Policy (gpedit.msc, Computer Configuration) after boot: the entry is not a DWORD rdprescue can rewrite in place".to_string(), None),
                    _ => (g.domain_remedy(), None),
                };
                f.reapplied_by.push(Reapply { source: g.source, gpo: g.guid.clone(), name: g.name.clone(), file: file.clone(), value: value.clone(), remedy, rewrite });
            }
            if attached {
                continue;
            }
            let current = hives.hive(HiveKind::Software).and_then(|h| h.key(pk).ok()).and_then(|k| k.values.into_iter().find(|x| x.name.eq_ignore_ascii_case(pn)));
            if current.is_some_and(|cur| same_data(&v, cur.kind, &cur.raw)) {
                continue;
            }
            let who = if g.source == "local" { "the local GPO".to_string() } else { format!("domain GPO {}", g.label()) };
            let mut n = note(format!("{who} will set {pn} = {} at the next Group Policy refresh ({file}), which the hive does not hold yet: {}", show(e.ty, &e.data), c.explain));
            let remedy = if g.source == "local" { "edit the local Group Policy (gpedit.msc, Computer Configuration) after boot".to_string() } else { g.domain_remedy() };
            n.reapplied_by.push(Reapply { source: g.source, gpo: g.guid.clone(), name: g.name.clone(), file, value, remedy, rewrite: None });
            notes.push(n);
        }
    }
    notes
}

fn local_not_writable(pol: &GpoFile<PolFile>) -> String {
    format!(
        "edit the local Group Policy (gpedit.msc, Computer Configuration) after boot: rdprescue cannot rewrite this Registry.pol in place ({})",
        pol.not_writable.as_deref().unwrap_or_default()
    )
}

/// The healthy DWORD of a catalog value row.
fn healthy_row_dword(c: &crate::rdp::Check) -> Option<u32> {
    let ok = |d: u32| crate::rdp::eval::holds(c.healthy, &Value { name: String::new(), kind: 4, raw: d.to_le_bytes().to_vec() }, c.ty) == Ok(true);
    let mut candidates = Vec::new();
    if let Fix::Set(Lit::D(d)) = c.fix {
        candidates.push(d);
    }
    match c.healthy {
        Pred::Eq(x) | Pred::Ge(x) => candidates.push(x),
        Pred::In(xs) => candidates.extend_from_slice(xs),
        Pred::Range(lo, _) => candidates.push(lo),
        Pred::Ne(x) => candidates.extend([0, 1, x.wrapping_add(1)]),
        _ => {}
    }
    candidates.into_iter().find(|&d| ok(d))
}
