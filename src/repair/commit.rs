//! The one write pipeline. Every command that writes (`fix`, `reg
//! set/delete/import`, `undo`) hands a [`Plan`] and a [`Destination`] to
//! [`commit`], which:
//!
//! 1. creates the output invisibly beside its final place (never over an
//!    existing file, never over the input), with [`NewFile`],
//! 2. writes it (a full copy, a differencing child, or a hive file),
//! 3. flushes it to stable storage,
//! 4. reads it back: a new image is opened again through the image layer (a
//!    fresh read of its headers, BAT and parent locator) and every range of
//!    the plan's [`Patch`](crate::image::write::Patch), widened to whole 4 KiB
//!    pages, plus the disk's partition-table area and the first 8 KiB of each
//!    volume written, must hold exactly the input's bytes with the patch laid
//!    over them ([`Verify::Changed`], the default; the flush runs meanwhile on
//!    another thread, and both must succeed). The checks are then run on the
//!    machine already loaded, its edited hives replaced by the plan's (which
//!    were loaded back and checked when the plan was made). [`Verify::Full`]
//!    instead opens the output as a whole new machine, re-reads and re-recovers
//!    every hive through the file system, compares each edited hive and file
//!    byte for byte and runs the checks on that (`fix --verify full`). Hive
//!    files and in-place writes are always read back in full.
//! 5. only then makes it visible under its name, without replacing anything
//!    that appeared there meanwhile, and flushes the directory.
//!
//! A failure at any step leaves no output behind.
//!
//! In place ([`Destination::InPlace`], raw disks and devices only) the order
//! is: refuse a disk the host uses, record the bytes each range holds now,
//! open the device exclusively, publish the undo file (the same [`NewFile`]
//! steps), write the ranges, flush, read the disk back and verify. [`undo`]
//! puts the recorded bytes back after verifying the whole undo file and the
//! disk first.
//!
//! Hive files in place ([`Destination::InPlaceFiles`]: a mounted Windows
//! volume, or a directory of hive files) follow the same order per file:
//! check each file still holds what was read, save every original as
//! `<hive>.rdprescue-undo` beside it (published and flushed before any hive
//! is touched), stage each edited hive beside its file (flushed, read back
//! and verified), then overwrite the file itself (it keeps its identity: ACL,
//! owner, attributes; a renamed-in new file would get the directory's default
//! security, and SAM/SECURITY must stay private), flush, and read the whole
//! machine back. The `.LOG1`/`.LOG2` beside each hive are left as they are:
//! the edited primary is clean, its sequence numbers are above every log
//! entry and its timestamp is new, so Windows ignores the stale logs (formats
//! notes B.4); left untouched they also keep the undo copy exact. [`undo`]
//! on a directory puts the undo copies back and removes them.

use super::{verify_files, verify_loaded, HiveEdit, Plan};
use crate::error::{Error, Layer, Result};
use crate::image::write::{self, fault_point, Progress};
use crate::fs::FileSystem;
use crate::machine::{HiveLocation, Machine, Origin, MAX_HIVE_FILE};
use crate::rdp::eval::Inspection;
use super::device::{self, DeviceWriter};
use super::output::NewFile;
use super::undo::{self, Undo};
use crate::image::Format;
use std::path::{Path, PathBuf};

