//! The connection rules that hold for every transport, one body per rule,
//! each run over TCP, Unix-domain sockets, an attached socketpair and an
//! in-memory pair: callback order, exactly one `unbind` on each path,
//! `close_connection_after_writing` delivering 8 MiB intact, codec errors,
//! the inactivity timeout, watermarks, and `pause` inside `receive_data`.

mod support;

use std::cell::{Cell, RefCell};
use std::rc::Rc;
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use em::{Conn, Connection, UnbindReason};
use tokio::time::Instant;
use tokio_util::codec::{BytesCodec, LinesCodec};

use support::transports::{link, per_transport, Transport};
use support::*;

/// The server side of most rules: logs its callbacks as `s …`, echoes lines
/// (at most 64 bytes each) and can be told to panic.
struct Server {
    log: Log,
    panic_on: Option<&'static str>,
}

impl Connection for Server {
    type Codec = LinesCodec;
    fn codec(&self) -> LinesCodec {
        LinesCodec::new_with_max_length(64)
    }
    fn post_init(&mut self, _: &Conn<LinesCodec>) {
        self.log.push("s post_init");
    }
    fn connection_completed(&mut self, _: &Conn<LinesCodec>) {
        self.log.push("s completed");
    }
    fn receive_data(&mut self, conn: &Conn<LinesCodec>, line: String) {
        self.log.push(format!("s data {line}"));
        if self.panic_on == Some(line.as_str()) {
            panic!("told to panic on {line}");
        }
        conn.send_data(line);
    }
    fn unbind(&mut self, _: &Conn<LinesCodec>, why: UnbindReason) {
        self.log.push(format!("s unbind {}", reason(&why)));
    }
}

/// The client side: sends `lines` from `post_init` (queued until
/// connected), logs its callbacks as `c …`, and on the last echo does
/// `then`.
struct Client {
    log: Log,
    lines: Vec<&'static str>,
    then: Then,
}

#[derive(Clone, Copy, PartialEq)]
enum Then {
    Close,
    StopReactor,
    Nothing,
}

impl Connection for Client {
    type Codec = LinesCodec;
    fn codec(&self) -> LinesCodec {
        LinesCodec::new_with_max_length(64 * 1024)
    }
    fn post_init(&mut self, conn: &Conn<LinesCodec>) {
        self.log.push("c post_init");
        for line in &self.lines {
            conn.send_data(*line);
        }
    }
    fn connection_completed(&mut self, _: &Conn<LinesCodec>) {
        self.log.push("c completed");
    }
    fn receive_data(&mut self, conn: &Conn<LinesCodec>, line: String) {
        self.log.push(format!("c data {line}"));
        if self.lines.last() == Some(&line.as_str()) {
            match self.then {
                Then::Close => conn.close_connection(),
                Then::StopReactor => em::stop(),
                Then::Nothing => {}
            }
        }
    }
    fn unbind(&mut self, _: &Conn<LinesCodec>, why: UnbindReason) {
        self.log.push(format!("c unbind {}", reason(&why)));
    }
}

/// The events of one side (`"s "` or `"c "`), in order.
fn side(log: &Log, prefix: &str) -> Vec<String> {
    log.events()
        .into_iter()
        .filter(|e| e.starts_with(prefix))
        .collect()
}

/// Stops the reactor once both ends have logged their `unbind`.
fn stop_when_both_unbound(log: &Log) {
    let log = log.clone();
    em::tick_loop(move || {
        if side(&log, "s unbind").len() + side(&log, "c unbind").len() >= 2 {
            em::stop();
            std::ops::ControlFlow::Break(())
        } else {
            std::ops::ControlFlow::Continue(())
        }
    });
}

