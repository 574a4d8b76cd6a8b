#!/usr/bin/env python3
# SPDX-License-Identifier: GPL-2.0-or-later
"""Write the (non-hive) file contents of the fixture volumes into OUTDIR, one folder per
volume kind. Everything is generated here; the "executables" are placeholders.

usage: mkcontent.py OUTDIR

OUTDIR/windows/   tree of the Windows volume (hives are copied in by make-fixtures.sh)
OUTDIR/late/      fill-1.tmp, fill-2.tmp and fragmented.bin, copied last to fragment the volume
OUTDIR/sysres/    System Reserved (BIOS boot) volume, without BCD
OUTDIR/esp/       EFI system partition, without BCD
OUTDIR/recovery/  WinRE partition
OUTDIR/data1/, OUTDIR/logical5/, OUTDIR/logical6/   volumes of the mbr-extended disk
"""
import os
import sys

CRLF = "\r\n"


def write(root, rel, data):
    p = os.path.join(root, *rel.split("/"))
    os.makedirs(os.path.dirname(p), exist_ok=True)
    if isinstance(data, str):
        data = data.replace("\n", CRLF).encode("utf-8")
    with open(p, "wb") as f:
        f.write(data)


def placeholder(name, size):
    """A small PE-looking placeholder ("MZ" + explanation), padded to size with a pattern."""
    text = (f"MZ placeholder for {name}, written by rdprescue testdata/make-fixtures.sh. "
            "Not a real Windows binary.\n").encode()
    pad = bytes((i * 31 + 7) & 0xFF for i in range(size))
    return (text + pad)[:size]


def pattern_blocks(tag, size, block=4096):
    """Compressible but position-dependent content: every 4 KiB block starts with its own
    header line, followed by the same pseudo-random bytes. A reader that returns clusters
    in the wrong order or from the wrong place fails the SHA-256 check."""
    body = bytes(((i * 2654435761) >> 13) & 0xFF for i in range(block))
    out = bytearray()
    n = 0
    while len(out) < size:
        hdr = f"{tag} block {n:06d} offset {n * block:#010x}\n".encode()
        out += hdr + body[len(hdr):]
        n += 1
    return bytes(out[:size])


def main(argv):
    if len(argv) != 2:
        sys.exit(__doc__)
    out = argv[1]
    w = os.path.join(out, "windows")
    write(w, "Windows/System32/config/SYSTEM.LOG1", b"")
    write(w, "Windows/System32/config/SYSTEM.LOG2", b"")
    write(w, "Windows/System32/config/SOFTWARE.LOG1", b"")
    write(w, "Windows/System32/config/SOFTWARE.LOG2", b"")
    write(w, "Windows/System32/drivers/etc/hosts",
          "# hosts file of the rdprescue demo VM (generated test data)\n"
          "#\n"
          "# Each entry: an IP address, whitespace, a host name.\n"
          "\n"
          "127.0.0.1       localhost\n"
          "::1             localhost\n")
    write(w, "Windows/System32/winload.exe", placeholder("winload.exe", 1536))
    write(w, "Windows/System32/winload.efi", placeholder("winload.efi", 1536))
    write(w, "Windows/System32/termsrv.dll", placeholder("termsrv.dll", 2048))
    write(w, "Users/Public/Desktop/readme.txt",
          "This disk image is test data for rdprescue.\n"
          "It looks like a Windows Server 2022 VM whose Remote Desktop is turned off\n"
          "(fDenyTSConnections=1 in SYSTEM\\ControlSet001\\Control\\Terminal Server).\n")
    write(w, "Users/Public/Documents/Ünïcödé résumé – 日本語のファイル名 with a long name "
             "that is well beyond the 8.3 limit.txt",
          "Non-ASCII, long file name (UTF-16 on disk).\n")
    write(w, "Users/Public/Documents/emoji 😀 outside the BMP.txt",
          "The name has a UTF-16 surrogate pair.\n")
    write(w, "Windows/Logs/MiXeDcAsE/SoMeFiLe.LoG",
          "Mixed-case directory and file name, for case-insensitive lookups.\n")
    write(w, "Windows/Temp/small-resident.txt", "Small enough to be resident in its MFT record.\n")

    late = os.path.join(out, "late")
    for i in (1, 2):
        write(late, f"fill-{i}.tmp", pattern_blocks(f"fill-{i}", 16 * 1024))
    write(late, "fragmented.bin", pattern_blocks("fragmented.bin", 3 * 1024 * 1024))

    s = os.path.join(out, "sysres")
    write(s, "bootmgr", placeholder("bootmgr", 4096))
    write(s, "Boot/BCD.LOG1", b"")
    write(s, "Boot/BCD.LOG2", b"")
    write(s, "Boot/en-US/bootmgr.exe.mui", placeholder("bootmgr.exe.mui", 1024))

    e = os.path.join(out, "esp")
    write(e, "EFI/Microsoft/Boot/bootmgfw.efi", placeholder("bootmgfw.efi", 4096))
    write(e, "EFI/Microsoft/Boot/BCD.LOG1", b"")
    write(e, "EFI/Boot/bootx64.efi", placeholder("bootx64.efi", 4096))

    r = os.path.join(out, "recovery")
    write(r, "Recovery/WindowsRE/ReAgent.xml",
          '<?xml version="1.0" encoding="utf-8"?>\n'
          '<WindowsRE version="2.0"><WinreBCD id="{00000000-0000-0000-0000-000000000000}"/>'
          '<WinreLocation path="\\Recovery\\WindowsRE" id="0" offset="0" guid="{00000000-0000-0000-0000-000000000000}"/>'
          '</WindowsRE>\n')
    write(r, "Recovery/WindowsRE/Winre.wim", placeholder("Winre.wim", 8192))

    write(os.path.join(out, "data1"), "hello.txt", "Primary NTFS partition 1 of mbr-extended.\n")
    write(os.path.join(out, "logical5"), "Logical5/hello.txt", "Logical NTFS partition 5 (first EBR).\n")
    write(os.path.join(out, "logical6"), "HELLO.TXT", "Logical FAT16 partition 6 (second EBR).\n")
    write(os.path.join(out, "logical6"), "Sub Dir/Long file name.txt", "FAT long file name entry.\n")


if __name__ == "__main__":
    main(sys.argv)
