#!/usr/bin/env bash
# Run every fuzz target for SECONDS (default 120) each, seeded with small
# images made here (qemu-img, mkntfs, mkfs.fat, sfdisk, iconv), with the
# hives of testdata/hives and with the Windows-made images and hives of
# ../shared/data when present. Uses the stable toolchain through
# RUSTC_BOOTSTRAP (cargo-fuzz needs -Z flags). Crashes land in fuzz/artifacts/.
#   usage: fuzz/run.sh [SECONDS] [TARGET...]
set -euo pipefail
cd "$(dirname "$0")"
secs=${1:-120}; shift || true
targets=("$@"); [ ${#targets[@]} -gt 0 ] || targets=(volume fat ntfs image hive hive_edit regfile write sam preg gpttmpl baseline undo inspect overwrite_plan system_files vmdk qcow2 evtx)
export RUSTC_BOOTSTRAP=1
seeds=$(mktemp -d); trap 'rm -rf "$seeds"' EXIT
mkdir -p corpus/{image,volume,ntfs,fat,hive,hive_edit,regfile,write,baseline,undo,inspect,overwrite_plan,sam,preg,gpttmpl,system_files,vmdk,qcow2,evtx}
shared=../../shared/data
# Little-endian u32 / u8 as raw bytes.
le32() { printf "$(printf '\\x%02x\\x%02x\\x%02x\\x%02x' $(($1 & 255)) $(($1 >> 8 & 255)) $(($1 >> 16 & 255)) $(($1 >> 24 & 255)))"; }
le8() { printf "$(printf '\\x%02x' $(($1 & 255)))"; }
# A hive cut to its base block + hive-bins size (drops trailing slack).
hive_trim() { head -c $((4096 + $(od -An -tu4 -j40 -N4 "$1" | tr -d ' '))) "$1"; }

# NTFS and FAT volumes with a few files.
truncate -s 2M "$seeds/n.img"; mkntfs -F -q -Q -c 512 -L Windows "$seeds/n.img" >/dev/null 2>&1
echo hello > "$seeds/f.txt"
ntfscp -q "$seeds/n.img" "$seeds/f.txt" "readme.txt" 2>/dev/null || true
cp "$seeds/n.img" corpus/ntfs/seed-ntfs
truncate -s 1M "$seeds/f.img"; mkfs.fat -F 12 -n ESP "$seeds/f.img" >/dev/null
MTOOLS_SKIP_CHECK=1 mmd -i "$seeds/f.img" ::EFI ::EFI/Microsoft ::EFI/Microsoft/Boot
MTOOLS_SKIP_CHECK=1 mcopy -i "$seeds/f.img" "$seeds/f.txt" ::EFI/Microsoft/Boot/BCD
cp "$seeds/f.img" corpus/fat/seed-fat12
truncate -s 34M "$seeds/f32.img"; mkfs.fat -F 32 "$seeds/f32.img" >/dev/null; head -c 1M "$seeds/f32.img" > corpus/fat/seed-fat32-head

# Partition tables: MBR with an extended partition, GPT.
truncate -s 4M "$seeds/mbr.img"
printf 'label: dos\n2048,1024,7,*\n3072,4096,5\n4096,512,7\n5120,512,c\n' | sfdisk -q "$seeds/mbr.img" >/dev/null
head -c 3M "$seeds/mbr.img" > corpus/volume/seed-mbr
truncate -s 4M "$seeds/gpt.img"
printf 'label: gpt\n2048,1024,C12A7328-F81F-11D2-BA4B-00A0C93EC93B\n3072,2048,EBD0A0A2-B9E5-4433-87C0-68B6B72699C7\n' | sfdisk -q "$seeds/gpt.img" >/dev/null
cp "$seeds/gpt.img" corpus/volume/seed-gpt

# Containers: small VHD and VHDX made by qemu-img over the MBR disk.
qemu-img convert -O vpc -o subformat=dynamic "$seeds/mbr.img" corpus/image/seed-vhd-dynamic
qemu-img convert -O vpc -o subformat=fixed "$seeds/mbr.img" corpus/image/seed-vhd-fixed
qemu-img convert -O vhdx -o subformat=dynamic,block_size=1M,log_size=1M "$seeds/gpt.img" corpus/image/seed-vhdx
for f in ../../shared/data/images/win10-pending-log.vhdx.gz ../../shared/data/images/win10-diskpart-orphan-differencing.vhd.gz; do
    [ -f "$f" ] && gunzip -c "$f" > "corpus/image/shared-$(basename "$f" .gz)"
done

# VMDK and QCOW2 (targets vmdk, qcow2: [u32 len A][A][B], A the image, B its
# extent, parent or backing file; see fuzz_targets/vmdk.rs): qemu-img's
# subformats of the 1 MiB FAT disk, a child over a parent, zero clusters.
pair() { { le32 "$(stat -c %s "$2")"; cat "$2" "${3:-/dev/null}"; } > "$1"; }
for sub in monolithicSparse streamOptimized monolithicFlat twoGbMaxExtentSparse; do
    mkdir -p "$seeds/v-$sub"
    qemu-img convert -O vmdk -o subformat=$sub "$seeds/f.img" "$seeds/v-$sub/b.vmdk"
    extent=$(ls "$seeds/v-$sub" | grep -v '^b.vmdk$' | head -1 || true)
    pair "corpus/vmdk/seed-$sub" "$seeds/v-$sub/b.vmdk" "${extent:+$seeds/v-$sub/$extent}"
done
(cd "$seeds/v-monolithicSparse" && qemu-img create -q -f vmdk -b b.vmdk -F vmdk a.vmdk && qemu-io -f vmdk -c "write -P 0xab 4096 70000" a.vmdk >/dev/null)
pair corpus/vmdk/seed-child "$seeds/v-monolithicSparse/a.vmdk" "$seeds/v-monolithicSparse/b.vmdk"
qemu-img convert -O qcow2 -o compat=0.10 "$seeds/f.img" "$seeds/q2"; pair corpus/qcow2/seed-v2 "$seeds/q2"
qemu-img convert -O qcow2 -o compat=1.1,cluster_size=4096 "$seeds/f.img" "$seeds/q3"; pair corpus/qcow2/seed-v3 "$seeds/q3"
qemu-img convert -c -O qcow2 "$seeds/f.img" "$seeds/qc"; pair corpus/qcow2/seed-compressed "$seeds/qc"
mkdir -p "$seeds/qb"; cp "$seeds/f.img" "$seeds/qb/b"
(cd "$seeds/qb" && qemu-img create -q -f qcow2 -b b -F raw a.qcow2 && qemu-io -f qcow2 -c "write -z 0 65536" -c "write -P 0x5a 200000 9000" a.qcow2 >/dev/null)
pair corpus/qcow2/seed-backing "$seeds/qb/a.qcow2" "$seeds/qb/b"

# Hives (target hive: [u32 primary len][u32 log1 len][primary][log1][log2]):
# dirty ones with their logs, and clean ones without.
hive_seed() { # NAME PRIMARY [LOG1 [LOG2]]
    local out="corpus/hive/$1" p=$2 l1=${3:-/dev/null} l2=${4:-/dev/null}
    { le32 "$(stat -c %s "$p")"; le32 "$(stat -c %s "$l1")"; cat "$p" "$l1" "$l2"; } > "$out"
}
hive_seed seed-system ../testdata/hives/SYSTEM
hive_seed seed-bcd ../testdata/hives/BCD-gen1
y=$shared/hives/yarp
[ -d "$y" ] && hive_seed shared-new-dirty "$y/NewDirtyHive1/NewDirtyHive" "$y/NewDirtyHive1/NewDirtyHive.LOG1" "$y/NewDirtyHive1/NewDirtyHive.LOG2"
[ -d "$y" ] && hive_seed shared-old-dirty "$y/OldDirtyHive/OldDirtyHive" "$y/OldDirtyHive/OldDirtyHive.LOG1"
[ -d "$y" ] && hive_seed shared-bad-log3 "$y/BadLogHive3/BadLogHive" "$y/BadLogHive3/BadLogHive.LOG1" "$y/BadLogHive3/BadLogHive.LOG2"
n=$shared/hives/ntuser-stale-log
[ -d "$n" ] && hive_seed shared-ntuser-stale "$n/NTUSER.DAT" "$n/NTUSER.DAT.LOG1" "$n/NTUSER.DAT.LOG2"
[ -f "$shared/hives/hivex/minimal" ] && hive_seed shared-hivex-minimal "$shared/hives/hivex/minimal"

# Hive editor (target hive_edit: [flags][script len][script][hive], see
# fuzz_targets/hive_edit.rs): small clean hives, each with a few op scripts.
s_mix='\x00\x90\x01\x03\x04\x00\x01\x01\x21\x0b\x0c\x02\x02\xd0\x87\x55\x04\x91\x81\x06\x40\x16\x00\x05\x93\x00\x07\x94\x82\x00\x0a\x80\x41\x02\x60\x00\xf8\x78\x56\x34\x12\x03\x00\x07'
s_err='\x05\x60\x00\x00\x90\x7f\x03\x04\x00\x01\x00\x90\x01\x02\x68\xc2\x11\x06\x10\xff\x00\x00\x90\x01\x03\x04\x00\x01'
s_add='\x06\x40\x16\x00\x01\x21\x0b\x0c\x02\x02\xd0\x87\x55\x00\x50\x0d\x11\x09\x01\x04\x80\x33'
hives=(../testdata/hives/SOFTWARE ../testdata/hives/SYSTEM ../testdata/hives/BCD-gen1)
for h in hivex/minimal hivex/special bcd/BCD-win10-uefi bcd/BCD-zimmerman sam/SAM-server2019 sam/SAM-win10 yarp/NewDirtyHive1/RecoveredHive_Windows10; do
    [ -f "$shared/hives/$h" ] && hives+=("$shared/hives/$h")
done
for h in "${hives[@]}"; do
    b=$(basename "$h")
    for v in "mix 1 $s_mix" "err 3 $s_err" "add 7 $s_add" "mix0 0 $s_mix"; do
        set -- $v
        { le8 "$2"; le8 "$(printf "$3" | wc -c)"; printf "$3"; hive_trim "$h"; } > "corpus/hive_edit/seed-$b-$1"
    done
done

# .reg files (target regfile): UTF-8 and UTF-16LE with BOM (as regedit saves).
cat > "$seeds/a.reg" <<'REG'
Windows Registry Editor Version 5.00

[HKEY_LOCAL_MACHINE\SYSTEM\ControlSet001\Control\Terminal Server]
"fDenyTSConnections"=dword:00000000
@="default \"quoted\" \\ back"
"Multi"=hex(7):61,00,00,00,62,00,63,00,00,00,00,00
"Q"=hex(b):01,00,00,00,00,00,00,00
"Expand"=hex(2):25,00,53,00,79,00,73,00,74,00,65,00,6d,00,52,00,6f,00,6f,00,\
  74,00,25,00,00,00
"Bin"=hex:de,ad,be,ef
"Sz"=hex(1):41,00,5c,00,42,00,00,00
"None"=hex(0):
"gone"=-
; a comment

[-HKEY_LOCAL_MACHINE\SOFTWARE\Old]

[HKEY_LOCAL_MACHINE\SYSTEM\ControlSet001\Control\Terminal Server\WinStations\RDP-Tcp]
"PortNumber"=dword:00000d3d
"UserAuthentication"=dword:00000001
"SecurityLayer"=dword:00000002
"Ünïcödé ключ 日本"="värde ✓"
REG
cat > "$seeds/b.reg" <<'REG'
REGEDIT4

[HKEY_CURRENT_USER\Software\Test]
"Str"="line"
"Big"=hex:00,01,02,03,04,05,06,07,08,09,0a,0b,0c,0d,0e,0f,10,11,12,13,14,15,16,\
  17,18,19,1a,1b,1c,1d,1e,1f,20,21,22,23,24,25,26,27,28,29,2a,2b,2c,2d,2e,2f,30,\
  31,32,33
"Dw"=dword:ffffffff
"Odd"=hex(80000000):ff
REG
printf 'Windows Registry Editor Version 5.00\r\n\r\n[HKEY_LOCAL_MACHINE\\BCD00000000\\Objects]\r\n"Element"=hex(3):00,01,\\\r\n  02\r\n@=-\r\n\r\n' > "$seeds/c.reg"
for r in a b c; do
    cp "$seeds/$r.reg" "corpus/regfile/seed-$r-utf8"
    { printf '\xef\xbb\xbf'; cat "$seeds/$r.reg"; } > "corpus/regfile/seed-$r-utf8-bom"
    { printf '\xff\xfe'; iconv -f UTF-8 -t UTF-16LE "$seeds/$r.reg"; } > "corpus/regfile/seed-$r-utf16"
    { printf '\xff\xfe'; sed 's/$/\r/' "$seeds/$r.reg" | iconv -f UTF-8 -t UTF-16LE; } > "corpus/regfile/seed-$r-utf16-crlf"
done
cp ../testdata/hives/BCD-gen1.reg corpus/regfile/seed-bcd-export

# Image writers (target write: [flags][u32 parent len][7 x (u32 off, u16 len,
# u8 fill)][parent][image], see fuzz_targets/write.rs): 1 MiB images (raw,
# VHD fixed/dynamic, VHDX fixed/dynamic) with a 3-range patch, with and
# without checksum fixing; then differencing children of them, written by the
# writer itself (WRITE_FUZZ_SAVE_PAIRS), as parent+child inputs.
qemu-img convert -O vpc -o subformat=dynamic "$seeds/f.img" "$seeds/w-vhd-dynamic"
qemu-img convert -O vpc -o subformat=fixed "$seeds/f.img" "$seeds/w-vhd-fixed"
# qemu-img's VHDX files are >= 9 MiB for a 1 MiB disk; these are laid out
# compactly (no log, metadata at 1 MiB, BAT at 2 MiB, blocks from 3 MiB), as
# the format allows: 3-4 MiB files, so parent + child pairs stay ~10 MiB.
python3 - "$seeds/f.img" "$seeds" <<'PY'
import struct, sys, uuid
MIB = 1 << 20
T = []
for n in range(256):
    c = n
    for _ in range(8):
        c = (c >> 1) ^ 0x82F63B78 if c & 1 else c >> 1
    T.append(c)
def crc32c(b):
    c = 0xFFFFFFFF
    for x in b:
        c = T[(c ^ x) & 0xFF] ^ (c >> 8)
    return c ^ 0xFFFFFFFF
def g(s):
    return uuid.UUID(s).bytes_le
def with_crc(b):
    b[4:8] = b"\0\0\0\0"
    b[4:8] = struct.pack("<I", crc32c(bytes(b)))
    return bytes(b)
def vhdx(path, vsize, sector, flags, blocks, data):
    """blocks: {block index: BAT state}; FULLY_PRESENT blocks hold data."""
    bs = MIB
    f = bytearray(3 * MIB)
    f[0:8] = b"vhdxfile"
    c = "fuzz seed".encode("utf-16-le"); f[8:8 + len(c)] = c
    for i, at in enumerate((64 << 10, 128 << 10)):
        h = bytearray(4096); h[0:4] = b"head"
        struct.pack_into("<Q", h, 8, 10 + i)
        h[16:32] = g("11111111-2222-3333-4444-555555555555"); h[32:48] = g("66666666-7777-8888-9999-aaaaaaaaaaaa")
        struct.pack_into("<HHIQ", h, 64, 0, 1, MIB, MIB)
        f[at:at + 4096] = with_crc(h)
    rt = bytearray(64 << 10); rt[0:4] = b"regi"; struct.pack_into("<I", rt, 8, 2)
    for i, (gid, off) in enumerate((("2DC27766-F623-4200-9D64-115E9BFD4A08", 2 * MIB), ("8B7CA206-4790-4B9A-B8FE-575F050F886E", MIB))):
        e = 16 + 32 * i; rt[e:e + 16] = g(gid); struct.pack_into("<QII", rt, e + 16, off, MIB, 1)
    rt = with_crc(rt); f[192 << 10:256 << 10] = rt; f[256 << 10:320 << 10] = rt
    items = [("CAA16737-FA36-4D43-B3B6-33F0AA44E76B", 4, struct.pack("<II", bs, flags)),
             ("2FA54224-CD1B-4876-B211-5DBED83BF4B8", 6, struct.pack("<Q", vsize)),
             ("BECA12AB-B2E6-4523-93EF-C309E000C746", 6, g("0badc0de-1234-5678-9abc-def012345678")),
             ("8141BF1D-A96F-4709-BA47-F233A8FAAB5F", 6, struct.pack("<I", sector)),
             ("CDA348C7-445D-4471-9CC9-E9885251C556", 6, struct.pack("<I", 4096))]
    m = MIB; f[m:m + 8] = b"metadata"; struct.pack_into("<H", f, m + 10, len(items))
    at = 64 << 10
    for i, (gid, fl, d) in enumerate(items):
        e = m + 32 + 32 * i; f[e:e + 16] = g(gid); struct.pack_into("<III", f, e + 16, at, len(d), fl)
        f[m + at:m + at + len(d)] = d; at += 16
    chunk = ((1 << 23) * sector) // bs
    nxt = 3 * MIB
    for b, state in sorted(blocks.items()):
        off = 0
        if state == 6:
            off = nxt; piece = data[b * bs:(b + 1) * bs]
            f += piece + bytes(bs - len(piece)); nxt += bs
        struct.pack_into("<Q", f, 2 * MIB + 8 * (b + b // chunk), off | state)
    open(path, "wb").write(f)
img = open(sys.argv[1], "rb").read()
out = sys.argv[2]
vhdx(out + "/w-vhdx-dynamic", MIB, 512, 0, {0: 6}, img)
vhdx(out + "/w-vhdx-fixed", MIB, 512, 1, {0: 6}, img)
vhdx(out + "/w-vhdx-4k-zero", 2 * MIB, 4096, 0, {0: 6, 1: 2}, img)
PY
cp "$seeds/f.img" "$seeds/w-raw"
# ranges: 1/16 of the disk +0x1234 bytes of pattern 0x5a; 1/2 - 1 byte, 0x201
# zero bytes; the last 300 bytes, pattern 0xc3 (cut at the end of the disk)
ranges='\x00\x00\x00\x10\x34\x12\x5a\xff\xff\xff\x7f\x01\x02\x00\xff\xff\xff\xff\x2c\x01\xc3'
for f in "$seeds"/w-*; do
    for fl in 3 19; do
        { le8 $fl; le32 0; printf "$ranges"; head -c 28 /dev/zero; cat "$f"; } > "corpus/write/seed-$(basename "$f")-$fl"
    done
done

# Group Policy files (targets preg, gpttmpl): a Registry.pol with plain
# values, a string, directives and an empty-data entry; security templates
# as secedit writes them (UTF-16LE with BOM, CRLF) and as ANSI text.
mkdir -p corpus/preg corpus/gpttmpl
python3 - corpus/preg <<'PY'
import struct, sys
def s(t): return (t + "\0").encode("utf-16-le")
def e(key, val, ty, data):
    return b"[\0" + s(key) + b";\0" + s(val) + b";\0" + struct.pack("<I", ty) + b";\0" + struct.pack("<I", len(data)) + b";\0" + data + b"]\0"
ts = r"Software\Policies\Microsoft\Windows NT\Terminal Services"
body = (e(ts, "fDenyTSConnections", 4, struct.pack("<I", 1)) + e(ts, "UserAuthentication", 4, struct.pack("<I", 0))
        + e(ts, "**del.SecurityLayer", 1, s(" ")) + e(ts, "**DeleteValues", 1, s("A;B")) + e(r"Software\Policies\X", "**delvals.", 1, s(" "))
        + e(r"Software\Policies\X", "**DeleteKeys", 1, s("K1;K2")) + e(r"Software\Policies\X", "**SecureKey", 4, struct.pack("<I", 1))
        + e(r"Software\Policies\X", "**soft.Name", 1, s("value")) + e(r"System\CurrentControlSet\Control\Lsa", "LmCompatibilityLevel", 4, struct.pack("<I", 5))
        + e(r"Software\Policies\Y", "Q", 11, struct.pack("<Q", 7)) + e(r"Software\Policies\Y", "Empty", 3, b""))
open(sys.argv[1] + "/seed-pol", "wb").write(b"PReg" + struct.pack("<I", 1) + body)
open(sys.argv[1] + "/seed-pol-empty", "wb").write(b"PReg" + struct.pack("<I", 1))
PY
cat > "$seeds/t.inf" <<'INF'
[Unicode]
Unicode=yes
[System Access]
MinimumPasswordAge = 0
LockoutBadCount = 5
EnableAdminAccount = 0
NewAdministratorName = "Admin"
[Privilege Rights]
SeDenyRemoteInteractiveLogonRight = *S-1-5-32-544,Guest
SeRemoteInteractiveLogonRight = *S-1-5-32-555
SeNetworkLogonRight =
[Registry Values]
MACHINE\System\CurrentControlSet\Control\Lsa\LmCompatibilityLevel=4,5
MACHINE\Software\Microsoft\Windows NT\CurrentVersion\Winlogon\LegalNoticeText=7,a,b
[Service General Setting]
"TermService",4,""
[Version]
signature="$CHICAGO$"
Revision=1
INF
cp "$seeds/t.inf" corpus/gpttmpl/seed-ansi
{ printf '\xff\xfe'; sed 's/$/\r/' "$seeds/t.inf" | iconv -f UTF-8 -t UTF-16LE; } > corpus/gpttmpl/seed-utf16

# The README's example (kept in step by hand), then small variants.
awk '/^\*\*Baseline\*\*/ { f = 1 } f && /^```toml$/ { g = 1; next } g && /^```$/ { exit } g' ../README.md > corpus/baseline/seed-readme
# The baseline of tests/audit.rs, with the rule kinds it lacks (allowed, absent).
{ cat ../testdata/audit-baseline.toml; cat <<'TOML'; } > corpus/baseline/seed-full
[[expect]]
path = 'HKLM\SOFTWARE\Microsoft\Windows NT\CurrentVersion'
name = "ProductName"
allowed = ["Windows Server 2019 Datacenter", "Windows 10 Pro"]
[[expect]]
path = 'HKLM\SYSTEM\CurrentControlSet\Control\Terminal Server'
name = "Missing"
absent = true
TOML
printf 'fail_on = "info"\n' > corpus/baseline/seed-failon
printf 'ignore = ["no-such-check"]\n' > corpus/baseline/seed-bad-id

# Undo files (target undo): one made here in the documented
# format of repair/undo.rs, for a 64 KiB disk with two ranges.
python3 - corpus/undo/seed-two-ranges <<'PY'
import hashlib, json, sys
dev = bytes((i * 7) % 251 for i in range(65536))
def rng(off, after):
    before = dev[off:off + len(after)]
    h = lambda b: hashlib.sha256(b).hexdigest()
    return {"offset": off, "len": len(after), "before": before.hex(), "after": after.hex(), "before_sha256": h(before), "after_sha256": h(after)}
doc = {"format": "rdprescue-undo/2",
       "device": {"path": "/dev/x", "size": len(dev), "head_sha256": hashlib.sha256(dev).hexdigest()},
       "ranges": [rng(100, b"\x01\x02\x03"), rng(40000, b"\x09" * 600)]}
doc["sha256"] = hashlib.sha256(json.dumps(doc, separators=(",", ":")).encode()).hexdigest()
open(sys.argv[1], "w").write(json.dumps(doc, indent=2) + "\n")
PY

# Hive sets (target inspect: [u32 system len][u32 software len][system][software][bcd]).
inspect_seed() { # NAME SYSTEM SOFTWARE [BCD]
    { le32 "$(stat -c %s "$2")"; le32 "$(stat -c %s "$3")"; hive_trim "$2"; hive_trim "$3"; [ -n "${4:-}" ] && hive_trim "$4"; } > "corpus/inspect/$1"
}
inspect_seed seed-repo ../testdata/hives/SYSTEM ../testdata/hives/SOFTWARE ../testdata/hives/BCD-gen2
{ le32 0; le32 0; hive_trim ../testdata/hives/BCD-gen1; } > corpus/inspect/seed-bcd-only

# Overwrite plans (target overwrite_plan: [path index][3 x (u32 off, u16 len)][volume]):
# the NTFS refusal fixture (every path kind) and the small FAT/NTFS volumes.
ranges_op='\x00\x00\x00\x00\x00\x02\xa0\x0f\x00\x00\x2c\x01\x00\x3e\x00\x00\x00\x02'
gunzip -c ../testdata/images/ntfs-refusals.img.gz > "$seeds/refusals.img"
for i in 4 5 6 7 8 9; do
    { le8 $i; printf "$ranges_op"; cat "$seeds/refusals.img"; } > "corpus/overwrite_plan/seed-refusals-$i"
done
{ le8 3; printf "$ranges_op"; cat "$seeds/f.img"; } > corpus/overwrite_plan/seed-fat12-bcd

# Event logs (target evtx: [mode byte][.evtx]): the real logs of ../shared/data
# (damaged one included), each cut to its header and first two chunks.
if [ -d "$shared/evtx" ]; then
    i=0
    for f in "$shared"/evtx/*.evtx; do
        { le8 $((i % 3)); head -c $((4096 + 2 * 65536)) "$f"; } > "corpus/evtx/shared-$i"
        i=$((i + 1))
    done
fi

# The evtx binary XML reader (target evtx_binxml: one 64 KiB chunk): the
# first two chunks of each real log. Run by default with the others.
[ $# -gt 0 ] || targets+=(evtx_binxml)
mkdir -p corpus/evtx_binxml
if [ -d "$shared/evtx" ]; then
    for f in "$shared"/evtx/*.evtx; do
        for c in 0 1; do
            dd if="$f" of="corpus/evtx_binxml/shared-$(basename "$f" .evtx)-$c" bs=4096 skip=$((1 + c * 16)) count=16 status=none
        done
    done
fi

cargo fuzz build -O "${targets[@]/#/}" >/dev/null 2>&1 || cargo fuzz build -O
if [[ " ${targets[*]} " == *" write "* ]]; then
    WRITE_FUZZ_SAVE_PAIRS=corpus/write cargo fuzz run -O write corpus/write/seed-* >/dev/null 2>&1 || true
fi
for t in "${targets[@]}"; do
    echo "== fuzz target $t for ${secs}s"
    max_len=4194304 rss=2048 extra=()
    # VHDX files are >= 3 MiB, parent + child pairs ~10 MiB; libFuzzer keeps
    # the corpus in memory.
    [ "$t" = write ] && max_len=12582912 rss=4096
    [ -f "$t.dict" ] && extra=(-dict="$t.dict")
    cargo fuzz run -O "$t" "corpus/$t" -- -max_total_time="$secs" -max_len=$max_len -rss_limit_mb=$rss -timeout=10 "${extra[@]}" 2>&1 \
        | grep -E "^(#[0-9]+.*DONE|Done|==|SUMMARY|.*panicked|artifact_prefix)" || true
done
