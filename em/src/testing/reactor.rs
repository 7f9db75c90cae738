//! `TestReactor`: a reactor on a thread of its own, driven from the test's
//! thread.

use std::any::Any;
use std::fmt;
use std::future::Future;
use std::panic::{self, AssertUnwindSafe};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::thread::{self, JoinHandle};
use std::time::Duration;

use futures_util::FutureExt;

/// The longest [`TestReactor::block_on`] and [`TestReactor::run`] wait for
/// the reactor to answer before they fail the test: far more than any test
/// should take, so that a hung reactor fails instead of hanging the suite.
pub const ANSWER_LIMIT: Duration = Duration::from_secs(60);

/// A reactor running on a background thread for a test: it starts at once
/// and the test's thread drives it, with closures and futures that run on
/// the reactor thread and send their result back.
///
/// Works under `#[test]` and inside `#[tokio::test]` (either flavour: the
/// reactor has its own thread and runtime, and the calls block the calling
/// thread only until the reactor answers), and any number may run at once.
/// Panics contained on the reactor during the test (a callback's, a
/// spawned future's, a timer's) are collected: [`stop`](Self::stop)
/// returns them as an error, and dropping a `TestReactor` that saw one
/// fails the test.
///
/// ```
/// use em::testing::TestReactor;
///
/// let reactor = TestReactor::start();
/// let addr = reactor.block_on(|| {
///     let echo = em::start_server("127.0.0.1:0", em::handler(|conn, data| conn.send_data(data)))
///         .unwrap();
///     echo.local_addr().inet().unwrap()
/// });
/// // A plain std client, on the test's thread.
/// use std::io::{Read, Write};
/// let mut client = std::net::TcpStream::connect(addr)?;
/// client.write_all(b"ping")?;
/// let mut reply = [0; 4];
/// client.read_exact(&mut reply)?;
/// assert_eq!(&reply, b"ping");
/// reactor.stop()?;
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub struct TestReactor {
    handle: em_core::Handle,
    thread: Option<JoinHandle<em_core::Result<()>>>,
    panics: Arc<Mutex<Vec<String>>>,
    paused: bool,
}

impl TestReactor {
    /// Starts a reactor with default options on a new thread and returns
    /// once it runs. Panics if it cannot start.
    pub fn start() -> TestReactor {
        Self::with_builder(em_core::Reactor::builder())
    }

    /// Starts a reactor on tokio's paused clock: time moves only when the
    /// test calls [`advance`](Self::advance). See "The clock" in the
    /// [module docs](crate::testing) for what else holds or moves it.
    pub fn paused() -> TestReactor {
        let mut reactor = Self::spawn(em_core::Reactor::builder().start_paused(true), true);
        reactor.paused = true;
        reactor
    }

    /// Starts a reactor built with `builder`'s options (watermarks,
    /// timeouts, …) on a new thread. Panics if it cannot start. The
    /// reactor's error handler is the `TestReactor`'s (it collects the
    /// panics `stop` reports). For the paused clock use
    /// [`paused`](Self::paused): a builder's `start_paused(true)` here
    /// gives tokio's auto-advancing paused clock, and `advance` refuses.
    pub fn with_builder(builder: em_core::Builder) -> TestReactor {
        Self::spawn(builder, false)
    }

    fn spawn(builder: em_core::Builder, hold_clock: bool) -> TestReactor {
        let panics = Arc::new(Mutex::new(Vec::new()));
        let seen = panics.clone();
        let (started_tx, started_rx) = mpsc::channel();
        let thread = thread::Builder::new()
            .name("em-test-reactor".into())
            .spawn(move || {
                builder.run(move || {
                    em_core::set_error_handler(move |report| {
                        seen.lock().unwrap().push(report.to_string());
                    });
                    if hold_clock {
                        hold_the_clock()?;
                    }
                    let _ = started_tx.send(em_core::handle()?);
                    Ok(())
                })
            })
            .expect("cannot start the test reactor's thread");
        let handle = match started_rx.recv_timeout(ANSWER_LIMIT) {
            Ok(handle) => handle,
            Err(_) => match thread.join() {
                Ok(Err(e)) => panic!("the test reactor did not start: {e}"),
                Ok(Ok(())) => panic!("the test reactor stopped before it started"),
                Err(p) => panic::resume_unwind(p),
            },
        };
        TestReactor {
            handle,
            thread: Some(thread),
            panics,
            paused: false,
        }
    }

