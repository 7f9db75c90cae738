//! The handle a WebSocket's callbacks send with: messages, pings, the
//! closing handshake, backpressure.

use std::cell::{Cell, RefCell};
use std::fmt;
use std::rc::{Rc, Weak};
use std::time::Duration;

use bytes::BytesMut;
use em_core::{Addr, ConnectionId};

use super::codec::MAX_CONTROL_PAYLOAD;
use super::message::{encode_close, encode_message, encode_ping, is_valid_close_code, Message};
use crate::upgrade::UpgradedIo;

/// Why a [`WebSocket`] refused to send.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum SendError {
    /// The WebSocket is closing or closed: [`WebSocket::close`] was called,
    /// the peer closed, or the connection is gone.
    Closed,
    /// A ping's payload, or a close reason, longer than a control frame
    /// allows (125 bytes for a ping, 123 for a reason); with its length.
    TooLong(usize),
    /// A close code that may not be sent (see
    /// [`is_valid_close_code`](super::is_valid_close_code)).
    InvalidCloseCode(u16),
}

impl fmt::Display for SendError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SendError::Closed => f.write_str("the WebSocket is closing or closed"),
            SendError::TooLong(len) => {
                write!(f, "control frame payload of {len} bytes is too long")
            }
            SendError::InvalidCloseCode(code) => write!(f, "close code {code} may not be sent"),
        }
    }
}

impl std::error::Error for SendError {}

/// Where a WebSocket is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum State {
    Open,
    /// The server sent its close frame and waits for the peer's.
    Closing,
    /// Closed: `on_close` was (or is being) delivered.
    Closed,
}

/// What the handle and the protocol engine share.
pub(crate) struct Shared {
    pub(crate) io: UpgradedIo,
    pub(crate) state: Cell<State>,
    pub(crate) protocol: Option<String>,
    close_timeout: Duration,
    /// The close timeout's timer, once `close` started the handshake.
    pub(crate) close_timer: RefCell<Option<em_timers::Timer>>,
    /// The keep-alive pinger.
    pub(crate) pinger: RefCell<Option<em_timers::PeriodicTimer>>,
    /// Something arrived since the last keep-alive ping.
    pub(crate) heard: Cell<bool>,
    /// A keep-alive ping was sent.
    pub(crate) pinged: Cell<bool>,
}

impl Shared {
    /// Cancels the timers (the connection is done).
    pub(crate) fn cancel_timers(&self) {
        if let Some(timer) = self.close_timer.borrow_mut().take() {
            timer.cancel();
        }
        if let Some(pinger) = self.pinger.borrow_mut().take() {
            pinger.cancel();
        }
    }
}

/// One WebSocket connection, as its callbacks see it: send messages and
/// pings, close, watch backpressure. Cheap to clone (all clones are the
/// same socket) and `!Send`: it lives on the reactor thread, where every
/// method must be called.
///
/// Sends never block: they queue frames on the connection. A slow peer
/// shows as [`is_above_high_watermark`](Self::is_above_high_watermark);
/// [`WebSocketHandler::on_drained`](super::WebSocketHandler::on_drained)
/// says when it caught up.
#[derive(Clone)]
pub struct WebSocket {
    pub(crate) shared: Rc<Shared>,
}

impl WebSocket {
    pub(crate) fn new(io: UpgradedIo, protocol: Option<String>, close_timeout: Duration) -> Self {
        WebSocket {
            shared: Rc::new(Shared {
                io,
                state: Cell::new(State::Open),
                protocol,
                close_timeout,
                close_timer: RefCell::new(None),
                pinger: RefCell::new(None),
                heard: Cell::new(false),
                pinged: Cell::new(false),
            }),
        }
    }

    pub(crate) fn downgrade(&self) -> Weak<Shared> {
        Rc::downgrade(&self.shared)
    }

    /// Sends a text or binary message (anything that converts into a
    /// [`Message`]: `&str`, `String`, `Vec<u8>`, `Bytes`) as one frame.
    /// Errors with [`SendError::Closed`] once the socket is closing or
    /// closed.
    pub fn send(&self, message: impl Into<Message>) -> Result<(), SendError> {
        self.check_open()?;
        let message = message.into();
        let mut frame = BytesMut::new();
        encode_message(&message, &mut frame);
        self.shared.io.send_bytes(frame.freeze());
        Ok(())
    }

