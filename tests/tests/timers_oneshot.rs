//! One-shot timers: `add_timer`, `Timer::cancel`, `cancel_timer`
//! (EventMachine T1–T5, T9), on tokio's paused clock so that every firing
//! instant is exact.

mod support;

use std::cell::{Cell, RefCell};
use std::rc::Rc;
use std::time::Duration;

use support::*;

fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

fn events(list: &[(&str, u128)]) -> Vec<(String, u128)> {
    list.iter().map(|&(e, t)| (e.to_owned(), t)).collect()
}

/// T3: timers fire in deadline order, equal deadlines in creation order,
/// each exactly at its deadline.
#[test]
fn timers_fire_in_deadline_order_and_equal_deadlines_in_creation_order() {
    let timeline = Rc::new(RefCell::new(None::<Timeline>));
    let tl = timeline.clone();
    run_paused(move || -> em::Result<()> {
        let t = Timeline::start();
        *tl.borrow_mut() = Some(t.clone());
        for (name, delay) in [
            ("a30", 30),
            ("b10", 10),
            ("c20", 20),
            ("d10", 10),
            ("e0", 0),
            ("f30", 30),
            ("g20", 20),
            ("h10", 10),
        ] {
            let t = t.clone();
            em::add_timer(ms(delay), move || t.push(name))?;
        }
        em::add_timer(ms(31), em::stop)?;
        Ok(())
    })
    .unwrap();
    let t = timeline.borrow().clone().unwrap();
    assert_eq!(
        t.events_ms(),
        events(&[
            ("e0", 0),
            ("b10", 10),
            ("d10", 10),
            ("h10", 10),
            ("c20", 20),
            ("g20", 20),
            ("a30", 30),
            ("f30", 30),
        ])
    );
}

/// T2: a zero delay never fires inside `add_timer`; added by a timer
/// callback, it fires after every timer already due in that pass.
#[test]
fn zero_delay_fires_on_a_later_pass_never_inside_add_timer() {
    let log = Log::default();
    let l = log.clone();
    run_paused(move || -> em::Result<()> {
        let l2 = l.clone();
        em::add_timer(Duration::ZERO, move || l2.push("zero"))?;
        l.push("after add_timer");
        let la = l.clone();
        em::add_timer(ms(10), move || {
            la.push("a");
            let lz = la.clone();
            em::add_timer(Duration::ZERO, move || {
                lz.push("zero from a");
                em::stop();
            })
            .unwrap();
            la.push("a returns");
        })?;
        let lb = l.clone();
        em::add_timer(ms(10), move || lb.push("b"))?;
        Ok(())
    })
    .unwrap();
    assert_eq!(
        log.events(),
        [
            "after add_timer",
            "zero",
            "a",
            "a returns",
            "b",
            "zero from a"
        ]
    );
}

/// T1: delays are truncated to whole milliseconds: 1.9 ms waits 1 ms and
/// 0.9 ms is a zero delay.
#[test]
fn delays_are_truncated_to_whole_milliseconds() {
    let timeline = Rc::new(RefCell::new(None::<Timeline>));
    let tl = timeline.clone();
    run_paused(move || -> em::Result<()> {
        let t = Timeline::start();
        *tl.borrow_mut() = Some(t.clone());
        for (name, delay) in [
            ("1.9ms", Duration::from_micros(1_900)),
            ("0.9ms", Duration::from_micros(900)),
            ("1ms", ms(1)),
            ("2.5ms", Duration::from_micros(2_500)),
        ] {
            let t = t.clone();
            em::add_timer(delay, move || t.push(name))?;
        }
        em::add_timer(ms(5), em::stop)?;
        Ok(())
    })
    .unwrap();
    let t = timeline.borrow().clone().unwrap();
    assert_eq!(
        t.events_ms(),
        events(&[("0.9ms", 0), ("1.9ms", 1), ("1ms", 1), ("2.5ms", 2)])
    );
}

/// Every callback runs on the reactor thread.
#[test]
fn callbacks_run_on_the_reactor_thread() {
    let ran = Rc::new(Cell::new(0));
    let r = ran.clone();
    run_paused(move || -> em::Result<()> {
        let reactor = std::thread::current().id();
        let r1 = r.clone();
        em::add_timer(ms(1), move || {
            assert_eq!(std::thread::current().id(), reactor);
            r1.set(r1.get() + 1);
        })?;
        em::add_periodic_timer(ms(1), move |p| {
            assert_eq!(std::thread::current().id(), reactor);
            r.set(r.get() + 1);
            p.cancel();
            em::stop();
        })?;
        Ok(())
    })
    .unwrap();
    assert_eq!(ran.get(), 2);
}

