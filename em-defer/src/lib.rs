//! em defer: blocking work on a bounded thread pool, with the result handed
//! back to the reactor thread (EventMachine's `EM.defer`).
//!
//! ```
//! # mod em { pub use em_core::*; pub use em_defer::*; }
//! em::run(|| -> em::Result<()> {
//!     em::defer(
//!         // On a pool thread: blocking or CPU-heavy work.
//!         || (1..=20u64).product::<u64>(),
//!         // Back on the reactor thread, with the op's value.
//!         |factorial| {
//!             assert_eq!(factorial, 2_432_902_008_176_640_000);
//!             em::stop();
//!         },
//!     )
//! })?;
//! # Ok::<(), em_core::Error>(())
//! ```
//!
//! Most users reach these through the `em` facade: `em::defer`,
//! `em::defer_with_errback`, `em::defer_op`, `em::defer_async`,
//! `em::defers_finished`.
//!
//! # Threads
//!
//! An op (`FnOnce() -> T + Send`) runs on a pool thread, never on the
//! reactor thread. Its callback or errback (`!Send` closures: they may
//! capture `Rc`s and `Conn`s) runs on the reactor thread, as every other em
//! callback does. Every function here is called on the reactor thread;
//! where no reactor runs, they return an error that `is_no_reactor()`
//! instead of panicking. An op that wants to report progress while it runs
//! sends closures to the reactor with [`em::Handle::schedule`](em_core::Handle::schedule): take a
//! handle with `em::handle()` before deferring and move it into the op.
//!
//! # The pool
//!
//! Each reactor owns a pool of at most `threadpool_size` threads
//! (`Reactor::builder().threadpool_size(n)`, default 20 as EventMachine's).
//! It is created by the first `defer` of the run (changing
//! the option needs a new reactor) and starts its threads on demand: a
//! thread starts when ops are waiting and every thread is busy, and then
//! lives until the reactor stops. At most `n` ops run at once; more wait in
//! one queue and start in the order they were deferred (FIFO); they may
//! finish in any order.
//!
//! The pool is em's own: plain `std` threads named `em-defer-N`, one
//! mutex-guarded FIFO queue and a condition variable, not tokio's blocking
//! pool. Why:
//!
//! - *The bound is defer's own.* tokio's `max_blocking_threads` is per
//!   runtime and shared with everything else that uses `spawn_blocking`
//!   (file I/O, name resolution), and with `Reactor::run_local` the runtime
//!   is the user's, not em's to configure. A dedicated pool makes "at most
//!   `threadpool_size` defers at once" exact.
//! - *Cost.* `spawn_blocking` allocates a task with a join handle per op,
//!   signals an idle thread per op, and wakes the reactor once per op when
//!   that handle completes. Here a busy pool thread takes one lock per op
//!   (to hand back the op it finished and take the next), and wake-ups go
//!   by batch, both ways (below). The `micro` benchmark's `defer` against
//!   `tokio-defer` measures the difference (over 25 times fewer nanoseconds
//!   per op on a 2-core machine).
//! - *Stopping.* Dropping a tokio runtime waits for its blocking tasks, so a
//!   reactor stopped while a `spawn_blocking` op sleeps 10 s would take 10 s
//!   to return. Pool threads are detached: `run` returns at once and the
//!   threads exit when their op ends; they never keep the process alive.
//!
//! # The other backend: tokio's blocking pool
//!
//! `Reactor::builder().defer_backend(DeferBackend::TokioBlocking)` (see
//! [`DeferOptions`]) runs each op with `tokio::task::spawn_blocking` on the
//! runtime the reactor runs on, and a local task delivers its outcome: the
//! same callbacks, errbacks, futures and `defers_finished`, for programs that
//! host em in their own runtime (`Reactor::run_local`) and want its
//! `max_blocking_threads` limit and its tooling to cover defers too. It costs
//! what raw `spawn_blocking` costs (the `micro` bench `defer-tokio-backend`
//! against `tokio-defer`); `threadpool_size` and `shutdown_timeout` do not
//! apply to it.
//!
//! # Batches both ways
//!
//! Handing work between threads costs a wake-up (a system call, and on a
//! busy core a context switch), so em pays one per batch, not one per op.
//!
//! - *To the pool.* `defer` queues the op and returns. The first op
//!   deferred since the pool was last woken wakes an idle pool thread at
//!   once (so a lone op starts without delay) and queues a
//!   [`next_tick`](em_core::next_tick); the ops deferred after it wait for
//!   that tick, which wakes as many idle threads as there are ops left (and
//!   starts threads, up to the pool size, if too few are idle). So however
//!   many ops one callback (or the run block) defers, the pool is woken
//!   about twice, and all but the first start once the callback returns.
//! - *Back to the reactor.* A finished op joins a batch of results. The pool
//!   thread that makes the batch non-empty asks the reactor to collect it,
//!   through [`Handle::schedule`](em_core::Handle::schedule), which wakes
//!   the reactor only when its own queue was empty. The reactor takes the
//!   whole batch and runs its callbacks one after the other, in the order
//!   the ops finished. So however many ops finish while the reactor is
//!   busy, it is woken once and collects them all at once.
//!
//! A batch of results is delivered like a closure from
//! `Handle::schedule`: after the `next_tick`s already queued when it
//! arrived. (EventMachine delivers defer results before the `next_tick`s of
//! the same drain; em promises no order between the two, as for timers.)
//!
//! # Panics
//!
//! A panicking op is caught on its pool thread (the thread lives on, and
//! the standard panic hook prints its message as for any panic). On the
//! reactor thread, the errback of [`defer_with_errback`] gets a
//! [`DeferError`] that [`is_panic()`](DeferError::is_panic) carrying the
//! message; without an errback, the panic is logged at error level and the
//! reactor runs on. A panic in a callback or errback is contained as in
//! every em callback: logged at error level, and the reactor runs on.
//! Unlike EventMachine, none of this breaks a later `run`.
//!
//! # Stopping
//!
//! When the reactor stops, after every connection's `unbind`:
//!
//! - ops still queued never run, and their callbacks never run;
//! - by default `run` does not wait for running ops: it returns at once,
//!   their callbacks never run, and results not yet delivered are dropped;
//! - with `Reactor::builder().shutdown_timeout(d)`, `run` waits up to `d`
//!   for the running ops; the callbacks (or errbacks) of ops that finished
//!   by then run on the reactor thread during that teardown, after every
//!   `unbind`; ops still running after `d` are abandoned as above.
//!
//! Once the reactor stops (from an `unbind`, a shutdown hook, or the
//! teardown), `defer` and its siblings refuse new ops with an error that
//! `is_stopping()`, like every em call that would create something. A
//! later `run` gets a fresh pool.
//!
//! # Tokio's paused clock
//!
//! With em's `test-util` feature (which `Reactor::builder().start_paused`
//! needs), tokio's paused clock does not auto-advance while a defer op is
//! queued, running, or waiting for the reactor to take its result (time
//! stands still until the reactor has collected it), as it does while a
//! `spawn_blocking` task runs. So under the paused clock a blocking op takes
//! no virtual time, and a timer never fires early because an op was slow.
//! The flip side: an op that blocks until a timer fires never ends.
//! (tokio knows nothing of em's pool threads; without this guard, the paused
//! clock would jump to the next timer as soon as the reactor waited for an
//! op. em holds it with one `spawn_blocking` task per busy period, only in
//! `test-util` builds.) If you pause a runtime of your own under
//! `Reactor::run_local` without em's `test-util` feature, there is no guard
//! and the clock does jump.

