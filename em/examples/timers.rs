//! Timers: `cargo run --example timers` runs a periodic timer that cancels
//! itself after three ticks, and a one-shot timer that stops the reactor.
//! The EventMachine original is bench/baselines/first_programs/timers.rb.
fn main() -> em::Result<()> {
    em::run(|| {
        let mut ticks = 0;
        em::add_periodic_timer(em::Duration::from_millis(100), move |timer| {
            ticks += 1;
            println!("tick {ticks}");
            if ticks == 3 {
                timer.cancel();
            }
        })?;
        em::add_timer(em::Duration::from_millis(500), || {
            println!("done");
            em::stop();
        })
    })
}
