//! The em reactor: EventMachine's programming model on one tokio thread.
//!
//! This crate holds the engine: the reactor ([`run`], [`stop`],
//! [`Reactor`]), connections on every transport (TCP, Unix-domain sockets,
//! attached descriptors and pipes, in-memory pairs) with codec-framed
//! callbacks ([`start_server`], [`connect`], [`Connection`], [`Conn`]),
//! [`next_tick`] and the cross-thread [`Handle`], plus the messaging
//! primitives programs are made of: [`Channel`] (fan-out), [`Queue`],
//! [`EmIterator`], [`Deferred`], [`TickLoop`] and [`Pool`], each with a
//! callback form and an async form for [`spawn`], and, across the reactors
//! of a group, [`GroupChannel`] and [`GroupQueue`]. Connections have their
//! procedural form too, [`Socket`] (a `Stream` and `Sink` of frames, with
//! [`SocketListener`]), and [`synchrony`] runs a reactor around one future
//! (em-synchrony's `EM.synchrony`). Most users depend on the
//! `em` facade crate, which re-exports all of it with a guided tour.
//!
//! UDP sockets are connections too, on the same engine:
//! [`open_datagram_socket`], one `receive_data` per datagram.
//!
//! The reactor's other events come on the reactor thread too: child
//! processes as connections ([`popen`], [`Popen`], [`system`],
//! [`system_async`]), standard input as a connection ([`open_keyboard`]),
//! signals ([`trap`]), a process's exit ([`watch_process`], Linux, through
//! a pidfd) and, with the `file-watch` feature, `watch_file`: changes to a
//! file or a directory (on the notify crate).
//!
//! ```
//! # use em_core as em;
//! use em::{Conn, Connection};
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
//! em::run(|| -> em::Result<()> {
//!     let server = em::start_server("127.0.0.1:0", || Echo)?;
//!     eprintln!("echo server up on {}", server.local_addr());
//!     em::stop(); // a real server would run until stopped
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
//!
//! # Layout
//!
//! * `reactor/`: the loop, its builder, `next_tick`, the cross-thread
//!   handle, panics and the error handler. It knows connections and servers
//!   only through a small trait, and imports nothing from `net/`.
//! * `net/`: the network engine: transports, the connection driver,
//!   connections, servers, clients.
//! * `messaging/`: channels, queues, iterators, deferreds, tick loops and
//!   resource pools.
//! * `os/`: the reactor's events beyond sockets: child processes, the
//!   keyboard, signals, file and process watchers. A child's pipes and
//!   standard input are transports under `net/`, run by the same driver.
//! * [`extension`]: the seam other crates (em-timers, em-defer) extend a
//!   reactor through.

#![deny(missing_docs)]
#![warn(clippy::print_stdout, clippy::print_stderr)]
#![doc(test(attr(deny(warnings))))]

mod error;
pub mod extension;
mod messaging;
mod net;
mod os;
mod reactor;

pub use error::{BoxError, Error, Result};
pub use messaging::channel::{Channel, ChannelSender, ChannelStream, SubscriptionId};
pub use messaging::deferred::Deferred;
pub use messaging::group_channel::{GroupChannel, GroupSubscription};
pub use messaging::group_queue::GroupQueue;
pub use messaging::iterator::{Done, EmIterator, Iteration};
pub use messaging::queue::{Pop, Queue, QueueSender};
pub use messaging::resource_pool::{Get, Pool, PoolGuard};
pub use messaging::tick_loop::{tick_loop, TickLoop};
pub use net::address::{Addr, UnixAddr};
pub use net::attach::{attach, attach_server, Attachable, AttachableListener};
pub use net::backoff::Backoff;
pub use net::client::{bind_connect, connect, connect_unix_domain, Endpoint};
pub use net::closure_handler::{handler, FnHandler};
pub use net::conn::Conn;
pub use net::connection::{Connection, Frame, UnbindReason};
pub use net::datagram::open_datagram_socket;
pub use net::handler::Handler;
pub use net::pair::connect_pair;
pub use net::proxy::{disable_proxy, enable_proxy};
pub use net::raw_codec::RawCodec;
pub use net::server::{start_server, start_unix_domain_server, Server};
pub use net::socket::{Socket, SocketListener};
pub use net::tls::{TlsError, TlsErrorKind, TlsOptions, TlsVersion};
pub use net::watch::watch;
#[cfg(feature = "file-watch")]
pub use os::file_watch::{watch_file, FileWatch, FileWatcher};
pub use os::keyboard::open_keyboard;
pub use os::process::{popen, popen_shell, system, system_async, Popen, Stderr};
pub use os::process_watch::{watch_process, ProcessWatch, ProcessWatcher};
pub use os::signal::Signal;
pub use os::signal::{trap, Trap};
pub use reactor::builder::Builder;
pub use reactor::core::ConnectionId;
pub use reactor::group::{handle_for, handles, reactor_index};
pub use reactor::panic::{clear_error_handler, set_error_handler, PanicReport};
pub use reactor::remote::Handle;
pub use reactor::run::{
    add_shutdown_hook, connection_count, handle, reactor_running, reactor_thread, run, spawn, stop,
    stopping, synchrony, Reactor, RunResult,
};
pub use reactor::stats::{stats, Ended, Stats};
pub use reactor::ticks::{next_tick, schedule};
