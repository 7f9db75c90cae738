//! Periodic timers (EventMachine T6, T7, and where em differs): the first
//! fire, no drift, no burst, `set_interval`, cancelling from inside, panics.
//! On tokio's paused clock; a slow callback is simulated with
//! `support::busy_for`, which lets the paused clock run for a moment.

mod support;

use std::cell::{Cell, RefCell};
use std::rc::Rc;
use std::time::Duration;

use support::*;

fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

fn ms_list(list: &[u64]) -> Vec<Duration> {
    list.iter().map(|&n| ms(n)).collect()
}

/// Asserts that each fire came at its deadline or within the millisecond
/// after it. (After `busy_for`, the paused clock carries a fraction of a
/// millisecond, and tokio advances it in whole milliseconds.)
#[track_caller]
fn assert_fired_at(fired: &[Duration], deadlines: &[Duration]) {
    let ok = fired.len() == deadlines.len()
        && fired
            .iter()
            .zip(deadlines)
            .all(|(&f, &d)| f >= d && f < d + ms(1));
    assert!(ok, "fired at {fired:?}, deadlines {deadlines:?}");
}

/// Runs `init` on the paused clock with a fresh timeline, and returns it.
fn timeline_of(init: impl FnOnce(&Timeline) -> em::Result<()> + 'static) -> Timeline {
    let slot = Rc::new(RefCell::new(None::<Timeline>));
    let s = slot.clone();
    run_paused(move || {
        let t = Timeline::start();
        *s.borrow_mut() = Some(t.clone());
        init(&t)
    })
    .unwrap();
    let t = slot.borrow().clone().unwrap();
    t
}

/// T6: the first fire comes one interval after creation, then one every
/// interval; `cancel` inside the callback stops it for good.
#[test]
fn fires_every_interval_from_creation_until_cancelled_inside() {
    let t = timeline_of(|t| {
        let (t1, mut n) = (t.clone(), 0);
        em::add_periodic_timer(ms(10), move |timer| {
            t1.push("tick");
            n += 1;
            if n == 5 {
                timer.cancel();
            }
        })?;
        em::add_timer(ms(100), em::stop)?;
        Ok(())
    });
    assert_eq!(t.times_of("tick"), ms_list(&[10, 20, 30, 40, 50]));
}

/// 200 fires in 2 s of a 10 ms timer (the issue asks for at least 198):
/// the last one ties with the stop timer, added earlier, which fires first.
#[test]
fn a_10ms_timer_fires_199_times_by_the_2s_mark() {
    let fires = Rc::new(Cell::new(0));
    let f = fires.clone();
    run_paused(move || -> em::Result<()> {
        em::add_timer(ms(2000), em::stop)?;
        em::add_periodic_timer(ms(10), move |_| f.set(f.get() + 1))?;
        Ok(())
    })
    .unwrap();
    assert_eq!(fires.get(), 199);
}

/// A fast callback (here each takes 3 ms) does not make the timer drift:
/// the next deadline is the previous one plus the interval (EventMachine
/// would fire at 100, 203, 306, ...).
#[test]
fn a_fast_callback_does_not_drift() {
    let t = timeline_of(|t| {
        let t1 = t.clone();
        // busy_for lets real time pass, which a loaded machine can stretch:
        // the interval leaves the callback a wide margin to stay "fast".
        em::add_periodic_timer(ms(100), move |_| {
            t1.push("tick");
            busy_for(ms(3));
        })?;
        em::add_timer(ms(650), em::stop)?;
        Ok(())
    });
    assert_fired_at(
        &t.times_of("tick"),
        &ms_list(&[100, 200, 300, 400, 500, 600]),
    );
}

/// A slow callback pushes the next fire one full interval past its end (as
/// EventMachine re-arms), and the timer does not burst to catch up.
#[test]
fn a_slow_callback_pushes_the_next_fire_one_interval_past_its_end() {
    let t = timeline_of(|t| {
        let (t1, mut n) = (t.clone(), 0);
        em::add_periodic_timer(ms(20), move |timer| {
            t1.push("tick");
            n += 1;
            if n == 1 {
                busy_for(ms(35));
                t1.push("slow callback returns");
            }
            if n == 3 {
                timer.cancel();
                em::stop();
            }
        })?;
        Ok(())
    });
    let end = t.times_of("slow callback returns")[0];
    assert!(end >= ms(55));
    let next = ceil_ms(end) + ms(20);
    assert_fired_at(&t.times_of("tick"), &[ms(20), next, next + ms(20)]);
}

