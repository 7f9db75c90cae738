//! A reactor's options: [`Builder`], and the typed options that extensions
//! (em-timers, em-defer) add to it through [`crate::extension`].

use std::any::{Any, TypeId};
use std::collections::HashMap;
use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use crate::error::{Error, Result};
use crate::extension::ReactorOption;
use crate::reactor::group::Membership;
use crate::reactor::panic::PanicReport;
use crate::reactor::run::{Reactor, RunResult};

/// Default high outbound watermark of a connection.
const DEFAULT_HIGH_WATERMARK: usize = 1 << 20;
/// Default low outbound watermark of a connection.
const DEFAULT_LOW_WATERMARK: usize = 256 * 1024;
/// Default hard cap on a connection's queued output.
const DEFAULT_MAX_OUTBOUND: usize = 8 << 20;
/// Default budget of queued output on all of a reactor's connections.
const DEFAULT_MAX_TOTAL_OUTBOUND: usize = 256 << 20;
/// EventMachine's first wait before it sends SIGTERM to a popen child.
const DEFAULT_CHILD_GRACE: Duration = Duration::from_millis(500);

/// Options of a reactor, set through [`Builder`].
#[derive(Debug, Clone)]
pub(crate) struct Config {
    pub(crate) listen_backlog: u32,
    pub(crate) start_paused: bool,
    pub(crate) stop_on_panic: bool,
    pub(crate) high_watermark: usize,
    pub(crate) low_watermark: usize,
    pub(crate) max_outbound: usize,
    pub(crate) max_total_outbound: usize,
    pub(crate) shutdown_grace: Duration,
    pub(crate) proxy_splice: bool,
    pub(crate) child_grace: Duration,
    pub(crate) options: Options,
    /// How many reactors `run_each` runs (0: one per available core).
    pub(crate) reactors: usize,
    /// Pin each reactor of a group to a core of its own.
    pub(crate) pin_cores: bool,
    /// Force the one-acceptor hand-off for a group's servers.
    pub(crate) accept_handoff: bool,
    /// The error handler of every reactor of a group.
    pub(crate) error_handler: Option<ErrorHandler>,
    /// This reactor's place in its group, when it is one of several.
    pub(crate) member: Option<Membership>,
}

/// An error handler every reactor of a group installs.
#[derive(Clone)]
pub(crate) struct ErrorHandler(pub(crate) Arc<dyn Fn(&PanicReport) + Send + Sync>);

impl fmt::Debug for ErrorHandler {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("ErrorHandler")
    }
}

impl Default for Config {
    fn default() -> Self {
        Config {
            listen_backlog: 1024,
            start_paused: false,
            stop_on_panic: false,
            high_watermark: DEFAULT_HIGH_WATERMARK,
            low_watermark: DEFAULT_LOW_WATERMARK,
            max_outbound: DEFAULT_MAX_OUTBOUND,
            max_total_outbound: DEFAULT_MAX_TOTAL_OUTBOUND,
            shutdown_grace: Duration::ZERO,
            proxy_splice: true,
            child_grace: DEFAULT_CHILD_GRACE,
            options: Options::default(),
            reactors: 1,
            pin_cores: false,
            accept_handoff: false,
            error_handler: None,
            member: None,
        }
    }
}

/// An extension's option value, type-erased.
trait OptionValue: Any + Send + Sync + fmt::Debug {
    fn check(&self) -> Result<(), String>;
    fn as_any(&self) -> &dyn Any;
}

impl<T: ReactorOption> OptionValue for T {
    fn check(&self) -> Result<(), String> {
        ReactorOption::check(self)
    }
    fn as_any(&self) -> &dyn Any {
        self
    }
}

/// The options extensions set, one value per type.
#[derive(Debug, Clone, Default)]
pub(crate) struct Options {
    values: HashMap<TypeId, Arc<dyn OptionValue>>,
}

impl Options {
    /// The value of option `T`: the one set, or its default.
    pub(crate) fn get<T: ReactorOption>(&self) -> T {
        self.values
            .get(&TypeId::of::<T>())
            .and_then(|v| v.as_any().downcast_ref::<T>())
            .cloned()
            .unwrap_or_default()
    }

    pub(crate) fn update<T: ReactorOption>(&mut self, f: impl FnOnce(&mut T)) {
        let mut value = self.get::<T>();
        f(&mut value);
        self.values.insert(TypeId::of::<T>(), Arc::new(value));
    }

