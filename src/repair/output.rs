//! [`NewFile`]: the one way rdprescue creates an output file (a fixed image, a
//! differencing child, a hive, a .reg export, an undo file).
//!
//! The output is built where nobody can see it and published only at
//! [`NewFile::commit`], by an operation that fails if the destination exists:
//! two writers racing for one path cannot both succeed, and a file that
//! appeared at the destination while rdprescue was writing is never replaced.
//!
//! - Linux: an `O_TMPFILE` file in the destination's directory (no name at
//!   all until commit), published with `linkat` (EEXIST if the target
//!   appeared). A killed process leaves nothing behind.
//! - Elsewhere, or when the file system has no `O_TMPFILE`, or when the
//!   output must be opened by a path in its directory before commit (a
//!   differencing child whose parent locator is relative): a named temporary
//!   `.NAME.rdprescue-PID.tmp` next to the target, published by a rename that
//!   never replaces (`renameat2(RENAME_NOREPLACE)`, else `link` + `unlink`).
//!   SIGINT, SIGTERM and SIGHUP remove registered temporaries before the
//!   process exits with 128 + the signal number; temporaries of dead
//!   processes (SIGKILL, power loss) are removed by the next `create` next to
//!   the same target.
//!
//! Test hooks: `RDPRESCUE_NO_TMPFILE=1` forces the named temporary;
//! `RDPRESCUE_PAUSE_BEFORE_COMMIT=1` stops before publishing until a line
//! arrives on standard input.

use crate::error::{Error, Layer, Result};
use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

/// Named temporaries of this process that a signal must remove.
static TEMPS: Mutex<Vec<PathBuf>> = Mutex::new(Vec::new());

fn temps() -> std::sync::MutexGuard<'static, Vec<PathBuf>> {
    TEMPS.lock().unwrap_or_else(|e| e.into_inner())
}

/// Install (once) the handler that removes the registered temporaries on
/// SIGINT/SIGTERM/SIGHUP and exits with 128 + the signal number.
#[cfg(unix)]
fn install_signal_cleanup() {
    use signal_hook::consts::{SIGHUP, SIGINT, SIGTERM};
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        let Ok(mut signals) = signal_hook::iterator::Signals::new([SIGINT, SIGTERM, SIGHUP]) else { return };
        let _ = std::thread::Builder::new().name("rdprescue-signals".into()).spawn(move || {
            if let Some(sig) = signals.forever().next() {
                // Holding the lock: a commit in progress finishes first (its
                // temporary is then gone), no new commit starts.
                let list = temps();
                for p in list.iter() {
                    let _ = std::fs::remove_file(p);
                }
                std::process::exit(128 + sig);
            }
        });
    });
}

#[cfg(not(unix))]
fn install_signal_cleanup() {}

enum Kind {
    /// Linux `O_TMPFILE`: no name until commit.
    #[cfg(any(target_os = "linux", target_os = "android"))]
    Anonymous,
    /// A named temporary next to the target.
    Named(PathBuf),
}

/// An output file under construction; see the module documentation.
/// Dropping it without [`commit`](NewFile::commit) removes everything.
pub struct NewFile {
    target: PathBuf,
    dir: PathBuf,
    file: Option<File>,
    kind: Kind,
    /// Synced, and not handed out for writing since ([`NewFile::file`],
    /// [`NewFile::file_mut`]): `commit` need not flush it again.
    synced: std::sync::atomic::AtomicBool,
}

fn io_err(what: &'static str, path: &Path, source: std::io::Error) -> Error {
    Error::Output { layer: Layer::Repair, what, path: path.to_path_buf(), source }
}

fn refused(msg: String) -> Error {
    Error::Refused { layer: Layer::Repair, msg }
}