/// A periodic timer held up by another callback fires once, late, then
/// one interval after that: no burst for the deadlines it missed.
#[test]
fn a_late_periodic_timer_does_not_burst() {
    let t = timeline_of(|t| {
        let t1 = t.clone();
        em::add_timer(ms(5), move || {
            busy_for(ms(32)); // past the deadlines at 10, 20 and 30 ms
            t1.push("blocker returns");
        })?;
        let (t2, mut n) = (t.clone(), 0);
        em::add_periodic_timer(ms(10), move |timer| {
            t2.push("tick");
            n += 1;
            if n == 3 {
                timer.cancel();
                em::stop();
            }
        })?;
        Ok(())
    });
    let blocked_until = t.times_of("blocker returns")[0];
    assert!(blocked_until >= ms(37));
    let next = ceil_ms(blocked_until) + ms(10);
    // One late fire, right after the blocker, then back to the interval.
    assert_fired_at(&t.times_of("tick"), &[blocked_until, next, next + ms(10)]);
}

/// T6: `set_interval` from the callback applies from the next re-arm:
/// EventMachine's observed fires at 50, 200 and 350 ms after changing 50 ms
/// to 150 ms in the first callback.
#[test]
fn set_interval_inside_the_callback_applies_from_the_next_rearm() {
    let t = timeline_of(|t| {
        let (t1, mut n) = (t.clone(), 0);
        em::add_periodic_timer(ms(50), move |timer| {
            t1.push("tick");
            n += 1;
            if n == 1 {
                timer.set_interval(ms(150));
                assert_eq!(timer.interval(), ms(150));
            }
            if n == 3 {
                em::stop();
            }
        })?;
        Ok(())
    });
    assert_eq!(t.times_of("tick"), ms_list(&[50, 200, 350]));
}

/// `set_interval` from elsewhere leaves the fire already scheduled alone;
/// the interval is kept in whole milliseconds.
#[test]
fn set_interval_from_outside_keeps_the_scheduled_fire() {
    let t = timeline_of(|t| {
        let (t1, mut n) = (t.clone(), 0);
        let periodic = em::add_periodic_timer(ms(100), move |_| {
            t1.push("tick");
            n += 1;
            if n == 3 {
                em::stop();
            }
        })?;
        em::add_timer(ms(150), move || {
            periodic.set_interval(Duration::from_micros(30_900));
            assert_eq!(periodic.interval(), ms(30));
        })?;
        Ok(())
    });
    assert_eq!(t.times_of("tick"), ms_list(&[100, 200, 230]));
}

/// Cancelling from inside stops the timer for good; its closure is dropped
/// as soon as the callback returns. `cancel_timer` works on a periodic
/// timer too, and cancelling is idempotent.
#[test]
fn cancel_inside_drops_the_closure_after_the_callback_returns() {
    let fires = Rc::new(Cell::new(0));
    let f = fires.clone();
    run_paused(move || -> em::Result<()> {
        let (flag, dropped) = DropFlag::new();
        let d = dropped.clone();
        em::add_periodic_timer(ms(10), move |timer| {
            let _keep = &flag;
            f.set(f.get() + 1);
            if f.get() == 2 {
                em::cancel_timer(timer);
                timer.cancel();
                assert!(!d.get(), "still running");
            }
        })?;
        em::add_timer(ms(21), move || {
            assert!(dropped.get(), "dropped right after its last callback");
            em::stop();
        })?;
        Ok(())
    })
    .unwrap();
    assert_eq!(fires.get(), 2);
}

/// Cancelled from outside: dropped at once, never fires again.
#[test]
fn cancel_from_outside_drops_the_closure_at_once() {
    let fires = Rc::new(Cell::new(0));
    let f = fires.clone();
    run_paused(move || -> em::Result<()> {
        let (flag, dropped) = DropFlag::new();
        let periodic = em::add_periodic_timer(ms(10), move |_| {
            let _keep = &flag;
            f.set(f.get() + 1);
        })?;
        em::add_timer(ms(25), move || {
            periodic.cancel();
            assert!(dropped.get());
            periodic.cancel();
        })?;
        em::add_timer(ms(100), em::stop)?;
        Ok(())
    })
    .unwrap();
    assert_eq!(fires.get(), 2);
}

