# EventMachine's own forwarding proxy, for orientation beside em's `proxy`
# and `tokio_proxy` in bench/proxy.sh: each client gets a connection to the
# target, and `proxy_incoming_to` moves the bytes both ways inside
# EventMachine's C++ reactor (no Ruby code per chunk).
#
#   ruby bench/baselines/eventmachine_proxy.rb --listen HOST:PORT --to HOST:PORT
#
# Needs the Debian package ruby-eventmachine. Prints `listening on
# HOST:PORT` (the bound port, so port 0 works); stops on SIGTERM/SIGINT.
require 'eventmachine'
require 'socket'

def split(addr)
  host, _, port = addr.rpartition(':')
  [host, Integer(port)]
end

opts = Hash[ARGV.each_slice(2).to_a]
LISTEN = split(opts.fetch('--listen', '127.0.0.1:0'))
TARGET = split(opts.fetch('--to'))
BUFSIZE = 1 << 20

# The target's side: when the target ends, so does the client.
module Back
  def initialize(client)
    @client = client
  end

  def unbind
    @client.close_connection_after_writing
  end
end

# The client's side: dials the target and proxies both ways.
module Front
  def post_init
    @back = EM.connect(TARGET[0], TARGET[1], Back, self)
    proxy_incoming_to(@back, BUFSIZE)
    @back.proxy_incoming_to(self, BUFSIZE)
  end

  def unbind
    @back.close_connection_after_writing
  end
end

EM.run do
  %w[TERM INT].each { |s| trap(s) { EM.stop } }
  server = EM.start_server(LISTEN[0], LISTEN[1], Front)
  port, host = Socket.unpack_sockaddr_in(EM.get_sockname(server))
  puts "listening on #{host}:#{port}"
  $stdout.flush
end
