//! `em::Queue`: EventMachine's rules Q1 and Q2, the async pop, and a queue
//! fed from four threads.

mod support;

use std::cell::RefCell;
use std::future::Future;
use std::rc::Rc;
use std::thread;

use support::*;

/// Q1: a pop with an item there runs before `pop` returns; otherwise it
/// waits FIFO and each push feeds one waiting popper, in order.
#[test]
fn pop_runs_at_once_with_an_item_else_waits_fifo_one_item_each() {
    let log = Log::default();
    let l = log.clone();
    run_with_watchdog(move || {
        let q = em::Queue::new();
        q.push("a");
        let l1 = l.clone();
        q.pop(move |i| l1.push(format!("pop1 {i}")));
        l.push("pop returned");
        for n in 2..=4 {
            let l = l.clone();
            q.pop(move |i| l.push(format!("pop{n} {i}")));
        }
        assert_eq!(q.num_waiting(), 3);
        q.push_all(["b", "c"]);
        assert_eq!(q.num_waiting(), 1);
        assert!(q.is_empty());
        q.push("d");
        l.push("pushed");
        em::stop();
    })
    .unwrap();
    assert_eq!(
        log.events(),
        [
            "pop1 a",
            "pop returned",
            "pop2 b",
            "pop3 c",
            "pop4 d",
            "pushed"
        ]
    );
}

/// Q2: pushes keep order; `size` and `is_empty` count unconsumed items.
#[test]
fn push_keeps_order_and_size_counts_unconsumed_items() {
    run_with_watchdog(|| {
        let q = em::Queue::new();
        assert!(q.is_empty());
        q.push_all(1..=3);
        assert_eq!(q.size(), 3);
        let got = Rc::new(RefCell::new(Vec::new()));
        for _ in 0..3 {
            let g = got.clone();
            q.pop(move |i| g.borrow_mut().push(i));
        }
        assert_eq!(*got.borrow(), [1, 2, 3]);
        assert!(q.is_empty());
        em::stop();
    })
    .unwrap();
}

/// A popper may push and pop again from its callback.
#[test]
fn a_popper_may_push_and_pop_from_its_callback() {
    let log = Log::default();
    let l = log.clone();
    run_with_watchdog(move || {
        let q = em::Queue::new();
        let (q2, l1) = (q.clone(), l.clone());
        q.pop(move |i: u32| {
            l1.push(format!("first {i}"));
            let l = l1.clone();
            q2.pop(move |i| l.push(format!("second {i}")));
            q2.push(i + 1);
        });
        q.push(1);
        em::stop();
    })
    .unwrap();
    assert_eq!(log.events(), ["first 1", "second 2"]);
}

/// The async form: FIFO with callback poppers; a dropped `Pop` that was
/// handed an item gives it back.
#[test]
fn pop_async_waits_fifo_and_a_dropped_pop_loses_nothing() {
    let log = Log::default();
    let l = log.clone();
    run_with_watchdog(move || -> em::Result<()> {
        let q = em::Queue::new();
        let (q1, l1) = (q.clone(), l.clone());
        em::spawn(async move {
            let item = q1.pop_async().await;
            l1.push(format!("task {item}"));
            em::stop();
        })?;
        let q3 = q.clone();
        em::spawn(async move {
            // Let the first task take its place among the poppers.
            while q3.num_waiting() == 0 {
                tokio::task::yield_now().await;
            }
            // The task waits now; a callback popper queues behind it.
            assert_eq!(q3.num_waiting(), 1);
            let l2 = l.clone();
            q3.pop(move |i| l2.push(format!("callback {i}")));
            q3.push_all([1, 2]);
            // A pop future handed an item and dropped before returning it.
            let mut abandoned = Box::pin(q3.pop_async());
            let waker = futures::task::noop_waker();
            let mut cx = std::task::Context::from_waker(&waker);
            assert!(abandoned.as_mut().poll(&mut cx).is_pending());
            q3.push(3);
            drop(abandoned);
            assert_eq!(q3.size(), 1, "the item came back");
            let l3 = l.clone();
            q3.pop(move |i| l3.push(format!("after drop {i}")));
        })?;
        Ok(())
    })
    .unwrap();
    assert_eq!(log.events(), ["callback 2", "after drop 3", "task 1"]);
}

