//! The engine behind every connection: one hand-written future per
//! connection that completes a client's connect, reads into the reactor-wide
//! buffer, decodes, dispatches callbacks, flushes queued output in one write,
//! and ends with exactly one `unbind`.

use std::cell::Cell;
use std::future::Future;
use std::io;
use std::pin::Pin;
use std::rc::Rc;
use std::task::{Context, Poll};

use bytes::{Buf, BufMut, BytesMut};
use tokio::io::AsyncWrite;
use tokio::net::TcpStream;
use tokio::time::{Instant, Sleep};
use tokio_util::codec::Decoder;

use crate::connection::{Close, Conn, Connection, UnbindReason};
use crate::panic;
use crate::reactor::Core;

/// `outbound_drained` calls per poll before the driver yields.
const DRAINED_PER_POLL: usize = 16;
/// An emptied outbound buffer larger than this is freed instead of kept.
const KEEP_OUTBOUND: usize = 64 * 1024;
/// Reads per poll before the driver yields to other connections.
const READS_PER_POLL: usize = 16;
/// Reads per poll that fill the whole request (so more data is waiting)
/// before the driver yields: yielding after each lets other connections run
/// and lets the next read gather a full buffer again.
const FULL_READS_PER_POLL: usize = 1;
/// The read sizes a connection moves between: it starts at the first, steps
/// up when a read fills the request and down when reads come back small.
/// Above 16 KiB they are multiples of 65,483 bytes, the TCP segment size on
/// loopback: reading (and so echoing) exactly 64 KiB sends a full segment
/// plus a 53-byte one, which halves bulk throughput there.
const READ_SIZES: [usize; 4] = [16 * 1024, 65_483, 2 * 65_483, 4 * 65_483];
/// While more than this much output waits for the socket, the connection
/// stops reading: the peer that does not read its replies is slowed by TCP
/// itself instead of growing our buffer.
const READ_PAUSE_OUTBOUND: usize = 1 << 20;
/// The capacity of the reactor-wide read buffer: room for a few of the
/// largest reads, so that frames a handler keeps pin it only briefly.
const SHARED_READ_BUF: usize = 1 << 20;

thread_local! {
    /// The read buffer shared by every connection of the reactor on this
    /// thread. A connection keeps only an unfinished frame of its own.
    static READ_BUF: Cell<BytesMut> = Cell::new(BytesMut::new());
}

/// Frees the reactor-wide read buffer (when the reactor stops).
pub(crate) fn release_read_buffer() {
    READ_BUF.take();
}

/// A client's connect (with name resolution) in progress.
pub(crate) type Connecting = Pin<Box<dyn Future<Output = io::Result<TcpStream>>>>;

/// How a connection's socket starts.
pub(crate) enum Socket {
    Accepted(TcpStream),
    Connecting(Connecting),
}

enum Io {
    /// Connecting since the instant.
    Connecting(Connecting, Instant),
    Open(TcpStream),
    Done,
}

/// Drives one connection until it ends.
pub(crate) struct Driver<H: Connection> {
    handler: H,
    conn: Conn<H::Codec>,
    core: Rc<Core>,
    io: Io,
    /// An unfinished frame, kept between reads. Boxed, like the rare fields
    /// below, to keep an idle connection small.
    pending: Option<Box<BytesMut>>,
    /// End of stream was read; only output still queued is flushed.
    eof: bool,
    /// Index into `READ_SIZES`.
    read_step: u8,
    /// Why the connection must end, decided outside a poll (a panic).
    fail: Option<Box<UnbindReason>>,
    unbound: bool,
    /// `restart` ran: wake the task once more instead of ending.
    restart_wake: bool,
    /// Bytes moved (read or written) since the last look at the timeouts.
    active: bool,
    /// The timer of the pending-connect or inactivity timeout, made when
    /// one applies. It may fire early (activity moved the deadline on
    /// without resetting it) and is then re-armed.
    timer: Option<Pin<Box<Sleep>>>,
    /// The connection's span; `None` when tracing does not want it.
    span: Option<Box<tracing::Span>>,
}

// The handler is never pinned: the driver only hands out `&mut H`.
impl<H: Connection> Unpin for Driver<H> {}

