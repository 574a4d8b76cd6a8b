//! Windows Firewall as stored in the registry: rule strings ([MS-GPFAS]
//! 2.2.2.19 firewall rules, 2.2.6.2 connection security rules), the local,
//! MDM and Group Policy rule stores, the legacy (XP-era) Group Policy
//! exceptions, and the per-profile switches (EnableFirewall,
//! DoNotAllowExceptions, DefaultInboundAction).
//!
//! By Windows version: NT 5.x (XP / 2003) has no rule store and no Public
//! profile, its firewall is the SharedAccess service and its exceptions are
//! `GloballyOpenPorts\List` entries; on Vista / 7 (2008 / R2) the RDP listener
//! runs in the kernel (rdpwd/tdtcp), so only a rule for `App=System` (the
//! "Remote Desktop (TCP-In)" rule) admits it, while the svchost/termservice
//! rule of Windows 7 belongs to the RemoteFX group; from Windows 8 / 2012 the
//! listener is TermService in svchost (the "User Mode" rule).

use super::os::Era;
use super::Ctx;
use crate::hive::source::HiveKind;

pub const LOCAL_POLICY: &str = r"{CCS}\Services\SharedAccess\Parameters\FirewallPolicy";
pub const GPO_POLICY: &str = r"Policies\Microsoft\WindowsFirewall";
/// Value name of the built-in RDP allow rule.
pub const RDP_RULE: &str = "RemoteDesktop-UserMode-In-TCP";
/// The rule group of the built-in Remote Desktop rules.
pub const RDP_GROUP: &str = "@FirewallAPI.dll,-28752";
/// The built-in rule as Windows writes it (after the version prefix).
pub const RDP_RULE_BODY: &str = r"Action=Allow|Active=TRUE|Dir=In|Protocol=6|Profile=Domain|Profile=Private|Profile=Public|LPort=3389|App=%SystemRoot%\system32\svchost.exe|Svc=termservice|Name=@FirewallAPI.dll,-28775|Desc=@FirewallAPI.dll,-28756|EmbedCtxt=@FirewallAPI.dll,-28752|";

/// A parsed rule string.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rule {
    /// Which store: "local", "mdm", "gpo".
    pub store: &'static str,
    pub hive: HiveKind,
    /// Key path of the store (with `{CCS}` for SYSTEM stores).
    pub key: &'static str,
    /// Value name (the rule id).
    pub id: String,
    pub raw: String,
    /// "v2.22"
    pub version: String,
    /// The `NAME=value` tokens: each name a span of `raw`, each value a span
    /// of `raw` or, when some value is not one (a value continued past a `|`
    /// that follows an empty piece: empty pieces are dropped), of `values`.
    tokens: Vec<(Span, Span)>,
    values: Option<String>,
}

/// A byte range of a rule string (rule strings are registry values, far
/// below 4 GiB; longer ones are cut there).
type Span = std::ops::Range<u32>;

/// A position in a rule string, as a span holds it.
fn pos(n: usize) -> u32 {
    u32::try_from(n).unwrap_or(u32::MAX)
}

fn span(r: std::ops::Range<usize>) -> Span {
    pos(r.start)..pos(r.end)
}

/// Split a rule string into its version and `NAME=value` tokens. Free-text
/// fields may contain `|`: a piece without `=` continues the previous token
/// (an empty piece is dropped). Names are spans of `raw`; values are too
/// unless a value is not one span of it, when they are spans of the string
/// returned with them. Two allocations per rule, not two per token.
fn spans(raw: &str) -> (String, Vec<(Span, Span)>, Option<String>) {
    let mut cut = raw.len().min(u32::MAX as usize);
    while !raw.is_char_boundary(cut) {
        cut -= 1;
    }
    let raw = &raw[..cut];
    let version = raw.split('|').next().unwrap_or_default().trim().to_string();
    let (tokens, values) = split_tokens(raw, false).or_else(|| split_tokens(raw, true)).unwrap_or_default();
    (version, tokens, values)
}

