//! `Conn`: the handle a connection's callbacks get, and the connection's
//! shared state (`ConnState`) that the handle and the driver both see: the
//! transport, the output queue, the close request, timeouts and watermarks.

use std::cell::{Cell, RefCell};
use std::fmt;
use std::rc::{Rc, Weak};
use std::task::Waker;
use std::time::Duration;

use bytes::BytesMut;
use tokio::time::Instant;
use tokio_util::codec::Encoder;

use crate::error::{BoxError, Error, Result};
use crate::net::address::Addr;
use crate::net::client::{Connecting, Endpoint};
use crate::net::proxy::ProxyState;
use crate::net::server::ServerInner;
use crate::net::tls::TlsUpgrade;
use crate::net::transport::BoxTransport;
use crate::reactor::core::{ConnectionId, Core, Member, OutboundMeter};
use crate::reactor::panic;

/// Whether a close was asked for, and why.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Close {
    Open,
    /// `close_connection_after_writing`.
    AfterWriting,
    /// `close_connection`.
    Now,
    /// `send_data` passed `max_outbound`.
    Overflow,
    /// `detach` took the transport.
    Detach,
    /// Its codec's `encode` panicked (see `ConnState::fail`).
    Failed,
}

/// A client's pending-connect timeout unless set otherwise (EventMachine's
/// default).
pub(crate) const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(20);

/// The part of a connection's state that does not depend on its codec.
pub(crate) struct ConnState {
    pub(crate) id: ConnectionId,
    /// The peer's address, known from the accept or the connect, and kept
    /// after the connection ends.
    pub(crate) peer: RefCell<Option<Addr>>,
    /// The byte stream, once connected, until the connection ends or is
    /// detached. The driver borrows it only while it reads or writes, never
    /// across a callback, so callbacks may use it (socket options, detach).
    pub(crate) transport: RefCell<Option<BoxTransport>>,
    pub(crate) outbound: RefCell<BytesMut>,
    pub(crate) close: Cell<Close>,
    /// The connection has ended (its driver finished).
    pub(crate) ended: Cell<bool>,
    /// The driver is being polled right now, so it will flush and look at
    /// `close` before it parks: no need to wake it.
    pub(crate) polling: Cell<bool>,
    /// What few connections use (timeouts, a pending reconnect, tasks
    /// waiting for the output, a failure's message), out of line and made
    /// on first use, so that an idle connection with the defaults pays one
    /// word for all of it.
    rare: Cell<Option<Box<Rare>>>,
    /// Reading is paused by the user.
    pub(crate) paused: Cell<bool>,
    /// The transport cannot be written (a pipe's read end): set when it is
    /// installed, so that `send_data` need not ask it.
    pub(crate) read_only: Cell<bool>,
    /// The transport is a datagram socket (`net/datagram.rs`): set when it
    /// is installed, so that `send_data` need not ask it where a frame goes.
    pub(crate) datagram: Cell<bool>,
    /// The queue passed the high watermark and has not drained to the low
    /// one since.
    pub(crate) above_high: Cell<bool>,
    /// The transport's directions are independent pipes (a child
    /// process, `Transport::half_closes`): set when it is installed.
    pub(crate) half_closes: Cell<bool>,
    pub(crate) high_watermark: Cell<usize>,
    pub(crate) low_watermark: Cell<usize>,
    pub(crate) max_outbound: Cell<usize>,
    /// The server that accepted this connection, told when it ends.
    pub(crate) server: Cell<Option<Rc<ServerInner>>>,
    /// `unbind` is running (the one time `reconnect` may be called).
    pub(crate) unbinding: Cell<bool>,
    /// The proxy roles it has (`net/proxy.rs`): its input goes to another
    /// connection, or another's comes to it. The pump looks at the proxy
    /// state (in `rare`) only while one is set.
    pub(crate) proxy_roles: Cell<u8>,
    /// Where it is with TLS (`net/tls`): an upgrade asked for, a handshake
    /// under way, TLS running. The pump looks further only while one of
    /// the first two is set.
    pub(crate) tls: Cell<u8>,
    /// Counts output queued on the reactor's connections, to check its
    /// budget (`max_total_outbound`) every so often.
    meter: Rc<OutboundMeter>,
    waker: RefCell<Option<Waker>>,
}

