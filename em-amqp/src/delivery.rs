//! `Delivery`: one message from a consumer, and its acknowledgement.

use std::cell::Cell;
use std::rc::{Rc, Weak};

use amq_protocol::protocol::{basic, BasicProperties};
use bytes::Bytes;

use crate::channel::ChannelState;
use crate::error::{AmqpError, AmqpResult};

/// How a delivery is settled.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Settle {
    Ack,
    Nack { requeue: bool },
    Reject { requeue: bool },
}

/// One message delivered to a consumer
/// ([`Channel::basic_consume`](crate::Channel::basic_consume)): its body,
/// properties and routing, and the calls that settle it —
/// [`ack`](Delivery::ack) when done, [`nack`](Delivery::nack) or
/// [`reject`](Delivery::reject) to give it back or drop it.
///
/// Settling goes over the channel it came on. If that channel or its
/// connection has ended meanwhile, settling fails with `is_disconnected()`
/// (or the channel's error) and the broker has already put the message back
/// in its queue: it comes again, flagged [`redelivered`](Delivery::redelivered)
/// — delivery is at least once. `!Send`, reactor thread.
pub struct Delivery {
    deliver: basic::Deliver,
    properties: BasicProperties,
    body: Bytes,
    channel: Weak<ChannelState>,
    generation: u64,
    settled: Rc<Cell<bool>>,
}

impl std::fmt::Debug for Delivery {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Delivery")
            .field("delivery_tag", &self.deliver.delivery_tag)
            .field("redelivered", &self.deliver.redelivered)
            .field("exchange", &self.deliver.exchange.as_str())
            .field("routing_key", &self.deliver.routing_key.as_str())
            .field("body_len", &self.body.len())
            .finish()
    }
}

impl Delivery {
    pub(crate) fn new(
        deliver: basic::Deliver,
        properties: BasicProperties,
        body: Bytes,
        channel: Weak<ChannelState>,
        generation: u64,
    ) -> Delivery {
        Delivery {
            deliver,
            properties,
            body,
            channel,
            generation,
            settled: Rc::new(Cell::new(false)),
        }
    }

    /// Shared with the dispatcher, which gives the message back if the
    /// consumer's callback panics before settling it.
    pub(crate) fn settled_flag(&self) -> Rc<Cell<bool>> {
        self.settled.clone()
    }

    /// The message's body.
    pub fn body(&self) -> &Bytes {
        &self.body
    }

    /// The message's properties (content type, headers, delivery mode,
    /// message id…).
    pub fn properties(&self) -> &BasicProperties {
        &self.properties
    }

    /// The exchange it was published to (`""`: the default exchange).
    pub fn exchange(&self) -> &str {
        self.deliver.exchange.as_str()
    }

    /// The routing key it was published with.
    pub fn routing_key(&self) -> &str {
        self.deliver.routing_key.as_str()
    }

    /// The consumer it was delivered to.
    pub fn consumer_tag(&self) -> &str {
        self.deliver.consumer_tag.as_str()
    }

    /// The broker's number for it on its channel.
    pub fn delivery_tag(&self) -> u64 {
        self.deliver.delivery_tag
    }

    /// It was delivered before and not acknowledged then (a consumer or
    /// its connection went away, or it was given back).
    pub fn redelivered(&self) -> bool {
        self.deliver.redelivered
    }

    /// Already acknowledged, given back or rejected (by this handle).
    pub fn is_settled(&self) -> bool {
        self.settled.get()
    }

    /// Acknowledges it (`Basic.Ack`): the broker forgets it.
    pub fn ack(&self) -> AmqpResult<()> {
        self.settle(Settle::Ack)
    }

    /// Gives it back (`requeue`) or drops it (`Basic.Nack`; to a
    /// dead-letter exchange if the queue has one).
    pub fn nack(&self, requeue: bool) -> AmqpResult<()> {
        self.settle(Settle::Nack { requeue })
    }

    /// `Basic.Reject`: as [`nack`](Delivery::nack), in AMQP's original
    /// form.
    pub fn reject(&self, requeue: bool) -> AmqpResult<()> {
        self.settle(Settle::Reject { requeue })
    }

    fn settle(&self, how: Settle) -> AmqpResult<()> {
        if self.settled.get() {
            return Err(AmqpError::invalid(format!(
                "delivery {} was already settled",
                self.deliver.delivery_tag
            )));
        }
        let channel = self
            .channel
            .upgrade()
            .ok_or_else(|| AmqpError::disconnected("the channel of this delivery is gone"))?;
        channel.settle(self.generation, self.deliver.delivery_tag, how)?;
        self.settled.set(true);
        Ok(())
    }
}
