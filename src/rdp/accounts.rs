//! Who may log on: the checks on local accounts (SAM) and logon rights
//! (SECURITY), and the edits that fix them.
//!
//! The SAM rows look at the accounts that can log on over RDP: direct members
//! of Administrators and Remote Desktop Users. An account is *usable* when it
//! is enabled, not locked out and not expired. A lockout counts only when it
//! does not end by itself: the domain's lockout duration is "until an
//! administrator unlocks", or "now" is still inside it. Offline there is no
//! clock, so "now" is the newest time Windows itself wrote while it ran: the
//! SYSTEM `Control\Windows\ShutdownTime` and the SAM users' last logon, last
//! bad password and password-change times. Hive headers and key times are not
//! used: a rescue VM's `reg load` and rdprescue's own writer update them.
//!
//! The rights rows follow the token a local administrator gets: its own SID,
//! Everyone, Authenticated Users, Local account (S-1-5-113), Local account and
//! member of Administrators (S-1-5-114), Administrators, Users, and for an RDP
//! logon Interactive / Remote Interactive Logon, for the network logon NLA
//! needs Network. A Deny right on any of them refuses the logon; the allow
//! right must be held by at least one.
//!
//! Fixes are typed edits of a user's `F` value (the fixed record, changed
//! bits and fields only, see `sam::UserFixed::edited`) and of
//! `Policy\Accounts\<SID>\ActSysAc`; an account object that does not exist is
//! created the way Windows stores one (key default REG_BINARY empty; `Sid`,
//! `SecDesc`, `ActSysAc` default values REG_NONE; the security descriptor
//! every other account object of the hive carries). Every finding about one
//! account (or one SID) carries the same edit, computed from all the fixes
//! rdprescue finds for it, so `fix --all` never writes two versions of one
//! value. Passwords are never written: resetting one is out of scope (use
//! VMAccess or `az vm user update` once the VM boots).
//!
//! On a domain controller the SAM holds only the Directory Services Restore
//! Mode account: the SAM rows say so and check nothing.

use super::check::{Check, Out, Remedy, RDP_TCP, TS_POLICY};
use super::{Ctx, Setting};
use crate::hive::edit::{Edit, RegData};
use crate::hive::lsa::{self, well_known, LogonRight, Rights, Sid};
use crate::hive::sam::{self, Account, FileTime, FixedChanges, Sam, UserFixed, RID_ADMINISTRATOR};
use crate::hive::source::HiveKind::{Sam as SamHive, Security, Software, System};
use serde_json::{json, Value as J};
use std::collections::{BTreeMap, BTreeSet};

const PASSWORD_RESET: &str = "rdprescue never writes passwords: to reset one, boot the VM and use the VMAccess extension (`az vm user update -u NAME -p PASSWORD`, or \"Reset password\" in the portal)";
const NTDS_PARAMETERS: &str = r"{CCS}\Services\NTDS\Parameters";

/// "Name (SID)" for a SID, with the local account name when it is one.
fn sid_name(sid: &Sid, sam: Option<&Sam>) -> String {
    match sam.and_then(|s| s.name_of(sid)).or_else(|| sid.well_known_name().map(str::to_string)) {
        Some(n) => format!("{n} ({sid})"),
        None => sid.to_string(),
    }
}

fn account_name(a: &Account) -> String {
    match &a.sid {
        Some(s) => format!("{} ({s})", a.name),
        None => format!("{} (RID {})", a.name, a.rid),
    }
}

// ------------------------------------------------------------------ reading

/// The SAM as the account rows see it.
pub(crate) struct SamView {
    pub sam: Sam,
    /// "now": the newest Windows-written time, and where it comes from.
    pub now: Option<(FileTime, String)>,
    /// Whether Network Level Authentication is required (effective
    /// UserAuthentication = 1, the default).
    pub nla: bool,
    /// RIDs the account rows want enabled.
    enable: BTreeSet<u32>,
}

/// Effective UserAuthentication (policy over local, default 1).
pub(crate) fn nla_on(ctx: &Ctx) -> bool {
    let pol = if ctx.has(Software) { ctx.dword(Software, TS_POLICY, "UserAuthentication") } else { None };
    pol.or_else(|| ctx.dword(System, RDP_TCP, "UserAuthentication")).unwrap_or(1) == 1
}

