//! `GroupQueue`: a FIFO across the reactors of a group
//! ([`Builder::run_each`](crate::Builder::run_each)), where each item goes
//! to exactly one popper, on whichever reactor it waits: work distribution.
//!
//! The items and the list of waiting poppers are shared, behind a mutex;
//! a waiting popper's callback (`!Send`) stays in thread-local state on its
//! reactor, named by an id, and the shared list holds that id with the
//! reactor's [`Handle`]. An item for a waiting popper travels in a
//! [`Handoff`], scheduled on the popper's reactor; a handoff dropped
//! unrun (the reactor stopped) gives its item back to the queue.

use std::any::Any;
use std::cell::RefCell;
use std::collections::{HashMap, VecDeque};
use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use crate::error::Result;
use crate::reactor::core::Core;
use crate::reactor::panic;
use crate::reactor::remote::Handle;

/// Ids of group queues and of waiting poppers.
static NEXT_ID: AtomicU64 = AtomicU64::new(1);

type Popper<T> = Box<dyn FnOnce(T)>;

/// A popper callback with the item it was handed, waiting to run.
type Ready = Box<dyn FnOnce()>;

thread_local! {
    /// The callbacks of the poppers waiting on this reactor, by popper id:
    /// each a `Box<Popper<T>>`.
    static WAITING: RefCell<HashMap<u64, Box<dyn Any>>> = RefCell::new(HashMap::new());
    /// Per group queue (by id) whose popper callback is running on this
    /// thread: the poppers handed an item meanwhile, to run after it.
    static READY: RefCell<HashMap<u64, VecDeque<Ready>>> = RefCell::new(HashMap::new());
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // No user code runs under the lock, so a poisoned lock holds a
    // consistent state.
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

/// A popper waiting on some reactor.
struct Waiter {
    handle: Handle,
    id: u64,
}

struct State<T> {
    items: VecDeque<T>,
    /// Oldest first. Never non-empty while `items` is.
    waiters: VecDeque<Waiter>,
}

/// What the clones of a [`GroupQueue`] share.
struct Shared<T> {
    id: u64,
    state: Mutex<State<T>>,
}

impl<T: Send + 'static> Shared<T> {
    /// Gives `item` to the oldest waiting popper, through its reactor's
    /// handle, or keeps it (at the back, or at the `front` for an item
    /// given back).
    fn give(self: &Arc<Self>, item: T, front: bool) {
        let waiter = {
            let mut state = lock(&self.state);
            loop {
                match state.waiters.pop_front() {
                    // Its reactor is gone: so is it.
                    Some(w) if !w.handle.is_running() => continue,
                    Some(w) => break w,
                    None if front => return state.items.push_front(item),
                    None => return state.items.push_back(item),
                }
            }
        };
        let handoff = Handoff {
            item: Some(item),
            queue: self.clone(),
        };
        let popper = waiter.id;
        // On an error (the reactor began to stop since) the handoff is
        // dropped unrun, and gives the item back: to the next waiter, or
        // to the front.
        let _ = waiter.handle.schedule(move || handoff.deliver(popper));
    }
}

impl<T> Drop for Shared<T> {
    fn drop(&mut self) {
        // The last handle is gone: the poppers still waiting will never be
        // served, so their reactors drop their callbacks.
        let state = self.state.get_mut().unwrap_or_else(PoisonError::into_inner);
        for waiter in state.waiters.drain(..) {
            let id = waiter.id;
            let _ = waiter.handle.schedule(move || {
                let popper = WAITING.with(|w| w.borrow_mut().remove(&id));
                drop(popper);
            });
        }
    }
}

/// An item on its way to a waiting popper, on the popper's reactor.
/// Dropped with its item still inside (its reactor stopped before running
/// it), it gives the item back to the queue.
struct Handoff<T: Send + 'static> {
    item: Option<T>,
    queue: Arc<Shared<T>>,
}

impl<T: Send + 'static> Handoff<T> {
    /// On the popper's reactor: runs popper `id` with the item.
    fn deliver(mut self, id: u64) {
        let popper = WAITING.with(|w| w.borrow_mut().remove(&id));
        let Some(popper) = popper.and_then(|p| p.downcast::<Popper<T>>().ok()) else {
            return; // gone: the item goes back on drop
        };
        if let Some(item) = self.item.take() {
            run_popper(self.queue.id, *popper, item);
        }
    }
}

