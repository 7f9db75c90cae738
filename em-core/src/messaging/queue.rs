//! `Queue`: EventMachine's reactor FIFO, where each item goes to exactly one
//! popper.

use std::cell::{Cell, RefCell};
use std::collections::VecDeque;
use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::rc::Rc;
use std::task::{Context, Poll, Waker};

use crate::error::Result;
use crate::messaging::cross_thread::{Registration, RemoteRef};
use crate::reactor::panic;

/// What a future popper waits in: the item it was handed, and its waker.
struct Slot<T> {
    item: RefCell<Option<T>>,
    waker: RefCell<Option<Waker>>,
    /// Set once the slot was handed an item or abandoned, so that it is
    /// skipped in the waiter list.
    done: Cell<bool>,
}

enum Waiter<T> {
    Callback(Box<dyn FnOnce(T)>),
    Future(Rc<Slot<T>>),
}

/// A popper callback with the item it was handed, waiting to run.
type Ready<T> = (Box<dyn FnOnce(T)>, T);

struct Inner<T> {
    items: RefCell<VecDeque<T>>,
    waiters: RefCell<VecDeque<Waiter<T>>>,
    /// A popper callback is running: callbacks handed an item meanwhile
    /// (a pop with an item there, a push to a waiting popper) wait in
    /// `ready` and run after it, in order, so that a popper that pops again
    /// drains the queue iteratively instead of recursing.
    delivering: Cell<bool>,
    ready: RefCell<VecDeque<Ready<T>>>,
    /// How senders reach this queue.
    registration: Registration,
}

/// A FIFO of items for poppers (EventMachine's `EM::Queue`): each item
/// [`push`](Queue::push)ed goes to exactly one popper, in the order the
/// poppers came. A [`pop`](Queue::pop) callback runs at once when an item is
/// there; otherwise it waits, FIFO, for the next push (Q1). Procedural code
/// awaits [`pop_async`](Queue::pop_async) instead.
///
/// A `Queue` is a cheap `Clone` handle (clones share the items) and is
/// `!Send`: it lives on the reactor thread, where every callback runs. Other
/// threads push through a [`QueueSender`] from [`sender`](Queue::sender).
/// A popper callback may push and pop again: nothing is borrowed while it
/// runs. A callback handed an item while another popper callback of the
/// same queue runs (a pop from inside a pop callback with an item there, or
/// a push to a waiting popper) runs right after that callback returns,
/// still before the outermost `pop` or `push` returns: iteratively, so a
/// worker that pops again from its callback drains any number of items
/// without growing the stack. A panic in a popper callback is contained and
/// logged; its item is consumed.
///
/// ```
/// # use em_core as em;
/// use std::{cell::RefCell, rc::Rc};
/// let got = Rc::new(RefCell::new(Vec::new()));
/// let g = got.clone();
/// em::run(move || {
///     let q = em::Queue::new();
///     q.push("a");
///     let g1 = g.clone();
///     q.pop(move |item| g1.borrow_mut().push(item)); // runs at once: "a" is there
///     let g2 = g.clone();
///     q.pop(move |item| g2.borrow_mut().push(item)); // waits
///     assert_eq!(q.num_waiting(), 1);
///     q.push("b"); // goes to the waiting popper
///     em::stop();
/// })?;
/// assert_eq!(*got.borrow(), ["a", "b"]);
/// # Ok::<(), em_core::Error>(())
/// ```
pub struct Queue<T> {
    inner: Rc<Inner<T>>,
}

impl<T> Clone for Queue<T> {
    fn clone(&self) -> Self {
        Queue {
            inner: self.inner.clone(),
        }
    }
}

impl<T: 'static> Default for Queue<T> {
    fn default() -> Self {
        Self::new()
    }
}

