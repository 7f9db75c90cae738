//! A codec is user code: a panic in its `decode`, `decode_eof` or `encode`
//! is contained like a panic in a callback. The connection whose codec
//! panicked ends with `unbind(Panicked)`, the error handler is told (with
//! that connection's id), `stop_on_panic` stops the reactor, and nobody else
//! is harmed: 100 echo clients beside it keep every byte, a connection that
//! sent to it carries on, and a handler that reconnects from that `unbind`
//! really reconnects (it used to be left a zombie).

mod support;

use std::cell::RefCell;
use std::collections::HashMap;
use std::io::Write;
use std::rc::Rc;
use std::sync::mpsc;

use bytes::BytesMut;
use em::{Conn, Connection, ConnectionId, PanicReport, UnbindReason};
use tokio_util::codec::{Decoder, Encoder, LinesCodec, LinesCodecError};

use support::*;

/// `LinesCodec`, with a fault: `decode` panics on the line `"boom"`,
/// `decode_eof` panics on an unterminated last line, `encode` writes half of
/// the line `"explode"` and then panics.
#[derive(Debug, Default)]
struct Faulty(LinesCodec);

impl Decoder for Faulty {
    type Item = String;
    type Error = LinesCodecError;

    fn decode(&mut self, src: &mut BytesMut) -> Result<Option<String>, LinesCodecError> {
        let line = self.0.decode(src)?;
        if line.as_deref() == Some("boom") {
            panic!("decode exploded");
        }
        Ok(line)
    }

    fn decode_eof(&mut self, src: &mut BytesMut) -> Result<Option<String>, LinesCodecError> {
        if let Some(line) = self.decode(src)? {
            return Ok(Some(line));
        }
        if !src.is_empty() {
            panic!("decode_eof exploded");
        }
        Ok(None)
    }
}

impl Encoder<String> for Faulty {
    type Error = LinesCodecError;

    fn encode(&mut self, line: String, dst: &mut BytesMut) -> Result<(), LinesCodecError> {
        if line == "explode" {
            dst.extend_from_slice(b"expl");
            panic!("encode exploded");
        }
        self.0.encode(line, dst)
    }
}

/// The connections of the server, by id, so that one can send to another.
type Registry = Rc<RefCell<HashMap<ConnectionId, Conn<Faulty>>>>;

/// Echoes lines with the faulty codec. `TO n msg` sends `msg` to
/// connection `#n` and answers `SENT <bytes>`. Logs its unbind.
struct Server {
    log: Log,
    registry: Registry,
}

impl Connection for Server {
    type Codec = Faulty;
    fn codec(&self) -> Faulty {
        Faulty::default()
    }
    fn post_init(&mut self, conn: &Conn<Faulty>) {
        self.registry.borrow_mut().insert(conn.id(), conn.clone());
        conn.send_data(format!("ID {}", conn.id().get()));
    }
    fn receive_data(&mut self, conn: &Conn<Faulty>, line: String) {
        if let Some(rest) = line.strip_prefix("TO ") {
            let (to, msg) = rest.split_once(' ').unwrap();
            let target = self
                .registry
                .borrow()
                .values()
                .find(|c| c.id().get().to_string() == to)
                .cloned();
            let target = target.expect("a known connection");
            let r = target.try_send_data(msg.to_owned());
            conn.send_data(format!("SENT {}", r.as_ref().map_or(0, |n| *n)));
            conn.send_data(format!("PANIC {}", r.is_err_and(|e| e.is_panic())));
            return;
        }
        conn.send_data(line);
    }
    fn unbind(&mut self, conn: &Conn<Faulty>, why: UnbindReason) {
        self.registry.borrow_mut().remove(&conn.id());
        self.log
            .push(format!("{} unbind {}", conn.id(), reason(&why)));
    }
}

fn collect_reports() -> Rc<RefCell<Vec<PanicReport>>> {
    let reports = Rc::new(RefCell::new(Vec::new()));
    let r = reports.clone();
    em::set_error_handler(move |report| r.borrow_mut().push(report.clone()));
    reports
}

