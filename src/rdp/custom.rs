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
    if ctx.key(System, RDP_TCP).is_none() {
        let ts = ctx.key(System, TS).is_some();
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
    if ctx.key(System, tds).is_some() {
        out.setting(local_setting(ctx, c.id, System, tds, "PortNumber", None));
    }
    if ctx.key(System, RDP_TCP).is_none() {
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
    let found = stores.iter().find(|s| ctx.key(Software, &format!(r"Microsoft\SystemCertificates\{s}\Certificates\{thumb}")).is_some());
    match found {
        Some(s) => out.note(c, format!("listener pinned to certificate {thumb} (found in the LocalMachine\\{s} store; its private key cannot be checked offline)")),
        None => out.finding(c, c.id, c.severity, format!("{} (thumbprint {thumb} is in neither the LocalMachine\\MY nor the Remote Desktop store); deleting the pin lets Windows create a self-signed certificate", c.explain), delete),
    }
}

/// Core network drivers and services with their measured default Start.
const CORE_NET: [(&str, u32); 12] = [
    ("Tcpip", 0),
    ("NDIS", 0),
    ("Afd", 1),
    ("nsiproxy", 1),
    ("NetBT", 1),
    ("netvsc", 3),
    ("RpcSs", 2),
    ("DcomLaunch", 2),
    ("RpcEptMapper", 2),
    ("Dnscache", 2),
    ("NlaSvc", 2),
    ("LanmanWorkstation", 2),
];

pub(crate) fn core_net_stack(ctx: &Ctx, c: &Check, out: &mut Out) {
    for (svc, default) in CORE_NET {
        let key = format!(r"{{CCS}}\Services\{svc}");
        if ctx.key(System, &key).is_none() {
            continue;
        }
        out.setting(local_setting(ctx, c.id, System, &key, "Start", None));
        if ctx.dword(System, &key, "Start") == Some(4) {
            out.finding(c, c.id, c.severity, format!("{svc} is disabled (Start = 4): the VM has no network at all"), Remedy::Actions(ctx.set_actions(System, &key, "Start", RegData::Dword(default))));
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
    let Some(ifs) = ctx.key(System, base) else { return };
    // Adapters that exist: NetCfgInstanceId (= interface GUID) -> (ComponentId, description).
    let class = format!(r"{{CCS}}\Control\Class\{NET_CLASS}");
    let adapters: Vec<(String, String, String)> = ctx
        .key(System, &class)
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
    for name in ifs.subkeys {
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

pub(crate) fn nic_disabled(ctx: &Ctx, c: &Check, out: &mut Out) {
    for bus in ["VMBUS", "PCI"] {
        let base = format!(r"{{CCS}}\Enum\{bus}");
        let Some(devs) = ctx.key(System, &base) else { continue };
        for dev in devs.subkeys {
            let dkey = format!(r"{base}\{dev}");
            let Some(insts) = ctx.key(System, &dkey) else { continue };
            for inst in insts.subkeys {
                let ikey = format!(r"{dkey}\{inst}");
                let class = ctx.string(System, &ikey, "ClassGUID").unwrap_or_default();
                if !class.eq_ignore_ascii_case(NET_CLASS) {
                    continue;
                }
                let flags = ctx.dword(System, &ikey, "ConfigFlags").unwrap_or(0);
                out.setting(local_setting(ctx, c.id, System, &ikey, "ConfigFlags", Some(J::from(0))));
                if flags & 1 != 0 {
                    let desc = ctx.string(System, &ikey, "FriendlyName").or_else(|| ctx.string(System, &ikey, "DeviceDesc")).unwrap_or_else(|| dev.clone());
                    out.finding(c, c.id, c.severity, format!("network adapter {desc} ({bus}\\{dev}\\{inst}) has CONFIGFLAG_DISABLED set (ConfigFlags = {flags:#x})"), Remedy::Actions(ctx.set_actions(System, &ikey, "ConfigFlags", RegData::Dword(flags & !1))));
                }
            }
        }
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
    for (_, local_key, gpo_keys) in PROFILES {
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
    let hit: Vec<&str> = fw.profiles.iter().filter(|p| p.enabled && p.block_all).map(|p| p.name).collect();
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
        .filter(|r| r.in_rdp_group() && !r.active() && r.inbound() && r.action().eq_ignore_ascii_case("Allow") && r.covers_tcp() && r.covers_port(port) && r.applies_to_termservice())
        .filter(|r| closed.iter().any(|p| r.in_profile(p)))
        .collect();
    let where_ = format!("in the {} profile(s), where the firewall is on", closed.join(", "));
    // Closed only for Public while Domain/Private are open: RDP breaks when Windows files the
    // VM's network as Public (a new, unidentified network after a move), not otherwise.
    let only_public = closed == ["Public"] && fw.profiles.iter().any(|p| p.enabled && p.name != "Public");
    let severity = if only_public { Severity::Medium } else { c.severity };
    let where_ = if only_public { format!("{where_} (RDP breaks when Windows files the VM's network as Public, as it does for a new network after a move)") } else { where_ };
    let (why, remedy) = if !enable.is_empty() && fw.local_merge {
        let names: Vec<&str> = enable.iter().map(|r| r.id.as_str()).collect();
        let actions = enable.iter().flat_map(|r| ctx.set_actions(System, store, &r.id, RegData::Sz(r.with_active(true)))).collect();
        (format!("the Remote Desktop rule(s) {} are inactive (Active=FALSE)", names.join(", ")), Remedy::Actions(actions))
    } else if !fw.local_merge {
        ("Group Policy ignores local rules (AllowLocalPolicyMerge = 0) and has no RDP allow rule".to_string(), Remedy::Manual(format!("add an inbound allow rule for TCP {port} to the GPO")))
    } else if group.is_empty() {
        let remedy = match fw.version_prefix() {
            Some(v) => Remedy::Actions(ctx.set_actions(System, store, RDP_RULE, RegData::Sz(format!("{v}|{RDP_RULE_BODY}")))),
            None => Remedy::Manual(format!("the local rule store is empty; add an inbound allow rule for TCP {port} (svchost.exe, service termservice) or restore the default rules")),
        };
        ("no Remote Desktop rule exists in the local store".to_string(), remedy)
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
    for r in fw.enforced().filter(|r| r.matches_rdp("Block", port) && fw.in_enabled_profile(r)) {
        out.setting(rule_setting(ctx, c, r));
        let scope = if r.scoped() { " (address/interface scoped: it blocks only some clients, which cannot be decided offline)" } else { "" };
        let back = if r.store == "gpo" { "; a GPO writes it again: fix the GPO too" } else { "" };
        out.finding(
            c,
            c.id,
            c.severity,
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
    if off.is_empty() || !fw.any_enabled() || fw.gpo.iter().any(|r| r.matches_rdp("Allow", port)) {
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
    let off: Vec<&str> = fw.profiles.iter().filter(|p| !p.enabled).map(|p| p.name).collect();
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
    if ctx.key(Bcd, &elements).is_none() {
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
    if ctx.key(Bcd, &shell_key).is_some() {
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
    if ctx.key(Software, safer).is_some() {
        out.setting(local_setting(ctx, c.id, Software, safer, "DefaultLevel", None));
    }
    if ctx.dword(Software, safer, "DefaultLevel") == Some(0) {
        let paths = format!(r"{safer}\262144\Paths");
        let allows_windows = ctx.key(Software, &paths).is_some_and(|k| {
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
        let Some(k) = ctx.key(Software, &key) else { continue };
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
    if ctx.key(Software, WINLOGON).is_none() {
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
    if matches!(mode, Some(2 | 4)) && servers_pol.is_none() && servers_local.is_none() {
        let kind = if mode == Some(2) { "per device" } else { "per user" };
        out.finding(
            c,
            c.id,
            c.severity,
            format!("{} (LicensingMode = {kind})", c.explain),
            Remedy::Manual("configure a reachable, activated RD license server (policy LicenseServers), or remove the RD Session Host role if two admin sessions suffice; meanwhile `mstsc /admin` connects".into()),
        );
    }
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
