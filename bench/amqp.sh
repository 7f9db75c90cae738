#!/usr/bin/env bash
# RabbitMQ publish and consume rates of em-amqp's `amqp_bench` against two
# baselines with the same command line: lapin on a current-thread tokio
# runtime (bench/baselines/amqp/lapin_bench) and Ruby's amqp gem on
# EventMachine (bench/baselines/amqp/amqp_bench.rb). One run: a RabbitMQ of
# its own (free loopback port, throw-away directory) pinned to core 0, the
# clients to core 1, the variants in alternating order, several rounds;
# prints every line, then the medians and the ratios of em to the others.
#
#   bench/amqp.sh [ROUNDS] [MESSAGES]     (defaults: 5 rounds, 50000)
#
# Each run: `publish` puts MESSAGES messages of $size bytes on a fresh queue
# with publisher confirms, at most $window unconfirmed; then `consume`
# takes exactly those with basic.qos $prefetch, acking each singly. Rates
# are the clients' own (messages per second). CPU per message is the
# client's user + system time (GNU time's %U %S, 10 ms resolution) over
# MESSAGES, in µs; it includes the process's start (Ruby's: ~0.15 s to load
# the interpreter and gems).
#
# em's binary is $EM_AMQP_BENCH, or built here from em-examples; lapin's is
# built here (into $LAPIN_TARGET_DIR, default $CARGO_TARGET_DIR/lapin_bench).
# A variant whose client is missing is skipped, with a message.
set -euo pipefail
cd "$(dirname "$0")/.."
rounds=${1:-5}
messages=${2:-50000}
size=64
window=1000
prefetch=1000

[ -x /usr/lib/rabbitmq/bin/rabbitmq-server ] || { echo "needs rabbitmq-server (Debian: apt-get install rabbitmq-server)" >&2; exit 1; }
[ -x /usr/bin/time ] || { echo "needs GNU time (Debian: apt-get install time)" >&2; exit 1; }
target=$(realpath -m "${CARGO_TARGET_DIR:-target}")

variants=""
if [ -n "${EM_AMQP_BENCH:-}" ]; then
    em_bin=$EM_AMQP_BENCH
elif [ -e em-examples/src/bin/amqp_bench.rs ]; then
    cargo build --release -q -p em-examples --bin amqp_bench
    em_bin=$target/release/amqp_bench
else
    em_bin=$target/release/amqp_bench
fi
if [ -x "$em_bin" ]; then variants="$variants em"; else echo "(no $em_bin: no em variant)" >&2; fi
lapin_target=$(realpath -m "${LAPIN_TARGET_DIR:-$target/lapin_bench}")
(cd bench/baselines/amqp/lapin_bench && CARGO_TARGET_DIR=$lapin_target cargo build --release -q)
lapin_bin=$lapin_target/release/lapin_bench
if [ -x "$lapin_bin" ]; then variants="$variants lapin"; else echo "(no $lapin_bin: no lapin variant)" >&2; fi
if ruby -e "require 'amqp'" 2>/dev/null; then
    variants="$variants ruby"
else
    echo "(ruby-amqp not installed: no ruby variant)" >&2
fi
[ -n "$variants" ] || { echo "no client to run" >&2; exit 1; }

dir=$(mktemp -d)
out=$dir/results
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
port=$(free_port)
echo '[].' >"$dir/plugins"
# rabbitmq-server is a shell script with beam.smp as its child: setsid puts
# them in a process group of their own, killed as a whole at exit.
RABBITMQ_NODENAME=em-bench-amqp-$$@localhost RABBITMQ_NODE_IP_ADDRESS=127.0.0.1 \
    RABBITMQ_NODE_PORT=$port RABBITMQ_DIST_PORT=$(free_port) \
    RABBITMQ_MNESIA_BASE=$dir/mnesia RABBITMQ_LOG_BASE=$dir/log \
    RABBITMQ_ENABLED_PLUGINS_FILE=$dir/plugins RABBITMQ_FEATURE_FLAGS_FILE=$dir/ff \
    RABBITMQ_PLUGINS_EXPAND_DIR=$dir/pe RABBITMQ_CONF_ENV_FILE=$dir/env.conf \
    RABBITMQ_CONFIG_FILE=$dir/rabbitmq HOME=$dir \
    taskset -c 0 setsid /usr/lib/rabbitmq/bin/rabbitmq-server >"$dir/broker.log" 2>&1 &
broker=$!
trap 'kill -9 -- -$broker 2>/dev/null || true; wait $broker 2>/dev/null || true; rm -rf "$dir"' EXIT
for _ in $(seq 600); do
    grep -qs 'Starting broker... completed' "$dir/broker.log" && break
    kill -0 $broker 2>/dev/null || break
    sleep 0.1
done
grep -qs 'Starting broker... completed' "$dir/broker.log" || { cat "$dir/broker.log" >&2; echo "RabbitMQ did not start" >&2; exit 1; }
url="amqp://guest:guest@127.0.0.1:$port/%2f"

client() { # $1 = variant, rest = arguments; sets rate and cpu
    local variant=$1 line
    shift
    case $variant in
        em) set -- "$em_bin" "$@" ;;
        lapin) set -- "$lapin_bin" "$@" ;;
        ruby) set -- ruby bench/baselines/amqp/amqp_bench.rb "$@" ;;
    esac
    line=$(/usr/bin/time -f '%U %S' -o "$dir/time" taskset -c 1 "$@")
    rate=$(sed -n 's/.* rate=\([0-9]*\).*/\1/p' <<<"$line")
    [ -n "$rate" ] || { echo "$variant: unexpected output: $line" >&2; exit 1; }
    cpu=$(awk -v m="$messages" '{ printf "%.2f", ($1 + $2) * 1e6 / m }' "$dir/time")
}

for round in $(seq "$rounds"); do
    order=$variants
    [ $((round % 2)) -eq 0 ] && order=$(tr ' ' '\n' <<<"$variants" | tac | tr '\n' ' ')
    for variant in $order; do
        queue=bench-$variant-$round
        client "$variant" publish --amqp "$url" --queue "$queue" --messages "$messages" --size "$size" --window "$window"
        echo "round $round $variant publish rate=$rate cpu_us_per_msg=$cpu" | tee -a "$out"
        client "$variant" consume --amqp "$url" --queue "$queue" --messages "$messages" --prefetch "$prefetch"
        echo "round $round $variant consume rate=$rate cpu_us_per_msg=$cpu" | tee -a "$out"
    done
done

echo
echo "medians ($messages messages of $size bytes, window $window, prefetch $prefetch):"
python3 - "$out" <<'PY'
import sys, statistics, collections
rows = collections.defaultdict(lambda: collections.defaultdict(list))
for line in open(sys.argv[1]):
    _, _, variant, phase, rate, cpu = line.split()
    rows[(phase, 'msgs_per_s')][variant].append(float(rate.split('=')[1]))
    rows[(phase, 'cpu_us_per_msg')][variant].append(float(cpu.split('=')[1]))
for (phase, metric), d in sorted(rows.items(), reverse=True):
    m = {v: statistics.median(x) for v, x in d.items()}
    cells = [f"{v}={m[v]:9.1f}" for v in ('em', 'lapin', 'ruby') if v in m]
    for base in ('lapin', 'ruby'):
        if 'em' in m and base in m and m[base]:
            cells.append(f"em/{base}={m['em'] / m[base]:.2f}")
    print(f"{phase:8} {metric:15} " + "  ".join(cells))
PY
