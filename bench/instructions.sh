#!/usr/bin/env bash
# User-space instructions per echoed message, counted by valgrind's
# callgrind: repeatable on a shared machine where CPU time per message
# swings by ±20 % between rounds. Each server binary runs under callgrind
# while `loadgen echo` (50 connections x 64 B, 5 s) drives it; the total
# instruction count divided by the messages echoed is printed. The kernel's
# share (about 90 % of an echo server's CPU on loopback) is not counted, so
# this isolates what the server's own code costs.
#
#   bench/instructions.sh SERVER_BINARY...
#
# For example, today's echo_server against a previous build and the
# raw-tokio baseline:
#
#   cargo build --release -p em-examples --bin echo_server --bin tokio_echo --bin loadgen
#   bench/instructions.sh /tmp/echo_server_prev target/release/echo_server target/release/tokio_echo
#
# Each binary must take `--listen ADDR` and print `listening on ADDR`.
# With MODE=udp the servers are UDP echo servers and the load is `loadgen
# udp` (50 sockets x 64 B, one datagram in flight each):
#
#   MODE=udp bench/instructions.sh target/release/udp_echo target/release/tokio_udp_echo
#
# Needs valgrind (Debian package `valgrind`).
set -euo pipefail
cd "$(dirname "$0")/.."
mode=${MODE:-echo}
case $mode in
    echo | udp) ;;
    *) echo "MODE must be echo or udp, not $mode" >&2; exit 1 ;;
esac
loadgen=target/release/loadgen
[ -x "$loadgen" ] || cargo build --release -q -p em-examples --bin loadgen
for server in "$@"; do
    out=$(mktemp -u /tmp/em-callgrind.XXXXXX)
    log=$(mktemp)
    valgrind --tool=callgrind --callgrind-out-file="$out" "$server" --listen 127.0.0.1:0 >"$log" 2>/dev/null &
    pid=$!
    addr=
    for _ in $(seq 600); do
        addr=$(sed -n 's/^listening on //p' "$log")
        [ -n "$addr" ] && break
        sleep 0.1
    done
    [ -n "$addr" ] || { echo "$server did not start" >&2; exit 1; }
    line=$("$loadgen" "$mode" --conns 50 --size 64 --duration 5 --warmup 0 --addr "$addr")
    kill -TERM "$pid"
    wait "$pid" || true
    msgs=$(echo "$line" | grep -o 'msgs=[0-9]*' | cut -d= -f2)
    ir=$(grep -E '^(summary|totals):' "$out" | head -1 | awk '{print $2}')
    python3 -c "print(f'$(basename "$server") msgs=$msgs instructions=$ir instructions_per_msg={$ir / $msgs:.1f}')"
    rm -f "$out" "$log"
done
