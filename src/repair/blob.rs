//! The few Azure Blob Storage operations a remote fix needs (issue 17): Get
//! Blob Properties, Copy Blob (server-side, polled until it ends), Abort Copy,
//! Put Page, a ranged Get Blob for the read-back, and Delete Blob. Blocking
//! HTTP through `ureq` (the client the HTTP source uses), authenticated by
//! the SAS token in the blob URL's query: the user hands over a URL such as
//! `https://acct.blob.core.windows.net/c/disk.vhd?sv=...&sig=...`, and the
//! client only ever appends its own parameters to it.
//!
//! The query string is a secret. [`BlobUrl`]'s `Display` and `Debug` drop it,
//! every error names the URL without it (plus the operation, the HTTP status
//! and the service's `x-ms-error-code`), and messages that come from the HTTP
//! stack are scrubbed of it before they are shown.
//!
//! Every request and every uploaded byte is counted ([`stats`]), so `fix`
//! can say what a repair cost and the tests can bound it.

use crate::error::{Error, Layer, Result};
use std::io;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// The storage service version the requests ask for (Put Page, Copy Blob and
/// friends are unchanged since long before it; Azurite accepts it).
pub const API_VERSION: &str = "2021-08-06";

/// Largest Put Page body the service accepts.
pub const MAX_PUT_PAGE: usize = 4 << 20;

/// Page size of a page blob: every write starts and ends on a multiple of it.
pub const PAGE: u64 = 512;

static REQUESTS: AtomicU64 = AtomicU64::new(0);
static UPLOADED: AtomicU64 = AtomicU64::new(0);

/// What this process sent to blob storage so far.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Stats {
    /// HTTP requests made (retries included).
    pub requests: u64,
    /// Bytes sent as Put Page bodies.
    pub uploaded: u64,
}

/// Requests and uploaded bytes of this process so far.
pub fn stats() -> Stats {
    Stats { requests: REQUESTS.load(Ordering::Relaxed), uploaded: UPLOADED.load(Ordering::Relaxed) }
}

/// A blob's URL: `scheme://host[:port]/container/blob` and, kept apart, its
/// query (the SAS token), which is never shown.
#[derive(Clone, PartialEq, Eq)]
pub struct BlobUrl {
    base: String,
    query: String,
}

impl BlobUrl {
    /// Parse an `https://` (or, for a local emulator, `http://`) blob URL.
    /// The path must name a container and a blob.
    pub fn parse(url: &str) -> Result<BlobUrl> {
        let (base, query) = match url.split_once('?') {
            Some((b, q)) => (b, q),
            None => (url, ""),
        };
        let bad = |why: &str| Error::Usage(format!("{}: {base}: {why}", Layer::Repair));
        let rest = base.strip_prefix("https://").or_else(|| base.strip_prefix("http://")).ok_or_else(|| bad("not an https:// URL of a blob"))?;
        let Some((host, path)) = rest.split_once('/') else { return Err(bad("no container and blob in the URL")) };
        if host.is_empty() || host.contains(['@', ' ']) {
            return Err(bad("no host in the URL (user names are not accepted: the SAS token authenticates)"));
        }
        // Azure: /container/blob; the emulator: /account/container/blob.
        let parts: Vec<&str> = path.split('/').collect();
        if parts.len() < 2 || parts.iter().any(|p| p.is_empty()) {
            return Err(bad("the URL must name a container and a blob (https://ACCOUNT.blob.core.windows.net/CONTAINER/BLOB?SAS)"));
        }
        if base.contains('#') || query.contains('#') || base.chars().any(|c| c.is_control() || c == ' ') {
            return Err(bad("unexpected characters in the URL (quote it in the shell)"));
        }
        Ok(BlobUrl { base: base.to_string(), query: query.to_string() })
    }

    /// The URL without its query: what messages show.
    pub fn redacted(&self) -> &str {
        &self.base
    }

