//! A panic in a callback is contained: its connection closes with
//! `UnbindReason::Panicked`, everything else keeps running (em's deliberate
//! difference from EventMachine E1).

mod support;

use std::sync::mpsc;

use em::{Conn, Connection, UnbindReason};
use tokio_util::codec::LinesCodec;

use support::*;

/// Echoes lines, except "boom", which panics.
struct Fragile {
    log: Log,
}

impl Connection for Fragile {
    type Codec = LinesCodec;

    fn codec(&self) -> LinesCodec {
        LinesCodec::new_with_max_length(1024)
    }

    fn receive_data(&mut self, conn: &Conn<LinesCodec>, line: String) {
        if line == "boom" {
            panic!("boom requested by the peer");
        }
        conn.send_data(line);
    }

    fn unbind(&mut self, conn: &Conn<LinesCodec>, why: UnbindReason) {
        self.log
            .push(format!("{} unbind {}", conn.id(), reason(&why)));
    }
}

#[test]
fn panic_in_receive_data_closes_only_that_connection() {
    let log = Log::default();
    let l = log.clone();
    let (done_tx, done_rx) = mpsc::channel();
    run_with_watchdog(move || -> em::Result<()> {
        let server = em::start_server("127.0.0.1:0", move || Fragile { log: l.clone() })?;
        let addr = server.local_addr().inet().expect("a TCP server");
        spawn_peer(em::handle()?, done_tx, move || {
            let mut good = LineClient::connect(addr);
            assert_eq!(good.round("before"), "before");
            let mut bad = LineClient::connect(addr);
            assert_eq!(bad.round("fine so far"), "fine so far");
            bad.send("boom");
            let after_boom = bad.read_until_closed();
            let answers: Vec<String> = (0..5).map(|i| good.round(&format!("after {i}"))).collect();
            // A new connection is accepted and served as well.
            let mut fresh = LineClient::connect(addr);
            let fresh_answer = fresh.round("fresh");
            // Keep good and fresh open: their unbinds must be the stop's.
            (after_boom, answers, fresh_answer, good, fresh)
        });
        Ok(())
    })
    .expect("a contained panic does not stop the reactor with an error");
    let (after_boom, answers, fresh_answer, _good, _fresh) = join_peer(&done_rx);
    assert_eq!(
        after_boom, b"",
        "the panicking connection closed, unanswered"
    );
    assert_eq!(
        answers,
        ["after 0", "after 1", "after 2", "after 3", "after 4"]
    );
    assert_eq!(fresh_answer, "fresh");
    let mut unbinds = log.events();
    unbinds.sort();
    assert_eq!(
        unbinds,
        [
            "#1 unbind ReactorStopped",
            "#2 unbind Panicked(boom requested by the peer)",
            "#3 unbind ReactorStopped",
        ]
    );
}

/// A panic in `post_init` or `connection_completed` of a client ends that
/// connection with `Panicked` too, and `unbind` still runs once.
#[test]
fn panic_in_client_callbacks_unbinds_once_with_panicked() {
    struct PanicsIn {
        callback: &'static str,
        log: Log,
    }
    impl Connection for PanicsIn {
        type Codec = LinesCodec;
        fn codec(&self) -> LinesCodec {
            LinesCodec::new()
        }
        fn post_init(&mut self, _: &Conn<LinesCodec>) {
            if self.callback == "post_init" {
                panic!("in post_init");
            }
        }
        fn connection_completed(&mut self, _: &Conn<LinesCodec>) {
            if self.callback == "connection_completed" {
                panic!("in connection_completed");
            }
        }
        fn receive_data(&mut self, _: &Conn<LinesCodec>, _: String) {}
        fn unbind(&mut self, _: &Conn<LinesCodec>, why: UnbindReason) {
            self.log
                .push(format!("{} unbind {}", self.callback, reason(&why)));
            if self.log.events().len() == 2 {
                em::stop();
            }
        }
    }

    let log = Log::default();
    let l = log.clone();
    run_with_watchdog(move || -> em::Result<()> {
        let server = em::start_server("127.0.0.1:0", || Echo)?;
        for callback in ["post_init", "connection_completed"] {
            em::connect(
                server.local_addr(),
                PanicsIn {
                    callback,
                    log: l.clone(),
                },
            )?;
        }
        Ok(())
    })
    .unwrap();
    let mut events = log.events();
    events.sort();
    assert_eq!(
        events,
        [
            "connection_completed unbind Panicked(in connection_completed)",
            "post_init unbind Panicked(in post_init)",
        ]
    );
}