/// Whether `a` and `b` name the same existing file: same canonical path, or
/// same device and inode (hard links, bind mounts).
pub fn same_file(a: &Path, b: &Path) -> bool {
    if let (Ok(x), Ok(y)) = (a.canonicalize(), b.canonicalize()) {
        if x == y {
            return true;
        }
    }
    #[cfg(unix)]
    {
        use std::os::unix::fs::MetadataExt;
        if let (Ok(x), Ok(y)) = (std::fs::metadata(a), std::fs::metadata(b)) {
            return x.dev() == y.dev() && x.ino() == y.ino();
        }
    }
    #[cfg(windows)]
    {
        if let Ok(same) = same_file::is_same_file(a, b) {
            return same;
        }
    }
    false
}

/// `.NAME.rdprescue-` — the prefix of a named temporary for the target NAME.
fn temp_prefix(name: &str) -> String {
    format!(".{name}.rdprescue-")
}

/// The named temporary of this process for `target` (in `dir`).
pub fn temp_path(dir: &Path, name: &str) -> PathBuf {
    dir.join(format!("{}{}.tmp", temp_prefix(name), std::process::id()))
}

#[cfg(unix)]
fn process_alive(pid: u32) -> bool {
    let Ok(raw) = i32::try_from(pid) else { return false };
    let Some(pid) = rustix::process::Pid::from_raw(raw) else { return false };
    // EPERM: it exists but belongs to someone else.
    !matches!(rustix::process::test_kill_process(pid), Err(rustix::io::Errno::SRCH))
}

#[cfg(unix)]
fn writer_alive(pid: u32, _temp: &Path) -> bool {
    process_alive(pid)
}

/// Windows: a writer keeps its temporary open until it is published, and a
/// dead process's handles are closed; so a temporary that opens with no
/// sharing at all (no sharing violation) has no live writer. (No process
/// handle needed, which would take unsafe code.)
#[cfg(windows)]
fn writer_alive(_pid: u32, temp: &Path) -> bool {
    use std::os::windows::fs::OpenOptionsExt;
    std::fs::OpenOptions::new().read(true).share_mode(0).open(temp).is_err()
}

#[cfg(not(any(unix, windows)))]
fn writer_alive(_pid: u32, _temp: &Path) -> bool {
    // No cheap, dependable check here: keep the file.
    true
}

/// Remove `.NAME.rdprescue-PID.tmp` files in `dir` whose process is gone
/// (killed with SIGKILL, or the machine went down). Returns how many.
pub fn remove_stale(dir: &Path, name: &str) -> usize {
    let prefix = temp_prefix(name);
    let Ok(rd) = std::fs::read_dir(dir) else { return 0 };
    let mut n = 0;
    for e in rd.flatten() {
        let f = e.file_name();
        let Some(f) = f.to_str() else { continue };
        let Some(pid) = f.strip_prefix(&prefix).and_then(|r| r.strip_suffix(".tmp")).and_then(|p| p.parse::<u32>().ok()) else { continue };
        if pid == std::process::id() || writer_alive(pid, &e.path()) {
            continue;
        }
        if e.file_type().is_ok_and(|t| t.is_file()) && std::fs::remove_file(e.path()).is_ok() {
            n += 1;
        }
    }
    n
}

/// Whether `target` can become a new output, checked before anything is
/// opened or planned (the CLI's validation) and again by [`NewFile::create`]:
/// it is not one of `inputs`, does not exist (any kind of file, a dangling
/// symlink included), and its folder exists.
pub fn preflight(target: &Path, inputs: &[&Path]) -> Result<()> {
    for i in inputs {
        if same_file(target, i) {
            return Err(refused(format!("{} already exists: it is the input, and the input is never written", target.display())));
        }
    }
    if std::fs::symlink_metadata(target).is_ok() {
        return Err(refused(format!("{} already exists; rdprescue never overwrites (choose a new path)", target.display())));
    }
    let dir = match target.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    if !dir.is_dir() {
        return Err(refused(format!("{}: the folder {} does not exist", target.display(), dir.display())));
    }
    Ok(())
}

impl NewFile {
    /// Start a new output at `target`. Refuses a target that exists (any kind
    /// of file, a dangling symlink included) or that is one of `inputs`.
    pub fn create(target: &Path, inputs: &[&Path]) -> Result<NewFile> {
        Self::create_inner(target, inputs, false)
    }