/// T5: a cancelled timer never fires and its closure is dropped before
/// `cancel` returns; cancelling twice, or after firing, is a no-op.
#[test]
fn cancel_prevents_the_callback_and_drops_the_closure_at_once() {
    let log = Log::default();
    let l = log.clone();
    run_paused(move || -> em::Result<()> {
        let (flag, dropped) = DropFlag::new();
        let lc = l.clone();
        let cancelled = em::add_timer(ms(10), move || {
            let _keep = &flag;
            lc.push("cancelled timer fired");
        })?;
        assert!(!dropped.get());
        cancelled.cancel();
        assert!(dropped.get(), "the closure is dropped by cancel");
        cancelled.cancel();
        em::cancel_timer(&cancelled);

        let lf = l.clone();
        let fired = em::add_timer(ms(5), move || lf.push("fired"))?;
        let lt = l.clone();
        em::add_timer(ms(20), move || {
            // After firing: both forms are no-ops.
            fired.cancel();
            em::cancel_timer(&fired);
            lt.push("end");
            em::stop();
        })?;
        Ok(())
    })
    .unwrap();
    assert_eq!(log.events(), ["fired", "end"]);
}

/// A timer cancelled by an earlier callback of the same pass (same
/// deadline) does not fire; `cancel_timer` works on a timer not yet due.
#[test]
fn cancel_from_a_callback_of_the_same_pass() {
    let log = Log::default();
    let l = log.clone();
    run_paused(move || -> em::Result<()> {
        let victim: Rc<RefCell<Option<em::Timer>>> = Rc::default();
        let (la, v) = (l.clone(), victim.clone());
        em::add_timer(ms(10), move || {
            la.push("a");
            em::cancel_timer(v.borrow().as_ref().unwrap());
        })?;
        let lb = l.clone();
        *victim.borrow_mut() = Some(em::add_timer(ms(10), move || lb.push("b"))?);
        let lc = l.clone();
        em::add_timer(ms(10), move || {
            lc.push("c");
            em::stop();
        })?;
        Ok(())
    })
    .unwrap();
    assert_eq!(log.events(), ["a", "c"]);
}

/// A panic in a timer callback is contained: the reactor, the other timers
/// of the same pass and later timers keep going.
#[test]
fn a_panicking_timer_does_not_take_the_reactor_down() {
    let log = Log::default();
    let l = log.clone();
    let result = run_paused(move || -> em::Result<()> {
        em::add_timer(ms(10), || panic!("boom in a timer"))?;
        let lb = l.clone();
        em::add_timer(ms(10), move || lb.push("same pass"))?;
        let lc = l.clone();
        em::add_timer(ms(20), move || {
            lc.push("later");
            em::stop();
        })?;
        Ok(())
    });
    result.unwrap();
    assert_eq!(log.events(), ["same pass", "later"]);
}

/// T9: very large delays are accepted (the timer just never fires), and
/// `run` still returns at once on `stop`.
#[test]
fn very_large_delays_are_accepted() {
    run_with_watchdog(|| -> em::Result<()> {
        em::add_timer(Duration::from_secs(11_948_602_000), || unreachable!())?;
        em::add_timer(Duration::MAX, || unreachable!())?;
        em::add_periodic_timer(Duration::MAX, |_| unreachable!())?;
        em::add_timer(ms(1), em::stop)?;
        Ok(())
    })
    .unwrap();
}

/// Handles outlive their reactor harmlessly, and never reach the timers of
/// a later reactor on the same thread.
#[test]
fn handles_from_a_stopped_reactor_are_inert() {
    let kept: Rc<RefCell<Option<(em::Timer, em::PeriodicTimer)>>> = Rc::default();
    let k = kept.clone();
    run_paused(move || -> em::Result<()> {
        let t = em::add_timer(ms(3_600_000), || unreachable!())?;
        let p = em::add_periodic_timer(ms(3_600_000), |_| unreachable!())?;
        *k.borrow_mut() = Some((t, p));
        em::next_tick(em::stop);
        Ok(())
    })
    .unwrap();
    let (old_timer, old_periodic) = kept.borrow_mut().take().unwrap();
    old_timer.cancel();
    old_periodic.cancel();

    let log = Log::default();
    let l = log.clone();
    run_paused(move || -> em::Result<()> {
        // Likely the same slot as the old timer: the old handle must not
        // cancel it.
        let lt = l.clone();
        em::add_timer(ms(10), move || {
            lt.push("new timer");
            em::stop();
        })?;
        old_timer.cancel();
        em::cancel_timer(&old_periodic);
        Ok(())
    })
    .unwrap();
    assert_eq!(log.events(), ["new timer"]);
}

/// Timer handles belong to the reactor thread; checked at compile time
/// (the ambiguity trick of static_assertions' `assert_not_impl_any!`).
#[test]
fn timer_handles_are_not_send() {
    assert_not_send!(em::Timer);
    assert_not_send!(em::PeriodicTimer);
}
