//! The engine behind every connection: one hand-written future per
//! connection, in two layers.
//!
//! * **The lifecycle** (this file), written once for every transport:
//!   `post_init`, a client's connect and its pending-connect timeout,
//!   `connection_completed`, the inactivity timeout, panics in callbacks,
//!   close requests, the reactor's stop and its shutdown grace, a child
//!   process's exit (waited for, never blocking, before its `unbind`),
//!   exactly one `unbind`, and `reconnect` from it.
//! * **A pump** ([`Pump`]) beneath it, which moves the data while the
//!   connection is open: [`stream::StreamPump`] for byte streams (read into
//!   the reactor-wide buffer, decode, deliver, flush),
//!   [`datagram::DatagramPump`] for UDP sockets (one frame per datagram,
//!   each reply to its sender), [`watch::WatchPump`] for watched
//!   descriptors (readiness only). A kind adds a pump, not a second driver.

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::rc::Rc;
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::time::{Instant, Sleep};

use crate::net::conn::{Close, Conn};
use crate::net::connection::{Connection, UnbindReason};
use crate::net::transport::{BoxTransport, ChildExit};
use crate::reactor::core::Core;
use crate::reactor::panic;
use crate::reactor::stats;

pub(crate) mod datagram;
pub(crate) mod splice;
pub(crate) mod stream;
pub(crate) mod watch;

/// A client's connect (with any name resolution) in progress.
pub(crate) type Connecting = Pin<Box<dyn Future<Output = io::Result<BoxTransport>>>>;

/// How a connection's transport starts.
pub(crate) enum Start {
    /// Accepted, attached or paired: open already.
    Open(BoxTransport),
    /// A client: connecting.
    Connecting(Connecting),
}

/// What the lifecycle gives a pump while it moves data: the handler and its
/// connection, the reactor, and the way to run a callback.
pub(crate) struct Session<'a, H: Connection> {
    pub(crate) handler: &'a mut H,
    pub(crate) conn: &'a Conn<H::Codec>,
    pub(crate) core: &'a Core,
    fail: &'a mut Option<Box<UnbindReason>>,
}

impl<H: Connection> Session<'_, H> {
    /// Runs a callback, containing a panic: the connection then ends with
    /// `UnbindReason::Panicked`.
    pub(crate) fn call(&mut self, name: &'static str, f: impl FnOnce(&mut H, &Conn<H::Codec>)) {
        let (handler, conn) = (&mut *self.handler, self.conn);
        if let Err(message) = panic::catch(name, Some(conn.id()), || f(handler, conn)) {
            self.fail
                .get_or_insert(Box::new(UnbindReason::Panicked(message)));
        }
    }

    /// Whether to stop delivering frames: a callback panicked, the reactor
    /// stops, or a close was asked for.
    pub(crate) fn interrupted(&self) -> bool {
        self.fail.is_some() || self.core.stopping() || self.conn.state().close.get() != Close::Open
    }

    /// Why the connection must end now, if it must (see [`Driver::must_end`]).
    pub(crate) fn must_end(&mut self) -> Option<UnbindReason> {
        must_end(self.fail, self.core, self.conn.state())
    }

    /// Runs `outbound_drained` if the queue, having passed the high
    /// watermark, is now at the low one or below. Whether it ran.
    pub(crate) fn drained(&mut self) -> bool {
        let state = self.conn.state();
        if !state.above_high.get() || state.outbound.borrow().len() > state.low_watermark.get() {
            return false;
        }
        state.above_high.set(false);
        state.wake_output_waiters();
        self.call("outbound_drained", |h, c| h.outbound_drained(c));
        true
    }
}

/// How data moves for one connection while it is open, beneath the
/// lifecycle.
pub(crate) trait Pump<H: Connection>: Default + Unpin + 'static {
    /// Moves data: reads and delivers, writes queued output. `Ready` with
    /// the reason when the connection must end; `Pending` once parked (the
    /// transport or a waker will wake the driver).
    fn poll_io(&mut self, s: &mut Session<'_, H>, cx: &mut Context<'_>) -> Poll<UnbindReason>;

    /// The shutdown grace: only writes what is queued; `Ready` once it has
    /// left or failed.
    fn poll_flush_only(&mut self, s: &mut Session<'_, H>, cx: &mut Context<'_>) -> Poll<()>;

    /// Whether bytes moved since the last call (for the inactivity timeout).
    fn take_activity(&mut self) -> bool;

    /// Forgets everything (the transport is gone).
    fn reset(&mut self);
}

/// How far away a deadline that does not fit an `Instant` is put: 30 years,
/// as tokio does, which means never.
const FAR_FUTURE: Duration = Duration::from_secs(86_400 * 365 * 30);

