//! Images over HTTP(S) range requests: an `https://` (or `http://`) URL that
//! answers `Range` requests opens like a file (an Azure blob or snapshot SAS
//! URL, an S3/GCS presigned URL, a plain web server).
//!
//! * Size: `HEAD`, or a `bytes=0-0` GET where `HEAD` is refused (a presigned
//!   URL signs one method). The first block is fetched at once: a server that
//!   ignores `Range` is refused before anything else is read.
//! * A block cache ([`BLOCK`]-aligned blocks, least recently used dropped past
//!   a byte cap); the missing blocks of one read are fetched as one request per
//!   run of adjacent misses; a read that continues the previous one doubles a
//!   read-ahead window (hive extents, BATs and MFT runs are read in order),
//!   any other read resets it; large misses are split into a few pieces
//!   fetched in parallel (scoped threads, no async runtime).
//! * Retries with bounded exponential backoff on 5xx/408/429, timeouts,
//!   dropped connections and short bodies: at most [`Options::attempts`]
//!   attempts and [`Options::budget`] of wall time per range. Anything else
//!   (403, 404, a server ignoring `Range`, a size that does not hold, a
//!   redirect loop) fails at once, as one line.
//! * Secrets: a URL's query string (a SAS token, a presigned signature) and
//!   user info are sent, never shown: [`Source::name`] is the URL without them,
//!   and no message is built from the server's or the client library's text
//!   (which could quote the URL). A differencing disk's parent is a sibling
//!   URL with the same query string.
//!
//! Tuning for tests and slow links (environment): `RDPRESCUE_HTTP_TIMEOUT_MS`
//! (one request, default 30000), `RDPRESCUE_HTTP_ATTEMPTS` (default 5),
//! `RDPRESCUE_HTTP_BACKOFF_MS` (first pause, default 200, doubling, at most
//! 4 s), `RDPRESCUE_HTTP_BUDGET_MS` (all attempts of one range, default 120000).

use super::source::{count_read, Source, SourceId};
use crate::error::{Error, Layer, Result};
use std::collections::{BTreeMap, HashMap};
use std::io::{self, Read};
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Cache block: reads are fetched in whole, aligned blocks of this size.
pub const BLOCK: u64 = 64 << 10;
/// Largest read-ahead window (doubling from [`BLOCK`] on sequential reads).
pub const MAX_AHEAD: u64 = 8 << 20;
/// Bytes of blocks kept in the cache.
pub const CACHE_CAP: u64 = 64 << 20;
/// A miss at least this large is fetched as parallel pieces.
const PARALLEL_MIN: u64 = 4 << 20;
/// Threads fetching pieces of one large miss.
const PARALLEL: usize = 4;
/// A read this large bypasses the cache (it is its own read-ahead).
const DIRECT_MIN: u64 = 16 << 20;
/// Redirects followed (a loop ends here).
const MAX_REDIRECTS: u32 = 5;

static REQUESTS: AtomicU64 = AtomicU64::new(0);
static BYTES: AtomicU64 = AtomicU64::new(0);

/// HTTP use of this process so far: requests sent and body bytes received.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct Transfer {
    pub requests: u64,
    pub bytes: u64,
}

/// Requests sent and body bytes received by every [`HttpSource`] of this process.
pub fn transfer() -> Transfer {
    Transfer { requests: REQUESTS.load(Ordering::Relaxed), bytes: BYTES.load(Ordering::Relaxed) }
}

/// Whether `s` names an HTTP(S) URL (scheme compared without case).
pub fn is_url(s: &str) -> bool {
    let l = s.get(..8).unwrap_or(s).to_ascii_lowercase();
    l.starts_with("https://") || l.starts_with("http://")
}

/// How a command-line source is shown: a URL without its query string and
/// user info (secrets), anything else as given.
pub fn shown_path(p: &std::path::Path) -> PathBuf {
    match p.to_str().filter(|s| is_url(s)).and_then(Url::parse) {
        Some(u) => PathBuf::from(u.shown()),
        None => p.to_path_buf(),
    }
}

