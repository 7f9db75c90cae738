//! em timers: EventMachine's `add_timer`, `add_periodic_timer` and
//! `cancel_timer` on the em reactor, plus `sleep` and `timeout` for code
//! under `em::spawn`. Most users reach them through the `em` facade
//! (`em::add_timer`, ...).
//!
//! ```
//! # mod em { pub use em_core::*; pub use em_timers::*; }
//! use std::cell::Cell;
//! use std::rc::Rc;
//! use std::time::Duration;
//!
//! let fired = Rc::new(Cell::new(0));
//! let f = fired.clone();
//! em::run(move || -> em::Result<()> {
//!     // A one-shot timer, and a periodic one that cancels itself.
//!     em::add_timer(Duration::from_millis(30), em::stop)?;
//!     em::add_periodic_timer(Duration::from_millis(5), move |timer| {
//!         f.set(f.get() + 1);
//!         if f.get() == 3 {
//!             timer.cancel();
//!         }
//!     })?;
//!     Ok(())
//! })?;
//! assert_eq!(fired.get(), 3);
//! # Ok::<(), em_core::Error>(())
//! ```
//!
//! # Threads
//!
//! Every callback runs on the reactor thread, like every other em callback.
//! [`Timer`] and [`PeriodicTimer`] are `!Send` handles for that thread;
//! from another thread, reach the reactor with `em::Handle::schedule` and
//! add the timer there.
//!
//! # Semantics
//!
//! These follow EventMachine's timers, except where em deliberately does
//! better:
//!
//! * Delays and intervals are truncated to whole milliseconds, and
//!   timers fire at millisecond granularity, never early.
//! * A zero delay never fires inside `add_timer`; it fires in a later pass.
//!   No order is promised between it and `next_tick`.
//! * Timers fire in deadline order; equal deadlines fire in the order they
//!   were added.
//! * A timer callback that blocks delays every other timer and all I/O:
//!   keep callbacks short, or hand blocking work to `em::defer`.
//! * A cancelled timer is gone at once (EventMachine keeps counting it
//!   until its deadline): its closure is dropped and it no longer
//!   counts toward `max_timers`.
//! * A periodic timer does not drift when its callback is fast, and never
//!   bursts when it is slow or late; see [`add_periodic_timer`].
//! * A panicking callback is contained and logged, and a periodic timer
//!   keeps its schedule (EventMachine silently stops it).
//! * `Reactor::builder().max_timers(n)` ([`TimerOptions`]) caps pending timers, one-shot and
//!   periodic (default 100,000 as EventMachine; `None` lifts the cap). Past
//!   the cap, adding a timer is an error that `is_too_many_timers()`.
//! * `em::stop()` cancels every pending timer: no timer fires once a stop
//!   is requested, `run` returns at once however far away the next timer
//!   is, and every pending closure is dropped by the time it returns.
//!
//! # Testing with a paused clock
//!
//! Timers run on tokio's clock. `Reactor::builder().start_paused(true)`
//! (with the `test-util` feature) runs the reactor on tokio's paused clock:
//! time stands still while the reactor has work and jumps to the next
//! deadline when it is idle, so a test can assert that a timer fired at
//! exactly 250 ms, and an hour of timers takes no wall time. [`sleep`] and
//! [`timeout`] use the same clock.
//!
//! # Design
//!
//! Each reactor has one timer store: a slab of pending timers and, per
//! millisecond deadline, a bucket of them in insertion order (a ring of
//! buckets for the next four seconds, a sorted map beyond), with O(1)
//! adding and cancelling. One task per reactor waits on one tokio `Sleep`,
//! reset to the earliest deadline, and fires everything due in one pass. A
//! million timers cost a million 32-byte slab entries and their closures,
//! not a million tasks: in the `micro` example's `timers` bench, under a
//! third of raw tokio's CPU time and an eighth of its memory.
//!
//! # Feature flags
//!
//! * `test-util`: `Reactor::builder().start_paused(true)`, tokio's paused
//!   clock for tests.

#![deny(missing_docs)]
#![warn(clippy::print_stdout, clippy::print_stderr)]
#![doc(test(attr(deny(warnings))))]

mod firing;
mod options;
mod periodic;
mod sleep;
mod store;
mod timer;

pub use options::TimerOptions;
pub use periodic::{add_periodic_timer, PeriodicTimer};
pub use sleep::{sleep, timeout};
pub use timer::{add_timer, cancel_timer, Cancel, Timer};
