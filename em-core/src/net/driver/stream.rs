//! The stream pump: how bytes move for a connection on a byte-stream
//! transport. It reads into the reactor-wide buffer, decodes frames and
//! delivers them, keeps input it may not deliver yet (paused, or output
//! above the high watermark), writes queued output, and runs the graceful
//! close. The lifecycle around it (`mod.rs`) decides when the connection
//! ends and runs `unbind`. A connection with a proxy role takes the same
//! path with the proxy's steps compiled in (`stream/proxy.rs`); the others
//! pay one check per poll for it.

use std::cell::Cell;
use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::{Buf, BufMut, BytesMut};
use tokio_util::codec::Decoder;

use super::{Pump, Session};
use crate::net::conn::Close;
use crate::net::connection::{Connection, UnbindReason};
use crate::net::proxy;
use crate::net::tls;
use crate::reactor::panic;
use crate::reactor::stats;

mod proxy_io;
mod tls_io;

/// `ConnState::tls` bits under which the TLS steps run first.
const TLS_BUSY: u8 = tls::UPGRADE | tls::HANDSHAKE;
/// `outbound_drained` rounds per poll before the pump yields.
pub(super) const DRAINED_PER_POLL: usize = 16;
/// An emptied outbound buffer larger than this is freed instead of kept.
pub(super) const KEEP_OUTBOUND: usize = 64 * 1024;
/// Reads per poll before the pump yields to other connections.
const READS_PER_POLL: usize = 16;
/// Reads per poll that fill the whole request (so more data is waiting)
/// before the pump yields: yielding after each lets other connections run
/// and lets the next read gather a full buffer again.
const FULL_READS_PER_POLL: usize = 1;
/// The read sizes a connection moves between: it starts at the first, steps
/// up when a read fills the request and down when reads come back small.
/// Above 16 KiB they are multiples of 65,483 bytes, the TCP segment size on
/// loopback: reading (and so echoing) exactly 64 KiB sends a full segment
/// plus a 53-byte one, which halves bulk throughput there.
const READ_SIZES: [usize; 4] = [16 * 1024, 65_483, 2 * 65_483, 4 * 65_483];
/// The capacity of the reactor-wide read buffer: room for a few of the
/// largest reads, so that frames a handler keeps pin it only briefly.
pub(super) const SHARED_READ_BUF: usize = 1 << 20;

/// The state of one connection's byte stream, beneath its lifecycle.
#[derive(Debug, Default)]
pub(crate) struct StreamPump {
    /// Input read but not decoded yet: an unfinished frame, or, when
    /// `held`, frames not delivered because the connection was paused or
    /// its output passed the high watermark. Boxed to keep an idle
    /// connection small.
    pending: Option<Box<BytesMut>>,
    /// `pending` may hold whole frames: decode it before reading more.
    held: bool,
    /// End of stream was read.
    eof: bool,
    /// Every frame, the last through `decode_eof`, has been delivered
    /// after the end of stream.
    input_done: bool,
    /// Index into `READ_SIZES`.
    read_step: u8,
    /// Bytes were written since the transport was last flushed.
    unflushed: bool,
    /// Bytes moved (read or written) since the lifecycle last asked.
    active: bool,
    /// Input went to a proxy's target, past the codec, since the codec
    /// last decoded: it starts afresh before it decodes again.
    raw: bool,
}

impl<H: Connection> Pump<H> for StreamPump {
    fn poll_io(&mut self, s: &mut Session<'_, H>, cx: &mut Context<'_>) -> Poll<UnbindReason> {
        if s.conn.state().tls.get() & TLS_BUSY != 0 {
            match self.poll_tls(s, cx) {
                Poll::Ready(Ok(())) => {}
                Poll::Ready(Err(reason)) => return Poll::Ready(reason),
                Poll::Pending => return Poll::Pending,
            }
        }
        if s.conn.state().proxy_roles.get() != 0 {
            return self.poll_io_as::<true, H>(s, cx);
        }
        self.poll_io_as::<false, H>(s, cx)
    }

    fn poll_flush_only(&mut self, s: &mut Session<'_, H>, cx: &mut Context<'_>) -> Poll<()> {
        let flushed = if s.conn.state().proxy_roles.get() != 0 {
            self.flush::<true, H>(s, cx)
        } else {
            self.flush::<false, H>(s, cx)
        };
        match flushed {
            Ok(false) => Poll::Pending,
            Ok(true) => Poll::Ready(()),
            Err(e) => {
                tracing::debug!(error = %e, "write during the shutdown grace failed");
                Poll::Ready(())
            }
        }
    }