/// The rarely used parts of a connection's state (see `ConnState::rare`).
#[derive(Default)]
struct Rare {
    /// The timeouts; `None` while both have their defaults.
    timing: Option<Timing>,
    /// A connect requested by `reconnect` from `unbind`, and its delay.
    reconnect: Option<(Connecting, Duration)>,
    /// Tasks waiting for the output to drain (a file being streamed, a
    /// procedural socket's `Sink`): woken when the queue empties, when it
    /// drains to the low watermark, and when the connection ends.
    output_waiters: Vec<Waker>,
    /// Why `Close::Failed` closed it (a panic in its codec's `encode`).
    failure: Option<String>,
    /// A watched descriptor's switches (`watch`); all off for the others.
    watch: Watch,
    /// A proxy from or to it, and the count of the last one.
    proxy: Option<Box<ProxyState>>,
    /// A `start_tls` the pump has not carried out yet.
    tls_upgrade: Option<Box<TlsUpgrade>>,
    /// A child process's id (`popen`), and its exit status once reaped.
    child: Option<(u32, Option<std::process::ExitStatus>)>,
}

/// A watched descriptor's switches (`watch`): whether the connection
/// watches one, and which notifications are on. All off for other
/// connections.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Watch {
    /// It watches a descriptor, which em neither reads nor writes.
    pub(crate) only: bool,
    /// `notify_readable` is on.
    pub(crate) readable: bool,
    /// `notify_writable` is on.
    pub(crate) writable: bool,
}

/// A connection's timeouts.
struct Timing {
    /// The inactivity timeout; zero when off.
    inactivity: Duration,
    /// The last time a byte was read or written, tracked only while an
    /// inactivity timeout is set.
    last_activity: Instant,
    /// The pending-connect timeout (clients); zero when off.
    connect_timeout: Duration,
}

impl ConnState {
    /// Reads the rare parts (`None` while they were never made).
    fn peek_rare<R>(&self, read: impl FnOnce(Option<&mut Rare>) -> R) -> R {
        let mut rare = self.rare.take();
        let r = read(rare.as_deref_mut());
        self.rare.set(rare);
        r
    }

    /// Files a `start_tls` for the pump to carry out.
    pub(crate) fn put_tls_upgrade(&self, upgrade: TlsUpgrade) {
        self.with_rare(|rare| rare.tls_upgrade = Some(Box::new(upgrade)));
    }

    /// The `start_tls` waiting for the pump, if any, taken out.
    pub(crate) fn take_tls_upgrade(&self) -> Option<Box<TlsUpgrade>> {
        self.peek_rare(|rare| rare.and_then(|r| r.tls_upgrade.take()))
    }

    /// Records that the connection runs child process `pid` (`popen`).
    pub(crate) fn set_child(&self, pid: u32) {
        self.with_rare(|rare| rare.child = Some((pid, None)));
    }

    /// The child process's id and, once it has exited, its status.
    pub(crate) fn child(&self) -> Option<(u32, Option<std::process::ExitStatus>)> {
        self.peek_rare(|rare| rare.and_then(|r| r.child))
    }

    /// Records the child's exit status, once it has been reaped.
    pub(crate) fn set_exit_status(&self, status: std::process::ExitStatus) {
        self.with_rare(|rare| {
            if let Some((_, exit)) = &mut rare.child {
                *exit = Some(status);
            }
        });
    }

    /// Changes the rare parts, making them first if need be.
    fn with_rare<R>(&self, update: impl FnOnce(&mut Rare) -> R) -> R {
        let mut rare = self.rare.take().unwrap_or_default();
        let r = update(&mut rare);
        self.rare.set(Some(rare));
        r
    }

    fn timing<R>(&self, read: impl FnOnce(Option<&Timing>) -> R) -> R {
        self.peek_rare(|rare| read(rare.and_then(|r| r.timing.as_ref())))
    }

    fn update_timing(&self, update: impl FnOnce(&mut Timing)) {
        self.with_rare(|rare| {
            update(rare.timing.get_or_insert_with(|| Timing {
                inactivity: Duration::ZERO,
                last_activity: Instant::now(),
                connect_timeout: DEFAULT_CONNECT_TIMEOUT,
            }))
        });
    }

    /// The inactivity timeout; zero when off.
    pub(crate) fn inactivity(&self) -> Duration {
        self.timing(|t| t.map_or(Duration::ZERO, |t| t.inactivity))
    }

    /// The pending-connect timeout; zero when off.
    pub(crate) fn connect_timeout(&self) -> Duration {
        self.timing(|t| t.map_or(DEFAULT_CONNECT_TIMEOUT, |t| t.connect_timeout))
    }

    /// The last read or write, while an inactivity timeout is set.
    pub(crate) fn last_activity(&self) -> Instant {
        self.timing(|t| t.map_or_else(Instant::now, |t| t.last_activity))
    }

    pub(crate) fn set_last_activity(&self, at: Instant) {
        self.update_timing(|t| t.last_activity = at);
    }

    /// Records the connect `reconnect` asked for.
    fn set_reconnect(&self, connecting: Connecting, delay: Duration) {
        self.with_rare(|rare| rare.reconnect = Some((connecting, delay)));
    }

    /// Takes the connect `reconnect` asked for, if any.
    pub(crate) fn take_reconnect(&self) -> Option<(Connecting, Duration)> {
        self.peek_rare(|rare| rare.and_then(|r| r.reconnect.take()))
    }

