//! The datagram pump: how datagrams move for a UDP socket, beneath the same
//! lifecycle as every connection (`mod.rs`), which decides when it ends and
//! runs `unbind`.
//!
//! * **Receiving.** The datagrams waiting are received in batches, one
//!   `recvmmsg(2)` per batch, into the reactor-wide read buffer; each is
//!   decoded on its own and delivered as exactly one frame: one
//!   `receive_data` per datagram, empty ones included.
//!   The codec's `decode_eof` makes the frame, which must use the whole
//!   datagram: a datagram never leaves bytes behind for the next one. A
//!   datagram the codec cannot make one frame of (an error, no frame, or
//!   more than one) is dropped, the codec is rebuilt so that nothing
//!   carries over, and the socket, which serves every peer, stays open. The
//!   sender of each delivered datagram becomes the connection's peer, where
//!   `send_data` replies go.
//! * **Sending.** Queued datagrams (their bytes in the outbound queue, their
//!   lengths and destinations beside the socket, see `transport/udp.rs`)
//!   leave in order after each batch received, one `sendmmsg(2)` for many
//!   (`sendto(2)` for one). A datagram the system refuses (no route, a
//!   broadcast address with broadcast off) is dropped, and the socket
//!   stays open.
//! * Receiving waits while the connection is paused or its output is above
//!   the high watermark: the datagrams of a batch not yet delivered then
//!   wait in the pump (copied out of the shared buffer), the others in the
//!   kernel. `close_connection_after_writing` ends the connection once the
//!   queue has left.

use std::any::Any;
use std::cell::Cell;
use std::collections::VecDeque;
use std::fmt;
use std::io;
use std::net::SocketAddr;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use bytes::{Buf, Bytes, BytesMut};
use tokio_util::codec::Decoder;

use super::stream::{DRAINED_PER_POLL, KEEP_OUTBOUND, SHARED_READ_BUF};
use super::{Pump, Session};
use crate::error::BoxError;
use crate::net::conn::Close;
use crate::net::connection::{Connection, UnbindReason};
use crate::net::transport::{Received, BATCH, RECV_SIZE};
use crate::reactor::panic;
use crate::reactor::stats;

/// Datagrams received per poll before the pump yields to other tasks.
const DATAGRAMS_PER_POLL: usize = 64;
// The batch a receive asks for doubles up to `BATCH`.
const _: () = assert!(BATCH.is_power_of_two());
/// At most one warning per this interval about dropped datagrams, per
/// socket: a peer sending garbage, or a destination without a route, must
/// not flood the log.
const WARN_EVERY: Duration = Duration::from_secs(5);

/// The state of one datagram socket, beneath its lifecycle.
#[derive(Debug, Default)]
pub(crate) struct DatagramPump {
    /// Datagrams moved (received or sent) since the lifecycle last asked.
    active: bool,
    /// Datagrams dropped because the codec could not decode them.
    undecodable: Warnings,
    /// Datagrams dropped because the system refused to send them.
    unsendable: Warnings,
    /// Datagrams received and not delivered yet, because delivery had to
    /// wait; boxed, since most sockets never hold any.
    held: Option<Box<Held>>,
    /// How many datagrams the next receive asks for, as a power of two: it
    /// doubles while receives come back full, and halves when they come
    /// back a quarter full or less, so that a quiet socket does not prepare
    /// a whole batch for each datagram.
    batch_step: u8,
    /// The sender of the last datagram delivered, also the connection's
    /// peer: kept here too, so that a datagram from the same sender costs
    /// no update of the shared state.
    peer: Option<SocketAddr>,
}

/// Received datagrams waiting for delivery: their bytes back to back,
/// copied out of the shared buffer so that they do not pin it, and where
/// each ends and who sent it.
#[derive(Debug, Default)]
struct Held {
    bytes: BytesMut,
    datagrams: VecDeque<Received>,
}

