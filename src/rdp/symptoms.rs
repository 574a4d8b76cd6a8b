//! From an error message the user saw to the checks that can cause it, and to
//! the causes that no disk image can show.

use serde::Serialize;

/// One known RDP client error.
#[derive(Debug, Clone, Serialize)]
pub struct Symptom {
    pub id: &'static str,
    /// The message as the client shows it.
    pub message: &'static str,
    /// Lower-case fragments that identify it in what the user typed.
    #[serde(skip)]
    pub keys: &'static [&'static str],
    /// Checks that can cause it, most likely first.
    pub checks: &'static [&'static str],
    /// Causes outside the disk.
    pub outside: &'static [&'static str],
}

pub static SYMPTOMS: &[Symptom] = &[
    Symptom {
        id: "no-license-server",
        message: "The remote session was disconnected because there are no Remote Desktop License Servers available to provide a license.",
        keys: &["license server", "licens"],
        checks: &["rds-licensing"],
        outside: &[
            "the license server is unreachable or not activated, or has no CALs of the configured type",
            "workaround from the client: `mstsc /admin` (the two administrative sessions need no license)",
        ],
    },
    Symptom {
        id: "cant-find-computer",
        message: "Remote Desktop can't find the computer. This might mean that the computer doesn't belong to the specified network.",
        keys: &["can't find the computer", "cannot find the computer", "can't find the remote computer", "find the computer", "doesn't belong to the specified network"],
        // The client could not resolve the name [D17]: a client / DNS problem first. On the disk only what
        // stops the VM from registering its DNS record (DHCP client, DNS client) or from being on the network.
        checks: &["dhcp-disabled", "core-net-stack-disabled", "static-ip", "nic-disabled"],
        outside: &[
            "first the client and DNS: this message means the client could not resolve the name; try the IP address, check the name, the client's DNS server, and the VM's DNS record (missing or stale)",
            "the client is not on the VM's network or VPN, or uses another DNS zone",
        ],
    },
    Symptom {
        id: "nla-lsa",
        message: "An authentication error has occurred. The Local Security Authority cannot be contacted / The remote computer requires Network Level Authentication, but your Windows domain controller cannot be contacted.",
        keys: &["local security authority", "network level authentication", "lsa", "nla", "credssp", "encryption oracle", "domain controller cannot be contacted", "authentication error"],
        checks: &["nla-user-auth", "security-layer", "sec-protocol-negotiation", "disable-domain-creds", "netlogon-disabled", "credssp-oracle", "fips-policy", "min-encryption-level", "tls12-server-disabled", "tls11-server-disabled", "tls10-server-disabled", "credssp-server-unpatched", "lsa-tspkg-missing"],
        // D12: with the CredSSP (encryption oracle) message the usual cause is a server without the May 2018
        // CredSSP update (CVE-2018-0886) facing a patched client; the server's System32\tspkg.dll version tells.
        outside: &[
            "for the CredSSP / encryption oracle message: first the server (this VM) lacks the CredSSP update of May 2018 (CVE-2018-0886): compare the file version of Windows\\System32\\tspkg.dll with the update table; then an unpatched client facing \"Force updated clients\"",
            "the domain controller is unreachable from the VM, or the VM's secure channel with the domain is broken (NLA needs it for domain accounts)",
            "temporary workaround: the `nla-off-keep-tls` profile (UserAuthentication = 0) or `disable-nla`, then `enable-nla`",
        ],
    },
    Symptom {
        id: "credentials-did-not-work",
        message: "Your credentials did not work. The credentials that were used to connect to the remote computer did not work.",
        keys: &["credentials did not work", "credentials", "logon attempt failed", "password", "password has expired", "must change the password", "account has expired", "account has been disabled"],
        checks: &[
            "disable-domain-creds", "lm-compat-ntlmv1", "nla-user-auth", "netlogon-disabled", "winstations-disabled",
            "password-must-change-nla", "account-locked", "admin-disabled", "account-expired", "no-enabled-admin", "user-rights-network-nla",
        ],
        outside: &[
            "a wrong user name or password, or the wrong format (DOMAIN\\user or .\\user for a local account)",
            "a domain account locked out, disabled or expired on the domain controllers; a forgotten local password (rdprescue never writes passwords: after boot use VMAccess, `az vm user update -u NAME -p PASSWORD`)",
        ],
    },
    Symptom {
        id: "cant-connect",
        message: "Remote Desktop can't connect to the remote computer for one of these reasons: 1) Remote access to the server is not enabled 2) The remote computer is turned off 3) The remote computer is not available on the network.",
        keys: &["can't connect to the remote computer", "cannot connect to the remote computer", "can't connect", "cannot connect", "remote access to the server is not enabled", "not available on the network", "turned off"],
        checks: &[
            "rdp-deny-local", "rdp-deny-policy", "ts-disabled", "listener-disabled", "listener-missing", "listener-logon-disabled", "rdp-port", "listener-lanadapter",
            "termservice-disabled", "termservice-account", "termservice-servicedll", "sessionenv-umrdp-disabled", "fw-block-inbound-always", "fw-rdp-rule-inactive",
            "fw-block-rule-rdp", "fw-gpo-no-local-merge", "ipsec-require-inbound", "firewall-service-disabled", "mpssvc-appcs-loopback", "static-ip", "nic-disabled",
            "dhcp-disabled", "nsi-disabled", "core-net-stack-disabled", "bcd-safeboot", "ts-drain-mode", "max-instance-count",
        ],
        outside: &[
            "the VM is stopped or still booting (check the boot diagnostics screenshot)",
            "a network security group, Azure Firewall or appliance does not allow TCP 3389 (or the custom port) from the client",
            "the client uses the wrong public IP, or its own network blocks outbound 3389",
        ],
    },
    Symptom {
        id: "internal-error",
        message: "An internal error has occurred.",
        keys: &["internal error"],
        checks: &["security-layer", "tls12-server-disabled", "listener-cert-pinned", "cipher-suite-policy-empty", "min-encryption-level", "sessionenv-umrdp-disabled", "fips-policy"],
        outside: &["the client cannot do the server's TLS version or cipher suites", "MachineKeys permissions on the RDP key container (file ACLs, not registry)"],
    },
    // ---- who may log on (accounts.rs): SAM accounts and SECURITY logon rights
    Symptom {
        id: "not-authorized-remote-login",
        message: "The connection was denied because the user account is not authorized for remote login.",
        keys: &["not authorized for remote login", "not authorized for remote logon", "connection was denied because the user account"],
        checks: &["user-rights-deny-rdp", "user-rights-no-rdp-allow", "no-enabled-admin"],
        outside: &[
            "the account is neither an administrator nor in Remote Desktop Users (add it after boot: `net localgroup \"Remote Desktop Users\" NAME /add` through Run Command)",
            "a domain account: its groups and the domain GPO's user rights are on the domain controllers",
        ],
    },
    Symptom {
        id: "remote-logins-disabled",
        message: "Remote logins are currently disabled.",
        keys: &["remote logins are currently disabled", "logins are currently disabled", "remote logins are disabled"],
        checks: &["winstations-disabled", "listener-logon-disabled", "ts-drain-mode"],
        outside: &["someone ran `change logon /disable` in a session that is still open (it lasts until `change logon /enable` or a reboot)"],
    },
    Symptom {
        id: "account-locked-out",
        message: "As a security precaution, the user account has been locked out because there were too many logon attempts or password change attempts.",
        keys: &["has been locked out", "account has been locked", "locked out", "too many logon attempts", "account is currently locked"],
        checks: &["account-locked", "no-enabled-admin"],
        outside: &[
            "brute force from the internet: restrict TCP 3389 (NSG source addresses, Just-In-Time access, Bastion) or the lockout comes back",
            "a domain account: unlock it on a domain controller",
        ],
    },
    Symptom {
        id: "this-computer-cant-connect",
        message: "This computer can't connect to the remote computer. Try connecting again. If the problem continues, contact the owner of the remote computer or your network administrator.",
        keys: &["this computer can't connect to the remote computer", "this computer cannot connect to the remote computer", "contact the owner of the remote computer"],
        checks: &["user-rights-no-rdp-allow", "user-rights-deny-rdp", "admin-disabled", "account-expired", "listener-cert-pinned", "sessionenv-umrdp-disabled", "security-layer", "termservice-servicedll"],
        outside: &[
            "the account lacks Remote Desktop sign-in rights through a domain group or GPO",
            "the client and server share no security protocol (an old client, or TLS versions turned off on one side)",
        ],
    },
    Symptom {
        id: "credssp-encryption-oracle",
        message: "An authentication error has occurred. The function requested is not supported. This could be due to CredSSP encryption oracle remediation.",
        keys: &["encryption oracle remediation", "credssp encryption oracle", "function requested is not supported"],
        checks: &["credssp-oracle", "nla-user-auth", "user-rights-network-nla", "password-must-change-nla"],
        outside: &[
            "client and server are at different CredSSP patch levels (CVE-2018-0886): patch the unpatched side, or set the client's Encryption Oracle Remediation policy to Mitigated",
            "temporary workaround: the `disable-nla` profile, then patch and turn NLA back on",
        ],
    },
];

