# em-http-request, EventMachine's HTTP client (the library em-http's client
# is modelled on), as the Ruby baseline for bench/http_client.sh: GET one
# URL TOTAL times over CONCURRENCY keep-alive connections, each sending its
# next request from the previous one's callback, then print the same
# summary table as em's `http_get` and `hyper_get` (requests, failures,
# requests/s, MB/s, latency percentiles in ms, CPU time per request in µs).
#
#   ruby bench/baselines/em_http_request/get.rb URL [CONCURRENCY] [TOTAL]
#
# (defaults: 50 connections, 10,000 requests). Needs the Debian package
# ruby-em-http-request. Exits 1 with the first error if a request failed.
require 'em-http'

url = ARGV.fetch(0) { abort 'usage: get.rb URL [CONCURRENCY] [TOTAL]' }
concurrency = Integer(ARGV[1] || 50)
total = Integer(ARGV[2] || 10_000)

def now
  Process.clock_gettime(Process::CLOCK_MONOTONIC)
end

issued = 0
finished = 0
failed = 0
bytes = 0
latencies = []
first_error = nil
started = now
elapsed = nil

EM.run do
  done = lambda do
    finished += 1
    if finished == total
      elapsed = now - started
      EM.stop
    end
  end
  # One connection's loop: the next request goes out from the previous
  # one's callback, on the same keep-alive connection.
  step = lambda do |conn|
    next if issued >= total

    issued += 1
    t0 = now
    req = conn.get(keepalive: true)
    req.callback do
      if req.response_header.status.zero?
        failed += 1
        first_error ||= "GET #{url}: no response"
      else
        bytes += req.response.bytesize
        latencies << now - t0
      end
      done.call
      step.call(conn)
    end
    req.errback do
      failed += 1
      first_error ||= "GET #{url}: #{req.error}"
      done.call
      # That connection is gone: go on with a new one.
      step.call(EventMachine::HttpRequest.new(url, inactivity_timeout: 10)) if issued < total
    end
  end
  [concurrency, total].min.times do
    step.call(EventMachine::HttpRequest.new(url, inactivity_timeout: 10))
  end
end

latencies.sort!
pct = lambda do |p|
  next 0.0 if latencies.empty?

  latencies[[(latencies.size * p).ceil, 1].max - 1] * 1000.0
end
cpu = Process.times.utime + Process.times.stime
ok = latencies.size
printf("%10s %7s %9s %11s %9s %8s %8s %8s %8s %10s\n",
       'requests', 'failed', 'seconds', 'requests/s', 'MB/s',
       'p50_ms', 'p90_ms', 'p99_ms', 'max_ms', 'cpu_us/req')
printf("%10d %7d %9.3f %11.1f %9.1f %8.3f %8.3f %8.3f %8.3f %10.2f\n",
       total, failed, elapsed, ok / elapsed, bytes / 1e6 / elapsed,
       pct.call(0.50), pct.call(0.90), pct.call(0.99),
       (latencies.last || 0) * 1000.0, cpu * 1e6 / total)
if first_error
  warn "get.rb: #{first_error}"
  exit 1
end
