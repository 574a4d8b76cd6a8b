//! A Windows volume the host has mounted (`F:\` on a Windows rescue VM,
//! `/mnt/x` on a Linux one), read through the host's own file system behind
//! the same [`FileSystem`] trait as a volume rdprescue mounts itself, so that
//! `Machine::find_file` (and `cat`, and every reader of files on the Windows
//! volume) works the same for both.
//!
//! Paths are matched case-insensitively, as on NTFS: an exact match first
//! (the only lookup Windows and a case-insensitive Linux mount need), else
//! the first directory entry whose name matches ignoring case (ntfs-3g and
//! ntfs3 mounts can be case-sensitive). `..` is refused: a path never leaves
//! the volume.

use crate::error::{Error, Layer, Result};
use crate::fs::{components, FileStat, FileSystem, FsKind, FsState};
use std::io::Write;
use std::path::{Path, PathBuf};

/// The root of a mounted volume; see the module documentation.
pub struct HostDir {
    root: PathBuf,
    state: FsState,
}

impl HostDir {
    /// The volume mounted at `root`. Of the file-system state only what a
    /// file can tell is known: whether `hiberfil.sys` holds a hibernation
    /// image (the dirty flag and `$LogFile` are the host's business).
    pub fn new(root: &Path) -> HostDir {
        let mut d = HostDir::new_unprobed(root);
        d.state.hibernated = Some(d.head("hiberfil.sys", 4).is_some_and(|h| h.eq_ignore_ascii_case(b"hibr") || h.eq_ignore_ascii_case(b"wake")));
        d
    }

    /// The volume at `root`, its state not looked at (for path lookups).
    pub fn new_unprobed(root: &Path) -> HostDir {
        HostDir { root: root.to_path_buf(), state: FsState::default() }
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    /// The first `n` bytes of file `path`, if it exists and can be read.
    fn head(&self, path: &str, n: u64) -> Option<Vec<u8>> {
        use std::io::Read;
        let p = self.resolve(path).ok()?;
        let mut v = Vec::new();
        std::fs::File::open(p).ok()?.take(n).read_to_end(&mut v).ok()?;
        Some(v)
    }

    /// The host path of volume path `path` (`\Windows\System32\config`,
    /// any case, `\` or `/`), or `NotFound`.
    pub fn resolve(&self, path: &str) -> Result<PathBuf> {
        let mut at = self.root.clone();
        let mut walked = String::new();
        for c in components(path) {
            walked.push('\\');
            walked.push_str(c);
            let not_found = || Error::NotFound { layer: Layer::Fs, path: format!("{}{walked}", self.root.display()) };
            if c == ".." {
                return Err(Error::Usage(format!("{path}: `..` leaves the volume")));
            }
            let exact = at.join(c);
            if std::fs::symlink_metadata(&exact).is_ok() {
                at = exact;
                continue;
            }
            let rd = std::fs::read_dir(&at).map_err(|_| not_found())?;
            let want = c.to_lowercase();
            let hit = rd.flatten().find(|e| e.file_name().to_string_lossy().to_lowercase() == want).ok_or_else(not_found)?;
            at = hit.path();
        }
        Ok(at)
    }

    fn io(&self, p: &Path, source: std::io::Error) -> Error {
        if source.kind() == std::io::ErrorKind::NotFound {
            return Error::NotFound { layer: Layer::Fs, path: p.display().to_string() };
        }
        Error::Open { layer: Layer::Fs, path: p.to_path_buf(), source }
    }
}

impl FileSystem for HostDir {
    /// What the host mounted is its business: reported as not known.
    fn kind(&self) -> FsKind {
        FsKind::Unknown
    }

    fn state(&self) -> &FsState {
        &self.state
    }

    fn stat(&self, path: &str) -> Result<FileStat> {
        let p = self.resolve(path)?;
        let m = std::fs::metadata(&p).map_err(|e| self.io(&p, e))?;
        Ok(FileStat { size: m.len(), is_dir: m.is_dir() })
    }

