//! Issue 19's checks visible on disk: the scenario images `issue19-*` of
//! testdata/scenarios.json (real Windows 7 / 10 SYSTEM hives edited with
//! hivex) carry the fixes a recovery engineer expects, and `fix --all` clears
//! every fault that has a registry fix; the readers underneath are checked
//! against independent tools: free space against ntfs-3g's view of
//! `$Bitmap`, tspkg.dll's version against DLLs built by mingw-w64's windres,
//! certificates against openssl.

mod common;
use common::*;
use serde_json::Value as J;
use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::Command;

fn scenario(name: &str) -> Option<PathBuf> {
    Some(find_scenario("new_checks", name)?.0)
}

fn inspect(img: &Path) -> J {
    let o = rdp_on(img, &["inspect", "--json", img.to_str().unwrap()]);
    assert!(matches!(o.status.code(), Some(0 | 1)), "inspect {}: {}", img.display(), stderr(&o));
    serde_json::from_slice(&o.stdout).unwrap()
}

fn ids(doc: &J, section: &str) -> BTreeSet<String> {
    doc[section].as_array().unwrap().iter().map(|f| f["check"].as_str().unwrap().to_string()).collect()
}

fn finding<'a>(doc: &'a J, id: &str) -> &'a J {
    doc["findings"].as_array().unwrap().iter().find(|f| f["check"] == id).unwrap_or_else(|| panic!("no finding {id}: {}", doc["findings"]))
}

fn notes_of<'a>(doc: &'a J, id: &str) -> Vec<&'a str> {
    doc["notes"].as_array().unwrap().iter().filter(|f| f["check"] == id).map(|f| f["message"].as_str().unwrap()).collect()
}

/// `fix --all` into a new image, then inspect it.
fn fix_all(img: &Path, name: &str) -> J {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("new_checks");
    std::fs::create_dir_all(&dir).unwrap();
    let out = dir.join(format!("{name}-fixed.{}", img.extension().unwrap().to_str().unwrap()));
    let _ = std::fs::remove_file(&out);
    let before = sha256_file(img);
    let o = Command::new(env!("CARGO_BIN_EXE_rdprescue"))
        .args(["fix", img.to_str().unwrap(), "--all", "--out", out.to_str().unwrap()])
        .env("SOURCE_DATE_EPOCH", "1700000000")
        .out()
        .unwrap();
    assert!(o.status.success(), "fix {name}: {}{}", stdout(&o), stderr(&o));
    assert_eq!(sha256_file(img), before, "{name}: the input changed");
    let doc = inspect(&out);
    let _ = std::fs::remove_file(&out);
    doc
}

#[test]
#[cfg_attr(not(scenarios), ignore = "needs ../shared/data and the scenario-image tools (python3, hivex, ntfs-3g, fdisk, gdisk, mtools, dosfstools, qemu-img)")]
fn windows7_faults_and_their_fixes() {
    let Some(img) = scenario("issue19-win7-faults") else { return };
    let doc = inspect(&img);
    let a = |id: &str| finding(&doc, id)["actions"].clone();
    assert_eq!(a("portproxy-rdp-port")[0]["op"], "delete-value");
    assert_eq!(a("portproxy-rdp-port")[0]["name"], "0.0.0.0/3389");
    assert_eq!(a("lsa-tspkg-missing")[0]["data"], serde_json::json!(["kerberos", "msv1_0", "schannel", "wdigest", "tspkg"]));
    assert_eq!(a("smartcard-required")[0]["data"], 0);
    assert_eq!((a("schannel-rsa-disabled")[0]["op"].as_str(), a("schannel-rsa-disabled")[0]["name"].as_str()), (Some("delete-value"), Some("Enabled")));
    // Windows 7: the RSA suites appended are ones Vista/7 know.
    let suites = a("cipher-suites-no-rsa")[0]["data"].clone();
    assert!(suites.as_array().unwrap().iter().any(|s| s == "TLS_RSA_WITH_AES_128_CBC_SHA"), "{suites}");
    assert_eq!(a("rdp-cert-store")[0]["op"], "delete-key");
    assert!(finding(&doc, "rdp-cert-store")["message"].as_str().unwrap().contains("expired 2012-01-01"));
    let credssp = finding(&doc, "credssp-server-unpatched");
    assert!(credssp["message"].as_str().unwrap().contains("6.1.7601.23807") && credssp["fix"].as_str().unwrap().contains("KB4093492"), "{credssp}");
    let pending = finding(&doc, "pending-servicing")["message"].as_str().unwrap();
    assert!(pending.contains("pending.xml") && pending.contains("RebootPending"), "{pending}");
    // The real hive's two persistent default routes use its interfaces' own gateways: notes.
    assert_eq!(notes_of(&doc, "persistent-default-route").len(), 2, "{}", doc["notes"]);
    // Everything with a registry fix is gone after `fix --all`; the manual ones stay.
    let after = fix_all(&img, "issue19-win7-faults");
    let left: BTreeSet<String> = ids(&after, "findings").into_iter().filter(|i| !i.starts_with("fw-")).collect();
    assert_eq!(left, ["credssp-server-unpatched", "pending-servicing"].iter().map(|s| s.to_string()).collect(), "{}", after["findings"]);
}

