#!/usr/bin/env bash
# The UDP echo server's cost per datagram: em's udp_echo against the
# raw-tokio baseline tokio_udp_echo, in one run: server pinned to core 0,
# loadgen to core 1, the two alternating (in a rotating order) within each
# of several rounds; prints every line, then the medians and the ratios.
#
#   bench/udp.sh [ROUNDS] [DURATION_S] [CONNS] [SIZE]
#
# (defaults: 5 rounds, 5 s, 50 sockets, 64 B). The load is `loadgen udp`:
# every socket keeps one datagram in flight and waits for its echo (a
# datagram whose echo does not come within 200 ms counts as lost). The
# figure that matters is server_cpu_us_per_msg, the server's user + system
# CPU time per echoed datagram from /proc/PID/stat (10 ms ticks: keep the
# window at 5 s or more); em/tokio at or below 1.0 is the target.
set -euo pipefail
cd "$(dirname "$0")/.."
rounds=${1:-5}
dur=${2:-5}
conns=${3:-50}
size=${4:-64}
cargo build --release -q -p em-examples --bin udp_echo --bin tokio_udp_echo --bin loadgen
bin=target/release
out=$(mktemp)
trap 'rm -f "$out"; kill $(jobs -p) 2>/dev/null || true' EXIT

start_server() { # $1 = em|tokio; sets pid, addr
    local exe log
    case $1 in
        em) exe=$bin/udp_echo ;;
        tokio) exe=$bin/tokio_udp_echo ;;
    esac
    log=$(mktemp)
    taskset -c 0 "$exe" --listen 127.0.0.1:0 >"$log" 2>&1 &
    pid=$!
    addr=
    for _ in $(seq 100); do
        addr=$(sed -n 's/^listening on //p' "$log")
        [ -n "$addr" ] && break
        sleep 0.05
    done
    rm -f "$log"
    [ -n "$addr" ] || { echo "server $1 did not start" >&2; exit 1; }
}

stop_server() { kill -TERM "$pid"; wait "$pid" || true; }

variants=(em tokio)
n=${#variants[@]}
for r in $(seq "$rounds"); do
    for i in $(seq 0 $((n - 1))); do
        # Rotate the order each round, so that no variant always runs first.
        sys=${variants[$(((i + r - 1) % n))]}
        start_server "$sys"
        line=$(taskset -c 1 "$bin/loadgen" udp --addr "$addr" --conns "$conns" --size "$size" \
            --duration "$dur" --pid "$pid")
        stop_server
        echo "udp $sys round=$r $line" | tee -a "$out"
    done
done

echo
echo "medians, and em / tokio = ratio:"
python3 - "$out" <<'PY'
import sys, statistics, collections
rows = collections.defaultdict(lambda: collections.defaultdict(list))
for line in open(sys.argv[1]):
    parts = line.split()
    sys_ = parts[1]
    for kv in parts[3:]:
        if '=' in kv:
            k, v = kv.split('=', 1)
            try:
                rows[k][sys_].append(float(v))
            except ValueError:
                pass
for k in ['server_cpu_us_per_msg', 'msgs_per_s', 'server_cpu_pct', 'p50_us', 'p99_us', 'lost']:
    d = rows.get(k)
    if not d or 'em' not in d or 'tokio' not in d:
        continue
    em, tokio = statistics.median(d['em']), statistics.median(d['tokio'])
    ratio = em / tokio if tokio else float('nan')
    print(f"udp {k:22} em={em:12.3f}  tokio={tokio:12.3f}  em/tokio={ratio:6.3f}")
PY
