//! Keys as people type them, resolved against a machine.

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

impl Machine {
    /// Find `key` (`HKLM\\SYSTEM\\CurrentControlSet\\...`, `BCD\\...`, or a
    /// path inside a single hive file) in this machine: the hive it names (an
    /// image or a directory of hive files), or the hive file itself, which
    /// refuses keys of another hive. `CurrentControlSet` is resolved through
    /// the hive's `Select` key.
    pub fn resolve_key(&self, key: &str) -> Result<KeyTarget<'_>> {
        let m = self;
        let kp = source::parse_key(key);
        let (hive, kind) = if m.origin() == Origin::HiveFile {
            let hive = m.file_hive()?;
            let file_kind = m.file_kind().or_else(|| source::guess_kind("", hive));
            if let Some(have) = file_kind {
                let name = m.path().display();
                if let Some(f) = &kp.foreign {
                    return Err(Error::Usage(format!(
                        "{key}: {f} is not in {name}, which is the {} hive",
                        have.short()
                    )));
                }
                if let Some(want) = kp.hive.filter(|w| *w != have) {
                    return Err(Error::Usage(format!(
                        "{key} is in the {} hive, but {name} is the {} hive",
                        want.short(),
                        have.short()
                    )));
                }
            }
            (hive, kp.hive.or(file_kind))
        } else {
            if let Some(f) = &kp.foreign {
                return Err(Error::Usage(format!("{key}: {f} is not stored in the machine hives on a disk (rdprescue reads HKLM\\SYSTEM, SOFTWARE, SAM, SECURITY and BCD)")));
            }
            let Some(kind) = kp.hive else {
                return Err(Error::Usage(format!("name the hive in the key, e.g. 'HKLM\\SYSTEM\\{}' (hives: SYSTEM, SOFTWARE, SAM, SECURITY, BCD)", key.trim_start_matches('\\'))));
            };
            (m.require(kind)?, Some(kind))
        };
        let root = kind.map_or_else(
            || format!("HKEY_LOCAL_MACHINE\\{}", hive.name.to_uppercase()),
            |k| k.root().to_string(),
        );
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
