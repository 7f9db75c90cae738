#!/usr/bin/env bash
# What em::testing::FaultProxy costs with no toxic: `loadgen stream`
# through the plain forwarding proxy (`proxy`, splice both ways) and
# through `fault_proxy` with no toxic (which should splice the same way),
# to `echo_server`, in one run: the proxy pinned to core 0, loadgen and
# echo_server to core 1, the two proxies alternating, several rounds;
# prints every line, then the medians and the ratio fault_proxy / proxy.
#
#   bench/fault_proxy.sh [ROUNDS] [DURATION_S]      (defaults: 5 rounds, 5 s)
#
# Throughput is loadgen's: MB (10^6 bytes) per second echoed back, so each
# byte crosses the proxy twice. CPU per MB is the proxy's user + system
# time (from /proc/PID/stat, by loadgen --pid) per MB of that throughput.
# Scenarios: one connection writing 64 KiB chunks; 8 connections writing
# 16 KiB chunks. Target: fault_proxy >= 0.9x proxy's MB/s.
set -euo pipefail
cd "$(dirname "$0")/.."
rounds=${1:-5}
dur=${2:-5}
cargo build --release -q -p em-examples --bin echo_server --bin proxy --bin fault_proxy --bin loadgen
bin=${CARGO_TARGET_DIR:-target}/release
systems="proxy fault_proxy"
out=$(mktemp)
trap 'rm -f "$out"; kill $(jobs -p) 2>/dev/null || true' EXIT

start() { # $1 = core, rest = command; sets pid, addr
    local core=$1; shift
    local log
    log=$(mktemp)
    taskset -c "$core" "$@" >"$log" 2>&1 &
    pid=$!
    addr=
    for _ in $(seq 100); do
        addr=$(sed -n 's/^listening on //p' "$log")
        [ -n "$addr" ] && break
        sleep 0.05
    done
    rm -f "$log"
    [ -n "$addr" ] || { echo "$* did not start" >&2; exit 1; }
}

stop() { kill -TERM "$1"; wait "$1" || true; }

start 1 "$bin/echo_server" --listen 127.0.0.1:0
echo_pid=$pid echo_addr=$addr

scenario() { # $1 = name, rest = loadgen args (without --addr/--pid)
    local name=$1; shift
    for r in $(seq "$rounds"); do
        for sys in $systems; do
            start 0 "$bin/$sys" --listen 127.0.0.1:0 --to "$echo_addr"
            line=$(taskset -c 1 "$bin/loadgen" "$@" --addr "$addr" --pid "$pid")
            stop "$pid"
            echo "$name $sys round=$r $line" | tee -a "$out"
        done
    done
}

scenario stream-1x64k stream --conns 1 --size 65536 --duration "$dur"
scenario stream-8x16k stream --conns 8 --size 16384 --duration "$dur"
stop "$echo_pid"

echo
echo "medians (ratio = x / proxy):"
python3 - "$out" <<'PY'
import sys, statistics, collections
rows = collections.defaultdict(lambda: collections.defaultdict(list))
for line in open(sys.argv[1]):
    parts = line.split()
    name, sys_ = parts[0], parts[1]
    kv = dict(p.split('=', 1) for p in parts[3:] if '=' in p)
    mb = float(kv['mb_per_s'])
    rows[(name, 'mb_per_s')][sys_].append(mb)
    # server_cpu_pct is % of one core; per MB of throughput, in µs.
    rows[(name, 'cpu_us_per_mb')][sys_].append(float(kv['server_cpu_pct']) * 1e4 / mb)
for (name, metric), d in sorted(rows.items()):
    base = statistics.median(d['proxy'])
    cells = []
    for sys_ in ('proxy', 'fault_proxy'):
        m = statistics.median(d[sys_])
        cells.append(f"{sys_}={m:10.1f} ({m / base:5.2f}x)")
    print(f"{name:13} {metric:14} " + "  ".join(cells))
PY
