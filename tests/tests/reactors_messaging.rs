//! Messaging across the reactors of a group: `em::GroupChannel` (fan-out to
//! subscribers on every reactor, batched through each reactor's `Handle`)
//! and `em::GroupQueue` (each item to one popper on any reactor).
//!
//! Callbacks record what they see; the assertions run after the group has
//! stopped (a panic in a callback would only be logged).

mod support;

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Barrier, Mutex};
use std::thread;

use support::*;

const PER_PUBLISHER: u32 = 100_000;

fn two_reactors() -> em::Builder {
    em::Reactor::builder().reactors(2)
}

/// What one subscriber saw.
#[derive(Debug, Default)]
struct Seen {
    /// The next sequence number expected, per publisher.
    next: [u32; 2],
    /// Items out of order (per publisher) or on another thread.
    errors: Vec<String>,
}

/// Two publishers (reactor 0's run block and a plain thread) push 100,000
/// numbered messages each; a subscriber on each reactor receives all
/// 200,000, each publisher's in order, on its own reactor's thread.
#[test]
fn group_channel_delivers_every_message_to_every_reactor_in_publisher_order() {
    let news = em::GroupChannel::<(usize, u32)>::new();
    let seen: Arc<Mutex<HashMap<usize, Seen>>> = Arc::default();
    let finished = Arc::new(AtomicUsize::new(0));
    let subscribed = Arc::new(Barrier::new(2));
    let publisher: Arc<Mutex<Option<thread::JoinHandle<()>>>> = Arc::default();
    let (s, p, after) = (seen.clone(), publisher.clone(), news.clone());
    run_each_with_watchdog(two_reactors(), move |index| -> em::Result<()> {
        let thread = thread::current().id();
        let (seen, finished) = (s.clone(), finished.clone());
        let mut mine = Seen::default();
        news.subscribe(move |(from, n): (usize, u32)| {
            if em::reactor_index().unwrap() != index || thread::current().id() != thread {
                mine.errors
                    .push(format!("{from}/{n} delivered on another reactor"));
            }
            if mine.next[from] != n {
                mine.errors.push(format!(
                    "from {from}: got {n}, expected {}",
                    mine.next[from]
                ));
            }
            mine.next[from] = n + 1;
            if mine.next == [PER_PUBLISHER; 2] {
                seen.lock()
                    .unwrap()
                    .insert(index, std::mem::take(&mut mine));
                if finished.fetch_add(1, Ordering::SeqCst) + 1 == 2 {
                    em::stop(); // stops both
                }
            }
        })?;
        // Both reactors subscribe before anyone publishes.
        subscribed.wait();
        if index == 0 {
            let from_thread = news.clone();
            *p.lock().unwrap() = Some(thread::spawn(move || {
                for n in 0..PER_PUBLISHER {
                    from_thread.push((1, n));
                }
            }));
            for n in 0..PER_PUBLISHER {
                assert_eq!(news.push((0, n)), 2, "queued for both reactors");
            }
        }
        Ok(())
    })
    .unwrap();
    publisher.lock().unwrap().take().unwrap().join().unwrap();
    let seen = seen.lock().unwrap();
    assert_eq!(seen.len(), 2, "both subscribers received everything");
    for (index, s) in seen.iter() {
        assert!(
            s.errors.is_empty(),
            "reactor {index}: {:?}",
            &s.errors[..5.min(s.errors.len())]
        );
    }
    drop(seen);
    // The reactors stopped: a push neither blocks nor fails, it reaches
    // nobody, and the stopped reactors leave the channel.
    assert_eq!(after.push((0, 0)), 0);
    assert_eq!((after.num_reactors(), after.num_subscribers()), (0, 0));
}

