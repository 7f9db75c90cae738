//! The reactor: one current-thread tokio runtime plus a `LocalSet`, the run
//! loop, `stop` and the teardown that gives every connection its `unbind`.

use std::any::{Any, TypeId};
use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::fmt;
use std::future::{poll_fn, Future};
use std::rc::Rc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::task::{Poll, Waker};
use std::time::Duration;

use tokio::task::{JoinHandle, LocalSet};

use crate::connection::{ConnControl, ConnectionId};
use crate::driver;
use crate::error::{BoxError, Error, Result};
use crate::handle::{Handle, Remote};
use crate::panic;
use crate::server::ServerInner;
use crate::tick;

/// How many reactors run in this process (for [`reactor_running`]).
static RUNNING: AtomicUsize = AtomicUsize::new(0);

thread_local! {
    static CURRENT: RefCell<Option<Rc<Core>>> = const { RefCell::new(None) };
}

/// Options of a reactor, set through [`Builder`].
#[derive(Debug, Clone)]
pub(crate) struct Config {
    pub(crate) listen_backlog: u32,
    pub(crate) max_timers: Option<usize>,
    pub(crate) start_paused: bool,
    pub(crate) threadpool_size: usize,
    pub(crate) shutdown_timeout: Option<Duration>,
    pub(crate) stop_on_panic: bool,
    pub(crate) high_watermark: usize,
    pub(crate) low_watermark: usize,
    pub(crate) max_outbound: usize,
    pub(crate) shutdown_grace: Duration,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            listen_backlog: 1024,
            max_timers: Some(100_000),
            start_paused: false,
            threadpool_size: 20,
            shutdown_timeout: None,
            stop_on_panic: false,
            high_watermark: DEFAULT_HIGH_WATERMARK,
            low_watermark: DEFAULT_LOW_WATERMARK,
            max_outbound: DEFAULT_MAX_OUTBOUND,
            shutdown_grace: Duration::ZERO,
        }
    }
}

/// Default high outbound watermark of a connection.
const DEFAULT_HIGH_WATERMARK: usize = 1 << 20;
/// Default low outbound watermark of a connection.
const DEFAULT_LOW_WATERMARK: usize = 256 * 1024;
/// Default hard cap on a connection's queued output.
const DEFAULT_MAX_OUTBOUND: usize = 8 << 20;

/// The state of one running reactor, owned by its thread.
pub(crate) struct Core {
    pub(crate) config: Config,
    stopping: Cell<bool>,
    /// The stop's grace period runs: connections with queued output flush
    /// it before their `unbind(ReactorStopped)`.
    grace: Cell<bool>,
    error: RefCell<Option<Error>>,
    main_waker: RefCell<Option<Waker>>,
    conns: RefCell<HashMap<ConnectionId, Rc<dyn ConnControl>>>,
    next_conn_id: Cell<u64>,
    servers: RefCell<Vec<Rc<ServerInner>>>,
    /// State of em's other crates (timers, defer), one value per type,
    /// dropped at teardown after every `unbind`.
    locals: RefCell<HashMap<TypeId, Rc<dyn Any>>>,
    /// Run at teardown, last registered first, after every `unbind`.
    teardown_hooks: RefCell<Vec<Box<dyn FnOnce()>>>,
    pub(crate) remote: Arc<Remote>,
}

impl Core {
    fn new(config: Config) -> Self {
        Core {
            config,
            stopping: Cell::new(false),
            grace: Cell::new(false),
            error: RefCell::new(None),
            main_waker: RefCell::new(None),
            conns: RefCell::new(HashMap::new()),
            next_conn_id: Cell::new(1),
            servers: RefCell::new(Vec::new()),
            locals: RefCell::new(HashMap::new()),
            teardown_hooks: RefCell::new(Vec::new()),
            remote: Arc::new(Remote::new(std::thread::current().id())),
        }
    }

    /// The core of the reactor running on this thread, or the typed error
    /// naming `call`.
    pub(crate) fn current(call: &'static str) -> Result<Rc<Core>> {
        CURRENT
            .with(|c| c.borrow().clone())
            .ok_or_else(|| Error::no_reactor(call))
    }

