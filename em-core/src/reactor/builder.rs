//! A reactor's options: [`Builder`], and the typed options that extensions
//! (em-timers, em-defer) add to it through [`crate::extension`].

use std::any::{Any, TypeId};
use std::collections::HashMap;
use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use crate::error::{Error, Result};
use crate::extension::ReactorOption;
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
/// let reactor = em_core::Reactor::builder().listen_backlog(4096).build()?;
/// reactor.run(|| em_core::stop())?;
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
    /// let result = em_core::Reactor::builder()
    ///     .stop_on_panic(true)
    ///     .run(|| em_core::next_tick(|| panic!("bug")));
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

    /// Shorthand for `build()?.run(init)`.
    pub fn run<R: RunResult>(self, init: impl FnOnce() -> R + 'static) -> Result<()> {
        self.build()?.run(init)
    }

    /// Shorthand for `build()?.synchrony(future)` ([`Reactor::synchrony`]).
    pub fn synchrony<F>(self, future: F) -> Result<F::Output>
    where
        F: std::future::Future + 'static,
        F::Output: 'static,
    {
        self.build()?.synchrony(future)
    }
}
