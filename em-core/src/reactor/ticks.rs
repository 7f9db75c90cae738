//! `next_tick` and `schedule`: a reactor-owned FIFO of closures, drained in
//! passes by one task.
//!
//! Closures from other threads ([`Handle::schedule`](crate::Handle::schedule))
//! join the same FIFO: the reactor moves them in before it queues a
//! `next_tick` of its own, and before each pass, so a closure scheduled
//! before a `next_tick` was queued runs before it (EventMachine's one
//! queue).
//!
//! A pass runs the closures that were queued when it began (the snapshot
//! rule); closures queued during a pass run in a later one.
//! Passes run back to back, up to [`PASSES_BEFORE_IO`] of them, and then the
//! task yields to tokio, which polls I/O and runs every ready connection
//! before the next batch of passes. So a tick that re-schedules itself
//! forever costs tens of nanoseconds per tick, not an `epoll_wait` per tick,
//! and still never starves sockets. A pass of many closures (a flood from
//! other threads, say) runs at most [`TICKS_PER_TURN`] of them before I/O
//! gets its turn, and notices a stop asked from another thread within a few
//! dozen closures, so neither sockets nor `Handle::stop` wait behind it.

use std::cell::{Cell, RefCell};
use std::collections::VecDeque;
use std::future::poll_fn;
use std::rc::Rc;
use std::sync::Arc;
use std::task::{Poll, Waker};

use crate::error::{Error, Result};
use crate::reactor::core::Core;
use crate::reactor::panic;
use crate::reactor::remote::Remote;
use crate::reactor::stats;

/// How many passes run between two polls of I/O when ticks keep coming.
pub(crate) const PASSES_BEFORE_IO: usize = 256;

/// A queued closure.
pub(crate) type Tick = Box<dyn FnOnce()>;

struct Ticks {
    queue: RefCell<VecDeque<Tick>>,
    /// The emptied queue of the last pass, kept for its allocation.
    spare: RefCell<VecDeque<Tick>>,
    /// The rest of a large pass cut short by its turn's budget: it runs
    /// first on the next turn, before any closure queued since (the
    /// snapshot rule holds).
    current: RefCell<VecDeque<Tick>>,
    /// The draining task, parked while the queue is empty.
    waker: Cell<Option<Waker>>,
    draining: Cell<bool>,
    /// The cross-thread side of the reactor running on this thread, while
    /// one runs.
    remote: RefCell<Option<Arc<Remote>>>,
}

thread_local! {
    static TICKS: Ticks = const {
        Ticks {
            queue: RefCell::new(VecDeque::new()),
            spare: RefCell::new(VecDeque::new()),
            current: RefCell::new(VecDeque::new()),
            waker: Cell::new(None),
            draining: Cell::new(false),
            remote: RefCell::new(None),
        }
    };
}

/// Queues `f` to run on this thread's reactor on a later pass, after
/// everything queued before it (FIFO). Never runs `f` before returning.
///
/// Callable before [`run`](crate::run): the closures then run in the
/// reactor's first pass, after the run block. Closures still queued when the
/// reactor stops are dropped, not run. The closure is `!Send`: to reach a
/// reactor from another thread use [`Handle::schedule`](crate::Handle::schedule).
///
/// ```
/// # use em_core as em;
/// use std::{cell::RefCell, rc::Rc};
/// let order = Rc::new(RefCell::new(Vec::new()));
/// let o = order.clone();
/// em::run(move || {
///     let o2 = o.clone();
///     em::next_tick(move || {
///         o2.borrow_mut().push("tick");
///         em::stop();
///     });
///     o.borrow_mut().push("run block");
/// })?;
/// assert_eq!(*order.borrow(), ["run block", "tick"]);
/// # Ok::<(), em_core::Error>(())
/// ```
pub fn next_tick(f: impl FnOnce() + 'static) {
    push(Box::new(f));
}

pub(crate) fn push(tick: Tick) {
    TICKS.with(|t| {
        let mut queue = t.queue.borrow_mut();
        if let Some(remote) = &*t.remote.borrow() {
            remote.move_scheduled(&mut queue);
        }
        queue.push_back(tick);
        drop(queue);
        if !t.draining.get() {
            if let Some(w) = t.waker.take() {
                w.wake();
            }
        }
    });
}

/// Runs `f` at once, before returning, on a running reactor's thread
/// (EventMachine's `EM.schedule` on the reactor thread).
///
/// Errors with `is_no_reactor()` on a thread where no reactor runs, and
/// drops `f` unrun: the closure is `!Send`, so it cannot reach a reactor on
/// another thread. From another thread use
/// [`Handle::schedule`](crate::Handle::schedule); to queue work before
/// [`run`](crate::run) on this thread, use [`next_tick`].
pub fn schedule(f: impl FnOnce() + 'static) -> Result<()> {
    if !Core::is_installed() {
        return Err(Error::no_reactor("schedule"));
    }
    f();
    Ok(())
}

/// Lets the tick queue take closures scheduled from other threads (when a
/// reactor starts on this thread).
pub(crate) fn attach_remote(remote: Arc<Remote>) {
    TICKS.with(|t| *t.remote.borrow_mut() = Some(remote));
}