/// "now = 2024-01-01T00:00:00Z (the newest ...: X)".
fn now_text(now: &Option<(FileTime, String)>) -> String {
    match now {
        Some((t, what)) => format!("\"now\" = {} (the newest timestamp in the hives: {what})", t.iso()),
        None => "no timestamp found in the hives to stand for \"now\"".into(),
    }
}

/// The SECURITY hive's rights: None without the hive, Err when unreadable.
fn rights(ctx: &Ctx) -> Option<Result<Rights, String>> {
    ctx.hive(Security).map(|h| Rights::read(h).map_err(|e| e.to_string()))
}

impl SamView {
    /// None without a SAM hive; Err (one line) when it cannot be read.
    pub fn load(ctx: &Ctx) -> Option<Result<SamView, String>> {
        let hive = ctx.hive(SamHive)?;
        let mut sam = match Sam::read(hive) {
            Ok(s) => s,
            Err(e) => return Some(Err(e.to_string())),
        };
        if let Some(sys) = ctx.hive(System) {
            sam.apply_system(sys);
        }
        if let Some(Ok(r)) = rights(ctx) {
            sam.apply_security(&r);
        }
        if ctx.shared_key(System, NTDS_PARAMETERS).is_some() {
            sam.mark_domain_controller(format!("{} exists (Active Directory Domain Services is installed)", ctx.full(System, NTDS_PARAMETERS)));
        }
        let now = super::now::windows_ran(ctx, Some(&sam));
        let mut v = SamView { sam, now, nla: nla_on(ctx), enable: BTreeSet::new() };
        let mut enable: BTreeSet<u32> = v.disabled_in_use().iter().map(|a| a.rid).collect();
        if let Some(a) = v.no_usable_admin_target() {
            enable.insert(a.rid);
        }
        v.enable = enable;
        Some(Ok(v))
    }

    fn now(&self) -> Option<FileTime> {
        self.now.as_ref().map(|n| n.0)
    }

    pub fn is_admin(&self, a: &Account) -> bool {
        self.sam.local_administrators().iter().any(|x| x.rid == a.rid)
    }

    pub fn is_rdp_user(&self, a: &Account) -> bool {
        let Some(sid) = &a.sid else { return false };
        self.sam.remote_desktop_users.iter().any(|m| &m.sid == sid)
    }

    /// Accounts that may log on over RDP: members of Administrators or
    /// Remote Desktop Users.
    pub fn rdp_accounts(&self) -> Vec<&Account> {
        self.sam.accounts.iter().filter(|a| self.is_admin(a) || self.is_rdp_user(a)).collect()
    }

    /// Locked out now (a lockout that has not run out).
    pub fn locked(&self, a: &Account) -> bool {
        a.locked_out_at(&self.sam.policy, self.now().unwrap_or(FileTime(u64::MAX >> 1)))
            || (self.now().is_none() && a.locked_out)
    }

    pub fn expired(&self, a: &Account) -> bool {
        self.now().is_some_and(|n| a.expired_at(n))
    }

    /// The password is older than the domain's maximum password age.
    pub fn password_aged(&self, a: &Account) -> bool {
        let (Some(now), Some(max)) = (self.now(), self.sam.policy.max_password_age.seconds()) else { return false };
        max != 0 && !a.password_never_expires && a.password_last_set.0 != 0 && a.password_last_set.0.saturating_add(max.saturating_mul(10_000_000)) <= now.0
    }

    /// Must change the password before logging on (NLA cannot do that).
    pub fn must_change(&self, a: &Account) -> bool {
        a.must_change_password || self.password_aged(a)
    }

    pub fn usable(&self, a: &Account) -> bool {
        !a.disabled && !self.locked(a) && !self.expired(a)
    }

    /// Disabled administrators that were in use (logged on at least once).
    /// The built-in Administrator under its own name is left out while
    /// another administrator is enabled: Windows disables it by default.
    pub fn disabled_in_use(&self) -> Vec<&Account> {
        let admins = self.sam.local_administrators();
        let other_enabled = |rid: u32| admins.iter().any(|a| a.rid != rid && !a.disabled);
        admins
            .iter()
            .copied()
            .filter(|a| a.disabled && (a.logon_count > 0 || !a.last_logon.is_never()))
            .filter(|a| !(a.rid == RID_ADMINISTRATOR && a.name.eq_ignore_ascii_case("Administrator") && other_enabled(a.rid)))
            .collect()
    }