/// An unsubscribed subscriber receives nothing more, while the other
/// subscriber of its reactor, and the other reactor, go on receiving.
#[test]
fn group_channel_unsubscribe_stops_delivery() {
    let ch = em::GroupChannel::<u32>::new();
    let log: Arc<Mutex<Vec<(char, u32)>>> = Arc::default();
    let counts: Arc<Mutex<Vec<usize>>> = Arc::default();
    let finished = Arc::new(AtomicUsize::new(0));
    let subscribed = Arc::new(Barrier::new(2));
    let (l, c) = (log.clone(), counts.clone());
    run_each_with_watchdog(two_reactors(), move |index| -> em::Result<()> {
        let record = |name: char| {
            let log = l.clone();
            move |n: u32| log.lock().unwrap().push((name, n))
        };
        if index == 1 {
            // `a` leaves at its first item; `b` then publishes item 2.
            let a_id = std::rc::Rc::new(std::cell::Cell::new(None));
            let (ch_a, a_id2, a) = (ch.clone(), a_id.clone(), record('a'));
            let id = ch.subscribe(move |n| {
                a(n);
                let id = a_id2.get().unwrap();
                assert!(ch_a.unsubscribe(id).unwrap());
                assert!(!ch_a.unsubscribe(id).unwrap(), "already gone");
            })?;
            a_id.set(Some(id));
            let (ch_b, counts, finished, b) =
                (ch.clone(), c.clone(), finished.clone(), record('b'));
            ch.subscribe(move |n| {
                b(n);
                if n == 1 {
                    counts.lock().unwrap().push(ch_b.num_subscribers());
                    ch_b.push(2);
                } else if finished.fetch_add(1, Ordering::SeqCst) + 1 == 2 {
                    em::stop();
                }
            })?;
        } else {
            let (finished, c) = (finished.clone(), record('c'));
            ch.subscribe(move |n| {
                c(n);
                if n == 2 && finished.fetch_add(1, Ordering::SeqCst) + 1 == 2 {
                    em::stop();
                }
            })?;
        }
        subscribed.wait();
        if index == 0 {
            assert_eq!(ch.num_subscribers(), 3);
            assert_eq!(ch.push(1), 2);
        }
        Ok(())
    })
    .unwrap();
    let mut log = log.lock().unwrap().clone();
    log.sort();
    assert_eq!(log, [('a', 1), ('b', 1), ('b', 2), ('c', 1), ('c', 2)]);
    assert_eq!(*counts.lock().unwrap(), [2], "a had left when b got item 1");
}

/// Unsubscribing must happen on the subscription's reactor; a reactor
/// whose last subscriber left is no longer pushed to.
#[test]
fn group_channel_unsubscribe_is_per_reactor() {
    let ch = em::GroupChannel::<u32>::new();
    let ids: Arc<Mutex<Vec<em::GroupSubscription>>> = Arc::default();
    let results: Arc<Mutex<Vec<String>>> = Arc::default();
    let subscribed = Arc::new(Barrier::new(2));
    let (i, r) = (ids.clone(), results.clone());
    run_each_with_watchdog(two_reactors(), move |index| -> em::Result<()> {
        if index == 1 {
            i.lock().unwrap().push(ch.subscribe(|_| {})?);
        }
        subscribed.wait();
        if index == 0 {
            let id = i.lock().unwrap()[0];
            assert_ne!(id.thread_id(), thread::current().id());
            let err = ch.unsubscribe(id).unwrap_err();
            r.lock()
                .unwrap()
                .push(format!("invalid: {}", err.is_invalid_argument()));
            let (ch, r) = (ch.clone(), r.clone());
            em::handles()?[1].schedule(move || {
                r.lock().unwrap().push(format!(
                    "unsubscribed: {:?}",
                    ch.unsubscribe(id).map_err(|e| e.to_string())
                ));
                r.lock()
                    .unwrap()
                    .push(format!("reactors: {}", ch.num_reactors()));
                r.lock().unwrap().push(format!("pushed to: {}", ch.push(7)));
                em::stop();
            })?;
        }
        Ok(())
    })
    .unwrap();
    assert_eq!(
        *results.lock().unwrap(),
        [
            "invalid: true",
            "unsubscribed: Ok(true)",
            "reactors: 0",
            "pushed to: 0"
        ]
    );
}

/// Subscribing and popping need a reactor thread.
#[test]
fn group_channel_and_queue_refuse_threads_without_a_reactor() {
    let ch = em::GroupChannel::<u32>::new();
    assert!(ch.subscribe(|_| {}).unwrap_err().is_no_reactor());
    assert_eq!(ch.push(1), 0, "nobody subscribes: dropped");
    let q = em::GroupQueue::<u32>::new();
    assert!(q.pop(|_| {}).unwrap_err().is_no_reactor());
    q.push(1);
    assert_eq!((q.size(), q.num_waiting()), (1, 0));
    assert_eq!(q.try_pop(), Some(1));
}

const ITEMS: u32 = 10_000;
const WORKERS_PER_REACTOR: usize = 3;

/// Pops `queue` again and again, recording (reactor, item).
fn worker(queue: em::GroupQueue<u32>, log: Arc<Mutex<Vec<(usize, u32)>>>, done: Arc<AtomicUsize>) {
    let again = queue.clone();
    let index = em::reactor_index().unwrap();
    queue
        .pop(move |item| {
            // On the reactor the worker popped on.
            assert_eq!(em::reactor_index().unwrap(), index);
            log.lock().unwrap().push((index, item));
            if done.fetch_add(1, Ordering::SeqCst) + 1 == ITEMS as usize {
                em::stop();
            } else {
                worker(again, log, done);
            }
        })
        .unwrap();
}