/// For an http(s):// `source`, `json` (one pretty-printed object) with a
/// `transfer` member (requests made, bytes received so far); anything else
/// unchanged.
pub fn with_transfer(source: &std::path::Path, json: String) -> String {
    if !source.to_str().is_some_and(is_url) {
        return json;
    }
    let Ok(serde_json::Value::Object(mut o)) = serde_json::from_str::<serde_json::Value>(&json) else { return json };
    let t = transfer();
    o.insert("transfer".into(), serde_json::json!({ "requests": t.requests, "bytes": t.bytes }));
    match serde_json::to_string_pretty(&serde_json::Value::Object(o)) {
        Ok(mut s) => {
            s.push('\n');
            s
        }
        Err(_) => json,
    }
}

/// Timeouts and retry bounds.
#[derive(Debug, Clone)]
pub struct Options {
    /// One request, headers and body.
    pub timeout: Duration,
    /// Attempts per range (1: no retry).
    pub attempts: u32,
    /// First pause between attempts (doubling, at most 4 s).
    pub backoff: Duration,
    /// Wall time for all attempts of one range.
    pub budget: Duration,
}

impl Default for Options {
    fn default() -> Self {
        Options { timeout: Duration::from_secs(30), attempts: 5, backoff: Duration::from_millis(200), budget: Duration::from_secs(120) }
    }
}

impl Options {
    /// The defaults, with the `RDPRESCUE_HTTP_*` variables applied.
    pub fn from_env() -> Self {
        let var = |n: &str| std::env::var(n).ok().and_then(|v| v.trim().parse::<u64>().ok());
        let d = Options::default();
        Options {
            timeout: var("RDPRESCUE_HTTP_TIMEOUT_MS").map_or(d.timeout, |v| Duration::from_millis(v.max(1))),
            attempts: var("RDPRESCUE_HTTP_ATTEMPTS").map_or(d.attempts, |v| v.clamp(1, 20) as u32),
            backoff: var("RDPRESCUE_HTTP_BACKOFF_MS").map_or(d.backoff, Duration::from_millis),
            budget: var("RDPRESCUE_HTTP_BUDGET_MS").map_or(d.budget, Duration::from_millis),
        }
    }
}

// ---------------------------------------------------------------- URLs

/// A URL split into what may be shown and what may not.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Url {
    /// `http` or `https` (lower case).
    scheme: String,
    /// `user:password@` or empty (never shown).
    userinfo: String,
    /// host[:port].
    authority: String,
    /// `/path` (percent-encoded as given; at least `/`).
    path: String,
    /// `?...` or empty (never shown).
    query: String,
}

impl Url {
    fn parse(s: &str) -> Option<Url> {
        let (scheme, rest) = s.split_once("://")?;
        let scheme = scheme.to_ascii_lowercase();
        if scheme != "http" && scheme != "https" {
            return None;
        }
        // The fragment is never sent.
        let rest = rest.split('#').next().unwrap_or("");
        let (before_query, query) = match rest.find('?') {
            Some(i) => (&rest[..i], &rest[i..]),
            None => (rest, ""),
        };
        let (auth, path) = match before_query.find('/') {
            Some(i) => (&before_query[..i], &before_query[i..]),
            None => (before_query, "/"),
        };
        let (userinfo, authority) = match auth.rfind('@') {
            Some(i) => (&auth[..=i], &auth[i + 1..]),
            None => ("", auth),
        };
        if authority.is_empty() || authority.chars().any(|c| c.is_whitespace() || c.is_control()) {
            return None;
        }
        Some(Url { scheme, userinfo: userinfo.into(), authority: authority.into(), path: path.into(), query: query.into() })
    }

    /// The URL as sent.
    fn full(&self) -> String {
        format!("{}://{}{}{}{}", self.scheme, self.userinfo, self.authority, self.path, self.query)
    }

    /// The URL as shown: no user info, no query string.
    fn shown(&self) -> String {
        format!("{}://{}{}", self.scheme, self.authority, self.path)
    }