/// Starts the server, then runs `bad` (the client that provokes the codec,
/// given its `LineClient` and its connection id) beside 100 echo clients
/// doing 20 rounds each; returns how many of the 100 kept every byte, and
/// what `bad` returned.
fn with_a_hundred_echo_clients<T: Send + 'static>(
    builder: em::Builder,
    log: Log,
    bad: impl FnOnce(&mut LineClient, u64) -> T + Send + 'static,
) -> (em::Result<()>, Option<(usize, T)>) {
    const CLIENTS: usize = 100;
    const ROUNDS: usize = 20;
    let (done_tx, done_rx) = mpsc::channel();
    let result = run_builder_with_watchdog(builder, move || -> em::Result<()> {
        let registry = Registry::default();
        let server = em::start_server("127.0.0.1:0", move || Server {
            log: log.clone(),
            registry: registry.clone(),
        })?;
        let addr = server.local_addr().inet().expect("a TCP server");
        spawn_peer(em::handle()?, done_tx, move || {
            let mut good: Vec<LineClient> = (0..CLIENTS)
                .map(|_| {
                    let mut c = LineClient::connect(addr);
                    assert!(c.recv().starts_with("ID "));
                    c
                })
                .collect();
            let mut bad_client = LineClient::connect(addr);
            let id: u64 = bad_client.recv()["ID ".len()..].parse().unwrap();
            let mut intact = [true; CLIENTS];
            let mut bad = Some(bad);
            let mut outcome = None;
            for round in 0..ROUNDS {
                if round == ROUNDS / 2 {
                    outcome = bad.take().map(|bad| bad(&mut bad_client, id));
                }
                for (i, c) in good.iter_mut().enumerate() {
                    let line = format!("client {i} round {round}");
                    if c.round(&line) != line {
                        intact[i] = false;
                    }
                }
            }
            (intact.iter().filter(|ok| **ok).count(), outcome.unwrap())
        });
        Ok(())
    });
    // With stop_on_panic the peer thread fails when the reactor stops.
    let joined = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| join_peer(&done_rx)));
    (result, joined.ok())
}

#[test]
fn a_panic_in_decode_ends_that_connection_only() {
    let reports = collect_reports();
    let log = Log::default();
    let (result, outcome) =
        with_a_hundred_echo_clients(em::Reactor::builder(), log.clone(), |bad, id| {
            bad.send("boom");
            (id, bad.read_until_closed())
        });
    result.unwrap();
    let (intact, (id, rest)) = outcome.expect("the peer finished");
    assert_eq!(intact, 100, "every echo client kept every byte");
    assert!(rest.is_empty(), "{rest:?}");
    assert!(
        log.events()
            .contains(&format!("#{id} unbind Panicked(decode exploded)")),
        "{:?}",
        log.events()
    );
    let reports = reports.borrow();
    assert_eq!(reports.len(), 1, "{reports:?}");
    assert_eq!(reports[0].callback(), "decode");
    assert_eq!(reports[0].connection().map(ConnectionId::get), Some(id));
    em::clear_error_handler();
}

#[test]
fn a_panic_in_decode_eof_ends_that_connection_only() {
    let reports = collect_reports();
    let log = Log::default();
    let (result, outcome) =
        with_a_hundred_echo_clients(em::Reactor::builder(), log.clone(), |bad, id| {
            let raw = bad.writer();
            raw.write_all(b"an unterminated tail").unwrap();
            raw.shutdown(std::net::Shutdown::Write).unwrap();
            (id, bad.read_until_closed())
        });
    result.unwrap();
    let (intact, (id, _)) = outcome.expect("the peer finished");
    assert_eq!(intact, 100);
    assert!(
        log.events()
            .contains(&format!("#{id} unbind Panicked(decode_eof exploded)")),
        "{:?}",
        log.events()
    );
    assert_eq!(reports.borrow()[0].callback(), "decode_eof");
    em::clear_error_handler();
}