    /// The whole URL, SAS included: for requests and the copy source header
    /// only, never for messages.
    pub fn secret_url(&self) -> String {
        self.with("")
    }

    /// Whether the URL carries a query (a SAS token).
    pub fn has_query(&self) -> bool {
        !self.query.is_empty()
    }

    /// The URL with `extra` parameters (`comp=page`) before the SAS.
    fn with(&self, extra: &str) -> String {
        match (extra.is_empty(), self.query.is_empty()) {
            (true, true) => self.base.clone(),
            (true, false) => format!("{}?{}", self.base, self.query),
            (false, true) => format!("{}?{extra}", self.base),
            (false, false) => format!("{}?{extra}&{}", self.base, self.query),
        }
    }

    /// Remove anything of the query from `msg` (an HTTP stack message that
    /// may quote the request line): the whole query, and each parameter value.
    pub fn scrub(&self, msg: &str) -> String {
        let mut out = msg.replace(&self.query, "<query removed>");
        for kv in self.query.split('&') {
            if let Some((_, v)) = kv.split_once('=') {
                if v.len() >= 4 {
                    out = out.replace(v, "<removed>");
                }
            }
        }
        out
    }
}

impl std::fmt::Display for BlobUrl {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.base)
    }
}

impl std::fmt::Debug for BlobUrl {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "BlobUrl({})", self.base)
    }
}

/// What Get Blob Properties said.
#[derive(Debug, Clone, Default)]
pub struct Props {
    /// `Content-Length`: the blob's size.
    pub len: u64,
    /// `x-ms-blob-type`: `PageBlob`, `BlockBlob`, `AppendBlob`.
    pub blob_type: String,
    /// `x-ms-copy-status`: `pending`, `success`, `aborted`, `failed` (after a copy).
    pub copy_status: Option<String>,
    /// `x-ms-copy-id`.
    pub copy_id: Option<String>,
    /// `x-ms-copy-progress`: bytes copied and total.
    pub copy_progress: Option<(u64, u64)>,
    /// `x-ms-copy-status-description` (why a copy failed).
    pub copy_description: Option<String>,
}

/// Bounds of the HTTP exchanges.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// One request, from connecting to the end of the response.
    pub per_request: Duration,
    /// Attempts of an idempotent request that met a 500/503 or a dropped connection.
    pub attempts: u32,
    /// How long a server-side copy may take before it is aborted.
    pub copy_wait: Duration,
}

impl Default for Limits {
    fn default() -> Self {
        // RDPRESCUE_COPY_TIMEOUT_SECS: a 127 GiB disk copied between storage
        // accounts can take an hour or more; three hours by default.
        let copy = std::env::var("RDPRESCUE_COPY_TIMEOUT_SECS").ok().and_then(|s| s.parse().ok()).unwrap_or(3 * 3600);
        Limits { per_request: Duration::from_secs(120), attempts: 4, copy_wait: Duration::from_secs(copy) }
    }
}

/// A blocking client for the operations above.
pub struct Client {
    agent: ureq::Agent,
    limits: Limits,
}

/// One response: status, the headers used, the body (small ones only).
struct Resp {
    status: u16,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

impl Resp {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(k, _)| k.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str())
    }
}

/// Largest response body read (error descriptions, page ranges, read-backs).
const MAX_BODY: u64 = 8 << 20;

impl Default for Client {
    fn default() -> Self {
        Client::new(Limits::default())
    }
}

impl Client {
    pub fn new(limits: Limits) -> Client {
        let agent = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .timeout_global(Some(limits.per_request))
            .timeout_connect(Some(Duration::from_secs(15)))
            // A blob endpoint does not redirect; a redirect would carry the SAS elsewhere.
            .max_redirects(0)
            .user_agent(concat!("rdprescue/", env!("CARGO_PKG_VERSION")))
            .build()
            .new_agent();
        Client { agent, limits }
    }

