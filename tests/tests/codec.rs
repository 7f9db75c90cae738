//! Codec-framed connections: one `receive_data` per frame, and a codec error
//! closes only the connection it came from.

mod support;

use std::io::Write;
use std::sync::mpsc;

use em::{Conn, Connection, UnbindReason};
use tokio_util::codec::LinesCodec;

use support::*;

const MAX_LINE: usize = 16;

/// Echoes lines of at most [`MAX_LINE`] bytes; logs `receive_data` and
/// `unbind` with the connection's id.
struct Limited {
    log: Log,
}

impl Connection for Limited {
    type Codec = LinesCodec;

    fn codec(&self) -> LinesCodec {
        LinesCodec::new_with_max_length(MAX_LINE)
    }

    fn receive_data(&mut self, conn: &Conn<LinesCodec>, line: String) {
        self.log.push(format!("{} receive_data {line}", conn.id()));
        conn.send_data(line);
    }

    fn unbind(&mut self, conn: &Conn<LinesCodec>, why: UnbindReason) {
        self.log
            .push(format!("{} unbind {}", conn.id(), reason(&why)));
    }
}

/// A line over the limit closes that connection with `UnbindReason::Codec`
/// (the codec's own error inside); another connection keeps working, before
/// and after.
#[test]
fn overlong_line_closes_only_that_connection_with_codec_error() {
    let log = Log::default();
    let l = log.clone();
    let (done_tx, done_rx) = mpsc::channel();
    run_with_watchdog(move || -> em::Result<()> {
        let server = em::start_server("127.0.0.1:0", move || Limited { log: l.clone() })?;
        let addr = server.local_addr().inet().expect("a TCP server");
        spawn_peer(em::handle()?, done_tx, move || {
            let mut good = LineClient::connect(addr);
            assert_eq!(good.round("first"), "first");
            let mut bad = LineClient::connect(addr);
            assert_eq!(bad.round("short"), "short");
            bad.send(&"x".repeat(10 * MAX_LINE));
            let after_overlong = bad.read_until_closed();
            let answers: Vec<String> = (0..5).map(|i| good.round(&format!("ok {i}"))).collect();
            // Return the good client open: its unbind must be the stop's.
            (after_overlong, answers, good)
        });
        Ok(())
    })
    .unwrap();
    let (after_overlong, answers, _good) = join_peer(&done_rx);
    assert_eq!(after_overlong, b"", "no answer to the overlong line");
    assert_eq!(answers, ["ok 0", "ok 1", "ok 2", "ok 3", "ok 4"]);
    let events = log.events();
    let unbinds: Vec<&str> = events
        .iter()
        .filter(|e| e.contains(" unbind "))
        .map(String::as_str)
        .collect();
    // Connection ids are given in accept order: #1 is good, #2 is bad.
    assert_eq!(
        unbinds,
        [
            "#2 unbind Codec(MaxLineLengthExceeded)",
            "#1 unbind ReactorStopped"
        ]
    );
    assert!(
        !events.iter().any(|e| e.contains("xxxx")),
        "the overlong line was never delivered: {events:?}"
    );
}

/// Several lines in one write arrive as one `receive_data` each, in order;
/// a last line without terminator arrives at end of stream, and its echo
/// still leaves before the connection closes.
#[test]
fn one_receive_data_per_line_and_the_last_line_at_end_of_stream() {
    let log = Log::default();
    let l = log.clone();
    let (done_tx, done_rx) = mpsc::channel();
    run_with_watchdog(move || -> em::Result<()> {
        let server = em::start_server("127.0.0.1:0", move || Limited { log: l.clone() })?;
        let addr = server.local_addr().inet().expect("a TCP server");
        spawn_peer(em::handle()?, done_tx, move || {
            let mut c = client(addr);
            c.write_all(b"a\nbb\r\nccc\ntail").unwrap();
            c.shutdown(std::net::Shutdown::Write).unwrap();
            read_until_closed(&mut c)
        });
        Ok(())
    })
    .unwrap();
    let echoed = join_peer(&done_rx);
    assert_eq!(String::from_utf8_lossy(&echoed), "a\nbb\nccc\ntail\n");
    assert_eq!(
        log.events(),
        [
            "#1 receive_data a",
            "#1 receive_data bb",
            "#1 receive_data ccc",
            "#1 receive_data tail",
            "#1 unbind PeerClosed",
        ]
    );
}
