//! How people name keys (`HKLM\SYSTEM\CurrentControlSet\...`, `BCD\...`),
//! the control set that `CurrentControlSet` stands for, and which machine
//! hive a hive's content says it is. Where hive files come from is the
//! machine layer's business (`crate::machine`).

use super::tree::{split, Hive};
use serde::Serialize;

pub use super::kind::HiveKind;

/// A key path as typed: which hive, and the path inside it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyPath {
    pub hive: Option<HiveKind>,
    pub rest: Vec<String>,
    /// A root that is no machine hive on disk (`HKEY_CURRENT_USER`, `HKU`,
    /// `HKLM\HARDWARE`, ...), as typed; `hive` is then `None`.
    pub foreign: Option<String>,
}

/// Parse `HKLM\SYSTEM\...`, `HKEY_LOCAL_MACHINE\SOFTWARE\...`, `BCD\...`,
/// `BCD00000000\...` or `SYSTEM\...` (case-insensitive). Other registry roots
/// (`HKCU`, `HKEY_USERS`, `HKLM\HARDWARE`, ...) are marked `foreign`; anything
/// else is a path inside a single given hive file.
pub fn parse_key(path: &str) -> KeyPath {
    // Slashes separate keys only in a key typed without backslashes: key
    // names may hold '/' (`SCHANNEL\Ciphers\RC4 128/128`).
    let norm = if path.contains('\\') { path.to_string() } else { path.replace('/', "\\") };
    let comps: Vec<&str> = split(&norm);
    let upper: Vec<String> = comps.iter().map(|c| c.to_uppercase()).collect();
    let kind = |s: &str| match s {
        "BCD" | "BCD00000000" => Some(HiveKind::Bcd),
        s if s.starts_with("BCD") => None,
        s => HiveKind::from_name(s),
    };
    let own = |from: usize| comps[from.min(comps.len())..].iter().map(|s| s.to_string()).collect();
    let foreign = |n: usize| KeyPath { hive: None, rest: own(n), foreign: Some(comps[..n.min(comps.len())].join("\\")) };
    match upper.first().map(String::as_str) {
        Some("HKLM" | "HKEY_LOCAL_MACHINE") => match upper.get(1).and_then(|h| kind(h)) {
            Some(k) => KeyPath { hive: Some(k), rest: own(2), foreign: None },
            None if upper.len() >= 2 => foreign(2),
            None => foreign(1),
        },
        Some("HKCU" | "HKU" | "HKCR" | "HKCC") => foreign(1),
        Some(h) if h.starts_with("HKEY_") => foreign(1),
        Some(h) if kind(h).is_some() => KeyPath { hive: kind(h), rest: own(1), foreign: None },
        _ => KeyPath { hive: None, rest: own(0), foreign: None },
    }
}

/// SYSTEM\Select: which ControlSetNNN is current, default, last known good, failed.
#[derive(Debug, Clone, Serialize)]
pub struct ControlSets {
    pub current: u32,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub default: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_known_good: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub failed: Option<u32>,
    /// The key `CurrentControlSet` resolves to, e.g. "ControlSet001".
    pub current_key: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub warning: Option<String>,
}

/// `ControlSet` + the number in three digits, the way Windows names them
/// (ControlSet001, ControlSet010, ControlSet100).
pub fn control_set_name(n: u32) -> String {
    format!("ControlSet{n:03}")
}

