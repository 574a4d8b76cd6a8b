//! Container detection by signature (never by file extension).
//!
//! Every container this tool reads has a signature: VHDX (`vhdxfile` at 0),
//! VHD (`conectix` in the footer at the end, or its copy at 0), VMDK (`KDMV`
//! at 0, or a text descriptor starting `# Disk DescriptorFile`), QCOW2
//! (`QFI\xfb` at 0, version 2 or 3). A raw disk has none, so raw is accepted
//! only when its first sector says it is a disk or a volume:
//!
//! * a boot-sector signature `55 AA` at 510 (an MBR, a GPT's protective MBR,
//!   an NTFS/FAT/exFAT/BitLocker/ReFS volume boot sector), or an OEM id of
//!   such a volume at 3, or a GPT header (`EFI PART`) at 512 or 4096;
//! * a first sector of zeros (a blank disk, or one whose MBR was wiped: the
//!   survey then says there is no partition table).
//!
//! Everything else is refused with one line saying what it is and, where one
//! exists, the one command that turns it into something readable: compressed
//! files (gzip, xz, zstd, bzip2, zip, 7-Zip, tar/OVA), other VM formats (VDI,
//! QCOW version 1, Parallels, VMware COWD), ISO 9660 media, empty and tiny
//! files, text files, and unknown bytes. The parent of a differencing disk is
//! exempt from the last rule (its child names it as a disk, and a raw parent
//! may hold any bytes at 0), but not from the named signatures.

use super::Source;
use crate::error::{Error, Layer, Result};

/// What [`detect`] found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Detected {
    Raw,
    Vhd,
    Vhdx,
    /// A hosted sparse VMDK extent (`KDMV`): monolithic sparse or stream-optimized.
    VmdkSparse,
    /// A VMDK text descriptor naming its extents.
    VmdkDescriptor,
    Qcow2,
}

/// Bytes read from the start of the source to recognise it.
const HEAD: usize = 8192;
/// The first bytes of a VMDK text descriptor.
pub(crate) const VMDK_DESCRIPTOR: &[u8] = b"# Disk DescriptorFile";

/// Detect the container format of `src`. `strict` (a top-level input, not a
/// differencing parent) refuses unknown bytes instead of reading them as raw.
pub(crate) fn detect(src: &dyn Source, strict: bool) -> Result<Detected> {
    let len = src.len();
    let name = src.name();
    let refuse = |msg: String| Err(Error::unsupported(Layer::Image, 0, msg));
    if len == 0 {
        return refuse(format!("{name} is empty (0 bytes): not a disk image"));
    }
    let mut head = vec![0u8; HEAD.min(len as usize)];
    src.read(Layer::Image, 0, &mut head)?;
    let h = head.as_slice();
    let at = |o: usize, sig: &[u8]| h.get(o..o + sig.len()) == Some(sig);

    if at(0, b"vhdxfile") {
        return Ok(Detected::Vhdx);
    }
    if at(0, b"conectix") {
        return Ok(Detected::Vhd);
    }
    if len >= 512 {
        let mut foot = [0u8; 8];
        src.read(Layer::Image, len - 512, &mut foot)?;
        if &foot == b"conectix" {
            return Ok(Detected::Vhd);
        }
    }
    if at(0, b"KDMV") {
        return Ok(Detected::VmdkSparse);
    }
    if at(0, VMDK_DESCRIPTOR) {
        return Ok(Detected::VmdkDescriptor);
    }
    if at(0, b"QFI\xfb") {
        let version = h.get(4..8).map(|v| u32::from_be_bytes([v[0], v[1], v[2], v[3]]));
        return match version {
            Some(2 | 3) => Ok(Detected::Qcow2),
            Some(1) => refuse(format!("{name} is a QCOW (version 1) image, which this tool does not read: convert it: {}", convert(&name, "vhdx"))),
            v => refuse(format!("{name} has the QCOW signature but version {}: not a QCOW2 image this tool reads", v.map_or("(missing)".into(), |v| v.to_string()))),
        };
    }
    if let Some(what) = named(h, src, len)? {
        return refuse(format!("{name} {what}"));
    }
    if strict && !looks_like_disk(h) {
        if let Some(line) = text_line(h) {
            return refuse(format!("{name} is a text file (it begins {line:?}), not a disk image"));
        }
    }
    if len < 512 {
        return refuse(format!("{name} is {len} bytes, less than one 512-byte sector: not a disk image"));
    }
    if looks_like_disk(h) || h[..512].iter().all(|&b| b == 0) || !strict {
        return Ok(Detected::Raw);
    }
    refuse(format!(
        "{name} is not a disk image this tool reads: no container signature (VHD, VHDX, VMDK, QCOW2), no partition table (MBR/GPT) and no volume boot sector at offset 0 (it begins {})",
        hex::encode(&h[..16])
    ))
}

