//! em::testing's fake servers: the scripted server (dialogues, failure
//! reports, waits, stalls, resets), the recording server and the closure
//! server, each against real clients on 127.0.0.1.

mod support;

use std::io::{self, BufRead, BufReader, Read, Write};
use std::net::{Shutdown, TcpStream};
use std::time::{Duration, Instant};

use em::testing::{FakeServer, TestReactor, WireEvent};

use support::client;

/// A std client reading lines (with their line ends).
struct Lines {
    reader: BufReader<TcpStream>,
    writer: TcpStream,
}

impl Lines {
    fn connect(addr: std::net::SocketAddr) -> Lines {
        let stream = client(addr);
        Lines {
            reader: BufReader::new(stream.try_clone().unwrap()),
            writer: stream,
        }
    }

    fn send(&mut self, bytes: &str) {
        self.writer.write_all(bytes.as_bytes()).unwrap();
    }

    fn recv(&mut self) -> String {
        let mut line = String::new();
        self.reader.read_line(&mut line).unwrap();
        line
    }
}

#[test]
fn a_client_that_keeps_to_the_script_passes_it() {
    let server = FakeServer::script()
        .send_line("220 fake ESMTP")
        .expect_line("HELO client")
        .send_line("250 hello")
        .expect_line("MAIL FROM:<a@example.com>")
        .send_line("250 ok")
        .expect_bytes(b"DATA\r\n")
        .send_bytes(&b"354 go\r\n"[..])
        .expect_line("QUIT")
        .send_line("221 bye")
        .close()
        .start();
    let mut c = Lines::connect(server.local_addr());
    assert_eq!(c.recv(), "220 fake ESMTP\r\n");
    c.send("HELO client\r\n");
    assert_eq!(c.recv(), "250 hello\r\n");
    // Two commands in one write: the script takes them one step at a time.
    c.send("MAIL FROM:<a@example.com>\r\nDA");
    assert_eq!(c.recv(), "250 ok\r\n");
    c.send("TA\r\n");
    assert_eq!(c.recv(), "354 go\r\n");
    c.send("QUIT\r\n");
    assert_eq!(c.recv(), "221 bye\r\n");
    assert_eq!(c.recv(), "", "close() ends the stream");
    server.finish().expect("the client kept to the script");
}

