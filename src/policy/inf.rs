//! `GptTmpl.inf`: the security template of a Group Policy Object (the
//! "Security Settings" half: user rights, registry values, account
//! policies, service start modes).
//!
//! The file is an INI-style text, UTF-16LE with a byte-order mark as
//! secedit writes it (`[Unicode] Unicode=yes`), or ANSI/UTF-8 when edited by
//! hand. Sections the checks read:
//!
//! * `[Privilege Rights]`: `SeDenyRemoteInteractiveLogonRight = *S-1-5-32-544,Guest`
//!   (SIDs with `*`, or account names);
//! * `[Registry Values]`: `MACHINE\System\...\Name=4,1` (type, then data);
//! * `[System Access]`: `LockoutBadCount = 5`, `EnableAdminAccount = 0`, ...;
//! * `[Service General Setting]`: `"TermService",4,""` (name, start mode, SDDL).
//!
//! Every failure is one [`Error::Corrupt`] naming the byte offset of the line.

use crate::error::{Error, Layer, Result};

/// Largest template parsed (secedit writes a few KiB).
pub const MAX_FILE: u64 = 4 << 20;
/// Longest line, in characters.
pub const MAX_LINE: usize = 64 * 1024;

/// One `name = value` line (or a bare line, e.g. in `[Service General Setting]`:
/// `name` is the whole line and `value` empty).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InfLine {
    pub name: String,
    pub value: String,
    /// Byte offset of the line in the file.
    pub offset: u64,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Section {
    pub name: String,
    pub lines: Vec<InfLine>,
}

/// A principal of a user right: a SID (`*S-1-...`) or an account name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Principal {
    Sid(String),
    Name(String),
}

impl Principal {
    /// The SID string: the SID itself, or a well-known group's name resolved
    /// (English names; secedit writes SIDs for these anyway).
    pub fn sid(&self) -> Option<String> {
        match self {
            Principal::Sid(s) => Some(s.clone()),
            Principal::Name(n) => {
                let n = n.rsplit('\\').next().unwrap_or(n);
                WELL_KNOWN_NAMES.iter().find(|(name, _)| name.eq_ignore_ascii_case(n)).map(|(_, s)| s.to_string())
            }
        }
    }
}

impl std::fmt::Display for Principal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Principal::Sid(s) => write!(f, "*{s}"),
            Principal::Name(n) => f.write_str(n),
        }
    }
}

const WELL_KNOWN_NAMES: &[(&str, &str)] = &[
    ("Everyone", "S-1-1-0"),
    ("Authenticated Users", "S-1-5-11"),
    ("Local account", "S-1-5-113"),
    ("Local account and member of Administrators group", "S-1-5-114"),
    ("Administrators", "S-1-5-32-544"),
    ("Users", "S-1-5-32-545"),
    ("Guests", "S-1-5-32-546"),
    ("Remote Desktop Users", "S-1-5-32-555"),
    ("Backup Operators", "S-1-5-32-551"),
];

/// `[Registry Values]` line: `MACHINE\key\...\name=type,data`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RegValueLine {
    /// Key path without the `MACHINE\` root, e.g. `System\CurrentControlSet\Control\Lsa`.
    pub key: String,
    pub name: String,
    pub ty: u32,
    /// The data text as written (a DWORD in decimal, a string, a comma list).
    pub data: String,
    pub offset: u64,
}

impl RegValueLine {
    pub fn dword(&self) -> Option<u32> {
        (self.ty == 4).then(|| parse_u32(self.data.trim())).flatten()
    }
}

/// `[Service General Setting]` line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServiceLine {
    pub name: String,
    /// 2 automatic, 3 manual, 4 disabled.
    pub start: u32,
    pub offset: u64,
}

fn parse_u32(s: &str) -> Option<u32> {
    match s.strip_prefix("0x").or_else(|| s.strip_prefix("0X")) {
        Some(h) => u32::from_str_radix(h, 16).ok(),
        None => s.parse::<u32>().ok().or_else(|| s.parse::<i32>().ok().map(|v| v as u32)),
    }
}

/// A parsed security template.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SecTemplate {
    pub sections: Vec<Section>,
}

