//! Evaluators for catalog rows whose logic is more than one value: each is
//! an [`Eval`](super::check::Eval) that a catalog row names in its `run`.

use super::check::{Check, Out, Remedy, RDP_TCP, TS, TS_POLICY, WINLOGON};
use super::firewall::{Rule, GPO_POLICY, LOCAL_POLICY, PROFILES, RDP_RULE, RDP_RULE_BODY};
use super::{Ctx, Setting, Severity};
use crate::hive::edit::{Edit, RegData};
use crate::hive::source::HiveKind::{self, Bcd, Software, System};
use crate::hive::tree::{hex, Value};
use serde_json::Value as J;

fn json(v: &Option<Value>) -> J {
    v.as_ref().map_or(J::Null, Value::json_data)
}

/// A settings row for a value without a policy counterpart.
fn local_setting(ctx: &Ctx, id: &'static str, hive: HiveKind, key: &str, name: &str, default: Option<J>) -> Setting {
    let v = ctx.value(hive, key, name);
    let (effective, source) = match (&v, default) {
        (Some(v), _) => (v.json_data(), "local"),
        (None, Some(d)) => (d, "default"),
        (None, None) => (J::Null, "default"),
    };
    Setting { id, path: ctx.full(hive, key), name: name.into(), local: json(&v), policy_path: None, policy: J::Null, effective, source }
}

/// The listener's port (3389 when absent or not a DWORD).
pub(crate) fn listener_port(ctx: &Ctx) -> u32 {
    ctx.dword(System, RDP_TCP, "PortNumber").unwrap_or(3389)
}

pub(crate) fn listener_missing(ctx: &Ctx, c: &Check, out: &mut Out) {
    if ctx.shared_key(System, RDP_TCP).is_none() {
        let ts = ctx.shared_key(System, TS).is_some();
        let msg = if ts {
            format!("{} ({} not found)", c.explain, ctx.full(System, RDP_TCP))
        } else {
            format!("{} (even {} is missing: the installation is damaged)", c.explain, ctx.full(System, TS))
        };
        out.finding(c, c.id, c.severity, msg, Remedy::Manual("import the WinStations\\RDP-Tcp key exported from a healthy VM of the same OS build, or reinstall Remote Desktop Services; rdprescue does not fabricate a listener".into()));
    }
}

pub(crate) fn rdp_port(ctx: &Ctx, c: &Check, out: &mut Out) {
    out.setting(local_setting(ctx, c.id, System, RDP_TCP, "PortNumber", Some(J::from(3389))));
    let tds = r"{CCS}\Control\Terminal Server\Wds\rdpwd\Tds\tcp";
    if ctx.shared_key(System, tds).is_some() {
        out.setting(local_setting(ctx, c.id, System, tds, "PortNumber", None));
    }
    if ctx.shared_key(System, RDP_TCP).is_none() {
        return;
    }
    let port = listener_port(ctx);
    if let Some(v) = ctx.value(System, RDP_TCP, "PortNumber").filter(|v| v.dword().is_none()) {
        out.finding(c, c.id, c.severity, format!("PortNumber has type {}, expected REG_DWORD", v.type_name()), Remedy::Actions(ctx.set_actions(System, RDP_TCP, "PortNumber", RegData::Dword(3389))));
        return;
    }
    if let Some(t) = ctx.dword(System, tds, "PortNumber").filter(|&t| t != port) {
        out.note(c, format!("the legacy copy Wds\\rdpwd\\Tds\\tcp\\PortNumber = {t} differs from the listener's {port}"));
    }
    if port == 3389 {
        return;
    }
    let fw = ctx.firewall();
    if fw.allows(port) {
        out.note(c, format!("the listener is on custom port {port}; {}; the NSG (and any appliance) must allow TCP {port} too", if fw.any_enabled() { "the firewall allows it" } else { "the firewall is off" }));
        return;
    }
    let mut actions = ctx.set_actions(System, RDP_TCP, "PortNumber", RegData::Dword(3389));
    if ctx.dword(System, tds, "PortNumber").is_some() {
        actions.extend(ctx.set_actions(System, tds, "PortNumber", RegData::Dword(3389)));
    }
    out.finding(c, c.id, c.severity, format!("the listener is on port {port} and no active inbound firewall rule allows TCP {port} (the built-in rule is pinned to 3389)"), Remedy::Actions(actions));
}

pub(crate) fn cert_pinned(ctx: &Ctx, c: &Check, out: &mut Out) {
    out.setting(local_setting(ctx, c.id, System, RDP_TCP, "SSLCertificateSHA1Hash", None));
    let Some(v) = ctx.value(System, RDP_TCP, "SSLCertificateSHA1Hash") else { return };
    let thumb = hex(&v.raw).to_uppercase();
    let delete = Remedy::Actions(ctx.delete_value_actions(System, RDP_TCP, "SSLCertificateSHA1Hash"));
    if v.raw.len() != 20 {
        return out.finding(c, c.id, c.severity, format!("SSLCertificateSHA1Hash is {} bytes, not a 20-byte SHA-1 thumbprint: TLS cannot start", v.raw.len()), delete);
    }
    if !ctx.has(Software) {
        return out.note(c, format!("listener pinned to certificate {thumb}; without SOFTWARE the certificate stores cannot be checked"));
    }
    let stores = ["MY", "Remote Desktop"];
    let found = stores.iter().find(|s| ctx.shared_key(Software, &format!(r"Microsoft\SystemCertificates\{s}\Certificates\{thumb}")).is_some());
    match found {
        Some(s) => out.note(c, format!("listener pinned to certificate {thumb} (found in the LocalMachine\\{s} store; its private key cannot be checked offline)")),
        None => out.finding(c, c.id, c.severity, format!("{} (thumbprint {thumb} is in neither the LocalMachine\\MY nor the Remote Desktop store); deleting the pin lets Windows create a self-signed certificate", c.explain), delete),
    }
}

