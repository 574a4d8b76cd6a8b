//! Helpers shared by the integration tests.
#![allow(dead_code)]

use sha2::{Digest, Sha256};
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

mod device;
#[allow(unused_imports)]
pub use device::{ReadStats, StrictDevice};

/// `Command::output` and `Command::spawn` for every process a test starts,
/// retried when wine could not start the process at all. Under wine, a new
/// process sometimes dies before its first instruction (wine's preloader
/// could not reserve its address space), and CreateProcess then fails with
/// ERROR_INTERNAL_ERROR (1359); no code of the program ran, so starting it
/// again is the honest thing to do. Any other error, and every error off
/// Windows, is returned as it came.
pub trait Start {
    fn out(&mut self) -> std::io::Result<Output>;
    fn start(&mut self) -> std::io::Result<std::process::Child>;
}

impl Start for Command {
    fn out(&mut self) -> std::io::Result<Output> {
        retry_start(|| self.output())
    }
    fn start(&mut self) -> std::io::Result<std::process::Child> {
        retry_start(|| self.spawn())
    }
}

fn retry_start<T>(mut f: impl FnMut() -> std::io::Result<T>) -> std::io::Result<T> {
    const ERROR_INTERNAL_ERROR: i32 = 1359;
    let mut tries = 0;
    loop {
        match f() {
            Err(e) if cfg!(windows) && e.raw_os_error() == Some(ERROR_INTERNAL_ERROR) && tries < 4 => {
                tries += 1;
                eprintln!("wine could not start a process ({e}); try {} of 5", tries + 1);
                std::thread::sleep(std::time::Duration::from_millis(250 * tries));
            }
            r => return r,
        }
    }
}

// Skips are visible: a test that needs ../shared/data or a tool is marked
//     #[cfg_attr(not(shared_data), ignore = "needs ../shared/data")]
// (conditions set by build.rs: shared_data, scenarios, tool_NAME, root), so
// cargo counts it as ignored, with the reason, when it cannot run. The helpers
// below therefore never skip: reached without what they need, they fail, so an
// unmarked test cannot pass without checking anything.

/// `../shared/data` next to the project. Panics when it is absent: the
/// caller must be marked `#[cfg_attr(not(shared_data), ignore = ...)]`. (Still
/// an Option so that `let Some(data) = shared_data() else { .. }` reads on.)
pub fn shared_data() -> Option<PathBuf> {
    let p = Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/data");
    assert!(
        p.is_dir(),
        "{} is absent{}: a test that needs it must be marked \
         #[cfg_attr(not(shared_data), ignore = \"needs ../shared/data\")]",
        p.display(),
        if cfg!(shared_data) { " (it was there at build time)" } else { "" }
    );
    Some(p)
}

/// Fail unless `tool` is on PATH: the test must be marked
/// `#[cfg_attr(not(tool_NAME), ignore = "needs NAME")]`.
pub fn require(tool: &str) {
    assert!(have(tool), "{tool} is not installed: a test that needs it must be marked #[cfg_attr(not(tool_...), ignore = \"needs {tool}\")] (.ci/run installs it)");
}

/// Whether the process died by `std::process::abort` (the fault hooks) or a
/// kill: no exit code on Unix (a signal); on Windows abort's fail-fast status
/// 0xC0000409 (STATUS_STACK_BUFFER_OVERRUN).
pub fn aborted(st: &std::process::ExitStatus) -> bool {
    if cfg!(windows) {
        matches!(st.code(), Some(c) if c as u32 == 0xC000_0409)
    } else {
        st.code().is_none()
    }
}

/// Whether every output is staged as a named temporary (no `O_TMPFILE`).
pub const NAMED_TEMPORARIES_ONLY: bool = cfg!(not(any(target_os = "linux", target_os = "android")));

/// Write all of `buf` at `off` (portable `FileExt::write_all_at`).
pub fn write_all_at(f: &std::fs::File, buf: &[u8], off: u64) -> std::io::Result<()> {
    use std::io::{Seek, SeekFrom, Write};
    let mut f = f;
    f.seek(SeekFrom::Start(off))?;
    f.write_all(buf)
}

