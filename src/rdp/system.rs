//! Evaluators of the issue-19 checks that read more than one value, or files
//! of the Windows volume: port proxies and persistent routes in front of the
//! listener, the LSA and Schannel pieces TLS/CredSSP need, the listener
//! certificate, the CredSSP patch level of `tspkg.dll`, pending servicing,
//! free space and hibernation. Each is an [`Eval`](super::check::Eval) named
//! by a row of the catalog's issue-19 block; the sources are cited there.

use super::check::{Check, Out, Remedy, CIPHER_POLICY, LSA, RDP_TCP};
use super::custom::listener_port;
use super::{Ctx, Setting};
use crate::fs::FileSystem;
use crate::hive::edit::{Edit, RegData};
use crate::hive::source::HiveKind::{self, Software, System};
use crate::hive::tree::{hex, Value};
use serde_json::Value as J;

// ---------------------------------------------------------------- shared

fn setting(ctx: &Ctx, id: &'static str, hive: HiveKind, key: &str, name: &str, default: Option<J>) -> Setting {
    let v = ctx.value(hive, key, name);
    let (effective, source) = match (&v, default) {
        (Some(v), _) => (v.json_data(), "local"),
        (None, Some(d)) => (d, "default"),
        (None, None) => (J::Null, "default"),
    };
    Setting { id, path: ctx.full(hive, key), name: name.into(), local: v.as_ref().map_or(J::Null, Value::json_data), policy_path: None, policy: J::Null, effective, source }
}

/// The Windows version: the build from the inspection's shared OS facts
/// (`Ctx::os`, rdp/os.rs: CurrentBuild, else CurrentBuildNumber) and UBR. The
/// build alone decides the release: Windows 10 keeps CurrentVersion at "6.3",
/// and a hive edited by hand can carry a CurrentMajorVersionNumber of another
/// release. Only a build read from SOFTWARE counts (an era inferred from
/// SYSTEM has no build number to compare with the CredSSP table).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct OsVersion {
    pub build: u32,
    pub ubr: Option<u32>,
}

impl OsVersion {
    /// Vista / Server 2008 (6000-6003) and 7 / Server 2008 R2 (7600/7601).
    pub fn is_nt6_0_or_6_1(self) -> bool {
        (6000..9200).contains(&self.build)
    }
    /// Windows 10 / Server 2016 and later.
    pub fn is_10(self) -> bool {
        self.build >= 10240
    }
}

pub(crate) fn os_version(ctx: &Ctx) -> Option<OsVersion> {
    let build = ctx.os().build?;
    Some(OsVersion { build, ubr: ctx.dword(Software, r"Microsoft\Windows NT\CurrentVersion", "UBR") })
}

/// `\Windows\System32\...` from SOFTWARE's SystemRoot (drive letter dropped).
fn system32(ctx: &Ctx, file: &str) -> String {
    let root = ctx.string(Software, r"Microsoft\Windows NT\CurrentVersion", "SystemRoot").unwrap_or_else(|| r"C:\Windows".into());
    let root = root.trim();
    let rel = match root.split_once(':') {
        Some((_, rest)) => rest.trim_start_matches('\\').to_string(),
        None => root.trim_start_matches('\\').to_string(),
    };
    let rel = if rel.is_empty() { "Windows".to_string() } else { rel };
    format!(r"{rel}\System32\{file}")
}

/// FILETIME to seconds since 1970 (None before 1970).
fn filetime_unix(ft: u64) -> Option<u64> {
    (ft / 10_000_000).checked_sub(11_644_473_600)
}

fn unix_iso(secs: u64) -> String {
    crate::hive::tree::filetime_iso((secs + 11_644_473_600) * 10_000_000).unwrap_or_default()
}

// ---------------------------------------------------------------- listener / network

const PORTPROXY: &str = r"{CCS}\Services\PortProxy";

