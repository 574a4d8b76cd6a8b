//! Command-line front end: argument parsing, output formatting, exit codes.
//! Exit codes: 0 ok, 1 findings (later commands), 2 error.

mod audit;
mod cat;
mod disk;
mod disks;
mod fix;
mod fmt;
mod inspect;
mod regcmd;
mod regwrite;
mod render;

use clap::{Parser, Subcommand};
use std::path::PathBuf;

#[derive(Parser)]
#[command(
    name = "rdprescue",
    version,
    about = "Offline diagnosis and repair of Windows VM disks that cannot be reached over Remote Desktop"
)]
struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
    /// More detail on stderr: hive facts (reg query), and for an http(s):// image the
    /// requests made and bytes received.
    #[arg(long, global = true)]
    verbose: bool,
}

#[derive(Subcommand)]
enum Cmd {
    /// Describe an image: container, partitions, file systems, Windows volumes, BCD.
    Disk {
        /// Image file (raw, VHD, VHDX, AVHDX) or block device; opened read-only.
        image: PathBuf,
        /// Print JSON instead of text.
        #[arg(long)]
        json: bool,
    },
    /// List the attached disks (size, partition table, the Windows each holds), marking the
    /// system disk, and name the likely broken OS disk (holds Windows, not the system disk).
    Disks {
        /// Print JSON instead of text.
        #[arg(long)]
        json: bool,
    },
    /// Write the bytes of a file inside the image to standard output.
    Cat {
        /// Image file or block device (opened read-only), or a mounted Windows volume (F:\, /mnt/x).
        image: PathBuf,
        /// Path inside the volume, e.g. 'Windows\System32\config\SYSTEM' (case-insensitive).
        path: String,
        /// Partition number (as listed by `disk`); default: the Windows volume holding PATH.
        #[arg(short, long)]
        partition: Option<u32>,
    },
    /// Diagnose why RDP fails: every setting that blocks Remote Desktop, with its fix.
    /// Exit 0: nothing found; 1: findings; 2: error.
    Inspect {
        /// Image file or device (read-only), a mounted Windows volume (F:\, /mnt/x: a directory
        /// holding Windows\System32\config), a directory of hive files (SYSTEM, SOFTWARE, BCD and
        /// their .LOG1/.LOG2), or a SYSTEM hive file.
        source: PathBuf,
        /// JSON output (schema in README).
        #[arg(long)]
        json: bool,
        /// The error message the RDP client showed: lists the checks that can cause it and the
        /// causes outside the disk.
        #[arg(long, value_name = "TEXT")]
        symptom: Option<String>,
    },
    /// Write the fixes of chosen findings to a NEW image (full copy, or a differencing child of
    /// the untouched input), verify it by reading it back, then move it into place.
    /// Exit 0: fixed; 1: written but a targeted check still fires; 2: error (nothing written).
    Fix(fix::Options),
    /// Put back the bytes an in-place fix changed, from its undo file (or, for a mounted
    /// Windows volume, the <hive>.rdprescue-undo copies beside its hive files).
    Undo {
        /// The raw disk or device the fix was written to, or the mounted volume (F:\, /mnt/x).
        device: PathBuf,
        /// The undo file `fix --in-place --undo FILE` wrote (not for a mounted volume).
        undo_file: Option<PathBuf>,
        /// Restore even where the disk changed since the fix.
        #[arg(long)]
        force: bool,
    },
    /// Inspect many images in parallel, optionally against a baseline; one record per image and a
    /// summary. Exit 0: all pass; 1: some fail; 2: some could not be read.
    Audit(audit::Options),
    /// Read the registry of an image or of a hive file, like reg.exe.
    #[command(subcommand)]
    Reg(RegCmd),
}