    fn check(&self) -> Result<()> {
        for value in self.values.values() {
            value.check().map_err(Error::config)?;
        }
        Ok(())
    }
}

/// Builds a [`Reactor`] with options; every option has a default. Runs
/// anywhere; the reactor is bound to a thread only when it runs.
///
/// Extensions add their own options as extension traits on `Builder`: with
/// the `em` facade's prelude in scope, `max_timers` (em-timers) and
/// `threadpool_size`, `shutdown_timeout`, `defer_backend` (em-defer) are
/// methods here too.
///
/// ```
/// # use em_core as em;
/// let reactor = em::Reactor::builder().listen_backlog(4096).build()?;
/// reactor.run(|| em::stop())?;
/// # Ok::<(), em_core::Error>(())
/// ```
#[derive(Debug, Clone, Default)]
pub struct Builder {
    pub(crate) config: Config,
}

impl Builder {
    /// The `listen(2)` backlog of servers (default 1024). tokio's default of
    /// 128 overflows under a burst of connects and turns it into seconds of
    /// SYN retries.
    pub fn listen_backlog(mut self, backlog: u32) -> Self {
        self.config.listen_backlog = backlog;
        self
    }

    /// Runs the reactor on tokio's paused clock (default off): time stands
    /// still while the reactor has work and jumps to the next timer when it
    /// is idle, so timer tests assert exact instants and take no wall time.
    /// Needs em's `test-util` cargo feature, and applies to [`Reactor::run`]
    /// (with [`Reactor::run_local`], pause your own runtime instead).
    /// While a `defer` op runs on the pool, the paused clock does not advance
    /// on its own.
    pub fn start_paused(mut self, paused: bool) -> Self {
        self.config.start_paused = paused;
        self
    }

    /// Fail fast (default off): a panic contained in any callback (after it
    /// is reported to the [error handler](crate::set_error_handler)) stops
    /// the reactor, and `run` returns it as an error that `is_panic()`.
    /// The stop is clean: the connection that panicked gets
    /// `unbind(Panicked)`, every other one `unbind(ReactorStopped)`. The
    /// first panic is the one returned. EventMachine's default without an
    /// error handler, and what a test suite wants.
    ///
    /// ```
    /// # use em_core as em;
    /// let result = em::Reactor::builder()
    ///     .stop_on_panic(true)
    ///     .run(|| em::next_tick(|| panic!("bug")));
    /// assert!(result.unwrap_err().is_panic());
    /// ```
    pub fn stop_on_panic(mut self, stop: bool) -> Self {
        self.config.stop_on_panic = stop;
        self
    }

    /// The default outbound watermarks of every connection (default 1 MiB
    /// and 256 KiB; per connection with
    /// [`Conn::set_outbound_watermarks`](crate::Conn::set_outbound_watermarks)).
    /// Once more than `high` bytes are queued,
    /// [`Conn::is_above_high_watermark`](crate::Conn::is_above_high_watermark)
    /// is true; once the queue drains to `low` or less, the handler's
    /// [`outbound_drained`](crate::Connection::outbound_drained) runs.
    /// `build` errors with `is_config()` unless `low <= high`.
    pub fn outbound_watermarks(mut self, high: usize, low: usize) -> Self {
        self.config.high_watermark = high;
        self.config.low_watermark = low;
        self
    }

    /// The default hard cap on each connection's queued output (default
    /// 8 MiB; per connection with
    /// [`Conn::set_max_outbound`](crate::Conn::set_max_outbound)): a
    /// `send_data` that would queue more closes the connection with
    /// `UnbindReason::OutboundOverflow` instead of growing without bound.
    /// `build` errors with `is_config()` if it is below the high watermark.
    pub fn max_outbound(mut self, max: usize) -> Self {
        self.config.max_outbound = max;
        self
    }

    /// The budget of memory held by output queued on all the reactor's
    /// connections together (default 256 MiB; counted as the output
    /// buffers' capacity), so that memory stays bounded whatever
    /// the number of slow peers (100 peers that never read would otherwise
    /// hold 100 × `max_outbound`). Each connection stops reading once its
    /// own output passes its high watermark; past this budget, the
    /// connections with the most output queued are ended with
    /// `UnbindReason::OutboundOverflow` (their queues freed at once, a
    /// warning naming each), until the total is back under it. Connections
    /// that keep up are never the ones with the most queued. `build` errors
    /// with `is_config()` if it is below `max_outbound`.
    pub fn max_total_outbound(mut self, budget: usize) -> Self {
        self.config.max_total_outbound = budget;
        self
    }

