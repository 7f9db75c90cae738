//! The stream pump's steps for a proxy (see `net/proxy.rs` for the API and
//! the state): a source moves its input to its target, by `splice(2)` or
//! by copying, and a target empties the pipe its source spliced into.
//!
//! **Which way bytes move.** A source splices (socket → the target's pipe)
//! when splicing is on, both connections are plain sockets, it holds no
//! input read earlier and the target has no output queued; otherwise it
//! reads into the reactor's buffer and queues the bytes on the target
//! (copies). A full pipe is waited for, not copied around: the target
//! wakes the source as it empties the pipe. The target always empties its pipe before it
//! writes its queue, and a source only splices while that queue is empty,
//! so bytes leave in the order they were read whichever way each went; a
//! proxy with a length asks each read or splice for no more than what is
//! left of it, so no cut ever falls inside spliced data.
//!
//! **Readiness.** Each connection's task polls only its own socket: the
//! source polls its socket's read readiness and splices into the pipe (no
//! readiness needed: the pipe is non-blocking and its fill is counted); the
//! target polls its socket's write readiness and splices out of the pipe.
//! A splice that finds the socket not ready clears the readiness through
//! tokio's `try_io`, so the next poll parks the task until the socket is
//! ready (see `RawSocket`).

use std::task::{Context, Poll};

use tokio::io::Interest;

use super::{StreamPump, READS_PER_POLL, READ_SIZES, SHARED_READ_BUF};
use crate::net::conn::ConnState;
use crate::net::connection::{Connection, UnbindReason};
use crate::net::driver::splice::Pipe;
use crate::net::driver::Session;
use crate::net::proxy::{self, Link, SOURCE, TARGET};
use crate::reactor::panic;
use crate::reactor::stats;

use bytes::{BufMut, BytesMut};

/// What a proxy step leaves the source's reading loop to do.
enum Step {
    /// Look again: something changed.
    Again,
    /// A full read or a splice: let the target's task run (it was woken)
    /// before moving more.
    Yield,
    /// Nothing more now: the task is registered to be woken.
    Done,
}

/// How a splice into the pipe went.
enum SpliceIn {
    Moved(usize),
    Eof,
    /// The pipe may be full: copy instead, for now.
    Full,
    /// Splicing does not apply (no pipe, not a socket): copy.
    Unavailable,
}

impl StreamPump {
    /// [`read`](StreamPump::read) for a connection with a proxy role: as a
    /// source, moves its input to the target; otherwise (a target only, or
    /// a source whose proxy just ended) reads as usual.
    pub(super) fn proxy_read<H: Connection>(
        &mut self,
        s: &mut Session<'_, H>,
        cx: &mut Context<'_>,
    ) -> Result<(), UnbindReason> {
        for _ in 0..READS_PER_POLL {
            match self.proxy_step(s, cx)? {
                Step::Again => {}
                Step::Yield => break,
                Step::Done => return Ok(()),
            }
        }
        // Budget spent, or bytes handed to the target: let it (and the
        // other connections) run.
        cx.waker().wake_by_ref();
        Ok(())
    }

