//! "Now" on an offline image: the one rule, and the witnesses each question
//! asks.
//!
//! A disk image has no clock, and the time rdprescue runs at says nothing of
//! when the machine last ran. What stands for "now" is the newest time a
//! witness on the disk wrote ([`newest`]): a lower bound of the real time,
//! never a guess past it. A witness that holds no time (0, or one of the
//! "never" FILETIMEs, see [`filetime`]) does not count; of equal times the
//! first named witness is the one reported.
//!
//! Which witnesses count depends on what may inflate them:
//! - **Windows while it ran** ([`windows_ran`]), for the account rows
//!   (lockout still running, expired, password aged): the SYSTEM
//!   `Control\Windows\ShutdownTime` and the SAM users' last logon, last bad
//!   password and password change. Hive headers and key times are left out:
//!   a rescue VM's `reg load` and rdprescue's own writer update them, and a
//!   later "now" would let a lockout run out that had not.
//! - **The last write of the hives** ([`hives_written`]), for the listener
//!   certificate's expiry: the SYSTEM and SOFTWARE base-block timestamps. A
//!   later write (a rescue VM's included) only brings "now" closer to the
//!   real time the certificate will be presented at.
//! - **The newest event** of the event logs read, which ends the evidence
//!   window (`evidence::collect_files`; times there are µs since 1970).

use super::Ctx;
use crate::hive::regf;
use crate::hive::sam::{FileTime, Sam};
use crate::hive::source::HiveKind::{Software, System};

/// The rule: the newest witness with a time wins (the first of equal ones).
pub fn newest<T: Ord, W>(witnesses: impl IntoIterator<Item = (Option<T>, W)>) -> Option<(T, W)> {
    let mut best: Option<(T, W)> = None;
    for (t, what) in witnesses {
        let Some(t) = t else { continue };
        if best.as_ref().is_none_or(|b| t > b.0) {
            best = Some((t, what));
        }
    }
    best
}

/// A FILETIME as a witness's time: `None` for 0 (never set) and the "never"
/// values ([`FileTime::is_never`]).
pub fn filetime(t: u64) -> Option<u64> {
    (!FileTime(t).is_never()).then_some(t)
}

const SHUTDOWN: &str = r"{CCS}\Control\Windows";

/// "Now" for the account rows: the newest time Windows wrote while it ran
/// (see the module doc), and which value holds it.
pub(crate) fn windows_ran(ctx: &Ctx, sam: Option<&Sam>) -> Option<(FileTime, String)> {
    let shutdown = ctx.value(System, SHUTDOWN, "ShutdownTime").filter(|v| v.raw.len() == 8).map(|v| {
        (filetime(u64::from_le_bytes(v.raw[..8].try_into().unwrap_or_default())), format!("{}\\ShutdownTime", ctx.full(System, SHUTDOWN)))
    });
    let accounts = sam.map_or(&[][..], |s| &s.accounts[..]).iter().flat_map(|a| {
        [
            (filetime(a.last_logon.0), format!("{}'s last logon", a.name)),
            (filetime(a.last_failed_logon.0), format!("{}'s last bad password", a.name)),
            (filetime(a.password_last_set.0), format!("{}'s last password change", a.name)),
        ]
    });
    newest(shutdown.into_iter().chain(accounts)).map(|(t, w)| (FileTime(t), w))
}

/// "Now" for the listener certificate: the newest last-written time
/// (FILETIME) of the SYSTEM and SOFTWARE base blocks.
pub(crate) fn hives_written(ctx: &Ctx) -> Option<u64> {
    let stamps = [System, Software]
        .into_iter()
        .filter_map(|k| ctx.hive(k))
        .filter_map(|h| h.get(regf::base::TIMESTAMP, 8).ok().flatten())
        .map(|b| (filetime(crate::bytes::le_u64(&b, 0)), ()));
    newest(stamps).map(|(t, ())| t)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_newest_witness_with_a_time_wins_the_first_of_equals() {
        assert_eq!(newest([(Some(3), "a"), (None, "b"), (Some(7), "c"), (Some(7), "d"), (Some(5), "e")]), Some((7, "c")));
        assert_eq!(newest::<u64, &str>([(None, "a")]), None);
        assert_eq!(newest::<u64, ()>([]), None);
    }

    #[test]
    fn never_filetimes_are_no_time() {
        assert_eq!(filetime(0), None);
        assert_eq!(filetime(FileTime::NEVER_MAX), None);
        assert_eq!(filetime(u64::MAX), None);
        assert_eq!(filetime(133_000_000_000_000_000), Some(133_000_000_000_000_000));
    }
}
