//! Flow control: `pause`/`resume` (reads only; output still leaves),
//! outbound watermarks with `outbound_drained`, and the `max_outbound` cap
//! that closes a connection whose peer never reads with `OutboundOverflow`
//! while other clients carry on.

mod support;

use std::cell::{Cell, RefCell};
use std::io::{Read, Write};
use std::rc::Rc;
use std::sync::mpsc;
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use em::{Conn, Connection, UnbindReason};
use tokio_util::codec::BytesCodec;

use support::*;

fn why(reason: &UnbindReason) -> String {
    match reason {
        UnbindReason::OutboundOverflow => "OutboundOverflow".into(),
        other => support::reason(other),
    }
}

/// Pauses in `post_init`, greets (output leaves while paused), and logs what
/// it receives.
struct Paused {
    timeline: Timeline,
    conns: Rc<RefCell<Vec<Conn<BytesCodec>>>>,
}

impl Connection for Paused {
    type Codec = BytesCodec;
    fn codec(&self) -> BytesCodec {
        BytesCodec::new()
    }
    fn post_init(&mut self, conn: &Conn<BytesCodec>) {
        conn.pause();
        assert!(conn.is_paused());
        conn.send_data(Bytes::from_static(b"hi"));
        self.conns.borrow_mut().push(conn.clone());
    }
    fn receive_data(&mut self, _: &Conn<BytesCodec>, data: BytesMut) {
        self.timeline
            .push(format!("server got {}", String::from_utf8_lossy(&data)));
    }
}

struct Hello {
    timeline: Timeline,
}

impl Connection for Hello {
    type Codec = BytesCodec;
    fn codec(&self) -> BytesCodec {
        BytesCodec::new()
    }
    fn connection_completed(&mut self, conn: &Conn<BytesCodec>) {
        conn.send_data(Bytes::from_static(b"hello"));
    }
    fn receive_data(&mut self, _: &Conn<BytesCodec>, data: BytesMut) {
        self.timeline
            .push(format!("client got {}", String::from_utf8_lossy(&data)));
    }
}

#[test]
fn a_paused_connection_reads_nothing_until_resumed_but_still_writes() {
    let out = Rc::new(RefCell::new(None));
    let o = out.clone();
    run_paused(move || -> em::Result<()> {
        let timeline = Timeline::start();
        *o.borrow_mut() = Some(timeline.clone());
        let conns = Rc::new(RefCell::new(Vec::new()));
        let (t, c) = (timeline.clone(), conns.clone());
        let server = em::start_server("127.0.0.1:0", move || Paused {
            timeline: t.clone(),
            conns: c.clone(),
        })?;
        em::connect(
            server.local_addr(),
            Hello {
                timeline: timeline.clone(),
            },
        )?;
        let t = timeline.clone();
        em::add_timer(Duration::from_secs(1), move || {
            let conn = conns.borrow()[0].clone();
            t.push(format!("resume (paused: {})", conn.is_paused()));
            conn.resume();
            assert!(!conn.is_paused());
        })?;
        em::add_timer(Duration::from_secs(2), em::stop)?;
        Ok(())
    })
    .unwrap();
    assert_eq!(
        out.borrow_mut().take().unwrap().events_ms(),
        [
            ("client got hi".to_owned(), 0),
            ("resume (paused: true)".to_owned(), 1000),
            ("server got hello".to_owned(), 1000),
        ]
    );
}

/// Sends `total` bytes of a pattern in 64 KiB chunks, respecting the
/// watermarks, then closes after writing.
struct Producer {
    data: Bytes,
    sent: usize,
    max_queued: Rc<Cell<usize>>,
    drained: Rc<Cell<usize>>,
    reason: Rc<RefCell<String>>,
}

const CHUNK: usize = 64 * 1024;

