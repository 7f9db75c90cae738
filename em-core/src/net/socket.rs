//! Procedural connections: [`Socket`], a connection read as a `Stream` of
//! frames and written as a `Sink` (em-synchrony's `TCPSocket`), and
//! [`SocketListener`], which accepts them.
//!
//! Both are thin faces over the one connection engine, the way tokio-util's
//! `Framed` is a face over `FramedImpl`: a private handler,
//! `SocketHandler`, is an ordinary [`Connection`] whose `receive_data`
//! pushes frames into a buffer shared with the `Socket` and wakes its
//! reader, and whose `unbind` records the reason. Everything else (codecs,
//! timeouts, watermarks, close reasons, exactly one `unbind`, the reactor's
//! stop) is the engine's, unchanged.

use std::cell::{Cell, OnceCell, RefCell};
use std::collections::VecDeque;
use std::fmt;
use std::future::poll_fn;
use std::io;
use std::net::ToSocketAddrs;
use std::path::Path;
use std::pin::Pin;
use std::rc::Rc;
use std::task::{Context, Poll, Waker};

use futures_core::stream::FusedStream;
use futures_core::Stream;
use futures_sink::Sink;
use tokio_util::codec::{Decoder, Encoder};

use crate::error::{BoxError, Error, Result};
use crate::net::address::Addr;
use crate::net::client::{self, Endpoint};
use crate::net::conn::Conn;
use crate::net::connection::{Connection, UnbindReason};
use crate::net::pair;
use crate::net::server::{self, Server};

/// How many received frames a [`Socket`] holds for its reader unless set
/// otherwise ([`Socket::set_read_ahead`]).
const DEFAULT_READ_AHEAD: usize = 16;

/// One task to wake, forgotten once woken (it registers again when it
/// next waits).
#[derive(Default)]
struct WakerSlot(RefCell<Option<Waker>>);

impl WakerSlot {
    fn register(&self, waker: &Waker) {
        let mut slot = self.0.borrow_mut();
        match &*slot {
            Some(w) if w.will_wake(waker) => {}
            _ => *slot = Some(waker.clone()),
        }
    }

    fn wake(&self) {
        let waker = self.0.borrow_mut().take();
        if let Some(w) = waker {
            w.wake();
        }
    }
}

/// What a [`Socket`] and its handler share: the frames received and not
/// read yet, the connection's end, and the task to wake.
struct Shared<T> {
    frames: RefCell<VecDeque<T>>,
    /// The most frames held before the connection is paused.
    read_ahead: Cell<usize>,
    /// The socket paused the connection because `frames` was full (as
    /// opposed to the user, through `Socket::conn`): reading resumes it.
    paused_full: Cell<bool>,
    /// The connection is open (accepted, paired, or connected).
    connected: Cell<bool>,
    /// The reader (or, while connecting, the constructor) to wake on a
    /// frame, the connect, and the end.
    waker: WakerSlot,
    /// The reason the connection ended with, if it is an error: the
    /// Stream's last item, handed over (moved) when read.
    last_error: RefCell<Option<UnbindReason>>,
    /// A copy of the reason the connection ended with, kept for
    /// `Socket::unbind_reason`; set once, by `unbind`.
    reason: OnceCell<UnbindReason>,
    /// The Stream returned `None`.
    done: Cell<bool>,
}

impl<T> Shared<T> {
    fn new(connected: bool) -> Rc<Self> {
        Rc::new(Shared {
            frames: RefCell::new(VecDeque::new()),
            read_ahead: Cell::new(DEFAULT_READ_AHEAD),
            paused_full: Cell::new(false),
            connected: Cell::new(connected),
            waker: WakerSlot::default(),
            last_error: RefCell::new(None),
            reason: OnceCell::new(),
            done: Cell::new(false),
        })
    }
}

/// The connection handler behind every [`Socket`]: callbacks in, a buffer
/// of frames and an end reason out.
struct SocketHandler<C: Decoder> {
    /// Handed to the engine by `codec()`, which it calls once.
    codec: Cell<Option<C>>,
    shared: Rc<Shared<C::Item>>,
    /// For an accepted connection: where `post_init` leaves its `Socket`.
    backlog: Option<Rc<Backlog<C>>>,
}