/// The tokens of `raw` (after its version), values as spans of `raw`, or
/// with `copy` of a string of their own; `None` when not copying and a
/// value is not one span of `raw`.
fn split_tokens(raw: &str, copy: bool) -> Option<(Vec<(Span, Span)>, Option<String>)> {
    let mut parts = raw.split('|');
    parts.next();
    // Where the next piece starts in `raw`.
    let mut at = raw.find('|').map_or(raw.len(), |i| i + 1);
    let mut tokens: Vec<(Span, Span)> = Vec::with_capacity(raw.bytes().filter(|&b| b == b'|').count());
    let mut values = copy.then(|| String::with_capacity(raw.len()));
    for p in parts {
        let start = at;
        at += p.len() + 1;
        match p.split_once('=') {
            Some((k, v)) if !k.is_empty() && k.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') => {
                let value = match &mut values {
                    Some(s) => {
                        s.push_str(v);
                        s.len() - v.len()..s.len()
                    }
                    None => start + k.len() + 1..start + p.len(),
                };
                tokens.push((span(start..start + k.len()), span(value)));
            }
            _ if p.is_empty() => {}
            _ => {
                if let Some(last) = tokens.last_mut() {
                    match &mut values {
                        Some(s) => {
                            s.push('|');
                            s.push_str(p);
                            last.1.end = pos(s.len());
                        }
                        // Contiguous: the bar before this piece ends the value.
                        None if last.1.end as usize + 1 == start => last.1.end = pos(start + p.len()),
                        None => return None,
                    }
                }
            }
        }
    }
    Some((tokens, values))
}

impl Rule {
    pub fn new(store: &'static str, hive: HiveKind, key: &'static str, id: String, raw: String) -> Self {
        let (version, tokens, values) = spans(&raw);
        Rule { store, hive, key, id, raw, version, tokens, values }
    }

