//! The SECURITY hive's LSA account objects: who holds which logon right and
//! privilege (MS-LSAD, "account objects").
//!
//! Each SID that holds a right has a key `Policy\Accounts\<SID>` with:
//! - `Sid` (default value): the SID in its binary form (MS-DTYP 2.4.2.2);
//! - `ActSysAc` (default value): the *system access* mask, a little-endian
//!   32-bit `POLICY_SYSTEM_ACCESS_MODE` whose bits are the `SECURITY_ACCESS_*` /
//!   `POLICY_MODE_*` logon rights (interactive, network, batch, service, remote
//!   interactive and their Deny variants);
//! - `Privilgs` (default value): a `PRIVILEGE_SET`: a 32-bit count, a 32-bit
//!   control word, then `count` `LUID_AND_ATTRIBUTES` (64-bit LUID, 32-bit
//!   attributes). The LUID's low part is a well-known privilege number.
//!
//! Every parser here is total: any bytes give either a value or a
//! `Error::Corrupt { layer: Hive, offset, msg }` naming the record; the offset
//! is the byte inside that value's data.

use crate::error::{Error, Layer, Result};
use crate::hive::tree::{Hive, Key};
use serde::{Serialize, Serializer};
use std::fmt;

/// Where the account objects live.
pub const ACCOUNTS: &str = r"Policy\Accounts";
/// The registry type Windows gives the LSA attribute values (`Sid`,
/// `ActSysAc`, `Privilgs`, `SecDesc` default values): REG_NONE, measured on
/// every real SECURITY hive of ../shared/data.
pub const ATTRIBUTE_TYPE: u32 = 0;
/// The registry type of an account key's own (empty) default value:
/// REG_BINARY, measured the same way.
pub const ACCOUNT_KEY_TYPE: u32 = 3;

/// The key of `sid`'s account object (`Policy\Accounts\S-1-5-32-544`).
pub fn account_key(sid: &Sid) -> String {
    format!(r"{ACCOUNTS}\{sid}")
}

// ------------------------------------------------------------------ SIDs

/// A security identifier (MS-DTYP 2.4.2): revision 1, a 48-bit identifier
/// authority, up to 15 sub-authorities.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Sid {
    pub revision: u8,
    pub authority: u64,
    pub sub_authorities: Vec<u32>,
}

/// Binary SID layout (MS-DTYP 2.4.2.2).
mod sid_layout {
    pub const REVISION: usize = 0;
    pub const SUB_AUTHORITY_COUNT: usize = 1;
    pub const AUTHORITY: usize = 2;
    pub const AUTHORITY_LEN: usize = 6;
    pub const SUB_AUTHORITIES: usize = 8;
    pub const SUB_AUTHORITY_LEN: usize = 4;
}

impl Sid {
    /// Windows allows at most 15 sub-authorities (SID_MAX_SUB_AUTHORITIES).
    pub const MAX_SUB_AUTHORITIES: usize = 15;

    /// The SID at the start of `b`, and its length in bytes. `what` names the
    /// record for the error; `base` is `b`'s offset inside that record.
    pub fn parse(b: &[u8], base: u64, what: &str) -> Result<(Sid, usize)> {
        use sid_layout::*;
        let bad = |msg: String| Err(Error::corrupt(Layer::Hive, base, format!("{what}: {msg}")));
        if b.len() < SUB_AUTHORITIES {
            return bad(format!("SID needs at least {SUB_AUTHORITIES} bytes, has {}", b.len()));
        }
        let revision = b[REVISION];
        let count = b[SUB_AUTHORITY_COUNT] as usize;
        if revision != 1 {
            return bad(format!("SID revision {revision}, expected 1"));
        }
        if count > Self::MAX_SUB_AUTHORITIES {
            return bad(format!("SID has {count} sub-authorities, at most {} allowed", Self::MAX_SUB_AUTHORITIES));
        }
        let len = SUB_AUTHORITIES + count * SUB_AUTHORITY_LEN;
        let Some(body) = b.get(..len) else {
            return bad(format!("SID with {count} sub-authorities needs {len} bytes, has {}", b.len()));
        };
        let authority = body[AUTHORITY..AUTHORITY + AUTHORITY_LEN].iter().fold(0u64, |a, &x| a << 8 | u64::from(x));
        let sub_authorities = body[SUB_AUTHORITIES..]
            .chunks_exact(SUB_AUTHORITY_LEN)
            .map(|c| u32::from_le_bytes([c[0], c[1], c[2], c[3]]))
            .collect();
        Ok((Sid { revision, authority, sub_authorities }, len))
    }

