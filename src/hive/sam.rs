//! The SAM hive: local accounts, the account domain's password and lockout
//! policy, and the members of the builtin Administrators and Remote Desktop
//! Users aliases (the records MS-SAMR's server keeps on disk).
//!
//! Layout, under `SAM\Domains`:
//! - `Account` value `F`: the account domain's fixed record (password ages,
//!   lockout duration / observation window / threshold, minimum length);
//!   value `V`: its variable attributes (security descriptor, domain SID).
//! - `Account\Users\<RID as 8 hex digits>` value `F`: a user's fixed record
//!   (times, RID, `UserAccountControl` bits of MS-SAMR 2.2.1.12, bad-password
//!   and logon counts); value `V`: its variable attributes (name, full name,
//!   comments, ... and hashes, which this module never reads).
//! - `Account\Users\Names\<name>`: the default value's *type* is the RID.
//! - `Builtin\Aliases\<RID>` value `C`: an alias (local group): its RID, then
//!   variable attributes whose last one is the member SIDs.
//!
//! Variable attributes are stored the same way in `V` and `C`: a fixed part,
//! then one (offset, length, qualifier) triple of 32-bit integers per
//! attribute, then the data; offsets count from the end of the triples.
//!
//! Every parser is total: any bytes give a value or an
//! `Error::Corrupt { layer: Hive, offset, msg }` whose message starts with the
//! record (`SAM\Domains\Account\Users\000001F4 F: ...`) and whose offset is the
//! byte inside that value's data. Nothing is allocated from a length field
//! before it has been checked against the bytes present.
//!
//! A domain controller's SAM holds only the Directory Services Restore Mode
//! accounts; the SAM alone does not say it belongs to a DC (its records look
//! like any server's). `Sam::apply_system` marks it from SYSTEM's ProductType,
//! `Sam::apply_security` from the SECURITY hive's user rights, and
//! `mark_domain_controller` takes any other evidence.

use crate::bytes::{le_u16, le_u32, le_u64};
use crate::error::{Error, Layer, Result};
use crate::hive::lsa::{well_known, Rights, Sid};
use crate::hive::tree::{filetime_iso, Hive, Key};
use serde::{Serialize, Serializer};

pub const DOMAINS: &str = r"SAM\Domains";
pub const ACCOUNT: &str = r"SAM\Domains\Account";
pub const USERS: &str = r"SAM\Domains\Account\Users";
pub const NAMES: &str = r"SAM\Domains\Account\Users\Names";
pub const BUILTIN_ALIASES: &str = r"SAM\Domains\Builtin\Aliases";
/// RID of the builtin Administrators alias (S-1-5-32-544).
pub const ALIAS_ADMINISTRATORS: u32 = 0x220;
/// RID of the builtin Remote Desktop Users alias (S-1-5-32-555).
pub const ALIAS_REMOTE_DESKTOP_USERS: u32 = 0x22B;
/// Most users read from one SAM.
pub const MAX_USERS: usize = 100_000;

fn corrupt(what: &str, offset: usize, msg: impl std::fmt::Display) -> Error {
    Error::corrupt(Layer::Hive, offset as u64, format!("{what}: {msg}"))
}

// ------------------------------------------------------------------ times

/// A FILETIME (100 ns since 1601-01-01 UTC). 0 and 0x7FFF_FFFF_FFFF_FFFF
/// mean "never" in every SAM field that holds one.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Default)]
pub struct FileTime(pub u64);

impl FileTime {
    pub const NEVER_MAX: u64 = i64::MAX as u64;
    pub fn is_never(self) -> bool {
        self.0 == 0 || self.0 >= Self::NEVER_MAX
    }
    /// ISO 8601 UTC, or "never".
    pub fn iso(self) -> String {
        if self.is_never() {
            return "never".into();
        }
        filetime_iso(self.0).unwrap_or_else(|| "never".into())
    }
}

impl Serialize for FileTime {
    fn serialize<S: Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        s.serialize_str(&self.iso())
    }
}

/// A relative time as the SAM stores it: a negative count of 100 ns;
/// `i64::MIN` means "never" (no limit / locked until an administrator
/// unlocks).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Interval(pub i64);

impl Interval {
    /// Whole seconds, or None for "never".
    pub fn seconds(self) -> Option<u64> {
        (self.0 != i64::MIN).then(|| self.0.unsigned_abs() / 10_000_000)
    }
}

impl Serialize for Interval {
    fn serialize<S: Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        match self.seconds() {
            Some(n) => s.serialize_u64(n),
            None => s.serialize_str("never"),
        }
    }
}

// ------------------------------------------------------ variable attributes

/// The (offset, length, qualifier) triples of a `V` or `C` record.
struct VarAttrs<'a> {
    data: &'a [u8],
    /// Where the triples start and how many there are.
    table: usize,
    count: usize,
    what: &'a str,
}

impl<'a> VarAttrs<'a> {
    const ENTRY_LEN: usize = 12;

    fn new(data: &'a [u8], table: usize, count: usize, what: &'a str) -> Result<Self> {
        let end = table + count * Self::ENTRY_LEN;
        if data.len() < end {
            return Err(corrupt(what, data.len(), format!("{} bytes, the attribute table needs {end}", data.len())));
        }
        Ok(VarAttrs { data, table, count, what })
    }

    fn base(&self) -> usize {
        self.table + self.count * Self::ENTRY_LEN
    }

    /// Qualifier of attribute `i` (a count for alias members).
    fn qualifier(&self, i: usize) -> u32 {
        le_u32(self.data, self.table + i * Self::ENTRY_LEN + 8)
    }

