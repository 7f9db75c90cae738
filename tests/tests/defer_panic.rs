//! Panics in deferred ops and their callbacks: errback, error log, and a
//! reactor (and a later `run`) that keeps working (EventMachine D2, D3 and
//! where em differs).

mod support;

use em::DeferOptions;
use std::cell::Cell;
use std::io::Write;
use std::rc::Rc;
use std::sync::{Arc, Mutex};
use std::thread;

use support::*;

/// What the `tracing` events of the calling thread printed, while `f` runs.
fn capture_logs<R>(f: impl FnOnce() -> R) -> (R, String) {
    #[derive(Clone)]
    struct Sink(Arc<Mutex<Vec<u8>>>);
    impl Write for Sink {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }
    let sink = Sink(Arc::new(Mutex::new(Vec::new())));
    let s = sink.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_ansi(false)
        .with_max_level(tracing::Level::WARN)
        .with_writer(move || s.clone())
        .finish();
    let r = tracing::subscriber::with_default(subscriber, f);
    let text = String::from_utf8(sink.0.lock().unwrap().clone()).unwrap();
    (r, text)
}

/// A panicking op with an errback: the errback gets the panic message, on
/// the reactor thread, and the callback does not run (D2).
#[test]
fn a_panicking_op_calls_the_errback_on_the_reactor_thread() {
    let log = Log::default();
    let l = log.clone();
    run_with_watchdog(move || {
        let reactor = thread::current().id();
        em::defer_with_errback(
            || -> u32 { panic!("op failed: {}", 7) },
            {
                let l = l.clone();
                move |v| l.push(format!("callback {v}"))
            },
            move |e| {
                l.push(format!(
                    "errback panic={} message={:?} on reactor={}",
                    e.is_panic(),
                    e.panic_message(),
                    thread::current().id() == reactor
                ));
                l.push(e.to_string());
                em::stop();
            },
        )
    })
    .unwrap();
    assert_eq!(
        log.events(),
        [
            "errback panic=true message=Some(\"op failed: 7\") on reactor=true",
            "the defer op panicked: op failed: 7",
        ]
    );
}

/// With an errback, a successful op still goes to the callback.
#[test]
fn with_an_errback_a_successful_op_goes_to_the_callback() {
    let log = Log::default();
    let l = log.clone();
    run_with_watchdog(move || {
        em::defer_with_errback(
            || 5,
            {
                let l = l.clone();
                move |v| {
                    l.push(format!("callback {v}"));
                    em::stop();
                }
            },
            move |e| l.push(format!("errback {e}")),
        )
    })
    .unwrap();
    assert_eq!(log.events(), ["callback 5"]);
}

/// A panicking op without an errback: the panic is logged at error level,
/// the reactor keeps running (a later defer works), and a later `run` on
/// the same thread works (where EventMachine breaks, D3).
#[test]
fn a_panicking_op_without_an_errback_is_logged_and_the_reactor_runs_on() {
    let after = Rc::new(Cell::new(None));
    let a = after.clone();
    let (result, logs) = capture_logs(move || {
        // One thread: results come back in the order the ops were deferred.
        let one = em::Reactor::builder().threadpool_size(1);
        run_builder_with_watchdog(one, move || -> em::Result<()> {
            em::defer(
                || -> u8 { panic!("nobody catches this") },
                |_| unreachable!(),
            )?;
            em::defer_op(|| panic!("nor this"))?;
            em::defer(
                || 1,
                move |v| {
                    a.set(Some(v));
                    em::stop();
                },
            )?;
            Ok(())
        })
    });
    result.unwrap();
    assert_eq!(after.get(), Some(1), "the reactor ran on after the panics");
    for message in ["nobody catches this", "nor this"] {
        let line = logs
            .lines()
            .find(|l| l.contains(message))
            .unwrap_or_else(|| panic!("{message:?} was not logged: {logs}"));
        assert!(line.contains("ERROR"), "not at error level: {line}");
        assert!(line.contains("defer op"), "does not name the op: {line}");
    }
    // A later run on the same thread works, defer included.
    let again = Rc::new(Cell::new(0));
    let g = again.clone();
    run_with_watchdog(move || {
        em::defer(
            || 2,
            move |v| {
                g.set(v);
                em::stop();
            },
        )
    })
    .unwrap();
    assert_eq!(again.get(), 2);
}

/// A panic in a callback or an errback is contained: logged at error level,
/// and the reactor runs on and delivers the next results.
#[test]
fn a_panic_in_a_callback_or_errback_is_contained() {
    let after = Rc::new(Cell::new(false));
    let a = after.clone();
    let (result, logs) = capture_logs(move || {
        let one = em::Reactor::builder().threadpool_size(1);
        run_builder_with_watchdog(one, move || -> em::Result<()> {
            em::defer(|| 1, |_| panic!("callback blew up"))?;
            em::defer_with_errback(
                || -> u8 { panic!("op") },
                |_| {},
                |_| panic!("errback blew up"),
            )?;
            em::defer(
                || (),
                move |()| {
                    a.set(true);
                    em::stop();
                },
            )?;
            Ok(())
        })
    });
    result.unwrap();
    assert!(after.get());
    for (message, callback) in [
        ("callback blew up", "defer callback"),
        ("errback blew up", "defer errback"),
    ] {
        let line = logs
            .lines()
            .find(|l| l.contains(message))
            .unwrap_or_else(|| panic!("{message:?} was not logged: {logs}"));
        assert!(line.contains("ERROR"), "{line}");
        assert!(line.contains(callback), "{line}");
    }
}

/// A panic payload that is not a string still reaches the errback.
#[test]
fn a_non_string_panic_payload_reaches_the_errback() {
    let message = Rc::new(Cell::new(None));
    let m = message.clone();
    run_with_watchdog(move || {
        em::defer_with_errback(
            || std::panic::panic_any(42u32),
            |()| {},
            move |e| {
                m.set(e.panic_message().map(str::to_owned));
                em::stop();
            },
        )
    })
    .unwrap();
    assert_eq!(message.take().as_deref(), Some("non-string panic payload"));
}