    /// One request; `what` names the operation in errors. Retried (bounded,
    /// with backoff) on 500/503 and transport errors when `idempotent`.
    fn request(&self, method: &str, url: &BlobUrl, extra: &str, headers: &[(&str, String)], body: Option<&[u8]>, what: &str, offset: u64, idempotent: bool) -> Result<Resp> {
        let full = url.with(extra);
        let attempts = if idempotent { self.limits.attempts.max(1) } else { 1 };
        let mut last = String::new();
        for attempt in 0..attempts {
            if attempt > 0 {
                std::thread::sleep(Duration::from_millis(200u64 << attempt.min(5)));
            }
            REQUESTS.fetch_add(1, Ordering::Relaxed);
            let mut b = ureq::http::Request::builder().method(method).uri(&full).header("x-ms-version", API_VERSION);
            for (k, v) in headers {
                b = b.header(*k, v.as_str());
            }
            let sent = match body {
                Some(data) => b.body(data).map(|r| self.agent.run(r)),
                None => b.body(()).map(|r| self.agent.run(r)),
            };
            let resp = match sent {
                Err(e) => return Err(io_err(url, offset, what, url.scrub(&e.to_string()))),
                Ok(Err(e)) => {
                    last = url.scrub(&e.to_string());
                    continue;
                }
                Ok(Ok(r)) => r,
            };
            let status = resp.status().as_u16();
            let headers: Vec<(String, String)> = resp.headers().iter().map(|(k, v)| (k.as_str().to_string(), String::from_utf8_lossy(v.as_bytes()).into_owned())).collect();
            let mut resp = resp;
            let body = if method == "HEAD" { Vec::new() } else { resp.body_mut().with_config().limit(MAX_BODY).read_to_vec().unwrap_or_default() };
            let r = Resp { status, headers, body };
            if matches!(status, 500 | 502 | 503 | 504) && attempt + 1 < attempts {
                last = status_line(&r);
                continue;
            }
            return Ok(r);
        }
        Err(io_err(url, offset, what, format!("{last} (after {attempts} attempts)")))
    }

    /// Get Blob Properties; `None` when there is no such blob.
    pub fn properties(&self, url: &BlobUrl) -> Result<Option<Props>> {
        let r = self.request("HEAD", url, "", &[], None, "Get Blob Properties", 0, true)?;
        match r.status {
            404 => Ok(None),
            200 => Ok(Some(props(&r))),
            _ => Err(status_err(url, 0, "Get Blob Properties", &r)),
        }
    }

    /// Start a server-side Copy Blob of `source` (a URL the service can read:
    /// a SAS URL of a blob or snapshot) into `dest`, which must not exist
    /// (`If-None-Match: *`). Returns the copy's state as the service answered.
    pub fn start_copy(&self, dest: &BlobUrl, source: &BlobUrl) -> Result<Props> {
        let h = [("x-ms-copy-source", source.secret_url()), ("if-none-match", "*".to_string())];
        let r = self.request("PUT", dest, "", &h, Some(&[]), "Copy Blob", 0, false)?;
        match r.status {
            202 | 201 => Ok(Props {
                copy_status: r.header("x-ms-copy-status").map(str::to_string),
                copy_id: r.header("x-ms-copy-id").map(str::to_string),
                ..Props::default()
            }),
            409 | 412 if matches!(r.header("x-ms-error-code"), Some("BlobAlreadyExists" | "ConditionNotMet" | "TargetConditionNotMet")) => {
                Err(Error::Refused { layer: Layer::Repair, msg: format!("{dest} exists (it appeared while the fix was planned); nothing was written") })
            }
            _ => Err(status_err(dest, 0, "Copy Blob", &r).context(format!("copying {} into {dest}", source.redacted()))),
        }
    }

