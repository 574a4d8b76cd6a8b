//! Which events are evidence, and what each says: one row per (provider,
//! event ids), with the decoder that turns the record's fields into a
//! summary line and typed data (TLS version and alert names, NTSTATUS
//! names, logon types, boot types, service names).

use serde_json::{Map, Value as J};

/// A rendered record handed over by the log walk.
pub struct Raw {
    pub record_id: u64,
    /// µs since the Unix epoch.
    pub micros: i64,
    /// The rendered record; `Null` for one only counted (see `counted`).
    pub json: J,
    /// A record of a [`countable`] row past the newest `kept_per_id` of its
    /// event id: not rendered, only counted (provider as in the table, id).
    pub counted: Option<(&'static str, u32)>,
}

/// What a decoder makes of a record: None when the record is not evidence
/// (e.g. a service event of a service no check is about).
pub struct Decoded {
    pub summary: String,
    pub data: Map<String, J>,
    /// A failure that something may explain (as opposed to context: a
    /// logon, a restart, a boot).
    pub fault: bool,
}

/// One kind of evidence: a provider, its event ids, the decoder.
pub struct Wanted {
    /// Provider name as in `System/Provider/@Name` (case-insensitive).
    pub provider: &'static str,
    pub ids: &'static [u32],
    pub decode: fn(u32, &Map<String, J>) -> Option<Decoded>,
}

pub const SCHANNEL: &str = "Schannel";
pub const SCM: &str = "Service Control Manager";
pub const RCM: &str = "Microsoft-Windows-TerminalServices-RemoteConnectionManager";
pub const RDPCORE: &str = "Microsoft-Windows-RemoteDesktopServices-RdpCoreTS";
pub const LSM: &str = "Microsoft-Windows-TerminalServices-LocalSessionManager";
pub const SECURITY: &str = "Microsoft-Windows-Security-Auditing";

/// The evidence table.
pub static WANTED: &[Wanted] = &[
    Wanted { provider: SCHANNEL, ids: &[36870, 36871, 36874, 36887, 36888], decode: schannel },
    Wanted { provider: SCM, ids: &[7000, 7001, 7009, 7011, 7022, 7023, 7024, 7031, 7034, 7040], decode: scm },
    Wanted { provider: RCM, ids: &[1056, 1057, 1058, 261, 1149], decode: rcm },
    Wanted { provider: RDPCORE, ids: &[131, 140], decode: rdpcore },
    Wanted { provider: LSM, ids: &[21, 23, 24, 25], decode: lsm },
    Wanted { provider: SECURITY, ids: &[4625, 4740, 4624], decode: security },
    Wanted { provider: "Microsoft-Windows-Eventlog", ids: &[1102], decode: cleared },
    Wanted { provider: "Microsoft-Windows-Kernel-Power", ids: &[41], decode: power },
    Wanted { provider: "EventLog", ids: &[6008], decode: unexpected_shutdown },
    Wanted { provider: "User32", ids: &[1074], decode: restart },
    Wanted { provider: "Microsoft-Windows-Kernel-Boot", ids: &[27], decode: boot_type },
];

/// Whether every record of the row is an event (its decoder never says
/// None) and nothing but the listed events needs its data: then records
/// past the newest `kept_per_id` of an id need not be rendered, only
/// counted. Not so for services (kept for some services only) and Security
/// (4624 of logon type 10 only; every 4624/4625 feeds the logon counts).
pub fn countable(w: &Wanted) -> bool {
    w.provider != SCM && w.provider != SECURITY
}

/// The row for (provider, id), if any.
pub fn wanted(provider: &str, id: u32) -> Option<&'static Wanted> {
    WANTED.iter().find(|w| w.provider.eq_ignore_ascii_case(provider) && w.ids.contains(&id))
}

/// EventData / UserData children into `out`: named values as they are;
/// `Data` elements without a name as `Data`, `Data1`, ... (legacy events).
pub fn flatten(d: &Map<String, J>, out: &mut Map<String, J>) {
    for (k, v) in d {
        if k == "#attributes" {
            continue;
        }
        match (k.as_str(), v) {
            ("Data", J::Object(o)) => match o.get("#text") {
                Some(J::Array(a)) => {
                    for (i, x) in a.iter().enumerate() {
                        out.insert(if i == 0 { "Data".into() } else { format!("Data{i}") }, x.clone());
                    }
                }
                Some(x) => {
                    out.insert("Data".into(), x.clone());
                }
                None => {}
            },
            ("Data", J::Array(a)) => {
                for (i, x) in a.iter().enumerate() {
                    out.insert(if i == 0 { "Data".into() } else { format!("Data{i}") }, x.clone());
                }
            }
            _ => {
                out.insert(k.clone(), v.clone());
            }
        }
    }
}