/// Where a plan is written.
#[derive(Debug, Clone, Copy)]
pub enum Destination<'a> {
    /// A new image: a full copy of the input with the changes, in `format`
    /// (`--format`; `None`: from the path's extension, else the input's
    /// container format: [`write::conversion`]).
    Copy { path: &'a Path, format: Option<write::OutFormat> },
    /// A new differencing child (VHD or VHDX) of the untouched input; a
    /// `format` other than its parent's is refused.
    DiffChild { path: &'a Path, format: Option<write::OutFormat> },
    /// A new hive file (the input machine is a hive file or a directory of
    /// them; the plan edits exactly one hive).
    HiveFile(&'a Path),
    /// The input itself (a raw disk or block device, unmounted), after its
    /// original bytes are saved to the new undo file `undo`.
    InPlace { undo: &'a Path },
    /// The hive files themselves (a mounted Windows volume or a directory of
    /// hive files), after each original is saved beside it as
    /// `<hive>.rdprescue-undo`.
    InPlaceFiles,
    /// A new directory (must not exist) holding the edited hive files under
    /// their own names (the input is a mounted volume or a hive directory).
    HiveDir(&'a Path),
    /// A new Azure page blob `dest` (must not exist): a server-side copy of
    /// the fixed VHD page blob `source` the machine was opened from, then Put
    /// Page of the changed pages only (`repair/remote.rs`).
    PageBlob { source: &'a super::blob::BlobUrl, dest: &'a super::blob::BlobUrl },
}

/// What an undo copy's name adds to its hive file's name.
pub const UNDO_SUFFIX: &str = ".rdprescue-undo";

/// The undo copy of hive file `hive`: `SYSTEM` -> `SYSTEM.rdprescue-undo`.
pub fn undo_copy_path(hive: &Path) -> PathBuf {
    let mut name = hive.file_name().unwrap_or_default().to_os_string();
    name.push(UNDO_SUFFIX);
    hive.with_file_name(name)
}

/// What a commit wrote and found when it read the output back.
#[derive(Debug)]
pub struct Committed {
    /// Where the output now is.
    pub path: PathBuf,
    /// The checks run on the output as read back (image outputs).
    pub after: Option<Inspection>,
}

/// How a new image is read back before it is published (see the module
/// documentation).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Verify {
    /// The container reopened, the patched ranges (and the partition-table
    /// and volume headers) compared byte for byte; the checks run on the
    /// loaded machine with the edited hives substituted.
    #[default]
    Changed,
    /// The output opened as a new machine: every hive re-read and
    /// re-recovered, the edited ones compared whole, the checks run on it.
    Full,
}

/// Write `plan` to `dest` (see the module documentation), verified with
/// [`Verify::Changed`].
pub fn commit(machine: &Machine, plan: &Plan, dest: Destination, progress: Progress) -> Result<Committed> {
    commit_verified(machine, plan, dest, Verify::Changed, progress)
}

/// [`commit`], with the read-back of a new image chosen (`--verify`).
pub fn commit_verified(machine: &Machine, plan: &Plan, dest: Destination, verify: Verify, progress: Progress) -> Result<Committed> {
    match dest {
        Destination::Copy { path, format } => to_image(machine, plan, path, false, format, verify, progress),
        Destination::DiffChild { path, format } => to_image(machine, plan, path, true, format, verify, progress),
        Destination::HiveFile(target) => to_hive_file(machine, plan, target),
        Destination::InPlace { undo } => in_place(machine, plan, undo),
        Destination::InPlaceFiles => files_in_place(machine, plan),
        Destination::HiveDir(dir) => to_hive_dir(machine, plan, dir),
        Destination::PageBlob { source, dest } => super::remote::to_page_blob(machine, plan, source, dest, progress),
    }
}

/// The plan's edits with the hive file each rewrites (file machines only).
fn file_edits<'p>(machine: &Machine, plan: &'p Plan) -> Result<Vec<(&'p HiveEdit, &'p Path)>> {
    if !matches!(machine.origin(), Origin::MountedVolume | Origin::Directory) {
        return Err(Error::Usage(format!("{} is a {}: only a mounted Windows volume or a directory of hive files has its hive files written this way", machine.path().display(), machine.origin().name())));
    }
    plan.edits
        .iter()
        .map(|e| match &e.location {
            HiveLocation::File(p) => Ok((e, p.as_path())),
            HiveLocation::Volume { .. } => Err(Error::Usage("the plan edits an image, not hive files".into())),
        })
        .collect()
}

/// Read a whole hive file (at most [`MAX_HIVE_FILE`] bytes).
fn read_hive_file(p: &Path) -> Result<Vec<u8>> {
    use std::io::Read;
    let err = |source| Error::Open { layer: Layer::Repair, path: p.to_path_buf(), source };
    let mut v = Vec::new();
    std::fs::File::open(p).map_err(err)?.take(MAX_HIVE_FILE + 1).read_to_end(&mut v).map_err(err)?;
    if v.len() as u64 > MAX_HIVE_FILE {
        return Err(Error::unsupported(Layer::Hive, 0, format!("{} is larger than 2 GiB: not a hive", p.display())));
    }
    Ok(v)
}

/// Overwrite file `p` with `bytes` where it is (same file: its security,
/// owner and attributes stay), cut it to their length and flush it.
fn overwrite(p: &Path, bytes: &[u8]) -> Result<()> {
    use std::io::Write;
    let out = |what, source| Error::Output { layer: Layer::Repair, what, path: p.to_path_buf(), source };
    let mut f = std::fs::OpenOptions::new().write(true).open(p).map_err(|e| out("opening for writing", e))?;
    f.write_all(bytes).map_err(|e| out("writing", e))?;
    f.set_len(bytes.len() as u64).map_err(|e| out("setting the length of", e))?;
    f.sync_all().map_err(|e| out("flushing", e))
}

/// `bytes` read back from `p` hold exactly `want`.
fn check_reads_back(p: &Path, want: &[u8]) -> Result<()> {
    let got = read_hive_file(p)?;
    if got != want {
        let at = got.iter().zip(want).position(|(a, b)| a != b).unwrap_or(got.len().min(want.len()));
        return Err(Error::corrupt(Layer::Repair, at as u64, format!("verification: {} does not read back as written", p.display())));
    }
    Ok(())
}

/// The hive files of a mounted volume or hive directory, in place; see the
/// module documentation.
fn files_in_place(machine: &Machine, plan: &Plan) -> Result<Committed> {
    let root = machine.path();
    let edits = file_edits(machine, plan)?;
    if let Some(v) = machine.host_volume() {
        if v.state().hibernated == Some(true) {
            return Err(Error::Refused {
                layer: Layer::Repair,
                msg: format!("{}: Windows is hibernated (hiberfil.sys holds a hibernation image: hibernate or Fast Startup): on resume it overwrites offline changes; shut the VM down fully (shutdown /s /t 0, powercfg /h off) or delete hiberfil.sys first; nothing was written", root.display()),
            });
        }
    }
    // 1. Each file still holds what the plan was made from.
    let mut originals = Vec::new();
    for (e, p) in &edits {
        let undo = undo_copy_path(p);
        if std::fs::symlink_metadata(&undo).is_ok() {
            return Err(Error::Refused {
                layer: Layer::Repair,
                msg: format!("{} exists (the original saved by an earlier fix): restore it with `rdprescue undo {}`, or move it away, first; nothing was written", undo.display(), root.display()),
            });
        }
        // Writable at all (read-only file, no rights): found out before anything is written.
        std::fs::OpenOptions::new().write(true).open(p).map_err(|source| Error::Output { layer: Layer::Repair, what: "opening for writing (nothing was written)", path: p.to_path_buf(), source })?;
        let raw = read_hive_file(p)?;
        let now = crate::machine::load_file(p)?;
        if now.bytes()? != machine.require(e.hive)?.bytes()? {
            return Err(Error::Refused { layer: Layer::Repair, msg: format!("{} changed since rdprescue read it; nothing was written (run the fix again)", p.display()) });
        }
        originals.push(raw);
    }
    // 2. Every original saved, flushed and published before any hive is touched.
    for ((_, p), raw) in edits.iter().zip(&originals) {
        let mut u = NewFile::create(&undo_copy_path(p), &[p])?;
        u.write_all(raw)?;
        check_reads_back(&u.path(), raw)?;
        u.commit()?;
    }
    fault_point("files-undo-saved");
    // 3. Each edited hive staged beside its file (invisible), flushed, verified.
    let mut staged = Vec::new();
    for (e, p) in &edits {
        let mut name = p.file_name().unwrap_or_default().to_os_string();
        name.push(".rdprescue-new");
        let mut s = NewFile::create(&p.with_file_name(name), &[p])?;
        s.write_all(e.new_bytes()?)?;
        verify_hive_file(&s.path(), e)?;
        staged.push(s);
    }
    fault_point("files-staged");
    // 4. Written over the files themselves; a failure from here on names the way back.
    let restore = |e: &Error| Error::corrupt(Layer::Repair, 0, format!("{e}; the originals are saved beside the hive files: restore them with `rdprescue undo {}`", root.display()));
    for (i, (e, p)) in edits.iter().enumerate() {
        overwrite(p, e.new_bytes()?).map_err(|x| restore(&x))?;
        if i == 0 {
            fault_point("files-first-written");
        }
    }
    drop(staged);
    fault_point("before-verify");
    // 5. Read back as a fresh machine: each file exactly the edited hive, and
    // clean with its old logs beside it (they must not apply); then the checks.
    for (e, p) in &edits {
        verify_hive_file(p, e).map_err(|x| restore(&x))?;
    }
    let written = Machine::open(root).map_err(|x| restore(&in_verification(&x)))?;
    verify_loaded(&written, &plan.edits).map_err(|x| restore(&x))?;
    Ok(Committed { path: root.to_path_buf(), after: Some(crate::rdp::inspect(&written)) })
}

/// A new directory `dir` holding the edited hive files; read back together
/// with the hives the plan left alone, where they are.
fn to_hive_dir(machine: &Machine, plan: &Plan, dir: &Path) -> Result<Committed> {
    let edits = file_edits(machine, plan)?;
    if std::fs::symlink_metadata(dir).is_ok() {
        return Err(Error::Refused { layer: Layer::Repair, msg: format!("{} already exists; rdprescue never overwrites (choose a new directory)", dir.display()) });
    }
    // Claiming the name is atomic: a directory that appeared meanwhile fails here.
    std::fs::create_dir(dir).map_err(|source| Error::Output { layer: Layer::Repair, what: "creating the directory", path: dir.to_path_buf(), source })?;
    let written = (|| -> Result<Vec<(crate::hive::HiveKind, PathBuf)>> {
        let mut files: Vec<(crate::hive::HiveKind, PathBuf)> = machine.hive_files().to_vec();
        for (e, p) in &edits {
            let target = dir.join(p.file_name().unwrap_or_default());
            let mut out = NewFile::create(&target, &[p])?;
            out.write_all(e.new_bytes()?)?;
            verify_hive_file(&out.path(), e)?;
            out.commit()?;
            files.retain(|(k, _)| *k != e.hive);
            files.push((e.hive, target));
        }
        Ok(files)
    })();
    let files = match written {
        Ok(f) => f,
        Err(e) => {
            let _ = std::fs::remove_dir_all(dir);
            return Err(e);
        }
    };
    fault_point("before-verify");
    let m = Machine::from_hive_files(dir, files);
    if let Err(e) = verify_loaded(&m, &plan.edits) {
        let _ = std::fs::remove_dir_all(dir);
        return Err(in_verification(&e));
    }
    Ok(Committed { path: dir.to_path_buf(), after: Some(crate::rdp::inspect(&m)) })
}

/// Put back the originals an in-place fix of the hive files of `root` (a
/// mounted Windows volume or a directory of hive files) saved beside them:
/// every undo copy is read first, then each hive file is overwritten with its
/// copy (unless it already holds it), flushed and read back; only then are
/// the undo copies removed.
pub fn undo_files(root: &Path) -> Result<Restored> {
    let m = Machine::open(root)?;
    let mut found = Vec::new();
    for (_, p) in m.hive_files() {
        let u = undo_copy_path(p);
        if u.is_file() {
            let bytes = read_hive_file(&u)?;
            if bytes.len() < 4096 || &bytes[..4] != b"regf" {
                return Err(Error::corrupt(Layer::Repair, 0, format!("{} is not a hive file (an undo copy holds the original hive); nothing was restored", u.display())));
            }
            found.push((p.clone(), u, bytes));
        }
    }
    if found.is_empty() {
        return Err(Error::NotFound { layer: Layer::Repair, path: format!("undo copies (<hive>{UNDO_SUFFIX}) beside the hive files of {}", root.display()) });
    }
    drop(m);
    fault_point("undo-before-write");
    let mut written = 0;
    for (p, _, bytes) in &found {
        if read_hive_file(p).is_ok_and(|now| now == *bytes) {
            continue;
        }
        overwrite(p, bytes)?;
        check_reads_back(p, bytes)?;
        written += 1;
    }
    for (_, u, _) in &found {
        std::fs::remove_file(u).map_err(|source| Error::Output { layer: Layer::Repair, what: "removing the restored undo copy", path: u.clone(), source })?;
        if let Some(d) = u.parent().and_then(|d| std::fs::File::open(d).ok()) {
            let _ = d.sync_all();
        }
    }
    Ok(Restored { written, already: found.len() - written })
}

/// A new image (full copy or differencing child) at `target`.
#[allow(clippy::too_many_arguments)]
fn to_image(machine: &Machine, plan: &Plan, target: &Path, child: bool, format: Option<write::OutFormat>, verify: Verify, progress: Progress) -> Result<Committed> {
    let image = machine.image().ok_or_else(|| Error::Usage(format!("{} is not a disk image: its hives are written with a hive-file destination", machine.path().display())))?;
    if plan.edits.iter().any(|e| !matches!(e.location, HiveLocation::Volume { .. })) {
        return Err(Error::Usage("the plan edits hive files, not an image".into()));
    }
    // Decided (and a mismatched child refused) before anything is created.
    let convert = if child {
        write::check_child_format(image.info.format, target, format)?;
        None
    } else {
        write::conversion(image.info.format, image.disk.len(), target, format)
    };
    // A differencing child is read back through a path beside its target
    // (its parent locator is relative to its directory): a named temporary.
    let mut out = if child { NewFile::create_named(target, &[machine.path()])? } else { NewFile::create(target, &[machine.path()])? };
    // Test hook: the writer is handed one wrong byte inside a patched page;
    // the read-back must refuse the output.
    let wrong;
    // (`RDPRESCUE_FAULT=wrong-byte`: one byte changed in the middle of the
    // patch's largest range, inside a hive page.)
    let patch = if write::fault_armed("wrong-byte") {
        wrong = with_wrong_byte(&plan.patch);
        &wrong
    } else {
        &plan.patch
    };
    if child {
        write::diff_child(image, patch, out.file_mut(), target)?;
    } else {
        write::full_copy_as(image, patch, out.file_mut(), convert, progress)?;
    }
    let after = match verify {
        Verify::Changed => {
            // The flush runs while the output is read back, and the read-back
            // (which needs no machine) while the checks run on the edited
            // hives; all must succeed, and a read-back error comes first.
            let (spans, path, patch) = (readback_spans(machine, image, plan), out.path(), &plan.patch);
            let read_back = || check_readback(image, patch, &spans, &path).map_err(|e| in_verification(&e));
            let checks = || check_sequences(machine, &plan.edits).map(|()| crate::rdp::inspect(&Edited { machine, edits: &plan.edits }));
            // Whichever thread claims the read-back does it: this one, after
            // the checks, if the other has not started by then (its core
            // busy, or slow to wake).
            let claimed = std::sync::atomic::AtomicBool::new(false);
            let claim = || (!claimed.swap(true, std::sync::atomic::Ordering::AcqRel)).then(read_back);
            let (synced, checked) = std::thread::scope(|s| {
                let sync = s.spawn(|| out.sync());
                let checked = (|| {
                    fault_point("before-verify");
                    let (read, after) = match std::thread::Builder::new().name("rdprescue-readback".into()).spawn_scoped(s, claim) {
                        Ok(t) => {
                            let after = checks();
                            let read = match claim() {
                                Some(r) => r,
                                None => t.join().ok().flatten().unwrap_or_else(|| Err(Error::corrupt(Layer::Repair, 0, "verification: the read-back thread failed"))),
                            };
                            (read, after)
                        }
                        // No second thread: one after the other, as before.
                        Err(_) => {
                            read_back()?;
                            (Ok(()), checks())
                        }
                    };
                    read?;
                    after
                })();
                (sync.join(), checked)
            });
            synced.map_err(|_| Error::corrupt(Layer::Repair, 0, "flushing the output: the flushing thread failed"))??;
            checked?
        }
        Verify::Full => {
            out.sync()?;
            fault_point("before-verify");
            // Read the output back like any input: the container, the volumes, the
            // hive files (byte-exact and clean), and the checks.
            let written = Machine::open_image(&out.path()).map_err(|e| in_verification(&e))?;
            verify_loaded(&written, &plan.edits).map_err(|e| in_verification(&e))?;
            verify_files(&written, &plan.files).map_err(|e| in_verification(&e))?;
            crate::rdp::inspect(&written)
        }
    };
    publish(out)?;
    Ok(Committed { path: target.to_path_buf(), after: Some(after) })
}

/// The machine as the plan leaves it: its edited hives replaced by the
/// plan's (loaded back and checked when the plan was made), everything else
/// (the other hives, the Windows volume's files the checks read) as loaded.
struct Edited<'a> {
    machine: &'a Machine,
    edits: &'a [HiveEdit],
}

impl crate::rdp::Hives for Edited<'_> {
    fn hive(&self, kind: crate::hive::HiveKind) -> Option<&crate::hive::tree::Hive> {
        match self.edits.iter().find(|e| e.hive == kind) {
            Some(e) => Some(&e.loaded),
            None => self.machine.hive(kind),
        }
    }
    fn windows_fs(&self) -> Option<&dyn FileSystem> {
        crate::rdp::Hives::windows_fs(self.machine)
    }
}

