//! Signals: [`Signal`], the number and name of one, used to send one to a
//! child ([`Conn::kill`](crate::Conn::kill)), to read how a child ended,
//! and to trap one: [`trap`] runs a closure on the reactor thread each time
//! a signal arrives, until [`Trap::untrap`].
//!
//! Each reactor keeps its handlers in a reactor-local registry, by signal
//! number, in the order they were trapped, and runs one listener task per
//! trapped number: a tokio `Signal` stream, made in `trap` itself (tokio
//! installs the process's handler synchronously, so nothing sent after
//! `trap` returns is lost) and ended when the number's last handler is
//! untrapped.

use std::cell::{Cell, RefCell};
use std::collections::BTreeMap;
use std::fmt;
use std::rc::{Rc, Weak};

use tokio::signal::unix::SignalKind;
use tokio::task::AbortHandle;

use crate::error::{Error, Result};
use crate::reactor::core::Core;
use crate::reactor::panic;

/// A Unix signal: its number, with a name for the common ones. Plain data:
/// any thread.
///
/// ```
/// # use em_core as em;
/// use em::Signal;
///
/// assert_eq!(Signal::TERM.to_string(), "SIGTERM");
/// assert_eq!(Signal::from_raw(Signal::USR1.as_raw()), Signal::USR1);
/// assert_eq!(Signal::from_raw(64).to_string(), "signal 64");
/// ```
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Signal(i32);

macro_rules! signals {
    ($($name:ident = $libc:ident, $doc:literal;)*) => {
        impl Signal {
            $(
                #[doc = $doc]
                pub const $name: Signal = Signal(libc::$libc);
            )*
        }

        /// The name of a signal with one (`"SIGTERM"`).
        fn name(raw: i32) -> Option<&'static str> {
            match raw {
                $(libc::$libc => Some(stringify!($libc)),)*
                _ => None,
            }
        }
    };
}

signals! {
    HUP = SIGHUP, "`SIGHUP`: the terminal hung up; by convention, reload the configuration.";
    INT = SIGINT, "`SIGINT`: interrupt (Ctrl-C).";
    QUIT = SIGQUIT, "`SIGQUIT`: quit (Ctrl-\\).";
    ABRT = SIGABRT, "`SIGABRT`: abort.";
    KILL = SIGKILL, "`SIGKILL`: kill; cannot be trapped.";
    USR1 = SIGUSR1, "`SIGUSR1`: user-defined signal 1.";
    USR2 = SIGUSR2, "`SIGUSR2`: user-defined signal 2.";
    PIPE = SIGPIPE, "`SIGPIPE`: write to a pipe with no reader.";
    ALRM = SIGALRM, "`SIGALRM`: an alarm clock expired.";
    TERM = SIGTERM, "`SIGTERM`: terminate, politely.";
    CHLD = SIGCHLD, "`SIGCHLD`: a child stopped or exited.";
    CONT = SIGCONT, "`SIGCONT`: continue if stopped.";
    STOP = SIGSTOP, "`SIGSTOP`: stop; cannot be trapped.";
    TSTP = SIGTSTP, "`SIGTSTP`: stop typed at the terminal (Ctrl-Z).";
    WINCH = SIGWINCH, "`SIGWINCH`: the terminal's window changed size.";
}

impl Signal {
    /// The signal numbered `raw` (`SIGRTMIN + 1`, or a number this type
    /// has no name for). Not checked: sending or trapping a number the
    /// system does not know is an error then.
    pub const fn from_raw(raw: i32) -> Signal {
        Signal(raw)
    }

    /// Its number.
    pub const fn as_raw(self) -> i32 {
        self.0
    }

    /// Its name (`"SIGTERM"`), where it has one.
    pub fn name(self) -> Option<&'static str> {
        name(self.0)
    }
}

impl fmt::Display for Signal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.name() {
            Some(name) => f.write_str(name),
            None => write!(f, "signal {}", self.0),
        }
    }
}

