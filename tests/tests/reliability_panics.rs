//! Contained panics: the error handler (`em::set_error_handler`) sees every
//! panic caught in a callback (connections, `next_tick`, `Handle::schedule`,
//! timers, defer callbacks) with the callback's name and the connection id;
//! the offending connection alone closes; `stop_on_panic(true)` stops the
//! reactor cleanly and `run` returns the panic.

mod support;

use std::cell::RefCell;
use std::rc::Rc;
use std::sync::mpsc;
use std::time::Duration;

use bytes::BytesMut;
use em::{Conn, Connection, PanicReport, UnbindReason};
use tokio_util::codec::BytesCodec;

use support::*;

/// The byte that makes [`Touchy`] panic; `pattern` never produces it.
const TRIGGER: u8 = 0xFF;

/// Echoes bytes; panics on a chunk holding [`TRIGGER`]. Logs its unbind.
struct Touchy {
    log: Log,
}

impl Connection for Touchy {
    type Codec = BytesCodec;

    fn codec(&self) -> BytesCodec {
        BytesCodec::new()
    }

    fn receive_data(&mut self, conn: &Conn<BytesCodec>, data: BytesMut) {
        if data.contains(&TRIGGER) {
            panic!("trigger byte received");
        }
        conn.send_data(data);
    }

    fn unbind(&mut self, conn: &Conn<BytesCodec>, why: UnbindReason) {
        self.log
            .push(format!("{} unbind {}", conn.id(), reason(&why)));
    }
}

/// Collects the reports the error handler gets on this thread.
fn collect_reports() -> Rc<RefCell<Vec<PanicReport>>> {
    let reports = Rc::new(RefCell::new(Vec::new()));
    let r = reports.clone();
    em::set_error_handler(move |report| r.borrow_mut().push(report.clone()));
    reports
}

#[test]
fn hundred_echo_clients_are_intact_beside_one_that_panics() {
    const CLIENTS: usize = 100;
    const ROUNDS: usize = 4;
    const CHUNK: usize = 16 * 1024;
    let reports = collect_reports();
    let log = Log::default();
    let l = log.clone();
    let (done_tx, done_rx) = mpsc::channel();
    run_with_watchdog(move || -> em::Result<()> {
        let server = em::start_server("127.0.0.1:0", move || Touchy { log: l.clone() })?;
        let addr = server.local_addr().inet().expect("a TCP server");
        spawn_peer(em::handle()?, done_tx, move || {
            let mut good: Vec<_> = (0..CLIENTS).map(|_| client(addr)).collect();
            let mut bad = client(addr);
            let mut intact = 0;
            for round in 0..ROUNDS {
                if round == ROUNDS / 2 {
                    let mut poison = pattern(100, 1);
                    poison[50] = TRIGGER;
                    std::io::Write::write_all(&mut bad, &poison).unwrap();
                }
                for (i, c) in good.iter_mut().enumerate() {
                    let data = pattern(CHUNK, (round * CLIENTS + i) as u64);
                    if echo_round(c, &data) == data {
                        intact += 1;
                    }
                }
            }
            let after_panic = read_until_closed(&mut bad);
            (intact, after_panic, good)
        });
        Ok(())
    })
    .expect("a contained panic does not stop the reactor");
    let (intact, after_panic, _good) = join_peer(&done_rx);
    em::clear_error_handler();
    assert_eq!(
        intact,
        CLIENTS * ROUNDS,
        "every echo came back byte for byte"
    );
    assert_eq!(
        after_panic, b"",
        "the panicking connection closed, unanswered"
    );

    let reports = reports.borrow();
    assert_eq!(reports.len(), 1, "one panic, one report: {reports:?}");
    let report = &reports[0];
    assert_eq!(report.callback(), "receive_data");
    assert_eq!(report.message(), "trigger byte received");
    let bad_id = report.connection().expect("a connection's panic names it");
    let events = log.events();
    assert_eq!(events.len(), CLIENTS + 1);
    assert_eq!(
        events
            .iter()
            .filter(|e| e.ends_with("unbind Panicked(trigger byte received)"))
            .collect::<Vec<_>>(),
        [&format!("{bad_id} unbind Panicked(trigger byte received)")]
    );
    assert_eq!(
        events
            .iter()
            .filter(|e| e.ends_with("unbind ReactorStopped"))
            .count(),
        CLIENTS
    );
}

