//! The regf base block: field offsets, the XOR-32 checksum and the structural
//! checks shared by primaries and transaction logs (formats.md A.1, B.2, B.3).

use crate::bytes::{le_u32, le_u64};

use crate::hive::regf::{base, hbin};

// The layout is declared in regf.rs; these are the names recovery uses.
pub use base::{
    CHECKSUM as OFF_CHECKSUM, CLUSTERING as OFF_CLUSTER, FILE_FORMAT as OFF_FILE_FORMAT, FILE_TYPE as OFF_FILE_TYPE,
    FILE_TYPE_LOG_NEW, FILE_TYPE_LOG_OLD, FILE_TYPE_LOG_W2K, FILE_TYPE_PRIMARY, FLAGS as OFF_FLAGS, HBINS_SIZE as OFF_HBINS,
    LEN as BASE_BLOCK_LEN, LOG_LEN as LOG_BASE_LEN, MAJOR as OFF_MAJOR, MINOR as OFF_MINOR, ROOT as OFF_ROOT, SEQ1 as OFF_SEQ1,
    SEQ2 as OFF_SEQ2, TIMESTAMP as OFF_TIMESTAMP,
};
pub use hbin::ALIGN as HBIN_ALIGN;
/// Largest hive-bins data size accepted anywhere (the whole hive stays below 2 GiB).
pub const MAX_HBINS_SIZE: u32 = 0x8000_0000 - BASE_BLOCK_LEN as u32;

/// XOR-32 checksum of the first 508 bytes, with Windows' special cases
/// (0xFFFFFFFF becomes 0xFFFFFFFE, 0 becomes 1). Missing bytes read as 0.
pub fn checksum(b: &[u8]) -> u32 {
    let c = (0..OFF_CHECKSUM).step_by(4).fold(0u32, |c, off| c ^ le_u32(b, off));
    match c {
        0xFFFF_FFFF => 0xFFFF_FFFE,
        0 => 1,
        c => c,
    }
}

/// Whether the stored checksum at 508 matches the computed one.
pub fn checksum_ok(b: &[u8]) -> bool {
    b.len() >= LOG_BASE_LEN && le_u32(b, OFF_CHECKSUM) == checksum(b)
}

pub fn put_u32(b: &mut [u8], off: usize, v: u32) {
    if let Some(s) = b.get_mut(off..off + 4) {
        s.copy_from_slice(&v.to_le_bytes());
    }
}

/// Recompute and store the checksum.
pub fn fix_checksum(b: &mut [u8]) {
    let c = checksum(b);
    put_u32(b, OFF_CHECKSUM, c);
}

/// The fields of a base block this module uses.
#[derive(Debug, Clone, Copy)]
pub struct Fields {
    pub seq1: u32,
    pub seq2: u32,
    pub timestamp: u64,
    pub major: u32,
    pub minor: u32,
    pub file_type: u32,
    pub file_format: u32,
    pub root: u32,
    pub hbins: u32,
    pub cluster: u32,
}

impl Fields {
    pub fn read(b: &[u8]) -> Self {
        Fields {
            seq1: le_u32(b, OFF_SEQ1),
            seq2: le_u32(b, OFF_SEQ2),
            timestamp: le_u64(b, OFF_TIMESTAMP),
            major: le_u32(b, OFF_MAJOR),
            minor: le_u32(b, OFF_MINOR),
            file_type: le_u32(b, OFF_FILE_TYPE),
            file_format: le_u32(b, OFF_FILE_FORMAT),
            root: le_u32(b, OFF_ROOT),
            hbins: le_u32(b, OFF_HBINS),
            cluster: le_u32(b, OFF_CLUSTER),
        }
    }
}

/// A field that fails a structural check: where it is and why.
#[derive(Debug, Clone)]
pub struct Bad {
    pub offset: usize,
    pub msg: String,
    /// A well-formed value this tool does not handle (version, format) rather
    /// than damage.
    pub unsupported: bool,
}

impl Bad {
    pub fn corrupt(offset: usize, msg: String) -> Self {
        Bad {
            offset,
            msg,
            unsupported: false,
        }
    }
    pub fn unsupported(offset: usize, msg: String) -> Self {
        Bad {
            offset,
            msg,
            unsupported: true,
        }
    }
}