/// C2/C3/C4/C5: per side, `post_init` first; the client's
/// `connection_completed` (where there is a connect) before its first
/// `receive_data`; data sent from `post_init` is delivered once connected;
/// a local close gives `Closed` here and `PeerClosed` there, once each.
fn callback_order_and_close_reasons(kind: Transport) {
    let log = Log::default();
    let l = log.clone();
    run_with_watchdog(move || -> em::Result<()> {
        link(
            kind,
            Server {
                log: l.clone(),
                panic_on: None,
            },
            Client {
                log: l.clone(),
                lines: vec!["ping", "pong"],
                then: Then::Close,
            },
        )?;
        stop_when_both_unbound(&l);
        Ok(())
    })
    .unwrap();
    let mut client = vec!["c post_init"];
    if kind.completes() {
        client.push("c completed");
    }
    client.extend(["c data ping", "c data pong", "c unbind Closed"]);
    assert_eq!(side(&log, "c "), client, "{}", kind.name());
    assert_eq!(
        side(&log, "s "),
        [
            "s post_init",
            "s data ping",
            "s data pong",
            "s unbind PeerClosed"
        ],
        "{}",
        kind.name()
    );
}

/// C10 / R5: a reactor stop gives each end exactly one
/// `unbind(ReactorStopped)`.
fn reactor_stop_unbinds_each_end_once(kind: Transport) {
    let log = Log::default();
    let l = log.clone();
    run_with_watchdog(move || -> em::Result<()> {
        link(
            kind,
            Server {
                log: l.clone(),
                panic_on: None,
            },
            Client {
                log: l.clone(),
                lines: vec!["hello"],
                then: Then::StopReactor,
            },
        )?;
        Ok(())
    })
    .unwrap();
    assert_eq!(
        log.count("s unbind ReactorStopped"),
        1,
        "{:?}",
        log.events()
    );
    assert_eq!(
        log.count("c unbind ReactorStopped"),
        1,
        "{:?}",
        log.events()
    );
    assert_eq!(
        side(&log, "s unbind").len() + side(&log, "c unbind").len(),
        2
    );
}

/// A panic in `receive_data` ends that end with `unbind(Panicked)`, once;
/// the other end sees its peer go away.
fn panic_in_a_callback_unbinds_once_with_panicked(kind: Transport) {
    let log = Log::default();
    let l = log.clone();
    run_with_watchdog(move || -> em::Result<()> {
        link(
            kind,
            Server {
                log: l.clone(),
                panic_on: Some("boom"),
            },
            Client {
                log: l.clone(),
                lines: vec!["boom"],
                then: Then::Nothing,
            },
        )?;
        stop_when_both_unbound(&l);
        Ok(())
    })
    .unwrap();
    assert_eq!(
        side(&log, "s unbind"),
        ["s unbind Panicked(told to panic on boom)"]
    );
    let client = side(&log, "c unbind");
    assert!(
        client == ["c unbind PeerClosed"] || client == ["c unbind Io(ConnectionReset)"],
        "{}: {client:?}",
        kind.name()
    );
}

/// A line longer than the server's codec allows ends that connection with
/// `unbind(Codec(..))`, once, and its peer with a close.
fn codec_error_ends_the_connection_once(kind: Transport) {
    let long = "x".repeat(1000);
    let long: &'static str = Box::leak(long.into_boxed_str());
    let log = Log::default();
    let l = log.clone();
    run_with_watchdog(move || -> em::Result<()> {
        link(
            kind,
            Server {
                log: l.clone(),
                panic_on: None,
            },
            Client {
                log: l.clone(),
                lines: vec![long],
                then: Then::Nothing,
            },
        )?;
        stop_when_both_unbound(&l);
        Ok(())
    })
    .unwrap();
    assert_eq!(
        side(&log, "s unbind"),
        ["s unbind Codec(MaxLineLengthExceeded)"],
        "{}",
        kind.name()
    );
    assert_eq!(side(&log, "c unbind").len(), 1, "{:?}", log.events());
}

/// Sends `total` bytes of a pattern from `post_init`, then
/// `close_connection_after_writing`.
struct Sender {
    total: usize,
}

impl Connection for Sender {
    type Codec = BytesCodec;
    fn codec(&self) -> BytesCodec {
        BytesCodec::new()
    }
    fn post_init(&mut self, conn: &Conn<BytesCodec>) {
        conn.send_data(Bytes::from(pattern(self.total, 3)));
        conn.close_connection_after_writing();
    }
    fn receive_data(&mut self, _: &Conn<BytesCodec>, _: BytesMut) {}
}

