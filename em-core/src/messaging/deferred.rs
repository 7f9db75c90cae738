//! `Deferred`: EventMachine's Deferrable as a one-shot result that is also a
//! future.

use std::cell::{Cell, OnceCell, RefCell};
use std::collections::VecDeque;
use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::rc::Rc;
use std::task::{Context, Poll, Waker};
use std::time::Duration;

use tokio::task::JoinHandle;

use crate::error::{Error, Result};
use crate::reactor::panic;

type Callback<T> = Box<dyn FnOnce(&T)>;
type Completion<T, E> = Box<dyn FnOnce(&std::result::Result<T, E>)>;

struct Inner<T, E> {
    result: OnceCell<std::result::Result<T, E>>,
    callbacks: RefCell<Vec<Callback<T>>>,
    errbacks: RefCell<Vec<Callback<E>>>,
    completions: RefCell<Vec<Completion<T, E>>>,
    wakers: RefCell<Vec<Waker>>,
    timeout: RefCell<Option<JoinHandle<()>>>,
    /// Callbacks run (inside `resolve`, or one added after resolution):
    /// late ones added meanwhile wait in `late` and run after, in order,
    /// so that a chain of callbacks adding callbacks never recurses.
    running: Cell<bool>,
    late: RefCell<VecDeque<(&'static str, Completion<T, E>)>>,
}

/// A one-shot result, success `T` or failure `E` (EventMachine's
/// `EM::Deferrable`): producers call [`succeed`](Deferred::succeed) or
/// [`fail`](Deferred::fail); consumers add [`callback`](Deferred::callback)s
/// and [`errback`](Deferred::errback)s, or `.await` it (it is a `Future`
/// with `Output = Result<T, E>`, for procedural code under
/// [`spawn`](crate::spawn), as em-synchrony's `sync`).
///
/// A `Deferred` is a cheap `Clone` handle (clones share the result) and is
/// `!Send`: its callbacks run on the thread that resolves it, the reactor
/// thread.
///
/// # Rules
///
/// * **The first resolution wins** (em differs from EventMachine here, as a
///   future must: EventMachine lets `fail` follow `succeed` and a callback
///   `succeed` again): once it succeeded or failed, later `succeed`/`fail`
///   calls change nothing and return `false`.
/// * Callbacks run FIFO, synchronously inside `succeed` (errbacks inside
///   `fail`), before it returns.
/// * A callback added after success runs at once with the stored value; an
///   errback added after success is dropped, never run, and vice versa.
///   One added while callbacks of this deferred are running (from inside
///   one of them) runs right after them, so that chains of callbacks that
///   add callbacks run iteratively, at any length.
/// * A [`completion`](Deferred::completion) runs on either outcome, after
///   that side's callbacks (EventMachine's `Completion`, CP1; em has no
///   custom states).
/// * [`timeout`](Deferred::timeout) fails it if nothing resolved it in
///   time; resolving it first cancels the timeout.
/// * A callback that panics is contained and logged; the next ones still run.
///
/// ```
/// # use em_core as em;
/// use std::{cell::RefCell, rc::Rc};
/// let log = Rc::new(RefCell::new(Vec::new()));
/// let l = log.clone();
/// em::run(move || {
///     let d = em::Deferred::<u32, String>::new();
///     let l1 = l.clone();
///     d.callback(move |v| l1.borrow_mut().push(format!("cb {v}")));
///     assert!(d.succeed(1));
///     assert!(!d.fail("too late".into())); // the first resolution wins
///     let l2 = l.clone();
///     d.callback(move |v| l2.borrow_mut().push(format!("late cb {v}")));
///     em::stop();
/// })?;
/// assert_eq!(*log.borrow(), ["cb 1", "late cb 1"]);
/// # Ok::<(), em_core::Error>(())
/// ```
pub struct Deferred<T, E> {
    inner: Rc<Inner<T, E>>,
}

impl<T, E> Clone for Deferred<T, E> {
    fn clone(&self) -> Self {
        Deferred {
            inner: self.inner.clone(),
        }
    }
}

impl<T: 'static, E: 'static> Default for Deferred<T, E> {
    fn default() -> Self {
        Self::new()
    }
}

impl<T: 'static, E: 'static> Deferred<T, E> {
    /// An unresolved deferred. Any thread.
    pub fn new() -> Self {
        Deferred {
            inner: Rc::new(Inner {
                result: OnceCell::new(),
                callbacks: RefCell::new(Vec::new()),
                errbacks: RefCell::new(Vec::new()),
                completions: RefCell::new(Vec::new()),
                wakers: RefCell::new(Vec::new()),
                timeout: RefCell::new(None),
                running: Cell::new(false),
                late: RefCell::new(VecDeque::new()),
            }),
        }
    }