    /// Poll Get Blob Properties until the copy into `dest` ends, calling
    /// `progress(copied, total)`; bounded by [`Limits::copy_wait`]. Returns
    /// the final properties; a failed or aborted copy is an error.
    pub fn wait_copy(&self, dest: &BlobUrl, progress: &mut dyn FnMut(u64, u64)) -> Result<Props> {
        let start = Instant::now();
        let mut pause = Duration::from_millis(100);
        loop {
            let p = self.properties(dest)?.ok_or_else(|| io_err(dest, 0, "Copy Blob", "the destination blob vanished during the copy".into()))?;
            if let Some((done, total)) = p.copy_progress {
                progress(done, total);
            }
            match p.copy_status.as_deref() {
                Some("success") | None => return Ok(p),
                Some("pending") => {}
                Some(s) => {
                    let why = p.copy_description.clone().unwrap_or_default();
                    return Err(io_err(dest, 0, "Copy Blob", format!("the server-side copy ended with status {s}: {}", dest.scrub(&why))));
                }
            }
            if start.elapsed() >= self.limits.copy_wait {
                if let Some(id) = &p.copy_id {
                    let _ = self.abort_copy(dest, id);
                }
                return Err(io_err(dest, 0, "Copy Blob", format!("the server-side copy did not finish within {} s (RDPRESCUE_COPY_TIMEOUT_SECS); aborted", self.limits.copy_wait.as_secs())));
            }
            std::thread::sleep(pause);
            pause = (pause * 2).min(Duration::from_secs(2));
        }
    }

    /// Abort Copy Blob.
    pub fn abort_copy(&self, dest: &BlobUrl, copy_id: &str) -> Result<()> {
        let extra = format!("comp=copy&copyid={}", copy_id.replace(|c: char| !(c.is_ascii_alphanumeric() || c == '-'), ""));
        let r = self.request("PUT", dest, &extra, &[("x-ms-copy-action", "abort".into())], Some(&[]), "Abort Copy Blob", 0, true)?;
        match r.status {
            202 | 204 | 200 => Ok(()),
            _ => Err(status_err(dest, 0, "Abort Copy Blob", &r)),
        }
    }

    /// Put Page (`x-ms-page-write: update`) of `data` at `offset`: both a
    /// multiple of 512, at most 4 MiB.
    pub fn put_page(&self, url: &BlobUrl, offset: u64, data: &[u8]) -> Result<()> {
        if offset % PAGE != 0 || data.len() as u64 % PAGE != 0 || data.is_empty() || data.len() > MAX_PUT_PAGE {
            return Err(Error::Usage(format!("{}: Put Page of {} bytes at {offset:#x}: pages are 512-byte aligned, 4 MiB at most", Layer::Repair, data.len())));
        }
        let range = format!("bytes={}-{}", offset, offset + data.len() as u64 - 1);
        let h = [("x-ms-page-write", "update".to_string()), ("x-ms-range", range)];
        let r = self.request("PUT", url, "comp=page", &h, Some(data), "Put Page", offset, true)?;
        if r.status != 201 {
            return Err(status_err(url, offset, "Put Page", &r));
        }
        UPLOADED.fetch_add(data.len() as u64, Ordering::Relaxed);
        Ok(())
    }

    /// Get Blob of `len` bytes at `offset` (`len` at most 8 MiB).
    pub fn get_range(&self, url: &BlobUrl, offset: u64, len: u64) -> Result<Vec<u8>> {
        if len == 0 || len > MAX_BODY {
            return Err(Error::Usage(format!("{}: ranged read of {len} bytes: 1 byte to 8 MiB", Layer::Repair)));
        }
        let h = [("x-ms-range", format!("bytes={}-{}", offset, offset + len - 1))];
        let r = self.request("GET", url, "", &h, None, "Get Blob", offset, true)?;
        if r.status != 206 && r.status != 200 {
            return Err(status_err(url, offset, "Get Blob", &r));
        }
        if r.body.len() as u64 != len {
            return Err(io_err(url, offset, "Get Blob", format!("asked for {len} bytes, got {}", r.body.len())));
        }
        Ok(r.body)
    }

    /// Delete Blob (a blob that is already gone is fine).
    pub fn delete(&self, url: &BlobUrl) -> Result<()> {
        let r = self.request("DELETE", url, "", &[], None, "Delete Blob", 0, true)?;
        match r.status {
            202 | 200 | 404 => Ok(()),
            _ => Err(status_err(url, 0, "Delete Blob", &r)),
        }
    }
}

