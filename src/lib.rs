//! rdprescue: offline inspection and repair of Windows VM disk images.
//!
//! The crate is layered; each layer only knows the one below it:
//!
//! * [`image`]  — byte sources ([`image::Source`]) and disk containers (raw, VHD, VHDX) exposing the [`image::Disk`] trait
//! * [`volume`] — partition tables (MBR, GPT) turning a disk into volumes
//! * [`fs`]     — file systems (NTFS, FAT) exposing the [`fs::FileSystem`] trait
//! * [`locate`] — finds the Windows and boot volumes of an image
//! * [`hive`]   — registry hives: base block, transaction-log recovery, queries
//! * [`machine`] — one opened image (or hive files): survey, mounts, hive set
//! * [`policy`] — Group Policy files (`Registry.pol`, `GptTmpl.inf`) that re-apply values
//! * [`rdp`]    — the RDP check catalog and its evaluation over a machine's hives
//! * [`repair`] — edits → disk patch, and the one verified write pipeline
//! * [`diff`]   — two snapshots compared: RDP settings, accounts, rights, firewall, findings; whole hives
//!
//! `ARCHITECTURE.md` is the one-page map.
//!
//! The command-line front end lives in the binary (`src/main.rs`, `src/cli/`).

#![deny(unsafe_code)]

pub mod bytes;
pub mod diff;
pub mod disks;
pub mod error;
pub mod evidence;
pub mod fs;
pub mod hive;
pub mod image;
pub mod locate;
pub mod machine;
pub mod policy;
pub mod repair;
pub mod rdp;
pub mod volume;

pub use error::{Error, Layer, Result};
