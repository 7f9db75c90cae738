//! `em::Pool`: EventMachine's rule PL1 and the async guard.

mod support;

use std::cell::RefCell;
use std::rc::Rc;

use support::*;

/// Jobs wait FIFO for a free resource; success returns it to the pool and
/// it goes to the next waiting job at once.
#[test]
fn jobs_wait_fifo_and_success_returns_the_resource() {
    let log = Log::default();
    let l = log.clone();
    run_with_watchdog(move || {
        let pool = em::Pool::new();
        pool.add("r1");
        let pending = Rc::new(RefCell::new(Vec::new()));
        for job in 1..=3 {
            let (l, p) = (l.clone(), pending.clone());
            pool.perform(move |r: &&str| {
                l.push(format!("job{job} {r}"));
                let d = em::Deferred::<(), ()>::new();
                p.borrow_mut().push(d.clone());
                d
            });
        }
        assert_eq!(pool.num_waiting(), 2);
        assert_eq!(pool.num_idle(), 0);
        let first = pending.borrow()[0].clone();
        first.succeed(()); // job2 gets r1 at once
        let second = pending.borrow()[1].clone();
        second.succeed(());
        let third = pending.borrow()[2].clone();
        third.succeed(());
        assert_eq!(pool.num_idle(), 1);
        assert_eq!(pool.size(), 1);
        em::stop();
    })
    .unwrap();
    assert_eq!(log.events(), ["job1 r1", "job2 r1", "job3 r1"]);
}

/// On failure `on_error` gets the resource and it leaves the pool; with no
/// `on_error` it is requeued; a panicking job counts as failed.
#[test]
fn failure_goes_to_on_error_and_removes_else_requeues() {
    let log = Log::default();
    let l = log.clone();
    run_with_watchdog(move || {
        // No on_error: requeued.
        let pool = em::Pool::new();
        pool.add(1u32);
        pool.perform(|_| {
            let d = em::Deferred::<(), ()>::new();
            d.fail(());
            d
        });
        assert_eq!((pool.size(), pool.num_idle()), (1, 1));

        // With on_error: removed and reported.
        let l1 = l.clone();
        pool.on_error(move |r| l1.push(format!("on_error {r}")));
        pool.perform(|_| {
            let d = em::Deferred::<(), ()>::new();
            d.fail(());
            d
        });
        assert_eq!((pool.size(), pool.num_idle()), (0, 0));

        // A panicking job fails its resource.
        pool.add(2);
        pool.perform(|_| -> em::Deferred<(), ()> { panic!("job boom") });
        assert_eq!((pool.size(), pool.num_idle()), (0, 0));

        // A job's deferred dropped unresolved gives the resource back.
        pool.add(3);
        pool.perform(|_| em::Deferred::<(), ()>::new());
        assert_eq!((pool.size(), pool.num_idle()), (1, 1));
        em::stop();
    })
    .unwrap();
    assert_eq!(log.events(), ["on_error 1", "on_error 2"]);
}

/// The async form: `get().await` waits FIFO with `perform` jobs; the guard
/// returns the resource on drop, or fails it.
#[test]
fn get_returns_a_guard_that_gives_the_resource_back_on_drop() {
    let log = Log::default();
    let l = log.clone();
    run_with_watchdog(move || -> em::Result<()> {
        let pool = em::Pool::new();
        let l0 = l.clone();
        pool.on_error(move |r: String| l0.push(format!("on_error {r}")));
        for name in ["a", "b", "c"] {
            let (pool, l) = (pool.clone(), l.clone());
            em::spawn(async move {
                let conn = pool.get().await;
                l.push(format!("{name} got {}", *conn));
                tokio::task::yield_now().await;
                if name == "b" {
                    conn.fail();
                    pool.add("fresh".to_string());
                } else if name == "c" {
                    drop(conn);
                    assert_eq!((pool.size(), pool.num_idle()), (1, 1));
                    em::stop();
                }
            })?;
        }
        let p = pool.clone();
        em::next_tick(move || p.add("conn".to_string()));
        Ok(())
    })
    .unwrap();
    assert_eq!(
        log.events(),
        ["a got conn", "b got conn", "on_error conn", "c got fresh"]
    );
}
