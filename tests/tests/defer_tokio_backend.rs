//! `DeferBackend::TokioBlocking`: defer on tokio's blocking pool keeps
//! defer's contract (op off the reactor thread, callback on it, panics to
//! the errback, futures, `defers_finished`), and tokio's own blocking-thread
//! limit applies when em is hosted in the program's runtime.

mod support;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Barrier};

use em::{DeferBackend, DeferOptions};

use support::*;

fn tokio_backend() -> em::Builder {
    em::Reactor::builder().defer_backend(DeferBackend::TokioBlocking)
}

#[test]
fn ops_run_off_the_reactor_thread_and_callbacks_on_it() {
    let log = Log::default();
    let l = log.clone();
    run_builder_with_watchdog(tokio_backend(), move || -> em::Result<()> {
        let reactor = std::thread::current().id();
        let (l1, l2) = (l.clone(), l.clone());
        em::defer(
            move || (std::thread::current().id() != reactor, 6 * 7),
            move |(off_reactor, v)| {
                l1.push(format!("op off the reactor thread: {off_reactor}"));
                l1.push(format!(
                    "callback on the reactor thread: {}",
                    std::thread::current().id() == reactor
                ));
                l1.push(format!("value {v}"));
                assert!(em::defers_finished());
            },
        )?;
        assert!(!em::defers_finished());
        em::defer_with_errback(
            || -> u32 { panic!("op failed") },
            |_| unreachable!("the op panicked"),
            move |e| {
                l2.push(format!("errback {}", e.panic_message().unwrap_or("?")));
                em::stop();
            },
        )?;
        Ok(())
    })
    .unwrap();
    assert_eq!(
        log.events(),
        [
            "op off the reactor thread: true",
            "callback on the reactor thread: true",
            "value 42",
            "errback op failed"
        ]
    );
}

#[test]
fn defer_async_resolves_on_the_tokio_backend() {
    let log = Log::default();
    let l = log.clone();
    run_builder_with_watchdog(tokio_backend(), move || -> em::Result<()> {
        em::spawn(async move {
            let sum = em::defer_async(|| (1..=100u32).sum::<u32>()).await;
            l.push(format!("sum {}", sum.unwrap()));
            em::stop();
        })?;
        Ok(())
    })
    .unwrap();
    assert_eq!(log.events(), ["sum 5050"]);
}

/// Hosted in the program's runtime with `max_blocking_threads(2)`, at most
/// two ops run at once: tokio's limit applies to defers.
#[test]
fn tokio_s_blocking_thread_limit_bounds_the_ops() {
    const OPS: usize = 6;
    let running = Arc::new(AtomicUsize::new(0));
    let peak = Arc::new(AtomicUsize::new(0));
    let done = Arc::new(AtomicUsize::new(0));
    // The first two ops wait for each other: both must run at once.
    let pair = Arc::new(Barrier::new(2));
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .max_blocking_threads(2)
        .build()
        .unwrap();
    let local = tokio::task::LocalSet::new();
    let reactor = tokio_backend().build().unwrap();
    let (r, p, d) = (running.clone(), peak.clone(), done.clone());
    local
        .block_on(
            &rt,
            reactor.run_local(move || -> em::Result<()> {
                em::add_timer(WATCHDOG, em::stop)?;
                for i in 0..OPS {
                    let (r, p, pair) = (r.clone(), p.clone(), pair.clone());
                    let d = d.clone();
                    em::defer(
                        move || {
                            let now = r.fetch_add(1, Ordering::SeqCst) + 1;
                            p.fetch_max(now, Ordering::SeqCst);
                            if i < 2 {
                                pair.wait();
                            }
                            r.fetch_sub(1, Ordering::SeqCst);
                        },
                        move |()| {
                            if d.fetch_add(1, Ordering::SeqCst) + 1 == OPS {
                                em::stop();
                            }
                        },
                    )?;
                }
                Ok(())
            }),
        )
        .unwrap();
    assert_eq!(done.load(Ordering::SeqCst), OPS, "every callback ran");
    assert_eq!(peak.load(Ordering::SeqCst), 2, "tokio's limit of 2 held");
}