    /// A SID whose binary form must fill `b` exactly.
    pub fn parse_exact(b: &[u8], what: &str) -> Result<Sid> {
        let (sid, len) = Sid::parse(b, 0, what)?;
        if len != b.len() {
            return Err(Error::corrupt(Layer::Hive, len as u64, format!("{what}: {} bytes after the SID", b.len() - len)));
        }
        Ok(sid)
    }

    /// Parse the string form `S-1-<authority>-<sub>...`.
    pub fn from_string(s: &str) -> Option<Sid> {
        let mut parts = s.strip_prefix("S-").or_else(|| s.strip_prefix("s-"))?.split('-');
        let revision = parts.next()?.parse().ok()?;
        let a = parts.next()?;
        let authority = match a.strip_prefix("0x").or_else(|| a.strip_prefix("0X")) {
            Some(h) => u64::from_str_radix(h, 16).ok()?,
            None => a.parse().ok()?,
        };
        if authority >> 48 != 0 {
            return None;
        }
        let sub_authorities = parts.map(|p| p.parse().ok()).collect::<Option<Vec<u32>>>()?;
        (sub_authorities.len() <= Self::MAX_SUB_AUTHORITIES).then_some(Sid { revision, authority, sub_authorities })
    }

    /// The binary form.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut v = vec![self.revision, self.sub_authorities.len() as u8];
        v.extend_from_slice(&self.authority.to_be_bytes()[2..]);
        for s in &self.sub_authorities {
            v.extend_from_slice(&s.to_le_bytes());
        }
        v
    }

    /// The last sub-authority (the RID of an account SID).
    pub fn rid(&self) -> Option<u32> {
        self.sub_authorities.last().copied()
    }

    /// This SID without its last sub-authority (the domain of an account SID).
    pub fn domain(&self) -> Option<Sid> {
        let (_, head) = self.sub_authorities.split_last()?;
        Some(Sid { revision: self.revision, authority: self.authority, sub_authorities: head.to_vec() })
    }

    /// `domain` followed by `rid`.
    pub fn with_rid(&self, rid: u32) -> Sid {
        let mut s = self.clone();
        s.sub_authorities.push(rid);
        s
    }

    /// The English display name of a well-known SID, if this is one.
    pub fn well_known_name(&self) -> Option<&'static str> {
        let subs: &[u32] = &self.sub_authorities;
        Some(match (self.authority, subs) {
            (1, [0]) => "Everyone",
            (2, [0]) => "Local",
            (2, [1]) => "Console Logon",
            (3, [0]) => "Creator Owner",
            (5, [2]) => "Network",
            (5, [4]) => "Interactive",
            (5, [6]) => "Service",
            (5, [7]) => "Anonymous Logon",
            (5, [9]) => "Enterprise Domain Controllers",
            (5, [11]) => "Authenticated Users",
            (5, [14]) => "Remote Interactive Logon",
            (5, [18]) => "Local System",
            (5, [19]) => "Local Service",
            (5, [20]) => "Network Service",
            (5, [113]) => "Local account",
            (5, [114]) => "Local account and member of Administrators group",
            (5, [32, 544]) => "Administrators",
            (5, [32, 545]) => "Users",
            (5, [32, 546]) => "Guests",
            (5, [32, 547]) => "Power Users",
            (5, [32, 548]) => "Account Operators",
            (5, [32, 549]) => "Server Operators",
            (5, [32, 550]) => "Print Operators",
            (5, [32, 551]) => "Backup Operators",
            (5, [32, 552]) => "Replicator",
            (5, [32, 554]) => "Pre-Windows 2000 Compatible Access",
            (5, [32, 555]) => "Remote Desktop Users",
            (5, [32, 556]) => "Network Configuration Operators",
            (5, [32, 558]) => "Performance Monitor Users",
            (5, [32, 559]) => "Performance Log Users",
            (5, [32, 562]) => "Distributed COM Users",
            (5, [32, 568]) => "IIS_IUSRS",
            (5, [32, 569]) => "Cryptographic Operators",
            (5, [32, 573]) => "Event Log Readers",
            (5, [32, 578]) => "Hyper-V Administrators",
            (5, [32, 580]) => "Remote Management Users",
            (5, [32, 583]) => "Device Owners",
            (5, [80, 0]) => "All Services",
            (5, [90, 0]) => "Window Manager\\Window Manager Group",
            (5, [21, _, _, _, 500]) => "Administrator (built-in)",
            (5, [21, _, _, _, 501]) => "Guest (built-in)",
            (5, [21, _, _, _, 512]) => "Domain Admins",
            (5, [21, _, _, _, 513]) => "Domain Users",
            (5, [21, _, _, _, 514]) => "Domain Guests",
            (5, [21, _, _, _, 519]) => "Enterprise Admins",
            _ => return None,
        })
    }

    /// The well-known name, or the SID string.
    pub fn display_name(&self) -> String {
        self.well_known_name().map_or_else(|| self.to_string(), str::to_string)
    }
}