    /// How long a stopping reactor lets connections flush output they still
    /// have queued (default zero: it is dropped at once, as EventMachine
    /// does). During the grace no callback runs and nothing more is read;
    /// each connection gets its `unbind(ReactorStopped)` as soon as its
    /// output has left (or failed), and those still writing when `grace` is
    /// over get it then. `run` returns once every connection is gone.
    /// Input is not read during the grace: if a peer sent bytes that were
    /// never read, the kernel resets the connection when it closes, which
    /// may cut short that peer's reading of the last output.
    pub fn shutdown_grace(mut self, grace: Duration) -> Self {
        self.config.shutdown_grace = grace;
        self
    }

    /// Whether proxies ([`Conn::proxy_incoming_to`](crate::Conn::proxy_incoming_to))
    /// between two plain TCP or Unix-domain sockets move their bytes
    /// kernel to kernel with `splice(2)` (default on; Linux only). Off,
    /// every proxied byte is copied through the reactor: the same
    /// behaviour at more CPU per byte, for comparison and for kernels
    /// whose `splice` misbehaves.
    pub fn proxy_splice(mut self, splice: bool) -> Self {
        self.config.proxy_splice = splice;
        self
    }

    /// How long a child process ([`popen`](crate::popen)) whose connection
    /// ended before it exited (closed, timed out, failed, or the reactor
    /// stopped) gets to exit on its own once its pipes are closed, before
    /// em sends it SIGTERM, and then again before SIGKILL (default 500 ms,
    /// EventMachine's first wait). em waits without blocking the reactor
    /// (EventMachine blocks it, PR2), reaps the child so no zombie is
    /// left, and runs the connection's `unbind` once the child has exited;
    /// `run` returns only after every child has. A child that closed its
    /// output on its own is waited for without a deadline (until the
    /// reactor stops).
    pub fn child_grace(mut self, grace: Duration) -> Self {
        self.config.child_grace = grace;
        self
    }

    /// How many reactors [`run_each`](Builder::run_each) runs, each on a
    /// thread of its own with its own current-thread runtime and
    /// `LocalSet`: the way to use every core without giving up the
    /// single-threaded model. `0` means one per available core. Default 1.
    /// With any other number than 1, [`run`](Builder::run) and
    /// [`synchrony`](Builder::synchrony) refuse (`is_config()`).
    pub fn reactors(mut self, n: usize) -> Self {
        self.config.reactors = n;
        self
    }

    /// Pins each reactor of [`run_each`](Builder::run_each) to a core of
    /// its own (reactor `i` to the `i`-th core this process may run on,
    /// round robin), where the system allows; a refusal is logged, not an
    /// error. Reactor 0 runs on the calling thread, which gets its cores
    /// back when `run_each` returns. Threads a reactor starts inherit its
    /// core, except em-defer's pool threads, which take back every core
    /// the process had. Default off.
    pub fn pin_to_cores(mut self, pin: bool) -> Self {
        self.config.pin_cores = pin;
        self
    }

    /// How the reactors of [`run_each`](Builder::run_each) share a server
    /// that each of them starts with the same address (`start_server`):
    /// by default each binds a listener of its own with `SO_REUSEPORT` and
    /// the kernel spreads the connections (Linux, the BSDs); with
    /// `handoff` one reactor listens and hands the accepted sockets to the
    /// reactors round robin, through their [`Handle`](crate::Handle)s (the
    /// way where `SO_REUSEPORT` does not balance, and always with
    /// `handoff(true)`).
    pub fn accept_handoff(mut self, handoff: bool) -> Self {
        self.config.accept_handoff = handoff;
        self
    }

    /// The error handler of every reactor of [`run_each`](Builder::run_each)
    /// (each reactor thread installs it, as
    /// [`set_error_handler`](crate::set_error_handler) does for one):
    /// called on the reactor thread where the panic was contained. Reactor
    /// 0 runs on the calling thread: a handler set there before is put
    /// back when `run_each` returns.
    pub fn error_handler(mut self, handler: impl Fn(&PanicReport) + Send + Sync + 'static) -> Self {
        self.config.error_handler = Some(ErrorHandler(Arc::new(handler)));
        self
    }

