//! Typed registry edits: what a fix, `reg set/delete` or a .reg import asks
//! the editor to do. The JSON form (`{"op": "set-value", "hive", "key",
//! "name", "type", "data"}`) is rendered from these; it is never parsed back.

use crate::hive::kind::HiveKind;
use crate::hive::tree::{hex, Value, TYPE_NAMES};
use serde::ser::{Serialize, SerializeMap, Serializer};
use serde_json::Value as J;

/// Registry value data, by type.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RegData {
    Dword(u32),
    Qword(u64),
    Sz(String),
    ExpandSz(String),
    MultiSz(Vec<String>),
    Binary(Vec<u8>),
    /// Any type with its bytes exactly as given (`.reg` `hex(N):` data, strings
    /// that do not round-trip through UTF-16, nonstandard types).
    Other(u32, Vec<u8>),
}

fn utf16z(s: &str) -> impl Iterator<Item = u8> + '_ {
    s.encode_utf16().chain([0]).flat_map(u16::to_le_bytes)
}

impl RegData {
    /// The registry type number (REG_SZ = 1, REG_DWORD = 4, ...).
    pub fn kind(&self) -> u32 {
        match self {
            RegData::Sz(_) => 1,
            RegData::ExpandSz(_) => 2,
            RegData::Binary(_) => 3,
            RegData::Dword(_) => 4,
            RegData::MultiSz(_) => 7,
            RegData::Qword(_) => 11,
            RegData::Other(k, _) => *k,
        }
    }

    /// `REG_DWORD`, ..., or `REG_0x..` for a nonstandard type.
    pub fn type_name(&self) -> String {
        type_name(self.kind())
    }

    /// The bytes stored in the value.
    pub fn to_bytes(&self) -> Vec<u8> {
        match self {
            RegData::Dword(d) => d.to_le_bytes().to_vec(),
            RegData::Qword(q) => q.to_le_bytes().to_vec(),
            RegData::Sz(s) | RegData::ExpandSz(s) => utf16z(s).collect(),
            RegData::MultiSz(items) => items.iter().flat_map(|s| utf16z(s)).chain([0, 0]).collect(),
            RegData::Binary(b) | RegData::Other(_, b) => b.clone(),
        }
    }

    /// The typed form of stored data: readable variants where the bytes
    /// round-trip exactly, `Other` (byte for byte) everywhere else.
    pub fn from_raw(kind: u32, raw: &[u8]) -> RegData {
        let v = Value { name: String::new(), kind, raw: raw.to_vec() };
        let typed = match kind {
            1 => RegData::Sz(v.string()),
            2 => RegData::ExpandSz(v.string()),
            3 => RegData::Binary(raw.to_vec()),
            4 if raw.len() == 4 => RegData::Dword(u32::from_le_bytes([raw[0], raw[1], raw[2], raw[3]])),
            7 => RegData::MultiSz(v.multi_string()),
            11 if raw.len() == 8 => RegData::Qword(u64::from_le_bytes(raw.try_into().unwrap_or([0; 8]))),
            _ => return RegData::Other(kind, raw.to_vec()),
        };
        if typed.to_bytes() == raw {
            typed
        } else {
            RegData::Other(kind, raw.to_vec())
        }
    }

    /// The data as report JSON: numbers for DWORD/QWORD, strings, arrays for
    /// MULTI_SZ, lowercase hex for binary, `{"hex": ...}` for raw bytes.
    pub fn json(&self) -> J {
        match self {
            RegData::Dword(d) => J::from(*d),
            RegData::Qword(q) => J::from(*q),
            RegData::Sz(s) | RegData::ExpandSz(s) => J::from(s.as_str()),
            RegData::MultiSz(items) => J::Array(items.iter().map(|s| J::from(s.as_str())).collect()),
            RegData::Binary(b) => J::from(hex(b)),
            RegData::Other(_, b) => serde_json::json!({ "hex": hex(b) }),
        }
    }
}

/// `REG_*` name of a type number.
pub fn type_name(kind: u32) -> String {
    TYPE_NAMES.get(kind as usize).map_or_else(|| format!("REG_{kind:#x}"), |s| s.to_string())
}

/// What an edit does to its key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EditOp {
    /// Set a value, creating the key and missing parents.
    SetValue { name: String, data: RegData },
    DeleteValue { name: String },
    /// Delete the key and everything below it.
    DeleteKey,
    /// Create the key (and missing parents) without values.
    CreateKey,
}

/// One registry change. `key` is inside the hive, with real control-set
/// names (never `CurrentControlSet`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Edit {
    pub hive: HiveKind,
    pub key: String,
    pub op: EditOp,
}

impl Edit {
    pub fn set(hive: HiveKind, key: impl Into<String>, name: impl Into<String>, data: RegData) -> Edit {
        Edit { hive, key: key.into(), op: EditOp::SetValue { name: name.into(), data } }
    }
    pub fn delete_value(hive: HiveKind, key: impl Into<String>, name: impl Into<String>) -> Edit {
        Edit { hive, key: key.into(), op: EditOp::DeleteValue { name: name.into() } }
    }
    pub fn delete_key(hive: HiveKind, key: impl Into<String>) -> Edit {
        Edit { hive, key: key.into(), op: EditOp::DeleteKey }
    }
    pub fn create_key(hive: HiveKind, key: impl Into<String>) -> Edit {
        Edit { hive, key: key.into(), op: EditOp::CreateKey }
    }