/// The text's lines with the byte offset each starts at.
fn decode(b: &[u8]) -> Result<Vec<(u64, String)>> {
    let err = |at: u64, msg: &str| Error::corrupt(Layer::PolicyInf, at, msg.to_string());
    let mut lines = Vec::new();
    let utf16 = b.starts_with(&[0xFF, 0xFE]) || (b.len() >= 2 && b[0] != 0 && b[1] == 0);
    if utf16 {
        let start = if b.starts_with(&[0xFF, 0xFE]) { 2 } else { 0 };
        if (b.len() - start) % 2 != 0 {
            return Err(err(b.len() as u64 - 1, "UTF-16 text with an odd number of bytes"));
        }
        let units: Vec<u16> = b[start..].chunks_exact(2).map(|c| u16::from_le_bytes([c[0], c[1]])).collect();
        let mut at = 0usize;
        for line in units.split(|&u| u == 0x0A) {
            let off = (start + 2 * at) as u64;
            at += line.len() + 1;
            if line.len() > MAX_LINE {
                return Err(err(off, "line longer than 65536 characters"));
            }
            let s = String::from_utf16(line).map_err(|_| err(off, "line is not valid UTF-16"))?;
            lines.push((off, s));
        }
    } else {
        let start = if b.starts_with(&[0xEF, 0xBB, 0xBF]) { 3 } else { 0 };
        let mut at = start;
        for line in b[start..].split(|&c| c == b'\n') {
            let off = at as u64;
            at += line.len() + 1;
            if line.len() > MAX_LINE {
                return Err(err(off, "line longer than 65536 characters"));
            }
            if line.contains(&0) {
                return Err(err(off, "NUL byte in an 8-bit text line (not a security template)"));
            }
            // UTF-8 when it is, else the ANSI code page (Latin-1 here).
            let s = match std::str::from_utf8(line) {
                Ok(s) => s.to_string(),
                Err(_) => line.iter().map(|&c| c as char).collect(),
            };
            lines.push((off, s));
        }
    }
    Ok(lines)
}

impl SecTemplate {
    pub fn parse(b: &[u8]) -> Result<SecTemplate> {
        if b.len() as u64 > MAX_FILE {
            return Err(Error::unsupported(Layer::PolicyInf, 0, format!("{} bytes: larger than the {MAX_FILE}-byte limit for a security template", b.len())));
        }
        let mut sections: Vec<Section> = Vec::new();
        for (off, raw) in decode(b)? {
            let line = raw.trim_matches(|c: char| c.is_whitespace() || c == '\u{feff}');
            if line.is_empty() || line.starts_with(';') {
                continue;
            }
            if let Some(rest) = line.strip_prefix('[') {
                let Some(name) = rest.strip_suffix(']') else {
                    return Err(Error::corrupt(Layer::PolicyInf, off, "section header without its closing ']'"));
                };
                sections.push(Section { name: name.trim().to_string(), lines: Vec::new() });
                continue;
            }
            let Some(sec) = sections.last_mut() else {
                return Err(Error::corrupt(Layer::PolicyInf, off, "text before the first [section]: not a security template"));
            };
            let (name, value) = match line.split_once('=') {
                Some((n, v)) => (n.trim().to_string(), v.trim().to_string()),
                None => (line.to_string(), String::new()),
            };
            sec.lines.push(InfLine { name, value, offset: off });
        }
        if sections.is_empty() {
            return Err(Error::corrupt(Layer::PolicyInf, 0, "no [section]: not a security template"));
        }
        Ok(SecTemplate { sections })
    }

    /// Lines of section `name` (case-insensitive; repeated sections joined).
    pub fn section(&self, name: &str) -> impl Iterator<Item = &InfLine> {
        let name = name.to_string();
        self.sections.iter().filter(move |s| s.name.eq_ignore_ascii_case(&name)).flat_map(|s| s.lines.iter())
    }

    /// `[Privilege Rights]`: each right with its principals (an empty list
    /// means "nobody": the GPO removes the right from everyone).
    pub fn privilege_rights(&self) -> Vec<(String, Vec<Principal>, u64)> {
        self.section("Privilege Rights")
            .map(|l| {
                let who = l
                    .value
                    .split(',')
                    .map(|p| p.trim().trim_matches('"').trim())
                    .filter(|p| !p.is_empty())
                    .map(|p| match p.strip_prefix('*') {
                        Some(s) => Principal::Sid(s.trim().to_string()),
                        None if p.to_ascii_uppercase().starts_with("S-1-") => Principal::Sid(p.to_string()),
                        None => Principal::Name(p.to_string()),
                    })
                    .collect();
                (l.name.clone(), who, l.offset)
            })
            .collect()
    }

    /// `[Registry Values]` with a `MACHINE\` root; other lines are errors.
    pub fn registry_values(&self) -> Result<Vec<RegValueLine>> {
        let mut out = Vec::new();
        for l in self.section("Registry Values") {
            let bad = |m: &str| Error::corrupt(Layer::PolicyInf, l.offset, format!("[Registry Values] {}: {m}", l.name));
            let path = l.name.trim_matches('"');
            let Some((root, rest)) = path.split_once('\\') else { return Err(bad("no MACHINE\\ root")) };
            if !root.eq_ignore_ascii_case("MACHINE") {
                continue; // USER\ and others: not machine settings
            }
            let Some((key, name)) = rest.rsplit_once('\\') else { return Err(bad("no value name")) };
            let (ty, data) = l.value.split_once(',').unwrap_or((l.value.as_str(), ""));
            let ty = parse_u32(ty.trim()).ok_or_else(|| bad("type is not a number"))?;
            out.push(RegValueLine { key: key.to_string(), name: name.to_string(), ty, data: data.trim().trim_matches('"').to_string(), offset: l.offset });
        }
        Ok(out)
    }

    /// `[System Access]` numeric settings (`LockoutBadCount`, `EnableAdminAccount`, ...).
    pub fn system_access(&self, name: &str) -> Option<u32> {
        self.section("System Access").filter(|l| l.name.eq_ignore_ascii_case(name)).last().and_then(|l| parse_u32(&l.value))
    }