    fn take_activity(&mut self) -> bool {
        std::mem::take(&mut self.active)
    }

    fn reset(&mut self) {
        *self = StreamPump::default();
    }
}

impl StreamPump {
    /// [`Pump::poll_io`], with the proxy's steps when `PROXY`: reading
    /// moves input to a target, and writing empties a pipe a source
    /// spliced into before the queued output.
    fn poll_io_as<const PROXY: bool, H: Connection>(
        &mut self,
        s: &mut Session<'_, H>,
        cx: &mut Context<'_>,
    ) -> Poll<UnbindReason> {
        let mut rounds = 0;
        let flushed = loop {
            if let Err(reason) = self.deliver_held(s) {
                return Poll::Ready(reason);
            }
            let read = if PROXY {
                self.proxy_read(s, cx)
            } else {
                self.read::<false, H>(s, cx)
            };
            if let Err(reason) = read {
                return Poll::Ready(reason);
            }
            if let Some(reason) = s.must_end() {
                return Poll::Ready(reason);
            }
            let flushed = self.flush::<PROXY, H>(s, cx);
            // `outbound_drained` may queue more, which may leave at once and
            // drain the queue again: a producer keeps going as fast as the
            // socket takes its output. Held input is delivered again too.
            if flushed.is_err() || !s.drained() {
                break flushed;
            }
            if let Some(reason) = s.must_end() {
                return Poll::Ready(reason);
            }
            rounds += 1;
            if rounds == DRAINED_PER_POLL {
                cx.waker().wake_by_ref();
                break flushed;
            }
        };
        match flushed {
            Err(e) if self.eof => {
                tracing::debug!(error = %e, "write after end of stream failed");
                Poll::Ready(UnbindReason::PeerClosed)
            }
            Err(e) => Poll::Ready(UnbindReason::Io(e)),
            Ok(false) => Poll::Pending,
            Ok(true) if self.eof && self.input_done => {
                if s.conn.state().tls.get() & tls::ON != 0 {
                    // Answer the peer's close_notify with ours (TLS asks
                    // for it; Python's `unwrap` waits for it).
                    std::task::ready!(self.shutdown(s, cx));
                }
                Poll::Ready(UnbindReason::PeerClosed)
            }
            Ok(true) if s.conn.state().close.get() == Close::AfterWriting => self.shutdown(s, cx),
            // A child's stdin, closed after writing (`half_closes`).
            Ok(true) if s.conn.state().half_closes.get() && s.conn.state().read_only.get() => {
                self.shutdown(s, cx)
            }
            Ok(true) => Poll::Pending,
        }
    }

    /// Whether frames may be delivered now: not paused, output not above
    /// the high watermark, and no close or stop under way. (Whether the
    /// input is proxied instead is checked frame by frame, in
    /// `decode_frames`.)
    fn may_deliver<H: Connection>(s: &Session<'_, H>) -> bool {
        let state = s.conn.state();
        !state.paused.get()
            && (!state.above_high.get() || state.half_closes.get())
            && state.tls.get() & TLS_BUSY == 0
            && !s.interrupted()
    }

    /// Delivers input held back earlier, now that it may be.
    #[inline(always)]
    fn deliver_held<H: Connection>(&mut self, s: &mut Session<'_, H>) -> Result<(), UnbindReason> {
        if !self.held || !Self::may_deliver(s) {
            return Ok(());
        }
        self.deliver_held_now(s)
    }

    /// [`deliver_held`](Self::deliver_held) past its common case.
    #[inline(never)]
    fn deliver_held_now<H: Connection>(
        &mut self,
        s: &mut Session<'_, H>,
    ) -> Result<(), UnbindReason> {
        let mut pending = self.pending.take().unwrap_or_default();
        self.held = false;
        let result = self.decode_into_frames(s, &mut pending);
        if !pending.is_empty() {
            self.pending = Some(pending);
        }
        result
    }