impl<C: Decoder> SocketHandler<C> {
    fn new(codec: C, connected: bool, backlog: Option<Rc<Backlog<C>>>) -> Self {
        SocketHandler {
            codec: Cell::new(Some(codec)),
            shared: Shared::new(connected),
            backlog,
        }
    }
}

impl<C> Connection for SocketHandler<C>
where
    C: Decoder<Error: Into<BoxError>> + 'static,
{
    type Codec = C;

    fn codec(&self) -> C {
        self.codec
            .take()
            .expect("the engine builds a connection's codec once")
    }

    fn post_init(&mut self, conn: &Conn<C>) {
        if let Some(backlog) = &self.backlog {
            backlog.push(Socket {
                conn: conn.clone(),
                shared: self.shared.clone(),
            });
        }
    }

    fn connection_completed(&mut self, _: &Conn<C>) {
        self.shared.connected.set(true);
        self.shared.waker.wake();
    }

    fn receive_data(&mut self, conn: &Conn<C>, frame: C::Item) {
        let shared = &self.shared;
        let held = {
            let mut frames = shared.frames.borrow_mut();
            frames.push_back(frame);
            frames.len()
        };
        if held >= shared.read_ahead.get() && !conn.is_paused() {
            // The engine delivers nothing more until resumed: what the peer
            // sends waits in the kernel, and TCP slows the peer down.
            tracing::trace!(conn = %conn.id(), held, "socket read-ahead full; pausing");
            shared.paused_full.set(true);
            conn.pause();
        }
        shared.waker.wake();
    }

    fn unbind(&mut self, _: &Conn<C>, reason: UnbindReason) {
        let kept = copy_reason(&reason);
        if reason.is_error() {
            *self.shared.last_error.borrow_mut() = Some(reason);
        }
        // `unbind` runs once (a Socket never reconnects).
        let _ = self.shared.reason.set(kept);
        self.shared.waker.wake();
    }
}

/// A copy of `reason`: I/O errors keep their kind, OS error code and
/// message; a codec error keeps its message but not its type.
fn copy_reason(reason: &UnbindReason) -> UnbindReason {
    fn copy_io(e: &io::Error) -> io::Error {
        match e.raw_os_error() {
            Some(code) => io::Error::from_raw_os_error(code),
            None => io::Error::new(e.kind(), e.to_string()),
        }
    }
    match reason {
        UnbindReason::Closed => UnbindReason::Closed,
        UnbindReason::PeerClosed => UnbindReason::PeerClosed,
        UnbindReason::ConnectFailed(e) => UnbindReason::ConnectFailed(copy_io(e)),
        UnbindReason::Io(e) => UnbindReason::Io(copy_io(e)),
        UnbindReason::Codec(e) => UnbindReason::Codec(e.to_string().into()),
        UnbindReason::Panicked(m) => UnbindReason::Panicked(m.clone()),
        UnbindReason::ReactorStopped => UnbindReason::ReactorStopped,
        UnbindReason::InactivityTimeout => UnbindReason::InactivityTimeout,
        UnbindReason::ConnectTimeout => UnbindReason::ConnectTimeout,
        UnbindReason::OutboundOverflow => UnbindReason::OutboundOverflow,
        UnbindReason::Detached => UnbindReason::Detached,
        UnbindReason::Tls(e) => UnbindReason::Tls(e.copy()),
        UnbindReason::Exited(status) => UnbindReason::Exited(*status),
    }
}

