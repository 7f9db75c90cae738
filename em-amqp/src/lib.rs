//! RabbitMQ (AMQP 0.9.1) for em: publish with confirms, consume with
//! acknowledgements and a prefetch, and a bridge that feeds an em `Queue`
//! from a RabbitMQ queue — the `amqp` gem of EventMachine, on em's reactor.
//!
//! ```no_run
//! use em_amqp::{BasicProperties, Client, QueueBridge, QueueOptions};
//!
//! em::run(|| {
//!     let client = Client::connect("amqp://guest:guest@127.0.0.1:5672/%2f")?;
//!     // A producer: a durable queue, publisher confirms, one job.
//!     client.channel().callback(|ch| {
//!         ch.queue_declare("jobs", QueueOptions { durable: true, ..Default::default() });
//!         ch.confirm_select();
//!         ch.basic_publish("", "jobs", "resize photo 7", BasicProperties::default().with_delivery_mode(2))
//!             .callback(|_| println!("the broker has it"));
//!     });
//!     // A consumer: at most 10 jobs in flight, acknowledged once done.
//!     let bridge = QueueBridge::start(&client, "jobs", 10);
//!     let jobs = bridge.jobs();
//!     jobs.pop(move |job| {
//!         println!("working on {:?}", job.body());
//!         job.done().ok();
//!         drop(bridge);
//!         em::stop();
//!     });
//!     Ok(())
//! })?;
//! # Ok::<(), em::Error>(())
//! ```
//!
//! # How it runs
//!
//! The protocol runs on em's own connection: frames are parsed and
//! written by the [amq-protocol](https://docs.rs/amq-protocol) crate (the
//! protocol layer of lapin) as a tokio-util codec, and every callback, reply
//! and delivery happens on the reactor thread, with em's backpressure,
//! reconnect back-off and contained panics. lapin itself runs its own I/O
//! loop on a thread of its own, and amqprs spawns `Send` tokio tasks: both
//! would put a second thread between the broker and em's callbacks.
//!
//! A [`Client`] is one connection, kept up: heartbeats (a connection
//! silent for two periods is closed), reconnect with back-off, and
//! [`Client::on_connected`] after each handshake. [`Channel`]s belong to
//! one connection and end with it. Every call returns a [`Reply`] — em's
//! [`Deferred`](em_core::Deferred), the deferrable the `amqp` gem returns —
//! to `.await` under `em::spawn` or give callbacks.
//!
//! What is lost or repeated when the broker goes away: a publish whose
//! confirm had not come fails with `is_disconnected()` (the message may or
//! may not be queued: publish again, and expect duplicates); a delivery not
//! yet acknowledged goes back to its queue at the broker and comes again
//! flagged `redelivered` (at least once). Messages survive a broker restart
//! only if published persistent (delivery mode 2) to a durable queue.
//!
//! # EventMachine → em
//!
//! | `amqp` gem on EventMachine | em-amqp |
//! |---|---|
//! | `AMQP.connect("amqp://…")` | [`Client::connect`] |
//! | `AMQP::Channel.new(conn)` | [`Client::channel`] |
//! | `channel.queue("jobs", durable: true)` | [`Channel::queue_declare`] |
//! | `channel.direct("x")`, `.fanout`, `.topic` | [`Channel::exchange_declare`] |
//! | `queue.bind(exchange, routing_key: …)` | [`Channel::queue_bind`] |
//! | `channel.prefetch(10)` | [`Channel::basic_qos`] |
//! | `channel.confirm_select` + `on_ack` | [`Channel::confirm_select`] + each publish's [`Reply`] |
//! | `exchange.publish(body, routing_key: …)` | [`Channel::basic_publish`] |
//! | `queue.subscribe(ack: true) { \|meta, body\| … }` | [`Channel::basic_consume`] |
//! | `meta.ack`, `meta.reject(requeue: true)` | [`Delivery::ack`], [`Delivery::nack`], [`Delivery::reject`] |
//! | `connection.on_tcp_connection_loss { … reconnect }` | automatic; [`Client::on_disconnected`], [`Client::on_connected`] |
//! | (a hand-made worker loop) | [`QueueBridge`] into an em `Queue`, [`Job::done`] |

#![deny(missing_docs)]

mod bridge;
mod channel;
mod client;
mod codec;
mod delivery;
mod error;
mod options;

pub use amq_protocol::protocol::BasicProperties;
pub use amq_protocol::types::{AMQPValue, FieldTable};
pub use bridge::{Job, QueueBridge};
pub use channel::{Channel, ConsumeOptions, ExchangeOptions, QueueInfo, QueueOptions};
pub use client::Client;
pub use codec::AmqpCodec;
pub use delivery::Delivery;
pub use error::{AmqpError, AmqpResult, Reply};
pub use options::Options;