/// A field as text (numbers in decimal), case-insensitive name.
pub fn text(f: &Map<String, J>, name: &str) -> Option<String> {
    let v = f.iter().find(|(k, _)| k.eq_ignore_ascii_case(name)).map(|(_, v)| v)?;
    match v {
        J::Null => None,
        J::String(s) => Some(s.clone()),
        J::Number(n) => Some(n.to_string()),
        J::Object(o) => o.get("#text").and_then(|t| match t {
            J::String(s) => Some(s.clone()),
            J::Number(n) => Some(n.to_string()),
            _ => None,
        }),
        other => Some(other.to_string()),
    }
}

/// A number field: decimal, `0x` hex, or a JSON number.
pub fn number(f: &Map<String, J>, name: &str) -> Option<u64> {
    let t = text(f, name)?;
    let t = t.trim();
    match t.strip_prefix("0x").or_else(|| t.strip_prefix("0X")) {
        Some(h) => u64::from_str_radix(h, 16).ok(),
        None => t.parse().ok(),
    }
}

fn ev(summary: String, fault: bool, data: Map<String, J>) -> Option<Decoded> {
    Some(Decoded { summary, data, fault })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn countable_rows_always_decode_and_ids_are_unique() {
        // Count-only records are grouped by event id: no id in two rows.
        let mut ids: Vec<u32> = WANTED.iter().flat_map(|w| w.ids.iter().copied()).collect();
        let n = ids.len();
        ids.sort_unstable();
        ids.dedup();
        assert_eq!(ids.len(), n);
        for w in WANTED.iter().filter(|w| countable(w)) {
            for id in w.ids {
                assert!((w.decode)(*id, &Map::new()).is_some(), "{} {id}", w.provider);
            }
        }
        // And those that are not countable can say None.
        assert!(scm(7036, &Map::new()).is_none() && security(4624, &Map::new()).is_none());
    }
}

fn pick(f: &Map<String, J>, names: &[&str]) -> Map<String, J> {
    let mut m = Map::new();
    for n in names {
        if let Some(v) = text(f, n) {
            m.insert((*n).to_string(), J::String(v));
        }
    }
    m
}

// ------------------------------------------------------------ Schannel

/// TLS alert descriptions (RFC 8446 6.2, RFC 5246 7.2).
pub fn tls_alert(code: u64) -> &'static str {
    match code {
        0 => "close_notify",
        10 => "unexpected_message",
        20 => "bad_record_mac",
        21 => "decryption_failed",
        22 => "record_overflow",
        30 => "decompression_failure",
        40 => "handshake_failure",
        41 => "no_certificate",
        42 => "bad_certificate",
        43 => "unsupported_certificate",
        44 => "certificate_revoked",
        45 => "certificate_expired",
        46 => "certificate_unknown",
        47 => "illegal_parameter",
        48 => "unknown_ca",
        49 => "access_denied",
        50 => "decode_error",
        51 => "decrypt_error",
        60 => "export_restriction",
        70 => "protocol_version",
        71 => "insufficient_security",
        80 => "internal_error",
        86 => "inappropriate_fallback",
        90 => "user_canceled",
        100 => "no_renegotiation",
        109 => "missing_extension",
        110 => "unsupported_extension",
        112 => "unrecognized_name",
        113 => "bad_certificate_status_response",
        115 => "unknown_psk_identity",
        116 => "certificate_required",
        120 => "no_application_protocol",
        _ => "unknown alert",
    }
}

/// A Schannel protocol field: text ("TLS 1.2") as it is, or SP_PROT_* bits.
pub fn tls_version(f: &Map<String, J>) -> Option<String> {
    let t = text(f, "Protocol")?;
    let bits = match number(f, "Protocol") {
        Some(b) => b,
        None => return Some(t),
    };
    let names: Vec<&str> = [
        (0x3, "PCT 1.0"),
        (0xC, "SSL 2.0"),
        (0x30, "SSL 3.0"),
        (0xC0, "TLS 1.0"),
        (0x300, "TLS 1.1"),
        (0xC00, "TLS 1.2"),
        (0x3000, "TLS 1.3"),
    ]
    .iter()
    .filter(|(m, _)| bits & m != 0)
    .map(|(_, n)| *n)
    .collect();
    Some(if names.is_empty() { t } else { names.join(", ") })
}

