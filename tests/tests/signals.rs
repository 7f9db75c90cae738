//! Signals (`em::trap`): real signals sent to this test process with
//! kill(2) reach their handlers on the reactor thread, at least once per
//! arrival, several handlers in trap order; `untrap` stops one handler
//! while the others go on; a panicking handler is contained; what cannot be
//! trapped, and where, is an error.
//!
//! Signals are process-wide, and the tests of this file run in parallel
//! threads of one process: each test uses a signal of its own, and sends it
//! only once its trap is in place (an untrapped SIGUSR1 would end the whole
//! test binary). Every wait is for an event, bounded by `EVENT_TIMEOUT`;
//! nothing sleeps to synchronise.

mod support;

use std::cell::{Cell, RefCell};
use std::future::Future;
use std::rc::Rc;
use std::sync::{mpsc, Arc, Barrier};
use std::thread;

use em::Signal;
use tokio::sync::mpsc::{unbounded_channel, UnboundedReceiver};

use support::*;

/// Sends `signal` to this process.
fn send(signal: Signal) {
    let raw = rustix::process::Signal::from_named_raw(signal.as_raw()).expect("a named signal");
    rustix::process::kill_process(rustix::process::getpid(), raw).expect("kill(2)");
}

/// The next event a handler reported, waiting at most `EVENT_TIMEOUT`.
async fn next<T>(events: &mut UnboundedReceiver<T>) -> T {
    tokio::time::timeout(EVENT_TIMEOUT, events.recv())
        .await
        .unwrap_or_else(|_| panic!("no event within {EVENT_TIMEOUT:?}"))
        .expect("the senders live as long as their handlers")
}

/// Runs `test`, a future made on the reactor thread, to its end, then
/// stops the reactor; a panic in it stops the reactor at once and fails
/// the test with its message (`stop_on_panic`).
fn on_reactor<F: Future<Output = ()> + 'static>(test: impl FnOnce() -> F + 'static) {
    run_builder_with_watchdog(em::Reactor::builder().stop_on_panic(true), move || {
        let test = test();
        em::spawn(async move {
            test.await;
            em::stop();
        })
        .map(drop)
    })
    .expect("the test ran to its end");
}

/// The reference test: SIGUSR1 sent 100 times, each time from another
/// thread, which waits until the handler has seen it before sending the
/// next. Every send is seen, always on the reactor thread.
#[test]
fn a_trapped_signal_reaches_its_handler_on_the_reactor_thread_after_each_of_100_sends() {
    let (seen_tx, seen_rx) = mpsc::channel();
    let (done_tx, done_rx) = mpsc::channel();
    run_with_watchdog(move || -> em::Result<()> {
        let reactor = thread::current().id();
        let trap = em::trap(Signal::USR1, move || {
            seen_tx.send(thread::current().id()).ok();
        })?;
        assert_eq!(trap.signal(), Signal::USR1);
        spawn_peer(em::handle()?, done_tx, move || {
            let mut runs = 0;
            for round in 0..100 {
                send(Signal::USR1);
                let on = recv(&seen_rx);
                assert_eq!(
                    on, reactor,
                    "round {round}: the handler ran off the reactor thread"
                );
                runs += 1;
                // At least once per arrival: a run more is allowed.
                runs += seen_rx.try_iter().count();
            }
            runs
        });
        Ok(())
    })
    .expect("run");
    let runs = join_peer(&done_rx);
    assert!(runs >= 100, "{runs} runs for 100 signals");
}

/// Handlers of one signal run in the order they were trapped; one trapped
/// by a handler while they run gets the next arrival, not this one.
#[test]
fn handlers_of_one_signal_run_in_the_order_they_were_trapped() {
    on_reactor(|| async {
        let (tx, mut events) = unbounded_channel();
        for name in ["first", "second"] {
            let tx = tx.clone();
            em::trap(Signal::USR2, move || tx.send(name).unwrap()).unwrap();
        }
        let armed = Cell::new(true);
        let late_tx = tx.clone();
        em::trap(Signal::USR2, move || {
            if armed.replace(false) {
                let tx = late_tx.clone();
                em::trap(Signal::USR2, move || tx.send("late").unwrap()).unwrap();
            }
            tx.send("third").unwrap();
        })
        .unwrap();
        send(Signal::USR2);
        for name in ["first", "second", "third"] {
            assert_eq!(next(&mut events).await, name, "first arrival");
        }
        for round in 0..10 {
            send(Signal::USR2);
            for name in ["first", "second", "third", "late"] {
                assert_eq!(next(&mut events).await, name, "round {round}");
            }
        }
    });
}

