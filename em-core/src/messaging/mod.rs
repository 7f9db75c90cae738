//! Messaging: the building blocks of evented programs, each with a callback
//! form and an async form for [`spawn`](crate::spawn) code, all on the
//! reactor thread: [`Channel`](channel::Channel) (fan-out),
//! [`Queue`](queue::Queue) (each item to one popper),
//! [`EmIterator`](iterator::EmIterator) (bounded concurrent iteration),
//! [`Deferred`](deferred::Deferred) (a one-shot result),
//! [`TickLoop`](tick_loop::TickLoop) and [`Pool`](resource_pool::Pool)
//! (resources handed to one job at a time). Other threads reach channels and
//! queues through their `Send` senders, built on [`cross_thread`].
//!
//! Across the reactors of a group ([`Builder::run_each`](crate::Builder::run_each)),
//! [`GroupChannel`](group_channel::GroupChannel) (fan-out to subscribers on
//! every reactor) and [`GroupQueue`](group_queue::GroupQueue) (each item to
//! one popper on any reactor) are the explicit `Send + Sync` ones: their
//! deliveries go through each reactor's [`Handle`](crate::Handle), batched
//! per reactor.

pub(crate) mod channel;
pub(crate) mod cross_thread;
pub(crate) mod deferred;
pub(crate) mod group_channel;
pub(crate) mod group_queue;
pub(crate) mod iterator;
pub(crate) mod queue;
pub(crate) mod resource_pool;
pub(crate) mod tick_loop;