impl fmt::Debug for Signal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Signal({self} = {})", self.0)
    }
}

/// Signals no process can catch (`SIGKILL`, `SIGSTOP`) or that must not be
/// caught, because returning from their handler re-runs the faulting
/// instruction (`SIGILL`, `SIGFPE`, `SIGSEGV`): tokio refuses them all
/// (signal-hook's `FORBIDDEN` list).
const UNTRAPPABLE: [i32; 5] = [
    libc::SIGKILL,
    libc::SIGSTOP,
    libc::SIGILL,
    libc::SIGFPE,
    libc::SIGSEGV,
];

/// Runs `f` on the reactor thread each time `signal` arrives, until the
/// returned [`Trap`] is [untrapped](Trap::untrap) (Ruby's `Signal.trap`, as
/// EventMachine programs use it, but the closure runs as an ordinary
/// callback of the reactor, never inside the signal handler). Reactor
/// thread only.
///
/// * **Nothing is lost after `trap` returns**: the process's handler for
///   `signal` is installed before it returns, so a signal sent from then on
///   reaches `f`, even one sent by the same callback right after the call.
/// * **At least once per arrival**: `f` runs at least once after each
///   arrival; arrivals close together may run it once (the kernel, and
///   tokio after it, merge a signal that is still pending).
/// * **Several handlers per signal** run in the order they were trapped,
///   one after the other, in one turn of the reactor. A handler trapped
///   while the handlers of that signal run gets the next arrival; one
///   untrapped meanwhile does not run again.
/// * **Panics** in `f` are contained like any callback's: the
///   [error handler](crate::set_error_handler) gets a
///   [`PanicReport`](crate::PanicReport) whose callback is `"trap"`, the
///   handler stays trapped, and the reactor goes on (or stops, if built
///   with `stop_on_panic`).
/// * **Once the reactor stops**, no handler runs; the handlers are dropped
///   with the reactor.
/// * **Every reactor** that traps a signal gets each arrival (a process
///   has one handler per signal; tokio hands each arrival to every
///   listener).
///
/// # What the process does with the signal afterwards
///
/// tokio installs its own handler the first time a signal is listened for
/// and keeps it installed for the life of the process: after the last
/// handler of a signal is untrapped (its listener task then ends), and
/// after the reactor has stopped, the signal is **ignored** rather than
/// given its default action: SIGINT and SIGTERM no longer end the
/// process, SIGTSTP no longer stops it. (A signal whose default is to be
/// ignored, such as SIGCHLD or SIGWINCH, behaves as before; a child still
/// waits to be reaped by whoever waits for it.) That is tokio's behaviour,
/// and em's with it.
///
/// Errors: `is_no_reactor()` where no reactor runs; `is_stopping()` once it
/// stops; `is_unsupported()` for a signal that cannot be trapped (SIGKILL,
/// SIGSTOP, and SIGILL, SIGFPE and SIGSEGV, which tokio refuses) or that
/// the system refuses (a number it has no such signal for, one the C
/// library keeps for itself); `is_invalid_argument()` for a number under 1.
/// On error `f` is dropped.
///
/// ```
/// # use em_core as em;
/// use em::Signal;
///
/// em::run(|| -> em::Result<()> {
///     em::trap(Signal::USR1, || {
///         assert!(em::reactor_thread()); // a callback like any other
///         em::stop();
///     })?;
///     // Sent after `trap` returned: it cannot be lost.
///     std::process::Command::new("kill")
///         .args(["-USR1", &std::process::id().to_string()])
///         .status()
///         .expect("kill");
/// #   em_core::spawn(async {
/// #       tokio::time::sleep(std::time::Duration::from_secs(20)).await;
/// #       em_core::stop();
/// #   })?;
///     Ok(())
/// })?;
///
/// em::run(|| {
///     let kill = em::trap(Signal::KILL, || {});
///     assert!(kill.unwrap_err().is_unsupported());
///     em::stop();
/// })?;
/// # Ok::<(), em_core::Error>(())
/// ```
pub fn trap(signal: Signal, f: impl FnMut() + 'static) -> Result<Trap> {
    let core = Core::current_accepting("trap")?;
    if signal.0 < 1 {
        return Err(Error::invalid_argument("trap", "signal numbers start at 1"));
    }
    if UNTRAPPABLE.contains(&signal.0) {
        return Err(Error::unsupported(
            "trap",
            format!("{signal} cannot be trapped"),
        ));
    }
    let traps = core.local(Traps::default);
    let handler: Handler = Rc::new(RefCell::new(Box::new(f)));
    let id = traps.next_id.get();
    traps.next_id.set(id + 1);
    let listening = traps.by_signal.borrow().contains_key(&signal.0);
    if listening {
        let mut by_signal = traps.by_signal.borrow_mut();
        let trapped = by_signal.get_mut(&signal.0).expect("checked above");
        trapped.handlers.push((id, handler));
    } else {
        // Made here, not in the task: the handler is installed and this
        // listener counts arrivals from now on.
        let arrivals = tokio::signal::unix::signal(SignalKind::from_raw(signal.0))
            .map_err(|e| Error::unsupported("trap", format!("{signal} cannot be trapped: {e}")))?;
        let listener = tokio::task::spawn_local(listen(signal, arrivals, Rc::downgrade(&traps)));
        traps.by_signal.borrow_mut().insert(
            signal.0,
            Trapped {
                handlers: vec![(id, handler)],
                listener: listener.abort_handle(),
            },
        );
        tracing::debug!(%signal, "listening for a signal");
    }
    Ok(Trap {
        traps: Rc::downgrade(&traps),
        signal,
        id,
    })
}

