# An echo client: says hello to the server on the port given, prints the
# first reply and stops. em's twin: em/examples/echo_client.rs.
require 'eventmachine'

class EchoClient < EventMachine::Connection
  def post_init
    send_data "hello\n"
  end

  def receive_data(data)
    puts "got: #{data}"
    close_connection
  end

  def unbind
    EventMachine.stop
  end
end

EventMachine.run { EventMachine.connect "127.0.0.1", (ARGV[0] || 8081).to_i, EchoClient }
