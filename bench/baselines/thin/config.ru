# thin's "Hello, World!", for orientation beside em-http's `http_hello`
# and the hyper baseline `hyper_hello` in bench/http.sh: thin is the
# EventMachine-based Ruby web server, so this is what em-http's model
# looks like with Ruby on top. The same responses as the other two:
#
#   GET / and GET /plaintext  200, Content-Type: text/plain, Hello, World!
#   GET /json                 200, Content-Type: application/json,
#                             {"message":"Hello, World!"}
#   anything else             404, empty body
#
# with Content-Length and Date set here (thin adds neither itself; it adds
# `Server: thin`). Connections are kept alive (HTTP/1.1), up to thin's
# --max-persistent-conns (default 100) at a time.
#
# Needs the Debian package thin (which brings ruby-rack and
# ruby-eventmachine). One process, one EventMachine reactor, no daemon:
#
#   thin start -R bench/baselines/thin/config.ru -a 127.0.0.1 -p PORT -e production
#
# (not --threaded: the app runs on the reactor thread, as em's handlers do).
#
# thin cannot report a port it picked itself (-p 0 logs `:0`), so pick a
# free PORT first; bench/http.sh does, and waits until it accepts. Stops
# on SIGTERM (after the open requests) or SIGINT.
require 'time'

PLAINTEXT = 'Hello, World!'.b.freeze
JSON_BODY = '{"message":"Hello, World!"}'.b.freeze

# The Date header is a second-resolution clock: formatted once a second,
# as hyper and em-http do.
date = [nil, nil]
http_date = lambda do
  now = Time.now.to_i
  date.replace([now, Time.at(now).httpdate.freeze]) unless date[0] == now
  date[1]
end

hello = lambda do |env|
  return [404, { 'Content-Length' => '0', 'Date' => http_date.call }, []] unless env['REQUEST_METHOD'] == 'GET'

  case env['PATH_INFO']
  when '/', '/plaintext'
    [200, { 'Content-Type' => 'text/plain', 'Content-Length' => PLAINTEXT.bytesize.to_s,
            'Date' => http_date.call }, [PLAINTEXT]]
  when '/json'
    [200, { 'Content-Type' => 'application/json', 'Content-Length' => JSON_BODY.bytesize.to_s,
            'Date' => http_date.call }, [JSON_BODY]]
  else
    [404, { 'Content-Length' => '0', 'Date' => http_date.call }, []]
  end
end

run hello
