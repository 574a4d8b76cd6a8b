//! `rdprescue cat IMAGE PATH [-p N]`

use rdprescue::machine::Machine;
use std::io::Write;
use std::path::Path;

pub fn run(image_path: &Path, path: &str, partition: Option<u32>) -> anyhow::Result<i32> {
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