impl Producer {
    fn produce(&mut self, conn: &Conn<BytesCodec>) {
        while self.sent < self.data.len() && !conn.is_above_high_watermark() {
            let end = (self.sent + CHUNK).min(self.data.len());
            conn.send_data(self.data.slice(self.sent..end));
            self.sent = end;
            self.max_queued
                .set(self.max_queued.get().max(conn.outbound_data_size()));
        }
        if self.sent == self.data.len() {
            conn.close_connection_after_writing();
        }
    }
}

impl Connection for Producer {
    type Codec = BytesCodec;
    fn codec(&self) -> BytesCodec {
        BytesCodec::new()
    }
    fn post_init(&mut self, conn: &Conn<BytesCodec>) {
        self.produce(conn);
    }
    fn outbound_drained(&mut self, conn: &Conn<BytesCodec>) {
        assert!(!conn.is_above_high_watermark());
        assert!(conn.outbound_data_size() <= 256 * 1024);
        self.drained.set(self.drained.get() + 1);
        self.produce(conn);
    }
    fn receive_data(&mut self, _: &Conn<BytesCodec>, _: BytesMut) {}
    fn unbind(&mut self, _: &Conn<BytesCodec>, reason: UnbindReason) {
        *self.reason.borrow_mut() = why(&reason);
    }
}

#[test]
fn a_producer_that_respects_the_watermarks_stays_bounded_and_delivers_everything() {
    const TOTAL: usize = 16 << 20;
    let data = Bytes::from(pattern(TOTAL, 3));
    let expected = data.clone();
    let max_queued = Rc::new(Cell::new(0));
    let drained = Rc::new(Cell::new(0));
    let reason = Rc::new(RefCell::new(String::new()));
    let (m, d, r) = (max_queued.clone(), drained.clone(), reason.clone());
    let (done_tx, done_rx) = mpsc::channel();
    run_builder_with_watchdog(
        em::Reactor::builder().outbound_watermarks(1 << 20, 256 * 1024),
        move || -> em::Result<()> {
            let server = em::start_server("127.0.0.1:0", move || Producer {
                data: data.clone(),
                sent: 0,
                max_queued: m.clone(),
                drained: d.clone(),
                reason: r.clone(),
            })?;
            let addr = server.local_addr().inet().expect("a TCP server");
            spawn_peer(em::handle()?, done_tx, move || {
                read_to_end(&mut client(addr))
            });
            Ok(())
        },
    )
    .unwrap();
    let received = join_peer(&done_rx);
    assert!(received == expected[..], "every byte, in order");
    assert!(
        max_queued.get() <= (1 << 20) + CHUNK,
        "queue stayed under high + one chunk: {}",
        max_queued.get()
    );
    assert!(drained.get() >= 1, "outbound_drained ran");
    assert_eq!(*reason.borrow(), "Closed");
}

/// Streams 64 KiB chunks every tick, ignoring the watermarks, after the
/// peer sends `S`; echoes anything else.
struct Firehose {
    max_queued: Rc<Cell<usize>>,
    overflow_error: Rc<Cell<bool>>,
    overflowed: mpsc::Sender<()>,
    log: Log,
}

fn stream(conn: Conn<BytesCodec>, chunk: Bytes, max: Rc<Cell<usize>>, err: Rc<Cell<bool>>) {
    match conn.try_send_data(chunk.clone()) {
        Ok(_) => {
            max.set(max.get().max(conn.outbound_data_size()));
            em::next_tick(move || stream(conn, chunk, max, err));
        }
        Err(e) => err.set(e.is_outbound_overflow()),
    }
}

impl Connection for Firehose {
    type Codec = BytesCodec;
    fn codec(&self) -> BytesCodec {
        BytesCodec::new()
    }
    fn receive_data(&mut self, conn: &Conn<BytesCodec>, data: BytesMut) {
        if &data[..] == b"S" {
            let chunk = Bytes::from(vec![b'x'; CHUNK]);
            stream(
                conn.clone(),
                chunk,
                self.max_queued.clone(),
                self.overflow_error.clone(),
            );
        } else {
            conn.send_data(data);
        }
    }
    fn unbind(&mut self, _: &Conn<BytesCodec>, reason: UnbindReason) {
        if matches!(reason, UnbindReason::OutboundOverflow) {
            self.overflowed.send(()).ok();
        }
        self.log.push(format!("unbind {}", why(&reason)));
    }
}

