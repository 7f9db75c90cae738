#!/usr/bin/env bash
# Measures em-http's client: `http_get` against the hyper baseline
# (`hyper_get`, hyper 1.x's `client::conn::http1` on a current-thread
# runtime), against em-http-request (EventMachine's HTTP client, in Ruby:
# bench/baselines/em_http_request/get.rb) and against curl, all fetching
# from one local nginx (`worker_processes 1`) pinned to core 0, the client
# pinned to core 1, the variants alternating (in a rotating order) within
# each of several rounds; prints every line, then the medians and the
# ratios.
#
#   bench/http_client.sh [ROUNDS] [REQUESTS]
#
# (defaults: 5 rounds, 200,000 requests; em-http-request makes a tenth of
# them, being slower, which requests/s allows for). Needs the Debian
# packages nginx-light (or any nginx), ruby-em-http-request and curl; the
# clients are built here (release) into $CARGO_TARGET_DIR (default
# target/). A variant that cannot be had is left out with a note. nginx's
# configuration, files and logs go to a temporary directory, removed at the
# end.
#
# Scenarios:
#   get-1k    GET a 1 KiB file, 50 keep-alive requests in flight (one per
#             connection): requests/s, latency, and the client's CPU time
#             (utime + stime of the whole process, from /proc, printed by
#             each client itself) per request: em (`http_get --no-hash`:
#             like the others, it counts the body's bytes without hashing
#             them) and hyper
#   get-1k-ruby  the same, em and em-http-request (apart from the above,
#             see below)
#   get-1g    one GET of a 1 GiB file (sparse, so nginx reads no disk):
#             MB/s: em (`http_get --no-hash`), em with the body's SHA-256
#             (`http_get`, informative), curl -o /dev/null
set -euo pipefail
cd "$(dirname "$0")/.."
rounds=${1:-5}
requests=${2:-200000}
conns=50
ruby_requests=$((requests / 10))
nginx=${NGINX:-$(command -v nginx || echo /usr/sbin/nginx)}
[ -x "$nginx" ] || { echo "nginx is not installed (apt-get install nginx-light)" >&2; exit 1; }
command -v curl >/dev/null || { echo "curl is not installed" >&2; exit 1; }
cargo build --release -q -p em-examples --bin http_get --bin hyper_get
bin=${CARGO_TARGET_DIR:-target}/release
have_ruby=1
if ! ruby -e 'require "em-http"' 2>/dev/null; then
    echo "note: em-http-request is not installed (apt-get install ruby-em-http-request): leaving it out" >&2
    have_ruby=
fi

tmp=$(mktemp -d)
out=$tmp/results
nginx_pid=
stop_nginx() {
    [ -n "$nginx_pid" ] || return 0
    kill -QUIT "$nginx_pid" 2>/dev/null || true
    for _ in $(seq 100); do
        kill -0 "$nginx_pid" 2>/dev/null || break
        sleep 0.05
    done
    kill -KILL "$nginx_pid" 2>/dev/null || true
    nginx_pid=
}
trap 'stop_nginx; rm -rf "$tmp"' EXIT

port=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
mkdir -p "$tmp/www"
head -c 1024 /dev/urandom >"$tmp/www/1k"
truncate -s 1G "$tmp/www/1g"
# Run as root, nginx's worker is `nobody`: it must reach the files.
chmod 755 "$tmp" "$tmp/www"
chmod 644 "$tmp/www/1k" "$tmp/www/1g"
cat >"$tmp/nginx.conf" <<EOF
worker_processes 1;
daemon off;
pid $tmp/nginx.pid;
error_log $tmp/error.log warn;
events { worker_connections 1024; }
http {
    access_log off;
    sendfile on;
    tcp_nopush on;
    tcp_nodelay on;
    # A benchmark's connections live for the whole run (nginx closes a
    # keep-alive connection after 1,000 requests by default).
    keepalive_requests 100000000;
    keepalive_timeout 60s;
    client_body_temp_path $tmp/body;
    proxy_temp_path $tmp/proxy;
    fastcgi_temp_path $tmp/fastcgi;
    uwsgi_temp_path $tmp/uwsgi;
    scgi_temp_path $tmp/scgi;
    types { application/octet-stream 1k 1g; }
    server {
        listen 127.0.0.1:$port;
        root $tmp/www;
    }
}
EOF
# The master and its one worker both on core 0 (the worker inherits the
# affinity).
taskset -c 0 "$nginx" -p "$tmp" -c "$tmp/nginx.conf" -e "$tmp/error.log" &
nginx_pid=$!
for _ in $(seq 100); do
    curl -sf -o /dev/null "http://127.0.0.1:$port/1k" && break
    sleep 0.05
