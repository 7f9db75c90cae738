//! Codec-framed connections: one `receive_data` per frame, and a codec error
//! closes only the connection it came from. Each server runs on a
//! `TestReactor` with its callbacks recorded; the clients are std sockets
//! on the test's thread.

mod support;

use std::io::Write;
use std::net::SocketAddr;

use em::prelude::*;
use em::testing::{assert_sequence, Event, Recording, TestReactor};

use support::*;

const MAX_LINE: usize = 16;

/// Echoes lines of at most [`MAX_LINE`] bytes.
struct Limited;

impl Connection for Limited {
    type Codec = LinesCodec;

    fn codec(&self) -> LinesCodec {
        LinesCodec::new_with_max_length(MAX_LINE)
    }

    fn receive_data(&mut self, conn: &Conn<LinesCodec>, line: String) {
        conn.send_data(line);
    }
}

/// A `Limited` server on a `TestReactor`, every callback recorded.
fn serve() -> (TestReactor, Recording, SocketAddr) {
    let reactor = TestReactor::start();
    let recording = reactor.block_on(Recording::new);
    let r = recording.clone();
    let addr = reactor.block_on(move || {
        let server = em::start_server("127.0.0.1:0", move || r.wrap(Limited)).unwrap();
        server.local_addr().inet().expect("a TCP server")
    });
    (reactor, recording, addr)
}

/// A line over the limit closes that connection with `UnbindReason::Codec`
/// (the codec's own error inside); another connection keeps working, before
/// and after.
#[test]
fn overlong_line_closes_only_that_connection_with_codec_error() {
    let (reactor, recording, addr) = serve();
    let mut good = LineClient::connect(addr);
    assert_eq!(good.round("first"), "first");
    let mut bad = LineClient::connect(addr);
    assert_eq!(bad.round("short"), "short");
    bad.send(&"x".repeat(10 * MAX_LINE));
    assert_eq!(
        bad.read_until_closed(),
        b"",
        "no answer to the overlong line"
    );
    let answers: Vec<String> = (0..5).map(|i| good.round(&format!("ok {i}"))).collect();
    assert_eq!(answers, ["ok 0", "ok 1", "ok 2", "ok 3", "ok 4"]);
    // The good client is still open: its unbind is the stop's.
    reactor.stop().unwrap();
    let unbinds: Vec<String> = recording
        .events()
        .into_iter()
        .filter(|e| matches!(e.event, Event::Unbind(_)))
        .map(|e| format!("{} {}", e.conn.unwrap(), e.event))
        .collect();
    // Connection ids are given in accept order: #1 is good, #2 is bad.
    assert_eq!(
        unbinds,
        [
            "#2 unbind codec error: max line length exceeded",
            "#1 unbind the reactor stopped"
        ]
    );
    assert!(
        !recording.lines().iter().any(|e| e.contains("xxxx")),
        "the overlong line was never delivered: {recording:?}"
    );
    drop(good);
}

/// Several lines in one write arrive as one `receive_data` each, in order;
/// a last line without terminator arrives at end of stream, and its echo
/// still leaves before the connection closes.
#[test]
fn one_receive_data_per_line_and_the_last_line_at_end_of_stream() {
    let (reactor, recording, addr) = serve();
    let mut c = client(addr);
    c.write_all(b"a\nbb\r\nccc\ntail").unwrap();
    c.shutdown(std::net::Shutdown::Write).unwrap();
    let echoed = read_until_closed(&mut c);
    assert_eq!(String::from_utf8_lossy(&echoed), "a\nbb\nccc\ntail\n");
    recording.wait_for("unbind*", WATCHDOG);
    assert_sequence!(
        recording,
        "post_init",
        r#"receive_data "a""#,
        r#"receive_data "bb""#,
        r#"receive_data "ccc""#,
        r#"receive_data "tail""#,
        "unbind closed by the peer",
    );
    reactor.stop().unwrap();
}