    /// Resolves it with success `value`: the callbacks run now, FIFO, before
    /// `succeed` returns, then the [`completion`](Self::completion)s; errbacks
    /// are dropped; awaiting tasks are woken.
    /// Returns `false`, and drops `value`, if it was resolved already.
    pub fn succeed(&self, value: T) -> bool {
        self.resolve(Ok(value))
    }

    /// Resolves it with failure `error`: the errbacks run now, FIFO, before
    /// `fail` returns, then the [`completion`](Self::completion)s; callbacks
    /// are dropped; awaiting tasks are woken.
    /// Returns `false`, and drops `error`, if it was resolved already.
    pub fn fail(&self, error: E) -> bool {
        self.resolve(Err(error))
    }

    /// Resolves it with `result` ([`succeed`](Self::succeed) or
    /// [`fail`](Self::fail); EventMachine's `set_deferred_status`).
    pub fn resolve(&self, result: std::result::Result<T, E>) -> bool {
        let inner = &*self.inner;
        if inner.result.set(result).is_err() {
            return false;
        }
        self.cancel_timeout();
        let outermost = !inner.running.replace(true);
        let callbacks = inner.callbacks.take();
        let errbacks = inner.errbacks.take();
        match inner.result.get() {
            Some(Ok(value)) => {
                drop(errbacks);
                for cb in callbacks {
                    let _ = panic::catch("deferred callback", None, || cb(value));
                }
            }
            Some(Err(error)) => {
                drop(callbacks);
                for eb in errbacks {
                    let _ = panic::catch("deferred errback", None, || eb(error));
                }
            }
            None => unreachable!("the result was just set"),
        }
        if let Some(result) = inner.result.get() {
            for f in inner.completions.take() {
                let _ = panic::catch("deferred completion", None, || f(result));
            }
        }
        for waker in inner.wakers.take() {
            waker.wake();
        }
        if outermost {
            self.run_late();
        }
        true
    }

    /// Runs `f` with the result now, or after the callbacks running right
    /// now (see `running`).
    fn run_resolved(&self, name: &'static str, f: Completion<T, E>) {
        let inner = &*self.inner;
        inner.late.borrow_mut().push_back((name, f));
        if !inner.running.replace(true) {
            self.run_late();
        }
    }

    /// Runs the late callbacks until none is left, then clears `running`.
    fn run_late(&self) {
        let inner = &*self.inner;
        let result = inner.result.get().expect("run only once resolved");
        loop {
            let next = inner.late.borrow_mut().pop_front();
            let Some((name, f)) = next else { break };
            let _ = panic::catch(name, None, || f(result));
        }
        inner.running.set(false);
    }

    /// Adds `f`, called with the success value: at once if it succeeded
    /// already, inside `succeed` otherwise (after the callbacks added
    /// before); never if it fails.
    pub fn callback(&self, f: impl FnOnce(&T) + 'static) -> &Self {
        match self.inner.result.get() {
            Some(Ok(_)) => self.run_resolved(
                "deferred callback",
                Box::new(move |r| {
                    if let Ok(value) = r {
                        f(value);
                    }
                }),
            ),
            Some(Err(_)) => {}
            None => self.inner.callbacks.borrow_mut().push(Box::new(f)),
        }
        self
    }

    /// Adds `f`, called with the failure: at once if it failed already,
    /// inside `fail` otherwise (after the errbacks added before); never if
    /// it succeeds.
    pub fn errback(&self, f: impl FnOnce(&E) + 'static) -> &Self {
        match self.inner.result.get() {
            Some(Err(_)) => self.run_resolved(
                "deferred errback",
                Box::new(move |r| {
                    if let Err(error) = r {
                        f(error);
                    }
                }),
            ),
            Some(Ok(_)) => {}
            None => self.inner.errbacks.borrow_mut().push(Box::new(f)),
        }
        self
    }

