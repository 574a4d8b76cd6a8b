//! The check catalog, as data: one row per check (ids as in
//! `shared/reference/rdp-checks.md`). Most rows are a single registry value
//! with a healthy predicate, the Windows default when the value is absent, an
//! optional Group Policy counterpart and a fix; rows whose logic does not fit
//! one value (firewall rules, BCD, NIC enumeration, ...) name their
//! evaluator in `custom.rs` (`run`). Several rows may share an id when one
//! check looks at several values (e.g. TLS 1.2 `Enabled` and `DisabledByDefault`).

use super::custom;
use super::system;
use super::Severity::*;
use crate::hive::source::HiveKind::*;

pub use super::check::{Absent, Area, Check, Fix, Lit, Pred, Ty, CIPHER_POLICY, CREDSSP, LSA, RDP_TCP, SCHANNEL, TS, TS_POLICY, WINLOGON};

const NO_KEY: &str = "the service is not installed";

/// `Start` of a service: healthy unless 4 (disabled); rows give the key, the
/// default Start a fix restores and what an absent key means.
const SERVICE_START: Check = Check { area: Area::Services, value: "Start", healthy: Pred::Ne(4), ..Check::DEFAULT };

/// Every check, in report order within a severity.
pub static CATALOG: &[Check] = &[
    // ---- 2.A listener / RDP enabled
    Check {
        id: "rdp-deny-local", policy_id: Some("rdp-deny-policy"), area: Area::Listener, severity: Critical, key: TS, value: "fDenyTSConnections",
        policy: Some((TS_POLICY, "fDenyTSConnections")), absent: Absent::Broken("with the value absent the listener does not start on port 3389"),
        healthy: Pred::Eq(0), fix: Fix::Set(Lit::D(0)), title: "Remote Desktop connections allowed (fDenyTSConnections)",
        explain: "Remote Desktop is turned off: the RDP listener does not accept connections.",
        ..Check::DEFAULT
    },
    Check {
        id: "ts-disabled", area: Area::Listener, severity: Critical, key: TS, value: "TSEnabled", absent: Absent::Default(Lit::D(1)),
        healthy: Pred::Eq(1), fix: Fix::Set(Lit::D(1)), title: "Terminal Services enabled (TSEnabled)",
        explain: "Terminal Services is disabled: no RDP session can be created.",
        ..Check::DEFAULT
    },
    Check {
        id: "ts-drain-mode", area: Area::Listener, severity: High, key: TS, value: "TSServerDrainMode", absent: Absent::Default(Lit::D(0)),
        healthy: Pred::Eq(0), fix: Fix::Set(Lit::D(0)), title: "Server drain mode (TSServerDrainMode)",
        explain: "The server is in drain mode: new logons are refused.",
        ..Check::DEFAULT
    },
    Check {
        id: "ts-user-enabled", area: Area::Listener, severity: Low, key: TS, value: "TSUserEnabled", absent: Absent::Default(Lit::D(0)),
        healthy: Pred::Eq(0), fix: Fix::Set(Lit::D(0)), title: "TSUserEnabled",
        explain: "TSUserEnabled is 1; Microsoft's general-error article lists this as a cause of refused connections (semantics unverified).",
        ..Check::DEFAULT
    },
    Check {
        id: "listener-disabled", area: Area::Listener, severity: Critical, key: RDP_TCP, value: "fEnableWinStation",
        absent: Absent::Default(Lit::D(1)), healthy: Pred::Eq(1), fix: Fix::Set(Lit::D(1)), title: "RDP-Tcp listener enabled (fEnableWinStation)",
        explain: "The RDP-Tcp listener is disabled: nothing listens for RDP.",
        ..Check::DEFAULT
    },
    Check {
        id: "listener-logon-disabled", area: Area::Listener, severity: High, key: RDP_TCP, value: "fLogonDisabled",
        absent: Absent::Default(Lit::D(0)), healthy: Pred::Eq(0), fix: Fix::Set(Lit::D(0)), title: "Logons through the listener (fLogonDisabled)",
        explain: "Logons through the RDP-Tcp listener are disabled.",
        ..Check::DEFAULT
    },
    Check {
        id: "winstations-disabled", area: Area::Listener, severity: High, hive: Software, key: WINLOGON, value: "WinStationsDisabled", ty: Ty::Sz,
        absent: Absent::Default(Lit::S("0")), healthy: Pred::StrEq("0"), fix: Fix::Set(Lit::S("0")),
        title: "Remote logons (Winlogon WinStationsDisabled)",
        explain: "Remote logons are disabled (`change logon /disable`): \"Remote logins are currently disabled\".",
        ..Check::DEFAULT
    },
    Check {
        id: "listener-missing", area: Area::Listener, severity: Critical, run: Some(custom::listener_missing), title: "RDP-Tcp listener key",
        explain: "The WinStations\\RDP-Tcp key is missing: no RDP listener exists.",
        ..Check::DEFAULT
    },
    Check {
        id: "rdp-port", area: Area::Listener, severity: High, run: Some(custom::rdp_port), title: "Listener port (PortNumber)",
        explain: "The listener is not on 3389 and no active firewall rule allows its port.",
        ..Check::DEFAULT
    },
    Check {
        id: "listener-lanadapter", area: Area::Listener, severity: High, key: RDP_TCP, value: "LanAdapter", absent: Absent::Default(Lit::D(0)),
        healthy: Pred::Eq(0), fix: Fix::Set(Lit::D(0)), title: "Listener network adapter (LanAdapter)",
        explain: "The listener is bound to one network adapter; after a resize or redeploy the NIC changes and RDP is unreachable.",
        ..Check::DEFAULT
    },
    Check {
        id: "max-instance-count", area: Area::Listener, severity: Medium, key: RDP_TCP, value: "MaxInstanceCount",
        policy: Some((TS_POLICY, "MaxInstanceCount")), absent: Absent::Default(Lit::D(0xFFFF_FFFF)), healthy: Pred::Ge(2),
        fix: Fix::Set(Lit::D(0xFFFF_FFFF)), title: "Connection limit (MaxInstanceCount)",
        explain: "The listener accepts at most one connection (or none).",
        ..Check::DEFAULT
    },
    // ---- 2.B security layer, encryption, TLS, authentication
    // Range 0/1/2 [D4, A1 TS_SECURITY_LAYER_POLICY, RP-rdpconn]. Before Vista (2003 SP1) the value is
    // optional and absent means the RDP security layer: no default pretended there [D10] (`custom::adapt_nt5_layer`).
    Check {
        id: "security-layer", area: Area::Security, severity: High, key: RDP_TCP, value: "SecurityLayer", policy: Some((TS_POLICY, "SecurityLayer")),
        adapt: Some(custom::adapt_nt5_layer), absent: Absent::Default(Lit::D(1)), healthy: Pred::In(&[0, 1, 2]), fix: Fix::Set(Lit::D(1)), title: "Security layer (SecurityLayer)",
        explain: "SecurityLayer is out of range (0 RDP, 1 Negotiate, 2 TLS); Windows does not clamp it and the handshake fails (\"An internal error has occurred\").",
        ..Check::DEFAULT
    },
    Check {
        id: "nla-user-auth", area: Area::Security, severity: Medium, key: RDP_TCP, value: "UserAuthentication",
        // NLA (CredSSP) exists from Vista / 2008 on [D10, SS-DisableNLA]: no row on NT 5.x.
        adapt: Some(custom::adapt_since_vista), policy: Some((TS_POLICY, "UserAuthentication")), absent: Absent::Default(Lit::D(1)), healthy: Pred::In(&[0, 1]), fix: Fix::Set(Lit::D(1)),
        title: "Network Level Authentication (UserAuthentication)", explain: "UserAuthentication is out of range (1 NLA required, 0 not required).",
        ..Check::DEFAULT
    },
    Check {
        id: "sec-protocol-negotiation", area: Area::Security, severity: Low, key: RDP_TCP, value: "fAllowSecProtocolNegotiation",
        // D10 turns it off only together with SecurityLayer 0 and UserAuthentication 0 (and back on with them):
        // judged with those two (`custom::adapt_negotiation`); absent before Vista.
        adapt: Some(custom::adapt_negotiation), absent: Absent::Default(Lit::D(1)), healthy: Pred::Eq(1), fix: Fix::Set(Lit::D(1)),
        title: "Security protocol negotiation (fAllowSecProtocolNegotiation)",
        explain: "The server does not negotiate the security protocol: clients that offer another layer than SecurityLayer are refused.",
        ..Check::DEFAULT
    },
    Check {
        id: "min-encryption-level", area: Area::Security, severity: High, key: RDP_TCP, value: "MinEncryptionLevel",
        // 1 Low, 2 Client compatible, 3 High, 4 FIPS (Win32_TSGeneralSetting.SetEncryptionLevel). D10: 4 (FIPS) -> 2,
        // 3 (High) -> 2, and 1 if 2 still fails; D4: 1 for legacy clients. Out of range is High; 4 Medium (with
        // FIPSAlgorithmPolicy), 3 Low (`custom::adapt_encryption_level`).
        adapt: Some(custom::adapt_encryption_level), policy: Some((TS_POLICY, "MinEncryptionLevel")), absent: Absent::Default(Lit::D(2)), healthy: Pred::Range(1, 4), fix: Fix::Set(Lit::D(2)),
        title: "Encryption level (MinEncryptionLevel)",
        explain: "MinEncryptionLevel is out of range (1 Low .. 4 FIPS): encryption negotiation fails.",
        ..Check::DEFAULT
    },
    Check {
        id: "fips-policy", area: Area::Security, severity: Medium, key: r"{CCS}\Control\Lsa\FIPSAlgorithmPolicy", value: "Enabled",
        // D10. With TLS/NLA the handshake just uses FIPS-approved suites; it breaks clients on the RDP security
        // layer (SecurityLayer 0) or with MinEncryptionLevel 4: Medium there, else Low (`custom::adapt_fips`).
        adapt: Some(custom::adapt_fips), absent: Absent::Default(Lit::D(0)), healthy: Pred::Eq(0), fix: Fix::Set(Lit::D(0)), title: "FIPS-only algorithms (FIPSAlgorithmPolicy)",
        explain: "FIPS mode is on: clients that cannot do FIPS-compliant RDP encryption fail with an authentication error.",
        ..Check::DEFAULT
    },
    Check {
        // D10; only domain accounts are refused, so only domain members and DCs (`custom::adapt_domain_only`).
        id: "disable-domain-creds", area: Area::Security, severity: High, key: LSA, value: "disabledomaincreds",
        adapt: Some(custom::adapt_domain_only), absent: Absent::Default(Lit::D(0)),
        healthy: Pred::Eq(0), fix: Fix::Set(Lit::D(0)), title: "Domain credential storage (disabledomaincreds)",
        explain: "Domain credentials are refused: domain users cannot log on through NLA (local accounts can).",
        ..Check::DEFAULT
    },
    Check {
        // D23: the level matters where NTLM is *answered*. Levels 0-4 all accept NTLMv2 responses; only 5 refuses
        // LM and NTLM(v1) responses, so only 5 on this (server) side can refuse a client (0xC000035B).
        id: "lm-compat-ntlmv1", area: Area::Security, severity: Low, key: LSA, value: "LmCompatibilityLevel",
        absent: Absent::Fine("OS default (NTLMv2 accepted)"), healthy: Pred::Range(0, 4), fix: Fix::Set(Lit::D(3)),
        title: "LAN Manager authentication level (LmCompatibilityLevel)",
        explain: "LmCompatibilityLevel 5: this machine refuses LM and NTLMv1 responses; clients (or an RD Gateway) that still send NTLMv1 fail with 0xC000035B.",
        ..Check::DEFAULT
    },
    // TLS server defaults per build (`custom::adapt_tls`, Schannel "Protocols in TLS/SSL" defaults table [D3, D10, D11]):
    // Vista/2008 have no TLS 1.1/1.2; 7/2008 R2 have them off by default and RDP uses TLS 1.0 only until the RDP
    // TLS 1.1/1.2 update (KB3080079), so there disabling 1.0 breaks the TLS layer and NLA (High, automatic fix) and
    // an explicit 1.1/1.2 off is the default; from build 26100 (Windows 11 24H2, Server 2025) 1.0/1.1 are off by
    // default (Windows IT Pro blog "TLS 1.0 and TLS 1.1 soon to be disabled in Windows", 2023), so an explicit 0
    // is no finding. Only `\Server` matters for the listener [RP-rdpconn].
    Check {
        id: "tls12-server-disabled", area: Area::Security, severity: High, key: r"{CCS}\Control\SecurityProviders\SCHANNEL\Protocols\TLS 1.2\Server", adapt: Some(custom::adapt_tls),
        value: "Enabled", absent: Absent::Fine("the OS decides (TLS 1.2 on)"), healthy: Pred::Ne(0), fix: Fix::Set(Lit::D(1)),
        title: "TLS 1.2 server (Enabled)",
        explain: "TLS 1.2 is disabled for servers: the TLS security layer cannot be set up (Schannel 36871, \"An internal error has occurred\").",
        ..Check::DEFAULT
    },
    Check {
        id: "tls12-server-disabled", area: Area::Security, severity: High, key: r"{CCS}\Control\SecurityProviders\SCHANNEL\Protocols\TLS 1.2\Server", adapt: Some(custom::adapt_tls),
        value: "DisabledByDefault", absent: Absent::Fine("the OS decides (TLS 1.2 on)"), healthy: Pred::Eq(0), fix: Fix::Set(Lit::D(0)),
        title: "TLS 1.2 server (DisabledByDefault)", explain: "TLS 1.2 is disabled by default for servers: the TLS security layer cannot be set up.",
        ..Check::DEFAULT
    },
    Check {
        id: "tls11-server-disabled", area: Area::Security, severity: Low, key: r"{CCS}\Control\SecurityProviders\SCHANNEL\Protocols\TLS 1.1\Server", adapt: Some(custom::adapt_tls),
        value: "Enabled", absent: Absent::Fine("the OS decides"), healthy: Pred::Ne(0),
        fix: Fix::Manual("only legacy clients need TLS 1.1: set Enabled=1 and DisabledByDefault=0 under SCHANNEL\\Protocols\\TLS 1.1\\Server if they must connect (weakens security)"),
        title: "TLS 1.1 server (Enabled)",
        explain: "TLS 1.1 is disabled for servers: clients or OS builds without TLS 1.2 RDP support cannot connect.",
        ..Check::DEFAULT
    },
    Check {
        id: "tls11-server-disabled", area: Area::Security, severity: Low, key: r"{CCS}\Control\SecurityProviders\SCHANNEL\Protocols\TLS 1.1\Server", adapt: Some(custom::adapt_tls),
        value: "DisabledByDefault", absent: Absent::Fine("the OS decides"), healthy: Pred::Eq(0),
        fix: Fix::Manual("only legacy clients need TLS 1.1: set DisabledByDefault=0 if they must connect (weakens security)"),
        title: "TLS 1.1 server (DisabledByDefault)", explain: "TLS 1.1 is disabled by default for servers: legacy clients cannot connect.",
        ..Check::DEFAULT
    },
    Check {
        id: "tls10-server-disabled", area: Area::Security, severity: Low, key: r"{CCS}\Control\SecurityProviders\SCHANNEL\Protocols\TLS 1.0\Server", adapt: Some(custom::adapt_tls),
        value: "Enabled", absent: Absent::Fine("the OS decides"), healthy: Pred::Ne(0),
        fix: Fix::Manual("only legacy clients need TLS 1.0: set Enabled=1 and DisabledByDefault=0 under SCHANNEL\\Protocols\\TLS 1.0\\Server if they must connect (weakens security)"),
        title: "TLS 1.0 server (Enabled)",
        explain: "TLS 1.0 is disabled for servers: clients or OS builds without TLS 1.2 RDP support cannot connect.",
        ..Check::DEFAULT
    },
    Check {
        id: "tls10-server-disabled", area: Area::Security, severity: Low, key: r"{CCS}\Control\SecurityProviders\SCHANNEL\Protocols\TLS 1.0\Server", adapt: Some(custom::adapt_tls),
        value: "DisabledByDefault", absent: Absent::Fine("the OS decides"), healthy: Pred::Eq(0),
        fix: Fix::Manual("only legacy clients need TLS 1.0: set DisabledByDefault=0 if they must connect (weakens security)"),
        title: "TLS 1.0 server (DisabledByDefault)", explain: "TLS 1.0 is disabled by default for servers: legacy clients cannot connect.",
        ..Check::DEFAULT
    },
    Check {
        id: "cipher-suite-policy-empty", area: Area::Security, severity: High, hive: Software, key: CIPHER_POLICY, value: "Functions", ty: Ty::Sz,
        absent: Absent::Fine("Windows' built-in cipher suite order"), healthy: Pred::NotEmpty, fix: Fix::Delete,
        title: "Cipher suite order policy (Functions)",
        explain: "The cipher suite policy is present but empty: no TLS cipher suite is left and every handshake fails.",
        ..Check::DEFAULT
    },
    Check {
        id: "listener-cert-pinned", area: Area::Security, severity: High, run: Some(custom::cert_pinned),
        title: "Listener certificate (SSLCertificateSHA1Hash)",
        explain: "The listener is pinned to a certificate that is not in the machine's certificate stores: TLS cannot start (events 1057/1058, Schannel 36870).",
        ..Check::DEFAULT
    },
    Check {
        id: "credssp-oracle", area: Area::Security, severity: Medium, hive: Software, key: CREDSSP, value: "AllowEncryptionOracle",
        absent: Absent::Fine("Mitigated (the default)"), healthy: Pred::In(&[1, 2]), fix: Fix::Set(Lit::D(1)),
        title: "CredSSP encryption oracle (AllowEncryptionOracle)",
        explain: "\"Force updated clients\": unpatched clients fail with the CredSSP encryption oracle remediation error.",
        ..Check::DEFAULT
    },
    // ---- 2.C services
    Check {
        id: "termservice-disabled", severity: Critical, key: r"{CCS}\Services\TermService", absent: Absent::Broken(NO_KEY), fix: Fix::Set(Lit::D(3)),
        title: "Remote Desktop Services (TermService Start)", explain: "Remote Desktop Services is disabled (or missing): nothing serves RDP.",
        ..SERVICE_START
    },
    Check {
        id: "termservice-account", area: Area::Services, severity: High, key: r"{CCS}\Services\TermService", value: "ObjectName", ty: Ty::Sz,
        absent: Absent::Fine("no TermService"), healthy: Pred::StrIn(&[r"NT Authority\NetworkService", "LocalSystem"]),
        fix: Fix::Set(Lit::S(r"NT Authority\NetworkService")), title: "TermService account (ObjectName)",
        explain: "TermService runs under the wrong account and fails to log on (1069).",
        ..Check::DEFAULT
    },
    Check {
        id: "termservice-servicedll", area: Area::Services, severity: High, key: r"{CCS}\Services\TermService\Parameters", value: "ServiceDll",
        ty: Ty::ExpandSz, absent: Absent::Fine("no TermService parameters"), healthy: Pred::StrEnds(r"\termsrv.dll"),
        fix: Fix::Set(Lit::S(r"%SystemRoot%\System32\termsrv.dll")), title: "TermService DLL (ServiceDll)",
        explain: "TermService loads a DLL other than termsrv.dll (e.g. RDP Wrapper); it crash-loops after updates.",
        ..Check::DEFAULT
    },
    Check {
        id: "sessionenv-umrdp-disabled", severity: High, key: r"{CCS}\Services\SessionEnv", absent: Absent::Fine(NO_KEY), fix: Fix::Set(Lit::D(3)),
        title: "Remote Desktop Configuration (SessionEnv Start)", explain: "SessionEnv is disabled: the listener certificate is not created.",
        ..SERVICE_START
    },
    Check {
        // UmRdpService only serves device redirection (printers, drives, ports, smart cards) [D2]: connections still work.
        id: "sessionenv-umrdp-disabled", severity: Low, key: r"{CCS}\Services\UmRdpService", absent: Absent::Fine(NO_KEY), fix: Fix::Set(Lit::D(3)),
        title: "RD UserMode Port Redirector (UmRdpService Start)",
        explain: "UmRdpService is disabled: printer, drive, port and smart-card redirection fail; the connection itself still works.",
        ..SERVICE_START
    },
    Check {
        id: "dhcp-disabled", severity: Critical, key: r"{CCS}\Services\Dhcp", absent: Absent::Fine(NO_KEY), fix: Fix::Set(Lit::D(2)),
        title: "DHCP Client (Dhcp Start)", explain: "The DHCP client is disabled: the VM gets no IP address and is unreachable.",
        ..SERVICE_START
    },
    Check {
        id: "dhcp-disabled", area: Area::Services, severity: Critical, key: r"{CCS}\Services\Dhcp", value: "ObjectName", ty: Ty::Sz,
        absent: Absent::Fine(NO_KEY), healthy: Pred::StrIn(&[r"NT Authority\LocalService", r"NT Authority\NetworkService", "LocalSystem"]),
        fix: Fix::Set(Lit::S(r"NT Authority\LocalService")), title: "DHCP Client account (ObjectName)",
        explain: "The DHCP client runs under the wrong account and fails to start (1069).",
        ..Check::DEFAULT
    },
    Check {
        id: "nsi-disabled", severity: Critical, key: r"{CCS}\Services\nsi", absent: Absent::Fine(NO_KEY), fix: Fix::Set(Lit::D(2)),
        title: "Network Store Interface (nsi Start)", explain: "The Network Store Interface service is disabled: DHCP and the network stack fail.",
        ..SERVICE_START
    },
    Check {
        // D16, D10: only domain logons need Netlogon, so only members and DCs, where it starts automatically
        // (Start 2) (`custom::adapt_netlogon`).
        id: "netlogon-disabled", severity: Medium, key: r"{CCS}\Services\Netlogon", adapt: Some(custom::adapt_netlogon), absent: Absent::Fine(NO_KEY), fix: Fix::Set(Lit::D(3)),
        title: "Netlogon (Start)", explain: "Netlogon is disabled: domain logons fail (local accounts still work).",
        ..SERVICE_START
    },
    Check {
        id: "core-net-stack-disabled", area: Area::Services, severity: Critical, run: Some(custom::core_net_stack), title: "Core network services",
        explain: "A core network driver or service is disabled: the VM has no network at all.",
        ..Check::DEFAULT
    },
    Check {
        id: "firewall-service-disabled", severity: Critical, key: r"{CCS}\Services\MpsSvc", absent: Absent::Fine(NO_KEY), fix: Fix::Set(Lit::D(2)),
        title: "Windows Firewall (MpsSvc Start)",
        explain: "The firewall service is disabled: boot-time filters stay in force and every inbound port times out.",
        ..SERVICE_START
    },
    Check {
        id: "firewall-service-disabled", severity: Critical, key: r"{CCS}\Services\BFE", absent: Absent::Fine(NO_KEY), fix: Fix::Set(Lit::D(2)),
        title: "Base Filtering Engine (BFE Start)",
        explain: "The Base Filtering Engine is disabled: the firewall cannot start and every inbound port times out.",
        ..SERVICE_START
    },
    Check {
        id: "mpssvc-appcs-loopback", area: Area::Services, severity: Critical, run: Some(custom::mpssvc_appcs),
        title: "Firewall AppCs DebugedLoopbackApps",
        explain: "A REG_MULTI_SZ DebugedLoopbackApps crash-loops the firewall service (7024 \"The data is invalid\"): every inbound port is dead.",
        ..Check::DEFAULT
    },
    Check {
        id: "gpsvc-disabled", severity: Low, key: r"{CCS}\Services\gpsvc", absent: Absent::Fine(NO_KEY), fix: Fix::Set(Lit::D(2)),
        title: "Group Policy Client (gpsvc Start)",
        explain: "The Group Policy client is disabled (often left behind by a repair that stopped a GPO from reverting a fix); policies are no longer applied.",
        ..SERVICE_START
    },
    // ---- 2.D network
    Check {
        id: "static-ip", area: Area::Network, severity: Medium, run: Some(custom::static_ip), title: "Static IP address",
        explain: "An interface has a static IP address; Azure does not route to an address the fabric did not allocate.",
        ..Check::DEFAULT
    },
    Check {
        id: "nic-disabled", area: Area::Network, severity: Critical, run: Some(custom::nic_disabled), title: "Network adapter disabled (ConfigFlags)",
        explain: "The network adapter is disabled in the device configuration: no connectivity on any port.",
        ..Check::DEFAULT
    },
    Check {
        id: "network-provider-orphan", area: Area::Network, severity: Medium, run: Some(custom::network_provider), title: "Network provider order",
        explain: "A network provider in ProviderOrder has no provider registration (left by an uninstalled VPN/EDR): logon hangs at \"Please wait for the Network Connections\".",
        ..Check::DEFAULT
    },
    // ---- 2.E firewall
    Check {
        id: "fw-block-inbound-always", area: Area::Firewall, severity: High, run: Some(custom::fw_block_inbound_always),
        title: "Firewall \"block all incoming\" (DoNotAllowExceptions)",
        explain: "The firewall ignores every allow rule (BlockInboundAlways): RDP times out.",
        ..Check::DEFAULT
    },
    Check {
        id: "fw-rdp-rule-inactive", area: Area::Firewall, severity: High, run: Some(custom::fw_rdp_rule), title: "Firewall RDP allow rule",
        explain: "No active inbound firewall rule allows the RDP port: RDP times out.",
        ..Check::DEFAULT
    },
    Check {
        id: "fw-block-rule-rdp", area: Area::Firewall, severity: High, run: Some(custom::fw_block_rule),
        title: "Firewall block rules on the RDP port", explain: "An active inbound block rule covers the RDP port; block beats allow.",
        ..Check::DEFAULT
    },
    Check {
        id: "fw-gpo-no-local-merge", area: Area::Firewall, severity: High, hive: Software, run: Some(custom::fw_no_local_merge),
        title: "Firewall local rule merge (AllowLocalPolicyMerge)",
        explain: "Group Policy ignores local firewall rules and has no RDP allow rule of its own.",
        ..Check::DEFAULT
    },
    Check {
        id: "fw-profile-disabled", area: Area::Firewall, severity: Info, run: Some(custom::fw_profile_disabled),
        title: "Firewall enabled (EnableFirewall)", explain: "The firewall is off in some profile (a mitigation, not a fault).",
        ..Check::DEFAULT
    },
    Check {
        id: "ipsec-require-inbound", area: Area::Firewall, severity: High, run: Some(custom::ipsec), title: "IPsec connection security rules",
        explain: "An active IPsec rule requires inbound authentication on RDP: plain clients time out silently.",
        ..Check::DEFAULT
    },
    // ---- 2.F boot / control set
    Check {
        id: "bcd-safeboot", area: Area::Boot, severity: Critical, hive: Bcd, run: Some(custom::bcd_safeboot), title: "Safe mode boot (BCD safeboot)",
        explain: "The default boot entry starts Windows in safe mode: Remote Desktop Services does not run.",
        ..Check::DEFAULT
    },
    Check {
        id: "select-controlset", area: Area::Boot, severity: High, run: Some(custom::select_controlset), title: "Control set selection (Select)",
        explain: "SYSTEM\\Select names a missing control set, or Current and Default differ.",
        ..Check::DEFAULT
    },
    Check {
        id: "setup-cmdline-stuck", area: Area::Boot, severity: Medium, run: Some(custom::setup_cmdline),
        title: "Setup hook (Setup\\SetupType, CmdLine)",
        explain: "A setup command is armed for the next boot; a dangling one stalls the VM before the logon screen.",
        ..Check::DEFAULT
    },
    // ---- 2.G logon
    Check {
        id: "srp-applocker-lockout", area: Area::Logon, severity: High, hive: Software, run: Some(custom::srp),
        title: "Software restriction / AppLocker",
        explain: "A software restriction policy disallows Windows binaries: the session closes right after logon.",
        ..Check::DEFAULT
    },
    Check {
        id: "winlogon-shell-userinit", area: Area::Logon, severity: High, hive: Software, run: Some(custom::winlogon),
        title: "Winlogon Userinit / Shell", explain: "Winlogon's Userinit or Shell is empty or wrong: black screen or 0xC000021A at logon.",
        ..Check::DEFAULT
    },
    // ---- 2.H licensing, session stability
    Check {
        id: "rds-licensing", area: Area::Licensing, severity: Medium, hive: Software, run: Some(custom::licensing), title: "RD licensing",
        explain: "An RD Session Host licensing mode is set but no license server is configured: after the 120-day grace period connections fail (\"no Remote Desktop License Servers available\").",
        ..Check::DEFAULT
    },
    Check {
        id: "session-limits", area: Area::Licensing, severity: Low, hive: Software, run: Some(custom::session_limits),
        title: "Session time limits and reconnection", explain: "Short session limits or disabled automatic reconnection drop RDP sessions.",
        ..Check::DEFAULT
    },
    // ---- issue 19: new checks visible on disk (evaluators in system.rs)
    // Source: `netsh interface portproxy` (learn.microsoft.com/windows-server/networking/technologies/netsh/netsh-interface-portproxy):
    // entries live in Services\PortProxy\<v4tov4|...>\tcp as "listenaddress/port" = "connectaddress/port", served by iphlpsvc.
    Check {
        id: "portproxy-rdp-port", area: Area::Listener, severity: High, run: Some(system::portproxy), title: "Port proxy on the RDP port (PortProxy)",
        explain: "A port proxy listens on the RDP port: RDP clients are forwarded elsewhere, or the RDP listener cannot bind its port.",
        ..Check::DEFAULT
    },
    // Source: `route -p` persistent routes (learn.microsoft.com/windows-server/administration/windows-commands/route_ws2008),
    // stored as "dest,mask,gateway,metric" under Tcpip\Parameters\PersistentRoutes.
    Check {
        id: "persistent-default-route", area: Area::Network, severity: Medium, run: Some(system::persistent_route),
        title: "Persistent default route (PersistentRoutes)",
        explain: "A persistent default route competes with the interface's own gateway: replies to RDP clients can take the wrong path.",
        ..Check::DEFAULT
    },
    // Source: CredSSP is the tspkg security package (KB951608 "Description of the Credential Security Support Provider (CredSSP)
    // in Windows XP SP3": add tspkg to Lsa\Security Packages); Vista/7/2008/2008 R2 list it by default.
    Check {
        id: "lsa-tspkg-missing", area: Area::Security, severity: High, run: Some(system::lsa_tspkg), title: "CredSSP security package (Lsa Security Packages)",
        explain: "Lsa\\Security Packages does not load tspkg: CredSSP, and with it Network Level Authentication, is unavailable (\"An authentication error has occurred\").",
        ..Check::DEFAULT
    },
    // Source: "Interactive logon: Require Windows Hello for Business or smart card" (learn.microsoft.com/previous-versions/windows/it-pro/
    // windows-10/security/threat-protection/security-policy-settings/interactive-logon-require-smart-card): value scforceoption.
    Check {
        id: "smartcard-required", area: Area::Logon, severity: High, hive: Software, key: r"Microsoft\Windows\CurrentVersion\Policies\System",
        value: "scforceoption", absent: Absent::Default(Lit::D(0)), healthy: Pred::Eq(0), fix: Fix::Set(Lit::D(0)),
        title: "Smart card required (scforceoption)",
        explain: "Interactive logon requires a smart card: password logons over RDP are refused.",
        ..Check::DEFAULT
    },
    // Source: TLS registry settings, KeyExchangeAlgorithms\PKCS (learn.microsoft.com/windows-server/security/tls/tls-registry-settings;
    // KB245030): Enabled = 0 turns off RSA key exchange and authentication in Schannel.
    Check {
        id: "schannel-rsa-disabled", area: Area::Security, severity: High, key: r"{CCS}\Control\SecurityProviders\SCHANNEL\KeyExchangeAlgorithms\PKCS",
        value: "Enabled", absent: Absent::Fine("the OS default (RSA on)"), healthy: Pred::Ne(0), fix: Fix::Delete,
        title: "RSA key exchange (SCHANNEL KeyExchangeAlgorithms\\PKCS Enabled)",
        explain: "RSA key exchange and authentication are disabled in Schannel: the listener's RSA certificate cannot be used and the TLS handshake fails.",
        ..Check::DEFAULT
    },
    // Source: "Prioritizing Schannel Cipher Suites" (learn.microsoft.com/windows/win32/secauthn/prioritizing-schannel-cipher-suites): the GPO
    // SSL Cipher Suite Order (Policies\...\SSL\00010002 Functions) overrides the local list (Configuration\Local\SSL\00010002).
    Check {
        id: "cipher-suites-no-rsa", area: Area::Security, severity: High, run: Some(system::cipher_suites), title: "TLS cipher suite list",
        explain: "The cipher suite list in force has no RSA suite: the listener's RSA certificate matches none and every TLS handshake fails.",
        ..Check::DEFAULT
    },
    // Source: rdp-checks.md rdp-cert-store (RP-rdpcert: expired certificates are deleted, Windows mints a new one);
    // certificate blobs are serialized properties, CERT_CERT_PROP_ID 32 = the DER certificate (wincrypt.h).
    Check {
        id: "rdp-cert-store", area: Area::Security, severity: Medium, run: Some(system::listener_cert), title: "Listener certificate (Remote Desktop store)",
        explain: "The RDP listener certificate is expired or damaged",
        ..Check::DEFAULT
    },
    // Source: KB4093492 "CredSSP updates for CVE-2018-0886" (March 13, 2018 updates per OS; May 8, 2018 made clients
    // refuse unpatched servers by default) and D12 credssp-encryption-oracle-remediation.md.
    Check {
        id: "credssp-server-unpatched", area: Area::Security, severity: High, run: Some(system::credssp_patch), title: "CredSSP patch level (tspkg.dll)",
        explain: "The server's CredSSP predates the CVE-2018-0886 fix: updated clients refuse it (\"CredSSP encryption oracle remediation\")",
        ..Check::DEFAULT
    },
    // Source: "Azure VM is unresponsive while applying updates" (learn.microsoft.com/troubleshoot/azure/virtual-machines/windows/
    // troubleshoot-stuck-updating-boot-error): pending.xml, `dism /revertpendingactions`; Azure win-fix-pending-servicing.
    Check {
        id: "pending-servicing", area: Area::Boot, severity: Medium, run: Some(system::pending_servicing), title: "Pending servicing operations",
        explain: "Windows servicing operations are pending: the next boot applies them first (\"Working on updates\", possibly a rollback loop) and RDP is unreachable until they finish",
        ..Check::DEFAULT
    },
    // Source: "Windows VM doesn't boot because the disk is full" (learn.microsoft.com/troubleshoot/azure/virtual-machines/windows/
    // troubleshoot-boot-error-disk-full); Windows needs room to write hives, logs and profiles.
    Check {
        id: "low-disk-space", area: Area::Boot, severity: High, run: Some(system::free_space), title: "Free space on the Windows volume",
        explain: "The Windows volume is almost full: services (TermService, profiles, event logs, updates) fail to write and logons hang or fail",
        ..Check::DEFAULT
    },
    // Source: Fast Startup is a hibernation of the kernel session (learn.microsoft.com/windows-hardware/drivers/kernel/distinguishing-fast-startup-from-wake-from-hibernation);
    // `powercfg /hibernate off` (learn.microsoft.com/windows-hardware/design/device-experiences/powercfg-command-line-options). Notes only.
    Check {
        id: "hibernation", area: Area::Boot, severity: Info, run: Some(system::hibernation), title: "Hibernation / Fast Startup",
        explain: "Windows may resume a hibernated image and ignore offline registry changes.",
        ..Check::DEFAULT
    },
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rows_name_what_defaults_cannot_supply() {
        for c in CATALOG {
            assert!(!c.id.is_empty() && !c.title.is_empty() && !c.explain.is_empty(), "row {c:?}: id, title and explain are required");
            assert!(c.severity != Check::DEFAULT.severity || matches!(c.id, "fw-profile-disabled" | "hibernation"), "{}: severity left at the default", c.id);
            if c.is_code() {
                assert!(c.key.is_empty() && c.value.is_empty() && c.policy.is_none(), "{}: a code row with value fields", c.id);
            } else {
                assert!(!c.key.is_empty() && !c.value.is_empty(), "{}: a value row without key/value", c.id);
                assert!(!matches!(c.fix, Fix::Manual("")), "{}: a value row without a fix", c.id);
                assert!(!matches!(c.absent, Absent::Fine("")), "{}: a value row that does not say what absence means", c.id);
            }
        }
    }
}
