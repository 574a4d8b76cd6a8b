//! Typed errors for the library. Every error names the layer it comes from and,
//! where it makes sense, the byte offset (in that layer's address space) that was
//! being read, so that a failure prints as one actionable line.

use std::fmt;
use std::path::PathBuf;

/// The layer of the stack an error comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Layer {
    Raw,
    Vhd,
    Vhdx,
    Mbr,
    Gpt,
    Volume,
    Ntfs,
    Fat,
    Fs,
    Hive,
    HiveLog,
    /// The write pipeline: outputs, undo files, devices written in place.
    Repair,
    /// Group Policy registry files (`Registry.pol`, PReg format).
    PolicyPreg,
    /// Group Policy security templates (`GptTmpl.inf`).
    PolicyInf,
    /// Container detection: a file that is no disk image this tool reads.
    Image,
    /// VMDK containers (sparse, stream-optimized, descriptor + extents).
    Vmdk,
    /// QCOW2 containers.
    Qcow2,
    Http,
    /// Windows event logs (`.evtx`) read for evidence.
    Evtx,
}

impl fmt::Display for Layer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Layer::Raw => "image/raw",
            Layer::Vhd => "image/vhd",
            Layer::Vhdx => "image/vhdx",
            Layer::Mbr => "volume/mbr",
            Layer::Gpt => "volume/gpt",
            Layer::Volume => "volume",
            Layer::Ntfs => "fs/ntfs",
            Layer::Fat => "fs/fat",
            Layer::Fs => "fs",
            Layer::Hive => "hive",
            Layer::HiveLog => "hive/log",
            Layer::Repair => "repair",
            Layer::PolicyPreg => "policy/preg",
            Layer::PolicyInf => "policy/inf",
            Layer::Image => "image",
            Layer::Vmdk => "image/vmdk",
            Layer::Qcow2 => "image/qcow2",
            Layer::Http => "image/http",
            Layer::Evtx => "evidence/evtx",
        })
    }
}

#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Structurally invalid or hostile data.
    #[error("{layer} at offset {offset:#x}: {msg}")]
    Corrupt { layer: Layer, offset: u64, msg: String },

    /// A valid structure that this tool does not handle (yet), e.g. BitLocker.
    #[error("{layer} at offset {offset:#x}: unsupported: {msg}")]
    Unsupported { layer: Layer, offset: u64, msg: String },

    /// An I/O error from the operating system.
    #[error("{layer} at offset {offset:#x}: I/O error on {path}: {source}")]
    Io {
        layer: Layer,
        offset: u64,
        path: String,
        #[source]
        source: std::io::Error,
    },

    /// Opening a file (image or parent image) failed.
    #[error("{layer}: cannot open {}: {source}", path.display())]
    Open {
        layer: Layer,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },

    /// The parent of a differencing disk could not be found.
    #[error("{layer} at offset {offset:#x}: parent disk missing: expected {expected} (looked for: {tried})")]
    MissingParent {
        layer: Layer,
        offset: u64,
        expected: String,
        tried: String,
    },

    /// A path looked up inside a file system does not exist.
    #[error("{layer}: {path}: not found")]
    NotFound { layer: Layer, path: String },

    /// Bad user input (unknown partition number and the like).
    #[error("{0}")]
    Usage(String),

    /// A write rdprescue will not do: the output exists or is the input, the
    /// device is mounted, the volume is hibernated, ...
    #[error("{layer}: refusing to write: {msg}")]
    Refused { layer: Layer, msg: String },

    /// An error below, with what was being done when it happened.
    #[error("{context}: {source}")]
    Context {
        context: String,
        #[source]
        source: Box<Error>,
    },

    /// Writing, syncing or moving an output file failed.
    #[error("{layer}: {what} {}: {source}", path.display())]
    Output {
        layer: Layer,
        what: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    pub fn corrupt(layer: Layer, offset: u64, msg: impl Into<String>) -> Self {
        Error::Corrupt { layer, offset, msg: msg.into() }
    }
    pub fn unsupported(layer: Layer, offset: u64, msg: impl Into<String>) -> Self {
        Error::Unsupported { layer, offset, msg: msg.into() }
    }
    /// This error, saying what was being done (`cannot read the SYSTEM hive: ...`).
    pub fn context(self, context: impl Into<String>) -> Self {
        Error::Context { context: context.into(), source: Box::new(self) }
    }

    /// An owned copy of an error kept in a cache (a hive or a mount that
    /// failed once fails the same way for every caller). I/O errors keep their
    /// kind and message; the OS error object itself cannot be cloned.
    pub fn duplicate(&self) -> Self {
        let io = |e: &std::io::Error| std::io::Error::new(e.kind(), e.to_string());
        match self {
            Error::Corrupt { layer, offset, msg } => Error::Corrupt { layer: *layer, offset: *offset, msg: msg.clone() },
            Error::Unsupported { layer, offset, msg } => Error::Unsupported { layer: *layer, offset: *offset, msg: msg.clone() },
            Error::Io { layer, offset, path, source } => Error::Io { layer: *layer, offset: *offset, path: path.clone(), source: io(source) },
            Error::Open { layer, path, source } => Error::Open { layer: *layer, path: path.clone(), source: io(source) },
            Error::MissingParent { layer, offset, expected, tried } => Error::MissingParent { layer: *layer, offset: *offset, expected: expected.clone(), tried: tried.clone() },
            Error::NotFound { layer, path } => Error::NotFound { layer: *layer, path: path.clone() },
            Error::Usage(m) => Error::Usage(m.clone()),
            Error::Context { context, source } => Error::Context { context: context.clone(), source: Box::new(source.duplicate()) },
            Error::Refused { layer, msg } => Error::Refused { layer: *layer, msg: msg.clone() },
            Error::Output { layer, what, path, source } => Error::Output { layer: *layer, what, path: path.clone(), source: io(source) },
        }
    }
}

/// Shorthand: `bail!(Layer::Vhd, off, "bad {}", x)` returns a `Corrupt` error.
#[macro_export]
macro_rules! corrupt {
    ($layer:expr, $off:expr, $($fmt:tt)+) => {
        return Err($crate::error::Error::corrupt($layer, $off as u64, format!($($fmt)+)))
    };
}
