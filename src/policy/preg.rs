//! `Registry.pol`: the PReg format of the registry half of a Group Policy
//! Object ([MS-GPREG] 2.2.1; "Registry Policy File Format").
//!
//! Layout: an 8-byte header (`PReg`, then version 1 as a little-endian u32),
//! then instructions, each `[key;value;type;size;data]` where `[`, `;` and `]`
//! are UTF-16LE characters, key and value are UTF-16LE strings ending in a NUL
//! unit, type and size are little-endian u32 and data is `size` raw bytes.
//! Value names starting with `**` are directives (delete a value, delete all
//! values, ...), see [`Directive`].
//!
//! Every length is checked against the bytes left before anything is
//! allocated; every failure is one [`Error::Corrupt`] naming the offset.

use crate::error::{Error, Layer, Result};

/// `PReg`.
pub const SIGNATURE: &[u8; 4] = b"PReg";
/// The only version Windows writes.
pub const VERSION: u32 = 1;
/// Longest key or value name read, in UTF-16 units (registry keys are at
/// most 255 characters per component; `**DeleteValues` lists can be longer).
pub const MAX_STRING_UNITS: usize = 32 * 1024;
/// Largest file parsed (Windows' own files are a few KiB).
pub const MAX_FILE: u64 = 16 << 20;

/// What an instruction does, decoded from the `**` value-name prefixes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Directive {
    /// Set value `name` (the common case: no prefix).
    Set,
    /// `**del.NAME`: delete value NAME.
    DeleteValue(String),
    /// `**delvals.`: delete every value of the key.
    DeleteAllValues,
    /// `**DeleteValues` with data `a;b;c`: delete those values.
    DeleteValues(Vec<String>),
    /// `**DeleteKeys` with data `a;b`: delete those subkeys.
    DeleteKeys(Vec<String>),
    /// `**SecureKey` with data 1/0: secure the key (ACL) or not.
    SecureKey(bool),
    /// `**soft.NAME`: set NAME only when it does not exist yet.
    Soft(String),
    /// Some other `**` name (kept, not interpreted).
    Unknown,
}

/// One `[key;value;type;size;data]` instruction.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PolEntry {
    /// Key path below HKLM (machine) or HKCU (user), e.g. `Software\Policies\...`.
    pub key: String,
    /// Value name as stored (directives keep their `**` prefix).
    pub value: String,
    /// Registry type (REG_SZ = 1, REG_DWORD = 4, ...).
    pub ty: u32,
    pub data: Vec<u8>,
    /// File offset of the `[`.
    pub offset: u64,
    /// File offset of the first data byte.
    pub data_offset: u64,
}

impl PolEntry {
    /// The directive this instruction carries.
    pub fn directive(&self) -> Directive {
        let v = &self.value;
        let lower = v.to_ascii_lowercase();
        if !lower.starts_with("**") {
            return Directive::Set;
        }
        let list = || {
            crate::bytes::utf16le(&self.data).split(';').map(str::trim).filter(|s| !s.is_empty()).map(str::to_string).collect::<Vec<_>>()
        };
        if let Some(rest) = prefix(v, "**del.") {
            Directive::DeleteValue(rest.to_string())
        } else if lower.starts_with("**delvals") {
            Directive::DeleteAllValues
        } else if lower == "**deletevalues" {
            Directive::DeleteValues(list())
        } else if lower == "**deletekeys" {
            Directive::DeleteKeys(list())
        } else if lower == "**securekey" {
            Directive::SecureKey(self.dword() == Some(1))
        } else if let Some(rest) = prefix(v, "**soft.") {
            Directive::Soft(rest.to_string())
        } else {
            Directive::Unknown
        }
    }

    /// The value name this instruction writes (a plain set or `**soft.`).
    pub fn target_name(&self) -> Option<String> {
        match self.directive() {
            Directive::Set => Some(self.value.clone()),
            Directive::Soft(n) => Some(n),
            _ => None,
        }
    }

