#!/usr/bin/env bash
# Measures em-http: its `http_hello` against the hyper baseline
# (`hyper_hello`) and against thin (EventMachine's web server, in Ruby:
# bench/baselines/thin/config.ru), all three serving the same
# `Hello, World!`, in one run: server pinned to core 0, the load (wrk, or
# loadgen) to core 1, the variants alternating (in a rotating order) within
# each of several rounds; prints every line, then the medians and the
# ratios.
#
#   bench/http.sh [ROUNDS] [DURATION_S]
#
# (defaults: 5 rounds, 5 s; DURATION_S a whole number of seconds). Each
# measured wrk run follows a 1 s warm-up run on fresh connections, not
# counted. Needs the Debian packages wrk and thin; the servers are built
# here (release) into $CARGO_TARGET_DIR (default target/). A variant that
# cannot be had is left out with a note: em while `http_hello` does not
# build, thin when it is not installed.
#
# Every server takes `--listen ADDR` and prints `listening on ADDR` on
# stdout once bound (thin, which cannot, is given a free port and waited
# for).
#
# Scenarios:
#   keepalive  GET /, 50 keep-alive connections, one request in flight on
#              each (`wrk -t1 -c50`): requests/s and the server's CPU
#              (utime + stime, /proc/PID/stat) per request: em, hyper, thin
#   pipeline   the same with 16 requests per write (bench/http/pipeline.lua,
#              TechEmpower's pipelining): em, hyper
#   c10k-http  10,000 connections, each makes one keep-alive GET / and is
#              then held open idle: server VmRSS growth per connection
#              (`loadgen c10k --http`): em, hyper
set -euo pipefail
cd "$(dirname "$0")/.."
rounds=${1:-5}
dur=${2:-5}
conns=50
idle_conns=10000
[[ $dur =~ ^[1-9][0-9]*$ ]] || { echo "DURATION_S must be a whole number of seconds" >&2; exit 1; }
command -v wrk >/dev/null || { echo "wrk is not installed (apt-get install wrk)" >&2; exit 1; }
cargo build --release -q -p em-examples --bin hyper_hello --bin loadgen
bin=${CARGO_TARGET_DIR:-target}/release
have_em=1
if ! cargo build --release -q -p em-examples --bin http_hello 2>/dev/null || [ ! -x "$bin/http_hello" ]; then
    echo "note: http_hello does not build (or is missing): leaving em out" >&2
    have_em=
fi
have_thin=1
if ! command -v thin >/dev/null; then
    echo "note: thin is not installed (apt-get install thin): leaving it out" >&2
    have_thin=
fi
ulimit -n 20000 2>/dev/null || ulimit -n "$(ulimit -Hn)"
clk_tck=$(getconf CLK_TCK)
out=$(mktemp)
trap 'rm -f "$out"; kill $(jobs -p) 2>/dev/null || true' EXIT

free_port() {
    python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

start_server() { # $1 = em|hyper|thin; sets pid, addr
    local log
    log=$(mktemp)
    addr=
    case $1 in
        em | hyper)
            local exe=$bin/http_hello
            [ "$1" = hyper ] && exe=$bin/hyper_hello
            taskset -c 0 "$exe" --listen 127.0.0.1:0 >"$log" 2>&1 &
            pid=$!
            for _ in $(seq 100); do
                addr=$(sed -n 's/^listening on //p' "$log")
                [ -n "$addr" ] && break
                sleep 0.05
            done
            ;;
        thin)
            local port
            port=$(free_port)
            # /usr/bin/thin is a Ruby script: $! is the ruby process that
            # serves (no daemon, no workers).
            taskset -c 0 thin start -R bench/baselines/thin/config.ru \
                -a 127.0.0.1 -p "$port" -e production >"$log" 2>&1 &
            pid=$!
            for _ in $(seq 200); do
                if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
                    addr=127.0.0.1:$port
                    break
                fi
                sleep 0.05
            done
            ;;
    esac
    [ -n "$addr" ] || { echo "server $1 did not start:" >&2; cat "$log" >&2; rm -f "$log"; exit 1; }
    rm -f "$log"
}

