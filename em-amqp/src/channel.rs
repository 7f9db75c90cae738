//! `Channel`: one AMQP channel: declare, publish (with confirms), consume,
//! and the state that routes the broker's frames to them.

use std::cell::{Cell, RefCell};
use std::collections::{BTreeMap, HashMap, HashSet, VecDeque};
use std::rc::{Rc, Weak};

use amq_protocol::frame::{AMQPContentHeader, AMQPFrame};
use amq_protocol::protocol::{
    basic, channel, confirm, exchange, queue, AMQPClass, BasicProperties,
};
use amq_protocol::types::{FieldTable, ShortString};
use bytes::Bytes;

use crate::client::{Owner, Shared};
use crate::delivery::{Delivery, Settle};
use crate::error::{AmqpError, AmqpResult, Reply};

/// Where a channel stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    Opening,
    Open,
    Closing,
    Closed,
}

type Answer = Box<dyn FnOnce(AmqpResult<AMQPClass>)>;
type Consumer = Rc<RefCell<dyn FnMut(Delivery)>>;
type OnEnd = Box<dyn FnOnce(&AmqpError)>;
type OnCancel = Box<dyn FnMut(&str)>;

/// A message arriving in frames: the method, then the header, then bodies.
struct Incoming {
    method: Arrival,
    properties: Option<BasicProperties>,
    size: u64,
    body: Vec<u8>,
}

enum Arrival {
    Deliver(basic::Deliver),
    Return(basic::Return),
}

/// A channel's state, held by the connection (to route frames) and by the
/// program's [`Channel`] handles.
pub(crate) struct ChannelState {
    id: u16,
    generation: u64,
    shared: Weak<Shared>,
    phase: Cell<Phase>,
    ended: RefCell<Option<AmqpError>>,
    /// Replies due from the broker, in order (AMQP answers a channel's
    /// synchronous methods in the order they were sent).
    rpc: RefCell<VecDeque<Answer>>,
    confirming: Cell<bool>,
    next_seq: Cell<u64>,
    unconfirmed: RefCell<BTreeMap<u64, Reply<()>>>,
    consumers: RefCell<HashMap<ShortString, Consumer>>,
    /// Consumers registered with `no_ack`: their deliveries are never
    /// settled here (the broker would refuse it, closing the channel).
    no_ack: RefCell<HashSet<ShortString>>,
    on_end: RefCell<Vec<OnEnd>>,
    on_cancel: RefCell<Vec<OnCancel>>,
    incoming: RefCell<Option<Incoming>>,
    close_reply: RefCell<Option<Reply<()>>>,
    returned: Cell<u64>,
}

/// An AMQP channel on a [`Client`](crate::Client)'s connection: declare
/// exchanges and queues, publish (with confirms after
/// [`confirm_select`](Channel::confirm_select)), consume with acks and a
/// prefetch ([`basic_qos`](Channel::basic_qos)).
///
/// Every call sends at once and returns a [`Reply`]: `.await` it (under
/// `em::spawn`) or give it callbacks; calls made one after another are
/// pipelined, and the broker answers them in order. A cheap `Clone`
/// handle, `!Send`, reactor thread only. It keeps the connection open
/// while it lives.
///
/// A channel belongs to one connection: when the connection drops, the
/// channel ends (its pending calls fail with `is_disconnected()`, its
/// consumers stop, unacknowledged deliveries go back to their queues at the
/// broker); open a new one from [`Client::on_connected`](crate::Client::on_connected).
/// The broker closes a channel on a failed call (404 for a missing queue,
/// 406 for a redeclare with other properties): that call and every later
/// one fail with `is_channel_closed()`; [`on_closed`](Channel::on_closed)
/// tells when and why a channel ended.
///
/// A channel stays open until it is closed ([`close`](Channel::close), the
/// broker, or its connection): dropping its handles does not close it (a
/// consumer keeps consuming), so close the channels you open per task. A
/// consumer callback that captures its own `Channel` (to publish replies)
/// keeps the connection open until that channel is closed.
#[derive(Clone)]
pub struct Channel {
    pub(crate) state: Rc<ChannelState>,
    /// Keeps the connection open while the channel handle lives.
    pub(crate) _owner: Rc<Owner>,
}