/// Check the fields every usable base block must have, whatever its file type:
/// `regf`, version 1.3–1.6, format 1, a hive-bins size that is a non-zero
/// multiple of 4096 not above [`MAX_HBINS_SIZE`], and a root cell offset that
/// is 8-aligned, past the first hbin header and inside the hive-bins data.
/// The checksum and the file type are the caller's business.
pub fn check_fields(b: &[u8]) -> Result<Fields, Bad> {
    if b.get(0..4) != Some(&base::SIGNATURE[..]) {
        let sig: Vec<u8> = b.iter().take(4).copied().collect();
        return Err(Bad::corrupt(0, format!("no regf signature (found {})", show_sig(&sig))));
    }
    let f = Fields::read(b);
    if f.major != 1 {
        return Err(Bad::unsupported(
            OFF_MAJOR,
            format!("major version {} (only 1 exists)", f.major),
        ));
    }
    if !(3..=6).contains(&f.minor) {
        return Err(Bad::unsupported(
            OFF_MINOR,
            format!("minor version {} (3 to 6 supported)", f.minor),
        ));
    }
    if f.file_format != 1 {
        return Err(Bad::unsupported(
            OFF_FILE_FORMAT,
            format!("file format {} (only 1, direct memory load, exists)", f.file_format),
        ));
    }
    if f.hbins == 0 || f.hbins % HBIN_ALIGN != 0 {
        return Err(Bad::corrupt(
            OFF_HBINS,
            format!("hive bins data size {:#x} is not a non-zero multiple of 4096", f.hbins),
        ));
    }
    if f.hbins > MAX_HBINS_SIZE {
        return Err(Bad::unsupported(
            OFF_HBINS,
            format!("hive bins data size {:#x} exceeds the 2 GiB limit", f.hbins),
        ));
    }
    check_root(f.root, f.hbins)?;
    Ok(f)
}

/// Root cell offset sanity against a hive-bins data size.
pub fn check_root(root: u32, hbins: u32) -> Result<(), Bad> {
    if root < 32 || root % 8 != 0 || root as u64 + 8 > hbins as u64 {
        return Err(Bad::corrupt(
            OFF_ROOT,
            format!(
                "root cell offset {root:#x} is not an 8-aligned cell offset inside the {hbins:#x}-byte hive bins data"
            ),
        ));
    }
    Ok(())
}

/// Check the 512-byte base-block copy at the start of a transaction log: the
/// common fields, a valid checksum, seq1 == seq2 and a log file type (1 or 2 for
/// the old format, 6 for the new one). Offsets in `Bad` are log-file offsets.
pub fn check_log_base(b: &[u8]) -> Result<Fields, Bad> {
    if b.len() < LOG_BASE_LEN {
        return Err(Bad::corrupt(
            b.len(),
            format!("file is {} bytes, shorter than the 512-byte base block", b.len()),
        ));
    }
    if b.get(0..4) != Some(&base::SIGNATURE[..]) {
        return Err(Bad::corrupt(
            0,
            format!("no regf signature (found {})", show_sig(&b[..4])),
        ));
    }
    if !checksum_ok(b) {
        return Err(Bad::corrupt(
            OFF_CHECKSUM,
            format!(
                "base block checksum {:#010x} is wrong (computed {:#010x})",
                le_u32(b, OFF_CHECKSUM),
                checksum(b)
            ),
        ));
    }
    let f = check_fields(b)?;
    if f.seq1 != f.seq2 {
        return Err(Bad::corrupt(
            OFF_SEQ1,
            format!("base block sequence numbers differ ({} / {})", f.seq1, f.seq2),
        ));
    }
    if !matches!(f.file_type, FILE_TYPE_LOG_OLD | FILE_TYPE_LOG_W2K | FILE_TYPE_LOG_NEW) {
        return Err(Bad::corrupt(
            OFF_FILE_TYPE,
            format!("file type {} is not a transaction log (1, 2 or 6)", f.file_type),
        ));
    }
    Ok(f)
}

/// Printable form of a 4-byte signature.
pub fn show_sig(s: &[u8]) -> String {
    if !s.is_empty() && s.iter().all(|c| c.is_ascii_graphic()) {
        format!("\"{}\"", String::from_utf8_lossy(s))
    } else {
        let hex: String = s.iter().map(|c| format!("{c:02x}")).collect();
        format!("0x{hex}")
    }
}

