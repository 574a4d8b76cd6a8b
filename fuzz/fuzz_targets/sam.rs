//! The SAM and SECURITY record parsers (`hive::sam`, `hive::lsa`) on
//! arbitrary bytes.
//!
//! Input layout: `[selector][record bytes]`; the selector (mod 8) picks the
//! record: user F, user V, alias C, domain F, domain V, ActSysAc, Privilgs,
//! binary SID.
//!
//! Invariants: no panic; a parsed SID re-encodes to exactly the bytes it was
//! read from; an alias's member SIDs re-encode to its member list, whose
//! length is within the record; a privilege set holds no more entries than
//! its bytes can carry; the logon rights of an ActSysAc are bits of it.
#![no_main]
use libfuzzer_sys::fuzz_target;
use rdprescue::hive::lsa::{PrivilegeSet, Sid, SystemAccess};
use rdprescue::hive::sam::{parse_domain_sid, AliasRecord, DomainPolicy, UserFixed, UserVariable};

fuzz_target!(|data: &[u8]| {
    let Some((&sel, b)) = data.split_first() else { return };
    match sel % 8 {
        0 => {
            let _ = UserFixed::parse(b, "F").map(|f| f.validate(f.rid, "F").expect("own RID"));
        }
        1 => {
            if let Ok(v) = UserVariable::parse(b, "V") {
                assert!(!v.name.is_empty());
                assert!(v.name.len() <= b.len() * 3 / 2, "name longer than the record");
            }
        }
        2 => {
            if let Ok(c) = AliasRecord::parse(b, "C") {
                let encoded: usize = c.members.iter().map(|s| s.to_bytes().len()).sum();
                assert!(encoded <= b.len(), "members larger than the record");
                for s in &c.members {
                    assert_eq!(Sid::parse_exact(&s.to_bytes(), "m").ok().as_ref(), Some(s), "SID round trip");
                }
            }
        }
        3 => {
            let _ = DomainPolicy::parse(b, "F").map(|p| (p.lockout_duration.seconds(), p.max_password_age.seconds()));
        }
        4 => {
            let _ = parse_domain_sid(b, "V");
        }
        5 => {
            if let Ok(a) = SystemAccess::parse(b) {
                let bits = a.rights().iter().fold(0, |m, r| m | r.bit());
                assert_eq!(bits & !a.0, 0, "a right that is not in the mask");
            }
        }
        6 => {
            if let Ok(p) = PrivilegeSet::parse(b) {
                assert!(8 + p.privileges.len() * 12 <= b.len(), "more privileges than bytes");
            }
        }
        _ => {
            if let Ok((sid, len)) = Sid::parse(b, 0, "Sid") {
                assert_eq!(sid.to_bytes(), b[..len], "SID does not re-encode to its bytes");
                assert_eq!(Sid::from_string(&sid.to_string()).as_ref(), Some(&sid), "string round trip");
            }
        }
    }
});
