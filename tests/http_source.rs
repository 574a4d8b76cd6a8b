//! Images over HTTP range requests (issue 17): every read command given a URL
//! prints what it prints for the local file (modulo the name), and a small
//! in-test range server (std `TcpListener` + threads) injects the faults a
//! remote store shows: dropped connections, 500/503 then success, slow
//! answers, a server that ignores `Range`, short bodies, 403, 404, an HTML
//! page, a redirect loop, a size that does not hold. Each failure is one line
//! naming the URL without its query string, exit 2, nothing written, and the
//! server counts the requests to bound the retries. The secret query string
//! must appear nowhere in stdout, stderr or JSON.

mod common;

use common::*;
use std::collections::HashMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

/// The query string every URL carries: stands for a SAS token.
const SECRET: &str = "sv=2024-11-04&sig=S3CR3T-T0KEN%2Bxyz";
const TOKEN: &str = "S3CR3T-T0KEN";

// ---------------------------------------------------------------- server

/// What the server does with one request (`Normal` serves it properly).
#[derive(Clone, Debug)]
enum Reply {
    Normal,
    Status(u16),
    /// Close the connection without answering.
    Drop,
    /// Wait this long, then answer normally.
    Slow(Duration),
    /// Answer a ranged GET with the whole file (200).
    IgnoreRange,
    /// Promise the bytes asked for, send half of them, close.
    Short,
    /// 200 text/html, a small page.
    Html,
    /// 302 to this path (same query).
    Redirect(String),
    /// Report this size to HEAD, serve the real bytes.
    LieSize(u64),
}

#[derive(Clone, Debug)]
struct Req {
    method: String,
    path: String,
    query: String,
    range: Option<String>,
}

type Rule = Arc<dyn Fn(&Req, usize) -> Reply + Send + Sync>;

struct Server {
    base: String,
    log: Arc<Mutex<Vec<Req>>>,
    count: Arc<AtomicUsize>,
}

impl Server {
    /// Serve `files` (name -> bytes); `rule` picks the reply of the n-th request (from 0).
    fn start(files: Vec<(&str, Arc<Vec<u8>>)>, rule: impl Fn(&Req, usize) -> Reply + Send + Sync + 'static) -> Server {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        let files: Arc<HashMap<String, Arc<Vec<u8>>>> = Arc::new(files.into_iter().map(|(n, b)| (format!("/{n}"), b)).collect());
        let log = Arc::new(Mutex::new(Vec::new()));
        let count = Arc::new(AtomicUsize::new(0));
        let rule: Rule = Arc::new(rule);
        let (l2, c2) = (log.clone(), count.clone());
        std::thread::spawn(move || {
            for conn in listener.incoming() {
                let Ok(conn) = conn else { continue };
                let (files, rule, log, count) = (files.clone(), rule.clone(), l2.clone(), c2.clone());
                std::thread::spawn(move || {
                    let _ = serve(conn, &files, &*rule, &log, &count);
                });
            }
        });
        Server { base, log, count }
    }

    fn url(&self, name: &str) -> String {
        format!("{}/{name}?{SECRET}", self.base)
    }

    /// The URL as messages may show it.
    fn shown(&self, name: &str) -> String {
        format!("{}/{name}", self.base)
    }

    fn requests(&self) -> usize {
        self.count.load(Ordering::SeqCst)
    }

    fn log(&self) -> Vec<Req> {
        self.log.lock().unwrap().clone()
    }
}

