#!/usr/bin/env bash
# Benchmark: `rdprescue inspect --json` against dissect.target's `target-reg`
# on the same image, in the same run, runs interleaved so both see the same
# machine state.
#
# Image: target/bench/big127-dirty.vhdx, a 127 GiB dynamic VHDX (Gen2: GPT,
# ESP, MSR, NTFS) holding the real dirty Windows 10 SYSTEM hive with its
# .LOG1/.LOG2 (../shared/data/hives/win10-1709-dirty). Built on first use by
# testdata/make-scenarios.py (needs its tools: see that script).
# dissect.target comes from PyPI into target/bench/venv on first use.
#
# The two do not do the same work: target-reg reads one key from the primary
# hive file (dissect ignores transaction logs, so it shows stale data for a
# dirty hive); inspect replays the logs and evaluates every check. The ratio
# is therefore conservative for rdprescue.
#
# Usage: bench/inspect-vs-dissect.sh [RUNS]   (default 20)
# Writes target/bench/inspect-vs-dissect.txt.
set -euo pipefail
cd "$(dirname "$0")/.."
runs=${1:-20}
dir=target/bench
img=$dir/big127-dirty.vhdx
out=$dir/inspect-vs-dissect.txt
mkdir -p "$dir"

cargo build --release --quiet
bin=target/release/rdprescue

if [ ! -f "$img" ]; then
    echo "building $img ..." >&2
    python3 testdata/make-scenarios.py "$dir" big127-dirty >&2
fi
if [ ! -x "$dir/venv/bin/target-reg" ]; then
    echo "installing dissect.target into $dir/venv ..." >&2
    python3 -m venv "$dir/venv"
    "$dir/venv/bin/pip" install -q dissect.target >&2
fi
dissect_version=$("$dir/venv/bin/pip" show dissect.target | awk '/^Version/ {print $2}')
key='HKLM\SYSTEM\CurrentControlSet\Control\Terminal Server'

# Warm the page cache for both, and check both actually work on the image.
"$bin" inspect --json "$img" >/dev/null || [ $? -eq 1 ]
"$dir/venv/bin/target-reg" "$img" -k "$key" -d 0 >/dev/null 2>&1

# Interleaved runs, timed in-process by Python (no shell fork per sample).
read -r om omin omax tm tmin tmax ratio < <(python3 - "$runs" "$bin" "$img" "$dir/venv/bin/target-reg" "$key" <<'PY'
import statistics, subprocess, sys, time
runs, bin_, img, treg, key = int(sys.argv[1]), *sys.argv[2:]
cmds = ([bin_, "inspect", "--json", img], [treg, img, "-k", key, "-d", "0"])
times = ([], [])
for _ in range(runs):
    for cmd, acc in zip(cmds, times):
        t0 = time.perf_counter()
        subprocess.run(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        acc.append((time.perf_counter() - t0) * 1000)
out = []
for acc in times:
    out += [statistics.median(acc), min(acc), max(acc)]
out.append(out[3] / out[0])
print(" ".join(f"{x:.1f}" for x in out))
PY
)
dirty=$( ("$bin" inspect --json "$img" || true) | python3 -c 'import json,sys; d=json.load(sys.stdin); h=d["hives"][0]["report"]; print("SYSTEM", h["state"], "to sequence", h.get("recovered_sequence", h["primary_seq1"]))' 2>/dev/null || echo "?")

{
    echo "inspect-vs-dissect  $(date -u +%Y-%m-%dT%H:%MZ)  $(uname -m)  $(nproc) cores  runs=$runs"
    echo "image: $img ($(du -h --apparent-size "$img" | cut -f1) file, 127 GiB virtual)"
    printf '%-44s %9s %9s %9s\n' command "median ms" "min ms" "max ms"
    printf '%-44s %9s %9s %9s\n' "rdprescue inspect --json" "$om" "$omin" "$omax"
    printf '%-44s %9s %9s %9s\n' "target-reg (dissect.target $dissect_version)" "$tm" "$tmin" "$tmax"
    echo "speed-up (median): ${ratio}x"
    echo "hive state seen by inspect: $dirty (dissect reads the primary only)"
} | tee "$out"
