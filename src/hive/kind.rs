//! The machine hives rdprescue knows by name, and the one place their names
//! are spelled: file names, `reg.exe` roots, key-path prefixes.

use serde::Serialize;

/// A machine hive (`HKLM\SYSTEM` and friends, and the BCD store).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
pub enum HiveKind {
    System,
    Software,
    Sam,
    Security,
    Bcd,
}

impl HiveKind {
    /// Every kind, in the order reports list them.
    pub const ALL: [HiveKind; 5] = [HiveKind::System, HiveKind::Software, HiveKind::Sam, HiveKind::Security, HiveKind::Bcd];

    /// The name Windows loads the hive under (`BCD00000000` for the BCD store).
    pub fn name(self) -> &'static str {
        match self {
            HiveKind::System => "SYSTEM",
            HiveKind::Software => "SOFTWARE",
            HiveKind::Sam => "SAM",
            HiveKind::Security => "SECURITY",
            HiveKind::Bcd => "BCD00000000",
        }
    }

    /// The short name reports show (`BCD` for the BCD store).
    pub fn short(self) -> &'static str {
        match self {
            HiveKind::Bcd => "BCD",
            k => k.name(),
        }
    }

    /// The prefix `reg.exe` and regedit show for keys of this hive.
    pub fn root(self) -> &'static str {
        match self {
            HiveKind::System => "HKEY_LOCAL_MACHINE\\SYSTEM",
            HiveKind::Software => "HKEY_LOCAL_MACHINE\\SOFTWARE",
            HiveKind::Sam => "HKEY_LOCAL_MACHINE\\SAM",
            HiveKind::Security => "HKEY_LOCAL_MACHINE\\SECURITY",
            HiveKind::Bcd => "HKEY_LOCAL_MACHINE\\BCD00000000",
        }
    }

    /// The short prefix reports use: `HKLM\SYSTEM`, ..., `BCD`.
    pub fn short_root(self) -> String {
        match self {
            HiveKind::Bcd => "BCD".into(),
            k => format!("HKLM\\{}", k.name()),
        }
    }

    /// A hive named as people and files name it: `SYSTEM`, `software`,
    /// `BCD`, `BCD00000000`, `BCD-gen1`... (case-insensitive).
    pub fn from_name(name: &str) -> Option<HiveKind> {
        let n = name.to_ascii_uppercase();
        match n.as_str() {
            "SYSTEM" => Some(HiveKind::System),
            "SOFTWARE" => Some(HiveKind::Software),
            "SAM" => Some(HiveKind::Sam),
            "SECURITY" => Some(HiveKind::Security),
            n if n.starts_with("BCD") => Some(HiveKind::Bcd),
            _ => None,
        }
    }

    /// The path of the hive file on the Windows volume (BCD: see `locate`).
    pub fn config_path(self) -> Option<String> {
        (self != HiveKind::Bcd).then(|| format!("\\Windows\\System32\\config\\{}", self.name()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip() {
        for k in HiveKind::ALL {
            assert_eq!(HiveKind::from_name(k.name()), Some(k));
            assert_eq!(HiveKind::from_name(&k.short().to_lowercase()), Some(k));
        }
        assert_eq!(HiveKind::from_name("BCD-gen1"), Some(HiveKind::Bcd));
        assert_eq!(HiveKind::from_name("NTUSER.DAT"), None);
        assert_eq!(HiveKind::Bcd.short_root(), "BCD");
        assert_eq!(HiveKind::Sam.short_root(), "HKLM\\SAM");
    }
}
