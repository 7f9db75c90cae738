//! `em::Deferred`: EventMachine's rules DF1, DF3 and DF5, the first
//! resolution winning (where em differs from DF2 and DF4), and the future.

mod support;

use std::time::Duration;

use support::*;

/// DF1: callbacks run FIFO, synchronously inside `succeed`.
#[test]
fn callbacks_run_fifo_inside_succeed() {
    let log = Log::default();
    let l = log.clone();
    run_with_watchdog(move || {
        let d = em::Deferred::<u32, ()>::new();
        for n in 1..=3 {
            let l = l.clone();
            d.callback(move |v| l.push(format!("cb{n} {v}")));
        }
        l.push("succeed");
        assert!(d.succeed(7));
        l.push("returned");
        em::stop();
    })
    .unwrap();
    assert_eq!(
        log.events(),
        ["succeed", "cb1 7", "cb2 7", "cb3 7", "returned"]
    );
}

/// DF3: a callback added after success runs at once; an errback added
/// after success never runs, and vice versa.
#[test]
fn late_callbacks_run_at_once_and_the_other_side_is_dropped() {
    let log = Log::default();
    let l = log.clone();
    run_with_watchdog(move || {
        let ok = em::Deferred::<&str, &str>::new();
        let (l1, l2) = (l.clone(), l.clone());
        ok.errback(move |e| l1.push(format!("early eb {e}")));
        ok.succeed("yes");
        ok.callback(move |v| l2.push(format!("late cb {v}")));
        let l3 = l.clone();
        ok.errback(move |e| l3.push(format!("late eb {e}")));

        let bad = em::Deferred::<&str, &str>::new();
        let (l4, l5) = (l.clone(), l.clone());
        bad.callback(move |v| l4.push(format!("early cb {v}")));
        bad.fail("no");
        bad.errback(move |e| l5.push(format!("late eb {e}")));
        assert!(ok.is_succeeded() && bad.is_failed());
        em::stop();
    })
    .unwrap();
    assert_eq!(log.events(), ["late cb yes", "late eb no"]);
}

/// em differs from DF2/DF4: the first resolution wins, even from inside a
/// callback; later calls return false and change nothing.
#[test]
fn the_first_resolution_wins() {
    let log = Log::default();
    let l = log.clone();
    run_with_watchdog(move || {
        let d = em::Deferred::<u32, u32>::new();
        let (d2, l1) = (d.clone(), l.clone());
        d.callback(move |v| {
            l1.push(format!("cb1 {v}"));
            assert!(!d2.succeed(10), "re-resolving inside a callback is refused");
        });
        let l2 = l.clone();
        d.callback(move |v| l2.push(format!("cb2 {v}")));
        let l3 = l.clone();
        d.errback(move |e| l3.push(format!("eb {e}")));
        assert!(d.succeed(1));
        assert!(!d.fail(2));
        let l4 = l.clone();
        d.errback(move |e| l4.push(format!("late eb {e}")));
        assert!(d.is_succeeded());
        em::stop();
    })
    .unwrap();
    assert_eq!(log.events(), ["cb1 1", "cb2 1"]);
}

/// DF5: `timeout` fails it in time (paused clock); resolving first cancels
/// the timeout.
#[test]
fn timeout_fails_it_unless_resolved_first() {
    let timeline = std::rc::Rc::new(std::cell::RefCell::new(None::<Timeline>));
    let t = timeline.clone();
    run_paused(move || -> em::Result<()> {
        let tl = Timeline::start();
        *t.borrow_mut() = Some(tl.clone());
        let late = em::Deferred::<(), &str>::new();
        let tl1 = tl.clone();
        late.errback(move |e| tl1.push(format!("eb {e}")));
        late.timeout(Duration::from_millis(50), "timed out")?;

        let early = em::Deferred::<(), &str>::new();
        let tl2 = tl.clone();
        early.errback(move |e| tl2.push(format!("early eb {e}")));
        early.timeout(Duration::from_millis(20), "timed out")?;
        let (e2, tl3) = (early.clone(), tl.clone());
        em::spawn(async move {
            let _keep = late; // a dropped deferred's timeout is cancelled
            tokio::time::sleep(Duration::from_millis(10)).await;
            e2.succeed(());
            tl3.push("early ok");
            tokio::time::sleep(Duration::from_millis(100)).await;
            em::stop();
        })?;
        Ok(())
    })
    .unwrap();
    let tl = timeline.borrow().clone().unwrap();
    assert_eq!(
        tl.events_ms(),
        [
            ("early ok".to_string(), 10),
            ("eb timed out".to_string(), 50)
        ]
    );
}