impl std::fmt::Debug for Channel {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Channel")
            .field("id", &self.state.id)
            .field("phase", &self.state.phase.get())
            .finish()
    }
}

/// How [`Channel::queue_declare`] declares: AMQP's flags and arguments
/// (`x-message-ttl`, `x-max-length`, `x-queue-type`…).
#[derive(Debug, Clone, Default)]
pub struct QueueOptions {
    /// Only check that it exists (404 closes the channel if not).
    pub passive: bool,
    /// Survives a broker restart (its persistent messages too).
    pub durable: bool,
    /// Only this connection may use it; deleted when it closes.
    pub exclusive: bool,
    /// Deleted when its last consumer goes.
    pub auto_delete: bool,
    /// Extra arguments (`x-…`).
    pub arguments: FieldTable,
}

/// How [`Channel::exchange_declare`] declares.
#[derive(Debug, Clone, Default)]
pub struct ExchangeOptions {
    /// Only check that it exists.
    pub passive: bool,
    /// Survives a broker restart.
    pub durable: bool,
    /// Deleted when its last binding goes.
    pub auto_delete: bool,
    /// Not published to directly, only through bindings.
    pub internal: bool,
    /// Extra arguments (`alternate-exchange`…).
    pub arguments: FieldTable,
}

/// How [`Channel::basic_consume`] consumes.
#[derive(Debug, Clone, Default)]
pub struct ConsumeOptions {
    /// The consumer's tag; the broker makes one up when empty.
    pub consumer_tag: String,
    /// The broker forgets each message once sent (no acks: a crash loses
    /// what was in flight). Off by default: acknowledge each
    /// [`Delivery`].
    pub no_ack: bool,
    /// The only consumer of the queue.
    pub exclusive: bool,
    /// Extra arguments (`x-priority`…).
    pub arguments: FieldTable,
}

/// What [`Channel::queue_declare`] answers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QueueInfo {
    /// The queue's name (made up by the broker if declared with `""`).
    pub name: String,
    /// Messages ready in it.
    pub message_count: u32,
    /// Consumers on it.
    pub consumer_count: u32,
}

fn short(what: &str, s: &str) -> AmqpResult<ShortString> {
    ShortString::try_new(s).map_err(|e| AmqpError::invalid(format!("{what} {s:?}: {e}")))
}

impl Channel {
    /// The channel's number on its connection.
    pub fn id(&self) -> u16 {
        self.state.id
    }

    /// Open: the broker accepted it, and neither side closed it, and its
    /// connection is the open one.
    pub fn is_open(&self) -> bool {
        self.state.phase.get() == Phase::Open
            && self
                .state
                .shared
                .upgrade()
                .is_some_and(|s| s.is_current(self.state.generation))
    }

    /// Why it ended (closed by the broker, by this program, or its
    /// connection dropped); `None` while open.
    pub fn closed_reason(&self) -> Option<AmqpError> {
        self.state.ended.borrow().clone()
    }

    /// Calls `f` once with the reason when the channel ends: closed by this
    /// program (`is_closed()`), by the broker (`is_channel_closed()`, with
    /// its code), or with its connection (`is_disconnected()`). At once if
    /// it has ended already. Reactor thread.
    pub fn on_closed(&self, f: impl FnOnce(&AmqpError) + 'static) {
        let ended = self.state.ended.borrow().clone();
        match ended {
            Some(why) => f(&why),
            None => self.state.on_end.borrow_mut().push(Box::new(f)),
        }
    }

    /// Messages the broker returned as unroutable (published with no queue
    /// to route them to; logged).
    pub fn returned(&self) -> u64 {
        self.state.returned.get()
    }

