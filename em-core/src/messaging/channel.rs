//! `Channel`: EventMachine's fan-out channel. Every item pushed goes to every
//! subscriber, at once, with no buffering.

use std::cell::{Cell, RefCell};
use std::collections::VecDeque;
use std::fmt;
use std::pin::Pin;
use std::rc::{Rc, Weak};
use std::task::{Context, Poll, Waker};

use futures_core::Stream;

use crate::error::Result;
use crate::messaging::cross_thread::{Registration, RemoteRef};
use crate::net::conn::Conn;
use crate::reactor::panic;

/// The id of one subscription to a [`Channel`], as returned by
/// [`subscribe`](Channel::subscribe) and [`pop`](Channel::pop). Ids start at
/// 1 and grow by one per subscription of the channel (EventMachine CH1).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct SubscriptionId(u64);

impl SubscriptionId {
    /// The id as a number (1 for a channel's first subscription).
    pub fn get(self) -> u64 {
        self.0
    }
}

impl fmt::Display for SubscriptionId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

type Callback<T> = Box<dyn FnMut(T)>;

/// Whether a subscriber takes the next item.
enum Gate {
    Take,
    /// Behind: the item is dropped for this subscriber, and counted.
    Skip,
    /// Gone (its connection closed): unsubscribed.
    Gone,
}

type GateFn = Box<dyn Fn() -> Gate>;

struct Subscriber<T> {
    id: SubscriptionId,
    /// Cleared on unsubscribe, so that a subscriber removed while an item is
    /// being delivered does not receive the rest of it.
    alive: Cell<bool>,
    /// A `pop`: unsubscribed before its one delivery.
    once: bool,
    /// A connection's subscription: asked before each item.
    gate: Option<GateFn>,
    /// Items dropped for this subscriber while it was behind.
    dropped: Cell<u64>,
    callback: RefCell<Callback<T>>,
}

struct Inner<T> {
    /// Copy-on-write: a delivery holds a clone of the `Rc` (one increment per
    /// item), and subscribe/unsubscribe copy the list only when a delivery
    /// holds it.
    subscribers: RefCell<Rc<Vec<Rc<Subscriber<T>>>>>,
    next_id: Cell<u64>,
    delivering: Cell<bool>,
    /// Items pushed by subscribers during a delivery, delivered after it.
    nested: RefCell<VecDeque<T>>,
    /// How senders reach this channel.
    registration: Registration,
    /// Items dropped for subscribers that were behind, in all.
    dropped: Cell<u64>,
}