done
curl -sf -o /dev/null "http://127.0.0.1:$port/1k" || { echo "nginx did not start:" >&2; cat "$tmp/error.log" >&2; exit 1; }
small=http://127.0.0.1:$port/1k
large=http://127.0.0.1:$port/1g

# The second line of a client's summary table as key=value pairs.
summary() {
    awk 'NR == 2 {
        printf "req_per_s=%s client_cpu_us_per_req=%s p50_ms=%s p99_ms=%s mb_per_s=%s failed=%s\n",
            $4, $10, $6, $8, $5, $2
    }'
}

measure() { # $1 = scenario, $2 = variant
    case $1/$2 in
        get-1k/em | get-1k-ruby/em)
            taskset -c 1 "$bin/http_get" --quiet --no-hash --concurrency "$conns" --repeat "$requests" "$small" | summary
            ;;
        get-1k/hyper) taskset -c 1 "$bin/hyper_get" --concurrency "$conns" --repeat "$requests" "$small" | summary ;;
        get-1k-ruby/ruby)
            taskset -c 1 ruby bench/baselines/em_http_request/get.rb "$small" "$conns" "$ruby_requests" | summary
            ;;
        get-1g/em) taskset -c 1 "$bin/http_get" --quiet --no-hash "$large" | summary ;;
        get-1g/em-sha256) taskset -c 1 "$bin/http_get" --quiet "$large" | summary ;;
        get-1g/curl)
            taskset -c 1 curl -sf -o /dev/null -w '%{speed_download} %{size_download}\n' "$large" |
                awk '{ if ($2 != 1073741824) { print "curl: short body" > "/dev/stderr"; exit 1 }
                       printf "mb_per_s=%.1f\n", $1 / 1e6 }'
            ;;
    esac
}

scenario() { # $1 = name, $2 = variants (those not had are dropped)
    local name=$1 variants=() v
    for v in $2; do
        [ "$v" = ruby ] && [ -z "$have_ruby" ] && continue
        variants+=("$v")
    done
    local n=${#variants[@]}
    # One unmeasured run each first: nginx's and the page cache's warm-up.
    for v in "${variants[@]}"; do measure "$name" "$v" >/dev/null; done
    for r in $(seq "$rounds"); do
        for i in $(seq 0 $((n - 1))); do
            # Rotate the order each round, so that no variant always runs
            # first or right after the same other one.
            local sys=${variants[$(((i + r - 1) % n))]}
            line=$(measure "$name" "$sys")
            echo "$name $sys round=$r $line" | tee -a "$out"
        done
    done
}

# em against hyper, then em against em-http-request: apart, so that no
# client runs right after Ruby's (whose 50 connections closing leave nginx
# and the kernel work for the next run) more often than another.
scenario get-1k "em hyper"
scenario get-1k-ruby "em ruby"
scenario get-1g "em em-sha256 curl"

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
keys = {
    'get-1k': (['req_per_s', 'client_cpu_us_per_req', 'p50_ms', 'p99_ms', 'failed'], ['hyper']),
    'get-1k-ruby': (['req_per_s', 'client_cpu_us_per_req', 'failed'], ['ruby']),
    'get-1g': (['mb_per_s'], ['em-sha256', 'curl']),
}
for name, (ks, others) in keys.items():
    for k in ks:
        d = rows.get((name, k))
        if not d:
            continue
        if k == 'failed':
            # Any failed request at all is worth a look: the total.
            print(f"{name:11} {'failed (total)':22} " + "  ".join(
                f"{s}={int(sum(v)):10d}" for s, v in d.items()))
            continue
        em = statistics.median(d['em']) if 'em' in d else None
        cells = [f"em={em:12.3f}" if em is not None else f"em={'n/a':>12}"]
        for other in others:
            if other in d:
                o = statistics.median(d[other])
                ratio = em / o if em is not None and o else float('nan')
                cells.append(f"{other}={o:12.3f} em/{other}={ratio:6.3f}")
        print(f"{name:11} {k:22} " + "  ".join(cells))
PY