impl fmt::Display for Sid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.authority >> 32 == 0 {
            write!(f, "S-{}-{}", self.revision, self.authority)?;
        } else {
            write!(f, "S-{}-{:#014x}", self.revision, self.authority)?;
        }
        for s in &self.sub_authorities {
            write!(f, "-{s}")?;
        }
        Ok(())
    }
}

impl Serialize for Sid {
    fn serialize<S: Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

/// Well-known SIDs the logon checks name.
pub mod well_known {
    use super::Sid;
    fn sid(authority: u64, subs: &[u32]) -> Sid {
        Sid { revision: 1, authority, sub_authorities: subs.to_vec() }
    }
    pub fn everyone() -> Sid {
        sid(1, &[0])
    }
    pub fn authenticated_users() -> Sid {
        sid(5, &[11])
    }
    pub fn local_account() -> Sid {
        sid(5, &[113])
    }
    pub fn local_account_and_admin() -> Sid {
        sid(5, &[114])
    }
    pub fn administrators() -> Sid {
        sid(5, &[32, 544])
    }
    pub fn users() -> Sid {
        sid(5, &[32, 545])
    }
    pub fn guests() -> Sid {
        sid(5, &[32, 546])
    }
    pub fn account_operators() -> Sid {
        sid(5, &[32, 548])
    }
    pub fn server_operators() -> Sid {
        sid(5, &[32, 549])
    }
    pub fn remote_desktop_users() -> Sid {
        sid(5, &[32, 555])
    }
}

// ------------------------------------------------------------ logon rights

/// One bit of the system access mask (`SECURITY_ACCESS_*` in ntlsa.h, the
/// `POLICY_MODE_*` of MS-LSAD), with its user-right name.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
pub enum LogonRight {
    #[serde(rename = "SeInteractiveLogonRight")]
    Interactive,
    #[serde(rename = "SeNetworkLogonRight")]
    Network,
    #[serde(rename = "SeBatchLogonRight")]
    Batch,
    #[serde(rename = "SeServiceLogonRight")]
    Service,
    #[serde(rename = "SeDenyInteractiveLogonRight")]
    DenyInteractive,
    #[serde(rename = "SeDenyNetworkLogonRight")]
    DenyNetwork,
    #[serde(rename = "SeDenyBatchLogonRight")]
    DenyBatch,
    #[serde(rename = "SeDenyServiceLogonRight")]
    DenyService,
    #[serde(rename = "SeRemoteInteractiveLogonRight")]
    RemoteInteractive,
    #[serde(rename = "SeDenyRemoteInteractiveLogonRight")]
    DenyRemoteInteractive,
}

impl LogonRight {
    /// Every right with its bit, in bit order.
    pub const ALL: [(LogonRight, u32); 10] = [
        (LogonRight::Interactive, 0x0000_0001),
        (LogonRight::Network, 0x0000_0002),
        (LogonRight::Batch, 0x0000_0004),
        (LogonRight::Service, 0x0000_0010),
        (LogonRight::DenyInteractive, 0x0000_0040),
        (LogonRight::DenyNetwork, 0x0000_0080),
        (LogonRight::DenyBatch, 0x0000_0100),
        (LogonRight::DenyService, 0x0000_0200),
        (LogonRight::RemoteInteractive, 0x0000_0400),
        (LogonRight::DenyRemoteInteractive, 0x0000_0800),
    ];
    /// SECURITY_ACCESS_PROXY_LOGON: defined, never granted by Windows.
    pub const PROXY_BIT: u32 = 0x0000_0020;

