//! `TickLoop`: a callback run once per reactor tick until it says stop.

use std::cell::{Cell, RefCell};
use std::fmt;
use std::ops::ControlFlow;
use std::rc::Rc;

use crate::error::{Error, Result};
use crate::reactor::panic;

type Body = Box<dyn FnMut() -> ControlFlow<()>>;

struct Inner {
    body: RefCell<Body>,
    running: Cell<bool>,
    /// Bumped by every start and stop, so that a tick queued by an earlier
    /// run does nothing.
    generation: Cell<u64>,
    on_stop: RefCell<Vec<Box<dyn FnOnce()>>>,
}

/// A callback run once per reactor tick, through [`next_tick`](crate::next_tick),
/// until it returns `ControlFlow::Break(())` or [`stop`](TickLoop::stop) is
/// called (EventMachine's `EM.tick_loop` / `EM::TickLoop`).
///
/// A `TickLoop` is a cheap `Clone` handle and is `!Send`: the body and the
/// `on_stop` callbacks run on the reactor thread. It may be started before
/// [`run`](crate::run): its first tick is then the reactor's first pass. A
/// panicking body is contained and logged, and stops the loop (so that a
/// broken body does not spin); the `on_stop` callbacks then run.
///
/// ```
/// # use em_core as em;
/// use std::ops::ControlFlow;
/// use std::{cell::Cell, rc::Rc};
/// let ticks = Rc::new(Cell::new(0));
/// let t = ticks.clone();
/// em::run(move || {
///     let tl = em::tick_loop(move || {
///         t.set(t.get() + 1);
///         if t.get() == 3 { ControlFlow::Break(()) } else { ControlFlow::Continue(()) }
///     });
///     tl.on_stop(em::stop);
/// })?;
/// assert_eq!(ticks.get(), 3);
/// # Ok::<(), em_core::Error>(())
/// ```
#[derive(Clone)]
pub struct TickLoop {
    inner: Rc<Inner>,
}

/// Makes a [`TickLoop`] running `body` and starts it: `body` first runs on
/// a later tick, never before this returns. Any thread (before
/// [`run`](crate::run) the ticks wait for the reactor).
pub fn tick_loop(body: impl FnMut() -> ControlFlow<()> + 'static) -> TickLoop {
    let tl = TickLoop::new(body);
    tl.start().expect("a new tick loop is stopped");
    tl
}

impl TickLoop {
    /// A stopped loop that will run `body` once [`start`](Self::start)ed.
    pub fn new(body: impl FnMut() -> ControlFlow<()> + 'static) -> Self {
        TickLoop {
            inner: Rc::new(Inner {
                body: RefCell::new(Box::new(body)),
                running: Cell::new(false),
                generation: Cell::new(0),
                on_stop: RefCell::new(Vec::new()),
            }),
        }
    }

    /// Starts the loop: the body runs on the next tick and then once per
    /// tick. A stopped loop may be started again.
    ///
    /// Errors with `is_already_started()` if it is running
    /// (EventMachine's "double start").
    pub fn start(&self) -> Result<()> {
        if self.inner.running.replace(true) {
            return Err(Error::already_started("TickLoop::start"));
        }
        let generation = self.inner.generation.get() + 1;
        self.inner.generation.set(generation);
        self.schedule(generation);
        Ok(())
    }

    fn schedule(&self, generation: u64) {
        let this = self.clone();
        crate::next_tick(move || this.tick(generation));
    }

    fn tick(&self, generation: u64) {
        if !self.inner.running.get() || self.inner.generation.get() != generation {
            return;
        }
        let flow = match self.inner.body.try_borrow_mut() {
            Ok(mut body) => panic::catch("tick_loop", None, &mut **body),
            Err(_) => Ok(ControlFlow::Continue(())),
        };
        match flow {
            Ok(ControlFlow::Continue(())) => {
                // The body may have stopped (and even restarted) the loop.
                if self.inner.running.get() && self.inner.generation.get() == generation {
                    self.schedule(generation);
                }
            }
            Ok(ControlFlow::Break(())) | Err(_) => {
                if self.inner.generation.get() == generation {
                    self.stop();
                }
            }
        }
    }

    /// Stops the loop: the body does not run again, and each `on_stop`
    /// callback runs now, once, in the order added. A no-op on a stopped
    /// loop.
    pub fn stop(&self) {
        if !self.inner.running.replace(false) {
            return;
        }
        self.inner.generation.set(self.inner.generation.get() + 1);
        loop {
            let next = {
                let mut cbs = self.inner.on_stop.borrow_mut();
                if cbs.is_empty() {
                    None
                } else {
                    Some(cbs.remove(0))
                }
            };
            match next {
                Some(f) => {
                    let _ = panic::catch("tick_loop on_stop", None, f);
                }
                None => break,
            }
        }
    }

    /// Whether the loop is stopped (not started yet, or stopped since).
    pub fn is_stopped(&self) -> bool {
        !self.inner.running.get()
    }

    /// Adds `f`, run once when the loop stops; on a stopped loop it runs at
    /// once, before `on_stop` returns.
    pub fn on_stop(&self, f: impl FnOnce() + 'static) {
        if self.is_stopped() {
            let _ = panic::catch("tick_loop on_stop", None, f);
        } else {
            self.inner.on_stop.borrow_mut().push(Box::new(f));
        }
    }
}

impl fmt::Debug for TickLoop {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TickLoop")
            .field("running", &self.inner.running.get())
            .finish_non_exhaustive()
    }
}
