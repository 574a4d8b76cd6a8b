#!/usr/bin/env python3
# SPDX-License-Identifier: GPL-2.0-or-later
"""mkdir -p inside an NTFS volume image, without mounting it (no FUSE, no root).

usage: ntfsmkdir.py VOLUME_IMAGE /Dir/Sub [/Other/Dir ...]

ntfs-3g's command-line tools can copy files into existing directories (ntfscp) but cannot
create directories, so this calls libntfs-3g (Debian package libntfs-3g89, pulled in by
ntfs-3g) through ctypes: ntfs_mount, ntfs_pathname_to_inode, ntfs_create(S_IFDIR),
ntfs_umount. Paths use '/' and UTF-8.
"""
import ctypes
import ctypes.util
import glob
import os
import sys

S_IFDIR = 0o040000


def load():
    name = ctypes.util.find_library("ntfs-3g")
    candidates = [name] if name else []
    candidates += sorted(glob.glob("/usr/lib/*/libntfs-3g.so.*")) + sorted(glob.glob("/lib/*/libntfs-3g.so.*"))
    for c in candidates:
        try:
            lib = ctypes.CDLL(c, use_errno=True)
            break
        except OSError:
            continue
    else:
        sys.exit("ntfsmkdir: libntfs-3g not found (install ntfs-3g)")
    vp = ctypes.c_void_p
    lib.ntfs_mount.restype = vp
    lib.ntfs_mount.argtypes = [ctypes.c_char_p, ctypes.c_ulong]
    lib.ntfs_umount.restype = ctypes.c_int
    lib.ntfs_umount.argtypes = [vp, ctypes.c_int]
    lib.ntfs_pathname_to_inode.restype = vp
    lib.ntfs_pathname_to_inode.argtypes = [vp, vp, ctypes.c_char_p]
    lib.ntfs_mbstoucs.restype = ctypes.c_int
    lib.ntfs_mbstoucs.argtypes = [ctypes.c_char_p, ctypes.POINTER(vp)]
    lib.ntfs_create.restype = vp
    lib.ntfs_create.argtypes = [vp, ctypes.c_uint32, vp, ctypes.c_uint8, ctypes.c_uint64]
    lib.ntfs_inode_close.restype = ctypes.c_int
    lib.ntfs_inode_close.argtypes = [vp]
    return lib


def main(argv):
    if len(argv) < 3:
        sys.exit(__doc__)
    lib = load()
    libc = ctypes.CDLL(None)
    vol = lib.ntfs_mount(argv[1].encode(), 0)
    if not vol:
        sys.exit(f"ntfsmkdir: cannot mount {argv[1]}: {os.strerror(ctypes.get_errno())}")
    try:
        for path in argv[2:]:
            parts = [p for p in path.split("/") if p]
            cur = ""
            for p in parts:
                parent, cur = cur or "/", cur + "/" + p
                ni = lib.ntfs_pathname_to_inode(vol, None, cur.encode())
                if ni:
                    lib.ntfs_inode_close(ni)
                    continue
                dni = lib.ntfs_pathname_to_inode(vol, None, parent.encode())
                if not dni:
                    sys.exit(f"ntfsmkdir: cannot open {parent}")
                ucs = ctypes.c_void_p(None)
                n = lib.ntfs_mbstoucs(p.encode(), ctypes.byref(ucs))
                if n <= 0 or n > 255:
                    sys.exit(f"ntfsmkdir: bad name {p!r}")
                ni = lib.ntfs_create(dni, 0, ucs, n, S_IFDIR)
                libc.free(ucs)
                if not ni:
                    sys.exit(f"ntfsmkdir: cannot create {cur}: {os.strerror(ctypes.get_errno())}")
                if lib.ntfs_inode_close(ni) or lib.ntfs_inode_close(dni):
                    sys.exit(f"ntfsmkdir: closing {cur} failed")
    finally:
        if lib.ntfs_umount(vol, 0):
            sys.exit(f"ntfsmkdir: unmount failed: {os.strerror(ctypes.get_errno())}")


if __name__ == "__main__":
    main(sys.argv)