/// A partition table or a volume boot sector in the first sector(s).
fn looks_like_disk(h: &[u8]) -> bool {
    let at = |o: usize, sig: &[u8]| h.get(o..o + sig.len()) == Some(sig);
    at(510, &[0x55, 0xAA])
        || at(512, b"EFI PART")
        || at(4096, b"EFI PART")
        || [&b"NTFS    "[..], b"-FVE-FS-", b"EXFAT   ", b"MSDOS5.0", b"MSWIN4.1", b"ReFS\0\0\0\0"].iter().any(|s| at(3, s))
}

/// A known non-disk signature: what it is and how to convert it.
fn named(h: &[u8], src: &dyn Source, len: u64) -> Result<Option<String>> {
    let name = src.name();
    let at = |o: usize, sig: &[u8]| h.get(o..o + sig.len()) == Some(sig);
    let decompress = |kind: &str, ext: &[&str], cmd: &str| {
        let out = strip_ext(&name, ext);
        format!("is {kind}-compressed, not a disk image: decompress it first: {cmd} {} > {}", quote(&name), quote(&out))
    };
    let s = if at(0, &[0x1F, 0x8B]) {
        decompress("gzip", &[".gz", ".gzip"], "gzip -dc")
    } else if at(0, &[0xFD, b'7', b'z', b'X', b'Z', 0]) {
        decompress("xz", &[".xz"], "xz -dc")
    } else if at(0, &[0x28, 0xB5, 0x2F, 0xFD]) {
        decompress("zstd", &[".zst", ".zstd"], "zstd -dc")
    } else if at(0, b"BZh") && h.get(3).is_some_and(|c| (b'1'..=b'9').contains(c)) {
        decompress("bzip2", &[".bz2"], "bzip2 -dc")
    } else if at(0, b"PK\x03\x04") {
        format!("is a zip archive, not a disk image: extract the disk from it first: unzip {}", quote(&name))
    } else if at(0, b"7z\xBC\xAF\x27\x1C") {
        format!("is a 7-Zip archive, not a disk image: extract the disk from it first: 7z x {}", quote(&name))
    } else if at(257, b"ustar") {
        format!("is a tar archive (an OVA?), not a disk image: extract the disk from it first: tar -xf {}", quote(&name))
    } else if at(0x40, &0xBEDA_107Fu32.to_le_bytes()) {
        format!("is a VirtualBox VDI image, which this tool does not read: convert it: {}", convert(&name, "vhdx"))
    } else if at(0, b"WithoutFreeSpace") || at(0, b"WithouFreSpacExt") {
        format!("is a Parallels disk image, which this tool does not read: convert it: {}", convert(&name, "vhdx"))
    } else if at(0, b"COWD") {
        format!("is a VMware ESX sparse (COWD) extent, which this tool does not read: convert it: {}", convert(&name, "vhdx"))
    } else if len > 0x8006 && {
        let mut cd = [0u8; 5];
        src.read(Layer::Image, 0x8001, &mut cd)?;
        &cd == b"CD001"
    } {
        "is an ISO 9660 CD/DVD image (installation media?), not a disk with a Windows installation: give the VM's system disk instead".to_string()
    } else {
        return Ok(None);
    };
    Ok(Some(s))
}

