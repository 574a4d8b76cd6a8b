//! Remote fix into Azure page blobs (issue 17, items 3 and 4) against
//! Azurite, the Azure Storage emulator, which `.ci/run` installs from the npm
//! registry, starts in memory on 127.0.0.1 and announces with
//! `RDPRESCUE_AZURITE=1` (build.rs: cfg `azurite`) and
//! `RDPRESCUE_AZURITE_BLOB` (its blob endpoint with the account,
//! `http://127.0.0.1:PORT/devstoreaccount1`).
//!
//! A scenario image, converted to a fixed VHD by qemu-img (what Azure disks
//! are), is uploaded once per test binary as a page blob, with SAS tokens
//! signed here with the emulator's well-known dev key, as the az CLI makes
//! them. Then `inspect`, `audit` and `fix SOURCE_SAS --out-url DEST_SAS` run
//! against the blobs, and the destination is downloaded and checked by
//! `inspect`, by the same fix written locally (byte for byte), by qemu-img
//! and by ntfs-3g + hivex. Failure cases: the destination exists, a bad SAS
//! (one line, no secret), a source that is not a fixed VHD, a failure after
//! the copy began (the destination is deleted).

mod common;
use common::*;
use hmac::{Hmac, Mac};
use serde_json::Value as J;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::OnceLock;

const ACCOUNT: &str = "devstoreaccount1";
/// Azurite's documented, public development key (not a secret).
const DEV_KEY: &str = "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw==";
const SV: &str = "2021-08-06";
const FAR: &str = "2099-01-01T00:00:00Z";

/// The emulator's blob endpoint (with the account path); a test that runs
/// (cfg `azurite`) without a reachable one fails.
fn endpoint() -> String {
    let ep = std::env::var("RDPRESCUE_AZURITE_BLOB").expect("RDPRESCUE_AZURITE=1 but RDPRESCUE_AZURITE_BLOB (the Azurite blob endpoint) is not set");
    let ep = ep.trim_end_matches('/').to_string();
    let probe = agent().get(&format!("{ep}?comp=list")).call();
    assert!(probe.is_ok(), "Azurite is not answering at {ep}: {:?}", probe.err());
    ep
}

fn agent() -> ureq::Agent {
    ureq::Agent::config_builder().http_status_as_error(false).build().new_agent()
}

fn sign(string_to_sign: &str) -> String {
    use base64::Engine;
    let key = base64::engine::general_purpose::STANDARD.decode(DEV_KEY).unwrap();
    let mut mac = Hmac::<sha2::Sha256>::new_from_slice(&key).unwrap();
    mac.update(string_to_sign.as_bytes());
    let sig = base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes());
    sig.replace('+', "%2B").replace('/', "%2F").replace('=', "%3D")
}

/// An account SAS for the test's own setup (containers, uploads, downloads).
fn account_sas() -> String {
    let (sp, ss, srt) = ("rwdlac", "b", "sco");
    let sts = format!("{ACCOUNT}\n{sp}\n{ss}\n{srt}\n\n{FAR}\n\n\n{SV}\n\n");
    format!("sv={SV}&ss={ss}&srt={srt}&sp={sp}&se={FAR}&sig={}", sign(&sts))
}

/// A service SAS for one blob (what `az storage blob generate-sas` and
/// `az snapshot grant-access` hand out), with permissions `sp`, expiring at `se`.
fn blob_sas(container: &str, blob: &str, sp: &str, se: &str) -> String {
    let sts = format!("{sp}\n\n{se}\n/blob/{ACCOUNT}/{container}/{blob}\n\n\n\n{SV}\nb\n\n\n\n\n\n\n");
    format!("sv={SV}&sr=b&sp={sp}&se={se}&sig={}", sign(&sts))
}

/// The uploaded source blobs, once per test binary.
struct Fixture {
    ep: String,
    container: String,
    /// The scenario as a fixed VHD, locally and as the page blob `source.vhd`.
    vhd: PathBuf,
    /// The raw image (not a VHD) as the page blob `raw.img`.
    dir: PathBuf,
}