/// A connection for procedural code under [`spawn`](crate::spawn) or
/// [`synchrony`](crate::synchrony) (em-synchrony's `EM::Synchrony::TCPSocket`):
/// a [`Stream`] of the frames its codec decodes and a [`Sink`] of the frames
/// to send, over TCP, a Unix-domain socket or an in-memory pair.
///
/// ```
/// # use em_core as em;
/// use em::Socket;
/// use futures::{SinkExt, StreamExt};
/// use tokio_util::codec::LinesCodec;
///
/// let reply = em::synchrony(async {
///     let listener = em::SocketListener::bind("127.0.0.1:0", LinesCodec::new)?;
///     let addr = listener.local_addr();
///     // The server: echoes each line, upper-cased, until the client closes.
///     em::spawn(async move {
///         let mut socket = listener.accept().await.expect("a client");
///         while let Some(Ok(line)) = socket.next().await {
///             if socket.send(line.to_uppercase()).await.is_err() {
///                 break;
///             }
///         }
///     })?;
///     let mut client = Socket::connect(addr, LinesCodec::new()).await?;
///     client.send("hello").await?;
///     let reply = client.next().await.expect("a reply")?;
///     client.close().await?; // close_connection_after_writing, then the end
///     Ok::<_, Box<dyn std::error::Error>>(reply)
/// })??;
/// assert_eq!(reply, "HELLO");
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
///
/// # The same engine as callbacks
///
/// A `Socket` is a [`Connection`] handler em writes for you: the connection
/// underneath is an ordinary one, with its [`Conn`] ([`conn`](Socket::conn)
/// for timeouts, watermarks and socket options), its codec, and exactly one
/// end. The callback style and this one mix freely in one reactor (a
/// `Socket` client of a callback server, and the reverse); pick per
/// connection. Callbacks cost one less hop (a frame is handled inside
/// `receive_data`, where a `Socket` queues it and wakes its task); a
/// `Socket` reads top to bottom.
///
/// # Reading: `Stream<Item = Result<Frame, UnbindReason>>`
///
/// Frames come in order. When the connection ends, frames already received
/// still come first; then, if the reason [`is_error`](UnbindReason::is_error)
/// (an I/O or codec error, a timeout, an overflow, a panic in the codec),
/// one last `Err(reason)`, and `None` after it; a clean end
/// ([`Closed`](UnbindReason::Closed), [`PeerClosed`](UnbindReason::PeerClosed),
/// [`ReactorStopped`](UnbindReason::ReactorStopped),
/// [`Detached`](UnbindReason::Detached)) ends with `None` directly. The
/// reason stays readable afterwards through
/// [`unbind_reason`](Socket::unbind_reason) (a copy; the original, whose
/// codec error can be downcast, is the one the Stream yields).
///
/// **Backpressure.** At most [`read_ahead`](Socket::read_ahead) frames
/// (default 16) wait in the socket for its reader. When that many wait, the
/// socket [`pause`](Conn::pause)s the connection: nothing more is read, the
/// data waits in the kernel, and TCP slows the peer down instead of memory
/// growing here. Reading resumes the connection once half of them have
/// been read. As with any paused connection, the inactivity timeout keeps
/// running.
///
/// # Writing: `Sink<T>` for every `T` the codec encodes
///
/// * `poll_ready` is `Pending` while the connection's output is above its
///   high watermark ([`Conn::set_outbound_watermarks`], default 1 MiB), and
///   ready again once it drained to the low one: a writer goes as fast as
///   the peer reads, with bounded memory.
/// * `start_send` encodes the frame into the connection's output queue
///   ([`Conn::try_send_data`]).
/// * `poll_flush` waits until the output queue is empty (every byte handed
///   to the transport); also [`Socket::flush`].
/// * `poll_close` does [`close_connection_after_writing`](Conn::close_connection_after_writing)
///   and waits for the end; also [`Socket::close`].
///
/// The Sink's error is [`Error`]: `is_closed()` once the connection is
/// closed or closing (so a write, a flush or a close after the connection
/// ended with an error reason fails; after a clean end, a flush or a close
/// succeeds), `is_encode()` when the codec refuses a frame (the connection
/// stays open), `is_outbound_overflow()` past `max_outbound`.
///
/// `Stream` and `Sink` work from different tasks after
/// [`StreamExt::split`](https://docs.rs/futures/0.3/futures/stream/trait.StreamExt.html#method.split).
///
/// # Ownership and threads
///
/// Dropping a `Socket` closes its connection after writing what is queued
/// (as `close(2)` lets the kernel send what it holds); before the connect
/// completed, it abandons the connect. [`conn().close_connection()`](Conn::close_connection)
/// closes at once. A `Socket` is `!Send`: it lives and is polled on the
/// reactor thread (inside [`spawn`](crate::spawn) or
/// [`synchrony`](crate::synchrony)), like every reactor-owned handle.
///
/// ```compile_fail
/// # use em_core as em;
/// fn on_another_thread(socket: em::Socket<tokio_util::codec::BytesCodec>) {
///     std::thread::spawn(move || drop(socket)); // error: `Socket` is not `Send`
/// }
/// ```
pub struct Socket<C: Decoder> {
    conn: Conn<C>,
    shared: Rc<Shared<C::Item>>,
}