/// A fan-out channel (EventMachine's `EM::Channel`): each item
/// [`push`](Channel::push)ed goes to every subscriber, in subscription order,
/// item by item. There is no buffering: an item pushed while nobody
/// subscribes is dropped (CH4).
///
/// A `Channel` is a cheap `Clone` handle (clones share the subscribers) and
/// is `!Send`: it lives on the reactor thread, and so do all its callbacks.
/// Other threads push through a [`ChannelSender`] from
/// [`sender`](Channel::sender). Procedural code under [`spawn`](crate::spawn)
/// reads it as a `futures::Stream` from
/// [`subscribe_stream`](Channel::subscribe_stream).
///
/// ```compile_fail,E0277
/// # use em_core as em;
/// let chat = em::Channel::<String>::new();
/// std::thread::spawn(move || chat.push("hi".into())); // `Channel` is not `Send`
/// ```
///
/// # Re-entrancy
///
/// A subscriber may subscribe, unsubscribe and push during a delivery:
///
/// * subscribers are snapshotted per item: one subscribed during the
///   delivery of an item receives the next items, not this one; one
///   unsubscribed during it receives no more, not even the rest of this one;
/// * a push made during a delivery is queued and delivered right after the
///   current item reached every subscriber, before the outer `push` returns,
///   so deliveries stay item-major and never nest.
///
/// A subscriber that panics is logged (the panic is contained) and stays
/// subscribed; the item goes on to the other subscribers.
///
/// # Slow subscribers
///
/// Delivery never waits for anyone: a callback that sends to a connection
/// only queues output. The policy for a connection that does not keep up
/// is [`subscribe_conn`](Channel::subscribe_conn)'s: while the connection's
/// output is above its high watermark, items are dropped for it and counted
/// (it does not end, and nobody else waits); once it drains it takes items
/// again. A publisher sees it through [`num_behind`](Channel::num_behind)
/// and [`dropped_count`](Channel::dropped_count). A plain
/// [`subscribe`](Channel::subscribe) that sends to a connection has no such
/// policy: its output grows until the connection's `max_outbound` ends it.
///
/// ```
/// # use em_core as em;
/// use std::{cell::RefCell, rc::Rc};
/// let seen = Rc::new(RefCell::new(Vec::new()));
/// let s = seen.clone();
/// em::run(move || {
///     let chat = em::Channel::new();
///     let (a, b) = (s.clone(), s.clone());
///     chat.subscribe(move |m: String| a.borrow_mut().push(format!("a:{m}")));
///     chat.subscribe(move |m: String| b.borrow_mut().push(format!("b:{m}")));
///     chat.push("hi".to_string()); // delivered before push returns
///     s.borrow_mut().push("pushed".into());
///     em::stop();
/// })?;
/// assert_eq!(*seen.borrow(), ["a:hi", "b:hi", "pushed"]);
/// # Ok::<(), em_core::Error>(())
/// ```
pub struct Channel<T> {
    inner: Rc<Inner<T>>,
}

impl<T> Clone for Channel<T> {
    fn clone(&self) -> Self {
        Channel {
            inner: self.inner.clone(),
        }
    }
}

impl<T: Clone + 'static> Default for Channel<T> {
    fn default() -> Self {
        Self::new()
    }
}