/// Fill `buf` from `off` (portable `FileExt::read_exact_at`).
pub fn read_exact_at(f: &std::fs::File, buf: &mut [u8], off: u64) -> std::io::Result<()> {
    use std::io::{Seek, SeekFrom};
    let mut f = f;
    f.seek(SeekFrom::Start(off))?;
    f.read_exact(buf)
}

/// Bytes the file occupies on disk: its allocated blocks on Unix; on Windows
/// (no allocation size in std) its length, an upper bound of it, so a test
/// asserting "occupies less than N" stays sound.
pub fn allocated_bytes(m: &std::fs::Metadata) -> u64 {
    #[cfg(unix)]
    {
        std::os::unix::fs::MetadataExt::blocks(m) * 512
    }
    #[cfg(not(unix))]
    {
        m.len()
    }
}

pub fn testdata() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("testdata")
}

/// Decompress `gz` into `dir` (file name without `.gz`), return its path.
pub fn gunzip(gz: &Path, dir: &Path) -> PathBuf {
    let name = gz.file_name().unwrap().to_string_lossy().trim_end_matches(".gz").to_string();
    let out = dir.join(name);
    let mut d = flate2::read::GzDecoder::new(std::fs::File::open(gz).unwrap());
    let mut f = std::fs::File::create(&out).unwrap();
    std::io::copy(&mut d, &mut f).unwrap();
    out
}

pub fn sha256_file(p: &Path) -> String {
    let mut f = std::fs::File::open(p).unwrap();
    let mut h = Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = f.read(&mut buf).unwrap();
        if n == 0 {
            break;
        }
        h.update(&buf[..n]);
    }
    hex(&h.finalize())
}

pub fn sha256(b: &[u8]) -> String {
    hex(&Sha256::digest(b))
}

pub fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

/// SHA-256 of the whole virtual disk as our reader returns it.
pub fn disk_sha256(disk: &dyn rdprescue::image::Disk) -> String {
    let mut h = Sha256::new();
    let mut buf = vec![0u8; 4 << 20];
    let mut off = 0;
    while off < disk.len() {
        let n = (disk.len() - off).min(buf.len() as u64) as usize;
        disk.read_at(off, &mut buf[..n]).unwrap();
        h.update(&buf[..n]);
        off += n as u64;
    }
    hex(&h.finalize())
}

/// Run the rdprescue binary.
pub fn rdp(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_rdprescue")).args(args).out().unwrap()
}

/// Run the binary on `image` and check the image file is byte-for-byte unchanged.
pub fn rdp_on(image: &Path, args: &[&str]) -> Output {
    let before = sha256_file(image);
    let out = rdp(args);
    assert_eq!(before, sha256_file(image), "rdprescue {args:?} modified its input {}", image.display());
    out
}

pub fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}
pub fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// The error line of a failed run: stderr, or, for a run with `--json`
/// (whose errors are one JSON object on stdout and nothing on stderr), the
/// object's message in the same form, `rdprescue: error: MESSAGE`.
pub fn error_line(o: &Output) -> String {
    let err = stderr(o);
    if !err.is_empty() {
        return err;
    }
    match serde_json::from_slice::<serde_json::Value>(&o.stdout) {
        Ok(j) if j["error"]["message"].is_string() => format!("rdprescue: error: {}\n", j["error"]["message"].as_str().unwrap_or_default()),
        _ => err,
    }
}

/// Assert a failed run: exit code 2, one line on stderr (or one JSON error
/// object on stdout under `--json`) naming a layer and an offset, no panic.
pub fn assert_clean_error(o: &Output, what: &str) {
    let err = error_line(o);
    assert_eq!(o.status.code(), Some(2), "{what}: expected exit 2, got {:?}; stderr: {err}", o.status.code());
    assert!(!err.contains("panicked") && !err.contains("internal error"), "{what}: panic: {err}");
    assert_eq!(err.trim_end().lines().count(), 1, "{what}: error is not one line: {err}");
    assert!(err.starts_with("rdprescue: error: "), "{what}: {err}");
}

