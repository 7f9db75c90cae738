#!/usr/bin/env bash
# em-proxy against the plain forwarding proxy (`proxy`, splice both ways),
# in one run: the proxies pinned to core 0, loadgen and the echo servers
# (relay and mirror) to core 1, the variants alternating, several rounds;
# prints every line, then the medians and the ratios to `proxy`.
#
#   bench/proxy_duplex.sh [ROUNDS] [DURATION_S]      (defaults: 5 rounds, 5 s)
#
# Scenarios:
# * echo-50x64: `loadgen echo`, 50 connections, 64 B messages, one in
#   flight each; `plain` (proxy --to ECHO) against `duplex` (em-proxy
#   --relay ECHO --mirror ECHO2: every byte also copied to the mirror,
#   whose replies are read and dropped). Compared: the proxy's CPU per
#   message (user + system, from /proc/PID/stat by loadgen --pid).
# * stream-8x16k: `loadgen stream`, 8 connections writing 16 KiB chunks;
#   `plain` against `router` (route_by_line --fallback ECHO: the first
#   bytes routed, replayed, then spliced both ways). Compared: throughput
#   (MB/s echoed back) and CPU per MB.
#
# Binaries come from $CARGO_TARGET_DIR (default target)/release.
set -euo pipefail
cd "$(dirname "$0")/.."
rounds=${1:-5}
dur=${2:-5}
cargo build --release -q -p em-examples --bin echo_server --bin proxy --bin em-proxy \
    --bin route_by_line --bin loadgen
bin=${CARGO_TARGET_DIR:-target}/release
out=$(mktemp)
trap 'rm -f "$out"; kill $(jobs -p) 2>/dev/null || true' EXIT

start() { # $1 = core, rest = command; sets pid, addr
    local core=$1; shift
    local log
    log=$(mktemp)
    taskset -c "$core" "$@" >"$log" 2>/dev/null &
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
start 1 "$bin/echo_server" --listen 127.0.0.1:0
mirror_pid=$pid mirror_addr=$addr

scenario() { # $1 = name, $2 = variants, rest = loadgen args (without --addr/--pid)
    local name=$1 variants=$2; shift 2
    for r in $(seq "$rounds"); do
        for v in $variants; do
            case $v in
                plain) start 0 "$bin/proxy" --listen 127.0.0.1:0 --to "$echo_addr" ;;
                duplex) start 0 "$bin/em-proxy" --listen 127.0.0.1:0 --relay "$echo_addr" \
                    --mirror "$mirror_addr" --stats-every 0 ;;
                router) start 0 "$bin/route_by_line" --listen 127.0.0.1:0 --a "$echo_addr" \
                    --b "$echo_addr" --fallback "$echo_addr" ;;
            esac
            line=$(taskset -c 1 "$bin/loadgen" "$@" --addr "$addr" --pid "$pid")
            stop "$pid"
            echo "$name $v round=$r $line" | tee -a "$out"
        done
    done
}

scenario echo-50x64 "plain duplex" echo --conns 50 --size 64 --duration "$dur"
scenario stream-8x16k "plain router" stream --conns 8 --size 16384 --duration "$dur"
stop "$echo_pid"
stop "$mirror_pid"

echo
echo "medians (ratio = x / plain):"
python3 - "$out" <<'PY'
import sys, statistics, collections
rows = collections.defaultdict(lambda: collections.defaultdict(list))
for line in open(sys.argv[1]):
    parts = line.split()
    name, var = parts[0], parts[1]
    kv = dict(p.split('=', 1) for p in parts[3:] if '=' in p)
    mb = float(kv['mb_per_s'])
    if name.startswith('echo'):
        rows[(name, 'msgs_per_s')][var].append(float(kv['msgs_per_s']))
        rows[(name, 'cpu_us_per_msg')][var].append(float(kv['server_cpu_us_per_msg']))
    else:
        rows[(name, 'mb_per_s')][var].append(mb)
        rows[(name, 'cpu_us_per_mb')][var].append(float(kv['server_cpu_pct']) * 1e4 / mb)
for (name, metric), d in sorted(rows.items()):
    base = statistics.median(d['plain'])
    cells = []
    for var in ('plain', 'duplex', 'router'):
        if d[var]:
            m = statistics.median(d[var])
            cells.append(f"{var}={m:10.3f} ({m / base:5.2f}x)")
    print(f"{name:13} {metric:15} " + "  ".join(cells))
PY
