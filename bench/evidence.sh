#!/usr/bin/env bash
# Benchmark (issue 15): `inspect --json` on the 127 GiB dynamic VHDX of
# bench/fix.sh (big127-dirty) next to the same disk carrying real event logs
# (big127-logs: System, Security, RemoteConnectionManager, RdpCoreTS and a
# damaged log, ~7 MiB): reading the evidence must stay within 2x (only the
# chunks of the window are read). Also the logs disk with --no-events.
# Medians of RUNS runs after a warm-up. Writes target/bench/evidence.txt.
#
# Usage: bench/evidence.sh [RUNS]   (default 10; builds the images on first use).
# BEFORE=/path/to/older/rdprescue: the same figures for that binary too,
# measured interleaved with ours (same load), and the ratio after/before.
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
python3 - "$bin" "$dir" "$runs" "${BEFORE:-}" <<'PY' | tee target/bench/evidence.txt
import statistics, subprocess, sys, time
bin_, d, runs, before = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4]
bins = [bin_] + ([before] if before else [])
def run(b, args):
    t0 = time.perf_counter()
    p = subprocess.run([b, "inspect", "--json"] + args, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    assert p.returncode in (0, 1), p.stderr.decode()
    return (time.perf_counter() - t0) * 1000
def medians(args):
    for b in bins:
        run(b, args)
    t = {b: [] for b in bins}
    for _ in range(runs):
        for b in bins:
            t[b].append(run(b, args))
    return [statistics.median(t[b]) for b in bins]
print(f"inspect --json, 127 GiB dynamic VHDX  {time.strftime('%Y-%m-%dT%H:%MZ', time.gmtime())}  runs={runs} (medians)")
cases = [("no logs on the disk:", [f"{d}/big127-dirty.vhdx"]), ("with logs (14 days):", [f"{d}/big127-logs.vhdx"]),
         ("with logs, --no-events:", [f"{d}/big127-logs.vhdx", "--no-events"]), ("with logs, --since 3650d:", [f"{d}/big127-logs.vhdx", "--since", "3650d"])]
res = [(name, medians(args)) for name, args in cases]
base = res[0][1]
for k, b in enumerate(bins):
    print(f" {'this build' if k == 0 else 'BEFORE ' + b}:")
    for name, m in res:
        extra = f"   ({m[k] / base[k]:.2f}x)" if "with logs (" in name or "3650d" in name else ""
        extra += "  evidence cost %+.1f ms" % (m[k] - base[k]) if "with logs (" in name else ""
        print(f"  {name:30s}{m[k]:7.1f} ms{extra}")
PY
