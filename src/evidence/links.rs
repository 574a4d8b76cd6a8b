//! Which check an event confirms: one row per (event, condition) → check.
//! The report uses it both ways: a finding's `confirmed_by` is the newest
//! event of one of its rows; a failure event none of whose checks fired is
//! unexplained. `--symptom` raises the checks that have events.

use super::extract::{self, RCM, SCHANNEL, SCM, SECURITY};
use super::Event;

/// What else the event must carry.
#[derive(Debug, Clone, Copy)]
pub enum When {
    Any,
    /// An SCM event about this service (key name); for 7040 only a change to disabled.
    Service(&'static str),
    /// 4625 whose SubStatus (or Status) is this NTSTATUS.
    Status(u64),
    /// A TLS alert code.
    Alert(u64),
}

/// One link.
#[derive(Debug, Clone, Copy)]
pub struct Link {
    pub provider: &'static str,
    pub event_ids: &'static [u32],
    pub when: When,
    pub check: &'static str,
}

const SCM_FAIL: &[u32] = &[7000, 7001, 7009, 7011, 7022, 7023, 7024, 7031, 7034, 7040];

macro_rules! link {
    ($p:expr, $ids:expr, $w:expr, $c:expr) => {
        Link { provider: $p, event_ids: $ids, when: $w, check: $c }
    };
}

/// The table.
pub static LINKS: &[Link] = &[
    // TLS: the server could not build a credential, or shares no protocol / cipher suite with the client.
    link!(SCHANNEL, &[36871, 36874], When::Any, "tls12-server-disabled"),
    link!(SCHANNEL, &[36871, 36874], When::Any, "tls11-server-disabled"),
    link!(SCHANNEL, &[36871, 36874], When::Any, "tls10-server-disabled"),
    link!(SCHANNEL, &[36888], When::Alert(70), "tls12-server-disabled"),
    link!(SCHANNEL, &[36888], When::Alert(70), "tls10-server-disabled"),
    link!(SCHANNEL, &[36871, 36874], When::Any, "cipher-suite-policy-empty"),
    link!(SCHANNEL, &[36874], When::Any, "cipher-suites-no-rsa"),
    link!(SCHANNEL, &[36871, 36874], When::Any, "schannel-rsa-disabled"),
    link!(SCHANNEL, &[36888], When::Alert(40), "cipher-suite-policy-empty"),
    link!(SCHANNEL, &[36871], When::Any, "fips-policy"),
    // The listener certificate: its private key, or a self-signed one Windows could not make.
    link!(SCHANNEL, &[36870], When::Any, "listener-cert-pinned"),
    link!(SCHANNEL, &[36870], When::Any, "rdp-cert-store"),
    link!(RCM, &[1057, 1058], When::Any, "listener-cert-pinned"),
    link!(RCM, &[1057, 1058], When::Any, "rdp-cert-store"),
    // Services (SCM): failed, hung, crashed, or set to disabled.
    link!(SCM, SCM_FAIL, When::Service("TermService"), "termservice-disabled"),
    link!(SCM, SCM_FAIL, When::Service("TermService"), "termservice-account"),
    link!(SCM, SCM_FAIL, When::Service("TermService"), "termservice-servicedll"),
    link!(SCM, SCM_FAIL, When::Service("SessionEnv"), "sessionenv-umrdp-disabled"),
    link!(SCM, SCM_FAIL, When::Service("UmRdpService"), "sessionenv-umrdp-disabled"),
    link!(SCM, SCM_FAIL, When::Service("MpsSvc"), "firewall-service-disabled"),
    link!(SCM, SCM_FAIL, When::Service("BFE"), "firewall-service-disabled"),
    link!(SCM, SCM_FAIL, When::Service("Netlogon"), "netlogon-disabled"),
    link!(SCM, SCM_FAIL, When::Service("gpsvc"), "gpsvc-disabled"),
    link!(SCM, SCM_FAIL, When::Service("Dhcp"), "dhcp-disabled"),
    link!(SCM, SCM_FAIL, When::Service("netvsc"), "core-net-stack-disabled"),
    // Accounts (4625 Status / SubStatus, 4740).
    link!(SECURITY, &[4625], When::Status(0xC000_0072), "admin-disabled"),
    link!(SECURITY, &[4625], When::Status(0xC000_0072), "no-enabled-admin"),
    link!(SECURITY, &[4625], When::Status(0xC000_0234), "account-locked"),
    link!(SECURITY, &[4740], When::Any, "account-locked"),
    link!(SECURITY, &[4625], When::Status(0xC000_0193), "account-expired"),
    link!(SECURITY, &[4625], When::Status(0xC000_0071), "password-must-change-nla"),
    link!(SECURITY, &[4625], When::Status(0xC000_0224), "password-must-change-nla"),
    link!(SECURITY, &[4625], When::Status(0xC000_015B), "user-rights-deny-rdp"),
    link!(SECURITY, &[4625], When::Status(0xC000_015B), "user-rights-no-rdp-allow"),
    link!(SECURITY, &[4625], When::Status(0xC000_015B), "user-rights-network-nla"),
];

/// Whether `e` satisfies the row `l`.
pub fn matches(l: &Link, e: &Event) -> bool {
    if !l.provider.eq_ignore_ascii_case(&e.provider) || !l.event_ids.contains(&e.event_id) {
        return false;
    }
    let s = |k: &str| e.data.get(k).and_then(|v| v.as_str());
    match l.when {
        When::Any => true,
        When::Service(svc) => s("service") == Some(svc) && (e.event_id != 7040 || e.fault),
        When::Status(code) => {
            let n = |k| extract::number(&e.data, k).unwrap_or(0);
            n("SubStatus") == code || n("Status") == code
        }
        When::Alert(a) => e.data.get("alert").and_then(|v| v.as_u64()) == Some(a),
    }
}

/// The checks event `e` can confirm.
pub fn checks_of(e: &Event) -> impl Iterator<Item = &'static str> + '_ {
    LINKS.iter().filter(move |l| matches(l, e)).map(|l| l.check)
}

/// The newest event (of `events`, newest first) that confirms `check`.
pub fn confirming<'e>(check: &str, events: &'e [Event]) -> Option<&'e Event> {
    events.iter().find(|e| checks_of(e).any(|c| c == check))
}

/// Fill each event's `confirms` (checks that fired, per `fired`) and
/// `unexplained` (a failure that no fired check explains).
pub fn explain(events: &mut [Event], fired: &dyn Fn(&str) -> bool) {
    for e in events {
        let mut confirms: Vec<String> = checks_of(e).filter(|c| fired(c)).map(str::to_string).collect();
        confirms.dedup();
        e.unexplained = e.fault && confirms.is_empty();
        e.confirms = confirms;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_linked_check_exists() {
        let ids = crate::rdp::catalog::ids();
        for l in LINKS {
            assert!(ids.contains(&l.check), "unknown check {}", l.check);
            for id in l.event_ids {
                assert!(extract::wanted(l.provider, *id).is_some(), "{} {id} is linked but never extracted", l.provider);
            }
        }
    }
}
