//! Test-environment probe. The integration tests that need `../shared/data`
//! (real Windows-made files, not in the repository) or an interop tool
//! (qemu-img, ntfs-3g, hivex, libvhdi, ...) are marked
//! `#[cfg_attr(not(COND), ignore = "needs ...")]`, so that `cargo test` counts
//! them as ignored, with the reason, instead of passing without checking
//! anything. This script sets those conditions:
//!
//! * `shared_data`: `../shared/data` (next to the project) is a directory;
//! * `tool_NAME` (NAME with `-`/`.` as `_`): NAME is on PATH. Only for a Unix
//!   target: a Windows build (run under wine by `.ci/run`) cannot run the
//!   Linux tools, so every tool test is ignored there;
//! * `scenarios`: `shared_data` and every tool testdata/make-scenarios.py
//!   needs (the scenario images are built from real hives);
//! * `root`: the build runs as root (loop devices, mount).
//!
//! It compiles nothing and changes no library code; the library itself uses
//! none of these conditions.
//!
//! It also sets `RDPRESCUE_COMMIT` (`git describe --always --dirty`, or
//! "unknown" without git or outside a checkout) for `rdprescue --version`.

use std::env;
use std::path::{Path, PathBuf};

/// Tools the tests call, each probed on PATH.
const TOOLS: &[&str] = &[
    "qemu-img", "qemu-io", "ntfscat", "ntfscp", "mkntfs", "hivexget", "hivexregedit", "vhdiinfo", "sfdisk", "sgdisk", "mcopy", "mkfs.fat",
    "fsck.fat", "ntfsls", "python3", "mkfifo", "losetup", "mke2fs", "mount", "umount", "openssl", "setpriv",
];

/// What testdata/make-scenarios.py needs (tests/common SCENARIO_TOOLS).
const SCENARIO_TOOLS: &[&str] = &["python3", "hivexregedit", "mkntfs", "ntfscp", "sfdisk", "sgdisk", "mkfs.fat", "mcopy", "qemu-img"];

fn cfg_name(tool: &str) -> String {
    format!("tool_{}", tool.replace(['-', '.'], "_"))
}

fn on_path(tool: &str, path: &std::ffi::OsStr) -> bool {
    env::split_paths(path).any(|dir| is_executable(&dir.join(tool)))
}

#[cfg(unix)]
fn is_executable(p: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    p.metadata().is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
}

#[cfg(not(unix))]
fn is_executable(p: &Path) -> bool {
    p.is_file()
}

fn main() {
    let manifest = PathBuf::from(env::var_os("CARGO_MANIFEST_DIR").expect("CARGO_MANIFEST_DIR"));
    let shared = manifest.join("../shared/data");
    println!("cargo::rerun-if-changed=build.rs");
    // Re-probe when the data changes or goes; when it is absent, adding it
    // later needs `touch build.rs` (README, "Run the tests"): watching the
    // parent directory would make cargo scan every sibling tree.
    if shared.is_dir() {
        println!("cargo::rerun-if-changed={}", shared.display());
    }
    println!("cargo::rerun-if-env-changed=PATH");

    println!("cargo::rustc-check-cfg=cfg(shared_data)");
    println!("cargo::rustc-check-cfg=cfg(scenarios)");
    println!("cargo::rustc-check-cfg=cfg(root)");
    for t in TOOLS {
        println!("cargo::rustc-check-cfg=cfg({})", cfg_name(t));
    }

    let data = shared.is_dir();
    if data {
        println!("cargo::rustc-cfg=shared_data");
    }
    // Linux tools only count for a Unix target (the host may have them while
    // the tests run under wine).
    let unix_target = env::var("CARGO_CFG_TARGET_FAMILY").is_ok_and(|f| f.split(',').any(|f| f == "unix"));
    let path = env::var_os("PATH").unwrap_or_default();
    // Installing a tool changes its directory: re-probe then.
    for dir in env::split_paths(&path) {
        if dir.is_dir() {
            println!("cargo::rerun-if-changed={}", dir.display());
        }
    }
    let have = |t: &str| unix_target && on_path(t, &path);
    for t in TOOLS {
        if have(t) {
            println!("cargo::rustc-cfg={}", cfg_name(t));
        }
    }
    if data && SCENARIO_TOOLS.iter().all(|t| have(t)) {
        println!("cargo::rustc-cfg=scenarios");
    }
    git_version();
    // `azurite`: .ci/run started the Azure Storage emulator and says so with
    // RDPRESCUE_AZURITE=1 (its endpoint, which changes from run to run, is
    // read by tests/azure.rs at run time from RDPRESCUE_AZURITE_BLOB, so a new
    // port rebuilds nothing). Linux target only, like the tools.
    println!("cargo::rustc-check-cfg=cfg(azurite)");
    println!("cargo::rerun-if-env-changed=RDPRESCUE_AZURITE");
    if unix_target && env::var("RDPRESCUE_AZURITE").is_ok_and(|v| v == "1") {
        println!("cargo::rustc-cfg=azurite");
    }
    if unix_target && std::process::Command::new("id").arg("-u").output().is_ok_and(|o| o.stdout.trim_ascii() == b"0") {
        println!("cargo::rustc-cfg=root");
    }
}

/// `git` with these arguments in the manifest directory: its trimmed stdout
/// when it succeeds.
fn git(args: &[&str]) -> Option<String> {
    let dir = env::var_os("CARGO_MANIFEST_DIR")?;
    let o = std::process::Command::new("git").arg("-C").arg(dir).args(args).output().ok()?;
    let s = String::from_utf8(o.stdout).ok()?;
    (o.status.success() && !s.trim().is_empty()).then(|| s.trim().to_string())
}

/// `RDPRESCUE_COMMIT` for `--version`; re-run when HEAD, the branch it names
/// or the index (staged/committed changes) move.
fn git_version() {
    let commit = git(&["describe", "--always", "--dirty"]).unwrap_or_else(|| "unknown".into());
    println!("cargo::rustc-env=RDPRESCUE_COMMIT={commit}");
    let mut watch = vec!["HEAD".to_string(), "index".to_string(), "packed-refs".to_string()];
    if let Some(r) = git(&["symbolic-ref", "-q", "HEAD"]) {
        watch.push(r);
    }
    for w in watch {
        if let Some(p) = git(&["rev-parse", "--path-format=absolute", "--git-path", &w]) {
            if Path::new(&p).exists() {
                println!("cargo::rerun-if-changed={p}");
            }
        }
    }
}