/// Each edited hive is written clean at a sequence number above every one
/// its logs hold: the stale .LOG1/.LOG2 left on the volume cannot apply.
fn check_sequences(machine: &Machine, edits: &[HiveEdit]) -> Result<()> {
    for e in edits {
        let seen = machine.require(e.hive)?.report.max_sequence_seen;
        if e.new_sequence <= seen || e.loaded.report.state != crate::hive::HiveState::Clean {
            return Err(Error::corrupt(Layer::Hive, 0, format!("verification: the edited {} is not clean above sequence {seen}: its logs could apply", e.path)));
        }
    }
    Ok(())
}

/// Whole pages around each read-back range: a writer that damages the bytes
/// beside a patched range (a torn sector, a shifted block) is caught too.
const READBACK_PAGE: u64 = 4096;
/// The start of the disk read back whatever the patch (MBR, GPT header and
/// entries for 512- and 4096-byte sectors).
const TABLE_AREA: u64 = 64 * 1024;
/// The start of each written volume read back (boot sector and its backup
/// area of a FAT volume, the NTFS boot sectors).
const VOLUME_HEAD: u64 = 8 * 1024;
/// Largest span read back at once.
const READBACK_CHUNK: u64 = 1 << 20;

/// What [`check_readback`] reads back of a new image: every range the plan
/// patched, the partition-table area and the head of every written volume,
/// widened to whole pages inside the disk, sorted, merged.
fn readback_spans(machine: &Machine, input: &crate::image::Image, plan: &Plan) -> Vec<(u64, u64)> {
    let len = input.disk.len();
    let mut spans: Vec<(u64, u64)> = plan.patch.ranges().map(|(o, d)| (o, o + d.len() as u64)).collect();
    spans.push((0, TABLE_AREA));
    let mut parts: Vec<u32> = plan.edits.iter().filter_map(|e| match &e.location {
        HiveLocation::Volume { partition, .. } => Some(*partition),
        HiveLocation::File(_) => None,
    }).collect();
    parts.extend(plan.files.iter().map(|f| f.partition));
    for p in parts {
        if let Some(at) = machine.survey().and_then(|s| s.partition_table.partitions.iter().find(|x| x.index == p)).map(|x| x.offset) {
            spans.push((at, at.saturating_add(VOLUME_HEAD)));
        }
    }
    write::whole_units(spans, READBACK_PAGE, len)
}