impl<H: Connection> Driver<H> {
    /// Binds `handler` to `conn`, registers the connection, runs `post_init`
    /// and spawns the driver on the reactor.
    pub(crate) fn start(handler: H, conn: Conn<H::Codec>, core: Rc<Core>, socket: Socket) {
        let span = match conn.peer_addr() {
            Some(peer) => tracing::debug_span!("conn", id = conn.id().get(), %peer),
            None => {
                tracing::debug_span!("conn", id = conn.id().get(), peer = tracing::field::Empty)
            }
        };
        core.register_conn(conn.id(), conn.control());
        {
            let state = conn.state();
            state.high_watermark.set(core.config.high_watermark);
            state.low_watermark.set(core.config.low_watermark);
            state.max_outbound.set(core.config.max_outbound);
        }
        let io = match socket {
            Socket::Accepted(s) => Io::Open(s),
            Socket::Connecting(c) => Io::Connecting(c, Instant::now()),
        };
        let mut driver = Driver {
            handler,
            conn,
            core,
            io,
            pending: None,
            eof: false,
            read_step: 0,
            fail: None,
            unbound: false,
            restart_wake: false,
            active: false,
            timer: None,
            span: (!span.is_disabled()).then(|| Box::new(span.clone())),
        };
        {
            let _entered = span.entered();
            tracing::debug!("bound");
            driver.call("post_init", |h, c| h.post_init(c));
        }
        tokio::task::spawn_local(driver);
    }

    /// Runs a callback, containing a panic: the connection then ends with
    /// `UnbindReason::Panicked`.
    fn call(&mut self, name: &'static str, f: impl FnOnce(&mut H, &Conn<H::Codec>)) {
        let (handler, conn) = (&mut self.handler, &self.conn);
        if let Err(message) = panic::catch(name, Some(conn.id()), || f(handler, conn)) {
            self.fail
                .get_or_insert(Box::new(UnbindReason::Panicked(message)));
        }
    }

    /// Why the connection must end now, if it must.
    fn must_end(&mut self) -> Option<UnbindReason> {
        if let Some(reason) = self.fail.take() {
            return Some(*reason);
        }
        if self.core.stopping() {
            let state = self.conn.state();
            let flushing = self.core.in_grace()
                && matches!(self.io, Io::Open(_))
                && state.close.get() != Close::Now
                && !state.outbound.borrow().is_empty();
            if !flushing {
                return Some(UnbindReason::ReactorStopped);
            }
        }
        if self.conn.state().close.get() == Close::Now {
            if self.conn.state().overflowed.get() {
                return Some(UnbindReason::OutboundOverflow);
            }
            return Some(UnbindReason::Closed);
        }
        None
    }

    /// Whether to stop delivering frames.
    fn interrupted(&self) -> bool {
        self.fail.is_some() || self.core.stopping() || self.conn.state().close.get() != Close::Open
    }

