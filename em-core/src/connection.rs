//! The `Connection` trait (EventMachine's `EM::Connection`), the `Conn`
//! handle that callbacks get, and why a connection ended (`UnbindReason`).

use std::cell::{Cell, RefCell};
use std::fmt;
use std::io;
use std::net::SocketAddr;
use std::rc::Rc;
use std::task::Waker;

use bytes::BytesMut;
use tokio_util::codec::{Decoder, Encoder};

use crate::error::{BoxError, Error, Result};

/// A connection handler: one instance per connection, called back on the
/// reactor thread (EventMachine's `EM::Connection`).
///
/// # The contract
///
/// * **Order.** `post_init` runs first, right after the handler exists and
///   before any data; for a client it runs inside [`connect`](crate::connect),
///   before the connect completes, and data it sends is queued and delivered
///   once connected. Clients then get `connection_completed`, exactly once
///   and before the first `receive_data`; accepted connections never do.
///   Then `receive_data` once per decoded frame, in order. Last, `unbind`.
/// * **Exactly one `unbind`**, on every path: local close, peer close, I/O
///   error, codec error, failed connect, a panic in a callback, reactor stop.
///   It is never called re-entrantly: `close_connection` inside a callback
///   only requests the close, and `unbind` follows after that callback returns.
/// * **After a close request** no further `receive_data` is delivered, even
///   for frames already read (EventMachine may still deliver them, C18).
/// * **Re-entrancy.** Any callback may call any [`Conn`] method on any
///   connection, start servers, connect, queue ticks or stop the reactor.
/// * **Panics** in a callback are caught: the connection is closed with
///   [`UnbindReason::Panicked`] (and `unbind` is not called again if it was
///   `unbind` that panicked); everything else carries on.
///
/// The [`Codec`](Connection::Codec) frames the byte stream: tokio-util's
/// `BytesCodec` for raw bytes, `LinesCodec::new_with_max_length(..)`,
/// `LengthDelimitedCodec`, or any `Decoder` of your own. Frames are sent with
/// [`Conn::send_data`], which takes anything the codec can encode.
///
/// ```
/// use em_core::{Conn, Connection, UnbindReason};
/// use tokio_util::codec::LinesCodec;
///
/// /// Answers every line with its length.
/// struct Counter;
///
/// impl Connection for Counter {
///     type Codec = LinesCodec;
///     fn codec(&self) -> LinesCodec {
///         LinesCodec::new_with_max_length(8 * 1024)
///     }
///     fn receive_data(&mut self, conn: &Conn<LinesCodec>, line: String) {
///         conn.send_data(line.len().to_string());
///     }
///     fn unbind(&mut self, conn: &Conn<LinesCodec>, reason: UnbindReason) {
///         tracing::info!(conn = %conn.id(), %reason, "gone");
///     }
/// }
///
/// em_core::run(|| -> em_core::Result<()> {
///     let server = em_core::start_server("[::1]:0", || Counter)
///         .or_else(|_| em_core::start_server("127.0.0.1:0", || Counter))?;
///     server.stop();
///     em_core::stop();
///     Ok(())
/// })?;
/// # Ok::<(), em_core::Error>(())
/// ```
pub trait Connection: 'static {
    /// The framing of this connection's byte stream.
    type Codec: Decoder<Error: Into<BoxError>> + 'static;

    /// Builds this connection's codec (once, when the handler is bound), so
    /// that limits such as a maximum line length can be set per handler.
    fn codec(&self) -> Self::Codec;

    /// Right after the handler is bound to its connection, before any data.
    fn post_init(&mut self, conn: &Conn<Self::Codec>) {
        let _ = conn;
    }

    /// Clients only: the connect succeeded. Exactly once, before the first
    /// `receive_data`.
    fn connection_completed(&mut self, conn: &Conn<Self::Codec>) {
        let _ = conn;
    }

    /// One decoded frame arrived.
    fn receive_data(&mut self, conn: &Conn<Self::Codec>, frame: <Self::Codec as Decoder>::Item);

    /// The connection is gone, and why. Exactly once per connection.
    fn unbind(&mut self, conn: &Conn<Self::Codec>, reason: UnbindReason) {
        let _ = (conn, reason);
    }
}

/// The frame type a handler receives.
pub type Frame<H> = <<H as Connection>::Codec as Decoder>::Item;

/// Why a connection ended, as given to [`Connection::unbind`].
#[derive(Debug)]
#[non_exhaustive]
pub enum UnbindReason {
    /// Closed locally with `close_connection` or `close_connection_after_writing`.
    Closed,
    /// The peer closed its side (read returned end of stream).
    PeerClosed,
    /// A client's connect (or the name resolution before it) failed.
    ConnectFailed(io::Error),
    /// A socket error, such as a reset by the peer.
    Io(io::Error),
    /// The codec rejected the input; the error is the codec's own.
    Codec(BoxError),
    /// A callback of this connection panicked; the panic message.
    Panicked(String),
    /// The reactor stopped.
    ReactorStopped,
}