impl<C> Socket<C>
where
    C: Decoder<Error: Into<BoxError>> + 'static,
{
    /// Connects to `addr` (any [`Endpoint`]: a `SocketAddr`, `"host:port"`,
    /// a server's [`Addr`], [`Endpoint::unix`]) with `codec`, and resolves
    /// once connected. The connect is [`connect`](crate::connect)'s: names
    /// resolve off the reactor thread, each address is tried in turn, TCP
    /// gets `TCP_NODELAY`, and the pending-connect timeout is the default
    /// 20 s (for a tighter bound, wrap the future in a timeout, em's
    /// `timeout` or tokio's: dropping the future abandons the connect).
    /// Reactor thread only.
    ///
    /// Errors: `is_connect()` when the connect fails (refused, unreachable,
    /// unresolved, or timed out; `io_error()` says which), `is_stopping()`
    /// when the reactor stops first, `is_no_reactor()` where none runs.
    pub async fn connect(addr: impl Into<Endpoint>, codec: C) -> Result<Self> {
        Self::connect_endpoint("Socket::connect", addr.into(), codec).await
    }

    /// Connects to the Unix-domain socket at `path`: [`connect`](Socket::connect)
    /// with [`Endpoint::unix`]. Errors as `connect`.
    pub async fn connect_unix(path: impl AsRef<Path>, codec: C) -> Result<Self> {
        Self::connect_endpoint("Socket::connect_unix", Endpoint::unix(path), codec).await
    }

    async fn connect_endpoint(call: &'static str, endpoint: Endpoint, codec: C) -> Result<Self> {
        let shown = endpoint.to_string();
        let handler = SocketHandler::new(codec, false, None);
        let shared = handler.shared.clone();
        let conn = client::start_client(call, endpoint, None, handler)?;
        Socket { conn, shared }.established(call, &shown).await
    }

    /// Two sockets joined in memory ([`connect_pair`](crate::connect_pair)'s
    /// transport: no socket, no port, no system call, so they work under
    /// the paused clock), resolved once both ends are connected. The first
    /// is like an accepted connection, the second like a client. The ends
    /// may use different codecs. Reactor thread only.
    ///
    /// Errors: `is_no_reactor()` / `is_stopping()`.
    ///
    /// ```
    /// # use em_core as em;
    /// use futures::{SinkExt, StreamExt};
    /// use tokio_util::codec::LinesCodec;
    ///
    /// em::synchrony(async {
    ///     let (mut a, mut b) = em::Socket::pair(LinesCodec::new(), LinesCodec::new()).await?;
    ///     a.send("ping").await?;
    ///     assert_eq!(b.next().await.unwrap()?, "ping");
    ///     drop(a); // closes after writing: b's stream ends cleanly
    ///     assert!(b.next().await.is_none());
    ///     Ok::<_, Box<dyn std::error::Error>>(())
    /// })??;
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub async fn pair<D>(codec_a: C, codec_b: D) -> Result<(Socket<C>, Socket<D>)>
    where
        D: Decoder<Error: Into<BoxError>> + 'static,
    {
        let (handler_a, handler_b) = (
            SocketHandler::new(codec_a, true, None),
            SocketHandler::new(codec_b, false, None),
        );
        let (shared_a, shared_b) = (handler_a.shared.clone(), handler_b.shared.clone());
        let (conn_a, conn_b) = pair::connect_pair(handler_a, handler_b)?;
        let a = Socket {
            conn: conn_a,
            shared: shared_a,
        };
        let b = Socket {
            conn: conn_b,
            shared: shared_b,
        };
        let b = b.established("Socket::pair", "an in-memory pair").await?;
        Ok((a, b))
    }

    /// Waits until connected; the failure as an error (`call` connecting
    /// to `shown`).
    async fn established(self, call: &'static str, shown: &str) -> Result<Self> {
        let shared = &self.shared;
        let ended = poll_fn(|cx| {
            if shared.connected.get() {
                return Poll::Ready(None);
            }
            if let Some(kept) = shared.reason.get() {
                let reason = shared
                    .last_error
                    .take()
                    .unwrap_or_else(|| copy_reason(kept));
                return Poll::Ready(Some(reason));
            }
            shared.waker.register(cx.waker());
            Poll::Pending
        })
        .await;
        match ended {
            None => Ok(self),
            Some(UnbindReason::ConnectFailed(e)) => Err(Error::connect(shown, e)),
            Some(UnbindReason::ConnectTimeout) => Err(Error::connect(
                shown,
                io::Error::new(
                    io::ErrorKind::TimedOut,
                    "the pending-connect timeout passed",
                ),
            )),
            Some(UnbindReason::ReactorStopped) => Err(Error::stopping(call)),
            Some(other) => Err(Error::connect(shown, io::Error::other(other.to_string()))),
        }
    }
}

