//! Containing panics from user callbacks so that one bad callback never takes
//! the reactor or other connections down, and reporting them to the error
//! handler ([`set_error_handler`]).

use std::any::Any;
use std::cell::{Cell, RefCell};
use std::fmt;
use std::future::Future;
use std::panic::{catch_unwind, AssertUnwindSafe};

use futures_util::FutureExt;
use std::rc::Rc;

use crate::error::Error;
use crate::reactor::core::{ConnectionId, Core};

/// What the error handler is told about a contained panic.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PanicReport {
    message: String,
    callback: &'static str,
    connection: Option<ConnectionId>,
}

impl PanicReport {
    /// The panic message (`"non-string panic payload"` when the payload was
    /// neither `&str` nor `String`).
    pub fn message(&self) -> &str {
        &self.message
    }

    /// Which callback panicked: `"receive_data"`, `"post_init"`,
    /// `"spawned future"` (a future from [`spawn`](crate::spawn)),
    /// `"connection_completed"`, `"unbind"`, `"next_tick"` (also closures
    /// queued with [`Handle::schedule`](crate::Handle::schedule)), `"timer"`,
    /// `"periodic timer"`, `"defer callback"`, `"defer errback"`,
    /// `"synchrony"` (the future given to [`synchrony`](crate::synchrony)), …
    pub fn callback(&self) -> &'static str {
        self.callback
    }

    /// The connection whose callback panicked, if it was a connection's.
    pub fn connection(&self) -> Option<ConnectionId> {
        self.connection
    }
}

impl fmt::Display for PanicReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.connection {
            Some(id) => write!(
                f,
                "panic in {} of connection {id}: {}",
                self.callback, self.message
            ),
            None => write!(f, "panic in {}: {}", self.callback, self.message),
        }
    }
}

pub(crate) type ErrorHandler = Rc<dyn Fn(&PanicReport)>;

thread_local! {
    static ERROR_HANDLER: RefCell<Option<ErrorHandler>> = const { RefCell::new(None) };
}

/// Installs `handler` to receive every panic contained in a callback of a
/// reactor on this thread (EventMachine's `EM.error_handler`), replacing the
/// one set before. Without a handler, contained panics are logged at error
/// level (target `em::panic`).
///
/// The handler runs on the reactor thread, right after the panic was caught
/// and before the connection concerned gets its `unbind(Panicked)`. It may
/// call any em function. It stays installed across reactor runs on this
/// thread until [`clear_error_handler`]. A panic inside the handler itself
/// is caught and logged.
///
/// ```
/// # use em_core as em;
/// use std::{cell::RefCell, rc::Rc};
/// let seen = Rc::new(RefCell::new(Vec::new()));
/// let s = seen.clone();
/// em::set_error_handler(move |report| s.borrow_mut().push(report.to_string()));
/// em::run(|| {
///     em::next_tick(|| panic!("oops"));
///     em::next_tick(em::stop);
/// })?;
/// em::clear_error_handler();
/// assert_eq!(*seen.borrow(), ["panic in next_tick: oops"]);
/// # Ok::<(), em_core::Error>(())
/// ```
pub fn set_error_handler(handler: impl Fn(&PanicReport) + 'static) {
    ERROR_HANDLER.with(|h| *h.borrow_mut() = Some(Rc::new(handler)));
}

/// Removes the handler set with [`set_error_handler`] on this thread;
/// contained panics are logged again.
pub fn clear_error_handler() {
    let old = ERROR_HANDLER.with(|h| h.borrow_mut().take());
    drop(old);
}

/// Installs `handler` (or none) on this thread; the one it replaces.
pub(crate) fn replace_error_handler(handler: Option<ErrorHandler>) -> Option<ErrorHandler> {
    ERROR_HANDLER.with(|h| std::mem::replace(&mut *h.borrow_mut(), handler))
}

/// Runs `f`, catching a panic. On a panic it reports it (error handler or
/// error log), stops the reactor if it was built with `stop_on_panic`, and
/// returns the panic message.
///
/// `AssertUnwindSafe` is sound here in the sense that matters: after a panic
/// the connection concerned is closed and its handler is never called again
/// except for `unbind`, so no broken invariant is observed by the code that
/// panicked; everyone else's state is untouched.
pub(crate) fn catch<R>(
    callback: &'static str,
    conn: Option<ConnectionId>,
    f: impl FnOnce() -> R,
) -> Result<R, String> {
    guard(&Cell::new(callback), conn, f)
}

/// Runs `f`, catching a panic like [`catch`], for a run of user calls (a
/// codec and the callbacks it feeds): `running` names the call that was
/// running when the panic came, for the report.
pub(crate) fn guard<R>(
    running: &Cell<&'static str>,
    conn: Option<ConnectionId>,
    f: impl FnOnce() -> R,
) -> Result<R, String> {
    catch_unwind(AssertUnwindSafe(f)).map_err(|payload| {
        let message = message(&*payload);
        report(PanicReport {
            message: message.clone(),
            callback: running.get(),
            connection: conn,
        });
        message
    })
}

/// Polls `future` to completion, containing a panic in any poll like a
/// callback's: it is reported (error handler or log, and `stop_on_panic`)
/// under `callback`, then resumed, so that whoever awaits the task still
/// sees it panicked.
pub(crate) async fn contained<F: Future>(callback: &'static str, future: F) -> F::Output {
    match AssertUnwindSafe(future).catch_unwind().await {
        Ok(output) => output,
        Err(payload) => {
            report(PanicReport {
                message: message(&*payload),
                callback,
                connection: None,
            });
            std::panic::resume_unwind(payload)
        }
    }
}

fn report(report: PanicReport) {
    let handler = ERROR_HANDLER.with(|h| h.borrow().clone());
    match handler {
        Some(handler) => {
            if let Err(payload) = catch_unwind(AssertUnwindSafe(|| handler(&report))) {
                tracing::error!(panic = %message(&*payload), %report, "the em error handler panicked");
            }
        }
        None => match report.connection {
            Some(id) => {
                tracing::error!(callback = report.callback, conn = %id, panic = %report.message, "panic in em callback contained")
            }
            None => {
                tracing::error!(callback = report.callback, panic = %report.message, "panic in em callback contained")
            }
        },
    }
    if let Ok(core) = Core::current("catch") {
        if core.config.stop_on_panic {
            core.request_stop(Some(Error::panicked(report.callback, report.message)));
        }
    }
}

/// The text of a panic payload (`&str` or `String`; anything else is named as such).
pub(crate) fn message(payload: &(dyn Any + Send)) -> String {
    if let Some(s) = payload.downcast_ref::<&str>() {
        (*s).to_owned()
    } else if let Some(s) = payload.downcast_ref::<String>() {
        s.clone()
    } else {
        "non-string panic payload".to_owned()
    }
}
