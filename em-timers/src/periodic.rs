//! Periodic timers: [`add_periodic_timer`] and [`PeriodicTimer`].

use std::cell::Cell;
use std::fmt;
use std::rc::{Rc, Weak};
use std::time::Duration;

use em_core::Result;

use crate::firing::{Periodic, Timers};
use crate::store::{self, TimerId};

/// A periodic timer, made by [`add_periodic_timer`] (EventMachine's
/// `EM::PeriodicTimer`): the handle to cancel it or change its interval.
/// Its callback receives one too, so that it can do both from inside.
///
/// Dropping a handle does not cancel the timer; clones are handles to the
/// same timer. `!Send`: it belongs to the reactor thread, and outlives its
/// reactor harmlessly.
///
/// ```compile_fail
/// # mod em { pub use em_core::*; pub use em_timers::*; }
/// fn on_another_thread(timer: em::PeriodicTimer) {
///     std::thread::spawn(move || timer.cancel()); // error: `PeriodicTimer` is not `Send`
/// }
/// ```
#[derive(Clone)]
pub struct PeriodicTimer {
    inner: Rc<Inner>,
}

struct Inner {
    timers: Weak<Timers>,
    id: Cell<Option<TimerId>>,
    interval_ms: Cell<u64>,
}

impl PeriodicTimer {
    /// Stops the timer for good: no further callback runs, it stops counting
    /// toward `max_timers`, and its closure is dropped before `cancel`
    /// returns (or, when called from the callback itself, as soon as the
    /// callback returns). Idempotent. Reactor thread only.
    pub fn cancel(&self) {
        // Forget the id: once cancelled, this handle never names a slot again.
        if let (Some(id), Some(timers)) = (self.inner.id.take(), self.inner.timers.upgrade()) {
            timers.cancel(id);
        }
    }

    /// The interval, in whole milliseconds (as given to
    /// [`add_periodic_timer`] or [`set_interval`](Self::set_interval),
    /// truncated).
    pub fn interval(&self) -> Duration {
        Duration::from_millis(self.inner.interval_ms.get())
    }

    /// Changes the interval (EventMachine's `interval=`), truncated to whole
    /// milliseconds. It applies from the next re-arm: a fire already
    /// scheduled keeps its time, and the one after comes `interval` later.
    /// Called from the timer's own callback, the next fire is `interval`
    /// after the current one. Reactor thread only.
    pub fn set_interval(&self, interval: Duration) {
        self.inner.interval_ms.set(store::ms_floor(interval));
    }

    pub(crate) fn interval_ms(&self) -> u64 {
        self.inner.interval_ms.get()
    }
}

impl fmt::Debug for PeriodicTimer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PeriodicTimer")
            .field("id", &self.inner.id.get())
            .field("interval", &self.interval())
            .finish()
    }
}

/// Runs `f` on the reactor thread every `interval` until cancelled
/// (EventMachine's `EM.add_periodic_timer`), and returns the
/// [`PeriodicTimer`] handle; `f` gets the handle too, to cancel the timer or
/// change its interval from inside.
///
/// The schedule:
/// * The first fire comes one interval after creation. The interval is
///   truncated to whole milliseconds; zero fires on every pass of the
///   reactor's timers.
/// * After each callback the timer re-arms. If the callback returned before
///   the next deadline (`previous deadline + interval`), that is the next
///   deadline, so a fast callback never makes the timer drift (EventMachine
///   drifts by each callback's run time). Otherwise, a slow or late callback
///   pushes the next fire one full interval past the callback's end, as
///   EventMachine does; the timer never bursts to catch up (unlike tokio's
///   default `Interval`).
/// * A panic in `f` is contained and logged at error level; the timer keeps
///   its schedule (EventMachine silently stops it).
/// * A periodic timer counts as one toward `max_timers` until cancelled.
///
/// Errors: `is_no_reactor()` where no reactor runs; `is_stopping()` once it
/// stops; `is_too_many_timers()` at the `max_timers` cap. On error `f` is
/// dropped.
///
/// ```
/// # mod em { pub use em_core::*; pub use em_timers::*; }
/// use std::time::Duration;
///
/// em::run(|| -> em::Result<()> {
///     let mut ticks = 0;
///     em::add_periodic_timer(Duration::from_millis(5), move |timer| {
///         ticks += 1;
///         if ticks == 3 {
///             timer.cancel(); // EM: `timer.cancel if done`
///             em::stop();
///         }
///     })?;
///     Ok(())
/// })?;
/// # Ok::<(), em_core::Error>(())
/// ```
pub fn add_periodic_timer(
    interval: Duration,
    f: impl FnMut(&PeriodicTimer) + 'static,
) -> Result<PeriodicTimer> {
    em_core::extension::check_accepting("add_periodic_timer")?;
    let timers = Timers::current("add_periodic_timer")?;
    let interval_ms = store::ms_floor(interval);
    let timer = PeriodicTimer {
        inner: Rc::new(Inner {
            timers: Rc::downgrade(&timers),
            id: Cell::new(None),
            interval_ms: Cell::new(interval_ms),
        }),
    };
    let handle = timer.clone();
    let id = timers.add(interval_ms, move |id| {
        handle.inner.id.set(Some(id));
        Box::new(Periodic {
            timer: handle,
            callback: f,
        })
    })?;
    debug_assert_eq!(timer.inner.id.get(), Some(id));
    Ok(timer)
}