/// The first line of `h` when it reads as text (UTF-8 without control
/// characters other than tab, CR, LF; a UTF-8 BOM or UTF-16 LE text too).
fn text_line(h: &[u8]) -> Option<String> {
    let sample = &h[..h.len().min(HEAD)];
    let utf16 = sample.starts_with(&[0xFF, 0xFE]);
    let text: String = if utf16 {
        let units: Vec<u16> = sample[2..].chunks_exact(2).map(|c| u16::from_le_bytes([c[0], c[1]])).collect();
        char::decode_utf16(units).map(|c| c.unwrap_or('\u{FFFD}')).collect()
    } else {
        // A multi-byte character cut at the end of the sample is fine.
        match std::str::from_utf8(sample) {
            Ok(s) => s.to_string(),
            Err(e) if e.error_len().is_none() => String::from_utf8_lossy(&sample[..e.valid_up_to()]).into_owned(),
            Err(_) => return None,
        }
    };
    if text.chars().any(|c| c == '\u{FFFD}' || (c.is_control() && !matches!(c, '\t' | '\r' | '\n' | '\u{FEFF}' | '\u{0C}'))) {
        return None;
    }
    let first = text.trim_start_matches('\u{FEFF}').lines().find(|l| !l.trim().is_empty()).unwrap_or("").trim();
    Some(first.chars().take(40).collect())
}

/// `qemu-img convert` of `name` to a new file of format `fmt` next to it.
pub(crate) fn convert(name: &str, fmt: &str) -> String {
    let stem = match name.rsplit_once('.') {
        Some((s, e)) if !e.contains('/') && !s.is_empty() && !s.ends_with('/') => s,
        _ => name,
    };
    format!("qemu-img convert -O {fmt} {} {}", quote(name), quote(&format!("{stem}.{fmt}")))
}

fn strip_ext(name: &str, exts: &[&str]) -> String {
    let lower = name.to_ascii_lowercase();
    for e in exts {
        if lower.ends_with(e) && lower.len() > e.len() {
            return name[..name.len() - e.len()].to_string();
        }
    }
    format!("{name}.img")
}