impl<T: Clone + 'static> Channel<T> {
    /// An empty channel. Any thread; the channel then belongs to it.
    pub fn new() -> Self {
        Channel {
            inner: Rc::new(Inner {
                subscribers: RefCell::new(Rc::new(Vec::new())),
                next_id: Cell::new(1),
                delivering: Cell::new(false),
                nested: RefCell::new(VecDeque::new()),
                registration: Registration::default(),
                dropped: Cell::new(0),
            }),
        }
    }

    fn add(&self, once: bool, gate: Option<GateFn>, callback: Callback<T>) -> SubscriptionId {
        let id = SubscriptionId(self.inner.next_id.get());
        self.inner.next_id.set(id.0 + 1);
        let sub = Rc::new(Subscriber {
            id,
            alive: Cell::new(true),
            once,
            gate,
            dropped: Cell::new(0),
            callback: RefCell::new(callback),
        });
        Rc::make_mut(&mut self.inner.subscribers.borrow_mut()).push(sub);
        id
    }

    /// Subscribes `f`: it is called with a clone of every item pushed from
    /// now on, on the reactor thread, until [`unsubscribe`](Self::unsubscribe).
    /// Returns the subscription's id (1, 2, … per channel).
    pub fn subscribe(&self, f: impl FnMut(T) + 'static) -> SubscriptionId {
        self.add(false, None, Box::new(f))
    }

    /// Subscribes connection `conn`, with the fan-out policy for network
    /// subscribers: `f(conn, item)` is called with each item pushed from
    /// now on (typically to `send_data` it), except while the connection is
    /// behind, that is, while its output is above its high watermark
    /// ([`Conn::is_above_high_watermark`]): those items are dropped for it,
    /// and counted ([`dropped_for`](Self::dropped_for),
    /// [`dropped_count`](Self::dropped_count)), instead of piling up until
    /// the connection's `max_outbound` ends it. It takes items again once its
    /// output has drained to the low watermark. The subscription ends by
    /// itself at the first item pushed after the connection closed (or with
    /// [`unsubscribe`](Self::unsubscribe)). Reactor thread.
    ///
    /// A publisher sees how many subscribers are behind with
    /// [`num_behind`](Self::num_behind).
    pub fn subscribe_conn<C: 'static>(
        &self,
        conn: &Conn<C>,
        mut f: impl FnMut(&Conn<C>, T) + 'static,
    ) -> SubscriptionId {
        let watched = conn.clone();
        let gate: GateFn = Box::new(move || {
            if watched.is_closed() {
                Gate::Gone
            } else if watched.is_above_high_watermark() {
                Gate::Skip
            } else {
                Gate::Take
            }
        });
        let conn = conn.clone();
        self.add(false, Some(gate), Box::new(move |item| f(&conn, item)))
    }

    /// How many subscribers are behind right now: connection subscriptions
    /// ([`subscribe_conn`](Self::subscribe_conn)) whose connection's output
    /// is above its high watermark, so that items are dropped for them.
    pub fn num_behind(&self) -> usize {
        let subs = self.inner.subscribers.borrow().clone();
        subs.iter()
            .filter(|s| matches!(s.gate.as_ref().map(|g| g()), Some(Gate::Skip)))
            .count()
    }

    /// How many items were dropped for subscribers that were behind, in all,
    /// since the channel was made.
    pub fn dropped_count(&self) -> u64 {
        self.inner.dropped.get()
    }

    /// How many items were dropped for subscription `id` while it was
    /// behind; `None` if it is not subscribed.
    pub fn dropped_for(&self, id: SubscriptionId) -> Option<u64> {
        let subs = self.inner.subscribers.borrow();
        let i = subs.binary_search_by_key(&id, |s| s.id).ok()?;
        Some(subs[i].dropped.get())
    }

    /// Subscribes `f` for exactly one item, the next one pushed (a one-shot
    /// subscriber, EventMachine's `pop`); it is unsubscribed before it runs.
    /// The id lets you cancel it with [`unsubscribe`](Self::unsubscribe).
    pub fn pop(&self, f: impl FnOnce(T) + 'static) -> SubscriptionId {
        let mut f = Some(f);
        self.add(
            true,
            None,
            Box::new(move |item| {
                if let Some(f) = f.take() {
                    f(item);
                }
            }),
        )
    }

    /// Ends subscription `id`: no item is delivered to it any more, not even
    /// the rest of an item being delivered. Returns whether it was
    /// subscribed. The callback is dropped here, on the calling thread.
    pub fn unsubscribe(&self, id: SubscriptionId) -> bool {
        let removed = {
            let mut subs = self.inner.subscribers.borrow_mut();
            // Ids grow with each subscription, so the list is sorted.
            match subs.binary_search_by_key(&id, |s| s.id) {
                Ok(i) => {
                    let sub = Rc::make_mut(&mut subs).remove(i);
                    sub.alive.set(false);
                    Some(sub)
                }
                Err(_) => None,
            }
        };
        removed.is_some()
    }

    /// How many subscriptions are live (one-shot `pop`s included).
    pub fn num_subscribers(&self) -> usize {
        self.inner.subscribers.borrow().len()
    }

    /// Pushes `item` to every subscriber (EventMachine CH2). On the reactor
    /// thread it is delivered before `push` returns, to each subscriber in
    /// subscription order; on a thread where no reactor runs yet (before
    /// [`run`](crate::run)) it is queued with [`next_tick`](crate::next_tick)
    /// and delivered once the reactor starts, as EventMachine's `schedule`
    /// does. With no subscriber the item is dropped.
    pub fn push(&self, item: T) {
        if crate::reactor_thread() {
            self.deliver(item);
        } else {
            let this = self.clone();
            crate::next_tick(move || this.deliver(item));
        }
    }

    /// Pushes every item of `items`, in order, as [`push`](Self::push) does
    /// for each (EventMachine's `push(*items)`).
    pub fn push_all(&self, items: impl IntoIterator<Item = T>) {
        for item in items {
            self.push(item);
        }
    }

    fn deliver(&self, item: T) {
        let inner = &*self.inner;
        if inner.delivering.get() {
            inner.nested.borrow_mut().push_back(item);
            return;
        }
        inner.delivering.set(true);
        // Reset however this ends: an item's `Clone` may panic.
        let _delivering = Delivering(&inner.delivering);
        self.deliver_one(item);
        loop {
            let next = inner.nested.borrow_mut().pop_front();
            match next {
                Some(item) => self.deliver_one(item),
                None => break,
            }
        }
    }

    fn deliver_one(&self, item: T) {
        let subs = self.inner.subscribers.borrow().clone();
        let Some((last, rest)) = subs.split_last() else {
            return;
        };
        for sub in rest {
            self.call(sub, || item.clone());
        }
        self.call(last, || item);
    }

    /// Delivers the item `item` makes to `sub`, unless it is gone or behind
    /// (then the item is not even made).
    fn call(&self, sub: &Rc<Subscriber<T>>, item: impl FnOnce() -> T) {
        if !sub.alive.get() {
            return;
        }
        match sub.gate.as_ref().map(|g| g()) {
            None | Some(Gate::Take) => {}
            Some(Gate::Skip) => {
                sub.dropped.set(sub.dropped.get() + 1);
                self.inner.dropped.set(self.inner.dropped.get() + 1);
                return;
            }
            Some(Gate::Gone) => {
                self.unsubscribe(sub.id);
                return;
            }
        }
        let item = item();
        if sub.once {
            self.unsubscribe(sub.id);
        }
        // A subscriber that re-enters its own delivery cannot happen: nested
        // pushes are queued. `try_borrow_mut` keeps that a guarantee.
        let Ok(mut callback) = sub.callback.try_borrow_mut() else {
            return;
        };
        let _ = panic::catch("channel subscriber", None, || (*callback)(item));
    }

    /// A `futures::Stream` of every item pushed from now on, for procedural
    /// code under [`spawn`](crate::spawn) (em-synchrony style). It is a
    /// subscription: items delivered while the stream is not polled wait in
    /// the stream's own unbounded buffer (the channel itself still buffers
    /// nothing). Dropping the stream unsubscribes; the stream ends when the
    /// subscription is removed with [`unsubscribe`](Self::unsubscribe) or the
    /// channel is dropped. Poll it on the reactor thread.
    pub fn subscribe_stream(&self) -> ChannelStream<T> {
        let state = Rc::new(StreamState {
            items: RefCell::new(VecDeque::new()),
            waker: RefCell::new(None),
            closed: Cell::new(false),
        });
        let feed = StreamFeed(state.clone());
        let id = self.subscribe(move |item| {
            let state = &feed.0;
            state.items.borrow_mut().push_back(item);
            if let Some(w) = state.waker.borrow_mut().take() {
                w.wake();
            }
        });
        ChannelStream {
            state,
            channel: Rc::downgrade(&self.inner),
            id,
        }
    }

    /// A `Send + Sync + Clone` sender for other threads: its
    /// [`push`](ChannelSender::push) delivers the item on this reactor's
    /// thread, at a later tick (EventMachine CH3).
    ///
    /// A sender does not keep the value alive (it names it by id): keep a
    /// handle on the reactor thread for as long as senders should reach it.
    /// Call it on the reactor thread; errors with `is_no_reactor()` elsewhere.
    pub fn sender(&self) -> Result<ChannelSender<T>>
    where
        T: Send,
    {
        let remote = RemoteRef::new(
            "Channel::sender",
            "channel",
            &self.inner,
            &self.inner.registration,
        )?;
        Ok(ChannelSender { remote })
    }
}

