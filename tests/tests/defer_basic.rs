//! `em::defer` and friends: where ops and callbacks run, what they get,
//! `defers_finished`, progress reports through `Handle::schedule`, and the
//! typed errors outside a reactor (EventMachine D1, D6).

mod support;

use em::DeferOptions;
use std::cell::RefCell;
use std::rc::Rc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{mpsc, Arc, Mutex};
use std::thread;

use futures::FutureExt;
use support::*;

/// The op runs on a pool thread, the callback on the reactor thread, with
/// the op's value (D1).
#[test]
fn the_op_runs_off_the_reactor_thread_and_the_callback_on_it_with_the_value() {
    let seen = Rc::new(RefCell::new(None));
    let s = seen.clone();
    run_with_watchdog(move || -> em::Result<()> {
        let reactor = thread::current().id();
        em::defer(
            move || (thread::current().id(), em::reactor_thread(), 6 * 7),
            move |(op_thread, op_on_reactor, value)| {
                *s.borrow_mut() = Some((
                    op_thread != reactor,
                    op_on_reactor,
                    thread::current().id() == reactor && em::reactor_thread(),
                    value,
                ));
                em::stop();
            },
        )
    })
    .unwrap();
    let (op_off_reactor, op_on_reactor, callback_on_reactor, value) =
        seen.take().expect("the callback ran");
    assert!(op_off_reactor, "the op ran on the reactor thread");
    assert!(!op_on_reactor, "em::reactor_thread() was true in the op");
    assert!(
        callback_on_reactor,
        "the callback ran off the reactor thread"
    );
    assert_eq!(value, 42);
}

/// Values that are not `Copy` and not small come back whole.
#[test]
fn the_callback_gets_the_ops_value_by_move() {
    let got = Rc::new(RefCell::new(Vec::new()));
    let g = got.clone();
    run_with_watchdog(move || {
        em::defer(
            || pattern(1 << 20, 7),
            move |bytes: Vec<u8>| {
                *g.borrow_mut() = bytes;
                em::stop();
            },
        )
    })
    .unwrap();
    assert_eq!(*got.borrow(), pattern(1 << 20, 7));
}

/// `defer_op` runs the op on a pool thread and needs no callback.
#[test]
fn defer_op_runs_the_op_on_a_pool_thread() {
    let (tx, rx) = mpsc::channel();
    run_with_watchdog(move || -> em::Result<()> {
        let reactor = thread::current().id();
        let handle = em::handle()?;
        em::defer_op(move || {
            tx.send(thread::current().id() != reactor).unwrap();
            handle.schedule(em::stop).unwrap();
        })
    })
    .unwrap();
    assert!(recv(&rx), "the op ran on the reactor thread");
}

/// `defer_async(op).await` gives the op's value on the reactor thread, and a
/// panic as an error that `is_panic()`.
#[test]
fn defer_async_resolves_to_the_value_or_the_panic() {
    let seen = Rc::new(RefCell::new(Vec::new()));
    let s = seen.clone();
    run_with_watchdog(move || -> em::Result<()> {
        let reactor = thread::current().id();
        em::spawn(async move {
            let op_thread = em::defer_async(|| thread::current().id()).await.unwrap();
            s.borrow_mut()
                .push(format!("off reactor: {}", op_thread != reactor));
            let v = em::defer_async(|| 20u8 + 1).await.unwrap();
            s.borrow_mut().push(format!("value {v}"));
            s.borrow_mut()
                .push(format!("on reactor: {}", thread::current().id() == reactor));
            let e = em::defer_async(|| -> u8 { panic!("async boom") })
                .await
                .unwrap_err();
            s.borrow_mut()
                .push(format!("{} {:?}", e.is_panic(), e.panic_message()));
            em::stop();
        })?;
        Ok(())
    })
    .unwrap();
    assert_eq!(
        *seen.borrow(),
        [
            "off reactor: true",
            "value 21",
            "on reactor: true",
            "true Some(\"async boom\")"
        ]
    );
}

