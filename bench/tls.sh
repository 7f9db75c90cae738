#!/usr/bin/env bash
# Compares em's TLS echo server with the raw tokio-rustls baseline
# (tokio_tls_echo) under `loadgen --tls`, in one run: server pinned to
# core 0, loadgen to core 1, the variants alternating (in a rotating order)
# within each of several rounds; prints every line, then the medians and
# the em/tokio ratios.
#
#   bench/tls.sh [ROUNDS] [DURATION_S]      (defaults: 5 rounds, 5 s)
#
# EM_TLS_SERVER is the command that starts em's TLS echo server (default:
# `target/release/echo_server --tls-self-signed --listen 127.0.0.1:0`,
# words split on spaces); it must listen on a free port and print
# `listening on ADDR`. If it does not start, the em variant is left out
# (with a message) and only tokio's figures are printed. Both servers make
# a self-signed certificate at start; loadgen uses --insecure, so that the
# client verifies no certificate chain (its cost is the client's, not the
# server's) but still checks the handshake signatures.
#
# Scenarios:
#   echo       echo, 50 connections x 64 B: msgs/s, server CPU per message
#   stream     stream, 1 connection x 16 KiB: MB/s, server CPU per 16 KiB
#   handshake  8 workers looping connect, full handshake, one 64 B echo,
#              close: handshakes/s, server CPU per handshake
#   c10k       2,000 idle TLS connections: server RSS per connection
set -euo pipefail
cd "$(dirname "$0")/.."
rounds=${1:-5}
dur=${2:-5}
read -r -a em_cmd <<<"${EM_TLS_SERVER:-target/release/echo_server --tls-self-signed --listen 127.0.0.1:0}"
bin=target/release
tokio_cmd=("$bin/tokio_tls_echo" --tls-self-signed --listen 127.0.0.1:0)
cargo build --release -q -p em-examples --bin echo_server --bin tokio_tls_echo --bin loadgen
ulimit -n 20000 2>/dev/null || ulimit -n "$(ulimit -Hn)"
out=$(mktemp)
trap 'rm -f "$out"; kill $(jobs -p) 2>/dev/null || true' EXIT

start_server() { # $1 = em|tokio; sets pid and addr, or startlog and fails
    local cmd log
    if [ "$1" = em ]; then cmd=("${em_cmd[@]}"); else cmd=("${tokio_cmd[@]}"); fi
    log=$(mktemp)
    taskset -c 0 "${cmd[@]}" >"$log" 2>&1 &
    pid=$!
    addr=
    for _ in $(seq 200); do
        addr=$(sed -n 's/^listening on //p' "$log")
        [ -n "$addr" ] && break
        kill -0 "$pid" 2>/dev/null || break
        sleep 0.05
    done
    startlog=$(head -c 2000 "$log")
    rm -f "$log"
    if [ -z "$addr" ]; then
        kill "$pid" 2>/dev/null || true
        wait "$pid" 2>/dev/null || true
        return 1
    fi
}

stop_server() { kill -TERM "$pid"; wait "$pid" || true; }

variants=(em tokio)
if start_server em; then
    stop_server
else
    echo "em's TLS server did not start (EM_TLS_SERVER: ${em_cmd[*]}); leaving the em variant out:" >&2
    sed 's/^/    /' <<<"$startlog" >&2
    variants=(tokio)
fi

scenario() { # $1 = name, rest = loadgen args (without --addr/--pid)
    local name=$1; shift
    local n=${#variants[@]}
    for r in $(seq "$rounds"); do
        for i in $(seq 0 $((n - 1))); do
            # Rotate the order each round, so that no variant always runs
            # first (on a cold machine) or right after the same other one.
            local sys=${variants[$(((i + r - 1) % n))]}
            start_server "$sys" || { echo "server $sys did not start: $startlog" >&2; exit 1; }
            line=$(taskset -c 1 "$bin/loadgen" "$@" --addr "$addr" --pid "$pid")
            stop_server
            echo "$name $sys round=$r $line" | tee -a "$out"
        done
    done
}

tls=(--tls --insecure)
scenario echo echo --conns 50 --size 64 --duration "$dur" "${tls[@]}"
scenario stream stream --conns 1 --size 16384 --duration "$dur" "${tls[@]}"
scenario handshake handshake --conns 8 --duration "$dur" "${tls[@]}"
scenario c10k c10k --conns 2000 "${tls[@]}"

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
keys = {'echo': ['msgs_per_s', 'server_cpu_us_per_msg', 'p50_us', 'p99_us'],
        'stream': ['mb_per_s', 'server_cpu_us_per_msg'],
        'handshake': ['handshakes_per_s', 'server_cpu_us_per_handshake', 'p50_us', 'p99_us'],
        'c10k': ['rss_per_conn_bytes']}
for name, ks in keys.items():
    for k in ks:
        d = rows.get((name, k))
        if not d:
            continue
        cells = [f"{s}={statistics.median(d[s]):12.3f}" for s in ('em', 'tokio') if s in d]
        if 'em' in d and 'tokio' in d:
            tk = statistics.median(d['tokio'])
            ratio = statistics.median(d['em']) / tk if tk else float('nan')
            cells.append(f"ratio={ratio:6.3f}")
        print(f"{name:9} {k:28} " + " ".join(cells))
PY