    /// Like [`create`](NewFile::create), but always with a named temporary in
    /// the target's directory, for outputs that must be opened through a path
    /// next to the target before commit (a differencing child finds its
    /// parent relative to its own directory).
    pub fn create_named(target: &Path, inputs: &[&Path]) -> Result<NewFile> {
        Self::create_inner(target, inputs, true)
    }

    fn create_inner(target: &Path, inputs: &[&Path], named: bool) -> Result<NewFile> {
        let name = target.file_name().and_then(|n| n.to_str()).ok_or_else(|| refused(format!("{}: the output needs a file name (UTF-8)", target.display())))?.to_string();
        preflight(target, inputs)?;
        let dir = match target.parent() {
            Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
            _ => PathBuf::from("."),
        };
        install_signal_cleanup();
        remove_stale(&dir, &name);
        let no_tmpfile = named || std::env::var_os("RDPRESCUE_NO_TMPFILE").is_some_and(|v| !v.is_empty() && v != "0");
        #[cfg(any(target_os = "linux", target_os = "android"))]
        if !no_tmpfile {
            use rustix::fs::{Mode, OFlags};
            match rustix::fs::open(&dir, OFlags::TMPFILE | OFlags::RDWR | OFlags::CLOEXEC, Mode::from_raw_mode(0o666)) {
                Ok(fd) => return Ok(NewFile { target: target.to_path_buf(), dir, file: Some(File::from(fd)), kind: Kind::Anonymous, synced: false.into() }),
                // No O_TMPFILE on this file system (or kernel): fall back.
                Err(rustix::io::Errno::OPNOTSUPP | rustix::io::Errno::ISDIR | rustix::io::Errno::INVAL | rustix::io::Errno::NOSYS) => {}
                Err(e) => return Err(io_err("cannot create a file in", &dir, e.into())),
            }
        }
        let _ = no_tmpfile;
        let tmp = temp_path(&dir, &name);
        // Registered before it exists, so a signal during the open removes it too.
        temps().push(tmp.clone());
        match std::fs::OpenOptions::new().read(true).write(true).create_new(true).open(&tmp) {
            Ok(f) => Ok(NewFile { target: target.to_path_buf(), dir, file: Some(f), kind: Kind::Named(tmp), synced: false.into() }),
            Err(e) => {
                temps().retain(|p| *p != tmp);
                Err(io_err("cannot create", &tmp, e))
            }
        }
    }

    /// The file being written.
    pub fn file(&self) -> &File {
        self.synced.store(false, std::sync::atomic::Ordering::Relaxed);
        self.open_file()
    }

    pub fn file_mut(&mut self) -> &mut File {
        *self.synced.get_mut() = false;
        self.file.as_mut().expect("open until commit")
    }

    /// The file, for reading its name or flushing it (not for writing).
    fn open_file(&self) -> &File {
        self.file.as_ref().expect("open until commit")
    }

    /// Where the output will appear.
    pub fn target(&self) -> &Path {
        &self.target
    }

    /// A path that opens the file being written (for reading it back before
    /// commit): `/proc/self/fd/N` for an `O_TMPFILE`, else the temporary.
    pub fn path(&self) -> PathBuf {
        match &self.kind {
            #[cfg(any(target_os = "linux", target_os = "android"))]
            Kind::Anonymous => {
                use std::os::fd::AsRawFd;
                PathBuf::from(format!("/proc/self/fd/{}", self.open_file().as_raw_fd()))
            }
            Kind::Named(p) => p.clone(),
        }
    }

    /// Whether the output is a named temporary (else invisible until commit).
    pub fn is_named(&self) -> bool {
        matches!(self.kind, Kind::Named(_))
    }

    /// Flush the file's data and metadata to stable storage.
    pub fn sync(&self) -> Result<()> {
        self.open_file().sync_all().map_err(|e| io_err("flushing", &self.target, e))?;
        self.synced.store(true, std::sync::atomic::Ordering::Relaxed);
        Ok(())
    }