impl<H: Connection> Pump<H> for DatagramPump {
    fn poll_io(&mut self, s: &mut Session<'_, H>, cx: &mut Context<'_>) -> Poll<UnbindReason> {
        let mut rounds = 0;
        let flushed = loop {
            if let Err(reason) = self.receive(s, cx) {
                return Poll::Ready(reason);
            }
            if let Some(reason) = s.must_end() {
                return Poll::Ready(reason);
            }
            let flushed = self.flush(s, cx);
            // `outbound_drained` may queue more, and a producer keeps going
            // as fast as the socket takes its datagrams.
            if !flushed || !s.drained() {
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
        if flushed && s.conn.state().close.get() == Close::AfterWriting {
            // Everything queued has left: a datagram socket has no shutdown
            // to send.
            return Poll::Ready(UnbindReason::Closed);
        }
        Poll::Pending
    }

    fn poll_flush_only(&mut self, s: &mut Session<'_, H>, cx: &mut Context<'_>) -> Poll<()> {
        if self.flush(s, cx) {
            Poll::Ready(())
        } else {
            Poll::Pending
        }
    }

    fn take_activity(&mut self) -> bool {
        std::mem::take(&mut self.active)
    }

    fn reset(&mut self) {
        *self = DatagramPump::default();
    }
}

impl DatagramPump {
    /// Whether datagrams may be delivered now: not paused, output not above
    /// the high watermark, and no close or stop under way.
    fn may_deliver<H: Connection>(s: &Session<'_, H>) -> bool {
        let state = s.conn.state();
        !state.paused.get() && !state.above_high.get() && !s.interrupted()
    }

    /// Receives and delivers datagrams, batch by batch, sending the replies
    /// after each batch, until none is waiting, the budget is spent (the
    /// task then yields), delivery must wait, or the connection must stop.
    fn receive<H: Connection>(
        &mut self,
        s: &mut Session<'_, H>,
        cx: &mut Context<'_>,
    ) -> Result<(), UnbindReason> {
        if self.held.is_some() {
            self.deliver_held(s)?;
            if self.held.is_some() {
                return Ok(());
            }
        }
        let mut received = [Received::default(); BATCH];
        let mut budget = DATAGRAMS_PER_POLL;
        while budget > 0 {
            if !Self::may_deliver(s) {
                // Datagrams wait in the kernel until delivery resumes.
                return Ok(());
            }
            let mut buf = s.core.take_read_buffer();
            // Room for a batch: back to the start of the allocation if no
            // frame holds it; a new one if frames a handler kept pin too
            // much of it (or it is fresh).
            if buf.capacity() < RECV_SIZE * self.batch()
                && !buf.try_reclaim(SHARED_READ_BUF)
                && buf.capacity() < RECV_SIZE
            {
                buf = BytesMut::with_capacity(SHARED_READ_BUF);
            }
            let polled = {
                let transport = s.conn.state().transport.borrow();
                match transport.as_ref().and_then(|t| t.datagram()) {
                    Some(socket) => {
                        socket.poll_recv_batch(cx, &mut buf, self.batch(), &mut received)
                    }
                    // Detached: the lifecycle ends it.
                    None => Poll::Pending,
                }
            };
            let result = match polled {
                Poll::Pending => {
                    s.core.put_read_buffer(buf);
                    return Ok(());
                }
                Poll::Ready(Err(e)) if is_transient(&e) => {
                    // A report about an earlier send, not about this socket.
                    tracing::debug!(error = %e, "receive reported an error; ignored");
                    budget -= 1;
                    Ok(())
                }
                Poll::Ready(Err(e)) => Err(UnbindReason::Io(e)),
                Poll::Ready(Ok(n)) => {
                    self.active = true;
                    stats::add(&s.core.counters.bytes_read, buf.len() as u64);
                    budget = budget.saturating_sub(n);
                    self.adapt_batch(n);
                    self.deliver_batch(s, &mut buf, &received[..n])
                }
            };
            // What the codec left of a datagram it did not take, and what a
            // close left undelivered.
            buf.clear();
            s.core.put_read_buffer(buf);
            result?;
            if s.interrupted() || self.held.is_some() {
                return Ok(());
            }
            // Send the replies before receiving more.
            self.flush(s, cx);
        }
        // Budget spent with datagrams maybe still waiting: let others run.
        cx.waker().wake_by_ref();
        Ok(())
    }

    /// How many datagrams the next receive asks for.
    fn batch(&self) -> usize {
        1 << self.batch_step
    }

    /// Adapts the batch to a receive that got `got` datagrams.
    fn adapt_batch(&mut self, got: usize) {
        let asked = self.batch();
        if got >= asked && asked < BATCH {
            self.batch_step += 1;
        } else if got * 4 <= asked {
            self.batch_step -= 1;
        }
    }

    /// Delivers the datagrams of a batch, `buf` holding their bytes back to
    /// back, until delivery must wait (the rest is held) or the connection
    /// must stop (the rest is dropped).
    fn deliver_batch<H: Connection>(
        &mut self,
        s: &mut Session<'_, H>,
        buf: &mut BytesMut,
        batch: &[Received],
    ) -> Result<(), UnbindReason> {
        for (i, datagram) in batch.iter().enumerate() {
            if s.interrupted() {
                return Ok(());
            }
            if !Self::may_deliver(s) {
                self.held = Some(Box::new(Held {
                    bytes: BytesMut::from(&buf[..]),
                    datagrams: batch[i..].iter().copied().collect(),
                }));
                return Ok(());
            }
            if i + 1 == batch.len() {
                // The last one: the buffer holds it alone, and the codec
                // decodes it in place.
                self.deliver(s, buf, datagram)?;
            } else {
                self.deliver(s, &mut buf.split_to(datagram.len), datagram)?;
            }
        }
        Ok(())
    }

    /// Delivers held datagrams while delivery may go on.
    fn deliver_held<H: Connection>(&mut self, s: &mut Session<'_, H>) -> Result<(), UnbindReason> {
        let Some(mut held) = self.held.take() else {
            return Ok(());
        };
        while let Some(&datagram) = held.datagrams.front() {
            if s.interrupted() {
                // Dropped with the close.
                return Ok(());
            }
            if !Self::may_deliver(s) {
                self.held = Some(held);
                return Ok(());
            }
            held.datagrams.pop_front();
            self.deliver(s, &mut held.bytes.split_to(datagram.len), &datagram)?;
        }
        Ok(())
    }

    /// Decodes `bytes`, one datagram, into one frame and delivers it, its
    /// sender first becoming the connection's peer; or drops it (see the
    /// module's doc).
    fn deliver<H: Connection>(
        &mut self,
        s: &mut Session<'_, H>,
        bytes: &mut BytesMut,
        datagram: &Received,
    ) -> Result<(), UnbindReason> {
        let Some(from) = datagram.from.filter(|_| !datagram.truncated) else {
            tracing::debug!(
                ?datagram,
                "a datagram with no sender, or cut short; dropped"
            );
            return Ok(());
        };
        // The codec and `receive_data` are user code: one panic guard for
        // both, and `running` names what was running when one came.
        let running = Cell::new("decode_eof");
        let delivered = panic::guard(&running, Some(s.conn.id()), || {
            let decoded = decode(&mut *s.conn.codec().borrow_mut(), bytes);
            match decoded {
                Ok(frame) => {
                    if self.peer != Some(from) {
                        // Where `send_data` replies go (U2, U3).
                        self.peer = Some(from);
                        *s.conn.state().peer.borrow_mut() = Some(from.into());
                    }
                    stats::add(&s.core.counters.frames_decoded, 1);
                    running.set("receive_data");
                    s.handler.receive_data(s.conn, frame);
                }
                Err(why) => {
                    self.undecodable.note(|dropped| {
                        tracing::warn!(conn = %s.conn.id(), %from, %why, dropped,
                            "datagrams the codec cannot decode as one frame were dropped (the socket stays open)");
                    });
                    tracing::debug!(%from, %why, "undecodable datagram dropped");
                    // Nothing of it may carry over to the next datagram.
                    running.set("codec");
                    let fresh = s.handler.codec();
                    *s.conn.codec().borrow_mut() = fresh;
                }
            }
        });
        delivered.map_err(UnbindReason::Panicked)
    }

    /// Sends the queued datagrams, in order. True once none is left.
    fn flush<H: Connection>(&mut self, s: &mut Session<'_, H>, cx: &mut Context<'_>) -> bool {
        let state = s.conn.state();
        let transport = state.transport.borrow();
        let Some(socket) = transport.as_ref().and_then(|t| t.datagram()) else {
            // Detached: the lifecycle ends it.
            return false;
        };
        let mut queue = socket.queue().borrow_mut();
        if queue.is_empty() {
            return true;
        }
        let mut out = state.outbound.borrow_mut();
        // Where the next datagram's bytes start. The buffer is advanced
        // only if some are left for later: advancing it datagram by
        // datagram would leave it offset, and the next `send_data` would
        // pay to move it back.
        let mut start = 0;
        while let Some(&first) = queue.front() {
            match socket.poll_send(cx, &out[start..], &queue) {
                Poll::Pending => {
                    out.advance(start);
                    return false;
                }
                Poll::Ready(Ok(0)) => {
                    // The bytes were dropped (a close discards the output)
                    // and the connection is ending: forget the rest.
                    queue.clear();
                    break;
                }
                Poll::Ready(Ok(sent)) => {
                    self.active = true;
                    for datagram in queue.drain(..sent) {
                        start += datagram.len;
                        stats::add(&s.core.counters.bytes_written, datagram.len as u64);
                    }
                }
                Poll::Ready(Err(e)) => {
                    // The first one was refused: it is dropped.
                    self.unsendable.note(|dropped| {
                        tracing::warn!(conn = %s.conn.id(), to = %first.to, error = %e, dropped,
                            "datagrams the system refused to send were dropped (the socket stays open)");
                    });
                    tracing::debug!(to = %first.to, error = %e, "datagram not sent; dropped");
                    queue.pop_front();
                    start += first.len;
                }
            }
        }
        if out.capacity() > KEEP_OUTBOUND {
            *out = BytesMut::new();
        } else {
            out.clear();
        }
        drop(out);
        drop(queue);
        drop(transport);
        state.wake_output_waiters();
        true
    }
}

/// A receive error that reports on an earlier send (an ICMP message about
/// it), not a broken socket.
fn is_transient(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::ConnectionRefused
            | io::ErrorKind::ConnectionReset
            | io::ErrorKind::HostUnreachable
            | io::ErrorKind::NetworkUnreachable
            | io::ErrorKind::Interrupted
    )
}

/// Why a datagram was dropped instead of delivered.
#[derive(Debug)]
enum Undecodable {
    /// The codec's error.
    Codec(BoxError),
    /// The codec made no frame of it.
    NoFrame(usize),
    /// The codec made a frame of its start and left bytes over: it held
    /// more than one frame.
    Leftover(usize),
}

impl fmt::Display for Undecodable {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Undecodable::Codec(e) => write!(f, "codec error: {e}"),
            Undecodable::NoFrame(len) => write!(f, "no whole frame in its {len} bytes"),
            Undecodable::Leftover(left) => {
                write!(
                    f,
                    "{left} bytes left after the first frame (one frame per datagram)"
                )
            }
        }
    }
}