#[test]
fn a_panic_in_encode_ends_the_target_and_spares_the_sender() {
    let reports = collect_reports();
    let log = Log::default();
    let (result, outcome) =
        with_a_hundred_echo_clients(em::Reactor::builder(), log.clone(), |bad, id| {
            // Another client asks the server to send "explode" to `bad`.
            let mut sender = LineClient::connect(bad.peer());
            let sender_id = sender.recv();
            sender.send(&format!("TO {id} explode"));
            let answers = (sender.recv(), sender.recv());
            // The sender is unharmed: it still gets echoes.
            let echo = sender.round("still here");
            // `bad` never sees a half frame: its stream just ends.
            (id, sender_id, answers, echo, bad.read_until_closed())
        });
    result.unwrap();
    let (intact, (id, _sender_id, answers, echo, rest)) = outcome.expect("the peer finished");
    assert_eq!(intact, 100);
    assert_eq!(answers, ("SENT 0".to_owned(), "PANIC true".to_owned()));
    assert_eq!(echo, "still here");
    assert!(
        rest.is_empty(),
        "a half frame leaked: {:?}",
        String::from_utf8_lossy(&rest)
    );
    assert!(
        log.events()
            .contains(&format!("#{id} unbind Panicked(encode exploded)")),
        "{:?}",
        log.events()
    );
    let reports = reports.borrow();
    assert_eq!(reports.len(), 1, "{reports:?}");
    assert_eq!(reports[0].callback(), "encode");
    assert_eq!(reports[0].connection().map(ConnectionId::get), Some(id));
    em::clear_error_handler();
}

#[test]
fn stop_on_panic_stops_on_a_codec_panic() {
    let log = Log::default();
    let (result, _) = with_a_hundred_echo_clients(
        em::Reactor::builder().stop_on_panic(true),
        log.clone(),
        |bad, _| bad.send("boom"),
    );
    let err = result.expect_err("the codec panic stops the reactor");
    assert!(err.is_panic(), "{err}");
    assert_eq!(err.to_string(), "panic in decode: decode exploded");
}

/// A client whose codec panics on the server's first greeting, and whose
/// `unbind` reconnects: the reconnect really happens.
#[test]
fn reconnect_from_the_unbind_of_a_codec_panic_reconnects() {
    struct Greeter {
        greeted: usize,
    }
    impl Connection for Greeter {
        type Codec = LinesCodec;
        fn codec(&self) -> LinesCodec {
            LinesCodec::new()
        }
        fn post_init(&mut self, conn: &Conn<LinesCodec>) {
            self.greeted += 1;
            conn.send_data(if self.greeted == 1 { "boom" } else { "hello" });
        }
        fn receive_data(&mut self, _: &Conn<LinesCodec>, _: String) {}
    }
    struct Client {
        log: Log,
        addr: std::net::SocketAddr,
    }
    impl Connection for Client {
        type Codec = Faulty;
        fn codec(&self) -> Faulty {
            Faulty::default()
        }
        fn connection_completed(&mut self, _: &Conn<Faulty>) {
            self.log
                .push(format!("completed, {} open", em::connection_count()));
        }
        fn receive_data(&mut self, conn: &Conn<Faulty>, line: String) {
            self.log.push(format!("data {line}"));
            assert!(!conn.is_closed());
            em::stop();
        }
        fn unbind(&mut self, conn: &Conn<Faulty>, why: UnbindReason) {
            self.log.push(format!("unbind {}", reason(&why)));
            if matches!(why, UnbindReason::Panicked(_)) {
                conn.reconnect(self.addr).unwrap();
            }
        }
    }
    let log = Log::default();
    let l = log.clone();
    run_with_watchdog(move || -> em::Result<()> {
        let greeted = Rc::new(RefCell::new(0));
        let server = em::start_server("127.0.0.1:0", move || {
            *greeted.borrow_mut() += 1;
            Greeter {
                greeted: *greeted.borrow() - 1,
            }
        })?;
        let addr = server.local_addr().inet().expect("a TCP server");
        em::connect(addr, Client { log: l, addr })?;
        Ok(())
    })
    .unwrap();
    let events = log.events();
    assert_eq!(events[0], "completed, 2 open");
    assert_eq!(events[1], "unbind Panicked(decode exploded)");
    assert!(events[2].starts_with("completed"), "{events:?}");
    assert_eq!(events[3..], ["data hello", "unbind ReactorStopped"]);
}