/// Quote a path for a POSIX shell when it needs it.
fn quote(s: &str) -> String {
    if !s.is_empty() && s.bytes().all(|b| b.is_ascii_alphanumeric() || b"/._-+:,@%=\\".contains(&b)) {
        s.to_string()
    } else {
        format!("'{}'", s.replace('\'', r"'\''"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::image::MemSource;

    fn det(name: &str, bytes: Vec<u8>) -> std::result::Result<Detected, String> {
        detect(MemSource::arc(name, bytes).as_ref(), true).map_err(|e| e.to_string())
    }

    fn sector(fill: impl Fn(&mut Vec<u8>)) -> Vec<u8> {
        let mut v = vec![0u8; 64 << 10];
        fill(&mut v);
        v
    }

    #[test]
    fn raw_is_accepted_only_as_a_disk_or_volume() {
        assert_eq!(det("mbr.raw", sector(|v| v[510..512].copy_from_slice(&[0x55, 0xAA]))), Ok(Detected::Raw));
        assert_eq!(det("ntfs.img", sector(|v| v[3..11].copy_from_slice(b"NTFS    "))), Ok(Detected::Raw));
        assert_eq!(det("gpt.img", sector(|v| v[512..520].copy_from_slice(b"EFI PART"))), Ok(Detected::Raw));
        assert_eq!(det("blank.img", vec![0u8; 4096]), Ok(Detected::Raw));
        let e = det("junk.bin", sector(|v| v.iter_mut().enumerate().for_each(|(i, b)| *b = (i * 7 + 3) as u8))).unwrap_err();
        assert!(e.starts_with("image at offset 0x0: unsupported: junk.bin is not a disk image this tool reads"), "{e}");
        assert!(e.contains("(it begins 030a11"), "{e}");
        // A differencing parent may hold anything.
        assert_eq!(detect(MemSource::arc("p", vec![7u8; 4096]).as_ref(), false).map_err(|e| e.to_string()), Ok(Detected::Raw));
    }

    #[test]
    fn named_containers_are_refused_with_the_command() {
        let cases: Vec<(&str, Vec<u8>, &str)> = vec![
            ("d.vhdx.gz", sector(|v| v[..3].copy_from_slice(&[0x1F, 0x8B, 8])), "gzip-compressed, not a disk image: decompress it first: gzip -dc d.vhdx.gz > d.vhdx"),
            ("d.raw.xz", sector(|v| v[..6].copy_from_slice(&[0xFD, b'7', b'z', b'X', b'Z', 0])), "xz -dc d.raw.xz > d.raw"),
            ("d.zst", sector(|v| v[..4].copy_from_slice(&[0x28, 0xB5, 0x2F, 0xFD])), "zstd -dc d.zst > d"),
            ("my disk", sector(|v| v[..4].copy_from_slice(b"BZh9")), "bzip2 -dc 'my disk' > 'my disk.img'"),
            ("a.zip", sector(|v| v[..4].copy_from_slice(b"PK\x03\x04")), "unzip a.zip"),
            ("a.7z", sector(|v| v[..6].copy_from_slice(b"7z\xBC\xAF\x27\x1C")), "7z x a.7z"),
            ("vm.ova", sector(|v| v[257..262].copy_from_slice(b"ustar")), "tar -xf vm.ova"),
            ("w.vdi", sector(|v| v[0x40..0x44].copy_from_slice(&0xBEDA_107Fu32.to_le_bytes())), "VDI image, which this tool does not read: convert it: qemu-img convert -O vhdx w.vdi w.vhdx"),
            ("old.qcow", sector(|v| v[..8].copy_from_slice(b"QFI\xfb\0\0\0\x01")), "QCOW (version 1)"),
            ("e.vmdk", sector(|v| v[..4].copy_from_slice(b"COWD")), "COWD"),
            ("w.iso", sector(|v| v[0x8001..0x8006].copy_from_slice(b"CD001")), "ISO 9660"),
            ("README.md", b"# rdprescue\n\nOffline repair of Windows VM disk images that cannot be reached over RDP.\n".repeat(20), "README.md is a text file (it begins \"# rdprescue\"), not a disk image"),
            ("empty.img", Vec::new(), "empty.img is empty (0 bytes): not a disk image"),
            ("tiny.img", vec![0u8; 100], "tiny.img is 100 bytes, less than one 512-byte sector"),
            ("note.txt", b"hello\n".to_vec(), "note.txt is a text file (it begins \"hello\")"),
        ];
        for (name, bytes, want) in cases {
            let e = det(name, bytes).unwrap_err();
            assert!(e.starts_with("image at offset 0x0: unsupported: "), "{name}: {e}");
            assert!(e.contains(want), "{name}: want {want:?} in {e}");
            assert!(!e.contains('\n'), "{name}: one line: {e}");
        }
    }

    #[test]
    fn signatures_of_readable_containers() {
        assert_eq!(det("a", sector(|v| v[..4].copy_from_slice(b"KDMV"))), Ok(Detected::VmdkSparse));
        assert_eq!(det("a", b"# Disk DescriptorFile\nversion=1\n".to_vec()), Ok(Detected::VmdkDescriptor));
        assert_eq!(det("a", sector(|v| v[..8].copy_from_slice(b"QFI\xfb\0\0\0\x03"))), Ok(Detected::Qcow2));
        assert_eq!(det("a", sector(|v| v[..8].copy_from_slice(b"vhdxfile"))), Ok(Detected::Vhdx));
    }
}
