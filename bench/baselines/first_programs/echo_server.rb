# EventMachine's README echo server, listening on the port given (8081
# by default; 0 picks one) and saying where. em's twin: em/examples/echo_server.rs.
require 'eventmachine'

module EchoServer
  def post_init
    puts "-- someone connected to the echo server!"
  end

  def receive_data(data)
    send_data ">>>you sent: #{data}"
    close_connection if data =~ /quit/i
  end

  def unbind
    puts "-- someone disconnected from the echo server!"
  end
end

EventMachine.run do
  $stdout.sync = true
  server = EventMachine.start_server "127.0.0.1", (ARGV[0] || 8081).to_i, EchoServer
  port, host = Socket.unpack_sockaddr_in(EventMachine.get_sockname(server))
  puts "listening on #{host}:#{port}"
end