    fn is_loopback(&self) -> bool {
        let host = self.authority.rsplit_once(':').filter(|(h, p)| !h.is_empty() && p.bytes().all(|b| b.is_ascii_digit())).map_or(self.authority.as_str(), |(h, _)| h);
        matches!(host, "localhost" | "[::1]") || host.starts_with("127.")
    }

    /// `name` (relative, `/` separators, `..` allowed) next to this URL, with
    /// the same user info and query string.
    fn sibling(&self, name: &str) -> Option<Url> {
        if name.is_empty() || name.starts_with('/') || name.contains("://") {
            return None;
        }
        let mut parts: Vec<String> = self.path.split('/').map(str::to_string).collect();
        parts.pop(); // the file name
        for seg in name.split('/') {
            match seg {
                "" | "." => {}
                ".." => {
                    if parts.len() <= 1 {
                        return None;
                    }
                    parts.pop();
                }
                s => parts.push(encode_segment(s)),
            }
        }
        let path = parts.join("/");
        let path = if path.starts_with('/') { path } else { format!("/{path}") };
        Some(Url { path, ..self.clone() })
    }
}

/// Percent-encode one path segment (a parent's name as a VHD/VHDX records it).
fn encode_segment(s: &str) -> String {
    let mut o = String::new();
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~!$&'()*+,;=:@".contains(&b) {
            o.push(b as char);
        } else {
            o.push_str(&format!("%{b:02X}"));
        }
    }
    o
}

// ---------------------------------------------------------------- errors

/// Why one request failed, and whether trying again may help.
struct Failure {
    msg: String,
    retry: bool,
    kind: io::ErrorKind,
}

impl Failure {
    fn fatal(kind: io::ErrorKind, msg: impl Into<String>) -> Self {
        Failure { msg: msg.into(), retry: false, kind }
    }
    fn transient(msg: impl Into<String>) -> Self {
        Failure { msg: msg.into(), retry: true, kind: io::ErrorKind::Other }
    }
    fn into_io(self) -> io::Error {
        io::Error::new(self.kind, self.msg)
    }
}

/// The client's error, described without its text (which may quote the URL).
fn client_failure(e: &ureq::Error) -> Failure {
    match e {
        ureq::Error::Timeout(_) => Failure::transient("timed out"),
        ureq::Error::Io(io) => Failure::transient(format!("connection failed ({})", io_kind(io.kind()))),
        ureq::Error::ConnectionFailed => Failure::transient("connection failed"),
        ureq::Error::Protocol(_) => Failure::transient("the server's answer is not valid HTTP (connection dropped?)"),
        ureq::Error::HostNotFound => Failure::fatal(io::ErrorKind::NotFound, "host not found"),
        ureq::Error::TooManyRedirects => Failure::fatal(io::ErrorKind::Other, format!("more than {MAX_REDIRECTS} redirects (a redirect loop?)")),
        ureq::Error::BadUri(_) => Failure::fatal(io::ErrorKind::InvalidInput, "not a usable URL"),
        _ => Failure::fatal(io::ErrorKind::Other, "HTTP client error"),
    }
}

fn io_kind(k: io::ErrorKind) -> String {
    // The kind's name only: the message of an I/O error may name the address.
    let s = format!("{k:?}");
    let mut o = String::new();
    for (i, c) in s.chars().enumerate() {
        if c.is_ascii_uppercase() && i > 0 {
            o.push(' ');
        }
        o.push(c.to_ascii_lowercase());
    }
    o
}

