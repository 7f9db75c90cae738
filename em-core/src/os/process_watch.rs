//! Watching a process em did not start (EventMachine's `EM.watch_process`):
//! [`watch_process`], the [`ProcessWatcher`] handler trait and the
//! [`ProcessWatch`] handle.
//!
//! EventMachine watches processes with kqueue only, so on Linux its
//! `watch_process` raises. em uses Linux's pidfd instead: `pidfd_open(2)`
//! gives a descriptor for the process, registered with the reactor like a
//! socket, which becomes readable when the process exits. Nothing polls,
//! no thread waits, and the descriptor names the process itself, so a pid
//! reused by another process later is never mistaken for it.

use std::fmt;
use std::rc::Rc;

use crate::error::Result;
use crate::os::watcher::{self, Lifecycle, Live, Watch};
use crate::reactor::core::Core;

/// The handler of a process watch ([`watch_process`]): EventMachine's
/// `EM::ProcessWatch` callbacks. A closure `FnMut(&ProcessWatch)` is one:
/// its `process_exited`.
///
/// Both run on the reactor thread:
///
/// * [`process_exited`](ProcessWatcher::process_exited): the process has
///   exited (or was killed). Once; the watch has ended when this runs
///   ([`is_watching`](ProcessWatch::is_watching) is false). The exit
///   status of a process that is not this program's child cannot be read
///   by this program at all (only a parent can reap it), so none is
///   given; for a child of yours, reap it yourself
///   (`std::process::Child::wait` returns at once now).
/// * [`unbind`](ProcessWatcher::unbind): exactly once, last: right after
///   `process_exited`, after [`stop_watching`](ProcessWatch::stop_watching)
///   (once the current callback of this watch has returned, or on a later
///   tick, never inside `stop_watching`), after `process_exited` panicked,
///   or when the reactor stops (before `run` returns). The handler is
///   dropped after it.
///
/// EventMachine's `process_forked` has no counterpart: a pidfd does not
/// report forks. A panic in a callback is contained like any callback's
/// and reported to the [error handler](crate::set_error_handler).
pub trait ProcessWatcher: 'static {
    /// The process has exited.
    fn process_exited(&mut self, watch: &ProcessWatch);

    /// The watch has ended: exactly once, last.
    fn unbind(&mut self, watch: &ProcessWatch) {
        let _ = watch;
    }
}

impl<F: FnMut(&ProcessWatch) + 'static> ProcessWatcher for F {
    fn process_exited(&mut self, watch: &ProcessWatch) {
        self(watch);
    }
}

/// A watch on a process, made by [`watch_process`] (EventMachine's
/// `EM::ProcessWatch`): the handle its callbacks get, and the one to stop
/// it.
///
/// Cloning gives a second handle to the same watch; dropping every handle
/// does not stop it. `!Send`: it belongs to the reactor thread, and
/// outlives its reactor harmlessly.
///
/// ```compile_fail
/// # use em_core as em;
/// fn on_another_thread(watch: em::ProcessWatch) {
///     std::thread::spawn(move || watch.stop_watching()); // error: `ProcessWatch` is not `Send`
/// }
/// ```
#[derive(Clone)]
pub struct ProcessWatch {
    inner: Rc<Inner>,
}

struct Inner {
    pid: u32,
    /// The task waiting for the exit, while it waits.
    waiting: std::cell::Cell<Option<tokio::task::AbortHandle>>,
    lifecycle: Lifecycle<ProcessWatch>,
}

impl ProcessWatch {
    /// The process id given to [`watch_process`] (EventMachine's `pid`).
    pub fn pid(&self) -> u32 {
        self.inner.pid
    }

    /// Stops the watch (EventMachine's `stop_watching`): `process_exited`
    /// will not run, and `unbind` follows once, after the current callback
    /// of this watch if called from one, otherwise on a later tick (never
    /// inside this call). The process is left alone. Idempotent; a no-op
    /// once the watch has ended. Reactor thread only.
    pub fn stop_watching(&self) {
        watcher::stop(self);
    }

    /// Whether the watch still watches: false from the exit (already
    /// inside `process_exited`), `stop_watching`, a panic in
    /// `process_exited` or the reactor's stop on.
    pub fn is_watching(&self) -> bool {
        self.inner.lifecycle.is_watching()
    }
}

impl Watch for ProcessWatch {
    type Handler = dyn ProcessWatcher;

    fn lifecycle(&self) -> &Lifecycle<Self> {
        &self.inner.lifecycle
    }

    fn unbind(handler: &mut dyn ProcessWatcher, watch: &Self) {
        handler.unbind(watch);
    }

    fn release(&self) {
        // Dropping the task closes the pidfd.
        if let Some(task) = self.inner.waiting.take() {
            task.abort();
        }
    }
}

impl fmt::Debug for ProcessWatch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ProcessWatch")
            .field("pid", &self.inner.pid)
            .field("watching", &self.is_watching())
            .finish()
    }
}