impl<C: Decoder> Socket<C> {
    /// The connection underneath: its timeouts
    /// ([`set_comm_inactivity_timeout`](Conn::set_comm_inactivity_timeout)),
    /// watermarks and `max_outbound`, socket options, addresses, and
    /// [`close_connection`](Conn::close_connection) to close without
    /// writing what is queued. Calling [`send_data`](Conn::send_data) on it
    /// queues beside the Sink. A [`pause`](Conn::pause) made here holds
    /// until [`resume`](Conn::resume)d here, unless the socket had paused
    /// the connection itself (read-ahead full), in which case reading
    /// resumes it.
    pub fn conn(&self) -> &Conn<C> {
        &self.conn
    }

    /// The peer's address ([`Conn::peer_addr`]): [`Addr::Inet`] for TCP,
    /// [`Addr::Unix`] for a Unix-domain socket, [`Addr::Memory`] for a pair.
    pub fn peer_addr(&self) -> Option<Addr> {
        self.conn.peer_addr()
    }

    /// The local address ([`Conn::local_addr`]); `None` once ended.
    pub fn local_addr(&self) -> Option<Addr> {
        self.conn.local_addr()
    }

    /// How many received frames the socket holds for its reader before it
    /// pauses the connection (default 16).
    pub fn read_ahead(&self) -> usize {
        self.shared.read_ahead.get()
    }

    /// Sets [`read_ahead`](Socket::read_ahead), taking effect at once. The
    /// bound counts frames, not bytes: with `BytesCodec` a frame is one
    /// read (up to 256 KiB), so a lower bound suits bulk data; a line or
    /// length-delimited codec bounds each frame's size itself. Errors with
    /// `is_invalid_argument()` for 0; nothing changes then.
    pub fn set_read_ahead(&self, frames: usize) -> Result<()> {
        if frames == 0 {
            return Err(Error::invalid_argument(
                "Socket::set_read_ahead",
                "the read-ahead must be at least one frame",
            ));
        }
        self.shared.read_ahead.set(frames);
        if self.buffered_frames() >= frames && !self.conn.is_paused() {
            self.shared.paused_full.set(true);
            self.conn.pause();
        } else {
            self.resume_if_drained();
        }
        Ok(())
    }

    /// How many received frames wait for the reader.
    pub fn buffered_frames(&self) -> usize {
        self.shared.frames.borrow().len()
    }

    /// Why the connection ended, once it has (the handler's `unbind`
    /// reason); `None` while it is open. It stays readable after the Stream
    /// ended. A copy: I/O errors keep their kind, OS error code and
    /// message, a codec error its message but not its type (the Stream's
    /// last item is the original).
    pub fn unbind_reason(&self) -> Option<&UnbindReason> {
        self.shared.reason.get()
    }

    /// Resumes the connection the socket paused, once half the read-ahead
    /// has been read.
    fn resume_if_drained(&self) {
        let shared = &self.shared;
        if shared.paused_full.get() && self.buffered_frames() <= shared.read_ahead.get() / 2 {
            shared.paused_full.set(false);
            tracing::trace!(conn = %self.conn.id(), "socket read-ahead drained; resuming");
            self.conn.resume();
        }
    }