    /// Where attribute `i`'s data starts in the record (meaningful once
    /// `get(i)` has succeeded).
    fn start(&self, i: usize) -> usize {
        self.base().saturating_add(le_u32(self.data, self.table + i * Self::ENTRY_LEN) as usize)
    }

    /// The bytes of attribute `i`, checked to lie inside the record.
    fn get(&self, i: usize, name: &str) -> Result<&'a [u8]> {
        let e = self.table + i * Self::ENTRY_LEN;
        let (off, len) = (le_u32(self.data, e) as usize, le_u32(self.data, e + 4) as usize);
        let start = self.base().checked_add(off);
        match start.and_then(|s| Some((s, s.checked_add(len)?))) {
            Some((s, end)) if end <= self.data.len() => Ok(&self.data[s..end]),
            _ => Err(corrupt(
                self.what,
                e,
                format!("{name} at {:#x}+{off:#x}, {len} bytes, runs past the record's {} bytes", self.base(), self.data.len()),
            )),
        }
    }

    /// Attribute `i` as UTF-16LE text; None when empty.
    fn text(&self, i: usize, name: &str) -> Result<Option<String>> {
        let b = self.get(i, name)?;
        if b.len() % 2 != 0 {
            return Err(corrupt(self.what, self.table + i * Self::ENTRY_LEN + 4, format!("{name}: odd UTF-16 length {}", b.len())));
        }
        Ok((!b.is_empty()).then(|| crate::bytes::utf16le_name(b)))
    }
}

// ------------------------------------------------------------ user F record

/// `UserAccountControl` bits (MS-SAMR 2.2.1.12, USER_*).
pub mod acb {
    pub const ACCOUNT_DISABLED: u32 = 0x0000_0001;
    pub const HOME_DIRECTORY_REQUIRED: u32 = 0x0000_0002;
    pub const PASSWORD_NOT_REQUIRED: u32 = 0x0000_0004;
    pub const TEMP_DUPLICATE_ACCOUNT: u32 = 0x0000_0008;
    pub const NORMAL_ACCOUNT: u32 = 0x0000_0010;
    pub const MNS_LOGON_ACCOUNT: u32 = 0x0000_0020;
    pub const INTERDOMAIN_TRUST_ACCOUNT: u32 = 0x0000_0040;
    pub const WORKSTATION_TRUST_ACCOUNT: u32 = 0x0000_0080;
    pub const SERVER_TRUST_ACCOUNT: u32 = 0x0000_0100;
    pub const DONT_EXPIRE_PASSWORD: u32 = 0x0000_0200;
    pub const ACCOUNT_AUTO_LOCKED: u32 = 0x0000_0400;
    pub const ENCRYPTED_TEXT_PASSWORD_ALLOWED: u32 = 0x0000_0800;
    pub const SMARTCARD_REQUIRED: u32 = 0x0000_1000;
    pub const TRUSTED_FOR_DELEGATION: u32 = 0x0000_2000;
    pub const NOT_DELEGATED: u32 = 0x0000_4000;
    pub const USE_DES_KEY_ONLY: u32 = 0x0000_8000;
    pub const DONT_REQUIRE_PREAUTH: u32 = 0x0001_0000;
    pub const PASSWORD_EXPIRED: u32 = 0x0002_0000;
    pub const TRUSTED_TO_AUTHENTICATE_FOR_DELEGATION: u32 = 0x0004_0000;
    pub const NO_AUTH_DATA_REQUIRED: u32 = 0x0008_0000;
    pub const PARTIAL_SECRETS_ACCOUNT: u32 = 0x0010_0000;
    pub const USE_AES_KEYS: u32 = 0x0020_0000;

    /// Every bit with a short name, in bit order.
    pub const NAMES: [(u32, &str); 22] = [
        (ACCOUNT_DISABLED, "disabled"),
        (HOME_DIRECTORY_REQUIRED, "home-directory-required"),
        (PASSWORD_NOT_REQUIRED, "password-not-required"),
        (TEMP_DUPLICATE_ACCOUNT, "temp-duplicate-account"),
        (NORMAL_ACCOUNT, "normal-account"),
        (MNS_LOGON_ACCOUNT, "mns-logon-account"),
        (INTERDOMAIN_TRUST_ACCOUNT, "interdomain-trust-account"),
        (WORKSTATION_TRUST_ACCOUNT, "workstation-trust-account"),
        (SERVER_TRUST_ACCOUNT, "server-trust-account"),
        (DONT_EXPIRE_PASSWORD, "password-never-expires"),
        (ACCOUNT_AUTO_LOCKED, "locked-out"),
        (ENCRYPTED_TEXT_PASSWORD_ALLOWED, "encrypted-text-password-allowed"),
        (SMARTCARD_REQUIRED, "smartcard-required"),
        (TRUSTED_FOR_DELEGATION, "trusted-for-delegation"),
        (NOT_DELEGATED, "not-delegated"),
        (USE_DES_KEY_ONLY, "use-des-key-only"),
        (DONT_REQUIRE_PREAUTH, "dont-require-preauth"),
        (PASSWORD_EXPIRED, "password-expired"),
        (TRUSTED_TO_AUTHENTICATE_FOR_DELEGATION, "trusted-to-authenticate-for-delegation"),
        (NO_AUTH_DATA_REQUIRED, "no-auth-data-required"),
        (PARTIAL_SECRETS_ACCOUNT, "partial-secrets-account"),
        (USE_AES_KEYS, "use-aes-keys"),
    ];

    pub fn names(bits: u32) -> Vec<&'static str> {
        NAMES.iter().filter(|(b, _)| bits & b != 0).map(|(_, n)| *n).collect()
    }
}

