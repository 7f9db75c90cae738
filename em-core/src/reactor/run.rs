//! Running a reactor: [`Reactor::run`] and [`run`] on a runtime of em's own,
//! [`Reactor::run_local`] inside the caller's, [`synchrony`] around one
//! future, the main task that waits for the stop, and the teardown that runs
//! the shutdown hooks, then gives every connection its `unbind`.

use std::cell::RefCell;
use std::future::{poll_fn, Future};
use std::rc::Rc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::task::Poll;

use tokio::task::{JoinHandle, LocalSet};

use crate::error::{BoxError, Error, Result};
use crate::reactor::builder::{Builder, Config};
use crate::reactor::core::Core;
use crate::reactor::group::{affinity, Group, Membership};
use crate::reactor::panic;
use crate::reactor::remote::Handle;
use crate::reactor::ticks;

/// How many reactors run in this process (for [`reactor_running`]).
static RUNNING: AtomicUsize = AtomicUsize::new(0);

/// A configured reactor, not yet running. [`run`](Reactor::run) builds its own
/// tokio runtime; [`run_local`](Reactor::run_local) is the async entry point
/// for code that already has one.
#[derive(Debug, Clone, Default)]
pub struct Reactor {
    config: Config,
}

impl Reactor {
    pub(crate) fn with_config(config: Config) -> Self {
        Reactor { config }
    }

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
        Self::check_thread()?;
        let rt = self.runtime()?;
        self.run_on(rt, init)
    }

    /// Refuses a thread where a reactor or a tokio runtime runs.
    fn check_thread() -> Result<()> {
        if Core::is_installed() {
            return Err(Error::already_running());
        }
        if tokio::runtime::Handle::try_current().is_ok() {
            return Err(Error::inside_runtime());
        }
        Ok(())
    }

    /// The current-thread runtime (I/O and time enabled) a reactor runs on.
    fn runtime(&self) -> Result<tokio::runtime::Runtime> {
        let mut builder = tokio::runtime::Builder::new_current_thread();
        builder.enable_all();
        #[cfg(feature = "test-util")]
        builder.start_paused(self.config.start_paused);
        builder.build().map_err(Error::runtime)
    }

    /// Runs the reactor on `rt`, on the calling thread.
    fn run_on<R: RunResult>(
        self,
        rt: tokio::runtime::Runtime,
        init: impl FnOnce() -> R + 'static,
    ) -> Result<()> {
        let result = rt.block_on(self.run_installed(init));
        // Do not wait for work left on tokio's blocking pool, such as a host
        // name still resolving for a connect the stop abandoned.
        rt.shutdown_background();
        result
    }

    /// Runs [`Builder::reactors`] reactors, `init(index)` on each: see
    /// [`Builder::run_each`].
    pub fn run_each<R: RunResult>(
        self,
        init: impl Fn(usize) -> R + Send + Sync + 'static,
    ) -> Result<()> {
        Self::check_thread()?;
        let n = match self.config.reactors {
            0 => std::thread::available_parallelism().map_or(1, |n| n.get()),
            n => n,
        };
        let handoff = self.config.accept_handoff
            || !cfg!(any(
                target_os = "linux",
                target_os = "android",
                target_os = "freebsd"
            ));
        let group = Group::new(n, handoff);
        // Every runtime is built before any reactor starts, so that a
        // failure leaves none waiting for the others.
        let runtimes = (0..n).map(|_| self.runtime()).collect::<Result<Vec<_>>>()?;
        let cpus = if self.config.pin_cores {
            let cpus = affinity::cpus();
            affinity::remember_unpinned(&cpus);
            cpus
        } else {
            Vec::new()
        };
        let init = Arc::new(init);
        let mut threads = Vec::new();
        let mut runtimes = runtimes.into_iter();
        let first = runtimes.next().expect("at least one reactor");
        let member = |index: usize| {
            let mut config = self.config.clone();
            config.member = Some(Membership {
                index,
                group: group.clone(),
            });
            Reactor::with_config(config)
        };
        for (i, rt) in runtimes.enumerate() {
            let index = i + 1;
            let reactor = member(index);
            let init = init.clone();
            let cpu = (!cpus.is_empty()).then(|| cpus[index % cpus.len()]);
            let spawned = std::thread::Builder::new()
                .name(format!("em-reactor-{index}"))
                .spawn(move || {
                    affinity::pin(cpu);
                    let _handler = reactor.install_error_handler();
                    reactor.run_on(rt, move || init(index))
                });
            match spawned {
                Ok(t) => threads.push(t),
                Err(e) => {
                    group.abort();
                    for t in threads {
                        let _ = t.join();
                    }
                    return Err(Error::runtime(e));
                }
            }
        }
        let reactor = member(0);
        let first_result = {
            // The caller's thread: given its cores back when reactor 0 is done.
            let _restore = affinity::pin_caller((!cpus.is_empty()).then(|| cpus[0]));
            let _handler = reactor.install_error_handler();
            let init = init.clone();
            reactor.run_on(first, move || init(0))
        };
        let mut result = first_result;
        for t in threads {
            let r = t.join().unwrap_or_else(|panic| {
                Err(Error::panicked("reactor thread", panic::message(&*panic)))
            });
            if result.is_ok() {
                result = r;
            }
        }
        result
    }

    /// Installs the group's error handler on this thread, if it has one,
    /// for as long as the guard lives.
    fn install_error_handler(&self) -> Option<ErrorHandlerGuard> {
        let handler = self.config.error_handler.clone()?;
        let installed: panic::ErrorHandler =
            Rc::new(move |report: &panic::PanicReport| (handler.0)(report));
        Some(ErrorHandlerGuard(panic::replace_error_handler(Some(
            installed,
        ))))
    }

    /// Runs the reactor around one future (em-synchrony's `EM.synchrony`):
    /// [`run`](Reactor::run) with a run block that spawns `future` on the
    /// reactor, stops the reactor when the future returns, and gives back
    /// its output. See [`synchrony`] for the errors; the options (a paused
    /// clock, watermarks, `stop_on_panic`, …) are this reactor's.
    ///
    /// ```
    /// # #[cfg(feature = "test-util")] {
    /// # use em_core as em;
    /// let elapsed = em::Reactor::builder()
    ///     .start_paused(true)
    ///     .build()?
    ///     .synchrony(async {
    ///         let start = tokio::time::Instant::now();
    ///         tokio::time::sleep(std::time::Duration::from_secs(60)).await; // no real wait
    ///         start.elapsed()
    ///     })?;
    /// assert_eq!(elapsed.as_secs(), 60);
    /// # }
    /// # Ok::<(), em_core::Error>(())
    /// ```
    pub fn synchrony<F>(self, future: F) -> Result<F::Output>
    where
        F: Future + 'static,
        F::Output: 'static,
    {
        let output: Rc<RefCell<Option<Result<F::Output>>>> = Rc::default();
        let slot = output.clone();
        self.run(move || -> Result<()> {
            spawn(contained(future, slot))?;
            Ok(())
        })?;
        output.take().unwrap_or_else(|| Err(Error::stopped_early()))
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
    /// # use em_core as em;
    /// let rt = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
    /// let local = tokio::task::LocalSet::new();
    /// local.block_on(&rt, async {
    ///     em::Reactor::new().run_local(|| em::next_tick(em::stop)).await
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
        if !Core::install(&core) {
            return Err(Error::already_running());
        }
        // Declared before the LocalSet so that it drops after it: tasks that
        // are dropped with the LocalSet still see their reactor.
        let _installed = Installed(core.clone());
        RUNNING.fetch_add(1, Ordering::SeqCst);
        core.remote.set_running(true);
        ticks::attach_remote(core.remote.clone());
        if let Some(m) = &core.config.member {
            // Every run block of a group starts once all reactors are up.
            if !m.group.arrive(m.index, Handle::new(core.remote.clone())) {
                return Err(Error::stopped_early());
            }
        }
        let local = LocalSet::new();
        local.run_until(main(core, init)).await
    }
}