    /// The data as a DWORD, when the type is REG_DWORD and the size 4.
    pub fn dword(&self) -> Option<u32> {
        (self.ty == 4 && self.data.len() == 4).then(|| crate::bytes::le_u32(&self.data, 0))
    }
}

fn prefix<'a>(s: &'a str, p: &str) -> Option<&'a str> {
    (s.len() >= p.len() && s.is_char_boundary(p.len()) && s[..p.len()].eq_ignore_ascii_case(p)).then(|| &s[p.len()..])
}

/// A parsed `Registry.pol`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PolFile {
    pub entries: Vec<PolEntry>,
}

struct Cursor<'a> {
    b: &'a [u8],
    at: usize,
}

impl Cursor<'_> {
    fn err(&self, at: usize, msg: impl Into<String>) -> Error {
        Error::corrupt(Layer::PolicyPreg, at as u64, msg)
    }

    fn unit(&mut self, what: &str) -> Result<u16> {
        match self.b.get(self.at..self.at + 2) {
            Some(u) => {
                self.at += 2;
                Ok(u16::from_le_bytes([u[0], u[1]]))
            }
            None => Err(self.err(self.at, format!("file ends inside an instruction (expected {what})"))),
        }
    }

    fn expect(&mut self, ch: u8, what: &str) -> Result<()> {
        let at = self.at;
        let u = self.unit(what)?;
        if u != ch as u16 {
            return Err(self.err(at, format!("expected '{}' {what}, found {u:#06x}", ch as char)));
        }
        Ok(())
    }

    fn u32(&mut self, what: &str) -> Result<u32> {
        match self.b.get(self.at..self.at + 4) {
            Some(u) => {
                self.at += 4;
                Ok(u32::from_le_bytes([u[0], u[1], u[2], u[3]]))
            }
            None => Err(self.err(self.at, format!("file ends inside the {what} field"))),
        }
    }

    /// A UTF-16LE string ending in a NUL unit (consumed), or directly at a
    /// `;` (left for the caller), as some writers omit the NUL.
    fn string(&mut self, what: &str) -> Result<String> {
        let start = self.at;
        let mut units = Vec::new();
        loop {
            let at = self.at;
            let u = self.unit(what)?;
            match u {
                0 => break,
                0x3B => {
                    self.at = at;
                    break;
                }
                _ if units.len() >= MAX_STRING_UNITS => return Err(self.err(start, format!("{what} longer than {MAX_STRING_UNITS} characters"))),
                u => units.push(u),
            }
        }
        String::from_utf16(&units).map_err(|_| self.err(start, format!("{what} is not valid UTF-16")))
    }
}

impl PolFile {
    /// Parse a whole `Registry.pol`.
    pub fn parse(b: &[u8]) -> Result<PolFile> {
        if b.len() as u64 > MAX_FILE {
            return Err(Error::unsupported(Layer::PolicyPreg, 0, format!("{} bytes: larger than the {MAX_FILE}-byte limit for a Registry.pol", b.len())));
        }
        if b.len() < 8 || &b[..4] != SIGNATURE {
            return Err(Error::corrupt(Layer::PolicyPreg, 0, "not a Registry.pol file (no PReg signature)"));
        }
        let version = crate::bytes::le_u32(b, 4);
        if version != VERSION {
            return Err(Error::unsupported(Layer::PolicyPreg, 4, format!("PReg version {version} (only version 1 exists)")));
        }
        let mut c = Cursor { b, at: 8 };
        let mut entries = Vec::new();
        while c.at < b.len() {
            let offset = c.at;
            c.expect(b'[', "at the start of an instruction")?;
            let key = c.string("key")?;
            c.expect(b';', "after the key")?;
            let value = c.string("value name")?;
            c.expect(b';', "after the value name")?;
            let ty = c.u32("type")?;
            c.expect(b';', "after the type")?;
            let size_at = c.at;
            let size = c.u32("size")? as usize;
            c.expect(b';', "after the size")?;
            let data_offset = c.at;
            let left = b.len() - c.at;
            if size > left {
                return Err(c.err(size_at, format!("data size {size} is larger than the {left} bytes left in the file")));
            }
            let data = b[c.at..c.at + size].to_vec();
            c.at += size;
            c.expect(b']', "at the end of the instruction")?;
            entries.push(PolEntry { key, value, ty, data, offset: offset as u64, data_offset: data_offset as u64 });
        }
        Ok(PolFile { entries })
    }

