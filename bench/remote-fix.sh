#!/usr/bin/env bash
# Remote fix cost (issue 17): `fix SOURCE_SAS --out-url DEST_SAS --check
# rdp-deny-local` against Azurite: bytes uploaded (goal: < 1 MiB), requests to
# blob storage, and wall time. A measurement, not a test; run by hand:
#
#   bench/remote-fix.sh [IMAGE]
#
# IMAGE: any image rdprescue reads with an rdp-deny-local finding (default:
# the `crypto` scenario the tests build under target/tmp). It is converted to
# a fixed VHD (what Azure disks are) with qemu-img and uploaded as a page blob
# (non-zero 64 KiB pieces only). Azurite: the one at RDPRESCUE_AZURITE_BLOB
# (http://127.0.0.1:PORT/devstoreaccount1), else one started here from the
# cache .ci/run installs into (~/.cache/rdprescue-azurite/VERSION).
set -euo pipefail
cd "$(dirname "$0")/.."
AZURITE_VERSION=3.37.0
work=target/bench/remote-fix
rm -rf "$work"
mkdir -p "$work"

img=${1:-$(ls target/tmp/scenarios-*/crypto.vhd 2>/dev/null | head -1 || true)}
[ -n "$img" ] && [ -f "$img" ] || { echo "remote-fix: no image (build the scenarios: cargo test --release --test azure, or name one)" >&2; exit 1; }
qemu-img convert -O vpc -o subformat=fixed,force_size=on "$img" "$work/source.vhd"
cargo build --release -q

pid=""
if [ -z "${RDPRESCUE_AZURITE_BLOB:-}" ]; then
    az=${RDPRESCUE_AZURITE_CACHE:-$HOME/.cache/rdprescue-azurite}/$AZURITE_VERSION
    [ -x "$az/node_modules/.bin/azurite-blob" ] || npm install --prefix "$az" --no-audit --no-fund --loglevel=error "azurite@$AZURITE_VERSION" >/dev/null
    port=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
    (cd "$work" && exec "$az/node_modules/.bin/azurite-blob" --blobHost 127.0.0.1 --blobPort "$port" --inMemoryPersistence \
        --extentMemoryLimit 1024 --skipApiVersionCheck --loose --disableTelemetry --silent) >"$work/azurite.log" 2>&1 </dev/null &
    pid=$!
    trap 'kill $pid 2>/dev/null || true' EXIT
    RDPRESCUE_AZURITE_BLOB=http://127.0.0.1:$port/devstoreaccount1
fi

# Upload, and print the source and destination SAS URLs (signed with the
# emulator's public dev key, as the tests do).
read -r src dst < <(python3 - "$RDPRESCUE_AZURITE_BLOB" "$work/source.vhd" <<'EOF'
import base64, hashlib, hmac, sys, time, urllib.error, urllib.parse, urllib.request
ep, path = sys.argv[1].rstrip("/"), sys.argv[2]
acct = "devstoreaccount1"
key = base64.b64decode("Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw==")
sv, se = "2021-08-06", "2099-01-01T00:00:00Z"
sig = lambda s: urllib.parse.quote(base64.b64encode(hmac.new(key, s.encode(), hashlib.sha256).digest()).decode(), safe="")
acc = f"sv={sv}&ss=b&srt=sco&sp=rwdlac&se={se}&sig=" + sig(f"{acct}\nrwdlac\nb\nsco\n\n{se}\n\n\n{sv}\n\n")
def blob_sas(c, b, sp):
    return f"sv={sv}&sr=b&sp={sp}&se={se}&sig=" + sig(f"{sp}\n\n{se}\n/blob/{acct}/{c}/{b}\n\n\n\n{sv}\nb\n\n\n\n\n\n\n")
def req(method, url, data=b"", headers={}):
    h = {"x-ms-version": sv, "Content-Length": str(len(data)), **headers}
    return urllib.request.urlopen(urllib.request.Request(url, data=data if method != "GET" else None, method=method, headers=h)).status
for _ in range(120):
    try:
        urllib.request.urlopen(f"{ep}?comp=list", timeout=1)
    except urllib.error.HTTPError:
        break
    except Exception:
        time.sleep(0.5)
c = f"bench{int(time.time())}"
req("PUT", f"{ep}/{c}?restype=container&{acc}")
data = open(path, "rb").read()
req("PUT", f"{ep}/{c}/source.vhd?{acc}", headers={"x-ms-blob-type": "PageBlob", "x-ms-blob-content-length": str(len(data))})
P, CH = 65536, 4 << 20
at = 0
while at < len(data):
    if not any(data[at:at + P]):
        at += P
        continue
    end = at
    while end < len(data) and end - at < CH and any(data[end:end + P]):
        end = min(end + P, len(data))
    req("PUT", f"{ep}/{c}/source.vhd?comp=page&{acc}", data[at:end], {"x-ms-page-write": "update", "x-ms-range": f"bytes={at}-{end - 1}"})
    at = end
print(f"{ep}/{c}/source.vhd?{blob_sas(c, 'source.vhd', 'r')}", f"{ep}/{c}/fixed.vhd?{blob_sas(c, 'fixed.vhd', 'racwd')}")
EOF
)
[ -n "${dst:-}" ] || { echo "remote-fix: the upload to $RDPRESCUE_AZURITE_BLOB failed" >&2; exit 1; }

t0=$(date +%s.%N)
target/release/rdprescue fix "$src" --out-url "$dst" --check rdp-deny-local >"$work/fix.out" 2>"$work/fix.err" || { cat "$work/fix.err" >&2; exit 1; }
t1=$(date +%s.%N)
line=$(grep "bytes of changed pages uploaded" "$work/fix.out")
uploaded=$(sed -E 's/.* ([0-9]+) bytes of changed pages uploaded.*/\1/' <<<"$line")
requests=$(sed -E 's/.*; ([0-9]+) request\(s\) to blob storage.*/\1/' <<<"$line")
size=$(stat -c %s "$work/source.vhd")
printf 'remote-fix: %s (%d bytes as a fixed VHD): uploaded %d bytes (%.1f KiB; goal < 1 MiB) in %d blob requests; %s\n' \
    "$(basename "$img")" "$size" "$uploaded" "$(echo "$uploaded / 1024" | bc -l)" "$requests" "$(grep -m1 'Disk:' "$work/fix.out")"
sed -E 's/.*\(([0-9]+) bytes read in ([0-9]+) range request.*/remote-fix: read \1 bytes in \2 HTTP range requests (source survey + hives, then the read-back of the copy)/' <<<"$line"
printf 'remote-fix: wall time %.2f s (source read over HTTP, server-side copy, Put Page, read-back verification)\n' "$(echo "$t1 - $t0" | bc -l)"
[ "$uploaded" -lt $((1 << 20)) ] || { echo "remote-fix: over the 1 MiB goal" >&2; exit 1; }
rm -f "$work/source.vhd"
