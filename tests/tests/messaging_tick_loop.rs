//! `em::TickLoop`: EventMachine's rule TL1.

mod support;

use std::cell::Cell;
use std::ops::ControlFlow;
use std::rc::Rc;

use support::*;

/// The body runs once per tick (interleaved with other ticks) until it
/// breaks; then each on_stop runs once.
#[test]
fn runs_once_per_tick_until_break_then_on_stop_once() {
    let log = Log::default();
    let l = log.clone();
    run_with_watchdog(move || {
        let n = Rc::new(Cell::new(0));
        let l1 = l.clone();
        let tl = em::tick_loop(move || {
            n.set(n.get() + 1);
            l1.push(format!("body {}", n.get()));
            if n.get() == 3 {
                ControlFlow::Break(())
            } else {
                ControlFlow::Continue(())
            }
        });
        l.push("started");
        // A self-rescheduling tick beside the loop shows one body per tick.
        fn other(l: Log, left: u32) {
            l.push("other");
            if left > 1 {
                em::next_tick(move || other(l, left - 1));
            }
        }
        let l2 = l.clone();
        em::next_tick(move || other(l2, 3));
        for name in ["stop1", "stop2"] {
            let l = l.clone();
            tl.on_stop(move || l.push(name));
        }
        let l3 = l.clone();
        tl.on_stop(move || {
            l3.push("stop3");
            em::stop();
        });
    })
    .unwrap();
    assert_eq!(
        log.events(),
        ["started", "body 1", "other", "body 2", "other", "body 3", "stop1", "stop2", "stop3"]
    );
    assert_eq!(log.count("stop1"), 1);
}

/// `stop` from outside ends it; on_stop on a stopped loop runs at once;
/// start while running is a typed error; a stopped loop restarts.
#[test]
fn stop_on_stop_late_and_double_start() {
    let log = Log::default();
    let l = log.clone();
    run_with_watchdog(move || {
        let ticks = Rc::new(Cell::new(0));
        let t = ticks.clone();
        let tl = em::TickLoop::new(move || {
            t.set(t.get() + 1);
            ControlFlow::Continue(())
        });
        assert!(tl.is_stopped());
        tl.start().unwrap();
        assert!(tl.start().unwrap_err().is_already_started());
        let (tl2, l1) = (tl.clone(), l.clone());
        em::next_tick(move || {
            em::next_tick(move || {
                tl2.stop();
                tl2.stop(); // a no-op
                l1.push(format!("ticks {}", ticks.get()));
                let l = l1.clone();
                tl2.on_stop(move || l.push("late on_stop"));
                tl2.start().unwrap();
                let l = l1.clone();
                tl2.on_stop(move || {
                    l.push("restarted loop stopped");
                    em::stop();
                });
                let tl3 = tl2.clone();
                em::next_tick(move || tl3.stop());
            });
        });
    })
    .unwrap();
    assert_eq!(
        log.events(),
        ["ticks 2", "late on_stop", "restarted loop stopped"]
    );
}

/// A panicking body is contained and stops the loop.
#[test]
fn a_panicking_body_stops_the_loop() {
    let log = Log::default();
    let l = log.clone();
    run_with_watchdog(move || {
        let tl = em::tick_loop(|| panic!("body boom"));
        tl.on_stop(move || {
            l.push("stopped");
            em::stop();
        });
    })
    .unwrap();
    assert_eq!(log.events(), ["stopped"]);
}