impl UnbindReason {
    /// Whether the connection ended because something went wrong (everything
    /// but a local close, a peer close and a reactor stop).
    pub fn is_error(&self) -> bool {
        !matches!(
            self,
            UnbindReason::Closed | UnbindReason::PeerClosed | UnbindReason::ReactorStopped
        )
    }
}

impl fmt::Display for UnbindReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            UnbindReason::Closed => f.write_str("closed locally"),
            UnbindReason::PeerClosed => f.write_str("closed by the peer"),
            UnbindReason::ConnectFailed(e) => write!(f, "connect failed: {e}"),
            UnbindReason::Io(e) => write!(f, "I/O error: {e}"),
            UnbindReason::Codec(e) => write!(f, "codec error: {e}"),
            UnbindReason::Panicked(m) => write!(f, "a callback panicked: {m}"),
            UnbindReason::ReactorStopped => f.write_str("the reactor stopped"),
        }
    }
}

/// A connection's number, unique within its reactor run. Shown as `#N`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ConnectionId(pub(crate) u64);

impl ConnectionId {
    /// The number.
    pub fn get(self) -> u64 {
        self.0
    }
}

impl fmt::Display for ConnectionId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "#{}", self.0)
    }
}

/// What the user asked for with `close_connection*`, or what the reactor did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Close {
    Open,
    AfterWriting,
    Now,
}

/// The part of a connection's state that does not depend on its codec.
pub(crate) struct ConnState {
    pub(crate) id: ConnectionId,
    pub(crate) peer: Cell<Option<SocketAddr>>,
    pub(crate) local: Cell<Option<SocketAddr>>,
    pub(crate) outbound: RefCell<BytesMut>,
    pub(crate) close: Cell<Close>,
    /// The connection has ended (its driver finished).
    pub(crate) ended: Cell<bool>,
    /// The driver is being polled right now, so it will flush and look at
    /// `close` before it parks: no need to wake it.
    pub(crate) polling: Cell<bool>,
    waker: RefCell<Option<Waker>>,
}

impl ConnState {
    fn new(id: ConnectionId) -> Self {
        ConnState {
            id,
            peer: Cell::new(None),
            local: Cell::new(None),
            outbound: RefCell::new(BytesMut::new()),
            close: Cell::new(Close::Open),
            ended: Cell::new(false),
            polling: Cell::new(false),
            waker: RefCell::new(None),
        }
    }

    /// Stores the driver's waker (called by the driver on every poll).
    pub(crate) fn set_waker(&self, waker: &Waker) {
        let mut slot = self.waker.borrow_mut();
        match &*slot {
            Some(w) if w.will_wake(waker) => {}
            _ => *slot = Some(waker.clone()),
        }
    }

    /// Wakes the driver unless it is being polled right now.
    pub(crate) fn wake(&self) {
        if !self.polling.get() {
            if let Some(w) = &*self.waker.borrow() {
                w.wake_by_ref();
            }
        }
    }

    pub(crate) fn drop_waker(&self) {
        self.waker.borrow_mut().take();
    }
}

/// What the reactor needs of any connection, whatever its codec.
pub(crate) trait ConnControl {
    /// Wakes the driver so that it notices a stop.
    fn wake(&self);
}

pub(crate) struct ConnInner<C> {
    pub(crate) state: ConnState,
    pub(crate) codec: RefCell<C>,
}

impl<C> ConnControl for ConnInner<C> {
    fn wake(&self) {
        self.state.wake();
    }
}

/// A handle to one connection: cheap to clone, `!Send`, and storable (a chat
/// room keeps its members' handles). `C` is the connection's codec.
///
/// Every method runs on the reactor thread and never blocks. Calls on a
/// closed connection are harmless no-ops that say so (a `0` or an error, and
/// a debug event).
///
/// The compiler keeps it on the reactor thread:
///
/// ```compile_fail
/// fn on_another_thread(conn: em_core::Conn<tokio_util::codec::BytesCodec>) {
///     std::thread::spawn(move || conn.close_connection()); // error: `Conn` is not `Send`
/// }
/// ```
pub struct Conn<C> {
    inner: Rc<ConnInner<C>>,
}

impl<C> Clone for Conn<C> {
    fn clone(&self) -> Self {
        Conn {
            inner: self.inner.clone(),
        }
    }
}