/// A user's `F` value (the fixed-length user record).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UserFixed {
    pub revision: u16,
    pub last_logon: FileTime,
    pub last_logoff: FileTime,
    pub password_last_set: FileTime,
    pub account_expires: FileTime,
    pub last_bad_password: FileTime,
    pub rid: u32,
    pub primary_group: u32,
    pub account_control: u32,
    pub country_code: u16,
    pub code_page: u16,
    pub bad_password_count: u16,
    pub logon_count: u16,
}

mod user_f {
    pub const REVISION: usize = 0x00;
    pub const LAST_LOGON: usize = 0x08;
    pub const LAST_LOGOFF: usize = 0x10;
    pub const PASSWORD_LAST_SET: usize = 0x18;
    pub const ACCOUNT_EXPIRES: usize = 0x20;
    pub const LAST_BAD_PASSWORD: usize = 0x28;
    pub const RID: usize = 0x30;
    pub const PRIMARY_GROUP: usize = 0x34;
    pub const ACCOUNT_CONTROL: usize = 0x38;
    pub const COUNTRY_CODE: usize = 0x3C;
    pub const CODE_PAGE: usize = 0x3E;
    pub const BAD_PASSWORD_COUNT: usize = 0x40;
    pub const LOGON_COUNT: usize = 0x42;
    /// Bytes through LogonCount (Windows writes 0x50).
    pub const MIN_LEN: usize = 0x44;
}

impl UserFixed {
    pub fn parse(b: &[u8], what: &str) -> Result<UserFixed> {
        use user_f::*;
        if b.len() < MIN_LEN {
            return Err(corrupt(what, b.len(), format!("{} bytes, the user record needs {MIN_LEN}", b.len())));
        }
        Ok(UserFixed {
            revision: le_u16(b, REVISION),
            last_logon: FileTime(le_u64(b, LAST_LOGON)),
            last_logoff: FileTime(le_u64(b, LAST_LOGOFF)),
            password_last_set: FileTime(le_u64(b, PASSWORD_LAST_SET)),
            account_expires: FileTime(le_u64(b, ACCOUNT_EXPIRES)),
            last_bad_password: FileTime(le_u64(b, LAST_BAD_PASSWORD)),
            rid: le_u32(b, RID),
            primary_group: le_u32(b, PRIMARY_GROUP),
            account_control: le_u32(b, ACCOUNT_CONTROL),
            country_code: le_u16(b, COUNTRY_CODE),
            code_page: le_u16(b, CODE_PAGE),
            bad_password_count: le_u16(b, BAD_PASSWORD_COUNT),
            logon_count: le_u16(b, LOGON_COUNT),
        })
    }

    /// The record must belong to the key it is stored under.
    pub fn validate(&self, key_rid: u32, what: &str) -> Result<()> {
        if self.rid != key_rid {
            return Err(corrupt(what, user_f::RID, format!("RID {:#x} but stored under key {key_rid:08X}", self.rid)));
        }
        Ok(())
    }
}

/// Changes to a user's `F` record: what `fix` writes to enable or unlock an
/// account or to lift "must change password" (MS-SAMR 2.2.1.12 bits, the
/// fixed-record offsets above). Everything else in the record is kept byte
/// for byte.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct FixedChanges {
    /// Clear USER_ACCOUNT_DISABLED.
    pub enable: bool,
    /// Clear USER_ACCOUNT_AUTO_LOCKED, the bad-password count and the time of
    /// the last bad password (the lockout's start).
    pub unlock: bool,
    /// Set the account's expiry to "never".
    pub never_expire: bool,
    /// Clear USER_PASSWORD_EXPIRED.
    pub clear_password_expired: bool,
    /// New PasswordLastSet (a nonzero time lifts "must change at next logon").
    pub password_last_set: Option<FileTime>,
}

impl FixedChanges {
    pub fn is_empty(&self) -> bool {
        *self == FixedChanges::default()
    }

    /// What the changes do, for a report line.
    pub fn describe(&self) -> Vec<String> {
        let mut v = Vec::new();
        if self.enable {
            v.push(format!("clear the disabled bit ({:#x})", acb::ACCOUNT_DISABLED));
        }
        if self.unlock {
            v.push(format!("clear the locked-out bit ({:#x}), the bad-password count and the last bad-password time", acb::ACCOUNT_AUTO_LOCKED));
        }
        if self.never_expire {
            v.push("set the account expiry to never".into());
        }
        if self.clear_password_expired {
            v.push(format!("clear the password-expired bit ({:#x})", acb::PASSWORD_EXPIRED));
        }
        if let Some(t) = self.password_last_set {
            v.push(format!("set PasswordLastSet to {}", t.iso()));
        }
        v
    }
}

impl UserFixed {
    /// `raw` (a user's `F` value) with `c` applied; the record must hold at
    /// least the fields through LogonCount.
    pub fn edited(raw: &[u8], c: &FixedChanges, what: &str) -> Result<Vec<u8>> {
        use user_f::*;
        UserFixed::parse(raw, what)?;
        let mut b = raw.to_vec();
        let mut ac = le_u32(&b, ACCOUNT_CONTROL);
        let put64 = |b: &mut Vec<u8>, off: usize, v: u64| b[off..off + 8].copy_from_slice(&v.to_le_bytes());
        if c.enable {
            ac &= !acb::ACCOUNT_DISABLED;
        }
        if c.unlock {
            ac &= !acb::ACCOUNT_AUTO_LOCKED;
            b[BAD_PASSWORD_COUNT..BAD_PASSWORD_COUNT + 2].copy_from_slice(&0u16.to_le_bytes());
            put64(&mut b, LAST_BAD_PASSWORD, 0);
        }
        if c.never_expire {
            put64(&mut b, ACCOUNT_EXPIRES, FileTime::NEVER_MAX);
        }
        if c.clear_password_expired {
            ac &= !acb::PASSWORD_EXPIRED;
        }
        if let Some(t) = c.password_last_set {
            put64(&mut b, PASSWORD_LAST_SET, t.0);
        }
        b[ACCOUNT_CONTROL..ACCOUNT_CONTROL + 4].copy_from_slice(&ac.to_le_bytes());
        Ok(b)
    }
}