    /// Reads, delivers and writes the replies, read by read, until the
    /// transport has nothing more, the budget is spent (the task then
    /// yields), delivery must wait, or the connection must stop.
    fn read<const PROXY: bool, H: Connection>(
        &mut self,
        s: &mut Session<'_, H>,
        cx: &mut Context<'_>,
    ) -> Result<(), UnbindReason> {
        let mut full_reads = 0;
        for _ in 0..READS_PER_POLL {
            if self.eof || self.held || !Self::may_deliver(s) {
                // Waiting input is read once delivery resumes (resume,
                // or output drained by write readiness).
                return Ok(());
            }
            if full_reads == FULL_READS_PER_POLL {
                break;
            }
            let read_size = READ_SIZES[usize::from(self.read_step)];
            let mut buf = s.core.take_read_buffer();
            if buf.capacity() < read_size && !buf.try_reclaim(read_size) {
                // Fresh, or its allocation is still pinned by frames a
                // handler kept: start a new one, never grow in place.
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
                        tokio_util::io::poll_read_buf(Pin::new(t), cx, &mut limited)
                    }
                    // Detached (the lifecycle ends it), or write-only.
                    _ => Poll::Pending,
                }
            };
            let result = match polled {
                Poll::Pending => {
                    s.core.put_read_buffer(buf);
                    return Ok(());
                }
                Poll::Ready(Err(e)) => Err(UnbindReason::Io(e)),
                Poll::Ready(Ok(0)) => {
                    tracing::debug!("end of stream");
                    self.eof = true;
                    self.dispatch(s, &mut buf)
                }
                Poll::Ready(Ok(n)) => {
                    self.active = true;
                    stats::add(&s.core.counters.bytes_read, n as u64);
                    if n == read_size {
                        full_reads += 1;
                    }
                    self.adapt_read_size(n, read_size);
                    self.dispatch(s, &mut buf)
                }
            };
            // Back to the start of the allocation when no frame holds it, so
            // that reads keep touching the same few pages.
            let _ = buf.try_reclaim(SHARED_READ_BUF);
            s.core.put_read_buffer(buf);
            result?;
            if self.eof || s.interrupted() {
                return Ok(());
            }
            // Send what this read produced before reading more, so that
            // bulk data flows through instead of piling up.
            self.flush::<PROXY, H>(s, cx).map_err(UnbindReason::Io)?;
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

    /// Delivers the frames that `buf` (just read, in the shared buffer)
    /// completes. Leaves `buf` empty: what is left moves to `pending`,
    /// copied out so that the shared buffer is never pinned by an idle
    /// connection.
    fn dispatch<H: Connection>(
        &mut self,
        s: &mut Session<'_, H>,
        buf: &mut BytesMut,
    ) -> Result<(), UnbindReason> {
        match self.pending.take() {
            Some(mut pending) => {
                pending.extend_from_slice(buf);
                buf.clear();
                let result = self.decode_into_frames(s, &mut pending);
                if !pending.is_empty() {
                    self.pending = Some(pending);
                }
                result
            }
            None => {
                let result = self.decode_into_frames(s, buf);
                if !buf.is_empty() {
                    self.pending = Some(Box::new(BytesMut::from(&buf[..])));
                    buf.clear();
                }
                result
            }
        }
    }

    /// Decodes frames from `src` and delivers each, until it holds no whole
    /// frame, delivery must wait (`held` is then set), or the connection
    /// must stop. After the end of stream, frames come from `decode_eof`.
    fn decode_into_frames<H: Connection>(
        &mut self,
        s: &mut Session<'_, H>,
        src: &mut BytesMut,
    ) -> Result<(), UnbindReason> {
        // The codec and `receive_data` are user code: one panic guard for
        // the whole run of frames (a panic ends the connection anyway), and
        // `running` names what was running when one came.
        let running = Cell::new("decode");
        let frames = panic::guard(&running, Some(s.conn.id()), || {
            self.decode_frames(s, src, &running)
        });
        frames.unwrap_or_else(|message| Err(UnbindReason::Panicked(message)))
    }

    /// The loop of [`decode_into_frames`](Self::decode_into_frames), under
    /// its panic guard.
    fn decode_frames<H: Connection>(
        &mut self,
        s: &mut Session<'_, H>,
        src: &mut BytesMut,
        running: &Cell<&'static str>,
    ) -> Result<(), UnbindReason> {
        loop {
            if s.interrupted() {
                return Ok(());
            }
            // A proxy started from a callback takes the rest of the input.
            if !Self::may_deliver(s) || s.conn.state().proxy_roles.get() & proxy::SOURCE != 0 {
                self.held = true;
                return Ok(());
            }
            let eof = self.eof;
            let decoded = {
                let mut codec = s.conn.codec().borrow_mut();
                if eof {
                    running.set("decode_eof");
                    codec.decode_eof(src)
                } else {
                    running.set("decode");
                    codec.decode(src)
                }
            };
            match decoded {
                Ok(Some(frame)) => {
                    stats::add(&s.core.counters.frames_decoded, 1);
                    running.set("receive_data");
                    s.handler.receive_data(s.conn, frame);
                }
                Ok(None) => {
                    if eof {
                        self.input_done = true;
                    }
                    return Ok(());
                }
                Err(e) => return Err(UnbindReason::Codec(e.into())),
            }
        }
    }