    /// Why a frame cannot be sent now, if it cannot: the connection closed
    /// or closing.
    fn refusal(&self) -> Option<Error> {
        self.conn.state().refusal()
    }

    /// After the end: `Ok` for a clean end, `is_closed()` for an error.
    fn end_result(reason: &UnbindReason) -> Result<()> {
        if reason.is_error() {
            Err(Error::closed())
        } else {
            Ok(())
        }
    }

    /// Waits until every queued byte has been handed to the transport: the
    /// Sink's `poll_flush`, as a method, because `SinkExt::flush` needs the
    /// item type spelled out on a Sink of several types (`Sink<&str>` and
    /// `Sink<String>` with `LinesCodec`). `Ok` after a clean end,
    /// `is_closed()` after an end with an error reason.
    pub async fn flush(&mut self) -> Result<()> {
        poll_fn(|cx| self.poll_flush_output(cx)).await
    }

    /// Closes after writing what is queued
    /// ([`close_connection_after_writing`](Conn::close_connection_after_writing))
    /// and waits for the end: the Sink's `poll_close`, as a method (see
    /// [`flush`](Socket::flush)). `Ok` for a clean end (the close, or the
    /// peer's first), `is_closed()` if the connection ended with an error
    /// reason. The Stream still gives the frames received before the end.
    pub async fn close(&mut self) -> Result<()> {
        poll_fn(|cx| self.poll_close_connection(cx)).await
    }

    fn poll_flush_output(&mut self, cx: &mut Context<'_>) -> Poll<Result<()>> {
        if let Some(reason) = self.shared.reason.get() {
            return Poll::Ready(Self::end_result(reason));
        }
        let state = self.conn.state();
        if state.outbound.borrow().is_empty() {
            return Poll::Ready(Ok(()));
        }
        // Woken when the queue empties (or the connection ends).
        state.wait_for_output(cx.waker());
        Poll::Pending
    }

    fn poll_close_connection(&mut self, cx: &mut Context<'_>) -> Poll<Result<()>> {
        if let Some(reason) = self.shared.reason.get() {
            return Poll::Ready(Self::end_result(reason));
        }
        if !self.conn.is_closed() {
            self.conn.close_connection_after_writing();
        }
        // Woken as the output drains, and when the connection ends.
        self.conn.state().wait_for_output(cx.waker());
        Poll::Pending
    }
}

/// Procedural reads and writes, as methods.
impl<C> Socket<C>
where
    C: Decoder<Error: Into<BoxError>> + 'static,
{
    /// The next frame, waiting for it (em-synchrony's `socket.read`):
    /// `Ok(Some(frame))`, `Ok(None)` once the connection has ended cleanly
    /// and every frame received was read, or `Err(reason)` once after an
    /// end with an error (a reset, a codec error…; `?` makes it an
    /// [`Error`]). The Stream's `next`, as a method, so that procedural
    /// code needs no futures import. Reactor thread only.
    pub async fn read(&mut self) -> std::result::Result<Option<C::Item>, UnbindReason> {
        poll_fn(|cx| Pin::new(&mut *self).poll_next(cx))
            .await
            .transpose()
    }

    /// Writes `frame` and waits until it has been handed to the transport
    /// (em-synchrony's `socket.write`): waits first while the output is
    /// above its high watermark, then queues the frame as
    /// [`send_data`](Conn::send_data) does, then flushes. The Sink's
    /// `send`, as a method. Errors as the Sink's. Reactor thread only.
    pub async fn write<T>(&mut self, frame: T) -> Result<()>
    where
        C: Encoder<T>,
        <C as Encoder<T>>::Error: Into<BoxError>,
    {
        poll_fn(|cx| Sink::<T>::poll_ready(Pin::new(&mut *self), cx)).await?;
        self.conn.try_send_data(frame)?;
        self.flush().await
    }
}