#[derive(Subcommand)]
enum RegCmd {
    /// Print a key's values and subkeys (dirty hives are read with their logs replayed).
    Query {
        /// Image (hives are found on its Windows/boot volumes) or a hive file (NAME.LOG1/LOG2 beside it are used).
        source: PathBuf,
        /// Key, e.g. 'HKLM\SYSTEM\CurrentControlSet\Control\Terminal Server' or 'BCD\Objects'.
        key: String,
        /// Only this value ("(Default)" for the default value).
        #[arg(short = 'v', long = "value")]
        value: Option<String>,
        /// Recurse into subkeys.
        #[arg(short = 's', long)]
        recursive: bool,
        /// JSON output (includes hive facts: dirty/recovered, sequence numbers, control sets).
        #[arg(long)]
        json: bool,
    },
    /// Set a value (creating missing keys) in a NEW copy of the image or hive file.
    Set {
        source: PathBuf,
        /// Key, e.g. 'HKLM\SYSTEM\CurrentControlSet\Control\Terminal Server'.
        key: String,
        /// Value name ("" for the default value).
        #[arg(short = 'v', long = "value")]
        name: String,
        /// REG_SZ, REG_EXPAND_SZ, REG_MULTI_SZ (items separated by \0), REG_DWORD, REG_QWORD, REG_BINARY (hex).
        #[arg(short = 't', long = "type", default_value = "REG_SZ")]
        ty: String,
        /// The data (numbers in decimal or 0x hex).
        #[arg(short = 'd', long = "data")]
        data: String,
        #[command(flatten)]
        out: WriteArgs,
    },
    /// Delete a value (-v NAME) or a whole key, in a NEW copy of the image or hive file.
    Delete {
        source: PathBuf,
        key: String,
        /// The value to delete; without it the key and its subkeys are deleted.
        #[arg(short = 'v', long = "value")]
        name: Option<String>,
        #[command(flatten)]
        out: WriteArgs,
    },
    /// Apply a .reg file (regedit / `reg export` format, UTF-16LE or UTF-8) to a NEW copy of the
    /// image or hive file: keys, values, `[-KEY]` and `"name"=-` deletions.
    Import {
        source: PathBuf,
        /// The .reg file.
        file: PathBuf,
        #[command(flatten)]
        out: WriteArgs,
    },
    /// Export a key and its subkeys as a .reg file (UTF-16LE with BOM, like regedit).
    Export {
        source: PathBuf,
        key: String,
        /// Output file (written atomically); default standard output.
        #[arg(short, long)]
        out: Option<PathBuf>,
        /// Write UTF-8 without BOM instead of UTF-16LE.
        #[arg(long)]
        utf8: bool,
    },
}

/// Where a registry edit goes: never the input.
#[derive(clap::Args)]
struct WriteArgs {
    /// The new image or hive file (must not exist); invisible until verified, then published; never replaces a file.
    #[arg(long, short)]
    out: Option<PathBuf>,
    /// Write a differencing child of the input image instead of a full copy.
    #[arg(long)]
    diff_child: bool,
    /// Print the change (old -> new) and write nothing.
    #[arg(long)]
    dry_run: bool,
}

impl From<WriteArgs> for regwrite::Output {
    fn from(w: WriteArgs) -> Self {
        regwrite::Output {
            out: w.out,
            diff_child: w.diff_child,
            dry_run: w.dry_run,
        }
    }
}

/// `writeln!` into a `String` (which cannot fail).
macro_rules! outln {
    ($o:expr) => {
        $o.push('\n')
    };
    ($o:expr, $($t:tt)*) => {{
        use std::fmt::Write as _;
        let _ = writeln!($o, $($t)*);
    }};
}
pub(crate) use outln;

/// Write a plan through the library's one write pipeline, with a progress
/// bar on stderr while a full copy is written.
pub(crate) fn commit(
    m: &rdprescue::machine::Machine,
    plan: &rdprescue::repair::Plan,
    dest: rdprescue::repair::Destination,
) -> rdprescue::Result<rdprescue::repair::Committed> {
    let total = m.image().map_or(0, |i| i.disk.len());
    let bar = indicatif::ProgressBar::with_draw_target(
        Some(total),
        indicatif::ProgressDrawTarget::stderr(),
    );
    bar.set_style(
        indicatif::ProgressStyle::with_template(
            "copying {bar:30} {bytes}/{total_bytes} {bytes_per_sec} eta {eta}",
        )
        .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
    );
    let done = rdprescue::repair::commit(m, plan, dest, &mut |done, total| {
        bar.set_length(total);
        bar.set_position(done);
    });
    bar.finish_and_clear();
    done
}