/// Puts back the error handler [`Reactor::install_error_handler`]
/// replaced (the caller's own, on reactor 0's thread), or none.
struct ErrorHandlerGuard(Option<panic::ErrorHandler>);

impl Drop for ErrorHandlerGuard {
    fn drop(&mut self) {
        panic::replace_error_handler(self.0.take());
    }
}

/// Uninstalls the reactor from its thread however `run_local` ends.
struct Installed(Rc<Core>);

impl Drop for Installed {
    fn drop(&mut self) {
        self.0.remote.set_running(false);
        ticks::clear();
        ticks::detach_remote();
        self.0.release();
        Core::uninstall();
        RUNNING.fetch_sub(1, Ordering::SeqCst);
        tracing::debug!("reactor stopped");
    }
}

/// What a run block may return: `()`, or an [`em::Result`](crate::Result)
/// of any value (the value is dropped: handles such as a `Server`, a
/// `Conn` or a `Timer` live on without their handle, while a `Socket` or a
/// `SocketListener`, which close when dropped, close; an error stops the
/// reactor and comes back from `run`, as an [`is_init`](Error::is_init)
/// error whose source is it). Only em's `Result`, so that a block ending in `Ok(())` after a
/// `?` needs no annotation; `?` converts `io::Error`, `BoxError`, messages
/// and em's crates' errors into it ([`Error::other`] for the rest).
pub trait RunResult {
    /// Converts the run block's value.
    fn into_result(self) -> Result<(), BoxError>;
}

