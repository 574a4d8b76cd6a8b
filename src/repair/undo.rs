//! The undo file of an in-place repair, format `rdprescue-undo/2` (JSON).
//!
//! ```json
//! {
//!   "format": "rdprescue-undo/2",
//!   "device": {"path": "/dev/sdc", "size": 85899345920,
//!              "head_sha256": "<SHA-256 of the first MiB before the fix>"},
//!   "ranges": [{"offset": 1048576, "len": 512,
//!               "before": "<hex>", "after": "<hex>",
//!               "before_sha256": "<hex>", "after_sha256": "<hex>"}],
//!   "sha256": "<SHA-256 of the canonical content>"
//! }
//! ```
//!
//! The canonical content is the compact JSON of `format`, `device` and
//! `ranges`, in that order, with the fields in the order above. Hex is
//! decoded strictly (two lowercase or uppercase digits per byte, nothing
//! else: no sign, no spaces, no non-ASCII). Ranges are sorted, do not overlap
//! and lie inside the device.
//!
//! The device identity is its size and the hash of its first MiB as it was
//! before the fix (the partition tables; a fix never writes them, and if a
//! range did lie there, its `before` bytes are put over the current ones
//! before hashing), not its path: a disk attached to a rescue VM may come
//! back under another name.
//!
//! [`Undo::parse`] never panics, on any bytes. [`Undo::plan`] checks the
//! device against everything before anything is written.

use crate::error::{Error, Layer, Result};
use crate::image::Disk;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

pub const FORMAT: &str = "rdprescue-undo/2";
const FORMAT_V1: &str = "rdprescue-undo/1";
/// Bytes at the start of the device whose hash identifies it.
pub const HEAD: u64 = 1 << 20;
/// Largest undo file read (its ranges are edited hive bytes, in hex).
pub const MAX_FILE: u64 = 1 << 30;
const MAX_RANGES: usize = 1 << 20;

/// One changed range, decoded and checked.
#[derive(Debug, Clone, PartialEq)]
pub struct Range {
    pub offset: u64,
    pub before: Vec<u8>,
    pub after: Vec<u8>,
}

/// A decoded, verified undo file (or one being recorded).
#[derive(Debug, Clone, PartialEq)]
pub struct Undo {
    /// The device path when the fix ran (informative only).
    pub device_path: String,
    pub device_size: u64,
    /// SHA-256 of the first min(HEAD, size) bytes before the fix.
    pub head_sha256: [u8; 32],
    pub ranges: Vec<Range>,
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct DeviceJ {
    path: String,
    size: u64,
    head_sha256: String,
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct RangeJ {
    offset: u64,
    len: u64,
    before: String,
    after: String,
    before_sha256: String,
    after_sha256: String,
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileJ {
    format: String,
    device: DeviceJ,
    ranges: Vec<RangeJ>,
    sha256: String,
}

/// What the checksum covers.
#[derive(Serialize)]
struct Canonical<'a> {
    format: &'a str,
    device: &'a DeviceJ,
    ranges: &'a [RangeJ],
}

fn sha(b: &[u8]) -> [u8; 32] {
    Sha256::digest(b).into()
}

fn bad(msg: impl std::fmt::Display) -> Error {
    Error::corrupt(Layer::Repair, 0, format!("undo file: {msg}; nothing was written"))
}

fn checksum(f: &FileJ) -> Result<[u8; 32]> {
    let c = Canonical { format: &f.format, device: &f.device, ranges: &f.ranges };
    Ok(sha(&serde_json::to_vec(&c).map_err(|e| bad(format!("cannot serialize: {e}")))?))
}

fn hash_field(s: &str, what: &str) -> Result<[u8; 32]> {
    let mut h = [0u8; 32];
    hex::decode_to_slice(s, &mut h).map_err(|e| bad(format!("{what}: not a SHA-256 in hex ({e})")))?;
    Ok(h)
}

/// The first min(HEAD, size) bytes of `disk`, with `before` put back where
/// `ranges` overlap them.
fn head_before(disk: &dyn Disk, ranges: &[Range]) -> Result<Vec<u8>> {
    let n = HEAD.min(disk.len()) as usize;
    let mut head = vec![0u8; n];
    disk.read_at(0, &mut head)?;
    for r in ranges.iter().filter(|r| r.offset < n as u64) {
        let at = r.offset as usize;
        let k = r.before.len().min(n - at);
        head[at..at + k].copy_from_slice(&r.before[..k]);
    }
    Ok(head)
}

impl Undo {
    /// Record what `patch_ranges` (offset, new bytes) will overwrite on
    /// `disk`: the bytes there now, the new bytes, and the device identity.
    pub fn record<'a>(disk: &dyn Disk, device_path: &str, patch_ranges: impl IntoIterator<Item = (u64, &'a [u8])>) -> Result<Undo> {
        let mut ranges = Vec::new();
        for (offset, after) in patch_ranges {
            let mut before = vec![0u8; after.len()];
            disk.read_at(offset, &mut before)?;
            ranges.push(Range { offset, before, after: after.to_vec() });
        }
        ranges.sort_by_key(|r| r.offset);
        // The head as it is now is the head before the fix.
        let head = head_before(disk, &[])?;
        let u = Undo { device_path: device_path.to_string(), device_size: disk.len(), head_sha256: sha(&head), ranges };
        u.check_ranges()?;
        Ok(u)
    }