/// Port proxies (`netsh interface portproxy`) listening on the RDP port.
pub(crate) fn portproxy(ctx: &Ctx, c: &Check, out: &mut Out) {
    let port = listener_port(ctx);
    let iphlp_off = ctx.dword(System, r"{CCS}\Services\iphlpsvc", "Start") == Some(4);
    for kind in ["v4tov4", "v4tov6", "v6tov4", "v6tov6"] {
        let key = format!(r"{PORTPROXY}\{kind}\tcp");
        let Some(k) = ctx.shared_key(System, &key) else { continue };
        for v in &k.values {
            // Value name: "<listen address>/<listen port>", data: "<connect address>/<connect port>".
            let Some(lport) = v.name.rsplit_once('/').and_then(|(_, p)| p.trim().parse::<u32>().ok()) else { continue };
            if lport != port {
                continue;
            }
            out.setting(setting(ctx, c.id, System, &key, &v.name, None));
            let target = if matches!(v.kind, 1 | 2) { v.string() } else { hex(&v.raw) };
            let what = format!("port proxy {kind} {} -> {target} listens on the RDP port {port}", v.name);
            let edits = ctx.delete_value_actions(System, &key, &v.name);
            if iphlp_off {
                out.note(c, format!("{what}; the IP Helper service (iphlpsvc) that runs port proxies is disabled, so it is inert"));
            } else {
                out.finding(c, c.id, c.severity, format!("{} ({what}; the IP Helper service opens it before TermService: connections reach {target} or the listener cannot bind)", c.explain), Remedy::Actions(edits));
            }
        }
    }
}

fn ipv4(s: &str) -> Option<u32> {
    let p: Vec<u8> = s.trim().split('.').map(|x| x.parse::<u8>().ok()).collect::<Option<Vec<_>>>()?;
    (p.len() == 4).then(|| u32::from_be_bytes([p[0], p[1], p[2], p[3]]))
}

fn strings(v: Option<Value>) -> Vec<String> {
    match v {
        Some(v) if v.kind == 7 => v.multi_string(),
        Some(v) if matches!(v.kind, 1 | 2) => vec![v.string()],
        _ => Vec::new(),
    }
}

/// Persistent default routes (`route -p add 0.0.0.0 mask 0.0.0.0 GW`).
pub(crate) fn persistent_route(ctx: &Ctx, c: &Check, out: &mut Out) {
    let key = r"{CCS}\Services\Tcpip\Parameters\PersistentRoutes";
    let Some(k) = ctx.shared_key(System, key) else { return };
    // (address, mask, gateways) of every interface, static and DHCP-assigned.
    let ifs_key = r"{CCS}\Services\Tcpip\Parameters\Interfaces";
    let mut nets: Vec<(u32, u32, Vec<u32>)> = Vec::new();
    let ifs = ctx.shared_key(System, ifs_key);
    for name in ifs.iter().flat_map(|k| &k.subkeys) {
        let ik = format!(r"{ifs_key}\{name}");
        let get = |n: &str| strings(ctx.value(System, &ik, n));
        let mut gws: Vec<u32> = get("DefaultGateway").iter().chain(get("DhcpDefaultGateway").iter()).filter_map(|g| ipv4(g)).collect();
        gws.retain(|g| *g != 0);
        for (a, m) in [("IPAddress", "SubnetMask"), ("DhcpIPAddress", "DhcpSubnetMask")] {
            for (addr, mask) in get(a).iter().zip(get(m).iter()) {
                if let (Some(addr), Some(mask)) = (ipv4(addr), ipv4(mask)) {
                    if addr != 0 && mask != 0 {
                        nets.push((addr, mask, gws.clone()));
                    }
                }
            }
        }
    }
    for v in &k.values {
        let parts: Vec<&str> = v.name.split(',').map(str::trim).collect();
        if parts.len() < 3 || parts[0] != "0.0.0.0" || parts[1] != "0.0.0.0" {
            continue;
        }
        let Some(gw) = ipv4(parts[2]) else { continue };
        out.setting(setting(ctx, c.id, System, key, &v.name, None));
        let competing = nets.iter().find(|(a, m, gws)| a & m == gw & m && !gws.contains(&gw));
        let edits = ctx.delete_value_actions(System, key, &v.name);
        match competing {
            Some((a, m, _)) => out.finding(
                c,
                c.id,
                c.severity,
                format!(
                    "{} (persistent route {} through {}, which is on the subnet of the interface address {}/{} whose own gateway is different: replies to RDP clients can leave through the wrong gateway)",
                    c.explain,
                    v.name,
                    parts[2],
                    std::net::Ipv4Addr::from(*a),
                    std::net::Ipv4Addr::from(*m)
                ),
                Remedy::Actions(edits),
            ),
            None => out.note(c, format!("persistent default route {} through {}: Windows installs it only on a network that contains {}; on a new network (Azure, another host) it is dormant, otherwise it competes with the DHCP gateway (`route -p delete 0.0.0.0 mask 0.0.0.0 {}` removes it)", v.name, parts[2], parts[2], parts[2])),
        }
    }
}

