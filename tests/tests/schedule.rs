//! Work from other threads: `Handle::schedule` (EventMachine N6, N7).

mod support;

use std::sync::atomic::{AtomicU8, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;

use support::*;

const THREADS: usize = 8;
const PER_THREAD: usize = 10_000;
const TOTAL: usize = THREADS * PER_THREAD;

/// What the scheduled closures saw.
struct Tally {
    /// How many times closure `t * PER_THREAD + i` ran.
    runs: Vec<AtomicU8>,
    ran: AtomicUsize,
    off_reactor_thread: AtomicUsize,
    /// Per producer thread, the index of the last closure that ran.
    last: Mutex<Vec<Option<usize>>>,
    out_of_order: AtomicUsize,
    refused: AtomicUsize,
}

/// 8 threads each schedule 10,000 closures: every one runs exactly once, on
/// the reactor thread, and each thread's closures run in the order it
/// scheduled them.
#[test]
fn closures_from_eight_threads_each_run_exactly_once_on_the_reactor_thread() {
    let tally = Arc::new(Tally {
        runs: (0..TOTAL).map(|_| AtomicU8::new(0)).collect(),
        ran: AtomicUsize::new(0),
        off_reactor_thread: AtomicUsize::new(0),
        last: Mutex::new(vec![None; THREADS]),
        out_of_order: AtomicUsize::new(0),
        refused: AtomicUsize::new(0),
    });
    let t = tally.clone();
    run_with_watchdog(move || -> em::Result<()> {
        let handle = em::handle()?;
        let reactor = thread::current().id();
        assert_eq!(handle.thread_id(), reactor);
        for producer in 0..THREADS {
            let (handle, tally) = (handle.clone(), t.clone());
            thread::spawn(move || {
                for i in 0..PER_THREAD {
                    let tl = tally.clone();
                    let scheduled = handle.schedule(move || {
                        if thread::current().id() != reactor || !em::reactor_thread() {
                            tl.off_reactor_thread.fetch_add(1, Ordering::SeqCst);
                        }
                        tl.runs[producer * PER_THREAD + i].fetch_add(1, Ordering::SeqCst);
                        let previous = tl.last.lock().unwrap()[producer].replace(i);
                        if previous.is_some_and(|p| p >= i) {
                            tl.out_of_order.fetch_add(1, Ordering::SeqCst);
                        }
                        if tl.ran.fetch_add(1, Ordering::SeqCst) + 1 == TOTAL {
                            em::stop();
                        }
                    });
                    if scheduled.is_err() {
                        tally.refused.fetch_add(1, Ordering::SeqCst);
                        handle.stop();
                        return;
                    }
                }
            });
        }
        Ok(())
    })
    .unwrap();
    assert_eq!(tally.refused.load(Ordering::SeqCst), 0, "schedule refused");
    assert_eq!(tally.ran.load(Ordering::SeqCst), TOTAL);
    let wrong: Vec<usize> = (0..TOTAL)
        .filter(|&k| tally.runs[k].load(Ordering::SeqCst) != 1)
        .collect();
    assert!(
        wrong.is_empty(),
        "{} closures did not run exactly once, first: {:?}",
        wrong.len(),
        &wrong[..wrong.len().min(10)]
    );
    assert_eq!(tally.off_reactor_thread.load(Ordering::SeqCst), 0);
    assert_eq!(tally.out_of_order.load(Ordering::SeqCst), 0);
}

/// N6: a closure scheduled from another thread wakes a reactor that has
/// nothing else to do (the watchdog would fail the test otherwise).
#[test]
fn schedule_wakes_an_idle_reactor() {
    let (done_tx, done_rx) = std::sync::mpsc::channel();
    run_with_watchdog(move || -> em::Result<()> {
        let handle = em::handle()?;
        thread::spawn(move || {
            handle
                .schedule(move || {
                    done_tx.send(em::reactor_thread()).unwrap();
                    em::stop();
                })
                .unwrap();
        });
        Ok(())
    })
    .unwrap();
    assert!(recv(&done_rx), "ran on the reactor thread");
}

/// N7: `em::schedule` on the reactor thread runs at once; `Handle::schedule`
/// on the reactor thread queues, after the ticks already queued.
#[test]
fn schedule_on_the_reactor_thread() {
    let log = Arc::new(Mutex::new(Vec::new()));
    let l = log.clone();
    run_with_watchdog(move || -> em::Result<()> {
        let handle = em::handle()?;
        let (l1, l2, l3) = (l.clone(), l.clone(), l.clone());
        em::next_tick(move || l1.lock().unwrap().push("tick queued first"));
        handle.schedule(move || {
            l2.lock().unwrap().push("handle.schedule");
            em::stop();
        })?;
        em::schedule(move || l3.lock().unwrap().push("em::schedule ran at once"))?;
        l.lock().unwrap().push("after schedule calls");
        Ok(())
    })
    .unwrap();
    assert_eq!(
        *log.lock().unwrap(),
        [
            "em::schedule ran at once",
            "after schedule calls",
            "tick queued first",
            "handle.schedule",
        ]
    );
}

/// EventMachine N2, one FIFO: a closure another thread scheduled before the
/// reactor queued a `next_tick` runs before that tick, even when the tick
/// stops the reactor.
#[test]
fn a_closure_scheduled_before_a_next_tick_runs_before_it() {
    let log = Arc::new(Mutex::new(Vec::new()));
    let l = log.clone();
    run_with_watchdog(move || -> em::Result<()> {
        let handle = em::handle()?;
        let (scheduled_tx, scheduled_rx) = std::sync::mpsc::channel();
        let from_thread = l.clone();
        thread::spawn(move || {
            handle
                .schedule(move || from_thread.lock().unwrap().push("scheduled"))
                .unwrap();
            // `schedule` has returned: tell the reactor.
            scheduled_tx.send(()).unwrap();
        });
        let on_reactor = l.clone();
        em::tick_loop(move || {
            // Bounded by the watchdog: the thread answers at once.
            if scheduled_rx.try_recv().is_err() {
                return std::ops::ControlFlow::Continue(());
            }
            let l = on_reactor.clone();
            em::next_tick(move || {
                l.lock().unwrap().push("next_tick");
                em::stop();
            });
            std::ops::ControlFlow::Break(())
        });
        Ok(())
    })
    .unwrap();
    assert_eq!(*log.lock().unwrap(), ["scheduled", "next_tick"]);
}

/// `em::schedule` on a thread with no reactor is a typed error and drops
/// the closure unrun: it never waits, lost, in that thread's queue.
#[test]
fn schedule_where_no_reactor_runs_is_a_typed_error() {
    let ran = Arc::new(AtomicUsize::new(0));
    let dropped = Arc::new(AtomicUsize::new(0));
    struct CountDrop(Arc<AtomicUsize>);
    impl Drop for CountDrop {
        fn drop(&mut self) {
            self.0.fetch_add(1, Ordering::SeqCst);
        }
    }
    let (r, d) = (ran.clone(), CountDrop(dropped.clone()));
    let err = em::schedule(move || {
        let _d = d;
        r.fetch_add(1, Ordering::SeqCst);
    })
    .unwrap_err();
    assert!(err.is_no_reactor(), "{err}");
    assert_eq!(
        err.to_string(),
        "schedule: no em reactor is running on this thread"
    );
    assert_eq!(ran.load(Ordering::SeqCst), 0);
    assert_eq!(
        dropped.load(Ordering::SeqCst),
        1,
        "the closure is dropped at once"
    );
    // A reactor started later on this thread does not run it either.
    run_with_watchdog(em::stop).unwrap();
    assert_eq!(ran.load(Ordering::SeqCst), 0);
}

/// Counts flood closures that run, and what happens while they do.
struct Flood {
    ran: AtomicUsize,
}

const FLOOD: usize = 1_000_000;

/// Queues `FLOOD` closures from another thread while the reactor is held
/// in its run block, then lets it go; the first closure to run sends
/// `started`. Returns the tally.
fn flood(started: std::sync::mpsc::Sender<()>) -> Arc<Flood> {
    let tally = Arc::new(Flood {
        ran: AtomicUsize::new(0),
    });
    let handle = em::handle().unwrap();
    let t = tally.clone();
    let queuer = thread::spawn(move || {
        let started = Arc::new(Mutex::new(Some(started)));
        for _ in 0..FLOOD {
            let (t, started) = (t.clone(), started.clone());
            handle
                .schedule(move || {
                    t.ran.fetch_add(1, Ordering::Relaxed);
                    if let Some(tx) = started.lock().unwrap().take() {
                        tx.send(()).ok();
                    }
                })
                .unwrap();
        }
    });
    // Hold the reactor until all of the flood is queued.
    queuer.join().unwrap();
    tally
}

/// A stop asked from another thread takes effect within a few dozen
/// closures of a million-closure flood, not after all of it (it used to
/// wait for the whole pass: 245 ms).
#[test]
fn handle_stop_is_not_held_up_by_a_flood_of_scheduled_closures() {
    let (started_tx, started_rx) = std::sync::mpsc::channel();
    let (tally_tx, tally_rx) = std::sync::mpsc::channel();
    run_with_watchdog(move || {
        let tally = flood(started_tx);
        let handle = em::handle().unwrap();
        let at_stop = Arc::new(AtomicUsize::new(usize::MAX));
        let (t, s) = (tally.clone(), at_stop.clone());
        thread::spawn(move || {
            started_rx.recv().unwrap();
            s.store(t.ran.load(Ordering::SeqCst), Ordering::SeqCst);
            handle.stop();
        });
        tally_tx.send((tally, at_stop)).unwrap();
    })
    .unwrap();
    let (tally, at_stop) = recv(&tally_rx);
    let ran = tally.ran.load(Ordering::SeqCst);
    let at_stop = at_stop.load(Ordering::SeqCst);
    assert!(ran < FLOOD, "the whole flood ran before the stop: {ran}");
    assert!(
        ran - at_stop <= 4096,
        "{} closures ran after the stop was asked",
        ran - at_stop
    );
}

/// Sockets are served in the middle of a flood of scheduled closures: an
/// echo round trip started just before the flood completes long before the
/// flood is done (it used to wait for all of it).
#[test]
fn sockets_are_served_during_a_flood_of_scheduled_closures() {
    struct Ping {
        ran_at_reply: Arc<AtomicUsize>,
        tally: Arc<Mutex<Option<Arc<Flood>>>>,
    }
    impl em::Connection for Ping {
        type Codec = tokio_util::codec::LinesCodec;
        fn codec(&self) -> Self::Codec {
            tokio_util::codec::LinesCodec::new()
        }
        fn receive_data(&mut self, _: &em::Conn<Self::Codec>, _: String) {
            let tally = self.tally.lock().unwrap().clone().unwrap();
            self.ran_at_reply
                .store(tally.ran.load(Ordering::SeqCst), Ordering::SeqCst);
            em::stop();
        }
    }
    let ran_at_reply = Arc::new(AtomicUsize::new(usize::MAX));
    let r = ran_at_reply.clone();
    run_with_watchdog(move || -> em::Result<()> {
        let echo = em::start_server("127.0.0.1:0", LineEcho::default)?;
        let tally_slot = Arc::new(Mutex::new(None));
        let ping = em::connect(
            echo.local_addr(),
            Ping {
                ran_at_reply: r,
                tally: tally_slot.clone(),
            },
        )?;
        // Queued until connected: from here the round trip needs only I/O
        // turns, which the flood (ahead of every tick in the FIFO) must let
        // through.
        ping.send_data("ping");
        let (started_tx, _started_rx) = std::sync::mpsc::channel();
        let tally = flood(started_tx);
        *tally_slot.lock().unwrap() = Some(tally);
        Ok(())
    })
    .unwrap();
    let at_reply = ran_at_reply.load(Ordering::SeqCst);
    assert!(
        at_reply < FLOOD / 2,
        "the echo came back only after {at_reply} of {FLOOD} closures"
    );
}