impl<T: 'static> Queue<T> {
    /// An empty queue. Any thread; the queue then belongs to it.
    pub fn new() -> Self {
        Queue {
            inner: Rc::new(Inner {
                items: RefCell::new(VecDeque::new()),
                waiters: RefCell::new(VecDeque::new()),
                delivering: Cell::new(false),
                ready: RefCell::new(VecDeque::new()),
                registration: Registration::default(),
            }),
        }
    }

    /// Adds `item` at the back. If a popper waits, the first one gets it at
    /// once, before `push` returns (its callback runs here, or its future is
    /// woken); otherwise the item waits for a pop.
    pub fn push(&self, item: T) {
        if let Some(item) = self.hand_to_waiter(item) {
            self.inner.items.borrow_mut().push_back(item);
        }
    }

    /// Pushes every item of `items` in order (EventMachine's `push(*items)`).
    pub fn push_all(&self, items: impl IntoIterator<Item = T>) {
        for item in items {
            self.push(item);
        }
    }

    /// Gives `item` to the first waiting popper; returns it if none waits.
    fn hand_to_waiter(&self, item: T) -> Option<T> {
        loop {
            let waiter = self.inner.waiters.borrow_mut().pop_front();
            match waiter {
                None => return Some(item),
                Some(Waiter::Callback(f)) => {
                    self.run_popper(f, item);
                    return None;
                }
                Some(Waiter::Future(slot)) => {
                    if slot.done.get() {
                        continue; // abandoned
                    }
                    slot.done.set(true);
                    *slot.item.borrow_mut() = Some(item);
                    if let Some(w) = slot.waker.borrow_mut().take() {
                        w.wake();
                    }
                    return None;
                }
            }
        }
    }

    /// Takes the front item for `f`: if there is one, `f` runs at once, on
    /// this thread, before `pop` returns; otherwise `f` waits, after the
    /// poppers already waiting, and runs inside the `push` that feeds it.
    pub fn pop(&self, f: impl FnOnce(T) + 'static) {
        let item = self.inner.items.borrow_mut().pop_front();
        match item {
            Some(item) => self.run_popper(Box::new(f), item),
            None => self
                .inner
                .waiters
                .borrow_mut()
                .push_back(Waiter::Callback(Box::new(f))),
        }
    }

    /// Runs popper `f` with `item` now, or, if a popper callback of this
    /// queue is running, right after it (and the ones handed an item
    /// before). Never recursive: the outermost call runs them all in a
    /// loop.
    fn run_popper(&self, f: Box<dyn FnOnce(T)>, item: T) {
        let inner = &*self.inner;
        if inner.delivering.replace(true) {
            inner.ready.borrow_mut().push_back((f, item));
            return;
        }
        // Reset however this ends (a panic is contained below, but be safe).
        let _delivering = Delivering(&inner.delivering);
        let _ = panic::catch("queue pop", None, || f(item));
        loop {
            let next = inner.ready.borrow_mut().pop_front();
            let Some((f, item)) = next else { break };
            let _ = panic::catch("queue pop", None, || f(item));
        }
    }

    /// The front item, without waiting: `None` when the queue is empty.
    pub fn try_pop(&self) -> Option<T> {
        self.inner.items.borrow_mut().pop_front()
    }

    /// A future of the front item, for procedural code under
    /// [`spawn`](crate::spawn) (em-synchrony's `pop`). It takes its place
    /// among the waiting poppers when first polled, if no item is there.
    /// Dropping it after it was handed an item but before it returned it
    /// puts the item back at the front of the queue (to the next popper), so
    /// nothing is lost. Poll it on the reactor thread.
    ///
    /// ```
    /// # use em_core as em;
    /// em::run(|| -> em::Result<()> {
    ///     let q = em::Queue::new();
    ///     let q2 = q.clone();
    ///     em::spawn(async move {
    ///         assert_eq!(q2.pop_async().await, 1);
    ///         assert_eq!(q2.pop_async().await, 2);
    ///         em::stop();
    ///     })?;
    ///     q.push(1);
    ///     q.push(2);
    ///     Ok(())
    /// })?;
    /// # Ok::<(), em_core::Error>(())
    /// ```
    pub fn pop_async(&self) -> Pop<T> {
        Pop {
            queue: self.clone(),
            slot: None,
        }
    }

    /// How many items wait for a popper (a snapshot).
    pub fn size(&self) -> usize {
        self.inner.items.borrow().len()
    }

    /// Whether no item waits for a popper.
    pub fn is_empty(&self) -> bool {
        self.inner.items.borrow().is_empty()
    }

    /// How many poppers wait for an item.
    pub fn num_waiting(&self) -> usize {
        self.inner
            .waiters
            .borrow()
            .iter()
            .filter(|w| match w {
                Waiter::Callback(_) => true,
                Waiter::Future(slot) => !slot.done.get(),
            })
            .count()
    }

    /// A `Send + Sync + Clone` sender for other threads: its
    /// [`push`](QueueSender::push) adds the item on this reactor's thread at
    /// a later tick (EventMachine Q2).
    ///
    /// A sender does not keep the value alive (it names it by id): keep a
    /// handle on the reactor thread for as long as senders should reach it.
    /// Call it on the reactor thread; errors with `is_no_reactor()` elsewhere.
    pub fn sender(&self) -> Result<QueueSender<T>>
    where
        T: Send,
    {
        let remote = RemoteRef::new(
            "Queue::sender",
            "queue",
            &self.inner,
            &self.inner.registration,
        )?;
        Ok(QueueSender { remote })
    }
}