    /// Declares an exchange of `kind` (`"direct"`, `"fanout"`, `"topic"`,
    /// `"headers"`).
    pub fn exchange_declare(&self, name: &str, kind: &str, options: ExchangeOptions) -> Reply<()> {
        let args = (|| {
            Ok(exchange::Declare {
                exchange: short("exchange", name)?,
                kind: short("exchange kind", kind)?,
                passive: options.passive,
                durable: options.durable,
                auto_delete: options.auto_delete,
                internal: options.internal,
                nowait: false,
                arguments: options.arguments,
            })
        })();
        self.state.call(
            args.map(|d| AMQPClass::Exchange(exchange::AMQPMethod::Declare(d))),
            |m| match m {
                AMQPClass::Exchange(exchange::AMQPMethod::DeclareOk(_)) => Some(()),
                _ => None,
            },
        )
    }

    /// Declares a queue (`""`: the broker names it; see the answer).
    pub fn queue_declare(&self, name: &str, options: QueueOptions) -> Reply<QueueInfo> {
        let args = short("queue", name).map(|queue| {
            AMQPClass::Queue(queue::AMQPMethod::Declare(queue::Declare {
                queue,
                passive: options.passive,
                durable: options.durable,
                exclusive: options.exclusive,
                auto_delete: options.auto_delete,
                nowait: false,
                arguments: options.arguments,
            }))
        });
        self.state.call(args, |m| match m {
            AMQPClass::Queue(queue::AMQPMethod::DeclareOk(ok)) => Some(QueueInfo {
                name: ok.queue.to_string(),
                message_count: ok.message_count,
                consumer_count: ok.consumer_count,
            }),
            _ => None,
        })
    }

    /// Binds `queue` to `exchange` with `routing_key`.
    pub fn queue_bind(&self, queue: &str, exchange: &str, routing_key: &str) -> Reply<()> {
        let args = (|| {
            Ok(AMQPClass::Queue(queue::AMQPMethod::Bind(queue::Bind {
                queue: short("queue", queue)?,
                exchange: short("exchange", exchange)?,
                routing_key: short("routing key", routing_key)?,
                nowait: false,
                arguments: FieldTable::default(),
            })))
        })();
        self.state.call(args, |m| match m {
            AMQPClass::Queue(queue::AMQPMethod::BindOk(_)) => Some(()),
            _ => None,
        })
    }

    /// Removes every ready message from `queue`; answers how many.
    pub fn queue_purge(&self, queue: &str) -> Reply<u32> {
        let args = short("queue", queue).map(|queue| {
            AMQPClass::Queue(queue::AMQPMethod::Purge(queue::Purge {
                queue,
                nowait: false,
            }))
        });
        self.state.call(args, |m| match m {
            AMQPClass::Queue(queue::AMQPMethod::PurgeOk(ok)) => Some(ok.message_count),
            _ => None,
        })
    }

    /// Deletes `queue`; answers how many messages it held.
    pub fn queue_delete(&self, queue: &str) -> Reply<u32> {
        let args = short("queue", queue).map(|queue| {
            AMQPClass::Queue(queue::AMQPMethod::Delete(queue::Delete {
                queue,
                if_unused: false,
                if_empty: false,
                nowait: false,
            }))
        });
        self.state.call(args, |m| match m {
            AMQPClass::Queue(queue::AMQPMethod::DeleteOk(ok)) => Some(ok.message_count),
            _ => None,
        })
    }

    /// The prefetch (`Basic.Qos`): at most `prefetch_count` unacknowledged
    /// deliveries at once per consumer on this channel (0: no limit).
    pub fn basic_qos(&self, prefetch_count: u16) -> Reply<()> {
        self.state.call(
            Ok(AMQPClass::Basic(basic::AMQPMethod::Qos(basic::Qos {
                prefetch_count,
                global: false,
            }))),
            |m| match m {
                AMQPClass::Basic(basic::AMQPMethod::QosOk(_)) => Some(()),
                _ => None,
            },
        )
    }

    /// Publisher confirms (`Confirm.Select`): from now on each
    /// [`basic_publish`](Channel::basic_publish)'s reply succeeds when the
    /// broker has taken the message (queued it; for a persistent message
    /// to a durable queue, written it to disk) and fails with
    /// `is_nacked()` if it refused it.
    pub fn confirm_select(&self) -> Reply<()> {
        let reply = self.state.call(
            Ok(AMQPClass::Confirm(confirm::AMQPMethod::Select(
                confirm::Select { nowait: false },
            ))),
            |m| match m {
                AMQPClass::Confirm(confirm::AMQPMethod::SelectOk(_)) => Some(()),
                _ => None,
            },
        );
        // From the moment it is sent: publishes sent after it are numbered
        // (from 1), whether or not Select-Ok has come yet.
        if !reply.is_failed() && !self.state.confirming.replace(true) {
            self.state.next_seq.set(1);
        }
        reply
    }