// ---------------------------------------------------------------- security

/// `Lsa\Security Packages` must list `tspkg` (CredSSP) on Vista/7/2008/2008 R2,
/// where the value is the whole list; from Windows 8 / 2012 on the built-in
/// packages load whatever it says (it is `""` on a clean install).
pub(crate) fn lsa_tspkg(ctx: &Ctx, c: &Check, out: &mut Out) {
    out.setting(setting(ctx, c.id, System, LSA, "Security Packages", None));
    let Some(v) = ctx.value(System, LSA, "Security Packages") else { return };
    let Some(os) = os_version(ctx) else { return };
    if !os.is_nt6_0_or_6_1() {
        return;
    }
    let list: Vec<String> = strings(Some(v.clone())).into_iter().flat_map(|s| s.split_whitespace().map(String::from).collect::<Vec<_>>()).filter(|s| !s.is_empty() && s != "\"\"").collect();
    if list.iter().any(|p| p.eq_ignore_ascii_case("tspkg")) {
        return;
    }
    let mut fixed = list.clone();
    fixed.push("tspkg".into());
    out.finding(
        c,
        c.id,
        c.severity,
        format!("{} (Security Packages = [{}] on build {})", c.explain, list.join(", "), os.build),
        Remedy::Actions(ctx.set_actions(System, LSA, "Security Packages", RegData::MultiSz(fixed))),
    );
}

const LOCAL_SSL: &str = r"{CCS}\Control\Cryptography\Configuration\Local\SSL\00010002";

/// Whether a cipher suite can carry RDP's TLS: an RSA-authenticated TLS 1.0-1.2
/// suite (the listener's certificate, self-signed or not, is RSA).
fn rsa_suite(s: &str) -> bool {
    let s = s.trim().to_ascii_uppercase();
    s.starts_with("TLS_") && (s.contains("_RSA_WITH_") || s.starts_with("TLS_RSA_"))
}

fn suites(v: &Value) -> Vec<String> {
    let raw = if v.kind == 7 { v.multi_string() } else { vec![v.string()] };
    raw.iter().flat_map(|s| s.split(',')).map(|s| s.trim().to_string()).filter(|s| !s.is_empty()).collect()
}

/// The cipher suite list in force (policy, else local) has no suite RDP can use.
pub(crate) fn cipher_suites(ctx: &Ctx, c: &Check, out: &mut Out) {
    let local = ctx.value(System, LOCAL_SSL, "Functions");
    let policy = if ctx.has(Software) { ctx.value(Software, CIPHER_POLICY, "Functions") } else { None };
    out.setting(Setting {
        id: c.id,
        path: ctx.full(System, LOCAL_SSL),
        name: "Functions".into(),
        local: local.as_ref().map_or(J::Null, Value::json_data),
        policy_path: Some(ctx.full(Software, CIPHER_POLICY)),
        policy: policy.as_ref().map_or(J::Null, Value::json_data),
        effective: policy.as_ref().or(local.as_ref()).map_or(J::from("Windows' built-in order"), Value::json_data),
        source: if policy.is_some() { "policy" } else if local.is_some() { "local" } else { "default" },
    });
    let bad = |v: &Value| {
        let s = suites(v);
        (!s.is_empty() && !s.iter().any(|x| rsa_suite(x))).then_some(s)
    };
    // An empty policy list is `cipher-suite-policy-empty`'s finding.
    if let Some(p) = &policy {
        let Some(list) = bad(p) else { return };
        let mut edits = ctx.delete_value_actions(Software, CIPHER_POLICY, "Functions");
        if let Some(l) = local.as_ref().and_then(bad) {
            edits.extend(local_fix(ctx, &l));
        }
        return out.finding(c, c.id, c.severity, format!("{} (Group Policy SSL Cipher Suite Order lists only {}; a domain GPO writes it again: fix the GPO too)", c.explain, list.join(", ")), Remedy::Actions(edits));
    }
    if let Some(list) = local.as_ref().and_then(bad) {
        out.finding(c, c.id, c.severity, format!("{} (the local list at {} holds only {})", c.explain, ctx.full(System, LOCAL_SSL), list.join(", ")), Remedy::Actions(local_fix(ctx, &list)));
    }
}

