#!/usr/bin/env bash
# Checks a change to em's connection engine: today's echo_server against a
# previous build of it and against the raw-tokio baseline, over TCP and over
# a Unix-domain socket, in one run: server pinned to core 0, loadgen to
# core 1, the variants alternating (in a rotating order) within each of
# several rounds; prints every line, then the medians and the ratios.
#
#   PREV_ECHO_SERVER=/path/to/old/echo_server bench/engine.sh [ROUNDS] [DURATION_S]
#
# (defaults: 5 rounds, 5 s). PREV_ECHO_SERVER is an echo_server binary built
# from the commit to compare with (say, main before the change); it must
# take `--listen ADDR` and print `listening on ADDR`. Without it the `prev`
# variant is left out.
#
# Scenarios:
#   echo-tcp   echo, 50 connections x 64 B, pipeline 1: em, prev, tokio
#   c10k-tcp   10,000 idle connections, server RSS per connection: em, prev
#   echo-unix  echo, 50 connections x 64 B over a Unix-domain socket:
#              em, tokio (`--unix`)
set -euo pipefail
cd "$(dirname "$0")/.."
rounds=${1:-5}
dur=${2:-5}
prev=${PREV_ECHO_SERVER:-}
if [ -n "$prev" ] && [ ! -x "$prev" ]; then
    echo "PREV_ECHO_SERVER=$prev is not an executable" >&2
    exit 1
fi
[ -n "$prev" ] || echo "PREV_ECHO_SERVER is not set: comparing em with tokio only" >&2
cargo build --release -q -p em-examples --bin echo_server --bin tokio_echo --bin loadgen
bin=target/release
ulimit -n 20000 2>/dev/null || ulimit -n "$(ulimit -Hn)"
out=$(mktemp)
sockdir=$(mktemp -d)
trap 'rm -rf "$out" "$sockdir"; kill $(jobs -p) 2>/dev/null || true' EXIT

start_server() { # $1 = em|prev|tokio, $2 = tcp|unix; sets pid, target
    local exe
    case $1 in
        em) exe=$bin/echo_server ;;
        prev) exe=$prev ;;
        tokio) exe=$bin/tokio_echo ;;
    esac
    local listen=(--listen 127.0.0.1:0)
    [ "$2" = unix ] && listen=(--unix "$sockdir/$1.sock")
    local log addr=
    log=$(mktemp)
    taskset -c 0 "$exe" "${listen[@]}" >"$log" 2>&1 &
    pid=$!
    for _ in $(seq 100); do
        addr=$(sed -n 's/^listening on //p' "$log")
        [ -n "$addr" ] && break
        sleep 0.05
    done
    rm -f "$log"
    [ -n "$addr" ] || { echo "server $1 ($2) did not start" >&2; exit 1; }
    if [ "$2" = unix ]; then target=(--unix "$addr"); else target=(--addr "$addr"); fi
}

stop_server() { kill -TERM "$pid"; wait "$pid" || true; }

scenario() { # $1 = name, $2 = tcp|unix, $3 = variants, rest = loadgen args
    local name=$1 transport=$2 variants=($3); shift 3
    local n=${#variants[@]}
    for r in $(seq "$rounds"); do
        for i in $(seq 0 $((n - 1))); do
            # Rotate the order each round, so that no variant always runs
            # first (on a cold machine) or right after the same other one.
            local sys=${variants[$(((i + r - 1) % n))]}
            start_server "$sys" "$transport"
            line=$(taskset -c 1 "$bin/loadgen" "$@" "${target[@]}" --pid "$pid")
            stop_server
            echo "$name $sys round=$r $line" | tee -a "$out"
        done
    done
}

with_prev() { if [ -n "$prev" ]; then echo "em prev $1"; else echo "em $1"; fi; }

scenario echo-tcp tcp "$(with_prev tokio)" echo --conns 50 --size 64 --duration "$dur"
if [ -n "$prev" ]; then
    scenario c10k-tcp tcp "em prev" c10k --conns 10000
fi
scenario echo-unix unix "em tokio" echo --conns 50 --size 64 --duration "$dur"

echo
echo "medians, and em / other = ratio:"
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
echo = ['msgs_per_s', 'server_cpu_us_per_msg', 'p50_us', 'p99_us']
keys = {'echo-tcp': echo, 'c10k-tcp': ['rss_per_conn_bytes'], 'echo-unix': echo}
for name, ks in keys.items():
    for k in ks:
        d = rows.get((name, k))
        if not d or 'em' not in d:
            continue
        em = statistics.median(d['em'])
        cells = [f"em={em:12.3f}"]
        for other in ('prev', 'tokio'):
            if other in d:
                o = statistics.median(d[other])
                ratio = em / o if o else float('nan')
                cells.append(f"{other}={o:12.3f} em/{other}={ratio:6.3f}")
        print(f"{name:9} {k:22} " + "  ".join(cells))
PY