    pub fn bit(self) -> u32 {
        Self::ALL.iter().find(|(r, _)| *r == self).map_or(0, |(_, b)| *b)
    }

    /// The user-right constant name (`SeRemoteInteractiveLogonRight`, ...).
    pub fn name(self) -> &'static str {
        match self {
            LogonRight::Interactive => "SeInteractiveLogonRight",
            LogonRight::Network => "SeNetworkLogonRight",
            LogonRight::Batch => "SeBatchLogonRight",
            LogonRight::Service => "SeServiceLogonRight",
            LogonRight::DenyInteractive => "SeDenyInteractiveLogonRight",
            LogonRight::DenyNetwork => "SeDenyNetworkLogonRight",
            LogonRight::DenyBatch => "SeDenyBatchLogonRight",
            LogonRight::DenyService => "SeDenyServiceLogonRight",
            LogonRight::RemoteInteractive => "SeRemoteInteractiveLogonRight",
            LogonRight::DenyRemoteInteractive => "SeDenyRemoteInteractiveLogonRight",
        }
    }

    pub fn from_name(name: &str) -> Option<LogonRight> {
        Self::ALL.iter().map(|(r, _)| *r).find(|r| r.name().eq_ignore_ascii_case(name))
    }
}

/// The `ActSysAc` record: a 32-bit little-endian system access mask.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct SystemAccess(pub u32);

impl SystemAccess {
    pub const LEN: usize = 4;
    /// Every bit Windows defines (the ten rights and PROXY).
    pub const KNOWN: u32 = 0x0000_0FF7;

    pub fn parse(b: &[u8]) -> Result<SystemAccess> {
        // Windows writes exactly four bytes; a longer value would be a
        // different record.
        let Ok(raw) = <[u8; Self::LEN]>::try_from(b) else {
            return Err(Error::corrupt(Layer::Hive, 0, format!("ActSysAc: {} bytes, expected {}", b.len(), Self::LEN)));
        };
        Ok(SystemAccess(u32::from_le_bytes(raw)))
    }

    pub fn has(self, r: LogonRight) -> bool {
        self.0 & r.bit() != 0
    }

    pub fn rights(self) -> Vec<LogonRight> {
        LogonRight::ALL.iter().filter(|(_, b)| self.0 & b != 0).map(|(r, _)| *r).collect()
    }

    /// Bits outside the ones Windows defines.
    pub fn unknown_bits(self) -> u32 {
        self.0 & !Self::KNOWN
    }
}

// ------------------------------------------------------------- privileges

/// One `LUID_AND_ATTRIBUTES` of a `Privilgs` record.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Privilege {
    pub luid: u64,
    pub attributes: u32,
}