    /// The reactor's [`Handle`](em_core::Handle), to schedule work or stop
    /// it from any thread.
    pub fn handle(&self) -> em_core::Handle {
        self.handle.clone()
    }

    /// Runs `f` on the reactor thread and returns its result to the calling
    /// thread; `f` may use everything that needs the reactor (start
    /// servers, connect, add timers). A panic in `f` is raised again here,
    /// so that it fails the test with its message. Panics if the reactor
    /// has stopped, or does not answer within [`ANSWER_LIMIT`].
    pub fn block_on<T, F>(&self, f: F) -> T
    where
        F: FnOnce() -> T + Send + 'static,
        T: Send + 'static,
    {
        let (tx, rx) = mpsc::channel();
        self.handle
            .schedule(move || {
                let _ = tx.send(panic::catch_unwind(AssertUnwindSafe(f)));
            })
            .unwrap_or_else(|e| panic!("TestReactor::block_on: {e}"));
        self.answer(rx, "block_on")
    }

    /// Calls `make` on the reactor thread and runs the future it returns
    /// there (as [`em::spawn`](em_core::spawn) does), then returns the
    /// future's output to the calling thread: `reactor.run(|| async { … })`.
    /// The future may hold em's handles (sockets, connections, timers),
    /// which never leave the reactor thread: only `make` and the output
    /// cross threads, so they are `Send`, and the future need not be. A
    /// panic in either is raised again here. Panics if the reactor has
    /// stopped, or the future has not finished within [`ANSWER_LIMIT`]; on
    /// the paused clock, a future that waits for a timer finishes only once
    /// something [`advance`](Self::advance)s past it.
    pub fn run<M, F>(&self, make: M) -> F::Output
    where
        M: FnOnce() -> F + Send + 'static,
        F: Future + 'static,
        F::Output: Send + 'static,
    {
        let (tx, rx) = mpsc::channel();
        self.handle
            .schedule(move || {
                let future = match panic::catch_unwind(AssertUnwindSafe(make)) {
                    Ok(future) => future,
                    Err(payload) => {
                        let _ = tx.send(Err(payload));
                        return;
                    }
                };
                let spawned = em_core::spawn(async move {
                    let _ = tx.send(AssertUnwindSafe(future).catch_unwind().await);
                });
                if let Err(e) = spawned {
                    tracing::warn!(error = %e, "TestReactor::run: cannot spawn the future");
                }
            })
            .unwrap_or_else(|e| panic!("TestReactor::run: {e}"));
        self.answer(rx, "run")
    }

    /// On a [`paused`](Self::paused) reactor: moves its clock forward by
    /// `by` in one step (tokio's `advance`) and returns once the reactor
    /// has run the timers due by then. They run in deadline order, each
    /// seeing the clock at the end of the step; a periodic timer fires once
    /// however many periods the step covers, and a timer armed by one of
    /// those callbacks counts from the end of the step. To see each timer
    /// fire at its own time, advance in steps no longer than the shortest
    /// interval. Panics on a reactor that is not paused.
    pub fn advance(&self, by: Duration) {
        assert!(
            self.paused,
            "TestReactor::advance needs a paused reactor (TestReactor::paused())"
        );
        self.run(move || async move {
            tokio::time::advance(by).await;
            // Let the timers that fell due run before answering.
            tokio::task::yield_now().await;
        });
    }

