//! `DeferError`: why a deferred op produced no value.

use std::fmt;
use std::io;

/// Why a deferred op produced no value: it panicked, the reactor stopped
/// before its result came back, no reactor runs on the calling thread, or no
/// pool thread could be started.
///
/// Handed to an errback (see [`defer_with_errback`](crate::defer_with_errback))
/// on the reactor thread, or returned by [`defer_async`](crate::defer_async).
/// Opaque on purpose: ask it with the `is_*` predicates and print it with
/// `Display`.
pub struct DeferError {
    kind: Kind,
}

#[derive(Debug)]
enum Kind {
    Panicked(String),
    Stopped,
    Reactor(em_core::Error),
    Spawn(io::Error),
}

impl DeferError {
    pub(crate) fn panicked(message: String) -> Self {
        DeferError {
            kind: Kind::Panicked(message),
        }
    }

    pub(crate) fn stopped() -> Self {
        DeferError {
            kind: Kind::Stopped,
        }
    }

    pub(crate) fn reactor(error: em_core::Error) -> Self {
        DeferError {
            kind: Kind::Reactor(error),
        }
    }

    pub(crate) fn spawn(error: io::Error) -> Self {
        DeferError {
            kind: Kind::Spawn(error),
        }
    }

    /// The op panicked; [`panic_message`](Self::panic_message) has the text.
    pub fn is_panic(&self) -> bool {
        matches!(self.kind, Kind::Panicked(_))
    }

    /// The panic message of an op that panicked (`&str` and `String`
    /// payloads; other payloads read "non-string panic payload").
    pub fn panic_message(&self) -> Option<&str> {
        match &self.kind {
            Kind::Panicked(message) => Some(message),
            _ => None,
        }
    }

    /// The reactor stopped before the op's result was delivered (only a
    /// [`DeferFuture`](crate::DeferFuture) polled after its reactor stopped
    /// sees this).
    pub fn is_stopped(&self) -> bool {
        matches!(self.kind, Kind::Stopped)
    }

    /// [`defer_async`](crate::defer_async) was called where no reactor runs.
    pub fn is_no_reactor(&self) -> bool {
        matches!(&self.kind, Kind::Reactor(e) if e.is_no_reactor())
    }

    /// [`defer_async`](crate::defer_async) was called once the reactor had
    /// begun to stop, so the op was refused and never ran.
    pub fn is_stopping(&self) -> bool {
        matches!(&self.kind, Kind::Reactor(e) if e.is_stopping())
    }

    /// No pool thread could be started (the OS refused to spawn one), so
    /// the op never ran. `source()` is the `io::Error`.
    pub fn is_spawn(&self) -> bool {
        matches!(self.kind, Kind::Spawn(_))
    }
}

impl fmt::Display for DeferError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.kind {
            Kind::Panicked(message) => write!(f, "the defer op panicked: {message}"),
            Kind::Stopped => {
                f.write_str("the em reactor stopped before the defer op's result was delivered")
            }
            Kind::Reactor(e) => write!(f, "{e}"),
            Kind::Spawn(e) => write!(f, "cannot start a defer pool thread: {e}"),
        }
    }
}

/// `{:?}` prints what `Display` prints (so that `fn main() -> Result<…>`
/// shows a readable message, as anyhow's and hyper's errors do); `{:#?}`
/// the structure.
impl fmt::Debug for DeferError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if f.alternate() {
            f.debug_tuple("DeferError").field(&self.kind).finish()
        } else {
            fmt::Display::fmt(self, f)
        }
    }
}

impl std::error::Error for DeferError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match &self.kind {
            Kind::Reactor(e) => Some(e),
            Kind::Spawn(e) => Some(e),
            _ => None,
        }
    }
}

/// `?` on a deferred operation's error in code returning `em::Result` (a run block):
/// `em::Error::other`, with this error as its `source()`.
impl From<DeferError> for em_core::Error {
    fn from(e: DeferError) -> Self {
        em_core::Error::other(e)
    }
}
