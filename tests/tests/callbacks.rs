//! The order of a connection's callbacks, on the server and the client side
//! (EventMachine C2–C5).

mod support;

use std::cell::Cell;
use std::io::{BufRead, BufReader, Write};
use std::net::TcpListener;
use std::rc::Rc;
use std::sync::mpsc;

use em::{Conn, Connection, UnbindReason};
use tokio_util::codec::LinesCodec;

use support::*;

/// Stops the reactor once `expected` unbinds have run.
#[derive(Debug, Clone)]
struct StopAfter {
    left: Rc<Cell<usize>>,
}

impl StopAfter {
    fn new(expected: usize) -> Self {
        StopAfter {
            left: Rc::new(Cell::new(expected)),
        }
    }

    fn unbound(&self) {
        self.left.set(self.left.get() - 1);
        if self.left.get() == 0 {
            em::stop();
        }
    }
}

/// Server side: greets from `post_init`, echoes lines, logs every callback.
struct Server {
    log: Log,
    stop: StopAfter,
}

impl Connection for Server {
    type Codec = LinesCodec;

    fn codec(&self) -> LinesCodec {
        LinesCodec::new_with_max_length(1024)
    }

    fn post_init(&mut self, conn: &Conn<LinesCodec>) {
        self.log.push("post_init");
        conn.send_data("hello");
    }

    fn connection_completed(&mut self, _: &Conn<LinesCodec>) {
        self.log.push("connection_completed");
    }

    fn receive_data(&mut self, conn: &Conn<LinesCodec>, line: String) {
        self.log.push(format!("receive_data {line}"));
        conn.send_data(line);
    }

    fn unbind(&mut self, _: &Conn<LinesCodec>, why: UnbindReason) {
        self.log.push(format!("unbind {}", reason(&why)));
        self.stop.unbound();
    }
}

/// Client side: sends "ping" from `post_init` (before the connect completed),
/// closes once the echo of "ping" arrived, logs every callback.
struct Client {
    log: Log,
    stop: StopAfter,
}

impl Connection for Client {
    type Codec = LinesCodec;

    fn codec(&self) -> LinesCodec {
        LinesCodec::new_with_max_length(1024)
    }

    fn post_init(&mut self, conn: &Conn<LinesCodec>) {
        self.log.push("post_init");
        assert_eq!(
            conn.peer_addr(),
            None,
            "post_init runs before the connect completed"
        );
        assert!(
            conn.send_data("ping") > 0,
            "send_data from post_init is queued"
        );
    }

    fn connection_completed(&mut self, conn: &Conn<LinesCodec>) {
        self.log.push("connection_completed");
        assert!(conn.peer_addr().is_some(), "connected: the peer is known");
    }

    fn receive_data(&mut self, conn: &Conn<LinesCodec>, line: String) {
        self.log.push(format!("receive_data {line}"));
        if line == "ping" {
            conn.close_connection();
        }
    }

    fn unbind(&mut self, _: &Conn<LinesCodec>, why: UnbindReason) {
        self.log.push(format!("unbind {}", reason(&why)));
        self.stop.unbound();
    }
}

#[test]
fn server_and_client_callbacks_run_in_order() {
    let server_log = Log::default();
    let client_log = Log::default();
    let (s, c) = (server_log.clone(), client_log.clone());
    run_with_watchdog(move || -> em::Result<()> {
        let stop = StopAfter::new(2);
        let st = stop.clone();
        let server = em::start_server("127.0.0.1:0", move || Server {
            log: s.clone(),
            stop: st.clone(),
        })?;
        em::connect(
            server.local_addr(),
            Client {
                log: c.clone(),
                stop,
            },
        )?;
        c.push("connect returned");
        Ok(())
    })
    .unwrap();
    assert_eq!(
        server_log.events(),
        ["post_init", "receive_data ping", "unbind PeerClosed"],
        "server side: post_init, receive_data, unbind; never connection_completed"
    );
    assert_eq!(
        client_log.events(),
        [
            "post_init",
            "connect returned",
            "connection_completed",
            "receive_data hello",
            "receive_data ping",
            "unbind Closed",
        ],
        "client side: post_init inside connect, then connection_completed once, before any receive_data"
    );
}

