# defer: blocking work on the thread pool, its result back on the reactor
# thread. em's twin: em/examples/defer.rs.
require 'eventmachine'

EventMachine.run do
  work = proc do
    sleep 0.2 # blocking, so not on the reactor thread
    6 * 7
  end
  callback = proc do |answer|
    puts "the answer is #{answer}"
    EventMachine.stop
  end
  EventMachine.defer(work, callback)
end