    /// Checks the options and returns the reactor, ready to run.
    ///
    /// Returns an error that `is_config()` when an option is out of range.
    pub fn build(self) -> Result<Reactor> {
        let c = &self.config;
        if c.listen_backlog == 0 {
            return Err(Error::config("listen_backlog must be at least 1"));
        }
        if c.low_watermark > c.high_watermark {
            return Err(Error::config(
                "outbound_watermarks: the low mark must not exceed the high mark",
            ));
        }
        if c.max_outbound < c.high_watermark {
            return Err(Error::config(
                "max_outbound must be at least the high outbound watermark",
            ));
        }
        if c.max_total_outbound < c.max_outbound {
            return Err(Error::config(
                "max_total_outbound must be at least max_outbound",
            ));
        }
        if c.start_paused && !cfg!(feature = "test-util") {
            return Err(Error::config(
                "start_paused needs the `test-util` feature of em (or em-core)",
            ));
        }
        c.options.check()?;
        Ok(Reactor::with_config(self.config))
    }

    /// Shorthand for `build()?.run(init)`: one reactor. Errors with
    /// `is_config()` after [`reactors`](Builder::reactors) asked for
    /// another number: several reactors need [`run_each`](Builder::run_each),
    /// whose run block every reactor thread calls.
    pub fn run<R: RunResult>(self, init: impl FnOnce() -> R + 'static) -> Result<()> {
        self.one_reactor("run")?;
        self.build()?.run(init)
    }

    /// Refuses a single-reactor entry point after `reactors(n != 1)`.
    fn one_reactor(&self, call: &str) -> Result<()> {
        if self.config.reactors != 1 {
            return Err(Error::config(format!(
                "reactors({}) needs run_each, whose run block runs on every reactor; {call} runs one",
                self.config.reactors
            )));
        }
        Ok(())
    }

    /// Runs [`reactors`](Builder::reactors) reactors, the first on the
    /// calling thread and each other on a thread of its own, and calls
    /// `init(index)` on each (its run block; `index` is what
    /// [`reactor_index`](crate::reactor_index) returns there); returns when
    /// every reactor has stopped and finished its teardown. Every run block
    /// starts once all reactors are up, so [`handles`](crate::handles) sees
    /// them all.
    ///
    /// The reactors share one stop: `em::stop()` on any of them, a
    /// [`Handle::stop`](crate::Handle::stop) of any, a run block's error or
    /// a panic under [`stop_on_panic`](Builder::stop_on_panic) stops them
    /// all. The options apply to each reactor; the error handler is
    /// [`error_handler`](Builder::error_handler)'s. A server started with
    /// the same address by each run block is one server served by all (see
    /// [`accept_handoff`](Builder::accept_handoff)), and every connection
    /// lives its whole life on the reactor that accepted it.
    ///
    /// Errors as [`run`](Builder::run) does, with the first reactor's error
    /// first, then the others' in index order.
    ///
    /// ```
    /// # use em_core as em;
    /// use std::sync::atomic::{AtomicUsize, Ordering};
    /// use std::sync::Arc;
    ///
    /// let ran = Arc::new(AtomicUsize::new(0));
    /// let r = ran.clone();
    /// em::Reactor::builder().reactors(2).run_each(move |_index| {
    ///     r.fetch_add(1, Ordering::SeqCst);
    ///     if em::reactor_index().unwrap() == 1 {
    ///         em::stop(); // ends both reactors
    ///     }
    /// })?;
    /// assert_eq!(ran.load(Ordering::SeqCst), 2);
    /// # Ok::<(), em_core::Error>(())
    /// ```
    pub fn run_each<R: RunResult>(
        self,
        init: impl Fn(usize) -> R + Send + Sync + 'static,
    ) -> Result<()> {
        self.build()?.run_each(init)
    }

    /// Shorthand for `build()?.synchrony(future)` ([`Reactor::synchrony`]).
    pub fn synchrony<F>(self, future: F) -> Result<F::Output>
    where
        F: std::future::Future + 'static,
        F::Output: 'static,
    {
        self.one_reactor("synchrony")?;
        self.build()?.synchrony(future)
    }
}
