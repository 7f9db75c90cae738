//! Timers and the reactor's life: the `max_timers` cap (EventMachine T8, and
//! T5 where em differs), calls where no reactor runs (R7), `stop` cancelling
//! everything, and `sleep`/`timeout` under `em::spawn`.

mod support;

use em::TimerOptions;
use std::cell::{Cell, RefCell};
use std::rc::Rc;
use std::time::{Duration, Instant};

use support::*;

fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

/// T8: past `max_timers` pending timers (one-shot and periodic alike),
/// adding one is an error the caller sees, and nothing is scheduled.
#[test]
fn max_timers_caps_pending_timers_with_an_error() {
    let log = Log::default();
    let l = log.clone();
    run_paused_with_watchdog(em::Reactor::builder().max_timers(Some(3)), move || {
        let l1 = l.clone();
        em::add_timer(ms(10), move || l1.push("one-shot"))?;
        em::add_periodic_timer(ms(10), |p| p.cancel())?;
        let l3 = l.clone();
        em::add_timer(ms(20), move || {
            l3.push("last");
            em::stop();
        })?;
        let (flag, dropped) = DropFlag::new();
        let err = em::add_timer(ms(5), move || {
            let _keep = &flag;
            unreachable!()
        })
        .unwrap_err();
        assert!(err.is_too_many_timers(), "{err}");
        assert!(err.to_string().contains("ran out of timers"), "{err}");
        assert!(dropped.get(), "the refused closure is dropped");
        let err = em::add_periodic_timer(ms(5), |_| unreachable!()).unwrap_err();
        assert!(err.is_too_many_timers());
        assert!(!err.is_no_reactor());
        Ok::<(), em::Error>(())
    })
    .unwrap();
    assert_eq!(log.events(), ["one-shot", "last"]);
}

/// T5, where em differs: a cancelled timer stops counting toward the cap at
/// once, and so does a one-shot timer as soon as it fires (its callback can
/// add the next one).
#[test]
fn cancelled_and_fired_timers_stop_counting_at_once() {
    let log = Log::default();
    let l = log.clone();
    run_paused_with_watchdog(em::Reactor::builder().max_timers(Some(2)), move || {
        let a = em::add_timer(ms(3_600_000), || unreachable!())?;
        let p = em::add_periodic_timer(ms(3_600_000), |_| unreachable!())?;
        assert!(em::add_timer(ms(1), || ())
            .unwrap_err()
            .is_too_many_timers());
        a.cancel();
        let l1 = l.clone();
        let b = em::add_timer(ms(10), move || {
            // This timer no longer counts: the cap has room for one.
            let l2 = l1.clone();
            em::add_timer(ms(10), move || {
                l2.push("added by a firing timer");
                em::stop();
            })
            .expect("room for one");
            l1.push("fired");
        })?;
        assert!(em::add_timer(ms(1), || ())
            .unwrap_err()
            .is_too_many_timers());
        em::cancel_timer(&p);
        em::cancel_timer(&p);
        // p's place is free again, once.
        let c = em::add_timer(ms(3_600_000), || unreachable!())?;
        assert!(em::add_timer(ms(1), || ())
            .unwrap_err()
            .is_too_many_timers());
        c.cancel();
        let _ = b;
        Ok::<(), em::Error>(())
    })
    .unwrap();
    assert_eq!(log.events(), ["fired", "added by a firing timer"]);
}

/// The default cap is EventMachine's 100,000; `max_timers(None)` lifts it.
#[test]
fn the_default_cap_is_100_000_and_none_lifts_it() {
    run_paused(|| -> em::Result<()> {
        for _ in 0..100_000 {
            em::add_timer(ms(3_600_000), || ())?;
        }
        assert!(em::add_timer(ms(1), || ())
            .unwrap_err()
            .is_too_many_timers());
        em::stop();
        Ok(())
    })
    .unwrap();
    run_paused_with_watchdog(em::Reactor::builder().max_timers(None), || {
        for _ in 0..100_001 {
            em::add_timer(ms(3_600_000), || ())?;
        }
        em::stop();
        Ok::<(), em::Error>(())
    })
    .unwrap();
}