/// The failure an HTTP status means (for a non-success answer).
fn status_failure(status: u16) -> Failure {
    match status {
        401 => Failure::fatal(io::ErrorKind::PermissionDenied, "HTTP 401 Unauthorized: the URL carries no valid credentials (give a SAS or presigned URL)"),
        403 => Failure::fatal(
            io::ErrorKind::PermissionDenied,
            "HTTP 403 Forbidden: the URL's signature (SAS token or presigned URL) is expired, revoked or does not grant read access",
        ),
        404 => Failure::fatal(io::ErrorKind::NotFound, "HTTP 404 Not Found: no blob or file at this URL"),
        410 => Failure::fatal(io::ErrorKind::NotFound, "HTTP 410 Gone"),
        416 => Failure::fatal(io::ErrorKind::UnexpectedEof, "HTTP 416: the server has no bytes there: it reported a size it does not have"),
        408 | 429 | 500..=599 => Failure::transient(format!("HTTP {status}")),
        300..=399 => Failure::fatal(io::ErrorKind::Other, format!("HTTP {status}: a redirect without a usable location")),
        s => Failure::fatal(io::ErrorKind::Other, format!("unexpected HTTP status {s}")),
    }
}

const NO_RANGES: &str = "the server does not support range requests (it answered a Range request with the whole file): serve the image from a server that does (Azure/S3/GCS URLs do)";

// ---------------------------------------------------------------- cache

#[derive(Default)]
struct Cache {
    blocks: HashMap<u64, (u64, Arc<Vec<u8>>)>,
    /// Use tick -> block index (least recently used first).
    order: BTreeMap<u64, u64>,
    tick: u64,
    bytes: u64,
    /// End of the previous read, and the read-ahead window it earned.
    last_end: u64,
    window: u64,
}

impl Cache {
    fn get(&mut self, b: u64) -> Option<Arc<Vec<u8>>> {
        let (t, data) = self.blocks.get_mut(&b)?;
        self.order.remove(t);
        self.tick += 1;
        *t = self.tick;
        self.order.insert(self.tick, b);
        Some(data.clone())
    }

    fn contains(&self, b: u64) -> bool {
        self.blocks.contains_key(&b)
    }

    fn put(&mut self, b: u64, data: Arc<Vec<u8>>) {
        self.tick += 1;
        self.bytes += data.len() as u64;
        if let Some((t, old)) = self.blocks.insert(b, (self.tick, data)) {
            self.order.remove(&t);
            self.bytes -= old.len() as u64;
        }
        self.order.insert(self.tick, b);
        while self.bytes > CACHE_CAP {
            let Some((_, victim)) = self.order.pop_first() else { break };
            if let Some((_, d)) = self.blocks.remove(&victim) {
                self.bytes -= d.len() as u64;
            }
        }
    }
}

// ---------------------------------------------------------------- source

/// A remote image read with HTTP range requests (see the module documentation).
pub struct HttpSource {
    url: Url,
    len: u64,
    agent: ureq::Agent,
    opts: Options,
    cache: Mutex<Cache>,
}

fn open_err(url: &Url, f: Failure) -> Error {
    Error::Open { layer: Layer::Http, path: PathBuf::from(url.shown()), source: f.into_io() }
}

impl HttpSource {
    /// Open `url` with the options of the environment ([`Options::from_env`]).
    pub fn open(url: &str) -> Result<Self> {
        Self::open_with(url, Options::from_env())
    }

    /// Open `url` as an `Arc<dyn Source>`.
    pub fn open_arc(url: &str) -> Result<Arc<dyn Source>> {
        Ok(Arc::new(Self::open(url)?))
    }

    /// Open `url` with these timeouts and retry bounds.
    pub fn open_with(url: &str, opts: Options) -> Result<Self> {
        let parsed = Url::parse(url).ok_or_else(|| {
            // Show only what is certainly not a secret: the scheme and host.
            let shown = url.split(['?', '#']).next().unwrap_or("");
            let shown = shown.rsplit_once('@').map_or(shown.to_string(), |(a, b)| format!("{}://{b}", a.split("://").next().unwrap_or("")));
            Error::Usage(format!("{}: not a usable http(s) URL: {shown}", Layer::Http))
        })?;
        Self::open_url(parsed, opts)
    }

