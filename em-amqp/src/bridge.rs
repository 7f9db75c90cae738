//! `QueueBridge`: a RabbitMQ queue feeding an em `Queue`, acknowledged
//! after the local consumer has finished each job.

use std::cell::{Cell, RefCell};
use std::rc::{Rc, Weak};

use bytes::Bytes;
use em_core::{Backoff, Queue};

use crate::channel::{Channel, ConsumeOptions, QueueOptions};
use crate::client::Client;
use crate::delivery::Delivery;
use crate::error::{AmqpError, AmqpResult};

/// The bridge's counts, shared with its jobs.
#[derive(Debug, Default)]
struct Counts {
    delivered: Cell<u64>,
    redelivered: Cell<u64>,
    acked: Cell<u64>,
    requeued: Cell<u64>,
    discarded: Cell<u64>,
    starts: Cell<u64>,
}

/// One message from a [`QueueBridge`], to be worked on by the local
/// consumer: call [`done`](Job::done) when finished, and only then is it
/// acknowledged at the broker. Dropped without `done` (the consumer gave
/// up, or panicked), it goes back to the RabbitMQ queue (`Basic.Nack`,
/// requeue) for another consumer. If the connection dropped while it was
/// worked on, `done` fails with `is_disconnected()`: the broker has put it
/// back already, and it will come again flagged redelivered (at least once).
/// `!Send`: its work may go to [`defer`](https://docs.rs/em-defer) as long
/// as the `Job` itself stays on the reactor thread.
pub struct Job {
    delivery: Option<Delivery>,
    counts: Rc<Counts>,
}

impl std::fmt::Debug for Job {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Job")
            .field("delivery", &self.delivery)
            .finish()
    }
}

impl Job {
    /// The message: body, properties, routing, redelivered flag.
    pub fn delivery(&self) -> &Delivery {
        self.delivery
            .as_ref()
            .expect("a job holds its delivery until settled")
    }

    /// The message's body.
    pub fn body(&self) -> &Bytes {
        self.delivery().body()
    }

    /// The broker delivered it before (to a consumer that did not finish).
    pub fn redelivered(&self) -> bool {
        self.delivery().redelivered()
    }

    /// The work is finished: acknowledge it at the broker.
    pub fn done(mut self) -> AmqpResult<()> {
        let d = self
            .delivery
            .take()
            .expect("a job holds its delivery until settled");
        d.ack()?;
        self.counts.acked.set(self.counts.acked.get() + 1);
        Ok(())
    }

    /// Give it back to the RabbitMQ queue, for this or another consumer.
    pub fn retry(mut self) -> AmqpResult<()> {
        let d = self
            .delivery
            .take()
            .expect("a job holds its delivery until settled");
        d.nack(true)?;
        self.counts.requeued.set(self.counts.requeued.get() + 1);
        Ok(())
    }

    /// Dropped by the bridge itself: its channel is gone, the broker has it.
    fn forget(mut self) {
        self.delivery.take();
    }
}

impl Drop for Job {
    fn drop(&mut self) {
        if let Some(d) = self.delivery.take() {
            if d.nack(true).is_ok() {
                self.counts.requeued.set(self.counts.requeued.get() + 1);
            }
        }
    }
}

struct Inner {
    client: Client,
    queue: String,
    prefetch: u16,
    declare: Option<QueueOptions>,
    jobs: Queue<Job>,
    counts: Rc<Counts>,
    channel: RefCell<Option<Channel>>,
    last_error: RefCell<Option<AmqpError>>,
    stopped: Cell<bool>,
    /// Between tries when the channel alone ended (the connection up).
    backoff: RefCell<Backoff>,
}

/// Feeds an em [`Queue`] from a RabbitMQ queue: it consumes with a
/// prefetch (at most that many jobs unacknowledged, here or in the local
/// queue), pushes each message into the em queue as a [`Job`], and
/// acknowledges it only when the local consumer calls [`Job::done`]. So a
/// crash of this process loses nothing: what it had not finished goes back
/// to the RabbitMQ queue.
///
/// Over a reconnect it opens a channel, sets the prefetch, declares the
/// queue (if asked) and consumes again. Jobs still waiting in the em queue
/// when the connection drops are taken out and dropped (counted by
/// [`discarded`](QueueBridge::discarded)): the broker redelivers them.
/// Jobs being worked on then cannot be acknowledged (their `done` fails)
/// and are redelivered too: a job may run twice, never zero times.
///
/// `!Send`; made and used on the reactor thread. Keeps its client's
/// connection open while it lives; dropping it (or [`stop`](QueueBridge::stop))
/// closes its channel, which gives the unacknowledged back to the queue.
pub struct QueueBridge {
    inner: Rc<Inner>,
}

