//! Planning a repair: registry [`Edit`]s → edited hives → same-size file
//! overwrites → volume writes → a [`Patch`] of the virtual disk.
//!
//! Data flows down for reads (image → volume → file system → hive) and back up
//! for writes: the hive editor produces new hive bytes, the file system maps
//! the changed byte ranges of the hive file to volume offsets without changing
//! any file-system structure, and the partition offset turns those into disk
//! offsets. Nothing is written here; the image layer materialises the patch
//! as a copy or a differencing child.

pub mod commit;

pub use commit::{commit, Committed, Destination};

use crate::error::{Error, Layer, Result};
use crate::fs::{FileSystem, FsKind};
use crate::hive::edit::{Edit, EditOp, HiveEditor};
use crate::hive::tree::Hive;
use crate::hive::HiveKind;
use crate::image::write::Patch;
use crate::machine::{HiveLocation, Machine, MAX_HIVE_FILE};
use serde_json::Value as J;

pub mod device;
pub mod output;
pub mod undo;

/// One value or key change, with the data before and after, for `--dry-run`
/// and for the report.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Change {
    pub action: Edit,
    /// The old data as JSON (`null` when the value or key did not exist).
    pub old: J,
}

/// Everything that changes in one hive file.
#[derive(Debug, Clone, serde::Serialize)]
pub struct HiveEdit {
    pub hive: &'static str,
    /// Where the hive file is: a volume of the image, or a plain file.
    #[serde(skip)]
    pub location: HiveLocation,
    /// The path as shown in messages.
    pub path: String,
    pub changes: Vec<Change>,
    /// Bytes of the hive file that differ, and the sequence number the edited
    /// primary carries (clean, above every log entry).
    pub bytes_changed: u64,
    pub new_sequence: u32,
    #[serde(skip)]
    pub new_bytes: Vec<u8>,
}

/// A complete repair: what changes, and the disk patch that does it.
pub struct Plan {
    pub edits: Vec<HiveEdit>,
    pub patch: Patch,
}

fn kind_of(hive: &str) -> Option<HiveKind> {
    HiveKind::from_name(hive)
}

/// The current data of the value or key an action touches, as JSON.
fn old_data(hive: &Hive, a: &Edit) -> J {
    let find = |key: &str, name: &str| hive.key(key).ok().and_then(|k| k.values.into_iter().find(|v| v.name.eq_ignore_ascii_case(name))).map_or(J::Null, |v| v.json_data());
    match &a.op {
        EditOp::SetValue { name, .. } | EditOp::DeleteValue { name } => find(&a.key, name),
        EditOp::DeleteKey | EditOp::CreateKey => hive.key(&a.key).map_or(J::Null, |k| J::from(format!("{} values, {} subkeys", k.values.len(), k.subkeys.len()))),
    }
}

/// Refuse volumes Windows would not leave alone (formats.md E.4).
fn check_volume(fs: &dyn FileSystem, part: u32, offset: u64) -> Result<()> {
    let st = fs.state();
    let why = if st.hibernated == Some(true) {
        "Windows is hibernated (hibernate or Fast Startup): on resume it overwrites offline changes; shut the VM down fully (shutdown /s /t 0, powercfg /h off) or delete hiberfil.sys first"
    } else if st.logfile_clean == Some(false) {
        "the NTFS $LogFile holds unfinished operations: Windows would replay them at mount and could move the clusters written; run chkdsk or shut down cleanly first"
    } else if st.dirty {
        "the volume is marked dirty: chkdsk would run at boot and may rewrite files; repair it first"
    } else {
        return Ok(());
    };
    let layer = if fs.kind() == FsKind::Ntfs { Layer::Ntfs } else { Layer::Fat };
    Err(Error::unsupported(layer, offset, format!("partition {part}: refusing to write: {why}")))
}

/// Changed byte ranges between `old` and `new` (new may be shorter: the rest of
/// the file is left as is), in 512-byte granules merged when adjacent.
fn diff_ranges(old: &[u8], new: &[u8]) -> Vec<(u64, Vec<u8>)> {
    const G: usize = 512;
    let mut out: Vec<(u64, Vec<u8>)> = Vec::new();
    for (i, chunk) in new.chunks(G).enumerate() {
        let at = i * G;
        if old.get(at..at + chunk.len()) == Some(chunk) {
            continue;
        }
        match out.last_mut() {
            Some((o, d)) if *o as usize + d.len() == at => d.extend_from_slice(chunk),
            _ => out.push((at as u64, chunk.to_vec())),
        }
    }
    out
}