    /// The tokens in order, as (name, value).
    pub fn tokens(&self) -> impl Iterator<Item = (&str, &str)> + '_ {
        let text = |r: &Span| r.start as usize..r.end as usize;
        let values = self.values.as_deref().unwrap_or(&self.raw);
        self.tokens.iter().map(move |(k, v)| (&self.raw[text(k)], &values[text(v)]))
    }

    pub fn get(&self, name: &str) -> Option<&str> {
        self.tokens().find(|(k, _)| k.eq_ignore_ascii_case(name)).map(|(_, v)| v)
    }

    pub fn all<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a str> + 'a {
        self.tokens().filter(move |(k, _)| k.eq_ignore_ascii_case(name)).map(|(_, v)| v)
    }

    pub fn active(&self) -> bool {
        self.get("Active").is_some_and(|v| v.eq_ignore_ascii_case("TRUE"))
    }

    pub fn inbound(&self) -> bool {
        self.get("Dir").is_none_or(|v| v.eq_ignore_ascii_case("In"))
    }

    pub fn action(&self) -> &str {
        self.get("Action").unwrap_or("")
    }

    /// TCP (6) or any protocol.
    pub fn covers_tcp(&self) -> bool {
        self.get("Protocol").is_none_or(|p| p.trim() == "6")
    }

    /// Whether the local-port scope includes `port` (no scope = every port).
    pub fn covers_port(&self, port: u32) -> bool {
        let specs: Vec<&str> = self.all("LPort").chain(self.all("LPort2_10")).collect();
        if specs.is_empty() {
            return true;
        }
        specs.iter().flat_map(|s| s.split(',')).any(|s| {
            let s = s.trim();
            match s.split_once('-') {
                Some((a, b)) => matches!((a.trim().parse::<u32>(), b.trim().parse::<u32>()), (Ok(a), Ok(b)) if (a..=b).contains(&port)),
                None => s.parse::<u32>() == Ok(port),
            }
        })
    }

    /// Whether the rule can apply to the RDP service's traffic: no App/Svc
    /// restriction or svchost/termservice; `App=System` (the kernel-mode
    /// listener of Windows 7 / 2008) only for rules of the Remote Desktop group
    /// or with an explicit port; never rules bound to an app package, a user or
    /// a trust tuple, or that require authenticated peers.
    pub fn applies_to_termservice(&self) -> bool {
        self.applies_to_listener(false)
    }

    /// As [`applies_to_termservice`](Self::applies_to_termservice) for a
    /// kernel-mode listener (Vista / 7): the traffic belongs to `System`, so a
    /// rule bound to svchost.exe does not admit it.
    pub fn applies_to_listener(&self, kernel: bool) -> bool {
        let app_ok = self.get("App").is_none_or(|a| {
            let a = a.to_lowercase();
            if kernel {
                a == "system"
            } else {
                a.ends_with("svchost.exe") || (a == "system" && (self.in_rdp_group() || self.has_port_scope()))
            }
        });
        let svc_ok = self.get("Svc").is_none_or(|s| s == "*" || s.eq_ignore_ascii_case("termservice"));
        let other = self.tokens().any(|(k, _)| {
            let k = k.to_ascii_uppercase();
            k.starts_with("TTK") || k.starts_with("SECURITY") || matches!(k.as_str(), "APPPKGID" | "LUOWN" | "LUAUTH" | "RMAUTH" | "RUAUTH")
        });
        app_ok && svc_ok && !other
    }

    /// The rule names local ports.
    pub fn has_port_scope(&self) -> bool {
        self.all("LPort").chain(self.all("LPort2_10")).next().is_some()
    }

    /// Whether the rule applies in profile `name` (no Profile token = every profile).
    pub fn in_profile(&self, name: &str) -> bool {
        let mut ps = self.all("Profile").peekable();
        ps.peek().is_none() || ps.any(|p| p.eq_ignore_ascii_case(name))
    }

    /// A rule of Windows' "Remote Desktop" group (by its group; by its id only
    /// when it names no group: Windows 7's `RemoteDesktop-UserMode-In-TCP` is
    /// in the RemoteFX group, `@FirewallAPI.dll,-28852`).
    pub fn in_rdp_group(&self) -> bool {
        match self.get("EmbedCtxt") {
            Some(g) => g.eq_ignore_ascii_case(RDP_GROUP),
            None => self.id.to_lowercase().starts_with("remotedesktop-"),
        }
    }

    /// The remote-address scope (`RA4`/`RA6` [MS-GPFAS 2.2.2.19]), if any, as "RA4=...; RA6=...".
    pub fn remote_scope(&self) -> Option<String> {
        let parts: Vec<String> = self
            .tokens()
            .filter(|(k, _)| matches!(k.to_ascii_uppercase().as_str(), "RA4" | "RA6" | "RA42" | "RA62"))
            .map(|(k, v)| format!("{k}={v}"))
            .collect();
        (!parts.is_empty()).then(|| parts.join("; "))
    }

    /// Remote-address, interface or local-address scope (cannot be judged offline).
    pub fn scoped(&self) -> bool {
        ["RA4", "RA6", "LA4", "LA6", "IF", "IFType", "RA42", "RA62"].iter().any(|k| self.get(k).is_some())
    }

    /// The same string with the `Active=` token set to `active`, every other byte kept.
    pub fn with_active(&self, active: bool) -> String {
        let want = if active { "Active=TRUE" } else { "Active=FALSE" };
        let mut out: Vec<String> = Vec::new();
        let mut done = false;
        for piece in self.raw.split('|') {
            if !done && piece.len() >= 7 && piece[..7].eq_ignore_ascii_case("Active=") {
                out.push(want.to_string());
                done = true;
            } else {
                out.push(piece.to_string());
            }
        }
        out.join("|")
    }

    /// Whether this is an active inbound rule of `action` covering TCP `port` of the RDP service.
    pub fn matches_rdp(&self, action: &str, port: u32) -> bool {
        self.matches_listener(action, port, false)
    }

    /// [`matches_rdp`](Self::matches_rdp) for a user-mode (`kernel` false) or kernel-mode listener.
    pub fn matches_listener(&self, action: &str, port: u32, kernel: bool) -> bool {
        self.active() && self.inbound() && self.action().eq_ignore_ascii_case(action) && self.covers_tcp() && self.covers_port(port) && self.applies_to_listener(kernel)
    }
}

/// One firewall profile's effective switches.
#[derive(Debug, Clone)]
pub struct Profile {
    /// "Domain", "Private", "Public".
    pub name: &'static str,
    pub enabled: bool,
    pub block_all: bool,
    /// `DefaultInboundAction` = 0: unsolicited inbound traffic is allowed without a rule.
    pub default_allow: bool,
}

/// Local store profile keys and their Group Policy twins. The legacy
/// `StandardProfile` policy (windowsfirewall.admx, XP era) applies to the
/// Private and the Public profile [A3].
pub const PROFILES: [(&str, &str, &[&str]); 3] = [
    ("Domain", "DomainProfile", &["DomainProfile"]),
    ("Private", "StandardProfile", &["PrivateProfile", "StandardProfile"]),
    ("Public", "PublicProfile", &["PublicProfile", "StandardProfile"]),
];