// ---- evidence (issue 15): events that bear on a symptom. Those linked to
// one of its checks (evidence::links) raise that check among its
// candidates; these rows add the causes no check covers (a wrong password,
// a failed TLS handshake of the client).

/// (symptom id, provider, event ids) beyond the check links.
pub static EVENT_SYMPTOMS: &[(&str, &str, &[u32])] = &[
    ("credentials-did-not-work", crate::evidence::extract::SECURITY, &[4625, 4740]),
    ("credentials-did-not-work", crate::evidence::extract::RDPCORE, &[140]),
    ("account-locked-out", crate::evidence::extract::SECURITY, &[4740]),
    ("internal-error", crate::evidence::extract::SCHANNEL, &[36870, 36871, 36874, 36887, 36888]),
    ("this-computer-cant-connect", crate::evidence::extract::SCHANNEL, &[36871, 36874, 36888]),
    ("nla-lsa", crate::evidence::extract::SCHANNEL, &[36871, 36874]),
    ("cant-connect", crate::evidence::extract::SCM, &[7000, 7001, 7022, 7023, 7024, 7031, 7034]),
];

/// Whether event `e` bears on symptom `id` (whose candidate checks are
/// `checks`): it confirms one of them, or a row above names it.
pub fn event_bears_on(id: &str, e: &crate::evidence::Event, checks: &[&str]) -> bool {
    crate::evidence::links::checks_of(e).any(|c| checks.contains(&c))
        || EVENT_SYMPTOMS.iter().any(|(s, p, ids)| *s == id && p.eq_ignore_ascii_case(&e.provider) && ids.contains(&e.event_id) && (e.fault || e.event_id != 7040))
}

