//! Windows Registry Editor 5.00 (.reg) text, as regedit writes it.

use super::tree::{Key, Value};

fn escape(s: &str) -> String {
    s.replace('\\', "\\\\").replace('"', "\\\"")
}

/// `"name"=` or `@=`.
fn lhs(v: &Value) -> String {
    if v.name.is_empty() {
        "@=".into()
    } else {
        format!("\"{}\"=", escape(&v.name))
    }
}

/// `hex:` / `hex(N):` list of bytes, wrapped like regedit: lines end in `\`
/// and continue indented by two spaces, keeping lines within 80 columns.
fn hex_list(prefix: &str, b: &[u8]) -> String {
    let mut out = String::from(prefix);
    let mut col = prefix.len();
    for (i, x) in b.iter().enumerate() {
        let last = i + 1 == b.len();
        let item = if last { format!("{x:02x}") } else { format!("{x:02x},") };
        if col + item.len() > 79 && !last {
            out.push_str("\\\r\n  ");
            col = 2;
        }
        out.push_str(&item);
        col += item.len();
    }
    out
}

/// One value line (possibly wrapped), without the final line break.
pub fn value_line(v: &Value) -> String {
    let l = lhs(v);
    let is_sz = v.kind == 1
        && v.raw.len() % 2 == 0
        && v.raw.len() >= 2
        && v.raw[v.raw.len() - 2..] == [0, 0]
        && !v.raw[..v.raw.len() - 2].chunks_exact(2).any(|c| c == [0, 0])
        && String::from_utf16(&v.raw[..v.raw.len() - 2].chunks_exact(2).map(|c| u16::from_le_bytes([c[0], c[1]])).collect::<Vec<_>>())
            // A line break cannot live inside a quoted .reg string: such values go out as hex(1).
            .is_ok_and(|s| !s.contains(['\r', '\n']));
    if is_sz {
        return format!("{l}\"{}\"", escape(&v.string()));
    }
    if let (4, 4) = (v.kind, v.raw.len()) {
        return format!("{l}dword:{:08x}", v.dword().unwrap_or(0));
    }
    let prefix = match v.kind {
        3 => format!("{l}hex:"),
        k => format!("{l}hex({k:x}):"),
    };
    hex_list(&prefix, &v.raw)
}

/// A .reg document for `keys` (each key's full path is `root\path`), CRLF line ends.
pub fn document(root: &str, keys: &[Key]) -> String {
    let mut s = String::from("Windows Registry Editor Version 5.00\r\n");
    for k in keys {
        let full = if k.path.is_empty() { root.to_string() } else { format!("{root}\\{}", k.path) };
        s.push_str(&format!("\r\n[{full}]\r\n"));
        // regedit writes the default value first.
        let mut vals: Vec<&Value> = k.values.iter().collect();
        vals.sort_by_key(|v| !v.name.is_empty());
        for v in vals {
            s.push_str(&value_line(v));
            s.push_str("\r\n");
        }
    }
    s.push_str("\r\n");
    s
}

/// UTF-16LE with BOM, as regedit saves.
pub fn utf16_bytes(doc: &str) -> Vec<u8> {
    let mut out = vec![0xFF, 0xFE];
    out.extend(doc.encode_utf16().flat_map(|u| u.to_le_bytes()));
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v(name: &str, kind: u32, raw: Vec<u8>) -> Value {
        Value { name: name.into(), kind, raw }
    }
    fn w(s: &str) -> Vec<u8> {
        s.encode_utf16().flat_map(|u| u.to_le_bytes()).collect()
    }

    #[test]
    fn lines() {
        assert_eq!(value_line(&v("fDenyTSConnections", 4, vec![1, 0, 0, 0])), "\"fDenyTSConnections\"=dword:00000001");
        assert_eq!(value_line(&v("", 1, w("a\"b\\c\0"))), "@=\"a\\\"b\\\\c\"");
        assert_eq!(value_line(&v("p", 2, w("%x%\0"))), "\"p\"=hex(2):25,00,78,00,25,00,00,00");
        assert_eq!(value_line(&v("q", 11, vec![1, 0, 0, 0, 0, 0, 0, 0])), "\"q\"=hex(b):01,00,00,00,00,00,00,00");
        assert_eq!(value_line(&v("b", 3, vec![])), "\"b\"=hex:");
        // A REG_SZ without its terminating NUL cannot be written as a string.
        assert_eq!(value_line(&v("s", 1, w("ab"))), "\"s\"=hex(1):61,00,62,00");
        let long = value_line(&v("Binary", 3, vec![0xAB; 100]));
        assert!(long.lines().all(|l| l.len() <= 80), "{long}");
        assert!(long.contains("\\\r\n  ab,"));
    }
}

