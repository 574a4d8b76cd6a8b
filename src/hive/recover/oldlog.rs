//! Old-format transaction logs (Windows 2000 to 8): a 512-byte base-block copy
//! with file type 1 (2 on Windows 2000), `DIRT` at 512, a bitmap of dirty
//! 512-byte pages, then the dirty pages themselves (formats.md B.3).

use super::base::{Fields, LOG_BASE_LEN};
use crate::error::Result;
use crate::hive::pages::LogSrc;

const PAGE: usize = 512;

/// A parsed, complete old-format log: every page its bitmap marks is
/// present. Only its base block, signature and bitmap are read; the pages
/// are read where they are applied.
#[derive(Debug)]
pub struct OldLog {
    /// The 512-byte base-block copy.
    pub base: Vec<u8>,
    pub fields: Fields,
    bitmap: Vec<u8>,
    /// Log-file offset of the first dirty page.
    pages: usize,
    pub dirty_pages: usize,
}

impl OldLog {
    /// `(offset relative to the hive bins data, log-file offset, length)` of
    /// every run of consecutive set bits: the run's pages are consecutive in
    /// the log too, so a run is one write (the same bytes as page by page).
    pub fn pages(&self) -> impl Iterator<Item = (usize, usize, usize)> + '_ {
        let bits = self.bitmap.len() * 8;
        let set = move |b: usize| self.bitmap[b / 8] >> (b % 8) & 1 != 0;
        let (mut bit, mut k) = (0usize, 0usize);
        std::iter::from_fn(move || {
            while bit < bits && self.bitmap[bit / 8] == 0 && bit % 8 == 0 {
                bit += 8;
            }
            while bit < bits && !set(bit) {
                bit += 1;
            }
            if bit >= bits {
                return None;
            }
            let first = bit;
            while bit < bits && set(bit) {
                bit += 1;
            }
            let n = bit - first;
            let run = (first * PAGE, self.pages + k * PAGE, n * PAGE);
            k += n;
            Some(run)
        })
    }
}

/// Parse the dirty vector of a log whose base block `base` (giving `fields`)
/// has been checked (`base::check_log_base`, file type 1 or 2). `hbins_limit`
/// bounds the hive-bins size the log may grow the hive to. A damaged log is
/// `Ok(Err((log-file offset, reason)))`; only a failed read is an error.
pub fn parse(log: LogSrc<'_>, base: Vec<u8>, fields: Fields, hbins_limit: u32) -> Result<Result<OldLog, (usize, String)>> {
    if fields.hbins > hbins_limit {
        return Ok(Err((40, format!("hive bins data size {:#x} exceeds the {hbins_limit:#x} limit", fields.hbins))));
    }
    let len = log.len();
    let mut buf = Vec::new();
    if len < LOG_BASE_LEN + 4 {
        return Ok(Err((len, "file ends before the dirty vector".into())));
    }
    let sig = log.piece(LOG_BASE_LEN, 4, &mut buf)?;
    if sig != b"DIRT" {
        return Ok(Err((LOG_BASE_LEN, format!("no DIRT signature (found {})", super::base::show_sig(sig)))));
    }
    // hbins / 512 bits, i.e. hbins / 4096 bytes.
    let bitmap_len = (fields.hbins / 4096) as usize;
    let bitmap_start = LOG_BASE_LEN + 4;
    if bitmap_start + bitmap_len > len {
        return Ok(Err((
            bitmap_start,
            format!("the {bitmap_len}-byte dirty bitmap runs past the end of the file ({len:#x} bytes)"),
        )));
    }
    let bitmap = log.piece(bitmap_start, bitmap_len, &mut buf)?.to_vec();
    let pages_start = (bitmap_start + bitmap_len).div_ceil(PAGE) * PAGE;
    let dirty_pages: usize = bitmap.iter().map(|b| b.count_ones() as usize).sum();
    if pages_start + dirty_pages * PAGE > len {
        return Ok(Err((
            pages_start,
            format!(
                "the bitmap marks {dirty_pages} dirty pages but the file holds only {} after offset {pages_start:#x} (truncated log)",
                len.saturating_sub(pages_start) / PAGE
            ),
        )));
    }
    Ok(Ok(OldLog { base, fields, bitmap, pages: pages_start, dirty_pages }))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn log(hbins: u32, bitmap: &[u8], pages: &[[u8; 512]]) -> (Vec<u8>, Fields) {
        let mut l = vec![0u8; LOG_BASE_LEN];
        l[40..44].copy_from_slice(&hbins.to_le_bytes());
        l.extend_from_slice(b"DIRT");
        l.extend_from_slice(bitmap);
        l.resize(l.len().div_ceil(512) * 512, 0);
        for p in pages {
            l.extend_from_slice(p);
        }
        let f = Fields::read(&l);
        (l, f)
    }

    fn p(l: &[u8], f: Fields, limit: u32) -> Result<OldLog, (usize, String)> {
        parse(LogSrc::Mem(l), l[..LOG_BASE_LEN.min(l.len())].to_vec(), f, limit).unwrap()
    }

    #[test]
    fn pages_follow_set_bits() {
        // hbins 16 KiB -> 32 bits = 4 bytes; bits 0, 9 and 31 set.
        let (l, f) = log(
            16384,
            &[0b0000_0001, 0b0000_0010, 0, 0x80],
            &[[1; 512], [2; 512], [3; 512]],
        );
        let o = p(&l, f, 1 << 30).unwrap();
        assert_eq!(o.dirty_pages, 3);
        let got: Vec<(usize, u8)> = o.pages().map(|(off, src, n)| (off, l[src + n - 1])).collect();
        assert_eq!(got, vec![(0, 1), (9 * 512, 2), (31 * 512, 3)]);
        // Runs of set bits are one write each, whatever the byte boundaries.
        let (l, f) = log(65536, &[0xF0, 0x01, 0, 0xFF, 0xFF, 0x80, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x81], &[[1; 512]; 24]);
        let o = p(&l, f, 1 << 30).unwrap();
        let runs: Vec<(usize, usize)> = o.pages().map(|(off, src, n)| (off / 512, (src - 1024) / 512 * 1000 + n / 512)).collect();
        assert_eq!(runs, vec![(4, 5), (24, 5016), (47, 21001), (120, 22001), (127, 23001)]);
        assert_eq!(o.pages().map(|r| r.2).sum::<usize>(), o.dirty_pages * 512);
    }

    #[test]
    fn hostile_old_logs_are_rejected() {
        // Bitmap larger than the file.
        let (mut l, _) = log(4096, &[0xFF], &[[0; 512]; 8]);
        l[40..44].copy_from_slice(&(1u32 << 30).to_le_bytes());
        let f = Fields::read(&l);
        assert!(p(&l, f, 1 << 30).unwrap_err().1.contains("bitmap runs past"));
        // Pages missing.
        let (l, f) = log(8192, &[0xFF, 0xFF], &[[0; 512]; 3]);
        assert!(p(&l, f, 1 << 30).unwrap_err().1.contains("truncated"));
        // No DIRT.
        let (mut l, f) = log(4096, &[0], &[]);
        l[512..516].copy_from_slice(b"INVL");
        assert!(p(&l, f, 1 << 30).unwrap_err().1.contains("DIRT"));
        assert!(p(&l[..514], f, 1 << 30).is_err());
        // Over the growth limit.
        let (l, f) = log(8192, &[0, 0], &[]);
        assert!(p(&l, f, 4096).is_err());
    }
}