    /// Adds `f`, called with the result whichever way it resolves
    /// (EventMachine's `Completion#completion`, rule CP1): at once if it is
    /// resolved already, otherwise inside `succeed` or `fail`, after the
    /// callbacks (or errbacks) of that side.
    pub fn completion(&self, f: impl FnOnce(&std::result::Result<T, E>) + 'static) -> &Self {
        match self.inner.result.get() {
            Some(_) => self.run_resolved("deferred completion", Box::new(f)),
            None => self.inner.completions.borrow_mut().push(Box::new(f)),
        }
        self
    }

    /// Fails it with `error` after `after` (on the reactor's clock), unless
    /// it was resolved by then. A later `timeout`
    /// replaces an earlier one. A pending timeout keeps the deferred alive:
    /// its errbacks run at the timeout even if the program dropped every
    /// handle to it (as EventMachine's timer keeps the deferrable). Reactor thread only: errors with
    /// `is_no_reactor()` elsewhere and `is_stopping()` once the reactor
    /// stops. A no-op on a resolved deferred.
    pub fn timeout(&self, after: Duration, error: E) -> Result<()> {
        let core = crate::reactor::core::Core::current("Deferred::timeout")?;
        if core.stopping() {
            return Err(Error::stopping("Deferred::timeout"));
        }
        if self.is_resolved() {
            return Ok(());
        }
        // The timer holds the deferred (as EventMachine's timer holds the
        // deferrable): a deferred whose handles were all dropped still
        // fails at the timeout, and its errbacks run. Resolving it aborts
        // the task, which lets the deferred go.
        let inner = self.inner.clone();
        let task = tokio::task::spawn_local(async move {
            tokio::time::sleep(after).await;
            // This task is finishing: do not abort it from `resolve`.
            inner.timeout.borrow_mut().take();
            Deferred { inner }.fail(error);
        });
        if let Some(old) = self.inner.timeout.replace(Some(task)) {
            old.abort();
        }
        Ok(())
    }

    /// Cancels a pending [`timeout`](Self::timeout); a no-op without one.
    pub fn cancel_timeout(&self) {
        if let Some(task) = self.inner.timeout.take() {
            task.abort();
        }
    }

    /// Whether it succeeded or failed.
    pub fn is_resolved(&self) -> bool {
        self.inner.result.get().is_some()
    }

    /// Whether it succeeded.
    pub fn is_succeeded(&self) -> bool {
        matches!(self.inner.result.get(), Some(Ok(_)))
    }

    /// Whether it failed.
    pub fn is_failed(&self) -> bool {
        matches!(self.inner.result.get(), Some(Err(_)))
    }
}

impl<T, E> Drop for Inner<T, E> {
    fn drop(&mut self) {
        if let Some(task) = self.timeout.get_mut().take() {
            task.abort();
        }
    }
}

/// Awaiting a `Deferred` gives a clone of its result, once resolved; every
/// clone of the deferred may be awaited. Poll it on the reactor thread.
///
/// ```
/// # use em_core as em;
/// em::run(|| -> em::Result<()> {
///     let d = em::Deferred::<&str, ()>::new();
///     let waiting = d.clone();
///     em::spawn(async move {
///         assert_eq!(waiting.await, Ok("done"));
///         em::stop();
///     })?;
///     em::next_tick(move || {
///         d.succeed("done");
///     });
///     Ok(())
/// })?;
/// # Ok::<(), em_core::Error>(())
/// ```
impl<T: Clone + 'static, E: Clone + 'static> Future for Deferred<T, E> {
    type Output = std::result::Result<T, E>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        if let Some(result) = self.inner.result.get() {
            return Poll::Ready(result.clone());
        }
        let mut wakers = self.inner.wakers.borrow_mut();
        if !wakers.iter().any(|w| w.will_wake(cx.waker())) {
            wakers.push(cx.waker().clone());
        }
        Poll::Pending
    }
}

impl<T, E> fmt::Debug for Deferred<T, E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let state = match self.inner.result.get() {
            None => "pending",
            Some(Ok(_)) => "succeeded",
            Some(Err(_)) => "failed",
        };
        f.debug_struct("Deferred").field("state", &state).finish()
    }
}