/// R7: where no reactor runs, adding a timer is an error that
/// `is_no_reactor()`, before `run` and after it.
#[test]
fn adding_a_timer_where_no_reactor_runs_is_an_error() {
    let err = em::add_timer(ms(1), || ()).unwrap_err();
    assert!(err.is_no_reactor(), "{err}");
    assert!(err.to_string().contains("add_timer"), "{err}");
    let err = em::add_periodic_timer(ms(1), |_| ()).unwrap_err();
    assert!(err.is_no_reactor(), "{err}");
    assert!(err.to_string().contains("add_periodic_timer"), "{err}");
    run_paused(|| -> em::Result<()> {
        em::add_timer(ms(1), em::stop)?;
        Ok(())
    })
    .unwrap();
    assert!(em::add_timer(ms(1), || ()).unwrap_err().is_no_reactor());
}

/// `stop` cancels every pending timer: `run` returns at once (on the real
/// clock) though a timer is an hour away, and every pending closure has
/// been dropped by then.
#[test]
fn stop_returns_at_once_and_drops_every_pending_timer() {
    let flags: Rc<RefCell<Vec<Rc<Cell<bool>>>>> = Rc::default();
    let f = flags.clone();
    let started = Instant::now();
    run_with_watchdog(move || -> em::Result<()> {
        let (one_shot, d1) = DropFlag::new();
        em::add_timer(ms(3_600_000), move || {
            let _keep = &one_shot;
            unreachable!()
        })?;
        let (periodic, d2) = DropFlag::new();
        em::add_periodic_timer(ms(3_600_000), move |_| {
            let _keep = &periodic;
            unreachable!()
        })?;
        f.borrow_mut().extend([d1, d2]);
        em::add_timer(ms(5), em::stop)?;
        Ok(())
    })
    .unwrap();
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "run returned after {:?}",
        started.elapsed()
    );
    assert!(flags.borrow().iter().all(|d| d.get()), "closures dropped");
}

/// Once a stop is requested no timer fires, not even one due in the same
/// pass; a timer added while stopping is accepted and dropped, never run.
#[test]
fn no_timer_fires_after_stop() {
    let log = Log::default();
    let l = log.clone();
    let (late, late_dropped) = DropFlag::new();
    run_paused(move || -> em::Result<()> {
        let l1 = l.clone();
        em::add_timer(ms(10), move || {
            l1.push("stopper");
            em::stop();
            em::add_timer(Duration::ZERO, move || {
                let _keep = &late;
                unreachable!()
            })
            .expect("accepted while stopping");
        })?;
        em::add_timer(ms(10), || unreachable!("same pass, after stop"))?;
        em::add_timer(ms(11), || unreachable!())?;
        Ok(())
    })
    .unwrap();
    assert_eq!(log.events(), ["stopper"]);
    assert!(late_dropped.get());
}

/// `sleep` under `em::spawn` waits on the same clock as timers: both wake
/// at exactly 250 ms on the paused clock, in no wall time.
#[test]
fn sleep_under_spawn_runs_on_the_timers_clock() {
    let wall = Instant::now();
    let log = Log::default();
    let l = log.clone();
    run_paused(move || -> em::Result<()> {
        let start = tokio::time::Instant::now();
        let lt = l.clone();
        em::add_timer(ms(250), move || {
            lt.push(format!("timer {:?}", start.elapsed()))
        })?;
        em::spawn(async move {
            em::sleep(ms(250)).await;
            l.push(format!("sleep {:?}", start.elapsed()));
            em::sleep(Duration::from_secs(3600)).await;
            l.push(format!("an hour later {:?}", start.elapsed()));
            em::stop();
        })?;
        Ok(())
    })
    .unwrap();
    assert_eq!(
        log.events(),
        ["timer 250ms", "sleep 250ms", "an hour later 3600.25s"]
    );
    assert!(wall.elapsed() < Duration::from_secs(5));
}

/// `timeout` gives up at exactly its deadline, dropping the future, and
/// passes a faster future's output through.
#[test]
fn timeout_under_spawn() {
    let log = Log::default();
    let l = log.clone();
    run_paused(move || -> em::Result<()> {
        em::spawn(async move {
            let start = tokio::time::Instant::now();
            let slow = em::timeout(ms(100), em::sleep(ms(500))).await;
            assert!(slow.is_err());
            l.push(format!("gave up after {:?}", start.elapsed()));
            let fast = em::timeout(ms(100), async {
                em::sleep(ms(30)).await;
                7
            })
            .await;
            l.push(format!("got {fast:?} after {:?}", start.elapsed()));
            em::stop();
        })?;
        Ok(())
    })
    .unwrap();
    assert_eq!(
        log.events(),
        ["gave up after 100ms", "got Ok(7) after 130ms"]
    );
}