    fn step(&mut self, cx: &mut Context<'_>) -> Poll<()> {
        self.conn.state().set_waker(cx.waker());
        if let Some(reason) = self.must_end() {
            return self.finish(reason);
        }
        if let Io::Connecting(connecting, _) = &mut self.io {
            match connecting.as_mut().poll(cx) {
                Poll::Pending => return Poll::Pending,
                Poll::Ready(Err(e)) => return self.finish(UnbindReason::ConnectFailed(e)),
                Poll::Ready(Ok(stream)) => {
                    self.connected(stream);
                    if let Some(reason) = self.must_end() {
                        return self.finish(reason);
                    }
                }
            }
        }
        // Reading pauses while output backs up; once the output drains, read
        // again at once: the readiness that arrived meanwhile was consumed.
        let read_paused = self.conn.state().outbound.borrow().len() > READ_PAUSE_OUTBOUND;
        let state = self.conn.state();
        if !self.eof
            && state.close.get() == Close::Open
            && !state.paused.get()
            && !self.core.stopping()
        {
            if let Err(reason) = self.read(cx) {
                return self.finish(reason);
            }
            if let Some(reason) = self.must_end() {
                return self.finish(reason);
            }
        }
        let mut flushed = self.flush(cx);
        // `outbound_drained` may queue more, which may leave at once and
        // drain the queue again: a producer keeps going as fast as the
        // socket takes its output, yielding after a few rounds.
        let mut rounds = 0;
        while flushed.is_ok() && !self.core.stopping() && self.drained() {
            if let Some(reason) = self.must_end() {
                return self.finish(reason);
            }
            flushed = self.flush(cx);
            rounds += 1;
            if rounds == DRAINED_PER_POLL {
                cx.waker().wake_by_ref();
                break;
            }
        }
        if self.core.stopping() {
            // The shutdown grace: flushing only.
            return match flushed {
                Ok(false) => Poll::Pending,
                Ok(true) => self.finish(UnbindReason::ReactorStopped),
                Err(e) => {
                    tracing::debug!(error = %e, "write during the shutdown grace failed");
                    self.finish(UnbindReason::ReactorStopped)
                }
            };
        }
        match flushed {
            Err(e) if self.eof => {
                tracing::debug!(error = %e, "write after end of stream failed");
                self.finish(UnbindReason::PeerClosed)
            }
            Err(e) => self.finish(UnbindReason::Io(e)),
            Ok(false) => Poll::Pending,
            Ok(true) if self.eof => self.finish(UnbindReason::PeerClosed),
            Ok(true) if self.conn.state().close.get() == Close::AfterWriting => {
                if let Io::Open(stream) = &mut self.io {
                    // Send FIN after the last byte; the socket closes below.
                    let _ = Pin::new(stream).poll_shutdown(cx);
                }
                self.finish(UnbindReason::Closed)
            }
            Ok(true) => {
                if read_paused {
                    cx.waker().wake_by_ref();
                }
                Poll::Pending
            }
        }
    }

    fn connected(&mut self, stream: TcpStream) {
        if let Err(e) = stream.set_nodelay(true) {
            tracing::debug!(error = %e, "cannot set TCP_NODELAY");
        }
        let state = self.conn.state();
        let peer = stream.peer_addr().ok();
        state.peer.set(peer);
        state.local.set(stream.local_addr().ok());
        if let Some(peer) = peer {
            tracing::Span::current().record("peer", tracing::field::display(peer));
        }
        tracing::debug!("connected");
        self.io = Io::Open(stream);
        self.call("connection_completed", |h, c| h.connection_completed(c));
    }

    /// Reads, dispatches and writes the replies, read by read, until the
    /// socket has nothing more, the budget is spent (the task then yields),
    /// output backs up, or the connection must stop.
    fn read(&mut self, cx: &mut Context<'_>) -> Result<(), UnbindReason> {
        let mut full_reads = 0;
        for _ in 0..READS_PER_POLL {
            if full_reads == FULL_READS_PER_POLL {
                break;
            }
            if self.conn.state().outbound.borrow().len() > READ_PAUSE_OUTBOUND {
                // Resumed by write readiness, once the peer reads.
                return Ok(());
            }
            let Io::Open(stream) = &mut self.io else {
                return Ok(());
            };
            let read_size = READ_SIZES[usize::from(self.read_step)];
            let mut buf = READ_BUF.take();
            if buf.capacity() < read_size && !buf.try_reclaim(read_size) {
                // Fresh, or its allocation is still pinned by frames a
                // handler kept: start a new one, never grow in place.
                buf = BytesMut::with_capacity(SHARED_READ_BUF);
            }
            let polled = {
                let mut limited = (&mut buf).limit(read_size);
                tokio_util::io::poll_read_buf(Pin::new(stream), cx, &mut limited)
            };
            let result = match polled {
                Poll::Pending => {
                    READ_BUF.set(buf);
                    return Ok(());
                }
                Poll::Ready(Err(e)) => Err(UnbindReason::Io(e)),
                Poll::Ready(Ok(0)) => {
                    tracing::debug!("end of stream");
                    self.eof = true;
                    self.dispatch(&mut buf, true)
                }
                Poll::Ready(Ok(n)) => {
                    self.active = true;
                    if n == read_size {
                        full_reads += 1;
                    }
                    self.adapt_read_size(n, read_size);
                    self.dispatch(&mut buf, false)
                }
            };
            // Back to the start of the allocation when no frame holds it, so
            // that reads keep touching the same few pages.
            let _ = buf.try_reclaim(SHARED_READ_BUF);
            READ_BUF.set(buf);
            result?;
            if self.eof || self.interrupted() {
                return Ok(());
            }
            // Send what this read produced before reading more, so that
            // bulk data flows through instead of piling up.
            self.flush(cx).map_err(UnbindReason::Io)?;
        }
        // Budget spent with data still waiting: let other connections run.
        cx.waker().wake_by_ref();
        Ok(())
    }