/// `timeout` is reactor-only: a typed error elsewhere.
#[test]
fn timeout_outside_a_reactor_is_a_typed_error() {
    let d = em::Deferred::<(), ()>::new();
    assert!(d
        .timeout(Duration::from_secs(1), ())
        .unwrap_err()
        .is_no_reactor());
}

/// A `Deferred` is a future under `em::spawn`; every clone may await it.
#[test]
fn it_is_a_future_under_spawn() {
    let log = Log::default();
    let l = log.clone();
    run_with_watchdog(move || -> em::Result<()> {
        let d = em::Deferred::<u32, String>::new();
        for name in ["a", "b"] {
            let (d, l) = (d.clone(), l.clone());
            em::spawn(async move {
                let v = d.await;
                l.push(format!("{name} {v:?}"));
                if name == "b" {
                    em::stop();
                }
            })?;
        }
        em::next_tick(move || {
            d.succeed(5);
        });
        Ok(())
    })
    .unwrap();
    assert_eq!(log.events(), ["a Ok(5)", "b Ok(5)"]);
}

/// A panicking callback is contained; the next one still runs.
#[test]
fn a_panicking_callback_does_not_stop_the_others() {
    let log = Log::default();
    let l = log.clone();
    run_with_watchdog(move || {
        let d = em::Deferred::<u32, ()>::new();
        d.callback(|_| panic!("callback boom"));
        let l1 = l.clone();
        d.callback(move |v| l1.push(format!("cb2 {v}")));
        d.succeed(3);
        em::stop();
    })
    .unwrap();
    assert_eq!(log.events(), ["cb2 3"]);
}

/// CP1 (the parts a one-shot result has): `completion` fires on either
/// terminal state, after that side's callbacks; late, it runs at once;
/// callbacks for the other state are never queued.
#[test]
fn completion_fires_on_either_state_and_late_ones_run_at_once() {
    let log = Log::default();
    let l = log.clone();
    run_with_watchdog(move || {
        for (name, outcome) in [("ok", Ok(1)), ("bad", Err("no"))] {
            let d = em::Deferred::<u32, &str>::new();
            let (l1, l2, l3) = (l.clone(), l.clone(), l.clone());
            d.completion(move |r| l1.push(format!("{name} completion {r:?}")));
            d.callback(move |v| l2.push(format!("{name} cb {v}")));
            d.errback(move |e| l3.push(format!("{name} eb {e}")));
            d.resolve(outcome);
            let l4 = l.clone();
            d.completion(move |r| l4.push(format!("{name} late completion {r:?}")));
        }
        em::stop();
    })
    .unwrap();
    assert_eq!(
        log.events(),
        [
            "ok cb 1",
            "ok completion Ok(1)",
            "ok late completion Ok(1)",
            "bad eb no",
            "bad completion Err(\"no\")",
            "bad late completion Err(\"no\")",
        ]
    );
}

/// A pending timeout keeps its deferred alive (as EventMachine's timer
/// keeps the deferrable): with every handle dropped, the errbacks still run
/// at the timeout.
#[test]
fn a_pending_timeout_keeps_a_dropped_deferred_alive() {
    let log = Log::default();
    let l = log.clone();
    run_paused(move || -> em::Result<()> {
        let start = tokio::time::Instant::now();
        let d = em::Deferred::<(), &str>::new();
        let l1 = l.clone();
        d.errback(move |e| {
            l1.push(format!("errback {e} at {} ms", start.elapsed().as_millis()));
            em::stop();
        });
        d.timeout(Duration::from_millis(250), "timed out")?;
        drop(d);
        Ok(())
    })
    .unwrap();
    assert_eq!(log.events(), ["errback timed out at 250 ms"]);
}

/// A callback added from inside a callback of a resolved deferred runs
/// after it, iteratively: a chain of a million does not grow the stack.
#[test]
fn a_million_chained_late_callbacks_run_without_recursion() {
    const CHAIN: u32 = 1_000_000;
    fn chain(d: em::Deferred<u32, ()>, left: u32, count: std::rc::Rc<std::cell::Cell<u32>>) {
        let d2 = d.clone();
        d.callback(move |_| {
            count.set(count.get() + 1);
            if left > 1 {
                chain(d2, left - 1, count);
            }
        });
    }
    let count = std::rc::Rc::new(std::cell::Cell::new(0));
    let c = count.clone();
    run_with_watchdog(move || {
        let d = em::Deferred::<u32, ()>::new();
        d.succeed(1);
        chain(d, CHAIN, c);
        em::stop();
    })
    .unwrap();
    assert_eq!(count.get(), CHAIN);
}