/// How a profile treats the RDP port.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reach {
    /// The firewall is off, the default inbound action is allow, or an unscoped rule allows it.
    Open,
    /// Only rules restricted to these remote addresses allow it.
    From(Vec<String>),
    /// Nothing allows it (or everything is blocked).
    Closed,
}

/// Legacy Group Policy exception keys (windowsfirewall.admx [A3]), per policy profile.
const LEGACY: [(&str, &str, &str); 2] = [
    ("DomainProfile", r"Policies\Microsoft\WindowsFirewall\DomainProfile\GloballyOpenPorts\List", r"Policies\Microsoft\WindowsFirewall\DomainProfile\Services\RemoteDesktop"),
    ("StandardProfile", r"Policies\Microsoft\WindowsFirewall\StandardProfile\GloballyOpenPorts\List", r"Policies\Microsoft\WindowsFirewall\StandardProfile\Services\RemoteDesktop"),
];
/// The NT 5.x local exception lists.
const NT5_LOCAL: [(&str, &str); 2] = [
    ("DomainProfile", r"{CCS}\Services\SharedAccess\Parameters\FirewallPolicy\DomainProfile\GloballyOpenPorts\List"),
    ("StandardProfile", r"{CCS}\Services\SharedAccess\Parameters\FirewallPolicy\StandardProfile\GloballyOpenPorts\List"),
];

/// The `Profile=` tokens a legacy profile stands for.
fn legacy_profiles(p: &str) -> &'static str {
    if p == "DomainProfile" {
        "Profile=Domain|"
    } else {
        "Profile=Private|Profile=Public|"
    }
}

/// A legacy port exception "PORT:TCP:SCOPE:Enabled:Name" as a rule string.
fn legacy_port_rule(entry: &str, profiles: &str) -> Option<String> {
    let f: Vec<&str> = entry.splitn(5, ':').collect();
    if f.len() < 4 || !f[1].eq_ignore_ascii_case("TCP") {
        return None;
    }
    let port: u32 = f[0].trim().parse().ok()?;
    let active = if f[3].trim().eq_ignore_ascii_case("enabled") { "TRUE" } else { "FALSE" };
    let scope = scope_tokens(f[2]);
    Some(format!("v2.0|Action=Allow|Active={active}|Dir=In|Protocol=6|{profiles}LPort={port}|{scope}Name={}|", f.get(4).unwrap_or(&"")))
}

/// `*` = any address; otherwise the list becomes an RA4 scope.
fn scope_tokens(scope: &str) -> String {
    let scope = scope.trim();
    if scope.is_empty() || scope == "*" {
        String::new()
    } else {
        format!("RA4={scope}|")
    }
}

/// The firewall configuration of a machine.
pub struct Firewall {
    pub profiles: Vec<Profile>,
    pub local: Vec<Rule>,
    pub mdm: Vec<Rule>,
    pub gpo: Vec<Rule>,
    /// Legacy Group Policy exceptions (and the NT 5.x local port list) as rules.
    pub legacy: Vec<Rule>,
    /// The RDP listener is kernel-mode (Vista / 7): only `App=System` rules admit it.
    pub kernel_listener: bool,
    /// The machine is in a domain: only then can the Domain profile be the active one.
    pub domain_applies: bool,
    /// NT 5.x (XP / 2003): exceptions instead of rules.
    pub nt5: bool,
    /// Group Policy lets local rules apply (AllowLocalPolicyMerge not 0 in every GPO profile).
    pub local_merge: bool,
    pub local_ipsec_merge: bool,
    pub local_consec: Vec<Rule>,
    pub gpo_consec: Vec<Rule>,
}

fn rules(ctx: &Ctx, store: &'static str, hive: HiveKind, key: &'static str) -> Vec<Rule> {
    let Some(k) = ctx.shared_key(hive, key) else { return Vec::new() };
    let mut rules = Vec::with_capacity(k.values.len());
    rules.extend(k.values.iter().filter(|v| matches!(v.kind, 1 | 2)).map(|v| Rule::new(store, hive, key, v.name.clone(), v.string())));
    rules
}

