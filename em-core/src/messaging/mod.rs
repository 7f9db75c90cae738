//! Messaging: the building blocks of evented programs, each with a callback
//! form and an async form for [`spawn`](crate::spawn) code, all on the
//! reactor thread: [`Channel`](channel::Channel) (fan-out),
//! [`Queue`](queue::Queue) (each item to one popper),
//! [`EmIterator`](iterator::EmIterator) (bounded concurrent iteration),
//! [`Deferred`](deferred::Deferred) (a one-shot result),
//! [`TickLoop`](tick_loop::TickLoop) and [`Pool`](resource_pool::Pool)
//! (resources handed to one job at a time). Other threads reach channels and
//! queues through their `Send` senders, built on [`cross_thread`].

pub(crate) mod channel;
pub(crate) mod cross_thread;
pub(crate) mod deferred;
pub(crate) mod iterator;
pub(crate) mod queue;
pub(crate) mod resource_pool;
pub(crate) mod tick_loop;