fn schannel(id: u32, f: &Map<String, J>) -> Option<Decoded> {
    let mut data = pick(f, &["Type", "ErrorState", "ErrorCode", "Protocol", "AlertDesc"]);
    let state = text(f, "ErrorState").map(|s| format!(" (internal error state {s})")).unwrap_or_default();
    let alert = number(f, "AlertDesc").map(|a| {
        data.insert("alert".into(), J::from(a));
        data.insert("alert_name".into(), J::from(tls_alert(a)));
        format!("{a} {}", tls_alert(a))
    });
    if let Some(v) = tls_version(f) {
        data.insert("tls_version".into(), J::String(v));
    }
    let version = data.get("tls_version").and_then(J::as_str).map(|v| format!("{v} ")).unwrap_or_default();
    let summary = match id {
        36870 => format!("TLS server credential: the private key cannot be accessed{}{state}", text(f, "ErrorCode").map(|c| format!(", error {c}")).unwrap_or_default()),
        36871 => format!("fatal error creating the TLS {} credential{state}", text(f, "Type").unwrap_or_else(|| "server".into())),
        36874 => format!("{version}connection request with no cipher suite in common with the server"),
        36887 => format!("fatal TLS alert received from the client: {}", alert.unwrap_or_else(|| "?".into())),
        _ => format!("fatal TLS alert sent to the client: {}{state}", alert.unwrap_or_else(|| "?".into())),
    };
    // 36887 is the client's complaint (browsers and other clients too): context.
    ev(summary, id != 36887, data)
}

// ------------------------------------------------------------ services

/// The services the SCM events are kept for: key name and English display names.
pub static SERVICES: &[(&str, &[&str])] = &[
    ("TermService", &["Remote Desktop Services", "Terminal Services"]),
    ("SessionEnv", &["Remote Desktop Configuration"]),
    ("UmRdpService", &["Remote Desktop Services UserMode Port Redirector"]),
    ("MpsSvc", &["Windows Firewall", "Windows Defender Firewall"]),
    ("BFE", &["Base Filtering Engine"]),
    ("Netlogon", &["Netlogon"]),
    ("gpsvc", &["Group Policy Client"]),
    ("Dhcp", &["DHCP Client"]),
    ("netvsc", &["Microsoft Hyper-V Network Adapter", "Microsoft Virtual Machine Bus Network Adapter"]),
];

/// The service key name of a display or key name, if it is one of [`SERVICES`].
pub fn service_key(name: &str) -> Option<&'static str> {
    let n = name.trim();
    SERVICES.iter().find(|(k, d)| k.eq_ignore_ascii_case(n) || d.iter().any(|x| x.eq_ignore_ascii_case(n))).map(|(k, _)| *k)
}

/// The service key name the SCM puts in an event's binary data (UTF-16LE,
/// hex in the rendered record) on Vista and later.
fn binary_name(f: &Map<String, J>) -> Option<String> {
    let hex = text(f, "Binary")?;
    let bytes = hex::decode(hex.trim()).ok()?;
    let units: Vec<u16> = bytes.chunks_exact(2).map(|c| u16::from_le_bytes([c[0], c[1]])).take_while(|&u| u != 0).collect();
    String::from_utf16(&units).ok().filter(|s| !s.is_empty())
}