/// Poppers on both reactors consume 10,000 items pushed by two threads
/// (reactor 0 and a plain thread): each item exactly once.
#[test]
fn group_queue_gives_each_item_to_exactly_one_popper() {
    let queue = em::GroupQueue::<u32>::new();
    let log: Arc<Mutex<Vec<(usize, u32)>>> = Arc::default();
    let done = Arc::new(AtomicUsize::new(0));
    let waiting = Arc::new(Barrier::new(2));
    let publisher: Arc<Mutex<Option<thread::JoinHandle<()>>>> = Arc::default();
    let (l, p, after) = (log.clone(), publisher.clone(), queue.clone());
    run_each_with_watchdog(two_reactors(), move |index| {
        for _ in 0..WORKERS_PER_REACTOR {
            worker(queue.clone(), l.clone(), done.clone());
        }
        waiting.wait();
        if index == 0 {
            assert_eq!(queue.num_waiting(), 2 * WORKERS_PER_REACTOR);
            let q = queue.clone();
            *p.lock().unwrap() = Some(thread::spawn(move || q.push_all(0..ITEMS / 2)));
            queue.push_all(ITEMS / 2..ITEMS);
        }
    })
    .unwrap();
    publisher.lock().unwrap().take().unwrap().join().unwrap();
    let log = log.lock().unwrap();
    let mut items: Vec<u32> = log.iter().map(|(_, item)| *item).collect();
    items.sort_unstable();
    assert_eq!(
        items,
        (0..ITEMS).collect::<Vec<_>>(),
        "each item exactly once"
    );
    for reactor in 0..2 {
        assert!(
            log.iter().any(|(r, _)| *r == reactor),
            "reactor {reactor}'s poppers were served"
        );
    }
    // The reactors stopped with workers waiting: an item pushed now skips
    // them and stays queued.
    after.push(ITEMS);
    assert_eq!((after.size(), after.num_waiting()), (1, 0));
    assert_eq!(after.try_pop(), Some(ITEMS));
}

/// Poppers waiting on both reactors, alternately, are served in the order
/// they came, each on its own reactor.
#[test]
fn group_queue_serves_waiting_poppers_in_order() {
    /// Adds waiter `n` on this reactor, then waiter `n + 1` on the other.
    fn add_waiter(q: em::GroupQueue<u32>, log: Arc<Mutex<Vec<(u32, u32, usize)>>>, n: u32) {
        let index = em::reactor_index().unwrap();
        let l = log.clone();
        q.pop(move |item| {
            let mut log = l.lock().unwrap();
            log.push((n, item, em::reactor_index().unwrap()));
            if log.len() == 4 {
                em::stop();
            }
        })
        .unwrap();
        assert_eq!(q.num_waiting(), n as usize + 1);
        if n < 3 {
            let other = em::handles().unwrap()[1 - index].clone();
            other.schedule(move || add_waiter(q, log, n + 1)).unwrap();
        } else {
            q.push_all(0..4);
            assert_eq!((q.size(), q.num_waiting()), (0, 0));
        }
    }

    let queue = em::GroupQueue::<u32>::new();
    let log: Arc<Mutex<Vec<(u32, u32, usize)>>> = Arc::default();
    let l = log.clone();
    run_each_with_watchdog(two_reactors(), move |index| {
        if index == 0 {
            add_waiter(queue.clone(), l.clone(), 0);
        }
    })
    .unwrap();
    let mut log = log.lock().unwrap().clone();
    log.sort();
    assert_eq!(log, [(0, 0, 0), (1, 1, 1), (2, 2, 0), (3, 3, 1)]);
}

/// `Queue::pop`'s rule: with an item queued, the popper runs before `pop`
/// returns; a popper that pops again from its callback runs after it.
#[test]
fn group_queue_pop_with_an_item_queued_runs_at_once() {
    let queue = em::GroupQueue::<u32>::new();
    let log: Arc<Mutex<Vec<String>>> = Arc::default();
    let l = log.clone();
    run_each_with_watchdog(two_reactors(), move |index| {
        if index != 0 {
            return;
        }
        queue.push_all([1, 2]);
        let (q, l1, l2) = (queue.clone(), l.clone(), l.clone());
        queue
            .pop(move |item| {
                l1.lock().unwrap().push(format!("first {item}"));
                q.pop(move |item| l2.lock().unwrap().push(format!("second {item}")))
                    .unwrap();
                l1.lock().unwrap().push("first returns".into());
            })
            .unwrap();
        l.lock().unwrap().push("pop returned".into());
        em::stop();
    })
    .unwrap();
    assert_eq!(
        *log.lock().unwrap(),
        ["first 1", "first returns", "second 2", "pop returned"]
    );
}
