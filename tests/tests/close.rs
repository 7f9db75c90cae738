//! `close_connection` versus `close_connection_after_writing` (EventMachine
//! C13–C16): what reaches the peer, and what `send_data` does afterwards.

mod support;

use std::cell::{Cell, RefCell};
use std::io::Read;
use std::rc::Rc;

use bytes::{Bytes, BytesMut};
use em::{Conn, Connection, UnbindReason};
use tokio_util::codec::BytesCodec;

use support::*;

const EIGHT_MIB: usize = 8 << 20;

/// How a [`Sender`] closes after queueing its payload.
#[derive(Debug, Clone, Copy, PartialEq)]
enum How {
    /// `close_connection` right away.
    Now,
    /// `close_connection_after_writing`.
    AfterWriting,
    /// `close_connection_after_writing`, then `close_connection` (C16).
    AfterWritingThenNow,
    /// Nothing until the test asks (through `Handle::schedule`, see
    /// [`CLOSE_WHEN_ASKED`]), then `close_connection`.
    NowWhenAsked,
}

/// What a [`Sender`] saw, for the test thread to check after `run`.
#[derive(Debug, Default)]
struct Seen {
    queued: Cell<usize>,
    outbound_at_close: Cell<usize>,
    refused_send: Cell<Option<usize>>,
    refused_try_is_closed: Cell<Option<bool>>,
    unbind: RefCell<Vec<String>>,
}

thread_local! {
    /// The close of a `How::NowWhenAsked` connection, waiting on the reactor
    /// thread for a closure scheduled from the peer thread to run it.
    static CLOSE_WHEN_ASKED: RefCell<Option<Box<dyn FnOnce()>>> = const { RefCell::new(None) };
}

/// Queues `payload` from `post_init`, then closes as `how` says.
struct Sender {
    payload: Bytes,
    how: How,
    seen: Rc<Seen>,
}

impl Sender {
    fn close(&self, conn: &Conn<BytesCodec>) {
        self.seen.outbound_at_close.set(conn.outbound_data_size());
        match self.how {
            How::Now | How::NowWhenAsked => conn.close_connection(),
            How::AfterWriting => {
                conn.close_connection_after_writing();
                // C15: refused once closing after writing.
                self.seen
                    .refused_send
                    .set(Some(conn.send_data(Bytes::from_static(b"IGNORED"))));
                self.seen.refused_try_is_closed.set(Some(
                    conn.try_send_data(Bytes::from_static(b"IGNORED"))
                        .is_err_and(|e| e.is_closed()),
                ));
            }
            How::AfterWritingThenNow => {
                conn.close_connection_after_writing();
                conn.close_connection();
            }
        }
    }
}

impl Connection for Sender {
    type Codec = BytesCodec;

    fn codec(&self) -> BytesCodec {
        BytesCodec::new()
    }

    fn post_init(&mut self, conn: &Conn<BytesCodec>) {
        self.seen.queued.set(conn.send_data(self.payload.clone()));
        if self.how == How::NowWhenAsked {
            let this = Sender {
                payload: Bytes::new(),
                how: self.how,
                seen: self.seen.clone(),
            };
            let conn = conn.clone();
            CLOSE_WHEN_ASKED.with(|c| *c.borrow_mut() = Some(Box::new(move || this.close(&conn))));
        } else {
            self.close(conn);
        }
    }

    fn receive_data(&mut self, _: &Conn<BytesCodec>, _: BytesMut) {}

    fn unbind(&mut self, _: &Conn<BytesCodec>, why: UnbindReason) {
        self.seen.unbind.borrow_mut().push(reason(&why));
    }
}

