//! Old-format transaction logs (Windows 2000 to 8): a 512-byte base-block copy
//! with file type 1 (2 on Windows 2000), `DIRT` at 512, a bitmap of dirty
//! 512-byte pages, then the dirty pages themselves (formats.md B.3).

use super::base::{Fields, LOG_BASE_LEN};

const PAGE: usize = 512;

/// A parsed, complete old-format log: every page its bitmap marks is present.
#[derive(Debug)]
pub struct OldLog<'a> {
    /// The 512-byte base-block copy.
    pub base: &'a [u8],
    pub fields: Fields,
    bitmap: &'a [u8],
    pages: &'a [u8],
    pub dirty_pages: usize,
}

impl<'a> OldLog<'a> {
    /// `(offset relative to the hive bins data, 512 page bytes)` for every set bit.
    pub fn pages(&self) -> impl Iterator<Item = (usize, &'a [u8])> + '_ {
        let pages = self.pages;
        self.bitmap
            .iter()
            .enumerate()
            .filter(|(_, &byte)| byte != 0)
            .flat_map(|(i, &byte)| (0..8).filter(move |b| byte >> b & 1 != 0).map(move |b| i * 8 + b))
            .enumerate()
            .filter_map(move |(k, bit)| Some((bit * PAGE, pages.get(k * PAGE..(k + 1) * PAGE)?)))
    }
}

/// Parse the dirty vector and pages of a log whose base block `fields` has
/// been checked (`base::check_log_base`, file type 1 or 2). `hbins_limit`
/// bounds the hive-bins size the log may grow the hive to. Errors are
/// `(log-file offset, reason)`.
pub fn parse<'a>(log: &'a [u8], fields: Fields, hbins_limit: u32) -> Result<OldLog<'a>, (usize, String)> {
    if fields.hbins > hbins_limit {
        return Err((
            40,
            format!(
                "hive bins data size {:#x} exceeds the {hbins_limit:#x} limit",
                fields.hbins
            ),
        ));
    }
    match log.get(LOG_BASE_LEN..LOG_BASE_LEN + 4) {
        Some(b"DIRT") => {}
        Some(s) => {
            return Err((
                LOG_BASE_LEN,
                format!("no DIRT signature (found {})", super::base::show_sig(s)),
            ))
        }
        None => return Err((log.len(), "file ends before the dirty vector".into())),
    }
    // hbins / 512 bits, i.e. hbins / 4096 bytes.
    let bitmap_len = (fields.hbins / 4096) as usize;
    let bitmap_start = LOG_BASE_LEN + 4;
    let Some(bitmap) = log.get(bitmap_start..bitmap_start + bitmap_len) else {
        return Err((
            bitmap_start,
            format!(
                "the {bitmap_len}-byte dirty bitmap runs past the end of the file ({:#x} bytes)",
                log.len()
            ),
        ));
    };
    let pages_start = (bitmap_start + bitmap_len).div_ceil(PAGE) * PAGE;
    let dirty_pages: usize = bitmap.iter().map(|b| b.count_ones() as usize).sum();
    let Some(pages) = log.get(pages_start..pages_start + dirty_pages * PAGE) else {
        return Err((
            pages_start,
            format!(
                "the bitmap marks {dirty_pages} dirty pages but the file holds only {} after offset {pages_start:#x} (truncated log)",
                log.len().saturating_sub(pages_start) / PAGE
            ),
        ));
    };
    Ok(OldLog {
        base: &log[..LOG_BASE_LEN],
        fields,
        bitmap,
        pages,
        dirty_pages,
    })
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

    #[test]
    fn pages_follow_set_bits() {
        // hbins 16 KiB -> 32 bits = 4 bytes; bits 0, 9 and 31 set.
        let (l, f) = log(
            16384,
            &[0b0000_0001, 0b0000_0010, 0, 0x80],
            &[[1; 512], [2; 512], [3; 512]],
        );
        let o = parse(&l, f, 1 << 30).unwrap();
        assert_eq!(o.dirty_pages, 3);
        let got: Vec<(usize, u8)> = o.pages().map(|(off, p)| (off, p[0])).collect();
        assert_eq!(got, vec![(0, 1), (9 * 512, 2), (31 * 512, 3)]);
    }

    #[test]
    fn hostile_old_logs_are_rejected() {
        // Bitmap larger than the file.
        let (mut l, _) = log(4096, &[0xFF], &[[0; 512]; 8]);
        l[40..44].copy_from_slice(&(1u32 << 30).to_le_bytes());
        let f = Fields::read(&l);
        assert!(parse(&l, f, 1 << 30).unwrap_err().1.contains("bitmap runs past"));
        // Pages missing.
        let (l, f) = log(8192, &[0xFF, 0xFF], &[[0; 512]; 3]);
        assert!(parse(&l, f, 1 << 30).unwrap_err().1.contains("truncated"));
        // No DIRT.
        let (mut l, f) = log(4096, &[0], &[]);
        l[512..516].copy_from_slice(b"INVL");
        assert!(parse(&l, f, 1 << 30).unwrap_err().1.contains("DIRT"));
        assert!(parse(&l[..514], f, 1 << 30).is_err());
        // Over the growth limit.
        let (l, f) = log(8192, &[0, 0], &[]);
        assert!(parse(&l, f, 4096).is_err());
    }
}
