//! `rdprescue disk IMAGE [--json]`

use super::fmt::size;
use anyhow::Context;
use super::outln;
use rdprescue::fs::FsKind;
use rdprescue::image::ContainerInfo;
use rdprescue::machine::Machine;
use rdprescue::locate::{self, DiskReport};
use std::path::Path;

pub fn run(image_path: &Path, json: bool) -> anyhow::Result<i32> {
    if image_path.is_dir() {
        return mounted(image_path, json);
    }
    let m = Machine::open_image(image_path)?;
    let report = m.survey().context("not a disk image")?;
    let mut o = String::new();
    if json {
        o = serde_json::to_string_pretty(report)?;
        o.push('\n');
        o = rdprescue::image::http::with_transfer(image_path, o);
    } else {
        text(&mut o, report);
    }
    super::emit(o.as_bytes())?;
    Ok(0)
}

fn container(o: &mut String, c: &ContainerInfo, depth: usize) {
    let pad = "  ".repeat(depth);
    let what = if depth == 0 { "image" } else { "parent" };
    outln!(o, "{pad}{what:<10}{}", c.path.display());
    let mut line = format!("{}, virtual size {} ({} bytes)", c.format.name(), size(c.virtual_size), c.virtual_size);
    if let Some(b) = c.block_size {
        line.push_str(&format!(", block size {}", size(b as u64)));
    }
    line.push_str(&format!(", sectors {}/{}", c.logical_sector_size, c.physical_sector_size));
    outln!(o, "{pad}{:<10}{line}", "format");
    let mut file = format!("{} on disk", size(c.file_size));
    if let Some(n) = c.allocated_blocks {
        file.push_str(&format!(", {n} blocks allocated"));
    }
    if let Some(cr) = &c.creator {
        file.push_str(&format!(", created by {cr:?}"));
    }
    outln!(o, "{pad}{:<10}{file}", "file");
    if let Some(id) = &c.disk_id {
        outln!(o, "{pad}{:<10}{id}", "disk id");
    }
    if let Some(l) = &c.log_replayed {
        outln!(o, 
            "{pad}{:<10}pending log replayed in memory: {} entries (sequence {}..{}), {} pages; the file was not modified",
            "log", l.entries, l.first_sequence, l.last_sequence, l.pages
        );
    }
    if let Some(p) = &c.parent {
        container(o, p, depth + 1);
    }
}

