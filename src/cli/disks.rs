//! `rdprescue disks [--json]`

use super::fmt::size;
use super::outln;
use rdprescue::disks::{self, DiskList};
use rdprescue::volume::TableKind;

pub fn run(json: bool) -> anyhow::Result<i32> {
    let list = disks::list();
    let mut o = String::new();
    if json {
        o = serde_json::to_string_pretty(&list)?;
        o.push('\n');
    } else {
        text(&mut o, &list);
    }
    super::emit(o.as_bytes())?;
    Ok(0)
}

fn text(o: &mut String, l: &DiskList) {
    if l.disks.is_empty() {
        outln!(o, "no disks found");
        return;
    }
    let mut rows = vec![["disk", "size", "sector", "table", "", "windows"].map(String::from)];
    for d in &l.disks {
        let mut name = d.path.display().to_string();
        if let Some(b) = &d.backing_file {
            name.push_str(&format!(" ({})", b.display()));
        }
        let table = match d.partition_table {
            Some(TableKind::Mbr) => "MBR",
            Some(TableKind::Gpt) => "GPT",
            Some(TableKind::None) => "none",
            None => "-",
        };
        let what = match (&d.error, &d.windows) {
            (Some(e), _) => format!("unreadable: {e}"),
            (None, Some(w)) => {
                let parts: Vec<String> = [w.product_name.clone(), w.build.as_ref().map(|b| format!("build {b}")), w.computer_name.as_ref().map(|c| format!("computer {c}"))].into_iter().flatten().collect();
                let mut s = format!("partition {}: {}", w.partition, if parts.is_empty() { "Windows".to_string() } else { parts.join(", ") });
                if let Some(e) = &w.error {
                    s.push_str(&format!(" (incomplete: {e})"));
                }
                s
            }
            (None, None) => "-".to_string(),
        };
        rows.push([
            name,
            d.size.map_or("-".into(), size),
            d.sector_size.map_or("-".into(), |s| s.to_string()),
            table.to_string(),
            if d.system { "SYSTEM".into() } else { String::new() },
            what,
        ]);
    }
    let mut w = [0usize; 6];
    for r in &rows {
        for (w, c) in w.iter_mut().zip(r) {
            *w = (*w).max(c.chars().count());
        }
    }
    for r in &rows {
        let line = format!("{:<a$}  {:>b$}  {:>c$}  {:<d$}  {:<e$}  {}", r[0], r[1], r[2], r[3], r[4], r[5], a = w[0], b = w[1], c = w[2], d = w[3], e = w[4]);
        outln!(o, "{}", line.trim_end());
    }
    outln!(o);
    let names: Vec<String> = l.likely_broken.iter().map(|p| p.display().to_string()).collect();
    match (names.len(), l.system_disk_known) {
        (0, _) => outln!(o, "hint: no attached disk other than the system disk holds Windows"),
        (1, true) => outln!(o, "hint: {} holds Windows and is not the system disk: likely the broken OS disk (rdprescue inspect {})", names[0], names[0]),
        (_, true) => outln!(o, "hint: {} hold Windows and are not the system disk: one of them is likely the broken OS disk", names.join(", ")),
        (_, false) => outln!(o, "hint: the system disk could not be identified; disks holding Windows: {}", names.join(", ")),
    }
}