    /// Sends a text message; see [`send`](Self::send).
    pub fn send_text(&self, text: impl Into<String>) -> Result<(), SendError> {
        self.send(Message::Text(text.into()))
    }

    /// Sends a binary message; see [`send`](Self::send).
    pub fn send_binary(&self, data: impl Into<bytes::Bytes>) -> Result<(), SendError> {
        self.send(Message::Binary(data.into()))
    }

    /// Sends a ping with `payload` (at most 125 bytes, else
    /// [`SendError::TooLong`]); the peer's pong arrives at
    /// [`on_pong`](super::WebSocketHandler::on_pong).
    pub fn ping(&self, payload: &[u8]) -> Result<(), SendError> {
        if payload.len() > MAX_CONTROL_PAYLOAD {
            return Err(SendError::TooLong(payload.len()));
        }
        self.check_open()?;
        let mut frame = BytesMut::new();
        encode_ping(payload, &mut frame).expect("length checked above");
        self.shared.io.send_bytes(frame.freeze());
        Ok(())
    }

    /// Starts the closing handshake: sends a close frame with `code` and
    /// `reason`, then waits for the peer's close frame and closes the TCP
    /// connection when it comes, or drops it after the
    /// [`close_timeout`](super::WebSocketOptions::close_timeout).
    /// [`on_close`](super::WebSocketHandler::on_close) follows either way.
    /// Nothing more can be sent from now on, and incoming messages are
    /// no longer delivered.
    ///
    /// `code` must be one that may be sent (1000 normal closure, 1001 going
    /// away, 3000–4999 for applications…, see
    /// [`is_valid_close_code`](super::is_valid_close_code)), else
    /// [`SendError::InvalidCloseCode`]; `reason` at most 123 bytes, else
    /// [`SendError::TooLong`]. [`SendError::Closed`] if already closing.
    pub fn close(&self, code: u16, reason: &str) -> Result<(), SendError> {
        if !is_valid_close_code(code) {
            return Err(SendError::InvalidCloseCode(code));
        }
        if reason.len() > MAX_CONTROL_PAYLOAD - 2 {
            return Err(SendError::TooLong(reason.len()));
        }
        self.check_open()?;
        let mut frame = BytesMut::new();
        encode_close(code, reason, &mut frame);
        self.shared.io.send_bytes(frame.freeze());
        self.shared.state.set(State::Closing);
        let io = self.shared.io.clone();
        let timer = em_timers::add_timer(self.shared.close_timeout, move || {
            tracing::debug!(conn = %io.id(), "websocket: no close frame from the peer in time");
            io.close();
        });
        match timer {
            Ok(timer) => *self.shared.close_timer.borrow_mut() = Some(timer),
            // No timers (the reactor is stopping): do not wait.
            Err(_) => self.shared.io.close_after_writing(),
        }
        Ok(())
    }

    /// Whether messages can be sent: open, not closing, not closed.
    pub fn is_open(&self) -> bool {
        self.shared.state.get() == State::Open && !self.shared.io.is_closed()
    }

    /// The subprotocol the handshake chose (see
    /// [`WebSocketOptions::protocols`](super::WebSocketOptions::protocols)),
    /// if any.
    pub fn protocol(&self) -> Option<&str> {
        self.shared.protocol.as_deref()
    }

    /// The peer's address.
    pub fn peer_addr(&self) -> Option<Addr> {
        self.shared.io.peer_addr()
    }

    /// The connection's id (as em's logs show it); unique among the open
    /// connections, so it tells sockets apart.
    pub fn id(&self) -> ConnectionId {
        self.shared.io.id()
    }

    /// Whether the queued output is above the connection's high watermark
    /// (a slow peer): a producer should wait for
    /// [`on_drained`](super::WebSocketHandler::on_drained).
    pub fn is_above_high_watermark(&self) -> bool {
        self.shared.io.is_above_high_watermark()
    }

    /// Bytes queued and not yet written.
    pub fn outbound_data_size(&self) -> usize {
        self.shared.io.outbound_data_size()
    }

    fn check_open(&self) -> Result<(), SendError> {
        if self.is_open() {
            Ok(())
        } else {
            Err(SendError::Closed)
        }
    }
}

impl fmt::Debug for WebSocket {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("WebSocket")
            .field("id", &self.id())
            .field("state", &self.shared.state.get())
            .finish()
    }
}