fn serve(conn: TcpStream, files: &HashMap<String, Arc<Vec<u8>>>, rule: &(dyn Fn(&Req, usize) -> Reply + Send + Sync), log: &Mutex<Vec<Req>>, count: &AtomicUsize) -> std::io::Result<()> {
    conn.set_read_timeout(Some(Duration::from_secs(5)))?;
    let mut r = BufReader::new(conn.try_clone()?);
    let mut w = conn;
    // One request per connection (answers say Connection: close).
    let mut line = String::new();
    if r.by_ref().take(8192).read_line(&mut line)? == 0 {
        return Ok(());
    }
    let mut parts = line.split_whitespace();
    let method = parts.next().unwrap_or("").to_string();
    let target = parts.next().unwrap_or("").to_string();
    let mut range = None;
    loop {
        let mut h = String::new();
        if r.by_ref().take(8192).read_line(&mut h)? == 0 || h.trim().is_empty() {
            break;
        }
        if let Some((k, v)) = h.split_once(':') {
            if k.trim().eq_ignore_ascii_case("range") {
                range = Some(v.trim().to_string());
            }
        }
    }
    let (path, query) = target.split_once('?').map_or((target.clone(), String::new()), |(p, q)| (p.to_string(), q.to_string()));
    let req = Req { method, path, query, range };
    let n = count.fetch_add(1, Ordering::SeqCst);
    log.lock().unwrap().push(req.clone());
    let reply = rule(&req, n);
    let head = |w: &mut TcpStream, status: &str, headers: &[String]| -> std::io::Result<()> {
        let mut s = format!("HTTP/1.1 {status}\r\nConnection: close\r\n");
        for h in headers {
            s.push_str(h);
            s.push_str("\r\n");
        }
        s.push_str("\r\n");
        w.write_all(s.as_bytes())
    };
    let reply = match reply {
        Reply::Slow(d) => {
            std::thread::sleep(d);
            Reply::Normal
        }
        r => r,
    };
    match reply {
        Reply::Drop => return Ok(()),
        Reply::Status(s) => return head(&mut w, &format!("{s} X"), &["Content-Length: 0".into()]),
        Reply::Html => {
            let page = b"<!DOCTYPE html><html><body>Sign in</body></html>";
            head(&mut w, "200 OK", &["Content-Type: text/html; charset=utf-8".into(), format!("Content-Length: {}", page.len())])?;
            if req.method != "HEAD" {
                w.write_all(page)?;
            }
            return Ok(());
        }
        Reply::Redirect(to) => return head(&mut w, "302 Found", &[format!("Location: {to}?{}", req.query), "Content-Length: 0".into()]),
        _ => {}
    }
    let Some(data) = files.get(&req.path) else { return head(&mut w, "404 Not Found", &["Content-Length: 0".into()]) };
    let len = data.len() as u64;
    let told = if let Reply::LieSize(l) = reply { l } else { len };
    if req.method == "HEAD" {
        return head(&mut w, "200 OK", &["Accept-Ranges: bytes".into(), "Content-Type: application/octet-stream".into(), format!("Content-Length: {told}")]);
    }
    let asked = req.range.as_deref().and_then(|r| r.strip_prefix("bytes=")).and_then(|r| r.split_once('-')).and_then(|(a, b)| Some((a.parse::<u64>().ok()?, b.parse::<u64>().ok()?)));
    let (a, b) = match (asked, &reply) {
        (Some(_), Reply::IgnoreRange) | (None, _) => {
            head(&mut w, "200 OK", &[format!("Content-Length: {len}")])?;
            return w.write_all(data);
        }
        (Some((a, b)), _) => (a, b.min(len - 1)),
    };
    if a >= len || a > b {
        return head(&mut w, "416 Range Not Satisfiable", &[format!("Content-Range: bytes */{told}"), "Content-Length: 0".into()]);
    }
    let body = &data[a as usize..=b as usize];
    // (A lying server's ranges give the real size away.)
    head(&mut w, "206 Partial Content", &[format!("Content-Range: bytes {a}-{b}/{len}"), format!("Content-Length: {}", body.len()), "Content-Type: application/octet-stream".into()])?;
    if let Reply::Short = reply {
        w.write_all(&body[..body.len() / 2])?;
        return Ok(());
    }
    w.write_all(body)
}

// ---------------------------------------------------------------- helpers

fn demo_path() -> PathBuf {
    testdata().join("demo.vhdx")
}

fn demo() -> Arc<Vec<u8>> {
    static D: OnceLock<Arc<Vec<u8>>> = OnceLock::new();
    D.get_or_init(|| Arc::new(std::fs::read(demo_path()).unwrap())).clone()
}

/// Run the binary with the tests' HTTP bounds (low timeouts, few attempts).
fn run_env(args: &[&str], env: &[(&str, &str)]) -> Output {
    let mut c = Command::new(env!("CARGO_BIN_EXE_rdprescue"));
    c.args(args)
        .env("RDPRESCUE_HTTP_TIMEOUT_MS", "2000")
        .env("RDPRESCUE_HTTP_ATTEMPTS", "3")
        .env("RDPRESCUE_HTTP_BACKOFF_MS", "10")
        .env("RDPRESCUE_HTTP_BUDGET_MS", "3000")
        .env_remove("http_proxy")
        .env_remove("HTTP_PROXY")
        .env_remove("ALL_PROXY")
        .env_remove("all_proxy");
    for (k, v) in env {
        c.env(k, v);
    }
    c.out().unwrap()
}