    /// With no usable administrator: the one to restore (the most recently
    /// used; the built-in Administrator when none logged on).
    pub fn no_usable_admin_target(&self) -> Option<&Account> {
        let admins = self.sam.local_administrators();
        if admins.is_empty() || admins.iter().any(|a| self.usable(a)) {
            return None;
        }
        admins.iter().copied().max_by_key(|a| (a.last_logon.0 * u64::from(!a.last_logon.is_never()), a.rid == RID_ADMINISTRATOR))
    }

    /// Every change rdprescue makes to `a`'s F record (`force_enable`: the
    /// unlock-admin profile enables it whatever the checks said).
    pub fn changes(&self, a: &Account, force_enable: bool) -> FixedChanges {
        let counted = self.sam.policy.lockout_threshold != 0 && a.bad_password_count >= self.sam.policy.lockout_threshold;
        let must = self.nla && self.must_change(a) && (!a.disabled || force_enable);
        FixedChanges {
            enable: a.disabled && (force_enable || self.enable.contains(&a.rid)),
            unlock: a.locked_out || counted,
            never_expire: self.expired(a),
            clear_password_expired: must && a.password_expired,
            password_last_set: self.now().filter(|_| must && (a.password_last_set.0 == 0 || self.password_aged(a))),
        }
    }

    /// The edit of `a`'s F with all its changes, or why there is none.
    pub fn f_edit(&self, ctx: &Ctx, a: &Account, force_enable: bool) -> Result<Option<Edit>, String> {
        let c = self.changes(a, force_enable);
        if c.is_empty() {
            return Ok(None);
        }
        let key = sam::user_key(a.rid);
        let v = ctx.value(SamHive, &key, "F").ok_or_else(|| format!("{} has no F value", ctx.full(SamHive, &key)))?;
        let new = UserFixed::edited(&v.raw, &c, &format!("{key} F")).map_err(|e| e.to_string())?;
        Ok(Some(Edit::set(SamHive, key, "F", RegData::from_raw(v.kind, &new))))
    }

    /// A finding's remedy: the F edits of `accounts`.
    fn remedy(&self, ctx: &Ctx, accounts: &[&Account]) -> Remedy {
        let mut edits = Vec::new();
        for a in accounts {
            match self.f_edit(ctx, a, false) {
                Ok(Some(e)) => edits.push(e),
                Ok(None) => {}
                Err(why) => return Remedy::Manual(why),
            }
        }
        Remedy::Actions(edits)
    }

    /// "Administrators, Remote Desktop Users" for an account.
    fn groups(&self, a: &Account) -> String {
        let mut g = Vec::new();
        if self.is_admin(a) {
            g.push("Administrators");
        }
        if self.is_rdp_user(a) {
            g.push("Remote Desktop Users");
        }
        if g.is_empty() {
            "no RDP group".into()
        } else {
            g.join(", ")
        }
    }

    /// One account's state in words.
    fn state(&self, a: &Account) -> String {
        let mut s = vec![if a.disabled { "disabled" } else { "enabled" }.to_string()];
        if self.locked(a) {
            s.push(format!("locked out ({} bad passwords, last {})", a.bad_password_count, a.last_failed_logon.iso()));
        }
        if self.expired(a) {
            s.push(format!("expired {}", a.account_expires.iso()));
        }
        if self.must_change(a) {
            s.push(if self.password_aged(a) { "password older than the maximum age".into() } else { "must change password".to_string() });
        }
        s.join(", ")
    }

    /// What the changes of `a` do, in words.
    fn change_text(&self, a: &Account) -> String {
        let d = self.changes(a, false).describe();
        if d.is_empty() {
            String::new()
        } else {
            format!("; the fix rewrites {}'s F record: {}", a.name, d.join(", "))
        }
    }
}