#[test]
#[cfg_attr(not(scenarios), ignore = "needs ../shared/data and the scenario-image tools (python3, hivex, ntfs-3g, fdisk, gdisk, mtools, dosfstools, qemu-img)")]
fn windows10_faults_and_their_fixes() {
    let Some(img) = scenario("issue19-win10-faults") else { return };
    let doc = inspect(&img);
    let route = finding(&doc, "persistent-default-route");
    assert!(route["message"].as_str().unwrap().contains("10.0.0.254"), "{route}");
    let cipher = finding(&doc, "cipher-suites-no-rsa");
    assert!(cipher["message"].as_str().unwrap().contains("Group Policy"), "{cipher}");
    assert_eq!(cipher["actions"][0]["hive"], "SOFTWARE");
    // The pinned certificate's entry holds another certificate: unpin (the customer's store is left alone).
    let cert = finding(&doc, "rdp-cert-store");
    assert!(cert["message"].as_str().unwrap().contains("not its name"), "{cert}");
    assert_eq!((cert["actions"][0]["op"].as_str(), cert["actions"][0]["name"].as_str()), (Some("delete-value"), Some("SSLCertificateSHA1Hash")));
    assert!(finding(&doc, "credssp-server-unpatched")["message"].as_str().unwrap().contains("10.0.16299.248"));
    // Free space as the checks saw it, against ntfs-3g's count of the same volume's $Bitmap
    // made by make-scenarios.py (it left ~512 KiB): below the 5 % floor of a 40 MiB volume.
    let free = doc["settings"].as_array().unwrap().iter().find(|s| s["id"] == "low-disk-space").unwrap()["effective"].as_u64().unwrap();
    assert!(free < 2 << 20, "{free}");
    // Windows 10's Security Packages is "" by default: no tspkg finding there.
    assert!(!ids(&doc, "findings").contains("lsa-tspkg-missing"));
    let after = fix_all(&img, "issue19-win10-faults");
    let left = ids(&after, "findings");
    assert_eq!(left, ["credssp-server-unpatched", "low-disk-space"].iter().map(|s| s.to_string()).collect(), "{}", after["findings"]);
}

#[test]
#[cfg_attr(not(scenarios), ignore = "needs ../shared/data and the scenario-image tools (python3, hivex, ntfs-3g, fdisk, gdisk, mtools, dosfstools, qemu-img)")]
fn non_faults_are_notes_at_most() {
    for name in ["issue19-win7-clean", "issue19-win10-clean"] {
        let Some(img) = scenario(name) else { return };
        let doc = inspect(&img);
        assert!(doc["findings"].as_array().unwrap().is_empty(), "{name}: {}", doc["findings"]);
        assert!(notes_of(&doc, "credssp-server-unpatched").iter().any(|n| n.contains("patched for CVE-2018-0886")), "{name}: {}", doc["notes"]);
        assert!(notes_of(&doc, "rdp-cert-store").iter().any(|n| n.contains("valid until 2099")), "{name}: {}", doc["notes"]);
        assert!(!notes_of(&doc, "hibernation").is_empty(), "{name}: Fast Startup is on: {}", doc["notes"]);
    }
    let Some(img) = scenario("issue19-win10-clean") else { return };
    let doc = inspect(&img);
    assert!(notes_of(&doc, "portproxy-rdp-port").iter().any(|n| n.contains("iphlpsvc")), "{}", doc["notes"]);
    assert!(notes_of(&doc, "persistent-default-route").iter().any(|n| n.contains("dormant")), "{}", doc["notes"]);
}

/// The hibernation note on the committed fast-startup scenario (a hiberfil.sys holding "hibr").
#[test]
#[cfg_attr(not(scenarios), ignore = "needs ../shared/data and the scenario-image tools (python3, hivex, ntfs-3g, fdisk, gdisk, mtools, dosfstools, qemu-img)")]
fn hibernated_image_is_a_note_with_its_meaning() {
    let Some(img) = scenario("fast-startup") else { return };
    let doc = inspect(&img);
    let n = notes_of(&doc, "hibernation");
    assert!(n.iter().any(|m| m.contains("hibernation image") && m.contains("powercfg /h off")), "{}", doc["notes"]);
}

