//! Fix profiles: named repairs mirroring the usual recovery procedures. A
//! profile applies the automatic fixes of the findings of its checks, plus, for
//! the NLA profiles, the values the procedure sets whatever their state.

use super::check::{LSA, RDP_TCP, TS_POLICY};
use super::custom::{listener_port, rdp_effective};
use super::eval::Inspection;
use super::firewall::{RDP_RULE, RDP_RULE_BODY};
use super::os::DomainRole;
use super::{Ctx, Hives};
use crate::hive::edit::{Edit, RegData};
use crate::hive::source::HiveKind;

/// Choices that change what a profile writes.
#[derive(Debug, Clone, Copy, Default)]
pub struct Options {
    /// `reset-rdp`: move a custom listener port back to 3389 (default: keep it, and open it in the firewall).
    pub reset_port: bool,
}

pub struct Profile {
    pub name: &'static str,
    pub about: &'static str,
    /// Checks whose findings' actions the profile applies.
    pub checks: &'static [&'static str],
    /// Values the profile sets regardless of findings.
    extra: fn(&Ctx, &Options) -> Vec<Edit>,
}

fn none(_: &Ctx, _: &Options) -> Vec<Edit> {
    Vec::new()
}

const FW_RULES: &str = r"{CCS}\Services\SharedAccess\Parameters\FirewallPolicy\FirewallRules";

/// Set RDP-Tcp `name` = `want` locally (when it differs) and delete a policy
/// value that says otherwise (policy wins over local [A1]).
fn rdp_value(ctx: &Ctx, name: &str, want: u32) -> Vec<Edit> {
    let mut a = Vec::new();
    if ctx.shared_key(HiveKind::System, RDP_TCP).is_some() {
        a.extend(ctx.set_actions(HiveKind::System, RDP_TCP, name, RegData::Dword(want)));
    }
    if ctx.has(HiveKind::Software) && ctx.dword(HiveKind::Software, TS_POLICY, name).is_some_and(|d| d != want) {
        a.extend(ctx.delete_value_actions(HiveKind::Software, TS_POLICY, name));
    }
    a
}

/// D10's NLA workaround: SecurityLayer 0, UserAuthentication 0, fAllowSecProtocolNegotiation 0.
fn nla_off(ctx: &Ctx, _: &Options) -> Vec<Edit> {
    let mut a = rdp_value(ctx, "SecurityLayer", 0);
    a.extend(rdp_value(ctx, "UserAuthentication", 0));
    a.extend(rdp_value(ctx, "fAllowSecProtocolNegotiation", 0));
    a
}

/// D10's re-enable: disabledomaincreds 0, SecurityLayer 1, UserAuthentication 1, fAllowSecProtocolNegotiation 1.
fn nla_on(ctx: &Ctx, _: &Options) -> Vec<Edit> {
    let mut a = Vec::new();
    if ctx.dword(HiveKind::System, LSA, "disabledomaincreds").is_some_and(|d| d != 0) {
        a.extend(ctx.set_actions(HiveKind::System, LSA, "disabledomaincreds", RegData::Dword(0)));
    }
    a.extend(rdp_value(ctx, "SecurityLayer", 1));
    a.extend(rdp_value(ctx, "UserAuthentication", 1));
    a.extend(rdp_value(ctx, "fAllowSecProtocolNegotiation", 1));
    a
}

/// MinEncryptionLevel 4 (FIPS) -> 2, as D10 does with the FIPS policy.
fn fips_off(ctx: &Ctx, _: &Options) -> Vec<Edit> {
    if rdp_effective(ctx, "MinEncryptionLevel", 2) == 4 {
        rdp_value(ctx, "MinEncryptionLevel", 2)
    } else {
        Vec::new()
    }
}

/// win-toggle-safe-mode [R-safemode] writes SecurityLayer 0 when it puts a DC
/// into DSRM; leaving safe mode puts back the Windows default (1, Negotiate).
fn safe_mode_off(ctx: &Ctx, _: &Options) -> Vec<Edit> {
    if ctx.os().domain == DomainRole::Controller && ctx.dword(HiveKind::System, RDP_TCP, "SecurityLayer") == Some(0) {
        ctx.set_actions(HiveKind::System, RDP_TCP, "SecurityLayer", RegData::Dword(1))
    } else {
        Vec::new()
    }
}

