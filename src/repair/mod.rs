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

pub use commit::{commit, commit_verified, undo, Committed, Destination, Restored, Verify};

use crate::error::{Error, Layer, Result};
use crate::fs::{FileSystem, FsKind};
use crate::hive::edit::{collapse, display_name, show_json, Edit, EditOp, HiveEditor};
use crate::hive::tree::{Hive, Key, Value};
use std::collections::HashMap;
use crate::hive::HiveKind;
use crate::image::write::Patch;
use crate::machine::{HiveLocation, Machine};
use serde_json::Value as J;

pub mod device;
pub mod output;
pub mod undo;
// Remote fix into an Azure page blob (issue 17): the blob client and the destination.
pub mod blob;
mod remote;
pub use remote::page_writes;

/// One value or key change, with the data before and after, for `--dry-run`
/// and for the report.
#[derive(Debug, Clone)]
pub struct Change {
    pub action: Edit,
    /// The old data as JSON (`null` when the value or key did not exist).
    pub old: J,
}

/// Everything that changes in one hive file.
#[derive(Debug, Clone)]
pub struct HiveEdit {
    pub hive: HiveKind,
    /// Where the hive file is: a volume of the image, or a plain file.
    pub location: HiveLocation,
    /// The path as shown in messages.
    pub path: String,
    pub changes: Vec<Change>,
    /// Bytes of the hive file that differ, and the sequence number the edited
    /// primary carries (clean, above every log entry).
    pub bytes_changed: u64,
    pub new_sequence: u32,
    /// The edited hive file loaded back as a hive (clean, every change
    /// checked) when the plan was made: what the checks read after the fix.
    /// It holds the edited bytes ([`HiveEdit::new_bytes`]), once.
    pub loaded: Loaded,
}

impl HiveEdit {
    /// The whole edited hive file (the loaded-back hive's bytes: the plan
    /// keeps one copy of a hive of tens of MB, not two).
    pub fn new_bytes(&self) -> Result<&[u8]> {
        self.loaded.bytes()
    }
}

/// An edited hive as loaded back at planning time (shared, not copied).
#[derive(Clone)]
pub struct Loaded(pub std::sync::Arc<Hive>);

impl std::ops::Deref for Loaded {
    type Target = Hive;
    fn deref(&self) -> &Hive {
        &self.0
    }
}

impl std::fmt::Debug for Loaded {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Loaded({}, {} bytes, {:?})", self.0.name, self.0.len(), self.0.report.state)
    }
}

/// A complete repair: what changes, and the disk patch that does it.
pub struct Plan {
    pub edits: Vec<HiveEdit>,
    /// Same-size rewrites of other files (a local `Registry.pol` entry).
    pub files: Vec<FilePlan>,
    pub patch: Patch,
}

/// A same-size rewrite of `old` at `offset` of a file on a volume of the
/// image into `new` (e.g. the DWORD data of a local `Registry.pol` entry).
/// Planned only when the file holds `old` there now; the file keeps its size
/// and clusters.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileEdit {
    pub partition: u32,
    pub path: String,
    pub offset: u64,
    pub old: Vec<u8>,
    pub new: Vec<u8>,
    /// What the new bytes mean, for the plan's description.
    pub what: String,
}

/// Largest file a [`FileEdit`] rewrites.
pub const MAX_EDITED_FILE: u64 = 16 << 20;

/// Everything that changes in one (non-hive) file.
#[derive(Debug, Clone)]
pub struct FilePlan {
    pub partition: u32,
    pub path: String,
    pub edits: Vec<FileEdit>,
    /// The whole file after the edits (what the verification reads back).
    pub new_bytes: Vec<u8>,
    pub bytes_changed: u64,
}