/// Resolve the control sets of a SYSTEM hive.
pub fn control_sets(system: &Hive) -> ControlSets {
    let sel = system.key("Select").ok();
    let get = |name: &str| sel.as_ref().and_then(|k| k.values.iter().find(|v| v.name.eq_ignore_ascii_case(name))).and_then(|v| v.dword());
    match get("Current").filter(|&n| n > 0 && system.key(&control_set_name(n)).is_ok()) {
        Some(n) => ControlSets {
            current: n,
            default: get("Default"),
            last_known_good: get("LastKnownGood"),
            failed: get("Failed"),
            current_key: control_set_name(n),
            warning: None,
        },
        None => ControlSets {
            current: 1,
            default: get("Default"),
            last_known_good: get("LastKnownGood"),
            failed: get("Failed"),
            current_key: control_set_name(1),
            warning: Some(match get("Current") {
                Some(n) => format!("Select\\Current = {n} names a missing {}; using ControlSet001", control_set_name(n)),
                None => "Select\\Current is missing; using ControlSet001".into(),
            }),
        },
    }
}

/// Map a leading `CurrentControlSet` component to the real control set.
pub fn resolve_ccs(rest: &[String], sets: Option<&ControlSets>) -> Vec<String> {
    let mut out = rest.to_vec();
    if let (Some(first), Some(s)) = (out.first_mut(), sets) {
        if first.eq_ignore_ascii_case("CurrentControlSet") {
            *first = s.current_key.clone();
        }
    }
    out
}

/// Which machine hive a plain hive file is: by file name (SYSTEM, SOFTWARE,
/// SAM, SECURITY, BCD*), else by its content (Select = SYSTEM, Objects +
/// Description = BCD, `Microsoft\Windows NT\CurrentVersion` = SOFTWARE).
pub fn guess_kind(file_name: &str, hive: &Hive) -> Option<HiveKind> {
    HiveKind::from_name(file_name).or_else(|| {
        if hive.key("Select").is_ok() {
            Some(HiveKind::System)
        } else if hive.key("Objects").is_ok() && hive.key("Description").is_ok() {
            Some(HiveKind::Bcd)
        } else if hive.key(r"Microsoft\Windows NT\CurrentVersion").is_ok() {
            Some(HiveKind::Software)
        } else if hive.key(r"SAM\Domains").is_ok() {
            Some(HiveKind::Sam)
        } else if hive.key("Policy").is_ok() && hive.key("RXACT").is_ok() {
            Some(HiveKind::Security)
        } else {
            None
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_paths() {
        let k = parse_key(r"HKLM\SYSTEM\CurrentControlSet\Control");
        assert_eq!(k.hive, Some(HiveKind::System));
        assert_eq!(k.rest, vec!["CurrentControlSet", "Control"]);
        assert_eq!(parse_key(r"hkey_local_machine\software\Microsoft").hive, Some(HiveKind::Software));
        assert_eq!(parse_key(r"BCD\Objects").hive, Some(HiveKind::Bcd));
        assert_eq!(parse_key(r"HKLM\BCD00000000").rest, Vec::<String>::new());
        let plain = parse_key(r"ControlSet001\Services");
        assert_eq!((plain.hive, plain.rest.len()), (None, 2));
        assert_eq!(parse_key("HKLM/SAM/SAM").hive, Some(HiveKind::Sam));
        let cu = parse_key(r"HKEY_CURRENT_USER\Evil");
        assert_eq!((cu.hive, cu.foreign.as_deref(), cu.rest.len()), (None, Some("HKEY_CURRENT_USER"), 1));
        assert_eq!(parse_key(r"HKLM\HARDWARE\DESCRIPTION").foreign.as_deref(), Some("HKLM\\HARDWARE"));
        assert_eq!(parse_key(r"HKCU").foreign.as_deref(), Some("HKCU"));
        assert_eq!(parse_key(r"Select").foreign, None);
    }

    #[test]
    fn control_set_names() {
        assert_eq!(control_set_name(1), "ControlSet001");
        assert_eq!(control_set_name(10), "ControlSet010");
        assert_eq!(control_set_name(123), "ControlSet123");
        let sets = ControlSets { current: 10, default: None, last_known_good: None, failed: None, current_key: control_set_name(10), warning: None };
        assert_eq!(resolve_ccs(&["currentcontrolset".into(), "Control".into()], Some(&sets)), vec!["ControlSet010", "Control"]);
    }
}