/// `base + d`, saturated: a timeout of `Duration::MAX` means never, not an
/// overflow.
fn saturating_deadline(base: Instant, d: Duration) -> Instant {
    base.checked_add(d)
        .unwrap_or_else(|| base + FAR_FUTURE.min(d))
}

/// Where the connection is in its life.
enum Phase {
    /// Connecting since the instant.
    Connecting(Connecting, Instant),
    Open,
    /// Ended, its pipes closed, waiting for its child process to exit
    /// (`popen`) before `unbind` with the reason.
    Exiting(Box<(ChildExit, UnbindReason)>),
    Done,
}

/// Why the connection must end now, if it must: a callback panicked, the
/// reactor releases its connections (unless this one still flushes during
/// the shutdown grace), or a close was asked for.
#[inline]
fn must_end(
    fail: &mut Option<Box<UnbindReason>>,
    core: &Core,
    state: &crate::net::conn::ConnState,
) -> Option<UnbindReason> {
    // The common case, checked on every step: nothing to end.
    if fail.is_none()
        && !core.stopping()
        && matches!(state.close.get(), Close::Open | Close::AfterWriting)
    {
        return None;
    }
    must_end_now(fail, core, state)
}

/// [`must_end`] past its common case.
#[cold]
fn must_end_now(
    fail: &mut Option<Box<UnbindReason>>,
    core: &Core,
    state: &crate::net::conn::ConnState,
) -> Option<UnbindReason> {
    if let Some(reason) = fail.take() {
        return Some(*reason);
    }
    if core.stopping() {
        let flushing = core.in_grace()
            && state.transport.borrow().is_some()
            && matches!(state.close.get(), Close::Open | Close::AfterWriting)
            && (!state.outbound.borrow().is_empty() || crate::net::proxy::piped(state) > 0);
        if !flushing {
            return Some(UnbindReason::ReactorStopped);
        }
    }
    match state.close.get() {
        Close::Open | Close::AfterWriting => None,
        Close::Now => Some(UnbindReason::Closed),
        Close::Overflow => Some(UnbindReason::OutboundOverflow),
        Close::Detach => Some(UnbindReason::Detached),
        Close::Failed => Some(UnbindReason::Panicked(state.take_failure())),
    }
}

/// Drives one connection until it ends: the lifecycle, over pump `P`.
pub(crate) struct Driver<H: Connection, P> {
    handler: H,
    conn: Conn<H::Codec>,
    core: Rc<Core>,
    phase: Phase,
    pump: P,
    /// Why the connection must end, decided outside a poll (a panic).
    fail: Option<Box<UnbindReason>>,
    unbound: bool,
    /// `restart` ran, or a child's exit is to be waited for: wake the task
    /// once more instead of ending.
    wake_again: bool,
    /// The timer of the pending-connect or inactivity timeout, made when
    /// one applies. It may fire early (activity moved the deadline on
    /// without resetting it) and is then re-armed.
    timer: Option<Pin<Box<Sleep>>>,
    /// The connection's span; `None` when tracing does not want it.
    span: Option<Box<tracing::Span>>,
}

// The handler is never pinned: the driver only hands out `&mut H`.
impl<H: Connection, P: Unpin> Unpin for Driver<H, P> {}

impl<H: Connection, P: Pump<H>> Driver<H, P> {
    /// Binds `handler` to `conn`, registers the connection, runs `post_init`
    /// and spawns the driver on the reactor.
    pub(crate) fn start(handler: H, conn: Conn<H::Codec>, core: Rc<Core>, start: Start) {
        let span = match conn.peer_addr() {
            Some(peer) => tracing::debug_span!("conn", id = conn.id().get(), %peer),
            None => {
                tracing::debug_span!("conn", id = conn.id().get(), peer = tracing::field::Empty)
            }
        };
        core.register_conn(conn.id(), conn.member());
        {
            let state = conn.state();
            state.high_watermark.set(core.config.high_watermark);
            state.low_watermark.set(core.config.low_watermark);
            state.max_outbound.set(core.config.max_outbound);
        }
        let phase = match start {
            Start::Open(transport) => {
                conn.state().install(transport);
                Phase::Open
            }
            Start::Connecting(c) => Phase::Connecting(c, Instant::now()),
        };
        let mut driver = Driver {
            handler,
            conn,
            core,
            phase,
            pump: P::default(),
            fail: None,
            unbound: false,
            wake_again: false,
            timer: None,
            span: (!span.is_disabled()).then(|| Box::new(span.clone())),
        };
        {
            let _entered = span.entered();
            tracing::debug!("bound");
            driver.session().call("post_init", |h, c| h.post_init(c));
        }
        tokio::task::spawn_local(driver);
    }