/// reset-rdp beyond its checks' findings: out-of-range MinEncryptionLevel
/// (3 and 4 are choices, not damage), and a kept custom port opened in the firewall.
fn reset_rdp(ctx: &Ctx, o: &Options) -> Vec<Edit> {
    let mut a = Vec::new();
    if !(1..=4).contains(&rdp_effective(ctx, "MinEncryptionLevel", 2)) {
        a.extend(rdp_value(ctx, "MinEncryptionLevel", 2));
    }
    let port = listener_port(ctx);
    let fw = ctx.firewall();
    if !o.reset_port && port != 3389 && !fw.allows(port) && !fw.nt5 {
        if let Some(v) = fw.version_prefix() {
            let body = if fw.kernel_listener {
                RDP_RULE_BODY.replace(r"App=%SystemRoot%\system32\svchost.exe|Svc=termservice|", "App=System|")
            } else {
                RDP_RULE_BODY.to_string()
            };
            let rule = format!("{v}|{}", body.replace("LPort=3389", &format!("LPort={port}")));
            a.extend(ctx.set_actions(HiveKind::System, FW_RULES, &format!("{RDP_RULE}-{port}"), RegData::Sz(rule)));
        }
    }
    a
}

pub const PROFILES: &[Profile] = &[
    // Mirrors Azure's reset-rdp / VMAccess and D21's expected state: listener, services (account
    // included), the firewall (block-all off, rule on), TSUserEnabled 0, in-range security values,
    // TLS 1.2 and a non-empty cipher list; a custom port is kept unless --reset-port [RP-rdpconn].
    Profile {
        name: "reset-rdp",
        about: "enable Remote Desktop, the RDP-Tcp listener, its services and firewall access, and repair out-of-range security settings; a custom port is kept (opened in the firewall) unless --reset-port",
        checks: &[
            "rdp-deny-local",
            "rdp-deny-policy",
            "ts-disabled",
            "ts-drain-mode",
            "ts-user-enabled",
            "winstations-disabled",
            "listener-disabled",
            "listener-logon-disabled",
            "listener-lanadapter",
            "max-instance-count",
            "rdp-port",
            "security-layer",
            "nla-user-auth",
            "tls12-server-disabled",
            "cipher-suite-policy-empty",
            "termservice-disabled",
            "termservice-account",
            "termservice-servicedll",
            "sessionenv-umrdp-disabled",
            "fw-block-inbound-always",
            "fw-rdp-rule-inactive",
        ],
        extra: reset_rdp,
    },
    Profile {
        name: "disable-nla",
        about: "turn Network Level Authentication off as D10's workaround does (SecurityLayer 0, UserAuthentication 0, fAllowSecProtocolNegotiation 0)",
        checks: &[],
        extra: nla_off,
    },
    Profile {
        name: "enable-nla",
        about: "turn Network Level Authentication back on as D10 does (disabledomaincreds 0, SecurityLayer 1, UserAuthentication 1, fAllowSecProtocolNegotiation 1)",
        checks: &[],
        extra: nla_on,
    },
    Profile {
        name: "tls",
        about: "re-enable the TLS versions this Windows build needs for RDP (TLS 1.0 on Windows 7 / 2008 R2, TLS 1.2 elsewhere) and the cipher suites",
        checks: &["tls12-server-disabled", "tls11-server-disabled", "tls10-server-disabled", "cipher-suite-policy-empty"],
        extra: none,
    },
    Profile { name: "fips-off", about: "turn the FIPS algorithm policy off and MinEncryptionLevel 4 (FIPS) down to 2", checks: &["fips-policy"], extra: fips_off },
    Profile {
        name: "safe-mode-off",
        about: "boot normally: remove safeboot from the default BCD entry (and, on a DC, undo the SecurityLayer 0 written for DSRM)",
        checks: &["bcd-safeboot"],
        extra: safe_mode_off,
    },
    // ---- profiles added for issue 19
    // Azure's DisableNLA Run Command script [SS-DisableNLA]: UserAuthentication 0 only, the TLS layer kept.
    Profile {
        name: "nla-off-keep-tls",
        about: "turn Network Level Authentication off but keep TLS, as Azure's DisableNLA script does (UserAuthentication 0 only)",
        checks: &[],
        extra: |c, _| rdp_value(c, "UserAuthentication", 0),
    },
    // ---- issue 13 (accounts.rs): with `--user NAME` (see `actions_for`) that account instead of RID 500.
    Profile {
        name: UNLOCK_ADMIN,
        about: "enable and unlock the built-in Administrator (or --user NAME) and restore Administrators' RDP logon rights (no password reset: use VMAccess / `az vm user update` after boot)",
        checks: &["user-rights-deny-rdp", "user-rights-no-rdp-allow", "user-rights-network-nla"],
        extra: |c, _| super::accounts::unlock_admin(c, None).unwrap_or_default(),
    },
];

