//! `EmIterator`: asynchronous `each`, `map` and `inject` over a list, with at
//! most `concurrency` items in flight (EventMachine's `EM::Iterator`).

use std::cell::{Cell, RefCell};
use std::fmt;
use std::rc::Rc;

use crate::error::{Error, Result};
use crate::reactor::panic;

/// Asynchronous iteration over the items of any `IntoIterator` (a list, a
/// range, a lazy or endless iterator), with at most `concurrency` items in
/// flight (EventMachine's `EM::Iterator`, rules I1 and I2).
///
/// The per-item callback receives the item and a [`Done`] token; the item
/// is in flight until the token is used ([`Done::next`] for `each`,
/// [`Done::done`] with a value for `map` and `inject`), which may happen
/// later, from any reactor callback. Items start on later ticks, never
/// inside the call that started the iteration or inside `done`, so the
/// stack stays flat. The `after` callback runs exactly once, on a later
/// tick than the last item's completion.
///
/// `each`, `map` and `inject` take the iterator by value, so an iteration
/// cannot be started twice, and [`Done`] is used by value, so an item cannot
/// complete twice: EventMachine's two `RuntimeError`s are compile errors
/// here. A token dropped unused (for instance because its callback panicked;
/// the panic is contained and logged) completes its item without a value:
/// `each` goes on, `inject` keeps the memo, and `map` leaves that item out
/// of the results it passes to `after` (with a warning).
///
/// Everything runs on the reactor thread. For procedural code, `futures`
/// stream combinators do the same job under [`spawn`](crate::spawn):
/// `stream::iter(items).map(f).buffered(n)` is an order-keeping `map`, and
/// `for_each_concurrent(n, f)` an `each`.
///
/// ```
/// # use em_core as em;
/// use std::{cell::RefCell, rc::Rc};
/// let out = Rc::new(RefCell::new(Vec::new()));
/// let o = out.clone();
/// em::run(move || -> em::Result<()> {
///     em::EmIterator::new(1..=6, 2)?.map(
///         |n: u32, done| done.done(n * n),
///         move |squares| {
///             *o.borrow_mut() = squares;
///             em::stop();
///         },
///     );
///     Ok(())
/// })?;
/// assert_eq!(*out.borrow(), [1, 4, 9, 16, 25, 36]);
/// # Ok::<(), em_core::Error>(())
/// ```
pub struct EmIterator<T> {
    items: Box<dyn Iterator<Item = T>>,
    concurrency: usize,
}

