//! Positional, read-only access to the container file itself.

use crate::error::{Error, Layer, Result};
use std::fs::File;
use std::io::{Seek, SeekFrom};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

/// Bytes read from container files by this process (all `FileSource`s): lets
/// tests and benchmarks check that only the needed bytes are read.
static BYTES_READ: AtomicU64 = AtomicU64::new(0);

/// Total bytes read from image files so far by this process.
pub fn bytes_read() -> u64 {
    BYTES_READ.load(Ordering::Relaxed)
}

/// A container file (or block device) opened read-only. Reads are positional
/// (`pread`), so one `FileSource` can be shared between threads.
pub struct FileSource {
    data: Backing,
    path: PathBuf,
    len: u64,
}

enum Backing {
    File(File),
    /// In-memory bytes: for fuzzing and tests.
    Mem(Vec<u8>),
}

impl FileSource {
    /// Open read-only. Never opens for writing: the input is sacred.
    pub fn open(path: &Path) -> Result<Self> {
        let mut file = File::open(path).map_err(|source| Error::Open {
            layer: Layer::Raw,
            path: path.to_path_buf(),
            source,
        })?;
        // Block devices report 0 in metadata; seeking to the end works for both.
        let len = file.seek(SeekFrom::End(0)).map_err(|source| Error::Io {
            layer: Layer::Raw,
            offset: 0,
            path: path.display().to_string(),
            source,
        })?;
        Ok(FileSource { data: Backing::File(file), path: path.to_path_buf(), len })
    }

    /// A source over bytes in memory; `path` is only used for messages and to
    /// resolve relative parent paths.
    pub fn from_bytes(path: &Path, bytes: Vec<u8>) -> Self {
        FileSource { len: bytes.len() as u64, data: Backing::Mem(bytes), path: path.to_path_buf() }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    pub fn len(&self) -> u64 {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Read `len` bytes at `offset` into a new vector (callers bound `len`).
    pub fn read_vec(&self, layer: Layer, offset: u64, len: u64) -> Result<Vec<u8>> {
        if offset.checked_add(len).is_none_or(|e| e > self.len) {
            return Err(Error::corrupt(layer, offset, format!("read of {len} bytes past end of file {} ({} bytes): file truncated?", self.path.display(), self.len)));
        }
        let mut v = vec![0u8; len as usize];
        self.read_at(layer, offset, &mut v)?;
        Ok(v)
    }

    /// Read exactly `buf.len()` bytes at `offset`; a read past the end of the
    /// file is reported as truncation by `layer`.
    pub fn read_at(&self, layer: Layer, offset: u64, buf: &mut [u8]) -> Result<()> {
        let end = offset.checked_add(buf.len() as u64);
        if end.is_none_or(|e| e > self.len) {
            return Err(Error::corrupt(
                layer,
                offset,
                format!(
                    "read of {} bytes past end of file {} ({} bytes): file truncated?",
                    buf.len(),
                    self.path.display(),
                    self.len
                ),
            ));
        }
        BYTES_READ.fetch_add(buf.len() as u64, Ordering::Relaxed);
        let file = match &self.data {
            Backing::File(f) => f,
            Backing::Mem(m) => {
                // In range: checked above.
                let o = offset as usize;
                buf.copy_from_slice(&m[o..o + buf.len()]);
                return Ok(());
            }
        };
        pread_exact(file, offset, buf).map_err(|source| Error::Io {
            layer,
            offset,
            path: self.path.display().to_string(),
            source,
        })
    }
}

#[cfg(unix)]
fn pread_exact(f: &File, offset: u64, buf: &mut [u8]) -> std::io::Result<()> {
    use std::os::unix::fs::FileExt;
    f.read_exact_at(buf, offset)
}

#[cfg(windows)]
fn pread_exact(f: &File, mut offset: u64, mut buf: &mut [u8]) -> std::io::Result<()> {
    use std::os::windows::fs::FileExt;
    while !buf.is_empty() {
        let n = f.seek_read(buf, offset)?;
        if n == 0 {
            return Err(std::io::ErrorKind::UnexpectedEof.into());
        }
        offset += n as u64;
        buf = &mut buf[n..];
    }
    Ok(())
}