impl Firewall {
    pub fn load(ctx: &Ctx) -> Firewall {
        let sw = ctx.has(HiveKind::Software);
        let gpo_dword = |profile: &str, name: &str| -> Option<u32> {
            sw.then(|| ctx.dword(HiveKind::Software, &format!(r"{GPO_POLICY}\{profile}"), name)).flatten()
        };
        let os = ctx.os();
        let nt5 = os.pre_vista();
        // NT 5.x: the firewall is the SharedAccess service; disabled, nothing filters.
        let nt5_off = nt5 && ctx.dword(HiveKind::System, r"{CCS}\Services\SharedAccess", "Start") == Some(4);
        let mut profiles = Vec::new();
        for (name, local_key, gpo_keys) in PROFILES {
            if nt5 && name == "Public" {
                continue;
            }
            let local = |n: &str| ctx.dword(HiveKind::System, &format!(r"{LOCAL_POLICY}\{local_key}"), n);
            let gpo = |n: &str| gpo_keys.iter().find_map(|k| gpo_dword(k, n));
            let enabled = !nt5_off && gpo("EnableFirewall").or_else(|| local("EnableFirewall")).unwrap_or(1) != 0;
            let block_all = gpo("DoNotAllowExceptions").or_else(|| local("DoNotAllowExceptions")).unwrap_or(0) != 0;
            // [MS-GPFAS] Default Inbound Action: 0 allow, 1 block (the default).
            let default_allow = !nt5 && gpo("DefaultInboundAction").or_else(|| local("DefaultInboundAction")).unwrap_or(1) == 0;
            profiles.push(Profile { name, enabled, block_all, default_allow });
        }
        let mut legacy = Vec::new();
        if sw {
            for (p, list, rd) in LEGACY {
                if gpo_dword(&format!(r"{p}\GloballyOpenPorts"), "Enabled") == Some(1) {
                    legacy.extend(rules(ctx, "gpo", HiveKind::Software, list).into_iter().filter_map(|r| {
                        let raw = legacy_port_rule(&r.raw, legacy_profiles(p))?;
                        Some(Rule::new("gpo", HiveKind::Software, list, r.id, raw))
                    }));
                }
                if ctx.dword(HiveKind::Software, rd, "Enabled") == Some(1) {
                    let scope = ctx.string(HiveKind::Software, rd, "RemoteAddresses").unwrap_or_default();
                    let raw = format!("v2.0|Action=Allow|Active=TRUE|Dir=In|Protocol=6|{}LPort=3389|App=System|{}Name=Remote Desktop (legacy policy exception)|EmbedCtxt={RDP_GROUP}|", legacy_profiles(p), scope_tokens(&scope));
                    legacy.push(Rule::new("gpo", HiveKind::Software, rd, "Enabled".into(), raw.clone()));
                    legacy.push(Rule::new("gpo", HiveKind::Software, rd, "Enabled".into(), raw.replace("App=System|", r"App=%SystemRoot%\system32\svchost.exe|Svc=termservice|")));
                }
            }
        }
        if nt5 {
            for (p, list) in NT5_LOCAL {
                legacy.extend(rules(ctx, "local", HiveKind::System, list).into_iter().filter_map(|r| {
                    let raw = legacy_port_rule(&r.raw, legacy_profiles(p))?;
                    Some(Rule::new("local", HiveKind::System, list, r.id, raw.replace("|Protocol=6|", "|Protocol=6|App=System|")))
                }));
            }
        }
        let merge = |n: &str| !["DomainProfile", "PrivateProfile", "PublicProfile"].iter().all(|p| gpo_dword(p, n) == Some(0));
        Firewall {
            profiles,
            local: rules(ctx, "local", HiveKind::System, r"{CCS}\Services\SharedAccess\Parameters\FirewallPolicy\FirewallRules"),
            mdm: rules(ctx, "mdm", HiveKind::System, r"{CCS}\Services\SharedAccess\Parameters\FirewallPolicy\Mdm\FirewallRules"),
            gpo: if sw { rules(ctx, "gpo", HiveKind::Software, r"Policies\Microsoft\WindowsFirewall\FirewallRules") } else { Vec::new() },
            legacy,
            kernel_listener: nt5 || os.era.is_some_and(|e| (Era::Vista..=Era::Win7).contains(&e)),
            domain_applies: os.in_domain(),
            nt5,
            local_merge: merge("AllowLocalPolicyMerge"),
            local_ipsec_merge: merge("AllowLocalIPsecPolicyMerge"),
            local_consec: rules(ctx, "local", HiveKind::System, r"{CCS}\Services\SharedAccess\Parameters\FirewallPolicy\ConSecRules"),
            gpo_consec: if sw { rules(ctx, "gpo", HiveKind::Software, r"Policies\Microsoft\WindowsFirewall\ConSecRules") } else { Vec::new() },
        }
    }