impl<T: Send + 'static> Drop for Handoff<T> {
    fn drop(&mut self) {
        if let Some(item) = self.item.take() {
            self.queue.give(item, true);
        }
    }
}

/// Runs popper `f` with `item` now, or, if a popper callback of group queue
/// `queue` is running on this thread, right after it (as [`Queue`](crate::Queue)
/// does): never recursive, so a worker that pops again from its callback
/// drains any number of items without growing the stack.
fn run_popper<T: 'static>(queue: u64, f: Popper<T>, item: T) {
    let running = READY.with(|r| {
        let mut ready = r.borrow_mut();
        match ready.get_mut(&queue) {
            Some(list) => {
                list.push_back(Box::new(move || f(item)));
                None
            }
            None => {
                ready.insert(queue, VecDeque::new());
                Some((f, item))
            }
        }
    });
    let Some((f, item)) = running else {
        return;
    };
    // Clears this queue's entry however this ends.
    let _running = Running(queue);
    let _ = panic::catch("group queue pop", None, || f(item));
    loop {
        let next = READY.with(|r| r.borrow_mut().get_mut(&queue).and_then(VecDeque::pop_front));
        let Some(next) = next else { break };
        let _ = panic::catch("group queue pop", None, next);
    }
}

/// Removes a group queue's entry from `READY` when dropped.
struct Running(u64);

impl Drop for Running {
    fn drop(&mut self) {
        let rest = READY.with(|r| r.borrow_mut().remove(&self.0));
        drop(rest);
    }
}

/// A FIFO for the reactors of a group
/// ([`Builder::run_each`](crate::Builder::run_each)): each item
/// [`push`](GroupQueue::push)ed, from any thread, goes to exactly one
/// popper, whichever reactor it [`pop`](GroupQueue::pop)s on: work
/// distribution across reactors.
///
/// A `GroupQueue` is a cheap `Clone + Send + Sync` handle (an `Arc`
/// inside): make it anywhere ([`new`](GroupQueue::new) needs no reactor)
/// and move clones into [`run_each`](crate::Builder::run_each)'s block or
/// other threads. The reactor-owned [`Queue`](crate::Queue) stays `!Send`;
/// this is the explicit cross-reactor one.
///
/// # Popping
///
/// The rule of [`Queue::pop`](crate::Queue::pop): when an item is queued,
/// the popper callback runs at once, on the calling reactor's thread,
/// before `pop` returns (after the running popper callback of this queue,
/// if `pop` is called from one). Otherwise it waits, after the poppers
/// already waiting on any reactor, and the next item pushed goes to the
/// oldest waiter. That item is delivered on the waiter's reactor, at a
/// later tick, through its [`Handle`] (em's one cross-thread mechanism),
/// even when the push comes from that same reactor. A panic in a popper
/// callback is contained and logged; its item is consumed.
///
/// Costs: a lock per push and per pop; a push to a waiting popper adds one
/// [`Handle::schedule`] (one wake of that reactor). A reactor that stops
/// leaves the queue: its waiting poppers are skipped, and an item already
/// on its way to one of them comes back to the front of the queue.
///
/// ```
/// # use em_core as em;
/// use std::sync::atomic::{AtomicUsize, Ordering};
/// use std::sync::Arc;
///
/// /// Takes jobs, one at a time, until all 6 are done.
/// fn work(jobs: em::GroupQueue<u32>, done: Arc<AtomicUsize>) {
///     let next = jobs.clone();
///     jobs.pop(move |_job| {
///         if done.fetch_add(1, Ordering::SeqCst) + 1 == 6 {
///             em::stop(); // stops both reactors
///         } else {
///             work(next, done);
///         }
///     })
///     .unwrap();
/// }
///
/// let jobs = em::GroupQueue::new(); // any thread
/// let done = Arc::new(AtomicUsize::new(0));
/// em::Reactor::builder().reactors(2).run_each(move |index| {
///     work(jobs.clone(), done.clone());
///     if index == 0 {
///         for job in 0..6 {
///             jobs.push(job); // each job to one worker, on either reactor
///         }
///     }
/// })?;
/// # Ok::<(), em_core::Error>(())
/// ```
pub struct GroupQueue<T> {
    shared: Arc<Shared<T>>,
}