/// Plan the given actions against a machine: take each touched hive as the
/// machine loaded (and recovered) it, edit it, and, for a hive on a volume of
/// an image, map the changed bytes of its file down to the disk. A hive that
/// is a plain file (a hive-file or directory machine) is rewritten whole.
pub fn plan(machine: &Machine, actions: &[Edit]) -> Result<Plan> {
    let mut edits = Vec::new();
    let mut patch = Patch::default();
    let mut kinds: Vec<HiveKind> = Vec::new();
    for a in actions {
        if !kinds.contains(&a.hive) {
            kinds.push(a.hive);
        }
    }
    for kind in kinds {
        let location = machine.hive_location(kind)?;
        let path = match &location {
            HiveLocation::Volume { path, .. } => path.clone(),
            HiveLocation::File(p) => p.display().to_string(),
        };
        // Where the file's bytes go on the disk (image machines).
        let volume = match &location {
            HiveLocation::Volume { partition, path } => {
                let offset = machine.survey().and_then(|s| s.partition_table.partitions.iter().find(|p| p.index == *partition)).map(|p| p.offset).ok_or_else(|| Error::Usage(format!("partition {partition} vanished")))?;
                let fs = machine.mount(*partition)?;
                check_volume(fs, *partition, offset)?;
                Some((fs, offset, fs.read_file(path, MAX_HIVE_FILE)?))
            }
            HiveLocation::File(_) => None,
        };
        let hive = machine.require(kind)?;
        if hive.report.state == crate::hive::HiveState::DirtyNotRecovered {
            // Marking it clean would make Windows drop the changes only the logs hold.
            return Err(Error::unsupported(Layer::Hive, 0, format!("{path} is dirty and its logs cannot be replayed ({}): refusing to edit it", hive.report.notes.join("; "))));
        }
        let mine: Vec<&Edit> = actions.iter().filter(|a| a.hive == kind).collect();
        let mut ed = HiveEditor::new(hive.bytes.clone(), hive.report.max_sequence_seen)?;
        let mut changes = Vec::new();
        for a in mine {
            let old = old_data(hive, a);
            // Setting a value to the data it already has changes nothing: leave it out.
            let key = &a.key;
            if a.op == EditOp::CreateKey && hive.key(key).is_ok() {
                continue;
            }
            if let EditOp::SetValue { name, data } = &a.op {
                let same_type = hive.key(key).ok().and_then(|k| k.values.into_iter().find(|v| v.name.eq_ignore_ascii_case(name))).is_some_and(|v| v.type_name() == data.type_name());
                if same_type && old == data.json() {
                    continue;
                }
            }
            changes.push(Change { action: a.clone(), old });
            match &a.op {
                EditOp::SetValue { name, data } => {
                    ed.set_value(key, name, data.kind(), &data.to_bytes())?;
                }
                EditOp::DeleteValue { name } => {
                    ed.delete_value(key, name)?;
                }
                EditOp::DeleteKey => {
                    ed.delete_key(key)?;
                }
                EditOp::CreateKey => {
                    ed.add_key(key)?;
                }
            }
        }
        if changes.is_empty() {
            continue;
        }
        let new = ed.finish()?;
        check_edit(&path, kind, &new, &changes)?;
        let new_sequence = crate::bytes::le_u32(&new, 4);
        let bytes_changed = match volume {
            Some((fs, offset, primary)) => {
                if new.len() > primary.len() {
                    return Err(Error::unsupported(
                        Layer::Hive,
                        0,
                        format!("{path}: the fixed {} hive needs {} bytes but its file holds {}: it no longer fits the file's allocation, and rdprescue never grows NTFS files", kind.name(), new.len(), primary.len()),
                    ));
                }
                let ranges = diff_ranges(&primary, &new);
                for (vol_off, data) in fs.overwrite_plan(&path, &ranges)? {
                    patch.write(offset + vol_off, &data);
                }
                ranges.iter().map(|(_, d)| d.len() as u64).sum()
            }
            None => new.len() as u64,
        };
        edits.push(HiveEdit { hive: kind.name(), location, path, changes, bytes_changed, new_sequence, new_bytes: new });
    }
    Ok(Plan { edits, patch })
}