/// One operation of a .reg file.
#[derive(Debug, Clone, PartialEq)]
pub enum RegOp {
    /// `[KEY]`: the key exists afterwards (values follow).
    AddKey { key: String },
    /// `[-KEY]`: the key and its subtree are deleted.
    DeleteKey { key: String },
    /// `"name"=...` / `@=...` (empty name = default value).
    SetValue { key: String, name: String, kind: u32, data: Vec<u8> },
    /// `"name"=-`.
    DeleteValue { key: String, name: String },
}

impl RegOp {
    /// The key the operation is about, as written in the file.
    pub fn key(&self) -> &str {
        match self {
            RegOp::AddKey { key } | RegOp::DeleteKey { key } | RegOp::SetValue { key, .. } | RegOp::DeleteValue { key, .. } => key,
        }
    }
}

/// Text of a .reg file: UTF-16LE with BOM (regedit), UTF-8 with or without BOM.
pub fn decode(bytes: &[u8]) -> crate::error::Result<String> {
    use crate::error::Error;
    if let Some(rest) = bytes.strip_prefix(&[0xFF, 0xFE]) {
        if rest.len() % 2 != 0 {
            return Err(Error::Usage(".reg file: odd number of bytes in UTF-16 text".into()));
        }
        let units: Vec<u16> = rest.chunks_exact(2).map(|c| u16::from_le_bytes([c[0], c[1]])).collect();
        return String::from_utf16(&units).map_err(|_| Error::Usage(".reg file: invalid UTF-16 text".into()));
    }
    let b = bytes.strip_prefix(&[0xEF, 0xBB, 0xBF]).unwrap_or(bytes);
    String::from_utf8(b.to_vec()).map_err(|_| Error::Usage(".reg file: neither UTF-16LE with BOM nor UTF-8".into()))
}

/// Parse a quoted .reg string starting at `s[0] == '"'`: (unescaped, rest after the closing quote).
fn quoted(s: &str) -> Option<(String, &str)> {
    let mut out = String::new();
    let mut it = s.char_indices().skip(1);
    while let Some((i, c)) = it.next() {
        match c {
            '\\' => out.push(it.next()?.1),
            '"' => return Some((out, &s[i + 1..])),
            c => out.push(c),
        }
    }
    None
}

fn hex_bytes(s: &str) -> Option<Vec<u8>> {
    s.split(',').map(str::trim).filter(|x| !x.is_empty()).map(|x| u8::from_str_radix(x, 16).ok()).collect()
}

/// Parse .reg text (`Windows Registry Editor Version 5.00` or `REGEDIT4`)
/// into operations, in file order. Errors name the line.
pub fn parse(text: &str) -> crate::error::Result<Vec<RegOp>> {
    use crate::error::Error;
    let bad = |n: usize, msg: &str| Error::Usage(format!(".reg line {n}: {msg}"));
    // Join continuation lines (a trailing backslash), remembering where each starts.
    let mut lines: Vec<(usize, String)> = Vec::new();
    let mut pending: Option<(usize, String)> = None;
    for (i, raw) in text.lines().enumerate() {
        let line = raw.trim_end_matches('\r');
        let (n, mut acc) = pending.take().unwrap_or((i + 1, String::new()));
        let part = if acc.is_empty() { line } else { line.trim_start() };
        if let Some(stripped) = part.strip_suffix('\\').filter(|_| acc.contains("hex") || part.contains("=hex")) {
            acc.push_str(stripped);
            pending = Some((n, acc));
        } else {
            acc.push_str(part);
            lines.push((n, acc));
        }
    }
    if let Some(p) = pending {
        lines.push(p);
    }
    let mut it = lines.into_iter().filter(|(_, l)| !l.trim().is_empty() && !l.trim_start().starts_with(';'));
    match it.next() {
        Some((_, h)) if h.trim() == "Windows Registry Editor Version 5.00" || h.trim() == "REGEDIT4" => {}
        Some((n, _)) => return Err(bad(n, "not a .reg file (expected \"Windows Registry Editor Version 5.00\")")),
        None => return Err(Error::Usage(".reg file is empty".into())),
    }
    let mut ops = Vec::new();
    let mut key: Option<String> = None;
    for (n, line) in it {
        let l = line.trim();
        if let Some(inner) = l.strip_prefix('[') {
            let inner = inner.strip_suffix(']').ok_or_else(|| bad(n, "key line without a closing ]"))?;
            if let Some(k) = inner.strip_prefix('-') {
                ops.push(RegOp::DeleteKey { key: k.to_string() });
                key = None;
            } else {
                ops.push(RegOp::AddKey { key: inner.to_string() });
                key = Some(inner.to_string());
            }
            continue;
        }
        let k = key.clone().ok_or_else(|| bad(n, "value outside a [key] section"))?;
        let (name, rest) = if let Some(r) = l.strip_prefix('@') {
            (String::new(), r)
        } else if l.starts_with('"') {
            quoted(l).ok_or_else(|| bad(n, "unterminated value name"))?
        } else {
            return Err(bad(n, "expected \"name\"=... or @=..."));
        };
        let data = rest.trim_start().strip_prefix('=').ok_or_else(|| bad(n, "expected = after the value name"))?.trim();
        let op = if data == "-" {
            RegOp::DeleteValue { key: k, name }
        } else if data.starts_with('"') {
            let (s, tail) = quoted(data).ok_or_else(|| bad(n, "unterminated string"))?;
            if !tail.trim().is_empty() && !tail.trim().starts_with(';') {
                return Err(bad(n, "text after the string"));
            }
            RegOp::SetValue { key: k, name, kind: 1, data: s.encode_utf16().chain([0]).flat_map(u16::to_le_bytes).collect() }
        } else if let Some(d) = data.strip_prefix("dword:") {
            let v = u32::from_str_radix(d.trim(), 16).map_err(|_| bad(n, "dword: needs 8 hex digits"))?;
            RegOp::SetValue { key: k, name, kind: 4, data: v.to_le_bytes().to_vec() }
        } else if let Some(d) = data.strip_prefix("hex:") {
            RegOp::SetValue { key: k, name, kind: 3, data: hex_bytes(d).ok_or_else(|| bad(n, "bad hex byte list"))? }
        } else if let Some(d) = data.strip_prefix("hex(") {
            let (t, list) = d.split_once("):").ok_or_else(|| bad(n, "expected hex(N):"))?;
            let kind = u32::from_str_radix(t, 16).map_err(|_| bad(n, "bad type in hex(N)"))?;
            RegOp::SetValue { key: k, name, kind, data: hex_bytes(list).ok_or_else(|| bad(n, "bad hex byte list"))? }
        } else {
            return Err(bad(n, "unknown data (expected \"string\", dword:, hex:, hex(N): or -)"));
        };
        ops.push(op);
    }
    Ok(ops)
}