/// `a` comes after `b` in sequence-number order (mod 2^32, half-range window).
pub fn seq_after(a: u32, b: u32) -> bool {
    (a.wrapping_sub(b) as i32) > 0
}

/// `a` is at or after `b` in sequence-number order.
pub fn seq_at_or_after(a: u32, b: u32) -> bool {
    (a.wrapping_sub(b) as i32) >= 0
}

#[cfg(test)]
mod tests {
    use super::*;

    fn block_with_xor(target: u32) -> Vec<u8> {
        // All zero except one word chosen so that the XOR of words 0..127 is `target`.
        let mut b = vec![0u8; 4096];
        put_u32(&mut b, 100, target);
        b
    }

    #[test]
    fn checksum_special_cases() {
        assert_eq!(checksum(&block_with_xor(0)), 1);
        assert_eq!(checksum(&block_with_xor(0xFFFF_FFFF)), 0xFFFF_FFFE);
        assert_eq!(checksum(&block_with_xor(0xFFFF_FFFE)), 0xFFFF_FFFE);
        assert_eq!(checksum(&block_with_xor(1)), 1);
        assert_eq!(checksum(&block_with_xor(0x1234_5678)), 0x1234_5678);
        // The checksum field itself and everything after 508 is not covered.
        let mut b = block_with_xor(0x42);
        put_u32(&mut b, 508, 0xdead_beef);
        b[600] = 0xff;
        assert_eq!(checksum(&b), 0x42);
        // Short input reads as zeros, never panics.
        assert_eq!(checksum(&[1, 0, 0]), 1);
        assert_eq!(checksum(&[]), 1);
    }

    #[test]
    fn checksum_roundtrip() {
        let mut b = vec![0u8; 4096];
        b[..4].copy_from_slice(b"regf");
        put_u32(&mut b, OFF_SEQ1, 7);
        assert!(!checksum_ok(&b));
        fix_checksum(&mut b);
        assert!(checksum_ok(&b));
        // A block whose XOR is 0xFFFFFFFF must store 0xFFFFFFFE to be valid.
        let mut b = block_with_xor(0xFFFF_FFFF);
        fix_checksum(&mut b);
        assert_eq!(le_u32(&b, OFF_CHECKSUM), 0xFFFF_FFFE);
        assert!(checksum_ok(&b));
        assert!(!checksum_ok(&b[..511]));
    }

    #[test]
    fn sequence_order_wraps() {
        assert!(seq_after(5, 4));
        assert!(!seq_after(4, 4));
        assert!(seq_at_or_after(4, 4));
        assert!(seq_after(0, 0xFFFF_FFFF));
        assert!(seq_after(3, 0xFFFF_FFF0));
        assert!(!seq_after(0xFFFF_FFF0, 3));
    }

    #[test]
    fn field_checks() {
        let mut b = vec![0u8; 4096];
        b[..4].copy_from_slice(b"regf");
        put_u32(&mut b, OFF_MAJOR, 1);
        put_u32(&mut b, OFF_MINOR, 5);
        put_u32(&mut b, OFF_FILE_FORMAT, 1);
        put_u32(&mut b, OFF_ROOT, 0x20);
        put_u32(&mut b, OFF_HBINS, 4096);
        assert!(check_fields(&b).is_ok());
        for (off, v, want) in [
            (OFF_MAJOR, 2, OFF_MAJOR),
            (OFF_MINOR, 2, OFF_MINOR),
            (OFF_MINOR, 7, OFF_MINOR),
            (OFF_FILE_FORMAT, 0, OFF_FILE_FORMAT),
            (OFF_HBINS, 0, OFF_HBINS),
            (OFF_HBINS, 4097, OFF_HBINS),
            (OFF_HBINS, 0xFFFF_F000, OFF_HBINS),
            (OFF_ROOT, 0xFFFF_FFFF, OFF_ROOT),
            (OFF_ROOT, 0x24, OFF_ROOT),
            (OFF_ROOT, 0x10, OFF_ROOT),
            (OFF_ROOT, 4096, OFF_ROOT),
        ] {
            let mut c = b.clone();
            put_u32(&mut c, off, v);
            assert_eq!(check_fields(&c).unwrap_err().offset, want, "field {off} = {v:#x}");
        }
        let mut c = b.clone();
        c[0] = b'R';
        assert_eq!(check_fields(&c).unwrap_err().offset, 0);
        assert!(check_fields(&b[..3]).is_err());
    }
}