/// Collects everything it receives; at its `unbind`, records the bytes and
/// the reason and stops the reactor.
struct Collector {
    got: Rc<RefCell<Vec<u8>>>,
    ended: Rc<RefCell<Option<String>>>,
}

impl Connection for Collector {
    type Codec = BytesCodec;
    fn codec(&self) -> BytesCodec {
        BytesCodec::new()
    }
    fn receive_data(&mut self, _: &Conn<BytesCodec>, data: BytesMut) {
        self.got.borrow_mut().extend_from_slice(&data);
    }
    fn unbind(&mut self, _: &Conn<BytesCodec>, why: UnbindReason) {
        *self.ended.borrow_mut() = Some(reason(&why));
        em::stop();
    }
}

/// C14: `close_connection_after_writing` delivers 8 MiB intact, then the
/// peer sees the close.
fn close_after_writing_delivers_eight_mib_intact(kind: Transport) {
    const TOTAL: usize = 8 << 20;
    let got: Rc<RefCell<Vec<u8>>> = Rc::default();
    let ended: Rc<RefCell<Option<String>>> = Rc::default();
    let (g, e) = (got.clone(), ended.clone());
    run_with_watchdog(move || -> em::Result<()> {
        link(
            kind,
            Sender { total: TOTAL },
            Collector { got: g, ended: e },
        )?;
        Ok(())
    })
    .unwrap();
    assert_eq!(ended.borrow().as_deref(), Some("PeerClosed"));
    let got = got.borrow();
    assert_eq!(got.len(), TOTAL, "{}", kind.name());
    assert!(
        *got == pattern(TOTAL, 3),
        "{}: the bytes differ",
        kind.name()
    );
}

/// Sets a 5 s inactivity timeout in `post_init` and logs the instant of
/// its last line and of its `unbind`.
struct Idle {
    last: Rc<Cell<Option<Instant>>>,
    ended: Rc<RefCell<Option<(String, Instant)>>>,
}

impl Connection for Idle {
    type Codec = LinesCodec;
    fn codec(&self) -> LinesCodec {
        LinesCodec::new()
    }
    fn post_init(&mut self, conn: &Conn<LinesCodec>) {
        conn.set_comm_inactivity_timeout(Duration::from_secs(5));
    }
    fn receive_data(&mut self, _: &Conn<LinesCodec>, _: String) {
        self.last.set(Some(Instant::now()));
    }
    fn unbind(&mut self, _: &Conn<LinesCodec>, why: UnbindReason) {
        *self.ended.borrow_mut() = Some((reason(&why), Instant::now()));
        em::stop();
    }
}

/// C23: the inactivity timeout closes at last activity + timeout (paused
/// clock: exact).
fn inactivity_timeout_fires_at_last_activity_plus_timeout(kind: Transport) {
    let last: Rc<Cell<Option<Instant>>> = Rc::default();
    let ended: Rc<RefCell<Option<(String, Instant)>>> = Rc::default();
    let (l, e) = (last.clone(), ended.clone());
    run_paused(move || -> em::Result<()> {
        let client = link(
            kind,
            Idle { last: l, ended: e },
            Client {
                log: Log::default(),
                lines: vec![],
                then: Then::Nothing,
            },
        )?;
        // Activity at 2 s moves the deadline to 7 s.
        em::add_timer(Duration::from_secs(2), move || {
            client.send_data("still here");
        })?;
        Ok(())
    })
    .unwrap();
    let (why, at) = ended.borrow().clone().expect("the server unbound");
    assert_eq!(why, "InactivityTimeout", "{}", kind.name());
    let last = last.get().expect("the line arrived");
    let idle = at - last;
    assert!(
        idle >= Duration::from_secs(5) && idle <= Duration::from_millis(5_002),
        "{}: closed {idle:?} after the last activity",
        kind.name()
    );
}

/// Produces `total` bytes in 16 KiB chunks, only while its output is not
/// above the high watermark (64 KiB, low 16 KiB), resuming from
/// `outbound_drained`; records the largest queue it saw.
struct Producer {
    data: Bytes,
    sent: usize,
    drained: Rc<Cell<usize>>,
    peak: Rc<Cell<usize>>,
}