#![deny(missing_docs)]
#![warn(clippy::print_stdout, clippy::print_stderr)]
#![doc(test(attr(deny(warnings))))]

mod delivery;
mod error;
mod future;
mod options;
mod task;
mod thread_pool;

use delivery::Defer;
use task::{Callback, Callbacks, Forget};

pub use error::DeferError;
pub use future::DeferFuture;
pub use options::{DeferBackend, DeferOptions};

/// Runs `op` on a pool thread, then `callback` with its value on the reactor
/// thread (EventMachine's `EM.defer(op, callback)`).
///
/// Call it on the reactor thread; it returns at once. If `op` panics, the
/// panic is logged at error level on the reactor thread and `callback` does
/// not run (to handle it, use [`defer_with_errback`]). If the reactor stops
/// before the value is delivered, `callback` never runs (see the crate
/// docs, "Stopping").
///
/// Errors with `is_no_reactor()` where no reactor runs and `is_stopping()`
/// once it stops; `op` and `callback` are then dropped, unrun.
///
/// ```
/// # mod em { pub use em_core::*; pub use em_defer::*; }
/// use std::time::Duration;
///
/// em::run(|| -> em::Result<()> {
///     let reactor = std::thread::current().id();
///     em::defer(
///         move || {
///             assert_ne!(std::thread::current().id(), reactor);
///             std::thread::sleep(Duration::from_millis(5)); // blocking is fine here
///             "done"
///         },
///         move |value| {
///             assert_eq!(std::thread::current().id(), reactor);
///             assert_eq!(value, "done");
///             em::stop();
///         },
///     )
/// })?;
/// # Ok::<(), em_core::Error>(())
/// ```
pub fn defer<T, F, C>(op: F, callback: C) -> em_core::Result<()>
where
    F: FnOnce() -> T + Send + 'static,
    T: Send + 'static,
    C: FnOnce(T) + 'static,
{
    Defer::current("defer")?.submit("defer", op, Callback(callback))
}