    /// Rules that are enforced: GPO and MDM always, local ones unless GPO turned merging off.
    pub fn enforced(&self) -> impl Iterator<Item = &Rule> {
        self.gpo.iter().chain(self.legacy.iter()).chain(self.mdm.iter()).chain(self.local.iter().filter(|_| self.local_merge))
    }

    /// Whether `r` is an active inbound rule of `action` on TCP `port` for this machine's RDP listener.
    pub fn matches(&self, r: &Rule, action: &str, port: u32) -> bool {
        r.matches_listener(action, port, self.kernel_listener)
    }

    /// How each profile where the firewall is on treats TCP `port` of the RDP listener.
    pub fn reach(&self, port: u32) -> Vec<(&'static str, Reach)> {
        self.profiles
            .iter()
            .filter(|p| p.enabled && self.can_apply(p.name))
            .map(|p| {
                if p.block_all {
                    return (p.name, Reach::Closed);
                }
                if p.default_allow {
                    return (p.name, Reach::Open);
                }
                let allow: Vec<&Rule> = self.enforced().filter(|r| self.matches(r, "Allow", port) && r.in_profile(p.name)).collect();
                if allow.is_empty() {
                    (p.name, Reach::Closed)
                } else if allow.iter().any(|r| r.remote_scope().is_none()) {
                    (p.name, Reach::Open)
                } else {
                    let mut from: Vec<String> = allow.iter().filter_map(|r| r.remote_scope()).collect();
                    from.dedup();
                    (p.name, Reach::From(from))
                }
            })
            .collect()
    }

    /// The firewall filters inbound traffic in at least one profile.
    pub fn any_enabled(&self) -> bool {
        self.profiles.iter().any(|p| p.enabled)
    }

    /// An active inbound allow rule covers TCP `port` for the RDP service in
    /// every profile where the firewall is on (profiles that block everything
    /// are another check's business).
    pub fn allows(&self, port: u32) -> bool {
        self.closed_profiles(port).is_empty()
    }