    /// Like [`Core::current`], but also refuses while the reactor stops.
    pub(crate) fn current_accepting(call: &'static str) -> Result<Rc<Core>> {
        let core = Core::current(call)?;
        if core.stopping() {
            return Err(Error::stopping(call));
        }
        Ok(core)
    }

    pub(crate) fn stopping(&self) -> bool {
        self.stopping.get()
    }

    /// Whether the stop's grace period (`shutdown_grace`) still runs.
    pub(crate) fn in_grace(&self) -> bool {
        self.grace.get()
    }

    /// Asks the reactor to stop; `error` (the first one wins) is what `run`
    /// will return.
    pub(crate) fn request_stop(&self, error: Option<Error>) {
        if let Some(e) = error {
            let mut slot = self.error.borrow_mut();
            if slot.is_none() {
                *slot = Some(e);
            }
        }
        if !self.stopping.replace(true) {
            // Set with the stop, so that no connection polled before the
            // teardown begins misses its grace.
            self.grace.set(!self.config.shutdown_grace.is_zero());
            tracing::debug!("reactor stop requested");
            self.wake_main();
        }
    }

    fn wake_main(&self) {
        if let Some(w) = self.main_waker.borrow_mut().take() {
            w.wake();
        }
    }

    pub(crate) fn next_conn_id(&self) -> ConnectionId {
        let id = self.next_conn_id.get();
        self.next_conn_id.set(id + 1);
        ConnectionId(id)
    }

    pub(crate) fn register_conn(&self, id: ConnectionId, conn: Rc<dyn ConnControl>) {
        self.conns.borrow_mut().insert(id, conn);
    }

    pub(crate) fn deregister_conn(&self, id: ConnectionId) {
        let empty = {
            let mut conns = self.conns.borrow_mut();
            conns.remove(&id);
            conns.is_empty()
        };
        if empty && self.stopping() {
            self.wake_main();
        }
    }

    pub(crate) fn connection_count(&self) -> usize {
        self.conns.borrow().len()
    }

    /// The value of type `T` belonging to this reactor, made by `init` on
    /// first use.
    pub(crate) fn local<T: 'static>(&self, init: impl FnOnce() -> T) -> Rc<T> {
        let id = TypeId::of::<T>();
        if let Some(v) = self.locals.borrow().get(&id) {
            if let Ok(v) = v.clone().downcast::<T>() {
                return v;
            }
        }
        let v = Rc::new(init());
        self.locals.borrow_mut().insert(id, v.clone());
        v
    }

    pub(crate) fn on_teardown(&self, hook: Box<dyn FnOnce()>) {
        self.teardown_hooks.borrow_mut().push(hook);
    }

    pub(crate) fn register_server(&self, server: Rc<ServerInner>) {
        let mut servers = self.servers.borrow_mut();
        servers.retain(|s| !s.is_stopped());
        servers.push(server);
    }
}

/// Builds a [`Reactor`] with options; every option has a default.
///
/// ```
/// let reactor = em_core::Reactor::builder().listen_backlog(4096).build()?;
/// reactor.run(|| em_core::stop())?;
/// # Ok::<(), em_core::Error>(())
/// ```
#[derive(Debug, Clone, Default)]
pub struct Builder {
    config: Config,
}

impl Builder {
    /// The `listen(2)` backlog of servers (default 1024). tokio's default of
    /// 128 overflows under a burst of connects and turns it into seconds of
    /// SYN retries.
    pub fn listen_backlog(mut self, backlog: u32) -> Self {
        self.config.listen_backlog = backlog;
        self
    }