impl<T> Clone for GroupQueue<T> {
    fn clone(&self) -> Self {
        GroupQueue {
            shared: self.shared.clone(),
        }
    }
}

impl<T: Send + 'static> Default for GroupQueue<T> {
    fn default() -> Self {
        Self::new()
    }
}

impl<T: Send + 'static> GroupQueue<T> {
    /// An empty queue. Any thread, reactor or not.
    pub fn new() -> Self {
        GroupQueue {
            shared: Arc::new(Shared {
                id: NEXT_ID.fetch_add(1, Ordering::Relaxed),
                state: Mutex::new(State {
                    items: VecDeque::new(),
                    waiters: VecDeque::new(),
                }),
            }),
        }
    }

    /// Adds `item` at the back, or hands it to the oldest waiting popper,
    /// which gets it at a later tick of its own reactor. Any thread,
    /// reactor or not; never blocks on a reactor.
    pub fn push(&self, item: T) {
        self.shared.give(item, false);
    }

    /// Pushes every item of `items` in order, as [`push`](Self::push) does
    /// for each.
    pub fn push_all(&self, items: impl IntoIterator<Item = T>) {
        for item in items {
            self.push(item);
        }
    }

    /// Takes the front item for `f`, which runs on this reactor's thread:
    /// at once, before `pop` returns, if an item is queued; otherwise `f`
    /// waits, after the poppers already waiting on any reactor, and gets
    /// the next item pushed at a later tick (see
    /// [Popping](GroupQueue#popping)). Reactor thread only.
    ///
    /// Errors with `is_no_reactor()` where no reactor runs (`f` is dropped).
    pub fn pop(&self, f: impl FnOnce(T) + 'static) -> Result<()> {
        let core = Core::current("GroupQueue::pop")?;
        let mut state = lock(&self.shared.state);
        if let Some(item) = state.items.pop_front() {
            drop(state);
            run_popper(self.shared.id, Box::new(f), item);
            return Ok(());
        }
        let id = NEXT_ID.fetch_add(1, Ordering::Relaxed);
        let popper: Popper<T> = Box::new(f);
        WAITING.with(|w| w.borrow_mut().insert(id, Box::new(popper)));
        state.waiters.push_back(Waiter {
            handle: Handle::new(core.remote.clone()),
            id,
        });
        Ok(())
    }

    /// The front item, without waiting: `None` when no item is queued. Any
    /// thread.
    pub fn try_pop(&self) -> Option<T> {
        lock(&self.shared.state).items.pop_front()
    }

    /// How many items wait for a popper (a snapshot). Any thread.
    pub fn size(&self) -> usize {
        lock(&self.shared.state).items.len()
    }

    /// Whether no item waits for a popper (a snapshot). Any thread.
    pub fn is_empty(&self) -> bool {
        lock(&self.shared.state).items.is_empty()
    }

    /// How many poppers wait for an item, on all reactors (a snapshot).
    /// Any thread.
    pub fn num_waiting(&self) -> usize {
        lock(&self.shared.state).waiters.len()
    }
}

impl<T> fmt::Debug for GroupQueue<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let state = lock(&self.shared.state);
        f.debug_struct("GroupQueue")
            .field("id", &self.shared.id)
            .field("size", &state.items.len())
            .field("waiting", &state.waiters.len())
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An item on its way to a popper whose reactor stopped (its handoff
    /// dropped unrun) comes back to the front of the queue.
    #[test]
    fn a_handoff_dropped_unrun_gives_its_item_back_to_the_front() {
        let q = GroupQueue::new();
        q.push(2);
        drop(Handoff {
            item: Some(1),
            queue: q.shared.clone(),
        });
        assert_eq!(
            (q.try_pop(), q.try_pop(), q.try_pop()),
            (Some(1), Some(2), None)
        );
    }
}