impl std::fmt::Debug for QueueBridge {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("QueueBridge")
            .field("queue", &self.inner.queue)
            .field("prefetch", &self.inner.prefetch)
            .field("delivered", &self.delivered())
            .field("acked", &self.acked())
            .finish()
    }
}

impl QueueBridge {
    /// Consumes `queue` (declared durable if missing) with `prefetch`
    /// jobs at most in flight, into a new em [`Queue`] — take it with
    /// [`jobs`](QueueBridge::jobs). Reactor thread.
    pub fn start(client: &Client, queue: &str, prefetch: u16) -> QueueBridge {
        QueueBridge::start_with(
            client,
            queue,
            prefetch,
            Some(QueueOptions {
                durable: true,
                ..QueueOptions::default()
            }),
        )
    }

    /// As [`start`](QueueBridge::start), declaring the queue with
    /// `declare` on each connect, or not at all (`None`: it must exist).
    pub fn start_with(
        client: &Client,
        queue: &str,
        prefetch: u16,
        declare: Option<QueueOptions>,
    ) -> QueueBridge {
        let inner = Rc::new(Inner {
            client: client.clone(),
            queue: queue.to_string(),
            prefetch,
            declare,
            jobs: Queue::new(),
            counts: Rc::new(Counts::default()),
            channel: RefCell::new(None),
            last_error: RefCell::new(None),
            stopped: Cell::new(false),
            backoff: RefCell::new(Backoff::new(
                std::time::Duration::from_millis(100),
                std::time::Duration::from_secs(30),
            )),
        });
        let weak = Rc::downgrade(&inner);
        client.on_connected(move |_| {
            if let Some(inner) = weak.upgrade() {
                Inner::consume(&inner);
            }
        });
        let weak = Rc::downgrade(&inner);
        client.on_disconnected(move |_| {
            if let Some(inner) = weak.upgrade() {
                inner.channel_ended();
            }
        });
        // Already up: start now (otherwise `on_connected` will).
        if client.is_connected() {
            Inner::consume(&inner);
        }
        QueueBridge { inner }
    }

    /// The em queue the jobs arrive in: `pop` them, work, call
    /// [`Job::done`].
    pub fn jobs(&self) -> Queue<Job> {
        self.inner.jobs.clone()
    }

    /// Consuming now (a channel is open and the consumer registered).
    pub fn is_consuming(&self) -> bool {
        self.inner
            .channel
            .borrow()
            .as_ref()
            .is_some_and(Channel::is_open)
    }

    /// Messages received from the broker.
    pub fn delivered(&self) -> u64 {
        self.inner.counts.delivered.get()
    }

    /// Of those, how many came flagged redelivered (some consumer had
    /// them before and did not finish).
    pub fn redelivered(&self) -> u64 {
        self.inner.counts.redelivered.get()
    }

    /// Jobs acknowledged (`done`).
    pub fn acked(&self) -> u64 {
        self.inner.counts.acked.get()
    }

    /// Jobs given back (`retry`, or dropped without `done`).
    pub fn requeued(&self) -> u64 {
        self.inner.counts.requeued.get()
    }

    /// How many times it began consuming: 1 after the first start, one
    /// more each time it consumed again (after a reconnect, or after its
    /// channel alone ended).
    pub fn starts(&self) -> u64 {
        self.inner.counts.starts.get()
    }

    /// Jobs taken out of the em queue unworked because the connection
    /// dropped (the broker redelivers them).
    pub fn discarded(&self) -> u64 {
        self.inner.counts.discarded.get()
    }

    /// The last error setting up the consumer (a 406 on the queue's
    /// declaration, a 404 for a queue that must exist…), if any.
    pub fn last_error(&self) -> Option<AmqpError> {
        self.inner.last_error.borrow().clone()
    }

    /// Stops consuming: closes the bridge's channel (what it had not
    /// acknowledged goes back to the queue) and does not consume again
    /// after a reconnect.
    pub fn stop(&self) {
        self.inner.stop();
    }
}

impl Drop for QueueBridge {
    fn drop(&mut self) {
        self.inner.stop();
    }
}

