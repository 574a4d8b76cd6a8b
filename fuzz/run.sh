#!/usr/bin/env bash
# Run every fuzz target for SECONDS (default 120) each, seeded with small
# images made here (qemu-img, mkntfs, mkfs.fat, sfdisk) and with the Windows-made
# images of ../shared/data when present. Uses the stable toolchain through
# RUSTC_BOOTSTRAP (cargo-fuzz needs -Z flags). Crashes land in fuzz/artifacts/.
#   usage: fuzz/run.sh [SECONDS] [TARGET...]
set -euo pipefail
cd "$(dirname "$0")"
secs=${1:-120}; shift || true
targets=("$@"); [ ${#targets[@]} -gt 0 ] || targets=(volume fat ntfs image)
export RUSTC_BOOTSTRAP=1
seeds=$(mktemp -d); trap 'rm -rf "$seeds"' EXIT
mkdir -p corpus/{image,volume,ntfs,fat}

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

cargo fuzz build -O "${targets[@]/#/}" >/dev/null 2>&1 || cargo fuzz build -O
for t in "${targets[@]}"; do
    echo "== fuzz target $t for ${secs}s"
    cargo fuzz run -O "$t" "corpus/$t" -- -max_total_time="$secs" -max_len=4194304 -rss_limit_mb=2048 -timeout=10 2>&1 \
        | grep -E "^(#[0-9]+.*DONE|Done|==|SUMMARY|.*panicked|artifact_prefix)" || true
done