    fn read_to(&self, path: &str, out: &mut dyn Write) -> Result<u64> {
        let p = self.resolve(path)?;
        if std::fs::metadata(&p).map_err(|e| self.io(&p, e))?.is_dir() {
            return Err(Error::Usage(format!("{} is a directory", p.display())));
        }
        let mut f = std::fs::File::open(&p).map_err(|e| self.io(&p, e))?;
        std::io::copy(&mut f, out).map_err(|source| Error::Io { layer: Layer::Fs, offset: 0, path: p.display().to_string(), source })
    }

    fn read_at(&self, path: &str, offset: u64, buf: &mut [u8]) -> Result<usize> {
        use std::io::{Read, Seek};
        let p = self.resolve(path)?;
        let mut f = std::fs::File::open(&p).map_err(|e| self.io(&p, e))?;
        let io = |source| Error::Io { layer: Layer::Fs, offset, path: p.display().to_string(), source };
        f.seek(std::io::SeekFrom::Start(offset)).map_err(io)?;
        let mut done = 0;
        while done < buf.len() {
            match f.read(&mut buf[done..]) {
                Ok(0) => break,
                Ok(n) => done += n,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(e) => return Err(io(e)),
            }
        }
        Ok(done)
    }

    /// The host's directory listing (names as the host gives them), at most
    /// [`MAX_DIR_ENTRIES`](crate::fs::MAX_DIR_ENTRIES) like NTFS's: the
    /// Group Policy readers list `History` to find unnamed GPO folders.
    fn list_dir(&self, path: &str) -> Result<Vec<String>> {
        let p = self.resolve(path)?;
        let rd = std::fs::read_dir(&p).map_err(|e| self.io(&p, e))?;
        let mut names = Vec::new();
        for e in rd {
            let e = e.map_err(|source| Error::Io { layer: Layer::Fs, offset: 0, path: p.display().to_string(), source })?;
            if names.len() >= crate::fs::MAX_DIR_ENTRIES {
                break;
            }
            names.push(e.file_name().to_string_lossy().into_owned());
        }
        names.sort();
        Ok(names)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn list_dir_names_entries_in_any_case() {
        let t = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(t.path().join("ProgramData/Microsoft/Group Policy/History/{A}")).unwrap();
        std::fs::create_dir_all(t.path().join("ProgramData/Microsoft/Group Policy/History/{B}")).unwrap();
        let d = HostDir::new_unprobed(t.path());
        assert_eq!(d.list_dir(r"\programdata\microsoft\group policy\history").unwrap(), vec!["{A}", "{B}"]);
        assert!(d.list_dir(r"\nothing").is_err());
    }

    #[test]
    fn paths_resolve_in_any_case_and_never_leave_the_root() {
        let t = std::env::temp_dir().join(format!("rdprescue-hostdir-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&t);
        std::fs::create_dir_all(t.join("Windows/System32/config")).unwrap();
        std::fs::write(t.join("Windows/System32/config/SYSTEM"), b"regf").unwrap();
        std::fs::write(t.join("hiberfil.sys"), b"HIBRxxxx").unwrap();
        let d = HostDir::new(&t);
        assert_eq!(d.state().hibernated, Some(true));
        let got = d.resolve(r"\windows\SYSTEM32\Config\system").unwrap();
        if cfg!(windows) {
            // A case-insensitive file system finds the name as asked: the same file.
            let norm = |p: &Path| p.to_string_lossy().replace('/', "\\").to_lowercase();
            assert_eq!(norm(&got), norm(&t.join("Windows/System32/config/SYSTEM")));
        } else {
            assert_eq!(got, t.join("Windows/System32/config/SYSTEM"));
        }
        assert_eq!(d.read_file("windows/system32/config/system", 100).unwrap(), b"regf");
        assert!(d.stat("Windows").unwrap().is_dir);
        assert!(matches!(d.stat(r"Windows\nothing"), Err(Error::NotFound { .. })));
        assert!(matches!(d.stat(r"Windows\..\..\etc\passwd"), Err(Error::Usage(_))));
        assert!(matches!(d.read_file("Windows", 100), Err(Error::Usage(_))));
        std::fs::remove_dir_all(&t).unwrap();
    }
}