fn run(args: &[&str]) -> Output {
    run_env(args, &[])
}

/// The secret appears nowhere in what the process printed.
fn assert_no_secret(o: &Output, what: &str) {
    for (n, s) in [("stdout", stdout(o)), ("stderr", stderr(o))] {
        assert!(!s.contains(TOKEN) && !s.contains("sig="), "{what}: the query string leaked into {n}: {s}");
    }
}

/// One-line error naming the URL without its query, exit 2, no secret.
fn assert_url_error(o: &Output, shown: &str, what: &str, needle: &str) {
    assert_clean_error(o, what);
    assert_no_secret(o, what);
    let err = stderr(o);
    assert!(err.contains(shown), "{what}: the URL is not named: {err}");
    assert!(err.to_lowercase().contains(&needle.to_lowercase()), "{what}: expected {needle:?} in: {err}");
}

/// `args` with `{}` replaced by `src`.
fn with(args: &[&str], src: &str) -> Vec<String> {
    args.iter().map(|a| if *a == "{}" { src.to_string() } else { a.to_string() }).collect()
}

fn strs(v: &[String]) -> Vec<&str> {
    v.iter().map(String::as_str).collect()
}

// ---------------------------------------------------------------- same output

/// Each read command prints byte for byte what it prints for the local file,
/// the local path replaced by the URL (without its query).
#[test]
fn read_commands_match_the_local_file() {
    let srv = Server::start(vec![("vm/demo.vhdx", demo())], |_, _| Reply::Normal);
    let url = srv.url("vm/demo.vhdx");
    let shown = srv.shown("vm/demo.vhdx");
    let local = demo_path();
    let local_s = local.to_str().unwrap();
    let tmp = tempfile::tempdir().unwrap();
    let cases: Vec<Vec<&str>> = vec![
        vec!["inspect", "{}"],
        vec!["inspect", "{}", "--json"],
        vec!["disk", "{}"],
        vec!["disk", "{}", "--json"],
        vec!["cat", "{}", r"Windows\System32\config\SYSTEM"],
        vec!["reg", "query", "{}", r"HKLM\SYSTEM\CurrentControlSet\Control\Terminal Server", "-s"],
        vec!["reg", "query", "{}", r"HKLM\SYSTEM\CurrentControlSet\Control\Terminal Server", "--json"],
        vec!["reg", "export", "{}", r"HKLM\SYSTEM\CurrentControlSet\Services\TermService"],
        vec!["fix", "{}", "--profile", "reset-rdp", "--dry-run"],
    ];
    for args in cases {
        let l = rdp_on(&local, &strs(&with(&args, local_s)));
        let r = run(&strs(&with(&args, &url)));
        let what = format!("{args:?}");
        assert_eq!(l.status.code(), r.status.code(), "{what}: exit codes differ; remote stderr: {}", stderr(&r));
        assert_no_secret(&r, &what);
        // (In JSON a Windows path's backslashes are escaped.)
        let local_json = serde_json::to_string(local_s).unwrap();
        let local_json = &local_json[1..local_json.len() - 1];
        let want = if args[0] == "cat" || args[1] == "export" { l.stdout.clone() } else { stdout(&l).replace(local_json, &shown).replace(local_s, &shown).into_bytes() };
        let mut got = r.stdout.clone();
        if args.contains(&"--json") && args[0] != "reg" {
            // The JSON of a URL source also says what was transferred.
            let mut v: serde_json::Value = serde_json::from_slice(&got).unwrap();
            let t = v.as_object_mut().unwrap().remove("transfer").unwrap_or_else(|| panic!("{what}: no transfer in the JSON"));
            assert!(t["requests"].as_u64().unwrap() > 0 && t["bytes"].as_u64().unwrap() > 0, "{what}: {t}");
            got = (serde_json::to_string_pretty(&v).unwrap() + "\n").into_bytes();
        }
        if got != want {
            let p = tmp.path().join("got");
            std::fs::write(&p, &got).unwrap();
            panic!("{what}: the URL's output differs from the local file's ({} vs {} bytes); first difference at {:?}:\n{}", got.len(), want.len(), got.iter().zip(&want).position(|(a, b)| a != b), String::from_utf8_lossy(&got[..got.len().min(2000)]));
        }
    }
    // Every request carried the query string (the server needs it).
    assert!(srv.log().iter().all(|r| r.query == SECRET), "a request went without the query string");
}