    /// Waits for `rx`'s answer, raising a panic sent through it.
    fn answer<T>(&self, rx: mpsc::Receiver<Result<T, Box<dyn Any + Send>>>, call: &str) -> T {
        match rx.recv_timeout(ANSWER_LIMIT) {
            Ok(Ok(value)) => value,
            Ok(Err(payload)) => panic::resume_unwind(payload),
            Err(mpsc::RecvTimeoutError::Timeout) => {
                panic!("TestReactor::{call}: no answer from the reactor within {ANSWER_LIMIT:?}")
            }
            Err(mpsc::RecvTimeoutError::Disconnected) => {
                panic!("TestReactor::{call}: the reactor stopped before answering")
            }
        }
    }

    /// Stops the reactor, waits for its thread, and reports: `Ok` when the
    /// run was clean, or an error listing the panics contained on the
    /// reactor during the test and the error the reactor stopped with.
    pub fn stop(mut self) -> Result<(), TestReactorError> {
        self.finish()
    }

    fn finish(&mut self) -> Result<(), TestReactorError> {
        let Some(thread) = self.thread.take() else {
            return Ok(());
        };
        self.handle.stop();
        let ended = match thread.join() {
            Ok(Ok(())) => None,
            Ok(Err(e)) => Some(e.to_string()),
            Err(p) => Some(format!(
                "the reactor thread panicked: {}",
                panic_message(&*p)
            )),
        };
        let panics = std::mem::take(&mut *self.panics.lock().unwrap());
        if panics.is_empty() && ended.is_none() {
            Ok(())
        } else {
            Err(TestReactorError { panics, ended })
        }
    }
}

impl Drop for TestReactor {
    /// Stops the reactor if [`stop`](TestReactor::stop) was not called, and
    /// fails the test (panics) if it saw a panic or stopped with an error,
    /// unless the test is failing already.
    fn drop(&mut self) {
        if let Err(e) = self.finish() {
            if !thread::panicking() {
                panic!("{e}");
            }
        }
    }
}

impl fmt::Debug for TestReactor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TestReactor")
            .field("running", &self.handle.is_running())
            .field("paused", &self.paused)
            .finish()
    }
}

/// What went wrong on a [`TestReactor`] during a test: the panics
/// contained on it, each as em reported it (callback, connection, message),
/// and the error it stopped with, if any.
#[derive(Debug, Clone)]
pub struct TestReactorError {
    panics: Vec<String>,
    ended: Option<String>,
}

impl TestReactorError {
    /// The panics contained on the reactor, in order, as em reported them.
    pub fn panics(&self) -> &[String] {
        &self.panics
    }

    /// The error the reactor stopped with (a run-block error, or a panic
    /// with `stop_on_panic`), if any.
    pub fn stopped_with(&self) -> Option<&str> {
        self.ended.as_deref()
    }
}

impl fmt::Display for TestReactorError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("the test reactor")?;
        if !self.panics.is_empty() {
            write!(f, " contained {} panic(s):", self.panics.len())?;
            for p in &self.panics {
                write!(f, "\n  - {p}")?;
            }
            if self.ended.is_some() {
                f.write_str("\nand")?;
            }
        }
        if let Some(e) = &self.ended {
            write!(f, " stopped with an error: {e}")?;
        }
        Ok(())
    }
}

impl std::error::Error for TestReactorError {}

/// Keeps tokio's paused clock from moving by itself: auto-advance waits
/// while a blocking-pool task runs, so one waits here until the reactor
/// stops (its shutdown hook lets it go, before the runtime waits for the
/// blocking pool).
fn hold_the_clock() -> em_core::Result<()> {
    let (release, held) = mpsc::channel::<()>();
    tokio::task::spawn_blocking(move || {
        let _ = held.recv();
    });
    em_core::add_shutdown_hook(move || drop(release))
}

fn panic_message(payload: &(dyn Any + Send)) -> String {
    payload
        .downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| payload.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "(not a string)".into())
}
