//! The check catalog, as data: one row per check (ids as in
//! `shared/reference/rdp-checks.md`). Most rows are a single registry value
//! with a healthy predicate, the Windows default when the value is absent, an
//! optional Group Policy counterpart and a fix; rows whose logic does not fit
//! one value (firewall rules, BCD, NIC enumeration, ...) name a [`Custom`]
//! evaluator. Several rows may share an id when one check looks at several
//! values (e.g. TLS 1.2 `Enabled` and `DisabledByDefault`).

use super::Severity::{self, *};
use crate::hive::source::HiveKind::{self, *};
use serde::Serialize;

/// Part of the RDP path a check belongs to (the report groups by it).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Area {
    Listener,
    Security,
    Services,
    Network,
    Firewall,
    Boot,
    Logon,
    Licensing,
}

/// Registry type of a checked value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ty {
    Dword,
    Sz,
    ExpandSz,
    MultiSz,
}

impl Ty {
    pub fn name(self) -> &'static str {
        match self {
            Ty::Dword => "REG_DWORD",
            Ty::Sz => "REG_SZ",
            Ty::ExpandSz => "REG_EXPAND_SZ",
            Ty::MultiSz => "REG_MULTI_SZ",
        }
    }
}

/// A literal value (a default, or what a fix writes).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Lit {
    D(u32),
    S(&'static str),
}

