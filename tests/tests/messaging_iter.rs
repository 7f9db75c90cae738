//! `em::EmIterator`: EventMachine's rules I1 and I2.

mod support;

use std::cell::{Cell, RefCell};
use std::rc::Rc;
use std::time::Duration;

use support::*;

/// I1: `map` gives results in input order whatever the completion order;
/// `after` runs once, after the last item. Completion order is reversed
/// with paused-clock timers.
#[test]
fn map_keeps_input_order_and_after_runs_once() {
    let out = Rc::new(RefCell::new(Vec::new()));
    let afters = Rc::new(Cell::new(0));
    let (o, a) = (out.clone(), afters.clone());
    run_paused(move || -> em::Result<()> {
        em::EmIterator::new(1..=6u64, 3)?.map(
            |n, done| {
                // Later items finish first.
                em::spawn(async move {
                    em::sleep(Duration::from_millis(100 - n * 10)).await;
                    done.done(n * n);
                })
                .unwrap();
            },
            move |squares| {
                *o.borrow_mut() = squares;
                a.set(a.get() + 1);
                em::next_tick(em::stop);
            },
        );
        Ok(())
    })
    .unwrap();
    assert_eq!(*out.borrow(), [1, 4, 9, 16, 25, 36]);
    assert_eq!(afters.get(), 1);
}

/// I2: never more than `concurrency` in flight; `set_concurrency` takes
/// effect on a live iteration.
#[test]
fn at_most_concurrency_in_flight_and_it_changes_while_running() {
    let max_seen = Rc::new(RefCell::new(Vec::new()));
    let m = max_seen.clone();
    run_paused(move || -> em::Result<()> {
        let in_flight = Rc::new(Cell::new(0usize));
        let it = Rc::new(RefCell::new(None::<em::Iteration>));
        let (f, it2, m2) = (in_flight.clone(), it.clone(), m.clone());
        let iteration = em::EmIterator::new(0..20u32, 2)?.each(
            move |i, done| {
                f.set(f.get() + 1);
                m2.borrow_mut().push((i, f.get()));
                if i == 5 {
                    let it = it2.borrow().clone().unwrap();
                    it.set_concurrency(5).unwrap();
                    assert!(it.set_concurrency(0).unwrap_err().is_invalid_argument());
                }
                let f = f.clone();
                em::spawn(async move {
                    em::sleep(Duration::from_millis(10)).await;
                    f.set(f.get() - 1);
                    done.next();
                })
                .unwrap();
            },
            em::stop,
        );
        *it.borrow_mut() = Some(iteration);
        Ok(())
    })
    .unwrap();
    let seen = max_seen.borrow();
    assert_eq!(seen.len(), 20);
    let before: usize = seen
        .iter()
        .filter(|(i, _)| *i <= 5)
        .map(|s| s.1)
        .max()
        .unwrap();
    let after: usize = seen.iter().map(|s| s.1).max().unwrap();
    assert_eq!(before, 2, "at most 2 in flight before the change");
    assert_eq!(after, 5, "up to 5 in flight after it");
}

/// I2: concurrency 0 is a typed error, not a panic.
#[test]
fn concurrency_zero_is_a_typed_error() {
    let err = em::EmIterator::new(0..3, 0).unwrap_err();
    assert!(err.is_invalid_argument(), "{err}");
}

/// `inject` folds in order at concurrency 1; `each` with `next` called
/// synchronously finishes without deep recursion; empty input still runs
/// `after` once.
#[test]
fn inject_each_and_empty_input() {
    let log = Log::default();
    let l = log.clone();
    run_with_watchdog(move || -> em::Result<()> {
        let l1 = l.clone();
        em::EmIterator::new(1..=4u32, 1)?.inject(
            0u32,
            |memo, n, done| done.done(memo + n),
            move |sum| l1.push(format!("sum {sum}")),
        );
        let count = Rc::new(Cell::new(0));
        let (c, l2) = (count.clone(), l.clone());
        em::EmIterator::new(0..100_000u32, 4)?.each(
            move |_, done| {
                c.set(c.get() + 1);
                done.next();
            },
            move || l2.push(format!("each {}", count.get())),
        );
        let l3 = l.clone();
        em::EmIterator::new(Vec::<u32>::new(), 1)?.map(
            |n, done| done.done(n),
            move |v: Vec<u32>| {
                l3.push(format!("empty {}", v.len()));
            },
        );
        let l4 = l.clone();
        em::tick_loop(move || {
            if l4.events().len() == 3 {
                em::stop();
                std::ops::ControlFlow::Break(())
            } else {
                std::ops::ControlFlow::Continue(())
            }
        });
        Ok(())
    })
    .unwrap();
    let mut events = log.events();
    events.sort();
    assert_eq!(events, ["each 100000", "empty 0", "sum 10"]);
}

/// A foreach that panics (dropping its token) is contained: the iteration
/// goes on and `map` leaves that item out.
#[test]
fn a_panicking_foreach_drops_its_item_and_the_iteration_goes_on() {
    let out = Rc::new(RefCell::new(Vec::new()));
    let o = out.clone();
    run_with_watchdog(move || -> em::Result<()> {
        em::EmIterator::new(1..=4u32, 2)?.map(
            |n, done| {
                if n == 2 {
                    panic!("foreach boom");
                }
                done.done(n * 10);
            },
            move |v| {
                *o.borrow_mut() = v;
                em::stop();
            },
        );
        Ok(())
    })
    .unwrap();
    assert_eq!(*out.borrow(), [10, 30, 40]);
}
