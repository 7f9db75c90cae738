#!/usr/bin/env bash
# Measures em's several reactors (n reactor threads, each with its own
# SO_REUSEPORT listener on the same port) against one reactor and against
# the two ways raw tokio spreads an echo server over threads: one
# multi-thread runtime (`tokio_echo_mt`, work stealing) and one
# current-thread runtime per thread, each with its own SO_REUSEPORT
# listener (`tokio_echo_reuseport`, em's shape without em). Echo with
# `loadgen echo`, 64 B messages, one in flight per connection; the variants
# alternate (in a rotating order) within each of several rounds; prints
# every line, then the medians and the ratios.
#
#   bench/reactors.sh [ROUNDS] [DURATION_S]
#   bench/reactors.sh --scaling "1 2 4 8 16" [ROUNDS] [DURATION_S]
#
# (defaults: 5 rounds, 5 s; 5 s or more for meaningful CPU figures, which
# tick in 10 ms steps). Linux only (it reads /proc); needs taskset and
# python3. The servers are built here (release) into $CARGO_TARGET_DIR
# (default target/).
#
# Default mode, for a 2-core machine: 50 connections, variants
#   em1  echo_server                        one reactor
#   em2  echo_server --reactors 2           two reactors
#   mt2  tokio_echo_mt --threads 2          multi-thread runtime, 2 workers
#   rp2  tokio_echo_reuseport --threads 2   2 runtimes, 2 listeners
# em2 is left out, with a note, while `echo_server --help` does not mention
# `--reactors`. Nothing is pinned: the two-thread servers need both cores
# (pinned to one they would measure nothing), and with only two cores the
# load generator shares them with the server, so the absolute figures are
# those of a machine running its own client; em1 is left unpinned too, so
# that the four differ only in the server. It prints the medians of msgs/s,
# the server's CPU (utime + stime of all its threads) per message, its CPU
# use and p99 latency, and the ratios em2/mt2 and em2/rp2, and
# em2 CPU/msg / em1 CPU/msg: the cost of a message on two reactors against
# one (1.0 = nothing lost to running several).
#
# Scaling mode, for a big machine: for each reactor count k in the list,
# echo_server --reactors k (plain echo_server for k = 1; for k > 1 left out,
# with a note, while echo_server has no --reactors),
# tokio_echo_mt --threads k and tokio_echo_reuseport --threads k, each
# pinned (taskset) to the first k cores this script may run on (cores
# 0..k-1 on an unrestricted machine). The load comes from L = min(k, cores
# left) loadgen processes (each is single-threaded), one pinned to each of
# the next L cores, 50 x k connections in all. A count that leaves no core
# for the load generator is skipped, with a note; when L < k the load
# generator may be what limits msgs/s (the table says so). It prints a table
# of the medians per k: msgs/s and server CPU per message for each server,
# em/mt and em/rp msgs/s, and em's CPU per message against its k = 1 value.
set -euo pipefail
cd "$(dirname "$0")/.."
counts=
if [ "${1:-}" = --scaling ]; then
    counts=${2:?--scaling needs a list of reactor counts, e.g. \"1 2 4 8\"}
    shift 2
    for k in $counts; do
        [[ $k =~ ^[1-9][0-9]*$ ]] || { echo "--scaling: $k is not a positive count" >&2; exit 1; }
    done
fi
rounds=${1:-5}
dur=${2:-5}
conns_per_k=50
size=64
cargo build --release -q -p em-examples \
    --bin echo_server --bin tokio_echo_mt --bin tokio_echo_reuseport --bin loadgen
bin=${CARGO_TARGET_DIR:-target}/release
have_reactors=
if "$bin/echo_server" --help | grep -q -- '--reactors'; then
    have_reactors=1
fi
ulimit -n 20000 2>/dev/null || ulimit -n "$(ulimit -Hn)"
# The cores this script may run on, in order (all of them, unless it was
# started under taskset or in a cpuset).
read -r -a cpus <<<"$(python3 -c 'import os; print(*sorted(os.sched_getaffinity(0)))')"
out=$(mktemp)
trap 'rm -f "$out"; kill $(jobs -p) 2>/dev/null || true' EXIT

# The command line of variant $1 (em, mt, rp) with $2 reactors or threads.
server_cmd() {
    case $1 in
        em)
            # One reactor is the plain echo_server, --reactors or not.
            cmd=("$bin/echo_server")
            [ "$2" -eq 1 ] || cmd+=(--reactors "$2")
            ;;
        mt) cmd=("$bin/tokio_echo_mt" --threads "$2") ;;
        rp) cmd=("$bin/tokio_echo_reuseport" --threads "$2") ;;
    esac
}