/// Plan `files` into `patch`: each file read once, every edit checked
/// against the bytes there now, same size, mapped down by the file system.
fn plan_files(machine: &Machine, files: &[FileEdit], patch: &mut Patch) -> Result<Vec<FilePlan>> {
    let mut out: Vec<FilePlan> = Vec::new();
    for f in files {
        if f.old.len() != f.new.len() {
            return Err(Error::Usage(format!("{}: a file edit must keep the size ({} -> {} bytes)", f.path, f.old.len(), f.new.len())));
        }
        if let Some(p) = out.iter_mut().find(|p| p.partition == f.partition && p.path.eq_ignore_ascii_case(&f.path)) {
            if !p.edits.contains(f) {
                p.edits.push(f.clone());
            }
            continue;
        }
        out.push(FilePlan { partition: f.partition, path: f.path.clone(), edits: vec![f.clone()], new_bytes: Vec::new(), bytes_changed: 0 });
    }
    for p in &mut out {
        let offset = machine.survey().and_then(|s| s.partition_table.partitions.iter().find(|x| x.index == p.partition)).map(|x| x.offset).ok_or_else(|| Error::Usage(format!("partition {} vanished", p.partition)))?;
        let fs = machine.mount(p.partition)?;
        check_volume(fs, p.partition, offset)?;
        let old = fs.read_file(&p.path, MAX_EDITED_FILE)?;
        let mut new = old.clone();
        for e in &p.edits {
            let at = usize::try_from(e.offset).ok().filter(|&a| a.checked_add(e.old.len()).is_some_and(|end| end <= old.len()));
            let Some(at) = at.filter(|&a| old[a..a + e.old.len()] == e.old[..]) else {
                return Err(Error::Refused { layer: Layer::Repair, msg: format!("partition {}: {}: the bytes at offset {:#x} are not the ones the fix was planned against", p.partition, p.path, e.offset) });
            };
            new[at..at + e.new.len()].copy_from_slice(&e.new);
        }
        let ranges = diff_ranges(&old, &new);
        for (vol_off, data) in fs.overwrite_plan(&p.path, &ranges)? {
            patch.write_owned(offset + vol_off, data);
        }
        p.bytes_changed = ranges.iter().map(|(_, d)| d.len() as u64).sum();
        p.new_bytes = new;
    }
    Ok(out)
}

/// Check files read back from a written image hold the planned bytes exactly.
pub fn verify_files(written: &Machine, files: &[FilePlan]) -> Result<()> {
    for p in files {
        let got = written.mount(p.partition)?.read_file(&p.path, MAX_EDITED_FILE)?;
        if got != p.new_bytes {
            let at = got.iter().zip(&p.new_bytes).position(|(a, b)| a != b).unwrap_or(got.len().min(p.new_bytes.len()));
            return Err(Error::corrupt(Layer::Repair, at as u64, format!("verification: partition {}: {} read back from the output differs from the planned file", p.partition, p.path)));
        }
    }
    Ok(())
}

