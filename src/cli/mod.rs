//! Command-line front end: argument parsing, output formatting, exit codes.
//! Exit codes: 0 ok, 1 findings (later commands), 2 error.

mod audit;
mod cat;
mod checks;
mod errjson;
mod preflight;
mod diff;
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

/// `--version`: the crate version and the commit it was built from
/// (`git describe --always --dirty`, set by build.rs; "unknown" without git).
const VERSION: &str = concat!(env!("CARGO_PKG_VERSION"), " (", env!("RDPRESCUE_COMMIT"), ")");

#[derive(Parser)]
#[command(
    name = "rdprescue",
    version = VERSION,
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
        /// Order of the findings in the text output: `severity` (default, most severe first) or
        /// `last-write` (newest last-write time of the finding's registry key first, with that time).
        #[arg(long, value_name = "ORDER", value_parser = ["severity", "last-write"])]
        sort: Option<String>,
        /// Event-log window: read the guest's logs (System, Security, RDP) for this long before
        /// their newest event: 14d, 36h, 2w, or a number of days.
        #[arg(long, value_name = "DURATION", default_value = "14d", value_parser = parse_since)]
        since: f64,
        /// Do not read the event logs (no evidence, no confirmed_by).
        #[arg(long)]
        no_events: bool,
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
        /// Print JSON instead of text (errors too: {"error": {...}} on stdout).
        #[arg(long)]
        json: bool,
    },
    /// Inspect many images in parallel, optionally against a baseline; one record per image and a
    /// summary. Exit 0: all pass; 1: some fail; 2: some could not be read.
    Audit(audit::Options),
    /// Read and edit the registry of an image or of a hive file, like reg.exe. reg.exe's
    /// spellings work too (case-insensitive): `reg query IMAGE KEY /v NAME | /ve [/s]`,
    /// `reg add IMAGE KEY /v NAME /t TYPE /d DATA /f --out NEW`, `reg delete IMAGE KEY
    /// [/v NAME | /ve | /va] /f --out NEW`, `reg export IMAGE KEY FILE [/y]`.
    /// A missing key or value: exit 1 (as reg.exe).
    #[command(subcommand)]
    Reg(RegCmd),
    // ---- issue 14: discoverability (checks, completions, man)
    /// List every check (id, title, severity, registry location, fix); with --profiles the fix
    /// profiles, with --symptoms the RDP client messages `inspect --symptom` knows.
    Checks {
        /// List the fix profiles (`fix --profile NAME`) and the checks they target.
        #[arg(long, conflicts_with = "symptoms")]
        profiles: bool,
        /// List the symptom ids (`inspect --symptom ID`) and the checks that can cause each.
        #[arg(long)]
        symptoms: bool,
        /// Print JSON instead of text.
        #[arg(long)]
        json: bool,
    },
    /// Print a shell completion script, e.g. `rdprescue completions bash > /etc/bash_completion.d/rdprescue`.
    Completions {
        #[arg(value_enum)]
        shell: clap_complete::Shell,
    },
    /// Print the man page (roff) on standard output, or write one page per command into DIR.
    Man {
        /// Write rdprescue.1 and rdprescue-COMMAND.1 into this existing directory.
        #[arg(short, long, value_name = "DIR")]
        out: Option<PathBuf>,
    },
    /// Compare two snapshots (images, an image and its differencing child or checkpoint, hive
    /// directories or files): every RDP setting, account, logon right, firewall rule and finding
    /// that differs, with the key last-write times on both sides; --all diffs the whole hives.
    /// Exit 0: no differences; 1: differences; 2: error.
    Diff(diff::Options),
}