/// A queue fed from 4 threads through `Handle::schedule` (by `QueueSender`)
/// loses nothing: every item arrives once, each thread's in order.
#[test]
fn queue_fed_from_four_threads_loses_nothing() {
    const PER: u32 = 10_000;
    let got = Rc::new(RefCell::new(vec![Vec::new(); 4]));
    let g = got.clone();
    let q = em::Queue::<(usize, u32)>::new();
    let keep = q.clone();
    run_with_watchdog(move || -> em::Result<()> {
        let sender = q.sender()?;
        for t in 0..4 {
            let s = sender.clone();
            thread::spawn(move || (0..PER).for_each(|n| s.push((t, n)).unwrap()));
        }
        em::spawn(async move {
            for _ in 0..4 * PER {
                let (t, n) = q.pop_async().await;
                g.borrow_mut()[t].push(n);
            }
            em::stop();
        })?;
        Ok(())
    })
    .unwrap();
    drop(keep);
    for items in got.borrow().iter() {
        assert_eq!(*items, (0..PER).collect::<Vec<_>>());
    }
}

/// SP1, the em way: an "EM.spawn" process is a task looping on a queue;
/// `notify(v)` is a push. The body runs with `v` on a later tick, never
/// inside the push.
#[test]
fn a_spawned_process_notified_through_a_queue_runs_later_never_synchronously() {
    let log = Log::default();
    let l = log.clone();
    run_with_watchdog(move || -> em::Result<()> {
        let mailbox = em::Queue::new();
        let (m, l1) = (mailbox.clone(), l.clone());
        em::spawn(async move {
            loop {
                let v: u32 = m.pop_async().await;
                l1.push(format!("body {v}"));
                if v == 2 {
                    em::stop();
                }
            }
        })?;
        let m = mailbox.clone();
        em::spawn(async move {
            while m.num_waiting() == 0 {
                tokio::task::yield_now().await;
            }
            m.push(1);
            l.push("notified 1");
            m.push(2);
            l.push("notified 2");
        })?;
        Ok(())
    })
    .unwrap();
    assert_eq!(
        log.events(),
        ["notified 1", "notified 2", "body 1", "body 2"]
    );
}

/// A worker that pops again from its own callback drains a million queued
/// items iteratively: no stack overflow (the recursion it used to be
/// aborted the process at about 40,000 items), every item once, in order.
#[test]
fn a_worker_that_pops_again_in_its_callback_drains_a_million_items() {
    const ITEMS: u64 = 1_000_000;
    fn work(q: em::Queue<u64>, seen: Rc<std::cell::Cell<u64>>) {
        let q2 = q.clone();
        q.pop(move |item| {
            assert_eq!(item, seen.get(), "items arrive in order");
            seen.set(seen.get() + 1);
            if seen.get() == ITEMS {
                em::stop();
            } else {
                work(q2, seen);
            }
        });
    }
    let seen = Rc::new(std::cell::Cell::new(0));
    let s = seen.clone();
    run_with_watchdog(move || {
        let q = em::Queue::new();
        q.push_all(0..ITEMS);
        work(q.clone(), s);
        assert!(q.is_empty(), "drained before the first pop returned");
    })
    .unwrap();
    assert_eq!(seen.get(), ITEMS);
}

/// Jobs that each `perform` the next one from inside their work chain
/// through the pool's queue iteratively too: 200,000 of them.
#[test]
fn a_pool_job_that_performs_the_next_one_chains_iteratively() {
    const JOBS: u32 = 200_000;
    fn job(pool: em::Pool<&'static str>, left: u32, done: Rc<std::cell::Cell<u32>>) {
        let p = pool.clone();
        pool.perform(move |_res: &&str| {
            done.set(done.get() + 1);
            if left > 1 {
                job(p, left - 1, done);
            } else {
                em::stop();
            }
            let d = em::Deferred::<(), ()>::new();
            d.succeed(());
            d
        });
    }
    let done = Rc::new(std::cell::Cell::new(0));
    let d = done.clone();
    run_with_watchdog(move || {
        let pool = em::Pool::new();
        pool.add("the one resource");
        job(pool, JOBS, d);
    })
    .unwrap();
    assert_eq!(done.get(), JOBS);
}

/// A push after the queue was dropped fails at once with
/// `is_receiver_gone()`, instead of the item vanishing.
#[test]
fn a_push_after_the_queue_is_dropped_is_receiver_gone() {
    let (tx, rx) = std::sync::mpsc::channel();
    run_with_watchdog(move || -> em::Result<()> {
        let queue = em::Queue::<u32>::new();
        let sender = queue.sender()?;
        drop(queue);
        let handle = em::handle()?;
        thread::spawn(move || {
            tx.send(sender.push(1)).unwrap();
            handle.stop();
        });
        Ok(())
    })
    .unwrap();
    let err = recv(&rx).unwrap_err();
    assert!(err.is_receiver_gone(), "{err}");
    assert!(
        err.to_string()
            .starts_with("QueueSender::push: the queue was dropped"),
        "{err}"
    );
}