/// Core network drivers and services with their measured default Start
/// [RP-netconn, D21] and what disabling each does: the stack itself (Tcpip,
/// NDIS, Afd, nsiproxy, netvsc, RPC) means no network at all; NetBT only
/// NetBIOS names; Dnscache name resolution (RDP by IP works, domain logons
/// suffer); NlaSvc network identification (the network is filed as Public);
/// LanmanWorkstation SMB and domain logons.
const CORE_NET: [(&str, u32, Severity, &str); 12] = [
    ("Tcpip", 0, Severity::Critical, "the VM has no network at all"),
    ("NDIS", 0, Severity::Critical, "the VM has no network at all"),
    ("Afd", 1, Severity::Critical, "no socket (Winsock) traffic at all"),
    ("nsiproxy", 1, Severity::Critical, "the network store interface fails: no IP configuration"),
    ("NetBT", 1, Severity::Low, "NetBIOS over TCP/IP (legacy name resolution) is off; RDP by DNS name or IP still works"),
    ("netvsc", 3, Severity::Critical, "the Hyper-V / Azure network adapter has no driver: no network at all"),
    ("RpcSs", 2, Severity::Critical, "RPC is down: Windows services, the logon and RDP fail"),
    ("DcomLaunch", 2, Severity::Critical, "DCOM / RPC activation is down: Windows services, the logon and RDP fail"),
    ("RpcEptMapper", 2, Severity::Critical, "the RPC endpoint mapper is down: Windows services and RDP fail"),
    ("Dnscache", 2, Severity::Medium, "the DNS client is off: names do not resolve (connect by IP; domain logons and NLA with domain accounts fail)"),
    ("NlaSvc", 2, Severity::Medium, "network location awareness is off: the network is not identified, so the Public firewall profile applies and domain detection fails"),
    ("LanmanWorkstation", 2, Severity::Medium, "the Workstation service is off: SMB and domain logons fail (local RDP logons work)"),
];

/// A VM that runs on Azure: the guest agent's services.
fn azure_image(ctx: &Ctx) -> bool {
    ["WindowsAzureGuestAgent", "RdAgent", "WindowsAzureTelemetryService"].iter().any(|s| ctx.shared_key(System, &format!(r"{{CCS}}\Services\{s}")).is_some())
}

pub(crate) fn core_net_stack(ctx: &Ctx, c: &Check, out: &mut Out) {
    for (svc, default, severity, what) in CORE_NET {
        let key = format!(r"{{CCS}}\Services\{svc}");
        if ctx.shared_key(System, &key).is_none() {
            if svc == "netvsc" && azure_image(ctx) && !ctx.os().pre_vista() {
                out.finding(c, c.id, Severity::Critical, format!("the netvsc driver key ({}) is missing on an Azure image: the Hyper-V network adapter has no driver and the VM has no network", ctx.full(System, &key)), Remedy::Manual("restore the netvsc service key (and System32\\drivers\\netvsc*.sys) from a healthy VM of the same build, or repair the OS with DISM/SFC from a rescue VM".into()));
            }
            continue;
        }
        out.setting(local_setting(ctx, c.id, System, &key, "Start", None));
        if ctx.dword(System, &key, "Start") == Some(4) {
            out.finding(c, c.id, severity, format!("{svc} is disabled (Start = 4): {what}"), Remedy::Actions(ctx.set_actions(System, &key, "Start", RegData::Dword(default))));
        }
    }
}

pub(crate) fn mpssvc_appcs(ctx: &Ctx, c: &Check, out: &mut Out) {
    let key = r"{CCS}\Services\mpssvc\Parameters\AppCs";
    let Some(v) = ctx.value(System, key, "DebugedLoopbackApps") else { return };
    out.setting(local_setting(ctx, c.id, System, key, "DebugedLoopbackApps", None));
    if v.kind == 7 {
        let sids = v.multi_string().join(", ");
        out.finding(c, c.id, c.severity, format!("{} (REG_MULTI_SZ with [{sids}])", c.explain), Remedy::Actions(ctx.delete_value_actions(System, key, "DebugedLoopbackApps")));
    }
}

pub(crate) fn static_ip(ctx: &Ctx, c: &Check, out: &mut Out) {
    let base = r"{CCS}\Services\Tcpip\Parameters\Interfaces";
    let Some(ifs) = ctx.shared_key(System, base) else { return };
    // Adapters that exist: NetCfgInstanceId (= interface GUID) -> (ComponentId, description).
    let class = format!(r"{{CCS}}\Control\Class\{NET_CLASS}");
    let adapters: Vec<(String, String, String)> = ctx
        .shared_key(System, &class)
        .map(|k| {
            k.subkeys
                .iter()
                .filter_map(|s| {
                    let inst = format!(r"{class}\{s}");
                    let id = ctx.string(System, &inst, "NetCfgInstanceId")?.to_lowercase();
                    let comp = ctx.string(System, &inst, "ComponentId").unwrap_or_default().to_lowercase();
                    let desc = ctx.string(System, &inst, "DriverDesc").unwrap_or_default();
                    Some((id, comp, desc))
                })
                .collect()
        })
        .unwrap_or_default();
    for name in &ifs.subkeys {
        let key = format!(r"{base}\{name}");
        let Some(dhcp) = ctx.dword(System, &key, "EnableDHCP") else { continue };
        let addrs: Vec<String> = ctx.value(System, &key, "IPAddress").map(|v| if v.kind == 7 { v.multi_string() } else { vec![v.string()] }).unwrap_or_default();
        let real: Vec<&String> = addrs.iter().filter(|a| !a.trim().is_empty() && a.trim() != "0.0.0.0").collect();
        out.setting(local_setting(ctx, c.id, System, &key, "EnableDHCP", None));
        if dhcp == 0 && !real.is_empty() {
            let mut actions = ctx.set_actions(System, &key, "EnableDHCP", RegData::Dword(1));
            for n in ["IPAddress", "SubnetMask", "DefaultGateway", "DefaultGatewayMetric"] {
                actions.extend(ctx.delete_value_actions(System, &key, n));
            }
            let addr = real.iter().map(|s| s.as_str()).collect::<Vec<_>>().join(", ");
            match adapters.iter().find(|(id, _, _)| *id == name.to_lowercase()) {
                None => {
                    out.note(c, format!("interface {name} has the static address {addr}, but no network adapter uses it any more (stale; harmless)"));
                    continue;
                }
                // Only the Hyper-V synthetic NIC (netvsc) carries over to a Hyper-V/Azure VM; an emulated
                // or physical adapter is replaced by a new one that starts with DHCP.
                Some((_, comp, desc)) if !comp.starts_with("vmbus") => {
                    out.note(c, format!("interface {name} ({desc}, not a Hyper-V adapter) has the static address {addr}; in a Hyper-V/Azure VM the NIC is a new adapter that starts with DHCP"));
                    continue;
                }
                Some(_) => {}
            }
            out.finding(c, c.id, c.severity, format!("interface {name} has the static address {addr} (EnableDHCP = 0): Azure does not route to an address the fabric did not allocate"), Remedy::Actions(actions));
        }
    }
}

