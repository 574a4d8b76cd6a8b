//! Validate before acting: what a command can tell wrong from its arguments
//! alone (an unknown check, profile or symptom id, a missing, existing or
//! homeless output, contradictory flags) is refused here, as one line and
//! exit 2, before any image is opened and before any plan is printed. The
//! write pipeline still refuses the same things on its own (`NewFile` never
//! replaces a file); this only says so first. Every write command (`fix`,
//! `reg set/delete/import`, `undo`) calls into this one module.

/// `bail!` with a typed usage error (`Error::Usage`): `--json` reports it
/// with the layer "usage".
macro_rules! usage {
    ($($t:tt)*) => {
        return Err(anyhow::Error::from(rdprescue::Error::Usage(format!($($t)*))))
    };
}
pub(crate) use usage;
use rdprescue::rdp::{catalog, profiles, symptoms};
use std::path::Path;

/// `", did you mean X?"` for the closest candidate (Jaro-Winkler, as clap
/// does for subcommands), or nothing when none is close.
pub fn did_you_mean<'a>(input: &str, candidates: impl IntoIterator<Item = &'a str>) -> String {
    let input = input.to_ascii_lowercase();
    candidates
        .into_iter()
        .map(|c| (strsim::jaro_winkler(&input, &c.to_ascii_lowercase()), c))
        .filter(|(score, _)| *score > 0.8)
        .max_by(|a, b| a.0.total_cmp(&b.0))
        .map(|(_, c)| format!(" (did you mean {c}?)"))
        .unwrap_or_default()
}

/// A `--check` id as the catalog spells it.
pub fn check_id(id: &str) -> anyhow::Result<&'static str> {
    let ids = catalog::ids();
    match ids.iter().find(|i| i.eq_ignore_ascii_case(id)) {
        Some(i) => Ok(i),
        None => usage!("--check {id}: unknown check id{}; `rdprescue checks` lists them", did_you_mean(id, ids.iter().copied())),
    }
}

/// A `--profile` name.
pub fn profile(name: &str) -> anyhow::Result<&'static profiles::Profile> {
    match profiles::find(name) {
        Some(p) => Ok(p),
        None => {
            let names: Vec<&str> = profiles::PROFILES.iter().map(|p| p.name).collect();
            usage!("--profile {name}: unknown profile{} ({}); `rdprescue checks --profiles` describes them", did_you_mean(name, names.iter().copied()), names.join(", "))
        }
    }
}

/// An `--symptom`: a symptom id (`rdprescue checks --symptoms`) or text of
/// an RDP client message; refused when it names no known symptom.
pub fn symptom(text: Option<&str>) -> anyhow::Result<()> {
    let Some(text) = text else { return Ok(()) };
    if symptoms::match_text(text).is_empty() {
        let ids = symptoms::SYMPTOMS.iter().map(|s| s.id);
        usage!(
            "--symptom {text:?}: no known symptom id or RDP client message matches{}; `rdprescue checks --symptoms` lists them",
            did_you_mean(text, ids)
        );
    }
    Ok(())
}

/// A file or directory `flag` will create: not one of `inputs`, not
/// existing (rdprescue never replaces anything), in a folder that exists
/// (the library's own check, `repair::output::preflight`, run early).
pub fn new_path(flag: &str, p: &Path, inputs: &[&Path]) -> anyhow::Result<()> {
    if p.as_os_str().is_empty() {
        usage!("{flag}: empty path");
    }
    rdprescue::repair::output::preflight(p, inputs).map_err(|e| anyhow::Error::from(e).context(flag.to_string()))
}

/// The output of `reg set|delete|import`: a new file, required unless
/// `--dry-run`.
pub fn reg_output(input: &Path, out: Option<&Path>, dry_run: bool) -> anyhow::Result<()> {
    match out {
        Some(p) => new_path("--out", p, &[input]),
        None if dry_run => Ok(()),
        None => usage!("--out NEW is required (or --dry-run): the input is never written"),
    }
}

/// `undo DEVICE [UNDO_FILE]`: the device exists, and a disk's undo file
/// exists (a mounted volume's undo copies are beside its hive files).
pub fn undo(dev: &Path, file: Option<&Path>) -> anyhow::Result<()> {
    if dev.symlink_metadata().is_err() {
        usage!("{}: no such device, image or volume", dev.display());
    }
    match file {
        None if !dev.is_dir() => usage!("name the undo file: rdprescue undo DEVICE UNDO_FILE"),
        Some(f) if !dev.is_dir() && !f.is_file() => usage!("undo file {}: not found (it is the FILE of `fix --in-place --undo FILE`)", f.display()),
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn suggestions_are_close_ids_only() {
        assert_eq!(did_you_mean("rdp-deny-locl", ["rdp-deny-local", "ts-disabled"]), " (did you mean rdp-deny-local?)");
        assert_eq!(did_you_mean("zzzz", ["rdp-deny-local", "ts-disabled"]), "");
        assert!(check_id("RDP-DENY-LOCAL").is_ok_and(|i| i == "rdp-deny-local"));
        let e = check_id("rdp-deny-locl").unwrap_err().to_string();
        assert!(e.contains("did you mean rdp-deny-local?"), "{e}");
    }

    #[test]
    fn new_paths_must_be_new_and_have_a_folder() {
        let d = std::env::temp_dir();
        assert!(new_path("--out", &d, &[]).is_err(), "an existing directory");
        let e = format!("{:#}", new_path("--out", &d.join("rdprescue-no-such-dir-5d1c/x.vhdx"), &[]).unwrap_err());
        assert!(e.starts_with("--out: ") && e.contains("does not exist"), "{e}");
        assert!(new_path("--out", &d.join("rdprescue-preflight-new-5d1c.vhdx"), &[]).is_ok());
        assert!(new_path("--out", Path::new("relative-new-5d1c.vhdx"), &[]).is_ok());
    }
}
