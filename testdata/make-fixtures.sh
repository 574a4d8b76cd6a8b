#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0-or-later
#
# Regenerate every fixture under testdata/: the demo hives (hives/), the disk images
# (images/*.gz, demo.vhdx) and their expectations (fixtures.json).
#
# Needs (Debian): qemu-utils ntfs-3g gdisk mtools dosfstools fdisk util-linux libhivex-bin
# libwin-hivex-perl python3, and a C compiler (cc) for the fixed-clock shim.
# Runs unprivileged: every partition is built as its own file (mkntfs/mkfs.fat, then
# ntfscp/mcopy), then spliced into the disk file at its offset with dd conv=notrunc.
# No loop devices, no FUSE, no root.
#
# Deterministic: same tool versions => same bytes (see README.md "Reproducibility").
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
TOOLS=$HERE/tools
export SOURCE_DATE_EPOCH=1704067200   # 2024-01-01T00:00:00Z
export TZ=UTC LC_ALL=C.UTF-8 MTOOLS_SKIP_CHECK=1 PYTHONDONTWRITEBYTECODE=1
umask 022

for t in qemu-img mkntfs ntfscp ntfscat ntfsls ntfsinfo ntfstruncate sgdisk sfdisk mkfs.fat \
         mmd mcopy mtype mdir minfo blkid hivexregedit hivexget python3 gzip sha256sum dd truncate; do
    command -v "$t" >/dev/null || { echo "make-fixtures: '$t' not found; see testdata/README.md" >&2; exit 1; }
done

WORK=$(mktemp -d "${TMPDIR:-/tmp}/rdprescue-fixtures.XXXXXX")
trap '[ -n "${KEEP_WORK:-}" ] && echo "work dir kept: $WORK" >&2 || rm -rf "$WORK"' EXIT
LOG=$WORK/log
MiB=1048576

# Run quietly; show the output only when the command fails.
quiet() { "$@" >"$LOG" 2>&1 || { echo "make-fixtures: failed: $*" >&2; cat "$LOG" >&2; exit 1; }; }

# ntfs-3g, mtools and mkfs.fat stamp files with the wall clock: pin it.
PRELOAD=
if command -v cc >/dev/null && cc -shared -fPIC -O2 -o "$WORK/fixedtime.so" "$TOOLS/fixedtime.c" -ldl 2>"$LOG"; then
    PRELOAD=$WORK/fixedtime.so
else
    echo "make-fixtures: WARNING: no C compiler; file times come from the clock, output is not reproducible" >&2
fi
fixed() { LD_PRELOAD=$PRELOAD "$@"; }

MANIFEST=$WORK/manifest.tsv
: >"$MANIFEST"
manifest() { local IFS=$'\t'; echo "$*" >>"$MANIFEST"; }

# ---------------------------------------------------------------- helpers

# new_ntfs FILE MIB START_SECTOR LABEL SERIAL_HEX
new_ntfs() {
    local f=$1 mib=$2 start=$3 label=$4 serial=$5
    rm -f "$f"
    truncate -s $((mib * MiB)) "$f"
    # -T: timestamps 1970 and srandom(0), so the output is deterministic;
    # -p/-H/-S: a plausible BPB (hidden sectors = partition start).
    quiet mkntfs -q -F -T -c 4096 -s 512 -p "$start" -H 255 -S 63 -L "$label" "$f"
    # mkntfs -T gives every volume the same serial; set a distinct one in both boot sectors.
    python3 - "$f" "$serial" <<'EOF'
import struct, sys
path, serial = sys.argv[1], int(sys.argv[2], 16)
with open(path, "r+b") as f:
    f.seek(0, 2)
    for off in (0, f.tell() - 512):
        f.seek(off)
        b = bytearray(f.read(512))
        assert b[3:11] == b"NTFS    " and b[510:512] == b"\x55\xaa", off
        struct.pack_into("<Q", b, 0x48, serial)
        f.seek(off)
        f.write(b)
EOF
}

# new_fat FILE MIB START_SECTOR FAT_BITS SECTORS_PER_CLUSTER LABEL VOLID_HEX
new_fat() {
    local f=$1 mib=$2 start=$3 bits=$4 spc=$5 label=$6 volid=$7
    rm -f "$f"
    quiet fixed mkfs.fat -F "$bits" -s "$spc" -S 512 -h "$start" -i "$volid" -n "$label" -C "$f" $((mib * 1024))
}