/// Write to stdout; a closed pipe (`| head`) is not an error.
pub(crate) fn emit(bytes: &[u8]) -> std::io::Result<()> {
    use std::io::Write;
    let mut out = std::io::stdout().lock();
    match out.write_all(bytes).and_then(|_| out.flush()) {
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => Ok(()),
        r => r,
    }
}

pub fn main() -> i32 {
    // Parsers never panic on bad input by design; should one do so anyway,
    // report it as one line and exit 2 instead of a backtrace.
    std::panic::set_hook(Box::new(|info| {
        if rdprescue::fs::in_guard() {
            return; // becomes a one-line "malformed ... structures" error
        }
        let msg = info
            .payload()
            .downcast_ref::<&str>()
            .map(|s| s.to_string())
            .or_else(|| info.payload().downcast_ref::<String>().cloned())
            .unwrap_or_default();
        let loc = info
            .location()
            .map(|l| format!(" ({}:{})", l.file(), l.line()))
            .unwrap_or_default();
        eprintln!("rdprescue: internal error: {msg}{loc}");
    }));
    let cli = match Cli::try_parse() {
        Ok(c) => c,
        Err(e) => {
            let code = if e.use_stderr() { 2 } else { 0 };
            let _ = e.print();
            return code;
        }
    };
    let verbose = cli.verbose;
    let r = std::panic::catch_unwind(|| match cli.cmd {
        Cmd::Disk { image, json } => disk::run(&image, json),
        Cmd::Disks { json } => disks::run(json),
        Cmd::Cat {
            image,
            path,
            partition,
        } => cat::run(&image, &path, partition),
        Cmd::Inspect {
            source,
            json,
            symptom,
        } => inspect::run(&source, json, symptom.as_deref()),
        Cmd::Fix(o) => fix::run(o),
        Cmd::Undo {
            device,
            undo_file,
            force,
        } => fix::undo(&device, undo_file.as_deref(), force),
        Cmd::Audit(o) => audit::run(o),
        Cmd::Reg(RegCmd::Query {
            source,
            key,
            value,
            recursive,
            json,
        }) => regcmd::query(&source, &key, value.as_deref(), recursive, json, verbose),
        Cmd::Reg(RegCmd::Set {
            source,
            key,
            name,
            ty,
            data,
            out,
        }) => regwrite::set(&source, &key, &name, &ty, &data, out.into()),
        Cmd::Reg(RegCmd::Delete {
            source,
            key,
            name,
            out,
        }) => regwrite::delete(&source, &key, name.as_deref(), out.into()),
        Cmd::Reg(RegCmd::Import { source, file, out }) => {
            regwrite::import(&source, &file, out.into())
        }
        Cmd::Reg(RegCmd::Export {
            source,
            key,
            out,
            utf8,
        }) => regcmd::export(&source, &key, out.as_deref(), utf8),
    });
    // What an http(s):// image cost (requests, bytes), for --verbose.
    let t = rdprescue::image::http::transfer();
    if verbose && t.requests > 0 {
        eprintln!("rdprescue: http: {} requests, {} bytes received", t.requests, t.bytes);
    }
    match r {
        Ok(Ok(code)) => code,
        Ok(Err(e)) => {
            eprintln!("rdprescue: error: {}", one_line(&e));
            2
        }
        Err(_) => 2,
    }
}

/// An error and its causes on one line.
pub(crate) fn one_line(e: &anyhow::Error) -> String {
    let mut s = e.to_string();
    for c in e.chain().skip(1) {
        let c = c.to_string();
        if !s.contains(&c) {
            s.push_str(": ");
            s.push_str(&c);
        }
    }
    s.replace('\n', " ")
}