impl Privilege {
    /// The privilege's constant name, for the well-known LUIDs (SE_*_PRIVILEGE
    /// in winnt.h: 2 = SeCreateTokenPrivilege ... 36).
    pub fn name(&self) -> Option<&'static str> {
        const NAMES: [&str; 35] = [
            "SeCreateTokenPrivilege",
            "SeAssignPrimaryTokenPrivilege",
            "SeLockMemoryPrivilege",
            "SeIncreaseQuotaPrivilege",
            "SeMachineAccountPrivilege",
            "SeTcbPrivilege",
            "SeSecurityPrivilege",
            "SeTakeOwnershipPrivilege",
            "SeLoadDriverPrivilege",
            "SeSystemProfilePrivilege",
            "SeSystemtimePrivilege",
            "SeProfileSingleProcessPrivilege",
            "SeIncreaseBasePriorityPrivilege",
            "SeCreatePagefilePrivilege",
            "SeCreatePermanentPrivilege",
            "SeBackupPrivilege",
            "SeRestorePrivilege",
            "SeShutdownPrivilege",
            "SeDebugPrivilege",
            "SeAuditPrivilege",
            "SeSystemEnvironmentPrivilege",
            "SeChangeNotifyPrivilege",
            "SeRemoteShutdownPrivilege",
            "SeUndockPrivilege",
            "SeSyncAgentPrivilege",
            "SeEnableDelegationPrivilege",
            "SeManageVolumePrivilege",
            "SeImpersonatePrivilege",
            "SeCreateGlobalPrivilege",
            "SeTrustedCredManAccessPrivilege",
            "SeRelabelPrivilege",
            "SeIncreaseWorkingSetPrivilege",
            "SeTimeZonePrivilege",
            "SeCreateSymbolicLinkPrivilege",
            "SeDelegateSessionUserImpersonatePrivilege",
        ];
        const FIRST: u64 = 2;
        self.luid.checked_sub(FIRST).and_then(|i| NAMES.get(i as usize).copied())
    }
}

/// The `Privilgs` record: a PRIVILEGE_SET.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct PrivilegeSet {
    pub control: u32,
    pub privileges: Vec<Privilege>,
}

mod privilege_layout {
    pub const COUNT: usize = 0;
    pub const CONTROL: usize = 4;
    pub const ENTRIES: usize = 8;
    pub const ENTRY_LEN: usize = 12;
    pub const ENTRY_LUID: usize = 0;
    pub const ENTRY_ATTRIBUTES: usize = 8;
}

impl PrivilegeSet {
    pub fn parse(b: &[u8]) -> Result<PrivilegeSet> {
        use privilege_layout::*;
        use crate::bytes::{le_u32, le_u64};
        if b.len() < ENTRIES {
            return Err(Error::corrupt(Layer::Hive, 0, format!("Privilgs: {} bytes, the header needs {ENTRIES}", b.len())));
        }
        let count = le_u32(b, COUNT) as usize;
        // The count is checked against the bytes present before anything is
        // allocated from it.
        let room = (b.len() - ENTRIES) / ENTRY_LEN;
        if count > room {
            return Err(Error::corrupt(Layer::Hive, COUNT as u64, format!("Privilgs: count {count} but room for {room} entries")));
        }
        let privileges = (0..count)
            .map(|i| {
                let e = ENTRIES + i * ENTRY_LEN;
                Privilege { luid: le_u64(b, e + ENTRY_LUID), attributes: le_u32(b, e + ENTRY_ATTRIBUTES) }
            })
            .collect();
        Ok(PrivilegeSet { control: le_u32(b, CONTROL), privileges })
    }
}

// ---------------------------------------------------------------- accounts

/// One LSA account object: a SID and what it holds.
#[derive(Debug, Clone, Serialize)]
pub struct AccountRights {
    /// The account object's key (`Policy\Accounts\<SID>`).
    #[serde(skip)]
    pub key: String,
    pub sid: Sid,
    /// Well-known name, or the SID string.
    pub display_name: String,
    /// The ActSysAc mask, if the account has one.
    pub system_access: Option<u32>,
    /// The logon rights the mask grants or denies.
    pub logon_rights: Vec<LogonRight>,
    /// Privilege names (or `LUID <n>` for unknown ones).
    pub privileges: Vec<String>,
    /// The privileges' LUIDs, in the record's order.
    pub privilege_luids: Vec<u64>,
    /// The account object's security descriptor (`SecDesc`), as stored.
    #[serde(skip)]
    pub sec_desc: Option<Vec<u8>>,
}

/// Every account object of a SECURITY hive.
#[derive(Debug, Clone, Serialize)]
pub struct Rights {
    pub accounts: Vec<AccountRights>,
}

impl Rights {
    /// Most account objects read (a real SECURITY hive has a few dozen).
    pub const MAX_ACCOUNTS: usize = 100_000;