/// The SAM view, or the note saying why the SAM rows check nothing (then
/// None). Only the first SAM row (`no-enabled-admin`) writes the note.
fn view(ctx: &Ctx, c: &Check, out: &mut Out) -> Option<SamView> {
    let first = c.id == "no-enabled-admin";
    match SamView::load(ctx)? {
        Err(e) => {
            if first {
                out.note(c, format!("the SAM hive cannot be read ({e}): the local accounts are not checked"));
            }
            None
        }
        Ok(v) if v.sam.is_domain_controller => {
            if first {
                let why = v.sam.domain_controller_evidence.clone().unwrap_or_default();
                out.note(c, format!("this is a domain controller ({why}): its SAM holds only the Directory Services Restore Mode account, so the local-account checks are skipped; domain accounts are managed on another DC"));
            }
            None
        }
        Ok(v) => Some(v),
    }
}

// ------------------------------------------------------------- SAM rows

pub(crate) fn no_enabled_admin(ctx: &Ctx, c: &Check, out: &mut Out) {
    let Some(v) = view(ctx, c, out) else { return };
    account_settings(ctx, c, &v, out);
    let admins = v.sam.local_administrators();
    if admins.is_empty() {
        return out.finding(
            c,
            c.id,
            c.severity,
            "no local account is a member of Administrators: only domain accounts can administer the VM, and none can log on if the domain is unreachable".into(),
            Remedy::Manual(format!("add a local administrator after boot with the VMAccess extension (`az vm user update -u NAME -p PASSWORD` creates one); {PASSWORD_RESET}")),
        );
    }
    let Some(target) = v.no_usable_admin_target() else { return };
    let listed: Vec<String> = admins.iter().map(|a| format!("{} [{}]", account_name(a), v.state(a))).collect();
    let msg = format!(
        "{} (local administrators: {}); {}; the fix restores {}, the most recently used{}",
        c.explain,
        listed.join("; "),
        now_text(&v.now),
        target.name,
        v.change_text(target)
    );
    out.finding(c, c.id, c.severity, msg, v.remedy(ctx, &[target]));
}

pub(crate) fn admin_disabled(ctx: &Ctx, c: &Check, out: &mut Out) {
    let Some(v) = view(ctx, c, out) else { return };
    let hit = v.disabled_in_use();
    for a in &hit {
        let last = if a.last_logon.is_never() { "never logged on".to_string() } else { format!("last logon {}", a.last_logon.iso()) };
        let msg = format!("{} is a member of {} and was in use ({} logons, {last}) but is disabled: \"your account has been disabled\"{}", account_name(a), v.groups(a), a.logon_count, v.change_text(a));
        out.finding(c, c.id, c.severity, msg, v.remedy(ctx, &[a]));
    }
    if let Some(b) = v.sam.account(RID_ADMINISTRATOR).filter(|b| b.disabled && !hit.iter().any(|h| h.rid == b.rid)) {
        if v.is_admin(b) {
            out.note(c, format!("the built-in Administrator (RID 500), {}, is disabled (Windows' default when another administrator exists); `fix --profile unlock-admin` enables it", account_name(b)));
        }
    }
}

pub(crate) fn account_locked(ctx: &Ctx, c: &Check, out: &mut Out) {
    let Some(v) = view(ctx, c, out) else { return };
    let p = &v.sam.policy;
    let duration = match p.lockout_duration.seconds() {
        None | Some(0) => "until an administrator unlocks it".to_string(),
        Some(s) => format!("{} min", s / 60),
    };
    for a in v.rdp_accounts() {
        let counted = p.lockout_threshold != 0 && a.bad_password_count >= p.lockout_threshold;
        if !(a.locked_out || counted) || a.disabled {
            continue;
        }
        let detail = format!(
            "{} bad passwords (threshold {}), last at {}; lockout duration {duration}",
            a.bad_password_count,
            p.lockout_threshold,
            a.last_failed_logon.iso()
        );
        if v.locked(a) {
            let msg = format!("{} ({}) is locked out: \"the user account has been locked out\" ({detail}; {}){}", account_name(a), v.groups(a), now_text(&v.now), v.change_text(a));
            out.finding(c, c.id, c.severity, msg, v.remedy(ctx, &[a]));
        } else {
            out.note(c, format!("{} was locked out but the lockout has run out ({detail}; {}); the stale lockout fields are harmless", account_name(a), now_text(&v.now)));
        }
    }
}

