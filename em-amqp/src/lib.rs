//! RabbitMQ (AMQP 0.9.1) for em — work in progress (issue 20): the frame
//! codec on em's connections, through the amq-protocol crate.

#![deny(missing_docs)]

mod codec;

pub use codec::AmqpCodec;
