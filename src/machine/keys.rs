//! Keys as people type them, resolved against a machine.
//!
//! Accepted spellings of the root, case-insensitive: `HKLM\SYSTEM\...`,
//! `HKEY_LOCAL_MACHINE\...`, PowerShell's `HKLM:\...` and
//! `Registry::HKEY_LOCAL_MACHINE\...`, regedit's address bar
//! `Computer\HKEY_LOCAL_MACHINE\...`, `BCD\...`, or a bare hive name
//! (`SYSTEM\...`). Trailing and doubled backslashes are ignored. Forward
//! slashes separate keys only in a key typed without any backslash
//! (`HKLM/SYSTEM/Select`): key names may hold `/` (`...\Ciphers\RC4 128/128`),
//! so once a backslash is there a slash is part of a name.
//!
//! Roots that are not machine hives on disk get an error saying where the
//! data lives instead (HKCU: the user's NTUSER.DAT; HARDWARE: built at boot),
//! and a misspelt hive gets a suggestion (`SYSTM` -> `SYSTEM`).

use super::{Machine, Origin};
use crate::error::{Error, Result};
use crate::hive::source::{self, ControlSets};
use crate::hive::tree::Hive;
use crate::hive::HiveKind;

/// The hive a key lives in, the key's path inside it, and how to print it.
pub struct KeyTarget<'m> {
    pub hive: &'m Hive,
    /// The machine hive it is, when known (a hive file of another kind: None).
    pub kind: Option<HiveKind>,
    pub path: String,
    /// `HKEY_LOCAL_MACHINE\SYSTEM` and the like.
    pub root: String,
    pub control_sets: Option<ControlSets>,
}

/// `key` with the PowerShell / regedit decorations of its root removed:
/// `Computer\`, `Registry::` (and `Microsoft.PowerShell.Core\Registry::`),
/// the drive colon of `HKLM:`; slashes as separators when there is no
/// backslash; surrounding blanks trimmed.
pub fn normalize_key(key: &str) -> String {
    let mut k = key.trim().to_string();
    if !k.contains('\\') {
        k = k.replace('/', "\\");
    }
    let strip = |k: &str, prefix: &str| -> Option<String> {
        (k.len() >= prefix.len() && k.is_char_boundary(prefix.len()) && k[..prefix.len()].eq_ignore_ascii_case(prefix)).then(|| k[prefix.len()..].to_string())
    };
    for p in ["Microsoft.PowerShell.Core\\Registry::", "Registry::"] {
        if let Some(rest) = strip(&k, p) {
            k = rest;
        }
    }
    let k = k.trim_start_matches('\\').to_string();
    let mut k = match strip(&k, "Computer\\") {
        Some(rest) => rest,
        None if k.eq_ignore_ascii_case("Computer") => String::new(),
        None => k,
    };
    // `HKLM:\...`, `HKLM:...` (PowerShell drives): the colon separates the root.
    let first_end = k.find('\\').unwrap_or(k.len());
    if let Some(colon) = k[..first_end].find(':').filter(|&c| k[..c].to_ascii_uppercase().starts_with("HK")) {
        if colon + 1 == first_end {
            k.remove(colon);
        } else {
            k.replace_range(colon..colon + 1, "\\");
        }
    }
    k
}

/// Hive names under HKLM that exist on a running Windows but that rdprescue
/// does not load from an image, with what to do instead.
fn other_hklm(name: &str) -> Option<String> {
    Some(match name.to_ascii_uppercase().as_str() {
        "HARDWARE" => "HARDWARE is built at boot and not stored on disk (its data comes from the hardware; nothing to read or fix offline)".into(),
        n @ ("COMPONENTS" | "DRIVERS" | "ELAM" | "SCHEMA") => format!("HKLM\\{n} is the file Windows\\System32\\config\\{n}, which rdprescue does not read from an image: name the file (rdprescue cat IMAGE 'C:\\Windows\\System32\\config\\{n}' > {n})"),
        _ => return None,
    })
}

/// Known names a misspelt root or hive is compared with.
const HIVES: [&str; 9] = ["SYSTEM", "SOFTWARE", "SAM", "SECURITY", "BCD00000000", "HARDWARE", "COMPONENTS", "DRIVERS", "ELAM"];
const ROOTS: [&str; 11] = [
    "HKLM",
    "HKCU",
    "HKU",
    "HKCR",
    "HKCC",
    "HKEY_LOCAL_MACHINE",
    "HKEY_CURRENT_USER",
    "HKEY_USERS",
    "HKEY_CLASSES_ROOT",
    "HKEY_CURRENT_CONFIG",
    "BCD",
];

/// The closest of `names` to `typed` (Damerau-Levenshtein via `strsim`), when
/// close enough to be a typo: at most 2 edits, fewer than half the letters.
pub fn did_you_mean<'a>(typed: &str, names: &[&'a str]) -> Option<&'a str> {
    if typed.len() > 64 {
        return None; // no name is that long; and the distance matrix stays small
    }
    let t = typed.to_ascii_uppercase();
    names
        .iter()
        .map(|n| (strsim::damerau_levenshtein(&t, n), *n))
        .filter(|&(d, n)| d > 0 && d <= 2 && d * 2 < n.len().max(t.len()))
        .min_by_key(|&(d, _)| d)
        .map(|(_, n)| n)
}

