//! A fix written into an Azure page blob (`fix SOURCE_URL --out-url
//! DEST_URL`, issue 17): the destination of the one commit pipeline
//! ([`super::Destination::PageBlob`]) that costs O(changed bytes) instead of
//! a download and an upload of the whole disk.
//!
//! 1. Refuse up front: the source is not a fixed VHD (what Azure disks are:
//!    the virtual disk's bytes are the blob's first bytes, 1:1, and the
//!    footer follows, so writing disk offsets keeps the VHD valid without
//!    touching the footer), the destination is the source, or the
//!    destination already exists (Get Blob Properties answers 200).
//! 2. A server-side Copy Blob of the source into the destination (refused
//!    by the service should the destination appear meanwhile:
//!    `If-None-Match: *`), polled until it ends, with progress, bounded.
//! 3. The copy is a page blob of the source's length.
//! 4. Put Page of only the plan's changed ranges, widened to whole 512-byte
//!    pages (the bytes around a partial page come from the source), at most
//!    4 MiB a request.
//! 5. Read back: each written range fetched again and compared; then the
//!    destination opened as a fresh [`Machine`] through the HTTP source,
//!    every edited hive and file verified byte for byte and clean, and the
//!    checks run again.
//!
//! A failure from step 2 on deletes the destination blob (only a blob this
//! fix created: it did not exist in step 1). The source is only ever read:
//! by the HTTP source, and by the service as the copy's source.

use super::blob::{self, BlobUrl, Client, PAGE};
use super::commit::{in_verification, Committed};
use super::{verify_files, verify_loaded, Plan};
use crate::error::{Error, Layer, Result};
use crate::image::write::{fault_point, Patch, Progress};
use crate::image::{Disk, Format};
use crate::machine::{HiveLocation, Machine};
use std::path::{Path, PathBuf};

/// Test hook: when `RDPRESCUE_FAULT` names `step`, fail here with an error
/// (unlike [`fault_point`], which aborts the process), so the clean-up of a
/// half-written destination can be tested.
fn fault_error(step: &str) -> Result<()> {
    if crate::image::write::fault_armed(step) {
        return Err(Error::corrupt(Layer::Repair, 0, format!("fault injected at {step}")));
    }
    Ok(())
}

/// The page writes that carry `patch` on `disk`: every range widened to whole
/// 512-byte pages (the bytes of a partly written page read from `disk`),
/// ranges that share or touch a page merged, each write at most 4 MiB.
pub fn page_writes(disk: &dyn Disk, patch: &Patch) -> Result<Vec<(u64, Vec<u8>)>> {
    if patch.end() > disk.len() {
        return Err(Error::Usage(format!("patch ends at {:#x}, past the end of the {}-byte virtual disk", patch.end(), disk.len())));
    }
    // Merged page-aligned intervals, each with the patch ranges inside it.
    let mut spans: Vec<(u64, u64, Vec<(u64, &[u8])>)> = Vec::new();
    for (off, data) in patch.ranges() {
        let s = off / PAGE * PAGE;
        let e = (off + data.len() as u64).div_ceil(PAGE) * PAGE;
        match spans.last_mut() {
            Some((_, pe, parts)) if s <= *pe => {
                *pe = (*pe).max(e);
                parts.push((off, data));
            }
            _ => spans.push((s, e, vec![(off, data)])),
        }
    }
    let mut out = Vec::new();
    for (s, e, parts) in spans {
        let mut buf = vec![0u8; (e - s) as usize];
        let mut covered = vec![false; buf.len()];
        for (off, data) in &parts {
            let at = (off - s) as usize;
            buf[at..at + data.len()].copy_from_slice(data);
            covered[at..at + data.len()].iter_mut().for_each(|c| *c = true);
        }
        // A page the patch covers only in part keeps the rest of its bytes.
        for (i, page) in covered.chunks(PAGE as usize).enumerate() {
            if page.iter().all(|c| *c) {
                continue;
            }
            let at = i * PAGE as usize;
            let mut old = vec![0u8; PAGE as usize];
            disk.read_at(s + at as u64, &mut old)?;
            for (j, c) in page.iter().enumerate() {
                if !c {
                    buf[at + j] = old[j];
                }
            }
        }
        for (k, chunk) in buf.chunks(blob::MAX_PUT_PAGE).enumerate() {
            out.push((s + (k * blob::MAX_PUT_PAGE) as u64, chunk.to_vec()));
        }
    }
    Ok(out)
}