fn scm(id: u32, f: &Map<String, J>) -> Option<Decoded> {
    // Where the service name is: param2 for the timeouts, param1 otherwise.
    let named = if matches!(id, 7009 | 7011) { text(f, "param2") } else { text(f, "param1") };
    let key = binary_name(f).as_deref().and_then(service_key).or_else(|| text(f, "param4").as_deref().and_then(service_key)).or_else(|| named.as_deref().and_then(service_key))?;
    // The display name when it names the same service, else the key name.
    let shown = named.clone().filter(|n| service_key(n) == Some(key)).unwrap_or_else(|| key.to_string());
    let p = |n: &str| text(f, n).unwrap_or_default();
    let mut data = pick(f, &["param1", "param2", "param3", "param4", "param5"]);
    data.insert("service".into(), J::from(key));
    let mut fault = true;
    let summary = match id {
        7000 => format!("{shown} failed to start: {}", p("param2").trim()),
        7001 => format!("{shown} depends on {}, which failed to start: {}", p("param2"), p("param3").trim()),
        7009 => format!("timeout ({} ms) waiting for {shown} to connect", p("param1")),
        7011 => format!("timeout ({} ms) waiting for a transaction response from {shown}", p("param1")),
        7022 => format!("{shown} hung on starting"),
        7023 => format!("{shown} terminated with an error: {}", p("param2").trim()),
        7024 => format!("{shown} terminated with a service-specific error: {}", p("param2").trim()),
        7031 => format!("{shown} terminated unexpectedly ({} time(s))", p("param2")),
        7034 => format!("{shown} terminated unexpectedly ({} time(s))", p("param2")),
        _ => {
            let to = p("param3");
            data.insert("start_type".into(), J::from(to.to_lowercase()));
            fault = to.to_lowercase().contains("disabled");
            format!("start type of {shown} changed from {} to {to}", p("param2"))
        }
    };
    ev(summary, fault, data)
}

// ------------------------------------------------------------ RDP logs

fn rcm(id: u32, f: &Map<String, J>) -> Option<Decoded> {
    let p = |n: &str| text(f, n).unwrap_or_default();
    match id {
        1056 => ev(format!("a new self-signed RDP certificate was created{}", text(f, "Data").or_else(|| text(f, "param1")).map(|n| format!(": {n}")).unwrap_or_default()), false, pick(f, &["Data", "param1"])),
        1057 => ev(format!("failed to create a self-signed RDP certificate (status {})", text(f, "Data").or_else(|| text(f, "param1")).unwrap_or_default()), true, pick(f, &["Data", "param1"])),
        1058 => ev(format!("failed to replace the expired self-signed RDP certificate (status {})", text(f, "Data").or_else(|| text(f, "param1")).unwrap_or_default()), true, pick(f, &["Data", "param1"])),
        261 => ev(format!("listener {} received a connection", text(f, "listenerName").unwrap_or_else(|| "RDP-Tcp".into())), false, pick(f, &["listenerName"])),
        _ => ev(format!("user authentication succeeded: {}\\{} from {}", p("Param2"), p("Param1"), p("Param3")), false, pick(f, &["Param1", "Param2", "Param3"])),
    }
}

fn rdpcore(id: u32, f: &Map<String, J>) -> Option<Decoded> {
    let ip = text(f, "ClientIP").or_else(|| text(f, "IPString")).unwrap_or_default();
    let data = pick(f, &["ClientIP", "IPString", "ConnType"]);
    match id {
        131 => ev(format!("the server accepted a new connection from {ip}"), false, data),
        _ => ev(format!("the connection from {ip} failed: user name or password not correct"), true, data),
    }
}

fn lsm(id: u32, f: &Map<String, J>) -> Option<Decoded> {
    let u = text(f, "User").unwrap_or_default();
    let s = text(f, "SessionID").unwrap_or_default();
    let a = text(f, "Address").map(|a| format!(" from {a}")).unwrap_or_default();
    let what = match id {
        21 => "session logon succeeded",
        23 => "session logoff succeeded",
        24 => "session disconnected",
        _ => "session reconnected",
    };
    ev(format!("{what}: {u} (session {s}){a}"), false, pick(f, &["User", "SessionID", "Address"]))
}

// ------------------------------------------------------------ Security

/// NTSTATUS codes of failed logons (4625 Status / SubStatus).
pub fn ntstatus(code: u64) -> Option<&'static str> {
    Some(match code {
        0xC000_0064 => "no such user",
        0xC000_006A => "wrong password",
        0xC000_006D => "bad user name or password",
        0xC000_006E => "account restriction",
        0xC000_006F => "logon outside the allowed hours",
        0xC000_0070 => "workstation restriction",
        0xC000_0071 => "password expired",
        0xC000_0072 => "account disabled",
        0xC000_0133 => "clock skew with the domain controller",
        0xC000_015B => "logon type not granted",
        0xC000_018C => "trust relationship failed",
        0xC000_0192 => "Netlogon service not started",
        0xC000_0193 => "account expired",
        0xC000_0224 => "user must change the password at next logon",
        0xC000_0225 => "Windows bug (evaluation)",
        0xC000_0234 => "account locked out",
        0xC000_005E => "no logon servers available",
        0xC000_0413 => "authentication firewall",
        _ => return None,
    })
}

