//! A WebSocket's settings: size limits, subprotocols, keep-alive pings and
//! the closing handshake's timeout.

use std::time::Duration;

use super::codec::DEFAULT_MAX_FRAME_SIZE;
use super::message::DEFAULT_MAX_MESSAGE_SIZE;

/// How long [`WebSocket::close`](super::WebSocket::close) waits for the
/// peer's close frame by default: 5 seconds.
pub const DEFAULT_CLOSE_TIMEOUT: Duration = Duration::from_secs(5);

/// Settings for the WebSockets [`accept_with`](super::accept_with) makes,
/// built by chaining setters on [`WebSocketOptions::new`]. Plain data: made
/// anywhere, used on the reactor thread.
///
/// | setting | default | exceeded |
/// |---|---|---|
/// | [`max_frame_size`](Self::max_frame_size) | 16 MiB ([`DEFAULT_MAX_FRAME_SIZE`]) | close 1009 |
/// | [`max_message_size`](Self::max_message_size) | 64 MiB ([`DEFAULT_MAX_MESSAGE_SIZE`]) | close 1009 |
/// | [`protocols`](Self::protocols) | none | – |
/// | [`ping_interval`](Self::ping_interval) | off | connection dropped |
/// | [`close_timeout`](Self::close_timeout) | 5 s ([`DEFAULT_CLOSE_TIMEOUT`]) | connection dropped |
///
/// ```
/// use std::time::Duration;
/// use em_http::websocket::WebSocketOptions;
///
/// let options = WebSocketOptions::new()
///     .max_message_size(1 << 20)
///     .protocols(["chat"])
///     .ping_interval(Some(Duration::from_secs(30)));
/// # drop(options);
/// ```
#[derive(Debug, Clone)]
pub struct WebSocketOptions {
    pub(crate) max_frame_size: usize,
    pub(crate) max_message_size: usize,
    pub(crate) protocols: Vec<String>,
    pub(crate) ping_interval: Option<Duration>,
    pub(crate) close_timeout: Duration,
}

impl Default for WebSocketOptions {
    fn default() -> Self {
        WebSocketOptions::new()
    }
}

impl WebSocketOptions {
    /// The defaults (see the table above).
    pub fn new() -> Self {
        WebSocketOptions {
            max_frame_size: DEFAULT_MAX_FRAME_SIZE,
            max_message_size: DEFAULT_MAX_MESSAGE_SIZE,
            protocols: Vec::new(),
            ping_interval: None,
            close_timeout: DEFAULT_CLOSE_TIMEOUT,
        }
    }

    /// The largest payload accepted in one frame. A frame declaring more
    /// fails the connection with close code 1009 before any of it is
    /// buffered.
    pub fn max_frame_size(mut self, max: usize) -> Self {
        self.max_frame_size = max;
        self
    }

    /// The largest message accepted, all its fragments together. More
    /// fails the connection with close code 1009.
    pub fn max_message_size(mut self, max: usize) -> Self {
        self.max_message_size = max;
        self
    }

    /// The subprotocols the server speaks, in no particular order: the
    /// handshake picks the first one the client offers in
    /// `Sec-WebSocket-Protocol` that is in this list (see
    /// [`WebSocket::protocol`](super::WebSocket::protocol)); none if
    /// nothing matches, and the client then decides whether to go on.
    pub fn protocols<S: Into<String>>(mut self, protocols: impl IntoIterator<Item = S>) -> Self {
        self.protocols = protocols.into_iter().map(Into::into).collect();
        self
    }

    /// Keep-alive: with `Some(interval)` the server pings the peer every
    /// `interval`, and a peer that has sent nothing at all (not even the
    /// pong) between two pings is deemed gone: the connection is dropped
    /// and [`on_close`](super::WebSocketHandler::on_close) reports no code.
    /// `None` (the default) sends no pings.
    pub fn ping_interval(mut self, interval: Option<Duration>) -> Self {
        self.ping_interval = interval;
        self
    }

    /// How long [`WebSocket::close`](super::WebSocket::close) waits for the
    /// peer's close frame before dropping the connection.
    pub fn close_timeout(mut self, timeout: Duration) -> Self {
        self.close_timeout = timeout;
        self
    }
}