/// A handler installed with [`trap`]: the handle to [`untrap`](Trap::untrap)
/// it.
///
/// Dropping a `Trap` does **not** untrap the handler (like a timer's
/// handle): keep it to untrap later, or drop it to trap for the life of the
/// reactor. Clones are handles to the same handler. `!Send`: it belongs to
/// the reactor thread, and outlives its reactor harmlessly.
///
/// ```compile_fail
/// # use em_core as em;
/// fn on_another_thread(trap: em::Trap) {
///     std::thread::spawn(move || trap.untrap()); // error: `Trap` is not `Send`
/// }
/// ```
#[derive(Clone)]
pub struct Trap {
    traps: Weak<Traps>,
    signal: Signal,
    id: u64,
}

impl Trap {
    /// Removes the handler: it does not run again, and its closure is
    /// dropped before `untrap` returns (or, when called from the closure
    /// itself, as soon as it returns). The signal's other handlers go on.
    /// Untrapping the last handler of a signal ends the reactor's listener
    /// for it; the process then ignores that signal (see [`trap`]).
    /// Idempotent, and a no-op once the reactor has stopped. Reactor thread
    /// only (the type is `!Send`).
    pub fn untrap(&self) {
        if let Some(traps) = self.traps.upgrade() {
            traps.remove(self.signal, self.id);
        }
    }

    /// The signal trapped.
    pub fn signal(&self) -> Signal {
        self.signal
    }
}

impl fmt::Debug for Trap {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Trap")
            .field("signal", &self.signal)
            .field("id", &self.id)
            .finish()
    }
}

/// A trapped closure, shared by the registry and a delivery in progress.
type Handler = Rc<RefCell<Box<dyn FnMut()>>>;

/// The handlers of one reactor, by signal number: reactor-local state.
#[derive(Default)]
struct Traps {
    next_id: Cell<u64>,
    by_signal: RefCell<BTreeMap<i32, Trapped>>,
}

/// One trapped signal: its handlers in trap order, and its listener task.
struct Trapped {
    handlers: Vec<(u64, Handler)>,
    listener: AbortHandle,
}

impl Traps {
    /// The ids of `signal`'s handlers, in trap order.
    fn handler_ids(&self, signal: Signal) -> Vec<u64> {
        self.by_signal
            .borrow()
            .get(&signal.0)
            .map(|t| t.handlers.iter().map(|(id, _)| *id).collect())
            .unwrap_or_default()
    }