const NET_CLASS: &str = "{4d36e972-e325-11ce-bfc1-08002be10318}";

/// Disabled network adapters (CONFIGFLAG_DISABLED [C5], D14). Critical only
/// for the present Hyper-V synthetic NIC (netvsc on VMBUS: the newest-written
/// VMBUS network instance is the one of the last boot); a disabled older VMBUS
/// instance is a ghost of an earlier deployment, a Mellanox PCI function the
/// Accelerated Networking VF (traffic falls back to the synthetic NIC): Low;
/// another PCI adapter is an emulated or passed-through one of another
/// hypervisor: Low next to a VMBUS NIC, else Medium.
pub(crate) fn nic_disabled(ctx: &Ctx, c: &Check, out: &mut Out) {
    struct Nic {
        bus: &'static str,
        dev: String,
        inst: String,
        ikey: String,
        flags: u32,
        written: String,
    }
    let mut nics: Vec<Nic> = Vec::new();
    for bus in ["VMBUS", "PCI"] {
        let base = format!(r"{{CCS}}\Enum\{bus}");
        let Some(devs) = ctx.shared_key(System, &base) else { continue };
        for dev in &devs.subkeys {
            let dkey = format!(r"{base}\{dev}");
            let Some(insts) = ctx.shared_key(System, &dkey) else { continue };
            for inst in &insts.subkeys {
                let ikey = format!(r"{dkey}\{inst}");
                let Some(k) = ctx.shared_key(System, &ikey) else { continue };
                let class = ctx.string(System, &ikey, "ClassGUID").unwrap_or_default();
                if !class.eq_ignore_ascii_case(NET_CLASS) {
                    continue;
                }
                let flags = ctx.dword(System, &ikey, "ConfigFlags").unwrap_or(0);
                out.setting(local_setting(ctx, c.id, System, &ikey, "ConfigFlags", Some(J::from(0))));
                nics.push(Nic { bus, dev: dev.clone(), inst: inst.clone(), ikey, flags, written: k.last_write.clone().unwrap_or_default() });
            }
        }
    }
    let newest_vmbus = nics.iter().filter(|n| n.bus == "VMBUS").map(|n| n.written.clone()).max();
    for n in nics.iter().filter(|n| n.flags & 1 != 0) {
        let desc = ctx.string(System, &n.ikey, "FriendlyName").or_else(|| ctx.string(System, &n.ikey, "DeviceDesc")).unwrap_or_else(|| n.dev.clone());
        let (severity, why) = if n.bus == "VMBUS" {
            if Some(&n.written) == newest_vmbus.as_ref() {
                (c.severity, "the VM's Hyper-V network adapter: no connectivity on any port".to_string())
            } else {
                (Severity::Low, "an older Hyper-V adapter instance (a ghost of an earlier deployment; a newer one exists)".to_string())
            }
        } else if n.dev.to_ascii_uppercase().starts_with("VEN_15B3") {
            (Severity::Low, "the Accelerated Networking virtual function: traffic falls back to the synthetic adapter".to_string())
        } else if newest_vmbus.is_some() {
            (Severity::Low, "a PCI adapter of another hypervisor or host; the VM uses its Hyper-V adapter".to_string())
        } else {
            (Severity::Medium, "a PCI adapter; on Hyper-V/Azure the VM gets a new synthetic adapter instead".to_string())
        };
        out.finding(
            c,
            c.id,
            severity,
            format!("network adapter {desc} ({}\\{}\\{}) has CONFIGFLAG_DISABLED set (ConfigFlags = {:#x}): {why}", n.bus, n.dev, n.inst, n.flags),
            Remedy::Actions(ctx.set_actions(System, &n.ikey, "ConfigFlags", RegData::Dword(n.flags & !1))),
        );
    }
}

/// Providers that must never be removed from ProviderOrder.
const PROTECTED_PROVIDERS: [&str; 4] = ["LanmanWorkstation", "RDPNP", "webclient", "P9NP"];

pub(crate) fn network_provider(ctx: &Ctx, c: &Check, out: &mut Out) {
    let key = r"{CCS}\Control\NetworkProvider\Order";
    let Some(order) = ctx.string(System, key, "ProviderOrder") else { return };
    out.setting(local_setting(ctx, c.id, System, key, "ProviderOrder", None));
    let entries: Vec<&str> = order.split(',').map(str::trim).filter(|s| !s.is_empty()).collect();
    let orphan = |p: &&&str| {
        !PROTECTED_PROVIDERS.iter().any(|k| k.eq_ignore_ascii_case(p)) && ctx.string(System, &format!(r"{{CCS}}\Services\{p}\NetworkProvider"), "ProviderPath").is_none()
    };
    let orphans: Vec<&str> = entries.iter().filter(orphan).copied().collect();
    if !orphans.is_empty() {
        let kept = entries.iter().filter(|e| !orphans.contains(e)).copied().collect::<Vec<_>>().join(",");
        out.finding(
            c,
            c.id,
            c.severity,
            format!("ProviderOrder lists {} without a Services\\<name>\\NetworkProvider\\ProviderPath: {}", orphans.join(", "), c.explain),
            Remedy::Actions(ctx.set_actions(System, key, "ProviderOrder", RegData::Sz(kept))),
        );
    }
}

// ---------------------------------------------------------------- firewall

fn profile_settings(ctx: &Ctx, c: &Check, name: &str, out: &mut Out) {
    for (profile, local_key, gpo_keys) in PROFILES {
        if profile == "Public" && ctx.os().pre_vista() {
            continue; // NT 5.x has only the Domain and Standard profiles
        }
        let key = format!(r"{LOCAL_POLICY}\{local_key}");
        let local = ctx.value(System, &key, name);
        let (gpo_key, policy) = gpo_keys
            .iter()
            .find_map(|k| {
                let pk = format!(r"{GPO_POLICY}\{k}");
                ctx.value(Software, &pk, name).map(|v| (pk, Some(v)))
            })
            .unwrap_or_else(|| (format!(r"{GPO_POLICY}\{}", gpo_keys[0]), None));
        let default = if name == "EnableFirewall" { J::from(1) } else { J::from(0) };
        let (effective, source) = match (&policy, &local) {
            (Some(p), _) => (p.json_data(), "policy"),
            (None, Some(l)) => (l.json_data(), "local"),
            _ => (default, "default"),
        };
        out.setting(Setting {
            id: c.id,
            path: ctx.full(System, &key),
            name: name.into(),
            local: json(&local),
            policy_path: ctx.has(Software).then(|| ctx.full(Software, &gpo_key)),
            policy: json(&policy),
            effective,
            source,
        });
    }
}