pub(crate) fn account_expired(ctx: &Ctx, c: &Check, out: &mut Out) {
    let Some(v) = view(ctx, c, out) else { return };
    for a in v.rdp_accounts().into_iter().filter(|a| !a.disabled && v.expired(a)) {
        let msg = format!("{} ({}) expired on {} ({}){}", account_name(a), v.groups(a), a.account_expires.iso(), now_text(&v.now), v.change_text(a));
        out.finding(c, c.id, c.severity, msg, v.remedy(ctx, &[a]));
    }
}

pub(crate) fn password_must_change(ctx: &Ctx, c: &Check, out: &mut Out) {
    let Some(v) = view(ctx, c, out) else { return };
    if !v.nla {
        return;
    }
    for a in v.rdp_accounts().into_iter().filter(|a| !a.disabled && v.must_change(a)) {
        let why = if v.password_aged(a) {
            format!(
                "its password was set {} and the maximum password age is {} days ({})",
                a.password_last_set.iso(),
                v.sam.policy.max_password_age.seconds().unwrap_or(0) / 86_400,
                now_text(&v.now)
            )
        } else if a.password_expired {
            "its password is marked expired".to_string()
        } else {
            "it must change its password at next logon (PasswordLastSet = 0)".to_string()
        };
        let msg = format!(
            "{} ({}): {why}; with Network Level Authentication the client cannot change it and the logon fails{}; alternatives: the `disable-nla` profile (change it at the logon screen, then turn NLA back on), or reset it after boot ({PASSWORD_RESET})",
            account_name(a),
            v.groups(a),
            v.change_text(a)
        );
        let remedy = if v.now.is_none() { Remedy::Manual(format!("no timestamp in the hives to set PasswordLastSet to; {PASSWORD_RESET}")) } else { v.remedy(ctx, &[a]) };
        out.finding(c, c.id, c.severity, msg, remedy);
    }
}

/// Settings rows: each account that may log on over RDP, the built-in
/// Administrator, the lockout and password policy, and "now".
fn account_settings(ctx: &Ctx, c: &Check, v: &SamView, out: &mut Out) {
    let mut shown: Vec<&Account> = v.rdp_accounts();
    if let Some(b) = v.sam.account(RID_ADMINISTRATOR) {
        if !shown.iter().any(|a| a.rid == b.rid) {
            shown.insert(0, b);
        }
    }
    for a in shown {
        let key = sam::user_key(a.rid);
        let mut local = serde_json::to_value(a).unwrap_or(J::Null);
        if let J::Object(m) = &mut local {
            m.insert("groups".into(), J::from(v.groups(a)));
        }
        out.setting(Setting {
            id: c.id,
            path: ctx.full(SamHive, &key),
            name: format!("F ({})", a.name),
            local,
            policy_path: None,
            policy: J::Null,
            effective: J::from(format!("{}; {}", v.state(a), v.groups(a))),
            source: "local",
        });
    }
    let p = &v.sam.policy;
    let secs = |i: sam::Interval| i.seconds().map_or(J::from("never"), J::from);
    out.setting(Setting {
        id: c.id,
        path: ctx.full(SamHive, sam::ACCOUNT),
        name: "F (lockout and password policy)".into(),
        local: serde_json::to_value(p).unwrap_or(J::Null),
        policy_path: None,
        policy: J::Null,
        effective: json!({
            "lockout_threshold": p.lockout_threshold,
            "lockout_duration": secs(p.lockout_duration),
            "lockout_observation_window": secs(p.lockout_observation_window),
            "max_password_age": secs(p.max_password_age),
        }),
        source: "local",
    });
    out.setting(Setting {
        id: c.id,
        path: ctx.full(SamHive, sam::USERS),
        name: "now (newest timestamp in the hives)".into(),
        local: v.now.as_ref().map_or(J::Null, |n| J::from(n.1.clone())),
        policy_path: None,
        policy: J::Null,
        effective: v.now.as_ref().map_or(J::Null, |n| J::from(n.0.iso())),
        source: if v.now.is_some() { "local" } else { "missing" },
    });
}

// ------------------------------------------------------------ rights rows

fn sid(s: &str) -> Sid {
    Sid::from_string(s).unwrap_or_else(well_known::everyone)
}