/// `.reg`-style description of a plan: every change with its old and new data.
impl std::fmt::Display for Plan {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        for e in &self.edits {
            writeln!(f, "{} ({}): {} change(s), {} bytes of the file rewritten, clean at sequence {}", e.hive.name(), e.location, e.changes.len(), e.bytes_changed, e.new_sequence)?;
            for c in &e.changes {
                let old = show_json(&c.old);
                let (root, key) = (c.action.hive.short_root(), &c.action.key);
                match &c.action.op {
                    EditOp::SetValue { name, data } => writeln!(f, "  {root}\\{key}\\{}: {old} -> {} ({})", display_name(name), show_json(&data.json()), data.type_name())?,
                    EditOp::DeleteValue { name } => writeln!(f, "  {root}\\{key}\\{}: {old} -> (deleted)", display_name(name))?,
                    EditOp::DeleteKey => writeln!(f, "  [-{root}\\{key}] ({old})")?,
                    EditOp::CreateKey => writeln!(f, "  [{root}\\{key}] (new key)")?,
                }
            }
        }
        for p in &self.files {
            writeln!(f, "partition {}: {}: {} change(s), {} bytes of the file rewritten", p.partition, p.path, p.edits.len(), p.bytes_changed)?;
            for e in &p.edits {
                writeln!(f, "  at {:#x}: {} -> {} ({})", e.offset, crate::hive::tree::hex(&e.old), crate::hive::tree::hex(&e.new), e.what)?;
            }
        }
        Ok(())
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

/// Granule of the changed ranges a plan writes.
const GRANULE: usize = 512;

/// The file `path` of `fs` against `new`: its length, and the byte ranges of
/// `new` that differ from it (new may be shorter: the rest of the file is
/// left as is), in 512-byte granules merged when adjacent; a granule the file
/// does not hold whole counts as changed. The file is streamed through the
/// file system's reused buffer and compared as it goes: a second whole copy
/// of a 13 MB hive in fresh memory cost more than the comparison.
fn diff_file(fs: &dyn FileSystem, path: &str, new: &[u8]) -> Result<(u64, Vec<(u64, Vec<u8>)>)> {
    let mut cmp = Compare::new(new);
    let len = fs.read_to(path, &mut cmp)?;
    Ok((len, cmp.ranges()))
}

/// [`diff_file`] where `new` is known to equal the file outside 4 KiB
/// `pages`: only those are read from the file and compared, one read per
/// run of adjacent pages, through a file handle. The same result
/// as the whole comparison (`tests/fix.rs` checks it on every scenario's
/// plan, the dirty hives among them), without streaming the 13 MB of a
/// SYSTEM hive to find the few hundred pages an edit and its log recovery
/// changed.
fn diff_pages(fs: &dyn FileSystem, path: &str, new: &[u8], pages: &[usize]) -> Result<(u64, Vec<(u64, Vec<u8>)>)> {
    const PAGE: usize = crate::hive::pages::UNIT;
    let h = crate::fs::open_read_in(fs, path)?;
    let file_len = h.size();
    let mut changed = vec![false; new.len().div_ceil(GRANULE)];
    let mut buf = Vec::new();
    let runs = crate::image::write::whole_units(pages.iter().map(|&p| ((p * PAGE) as u64, ((p + 1) * PAGE) as u64)), PAGE as u64, new.len() as u64);
    for (a, e) in runs.into_iter().map(|(a, e)| (a as usize, e as usize)) {
        // What the file holds of [a, e) (a handle's read is short only at
        // the file's end): granules past it are changed.
        buf.resize((file_len.saturating_sub(a as u64) as usize).min(e - a), 0);
        let got = h.read_at(a as u64, &mut buf)?;
        for g in a / GRANULE..e.div_ceil(GRANULE) {
            let (lo, hi) = (g * GRANULE, (g * GRANULE + GRANULE).min(new.len()));
            changed[g] = hi > a + got || new[lo..hi] != buf[lo - a..hi - a];
        }
    }
    Ok((file_len, granule_ranges(new, |g, _| changed[g])))
}

/// A `Write` sink comparing a file streamed from its start with `new`,
/// granule by granule (see [`diff_file`]).
struct Compare<'a> {
    new: &'a [u8],
    /// Bytes of the file seen so far.
    pos: usize,
    /// Per granule of `new`: differs from the file.
    changed: Vec<bool>,
}

impl<'a> Compare<'a> {
    fn new(new: &'a [u8]) -> Self {
        Compare { new, pos: 0, changed: vec![false; new.len().div_ceil(GRANULE)] }
    }

    /// The changed granules as merged ranges of `new`; granules the file
    /// did not reach (whole) are changed.
    fn ranges(mut self) -> Vec<(u64, Vec<u8>)> {
        // A granule is whole in the file when its end is at or before `pos`.
        for (g, c) in self.changed.iter_mut().enumerate() {
            if (g * GRANULE + GRANULE).min(self.new.len()) > self.pos {
                *c = true;
            }
        }
        granule_ranges(self.new, |g, _| self.changed[g])
    }
}