impl<T: 'static> EmIterator<T> {
    /// An iteration over `items` with at most `concurrency` in flight.
    /// Any thread; nothing runs until `each`, `map` or `inject`.
    ///
    /// Errors with `is_invalid_argument()` when `concurrency` is 0.
    pub fn new<I>(items: I, concurrency: usize) -> Result<Self>
    where
        I: IntoIterator<Item = T>,
        I::IntoIter: 'static,
    {
        check(concurrency)?;
        Ok(EmIterator {
            items: Box::new(items.into_iter()),
            concurrency,
        })
    }

    /// Calls `foreach(item, done)` for every item, at most `concurrency` at
    /// a time; each item is finished with [`Done::next`]. Then `after` runs,
    /// once. Returns the [`Iteration`] handle, to change the concurrency.
    pub fn each<F, A>(self, mut foreach: F, after: A) -> Iteration
    where
        F: FnMut(T, Done<()>) + 'static,
        A: FnOnce() + 'static,
    {
        self.run(
            move |item, done: Done<()>| foreach(item, done),
            |_, ()| {},
            move |_| after(),
        )
    }

    /// Calls `foreach(item, done)` for every item, at most `concurrency` at
    /// a time; each item gives its result with [`Done::done`]. Then `after`
    /// runs, once, with the results in input order, whatever the order of
    /// completion (EventMachine I1).
    pub fn map<R, F, A>(self, mut foreach: F, after: A) -> Iteration
    where
        R: 'static,
        F: FnMut(T, Done<R>) + 'static,
        A: FnOnce(Vec<R>) + 'static,
    {
        let results: Rc<RefCell<Vec<Option<R>>>> = Rc::default();
        let r = results.clone();
        self.run(
            move |item, done: Done<R>| foreach(item, done),
            move |index, value| {
                let mut r = r.borrow_mut();
                if r.len() <= index {
                    r.resize_with(index + 1, || None);
                }
                r[index] = Some(value);
            },
            move |started| {
                let mut results = results.take();
                results.resize_with(started, || None);
                let missing = results.iter().filter(|r| r.is_none()).count();
                if missing > 0 {
                    tracing::warn!(missing, "EmIterator::map: items finished without a value");
                }
                after(results.into_iter().flatten().collect());
            },
        )
    }

    /// Folds the items into `memo`: `foreach(memo, item, done)` gets the
    /// current memo (a clone) and gives the new one with [`Done::done`], at
    /// most `concurrency` items at a time (with more than one, items started
    /// together see the same memo, as in EventMachine). Then `after` runs,
    /// once, with the final memo.
    pub fn inject<M, F, A>(self, memo: M, mut foreach: F, after: A) -> Iteration
    where
        M: Clone + 'static,
        F: FnMut(M, T, Done<M>) + 'static,
        A: FnOnce(M) + 'static,
    {
        let memo = Rc::new(RefCell::new(Some(memo)));
        let (m1, m2, m3) = (memo.clone(), memo.clone(), memo);
        self.run(
            move |item, done: Done<M>| {
                let current = m1.borrow().clone().expect("memo present until after");
                foreach(current, item, done)
            },
            move |_, value| *m2.borrow_mut() = Some(value),
            move |_| after(m3.take().expect("memo present until after")),
        )
    }

    fn run<R: 'static>(
        self,
        foreach: impl FnMut(T, Done<R>) + 'static,
        on_value: impl FnMut(usize, R) + 'static,
        after: impl FnOnce(usize) + 'static,
    ) -> Iteration {
        let state = Rc::new(State {
            concurrency: Cell::new(self.concurrency),
            in_flight: Cell::new(0),
            started: Cell::new(0),
            exhausted: Cell::new(false),
            finished: Cell::new(false),
            pump_queued: Cell::new(false),
        });
        let engine = Rc::new(Engine {
            state: state.clone(),
            items: RefCell::new(self.items),
            foreach: RefCell::new(Box::new(foreach)),
            on_value: RefCell::new(Box::new(on_value)),
            after: RefCell::new(Some(Box::new(after))),
        });
        let iteration = Iteration {
            state,
            pump: {
                let engine = engine.clone();
                Rc::new(move || Engine::queue_pump(&engine))
            },
        };
        Engine::queue_pump(&engine);
        iteration
    }
}

fn check(concurrency: usize) -> Result<()> {
    if concurrency == 0 {
        Err(Error::invalid_argument(
            "EmIterator",
            "concurrency must be at least 1",
        ))
    } else {
        Ok(())
    }
}

impl<T> fmt::Debug for EmIterator<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("EmIterator")
            .field("concurrency", &self.concurrency)
            .finish_non_exhaustive()
    }
}

struct State {
    concurrency: Cell<usize>,
    in_flight: Cell<usize>,
    started: Cell<usize>,
    exhausted: Cell<bool>,
    finished: Cell<bool>,
    pump_queued: Cell<bool>,
}

type Foreach<T, R> = Box<dyn FnMut(T, Done<R>)>;
/// The `after` of an iteration, given how many items started.
type After = Box<dyn FnOnce(usize)>;

struct Engine<T, R: 'static> {
    state: Rc<State>,
    items: RefCell<Box<dyn Iterator<Item = T>>>,
    foreach: RefCell<Foreach<T, R>>,
    on_value: RefCell<Box<dyn FnMut(usize, R)>>,
    after: RefCell<Option<After>>,
}

impl<T: 'static, R: 'static> Engine<T, R> {
    fn queue_pump(this: &Rc<Self>) {
        if this.state.finished.get() || this.state.pump_queued.replace(true) {
            return;
        }
        let this = this.clone();
        crate::next_tick(move || {
            this.state.pump_queued.set(false);
            Engine::pump(&this);
        });
    }