fn suggest(typed: &str, names: &[&str]) -> String {
    did_you_mean(typed, names).map_or_else(String::new, |n| format!(" (did you mean {n}?)"))
}

/// Why a root that is no machine hive on disk cannot be read, and what to
/// name instead. `foreign` is the root as typed (`HKCU`, `HKLM\SYSTM`, ...),
/// `rest` the path below it.
pub fn foreign_root_error(foreign: &str, rest: &[String]) -> String {
    let comps: Vec<&str> = foreign.split('\\').collect();
    let top = comps[0].to_ascii_uppercase();
    let sub = comps.get(1).copied();
    match (top.as_str(), sub) {
        ("HKLM" | "HKEY_LOCAL_MACHINE", Some(h)) => other_hklm(h).unwrap_or_else(|| format!("unknown hive {h}{} (hives on disk: SYSTEM, SOFTWARE, SAM, SECURITY, BCD00000000)", suggest(h, &HIVES))),
        ("HKLM" | "HKEY_LOCAL_MACHINE", None) => format!("name a hive under {}: SYSTEM, SOFTWARE, SAM, SECURITY or BCD00000000", comps[0]),
        ("HKCU" | "HKEY_CURRENT_USER", _) => format!("{} lives in a user's NTUSER.DAT: name the file (rdprescue cat IMAGE 'C:\\Users\\NAME\\NTUSER.DAT' > NTUSER.DAT, then rdprescue reg query NTUSER.DAT 'HKCU\\...')", comps[0]),
        ("HKU" | "HKEY_USERS", _) => match rest.first().map(|s| s.to_ascii_uppercase()) {
            Some(u) if u == ".DEFAULT" => format!("{}\\.DEFAULT is the file Windows\\System32\\config\\DEFAULT: name the file (rdprescue cat IMAGE 'C:\\Windows\\System32\\config\\DEFAULT' > DEFAULT)", comps[0]),
            Some(u) if u == "S-1-5-18" => format!("{}\\S-1-5-18 is the file Windows\\System32\\config\\systemprofile\\NTUSER.DAT: name the file", comps[0]),
            Some(u) if u.ends_with("_CLASSES") => format!("{}\\{} is the user's UsrClass.dat (Users\\NAME\\AppData\\Local\\Microsoft\\Windows\\UsrClass.dat): name the file", comps[0], rest[0]),
            _ => format!("{} holds each user's NTUSER.DAT (Users\\NAME\\NTUSER.DAT on the image): name the file", comps[0]),
        },
        ("HKCR" | "HKEY_CLASSES_ROOT", _) => format!("{} is a merged view built at logon: its machine part is HKLM\\SOFTWARE\\Classes (name that key), its user part the user's UsrClass.dat", comps[0]),
        ("HKCC" | "HKEY_CURRENT_CONFIG", _) => format!("{} is a link built at boot: name HKLM\\SYSTEM\\CurrentControlSet\\Hardware Profiles\\Current instead", comps[0]),
        _ => format!("unknown registry root {}{} (HKLM\\SYSTEM, HKLM\\SOFTWARE, HKLM\\SAM, HKLM\\SECURITY, BCD)", comps[0], suggest(comps[0], &ROOTS)),
    }
}

/// For a key whose first component names no hive: a misspelt hive or root
/// (`SYSTM\...`, `HKML\...`), when it looks like one.
fn misspelt_first(first: &str) -> Option<String> {
    if let Some(n) = did_you_mean(first, &HIVES[..5]) {
        return Some(format!("unknown hive {first} (did you mean {n}?)"));
    }
    did_you_mean(first, &ROOTS).map(|n| format!("unknown registry root {first} (did you mean {n}?)"))
}