impl<C: 'static> Conn<C> {
    pub(crate) fn new(id: ConnectionId, codec: C) -> Self {
        Conn {
            inner: Rc::new(ConnInner {
                state: ConnState::new(id),
                codec: RefCell::new(codec),
            }),
        }
    }

    pub(crate) fn control(&self) -> Rc<dyn ConnControl> {
        self.inner.clone()
    }
}

impl<C> Conn<C> {
    pub(crate) fn state(&self) -> &ConnState {
        &self.inner.state
    }

    pub(crate) fn codec(&self) -> &RefCell<C> {
        &self.inner.codec
    }

    /// Encodes `frame` with the connection's codec and queues it for sending;
    /// never blocks. Frames queued in one pass of the reactor leave together
    /// in as few `write(2)` calls as possible.
    ///
    /// Returns the bytes queued: `0` when the frame was refused (connection
    /// closed or closing after writing, or the codec failed to encode; a
    /// debug event says which). Use [`try_send_data`](Conn::try_send_data)
    /// to get the reason as an error.
    pub fn send_data<T>(&self, frame: T) -> usize
    where
        C: Encoder<T>,
        <C as Encoder<T>>::Error: Into<BoxError>,
    {
        match self.try_send_data(frame) {
            Ok(n) => n,
            Err(e) => {
                tracing::debug!(conn = %self.id(), error = %e, "send_data refused");
                0
            }
        }
    }

    /// [`send_data`](Conn::send_data) that says why a frame was refused:
    /// errors with `is_closed()` on a closed or closing connection, and
    /// `is_encode()` when the codec failed (nothing is queued then, and the
    /// connection stays open).
    pub fn try_send_data<T>(&self, frame: T) -> Result<usize>
    where
        C: Encoder<T>,
        <C as Encoder<T>>::Error: Into<BoxError>,
    {
        let state = self.state();
        if state.ended.get() {
            return Err(Error::closed());
        }
        match state.close.get() {
            Close::Open => {}
            Close::AfterWriting => return Err(Error::closing()),
            Close::Now => return Err(Error::closed()),
        }
        let mut out = state.outbound.borrow_mut();
        let before = out.len();
        let mut codec = self.inner.codec.try_borrow_mut().map_err(|_| {
            Error::encode("the codec is busy (send_data called from inside the codec)")
        })?;
        if let Err(e) = codec.encode(frame, &mut out) {
            out.truncate(before);
            return Err(Error::encode(e));
        }
        drop(codec);
        let queued = out.len() - before;
        drop(out);
        if before == 0 && queued > 0 {
            state.wake();
        }
        Ok(queued)
    }

    /// Closes the connection now; queued output is discarded. `unbind`
    /// follows with [`UnbindReason::Closed`], after the current callback
    /// returns (never inside this call). Overrides an earlier
    /// `close_connection_after_writing`. A no-op on a closed connection.
    pub fn close_connection(&self) {
        let state = self.state();
        if state.ended.get() || state.close.get() == Close::Now {
            tracing::debug!(conn = %self.id(), "close_connection on a closed connection; ignored");
            return;
        }
        state.close.set(Close::Now);
        state.outbound.borrow_mut().clear();
        state.wake();
    }

    /// Closes the connection once everything queued has been written; later
    /// `send_data` calls are refused. `unbind` follows with
    /// [`UnbindReason::Closed`]. A no-op on a closed or closing connection.
    pub fn close_connection_after_writing(&self) {
        let state = self.state();
        if state.ended.get() || state.close.get() != Close::Open {
            tracing::debug!(conn = %self.id(), "close_connection_after_writing on a closing connection; ignored");
            return;
        }
        state.close.set(Close::AfterWriting);
        state.wake();
    }

    /// The peer's address; `None` for a client whose connect has not
    /// completed.
    pub fn peer_addr(&self) -> Option<SocketAddr> {
        self.state().peer.get()
    }

    /// The local address of the socket; `None` for a client whose connect has
    /// not completed.
    pub fn local_addr(&self) -> Option<SocketAddr> {
        self.state().local.get()
    }

    /// This connection's id (unique within the reactor run).
    pub fn id(&self) -> ConnectionId {
        self.state().id
    }

    /// Bytes queued by `send_data` and not yet accepted by the kernel
    /// (EventMachine's `get_outbound_data_size`).
    pub fn outbound_data_size(&self) -> usize {
        self.state().outbound.borrow().len()
    }

    /// Whether the connection has ended or a close was requested, so that
    /// `send_data` no longer queues anything.
    pub fn is_closed(&self) -> bool {
        let state = self.state();
        state.ended.get() || state.close.get() != Close::Open
    }
}

impl<C> fmt::Debug for Conn<C> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Conn")
            .field("id", &self.id())
            .field("peer", &self.peer_addr())
            .field("closed", &self.is_closed())
            .finish()
    }
}