/// Like `assert_clean_error`, and the message names a layer and an offset.
pub fn assert_layer_error(o: &Output, what: &str) {
    assert_clean_error(o, what);
    let err = error_line(o);
    let layers = ["image/", "volume", "fs/", "fs:"];
    assert!(layers.iter().any(|l| err.contains(l)), "{what}: no layer named: {err}");
    assert!(err.contains("offset 0x") || err.contains("not found"), "{what}: no offset named: {err}");
}

/// Whether the (Linux) tool is on PATH; never on Windows, where the tests run
/// under wine and cannot use the host's Linux tools.
pub fn have(tool: &str) -> bool {
    cfg!(unix) && Command::new("sh").args(["-c", &format!("command -v {tool}")]).out().is_ok_and(|o| o.status.success())
}

/// Tools testdata/make-scenarios.py needs.
pub const SCENARIO_TOOLS: [&str; 9] = ["python3", "hivexregedit", "mkntfs", "ntfscp", "sfdisk", "sgdisk", "mkfs.fat", "mcopy", "qemu-img"];

/// Build every scenario of testdata/scenarios.json, once for all test
/// binaries: the images go to a directory of the target dir named by a hash of
/// the scenario list and its builder, built in a temporary directory and
/// renamed into place (binaries running at the same time cannot see a half-built
/// set). `tag` names the builder's temporary directory. Returns the directory
/// and the manifest. Fails when ../shared or a tool is missing: its callers are
/// marked `#[cfg_attr(not(scenarios), ignore = ...)]`. (Still an Option so the
/// callers' `let Some(..) = .. else` reads on.)
pub fn build_scenarios(tag: &str) -> Option<&'static (PathBuf, Vec<serde_json::Value>)> {
    static BUILT: std::sync::OnceLock<Option<(PathBuf, Vec<serde_json::Value>)>> = std::sync::OnceLock::new();
    BUILT
        .get_or_init(|| {
            shared_data()?;
            for t in SCENARIO_TOOLS {
                assert!(have(t), "{t} is not installed: the scenario images need it; a test that uses them must be marked #[cfg_attr(not(scenarios), ignore = ...)] (.ci/run installs it)");
            }
            let mut key = Vec::new();
            for f in ["scenarios.json", "make-scenarios.py", "hives/SOFTWARE"] {
                key.extend(std::fs::read(testdata().join(f)).unwrap());
            }
            let root = Path::new(env!("CARGO_TARGET_TMPDIR"));
            let dir = root.join(format!("scenarios-{}", &sha256(&key)[..16]));
            if !dir.join("manifest.json").exists() {
                let tmp = root.join(format!("scenarios-building-{tag}-{}", std::process::id()));
                let _ = std::fs::remove_dir_all(&tmp);
                let out = Command::new("python3").arg(testdata().join("make-scenarios.py")).arg(&tmp).out().unwrap();
                assert!(out.status.success(), "make-scenarios.py failed: {}{}", stdout(&out), stderr(&out));
                // The manifest names images by path: point it at the final directory.
                let m = std::fs::read_to_string(tmp.join("manifest.json")).unwrap();
                std::fs::write(tmp.join("manifest.json"), m.replace(tmp.to_str().unwrap(), dir.to_str().unwrap())).unwrap();
                if std::fs::rename(&tmp, &dir).is_err() {
                    // Another test binary finished first: use its set.
                    let _ = std::fs::remove_dir_all(&tmp);
                }
            }
            let manifest = serde_json::from_slice(&std::fs::read(dir.join("manifest.json")).unwrap()).unwrap();
            Some((dir, manifest))
        })
        .as_ref()
}

/// The scenario image called `name` and its scenarios.json entry, the images
/// built first ([`build_scenarios`], `tag` as there); an unknown name panics.
pub fn find_scenario(tag: &str, name: &str) -> Option<(PathBuf, &'static serde_json::Value)> {
    let (_, all) = build_scenarios(tag)?;
    let sc = all.iter().find(|s| s["name"] == name).unwrap_or_else(|| panic!("no scenario {name}"));
    Some((PathBuf::from(sc["image"].as_str().unwrap()), sc))
}