/// `--verbose` reports the requests and bytes; the token is not in it.
#[test]
fn verbose_reports_the_transfer() {
    let srv = Server::start(vec![("demo.vhdx", demo())], |_, _| Reply::Normal);
    let o = run(&["inspect", &srv.url("demo.vhdx"), "--verbose"]);
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    assert_no_secret(&o, "--verbose");
    let err = stderr(&o);
    let line = err.lines().find(|l| l.contains("http:")).unwrap_or_else(|| panic!("no transfer line: {err}"));
    assert!(line.contains(&format!("{} requests", srv.requests())), "{line} (server saw {})", srv.requests());
    // The local run prints no such line.
    let l = rdp(&["inspect", demo_path().to_str().unwrap(), "--verbose"]);
    assert!(!stderr(&l).contains("http:"), "{}", stderr(&l));
}

/// `audit` takes URLs (and local files) with bounded jobs, one record each,
/// the same as for the local file but for the name; a bad URL is an error
/// record that names the URL without its query.
#[test]
fn audit_of_urls() {
    let srv = Server::start(vec![("a/demo.vhdx", demo()), ("b/demo.vhdx", demo())], |r, _| if r.path.starts_with("/forbidden") { Reply::Status(403) } else { Reply::Normal });
    let (a, b, bad) = (srv.url("a/demo.vhdx"), srv.url("b/demo.vhdx"), srv.url("forbidden/x.vhdx"));
    let local = demo_path();
    let o = run(&["audit", &a, &b, &bad, "--jobs", "2", "--format", "json"]);
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    assert_no_secret(&o, "audit");
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    let l = rdp_on(&local, &["audit", local.to_str().unwrap(), "--format", "json"]);
    let lv: serde_json::Value = serde_json::from_slice(&l.stdout).unwrap();
    let records = |v: &serde_json::Value| v.as_object().unwrap().values().find_map(|x| x.as_array().cloned()).unwrap();
    let (rs, lrs) = (records(&v), records(&lv));
    assert_eq!(rs.len(), 3);
    let strip = |mut r: serde_json::Value| {
        let o = r.as_object_mut().unwrap();
        o.retain(|k, _| !["path", "image", "source", "size", "elapsed_ms", "seconds"].contains(&k.as_str()));
        r
    };
    let text = serde_json::to_string(&v).unwrap();
    assert!(text.contains(&srv.shown("a/demo.vhdx")) && text.contains(&srv.shown("forbidden/x.vhdx")), "{text}");
    assert_eq!(strip(rs[0].clone()), strip(lrs[0].clone()), "the URL's record differs from the local file's");
    assert_eq!(strip(rs[1].clone()), strip(lrs[0].clone()));
    assert!(rs[2].to_string().contains("403"), "{}", rs[2]);
}

/// A differencing disk's parent is the sibling URL, asked with the same
/// query string.
#[test]
fn differencing_parent_is_a_sibling_url() {
    let tmp = tempfile::tempdir().unwrap();
    let parent = tmp.path().join("demo.vhdx");
    std::fs::write(&parent, &*demo()).unwrap();
    let child = tmp.path().join("child.avhdx");
    let o = rdp(&["fix", parent.to_str().unwrap(), "--profile", "reset-rdp", "--diff-child", "--out", child.to_str().unwrap()]);
    assert!(child.exists(), "no child written: {}", stderr(&o));
    let srv = Server::start(vec![("vm/child.avhdx", Arc::new(std::fs::read(&child).unwrap())), ("vm/demo.vhdx", demo())], |_, _| Reply::Normal);
    let r = run(&["disk", &srv.url("vm/child.avhdx")]);
    assert_eq!(r.status.code(), Some(0), "{}", stderr(&r));
    assert_no_secret(&r, "child");
    assert!(stdout(&r).contains(&srv.shown("vm/demo.vhdx")), "{}", stdout(&r));
    assert!(srv.log().iter().any(|q| q.path == "/vm/demo.vhdx" && q.query == SECRET), "the parent was not asked for with the query string");
    let l = rdp(&["inspect", child.to_str().unwrap()]);
    let r = run(&["inspect", &srv.url("vm/child.avhdx")]);
    assert_eq!(stdout(&r), stdout(&l).replace(child.to_str().unwrap(), &srv.shown("vm/child.avhdx")));
    // A parent that is not there: named without the query, exit 2.
    let srv2 = Server::start(vec![("vm/child.avhdx", Arc::new(std::fs::read(&child).unwrap()))], |_, _| Reply::Normal);
    let r = run(&["inspect", &srv2.url("vm/child.avhdx")]);
    assert_url_error(&r, &srv2.shown("vm/demo.vhdx"), "missing parent", "parent");
}