pub(crate) fn fw_block_inbound_always(ctx: &Ctx, c: &Check, out: &mut Out) {
    profile_settings(ctx, c, "DoNotAllowExceptions", out);
    let fw = ctx.firewall();
    // The Domain profile never applies to a machine outside a domain.
    let hit: Vec<&str> = fw.profiles.iter().filter(|p| p.enabled && p.block_all && fw.can_apply(p.name)).map(|p| p.name).collect();
    if hit.is_empty() {
        return;
    }
    let mut actions = Vec::new();
    for (_, local_key, gpo_keys) in PROFILES {
        let key = format!(r"{LOCAL_POLICY}\{local_key}");
        if ctx.dword(System, &key, "DoNotAllowExceptions").is_some_and(|v| v != 0) {
            actions.extend(ctx.delete_value_actions(System, &key, "DoNotAllowExceptions"));
        }
        for k in gpo_keys {
            let pk = format!(r"{GPO_POLICY}\{k}");
            if ctx.has(Software) && ctx.dword(Software, &pk, "DoNotAllowExceptions").is_some_and(|v| v != 0) {
                actions.extend(ctx.delete_value_actions(Software, &pk, "DoNotAllowExceptions"));
            }
        }
    }
    out.finding(c, c.id, c.severity, format!("{} (profiles: {})", c.explain, hit.join(", ")), Remedy::Actions(actions));
}

fn rule_setting(ctx: &Ctx, c: &Check, r: &Rule) -> Setting {
    Setting {
        id: c.id,
        path: ctx.full(r.hive, r.key),
        name: r.id.clone(),
        local: if r.store == "gpo" { J::Null } else { J::from(r.raw.clone()) },
        policy_path: None,
        policy: if r.store == "gpo" { J::from(r.raw.clone()) } else { J::Null },
        effective: J::from(if r.active() { "active" } else { "inactive" }),
        source: if r.store == "gpo" { "policy" } else { "local" },
    }
}

pub(crate) fn fw_rdp_rule(ctx: &Ctx, c: &Check, out: &mut Out) {
    let fw = ctx.firewall();
    let group: Vec<&Rule> = fw.local.iter().chain(fw.gpo.iter()).filter(|r| r.in_rdp_group() && r.inbound() && r.action().eq_ignore_ascii_case("Allow")).collect();
    for r in &group {
        out.setting(rule_setting(ctx, c, r));
    }
    if group.is_empty() {
        out.setting(Setting {
            id: c.id,
            path: ctx.full(System, r"{CCS}\Services\SharedAccess\Parameters\FirewallPolicy\FirewallRules"),
            name: RDP_RULE.into(),
            local: J::Null,
            policy_path: None,
            policy: J::Null,
            effective: J::Null,
            source: "missing",
        });
    }
    let port = listener_port(ctx);
    // rdp-port moves an uncovered custom port back to 3389: check the rules for the port RDP will use.
    let port = if port != 3389 && !fw.allows(port) { 3389 } else { port };
    // A profile open only to some remote addresses (RA4/RA6) is reported as such [MS-GPFAS 2.2.2.19].
    for (p, reach) in fw.reach(port) {
        if let super::firewall::Reach::From(from) = reach {
            out.note(c, format!("in the {p} profile TCP {port} is open only from {}: clients elsewhere time out", from.join(" or ")));
        }
    }
    let closed = fw.closed_profiles(port);
    if closed.is_empty() {
        return;
    }
    let store = r"{CCS}\Services\SharedAccess\Parameters\FirewallPolicy\FirewallRules";
    // Windows' own "enable Remote Desktop" turns on the group's rules: do the same
    // for the inactive ones that would open the closed profiles.
    let enable: Vec<&Rule> = fw
        .local
        .iter()
        .filter(|r| r.in_rdp_group() && !r.active() && r.inbound() && r.action().eq_ignore_ascii_case("Allow") && r.covers_tcp() && r.covers_port(port) && r.applies_to_listener(fw.kernel_listener))
        .filter(|r| closed.iter().any(|p| r.in_profile(p)))
        .collect();
    let shown: Vec<&str> = closed.iter().map(|&p| if fw.nt5 && p == "Private" { "Standard" } else { p }).collect();
    let where_ = format!("in the {} profile(s), where the firewall is on", shown.join(", "));
    // Closed only for Public while Domain/Private are open: still High, because a moved VM
    // lands on a new, unidentified network, which Windows files as Public.
    let only_public = closed == ["Public"] && fw.profiles.iter().any(|p| p.enabled && p.name != "Public");
    let severity = c.severity;
    let where_ = if only_public { format!("{where_} (RDP breaks when Windows files the VM's network as Public, as it does for a new network after a move)") } else { where_ };
    let (why, remedy) = if !enable.is_empty() && fw.local_merge {
        let names: Vec<&str> = enable.iter().map(|r| r.id.as_str()).collect();
        let actions = enable.iter().flat_map(|r| ctx.set_actions(System, store, &r.id, RegData::Sz(r.with_active(true)))).collect();
        (format!("the Remote Desktop rule(s) {} are inactive (Active=FALSE)", names.join(", ")), Remedy::Actions(actions))
    } else if !fw.local_merge {
        ("Group Policy ignores local rules (AllowLocalPolicyMerge = 0) and has no RDP allow rule".to_string(), Remedy::Manual(format!("add an inbound allow rule for TCP {port} to the GPO")))
    } else if group.is_empty() {
        let remedy = match fw.version_prefix() {
            _ if fw.nt5 => Remedy::Manual(format!("turn on the Remote Desktop exception of Windows Firewall (SharedAccess\\Parameters\\FirewallPolicy\\StandardProfile\\GloballyOpenPorts\\List: \"{port}:TCP\" = \"{port}:TCP:*:Enabled:Remote Desktop\"), e.g. from a startup script with `netsh firewall set service remotedesktop enable`")),
            Some(v) if !fw.kernel_listener => Remedy::Actions(ctx.set_actions(System, store, RDP_RULE, RegData::Sz(format!("{v}|{RDP_RULE_BODY}")))),
            _ => Remedy::Manual(format!("the local rule store has no usable Remote Desktop rule; add an inbound allow rule for TCP {port} ({}) or restore the default rules", if fw.kernel_listener { "program System: the listener of this Windows version runs in the kernel" } else { "svchost.exe, service termservice" })),
        };
        let what = if fw.nt5 { "no Remote Desktop exception is enabled (NT 5.x firewall)" } else { "no Remote Desktop rule exists in the local store" };
        (what.to_string(), remedy)
    } else {
        ("the Remote Desktop rules do not cover that port or profile".to_string(), Remedy::Manual(format!("add an inbound allow rule for TCP {port} (svchost.exe, service termservice)")))
    };
    out.finding(c, c.id, severity, format!("no active inbound firewall rule allows TCP {port} {where_}: {why}"), remedy);
}