fn props(r: &Resp) -> Props {
    let progress = r.header("x-ms-copy-progress").and_then(|s| {
        let (a, b) = s.split_once('/')?;
        Some((a.trim().parse().ok()?, b.trim().parse().ok()?))
    });
    Props {
        len: r.header("content-length").and_then(|v| v.trim().parse().ok()).unwrap_or(0),
        blob_type: r.header("x-ms-blob-type").unwrap_or("").to_string(),
        copy_status: r.header("x-ms-copy-status").map(str::to_string),
        copy_id: r.header("x-ms-copy-id").map(str::to_string),
        copy_progress: progress,
        copy_description: r.header("x-ms-copy-status-description").map(str::to_string),
    }
}

/// `HTTP 403 AuthenticationFailed`, with what the status means for a SAS.
fn status_line(r: &Resp) -> String {
    let code = r.header("x-ms-error-code").map(|c| format!(" {c}")).unwrap_or_default();
    let hint = match r.status {
        403 => " (the SAS token is expired, lacks a permission, or its signature does not match)",
        404 => " (no such blob or container)",
        409 => " (conflict)",
        _ => "",
    };
    format!("HTTP {}{code}{hint}", r.status)
}

fn status_err(url: &BlobUrl, offset: u64, what: &str, r: &Resp) -> Error {
    io_err(url, offset, what, status_line(r))
}

fn io_err(url: &BlobUrl, offset: u64, what: &str, msg: String) -> Error {
    Error::Io { layer: Layer::Repair, offset, path: url.redacted().to_string(), source: io::Error::other(format!("{what}: {}", url.scrub(&msg).replace('\n', " "))) }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn url_parts_and_redaction() {
        let u = BlobUrl::parse("https://acct.blob.core.windows.net/c/disk.vhd?sv=2021&sig=SECRETSIG%3D").unwrap();
        assert_eq!(u.redacted(), "https://acct.blob.core.windows.net/c/disk.vhd");
        assert_eq!(u.to_string(), u.redacted());
        assert!(!format!("{u:?}").contains("SECRET"));
        assert_eq!(u.with("comp=page"), "https://acct.blob.core.windows.net/c/disk.vhd?comp=page&sv=2021&sig=SECRETSIG%3D");
        assert_eq!(u.scrub("GET /c/disk.vhd?sv=2021&sig=SECRETSIG%3D failed"), "GET /c/disk.vhd?<query removed> failed");
        assert_eq!(u.scrub("sig=SECRETSIG%3D"), "sig=<removed>");
        let e = io_err(&u, 512, "Put Page", "x sig=SECRETSIG%3D".into()).to_string();
        assert!(!e.contains("SECRET") && e.contains("repair at offset 0x200") && e.contains("disk.vhd"), "{e}");
        for bad in ["ftp://a/c/b", "https://a", "https://a/c", "https://a//b", "https://u@a/c/b", "https://a/c/b#x"] {
            assert!(BlobUrl::parse(bad).is_err(), "{bad}");
        }
        assert!(BlobUrl::parse("http://127.0.0.1:10000/devstoreaccount1/c/d.vhd").is_ok());
    }

    #[test]
    fn put_page_refuses_unaligned_before_any_request() {
        let c = Client::new(Limits { per_request: Duration::from_millis(10), attempts: 1, copy_wait: Duration::ZERO });
        let u = BlobUrl::parse("http://127.0.0.1:9/c/b").unwrap();
        let before = stats().requests;
        assert!(c.put_page(&u, 1, &[0; 512]).is_err());
        assert!(c.put_page(&u, 0, &[0; 100]).is_err());
        assert!(c.put_page(&u, 0, &vec![0; MAX_PUT_PAGE + 512]).is_err());
        assert_eq!(stats().requests, before);
    }
}
