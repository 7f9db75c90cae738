//! One-shot timers: [`add_timer`], [`Timer`] and [`cancel_timer`].

use std::fmt;
use std::rc::{Rc, Weak};
use std::time::Duration;

use em_core::Result;

use crate::firing::{Once, Timers};
use crate::store::{self, TimerId};

/// A pending one-shot timer, made by [`add_timer`]: the handle to cancel it
/// (EventMachine's `EM::Timer`).
///
/// Dropping the handle does not cancel the timer. Cloning it gives a second
/// handle to the same timer. A `Timer` belongs to the reactor thread: it is
/// `!Send`, and outlives its reactor harmlessly (cancelling is then a
/// no-op).
///
/// ```compile_fail
/// # mod em { pub use em_core::*; pub use em_timers::*; }
/// fn on_another_thread(timer: em::Timer) {
///     std::thread::spawn(move || timer.cancel()); // error: `Timer` is not `Send`
/// }
/// ```
#[derive(Clone)]
pub struct Timer {
    timers: Weak<Timers>,
    id: TimerId,
}

impl Timer {
    /// Cancels the timer: its callback will not run, it stops counting
    /// toward `max_timers`, and its closure is dropped before `cancel`
    /// returns. Idempotent, and a no-op once the timer has fired or its
    /// reactor has stopped. Reactor thread only (the type is `!Send`).
    pub fn cancel(&self) {
        if let Some(timers) = self.timers.upgrade() {
            timers.cancel(self.id);
        }
    }
}

impl fmt::Debug for Timer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Timer").field("id", &self.id).finish()
    }
}

/// Runs `f` once on the reactor thread, `delay` from now (EventMachine's
/// `EM.add_timer`), and returns the [`Timer`] that can cancel it.
///
/// * The delay is truncated to whole milliseconds, as EventMachine does
///   (1.9 ms waits 1 ms; anything under 1 ms is a zero delay), and the
///   timer fires at the first whole millisecond of the reactor's timer
///   clock at or after `now + delay`: never early, and within a
///   millisecond or so of its deadline when the reactor is not busy.
/// * `f` never runs inside `add_timer`, even with a zero delay: it runs in
///   a later pass of the reactor's timers.
/// * Timers fire in deadline order; equal deadlines fire in the order the
///   timers were added.
/// * A panic in `f` is contained and logged at error level; the reactor
///   and every other timer keep running.
/// * Very large delays are accepted (`Duration::MAX` means never). After
///   [`stop`](em_core::stop) no timer fires; pending ones are dropped when
///   the reactor has stopped.
///
/// Errors: `is_no_reactor()` where no reactor runs; `is_stopping()` once it
/// stops (like every em call that would create something);
/// `is_too_many_timers()`
/// when the reactor already has `max_timers` timers pending (see
/// `Reactor::builder().max_timers(..)`; default 100,000). On error `f` is
/// dropped and nothing is scheduled.
///
/// ```
/// # mod em { pub use em_core::*; pub use em_timers::*; }
/// use std::time::Duration;
///
/// em::run(|| -> em::Result<()> {
///     em::add_timer(Duration::from_millis(20), em::stop)?;
///     let never = em::add_timer(Duration::from_millis(10), || unreachable!())?;
///     never.cancel();
///     Ok(())
/// })?;
/// # Ok::<(), em_core::Error>(())
/// ```
pub fn add_timer(delay: Duration, f: impl FnOnce() + 'static) -> Result<Timer> {
    em_core::extension::check_accepting("add_timer")?;
    let timers = Timers::current("add_timer")?;
    let id = timers.add(store::ms_floor(delay), |_| Box::new(Once(f)))?;
    Ok(Timer {
        timers: Rc::downgrade(&timers),
        id,
    })
}

/// Cancels a [`Timer`] or a [`PeriodicTimer`](crate::PeriodicTimer)
/// (EventMachine's `EM.cancel_timer`): the same as calling its `cancel`.
/// A no-op for a timer that fired or was cancelled. Reactor thread only.
///
/// ```
/// # mod em { pub use em_core::*; pub use em_timers::*; }
/// use std::time::Duration;
///
/// em::run(|| -> em::Result<()> {
///     let timer = em::add_timer(Duration::from_secs(3600), || unreachable!())?;
///     em::cancel_timer(&timer);
///     em::stop();
///     Ok(())
/// })?;
/// # Ok::<(), em_core::Error>(())
/// ```
pub fn cancel_timer(timer: &impl Cancel) {
    timer.cancel();
}

/// What [`cancel_timer`] accepts: [`Timer`] and
/// [`PeriodicTimer`](crate::PeriodicTimer). Sealed.
pub trait Cancel: sealed::Sealed {
    /// Cancels the timer; see [`Timer::cancel`] and
    /// [`PeriodicTimer::cancel`](crate::PeriodicTimer::cancel).
    fn cancel(&self);
}

impl Cancel for Timer {
    fn cancel(&self) {
        Timer::cancel(self);
    }
}

impl Cancel for crate::PeriodicTimer {
    fn cancel(&self) {
        crate::PeriodicTimer::cancel(self);
    }
}

mod sealed {
    pub trait Sealed {}
    impl Sealed for super::Timer {}
    impl Sealed for crate::PeriodicTimer {}
}
