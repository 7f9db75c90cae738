//! `Bridge`: an em `Channel` shared through a Redis channel, so that
//! processes on several machines share its items.

use std::cell::Cell;
use std::rc::Rc;

use bytes::Bytes;
use em_core::{Channel, Endpoint};

use crate::client::Client;
use crate::codec::ToArg;
use crate::error::RedisResult;
use crate::options::Options;
use crate::pubsub::Subscriber;
use crate::reply::Reply;

/// Joins a local [`Channel`] to a Redis channel: every message published
/// on the Redis channel, by this process or any other, is pushed to the
/// local channel's subscribers; [`publish`](Bridge::publish) sends to
/// Redis. A local publish reaches the local subscribers the same way as a
/// remote one, when Redis sends it back, so each subscriber gets each
/// message once and in Redis's order, whoever published it.
///
/// Across a broker outage: the bridge reconnects with a back-off and
/// subscribes again. What is published while it is down is **lost**, on
/// both sides: a `publish` given then fails at once (counted in
/// [`lost`](Bridge::lost)), and messages others publish meanwhile never
/// reach this process (Redis pub/sub keeps nothing for a subscriber that
/// is away). Nothing is delivered twice. For messages that must not be
/// lost, use a queue (RabbitMQ) instead. `!Send`; reactor thread.
///
/// ```no_run
/// em::synchrony(async {
///     let topic = em::Channel::new();
///     let bridge = em_redis::Bridge::start("127.0.0.1:6379", "news", &topic)?;
///     topic.subscribe(|message| println!("from any process: {message:?}"));
///     bridge.ready().await?;
///     bridge.publish("hello").await?;
///     Ok::<(), em_redis::RedisError>(())
/// })??;
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Clone)]
pub struct Bridge {
    client: Client,
    subscriber: Subscriber,
    channel: Bytes,
    lost: Rc<Cell<u64>>,
    received: Rc<Cell<u64>>,
    ready: Rc<std::cell::RefCell<Option<Reply<()>>>>,
}

impl Bridge {
    /// Bridges `local` and the Redis channel `redis_channel` on the Redis
    /// at `addr`, with the default [`Options`]. Reactor thread.
    pub fn start(
        addr: impl Into<Endpoint>,
        redis_channel: impl ToArg,
        local: &Channel<Bytes>,
    ) -> RedisResult<Bridge> {
        Self::start_with(addr, redis_channel, local, Options::default())
    }

    /// [`start`](Self::start) with options (reconnect delays).
    pub fn start_with(
        addr: impl Into<Endpoint>,
        redis_channel: impl ToArg,
        local: &Channel<Bytes>,
        options: Options,
    ) -> RedisResult<Bridge> {
        let addr = addr.into();
        let channel = redis_channel.to_arg();
        let client = Client::connect_with(addr.clone(), options.clone())?;
        let subscriber = Subscriber::connect_with(addr, options)?;
        let received = Rc::new(Cell::new(0));
        let (r, local) = (received.clone(), local.clone());
        let ready = subscriber.subscribe(channel.clone(), move |message| {
            r.set(r.get() + 1);
            local.push(message);
        });
        Ok(Bridge {
            client,
            subscriber,
            channel,
            lost: Rc::new(Cell::new(0)),
            received,
            ready: Rc::new(std::cell::RefCell::new(Some(ready))),
        })
    }

    /// Resolves once Redis has confirmed the bridge's subscription: from
    /// then on, what anyone publishes reaches the local channel. Fails if
    /// Redis refuses it, or if the connection drops first (the bridge
    /// subscribes again when it is back: see [`on_connected`](Self::on_connected)).
    /// Once only; later calls resolve at once (follow
    /// [`is_connected`](Self::is_connected) for the state).
    pub fn ready(&self) -> Reply<()> {
        self.ready
            .borrow_mut()
            .take()
            .unwrap_or_else(|| Reply::ready(Ok(crate::Value::Nil)))
    }

    /// Publishes `message` on the Redis channel (the local subscribers get
    /// it when Redis sends it back). The reply is how many subscribers
    /// Redis gave it to; while the broker is down it fails at once with
    /// `is_disconnected()` and the message is counted as lost.
    pub fn publish(&self, message: impl ToArg) -> Reply<i64> {
        if self.client.is_down() {
            self.lost.set(self.lost.get() + 1);
        }
        self.client.publish(self.channel.clone(), message)
    }

    /// Messages this bridge could not publish because the broker was down.
    pub fn lost(&self) -> u64 {
        self.lost.get()
    }

    /// Messages received from Redis and pushed to the local channel.
    pub fn received(&self) -> u64 {
        self.received.get()
    }

    /// How many times either of its two connections dropped and began to
    /// reconnect.
    pub fn reconnects(&self) -> u64 {
        self.client.reconnects() + self.subscriber.reconnects()
    }

    /// Calls `f` on the reactor thread each time the bridge is whole
    /// again: both its connections up, and its subscription confirmed by
    /// Redis (from then on, messages flow both ways).
    pub fn on_connected(&self, f: impl FnMut() + 'static) {
        let f = Rc::new(std::cell::RefCell::new(f));
        // Weak handles: the two connections' callbacks must not keep each
        // other alive once the bridge is dropped.
        let (client, subscriber) = (self.client.downgrade(), self.subscriber.downgrade());
        let g = f.clone();
        self.client.on_connected(move || {
            if subscriber.upgrade().is_some_and(|s| Subscriber::whole(&s)) {
                (g.borrow_mut())();
            }
        });
        self.subscriber.on_subscribed(move || {
            if Client::upgrade(&client).is_some_and(|c| c.is_connected()) {
                (f.borrow_mut())();
            }
        });
    }

    /// Calls `f` with the reason on the reactor thread each time either of
    /// its connections goes down.
    pub fn on_disconnected(&self, f: impl FnMut(&str) + 'static) {
        let f = Rc::new(std::cell::RefCell::new(f));
        let g = f.clone();
        self.client
            .on_disconnected(move |why| (g.borrow_mut())(why));
        self.subscriber
            .on_disconnected(move |why| (f.borrow_mut())(why));
    }

    /// Whether the bridge is whole: both connections up and the
    /// subscription confirmed.
    pub fn is_connected(&self) -> bool {
        self.client.is_connected() && self.subscriber.is_subscribed()
    }

    /// Closes both connections; the local channel stays.
    pub fn close(&self) {
        self.client.close();
        self.subscriber.close();
    }
}

impl std::fmt::Debug for Bridge {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Bridge")
            .field("channel", &self.channel)
            .field("lost", &self.lost.get())
            .field("received", &self.received.get())
            .finish()
    }
}
