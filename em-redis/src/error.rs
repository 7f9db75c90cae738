//! `RedisError`: what went wrong with a command, a connection or a reply.

use std::fmt;
use std::sync::Arc;

/// What went wrong talking to Redis. Cheap to clone; `Display` names what
/// failed and why; ask it with the `is_*` predicates.
#[derive(Clone)]
pub struct RedisError {
    kind: Kind,
}

#[derive(Debug, Clone)]
enum Kind {
    /// The server answered with an error reply (`-ERR …`, `-WRONGTYPE …`).
    Server(String),
    /// Not connected: the connection is down (reconnecting) or was closed
    /// before the reply came; what was the reason.
    Disconnected(String),
    /// The reply had another shape than the command's typed result wants.
    UnexpectedReply(&'static str, String),
    /// The reply could not be parsed, or passed the size limit.
    Protocol(Arc<dyn std::error::Error + Send + Sync>),
    /// An argument that cannot be sent (an empty command).
    InvalidCommand(&'static str),
    /// em refused the call (no reactor on this thread, stopping).
    Em(em_core::Error),
}

impl RedisError {
    pub(crate) fn server(message: impl Into<String>) -> Self {
        RedisError {
            kind: Kind::Server(message.into()),
        }
    }
    pub(crate) fn disconnected(why: impl Into<String>) -> Self {
        RedisError {
            kind: Kind::Disconnected(why.into()),
        }
    }
    pub(crate) fn unexpected(wanted: &'static str, got: impl fmt::Debug) -> Self {
        RedisError {
            kind: Kind::UnexpectedReply(wanted, format!("{got:?}")),
        }
    }
    pub(crate) fn protocol(e: impl Into<Box<dyn std::error::Error + Send + Sync>>) -> Self {
        RedisError {
            kind: Kind::Protocol(Arc::from(e.into())),
        }
    }
    pub(crate) fn invalid_command(what: &'static str) -> Self {
        RedisError {
            kind: Kind::InvalidCommand(what),
        }
    }

    /// The server answered the command with an error reply; see
    /// [`server_message`](Self::server_message).
    pub fn is_server(&self) -> bool {
        matches!(self.kind, Kind::Server(_))
    }
    /// The server's error reply (`ERR unknown command 'FOO'…`), if that is
    /// what this is.
    pub fn server_message(&self) -> Option<&str> {
        match &self.kind {
            Kind::Server(m) => Some(m),
            _ => None,
        }
    }
    /// The connection was down when the command was given, or went down
    /// before its reply came: the command may or may not have run.
    pub fn is_disconnected(&self) -> bool {
        matches!(self.kind, Kind::Disconnected(_))
    }
    /// The reply's shape did not fit the typed result asked for (a string
    /// where an integer was wanted).
    pub fn is_unexpected_reply(&self) -> bool {
        matches!(self.kind, Kind::UnexpectedReply(..))
    }
    /// The server's bytes were not RESP, or a reply passed the size limit;
    /// the connection is closed (and reconnects).
    pub fn is_protocol(&self) -> bool {
        matches!(self.kind, Kind::Protocol(_))
    }
    /// The command cannot be sent (it is empty).
    pub fn is_invalid_command(&self) -> bool {
        matches!(self.kind, Kind::InvalidCommand(_))
    }
    /// em refused the call (no reactor on this thread, or it is stopping);
    /// `source()` is em's error.
    pub fn is_em(&self) -> bool {
        matches!(self.kind, Kind::Em(_))
    }
}

/// A codec needs it (tokio-util's `Decoder::Error: From<io::Error>`):
/// the transport's errors reach `unbind` as I/O errors, not through this.
impl From<std::io::Error> for RedisError {
    fn from(e: std::io::Error) -> Self {
        RedisError::disconnected(e.to_string())
    }
}

impl From<em_core::Error> for RedisError {
    fn from(e: em_core::Error) -> Self {
        RedisError { kind: Kind::Em(e) }
    }
}

impl fmt::Display for RedisError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.kind {
            Kind::Server(m) => write!(f, "redis: the server answered: {m}"),
            Kind::Disconnected(why) => write!(f, "redis: not connected ({why})"),
            Kind::UnexpectedReply(wanted, got) => {
                write!(f, "redis: the reply is not {wanted}: {got}")
            }
            Kind::Protocol(e) => write!(f, "redis: bad reply from the server: {e}"),
            Kind::InvalidCommand(what) => write!(f, "redis: invalid command: {what}"),
            Kind::Em(e) => write!(f, "redis: {e}"),
        }
    }
}

/// `{:?}` prints what `Display` prints; `{:#?}` the structure.
impl fmt::Debug for RedisError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if f.alternate() {
            f.debug_tuple("RedisError").field(&self.kind).finish()
        } else {
            fmt::Display::fmt(self, f)
        }
    }
}

impl std::error::Error for RedisError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match &self.kind {
            Kind::Protocol(e) => Some(&**e),
            Kind::Em(e) => Some(e),
            _ => None,
        }
    }
}

/// `?` on a Redis error in code returning `em::Result` (a run block): em's
/// own error when em refused the call, otherwise `em::Error::other`.
impl From<RedisError> for em_core::Error {
    fn from(e: RedisError) -> Self {
        match e.kind {
            Kind::Em(em) => em,
            _ => em_core::Error::other(e),
        }
    }
}

/// `Result` with [`RedisError`].
pub type RedisResult<T> = Result<T, RedisError>;
