#!/usr/bin/env python3
# SPDX-License-Identifier: GPL-2.0-or-later
"""Replace the random/time-based identifiers qemu-img writes into VHD and VHDX files with
fixed values derived from a seed string, so regenerated fixtures are byte-identical.

usage: pinids.py IMAGE SEED UNIX_TIME

VHD  (footer "conectix" at the end, and its copy at offset 0 for dynamic disks):
     timestamp (seconds since 2000-01-01) and unique id; footer checksum recomputed.
VHDX (headers at 64 KiB and 128 KiB): SequenceNumber (renumbered from 1, same order and
     gap), FileWriteGuid and DataWriteGuid, CRC-32C recomputed;
     the Virtual Disk ID (page83) metadata item; the LogGuid of the stale, inactive log
     entries qemu leaves in the log region (the header's LogGuid is zero), CRC-32C
     recomputed.
Both copies of everything are patched identically, so the files stay valid (checked
afterwards by make-fixtures.sh with `qemu-img check` and `qemu-img compare`).
"""
import struct
import sys
import uuid

NS = uuid.UUID("5d8e0f2c-4b1a-4c55-9a4e-7264707265ff")  # namespace for the pinned ids
VHD_EPOCH = 946684800
METADATA_REGION = uuid.UUID("8B7CA206-4790-4B9A-B8FE-575F050F886E")
PAGE83 = uuid.UUID("BECA12AB-B2E6-4523-93EF-C309E000C746")


def crc32c(data):
    table = crc32c.table
    if table is None:
        table = []
        for i in range(256):
            c = i
            for _ in range(8):
                c = (c >> 1) ^ 0x82F63B78 if c & 1 else c >> 1
            table.append(c)
        crc32c.table = table
    c = 0xFFFFFFFF
    for b in data:
        c = table[(c ^ b) & 0xFF] ^ (c >> 8)
    return c ^ 0xFFFFFFFF


crc32c.table = None


def pin_vhd(f, size, seed, t):
    uid = uuid.uuid5(NS, seed + "/vhd-unique-id").bytes
    stamp = max(0, t - VHD_EPOCH)
    spots = [size - 512]
    f.seek(0)
    if f.read(8) == b"conectix":
        spots.append(0)
    for off in spots:
        f.seek(off)
        ft = bytearray(f.read(512))
        if ft[:8] != b"conectix":
            sys.exit(f"pinids: no VHD footer at {off}")
        struct.pack_into(">I", ft, 24, stamp)
        ft[68:84] = uid
        struct.pack_into(">I", ft, 64, 0)
        struct.pack_into(">I", ft, 64, (~sum(ft)) & 0xFFFFFFFF)
        f.seek(off)
        f.write(ft)


def pin_vhdx(f, seed):
    fw = uuid.uuid5(NS, seed + "/vhdx-file-write-guid").bytes_le
    dw = uuid.uuid5(NS, seed + "/vhdx-data-write-guid").bytes_le
    seqs = []
    for off in (64 * 1024, 128 * 1024):
        f.seek(off + 8)
        seqs.append(struct.unpack("<Q", f.read(8))[0])
    for off, seq in zip((64 * 1024, 128 * 1024), seqs):
        f.seek(off)
        h = bytearray(f.read(4096))
        if h[:4] != b"head":
            sys.exit(f"pinids: no VHDX header at {off}")
        # qemu starts from a random sequence number; keep the two headers' order and gap
        struct.pack_into("<Q", h, 8, seq - min(seqs) + 1)
        h[16:32] = fw
        h[32:48] = dw
        struct.pack_into("<I", h, 4, 0)
        struct.pack_into("<I", h, 4, crc32c(h))
        f.seek(off)
        f.write(h)
    # qemu journals its BAT/metadata writes through the log, then clears LogGuid in the
    # header: the stale (inactive) entries keep a random LogGuid. Renumber those GUIDs in
    # order of appearance and recompute each entry's CRC-32C over EntryLength bytes.
    f.seek(64 * 1024 + 68)
    log_len, log_off = struct.unpack("<IQ", f.read(12))
    f.seek(log_off)
    log = bytearray(f.read(log_len))
    guids = {}
    pos = 0
    while pos + 64 <= len(log):
        if log[pos:pos + 4] != b"loge":
            pos += 4096
            continue
        (elen,) = struct.unpack_from("<I", log, pos + 8)
        if elen < 4096 or elen % 4096 or pos + elen > len(log):
            pos += 4096
            continue
        entry = log[pos:pos + elen]
        check = entry[:]
        struct.pack_into("<I", check, 4, 0)
        if crc32c(check) != struct.unpack_from("<I", entry, 4)[0]:
            pos += 4096
            continue
        old = bytes(entry[32:48])
        if old not in guids:
            guids[old] = uuid.uuid5(NS, f"{seed}/vhdx-log-guid-{len(guids)}").bytes_le
        entry[32:48] = guids[old]
        struct.pack_into("<I", entry, 4, 0)
        struct.pack_into("<I", entry, 4, crc32c(entry))
        log[pos:pos + elen] = entry
        pos += elen
    f.seek(log_off)
    f.write(log)
    f.seek(192 * 1024)
    rt = f.read(64 * 1024)
    if rt[:4] != b"regi":
        sys.exit("pinids: no VHDX region table")
    (count,) = struct.unpack_from("<I", rt, 8)
    meta = None
    for i in range(count):
        guid = uuid.UUID(bytes_le=rt[16 + 32 * i:32 + 32 * i])
        if guid == METADATA_REGION:
            meta = struct.unpack_from("<Q", rt, 32 + 32 * i)[0]
    if meta is None:
        sys.exit("pinids: no VHDX metadata region")
    f.seek(meta)
    mt = f.read(64 * 1024)
    if mt[:8] != b"metadata":
        sys.exit("pinids: bad VHDX metadata table")
    (n,) = struct.unpack_from("<H", mt, 10)
    for i in range(n):
        e = 32 + 32 * i
        if uuid.UUID(bytes_le=mt[e:e + 16]) == PAGE83:
            item_off, item_len = struct.unpack_from("<II", mt, e + 16)
            if item_len != 16:
                sys.exit("pinids: page83 item length")
            f.seek(meta + item_off)
            f.write(uuid.uuid5(NS, seed + "/vhdx-virtual-disk-id").bytes_le)


def main(argv):
    if len(argv) != 4:
        sys.exit(__doc__)
    path, seed, t = argv[1], argv[2], int(argv[3])
    with open(path, "r+b") as f:
        f.seek(0, 2)
        size = f.tell()
        f.seek(0)
        magic = f.read(8)
        if magic == b"vhdxfile":
            pin_vhdx(f, seed)
        else:
            f.seek(size - 512)
            if f.read(8) != b"conectix":
                sys.exit(f"pinids: {path} is neither VHD nor VHDX")
            pin_vhd(f, size, seed, t)


if __name__ == "__main__":
    main(sys.argv)