/// The symptoms whose fragments occur in `text` (case-insensitive); the
/// longest matching fragment wins ties, so a full message maps to one symptom.
pub fn match_text(text: &str) -> Vec<&'static Symptom> {
    // A symptom id, as `rdprescue checks --symptoms` prints it, names that symptom.
    if let Some(s) = SYMPTOMS.iter().find(|s| s.id.eq_ignore_ascii_case(text.trim())) {
        return vec![s];
    }
    let t = text.to_lowercase().replace('\u{2019}', "'");
    let mut scored: Vec<(usize, &'static Symptom)> = SYMPTOMS
        .iter()
        .filter_map(|s| s.keys.iter().filter(|k| t.contains(*k)).map(|k| k.len()).max().map(|l| (l, s)))
        .collect();
    scored.sort_by_key(|s| std::cmp::Reverse(s.0));
    match scored.first() {
        // A specific, long match (a pasted message) names one symptom.
        Some(&(best, _)) if best >= 20 => scored.into_iter().filter(|(l, _)| *l == best).map(|(_, s)| s).collect(),
        _ => scored.into_iter().map(|(_, s)| s).collect(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_five_messages() {
        for s in SYMPTOMS {
            let m = match_text(s.message);
            assert_eq!(m.first().map(|x| x.id), Some(s.id), "{}", s.message);
        }
        assert_eq!(match_text("no Remote Desktop License Servers available")[0].id, "no-license-server");
        assert_eq!(match_text("CredSSP / NLA").first().map(|s| s.id), Some("nla-lsa"));
        assert!(match_text("something else entirely").is_empty());
    }

    #[test]
    fn checks_exist() {
        let ids = crate::rdp::catalog::ids();
        for s in SYMPTOMS {
            for c in s.checks {
                assert!(ids.contains(c), "{}: unknown check {c}", s.id);
            }
        }
    }
}
