//! em-proxy's error type: why a proxy or a router could not start.

use std::fmt;

/// `Result` with em-proxy's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Why a proxy or a router could not start, or a signal could not be
/// trapped.
///
/// Opaque, after em's own error: ask it with the `is_*` predicates, print
/// it with `Display`, or walk `source()` to em's error. What goes wrong
/// later, on one session (a backend refused, a callback panicked), never
/// surfaces here: it ends that session, is logged with the connection's
/// id and peer, and counts in [`Stats`](crate::Stats).
#[derive(Clone)]
pub struct Error {
    kind: Kind,
}

/// `{:?}` prints what `Display` prints (so that `fn main() -> Result<…>`
/// shows a readable message, as anyhow's and hyper's errors do); `{:#?}`
/// the structure.
impl fmt::Debug for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if f.alternate() {
            f.debug_tuple("em_proxy::Error").field(&self.kind).finish()
        } else {
            fmt::Display::fmt(self, f)
        }
    }
}

#[derive(Debug, Clone)]
enum Kind {
    /// em refused the call (no reactor, cannot bind, cannot trap).
    Em(&'static str, em_core::Error),
    /// An option that cannot work: which one and why.
    Config(&'static str, String),
}

impl Error {
    pub(crate) fn em(call: &'static str, e: em_core::Error) -> Self {
        Error {
            kind: Kind::Em(call, e),
        }
    }

    pub(crate) fn config(option: &'static str, why: impl Into<String>) -> Self {
        Error {
            kind: Kind::Config(option, why.into()),
        }
    }

    /// The listening address could not be bound (in use, not permitted,
    /// not resolvable).
    pub fn is_bind(&self) -> bool {
        matches!(&self.kind, Kind::Em(_, e) if e.is_bind())
    }

    /// The call was made where no em reactor runs: start proxies and
    /// routers from the reactor thread (inside `em::run`, a callback, a
    /// tick).
    pub fn is_no_reactor(&self) -> bool {
        matches!(&self.kind, Kind::Em(_, e) if e.is_no_reactor())
    }

    /// An option that cannot work, such as a zero buffer limit.
    pub fn is_config(&self) -> bool {
        matches!(self.kind, Kind::Config(..))
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.kind {
            Kind::Em(call, e) => write!(f, "{call}: {e}"),
            Kind::Config(option, why) => write!(f, "invalid option {option}: {why}"),
        }
    }
}

impl std::error::Error for Error {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match &self.kind {
            Kind::Em(_, e) => Some(e),
            Kind::Config(..) => None,
        }
    }
}

/// `?` on a proxy error in code returning `em::Result` (a run block):
/// `em::Error::other`, with this error as its `source()`.
impl From<Error> for em_core::Error {
    fn from(e: Error) -> Self {
        em_core::Error::other(e)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn display_names_the_option() {
        let e = Error::config("max_buffer", "must be at least 1 byte");
        assert!(e.is_config() && !e.is_bind());
        assert_eq!(
            e.to_string(),
            "invalid option max_buffer: must be at least 1 byte"
        );
    }
}
