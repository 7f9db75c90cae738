//! `GroupChannel`: a fan-out channel across the reactors of a group
//! ([`Builder::run_each`](crate::Builder::run_each)).
//!
//! Each subscribing reactor holds its own [`Channel`] (in thread-local
//! state, keyed by the group channel's id) with its subscribers; the shared
//! side holds, per subscribing reactor, its [`Handle`] and a pending batch.
//! A push appends the item to every batch; a batch that goes from empty to
//! non-empty queues one drain on its reactor with [`Handle::schedule`], and
//! the drain delivers the whole batch, in order, through the local channel.

use std::any::Any;
use std::cell::RefCell;
use std::collections::HashMap;
use std::fmt;
use std::rc::Rc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError, Weak};
use std::thread::{self, ThreadId};

use crate::error::{Error, Result};
use crate::messaging::channel::{Channel, SubscriptionId};
use crate::reactor::core::Core;
use crate::reactor::remote::Handle;

/// Ids of group channels, and of the incarnations of their local sides.
static NEXT_ID: AtomicU64 = AtomicU64::new(1);

thread_local! {
    /// This reactor's side of each group channel it subscribes to, by the
    /// group channel's id: a `Local<T>`.
    static LOCAL: RefCell<HashMap<u64, Rc<dyn Any>>> = RefCell::new(HashMap::new());
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // No user code runs under these locks (a panicking `Clone` runs before
    // the lock is taken), so a poisoned lock holds consistent data.
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

/// One subscribing reactor, as the publishers see it.
struct Target<T> {
    handle: Handle,
    batch: Mutex<Batch<T>>,
    /// Live subscriptions on that reactor.
    subscribers: AtomicUsize,
}

struct Batch<T> {
    items: Vec<T>,
    /// The reactor stopped: items are refused.
    dead: bool,
}

impl<T> Target<T> {
    /// The reactor cannot take items any more: drops its batch and refuses
    /// the next ones.
    fn kill(&self) {
        let items = {
            let mut batch = lock(&self.batch);
            batch.dead = true;
            std::mem::take(&mut batch.items)
        };
        drop(items);
    }
}

/// What the clones of a [`GroupChannel`] share.
struct Shared<T> {
    id: u64,
    /// Copy-on-write: a push clones the `Arc` under the lock and works on
    /// the snapshot.
    targets: Mutex<Arc<Vec<Arc<Target<T>>>>>,
}

impl<T> Shared<T> {
    fn add(&self, target: Arc<Target<T>>) {
        Arc::make_mut(&mut lock(&self.targets)).push(target);
    }

    fn remove(&self, target: &Arc<Target<T>>) {
        let mut targets = lock(&self.targets);
        if targets.iter().any(|t| Arc::ptr_eq(t, target)) {
            Arc::make_mut(&mut targets).retain(|t| !Arc::ptr_eq(t, target));
        }
    }
}

impl<T> Drop for Shared<T> {
    fn drop(&mut self) {
        // The last handle is gone: nobody can push or unsubscribe any more,
        // so each reactor forgets its side (and the subscriber callbacks).
        let targets = self
            .targets
            .get_mut()
            .unwrap_or_else(PoisonError::into_inner);
        for target in targets.iter() {
            let id = self.id;
            let _ = target.handle.schedule(move || {
                let local = LOCAL.with(|l| l.borrow_mut().remove(&id));
                drop(local);
            });
        }
    }
}

/// A reactor's side of a group channel.
struct Local<T> {
    channel: Channel<T>,
    target: Arc<Target<T>>,
    /// Told apart from earlier sides of the same channel on this reactor, so
    /// that an old subscription id names nothing.
    incarnation: u64,
}

/// The drain of one batch, queued on its reactor. Dropped without running
/// (its reactor stopped), it drops the batch and retires the target.
struct Drain<T> {
    id: u64,
    target: Arc<Target<T>>,
    shared: Weak<Shared<T>>,
    ran: bool,
}

impl<T: Clone + 'static> Drain<T> {
    /// On the target's reactor: delivers the whole batch, in order, to every
    /// local subscriber.
    fn run(mut self) {
        self.ran = true;
        let items = std::mem::take(&mut lock(&self.target.batch).items);
        let Some(local) = local::<T>(self.id) else {
            return;
        };
        // A batch of an earlier side (every subscriber left meanwhile) is
        // not delivered to later subscribers.
        if !Arc::ptr_eq(&local.target, &self.target) {
            return;
        }
        for item in items {
            local.channel.push(item);
        }
    }
}