    /// The most timers (one-shot and periodic) that may be pending at once
    /// (EventMachine's `set_max_timers`; default 100,000, `None` lifts the
    /// cap). Adding one more is an error the caller sees.
    pub fn max_timers(mut self, max: Option<usize>) -> Self {
        self.config.max_timers = max;
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

    /// How many `defer` ops run at once on the thread pool (default 20, as
    /// EventMachine); more wait in FIFO order. At least 1.
    pub fn threadpool_size(mut self, threads: usize) -> Self {
        self.config.threadpool_size = threads;
        self
    }

    /// How long a stopping reactor waits for `defer` ops still running
    /// (default: it does not wait; their callbacks never run).
    pub fn shutdown_timeout(mut self, timeout: Duration) -> Self {
        self.config.shutdown_timeout = Some(timeout);
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

    /// Checks the options and returns the reactor, ready to run.
    ///
    /// Returns an error that `is_config()` when an option is out of range.
    pub fn build(self) -> Result<Reactor> {
        if self.config.listen_backlog == 0 {
            return Err(Error::config("listen_backlog must be at least 1"));
        }
        if self.config.low_watermark > self.config.high_watermark {
            return Err(Error::config(
                "outbound_watermarks: the low mark must not exceed the high mark",
            ));
        }
        if self.config.max_outbound < self.config.high_watermark {
            return Err(Error::config(
                "max_outbound must be at least the high outbound watermark",
            ));
        }
        if self.config.threadpool_size == 0 {
            return Err(Error::config("threadpool_size must be at least 1"));
        }
        if self.config.start_paused && !cfg!(feature = "test-util") {
            return Err(Error::config(
                "start_paused needs the `test-util` feature of em (or em-core)",
            ));
        }
        Ok(Reactor {
            config: self.config,
        })
    }

    /// Shorthand for `build()?.run(init)`.
    pub fn run<R: RunResult>(self, init: impl FnOnce() -> R + 'static) -> Result<()> {
        self.build()?.run(init)
    }
}

/// A configured reactor, not yet running. [`run`](Reactor::run) builds its own
/// tokio runtime; [`run_local`](Reactor::run_local) is the async entry point
/// for code that already has one.
#[derive(Debug, Clone, Default)]
pub struct Reactor {
    config: Config,
}

impl Reactor {
    /// A reactor with every option at its default.
    pub fn new() -> Self {
        Self::default()
    }

    /// A [`Builder`] for the options.
    pub fn builder() -> Builder {
        Builder::default()
    }

    /// Runs the reactor on the calling thread until [`stop`]: builds a
    /// current-thread tokio runtime (I/O and time enabled) and a `LocalSet`,
    /// runs `init` on it (EventMachine's run block), then serves every
    /// callback until stopped. See [`run`].
    ///
    /// Errors: `is_already_running()` on a thread whose reactor runs or
    /// inside a tokio runtime; otherwise the error that stopped the reactor
    /// (the run block returned an error or panicked).
    pub fn run<R: RunResult>(self, init: impl FnOnce() -> R + 'static) -> Result<()> {
        if CURRENT.with(|c| c.borrow().is_some()) {
            return Err(Error::already_running());
        }
        if tokio::runtime::Handle::try_current().is_ok() {
            return Err(Error::inside_runtime());
        }
        let mut builder = tokio::runtime::Builder::new_current_thread();
        builder.enable_all();
        #[cfg(feature = "test-util")]
        builder.start_paused(self.config.start_paused);
        let rt = builder.build().map_err(Error::runtime)?;
        let result = rt.block_on(self.run_installed(init));
        // Do not wait for work left on tokio's blocking pool, such as a host
        // name still resolving for a connect the stop abandoned.
        rt.shutdown_background();
        result
    }

    /// The async entry point: runs the reactor inside the caller's tokio
    /// runtime, on the thread that polls this future, until [`stop`].
    ///
    /// Await it from `Runtime::block_on` of a current-thread runtime with I/O
    /// and time enabled, or from a task of your own `LocalSet`: the future is
    /// `!Send`, and the reactor owns a `LocalSet` of its own for its
    /// connections, so your other local tasks keep running beside it.
    ///
    /// ```
    /// let rt = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
    /// let local = tokio::task::LocalSet::new();
    /// local.block_on(&rt, async {
    ///     em_core::Reactor::new().run_local(|| em_core::next_tick(em_core::stop)).await
    /// })?;
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub async fn run_local<R: RunResult>(self, init: impl FnOnce() -> R + 'static) -> Result<()> {
        if tokio::runtime::Handle::try_current().is_err() {
            return Err(Error::no_runtime());
        }
        if self.config.start_paused {
            return Err(Error::config(
                "start_paused applies to em::run's own runtime; with run_local, pause your runtime",
            ));
        }
        self.run_installed(init).await
    }

    /// Installs the reactor on this thread and runs it inside the current
    /// runtime (checked by the callers).
    async fn run_installed<R: RunResult>(self, init: impl FnOnce() -> R + 'static) -> Result<()> {
        let core = Rc::new(Core::new(self.config));
        let installed = CURRENT.with(|c| {
            let mut c = c.borrow_mut();
            if c.is_some() {
                return false;
            }
            *c = Some(core.clone());
            true
        });
        if !installed {
            return Err(Error::already_running());
        }
        // Declared before the LocalSet so that it drops after it: tasks that
        // are dropped with the LocalSet still see their reactor.
        let _installed = Installed(core.clone());
        RUNNING.fetch_add(1, Ordering::SeqCst);
        core.remote.set_running(true);
        let local = LocalSet::new();
        local.run_until(main(core, init)).await
    }
}

/// Uninstalls the reactor from its thread however `run_local` ends.
struct Installed(Rc<Core>);

impl Drop for Installed {
    fn drop(&mut self) {
        self.0.remote.set_running(false);
        tick::clear();
        driver::release_read_buffer();
        CURRENT.with(|c| c.borrow_mut().take());
        RUNNING.fetch_sub(1, Ordering::SeqCst);
        tracing::debug!("reactor stopped");
    }
}

/// What a run block may return: `()`, or a `Result` whose error stops the
/// reactor and comes back from `run`.
pub trait RunResult {
    /// Converts the run block's value.
    fn into_result(self) -> Result<(), BoxError>;
}

impl RunResult for () {
    fn into_result(self) -> Result<(), BoxError> {
        Ok(())
    }
}

impl<E: Into<BoxError>> RunResult for Result<(), E> {
    fn into_result(self) -> Result<(), BoxError> {
        self.map_err(Into::into)
    }
}

async fn main<R: RunResult>(core: Rc<Core>, init: impl FnOnce() -> R) -> Result<()> {
    tracing::debug!("reactor started");
    tokio::task::spawn_local(tick::drive(core.clone()));
    match panic::catch("run block", None, init) {
        Ok(r) => {
            if let Err(e) = r.into_result() {
                core.request_stop(Some(Error::init(e)));
            }
        }
        Err(message) => core.request_stop(Some(Error::panicked("run block", message))),
    }
    poll_fn(|cx| {
        if core.remote.take_stop_request() {
            core.request_stop(None);
        }
        if core.stopping() {
            return Poll::Ready(());
        }
        *core.main_waker.borrow_mut() = Some(cx.waker().clone());
        core.remote.register_main(cx.waker());
        if core.remote.take_stop_request() {
            core.request_stop(None);
            return Poll::Ready(());
        }
        Poll::Pending
    })
    .await;
    teardown(&core).await;
    match core.error.borrow_mut().take() {
        Some(e) => Err(e),
        None => Ok(()),
    }
}

/// Stops every server, gives every open connection its
/// `unbind(ReactorStopped)`, and drops what is still queued.
async fn teardown(core: &Rc<Core>) {
    for server in core.servers.take() {
        server.stop();
    }
    let grace = core.config.shutdown_grace;
    let conns: Vec<_> = core.conns.borrow().values().cloned().collect();
    tracing::debug!(connections = conns.len(), "reactor teardown");
    for conn in conns {
        conn.wake();
    }
    if core.in_grace() {
        let mut over = std::pin::pin!(tokio::time::sleep(grace));
        poll_fn(|cx| {
            if core.conns.borrow().is_empty() || over.as_mut().poll(cx).is_ready() {
                return Poll::Ready(());
            }
            *core.main_waker.borrow_mut() = Some(cx.waker().clone());
            Poll::Pending
        })
        .await;
        core.grace.set(false);
        let conns: Vec<_> = core.conns.borrow().values().cloned().collect();
        if !conns.is_empty() {
            tracing::debug!(connections = conns.len(), "shutdown grace over");
        }
        for conn in conns {
            conn.wake();
        }
    }
    poll_fn(|cx| {
        if core.conns.borrow().is_empty() {
            return Poll::Ready(());
        }
        *core.main_waker.borrow_mut() = Some(cx.waker().clone());
        Poll::Pending
    })
    .await;
    loop {
        let hook = core.teardown_hooks.borrow_mut().pop();
        match hook {
            Some(hook) => {
                let _ = panic::catch("teardown hook", None, hook);
            }
            None => break,
        }
    }
    // Dropped outside the borrow: a value's Drop may reach the reactor.
    let locals = core.locals.take();
    drop(locals);
    tick::clear();
    core.remote.set_running(false);
}

/// Runs the reactor on this thread until [`stop`], with default options:
/// builds a current-thread tokio runtime and a `LocalSet`, runs `init` (the
/// run block) on the reactor thread, then every callback, until `stop()`.
///
/// `init` may return `()` or a `Result`; an error (or a panic) there stops
/// the reactor and is returned. `run` can be called again after it returned;
/// each call starts a fresh reactor.
///
/// ```
/// em_core::run(|| {
///     em_core::next_tick(|| em_core::stop());
/// })?;
/// # Ok::<(), em_core::Error>(())
/// ```
pub fn run<R: RunResult>(init: impl FnOnce() -> R + 'static) -> Result<()> {
    Reactor::new().run(init)
}

/// Stops the reactor running on this thread: the current callback finishes,
/// then every server stops accepting, every open connection's `unbind` runs
/// once with `UnbindReason::ReactorStopped`, queued `next_tick`s are dropped
/// and `run` returns. Nothing else of the user's runs after the current
/// callback, not even the rest of the current `next_tick` pass (EventMachine
/// finishes its iteration first, R4). A no-op where no reactor runs, or when already
/// stopping. From another thread, use [`Handle::stop`].
pub fn stop() {
    match Core::current("stop") {
        Ok(core) => core.request_stop(None),
        Err(_) => tracing::debug!("em::stop called where no reactor runs; ignored"),
    }
}

/// Whether a reactor is running anywhere in this process (EventMachine's
/// `reactor_running?`). Callable from any thread.
pub fn reactor_running() -> bool {
    RUNNING.load(Ordering::SeqCst) > 0
}

/// Whether the calling thread is a reactor thread, with its reactor running
/// (EventMachine's `reactor_thread?`). True during teardown as well.
pub fn reactor_thread() -> bool {
    CURRENT.with(|c| c.borrow().is_some())
}

/// Whether the reactor on this thread has been asked to stop (EventMachine's
/// `stopping?`). False where no reactor runs.
pub fn stopping() -> bool {
    CURRENT.with(|c| c.borrow().as_ref().is_some_and(|c| c.stopping()))
}

/// How many connections (accepted, connected, or still connecting) the
/// reactor on this thread holds; listeners are not counted. Zero where no
/// reactor runs. Reactor thread only.
pub fn connection_count() -> usize {
    CURRENT.with(|c| c.borrow().as_ref().map_or(0, |c| c.connection_count()))
}

/// The `Send + Sync` handle of the reactor on this thread, for other threads
/// to [`schedule`](Handle::schedule) work on it or [`stop`](Handle::stop) it.
///
/// Errors with `is_no_reactor()` where no reactor runs.
pub fn handle() -> Result<Handle> {
    Core::current("handle").map(|core| Handle::new(core.remote.clone()))
}

/// Spawns a `!Send` future on the reactor, for procedural code (what
/// em-synchrony's fibers gave Ruby). It runs on the reactor thread and is
/// dropped, unfinished, when the reactor stops.
///
/// Errors with `is_no_reactor()` where no reactor runs and `is_stopping()`
/// once it stops.
pub fn spawn<F>(future: F) -> Result<JoinHandle<F::Output>>
where
    F: Future + 'static,
    F::Output: 'static,
{
    Core::current_accepting("spawn")?;
    Ok(tokio::task::spawn_local(future))
}

impl fmt::Debug for Core {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Core")
            .field("stopping", &self.stopping.get())
            .field("connections", &self.conns.borrow().len())
            .finish_non_exhaustive()
    }
}
