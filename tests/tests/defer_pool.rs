//! The defer pool: at most `threadpool_size` ops at once, FIFO, results
//! back in batches (EventMachine D4, D5).

mod support;

use em::DeferOptions;
use std::cell::Cell;
use std::collections::HashSet;
use std::rc::Rc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{mpsc, Arc, Mutex};
use std::thread;

use support::*;

/// Counts the ops running at once, and the most there ever were.
#[derive(Default)]
struct Concurrency {
    now: AtomicUsize,
    max: AtomicUsize,
}

impl Concurrency {
    fn enter(&self) {
        let now = self.now.fetch_add(1, Ordering::SeqCst) + 1;
        self.max.fetch_max(now, Ordering::SeqCst);
    }

    fn leave(&self) {
        self.now.fetch_sub(1, Ordering::SeqCst);
    }
}

/// `count` ops that each report their index when they start and then block
/// until released one by one through `release`.
fn slow_ops(
    count: usize,
    conc: &Arc<Concurrency>,
    started: &mpsc::Sender<usize>,
    release: &Arc<Mutex<mpsc::Receiver<()>>>,
    on_done: impl Fn(usize) + Clone + 'static,
) -> em::Result<()> {
    for i in 0..count {
        let (conc, started, release) = (conc.clone(), started.clone(), release.clone());
        let on_done = on_done.clone();
        em::defer(
            move || {
                conc.enter();
                started.send(i).unwrap();
                let released = release.lock().unwrap().recv_timeout(EVENT_TIMEOUT);
                conc.leave();
                released.expect("released");
                i
            },
            on_done,
        )?;
    }
    Ok(())
}

/// With a pool of 3, ten slow ops: never more than 3 run at once, the
/// fourth starts only when one ends, they start in the order they were
/// deferred, and all ten complete (D5).
#[test]
fn a_pool_of_three_runs_ten_slow_ops_three_at_a_time_in_fifo_order() {
    const OPS: usize = 10;
    let conc = Arc::new(Concurrency::default());
    let (started_tx, started_rx) = mpsc::channel();
    let (release_tx, release_rx) = mpsc::channel();
    let release = Arc::new(Mutex::new(release_rx));
    // The controller lets ops end one at a time once three have started,
    // and records the start order.
    let controller = thread::spawn(move || {
        let mut order: Vec<usize> = (0..3).map(|_| recv(&started_rx)).collect();
        for _ in 3..OPS {
            release_tx.send(()).unwrap();
            order.push(recv(&started_rx));
        }
        for _ in 0..3 {
            release_tx.send(()).unwrap();
        }
        order
    });
    let done = Rc::new(Cell::new(Vec::new()));
    let d = done.clone();
    let c = conc.clone();
    run_builder_with_watchdog(em::Reactor::builder().threadpool_size(3), move || {
        slow_ops(OPS, &c, &started_tx, &release, move |i| {
            let mut v = d.take();
            v.push(i);
            let all = v.len() == OPS;
            d.set(v);
            if all {
                em::stop();
            }
        })
    })
    .unwrap();
    let order = controller.join().unwrap();
    assert_eq!(
        conc.max.load(Ordering::SeqCst),
        3,
        "at most 3 at once, and 3 reached"
    );
    let first: HashSet<_> = order[..3].iter().copied().collect();
    assert_eq!(first, HashSet::from([0, 1, 2]), "start order {order:?}");
    assert_eq!(
        order[3..],
        [3, 4, 5, 6, 7, 8, 9],
        "FIFO after the first three"
    );
    let mut done = done.take();
    done.sort_unstable();
    assert_eq!(done, (0..OPS).collect::<Vec<_>>(), "all ten complete");
}

/// The default pool runs 20 ops at once, EventMachine's default.
#[test]
fn the_default_pool_runs_twenty_ops_at_once() {
    const OPS: usize = 25;
    let conc = Arc::new(Concurrency::default());
    let (started_tx, started_rx) = mpsc::channel();
    let (release_tx, release_rx) = mpsc::channel();
    let release = Arc::new(Mutex::new(release_rx));
    let c = conc.clone();
    let controller = thread::spawn(move || {
        for _ in 0..20 {
            recv(&started_rx);
        }
        let running = c.now.load(Ordering::SeqCst);
        for _ in 0..OPS {
            release_tx.send(()).unwrap();
        }
        for _ in 20..OPS {
            recv(&started_rx);
        }
        running
    });
    let left = Rc::new(Cell::new(OPS));
    let c = conc.clone();
    run_with_watchdog(move || {
        slow_ops(OPS, &c, &started_tx, &release, move |_| {
            left.set(left.get() - 1);
            if left.get() == 0 {
                em::stop();
            }
        })
    })
    .unwrap();
    assert_eq!(controller.join().unwrap(), 20);
    assert_eq!(conc.max.load(Ordering::SeqCst), 20);
}

/// Results that come back while the reactor is busy are delivered in one
/// batch: every callback runs before a `next_tick` queued by the first.
#[test]
fn results_that_finish_while_the_reactor_is_busy_come_back_in_one_batch() {
    const QUICK: usize = 50;
    let (last_started_tx, last_started_rx) = mpsc::channel();
    let (release_tx, release_rx) = mpsc::channel::<()>();
    let log = Log::default();
    let l = log.clone();
    run_builder_with_watchdog(em::Reactor::builder().threadpool_size(1), move || {
        let tick_ran = Rc::new(Cell::new(false));
        let delivered = Rc::new(Cell::new(0));
        for i in 0..QUICK {
            let (tick_ran, delivered, l) = (tick_ran.clone(), delivered.clone(), l.clone());
            let release_tx = release_tx.clone();
            em::defer(
                move || thread::current().id(),
                move |_| {
                    if i == 0 {
                        let tick_ran = tick_ran.clone();
                        em::next_tick(move || tick_ran.set(true));
                    }
                    if tick_ran.get() {
                        l.push(format!("callback {i} after a tick"));
                    }
                    delivered.set(delivered.get() + 1);
                    if delivered.get() == QUICK {
                        release_tx.send(()).unwrap();
                    }
                },
            )
            .unwrap();
        }
        // One thread runs the ops in order, so when the last one starts,
        // the 50 before it have handed their results back.
        em::defer(
            move || {
                last_started_tx.send(()).unwrap();
                release_rx.recv_timeout(EVENT_TIMEOUT).unwrap();
            },
            |()| em::stop(),
        )
        .unwrap();
        em::next_tick(move || recv(&last_started_rx));
    })
    .unwrap();
    assert_eq!(log.events(), Vec::<String>::new());
}

/// A pool thread survives a panicking op and runs the next one.
#[test]
fn a_pool_thread_survives_a_panicking_op() {
    let (first_tx, first_rx) = mpsc::channel();
    let second = Rc::new(Cell::new(None));
    let s = second.clone();
    run_builder_with_watchdog(em::Reactor::builder().threadpool_size(1), move || {
        em::defer_with_errback(
            move || {
                first_tx.send(thread::current().id()).unwrap();
                panic!("first op fails");
            },
            |()| unreachable!(),
            move |e| {
                assert!(e.is_panic());
                em::defer(
                    || thread::current().id(),
                    move |id| {
                        s.set(Some(id));
                        em::stop();
                    },
                )
                .unwrap();
            },
        )
    })
    .unwrap();
    assert_eq!(second.get(), Some(recv(&first_rx)), "the same pool thread");
}
