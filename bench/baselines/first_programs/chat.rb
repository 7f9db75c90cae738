# A chat server: every line a client sends goes to every client, through
# a channel. em's twin: em/examples/chat.rs.
require 'eventmachine'

class Chat < EventMachine::Connection
  include EventMachine::Protocols::LineText2

  def initialize(channel)
    @channel = channel
  end

  def post_init
    @sid = @channel.subscribe { |line| send_data(line) }
  end

  def receive_line(line)
    @channel.push("#{line}\n")
  end

  def unbind
    @channel.unsubscribe(@sid)
  end
end

EventMachine.run do
  $stdout.sync = true
  channel = EventMachine::Channel.new
  server = EventMachine.start_server "127.0.0.1", (ARGV[0] || 8081).to_i, Chat, channel
  port, host = Socket.unpack_sockaddr_in(EventMachine.get_sockname(server))
  puts "listening on #{host}:#{port}"
end
