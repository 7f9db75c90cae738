# Timers: a periodic timer that cancels itself after three ticks, and a
# one-shot timer that stops the reactor. em's twin: em/examples/timers.rs.
require 'eventmachine'

EventMachine.run do
  ticks = 0
  timer = EventMachine::PeriodicTimer.new(0.1) do
    ticks += 1
    puts "tick #{ticks}"
    timer.cancel if ticks == 3
  end
  EventMachine.add_timer(0.5) do
    puts "done"
    EventMachine.stop
  end
end