impl Fixture {
    fn url(&self, blob: &str, sp: &str) -> String {
        format!("{}/{}/{blob}?{}", self.ep, self.container, blob_sas(&self.container, blob, sp, FAR))
    }
    fn setup_url(&self, blob: &str, extra: &str) -> String {
        let q = if extra.is_empty() { account_sas() } else { format!("{extra}&{}", account_sas()) };
        format!("{}/{}/{blob}?{q}", self.ep, self.container)
    }
    /// Get Blob Properties: (status, ETag).
    fn head(&self, blob: &str) -> (u16, String) {
        let r = agent().head(&self.setup_url(blob, "")).header("x-ms-version", SV).call().unwrap();
        let etag = r.headers().get("etag").map(|v| v.to_str().unwrap().to_string()).unwrap_or_default();
        (r.status().as_u16(), etag)
    }
    /// The whole blob, to a local file.
    fn download(&self, blob: &str, to: &Path) {
        let mut r = agent().get(&self.setup_url(blob, "")).header("x-ms-version", SV).call().unwrap();
        assert_eq!(r.status().as_u16(), 200, "download {blob}");
        let mut f = std::fs::File::create(to).unwrap();
        std::io::copy(&mut r.body_mut().as_reader(), &mut f).unwrap();
    }
    /// A new page blob holding the file `src` (only its non-zero pages sent).
    fn upload(&self, src: &Path, blob: &str) {
        let data = std::fs::read(src).unwrap();
        assert_eq!(data.len() % 512, 0);
        let r = agent()
            .put(&self.setup_url(blob, ""))
            .header("x-ms-version", SV)
            .header("x-ms-blob-type", "PageBlob")
            .header("x-ms-blob-content-length", data.len().to_string())
            .send(&[][..])
            .unwrap();
        assert_eq!(r.status().as_u16(), 201, "Put Blob {blob}");
        const CHUNK: usize = 4 << 20;
        for (i, chunk) in data.chunks(CHUNK).enumerate() {
            // Runs of non-zero 64 KiB pieces: unwritten pages of a page blob read as zeros.
            let mut at = 0;
            while at < chunk.len() {
                let piece = |a: usize| &chunk[a..(a + 65536).min(chunk.len())];
                if piece(at).iter().all(|b| *b == 0) {
                    at += 65536;
                    continue;
                }
                let mut end = at;
                while end < chunk.len() && !piece(end).iter().all(|b| *b == 0) {
                    end = (end + 65536).min(chunk.len());
                }
                let off = i * CHUNK + at;
                let r = agent()
                    .put(&self.setup_url(blob, "comp=page"))
                    .header("x-ms-version", SV)
                    .header("x-ms-page-write", "update")
                    .header("x-ms-range", format!("bytes={}-{}", off, off + (end - at) - 1))
                    .send(&chunk[at..end])
                    .unwrap();
                assert_eq!(r.status().as_u16(), 201, "Put Page {blob} at {off}");
                at = end;
            }
        }
    }
}

/// A fresh copy of the source for a test whose fix writes pages: Azurite
/// (3.37) shares the page list of a Copy Blob destination with its source,
/// so a Put Page into the copy shows in the source too (its ETag stays: the
/// source is not written, and the test checks that), and the next fix of the
/// shared source would find nothing to fix. Real Azure copies.
fn own_source(f: &Fixture, name: &str) {
    f.upload(&f.vhd, name);
}