    /// Write all of `bytes` at the start of the (empty) file and sync it.
    pub fn write_all(&mut self, bytes: &[u8]) -> Result<()> {
        use std::io::Write;
        let t = self.target.clone();
        self.file_mut().write_all(bytes).map_err(|e| io_err("writing", &t, e))?;
        self.sync()
    }

    /// Publish the file at the target, never replacing anything: fails (and
    /// removes the temporary) when the target appeared meanwhile. Syncs the
    /// file (unless [`sync`](NewFile::sync)ed and not handed out for
    /// writing since) and its directory.
    pub fn commit(mut self) -> Result<()> {
        pause_hook();
        // Once is enough: a caller that synced before verifying the output
        // has not written to it since.
        if !self.synced.load(std::sync::atomic::Ordering::Relaxed) {
            self.sync()?;
        }
        let appeared = || refused(format!("{} appeared while rdprescue was writing it; rdprescue never overwrites (nothing was written there)", self.target.display()));
        match &self.kind {
            #[cfg(any(target_os = "linux", target_os = "android"))]
            Kind::Anonymous => {
                use rustix::fs::{AtFlags, CWD};
                use std::os::fd::AsFd;
                let proc_path = self.path();
                let r = rustix::fs::linkat(CWD, &proc_path, CWD, &self.target, AtFlags::SYMLINK_FOLLOW);
                let r = match r {
                    // No /proc: link the descriptor itself (needs CAP_DAC_READ_SEARCH).
                    Err(rustix::io::Errno::NOENT) if !Path::new("/proc/self/fd").is_dir() => rustix::fs::linkat(self.open_file().as_fd(), "", CWD, &self.target, AtFlags::EMPTY_PATH),
                    r => r,
                };
                match r {
                    Ok(()) => {}
                    Err(rustix::io::Errno::EXIST) => return Err(appeared()),
                    Err(e) => return Err(io_err("cannot create", &self.target, e.into())),
                }
            }
            Kind::Named(tmp) => {
                let tmp = tmp.clone();
                let mut list = temps();
                let r = publish_named(&tmp, &self.target);
                list.retain(|p| *p != tmp);
                drop(list);
                if let Err(e) = r {
                    let _ = std::fs::remove_file(&tmp);
                    return Err(if e.kind() == std::io::ErrorKind::AlreadyExists { appeared() } else { io_err("cannot move the output into place at", &self.target, e) });
                }
            }
        }
        self.file = None;
        self.kind = Kind::Named(PathBuf::new());
        if let Ok(d) = File::open(&self.dir) {
            let _ = d.sync_all();
        }
        Ok(())
    }
}

/// Test hook: with `RDPRESCUE_PAUSE_BEFORE_COMMIT` set, say so on stderr and
/// wait for a line on standard input before publishing (tests create a file
/// at the target meanwhile, or send a signal).
fn pause_hook() {
    if std::env::var_os("RDPRESCUE_PAUSE_BEFORE_COMMIT").is_some() {
        eprintln!("rdprescue: paused before commit");
        let mut line = String::new();
        let _ = std::io::stdin().read_line(&mut line);
    }
}

/// Rename `tmp` to `target` unless `target` exists.
fn publish_named(tmp: &Path, target: &Path) -> std::io::Result<()> {
    #[cfg(any(target_os = "linux", target_os = "android"))]
    {
        use rustix::fs::{RenameFlags, CWD};
        match rustix::fs::renameat_with(CWD, tmp, CWD, target, RenameFlags::NOREPLACE) {
            Ok(()) => return Ok(()),
            Err(rustix::io::Errno::INVAL | rustix::io::Errno::NOSYS | rustix::io::Errno::OPNOTSUPP) => {}
            Err(e) => return Err(e.into()),
        }
    }
    // A hard link fails with EEXIST if the target exists: exactly one winner.
    std::fs::hard_link(tmp, target)?;
    std::fs::remove_file(tmp)
}