/// Decodes `datagram` on its own into exactly one frame: `decode_eof` (the
/// datagram is all there is), which must use all of it. An empty datagram
/// the codec makes no frame of is an empty frame when the frame type is a
/// byte buffer or a string (see [`empty_frame`]).
fn decode<D>(codec: &mut D, datagram: &mut BytesMut) -> Result<D::Item, Undecodable>
where
    D: Decoder<Error: Into<BoxError>>,
    D::Item: 'static,
{
    let len = datagram.len();
    match codec.decode_eof(datagram) {
        Ok(Some(frame)) if datagram.is_empty() => Ok(frame),
        Ok(Some(_)) => Err(Undecodable::Leftover(datagram.len())),
        Ok(None) if len == 0 => empty_frame().ok_or(Undecodable::NoFrame(0)),
        Ok(None) => Err(Undecodable::NoFrame(len)),
        Err(e) => Err(Undecodable::Codec(e.into())),
    }
}

/// An empty frame of type `F`, for an empty datagram (it arrives as one
/// `receive_data` of nothing), when `F` is one of the frame types of the
/// byte codecs: `BytesMut` (`BytesCodec`, `LengthDelimitedCodec`), `Bytes`,
/// `Vec<u8>`, `String` (`LinesCodec`). `None` for any other type.
fn empty_frame<F: 'static>() -> Option<F> {
    /// Fills `slot` with an empty `T` if it is an `Option<T>`.
    fn fill<T: Default + 'static>(slot: &mut dyn Any) -> bool {
        match slot.downcast_mut::<Option<T>>() {
            Some(slot) => {
                *slot = Some(T::default());
                true
            }
            None => false,
        }
    }
    let mut slot: Option<F> = None;
    let _filled = fill::<BytesMut>(&mut slot)
        || fill::<Bytes>(&mut slot)
        || fill::<Vec<u8>>(&mut slot)
        || fill::<String>(&mut slot);
    slot
}

