#!/usr/bin/env bash
# Redis pub/sub through em-redis's Bridge against redis-benchmark's
# PUBLISH and against Ruby on EventMachine, in one run: redis-server pinned
# to core 0, the clients to core 1, the variants alternating, several
# rounds; prints every line, then the medians and the ratios.
#
#   bench/redis.sh [ROUNDS] [MESSAGES]     (defaults: 5 rounds, 1000000)
#
# bridge: `redis_bridge_bench` publishes MESSAGES messages of 16 bytes, 64
#         in flight, through an em_redis::Bridge, and counts each back from
#         the local em::Channel the bridge feeds (one process does both
#         sides: publish, and receive through the subscription). Each batch
#         is sent from the callback of the last reply of the one before, as
#         em-hiredis programs (and the Ruby baseline) do.
# bridge-2p: the same two sides in two processes, as redis-benchmark and
#         redis-cli below: `redis_bridge_bench --role receive` counts the
#         messages through an em_redis::Bridge (its rate: first message to
#         last) while `--role publish` publishes them with an
#         em_redis::Client in pipelined batches of 64.
# client: em's publisher in redis-benchmark's place: `redis_bridge_bench
#         --role publish` (an em_redis::Client, batches of 64) while
#         `redis-cli SUBSCRIBE` receives, as in `redis-benchmark` below.
# bridge-rb: em's receiver in redis-cli's place: the bridge receiving what redis-benchmark publishes:
#         `redis_bridge_bench --role receive --unnumbered` (it only counts:
#         redis-benchmark's payload carries no sequence number) while the
#         redis-benchmark command below publishes; the figure is the
#         receiver's (first message to last), redis-benchmark's own rate is
#         printed beside it as publisher_msgs_per_s.
# redis-benchmark: `redis-benchmark -c 1 -P 64 -n MESSAGES PUBLISH` of the
#         same 16 bytes on the same channel, while `redis-cli SUBSCRIBE`
#         receives them (so Redis does the same fan-out work).
# ruby:   bench/baselines/redis/em_redis_bench.rb, the job of `bridge` in
#         Ruby on EventMachine (redis-rb's synchrony driver, hiredis's
#         reader, em-synchrony fibers: em-hiredis's design; em-hiredis itself
#         is not packaged in Debian): one reactor, a subscriber connection
#         and a publisher pipelining batches of 64. Only if its Debian
#         packages are installed (else skipped, with their names on stderr).
# The figure is messages per second; the server's CPU per message (from
# /proc/PID/stat) is printed beside it, and for the variants that put an
# em side in a C tool's place, each side's CPU per message (GNU time for
# publishers, /proc for redis-cli, the receiver's own count for em's) with
# their medians at the end.
set -euo pipefail
cd "$(dirname "$0")/.."
[ -x /usr/bin/time ] || { echo "needs GNU time (Debian: apt-get install time)" >&2; exit 1; }
rounds=${1:-5}
messages=${2:-1000000}
# redis-benchmark -P 64 sends whole batches: with another count it sends a
# few more messages than the receivers wait for.
(( messages % 64 == 0 )) || { echo "MESSAGES must be a multiple of 64" >&2; exit 2; }
cargo build --release -q -p em-examples --bin redis_bridge_bench
bin=${CARGO_TARGET_DIR:-target}/release
variants="bridge bridge-2p client bridge-rb redis-benchmark"
if ruby -e "require 'em-redis'; require 'redis'; require 'hiredis/reader'; require 'em-synchrony'" >/dev/null 2>&1; then
    variants="$variants ruby"
else
    echo "(Ruby's EventMachine Redis clients not installed: no ruby variant; apt-get install ruby ruby-eventmachine ruby-em-synchrony ruby-redis ruby-hiredis ruby-em-redis)" >&2