    fn session(&mut self) -> Session<'_, H> {
        self.pump_and_session().1
    }

    /// The pump, and the session it moves data in (disjoint borrows).
    fn pump_and_session(&mut self) -> (&mut P, Session<'_, H>) {
        let session = Session {
            handler: &mut self.handler,
            conn: &self.conn,
            core: &self.core,
            fail: &mut self.fail,
        };
        (&mut self.pump, session)
    }

    fn must_end(&mut self) -> Option<UnbindReason> {
        must_end(&mut self.fail, &self.core, self.conn.state())
    }

    fn step(&mut self, cx: &mut Context<'_>) -> Poll<()> {
        self.conn.state().set_waker(cx.waker());
        if self.core.stopping() && !self.core.releasing() {
            // The reactor stops: no callback of ours runs any more, and the
            // teardown wakes us once the shutdown hooks have run.
            return Poll::Pending;
        }
        if let Phase::Exiting(_) = self.phase {
            return self.poll_exit(cx);
        }
        if let Some(reason) = self.must_end() {
            return self.finish(reason);
        }
        if let Phase::Connecting(connecting, _) = &mut self.phase {
            match connecting.as_mut().poll(cx) {
                Poll::Pending => return Poll::Pending,
                Poll::Ready(Err(e)) => return self.finish(UnbindReason::ConnectFailed(e)),
                Poll::Ready(Ok(transport)) => {
                    self.connected(transport);
                    if let Some(reason) = self.must_end() {
                        return self.finish(reason);
                    }
                }
            }
        }
        if self.core.stopping() {
            // The shutdown grace: flushing only.
            let (pump, mut session) = self.pump_and_session();
            return match pump.poll_flush_only(&mut session, cx) {
                Poll::Pending => Poll::Pending,
                Poll::Ready(()) => self.finish(UnbindReason::ReactorStopped),
            };
        }
        let (pump, mut session) = self.pump_and_session();
        match pump.poll_io(&mut session, cx) {
            Poll::Pending => Poll::Pending,
            Poll::Ready(reason) => self.finish(reason),
        }
    }

    fn connected(&mut self, transport: BoxTransport) {
        let state = self.conn.state();
        let peer = transport.peer_addr();
        if let Some(peer) = &peer {
            tracing::Span::current().record("peer", tracing::field::display(peer));
        }
        *state.peer.borrow_mut() = peer;
        state.install(transport);
        tracing::debug!("connected");
        stats::add(&self.core.counters.connected, 1);
        self.phase = Phase::Open;
        self.session()
            .call("connection_completed", |h, c| h.connection_completed(c));
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
        let (deadline, reason) = match &self.phase {
            Phase::Connecting(_, started) => {
                let timeout = state.connect_timeout();
                if timeout.is_zero() {
                    self.timer = None;
                    return None;
                }
                (
                    saturating_deadline(*started, timeout),
                    UnbindReason::ConnectTimeout,
                )
            }
            Phase::Open => {
                let timeout = state.inactivity();
                let active = self.pump.take_activity();
                if timeout.is_zero() {
                    self.timer = None;
                    return None;
                }
                if active {
                    state.set_last_activity(Instant::now());
                }
                (
                    saturating_deadline(state.last_activity(), timeout),
                    UnbindReason::InactivityTimeout,
                )
            }
            Phase::Exiting(_) | Phase::Done => return None,
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

    /// Closes the transport and runs `unbind` (once); for a child process,
    /// once it has exited.
    fn finish(&mut self, reason: UnbindReason) -> Poll<()> {
        let state = self.conn.state();
        state.ended.set(true);
        // Dropped outside the borrow: closing it runs no user code, but
        // keep borrows short on principle.
        let transport = state.transport.borrow_mut().take();
        // A child's pipes close here; the child is waited for.
        if let Some(child) = transport.and_then(|mut t| t.take_child()) {
            // A child that closed its output may take its time to exit; any
            // other ending (a close, an error, a timeout, the stop) ends it
            // after the grace.
            let escalate = !matches!(reason, UnbindReason::PeerClosed) || self.core.stopping();
            let exit = ChildExit::new(child, self.core.config.child_grace, escalate);
            self.phase = Phase::Exiting(Box::new((exit, reason)));
            *state.outbound.borrow_mut() = bytes::BytesMut::new();
            self.pump.reset();
            self.timer = None;
            self.wake_again = true;
            return Poll::Pending;
        }
        self.unbind_now(reason)
    }

    /// Waits for the child of a connection that has ended, then runs its
    /// `unbind`: with [`UnbindReason::Exited`] when the child closed its
    /// output and exited on its own.
    fn poll_exit(&mut self, cx: &mut Context<'_>) -> Poll<()> {
        let Phase::Exiting(exiting) = &mut self.phase else {
            unreachable!("called while exiting")
        };
        if self.core.stopping() {
            exiting.0.escalate();
        }
        let status = std::task::ready!(exiting.0.poll_exit(cx));
        let Phase::Exiting(exiting) = std::mem::replace(&mut self.phase, Phase::Done) else {
            unreachable!("still exiting")
        };
        let (_, mut reason) = *exiting;
        match status {
            Ok(status) => {
                tracing::debug!(%status, "child exited");
                self.conn.state().set_exit_status(status);
                if matches!(reason, UnbindReason::PeerClosed) {
                    reason = UnbindReason::Exited(status);
                }
            }
            Err(e) => {
                let peer = self.conn.peer_addr().map(tracing::field::display);
                tracing::warn!(conn = %self.conn.id(), peer, error = %e, "waiting for the child failed");
            }
        }
        self.unbind_now(reason)
    }

    /// [`finish`](Self::finish) once the transport is gone.
    fn unbind_now(&mut self, reason: UnbindReason) -> Poll<()> {
        self.phase = Phase::Done;
        let state = self.conn.state();
        *state.outbound.borrow_mut() = bytes::BytesMut::new();
        state.drop_waker();
        state.wake_output_waiters();
        crate::net::proxy::connection_ended(state);
        if let Some(server) = state.server.take() {
            server.connection_ended();
        }
        self.pump.reset();
        self.timer = None;
        self.core.counters.ended(reason.ending());
        if reason.is_error() {
            let peer = state.peer.borrow();
            let peer = peer.as_ref().map(|p| p as &dyn std::fmt::Display);
            tracing::warn!(conn = %self.conn.id(), peer = peer.map(tracing::field::display), %reason, "connection ended");
        } else {
            tracing::debug!(%reason, "connection ended");
        }
        if !self.unbound {
            self.unbound = true;
            self.conn.state().unbinding.set(true);
            self.session().call("unbind", |h, c| h.unbind(c, reason));
            self.conn.state().unbinding.set(false);
            let unbind_panicked = self.fail.take().is_some();
            if let Some((connecting, delay)) = self.conn.state().take_reconnect() {
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
    fn restart(&mut self, connecting: Connecting, delay: Duration) {
        let state = self.conn.state();
        state.ended.set(false);
        state.close.set(Close::Open);
        state.above_high.set(false);
        state.paused.set(false);
        state.peer.borrow_mut().take();
        // The pending-connect timeout counts from the end of the delay.
        self.phase = Phase::Connecting(connecting, saturating_deadline(Instant::now(), delay));
        self.unbound = false;
        tracing::debug!("reconnecting");
        // Poll the new connect on the next turn (the waker was dropped).
        self.wake_again = true;
    }
}

impl<H: Connection, P: Pump<H>> Future for Driver<H, P> {
    type Output = ();

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        let this = self.get_mut();
        let span = this.span.take();
        let entered = span.as_deref().map(tracing::Span::enter);
        this.conn.state().polling.set(true);
        let mut poll = this.step(cx);
        if poll.is_pending() {
            if let Some(reason) = this.poll_timeouts(cx) {
                poll = this.finish(reason);
            }
        }
        if std::mem::take(&mut this.wake_again) {
            cx.waker().wake_by_ref();
        }
        this.conn.state().polling.set(false);
        drop(entered);
        this.span = span;
        poll
    }
}

impl<H: Connection, P> Drop for Driver<H, P> {
    fn drop(&mut self) {
        if !self.unbound {
            // Dropped unfinished: the reactor's LocalSet went away. Only
            // `unbind` runs (the pump is dropped with us).
            let span = self.span.take();
            let _entered = span.as_deref().map(tracing::Span::enter);
            let state = self.conn.state();
            state.ended.set(true);
            state.transport.borrow_mut().take();
            state.drop_waker();
            state.wake_output_waiters();
            crate::net::proxy::connection_ended(state);
            if let Some(server) = state.server.take() {
                server.connection_ended();
            }
            self.unbound = true;
            self.core
                .counters
                .ended(UnbindReason::ReactorStopped.ending());
            let (handler, conn) = (&mut self.handler, &self.conn);
            let _ = panic::catch("unbind", Some(conn.id()), || {
                handler.unbind(conn, UnbindReason::ReactorStopped)
            });
        }
        self.core.deregister_conn(self.conn.id());
    }
}