    /// The JSON `op` name.
    pub fn op_name(&self) -> &'static str {
        match self.op {
            EditOp::SetValue { .. } => "set-value",
            EditOp::DeleteValue { .. } => "delete-value",
            EditOp::DeleteKey => "delete-key",
            EditOp::CreateKey => "create-key",
        }
    }

    /// One line, `.reg`-style: what changes where.
    pub fn describe(&self) -> String {
        let root = self.hive.short_root();
        match &self.op {
            EditOp::SetValue { name, data } => {
                format!("set {root}\\{}\\{} = {} ({})", self.key, display_name(name), show_json(&data.json()), data.type_name())
            }
            EditOp::DeleteValue { name } => format!("delete value {root}\\{}\\{}", self.key, display_name(name)),
            EditOp::DeleteKey => format!("delete key {root}\\{}", self.key),
            EditOp::CreateKey => format!("create key {root}\\{}", self.key),
        }
    }
}

/// `(Default)` for the unnamed value.
pub fn display_name(n: &str) -> &str {
    if n.is_empty() {
        "(Default)"
    } else {
        n
    }
}

/// A value as reports show it: numbers in decimal (with hex when large),
/// strings quoted, lists in brackets, `(absent)` for null.
pub fn show_json(v: &J) -> String {
    match v {
        J::Null => "(absent)".into(),
        J::Number(n) => match n.as_u64() {
            Some(x) if x > 9 => format!("{x} ({x:#x})"),
            _ => n.to_string(),
        },
        J::String(s) => format!("\"{s}\""),
        J::Array(a) => format!("[{}]", a.iter().map(show_json).collect::<Vec<_>>().join(", ")),
        other => other.to_string(),
    }
}

impl Serialize for Edit {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut m = s.serialize_map(None)?;
        m.serialize_entry("op", self.op_name())?;
        m.serialize_entry("hive", self.hive.name())?;
        m.serialize_entry("key", &self.key)?;
        match &self.op {
            EditOp::SetValue { name, data } => {
                m.serialize_entry("name", name)?;
                m.serialize_entry("type", &data.type_name())?;
                m.serialize_entry("data", &data.json())?;
            }
            EditOp::DeleteValue { name } => m.serialize_entry("name", name)?,
            EditOp::DeleteKey | EditOp::CreateKey => {}
        }
        m.end()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bytes_of_each_type() {
        assert_eq!(RegData::Dword(3389).to_bytes(), vec![0x3d, 0x0d, 0, 0]);
        assert_eq!(RegData::Sz("a".into()).to_bytes(), vec![b'a', 0, 0, 0]);
        assert_eq!(RegData::MultiSz(vec!["a".into(), "b".into()]).to_bytes(), vec![b'a', 0, 0, 0, b'b', 0, 0, 0, 0, 0]);
        assert_eq!(RegData::Binary(vec![0, 0xff]).kind(), 3);
        assert_eq!(RegData::Qword(1).to_bytes().len(), 8);
    }

    #[test]
    fn raw_round_trips_or_stays_raw() {
        for d in [RegData::Dword(7), RegData::Sz("x y".into()), RegData::MultiSz(vec!["a".into()]), RegData::Qword(1 << 40), RegData::Binary(vec![1, 2])] {
            assert_eq!(RegData::from_raw(d.kind(), &d.to_bytes()), d);
        }
        // A REG_SZ without its terminating NUL does not round-trip: kept byte for byte.
        assert_eq!(RegData::from_raw(1, &[b'a', 0]), RegData::Other(1, vec![b'a', 0]));
        assert_eq!(RegData::from_raw(4, &[1, 2]), RegData::Other(4, vec![1, 2]));
        assert_eq!(RegData::Other(0x20, vec![]).type_name(), "REG_0x20");
    }

    #[test]
    fn json_matches_the_report_schema() {
        let e = Edit::set(HiveKind::System, r"ControlSet001\Control\Terminal Server", "fDenyTSConnections", RegData::Dword(0));
        assert_eq!(
            serde_json::to_string(&e).unwrap(),
            r#"{"op":"set-value","hive":"SYSTEM","key":"ControlSet001\\Control\\Terminal Server","name":"fDenyTSConnections","type":"REG_DWORD","data":0}"#
        );
        let raw = Edit::set(HiveKind::Software, "K", "", RegData::Other(1, vec![0x61]));
        assert_eq!(serde_json::to_value(&raw).unwrap()["data"], serde_json::json!({"hex": "61"}));
        assert_eq!(serde_json::to_string(&Edit::delete_key(HiveKind::Bcd, "Objects\\x")).unwrap(), r#"{"op":"delete-key","hive":"BCD00000000","key":"Objects\\x"}"#);
        assert_eq!(e.describe(), r"set HKLM\SYSTEM\ControlSet001\Control\Terminal Server\fDenyTSConnections = 0 (REG_DWORD)");
    }
}