impl<T> fmt::Debug for Queue<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Queue")
            .field("size", &self.inner.items.borrow().len())
            .field("waiters", &self.inner.waiters.borrow().len())
            .finish()
    }
}

/// Clears a queue's `delivering` flag when dropped.
struct Delivering<'a>(&'a Cell<bool>);

impl Drop for Delivering<'_> {
    fn drop(&mut self) {
        self.0.set(false);
    }
}

/// The future of [`Queue::pop_async`]: the front item.
pub struct Pop<T: 'static> {
    queue: Queue<T>,
    slot: Option<Rc<Slot<T>>>,
}

impl<T: 'static> Future for Pop<T> {
    type Output = T;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<T> {
        if let Some(slot) = &self.slot {
            if let Some(item) = slot.item.borrow_mut().take() {
                return Poll::Ready(item);
            }
            *slot.waker.borrow_mut() = Some(cx.waker().clone());
            return Poll::Pending;
        }
        if let Some(item) = self.queue.try_pop() {
            return Poll::Ready(item);
        }
        let slot = Rc::new(Slot {
            item: RefCell::new(None),
            waker: RefCell::new(Some(cx.waker().clone())),
            done: Cell::new(false),
        });
        self.queue
            .inner
            .waiters
            .borrow_mut()
            .push_back(Waiter::Future(slot.clone()));
        self.slot = Some(slot);
        Poll::Pending
    }
}

impl<T: 'static> Drop for Pop<T> {
    fn drop(&mut self) {
        let Some(slot) = self.slot.take() else {
            return;
        };
        slot.done.set(true);
        let item = slot.item.borrow_mut().take();
        if let Some(item) = item {
            // Handed an item but never returned it: the next popper gets it,
            // or it goes back to the front.
            if let Some(item) = self.queue.hand_to_waiter(item) {
                self.queue.inner.items.borrow_mut().push_front(item);
            }
        }
    }
}

impl<T> fmt::Debug for Pop<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Pop")
            .field("waiting", &self.slot.is_some())
            .finish()
    }
}

/// The `Send` side of a [`Queue`], from [`Queue::sender`]: pushes from any
/// thread, applied on the reactor thread at a later tick (through
/// [`Handle::schedule`](crate::Handle::schedule)), in the order each thread pushed.
pub struct QueueSender<T> {
    remote: RemoteRef<Inner<T>>,
}

impl<T> Clone for QueueSender<T> {
    fn clone(&self) -> Self {
        QueueSender {
            remote: self.remote.clone(),
        }
    }
}

impl<T: Send + 'static> QueueSender<T> {
    /// Queues `item` to be pushed on the reactor thread, at a later tick.
    /// Any thread.
    ///
    /// Errors with `is_receiver_gone()` once the queue has been dropped
    /// (the item is not sent), `is_stopping()` once the reactor begins to
    /// stop and `is_not_running()` once it has stopped. An item that
    /// reaches a queue dropped after the push returned is dropped.
    pub fn push(&self, item: T) -> Result<()> {
        self.remote
            .send("QueueSender::push", move |inner| Queue { inner }.push(item))
    }
}

impl<T> fmt::Debug for QueueSender<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("QueueSender")
            .field("remote", &self.remote)
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn items_go_to_waiting_poppers_in_order_one_each() {
        let q = Queue::new();
        let got = Rc::new(RefCell::new(Vec::new()));
        for n in 0..3 {
            let g = got.clone();
            q.pop(move |item: u32| g.borrow_mut().push((n, item)));
        }
        assert_eq!(q.num_waiting(), 3);
        q.push_all([10, 11, 12, 13]);
        assert_eq!(*got.borrow(), [(0, 10), (1, 11), (2, 12)]);
        assert_eq!(q.size(), 1);
        assert_eq!(q.num_waiting(), 0);
    }
}