/// The key of the user with `rid` (`SAM\Domains\Account\Users\000001F4`).
pub fn user_key(rid: u32) -> String {
    format!(r"{USERS}\{rid:08X}")
}

/// RID of the built-in Administrator.
pub const RID_ADMINISTRATOR: u32 = 500;

// ------------------------------------------------------------ user V record

/// The text attributes of a user's `V` value (the hashes are not read).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UserVariable {
    pub name: String,
    pub full_name: Option<String>,
    pub comment: Option<String>,
    pub user_comment: Option<String>,
}

mod user_v {
    pub const TABLE: usize = 0;
    pub const ATTRIBUTES: usize = 17;
    pub const ACCOUNT_NAME: usize = 1;
    pub const FULL_NAME: usize = 2;
    pub const ADMIN_COMMENT: usize = 3;
    pub const USER_COMMENT: usize = 4;
}

impl UserVariable {
    pub fn parse(b: &[u8], what: &str) -> Result<UserVariable> {
        use user_v::*;
        let a = VarAttrs::new(b, TABLE, ATTRIBUTES, what)?;
        let name = a.text(ACCOUNT_NAME, "account name")?.ok_or_else(|| corrupt(what, ACCOUNT_NAME * VarAttrs::ENTRY_LEN, "empty account name"))?;
        Ok(UserVariable {
            name,
            full_name: a.text(FULL_NAME, "full name")?,
            comment: a.text(ADMIN_COMMENT, "comment")?,
            user_comment: a.text(USER_COMMENT, "user comment")?,
        })
    }
}

// ---------------------------------------------------------- alias C record

/// An alias's `C` value: its RID, name and member SIDs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AliasRecord {
    pub rid: u32,
    pub name: String,
    pub members: Vec<Sid>,
}

mod alias_c {
    pub const RID: usize = 0;
    pub const TABLE: usize = 4;
    pub const ATTRIBUTES: usize = 4;
    pub const NAME: usize = 1;
    pub const MEMBERS: usize = 3;
}

impl AliasRecord {
    pub fn parse(b: &[u8], what: &str) -> Result<AliasRecord> {
        use alias_c::*;
        let a = VarAttrs::new(b, TABLE, ATTRIBUTES, what)?;
        let name = a.text(NAME, "alias name")?.unwrap_or_default();
        let data = a.get(MEMBERS, "member list")?;
        let count = a.qualifier(MEMBERS) as usize;
        // Each SID takes at least 8 bytes: a count that cannot fit is corrupt,
        // and nothing is reserved from it.
        if count > data.len() / 8 {
            return Err(corrupt(what, TABLE + MEMBERS * VarAttrs::ENTRY_LEN + 8, format!("{count} members in a {}-byte list", data.len())));
        }
        let mut members = Vec::new();
        let mut pos = 0;
        let start = a.start(MEMBERS);
        for _ in 0..count {
            let (sid, len) = Sid::parse(&data[pos..], (start + pos) as u64, &format!("{what}: member {}", members.len()))?;
            members.push(sid);
            pos += len;
        }
        if pos != data.len() {
            return Err(corrupt(what, start + pos, format!("{} bytes after the {count} member SIDs", data.len() - pos)));
        }
        Ok(AliasRecord { rid: le_u32(b, RID), name, members })
    }

    pub fn validate(&self, key_rid: u32, what: &str) -> Result<()> {
        if self.rid != key_rid {
            return Err(corrupt(what, alias_c::RID, format!("RID {:#x} but stored under key {key_rid:08X}", self.rid)));
        }
        Ok(())
    }
}

// ------------------------------------------------------- domain F record

/// The account domain's `F` value: password and lockout policy.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct DomainPolicy {
    pub revision: u16,
    pub creation_time: FileTime,
    /// Seconds, or "never" (no maximum).
    pub max_password_age: Interval,
    pub min_password_age: Interval,
    pub force_logoff: Interval,
    /// How long a lockout lasts; "never" = until an administrator unlocks.
    pub lockout_duration: Interval,
    /// Window in which bad passwords are counted.
    pub lockout_observation_window: Interval,
    pub next_rid: u32,
    /// DOMAIN_PASSWORD_* bits (complexity = 1, ...).
    pub password_properties: u32,
    pub min_password_length: u16,
    pub password_history_length: u16,
    /// Bad passwords before lockout; 0 = never locks out.
    pub lockout_threshold: u16,
    pub server_state: u32,
    pub server_role: u16,
}

mod domain_f {
    pub const REVISION: usize = 0x00;
    pub const CREATION_TIME: usize = 0x08;
    pub const MAX_PASSWORD_AGE: usize = 0x18;
    pub const MIN_PASSWORD_AGE: usize = 0x20;
    pub const FORCE_LOGOFF: usize = 0x28;
    pub const LOCKOUT_DURATION: usize = 0x30;
    pub const LOCKOUT_OBSERVATION_WINDOW: usize = 0x38;
    pub const NEXT_RID: usize = 0x48;
    pub const PASSWORD_PROPERTIES: usize = 0x4C;
    pub const MIN_PASSWORD_LENGTH: usize = 0x50;
    pub const PASSWORD_HISTORY_LENGTH: usize = 0x52;
    pub const LOCKOUT_THRESHOLD: usize = 0x54;
    pub const SERVER_STATE: usize = 0x58;
    pub const SERVER_ROLE: usize = 0x5C;
    /// Bytes through ServerRole.
    pub const MIN_LEN: usize = 0x5E;
}