/// Groups in every local administrator's token (without the account's own
/// SID), for an RDP logon (`rdp`) or a network logon.
pub(crate) fn admin_token(rdp: bool) -> Vec<Sid> {
    let mut v = vec![
        well_known::everyone(),
        well_known::authenticated_users(),
        well_known::local_account(),
        well_known::local_account_and_admin(),
        well_known::administrators(),
        well_known::users(),
    ];
    if rdp {
        v.extend([sid("S-1-5-4"), sid("S-1-5-14")]);
    } else {
        v.push(sid("S-1-5-2"));
    }
    v
}

/// SIDs the settings rows show.
fn shown_sids() -> Vec<Sid> {
    let mut v = admin_token(true);
    v.extend([well_known::remote_desktop_users(), sid("S-1-5-2")]);
    v
}

/// What the rights rows found, and the ActSysAc each SID should get.
pub(crate) struct RightsPlan {
    pub rights: Rights,
    pub nla: bool,
    pub deny_rdp: Vec<Sid>,
    pub allow_rdp: Vec<Sid>,
    pub deny_net: Vec<Sid>,
    pub allow_net: Vec<Sid>,
    /// Target ActSysAc per SID (only SIDs that change).
    pub targets: BTreeMap<Sid, u32>,
}

impl RightsPlan {
    /// `force_admin_rdp`: give Administrators SeRemoteInteractiveLogonRight
    /// even when another SID of the token holds it (the unlock-admin profile).
    pub fn new(rights: Rights, sam: Option<&Sam>, extra: &[Sid], nla: bool, force_admin_rdp: bool) -> RightsPlan {
        let own: Vec<Sid> = sam.filter(|s| !s.is_domain_controller).map(|s| s.local_administrators().iter().filter_map(|a| a.sid.clone()).collect()).unwrap_or_default();
        let mut rdp_token = admin_token(true);
        let mut net_token = admin_token(false);
        for s in own.iter().chain(extra) {
            if !rdp_token.contains(s) {
                rdp_token.push(s.clone());
                net_token.push(s.clone());
            }
        }
        let holders = |token: &[Sid], r: LogonRight| -> Vec<Sid> { token.iter().filter(|s| rights.get(s).is_some_and(|a| a.logon_rights.contains(&r))).cloned().collect() };
        let deny_rdp = holders(&rdp_token, LogonRight::DenyRemoteInteractive);
        let allow_rdp = holders(&rdp_token, LogonRight::RemoteInteractive);
        let deny_net = holders(&net_token, LogonRight::DenyNetwork);
        let allow_net = holders(&net_token, LogonRight::Network);
        let mut targets: BTreeMap<Sid, u32> = BTreeMap::new();
        let cur = |s: &Sid, t: &BTreeMap<Sid, u32>| t.get(s).copied().or_else(|| rights.get(s).and_then(|a| a.system_access)).unwrap_or(0);
        let change = |s: &Sid, clear: u32, set: u32, t: &mut BTreeMap<Sid, u32>| {
            let m = (cur(s, t) & !clear) | set;
            t.insert(s.clone(), m);
        };
        for s in &deny_rdp {
            change(s, LogonRight::DenyRemoteInteractive.bit(), 0, &mut targets);
        }
        let admins = well_known::administrators();
        if allow_rdp.is_empty() || (force_admin_rdp && !allow_rdp.contains(&admins)) {
            change(&admins, 0, LogonRight::RemoteInteractive.bit(), &mut targets);
        }
        if nla {
            for s in &deny_net {
                change(s, LogonRight::DenyNetwork.bit(), 0, &mut targets);
            }
            if allow_net.is_empty() {
                change(&admins, 0, LogonRight::Network.bit(), &mut targets);
            }
        }
        targets.retain(|s, m| rights.get(s).and_then(|a| a.system_access) != Some(*m));
        RightsPlan { rights, nla, deny_rdp, allow_rdp, deny_net, allow_net, targets }
    }