fn fixture() -> &'static Fixture {
    static F: OnceLock<Fixture> = OnceLock::new();
    F.get_or_init(|| {
        let ep = endpoint();
        let (_, all) = build_scenarios("azure").expect("scenario images");
        let sc = all.iter().find(|s| s["name"] == "crypto").expect("scenario crypto");
        let img = PathBuf::from(sc["image"].as_str().unwrap());
        let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("azure-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let raw = dir.join("source.raw");
        let vhd = dir.join("source.vhd");
        for (fmt, opts, out) in [("raw", "", &raw), ("vpc", "subformat=fixed,force_size=on", &vhd)] {
            let mut c = Command::new("qemu-img");
            c.args(["convert", "-O", fmt]);
            if !opts.is_empty() {
                c.args(["-o", opts]);
            }
            let o = c.arg(&img).arg(out).out().unwrap();
            assert!(o.status.success(), "qemu-img convert: {}", stderr(&o));
        }
        let container = format!("rdprescue-{}", std::process::id());
        let f = Fixture { ep, container, vhd, dir };
        let r = agent().put(&format!("{}/{}?restype=container&{}", f.ep, f.container, account_sas())).header("x-ms-version", SV).send(&[][..]).unwrap();
        assert_eq!(r.status().as_u16(), 201, "Create Container");
        f.upload(&f.vhd, "source.vhd");
        f.upload(&raw, "raw.img");
        std::fs::remove_file(&raw).unwrap();
        f
    })
}

fn run(args: &[&str], env: &[(&str, &str)]) -> Output {
    let mut c = Command::new(env!("CARGO_BIN_EXE_rdprescue"));
    c.args(args).env("SOURCE_DATE_EPOCH", "1700000000").env("RDPRESCUE_HTTP_ATTEMPTS", "2").env("RDPRESCUE_HTTP_BACKOFF_MS", "20");
    for (k, v) in env {
        c.env(k, v);
    }
    c.out().unwrap()
}

/// No part of any SAS signature of `urls` is in the output.
fn assert_no_secret(o: &Output, urls: &[&str]) {
    let all = format!("{}{}", stdout(o), stderr(o));
    for u in urls {
        let sig = u.split("sig=").nth(1).unwrap().split('&').next().unwrap();
        assert!(!all.contains(sig) && !all.contains(&sig.replace("%2B", "+").replace("%2F", "/").replace("%3D", "=")), "a SAS signature was printed: {all}");
        assert!(!all.contains("sig="), "a SAS query was printed: {all}");
    }
}

/// Bytes uploaded, from fix's last line about the blob.
fn uploaded(o: &Output) -> u64 {
    let s = stdout(o);
    let line = s.lines().find(|l| l.contains("bytes of changed pages uploaded")).unwrap_or_else(|| panic!("no upload line: {s}"));
    let before = line.split(" bytes of changed pages uploaded").next().unwrap();
    before.rsplit(' ').next().unwrap().parse().unwrap()
}

fn findings(o: &Output) -> Vec<String> {
    let doc: J = serde_json::from_slice(&o.stdout).unwrap_or_else(|e| panic!("inspect --json: {e}: {}", stderr(o)));
    doc["findings"].as_array().unwrap().iter().map(|f| f["check"].as_str().unwrap().to_string()).collect()
}