#[derive(Subcommand)]
enum RegCmd {
    /// Print a key's values and subkeys (dirty hives are read with their logs replayed).
    Query {
        /// Image (hives are found on its Windows/boot volumes) or a hive file (NAME.LOG1/LOG2 beside it are used).
        source: PathBuf,
        /// Key, e.g. 'HKLM\SYSTEM\CurrentControlSet\Control\Terminal Server' or 'BCD\Objects'.
        key: String,
        /// Only this value ("(Default)" or "" for the default value; reg.exe: /v NAME, /ve).
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
    #[command(visible_alias = "add")]
    Set {
        source: PathBuf,
        /// Key, e.g. 'HKLM\SYSTEM\CurrentControlSet\Control\Terminal Server'.
        key: String,
        /// Value name ("" for the default value; reg.exe: /ve).
        #[arg(short = 'v', long = "value")]
        name: String,
        /// REG_SZ, REG_EXPAND_SZ, REG_MULTI_SZ (items separated by \0), REG_DWORD, REG_QWORD,
        /// REG_BINARY (hex), REG_NONE, REG_DWORD_BIG_ENDIAN. Default: the existing value's type,
        /// else REG_SZ (as reg.exe).
        #[arg(short = 't', long = "type")]
        ty: Option<String>,
        /// The data (numbers in decimal or 0x hex).
        #[arg(short = 'd', long = "data", allow_hyphen_values = true)]
        data: String,
        /// REG_MULTI_SZ item separator instead of \0 (reg.exe: /s).
        #[arg(short = 's', long, value_name = "SEP")]
        separator: Option<String>,
        #[command(flatten)]
        out: WriteArgs,
    },
    /// Delete a value (-v NAME), every value (--all-values) or a whole key, in a NEW copy of
    /// the image or hive file.
    Delete {
        source: PathBuf,
        key: String,
        /// The value to delete ("" for the default value; reg.exe: /v NAME, /ve); without it
        /// the key and its subkeys are deleted.
        #[arg(short = 'v', long = "value")]
        name: Option<String>,
        /// Delete every value of the key, keeping its subkeys (reg.exe: /va).
        #[arg(long, conflicts_with = "name")]
        all_values: bool,
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
        /// Output file, as reg.exe's `reg export KEY FILE` (same as --out).
        #[arg(conflicts_with = "out")]
        file: Option<PathBuf>,
        /// Output file (written atomically, never replacing a file: reg.exe's /y is accepted
        /// and an existing file still refused); default standard output.
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
    /// Print the plan and the result as JSON.
    #[arg(long)]
    json: bool,
    #[command(flatten)]
    format: FormatArg,
}

impl From<WriteArgs> for regwrite::Output {
    fn from(w: WriteArgs) -> Self {
        regwrite::Output {
            format: w.format.format,
            out: w.out,
            diff_child: w.diff_child,
            dry_run: w.dry_run,
            json: w.json,
        }
    }
}

/// `--format` of the commands that write a new image (`fix`, `reg set/delete/import`).
#[derive(clap::Args, Clone, Copy, Debug, Default)]
pub struct FormatArg {
    /// Container format of the new image: vhd (dynamic), vhd-fixed (size rounded up to a whole
    /// MiB, as Azure requires for upload), vhdx (dynamic), raw. Default: from the --out extension
    /// (.vhd, .vhdx/.avhdx, .raw/.img), else the input's format. A --diff-child is always in its
    /// parent's format.
    #[arg(long, value_name = "FORMAT", value_parser = parse_out_format)]
    pub format: Option<rdprescue::image::write::OutFormat>,
}

fn parse_out_format(s: &str) -> Result<rdprescue::image::write::OutFormat, String> {
    use rdprescue::image::write::OutFormat;
    OutFormat::parse(s).ok_or_else(|| format!("unknown format {s:?} (one of: {})", OutFormat::NAMES.join(", ")))
}

/// `--since`: a duration in days (see `evidence::parse_since`).
fn parse_since(s: &str) -> Result<f64, String> {
    rdprescue::evidence::parse_since(s).ok_or_else(|| format!("{s:?} is not a duration such as 14d, 36h, 2w or 3"))
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
    verify: rdprescue::repair::Verify,
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
    let done = rdprescue::repair::commit_verified(m, plan, dest, verify, &mut |done, total| {
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
    // With --json an error is a JSON object on stdout (errjson.rs).
    let json = errjson::wanted(std::env::args_os());
    let cli = match Cli::try_parse_from(regcmd::reg_exe_args(std::env::args_os().collect())) {
        Ok(c) => c,
        Err(e) => {
            let code = if e.use_stderr() { 2 } else { 0 };
            if json && e.use_stderr() {
                errjson::print_usage(&e.to_string());
            } else {
                let _ = e.print();
            }
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
            sort,
            since,
            no_events,
        } => inspect::run(&source, json, symptom.as_deref(), sort.as_deref() == Some("last-write"), (!no_events).then_some(since)),
        Cmd::Fix(o) => fix::run(o),
        Cmd::Undo {
            device,
            undo_file,
            force,
            json,
        } => fix::undo(&device, undo_file.as_deref(), force, json),
        Cmd::Audit(o) => audit::run(o),
        Cmd::Diff(o) => diff::run(o),
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
            separator,
            out,
        }) => regwrite::set(&source, &key, &name, ty.as_deref(), &data, separator.as_deref(), out.into()),
        Cmd::Reg(RegCmd::Delete {
            source,
            key,
            name,
            all_values,
            out,
        }) => regwrite::delete(&source, &key, name.as_deref(), all_values, out.into()),
        Cmd::Reg(RegCmd::Import { source, file, out }) => {
            regwrite::import(&source, &file, out.into())
        }
        Cmd::Reg(RegCmd::Export {
            source,
            key,
            file,
            out,
            utf8,
        }) => regcmd::export(&source, &key, out.or(file).as_deref(), utf8),
        Cmd::Checks { profiles, symptoms, json } => checks::run(profiles, symptoms, json),
        Cmd::Completions { shell } => checks::completions(shell, &mut <Cli as clap::CommandFactory>::command()),
        Cmd::Man { out } => checks::man(<Cli as clap::CommandFactory>::command(), out.as_deref()),
    });
    // What an http(s):// image cost (requests, bytes), for --verbose.
    let t = rdprescue::image::http::transfer();
    if verbose && t.requests > 0 {
        eprintln!("rdprescue: http: {} requests, {} bytes received", t.requests, t.bytes);
    }
    match r {
        Ok(Ok(code)) => code,
        Ok(Err(e)) if json => {
            errjson::print(&e);
            2
        }
        Ok(Err(e)) => {
            eprintln!("rdprescue: error: {}", errjson::redact(&one_line(&e)));
            2
        }
        Err(_) => {
            if json {
                errjson::print_internal();
            }
            2
        }
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
