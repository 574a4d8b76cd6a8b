#!/usr/bin/env python3
# SPDX-License-Identifier: GPL-2.0-or-later
"""Fill an NTFS volume image with many files of real-looking data, without
mounting it (no FUSE, no root): the bench image of issue 16 ("NTFS with 50k
files"), where running ntfscp once per file would take many minutes.

usage: ntfsbulk.py VOLUME_IMAGE /Top FILES MIB [SEED]

Creates /Top/dNNN/fNNNNN.bin: FILES files holding about MIB MiB in all, in
folders of 250. Sizes: most files small (a few hundred bytes, resident in
their MFT record, up to 32 KiB), one in 500 large (1 to 16 MiB), as on a
Windows volume. Contents, deterministic for a SEED: incompressible bytes
(compressed files, media), repeated text (logs, sources) and executable-like
data (a header, code-like bytes, 64 KiB stretches of zeros: sections and
padding), so a copy meets data, text and zero runs.

libntfs-3g (from ntfs-3g) through ctypes, as ntfsmkdir.py: ntfs_mount,
ntfs_pathname_to_inode, ntfs_create (S_IFDIR / S_IFREG), ntfs_attr_open
($DATA, unnamed), ntfs_attr_pwrite, ntfs_umount.
"""
import ctypes
import os
import random
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import ntfsmkdir  # noqa: E402  (the library loader)

S_IFDIR = 0o040000
S_IFREG = 0o100000
AT_DATA = 0x80
PER_DIR = 250
TEXT = (b"2026-12-05 17:49:03.118 INFO  svchost[1184] TermService: listener RDP-Tcp on 0.0.0.0:3389 "
        b"(SecurityLayer=2, UserAuthentication=1); session 2 connected from 10.0.0.7\r\n")


def content(rng, size):
    kind = rng.random()
    if kind < 0.4:
        return rng.randbytes(size)
    if kind < 0.7:
        start = rng.randrange(len(TEXT))
        return ((TEXT[start:] + TEXT) * (size // len(TEXT) + 2))[:size]
    # Executable-like: header, code, zero padding stretches.
    out = bytearray(b"MZ\x90\x00" + bytes(60) + rng.randbytes(min(size, 4096)))
    while len(out) < size:
        out += bytes(64 << 10) if rng.random() < 0.25 else rng.randbytes(min(256 << 10, size))
    return bytes(out[:size])


def sizes(rng, files, mib):
    small = []
    for i in range(files):
        if i % 500 == 499:
            small.append(rng.randint(1 << 20, 16 << 20))
        elif rng.random() < 0.35:
            small.append(rng.randint(64, 700))
        else:
            small.append(int(2 ** rng.uniform(9, 15)))
    scale = (mib << 20) / max(1, sum(small))
    # Scale the large files only, so small files stay small.
    rest = sum(s for i, s in enumerate(small) if i % 500 != 499)
    big = sum(s for i, s in enumerate(small) if i % 500 == 499)
    factor = max(0.0, ((mib << 20) - rest) / big) if big else scale
    return [int(s * factor) if i % 500 == 499 else s for i, s in enumerate(small)]


def main(argv):
    if len(argv) < 5:
        sys.exit(__doc__)
    vol_path, top, files, mib = argv[1], argv[2].rstrip("/"), int(argv[3]), int(argv[4])
    rng = random.Random(int(argv[5]) if len(argv) > 5 else 16)
    lib = ntfsmkdir.load()
    vp = ctypes.c_void_p
    lib.ntfs_attr_open.restype = vp
    lib.ntfs_attr_open.argtypes = [vp, ctypes.c_uint32, vp, ctypes.c_uint32]
    lib.ntfs_attr_pwrite.restype = ctypes.c_int64
    lib.ntfs_attr_pwrite.argtypes = [vp, ctypes.c_int64, ctypes.c_int64, ctypes.c_char_p]
    lib.ntfs_attr_close.restype = None
    lib.ntfs_attr_close.argtypes = [vp]
    unnamed = ctypes.addressof(ctypes.c_uint16.in_dll(lib, "AT_UNNAMED"))
    libc = ctypes.CDLL(None)
    ntfsmkdir.main(["ntfsmkdir", vol_path] + [f"{top}/d{d:03}" for d in range((files + PER_DIR - 1) // PER_DIR)])
    vol = lib.ntfs_mount(vol_path.encode(), 0)
    if not vol:
        sys.exit(f"ntfsbulk: cannot mount {vol_path}: {os.strerror(ctypes.get_errno())}")

    def create(dni, name, mode):
        ucs = ctypes.c_void_p(None)
        n = lib.ntfs_mbstoucs(name.encode(), ctypes.byref(ucs))
        ni = lib.ntfs_create(dni, 0, ucs, n, mode)
        libc.free(ucs)
        if not ni:
            sys.exit(f"ntfsbulk: cannot create {name}: {os.strerror(ctypes.get_errno())}")
        return ni

    try:
        for i, size in enumerate(sizes(rng, files, mib)):
            d = f"{top}/d{i // PER_DIR:03}"
            # The folder is closed before the file is written: the file's
            # close updates its entry in the folder's index, which fails
            # (EIO) while the folder is still open here.
            dni = lib.ntfs_pathname_to_inode(vol, None, d.encode())
            if not dni:
                sys.exit(f"ntfsbulk: cannot open {d}")
            ni = create(dni, f"f{i:05}.bin", S_IFREG)
            if lib.ntfs_inode_close(dni):
                sys.exit(f"ntfsbulk: closing {d} failed: {os.strerror(ctypes.get_errno())}")
            data = content(rng, size)
            na = lib.ntfs_attr_open(ni, AT_DATA, unnamed, 0)
            if not na or lib.ntfs_attr_pwrite(na, 0, len(data), data) != len(data):
                sys.exit(f"ntfsbulk: cannot write {d}/f{i:05}.bin ({size} bytes): {os.strerror(ctypes.get_errno())}")
            lib.ntfs_attr_close(na)
            if lib.ntfs_inode_close(ni):
                sys.exit(f"ntfsbulk: closing {d}/f{i:05}.bin failed: {os.strerror(ctypes.get_errno())}")
    finally:
        if lib.ntfs_umount(vol, 0):
            sys.exit(f"ntfsbulk: unmount failed: {os.strerror(ctypes.get_errno())}")


if __name__ == "__main__":
    main(sys.argv)