/// Rate-limited warnings about dropped datagrams: the first drop warns at
/// once, later ones at most every [`WARN_EVERY`], with how many were
/// dropped since the last warning.
#[derive(Debug, Default)]
struct Warnings {
    last: Option<Instant>,
    since: u64,
}

impl Warnings {
    /// Counts one drop; runs `warn` with the count when a warning is due.
    fn note(&mut self, warn: impl FnOnce(u64)) {
        self.since += 1;
        if self.last.is_none_or(|t| t.elapsed() >= WARN_EVERY) {
            self.last = Some(Instant::now());
            warn(std::mem::take(&mut self.since));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio_util::codec::{BytesCodec, LengthDelimitedCodec, LinesCodec};

    #[test]
    fn a_datagram_is_one_frame() {
        let mut codec = BytesCodec::new();
        let frame = decode(&mut codec, &mut BytesMut::from(&b"whole"[..])).unwrap();
        assert_eq!(&frame[..], b"whole");
    }

    #[test]
    fn an_empty_datagram_is_an_empty_frame_of_a_byte_type() {
        let empty = decode(&mut BytesCodec::new(), &mut BytesMut::new()).unwrap();
        assert!(empty.is_empty());
        let line = decode(&mut LinesCodec::new(), &mut BytesMut::new()).unwrap();
        assert_eq!(line, "");
        assert_eq!(empty_frame::<Vec<u8>>(), Some(Vec::new()));
        assert_eq!(empty_frame::<Bytes>(), Some(Bytes::new()));
        assert_eq!(empty_frame::<u32>(), None);
    }

    #[test]
    fn lines_end_at_the_end_of_the_datagram() {
        let mut codec = LinesCodec::new();
        assert_eq!(
            decode(&mut codec, &mut BytesMut::from(&b"no newline"[..])).unwrap(),
            "no newline"
        );
        assert_eq!(
            decode(&mut codec, &mut BytesMut::from(&b"one\n"[..])).unwrap(),
            "one"
        );
    }

    #[test]
    fn more_than_one_frame_or_none_is_refused() {
        let two = decode(&mut LinesCodec::new(), &mut BytesMut::from(&b"a\nb\n"[..]));
        assert!(matches!(two, Err(Undecodable::Leftover(2))), "{two:?}");
        // A length prefix that promises more than the datagram holds.
        let short = decode(
            &mut LengthDelimitedCodec::new(),
            &mut BytesMut::from(&[0, 0, 0, 9, 1][..]),
        );
        assert!(matches!(short, Err(Undecodable::Codec(_))), "{short:?}");
        let long = decode(
            &mut LinesCodec::new_with_max_length(4),
            &mut BytesMut::from(&b"too long\n"[..]),
        );
        assert!(matches!(long, Err(Undecodable::Codec(_))), "{long:?}");
    }
}
