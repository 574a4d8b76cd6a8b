//! `rdprescue cat IMAGE PATH [-p N]`

use rdprescue::{image, locate, volume};
use std::io::Write;
use std::path::Path;

pub fn run(image_path: &Path, path: &str, partition: Option<u32>) -> anyhow::Result<i32> {
    let img = image::open(image_path)?;
    let table = volume::read_partitions(img.disk.as_ref())?;
    let (_, fs) = locate::find_volume(&img, &table, partition, path)?;
    let stdout = std::io::stdout();
    let mut out = std::io::BufWriter::with_capacity(1 << 20, stdout.lock());
    fs.read_to(path, &mut out)?;
    out.flush()?;
    Ok(0)
}
