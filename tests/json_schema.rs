//! The README's JSON schemas are the contract: this test reads them from
//! README.md (the `inspect --json` block and the audit record/summary block)
//! and compares them with real output. Every key printed must be documented,
//! every documented key must be printed by at least one source, and values
//! documented as alternatives (`"clean"|"recovered"|...`) must be one of them.
//! Sources: testdata/demo.vhdx, testdata/hives (a directory), a single hive
//! file, and the scenario images when ../shared/data and the tools are here.

mod common;
use common::*;
use serde_json::Value as J;
use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;

/// The README's schema notation: `{"key", "key"?: value, ...}`, `[value]`,
/// `"a"|"b"`, and prose (`{...as inspect...}`, `[same shape, ...]`).
#[derive(Debug, Clone)]
enum Schema {
    Object(Vec<(String, Schema)>),
    Array(Box<Schema>),
    OneOf(Vec<String>),
    /// Prose or no shape given.
    Any(String),
}

#[derive(Debug, Clone, PartialEq)]
enum Tok {
    Str(String),
    P(char),
    Word(String),
}

fn tokens(s: &str) -> Vec<Tok> {
    let c: Vec<char> = s.chars().collect();
    let (mut i, mut out) = (0, Vec::new());
    while i < c.len() {
        match c[i] {
            ch if ch.is_whitespace() => i += 1,
            '"' => {
                let j = (i + 1..c.len()).find(|&j| c[j] == '"').expect("unterminated string in README schema");
                out.push(Tok::Str(c[i + 1..j].iter().collect()));
                i = j + 1;
            }
            ch @ ('{' | '}' | '[' | ']' | ':' | ',' | '|' | '?') => {
                out.push(Tok::P(ch));
                i += 1;
            }
            _ => {
                let j = (i..c.len()).find(|&j| c[j].is_whitespace() || "{}[]:,|?\"".contains(c[j])).unwrap_or(c.len());
                out.push(Tok::Word(c[i..j].iter().collect()));
                i = j;
            }
        }
    }
    out
}

struct Parser {
    t: Vec<Tok>,
    i: usize,
}

impl Parser {
    fn peek(&self) -> Option<&Tok> {
        self.t.get(self.i)
    }
    fn eat(&mut self, p: char) -> bool {
        if self.peek() == Some(&Tok::P(p)) {
            self.i += 1;
            true
        } else {
            false
        }
    }
    /// Skip prose up to the bracket closing the one just opened; returns it as text.
    fn prose(&mut self, close: char) -> Schema {
        let (mut depth, mut text) = (0, Vec::new());
        while let Some(t) = self.t.get(self.i).cloned() {
            self.i += 1;
            match t {
                Tok::P(c) if c == close && depth == 0 => return Schema::Any(text.join(" ")),
                Tok::P('{' | '[') => depth += 1,
                Tok::P('}' | ']') => depth -= 1,
                Tok::Str(s) | Tok::Word(s) => text.push(s),
                _ => {}
            }
        }
        panic!("README schema: unclosed {close}")
    }
    fn value(&mut self) -> Schema {
        match self.peek().cloned() {
            Some(Tok::P('{')) => {
                self.i += 1;
                if !matches!(self.peek(), Some(Tok::Str(_)) | Some(Tok::P('}'))) {
                    return self.prose('}');
                }
                let mut entries = Vec::new();
                loop {
                    if self.eat('}') {
                        return Schema::Object(entries);
                    }
                    let Some(Tok::Str(k)) = self.peek().cloned() else { panic!("README schema: expected a key at token {:?}", self.peek()) };
                    self.i += 1;
                    self.eat('?');
                    let v = if self.eat(':') { self.value() } else { Schema::Any(String::new()) };
                    self.eat('?');
                    entries.push((k, v));
                    self.eat(',');
                }
            }
            Some(Tok::P('[')) => {
                self.i += 1;
                if !matches!(self.peek(), Some(Tok::P('{')) | Some(Tok::Str(_))) {
                    return self.prose(']');
                }
                let v = self.value();
                assert!(self.eat(']'), "README schema: expected ]");
                Schema::Array(Box::new(v))
            }
            Some(Tok::Str(s)) => {
                self.i += 1;
                let mut alts = vec![s];
                while self.eat('|') {
                    match self.peek().cloned() {
                        Some(Tok::Str(s)) => {
                            self.i += 1;
                            alts.push(s)
                        }
                        other => panic!("README schema: expected an alternative, got {other:?}"),
                    }
                }
                Schema::OneOf(alts)
            }
            other => panic!("README schema: unexpected {other:?}"),
        }
    }
}

