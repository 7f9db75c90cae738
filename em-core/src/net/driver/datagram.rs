//! The datagram pump: how datagrams move for a UDP socket, beneath the same
//! lifecycle as every connection (`mod.rs`), which decides when it ends and
//! runs `unbind`.
//!
//! * **Receiving.** One datagram per receive, into the reactor-wide read
//!   buffer, decoded on its own and delivered as exactly one frame: one
//!   `receive_data` per datagram, empty ones included (EventMachine's U1).
//!   The codec's `decode_eof` makes the frame, which must use the whole
//!   datagram: a datagram never leaves bytes behind for the next one. A
//!   datagram the codec cannot make one frame of (an error, no frame, or
//!   more than one) is dropped, the codec is rebuilt so that nothing
//!   carries over, and the socket, which serves every peer, stays open. The
//!   sender of each delivered datagram becomes the connection's peer, where
//!   `send_data` replies go (U2, U3).
//! * **Sending.** Queued datagrams (their bytes in the outbound queue, their
//!   lengths and destinations beside the socket, see `transport/udp.rs`)
//!   leave one `sendto(2)` each, in order, after each delivered datagram. A
//!   datagram the system refuses (no route, a broadcast address with
//!   broadcast off) is dropped, and the socket stays open.
//! * Reads wait, in the kernel, while the connection is paused or its
//!   output is above the high watermark; `close_connection_after_writing`
//!   ends it once the queue has left.

use std::any::Any;
use std::cell::Cell;
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
use crate::net::transport::{Queued, RECV_SIZE};
use crate::reactor::panic;
use crate::reactor::stats;

/// Datagrams received per poll before the pump yields to other tasks.
const DATAGRAMS_PER_POLL: usize = 32;
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

    /// Receives and delivers datagrams, sending the replies after each,
    /// until none is waiting, the budget is spent (the task then yields),
    /// delivery must wait, or the connection must stop.
    fn receive<H: Connection>(
        &mut self,
        s: &mut Session<'_, H>,
        cx: &mut Context<'_>,
    ) -> Result<(), UnbindReason> {
        for _ in 0..DATAGRAMS_PER_POLL {
            if !Self::may_deliver(s) {
                // Datagrams wait in the kernel until delivery resumes.
                return Ok(());
            }
            let mut buf = s.core.take_read_buffer();
            if buf.capacity() < RECV_SIZE && !buf.try_reclaim(RECV_SIZE) {
                // Fresh, or its allocation is still pinned by frames a
                // handler kept: start a new one.
                buf = BytesMut::with_capacity(SHARED_READ_BUF);
            }
            let received = {
                let transport = s.conn.state().transport.borrow();
                match transport.as_ref().and_then(|t| t.datagram()) {
                    Some(socket) => socket.poll_recv(cx, &mut buf),
                    // Detached: the lifecycle ends it.
                    None => Poll::Pending,
                }
            };
            let result = match received {
                Poll::Pending => {
                    s.core.put_read_buffer(buf);
                    return Ok(());
                }
                Poll::Ready(Err(e)) if is_transient(&e) => {
                    // A report about an earlier send, not about this socket.
                    tracing::debug!(error = %e, "receive reported an error; ignored");
                    Ok(())
                }
                Poll::Ready(Err(e)) => Err(UnbindReason::Io(e)),
                Poll::Ready(Ok(from)) => {
                    self.active = true;
                    stats::add(&s.core.counters.bytes_read, buf.len() as u64);
                    let datagram = buf.split();
                    self.deliver(s, datagram, from)
                }
            };
            // Back to the start of the allocation when no frame holds it.
            let _ = buf.try_reclaim(SHARED_READ_BUF);
            s.core.put_read_buffer(buf);
            result?;
            if s.interrupted() {
                return Ok(());
            }
            // Send the reply before receiving more.
            self.flush(s, cx);
        }
        // Budget spent with datagrams still waiting: let others run.
        cx.waker().wake_by_ref();
        Ok(())
    }

    /// Decodes `datagram` into one frame and delivers it, its sender first
    /// becoming the connection's peer; or drops it (see the module's doc).
    fn deliver<H: Connection>(
        &mut self,
        s: &mut Session<'_, H>,
        mut datagram: BytesMut,
        from: SocketAddr,
    ) -> Result<(), UnbindReason> {
        // The codec and `receive_data` are user code: one panic guard for
        // both, and `running` names what was running when one came.
        let running = Cell::new("decode_eof");
        let delivered = panic::guard(&running, Some(s.conn.id()), || {
            let decoded = decode(&mut *s.conn.codec().borrow_mut(), &mut datagram);
            match decoded {
                Ok(frame) => {
                    set_peer(s.conn.state(), from);
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
        while let Some(&Queued { len, to }) = queue.front() {
            if len > out.len() {
                // The bytes were dropped (a close discards the output) and
                // the connection is ending: forget the rest.
                queue.clear();
                out.clear();
                break;
            }
            match socket.poll_send_to(cx, &out[..len], to) {
                Poll::Pending => return false,
                Poll::Ready(Ok(n)) => {
                    self.active = true;
                    stats::add(&s.core.counters.bytes_written, n as u64);
                }
                Poll::Ready(Err(e)) => {
                    self.unsendable.note(|dropped| {
                        tracing::warn!(conn = %s.conn.id(), %to, error = %e, dropped,
                            "datagrams the system refused to send were dropped (the socket stays open)");
                    });
                    tracing::debug!(%to, error = %e, "datagram not sent; dropped");
                }
            }
            queue.pop_front();
            out.advance(len);
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

/// Records `from` as the connection's peer (where `send_data` replies go),
/// unless it already is.
fn set_peer(state: &crate::net::conn::ConnState, from: SocketAddr) {
    let mut peer = state.peer.borrow_mut();
    if peer.as_ref().and_then(|p| p.inet()) != Some(from) {
        *peer = Some(from.into());
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

/// An empty frame of type `F`, for an empty datagram (U1: it arrives as one
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