    fn adapt_read_size(&mut self, got: usize, asked: usize) {
        let step = usize::from(self.read_step);
        if got == asked && step + 1 < READ_SIZES.len() {
            self.read_step += 1;
        } else if step > 0 && got < READ_SIZES[step - 1] / 2 {
            self.read_step -= 1;
        }
    }

    /// Decodes what `buf` (just read) completes and delivers each frame.
    /// Leaves `buf` empty: an unfinished frame moves to `self.pending`.
    fn dispatch(&mut self, buf: &mut BytesMut, eof: bool) -> Result<(), UnbindReason> {
        let mut pending = self.pending.take().unwrap_or_default();
        let in_pending = !pending.is_empty();
        let src: &mut BytesMut = if in_pending {
            pending.extend_from_slice(buf);
            buf.clear();
            &mut pending
        } else {
            buf
        };
        let result = loop {
            if self.interrupted() {
                break Ok(());
            }
            let decoded = {
                let mut codec = self.conn.codec().borrow_mut();
                if eof {
                    codec.decode_eof(src)
                } else {
                    codec.decode(src)
                }
            };
            match decoded {
                Ok(Some(frame)) => self.call("receive_data", |h, c| h.receive_data(c, frame)),
                Ok(None) => break Ok(()),
                Err(e) => break Err(UnbindReason::Codec(e.into())),
            }
        };
        if in_pending {
            if !pending.is_empty() {
                self.pending = Some(pending);
            }
        } else if !buf.is_empty() {
            // Copy the unfinished frame out, so that the shared buffer is
            // never pinned by an idle connection.
            self.pending = Some(Box::new(BytesMut::from(&buf[..])));
            buf.clear();
        }
        result
    }

    /// Writes queued output. `Ok(true)` once everything has left.
    fn flush(&mut self, cx: &mut Context<'_>) -> io::Result<bool> {
        let Io::Open(stream) = &mut self.io else {
            return Ok(false);
        };
        let mut out = self.conn.state().outbound.borrow_mut();
        while !out.is_empty() {
            match Pin::new(&mut *stream).poll_write(cx, &out) {
                Poll::Ready(Ok(0)) => return Err(io::ErrorKind::WriteZero.into()),
                Poll::Ready(Ok(n)) => {
                    self.active = true;
                    out.advance(n);
                }
                Poll::Ready(Err(e)) => return Err(e),
                Poll::Pending => return Ok(false),
            }
        }
        if out.capacity() > KEEP_OUTBOUND {
            *out = BytesMut::new();
        } else {
            out.clear();
        }
        Ok(true)
    }

    /// Runs `outbound_drained` if the queue, having passed the high
    /// watermark, is now at the low one or below. Whether it ran.
    fn drained(&mut self) -> bool {
        let state = self.conn.state();
        if !state.above_high.get() || state.outbound.borrow().len() > state.low_watermark.get() {
            return false;
        }
        state.above_high.set(false);
        self.call("outbound_drained", |h, c| h.outbound_drained(c));
        true
    }