fn parse(text: &str) -> Schema {
    let mut p = Parser { t: tokens(text), i: 0 };
    p.value()
}

/// The fenced block that follows the line containing `after` in README.md.
fn block(readme: &str, after: &str) -> String {
    let at = readme.find(after).unwrap_or_else(|| panic!("README has no \"{after}\""));
    let rest = &readme[at..];
    let start = rest.find("```\n").expect("code block") + 4;
    let end = rest[start..].find("```").expect("block end");
    rest[start..start + end].to_string()
}

fn readme_schemas() -> (Schema, Schema, Schema) {
    let readme = std::fs::read_to_string(testdata().join("../README.md")).unwrap();
    let inspect = parse(&block(&readme, "JSON (`--json`), stable"));
    let audit = block(&readme, "One record per image (`jsonl`");
    let summary_at = audit.find("summary:").expect("audit summary schema");
    let record = parse(&audit[..summary_at]);
    let summary = parse(&audit[summary_at + "summary:".len()..]);
    (inspect, record, summary)
}

/// Documented keys per object path, and the keys seen there in real output.
#[derive(Default)]
struct Seen {
    documented: BTreeMap<String, BTreeSet<String>>,
    printed: BTreeMap<String, BTreeSet<String>>,
    errors: Vec<String>,
}

impl Seen {
    /// `doc` (from `src`) against `schema` at `path`; `values`: check alternatives.
    fn check(&mut self, src: &str, path: &str, doc: &J, schema: &Schema, values: bool, inspect: &Schema) {
        match schema {
            Schema::Object(entries) => {
                let keys: BTreeSet<String> = entries.iter().map(|(k, _)| k.clone()).collect();
                self.documented.entry(path.to_string()).or_default().extend(keys.iter().cloned());
                let Some(obj) = doc.as_object() else {
                    if !doc.is_null() {
                        self.errors.push(format!("{src}: {path} is documented as an object, printed {doc}"));
                    }
                    return;
                };
                self.printed.entry(path.to_string()).or_default().extend(obj.keys().cloned());
                for k in obj.keys().filter(|k| !keys.contains(*k)) {
                    self.errors.push(format!("{src}: {path}.{k} is printed but not documented in README.md"));
                }
                let mut prev: Option<&Schema> = None;
                for (k, s) in entries {
                    let (s, values) = match s {
                        // `[same shape, ...]`: the previous entry's shape (values may differ).
                        Schema::Any(t) if t.contains("same shape") => (prev.unwrap_or(s), false),
                        // `{...as inspect...}`: the inspect report's entry of that name.
                        Schema::Any(t) if t.contains("as inspect") => match inspect {
                            Schema::Object(e) => (e.iter().find(|(n, _)| n == k).map(|(_, s)| s).unwrap_or(s), values),
                            _ => (s, values),
                        },
                        _ => (s, values),
                    };
                    if let Some(v) = obj.get(k) {
                        self.check(src, &format!("{path}.{k}"), v, s, values, inspect);
                    }
                    prev = Some(s);
                }
            }
            Schema::Array(item) => match doc.as_array() {
                Some(a) => a.iter().for_each(|x| self.check(src, &format!("{path}[]"), x, item, values, inspect)),
                None if doc.is_null() => {}
                None => self.errors.push(format!("{src}: {path} is documented as an array, printed {doc}")),
            },
            Schema::OneOf(alts) if values && !doc.as_str().is_some_and(|s| alts.iter().any(|a| a == s)) => {
                self.errors.push(format!("{src}: {path} = {doc}, README allows {}", alts.join("|")));
            }
            _ => {}
        }
    }