pub(crate) fn fw_block_rule(ctx: &Ctx, c: &Check, out: &mut Out) {
    let fw = ctx.firewall();
    if !fw.any_enabled() {
        return;
    }
    let port = listener_port(ctx);
    for r in fw.enforced().filter(|r| fw.matches(r, "Block", port) && fw.in_enabled_profile(r)) {
        out.setting(rule_setting(ctx, c, r));
        let scope = match r.remote_scope() {
            Some(from) => format!(" (only for clients from {from})"),
            None if r.scoped() => " (interface / local-address scoped: it blocks only some traffic, which cannot be decided offline)".to_string(),
            None => String::new(),
        };
        let back = if r.store == "gpo" { "; a GPO writes it again: fix the GPO too" } else { "" };
        out.finding(
            c,
            c.id,
            if r.remote_scope().is_some() { Severity::Medium } else { c.severity },
            format!("active inbound block rule {} in the {} store covers TCP {port}{scope}{back}", r.id, r.store),
            Remedy::Actions(ctx.set_actions(r.hive, r.key, &r.id, RegData::Sz(r.with_active(false)))),
        );
    }
}

pub(crate) fn fw_no_local_merge(ctx: &Ctx, c: &Check, out: &mut Out) {
    let fw = ctx.firewall();
    let port = listener_port(ctx);
    let off: Vec<&str> = ["DomainProfile", "PrivateProfile", "PublicProfile"]
        .into_iter()
        .filter(|p| ctx.dword(Software, &format!(r"{GPO_POLICY}\{p}"), "AllowLocalPolicyMerge") == Some(0))
        .collect();
    if off.is_empty() || !fw.any_enabled() || fw.gpo.iter().chain(fw.legacy.iter()).any(|r| fw.matches(r, "Allow", port)) {
        return;
    }
    let mut actions = Vec::new();
    for p in &off {
        actions.extend(ctx.delete_value_actions(Software, &format!(r"{GPO_POLICY}\{p}"), "AllowLocalPolicyMerge"));
    }
    out.finding(c, c.id, c.severity, format!("{} (AllowLocalPolicyMerge = 0 in {}; no GPO rule allows TCP {port}); a domain GPO writes it again: fix the GPO", c.explain, off.join(", ")), Remedy::Actions(actions));
}

pub(crate) fn fw_profile_disabled(ctx: &Ctx, c: &Check, out: &mut Out) {
    profile_settings(ctx, c, "EnableFirewall", out);
    let fw = ctx.firewall();
    let off: Vec<&str> = fw.profiles.iter().filter(|p| !p.enabled).map(|p| if fw.nt5 && p.name == "Private" { "Standard" } else { p.name }).collect();
    if fw.nt5 && ctx.dword(System, r"{CCS}\Services\SharedAccess", "Start") == Some(4) {
        return out.note(c, "the Windows Firewall service (SharedAccess, NT 5.x) is disabled: nothing filters inbound traffic".into());
    }
    if !off.is_empty() {
        out.note(c, format!("the firewall is off in the {} profile(s); Azure's image guidance expects it on", off.join(", ")));
    }
}

pub(crate) fn ipsec(ctx: &Ctx, c: &Check, out: &mut Out) {
    let fw = ctx.firewall();
    let port = listener_port(ctx);
    let local = fw.local_consec.iter().filter(|_| fw.local_ipsec_merge);
    for r in fw.gpo_consec.iter().chain(local) {
        let action = r.action().to_ascii_lowercase();
        let requires = action == "secure" || action == "secureserver" || action.starts_with("requirein");
        if !(r.active() && requires && r.covers_tcp() && r.covers_port(port)) {
            continue;
        }
        out.setting(rule_setting(ctx, c, r));
        let scope = if r.scoped() { " (address/interface scoped; its reach cannot be decided offline)" } else { "" };
        out.finding(
            c,
            c.id,
            c.severity,
            format!("connection security rule {} ({} store, Action={}) requires inbound IPsec on TCP {port}{scope}", r.id, r.store, r.action()),
            Remedy::Actions(ctx.set_actions(r.hive, r.key, &r.id, RegData::Sz(r.with_active(false)))),
        );
    }
}

// ---------------------------------------------------------------- boot

const BOOTMGR: &str = "{9dea862c-5cdd-4e70-acc1-f32b344d4795}";

fn bcd_integer(v: &Value) -> Option<u64> {
    (v.raw.len() >= 8).then(|| u64::from_le_bytes(v.raw[..8].try_into().unwrap_or_default())).or_else(|| v.dword().map(u64::from))
}