/// Where no reactor runs, every call is a typed error, not a panic, and
/// nothing runs.
#[test]
fn calls_outside_a_reactor_are_typed_errors() {
    let ran = Arc::new(AtomicBool::new(false));
    let r = ran.clone();
    let e = em::defer(move || r.store(true, Ordering::SeqCst), |_| {}).unwrap_err();
    assert!(e.is_no_reactor(), "{e}");
    assert!(e.to_string().contains("defer"), "{e}");
    let e = em::defer_with_errback(|| 1, |_| {}, |_| {}).unwrap_err();
    assert!(e.is_no_reactor(), "{e}");
    let e = em::defer_op(|| {}).unwrap_err();
    assert!(e.is_no_reactor(), "{e}");
    let e = em::defer_async(|| 1)
        .now_or_never()
        .expect("resolves at once")
        .unwrap_err();
    assert!(e.is_no_reactor(), "{e}");
    assert!(em::defers_finished());
    assert!(!ran.load(Ordering::SeqCst));
}

/// `defers_finished` is false while an op is queued, running, or waiting
/// for delivery, and true once every callback has been handed its value
/// (D6).
#[test]
fn defers_finished_covers_queued_running_and_undelivered_ops() {
    let log = Log::default();
    let l = log.clone();
    let (started_tx, started_rx) = mpsc::channel();
    let (release_tx, release_rx) = mpsc::channel::<()>();
    let (returning_tx, returning_rx) = mpsc::channel();
    run_builder_with_watchdog(em::Reactor::builder().threadpool_size(1), move || {
        l.push(format!("before: {}", em::defers_finished()));
        // One thread: the second op waits in the queue behind the first.
        em::defer(
            move || {
                started_tx.send(()).unwrap();
                release_rx.recv_timeout(EVENT_TIMEOUT).unwrap();
            },
            {
                let l = l.clone();
                move |()| l.push(format!("first delivered: {}", em::defers_finished()))
            },
        )
        .unwrap();
        em::defer(move || returning_tx.send(()).unwrap(), {
            let l = l.clone();
            move |()| {
                l.push(format!("second delivered: {}", em::defers_finished()));
                em::stop();
            }
        })
        .unwrap();
        l.push(format!("queued: {}", em::defers_finished()));
        // Runs after the pool was woken.
        em::next_tick(move || {
            recv(&started_rx);
            l.push(format!("running: {}", em::defers_finished()));
            release_tx.send(()).unwrap();
            // Both ops end while this callback blocks the reactor: their
            // results wait for delivery.
            recv(&returning_rx);
            l.push(format!("undelivered: {}", em::defers_finished()));
        });
    })
    .unwrap();
    assert_eq!(
        log.events(),
        [
            "before: true",
            "queued: false",
            "running: false",
            "undelivered: false",
            "first delivered: false",
            "second delivered: true",
        ]
    );
    assert!(em::defers_finished());
}

/// An op reports progress while it runs by scheduling closures on the
/// reactor with `em::Handle::schedule`; they run on the reactor thread, in
/// order.
#[test]
fn an_op_reports_progress_through_handle_schedule() {
    let log = Arc::new(Mutex::new(Vec::new()));
    let l = log.clone();
    run_with_watchdog(move || -> em::Result<()> {
        let handle = em::handle()?;
        let reactor = thread::current().id();
        // Three reports and the callback; the last of the four stops.
        let left = Arc::new(AtomicUsize::new(4));
        let arrived = move |left: &AtomicUsize| {
            if left.fetch_sub(1, Ordering::SeqCst) == 1 {
                em::stop();
            }
        };
        let (op_log, op_left) = (l.clone(), left.clone());
        em::defer(
            move || {
                for percent in [25, 50, 75] {
                    let (log, left) = (op_log.clone(), op_left.clone());
                    handle
                        .schedule(move || {
                            let on_reactor = thread::current().id() == reactor;
                            log.lock()
                                .unwrap()
                                .push(format!("progress {percent}% on reactor: {on_reactor}"));
                            arrived(&left);
                        })
                        .unwrap();
                }
                "finished"
            },
            move |v| {
                l.lock().unwrap().push(v.to_owned());
                arrived(&left);
            },
        )
    })
    .unwrap();
    let events = log.lock().unwrap().clone();
    let reports: Vec<_> = events
        .iter()
        .filter(|e| e.starts_with("progress"))
        .collect();
    assert_eq!(
        reports,
        [
            "progress 25% on reactor: true",
            "progress 50% on reactor: true",
            "progress 75% on reactor: true"
        ]
    );
    assert_eq!(events.iter().filter(|e| *e == "finished").count(), 1);
}