    fn proxy_step<H: Connection>(
        &mut self,
        s: &mut Session<'_, H>,
        cx: &mut Context<'_>,
    ) -> Result<Step, UnbindReason> {
        let state = s.conn.state();
        let Some(link) = proxy::link(state) else {
            if state.proxy_roles.get() & SOURCE != 0 {
                self.proxy_ended(s)?;
            }
            self.deliver_held(s)?;
            self.read::<true, H>(s, cx)?;
            return Ok(Step::Done);
        };
        if self.eof || state.paused.get() || s.interrupted() {
            return Ok(Step::Done);
        }
        let target = link.target.state();
        if target.ended.get() {
            // P4: the target went away.
            proxy::unlink(state, &link);
            tracing::debug!(target = %target.id, proxied = link.proxied.get(), "proxy target unbound");
            s.call("proxy_target_unbound", |h, c| h.proxy_target_unbound(c));
            return Ok(Step::Again);
        }
        if target.refusal().is_some() {
            // Closing: the input waits until it has ended (its end wakes
            // the waiters), then goes to `receive_data`.
            target.wait_for_output(cx.waker());
            return Ok(Step::Done);
        }
        if let Some(pending) = self.pending.take() {
            // Read before the proxy started and not delivered: it goes
            // first.
            self.held = false;
            self.hand_over(s, &link, &pending)?;
            return Ok(Step::Again);
        }
        if link.over_limit() {
            // P2: the target's output drains first; it wakes us.
            target.wait_for_output(cx.waker());
            return Ok(Step::Done);
        }
        if self.may_splice(s, &link) {
            match self.splice_in(s, cx, &link) {
                Poll::Pending => return Ok(Step::Done),
                Poll::Ready(Err(e)) => return Err(UnbindReason::Io(e)),
                Poll::Ready(Ok(SpliceIn::Eof)) => {
                    tracing::debug!("end of stream");
                    self.eof = true;
                    self.input_done = true;
                    return Ok(Step::Done);
                }
                Poll::Ready(Ok(SpliceIn::Moved(n))) => {
                    self.spliced(s, &link, n);
                    return Ok(Step::Yield);
                }
                Poll::Ready(Ok(SpliceIn::Full)) => {
                    // The target empties the pipe and wakes us: the bytes
                    // stay in the kernel rather than take the copy path.
                    target.wait_for_output(cx.waker());
                    return Ok(Step::Done);
                }
                Poll::Ready(Ok(SpliceIn::Unavailable)) => {}
            }
        }
        self.copy_in(s, cx, &link)
    }

    /// The proxy from this connection has ended (the pump sees it for the
    /// first time): input goes to `receive_data` again, through a fresh
    /// codec if bytes went past the old one.
    fn proxy_ended<H: Connection>(&mut self, s: &mut Session<'_, H>) -> Result<(), UnbindReason> {
        let state = s.conn.state();
        state.proxy_roles.set(state.proxy_roles.get() & !SOURCE);
        if std::mem::take(&mut self.raw) {
            let handler = &*s.handler;
            match panic::catch("codec", Some(s.conn.id()), || handler.codec()) {
                Ok(codec) => *s.conn.codec().borrow_mut() = codec,
                Err(message) => return Err(UnbindReason::Panicked(message)),
            }
        }
        // Input that waited (the rest of a proxy's length, or what the
        // target refused) is decoded before more is read.
        self.held = self.pending.is_some();
        Ok(())
    }

    /// Whether the next bytes may be spliced (see the module's notes).
    fn may_splice<H: Connection>(&self, s: &Session<'_, H>, link: &Link) -> bool {
        let sink = &link.sink;
        s.core.config.proxy_splice
            && !sink.no_pipe.get()
            && self.pending.is_none()
            && link.target.state().outbound.borrow().is_empty()
            && link
                .target
                .state()
                .transport
                .borrow()
                .as_ref()
                .is_some_and(|t| t.raw_socket().is_some())
    }