fn text(o: &mut String, r: &DiskReport) {
    container(o, &r.container, 0);
    let t = &r.partition_table;
    outln!(o);
    outln!(o, 
        "partitions ({}{})",
        match t.kind {
            rdprescue::volume::TableKind::Mbr => "MBR",
            rdprescue::volume::TableKind::Gpt => "GPT",
            rdprescue::volume::TableKind::None => "none: whole disk",
        },
        t.disk_id.as_ref().map(|d| format!(", disk id {d}")).unwrap_or_default()
    );
    for w in &t.warnings {
        outln!(o, "  warning: {w}");
    }
    let mut rows = vec![["#", "offset", "size", "type", "gpt name", "label", "fs", "notes"].map(String::from)];
    for v in &r.volumes {
        let p = &v.partition;
        let mut notes = Vec::new();
        if p.active {
            notes.push("active".to_string());
        }
        if v.system_reserved {
            notes.push("System Reserved".into());
        }
        if v.windows {
            notes.push("WINDOWS".into());
        }
        if let Some(b) = v.bcd {
            notes.push(format!("BCD {b}"));
        }
        if let Some(s) = &v.state {
            if s.dirty {
                notes.push("DIRTY (chkdsk pending)".into());
            }
            if s.logfile_clean == Some(false) {
                notes.push("$LogFile not clean".into());
            }
            if s.hibernated == Some(true) {
                notes.push("HIBERNATED (hibernate or Fast Startup)".into());
            }
        }
        if let Some(e) = &v.error {
            notes.push(format!("unreadable: {e}"));
        }
        let fs = match v.filesystem {
            FsKind::Unknown => "-".to_string(),
            k => format!("{k:?}").to_lowercase(),
        };
        let ty = if p.type_name == "unknown" { p.type_id.clone() } else { p.type_name.to_string() };
        let label = v.state.as_ref().and_then(|s| s.label.clone()).unwrap_or_default();
        rows.push([p.index.to_string(), format!("{:#x}", p.offset), size(p.size), ty, p.name.clone(), label, fs, notes.join(", ")]);
    }
    let has_names = r.volumes.iter().any(|v| !v.partition.name.is_empty());
    let mut widths = [0usize; 8];
    for row in &rows {
        for (w, c) in widths.iter_mut().zip(row) {
            *w = (*w).max(c.chars().count());
        }
    }
    for row in &rows {
        let mut line = format!("  {:>w0$}  {:>w1$}  {:>w2$}  {:<w3$}", row[0], row[1], row[2], row[3], w0 = widths[0], w1 = widths[1], w2 = widths[2], w3 = widths[3]);
        if has_names {
            line.push_str(&format!("  {:<w$}", row[4], w = widths[4]));
        }
        line.push_str(&format!("  {:<w5$}  {:<w6$}  {}", row[5], row[6], row[7], w5 = widths[5], w6 = widths[6]));
        outln!(o, "{}", line.trim_end());
    }
    outln!(o);
    if r.windows_volumes.is_empty() {
        let locked: Vec<String> = r.volumes.iter().filter(|v| v.filesystem == FsKind::BitLocker).map(|v| v.partition.index.to_string()).collect();
        if locked.is_empty() {
            outln!(o, "windows   not found (no readable volume holds {})", locate::SYSTEM_HIVE);
        } else {
            outln!(o, "windows   not found; BitLocker-encrypted partition(s) {} may hold it: unlock and pass the decrypted volume", locked.join(", "));
        }
    } else {
        for i in &r.windows_volumes {
            outln!(o, "windows   partition {i}: {}", locate::SYSTEM_HIVE);
        }
    }
    match &r.bcd {
        Some(b) => outln!(o, "bcd       partition {}: {} ({})", b.partition, b.path, b.firmware),
        None => outln!(o, "bcd       not found"),
    }
}

/// `disk` on a mounted Windows volume (`F:\`, `/mnt/x`): what rdprescue can
/// reach there. The disk itself (partitions, BCD) is not visible through it.
fn mounted(root: &Path, json: bool) -> anyhow::Result<i32> {
    use rdprescue::machine::{Origin, BCD_UNREACHABLE};
    let m = Machine::open(root)?;
    if m.origin() != Origin::MountedVolume {
        anyhow::bail!("{} is a directory without Windows\\System32\\config: not a mounted Windows volume (give an image or device)", root.display());
    }
    let hives: Vec<(&str, String)> = m.hive_files().iter().map(|(k, p)| (k.short(), p.display().to_string())).collect();
    let hibernated = m.host_volume().and_then(|v| rdprescue::fs::FileSystem::state(v).hibernated) == Some(true);
    let bcd = hives.iter().find(|(k, _)| *k == "BCD").map(|(_, p)| p.clone());
    let mut o = String::new();
    if json {
        let doc = serde_json::json!({
            "path": root.display().to_string(),
            "kind": Origin::MountedVolume.name(),
            "hives": hives.iter().map(|(k, p)| serde_json::json!({"name": k, "path": p})).collect::<Vec<_>>(),
            "hibernated": hibernated,
            "bcd": bcd,
            "bcd_note": bcd.is_none().then_some(BCD_UNREACHABLE),
        });
        o = serde_json::to_string_pretty(&doc)?;
        o.push('\n');
    } else {
        outln!(o, "volume    {} (a mounted Windows volume: partitions and the BCD store are not visible through it)", root.display());
        for (k, p) in &hives {
            outln!(o, "{:<10}{p}", k.to_lowercase());
        }
        if hibernated {
            outln!(o, "warning   hiberfil.sys holds a hibernation image (hibernate or Fast Startup): fix refuses to write");
        }
        if bcd.is_none() {
            outln!(o, "bcd       not found: {BCD_UNREACHABLE}");
        }
    }
    super::emit(o.as_bytes())?;
    Ok(0)
}