impl std::io::Write for Compare<'_> {
    fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
        let (start, end) = (self.pos, self.pos.saturating_add(b.len()));
        self.pos = end;
        // Only the part of the file that `new` covers is compared.
        let stop = end.min(self.new.len());
        let mut at = start;
        while at < stop {
            let g = at / GRANULE;
            let next = ((g + 1) * GRANULE).min(stop);
            if self.new[at..next] != b[at - start..next - start] {
                self.changed[g] = true;
            }
            at = next;
        }
        Ok(b.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// Changed byte ranges between `old` and `new` (new may be shorter: the rest of
/// the file is left as is), in 512-byte granules merged when adjacent: the
/// in-memory form of [`diff_file`] (small files; its oracle in the tests).
fn diff_ranges(old: &[u8], new: &[u8]) -> Vec<(u64, Vec<u8>)> {
    granule_ranges(new, |g, chunk| old.get(g * GRANULE..g * GRANULE + chunk.len()) != Some(chunk))
}

/// The granules `g` of `new` for which `changed(g, bytes)` holds, as ranges
/// of `new`, adjacent ones merged.
fn granule_ranges(new: &[u8], changed: impl Fn(usize, &[u8]) -> bool) -> Vec<(u64, Vec<u8>)> {
    let mut out: Vec<(u64, Vec<u8>)> = Vec::new();
    for (g, chunk) in new.chunks(GRANULE).enumerate().filter(|(g, chunk)| changed(*g, chunk)) {
        let at = g * GRANULE;
        match out.last_mut() {
            Some((o, d)) if *o as usize + d.len() == at => d.extend_from_slice(chunk),
            _ => out.push((at as u64, chunk.to_vec())),
        }
    }
    out
}

/// A SYSTEM hive file smaller than this is not worth a thread.
const WARM_MIN: u64 = 2 << 20;
/// Nor one larger than the per-thread buffer pool keeps.
const WARM_MAX: u64 = crate::fs::reader::SPARE_BYTES as u64;

/// The hive editor's copy of a hive is the one large piece of fresh memory
/// a fix needs, and fresh memory costs a page fault per 4 KiB: 7 of the
/// 9 ms of copying big127's 12.8 MB SYSTEM hive for the editor. `Warm`
/// faults in a buffer the size of the SYSTEM hive file on a second thread
/// while the caller does other work (`fix`: the checks), and
/// [`Warm::finish`] puts it in this thread's buffer pool, where the
/// editor's copy ([`Hive::to_vec`]) finds it. A fix that edits no SYSTEM
/// hive leaves it unused; without a free core it costs the faults the copy
/// would have paid.
pub struct Warm(Option<std::thread::JoinHandle<Vec<u8>>>);

impl Warm {
    /// Start faulting in a buffer for `machine`'s SYSTEM hive (nothing
    /// when it has none, or its size is outside [`WARM_MIN`]..=[`WARM_MAX`]).
    pub fn start(machine: &Machine) -> Warm {
        let size = match machine.hive_location(HiveKind::System) {
            Ok(HiveLocation::Volume { partition, path }) => machine.mount(partition).ok().and_then(|fs| fs.stat(&path).ok()).map(|st| st.size),
            _ => None,
        };
        match size.filter(|n| (WARM_MIN..=WARM_MAX).contains(n)) {
            Some(len) => Warm::for_len(len as usize),
            None => Warm(None),
        }
    }

    /// Fault in a buffer of `len` bytes on a second thread.
    fn for_len(len: usize) -> Warm {
        let thread = std::thread::Builder::new().name("rdprescue-warm".into()).spawn(move || {
            let mut v = vec![0u8; len];
            for page in v.chunks_mut(4096) {
                // An opaque zero: not elided as a store into zeroed memory.
                page[0] = std::hint::black_box(0);
            }
            v
        });
        Warm(thread.ok())
    }

    /// Wait for the buffer and give it to this thread's pool.
    pub fn finish(self) {
        if let Some(v) = self.0.and_then(|t| t.join().ok()) {
            crate::fs::reader::recycle(v);
        }
    }
}

/// Plan the given actions against a machine: take each touched hive as the
/// machine loaded (and recovered) it, edit it, and, for a hive on a volume of
/// an image, map the changed bytes of its file down to the disk. A hive that
/// is a plain file (a hive-file or directory machine) is rewritten whole.
pub fn plan(machine: &Machine, actions: &[Edit]) -> Result<Plan> {
    plan_with_files(machine, actions, &[])
}

/// [`plan`], plus same-size rewrites of other files on the image's volumes.
pub fn plan_with_files(machine: &Machine, actions: &[Edit], files: &[FileEdit]) -> Result<Plan> {
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
            HiveLocation::Volume { partition, .. } => {
                let offset = machine.survey().and_then(|s| s.partition_table.partitions.iter().find(|p| p.index == *partition)).map(|p| p.offset).ok_or_else(|| Error::Usage(format!("partition {partition} vanished")))?;
                let fs = machine.mount(*partition)?;
                check_volume(fs, *partition, offset)?;
                Some((fs, offset))
            }
            HiveLocation::File(_) => None,
        };
        let hive = machine.require(kind)?;
        if hive.report.state == crate::hive::HiveState::DirtyNotRecovered {
            // Marking it clean would make Windows drop the changes only the logs hold.
            return Err(Error::unsupported(Layer::Hive, 0, format!("{path} is dirty and its logs cannot be replayed ({}): refusing to edit it", hive.report.notes.join("; "))));
        }
        // .reg semantics: the last write to a value wins, a deleted key drops
        // what was written below it before; then only what changes something.
        let mine: Vec<Edit> = collapse(&actions.iter().filter(|a| a.hive == kind).cloned().collect::<Vec<_>>());
        let mut before = Lookup::new(hive);
        let mut changes = Vec::new();
        // Keys this plan deletes: below them, the hive as loaded says nothing
        // about what will exist when a later edit runs.
        let mut deleted: Vec<String> = Vec::new();
        for a in mine {
            let old = before.old_data(&a);
            let fresh = deleted.iter().any(|d| is_at_or_below(&a.key, d));
            match &a.op {
                EditOp::CreateKey if !fresh && before.key_exists(&a.key) => continue,
                EditOp::SetValue { name, data } => {
                    // Setting a value to the type and data it already has changes nothing.
                    if !fresh && before.value(&a.key, name).is_some_and(|v| v.kind == data.kind() && v.raw == data.to_bytes()) {
                        continue;
                    }
                }
                EditOp::DeleteKey => deleted.push(a.key.clone()),
                _ => {}
            }
            changes.push(Change { action: a, old });
        }
        if changes.is_empty() {
            continue;
        }
        let mut ed = HiveEditor::new(hive.to_vec()?, hive.report.max_sequence_seen)?;
        ed.apply_all(&changes.iter().map(|c| c.action.clone()).collect::<Vec<_>>())?;
        let (new, written) = ed.finish_written()?;
        // Where the edited image can differ from the hive's file: the pages
        // the editor wrote, and those recovery did not take from the file.
        let candidates = hive.changed_pages().map(|mut p| {
            p.extend(written);
            p
        });
        let loaded = Loaded(std::sync::Arc::new(check_edit(&path, kind, new, &changes)?));
        let new = loaded.bytes()?;
        let new_sequence = crate::bytes::le_u32(new, 4);
        let bytes_changed = match volume {
            Some((fs, offset)) => {
                // The hive file as it is on the volume: only the candidate
                // pages are read and compared (a whole image: streamed, not
                // read into a second buffer of its size). Test hook
                // (`RDPRESCUE_FAULT=check-diff`): the whole file is compared
                // too, and a change the pages missed fails the plan.
                let (primary_len, ranges) = match &candidates {
                    Some(pages) => {
                        let d = diff_pages(fs, &path, new, pages)?;
                        if crate::image::write::fault_armed("check-diff") && d != diff_file(fs, &path, new)? {
                            return Err(Error::corrupt(Layer::Repair, 0, format!("{path}: the changed pages missed a change the whole comparison found")));
                        }
                        d
                    }
                    None => diff_file(fs, &path, new)?,
                };
                if new.len() as u64 > primary_len {
                    return Err(Error::unsupported(
                        Layer::Hive,
                        0,
                        format!("{path}: the fixed {} hive needs {} bytes but its file holds {primary_len}: it no longer fits the file's allocation, and rdprescue never grows NTFS files", kind.name(), new.len()),
                    ));
                }
                for (vol_off, data) in fs.overwrite_plan(&path, &ranges)? {
                    patch.write_owned(offset + vol_off, data);
                }
                ranges.iter().map(|(_, d)| d.len() as u64).sum()
            }
            None => new.len() as u64,
        };
        edits.push(HiveEdit { hive: kind, location, path, changes, bytes_changed, new_sequence, loaded });
    }
    let files = if files.is_empty() { Vec::new() } else { plan_files(machine, files, &mut patch)? };
    Ok(Plan { edits, files, patch })
}