// ---------------------------------------------------------------- readers vs independent tools

/// Free bytes from `$Bitmap`, against ntfs-3g: ntfscat's `$Bitmap` and ntfsinfo's cluster size.
#[test]
fn free_bytes_agree_with_ntfs3g() {
    if !need_tool("mkntfs") || !need_tool("ntfscp") || !need_tool("ntfscat") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    for (mib, cluster, fill) in [(16u64, 4096u32, 3u64 << 20), (9, 512, 1 << 20), (33, 8192, 7 << 20)] {
        let vol = dir.path().join(format!("v{mib}.img"));
        std::fs::File::create(&vol).unwrap().set_len(mib << 20).unwrap();
        let o = Command::new("mkntfs").args(["-q", "-F", "-Q", "-c", &cluster.to_string(), "-s", "512", "-L", "Windows"]).arg(&vol).out().unwrap();
        assert!(o.status.success(), "{}", stderr(&o));
        let data = dir.path().join("data");
        std::fs::write(&data, pattern(mib, 0, fill as usize)).unwrap();
        let o = Command::new("ntfscp").arg("-q").arg(&vol).arg(&data).arg("/data.bin").out().unwrap();
        assert!(o.status.success(), "{}", stderr(&o));
        let bitmap = Command::new("ntfscat").arg(&vol).arg("$Bitmap").out().unwrap().stdout;
        let image = rdprescue::image::open(&vol).unwrap();
        let fs = rdprescue::fs::open(image.disk.clone(), 0).unwrap();
        let total = fs.state().size / u64::from(fs.state().cluster_size);
        let used: u64 = (0..total).filter(|&i| bitmap[(i / 8) as usize] >> (i % 8) & 1 == 1).count() as u64;
        let want = (total - used) * u64::from(cluster);
        assert_eq!(fs.free_bytes().unwrap(), Some(want), "{mib} MiB, {cluster}-byte clusters");
        assert!(want < (mib << 20) - fill, "the data file is counted as used");
    }
}

fn mingw_dll(dir: &Path, gcc: &str, windres: &str, version: [u16; 4]) -> Option<Vec<u8>> {
    if !have(gcc) || !have(windres) {
        eprintln!("SKIP: {gcc}/{windres} not installed: the mingw-built DLL case is not run");
        return None;
    }
    let v = format!("{},{},{},{}", version[0], version[1], version[2], version[3]);
    let rc = dir.join("v.rc");
    std::fs::write(
        &rc,
        format!("1 VERSIONINFO\nFILEVERSION {v}\nPRODUCTVERSION {v}\nFILETYPE 2\nBEGIN\n BLOCK \"StringFileInfo\"\n BEGIN\n  BLOCK \"040904b0\"\n  BEGIN\n   VALUE \"FileDescription\", \"Microsoft Terminal Services Package\"\n  END\n END\n BLOCK \"VarFileInfo\"\n BEGIN\n  VALUE \"Translation\", 0x409, 1200\n END\nEND\n"),
    )
    .unwrap();
    let res = dir.join(format!("{gcc}.o"));
    let o = Command::new(windres).arg(&rc).arg("-o").arg(&res).out().unwrap();
    assert!(o.status.success(), "{}", stderr(&o));
    let c = dir.join("t.c");
    std::fs::write(&c, "int __stdcall DllMain(void *h, unsigned r, void *p) { return 1; }\n").unwrap();
    let dll = dir.join(format!("{gcc}.dll"));
    let o = Command::new(gcc).arg("-shared").arg("-o").arg(&dll).arg(&c).arg(&res).out().unwrap();
    assert!(o.status.success(), "{}", stderr(&o));
    Some(std::fs::read(dll).unwrap())
}

#[test]
fn tspkg_version_of_toolchain_built_dlls() {
    let dir = tempfile::tempdir().unwrap();
    for (gcc, windres, version) in [("x86_64-w64-mingw32-gcc", "x86_64-w64-mingw32-windres", [10, 0, 16299, 309]), ("i686-w64-mingw32-gcc", "i686-w64-mingw32-windres", [6, 1, 7601, 24059])] {
        let Some(dll) = mingw_dll(dir.path(), gcc, windres, version) else { continue };
        let f = rdprescue::rdp::system::pe_facts(&dll).unwrap();
        assert_eq!(f.version, Some(version), "{gcc}");
        // The COFF header's TimeDateStamp, read independently at e_lfanew + 8.
        let pe = u32::from_le_bytes(dll[0x3c..0x40].try_into().unwrap()) as usize;
        assert_eq!(f.timestamp, u32::from_le_bytes(dll[pe + 8..pe + 12].try_into().unwrap()));
        // A DLL without a version resource reads as such, not as an error.
        let mut no_rsrc = dll.clone();
        let opt = pe + 24;
        let dirs = opt + if u16::from_le_bytes(dll[opt..opt + 2].try_into().unwrap()) == 0x20b { 112 } else { 96 };
        no_rsrc[dirs + 16..dirs + 24].fill(0);
        assert_eq!(rdprescue::rdp::system::pe_facts(&no_rsrc).unwrap().version, None);
    }
}