    /// Sorted, non-empty, non-overlapping, inside the device, before and
    /// after of one length.
    fn check_ranges(&self) -> Result<()> {
        if self.ranges.len() > MAX_RANGES {
            return Err(bad(format!("{} ranges (at most {MAX_RANGES})", self.ranges.len())));
        }
        let mut end_prev = 0u64;
        for (i, r) in self.ranges.iter().enumerate() {
            if r.before.is_empty() || r.before.len() != r.after.len() {
                return Err(bad(format!("range {i} at offset {:#x}: before holds {} bytes, after {}", r.offset, r.before.len(), r.after.len())));
            }
            let end = r.offset.checked_add(r.before.len() as u64).filter(|e| *e <= self.device_size);
            let Some(end) = end else {
                return Err(bad(format!("range {i} at offset {:#x} (+{} bytes) lies outside the {}-byte device", r.offset, r.before.len(), self.device_size)));
            };
            if i > 0 && r.offset < end_prev {
                return Err(bad(format!("range {i} at offset {:#x} overlaps or precedes the range before it (ranges must be sorted and disjoint)", r.offset)));
            }
            end_prev = end;
        }
        Ok(())
    }

    /// The undo file's bytes (pretty JSON with its checksum).
    pub fn to_bytes(&self) -> Result<Vec<u8>> {
        let mut f = FileJ {
            format: FORMAT.into(),
            device: DeviceJ { path: self.device_path.clone(), size: self.device_size, head_sha256: hex::encode(self.head_sha256) },
            ranges: self
                .ranges
                .iter()
                .map(|r| RangeJ {
                    offset: r.offset,
                    len: r.before.len() as u64,
                    before: hex::encode(&r.before),
                    after: hex::encode(&r.after),
                    before_sha256: hex::encode(sha(&r.before)),
                    after_sha256: hex::encode(sha(&r.after)),
                })
                .collect(),
            sha256: String::new(),
        };
        f.sha256 = hex::encode(checksum(&f)?);
        let mut v = serde_json::to_vec_pretty(&f).map_err(|e| bad(format!("cannot serialize: {e}")))?;
        v.push(b'\n');
        Ok(v)
    }