impl RunResult for () {
    fn into_result(self) -> Result<(), BoxError> {
        Ok(())
    }
}

impl<T> RunResult for Result<T> {
    fn into_result(self) -> Result<(), BoxError> {
        self.map(drop).map_err(Into::into)
    }
}

async fn main<R: RunResult>(core: Rc<Core>, init: impl FnOnce() -> R) -> Result<()> {
    tracing::debug!("reactor started");
    tokio::task::spawn_local(ticks::drive(core.clone()));
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
        core.set_main_waker(cx.waker());
        core.remote.register_main(cx.waker());
        if core.remote.take_stop_request() {
            core.request_stop(None);
            return Poll::Ready(());
        }
        Poll::Pending
    })
    .await;
    if let Some(m) = &core.config.member {
        // One stop for the whole group.
        m.group.stop_all();
    }
    teardown(&core).await;
    match core.take_error() {
        Some(e) => Err(e),
        None => Ok(()),
    }
}

/// The teardown, in EventMachine's order: the shutdown hooks, last
/// registered first; every server stops; every open connection gets its
/// `unbind(ReactorStopped)` (after the shutdown grace, if any); then the
/// extensions' teardown and what is still queued is dropped.
async fn teardown(core: &Rc<Core>) {
    while let Some(hook) = core.pop_shutdown_hook() {
        let _ = panic::catch("shutdown hook", None, hook);
    }
    core.stop_servers();
    core.start_releasing();
    let open = core.stop_connections();
    tracing::debug!(connections = open, "reactor teardown");
    if core.in_grace() {
        let mut over = std::pin::pin!(tokio::time::sleep(core.config.shutdown_grace));
        poll_fn(|cx| {
            if !core.has_connections() || over.as_mut().poll(cx).is_ready() {
                return Poll::Ready(());
            }
            core.set_main_waker(cx.waker());
            Poll::Pending
        })
        .await;
        core.end_grace();
        let left = core.stop_connections();
        if left > 0 {
            tracing::debug!(connections = left, "shutdown grace over");
        }
    }
    poll_fn(|cx| {
        if !core.has_connections() {
            return Poll::Ready(());
        }
        core.set_main_waker(cx.waker());
        Poll::Pending
    })
    .await;
    while let Some(hook) = core.pop_teardown_hook() {
        let _ = panic::catch("teardown hook", None, hook);
    }
    core.release();
    ticks::clear();
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
/// # use em_core as em;
/// em::run(|| {
///     em::next_tick(|| em::stop());
/// })?;
/// # Ok::<(), em_core::Error>(())
/// ```
pub fn run<R: RunResult>(init: impl FnOnce() -> R + 'static) -> Result<()> {
    Reactor::new().run(init)
}

/// Runs a reactor with default options around one future, on this thread,
/// and returns the future's output (em-synchrony's `EM.synchrony`): the run
/// block spawns `future` on the reactor thread and the reactor stops as soon
/// as it returns. Inside, the future is procedural code like any
/// [`spawn`]ed one: it awaits [`Socket`](crate::Socket)s, timers, queues,
/// deferred work, and may start servers or callback-style connections,
/// which run beside it until it returns. For options, use
/// [`Reactor::synchrony`].
///
/// Errors: `is_panic()` if the future panicked (the panic is contained and
/// reported to the [error handler](crate::set_error_handler) like any
/// callback's, under the name `"synchrony"`); `is_stopped_early()` if the
/// reactor was stopped (by [`stop`] or a [`Handle`]) before the future
/// finished, which is then dropped unfinished; `is_already_running()` on a
/// thread whose reactor runs (unlike EventMachine's, which then starts a
/// fiber: a Rust future cannot block its own reactor, so [`spawn`] it); the
/// error that stopped the reactor otherwise (a `stop_on_panic` panic
/// elsewhere).
///
/// ```
/// # use em_core as em;
/// let n = em::synchrony(async {
///     let q = em::Queue::new();
///     q.push(40);
///     q.pop_async().await + 2
/// })?;
/// assert_eq!(n, 42);
///
/// let stopped = em::synchrony(async {
///     em::stop();
///     std::future::pending::<()>().await
/// });
/// assert!(stopped.unwrap_err().is_stopped_early());
/// # Ok::<(), em_core::Error>(())
/// ```
pub fn synchrony<F>(future: F) -> Result<F::Output>
where
    F: Future + 'static,
    F::Output: 'static,
{
    Reactor::new().synchrony(future)
}

/// Polls `future` with its panics contained, leaves its output (or the
/// panic) in `slot`, and stops the reactor.
async fn contained<F: Future>(future: F, slot: Rc<RefCell<Option<Result<F::Output>>>>) {
    let mut future = std::pin::pin!(future);
    let result = poll_fn(
        |cx| match panic::catch("synchrony", None, || future.as_mut().poll(cx)) {
            Ok(Poll::Pending) => Poll::Pending,
            Ok(Poll::Ready(output)) => Poll::Ready(Ok(output)),
            Err(message) => Poll::Ready(Err(Error::panicked("synchrony", message))),
        },
    )
    .await;
    *slot.borrow_mut() = Some(result);
    stop();
}

/// Stops the reactor running on this thread: the current callback finishes,
/// then every server stops accepting, every open connection's `unbind` runs
/// once with `UnbindReason::ReactorStopped`, queued `next_tick`s are dropped
/// and `run` returns. Nothing else of the user's runs after the current
/// callback, not even the rest of the current `next_tick` pass (EventMachine
/// finishes its iteration first). A no-op where no reactor runs, or when already
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
    Core::is_installed()
}