impl DomainPolicy {
    pub fn parse(b: &[u8], what: &str) -> Result<DomainPolicy> {
        use domain_f::*;
        if b.len() < MIN_LEN {
            return Err(corrupt(what, b.len(), format!("{} bytes, the domain record needs {MIN_LEN}", b.len())));
        }
        let i = |o| Interval(le_u64(b, o) as i64);
        Ok(DomainPolicy {
            revision: le_u16(b, REVISION),
            creation_time: FileTime(le_u64(b, CREATION_TIME)),
            max_password_age: i(MAX_PASSWORD_AGE),
            min_password_age: i(MIN_PASSWORD_AGE),
            force_logoff: i(FORCE_LOGOFF),
            lockout_duration: i(LOCKOUT_DURATION),
            lockout_observation_window: i(LOCKOUT_OBSERVATION_WINDOW),
            next_rid: le_u32(b, NEXT_RID),
            password_properties: le_u32(b, PASSWORD_PROPERTIES),
            min_password_length: le_u16(b, MIN_PASSWORD_LENGTH),
            password_history_length: le_u16(b, PASSWORD_HISTORY_LENGTH),
            lockout_threshold: le_u16(b, LOCKOUT_THRESHOLD),
            server_state: le_u32(b, SERVER_STATE),
            server_role: le_u16(b, SERVER_ROLE),
        })
    }
}

/// The account domain's `V` value: (security descriptor, SID, ...).
mod domain_v {
    pub const TABLE: usize = 0;
    pub const ATTRIBUTES: usize = 4;
    pub const SID: usize = 1;
}

/// The account domain SID from the domain's `V` value.
pub fn parse_domain_sid(b: &[u8], what: &str) -> Result<Sid> {
    let a = VarAttrs::new(b, domain_v::TABLE, domain_v::ATTRIBUTES, what)?;
    Sid::parse_exact(a.get(domain_v::SID, "domain SID")?, what)
}

// ------------------------------------------------------------- the result

/// One local account.
#[derive(Debug, Clone, Serialize)]
pub struct Account {
    pub name: String,
    pub rid: u32,
    /// Account domain SID + RID, when the domain SID is known.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sid: Option<Sid>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub full_name: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub comment: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub user_comment: Option<String>,
    /// Raw UserAccountControl and its bit names.
    pub account_control: u32,
    pub flags: Vec<&'static str>,
    pub disabled: bool,
    /// USER_ACCOUNT_AUTO_LOCKED as stored.
    pub locked_out: bool,
    pub password_never_expires: bool,
    /// USER_PASSWORD_EXPIRED as stored.
    pub password_expired: bool,
    /// Must change the password at next logon: expired flag, or password
    /// last set = 0.
    pub must_change_password: bool,
    pub bad_password_count: u16,
    pub logon_count: u16,
    pub last_logon: FileTime,
    pub last_failed_logon: FileTime,
    pub password_last_set: FileTime,
    pub account_expires: FileTime,
}

impl Account {
    fn new(f: &UserFixed, v: UserVariable, domain: Option<&Sid>) -> Account {
        let ac = f.account_control;
        Account {
            name: v.name,
            rid: f.rid,
            sid: domain.map(|d| d.with_rid(f.rid)),
            full_name: v.full_name,
            comment: v.comment,
            user_comment: v.user_comment,
            account_control: ac,
            flags: acb::names(ac),
            disabled: ac & acb::ACCOUNT_DISABLED != 0,
            locked_out: ac & acb::ACCOUNT_AUTO_LOCKED != 0,
            password_never_expires: ac & acb::DONT_EXPIRE_PASSWORD != 0,
            password_expired: ac & acb::PASSWORD_EXPIRED != 0,
            must_change_password: ac & acb::PASSWORD_EXPIRED != 0 || f.password_last_set.0 == 0,
            bad_password_count: f.bad_password_count,
            logon_count: f.logon_count,
            last_logon: f.last_logon,
            last_failed_logon: f.last_bad_password,
            password_last_set: f.password_last_set,
            account_expires: f.account_expires,
        }
    }

    /// Whether the lockout is still in force at `now`: the stored flag (or a
    /// bad-password count at the threshold), and a duration that has not run
    /// out since the last bad password ("never" = until an administrator
    /// unlocks).
    pub fn locked_out_at(&self, policy: &DomainPolicy, now: FileTime) -> bool {
        let counted = policy.lockout_threshold != 0 && self.bad_password_count >= policy.lockout_threshold;
        if !(self.locked_out || counted) {
            return false;
        }
        match policy.lockout_duration.seconds() {
            None | Some(0) => true,
            Some(s) => self.last_failed_logon.0.saturating_add(s.saturating_mul(10_000_000)) > now.0,
        }
    }

    /// Whether the account has expired at `now`.
    pub fn expired_at(&self, now: FileTime) -> bool {
        !self.account_expires.is_never() && self.account_expires.0 <= now.0
    }
}

/// A member of a builtin alias, with a name when it is a local account or a
/// well-known SID.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Member {
    pub sid: Sid,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
}