start_server() { # $1 = taskset core list ("" = not pinned), rest = command; sets pid, addr
    local pin=$1 log
    shift
    log=$(mktemp)
    if [ -n "$pin" ]; then
        taskset -c "$pin" "$@" --listen 127.0.0.1:0 >"$log" 2>&1 &
    else
        "$@" --listen 127.0.0.1:0 >"$log" 2>&1 &
    fi
    pid=$!
    addr=
    for _ in $(seq 100); do
        addr=$(sed -n 's/^listening on //p' "$log" | head -n 1)
        [ -n "$addr" ] && break
        sleep 0.05
    done
    [ -n "$addr" ] || { echo "server $* did not start:" >&2; cat "$log" >&2; rm -f "$log"; exit 1; }
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

# Echo load on the server in $pid at $addr: $1 = total connections, rest =
# the cores of the loadgen processes, one each ("" = one loadgen, not
# pinned). Prints loadgen's summary without `LOADGEN `; with several
# loadgens, their sum: msgs/s added up, and the server's CPU per message
# from its CPU use over the (common) window.
measure() {
    local conns=$1
    shift
    local n=$# i=0 core files=() f pids=() p failed=
    for core in "$@"; do
        f=$(mktemp)
        files+=("$f")
        # The first ones take the remainder, so that all add up to $conns.
        local c=$(((conns + n - 1 - i) / n))
        i=$((i + 1))
        local run=("$bin/loadgen" echo --addr "$addr" --conns "$c" --size "$size"
            --duration "$dur" --pid "$pid")
        if [ -n "$core" ]; then taskset -c "$core" "${run[@]}" >"$f" & else "${run[@]}" >"$f" & fi
        pids+=($!)
    done
    for p in "${pids[@]}"; do wait "$p" || failed=1; done
    [ -z "$failed" ] || { echo "loadgen failed" >&2; cat "${files[@]}" >&2; exit 1; }
    if [ "$n" -eq 1 ]; then
        sed 's/^LOADGEN //' "${files[0]}"
    else
        cat "${files[@]}" | awk -v n="$n" '
            {
                for (i = 2; i <= NF; i++) {
                    split($i, kv, "=")
                    v[kv[1]] += kv[2]
                    if (kv[1] == "p99_us" && kv[2] > p99) p99 = kv[2]
                }
            }
            END {
                # Every loadgen saw the same server over about the same
                # window: its CPU use is their mean, not their sum.
                cpu_pct = v["server_cpu_pct"] / n
                printf "mode=echo loadgens=%d conns=%d size=%d msgs_per_s=%.0f errors=%d p99_us=%.1f server_cpu_us_per_msg=%.3f server_cpu_pct=%.1f\n",
                    n, v["conns"], v["size"] / n, v["msgs_per_s"], v["errors"], p99,
                    cpu_pct * 1e4 / v["msgs_per_s"], cpu_pct
            }'
    fi
    rm -f "${files[@]}"
}

# $1 = scenario name, $2 = variants ("name:kind:count:server cores"), rest =
# measure's arguments.
scenario() {
    local name=$1 variants=($2)
    shift 2
    local n=${#variants[@]}
    for r in $(seq "$rounds"); do
        for i in $(seq 0 $((n - 1))); do
            # Rotate the order each round, so that no variant always runs
            # first (on a cold machine) or right after the same other one.
            local v=${variants[$(((i + r - 1) % n))]}
            local sys kind count pin
            IFS=: read -r sys kind count pin <<<"$v"
            server_cmd "$kind" "$count"
            start_server "$pin" "${cmd[@]}"
            line=$(measure "$@")
            stop_server
            echo "$name $sys round=$r $line" | tee -a "$out"
        done
    done
}

if [ -z "$counts" ]; then
    [ "${#cpus[@]}" -eq 2 ] ||
        echo "note: made for 2 cores, this machine has ${#cpus[@]}: see --scaling" >&2
    variants="em1:em:1: mt2:mt:2: rp2:rp:2:"
    if [ -n "$have_reactors" ]; then
        variants="em1:em:1: em2:em:2: mt2:mt:2: rp2:rp:2:"
    else
        echo "note: echo_server --help does not mention --reactors: leaving em2 out" >&2
    fi
    echo "note: nothing pinned (the 2-thread servers need both cores; loadgen shares them)" >&2
    # One unpinned loadgen.
    scenario echo "$variants" "$conns_per_k" ""
    echo
    echo "medians, and ratios:"
    python3 - "$out" <<'PY'
import sys, statistics, collections
rows = collections.defaultdict(lambda: collections.defaultdict(list))
for line in open(sys.argv[1]):
    parts = line.split()
    for kv in parts[3:]:
        k, _, v = kv.partition('=')
        try:
            x = float(v)
        except ValueError:
            continue
        rows[k][parts[1]].append(x)
med = {k: {s: statistics.median(v) for s, v in d.items()} for k, d in rows.items()}
systems = [s for s in ('em1', 'em2', 'mt2', 'rp2') if s in med['msgs_per_s']]
for k in ('msgs_per_s', 'server_cpu_us_per_msg', 'server_cpu_pct', 'p99_us'):
    print(f"{k:22} " + "  ".join(f"{s}={med[k][s]:12.3f}" for s in systems if s in med.get(k, {})))
def ratio(k, a, b, label):
    d = med.get(k, {})
    if a in d and b in d and d[b]:
        print(f"{label:40} {d[a] / d[b]:6.3f}")
    else:
        missing = ' and '.join(s for s in (a, b) if s not in d)
        print(f"{label:40}    n/a ({missing} not run)")
ratio('msgs_per_s', 'em2', 'mt2', 'msgs/s em2/mt2')
ratio('msgs_per_s', 'em2', 'rp2', 'msgs/s em2/rp2')
ratio('server_cpu_us_per_msg', 'em2', 'mt2', 'CPU/msg em2/mt2')
ratio('server_cpu_us_per_msg', 'em2', 'rp2', 'CPU/msg em2/rp2')
ratio('server_cpu_us_per_msg', 'em2', 'em1', 'CPU/msg em2/em1 (per-reactor efficiency)')
ratio('msgs_per_s', 'rp2', 'mt2', 'msgs/s rp2/mt2')
ratio('server_cpu_us_per_msg', 'rp2', 'mt2', 'CPU/msg rp2/mt2')
PY
    exit 0
fi

for k in $counts; do
    left=$((${#cpus[@]} - k))
    if [ "$left" -lt 1 ]; then
        echo "note: skipping k=$k: ${#cpus[@]} cores leave none for the load generator" >&2
        continue
    fi
    loadgens=$((k < left ? k : left))
    server_cores=$(IFS=,; echo "${cpus[*]:0:k}")
    variants=
    if [ -n "$have_reactors" ] || [ "$k" -eq 1 ]; then
        variants="em:em:$k:$server_cores "
    else
        echo "note: echo_server --help does not mention --reactors: leaving em out at k=$k" >&2
    fi
    variants+="mt:mt:$k:$server_cores rp:rp:$k:$server_cores"
    [ "$loadgens" -ge "$k" ] ||
        echo "note: k=$k: only $loadgens cores left for loadgen; it may be what limits msgs/s" >&2
    scenario "k=$k" "$variants" $((conns_per_k * k)) "${cpus[@]:k:loadgens}"
done

echo
echo "medians per reactor (or thread) count k; em = echo_server, mt = tokio_echo_mt,"
echo "rp = tokio_echo_reuseport; em/k1 = em's CPU per message over its k = 1 value:"
python3 - "$out" <<'PY'
import sys, statistics, collections
rows = collections.defaultdict(lambda: collections.defaultdict(list))
for line in open(sys.argv[1]):
    parts = line.split()
    k = int(parts[0].split('=')[1])
    for kv in parts[3:]:
        key, _, v = kv.partition('=')
        try:
            x = float(v)
        except ValueError:
            continue
        rows[(k, key)][parts[1]].append(x)
def med(k, key, s):
    v = rows.get((k, key), {}).get(s)
    return statistics.median(v) if v else None
ks = sorted({k for k, _ in rows})
em_k1 = med(1, 'server_cpu_us_per_msg', 'em')
print(f"{'k':>3} {'loadgens':>8} {'conns':>6} | {'msgs/s em':>11} {'mt':>11} {'rp':>11}"
      f" | {'us/msg em':>9} {'mt':>7} {'rp':>7} | {'em/mt':>6} {'em/rp':>6} {'em/k1':>6}")
for k in ks:
    lg = med(k, 'loadgens', 'mt') or 1
    conns = med(k, 'conns', 'mt') or 0
    m = {s: med(k, 'msgs_per_s', s) for s in ('em', 'mt', 'rp')}
    c = {s: med(k, 'server_cpu_us_per_msg', s) for s in ('em', 'mt', 'rp')}
    def f(x, w, p):
        return f"{x:{w}.{p}f}" if x is not None else f"{'-':>{w}}"
    def r(a, b):
        return f"{a / b:6.3f}" if a is not None and b else f"{'-':>6}"
    print(f"{k:3d} {lg:8.0f} {conns:6.0f} | {f(m['em'], 11, 0)} {f(m['mt'], 11, 0)} {f(m['rp'], 11, 0)}"
          f" | {f(c['em'], 9, 3)} {f(c['mt'], 7, 3)} {f(c['rp'], 7, 3)}"
          f" | {r(m['em'], m['mt'])} {r(m['em'], m['rp'])} {r(c['em'], em_k1)}")
PY
