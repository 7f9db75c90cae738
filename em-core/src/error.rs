//! The one error type of em-core, with `is_*` predicates (after hyper's `Error`).

use std::fmt;
use std::io;
use std::sync::Arc;

use crate::reactor::core::ConnectionId;

/// A boxed error from user code or a codec: what `UnbindReason::Codec` and
/// [`Error::is_encode`] carry.
pub type BoxError = Box<dyn std::error::Error + Send + Sync + 'static>;

/// `Result` with em's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// What went wrong in an em call.
///
/// Opaque on purpose: ask it with the `is_*` predicates, print it with
/// `Display` (which names the call and, for sockets, the address), or walk
/// `source()` to the underlying `io::Error`. Cheap to clone.
#[derive(Clone)]
pub struct Error {
    kind: Kind,
}

#[derive(Debug, Clone)]
enum Kind {
    NoReactor(&'static str),
    AlreadyRunning,
    InsideRuntime,
    NoRuntime,
    Stopping(&'static str),
    NotRunning,
    Runtime(Arc<io::Error>),
    Bind(String, Arc<io::Error>),
    Connect(String, Arc<io::Error>),
    Closed,
    Closing,
    /// A call that needs the connection's socket, made when it has none:
    /// the call, and why (not connected yet, ended, detached).
    NotOpen(&'static str, &'static str),
    Encode(Arc<dyn std::error::Error + Send + Sync>),
    Config(String),
    Panicked(&'static str, String),
    Init(Arc<dyn std::error::Error + Send + Sync>),
    TooManyTimers(usize),
    InvalidArgument(&'static str, &'static str),
    AlreadyStarted(&'static str),
    OutboundOverflow(usize, usize),
    Unsupported(&'static str, String),
    Io(&'static str, Arc<io::Error>),
    StoppedEarly,
    /// A `Send` sender's receiver (a channel, a queue) was dropped on its
    /// reactor: the call, and what is gone.
    ReceiverGone(&'static str, &'static str),
    /// A proxy's target already has a proxy from another connection: the
    /// call, the target and its current source.
    BusyTarget(&'static str, ConnectionId, ConnectionId),
    /// A reply on a datagram socket before any datagram arrived: the call.
    NoPeer(&'static str),
    /// TLS options that cannot work: what is wrong.
    TlsConfig(String),
    /// An error of the program's, made an em error by `?` or
    /// [`Error::other`].
    Other(Arc<dyn std::error::Error + Send + Sync>),
}

impl Error {
    pub(crate) fn no_reactor(call: &'static str) -> Self {
        Self::new(Kind::NoReactor(call))
    }
    pub(crate) fn already_running() -> Self {
        Self::new(Kind::AlreadyRunning)
    }
    pub(crate) fn inside_runtime() -> Self {
        Self::new(Kind::InsideRuntime)
    }
    pub(crate) fn no_runtime() -> Self {
        Self::new(Kind::NoRuntime)
    }
    pub(crate) fn stopping(call: &'static str) -> Self {
        Self::new(Kind::Stopping(call))
    }
    pub(crate) fn not_running() -> Self {
        Self::new(Kind::NotRunning)
    }
    pub(crate) fn runtime(e: io::Error) -> Self {
        Self::new(Kind::Runtime(Arc::new(e)))
    }
    pub(crate) fn bind(addr: impl Into<String>, e: io::Error) -> Self {
        Self::new(Kind::Bind(addr.into(), Arc::new(e)))
    }
    pub(crate) fn connect(addr: impl Into<String>, e: io::Error) -> Self {
        Self::new(Kind::Connect(addr.into(), Arc::new(e)))
    }
    pub(crate) fn closed() -> Self {
        Self::new(Kind::Closed)
    }
    pub(crate) fn closing() -> Self {
        Self::new(Kind::Closing)
    }
    pub(crate) fn not_open(call: &'static str, why: &'static str) -> Self {
        Self::new(Kind::NotOpen(call, why))
    }
    pub(crate) fn encode(e: impl Into<BoxError>) -> Self {
        Self::new(Kind::Encode(Arc::from(e.into())))
    }
    pub(crate) fn config(what: impl Into<String>) -> Self {
        Self::new(Kind::Config(what.into()))
    }
    pub(crate) fn panicked(callback: &'static str, message: String) -> Self {
        Self::new(Kind::Panicked(callback, message))
    }
    pub(crate) fn init(e: impl Into<BoxError>) -> Self {
        Self::new(Kind::Init(Arc::from(e.into())))
    }
    pub(crate) fn too_many_timers(max: usize) -> Self {
        Self::new(Kind::TooManyTimers(max))
    }

    pub(crate) fn invalid_argument(call: &'static str, what: &'static str) -> Self {
        Self::new(Kind::InvalidArgument(call, what))
    }
    pub(crate) fn outbound_overflow(max: usize, queued: usize) -> Self {
        Self::new(Kind::OutboundOverflow(max, queued))
    }
    pub(crate) fn already_started(call: &'static str) -> Self {
        Self::new(Kind::AlreadyStarted(call))
    }
    pub(crate) fn unsupported(call: &'static str, what: impl Into<String>) -> Self {
        Self::new(Kind::Unsupported(call, what.into()))
    }
    pub(crate) fn io(call: &'static str, e: io::Error) -> Self {
        Self::new(Kind::Io(call, Arc::new(e)))
    }
    pub(crate) fn stopped_early() -> Self {
        Self::new(Kind::StoppedEarly)
    }

    pub(crate) fn busy_target(
        call: &'static str,
        target: ConnectionId,
        source: ConnectionId,
    ) -> Self {
        Self::new(Kind::BusyTarget(call, target, source))
    }

    pub(crate) fn tls_config(what: String) -> Self {
        Self::new(Kind::TlsConfig(what))
    }

    pub(crate) fn no_peer(call: &'static str) -> Self {
        Self::new(Kind::NoPeer(call))
    }

    pub(crate) fn receiver_gone(call: &'static str, what: &'static str) -> Self {
        Self::new(Kind::ReceiverGone(call, what))
    }

    fn new(kind: Kind) -> Self {
        Error { kind }
    }

    /// Wraps an error of the program's (or of another library) as an em
    /// error, so that a run block returning `em::Result` can `?` it: its
    /// `Display` is the wrapped error's, `source()` is the wrapped error,
    /// and [`is_other`](Self::is_other) is true. `?` does this by itself
    /// for `io::Error`, `BoxError`, `String` and `&str`, and em's other
    /// crates' errors convert too.
    ///
    /// ```
    /// # use em_core as em;
    /// let e = em::Error::other("the config file has no [server] section");
    /// assert!(e.is_other());
    /// assert_eq!(e.to_string(), "the config file has no [server] section");
    /// ```
    pub fn other(error: impl Into<BoxError>) -> Self {
        Self::new(Kind::Other(Arc::from(error.into())))
    }

    /// A reactor-only call was made on a thread where no reactor runs.
    pub fn is_no_reactor(&self) -> bool {
        matches!(self.kind, Kind::NoReactor(_))
    }
    /// `run` was called on a thread whose reactor is already running, or from
    /// inside another tokio runtime (use `Reactor::run_local` there).
    pub fn is_already_running(&self) -> bool {
        matches!(self.kind, Kind::AlreadyRunning | Kind::InsideRuntime)
    }
    /// The reactor is stopping, so the call was refused.
    pub fn is_stopping(&self) -> bool {
        matches!(self.kind, Kind::Stopping(_))
    }
    /// The reactor behind a [`Handle`](crate::Handle) has stopped.
    pub fn is_not_running(&self) -> bool {
        matches!(self.kind, Kind::NotRunning)
    }
    /// Binding a listening socket failed (the message names the address).
    pub fn is_bind(&self) -> bool {
        matches!(self.kind, Kind::Bind(..))
    }
    /// A procedural connect ([`Socket::connect`](crate::Socket::connect))
    /// failed: refused, unreachable, the name did not resolve, or its
    /// pending-connect timeout passed (an `io::Error` of kind `TimedOut`
    /// then). The message names the address; [`io_error`](Self::io_error)
    /// and `source()` give the `io::Error`.
    pub fn is_connect(&self) -> bool {
        matches!(self.kind, Kind::Connect(..))
    }
    /// The connection is closed, or closing after
    /// `close_connection_after_writing`; or, for a call that needs its
    /// socket (a socket option), it has none: not connected yet, ended, or
    /// detached (the message says which).
    pub fn is_closed(&self) -> bool {
        matches!(self.kind, Kind::Closed | Kind::Closing | Kind::NotOpen(..))
    }
    /// The codec refused to encode a frame; the connection stays open.
    pub fn is_encode(&self) -> bool {
        matches!(self.kind, Kind::Encode(_))
    }
    /// A builder option was out of range.
    pub fn is_config(&self) -> bool {
        matches!(self.kind, Kind::Config(_))
    }
    /// User code whose failure is the caller's panicked: the run block (from
    /// `run`), the future given to [`synchrony`](crate::synchrony), a
    /// handler's `codec()` (from `connect`), or any callback when the reactor
    /// was built with `stop_on_panic(true)` (from `run`).
    pub fn is_panic(&self) -> bool {
        matches!(self.kind, Kind::Panicked(..))
    }
    /// The run block returned an error.
    pub fn is_init(&self) -> bool {
        matches!(self.kind, Kind::Init(_))
    }
    /// Adding a timer would pass the reactor's `max_timers` cap
    /// (EventMachine's "ran out of timers").
    pub fn is_too_many_timers(&self) -> bool {
        matches!(self.kind, Kind::TooManyTimers(_))
    }
    /// An argument was out of range, such as an `EmIterator` concurrency of 0
    /// (EventMachine's `ArgumentError`).
    pub fn is_invalid_argument(&self) -> bool {
        matches!(self.kind, Kind::InvalidArgument(..))
    }
    /// `send_data` would have passed the connection's `max_outbound` cap:
    /// the frame was refused and the connection is closing with
    /// `UnbindReason::OutboundOverflow`.
    pub fn is_outbound_overflow(&self) -> bool {
        matches!(self.kind, Kind::OutboundOverflow(..))
    }
    /// The call does not apply to this kind of connection: a TCP option on
    /// a Unix-domain socket, `detach` on an in-memory pair, `send_data` on a
    /// pipe's read end. The message names the call and the kind.
    pub fn is_unsupported(&self) -> bool {
        matches!(self.kind, Kind::Unsupported(..))
    }
    /// A system call failed (a socket option, opening a file); the message
    /// names the call, and `source()` is the `io::Error`.
    pub fn is_io(&self) -> bool {
        matches!(self.kind, Kind::Io(..))
    }
    /// The reactor was stopped (by [`stop`](crate::stop) or a
    /// [`Handle`](crate::Handle)) before the future given to
    /// [`synchrony`](crate::synchrony) finished, so there is no value to
    /// return.
    pub fn is_stopped_early(&self) -> bool {
        matches!(self.kind, Kind::StoppedEarly)
    }
    /// An error of the program's, wrapped by [`Error::other`] or by `?`
    /// (from an `io::Error`, a `BoxError`, a message, another em crate's
    /// error); `source()` is it.
    pub fn is_other(&self) -> bool {
        matches!(self.kind, Kind::Other(_))
    }
    /// The `io::Error` behind an [`is_io`](Self::is_io),
    /// [`is_bind`](Self::is_bind) or [`is_connect`](Self::is_connect)
    /// error, or an `io::Error` made an em error by `?`.
    pub fn io_error(&self) -> Option<&io::Error> {
        match &self.kind {
            Kind::Io(_, e) | Kind::Bind(_, e) | Kind::Connect(_, e) | Kind::Runtime(e) => Some(e),
            Kind::Other(e) => e.downcast_ref::<io::Error>(),
            _ => None,
        }
    }
    /// `send_data` on a datagram socket before any datagram arrived: a
    /// reply goes to the sender of the last datagram received, and there
    /// is none yet. [`Conn::send_datagram`](crate::Conn::send_datagram)
    /// sends to an address of your choice.
    pub fn is_no_peer(&self) -> bool {
        matches!(self.kind, Kind::NoPeer(_))
    }

    /// [`TlsOptions`](crate::TlsOptions) that cannot work, found by
    /// [`Conn::start_tls`](crate::Conn::start_tls): a server without a
    /// certificate, a file that cannot be read or holds no certificate or
    /// key, an unknown cipher suite, versions that exclude each other. The
    /// message says which.
    pub fn is_tls_config(&self) -> bool {
        matches!(self.kind, Kind::TlsConfig(_))
    }
    /// `start` was called on something already running, such as a
    /// [`TickLoop`](crate::TickLoop) (EventMachine's "double start").
    pub fn is_already_started(&self) -> bool {
        matches!(self.kind, Kind::AlreadyStarted(_))
    }
    /// A proxy's target already receives another connection's proxy
    /// (EventMachine's "Tried to proxy to a busy target"): a connection
    /// takes one proxy at a time. The message names both connections.
    pub fn is_busy_target(&self) -> bool {
        matches!(self.kind, Kind::BusyTarget(..))
    }
    /// A push through a [`ChannelSender`](crate::ChannelSender) or a
    /// [`QueueSender`](crate::QueueSender) whose channel or queue was
    /// dropped on its reactor: the item was not sent (it is dropped with
    /// the error, on the calling thread).
    pub fn is_receiver_gone(&self) -> bool {
        matches!(self.kind, Kind::ReceiverGone(..))
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.kind {
            Kind::NoReactor(call) => write!(f, "{call}: no em reactor is running on this thread"),
            Kind::AlreadyRunning => f.write_str("an em reactor is already running on this thread"),
            Kind::InsideRuntime => f.write_str(
                "em::run called inside a tokio runtime; use Reactor::run_local(..).await there",
            ),
            Kind::NoRuntime => f.write_str(
                "Reactor::run_local must be awaited inside a tokio runtime with I/O and time enabled",
            ),
            Kind::Stopping(call) => write!(f, "{call}: the em reactor is stopping"),
            Kind::NotRunning => f.write_str("the em reactor behind this handle is not running"),
            Kind::Runtime(e) => write!(f, "cannot build the tokio runtime: {e}"),
            Kind::Bind(addr, e) => write!(f, "cannot listen on {addr}: {e}"),
            Kind::Connect(addr, e) => write!(f, "cannot connect to {addr}: {e}"),
            Kind::Closed => f.write_str("the connection is closed"),
            Kind::Closing => f.write_str(
                "the connection is closing after writing; send_data after close_connection_after_writing is refused",
            ),
            Kind::NotOpen(call, why) => write!(f, "{call}: {why}"),
            Kind::Encode(e) => write!(f, "the codec cannot encode the frame: {e}"),
            Kind::Config(what) => write!(f, "invalid reactor configuration: {what}"),
            Kind::Panicked(cb, msg) => write!(f, "panic in {cb}: {msg}"),
            Kind::Init(e) => write!(f, "the run block failed: {e}"),
            Kind::InvalidArgument(call, what) => write!(f, "{call}: {what}"),
            Kind::AlreadyStarted(call) => write!(f, "{call}: already started (double start)"),
            Kind::Unsupported(call, what) => write!(f, "{call}: {what}"),
            Kind::Io(call, e) => write!(f, "{call}: {e}"),
            Kind::OutboundOverflow(max, queued) => write!(
                f,
                "outbound overflow: {queued} bytes were queued and the frame would pass the connection's max_outbound of {max} bytes (or the reactor's max_total_outbound); the connection is closed"
            ),
            Kind::TlsConfig(what) => write!(f, "start_tls: {what}"),
            Kind::Other(e) => fmt::Display::fmt(e, f),
            Kind::ReceiverGone(call, what) => write!(
                f,
                "{call}: the {what} was dropped on its reactor, so nothing receives the item"
            ),
            Kind::NoPeer(call) => write!(
                f,
                "{call}: no datagram has arrived yet, so there is no sender to reply to (send_datagram sends to an address)"
            ),
            Kind::StoppedEarly => f.write_str(
                "the reactor was stopped before the synchrony future finished, so it has no value",
            ),
            Kind::BusyTarget(call, target, source) => write!(
                f,
                "{call}: connection {target} is already the target of a proxy from connection {source} (a busy target)"
            ),
            Kind::TooManyTimers(max) => write!(
                f,
                "ran out of timers: {max} are pending; raise Reactor::builder().max_timers(..)"
            ),
        }
    }
}

/// `{:?}` prints what `Display` prints (so that `fn main() -> Result<…>`
/// shows a readable message, as anyhow's and hyper's errors do); `{:#?}`
/// the structure.
impl fmt::Debug for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if f.alternate() {
            f.debug_tuple("em::Error").field(&self.kind).finish()
        } else {
            fmt::Display::fmt(self, f)
        }
    }
}

impl std::error::Error for Error {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match &self.kind {
            Kind::Runtime(e) | Kind::Bind(_, e) | Kind::Connect(_, e) | Kind::Io(_, e) => {
                Some(&**e)
            }
            Kind::Encode(e) | Kind::Init(e) | Kind::Other(e) => Some(&**e),
            _ => None,
        }
    }
}

/// `?` on an `io::Error` in code returning `em::Result`: [`Error::other`].
impl From<io::Error> for Error {
    fn from(e: io::Error) -> Self {
        Error::other(e)
    }
}

/// `?` on a `BoxError` in code returning `em::Result`: the em error inside
/// if it is one (so that its `is_*` predicates still answer), otherwise
/// [`Error::other`].
impl From<BoxError> for Error {
    fn from(e: BoxError) -> Self {
        match e.downcast::<Error>() {
            Ok(em) => *em,
            Err(other) => Error::other(other),
        }
    }
}

/// `Err("message".into())` or `?` on a message: [`Error::other`].
impl From<String> for Error {
    fn from(message: String) -> Self {
        Error::other(message)
    }
}

/// `Err("message".into())`: [`Error::other`].
impl From<&str> for Error {
    fn from(message: &str) -> Self {
        Error::other(message)
    }
}