/// Read back a new image at `path` through the image layer (a fresh open:
/// headers, BAT, parent locator and linkage) and check that `merged` (see
/// [`readback_spans`]) holds the input's bytes with `patch` laid over them.
fn check_readback(input: &crate::image::Image, patch: &write::Patch, merged: &[(u64, u64)], path: &Path) -> Result<()> {
    let written = crate::image::open(path)?;
    let len = input.disk.len();
    if written.disk.len() < len {
        return Err(Error::corrupt(Layer::Repair, written.disk.len(), format!("the output's disk is {} bytes, the input's {len}", written.disk.len())));
    }
    let ranges: Vec<(u64, &[u8])> = patch.ranges().collect();
    let most = merged.iter().map(|(s, e)| e - s).max().unwrap_or(0).min(READBACK_CHUNK) as usize;
    let (mut want_buf, mut got_buf) = (vec![0u8; most], vec![0u8; most]);
    for &(s, e) in merged {
        let mut a = s;
        while a < e {
            let n = (e - a).min(READBACK_CHUNK) as usize;
            let (want, got) = (&mut want_buf[..n], &mut got_buf[..n]);
            input.disk.read_at(a, want)?;
            // Patch ranges overlapping [a, a + n), laid over the input's bytes.
            write::overlay(&ranges, a, want);
            written.disk.read_at(a, got)?;
            if want != got {
                let i = want.iter().zip(got.iter()).position(|(x, y)| x != y).unwrap_or(0);
                return Err(Error::corrupt(Layer::Repair, a + i as u64, format!("the output's disk does not hold the planned bytes at disk offset {:#x}", a + i as u64)));
            }
            a += n as u64;
        }
    }
    Ok(())
}