/// Debian's python3 (where apt puts python3-libvhdi), not a pyenv one.
pub const SYSTEM_PYTHON: &str = "/usr/bin/python3";

/// Whether libvhdi's Python bindings are installed (else a notice).
pub fn have_pyvhdi() -> bool {
    let ok = Path::new(SYSTEM_PYTHON).exists() && Command::new(SYSTEM_PYTHON).args(["-c", "import pyvhdi"]).out().is_ok_and(|o| o.status.success());
    if !ok {
        eprintln!("NOTICE: python3-libvhdi (pyvhdi) not installed; libvhdi read-back skipped");
    }
    ok
}

/// Read VHD/VHDX `child` (over `parent`, when given) with libvhdi: SHA-256 of
/// the byte ranges (offset, length), and a line of facts libvhdi reports.
pub fn pyvhdi(child: &Path, parent: Option<&Path>, ranges: &[(u64, u64)]) -> (String, String) {
    let script = r#"
import sys, hashlib, pyvhdi
f = pyvhdi.file(); f.open(sys.argv[1])
if sys.argv[2] != '-':
    p = pyvhdi.file(); p.open(sys.argv[2]); f.set_parent(p)
h = hashlib.sha256()
for r in sys.argv[3:]:
    o, n = map(int, r.split(':'))
    while n > 0:
        k = min(n, 4 << 20)
        b = f.read_buffer_at_offset(k, o)
        assert len(b) == k, (o, k, len(b))
        h.update(b); o += k; n -= k
print(h.hexdigest())
print('sector=%d size=%d type=%d parent_id=%s parent=%s' % (f.bytes_per_sector, f.media_size, f.disk_type, f.parent_identifier, f.parent_filename))
"#;
    let mut args = vec!["-c".to_string(), script.to_string(), child.to_str().unwrap().to_string(), parent.map_or("-".into(), |p| p.to_str().unwrap().to_string())];
    args.extend(ranges.iter().map(|(o, n)| format!("{o}:{n}")));
    let o = Command::new(SYSTEM_PYTHON).args(&args).out().unwrap();
    assert!(o.status.success(), "pyvhdi on {}: {}", child.display(), stderr(&o));
    let out = stdout(&o);
    let mut lines = out.lines();
    (lines.next().unwrap().to_string(), lines.next().unwrap_or("").to_string())
}

/// Read values with regipy (pure Python, its own hive parser), installed into
/// a venv under the target directory on first use: for each (hive file, key
/// path, value name) the value as `[type, data]`, or null when absent. Fails
/// when regipy cannot be installed (see `regipy_python`); always Some.
pub fn regipy_values(queries: &[(String, String, String)]) -> Option<Vec<serde_json::Value>> {
    let py = regipy_python()?;
    let script = r#"
import json, sys
from regipy.registry import RegistryHive
out = []
for path, key, name in json.load(sys.stdin):
    k = RegistryHive(path).get_key('\\' + key)
    v = [v for v in k.iter_values(as_json=False) if v.name.lower() == (name.lower() or '(default)')]
    out.append([v[0].value_type, v[0].value] if v else None)
print(json.dumps(out, default=str))
"#;
    let mut child = Command::new(&py)
        .args(["-c", script])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .start()
        .unwrap();
    use std::io::Write;
    child.stdin.take().unwrap().write_all(serde_json::to_string(queries).unwrap().as_bytes()).unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success(), "regipy failed: {}", stderr(&out));
    Some(serde_json::from_slice(&out.stdout).unwrap())
}

// ---------------------------------------------------------------- image helpers
// (shared by vhd_read.rs, write_vhd.rs, image_source.rs)

/// splitmix64: a small deterministic generator for test data.
pub struct Rng(pub u64);

impl Rng {
    pub fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    pub fn bytes(&mut self, n: usize) -> Vec<u8> {
        (0..n).map(|_| self.next() as u8).collect()
    }
}