    /// The file's bytes (header and every instruction), as Windows writes them.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = SIGNATURE.to_vec();
        out.extend_from_slice(&VERSION.to_le_bytes());
        let ch = |out: &mut Vec<u8>, c: u8| out.extend_from_slice(&[c, 0]);
        let s = |out: &mut Vec<u8>, t: &str| out.extend(t.encode_utf16().chain([0]).flat_map(u16::to_le_bytes));
        for e in &self.entries {
            ch(&mut out, b'[');
            s(&mut out, &e.key);
            ch(&mut out, b';');
            s(&mut out, &e.value);
            ch(&mut out, b';');
            out.extend_from_slice(&e.ty.to_le_bytes());
            ch(&mut out, b';');
            out.extend_from_slice(&(e.data.len() as u32).to_le_bytes());
            ch(&mut out, b';');
            out.extend_from_slice(&e.data);
            ch(&mut out, b']');
        }
        out
    }

    /// The last instruction that writes value `name` of `key` (later
    /// instructions win), with whether a later `**del`/`**delvals` removes it.
    pub fn lookup(&self, key: &str, name: &str) -> Option<&PolEntry> {
        let mut found = None;
        for e in &self.entries {
            if !e.key.trim_matches('\\').eq_ignore_ascii_case(key.trim_matches('\\')) {
                continue;
            }
            match e.directive() {
                Directive::Set | Directive::Soft(_) if e.target_name().is_some_and(|n| n.eq_ignore_ascii_case(name)) => found = Some(e),
                Directive::DeleteValue(n) if n.eq_ignore_ascii_case(name) => found = Some(e),
                Directive::DeleteValues(ns) if ns.iter().any(|n| n.eq_ignore_ascii_case(name)) => found = Some(e),
                Directive::DeleteAllValues => found = Some(e),
                _ => {}
            }
        }
        found
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(key: &str, value: &str, ty: u32, data: Vec<u8>) -> PolEntry {
        PolEntry { key: key.into(), value: value.into(), ty, data, offset: 0, data_offset: 0 }
    }

    fn sample() -> Vec<u8> {
        PolFile {
            entries: vec![
                entry(r"Software\Policies\Microsoft\Windows NT\Terminal Services", "fDenyTSConnections", 4, 1u32.to_le_bytes().to_vec()),
                entry(r"Software\Policies\Microsoft\Windows NT\Terminal Services", "**del.UserAuthentication", 1, vec![b' ', 0, 0, 0]),
                entry(r"Software\Policies\X", "**DeleteValues", 1, "a;b\0".encode_utf16().flat_map(u16::to_le_bytes).collect()),
            ],
        }
        .to_bytes()
    }

    #[test]
    fn hand_built_file_parses_with_offsets() {
        let b = sample();
        let p = PolFile::parse(&b).unwrap();
        assert_eq!(p.entries.len(), 3);
        let e = &p.entries[0];
        assert_eq!(e.offset, 8);
        assert_eq!(e.dword(), Some(1));
        assert_eq!(&b[e.data_offset as usize..e.data_offset as usize + 4], &1u32.to_le_bytes());
        assert_eq!(e.directive(), Directive::Set);
        assert_eq!(p.entries[1].directive(), Directive::DeleteValue("UserAuthentication".into()));
        assert_eq!(p.entries[2].directive(), Directive::DeleteValues(vec!["a".into(), "b".into()]));
        assert_eq!(p.lookup(r"software\policies\microsoft\windows nt\terminal services", "FDENYTSCONNECTIONS").and_then(|e| e.dword()), Some(1));
        assert!(matches!(p.lookup(r"Software\Policies\X", "b").map(|e| e.directive()), Some(Directive::DeleteValues(_))));
        // Round trip: the writer and the reader agree byte for byte.
        assert_eq!(PolFile { entries: p.entries.clone() }.to_bytes(), b);
    }

    #[test]
    fn directives() {
        let d = |v: &str, data: Vec<u8>| entry("K", v, 4, data).directive();
        assert_eq!(d("**delvals.", vec![]), Directive::DeleteAllValues);
        assert_eq!(d("**SecureKey", 1u32.to_le_bytes().to_vec()), Directive::SecureKey(true));
        assert_eq!(d("**soft.Foo", vec![]), Directive::Soft("Foo".into()));
        assert_eq!(d("**Comment:x", vec![]), Directive::Unknown);
        let dk = entry("K", "**DeleteKeys", 1, "Sub1;Sub2\0".encode_utf16().flat_map(u16::to_le_bytes).collect());
        assert_eq!(dk.directive(), Directive::DeleteKeys(vec!["Sub1".into(), "Sub2".into()]));
    }

    #[test]
    fn empty_body_is_valid() {
        assert_eq!(PolFile::parse(b"PReg\x01\0\0\0").unwrap().entries.len(), 0);
    }

    #[test]
    fn hostile_files_give_one_line_errors_with_offsets() {
        let b = sample();
        let msg = |bytes: &[u8]| PolFile::parse(bytes).unwrap_err().to_string();
        assert_eq!(msg(b"PRef\x01\0\0\0"), "policy/preg at offset 0x0: not a Registry.pol file (no PReg signature)");
        assert!(msg(b"PReg\x02\0\0\0").starts_with("policy/preg at offset 0x4: unsupported: PReg version 2"));
        // Every truncation of a valid file inside an instruction fails
        // cleanly (never panics); at an instruction boundary it is valid.
        let starts: Vec<usize> = PolFile::parse(&b).unwrap().entries.iter().map(|e| e.offset as usize).collect();
        for n in 9..b.len() {
            if starts.contains(&n) {
                assert!(PolFile::parse(&b[..n]).is_ok());
                continue;
            }
            let m = msg(&b[..n]);
            assert!(m.starts_with("policy/preg at offset 0x") && !m.contains('\n'), "{n}: {m}");
        }
        // A size field far past the end.
        let mut big = b.clone();
        let e = PolFile::parse(&b).unwrap().entries[0].clone();
        let size_at = e.data_offset as usize - 6;
        big[size_at..size_at + 4].copy_from_slice(&u32::MAX.to_le_bytes());
        assert_eq!(msg(&big), format!("policy/preg at offset {size_at:#x}: data size 4294967295 is larger than the {} bytes left in the file", b.len() - e.data_offset as usize));
        // A missing ']' (overwritten).
        let mut nb = b.clone();
        let end = e.data_offset as usize + 4;
        nb[end] = b'X';
        assert_eq!(msg(&nb), format!("policy/preg at offset {end:#x}: expected ']' at the end of the instruction, found 0x0058"));
        // An unpaired surrogate in a key.
        let mut s = b"PReg\x01\0\0\0[\0".to_vec();
        s.extend_from_slice(&[0x00, 0xD8, 0, 0, b';', 0]);
        assert!(msg(&s).contains("key is not valid UTF-16"));
        // A key that never ends is bounded.
        let mut long = b"PReg\x01\0\0\0[\0".to_vec();
        long.extend(std::iter::repeat_n([b'A', 0], MAX_STRING_UNITS + 2).flatten());
        assert!(msg(&long).contains("longer than"));
    }
}
