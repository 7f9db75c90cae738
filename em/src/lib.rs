//! em is Ruby EventMachine's programming model on tokio: one reactor thread
//! runs every callback, each connection is a handler object called back on
//! connect, data and close, and [`next_tick`] queues work for later on that
//! same thread. It is for Rust services that want an evented callback API,
//! for tokio users who know EventMachine, Twisted or Node, and for test
//! suites that need fake servers and clients.
//!
//! # A first example: an echo server and its client
//!
//! A handler implements [`Handler`], the callbacks of EventMachine's
//! `EM::Connection` on raw bytes, or [`Connection`], the same callbacks on
//! the frames of a codec (lines, length-prefixed messages, a protocol). The
//! server below echoes raw bytes; the client sends one line, keeps the
//! reply and stops the reactor, so [`run`] returns.
//!
//! ```
//! use std::cell::RefCell;
//! use std::rc::Rc;
//!
//! use em::prelude::*;
//!
//! /// The server side: every byte received goes straight back.
//! struct Echo;
//!
//! impl Handler for Echo {
//!     fn receive_data(&mut self, conn: &Conn, data: BytesMut) {
//!         conn.send_data(data);
//!     }
//! }
//!
//! /// The client side: sends a line, keeps the reply, stops the reactor.
//! struct Hello {
//!     reply: Rc<RefCell<Option<String>>>,
//! }
//!
//! impl Connection for Hello {
//!     type Codec = LinesCodec;
//!     fn codec(&self) -> LinesCodec {
//!         LinesCodec::new_with_max_length(1024)
//!     }
//!     fn post_init(&mut self, conn: &Conn<LinesCodec>) {
//!         // The connect is still in progress: the line waits until it completes.
//!         conn.send_data("hello, em");
//!     }
//!     fn receive_data(&mut self, _conn: &Conn<LinesCodec>, line: String) {
//!         *self.reply.borrow_mut() = Some(line);
//!         em::stop();
//!     }
//! }
//!
//! let reply = Rc::new(RefCell::new(None));
//! let r = reply.clone();
//! em::run(move || {
//!     let server = em::start_server("127.0.0.1:0", || Echo)?;
//!     em::connect(server.local_addr(), Hello { reply: r })?;
//! #   em::spawn(async {
//! #       tokio::time::sleep(std::time::Duration::from_secs(20)).await;
//! #       em::stop(); // watchdog: the assertion below then fails
//! #   })?;
//!     Ok(())
//! })?;
//! assert_eq!(reply.borrow().as_deref(), Some("hello, em"));
//! # Ok::<(), em::Error>(())
//! ```
//!
//! [`run`] is EventMachine's `EM.run`: the closure is the run block, and the
//! call returns once [`stop`] is called. [`start_server`] takes a factory that
//! builds one handler per accepted connection; [`connect`] takes the
//! client's handler. For one-off servers, [`handler`] turns a closure on raw
//! bytes into such a factory:
//! `em::start_server(addr, em::handler(|conn, data| conn.send_data(data)))`.
//! The run block returns `()` or any [`Result`] of em's (a server, a
//! connection, a timer…, whose value is dropped), and `?` turns an
//! `io::Error`, a message or another em crate's error into one, so it
//! needs no type annotation.
//!
//! The first programs an EventMachine user writes are runnable examples
//! of this crate, each beside its EventMachine twin in the repository's
//! `bench/baselines/first_programs`: `cargo run --example echo_server`
//! (then `--example echo_client` or `--example procedural_client` in
//! another terminal), `chat`, `timers`, `defer`.
//!
//! # The threading model
//!
//! A reactor is one current-thread tokio runtime and one
//! [`LocalSet`](tokio::task::LocalSet), on the thread that calls [`run`].
//! Every callback (the run block, `post_init`, `receive_data`, `unbind`, each
//! `next_tick`, futures started with [`spawn`]) runs on that thread, one at a
//! time, so handlers need no locks: share state with `Rc<RefCell<..>>`. The
//! flip side is EventMachine's: a callback that blocks stalls every
//! connection, so blocking work belongs on another thread. Each thread may
//! run its own reactor; they share nothing.
//!
//! The types say which side of the line a value lives on. Handles to things
//! the reactor owns, [`Conn`] and [`Server`], are `!Send`: they can be cloned
//! and stored (a chat room keeps its members' `Conn`s) but never leave the
//! reactor thread.
//!
//! ```compile_fail,E0277
//! fn on_another_thread(conn: em::Conn<em::codec::BytesCodec>) {
//!     std::thread::spawn(move || conn.close_connection()); // `Conn` is not `Send`
//! }
//! ```
//!
//! [`Handle`] is the one `Send + Sync` door in. Take one with [`handle()`] on
//! the reactor thread; any thread can then [`schedule`](Handle::schedule) a
//! `Send` closure to run on the reactor thread (it wakes at once if it
//! sleeps) or [`stop`](Handle::stop) the reactor. Once the reactor has
//! stopped, `schedule` returns an error that
//! [`is_not_running()`](Error::is_not_running).
//!
//! ```
//! em::run(|| {
//!     let handle = em::handle().expect("called on the reactor thread");
//!     std::thread::spawn(move || {
//!         let worker = std::thread::current().id();
//!         handle
//!             .schedule(move || {
//!                 // Back on the reactor thread.
//!                 assert_ne!(std::thread::current().id(), worker);
//!                 em::stop();
//!             })
//!             .expect("the reactor is running");
//!     });
//! })?;
//! # Ok::<(), em::Error>(())
//! ```
//!
//! [`run`] builds its own runtime, and so refuses to run inside a tokio
//! runtime (the error [`is_already_running()`](Error::is_already_running)),
//! as it does on a thread whose reactor already runs. Code that already has
//! a runtime awaits [`Reactor::run_local`] instead: it runs the reactor on
//! the thread that polls it, in a current-thread runtime with I/O and time
//! enabled (or inside a `LocalSet` of your own, whose other tasks keep
//! running beside the reactor).
//!
//! ```
//! let rt = tokio::runtime::Builder::new_current_thread()
//!     .enable_all()
//!     .build()?;
//! rt.block_on(async {
//!     // em::run is refused here: this thread is already inside a runtime.
//!     assert!(em::run(|| ()).unwrap_err().is_already_running());
//!     em::Reactor::new()
//!         .run_local(|| em::next_tick(em::stop))
//!         .await
//! })?;
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! Options, such as the listen backlog, are set with
//! [`Reactor::builder()`](Reactor::builder); every option has a default, and
//! [`Builder::build`] rejects one out of range.
//!
//! # Using every core
//!
//! One reactor is one thread. To use every core without giving up the
//! single-threaded model, run several:
//! [`Reactor::builder().reactors(n)`](Builder::reactors) with
//! [`run_each`](Builder::run_each) runs `n` reactors (`0`: one per core),
//! each on a thread of its own with its own runtime, `LocalSet`, timers,
//! ticks and defer pool, and calls the run block on each with its index.
//! A server every run block starts on the same address is served by all
//! of them: each binds its own listener on the port with `SO_REUSEPORT` and
//! the kernel spreads the connections, or, with
//! [`accept_handoff(true)`](Builder::accept_handoff) (and where
//! `SO_REUSEPORT` does not balance), one reactor accepts and hands the
//! sockets round robin to the others through their [`Handle`]s. Either way
//! a connection lives its whole life on the reactor that got it, so its
//! handler still needs no locks.
//!
//! What the reactors share is explicit and `Send`: their [`Handle`]s
//! ([`handles`], and [`handle_for`] a connection's owner, whose index its
//! [`ConnectionId`] carries and shows as `#R.N`), and one stop:
//! [`stop`] on any reactor, an error in any run block, or a panic under
//! `stop_on_panic` stops them all, and `run_each` returns once every one has
//! finished its teardown. [`reactor_index`] says which reactor runs the
//! current callback. [`GroupChannel`] and [`GroupQueue`] carry messages
//! between reactors (delivered through each reactor's handle, in batches);
//! `Conn`, `Channel` and `Queue` stay `!Send`.
//!
//! ```
//! use std::sync::atomic::{AtomicUsize, Ordering};
//! use std::sync::Arc;
//!
//! let echoed = Arc::new(AtomicUsize::new(0));
//! let e = echoed.clone();
//! em::Reactor::builder().reactors(2).run_each(move |index| -> em::Result<()> {
//!     let e = e.clone();
//!     let server = em::start_server(
//!         "127.0.0.1:0",
//!         em::handler(move |conn, data| {
//!             e.fetch_add(data.len(), Ordering::SeqCst);
//!             conn.send_data(data);
//!         }),
//!     )?;
//!     if index == 0 {
//!         // Both reactors listen on this port; a client does not know.
//!         let port = server.local_addr().inet().unwrap().port();
//!         let handle = em::handle()?;
//!         std::thread::spawn(move || {
//!             use std::io::{Read, Write};
//!             for _ in 0..10 {
//!                 let mut c = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
//!                 c.write_all(b"hi").unwrap();
//!                 let mut two = [0; 2];
//!                 c.read_exact(&mut two).unwrap();
//!             }
//!             handle.stop(); // stops both reactors
//!         });
//!     }
//!     Ok(())
//! })?;
//! assert_eq!(echoed.load(Ordering::SeqCst), 20);
//! # Ok::<(), em::Error>(())
//! ```
//!
//! When several reactors, and when several processes? Several reactors
//! share one address space: one port without a balancer in front, one
//! configuration, cross-reactor messaging without serialisation, one stop
//! and one set of logs with unambiguous connection ids. Several processes
//! (EventMachine's only way) isolate failures and memory: a process that
//! dies or leaks takes only its own connections with it, and they can be
//! restarted one at a time. A panic in em is contained either way; choose
//! processes when you need crashes of native code or memory growth
//! isolated, or deploys one process at a time.
//!
//! # Callback order and re-entrancy
//!
//! Each connection gets its callbacks in this order:
//!
//! 1. [`post_init`](Connection::post_init), right after the handler is bound
//!    and before any data. For a client it runs inside [`connect`], before
//!    the connect completes; what it sends is queued and leaves once
//!    connected.
//! 2. [`connection_completed`](Connection::connection_completed), clients
//!    only, exactly once, before the first `receive_data`. Never for
//!    accepted connections, never after a failed connect.
//! 3. [`receive_data`](Connection::receive_data), once per decoded frame, in
//!    order.
//! 4. [`unbind`](Connection::unbind), **exactly once**, on every path, with
//!    an [`UnbindReason`]: `Closed` (a local close), `PeerClosed`,
//!    `ConnectFailed`, `Io`, `Codec` (the codec rejected the input),
//!    `Panicked`, `ReactorStopped`, a timeout, `OutboundOverflow` or
//!    `Detached`.
//!
//! Any callback may call any [`Conn`] method on any connection, start
//! servers, connect, queue ticks or stop the reactor. Nothing re-enters the
//! handler: [`close_connection`](Conn::close_connection) only requests the
//! close, and `unbind` follows after the current callback returns. After a
//! close request (either kind), no further `receive_data` is delivered, even
//! for frames already read. Calls on a closed connection are harmless no-ops
//! that say so (`send_data` returns 0).
//!
//! ```
//! use std::cell::RefCell;
//! use std::rc::Rc;
//!
//! use em::prelude::*;
//!
//! struct Client {
//!     log: Rc<RefCell<Vec<String>>>,
//! }
//!
//! impl Connection for Client {
//!     type Codec = LinesCodec;
//!     fn codec(&self) -> LinesCodec {
//!         LinesCodec::new_with_max_length(1024)
//!     }
//!     fn post_init(&mut self, conn: &Conn<LinesCodec>) {
//!         self.log.borrow_mut().push("post_init".into());
//!         conn.send_data("ping");
//!         conn.send_data("pong");
//!     }
//!     fn connection_completed(&mut self, _conn: &Conn<LinesCodec>) {
//!         self.log.borrow_mut().push("connection_completed".into());
//!     }
//!     fn receive_data(&mut self, conn: &Conn<LinesCodec>, line: String) {
//!         self.log.borrow_mut().push(format!("receive_data {line}"));
//!         conn.close_connection();
//!         // unbind has not run yet, and "pong" will never be delivered.
//!         self.log.borrow_mut().push("close requested".into());
//!     }
//!     fn unbind(&mut self, _conn: &Conn<LinesCodec>, reason: UnbindReason) {
//!         self.log.borrow_mut().push(format!("unbind {reason:?}"));
//!         em::stop();
//!     }
//! }
//!
//! let log = Rc::new(RefCell::new(Vec::new()));
//! let l = log.clone();
//! em::run(move || -> em::Result<()> {
//!     let echo = em::start_server("127.0.0.1:0", em::handler(|conn, data| conn.send_data(data)))?;
//!     em::connect(echo.local_addr(), Client { log: l })?;
//! #   em::spawn(async {
//! #       tokio::time::sleep(std::time::Duration::from_secs(20)).await;
//! #       em::stop();
//! #   })?;
//!     Ok(())
//! })?;
//! assert_eq!(
//!     *log.borrow(),
//!     [
//!         "post_init",
//!         "connection_completed",
//!         "receive_data ping",
//!         "close requested",
//!         "unbind Closed",
//!     ]
//! );
//! # Ok::<(), em::Error>(())
//! ```
//!
//! A panic in a callback is contained: it is logged at error level (through
//! `tracing`) with the callback's name and the connection's id, the
//! connection closes with [`UnbindReason::Panicked`], and every other
//! connection carries on. If `unbind` itself panics, it is not called again.
//! A panicking `next_tick` is logged and the ticks after it still run. A
//! panic in the run block stops the reactor, and [`run`] returns an error
//! that [`is_panic()`](Error::is_panic); so does a run block that returns an
//! `Err` ([`is_init()`](Error::is_init)).
//!
//! # `next_tick`, `schedule` and `spawn`
//!
//! [`next_tick`] queues a closure to run on the reactor thread on a later
//! pass, never before it returns. The queue is FIFO and drained in passes
//! under EventMachine's snapshot rule: a pass runs the closures that were
//! queued when it began, and closures queued during a pass run in a later
//! one. Up to 256 passes run back to back; then the reactor polls its
//! sockets and runs every ready connection before the next batch. So a tick
//! that re-schedules itself forever costs no system call per round, and
//! never starves I/O:
//!
//! ```
//! use std::cell::{Cell, RefCell};
//! use std::rc::Rc;
//!
//! use em::prelude::*;
//!
//! /// A tick that re-queues itself forever.
//! fn spin(rounds: Rc<Cell<u64>>) {
//!     rounds.set(rounds.get() + 1);
//!     em::next_tick(move || spin(rounds));
//! }
//!
//! /// Sends "ping" and stops the reactor when it comes back.
//! struct Ping(Rc<RefCell<Vec<u8>>>);
//!
//! impl Connection for Ping {
//!     type Codec = BytesCodec;
//!     fn codec(&self) -> BytesCodec {
//!         BytesCodec::new()
//!     }
//!     fn post_init(&mut self, conn: &Conn<BytesCodec>) {
//!         conn.send_data(Bytes::from_static(b"ping"));
//!     }
//!     fn receive_data(&mut self, _conn: &Conn<BytesCodec>, data: BytesMut) {
//!         self.0.borrow_mut().extend_from_slice(&data);
//!         if self.0.borrow().len() == 4 {
//!             em::stop(); // the spinning tick still queued is dropped
//!         }
//!     }
//! }
//!
//! let (rounds, echoed) = (Rc::new(Cell::new(0)), Rc::new(RefCell::new(Vec::new())));
//! let (r, e) = (rounds.clone(), echoed.clone());
//! em::run(move || -> em::Result<()> {
//!     spin(r);
//!     let echo = em::start_server("127.0.0.1:0", em::handler(|conn, data| conn.send_data(data)))?;
//!     em::connect(echo.local_addr(), Ping(e))?;
//! #   em::spawn(async {
//! #       tokio::time::sleep(std::time::Duration::from_secs(20)).await;
//! #       em::stop();
//! #   })?;
//!     Ok(())
//! })?;
//! assert_eq!(*echoed.borrow(), b"ping");
//! assert!(rounds.get() > 1);
//! # Ok::<(), em::Error>(())
//! ```
//!
//! `next_tick` may be called before [`run`]: those closures run in the
//! reactor's first pass, after the run block. Closures still queued when the
//! reactor stops are dropped, not run, and so is the rest of the pass that
//! called [`stop`]. `next_tick` is the reactor thread's queue: called on
//! another thread, it queues for a reactor that thread may run later, not
//! for yours; use [`Handle::schedule`] there.
//!
//! [`schedule`] is EventMachine's `EM.schedule` on the reactor thread: it
//! runs the closure at once. Its closure is `!Send`, so it cannot reach a
//! reactor on another thread: called where no reactor runs, it is an error
//! that [`is_no_reactor()`](Error::is_no_reactor) and the closure is dropped.
//! From another thread, use [`Handle::schedule`]: it always queues, even
//! from the reactor thread, into the same FIFO as `next_tick`, so a closure
//! scheduled before a tick was queued runs before it (EventMachine's one
//! queue).
//!
//! [`spawn`] runs a `!Send` future on the reactor thread, for procedural code
//! (what em-synchrony's fibers gave Ruby): it may await tokio's timers and
//! sockets, and call em from inside. It is dropped, unfinished, when the
//! reactor stops.
//!
//! # Writes and reads
//!
//! [`send_data`](Conn::send_data) encodes a frame with the connection's
//! codec into its outbound buffer and returns the bytes queued, without
//! writing. The connection's task writes when it next runs: frames queued in
//! one pass leave together, in one `write(2)` unless the kernel takes less
//! (five lines sent from `post_init` leave in one system call). Replies
//! produced by one read are written before the next read, so bulk data flows
//! through instead of piling up. `send_data` returns 0 when it refuses a
//! frame (closed or closing connection, or an encoder error);
//! [`try_send_data`](Conn::try_send_data) says why, and
//! [`outbound_data_size`](Conn::outbound_data_size) is the backlog the
//! kernel has not taken yet.
//!
//! ```
//! use em::prelude::*;
//!
//! struct Quiet;
//!
//! impl Connection for Quiet {
//!     type Codec = LinesCodec;
//!     fn codec(&self) -> LinesCodec {
//!         LinesCodec::new_with_max_length(1024)
//!     }
//!     fn receive_data(&mut self, _conn: &Conn<LinesCodec>, _line: String) {}
//!     fn unbind(&mut self, _conn: &Conn<LinesCodec>, reason: UnbindReason) {
//!         assert!(matches!(reason, UnbindReason::Closed));
//!         em::stop();
//!     }
//! }
//!
//! em::run(|| -> em::Result<()> {
//!     let sink = em::start_server("127.0.0.1:0", em::handler(|_conn, _data| ()))?;
//!     let conn = em::connect(sink.local_addr(), Quiet)?;
//!     assert_eq!(conn.send_data("hello"), 6); // "hello\n", queued until connected
//!     assert_eq!(conn.outbound_data_size(), 6);
//!     conn.close_connection_after_writing();
//!     assert_eq!(conn.send_data("too late"), 0);
//!     assert!(conn.try_send_data("too late").unwrap_err().is_closed());
//!     Ok(())
//! })?;
//! # Ok::<(), em::Error>(())
//! ```
//!
//! [`close_connection`](Conn::close_connection) discards what is still
//! queued; [`close_connection_after_writing`](Conn::close_connection_after_writing)
//! writes it all, sends FIN, then closes. Both end in `unbind(Closed)`.
//!
//! Reads go into one buffer owned by the reactor and shared by all its
//! connections; the codec decodes frames out of it and `receive_data` gets
//! each one. A connection keeps only input it has not decoded yet, copied
//! out, so an idle connection holds no read buffer: with the `echo_server`
//! example, an idle connection costs under 1 KiB of the process's memory
//! (kernel socket buffers aside). The read size adapts per connection: it
//! starts at 16 KiB, steps up (to 4 loopback segments, about 256 KiB) while
//! reads fill it, and back down when they come back small.
//!
//! A frame that borrows from the input, such as the `BytesMut` of
//! `BytesCodec`, is a view into that shared buffer: a handler that keeps
//! one (in a `Vec`, across callbacks) pins the buffer's whole allocation,
//! up to 1 MiB, until the frame is dropped; the reactor then reads into a
//! fresh one. Nothing breaks, but a handler that keeps many small frames
//! should copy them out (`Bytes::copy_from_slice(&frame)`, or decode into
//! owned types such as `LinesCodec`'s `String`).
//!
//! While a connection is [`pause`](Conn::pause)d, and while its output is
//! above its high watermark (1 MiB by default), nothing more is read and no
//! `receive_data` runs: frames already read wait, in order, and are
//! delivered on [`resume`](Conn::resume), or once the output drains to the
//! low watermark. So a peer that does not read its replies is slowed by the
//! transport itself instead of growing the buffer, and a `pause` inside
//! `receive_data` holds the rest of the frames of the same read.
//!
//! When the peer half-closes (a read returns end of stream), frames read
//! before it are delivered, the codec's last frame too; output already
//! queued, or queued by those callbacks, is still written; then the
//! connection closes with `unbind(PeerClosed)`. (EventMachine discards the
//! unsent output instead.)
//!
//! # Transports: TCP, Unix-domain sockets, descriptors, in-memory pairs
//!
//! Every connection runs on the same engine, whatever carries its bytes:
//! the same [`Connection`] trait, codecs, watermarks, timeouts, close
//! reasons and exactly one `unbind`.
//!
//! * **TCP**: [`start_server`] and [`connect`] (or [`bind_connect`], from a
//!   chosen local address).
//! * **Unix-domain sockets**: [`start_unix_domain_server`]`(path, factory)`
//!   and [`connect_unix_domain`]`(path, handler)`. A stale socket file at
//!   the path is replaced, and the server removes its own file when it
//!   stops (EventMachine leaves it behind). A path starting with a NUL
//!   byte is a Linux abstract name.
//! * **Descriptors the program already has**: [`attach`]`(io, handler)`
//!   makes a connection of a std or tokio `TcpStream` or `UnixStream`, one
//!   end of a socketpair, a pipe end, or an `OwnedFd` of any of these
//!   ([`Attachable`]); [`attach_server`] serves an inherited listener.
//!   [`Conn::detach`] gives the descriptor back, still open (`unbind`
//!   follows once, with `Detached`).
//! * **In-memory pairs**: [`connect_pair`]`(a, b)` joins two handlers with
//!   no socket and no port; it runs under the paused clock with no real
//!   time passing, which makes it the transport for deterministic tests of
//!   protocol code.
//! * **UDP**: [`open_datagram_socket`]`(addr, handler)` is one connection
//!   for every peer: one `receive_data` per datagram (empty ones too),
//!   `send_data` replies to the last sender, [`Conn::send_datagram`] sends
//!   to anyone (see [Datagrams](#datagrams-udp)).
//! * **Descriptors em only polls**: [`watch`] (see
//!   [Watched descriptors](#watched-descriptors)).
//!
//! Addresses are an [`Addr`]: [`Addr::Inet`] for TCP, [`Addr::Unix`] (a
//! path, an abstract name, or unnamed) for Unix-domain sockets, and
//! [`Addr::Pipe`] or [`Addr::Memory`] for transports without one.
//! [`connect`] takes any [`Endpoint`], which a server's `local_addr()`
//! converts into, so the same code connects to either kind of server.
//!
//! ```
//! use em::prelude::*;
//!
//! let path = std::env::temp_dir().join(format!("em-tour-{}.sock", std::process::id()));
//! let p = path.clone();
//! em::run(move || -> em::Result<()> {
//!     let echo = em::start_unix_domain_server(&p, em::handler(|conn, data| conn.send_data(data)))?;
//!     assert_eq!(echo.local_addr().unix_path(), Some(p.as_path()));
//!     // The same call as for a TCP server: the address says which kind.
//!     let mut on_echo = em::handler(|_conn, data| {
//!         assert_eq!(&data[..], b"hi");
//!         em::stop();
//!     });
//!     em::connect(echo.local_addr(), on_echo())?.send_data(Bytes::from_static(b"hi"));
//! #   em::spawn(async {
//! #       tokio::time::sleep(std::time::Duration::from_secs(20)).await;
//! #       em::stop();
//! #   })?;
//!     Ok(())
//! })?;
//! assert!(!path.exists(), "the server removed its socket file when the reactor stopped");
//! # Ok::<(), em::Error>(())
//! ```
//!
//! # Two styles: callbacks and procedural code
//!
//! The same connection can be written as a handler with callbacks or as
//! straight-line code in a future, em-synchrony's way: [`Socket`] is a
//! connection whose frames are a `futures` `Stream` and whose sends are a
//! `Sink`, over the same engine (codecs, timeouts, watermarks, close
//! reasons). [`SocketListener`] accepts them; [`synchrony`] runs a reactor
//! around one future and returns its output (EventMachine's
//! `EM.synchrony`). The two styles mix freely in one reactor. Here is the
//! same client both ways, against one echo server:
//!
//! ```
//! use std::cell::RefCell;
//! use std::rc::Rc;
//!
//! use em::prelude::*;
//! use futures::{SinkExt, StreamExt};
//!
//! // Callbacks: state lives in the handler; each event is a method.
//! struct Asker {
//!     answer: Rc<RefCell<Option<String>>>,
//! }
//!
//! impl Connection for Asker {
//!     type Codec = LinesCodec;
//!     fn codec(&self) -> LinesCodec {
//!         LinesCodec::new()
//!     }
//!     fn connection_completed(&mut self, conn: &Conn<LinesCodec>) {
//!         conn.send_data("ping");
//!     }
//!     fn receive_data(&mut self, conn: &Conn<LinesCodec>, line: String) {
//!         *self.answer.borrow_mut() = Some(line);
//!         conn.close_connection();
//!     }
//! }
//!
//! let answer = Rc::new(RefCell::new(None));
//! let a = answer.clone();
//! let procedural = em::synchrony(async move {
//!     let echo = em::start_server("127.0.0.1:0", em::handler(|conn, data| conn.send_data(data)))?;
//!     em::connect(echo.local_addr(), Asker { answer: a })?;
//!
//!     // Procedural: the same exchange, top to bottom.
//!     let mut socket = em::Socket::connect(echo.local_addr(), LinesCodec::new()).await?;
//!     socket.send("ping").await?;
//!     let line = socket.next().await.expect("an answer")?;
//!     socket.close().await?;
//!     Ok::<_, Box<dyn std::error::Error>>(line)
//! })??;
//! assert_eq!(procedural, "ping");
//! # let _ = answer; // the callback client may or may not have finished when synchrony returned
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! Callbacks cost one hop less per frame (it is handled inside
//! `receive_data`; a `Socket` queues it and wakes its task) and suit
//! servers with many connections that react to events; a `Socket` suits
//! clients and protocols that are a conversation. A `Socket`'s `Sink` waits
//! while the connection is above its high watermark, and a slow reader of
//! its `Stream` pauses the connection, so backpressure works both ways
//! without a line of code.
//!
//! # Datagrams: UDP
//!
//! [`open_datagram_socket`]`(addr, handler)` binds a UDP socket and makes
//! it one connection for every peer, on the same engine as a stream's:
//!
//! * one `receive_data` per datagram, empty ones included, each
//!   decoded on its own into exactly one frame, so nothing carries over
//!   from one datagram to the next; a datagram the codec rejects is
//!   dropped (with a warning), not the socket;
//! * [`Conn::peer_addr`] is the sender of the last datagram, and
//!   `send_data` replies to it; [`Conn::send_datagram`]`(frame, addr)`
//!   sends to anyone, and an address that is invalid, of the wrong family,
//!   or a frame too large for one datagram is an `Err` that
//!   `is_invalid_argument()`, never the end of the socket;
//! * the outbound queue keeps the boundaries, and the watermarks,
//!   `max_outbound` and the inactivity timeout apply as on a stream;
//! * `set_broadcast`, `join_multicast_v4`/`v6` and `leave_multicast_v4`/`v6`
//!   set the socket up.
//!
//! ```
//! use em::prelude::*;
//!
//! em::run(|| -> em::Result<()> {
//!     // A server that answers each datagram with its length, to its sender.
//!     let server = em::open_datagram_socket(
//!         "127.0.0.1:0",
//!         em::handler(|conn, datagram| {
//!             conn.send_data(Bytes::from(datagram.len().to_string()));
//!         })(),
//!     )?;
//!     let to = server.local_addr().expect("bound");
//!     let client = em::open_datagram_socket(
//!         "127.0.0.1:0",
//!         em::handler(|_conn, reply| {
//!             assert_eq!(&reply[..], b"5");
//!             em::stop();
//!         })(),
//!     )?;
//!     client.send_datagram(Bytes::from_static(b"hello"), to)?;
//!     // A wrong family is an error; the socket is still there.
//!     let v6: std::net::SocketAddr = "[::1]:9".parse().unwrap();
//!     assert!(client.send_datagram(Bytes::new(), v6).unwrap_err().is_invalid_argument());
//! #   em::spawn(async {
//! #       tokio::time::sleep(std::time::Duration::from_secs(20)).await;
//! #       em::stop();
//! #   })?;
//!     Ok(())
//! })?;
//! # Ok::<(), em::Error>(())
//! ```
//!
//! # Watched descriptors
//!
//! [`watch`]`(fd, handler)` polls a descriptor that em neither reads nor
//! writes (a device, a socket another library owns, an eventfd): the
//! handler's [`Connection::notify_readable`] and
//! [`Connection::notify_writable`] run while it is ready, each switched on
//! and off at run time with `Conn::set_notify_readable(bool)` and
//! `Conn::set_notify_writable(bool)` (both start off, W2). em watches a
//! duplicate of the descriptor, so yours stays open after `unbind`
//! (W3); [`Conn::detach`] ends the watch too. Calls that would move data
//! (`send_data`, `reconnect`, the socket options) are refused.
//!
//! ```
//! use std::io::{Read, Write};
//! use std::os::unix::net::UnixStream;
//! use std::rc::Rc;
//!
//! use em::prelude::*;
//!
//! /// Reads the watched socket itself when em says it is readable.
//! struct Reader(Rc<UnixStream>);
//!
//! impl Connection for Reader {
//!     type Codec = BytesCodec;
//!     fn codec(&self) -> BytesCodec {
//!         BytesCodec::new()
//!     }
//!     fn receive_data(&mut self, _: &Conn<BytesCodec>, _: BytesMut) {}
//!     fn notify_readable(&mut self, conn: &Conn<BytesCodec>) {
//!         let mut buf = [0; 16];
//!         let n = (&*self.0).read(&mut buf).expect("readable");
//!         assert_eq!(&buf[..n], b"ping");
//!         conn.close_connection(); // ends the watch, not the socket
//!         em::stop();
//!     }
//! }
//!
//! let (ours, mut theirs) = UnixStream::pair()?;
//! ours.set_nonblocking(true)?;
//! let ours = Rc::new(ours);
//! let socket = ours.clone();
//! em::run(move || -> em::Result<()> {
//!     let conn = em::watch(&*socket, Reader(socket.clone()))?;
//!     assert!(conn.is_watch_only() && !conn.notify_readable());
//!     conn.set_notify_readable(true)?;
//!     theirs.write_all(b"ping").expect("write");
//! #   em::spawn(async {
//! #       tokio::time::sleep(std::time::Duration::from_secs(20)).await;
//! #       em::stop();
//! #   })?;
//!     Ok(())
//! })?;
//! assert!(ours.peer_addr().is_ok(), "still open after the watch ended");
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! # Child processes
//!
//! [`popen`]`(["sort", "-r"], handler)` starts a program (never a shell,
//! unless asked with [`popen_shell`]) as a connection: its stdout arrives
//! through the handler's codec as `receive_data`, `send_data` writes to its
//! stdin, and `close_connection_after_writing` closes its stdin once the
//! queue is written while its output is read to the end, so `sort` and
//! `wc` answer (EventMachine's `EM.popen`). `unbind` runs once its stdout
//! has closed **and** it has exited, with [`UnbindReason::Exited`] and its
//! status; `Conn::exit_status` has it in `unbind` whatever the reason
//! (EventMachine's `get_status`), `Conn::pid` and `Conn::kill(Signal)`
//! reach the process. A child whose connection is closed early, times out
//! or outlives the reactor gets [`Builder::child_grace`] to exit, then
//! SIGTERM, then SIGKILL, without the reactor ever blocking (EventMachine
//! blocks it, PR2), and is always reaped: no zombie, and `run` returns once
//! every child has exited. [`Popen`] sets arguments, environment, directory
//! and where stderr goes ([`Stderr::Merge`] into stdout, discarded, or its
//! own connection with `Popen::stderr_to`). [`system`] (EventMachine's
//! `EM.system`) and [`system_async`] (em-synchrony's) give the whole
//! stdout and the status.
//!
//! ```
//! use em::prelude::*;
//!
//! /// Feeds `wc -l` three lines and reads its answer.
//! struct Count(Option<String>);
//!
//! impl Connection for Count {
//!     type Codec = LinesCodec;
//!     fn codec(&self) -> LinesCodec {
//!         LinesCodec::new()
//!     }
//!     fn post_init(&mut self, conn: &Conn<LinesCodec>) {
//!         conn.send_data("a\nb\nc");
//!         conn.close_connection_after_writing(); // wc reads end of input
//!     }
//!     fn receive_data(&mut self, _: &Conn<LinesCodec>, line: String) {
//!         self.0 = Some(line.trim().to_owned());
//!     }
//!     fn unbind(&mut self, _: &Conn<LinesCodec>, reason: UnbindReason) {
//!         assert!(matches!(reason, UnbindReason::Exited(s) if s.success()));
//!         assert_eq!(self.0.as_deref(), Some("3"));
//!         em::stop();
//!     }
//! }
//!
//! em::run(|| em::popen(["wc", "-l"], Count(None)).map(drop))?;
//!
//! // The whole output and the status, awaited.
//! let (out, status) = em::synchrony(em::system_async(["sh", "-c", "echo hi; exit 2"]))??;
//! assert_eq!((&out[..], status.code()), (&b"hi\n"[..], Some(2)));
//! # Ok::<(), em::Error>(())
//! ```
//!
//! # File watchers
//!
//! [`watch_file`]`(path, handler)` watches a file or a directory
//! (EventMachine's `EM.watch_file`). The handler is a [`FileWatcher`], not
//! a [`Connection`]: a watch moves no bytes, so there is no codec and no
//! `receive_data`, only EventMachine's verbs, each a default no-op:
//! `file_modified` (a write, an append, a truncation), `file_moved` and
//! `file_deleted`, then `unbind` exactly once. When the watched file is
//! deleted the watch ends by itself; [`FileWatch::stop_watching`] ends it
//! sooner; [`FileWatch::path`] is the path as given, even after the file
//! was moved, since the watch follows the file (FW1). A watched directory
//! reports its entries' events with the entry's name, and `file_created`
//! for a new one. A path that does not exist is an error at once
//! ([`is_io()`](Error::is_io), naming the path).
//!
//! The events come from the notify crate (inotify on Linux): one watcher
//! thread per reactor, whatever the number of watches, hands them to the
//! reactor thread in order through the reactor's cross-thread queue, the
//! one [`Handle::schedule`] uses. Callbacks run on the reactor thread, a
//! panic in one is contained like any callback's, and every live watch
//! gets its `unbind` when the reactor stops. The `tail` example follows a
//! log file this way.
//!
//! ```
//! use std::cell::RefCell;
//! use std::io::Write;
//! use std::path::Path;
//! use std::rc::Rc;
//!
//! use em::{FileWatch, FileWatcher};
//!
//! /// Logs what happens to a file; deletes it at its first change.
//! struct Watcher(Rc<RefCell<Vec<&'static str>>>);
//!
//! impl FileWatcher for Watcher {
//!     fn file_modified(&mut self, watch: &FileWatch, _entry: Option<&Path>) {
//!         self.0.borrow_mut().push("modified");
//!         std::fs::remove_file(watch.path()).expect("remove");
//!     }
//!     fn file_deleted(&mut self, watch: &FileWatch, _entry: Option<&Path>) {
//!         self.0.borrow_mut().push("deleted");
//!         assert!(!watch.is_watching()); // the watch ended with the file
//!     }
//!     fn unbind(&mut self, _: &FileWatch) {
//!         self.0.borrow_mut().push("unbind");
//!         em::stop();
//!     }
//! }
//!
//! let path = std::env::temp_dir().join(format!("em-tour-{}.log", std::process::id()));
//! std::fs::write(&path, "")?;
//! let events = Rc::new(RefCell::new(Vec::new()));
//! let (e, p) = (events.clone(), path.clone());
//! em::run(move || {
//!     em::watch_file(&p, Watcher(e))?;
//!     std::fs::OpenOptions::new().append(true).open(&p)?.write_all(b"a line\n")?;
//! #   em::spawn(async {
//! #       tokio::time::sleep(std::time::Duration::from_secs(20)).await;
//! #       em::stop();
//! #   })?;
//!     Ok(())
//! })?;
//! assert_eq!(*events.borrow(), ["modified", "deleted", "unbind"]);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! # Watching a process
//!
//! [`watch_process`]`(pid, handler)` calls the handler's
//! `process_exited` when a process exits, any process the program may
//! see, not only its children (EventMachine's `EM.watch_process`, which
//! needs kqueue and raises on Linux). em watches a pidfd registered with
//! the reactor like a socket: no polling, no thread, and a pid reused
//! later is never mistaken for the process. The handler is a
//! [`ProcessWatcher`] or a closure `FnMut(&ProcessWatch)`; `unbind`
//! follows once, as for a file watch. No exit status is given: only a
//! process's parent can read it (reap a child of yours yourself). Linux
//! only: elsewhere the call is an error that
//! [`is_unsupported()`](Error::is_unsupported).
//!
//! ```
//! # #[cfg(target_os = "linux")] {
//! let mut child = std::process::Command::new("sleep").arg("30").spawn()?;
//! let pid = child.id();
//! let exited = std::rc::Rc::new(std::cell::Cell::new(None));
//! let seen = exited.clone();
//! em::run(move || {
//!     em::watch_process(pid, move |watch: &em::ProcessWatch| {
//!         seen.set(Some(watch.pid()));
//!         em::stop();
//!     })?;
//!     std::process::Command::new("kill").arg(pid.to_string()).status()?;
//! #   em::spawn(async {
//! #       tokio::time::sleep(std::time::Duration::from_secs(20)).await;
//! #       em::stop();
//! #   })?;
//!     Ok(())
//! })?;
//! assert_eq!(exited.get(), Some(pid));
//! child.wait()?; // ours to reap
//! # }
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! # Proxies
//!
//! `Conn::proxy_incoming_to(&target, bufsize)` sends everything a
//! connection receives to another connection as it is, past both codecs
//! and `receive_data` (EventMachine's `proxy_incoming_to`; [`enable_proxy`]
//! is the same call). Two calls, one each way, make a forwarding proxy.
//!
//! * **Backpressure**: reading from the source holds while the target has
//!   more than `bufsize` bytes queued, so a target that does not read
//!   costs at most about `bufsize` of memory, and the source's sender
//!   blocks.
//! * **The end**: `proxy_incoming_to_with_length` stops after exactly that
//!   many bytes and calls [`Connection::proxy_completed`]; the
//!   target's end calls [`Connection::proxy_target_unbound`] on the source
//!   once; `stop_proxying` (or [`disable_proxy`]) hands the input back
//!   to `receive_data`; `proxied_bytes` counts what went through.
//! * **Zero copy**: between two plain sockets on Linux, the bytes move
//!   kernel to kernel with `splice(2)` through a pipe, never entering the
//!   reactor's buffers (`Builder::proxy_splice(false)` turns it off; TLS
//!   and in-memory connections always take the copy path). Both paths pass
//!   the same tests.
//!
//! ```
//! use em::prelude::*;
//!
//! /// The client side of a forwarding proxy: dials the backend, proxies
//! /// both ways.
//! struct Front(em::Addr);
//! impl Connection for Front {
//!     type Codec = BytesCodec;
//!     fn codec(&self) -> BytesCodec {
//!         BytesCodec::new()
//!     }
//!     fn post_init(&mut self, conn: &Conn<BytesCodec>) {
//!         let back = em::connect(self.0.clone(), Back(conn.clone())).expect("connect");
//!         conn.proxy_incoming_to(&back, 1 << 20).expect("to the backend");
//!         back.proxy_incoming_to(conn, 1 << 20).expect("to the client");
//!     }
//!     fn receive_data(&mut self, _: &Conn<BytesCodec>, _: BytesMut) {}
//! }
//!
//! /// The backend side: when the backend ends, so does the client.
//! struct Back(Conn<BytesCodec>);
//! impl Connection for Back {
//!     type Codec = BytesCodec;
//!     fn codec(&self) -> BytesCodec {
//!         BytesCodec::new()
//!     }
//!     fn receive_data(&mut self, _: &Conn<BytesCodec>, _: BytesMut) {}
//!     fn unbind(&mut self, _: &Conn<BytesCodec>, _: UnbindReason) {
//!         self.0.close_connection_after_writing();
//!     }
//! }
//!
//! em::run(|| -> em::Result<()> {
//!     let echo = em::start_server("127.0.0.1:0", em::handler(|conn, data| conn.send_data(data)))?;
//!     let backend = echo.local_addr();
//!     let proxy = em::start_server("127.0.0.1:0", move || Front(backend.clone()))?;
//!     let mut on_reply = em::handler(|_conn, data| {
//!         assert_eq!(&data[..], b"through the proxy");
//!         em::stop();
//!     });
//!     em::connect(proxy.local_addr(), on_reply())?
//!         .send_data(Bytes::from_static(b"through the proxy"));
//! #   em::spawn(async {
//! #       tokio::time::sleep(std::time::Duration::from_secs(20)).await;
//! #       em::stop();
//! #   })?;
//!     Ok(())
//! })?;
//! # Ok::<(), em::Error>(())
//! ```
//!
//! # TLS
//!
//! [`Conn::start_tls`]`(&options)` turns any byte-stream connection (TCP,
//! Unix-domain, attached, in-memory) into a TLS one, on rustls: from
//! `post_init` for TLS from the first byte, or later for STARTTLS. Output
//! queued before the call still leaves in plain text (the "go ahead"
//! line); bytes the peer sent right behind its STARTTLS command go to the
//! handshake. [`Connection::ssl_handshake_completed`] runs when the
//! handshake is done; a failed one ends the connection with
//! [`UnbindReason::Tls`], whose [`TlsError::kind`] says why (unknown
//! issuer, expired, wrong host name, no client certificate, no protocol in
//! common, not TLS at all…).
//!
//! [`TlsOptions`] is one builder for both sides, safe by default, where
//! EventMachine verified nothing (its TLS4, and CVE-2020-13482 in
//! em-http-request):
//!
//! * a **client** verifies the server's certificate against Mozilla's
//!   roots (or the ones given with `root_certs_file`/`root_certs_pem`),
//!   checks the host name given with `server_name` (else the peer's IP
//!   address) and sends it as SNI;
//! * a **server** needs a certificate (`cert_chain_file` and
//!   `private_key_file`, or the `_pem` forms; a server without one is an
//!   error that [`is_tls_config()`](Error::is_tls_config), where
//!   EventMachine silently used a built-in one), can pick one per SNI name
//!   (`sni_cert`), and can require client certificates
//!   (`fail_if_no_peer_cert` with client roots);
//! * **pinning**: `verify_peer(true)` hands the decision to the handler's
//!   [`Connection::ssl_verify_peer`], which sees each certificate (DER)
//!   once the handshake is done and before any data moves (the peer must
//!   still hold the certificate's key);
//! * versions (`min_version`, `max_version`), cipher suites and ALPN
//!   protocols; and, for tests only, `danger_accept_invalid_certs`.
//!
//! Once the handshake is done, the [`Conn`] tells `tls_protocol_version`,
//! `tls_cipher_suite`, `alpn_protocol`, `peer_cert` (the chain, DER) and,
//! on a server, `sni_hostname`.
//!
//! ```
//! use em::prelude::*;
//! use em::TlsOptions;
//!
//! /// A TLS echo server.
//! struct Echo(TlsOptions);
//! impl Connection for Echo {
//!     type Codec = LinesCodec;
//!     fn codec(&self) -> LinesCodec {
//!         LinesCodec::new()
//!     }
//!     fn post_init(&mut self, conn: &Conn<LinesCodec>) {
//!         conn.start_tls(&self.0).expect("the options are good");
//!     }
//!     fn receive_data(&mut self, conn: &Conn<LinesCodec>, line: String) {
//!         conn.send_data(line);
//!     }
//! }
//!
//! /// A client that pins the server's self-signed certificate.
//! struct Pinned(Vec<u8>);
//! impl Connection for Pinned {
//!     type Codec = LinesCodec;
//!     fn codec(&self) -> LinesCodec {
//!         LinesCodec::new()
//!     }
//!     fn post_init(&mut self, conn: &Conn<LinesCodec>) {
//!         conn.start_tls(&TlsOptions::new().verify_peer(true)).expect("start_tls");
//!         conn.send_data("secret"); // leaves encrypted, once the peer is accepted
//!     }
//!     fn ssl_verify_peer(&mut self, _conn: &Conn<LinesCodec>, cert_der: &[u8]) -> bool {
//!         cert_der == self.0.as_slice()
//!     }
//!     fn receive_data(&mut self, conn: &Conn<LinesCodec>, line: String) {
//!         assert_eq!(line, "secret");
//!         assert!(conn.tls_protocol_version().is_some());
//!         em::stop();
//!     }
//! }
//!
//! let cert = rcgen::generate_simple_self_signed(vec!["localhost".into()]).unwrap();
//! let server = TlsOptions::new()
//!     .cert_chain_pem(cert.cert.pem())
//!     .private_key_pem(cert.signing_key.serialize_pem());
//! let pin = cert.cert.der().to_vec();
//! em::run(move || -> em::Result<()> {
//!     let s = em::start_server("127.0.0.1:0", move || Echo(server.clone()))?;
//!     em::connect(s.local_addr(), Pinned(pin))?;
//! #   em::spawn(async {
//! #       tokio::time::sleep(std::time::Duration::from_secs(20)).await;
//! #       em::stop();
//! #   })?;
//!     Ok(())
//! })?;
//! # Ok::<(), em::Error>(())
//! ```
//!
//! STARTTLS is the same call made later, from `receive_data`:
//!
//! ```no_run
//! # use em::prelude::*;
//! # #[allow(dead_code)]
//! # struct Smtp(em::TlsOptions);
//! # impl Connection for Smtp {
//! #     type Codec = LinesCodec;
//! #     fn codec(&self) -> LinesCodec { LinesCodec::new() }
//! fn receive_data(&mut self, conn: &Conn<LinesCodec>, line: String) {
//!     if line == "STARTTLS" && !conn.is_tls() {
//!         conn.send_data("220 Ready to start TLS"); // in plain text
//!         conn.start_tls(&self.0).expect("the options are good");
//!     }
//! }
//! # }
//! ```
//!
//! # Socket options, files, limits and stats
//!
//! * **Socket options** on [`Conn`]: `set_nodelay`, `enable_keepalive`
//!   (idle, interval, count), any option socket2 knows through
//!   `with_socket`, and EventMachine's raw `set_sock_opt`/`get_sock_opt`.
//!   Each is an error that `is_unsupported()` on a transport that has no
//!   such option (a TCP option on a Unix-domain socket, any on an in-memory
//!   pair).
//! * **Files**: `Conn::send_file_data(path)` and
//!   `stream_file_data(path, chunked)` stream a file of any size into the
//!   connection within its watermarks (raw, or as HTTP chunks), without
//!   reading it whole, and return a [`Deferred`] of the bytes sent.
//! * **Limits**: each connection stops reading past its high watermark and
//!   ends past `max_outbound`; the whole reactor keeps its queued output
//!   within `Builder::max_total_outbound` (256 MiB by default), ending the
//!   connections that hold the most. A [`Channel`]'s connection
//!   subscribers ([`Channel::subscribe_conn`]) miss items while they are
//!   behind instead, counted, and the publisher sees how many are behind.
//! * **Stats**: [`stats()`] counts connections, bytes, frames, endings by
//!   reason, ticks and pending timers; the example servers print them on
//!   SIGUSR1.
//!
//! Once the reactor begins to stop, every call that would create something
//! (a server, a connection, a task, a timer, a defer, a closure from
//! another thread) is an error that [`is_stopping()`](Error::is_stopping);
//! a `next_tick` queued then is dropped with the rest of the queue.
//!
//! # Timers
//!
//! [`add_timer`] runs a closure once after a delay; [`add_periodic_timer`]
//! runs one every interval, and hands it its own [`PeriodicTimer`] so that it
//! can cancel itself or change its interval. Both run on the reactor thread,
//! fire in deadline order (equal deadlines in creation order), and never
//! inside the call that adds them. One timer store per reactor, driven by one
//! task and one tokio `Sleep`, holds them all: a million pending timers cost
//! tens of megabytes, not a task each. A periodic timer does not drift when
//! its callback is fast and never bursts to catch up; a cancelled timer is
//! gone at once; `max_timers` caps how many may be pending. Under
//! [`spawn`], [`sleep`] and [`timeout`] give the same clock to procedural
//! code.
//!
//! ```
//! use std::time::Duration;
//!
//! em::run(|| -> em::Result<()> {
//!     let mut ticks = 0;
//!     em::add_periodic_timer(Duration::from_millis(5), move |timer| {
//!         ticks += 1;
//!         if ticks == 3 {
//!             timer.cancel();
//!             em::stop();
//!         }
//!     })?;
//!     Ok(())
//! })?;
//! # Ok::<(), em::Error>(())
//! ```
//!
//! Test suites run the reactor on tokio's paused clock with
//! `Reactor::builder().start_paused(true)` (feature `test-util`): time jumps
//! to the next deadline whenever the reactor is idle, so a test asserts the
//! exact instant a timer fired and takes no wall time.
//!
//! # Blocking work: `defer`
//!
//! [`defer`] runs a blocking closure on a pool of `threadpool_size` threads
//! (default 20) and hands its result to a callback on the reactor thread;
//! [`defer_with_errback`] also gets the op's panic as a [`DeferError`];
//! [`defer_async`] is the same as a future for code under [`spawn`]. Results
//! come back in batches, one wake-up of the reactor per batch. When the
//! reactor stops it does not wait for running ops unless
//! `Reactor::builder().shutdown_timeout(..)` says so. A program that hosts
//! em in its own runtime and wants tokio's blocking-thread limit and tooling
//! to cover defers chooses `defer_backend(DeferBackend::TokioBlocking)`
//! ([`DeferOptions`]); em's own pool is the default, and much cheaper per op.
//!
//! ```
//! em::run(|| -> em::Result<()> {
//!     em::defer(
//!         || (1..=20u64).product::<u64>(), // on a pool thread
//!         |factorial| {
//!             assert_eq!(factorial, 2_432_902_008_176_640_000); // on the reactor thread
//!             em::stop();
//!         },
//!     )?;
//!     Ok(())
//! })?;
//! # Ok::<(), em::Error>(())
//! ```
//!
//! # Messaging: channels, queues, iterators, deferreds, pools
//!
//! The building blocks of EventMachine's pub/sub and firehose programs, each
//! reactor-owned (`!Send`, cheap to clone) with a callback form and an
//! async form for code under [`spawn`]:
//!
//! * [`Channel`]: fan-out with no buffering; `push` delivers at once to every
//!   subscriber, in order; [`Channel::subscribe_stream`] is a
//!   `futures::Stream`; [`Channel::sender`] is the `Send` way in.
//! * [`Queue`]: each item to exactly one popper, FIFO; `pop(f)` or
//!   [`Queue::pop_async`]`().await`; [`Queue::sender`] for other threads.
//! * [`GroupChannel`] and [`GroupQueue`]: the same two across the reactors
//!   of a group ([`Builder::run_each`]), `Send + Sync`: subscribers and
//!   poppers on every reactor, pushes from any thread, delivered through
//!   each reactor's [`Handle`], batched (a lock per push, one wake per
//!   batch).
//! * [`EmIterator`]: `each`, `map`, `inject` with at most `concurrency`
//!   items in flight.
//! * [`Deferred`]: a one-shot result with callbacks and a timeout, that is
//!   also a `Future`; the first resolution wins.
//! * [`TickLoop`] ([`tick_loop`]): a callback once per tick until it stops.
//! * [`Pool`]: resources lent one job at a time; `perform` or
//!   [`Pool::get`]`().await`.
//!
//! ```
//! use futures::StreamExt;
//!
//! em::run(|| -> em::Result<()> {
//!     let news = em::Channel::new();
//!     let mut headlines = news.subscribe_stream();
//!     let jobs = em::Queue::new();
//!     let j = jobs.clone();
//!     em::spawn(async move {
//!         while let Some(headline) = headlines.next().await {
//!             j.push(format!("index {headline}"));
//!         }
//!     })?;
//!     jobs.pop(|job: String| {
//!         assert_eq!(job, "index em 0.1 released");
//!         em::stop();
//!     });
//!     news.push("em 0.1 released");
//!     Ok(())
//! })?;
//! # Ok::<(), em::Error>(())
//! ```
//!
//! # Messaging across processes
//!
//! [`Channel`] and [`Queue`] live in one reactor, [`GroupChannel`] and
//! [`GroupQueue`] in the reactors of one process. When a pub/sub or a work
//! queue outgrows one process or one machine, em rides a broker that
//! already exists, never a home-made one: Redis through the `em-redis`
//! crate, RabbitMQ through `em-amqp`. Both speak their protocol on em's own
//! connections, so every message, reply and callback arrives on the reactor
//! thread like any other frame, and both reconnect by themselves with a
//! back-off.
//!
//! | what you need | use | delivery | while the broker is down |
//! |---|---|---|---|
//! | items between the callbacks and tasks of one reactor | [`Channel`] (each item to every subscriber), [`Queue`] (each to one popper) | exactly once, in order; nothing kept past a crash | — |
//! | the same across the reactors of one process | [`GroupChannel`], [`GroupQueue`] | exactly once, in order per pusher | — |
//! | pub/sub across processes and machines: chat rooms, cache invalidation, live updates, where a missed message is made good by the next | Redis: `em_redis::Bridge` joins an em `Channel` to a Redis channel (the `pubsub --redis` example) | at most once; every subscriber sees Redis's order | lost: publishing fails at once (counted by `Bridge::lost`), and what others publish meanwhile never reaches this process |
//! | work that must not be lost: jobs shared among worker processes, each done at least once | RabbitMQ: `em_amqp::QueueBridge` feeds an em `Queue` and acknowledges each job after the local consumer's `Job::done` (the `work_queue` example) | at least once: a job whose worker dies, or whose connection drops, before `done` goes to another worker, flagged redelivered | publishing fails at once; persistent messages in durable queues survive a broker restart; unfinished jobs come again |
//!
//! Rules of thumb: in-process first (no broker to run, nothing to
//! serialise); Redis when losing messages during an outage is acceptable
//! and latency matters most; RabbitMQ when each message is work someone
//! must do, when workers must be free to crash, or when the producer must
//! know that the broker has the message (publisher confirms). RabbitMQ's
//! jobs should be idempotent: at least once means a job may run twice (a
//! worker killed after the work, before its acknowledgement reached the
//! broker).
//!
//! Topics shared by several processes through Redis: each process runs the
//! same code, and each subscriber gets every message once, whichever
//! process published it.
//!
//! ```no_run
//! em::synchrony(async {
//!     let topic = em::Channel::new();
//!     topic.subscribe(|message| println!("news: {message:?}"));
//!     let bridge = em_redis::Bridge::start("127.0.0.1:6379", "news", &topic)?;
//!     bridge.ready().await?;
//!     bridge.publish("em 0.1 released").await?; // every process sees it
//!     Ok::<(), em_redis::RedisError>(())
//! })??;
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! A work queue through RabbitMQ: the producer knows the broker has each
//! job (confirms); workers in several processes take at most `prefetch`
//! jobs each, do the blocking part on [`defer`]'s thread pool, and
//! acknowledge after.
//!
//! ```no_run
//! use std::rc::Rc;
//!
//! use em_amqp::{BasicProperties, Client, Job, QueueBridge, QueueOptions};
//!
//! // The producer.
//! em::synchrony(async {
//!     let client = Client::connect("amqp://guest:guest@127.0.0.1:5672/%2f")?;
//!     let ch = client.channel().await?;
//!     let durable = QueueOptions { durable: true, ..Default::default() };
//!     ch.queue_declare("jobs", durable).await?;
//!     ch.confirm_select().await?;
//!     let persistent = BasicProperties::default().with_delivery_mode(2);
//!     ch.basic_publish("", "jobs", "resize photo 7", persistent).await?; // confirmed
//!     client.close().await?;
//!     Ok::<(), em_amqp::AmqpError>(())
//! })??;
//!
//! // A worker (run as many as you like). The pending `pop` holds the
//! // bridge, so it consumes for as long as the reactor runs.
//! fn take_next(bridge: Rc<QueueBridge>) {
//!     bridge.jobs().pop(move |job: Job| {
//!         let photo = job.body().clone();
//!         let work = move || println!("resizing {photo:?}"); // blocking is fine here
//!         em::defer(work, move |()| {
//!             job.done().ok(); // acknowledged only now
//!         })
//!         .ok();
//!         take_next(bridge);
//!     });
//! }
//! em::run(|| {
//!     let client = Client::connect("amqp://guest:guest@127.0.0.1:5672/%2f")?;
//!     take_next(Rc::new(QueueBridge::start(&client, "jobs", 4)));
//!     Ok(())
//! })?;
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! # Signals
//!
//! [`trap`]`(Signal::TERM, || …)` runs a closure on the reactor thread each
//! time a signal arrives (Ruby's `Signal.trap`, which EventMachine programs
//! use to stop cleanly), as an ordinary callback: it may call any em
//! function, its panic is contained and reported like a callback's, and
//! several closures may trap one signal (they run in the order they were
//! trapped). The process's handler is installed before `trap` returns, so
//! a supervisor's SIGTERM sent the moment the program says it is ready
//! cannot be lost. [`Trap::untrap`] removes a handler; dropping the
//! [`Trap`] does not, as with a timer. tokio keeps its handler installed
//! for the life of the process, so a signal whose handlers are all
//! untrapped is then ignored, not given its default action. SIGKILL and
//! SIGSTOP cannot be trapped (an `Err` that
//! [`is_unsupported()`](Error::is_unsupported)).
//!
//! ```
//! use std::{cell::Cell, rc::Rc};
//! use em::Signal;
//!
//! /// Sends `signal` to this process, as a supervisor would.
//! fn send(signal: &str) {
//!     let pid = std::process::id().to_string();
//!     std::process::Command::new("kill").args([signal, &pid]).status().expect("kill");
//! }
//!
//! let reloads = Rc::new(Cell::new(0));
//! let r = reloads.clone();
//! em::run(move || -> em::Result<()> {
//!     em::trap(Signal::TERM, em::stop)?;
//!     em::trap(Signal::HUP, move || {
//!         r.set(r.get() + 1); // reload the configuration, on the reactor thread
//!         send("-TERM");
//!     })?;
//!     send("-HUP");
//! #   em::spawn(async {
//! #       tokio::time::sleep(std::time::Duration::from_secs(20)).await;
//! #       em::stop();
//! #   })?;
//!     Ok(())
//! })?;
//! assert_eq!(reloads.get(), 1);
//! # Ok::<(), em::Error>(())
//! ```
//!
//! # The keyboard
//!
//! [`open_keyboard`]`(handler)` makes standard input a connection
//! (EventMachine's `EM.open_keyboard`): what is typed, piped or redirected
//! in goes through the handler's codec to `receive_data` (a line at a time
//! with `LinesCodec`), end of input is `unbind(PeerClosed)`, and
//! `close_connection` ends it early. It is read-only: write to standard
//! output yourself. A pipe, FIFO or socket is read through the reactor
//! (non-blocking while the keyboard is open, as tokio needs); a terminal, a
//! redirected file or `/dev/null` is read by a copier thread of em's own,
//! in blocking mode, into a pipe the reactor reads, so the connection is
//! the same either way. Neither uses tokio's blocking pool, so the paused
//! clock of a test suite keeps jumping to the next timer while the
//! keyboard waits. One keyboard may be open at a time in a process.
//!
//! ```no_run
//! use std::io::Write;
//!
//! use em::prelude::*;
//!
//! /// Answers each line typed; `quit`, or end of input, stops.
//! struct Prompt;
//!
//! impl Connection for Prompt {
//!     type Codec = LinesCodec;
//!     fn codec(&self) -> LinesCodec {
//!         LinesCodec::new_with_max_length(4096)
//!     }
//!     fn receive_data(&mut self, _: &Conn<LinesCodec>, line: String) {
//!         if line == "quit" {
//!             em::stop();
//!         } else {
//!             let mut out = std::io::stdout().lock();
//!             write!(out, "{line}\n> ").and_then(|()| out.flush()).expect("stdout");
//!         }
//!     }
//!     fn unbind(&mut self, _: &Conn<LinesCodec>, _: UnbindReason) {
//!         em::stop();
//!     }
//! }
//!
//! em::run(|| em::open_keyboard(Prompt).map(drop))?;
//! # Ok::<(), em::Error>(())
//! ```
//!
//! # EventMachine → em
//!
//! | EventMachine | em | Notable differences |
//! |---|---|---|
//! | `EM.run { … }` | [`run`]`(\|\| …)`, [`Reactor::builder()`](Reactor::builder)`…run(…)`, [`Reactor::run_local`] | Returns `Result`: an `Err` or a panic from the run block comes back from `run`. Inside a running reactor or a tokio runtime it is an error ([`is_already_running()`](Error::is_already_running)) instead of running the block at once. Can be called again after it returns. |
//! | `EM.run` in several processes behind a balancer (EventMachine is single-threaded) | [`Reactor::builder()`](Reactor::builder)`.reactors(n)`[`.run_each(\|index\| …)`](Builder::run_each); [`reactor_index`], [`handles`], [`handle_for`]; [`GroupChannel`], [`GroupQueue`] | `n` reactors in one process, one per core, sharing a server's port (`SO_REUSEPORT`, or one acceptor handing sockets round robin); a connection stays on its reactor; one stop for all. See "Using every core". |
//! | `EM.stop` / `EM.stop_event_loop` | [`stop`]`()`; [`Handle::stop`] from other threads | The current callback finishes; ticks still queued (the rest of the current pass too) are dropped. Servers stop, then every open connection gets `unbind(ReactorStopped)`. |
//! | `EM.stopping?` | [`stopping`]`()` | |
//! | `EM.reactor_running?` | [`reactor_running`]`()`; [`Handle::is_running`] | Process-wide: true while any reactor runs, on any thread. |
//! | `EM.reactor_thread?` | [`reactor_thread`]`()` | |
//! | `EM.connection_count` | [`connection_count`]`()` | Counts connections, pending connects included; listeners are **not** counted. |
//! | `EM.start_server(host, port, Handler, *args)` | [`start_server`]`("host:port", \|\| Handler::new(args))` → [`Server`] | A factory closure instead of a class and args. Returns a `Server` handle, not a signature. A failed bind is an error that [`is_bind()`](Error::is_bind). Backlog 1024 by default (EM: 100). IPv4 and IPv6. |
//! | `EM.start_server(host, port) { \|c\| … }` | [`start_server`]`(addr, `[`handler`]`(\|conn, data\| …))` | The closure is `receive_data` on raw bytes, not a per-connection setup block. |
//! | `EM.stop_server(sig)` | [`Server::stop`] | The listener is closed before `stop` returns; accepted connections live on. |
//! | `EM.connect(host, port, Handler, *args)` | [`connect`]`("host:port", handler)` → [`Conn`] | Never blocks on DNS: names resolve off the reactor thread, and a bad name ends in `unbind(ConnectFailed)` instead of raising. A refused connect is `ConnectFailed` too. |
//! | `EM.bind_connect(bind_addr, bind_port, host, port, Handler)` | [`bind_connect`]`(local, addr, handler)` | A bad local address ends in `unbind(ConnectFailed)`. |
//! | `EM.start_server(path, Handler)`, `EM.start_unix_domain_server` | [`start_unix_domain_server`]`(path, factory)` | Removes its socket file when it stops (EM leaves it); `"\0name"` is an abstract name. |
//! | `EM.connect(path, Handler)`, `EM.connect_unix_domain` | [`connect_unix_domain`]`(path, handler)`, or [`connect`] with a Unix [`Addr`] or [`Endpoint::unix`] | |
//! | `EM.attach(io, Handler)` | [`attach`]`(io, handler)` | Any [`Attachable`]: sockets, socketpair ends, pipe ends, an `OwnedFd`; set non-blocking for you; no `connection_completed`. |
//! | `EM.open_datagram_socket(host, port, Handler)` | [`open_datagram_socket`]`("host:port", handler)` → [`Conn`] | One `receive_data` per datagram, decoded on its own into one frame; a datagram the codec rejects is dropped, not the socket. |
//! | `#send_datagram(data, host, port)` | [`Conn::send_datagram`]`(frame, addr)` → `Result` | No name resolution (an IP address); a bad or wrong-family address, or a datagram larger than UDP carries, is an `Err` that `is_invalid_argument()`. A send the system refuses drops that datagram (EM closes the socket). |
//! | `EM.attach_server(io, Handler)` | [`attach_server`]`(listener, factory)` | |
//! | `#detach` | [`Conn::detach`] → `OwnedFd` | The descriptor comes back open and in blocking mode; `unbind(Detached)` follows once. |
//! | `EM.popen(cmd, Handler)` | [`popen`]`(argv, handler)`, [`popen_shell`]`(cmd, handler)`, [`Popen`]`::new(prog)…start(handler)` → [`Conn`] | Pipes, not a socketpair; an argument vector, never split from a string; `close_connection_after_writing` closes only stdin and the output is read to the end; `unbind` after stdout closed **and** the child exited, with [`UnbindReason::Exited`]; closing never blocks the reactor (PR2): [`Builder::child_grace`], then SIGTERM, then SIGKILL, always reaped. Stderr inherited by default, or merged, discarded, or its own connection. The output is read while stdin's queue is above the high watermark (a filter would deadlock otherwise). |
//! | `Connection#get_pid`, `#get_status` | `Conn::pid()`, `Conn::exit_status()` | `exit_status` is a `std::process::ExitStatus`, set before `unbind`. Plus `Conn::kill(Signal)`. |
//! | `EM.system(cmd) { \|out, status\| }`, `EM::DeferrableChildProcess.open(cmd)` | [`system`]`(argv, \|out, status\| …)` → pid; [`system_async`]`(argv).await` → `(out, status)`; `Popen::system`, `Popen::output` | stdout only, stderr inherited (PR1); called whatever the status (PR3); the child's stdin is closed at once, so a program that reads it does not hang. |
//! | `EM.watch(io, Handler)`, `#notify_readable=`, `#notify_writable=`, `#notify_readable?`, `#watch_only?` | [`watch`]`(fd, handler)`, `Conn::set_notify_readable(bool)`, `set_notify_writable(bool)`, `notify_readable()`, `is_watch_only()` | em watches a duplicate, so the descriptor stays open after `unbind` and after `detach`; `send_data` on it returns 0 (`try_send_data` errs `is_unsupported()`) where EM raises. |
//! | `EM.watch_file(path, Handler)` | [`watch_file`]`(path, handler)` → [`FileWatch`] | The handler is a [`FileWatcher`], not a connection. A missing path is an `Err` that [`is_io()`](Error::is_io) and names it. A directory reports its entries by name, with `file_created`. The same file watched twice works (EM's second `stop_watching` raised, eventmachine#512). notify underneath: one watcher thread per reactor. Feature `file-watch`, on by default. |
//! | `FileWatch#file_modified`, `#file_moved`, `#file_deleted` | [`FileWatcher::file_modified`], [`file_moved`](FileWatcher::file_moved), [`file_deleted`](FileWatcher::file_deleted)`(watch, entry)` | EM's events: writes and truncations, not attribute changes. `entry` names a watched directory's entry. After `file_deleted` of the watched path the watch has ended and `unbind` follows. |
//! | `FileWatch#path`, `#stop_watching` | [`FileWatch::path`], [`FileWatch::stop_watching`], [`FileWatch::is_watching`] | `path` is the original even after a move (FW1). `unbind` comes after `stop_watching`, never inside it (EM: inside). |
//! | `EM.watch_process(pid, Handler)` | [`watch_process`]`(pid, handler)` → [`ProcessWatch`] | Works on Linux, through a pidfd, where EM raises (kqueue only); [`is_unsupported()`](Error::is_unsupported) elsewhere. A closure is a handler. |
//! | `ProcessWatch#process_exited`, `#pid`, `#stop_watching` | [`ProcessWatcher::process_exited`], [`ProcessWatch::pid`], [`ProcessWatch::stop_watching`] | No exit status (a non-child's cannot be read). No `process_forked`: a pidfd does not report forks. |
//! | (Twisted's `StringTransport`) | [`connect_pair`]`(a, b)` | Two handlers joined in memory: no socket, no port, works under the paused clock. |
//! | `EM.add_shutdown_hook { }` | [`add_shutdown_hook`]`(\|\| …)` | Last registered first, before the remaining connections' `unbind`. |
//! | `Signal.trap("TERM") { EM.stop }` (Ruby's, as EventMachine programs use it) | [`trap`]`(Signal::TERM, \|\| …)` → [`Trap`] | Runs on the reactor thread as a callback, never inside the signal handler; several handlers per signal, in order; nothing sent after `trap` returns is lost. |
//! | `Signal.trap(sig, "DEFAULT")` | [`Trap::untrap`] | Dropping a `Trap` does not untrap. The signal is then ignored, not given its default action (tokio's handler stays). |
//! | `EM.open_keyboard(Handler)` | [`open_keyboard`]`(handler)` → [`Conn`] | Frames through the handler's codec (a line at a time with `LinesCodec`) rather than one `receive_data` per byte (KB1); `BytesCodec` gives whatever each read returns. End of input is `unbind(PeerClosed)`; read-only; one keyboard at a time per process (a second is an `Err` that [`is_already_started()`](Error::is_already_started)). |
//! | `EM.next_tick { … }` | [`next_tick`]`(\|\| …)` | Same FIFO and snapshot rule. From another thread, use [`Handle::schedule`]. |
//! | `EM.schedule { … }` | [`schedule`]`(\|\| …)` on the reactor thread; [`Handle::schedule`] from others | `em::schedule` where no reactor runs is an `Err` ([`is_no_reactor()`](Error::is_no_reactor)), never a closure lost in a queue. `Handle::schedule` and `next_tick` share one FIFO. |
//! | `EM.spawn`, em-synchrony fibers | [`spawn`]`(async { … })` | A future on the reactor thread, dropped when the reactor stops; a panic in it is contained and reported like a callback's. |
//! | em-synchrony `EM.synchrony { }` | [`synchrony`]`(async { … })` → its output | Stops the reactor when the future returns; an early stop is an error ([`is_stopped_early()`](Error::is_stopped_early)). |
//! | em-synchrony `EM::Synchrony::TCPSocket` (`write`, `read`/`recv`) | [`Socket`]`::connect(addr, codec).await`, [`Socket::write`], [`Socket::read`], [`SocketListener`] | A `Stream` of frames and a `Sink` of frames, with backpressure both ways; `read` gives the next frame, `None` at a clean end, `Err(reason)` after a failure. Unix-domain and in-memory too. |
//! | `EM::Connection` (a module or subclass) | [`Handler`] (raw bytes), or [`Connection`] (a codec's frames) | A trait implemented by a type of yours; `Handler` is `Connection` with [`RawCodec`], whose `send_data` takes `&str`, `String`, `&[u8]`, `Vec<u8>`, `Bytes`. |
//! | `Connection#post_init` | [`Connection::post_init`] | |
//! | `#connection_completed` | [`Connection::connection_completed`] | |
//! | `#receive_data(data)` | [`Connection::receive_data`]`(conn, frame)` | One decoded frame per call (the codec frames the stream); with `BytesCodec`, raw chunks as in EM. Never after a close request (EM may still deliver). |
//! | `#unbind` / `#unbind(reason)` | [`Connection::unbind`]`(conn, reason)` | An [`UnbindReason`] enum instead of `nil` or an errno. A peer close still flushes queued output first. |
//! | `#send_data(data)` | [`Conn::send_data`]`(frame)` | Returns the bytes queued, 0 when refused (EM: −1 after unbind); [`Conn::try_send_data`] gives the reason. |
//! | `#close_connection` | [`Conn::close_connection`] | `unbind` follows after the current callback, never inside it. |
//! | `#close_connection_after_writing` | [`Conn::close_connection_after_writing`] | Later `send_data` returns 0, as in EM. |
//! | `#get_outbound_data_size` | [`Conn::outbound_data_size`] | |
//! | `#set_sock_opt`, `#get_sock_opt` | `Conn::set_sock_opt(level, name, &bytes)`, `get_sock_opt(level, name)`; `Conn::with_socket(\|s\| …)` for socket2's typed options | Errors on a transport without a socket (`is_unsupported()`). |
//! | `#enable_keepalive(idle, intvl, cnt)`, `#disable_keepalive` | `Conn::enable_keepalive(idle, interval, count)`, `disable_keepalive`, `keepalive`; `set_nodelay`, `nodelay` | TCP only. |
//! | `#send_file_data(path)`, `#stream_file_data(path, http_chunks:)` | `Conn::send_file_data(path)`, `stream_file_data(path, chunked)` → [`Deferred`] | Any size, within the watermarks (EM: 32 KiB for `send_file_data`, polling for `stream_file_data`); a missing file is an `Err` at once. |
//! | `#get_peername` / `#get_sockname` | [`Conn::peer_addr`] / [`Conn::local_addr`] | An [`Addr`] (IP, Unix path, pipe, in-memory) instead of a packed `sockaddr`; `None` until a client's connect completes. |
//! | `#signature` | [`Conn::id`] | A [`ConnectionId`], shown as `#N`, unique within a reactor run. |
//! | `EM.error_handler { \|e\| }` | `set_error_handler(\|report\| …)`, `clear_error_handler()`; `Reactor::builder().stop_on_panic(true)` | Every callback's panic is contained and reported as a `PanicReport`; that connection ends with `unbind(Panicked)`; `stop_on_panic` stops cleanly and `run` returns the panic. |
//! | `#comm_inactivity_timeout=`, `#get_idle_time` | `Conn::set_comm_inactivity_timeout`, `Conn::idle_time` | Closes at exactly last activity + timeout with `unbind(InactivityTimeout)` (EM: up to 2× late). |
//! | `#pending_connect_timeout=` | `Conn::set_pending_connect_timeout` (default 20 s) | `unbind(ConnectTimeout)`. |
//! | `#pause`, `#resume`, `#paused?` | `Conn::pause`, `Conn::resume`, `Conn::is_paused` | Holds reads only (EM holds writes too); a pause inside `receive_data` holds the rest of the read's frames until `resume`, as in EM. |
//! | `get_outbound_data_size` polling | `Conn::is_above_high_watermark`, `Connection::outbound_drained`; builder `outbound_watermarks`, `max_outbound` | Past `max_outbound` the connection ends with `unbind(OutboundOverflow)`. |
//! | `#proxy_incoming_to(conn, bufsize)`, `EM.enable_proxy(from, to, bufsize, length)` | `Conn::proxy_incoming_to(&to, bufsize)`, `Conn::proxy_incoming_to_with_length`, [`enable_proxy`]`(&from, &to, bufsize, length)` | The target may use another codec; a busy target is an `Err` ([`is_busy_target()`](Error::is_busy_target)); the hold is not `pause` (a proxy never resumes a paused connection); input not yet decoded when it starts goes to the target first. Spliced in the kernel between plain sockets (`Builder::proxy_splice`). |
//! | `#stop_proxying`, `EM.disable_proxy(from)`, `#get_proxied_bytes` | `Conn::stop_proxying`, [`disable_proxy`]`(&from)`, `Conn::proxied_bytes` | Decoding resumes with a fresh codec. |
//! | `#proxy_target_unbound`, `#proxy_completed` | [`Connection::proxy_target_unbound`], [`Connection::proxy_completed`] | Once each; input the target refused reaches `receive_data` afterwards. |
//! | `#start_tls(opts)` | [`Conn::start_tls`]`(&TlsOptions)`, [`Conn::start_tls_server`] | rustls; the side is the connection's (accepted: server); verification on by default (EM: off, TLS4); a second call is an `Err` ([`is_already_started()`](Error::is_already_started)), as EM raises. |
//! | `#ssl_handshake_completed` | [`Connection::ssl_handshake_completed`] | A failed handshake ends in `unbind` with [`UnbindReason::Tls`] and its [`TlsErrorKind`] (EM: `EPROTO`). |
//! | `#ssl_verify_peer(pem)` with `verify_peer: true` | [`Connection::ssl_verify_peer`]`(conn, der) -> bool` with `TlsOptions::verify_peer(true)` | Called per certificate after the handshake, before any data; refuses by default. Without `verify_peer`, em verifies against roots (EM verified nothing). |
//! | `#get_peer_cert` | [`Conn::peer_cert`] | The whole chain, DER (EM: the peer's PEM). |
//! | `#get_cipher_name`, `#get_cipher_protocol`, `#get_cipher_bits` | [`Conn::tls_cipher_suite`], [`Conn::tls_protocol_version`] | The IANA suite name says the bits. |
//! | `#get_sni_hostname` | [`Conn::sni_hostname`] | Servers can also pick a certificate per name: `TlsOptions::sni_cert`. |
//! | `:cert_chain_file` / `:cert`, `:private_key_file` / `:private_key` | `TlsOptions::cert_chain_file` / `cert_chain_pem`, `private_key_file` / `private_key_pem` | PKCS#8, RSA or EC keys; a server without a certificate is an `Err` ([`is_tls_config()`](Error::is_tls_config)), where EM used a built-in one (TLS1). `:private_key_pass` is not supported: decrypt the key first. |
//! | `:verify_peer`, `:fail_if_no_peer_cert` | `TlsOptions::verify_peer`, `fail_if_no_peer_cert` | `fail_if_no_peer_cert` needs `verify_peer` or client roots (`root_certs_file`). |
//! | `:sni_hostname` | `TlsOptions::server_name` | Also the name verified against the certificate. |
//! | `:ssl_version`, `:cipher_list`, `:ecdh_curve`, `:dhparam` | `TlsOptions::min_version` / `max_version` (TLS 1.2, 1.3), `cipher_suites` (IANA names) | SSLv2/v3 and TLS 1.0/1.1 are not offered (rustls); curves and DH parameters are rustls's safe defaults. |
//! | `#reconnect` | `Conn::reconnect`, `Conn::reconnect_after` from `unbind`; `Backoff` | Same handler; `post_init` not re-run. |
//! | (stop with queued output) | builder `shutdown_grace(d)` | Flushes up to `d` before `unbind(ReactorStopped)`; default 0 as EM. |
//! | `EM.add_timer(s) { }`, `EM::Timer.new` | [`add_timer`]`(Duration, \|\| …)` → [`Timer`] | Delay truncated to whole ms; never runs inside the call; past `max_timers` an `Err` that `is_too_many_timers()`. |
//! | `timer.cancel`, `EM.cancel_timer(t)` | [`Timer::cancel`], [`cancel_timer`]`(&timer)` | Gone at once: closure dropped, no longer counted (EM counts it until its deadline). |
//! | `EM.add_periodic_timer(s) { }` | [`add_periodic_timer`]`(Duration, \|timer\| …)` → [`PeriodicTimer`] | The callback gets its own timer. A fast callback does not drift, a slow one pushes the next fire one interval past its end, never a burst; a panic keeps the schedule (EM stops it). |
//! | `pt.cancel`, `pt.interval`, `pt.interval = s` | [`PeriodicTimer::cancel`], [`interval`](PeriodicTimer::interval), [`set_interval`](PeriodicTimer::set_interval) | `set_interval` applies from the next re-arm, as in EM. |
//! | `EM.set_max_timers(n)` | [`Reactor::builder()`](Reactor::builder)`.max_timers(Some(n))` ([`TimerOptions`], in the prelude) | Default 100,000; `None` lifts it; periodic timers count too. |
//! | em-synchrony `sleep` | [`sleep`]`(d).await`, [`timeout`]`(d, fut).await` under [`spawn`] | On the reactor's (pausable) clock. |
//! | `EM.defer(op, callback)` | [`defer`]`(op, callback)` | `op: FnOnce() -> T + Send` on a pool thread, `callback(T)` on the reactor thread. |
//! | `EM.defer(op, callback, errback)` | [`defer_with_errback`]`(op, callback, errback)` | The errback gets a [`DeferError`] with the panic message; without one the panic is logged, the reactor runs on, and a later `run` works (EM breaks). |
//! | `EM.defer { }` | [`defer_op`]`(op)` | |
//! | em-synchrony `EM::Synchrony.defer` | [`defer_async`]`(op).await` under [`spawn`] | `Result<T, DeferError>`. |
//! | `EM.defers_finished?` | [`defers_finished`]`()` | |
//! | `EM.threadpool_size = n` | [`Reactor::builder()`](Reactor::builder)`.threadpool_size(n)` ([`DeferOptions`], in the prelude) | Default 20; per reactor; threads start on demand, at most n ops at once, FIFO. A batch of results arrives after the `next_tick`s already queued (EM delivers them first). `defer_backend(DeferBackend::TokioBlocking)` runs ops on tokio's blocking pool instead. |
//! | pool killed at stop | the same by default; `shutdown_timeout(d)` on the builder | With `d`, `run` waits up to `d` for running ops and runs their callbacks during teardown. |
//! | `EM::Channel`: `subscribe`, `unsubscribe`, `push`, `pop`, `num_subscribers` | [`Channel`]: same names; [`Channel::sender`] from other threads; [`Channel::subscribe_stream`]; [`Channel::subscribe_conn`] for connections | Ids are [`SubscriptionId`]s from 1. A push made inside a delivery is queued until the current item reached everyone (no nested delivery); subscribers are snapshotted per item. A connection subscriber behind its high watermark misses items (counted: `num_behind`, `dropped_count`) instead of growing until it is cut off. |
//! | `EM::Queue`: `push`, `pop`, `size`, `empty?`, `num_waiting` | [`Queue`]: `push`, `pop`, `size`, `is_empty`, `num_waiting`; [`Queue::pop_async`]; [`Queue::sender`] | |
//! | `EM::Iterator.new(list, n)`: `each`, `map`, `inject`, `concurrency=` | [`EmIterator::new`]`(items, n)?`: `each`, `map`, `inject` → [`Iteration`]`::set_concurrency` | Concurrency 0 is an `Err` ([`is_invalid_argument()`](Error::is_invalid_argument)); a second `next`/`each` does not compile ([`Done`] and the iterator are used by value). |
//! | `EM::Deferrable`: `callback`, `errback`, `succeed`, `fail`, `timeout`, `cancel_timeout` | [`Deferred`]: same names; `.await` it | The first resolution wins (EM lets `fail` follow `succeed`, and a callback re-`succeed`). |
//! | `EM.tick_loop { }`, `EM::TickLoop`: `start`, `stop`, `stopped?`, `on_stop` | [`tick_loop`]`(\|\| ControlFlow…)`, [`TickLoop`]: `start`, `stop`, `is_stopped`, `on_stop` | `ControlFlow::Break(())` instead of `:stop`; double start is an `Err` ([`is_already_started()`](Error::is_already_started)). |
//! | `EM::Pool`: `add`, `perform`, `on_error`, `num_waiting` | [`Pool`]: same names; [`Pool::get`]`().await` → [`PoolGuard`] | A panicking job fails its resource (contained, not re-raised); no `remove`/`contents` yet ([`Pool::size`], [`Pool::num_idle`]). |
//! | (none) | [`handle()`] → [`Handle`] | The cross-thread door: `schedule` and `stop`. |
//! | (none) | [`stats()`] → [`Stats`] | Connections, bytes, frames, endings by reason, ticks, pending timers. |
//! | (unbounded total) | `Reactor::builder().max_total_outbound(n)` | A reactor-wide budget of queued output (default 256 MiB). |
//!
//! # Cargo features
//!
//! * `file-watch` (on by default): [`watch_file`], [`FileWatch`] and
//!   [`FileWatcher`], on the notify crate; `default-features = false`
//!   leaves them out.
//! * `test-util` (off by default): lets
//!   [`Builder::start_paused`] run the reactor on tokio's paused clock, for
//!   test suites.
//! * `testing` (off by default; implies `test-util`): the module
//!   `em::testing`, the kit for network tests ("Testing with em", its
//!   tour): `TestReactor`, fake servers, the fault-injecting `FaultProxy`,
//!   the callback recorder and in-memory pairs. For dev-dependencies.

#![deny(missing_docs)]
#![doc(test(attr(deny(warnings))))]

// The facade re-exports an explicit list, so that nothing internal (such
// as em-core's `extension` seam for other crates) is reachable by accident.

// The reactor.
pub use em_core::{
    add_shutdown_hook, connection_count, handle, next_tick, reactor_running, reactor_thread, run,
    schedule, spawn, stats, stop, stopping, synchrony, Builder, Ended, Handle, Reactor, RunResult,
    Stats,
};
// Several reactors, one per core (`Builder::reactors`, `run_each`).
pub use em_core::{handle_for, handles, reactor_index};
// Errors, panics and the error handler.
pub use em_core::{clear_error_handler, set_error_handler, BoxError, Error, PanicReport, Result};
// Connections, servers and clients, on every transport.
pub use em_core::{
    attach, attach_server, bind_connect, connect, connect_pair, connect_unix_domain, handler,
    start_server, start_unix_domain_server, Addr, Attachable, AttachableListener, Backoff, Conn,
    Connection, ConnectionId, Endpoint, FnHandler, Frame, Handler, RawCodec, Server, Socket,
    SocketListener, UnbindReason, UnixAddr,
};
// Watched descriptors.
pub use em_core::watch;
// Signals.
pub use em_core::{trap, Signal, Trap};
// The keyboard.
pub use em_core::open_keyboard;
// File watchers (feature `file-watch`, on by default).
#[cfg(feature = "file-watch")]
pub use em_core::{watch_file, FileWatch, FileWatcher};
// Watching a process.
pub use em_core::{watch_process, ProcessWatch, ProcessWatcher};
// Proxies.
pub use em_core::{disable_proxy, enable_proxy};
// UDP sockets, as connections.
pub use em_core::open_datagram_socket;
// TLS.
pub use em_core::{TlsError, TlsErrorKind, TlsOptions, TlsVersion};
// Child processes.
pub use em_core::{popen, popen_shell, system, system_async, Popen, Stderr};
// Messaging.
pub use em_core::{
    tick_loop, Channel, ChannelSender, ChannelStream, Deferred, Done, EmIterator, Get,
    GroupChannel, GroupQueue, GroupSubscription, Iteration, Pool, PoolGuard, Pop, Queue,
    QueueSender, SubscriptionId, TickLoop,
};
// Timers.
pub use em_timers::{
    add_periodic_timer, add_timer, cancel_timer, sleep, timeout, Cancel, PeriodicTimer, Timer,
    TimerOptions,
};
// Defer.
pub use em_defer::{
    defer, defer_async, defer_op, defer_with_errback, defers_finished, DeferBackend, DeferError,
    DeferFuture, DeferOptions,
};

/// The time span timers, timeouts and options take: std's `Duration`,
/// re-exported (as `tokio::time` does), so that `em::Duration::from_millis(100)`
/// needs no import.
pub use std::time::Duration;

#[cfg(feature = "testing")]
pub mod testing;

/// The byte buffers frames are made of, re-exported from the `bytes` crate.
pub use bytes;

/// Socket options beyond the typed ones, re-exported from the `socket2`
/// crate: the `SockRef` that [`Conn::with_socket`] hands its closure, and
/// `TcpKeepalive`.
pub use socket2;

/// Codecs that frame a connection's byte stream, re-exported from
/// `tokio_util::codec`: `BytesCodec`, `LinesCodec`, `LengthDelimitedCodec`,
/// and the `Decoder` and `Encoder` traits for codecs of your own.
pub use tokio_util::codec;

/// Everything a handler module usually needs: `use em::prelude::*;`.
///
/// The handler traits and types ([`Handler`] for raw bytes, [`Connection`]
/// with a codec, [`Conn`], [`Frame`], [`UnbindReason`], [`Addr`]), the
/// reactor handles ([`Handle`], [`Server`], [`Timer`], [`PeriodicTimer`]),
/// [`DeferError`], the builder options of the timers and defer
/// ([`TimerOptions`], [`DeferOptions`]), [`Duration`], the common codecs
/// ([`RawCodec`] and tokio-util's) and the byte buffers they produce.
pub mod prelude {
    pub use bytes::{Bytes, BytesMut};
    pub use em_core::{
        Addr, Conn, Connection, Frame, Handle, Handler, RawCodec, Server, UnbindReason,
    };
    pub use em_defer::{DeferError, DeferOptions};
    pub use em_timers::{PeriodicTimer, Timer, TimerOptions};
    pub use std::time::Duration;
    pub use tokio_util::codec::{BytesCodec, Decoder, Encoder, LengthDelimitedCodec, LinesCodec};
}