/// Write `plan` into the new page blob `dest`, a server-side copy of the
/// fixed VHD `source` the machine was opened from (see the module
/// documentation).
pub(super) fn to_page_blob(machine: &Machine, plan: &Plan, source: &BlobUrl, dest: &BlobUrl, progress: Progress) -> Result<Committed> {
    let image = machine.image().ok_or_else(|| Error::Usage(format!("{} is not a disk image", source)))?;
    if image.info.format != Format::VhdFixed {
        return Err(Error::Refused {
            layer: Layer::Repair,
            msg: format!(
                "{source} is {}, not a fixed VHD: a page blob for an Azure disk holds a fixed VHD (convert it first, e.g. qemu-img convert -O vpc -o subformat=fixed,force_size=on), or fix it to a local file with --out; nothing was written",
                image.info.format.name()
            ),
        });
    }
    if plan.edits.iter().any(|e| !matches!(e.location, HiveLocation::Volume { .. })) {
        return Err(Error::Usage("the plan edits hive files, not an image".into()));
    }
    if source.redacted().eq_ignore_ascii_case(dest.redacted()) {
        return Err(Error::Refused { layer: Layer::Repair, msg: format!("{dest} is the source, and the source is never written; name a new blob") });
    }
    let writes = page_writes(image.disk.as_ref(), &plan.patch)?;
    let client = Client::default();
    if client.properties(dest)?.is_some() {
        return Err(Error::Refused { layer: Layer::Repair, msg: format!("{dest} already exists; rdprescue never overwrites (name a new blob, or delete it first); nothing was written") });
    }
    let copy = client.start_copy(dest, source)?;
    // From here on the destination exists and is this fix's own: any failure deletes it.
    let done = (|| -> Result<Committed> {
        fault_error("blob-copy-started")?;
        let p = match copy.copy_status.as_deref() {
            Some("success") => client.properties(dest)?.ok_or_else(|| Error::corrupt(Layer::Repair, 0, format!("{dest}: the copy vanished")))?,
            _ => client.wait_copy(dest, progress)?,
        };
        let want = image.info.file_size;
        if p.blob_type != "PageBlob" || p.len != want {
            return Err(Error::Refused {
                layer: Layer::Repair,
                msg: format!("{dest}: the copy is a {} of {} bytes, not a page blob of the source's {want} bytes: the source must be a page blob (a managed disk or snapshot, or a page blob holding a fixed VHD)", if p.blob_type.is_empty() { "blob" } else { &p.blob_type }, p.len),
            });
        }
        fault_error("blob-copied")?;
        for (i, (off, data)) in writes.iter().enumerate() {
            client.put_page(dest, *off, data)?;
            if i == 0 {
                fault_error("blob-first-page")?;
                fault_point("blob-first-page-abort");
            }
        }
        fault_point("before-verify");
        fault_error("blob-before-verify")?;
        // Each written range, as the service now serves it.
        for (off, data) in &writes {
            let got = client.get_range(dest, *off, data.len() as u64)?;
            if got != *data {
                let at = got.iter().zip(data).position(|(a, b)| a != b).unwrap_or(0);
                return Err(Error::corrupt(Layer::Repair, off + at as u64, format!("verification: {dest} does not read back as written")));
            }
        }
        // The whole destination read like any input.
        let written = open_remote(dest).map_err(|e| in_verification(&e))?;
        verify_loaded(&written, &plan.edits).map_err(|e| in_verification(&e))?;
        verify_files(&written, &plan.files).map_err(|e| in_verification(&e))?;
        let after = crate::rdp::inspect(&written);
        Ok(Committed { path: PathBuf::from(dest.redacted()), after: Some(after) })
    })();
    match done {
        Ok(c) => Ok(c),
        Err(e) => match client.delete(dest) {
            Ok(()) => Err(e.context(format!("the destination blob {dest} was deleted"))),
            Err(d) => Err(e.context(format!("deleting the half-written destination {dest} failed too ({d}): delete it by hand"))),
        },
    }
}

/// Open the blob `url` (SAS included) as a fresh machine, through the HTTP
/// source.
fn open_remote(url: &BlobUrl) -> Result<Machine> {
    Machine::open_image(Path::new(&url.secret_url()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::image::Disk;

    struct Pattern(u64);
    impl Disk for Pattern {
        fn read_at(&self, offset: u64, buf: &mut [u8]) -> Result<()> {
            for (i, b) in buf.iter_mut().enumerate() {
                *b = ((offset + i as u64) % 251) as u8;
            }
            Ok(())
        }
        fn len(&self) -> u64 {
            self.0
        }
        fn sector_size(&self) -> u32 {
            512
        }
    }

    #[test]
    fn page_writes_are_whole_pages_with_the_old_bytes_around() {
        let d = Pattern(64 << 20);
        let mut p = Patch::default();
        p.write(512, &[1; 512]); // aligned: taken as is
        p.write(2000, &[2; 10]); // inside page 3
        p.write(2040, &[3; 20]); // spans pages 3 and 4: merged with the above
        p.write(10 << 20, &vec![4; 9 << 20]); // split at 4 MiB
        let w = page_writes(&d, &p).unwrap();
        let spans: Vec<(u64, usize)> = w.iter().map(|(o, b)| (*o, b.len())).collect();
        assert_eq!(spans, vec![(512, 512), (1536, 1024), (10 << 20, 4 << 20), (14 << 20, 4 << 20), (18 << 20, 1 << 20)]);
        let (_, b) = &w[1];
        for (i, x) in b.iter().enumerate() {
            let at = 1536 + i as u64;
            let want = match at {
                2000..=2009 => 2,
                2040..=2059 => 3,
                _ => (at % 251) as u8,
            };
            assert_eq!(*x, want, "byte {at}");
        }
        let mut past = Patch::default();
        past.write((64 << 20) - 4, &[0; 8]);
        assert!(page_writes(&d, &past).is_err());
    }
}