    /// Splices what the source's socket holds into the target's pipe, up
    /// to the pipe's room and the proxy's length.
    fn splice_in<H: Connection>(
        &mut self,
        s: &mut Session<'_, H>,
        cx: &mut Context<'_>,
        link: &Link,
    ) -> Poll<std::io::Result<SpliceIn>> {
        let sink = &link.sink;
        let mut slot = sink.pipe.borrow_mut();
        if slot.is_none() {
            match Pipe::new() {
                Ok(pipe) => *slot = Some(pipe),
                Err(e) => {
                    tracing::debug!(error = %e, "no pipe for splicing: the proxy copies");
                    sink.no_pipe.set(true);
                    return Poll::Ready(Ok(SpliceIn::Unavailable));
                }
            }
        }
        let Some(pipe) = slot.as_ref() else {
            return Poll::Ready(Ok(SpliceIn::Unavailable));
        };
        let piped = sink.piped.get();
        let room = pipe.capacity().saturating_sub(piped);
        if room == 0 {
            return Poll::Ready(Ok(SpliceIn::Full));
        }
        let len = link.allowance(room);
        let transport = s.conn.state().transport.borrow();
        let Some(socket) = transport
            .as_ref()
            .filter(|t| t.readable())
            .and_then(|t| t.raw_socket())
        else {
            return Poll::Ready(Ok(SpliceIn::Unavailable));
        };
        loop {
            match socket.poll_ready(cx, Interest::READABLE) {
                Poll::Pending => return Poll::Pending,
                Poll::Ready(Err(e)) => return Poll::Ready(Err(e)),
                Poll::Ready(Ok(())) => {}
            }
            // With bytes in the pipe, `WouldBlock` may mean the pipe is
            // full rather than the socket empty: that must not clear the
            // socket's readiness (a later read would wait for an edge that
            // never comes), so it is told apart here: the source waits for
            // the target to empty the pipe, and the splice after that
            // clears the readiness if the socket was the one empty.
            let mut full = false;
            let spliced = socket.try_io(
                Interest::READABLE,
                &mut |fd| match pipe.splice_in(fd, len) {
                    Err(e) if e.kind() == std::io::ErrorKind::WouldBlock && piped > 0 => {
                        full = true;
                        Ok(0)
                    }
                    other => other,
                },
            );
            return Poll::Ready(match spliced {
                Ok(_) if full => Ok(SpliceIn::Full),
                Ok(0) => Ok(SpliceIn::Eof),
                Ok(n) => Ok(SpliceIn::Moved(n)),
                // Not ready after all: the readiness is cleared, and the
                // next poll parks the task.
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => continue,
                Err(e) if e.raw_os_error() == Some(libc::EINVAL) => {
                    tracing::debug!(error = %e, "splice refused: the proxy copies");
                    sink.no_pipe.set(true);
                    Ok(SpliceIn::Unavailable)
                }
                Err(e) => Err(e),
            });
        }
    }

    /// Books `n` bytes spliced into the target's pipe.
    fn spliced<H: Connection>(&mut self, s: &mut Session<'_, H>, link: &Link, n: usize) {
        let sink = &link.sink;
        let was_empty = sink.piped.get() == 0;
        sink.piped.set(sink.piped.get() + n);
        if was_empty {
            link.target.state().wake();
        }
        let counters = &s.core.counters;
        stats::add(&counters.bytes_read, n as u64);
        stats::add(&counters.bytes_proxied, n as u64);
        stats::add(&counters.bytes_spliced, n as u64);
        self.active = true;
        self.raw = true;
        if link.moved(n) {
            Self::complete(s, link);
        }
    }

    /// Reads into the reactor's buffer and queues the bytes on the target.
    fn copy_in<H: Connection>(
        &mut self,
        s: &mut Session<'_, H>,
        cx: &mut Context<'_>,
        link: &Link,
    ) -> Result<Step, UnbindReason> {
        let read_size = link.allowance(READ_SIZES[usize::from(self.read_step)]);
        let mut buf = s.core.take_read_buffer();
        if buf.capacity() < read_size && !buf.try_reclaim(read_size) {
            buf = BytesMut::with_capacity(SHARED_READ_BUF);
        }
        let polled = {
            let mut transport = s.conn.state().transport.borrow_mut();
            match transport
                .as_mut()
                .filter(|t| t.readable())
                .and_then(|t| t.byte_stream())
            {
                Some(t) => {
                    let mut limited = (&mut buf).limit(read_size);
                    tokio_util::io::poll_read_buf(std::pin::Pin::new(t), cx, &mut limited)
                }
                _ => Poll::Pending,
            }
        };
        let step = match polled {
            Poll::Pending => Ok(Step::Done),
            Poll::Ready(Err(e)) => Err(UnbindReason::Io(e)),
            Poll::Ready(Ok(0)) => {
                tracing::debug!("end of stream");
                self.eof = true;
                self.input_done = true;
                Ok(Step::Done)
            }
            Poll::Ready(Ok(n)) => {
                self.active = true;
                stats::add(&s.core.counters.bytes_read, n as u64);
                self.adapt_read_size(n, read_size);
                self.hand_over(s, link, &buf).map(|()| {
                    if n == read_size {
                        Step::Yield
                    } else {
                        Step::Again
                    }
                })
            }
        };
        buf.clear();
        let _ = buf.try_reclaim(SHARED_READ_BUF);
        s.core.put_read_buffer(buf);
        step
    }