    /// Publishes `body` to `exchange` (`""`: the default exchange, which
    /// routes to the queue named `routing_key`). Without confirms the
    /// reply succeeds once the message is queued for the socket; with
    /// [`confirm_select`](Channel::confirm_select), once the broker
    /// confirms it (`is_nacked()` if it refuses it, `is_disconnected()` if
    /// the connection drops first: then it may or may not have been
    /// queued). A message with no queue to go to is dropped by the broker
    /// (and confirmed).
    pub fn basic_publish(
        &self,
        exchange: &str,
        routing_key: &str,
        body: impl AsRef<[u8]>,
        properties: BasicProperties,
    ) -> Reply<()> {
        let reply = Reply::new();
        let state = &self.state;
        let publish = match (
            short("exchange", exchange),
            short("routing key", routing_key),
        ) {
            (Ok(exchange), Ok(routing_key)) => basic::Publish {
                exchange,
                routing_key,
                mandatory: false,
                immediate: false,
            },
            (Err(e), _) | (_, Err(e)) => {
                reply.fail(e);
                return reply;
            }
        };
        let Some(shared) = state.usable().map_err(|e| reply.fail(e)).ok() else {
            return reply;
        };
        let body = body.as_ref();
        let chunk = (shared.frame_max() as usize).saturating_sub(8).max(1);
        let id = state.id;
        let frames = std::iter::once(AMQPFrame::Method(
            id,
            AMQPClass::Basic(basic::AMQPMethod::Publish(publish)),
        ))
        .chain(std::iter::once(AMQPFrame::Header(
            id,
            AMQPContentHeader {
                class_id: 60,
                body_size: body.len() as u64,
                properties,
            },
        )))
        .chain(body.chunks(chunk).map(|c| AMQPFrame::Body(id, c.to_vec())));
        if let Err(e) = shared.send_all(state.generation, frames) {
            reply.fail(e);
            return reply;
        }
        if state.confirming.get() {
            let seq = state.next_seq.get();
            state.next_seq.set(seq + 1);
            state.unconfirmed.borrow_mut().insert(seq, reply.clone());
        } else {
            reply.succeed(());
        }
        reply
    }

    /// Publishes with confirms still due on this channel: how many.
    pub fn unconfirmed(&self) -> usize {
        self.state.unconfirmed.borrow().len()
    }

    /// Consumes from `queue`: `on_delivery` is called with each message,
    /// on the reactor thread, in the order the broker sends them.
    /// Acknowledge each [`Delivery`] (unless `no_ack`); the broker sends at
    /// most the [`basic_qos`](Channel::basic_qos) prefetch unacknowledged.
    /// The reply is the consumer's tag. A panic in `on_delivery` is
    /// contained: em reports it (the error handler, or an error log), the
    /// message goes back to the queue unless it was settled before the
    /// panic, and the channel and the consumer carry on.
    pub fn basic_consume(
        &self,
        queue: &str,
        options: ConsumeOptions,
        on_delivery: impl FnMut(Delivery) + 'static,
    ) -> Reply<String> {
        let args = (|| {
            Ok(AMQPClass::Basic(basic::AMQPMethod::Consume(
                basic::Consume {
                    queue: short("queue", queue)?,
                    consumer_tag: short("consumer tag", &options.consumer_tag)?,
                    no_local: false,
                    no_ack: options.no_ack,
                    exclusive: options.exclusive,
                    nowait: false,
                    arguments: options.arguments,
                },
            )))
        })();
        let no_ack = options.no_ack;
        let consumer: Consumer = Rc::new(RefCell::new(on_delivery));
        let weak = Rc::downgrade(&self.state);
        self.state.call(args, move |m| match m {
            AMQPClass::Basic(basic::AMQPMethod::ConsumeOk(ok)) => {
                // Registered before the next frame is read: deliveries
                // follow Consume-Ok.
                if let Some(state) = weak.upgrade() {
                    if no_ack {
                        state.no_ack.borrow_mut().insert(ok.consumer_tag.clone());
                    }
                    state
                        .consumers
                        .borrow_mut()
                        .insert(ok.consumer_tag.clone(), consumer);
                }
                Some(ok.consumer_tag.to_string())
            }
            _ => None,
        })
    }

