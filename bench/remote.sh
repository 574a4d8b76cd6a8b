#!/usr/bin/env bash
# Benchmark: images over HTTP range requests (issue 17). Not a timed test.
#  1. `inspect` of the 127 GiB dynamic VHDX scenario (target/bench/big127-dirty.vhdx,
#     as bench/fix.sh builds it) served over loopback by bench/range-server.py:
#     bytes transferred and requests (goal: <= 2x the bytes a local run reads,
#     counted as the pread64 bytes strace sees; <= 64 requests for the hives
#     after the survey, i.e. inspect's requests minus `disk`'s), then the time
#     with 20 ms added to every request (goal: < 2 s; median of RUNS).
#  2. `audit` of 20 URLs (the same image under 20 query strings, so 20
#     sources with their own caches) with --jobs 1 and --jobs 4, 20 ms latency.
# Writes target/bench/remote.txt.
#
# Usage: bench/remote.sh [RUNS]   (default 3)
set -euo pipefail
cd "$(dirname "$0")/.."
runs=${1:-3}
dir=target/bench
mkdir -p "$dir"
cargo build --release --quiet
bin=$PWD/target/release/rdprescue
img=big127-dirty.vhdx
[ -f "$dir/$img" ] || python3 testdata/make-scenarios.py "$dir" big127-dirty >&2
command -v strace >/dev/null || { echo "bench/remote.sh: needs strace (local bytes read)" >&2; exit 1; }

pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; }
trap cleanup EXIT
serve() { # serve LATENCY_MS -> sets $port
    local f
    f=$(mktemp)
    python3 bench/range-server.py "$dir" --latency-ms "$1" >"$f" &
    pids+=($!)
    for _ in $(seq 50); do [ -s "$f" ] && break; sleep 0.1; done
    port=$(cat "$f")
    rm -f "$f"
}

{
echo "remote  $(date -u +%Y-%m-%dT%H:%MZ)  $(nproc) cores  runs=$runs"
# Local bytes: what the containers pread from the file.
strace -f -qq -e trace=pread64 -e signal=none -o "$dir/remote.strace" "$bin" inspect "$dir/$img" >/dev/null || true
local_bytes=$(awk '/pread64/ { n = $NF; if (n ~ /^[0-9]+$/) s += n } END { print s + 0 }' "$dir/remote.strace")
local_reads=$(grep -c pread64 "$dir/remote.strace" || true)
rm -f "$dir/remote.strace"
echo "local inspect: $local_bytes bytes in $local_reads preads"

serve 0
url="http://127.0.0.1:$port/$img?sv=bench&sig=SECRET"
# (inspect exits 1 on findings: not a failure here)
survey=$( ("$bin" disk "$url" --verbose || true) 2>&1 >/dev/null | sed -n 's/.*http: \([0-9]*\) requests, \([0-9]*\) bytes.*/\1 \2/p')
whole=$( ("$bin" inspect "$url" --verbose || true) 2>&1 >/dev/null | sed -n 's/.*http: \([0-9]*\) requests, \([0-9]*\) bytes.*/\1 \2/p')
read -r sreq sbytes <<<"$survey"
read -r wreq wbytes <<<"$whole"
echo "remote survey (disk): $sreq requests, $sbytes bytes"
echo "remote inspect: $wreq requests, $wbytes bytes = $(awk -v a="$wbytes" -v b="$local_bytes" 'BEGIN { printf "%.2f", a / b }')x local bytes (goal <= 2x); $((wreq - sreq)) requests after the survey (goal <= 64)"
kill "${pids[-1]}"

serve 20
url="http://127.0.0.1:$port/$img?sv=bench&sig=SECRET"
python3 - "$bin" "$url" "$runs" <<'PY'
import statistics, subprocess, sys, time
bin_, url, runs = sys.argv[1], sys.argv[2], int(sys.argv[3])
def once(args):
    t0 = time.perf_counter()
    p = subprocess.run([bin_] + args, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    assert p.returncode in (0, 1), p.stderr.decode()
    return time.perf_counter() - t0
ts = [once(["inspect", url]) for _ in range(runs)]
print(f"remote inspect, 20 ms per request: median {statistics.median(ts):.2f} s (goal < 2 s; runs {', '.join(f'{t:.2f}' for t in ts)})")
urls = [url.replace("sig=SECRET", f"sig=SECRET{i}") for i in range(20)]
for jobs in (1, 4):
    t = once(["audit", "--jobs", str(jobs), "--format", "jsonl"] + urls)
    print(f"audit of 20 URLs, 20 ms per request, --jobs {jobs}: {t:.2f} s")
PY
} | tee "$dir/remote.txt"