fn with_wrong_byte(patch: &write::Patch) -> write::Patch {
    let mut p = patch.clone();
    if let Some((o, d)) = patch.ranges().max_by_key(|(_, d)| d.len()) {
        let at = d.len() / 2;
        p.write(o + at as u64, &[d[at] ^ 0x5a]);
    }
    p
}

/// A new hive file at `target` holding the plan's one edited hive.
fn to_hive_file(machine: &Machine, plan: &Plan, target: &Path) -> Result<Committed> {
    let ([edit], []) = (&plan.edits[..], &plan.files[..]) else {
        return Err(Error::Usage(format!("a hive-file output holds one hive; this change edits {}", plan.edits.len())));
    };
    let mut out = NewFile::create(target, &[machine.path()])?;
    out.write_all(edit.new_bytes()?)?;
    out.sync()?;
    fault_point("before-verify");
    verify_hive_file(&out.path(), edit)?;
    publish(out)?;
    Ok(Committed { path: target.to_path_buf(), after: None })
}

/// Make a verified output visible under its name (never replacing a file).
fn publish(out: NewFile) -> Result<()> {
    fault_point("before-rename");
    out.commit()
}

/// Write `plan` into the machine's own raw disk, after saving the undo file.
fn in_place(machine: &Machine, plan: &Plan, undo: &Path) -> Result<Committed> {
    let dev = machine.path();
    let image = machine.image().filter(|i| i.info.format == Format::Raw).ok_or_else(|| Error::Refused {
        layer: Layer::Repair,
        msg: format!(
            "in place writes raw disks and block devices only; {} is {}: use --out (full copy or --diff-child)",
            dev.display(),
            machine.image().map_or(machine.origin().name(), |i| i.info.format.name())
        ),
    })?;
    // Kept until the writes are done (on Windows: the locked volumes).
    let _held = device::check_not_mounted(dev, &device::Roots::system())?;
    let record = Undo::record(
        image.disk.as_ref(),
        &dev.display().to_string(),
        plan.patch.ranges(),
    )?;
    let mut saved = NewFile::create(undo, &[dev])?;
    // Opened (exclusively, for a block device) before the undo file is
    // published: a busy device leaves no undo file behind.
    let w = DeviceWriter::open(dev)?;
    saved.write_all(&record.to_bytes()?)?;
    saved.sync()?;
    saved.commit()?;
    fault_point("in-place-undo-saved");
    for (off, data) in plan.patch.ranges() {
        w.write_at(off, data)?;
    }
    w.sync()?;
    drop(w);
    fault_point("before-verify");
    let restore = |e: &Error| {
        Error::corrupt(
            Layer::Repair,
            0,
            format!(
                "verification: {e}; restore with `rdprescue undo {} {}`",
                dev.display(),
                undo.display()
            ),
        )
    };
    let written = Machine::open_image(dev).map_err(|e| restore(&e))?;
    verify_loaded(&written, &plan.edits).map_err(|e| restore(&e))?;
    verify_files(&written, &plan.files).map_err(|e| restore(&e))?;
    Ok(Committed {
        path: dev.to_path_buf(),
        after: Some(crate::rdp::inspect(&written)),
    })
}