/// What a SAM hive says about local logons.
#[derive(Debug, Clone, Serialize)]
pub struct Sam {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub domain_sid: Option<Sid>,
    pub accounts: Vec<Account>,
    pub policy: DomainPolicy,
    pub administrators: Vec<Member>,
    pub remote_desktop_users: Vec<Member>,
    /// The SAM of a domain controller holds only the DSRM accounts: its
    /// accounts are not the ones that log on over RDP.
    pub is_domain_controller: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub domain_controller_evidence: Option<String>,
    /// Names under `Users\Names` whose RID has no user record, and the like.
    pub notes: Vec<String>,
}

impl Sam {
    pub fn read(sam: &Hive) -> Result<Sam> {
        let domain = sam.key(ACCOUNT)?;
        let f_what = format!(r"{ACCOUNT} F");
        let policy = DomainPolicy::parse(value(&domain, "F").ok_or_else(|| missing(&f_what))?, &f_what)?;
        let v_what = format!(r"{ACCOUNT} V");
        let domain_sid = value(&domain, "V").map(|v| parse_domain_sid(v, &v_what)).transpose()?;

        let users = sam.key(USERS)?;
        if users.subkeys.len() > MAX_USERS {
            return Err(Error::corrupt(Layer::Hive, 0, format!("{USERS}: {} subkeys", users.subkeys.len())));
        }
        let mut notes = Vec::new();
        let mut accounts = Vec::new();
        for sub in &users.subkeys {
            let Some(rid) = parse_rid(sub) else { continue };
            let path = format!(r"{USERS}\{sub}");
            let key = sam.key(&path)?;
            let (fw, vw) = (format!("{path} F"), format!("{path} V"));
            let f = UserFixed::parse(value(&key, "F").ok_or_else(|| missing(&fw))?, &fw)?;
            f.validate(rid, &fw)?;
            let v = UserVariable::parse(value(&key, "V").ok_or_else(|| missing(&vw))?, &vw)?;
            accounts.push(Account::new(&f, v, domain_sid.as_ref()));
        }
        accounts.sort_by_key(|a| a.rid);

        // Names\<name>: the default value's type is the RID.
        if let Ok(names) = sam.key(NAMES) {
            for n in names.subkeys.iter().take(MAX_USERS) {
                let key = sam.key(&format!(r"{NAMES}\{n}"))?;
                match key.values.iter().find(|v| v.name.is_empty()) {
                    Some(v) => match accounts.iter().find(|a| a.rid == v.kind) {
                        Some(a) if !a.name.eq_ignore_ascii_case(n) => notes.push(format!("Names\\{n} gives RID {:#x}, whose record is named {}", v.kind, a.name)),
                        Some(_) => {}
                        None => notes.push(format!("Names\\{n} gives RID {:#x}, which has no user record", v.kind)),
                    },
                    None => notes.push(format!("Names\\{n} has no default value (no RID)")),
                }
            }
        }

        let mut s = Sam {
            domain_sid,
            accounts,
            policy,
            administrators: Vec::new(),
            remote_desktop_users: Vec::new(),
            is_domain_controller: false,
            domain_controller_evidence: None,
            notes,
        };
        s.administrators = s.alias_members(sam, ALIAS_ADMINISTRATORS)?;
        s.remote_desktop_users = s.alias_members(sam, ALIAS_REMOTE_DESKTOP_USERS)?;
        Ok(s)
    }

    /// Members of builtin alias `rid` (empty when the alias does not exist).
    fn alias_members(&mut self, sam: &Hive, rid: u32) -> Result<Vec<Member>> {
        let path = format!(r"{BUILTIN_ALIASES}\{rid:08X}");
        let key = match sam.key(&path) {
            Ok(k) => k,
            Err(Error::NotFound { .. }) => {
                self.notes.push(format!("{path} is absent"));
                return Ok(Vec::new());
            }
            Err(e) => return Err(e),
        };
        let what = format!("{path} C");
        let c = AliasRecord::parse(value(&key, "C").ok_or_else(|| missing(&what))?, &what)?;
        c.validate(rid, &what)?;
        Ok(c.members.into_iter().map(|sid| Member { name: self.name_of(&sid), sid }).collect())
    }

    /// A local account's name, or a well-known SID's.
    pub fn name_of(&self, sid: &Sid) -> Option<String> {
        if sid.domain().is_some_and(|d| Some(&d) == self.domain_sid.as_ref()) {
            if let Some(a) = self.accounts.iter().find(|a| Some(a.rid) == sid.rid()) {
                return Some(a.name.clone());
            }
        }
        sid.well_known_name().map(str::to_string)
    }

    /// The account with `rid`.
    pub fn account(&self, rid: u32) -> Option<&Account> {
        self.accounts.iter().find(|a| a.rid == rid)
    }

    /// The account named `name` (case-insensitive).
    pub fn account_named(&self, name: &str) -> Option<&Account> {
        self.accounts.iter().find(|a| a.name.eq_ignore_ascii_case(name))
    }

    /// Local accounts that are direct members of Administrators.
    pub fn local_administrators(&self) -> Vec<&Account> {
        self.local_members(&self.administrators)
    }