    /// Queues `data` (input of the source) on the target, up to what is
    /// left of the proxy's length; the rest of it, if the length ran out,
    /// waits for `receive_data`. If the target refuses the bytes (it
    /// overflowed, or closes), they all wait, for `receive_data` once
    /// `proxy_target_unbound` has run.
    fn hand_over<H: Connection>(
        &mut self,
        s: &mut Session<'_, H>,
        link: &Link,
        data: &[u8],
    ) -> Result<(), UnbindReason> {
        let take = link.allowance(data.len());
        if let Err(e) = link
            .target
            .clone()
            .send_raw("proxy_incoming_to", &data[..take])
        {
            tracing::debug!(error = %e, "the proxy's target refused the input; it waits");
            self.keep_pending(data);
            return Ok(());
        }
        stats::add(&s.core.counters.bytes_proxied, take as u64);
        self.raw = true;
        let done = link.moved(take);
        if take < data.len() {
            self.keep_pending(&data[take..]);
        }
        if done {
            Self::complete(s, link);
        }
        Ok(())
    }

    /// Keeps `data` as input not yet delivered.
    fn keep_pending(&mut self, data: &[u8]) {
        match &mut self.pending {
            Some(pending) => pending.extend_from_slice(data),
            None => self.pending = Some(Box::new(BytesMut::from(data))),
        }
    }

    /// the proxy's length is reached.
    fn complete<H: Connection>(s: &mut Session<'_, H>, link: &Link) {
        proxy::unlink(s.conn.state(), link);
        tracing::debug!(proxied = link.proxied.get(), "proxy completed");
        s.call("proxy_completed", |h, c| h.proxy_completed(c));
    }

    /// The target's side: splices the pipe's bytes into the socket.
    /// `Ok(true)` once the pipe is empty (or there is none), so that the
    /// queued output may follow.
    pub(super) fn drain_pipe<H: Connection>(
        &mut self,
        s: &mut Session<'_, H>,
        cx: &mut Context<'_>,
    ) -> std::io::Result<bool> {
        let state = s.conn.state();
        if state.proxy_roles.get() & TARGET == 0 {
            return Ok(true);
        }
        let Some(sink) = proxy::sink(state) else {
            state.proxy_roles.set(state.proxy_roles.get() & !TARGET);
            return Ok(true);
        };
        let mut drained = false;
        let result = {
            let pipe = sink.pipe.borrow();
            let transport = state.transport.borrow();
            let socket = transport.as_ref().and_then(|t| t.raw_socket());
            loop {
                let piped = sink.piped.get();
                if piped == 0 {
                    break Ok(true);
                }
                let (Some(pipe), Some(socket)) = (pipe.as_ref(), socket) else {
                    // Not connected (yet), or detached: the lifecycle ends
                    // it, or the connect completes and wakes us.
                    break Ok(false);
                };
                match socket.poll_ready(cx, Interest::WRITABLE) {
                    Poll::Pending => break Ok(false),
                    Poll::Ready(Err(e)) => break Err(e),
                    Poll::Ready(Ok(())) => {}
                }
                match socket.try_io(Interest::WRITABLE, &mut |fd| pipe.splice_out(fd, piped)) {
                    Ok(0) => break Err(std::io::ErrorKind::WriteZero.into()),
                    Ok(n) => {
                        sink.piped.set(piped - n);
                        stats::add(&s.core.counters.bytes_written, n as u64);
                        self.active = true;
                        drained = true;
                    }
                    Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
                    Err(e) => break Err(e),
                }
            }
        };
        if drained {
            Self::proxy_output_left(state);
        }
        if matches!(result, Ok(true)) && sink.source.borrow().is_none() {
            // No source any more, and the pipe is empty: back to a plain
            // connection.
            state.with_proxy(|p| p.sink = None);
            state.proxy_roles.set(state.proxy_roles.get() & !TARGET);
        }
        result
    }

    /// Output of a proxy's target left: its source, if held back by the
    /// backlog, may read again once the backlog is within its limit.
    pub(super) fn proxy_output_left(state: &ConnState) {
        let Some(sink) = proxy::sink(state) else {
            return;
        };
        let backlog = state.outbound.borrow().len() + sink.piped.get();
        if sink.within_limit(backlog) {
            state.wake_output_waiters();
        }
    }
}