/// Append RSA suites that every build since Vista (AES-CBC) or 8.1 (ECDHE GCM) knows.
fn local_fix(ctx: &Ctx, list: &[String]) -> Vec<Edit> {
    let modern = os_version(ctx).is_none_or(|o| o.build >= 9600);
    let add: &[&str] = if modern { &["TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384", "TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256"] } else { &["TLS_RSA_WITH_AES_128_CBC_SHA", "TLS_RSA_WITH_AES_256_CBC_SHA"] };
    let mut v: Vec<String> = list.to_vec();
    v.extend(add.iter().map(|s| s.to_string()));
    ctx.set_actions(System, LOCAL_SSL, "Functions", RegData::MultiSz(v))
}

const CERT_PROP_ID: u32 = 32;

/// The DER certificate inside a serialized certificate (a `Blob` value): a
/// list of (property id, reserved, length, bytes) entries; property 32 is the
/// encoded certificate.
pub(crate) fn cert_from_blob(blob: &[u8]) -> Option<&[u8]> {
    let mut at = 0usize;
    while at + 12 <= blob.len() {
        let id = crate::bytes::le_u32(blob, at);
        let len = crate::bytes::le_u32(blob, at + 8) as usize;
        let data = blob.get(at + 12..at.checked_add(12)?.checked_add(len)?)?;
        if id == CERT_PROP_ID {
            return Some(data);
        }
        at += 12 + len;
    }
    None
}

/// What a certificate blob holds.
#[derive(Debug, PartialEq, Eq)]
pub struct CertFacts {
    /// SHA-1 of the DER, upper-case hex: the thumbprint Windows names it by.
    pub thumbprint: String,
    /// notAfter, seconds since 1970.
    pub not_after: u64,
}

pub fn cert_facts(blob: &[u8]) -> Result<CertFacts, String> {
    use sha1::Digest;
    use x509_cert::der::Decode;
    let der = cert_from_blob(blob).ok_or("no encoded certificate (property 32) in the Blob")?;
    let cert = x509_cert::Certificate::from_der(der).map_err(|e| format!("the certificate does not decode: {e}"))?;
    let not_after = cert.tbs_certificate().validity().not_after.to_unix_duration().as_secs();
    Ok(CertFacts { thumbprint: hex(&sha1::Sha1::digest(der)).to_uppercase(), not_after })
}

const RD_STORE: &str = r"Microsoft\SystemCertificates\Remote Desktop\Certificates";
const MY_STORE: &str = r"Microsoft\SystemCertificates\MY\Certificates";