    /// Handler `id` of `signal`, if it is still trapped.
    fn handler(&self, signal: Signal, id: u64) -> Option<Handler> {
        let by_signal = self.by_signal.borrow();
        let trapped = by_signal.get(&signal.0)?;
        trapped
            .handlers
            .iter()
            .find(|(i, _)| *i == id)
            .map(|(_, h)| h.clone())
    }

    /// Removes handler `id` of `signal`; ends the listener with the last
    /// handler.
    fn remove(&self, signal: Signal, id: u64) {
        let mut by_signal = self.by_signal.borrow_mut();
        let Some(trapped) = by_signal.get_mut(&signal.0) else {
            return;
        };
        let Some(at) = trapped.handlers.iter().position(|(i, _)| *i == id) else {
            return;
        };
        let (_, handler) = trapped.handlers.remove(at);
        let ended = if trapped.handlers.is_empty() {
            by_signal.remove(&signal.0)
        } else {
            None
        };
        drop(by_signal);
        if let Some(ended) = ended {
            // From inside one of its own handlers too: the task ends when
            // it next waits.
            ended.listener.abort();
            tracing::debug!(%signal, "no longer listening for a signal");
        }
        // Dropped outside the borrow: the closure's captures may reach em.
        drop(handler);
    }
}

impl fmt::Debug for Traps {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Traps")
            .field(
                "signals",
                &self.by_signal.borrow().keys().collect::<Vec<_>>(),
            )
            .finish()
    }
}

/// The listener of one trapped signal on one reactor: runs the signal's
/// handlers after each arrival, until aborted (its last handler was
/// untrapped) or dropped with the reactor.
async fn listen(signal: Signal, mut arrivals: tokio::signal::unix::Signal, traps: Weak<Traps>) {
    while arrivals.recv().await.is_some() {
        let Some(traps) = traps.upgrade() else {
            return;
        };
        tracing::trace!(%signal, "signal arrived");
        for id in traps.handler_ids(signal) {
            if Core::with_current(|c| c.is_none_or(Core::stopping)) {
                return;
            }
            let Some(handler) = traps.handler(signal, id) else {
                continue; // untrapped by a handler before it
            };
            let Ok(mut f) = handler.try_borrow_mut() else {
                continue; // cannot happen: handlers never nest
            };
            let _ = panic::catch("trap", None, || (*f)());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The listener task of `signal` on this reactor, while it has one.
    fn listener(signal: Signal) -> Option<AbortHandle> {
        let traps = Core::current("test").unwrap().local(Traps::default);
        let by_signal = traps.by_signal.borrow();
        by_signal.get(&signal.0).map(|t| t.listener.clone())
    }

    /// The listener task lives while the signal has a handler, and ends
    /// with the last one (no signal is sent: the test only traps).
    #[test]
    fn the_listener_ends_with_the_last_handler() {
        crate::run(|| -> Result<()> {
            crate::spawn(async {
                let first = trap(Signal::WINCH, || {}).unwrap();
                let second = trap(Signal::WINCH, || {}).unwrap();
                let task = listener(Signal::WINCH).expect("a listener");
                first.untrap();
                tokio::task::yield_now().await;
                assert!(!task.is_finished(), "one handler is left");
                assert!(listener(Signal::WINCH).is_some());
                second.untrap();
                assert!(listener(Signal::WINCH).is_none());
                for _ in 0..100 {
                    if task.is_finished() {
                        break;
                    }
                    tokio::task::yield_now().await;
                }
                assert!(task.is_finished(), "the listener ended");
                // A new trap gets a new listener.
                let again = trap(Signal::WINCH, || {}).unwrap();
                let new_task = listener(Signal::WINCH).expect("a new listener");
                assert_ne!(new_task.id(), task.id());
                again.untrap();
                crate::stop();
            })?;
            Ok(())
        })
        .unwrap();
    }
}