fi
dir=$(mktemp -d)
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
taskset -c 0 redis-server --port "$port" --bind 127.0.0.1 --save "" --appendonly no --dir "$dir" >"$dir/log" 2>&1 &
server=$!
trap 'kill $server $(jobs -p) 2>/dev/null || true; rm -rf "$dir"' EXIT
for _ in $(seq 100); do redis-cli -p "$port" ping >/dev/null 2>&1 && break; sleep 0.05; done
cpu_ticks() { awk '{print $14 + $15}' "/proc/$server/stat"; }
ticks_of() { awk '{print $14 + $15}' "/proc/$1/stat"; }
# The user + system seconds GNU time wrote for the last timed client, per
# message, in µs.
timed_us() { awk -v m="$messages" '{ printf "%.2f", ($1 + $2) * 1e6 / m }' "$dir/time"; }
# CPU ticks (10 ms) over the run, per message, in µs.
per_msg_us() { awk -v t="$1" -v m="$messages" 'BEGIN { printf "%.2f", t * 10000 / m }'; }
# redis-cli subscribed to em-bench in the background ($sub), once Redis
# counts it.
cli_subscribe() {
    taskset -c 1 redis-cli -p "$port" subscribe em-bench >/dev/null &
    sub=$!
    until [ "$(redis-cli -p "$port" pubsub numsub em-bench | tail -1)" = 1 ]; do :; done
}
# em's receiver in the background ($receiver, its lines in
# $dir/receiver), once subscribed; extra flags as arguments.
em_receive() {
    : >"$dir/receiver"
    taskset -c 1 "$bin/redis_bridge_bench" --redis "127.0.0.1:$port" --role receive --messages "$messages" --size 16 "$@" >"$dir/receiver" &
    receiver=$!
    until grep -q READY "$dir/receiver"; do :; done
}
# redis-benchmark's PUBLISH under GNU time ($dir/time); prints its rate line.
redis_benchmark() {
    /usr/bin/time -o "$dir/time" -f '%U %S' taskset -c 1 redis-benchmark -p "$port" -c 1 -P 64 -n "$messages" -q PUBLISH em-bench 0123456789abcdef 2>/dev/null | tr '\r' '\n' | grep 'requests per second' | tail -1
}
rb_rate() { sed -n 's/.*: \([0-9.]*\) requests per second.*/\1/p' <<<"$1" | cut -d. -f1; }
out=$(mktemp)
for round in $(seq "$rounds"); do
    for variant in $variants; do
        before=$(cpu_ticks)
        extra=
        if [ "$variant" = bridge ]; then
            line=$(taskset -c 1 "$bin/redis_bridge_bench" --redis "127.0.0.1:$port" --messages "$messages" --window 64 --size 16)
            rate=$(sed -n 's/.*msgs_per_s=\([0-9]*\).*/\1/p' <<<"$line")
        elif [ "$variant" = bridge-2p ]; then
            em_receive
            taskset -c 1 "$bin/redis_bridge_bench" --redis "127.0.0.1:$port" --role publish --messages "$messages" --window 64 --size 16 >/dev/null
            wait $receiver
            rate=$(sed -n 's/^RECEIVE.*msgs_per_s=\([0-9]*\).*/\1/p' "$dir/receiver")
        elif [ "$variant" = client ]; then
            cli_subscribe
            line=$(/usr/bin/time -o "$dir/time" -f '%U %S' taskset -c 1 "$bin/redis_bridge_bench" --redis "127.0.0.1:$port" --role publish --messages "$messages" --window 64 --size 16)
            kill $sub; wait $sub 2>/dev/null || true
            rate=$(sed -n 's/^PUBLISH.*msgs_per_s=\([0-9]*\).*/\1/p' <<<"$line")
            extra=" publisher_cpu_us_per_msg=$(timed_us)"
        elif [ "$variant" = bridge-rb ]; then
            em_receive --unnumbered
            line=$(redis_benchmark)
            wait $receiver
            rate=$(sed -n 's/^RECEIVE.*msgs_per_s=\([0-9]*\).*/\1/p' "$dir/receiver")
            extra=" publisher_msgs_per_s=$(rb_rate "$line")"
            extra="$extra publisher_cpu_us_per_msg=$(timed_us) subscriber_cpu_us_per_msg=$(sed -n 's/^RECEIVE.*cpu_us_per_msg=\([0-9.]*\).*/\1/p' "$dir/receiver")"
        elif [ "$variant" = ruby ]; then
            line=$(taskset -c 1 ruby bench/baselines/redis/em_redis_bench.rb --redis "127.0.0.1:$port" --channel em-bench --messages "$messages" --window 64 --size 16)
            rate=$(sed -n 's/^RUBY.*msgs_per_s=\([0-9]*\).*/\1/p' <<<"$line")
        else
            cli_subscribe
            sub_before=$(ticks_of $sub)
            line=$(redis_benchmark)
            sub_after=$(ticks_of $sub)
            kill $sub; wait $sub 2>/dev/null || true
            rate=$(rb_rate "$line")
            extra=" publisher_cpu_us_per_msg=$(timed_us) subscriber_cpu_us_per_msg=$(per_msg_us $((sub_after - sub_before)))"
        fi
        after=$(cpu_ticks)
        server_us=$(per_msg_us $((after - before)))
        echo "round $round $variant msgs_per_s=$rate$extra server_cpu_us_per_msg=$server_us" | tee -a "$out"
    done