/// Whether the reactor on this thread has been asked to stop (EventMachine's
/// `stopping?`). False where no reactor runs.
pub fn stopping() -> bool {
    Core::with_current(|c| c.is_some_and(Core::stopping))
}

/// How many connections (accepted, connected, or still connecting) the
/// reactor on this thread holds; listeners are not counted. Zero where no
/// reactor runs. Reactor thread only.
pub fn connection_count() -> usize {
    Core::with_current(|c| c.map_or(0, Core::connection_count))
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
/// A panic in the future is contained like a callback's: the error handler
/// (or the log) gets a [`PanicReport`](crate::PanicReport) for
/// `"spawned future"`, the reactor carries on (or stops, with
/// `stop_on_panic`, and `run` returns the panic), and the returned
/// `JoinHandle` resolves to a `JoinError` that `is_panic()`.
///
/// Errors with `is_no_reactor()` where no reactor runs and `is_stopping()`
/// once it stops.
pub fn spawn<F>(future: F) -> Result<JoinHandle<F::Output>>
where
    F: Future + 'static,
    F::Output: 'static,
{
    Core::current_accepting("spawn")?;
    Ok(tokio::task::spawn_local(panic::contained(
        "spawned future",
        future,
    )))
}

/// Registers `hook` to run when the reactor on this thread stops
/// (EventMachine's `EM.add_shutdown_hook`): after the loop exits and before
/// the connections still open get their `unbind`, so a hook may still send
/// on them (the output leaves only with a
/// [`shutdown_grace`](crate::Builder::shutdown_grace)). Hooks run last
/// registered first, each on the reactor thread with its panic
/// contained; a hook may register another, which runs next.
///
/// Errors with `is_no_reactor()` where no reactor runs.
///
/// ```
/// # use em_core as em;
/// use std::{cell::RefCell, rc::Rc};
/// let order = Rc::new(RefCell::new(Vec::new()));
/// let o = order.clone();
/// em::run(move || -> em::Result<()> {
///     let (o1, o2) = (o.clone(), o.clone());
///     em::add_shutdown_hook(move || o1.borrow_mut().push(2))?;
///     em::add_shutdown_hook(move || o2.borrow_mut().push(1))?;
///     em::stop();
///     Ok(())
/// })?;
/// assert_eq!(*order.borrow(), [1, 2]);
/// # Ok::<(), em_core::Error>(())
/// ```
pub fn add_shutdown_hook(hook: impl FnOnce() + 'static) -> Result<()> {
    Core::current("add_shutdown_hook")?.add_shutdown_hook(Box::new(hook));
    Ok(())
}
