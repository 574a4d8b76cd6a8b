//! Every Windows-made image in ../shared/data/images, against independent
//! expectations computed by tests/oracles/shared_images.py (qemu-img, sfdisk,
//! ntfs-3g's ntfscat): container format and size, partition table, whole-disk
//! bytes, and the bytes of every file on every NTFS volume. Input hashes are
//! checked after every command.

mod common;
use common::*;
use serde_json::Value;
use std::path::Path;

fn oracle() -> Value {
    let p = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/oracles/shared_images.json");
    serde_json::from_str(&std::fs::read_to_string(p).unwrap()).unwrap()
}

fn expected_format(name: &str) -> &'static str {
    match name {
        "win10-fixed.vhd" => "vhd-fixed",
        "win10-dynamic.vhd" => "vhd-dynamic",
        "win10-diskpart-orphan-differencing.vhd" => "vhd-differencing",
        "win10-fixed.vhdx" => "vhdx-fixed",
        "hyperv-checkpoint-orphan.avhdx" => "vhdx-differencing",
        _ => "vhdx-dynamic",
    }
}

#[test]
#[cfg_attr(not(shared_data), ignore = "needs ../shared/data")]
fn windows_made_images() {
    let Some(data) = shared_data() else { return };
    let tmp = tempfile::tempdir().unwrap();
    let oracle = oracle();
    let mut checked_files = 0;
    for (name, exp) in oracle.as_object().unwrap() {
        let gz = data.join("images").join(format!("{name}.gz"));
        if !gz.exists() {
            eprintln!("NOTICE: {} absent, skipped", gz.display());
            continue;
        }
        let img = gunzip(&gz, tmp.path());
        let imgs = img.to_str().unwrap();
        assert_eq!(sha256_file(&img), exp["sha256"].as_str().unwrap(), "{name}: decompressed input differs from oracle");

        if exp.get("parent_missing").is_some() {
            let o = rdp_on(&img, &["disk", "--json", imgs]);
            assert_layer_error(&o, name);
            let err = error_line(&o);
            assert!(err.contains("parent disk missing"), "{name}: {err}");
            if name.ends_with(".vhd") {
                assert!(err.to_lowercase().contains("fat-parent.vhd"), "{name}: does not name the parent: {err}");
            } else {
                assert!(err.contains("vhdx") && err.contains("Hyper-V"), "{name}: does not name the parent: {err}");
            }
            continue;
        }

        // disk --json: format, size, partition table
        let o = rdp_on(&img, &["disk", "--json", imgs]);
        assert_eq!(o.status.code(), Some(0), "{name}: {}", stderr(&o));
        let j: Value = serde_json::from_slice(&o.stdout).unwrap();
        assert_eq!(j["container"]["format"], expected_format(name), "{name}");
        assert_eq!(j["container"]["virtual_size"], exp["virtual_size"], "{name}");
        if name.contains("pending-log") {
            assert!(j["container"]["log_replayed"]["entries"].as_u64().unwrap() > 0, "{name}: log not replayed");
        }
        assert_eq!(j["partition_table"]["kind"], exp["table"], "{name}");
        let parts = j["partition_table"]["partitions"].as_array().unwrap();
        let eparts = exp["partitions"].as_array().unwrap();
        assert_eq!(parts.len(), eparts.len(), "{name}: partition count");
        for (p, e) in parts.iter().zip(eparts) {
            assert_eq!(p["offset"], e["offset"], "{name}");
            assert_eq!(p["size"], e["size"], "{name}");
            let ty = p["type_id"].as_str().unwrap().trim_start_matches("0x").trim_start_matches('0');
            assert_eq!(ty, e["type"].as_str().unwrap(), "{name}: partition type");
        }

        // The whole virtual disk equals qemu-img's raw conversion.
        let opened = rdprescue::image::open(&img).unwrap();
        assert_eq!(disk_sha256(opened.disk.as_ref()), exp["raw_sha256"].as_str().unwrap(), "{name}: virtual disk bytes");

        // cat of every file equals ntfscat.
        for e in eparts {
            let Some(files) = e.get("files").and_then(|f| f.as_object()) else { continue };
            let idx = e["index"].to_string();
            for (path, f) in files {
                let o = rdp_on(&img, &["cat", imgs, path, "-p", &idx]);
                assert_eq!(o.status.code(), Some(0), "{name} {path}: {}", stderr(&o));
                assert_eq!(o.stdout.len() as u64, f["size"].as_u64().unwrap(), "{name} {path}: size");
                assert_eq!(sha256(&o.stdout), f["sha256"].as_str().unwrap(), "{name} {path}: bytes differ from ntfscat");
                checked_files += 1;
            }
        }
        assert_eq!(sha256_file(&img), exp["sha256"].as_str().unwrap(), "{name}: input modified");
    }
    eprintln!("checked {checked_files} files against ntfscat");
}

/// Case-insensitive lookup through the NTFS indexes, on a real Windows volume.
#[test]
#[cfg_attr(not(shared_data), ignore = "needs ../shared/data")]
fn case_insensitive_paths() {
    let Some(data) = shared_data() else { return };
    let gz = data.join("images/server2022-pending-log-gpt.vhdx.gz");
    if !gz.exists() {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let img = gunzip(&gz, tmp.path());
    let imgs = img.to_str().unwrap();
    let a = rdp_on(&img, &["cat", imgs, r"\SYSTEM"]);
    let b = rdp_on(&img, &["cat", imgs, "system"]);
    let c = rdp_on(&img, &["cat", imgs, "/LongDirName123456789ABCDEFGHIJKLMN/TEST.TXT"]);
    assert_eq!(a.status.code(), Some(0), "{}", stderr(&a));
    assert_eq!(a.stdout, b.stdout);
    assert!(a.stdout.starts_with(b"regf"));
    assert_eq!(c.status.code(), Some(0), "{}", stderr(&c));
    let missing = rdp_on(&img, &["cat", imgs, r"\Windows\System32\config\SYSTEM"]);
    assert_clean_error(&missing, "missing path");
    assert!(stderr(&missing).contains("not found"));
}
