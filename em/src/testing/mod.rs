//! Testing with em (feature `testing`, off by default): a reactor the test
//! drives from its own thread, fake servers, a fault-injecting proxy, a
//! recorder of callbacks, the paused clock and in-memory pairs, for
//! testing network code written with em or anything else.
//!
//! ```toml
//! [dev-dependencies]
//! em = { package = "em-toolkit", version = "0.1", features = ["testing"] }
//! ```
//!
//! # A client library against a scripted server
//!
//! The code under test is a client (here a small one written with
//! `std::net`; it could use em, tokio or any library). A
//! [`FakeServer::script`] plays the server's side of the dialogue, and
//! [`finish`](ScriptedServer::finish) says whether the client kept to it:
//! on a mismatch the error names the step and shows the expected and the
//! received text, with a caret where they part.
//!
//! ```
//! use std::io::{self, BufRead, BufReader, Write};
//! use std::net::{SocketAddr, TcpStream};
//! use std::time::Duration;
//!
//! use em::testing::FakeServer;
//!
//! /// The client under test: greets, leaves a note, says goodbye; returns
//! /// the server's answer to the note.
//! fn leave_note(server: SocketAddr, note: &str) -> io::Result<String> {
//!     let stream = TcpStream::connect(server)?;
//!     stream.set_read_timeout(Some(Duration::from_secs(10)))?;
//!     let mut lines = BufReader::new(stream.try_clone()?);
//!     let mut stream = stream;
//!     let mut line = String::new();
//!     let mut answer = |stream: &mut TcpStream, say: &str| -> io::Result<String> {
//!         stream.write_all(format!("{say}\r\n").as_bytes())?;
//!         line.clear();
//!         lines.read_line(&mut line)?;
//!         Ok(line.trim_end().to_owned())
//!     };
//!     answer(&mut stream, "HELO notes.test")?;
//!     let noted = answer(&mut stream, &format!("NOTE {note}"))?;
//!     stream.write_all(b"QUIT\r\n")?;
//!     Ok(noted)
//! }
//!
//! let server = FakeServer::script()
//!     .expect_line("HELO notes.test")
//!     .send_line("250 hello")
//!     .expect_line("NOTE buy milk")
//!     .send_line("250 noted")
//!     .expect_line("QUIT")
//!     .close()
//!     .start();
//! assert_eq!(leave_note(server.local_addr(), "buy milk")?, "250 noted");
//! server.finish()?;
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! # The same client on a flaky network
//!
//! A [`FaultProxy`] sits between the client and its server and injects
//! what networks do ([`Toxic`]s: latency, a bandwidth limit, a black hole,
//! resets…), switched on and off while connections are open. Here the
//! client gives up on a silent server after a read timeout and tries
//! again with a back-off; the test puts a black hole in the way, sees the
//! first attempt fail, heals the network, and checks that the client got
//! through.
//!
//! ```
//! use std::io::{self, BufRead, BufReader, Write};
//! use std::net::{SocketAddr, TcpStream};
//! use std::sync::mpsc;
//! use std::time::Duration;
//!
//! use em::prelude::*;
//! use em::testing::{FaultProxy, TestReactor, Toxic};
//!
//! /// The client under test: one attempt, with a read timeout.
//! fn leave_note(server: SocketAddr, note: &str, timeout: Duration) -> io::Result<String> {
//!     let mut stream = TcpStream::connect(server)?;
//!     stream.set_read_timeout(Some(timeout))?;
//!     let mut lines = BufReader::new(stream.try_clone()?);
//!     let mut line = String::new();
//!     for say in ["HELO notes.test".to_owned(), format!("NOTE {note}")] {
//!         stream.write_all(format!("{say}\r\n").as_bytes())?;
//!         line.clear();
//!         lines.read_line(&mut line)?;
//!     }
//!     stream.write_all(b"QUIT\r\n")?;
//!     Ok(line.trim_end().to_owned())
//! }
//!
//! /// …and its retry policy: five attempts, the delay doubling from 20 ms;
//! /// each failure is reported on `failures`.
//! fn leave_note_retrying(
//!     server: SocketAddr,
//!     note: &str,
//!     failures: mpsc::Sender<io::ErrorKind>,
//! ) -> io::Result<String> {
//!     let mut delay = Duration::from_millis(20);
//!     let mut last = None;
//!     for _ in 0..5 {
//!         match leave_note(server, note, Duration::from_millis(200)) {
//!             Ok(answer) => return Ok(answer),
//!             Err(e) => {
//!                 let _ = failures.send(e.kind());
//!                 last = Some(e);
//!                 std::thread::sleep(delay); // the client's back-off
//!                 delay *= 2;
//!             }
//!         }
//!     }
//!     Err(last.unwrap())
//! }
//!
//! /// The real server, an em one: answers HELO and NOTE, closes on QUIT.
//! struct Notes;
//!
//! impl Connection for Notes {
//!     type Codec = LinesCodec;
//!     fn codec(&self) -> LinesCodec {
//!         LinesCodec::new_with_max_length(1024)
//!     }
//!     fn receive_data(&mut self, conn: &Conn<LinesCodec>, line: String) {
//!         let answer = match line.split(' ').next() {
//!             Some("HELO") => "250 hello",
//!             Some("NOTE") => "250 noted",
//!             _ => return conn.close_connection_after_writing(),
//!         };
//!         conn.send_data(answer);
//!     }
//! }
//!
//! let reactor = TestReactor::start();
//! let server = reactor.block_on(|| {
//!     em::start_server("127.0.0.1:0", || Notes).unwrap().local_addr().inet().unwrap()
//! });
//! let proxy = FaultProxy::start(server);
//! // A black hole: the connection opens, and nothing comes back.
//! let black_hole = proxy.add_toxic(Toxic::timeout(Duration::ZERO));
//!
//! let (failures_tx, failures) = mpsc::channel();
//! let through = proxy.local_addr();
//! let client = std::thread::spawn(move || leave_note_retrying(through, "buy milk", failures_tx));
//!
//! // The first attempt times out (a read timeout is WouldBlock on Unix).
//! let first = failures.recv_timeout(Duration::from_secs(10))?;
//! assert!(matches!(first, io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut), "{first:?}");
//! proxy.remove_toxic(black_hole);
//! assert_eq!(client.join().unwrap()?, "250 noted");
//! reactor.stop()?;
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! # An em server, tested with plain std clients
//!
//! A [`TestReactor`] runs a reactor on a thread of its own; the test's
//! thread starts the server on it with [`block_on`](TestReactor::block_on)
//! and talks to it with whatever client it likes: here `std::net`, blocking,
//! with read timeouts so that a silent server fails the test instead of
//! hanging it. [`stop`](TestReactor::stop) reports any panic contained on
//! the reactor meanwhile (a handler's bug that em kept from taking the
//! server down still fails the test).
//!
//! ```
//! use std::io::{BufRead, BufReader, Write};
//! use std::net::TcpStream;
//! use std::time::Duration;
//!
//! use em::prelude::*;
//! use em::testing::TestReactor;
//!
//! /// The server under test: answers each line with its length.
//! struct Lengths;
//!
//! impl Connection for Lengths {
//!     type Codec = LinesCodec;
//!     fn codec(&self) -> LinesCodec {
//!         LinesCodec::new_with_max_length(1024)
//!     }
//!     fn receive_data(&mut self, conn: &Conn<LinesCodec>, line: String) {
//!         conn.send_data(line.len().to_string());
//!     }
//! }
//!
//! let reactor = TestReactor::start();
//! let addr = reactor.block_on(|| {
//!     let server = em::start_server("127.0.0.1:0", || Lengths).unwrap();
//!     server.local_addr().inet().unwrap()
//! });
//!
//! let mut clients: Vec<_> = (0..3).map(|_| TcpStream::connect(addr).unwrap()).collect();
//! for (i, client) in clients.iter_mut().enumerate() {
//!     client.set_read_timeout(Some(Duration::from_secs(10)))?;
//!     client.write_all(format!("{}\n", "x".repeat(i)).as_bytes())?;
//! }
//! for (i, client) in clients.iter_mut().enumerate() {
//!     let mut answer = String::new();
//!     BufReader::new(client).read_line(&mut answer)?;
//!     assert_eq!(answer, format!("{i}\n"));
//! }
//! reactor.stop()?;
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! # The clock
//!
//! Tests of timeouts and timers want time they control. em runs on
//! tokio's clock, which a reactor built with
//! [`start_paused(true)`](crate::Builder::start_paused) (or
//! [`TestReactor::paused`]) freezes: it moves only when something moves it.
//! Two things do:
//!
//! * **[`TestReactor::advance`]**, from the test's thread: the clock jumps
//!   forward in one step and the timers due by then fire, in deadline
//!   order, before `advance` returns (a periodic timer once per step:
//!   advance in steps to see each period). On a [`TestReactor::paused`]
//!   reactor this is the only way time moves, so a test can check that
//!   nothing happens at 999 ms and something at 1 s.
//! * **tokio's auto-advance**, on a paused reactor run any other way
//!   (`Reactor::builder().start_paused(true).run(..)`): whenever the
//!   reactor has nothing ready to run, the clock jumps to the next timer at
//!   once. [`TestReactor::paused`] turns it off (it keeps a task on tokio's
//!   blocking pool for as long as the reactor runs, which is what holds
//!   it).
//!
//! What holds the clock (auto-advance waits while any of these is in
//! flight, so the time they take in the real world is zero on the paused
//! clock, and no timer overtakes them): work on tokio's blocking pool,
//! which in em means [`defer`](crate::defer) and [`defer_async`](crate::defer_async)
//! ops (their pool tells tokio), name resolution in
//! [`connect`](crate::connect) to a host name, and reading a file for
//! `stream_file_data`. What does **not** hold it: real sockets. A paused
//! reactor waiting for a peer on a real socket is idle, so with
//! auto-advance its timers (an inactivity timeout, a reconnect back-off)
//! fire at once, however fast the peer; keep every peer on the same
//! reactor ([`pair`], or client and server both on the `TestReactor`), or
//! use [`TestReactor::paused`] and `advance` only once the peer has done
//! what the test waits for. A future given to [`TestReactor::run`] that
//! sleeps on a paused `TestReactor` finishes only when another thread
//! advances the clock; use [`block_on`](TestReactor::block_on) to start
//! the timers, then `advance`.
//!
//! * [`TestReactor`]: a reactor on a background thread; `block_on` and
//!   `run` run code on it and bring the result back; `stop` reports any
//!   panic contained on it during the test.
//! * [`Recording`] and [`Recorder`]: the callbacks a handler got, in
//!   order, with their times; [`assert_sequence!`] checks them.
//! * [`pair`]: two connections joined in memory.
//! * [`FakeServer`]: fake servers on 127.0.0.1 for any client: a
//!   [`Script`] of lines and bytes to expect and send (with waits, stalls,
//!   resets), checked by [`ScriptedServer::finish`]; a
//!   [`RecordingServer`] that keeps every byte and close; a closure on
//!   raw bytes ([`FakeServer::handler`]).
//! * [`FaultProxy`] and [`Toxic`]: a TCP proxy between the code under
//!   test and its server that injects faults (latency, bandwidth, black
//!   holes, resets, …), added and removed while connections are open.

mod fake_server;
mod fault_proxy;
mod pair;
mod reactor;
mod recorder;

pub use crate::assert_sequence;
pub use fake_server::{
    FakeServer, RecordingBuilder, RecordingServer, Script, ScriptError, ScriptedServer, WireEvent,
    WireRecord, DEFAULT_FINISH_LIMIT, DEFAULT_STEP_TIMEOUT,
};
pub use fault_proxy::{Direction, FaultProxy, Toxic, ToxicId};
pub use pair::pair;
pub use reactor::{TestReactor, TestReactorError, ANSWER_LIMIT};
pub use recorder::{Event, Recorded, Recorder, Recording};