    /// Writes queued output, then flushes the transport. `Ok(true)` once
    /// everything has left. With `PROXY`, bytes a source spliced into the
    /// pipe leave first (they were queued first), and a source held back
    /// by this connection's backlog is woken as it drains.
    fn flush<const PROXY: bool, H: Connection>(
        &mut self,
        s: &mut Session<'_, H>,
        cx: &mut Context<'_>,
    ) -> io::Result<bool> {
        if PROXY && !self.drain_pipe(s, cx)? {
            return Ok(false);
        }
        let state = s.conn.state();
        if state.tls.get() & TLS_BUSY != 0 {
            // Plain output leaves first, then the handshake (`tls_io.rs`).
            return Ok(false);
        }
        let mut out = state.outbound.borrow_mut();
        if out.is_empty() && !self.unflushed {
            return Ok(true);
        }
        let mut transport = state.transport.borrow_mut();
        let Some(t) = transport.as_mut().and_then(|t| t.byte_stream()) else {
            // Still connecting, or detached.
            return Ok(false);
        };
        while !out.is_empty() {
            match Pin::new(&mut *t).poll_write(cx, &out) {
                Poll::Ready(Ok(0)) => return Err(io::ErrorKind::WriteZero.into()),
                Poll::Ready(Ok(n)) => {
                    self.active = true;
                    self.unflushed = true;
                    stats::add(&s.core.counters.bytes_written, n as u64);
                    out.advance(n);
                }
                Poll::Ready(Err(e))
                    if e.kind() == io::ErrorKind::BrokenPipe && state.half_closes.get() =>
                {
                    // A child closed its stdin (it exited, or stopped
                    // reading): what it did not take is dropped, the write
                    // side closes, and its output is read on to its end.
                    tracing::debug!(dropped = out.len(), "the child closed its stdin");
                    out.clear();
                    state.read_only.set(true);
                    drop(out);
                    let _ = Pin::new(&mut *t).poll_shutdown(cx);
                    drop(transport);
                    state.wake_output_waiters();
                    return Ok(true);
                }
                Poll::Ready(Err(e)) => return Err(e),
                Poll::Pending if PROXY => {
                    drop((out, transport));
                    Self::proxy_output_left(state);
                    return Ok(false);
                }
                Poll::Pending => return Ok(false),
            }
        }
        if out.capacity() > KEEP_OUTBOUND {
            *out = BytesMut::new();
        } else {
            out.clear();
        }
        drop(out);
        state.wake_output_waiters();
        // A buffering transport (TLS) holds bytes until flushed.
        match Pin::new(&mut *t).poll_flush(cx) {
            Poll::Ready(Ok(())) => {
                self.unflushed = false;
                Ok(true)
            }
            Poll::Ready(Err(e)) => Err(e),
            Poll::Pending => Ok(false),
        }
    }

    /// `close_connection_after_writing`, once the output has left: shuts
    /// the transport down (a FIN after the last byte), to completion. A
    /// transport that half-closes (a child's stdin) stays open for reading,
    /// read-only from now on, until the end of its input.
    fn shutdown<H: Connection>(
        &self,
        s: &mut Session<'_, H>,
        cx: &mut Context<'_>,
    ) -> Poll<UnbindReason> {
        let state = s.conn.state();
        let mut transport = state.transport.borrow_mut();
        let Some(t) = transport.as_mut() else {
            return Poll::Ready(UnbindReason::Closed);
        };
        let half_closes = t.half_closes();
        let Some(t) = t.byte_stream() else {
            return Poll::Ready(UnbindReason::Closed);
        };
        match Pin::new(t).poll_shutdown(cx) {
            Poll::Pending => Poll::Pending,
            // Reading goes on, to the end of the input.
            Poll::Ready(Ok(())) if half_closes => Poll::Pending,
            Poll::Ready(Ok(())) => Poll::Ready(UnbindReason::Closed),
            Poll::Ready(Err(e)) => {
                tracing::debug!(error = %e, "shutdown after writing failed");
                Poll::Ready(UnbindReason::Closed)
            }
        }
    }
}
