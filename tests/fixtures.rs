//! The generated fixtures in testdata/ (see testdata/README.md) against the
//! expectations that testdata/make-fixtures.sh read back with qemu-img, sfdisk,
//! blkid, ntfs-3g and mtools: container facts, partitions, file systems,
//! Windows/BCD location, whole-disk bytes and every file's bytes. Every command
//! is checked not to modify its input.

mod common;
use common::*;
use serde_json::Value;
use std::path::PathBuf;

fn fixtures() -> Value {
    serde_json::from_str(&std::fs::read_to_string(testdata().join("fixtures.json")).unwrap()).unwrap()
}

/// Materialise fixture `file` (relative to testdata/), decompressing if needed.
fn materialise(file: &str, tmp: &std::path::Path) -> PathBuf {
    let p = testdata().join(file);
    if file.ends_with(".gz") {
        gunzip(&p, tmp)
    } else {
        p
    }
}

fn partition(report: &Value, index: u64) -> &Value {
    report["volumes"].as_array().unwrap().iter().find(|v| v["index"] == index).unwrap_or_else(|| panic!("no partition {index}"))
}

#[test]
fn every_fixture_image() {
    let fx = fixtures();
    let tmp = tempfile::tempdir().unwrap();
    let mut files_checked = 0;
    let mut images = 0;
    for im in fx["images"].as_array().unwrap() {
        let file = im["file"].as_str().unwrap();
        let img = materialise(file, tmp.path());
        let imgs = img.to_str().unwrap();
        assert_eq!(sha256_file(&img), im["file_sha256"].as_str().unwrap(), "{file}: fixture differs from fixtures.json");

        let o = rdp_on(&img, &["disk", "--json", imgs]);
        assert_eq!(o.status.code(), Some(0), "{file}: {}", stderr(&o));
        let r: Value = serde_json::from_slice(&o.stdout).unwrap();
        assert_eq!(r["container"]["format"], im["format"], "{file}");
        assert_eq!(r["container"]["virtual_size"], im["virtual_size"], "{file}");
        assert_eq!(r["partition_table"]["kind"], im["partition_table"], "{file}");
        let disk_id = im.get("disk_signature").or_else(|| im.get("disk_guid"));
        if let Some(id) = disk_id {
            assert_eq!(r["partition_table"]["disk_id"].as_str().unwrap().to_lowercase(), id.as_str().unwrap().to_lowercase(), "{file}");
        }
        let parts = r["partition_table"]["partitions"].as_array().unwrap();
        assert_eq!(parts.len(), im["partitions"].as_array().unwrap().len(), "{file}: partition count");

        for ep in im["partitions"].as_array().unwrap() {
            let idx = ep["index"].as_u64().unwrap();
            let v = partition(&r, idx);
            assert_eq!(v["offset"], ep["start"], "{file} p{idx}");
            assert_eq!(v["size"], ep["size"], "{file} p{idx}");
            assert_eq!(v["type_id"].as_str().unwrap(), ep["type"].as_str().unwrap(), "{file} p{idx}");
            if let Some(name) = ep.get("name") {
                assert_eq!(v["name"], *name, "{file} p{idx}");
            }
            if let Some(g) = ep.get("guid") {
                assert_eq!(v["guid"].as_str().unwrap(), g.as_str().unwrap().to_lowercase(), "{file} p{idx}");
            }
            if ep.get("bootable") == Some(&Value::Bool(true)) {
                assert_eq!(v["active"], true, "{file} p{idx}");
            }
            let fs = ep["filesystem"].as_str().unwrap();
            match fs {
                "none" => assert!(matches!(v["filesystem"].as_str(), Some("unknown")), "{file} p{idx}: {}", v["filesystem"]),
                "bitlocker" => {
                    assert_eq!(v["filesystem"], "bitlocker", "{file} p{idx}");
                    assert!(v["error"].as_str().unwrap().contains("BitLocker"), "{file} p{idx}: {}", v["error"]);
                }
                _ => {
                    assert_eq!(v["filesystem"], fs, "{file} p{idx}");
                    assert_eq!(v["state"]["label"], ep["label"], "{file} p{idx}");
                    assert_eq!(v["state"]["dirty"], false, "{file} p{idx}");
                }
            }
            assert_eq!(v["system_reserved"] == true, ep["role"] == "system-reserved", "{file} p{idx}: System Reserved");
            if fs != "bitlocker" {
                assert_eq!(v["windows"] == true, ep["role"] == "windows", "{file} p{idx}: Windows");
            }

            // Every file's bytes equal what ntfs-3g / mtools read back.
            let Some(files) = ep.get("files").and_then(|f| f.as_object()) else { continue };
            for (path, f) in files {
                let o = rdp_on(&img, &["cat", imgs, path, "-p", &idx.to_string()]);
                assert_eq!(o.status.code(), Some(0), "{file} p{idx} {path}: {}", stderr(&o));
                assert_eq!(o.stdout.len() as u64, f["size"].as_u64().unwrap(), "{file} {path}: size");
                assert_eq!(sha256(&o.stdout), f["sha256"].as_str().unwrap(), "{file} {path}: bytes");
                files_checked += 1;
            }
        }
        match (im.get("windows_partition").and_then(|w| w.as_u64()), im["format"].as_str()) {
            (Some(w), _) if !file.contains("bitlocker") => assert_eq!(r["windows_volumes"], serde_json::json!([w]), "{file}"),
            _ => {}
        }
        if let Some(b) = im.get("bcd").filter(|b| !b.is_null()) {
            assert_eq!(r["bcd"]["partition"], b["partition"], "{file}");
            assert_eq!(r["bcd"]["path"], b["path"], "{file}");
        }

        // The whole virtual disk equals qemu-img's raw conversion.
        let opened = rdprescue::image::open(&img).unwrap();
        assert_eq!(disk_sha256(opened.disk.as_ref()), im["disk_sha256"].as_str().unwrap(), "{file}: virtual disk bytes");
        assert_eq!(sha256_file(&img), im["file_sha256"].as_str().unwrap(), "{file}: input modified");
        images += 1;
    }
    eprintln!("{images} fixture images, {files_checked} files compared");
    assert!(images >= 10 && files_checked > 100, "{images} images, {files_checked} files");
}