/// Watches the process `pid` (any process this program may see, not only
/// its children: EventMachine's `EM.watch_process`) and calls `handler`'s
/// `process_exited` on the reactor thread when it exits, then its
/// `unbind`. Returns the watch once it is in place: an exit after this
/// returns is always seen, and a process that has already exited (a child
/// not reaped yet) is reported on the reactor's next turn. Reactor thread
/// only.
///
/// Linux only (a pidfd, Linux 5.3 and later). The watch holds one
/// descriptor, and costs nothing until the exit.
///
/// A pid names a process only until it is reaped; after that the number
/// may be given to another. Watch a child of yours before you reap it
/// (`wait`); for another process, the pid must be current when you call
/// this. From then on the watch follows that process, whatever its pid
/// becomes later.
///
/// Errors: `is_no_reactor()` / `is_stopping()`; `is_invalid_argument()`
/// for pid 0 or a pid past `i32::MAX`; `is_io()` when no process has that
/// pid (the message names it) or the system refuses; `is_unsupported()`
/// on systems other than Linux, or a Linux kernel without
/// `pidfd_open(2)`. On error `handler` is dropped.
///
/// ```
/// # use em_core as em;
/// # #[cfg(target_os = "linux")] {
/// let mut child = std::process::Command::new("sleep").arg("30").spawn()?;
/// let pid = child.id();
/// em::run(move || {
///     let watch = em::watch_process(pid, |watch: &em::ProcessWatch| {
///         eprintln!("{} exited", watch.pid());
///         em::stop();
///     })?;
///     assert_eq!(watch.pid(), pid);
///     // The watch is in place: kill the child.
///     std::process::Command::new("kill").arg(pid.to_string()).status()?;
/// #   em_core::spawn(async {
/// #       tokio::time::sleep(std::time::Duration::from_secs(20)).await;
/// #       em_core::stop(); // watchdog
/// #   })?;
///     Ok(())
/// })?;
/// child.wait()?; // a child of ours: we reap it
///
/// em::run(|| {
///     assert!(em::watch_process(0, |_: &em::ProcessWatch| {}).unwrap_err().is_invalid_argument());
///     em::stop();
/// })?;
/// # }
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub fn watch_process<H: ProcessWatcher>(pid: u32, handler: H) -> Result<ProcessWatch> {
    let core = Core::current_accepting("watch_process")?;
    let exited = sys::on_exit(pid)?;
    let live = Live::<ProcessWatch>::of(&core);
    let watch = ProcessWatch {
        inner: Rc::new(Inner {
            pid,
            waiting: std::cell::Cell::new(None),
            lifecycle: Lifecycle::new(&live, live.next_id(), Box::new(handler)),
        }),
    };
    let waiter = watch.clone();
    let task = tokio::task::spawn_local(async move {
        if exited.await {
            watcher::deliver(&waiter, "process_exited", true, |h, w| h.process_exited(w));
        } else {
            // The pidfd could not be waited on: the watch ends, with its
            // `unbind`, rather than watch nothing until the reactor stops.
            tracing::warn!(
                pid = waiter.pid(),
                "waiting for the process failed; the watch ends"
            );
            watcher::stop(&waiter);
        }
    });
    watch.inner.waiting.set(Some(task.abort_handle()));
    tracing::debug!(pid, "watching a process");
    live.insert(watch.clone());
    Ok(watch)
}

#[cfg(target_os = "linux")]
mod sys {
    //! The exit of a process, through its pidfd.

    use std::future::Future;
    use std::io;

    use rustix::process::{pidfd_open, Pid, PidfdFlags};

    use crate::error::{Error, Result};
    use crate::net::transport::register;

    /// A future that resolves (true) when process `pid` exits, its pidfd
    /// opened and registered with the reactor before this returns; false
    /// if the reactor's I/O driver went away first.
    pub(super) fn on_exit(pid: u32) -> Result<impl Future<Output = bool>> {
        const CALL: &str = "watch_process";
        let raw = i32::try_from(pid)
            .ok()
            .and_then(Pid::from_raw)
            .ok_or_else(|| Error::invalid_argument(CALL, "a pid is from 1 to i32::MAX"))?;
        let fd = pidfd_open(raw, PidfdFlags::empty()).map_err(|e| match e {
            rustix::io::Errno::NOSYS => Error::unsupported(
                CALL,
                "this Linux kernel has no pidfd_open(2) (Linux 5.3 and later have)",
            ),
            rustix::io::Errno::SRCH => Error::io(
                CALL,
                io::Error::new(
                    io::ErrorKind::NotFound,
                    format!("no process has pid {pid} ({})", io::Error::from(e)),
                ),
            ),
            e => {
                let e = io::Error::from(e);
                Error::io(
                    CALL,
                    io::Error::new(e.kind(), format!("cannot watch process {pid}: {e}")),
                )
            }
        })?;
        // A pidfd is readable once its process has exited. Registered
        // through em's one registration of an owned descriptor (tokio's
        // is `unsafe` for I/O safety, its safe forms deprecated).
        let fd = register(fd).map_err(|e| {
            Error::io(
                CALL,
                io::Error::new(e.kind(), format!("cannot watch process {pid}: {e}")),
            )
        })?;
        Ok(async move { fd.readable().await.is_ok() })
    }
}

#[cfg(not(target_os = "linux"))]
mod sys {
    //! No pidfd here.

    use crate::error::{Error, Result};

    pub(super) fn on_exit(_pid: u32) -> Result<std::future::Ready<bool>> {
        Err(Error::unsupported(
            "watch_process",
            "watching a process em did not start needs Linux's pidfd_open(2)",
        ))
    }
}