/// The listener certificate: expired (against the newest hive time), not
/// decodable, or stored under a thumbprint that is not its SHA-1.
pub(crate) fn listener_cert(ctx: &Ctx, c: &Check, out: &mut Out) {
    let pin = ctx.value(System, RDP_TCP, "SSLCertificateSHA1Hash").filter(|v| v.raw.len() == 20).map(|v| hex(&v.raw).to_uppercase());
    let now = super::now::hives_written(ctx).and_then(filetime_unix);
    // (store key, thumbprint, pinned)
    let mut certs: Vec<(&str, String, bool)> = Vec::new();
    if let Some(p) = &pin {
        // A pin names a certificate of MY (or Remote Desktop); listener-cert-pinned reports a missing one.
        for store in [MY_STORE, RD_STORE] {
            if ctx.shared_key(Software, &format!(r"{store}\{p}")).is_some() {
                certs.push((store, p.clone(), true));
                break;
            }
        }
    } else if let Some(k) = ctx.shared_key(Software, RD_STORE) {
        certs.extend(k.subkeys.iter().map(|s| (RD_STORE, s.clone(), false)));
    }
    for (store, thumb, pinned) in certs {
        let key = format!(r"{store}\{thumb}");
        let Some(blob) = ctx.value(Software, &key, "Blob") else { continue };
        let where_ = ctx.full(Software, &key);
        // The fix: a pinned certificate is the customer's (unpin it, Windows falls back to
        // its self-signed one); a self-signed one in the Remote Desktop store is deleted and minted anew.
        let remedy = || {
            if pinned {
                Remedy::Actions(ctx.delete_value_actions(System, RDP_TCP, "SSLCertificateSHA1Hash"))
            } else {
                Remedy::Actions(vec![Edit::delete_key(Software, ctx.expand(&key))])
            }
        };
        match cert_facts(&blob.raw) {
            Err(why) => out.finding(c, c.id, c.severity, format!("{} ({where_}: {why})", c.explain), remedy()),
            Ok(f) if !f.thumbprint.eq_ignore_ascii_case(&thumb) => out.finding(
                c,
                c.id,
                c.severity,
                format!("{} ({where_} holds a certificate whose SHA-1 is {}, not its name {thumb}: the store entry is damaged)", c.explain, f.thumbprint),
                remedy(),
            ),
            Ok(f) => match now {
                Some(now) if f.not_after < now => out.finding(
                    c,
                    c.id,
                    c.severity,
                    format!(
                        "{} ({}certificate {thumb} expired {} (notAfter), before the hive was last written {}): clients refuse or warn, and Windows may fail to replace it (events 1057/1058)",
                        c.explain,
                        if pinned { "pinned " } else { "" },
                        unix_iso(f.not_after),
                        unix_iso(now)
                    ),
                    remedy(),
                ),
                _ => out.note(c, format!("listener certificate {thumb} valid until {}", unix_iso(f.not_after))),
            },
        }
    }
}

// ---------------------------------------------------------------- CredSSP patch level

/// Windows 10 builds released before the CredSSP fix, with the UBR of their
/// March 13, 2018 cumulative update (KB4093492 lists the updates per OS):
/// 1507 KB4088786, 1511 KB4088779, 1607/2016 KB4088787, 1703 KB4088782, 1709 KB4088776.
/// Builds from 1803 (17134) on shipped with it.
pub(crate) const CREDSSP_FIXED_UBR: [(u32, u32); 5] = [(10240, 17797), (10586, 1478), (14393, 2125), (15063, 966), (16299, 309)];

/// 2018-03-01T00:00:00Z: a Windows 6.x tspkg.dll linked before it predates the fix.
const MARCH_2018: u64 = 1_519_862_400;

/// Largest tspkg.dll read (the real one is 100-400 KiB).
const MAX_DLL: u64 = 16 << 20;

/// What tspkg.dll's PE headers say: file version and link time.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PeFacts {
    pub version: Option<[u16; 4]>,
    pub timestamp: u32,
}

/// The fixed file version (VS_FIXEDFILEINFO) and COFF TimeDateStamp of a PE.
pub fn pe_facts(bytes: &[u8]) -> Result<PeFacts, String> {
    // pelite reads structures in place and refuses an image that is not
    // 4-aligned in memory: copy it to an 8-aligned offset of a buffer (found
    // from the address, no unsafe).
    let mut buf = vec![0u8; bytes.len() + 8];
    let off = (8 - buf.as_ptr() as usize % 8) % 8;
    buf[off..off + bytes.len()].copy_from_slice(bytes);
    let view = &buf[off..off + bytes.len()];
    let r = crate::fs::guard(crate::Layer::Fs, 0, || {
        let pe = pelite::PeFile::from_bytes(view).map_err(|e| crate::Error::corrupt(crate::Layer::Fs, 0, format!("not a PE image: {e}")))?;
        let timestamp = pe.file_header().TimeDateStamp;
        let version = pe.resources().ok().and_then(|r| r.version_info().ok()).and_then(|v| v.fixed()).map(|f| {
            let v = f.dwFileVersion;
            [v.Major, v.Minor, v.Patch, v.Build]
        });
        Ok(PeFacts { version, timestamp })
    });
    r.map_err(|e| match e {
        crate::Error::Corrupt { msg, .. } if msg.contains("parser gave up") => "malformed PE (the parser gave up)".into(),
        crate::Error::Corrupt { msg, .. } => msg,
        other => other.to_string(),
    })
}