    /// The edits giving `sid` its target ActSysAc (creating the account
    /// object when it does not exist), or why they cannot be made.
    pub fn edits(&self, sid: &Sid) -> Result<Vec<Edit>, String> {
        let Some(&mask) = self.targets.get(sid) else { return Ok(Vec::new()) };
        let data = |b: Vec<u8>| RegData::Other(lsa::ATTRIBUTE_TYPE, b);
        let mask_bytes = mask.to_le_bytes().to_vec();
        if let Some(a) = self.rights.get(sid) {
            return Ok(vec![Edit::set(Security, format!(r"{}\ActSysAc", a.key), "", data(mask_bytes))]);
        }
        let sd = self.rights.common_sec_desc().ok_or_else(|| format!("{} has no account object to copy a security descriptor from; grant the right after boot (secpol.msc, or `secedit /configure ... /areas USER_RIGHTS`)", lsa::ACCOUNTS))?;
        let key = lsa::account_key(sid);
        Ok(vec![
            Edit::set(Security, key.clone(), "", RegData::Binary(Vec::new())),
            Edit::set(Security, format!(r"{key}\Sid"), "", data(sid.to_bytes())),
            Edit::set(Security, format!(r"{key}\SecDesc"), "", data(sd.to_vec())),
            Edit::set(Security, format!(r"{key}\ActSysAc"), "", data(mask_bytes)),
        ])
    }

    fn remedy(&self, sids: &[Sid]) -> Remedy {
        let mut out = Vec::new();
        for s in sids {
            match self.edits(s) {
                Ok(e) => out.extend(e),
                Err(why) => return Remedy::Manual(why),
            }
        }
        Remedy::Actions(out)
    }

    /// Every edit of the plan.
    pub fn all_edits(&self) -> Result<Vec<Edit>, String> {
        let mut out = Vec::new();
        for s in self.targets.keys() {
            out.extend(self.edits(s)?);
        }
        Ok(out)
    }
}

/// The rights plan of this machine, or None (no SECURITY hive) / a note.
fn rights_plan(ctx: &Ctx, c: &Check, out: &mut Out) -> Option<(RightsPlan, Option<Sam>)> {
    let rights = match rights(ctx)? {
        Ok(r) => r,
        Err(e) => {
            if c.id == "user-rights-deny-rdp" {
                out.note(c, format!("the SECURITY hive cannot be read ({e}): logon rights are not checked"));
            }
            return None;
        }
    };
    let sam = SamView::load(ctx).and_then(Result::ok).map(|v| v.sam);
    Some((RightsPlan::new(rights, sam.as_ref(), &[], nla_on(ctx), false), sam))
}

fn names(sids: &[Sid], sam: Option<&Sam>) -> String {
    sids.iter().map(|s| sid_name(s, sam)).collect::<Vec<_>>().join(", ")
}

fn admins_text(sam: Option<&Sam>) -> String {
    let a: Vec<String> = sam.filter(|s| !s.is_domain_controller).map(|s| s.local_administrators().iter().map(|a| a.name.clone()).collect()).unwrap_or_default();
    if a.is_empty() {
        "every administrator".into()
    } else {
        format!("every administrator ({})", a.join(", "))
    }
}

pub(crate) fn rights_deny_rdp(ctx: &Ctx, c: &Check, out: &mut Out) {
    let Some((p, sam)) = rights_plan(ctx, c, out) else { return };
    for s in shown_sids() {
        let a = p.rights.get(&s);
        out.setting(Setting {
            id: c.id,
            path: ctx.full(Security, &format!(r"{}\ActSysAc", lsa::account_key(&s))),
            name: sid_name(&s, None),
            local: a.and_then(|a| a.system_access).map_or(J::Null, J::from),
            policy_path: None,
            policy: J::Null,
            effective: J::from(a.map(|a| a.logon_rights.iter().map(|r| r.name()).collect::<Vec<_>>()).unwrap_or_default()),
            source: if a.is_some_and(|a| a.system_access.is_some()) { "local" } else { "default" },
        });
    }
    if p.deny_rdp.is_empty() {
        return;
    }
    let msg = format!(
        "{} is held by {}: {} is refused (\"The connection was denied because the user account is not authorized for remote login\"); a domain GPO or a security template may write it again",
        LogonRight::DenyRemoteInteractive.name(),
        names(&p.deny_rdp, sam.as_ref()),
        admins_text(sam.as_ref())
    );
    out.finding(c, c.id, c.severity, msg, p.remedy(&p.deny_rdp));
}

