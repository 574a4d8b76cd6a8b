//! Where hives come from (a disk image, or plain hive files for forensics), how
//! people name keys (`HKLM\SYSTEM\CurrentControlSet\...`, `BCD\...`), and the
//! control set that `CurrentControlSet` stands for.

use super::tree::{split, Hive};
use crate::error::{Error, Layer, Result};
use crate::fs::FileSystem;
use crate::image::Image;
use crate::locate;
use serde::Serialize;
use std::path::Path;

/// Largest hive (or log) file we read: Windows refuses hives above 2 GiB.
pub const MAX_HIVE_FILE: u64 = 2 << 30;

pub use super::kind::HiveKind;

/// A key path as typed: which hive, and the path inside it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyPath {
    pub hive: Option<HiveKind>,
    pub rest: Vec<String>,
}

/// Parse `HKLM\SYSTEM\...`, `HKEY_LOCAL_MACHINE\SOFTWARE\...`, `BCD\...`,
/// `BCD00000000\...` or `SYSTEM\...` (case-insensitive); anything else is a
/// path inside a single given hive file.
pub fn parse_key(path: &str) -> KeyPath {
    let norm = path.replace('/', "\\");
    let comps: Vec<&str> = split(&norm);
    let upper: Vec<String> = comps.iter().map(|c| c.to_uppercase()).collect();
    let kind = |s: &str| match s {
        "BCD" | "BCD00000000" => Some(HiveKind::Bcd),
        s if s.starts_with("BCD") => None,
        s => HiveKind::from_name(s),
    };
    let own = |from: usize| comps[from.min(comps.len())..].iter().map(|s| s.to_string()).collect();
    match upper.first().map(String::as_str) {
        Some("HKLM" | "HKEY_LOCAL_MACHINE") => KeyPath { hive: upper.get(1).and_then(|h| kind(h)), rest: own(2) },
        Some(h) if kind(h).is_some() => KeyPath { hive: kind(h), rest: own(1) },
        _ => KeyPath { hive: None, rest: own(0) },
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

fn read_optional(fs: &dyn FileSystem, path: &str) -> Result<Option<Vec<u8>>> {
    match fs.read_file(path, MAX_HIVE_FILE) {
        Ok(v) => Ok(Some(v)),
        Err(Error::NotFound { .. }) => Ok(None),
        Err(e) => Err(e),
    }
}

/// Load hive file `path` of a mounted file system with its .LOG1/.LOG2.
pub fn load_from_fs(fs: &dyn FileSystem, path: &str, name: &str) -> Result<Hive> {
    let primary = fs.read_file(path, MAX_HIVE_FILE)?;
    let log1 = read_optional(fs, &format!("{path}.LOG1"))?;
    let log2 = read_optional(fs, &format!("{path}.LOG2"))?;
    // XP-style single log.
    let log1 = match log1 {
        None => read_optional(fs, &format!("{path}.LOG"))?,
        l => l,
    };
    Ok(Hive::new(name, super::load(primary, log1, log2)?))
}

/// Load a machine hive out of an image: SYSTEM/SOFTWARE/SAM/SECURITY from the
/// Windows volume, BCD from wherever the boot manager keeps it.
pub fn load_from_image(image: &Image, kind: HiveKind) -> Result<Hive> {
    let survey = locate::survey(image)?;
    let (part, path) = hive_location(&survey, kind)?;
    let p = survey.partition_table.partitions.iter().find(|p| p.index == part).ok_or_else(|| Error::Usage(format!("partition {part} vanished")))?;
    let fs = locate::mount(image, p)?;
    load_from_fs(fs.as_ref(), &path, kind.name())
}

/// Where machine hive `kind` lives in a surveyed image: (partition, path).
pub fn hive_location(survey: &locate::DiskReport, kind: HiveKind) -> Result<(u32, String)> {
    match kind {
        HiveKind::Bcd => survey.bcd.as_ref().map(|b| (b.partition, b.path.to_string())).ok_or_else(|| Error::NotFound {
            layer: Layer::Hive,
            path: "BCD store (no \\Boot\\BCD or \\EFI\\Microsoft\\Boot\\BCD on any volume)".into(),
        }),
        k => survey
            .windows_volumes
            .first()
            .map(|&w| (w, format!("\\Windows\\System32\\config\\{}", k.name())))
            .ok_or_else(|| survey.no_windows_volume(&format!("{} hive", k.name()))),
    }
}

/// A machine hive looked up in an image: where it was expected and what loading gave.
pub struct FoundHive {
    pub kind: HiveKind,
    /// Partition index and path inside it, when a volume to look on exists.
    pub partition: Option<u32>,
    pub path: String,
    pub hive: Result<Hive>,
}

/// Survey `image` once and load the given machine hives from it (SYSTEM,
/// SOFTWARE, SAM, SECURITY from the first Windows volume, BCD from the boot
/// volume). A hive that is absent or unreadable is returned as an error in
/// its slot; only a failing survey is an error of the whole call.
pub fn load_machine(image: &Image, kinds: &[HiveKind]) -> Result<(locate::DiskReport, Vec<FoundHive>)> {
    let survey = locate::survey(image)?;
    let mut out = Vec::new();
    let mut mounted: Vec<(u32, Box<dyn FileSystem>)> = Vec::new();
    for &kind in kinds {
        let (part, path) = match hive_location(&survey, kind) {
            Ok(p) => p,
            Err(e) => {
                out.push(FoundHive { kind, partition: None, path: String::new(), hive: Err(e) });
                continue;
            }
        };
        if !mounted.iter().any(|(i, _)| *i == part) {
            let p = survey.partition_table.partitions.iter().find(|p| p.index == part).ok_or_else(|| Error::Usage(format!("partition {part} vanished")))?;
            match locate::mount(image, p) {
                Ok(fs) => mounted.push((part, fs)),
                Err(e) => {
                    out.push(FoundHive { kind, partition: Some(part), path, hive: Err(e) });
                    continue;
                }
            }
        }
        let fs = &mounted.iter().find(|(i, _)| *i == part).expect("mounted above").1;
        let hive = load_from_fs(fs.as_ref(), &path, kind.name());
        out.push(FoundHive { kind, partition: Some(part), path, hive });
    }
    Ok((survey, out))
}

/// Load a plain hive file from the local file system, with sibling
/// NAME.LOG1/NAME.LOG2 (any case) when present.
pub fn load_file(path: &Path) -> Result<Hive> {
    let read = |p: &Path| -> Result<Vec<u8>> {
        let meta = std::fs::metadata(p).map_err(|source| Error::Open { layer: Layer::Hive, path: p.to_path_buf(), source })?;
        if meta.len() > MAX_HIVE_FILE {
            return Err(Error::Usage(format!("{} is larger than 2 GiB: not a hive", p.display())));
        }
        std::fs::read(p).map_err(|source| Error::Open { layer: Layer::Hive, path: p.to_path_buf(), source })
    };
    let primary = read(path)?;
    let sibling = |ext: &str| -> Option<std::path::PathBuf> {
        let dir = path.parent().filter(|d| !d.as_os_str().is_empty()).unwrap_or(Path::new("."));
        let want = format!("{}.{ext}", path.file_name()?.to_string_lossy()).to_lowercase();
        std::fs::read_dir(dir).ok()?.flatten().map(|e| e.path()).find(|p| p.file_name().is_some_and(|n| n.to_string_lossy().to_lowercase() == want))
    };
    let log = |ext| sibling(ext).map(|p| read(&p)).transpose();
    let log1 = match log("LOG1")? {
        None => log("LOG")?,
        l => l,
    };
    let log2 = log("LOG2")?;
    let name = path.file_name().map_or_else(|| "hive".into(), |n| n.to_string_lossy().to_string());
    Ok(Hive::new(name, super::load(primary, log1, log2)?))
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
        } else {
            None
        }
    })
}

/// Whether `path` is a plain hive file (starts with `regf`) rather than an image.
/// Only a regular file is opened (opening a FIFO would block).
pub fn is_hive_file(path: &Path) -> bool {
    use std::io::Read;
    let mut sig = [0u8; 4];
    std::fs::metadata(path).is_ok_and(|m| m.is_file())
        && std::fs::File::open(path).and_then(|mut f| f.read_exact(&mut sig)).is_ok() && &sig == b"regf"
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