/// Serves one [`Sender`] to a std client that reads until the server closed
/// (asking it to close once the first byte arrived, when `ask`); returns
/// what the client got.
fn serve_one(payload: Bytes, how: How, ask: bool) -> (Vec<u8>, Rc<Seen>) {
    let seen = Rc::new(Seen::default());
    let s = seen.clone();
    let (done_tx, done_rx) = std::sync::mpsc::channel();
    run_with_watchdog(move || -> em::Result<()> {
        let server = em::start_server("127.0.0.1:0", move || Sender {
            payload: payload.clone(),
            how,
            seen: s.clone(),
        })?;
        let addr = server.local_addr().inet().expect("a TCP server");
        let handle = em::handle()?;
        spawn_peer(handle.clone(), done_tx, move || {
            let mut c = client(addr);
            let mut got = Vec::new();
            if ask {
                // Once the first byte is here, the server has written what
                // the kernel would take; then have it close, and read on
                // only once it has (reading earlier would let it write more).
                let mut first = [0];
                c.read_exact(&mut first).unwrap();
                got.push(first[0]);
                let (closed_tx, closed_rx) = std::sync::mpsc::channel();
                handle
                    .schedule(move || {
                        CLOSE_WHEN_ASKED.with(|c| c.borrow_mut().take().expect("connection")());
                        closed_tx.send(()).unwrap();
                    })
                    .unwrap();
                recv(&closed_rx);
            }
            got.extend(read_until_closed(&mut c));
            got
        });
        Ok(())
    })
    .unwrap();
    (join_peer(&done_rx), seen)
}

#[test]
fn close_connection_discards_queued_output() {
    let payload = Bytes::from(pattern(EIGHT_MIB, 1));
    let (got, seen) = serve_one(payload, How::Now, false);
    assert_eq!(seen.queued.get(), EIGHT_MIB);
    assert_eq!(seen.outbound_at_close.get(), EIGHT_MIB);
    assert_eq!(
        got.len(),
        0,
        "nothing queued before close_connection leaves"
    );
    assert_eq!(*seen.unbind.borrow(), ["Closed"]);
}

/// Part of the payload has left (the kernel took it), the rest is still
/// queued when `close_connection` comes: the peer gets exactly the part that
/// left, intact, and nothing of the rest.
#[test]
fn close_connection_discards_what_the_kernel_has_not_taken() {
    let payload = Bytes::from(pattern(EIGHT_MIB, 2));
    let (got, seen) = serve_one(payload.clone(), How::NowWhenAsked, true);
    let left_behind = seen.outbound_at_close.get();
    assert!(
        left_behind > 0,
        "the test needs output still queued at the close (socket buffers took all 8 MiB)"
    );
    assert_eq!(got.len(), EIGHT_MIB - left_behind);
    assert!(got == payload[..got.len()], "the part that left is intact");
    assert_eq!(*seen.unbind.borrow(), ["Closed"]);
}

#[test]
fn close_connection_after_writing_delivers_8_mib_intact() {
    let payload = Bytes::from(pattern(EIGHT_MIB, 3));
    let (got, seen) = serve_one(payload.clone(), How::AfterWriting, false);
    assert_eq!(seen.queued.get(), EIGHT_MIB);
    assert_eq!(got.len(), EIGHT_MIB, "every byte arrives");
    assert!(got == payload, "every byte arrives intact and in order");
    assert_eq!(
        seen.refused_send.get(),
        Some(0),
        "send_data after close_connection_after_writing returns 0"
    );
    assert_eq!(
        seen.refused_try_is_closed.get(),
        Some(true),
        "try_send_data after close_connection_after_writing is an is_closed() error"
    );
    assert_eq!(*seen.unbind.borrow(), ["Closed"]);
}

/// C16: `close_connection` after `close_connection_after_writing` closes now.
#[test]
fn close_connection_overrides_close_connection_after_writing() {
    let payload = Bytes::from(pattern(EIGHT_MIB, 4));
    let (got, seen) = serve_one(payload, How::AfterWritingThenNow, false);
    assert_eq!(got.len(), 0);
    assert_eq!(*seen.unbind.borrow(), ["Closed"]);
}