/// What [`undo`] did.
#[derive(Debug)]
pub struct Restored {
    /// Ranges written back.
    pub written: usize,
    /// Ranges that already held the original bytes.
    pub already: usize,
}

/// Put back the bytes an in-place fix changed on `dev`, from the undo file
/// `file`: the file (checksums, ranges, device identity) and the disk (each
/// range holds the fixed or the original bytes, unless `force`) are checked
/// completely before the first write.
pub fn undo(dev: &Path, file: &Path, force: bool) -> Result<Restored> {
    let bytes = read_capped(file)?;
    let u = Undo::parse(&bytes)?;
    let img = crate::image::open(dev)?;
    if img.info.format != Format::Raw {
        return Err(Error::Refused {
            layer: Layer::Repair,
            msg: format!(
                "{} is {}, not the raw disk this undo file was made for",
                dev.display(),
                img.info.format.name()
            ),
        });
    }
    // Kept until the writes are done (on Windows: the locked volumes).
    let _held = device::check_not_mounted(dev, &device::Roots::system())?;
    let writes = u.plan(img.disk.as_ref(), force)?;
    drop(img);
    let w = DeviceWriter::open(dev)?;
    fault_point("undo-before-write");
    for (off, data) in &writes {
        w.write_at(*off, data)?;
    }
    w.sync()?;
    Ok(Restored {
        written: writes.len(),
        already: u.ranges.len() - writes.len(),
    })
}