/// The profile that takes `--user NAME`.
pub const UNLOCK_ADMIN: &str = "unlock-admin";

pub fn find(name: &str) -> Option<&'static Profile> {
    PROFILES.iter().find(|p| p.name.eq_ignore_ascii_case(name))
}

impl Profile {
    /// The actions of this profile for `--user NAME` (unlock-admin only; the
    /// others refuse a user), or why there are none.
    pub fn actions_for(&self, hives: &dyn Hives, ins: &Inspection, o: &Options, user: Option<&str>) -> Result<Vec<Edit>, String> {
        match (self.name, user) {
            (UNLOCK_ADMIN, _) => {
                let ctx = Ctx::new(hives);
                let mut out = self.finding_actions(ins);
                for a in super::accounts::unlock_admin(&ctx, user)? {
                    if !out.contains(&a) {
                        out.push(a);
                    }
                }
                Ok(out)
            }
            (_, Some(u)) => Err(format!("--user {u} applies to --profile {UNLOCK_ADMIN} only")),
            (_, None) => Ok(self.actions_with(hives, ins, o)),
        }
    }

    fn finding_actions(&self, ins: &Inspection) -> Vec<Edit> {
        ins.findings.iter().filter(|f| self.checks.iter().any(|c| f.check == *c)).flat_map(|f| f.actions.clone()).collect()
    }

    /// The actions of this profile on these hives, given their inspection.
    pub fn actions(&self, hives: &dyn Hives, ins: &Inspection) -> Vec<Edit> {
        self.actions_with(hives, ins, &Options::default())
    }

    /// [`actions`](Self::actions) with options (`--reset-port`).
    pub fn actions_with(&self, hives: &dyn Hives, ins: &Inspection, o: &Options) -> Vec<Edit> {
        let ctx = Ctx::new(hives);
        // reset-rdp keeps a custom port unless asked to reset it.
        let keep_port = self.name == "reset-rdp" && !o.reset_port;
        let mut out: Vec<Edit> = ins
            .findings
            .iter()
            .filter(|f| self.checks.iter().any(|c| f.check == *c))
            .filter(|f| !(keep_port && f.check == "rdp-port"))
            .flat_map(|f| f.actions.clone())
            .collect();
        for a in (self.extra)(&ctx, o) {
            if !out.contains(&a) {
                out.push(a);
            }
        }
        out
    }

    /// What the user must know after this profile (e.g. which port the NSG must allow).
    pub fn notes(&self, hives: &dyn Hives, o: &Options) -> Vec<String> {
        let ctx = Ctx::new(hives);
        if self.name != "reset-rdp" {
            return Vec::new();
        }
        let port = listener_port(&ctx);
        if port == 3389 {
            return Vec::new(); // nothing moves, nothing new for the NSG
        }
        let ends = if o.reset_port { 3389 } else { port };
        let mut n = vec![format!("the RDP listener ends on TCP {ends}: the network security group (and any appliance) must allow TCP {ends}")];
        if !o.reset_port {
            n.push(format!("the custom port {port} is kept (--reset-port moves it back to 3389)"));
        }
        n
    }
}

#[cfg(test)]
mod tests {
    use super::super::catalog;
    use super::*;

    #[test]
    fn profile_checks_are_catalog_ids() {
        let ids = catalog::ids();
        for p in PROFILES {
            for c in p.checks {
                assert!(ids.contains(c), "profile {} names unknown check {c}", p.name);
            }
        }
    }
}