    /// A watched descriptor's switches (all off for other connections).
    pub(crate) fn watch(&self) -> Watch {
        self.peek_rare(|rare| rare.map_or_else(Watch::default, |r| r.watch))
    }

    /// Sets a watched descriptor's switches.
    pub(crate) fn set_watch(&self, watch: Watch) {
        self.with_rare(|rare| rare.watch = watch);
    }

    /// Installs the connection's transport.
    pub(crate) fn install(&self, transport: BoxTransport) {
        self.read_only.set(!transport.writable());
        self.datagram.set(transport.datagram().is_some());
        self.half_closes.set(transport.half_closes());
        *self.transport.borrow_mut() = Some(transport);
    }

    /// Closes the connection because of `failure` (a panic in its codec's
    /// `encode`, called from another connection's callback): the queue is
    /// dropped and the driver ends it with `UnbindReason::Panicked`.
    pub(crate) fn fail(&self, failure: String) {
        self.with_rare(|rare| rare.failure = Some(failure));
        self.close.set(Close::Failed);
        self.outbound.borrow_mut().clear();
        self.wake();
    }

    /// Why output can no longer be queued, if it cannot: the connection has
    /// ended or a close was asked for (`is_closed()`; "closing" after
    /// `close_connection_after_writing`).
    pub(crate) fn refusal(&self) -> Option<Error> {
        if self.ended.get() {
            return Some(Error::closed());
        }
        match self.close.get() {
            Close::Open => None,
            Close::AfterWriting => Some(Error::closing()),
            Close::Now | Close::Overflow | Close::Detach | Close::Failed => Some(Error::closed()),
        }
    }

    /// Ends the connection with `UnbindReason::OutboundOverflow`: its queue
    /// is dropped now (the memory is freed at once), and the driver ends it.
    pub(crate) fn evict(&self) {
        self.close.set(Close::Overflow);
        *self.outbound.borrow_mut() = BytesMut::new();
        self.wake();
    }

    /// The message `fail` recorded.
    pub(crate) fn take_failure(&self) -> String {
        self.peek_rare(|rare| rare.and_then(|r| r.failure.take()))
            .unwrap_or_default()
    }

    /// Changes the proxy state, making it first if need be. `update` must
    /// not reach this connection's rare state again (keep it to moving
    /// fields in and out).
    pub(crate) fn with_proxy<R>(&self, update: impl FnOnce(&mut ProxyState) -> R) -> R {
        self.with_rare(|rare| update(rare.proxy.get_or_insert_with(Box::default)))
    }

    /// Reads the proxy state (`None` while it was never made); the same
    /// rule as [`with_proxy`](Self::with_proxy).
    pub(crate) fn peek_proxy<R>(&self, read: impl FnOnce(Option<&mut ProxyState>) -> R) -> R {
        self.peek_rare(|rare| read(rare.and_then(|r| r.proxy.as_deref_mut())))
    }
}

