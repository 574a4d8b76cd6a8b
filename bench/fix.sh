#!/usr/bin/env bash
# Benchmark: `rdprescue fix`.
#  1. --diff-child on a 127 GiB dynamic VHDX holding the real dirty Windows 10
#     SYSTEM hive with its logs (target/bench/big127-dirty.vhdx), next to the
#     same disk at 4 GiB: the time must not grow with disk size (target < 100 ms).
#  2. Full copy (fix without --diff-child) next to `cp --sparse=always` of the
#     same input, and next to that cp followed by `sync FILE` (a fix publishes
#     its output only after fsync; cp alone leaves it in the page cache), and
#     next to the durable floor: max(cp, the `sync FILE` alone after an
#     untimed cp), what a copy that flushes its output could reach with the
#     copying and the disk's writing fully overlapped: the
#     127 GiB VHDX, the issue's disk (big127-files: the same with 50k files and
#     ~400 MiB of data, so cp takes ~200 ms), a raw scenario image, and that
#     raw image with 1 GiB of random data appended (throughput on real data).
# Each figure is the median of RUNS runs (whole command: inspect, plan, write,
# read-back verification, rename), runs interleaved, each started after a
# `sync` (not timed: a run must not pay for the write-back of the one before
# it, which made whichever command followed a 1 GiB write look slow); the
# load average is printed before and after (the machine is shared); printed as the issue-16
# ratios: child time / inspect time, child apparent size, cp time / fix time
# (>= 0.9 is the goal) and cp+sync time / fix time. Writes target/bench/fix.txt.
#
# Usage: bench/fix.sh [RUNS]   (default 10). Builds the images on first use
# (needs the tools of testdata/make-scenarios.py).
set -euo pipefail
cd "$(dirname "$0")/.."
runs=${1:-10}
dir=target/bench
mkdir -p "$dir/fix-out"
cargo build --release --quiet
bin=target/release/rdprescue
for s in big127-dirty big4-dirty; do
    [ -f "$dir/$s.vhdx" ] || python3 testdata/make-scenarios.py "$dir" "$s" >&2
done
if [ ! -f "$dir/big127-files.vhdx" ]; then
    # Built in a folder of its own: make-scenarios.py writes a manifest.json
    # there, and $dir/manifest.json may be another checkout's (a symlink).
    rm -rf "$dir/big127-files.d"
    python3 testdata/make-scenarios.py "$dir/big127-files.d" big127-files >&2
    mv "$dir/big127-files.d/big127-files.vhdx" "$dir/big127-files.vhdx"
    rm -rf "$dir/big127-files.d"
fi
[ -f "$dir/scenarios/manifest.json" ] || python3 testdata/make-scenarios.py "$dir/scenarios" >&2
if [ ! -f "$dir/data1g.raw" ]; then
    # A Gen1 (MBR) disk followed by 1 GiB of incompressible data.
    cp "$dir/scenarios/nla-trio.raw" "$dir/data1g.raw.tmp"
    head -c 1G /dev/urandom >> "$dir/data1g.raw.tmp"
    mv "$dir/data1g.raw.tmp" "$dir/data1g.raw"
fi

# BEFORE=path/to/older/rdprescue adds its figures side by side (same run,
# interleaved), e.g. BEFORE=/tmp/rdprescue-main bench/fix.sh 3.
python3 - "$bin" "$dir" "$runs" "${BEFORE:-}" <<'PY' | tee "$dir/fix.txt"
import os, statistics, subprocess, sys, time
bin_, d, runs, before = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4]
bins = [("after", bin_)] + ([("before", before)] if before else [])
out = f"{d}/fix-out"

def remove_settled(path):
    """Remove an output. The file system may discard a removed file's
    blocks (ext4 mounted with `discard`, as here): 1 GiB of discards delayed
    whichever command came next by 1-4 s, the first of each round; so after
    a large file, wait for them before the clock starts again."""
    if path and os.path.exists(path):
        big = os.stat(path).st_blocks * 512 > 64 << 20
        os.remove(path)
        if big:
            os.sync()
            time.sleep(1.0)

