//! Little helpers for decoding fixed-layout little/big-endian fields from byte
//! slices without panicking. Callers check lengths once; these helpers return 0 for
//! out-of-range reads so a logic error can never turn into a panic on hostile data.

#[inline]
pub fn le_u16(b: &[u8], off: usize) -> u16 {
    b.get(off..off + 2).map_or(0, |s| u16::from_le_bytes([s[0], s[1]]))
}
#[inline]
pub fn le_u32(b: &[u8], off: usize) -> u32 {
    b.get(off..off + 4).map_or(0, |s| u32::from_le_bytes([s[0], s[1], s[2], s[3]]))
}
#[inline]
pub fn le_u64(b: &[u8], off: usize) -> u64 {
    b.get(off..off + 8)
        .map_or(0, |s| u64::from_le_bytes(s.try_into().unwrap_or([0; 8])))
}
#[inline]
pub fn be_u16(b: &[u8], off: usize) -> u16 {
    b.get(off..off + 2).map_or(0, |s| u16::from_be_bytes([s[0], s[1]]))
}
#[inline]
pub fn be_u32(b: &[u8], off: usize) -> u32 {
    b.get(off..off + 4).map_or(0, |s| u32::from_be_bytes([s[0], s[1], s[2], s[3]]))
}
#[inline]
pub fn be_u64(b: &[u8], off: usize) -> u64 {
    b.get(off..off + 8)
        .map_or(0, |s| u64::from_be_bytes(s.try_into().unwrap_or([0; 8])))
}

/// Mixed-endian (Microsoft) GUID at `off`, as used by GPT and VHDX.
pub fn guid(b: &[u8], off: usize) -> uuid::Uuid {
    let mut raw = [0u8; 16];
    if let Some(s) = b.get(off..off + 16) {
        raw.copy_from_slice(s);
    }
    uuid::Uuid::from_bytes_le(raw)
}

/// Decode UTF-16LE bytes up to the first NUL.
/// A UTF-16LE name stored with its length (key and value names): every unit,
/// NULs included (a name may hold U+0000).
pub fn utf16le_name(b: &[u8]) -> String {
    let units: Vec<u16> = b.chunks_exact(2).map(|c| u16::from_le_bytes([c[0], c[1]])).collect();
    String::from_utf16_lossy(&units)
}

pub fn utf16le(b: &[u8]) -> String {
    // ASCII text (nearly every registry string: firewall rules, paths, names)
    // is built from its low bytes directly, without a u16 buffer.
    let n = b.chunks_exact(2).position(|c| c == [0, 0]).unwrap_or(b.len() / 2);
    let text = &b[..2 * n];
    if text.chunks_exact(2).all(|c| c[1] == 0 && c[0] < 0x80) {
        let ascii: Vec<u8> = text.iter().step_by(2).copied().collect();
        return String::from_utf8(ascii).unwrap_or_else(|e| String::from_utf8_lossy(e.as_bytes()).into_owned());
    }
    let units: Vec<u16> = b
        .chunks_exact(2)
        .map(|c| u16::from_le_bytes([c[0], c[1]]))
        .take_while(|&u| u != 0)
        .collect();
    String::from_utf16_lossy(&units)
}

/// Decode UTF-16BE bytes up to the first NUL.
pub fn utf16be(b: &[u8]) -> String {
    let units: Vec<u16> = b
        .chunks_exact(2)
        .map(|c| u16::from_be_bytes([c[0], c[1]]))
        .take_while(|&u| u != 0)
        .collect();
    String::from_utf16_lossy(&units)
}