#[test]
fn a_mismatch_names_the_step_and_shows_expected_and_received() {
    let server = FakeServer::script()
        .send_line("220 fake")
        .expect_line("HELO client")
        .send_line("250 hello")
        .start();
    let mut c = Lines::connect(server.local_addr());
    assert_eq!(c.recv(), "220 fake\r\n");
    c.send("EHLO client\r\n");
    // The server closes instead of going on with the script.
    assert_eq!(c.recv(), "");

    let error = server.finish().unwrap_err();
    assert!(error.is_mismatch(), "{error}");
    assert_eq!(error.step(), Some(2));
    assert_eq!(error.expected(), Some(&b"HELO client"[..]));
    assert_eq!(error.received(), b"EHLO client\r\n");
    let report = error.to_string();
    assert!(
        report.contains(r#"step 2 of 3, expect_line("HELO client")"#),
        "{report}"
    );
    assert!(report.contains(r#"expected: "HELO client""#), "{report}");
    assert!(
        report.contains(r#"received: "EHLO client\r\n""#),
        "{report}"
    );
    // The caret stands under the first differing byte, the `E`.
    let lines: Vec<&str> = report.lines().collect();
    let caret = lines[3].find('^').expect("a caret line");
    assert_eq!(&lines[2][caret..caret + 1], "E", "{report}");
    assert!(lines[3].contains("first difference, at byte 0"), "{report}");
}

#[test]
fn a_client_that_closes_early_is_reported_with_what_it_sent() {
    let server = FakeServer::script()
        .expect_line("HELO client")
        .send_line("250 hello")
        .start();
    let mut c = client(server.local_addr());
    c.write_all(b"HELO cl").unwrap();
    c.shutdown(Shutdown::Write).unwrap();

    let error = server.finish().unwrap_err();
    assert!(error.is_closed_early(), "{error}");
    assert_eq!(error.step(), Some(1));
    assert_eq!(error.received(), b"HELO cl");
    let report = error.to_string();
    assert!(
        report.contains("the connection ended before it was received"),
        "{report}"
    );
    assert!(
        report.contains(r#"received: "HELO cl" then the end of the stream"#),
        "{report}"
    );
    assert!(
        report.contains("the received text ends here, at byte 7"),
        "{report}"
    );
}

#[test]
fn a_silent_client_fails_the_step_after_its_timeout() {
    let server = FakeServer::script()
        .step_timeout(Duration::from_millis(200))
        .expect_line("HELO client")
        .start();
    let mut c = client(server.local_addr());
    c.write_all(b"HE").unwrap();

    let error = server.finish().unwrap_err();
    assert!(error.is_timeout(), "{error}");
    assert_eq!(error.received(), b"HE");
    let report = error.to_string();
    assert!(report.contains("not received within 200ms"), "{report}");
    assert!(
        report.contains(r#"received: "HE" then nothing more"#),
        "{report}"
    );
}

#[test]
fn finish_reports_a_client_that_never_came() {
    let server = FakeServer::script().expect_line("HELO").start();
    let error = server
        .finish_within(Duration::from_millis(100))
        .unwrap_err();
    assert!(error.is_timeout());
    assert_eq!(error.step(), None);
    assert!(
        error
            .to_string()
            .contains("no client connected within 100ms"),
        "{error}"
    );
}

#[test]
fn expect_line_takes_either_line_end() {
    let server = FakeServer::script()
        .expect_line("one")
        .send_line("1")
        .expect_line("two")
        .send_line("2")
        .start();
    let mut c = Lines::connect(server.local_addr());
    c.send("one\n");
    assert_eq!(c.recv(), "1\r\n");
    c.send("two\r\n");
    assert_eq!(c.recv(), "2\r\n");
    server.finish().unwrap();
}

#[test]
fn wait_holds_the_next_step_back() {
    let pause = Duration::from_millis(300);
    let server = FakeServer::script()
        .expect_line("ping")
        .wait(pause)
        .send_line("pong")
        .start();
    let mut c = Lines::connect(server.local_addr());
    let sent = Instant::now();
    c.send("ping\n");
    assert_eq!(c.recv(), "pong\r\n");
    let took = sent.elapsed();
    assert!(
        took >= pause,
        "the reply came after {took:?}, before {pause:?}"
    );
    assert!(took < Duration::from_secs(10), "the reply took {took:?}");
    server.finish().unwrap();
}

#[test]
fn stall_keeps_the_connection_open_and_silent() {
    let server = FakeServer::script().send_line("hello").stall().start();
    let mut c = Lines::connect(server.local_addr());
    assert_eq!(c.recv(), "hello\r\n");
    server.finish().expect("a stall ends the script");

    c.send("anyone there?\n");
    c.reader
        .get_ref()
        .set_read_timeout(Some(Duration::from_millis(300)))
        .unwrap();
    let mut buf = [0; 16];
    let read = c.reader.read(&mut buf);
    // No reply, and no end either: the connection is open.
    let e = read.expect_err("the stalled server sent something or closed");
    assert!(
        matches!(
            e.kind(),
            io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
        ),
        "{e}"
    );

    // Dropping the server ends the connection it held.
    drop(server);
    c.reader
        .get_ref()
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    match c.reader.read(&mut buf) {
        Ok(0) => {}
        Err(e) if e.kind() == io::ErrorKind::ConnectionReset => {}
        other => panic!("the connection did not end with the server: {other:?}"),
    }
}

#[test]
fn reset_gives_the_client_a_connection_reset() {
    let server = FakeServer::script().expect_line("bye?").reset().start();
    let mut c = client(server.local_addr());
    c.write_all(b"bye?\r\n").unwrap();
    let mut buf = [0; 16];
    let e = c.read(&mut buf).expect_err("a reset, not data or an end");
    assert_eq!(e.kind(), io::ErrorKind::ConnectionReset, "{e}");
    server.finish().unwrap();
}

#[test]
fn connections_after_the_first_are_closed() {
    let server = FakeServer::script()
        .expect_line("first")
        .send_line("ok")
        .start();
    let mut first = Lines::connect(server.local_addr());
    first.send("first\n");
    assert_eq!(first.recv(), "ok\r\n");
    let mut second = client(server.local_addr());
    let mut rest = Vec::new();
    second.read_to_end(&mut rest).unwrap();
    assert!(rest.is_empty(), "the second connection got {rest:?}");
    server.finish().unwrap();
}

#[test]
fn a_script_on_the_tests_reactor_serves_an_em_client() {
    let reactor = TestReactor::start();
    let server = FakeServer::script()
        .expect_bytes(b"\x00\x01ping")
        .send_bytes(&b"\x00\x02pong"[..])
        .start_on(&reactor);
    let addr = server.local_addr();
    // An em client, procedural, on the reactor thread (a `Socket` is not
    // `Send`, so the future is spawned there and the reply sent back).
    let (tx, rx) = std::sync::mpsc::channel();
    reactor.block_on(move || {
        em::spawn(async move {
            let mut socket = em::Socket::connect(addr, em::RawCodec).await.unwrap();
            socket.write(&b"\x00\x01ping"[..]).await.unwrap();
            let mut got = Vec::new();
            while got.len() < 6 {
                match socket.read().await.unwrap() {
                    Some(data) => got.extend_from_slice(&data),
                    None => break,
                }
            }
            tx.send(got).unwrap();
        })
        .unwrap();
    });
    let reply = rx
        .recv_timeout(Duration::from_secs(10))
        .expect("the em client's reply");
    assert_eq!(reply, b"\x00\x02pong");
    server.finish().unwrap();
    drop(server);
    let refused = TcpStream::connect(addr).expect_err("the fake still listens");
    assert_eq!(refused.kind(), io::ErrorKind::ConnectionRefused);
    // The reactor outlives the fake, and saw no panic.
    assert!(reactor.handle().is_running());
    reactor.stop().unwrap();
}

#[test]
fn the_recording_server_records_bytes_half_close_and_close_in_order() {
    let server = FakeServer::recording().greeting("hi\r\n").start();
    let mut c = client(server.local_addr());
    let mut greeting = [0; 4];
    c.read_exact(&mut greeting).unwrap();
    assert_eq!(&greeting, b"hi\r\n");
    c.write_all(b"abc").unwrap();
    server.wait_for_received(0, 3, Duration::from_secs(10));
    c.write_all(b"def").unwrap();
    c.shutdown(Shutdown::Write).unwrap();
    let how = server.wait_for_close(0, Duration::from_secs(10));
    assert_eq!(how, "closed by the peer");

    assert_eq!(server.connections(), 1);
    assert_eq!(server.received(0), b"abcdef");
    let events: Vec<WireEvent> = server.events_of(0).into_iter().map(|r| r.event).collect();
    let n = events.len();
    assert_eq!(events[0], WireEvent::Connected);
    assert!(
        events[1..n - 2]
            .iter()
            .all(|e| matches!(e, WireEvent::Data(_))),
        "{events:?}"
    );
    assert_eq!(events[n - 2], WireEvent::HalfClosed, "{events:?}");
    assert_eq!(
        events[n - 1],
        WireEvent::Closed("closed by the peer".into())
    );
    let times: Vec<Duration> = server.events().iter().map(|r| r.at).collect();
    assert!(times.windows(2).all(|w| w[0] <= w[1]), "{times:?}");
}

#[test]
fn the_recording_server_records_a_reset_as_a_close_without_half_close() {
    let server = FakeServer::recording().echo().start();
    let mut quiet = client(server.local_addr());
    let mut c = client(server.local_addr());
    server.wait_for_connections(2, Duration::from_secs(10));
    c.write_all(b"x").unwrap();
    let mut echoed = [0; 1];
    c.read_exact(&mut echoed).unwrap();
    assert_eq!(&echoed, b"x");
    socket_reset(c);
    // Which connection is which is the accept order: find the talker.
    let talker = (0..2)
        .find(|&i| server.received(i) == b"x")
        .expect("one sent x");
    let how = server.wait_for_close(talker, Duration::from_secs(10));
    assert!(how.to_lowercase().contains("reset"), "{how}");
    assert!(!server
        .events_of(talker)
        .iter()
        .any(|r| r.event == WireEvent::HalfClosed));
    // The other connection is still open, with nothing recorded but its
    // connect.
    let other: Vec<WireEvent> = server
        .events_of(1 - talker)
        .into_iter()
        .map(|r| r.event)
        .collect();
    assert_eq!(other, [WireEvent::Connected]);
    quiet.write_all(b"still here").unwrap();
    server.wait_for_received(1 - talker, 10, Duration::from_secs(10));
}

/// Closes `stream` with a TCP RST (a zero linger).
fn socket_reset(stream: TcpStream) {
    em::socket2::SockRef::from(&stream)
        .set_linger(Some(Duration::ZERO))
        .unwrap();
    drop(stream);
}

#[test]
fn the_closure_server_echoes_with_a_copy_per_connection() {
    let server = FakeServer::handler({
        let mut seen = 0usize;
        move |conn, data| {
            // State of this connection's copy only.
            seen += 1;
            let thread = std::thread::current().name().unwrap_or("").to_owned();
            conn.send_data(format!(
                "{seen} {thread}: {}",
                String::from_utf8_lossy(&data)
            ));
        }
    });
    let mut a = client(server.local_addr());
    let mut b = client(server.local_addr());
    let round = |c: &mut TcpStream, text: &str| {
        c.write_all(text.as_bytes()).unwrap();
        let want = format!("_ em-test-reactor: {text}").len();
        let mut reply = vec![0; want];
        c.read_exact(&mut reply).unwrap();
        String::from_utf8(reply).unwrap()
    };
    assert_eq!(round(&mut a, "one"), "1 em-test-reactor: one");
    assert_eq!(round(&mut a, "two"), "2 em-test-reactor: two");
    assert_eq!(round(&mut b, "three"), "1 em-test-reactor: three");
}

#[test]
fn dropping_a_fake_on_the_tests_reactor_closes_its_connections() {
    let reactor = TestReactor::start();
    let server = FakeServer::handler_on(&reactor, |conn, data| conn.send_data(data));
    let mut c = client(server.local_addr());
    c.write_all(b"ping").unwrap();
    let mut reply = [0; 4];
    c.read_exact(&mut reply).unwrap();
    assert_eq!(&reply, b"ping");
    let addr = server.local_addr();
    drop(server);
    // Once the drop returns, the listener is gone…
    let refused = TcpStream::connect(addr).expect_err("the fake still listens");
    assert_eq!(refused.kind(), io::ErrorKind::ConnectionRefused);
    // …and its connection ends, while the reactor runs on.
    let mut rest = Vec::new();
    c.read_to_end(&mut rest).unwrap();
    assert!(rest.is_empty());
    assert_eq!(reactor.block_on(|| 6 * 7), 42);
    reactor.stop().unwrap();
}

#[test]
fn finish_within_reports_a_script_still_running_with_what_it_got() {
    let server = FakeServer::script()
        .expect_line("HELO client")
        .send_line("250 hello")
        .expect_line("QUIT")
        .start();
    let mut c = Lines::connect(server.local_addr());
    c.send("HELO client\r\nQU");
    assert_eq!(c.recv(), "250 hello\r\n");
    // The client is silent now, within the step's 5 s: `finish` gives up
    // first, saying where the script stands.
    let error = server
        .finish_within(Duration::from_millis(200))
        .unwrap_err();
    assert!(error.is_timeout(), "{error}");
    assert_eq!(error.step(), Some(3));
    assert_eq!(error.received(), b"QU");
    let report = error.to_string();
    assert!(
        report.contains(r#"step 3 of 3, expect_line("QUIT"): still running after 200ms"#),
        "{report}"
    );
    // The script goes on: once the client finishes, so does it.
    c.send("IT\n");
    server.finish().unwrap();
}

#[test]
fn a_bytes_mismatch_is_shown_escaped() {
    let server = FakeServer::script().expect_bytes(b"\x16\x03\x01").start();
    let mut c = client(server.local_addr());
    c.write_all(b"\x16\x03\x03\x00").unwrap();
    let error = server.finish().unwrap_err();
    assert!(error.is_mismatch(), "{error}");
    assert_eq!(error.received(), b"\x16\x03\x03");
    let report = error.to_string();
    assert!(
        report.contains(r#"expect_bytes(b"\x16\x03\x01")"#),
        "{report}"
    );
    assert!(report.contains(r#"received: "\x16\x03\x03""#), "{report}");
    assert!(report.contains("first difference, at byte 2"), "{report}");
}

#[test]
fn a_panic_in_the_closure_fails_the_test_when_the_server_is_dropped() {
    let server = FakeServer::handler(|_conn, _data| -> () { panic!("boom in the fake") });
    let mut c = client(server.local_addr());
    c.write_all(b"x").unwrap();
    // The panicking connection is closed; the server carries on…
    support::read_until_closed(&mut c);
    let mut other = client(server.local_addr());
    other.write_all(b"y").unwrap();
    support::read_until_closed(&mut other);
    // …and reports the panics when dropped.
    let dropped = std::panic::catch_unwind(std::panic::AssertUnwindSafe(move || drop(server)));
    let payload = dropped.expect_err("the drop did not fail the test");
    let message = payload
        .downcast_ref::<String>()
        .cloned()
        .unwrap_or_default();
    assert!(message.contains("contained 2 panic(s)"), "{message}");
    assert!(message.contains("boom in the fake"), "{message}");
}