/// `untrap` stops delivery to that handler (from the test, or from the
/// handler itself) while the others go on; it is idempotent; after the
/// last handler is gone a new trap of the same signal works.
#[test]
fn untrap_stops_one_handler_while_the_others_go_on() {
    on_reactor(|| async {
        let (tx, mut events) = unbounded_channel();
        let trap = |name: &'static str| {
            let tx = tx.clone();
            em::trap(Signal::WINCH, move || tx.send(name).unwrap()).unwrap()
        };
        let a = trap("a");
        let b = trap("b");
        // "c" untraps itself the first time it runs.
        let c_trap: Rc<RefCell<Option<em::Trap>>> = Rc::default();
        let c_slot = c_trap.clone();
        let c_tx = tx.clone();
        *c_trap.borrow_mut() = Some(
            em::trap(Signal::WINCH, move || {
                c_tx.send("c").unwrap();
                c_slot.borrow().as_ref().expect("set after trap").untrap();
            })
            .unwrap(),
        );
        send(Signal::WINCH);
        for name in ["a", "b", "c"] {
            assert_eq!(next(&mut events).await, name);
        }
        b.untrap();
        b.untrap(); // idempotent
        for round in 0..3 {
            send(Signal::WINCH);
            // Neither "b" nor "c" runs between two arrivals' "a".
            assert_eq!(next(&mut events).await, "a", "round {round}");
        }
        a.untrap();
        let d = trap("d");
        send(Signal::WINCH);
        assert_eq!(next(&mut events).await, "d");
        d.untrap();
        assert!(events.try_recv().is_err(), "nothing else ran");
    });
}

/// A panicking handler is contained: the error handler is told (callback
/// `"trap"`), the next handler of the signal still runs, the reactor goes
/// on, and the panicking handler stays trapped.
#[test]
fn a_panicking_handler_is_contained() {
    let reports = Rc::new(RefCell::new(Vec::new()));
    let r = reports.clone();
    em::set_error_handler(move |report| {
        r.borrow_mut().push(report.to_string());
        if report.callback() != "trap" {
            em::stop(); // the test itself failed
        }
    });
    let finished = Rc::new(Cell::new(false));
    let f = finished.clone();
    let result = run_with_watchdog(move || {
        em::spawn(async move {
            let (tx, mut events) = unbounded_channel();
            em::trap(Signal::HUP, || panic!("boom in a trap")).unwrap();
            em::trap(Signal::HUP, move || tx.send("after").unwrap()).unwrap();
            for _ in 0..3 {
                send(Signal::HUP);
                assert_eq!(next(&mut events).await, "after");
            }
            f.set(true);
            em::stop();
        })
        .map(drop)
    });
    em::clear_error_handler();
    result.expect("the reactor went on");
    assert!(finished.get(), "reports: {:?}", reports.borrow());
    assert_eq!(*reports.borrow(), vec!["panic in trap: boom in a trap"; 3]);
}

/// With `stop_on_panic`, a panicking handler stops the reactor and `run`
/// returns the panic.
#[test]
fn a_panicking_handler_stops_a_reactor_built_with_stop_on_panic() {
    let err = run_builder_with_watchdog(em::Reactor::builder().stop_on_panic(true), || {
        em::trap(Signal::CONT, || panic!("boom in a trap"))?;
        send(Signal::CONT);
        Ok::<_, em::Error>(())
    })
    .unwrap_err();
    assert!(err.is_panic(), "{err}");
    assert_eq!(err.to_string(), "panic in trap: boom in a trap");
}

/// The process's handler is in place when `trap` returns: a signal sent by
/// the same callback right after the call reaches it. Twenty reactors in a
/// row, each trapping anew.
#[test]
fn a_signal_sent_right_after_trap_returns_is_not_lost() {
    for round in 0..20 {
        let ran = Rc::new(Cell::new(false));
        let r = ran.clone();
        run_with_watchdog(move || -> em::Result<()> {
            em::trap(Signal::ALRM, move || {
                r.set(true);
                em::stop();
            })?;
            send(Signal::ALRM);
            Ok(())
        })
        .expect("run");
        assert!(ran.get(), "round {round}");
    }
}