impl Machine {
    /// Find `key` (`HKLM\\SYSTEM\\CurrentControlSet\\...`, `BCD\\...`, or a
    /// path inside a single hive file; see the module documentation for the
    /// spellings) in this machine: the hive it names (an image or a directory
    /// of hive files), or the hive file itself, which refuses keys of another
    /// hive. `CurrentControlSet` is resolved through the hive's `Select` key.
    pub fn resolve_key(&self, key: &str) -> Result<KeyTarget<'_>> {
        let m = self;
        let kp = source::parse_key(&normalize_key(key));
        let mut user_root = None;
        let (hive, kind) = if m.origin() == Origin::HiveFile {
            let hive = m.file_hive()?;
            let file_kind = m.file_kind().or_else(|| source::guess_kind("", hive));
            if let Some(have) = file_kind {
                let name = m.path().display();
                if let Some(f) = &kp.foreign {
                    let why = foreign_root_error(f, &kp.rest);
                    return Err(Error::Usage(format!("{key}: {why}; {name} is the {} hive", have.short())));
                }
                if let Some(want) = kp.hive.filter(|w| *w != have) {
                    return Err(Error::Usage(format!(
                        "{key} is in the {} hive, but {name} is the {} hive",
                        want.short(),
                        have.short()
                    )));
                }
            } else if let Some(f) = &kp.foreign {
                // A user hive (NTUSER.DAT, UsrClass.dat) named through its usual root.
                let top = f.split('\\').next().unwrap_or_default().to_ascii_uppercase();
                user_root = match top.as_str() {
                    "HKCU" | "HKEY_CURRENT_USER" => Some("HKEY_CURRENT_USER".to_string()),
                    _ => None,
                };
            }
            (hive, kp.hive.or(file_kind))
        } else {
            if let Some(f) = &kp.foreign {
                return Err(Error::Usage(format!("{key}: {}", foreign_root_error(f, &kp.rest))));
            }
            let Some(kind) = kp.hive else {
                if let Some(why) = kp.rest.first().and_then(|f| misspelt_first(f)) {
                    return Err(Error::Usage(format!("{key}: {why}")));
                }
                return Err(Error::Usage(format!("name the hive in the key, e.g. 'HKLM\\SYSTEM\\{}' (hives: SYSTEM, SOFTWARE, SAM, SECURITY, BCD)", key.trim_start_matches('\\'))));
            };
            (m.require(kind)?, Some(kind))
        };
        let root = user_root.unwrap_or_else(|| {
            kind.map_or_else(
                || format!("HKEY_LOCAL_MACHINE\\{}", hive.name.to_uppercase()),
                |k| k.root().to_string(),
            )
        });
        let control_sets = hive
            .key("Select")
            .is_ok()
            .then(|| source::control_sets(hive));
        let rest = source::resolve_ccs(&kp.rest, control_sets.as_ref());
        Ok(KeyTarget {
            path: rest.join("\\"),
            hive,
            kind,
            root,
            control_sets,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spellings_normalize() {
        for k in [
            r"HKLM:\SYSTEM\Select",
            r"HKLM:SYSTEM\Select",
            r"Computer\HKEY_LOCAL_MACHINE\SYSTEM\Select",
            r"Registry::HKEY_LOCAL_MACHINE\SYSTEM\Select",
            r"Microsoft.PowerShell.Core\Registry::HKLM\SYSTEM\Select",
            r"HKLM\SYSTEM\Select\",
            "HKLM/SYSTEM/Select",
            r"  HKLM\SYSTEM\\Select  ",
        ] {
            let kp = source::parse_key(&normalize_key(k));
            assert_eq!((kp.hive, kp.rest.clone(), kp.foreign), (Some(HiveKind::System), vec!["Select".to_string()], None), "{k}");
        }
        // A slash inside a key written with backslashes is part of a name.
        let kp = source::parse_key(&normalize_key(r"HKLM\SYSTEM\CurrentControlSet\Control\SecurityProviders\SCHANNEL\Ciphers\RC4 128/128"));
        assert_eq!(kp.rest.last().map(String::as_str), Some("RC4 128/128"));
        assert_eq!(normalize_key("C:/x"), r"C:\x");
    }

    #[test]
    fn errors_say_what_is_wrong() {
        let e = |k: &str| {
            let kp = source::parse_key(&normalize_key(k));
            foreign_root_error(kp.foreign.as_deref().expect(k), &kp.rest)
        };
        assert!(e(r"HKLM\SYSTM\Select").starts_with("unknown hive SYSTM (did you mean SYSTEM?)"), "{}", e(r"HKLM\SYSTM"));
        assert!(e(r"HKLM\SOFTWRE").contains("did you mean SOFTWARE?"));
        assert!(e(r"HKLM\ZZZZZZ").starts_with("unknown hive ZZZZZZ (hives on disk"), "{}", e(r"HKLM\ZZZZZZ"));
        assert!(e(r"HKCU\Software").starts_with("HKCU lives in a user's NTUSER.DAT: name the file"));
        assert!(e(r"HKEY_CURRENT_USER:\Software").starts_with("HKEY_CURRENT_USER lives in a user's NTUSER.DAT"));
        assert!(e(r"HKLM\HARDWARE\DESCRIPTION").starts_with("HARDWARE is built at boot and not stored on disk"));
        assert!(e(r"HKU\.DEFAULT\Control Panel").contains(r"config\DEFAULT"));
        assert!(e(r"HKEY_LOCAL_MACHNE\SYSTEM").contains("did you mean HKEY_LOCAL_MACHINE?"), "{}", e(r"HKEY_LOCAL_MACHNE\SYSTEM"));
        assert!(e(r"HKCR\.txt").contains(r"HKLM\SOFTWARE\Classes"));
        assert!(e(r"HKLM").starts_with("name a hive under HKLM"));
        assert_eq!(misspelt_first("SYSTM").as_deref(), Some("unknown hive SYSTM (did you mean SYSTEM?)"));
        assert_eq!(misspelt_first("HKML").as_deref(), Some("unknown registry root HKML (did you mean HKLM?)"));
        assert_eq!(misspelt_first("ControlSet001"), None);
        assert_eq!(did_you_mean("sam", &HIVES), None, "an exact name is no typo");
    }
}
