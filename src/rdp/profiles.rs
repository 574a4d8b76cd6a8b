//! Fix profiles: named repairs mirroring the usual recovery procedures. A
//! profile applies the automatic fixes of the findings of its checks, plus, for
//! the NLA profiles, the values the procedure sets whatever their state.

use super::check::{RDP_TCP, TS_POLICY};
use super::eval::Inspection;
use super::{Ctx, Hives};
use crate::hive::edit::{Edit, RegData};
use crate::hive::source::HiveKind;

pub struct Profile {
    pub name: &'static str,
    pub about: &'static str,
    /// Checks whose findings' actions the profile applies.
    pub checks: &'static [&'static str],
    /// Values the profile sets regardless of findings.
    extra: fn(&Ctx) -> Vec<Edit>,
}


fn none(_: &Ctx) -> Vec<Edit> {
    Vec::new()
}

/// SecurityLayer / UserAuthentication on the listener, and the policy values
/// that would override them removed.
fn nla(ctx: &Ctx, on: bool) -> Vec<Edit> {
    let (layer, auth) = if on { (2u32, 1u32) } else { (0, 0) };
    let mut a = ctx.set_actions(HiveKind::System, RDP_TCP, "SecurityLayer", RegData::Dword(layer));
    a.extend(ctx.set_actions(HiveKind::System, RDP_TCP, "UserAuthentication", RegData::Dword(auth)));
    if ctx.has(HiveKind::Software) {
        for v in ["SecurityLayer", "UserAuthentication"] {
            if ctx.dword(HiveKind::Software, TS_POLICY, v).is_some_and(|d| d != if v == "SecurityLayer" { layer } else { auth }) {
                a.extend(ctx.delete_value_actions(HiveKind::Software, TS_POLICY, v));
            }
        }
    }
    a
}

pub const PROFILES: &[Profile] = &[
    Profile {
        name: "reset-rdp",
        about: "enable Remote Desktop, the RDP-Tcp listener, its services, the firewall rule and port 3389",
        checks: &[
            "rdp-deny-local",
            "rdp-deny-policy",
            "ts-disabled",
            "ts-drain-mode",
            "winstations-disabled",
            "listener-disabled",
            "listener-logon-disabled",
            "listener-lanadapter",
            "max-instance-count",
            "rdp-port",
            "termservice-disabled",
            "termservice-servicedll",
            "sessionenv-umrdp-disabled",
            "fw-rdp-rule-inactive",
        ],
        extra: none,
    },
    Profile { name: "disable-nla", about: "turn Network Level Authentication off (SecurityLayer 0, UserAuthentication 0)", checks: &[], extra: |c| nla(c, false) },
    Profile { name: "enable-nla", about: "turn Network Level Authentication on (SecurityLayer 2, UserAuthentication 1)", checks: &[], extra: |c| nla(c, true) },
    Profile {
        name: "tls",
        about: "re-enable the TLS versions and cipher suites RDP needs",
        checks: &["tls12-server-disabled", "tls11-server-disabled", "tls10-server-disabled", "cipher-suite-policy-empty"],
        extra: none,
    },
    Profile { name: "fips-off", about: "turn the FIPS algorithm policy off", checks: &["fips-policy"], extra: none },
    Profile { name: "safe-mode-off", about: "boot normally: remove safeboot from the default BCD entry", checks: &["bcd-safeboot"], extra: none },
    // accounts.rs: with `--user NAME` (see `actions_for`) that account instead of RID 500.
    Profile {
        name: UNLOCK_ADMIN,
        about: "enable and unlock the built-in Administrator (or --user NAME) and restore Administrators' RDP logon rights (no password reset: use VMAccess / `az vm user update` after boot)",
        checks: &["user-rights-deny-rdp", "user-rights-no-rdp-allow", "user-rights-network-nla"],
        extra: |c| super::accounts::unlock_admin(c, None).unwrap_or_default(),
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
    pub fn actions_for(&self, hives: &dyn Hives, ins: &Inspection, user: Option<&str>) -> Result<Vec<Edit>, String> {
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
            (_, None) => Ok(self.actions(hives, ins)),
        }
    }

    fn finding_actions(&self, ins: &Inspection) -> Vec<Edit> {
        ins.findings.iter().filter(|f| self.checks.iter().any(|c| f.check == *c)).flat_map(|f| f.actions.clone()).collect()
    }

    /// The actions of this profile on these hives, given their inspection.
    pub fn actions(&self, hives: &dyn Hives, ins: &Inspection) -> Vec<Edit> {
        let ctx = Ctx::new(hives);
        let mut out: Vec<Edit> = ins.findings.iter().filter(|f| self.checks.iter().any(|c| f.check == *c)).flat_map(|f| f.actions.clone()).collect();
        for a in (self.extra)(&ctx) {
            if !out.contains(&a) {
                out.push(a);
            }
        }
        out
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