/// Hostile bytes: truncations and bit flips of a real DLL and of a certificate
/// blob never panic (an error or some answer, nothing else).
#[test]
#[cfg_attr(not(tool_openssl), ignore = "needs openssl (Linux)")]
fn pe_and_certificate_readers_survive_damage() {
    let dir = tempfile::tempdir().unwrap();
    let mut rng = Rng(0x19);
    if let Some(dll) = mingw_dll(dir.path(), "x86_64-w64-mingw32-gcc", "x86_64-w64-mingw32-windres", [1, 2, 3, 4]) {
        for cut in (0..dll.len()).step_by(97) {
            let _ = rdprescue::rdp::system::pe_facts(&dll[..cut]);
        }
        for _ in 0..3000 {
            let mut d = dll.clone();
            for _ in 0..4 {
                let i = (rng.next() as usize) % d.len();
                d[i] ^= 1 << (rng.next() % 8);
            }
            let _ = rdprescue::rdp::system::pe_facts(&d);
        }
    }
    let blob = cert_blob(&self_signed(dir.path(), "7").0);
    for cut in 0..blob.len() {
        assert!(rdprescue::rdp::system::cert_facts(&blob[..cut]).is_err() || cut == blob.len());
    }
    for _ in 0..3000 {
        let mut b = blob.clone();
        let i = (rng.next() as usize) % b.len();
        b[i] ^= 1 << (rng.next() % 8);
        let _ = rdprescue::rdp::system::cert_facts(&b);
    }
}

/// An openssl certificate as DER, with openssl's SHA-1 fingerprint and notAfter (seconds).
fn self_signed(dir: &Path, days: &str) -> (Vec<u8>, String, u64) {
    let der = dir.join(format!("c{days}.der"));
    let o = Command::new("openssl")
        .args(["req", "-x509", "-newkey", "rsa:1024", "-nodes", "-subj", "/CN=rdprescue-test", "-days", days, "-outform", "DER", "-keyout"])
        .arg(dir.join("k.pem"))
        .arg("-out")
        .arg(&der)
        .out()
        .unwrap();
    assert!(o.status.success(), "{}", stderr(&o));
    let q = |arg: &str| {
        let o = Command::new("openssl").args(["x509", "-inform", "DER", "-noout", arg]).arg("-in").arg(&der).out().unwrap();
        stdout(&o).trim().to_string()
    };
    let fp = q("-fingerprint").rsplit('=').next().unwrap().replace(':', "");
    let end = q("-enddate").trim_start_matches("notAfter=").to_string();
    let o = Command::new("date").args(["-u", "-d", &end, "+%s"]).out().unwrap();
    (std::fs::read(der).unwrap(), fp, stdout(&o).trim().parse().unwrap())
}

/// A serialized certificate as the registry stores it: property 3 (SHA-1) then 32 (the DER).
fn cert_blob(der: &[u8]) -> Vec<u8> {
    let mut b = Vec::new();
    for (id, data) in [(3u32, vec![0u8; 20]), (32, der.to_vec())] {
        b.extend(id.to_le_bytes());
        b.extend(1u32.to_le_bytes());
        b.extend((data.len() as u32).to_le_bytes());
        b.extend(data);
    }
    b
}

#[test]
fn certificate_facts_agree_with_openssl() {
    if !need_tool("openssl") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    for days in ["1", "3650"] {
        let (der, fp, not_after) = self_signed(dir.path(), days);
        let f = rdprescue::rdp::system::cert_facts(&cert_blob(&der)).unwrap();
        assert_eq!(f.thumbprint, fp.to_uppercase());
        assert_eq!(f.not_after, not_after);
    }
}

#[test]
fn the_space_threshold_is_one_gib_on_real_volumes() {
    use rdprescue::rdp::system::low_space_threshold;
    assert_eq!(low_space_threshold(127 << 30), 1 << 30);
    assert_eq!(low_space_threshold(30 << 30), 1 << 30);
    assert_eq!(low_space_threshold(40 << 20), 2 << 20);
}
