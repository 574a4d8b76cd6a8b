#!/usr/bin/env bash
# Benchmark: `rdprescue audit` throughput with --jobs 1 vs --jobs 2, and peak
# RSS with 20 images in flight at once (--jobs 20).
#
# Two sweeps (images are read from the page cache after the first pass):
#  - scenarios: every image of testdata/scenarios.json (raw/VHD/VHDX, Gen1 and
#    Gen2, real hives from ../shared/data), listed 10 times;
#  - big: the 127 GiB dynamic VHDX holding the 12.8 MB dirty Windows 10 SYSTEM
#    hive with its logs (target/bench/big127-dirty.vhdx), listed 40 times.
# Runs alternate between the job counts; medians of RUNS runs.
#
# BEFORE=/path/to/old/rdprescue also runs that binary's sweeps in the same
# interleaved runs and prints its figures beside the new ones.
#
# Usage: bench/audit-jobs.sh [RUNS]   (default 5). Needs the tools of
# testdata/make-scenarios.py the first time. Writes target/bench/audit-jobs.txt.
set -euo pipefail
cd "$(dirname "$0")/.."
runs=${1:-5}
dir=target/bench
mkdir -p "$dir"
cargo build --release --quiet
bin=target/release/rdprescue

[ -f "$dir/big127-dirty.vhdx" ] || python3 testdata/make-scenarios.py "$dir" big127-dirty >&2
[ -f "$dir/scenarios/manifest.json" ] || python3 testdata/make-scenarios.py "$dir/scenarios" >&2

python3 - "$bin" "$dir" "$runs" "${BEFORE:-}" <<'PY' | tee "$dir/audit-jobs.txt"
import json, os, resource, statistics, subprocess, sys, time
bin_, d, runs, before = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4]
scen = [s["image"] for s in json.load(open(f"{d}/scenarios/manifest.json"))]
sweeps = {"scenarios": scen * 10, "big": [f"{d}/big127-dirty.vhdx"] * 40}

def audit(images, jobs, b=bin_):
    lst = f"{d}/audit-list.txt"
    with open(lst, "w") as f:
        f.write("\n".join(images) + "\n")
    t0 = time.perf_counter()
    p = subprocess.run([b, "audit", "--from-list", lst, "--format", "jsonl", "--jobs", str(jobs)],
                       stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
    dt = time.perf_counter() - t0
    assert p.returncode in (0, 1), p.returncode
    assert p.stdout.count(b"\n") == len(images)
    return dt

def peak_rss(images, jobs):
    # ru_maxrss of children is the largest child so far: measure in a fresh child.
    code = ("import resource,subprocess,sys;"
            "subprocess.run(sys.argv[1:],stdout=subprocess.DEVNULL,stderr=subprocess.DEVNULL);"
            "print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)")
    lst = f"{d}/audit-list.txt"
    with open(lst, "w") as f:
        f.write("\n".join(images) + "\n")
    out = subprocess.run([sys.executable, "-c", code, bin_, "audit", "--from-list", lst, "--format", "jsonl", "--jobs", str(jobs)],
                         stdout=subprocess.PIPE, check=True).stdout
    return int(out) / 1024  # MiB

print(f"audit-jobs  {time.strftime('%Y-%m-%dT%H:%MZ', time.gmtime())}  {os.cpu_count()} cores  runs={runs}")
print(f"{'sweep':<10} {'images':>6} {'jobs 1 img/s':>13} {'jobs 2 img/s':>13} {'speed-up':>9}")
for name, images in sweeps.items():
    audit(images[:5], 2)  # warm the page cache
    bins = [("", bin_)] + ([("BEFORE ", before)] if before else [])
    t = {(b, j): [] for b, _ in bins for j in (1, 2)}
    for _ in range(runs):
        for b, path in bins:
            for j in (1, 2):
                t[(b, j)].append(audit(images, j, path))
    for b, _ in bins:
        r1, r2 = (len(images) / statistics.median(t[(b, j)]) for j in (1, 2))
        print(f"{b + name:<10} {len(images):>6} {r1:>13.1f} {r2:>13.1f} {r2 / r1:>8.2f}x")
big20 = sweeps["big"][:20]
print(f"peak RSS, 20 x big127-dirty: --jobs 1 {peak_rss(big20, 1):.0f} MiB, "
      f"--jobs 20 (20 images in flight) {peak_rss(big20, 20):.0f} MiB")
PY