    /// Decode and verify an undo file: format, checksum, every hex field,
    /// every per-range hash, the ranges' layout. Never panics.
    pub fn parse(bytes: &[u8]) -> Result<Undo> {
        if bytes.len() as u64 > MAX_FILE {
            return Err(bad(format!("{} bytes, larger than any undo file rdprescue writes", bytes.len())));
        }
        // The format first, for a clear message on other versions.
        #[derive(Deserialize)]
        struct Head {
            format: Option<serde_json::Value>,
        }
        let head: Head = serde_json::from_slice(bytes).map_err(|e| bad(format!("not an rdprescue undo file (JSON: {e})")))?;
        match head.format.as_ref().and_then(|v| v.as_str()) {
            Some(FORMAT) => {}
            Some(FORMAT_V1) => return Err(bad("format rdprescue-undo/1 is refused: it has no checksum, so a damaged file would silently restore wrong bytes; use the rdprescue version that wrote it, or restore the disk from a backup")),
            Some(other) => return Err(bad(format!("format {other:?}, expected {FORMAT}"))),
            None => return Err(bad(format!("no \"format\": not an rdprescue undo file (expected {FORMAT})"))),
        }
        let f: FileJ = serde_json::from_slice(bytes).map_err(|e| bad(format!("malformed ({e})")))?;
        let want = hash_field(&f.sha256, "sha256")?;
        if checksum(&f)? != want {
            return Err(bad("checksum mismatch: the file is damaged or was edited"));
        }
        if f.ranges.len() > MAX_RANGES {
            return Err(bad(format!("{} ranges (at most {MAX_RANGES})", f.ranges.len())));
        }
        let mut ranges = Vec::with_capacity(f.ranges.len());
        for (i, r) in f.ranges.iter().enumerate() {
            let at = |what: &str, e: &dyn std::fmt::Display| bad(format!("range {i} at offset {:#x}: {what}: {e}", r.offset));
            let before = hex::decode(&r.before).map_err(|e| at("before is not hex", &e))?;
            let after = hex::decode(&r.after).map_err(|e| at("after is not hex", &e))?;
            if before.len() as u64 != r.len || after.len() as u64 != r.len {
                return Err(at("length", &format!("len is {} but before holds {} bytes and after {}", r.len, before.len(), after.len())));
            }
            if sha(&before) != hash_field(&r.before_sha256, "before_sha256")? {
                return Err(at("before", &"does not match before_sha256"));
            }
            if sha(&after) != hash_field(&r.after_sha256, "after_sha256")? {
                return Err(at("after", &"does not match after_sha256"));
            }
            ranges.push(Range { offset: r.offset, before, after });
        }
        let u = Undo { device_path: f.device.path.clone(), device_size: f.device.size, head_sha256: hash_field(&f.device.head_sha256, "device.head_sha256")?, ranges };
        u.check_ranges()?;
        Ok(u)
    }

