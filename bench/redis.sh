#!/usr/bin/env bash
# Redis pub/sub through em-redis's Bridge against redis-benchmark's
# PUBLISH, in one run: redis-server pinned to core 0, the clients to core
# 1, the three variants alternating, several rounds; prints every line, then
# the medians and the ratio.
#
#   bench/redis.sh [ROUNDS] [MESSAGES]     (defaults: 5 rounds, 200000)
#
# bridge: `redis_bridge_bench` publishes MESSAGES messages of 16 bytes, 64
#         in flight, through an em_redis::Bridge, and counts each back from
#         the local em::Channel the bridge feeds (one process does both
#         sides: publish, and receive through the subscription).
# bridge-2p: the same two sides in two processes, as redis-benchmark and
#         redis-cli below: `redis_bridge_bench --role receive` counts the
#         messages through an em_redis::Bridge (its rate: first message to
#         last) while `--role publish` publishes them with an
#         em_redis::Client in pipelined batches of 64.
# redis-benchmark: `redis-benchmark -c 1 -P 64 -n MESSAGES PUBLISH` of the
#         same 16 bytes on the same channel, while `redis-cli SUBSCRIBE`
#         receives them (so Redis does the same fan-out work).
# The figure is messages per second; the server's CPU per message (from
# /proc/PID/stat) is printed beside it.
set -euo pipefail
cd "$(dirname "$0")/.."
rounds=${1:-5}
messages=${2:-200000}
cargo build --release -q -p em-examples --bin redis_bridge_bench
bin=${CARGO_TARGET_DIR:-target}/release
dir=$(mktemp -d)
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
taskset -c 0 redis-server --port "$port" --bind 127.0.0.1 --save "" --appendonly no --dir "$dir" >"$dir/log" 2>&1 &
server=$!
trap 'kill $server $(jobs -p) 2>/dev/null || true; rm -rf "$dir"' EXIT
for _ in $(seq 100); do redis-cli -p "$port" ping >/dev/null 2>&1 && break; sleep 0.05; done
cpu_ticks() { awk '{print $14 + $15}' "/proc/$server/stat"; }
out=$(mktemp)
for round in $(seq "$rounds"); do
    for variant in bridge bridge-2p redis-benchmark; do
        before=$(cpu_ticks)
        if [ "$variant" = bridge ]; then
            line=$(taskset -c 1 "$bin/redis_bridge_bench" --redis "127.0.0.1:$port" --messages "$messages" --window 64 --size 16)
            rate=$(sed -n 's/.*msgs_per_s=\([0-9]*\).*/\1/p' <<<"$line")
        elif [ "$variant" = bridge-2p ]; then
            : >"$dir/receiver"
            taskset -c 1 "$bin/redis_bridge_bench" --redis "127.0.0.1:$port" --role receive --messages "$messages" --size 16 >"$dir/receiver" &
            receiver=$!
            until grep -q READY "$dir/receiver"; do :; done
            taskset -c 1 "$bin/redis_bridge_bench" --redis "127.0.0.1:$port" --role publish --messages "$messages" --window 64 --size 16 >/dev/null
            wait $receiver
            rate=$(sed -n 's/^RECEIVE.*msgs_per_s=\([0-9]*\).*/\1/p' "$dir/receiver")
        else
            taskset -c 1 redis-cli -p "$port" subscribe em-bench >/dev/null &
            sub=$!
            until [ "$(redis-cli -p "$port" pubsub numsub em-bench | tail -1)" = 1 ]; do :; done
            line=$(taskset -c 1 redis-benchmark -p "$port" -c 1 -P 64 -n "$messages" -q PUBLISH em-bench 0123456789abcdef 2>/dev/null | tr '\r' '\n' | grep 'requests per second' | tail -1)
            kill $sub; wait $sub 2>/dev/null || true
            rate=$(sed -n 's/.*: \([0-9.]*\) requests per second.*/\1/p' <<<"$line" | cut -d. -f1)
        fi
        after=$(cpu_ticks)
        server_us=$(awk -v t=$((after - before)) -v m="$messages" 'BEGIN { printf "%.2f", t * 10000 / m }')
        echo "round $round $variant msgs_per_s=$rate server_cpu_us_per_msg=$server_us" | tee -a "$out"
    done
done
median() { sort -n | awk '{a[NR]=$1} END { print (NR % 2) ? a[(NR+1)/2] : (a[NR/2] + a[NR/2+1]) / 2 }'; }
b=$(grep ' bridge ' "$out" | sed 's/.*msgs_per_s=\([0-9]*\).*/\1/' | median)
b2=$(grep ' bridge-2p ' "$out" | sed 's/.*msgs_per_s=\([0-9]*\).*/\1/' | median)
r=$(grep ' redis-benchmark ' "$out" | sed 's/.*msgs_per_s=\([0-9]*\).*/\1/' | median)
echo "median msgs/s: bridge $b, bridge-2p $b2, redis-benchmark $r"
echo "ratios: bridge/redis-benchmark $(awk -v b="$b" -v r="$r" 'BEGIN { printf "%.2f", b / r }'), bridge-2p/redis-benchmark $(awk -v b="$b2" -v r="$r" 'BEGIN { printf "%.2f", b / r }')"
rm -f "$out"
