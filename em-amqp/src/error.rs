//! `AmqpError`: what went wrong with the broker, a connection, a channel or
//! a call.

use std::fmt;
use std::sync::Arc;

/// What went wrong talking to RabbitMQ. Cheap to clone; `Display` names
/// what failed and why; ask it with the `is_*` predicates.
#[derive(Clone)]
pub struct AmqpError {
    kind: Kind,
}

#[derive(Debug, Clone)]
enum Kind {
    /// Not connected: the connection is down (reconnecting), or went down
    /// before the broker answered; why.
    Disconnected(String),
    /// The broker closed the channel (a 404 on a passive declare, a 406
    /// precondition failed…): its reply code and text.
    ChannelClosed(u16, String),
    /// The broker closed the connection (access refused, a forced close…).
    ConnectionClosed(u16, String),
    /// The broker refused a published message (basic.nack in confirm mode).
    Nacked,
    /// The broker's bytes were not AMQP 0.9.1, or the broker broke the
    /// conversation (an unexpected method).
    Protocol(Arc<str>),
    /// An argument that cannot be sent (a name longer than 255 bytes, a
    /// bad URL).
    InvalidArgument(String),
    /// The channel or the client was closed by this program.
    Closed(&'static str),
    /// em refused the call (no reactor on this thread, stopping).
    Em(em_core::Error),
}

impl AmqpError {
    pub(crate) fn disconnected(why: impl Into<String>) -> Self {
        AmqpError {
            kind: Kind::Disconnected(why.into()),
        }
    }
    pub(crate) fn channel_closed(code: u16, text: impl Into<String>) -> Self {
        AmqpError {
            kind: Kind::ChannelClosed(code, text.into()),
        }
    }
    pub(crate) fn connection_closed(code: u16, text: impl Into<String>) -> Self {
        AmqpError {
            kind: Kind::ConnectionClosed(code, text.into()),
        }
    }
    pub(crate) fn nacked() -> Self {
        AmqpError { kind: Kind::Nacked }
    }
    pub(crate) fn protocol(what: impl Into<String>) -> Self {
        AmqpError {
            kind: Kind::Protocol(Arc::from(what.into())),
        }
    }
    pub(crate) fn invalid(what: impl Into<String>) -> Self {
        AmqpError {
            kind: Kind::InvalidArgument(what.into()),
        }
    }
    pub(crate) fn closed(what: &'static str) -> Self {
        AmqpError {
            kind: Kind::Closed(what),
        }
    }

    /// The connection was down when the call was made, or went down before
    /// the broker answered: the call may or may not have taken effect (a
    /// publish may have reached the queue; an ack may not have).
    pub fn is_disconnected(&self) -> bool {
        matches!(self.kind, Kind::Disconnected(_))
    }
    /// The broker closed the channel; see [`reply_code`](Self::reply_code)
    /// (404 not found, 405 resource locked, 406 precondition failed…).
    pub fn is_channel_closed(&self) -> bool {
        matches!(self.kind, Kind::ChannelClosed(..))
    }
    /// The broker closed the connection (403 access refused, 320 forced by
    /// an operator or a broker shutting down, 530 not allowed…).
    pub fn is_connection_closed(&self) -> bool {
        matches!(self.kind, Kind::ConnectionClosed(..))
    }
    /// The broker refused a published message (`basic.nack` in confirm
    /// mode): it is not queued.
    pub fn is_nacked(&self) -> bool {
        matches!(self.kind, Kind::Nacked)
    }
    /// The broker broke the protocol; the connection is closed (and
    /// reconnects).
    pub fn is_protocol(&self) -> bool {
        matches!(self.kind, Kind::Protocol(_))
    }
    /// An argument cannot be sent (a name over 255 bytes, a bad URL).
    pub fn is_invalid_argument(&self) -> bool {
        matches!(self.kind, Kind::InvalidArgument(_))
    }
    /// The channel or the client was closed by this program.
    pub fn is_closed(&self) -> bool {
        matches!(self.kind, Kind::Closed(_))
    }
    /// em refused the call (no reactor on this thread, or it is stopping);
    /// `source()` is em's error.
    pub fn is_em(&self) -> bool {
        matches!(self.kind, Kind::Em(_))
    }
    /// The message without the `amqp: ` prefix (to nest it in another).
    pub(crate) fn detail(&self) -> String {
        let text = self.to_string();
        text.strip_prefix("amqp: ").unwrap_or(&text).to_string()
    }

    /// The broker's reply code when it closed the channel or the
    /// connection (AMQP's constants: 404, 406, 403, 320…).
    pub fn reply_code(&self) -> Option<u16> {
        match &self.kind {
            Kind::ChannelClosed(code, _) | Kind::ConnectionClosed(code, _) => Some(*code),
            _ => None,
        }
    }
}

/// A codec needs it (tokio-util's `Decoder::Error: From<io::Error>`).
impl From<std::io::Error> for AmqpError {
    fn from(e: std::io::Error) -> Self {
        AmqpError::disconnected(e.to_string())
    }
}

impl From<em_core::Error> for AmqpError {
    fn from(e: em_core::Error) -> Self {
        AmqpError { kind: Kind::Em(e) }
    }
}

impl fmt::Display for AmqpError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.kind {
            Kind::Disconnected(why) => write!(f, "amqp: not connected ({why})"),
            Kind::ChannelClosed(code, text) => {
                write!(f, "amqp: the broker closed the channel: {code} {text}")
            }
            Kind::ConnectionClosed(code, text) => {
                write!(f, "amqp: the broker closed the connection: {code} {text}")
            }
            Kind::Nacked => write!(f, "amqp: the broker refused the message (nack)"),
            Kind::Protocol(what) => write!(f, "amqp: protocol error: {what}"),
            Kind::InvalidArgument(what) => write!(f, "amqp: invalid argument: {what}"),
            Kind::Closed(what) => write!(f, "amqp: the {what} is closed"),
            Kind::Em(e) => write!(f, "amqp: {e}"),
        }
    }
}

/// `{:?}` prints what `Display` prints; `{:#?}` the structure.
impl fmt::Debug for AmqpError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if f.alternate() {
            f.debug_tuple("AmqpError").field(&self.kind).finish()
        } else {
            fmt::Display::fmt(self, f)
        }
    }
}

impl std::error::Error for AmqpError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match &self.kind {
            Kind::Em(e) => Some(e),
            _ => None,
        }
    }
}

/// `?` on an AMQP error in code returning `em::Result` (a run block): em's
/// own error when em refused the call, otherwise `em::Error::other`.
impl From<AmqpError> for em_core::Error {
    fn from(e: AmqpError) -> Self {
        match e.kind {
            Kind::Em(em) => em,
            _ => em_core::Error::other(e),
        }
    }
}

/// `Result` with [`AmqpError`].
pub type AmqpResult<T> = Result<T, AmqpError>;

/// A reply from the broker, or the outcome of a call: em's
/// [`Deferred`](em_core::Deferred) (EventMachine's deferrable, as the
/// `amqp` gem's calls return): `.await` it under `em::spawn`, or give it
/// `callback`/`errback`s.
pub type Reply<T> = em_core::Deferred<T, AmqpError>;