/// Read the edited hive back (a fresh load, as Windows would) and check every
/// change took: set values hold their new type and data, deleted ones and
/// deleted keys are gone, created keys exist; and it loads clean. A hostile
/// hive that misleads the editor is refused here, before anything is
/// written. Returns the loaded hive (what the checks read after the fix).
fn check_edit(path: &str, kind: HiveKind, new: Vec<u8>, changes: &[Change]) -> Result<Hive> {
    let loaded = crate::hive::load(new, None, None)?;
    let h = Hive::new(kind.name(), loaded);
    let fail = |what: String| Error::corrupt(Layer::Hive, 0, format!("{path}: after editing, {what}; the hive is damaged in a way the editor cannot handle, nothing was written"));
    if h.report.state != crate::hive::HiveState::Clean {
        return Err(fail("it does not load clean".into()));
    }
    let mut after = Lookup::new(&h);
    for (i, c) in changes.iter().enumerate() {
        let key = &c.action.key;
        match &c.action.op {
            EditOp::SetValue { name, data } => match after.value(key, name) {
                Some(v) if v.kind == data.kind() && v.raw == data.to_bytes() => {}
                _ => return Err(fail(format!("{key}\\{name} does not read back as written"))),
            },
            EditOp::DeleteValue { name } => {
                if after.value(key, name).is_some() {
                    return Err(fail(format!("{key}\\{name} is still there")));
                }
            }
            EditOp::DeleteKey => {
                // A later change may create the key again (collapse keeps
                // "delete, then create" in order); those are checked themselves.
                let again = changes[i + 1..].iter().any(|l| is_at_or_below(&l.action.key, key));
                if !again && after.key_exists(key) {
                    return Err(fail(format!("key {key} is still there")));
                }
            }
            EditOp::CreateKey => {
                if !after.key_exists(key) {
                    return Err(fail(format!("key {key} was not created")));
                }
            }
        }
    }
    drop(after);
    Ok(h)
}