impl<T> Drop for Drain<T> {
    fn drop(&mut self) {
        if !self.ran {
            self.target.kill();
            if let Some(shared) = self.shared.upgrade() {
                shared.remove(&self.target);
            }
        }
    }
}

/// This reactor's side of group channel `id`, if it subscribes.
fn local<T: 'static>(id: u64) -> Option<Rc<Local<T>>> {
    LOCAL
        .with(|l| l.borrow().get(&id).cloned())
        .and_then(|any| any.downcast::<Local<T>>().ok())
}

/// A fan-out channel for the reactors of a group
/// ([`Builder::run_each`](crate::Builder::run_each)): each item
/// [`push`](GroupChannel::push)ed, from any thread, goes to every
/// subscriber on every reactor, and each subscriber runs on the reactor it
/// subscribed on.
///
/// A `GroupChannel` is a cheap `Clone + Send + Sync` handle (an `Arc`
/// inside): make it anywhere ([`new`](GroupChannel::new) needs no reactor),
/// and move clones into [`run_each`](crate::Builder::run_each)'s block or
/// other threads. The reactor-owned [`Channel`] stays `!Send`; this is the
/// explicit cross-reactor one.
///
/// # Delivery
///
/// Delivery goes through each subscribing reactor's [`Handle`] (em's one
/// cross-thread mechanism), batched: each subscribing reactor has a pending
/// batch behind a mutex; a push appends the item to every batch (a lock
/// per subscribing reactor, and a clone of the item for all but the last),
/// and a batch that was empty queues one drain with
/// [`Handle::schedule`], which wakes the reactor. The drain, at a later
/// tick of that reactor, takes the whole batch and delivers each item, in
/// order, to every subscriber there (as [`Channel::push`] does: in
/// subscription order, panics contained, re-entrant pushes queued). So a
/// burst of pushes costs one wake per reactor, not one per item.
///
/// * Items are delivered at a later tick, never inside `push`, even to
///   subscribers on the pushing reactor.
/// * The items of one publisher (one thread) reach every subscriber in the
///   order it pushed them. Items of different publishers interleave, the
///   same way on every reactor only if they were pushed in an order that
///   every batch saw (no promise across publishers).
/// * An item pushed after [`subscribe`](GroupChannel::subscribe) returned
///   reaches that subscriber (so may items pushed just before, still in
///   its reactor's pending batch); an item pushed while nobody subscribes
///   is dropped, as with [`Channel`].
/// * A reactor that stopped takes no more items: its pending batch is
///   dropped and it leaves the channel; pushes go on to the others.
///
/// ```
/// # use em_core as em;
/// use std::sync::atomic::{AtomicUsize, Ordering};
/// use std::sync::Arc;
///
/// let news = em::GroupChannel::<String>::new(); // any thread
/// let subscribed = Arc::new(AtomicUsize::new(0));
/// let received = Arc::new(AtomicUsize::new(0));
/// em::Reactor::builder().reactors(2).run_each(move |index| -> em::Result<()> {
///     let received = received.clone();
///     news.subscribe(move |headline: String| {
///         // On this reactor's thread.
///         assert_eq!(em::reactor_index().unwrap(), index);
///         assert_eq!(headline, "em: several reactors");
///         if received.fetch_add(1, Ordering::SeqCst) + 1 == 2 {
///             em::stop(); // stops both
///         }
///     })?;
///     // The second reactor to subscribe publishes, to both.
///     if subscribed.fetch_add(1, Ordering::SeqCst) + 1 == 2 {
///         assert_eq!(news.push("em: several reactors".to_string()), 2);
///     }
///     Ok(())
/// })?;
/// # Ok::<(), em_core::Error>(())
/// ```
pub struct GroupChannel<T> {
    shared: Arc<Shared<T>>,
}