#[test]
#[cfg_attr(not(all(azurite, scenarios)), ignore = "needs ../shared/data, the scenario-image tools and Azurite (.ci/run starts it)")]
fn remote_fix_uploads_only_the_changed_pages_and_equals_the_local_fix() {
    let f = fixture();
    // A source of its own (see own_source).
    own_source(f, "source-1.vhd");
    let src = f.url("source-1.vhd", "r");
    let dst = f.url("fixed-1.vhd", "racwd");
    let (_, etag_before) = f.head("source-1.vhd");
    let o = run(&["fix", &src, "--out-url", &dst, "--check", "rdp-deny-local"], &[]);
    assert_eq!(o.status.code(), Some(0), "fix: {}{}", stdout(&o), stderr(&o));
    assert_no_secret(&o, &[&src, &dst]);
    let up = uploaded(&o);
    assert!(up > 0 && up < 1 << 20, "uploaded {up} bytes: the changed pages only, under 1 MiB");
    assert_eq!(up % 512, 0);
    // Nothing was written to the source blob (its ETag changes with every write).
    assert_eq!(f.head("source-1.vhd"), (200, etag_before));

    // Read the destination back: rdprescue, then the same fix written locally.
    let got = f.dir.join("fixed-1.vhd");
    f.download("fixed-1.vhd", &got);
    let ins = run(&["inspect", "--json", got.to_str().unwrap()], &[]);
    let now = findings(&ins);
    assert!(!now.iter().any(|c| c == "rdp-deny-local"), "still reported: {now:?}");
    assert!(findings(&run(&["inspect", "--json", f.vhd.to_str().unwrap()], &[])).iter().any(|c| c == "rdp-deny-local"));
    let local = f.dir.join("local-fixed.vhd");
    let _ = std::fs::remove_file(&local);
    let o = run(&["fix", f.vhd.to_str().unwrap(), "--out", local.to_str().unwrap(), "--check", "rdp-deny-local"], &[]);
    assert_eq!(o.status.code(), Some(0), "local fix: {}", stderr(&o));
    let (a, b) = (std::fs::read(&got).unwrap(), std::fs::read(&local).unwrap());
    let (orig, n) = (std::fs::read(&f.vhd).unwrap(), a.len());
    assert_eq!(n, orig.len(), "the blob keeps the source's size");
    // The VHD footer (the last 512 bytes) is the source's, untouched.
    assert_eq!(a[n - 512..], orig[n - 512..], "the footer changed");
    // The data area equals the local fix's byte for byte, and differs from the source in under 1 MiB.
    assert!(a[..n - 512] == b[..n - 512], "the remote fix differs from the local fix");
    let changed = a.chunks(512).zip(orig.chunks(512)).filter(|(x, y)| x != y).count() as u64 * 512;
    assert!(changed > 0 && changed <= up, "{changed} bytes differ, {up} uploaded");

    // Independent readers: qemu-img sees a valid VHD of the same virtual size;
    // ntfs-3g reads the SYSTEM hive out of it, and hivex reads the new value.
    // (A fixed VHD has its footer at the end only: qemu-img is told the format.)
    let info = Command::new("qemu-img").args(["info", "-f", "vpc", "--output=json", got.to_str().unwrap()]).out().unwrap();
    let info: J = serde_json::from_slice(&info.stdout).unwrap();
    assert_eq!(info["format"], "vpc");
    assert_eq!(info["virtual-size"].as_u64().unwrap(), (n - 512) as u64);
    let cmp = Command::new("qemu-img").args(["compare", "-f", "vpc", "-F", "vpc", got.to_str().unwrap(), local.to_str().unwrap()]).out().unwrap();
    assert_eq!(cmp.status.code(), Some(0), "qemu-img compare with the local fix: {}", stdout(&cmp));
    let d: J = serde_json::from_slice(&run(&["disk", "--json", got.to_str().unwrap()], &[]).stdout).unwrap();
    let w = d["windows_volumes"][0].as_u64().unwrap();
    let p = d["partition_table"]["partitions"].as_array().unwrap().iter().find(|p| p["index"] == w).unwrap();
    let (off, size) = (p["offset"].as_u64().unwrap() as usize, p["size"].as_u64().unwrap() as usize);
    let part = f.dir.join("windows.ntfs");
    std::fs::write(&part, &a[off..off + size]).unwrap();
    let cat = Command::new("ntfscat").arg(&part).arg("Windows/System32/config/SYSTEM").out().unwrap();
    assert!(cat.status.success(), "ntfscat: {}", stderr(&cat));
    let hive = f.dir.join("SYSTEM");
    std::fs::write(&hive, &cat.stdout).unwrap();
    let v = Command::new("hivexget").arg(&hive).arg("ControlSet001\\Control\\Terminal Server").arg("fDenyTSConnections").out().unwrap();
    assert_eq!(stdout(&v).trim(), "0", "hivexget: {}", stderr(&v));
    for p in [&got, &local, &part, &hive] {
        std::fs::remove_file(p).unwrap();
    }
}