    /// Starts items while fewer than `concurrency` are in flight; runs
    /// `after` once the items ran out and none is in flight.
    fn pump(this: &Rc<Self>) {
        let state = &this.state;
        while !state.exhausted.get() && state.in_flight.get() < state.concurrency.get() {
            let next = this.items.borrow_mut().next();
            let Some(item) = next else {
                state.exhausted.set(true);
                break;
            };
            let index = state.started.get();
            state.started.set(index + 1);
            state.in_flight.set(state.in_flight.get() + 1);
            let done = Done {
                engine: Some(this.clone() as Rc<dyn Complete<R>>),
                index,
            };
            let Ok(mut foreach) = this.foreach.try_borrow_mut() else {
                unreachable!("pump never runs inside foreach");
            };
            let _ = panic::catch("EmIterator foreach", None, || foreach(item, done));
        }
        if state.exhausted.get() && state.in_flight.get() == 0 && !state.finished.replace(true) {
            // Break cycles through user closures holding the `Iteration`.
            if let Ok(mut foreach) = this.foreach.try_borrow_mut() {
                *foreach = Box::new(|_, _| {});
            }
            let after = this.after.borrow_mut().take();
            if let Some(after) = after {
                let started = state.started.get();
                let _ = panic::catch("EmIterator after", None, || after(started));
            }
        }
    }
}

trait Complete<R> {
    fn complete(self: Rc<Self>, index: usize, value: Option<R>);
}

impl<T: 'static, R: 'static> Complete<R> for Engine<T, R> {
    fn complete(self: Rc<Self>, index: usize, value: Option<R>) {
        if let Some(value) = value {
            // on_value only stores; it never re-enters.
            (self.on_value.borrow_mut())(index, value);
        }
        self.state.in_flight.set(self.state.in_flight.get() - 1);
        Engine::queue_pump(&self);
    }
}

/// The token of one item in flight in an [`EmIterator`]: use it once, by
/// value, to finish the item ([`next`](Done::next) for `each`,
/// [`done`](Done::done) with a value for `map` and `inject`). Reactor
/// thread only. Dropped unused, it finishes the item without a value.
pub struct Done<R: 'static> {
    engine: Option<Rc<dyn Complete<R>>>,
    index: usize,
}

impl<R: 'static> Done<R> {
    /// Finishes the item with `value` (EventMachine's `iter.return(value)`):
    /// its `map` result or the new `inject` memo. The next item starts on a
    /// later tick.
    pub fn done(mut self, value: R) {
        if let Some(engine) = self.engine.take() {
            engine.complete(self.index, Some(value));
        }
    }

    /// The position of the item in the input, from 0.
    pub fn index(&self) -> usize {
        self.index
    }
}

impl Done<()> {
    /// Finishes the item of an `each` (EventMachine's `iter.next`).
    pub fn next(self) {
        self.done(());
    }
}

impl<R: 'static> Drop for Done<R> {
    fn drop(&mut self) {
        if let Some(engine) = self.engine.take() {
            engine.complete(self.index, None);
        }
    }
}

impl<R> fmt::Debug for Done<R> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Done").field("index", &self.index).finish()
    }
}

/// A running [`EmIterator`] iteration, returned by `each`, `map` and
/// `inject`: change its concurrency while it runs, or watch it. A cheap
/// `Clone` handle, reactor thread only.
#[derive(Clone)]
pub struct Iteration {
    state: Rc<State>,
    pump: Rc<dyn Fn()>,
}

impl Iteration {
    /// Sets how many items may be in flight from now on (EventMachine's
    /// `concurrency=`): a higher value starts more items on the next tick; a
    /// lower one lets the items in flight finish.
    ///
    /// Errors with `is_invalid_argument()` when `concurrency` is 0.
    pub fn set_concurrency(&self, concurrency: usize) -> Result<()> {
        check(concurrency)?;
        self.state.concurrency.set(concurrency);
        (self.pump)();
        Ok(())
    }

    /// The current concurrency.
    pub fn concurrency(&self) -> usize {
        self.state.concurrency.get()
    }

    /// How many items are in flight.
    pub fn in_flight(&self) -> usize {
        self.state.in_flight.get()
    }

    /// Whether `after` has run.
    pub fn is_finished(&self) -> bool {
        self.state.finished.get()
    }
}

impl fmt::Debug for Iteration {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Iteration")
            .field("concurrency", &self.state.concurrency.get())
            .field("in_flight", &self.state.in_flight.get())
            .field("finished", &self.state.finished.get())
            .finish()
    }
}