impl<T> fmt::Debug for Channel<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Channel")
            .field("subscribers", &self.inner.subscribers.borrow().len())
            .finish_non_exhaustive()
    }
}

/// Clears the channel's `delivering` flag when dropped.
struct Delivering<'a>(&'a Cell<bool>);

impl Drop for Delivering<'_> {
    fn drop(&mut self) {
        self.0.set(false);
    }
}

/// The `Send` side of a [`Channel`], from [`Channel::sender`]: pushes from
/// any thread, delivered on the reactor thread at a later tick (through
/// [`Handle::schedule`](crate::Handle::schedule)), in the order each thread pushed them.
pub struct ChannelSender<T> {
    remote: RemoteRef<Inner<T>>,
}

impl<T> Clone for ChannelSender<T> {
    fn clone(&self) -> Self {
        ChannelSender {
            remote: self.remote.clone(),
        }
    }
}

impl<T: Clone + Send + 'static> ChannelSender<T> {
    /// Queues `item` for delivery to the channel's subscribers on the
    /// reactor thread, at a later tick, never before returning. Any thread.
    ///
    /// Errors with `is_receiver_gone()` once the channel has been dropped
    /// (the item is not sent), `is_stopping()` once the reactor begins to
    /// stop and `is_not_running()` once it has stopped. An item that
    /// reaches a channel dropped after the push returned is dropped.
    pub fn push(&self, item: T) -> Result<()> {
        self.remote.send("ChannelSender::push", move |inner| {
            Channel { inner }.deliver(item)
        })
    }
}