pub(crate) fn credssp_patch(ctx: &Ctx, c: &Check, out: &mut Out) {
    let Some(fs) = ctx.hives.windows_fs() else { return };
    let Some(os) = os_version(ctx) else { return };
    if os.build < 6000 || os.build >= 17134 {
        return;
    }
    let path = system32(ctx, "tspkg.dll");
    let bytes = match fs.read_file(&path, MAX_DLL) {
        Ok(b) => b,
        Err(crate::Error::NotFound { .. }) => return out.note(c, format!("{path} is not on the Windows volume: the CredSSP patch level cannot be read")),
        Err(e) => return out.note(c, format!("{path} cannot be read ({e}): the CredSSP patch level is unknown")),
    };
    let facts = match pe_facts(&bytes) {
        Ok(f) => f,
        Err(e) => return out.note(c, format!("{path}: {e}; the CredSSP patch level is unknown")),
    };
    let shown = facts.version.map_or("no version resource".into(), |v| format!("{}.{}.{}.{}", v[0], v[1], v[2], v[3]));
    out.setting(Setting { id: c.id, path: format!(r"\{path}"), name: "FileVersion".into(), local: J::from(shown.clone()), policy_path: None, policy: J::Null, effective: J::from(shown.clone()), source: "local" });
    let unpatched = if os.is_10() {
        let Some(v) = facts.version else { return out.note(c, format!("{path} has no version resource; the CredSSP patch level is unknown")) };
        match CREDSSP_FIXED_UBR.iter().find(|(b, _)| u32::from(v[2]) == *b) {
            Some((_, fixed)) => (u32::from(v[3]) < *fixed).then(|| format!("file version {shown} is older than {}.{fixed}, the March 2018 CredSSP update of build {}", v[2], v[2])),
            None => None,
        }
    } else {
        // Windows 6.x binaries carry their real link time (0 would be a tool's, not Microsoft's).
        if facts.timestamp == 0 {
            return out.note(c, format!("{path} {shown} has no link time; the CredSSP patch level is unknown"));
        }
        (u64::from(facts.timestamp) < MARCH_2018).then(|| format!("file version {shown}, linked {} (before the March 13, 2018 CredSSP update)", unix_iso(u64::from(facts.timestamp))))
    };
    match unpatched {
        Some(why) => out.finding(
            c,
            c.id,
            c.severity,
            format!("{} (tspkg.dll {why})", c.explain),
            Remedy::Manual("install the OS's latest cumulative (or at least the March 2018 CredSSP) update: KB4093492 lists it per OS; until then a client connects only with its AllowEncryptionOracle = 2 (Vulnerable), or with NLA off on this server".into()),
        ),
        None => out.note(c, format!("tspkg.dll {shown}: CredSSP is patched for CVE-2018-0886")),
    }
}

// ---------------------------------------------------------------- servicing, space, hibernation