stop_server() {
    kill -TERM "$pid" 2>/dev/null || true
    for _ in $(seq 100); do
        kill -0 "$pid" 2>/dev/null || break
        sleep 0.05
    done
    kill -KILL "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
}

cpu_ticks() { # utime + stime of $1 (fields 14 and 15; the name may hold spaces)
    sed 's/^.*) //' "/proc/$1/stat" | awk '{ print $12 + $13 }'
}

# One wrk run against the server in $pid at $addr, extra wrk args in "$@";
# prints `req_per_s=... requests=... server_cpu_us_per_req=... errors=...`.
measure_wrk() {
    taskset -c 1 wrk -t1 -c"$conns" -d1s "$@" "http://$addr/" >/dev/null
    local before after report
    before=$(cpu_ticks "$pid")
    report=$(taskset -c 1 wrk -t1 -c"$conns" -d"${dur}s" "$@" "http://$addr/")
    after=$(cpu_ticks "$pid")
    awk -v ticks=$((after - before)) -v hz="$clk_tck" '
        / requests in / { requests = $1 }
        /^Requests\/sec:/ { rps = $2 }
        /Socket errors:/ { for (i = 1; i <= NF; i++) if ($i ~ /^[0-9]+,?$/) errors += $i }
        /Non-2xx or 3xx responses:/ { errors += $NF }
        END {
            if (requests == 0) { print "wrk measured nothing" > "/dev/stderr"; exit 1 }
            printf "req_per_s=%.1f requests=%d server_cpu_us_per_req=%.3f errors=%d\n",
                rps, requests, ticks / hz * 1e6 / requests, errors
        }' <<<"$report"
}

measure_idle() {
    taskset -c 1 "$bin/loadgen" c10k --http --conns "$idle_conns" --addr "$addr" --pid "$pid" |
        sed 's/^LOADGEN //'
}

scenario() { # $1 = name, $2 = variants (those not had are dropped), rest = measure command
    local name=$1 variants=() v
    for v in $2; do
        case $v in
            em) [ -n "$have_em" ] || continue ;;
            thin) [ -n "$have_thin" ] || continue ;;
        esac
        variants+=("$v")
    done
    shift 2
    local n=${#variants[@]}
    for r in $(seq "$rounds"); do
        for i in $(seq 0 $((n - 1))); do
            # Rotate the order each round, so that no variant always runs
            # first (on a cold machine) or right after the same other one.
            local sys=${variants[$(((i + r - 1) % n))]}
            start_server "$sys"
            line=$("$@")
            stop_server
            echo "$name $sys round=$r $line" | tee -a "$out"
        done
    done
}

scenario keepalive "em hyper thin" measure_wrk
scenario pipeline "em hyper" measure_wrk -s bench/http/pipeline.lua
scenario c10k-http "em hyper" measure_idle

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
http = ['req_per_s', 'server_cpu_us_per_req', 'errors']
keys = {'keepalive': http, 'pipeline': http, 'c10k-http': ['rss_per_conn_bytes']}
for name, ks in keys.items():
    for k in ks:
        d = rows.get((name, k))
        if not d:
            continue
        if k == 'errors':
            # Failed or non-2xx responses: any at all is worth a look, so
            # the total over all rounds, not a median or a ratio.
            print(f"{name:9} {'errors (total)':22} " + "  ".join(
                f"{s}={int(sum(d[s])):12d}" for s in ('em', 'hyper', 'thin') if s in d))
            continue
        em = statistics.median(d['em']) if 'em' in d else None
        cells = [f"em={em:12.3f}" if em is not None else f"em={'n/a':>12}"]
        for other in ('hyper', 'thin'):
            if other in d:
                o = statistics.median(d[other])
                if em is None:
                    cells.append(f"{other}={o:12.3f}")
                else:
                    ratio = em / o if o else float('nan')
                    cells.append(f"{other}={o:12.3f} em/{other}={ratio:6.3f}")
        print(f"{name:9} {k:22} " + "  ".join(cells))
PY