    fn local_members<'a>(&'a self, members: &[Member]) -> Vec<&'a Account> {
        let Some(d) = &self.domain_sid else { return vec![] };
        members.iter().filter(|m| m.sid.domain().as_ref() == Some(d)).filter_map(|m| m.sid.rid().and_then(|r| self.account(r))).collect()
    }

    /// Mark this SAM as a domain controller's if the SECURITY hive says so.
    pub fn apply_security(&mut self, rights: &Rights) {
        if let Some(why) = rights.domain_controller_evidence() {
            self.mark_domain_controller(why);
        }
    }

    /// Mark this SAM as a domain controller's if SYSTEM's current control set
    /// says `ProductOptions\ProductType` = "LanmanNT" (the authoritative
    /// signal; "WinNT" is a workstation, "ServerNT" a member or standalone
    /// server). Returns the ProductType read, if any.
    pub fn apply_system(&mut self, system: &Hive) -> Option<String> {
        let ccs = crate::hive::source::control_sets(system).current_key;
        let key = system.key(&format!(r"{ccs}\Control\ProductOptions")).ok()?;
        let v = key.values.iter().find(|v| v.name.eq_ignore_ascii_case("ProductType"))?;
        let product = v.string();
        if product.eq_ignore_ascii_case("LanmanNT") {
            self.mark_domain_controller(format!(r"SYSTEM {ccs}\Control\ProductOptions ProductType is LanmanNT"));
        }
        Some(product)
    }

    /// Mark this SAM as a domain controller's, saying why (e.g. SYSTEM's
    /// ProductType is LanmanNT).
    pub fn mark_domain_controller(&mut self, why: impl Into<String>) {
        self.is_domain_controller = true;
        let why = why.into();
        self.domain_controller_evidence = Some(match self.domain_controller_evidence.take() {
            Some(prev) if prev != why => format!("{prev}; {why}"),
            _ => why,
        });
    }

    /// Whether `sid` names the Administrators or Remote Desktop Users alias.
    pub fn is_rdp_alias(sid: &Sid) -> bool {
        *sid == well_known::administrators() || *sid == well_known::remote_desktop_users()
    }
}

/// Default `USERS` subkeys are 8 hex digits.
fn parse_rid(name: &str) -> Option<u32> {
    (name.len() == 8).then(|| u32::from_str_radix(name, 16).ok()).flatten()
}

fn value<'a>(key: &'a Key, name: &str) -> Option<&'a [u8]> {
    key.values.iter().find(|v| v.name.eq_ignore_ascii_case(name)).map(|v| &v.raw[..])
}

