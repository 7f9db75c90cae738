//! Stopping with ops in the pool: `run` does not wait by default, and the
//! callbacks of abandoned ops never run (EventMachine D7);
//! `shutdown_timeout` bounds a wait for running ops; queued ops never run;
//! a later `run` gets a fresh pool.

mod support;

use em::DeferOptions;
use std::cell::Cell;
use std::rc::Rc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{mpsc, Arc};
use std::thread;
use std::time::{Duration, Instant};

use support::*;

/// How long an op "sleeps" unless released first.
const LONG_OP: Duration = Duration::from_secs(10);

/// An op that reports its start, then sleeps up to `LONG_OP` unless
/// released through the returned sender, then reports its end.
struct SleepyOp {
    started: mpsc::Receiver<()>,
    release: mpsc::Sender<()>,
    ended: mpsc::Receiver<()>,
}

fn sleepy_op() -> (SleepyOp, impl FnOnce() -> &'static str + Send + 'static) {
    let (started_tx, started) = mpsc::channel();
    let (release, release_rx) = mpsc::channel::<()>();
    let (ended_tx, ended) = mpsc::channel();
    let op = move || {
        started_tx.send(()).unwrap();
        let _ = release_rx.recv_timeout(LONG_OP);
        ended_tx.send(()).ok();
        "op value"
    };
    (
        SleepyOp {
            started,
            release,
            ended,
        },
        op,
    )
}

/// `stop()` while an op sleeps 10 s: `run` returns promptly, the op's
/// callback never runs, and a later `run` on the same thread works with a
/// fresh pool.
#[test]
fn stop_does_not_wait_for_a_running_op_and_its_callback_never_runs() {
    let (sleepy, op) = sleepy_op();
    let callback_ran = Rc::new(Cell::new(false));
    let c = callback_ran.clone();
    let started = sleepy.started;
    let stopped = Rc::new(Cell::new(None));
    let s = stopped.clone();
    run_with_watchdog(move || -> em::Result<()> {
        em::defer(op, move |_| c.set(true))?;
        em::next_tick(move || {
            recv(&started);
            s.set(Some(Instant::now()));
            em::stop();
        });
        Ok(())
    })
    .unwrap();
    let took = stopped.get().expect("stopped").elapsed();
    assert!(
        took < Duration::from_secs(2),
        "run took {took:?} to return after stop"
    );
    assert!(!callback_ran.get(), "the abandoned op's callback ran");
    // The op is still running; let it end now rather than in 10 s.
    sleepy.release.send(()).unwrap();
    recv(&sleepy.ended);
    assert!(!callback_ran.get());

    let again = Rc::new(Cell::new(""));
    let a = again.clone();
    run_with_watchdog(move || {
        em::defer(
            || "second run",
            move |v| {
                a.set(v);
                em::stop();
            },
        )
    })
    .unwrap();
    assert_eq!(again.get(), "second run");
}

/// With `shutdown_timeout`, `run` waits for a running op, and its callback
/// runs during the teardown, on the reactor thread.
#[test]
fn shutdown_timeout_waits_for_running_ops_and_runs_their_callbacks() {
    let (sleepy, op) = sleepy_op();
    let seen = Rc::new(Cell::new(None));
    let s = seen.clone();
    let (started, release) = (sleepy.started, sleepy.release);
    let builder = em::Reactor::builder().shutdown_timeout(Duration::from_secs(20));
    run_builder_with_watchdog(builder, move || -> em::Result<()> {
        let reactor = thread::current().id();
        em::defer(op, move |v| {
            s.set(Some((v, em::stopping(), thread::current().id() == reactor)))
        })?;
        em::next_tick(move || {
            recv(&started);
            em::stop();
            // The op ends while the reactor tears down (or just before).
            release.send(()).unwrap();
        });
        Ok(())
    })
    .unwrap();
    recv(&sleepy.ended);
    assert_eq!(
        seen.get(),
        Some(("op value", true, true)),
        "the callback ran during the teardown, on the reactor thread"
    );
}

