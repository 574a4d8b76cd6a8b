//! Layer 4: registry hives (regf). Loading validates the base block, detects a
//! dirty hive and replays its transaction logs (.LOG1/.LOG2, new HvLE or old
//! DIRT format) **in memory**; keys and values are then read by our own cell
//! reader (`tree.rs`) over the recovered image, which for a hive on an image
//! is paged (`pages.rs`): only the parts of the hive file whose cells are
//! read are read.

pub mod edit;
pub mod kind;
pub mod lsa;
pub mod pages;
pub mod recover;
pub mod regf;
pub mod regfile;
pub mod sam;
pub mod source;
pub mod tree;

use serde::Serialize;

pub use kind::HiveKind;

/// What loading did to a hive.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum HiveState {
    /// Primary was clean (checksum right, seq1 == seq2); logs ignored.
    Clean,
    /// Primary was dirty and has been brought up to date from its logs.
    Recovered,
    /// Primary was dirty but no usable log was found: the primary is read as-is
    /// and its data may be stale.
    DirtyNotRecovered,
}

/// One log file's contribution to a recovery.
#[derive(Debug, Clone, Serialize)]
pub struct LogApplied {
    /// "LOG1", "LOG2" (or "LOG" for a single XP-style log).
    pub log: String,
    /// "new" (HvLE entries, Windows 8.1+) or "old" (DIRT bitmap).
    pub format: &'static str,
    /// Number of entries (new) or dirty pages (old) applied.
    pub entries: u32,
    /// Sequence numbers of the first and last applied entry (new format).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub first_sequence: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_sequence: Option<u32>,
}

/// Facts about a loaded hive.
#[derive(Debug, Clone, Serialize)]
pub struct HiveReport {
    pub state: HiveState,
    /// Primary base block sequence numbers as found on disk.
    pub primary_seq1: u32,
    pub primary_seq2: u32,
    /// Whether the primary base block checksum was valid.
    pub primary_checksum_ok: bool,
    /// Whether the primary base block was unusable and was taken from a log.
    pub base_block_from_log: bool,
    /// Logs applied, in the order they were applied.
    pub applied: Vec<LogApplied>,
    /// The highest sequence number seen anywhere (primary and valid log entries);
    /// a writer marks its output clean with this + 1.
    pub max_sequence_seen: u32,
    /// Sequence number the recovered hive ends at (last applied entry), if recovered.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub recovered_sequence: Option<u32>,
    /// Human-readable notes: stale log ignored, log invalid and why, ...
    pub notes: Vec<String>,
}

/// A hive's bytes after recovery (the whole image, readable by `nt-hive`
/// too), and what was done.
#[derive(Debug, Clone)]
pub struct LoadedHive {
    pub bytes: Vec<u8>,
    pub report: HiveReport,
}

pub use recover::{load, load_logs, load_paged, load_paged_ahead, parse_log_ahead, scan_primary, ParsedLog, PrimaryScan};