/// Many clients of a server that greets at once: for every one of them,
/// `connection_completed` runs exactly once and before the first
/// `receive_data`, although the greeting may be readable as soon as the
/// connect completes (C4).
#[test]
fn connection_completed_precedes_receive_data_for_every_client() {
    const CLIENTS: usize = 50;
    let logs: Vec<Log> = (0..CLIENTS).map(|_| Log::default()).collect();
    let client_logs = logs.clone();
    run_with_watchdog(move || -> em::Result<()> {
        let stop = StopAfter::new(2 * CLIENTS);
        let st = stop.clone();
        let server = em::start_server("127.0.0.1:0", move || Server {
            log: Log::default(),
            stop: st.clone(),
        })?;
        for log in client_logs {
            em::connect(
                server.local_addr(),
                Client {
                    log,
                    stop: stop.clone(),
                },
            )?;
        }
        Ok(())
    })
    .unwrap();
    for (i, log) in logs.iter().enumerate() {
        assert_eq!(
            log.events(),
            [
                "post_init",
                "connection_completed",
                "receive_data hello",
                "receive_data ping",
                "unbind Closed",
            ],
            "client {i}"
        );
    }
}

/// C5: what a client sends from `post_init`, before its connect completed,
/// reaches the peer intact and in order once connected.
#[test]
fn data_sent_from_client_post_init_is_delivered_once_connected() {
    struct Eager {
        log: Log,
    }
    impl Connection for Eager {
        type Codec = LinesCodec;
        fn codec(&self) -> LinesCodec {
            LinesCodec::new()
        }
        fn post_init(&mut self, conn: &Conn<LinesCodec>) {
            for line in ["one", "two", "three"] {
                assert_eq!(conn.send_data(line), line.len() + 1);
            }
            assert_eq!(conn.outbound_data_size(), "one\ntwo\nthree\n".len());
            self.log.push("post_init");
        }
        fn connection_completed(&mut self, _: &Conn<LinesCodec>) {
            self.log.push("connection_completed");
        }
        fn receive_data(&mut self, conn: &Conn<LinesCodec>, line: String) {
            self.log.push(format!("receive_data {line}"));
            conn.close_connection();
        }
        fn unbind(&mut self, _: &Conn<LinesCodec>, why: UnbindReason) {
            self.log.push(format!("unbind {}", reason(&why)));
            em::stop();
        }
    }

    // A plain std server on its own thread: reads three lines, answers one.
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let (lines_tx, lines_rx) = mpsc::channel();
    std::thread::spawn(move || {
        let (s, _) = listener.accept().unwrap();
        s.set_read_timeout(Some(EVENT_TIMEOUT)).unwrap();
        let mut writer = s.try_clone().unwrap();
        let mut reader = BufReader::new(s);
        let mut lines = Vec::new();
        for _ in 0..3 {
            let mut line = String::new();
            reader.read_line(&mut line).unwrap();
            lines.push(line);
        }
        writer.write_all(b"got them\n").unwrap();
        lines_tx.send(lines).unwrap();
        // Wait for the client's close before closing this side.
        read_until_closed(&mut reader);
    });

    let log = Log::default();
    let l = log.clone();
    run_with_watchdog(move || -> em::Result<()> {
        em::connect(addr, Eager { log: l })?;
        Ok(())
    })
    .unwrap();
    assert_eq!(recv(&lines_rx), ["one\n", "two\n", "three\n"]);
    assert_eq!(
        log.events(),
        [
            "post_init",
            "connection_completed",
            "receive_data got them",
            "unbind Closed"
        ]
    );
}