/// What an absent value means.
#[derive(Debug, Clone, Copy)]
pub enum Absent {
    /// Windows behaves as if the value were this.
    Default(Lit),
    /// Absent is itself broken (the reason is shown).
    Broken(&'static str),
    /// Absent is fine (the meaning is shown).
    Fine(&'static str),
}

/// Healthy predicate on the effective value.
#[derive(Debug, Clone, Copy)]
pub enum Pred {
    Eq(u32),
    In(&'static [u32]),
    Range(u32, u32),
    Ne(u32),
    Ge(u32),
    /// Case-insensitive string equality.
    StrEq(&'static str),
    /// Case-insensitive equality with one of these.
    StrIn(&'static [&'static str]),
    /// Case-insensitive suffix.
    StrEnds(&'static str),
    /// A string (or MULTI_SZ) with at least one non-blank character.
    NotEmpty,
}

/// How a broken value is fixed.
#[derive(Debug, Clone, Copy)]
pub enum Fix {
    /// Write this value (with the row's type).
    Set(Lit),
    /// Delete the value.
    Delete,
    /// No safe automatic fix; the text says what to do.
    Manual(&'static str),
}

/// A check on one registry value.
#[derive(Debug, Clone, Copy)]
pub struct ValueRule {
    /// Key path inside the check's hive; `{CCS}` is the current control set.
    pub key: &'static str,
    pub name: &'static str,
    pub ty: Ty,
    /// Group Policy counterpart in SOFTWARE (key, value); it wins over the local value.
    pub policy: Option<(&'static str, &'static str)>,
    pub absent: Absent,
    pub healthy: Pred,
    pub fix: Fix,
}

/// Checks whose logic is code (see `custom.rs` and `firewall.rs`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Custom {
    ListenerMissing,
    RdpPort,
    CertPinned,
    CoreNetStack,
    MpsAppCs,
    StaticIp,
    NicDisabled,
    NetworkProvider,
    FwBlockInboundAlways,
    FwRdpRule,
    FwBlockRule,
    FwNoLocalMerge,
    FwProfileDisabled,
    IpsecRequireInbound,
    BcdSafeboot,
    SelectControlSet,
    SetupCmdline,
    Srp,
    WinlogonShell,
    Licensing,
    SessionLimits,
}

#[derive(Debug, Clone, Copy)]
pub enum Logic {
    Value(ValueRule),
    Custom(Custom),
}

/// One catalog row.
#[derive(Debug, Clone, Copy)]
pub struct Check {
    pub id: &'static str,
    /// The id reported when the Group Policy copy is the broken one.
    pub policy_id: Option<&'static str>,
    pub area: Area,
    pub hive: HiveKind,
    pub severity: Severity,
    /// Short name of the setting.
    pub title: &'static str,
    /// What the broken state does to RDP.
    pub explain: &'static str,
    pub logic: Logic,
}

pub const TS: &str = r"{CCS}\Control\Terminal Server";
pub const RDP_TCP: &str = r"{CCS}\Control\Terminal Server\WinStations\RDP-Tcp";
pub const TS_POLICY: &str = r"Policies\Microsoft\Windows NT\Terminal Services";
pub const LSA: &str = r"{CCS}\Control\Lsa";
pub const SCHANNEL: &str = r"{CCS}\Control\SecurityProviders\SCHANNEL\Protocols";
pub const WINLOGON: &str = r"Microsoft\Windows NT\CurrentVersion\Winlogon";
pub const CREDSSP: &str = r"Microsoft\Windows\CurrentVersion\Policies\System\CredSSP\Parameters";
pub const CIPHER_POLICY: &str = r"Policies\Microsoft\Cryptography\Configuration\SSL\00010002";

#[allow(clippy::too_many_arguments)]
const fn val(
    id: &'static str,
    area: Area,
    hive: HiveKind,
    severity: Severity,
    key: &'static str,
    name: &'static str,
    ty: Ty,
    absent: Absent,
    healthy: Pred,
    fix: Fix,
    title: &'static str,
    explain: &'static str,
) -> Check {
    Check {
        id,
        policy_id: None,
        area,
        hive,
        severity,
        title,
        explain,
        logic: Logic::Value(ValueRule { key, name, ty, policy: None, absent, healthy, fix }),
    }
}

/// A value with a Group Policy counterpart under [`TS_POLICY`] of the same name.
const fn with_policy(mut c: Check, policy_id: Option<&'static str>) -> Check {
    if let Logic::Value(mut r) = c.logic {
        r.policy = Some((TS_POLICY, r.name));
        c.logic = Logic::Value(r);
    }
    c.policy_id = policy_id;
    c
}

const fn custom(id: &'static str, area: Area, hive: HiveKind, severity: Severity, which: Custom, title: &'static str, explain: &'static str) -> Check {
    Check { id, policy_id: None, area, hive, severity, title, explain, logic: Logic::Custom(which) }
}

/// `Start` of a service: healthy unless 4 (disabled).
#[allow(clippy::too_many_arguments)]
const fn service(id: &'static str, area: Area, severity: Severity, key: &'static str, default_start: u32, absent: Absent, title: &'static str, explain: &'static str) -> Check {
    val(id, area, System, severity, key, "Start", Ty::Dword, absent, Pred::Ne(4), Fix::Set(Lit::D(default_start)), title, explain)
}

const NO_KEY: &str = "the service is not installed";

/// Every check, in report order within a severity.
pub static CATALOG: &[Check] = &[
    // ---- 2.A listener / RDP enabled
    with_policy(
        val("rdp-deny-local", Area::Listener, System, Critical, TS, "fDenyTSConnections", Ty::Dword,
            Absent::Broken("with the value absent the listener does not start on port 3389"),
            Pred::Eq(0), Fix::Set(Lit::D(0)),
            "Remote Desktop connections allowed (fDenyTSConnections)",
            "Remote Desktop is turned off: the RDP listener does not accept connections."),
        Some("rdp-deny-policy"),
    ),
    val("ts-disabled", Area::Listener, System, Critical, TS, "TSEnabled", Ty::Dword, Absent::Default(Lit::D(1)), Pred::Eq(1), Fix::Set(Lit::D(1)),
        "Terminal Services enabled (TSEnabled)", "Terminal Services is disabled: no RDP session can be created."),
    val("ts-drain-mode", Area::Listener, System, High, TS, "TSServerDrainMode", Ty::Dword, Absent::Default(Lit::D(0)), Pred::Eq(0), Fix::Set(Lit::D(0)),
        "Server drain mode (TSServerDrainMode)", "The server is in drain mode: new logons are refused."),
    val("ts-user-enabled", Area::Listener, System, Low, TS, "TSUserEnabled", Ty::Dword, Absent::Default(Lit::D(0)), Pred::Eq(0), Fix::Set(Lit::D(0)),
        "TSUserEnabled", "TSUserEnabled is 1; Microsoft's general-error article lists this as a cause of refused connections (semantics unverified)."),
    val("listener-disabled", Area::Listener, System, Critical, RDP_TCP, "fEnableWinStation", Ty::Dword, Absent::Default(Lit::D(1)), Pred::Eq(1), Fix::Set(Lit::D(1)),
        "RDP-Tcp listener enabled (fEnableWinStation)", "The RDP-Tcp listener is disabled: nothing listens for RDP."),
    val("listener-logon-disabled", Area::Listener, System, High, RDP_TCP, "fLogonDisabled", Ty::Dword, Absent::Default(Lit::D(0)), Pred::Eq(0), Fix::Set(Lit::D(0)),
        "Logons through the listener (fLogonDisabled)", "Logons through the RDP-Tcp listener are disabled."),
    val("winstations-disabled", Area::Listener, Software, High, WINLOGON, "WinStationsDisabled", Ty::Sz, Absent::Default(Lit::S("0")), Pred::StrEq("0"), Fix::Set(Lit::S("0")),
        "Remote logons (Winlogon WinStationsDisabled)", "Remote logons are disabled (`change logon /disable`): \"Remote logins are currently disabled\"."),
    custom("listener-missing", Area::Listener, System, Critical, Custom::ListenerMissing,
        "RDP-Tcp listener key", "The WinStations\\RDP-Tcp key is missing: no RDP listener exists."),
    custom("rdp-port", Area::Listener, System, High, Custom::RdpPort,
        "Listener port (PortNumber)", "The listener is not on 3389 and no active firewall rule allows its port."),
    val("listener-lanadapter", Area::Listener, System, High, RDP_TCP, "LanAdapter", Ty::Dword, Absent::Default(Lit::D(0)), Pred::Eq(0), Fix::Set(Lit::D(0)),
        "Listener network adapter (LanAdapter)", "The listener is bound to one network adapter; after a resize or redeploy the NIC changes and RDP is unreachable."),
    with_policy(
        val("max-instance-count", Area::Listener, System, Medium, RDP_TCP, "MaxInstanceCount", Ty::Dword, Absent::Default(Lit::D(0xFFFF_FFFF)), Pred::Ge(2), Fix::Set(Lit::D(0xFFFF_FFFF)),
            "Connection limit (MaxInstanceCount)", "The listener accepts at most one connection (or none)."),
        None,
    ),
    // ---- 2.B security layer, encryption, TLS, authentication
    with_policy(
        val("security-layer", Area::Security, System, High, RDP_TCP, "SecurityLayer", Ty::Dword, Absent::Default(Lit::D(1)), Pred::In(&[0, 1, 2]), Fix::Set(Lit::D(1)),
            "Security layer (SecurityLayer)", "SecurityLayer is out of range (0 RDP, 1 Negotiate, 2 TLS); Windows does not clamp it and the handshake fails (\"An internal error has occurred\")."),
        None,
    ),
    with_policy(
        val("nla-user-auth", Area::Security, System, Medium, RDP_TCP, "UserAuthentication", Ty::Dword, Absent::Default(Lit::D(1)), Pred::In(&[0, 1]), Fix::Set(Lit::D(1)),
            "Network Level Authentication (UserAuthentication)", "UserAuthentication is out of range (1 NLA required, 0 not required)."),
        None,
    ),
    val("sec-protocol-negotiation", Area::Security, System, Low, RDP_TCP, "fAllowSecProtocolNegotiation", Ty::Dword, Absent::Default(Lit::D(1)), Pred::Eq(1), Fix::Set(Lit::D(1)),
        "Security protocol negotiation (fAllowSecProtocolNegotiation)", "The server does not negotiate the security protocol: clients that offer another layer than SecurityLayer are refused."),
    with_policy(
        val("min-encryption-level", Area::Security, System, High, RDP_TCP, "MinEncryptionLevel", Ty::Dword, Absent::Default(Lit::D(2)), Pred::Range(1, 4), Fix::Set(Lit::D(2)),
            "Encryption level (MinEncryptionLevel)", "MinEncryptionLevel is out of range (1 Low .. 4 FIPS): encryption negotiation fails."),
        None,
    ),
    val("fips-policy", Area::Security, System, Medium, r"{CCS}\Control\Lsa\FIPSAlgorithmPolicy", "Enabled", Ty::Dword, Absent::Default(Lit::D(0)), Pred::Eq(0), Fix::Set(Lit::D(0)),
        "FIPS-only algorithms (FIPSAlgorithmPolicy)", "FIPS mode is on: clients that cannot do FIPS-compliant RDP encryption fail with an authentication error."),
    val("disable-domain-creds", Area::Security, System, High, LSA, "disabledomaincreds", Ty::Dword, Absent::Default(Lit::D(0)), Pred::Eq(0), Fix::Set(Lit::D(0)),
        "Domain credential storage (disabledomaincreds)", "Domain credentials are refused: domain users cannot log on through NLA (local accounts can)."),
    val("lm-compat-ntlmv1", Area::Security, System, Low, LSA, "LmCompatibilityLevel", Ty::Dword, Absent::Fine("OS default (NTLMv2)"), Pred::Ge(3), Fix::Set(Lit::D(3)),
        "LAN Manager authentication level (LmCompatibilityLevel)", "LmCompatibilityLevel below 3 allows NTLMv1; RDP through an RD Gateway fails with 0xC000035B."),
    val("tls12-server-disabled", Area::Security, System, High, r"{CCS}\Control\SecurityProviders\SCHANNEL\Protocols\TLS 1.2\Server", "Enabled", Ty::Dword,
        Absent::Fine("the OS decides (TLS 1.2 on)"), Pred::Ne(0), Fix::Set(Lit::D(1)),
        "TLS 1.2 server (Enabled)", "TLS 1.2 is disabled for servers: the TLS security layer cannot be set up (Schannel 36871, \"An internal error has occurred\")."),
    val("tls12-server-disabled", Area::Security, System, High, r"{CCS}\Control\SecurityProviders\SCHANNEL\Protocols\TLS 1.2\Server", "DisabledByDefault", Ty::Dword,
        Absent::Fine("the OS decides (TLS 1.2 on)"), Pred::Eq(0), Fix::Set(Lit::D(0)),
        "TLS 1.2 server (DisabledByDefault)", "TLS 1.2 is disabled by default for servers: the TLS security layer cannot be set up."),
    val("tls11-server-disabled", Area::Security, System, Low, r"{CCS}\Control\SecurityProviders\SCHANNEL\Protocols\TLS 1.1\Server", "Enabled", Ty::Dword,
        Absent::Fine("the OS decides"), Pred::Ne(0), Fix::Manual("only legacy clients need TLS 1.1: set Enabled=1 and DisabledByDefault=0 under SCHANNEL\\Protocols\\TLS 1.1\\Server if they must connect (weakens security)"),
        "TLS 1.1 server (Enabled)", "TLS 1.1 is disabled for servers: clients or OS builds without TLS 1.2 RDP support cannot connect."),
    val("tls11-server-disabled", Area::Security, System, Low, r"{CCS}\Control\SecurityProviders\SCHANNEL\Protocols\TLS 1.1\Server", "DisabledByDefault", Ty::Dword,
        Absent::Fine("the OS decides"), Pred::Eq(0), Fix::Manual("only legacy clients need TLS 1.1: set DisabledByDefault=0 if they must connect (weakens security)"),
        "TLS 1.1 server (DisabledByDefault)", "TLS 1.1 is disabled by default for servers: legacy clients cannot connect."),
    val("tls10-server-disabled", Area::Security, System, Low, r"{CCS}\Control\SecurityProviders\SCHANNEL\Protocols\TLS 1.0\Server", "Enabled", Ty::Dword,
        Absent::Fine("the OS decides"), Pred::Ne(0), Fix::Manual("only legacy clients need TLS 1.0: set Enabled=1 and DisabledByDefault=0 under SCHANNEL\\Protocols\\TLS 1.0\\Server if they must connect (weakens security)"),
        "TLS 1.0 server (Enabled)", "TLS 1.0 is disabled for servers: clients or OS builds without TLS 1.2 RDP support cannot connect."),
    val("tls10-server-disabled", Area::Security, System, Low, r"{CCS}\Control\SecurityProviders\SCHANNEL\Protocols\TLS 1.0\Server", "DisabledByDefault", Ty::Dword,
        Absent::Fine("the OS decides"), Pred::Eq(0), Fix::Manual("only legacy clients need TLS 1.0: set DisabledByDefault=0 if they must connect (weakens security)"),
        "TLS 1.0 server (DisabledByDefault)", "TLS 1.0 is disabled by default for servers: legacy clients cannot connect."),
    val("cipher-suite-policy-empty", Area::Security, Software, High, CIPHER_POLICY, "Functions", Ty::Sz, Absent::Fine("Windows' built-in cipher suite order"), Pred::NotEmpty, Fix::Delete,
        "Cipher suite order policy (Functions)", "The cipher suite policy is present but empty: no TLS cipher suite is left and every handshake fails."),
    custom("listener-cert-pinned", Area::Security, System, High, Custom::CertPinned,
        "Listener certificate (SSLCertificateSHA1Hash)", "The listener is pinned to a certificate that is not in the machine's certificate stores: TLS cannot start (events 1057/1058, Schannel 36870)."),
    val("credssp-oracle", Area::Security, Software, Medium, CREDSSP, "AllowEncryptionOracle", Ty::Dword, Absent::Fine("Mitigated (the default)"), Pred::In(&[1, 2]), Fix::Set(Lit::D(1)),
        "CredSSP encryption oracle (AllowEncryptionOracle)", "\"Force updated clients\": unpatched clients fail with the CredSSP encryption oracle remediation error."),
    // ---- 2.C services
    service("termservice-disabled", Area::Services, Critical, r"{CCS}\Services\TermService", 3, Absent::Broken(NO_KEY),
        "Remote Desktop Services (TermService Start)", "Remote Desktop Services is disabled (or missing): nothing serves RDP."),
    val("termservice-account", Area::Services, System, High, r"{CCS}\Services\TermService", "ObjectName", Ty::Sz, Absent::Fine("no TermService"), Pred::StrIn(&[r"NT Authority\NetworkService", "LocalSystem"]),
        Fix::Set(Lit::S(r"NT Authority\NetworkService")), "TermService account (ObjectName)", "TermService runs under the wrong account and fails to log on (1069)."),
    val("termservice-servicedll", Area::Services, System, High, r"{CCS}\Services\TermService\Parameters", "ServiceDll", Ty::ExpandSz, Absent::Fine("no TermService parameters"),
        Pred::StrEnds(r"\termsrv.dll"), Fix::Set(Lit::S(r"%SystemRoot%\System32\termsrv.dll")),
        "TermService DLL (ServiceDll)", "TermService loads a DLL other than termsrv.dll (e.g. RDP Wrapper); it crash-loops after updates."),
    service("sessionenv-umrdp-disabled", Area::Services, High, r"{CCS}\Services\SessionEnv", 3, Absent::Fine(NO_KEY),
        "Remote Desktop Configuration (SessionEnv Start)", "SessionEnv is disabled: the listener certificate is not created."),
    service("sessionenv-umrdp-disabled", Area::Services, High, r"{CCS}\Services\UmRdpService", 3, Absent::Fine(NO_KEY),
        "RD UserMode Port Redirector (UmRdpService Start)", "UmRdpService is disabled."),
    service("dhcp-disabled", Area::Services, Critical, r"{CCS}\Services\Dhcp", 2, Absent::Fine(NO_KEY),
        "DHCP Client (Dhcp Start)", "The DHCP client is disabled: the VM gets no IP address and is unreachable."),
    val("dhcp-disabled", Area::Services, System, Critical, r"{CCS}\Services\Dhcp", "ObjectName", Ty::Sz, Absent::Fine(NO_KEY), Pred::StrIn(&[r"NT Authority\LocalService", r"NT Authority\NetworkService", "LocalSystem"]),
        Fix::Set(Lit::S(r"NT Authority\LocalService")), "DHCP Client account (ObjectName)", "The DHCP client runs under the wrong account and fails to start (1069)."),
    service("nsi-disabled", Area::Services, Critical, r"{CCS}\Services\nsi", 2, Absent::Fine(NO_KEY),
        "Network Store Interface (nsi Start)", "The Network Store Interface service is disabled: DHCP and the network stack fail."),
    service("netlogon-disabled", Area::Services, Medium, r"{CCS}\Services\Netlogon", 3, Absent::Fine(NO_KEY),
        "Netlogon (Start)", "Netlogon is disabled: domain logons fail (local accounts still work)."),
    custom("core-net-stack-disabled", Area::Services, System, Critical, Custom::CoreNetStack,
        "Core network services", "A core network driver or service is disabled: the VM has no network at all."),
    service("firewall-service-disabled", Area::Services, Critical, r"{CCS}\Services\MpsSvc", 2, Absent::Fine(NO_KEY),
        "Windows Firewall (MpsSvc Start)", "The firewall service is disabled: boot-time filters stay in force and every inbound port times out."),
    service("firewall-service-disabled", Area::Services, Critical, r"{CCS}\Services\BFE", 2, Absent::Fine(NO_KEY),
        "Base Filtering Engine (BFE Start)", "The Base Filtering Engine is disabled: the firewall cannot start and every inbound port times out."),
    custom("mpssvc-appcs-loopback", Area::Services, System, Critical, Custom::MpsAppCs,
        "Firewall AppCs DebugedLoopbackApps", "A REG_MULTI_SZ DebugedLoopbackApps crash-loops the firewall service (7024 \"The data is invalid\"): every inbound port is dead."),
    service("gpsvc-disabled", Area::Services, Low, r"{CCS}\Services\gpsvc", 2, Absent::Fine(NO_KEY),
        "Group Policy Client (gpsvc Start)", "The Group Policy client is disabled (often left behind by a repair that stopped a GPO from reverting a fix); policies are no longer applied."),
    // ---- 2.D network
    custom("static-ip", Area::Network, System, Medium, Custom::StaticIp,
        "Static IP address", "An interface has a static IP address; Azure does not route to an address the fabric did not allocate."),
    custom("nic-disabled", Area::Network, System, Critical, Custom::NicDisabled,
        "Network adapter disabled (ConfigFlags)", "The network adapter is disabled in the device configuration: no connectivity on any port."),
    custom("network-provider-orphan", Area::Network, System, Medium, Custom::NetworkProvider,
        "Network provider order", "A network provider in ProviderOrder has no provider registration (left by an uninstalled VPN/EDR): logon hangs at \"Please wait for the Network Connections\"."),
    // ---- 2.E firewall
    custom("fw-block-inbound-always", Area::Firewall, System, High, Custom::FwBlockInboundAlways,
        "Firewall \"block all incoming\" (DoNotAllowExceptions)", "The firewall ignores every allow rule (BlockInboundAlways): RDP times out."),
    custom("fw-rdp-rule-inactive", Area::Firewall, System, High, Custom::FwRdpRule,
        "Firewall RDP allow rule", "No active inbound firewall rule allows the RDP port: RDP times out."),
    custom("fw-block-rule-rdp", Area::Firewall, System, High, Custom::FwBlockRule,
        "Firewall block rules on the RDP port", "An active inbound block rule covers the RDP port; block beats allow."),
    custom("fw-gpo-no-local-merge", Area::Firewall, Software, High, Custom::FwNoLocalMerge,
        "Firewall local rule merge (AllowLocalPolicyMerge)", "Group Policy ignores local firewall rules and has no RDP allow rule of its own."),
    custom("fw-profile-disabled", Area::Firewall, System, Info, Custom::FwProfileDisabled,
        "Firewall enabled (EnableFirewall)", "The firewall is off in some profile (a mitigation, not a fault)."),
    custom("ipsec-require-inbound", Area::Firewall, System, High, Custom::IpsecRequireInbound,
        "IPsec connection security rules", "An active IPsec rule requires inbound authentication on RDP: plain clients time out silently."),
    // ---- 2.F boot / control set
    custom("bcd-safeboot", Area::Boot, Bcd, Critical, Custom::BcdSafeboot,
        "Safe mode boot (BCD safeboot)", "The default boot entry starts Windows in safe mode: Remote Desktop Services does not run."),
    custom("select-controlset", Area::Boot, System, High, Custom::SelectControlSet,
        "Control set selection (Select)", "SYSTEM\\Select names a missing control set, or Current and Default differ."),
    custom("setup-cmdline-stuck", Area::Boot, System, Medium, Custom::SetupCmdline,
        "Setup hook (Setup\\SetupType, CmdLine)", "A setup command is armed for the next boot; a dangling one stalls the VM before the logon screen."),
    // ---- 2.G logon
    custom("srp-applocker-lockout", Area::Logon, Software, High, Custom::Srp,
        "Software restriction / AppLocker", "A software restriction policy disallows Windows binaries: the session closes right after logon."),
    custom("winlogon-shell-userinit", Area::Logon, Software, High, Custom::WinlogonShell,
        "Winlogon Userinit / Shell", "Winlogon's Userinit or Shell is empty or wrong: black screen or 0xC000021A at logon."),
    // ---- 2.H licensing, session stability
    custom("rds-licensing", Area::Licensing, Software, Medium, Custom::Licensing,
        "RD licensing", "An RD Session Host licensing mode is set but no license server is configured: after the 120-day grace period connections fail (\"no Remote Desktop License Servers available\")."),
    custom("session-limits", Area::Licensing, Software, Low, Custom::SessionLimits,
        "Session time limits and reconnection", "Short session limits or disabled automatic reconnection drop RDP sessions."),
];

/// Distinct check ids in catalog order.
pub fn ids() -> Vec<&'static str> {
    let mut out: Vec<&'static str> = Vec::new();
    for c in CATALOG {
        for id in std::iter::once(c.id).chain(c.policy_id) {
            if !out.contains(&id) {
                out.push(id);
            }
        }
    }
    out
}