pub(crate) fn bcd_safeboot(ctx: &Ctx, c: &Check, out: &mut Out) {
    let bm = format!(r"Objects\{BOOTMGR}\Elements\23000003");
    let Some(default) = ctx.string(Bcd, &bm, "Element") else {
        return out.note(c, "the BCD store has no {bootmgr} default entry (element 23000003); safe-mode state unknown".into());
    };
    let default = default.trim().to_string();
    let elements = format!(r"Objects\{default}\Elements");
    let sb_key = format!(r"{elements}\25000080");
    let shell_key = format!(r"{elements}\26000081");
    let sb = ctx.value(Bcd, &sb_key, "Element");
    out.setting(Setting {
        id: c.id,
        path: ctx.full(Bcd, &sb_key),
        name: "Element (safeboot)".into(),
        local: sb.as_ref().and_then(bcd_integer).map_or(J::Null, J::from),
        policy_path: None,
        policy: J::Null,
        effective: sb.as_ref().and_then(bcd_integer).map_or_else(|| J::from("normal boot"), J::from),
        source: if sb.is_some() { "local" } else { "default" },
    });
    if ctx.shared_key(Bcd, &elements).is_none() {
        return out.note(c, format!("the default boot entry {default} is not in the BCD store"));
    }
    let Some(v) = sb else { return };
    let mode = match bcd_integer(&v) {
        Some(0) => "Minimal".to_string(),
        Some(1) => "Network".to_string(),
        Some(2) => "DsRepair".to_string(),
        other => format!("{other:?}"),
    };
    let mut actions = vec![Edit::delete_key(Bcd, ctx.expand(&sb_key))];
    if ctx.shared_key(Bcd, &shell_key).is_some() {
        actions.push(Edit::delete_key(Bcd, ctx.expand(&shell_key)));
    }
    out.finding(c, c.id, c.severity, format!("{} (safeboot = {mode} on {default}; equivalent of `bcdedit /deletevalue {{default}} safeboot`)", c.explain), Remedy::Actions(actions));
}

pub(crate) fn select_controlset(ctx: &Ctx, c: &Check, out: &mut Out) {
    for n in ["Current", "Default", "LastKnownGood", "Failed"] {
        out.setting(local_setting(ctx, c.id, System, "Select", n, None));
    }
    let Some(sets) = &ctx.sets else {
        return out.finding(c, c.id, c.severity, "SYSTEM\\Select is missing: the control set Windows boots cannot be determined (ControlSet001 assumed)".into(), Remedy::Manual("restore SYSTEM\\Select (Current/Default = the newest ControlSetNNN)".into()));
    };
    if let Some(w) = &sets.warning {
        let sys = ctx.hive(System);
        let first = (1..=999).map(crate::hive::source::control_set_name).find(|n| sys.is_some_and(|h| h.key(n).is_ok()));
        let remedy = match first {
            Some(n) => {
                let num: u32 = n[10..].parse().unwrap_or(1);
                let mut a = ctx.set_actions(System, "Select", "Current", RegData::Dword(num));
                a.extend(ctx.set_actions(System, "Select", "Default", RegData::Dword(num)));
                Remedy::Actions(a)
            }
            None => Remedy::Manual("no ControlSetNNN exists: the SYSTEM hive is damaged".into()),
        };
        return out.finding(c, c.id, c.severity, w.clone(), remedy);
    }
    if let Some(d) = sets.default.filter(|&d| d != sets.current) {
        let exists = ctx.hive(System).is_some_and(|h| h.key(&crate::hive::source::control_set_name(d)).is_ok());
        if exists {
            out.note(c, format!("Select\\Current = {} and Default = {d} differ (after a Last Known Good switch); fixes are written to both", sets.current));
        } else {
            out.finding(c, c.id, Severity::Medium, format!("Select\\Default = {d} names a missing control set (Current = {})", sets.current), Remedy::Actions(ctx.set_actions(System, "Select", "Default", RegData::Dword(sets.current))));
        }
    }
}

pub(crate) fn setup_cmdline(ctx: &Ctx, c: &Check, out: &mut Out) {
    out.setting(local_setting(ctx, c.id, System, "Setup", "SetupType", Some(J::from(0))));
    out.setting(local_setting(ctx, c.id, System, "Setup", "CmdLine", None));
    let ty = ctx.dword(System, "Setup", "SetupType").unwrap_or(0);
    let cmd = ctx.string(System, "Setup", "CmdLine").unwrap_or_default();
    if ty == 0 || cmd.trim().is_empty() {
        return;
    }
    let lower = cmd.to_lowercase();
    if lower.contains("windeploy") || lower.contains("oobe") {
        return out.note(c, format!("the image is generalized: setup runs at first boot (SetupType = {ty}, CmdLine = \"{cmd}\")"));
    }
    let mut a = ctx.set_actions(System, "Setup", "SetupType", RegData::Dword(0));
    a.extend(ctx.set_actions(System, "Setup", "CmdLine", RegData::Sz("".into())));
    out.finding(c, c.id, c.severity, format!("{} (SetupType = {ty}, CmdLine = \"{cmd}\"); if you armed it on purpose, ignore this", c.explain), Remedy::Actions(a));
}

// ---------------------------------------------------------------- logon

pub(crate) fn srp(ctx: &Ctx, c: &Check, out: &mut Out) {
    let safer = r"Policies\Microsoft\Windows\Safer\CodeIdentifiers";
    if ctx.shared_key(Software, safer).is_some() {
        out.setting(local_setting(ctx, c.id, Software, safer, "DefaultLevel", None));
    }
    if ctx.dword(Software, safer, "DefaultLevel") == Some(0) {
        let paths = format!(r"{safer}\262144\Paths");
        let allows_windows = ctx.shared_key(Software, &paths).is_some_and(|k| {
            k.subkeys.iter().any(|s| {
                let d = ctx.string(Software, &format!(r"{paths}\{s}"), "ItemData").unwrap_or_default().to_lowercase();
                d.contains("systemroot") || d.contains("windir") || d.contains(r":\windows")
            })
        });
        if !allows_windows {
            out.finding(c, c.id, c.severity, "software restriction policy DefaultLevel = Disallowed with no Unrestricted path rule for the Windows directory: userinit/explorer are blocked".into(), Remedy::Actions(ctx.set_actions(Software, safer, "DefaultLevel", RegData::Dword(0x40000))));
        }
    }
    for coll in ["Exe", "Dll", "Script", "Msi", "Appx"] {
        let key = format!(r"Policies\Microsoft\Windows\SrpV2\{coll}");
        let Some(k) = ctx.shared_key(Software, &key) else { continue };
        if k.subkeys.is_empty() {
            continue; // an enforcing collection with zero rules allows everything
        }
        let mode = ctx.dword(Software, &key, "EnforcementMode");
        out.setting(local_setting(ctx, c.id, Software, &key, "EnforcementMode", Some(J::from("enforced (absent)"))));
        if mode == Some(0) {
            continue;
        }
        let allows_windows = k.subkeys.iter().any(|s| {
            let x = ctx.string(Software, &format!(r"{key}\{s}"), "Value").unwrap_or_default().to_lowercase();
            x.contains("action=\"allow\"") && (x.contains("%windir%") || x.contains("path=\"*\""))
        });
        if !allows_windows && matches!(coll, "Exe" | "Dll") {
            out.finding(c, c.id, c.severity, format!("AppLocker {coll} rules are enforced and none allows %WINDIR%: Windows binaries are blocked at logon (also delete System32\\AppLocker\\*.AppLocker on the disk)"), Remedy::Actions(ctx.set_actions(Software, &key, "EnforcementMode", RegData::Dword(0))));
        }
    }
}