/// A panicking periodic callback keeps its schedule (EventMachine silently
/// stops the timer, T7).
#[test]
fn a_panicking_periodic_timer_keeps_its_schedule() {
    let t = timeline_of(|t| {
        let (t1, mut n) = (t.clone(), 0);
        em::add_periodic_timer(ms(10), move |_| {
            n += 1;
            t1.push("tick");
            if n == 2 {
                panic!("boom in a periodic timer");
            }
        })?;
        em::add_timer(ms(45), em::stop)?;
        Ok(())
    });
    assert_eq!(t.times_of("tick"), ms_list(&[10, 20, 30, 40]));
}

/// A zero interval fires on every pass of the timers, and the reactor
/// still runs other work in between (here a `next_tick` that re-queues
/// itself forever).
#[test]
fn a_zero_interval_fires_every_pass_without_starving_the_reactor() {
    let ticks_at_fire = Rc::new(RefCell::new(Vec::new()));
    let seen = ticks_at_fire.clone();
    run_paused(move || -> em::Result<()> {
        fn spin(ticks: Rc<Cell<u64>>) {
            ticks.set(ticks.get() + 1);
            em::next_tick(move || spin(ticks));
        }
        let ticks = Rc::new(Cell::new(0));
        spin(ticks.clone());
        em::add_periodic_timer(Duration::ZERO, move |timer| {
            seen.borrow_mut().push(ticks.get());
            if seen.borrow().len() == 5 {
                timer.cancel();
                em::stop();
            }
        })?;
        Ok(())
    })
    .unwrap();
    let seen = ticks_at_fire.borrow();
    assert_eq!(seen.len(), 5);
    assert!(seen[4] > seen[0], "ticks ran meanwhile: {seen:?}");
}

/// Counts the fires of a `period` periodic timer until `span` has passed
/// (on the reactor's clock), then stops.
fn fires_within(period: Duration, span: Duration, paused: bool) -> u32 {
    let fires = Rc::new(Cell::new(0u32));
    let f = fires.clone();
    let init = move || -> em::Result<()> {
        em::add_periodic_timer(period, move |_| f.set(f.get() + 1))?;
        em::add_timer(span, em::stop)?;
        Ok(())
    };
    if paused {
        run_paused(init).unwrap();
    } else {
        run_with_watchdog(init).unwrap();
    }
    fires.get()
}

/// A fast callback does not drift at any interval ≥ 1 ms: a 1 ms periodic
/// timer fires about 2,000 times in 2 s. (A fire that came one timer tick
/// late used to count as a slow callback and be rescheduled from its end,
/// which cut a 1 ms timer to about a third of its rate.)
#[test]
fn a_one_millisecond_timer_keeps_its_rate_on_the_paused_clock() {
    for period in [1, 2, 5] {
        let fires = fires_within(ms(period), Duration::from_secs(2), true);
        let ideal = 2000 / period as u32;
        assert!(
            fires >= ideal * 95 / 100,
            "{period} ms timer: {fires} fires in 2 s, ideal {ideal}"
        );
    }
}

/// The same in real time, with a margin for a busy machine: at least half
/// the ideal 2,000 fires (the bug gave about a third).
#[test]
fn a_one_millisecond_timer_keeps_its_rate_in_real_time() {
    let fires = fires_within(ms(1), Duration::from_secs(2), false);
    assert!(fires >= 1000, "{fires} fires in 2 s");
}

/// A periodic timer whose fire comes later than one interval but less than
/// two (another callback held the reactor) is re-armed on its schedule,
/// which is already past: it fires on the next pass, and keeps firing.
/// (Such a timer used to be filed below the timer store's base and lost.)
#[test]
fn a_periodic_timer_late_by_more_than_an_interval_keeps_firing() {
    let t = timeline_of(|t| {
        let t1 = t.clone();
        let mut n = 0;
        em::add_periodic_timer(ms(5), move |timer| {
            t1.push("tick");
            n += 1;
            if n == 10 {
                timer.cancel();
                em::stop();
            }
        })?;
        // Holds the reactor from 4 ms to about 11 ms: the fire due at 5 ms
        // comes about 6 ms late.
        em::add_timer(ms(4), || busy_for(ms(7)))?;
        Ok(())
    });
    let ticks = t.events().iter().filter(|(e, _)| e == "tick").count();
    assert_eq!(ticks, 10, "{:?}", t.events_ms());
}