    /// Stops the consumer `consumer_tag` (`Basic.Cancel`). Deliveries
    /// already sent still arrive before the reply; those not acknowledged
    /// go back to the queue when the channel closes.
    pub fn basic_cancel(&self, consumer_tag: &str) -> Reply<()> {
        let args = short("consumer tag", consumer_tag).map(|consumer_tag| {
            AMQPClass::Basic(basic::AMQPMethod::Cancel(basic::Cancel {
                consumer_tag,
                nowait: false,
            }))
        });
        let weak = Rc::downgrade(&self.state);
        self.state.call(args, move |m| match m {
            AMQPClass::Basic(basic::AMQPMethod::CancelOk(ok)) => {
                if let Some(state) = weak.upgrade() {
                    state.consumers.borrow_mut().remove(&ok.consumer_tag);
                }
                Some(())
            }
            _ => None,
        })
    }

    /// Closes the channel (`Channel.Close`): its consumers stop, its
    /// unacknowledged deliveries go back to their queues, calls still due
    /// fail with `is_closed()`. The reply succeeds at the broker's
    /// `Close-Ok`.
    pub fn close(&self) -> Reply<()> {
        self.state.close()
    }
}

impl ChannelState {
    pub(crate) fn new(id: u16, generation: u64, shared: Weak<Shared>) -> Rc<ChannelState> {
        Rc::new(ChannelState {
            id,
            generation,
            shared,
            phase: Cell::new(Phase::Opening),
            ended: RefCell::new(None),
            rpc: RefCell::new(VecDeque::new()),
            confirming: Cell::new(false),
            next_seq: Cell::new(1),
            unconfirmed: RefCell::new(BTreeMap::new()),
            consumers: RefCell::new(HashMap::new()),
            no_ack: RefCell::new(HashSet::new()),
            on_end: RefCell::new(Vec::new()),
            on_cancel: RefCell::new(Vec::new()),
            incoming: RefCell::new(None),
            close_reply: RefCell::new(None),
            returned: Cell::new(0),
        })
    }

    /// The connection, if this channel may send on it now.
    fn usable(&self) -> AmqpResult<Rc<Shared>> {
        if let Some(e) = self.ended.borrow().as_ref() {
            return Err(e.clone());
        }
        if self.phase.get() == Phase::Closing {
            return Err(AmqpError::closed("channel"));
        }
        let shared = self
            .shared
            .upgrade()
            .ok_or_else(|| AmqpError::closed("client"))?;
        if !shared.is_current(self.generation) {
            return Err(shared.down_error());
        }
        Ok(shared)
    }

    /// Sends `Channel.Open`; `reply` gets `channel` at `Open-Ok`.
    pub(crate) fn open(self: &Rc<Self>, channel: Channel, reply: Reply<Channel>) {
        let weak = Rc::downgrade(self);
        self.call(
            Ok(AMQPClass::Channel(channel::AMQPMethod::Open(
                channel::Open {},
            ))),
            move |m| match m {
                AMQPClass::Channel(channel::AMQPMethod::OpenOk(_)) => {
                    if let Some(state) = weak.upgrade() {
                        state.phase.set(Phase::Open);
                    }
                    Some(())
                }
                _ => None,
            },
        )
        .completion(move |result| match result {
            Ok(()) => {
                reply.succeed(channel);
            }
            Err(e) => {
                reply.fail(e.clone());
            }
        });
    }

