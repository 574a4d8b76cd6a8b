//! `rdprescue cat IMAGE PATH [-p N]`

use rdprescue::machine::Machine;
use std::io::Write;
use std::path::Path;

/// A path inside the volume as people copy it from Windows: a drive letter
/// (`C:\Windows\...`, `C:/Windows/...`) is dropped, since offline the drive
/// letters are not assigned: the Windows volume holding the path is used
/// unless `-p` names a partition.
pub fn volume_path(path: &str) -> &str {
    let b = path.as_bytes();
    if b.len() >= 2 && b[0].is_ascii_alphabetic() && b[1] == b':' && (b.len() == 2 || b[2] == b'\\' || b[2] == b'/') {
        &path[2..]
    } else {
        path
    }
}

pub fn run(image_path: &Path, path: &str, partition: Option<u32>) -> anyhow::Result<i32> {
    let path = volume_path(path);
    // A mounted Windows volume (a directory) is read through the host.
    let m = if image_path.is_dir() { Machine::open(image_path)? } else { Machine::open_image(image_path)? };
    let (_, fs) = m.find_file(partition, path)?;
    let stdout = std::io::stdout();
    let mut out = std::io::BufWriter::with_capacity(1 << 20, stdout.lock());
    let r = fs.read_to(path, &mut out).map_err(anyhow::Error::from).and_then(|_| out.flush().map_err(Into::into));
    match r {
        Err(e) if is_broken_pipe(&e) => Ok(0),
        r => r.map(|_| 0),
    }
}

fn is_broken_pipe(e: &anyhow::Error) -> bool {
    e.chain().any(|c| {
        c.downcast_ref::<std::io::Error>().is_some_and(|io| io.kind() == std::io::ErrorKind::BrokenPipe)
            || c.to_string().contains("Broken pipe")
    })
}

#[cfg(test)]
mod tests {
    use super::volume_path;

    #[test]
    fn drive_letters_are_dropped() {
        assert_eq!(volume_path(r"C:\Windows\System32\config\SYSTEM"), r"\Windows\System32\config\SYSTEM");
        assert_eq!(volume_path("c:/Windows/x"), "/Windows/x");
        assert_eq!(volume_path(r"Windows\x"), r"Windows\x");
        assert_eq!(volume_path("/Windows/x"), "/Windows/x");
        assert_eq!(volume_path("C:"), "");
        assert_eq!(volume_path("CC:\\x"), "CC:\\x");
        assert_eq!(volume_path("é:"), "é:");
    }
}
