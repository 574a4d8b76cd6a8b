//! Planning a repair: registry [`Action`]s → edited hives → same-size file
//! overwrites → volume writes → a [`Patch`] of the virtual disk.
//!
//! Data flows down for reads (image → volume → file system → hive) and back up
//! for writes: the hive editor produces new hive bytes, the file system maps
//! the changed byte ranges of the hive file to volume offsets without changing
//! any file-system structure, and the partition offset turns those into disk
//! offsets. Nothing is written here; the image layer materialises the patch
//! as a copy or a differencing child.

use crate::error::{Error, Layer, Result};
use crate::fs::{FileSystem, FsKind};
use crate::hive::edit::HiveEditor;
use crate::hive::source::{self, HiveKind, MAX_HIVE_FILE};
use crate::hive::tree::Hive;
use crate::image::write::Patch;
use crate::image::Image;
use crate::locate;
use crate::rdp::Action;
use serde_json::Value as J;

pub mod device;
pub mod output;
pub mod undo;

/// One value or key change, with the data before and after, for `--dry-run`
/// and for the report.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Change {
    pub action: Action,
    /// The old data as JSON (`null` when the value or key did not exist).
    pub old: J,
}

/// Everything that changes in one hive file.
#[derive(Debug, Clone, serde::Serialize)]
pub struct HiveEdit {
    pub hive: &'static str,
    pub partition: u32,
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

/// Encode JSON data as registry bytes of type `ty` (a REG_* name). Data
/// `{"hex": "..."}` gives the raw bytes of any type (as a .reg `hex(N):` list).
pub fn encode(ty: &str, data: &J) -> Result<(u32, Vec<u8>)> {
    if let Some(h) = data.get("hex").and_then(J::as_str) {
        let kind = crate::hive::tree::TYPE_NAMES.iter().position(|n| *n == ty).ok_or_else(|| Error::Usage(format!("cannot write registry type {ty}")))?;
        let (_, raw) = encode("REG_BINARY", &J::from(h))?;
        return Ok((kind as u32, raw));
    }
    let utf16z = |s: &str| -> Vec<u8> { s.encode_utf16().chain([0]).flat_map(u16::to_le_bytes).collect() };
    let bad = || Error::Usage(format!("data {data} does not fit type {ty}"));
    Ok(match ty {
        "REG_DWORD" => (4, u32::try_from(data.as_u64().ok_or_else(bad)?).map_err(|_| bad())?.to_le_bytes().to_vec()),
        "REG_QWORD" => (11, data.as_u64().ok_or_else(bad)?.to_le_bytes().to_vec()),
        "REG_SZ" => (1, utf16z(data.as_str().ok_or_else(bad)?)),
        "REG_EXPAND_SZ" => (2, utf16z(data.as_str().ok_or_else(bad)?)),
        "REG_MULTI_SZ" => {
            let mut out = Vec::new();
            for s in data.as_array().ok_or_else(bad)? {
                out.extend(utf16z(s.as_str().ok_or_else(bad)?));
            }
            out.extend([0, 0]);
            (7, out)
        }
        "REG_BINARY" => {
            let h = data.as_str().ok_or_else(bad)?;
            if h.len() % 2 != 0 {
                return Err(bad());
            }
            (3, (0..h.len()).step_by(2).map(|i| u8::from_str_radix(&h[i..i + 2], 16).map_err(|_| bad())).collect::<Result<_>>()?)
        }
        _ => return Err(Error::Usage(format!("cannot write registry type {ty}"))),
    })
}

/// The current data of the value or key an action touches, as JSON.
fn old_data(hive: &Hive, a: &Action) -> J {
    let find = |key: &str, name: &str| hive.key(key).ok().and_then(|k| k.values.into_iter().find(|v| v.name.eq_ignore_ascii_case(name))).map_or(J::Null, |v| v.json_data());
    match a {
        Action::SetValue { key, name, .. } | Action::DeleteValue { key, name, .. } => find(key, name),
        Action::DeleteKey { key, .. } | Action::CreateKey { key, .. } => hive.key(key).map_or(J::Null, |k| J::from(format!("{} values, {} subkeys", k.values.len(), k.subkeys.len()))),
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

/// Plan the given actions against `image`: recover each touched hive, edit it,
/// and map the changed bytes of its file down to the disk.
pub fn plan(image: &Image, actions: &[Action]) -> Result<Plan> {
    plan_with(image, None, actions)
}

/// [`plan`], reusing hives already loaded (recovered) from this same image.
pub fn plan_with(image: &Image, loaded: Option<&dyn crate::rdp::Hives>, actions: &[Action]) -> Result<Plan> {
    let survey = locate::survey(image)?;
    let mut edits = Vec::new();
    let mut patch = Patch::default();
    let mut kinds: Vec<HiveKind> = Vec::new();
    for a in actions {
        let h = a.hive();
        let k = kind_of(h).ok_or_else(|| Error::Usage(format!("unknown hive {h}")))?;
        if !kinds.contains(&k) {
            kinds.push(k);
        }
    }
    for kind in kinds {
        let (part, path) = source::hive_location(&survey, kind)?;
        let p = survey.partition_table.partitions.iter().find(|p| p.index == part).ok_or_else(|| Error::Usage(format!("partition {part} vanished")))?;
        let fs = locate::mount(image, p)?;
        check_volume(fs.as_ref(), part, p.offset)?;
        let primary = fs.read_file(&path, MAX_HIVE_FILE)?;
        let reloaded;
        let hive = match loaded.and_then(|l| l.hive(kind)) {
            Some(h) => h,
            None => {
                reloaded = source::load_from_fs(fs.as_ref(), &path, kind.name())?;
                &reloaded
            }
        };
        if hive.report.state == crate::hive::HiveState::DirtyNotRecovered {
            // Marking it clean would make Windows drop the changes only the logs hold.
            return Err(Error::unsupported(Layer::Hive, 0, format!("{path} is dirty and its logs cannot be replayed ({}): refusing to edit it", hive.report.notes.join("; "))));
        }
        let mine: Vec<&Action> = actions.iter().filter(|a| kind_of(a.hive()) == Some(kind)).collect();
        let mut ed = HiveEditor::new(hive.bytes.clone(), hive.report.max_sequence_seen)?;
        let mut changes = Vec::new();
        for a in mine {
            let old = old_data(hive, a);
            // Setting a value to the data it already has changes nothing: leave it out.
            if let Action::CreateKey { key, .. } = a {
                if hive.key(key).is_ok() {
                    continue;
                }
            }
            if let Action::SetValue { key, name, ty, data, .. } = a {
                let same_type = hive.key(key).ok().and_then(|k| k.values.into_iter().find(|v| v.name.eq_ignore_ascii_case(name))).is_some_and(|v| v.type_name() == *ty);
                if same_type && old == *data {
                    continue;
                }
            }
            changes.push(Change { action: a.clone(), old });
            match a {
                Action::SetValue { key, name, ty, data, .. } => {
                    let (t, raw) = encode(ty, data)?;
                    ed.set_value(key, name, t, &raw)?;
                }
                Action::DeleteValue { key, name, .. } => {
                    ed.delete_value(key, name)?;
                }
                Action::DeleteKey { key, .. } => {
                    ed.delete_key(key)?;
                }
                Action::CreateKey { key, .. } => {
                    ed.add_key(key)?;
                }
            }
        }
        if changes.is_empty() {
            continue;
        }
        let new = ed.finish()?;
        if new.len() > primary.len() {
            return Err(Error::unsupported(
                Layer::Hive,
                0,
                format!("{path}: the fixed {} hive needs {} bytes but its file holds {}: it no longer fits the file's allocation, and rdprescue never grows NTFS files", kind.name(), new.len(), primary.len()),
            ));
        }
        check_edit(&path, kind, &new, &changes)?;
        let new_sequence = crate::bytes::le_u32(&new, 4);
        let ranges = diff_ranges(&primary, &new);
        let bytes_changed = ranges.iter().map(|(_, d)| d.len() as u64).sum();
        for (vol_off, data) in fs.overwrite_plan(&path, &ranges)? {
            patch.write(p.offset + vol_off, &data);
        }
        edits.push(HiveEdit { hive: kind.name(), partition: part, path, changes, bytes_changed, new_sequence, new_bytes: new });
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
        match &c.action {
            Action::SetValue { key, name, ty, data, .. } => {
                let (t, raw) = encode(ty, data)?;
                match value(key, name) {
                    Some(v) if v.kind == t && v.raw == raw => {}
                    _ => return Err(fail(format!("{key}\\{name} does not read back as written"))),
                }
            }
            Action::DeleteValue { key, name, .. } => {
                if value(key, name).is_some() {
                    return Err(fail(format!("{key}\\{name} is still there")));
                }
            }
            Action::DeleteKey { key, .. } => {
                if h.key(key).is_ok() {
                    return Err(fail(format!("key {key} is still there")));
                }
            }
            Action::CreateKey { key, .. } => {
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
pub fn verify(image: &Image, edits: &[HiveEdit]) -> Result<()> {
    let survey = locate::survey(image)?;
    for e in edits {
        let p = survey.partition_table.partitions.iter().find(|p| p.index == e.partition).ok_or_else(|| Error::Usage(format!("output: partition {} missing", e.partition)))?;
        let fs = locate::mount(image, p)?;
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
    fn encodes_registry_types() {
        assert_eq!(encode("REG_DWORD", &J::from(3389)).unwrap(), (4, vec![0x3d, 0x0d, 0, 0]));
        assert_eq!(encode("REG_SZ", &J::from("a")).unwrap(), (1, vec![b'a', 0, 0, 0]));
        assert_eq!(encode("REG_MULTI_SZ", &serde_json::json!(["a", "b"])).unwrap().1, vec![b'a', 0, 0, 0, b'b', 0, 0, 0, 0, 0]);
        assert_eq!(encode("REG_BINARY", &J::from("00ff")).unwrap(), (3, vec![0, 0xff]));
        assert!(encode("REG_DWORD", &J::from(1u64 << 40)).is_err());
        assert!(encode("REG_DWORD", &J::from("x")).is_err());
    }

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