/// Deterministic, position-dependent bytes: a misplaced sector shows.
pub fn pattern(seed: u64, off: u64, len: usize) -> Vec<u8> {
    (0..len as u64)
        .map(|i| {
            let p = off + i;
            (Rng(seed ^ (p / 8).wrapping_mul(0x100_0000_01B3)).next() >> ((p % 8) * 8)) as u8
        })
        .collect()
}

/// The whole virtual disk in memory (small disks only).
pub fn disk_bytes(d: &dyn rdprescue::image::Disk) -> Vec<u8> {
    let mut v = vec![0u8; d.len() as usize];
    d.read_at(0, &mut v).unwrap();
    v
}

/// `have`, with a visible notice when the tool is missing.
pub fn need_tool(tool: &str) -> bool {
    let ok = have(tool);
    if !ok {
        eprintln!("NOTICE: {tool} not found; skipping the parts of this test that need it");
    }
    ok
}

/// VHD checksum: `~(sum of all bytes, the 4-byte field at `field` counted as zero)`.
pub fn vhd_checksum(buf: &[u8], field: usize) -> u32 {
    let sum = buf.iter().enumerate().filter(|(i, _)| !(field..field + 4).contains(i)).fold(0u32, |a, (_, &b)| a.wrapping_add(u32::from(b)));
    !sum
}

/// Set the VHD checksum field at `field`.
pub fn vhd_set_checksum(buf: &mut [u8], field: usize) {
    buf[field..field + 4].fill(0);
    let c = vhd_checksum(buf, field);
    buf[field..field + 4].copy_from_slice(&c.to_be_bytes());
}

/// Run the rdprescue binary, killing it and failing the test if it has not
/// finished after `secs` seconds (for inputs that used to hang).
pub fn rdp_timeout(args: &[&str], secs: u64) -> Output {
    use std::process::Stdio;
    let mut child = Command::new(env!("CARGO_BIN_EXE_rdprescue"))
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .start()
        .unwrap();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(secs);
    loop {
        if child.try_wait().unwrap().is_some() {
            return child.wait_with_output().unwrap();
        }
        if std::time::Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("rdprescue {args:?} did not finish within {secs} s (hang)");
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
}

/// The Python of the regipy venv (`regipy_values` installs it on first use).
/// Fails when regipy cannot be installed (no network for pip): the cross-check
/// it serves must not pass unchecked. Callers are marked
/// `#[cfg_attr(not(tool_python3), ignore = ...)]` (Unix only: a venv's layout).
pub fn regipy_python() -> Option<PathBuf> {
    let venv = Path::new(env!("CARGO_TARGET_TMPDIR")).join("regipy-venv");
    let py = venv.join("bin/python");
    let ok = |c: &mut Command| c.out().is_ok_and(|o| o.status.success());
    if !ok(Command::new(&py).args(["-c", "import regipy"])) {
        let made = ok(Command::new("python3").arg("-m").arg("venv").arg(&venv)) && ok(Command::new(venv.join("bin/pip")).args(["install", "-q", "regipy"]));
        assert!(made, "could not install regipy into {} (python3 -m venv; pip install regipy: network needed once)", venv.display());
    }
    Some(py)
}

/// Run `script` with regipy's Python and `args`; its stdout parsed as JSON.
/// Fails when regipy cannot be installed (see `regipy_python`); always Some.
pub fn regipy_script(script: &str, args: &[&str]) -> Option<serde_json::Value> {
    let py = regipy_python()?;
    let out = Command::new(&py).arg("-c").arg(script).args(args).out().unwrap();
    assert!(out.status.success(), "regipy script failed on {args:?}: {}", stderr(&out));
    Some(serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("regipy script output on {args:?}: {e}: {}", stdout(&out))))
}

/// Every file under `dir` (its sub-directories walked), sorted by path.
pub fn files_under(dir: &Path) -> Vec<PathBuf> {
    let mut files = Vec::new();
    let mut dirs = vec![dir.to_path_buf()];
    while let Some(d) = dirs.pop() {
        for e in std::fs::read_dir(&d).unwrap().flatten() {
            let p = e.path();
            if p.is_dir() {
                dirs.push(p);
            } else {
                files.push(p);
            }
        }
    }
    files.sort();
    files
}