impl<C> Stream for Socket<C>
where
    C: Decoder<Error: Into<BoxError>> + 'static,
{
    type Item = std::result::Result<C::Item, UnbindReason>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = self.get_mut();
        let shared = &this.shared;
        let frame = shared.frames.borrow_mut().pop_front();
        if let Some(frame) = frame {
            this.resume_if_drained();
            return Poll::Ready(Some(Ok(frame)));
        }
        if shared.reason.get().is_some() {
            let last = shared.last_error.take();
            if let Some(reason) = last {
                return Poll::Ready(Some(Err(reason)));
            }
            shared.done.set(true);
            return Poll::Ready(None);
        }
        shared.waker.register(cx.waker());
        Poll::Pending
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        let buffered = self.buffered_frames();
        match self.shared.reason.get() {
            Some(reason) => (
                buffered,
                Some(buffered + usize::from(!self.shared.done.get() && reason.is_error())),
            ),
            None => (buffered, None),
        }
    }
}

impl<C> FusedStream for Socket<C>
where
    C: Decoder<Error: Into<BoxError>> + 'static,
{
    fn is_terminated(&self) -> bool {
        self.shared.done.get()
    }
}

impl<C, T> Sink<T> for Socket<C>
where
    C: Decoder<Error: Into<BoxError>> + Encoder<T> + 'static,
    <C as Encoder<T>>::Error: Into<BoxError>,
{
    type Error = Error;

    fn poll_ready(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<()>> {
        let this = self.get_mut();
        if let Some(e) = this.refusal() {
            return Poll::Ready(Err(e));
        }
        if this.conn.is_above_high_watermark() {
            // Woken when the output drains to the low watermark (or ends).
            this.conn.state().wait_for_output(cx.waker());
            return Poll::Pending;
        }
        Poll::Ready(Ok(()))
    }

    fn start_send(self: Pin<&mut Self>, frame: T) -> Result<()> {
        self.conn.try_send_data(frame).map(drop)
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<()>> {
        self.get_mut().poll_flush_output(cx)
    }

    fn poll_close(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<()>> {
        self.get_mut().poll_close_connection(cx)
    }
}

impl<C: Decoder> Drop for Socket<C> {
    fn drop(&mut self) {
        if self.conn.is_closed() {
            return;
        }
        if self.shared.connected.get() {
            self.conn.close_connection_after_writing();
        } else {
            self.conn.close_connection();
        }
    }
}

impl<C: Decoder> fmt::Debug for Socket<C> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Socket")
            .field("id", &self.conn.id())
            .field("peer", &self.conn.peer_addr())
            .field("buffered_frames", &self.buffered_frames())
            .field("unbind_reason", &self.shared.reason.get())
            .finish()
    }
}

/// Accepted sockets waiting for `accept`, shared by a [`SocketListener`]
/// and its server's handler factory.
struct Backlog<C: Decoder> {
    sockets: RefCell<VecDeque<Socket<C>>>,
    /// The task in `accept`.
    waker: WakerSlot,
    /// The server's accept loop has ended (stopped by anyone, or the
    /// reactor): no socket will come any more.
    closed: Cell<bool>,
}

impl<C: Decoder> Backlog<C> {
    fn push(&self, socket: Socket<C>) {
        self.sockets.borrow_mut().push_back(socket);
        self.waker.wake();
    }
}

/// Owned by the server's handler factory, so dropped when its accept loop
/// ends: tells the listener that no socket will come any more.
struct CloseBacklog<C: Decoder>(Rc<Backlog<C>>);

impl<C: Decoder> Drop for CloseBacklog<C> {
    fn drop(&mut self) {
        self.0.closed.set(true);
        self.0.waker.wake();
    }
}

/// A server for procedural code: [`accept`](SocketListener::accept)`().await`
/// gives each accepted connection as a [`Socket`].
///
/// It is [`start_server`](crate::start_server) (or
/// [`start_unix_domain_server`](crate::start_unix_domain_server)) with
/// `Socket`'s own handler: the same listener, backlog, `TCP_NODELAY`,
/// descriptor-exhaustion back-off and limits ([`server`](SocketListener::server)
/// gives the [`Server`] for `set_max_connections` and the counts). Each
/// connection is accepted (and starts reading into its socket's read-ahead)
/// as soon as it arrives, like a callback server's; sockets wait for
/// `accept` in arrival order, without a bound of their own, so cap them with
/// `server().set_max_connections(..)`. A socket whose connection ended
/// before it was accepted is still handed out (its Stream gives the
/// reason).
///
/// Dropping the listener stops the server (connections already handed out
/// live on; those still waiting are closed). `!Send`: reactor thread only.
/// It is also a `Stream` of sockets, ending when the server stops.
pub struct SocketListener<C: Decoder> {
    server: Server,
    backlog: Rc<Backlog<C>>,
}

impl<C> SocketListener<C>
where
    C: Decoder<Error: Into<BoxError>> + 'static,
{
    /// Listens on `addr` over TCP (port 0 picks a free port); `codec` makes
    /// each accepted connection's codec. Reactor thread only.
    ///
    /// Errors as [`start_server`](crate::start_server): `is_bind()`,
    /// `is_no_reactor()`, `is_stopping()`.
    pub fn bind<A, F>(addr: A, codec: F) -> Result<Self>
    where
        A: ToSocketAddrs + fmt::Debug,
        F: FnMut() -> C + 'static,
    {
        let backlog = Self::backlog();
        let server = server::start_server(addr, Self::factory(&backlog, codec))?;
        Ok(SocketListener { server, backlog })
    }

    /// Listens on the Unix-domain socket at `path`, as
    /// [`start_unix_domain_server`](crate::start_unix_domain_server) (a
    /// stale socket file is replaced; the file is removed when the listener
    /// stops). Errors as `bind`.
    pub fn bind_unix<F>(path: impl AsRef<Path>, codec: F) -> Result<Self>
    where
        F: FnMut() -> C + 'static,
    {
        let backlog = Self::backlog();
        let server = server::start_unix_domain_server(path, Self::factory(&backlog, codec))?;
        Ok(SocketListener { server, backlog })
    }

    fn backlog() -> Rc<Backlog<C>> {
        Rc::new(Backlog {
            sockets: RefCell::new(VecDeque::new()),
            waker: WakerSlot::default(),
            closed: Cell::new(false),
        })
    }

    fn factory(
        backlog: &Rc<Backlog<C>>,
        mut codec: impl FnMut() -> C + 'static,
    ) -> impl FnMut() -> SocketHandler<C> + 'static {
        let guard = CloseBacklog(backlog.clone());
        move || SocketHandler::new(codec(), true, Some(guard.0.clone()))
    }

    /// The next accepted connection, in arrival order; `None` once the
    /// server has stopped (by [`stop`](SocketListener::stop), through
    /// [`server`](SocketListener::server), or with the reactor) and every
    /// socket accepted before has been taken. One task accepts at a time:
    /// with several, only the last to poll is woken.
    pub async fn accept(&self) -> Option<Socket<C>> {
        poll_fn(|cx| self.poll_accept(cx)).await
    }

    /// [`accept`](SocketListener::accept) as a poll function.
    pub fn poll_accept(&self, cx: &mut Context<'_>) -> Poll<Option<Socket<C>>> {
        let socket = self.backlog.sockets.borrow_mut().pop_front();
        if socket.is_some() || self.backlog.closed.get() {
            return Poll::Ready(socket);
        }
        self.backlog.waker.register(cx.waker());
        Poll::Pending
    }
}

impl<C: Decoder> SocketListener<C> {
    /// The address it listens on ([`Server::local_addr`]), ready for
    /// [`Socket::connect`].
    pub fn local_addr(&self) -> Addr {
        self.server.local_addr()
    }

    /// The server underneath: limits (`set_max_connections`) and counts.
    pub fn server(&self) -> &Server {
        &self.server
    }

    /// Stops accepting ([`Server::stop`]): `accept` gives the sockets
    /// already accepted, then `None`. Idempotent.
    pub fn stop(&self) {
        self.server.stop();
    }
}

impl<C> Stream for SocketListener<C>
where
    C: Decoder<Error: Into<BoxError>> + 'static,
{
    type Item = Socket<C>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Socket<C>>> {
        self.poll_accept(cx)
    }
}

impl<C: Decoder> Drop for SocketListener<C> {
    fn drop(&mut self) {
        self.server.stop();
        // Dropped outside the borrow: closing runs no user code, but keep
        // borrows short.
        let waiting = self.backlog.sockets.take();
        drop(waiting);
    }
}

impl<C: Decoder> fmt::Debug for SocketListener<C> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SocketListener")
            .field("server", &self.server)
            .field("waiting", &self.backlog.sockets.borrow().len())
            .finish()
    }
}