done
median() { sort -n | awk '{a[NR]=$1} END { if (NR == 0) print "n/a"; else print (NR % 2) ? a[(NR+1)/2] : (a[NR/2] + a[NR/2+1]) / 2 }'; }
of() { { grep " $1 " "$out" || true; } | sed 's/.* msgs_per_s=\([0-9]*\).*/\1/' | median; }
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (a == "n/a" || b == "n/a" || b == 0) print "n/a"; else printf "%.2f", a / b }'; }
b=$(of bridge)
b2=$(of bridge-2p)
c=$(of client)
brb=$(of bridge-rb)
r=$(of redis-benchmark)
rb=$(of ruby)
echo "median msgs/s: bridge $b, bridge-2p $b2, client $c, bridge-rb $brb, redis-benchmark $r, ruby $rb"
echo "ratios: bridge/redis-benchmark $(ratio "$b" "$r"), bridge-2p/redis-benchmark $(ratio "$b2" "$r"), client/redis-benchmark $(ratio "$c" "$r"), bridge-rb/redis-benchmark $(ratio "$brb" "$r"), bridge/ruby $(ratio "$b" "$rb")"
# Each round's ratio to the same round's redis-benchmark, then their median:
# steadier than the ratio of medians when the machine's speed drifts
# during the run (the variants of one round run seconds apart).
paired() {
    awk -v v="$1" -v base="$2" '
        { rate = $4; sub(/msgs_per_s=/, "", rate); r[$2, $3] = rate; rounds[$2] = 1 }
        END {
            n = 0
            for (k in rounds) if (((k, v) in r) && ((k, base) in r) && r[k, base] > 0) x[++n] = r[k, v] / r[k, base]
            if (n == 0) { print "n/a"; exit }
            for (i = 2; i <= n; i++) { t = x[i]; for (j = i - 1; j >= 1 && x[j] > t; j--) x[j + 1] = x[j]; x[j + 1] = t }
            printf "%.2f", (n % 2) ? x[(n + 1) / 2] : (x[n / 2] + x[n / 2 + 1]) / 2
        }' "$out"
}
echo "per-round ratios (median): bridge/redis-benchmark $(paired bridge redis-benchmark), bridge-2p/redis-benchmark $(paired bridge-2p redis-benchmark), client/redis-benchmark $(paired client redis-benchmark), bridge-rb/redis-benchmark $(paired bridge-rb redis-benchmark), bridge/ruby $(paired bridge ruby)"
field() { { grep " $1 " "$out" || true; } | sed -n "s/.* $2=\([0-9.]*\).*/\1/p" | median; }
echo "publisher CPU µs/msg (median): em_redis Client $(field client publisher_cpu_us_per_msg), redis-benchmark $(field redis-benchmark publisher_cpu_us_per_msg)"
echo "subscriber CPU µs/msg (median): em_redis Bridge $(field bridge-rb subscriber_cpu_us_per_msg), redis-cli $(field redis-benchmark subscriber_cpu_us_per_msg)"
rm -f "$out"