impl Inner {
    /// The bridge's channel is gone: the jobs still waiting in the em
    /// queue cannot be acknowledged any more (the broker has them back).
    fn channel_ended(&self) {
        let channel = self.channel.borrow_mut().take();
        drop(channel);
        while let Some(job) = self.jobs.try_pop() {
            self.counts.discarded.set(self.counts.discarded.get() + 1);
            job.forget();
        }
    }

    fn stop(&self) {
        self.stopped.set(true);
        let channel = self.channel.borrow_mut().take();
        if let Some(ch) = channel {
            drop(ch.close());
        }
        while let Some(job) = self.jobs.try_pop() {
            job.forget();
        }
    }

    fn failed(weak: &Weak<Inner>, what: &str, e: &AmqpError) {
        if let Some(inner) = weak.upgrade() {
            tracing::warn!(queue = %inner.queue, error = %e, "amqp bridge: {what} failed");
            *inner.last_error.borrow_mut() = Some(e.clone());
        }
    }

    /// Opens a channel, sets the prefetch, declares, consumes: pipelined
    /// (the broker answers in order; a refusal closes the channel and
    /// fails the rest).
    fn consume(inner: &Rc<Inner>) {
        if inner.stopped.get() {
            return;
        }
        let weak = Rc::downgrade(inner);
        let on_error = weak.clone();
        inner
            .client
            .channel()
            .callback(move |ch| {
                let Some(inner) = weak.upgrade() else {
                    drop(ch.close());
                    return;
                };
                if inner.stopped.get() {
                    drop(ch.close());
                    return;
                }
                let w = weak.clone();
                ch.basic_qos(inner.prefetch)
                    .errback(move |e| Inner::failed(&w, "basic.qos", e));
                if let Some(options) = &inner.declare {
                    let w = weak.clone();
                    ch.queue_declare(&inner.queue, options.clone())
                        .errback(move |e| Inner::failed(&w, "queue.declare", e));
                }
                let jobs = inner.jobs.clone();
                let counts = inner.counts.clone();
                let w = weak.clone();
                let w2 = weak.clone();
                ch.basic_consume(&inner.queue, ConsumeOptions::default(), move |delivery| {
                    counts.delivered.set(counts.delivered.get() + 1);
                    if delivery.redelivered() {
                        counts.redelivered.set(counts.redelivered.get() + 1);
                    }
                    jobs.push(Job {
                        delivery: Some(delivery),
                        counts: counts.clone(),
                    });
                })
                .callback(move |tag| {
                    if let Some(inner) = w2.upgrade() {
                        tracing::debug!(queue = %inner.queue, consumer = %tag, "amqp bridge: consuming");
                        inner.last_error.borrow_mut().take();
                        inner.backoff.borrow_mut().reset();
                        inner.counts.starts.set(inner.counts.starts.get() + 1);
                    }
                })
                .errback(move |e| Inner::failed(&w, "basic.consume", e));
                // The channel alone may end (the broker closes it: a 406 on
                // a late ack, a consumer timeout) or the broker cancel the
                // consumer (the queue deleted): consume again after a
                // back-off while the connection stays up. A connection
                // that drops is handled by `on_connected`.
                let w = weak.clone();
                ch.on_closed(move |why| {
                    let Some(inner) = w.upgrade() else {
                        return;
                    };
                    inner.channel_ended();
                    if inner.stopped.get() || !inner.client.is_connected() {
                        return;
                    }
                    let delay = inner.backoff.borrow_mut().next_delay();
                    tracing::warn!(queue = %inner.queue, error = %why, retry_in = ?delay,
                        "amqp bridge: the channel ended; consuming again");
                    *inner.last_error.borrow_mut() = Some(why.clone());
                    let w = w.clone();
                    let timer = em_timers::add_timer(delay, move || {
                        if let Some(inner) = w.upgrade() {
                            if inner.client.is_connected() && inner.channel.borrow().is_none() {
                                Inner::consume(&inner);
                            }
                        }
                    });
                    if let Err(e) = timer {
                        tracing::warn!(queue = %inner.queue, error = %e, "amqp bridge: cannot retry");
                    }
                });
                let state = Rc::downgrade(&ch.state);
                ch.state.on_consumer_cancelled(move |tag| {
                    tracing::warn!(consumer = %tag, "amqp bridge: the broker cancelled the consumer");
                    if let Some(state) = state.upgrade() {
                        drop(state.close());
                    }
                });
                *inner.channel.borrow_mut() = Some(ch.clone());
            })
            .errback(move |e| Inner::failed(&on_error, "channel.open", e));
    }
}