pub(crate) fn rights_no_rdp_allow(ctx: &Ctx, c: &Check, out: &mut Out) {
    let Some((p, sam)) = rights_plan(ctx, c, out) else { return };
    if !p.allow_rdp.is_empty() {
        return;
    }
    let holders: Vec<Sid> = p.rights.who_has(LogonRight::RemoteInteractive).into_iter().cloned().collect();
    let others = if holders.is_empty() { "no SID at all".to_string() } else { format!("only {}", names(&holders, sam.as_ref())) };
    let msg = format!(
        "neither {} nor {} (nor any other group of an administrator's token) hold {}: {others} may log on over RDP; {} is refused",
        sid_name(&well_known::administrators(), None),
        sid_name(&well_known::remote_desktop_users(), None),
        LogonRight::RemoteInteractive.name(),
        admins_text(sam.as_ref())
    );
    out.finding(c, c.id, c.severity, msg, p.remedy(&[well_known::administrators()]));
}

pub(crate) fn rights_network_nla(ctx: &Ctx, c: &Check, out: &mut Out) {
    let Some((p, sam)) = rights_plan(ctx, c, out) else { return };
    if !p.nla {
        return;
    }
    if !p.deny_net.is_empty() {
        let msg = format!(
            "{} is held by {}: Network Level Authentication is a network logon, so {} is refused before the session starts (CredSSP fails; \"The credentials that were used to connect ... did not work\")",
            LogonRight::DenyNetwork.name(),
            names(&p.deny_net, sam.as_ref()),
            admins_text(sam.as_ref())
        );
        out.finding(c, c.id, c.severity, msg, p.remedy(&p.deny_net));
    }
    if p.allow_net.is_empty() {
        let msg = format!(
            "no group of an administrator's token (Everyone, Authenticated Users, Users, Administrators, ...) holds {}, which Network Level Authentication needs: {} is refused",
            LogonRight::Network.name(),
            admins_text(sam.as_ref())
        );
        out.finding(c, c.id, c.severity, msg, p.remedy(&[well_known::administrators()]));
    }
}

// --------------------------------------------------------------- profile

/// `fix --profile unlock-admin [--user NAME]`: enable and unlock the
/// built-in Administrator (or NAME), lift what keeps it from logging on, and
/// restore Administrators' RDP logon rights.
pub fn unlock_admin(ctx: &Ctx, user: Option<&str>) -> Result<Vec<Edit>, String> {
    let v = match SamView::load(ctx) {
        None => return Err("unlock-admin: the image has no SAM hive".into()),
        Some(Err(e)) => return Err(format!("unlock-admin: the SAM hive cannot be read: {e}")),
        Some(Ok(v)) => v,
    };
    if v.sam.is_domain_controller {
        return Err(format!(
            "unlock-admin: this is a domain controller ({}): its SAM holds only the Directory Services Restore Mode account; unlock domain accounts on another DC",
            v.sam.domain_controller_evidence.clone().unwrap_or_default()
        ));
    }
    let a = match user {
        Some(n) => v.sam.account_named(n).ok_or_else(|| {
            format!("--user {n}: no local account of that name (accounts: {})", v.sam.accounts.iter().map(|a| a.name.as_str()).collect::<Vec<_>>().join(", "))
        })?,
        None => v.sam.account(RID_ADMINISTRATOR).ok_or("unlock-admin: the SAM has no built-in Administrator (RID 500)")?,
    };
    let mut edits: Vec<Edit> = v.f_edit(ctx, a, true)?.into_iter().collect();
    if let Some(Ok(r)) = rights(ctx) {
        let extra: Vec<Sid> = a.sid.iter().cloned().collect();
        edits.extend(RightsPlan::new(r, Some(&v.sam), &extra, v.nla, true).all_edits()?);
    }
    Ok(edits)
}

/// The account `unlock-admin` would act on, for messages.
pub fn unlock_target(hives: &dyn super::Hives, user: Option<&str>) -> Option<String> {
    let ctx = Ctx::new(hives);
    let v = SamView::load(&ctx)?.ok()?;
    let a = match user {
        Some(n) => v.sam.account_named(n)?,
        None => v.sam.account(RID_ADMINISTRATOR)?,
    };
    let note = if v.is_admin(a) { String::new() } else { " (not a member of Administrators: rdprescue does not change group membership)".into() };
    Some(format!("{}{note}", account_name(a)))
}
