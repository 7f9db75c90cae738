#!/usr/bin/env bash
# Runs em's micro benchmarks against their raw-tokio twins in one run,
# alternating, several rounds, and prints the medians and em/tokio ratios.
#
#   bench/micro.sh [ROUNDS [LABEL...]]   (default 5 rounds, every pair)
#
# With labels, only those pairs run: `bench/micro.sh 7 pair`.
#
# Pairs: tick-chain, tick-fan, timers, timers-cancel, defer on em's own
# pool and defer on em's tokio backend, each against raw spawn_blocking
# (both twice: pinned to one core with taskset, and unpinned), pair
# (64-byte ping-pong through an in-memory pair against tokio::io::duplex),
# popen (1 GiB through `cat` against tokio::process::Command).
set -euo pipefail
cd "$(dirname "$0")/.."
rounds=${1:-5}
only=" ${*:2} "
cargo build --release -q -p em-examples --bin micro
micro=target/release/micro
out=$(mktemp)
trap 'rm -f "$out"' EXIT

pair() { # $1 = label, $2 = em bench, $3 = tokio bench, rest = command prefix
    local label=$1 em=$2 tokio=$3; shift 3
    if [ "$only" != "  " ] && [[ "$only" != *" $label "* ]]; then return; fi
    for r in $(seq "$rounds"); do
        for b in "$em" "$tokio"; do
            line=$("$@" "$micro" "$b" | tail -n 1)
            echo "$label $line" | tee -a "$out"
        done
    done
}

pair tick-chain tick-chain tokio-spawn-chain env
pair tick-fan tick-fan tokio-spawn-fan env
pair timers timers tokio-timers env
pair timers-cancel timers-cancel tokio-timers-cancel env
pair defer-pinned defer tokio-defer taskset -c 0
pair defer defer tokio-defer env
pair defer-tokio-backend-pinned defer-tokio-backend tokio-defer taskset -c 0
pair defer-tokio-backend defer-tokio-backend tokio-defer env
pair defer-latency-pinned defer-latency tokio-defer-latency taskset -c 0
pair pair pair tokio-duplex env
pair popen popen tokio-popen env

echo
echo "medians (em / tokio = ratio):"
python3 - "$out" <<'PY'
import sys, statistics, collections
rows = collections.defaultdict(lambda: collections.defaultdict(list))
for line in open(sys.argv[1]):
    parts = line.split()
    label = parts[0]
    kv = dict(p.split('=', 1) for p in parts[2:] if '=' in p)
    for k, v in kv.items():
        try:
            rows[(label, k)][kv['system']].append(float(v))
        except ValueError:
            pass
keys = ['ns_per_op', 'msgs_per_sec', 'mb_per_sec', 'cpu_ms', 'late_ms', 'max_late_ms', 'peak_rss_kb', 'p50_ns', 'p99_ns']
for label in dict.fromkeys(l for l, _ in rows):
    for k in keys:
        d = rows.get((label, k))
        if not d or 'em' not in d or 'tokio' not in d:
            continue
        em, tk = statistics.median(d['em']), statistics.median(d['tokio'])
        print(f"{label:22} {k:12} em={em:14.1f} tokio={tk:14.1f} ratio={em / tk if tk else float('nan'):7.3f}")
PY