#[test]
fn a_client_that_never_reads_is_closed_with_outbound_overflow_and_others_carry_on() {
    const MAX: usize = 2 << 20;
    let max_queued = Rc::new(Cell::new(0));
    let overflow_error = Rc::new(Cell::new(false));
    let log = Log::default();
    let (m, e, l) = (max_queued.clone(), overflow_error.clone(), log.clone());
    let (overflow_tx, overflow_rx) = mpsc::channel();
    let (done_tx, done_rx) = mpsc::channel();
    run_builder_with_watchdog(
        em::Reactor::builder()
            .outbound_watermarks(1 << 20, 256 * 1024)
            .max_outbound(MAX),
        move || -> em::Result<()> {
            let server = em::start_server("127.0.0.1:0", move || Firehose {
                max_queued: m.clone(),
                overflow_error: e.clone(),
                overflowed: overflow_tx.clone(),
                log: l.clone(),
            })?;
            let addr = server.local_addr().inet().expect("a TCP server");
            spawn_peer(em::handle()?, done_tx, move || {
                let mut others: Vec<_> = (0..3).map(|_| client(addr)).collect();
                let mut sink = client(addr);
                std::io::Write::write_all(&mut sink, b"S").unwrap();
                let mut rounds = 0;
                let mut intact = true;
                // Echo while the firehose runs, until it overflows, then a
                // few rounds more.
                let mut after = 0;
                while after < 5 {
                    for (i, c) in others.iter_mut().enumerate() {
                        let data = pattern(4096, (rounds * 3 + i) as u64);
                        intact &= echo_round(c, &data) == data;
                    }
                    rounds += 1;
                    if after > 0 || overflow_rx.recv_timeout(Duration::from_millis(1)).is_ok() {
                        after += 1;
                    }
                    assert!(rounds < 100_000, "no overflow");
                }
                (intact, others)
            });
            Ok(())
        },
    )
    .unwrap();
    let (intact, _others) = join_peer(&done_rx);
    assert!(intact, "the other clients' echoes were intact");
    assert!(
        max_queued.get() <= MAX,
        "the queue never passed max_outbound: {}",
        max_queued.get()
    );
    assert!(
        overflow_error.get(),
        "try_send_data said is_outbound_overflow"
    );
    let mut events = log.events();
    events.sort();
    assert_eq!(
        events,
        [
            "unbind OutboundOverflow",
            "unbind ReactorStopped",
            "unbind ReactorStopped",
            "unbind ReactorStopped",
        ]
    );
}

#[test]
fn watermark_and_cap_options_are_checked() {
    let err = em::Reactor::builder()
        .outbound_watermarks(10, 20)
        .build()
        .unwrap_err();
    assert!(err.is_config(), "{err}");
    let err = em::Reactor::builder()
        .outbound_watermarks(1 << 20, 0)
        .max_outbound(1024)
        .build()
        .unwrap_err();
    assert!(err.is_config(), "{err}");
    let checked = Rc::new(Cell::new(false));
    let c = checked.clone();
    run_with_watchdog(move || -> em::Result<()> {
        let (_guard, addr) = refusing_addr();
        let conn = em::connect(
            addr,
            Hello {
                timeline: Timeline::start(),
            },
        )?;
        assert_eq!(conn.outbound_watermarks(), (1 << 20, 256 * 1024));
        assert_eq!(conn.max_outbound(), 8 << 20);
        assert!(conn
            .set_outbound_watermarks(10, 20)
            .unwrap_err()
            .is_invalid_argument());
        assert!(conn
            .set_outbound_watermarks(16 << 20, 0)
            .unwrap_err()
            .is_invalid_argument());
        assert!(conn.set_max_outbound(1).unwrap_err().is_invalid_argument());
        conn.set_outbound_watermarks(100, 10)?;
        conn.set_max_outbound(1000)?;
        assert_eq!(conn.outbound_watermarks(), (100, 10));
        assert_eq!(conn.max_outbound(), 1000);
        c.set(true);
        em::stop();
        Ok(())
    })
    .unwrap();
    assert!(checked.get());
}

