//! The timers of one reactor: the [`Store`], its clock, and the one task
//! that fires what is due.
//!
//! The task holds a single tokio `Sleep`, reset to the earliest deadline
//! whenever that changes, so a million pending timers cost tokio one timer
//! entry, not a million tasks. Each wake-up runs a pass: every timer due by
//! then fires, in deadline order, on the reactor thread, each with its panic
//! contained. Timers that come due during a pass (a zero delay added by a
//! callback, a late periodic timer) wait for the next pass, and the task
//! yields to tokio in between, so I/O and `next_tick`s run first.
//!
//! Everything here runs on the reactor thread.

use std::cell::{Cell, RefCell};
use std::future::{poll_fn, Future};
use std::pin::Pin;
use std::rc::{Rc, Weak};
use std::task::{Context, Poll, Waker};
use std::time::Duration;

use em_core::extension as ext;
use em_core::Result;
use tokio::time::{Instant, Sleep};

use crate::options::TimerConfig;
use crate::periodic::PeriodicTimer;
use crate::store::{self, Store, TimerId};

/// How far away a deadline that does not fit an `Instant` is put (30
/// years, as tokio does).
const FAR_FUTURE: Duration = Duration::from_secs(86_400 * 365 * 30);

/// What a timer runs when it fires: one box per timer (the user's closure,
/// wrapped), so that a store slot holds a single pointer.
pub(crate) type Job = Box<dyn Fire>;

/// A timer's job.
pub(crate) trait Fire {
    /// Runs the callback on the reactor thread, containing a panic. A
    /// one-shot job is used up; a periodic one comes back, with the
    /// interval to re-arm with.
    fn fire(self: Box<Self>) -> Option<(Job, u64)>;
    /// Whether this is a periodic timer's job.
    fn periodic(&self) -> bool;
}

impl store::Job for Job {
    fn repeats(&self) -> bool {
        self.periodic()
    }
}

/// A one-shot timer's closure.
pub(crate) struct Once<F>(pub(crate) F);

impl<F: FnOnce() + 'static> Fire for Once<F> {
    fn fire(self: Box<Self>) -> Option<(Job, u64)> {
        let _ = ext::catch("timer", self.0);
        None
    }

    fn periodic(&self) -> bool {
        false
    }
}

/// A periodic timer's callback and the handle it is given.
pub(crate) struct Periodic<F> {
    pub(crate) timer: PeriodicTimer,
    pub(crate) callback: F,
}

impl<F: FnMut(&PeriodicTimer) + 'static> Fire for Periodic<F> {
    fn fire(mut self: Box<Self>) -> Option<(Job, u64)> {
        let this = &mut *self;
        let _ = ext::catch("periodic timer", || (this.callback)(&this.timer));
        let interval = self.timer.interval_ms();
        Some((self, interval))
    }

    fn periodic(&self) -> bool {
        true
    }
}

thread_local! {
    /// The timers of the reactor running on this thread, once it has used
    /// any: a fast path around `extension::reactor_local`, cleared at teardown.
    static CURRENT: RefCell<Weak<Timers>> = const { RefCell::new(Weak::new()) };
}

/// The timers of one reactor.
pub(crate) struct Timers {
    store: RefCell<Store<Job>>,
    /// Deadlines are whole milliseconds since this instant.
    origin: Instant,
    /// The firing task, parked.
    waker: RefCell<Option<Waker>>,
    /// The deadline the task's `Sleep` waits for; `None` while it waits for
    /// none (or is running a pass).
    armed: Cell<Option<u64>>,
    firing: Cell<bool>,
}

impl Timers {
    /// The timers of the reactor on this thread, set up on first use (the
    /// firing task is spawned, and a teardown hook drops every pending
    /// timer when the reactor stops). Errors with `is_no_reactor()` naming
    /// `call` where no reactor runs.
    pub(crate) fn current(call: &'static str) -> Result<Rc<Timers>> {
        if let Some(timers) = CURRENT.with(|c| c.borrow().upgrade()) {
            return Ok(timers);
        }
        let max = ext::option::<TimerConfig>(call)?.max_timers;
        let mut created = false;
        let timers = ext::reactor_local(call, || {
            created = true;
            Timers {
                store: RefCell::new(Store::new(max)),
                origin: Instant::now(),
                waker: RefCell::new(None),
                armed: Cell::new(None),
                firing: Cell::new(false),
            }
        })?;
        if created {
            tracing::debug!(max_timers = ?max, "timers started");
            tokio::task::spawn_local(drive(timers.clone()));
            let t = timers.clone();
            ext::on_teardown(call, move || t.teardown())?;
            let weak = Rc::downgrade(&timers);
            ext::register_gauge(call, "timers_pending", move || {
                weak.upgrade()
                    .and_then(|t| t.store.try_borrow().ok().map(|s| s.len() as u64))
                    .unwrap_or(0)
            })?;
        }
        CURRENT.with(|c| *c.borrow_mut() = Rc::downgrade(&timers));
        Ok(timers)
    }