    pub fn read(security: &Hive) -> Result<Rights> {
        let root = security.key(ACCOUNTS)?;
        if root.subkeys.len() > Self::MAX_ACCOUNTS {
            return Err(Error::corrupt(Layer::Hive, 0, format!("{ACCOUNTS}: {} account objects", root.subkeys.len())));
        }
        let mut accounts = Vec::new();
        for name in &root.subkeys {
            accounts.push(read_account(security, name)?);
        }
        accounts.sort_by(|a, b| a.sid.cmp(&b.sid));
        Ok(Rights { accounts })
    }

    /// The account object of `sid`, if any.
    pub fn get(&self, sid: &Sid) -> Option<&AccountRights> {
        self.accounts.iter().find(|a| &a.sid == sid)
    }

    /// SIDs whose ActSysAc holds `right`.
    pub fn who_has(&self, right: LogonRight) -> Vec<&Sid> {
        self.accounts.iter().filter(|a| a.logon_rights.contains(&right)).map(|a| &a.sid).collect()
    }

    /// SIDs holding the privilege named `name` (`SeDebugPrivilege`, ...).
    pub fn who_has_privilege(&self, name: &str) -> Vec<&Sid> {
        self.accounts.iter().filter(|a| a.privileges.iter().any(|p| p.eq_ignore_ascii_case(name))).map(|a| &a.sid).collect()
    }

    /// The security descriptor Windows gives new account objects: the one
    /// most account objects of this hive carry (every real hive measured has
    /// one descriptor shared by all of them).
    pub fn common_sec_desc(&self) -> Option<&[u8]> {
        let all: Vec<&[u8]> = self.accounts.iter().filter_map(|a| a.sec_desc.as_deref()).collect();
        all.iter().copied().max_by_key(|d| all.iter().filter(|x| *x == d).count())
    }

    /// Why this SECURITY hive looks like a domain controller's, if it does:
    /// Account Operators and Server Operators exist only in a domain's builtin
    /// domain, so user rights held by them are a DC's default policy.
    pub fn domain_controller_evidence(&self) -> Option<String> {
        let dc_only = [well_known::account_operators(), well_known::server_operators()];
        let found: Vec<String> = dc_only.iter().filter(|s| self.get(s).is_some()).map(|s| format!("{} ({s})", s.display_name())).collect();
        (!found.is_empty()).then(|| format!("SECURITY holds user rights for {}, which exist only on domain controllers", found.join(" and ")))
    }
}

/// The default value's data of `key`.
fn default_value(key: &Key) -> Option<&[u8]> {
    key.values.iter().find(|v| v.name.is_empty()).map(|v| &v.raw[..])
}