/// Answers every line with a reply 58 times its size, like `pubsub`'s
/// error for an empty line; logs its unbind. Its output cap is 2 MiB, and it
/// reads nothing until `go` gets an item (so that the client's requests
/// are all waiting in the socket, and reads come back full).
struct Verbose {
    log: Log,
    go: em::Channel<()>,
}

const REPLY: &str = "ERR commands: SUB topic | UNSUB topic | PUB topic message";

impl Connection for Verbose {
    type Codec = tokio_util::codec::LinesCodec;
    fn codec(&self) -> Self::Codec {
        tokio_util::codec::LinesCodec::new()
    }
    fn post_init(&mut self, conn: &Conn<Self::Codec>) {
        conn.set_max_outbound(2 << 20).unwrap();
        conn.pause();
        let c = conn.clone();
        self.go.pop(move |()| c.resume());
    }
    fn receive_data(&mut self, conn: &Conn<Self::Codec>, _: String) {
        conn.send_data(REPLY);
    }
    fn unbind(&mut self, _: &Conn<Self::Codec>, why: UnbindReason) {
        self.log.push(reason(&why));
    }
}

/// A client that reads its replies as fast as it can is never cut off for
/// overflow, however much larger the replies are than the requests: one
/// read of 64 KiB of empty lines asks for 3.7 MiB of replies, past the
/// 2 MiB cap, so decoding stops at the high watermark (1 MiB) and the rest
/// of the read waits until the output drains. (It used to decode the whole
/// read at once and end the connection with `OutboundOverflow`.)
#[test]
fn a_reading_client_whose_replies_dwarf_its_requests_is_never_cut_off() {
    const LINES: usize = 100_000;
    let log = Log::default();
    let l = log.clone();
    let (done_tx, done_rx) = mpsc::channel();
    run_with_watchdog(move || -> em::Result<()> {
        let go = em::Channel::new();
        let g = go.clone();
        let server = em::start_server("127.0.0.1:0", move || Verbose {
            log: l.clone(),
            go: g.clone(),
        })?;
        let addr = server.local_addr().inet().expect("a TCP server");
        let go = go.sender()?;
        spawn_peer(em::handle()?, done_tx, move || {
            let mut s = client(addr);
            let mut writer = s.try_clone().unwrap();
            let (sent_tx, sent_rx) = mpsc::channel();
            let sending = std::thread::spawn(move || {
                writer.write_all(&vec![b'\n'; LINES]).unwrap();
                sent_tx.send(()).ok();
            });
            // Let the requests pile up in the socket first (they fit in its
            // buffers; if they did not, the server would simply start with
            // less waiting), so that its reads come back full.
            let _ = sent_rx.recv_timeout(std::time::Duration::from_secs(2));
            go.push(()).unwrap();
            let want = LINES * (REPLY.len() + 1);
            let mut got = 0;
            let mut buf = vec![0; 256 * 1024];
            while got < want {
                match s.read(&mut buf) {
                    Ok(0) => break,
                    Ok(n) => got += n,
                    Err(e) => panic!("read failed after {got} bytes: {e}"),
                }
            }
            sending.join().unwrap();
            got == want
        });
        Ok(())
    })
    .unwrap();
    assert!(join_peer(&done_rx), "every reply arrived");
    assert_eq!(log.events(), ["ReactorStopped"], "never cut off");
}
