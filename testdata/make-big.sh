#!/usr/bin/env bash
# Builds testdata/images/big127-gpt.vhdx.gz and big127-gpt.vhd.gz: a 127 GiB
# (Azure's default OS disk size) sparse disk holding the gen2-gpt fixture at its
# start, with the GPT backup moved to the real end of the disk (sgdisk -e), as
# dynamic VHDX (32 MiB blocks, Hyper-V's default) and dynamic VHD (2 MiB blocks).
# Used to check that rdprescue reads only the bytes it needs.
# Needs: qemu-utils, gdisk, gzip.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
work=$(mktemp -d); trap 'rm -rf "$work"' EXIT
gunzip -c "$here/images/gen2-gpt.raw.gz" > "$work/big.raw"
truncate -s 127G "$work/big.raw"
sgdisk -e "$work/big.raw" >/dev/null
qemu-img convert -O vhdx -o subformat=dynamic,block_size=32M "$work/big.raw" "$work/big127-gpt.vhdx"
qemu-img convert -O vpc -o subformat=dynamic,force_size=on "$work/big.raw" "$work/big127-gpt.vhd"
for f in big127-gpt.vhdx big127-gpt.vhd; do python3 "$here/tools/pinids.py" "$work/$f" "$f" 1704067200; done
for f in big127-gpt.vhdx big127-gpt.vhd; do
    gzip -n -c "$work/$f" > "$here/images/$f.gz"
    echo "$f: $(qemu-img info --output=json -f "$([ "${f##*.}" = vhd ] && echo vpc || echo vhdx)" "$work/$f" | python3 -c 'import json,sys; print(json.load(sys.stdin)["virtual-size"])') bytes virtual, $(stat -c %s "$work/$f") bytes file"
done