/// Read the edited hive back (a fresh load, as Windows would) and check every
/// change took: set values hold their new type and data, deleted ones and
/// deleted keys are gone, created keys exist. A hostile hive that misleads
/// the editor is refused here, before anything is written.
fn check_edit(path: &str, kind: HiveKind, new: &[u8], changes: &[Change]) -> Result<()> {
    let loaded = crate::hive::load(new.to_vec(), None, None)?;
    let h = Hive::new(kind.name(), loaded);
    let fail = |what: String| Error::corrupt(Layer::Hive, 0, format!("{path}: after editing, {what}; the hive is damaged in a way the editor cannot handle, nothing was written"));
    let value = |key: &str, name: &str| h.key(key).ok().and_then(|k| k.values.into_iter().find(|v| v.name.eq_ignore_ascii_case(name)));
    for c in changes {
        let key = &c.action.key;
        match &c.action.op {
            EditOp::SetValue { name, data } => match value(key, name) {
                Some(v) if v.kind == data.kind() && v.raw == data.to_bytes() => {}
                _ => return Err(fail(format!("{key}\\{name} does not read back as written"))),
            },
            EditOp::DeleteValue { name } => {
                if value(key, name).is_some() {
                    return Err(fail(format!("{key}\\{name} is still there")));
                }
            }
            EditOp::DeleteKey => {
                if h.key(key).is_ok() {
                    return Err(fail(format!("key {key} is still there")));
                }
            }
            EditOp::CreateKey => {
                if h.key(key).is_err() {
                    return Err(fail(format!("key {key} was not created")));
                }
            }
        }
    }
    Ok(())
}

/// Check hives loaded back from a written image: each edited hive is clean
/// (no log replayed) and its bytes are exactly the edited bytes.
pub fn verify_loaded(hives: &dyn crate::rdp::Hives, edits: &[HiveEdit]) -> Result<()> {
    for e in edits {
        let kind = kind_of(e.hive).ok_or_else(|| Error::Usage(format!("unknown hive {}", e.hive)))?;
        let h = hives.hive(kind).ok_or_else(|| Error::corrupt(Layer::Hive, 0, format!("verification: {} missing from the output", e.path)))?;
        if h.report.state != crate::hive::HiveState::Clean {
            return Err(Error::corrupt(Layer::Hive, 0, format!("verification: {} is not clean in the output", e.path)));
        }
        let n = e.new_bytes.len().min(h.bytes.len());
        if h.bytes[..n] != e.new_bytes[..n] || h.bytes.len() < 4096 {
            let at = h.bytes.iter().zip(&e.new_bytes).position(|(a, b)| a != b).unwrap_or(n);
            return Err(Error::corrupt(Layer::Hive, at as u64, format!("verification: {} read back from the output differs from the edited hive", e.path)));
        }
    }
    Ok(())
}

/// Check a written image: every edited hive file reads back as the edited
/// bytes and loads clean. Returns a one-line error for the first mismatch.
pub fn verify(machine: &Machine, edits: &[HiveEdit]) -> Result<()> {
    for e in edits {
        let HiveLocation::Volume { partition, .. } = e.location else { continue };
        let fs = machine.mount(partition)?;
        let got = fs.read_file(&e.path, MAX_HIVE_FILE)?;
        if got.get(..e.new_bytes.len()) != Some(&e.new_bytes[..]) {
            let at = got.iter().zip(&e.new_bytes).position(|(a, b)| a != b).unwrap_or(got.len().min(e.new_bytes.len()));
            return Err(Error::corrupt(Layer::Hive, at as u64, format!("verification: {} read back from the output differs from the edited hive", e.path)));
        }
        let h = crate::hive::load(got, None, None)?;
        if h.report.state != crate::hive::HiveState::Clean {
            return Err(Error::corrupt(Layer::Hive, 0, format!("verification: {} is not clean in the output", e.path)));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn diff_is_sector_granular() {
        let old = vec![0u8; 2048];
        let mut new = old.clone();
        new[10] = 1;
        new[600] = 1;
        new[1600] = 1;
        assert_eq!(diff_ranges(&old, &new).iter().map(|(o, d)| (*o, d.len())).collect::<Vec<_>>(), vec![(0, 1024), (1536, 512)]);
    }
}