    /// Every documented key of every object path was printed at least once.
    fn all_documented_printed(&mut self) {
        for (path, keys) in &self.documented {
            let printed = self.printed.get(path).cloned().unwrap_or_default();
            for k in keys.difference(&printed) {
                self.errors.push(format!("README documents {path}.{k}, but no source printed it"));
            }
        }
    }
}

fn sources() -> Vec<PathBuf> {
    let mut out = vec![testdata().join("demo.vhdx"), testdata().join("hives"), testdata().join("hives/SYSTEM")];
    // The scenario images when they can be built (build.rs: `scenarios`).
    match cfg!(scenarios).then(|| build_scenarios("json_schema")).flatten() {
        Some((_, manifest)) => out.extend(manifest.iter().map(|s| PathBuf::from(s["image"].as_str().unwrap()))),
        None => eprintln!("NOTICE: scenario images unavailable; checking the README schemas on testdata/ only"),
    }
    out
}

fn run_json(args: &[&str]) -> J {
    let o = rdp(args);
    assert!(matches!(o.status.code(), Some(0 | 1)), "{args:?}: exit {:?}: {}", o.status.code(), stderr(&o));
    serde_json::from_slice(&o.stdout).unwrap_or_else(|e| panic!("{args:?}: bad JSON: {e}"))
}

#[test]
fn readme_schemas_parse() {
    let (inspect, record, summary) = readme_schemas();
    let keys = |s: &Schema| match s {
        Schema::Object(e) => e.iter().map(|(k, _)| k.as_str()).collect::<Vec<_>>().join(","),
        other => panic!("not an object: {other:?}"),
    };
    assert_eq!(keys(&inspect), "image,windows,hives,settings,findings,notes,not_evaluated,symptom,evidence,event_logs");
    assert_eq!(keys(&record), "image,status,error,size,format,virtual_size,windows,control_set,hives,settings,findings,ignored,not_evaluated");
    assert_eq!(keys(&summary), "images,pass,fail,error,jobs,seconds,checks");
}

#[test]
fn inspect_json_matches_the_readme() {
    let (schema, _, _) = readme_schemas();
    let mut seen = Seen::default();
    let srcs = sources();
    for (i, src) in srcs.iter().enumerate() {
        let s = src.to_str().unwrap();
        // One source with a symptom, so the optional `symptom` section is checked too.
        let doc = if i == 0 { run_json(&["inspect", "--json", "--symptom", "internal error", s]) } else { run_json(&["inspect", "--json", s]) };
        seen.check(s, "inspect", &doc, &schema, true, &schema);
    }
    // Some documented fields only appear on the scenario images (build.rs: scenarios).
    if cfg!(scenarios) {
        seen.all_documented_printed();
    }
    assert!(seen.errors.is_empty(), "inspect --json vs README.md:\n{}", seen.errors.join("\n"));
}

#[test]
fn audit_json_matches_the_readme() {
    let (inspect, record, summary) = readme_schemas();
    let mut args: Vec<String> = ["audit", "--format", "json", "--jobs", "2"].map(String::from).to_vec();
    args.extend(sources().iter().map(|p| p.to_str().unwrap().to_string()));
    // An unreadable image: the error record's shape.
    args.push(testdata().join("no-such-image.vhdx").to_str().unwrap().to_string());
    let o = rdp(&args.iter().map(String::as_str).collect::<Vec<_>>());
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    let doc: J = serde_json::from_slice(&o.stdout).unwrap();
    let top: BTreeSet<&str> = doc.as_object().unwrap().keys().map(String::as_str).collect();
    assert_eq!(top, BTreeSet::from(["records", "summary"]), "README: {{\"records\": [...], \"summary\": {{...}}}}");
    let mut seen = Seen::default();
    for r in doc["records"].as_array().unwrap() {
        seen.check(r["image"].as_str().unwrap(), "record", r, &record, true, &inspect);
    }
    seen.check("summary", "summary", &doc["summary"], &summary, true, &inspect);
    seen.all_documented_printed();
    let errors = doc["records"].as_array().unwrap().iter().filter(|r| r["status"] == "error").count();
    assert_eq!(errors, 1);
    assert!(seen.errors.is_empty(), "audit --format json vs README.md:\n{}", seen.errors.join("\n"));
}
