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
        && String::from_utf16(&v.raw[..v.raw.len() - 2].chunks_exact(2).map(|c| u16::from_le_bytes([c[0], c[1]])).collect::<Vec<_>>()).is_ok();
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