/// `cat` without -p finds the Windows volume; paths are case-insensitive and
/// accept either separator; Unicode names work.
#[test]
fn cat_finds_the_windows_volume() {
    let fx = fixtures();
    let tmp = tempfile::tempdir().unwrap();
    let img = materialise("images/gen1-mbr.raw.gz", tmp.path());
    let imgs = img.to_str().unwrap();
    let im = fx["images"].as_array().unwrap().iter().find(|i| i["file"] == "images/gen1-mbr.raw.gz").unwrap();
    let win = im["partitions"].as_array().unwrap().iter().find(|p| p["role"] == "windows").unwrap();
    let sys = &win["files"][r"\Windows\System32\config\SYSTEM"];
    for path in [r"\Windows\System32\config\SYSTEM", "windows/system32/CONFIG/system", r"WINDOWS\SYSTEM32\CONFIG\SYSTEM"] {
        let o = rdp_on(&img, &["cat", imgs, path]);
        assert_eq!(o.status.code(), Some(0), "{path}: {}", stderr(&o));
        assert_eq!(sha256(&o.stdout), sys["sha256"].as_str().unwrap(), "{path}");
    }
    // BCD on the System Reserved volume (the only volume holding it).
    let o = rdp_on(&img, &["cat", imgs, r"\boot\bcd"]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert!(o.stdout.starts_with(b"regf"));
    // Unicode name, looked up case-insensitively through the index.
    for (path, f) in win["files"].as_object().unwrap() {
        if !path.is_ascii() {
            let o = rdp_on(&img, &["cat", imgs, &path.to_uppercase()]);
            assert_eq!(o.status.code(), Some(0), "{path}: {}", stderr(&o));
            assert_eq!(sha256(&o.stdout), f["sha256"].as_str().unwrap(), "{path}");
        }
    }
    // Errors: missing file, missing partition, directory.
    let o = rdp_on(&img, &["cat", imgs, r"\Windows\nope.txt"]);
    assert_clean_error(&o, "missing file");
    assert!(stderr(&o).contains("not found"));
    let o = rdp_on(&img, &["cat", imgs, r"\bootmgr", "-p", "9"]);
    assert_clean_error(&o, "missing partition");
    let o = rdp_on(&img, &["cat", imgs, r"\Windows", "-p", "2"]);
    assert_clean_error(&o, "directory");
}

/// A BitLocker volume is named as such, never parsed.
#[test]
fn bitlocker_is_reported() {
    let tmp = tempfile::tempdir().unwrap();
    let img = materialise("images/bitlocker-mbr.raw.gz", tmp.path());
    let imgs = img.to_str().unwrap();
    let o = rdp_on(&img, &["disk", imgs]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert!(stdout(&o).contains("BitLocker"), "{}", stdout(&o));
    let o = rdp_on(&img, &["cat", imgs, r"\Windows\System32\config\SYSTEM", "-p", "2"]);
    assert_layer_error(&o, "bitlocker cat");
    assert!(stderr(&o).contains("BitLocker"), "{}", stderr(&o));
}

/// The demo image named in the README works.
#[test]
fn demo_image() {
    let demo = testdata().join("demo.vhdx");
    let o = rdp_on(&demo, &["disk", demo.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let out = stdout(&o);
    assert!(out.contains("vhdx-dynamic") && out.contains("WINDOWS") && out.contains(r"\EFI\Microsoft\Boot\BCD"), "{out}");
}