/// `shutdown_timeout` bounds the wait: an op that outlasts it is abandoned
/// and its callback never runs.
#[test]
fn shutdown_timeout_bounds_the_wait() {
    const TIMEOUT: Duration = Duration::from_millis(300);
    let (sleepy, op) = sleepy_op();
    let callback_ran = Rc::new(Cell::new(false));
    let c = callback_ran.clone();
    let started = sleepy.started;
    let stopped = Rc::new(Cell::new(None));
    let s = stopped.clone();
    let builder = em::Reactor::builder().shutdown_timeout(TIMEOUT);
    run_builder_with_watchdog(builder, move || -> em::Result<()> {
        em::defer(op, move |_| c.set(true))?;
        em::next_tick(move || {
            recv(&started);
            s.set(Some(Instant::now()));
            em::stop();
        });
        Ok(())
    })
    .unwrap();
    let took = stopped.get().expect("stopped").elapsed();
    assert!(
        took >= TIMEOUT,
        "run returned after {took:?}, before the timeout"
    );
    assert!(took < TIMEOUT + Duration::from_secs(2), "run took {took:?}");
    assert!(!callback_ran.get());
    sleepy.release.send(()).unwrap();
    recv(&sleepy.ended);
}

/// Drops send a message: proves an op was dropped unrun.
struct DropSignal(Option<mpsc::Sender<()>>);

impl Drop for DropSignal {
    fn drop(&mut self) {
        if let Some(tx) = self.0.take() {
            tx.send(()).ok();
        }
    }
}

/// Ops still queued when the reactor stops never run: they are dropped at
/// the teardown, on the reactor thread, with their callbacks.
#[test]
fn queued_ops_never_run_after_stop() {
    let (sleepy, op) = sleepy_op();
    let queued_ran = Arc::new(AtomicBool::new(false));
    let (dropped_tx, dropped_rx) = mpsc::channel();
    let started = sleepy.started;
    let q = queued_ran.clone();
    let callbacks = Rc::new(Cell::new(0));
    let c = callbacks.clone();
    // One thread, busy with the sleepy op: the second op waits in the queue.
    let builder = em::Reactor::builder().threadpool_size(1);
    run_builder_with_watchdog(builder, move || -> em::Result<()> {
        let c2 = c.clone();
        em::defer(op, move |_| c.set(c.get() + 1))?;
        let guard = DropSignal(Some(dropped_tx));
        em::defer(
            move || {
                let _guard = guard;
                q.store(true, Ordering::SeqCst);
            },
            move |()| c2.set(c2.get() + 10),
        )?;
        em::next_tick(move || {
            recv(&started);
            em::stop();
        });
        Ok(())
    })
    .unwrap();
    // Dropped unrun at the teardown, before `run` returned.
    dropped_rx
        .try_recv()
        .expect("the queued op was dropped by the teardown");
    // The thread ends its op, then finds the pool closed.
    sleepy.release.send(()).unwrap();
    recv(&sleepy.ended);
    assert!(
        !queued_ran.load(Ordering::SeqCst),
        "a queued op ran after stop"
    );
    assert_eq!(callbacks.get(), 0, "a callback ran after stop");
    assert!(em::defers_finished());
}

/// Pool threads do not outlive their op after a stop: the thread of an
/// abandoned op ends when the op ends.
#[test]
fn an_abandoned_ops_thread_ends_with_its_op() {
    let (sleepy, op) = sleepy_op();
    let (thread_tx, thread_rx) = mpsc::channel();
    let started = sleepy.started;
    run_with_watchdog(move || -> em::Result<()> {
        em::defer(
            move || {
                // Leaves a sign when this thread's locals are destroyed,
                // that is when the thread exits.
                thread_local! {
                    static EXIT: std::cell::RefCell<Option<DropSignal>> =
                        const { std::cell::RefCell::new(None) };
                }
                EXIT.with(|e| *e.borrow_mut() = Some(DropSignal(Some(thread_tx))));
                op()
            },
            |_| {},
        )?;
        em::next_tick(move || {
            recv(&started);
            em::stop();
        });
        Ok(())
    })
    .unwrap();
    sleepy.release.send(()).unwrap();
    recv(&sleepy.ended);
    recv(&thread_rx);
}