    /// Profiles where the firewall is on, does not block everything, and no
    /// enforced allow rule covers TCP `port` for the RDP service.
    pub fn closed_profiles(&self, port: u32) -> Vec<&'static str> {
        self.profiles
            .iter()
            .filter(|p| p.enabled && !p.block_all && !p.default_allow && self.can_apply(p.name))
            .filter(|p| !self.enforced().any(|r| self.matches(r, "Allow", port) && r.in_profile(p.name)))
            .map(|p| p.name)
            .collect()
    }

    /// Whether profile `name` can be the active one: the Domain profile only on a domain member.
    pub fn can_apply(&self, name: &str) -> bool {
        name != "Domain" || self.domain_applies
    }

    /// Whether `r` applies in some profile where the firewall is on and that can be the active one.
    pub fn in_enabled_profile(&self, r: &Rule) -> bool {
        self.profiles.iter().any(|p| p.enabled && self.can_apply(p.name) && r.in_profile(p.name))
    }

    /// A rule prefix (`v2.xx`) used on this disk, for a rule rdprescue adds.
    pub fn version_prefix(&self) -> Option<String> {
        self.local.iter().chain(self.gpo.iter()).map(|r| r.version.clone()).find(|v| v.starts_with('v'))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const BUILTIN: &str = r"v2.22|Action=Allow|Active=FALSE|Dir=In|Protocol=6|Profile=Domain|Profile=Private|Profile=Public|LPort=3389|App=%SystemRoot%\system32\svchost.exe|Svc=termservice|Name=@FirewallAPI.dll,-28775|Desc=@FirewallAPI.dll,-28756|EmbedCtxt=@FirewallAPI.dll,-28752|";

    fn rule(raw: &str) -> Rule {
        Rule::new("local", HiveKind::System, "k", "id".into(), raw.into())
    }

    #[test]
    fn builtin_rule() {
        let r = rule(BUILTIN);
        assert_eq!(r.version, "v2.22");
        assert!(!r.active());
        assert_eq!(r.all("Profile").count(), 3);
        assert!(r.covers_port(3389) && !r.covers_port(3390));
        assert!(r.applies_to_termservice());
        let on = r.with_active(true);
        assert_eq!(on, BUILTIN.replace("Active=FALSE", "Active=TRUE"));
        assert!(rule(&on).matches_rdp("Allow", 3389));
        assert!(!rule(&on).matches_rdp("Block", 3389));
    }

    #[test]
    fn block_rules_and_scopes() {
        let b = rule("v2.30|Action=Block|Active=TRUE|Dir=In|Protocol=6|LPort=3389|Name=Block RDP|");
        assert!(b.matches_rdp("Block", 3389));
        let all_ports = rule("v2.30|Action=Block|Active=TRUE|Dir=In|Name=x|");
        assert!(all_ports.matches_rdp("Block", 3389), "no protocol and no port scope = everything");
        let udp = rule("v2.30|Action=Block|Active=TRUE|Dir=In|Protocol=17|LPort=3389|");
        assert!(!udp.matches_rdp("Block", 3389));
        let range = rule("v2.30|Action=Block|Active=TRUE|Dir=In|Protocol=6|LPort2_10=3000-4000|");
        assert!(range.covers_port(3389) && !range.covers_port(4001));
        let keyword = rule("v2.30|Action=Allow|Active=TRUE|Dir=In|Protocol=6|LPort=RPC|");
        assert!(!keyword.covers_port(3389));
        let other_app = rule(r"v2.30|Action=Block|Active=TRUE|Dir=In|Protocol=6|App=C:\x\app.exe|");
        assert!(!other_app.matches_rdp("Block", 3389));
        // Seen in a real Windows 10 hive: neither covers RDP.
        let kernel = rule("v2.30|Action=Allow|Active=TRUE|Dir=In|Protocol=6|App=System|Name=@wlansvc.dll,-37378|EmbedCtxt=@wlansvc.dll,-36865|TTK2_27=WFDKmDriver|");
        assert!(!kernel.matches_rdp("Allow", 3390));
        let package = rule("v2.30|Action=Allow|Active=TRUE|Dir=In|Profile=Domain|Name=Skype|LUOwn=S-1-5-21-1|AppPkgId=S-1-15-2-1|Platform=2:6:2|");
        assert!(!package.matches_rdp("Allow", 3390));
        let system_any = rule("v2.30|Action=Allow|Active=TRUE|Dir=In|Protocol=6|App=System|Name=x|");
        assert!(!system_any.matches_rdp("Allow", 3390));
        let out = rule("v2.30|Action=Block|Active=TRUE|Dir=Out|Protocol=6|LPort=3389|");
        assert!(!out.matches_rdp("Block", 3389));
    }

    #[test]
    fn profiles() {
        let r = rule(BUILTIN);
        assert!(r.in_profile("Public") && r.in_profile("domain"));
        let dp = rule("v2.10|Action=Allow|Active=TRUE|Dir=In|Protocol=6|Profile=Domain|Profile=Private|LPort=3389|App=System|EmbedCtxt=@FirewallAPI.dll,-28752|");
        assert!(dp.in_profile("Private") && !dp.in_profile("Public"));
        assert!(dp.in_rdp_group() && dp.applies_to_termservice());
        assert!(rule("v2.10|Action=Allow|Dir=In|").in_profile("Public"));
    }

    #[test]
    fn windows7_listener_and_groups() {
        // Windows 7: the kernel listener's rule vs the RemoteFX group's user-mode rule.
        let kernel = rule("v2.10|Action=Allow|Active=TRUE|Dir=In|Protocol=6|Profile=Public|LPort=3389|App=System|Name=@FirewallAPI.dll,-28753|EmbedCtxt=@FirewallAPI.dll,-28752|");
        let remotefx = Rule::new("local", HiveKind::System, "k", "RemoteDesktop-UserMode-In-TCP".into(), r"v2.10|Action=Allow|Active=TRUE|Dir=In|Protocol=6|LPort=3389|App=%SystemRoot%\system32\svchost.exe|Svc=termservice|EmbedCtxt=@FirewallAPI.dll,-28852|".into());
        assert!(kernel.in_rdp_group() && !remotefx.in_rdp_group());
        assert!(kernel.matches_listener("Allow", 3389, true) && !remotefx.matches_listener("Allow", 3389, true));
        assert!(remotefx.matches_listener("Allow", 3389, false), "a user-mode listener (8+) is svchost's");
        // Without a group the id still tells.
        assert!(Rule::new("local", HiveKind::System, "k", "RemoteDesktop-x".into(), "v2.10|Action=Allow|".into()).in_rdp_group());
    }

    #[test]
    fn remote_scopes_and_legacy_exceptions() {
        let r = rule("v2.30|Action=Allow|Active=TRUE|Dir=In|Protocol=6|LPort=3389|RA4=10.0.0.0/255.0.0.0|RA6=fd00::/8|");
        assert_eq!(r.remote_scope().as_deref(), Some("RA4=10.0.0.0/255.0.0.0; RA6=fd00::/8"));
        assert_eq!(rule(BUILTIN).remote_scope(), None);
        let l = rule(&legacy_port_rule("3389:TCP:*:enabled:Remote Desktop", legacy_profiles("StandardProfile")).unwrap());
        assert!(l.matches_rdp("Allow", 3389) && l.in_profile("Public") && l.in_profile("Private") && !l.in_profile("Domain"));
        assert_eq!(l.remote_scope(), None);
        let scoped = rule(&legacy_port_rule("3389:TCP:192.168.1.0/24,LocalSubnet:Enabled:x", legacy_profiles("DomainProfile")).unwrap());
        assert_eq!(scoped.remote_scope().as_deref(), Some("RA4=192.168.1.0/24,LocalSubnet"));
        assert!(scoped.in_profile("Domain") && !scoped.in_profile("Public"));
        let off = rule(&legacy_port_rule("3389:TCP:*:Disabled:@xpsp2res.dll,-22009", legacy_profiles("StandardProfile")).unwrap());
        assert!(!off.active() && off.get("Name") == Some("@xpsp2res.dll,-22009"));
        assert!(legacy_port_rule("3389:UDP:*:Enabled:x", "").is_none() && legacy_port_rule("junk", "").is_none());
    }

    /// The tokens as the rule strings were split before they became spans:
    /// two strings per token.
    fn model(raw: &str) -> (String, Vec<(String, String)>) {
        let mut parts = raw.split('|');
        let version = parts.next().unwrap_or_default().trim().to_string();
        let mut tokens: Vec<(String, String)> = Vec::new();
        for p in parts {
            match p.split_once('=') {
                Some((k, v)) if !k.is_empty() && k.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') => tokens.push((k.to_string(), v.to_string())),
                _ if p.is_empty() => {}
                _ => {
                    if let Some(last) = tokens.last_mut() {
                        last.1.push('|');
                        last.1.push_str(p);
                    }
                }
            }
        }
        (version, tokens)
    }

    #[test]
    fn spans_split_as_the_model_does() {
        let pieces = ["v2.30", "Action=Allow", "", "free text", "Name=a", "=x", "K_1=v=w", "é=1", "Dir=In", " ", "LPort=3389,3390", "x=", "|"];
        // Every string of up to four pieces, joined by bars, with and without a trailing bar.
        let mut n = 0;
        let mut idx = vec![0usize; 4];
        loop {
            for len in 0..=4 {
                let body: Vec<&str> = idx[..len].iter().map(|&i| pieces[i]).collect();
                for tail in ["", "|"] {
                    let raw = format!("{}{tail}", body.join("|"));
                    let r = rule(&raw);
                    let (version, tokens) = model(&raw);
                    let got: Vec<(String, String)> = r.tokens().map(|(k, v)| (k.to_string(), v.to_string())).collect();
                    assert_eq!((r.version.clone(), got), (version, tokens), "{raw:?}");
                    n += 1;
                }
            }
            // Next combination (odometer).
            let mut d = 0;
            while d < idx.len() {
                idx[d] += 1;
                if idx[d] < pieces.len() {
                    break;
                }
                idx[d] = 0;
                d += 1;
            }
            if d == idx.len() {
                break;
            }
        }
        assert!(n > 100_000, "{n} strings");
        // A value continued past an empty piece is not one span of the string.
        assert_eq!(rule("v2.30|Name=a||b|Dir=In|").get("Name"), Some("a|b"));
    }

    #[test]
    fn free_text_with_bars() {
        let r = rule("v2.30|Action=Block|Name=a|b|c|Active=TRUE|Dir=In|");
        assert_eq!(r.get("Name"), Some("a|b|c"));
        assert!(r.active());
        assert_eq!(r.with_active(false), "v2.30|Action=Block|Name=a|b|c|Active=FALSE|Dir=In|");
    }
}