// ---------------------------------------------------------------- faults that pass

/// Dropped connections, 500/503 and short bodies are retried; the run then
/// matches a clean one, with a bounded number of extra requests.
#[test]
fn transient_faults_are_retried() {
    let clean = Server::start(vec![("d.vhdx", demo())], |_, _| Reply::Normal);
    let want = run(&["inspect", &clean.url("d.vhdx")]);
    let base = clean.requests();
    let faults: Vec<(&str, Reply)> = vec![("drop", Reply::Drop), ("500", Reply::Status(500)), ("503", Reply::Status(503)), ("short", Reply::Short)];
    for (name, fault) in faults {
        // Every third request fails once (its retry passes).
        let f = fault.clone();
        let srv = Server::start(vec![("d.vhdx", demo())], move |r, n| if n % 3 == 1 && r.method == "GET" { f.clone() } else { Reply::Normal });
        let got = run(&["inspect", &srv.url("d.vhdx")]);
        assert_eq!(got.status.code(), want.status.code(), "{name}: {}", stderr(&got));
        assert_eq!(stdout(&got), stdout(&want).replace(&clean.base, &srv.base), "{name}");
        assert!(srv.requests() <= base * 2 + 2, "{name}: {} requests (clean: {base})", srv.requests());
    }
    // HEAD refused (a presigned URL signs GET only): the size comes from a bytes=0-0 GET.
    let srv = Server::start(vec![("d.vhdx", demo())], |r, _| if r.method == "HEAD" { Reply::Status(403) } else { Reply::Normal });
    let got = run(&["inspect", &srv.url("d.vhdx")]);
    assert_eq!(stdout(&got), stdout(&want).replace(&clean.base, &srv.base), "{}", stderr(&got));
    assert!(srv.log().iter().any(|r| r.range.as_deref() == Some("bytes=0-0")));
}

// ---------------------------------------------------------------- faults that fail

/// A bad server: one line naming the URL without the query, exit 2, a
/// bounded number of requests, nothing written, within the time bound; the
/// JSON of an audit record names the URL without the query too.
fn bad_server(name: &str, fault: Reply, needle: &str, max: usize) {
    let tmp = tempfile::tempdir().unwrap();
    let f = fault.clone();
    let srv = Server::start(vec![("d.vhdx", demo())], move |_, _| f.clone());
    let out = tmp.path().join("out.vhdx");
    let started = Instant::now();
    let env: &[(&str, &str)] = if matches!(fault, Reply::Slow(_)) { &[("RDPRESCUE_HTTP_TIMEOUT_MS", "200")] } else { &[] };
    for args in [vec!["inspect", "{}"], vec!["fix", "{}", "--all", "--out", out.to_str().unwrap()]] {
        let before = srv.requests();
        let o = run_env(&strs(&with(&args, &srv.url("d.vhdx"))), env);
        let what = format!("{name} {args:?}");
        assert_url_error(&o, &srv.shown("d.vhdx"), &what, needle);
        let n = srv.requests() - before;
        assert!(n <= max && n >= 1, "{what}: {n} requests (bound {max})");
        assert!(!out.exists(), "{what}: an output was written");
    }
    // Bounded time: a slow server (3 s per answer) held without timeouts would take 27 s.
    assert!(started.elapsed() < Duration::from_secs(8), "{name}: took {:?}", started.elapsed());
    let o = run_env(&["audit", &srv.url("d.vhdx"), "--format", "json"], env);
    assert_eq!(o.status.code(), Some(2), "{name} audit");
    assert_no_secret(&o, &format!("{name} audit"));
    assert!(stdout(&o).contains(&srv.shown("d.vhdx")), "{name} audit: {}", stdout(&o));
}