/// Whether key path `k` is `top` or below it (case-insensitive).
fn is_at_or_below(k: &str, top: &str) -> bool {
    let (k, top) = (k.trim_matches('\\').to_uppercase(), top.trim_matches('\\').to_uppercase());
    k == top || k.starts_with(&format!("{top}\\"))
}

/// Keys of one hive read once each, values indexed by name: planning and
/// checking n edits of one key costs O(n), not O(n²).
struct Lookup<'h> {
    hive: &'h Hive,
    keys: HashMap<String, Option<(Key, HashMap<String, usize>)>>,
}

impl<'h> Lookup<'h> {
    fn new(hive: &'h Hive) -> Self {
        Lookup { hive, keys: HashMap::new() }
    }

    fn key(&mut self, path: &str) -> Option<&(Key, HashMap<String, usize>)> {
        let hive = self.hive;
        self.keys
            .entry(path.trim_matches('\\').to_uppercase())
            .or_insert_with(|| {
                hive.key(path).ok().map(|k| {
                    let names = k.values.iter().enumerate().map(|(i, v)| (v.name.to_uppercase(), i)).collect();
                    (k, names)
                })
            })
            .as_ref()
    }

    fn key_exists(&mut self, path: &str) -> bool {
        self.key(path).is_some()
    }

    fn value(&mut self, path: &str, name: &str) -> Option<&Value> {
        let (k, names) = self.key(path)?;
        names.get(&name.to_uppercase()).map(|&i| &k.values[i])
    }

    /// The current data of the value or key an edit touches, as JSON.
    fn old_data(&mut self, a: &Edit) -> J {
        match &a.op {
            EditOp::SetValue { name, .. } | EditOp::DeleteValue { name } => self.value(&a.key, name).map_or(J::Null, |v| v.json_data()),
            EditOp::DeleteKey | EditOp::CreateKey => self.key(&a.key).map_or(J::Null, |(k, _)| J::from(format!("{} values, {} subkeys", k.values.len(), k.subkeys.len()))),
        }
    }
}