/// Pending servicing: `WinSxS\pending.xml`, CBS `RebootPending`; file renames alone are a note.
pub(crate) fn pending_servicing(ctx: &Ctx, c: &Check, out: &mut Out) {
    let sm = r"{CCS}\Control\Session Manager";
    let cbs = r"Microsoft\Windows\CurrentVersion\Component Based Servicing\RebootPending";
    let mut why = Vec::new();
    if let Some(fs) = ctx.hives.windows_fs() {
        let p = system32(ctx, "").replace(r"\System32\", r"\WinSxS\pending.xml");
        if fs.exists(&p) {
            why.push(format!(r"\{p} exists"));
        }
    }
    if ctx.has(Software) && ctx.shared_key(Software, cbs).is_some() {
        why.push(format!("{} exists", ctx.full(Software, cbs)));
    }
    if !why.is_empty() {
        out.finding(
            c,
            c.id,
            c.severity,
            format!("{} ({})", c.explain, why.join("; ")),
            Remedy::Manual("from a repair VM: `dism /image:<drive>:\\ /cleanup-image /revertpendingactions` (or let the VM finish the updates and wait)".into()),
        );
    }
    let renames: Vec<String> = strings(ctx.value(System, sm, "PendingFileRenameOperations")).into_iter().filter(|s| !s.trim().is_empty()).collect();
    if !renames.is_empty() {
        out.note(c, format!("{} file rename/delete operation(s) wait for the next boot (PendingFileRenameOperations, usually installer clean-up; harmless)", renames.len().div_ceil(2)));
    }
}

/// Below this much free space the volume is short (scaled down on volumes
/// too small to hold a real Windows: 5 % of the volume).
pub const LOW_SPACE: u64 = 1 << 30;

pub fn low_space_threshold(size: u64) -> u64 {
    LOW_SPACE.min(size / 20)
}

pub(crate) fn free_space(ctx: &Ctx, c: &Check, out: &mut Out) {
    let Some(fs) = ctx.hives.windows_fs() else { return };
    let size = fs.state().size;
    let free = match fs.free_bytes() {
        Ok(Some(f)) => f,
        Ok(None) => return,
        Err(e) => return out.note(c, format!("the free space of the Windows volume cannot be read ({e})")),
    };
    let mib = |b: u64| b as f64 / (1u64 << 20) as f64;
    out.setting(Setting {
        id: c.id,
        path: "Windows volume".into(),
        name: "free bytes".into(),
        local: J::from(free),
        policy_path: None,
        policy: J::Null,
        effective: J::from(free),
        source: "local",
    });
    let limit = low_space_threshold(size);
    if free < limit {
        out.finding(
            c,
            c.id,
            c.severity,
            format!("{} ({:.1} MiB free of {:.1} MiB, below {:.1} MiB)", c.explain, mib(free), mib(size), mib(limit)),
            Remedy::Manual("attach the disk to a repair VM and free space (old `Windows\\SoftwareDistribution\\Download`, `Windows\\Temp`, user temp folders, memory dumps), or expand the disk and the partition".into()),
        );
    }
}

/// Hibernation / Fast Startup: a note on what it means for an offline fix.
pub(crate) fn hibernation(ctx: &Ctx, c: &Check, out: &mut Out) {
    let pm = r"{CCS}\Control\Session Manager\Power";
    if ctx.shared_key(System, pm).is_some() {
        out.setting(setting(ctx, c.id, System, pm, "HiberbootEnabled", None));
    }
    let hiberboot = ctx.dword(System, pm, "HiberbootEnabled") == Some(1);
    let fs: Option<&dyn FileSystem> = ctx.hives.windows_fs();
    let hiberfil = fs.is_some_and(|f| f.exists("hiberfil.sys"));
    let image = fs.and_then(|f| f.state().hibernated) == Some(true);
    let meaning = "Windows may resume that image at the next start and ignore (or overwrite) registry changes made offline; shut the VM down fully first (`shutdown /s /t 0`) or run `powercfg /h off`, or delete hiberfil.sys before fixing";
    if image {
        out.note(c, format!("hiberfil.sys holds a hibernation image (hibernate or Fast Startup): {meaning}"));
    } else if hiberboot && hiberfil {
        out.note(c, format!("Fast Startup is on (HiberbootEnabled = 1) and hiberfil.sys exists; its header is not a resumable image now, but after a Fast Startup shutdown {meaning}"));
    } else if hiberboot {
        out.note(c, "Fast Startup is on (HiberbootEnabled = 1): a Windows shut down with Fast Startup resumes a hibernated kernel; `powercfg /h off` keeps offline fixes from being bypassed".into());
    } else if hiberfil {
        out.note(c, "hiberfil.sys exists but holds no resumable image: offline changes take effect".into());
    }
}
