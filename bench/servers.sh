#!/usr/bin/env bash
# Compares em's echo_server with the raw-tokio baseline (tokio_echo) under the
# load generator, in one run: server pinned to core 0, loadgen to core 1,
# both servers alternating, several rounds; prints every line, then the
# medians and the em/tokio ratios.
#
#   bench/servers.sh [ROUNDS] [DURATION_S]      (defaults: 5 rounds, 5 s)
#
# Scenarios: echo 50x64 B pipeline 1, echo 50x64 B pipeline 16,
# stream 1 connection x 16 KiB, c10k 10,000 connections (RSS per connection).
set -euo pipefail
cd "$(dirname "$0")/.."
rounds=${1:-5}
dur=${2:-5}
cargo build --release -q -p em-examples --bin echo_server --bin tokio_echo --bin loadgen
bin=target/release
ulimit -n 20000 2>/dev/null || ulimit -n "$(ulimit -Hn)"
out=$(mktemp)
trap 'rm -f "$out"; kill $(jobs -p) 2>/dev/null || true' EXIT

start_server() { # $1 = em|tokio; sets pid, addr
    local exe=echo_server
    [ "$1" = tokio ] && exe=tokio_echo
    local log
    log=$(mktemp)
    taskset -c 0 "$bin/$exe" --listen 127.0.0.1:0 >"$log" 2>&1 &
    pid=$!
    for _ in $(seq 100); do
        addr=$(sed -n 's/^listening on //p' "$log")
        [ -n "$addr" ] && break
        sleep 0.05
    done
    rm -f "$log"
    [ -n "$addr" ] || { echo "server $1 did not start" >&2; exit 1; }
}

stop_server() { kill -TERM "$pid"; wait "$pid" || true; }

scenario() { # $1 = name, rest = loadgen args (without --addr/--pid)
    local name=$1; shift
    for r in $(seq "$rounds"); do
        for sys in em tokio; do
            start_server "$sys"
            line=$(taskset -c 1 "$bin/loadgen" "$@" --addr "$addr" --pid "$pid")
            stop_server
            echo "$name $sys round=$r $line" | tee -a "$out"
        done
    done
}

scenario echo-p1 echo --conns 50 --size 64 --duration "$dur"
scenario echo-p16 echo --conns 50 --size 64 --duration "$dur" --pipeline 16
scenario stream stream --conns 1 --size 16384 --duration "$dur"
scenario c10k c10k --conns 10000

echo
echo "medians (em / tokio = ratio):"
python3 - "$out" <<'PY'
import sys, statistics, collections
rows = collections.defaultdict(lambda: collections.defaultdict(list))
for line in open(sys.argv[1]):
    parts = line.split()
    name, sys_ = parts[0], parts[1]
    for kv in parts[3:]:
        if '=' in kv:
            k, v = kv.split('=', 1)
            try:
                rows[(name, k)][sys_].append(float(v))
            except ValueError:
                pass
keys = {'echo-p1': ['msgs_per_s', 'server_cpu_us_per_msg', 'p50_us', 'p99_us'],
        'echo-p16': ['msgs_per_s', 'server_cpu_us_per_msg', 'p50_us', 'p99_us'],
        'stream': ['mb_per_s', 'server_cpu_us_per_msg'],
        'c10k': ['rss_per_conn_bytes']}
for name, ks in keys.items():
    for k in ks:
        d = rows.get((name, k))
        if not d or 'em' not in d or 'tokio' not in d:
            continue
        em, tk = statistics.median(d['em']), statistics.median(d['tokio'])
        ratio = em / tk if tk else float('nan')
        print(f"{name:9} {k:24} em={em:12.3f} tokio={tk:12.3f} ratio={ratio:6.3f}")
PY
