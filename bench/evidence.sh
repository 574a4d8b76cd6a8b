#!/usr/bin/env bash
# Benchmark (issue 15): `inspect --json` on the 127 GiB dynamic VHDX of
# bench/fix.sh (big127-dirty) next to the same disk carrying real event logs
# (big127-logs: System, Security, RemoteConnectionManager, RdpCoreTS and a
# damaged log, ~7 MiB): reading the evidence must stay within 2x (only the
# chunks of the window are read). Also the logs disk with --no-events.
# Medians of RUNS runs after a warm-up. Writes target/bench/evidence.txt.
#
# Usage: bench/evidence.sh [RUNS]   (default 10; builds the images on first use).
set -euo pipefail
cd "$(dirname "$0")/.."
runs=${1:-10}
dir=target/bench/logs
mkdir -p "$dir"
cargo build --release --quiet
bin=target/release/rdprescue
for s in big127-dirty big127-logs; do
    [ -f "$dir/$s.vhdx" ] || python3 testdata/make-scenarios.py "$dir" big127-dirty big127-logs >&2
done
python3 - "$bin" "$dir" "$runs" <<'PY' | tee target/bench/evidence.txt
import statistics, subprocess, sys, time
bin_, d, runs = sys.argv[1], sys.argv[2], int(sys.argv[3])
def run(args):
    t0 = time.perf_counter()
    p = subprocess.run([bin_, "inspect", "--json"] + args, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    assert p.returncode in (0, 1), p.stderr.decode()
    return (time.perf_counter() - t0) * 1000
def median(args):
    run(args)
    return statistics.median(run(args) for _ in range(runs))
print(f"inspect --json, 127 GiB dynamic VHDX  {time.strftime('%Y-%m-%dT%H:%MZ', time.gmtime())}  runs={runs} (medians)")
base = median([f"{d}/big127-dirty.vhdx"])
logs = median([f"{d}/big127-logs.vhdx"])
off = median([f"{d}/big127-logs.vhdx", "--no-events"])
wide = median([f"{d}/big127-logs.vhdx", "--since", "3650d"])
print(f"  no logs on the disk:          {base:7.1f} ms")
print(f"  with logs (14 days):          {logs:7.1f} ms   ({logs / base:.2f}x)")
print(f"  with logs, --no-events:       {off:7.1f} ms")
print(f"  with logs, --since 3650d:     {wide:7.1f} ms   ({wide / base:.2f}x, every chunk)")
PY