/// Logon type names (4624 / 4625 LogonType).
pub fn logon_type(t: u64) -> &'static str {
    match t {
        2 => "interactive",
        3 => "network",
        4 => "batch",
        5 => "service",
        7 => "unlock",
        8 => "network cleartext",
        9 => "new credentials",
        10 => "remote interactive (RDP)",
        11 => "cached interactive",
        _ => "other",
    }
}

fn security(id: u32, f: &Map<String, J>) -> Option<Decoded> {
    let user = format!("{}\\{}", text(f, "TargetDomainName").unwrap_or_default(), text(f, "TargetUserName").unwrap_or_default());
    let ip = text(f, "IpAddress").filter(|i| !i.is_empty() && i != "-").map(|i| format!(" from {i}")).unwrap_or_default();
    match id {
        4625 => {
            let mut data = pick(f, &["TargetUserName", "TargetDomainName", "Status", "SubStatus", "LogonType", "IpAddress", "WorkstationName"]);
            let status = number(f, "Status").unwrap_or(0);
            let sub = number(f, "SubStatus").unwrap_or(0);
            // The SubStatus says more, when there is one.
            let why = if sub != 0 { sub } else { status };
            if let Some(n) = ntstatus(why) {
                data.insert("reason".into(), J::from(n));
            }
            data.insert("status_code".into(), J::from(format!("0x{why:08X}")));
            let lt = number(f, "LogonType").unwrap_or(0);
            data.insert("logon_type_name".into(), J::from(logon_type(lt)));
            ev(format!("failed logon ({}) of {user}{ip}: {} (0x{why:08X})", logon_type(lt), ntstatus(why).unwrap_or("unknown status")), true, data)
        }
        4740 => ev(format!("account {} was locked out (caller {})", text(f, "TargetUserName").unwrap_or_default(), text(f, "TargetDomainName").unwrap_or_default()), true, pick(f, &["TargetUserName", "TargetDomainName", "SubjectUserName"])),
        _ => {
            // 4624: only remote-interactive (RDP) logons are evidence.
            if number(f, "LogonType") != Some(10) {
                return None;
            }
            ev(format!("successful RDP logon of {user}{ip}"), false, pick(f, &["TargetUserName", "TargetDomainName", "LogonType", "IpAddress"]))
        }
    }
}

fn cleared(_: u32, f: &Map<String, J>) -> Option<Decoded> {
    ev(format!("the Security log was cleared by {}\\{}", text(f, "SubjectDomainName").unwrap_or_default(), text(f, "SubjectUserName").unwrap_or_default()), false, pick(f, &["SubjectUserName", "SubjectDomainName"]))
}

// ------------------------------------------------------------ System

fn power(_: u32, f: &Map<String, J>) -> Option<Decoded> {
    let bug = number(f, "BugcheckCode").filter(|b| *b != 0).map(|b| format!(", bug check 0x{b:X}")).unwrap_or_default();
    ev(format!("the system rebooted without cleanly shutting down first{bug}"), false, pick(f, &["BugcheckCode", "SleepInProgress", "PowerButtonTimestamp"]))
}

fn unexpected_shutdown(_: u32, f: &Map<String, J>) -> Option<Decoded> {
    ev(format!("the previous system shutdown at {} on {} was unexpected", text(f, "Data").unwrap_or_default(), text(f, "Data1").unwrap_or_default()), false, pick(f, &["Data", "Data1"]))
}

fn restart(_: u32, f: &Map<String, J>) -> Option<Decoded> {
    let p = |n: &str| text(f, n).unwrap_or_default();
    ev(format!("{} initiated the {} on behalf of {}: {}", p("param1"), p("param5"), p("param7"), p("param3")), false, pick(f, &["param1", "param2", "param3", "param5", "param7"]))
}

fn boot_type(_: u32, f: &Map<String, J>) -> Option<Decoded> {
    let t = number(f, "BootType");
    let name = match t {
        Some(0) => "cold boot",
        Some(1) => "hybrid boot (Fast Startup)",
        Some(2) => "resume from hibernation",
        _ => "unknown",
    };
    let mut data = pick(f, &["BootType"]);
    data.insert("boot_type_name".into(), J::from(name));
    ev(format!("boot type: {name}"), false, data)
}