fn read_account(security: &Hive, name: &str) -> Result<AccountRights> {
    let path = format!(r"{ACCOUNTS}\{name}");
    let key = security.key(&path)?;
    let sub = |k: &str| -> Result<Option<Vec<u8>>> {
        if !key.subkeys.iter().any(|s| s.eq_ignore_ascii_case(k)) {
            return Ok(None);
        }
        let key = security.key(&format!(r"{path}\{k}"))?;
        Ok(default_value(&key).map(<[u8]>::to_vec))
    };
    let in_record = |what: String| move |e: Error| match e {
        Error::Corrupt { layer, offset, msg } => Error::Corrupt { layer, offset, msg: format!("{what}: {msg}") },
        e => e,
    };
    // The binary Sid is authoritative; the key name is its string form.
    let sid = match sub("Sid")? {
        Some(raw) => Sid::parse_exact(&raw, "Sid").map_err(in_record(path.clone()))?,
        None => Sid::from_string(name)
            .ok_or_else(|| Error::corrupt(Layer::Hive, 0, format!("{path}: no Sid value and the key name is not a SID")))?,
    };
    let system_access = sub("ActSysAc")?.map(|raw| SystemAccess::parse(&raw)).transpose().map_err(in_record(path.clone()))?;
    let sec_desc = sub("SecDesc")?;
    let privileges = sub("Privilgs")?.map(|raw| PrivilegeSet::parse(&raw)).transpose().map_err(in_record(path.clone()))?.unwrap_or_default();
    Ok(AccountRights {
        key: path,
        display_name: sid.display_name(),
        sid,
        system_access: system_access.map(|s| s.0),
        logon_rights: system_access.map(SystemAccess::rights).unwrap_or_default(),
        privileges: privileges.privileges.iter().map(|p| p.name().map_or_else(|| format!("LUID {}", p.luid), str::to_string)).collect(),
        privilege_luids: privileges.privileges.iter().map(|p| p.luid).collect(),
        sec_desc,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sid_round_trip() {
        let b = [1, 2, 0, 0, 0, 0, 0, 5, 0x20, 0, 0, 0, 0x20, 2, 0, 0];
        let s = Sid::parse_exact(&b, "t").unwrap();
        assert_eq!(s.to_string(), "S-1-5-32-544");
        assert_eq!(s.display_name(), "Administrators");
        assert_eq!(s.to_bytes(), b);
        assert_eq!(Sid::from_string("S-1-5-32-544"), Some(s));
        assert_eq!(Sid::from_string("S-1-5-21-1-2-3-500").unwrap().well_known_name(), Some("Administrator (built-in)"));
        assert_eq!(Sid::from_string("S-1-5-x"), None);
    }

    #[test]
    fn hostile_sids() {
        // Too short, bad revision, too many sub-authorities, truncated body, trailing bytes.
        for b in [&[1u8, 0][..], &[2, 0, 0, 0, 0, 0, 0, 5], &[1, 16, 0, 0, 0, 0, 0, 5], &[1, 2, 0, 0, 0, 0, 0, 5, 1, 0, 0, 0], &[1, 0, 0, 0, 0, 0, 0, 1, 9]] {
            match Sid::parse_exact(b, "Sid") {
                Err(Error::Corrupt { layer: Layer::Hive, msg, .. }) => assert!(msg.starts_with("Sid: "), "{msg}"),
                other => panic!("{b:?}: {other:?}"),
            }
        }
    }

    #[test]
    fn system_access_bits() {
        let a = SystemAccess::parse(&[0x07, 0x04, 0, 0]).unwrap();
        assert_eq!(a.rights(), vec![LogonRight::Interactive, LogonRight::Network, LogonRight::Batch, LogonRight::RemoteInteractive]);
        let g = SystemAccess::parse(&[0xc1, 0, 0, 0]).unwrap();
        assert!(g.has(LogonRight::DenyInteractive) && g.has(LogonRight::DenyNetwork) && !g.has(LogonRight::DenyRemoteInteractive));
        assert_eq!(SystemAccess(0x800).rights(), vec![LogonRight::DenyRemoteInteractive]);
        assert_eq!(SystemAccess(0x1000_0020).unknown_bits(), 0x1000_0000);
        assert!(SystemAccess::parse(&[1, 0, 0]).is_err());
        assert!(SystemAccess::parse(&[1, 0, 0, 0, 0]).is_err());
        assert_eq!(LogonRight::from_name("sedenyremoteinteractivelogonright"), Some(LogonRight::DenyRemoteInteractive));
    }

    #[test]
    fn privilege_sets() {
        let mut b = vec![2, 0, 0, 0, 0, 0, 0, 0];
        b.extend([0x17, 0, 0, 0, 0, 0, 0, 0, 3, 0, 0, 0]);
        b.extend([0x63, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0]);
        let p = PrivilegeSet::parse(&b).unwrap();
        assert_eq!(p.privileges[0].name(), Some("SeChangeNotifyPrivilege"));
        assert_eq!(p.privileges[0].attributes, 3);
        assert_eq!(p.privileges[1].name(), None);
        // A huge count with no room: an error, no allocation.
        let mut h = b.clone();
        h[..4].copy_from_slice(&u32::MAX.to_le_bytes());
        assert!(matches!(PrivilegeSet::parse(&h), Err(Error::Corrupt { .. })));
        assert!(PrivilegeSet::parse(&b[..20]).is_err());
        assert!(PrivilegeSet::parse(&b[..3]).is_err());
    }
}
