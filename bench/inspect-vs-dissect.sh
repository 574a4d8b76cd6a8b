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
# The physical floor: the bytes inspect needs (the SYSTEM hive and its two
# logs, 19.2 MB), copied out of the image once into target/bench/floor/ and
# then read from the page cache, timed in the same interleaved runs two ways:
# `cat` of the three files (a process copying them, fork and exec included),
# and an in-process read of each into fresh memory (the copy plus the page
# faults of new buffers, no process start). Those two are the floor of an
# inspect that holds the whole hive in memory, as it did up to issue 16.
#
# The needed-bytes floor (issue 16): inspect now reads the hive's pages on
# demand. RDPRESCUE_PAGE_TRACE=1 makes it name the chunks of SYSTEM it read;
# the floor reads exactly those chunks into fresh memory, in the same
# interleaved runs, plus what loading also reads through one reused 128 KiB
# buffer: the whole primary streamed once (inspect keeps only its base block
# and hbin headers; the stream makes an unreadable hive fail to load, as
# before) and each log as far as its chain of valid HvLE entries goes
# (recovery reads no further; the dirty pages it keeps are read again from
# the log only when a chunk over them is read).
# That floor is timed in process; inspect is a command. `true`, timed in
# the same runs, is the cost of starting and reaping any process, and the
# last line compares inspect with the floor plus it.
#
# BEFORE=/path/to/old/rdprescue also times that binary's inspect in the same
# interleaved runs (before/after on the same machine state).
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

floor=$dir/floor
mkdir -p "$floor"
for f in SYSTEM SYSTEM.LOG1 SYSTEM.LOG2; do
    [ -s "$floor/$f" ] || "$bin" cat "$img" "Windows\\System32\\config\\$f" > "$floor/$f"
done
# The chunks of SYSTEM that inspect reads (offsets into the file), and their size.
sys_len=$(stat -c %s "$floor/SYSTEM")
trace=$(RDPRESCUE_PAGE_TRACE=1 "$bin" inspect --json "$img" 2>&1 >/dev/null | awk -v n="$sys_len" '$1 == "page-trace:" && $3 == n {print $5, $7; exit}' || true)
[ -n "$trace" ] || { echo "inspect printed no page trace for SYSTEM ($sys_len bytes)" >&2; exit 2; }
read -r chunk offsets <<<"$trace"
# How far each log's chain of HvLE entries goes (base block, then entries
# whose sequence numbers follow on from the base block's).
log_ends=$(python3 - "$floor/SYSTEM.LOG1" "$floor/SYSTEM.LOG2" <<'PY'
import struct, sys
ends = []
for f in sys.argv[1:]:
    b = open(f, "rb").read()
    off, want = 512, struct.unpack_from("<I", b, 4)[0] if len(b) >= 8 else 0
    while off + 40 <= len(b) and b[off:off + 4] == b"HvLE":
        size, _, seq = struct.unpack_from("<III", b, off + 4)
        if seq != want or size < 512 or off + size > len(b):
            break
        off, want = off + size, want + 1
    ends.append(str(min(off + 40, len(b))))
print(",".join(ends))
PY
)
needed=$(python3 -c 'import sys; c=int(sys.argv[1]); n=len(sys.argv[2].split(",")); print(n*c)' "$chunk" "$offsets")
before=${BEFORE:-}
[ -z "$before" ] || [ -x "$before" ] || { echo "BEFORE=$before is not an executable" >&2; exit 2; }

# Warm the page cache for both, and check both actually work on the image.
"$bin" inspect --json "$img" >/dev/null || [ $? -eq 1 ]
"$dir/venv/bin/target-reg" "$img" -k "$key" -d 0 >/dev/null 2>&1