/// Like [`defer`], but when `op` panics `errback` runs instead of
/// `callback`, on the reactor thread, with a [`DeferError`] that
/// [`is_panic()`](DeferError::is_panic) and carries the panic message
/// (EventMachine's `EM.defer(op, callback, errback)`).
///
/// Errors with `is_no_reactor()` where no reactor runs.
///
/// ```
/// # mod em { pub use em_core::*; pub use em_defer::*; }
/// em::run(|| {
///     em::defer_with_errback(
///         || -> u32 { panic!("disk on fire") },
///         |_| unreachable!(),
///         |error| {
///             assert_eq!(error.panic_message(), Some("disk on fire"));
///             em::stop();
///         },
///     )
/// })?;
/// # Ok::<(), em_core::Error>(())
/// ```
pub fn defer_with_errback<T, F, C, E>(op: F, callback: C, errback: E) -> em_core::Result<()>
where
    F: FnOnce() -> T + Send + 'static,
    T: Send + 'static,
    C: FnOnce(T) + 'static,
    E: FnOnce(DeferError) + 'static,
{
    let reply = Callbacks { callback, errback };
    Defer::current("defer_with_errback")?.submit("defer_with_errback", op, reply)
}

/// Runs `op` on a pool thread and forgets it (EventMachine's `EM.defer(op)`
/// without a callback). A panic in `op` is logged at error level on the
/// reactor thread. The op still counts for [`defers_finished`] until it has
/// ended.
///
/// Errors with `is_no_reactor()` where no reactor runs.
pub fn defer_op<F>(op: F) -> em_core::Result<()>
where
    F: FnOnce() + Send + 'static,
{
    Defer::current("defer_op")?.submit("defer_op", op, Forget)
}

/// Runs `op` on a pool thread; the returned future resolves to its value on
/// the reactor thread. For procedural code under `em::spawn` (what
/// em-synchrony's `EM::Synchrony.defer` gave Ruby).
///
/// The op is queued at once, before the future is first polled. The future
/// resolves to an error that [`is_panic()`](DeferError::is_panic) if `op`
/// panics, and at once to one that
/// [`is_no_reactor()`](DeferError::is_no_reactor) where no reactor runs.
///
/// ```
/// # mod em { pub use em_core::*; pub use em_defer::*; }
/// em::run(|| -> em::Result<()> {
///     em::spawn(async {
///         let sum = em::defer_async(|| (1..=100u32).sum::<u32>()).await;
///         assert_eq!(sum.unwrap(), 5050);
///         em::stop();
///     })?;
///     Ok(())
/// })?;
/// # Ok::<(), em_core::Error>(())
/// ```
pub fn defer_async<T, F>(op: F) -> DeferFuture<T>
where
    F: FnOnce() -> T + Send + 'static,
    T: Send + 'static,
{
    let defer = match Defer::current("defer_async") {
        Ok(defer) => defer,
        Err(e) => return DeferFuture::failed(DeferError::reactor(e)),
    };
    let (future, wake) = DeferFuture::waiting();
    match defer.submit("defer_async", op, wake) {
        Ok(()) => future,
        Err(e) => DeferFuture::failed(DeferError::reactor(e)),
    }
}

/// Whether every op deferred on this thread's reactor has been dealt with:
/// none is queued, none is running, and no result waits for delivery
/// (EventMachine's `defers_finished?`). Ops whose future was dropped count
/// until they have ended. Reactor thread; true where no reactor runs.
///
/// ```
/// # mod em { pub use em_core::*; pub use em_defer::*; }
/// em::run(|| -> em::Result<()> {
///     assert!(em::defers_finished());
///     em::defer(|| 1, |_| {
///         // Delivered: nothing left.
///         assert!(em::defers_finished());
///         em::stop();
///     })?;
///     assert!(!em::defers_finished());
///     Ok(())
/// })?;
/// # Ok::<(), em_core::Error>(())
/// ```
pub fn defers_finished() -> bool {
    Defer::current("defers_finished").map_or(true, |defer| defer.finished())
}