    /// Adds a timer due `delay_ms` whole milliseconds from now (rounded up
    /// to the next whole millisecond since the origin, so never early).
    pub(crate) fn add(&self, delay_ms: u64, job: impl FnOnce(TimerId) -> Job) -> Result<TimerId> {
        let key = store::ms_ceil(self.elapsed()).saturating_add(delay_ms);
        let added = self.store.borrow_mut().insert_with(key, job);
        // On error the closure is dropped here, outside the borrow: its
        // Drop may use timers.
        let id = added.map_err(|(store::Full(max), _job)| ext::too_many_timers(max))?;
        if !self.firing.get() && self.armed.get().is_none_or(|armed| key < armed) {
            if let Some(waker) = self.waker.borrow_mut().take() {
                waker.wake();
            }
        }
        Ok(id)
    }

    /// Cancels `id` (a no-op if it fired or was cancelled); its job is
    /// dropped before this returns, unless it is running right now.
    pub(crate) fn cancel(&self, id: TimerId) {
        let job = self.store.borrow_mut().cancel(id);
        drop(job);
    }

    /// Time since the origin, on tokio's clock (paused in tests).
    fn elapsed(&self) -> Duration {
        Instant::now().saturating_duration_since(self.origin)
    }

    fn deadline(&self, key: u64) -> Instant {
        self.origin
            .checked_add(Duration::from_millis(key))
            .unwrap_or_else(|| Instant::now() + FAR_FUTURE)
    }

    /// Ready with the limit of the next pass once a timer is due; `None`
    /// once the reactor stops.
    fn poll_due(&self, cx: &mut Context<'_>, mut sleep: Pin<&mut Sleep>) -> Poll<Option<u64>> {
        if em_core::stopping() {
            return Poll::Ready(None);
        }
        {
            let mut waker = self.waker.borrow_mut();
            if !waker.as_ref().is_some_and(|w| w.will_wake(cx.waker())) {
                *waker = Some(cx.waker().clone());
            }
        }
        let Some(key) = self.store.borrow().first_key() else {
            self.armed.set(None);
            return Poll::Pending;
        };
        let now = store::ms_floor(self.elapsed());
        if key <= now {
            return Poll::Ready(Some(now));
        }
        if self.armed.get() != Some(key) {
            sleep.as_mut().reset(self.deadline(key));
            self.armed.set(Some(key));
        }
        match sleep.poll(cx) {
            // tokio never wakes a `Sleep` early: the deadline is due.
            Poll::Ready(()) => Poll::Ready(Some(key.max(store::ms_floor(self.elapsed())))),
            Poll::Pending => Poll::Pending,
        }
    }

    /// Fires every timer due by `limit`, stopping early if the reactor
    /// stops.
    fn fire(&self, limit: u64) {
        self.firing.set(true);
        self.armed.set(None);
        self.store.borrow_mut().begin_pass(limit);
        loop {
            let due = self.store.borrow_mut().pop_due();
            let Some(due) = due else { break };
            let started = self.elapsed();
            if let Some((job, interval)) = due.job.fire() {
                let key = store::next_periodic_key(due.key, interval, started, self.elapsed());
                let refused = self.store.borrow_mut().rearm(due.id, key, job);
                if let Err(cancelled) = refused {
                    // Cancelled from its own callback: gone for good.
                    let _ = ext::catch("periodic timer drop", move || drop(cancelled));
                }
            }
            if em_core::stopping() {
                break;
            }
        }
        self.store.borrow_mut().end_pass();
        self.firing.set(false);
    }

    /// Whether a timer is due already (added by a callback with a zero
    /// delay, or come due while the pass ran).
    fn due_now(&self) -> bool {
        let first = self.store.borrow().first_key();
        first.is_some_and(|key| key <= store::ms_floor(self.elapsed()))
    }

    /// At reactor teardown: forget the fast path and drop every pending
    /// timer's closure.
    fn teardown(&self) {
        CURRENT.with(|c| *c.borrow_mut() = Weak::new());
        loop {
            // Dropped outside the borrow: a closure's Drop may add or cancel
            // timers.
            let old = self.store.borrow_mut().take_all();
            if old.len() == 0 {
                break;
            }
            tracing::debug!(pending = old.len(), "dropping pending timers at stop");
            drop(old);
        }
        self.waker.borrow_mut().take();
    }
}

/// The firing task of one reactor, until it stops.
async fn drive(timers: Rc<Timers>) {
    let mut sleep = Box::pin(tokio::time::sleep_until(Instant::now() + FAR_FUTURE));
    loop {
        let due = poll_fn(|cx| timers.poll_due(cx, sleep.as_mut())).await;
        let Some(limit) = due else { return };
        timers.fire(limit);
        if em_core::stopping() {
            return;
        }
        if timers.due_now() {
            // A later iteration: let tokio poll I/O and run other tasks.
            tokio::task::yield_now().await;
        }
    }
}

impl std::fmt::Debug for Timers {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Timers")
            .field("store", &*self.store.borrow())
            .field("armed", &self.armed.get())
            .finish_non_exhaustive()
    }
}