#[cfg(test)]
mod parse_tests {
    use super::*;

    #[test]
    fn parses_what_regedit_writes() {
        let v = |name: &str, kind, raw: Vec<u8>| Value { name: name.into(), kind, raw };
        let keys = vec![Key {
            path: r"ControlSet001\Control\Terminal Server".into(),
            name: "Terminal Server".into(),
            last_write: None,
            class: None,
            values: vec![
                v("", 1, "dflt\"q\\".encode_utf16().chain([0]).flat_map(u16::to_le_bytes).collect()),
                v("fDenyTSConnections", 4, 1u32.to_le_bytes().to_vec()),
                v("Big", 3, vec![0xab; 100]),
                v("Multi", 7, "a\0b\0\0".encode_utf16().flat_map(u16::to_le_bytes).collect()),
                // Found by fuzzing: a line break cannot be written inside a quoted string.
                v("Lines", 1, "a\r\nb\0".encode_utf16().flat_map(u16::to_le_bytes).collect()),
            ],
            subkeys: vec![],
        }];
        let doc = document(r"HKEY_LOCAL_MACHINE\SYSTEM", &keys);
        let text = decode(&utf16_bytes(&doc)).unwrap();
        let ops = parse(&text).unwrap();
        let k = r"HKEY_LOCAL_MACHINE\SYSTEM\ControlSet001\Control\Terminal Server".to_string();
        assert_eq!(ops[0], RegOp::AddKey { key: k.clone() });
        for (op, val) in ops[1..].iter().zip(&keys[0].values) {
            assert_eq!(op, &RegOp::SetValue { key: k.clone(), name: val.name.clone(), kind: val.kind, data: val.raw.clone() });
        }
        let ops = parse("REGEDIT4\n[-HKLM\\SOFTWARE\\X]\n[HKLM\\SOFTWARE\\Y]\n\"gone\"=-\n; comment\n").unwrap();
        assert_eq!(ops[0], RegOp::DeleteKey { key: r"HKLM\SOFTWARE\X".into() });
        assert_eq!(ops[2], RegOp::DeleteValue { key: r"HKLM\SOFTWARE\Y".into(), name: "gone".into() });
        assert!(parse("Windows Registry Editor Version 5.00\n\"a\"=dword:1\n").unwrap_err().to_string().contains("line 2: value outside"));
        assert!(parse("hello\n").unwrap_err().to_string().contains("not a .reg file"));
        assert!(parse("REGEDIT4\n[K]\n\"a\"=hex:zz\n").unwrap_err().to_string().contains("line 3: bad hex"));
    }
}
