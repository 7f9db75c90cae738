//! Defer under tokio's paused clock (`start_paused`, em's `test-util`
//! feature): the clock does not auto-advance while an op is in flight, so a
//! blocking op takes no virtual time and a timer never overtakes it.

mod support;

use std::time::Duration;

use support::*;

/// An op that takes real time, racing a 1 s timer: with the clock paused,
/// the op's callback comes first, at virtual time zero, and the timer then
/// fires at exactly 1 s.
#[test]
fn the_paused_clock_stands_still_while_an_op_runs() {
    let log = Log::default();
    let l = log.clone();
    run_paused(move || -> em::Result<()> {
        let start = tokio::time::Instant::now();
        let events = std::rc::Rc::new(std::cell::Cell::new(0));
        let (l2, e2) = (l.clone(), events.clone());
        em::spawn(async move {
            tokio::time::sleep(Duration::from_secs(1)).await;
            l2.push(format!("timer at {:?}", start.elapsed()));
            e2.set(e2.get() + 1);
            if e2.get() == 2 {
                em::stop();
            }
        })?;
        em::defer(
            // The op's work takes real time; the reactor is idle meanwhile.
            || std::thread::sleep(Duration::from_millis(50)),
            move |()| {
                l.push(format!("op at {:?}", start.elapsed()));
                events.set(events.get() + 1);
                if events.get() == 2 {
                    em::stop();
                }
            },
        )
    })
    .unwrap();
    assert_eq!(log.events(), ["op at 0ns", "timer at 1s"]);
}

/// Sequential ops (each deferred from the last one's callback) keep the
/// clock still throughout, and it moves on once they are done.
#[test]
fn the_paused_clock_moves_on_once_the_ops_are_done() {
    let log = Log::default();
    let l = log.clone();
    run_paused(move || -> em::Result<()> {
        let start = tokio::time::Instant::now();
        fn chain(left: u32, start: tokio::time::Instant, log: Log) {
            em::defer(
                || std::thread::sleep(Duration::from_millis(5)),
                move |()| {
                    if left > 1 {
                        chain(left - 1, start, log);
                    } else {
                        log.push(format!("ops done at {:?}", start.elapsed()));
                        em::spawn(async move {
                            tokio::time::sleep(Duration::from_millis(250)).await;
                            log.push(format!("timer at {:?}", start.elapsed()));
                            em::stop();
                        })
                        .unwrap();
                    }
                },
            )
            .unwrap();
        }
        chain(10, start, l);
        Ok(())
    })
    .unwrap();
    assert_eq!(log.events(), ["ops done at 0ns", "timer at 250ms"]);
}
