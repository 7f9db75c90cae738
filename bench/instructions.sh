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
# With MODE=tls-echo (50 connections x 64 B) or MODE=tls-stream (one
# connection, 16 KiB chunks) the servers are TLS echo servers started with
# `--tls-self-signed`, and loadgen talks TLS (`--insecure`); the 50 or 1
# handshakes are counted too, the same for every server; MODE=tls-handshake
# counts per handshake (8 loadgen workers, each a new connection, a
# handshake and one 64 B echo):
#
#   MODE=tls-stream bench/instructions.sh target/release/echo_server target/release/tokio_tls_echo
#
# With MODE=http the servers are HTTP servers answering `GET /` and the
# load is wrk (50 keep-alive connections, 5 s; Debian package `wrk`); the
# count is wrk's requests, per request:
#
#   MODE=http bench/instructions.sh target/release/http_hello target/release/hyper_hello
#
# MODE=http-pipeline is the same with 16 requests per write
# (bench/http/pipeline.lua).
#
# SERVER_ARGS adds arguments to every server: the cost per message of two
# reactors against one (callgrind counts every thread's instructions, so
# this is free of the scheduling noise of two reactors sharing two cores
# with the load):
#
#   bench/instructions.sh target/release/echo_server
#   SERVER_ARGS="--reactors 2" bench/instructions.sh target/release/echo_server
#
# Needs valgrind (Debian package `valgrind`).
set -euo pipefail
cd "$(dirname "$0")/.."
mode=${MODE:-echo}
server_args=()
# SERVER_ARGS: more arguments for every server (say, `--reactors 2`).
read -r -a extra_args <<< "${SERVER_ARGS:-}"
case $mode in
    echo | udp) load=("$mode" --conns 50 --size 64) ;;
    tls-echo) load=(echo --tls --insecure --conns 50 --size 64) server_args=(--tls-self-signed) ;;
    tls-stream) load=(stream --tls --insecure --conns 1 --size 16384) server_args=(--tls-self-signed) ;;
    tls-handshake) load=(handshake --tls --insecure --conns 8 --size 64) server_args=(--tls-self-signed) ;;
    http | http-pipeline) load=() ;;
    *) echo "MODE must be echo, udp, tls-echo, tls-stream, tls-handshake, http or http-pipeline, not $mode" >&2; exit 1 ;;
esac
loadgen=target/release/loadgen
[ -x "$loadgen" ] || cargo build --release -q -p em-examples --bin loadgen
for server in "$@"; do
    out=$(mktemp -u /tmp/em-callgrind.XXXXXX)
    log=$(mktemp)
    valgrind --tool=callgrind --callgrind-out-file="$out" "$server" --listen 127.0.0.1:0 "${server_args[@]}" "${extra_args[@]}" >"$log" 2>/dev/null &
    pid=$!
    addr=
    for _ in $(seq 600); do
        addr=$(sed -n 's/^listening on //p' "$log")
        [ -n "$addr" ] && break
        sleep 0.1
    done
    [ -n "$addr" ] || { echo "$server did not start" >&2; exit 1; }
    if [ "$mode" = http ] || [ "$mode" = http-pipeline ]; then
        script=()
        [ "$mode" = http-pipeline ] && script=(-s bench/http/pipeline.lua)
        line="msgs=$(wrk -t1 -c50 -d5s "${script[@]}" "http://$addr/" | sed -n 's/^ *\([0-9]*\) requests in.*/\1/p')"
    else
        line=$("$loadgen" "${load[@]}" --duration 5 --warmup 0 --addr "$addr")
    fi
    kill -TERM "$pid"
    wait "$pid" || true
    msgs=$(echo "$line" | grep -oE '(msgs|handshakes)=[0-9]*' | head -1 | cut -d= -f2)
    ir=$(grep -E '^(summary|totals):' "$out" | head -1 | awk '{print $2}')
    python3 -c "print(f'$(basename "$server") msgs=$msgs instructions=$ir instructions_per_msg={$ir / $msgs:.1f}')"
    rm -f "$out" "$log"
done
