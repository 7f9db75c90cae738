# Ruby on EventMachine baseline for bench/redis.sh: the same job and the
# same output shape as `redis_bridge_bench --role both`. One process, one
# EventMachine reactor, two connections: a subscriber subscribed to
# --channel, and a publisher publishing --messages messages of --size
# bytes (the first 8 the little-endian sequence number, padded with 'x',
# as the Rust bench's message()) in pipelined batches of --window (W
# PUBLISHes written, all W replies awaited, then the next batch, as
# `redis-benchmark -P W` does). Each message is counted back on the
# subscription and checked to come in order; the run ends at the N-th
# (bounded: after 60 s it gives up and exits 1).
#
#   ruby em_redis_bench.rb --redis HOST:PORT --channel NAME --messages N \
#       --window W --size B [--publisher em-redis|synchrony]
#
# Prints `RUBY messages=N secs=S msgs_per_s=R cpu_us_per_msg=C` (start:
# the first batch written; end: the N-th message received; CPU: the
# process's, from CLOCK_PROCESS_CPUTIME_ID). Exits 1 if a message is
# missing or out of order.
#
# Libraries (no hand-written Redis protocol): em-hiredis is not packaged
# in Debian 12. The subscriber is its closest packaged equivalent, redis-rb
# 4.8's `:synchrony` driver: an EventMachine::Connection that parses
# replies with hiredis's C reader (em-hiredis's own design), driven from an
# em-synchrony fiber, `Redis#subscribe` with `on.message` (em-redis has no
# pub/sub push handling). The publisher is, by default, the em-redis gem's
# EM::Protocols::Redis (an EventMachine client: replies to deferrable
# callbacks, a pure-Ruby reply parser); `--publisher synchrony` publishes
# instead with the synchrony driver in its own fiber, a batch per
# `Redis#pipelined` (with `read_timeout: 0`: its default 5 s read timeout
# arms an EventMachine timer per reply, and with it a 200000-message run
# died with "ran out of timers"). Measured on the development machine
# (200000 messages of 16 bytes, window 64, one core; 8 runs of the
# synchrony publisher and 11 of em-redis's, alternating): the em-redis
# publisher median about 57000 msgs/s (15-16 us CPU per message), the
# synchrony one about 48000 (17-20 us), so em-redis is the default: the
# baseline is the best Ruby on EventMachine does here.
#
# Debian packages: ruby, ruby-eventmachine, ruby-em-synchrony,
# ruby-redis, ruby-hiredis, ruby-em-redis.

require 'optparse'

# em-redis's source has duplicated hash keys that Ruby warns about when it
# is parsed; the deprecation of redis-rb's synchrony driver is silenced
# below.
verbose, $VERBOSE = $VERBOSE, nil
require 'eventmachine'
require 'em-synchrony'
require 'em-redis'
require 'redis'
$VERBOSE = verbose
Redis.silence_deprecations = true if Redis.respond_to?(:silence_deprecations=)
require 'redis/connection/synchrony'

opts = {
  redis: '127.0.0.1:6379',
  channel: 'em-bench',
  messages: 200_000,
  window: 64,
  size: 16,
  publisher: 'em-redis'
}
OptionParser.new do |o|
  o.on('--redis HOST:PORT') { |v| opts[:redis] = v }
  o.on('--channel NAME') { |v| opts[:channel] = v }
  o.on('--messages N', Integer) { |v| opts[:messages] = v }
  o.on('--window W', Integer) { |v| opts[:window] = v }
  o.on('--size B', Integer) { |v| opts[:size] = v }
  o.on('--publisher KIND', %w[em-redis synchrony]) { |v| opts[:publisher] = v }
end.parse!
abort 'em_redis_bench: --messages and --window must be 1 or more' if opts[:messages] < 1 || opts[:window] < 1

host, port = opts[:redis].split(':', 2)
port = Integer(port || 6379)
channel = opts[:channel]
total = opts[:messages]
window = opts[:window]
size = [opts[:size], 8].max

message = ->(n) { [n].pack('Q<').ljust(size, 'x') }
cpu = -> { Process.clock_gettime(Process::CLOCK_PROCESS_CPUTIME_ID) }
now = -> { Process.clock_gettime(Process::CLOCK_MONOTONIC) }

received = 0
in_order = true
ok = false
start = cpu_start = nil

# Publishes with redis-rb's synchrony driver: a batch per `pipelined`
# (its replies read before it returns), in this fiber.
publish_synchrony = lambda do
  Fiber.new do
    pub = Redis.new(host: host, port: port, driver: :synchrony, read_timeout: 0)
    n = 0
    while n < total
      last = [n + window, total].min
      pub.pipelined do |p|
        (n...last).each { |m| p.publish(channel, message.(m)) }
      end
      n = last
    end
  end.resume
end

# Publishes with em-redis: a batch written, the next when the batch's last
# reply has come.
publish_em_redis = lambda do
  pub = EM::Protocols::Redis.connect(host: host, port: port)
  pub.errback { |code| warn "em_redis_bench: publish failed: #{code}"; EM.stop }
  n = 0
  batch = lambda do
    last = [n + window, total].min
    pending = last - n
    (n...last).each do |m|
      pub.publish(channel, message.(m)) do
        pending -= 1
        batch.() if pending.zero? && n < total
      end
    end
    n = last
  end
  pub.callback { batch.() }
end

EM.synchrony do
  EM.add_timer(60) do
    warn "em_redis_bench: gave up after 60 s with #{received} of #{total} messages"
    EM.stop
  end
  sub = Redis.new(host: host, port: port, driver: :synchrony)
  sub.subscribe(channel) do |on|
    on.subscribe do
      cpu_start = cpu.()
      start = now.()
      opts[:publisher] == 'synchrony' ? publish_synchrony.() : publish_em_redis.()
    end
    on.message do |_channel, m|
      in_order = false unless m.byteslice(0, 8).unpack1('Q<') == received
      received += 1
      if received == total
        secs = now.() - start
        used = cpu.() - cpu_start
        puts format('RUBY messages=%d secs=%.3f msgs_per_s=%.0f cpu_us_per_msg=%.2f',
                    total, secs, total / secs, used * 1e6 / total)
        ok = in_order
        EM.stop
      end
    end
  end
end

unless ok
  warn 'em_redis_bench: a message did not come, or came out of order' if received == total
  exit 1
end
