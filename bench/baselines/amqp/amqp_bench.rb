# Ruby's side of bench/amqp.sh: the amqp gem (EventMachine's AMQP client,
# Debian: ruby-amqp) with the same command line and output as
# em-examples' amqp_bench.
#
#   ruby amqp_bench.rb publish --amqp URL --queue NAME --messages N --size BYTES --window W
#   ruby amqp_bench.rb consume --amqp URL --queue NAME --messages N --prefetch P
#
# Prints one line: `publish messages=N seconds=S rate=R` (first publish to
# last confirm) or `consume messages=N seconds=S rate=R` (basic.consume to
# the N-th ack written).
require 'amqp'
require 'set'

def usage(msg)
  warn "amqp_bench: #{msg}"
  exit 2
end

mode = ARGV.shift
usage('missing mode: publish or consume') unless %w[publish consume].include?(mode)
opts = { size: 64, window: 1000, prefetch: 1000 }
until ARGV.empty?
  flag = ARGV.shift
  value = ARGV.shift or usage("#{flag} needs a value")
  case flag
  when '--amqp' then opts[:amqp] = value
  when '--queue' then opts[:queue] = value
  when '--messages' then opts[:messages] = Integer(value)
  when '--size' then opts[:size] = Integer(value)
  when '--window' then opts[:window] = Integer(value)
  when '--prefetch' then opts[:prefetch] = Integer(value)
  else usage("unknown flag #{flag}")
  end
end
n = opts[:messages]
usage('needs --amqp, --queue and --messages > 0') unless opts[:amqp] && opts[:queue] && n && n > 0
usage('--window must be > 0') unless opts[:window] > 0

def now
  Process.clock_gettime(Process::CLOCK_MONOTONIC)
end

error = nil
seconds = nil
start = nil
fail_with = lambda do |msg|
  error ||= msg
  EM.stop
end

EM.run do
  AMQP.connect(opts[:amqp],
               on_tcp_connection_failure: ->(_) { fail_with.call('TCP connection failed') },
               on_possible_authentication_failure: ->(_) { fail_with.call('authentication failed') }) do |conn|
    conn.on_error { |_, close| fail_with.call("connection error: #{close.reply_text}") }
    conn.on_tcp_connection_loss { fail_with.call('connection lost') }
    AMQP::Channel.new(conn) do |channel|
      channel.on_error { |_, close| fail_with.call("channel error: #{close.reply_text}") }
      finish = lambda do
        seconds = now - start
        conn.close { EM.stop }
      end
      # Non-durable, not exclusive, not auto-delete.
      channel.queue(opts[:queue], durable: false, exclusive: false, auto_delete: false) do |queue|
        if mode == 'publish'
          exchange = channel.default_exchange
          payload = 'x' * opts[:size]
          published = 0
          pending = Set.new
          low = 1 # every tag below is confirmed
          fill = lambda do
            while published < n && pending.size < opts[:window]
              published += 1
              pending << published
              exchange.publish(payload, routing_key: opts[:queue], persistent: false)
            end
          end
          confirmed = lambda do |method|
            if method.multiple
              (low..method.delivery_tag).each { |tag| pending.delete(tag) }
              low = method.delivery_tag + 1 if method.delivery_tag >= low
            else
              pending.delete(method.delivery_tag)
            end
          end
          channel.on_ack do |method|
            confirmed.call(method)
            if published == n && pending.empty?
              finish.call
            else
              fill.call
            end
          end
          channel.on_nack { fail_with.call('a publish was nacked') }
          channel.confirm_select do
            start = now
            fill.call
          end
        else
          channel.prefetch(opts[:prefetch]) do
            seen = 0
            start = now
            queue.subscribe(ack: true) do |header, _payload|
              header.ack
              seen += 1
              finish.call if seen == n
            end
          end
        end
      end
    end
  end
end

if error
  warn "amqp_bench: #{error}"
  exit 1
end
puts "#{mode} messages=#{n} seconds=#{format('%.3f', seconds)} rate=#{(n / seconds).round}"