/// A subscription to a [`GroupChannel`], from
/// [`GroupChannel::subscribe`]: give it to
/// [`unsubscribe`](GroupChannel::unsubscribe), on the reactor it was made
/// on. A plain id: dropping it does not unsubscribe.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct GroupSubscription {
    thread: ThreadId,
    incarnation: u64,
    id: SubscriptionId,
}

impl GroupSubscription {
    /// The id of the thread of the reactor the subscriber runs on.
    pub fn thread_id(&self) -> ThreadId {
        self.thread
    }
}

impl<T> Clone for GroupChannel<T> {
    fn clone(&self) -> Self {
        GroupChannel {
            shared: self.shared.clone(),
        }
    }
}

impl<T: Clone + Send + 'static> Default for GroupChannel<T> {
    fn default() -> Self {
        Self::new()
    }
}

impl<T: Clone + Send + 'static> GroupChannel<T> {
    /// An empty channel, with no subscriber. Any thread, reactor or not:
    /// reactors join the channel when they first subscribe.
    pub fn new() -> Self {
        GroupChannel {
            shared: Arc::new(Shared {
                id: NEXT_ID.fetch_add(1, Ordering::Relaxed),
                targets: Mutex::new(Arc::new(Vec::new())),
            }),
        }
    }

    /// Subscribes `f` on the reactor of the calling thread: from now on it
    /// is called there, on that reactor's thread, with a clone of every
    /// item pushed, until [`unsubscribe`](Self::unsubscribe). The first
    /// subscription of a reactor records its [`Handle`] in the channel, so
    /// that pushes reach it. Reactor thread only.
    ///
    /// Errors with `is_no_reactor()` where no reactor runs.
    pub fn subscribe(&self, f: impl FnMut(T) + 'static) -> Result<GroupSubscription> {
        let core = Core::current("GroupChannel::subscribe")?;
        let id = self.shared.id;
        let local = match local::<T>(id) {
            Some(local) => local,
            None => {
                let target = Arc::new(Target {
                    handle: Handle::new(core.remote.clone()),
                    batch: Mutex::new(Batch {
                        items: Vec::new(),
                        dead: false,
                    }),
                    subscribers: AtomicUsize::new(0),
                });
                let local = Rc::new(Local {
                    channel: Channel::new(),
                    target: target.clone(),
                    incarnation: NEXT_ID.fetch_add(1, Ordering::Relaxed),
                });
                LOCAL.with(|l| l.borrow_mut().insert(id, local.clone() as Rc<dyn Any>));
                self.shared.add(target);
                local
            }
        };
        let sub = local.channel.subscribe(f);
        local.target.subscribers.fetch_add(1, Ordering::SeqCst);
        Ok(GroupSubscription {
            thread: thread::current().id(),
            incarnation: local.incarnation,
            id: sub,
        })
    }

    /// Ends subscription `sub`: no item is delivered to it any more, not
    /// even the rest of a batch being delivered. When the last subscriber
    /// of a reactor leaves, the reactor leaves the channel (pushes stop
    /// going there). Returns whether it was subscribed. Reactor thread
    /// only: the one `sub` was made on.
    ///
    /// Errors with `is_no_reactor()` where no reactor runs, and
    /// `is_invalid_argument()` on a reactor other than the subscription's.
    pub fn unsubscribe(&self, sub: GroupSubscription) -> Result<bool> {
        Core::current("GroupChannel::unsubscribe")?;
        if sub.thread != thread::current().id() {
            return Err(Error::invalid_argument(
                "GroupChannel::unsubscribe",
                "the subscription is of another reactor",
            ));
        }
        let Some(local) = local::<T>(self.shared.id) else {
            return Ok(false);
        };
        if local.incarnation != sub.incarnation || !local.channel.unsubscribe(sub.id) {
            return Ok(false);
        }
        local.target.subscribers.fetch_sub(1, Ordering::SeqCst);
        if local.channel.num_subscribers() == 0 {
            self.shared.remove(&local.target);
            let removed = LOCAL.with(|l| l.borrow_mut().remove(&self.shared.id));
            drop(removed);
        }
        Ok(true)
    }

    /// Pushes `item` to every subscriber of every reactor: it is appended
    /// to each subscribing reactor's pending batch and delivered there at a
    /// later tick (see [Delivery](GroupChannel#delivery)). Any thread,
    /// reactor or not; never blocks on a reactor, never waits for a
    /// subscriber.
    ///
    /// Returns how many reactors the item was queued for: `0` when nobody
    /// subscribes, or every subscribing reactor has stopped (the item is
    /// then dropped; this is not an error, as with [`Channel::push`]).
    pub fn push(&self, item: T) -> usize {
        let targets = lock(&self.shared.targets).clone();
        let Some((last, rest)) = targets.split_last() else {
            return 0;
        };
        let mut reached = 0;
        for target in rest {
            reached += usize::from(self.send(target, item.clone()));
        }
        reached + usize::from(self.send(last, item))
    }

    /// Pushes every item of `items`, in order, as [`push`](Self::push) does
    /// for each. Returns how many items were queued for at least one
    /// reactor.
    pub fn push_all(&self, items: impl IntoIterator<Item = T>) -> usize {
        items
            .into_iter()
            .map(|item| usize::from(self.push(item) > 0))
            .sum()
    }

    /// Appends `item` to `target`'s batch, and queues the drain if the batch
    /// was empty. False when the target's reactor has stopped.
    fn send(&self, target: &Arc<Target<T>>, item: T) -> bool {
        let first = {
            let mut batch = lock(&target.batch);
            if batch.dead {
                return false;
            }
            batch.items.push(item);
            batch.items.len() == 1
        };
        if !first {
            return true;
        }
        let drain = Drain {
            id: self.shared.id,
            target: target.clone(),
            shared: Arc::downgrade(&self.shared),
            ran: false,
        };
        // On an error the drain is dropped unrun: it kills the target.
        target.handle.schedule(move || drain.run()).is_ok()
    }

    /// How many subscriptions are live, on all reactors (a snapshot).
    /// Any thread.
    pub fn num_subscribers(&self) -> usize {
        lock(&self.shared.targets)
            .iter()
            .map(|t| t.subscribers.load(Ordering::SeqCst))
            .sum()
    }

    /// How many reactors have subscribers (a snapshot). Any thread.
    pub fn num_reactors(&self) -> usize {
        lock(&self.shared.targets).len()
    }
}

impl<T> fmt::Debug for GroupChannel<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("GroupChannel")
            .field("id", &self.shared.id)
            .field("reactors", &lock(&self.shared.targets).len())
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::cell::Cell;

    /// Pushes made in one tick pile up in one batch (one `schedule`, one
    /// wake), delivered in order at a later tick.
    #[test]
    fn pushes_in_one_tick_make_one_batch() {
        let got = Rc::new(Cell::new(0u32));
        let g = got.clone();
        crate::run(move || {
            let ch = GroupChannel::<u32>::new();
            let next = g.clone();
            ch.subscribe(move |n| {
                if n == next.get() {
                    next.set(n + 1);
                }
            })
            .unwrap();
            for n in 0..1000 {
                assert_eq!(ch.push(n), 1);
            }
            let target = lock(&ch.shared.targets)[0].clone();
            assert_eq!(lock(&target.batch).items.len(), 1000, "one batch");
            assert_eq!(g.get(), 0, "delivered at a later tick, not in push");
            // Queued after the drain: runs after it.
            crate::next_tick(move || {
                assert!(lock(&target.batch).items.is_empty());
                crate::stop();
            });
        })
        .unwrap();
        assert_eq!(got.get(), 1000, "every item, in order");
    }
}