#[test]
fn stop_on_panic_stops_cleanly_and_run_returns_the_panic() {
    let log = Log::default();
    let l = log.clone();
    let (done_tx, done_rx) = mpsc::channel();
    let result = run_builder_with_watchdog(
        em::Reactor::builder().stop_on_panic(true),
        move || -> em::Result<()> {
            let server = em::start_server("127.0.0.1:0", move || Touchy { log: l.clone() })?;
            let addr = server.local_addr().inet().expect("a TCP server");
            spawn_peer(em::handle()?, done_tx, move || {
                let mut a = client(addr);
                let mut b = client(addr);
                let echoed = (
                    echo_round(&mut a, b"a") == b"a",
                    echo_round(&mut b, b"b") == b"b",
                );
                let mut bad = client(addr);
                std::io::Write::write_all(&mut bad, &[TRIGGER]).unwrap();
                // The stop closes every connection.
                let rest: Vec<Vec<u8>> = [&mut a, &mut b, &mut bad]
                    .into_iter()
                    .map(read_until_closed)
                    .collect();
                (echoed, rest)
            });
            Ok(())
        },
    );
    let err = result.expect_err("the panic stops the reactor with an error");
    assert!(err.is_panic(), "{err}");
    assert_eq!(
        err.to_string(),
        "panic in receive_data: trigger byte received"
    );
    let (echoed, rest) = join_peer(&done_rx);
    assert_eq!(echoed, (true, true));
    assert!(rest.iter().all(Vec::is_empty), "{rest:?}");
    let mut events = log.events();
    events.sort();
    assert_eq!(
        events,
        [
            "#1 unbind ReactorStopped",
            "#2 unbind ReactorStopped",
            "#3 unbind Panicked(trigger byte received)",
        ]
    );
}

#[test]
fn panics_outside_connections_reach_the_handler_and_the_reactor_carries_on() {
    let reports = collect_reports();
    let fired = Rc::new(RefCell::new(Vec::new()));
    let f = fired.clone();
    run_paused(move || -> em::Result<()> {
        em::next_tick(|| panic!("in a tick"));
        em::handle()?
            .schedule(|| panic!("in a scheduled closure"))
            .unwrap();
        em::add_timer(Duration::from_millis(10), || panic!("in a timer"))?;
        let f2 = f.clone();
        em::add_periodic_timer(Duration::from_millis(20), move |t| {
            f2.borrow_mut().push(tokio::time::Instant::now());
            if f2.borrow().len() == 3 {
                t.cancel();
                em::stop();
            } else {
                panic!("in a periodic timer");
            }
        })?;
        em::defer(|| 7, |_| panic!("in a defer callback"))?;
        Ok(())
    })
    .expect("contained panics do not stop the reactor");
    em::clear_error_handler();
    let mut got: Vec<(String, String, bool)> = reports
        .borrow()
        .iter()
        .map(|r| {
            (
                r.callback().to_owned(),
                r.message().to_owned(),
                r.connection().is_none(),
            )
        })
        .collect();
    got.sort();
    let want = |cb: &str, m: &str| (cb.to_owned(), m.to_owned(), true);
    assert_eq!(
        got,
        [
            want("defer callback", "in a defer callback"),
            want("next_tick", "in a scheduled closure"),
            want("next_tick", "in a tick"),
            want("periodic timer", "in a periodic timer"),
            want("periodic timer", "in a periodic timer"),
            want("timer", "in a timer"),
        ]
    );
    assert_eq!(
        fired.borrow().len(),
        3,
        "the periodic timer kept its schedule"
    );
}

#[test]
fn without_a_handler_panics_are_logged_and_a_panicking_handler_is_contained() {
    em::set_error_handler(|_| panic!("the handler itself"));
    let ran = Rc::new(RefCell::new(false));
    let r = ran.clone();
    run_with_watchdog(move || {
        em::next_tick(|| panic!("first"));
        em::next_tick(move || {
            *r.borrow_mut() = true;
            em::stop();
        });
    })
    .expect("a panicking error handler is contained too");
    em::clear_error_handler();
    assert!(*ran.borrow());
    // No handler: logged, and the reactor still carries on.
    run_with_watchdog(|| {
        em::next_tick(|| panic!("logged"));
        em::next_tick(em::stop);
    })
    .expect("logged, not fatal");
}

/// A panic in a future from `em::spawn` is contained like a callback's:
/// the error handler is told, the reactor carries on, and the task's
/// `JoinHandle` says it panicked.
#[test]
fn a_panicking_spawned_future_is_reported_and_the_reactor_carries_on() {
    let reports = collect_reports();
    let log = Log::default();
    let l = log.clone();
    run_with_watchdog(move || -> em::Result<()> {
        let task = em::spawn(async {
            em::sleep(Duration::from_millis(1)).await;
            panic!("spawned future exploded");
        })?;
        em::spawn(async move {
            let joined = task.await;
            l.push(format!(
                "joined: panic={}",
                joined.is_err_and(|e| e.is_panic())
            ));
            em::stop();
        })?;
        Ok(())
    })
    .unwrap();
    em::clear_error_handler();
    assert_eq!(log.events(), ["joined: panic=true"]);
    let reports = reports.borrow();
    assert_eq!(reports.len(), 1, "{reports:?}");
    assert_eq!(reports[0].callback(), "spawned future");
    assert_eq!(reports[0].message(), "spawned future exploded");
}

/// With `stop_on_panic`, a panicking spawned future stops the reactor and
/// `run` returns the panic (it used to hang forever: nothing was told).
#[test]
fn stop_on_panic_stops_on_a_panicking_spawned_future() {
    let result = run_builder_with_watchdog(em::Reactor::builder().stop_on_panic(true), || {
        em::spawn(async {
            em::sleep(Duration::from_millis(1)).await;
            panic!("spawned future exploded");
        })
        .map(drop)
    });
    let err = result.expect_err("the panic stops the reactor");
    assert!(err.is_panic(), "{err}");
    assert_eq!(
        err.to_string(),
        "panic in spawned future: spawned future exploded"
    );
}
