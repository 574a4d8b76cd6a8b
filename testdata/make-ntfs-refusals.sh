#!/usr/bin/env bash
# testdata/images/ntfs-refusals.img.gz: a bare 12 MiB NTFS volume (512-byte
# clusters) made by mkntfs and written through ntfs-3g (FUSE, root), holding
# one file for each case the in-place writer must refuse (fs/ntfs.rs
# overwrite_plan, formats.md E.3) and one it must accept:
#   plain.bin            16 KiB random, non-resident, contiguous: accepted
#   comp/compressed.bin  16 KiB random in a directory with the compressed
#                        attribute (ntfs-3g -o compression): $DATA flag
#                        COMPRESSED, but incompressible, so every run is real
#                        (only the flag check refuses it)
#   sparse.bin           8 KiB of data, a hole, 4 bytes at the end: SPARSE
#   resident.bin         100 bytes: resident in the MFT record
#   frag.bin             the volume filled with 1 KiB files, every other one
#                        deleted, then frag.bin written in 1 KiB pieces (byte
#                        k % 251 in piece k) until the volume is full: ~1500
#                        runs, so its $DATA spans several MFT records under an
#                        $ATTRIBUTE_LIST (fill/ keeps the other half)
#   encrypted.bin        16 KiB random; ntfs-3g cannot make EFS files, so the
#                        ENCRYPTED flag (0x4000) is set afterwards in its $DATA
#                        attribute header by this script (the clusters stay
#                        plain; what is tested is that the flag refuses)
# Needs root, /dev/fuse, mkntfs, ntfs-3g, ntfsinfo, python3.
set -euo pipefail
cd "$(dirname "$0")"
work=$(mktemp -d); trap 'mountpoint -q "$work/m" && umount "$work/m"; rm -rf "$work"' EXIT
img=$work/v.img; mkdir "$work/m"
truncate -s 12M "$img"
mkntfs -F -q -Q -c 512 -L Refusals "$img" >/dev/null 2>&1
ntfs-3g -o compression "$img" "$work/m"
python3 - "$work/m" <<'PY'
import os, random, struct, sys
os.chdir(sys.argv[1])
rnd = random.Random(18)
data = lambda n: bytes(rnd.getrandbits(8) for _ in range(n))
def attrib(p, v=None):
    if v is not None:
        os.setxattr(p, "system.ntfs_attrib_be", struct.pack(">I", v))
    return struct.unpack(">I", os.getxattr(p, "system.ntfs_attrib_be"))[0]
open("plain.bin", "wb").write(data(16384))
open("encrypted.bin", "wb").write(data(16384))
os.mkdir("comp"); attrib("comp", 0x800)
open("comp/compressed.bin", "wb").write(data(16384))
assert attrib("comp/compressed.bin") & 0x800, "not compressed"
open("resident.bin", "wb").write(b"r" * 100)
with open("sparse.bin", "wb") as f:
    f.write(data(8192)); f.seek(1048000); f.write(b"tail")
assert attrib("sparse.bin") & 0x200, "not sparse"
os.mkdir("fill")
n = 0
try:
    while True:
        open(f"fill/{n}", "wb").write(b"f" * 1024); n += 1
except OSError:
    pass
for i in range(0, n, 2):
    os.remove(f"fill/{i}")
fd = os.open("frag.bin", os.O_CREAT | os.O_WRONLY); k = 0
try:
    while True:
        os.write(fd, bytes([k % 251]) * 1024); k += 1
except OSError:
    pass
os.close(fd)
PY
umount "$work/m"
[ "$(ntfsinfo -F frag.bin "$img" | grep -c 'Dumping attribute \$DATA')" -gt 1 ] || { echo "frag.bin's \$DATA is in one record" >&2; exit 1; }
rec=$(ntfsinfo -F encrypted.bin "$img" | sed -n 's/.*\$DATA (0x80) from mft record \([0-9]*\).*/\1/p' | head -1)
python3 - "$img" "$rec" <<'PY'
import struct, sys
path, rec = sys.argv[1], int(sys.argv[2])
f = open(path, "r+b"); boot = f.read(512)
bps, spc = struct.unpack_from("<HB", boot, 11)
cluster = bps * spc
mft = struct.unpack_from("<Q", boot, 0x30)[0] * cluster
c = struct.unpack_from("<b", boot, 0x40)[0]
size = 1 << -c if c < 0 else c * cluster
at = mft + rec * size
f.seek(at); r = bytearray(f.read(size))
assert r[:4] == b"FILE"
a = struct.unpack_from("<H", r, 0x14)[0]
while struct.unpack_from("<I", r, a)[0] != 0x80:
    a += struct.unpack_from("<I", r, a + 4)[0]
flags = a + 0x0C
assert flags % 512 < 510, "flags field under an update-sequence fixup"
struct.pack_into("<H", r, flags, struct.unpack_from("<H", r, flags)[0] | 0x4000)
f.seek(at); f.write(r)
PY
gzip -9n < "$img" > images/ntfs-refusals.img.gz
ls -l images/ntfs-refusals.img.gz