    /// Sends a synchronous method and returns the reply, made by `answer`
    /// from the broker's answer (`None`: not the answer expected, a
    /// protocol error).
    fn call<T: 'static>(
        &self,
        method: AmqpResult<AMQPClass>,
        answer: impl FnOnce(AMQPClass) -> Option<T> + 'static,
    ) -> Reply<T> {
        let reply = Reply::new();
        let sent = method.and_then(|m| {
            let shared = self.usable()?;
            shared.send(self.generation, AMQPFrame::Method(self.id, m))
        });
        if let Err(e) = sent {
            reply.fail(e);
            return reply;
        }
        let r = reply.clone();
        self.rpc
            .borrow_mut()
            .push_back(Box::new(move |result| match result {
                Ok(m) => {
                    let text = format!("{m:?}");
                    match answer(m) {
                        Some(v) => {
                            r.succeed(v);
                        }
                        None => {
                            r.fail(AmqpError::protocol(format!("unexpected answer: {text}")));
                        }
                    }
                }
                Err(e) => {
                    r.fail(e);
                }
            }));
        reply
    }

    fn send(&self, method: AMQPClass) -> AmqpResult<()> {
        let shared = self.usable()?;
        shared.send(self.generation, AMQPFrame::Method(self.id, method))
    }

    /// Sends on this channel's connection whatever the channel's state
    /// (the close handshake).
    fn send_raw(&self, method: AMQPClass) -> AmqpResult<()> {
        let shared = self
            .shared
            .upgrade()
            .ok_or_else(|| AmqpError::closed("client"))?;
        shared.send(self.generation, AMQPFrame::Method(self.id, method))
    }

    /// Calls `f` with the tag when the broker cancels a consumer of this
    /// channel (its queue was deleted).
    pub(crate) fn on_consumer_cancelled(&self, f: impl FnMut(&str) + 'static) {
        self.on_cancel.borrow_mut().push(Box::new(f));
    }

    pub(crate) fn close(self: &Rc<Self>) -> Reply<()> {
        if let Some(r) = self.close_reply.borrow().as_ref() {
            return r.clone();
        }
        let reply = Reply::new();
        if self.ended.borrow().is_some() {
            reply.succeed(());
            return reply;
        }
        let sent = self.send(AMQPClass::Channel(channel::AMQPMethod::Close(
            channel::Close {
                reply_code: 200,
                reply_text: "bye".into(),
                class_id: 0,
                method_id: 0,
            },
        )));
        match sent {
            Ok(()) => {
                self.phase.set(Phase::Closing);
                *self.close_reply.borrow_mut() = Some(reply.clone());
            }
            Err(_) => {
                reply.succeed(());
            }
        }
        reply
    }

    /// A method frame for this channel.
    pub(crate) fn method(self: &Rc<Self>, method: AMQPClass) -> AmqpResult<()> {
        use basic::AMQPMethod as B;
        match method {
            AMQPClass::Basic(B::Deliver(d)) => self.start_content(Arrival::Deliver(d)),
            AMQPClass::Basic(B::Return(r)) => self.start_content(Arrival::Return(r)),
            AMQPClass::Basic(B::Ack(ack)) => {
                self.confirmed(ack.delivery_tag, ack.multiple, true);
                Ok(())
            }
            AMQPClass::Basic(B::Nack(nack)) => {
                self.confirmed(nack.delivery_tag, nack.multiple, false);
                Ok(())
            }
            AMQPClass::Basic(B::Cancel(cancel)) => {
                // The broker cancelled a consumer (its queue was deleted).
                tracing::warn!(channel = self.id, consumer = %cancel.consumer_tag,
                    "amqp: the broker cancelled a consumer");
                self.consumers.borrow_mut().remove(&cancel.consumer_tag);
                let mut listeners = std::mem::take(&mut *self.on_cancel.borrow_mut());
                for f in &mut listeners {
                    f(cancel.consumer_tag.as_str());
                }
                self.on_cancel.borrow_mut().append(&mut listeners);
                if !cancel.nowait {
                    let _ = self.send(AMQPClass::Basic(B::CancelOk(basic::CancelOk {
                        consumer_tag: cancel.consumer_tag,
                    })));
                }
                Ok(())
            }
            AMQPClass::Channel(channel::AMQPMethod::Close(close)) => {
                let e = AmqpError::channel_closed(close.reply_code, close.reply_text.as_str());
                tracing::warn!(channel = self.id, error = %e, "amqp: the broker closed a channel");
                // Answered even while our own Close is out (the two
                // crossed): `send_raw`, as the channel is closing.
                let _ = self.send_raw(AMQPClass::Channel(channel::AMQPMethod::CloseOk(
                    channel::CloseOk {},
                )));
                // If ours crossed it, the broker still answers ours: keep
                // the number until that Close-Ok.
                let ours_is_out = self.phase.get() == Phase::Closing;
                self.finish_with(e, !ours_is_out);
                Ok(())
            }
            AMQPClass::Channel(channel::AMQPMethod::CloseOk(_))
                if matches!(self.phase.get(), Phase::Closing | Phase::Closed) =>
            {
                self.finish_with(AmqpError::closed("channel"), true);
                Ok(())
            }
            AMQPClass::Channel(channel::AMQPMethod::Flow(flow)) => self.send(AMQPClass::Channel(
                channel::AMQPMethod::FlowOk(channel::FlowOk {
                    active: flow.active,
                }),
            )),
            answer => {
                let next = self.rpc.borrow_mut().pop_front();
                match next {
                    Some(f) => {
                        f(Ok(answer));
                        Ok(())
                    }
                    None => Err(AmqpError::protocol(format!(
                        "an answer nobody asked for on channel {}: {answer:?}",
                        self.id
                    ))),
                }
            }
        }
    }

    fn start_content(&self, method: Arrival) -> AmqpResult<()> {
        let mut incoming = self.incoming.borrow_mut();
        if incoming.is_some() {
            return Err(AmqpError::protocol(format!(
                "a new message on channel {} before the last one's content",
                self.id
            )));
        }
        *incoming = Some(Incoming {
            method,
            properties: None,
            size: 0,
            body: Vec::new(),
        });
        Ok(())
    }

    /// A content header frame for this channel.
    pub(crate) fn header(self: &Rc<Self>, header: AMQPContentHeader) -> AmqpResult<()> {
        {
            let mut slot = self.incoming.borrow_mut();
            let Some(incoming) = slot.as_mut().filter(|i| i.properties.is_none()) else {
                return Err(AmqpError::protocol(format!(
                    "a content header on channel {} with no message started",
                    self.id
                )));
            };
            incoming.properties = Some(header.properties);
            incoming.size = header.body_size;
            incoming.body = Vec::with_capacity(header.body_size.min(1 << 20) as usize);
        }
        self.complete_if_whole();
        Ok(())
    }

    /// A content body frame for this channel.
    pub(crate) fn body(self: &Rc<Self>, body: Vec<u8>) -> AmqpResult<()> {
        {
            let mut slot = self.incoming.borrow_mut();
            let Some(incoming) = slot.as_mut().filter(|i| i.properties.is_some()) else {
                return Err(AmqpError::protocol(format!(
                    "a content body on channel {} with no header before it",
                    self.id
                )));
            };
            if incoming.body.is_empty() {
                incoming.body = body;
            } else {
                incoming.body.extend_from_slice(&body);
            }
            if incoming.body.len() as u64 > incoming.size {
                return Err(AmqpError::protocol(format!(
                    "a message on channel {} longer than its header said",
                    self.id
                )));
            }
        }
        self.complete_if_whole();
        Ok(())
    }

    fn complete_if_whole(self: &Rc<Self>) {
        let whole = self
            .incoming
            .borrow()
            .as_ref()
            .is_some_and(|i| i.properties.is_some() && i.body.len() as u64 == i.size);
        if !whole {
            return;
        }
        let Some(incoming) = self.incoming.borrow_mut().take() else {
            return;
        };
        let properties = incoming.properties.unwrap_or_default();
        let body = Bytes::from(incoming.body);
        match incoming.method {
            Arrival::Deliver(d) => {
                let consumer = self.consumers.borrow().get(&d.consumer_tag).cloned();
                let auto_acked = {
                    let no_ack = self.no_ack.borrow();
                    !no_ack.is_empty() && no_ack.contains(&d.consumer_tag)
                };
                let delivery =
                    Delivery::new(d, properties, body, Rc::downgrade(self), self.generation);
                match consumer {
                    // No borrow of the channel held: the callback may
                    // publish, ack, cancel. A panic in it is contained and
                    // reported by em; the message goes back to the queue
                    // unless the callback settled it first.
                    Some(c) => {
                        let settled = delivery.settled_flag();
                        let tag = delivery.delivery_tag();
                        let caught = em_core::extension::catch("em_amqp consumer callback", || {
                            (c.borrow_mut())(delivery)
                        });
                        if caught.is_err() && !auto_acked && !settled.replace(true) {
                            let _ =
                                self.settle(self.generation, tag, Settle::Nack { requeue: true });
                        }
                    }
                    None => {
                        // Cancelled meanwhile: back to the queue (unless the
                        // broker counts it acknowledged already).
                        if !auto_acked {
                            let _ = delivery.reject(true);
                        }
                    }
                }
            }
            Arrival::Return(r) => {
                self.returned.set(self.returned.get() + 1);
                tracing::warn!(channel = self.id, code = r.reply_code, text = %r.reply_text,
                    exchange = %r.exchange, routing_key = %r.routing_key,
                    "amqp: the broker returned a message");
            }
        }
    }

    /// Settles the delivery `tag` of this channel.
    pub(crate) fn settle(&self, generation: u64, tag: u64, how: Settle) -> AmqpResult<()> {
        if generation != self.generation || self.phase.get() != Phase::Open {
            return Err(self.ended.borrow().clone().unwrap_or_else(|| {
                AmqpError::disconnected("the channel of this delivery is gone")
            }));
        }
        let method = match how {
            Settle::Ack => basic::AMQPMethod::Ack(basic::Ack {
                delivery_tag: tag,
                multiple: false,
            }),
            Settle::Nack { requeue } => basic::AMQPMethod::Nack(basic::Nack {
                delivery_tag: tag,
                multiple: false,
                requeue,
            }),
            Settle::Reject { requeue } => basic::AMQPMethod::Reject(basic::Reject {
                delivery_tag: tag,
                requeue,
            }),
        };
        self.send(AMQPClass::Basic(method))
    }

    fn confirmed(&self, tag: u64, multiple: bool, ack: bool) {
        let settled: Vec<Reply<()>> = {
            let mut unconfirmed = self.unconfirmed.borrow_mut();
            if multiple {
                let rest = match tag.checked_add(1) {
                    Some(next) => unconfirmed.split_off(&next),
                    None => BTreeMap::new(),
                };
                std::mem::replace(&mut *unconfirmed, rest)
                    .into_values()
                    .collect()
            } else {
                unconfirmed.remove(&tag).into_iter().collect()
            }
        };
        for r in settled {
            if ack {
                r.succeed(());
            } else {
                r.fail(AmqpError::nacked());
            }
        }
    }

    /// The channel ended (closed by either side, or its connection went):
    /// everything waiting on it fails with `why`.
    pub(crate) fn ended(&self, why: AmqpError) {
        self.finish_with(why, false);
    }

    fn finish_with(&self, why: AmqpError, forget: bool) {
        if forget {
            if let Some(shared) = self.shared.upgrade() {
                shared.forget_channel(self.id);
            }
        }
        if self.ended.borrow().is_some() {
            return;
        }
        let closing = self.phase.replace(Phase::Closed) == Phase::Closing;
        *self.ended.borrow_mut() = Some(why.clone());
        self.consumers.borrow_mut().clear();
        self.on_cancel.borrow_mut().clear();
        self.incoming.borrow_mut().take();
        let rpc = std::mem::take(&mut *self.rpc.borrow_mut());
        for f in rpc {
            f(Err(why.clone()));
        }
        let unconfirmed = std::mem::take(&mut *self.unconfirmed.borrow_mut());
        for r in unconfirmed.into_values() {
            r.fail(why.clone());
        }
        let close_reply = self.close_reply.borrow_mut().take();
        if let Some(r) = close_reply {
            if closing {
                r.succeed(());
            } else {
                r.fail(why.clone());
            }
        }
        let on_end = std::mem::take(&mut *self.on_end.borrow_mut());
        for f in on_end {
            f(&why);
        }
    }
}