pub(crate) fn winlogon(ctx: &Ctx, c: &Check, out: &mut Out) {
    out.setting(local_setting(ctx, c.id, Software, WINLOGON, "Userinit", None));
    out.setting(local_setting(ctx, c.id, Software, WINLOGON, "Shell", Some(J::from("explorer.exe"))));
    if ctx.shared_key(Software, WINLOGON).is_none() {
        return;
    }
    let root = ctx.string(Software, r"Microsoft\Windows NT\CurrentVersion", "SystemRoot").unwrap_or_else(|| r"C:\Windows".into());
    let userinit = ctx.string(Software, WINLOGON, "Userinit");
    if !userinit.as_deref().unwrap_or("").to_lowercase().contains("userinit.exe") {
        let shown = userinit.map_or("absent".into(), |u| format!("\"{u}\""));
        out.finding(c, c.id, c.severity, format!("Winlogon Userinit is {shown}: no user session can start"), Remedy::Actions(ctx.set_actions(Software, WINLOGON, "Userinit", RegData::Sz(format!(r"{root}\system32\userinit.exe,")))));
    }
    if ctx.string(Software, WINLOGON, "Shell").is_some_and(|s| s.trim().is_empty()) {
        out.finding(c, c.id, c.severity, "Winlogon Shell is empty: black screen after logon".into(), Remedy::Actions(ctx.set_actions(Software, WINLOGON, "Shell", RegData::Sz("explorer.exe".into()))));
    }
}

// ---------------------------------------------------------------- licensing

pub(crate) fn licensing(ctx: &Ctx, c: &Check, out: &mut Out) {
    let core = r"{CCS}\Control\Terminal Server\RCM\Licensing Core";
    let pol = ctx.dword(Software, TS_POLICY, "LicensingMode");
    let local = ctx.value(System, core, "LicensingMode");
    let mode = pol.or_else(|| local.as_ref().and_then(Value::dword));
    out.setting(Setting {
        id: c.id,
        path: ctx.full(System, core),
        name: "LicensingMode".into(),
        local: json(&local),
        policy_path: Some(ctx.full(Software, TS_POLICY)),
        policy: pol.map_or(J::Null, J::from),
        effective: mode.map_or(J::Null, J::from),
        source: if pol.is_some() { "policy" } else if local.is_some() { "local" } else { "default" },
    });
    let servers_pol = ctx.string(Software, TS_POLICY, "LicenseServers").filter(|s| !s.trim().is_empty());
    let specified = r"{CCS}\Services\TermService\Parameters\LicenseServers\SpecifiedLicenseServers";
    let servers_local = ctx.value(System, specified, "SpecifiedLicenseServers").map(|v| v.multi_string()).filter(|l| l.iter().any(|s| !s.trim().is_empty()));
    out.setting(Setting {
        id: c.id,
        path: ctx.full(System, specified),
        name: "SpecifiedLicenseServers".into(),
        local: servers_local.clone().map_or(J::Null, J::from),
        policy_path: Some(ctx.full(Software, TS_POLICY)),
        policy: servers_pol.clone().map_or(J::Null, J::from),
        effective: servers_pol.clone().map(J::from).or_else(|| servers_local.clone().map(J::from)).unwrap_or(J::Null),
        source: if servers_pol.is_some() { "policy" } else if servers_local.is_some() { "local" } else { "default" },
    });
    // Only an RD Session Host counts licenses [D24]; a client or a server in remote-administration mode
    // ignores LicensingMode and has its two admin sessions without CALs.
    let Some(host) = rdsh_evidence(ctx) else {
        if matches!(mode, Some(2 | 4)) {
            out.note(c, "a licensing mode is set, but the RD Session Host role is not installed: it has no effect".into());
        }
        return;
    };
    if matches!(mode, Some(2 | 4)) && servers_pol.is_none() && servers_local.is_none() {
        let kind = if mode == Some(2) { "per device" } else { "per user" };
        out.finding(
            c,
            c.id,
            c.severity,
            format!("{} (LicensingMode = {kind}; RD Session Host: {host})", c.explain),
            Remedy::Manual("configure a reachable, activated RD license server (policy LicenseServers), or remove the RD Session Host role if two admin sessions suffice; meanwhile `mstsc /admin` connects".into()),
        );
    }
}

/// Why this machine is an RD Session Host, if it is: Terminal Server
/// `TSAppCompat` = 1 (application server mode, set by the role), or a
/// multi-session edition (`EditionID` ServerRdsh).
fn rdsh_evidence(ctx: &Ctx) -> Option<String> {
    if ctx.dword(System, TS, "TSAppCompat") == Some(1) {
        return Some("TSAppCompat = 1".into());
    }
    ctx.string(Software, r"Microsoft\Windows NT\CurrentVersion", "EditionID").filter(|e| e.eq_ignore_ascii_case("ServerRdsh")).map(|e| format!("EditionID = {e}"))
}

pub(crate) fn session_limits(ctx: &Ctx, c: &Check, out: &mut Out) {
    for n in ["MaxIdleTime", "MaxDisconnectionTime", "MaxConnectionTime"] {
        let pol = ctx.value(Software, TS_POLICY, n);
        let local = ctx.value(System, RDP_TCP, n);
        let pd = pol.as_ref().and_then(Value::dword);
        let eff = pd.or_else(|| local.as_ref().and_then(Value::dword));
        if pol.is_some() || local.is_some() {
            out.setting(Setting {
                id: c.id,
                path: ctx.full(System, RDP_TCP),
                name: n.into(),
                local: json(&local),
                policy_path: Some(ctx.full(Software, TS_POLICY)),
                policy: json(&pol),
                effective: eff.map_or(J::Null, J::from),
                source: if pol.is_some() { "policy" } else { "local" },
            });
        }
        if let Some(ms) = pd.filter(|&ms| ms > 0 && ms < 600_000) {
            out.finding(c, c.id, c.severity, format!("Group Policy {n} = {ms} ms ({} s): sessions are cut after less than 10 minutes", ms / 1000), Remedy::Actions(ctx.delete_value_actions(Software, TS_POLICY, n)));
        }
    }
    if ctx.dword(Software, TS_POLICY, "fDisableAutoReconnect") == Some(1) {
        out.finding(c, c.id, c.severity, "Group Policy disables automatic reconnection (fDisableAutoReconnect = 1): dropped sessions are not resumed".into(), Remedy::Actions(ctx.delete_value_actions(Software, TS_POLICY, "fDisableAutoReconnect")));
    }
}