/// The undo file's bytes, refusing one larger than any undo file rdprescue writes.
fn read_capped(file: &Path) -> Result<Vec<u8>> {
    use std::io::Read;
    let err = |source| Error::Open {
        layer: Layer::Repair,
        path: file.to_path_buf(),
        source,
    };
    let f = std::fs::File::open(file).map_err(err)?;
    let mut bytes = Vec::new();
    f.take(undo::MAX_FILE + 1)
        .read_to_end(&mut bytes)
        .map_err(err)?;
    Ok(bytes)
}

pub(super) fn in_verification(e: &Error) -> Error {
    Error::corrupt(Layer::Repair, 0, format!("verification: reading the output back: {e}"))
}

/// A hive file read back from disk: clean, and the edited bytes exactly.
fn verify_hive_file(path: &Path, edit: &HiveEdit) -> Result<()> {
    let got = std::fs::read(path).map_err(|source| Error::Output { layer: Layer::Repair, what: "reading back", path: path.to_path_buf(), source })?;
    let want = edit.new_bytes()?;
    if got != want {
        let at = got.iter().zip(want).position(|(a, b)| a != b).unwrap_or(got.len().min(want.len()));
        return Err(Error::corrupt(Layer::Hive, at as u64, format!("verification: the written hive differs from the edited {}", edit.path)));
    }
    let h = crate::hive::load(got, None, None)?;
    if h.report.state != crate::hive::HiveState::Clean {
        return Err(Error::corrupt(Layer::Hive, 0, format!("verification: the written {} is not clean", edit.path)));
    }
    Ok(())
}
