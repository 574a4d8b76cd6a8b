//! Errors for machines: with `--json` (or `audit --format json|jsonl`) a
//! failure is one JSON object on standard output,
//! `{"error": {"layer": ..., "offset": ..., "message": ...}}`, exit 2; the
//! layer and offset come from the library's typed [`Error`] when there is one
//! in the chain. Messages never carry a URL's query string (SAS tokens).

use rdprescue::error::Error;
use serde_json::{json, Value};
use std::ffi::OsString;

/// Whether the command line asks for JSON output: `--json` anywhere before a
/// `--` separator, or `--format json` / `--format jsonl` (audit).
pub fn wanted(args: impl IntoIterator<Item = OsString>) -> bool {
    let args: Vec<OsString> = args.into_iter().skip(1).take_while(|a| a != "--").collect();
    args.iter().enumerate().any(|(i, a)| {
        let a = a.to_string_lossy();
        a == "--json"
            || a == "--format=json"
            || a == "--format=jsonl"
            || (a == "--format" && args.get(i + 1).is_some_and(|n| n == "json" || n == "jsonl"))
    })
}

/// Layer and offset of the first typed error in the chain (looking through
/// `Context` wrappers).
fn layer_offset(e: &Error) -> (Option<String>, Option<u64>) {
    match e {
        Error::Corrupt { layer, offset, .. } | Error::Unsupported { layer, offset, .. } | Error::Io { layer, offset, .. } | Error::MissingParent { layer, offset, .. } => {
            (Some(layer.to_string()), Some(*offset))
        }
        Error::Open { layer, .. } | Error::NotFound { layer, .. } | Error::Refused { layer, .. } | Error::Output { layer, .. } => (Some(layer.to_string()), None),
        Error::Usage(_) => (Some("usage".into()), None),
        Error::Context { source, .. } => layer_offset(source),
    }
}

/// The JSON error object for `e`.
pub fn to_json(e: &anyhow::Error) -> Value {
    let (layer, offset) = e.chain().find_map(|c| c.downcast_ref::<Error>()).map_or((None, None), layer_offset);
    json!({"error": {"layer": layer, "offset": offset, "message": redact(&super::one_line(e))}})
}

fn emit(v: &Value) {
    let mut s = v.to_string();
    s.push('\n');
    let _ = super::emit(s.as_bytes());
}

/// Print `e` as the JSON error object on standard output.
pub fn print(e: &anyhow::Error) {
    emit(&to_json(e));
}

/// A command-line parse error (clap's text: its first line, without `error: `).
pub fn print_usage(clap_text: &str) {
    let first = clap_text.lines().next().unwrap_or_default();
    let msg = first.strip_prefix("error: ").unwrap_or(first);
    emit(&json!({"error": {"layer": "usage", "offset": null, "message": redact(msg)}}));
}

/// A panic that escaped (its message went to stderr through the panic hook).
pub fn print_internal() {
    emit(&json!({"error": {"layer": "internal", "offset": null, "message": "internal error (see standard error)"}}));
}

/// `text` with the query string and fragment of every http(s) URL removed
/// (a SAS token is a credential).
pub fn redact(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(at) = find_url(rest) {
        out.push_str(&rest[..at]);
        let url = &rest[at..];
        let end = url.find(|c: char| c.is_whitespace() || c == '"' || c == '\'' || c == '>' || c == ')').unwrap_or(url.len());
        // Punctuation that ends a sentence or a message part is not the URL's.
        let end = url[..end].trim_end_matches([':', ',', ';', '.']).len();
        let (u, tail) = url.split_at(end);
        out.push_str(u.split(['?', '#']).next().unwrap_or(u));
        rest = tail;
    }
    out.push_str(rest);
    out
}

fn find_url(s: &str) -> Option<usize> {
    let lower = s.to_ascii_lowercase();
    [lower.find("https://"), lower.find("http://")].into_iter().flatten().min()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_is_wanted_for_json_flags_only() {
        let w = |a: &[&str]| wanted(std::iter::once("rdprescue").chain(a.iter().copied()).map(OsString::from));
        assert!(w(&["inspect", "x", "--json"]));
        assert!(w(&["audit", "--format", "jsonl", "x"]));
        assert!(w(&["audit", "--format=json", "x"]));
        assert!(!w(&["audit", "--format", "csv", "x"]));
        assert!(!w(&["inspect", "--", "--json"]));
        assert!(!w(&["inspect", "x"]));
    }

    #[test]
    fn urls_lose_their_query_strings() {
        assert_eq!(redact("cannot open https://acct.blob.core.windows.net/c/d.vhd?sv=2020&sig=SECRET: 403"), "cannot open https://acct.blob.core.windows.net/c/d.vhd: 403");
        assert_eq!(redact("a HTTP://h/x?s=1 and http://h/y#f?z end"), "a HTTP://h/x and http://h/y end");
        assert_eq!(redact("no url here ?a=b"), "no url here ?a=b");
    }

    #[test]
    fn typed_errors_give_layer_and_offset() {
        let e = anyhow::Error::from(Error::corrupt(rdprescue::error::Layer::Vhdx, 0x10000, "bad header").context("opening x"));
        let v = to_json(&anyhow::Error::from(e).context("inspect"));
        assert_eq!(v["error"]["layer"], "image/vhdx");
        assert_eq!(v["error"]["offset"], 0x10000);
        assert!(v["error"]["message"].as_str().unwrap().contains("bad header"), "{v}");
        let plain = to_json(&anyhow::anyhow!("no such thing"));
        assert_eq!((plain["error"]["layer"].clone(), plain["error"]["offset"].clone()), (Value::Null, Value::Null));
    }
}