fn missing(what: &str) -> Error {
    Error::corrupt(Layer::Hive, 0, format!("{what}: value missing"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn triples(attrs: &[&[u8]], qualifiers: &[u32]) -> (Vec<u8>, Vec<u8>) {
        let (mut table, mut data) = (Vec::new(), Vec::new());
        for (i, a) in attrs.iter().enumerate() {
            table.extend((data.len() as u32).to_le_bytes());
            table.extend((a.len() as u32).to_le_bytes());
            table.extend(qualifiers.get(i).copied().unwrap_or(0).to_le_bytes());
            data.extend_from_slice(a);
        }
        (table, data)
    }

    fn utf16(s: &str) -> Vec<u8> {
        s.encode_utf16().flat_map(|u| u.to_le_bytes()).collect()
    }

    fn user_v(name: &str) -> Vec<u8> {
        let n = utf16(name);
        let full = utf16("Full");
        let mut attrs: Vec<&[u8]> = vec![b"sd", &n, &full];
        attrs.resize(17, b"");
        let (mut t, d) = triples(&attrs, &[]);
        t.extend(d);
        t
    }

    fn alias_c(rid: u32, members: &[Sid]) -> Vec<u8> {
        let m: Vec<u8> = members.iter().flat_map(|s| s.to_bytes()).collect();
        let name = utf16("Administrators");
        let (t, d) = triples(&[b"", &name, b"", &m], &[0, 0, 0, members.len() as u32]);
        let mut v = rid.to_le_bytes().to_vec();
        v.extend(t);
        v.extend(d);
        v
    }

    fn is_corrupt(r: Result<impl std::fmt::Debug>, what: &str) {
        match r {
            Err(Error::Corrupt { layer: Layer::Hive, msg, .. }) => assert!(msg.starts_with(what), "{msg}"),
            other => panic!("expected a Corrupt error for {what}, got {other:?}"),
        }
    }

    #[test]
    fn user_records() {
        let mut f = vec![0u8; 0x50];
        f[0x30..0x34].copy_from_slice(&0x1f4u32.to_le_bytes());
        f[0x38..0x3c].copy_from_slice(&0x211u32.to_le_bytes());
        f[0x40] = 3;
        f[0x20..0x28].copy_from_slice(&i64::MAX.to_le_bytes());
        let uf = UserFixed::parse(&f, "F").unwrap();
        uf.validate(0x1f4, "F").unwrap();
        is_corrupt(uf.validate(0x1f5, "F"), "F: RID");
        let a = Account::new(&uf, UserVariable::parse(&user_v("Administrator"), "V").unwrap(), None);
        assert!(a.disabled && a.password_never_expires && !a.locked_out && a.must_change_password);
        assert_eq!(a.flags, ["disabled", "normal-account", "password-never-expires"]);
        assert_eq!(a.bad_password_count, 3);
        assert_eq!(a.account_expires.iso(), "never");
        assert_eq!(a.full_name.as_deref(), Some("Full"));
        // Truncated F records.
        for n in [0, 8, 0x43] {
            is_corrupt(UserFixed::parse(&f[..n], "U F"), "U F: ");
        }
    }

    #[test]
    fn hostile_user_v() {
        let v = user_v("Bob");
        assert_eq!(UserVariable::parse(&v, "V").unwrap().name, "Bob");
        // Truncated table, truncated data.
        for n in [0, 11, 17 * 12 - 1, v.len() - 1] {
            is_corrupt(UserVariable::parse(&v[..n], "X V"), "X V: ");
        }
        // Offset past the end, huge length, offset+length overflow, odd length.
        for (field, val) in [(12, 0x1000u32), (16, u32::MAX), (12, u32::MAX), (16, 5)] {
            let mut b = v.clone();
            b[field..field + 4].copy_from_slice(&val.to_le_bytes());
            is_corrupt(UserVariable::parse(&b, "X V"), "X V: ");
        }
    }

    #[test]
    fn alias_members() {
        let a = Sid::from_string("S-1-5-21-1-2-3-500").unwrap();
        let b = Sid::from_string("S-1-5-11").unwrap();
        let c = alias_c(0x220, &[a.clone(), b.clone()]);
        let r = AliasRecord::parse(&c, "C").unwrap();
        assert_eq!(r.members, vec![a, b]);
        assert_eq!(r.name, "Administrators");
        r.validate(0x220, "C").unwrap();
        // Huge member count: clean error, nothing allocated from it.
        let mut h = c.clone();
        h[4 + 3 * 12 + 8..4 + 3 * 12 + 12].copy_from_slice(&u32::MAX.to_le_bytes());
        is_corrupt(AliasRecord::parse(&h, "A C"), "A C: ");
        // Count one too high: the next SID runs off the list.
        let mut h = c.clone();
        h[4 + 3 * 12 + 8] = 3;
        is_corrupt(AliasRecord::parse(&h, "A C"), "A C: ");
        // Count one too low: bytes left over.
        let mut h = c.clone();
        h[4 + 3 * 12 + 8] = 1;
        is_corrupt(AliasRecord::parse(&h, "A C"), "A C: ");
        // Truncations anywhere.
        for n in 0..c.len() {
            assert!(AliasRecord::parse(&c[..n], "A C").is_err(), "{n}");
        }
    }

    #[test]
    fn domain_policy() {
        let mut f = vec![0u8; 0x68];
        f[0x18..0x20].copy_from_slice(&i64::MIN.to_le_bytes());
        f[0x30..0x38].copy_from_slice(&(-18_000_000_000i64).to_le_bytes());
        f[0x54] = 10;
        let p = DomainPolicy::parse(&f, "D F").unwrap();
        assert_eq!(p.max_password_age.seconds(), None);
        assert_eq!(p.lockout_duration.seconds(), Some(1800));
        assert_eq!(p.lockout_threshold, 10);
        is_corrupt(DomainPolicy::parse(&f[..0x5d], "D F"), "D F: ");
        assert_eq!(serde_json::to_value(p.max_password_age).unwrap(), serde_json::json!("never"));
    }

    #[test]
    fn fixed_record_edits_touch_only_their_fields() {
        let mut f: Vec<u8> = (0..0x50u8).collect();
        f[0x38..0x3c].copy_from_slice(&(acb::ACCOUNT_DISABLED | acb::NORMAL_ACCOUNT | acb::ACCOUNT_AUTO_LOCKED | acb::PASSWORD_EXPIRED).to_le_bytes());
        let all = FixedChanges { enable: true, unlock: true, never_expire: true, clear_password_expired: true, password_last_set: Some(FileTime(0x01D8_8655_2789_23CB)) };
        let e = UserFixed::edited(&f, &all, "F").unwrap();
        let u = UserFixed::parse(&e, "F").unwrap();
        assert_eq!(u.account_control, acb::NORMAL_ACCOUNT);
        assert_eq!((u.bad_password_count, u.last_bad_password, u.account_expires.0), (0, FileTime(0), FileTime::NEVER_MAX));
        assert_eq!(u.password_last_set, FileTime(0x01D8_8655_2789_23CB));
        // Every other byte is the record's own.
        let changed: Vec<usize> = (0..f.len()).filter(|&i| f[i] != e[i]).collect();
        let allowed = |i: usize| (0x18..0x30).contains(&i) || (0x38..0x3c).contains(&i) || (0x40..0x42).contains(&i);
        assert!(changed.iter().all(|&i| allowed(i)), "{changed:x?}");
        // One change at a time; no change is the same record.
        assert_eq!(UserFixed::edited(&f, &FixedChanges::default(), "F").unwrap(), f);
        let only = UserFixed::edited(&f, &FixedChanges { enable: true, ..Default::default() }, "F").unwrap();
        assert_eq!(le_u32(&only, 0x38), acb::NORMAL_ACCOUNT | acb::ACCOUNT_AUTO_LOCKED | acb::PASSWORD_EXPIRED);
        assert_eq!(all.describe().len(), 5);
        assert!(FixedChanges::default().is_empty() && FixedChanges::default().describe().is_empty());
        // A short record is refused, not padded.
        is_corrupt(UserFixed::edited(&f[..0x40], &all, "U F"), "U F: ");
        assert_eq!(user_key(500), r"SAM\Domains\Account\Users\000001F4");
    }

    #[test]
    fn lockout_in_time() {
        let mut f = vec![0u8; 0x50];
        f[0x38] = 0x10;
        f[0x40] = 5;
        f[0x28..0x30].copy_from_slice(&1_000_000_000u64.to_le_bytes());
        let a = Account::new(&UserFixed::parse(&f, "F").unwrap(), UserVariable::parse(&user_v("u"), "V").unwrap(), None);
        let mut p = DomainPolicy::parse(&[0u8; 0x60], "D").unwrap();
        assert!(!a.locked_out_at(&p, FileTime(0)), "threshold 0 never locks");
        p.lockout_threshold = 5;
        p.lockout_duration = Interval(-600 * 10_000_000);
        assert!(a.locked_out_at(&p, FileTime(1_000_000_000 + 599 * 10_000_000)));
        assert!(!a.locked_out_at(&p, FileTime(1_000_000_000 + 601 * 10_000_000)));
        p.lockout_duration = Interval(i64::MIN);
        assert!(a.locked_out_at(&p, FileTime(u64::MAX)));
    }
}