    /// Check `disk` against this undo file and return the writes that put
    /// the original bytes back: the size and identity must match, and each
    /// range must hold its `after` bytes (or already its `before` bytes);
    /// with `force`, a range holding anything else is restored too. Nothing
    /// is written here.
    pub fn plan(&self, disk: &dyn Disk, force: bool) -> Result<Vec<(u64, Vec<u8>)>> {
        self.check_ranges()?;
        if disk.len() != self.device_size {
            return Err(Error::Refused { layer: Layer::Repair, msg: format!("the disk holds {} bytes but the undo file was made for a {}-byte disk: not the same disk; nothing was written", disk.len(), self.device_size) });
        }
        if sha(&head_before(disk, &self.ranges)?) != self.head_sha256 {
            return Err(Error::Refused { layer: Layer::Repair, msg: format!("the first {} bytes (partition tables) differ from the disk this undo file was made for ({}): not the same disk; nothing was written", HEAD.min(self.device_size), self.device_path) });
        }
        let mut writes = Vec::new();
        for r in &self.ranges {
            let mut now = vec![0u8; r.after.len()];
            disk.read_at(r.offset, &mut now)?;
            if now == r.before {
                continue;
            }
            if now != r.after && !force {
                return Err(Error::Refused { layer: Layer::Repair, msg: format!("the disk changed at offset {:#x} since the fix (it holds neither the fixed nor the original bytes): --force overrides; nothing was written", r.offset) });
            }
            writes.push((r.offset, r.before.clone()));
        }
        Ok(writes)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Mem(Vec<u8>);
    impl Disk for Mem {
        fn read_at(&self, offset: u64, buf: &mut [u8]) -> Result<()> {
            let s = self.0.get(offset as usize..offset as usize + buf.len()).ok_or_else(|| Error::Usage("past end".into()))?;
            buf.copy_from_slice(s);
            Ok(())
        }
        fn len(&self) -> u64 {
            self.0.len() as u64
        }
        fn sector_size(&self) -> u32 {
            512
        }
    }

    fn sample() -> (Mem, Undo) {
        let disk = Mem((0..3u32 << 20).map(|i| (i * 7 % 251) as u8).collect());
        let u = Undo::record(&disk, "/dev/x", [(100u64, &[1u8, 2, 3][..]), (2 << 20, &[9u8; 600][..])]).unwrap();
        (disk, u)
    }

    fn apply(disk: &mut Mem, w: &[(u64, Vec<u8>)]) {
        for (o, d) in w {
            disk.0[*o as usize..*o as usize + d.len()].copy_from_slice(d);
        }
    }

    #[test]
    fn round_trip_and_plan() {
        let (mut disk, u) = sample();
        let original = disk.0.clone();
        let b = u.to_bytes().unwrap();
        assert_eq!(Undo::parse(&b).unwrap(), u);
        // The fix, then undo.
        let fixed: Vec<(u64, Vec<u8>)> = u.ranges.iter().map(|r| (r.offset, r.after.clone())).collect();
        apply(&mut disk, &fixed);
        let w = u.plan(&disk, false).unwrap();
        assert_eq!(w.len(), 2);
        apply(&mut disk, &w);
        assert_eq!(disk.0, original);
        // Already undone: nothing to write.
        assert!(u.plan(&disk, false).unwrap().is_empty());
        // Changed since: refused unless forced.
        disk.0[2 << 20] = 77;
        assert!(u.plan(&disk, false).is_err());
        assert_eq!(u.plan(&disk, true).unwrap().len(), 1);
        // Another disk of the same size.
        let mut other = Mem(original.clone());
        other.0[5] ^= 1;
        assert!(u.plan(&other, false).unwrap_err().to_string().contains("not the same disk"));
    }

    #[test]
    fn every_damage_is_refused_without_panic() {
        let (_, u) = sample();
        let good = String::from_utf8(u.to_bytes().unwrap()).unwrap();
        let before_at = good.find("\"before\": \"").unwrap() + 11;
        let mut cases: Vec<Vec<u8>> = Vec::new();
        // A flipped digit, a '+' sign, a non-ASCII char, upper case.
        let first = &good[before_at..before_at + 1];
        let flipped = if first == "0" { "1" } else { "0" };
        for rep in [flipped, "+", "é", "A"] {
            let mut s = good.clone();
            s.replace_range(before_at..before_at + 1, rep);
            if rep == "é" {
                s.remove(before_at + 2);
            }
            cases.push(s.into_bytes());
        }
        // Every truncation and a few byte flips.
        for n in (0..good.len()).step_by(7) {
            cases.push(good.as_bytes()[..n].to_vec());
        }
        for i in (0..good.len()).step_by(13) {
            let mut b = good.clone().into_bytes();
            b[i] ^= 0x41;
            cases.push(b);
        }
        cases.push(good.replace(FORMAT, FORMAT_V1).into_bytes());
        for c in cases {
            assert!(Undo::parse(&c).is_err(), "accepted: {}", String::from_utf8_lossy(&c));
        }
        let e = Undo::parse(good.replace(FORMAT, FORMAT_V1).as_bytes()).unwrap_err().to_string();
        assert!(e.contains("rdprescue-undo/1 is refused"), "{e}");
    }

    #[test]
    fn overlapping_or_outside_ranges_are_refused() {
        let disk = Mem(vec![0; 4096]);
        assert!(Undo::record(&disk, "x", [(10u64, &[1u8; 10][..]), (15, &[2u8; 10][..])]).is_err());
        let mut u = Undo::record(&disk, "x", [(10u64, &[1u8; 10][..])]).unwrap();
        u.ranges[0].offset = 4090;
        assert!(u.to_bytes().is_ok());
        assert!(Undo::parse(&u.to_bytes().unwrap()).is_err(), "outside the device");
        u.ranges[0].offset = u64::MAX - 2;
        assert!(Undo::parse(&u.to_bytes().unwrap()).is_err(), "offset overflow");
    }

    /// `u`'s file with `edit` applied to its JSON and the checksum recomputed,
    /// so only the check under test can refuse it.
    fn resealed(u: &Undo, edit: impl FnOnce(&mut FileJ)) -> Vec<u8> {
        let mut f: FileJ = serde_json::from_slice(&u.to_bytes().unwrap()).unwrap();
        edit(&mut f);
        f.sha256 = hex::encode(checksum(&f).unwrap());
        serde_json::to_vec_pretty(&f).unwrap()
    }

    #[track_caller]
    fn refused(bytes: &[u8], want: &str) {
        let e = Undo::parse(bytes).expect_err(want).to_string();
        assert!(e.contains(want) && e.contains("nothing was written"), "want {want:?}, got {e}");
    }

    /// Every layout refusal with a valid checksum (a tool that writes a
    /// well-formed but wrong file), each with its own message.
    #[test]
    fn malformed_ranges_are_refused_by_name() {
        let (_, u) = sample();
        assert_eq!(Undo::parse(&resealed(&u, |_| {})).unwrap(), u, "resealing alone changes nothing");
        refused(&resealed(&u, |f| f.ranges[0].len += 1), "len is 4 but before holds 3 bytes and after 3");
        refused(&resealed(&u, |f| f.ranges[1].before_sha256 = f.ranges[1].after_sha256.clone()), "does not match before_sha256");
        refused(&resealed(&u, |f| f.ranges[1].after = f.ranges[1].before.clone()), "does not match after_sha256");
        refused(&resealed(&u, |f| f.ranges[0].after.push('g')), "after is not hex");
        refused(&resealed(&u, |f| f.ranges.swap(0, 1)), "range 1 at offset 0x64 overlaps or precedes");
        refused(
            &resealed(&u, |f| {
                f.ranges[1].offset = 101;
            }),
            "range 1 at offset 0x65 overlaps or precedes",
        );
        refused(
            &resealed(&u, |f| {
                let r = &mut f.ranges[0];
                (r.len, r.before, r.after) = (0, String::new(), String::new());
                (r.before_sha256, r.after_sha256) = (hex::encode(sha(b"")), hex::encode(sha(b"")));
            }),
            "range 0 at offset 0x64: before holds 0 bytes, after 0",
        );
        refused(&resealed(&u, |f| f.device.size = (2 << 20) + 599), "lies outside the 2097751-byte device");
        refused(&resealed(&u, |f| f.ranges[1].offset = u64::MAX - 100), "lies outside");
        refused(&resealed(&u, |f| f.device.head_sha256.truncate(63)), "device.head_sha256: not a SHA-256 in hex");
        refused(&resealed(&u, |f| f.format = "rdprescue-undo/3".into()), "format \"rdprescue-undo/3\", expected rdprescue-undo/2");
        // An edit without resealing: the checksum catches it.
        let mut f: FileJ = serde_json::from_slice(&u.to_bytes().unwrap()).unwrap();
        f.ranges[0].offset = 101;
        refused(&serde_json::to_vec(&f).unwrap(), "checksum mismatch");
        // Unknown fields are not ignored.
        let with_extra = String::from_utf8(u.to_bytes().unwrap()).unwrap().replacen("\"offset\"", "\"extra\": 1, \"offset\"", 1);
        refused(with_extra.as_bytes(), "malformed");
    }

    /// The device checks of `plan`: another size, another head, a range that
    /// changed since the fix; each refusal names its reason, and `force`
    /// overrides only the last.
    #[test]
    fn plan_refuses_another_disk_or_a_changed_range() {
        let (mut disk, u) = sample();
        let fixed: Vec<(u64, Vec<u8>)> = u.ranges.iter().map(|r| (r.offset, r.after.clone())).collect();
        apply(&mut disk, &fixed);
        let refusal = |d: &Mem, force: bool| match u.plan(d, force) {
            Err(Error::Refused { msg, .. }) => msg,
            other => panic!("expected a refusal, got {other:?}"),
        };
        // Size: one byte more or less.
        for len in [disk.0.len() - 1, disk.0.len() + 1] {
            let mut d = Mem(disk.0.clone());
            d.0.resize(len, 0);
            let m = refusal(&d, true);
            assert!(m.contains(&format!("the disk holds {len} bytes but the undo file was made for a 3145728-byte disk")), "{m}");
        }
        // Head: a byte of the partition table area changed (forced or not).
        let mut d = Mem(disk.0.clone());
        d.0[(HEAD - 1) as usize] ^= 1;
        assert!(refusal(&d, true).contains("the first 1048576 bytes (partition tables) differ"));
        // A fixed range's bytes at 100 are part of the head: the head check puts
        // `before` back there first, so a fixed disk is still the same disk.
        assert_eq!(u.plan(&disk, false).unwrap().len(), 2);
        // Changed since the fix, in the second range's last byte.
        let mut d = Mem(disk.0.clone());
        d.0[(2 << 20) + 599] = 0;
        let m = refusal(&d, false);
        assert!(m.contains("the disk changed at offset 0x200000 since the fix") && m.contains("--force"), "{m}");
        // Forced: both ranges restored to their original bytes.
        let w = u.plan(&d, true).unwrap();
        assert_eq!(w, u.ranges.iter().map(|r| (r.offset, r.before.clone())).collect::<Vec<_>>());
        // Half undone (first range already original): only the other is written.
        let mut d = Mem(disk.0.clone());
        apply(&mut d, &[(100, u.ranges[0].before.clone())]);
        assert_eq!(u.plan(&d, false).unwrap(), vec![(2 << 20, u.ranges[1].before.clone())]);
    }
}