winpath() { local p=${1#./}; p=${p//\//\\}; printf '\\%s' "$p"; }

# put_tree_ntfs DISK PART VOLUME SRC_DIR: copy a directory tree into an NTFS volume image.
put_tree_ntfs() {
    local disk=$1 part=$2 vol=$3 src=$4 d f
    local -a dirs=()
    while IFS= read -r -d '' d; do dirs+=("/${d#./}"); done < <(cd "$src" && find . -mindepth 1 -type d -print0 | sort -z)
    [ ${#dirs[@]} -eq 0 ] || quiet fixed python3 "$TOOLS/ntfsmkdir.py" "$vol" "${dirs[@]}"
    while IFS= read -r -d '' f; do
        quiet fixed ntfscp "$vol" "$src/${f#./}" "/${f#./}"
        manifest file "$disk" "$part" "$(winpath "$f")" "$src/${f#./}"
    done < <(cd "$src" && find . -type f -print0 | sort -z)
}

# put_file_ntfs DISK PART VOLUME SRC WINDOWS_PATH (the parent directory must exist)
put_file_ntfs() {
    local unix=${5//\\//}
    quiet fixed ntfscp "$3" "$4" "$unix"
    manifest file "$1" "$2" "$5" "$4"
}

# put_tree_fat DISK PART VOLUME SRC_DIR
put_tree_fat() {
    local disk=$1 part=$2 vol=$3 src=$4 d f
    find "$src" -exec touch -h -d "@$SOURCE_DATE_EPOCH" {} +
    while IFS= read -r -d '' d; do quiet fixed mmd -i "$vol" "::/${d#./}"; done \
        < <(cd "$src" && find . -mindepth 1 -type d -print0 | sort -z)
    while IFS= read -r -d '' f; do
        quiet fixed mcopy -m -i "$vol" "$src/${f#./}" "::/${f#./}"
        manifest file "$disk" "$part" "$(winpath "$f")" "$src/${f#./}"
    done < <(cd "$src" && find . -type f -print0 | sort -z)
}

# put_file_fat DISK PART VOLUME SRC WINDOWS_PATH
put_file_fat() {
    local unix=${5//\\//}
    touch -h -d "@$SOURCE_DATE_EPOCH" "$4"
    quiet fixed mcopy -m -i "$3" "$4" "::$unix"
    manifest file "$1" "$2" "$5" "$4"
}

# fragment DISK PART VOLUME: grow a 3 MiB file in three steps (256 KiB, 512 KiB, 3 MiB;
# each an ntfscp over the previous version) and write a 16 KiB file after each of the
# first two steps. ntfs-3g puts a new file at the start of the largest free extent (right
# after the growing file) and extends a file at its end when that cluster is free, else in
# the largest free extent, so the file ends up with three runs. The step sizes are small
# so that the extent after the file stays the largest one. fill-2.tmp is then truncated
# to 0 bytes, which frees its clusters (ntfs-3g makes the empty $DATA resident again).
fragment() {
    local disk=$1 part=$2 vol=$3 ino runs big=$WORK/content/late/fragmented.bin
    head -c $((256 * 1024)) "$big" >"$WORK/part1"
    head -c $((512 * 1024)) "$big" >"$WORK/part2"
    quiet fixed ntfscp "$vol" "$WORK/part1" /Windows/Temp/fragmented.bin
    quiet fixed ntfscp "$vol" "$WORK/content/late/fill-1.tmp" /Windows/Temp/fill-1.tmp
    quiet fixed ntfscp "$vol" "$WORK/part2" /Windows/Temp/fragmented.bin
    quiet fixed ntfscp "$vol" "$WORK/content/late/fill-2.tmp" /Windows/Temp/fill-2.tmp
    put_file_ntfs "$disk" "$part" "$vol" "$big" '\Windows\Temp\fragmented.bin'
    ino=$(ntfsinfo -F /Windows/Temp/fill-2.tmp "$vol" | awk '/^Dumping Inode/ && !n++ {print $3}')
    quiet fixed ntfstruncate "$vol" "$ino" 0
    manifest file "$disk" "$part" '\Windows\Temp\fill-1.tmp' "$WORK/content/late/fill-1.tmp"
    manifest file "$disk" "$part" '\Windows\Temp\fill-2.tmp' /dev/null
    runs=$(ntfsinfo -v -F /Windows/Temp/fragmented.bin "$vol" | sed -n 's/.*(fragments: \([0-9]*\)).*/\1/p')
    [ "${runs:-0}" -ge 3 ] || { echo "make-fixtures: fragmented.bin has ${runs:-?} fragments, wanted >= 3" >&2; exit 1; }
}

# windows_volume DISK PART VOLUME: the Windows tree, the hives, and the fragmented file.
windows_volume() {
    local disk=$1 part=$2 vol=$3 frag=${4:-yes} h
    put_tree_ntfs "$disk" "$part" "$vol" "$WORK/content/windows"
    for h in SYSTEM SOFTWARE; do
        put_file_ntfs "$disk" "$part" "$vol" "$WORK/hives/$h" "\\Windows\\System32\\config\\$h"
    done
    [ "$frag" = no ] || fragment "$disk" "$part" "$vol"
}

# splice DISK PART_FILE START_SECTOR
splice() {
    local start=$(($3 * 512))
    [ $((start % MiB)) -eq 0 ] || { echo "make-fixtures: $2 not MiB-aligned" >&2; exit 1; }
    dd if="$2" of="$1" bs=1M seek=$((start / MiB)) conv=notrunc,sparse status=none
}

# ---------------------------------------------------------------- hives

echo "hives"
mkdir -p "$WORK/hives" "$HERE/hives"
H=$WORK/hives
python3 "$TOOLS/hivespecs.py" system "$H/SYSTEM.json"
python3 "$TOOLS/hivespecs.py" software "$H/SOFTWARE.json"
# BCD stores point at the partitions of the disk they live on (signature/offsets, GUIDs).
python3 "$TOOLS/hivespecs.py" bcd-mbr "$H/BCD-gen1.json" 9a3f1c01 $((2048 * 512)) $((18432 * 512))
python3 "$TOOLS/hivespecs.py" bcd-mbr "$H/BCD-bitlocker.json" 9a3f1c03 $((2048 * 512)) $((18432 * 512))
GEN2_DISK=5f3c2d1e-0b4a-4c8d-9e7f-6a5b4c3d2e10
GEN2_ESP=a1e5f0c2-3b4d-4e6f-8a9b-0c1d2e3f4a01
GEN2_MSR=a1e5f0c2-3b4d-4e6f-8a9b-0c1d2e3f4a02
GEN2_WIN=a1e5f0c2-3b4d-4e6f-8a9b-0c1d2e3f4a03
GEN2_REC=a1e5f0c2-3b4d-4e6f-8a9b-0c1d2e3f4a04
python3 "$TOOLS/hivespecs.py" bcd-gpt "$H/BCD-gen2.json" $GEN2_DISK $GEN2_ESP $GEN2_WIN
for h in SYSTEM SOFTWARE BCD-gen1 BCD-gen2 BCD-bitlocker; do
    python3 "$TOOLS/mkhive.py" "$H/$h.json" "$H/$h"
    python3 "$TOOLS/mkhive.py" --check "$H/$h" >/dev/null
    python3 "$TOOLS/verifyhive.py" "$H/$h.json" "$H/$h" "$H/$h.reg" >/dev/null
done
for h in SYSTEM SOFTWARE BCD-gen1 BCD-gen2; do
    cp "$H/$h" "$H/$h.json" "$H/$h.reg" "$HERE/hives/"
done

python3 "$TOOLS/mkcontent.py" "$WORK/content"
C=$WORK/content

# ---------------------------------------------------------------- gen1-mbr

echo "gen1-mbr: MBR, System Reserved + Windows (BIOS)"
D=$WORK/gen1-mbr.raw
truncate -s $((48 * MiB)) "$D"
quiet sfdisk --no-reread --no-tell-kernel "$D" <<EOF
label: dos
label-id: 0x9a3f1c01
unit: sectors
sector-size: 512

start=2048, size=16384, type=7, bootable
start=18432, size=79872, type=7
EOF
manifest disk gen1-mbr "$D" windows=2 bcd=1:\\Boot\\BCD
new_ntfs "$WORK/p" 8 2048 "System Reserved" 0x4a1b2c3d5e6f7011
manifest part gen1-mbr 1 ntfs system-reserved
put_tree_ntfs gen1-mbr 1 "$WORK/p" "$C/sysres"
put_file_ntfs gen1-mbr 1 "$WORK/p" "$H/BCD-gen1" '\Boot\BCD'
splice "$D" "$WORK/p" 2048
new_ntfs "$WORK/p" 39 18432 Windows 0x4a1b2c3d5e6f7012
manifest part gen1-mbr 2 ntfs windows
windows_volume gen1-mbr 2 "$WORK/p"
splice "$D" "$WORK/p" 18432

# ---------------------------------------------------------------- gen2-gpt

echo "gen2-gpt: GPT, ESP + MSR + Windows + Recovery (UEFI)"
D=$WORK/gen2-gpt.raw
truncate -s $((80 * MiB)) "$D"
quiet sgdisk -U $GEN2_DISK \
    -n 1:2048:+34M -t 1:EF00 -c 1:"EFI system partition" -u 1:$GEN2_ESP \
    -n 2:71680:+2M -t 2:0C01 -c 2:"Microsoft reserved partition" -u 2:$GEN2_MSR \
    -n 3:75776:+38M -t 3:0700 -c 3:"Basic data partition" -u 3:$GEN2_WIN \
    -n 4:153600:+4M -t 4:2700 -u 4:$GEN2_REC -A 4:set:0 -A 4:set:63 \
    "$D"
manifest disk gen2-gpt "$D" windows=3 bcd=1:\\EFI\\Microsoft\\Boot\\BCD
# FAT32 needs >= 65525 clusters: 34 MiB with 512-byte clusters has 68528.
new_fat "$WORK/p" 34 2048 32 1 SYSTEM 5E5A0E51
manifest part gen2-gpt 1 fat32 esp
put_tree_fat gen2-gpt 1 "$WORK/p" "$C/esp"
cp "$H/BCD-gen2" "$WORK/BCD"
put_file_fat gen2-gpt 1 "$WORK/p" "$WORK/BCD" '\EFI\Microsoft\Boot\BCD'
splice "$D" "$WORK/p" 2048
manifest part gen2-gpt 2 none msr
new_ntfs "$WORK/p" 38 75776 Windows 0x4a1b2c3d5e6f7023
manifest part gen2-gpt 3 ntfs windows
windows_volume gen2-gpt 3 "$WORK/p"
splice "$D" "$WORK/p" 75776
new_ntfs "$WORK/p" 4 153600 Recovery 0x4a1b2c3d5e6f7024
manifest part gen2-gpt 4 ntfs recovery
put_tree_ntfs gen2-gpt 4 "$WORK/p" "$C/recovery"
splice "$D" "$WORK/p" 153600

# ---------------------------------------------------------------- mbr-extended

echo "mbr-extended: primary NTFS + extended (0x0F) with logical NTFS and FAT16"
D=$WORK/mbr-extended.raw
truncate -s $((32 * MiB)) "$D"
quiet sfdisk --no-reread --no-tell-kernel "$D" <<EOF
label: dos
label-id: 0x9a3f1c02
unit: sectors
sector-size: 512

start=2048, size=16384, type=7
start=18432, size=47104, type=f
start=20480, size=16384, type=7
start=38912, size=26624, type=6
EOF
manifest disk mbr-extended "$D" windows= bcd=
new_ntfs "$WORK/p" 8 2048 Data1 0x4a1b2c3d5e6f7031
manifest part mbr-extended 1 ntfs data
put_tree_ntfs mbr-extended 1 "$WORK/p" "$C/data1"
splice "$D" "$WORK/p" 2048
manifest part mbr-extended 2 none extended
new_ntfs "$WORK/p" 8 20480 Logical5 0x4a1b2c3d5e6f7035
manifest part mbr-extended 5 ntfs logical
put_tree_ntfs mbr-extended 5 "$WORK/p" "$C/logical5"
splice "$D" "$WORK/p" 20480
new_fat "$WORK/p" 13 38912 16 4 LOGICAL6 5E5A0E56
manifest part mbr-extended 6 fat16 logical
put_tree_fat mbr-extended 6 "$WORK/p" "$C/logical6"
splice "$D" "$WORK/p" 38912

# ---------------------------------------------------------------- bitlocker-mbr

echo "bitlocker-mbr: System Reserved + a Windows volume whose OEM id is -FVE-FS-"
D=$WORK/bitlocker-mbr.raw
truncate -s $((32 * MiB)) "$D"
quiet sfdisk --no-reread --no-tell-kernel "$D" <<EOF
label: dos
label-id: 0x9a3f1c03
unit: sectors
sector-size: 512

start=2048, size=16384, type=7, bootable
start=18432, size=47104, type=7
EOF
manifest disk bitlocker-mbr "$D" windows=2 bcd=1:\\Boot\\BCD
new_ntfs "$WORK/p" 8 2048 "System Reserved" 0x4a1b2c3d5e6f7041
manifest part bitlocker-mbr 1 ntfs system-reserved
put_tree_ntfs bitlocker-mbr 1 "$WORK/p" "$C/sysres"
put_file_ntfs bitlocker-mbr 1 "$WORK/p" "$H/BCD-bitlocker" '\Boot\BCD'
splice "$D" "$WORK/p" 2048
new_ntfs "$WORK/p" 23 18432 Windows 0x4a1b2c3d5e6f7042
# (recorded under a disk name describe.py ignores: nothing on this volume is readable)
windows_volume bitlocker-scratch 0 "$WORK/p" no
# Only the OEM id changes (boot sector and its backup); BitLocker would also encrypt
# everything, which a reader must not need to find out.
python3 - "$WORK/p" <<'EOF'
import sys
with open(sys.argv[1], "r+b") as f:
    f.seek(0, 2)
    for off in (0, f.tell() - 512):
        f.seek(off + 3)
        assert f.read(8) == b"NTFS    "
        f.seek(off + 3)
        f.write(b"-FVE-FS-")
EOF
manifest part bitlocker-mbr 2 bitlocker windows
splice "$D" "$WORK/p" 18432
rm -f "$WORK/p"

# ---------------------------------------------------------------- containers

echo "containers (qemu-img convert, ids pinned)"
# convert DISK FORMAT OUT [qemu-img -O/-o args...]
convert() {
    local disk=$1 fmt=$2 out=$3
    shift 3
    quiet qemu-img convert -q -f raw "$@" "$WORK/$disk.raw" "$WORK/$out"
    [ "$fmt" = raw ] || python3 "$TOOLS/pinids.py" "$WORK/$out" "$out" "$SOURCE_DATE_EPOCH"
    manifest container "$disk" "$out" "$fmt"
}
for disk in gen1-mbr gen2-gpt; do
    cp --sparse=always "$WORK/$disk.raw" "$WORK/$disk.raw.img"
    manifest container "$disk" "$disk.raw.img" raw
    convert $disk vhd-fixed "$disk-fixed.vhd" -O vpc -o subformat=fixed,force_size=on
    convert $disk vhd-dynamic "$disk-dynamic.vhd" -O vpc -o subformat=dynamic,force_size=on
done
convert gen1-mbr vhdx-dynamic gen1-mbr-dynamic.vhdx -O vhdx -o subformat=dynamic
convert gen1-mbr vhdx-fixed gen1-mbr-fixed.vhdx -O vhdx -o subformat=fixed
# The demo: smallest blocks (1 MiB) keep the uncompressed file small.
convert gen2-gpt vhdx-dynamic demo.vhdx -O vhdx -o subformat=dynamic,block_size=1M
for disk in mbr-extended bitlocker-mbr; do
    cp --sparse=always "$WORK/$disk.raw" "$WORK/$disk.raw.img"
    manifest container "$disk" "$disk.raw.img" raw
done

# ---------------------------------------------------------------- publish

echo "compress"
mkdir -p "$HERE/images"
rm -f "$HERE"/images/*.gz
while IFS=$'\t' read -r kind disk out fmt; do
    [ "$kind" = container ] || continue
    if [ "$out" = demo.vhdx ]; then
        cp "$WORK/$out" "$HERE/demo.vhdx"
    else
        name=${out%.img}
        gzip -n -c "$WORK/$out" >"$HERE/images/$name.gz"
    fi
done <"$MANIFEST"

echo "fixtures.json (read back with qemu-img, sfdisk, ntfs-3g, mtools)"
python3 "$TOOLS/describe.py" "$HERE" "$MANIFEST" "$HERE/fixtures.json"
echo "done"