    /// `[Service General Setting]`: `"Name",start,"SDDL"`.
    pub fn services(&self) -> Result<Vec<ServiceLine>> {
        let mut out = Vec::new();
        for l in self.section("Service General Setting") {
            let whole = if l.value.is_empty() { l.name.clone() } else { format!("{}={}", l.name, l.value) };
            let mut parts = whole.splitn(3, ',');
            let name = parts.next().unwrap_or_default().trim().trim_matches('"').to_string();
            let start = parts
                .next()
                .and_then(|s| parse_u32(s.trim()))
                .ok_or_else(|| Error::corrupt(Layer::PolicyInf, l.offset, format!("[Service General Setting] {name}: no start mode")))?;
            out.push(ServiceLine { name, start, offset: l.offset });
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const TEXT: &str = "[Unicode]\r\nUnicode=yes\r\n[System Access]\r\nLockoutBadCount = 5\r\nEnableAdminAccount = 0\r\n[Privilege Rights]\r\nSeDenyRemoteInteractiveLogonRight = *S-1-5-32-544,Guest\r\nSeRemoteInteractiveLogonRight =\r\n; comment\r\n[Registry Values]\r\nMACHINE\\System\\CurrentControlSet\\Control\\Lsa\\LmCompatibilityLevel=4,5\r\nMACHINE\\Software\\X\\Name=1,\"a b\"\r\n[Service General Setting]\r\n\"TermService\",4,\"\"\r\n[Version]\r\nsignature=\"$CHICAGO$\"\r\nRevision=1\r\n";

    fn utf16(s: &str) -> Vec<u8> {
        [0xFF, 0xFE].into_iter().chain(s.encode_utf16().flat_map(u16::to_le_bytes)).collect()
    }

    #[test]
    fn utf16_and_ansi_read_the_same() {
        let a = SecTemplate::parse(&utf16(TEXT)).unwrap();
        let b = SecTemplate::parse(TEXT.as_bytes()).unwrap();
        assert_eq!(a.sections.len(), 6);
        for t in [&a, &b] {
            let rights = t.privilege_rights();
            assert_eq!(rights[0].0, "SeDenyRemoteInteractiveLogonRight");
            assert_eq!(rights[0].1, vec![Principal::Sid("S-1-5-32-544".into()), Principal::Name("Guest".into())]);
            assert!(rights[1].1.is_empty());
            let rv = t.registry_values().unwrap();
            assert_eq!((rv[0].key.as_str(), rv[0].name.as_str(), rv[0].ty, rv[0].dword()), (r"System\CurrentControlSet\Control\Lsa", "LmCompatibilityLevel", 4, Some(5)));
            assert_eq!(rv[1].data, "a b");
            assert_eq!(t.system_access("lockoutbadcount"), Some(5));
            assert_eq!(t.system_access("EnableAdminAccount"), Some(0));
            assert_eq!(t.services().unwrap(), vec![ServiceLine { name: "TermService".into(), start: 4, offset: t.services().unwrap()[0].offset }]);
        }
        // Offsets are byte offsets of the line in each encoding.
        let off = b.privilege_rights()[0].2 as usize;
        assert!(TEXT[off..].starts_with("SeDenyRemote"));
        let off16 = a.privilege_rights()[0].2 as usize;
        assert_eq!(off16, 2 + 2 * off);
    }

    #[test]
    fn well_known_names_resolve() {
        assert_eq!(Principal::Name("BUILTIN\\Administrators".into()).sid().as_deref(), Some("S-1-5-32-544"));
        assert_eq!(Principal::Name("Guest".into()).sid(), None);
    }

    #[test]
    fn hostile_templates_give_one_line_errors() {
        let msg = |b: &[u8]| SecTemplate::parse(b).unwrap_err().to_string();
        assert_eq!(msg(b"[Unicode\r\n"), "policy/inf at offset 0x0: section header without its closing ']'");
        assert_eq!(msg(b"\r\nfoo=1\r\n"), "policy/inf at offset 0x2: text before the first [section]: not a security template");
        assert_eq!(msg(b""), "policy/inf at offset 0x0: no [section]: not a security template");
        assert_eq!(msg(&[0xFF, 0xFE, b'[', 0, 0x00]), "policy/inf at offset 0x4: UTF-16 text with an odd number of bytes");
        assert!(msg(&[0xFF, 0xFE, b'[', 0, 0x00, 0xD8]).contains("not valid UTF-16"));
        assert!(msg(b"[a]\nx\0y\n").contains("NUL byte"));
        let t = SecTemplate::parse(b"[Registry Values]\nMACHINE\\x=abc,1\n").unwrap();
        assert_eq!(t.registry_values().unwrap_err().to_string(), "policy/inf at offset 0x12: [Registry Values] MACHINE\\x: no value name");
        let t = SecTemplate::parse(b"[Service General Setting]\nTermService\n").unwrap();
        assert!(t.services().unwrap_err().to_string().contains("no start mode"));
        let long = [b"[a]\n".as_slice(), &vec![b'x'; MAX_LINE + 1]].concat();
        assert!(msg(&long).contains("longer than"));
    }
}