pub(crate) fn detach_remote() {
    let remote = TICKS.with(|t| t.remote.borrow_mut().take());
    drop(remote);
}

/// Moves closures scheduled from other threads to the tail of the queue.
fn take_scheduled() {
    TICKS.with(|t| {
        if let Some(remote) = &*t.remote.borrow() {
            remote.move_scheduled(&mut t.queue.borrow_mut());
        }
    });
}

/// Drops every queued closure; returns how many there were.
pub(crate) fn clear() -> usize {
    // Take the queue out first: dropping a closure may queue another.
    let mut dropped = 0;
    loop {
        let q = TICKS.with(|t| t.queue.take());
        let current = TICKS.with(|t| t.current.take());
        if q.is_empty() && current.is_empty() {
            break;
        }
        dropped += q.len() + current.len();
        drop((q, current));
    }
    TICKS.with(|t| {
        t.spare.take();
        t.waker.take();
    });
    dropped
}

fn is_empty() -> bool {
    TICKS.with(|t| t.queue.borrow().is_empty() && t.current.borrow().is_empty())
}

/// Passes of at most this many closures take them one by one from the
/// queue; larger ones swap the whole queue out first.
const SMALL_PASS: usize = 8;

/// Runs one pass: the closures queued when it began, and not those they
/// queue. Returns how many it ran.
fn run_pass(core: &Core) -> usize {
    let (queued, continuing) = TICKS.with(|t| {
        t.draining.set(true);
        (t.queue.borrow().len(), !t.current.borrow().is_empty())
    });
    let ran = if queued <= SMALL_PASS && !continuing {
        run_small_pass(core, queued)
    } else {
        run_large_pass(core)
    };
    TICKS.with(|t| t.draining.set(false));
    ran
}

/// A pass of a few closures (a tick that re-schedules itself makes passes
/// of one): taken one at a time, so that no borrow is held while a closure
/// runs, without swapping queues.
fn run_small_pass(core: &Core, queued: usize) -> usize {
    let mut ran = 0;
    while ran < queued {
        let Some(tick) = TICKS.with(|t| t.queue.borrow_mut().pop_front()) else {
            break;
        };
        ran += 1;
        let _ = panic::catch("next_tick", None, tick);
        if core.stopping() {
            break;
        }
    }
    ran
}

/// Closures a large pass runs before it lets tokio poll I/O (the rest of
/// the pass runs on the next turn): a flood of closures from other threads
/// delays sockets by at most this many.
const TICKS_PER_TURN: usize = 4096;
/// How often a large pass looks for a stop asked from another thread.
const STOP_CHECK_EVERY: usize = 64;

/// A pass of many closures: the queue is swapped for the spare one, so that
/// what they queue lands in a fresh queue for the next pass. At most
/// [`TICKS_PER_TURN`] run per call; the rest waits in `current`. A stop
/// asked from another thread ([`Handle::stop`](crate::Handle::stop)) ends
/// the pass within [`STOP_CHECK_EVERY`] closures.
fn run_large_pass(core: &Core) -> usize {
    let mut batch = TICKS.with(|t| {
        let current = t.current.take();
        if current.is_empty() {
            let spare = t.spare.take();
            t.queue.replace(spare)
        } else {
            current
        }
    });
    let mut ran = 0;
    while let Some(tick) = batch.pop_front() {
        ran += 1;
        let _ = panic::catch("next_tick", None, tick);
        if ran % STOP_CHECK_EVERY == 0 && core.remote.stop_requested() {
            core.request_stop(None);
        }
        if core.stopping() {
            batch.clear();
            break;
        }
        if ran == TICKS_PER_TURN && !batch.is_empty() {
            TICKS.with(|t| t.current.replace(batch));
            return ran;
        }
    }
    if batch.capacity() > 4096 {
        batch.shrink_to(4096);
    }
    TICKS.with(|t| t.spare.replace(batch));
    ran
}

/// The task that drains ticks (and closures scheduled from other threads)
/// until the reactor stops.
pub(crate) async fn drive(core: Rc<Core>) {
    loop {
        // Park until there is work.
        poll_fn(|cx| {
            if core.stopping() {
                return Poll::Ready(());
            }
            take_scheduled();
            if !is_empty() {
                return Poll::Ready(());
            }
            TICKS.with(|t| t.waker.set(Some(cx.waker().clone())));
            core.remote.register_tick(cx.waker());
            // A closure may have been scheduled from another thread between
            // the check above and registering the waker.
            take_scheduled();
            if is_empty() {
                Poll::Pending
            } else {
                Poll::Ready(())
            }
        })
        .await;
        if core.stopping() {
            return;
        }
        let mut passes = 0;
        while passes < PASSES_BEFORE_IO {
            take_scheduled();
            let ran = run_pass(&core);
            stats::add(&core.counters.ticks_run, ran as u64);
            if ran == 0 || core.stopping() {
                break;
            }
            if TICKS.with(|t| !t.current.borrow().is_empty()) {
                // A large pass spent its turn's budget: I/O first.
                break;
            }
            passes += 1;
        }
        if core.stopping() {
            return;
        }
        if !is_empty() {
            // Let tokio poll I/O and run ready connections before the next
            // batch of passes.
            tokio::task::yield_now().await;
        }
    }
}
