//! Names: the upcase Windows compares with, lh hashes, lf hints, the stored
//! (Latin-1 or UTF-16LE) form, and key paths.

use super::*;

/// Simple one-to-one uppercase of a UTF-16 code unit (see the module docs).
pub(super) fn upcase_unit(u: u16) -> u16 {
    let Some(c) = char::from_u32(u32::from(u)) else { return u };
    let mut up = c.to_uppercase();
    match (up.next(), up.next()) {
        (Some(x), None) if (x as u32) <= 0xFFFF => x as u16,
        _ => u,
    }
}

pub(super) fn upcase(name: &[u16]) -> Vec<u16> {
    name.iter().map(|&u| upcase_unit(u)).collect()
}

/// lh hash: h = 37·h + upcase(unit), over the UTF-16 name.
pub(super) fn lh_hash(name: &[u16]) -> u32 {
    name.iter().fold(0u32, |h, &u| h.wrapping_mul(37).wrapping_add(u32::from(upcase_unit(u))))
}

/// lf hint: the first 4 characters as Latin-1 bytes, 0 for a non-Latin-1 one.
pub(super) fn lf_hint(name: &[u16]) -> u32 {
    let mut b = [0u8; 4];
    for (d, &u) in b.iter_mut().zip(name) {
        *d = if u <= 0xFF { u as u8 } else { 0 };
    }
    u32::from_le_bytes(b)
}

/// Stored form of a name: Latin-1 ("compressed") when every unit is ≤ U+00FF.
pub(super) fn encode_name(name: &[u16]) -> (Vec<u8>, bool) {
    if name.iter().all(|&u| u <= 0xFF) {
        (name.iter().map(|&u| u as u8).collect(), true)
    } else {
        (name.iter().flat_map(|u| u.to_le_bytes()).collect(), false)
    }
}

pub(super) fn decode_name(raw: &[u8], compressed: bool) -> Vec<u16> {
    if compressed {
        raw.iter().map(|&b| u16::from(b)).collect()
    } else {
        raw.chunks_exact(2).map(|c| u16::from_le_bytes([c[0], c[1]])).collect()
    }
}

pub(super) fn show(name: &[u16]) -> String {
    String::from_utf16_lossy(name)
}

/// Split a hive-relative path into UTF-16 components (empty ones dropped).
pub(super) fn parse_path(path: &str) -> Result<Vec<Vec<u16>>> {
    let comps: Vec<Vec<u16>> =
        path.split('\\').filter(|c| !c.is_empty()).map(|c| c.encode_utf16().collect()).collect();
    if comps.len() > MAX_DEPTH {
        return Err(Error::Usage(format!("key path deeper than {MAX_DEPTH} levels")));
    }
    Ok(comps)
}