impl ConnState {
    fn new(id: ConnectionId, meter: Rc<OutboundMeter>) -> Self {
        ConnState {
            id,
            meter,
            peer: RefCell::new(None),
            transport: RefCell::new(None),
            outbound: RefCell::new(BytesMut::new()),
            close: Cell::new(Close::Open),
            ended: Cell::new(false),
            polling: Cell::new(false),
            rare: Cell::new(None),
            paused: Cell::new(false),
            read_only: Cell::new(false),
            half_closes: Cell::new(false),
            datagram: Cell::new(false),
            above_high: Cell::new(false),
            high_watermark: Cell::new(usize::MAX),
            low_watermark: Cell::new(0),
            max_outbound: Cell::new(usize::MAX),
            server: Cell::new(None),
            unbinding: Cell::new(false),
            proxy_roles: Cell::new(0),
            tls: Cell::new(0),
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

    /// Wakes the driver even while it is being polled, so that it is polled
    /// once more: for a change made from one of its own callbacks that the
    /// poll under way may have passed already (a proxy started or stopped).
    pub(crate) fn wake_again(&self) {
        if let Some(w) = &*self.waker.borrow() {
            w.wake_by_ref();
        }
    }

    /// Registers `waker` to be woken when the output drains (see
    /// `Rare::output_waiters`); the task re-checks its own condition then.
    pub(crate) fn wait_for_output(&self, waker: &Waker) {
        self.with_rare(|rare| {
            if !rare.output_waiters.iter().any(|w| w.will_wake(waker)) {
                rare.output_waiters.push(waker.clone());
            }
        });
    }

    /// Wakes the tasks waiting for the output, if any (a cheap check when
    /// none waits).
    pub(crate) fn wake_output_waiters(&self) {
        let Some(mut rare) = self.rare.take() else {
            return;
        };
        let waiters = std::mem::take(&mut rare.output_waiters);
        self.rare.set(Some(rare));
        for w in waiters {
            w.wake();
        }
    }

    pub(crate) fn drop_waker(&self) {
        self.waker.borrow_mut().take();
    }
}

pub(crate) struct ConnInner<C> {
    pub(crate) state: ConnState,
    pub(crate) codec: RefCell<C>,
}

/// A connection whatever its codec: how one connection refers to another
/// (a proxy's source to its target).
pub(crate) trait AnyConn {
    fn state(&self) -> &ConnState;

    /// Queues `data` as it is, past the codec (`Conn::send_raw`).
    fn send_raw(self: Rc<Self>, call: &'static str, data: &[u8]) -> Result<usize>;
}

impl<C: 'static> AnyConn for ConnInner<C> {
    fn state(&self) -> &ConnState {
        &self.state
    }

    fn send_raw(self: Rc<Self>, call: &'static str, data: &[u8]) -> Result<usize> {
        Conn { inner: self }.send_raw(call, &[data])
    }
}

/// The reactor's core knows a connection only as a [`Member`] to wake when
/// it stops.
impl<C> Member for ConnInner<C> {
    fn reactor_stopping(&self) {
        self.state.wake();
    }

    fn outbound_len(&self) -> usize {
        self.state.outbound.try_borrow().map_or(0, |out| out.len())
    }

    fn outbound_memory(&self) -> usize {
        self.state
            .outbound
            .try_borrow()
            .map_or(0, |out| out.capacity())
    }

    fn evict_for_budget(&self, queued: usize, total: usize, budget: usize) {
        if self.state.refusal().is_some() {
            return;
        }
        tracing::warn!(conn = %self.state.id,
            peer = ?self.state.peer.borrow().as_ref().map(ToString::to_string),
            queued, total, max_total_outbound = budget,
            "the reactor's queued output passed max_total_outbound: closing the connection with the most queued");
        self.state.evict();
    }
}

/// A handle to one connection: cheap to clone, `!Send`, and storable (a chat
/// room keeps its members' handles). `C` is the connection's codec.
///
/// Every method runs on the reactor thread and never blocks. Calls on a
/// closed connection are harmless no-ops that say so (a `0` or an error, and
/// a debug event).
///
/// `C` defaults to [`RawCodec`](crate::RawCodec): `&Conn` is the handle of
/// a raw-bytes connection, the one a [`Handler`](crate::Handler) gets.
///
/// The compiler keeps it on the reactor thread:
///
/// ```compile_fail
/// # use em_core as em;
/// fn on_another_thread(conn: em::Conn<tokio_util::codec::BytesCodec>) {
///     std::thread::spawn(move || conn.close_connection()); // error: `Conn` is not `Send`
/// }
/// ```
pub struct Conn<C = crate::net::raw_codec::RawCodec> {
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
    /// A new connection of the reactor `core`, with its next id.
    pub(crate) fn new(core: &Core, codec: C) -> Self {
        Conn {
            inner: Rc::new(ConnInner {
                state: ConnState::new(core.next_conn_id(), core.outbound_meter()),
                codec: RefCell::new(codec),
            }),
        }
    }

    pub(crate) fn member(&self) -> Rc<dyn Member> {
        self.inner.clone()
    }

    /// The connection with its codec type erased.
    pub(crate) fn any(&self) -> Rc<dyn AnyConn> {
        self.inner.clone()
    }
}

/// A handle that does not keep the connection's state alive: for a task
/// working for the connection (a file being streamed), which upgrades it
/// for each step and so lets the state go once the connection has ended
/// and its handles are dropped.
pub(crate) struct WeakConn<C>(Weak<ConnInner<C>>);

impl<C> WeakConn<C> {
    /// The connection, unless its state is gone.
    pub(crate) fn upgrade(&self) -> Option<Conn<C>> {
        self.0.upgrade().map(|inner| Conn { inner })
    }
}

impl<C> Conn<C> {
    pub(crate) fn state(&self) -> &ConnState {
        &self.inner.state
    }

    pub(crate) fn codec(&self) -> &RefCell<C> {
        &self.inner.codec
    }

    pub(crate) fn downgrade(&self) -> WeakConn<C> {
        WeakConn(Rc::downgrade(&self.inner))
    }

    /// Runs `f` on the connection's codec and returns what it returns: to
    /// change how the next frames are decoded or encoded (a line protocol
    /// switched to a binary block of N bytes, a new delimiter, a new
    /// limit). Reactor thread only.
    ///
    /// From `receive_data`, the change applies from the next frame: input
    /// already read but not yet decoded is decoded under the new settings,
    /// and nothing is lost or delivered twice (frames are decoded one at a
    /// time, each delivered before the next is decoded).
    ///
    /// Errors with `is_unsupported()` when called from inside the codec
    /// itself (its `decode` or `encode`), which holds it.
    ///
    /// ```
    /// # use em_core as em;
    /// use em::{Conn, Connection};
    /// use tokio_util::codec::LinesCodec;
    ///
    /// struct Limits;
    /// impl Connection for Limits {
    ///     type Codec = LinesCodec;
    ///     fn codec(&self) -> LinesCodec { LinesCodec::new() }
    ///     fn post_init(&mut self, conn: &Conn<LinesCodec>) {
    ///         let max = conn.with_codec(|codec| codec.max_length()).unwrap();
    ///         assert_eq!(max, usize::MAX);
    ///         em::stop();
    ///     }
    ///     fn receive_data(&mut self, _: &Conn<LinesCodec>, _: String) {}
    /// }
    ///
    /// em::run(|| em::connect_pair(Limits, Limits).map(drop))?;
    /// # Ok::<(), em_core::Error>(())
    /// ```
    pub fn with_codec<R>(&self, f: impl FnOnce(&mut C) -> R) -> Result<R> {
        let mut codec = self.inner.codec.try_borrow_mut().map_err(|_| {
            Error::unsupported("with_codec", "called from inside the codec, which holds it")
        })?;
        Ok(f(&mut codec))
    }

    /// Encodes `frame` with the connection's codec and queues it for sending;
    /// never blocks. Frames queued in one pass of the reactor leave together
    /// in as few `write(2)` calls as possible.
    ///
    /// On a datagram socket ([`open_datagram_socket`](crate::open_datagram_socket))
    /// each frame is one datagram, sent to the sender of the last datagram
    /// received; [`send_datagram`](Conn::send_datagram)
    /// sends to anyone.
    ///
    /// Returns the bytes queued: `0` when the frame was refused (connection
    /// closed or closing after writing, or the codec failed to encode; a
    /// debug event says which), and for an empty datagram. Use
    /// [`try_send_data`](Conn::try_send_data) to get the reason as an error.
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
    /// errors with `is_closed()` on a closed or closing connection,
    /// `is_encode()` when the codec failed (nothing is queued then, and the
    /// connection stays open), `is_outbound_overflow()` past `max_outbound`,
    /// and `is_unsupported()` on a pipe's read end and on a watched
    /// descriptor ([`watch`](crate::watch)). On a datagram socket,
    /// also `is_no_peer()` before any datagram arrived (there is no sender
    /// to reply to yet), and `is_invalid_argument()` for a frame larger than
    /// a UDP datagram can carry (as [`send_datagram`](Conn::send_datagram)).
    pub fn try_send_data<T>(&self, frame: T) -> Result<usize>
    where
        C: Encoder<T>,
        <C as Encoder<T>>::Error: Into<BoxError>,
    {
        if self.state().datagram.get() {
            return self.send_reply(frame);
        }
        self.encode_queued("send_data", frame, |_| Ok(()))
    }

    /// Encodes `frame` into the queue with the connection's codec, with
    /// `queue_output`'s checks and bookkeeping; `check` sees the length of
    /// the encoded frame and may refuse it (nothing is queued then). The
    /// bytes queued, or why nothing was.
    pub(crate) fn encode_queued<T>(
        &self,
        call: &'static str,
        frame: T,
        check: impl FnOnce(usize) -> Result<()>,
    ) -> Result<usize>
    where
        C: Encoder<T>,
        <C as Encoder<T>>::Error: Into<BoxError>,
    {
        let mut panicked = None;
        let queued = self.queue_output(call, |out| {
            let mut codec = self.inner.codec.try_borrow_mut().map_err(|_| {
                Error::encode("the codec is busy (send_data called from inside the codec)")
            })?;
            let before = out.len();
            // The codec is user code: a panic in `encode` is contained and
            // charged to this connection, not to the caller's.
            match panic::catch("encode", Some(self.id()), || codec.encode(frame, out)) {
                Ok(encoded) => encoded.map_err(Error::encode)?,
                Err(message) => {
                    panicked = Some(message.clone());
                    return Err(Error::panicked("encode", message));
                }
            }
            check(out.len() - before)
        });
        if let Some(message) = panicked {
            // `queue_output` dropped the half-written frame; the connection
            // ends with `unbind(Panicked)`.
            self.state().fail(message);
        }
        queued
    }

    /// Queues `parts` as they are, bypassing the codec (a file's bytes and
    /// their framing), with `send_data`'s checks and bookkeeping. The bytes
    /// queued, or why nothing was (errors as `try_send_data`, under `call`).
    pub(crate) fn send_raw(&self, call: &'static str, parts: &[&[u8]]) -> Result<usize> {
        self.queue_output(call, |out| {
            for part in parts {
                out.extend_from_slice(part);
            }
            Ok(())
        })
    }

    /// Whether output may be queued: not on a closed or closing connection
    /// (`is_closed()`), nor on a pipe's read end or a watched descriptor
    /// (`is_unsupported()`).
    pub(crate) fn may_queue(&self, call: &'static str) -> Result<()> {
        let state = self.state();
        if let Some(refused) = state.refusal() {
            return Err(refused);
        }
        if state.read_only.get() {
            if state.watch().only {
                return Err(Error::unsupported(
                    call,
                    "this connection watches a descriptor, which em does not write",
                ));
            }
            if state.child().is_some() {
                return Err(Error::closing());
            }
            return Err(Error::unsupported(
                call,
                "this connection is a pipe's read end, which cannot be written",
            ));
        }
        Ok(())
    }

    /// What every way of queueing output shares: refuses on a closed or
    /// closing connection and on a pipe's read end, lets `fill` append to
    /// the queue (undone if it fails), then keeps the books: the high
    /// watermark, the `max_outbound` cap (which closes the connection), and
    /// a wake of the driver when the queue stops being empty.
    fn queue_output(
        &self,
        call: &'static str,
        fill: impl FnOnce(&mut BytesMut) -> Result<()>,
    ) -> Result<usize> {
        self.may_queue(call)?;
        let state = self.state();
        let mut out = state.outbound.borrow_mut();
        let before = out.len();
        if let Err(e) = fill(&mut out) {
            out.truncate(before);
            return Err(e);
        }
        let queued = out.len() - before;
        let high = state.high_watermark.get();
        if out.len() > high {
            let len = out.len();
            drop(out);
            let max = state.max_outbound.get();
            if len > max {
                tracing::warn!(conn = %self.id(), peer = ?state.peer.borrow().as_ref().map(ToString::to_string),
                    queued = before, frame = queued, max_outbound = max,
                    "outbound overflow: the frame would pass the connection's max_outbound; closing it");
                state.evict();
                return Err(Error::outbound_overflow(max, before));
            }
            state.above_high.set(true);
        } else {
            drop(out);
        }
        if state.meter.queued(queued) {
            // Every eighth of the budget queued, reactor-wide: check it.
            if let Ok(core) = Core::current(call) {
                core.enforce_outbound_budget();
            }
            if state.close.get() == Close::Overflow {
                return Err(Error::outbound_overflow(state.max_outbound.get(), before));
            }
        }
        if before == 0 && queued > 0 {
            state.wake();
        }
        Ok(queued)
    }

    /// Closes the connection now; queued output is discarded. `unbind`
    /// follows with [`UnbindReason::Closed`](crate::UnbindReason::Closed), after the current callback
    /// returns (never inside this call). Overrides an earlier
    /// `close_connection_after_writing`. A no-op on a closed connection.
    ///
    /// On a watched descriptor ([`watch`](crate::watch)) it ends the watch;
    /// the descriptor stays open.
    pub fn close_connection(&self) {
        let state = self.state();
        if state.ended.get() || !matches!(state.close.get(), Close::Open | Close::AfterWriting) {
            tracing::debug!(conn = %self.id(), "close_connection on a closed connection; ignored");
            return;
        }
        state.close.set(Close::Now);
        state.outbound.borrow_mut().clear();
        state.wake();
    }

    /// Closes the connection once everything queued has been written; later
    /// `send_data` calls are refused. `unbind` follows with
    /// [`UnbindReason::Closed`](crate::UnbindReason::Closed). A no-op on a closed or closing connection.
    ///
    /// A no-op on a watched descriptor ([`watch`](crate::watch)), which has
    /// nothing to write (EventMachine raises): end a watch with
    /// [`close_connection`](Conn::close_connection).
    ///
    /// On a child process ([`popen`](crate::popen)) it closes only the
    /// child's stdin, once the queue is written; its output is read and
    /// delivered to the end, and `unbind` follows the child's exit.
    pub fn close_connection_after_writing(&self) {
        let state = self.state();
        if state.ended.get() || state.close.get() != Close::Open {
            tracing::debug!(conn = %self.id(), "close_connection_after_writing on a closing connection; ignored");
            return;
        }
        if state.watch().only {
            tracing::debug!(conn = %self.id(), "close_connection_after_writing on a watched descriptor; ignored (close_connection ends the watch)");
            return;
        }
        if state.half_closes.get() {
            // A child's stdin closes after the queue; its output is read on.
            state.read_only.set(true);
        } else {
            state.close.set(Close::AfterWriting);
        }
        state.wake();
    }

    /// The peer's address (EventMachine's `get_peername`): an
    /// [`Addr::Inet`] for TCP, an [`Addr::Unix`] path (or unnamed) for a
    /// Unix-domain socket, [`Addr::Pipe`] or [`Addr::Memory`] for transports
    /// without one. `None` for a client whose connect has not completed. It
    /// stays readable after the connection ended (in `unbind`).
    pub fn peer_addr(&self) -> Option<Addr> {
        self.state().peer.borrow().clone()
    }

    /// The local address of the transport (EventMachine's `get_sockname`),
    /// asked of the system at each call; `None` before a client's connect
    /// completed, and once the connection has ended.
    pub fn local_addr(&self) -> Option<Addr> {
        self.state()
            .transport
            .borrow()
            .as_ref()
            .and_then(|t| t.local_addr())
    }

    /// This connection's id (unique within the reactor run).
    pub fn id(&self) -> ConnectionId {
        self.state().id
    }

    /// Bytes queued by `send_data` and not yet accepted by the kernel
    /// (EventMachine's `get_outbound_data_size`), bytes a proxy brought to
    /// it included.
    pub fn outbound_data_size(&self) -> usize {
        let state = self.state();
        state.outbound.borrow().len() + crate::net::proxy::piped(state)
    }

    /// Closes the connection with [`UnbindReason::InactivityTimeout`](crate::UnbindReason::InactivityTimeout) once
    /// nothing has been read or written for `timeout` (EventMachine's
    /// `comm_inactivity_timeout=`); `Duration::ZERO` (the default) turns it
    /// off. The idle clock starts when the timeout is first set, then
    /// restarts at every read or write that moves a byte; the close happens
    /// at last activity + `timeout`, within tokio's 1 ms timer granularity
    /// (EventMachine may fire up to twice as late). Queued output is
    /// discarded, as with `close_connection`. Callable from any callback on
    /// the reactor thread; a no-op on a closed connection.
    ///
    /// The clock is only read for connections with a timeout set, so the
    /// others pay nothing for the feature.
    pub fn set_comm_inactivity_timeout(&self, timeout: Duration) {
        let state = self.state();
        if state.inactivity().is_zero() && !timeout.is_zero() {
            state.set_last_activity(Instant::now());
        }
        state.update_timing(|t| t.inactivity = timeout);
        state.wake();
    }

    /// The inactivity timeout set with
    /// [`set_comm_inactivity_timeout`](Conn::set_comm_inactivity_timeout);
    /// zero when off.
    pub fn comm_inactivity_timeout(&self) -> Duration {
        self.state().inactivity()
    }

    /// How long the connection has been idle (EventMachine's
    /// `get_idle_time`): the time since the last byte was read or written.
    /// `None` while no inactivity timeout is set, because only then does em
    /// track activity (it keeps the clock off the hot path).
    pub fn idle_time(&self) -> Option<Duration> {
        let state = self.state();
        (!state.inactivity().is_zero()).then(|| state.last_activity().elapsed())
    }

    /// Gives up a client's connect that has not completed `timeout` after
    /// [`connect`](crate::connect) was called: the connection then ends with
    /// [`UnbindReason::ConnectTimeout`](crate::UnbindReason::ConnectTimeout) (EventMachine's
    /// `pending_connect_timeout=`). Default 20 s; `Duration::ZERO` waits for
    /// the operating system's own connect timeout (minutes). Meaningful from
    /// `post_init` or right after `connect` returns; it has no effect on an
    /// accepted or already connected connection.
    pub fn set_pending_connect_timeout(&self, timeout: Duration) {
        let state = self.state();
        state.update_timing(|t| t.connect_timeout = timeout);
        state.wake();
    }

    /// The pending-connect timeout (default 20 s; zero when off).
    pub fn pending_connect_timeout(&self) -> Duration {
        self.state().connect_timeout()
    }

    /// Stops reading from the socket (EventMachine's `pause`): no
    /// `receive_data` runs until [`resume`](Conn::resume), and data the peer
    /// sends waits in the kernel, so TCP itself slows the peer down.
    ///
    /// Unlike EventMachine, pause holds reads only: queued output still
    /// leaves, so a reply being written, `close_connection_after_writing`,
    /// and a flush at a peer's half-close all complete. A paused connection
    /// also notices the peer's close only once resumed. The inactivity
    /// timeout keeps running. A no-op when already paused or closed.
    ///
    /// A no-op on a watched descriptor ([`watch`](crate::watch)), where em
    /// reads nothing (EventMachine raises): switch its notifications off
    /// with [`set_notify_readable`](Conn::set_notify_readable) instead.
    pub fn pause(&self) {
        let state = self.state();
        if state.watch().only {
            tracing::debug!(conn = %self.id(), "pause on a watched descriptor; ignored (switch its notifications off instead)");
            return;
        }
        state.paused.set(true);
    }

    /// Starts reading again after [`pause`](Conn::pause); data that waited in
    /// the kernel is delivered at once. A no-op unless paused.
    pub fn resume(&self) {
        let state = self.state();
        if state.paused.replace(false) {
            state.wake();
        }
    }

    /// Whether reading is paused by [`pause`](Conn::pause).
    pub fn is_paused(&self) -> bool {
        self.state().paused.get()
    }

    /// Whether the peer is behind: true from the `send_data` that queued
    /// more than the high watermark until the queue drains to the low
    /// watermark (when `outbound_drained` runs). A producer checks it after
    /// each `send_data` and waits for
    /// [`outbound_drained`](crate::Connection::outbound_drained) while it is true.
    pub fn is_above_high_watermark(&self) -> bool {
        self.state().above_high.get()
    }

    /// Sets this connection's outbound watermarks (defaults from
    /// [`Builder::outbound_watermarks`](crate::Builder::outbound_watermarks),
    /// 1 MiB and 256 KiB). Errors with `is_invalid_argument()` unless
    /// `low <= high <= max_outbound`; nothing changes then.
    pub fn set_outbound_watermarks(&self, high: usize, low: usize) -> Result<()> {
        let state = self.state();
        if low > high {
            return Err(Error::invalid_argument(
                "set_outbound_watermarks",
                "the low mark must not exceed the high mark",
            ));
        }
        if high > state.max_outbound.get() {
            return Err(Error::invalid_argument(
                "set_outbound_watermarks",
                "the high mark must not exceed max_outbound",
            ));
        }
        state.high_watermark.set(high);
        state.low_watermark.set(low);
        Ok(())
    }

    /// The outbound watermarks `(high, low)`.
    pub fn outbound_watermarks(&self) -> (usize, usize) {
        let state = self.state();
        (state.high_watermark.get(), state.low_watermark.get())
    }

    /// Sets this connection's hard cap on queued output (default from
    /// [`Builder::max_outbound`](crate::Builder::max_outbound), 8 MiB): a
    /// `send_data` that would queue more than `max` bytes refuses the frame
    /// (`try_send_data` errors with `is_outbound_overflow()`) and closes the
    /// connection, which ends with [`UnbindReason::OutboundOverflow`](crate::UnbindReason::OutboundOverflow).
    /// Errors with `is_invalid_argument()` if `max` is below the high
    /// watermark; nothing changes then.
    pub fn set_max_outbound(&self, max: usize) -> Result<()> {
        let state = self.state();
        if max < state.high_watermark.get() {
            return Err(Error::invalid_argument(
                "set_max_outbound",
                "max_outbound must be at least the high watermark",
            ));
        }
        state.max_outbound.set(max);
        Ok(())
    }

    /// The hard cap on queued output.
    pub fn max_outbound(&self) -> usize {
        self.state().max_outbound.get()
    }

    /// Connects this connection again, to `addr`, with the same handler
    /// object (EventMachine's `reconnect`): `post_init` does not run
    /// again; `connection_completed` runs when the new connect succeeds, and
    /// a failure ends in another `unbind(ConnectFailed(..))`, from which the
    /// handler may reconnect again. The handle, its id and its options
    /// (timeouts, watermarks) stay the same; queued output, pause and the
    /// addresses are reset. Works for accepted connections too (the new
    /// connection is then a client).
    ///
    /// Call it from the handler's `unbind`, the one moment the handler is
    /// between two sockets. Errors: `is_closed()` when called anywhere else
    /// (on an open connection EventMachine ignores the call; em says so),
    /// `is_stopping()` when the unbind is the reactor's stop, and
    /// `is_unsupported()` on a watched descriptor ([`watch`](crate::watch))
    /// or a datagram socket, which have nothing to connect.
    pub fn reconnect(&self, addr: impl Into<Endpoint>) -> Result<()> {
        self.reconnect_after(Duration::ZERO, addr)
    }

    /// [`reconnect`](Conn::reconnect) after waiting `delay` (for a backoff,
    /// see [`Backoff`](crate::Backoff)). The pending-connect timeout counts
    /// from the end of the delay. The connection counts in
    /// [`connection_count`](crate::connection_count) while it waits.
    pub fn reconnect_after(&self, delay: Duration, addr: impl Into<Endpoint>) -> Result<()> {
        let state = self.state();
        if !state.unbinding.get() {
            return Err(Error::closed());
        }
        if state.watch().only {
            return Err(Error::unsupported(
                "reconnect",
                "a watched descriptor has nothing to connect",
            ));
        }
        if state.datagram.get() {
            return Err(Error::unsupported(
                "reconnect",
                "a datagram socket connects to no one; open another one instead",
            ));
        }
        Core::current_accepting("reconnect")?;
        let endpoint = addr.into();
        let connecting: Connecting = if delay.is_zero() {
            endpoint.connect(None)
        } else {
            Box::pin(async move {
                tokio::time::sleep(delay).await;
                endpoint.connect(None).await
            })
        };
        state.set_reconnect(connecting, delay);
        Ok(())
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