/// Check hives loaded back from a written image: each edited hive is clean
/// (no log replayed) and its bytes are exactly the edited bytes.
pub fn verify_loaded(hives: &dyn crate::rdp::Hives, edits: &[HiveEdit]) -> Result<()> {
    for e in edits {
        let h = hives.hive(e.hive).ok_or_else(|| Error::corrupt(Layer::Hive, 0, format!("verification: {} missing from the output", e.path)))?;
        if h.report.state != crate::hive::HiveState::Clean {
            return Err(Error::corrupt(Layer::Hive, 0, format!("verification: {} is not clean in the output", e.path)));
        }
        let (bytes, want) = (h.bytes()?, e.new_bytes()?);
        let n = want.len().min(bytes.len());
        if bytes[..n] != want[..n] || bytes.len() < 4096 {
            let at = bytes.iter().zip(want).position(|(a, b)| a != b).unwrap_or(n);
            return Err(Error::corrupt(Layer::Hive, at as u64, format!("verification: {} read back from the output differs from the edited hive", e.path)));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::hive::edit::RegData;

    fn change(action: Edit) -> Change {
        Change { action, old: J::Null }
    }

    /// A warmed buffer lands in this thread's pool, where the next whole
    /// buffer of its size or less comes from (a fresh one would have exactly
    /// the size asked for); a machine whose SYSTEM hive is small (the
    /// demo's 20 KB) warms nothing.
    #[test]
    fn a_warm_buffer_is_the_next_whole_buffer() {
        Warm::for_len(3 << 20).finish();
        let v = crate::fs::reader::whole_buffer(2 << 20);
        assert_eq!((v.len(), v.capacity()), (2 << 20, 3 << 20));
        assert!(v.iter().all(|&b| b == 0));
        // (Tests run in the package's directory, on Linux and under wine.)
        let m = Machine::open(std::path::Path::new("testdata/demo.vhdx")).unwrap();
        assert!(Warm::start(&m).0.is_none());
    }

    /// The read-back check refuses every change that did not take, on the
    /// repo's own SYSTEM hive (Select\Current = 1, Setup exists, no Nope key),
    /// and accepts the ones that did.
    #[test]
    fn check_edit_refuses_changes_that_did_not_take() {
        let hive = include_bytes!("../../testdata/hives/SYSTEM");
        let k = HiveKind::System;
        let ok = |e: Edit| check_edit("SYSTEM", k, hive.to_vec(), &[change(e)]);
        // Held: the value has that type and data; deleted things are absent;
        // a created key exists.
        ok(Edit::set(k, "Select", "Current", RegData::Dword(1))).unwrap();
        ok(Edit::delete_value(k, "Select", "Nope")).unwrap();
        ok(Edit::delete_key(k, "Nope")).unwrap();
        ok(Edit::create_key(k, "Setup")).unwrap();
        // Not held: other data, other type, still there, missing.
        for e in [
            Edit::set(k, "Select", "Current", RegData::Dword(2)),
            Edit::set(k, "Select", "Current", RegData::Qword(1)),
            Edit::set(k, "Select", "Absent", RegData::Dword(1)),
            Edit::delete_value(k, "Select", "Current"),
            Edit::delete_key(k, "Setup"),
            Edit::create_key(k, "Nope"),
        ] {
            let what = format!("{e:?}");
            assert!(ok(e).is_err(), "{what} passed the read-back check");
        }
        // A key deleted and then created again is checked by its creation.
        check_edit("SYSTEM", k, hive.to_vec(), &[change(Edit::delete_key(k, "Setup")), change(Edit::create_key(k, "Setup"))]).unwrap();
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

    /// The streamed comparison gives exactly the in-memory diff, whatever
    /// the sizes of the pieces the file arrives in (granule-straddling,
    /// one byte, whole), with the file shorter, as long as, or longer than
    /// the new bytes, and a last granule that is not whole.
    #[test]
    fn streamed_diff_equals_the_in_memory_diff() {
        use std::io::Write;
        // A small deterministic generator (xorshift): the same cases every run.
        let mut x = 0x9e37_79b9_7f4a_7c15u64;
        let mut next = move || {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x
        };
        let mut cases = 0;
        for new_len in [0usize, 1, 511, 512, 513, 4096, 5000, 20_000] {
            for old_len in [0usize, 100, new_len.saturating_sub(300), new_len, new_len + 700] {
                let old: Vec<u8> = (0..old_len).map(|_| next() as u8).collect();
                let mut new: Vec<u8> = (0..new_len).map(|i| old.get(i).copied().unwrap_or(0)).collect();
                // A few changed bytes and one changed run across granules.
                for _ in 0..(new_len / 1500) {
                    let i = (next() as usize) % new_len;
                    new[i] ^= 0x5a;
                }
                if new_len > 2000 {
                    new[1000..1100].fill(0xee);
                }
                let want = diff_ranges(&old, &new);
                for piece in [1usize, 7, 512, 1000, 65_536] {
                    let mut cmp = Compare::new(&new);
                    for part in old.chunks(piece) {
                        cmp.write_all(part).unwrap();
                    }
                    assert_eq!(cmp.ranges(), want, "new {new_len}, old {old_len}, pieces of {piece}");
                    cases += 1;
                }
            }
        }
        assert_eq!(cases, 8 * 5 * 5);
        // And the case the plan relies on: the same bytes give no ranges.
        let same = vec![7u8; 3000];
        let mut cmp = Compare::new(&same);
        cmp.write_all(&same).unwrap();
        assert!(cmp.ranges().is_empty());
    }
}