# Interleaved runs, timed in-process by Python (no shell fork per sample).
read -r om omin omax tm tmin tmax ratio cm cmin cmax fm fmin fmax nm nmin nmax pm pmin pmax bm bmin bmax < <(python3 - "$runs" "$bin" "$img" "$dir/venv/bin/target-reg" "$key" "$floor" "$before" "$chunk" "$offsets" "$log_ends" <<'PY'
import mmap, os, statistics, subprocess, sys, time
runs, bin_, img, treg, key, floor, before, chunk, offsets, log_ends = int(sys.argv[1]), *sys.argv[2:]
chunk, offsets = int(chunk), [int(o) for o in offsets.split(",")]
log_ends = [int(e) for e in log_ends.split(",")]
files = [os.path.join(floor, f) for f in ("SYSTEM", "SYSTEM.LOG1", "SYSTEM.LOG2")]
def read_fresh():
    # One read(2) per file into a fresh anonymous mapping (not memory the
    # allocator kept from the last run): page-cache copy + page faults.
    for f in files:
        with open(f, "rb", buffering=0) as fh:
            m = mmap.mmap(-1, os.fstat(fh.fileno()).st_size)
            fh.readinto(m)
            m.close()
scan = bytearray(128 << 10)
def read_needed():
    # What inspect reads now: the primary streamed once through a reused
    # buffer, each log's valid entries through the same buffer, and the
    # chunks of the hive it touched, each into fresh memory.
    with open(files[0], "rb", buffering=0) as fh:
        while fh.readinto(scan):
            pass
    for f, end in zip(files[1:], log_ends):
        with open(f, "rb", buffering=0) as fh:
            left = end
            while left > 0:
                n = fh.readinto(memoryview(scan)[:min(left, len(scan))])
                if not n:
                    break
                left -= n
    with open(files[0], "rb", buffering=0) as fh:
        m = mmap.mmap(-1, chunk * len(offsets))
        v = memoryview(m)
        for i, o in enumerate(offsets):
            fh.seek(o)
            fh.readinto(v[i * chunk:(i + 1) * chunk])
        v.release()
        m.close()
# `true`: starting and reaping a process (what the in-process floors do not
# pay, and every command does).
cmds = [[bin_, "inspect", "--json", img], [treg, img, "-k", key, "-d", "0"], ["cat", *files], read_fresh, read_needed, ["true"]]
if before:
    cmds.append([before, "inspect", "--json", img])
times = [[] for _ in cmds]
for _ in range(runs):
    for cmd, acc in zip(cmds, times):
        t0 = time.perf_counter()
        if callable(cmd):
            cmd()
        else:
            subprocess.run(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        acc.append((time.perf_counter() - t0) * 1000)
out = []
for i, acc in enumerate(times):
    out += [statistics.median(acc), min(acc), max(acc)]
    if i == 1:
        out.append(out[3] / out[0])
if not before:
    out += [0, 0, 0]
print(" ".join(f"{x:.1f}" for x in out))
PY
)
dirty=$( ("$bin" inspect --json "$img" || true) | python3 -c 'import json,sys; d=json.load(sys.stdin); h=d["hives"][0]["report"]; print("SYSTEM", h["state"], "to sequence", h.get("recovered_sequence", h["primary_seq1"]))' 2>/dev/null || echo "?")

{
    echo "inspect-vs-dissect  $(date -u +%Y-%m-%dT%H:%MZ)  $(uname -m)  $(nproc) cores  runs=$runs"
    echo "image: $img ($(du -hL --apparent-size "$img" | cut -f1) file, 127 GiB virtual)"
    printf '%-44s %9s %9s %9s\n' command "median ms" "min ms" "max ms"
    printf '%-44s %9s %9s %9s\n' "rdprescue inspect --json" "$om" "$omin" "$omax"
    printf '%-44s %9s %9s %9s\n' "target-reg (dissect.target $dissect_version)" "$tm" "$tmin" "$tmax"
    [ -z "$before" ] || printf '%-44s %9s %9s %9s\n' "BEFORE: $before" "$bm" "$bmin" "$bmax"
    printf '%-44s %9s %9s %9s\n' "floor: cat hive + logs (19.2 MB, a process)" "$cm" "$cmin" "$cmax"
    printf '%-44s %9s %9s %9s\n' "floor: read hive + logs into fresh memory" "$fm" "$fmin" "$fmax"
    printf '%-44s %9s %9s %9s\n' "floor: needed ($(python3 -c "print(f'{$needed/1e6:.1f}')") MB fresh + hive, logs streamed)" "$nm" "$nmin" "$nmax"
    printf '%-44s %9s %9s %9s\n' "a process start alone (true)" "$pm" "$pmin" "$pmax"
    echo "speed-up (median): ${ratio}x"
    python3 -c 'import sys; o,c,f=map(float,sys.argv[1:]); print(f"inspect / floor (median): {o/c:.1f}x the cat floor, {o/f:.1f}x the fresh-memory floor")' "$om" "$cm" "$fm"
    python3 -c 'import sys; o,n=map(float,sys.argv[1:]); print(f"inspect / needed-bytes floor (median): {o/n:.1f}x")' "$om" "$nm"
    python3 -c 'import sys; o,n,p=map(float,sys.argv[1:]); print(f"inspect / (needed-bytes floor + a process start) (median): {o/(n+p):.1f}x")' "$om" "$nm" "$pm"
    echo "hive state seen by inspect: $dirty (dissect reads the primary only)"
} | tee "$out"