#[test]
#[cfg_attr(not(all(azurite, scenarios)), ignore = "needs ../shared/data, the scenario-image tools and Azurite (.ci/run starts it)")]
fn inspect_and_audit_read_the_blob_like_the_file() {
    let f = fixture();
    let src = f.url("source.vhd", "r");
    let remote = run(&["inspect", "--json", &src], &[]);
    let local = run(&["inspect", "--json", f.vhd.to_str().unwrap()], &[]);
    assert_eq!(remote.status.code(), local.status.code(), "{}", stderr(&remote));
    assert_no_secret(&remote, &[&src]);
    assert_eq!(findings(&remote), findings(&local));
    let a = run(&["audit", "--format", "jsonl", "--jobs", "2", &src, f.vhd.to_str().unwrap()], &[]);
    assert!(matches!(a.status.code(), Some(0 | 1)), "audit: {}", stderr(&a));
    assert_no_secret(&a, &[&src]);
    let out = stdout(&a);
    let recs: Vec<&str> = out.lines().collect();
    assert_eq!(recs.len(), 2, "{out}");
    let blob = recs.iter().find(|l| l.contains(&format!("{}/{}/source.vhd", f.ep, f.container))).unwrap_or_else(|| panic!("audit names the blob: {out}"));
    let file = recs.iter().find(|l| l.contains("source.vhd") && !l.contains("http")).unwrap();
    // The same record, but for the name (and the file size, which only a file has).
    let (b, l): (J, J) = (serde_json::from_str(blob).unwrap(), serde_json::from_str(file).unwrap());
    let diff: Vec<&String> = b.as_object().unwrap().keys().filter(|k| !["image", "size"].contains(&k.as_str()) && b[k.as_str()] != l[k.as_str()]).collect();
    assert!(diff.is_empty(), "audit records of the blob and the file differ in {diff:?}");
}

#[test]
#[cfg_attr(not(all(azurite, scenarios)), ignore = "needs ../shared/data, the scenario-image tools and Azurite (.ci/run starts it)")]
fn an_existing_destination_is_refused_and_left_alone() {
    let f = fixture();
    f.upload(&small_file(f), "exists.vhd");
    let (_, etag) = f.head("exists.vhd");
    let src = f.url("source.vhd", "r");
    let dst = f.url("exists.vhd", "racwd");
    let o = run(&["fix", &src, "--out-url", &dst, "--check", "rdp-deny-local"], &[]);
    assert_clean_error(&o, "existing destination");
    assert!(stderr(&o).contains("already exists"), "{}", stderr(&o));
    assert_no_secret(&o, &[&src, &dst]);
    assert_eq!(f.head("exists.vhd"), (200, etag), "the existing blob was changed");
}

/// A 1 MiB file of non-zero bytes.
fn small_file(f: &Fixture) -> PathBuf {
    let p = f.dir.join("small.bin");
    std::fs::write(&p, vec![7u8; 1 << 20]).unwrap();
    p
}

#[test]
#[cfg_attr(not(all(azurite, scenarios)), ignore = "needs ../shared/data, the scenario-image tools and Azurite (.ci/run starts it)")]
fn a_bad_or_expired_sas_is_one_line_without_the_secret() {
    let f = fixture();
    let src = f.url("source.vhd", "r");
    // A destination SAS whose signature does not match (a wrong key).
    let forged = f.url("forged.vhd", "racwd").replace("sig=", "sig=AAAA");
    let o = run(&["fix", &src, "--out-url", &forged, "--check", "rdp-deny-local"], &[]);
    assert_clean_error(&o, "forged destination SAS");
    let err = stderr(&o);
    assert!(err.contains("403") && err.contains("/forged.vhd") && err.contains("repair"), "{err}");
    assert_no_secret(&o, &[&src, &forged]);
    assert_eq!(f.head("forged.vhd").0, 404, "nothing was created");
    // An expired source SAS.
    let expired = format!("{}/{}/source.vhd?{}", f.ep, f.container, blob_sas(&f.container, "source.vhd", "r", "2001-01-01T00:00:00Z"));
    let dst = f.url("never.vhd", "racwd");
    let o = run(&["fix", &expired, "--out-url", &dst, "--check", "rdp-deny-local"], &[]);
    assert_clean_error(&o, "expired source SAS");
    assert!(stderr(&o).contains("403"), "{}", stderr(&o));
    assert_no_secret(&o, &[&expired, &dst]);
    assert_eq!(f.head("never.vhd").0, 404);
}