#[test]
fn always_500() {
    bad_server("always 500", Reply::Status(500), "HTTP 500", 3);
}
#[test]
fn always_503() {
    bad_server("always 503", Reply::Status(503), "gave up after 3 attempts", 3);
}
#[test]
fn connection_drops() {
    bad_server("drops", Reply::Drop, "connection", 3);
}
#[test]
fn forbidden_sas() {
    bad_server("forbidden", Reply::Status(403), "403 Forbidden", 2);
}
#[test]
fn unauthorized() {
    bad_server("unauthorized", Reply::Status(401), "401", 2);
}
#[test]
fn missing_blob() {
    bad_server("missing", Reply::Status(404), "404 Not Found", 1);
}
#[test]
fn html_page() {
    bad_server("html", Reply::Html, "not a disk image", 1);
}
#[test]
fn server_ignores_range() {
    bad_server("ignores range", Reply::IgnoreRange, "the server does not support range requests", 2);
}
#[test]
fn short_bodies() {
    bad_server("short always", Reply::Short, "short read", 4);
}
#[test]
fn server_lies_about_the_size() {
    bad_server("lies about size", Reply::LieSize(64 << 30), "size", 2);
}
#[test]
fn redirect_loop() {
    bad_server("redirect loop", Reply::Redirect("/loop/d.vhdx".into()), "redirect", 6);
}
#[test]
fn slow_server() {
    bad_server("slow", Reply::Slow(Duration::from_secs(3)), "timed out", 3);
}

/// A small page without a type, nothing listening, a URL we cannot use.
#[test]
fn other_bad_urls() {
    let small = Arc::new(b"<html><body>not found</body></html>".to_vec());
    let srv = Server::start(vec![("small.html", small)], |_, _| Reply::Normal);
    let o = run(&["disk", &srv.url("small.html")]);
    assert_url_error(&o, &srv.shown("small.html"), "small page", "not a disk image");
    // Nothing listening: a connection error, retried a bounded number of times.
    let port = TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let url = format!("http://127.0.0.1:{port}/x.vhdx?{SECRET}");
    let o = run(&["inspect", &url]);
    assert_url_error(&o, &format!("http://127.0.0.1:{port}/x.vhdx"), "no server", "connection");
    // Not a URL we can use: no secret in the message either.
    let o = run(&["inspect", &format!("http://user:{TOKEN}@/x?{SECRET}")]);
    assert_clean_error(&o, "bad url");
    assert_no_secret(&o, "bad url");
}

/// The library: a URL opens through `Machine::open`, its name drops the
/// query, and reads through the cache match the file byte for byte.
#[test]
fn library_reads_match_the_file() {
    use rdprescue::image::{http::HttpSource, Source};
    let srv = Server::start(vec![("d.vhdx", demo())], |_, _| Reply::Normal);
    let src = HttpSource::open(&srv.url("d.vhdx")).unwrap();
    assert_eq!(src.name(), srv.shown("d.vhdx"));
    assert_eq!(src.len(), demo().len() as u64);
    let d = demo();
    let mut rng = Rng(7);
    for _ in 0..200 {
        let off = rng.next() % (d.len() as u64 - 1);
        let len = (1 + rng.next() % (300 << 10)).min(d.len() as u64 - off) as usize;
        let mut buf = vec![0u8; len];
        src.read_at(off, &mut buf).unwrap();
        assert!(buf == d[off as usize..off as usize + len], "read at {off} of {len}");
    }
    // A read past the end fails without a request.
    let n = srv.requests();
    assert!(src.read_at(d.len() as u64 - 10, &mut [0u8; 20]).is_err());
    assert_eq!(srv.requests(), n);
    let m = rdprescue::machine::Machine::open(Path::new(&srv.url("d.vhdx"))).unwrap();
    assert_eq!(m.image().unwrap().info.path, PathBuf::from(srv.shown("d.vhdx")));
}