/// Once the reactor stops, no handler runs: the first handler stops it,
/// the second never runs.
#[test]
fn no_handler_runs_once_the_reactor_stops() {
    let late = Rc::new(Cell::new(false));
    let l = late.clone();
    run_with_watchdog(move || -> em::Result<()> {
        let urg = Signal::from_raw(libc::SIGURG);
        em::trap(urg, em::stop)?;
        em::trap(urg, move || l.set(true))?;
        send(urg);
        Ok(())
    })
    .expect("run");
    assert!(!late.get(), "a handler ran after stop");
}

/// Every reactor that traps a signal gets each arrival: two reactors on
/// two threads, one signal.
#[test]
fn every_reactor_trapping_a_signal_gets_it() {
    let vtalrm = Signal::from_raw(libc::SIGVTALRM);
    let ready = Arc::new(Barrier::new(3));
    let reactors: Vec<_> = (0..2)
        .map(|_| {
            let ready = ready.clone();
            thread::spawn(move || {
                run_with_watchdog(move || -> em::Result<()> {
                    let trapped = em::trap(vtalrm, em::stop);
                    ready.wait(); // even if it failed, so that no one waits forever
                    trapped.map(drop)
                })
            })
        })
        .collect();
    ready.wait();
    send(vtalrm);
    for reactor in reactors {
        reactor
            .join()
            .expect("reactor thread")
            .expect("stopped by its trap");
    }
}

/// Off the reactor thread `trap` is an error; a `Trap` outlives its reactor
/// harmlessly.
#[test]
fn trap_needs_the_reactor_thread() {
    let err = em::trap(Signal::USR1, || {}).unwrap_err();
    assert!(err.is_no_reactor(), "{err}");

    let kept: Rc<RefCell<Option<em::Trap>>> = Rc::default();
    let k = kept.clone();
    let (tx, rx) = mpsc::channel();
    run_with_watchdog(move || -> em::Result<()> {
        *k.borrow_mut() = Some(em::trap(Signal::from_raw(libc::SIGPWR), || {})?);
        // From another thread while the reactor runs: an error too.
        thread::spawn(move || {
            tx.send(em::trap(Signal::USR1, || {}).unwrap_err().is_no_reactor())
                .ok();
        });
        em::stop();
        Ok(())
    })
    .expect("run");
    assert!(recv(&rx), "trap on another thread is no_reactor");
    let trap = kept.borrow_mut().take().expect("trapped");
    trap.untrap(); // the reactor is gone: a no-op
    assert_eq!(trap.signal().as_raw(), libc::SIGPWR);
}

/// SIGKILL and SIGSTOP (and the faults tokio refuses) cannot be trapped,
/// nor a number that is no signal; the closure is dropped. While the
/// reactor stops, `trap` is refused.
#[test]
fn what_cannot_be_trapped_is_an_error() {
    let stopping = Rc::new(Cell::new(None));
    let s = stopping.clone();
    run_with_watchdog(move || -> em::Result<()> {
        let captured = Rc::new(());
        for signal in [Signal::KILL, Signal::STOP, Signal::from_raw(libc::SIGSEGV)] {
            let c = captured.clone();
            let err = em::trap(signal, move || {
                let _ = &c;
            })
            .unwrap_err();
            assert!(err.is_unsupported(), "{signal}: {err}");
            assert!(err.to_string().contains(&signal.to_string()), "{err}");
        }
        let too_large = em::trap(Signal::from_raw(100_000), || {}).unwrap_err();
        assert!(too_large.is_unsupported(), "{too_large}");
        for raw in [0, -1] {
            let err = em::trap(Signal::from_raw(raw), || {}).unwrap_err();
            assert!(err.is_invalid_argument(), "{raw}: {err}");
        }
        assert_eq!(Rc::strong_count(&captured), 1, "the closures were dropped");
        em::add_shutdown_hook(move || {
            let refused = em::trap(Signal::USR1, || {}).map(drop);
            s.set(Some(refused.is_err_and(|e| e.is_stopping())));
        })?;
        em::stop();
        Ok(())
    })
    .expect("run");
    assert_eq!(
        stopping.get(),
        Some(true),
        "trap while stopping is is_stopping()"
    );
}

/// A `Trap` belongs to its reactor thread; a `Signal` is plain data.
#[test]
fn trap_is_not_send_and_signal_is() {
    assert_not_send!(em::Trap);
    assert_not_sync!(em::Trap);
    fn require_send_sync<T: Send + Sync>() {}
    require_send_sync::<Signal>();
}
