//! The em reactor: EventMachine's programming model on one tokio thread.
//!
//! This crate holds the engine: the reactor ([`run`], [`stop`],
//! [`Reactor`]), TCP servers and clients with codec-framed connections
//! ([`start_server`], [`connect`], [`Connection`], [`Conn`]), [`next_tick`]
//! and the cross-thread [`Handle`], plus the messaging primitives programs
//! are made of: [`Channel`] (fan-out), [`Queue`], [`EmIterator`],
//! [`Deferred`], [`TickLoop`] and [`Pool`], each with a callback form and an
//! async form for [`spawn`]. Most users depend on the `em` facade
//! crate, which re-exports all of it with a guided tour.
//!
//! ```
//! use em_core::{Conn, Connection};
//! use bytes::BytesMut;
//! use tokio_util::codec::BytesCodec;
//!
//! struct Echo;
//!
//! impl Connection for Echo {
//!     type Codec = BytesCodec;
//!     fn codec(&self) -> BytesCodec {
//!         BytesCodec::new()
//!     }
//!     fn receive_data(&mut self, conn: &Conn<BytesCodec>, data: BytesMut) {
//!         conn.send_data(data);
//!     }
//! }
//!
//! em_core::run(|| -> em_core::Result<()> {
//!     let server = em_core::start_server("127.0.0.1:0", || Echo)?;
//!     tracing::info!(addr = %server.local_addr(), "echo server up");
//!     em_core::stop(); // a real server would run until stopped
//!     Ok(())
//! })?;
//! # Ok::<(), em_core::Error>(())
//! ```
//!
//! # Threads
//!
//! Everything runs on the reactor thread: every callback, every socket
//! operation. Handles to reactor-owned things ([`Conn`], [`Server`]) are
//! `!Send`, so the compiler keeps them there. [`Handle`] is the one
//! `Send + Sync` door in, for [`schedule`](Handle::schedule) and
//! [`stop`](Handle::stop).

#![deny(missing_docs)]
#![warn(clippy::print_stdout, clippy::print_stderr)]
#![doc(test(attr(deny(warnings))))]

mod channel;
mod client;
mod connection;
mod deferred;
mod driver;
mod error;
#[doc(hidden)]
pub mod ext;
mod handle;
mod handler;
mod iter;
mod panic;
mod pool;
mod queue;
mod reactor;
mod registry;
mod server;
mod tick;
mod tick_loop;

pub use channel::{Channel, ChannelSender, ChannelStream, SubscriptionId};
pub use client::{connect, Backoff};
pub use connection::{Conn, Connection, ConnectionId, Frame, UnbindReason};
pub use deferred::Deferred;
pub use error::{BoxError, Error, Result};
pub use handle::Handle;
pub use handler::{handler, FnHandler};
pub use iter::{Done, EmIterator, Iteration};
pub use panic::{clear_error_handler, set_error_handler, PanicReport};
pub use pool::{Get, Pool, PoolGuard};
pub use queue::{Pop, Queue, QueueSender};
pub use reactor::{
    connection_count, handle, reactor_running, reactor_thread, run, spawn, stop, stopping, Builder,
    Reactor, RunResult,
};
pub use server::{start_server, Server};
pub use tick::{next_tick, schedule};
pub use tick_loop::{tick_loop, TickLoop};