impl Producer {
    fn produce(&mut self, conn: &Conn<BytesCodec>) {
        let total = self.data.len();
        while self.sent < total && !conn.is_above_high_watermark() {
            let n = (16 << 10).min(total - self.sent);
            conn.send_data(self.data.slice(self.sent..self.sent + n));
            self.sent += n;
            self.peak
                .set(self.peak.get().max(conn.outbound_data_size()));
        }
        if self.sent == total {
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
        conn.set_outbound_watermarks(64 << 10, 16 << 10).unwrap();
        self.produce(conn);
    }
    fn receive_data(&mut self, _: &Conn<BytesCodec>, _: BytesMut) {}
    fn outbound_drained(&mut self, conn: &Conn<BytesCodec>) {
        self.drained.set(self.drained.get() + 1);
        self.produce(conn);
    }
}

/// A producer held by the high watermark and resumed by `outbound_drained`
/// delivers everything, in order, and its queue never grows past the high
/// watermark by more than one chunk.
fn watermarks_pace_a_producer(kind: Transport) {
    const TOTAL: usize = 4 << 20;
    let got: Rc<RefCell<Vec<u8>>> = Rc::default();
    let ended: Rc<RefCell<Option<String>>> = Rc::default();
    let drained: Rc<Cell<usize>> = Rc::default();
    let peak: Rc<Cell<usize>> = Rc::default();
    let (g, e, d, p) = (got.clone(), ended.clone(), drained.clone(), peak.clone());
    run_with_watchdog(move || -> em::Result<()> {
        link(
            kind,
            Producer {
                data: Bytes::from(pattern(TOTAL, 5)),
                sent: 0,
                drained: d,
                peak: p,
            },
            Collector { got: g, ended: e },
        )?;
        Ok(())
    })
    .unwrap();
    assert_eq!(ended.borrow().as_deref(), Some("PeerClosed"));
    assert!(*got.borrow() == pattern(TOTAL, 5), "{}", kind.name());
    assert!(
        drained.get() > 0,
        "{}: outbound_drained never ran",
        kind.name()
    );
    assert!(
        peak.get() <= (64 << 10) + (16 << 10),
        "{}: the queue reached {}",
        kind.name(),
        peak.get()
    );
}

/// Pauses at the first line and resumes on the next tick, logging each.
struct Pauser {
    log: Log,
}

impl Connection for Pauser {
    type Codec = LinesCodec;
    fn codec(&self) -> LinesCodec {
        LinesCodec::new()
    }
    fn receive_data(&mut self, conn: &Conn<LinesCodec>, line: String) {
        self.log.push(format!("s data {line}"));
        if line == "a" {
            conn.pause();
            let (conn, log) = (conn.clone(), self.log.clone());
            em::next_tick(move || {
                log.push("s resume");
                conn.resume();
            });
        }
        if line == "c" {
            em::stop();
        }
    }
}

/// Rule 3 of the engine issue: `pause()` inside `receive_data` holds the
/// other frames of the same read until `resume()`, and then delivers them
/// in order.
fn pause_in_receive_data_holds_the_rest_of_the_read(kind: Transport) {
    let log = Log::default();
    let l = log.clone();
    run_with_watchdog(move || -> em::Result<()> {
        link(
            kind,
            Pauser { log: l },
            Client {
                log: Log::default(),
                // One write: the three lines arrive in one read.
                lines: vec!["a\nb\nc"],
                then: Then::Nothing,
            },
        )?;
        Ok(())
    })
    .unwrap();
    assert_eq!(
        log.events(),
        ["s data a", "s resume", "s data b", "s data c"],
        "{}",
        kind.name()
    );
}

per_transport!(
    callback_order_and_close_reasons,
    reactor_stop_unbinds_each_end_once,
    panic_in_a_callback_unbinds_once_with_panicked,
    codec_error_ends_the_connection_once,
    close_after_writing_delivers_eight_mib_intact,
    inactivity_timeout_fires_at_last_activity_plus_timeout,
    watermarks_pace_a_producer,
    pause_in_receive_data_holds_the_rest_of_the_read,
);