#[test]
#[cfg_attr(not(all(azurite, scenarios)), ignore = "needs ../shared/data, the scenario-image tools and Azurite (.ci/run starts it)")]
fn a_source_that_is_not_a_fixed_vhd_is_refused_before_anything_is_written() {
    let f = fixture();
    let src = f.url("raw.img", "r");
    let dst = f.url("from-raw.vhd", "racwd");
    let o = run(&["fix", &src, "--out-url", &dst, "--check", "rdp-deny-local"], &[]);
    assert_clean_error(&o, "raw source");
    assert!(stderr(&o).contains("not a fixed VHD"), "{}", stderr(&o));
    assert_no_secret(&o, &[&src, &dst]);
    assert_eq!(f.head("from-raw.vhd").0, 404, "nothing was created");
    // A local source cannot be copied by the service: --out-url is refused.
    let o = run(&["fix", f.vhd.to_str().unwrap(), "--out-url", &dst, "--check", "rdp-deny-local"], &[]);
    assert_clean_error(&o, "local source");
    assert!(stderr(&o).contains("--out-url needs the source as a URL"), "{}", stderr(&o));
}

#[test]
#[cfg_attr(not(all(azurite, scenarios)), ignore = "needs ../shared/data, the scenario-image tools and Azurite (.ci/run starts it)")]
fn a_failure_after_the_copy_began_deletes_the_destination() {
    let f = fixture();
    for (i, step) in ["blob-copied", "blob-first-page", "blob-before-verify"].iter().enumerate() {
        // A step after a page was written needs a source of its own (see own_source).
        let src = if i == 0 {
            f.url("source.vhd", "r")
        } else {
            own_source(f, &format!("source-fault-{i}.vhd"));
            f.url(&format!("source-fault-{i}.vhd"), "r")
        };
        let name = format!("fault-{i}.vhd");
        let dst = f.url(&name, "racwd");
        let o = run(&["fix", &src, "--out-url", &dst, "--check", "rdp-deny-local"], &[("RDPRESCUE_FAULT", step)]);
        assert_clean_error(&o, step);
        assert!(stderr(&o).contains("was deleted"), "{step}: {}", stderr(&o));
        assert_no_secret(&o, &[&src, &dst]);
        assert_eq!(f.head(&name).0, 404, "{step}: the destination is still there");
    }
    // A real refusal by the service mid-way: a destination SAS that may
    // create (the copy) but not write pages.
    // (Put Page is refused: the shared source stays as it is.)
    let src = f.url("source.vhd", "r");
    let dst = f.url("no-write.vhd", "rcd");
    let o = run(&["fix", &src, "--out-url", &dst, "--check", "rdp-deny-local"], &[]);
    assert_clean_error(&o, "no write permission");
    assert!(stderr(&o).contains("403"), "{}", stderr(&o));
    assert_no_secret(&o, &[&src, &dst]);
    assert_eq!(f.head("no-write.vhd").0, 404, "the half-written destination is still there");
}

#[test]
#[cfg_attr(not(all(azurite, scenarios)), ignore = "needs ../shared/data, the scenario-image tools and Azurite (.ci/run starts it)")]
fn a_remote_source_fixed_into_a_local_file() {
    let f = fixture();
    let src = f.url("source.vhd", "r");
    let out = f.dir.join("from-blob.vhd");
    let _ = std::fs::remove_file(&out);
    let o = run(&["fix", &src, "--out", out.to_str().unwrap(), "--check", "rdp-deny-local"], &[]);
    assert_eq!(o.status.code(), Some(0), "{}{}", stdout(&o), stderr(&o));
    assert_no_secret(&o, &[&src]);
    let now = findings(&run(&["inspect", "--json", out.to_str().unwrap()], &[]));
    assert!(!now.iter().any(|c| c == "rdp-deny-local"), "{now:?}");
    std::fs::remove_file(&out).unwrap();
}