impl<T> fmt::Debug for ChannelSender<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ChannelSender")
            .field("remote", &self.remote)
            .finish()
    }
}

struct StreamState<T> {
    items: RefCell<VecDeque<T>>,
    waker: RefCell<Option<Waker>>,
    closed: Cell<bool>,
}

/// Held by the stream's subscriber callback: when the callback is dropped
/// (unsubscribed, or the channel dropped), the stream ends.
struct StreamFeed<T>(Rc<StreamState<T>>);

impl<T> Drop for StreamFeed<T> {
    fn drop(&mut self) {
        self.0.closed.set(true);
        if let Some(w) = self.0.waker.borrow_mut().take() {
            w.wake();
        }
    }
}

/// A [`Channel`] subscription read as a `futures::Stream`, from
/// [`Channel::subscribe_stream`]. Reactor thread only (`!Send`); dropping
/// it unsubscribes.
///
/// ```
/// # use em_core as em;
/// use futures::StreamExt;
/// em::run(|| -> em::Result<()> {
///     let news = em::Channel::new();
///     let mut stream = news.subscribe_stream();
///     em::spawn(async move {
///         assert_eq!(stream.next().await, Some(1));
///         assert_eq!(stream.next().await, Some(2));
///         em::stop();
///     })?;
///     news.push(1);
///     news.push(2);
///     Ok(())
/// })?;
/// # Ok::<(), em_core::Error>(())
/// ```
pub struct ChannelStream<T> {
    state: Rc<StreamState<T>>,
    channel: Weak<Inner<T>>,
    id: SubscriptionId,
}

impl<T> ChannelStream<T> {
    /// The id of the subscription behind the stream.
    pub fn id(&self) -> SubscriptionId {
        self.id
    }
}

impl<T> Stream for ChannelStream<T> {
    type Item = T;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<T>> {
        if let Some(item) = self.state.items.borrow_mut().pop_front() {
            return Poll::Ready(Some(item));
        }
        if self.state.closed.get() {
            return Poll::Ready(None);
        }
        *self.state.waker.borrow_mut() = Some(cx.waker().clone());
        Poll::Pending
    }
}

impl<T> Drop for ChannelStream<T> {
    fn drop(&mut self) {
        if let Some(inner) = self.channel.upgrade() {
            let removed = {
                let mut subs = inner.subscribers.borrow_mut();
                match subs.binary_search_by_key(&self.id, |s| s.id) {
                    Ok(i) => {
                        let sub = Rc::make_mut(&mut subs).remove(i);
                        sub.alive.set(false);
                        Some(sub)
                    }
                    Err(_) => None,
                }
            };
            // Dropped outside the borrow: its Drop touches only the stream.
            drop(removed);
        }
    }
}

impl<T> fmt::Debug for ChannelStream<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ChannelStream")
            .field("id", &self.id)
            .field("buffered", &self.state.items.borrow().len())
            .finish()
    }
}
