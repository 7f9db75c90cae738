//! `Handle`: the one `Send + Sync` door into a reactor from other threads,
//! and the cross-thread state behind it.

use std::fmt;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::task::Waker;
use std::thread::ThreadId;

use futures_util::task::AtomicWaker;

use std::collections::VecDeque;

use crate::error::{Error, Result};
use crate::reactor::ticks::Tick;

type Job = Box<dyn FnOnce() + Send>;

/// The cross-thread side of a reactor: closures scheduled from other threads
/// and the stop request.
pub(crate) struct Remote {
    thread: ThreadId,
    jobs: Mutex<Vec<Job>>,
    /// Set when `jobs` went from empty to non-empty: a cheap check for the
    /// reactor before it takes the lock.
    pending: AtomicBool,
    running: AtomicBool,
    /// A stop was asked for (here or on the reactor thread): new closures
    /// are refused from then on.
    stopping: AtomicBool,
    stop: AtomicBool,
    tick_waker: AtomicWaker,
    main_waker: AtomicWaker,
}

impl Remote {
    pub(crate) fn new(thread: ThreadId) -> Self {
        Remote {
            thread,
            jobs: Mutex::new(Vec::new()),
            pending: AtomicBool::new(false),
            running: AtomicBool::new(false),
            stopping: AtomicBool::new(false),
            stop: AtomicBool::new(false),
            tick_waker: AtomicWaker::new(),
            main_waker: AtomicWaker::new(),
        }
    }

    fn jobs(&self) -> MutexGuard<'_, Vec<Job>> {
        // A job never runs under the lock, so a poisoned lock holds a
        // consistent Vec.
        self.jobs.lock().unwrap_or_else(PoisonError::into_inner)
    }

    pub(crate) fn set_running(&self, running: bool) {
        let dropped = {
            let mut jobs = self.jobs();
            self.running.store(running, Ordering::SeqCst);
            if running {
                Vec::new()
            } else {
                std::mem::take(&mut *jobs)
            }
        };
        drop(dropped);
    }

    /// Moves closures scheduled from other threads to the tail of `queue`
    /// (the tick queue). Reactor thread only. Costs one relaxed load when
    /// nothing was scheduled: a `schedule` that returned before the caller
    /// queued its own tick has set `pending` in the caller's past.
    pub(crate) fn move_scheduled(&self, queue: &mut VecDeque<Tick>) {
        if self.pending.load(Ordering::Relaxed) && self.pending.swap(false, Ordering::Acquire) {
            let jobs = std::mem::take(&mut *self.jobs());
            queue.extend(jobs.into_iter().map(|job| -> Tick { job }));
        }
    }

    pub(crate) fn register_tick(&self, waker: &Waker) {
        self.tick_waker.register(waker);
    }

    pub(crate) fn register_main(&self, waker: &Waker) {
        self.main_waker.register(waker);
    }

    /// The reactor began to stop: `schedule` refuses from now on.
    pub(crate) fn set_stopping(&self) {
        self.stopping.store(true, Ordering::SeqCst);
    }

    /// Whether another thread asked for a stop that the reactor has not
    /// taken yet (a cheap check for long passes of closures).
    pub(crate) fn stop_requested(&self) -> bool {
        self.stop.load(Ordering::Relaxed)
    }

    pub(crate) fn take_stop_request(&self) -> bool {
        self.stop.swap(false, Ordering::AcqRel)
    }
}

/// A `Send + Sync + Clone` handle to one reactor, for other threads: run a
/// closure on the reactor thread with [`schedule`](Handle::schedule), or
/// [`stop`](Handle::stop) it. Get one with [`em::handle()`](crate::handle)
/// on the reactor thread. Every cross-thread sender of em
/// ([`ChannelSender`](crate::ChannelSender), [`QueueSender`](crate::QueueSender),
/// em-defer's results) goes through it.
///
/// ```
/// # use em_core as em;
/// em::run(|| {
///     let handle = em::handle().unwrap();
///     std::thread::spawn(move || {
///         // Runs on the reactor thread, which wakes at once.
///         handle.schedule(|| em::stop()).unwrap();
///     });
/// })?;
/// # Ok::<(), em_core::Error>(())
/// ```
#[derive(Clone)]
pub struct Handle {
    remote: Arc<Remote>,
}

impl Handle {
    pub(crate) fn new(remote: Arc<Remote>) -> Self {
        Handle { remote }
    }

    /// Queues `f` to run on the reactor thread, in one FIFO with
    /// [`next_tick`](crate::next_tick): after the ticks queued before this
    /// call and before those queued after it returned.
    /// Wakes the reactor at once if it sleeps. Callable from any thread, the
    /// reactor's own included.
    ///
    /// Errors with `is_stopping()` once the reactor has begun to stop (by
    /// [`stop`](Handle::stop) or `em::stop`), and `is_not_running()` once it
    /// has stopped; `f` is then dropped, on the calling thread. Closures
    /// still queued when the reactor stops are dropped, not run.
    pub fn schedule(&self, f: impl FnOnce() + Send + 'static) -> Result<()> {
        let first = {
            let mut jobs = self.remote.jobs();
            if !self.remote.running.load(Ordering::SeqCst) {
                return Err(Error::not_running());
            }
            if self.remote.stopping.load(Ordering::SeqCst) {
                return Err(Error::stopping("Handle::schedule"));
            }
            jobs.push(Box::new(f));
            jobs.len() == 1
        };
        if first {
            self.remote.pending.store(true, Ordering::Release);
            self.remote.tick_waker.wake();
        }
        Ok(())
    }

    /// Asks the reactor to stop, as [`em::stop`](crate::stop) does on its
    /// thread; returns at once. A no-op if it has stopped already.
    pub fn stop(&self) {
        self.remote.stopping.store(true, Ordering::SeqCst);
        self.remote.stop.store(true, Ordering::Release);
        self.remote.main_waker.wake();
    }

    /// Whether the reactor is running (until its teardown has finished).
    pub fn is_running(&self) -> bool {
        self.remote.running.load(Ordering::SeqCst)
    }

    /// The id of the reactor's thread.
    pub fn thread_id(&self) -> ThreadId {
        self.remote.thread
    }
}

impl fmt::Debug for Handle {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Handle")
            .field("thread", &self.remote.thread)
            .field("running", &self.is_running())
            .finish()
    }
}