// ---------------------------------------------------------------- adapters
// Rows whose meaning depends on the machine (`Check::adapt`): the Windows
// build (`Ctx::os`), the domain role, and related values.

use super::catalog::{Absent, Fix, Lit, Pred};
use super::os::Era;

/// The value Windows uses for an RDP-Tcp setting: policy, else local, else `default`.
pub(crate) fn rdp_effective(ctx: &Ctx, name: &str, default: u32) -> u32 {
    ctx.dword(Software, TS_POLICY, name).or_else(|| ctx.dword(System, RDP_TCP, name)).unwrap_or(default)
}

/// NLA rows: CredSSP / NLA exist from Vista / 2008 on [D10].
pub(crate) fn adapt_since_vista(ctx: &Ctx, c: &Check) -> Option<Check> {
    (!ctx.os().pre_vista()).then_some(*c)
}

/// SecurityLayer before Vista: optional (2003 SP1 added the TLS choice); absent means the RDP layer.
pub(crate) fn adapt_nt5_layer(ctx: &Ctx, c: &Check) -> Option<Check> {
    if ctx.os().pre_vista() {
        return Some(Check { absent: Absent::Fine("RDP security layer (NT 5.x has no NLA; 2003 SP1 added TLS as an option)"), ..*c });
    }
    Some(*c)
}

/// fAllowSecProtocolNegotiation = 0 is the seed article's NLA-off state when
/// SecurityLayer and UserAuthentication are 0 too; with NLA required it cannot
/// negotiate CredSSP (Medium); with only TLS it is the Low row.
pub(crate) fn adapt_negotiation(ctx: &Ctx, c: &Check) -> Option<Check> {
    if ctx.os().pre_vista() {
        return None;
    }
    let layer = rdp_effective(ctx, "SecurityLayer", 1);
    let auth = rdp_effective(ctx, "UserAuthentication", 1);
    if layer == 0 && auth == 0 {
        return Some(Check { healthy: Pred::In(&[0, 1]), ..*c });
    }
    if auth != 0 {
        return Some(Check {
            severity: Severity::Medium,
            explain: "Security protocol negotiation is off while Network Level Authentication is required: the client cannot negotiate CredSSP and is refused (D10 turns negotiation off only with SecurityLayer 0 and UserAuthentication 0).",
            ..*c
        });
    }
    Some(*c)
}

pub(crate) fn adapt_encryption_level(ctx: &Ctx, c: &Check) -> Option<Check> {
    match rdp_effective(ctx, "MinEncryptionLevel", 2) {
        3 => Some(Check {
            severity: Severity::Low,
            healthy: Pred::Range(1, 2),
            explain: "MinEncryptionLevel 3 (High): clients that cannot do 128-bit RDP encryption are refused; D10 lowers it to 2 (and to 1 if 2 still fails).",
            ..*c
        }),
        4 => Some(Check {
            severity: Severity::Medium,
            healthy: Pred::Range(1, 2),
            explain: "MinEncryptionLevel 4 (FIPS compliant): clients without FIPS RDP encryption fail with an authentication error; D10 sets 2 (the `fips-off` profile does it with FIPSAlgorithmPolicy).",
            ..*c
        }),
        _ => Some(*c),
    }
}

pub(crate) fn adapt_fips(ctx: &Ctx, c: &Check) -> Option<Check> {
    let layer = rdp_effective(ctx, "SecurityLayer", 1);
    let level = rdp_effective(ctx, "MinEncryptionLevel", 2);
    if layer == 0 || level == 4 {
        return Some(*c);
    }
    Some(Check {
        severity: Severity::Low,
        explain: "FIPS mode is on: the TLS/NLA handshake is limited to FIPS-approved cipher suites (current clients have them); older clients and the RDP security layer fail.",
        ..*c
    })
}

/// Checks that only matter where domain accounts log on.
pub(crate) fn adapt_domain_only(ctx: &Ctx, c: &Check) -> Option<Check> {
    ctx.os().in_domain().then_some(*c)
}

pub(crate) fn adapt_netlogon(ctx: &Ctx, c: &Check) -> Option<Check> {
    ctx.os().in_domain().then_some(Check { fix: Fix::Set(Lit::D(2)), ..*c })
}

/// The TLS rows per build (see the catalog comment).
pub(crate) fn adapt_tls(ctx: &Ctx, c: &Check) -> Option<Check> {
    let os = ctx.os();
    let ver = ["1.0", "1.1", "1.2"].into_iter().find(|v| c.key.contains(&format!("TLS {v}"))).unwrap_or("1.2");
    // An explicit "off" that is the default of this build: shown, never a finding.
    let default_off = |why: &'static str| Some(Check { absent: Absent::Fine(why), healthy: Pred::Ge(0), ..*c });
    if os.pre_vista() {
        // NT 5.x RDP 5.2 uses TLS 1.0 at most; there is no 1.1/1.2 Schannel to configure.
        return if ver == "1.0" { Some(*c) } else { None };
    }
    if os.era.is_some_and(|e| e <= Era::Win7) {
        return match ver {
            "1.0" => {
                let fix = if c.value.eq_ignore_ascii_case("Enabled") { Fix::Set(Lit::D(1)) } else { Fix::Set(Lit::D(0)) };
                Some(Check {
                    severity: Severity::High,
                    fix,
                    explain: "TLS 1.0 is disabled for servers: Windows 7 / Server 2008 (R2) RDP uses TLS 1.0 only unless the TLS 1.1/1.2 update for RDP (KB3080079) is installed, so the TLS security layer and NLA fail (\"An internal error has occurred\").",
                    ..*c
                })
            }
            _ => default_off("off by default on this build; RDP here uses TLS 1.0 unless KB3080079 is installed"),
        };
    }
    if ver != "1.2" && os.build_at_least(26100) {
        return default_off("off by default from build 26100 (Windows 11 24H2 / Server 2025)");
    }
    Some(*c)
}
