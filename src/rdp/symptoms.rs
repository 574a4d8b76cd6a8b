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
        keys: &["credentials did not work", "credentials", "logon attempt failed", "password"],
        checks: &["disable-domain-creds", "lm-compat-ntlmv1", "nla-user-auth", "netlogon-disabled", "winstations-disabled"],
        outside: &[
            "a wrong user name or password, or the wrong format (DOMAIN\\user or .\\user for a local account)",
            "the account is locked out, disabled or expired, or not in Remote Desktop Users (SAM/SECURITY: reset it from the portal or with a first-boot hook)",
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
];

/// The symptoms whose fragments occur in `text` (case-insensitive); the
/// longest matching fragment wins ties, so a full message maps to one symptom.
pub fn match_text(text: &str) -> Vec<&'static Symptom> {
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