    /// Checks the pending-connect or inactivity timeout, arming its timer
    /// (and so registering for its wake-up); the reason to end if it passed.
    fn poll_timeouts(&mut self, cx: &mut Context<'_>) -> Option<UnbindReason> {
        if self.core.stopping() {
            // Only the shutdown grace ends a connection now.
            self.timer = None;
            return None;
        }
        let state = self.conn.state();
        let (deadline, reason) = match &self.io {
            Io::Connecting(_, started) => {
                let timeout = state.connect_timeout();
                if timeout.is_zero() {
                    self.timer = None;
                    return None;
                }
                (*started + timeout, UnbindReason::ConnectTimeout)
            }
            Io::Open(_) => {
                let timeout = state.inactivity();
                if timeout.is_zero() {
                    self.active = false;
                    self.timer = None;
                    return None;
                }
                if std::mem::take(&mut self.active) {
                    state.set_last_activity(Instant::now());
                }
                (
                    state.last_activity() + timeout,
                    UnbindReason::InactivityTimeout,
                )
            }
            Io::Done => return None,
        };
        let timer = self
            .timer
            .get_or_insert_with(|| Box::pin(tokio::time::sleep_until(deadline)));
        if deadline < timer.deadline() {
            timer.as_mut().reset(deadline);
        }
        loop {
            match timer.as_mut().poll(cx) {
                Poll::Pending => return None,
                Poll::Ready(()) if timer.deadline() >= deadline => return Some(reason),
                // Fired early: activity moved the deadline on since it was
                // armed. One reset per timeout period, not per message.
                Poll::Ready(()) => timer.as_mut().reset(deadline),
            }
        }
    }

    /// Closes the socket and runs `unbind` (once).
    fn finish(&mut self, reason: UnbindReason) -> Poll<()> {
        self.io = Io::Done;
        let state = self.conn.state();
        state.ended.set(true);
        *state.outbound.borrow_mut() = BytesMut::new();
        state.drop_waker();
        if let Some(server) = state.server.take() {
            server.connection_ended();
        }
        self.pending = None;
        self.timer = None;
        if reason.is_error() {
            tracing::warn!(%reason, "connection ended");
        } else {
            tracing::debug!(%reason, "connection ended");
        }
        if !self.unbound {
            self.unbound = true;
            self.conn.state().unbinding.set(true);
            self.call("unbind", |h, c| h.unbind(c, reason));
            self.conn.state().unbinding.set(false);
            let unbind_panicked = self.fail.take().is_some();
            if let Some((connecting, delay)) = self.conn.state().reconnect.take().map(|b| *b) {
                if !unbind_panicked && !self.core.stopping() {
                    self.restart(connecting, delay);
                    return Poll::Pending;
                }
            }
        }
        Poll::Ready(())
    }

    /// Starts over as a client connecting with `connecting` (`reconnect`
    /// from `unbind`): the handler and the handle stay, the rest is reset.
    /// The caller returns `Pending` after it; the driver is woken to poll the
    /// connect.
    fn restart(&mut self, connecting: Connecting, delay: std::time::Duration) {
        let state = self.conn.state();
        state.ended.set(false);
        state.close.set(Close::Open);
        state.overflowed.set(false);
        state.above_high.set(false);
        state.paused.set(false);
        state.peer.set(None);
        state.local.set(None);
        // The pending-connect timeout counts from the end of the delay.
        self.io = Io::Connecting(connecting, Instant::now() + delay);
        self.eof = false;
        self.read_step = 0;
        self.unbound = false;
        self.active = false;
        tracing::debug!("reconnecting");
        // Poll the new connect on the next turn (the waker was dropped).
        self.restart_wake = true;
    }
}

impl<H: Connection> Future for Driver<H> {
    type Output = ();

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        let this = self.get_mut();
        let span = this.span.take();
        let entered = span.as_deref().map(tracing::Span::enter);
        this.conn.state().polling.set(true);
        let mut poll = this.step(cx);
        if std::mem::take(&mut this.restart_wake) {
            cx.waker().wake_by_ref();
        }
        if poll.is_pending() {
            if let Some(reason) = this.poll_timeouts(cx) {
                poll = this.finish(reason);
            }
        }
        this.conn.state().polling.set(false);
        drop(entered);
        this.span = span;
        poll
    }
}

impl<H: Connection> Drop for Driver<H> {
    fn drop(&mut self) {
        if !self.unbound {
            // Dropped unfinished: the reactor's LocalSet went away.
            let span = self.span.take();
            let _entered = span.as_deref().map(tracing::Span::enter);
            let _ = self.finish(UnbindReason::ReactorStopped);
        }
        self.core.deregister_conn(self.conn.id());
    }
}
