//! Interop tier: re-derive the committed expectations with the independent
//! tools (qemu-img, sfdisk, ntfs-3g) and check they still agree, so the
//! oracles in tests/oracles/ cannot silently rot. Skips with a notice when a
//! tool or ../shared is missing; `.ci/run` installs the tools.

mod common;
use common::*;
use std::process::Command;

#[test]
#[cfg_attr(not(all(shared_data, tool_qemu_img, tool_sfdisk, tool_ntfscat, tool_ntfsls, tool_python3)), ignore = "needs ../shared/data, qemu-img, sfdisk, ntfs-3g (ntfscat, ntfsls), python3 (Linux)")]
fn shared_image_oracle_is_reproducible() {
    let Some(data) = shared_data() else { return };
    for t in ["qemu-img", "sfdisk", "ntfscat", "ntfsls", "python3"] {
        require(t);
    }
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("oracle.json");
    let script = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/oracles/shared_images.py");
    let o = Command::new("python3").arg(&script).arg(&data).arg(&out).out().unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let fresh: serde_json::Value = serde_json::from_slice(&std::fs::read(&out).unwrap()).unwrap();
    let committed: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(script.with_file_name("shared_images.json")).unwrap()).unwrap();
    assert_eq!(fresh, committed, "tests/oracles/shared_images.json no longer matches what qemu-img/ntfs-3g say");
}

/// ntfscat and rdprescue agree on every file of every generated fixture volume,
/// read live from the decompressed image (not from fixtures.json).
#[test]
#[cfg_attr(not(all(tool_ntfscat, tool_ntfsls)), ignore = "needs ntfs-3g (ntfscat, ntfsls; Linux)")]
fn ntfscat_agrees_on_fixture_files() {
    for t in ["ntfscat", "ntfsls"] {
        require(t);
    }
    let tmp = tempfile::tempdir().unwrap();
    let raw = gunzip(&testdata().join("images/gen1-mbr.raw.gz"), tmp.path());
    let d = std::fs::read(&raw).unwrap();
    let vol = tmp.path().join("windows.ntfs");
    std::fs::write(&vol, &d[9437184..9437184 + 40894464]).unwrap();
    for (path, magic) in [(r"\Windows\System32\config\SYSTEM", &b"regf"[..]), (r"\Windows\System32\config\SOFTWARE", b"regf"), (r"\Windows\System32\drivers\etc\hosts", b"")] {
        let ours = rdp(&["cat", raw.to_str().unwrap(), path, "-p", "2"]);
        assert_eq!(ours.status.code(), Some(0), "rdprescue cat {path}: {}", stderr(&ours));
        let theirs = Command::new("ntfscat").arg(&vol).arg(path.replace('\\', "/")).out().unwrap();
        assert!(theirs.status.success(), "ntfscat {path}");
        // Two empty outputs would agree too: each file has content of its kind.
        assert!(!theirs.stdout.is_empty() && theirs.stdout.starts_with(magic), "{path}: ntfscat read {} bytes", theirs.stdout.len());
        assert_eq!(sha256(&ours.stdout), sha256(&theirs.stdout), "{path}");
    }
}