    fn open_url(url: Url, opts: Options) -> Result<Self> {
        let agent = make_agent(&url, &opts);
        let mut src = HttpSource { url, len: 0, agent, opts, cache: Mutex::new(Cache::default()) };
        src.len = src.probe_size().map_err(|f| open_err(&src.url, f))?;
        if src.len < 512 {
            return Err(open_err(&src.url, Failure::fatal(io::ErrorKind::InvalidData, format!("not a disk image (the server has only {} bytes there)", src.len))));
        }
        // The first block now: refuses a server that ignores Range (or lies
        // about the size) before any container code runs.
        let first = BLOCK.min(src.len);
        let mut head = vec![0u8; first as usize];
        src.fetch(0, &mut head).map_err(|f| open_err(&src.url, f))?;
        if looks_like_html(&head) {
            return Err(open_err(&src.url, Failure::fatal(io::ErrorKind::InvalidData, "not a disk image (the server sent an HTML page)")));
        }
        src.lock().put(0, Arc::new(head));
        Ok(src)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Cache> {
        self.cache.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The size: `HEAD`, else a `bytes=0-0` GET (where `HEAD` is refused).
    fn probe_size(&self) -> std::result::Result<u64, Failure> {
        let head = self.with_retries(|| {
            let resp = self.agent.head(&self.url.full()).call().map_err(|e| client_failure(&e))?;
            let status = resp.status().as_u16();
            if matches!(status, 408 | 429 | 500..=599) {
                return Err(status_failure(status));
            }
            if !(200..300).contains(&status) {
                return Ok(Err(status));
            }
            if is_html(&resp) {
                return Err(Failure::fatal(io::ErrorKind::InvalidData, "not a disk image (the server sent an HTML page)"));
            }
            Ok(Ok(header(&resp, "content-length").and_then(|v| v.trim().parse::<u64>().ok())))
        })?;
        match head {
            Ok(Some(len)) => return Ok(len),
            // Not found is not found, whatever the method.
            Err(404 | 410) => return Err(status_failure(404)),
            // No length, or HEAD refused (a presigned URL signs GET only): ask with GET.
            _ => {}
        }
        self.with_retries(|| {
            let mut resp = self.agent.get(&self.url.full()).header("Range", "bytes=0-0").call().map_err(|e| client_failure(&e))?;
            let status = resp.status().as_u16();
            if is_html(&resp) && status < 300 {
                return Err(Failure::fatal(io::ErrorKind::InvalidData, "not a disk image (the server sent an HTML page)"));
            }
            match status {
                206 => {
                    let total = header(&resp, "content-range").as_deref().and_then(parse_content_range).map(|(_, _, t)| t);
                    let _ = resp.body_mut().with_config().limit(1).read_to_vec();
                    BYTES.fetch_add(1, Ordering::Relaxed);
                    total.ok_or_else(|| Failure::fatal(io::ErrorKind::InvalidData, "the server's answer to a range request gives no total size (Content-Range)"))
                }
                200 => Err(Failure::fatal(io::ErrorKind::Unsupported, NO_RANGES)),
                s => Err(status_failure(s)),
            }
        })
    }

    /// Run `op` until it succeeds, fails for good, or the attempts or the
    /// time budget run out; counts each attempt as a request.
    fn with_retries<T>(&self, mut op: impl FnMut() -> std::result::Result<T, Failure>) -> std::result::Result<T, Failure> {
        let start = Instant::now();
        let mut pause = self.opts.backoff;
        let mut attempt = 1;
        loop {
            REQUESTS.fetch_add(1, Ordering::Relaxed);
            match op() {
                Ok(v) => return Ok(v),
                Err(f) if !f.retry => return Err(f),
                Err(f) => {
                    let spent = start.elapsed();
                    if attempt >= self.opts.attempts || spent + pause >= self.opts.budget {
                        return Err(Failure {
                            msg: format!("{} (gave up after {attempt} attempt{} in {:.1} s)", f.msg, if attempt == 1 { "" } else { "s" }, spent.as_secs_f64()),
                            ..f
                        });
                    }
                    std::thread::sleep(pause);
                    pause = (pause * 2).min(Duration::from_secs(4));
                    attempt += 1;
                }
            }
        }
    }

    /// Fill `out` with the bytes at `offset` in one range request (retried).
    fn fetch(&self, offset: u64, out: &mut [u8]) -> std::result::Result<(), Failure> {
        let n = out.len() as u64;
        if n == 0 {
            return Ok(());
        }
        let last = offset + n - 1;
        self.with_retries(|| {
            let mut resp = self.agent.get(&self.url.full()).header("Range", format!("bytes={offset}-{last}")).call().map_err(|e| client_failure(&e))?;
            let status = resp.status().as_u16();
            match status {
                206 => match header(&resp, "content-range").as_deref().and_then(parse_content_range) {
                    Some((a, b, total)) if a == offset && b == last && total == self.len => {}
                    Some((_, _, total)) if total != self.len => {
                        return Err(Failure::fatal(
                            io::ErrorKind::InvalidData,
                            format!("the server's size changed: it said {} bytes, now {total} (the blob was modified or the server lies about its size)", self.len),
                        ))
                    }
                    _ => return Err(Failure::fatal(io::ErrorKind::InvalidData, format!("the server answered bytes {offset}-{last} with another range"))),
                },
                // The whole file is what was asked for: fine.
                200 if offset == 0 && n == self.len => {}
                200 => return Err(Failure::fatal(io::ErrorKind::Unsupported, NO_RANGES)),
                s => return Err(status_failure(s)),
            }
            let mut reader = resp.body_mut().with_config().limit(n + 1).reader();
            let mut got = 0usize;
            while got < out.len() {
                match reader.read(&mut out[got..]) {
                    Ok(0) => break,
                    Ok(k) => got += k,
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                    // A body cut short of its Content-Length.
                    Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => break,
                    Err(e) => {
                        BYTES.fetch_add(got as u64, Ordering::Relaxed);
                        return Err(Failure::transient(format!("reading bytes {offset}-{last} failed ({})", io_kind(e.kind()))));
                    }
                }
            }
            BYTES.fetch_add(got as u64, Ordering::Relaxed);
            if got < out.len() {
                return Err(Failure::transient(format!("short read: the server sent {got} of the {n} bytes at {offset}")));
            }
            Ok(())
        })
    }

    /// Fetch `[offset, offset + out.len())`, in parallel pieces when large.
    fn fetch_span(&self, offset: u64, out: &mut [u8]) -> std::result::Result<(), Failure> {
        let n = out.len() as u64;
        if n < PARALLEL_MIN {
            return self.fetch(offset, out);
        }
        let piece = n.div_ceil(PARALLEL as u64).div_ceil(BLOCK) * BLOCK;
        std::thread::scope(|s| {
            let handles: Vec<_> = out
                .chunks_mut(piece as usize)
                .enumerate()
                .map(|(i, chunk)| {
                    let at = offset + i as u64 * piece;
                    s.spawn(move || self.fetch(at, chunk))
                })
                .collect();
            let mut first_err = None;
            for h in handles {
                let r = h.join().unwrap_or_else(|_| Err(Failure::fatal(io::ErrorKind::Other, "a fetch thread failed")));
                if let Err(f) = r {
                    first_err.get_or_insert(f);
                }
            }
            first_err.map_or(Ok(()), Err)
        })
    }

    fn read_cached(&self, offset: u64, buf: &mut [u8]) -> std::result::Result<(), Failure> {
        let end = offset + buf.len() as u64;
        let b0 = offset / BLOCK;
        let b1 = (end - 1) / BLOCK;
        let last_block = (self.len - 1) / BLOCK;
        let mut cache = self.lock();
        // Read-ahead: earned by reading on where the previous read ended.
        let window = if offset == cache.last_end && offset != 0 { (cache.window * 2).clamp(2 * BLOCK, MAX_AHEAD) } else { 0 };
        cache.window = window;
        cache.last_end = end;
        // Runs of missing blocks; the last one grows by the window (up to the
        // next cached block and the end of the file).
        let mut runs: Vec<(u64, u64)> = Vec::new();
        for b in b0..=b1 {
            if cache.contains(b) {
                continue;
            }
            match runs.last_mut() {
                Some((_, e)) if *e + 1 == b => *e = b,
                _ => runs.push((b, b)),
            }
        }
        if window > 0 {
            let stop = (b1 + window / BLOCK).min(last_block);
            let mut e = b1;
            while e < stop && !cache.contains(e + 1) {
                e += 1;
            }
            if e > b1 {
                match runs.last_mut() {
                    Some((_, re)) if *re == b1 => *re = e,
                    _ => runs.push((b1 + 1, e)),
                }
            }
        }
        // Fetch each run (one request, or parallel pieces when large).
        let mut fetched: HashMap<u64, Arc<Vec<u8>>> = HashMap::new();
        for &(rb, re) in &runs {
            let start = rb * BLOCK;
            let stop = ((re + 1) * BLOCK).min(self.len);
            let mut data = vec![0u8; (stop - start) as usize];
            self.fetch_span(start, &mut data)?;
            for (i, chunk) in data.chunks(BLOCK as usize).enumerate() {
                fetched.insert(rb + i as u64, Arc::new(chunk.to_vec()));
            }
        }
        for b in b0..=b1 {
            let data = match fetched.get(&b) {
                Some(d) => d.clone(),
                None => cache.get(b).ok_or_else(|| Failure::fatal(io::ErrorKind::Other, "cache block missing"))?,
            };
            let bs = b * BLOCK;
            let from = offset.max(bs);
            let to = end.min(bs + data.len() as u64);
            if to <= from {
                return Err(Failure::fatal(io::ErrorKind::UnexpectedEof, "short block"));
            }
            buf[(from - offset) as usize..(to - offset) as usize].copy_from_slice(&data[(from - bs) as usize..(to - bs) as usize]);
        }
        for (b, d) in fetched {
            cache.put(b, d);
        }
        Ok(())
    }
}

fn make_agent(url: &Url, opts: &Options) -> ureq::Agent {
    let b = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .max_redirects(MAX_REDIRECTS)
        .timeout_global(Some(opts.timeout))
        .user_agent(concat!("rdprescue/", env!("CARGO_PKG_VERSION")))
        .max_idle_connections_per_host(PARALLEL + 1);
    // Loopback never goes through a proxy of the environment.
    let b = if url.is_loopback() { b.proxy(None) } else { b };
    #[cfg(windows)]
    let b = b.tls_config(
        ureq::tls::TlsConfig::builder().provider(ureq::tls::TlsProvider::NativeTls).root_certs(ureq::tls::RootCerts::PlatformVerifier).build(),
    );
    b.build().new_agent()
}

fn header(resp: &ureq::http::Response<ureq::Body>, name: &str) -> Option<String> {
    resp.headers().get(name).and_then(|v| v.to_str().ok()).map(str::to_string)
}

fn is_html(resp: &ureq::http::Response<ureq::Body>) -> bool {
    header(resp, "content-type").is_some_and(|t| {
        let t = t.trim().to_ascii_lowercase();
        t.starts_with("text/html") || t.starts_with("application/xhtml")
    })
}

/// An HTML page served as if it were the file (an error or login page).
fn looks_like_html(head: &[u8]) -> bool {
    let start = head.iter().position(|b| !b.is_ascii_whitespace()).unwrap_or(head.len());
    let s = &head[start..head.len().min(start + 64)];
    let lower: Vec<u8> = s.iter().map(u8::to_ascii_lowercase).collect();
    lower.starts_with(b"<!doctype html") || lower.starts_with(b"<html") || lower.starts_with(b"<?xml")
}

/// `bytes A-B/TOTAL` -> (A, B, TOTAL).
fn parse_content_range(v: &str) -> Option<(u64, u64, u64)> {
    let rest = v.trim().strip_prefix("bytes")?.trim_start();
    let (range, total) = rest.split_once('/')?;
    let (a, b) = range.split_once('-')?;
    let (a, b, t) = (a.trim().parse().ok()?, b.trim().parse().ok()?, total.trim().parse().ok()?);
    (a <= b && b < t).then_some((a, b, t))
}

impl Source for HttpSource {
    fn read_at(&self, offset: u64, buf: &mut [u8]) -> io::Result<()> {
        if buf.is_empty() {
            return Ok(());
        }
        let end = offset.checked_add(buf.len() as u64).filter(|e| *e <= self.len).ok_or_else(|| io::Error::from(io::ErrorKind::UnexpectedEof))?;
        count_read(buf.len());
        let r = if end - offset >= DIRECT_MIN {
            let mut c = self.lock();
            c.last_end = end;
            c.window = 0;
            drop(c);
            self.fetch_span(offset, buf)
        } else {
            self.read_cached(offset, buf)
        };
        r.map_err(Failure::into_io)
    }
    fn len(&self) -> u64 {
        self.len
    }
    fn name(&self) -> String {
        self.url.shown()
    }
    fn identity(&self) -> SourceId {
        SourceId(format!("url:{}", self.url.shown()))
    }
    fn sibling(&self, name: &str) -> Result<Arc<dyn Source>> {
        let url = self.url.sibling(name).ok_or_else(|| Error::Open {
            layer: Layer::Http,
            path: PathBuf::from(name),
            source: io::Error::new(io::ErrorKind::NotFound, "not a relative name"),
        })?;
        Ok(Arc::new(Self::open_url(url, self.opts.clone())?))
    }
    fn sibling_name(&self, name: &str) -> String {
        self.url.sibling(name).map_or_else(|| name.to_string(), |u| u.shown())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_hide_secrets() {
        let u = Url::parse("HTTPS://me:pw@acct.blob.core.windows.net/c/disk.vhd?sv=1&sig=SECRET#frag").unwrap();
        assert_eq!(u.shown(), "https://acct.blob.core.windows.net/c/disk.vhd");
        assert_eq!(u.full(), "https://me:pw@acct.blob.core.windows.net/c/disk.vhd?sv=1&sig=SECRET");
        let p = u.sibling("../base/par ent.vhdx").unwrap();
        assert_eq!(p.full(), "https://me:pw@acct.blob.core.windows.net/base/par%20ent.vhdx?sv=1&sig=SECRET");
        assert_eq!(p.shown(), "https://acct.blob.core.windows.net/base/par%20ent.vhdx");
        assert!(u.sibling("../../x").is_none());
        assert!(u.sibling("/etc/passwd").is_none());
        assert!(Url::parse("ftp://x/y").is_none());
        assert!(Url::parse("http:///y").is_none());
        assert!(is_url("Https://x") && is_url("http://x") && !is_url("disk.vhd") && !is_url("htt"));
        assert!(Url::parse("http://127.0.0.1:8080/a").unwrap().is_loopback());
        assert!(!Url::parse("http://example.com/a").unwrap().is_loopback());
    }

    #[test]
    fn content_range() {
        assert_eq!(parse_content_range("bytes 0-0/1234"), Some((0, 0, 1234)));
        assert_eq!(parse_content_range("bytes 10-19/20"), Some((10, 19, 20)));
        assert_eq!(parse_content_range("bytes 10-20/20"), None);
        assert_eq!(parse_content_range("bytes */20"), None);
        assert_eq!(parse_content_range("items 0-1/2"), None);
    }

    #[test]
    fn lru_cap() {
        let mut c = Cache::default();
        // One block over the cap: exactly one eviction, the least recently used.
        let n = CACHE_CAP / BLOCK + 1;
        for b in 0..n {
            c.put(b, Arc::new(vec![0u8; BLOCK as usize]));
            if b == 1 {
                // Block 0 used again: it outlives block 1.
                assert!(c.get(0).is_some());
            }
        }
        assert!(c.bytes <= CACHE_CAP);
        assert!(c.contains(0) && !c.contains(1) && c.contains(n - 1));
    }
}
