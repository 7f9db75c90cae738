# A procedural client (em-synchrony): connect, write, read the reply, in
# straight-line code on the reactor. em's twin: em/examples/procedural_client.rs.
require 'em-synchrony'

EventMachine.synchrony do
  socket = EventMachine::Synchrony::TCPSocket.new("127.0.0.1", (ARGV[0] || 8081).to_i)
  socket.write("hello\n")
  puts "got: #{socket.recv(4096)}"
  socket.close
  EventMachine.stop
end
