#!/usr/bin/env bash
# Benchmark: `rdprescue fix`.
#  1. --diff-child on a 127 GiB dynamic VHDX holding the real dirty Windows 10
#     SYSTEM hive with its logs (target/bench/big127-dirty.vhdx), next to the
#     same disk at 4 GiB: the time must not grow with disk size (target < 100 ms).
#  2. Full copy (fix without --diff-child) next to `cp --sparse=always` of the
#     same input: the 127 GiB VHDX, a raw scenario image, and that raw image
#     with 1 GiB of random data appended (throughput on real data).
# Each figure is the median of RUNS runs (whole command: inspect, plan, write,
# read-back verification, rename). Writes target/bench/fix.txt.
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
[ -f "$dir/scenarios/manifest.json" ] || python3 testdata/make-scenarios.py "$dir/scenarios" >&2
if [ ! -f "$dir/data1g.raw" ]; then
    # A Gen1 (MBR) disk followed by 1 GiB of incompressible data.
    cp "$dir/scenarios/nla-trio.raw" "$dir/data1g.raw.tmp"
    head -c 1G /dev/urandom >> "$dir/data1g.raw.tmp"
    mv "$dir/data1g.raw.tmp" "$dir/data1g.raw"
fi

python3 - "$bin" "$dir" "$runs" <<'PY' | tee "$dir/fix.txt"
import os, statistics, subprocess, sys, time
bin_, d, runs = sys.argv[1], sys.argv[2], int(sys.argv[3])
out = f"{d}/fix-out"

def timed(cmd, dest):
    if os.path.exists(dest):
        os.remove(dest)
    t0 = time.perf_counter()
    p = subprocess.run(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    dt = (time.perf_counter() - t0) * 1000
    assert p.returncode in (0, 1), (cmd, p.stderr.decode())
    return dt

def used(path):
    return os.stat(path).st_blocks * 512

def median(cmd, dest):
    timed(cmd, dest)  # warm the page cache
    return statistics.median(timed(cmd, dest) for _ in range(runs))

print(f"fix  {time.strftime('%Y-%m-%dT%H:%MZ', time.gmtime())}  {os.cpu_count()} cores  runs={runs}  (medians, whole command)")
print("--diff-child (rdp-deny-local on the dirty Windows 10 SYSTEM hive):")
for name, gib in (("big4-dirty", 4), ("big127-dirty", 127)):
    src, dest = f"{d}/{name}.vhdx", f"{out}/{name}.avhdx"
    ms = median([bin_, "fix", src, "--check", "rdp-deny-local", "--diff-child", "--out", dest], dest)
    print(f"  {gib:>4} GiB dynamic VHDX: {ms:7.1f} ms   child {os.path.getsize(dest) / 2**20:.0f} MiB file, {used(dest) / 2**20:.1f} MiB allocated")
print("full copy vs cp --sparse=always:")
raw = next(l for l in open(f"{d}/scenarios/manifest.json").read().split('"') if l.endswith("win10-as-shipped.raw"))
for src, ext in ((f"{d}/big127-dirty.vhdx", "vhdx"), (raw, "raw"), (f"{d}/data1g.raw", "raw")):
    dest, cpd = f"{out}/copy.{ext}", f"{out}/cp.{ext}"
    check = "security-layer" if "data1g" in src else "rdp-deny-local"
    ms = median([bin_, "fix", src, "--check", check, "--out", dest], dest)
    cp = median(["cp", "--sparse=always", src, cpd], cpd)
    mb = used(src) / 2**20
    print(f"  {os.path.basename(src)} ({mb:.0f} MiB allocated): fix {ms:7.1f} ms ({mb / ms * 1000:6.0f} MiB/s), "
          f"cp {cp:6.1f} ms ({mb / cp * 1000:6.0f} MiB/s); output {used(dest) / 2**20:.0f} MiB vs cp {used(cpd) / 2**20:.0f} MiB allocated")
PY