impl Drop for NewFile {
    fn drop(&mut self) {
        self.file = None;
        #[allow(irrefutable_let_patterns)] // only `Named` exists off Linux
        if let Kind::Named(p) = &self.kind {
            if !p.as_os_str().is_empty() {
                let _ = std::fs::remove_file(p);
                temps().retain(|x| x != p);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{Read, Write};

    fn dir(tag: &str) -> PathBuf {
        let d = std::env::temp_dir().join(format!("rdprescue-output-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        std::fs::create_dir_all(&d).unwrap();
        d
    }

    fn names(d: &Path) -> Vec<String> {
        let mut v: Vec<String> = std::fs::read_dir(d).unwrap().flatten().map(|e| e.file_name().to_string_lossy().into_owned()).collect();
        v.sort();
        v
    }

    #[test]
    fn commit_publishes_and_never_replaces() {
        for named in [false, true] {
            let d = dir(&format!("commit-{named}"));
            let t = d.join("out.img");
            let mut f = if named { NewFile::create_named(&t, &[]) } else { NewFile::create(&t, &[]) }.unwrap();
            f.write_all(b"hello").unwrap();
            // Readable back through path() before commit.
            let mut s = String::new();
            File::open(f.path()).unwrap().read_to_string(&mut s).unwrap();
            assert_eq!(s, "hello");
            assert!(!t.exists(), "visible before commit");
            f.commit().unwrap();
            assert_eq!(std::fs::read(&t).unwrap(), b"hello");
            assert_eq!(names(&d), vec!["out.img"], "named={named}");
            // An existing target is refused up front...
            assert!(NewFile::create(&t, &[]).is_err());
            // ...and one that appears meanwhile is not replaced.
            let t2 = d.join("late.img");
            let mut f = if named { NewFile::create_named(&t2, &[]) } else { NewFile::create(&t2, &[]) }.unwrap();
            f.write_all(b"mine").unwrap();
            std::fs::File::create(&t2).unwrap().write_all(b"theirs").unwrap();
            let e = f.commit().unwrap_err().to_string();
            assert!(e.contains("appeared"), "{e}");
            assert_eq!(std::fs::read(&t2).unwrap(), b"theirs");
            assert_eq!(names(&d), vec!["late.img", "out.img"]);
            let _ = std::fs::remove_dir_all(&d);
        }
    }

    #[test]
    fn drop_removes_and_inputs_are_refused() {
        let d = dir("drop");
        let t = d.join("x.vhdx");
        let f = NewFile::create_named(&t, &[]).unwrap();
        assert!(f.path().exists());
        drop(f);
        assert!(names(&d).is_empty());
        let input = d.join("in.raw");
        std::fs::write(&input, b"in").unwrap();
        let link = d.join("hard.raw");
        std::fs::hard_link(&input, &link).unwrap();
        let e = NewFile::create(&link, &[&input]).err().unwrap().to_string();
        assert!(e.contains("is the input"), "{e}");
        assert!(NewFile::create(&input, &[&input]).is_err());
        // A dangling symlink is an existing name too.
        #[cfg(unix)]
        {
            std::os::unix::fs::symlink(d.join("nowhere"), d.join("dangling")).unwrap();
            assert!(NewFile::create(&d.join("dangling"), &[]).is_err());
        }
        let _ = std::fs::remove_dir_all(&d);
    }

    #[test]
    fn stale_temporaries_of_dead_processes_go() {
        let d = dir("stale");
        // A PID far above pid_max (4194304) is never alive.
        let dead = d.join(".t.img.rdprescue-4294967.tmp");
        let mine = d.join(format!(".t.img.rdprescue-{}.tmp", std::process::id()));
        let other = d.join(".u.img.rdprescue-4294967.tmp");
        for p in [&dead, &mine, &other] {
            std::fs::write(p, b"x").unwrap();
        }
        assert_eq!(remove_stale(&d, "t.img"), 1);
        assert!(!dead.exists() && mine.exists() && other.exists());
        let _ = std::fs::remove_dir_all(&d);
    }
}