def timed(cmd, dest):
    remove_settled(dest)
    os.sync()
    t0 = time.perf_counter()
    p = subprocess.run(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    dt = (time.perf_counter() - t0) * 1000
    assert p.returncode in (0, 1), (cmd, p.stderr.decode())
    return dt

def used(path):
    return os.stat(path).st_blocks * 512

def medians(cmds):
    """cmds: {label: (argv, dest)}; runs interleaved, one warm-up each; {label: median ms}."""
    for c, dest in cmds.values():
        timed(c, dest)
    acc = {k: [] for k in cmds}
    for _ in range(runs):
        for k, (c, dest) in cmds.items():
            acc[k].append(timed(c, dest))
    return {k: statistics.median(v) for k, v in acc.items()}

def writeback(src, dst):
    """ms that `sync FILE` takes after an untimed cp: the disk's share of a
    durable copy (no copy that flushes its output can take less)."""
    remove_settled(dst)
    os.sync()
    subprocess.run(["cp", "--sparse=always", src, dst], check=True)
    t0 = time.perf_counter()
    subprocess.run(["sync", dst], check=True)
    dt = (time.perf_counter() - t0) * 1000
    remove_settled(dst)
    return dt

def load():
    return "load average " + " ".join(f"{x:.2f}" for x in os.getloadavg())

print(f"fix  {time.strftime('%Y-%m-%dT%H:%MZ', time.gmtime())}  {os.cpu_count()} cores  runs={runs}  (medians, whole command, interleaved)  {load()}")
big = f"{d}/big127-dirty.vhdx"
print("--diff-child vs inspect --json (rdp-deny-local on the dirty Windows 10 SYSTEM hive, 127 GiB dynamic VHDX):")
cmds = {}
for tag, b in bins:
    cmds[f"{tag} child"] = ([b, "fix", big, "--check", "rdp-deny-local", "--diff-child", "--out", f"{out}/{tag}.avhdx"], f"{out}/{tag}.avhdx")
    cmds[f"{tag} inspect"] = ([b, "inspect", "--json", big], None)
m = medians(cmds)
for tag, _ in bins:
    c, i = m[f"{tag} child"], m[f"{tag} inspect"]
    dest = f"{out}/{tag}.avhdx"
    print(f"  {tag:6}: child {c:7.1f} ms, inspect {i:6.1f} ms = {c / i:4.1f}x inspect; child file {os.path.getsize(dest) / 2**20:.0f} MiB apparent, {used(dest) / 2**20:.1f} MiB allocated")
for name in ("big4-dirty",):
    src = f"{d}/{name}.vhdx"
    if os.path.exists(src):
        m = medians({tag: ([b, "fix", src, "--check", "rdp-deny-local", "--diff-child", "--out", f"{out}/{tag}-4.avhdx"], f"{out}/{tag}-4.avhdx") for tag, b in bins})
        print("  4 GiB dynamic VHDX, child: " + ", ".join(f"{tag} {v:.1f} ms" for tag, v in m.items()))
print("full copy vs cp --sparse=always of the same file, and vs that cp + sync FILE (rdprescue fsyncs its output):")
raw = next(l for l in open(f"{d}/scenarios/manifest.json").read().split('"') if l.endswith("win10-as-shipped.raw"))
for src, ext in ((big, "vhdx"), (f"{d}/big127-files.vhdx", "vhdx"), (raw, "raw"), (f"{d}/data1g.raw", "raw")):
    check = "security-layer" if "data1g" in src else "rdp-deny-local"
    cmds = {tag: ([b, "fix", src, "--check", check, "--out", f"{out}/{tag}.{ext}"], f"{out}/{tag}.{ext}") for tag, b in bins}
    cmds["cp"] = (["cp", "--sparse=always", src, f"{out}/cp.{ext}"], f"{out}/cp.{ext}")
    cmds["cp+sync"] = (["sh", "-c", 'cp --sparse=always "$1" "$2" && sync "$2"', "sh", src, f"{out}/cps.{ext}"], f"{out}/cps.{ext}")
    m = medians(cmds)
    wb = statistics.median(writeback(src, f"{out}/wb.{ext}") for _ in range(runs))
    # The floor of a copy that is flushed before it is published: the
    # copying (cp) and the disk writing it (write-back), were they fully
    # overlapped.
    floor = max(m["cp"], wb)
    mb = used(src) / 2**20
    line = f"  {os.path.basename(src)} ({mb:.0f} MiB allocated): cp {m['cp']:6.1f} ms, cp+sync {m['cp+sync']:6.1f} ms, write-back alone {wb:6.1f} ms"
    for tag, _ in bins:
        line += f"; {tag} {m[tag]:7.1f} ms = {m['cp'] / m[tag]:.2f}x cp, {m['cp+sync'] / m[tag]:.2f}x cp+sync, {floor / m[tag]:.2f}x the durable floor max(cp, write-back) (output {used(f'{out}/{tag}.{ext}') / 2**20:.0f} MiB allocated)"
    print(line)
    for tag in [t for t, _ in bins] + ["cp", "cps"]:
        remove_settled(f"{out}/{tag}.{ext}")
print(f"end: {load()}")
PY
